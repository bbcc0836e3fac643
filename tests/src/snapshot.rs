//! A store folder captured byte for byte, to prove an operation left it exactly as it was.
//!
//! The snapshot is every file (relative path → bytes, symlinks by their target) plus every
//! folder, so an empty folder or a leftover staging directory counts as a change, and a store
//! that did not exist must still not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};

/// The state of a folder tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// Nothing at that path.
    Missing,
    /// A folder: its sub-folders and files, relative to it.
    Dir {
        dirs: BTreeSet<PathBuf>,
        files: BTreeMap<PathBuf, Vec<u8>>,
    },
}

fn walk(
    root: &Path,
    rel: &Path,
    dirs: &mut BTreeSet<PathBuf>,
    files: &mut BTreeMap<PathBuf, Vec<u8>>,
) {
    let dir = root.join(rel);
    let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("snapshot: {}: {e}", dir.display()));
    for entry in rd {
        let entry = entry.unwrap_or_else(|e| panic!("snapshot: {}: {e}", dir.display()));
        let rel = rel.join(entry.file_name());
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("snapshot: {}: {e}", path.display()));
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)
                .unwrap_or_else(|e| panic!("snapshot: {}: {e}", path.display()));
            let mut bytes = b"symlink -> ".to_vec();
            bytes.extend_from_slice(target.to_string_lossy().as_bytes());
            files.insert(rel, bytes);
        } else if meta.is_dir() {
            dirs.insert(rel.clone());
            walk(root, &rel, dirs, files);
        } else {
            let bytes =
                fs::read(&path).unwrap_or_else(|e| panic!("snapshot: {}: {e}", path.display()));
            files.insert(rel, bytes);
        }
    }
}

/// Captures the tree at `root`.
pub fn take(root: &Path) -> Snapshot {
    match fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::Missing,
        Err(e) => panic!("snapshot: {}: {e}", root.display()),
        Ok(m) if !m.is_dir() => panic!("snapshot: {} is not a folder", root.display()),
        Ok(_) => {
            let (mut dirs, mut files) = (BTreeSet::new(), BTreeMap::new());
            walk(root, Path::new(""), &mut dirs, &mut files);
            Snapshot::Dir { dirs, files }
        }
    }
}

/// What changed from `before` to `after`, one line per path; empty when nothing did.
pub fn diff(before: &Snapshot, after: &Snapshot) -> String {
    let empty = (BTreeSet::new(), BTreeMap::new());
    let parts = |s: &Snapshot| match s {
        Snapshot::Missing => (empty.0.clone(), empty.1.clone()),
        Snapshot::Dir { dirs, files } => (dirs.clone(), files.clone()),
    };
    let mut out = String::new();
    match (before, after) {
        (Snapshot::Missing, Snapshot::Dir { .. }) => out.push_str("store folder was created\n"),
        (Snapshot::Dir { .. }, Snapshot::Missing) => out.push_str("store folder was deleted\n"),
        _ => {}
    }
    let (d0, f0) = parts(before);
    let (d1, f1) = parts(after);
    for d in d1.difference(&d0) {
        let _ = writeln!(out, "folder added: {}", d.display());
    }
    for d in d0.difference(&d1) {
        let _ = writeln!(out, "folder removed: {}", d.display());
    }
    for (p, b) in &f1 {
        match f0.get(p) {
            None => {
                let _ = writeln!(out, "file added: {} ({} bytes)", p.display(), b.len());
            }
            Some(a) if a != b => {
                let _ = writeln!(
                    out,
                    "file changed: {} ({} → {} bytes)",
                    p.display(),
                    a.len(),
                    b.len()
                );
            }
            Some(_) => {}
        }
    }
    for p in f0.keys().filter(|p| !f1.contains_key(*p)) {
        let _ = writeln!(out, "file removed: {}", p.display());
    }
    out
}
