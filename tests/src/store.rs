//! Finding installed contents in a store folder, as an operator would: `STORE/*/ID/manifest.json`.
//!
//! The tests do not ask the installer where it put a content (that would trust the code under
//! test); they look for the layout the contract promises (DESIGN.md §3).

use std::fs;
use std::path::{Path, PathBuf};

/// The files every installed content folder holds.
pub const CONTENT_FILES: [&str; 6] = [
    "content.ts",
    "index.sidx",
    "manifest.json",
    "index.m3u8",
    "media.m3u8",
    "iframes.m3u8",
];

/// Every `STORE/NODE/ID` folder holding a `manifest.json`, sorted.
pub fn copies(store: &Path, id: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(store) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path().join(id))
        .filter(|dir| dir.join("manifest.json").is_file())
        .collect();
    out.sort();
    out
}

/// The one installed copy of `id`; panics unless there is exactly one.
pub fn installed(store: &Path, id: &str) -> PathBuf {
    let found = copies(store, id);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {}/*/{id}/manifest.json, found {found:?}",
        store.display()
    );
    found.into_iter().next().expect("one copy")
}

/// Names in the store's top folder that start with `.` (staging or other leftovers).
pub fn hidden_entries(store: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(store) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    out.sort();
    out
}

/// A new store (a temp folder named `PREFIX…`) with `src` installed as `id` by the real
/// `install-content`, which must succeed.
pub fn with_content(prefix: &str, src: &Path, id: &str) -> tempfile::TempDir {
    let store = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    let out = crate::process::run(
        crate::bin_path::install_content_cmd(store.path())
            .arg("add")
            .arg(src)
            .args(["--id", id]),
    );
    assert!(out.success(), "installing {} failed\n{out}", src.display());
    store
}

/// A new store (a temp folder named `PREFIX…`) whose `store.json` is `topology`, with `src`
/// installed as `id` in `replicas` copies by the real `install-content`; and the manifest of
/// one copy.
pub fn with_topology(
    prefix: &str,
    topology: &serde_json::Value,
    src: &Path,
    id: &str,
    replicas: usize,
) -> (tempfile::TempDir, serde_json::Value) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    fs::write(dir.path().join("store.json"), topology.to_string()).expect("write store.json");
    let out = crate::process::run(
        crate::bin_path::install_content_cmd(dir.path())
            .arg("add")
            .arg(src)
            .args(["--id", id, "--replicas", &replicas.to_string()]),
    );
    assert!(out.success(), "installing {} failed\n{out}", src.display());
    let copy = copies(dir.path(), id).into_iter().next().expect("a copy");
    let manifest =
        serde_json::from_slice(&fs::read(copy.join("manifest.json")).expect("read manifest.json"))
            .expect("manifest JSON");
    (dir, manifest)
}

/// Give the host of `manifest`'s main copy room for one session and a half of the content
/// (`egress_bps` = 1.5 × its bitrate) in `topology`, written to the store's `store.json`;
/// the main and sub copies' hosts.
pub fn limit_main_host(
    store: &Path,
    topology: &mut serde_json::Value,
    manifest: &serde_json::Value,
) -> (String, String) {
    let host = |k: usize| {
        manifest["replicas"][k]["host"]
            .as_str()
            .expect("a replica's host")
            .to_string()
    };
    let (main, sub) = (host(0), host(1));
    let bytes_per_sec = manifest["bitrate"].as_u64().expect("bitrate") / 8;
    for h in topology["hosts"].as_array_mut().expect("hosts") {
        if h["name"] == main.as_str() {
            h["egress_bps"] = serde_json::json!(bytes_per_sec * 3 / 2);
        }
    }
    fs::write(store.join("store.json"), topology.to_string()).expect("write store.json");
    (main, sub)
}

/// A topology of three hosts with one node each: `h1`/`a1`, `h2`/`b1`, `h3`/`c1`.
pub fn three_single_node_hosts() -> serde_json::Value {
    serde_json::json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [
            {"name": "h1", "nodes": ["a1"]},
            {"name": "h2", "nodes": ["b1"]},
            {"name": "h3", "nodes": ["c1"]},
        ],
    })
}
