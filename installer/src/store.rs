//! The store: a folder an operator can read.
//!
//! ```text
//! STORE/store.json          the topology the store was created with (hosts and virtual nodes)
//! STORE/NODE/ID/            one installed content on one virtual node:
//!     content.ts index.sidx manifest.json index.m3u8 media.m3u8 iframes.m3u8
//! STORE/.staging-ID-PID/    an install in progress (renamed into place when verified)
//! ```
//!
//! The first install into an empty folder records the default topology (one physical host with
//! two virtual nodes). A content goes to the node that wins rendezvous hashing over the nodes;
//! replication over hosts comes with the storage-node work.

use crate::info::{MANIFEST_FILE, Manifest, ReplicaInfo};
use crate::{InstallError, Result};
use std::fs;
use std::path::{Path, PathBuf};

pub const STORE_FILE: &str = "store.json";
const STAGING_PREFIX: &str = ".staging-";

pub use storage_device_sim::topology::Topology;

/// The replicas of a content, in order (main, sub, backups): weighted rendezvous hashing over
/// physical hosts, so two copies never share a host (see `storage_device_sim::placement`).
pub fn placement(topology: &Topology, id: &str, replicas: usize) -> Result<Vec<ReplicaInfo>> {
    let placed = storage_device_sim::placement::place(topology, id, replicas)
        .map_err(|e| InstallError::Unsupported(format!("placement of {id}: {e}")))?;
    Ok(placed
        .into_iter()
        .map(|r| ReplicaInfo {
            host: r.host,
            node: r.node,
        })
        .collect())
}

/// Content ids become folder names and URL path segments: keep them plain.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InstallError::BadId(id.into()))
    }
}

/// An id from a file name: its stem, with anything outside the allowed set replaced by `_`.
pub fn id_from_path(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("content");
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    while id.starts_with(['.', '-']) {
        id.remove(0);
    }
    if id.is_empty() { "content".into() } else { id }
}

pub struct Store {
    pub root: PathBuf,
    pub topology: Topology,
    /// Held while the store is being created and a staging folder made (see `open_or_create`).
    lock: Option<fs::File>,
}

/// What `Store::open_or_create` made, so a failed install can take it back.
#[derive(Debug, Default)]
pub struct Created {
    pub root: bool,
    pub store_file: bool,
}

/// An exclusive `flock` on a folder, released when the file is dropped.
pub(crate) fn lock_dir(dir: &Path) -> Result<fs::File> {
    let f = io(dir, fs::File::open(dir))?;
    io(dir, f.lock())?;
    Ok(f)
}

/// Undo the creation of a store by a failed install: only when nothing else lives in it now
/// (a concurrent install's staging folder or content keeps it), under the store lock.
pub fn rollback_creation(root: &Path, created: &Created) {
    if !created.root && !created.store_file {
        return;
    }
    let Ok(_lock) = lock_dir(root) else { return };
    let Ok(rd) = fs::read_dir(root) else { return };
    let others = rd.flatten().any(|e| e.file_name() != STORE_FILE);
    if others {
        return;
    }
    let _ = fs::remove_file(root.join(STORE_FILE));
    if created.root {
        let _ = fs::remove_dir(root);
    }
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| InstallError::io(path, e))
}

pub fn fsync_dir(path: &Path) -> Result<()> {
    io(path, fs::File::open(path).and_then(|d| d.sync_all()))
}

