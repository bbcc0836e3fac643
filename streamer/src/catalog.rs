//! What is installed where: the manifests on the storage nodes, re-read when the store changes
//! (an install or removal renames a folder, which changes the node folder's modification time).
//!
//! Checking those times costs a `statx` per node folder. The content routes ask the catalog on
//! every request, and at small ranges those calls were 7% of the streamer's CPU (perf, 4 KiB
//! ranges), so [`Catalog::get`] checks at most every [`RECHECK`] when the content is known:
//! an install is seen at once (an unknown id always re-checks), a removal or a re-install of a
//! known id within [`RECHECK`]. Until then its requests are answered from the previous
//! manifest, as nginx's `open_file_cache` answers from its cached descriptors.

use installer::info::{MANIFEST_FILE, Manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use storage_device_sim::topology::Topology;

/// One installed content as the server sees it.
#[derive(Debug, Clone)]
pub struct Content {
    pub id: String,
    pub manifest: Manifest,
    /// Nodes holding a copy, main first (manifest order, then any others found).
    pub nodes: Vec<String>,
    /// Strong validator: the content TS's CRC-32 and size.
    pub etag: String,
    pub last_modified: SystemTime,
}

impl Content {
    pub fn file_size(&self, name: &str) -> Option<u64> {
        self.manifest.files.get(name).map(|f| f.size)
    }
}

/// Node-folder modification times at the last scan, and what that scan found.
type Snapshot = (Vec<Option<SystemTime>>, Arc<BTreeMap<String, Arc<Content>>>);

/// How stale [`Catalog::get`] may be about a content it knows.
pub const RECHECK: Duration = Duration::from_millis(100);

pub struct Catalog {
    root: PathBuf,
    nodes: Vec<String>,
    state: RwLock<Snapshot>,
    /// `born` and the last check of the node folders, in nanoseconds since `born`.
    born: Instant,
    checked_ns: AtomicU64,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Catalog {
    pub fn new(root: &Path, topology: &Topology) -> Catalog {
        let c = Catalog {
            root: root.to_path_buf(),
            nodes: topology.nodes().map(str::to_owned).collect(),
            state: RwLock::new((Vec::new(), Arc::new(BTreeMap::new()))),
            born: Instant::now(),
            checked_ns: AtomicU64::new(0),
        };
        c.refresh();
        c
    }

    /// Re-scan if any node folder changed since the last scan.
    pub fn refresh(&self) {
        self.checked_ns
            .store(self.born.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let stamps: Vec<Option<SystemTime>> = self
            .nodes
            .iter()
            .map(|n| mtime(&self.root.join(n)))
            .collect();
        if let Ok(s) = self.state.read()
            && s.0 == stamps
            && !stamps.is_empty()
        {
            return;
        }
        let mut found: BTreeMap<String, (Option<Manifest>, Vec<String>)> = BTreeMap::new();
        for node in &self.nodes {
            let Ok(rd) = std::fs::read_dir(self.root.join(node)) else {
                continue;
            };
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let mpath = e.path().join(MANIFEST_FILE);
                let Ok(bytes) = std::fs::read(&mpath) else {
                    continue;
                };
                let Ok(m) = Manifest::parse(&bytes, &mpath) else {
                    tracing::warn!(node, id, "unreadable manifest: skipped");
                    continue;
                };
                let entry = found.entry(id).or_insert((None, Vec::new()));
                entry.1.push(node.clone());
                if entry.0.is_none() {
                    entry.0 = Some(m);
                }
            }
        }
        let mut map = BTreeMap::new();
        for (id, (m, present)) in found {
            let Some(m) = m else { continue };
            let mut nodes: Vec<String> = m
                .replicas
                .iter()
                .map(|r| r.node.clone())
                .filter(|n| present.contains(n))
                .collect();
            for n in present {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
            let ts = m.files.get(installer::info::CONTENT_TS);
            let etag = format!(
                "\"{}-{:x}\"",
                ts.map_or("0", |f| f.crc32.as_str()),
                ts.map_or(0, |f| f.size)
            );
            let last_modified =
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.installed_at);
            map.insert(
                id.clone(),
                Arc::new(Content {
                    id,
                    manifest: m,
                    nodes,
                    etag,
                    last_modified,
                }),
            );
        }
        if let Ok(mut s) = self.state.write() {
            *s = (stamps, Arc::new(map));
        }
    }

    /// The content `id`: checked against the store at most [`RECHECK`] ago if known, now if
    /// not.
    pub fn get(&self, id: &str) -> Option<Arc<Content>> {
        let now = self.born.elapsed().as_nanos() as u64;
        let checked = self.checked_ns.load(Ordering::Relaxed);
        if now.saturating_sub(checked) < RECHECK.as_nanos() as u64
            && let Some(c) = self.state.read().ok().and_then(|s| s.1.get(id).cloned())
        {
            return Some(c);
        }
        self.refresh();
        self.state.read().ok()?.1.get(id).cloned()
    }

    pub fn all(&self) -> Arc<BTreeMap<String, Arc<Content>>> {
        self.refresh();
        self.state.read().map(|s| s.1.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use installer::info::{MANIFEST_FORMAT, MANIFEST_VERSION};

    fn put(root: &Path, node: &str, id: &str) {
        let mut m = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            id: id.into(),
            source: "src.ts".into(),
            source_container: "mpegts".into(),
            source_size: 1,
            installed_at: 0,
            duration_90k: 90_000,
            duration_seconds: 1.0,
            bitrate: 8,
            index_version: 1,
            keyframes: 1,
            tracks: Vec::new(),
            files: BTreeMap::new(),
            replicas: Vec::new(),
            warnings: Vec::new(),
            checksum: String::new(),
        };
        // Written beside, then renamed in, as the installer does (the node folder's time moves).
        let tmp = root.join(node).join(format!(".{id}.tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join(MANIFEST_FILE), m.to_bytes()).unwrap();
        std::fs::rename(&tmp, root.join(node).join(id)).unwrap();
    }

    #[test]
    fn a_new_id_is_seen_at_once_a_removal_within_the_recheck() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/catalog-tests");
        let root = dir.join(format!("t{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let topo = Topology::default_single_host();
        let node = topo.nodes().next().unwrap().to_string();
        std::fs::create_dir_all(root.join(&node)).unwrap();
        let c = Catalog::new(&root, &topo);
        assert!(c.get("a").is_none());
        put(&root, &node, "a");
        // Unknown ids always re-check: an install is served by the next request.
        assert!(c.get("a").is_some(), "a fresh install is not seen");
        std::fs::remove_dir_all(root.join(&node).join("a")).unwrap();
        let t0 = Instant::now();
        let mut gone_after = None;
        while t0.elapsed() < RECHECK * 20 {
            if c.get("a").is_none() {
                gone_after = Some(t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let gone_after = gone_after.expect("a removal is never seen");
        assert!(gone_after < RECHECK * 10, "{gone_after:?}");
        // The catalog listing always re-checks.
        put(&root, &node, "b");
        assert!(c.all().contains_key("b"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
