//! The one error type of the `media` crate.
//!
//! Each variant carries what a user needs to act on it: which format, which box or PID, at what
//! byte offset. Parsers never panic on input-derived data; they return one of these.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input ended before a structure was complete.
    #[error("{what}: truncated at byte {offset} (needed {needed} more bytes)")]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
    },
    /// A structure is present but its contents are impossible.
    #[error("{what} at byte {offset}: {reason}")]
    Invalid {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    /// The input is not in any format we read.
    #[error("unrecognised input: {0}")]
    Unrecognised(String),
    /// MP4 structure problems reported by the box codec or by our sample tables.
    #[error("mp4: {0}")]
    Mp4(String),
    /// A codec or feature we deliberately do not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A trick-play speed we do not serve (RTSP `Scale`): not finite, or slower than 2x.
    #[error("trick play: scale {scale} is not served (need a finite speed with |scale| >= 2)")]
    TrickScale { scale: String },
    /// Index file problems: magic, version, checksum, layout.
    #[error("index: {0}")]
    Index(String),
}

impl Error {
    pub fn invalid(what: &'static str, offset: u64, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            offset,
            reason: reason.into(),
        }
    }
}
