//! The content installer behind `install-content`.
//!
//! An install is a pipeline: [`analyse`] reads the source (MP4 and MPEG-TS with our own parsers,
//! anything else through ffprobe) into a report with a per-track plan ([`plan`]: pass, remux or
//! transcode, each with its reason); [`transcode`] runs ffmpeg only for what our TS cannot carry;
//! [`remux`] writes the content TS with our muxer and builds the index from what it wrote;
//! [`info`] writes the manifest and the HLS playlists; [`store`] stages everything in a folder
//! inside the store, verifies it ([`verify`]) and renames it into place, so a failed or
//! interrupted install leaves the store as it was.

pub mod access;
pub mod analyse;
pub mod error;
pub mod info;
pub mod install;
pub mod plan;
pub mod progress;
pub mod remux;
pub mod source;
pub mod store;
pub mod transcode;
pub mod verify;

pub use error::{InstallError, Result};
