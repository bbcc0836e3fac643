//! The embedded default: a 12 s H.264/AAC clip (426x240, ~350 KB) built into the binary, so a
//! new user's first `streamer` run has something to play without ffmpeg or files of their own.

use anyhow::{Context, Result};
use std::path::Path;

pub const DEMO_ID: &str = "demo";
static DEMO_MP4: &[u8] = include_bytes!("../../media-fixtures/demo/demo.mp4");

/// Install the demo clip into `store` as `demo` (through the real installer).
pub fn install(store: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("demo.mp4");
    std::fs::write(&file, DEMO_MP4)?;
    let opts = installer::install::Options {
        id: Some(DEMO_ID.into()),
        replicas: 1,
        store: store.to_path_buf(),
        dry_run: false,
        level: 0,
    };
    let mut progress = installer::progress::Progress::Quiet;
    let r =
        installer::install::add(&file, &opts, &mut progress).context("installing the demo clip");
    let _ = std::fs::remove_dir_all(&dir);
    r.map(|_| ())
}
