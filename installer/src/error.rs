//! The installer's one error type. Every message is one line a user can act on: it names the
//! file, the track or codec, and the fix where there is one.

use std::path::PathBuf;
use thiserror::Error;

pub type Result<T, E = InstallError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum InstallError {
    /// Split out of `Io` so the one error line says what to do: a bare "No space left on
    /// device (os error 28)" reads like a fault of the named file (issue 7, item 5).
    #[error(
        "the disk is full (ENOSPC, no space left on device) writing {path}: free space on the store's disk and run again"
    )]
    DiskFull {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    /// An I/O error on `path`; a full disk (ENOSPC) becomes [`InstallError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            InstallError::DiskFull { path, source }
        } else {
            InstallError::Io { path, source }
        }
    }

    pub fn media(path: impl Into<PathBuf>, source: media::Error) -> Self {
        InstallError::Media {
            path: path.into(),
            source,
        }
    }
}
