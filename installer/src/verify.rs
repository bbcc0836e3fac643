//! Verification of an installed content, used before an install commits and by `verify ID`.
//!
//! It re-reads everything from disk: the manifest (version, checksum), each file's size and
//! CRC-32, the index (version, checksum), then rebuilds the index by scanning the content TS and
//! requires it to equal the stored one exactly, and regenerates the media and I-frame playlists
//! from the index and requires them to match the files.

use crate::info::{
    CONTENT_TS, IFRAME_PLAYLIST, INDEX_FILE, MANIFEST_FILE, MEDIA_PLAYLIST, Manifest, crc_hex,
};
use crate::store::Store;
use crate::{InstallError, Result};
use media::hls;
use media::index::{Index, scan_ts};
use std::fs;
use std::path::Path;

/// Check one content folder; returns the checks that passed, or the first failure.
pub fn verify_dir(dir: &Path, id: &str) -> std::result::Result<Vec<String>, String> {
    let mut ok = Vec::new();
    let mpath = dir.join(MANIFEST_FILE);
    let mbytes = fs::read(&mpath).map_err(|e| format!("{}: {e}", mpath.display()))?;
    let manifest = Manifest::parse(&mbytes, &mpath).map_err(|e| e.to_string())?;
    if manifest.id != id {
        return Err(format!("manifest names id {:?}", manifest.id));
    }
    ok.push(format!(
        "manifest v{} checksum {}",
        manifest.version, manifest.checksum
    ));
    // The index first: a version or checksum it refuses is the clearer message.
    let ipath = dir.join(INDEX_FILE);
    let ibytes = fs::read(&ipath).map_err(|e| format!("{}: {e}", ipath.display()))?;
    let index = Index::parse(&ibytes).map_err(|e| format!("{}: {e}", ipath.display()))?;
    ok.push(format!(
        "index v{} checksum ok, {} keyframes",
        media::index::VERSION,
        index.entries.len()
    ));
    let ts_path = dir.join(CONTENT_TS);
    let ts_file = fs::File::open(&ts_path).map_err(|e| format!("{}: {e}", ts_path.display()))?;
    // SAFETY: read-only private mapping of a file in the store that nothing else writes.
    let ts = unsafe { memmap2::Mmap::map(&ts_file) }
        .map_err(|e| format!("{}: {e}", ts_path.display()))?;
    for (name, info) in &manifest.files {
        let p = dir.join(name);
        let crc = if name == CONTENT_TS {
            crc_hex(&ts)
        } else {
            crc_hex(&fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
        };
        let size = fs::metadata(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .len();
        if size != info.size {
            return Err(format!("{name}: {size} bytes, manifest says {}", info.size));
        }
        if crc != info.crc32 {
            return Err(format!(
                "{name}: CRC-32 {crc}, manifest says {}",
                info.crc32
            ));
        }
    }
    for needed in [CONTENT_TS, INDEX_FILE, MEDIA_PLAYLIST, IFRAME_PLAYLIST] {
        if !manifest.files.contains_key(needed) {
            return Err(format!("manifest does not list {needed}"));
        }
    }
    ok.push(format!(
        "{} files: sizes and CRC-32 match",
        manifest.files.len()
    ));
    let (scanned, summary) = scan_ts(&ts).map_err(|e| format!("{CONTENT_TS}: {e}"))?;
    let same = scanned.entries == index.entries
        && scanned.audio == index.audio
        && scanned.flags == index.flags
        && scanned.video_pid == index.video_pid
        && scanned.pcr_pid == index.pcr_pid
        && scanned.first_pts == index.first_pts
        && scanned.content_size == index.content_size;
    if !same {
        let first_diff = index
            .entries
            .iter()
            .zip(&scanned.entries)
            .position(|(a, b)| a != b)
            .map_or(String::new(), |i| {
                format!(
                    " (first difference at keyframe {i}: stored {:?}, content {:?})",
                    index.entries[i], scanned.entries[i]
                )
            });
        return Err(format!(
            "index does not match the content: stored {} keyframes/{} audio points, content has {}/{}{first_diff}",
            index.entries.len(),
            index.audio.len(),
            scanned.entries.len(),
            scanned.audio.len()
        ));
    }
    if manifest.keyframes != index.entries.len() as u64 {
        return Err(format!(
            "manifest says {} keyframes, index has {}",
            manifest.keyframes,
            index.entries.len()
        ));
    }
    ok.push(format!(
        "content scanned: {} packets, {} video frames, index matches",
        summary.packets, summary.video_frames
    ));
    for (name, expect) in [
        (MEDIA_PLAYLIST, hls::media_playlist(&index, CONTENT_TS)),
        (IFRAME_PLAYLIST, hls::iframe_playlist(&index, CONTENT_TS)),
    ] {
        let got = fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if got != expect {
            return Err(format!("{name} does not match the index"));
        }
    }
    ok.push("playlists match the index".into());
    Ok(ok)
}

/// Verify every copy of `id` in the store, and that every replica its manifest names exists.
/// Errors on the first bad or missing copy.
pub fn verify(store: &Store, id: &str) -> Result<Vec<(String, Vec<String>)>> {
    crate::store::check_id(id)?;
    let copies = store.locate(id);
    if copies.is_empty() {
        return Err(InstallError::NotFound(id.into()));
    }
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for (node, path) in &copies {
        match verify_dir(path, id) {
            Ok(checks) => out.push((node.clone(), checks)),
            Err(reason) => {
                return Err(InstallError::Verify {
                    id: id.into(),
                    node: node.clone(),
                    reason: format!(
                        "{reason} (install-content repair {id} restores it from a good copy)"
                    ),
                });
            }
        }
        if expected.is_empty()
            && let Ok(m) = fs::read(path.join(MANIFEST_FILE))
                .map_err(|e| e.to_string())
                .and_then(|b| Manifest::parse(&b, path).map_err(|e| e.to_string()))
        {
            expected = m.replicas;
        }
    }
    for r in &expected {
        if !copies.iter().any(|(node, _)| *node == r.node) {
            return Err(InstallError::Verify {
                id: id.into(),
                node: r.node.clone(),
                reason: format!(
                    "replica on {} ({}) is missing (install-content repair {id} restores it)",
                    r.node, r.host
                ),
            });
        }
    }
    Ok(out)
}

/// Restore every missing or damaged replica of `id` from a good copy. Returns the nodes repaired.
pub fn repair(store: &Store, id: &str) -> Result<Vec<String>> {
    crate::store::check_id(id)?;
    let copies = store.locate(id);
    if copies.is_empty() {
        return Err(InstallError::NotFound(id.into()));
    }
    let Some((good_node, good)) = copies.iter().find(|(_, p)| verify_dir(p, id).is_ok()) else {
        return Err(InstallError::Verify {
            id: id.into(),
            node: copies
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(","),
            reason: "no good copy left to repair from: install the content again".into(),
        });
    };
    let mpath = good.join(MANIFEST_FILE);
    let bytes = fs::read(&mpath).map_err(|e| InstallError::io(&mpath, e))?;
    let manifest = Manifest::parse(&bytes, &mpath)?;
    let mut expected: Vec<String> = manifest.replicas.iter().map(|r| r.node.clone()).collect();
    if expected.is_empty() {
        expected.push(good_node.clone());
    }
    // Damaged copies anywhere are replaced too.
    for (node, _) in &copies {
        if !expected.contains(node) {
            expected.push(node.clone());
        }
    }
    let mut repaired = Vec::new();
    for node in expected {
        let path = store.root.join(&node).join(id);
        if path.join(MANIFEST_FILE).is_file() && verify_dir(&path, id).is_ok() {
            continue;
        }
        let staged = store.stage_copy(good, id, "repair")?;
        let checked = verify_dir(&staged, id).map_err(|reason| InstallError::Verify {
            id: id.into(),
            node: node.clone(),
            reason,
        });
        let placed = checked.and_then(|_| {
            if path.exists() {
                store.discard(&path, id)?;
            }
            store.commit(&staged, &node, id)
        });
        if let Err(e) = placed {
            let _ = fs::remove_dir_all(&staged);
            return Err(e);
        }
        repaired.push(node);
    }
    Ok(repaired)
}
