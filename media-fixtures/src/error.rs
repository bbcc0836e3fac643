//! The one error type of this crate.
//!
//! Every variant names what a developer needs to act on: the missing tool and how to get it, the
//! fixture whose recipe failed together with ffmpeg's own last words, or the file an I/O step hit.

use std::path::PathBuf;

/// Why a fixture could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// `ffmpeg` or `ffprobe` is not on `PATH`.
    #[error(
        "{tool} not found on PATH: run scripts/test (it installs ffmpeg) or apt-get install ffmpeg"
    )]
    ToolMissing {
        /// The program that was looked for.
        tool: String,
    },

    /// A tool ran but did not succeed.
    #[error("{tool} failed while making {fixture} ({status}): {stderr}")]
    ToolFailed {
        /// The program that ran.
        tool: String,
        /// The fixture being made.
        fixture: &'static str,
        /// The exit status as the OS reported it.
        status: String,
        /// The tail of the tool's stderr.
        stderr: String,
    },

    /// Reading or writing a file (or starting a process) failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot write".
        action: &'static str,
        /// The file or program involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A byte-level edit could not find the structure it edits (the source file is not what the
    /// recipe expects, e.g. ffmpeg changed its output layout).
    #[error("cannot derive {fixture} from {source_name}: {reason}")]
    Derive {
        /// The fixture being made.
        fixture: &'static str,
        /// The fixture it is derived from.
        source_name: &'static str,
        /// What was missing or wrong.
        reason: String,
    },
}

impl FixtureError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        FixtureError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
