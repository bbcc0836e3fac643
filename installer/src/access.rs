//! Security levels of installed contents: `STORE/access.json`.
//!
//! Every content has a level (0, the default, is public); a viewer is served a content only
//! when the clearance their credentials give reaches its level (the streamer's `auth` module).
//! The levels live in one small file at the store's root rather than in each replica's
//! manifest: changing a level is then one atomic rename that every streamer sees at once,
//! instead of rewriting (and re-checksumming) R manifests that readers could catch half done.
//!
//! ```json
//! {"format": "sluice-access", "version": 1, "levels": {"movie": 2}}
//! ```
//!
//! Writers hold the store folder's lock while they read, change and rename the file, so
//! concurrent `add --level` and `set-level` never lose each other's changes. An install writes
//! its content's level *before* the content becomes visible: a protected content is never
//! served, even for a moment, as public.

use crate::error::{InstallError, Result};
use crate::store::{check_id, fsync_dir, lock_dir};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const ACCESS_FILE: &str = "access.json";
const FORMAT: &str = "sluice-access";
const VERSION: u32 = 1;
/// The highest level a content may have (and a viewer's highest clearance).
pub const MAX_LEVEL: u32 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    format: String,
    version: u32,
    levels: BTreeMap<String, u32>,
}

/// The levels of a store's contents. A content not listed is public (level 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    levels: BTreeMap<String, u32>,
}

impl Levels {
    /// The level of `id` (0 when none was set).
    pub fn level(&self, id: &str) -> u32 {
        self.levels.get(id).copied().unwrap_or(0)
    }

    /// Levels from the file's bytes; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Levels> {
        let bad = |reason: String| InstallError::Store {
            path: path.into(),
            reason,
        };
        let f: AccessFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if f.format != FORMAT {
            return Err(bad(format!("format {:?} is not {FORMAT:?}", f.format)));
        }
        if f.version != VERSION {
            return Err(bad(format!(
                "version {} is not one this build reads ({VERSION})",
                f.version
            )));
        }
        for (id, &l) in &f.levels {
            check_id(id).map_err(|e| bad(e.to_string()))?;
            if l > MAX_LEVEL {
                return Err(bad(format!("level {l} of {id} is above {MAX_LEVEL}")));
            }
        }
        Ok(Levels { levels: f.levels })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let f = AccessFile {
            format: FORMAT.into(),
            version: VERSION,
            levels: self.levels.clone(),
        };
        let mut v = serde_json::to_vec_pretty(&f).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Where a store keeps its levels.
pub fn path(root: &Path) -> PathBuf {
    root.join(ACCESS_FILE)
}

/// The store's levels (none when the file does not exist). A file that exists but cannot be
/// read is an error: callers must fail closed, never treat its contents as public.
pub fn read(root: &Path) -> Result<Levels> {
    let p = path(root);
    match fs::read(&p) {
        Ok(b) => Levels::parse(&b, &p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Levels::default()),
        Err(e) => Err(InstallError::io(&p, e)),
    }
}

/// Set the level of `id` (0 removes its entry); returns the level it had. Under the store
/// lock; the new file replaces the old one by rename after an fsync.
pub fn set_level(root: &Path, id: &str, level: u32) -> Result<u32> {
    check_id(id)?;
    if level > MAX_LEVEL {
        return Err(InstallError::Store {
            path: path(root),
            reason: format!("level {level} is above {MAX_LEVEL}"),
        });
    }
    let _lock = lock_dir(root)?;
    let mut levels = read(root)?;
    let was = levels.level(id);
    if was == level {
        return Ok(was);
    }
    if level == 0 {
        levels.levels.remove(id);
    } else {
        levels.levels.insert(id.to_string(), level);
    }
    let p = path(root);
    let tmp = root.join(format!(".{ACCESS_FILE}.tmp-{}", std::process::id()));
    let written = fs::write(&tmp, levels.to_bytes())
        .and_then(|()| fs::File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, &p));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(InstallError::io(&p, e));
    }
    fsync_dir(root)?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_default_to_public() {
        let dir = std::env::temp_dir().join(format!("sluice-access-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), Levels::default());
        assert_eq!(set_level(&dir, "movie", 2).unwrap(), 0);
        assert_eq!(set_level(&dir, "news", 1).unwrap(), 0);
        assert_eq!(set_level(&dir, "movie", 3).unwrap(), 2);
        let l = read(&dir).unwrap();
        assert_eq!((l.level("movie"), l.level("news"), l.level("x")), (3, 1, 0));
        assert_eq!(set_level(&dir, "news", 0).unwrap(), 1);
        assert_eq!(read(&dir).unwrap().level("news"), 0);
        assert!(set_level(&dir, "../x", 1).is_err());
        assert!(set_level(&dir, "movie", MAX_LEVEL + 1).is_err());
        // Leftovers: none besides the file.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![ACCESS_FILE]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_errors_not_public() {
        let p = Path::new("access.json");
        for bad in [
            &b"{"[..],
            br#"{"format":"x","version":1,"levels":{}}"#,
            br#"{"format":"sluice-access","version":9,"levels":{}}"#,
            br#"{"format":"sluice-access","version":1,"levels":{"../x":1}}"#,
            br#"{"format":"sluice-access","version":1,"levels":{"a":1001}}"#,
            br#"{"format":"sluice-access","version":1,"levels":{"a":-1}}"#,
        ] {
            assert!(
                Levels::parse(bad, p).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
