//! The installer's one error type. Every message is one line a user can act on: it names the
//! file, the track or codec, and the fix where there is one.

use std::path::PathBuf;
use thiserror::Error;

pub type Result<T, E = InstallError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty file")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Media {
        path: PathBuf,
        #[source]
        source: media::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "{what} needs ffmpeg, which is not on the PATH: install it (apt-get install ffmpeg) and run again"
    )]
    FfmpegMissing { what: String },
    #[error("ffmpeg failed ({status}) on {path}: {stderr}")]
    Ffmpeg {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("content id {0:?} is already installed (remove it first: install-content remove {0})")]
    Exists(String),
    #[error("content id {0:?} is not installed")]
    NotFound(String),
    #[error(
        "invalid content id {0:?}: use 1-64 characters from a-z A-Z 0-9 . _ - (not starting with . or -)"
    )]
    BadId(String),
    #[error("interrupted: the install was stopped and its partial output removed")]
    Interrupted,
    #[error("store {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("verification failed for {id} on {node}: {reason}")]
    Verify {
        id: String,
        node: String,
        reason: String,
    },
}

impl InstallError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        InstallError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn media(path: impl Into<PathBuf>, source: media::Error) -> Self {
        InstallError::Media {
            path: path.into(),
            source,
        }
    }
}