impl Store {
    /// Open an existing store.
    pub fn open(root: &Path) -> Result<Store> {
        let file = root.join(STORE_FILE);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(InstallError::Store {
                    path: root.into(),
                    reason: "no store here (store.json missing): install something first".into(),
                });
            }
            Err(e) => return Err(InstallError::io(&file, e)),
        };
        let topology = Topology::from_json(&bytes).map_err(|e| InstallError::Store {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        Ok(Store {
            root: root.into(),
            topology,
            lock: None,
        })
    }

    /// Open the store, creating it with the default topology when the folder is new or empty.
    ///
    /// Creation happens under an exclusive `flock` on the store folder, which the returned store
    /// keeps until [`Store::unlock`]: the caller creates its staging folder first, so a
    /// concurrent install that fails and rolls back (see [`rollback_creation`]) sees the store
    /// in use and leaves it alone.
    pub fn open_or_create(root: &Path, created: &mut Created) -> Result<Store> {
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            io(parent, fs::create_dir_all(parent))?;
        }
        match fs::create_dir(root) {
            Ok(()) => created.root = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(InstallError::io(root, e)),
        }
        let lock = lock_dir(root)?;
        let file = root.join(STORE_FILE);
        if file.exists() {
            let mut s = Store::open(root)?;
            s.lock = Some(lock);
            return Ok(s);
        }
        let foreign = io(root, fs::read_dir(root))?
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with(STAGING_PREFIX));
        if foreign {
            return Err(InstallError::Store {
                path: root.into(),
                reason: "folder is not empty and has no store.json: not a Sluice store".into(),
            });
        }
        let topology = Topology::default_single_host();
        let tmp = root.join(format!(".store.json.tmp-{}", std::process::id()));
        let body = topology.to_json();
        let written = fs::write(&tmp, &body)
            .and_then(|()| fs::File::open(&tmp).and_then(|f| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &file));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(InstallError::io(&file, e));
        }
        created.store_file = true;
        fsync_dir(root)?;
        Ok(Store {
            root: root.into(),
            topology,
            lock: Some(lock),
        })
    }

    /// Release the creation lock (after the staging folder exists).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    pub fn placement(&self, id: &str, replicas: usize) -> Result<Vec<ReplicaInfo>> {
        placement(&self.topology, id, replicas)
    }

    /// Where every installed copy of `id` is.
    pub fn locate(&self, id: &str) -> Vec<(String, PathBuf)> {
        self.topology
            .nodes()
            .map(|n| (n.to_string(), self.root.join(n).join(id)))
            .filter(|(_, p)| p.join(MANIFEST_FILE).is_file())
            .collect()
    }

    /// A new staging folder for `id`; stale ones of dead installs are removed first.
    pub fn staging(&self, id: &str) -> Result<PathBuf> {
        self.sweep_stale_staging();
        let dir = self
            .root
            .join(format!("{STAGING_PREFIX}{id}-{}", std::process::id()));
        if dir.exists() {
            io(&dir, fs::remove_dir_all(&dir))?;
        }
        io(&dir, fs::create_dir(&dir))?;
        Ok(dir)
    }

    /// Staging folders whose process is gone are leftovers of an interrupted install.
    fn sweep_stale_staging(&self) {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
                continue;
            };
            let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Move a verified staging folder into place as `NODE/ID`, durably.
    pub fn commit(&self, staging: &Path, node: &str, id: &str) -> Result<PathBuf> {
        let node_dir = self.root.join(node);
        // Concurrent installs into a new store race to create the node folder: whoever loses
        // finds it made, which is just as good (checking first and then creating failed the
        // loser with EEXIST).
        match fs::create_dir(&node_dir) {
            Ok(()) => fsync_dir(&self.root)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(InstallError::io(&node_dir, e)),
        }
        let target = node_dir.join(id);
        if target.exists() {
            return Err(InstallError::Exists(id.into()));
        }
        match fs::rename(staging, &target) {
            Ok(()) => {}
            // Another install of the same id won the race.
            Err(e) if matches!(e.raw_os_error(), Some(39) | Some(17)) => {
                return Err(InstallError::Exists(id.into()));
            }
            Err(e) => return Err(InstallError::io(&target, e)),
        }
        fsync_dir(&node_dir)?;
        fsync_dir(&self.root)?;
        Ok(target)
    }

    /// Commit one verified staging folder per replica (same order), all or none: if one rename
    /// fails, the copies already in place are taken back out and removed.
    pub fn commit_all(&self, staged: &[(PathBuf, String)], id: &str) -> Result<Vec<PathBuf>> {
        let mut done: Vec<PathBuf> = Vec::new();
        for (dir, node) in staged {
            match self.commit(dir, node, id) {
                Ok(p) => done.push(p),
                Err(e) => {
                    for p in &done {
                        let _ = self.discard(p, id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Take a content folder out of the tree atomically (rename into a staging name), then
    /// delete it.
    pub fn discard(&self, path: &Path, id: &str) -> Result<()> {
        // The pid comes last so a sweep after a crash recognises it (see `sweep_stale_staging`).
        let node = path
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let trash = self.root.join(format!(
            "{STAGING_PREFIX}{id}-removed-{node}-{}",
            std::process::id()
        ));
        io(path, fs::rename(path, &trash))?;
        if let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
        io(&trash, fs::remove_dir_all(&trash))
    }

    /// A copy of a content folder as a new staging folder (files copied and fsynced).
    pub fn stage_copy(&self, from: &Path, id: &str, tag: &str) -> Result<PathBuf> {
        let dir = self
            .root
            .join(format!("{STAGING_PREFIX}{id}-{tag}-{}", std::process::id()));
        if dir.exists() {
            io(&dir, fs::remove_dir_all(&dir))?;
        }
        io(&dir, fs::create_dir(&dir))?;
        let copy = || -> std::io::Result<()> {
            for e in fs::read_dir(from)? {
                let e = e?;
                if e.file_type()?.is_file() {
                    let to = dir.join(e.file_name());
                    fs::copy(e.path(), &to)?;
                    fs::File::open(&to)?.sync_all()?;
                }
            }
            Ok(())
        };
        if let Err(e) = copy() {
            let _ = fs::remove_dir_all(&dir);
            return Err(InstallError::io(from, e));
        }
        fsync_dir(&dir)?;
        Ok(dir)
    }

    /// Every installed content with its manifest (or the error reading it).
    pub fn list(&self) -> Vec<(String, String, Result<Manifest>)> {
        let mut out = Vec::new();
        for node in self.topology.nodes() {
            let Ok(rd) = fs::read_dir(self.root.join(node)) else {
                continue;
            };
            let mut ids: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            ids.sort();
            for id in ids {
                let path = self.root.join(node).join(&id).join(MANIFEST_FILE);
                let m = fs::read(&path)
                    .map_err(|e| InstallError::io(&path, e))
                    .and_then(|b| Manifest::parse(&b, &path));
                out.push((node.to_string(), id, m));
            }
        }
        out
    }

    /// Remove every copy of `id`: each folder is first renamed away (so it vanishes atomically
    /// for readers), then deleted.
    pub fn remove(&self, id: &str) -> Result<Vec<String>> {
        check_id(id)?;
        let found = self.locate(id);
        if found.is_empty() {
            return Err(InstallError::NotFound(id.into()));
        }
        let mut nodes = Vec::new();
        for (node, path) in found {
            self.discard(&path, id)?;
            nodes.push(node);
        }
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("movie-1.hd_v2").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            id_from_path(Path::new("/a/My Movie (2).mp4")),
            "My_Movie__2_"
        );
        assert_eq!(
            id_from_path(Path::new("/a/.mp4")),
            ".mp4".trim_start_matches('.').to_string()
        );
    }

    #[test]
    fn create_open_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let mut c = Created::default();
        let s = Store::open_or_create(&root, &mut c).unwrap();
        assert!(c.root);
        let again = Store::open(&root).unwrap();
        assert_eq!(again.topology, s.topology);
        let n1 = s.placement("a", 1).unwrap();
        assert_eq!(n1, again.placement("a", 1).unwrap());
        // One host: both its nodes are used, and two copies cannot be placed.
        let spread: std::collections::HashSet<String> = (0..50)
            .map(|i| s.placement(&format!("id{i}"), 1).unwrap()[0].node.clone())
            .collect();
        assert_eq!(spread.len(), 2);
        assert!(s.placement("a", 2).is_err());
    }
}
