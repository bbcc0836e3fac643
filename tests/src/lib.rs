//! Helpers for Sluice's end-to-end tests.
//!
//! The tests in `tests/` run the real binaries (`install-content`, `streamer`, `storage-node`) on
//! the fixtures of `media-fixtures` and judge what they wrote and serve with independent
//! references: ffprobe and ffmpeg for the media, real players (ffmpeg, GStreamer, VLC) and a tiny
//! HTTP client of our own against the servers, a few lines of our own TS parsing for byte
//! offsets, and byte-for-byte snapshots of the store for atomicity. Nothing here mocks the thing
//! under test.
//!
//! - [`bin_path`]: where the `install-content`, `streamer` and `storage-node` binaries are (built
//!   on demand when missing or stale).
//! - [`process`]: running a child process with a time limit and capturing its output.
//! - [`ffprobe`]: the ffprobe/ffmpeg queries the tests use as the reference.
//! - [`snapshot`]: a store folder as (relative path → bytes) plus its folders, and a readable
//!   diff.
//! - [`store`]: finding an installed copy in a store (`STORE/*/ID/manifest.json`).
//! - [`tmpfs`]: a tmpfs of an exact size in a private mount namespace, for full-disk tests.
//! - [`ts`]: reading one TS packet and its PES header at a byte offset.
//! - [`hls`]: reading an HLS playlist's segments (`#EXTINF`, `#EXT-X-BYTERANGE`, URI).
//! - [`server`]: a server binary (`streamer`, `storage-node`) running for one test: ready line
//!   with its address, bounded life, stopped by its id.
//! - [`http_client`]: a tiny HTTP/1.1 client over `TcpStream` that judges framing byte by byte.
//! - [`prometheus`]: reading a `/metrics` page into samples.
//! - [`ranges`]: random single byte ranges and the bytes a correct 206 carries.
//! - [`report`]: collecting every failed check of a test before failing it, so one run names
//!   every problem instead of the first.

pub mod bin_path;
pub mod catalog;
pub mod ffprobe;
pub mod hls;
pub mod http_client;
pub mod process;
pub mod prometheus;
pub mod ranges;
pub mod report;
pub mod rtsp_client;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod tmpfs;
pub mod ts;
pub mod vlc;
