//! Helpers for Sluice's end-to-end tests.
//!
//! The tests in `tests/` run the real `install-content` binary on the fixtures of
//! `media-fixtures` and judge what it wrote with independent references: ffprobe and ffmpeg for
//! the media, a few lines of our own TS parsing for byte offsets, and byte-for-byte snapshots of
//! the store for atomicity. Nothing here mocks the thing under test.
//!
//! - [`bin_path`]: where the `install-content` binary is (built on demand when missing or stale).
//! - [`process`]: running a child process with a time limit and capturing its output.
//! - [`ffprobe`]: the ffprobe/ffmpeg queries the tests use as the reference.
//! - [`snapshot`]: a store folder as (relative path → bytes) plus its folders, and a readable diff.
//! - [`store`]: finding an installed copy in a store (`STORE/*/ID/manifest.json`).
//! - [`ts`]: reading one TS packet and its PES header at a byte offset.
//! - [`hls`]: reading an HLS playlist's segments (`#EXTINF`, `#EXT-X-BYTERANGE`, URI).
//! - [`report`]: collecting every failed check of a test before failing it, so one run names
//!   every problem instead of the first.

pub mod bin_path;
pub mod ffprobe;
pub mod hls;
pub mod process;
pub mod report;
pub mod snapshot;
pub mod store;
pub mod ts;
