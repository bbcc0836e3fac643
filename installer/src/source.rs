//! Opening a source file: map it into memory and recognise its container from its first bytes.
//!
//! The media parsers are sans-IO and take the whole file as a slice; a read-only mapping gives
//! them that without reading gigabytes up front (only touched pages are read).

use crate::{InstallError, Result};
use memmap2::Mmap;
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Mpegts,
    Matroska,
    Avi,
    /// Something ffprobe may know (FLV, MPEG-PS, …); only ffmpeg reads these.
    Other,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mpegts => "mpegts",
            Container::Matroska => "matroska/webm",
            Container::Avi => "avi",
            Container::Other => "other",
        }
    }
}

pub struct Source {
    pub path: PathBuf,
    pub map: Mmap,
    pub container: Container,
}

impl Source {
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

fn looks_like_ts(b: &[u8]) -> bool {
    [188usize, 192, 204].iter().any(|&stride| {
        (0..stride.min(b.len())).any(|start| {
            let n = (b.len().saturating_sub(start) / stride).min(5);
            n >= 2 && (0..n).all(|k| b[start + k * stride] == 0x47)
        })
    })
}

/// Recognise a container from the first bytes. `None` when it is nothing we or ffmpeg read.
pub fn detect(head: &[u8]) -> Option<Container> {
    if media::mp4::looks_like_mp4(head) {
        Some(Container::Mp4)
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(Container::Matroska)
    } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"AVI " {
        Some(Container::Avi)
    } else if looks_like_ts(&head[..head.len().min(188 * 8)]) {
        Some(Container::Mpegts)
    } else if head.starts_with(b"FLV") || head.starts_with(&[0, 0, 1, 0xBA]) {
        Some(Container::Other)
    } else {
        None
    }
}

pub fn open(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|e| InstallError::io(path, e))?;
    let meta = file.metadata().map_err(|e| InstallError::io(path, e))?;
    if !meta.is_file() {
        return Err(InstallError::Unsupported(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(InstallError::Empty { path: path.into() });
    }
    // SAFETY: the mapping is read-only and private to this process; a source truncated while we
    // read it is outside what an installer can defend against (same as any reader of the file).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| InstallError::io(path, e))?;
    let container = detect(&map[..map.len().min(64 * 1024)]).ok_or_else(|| {
        InstallError::media(
            path,
            media::Error::Unrecognised(
                "not MP4, MPEG-TS, Matroska/WebM or AVI (no known signature in the first bytes)"
                    .into(),
            ),
        )
    })?;
    Ok(Source {
        path: path.into(),
        map,
        container,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_signatures() {
        let mut ts = vec![0u8; 188 * 3];
        for k in 0..3 {
            ts[k * 188] = 0x47;
        }
        assert_eq!(detect(&ts), Some(Container::Mpegts));
        assert_eq!(detect(b"\x1A\x45\xDF\xA3rest"), Some(Container::Matroska));
        assert_eq!(detect(b"RIFF\0\0\0\0AVI LIST"), Some(Container::Avi));
        assert_eq!(detect(b"hello, this is text"), None);
    }
}
