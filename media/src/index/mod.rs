//! The content index: the information file stream control reads to seek and to play tricks.
//!
//! Why a format of our own: the classic VOD index (live555 `.tsx`) has no header, no version, a
//! 1/256 s clock and 32-bit packet numbers. Ours is versioned and checksummed so a reader never
//! acts on a stale or damaged file, uses 90 kHz PTS and 27 MHz PCR as the stream does, 64-bit
//! byte offsets, and records for each random-access point where a clean start begins (the PAT in
//! front of the keyframe) and how many bytes the keyframe spans (for I-frame playlists and
//! trick play).
//!
//! # Layout, version 1 (all integers little-endian)
//!
//! ```text
//! header, 64 bytes
//!   0  [u8; 8]  magic "SLUICEIX"
//!   8  u16      version = 1
//!  10  u16      header length = 64
//!  12  u16      video entry size = 48
//!  14  u16      audio entry size = 24
//!  16  u32      flags: bit 0 has video, bit 1 open GOP seen, bit 2 parameter sets before every keyframe
//!  20  u16      video PID (0 when none)
//!  22  u16      PCR PID
//!  24  u32      video entry count N
//!  28  u32      audio sync point count M
//!  32  u64      content size in bytes (the TS file)
//!  40  u64      first PTS (90 kHz)
//!  48  u64      duration (90 kHz)
//!  56  u32      CRC-32 (IEEE) of the whole file with these four bytes zeroed
//!  60  u32      reserved, 0
//! N video entries (random-access points, in stream order), 48 bytes each
//!   0  u64  PTS, 90 kHz, unwrapped (monotonic across the 33-bit wrap)
//!   8  u64  PCR, 27 MHz, in force at the keyframe's first packet
//!  16  u64  byte offset of the TS packet that starts the keyframe's PES
//!  24  u64  byte offset of a clean start: the PAT before the keyframe (≤ the PES offset)
//!  32  u32  bytes from the clean start through the keyframe's last TS packet
//!  36  u32  keyframe size in elementary-stream bytes
//!  40  u8   frame type: 1 IDR/BLA (closed), 2 CRA (open GOP)
//!  41  u8   flags: bit 0 parameter sets present in front of the picture
//!  42  [u8; 6] reserved, 0
//! M audio sync points, 24 bytes each (one per audio stream at most every 500 ms)
//!   0  u64  PTS, 90 kHz, unwrapped
//!   8  u64  byte offset of the TS packet that starts the audio PES
//!  16  u16  PID
//!  18  [u8; 6] reserved, 0
//! ```

use crate::{Error, Result};

mod scan;
pub use scan::{ScanSummary, scan_ts};

pub const MAGIC: &[u8; 8] = b"SLUICEIX";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const ENTRY_LEN: usize = 48;
pub const AUDIO_ENTRY_LEN: usize = 24;
/// Audio sync points are kept at most this often per stream.
pub const AUDIO_SYNC_INTERVAL_90K: u64 = 45_000;

