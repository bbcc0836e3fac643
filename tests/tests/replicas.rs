//! Replicas in the installer (issue 3 item 4): `add --replicas R` places R copies on distinct
//! physical hosts (main, sub, backups), `verify` checks every copy and notices a missing one,
//! `repair` restores missing and damaged copies from a good one, and impossible requests fail
//! with one line and the store unchanged.

use media_fixtures::Fixture;
use serde_json::Value;
use sluice_tests::bin_path::install_content_cmd;
use sluice_tests::process::{self, Output};
use sluice_tests::{snapshot, store};
use std::fs;
use std::path::Path;

const ERROR_PREFIX: &str = "install-content: error: ";

/// A store whose topology has three hosts of two virtual nodes each.
fn three_host_store() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sluice-replicas-")
        .tempdir()
        .expect("tempdir");
    let topology = serde_json::json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [
            {"name": "host-a", "weight": 1.0, "nodes": ["a1", "a2"]},
            {"name": "host-b", "weight": 1.0, "nodes": ["b1", "b2"]},
            {"name": "host-c", "weight": 1.0, "nodes": ["c1", "c2"]},
        ]
    });
    fs::write(dir.path().join("store.json"), topology.to_string()).expect("write store.json");
    dir
}

fn run(store: &Path, args: &[&str]) -> Output {
    let mut cmd = install_content_cmd(store);
    cmd.args(args);
    process::run(&mut cmd)
}

fn clip() -> String {
    Fixture::H264AacFaststart
        .path()
        .expect("fixture")
        .display()
        .to_string()
}

fn one_error_line(out: &Output, word: &str) {
    assert!(!out.success(), "{} should fail", out.command);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", out.stderr);
    assert!(lines[0].starts_with(ERROR_PREFIX), "{:?}", lines[0]);
    assert!(
        lines[0].contains(word),
        "{:?} should mention {word:?}",
        lines[0]
    );
    assert!(!out.stderr.contains("panicked"));
}

/// (node, host) of every copy, from the JSON result of `add --json`.
fn replicas_of(out: &Output) -> Vec<(String, String)> {
    let last = out.stdout.lines().last().expect("a result line");
    let v: Value = serde_json::from_str(last).expect("json");
    v["outcome"]["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap_or("").to_string(),
                r["host"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn replicas_land_on_distinct_hosts_and_verify() {
    let dir = three_host_store();
    let s = dir.path();
    let out = run(
        s,
        &["add", &clip(), "--id", "movie", "--replicas", "3", "--json"],
    );
    assert!(out.success(), "{}\n{}", out.command, out.stderr);
    let reps = replicas_of(&out);
    assert_eq!(reps.len(), 3);
    let mut hosts: Vec<&str> = reps.iter().map(|(_, h)| h.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3, "replicas share a host: {reps:?}");
    for (node, host) in &reps {
        assert!(
            node.starts_with(&host[host.len() - 1..]),
            "{node} is not on {host}"
        );
        assert!(
            s.join(node).join("movie/manifest.json").is_file(),
            "no copy on {node}"
        );
    }
    assert_eq!(store::copies(s, "movie").len(), 3);
    // Every copy is the same bytes.
    let first = fs::read(s.join(&reps[0].0).join("movie/content.ts")).expect("read");
    for (node, _) in &reps[1..] {
        assert_eq!(
            fs::read(s.join(node).join("movie/content.ts")).expect("read"),
            first
        );
    }
    let v = run(s, &["verify", "movie"]);
    assert!(v.success(), "{}", v.stderr);
    assert_eq!(v.stdout.matches(": ok").count(), 3, "{}", v.stdout);
    // The same id placed again gives the same order (placement is deterministic).
    let dry = run(
        s,
        &[
            "add",
            &clip(),
            "--id",
            "movie",
            "--replicas",
            "3",
            "--dry-run",
            "--json",
        ],
    );
    assert!(dry.success(), "{}", dry.stderr);
    assert_eq!(replicas_of(&dry), reps);
}

#[test]
fn missing_and_damaged_replicas_are_found_and_repaired() {
    let dir = three_host_store();
    let s = dir.path();
    let out = run(
        s,
        &["add", &clip(), "--id", "film", "--replicas", "2", "--json"],
    );
    assert!(out.success(), "{}", out.stderr);
    let reps = replicas_of(&out);
    // Lose the sub replica entirely.
    fs::remove_dir_all(s.join(&reps[1].0).join("film")).expect("remove");
    one_error_line(&run(s, &["verify", "film"]), "missing");
    let r = run(s, &["repair", "film"]);
    assert!(r.success(), "{}", r.stderr);
    assert!(r.stdout.contains(&reps[1].0), "{}", r.stdout);
    assert!(run(s, &["verify", "film"]).success());
    // Damage the main replica's content.
    let ts = s.join(&reps[0].0).join("film/content.ts");
    let mut bytes = fs::read(&ts).expect("read");
    bytes[5000] ^= 0xFF;
    fs::write(&ts, &bytes).expect("write");
    one_error_line(&run(s, &["verify", "film"]), "CRC");
    let r = run(s, &["repair", "film"]);
    assert!(r.success(), "{}", r.stderr);
    assert!(r.stdout.contains(&reps[0].0), "{}", r.stdout);
    let v = run(s, &["verify", "film"]);
    assert!(v.success(), "{}", v.stderr);
    // Nothing to do when all is well; no staging left behind.
    assert!(
        run(s, &["repair", "film"])
            .stdout
            .contains("nothing to repair")
    );
    assert!(
        store::hidden_entries(s).is_empty(),
        "{:?}",
        store::hidden_entries(s)
    );
}

#[test]
fn more_replicas_than_hosts_fails_cleanly() {
    let dir = three_host_store();
    let s = dir.path();
    let before = snapshot::take(s);
    one_error_line(
        &run(s, &["add", &clip(), "--id", "x", "--replicas", "4"]),
        "host",
    );
    assert_eq!(
        snapshot::take(s),
        before,
        "{}",
        snapshot::diff(&before, &snapshot::take(s))
    );
    // The embedded default store has one host: two copies cannot be placed.
    let fresh = tempfile::Builder::new()
        .prefix("sluice-replicas-")
        .tempdir()
        .expect("tempdir");
    let store_dir = fresh.path().join("store");
    one_error_line(
        &run(&store_dir, &["add", &clip(), "--replicas", "2"]),
        "host",
    );
    assert!(!store_dir.exists(), "a failed install created the store");
}
