//! The cache under `target/fixtures`: generate once, atomically, then reuse.
//!
//! A fixture is written to a temporary name in the destination folder and renamed into place,
//! so readers see either no file or a whole one. Next to it, `.recipes/<name>` holds the recipe
//! key the file was made from; a different key means the recipe changed and the file is remade.
//! Threads of one process serialise per fixture (one generates, the others then find it cached);
//! separate processes may both generate, and since the output is deterministic the last rename
//! simply replaces a file with identical bytes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::recipe::{self, Recipe};
use crate::{Fixture, FixtureError, fixtures_dir, require_tool};

static LOCKS: [Mutex<()>; Fixture::ALL.len()] = [const { Mutex::new(()) }; Fixture::ALL.len()];
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn cached_path(f: Fixture) -> Result<PathBuf, FixtureError> {
    let dir = fixtures_dir();
    let path = dir.join(f.name());
    let stamp = dir.join(".recipes").join(f.name());
    let key = recipe::key(f);

    let index = Fixture::ALL.iter().position(|x| *x == f).unwrap_or(0);
    // A panic while generating poisons the lock; the cache is still consistent (renames are
    // atomic), so carry on.
    let _guard = LOCKS[index].lock().unwrap_or_else(|e| e.into_inner());

    let fresh = path.is_file() && fs::read_to_string(&stamp).is_ok_and(|k| k == key);
    if !fresh {
        make_atomically(f, &path)?;
        write_atomically(&stamp, key.as_bytes())?;
    }
    Ok(path)
}

/// A temporary name in `dest`'s folder, unique across threads and processes.
fn tmp_for(dest: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map_or_else(|| "fixture".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

fn create_parent(dest: &Path) -> Result<(), FixtureError> {
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|e| FixtureError::io("cannot create folder", dir, e))
        }
        _ => Ok(()),
    }
}

fn rename_into_place(
    tmp: &Path,
    dest: &Path,
    made: Result<(), FixtureError>,
) -> Result<(), FixtureError> {
    let result = made.and_then(|()| {
        fs::rename(tmp, dest).map_err(|e| FixtureError::io("cannot rename into place", dest, e))
    });
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), FixtureError> {
    create_parent(dest)?;
    let tmp = tmp_for(dest);
    let made = fs::write(&tmp, bytes).map_err(|e| FixtureError::io("cannot write", &tmp, e));
    rename_into_place(&tmp, dest, made)
}

pub(crate) fn make_atomically(f: Fixture, dest: &Path) -> Result<(), FixtureError> {
    match recipe::recipe(f) {
        Recipe::Bytes(bytes) => write_atomically(dest, &bytes),
        Recipe::Derived(from, edit) => {
            let src_path = from.path()?;
            let src =
                fs::read(&src_path).map_err(|e| FixtureError::io("cannot read", &src_path, e))?;
            let out = edit.apply(&src).map_err(|reason| FixtureError::Derive {
                fixture: f.name(),
                source_name: from.name(),
                reason,
            })?;
            write_atomically(dest, &out)
        }
        Recipe::Ffmpeg(args) => {
            let ffmpeg = require_tool("ffmpeg")?;
            create_parent(dest)?;
            let tmp = tmp_for(dest);
            let made = run_ffmpeg(&ffmpeg, &args, &tmp, f.name());
            rename_into_place(&tmp, dest, made)
        }
    }
}

fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[String],
    out: &Path,
    fixture: &'static str,
) -> Result<(), FixtureError> {
    let output = Command::new(ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .map_err(|e| FixtureError::io("cannot run", ffmpeg, e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.trim_end().lines().rev().take(5).collect();
    Err(FixtureError::ToolFailed {
        tool: "ffmpeg".into(),
        fixture,
        status: output.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}