pub const FLAG_HAS_VIDEO: u32 = 1;
pub const FLAG_OPEN_GOP: u32 = 2;
pub const FLAG_PS_EVERY_KEYFRAME: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum FrameType {
    Idr = 1,
    Cra = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub pts: u64,
    pub pcr: u64,
    pub offset: u64,
    pub rap_offset: u64,
    pub ts_len: u32,
    pub frame_size: u32,
    pub frame_type: FrameType,
    pub parameter_sets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AudioSync {
    pub pts: u64,
    pub offset: u64,
    pub pid: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    pub flags: u32,
    pub video_pid: u16,
    pub pcr_pid: u16,
    pub content_size: u64,
    pub first_pts: u64,
    pub duration_90k: u64,
    pub entries: Vec<Entry>,
    pub audio: Vec<AudioSync>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl Index {
    /// Serialize with header and checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            HEADER_LEN + self.entries.len() * ENTRY_LEN + self.audio.len() * AUDIO_ENTRY_LEN,
        );
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b.extend_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
        b.extend_from_slice(&(AUDIO_ENTRY_LEN as u16).to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&self.video_pid.to_le_bytes());
        b.extend_from_slice(&self.pcr_pid.to_le_bytes());
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.audio.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.content_size.to_le_bytes());
        b.extend_from_slice(&self.first_pts.to_le_bytes());
        b.extend_from_slice(&self.duration_90k.to_le_bytes());
        b.extend_from_slice(&[0; 8]); // checksum, reserved
        for e in &self.entries {
            b.extend_from_slice(&e.pts.to_le_bytes());
            b.extend_from_slice(&e.pcr.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.rap_offset.to_le_bytes());
            b.extend_from_slice(&e.ts_len.to_le_bytes());
            b.extend_from_slice(&e.frame_size.to_le_bytes());
            b.push(e.frame_type as u8);
            b.push(u8::from(e.parameter_sets));
            b.extend_from_slice(&[0; 6]);
        }
        for a in &self.audio {
            b.extend_from_slice(&a.pts.to_le_bytes());
            b.extend_from_slice(&a.offset.to_le_bytes());
            b.extend_from_slice(&a.pid.to_le_bytes());
            b.extend_from_slice(&[0; 6]);
        }
        let crc = crc32fast::hash(&b);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and check an index file. Refuses unknown magic, versions and checksums.
    pub fn parse(b: &[u8]) -> Result<Index> {
        if b.len() < HEADER_LEN {
            return Err(Error::Index(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
                b.len()
            )));
        }
        if &b[0..8] != MAGIC {
            return Err(Error::Index("not a Sluice index (bad magic)".into()));
        }
        let version = u16_at(b, 8);
        if version != VERSION {
            return Err(Error::Index(format!(
                "index format version {version} is not supported (this build reads version {VERSION}); \
                 reinstall the content with this install-content"
            )));
        }
        let (hlen, elen, alen) = (
            u16_at(b, 10) as usize,
            u16_at(b, 12) as usize,
            u16_at(b, 14) as usize,
        );
        if (hlen, elen, alen) != (HEADER_LEN, ENTRY_LEN, AUDIO_ENTRY_LEN) {
            return Err(Error::Index(format!(
                "version {VERSION} header declares sizes {hlen}/{elen}/{alen}, expected {HEADER_LEN}/{ENTRY_LEN}/{AUDIO_ENTRY_LEN}"
            )));
        }
        let n = u32_at(b, 24) as u64;
        let m = u32_at(b, 28) as u64;
        let expect = HEADER_LEN as u64 + n * ENTRY_LEN as u64 + m * AUDIO_ENTRY_LEN as u64;
        if expect != b.len() as u64 {
            return Err(Error::Index(format!(
                "header promises {n} entries and {m} audio sync points ({expect} bytes) but the file has {} bytes",
                b.len()
            )));
        }
        let stored = u32_at(b, 56);
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..56]);
        h.update(&[0; 4]);
        h.update(&b[60..]);
        let actual = h.finalize();
        if stored != actual {
            return Err(Error::Index(format!(
                "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the index is damaged"
            )));
        }
        let mut entries = Vec::with_capacity(n as usize);
        let mut pos = HEADER_LEN;
        for i in 0..n {
            let e = &b[pos..pos + ENTRY_LEN];
            let frame_type = match e[40] {
                1 => FrameType::Idr,
                2 => FrameType::Cra,
                t => return Err(Error::Index(format!("entry {i}: unknown frame type {t}"))),
            };
            entries.push(Entry {
                pts: u64_at(e, 0),
                pcr: u64_at(e, 8),
                offset: u64_at(e, 16),
                rap_offset: u64_at(e, 24),
                ts_len: u32_at(e, 32),
                frame_size: u32_at(e, 36),
                frame_type,
                parameter_sets: e[41] & 1 != 0,
            });
            pos += ENTRY_LEN;
        }
        let mut audio = Vec::with_capacity(m as usize);
        for _ in 0..m {
            let e = &b[pos..pos + AUDIO_ENTRY_LEN];
            audio.push(AudioSync {
                pts: u64_at(e, 0),
                offset: u64_at(e, 8),
                pid: u16_at(e, 16),
            });
            pos += AUDIO_ENTRY_LEN;
        }
        let idx = Index {
            flags: u32_at(b, 16),
            video_pid: u16_at(b, 20),
            pcr_pid: u16_at(b, 22),
            content_size: u64_at(b, 32),
            first_pts: u64_at(b, 40),
            duration_90k: u64_at(b, 48),
            entries,
            audio,
        };
        idx.check()?;
        Ok(idx)
    }

    /// Structural checks that hold for every index we write: offsets inside the content and
    /// increasing, a clean start not after its keyframe.
    pub fn check(&self) -> Result<()> {
        let mut last = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.rap_offset > e.offset || e.offset >= self.content_size.max(1) {
                return Err(Error::Index(format!(
                    "entry {i}: offsets {}/{} outside the {}-byte content",
                    e.rap_offset, e.offset, self.content_size
                )));
            }
            if e.rap_offset + u64::from(e.ts_len) > self.content_size {
                return Err(Error::Index(format!(
                    "entry {i}: keyframe runs past the content"
                )));
            }
            if last.is_some_and(|l| e.offset <= l) {
                return Err(Error::Index(format!("entry {i}: offsets not increasing")));
            }
            last = Some(e.offset);
        }
        Ok(())
    }

    /// The random-access point at or before `pts` (90 kHz, same timeline as the entries).
    pub fn seek(&self, pts: u64) -> Option<&Entry> {
        let i = self.entries.partition_point(|e| e.pts <= pts);
        self.entries.get(i.saturating_sub(1))
    }
}

