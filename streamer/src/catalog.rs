//! What is installed where: the manifests on the storage nodes, re-read when the store changes
//! (an install or removal renames a folder, which changes the node folder's modification time).

use installer::info::{MANIFEST_FILE, Manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
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

pub struct Catalog {
    root: PathBuf,
    nodes: Vec<String>,
    state: RwLock<Snapshot>,
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
        };
        c.refresh();
        c
    }

    /// Re-scan if any node folder changed since the last scan.
    pub fn refresh(&self) {
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

    pub fn get(&self, id: &str) -> Option<Arc<Content>> {
        self.refresh();
        self.state.read().ok()?.1.get(id).cloned()
    }

    pub fn all(&self) -> Arc<BTreeMap<String, Arc<Content>>> {
        self.refresh();
        self.state.read().map(|s| s.1.clone()).unwrap_or_default()
    }
}
