//! Reproducible test media for Sluice.
//!
//! The installer and streamer are tested against real files, but video files do not belong in
//! git. So this crate holds *recipes* instead: ffmpeg command lines that synthesise short clips
//! from lavfi sources (`testsrc2` + `sine`) with deterministic encoder settings, plus byte edits
//! that turn good clips into the damaged ones an installer must refuse or repair. The first call
//! to [`Fixture::path`] makes the file under `<workspace>/target/fixtures/` (see
//! [`fixtures_dir`]); later calls return the cached file.
//!
//! Each fixture also states what a correct install should find ([`Fixture::expect`]): codecs
//! as ffprobe names them, duration, whether a transcode is needed, or the word the one-line
//! error must contain when the install has to fail.
//!
//! ```no_run
//! use media_fixtures::Fixture;
//! let path = Fixture::H264AacMoovEnd.path()?;
//! assert_eq!(Fixture::H264AacMoovEnd.expect().tracks[0].codec, "h264");
//! # Ok::<(), media_fixtures::FixtureError>(())
//! ```
//!
//! Modules: `fixture` (the set and its expectations), `recipe` (how each is made), `edits`
//! (byte edits for damaged files), `cache` (atomic generation), `mp4_boxes` and `ts_es` (the
//! little parsing the edits need).

mod cache;
mod edits;
mod error;
mod expect;
mod fixture;
mod mp4_boxes;
mod recipe;
mod ts_es;

use std::path::{Path, PathBuf};

pub use error::FixtureError;
pub use expect::{Container, DURATION_TOLERANCE_S, Expect, Track, TrackKind};
pub use fixture::{Fixture, GARBAGE_BYTES};

/// Environment variable that moves the cache folder.
pub const FIXTURES_DIR_ENV: &str = "SLUICE_FIXTURES_DIR";

/// Where fixtures are cached: `$SLUICE_FIXTURES_DIR` when set, else `<workspace>/target/fixtures`
/// (found from this crate's manifest folder at compile time, so every crate and test binary of
/// the workspace shares one cache).
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(FIXTURES_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join("fixtures")
}

/// Finds `name` (e.g. `ffmpeg`, `ffprobe`) as an executable file on `PATH`.
pub fn require_tool(name: &str) -> Result<PathBuf, FixtureError> {
    let missing = || FixtureError::ToolMissing {
        tool: name.to_owned(),
    };
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(missing)
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}