/// For tests: `n` IDR entries one second apart from PTS 90,000, 100 packets per GOP.
#[cfg(test)]
pub(crate) fn synthetic(n: u64) -> Index {
    Index {
        content_size: 188 * 100 * n,
        first_pts: 90_000,
        duration_90k: n * 90_000,
        entries: (0..n)
            .map(|i| Entry {
                pts: 90_000 + i * 90_000,
                pcr: 0,
                offset: i * 188 * 100 + 376,
                rap_offset: i * 188 * 100,
                ts_len: 188 * 10,
                frame_size: 1000,
                frame_type: FrameType::Idr,
                parameter_sets: true,
            })
            .collect(),
        ..Index::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        Index {
            flags: FLAG_HAS_VIDEO | FLAG_PS_EVERY_KEYFRAME,
            video_pid: 0x100,
            pcr_pid: 0x100,
            content_size: 188 * 100,
            first_pts: 126_000,
            duration_90k: 450_000,
            entries: vec![
                Entry {
                    pts: 126_000,
                    pcr: 63_000 * 300,
                    offset: 376,
                    rap_offset: 0,
                    ts_len: 188 * 10,
                    frame_size: 1500,
                    frame_type: FrameType::Idr,
                    parameter_sets: true,
                },
                Entry {
                    pts: 216_000,
                    pcr: 153_000 * 300,
                    offset: 188 * 52,
                    rap_offset: 188 * 50,
                    ts_len: 188 * 12,
                    frame_size: 1700,
                    frame_type: FrameType::Cra,
                    parameter_sets: true,
                },
            ],
            audio: vec![AudioSync {
                pts: 126_000,
                offset: 188 * 11,
                pid: 0x101,
            }],
        }
    }

    #[test]
    fn round_trip_and_seek() {
        let i = sample();
        let b = i.to_bytes();
        assert_eq!(b.len(), 64 + 2 * 48 + 24);
        let back = Index::parse(&b).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.seek(200_000).unwrap().pts, 126_000);
        assert_eq!(back.seek(216_000).unwrap().pts, 216_000);
        assert_eq!(back.seek(0).unwrap().pts, 126_000);
    }

    #[test]
    fn refuses_version_checksum_magic_and_size() {
        let b = sample().to_bytes();
        let mut v = b.clone();
        v[8] = 2;
        let e = Index::parse(&v).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");
        let mut c = b.clone();
        c[100] ^= 0x10;
        assert!(
            Index::parse(&c)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        let mut m = b.clone();
        m[0] = b'X';
        assert!(Index::parse(&m).unwrap_err().to_string().contains("magic"));
        assert!(Index::parse(&b[..b.len() - 1]).is_err());
        assert!(Index::parse(&b[..10]).is_err());
    }

    #[test]
    fn fuzz_regression_audio_pts_wrapping_backwards() {
        let b = include_bytes!(
            "../../../fuzz/regressions/index_reader/scan_ts-audio-pts-backward-wrap-add-overflow.ts"
        );
        let _ = scan_ts(b);
    }
}
