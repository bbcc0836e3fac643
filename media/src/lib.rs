//! Sans-IO media formats for Sluice.
//!
//! Everything in this crate works on byte slices handed to it and returns values or a precise
//! [`Error`]; it never opens files, spawns processes or touches a clock. That keeps every parser
//! fuzzable (see `fuzz/`) and lets the installer and the streamer decide how bytes are fetched
//! (mmap, io_uring, sockets).
//!
//! - [`model`]: the track and frame vocabulary shared by readers and writers.
//! - [`ts`]: MPEG-TS reading (resync, PSI, PES, PCR) and writing (our own muxer state).
//! - [`mp4`]: MP4 reading on `mp4-atom` boxes with our own sample tables.
//! - [`codec`]: H.264/H.265 NAL helpers and AAC/ADTS.
//! - [`index`]: the versioned, checksummed content index used for seek and trick play.
//! - [`hls`]: HLS playlist writing (byte-range media playlist, I-frame playlist, master).

pub mod codec;
pub mod error;
pub mod hls;
pub mod index;
pub mod model;
pub mod mp4;
pub mod time;
pub mod ts;

pub use error::{Error, Result};
