//! Deterministic byte edits that turn good fixtures into damaged ones, and fixed-seed
//! pseudo-random bytes.
//!
//! Each edit checks that it finds the structure it expects (an `mdat` before the `moov`, a video
//! `mdhd`, repeated SPS/PPS) and fails with the reason otherwise, so a change in ffmpeg's output
//! layout shows up as a clear error instead of a silently different fixture.

use crate::mp4_boxes::{BoxSpan, child, children, show};
use crate::ts_es::{self, PACKET};

/// A byte edit of a source fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Truncate in the middle of the `mdat`, which must come before the `moov`.
    CutInMdat,
    /// Set the `mdhd` timescale of the video track to 0.
    ZeroVideoTimescale,
    /// Insert 1,000 bytes of garbage at a packet boundary near the middle.
    InsertGarbage,
    /// Put a 4-byte arrival timestamp before every 188-byte packet.
    To192BytePackets,
    /// Overwrite every SPS/PPS after the first ones with an SEI of the same length.
    SpsOnlyOnce,
}

impl Edit {
    pub(crate) fn apply(self, src: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Edit::CutInMdat => cut_in_mdat(src),
            Edit::ZeroVideoTimescale => zero_video_timescale(src),
            Edit::InsertGarbage => insert_garbage(src),
            Edit::To192BytePackets => to_192_byte_packets(src),
            Edit::SpsOnlyOnce => sps_only_once(src),
        }
    }
}

/// xorshift64 bytes: the same `seed` always gives the same bytes, on every platform.
pub(crate) fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn top_level(src: &[u8]) -> Result<Vec<BoxSpan>, String> {
    children(src, 0, src.len())
}

fn cut_in_mdat(src: &[u8]) -> Result<Vec<u8>, String> {
    let boxes = top_level(src)?;
    let pos = |k: &[u8; 4]| boxes.iter().position(|b| &b.kind == k);
    let (Some(mdat), Some(moov)) = (pos(b"mdat"), pos(b"moov")) else {
        return Err("needs both an mdat and a moov box".into());
    };
    if moov < mdat {
        return Err("the moov comes before the mdat; cutting would keep it".into());
    }
    let m = boxes[mdat];
    Ok(src[..m.payload + (m.end - m.payload) / 2].to_vec())
}

fn zero_video_timescale(src: &[u8]) -> Result<Vec<u8>, String> {
    let boxes = top_level(src)?;
    let moov = boxes
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or("no moov box")?;
    for trak in children(src, moov.payload, moov.end)? {
        if &trak.kind != b"trak" {
            continue;
        }
        let mdia = child(src, &trak, b"mdia")?;
        let hdlr = child(src, &mdia, b"hdlr")?;
        // hdlr: version+flags (4), pre_defined (4), handler_type (4).
        if src.get(hdlr.payload + 8..hdlr.payload + 12) != Some(b"vide".as_slice()) {
            continue;
        }
        let mdhd = child(src, &mdia, b"mdhd")?;
        // mdhd: version+flags (4), then creation and modification times (4 bytes each in
        // version 0, 8 in version 1), then the 4-byte timescale.
        let at = match src[mdhd.payload] {
            0 => mdhd.payload + 4 + 4 + 4,
            1 => mdhd.payload + 4 + 8 + 8,
            v => return Err(format!("mdhd version {v} is unknown")),
        };
        if at + 4 > mdhd.end {
            return Err(format!("{} box too short for a timescale", show(mdhd.kind)));
        }
        let mut out = src.to_vec();
        out[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        return Ok(out);
    }
    Err("no video track".into())
}

/// Garbage bytes with every 0x47 (the TS sync byte) replaced, so a reader cannot sync inside the
/// garbage and skips exactly [`crate::fixture::GARBAGE_BYTES`] bytes.
pub(crate) fn garbage() -> Vec<u8> {
    let n = usize::try_from(crate::fixture::GARBAGE_BYTES).unwrap_or(1000);
    let mut g = xorshift_bytes(0x6A7B_A6E0_0000_0003, n);
    for b in &mut g {
        if *b == 0x47 {
            *b = 0x46;
        }
    }
    g
}

fn insert_garbage(src: &[u8]) -> Result<Vec<u8>, String> {
    if !src.chunks_exact(PACKET).remainder().is_empty() || src.len() < 4 * PACKET {
        return Err(format!(
            "{} bytes is not a TS file of 188-byte packets",
            src.len()
        ));
    }
    let at = (src.len() / PACKET / 2) * PACKET;
    let mut out = Vec::with_capacity(src.len() + 1000);
    out.extend_from_slice(&src[..at]);
    out.extend_from_slice(&garbage());
    out.extend_from_slice(&src[at..]);
    Ok(out)
}

/// M2TS: each packet gets a 4-byte TP_extra_header (2 bits copy permission = 0, 30 bits arrival
/// time stamp on the 27 MHz clock). The timestamps are synthetic: a constant packet rate that
/// spreads the packets over the nominal duration.
fn to_192_byte_packets(src: &[u8]) -> Result<Vec<u8>, String> {
    if !src.chunks_exact(PACKET).remainder().is_empty() || src.is_empty() {
        return Err(format!(
            "{} bytes is not a TS file of 188-byte packets",
            src.len()
        ));
    }
    let packets = (src.len() / PACKET) as u64;
    let ticks_total = (crate::fixture::DURATION_S * 27_000_000.0) as u64;
    let per_packet = ticks_total / packets;
    let mut out = Vec::with_capacity(src.len() / PACKET * 192);
    for (i, p) in src.chunks_exact(PACKET).enumerate() {
        let ats = ((i as u64 * per_packet) & 0x3fff_ffff) as u32;
        out.extend_from_slice(&ats.to_be_bytes());
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// 16 bytes identifying our SEI (user_data_unregistered), no zero bytes.
const SEI_UUID: [u8; 16] = *b"sluice-fixtures!";
const SEI_TEXT: &[u8] = b"parameter sets removed here; ";

/// An SEI NAL unit (type 6) of exactly `len` bytes: one user_data_unregistered message whose
/// payload is our UUID and filler text. It contains no zero bytes, so no emulation prevention
/// is needed and no start code can appear inside it.
fn sei_of_len(len: usize) -> Result<Vec<u8>, String> {
    // header (1) + payload type (1) + payload size (1) + payload + rbsp trailing bits (1)
    let size = len
        .checked_sub(4)
        .filter(|s| (SEI_UUID.len()..255).contains(s))
        .ok_or_else(|| format!("an SPS/PPS of {len} bytes cannot hold an SEI"))?;
    let mut sei = vec![0x06, 0x05, size as u8];
    sei.extend_from_slice(&SEI_UUID);
    sei.extend(SEI_TEXT.iter().cycle().take(size - SEI_UUID.len()));
    sei.push(0x80);
    Ok(sei)
}

/// Keeps the first run of SPS/PPS NAL units and overwrites every later run, in place, with an
/// SEI of the same length. Same length means no TS packet, PES header or PCR moves: the file is
/// the source with a few dozen bytes per GOP changed.
fn sps_only_once(src: &[u8]) -> Result<Vec<u8>, String> {
    let (es, map) = ts_es::h264_es(src)?;
    let nals = ts_es::annex_b_nals(&es);
    let is_ps = |t: u8| t == 7 || t == 8;
    let mut out = src.to_vec();
    let mut runs = 0;
    let mut i = 0;
    while i < nals.len() {
        if !is_ps(nals[i].nal_type) {
            i += 1;
            continue;
        }
        let first = i;
        while i < nals.len() && is_ps(nals[i].nal_type) {
            i += 1;
        }
        runs += 1;
        if runs == 1 {
            continue;
        }
        let (start, end) = (nals[first].start, nals[i - 1].end);
        for (k, b) in sei_of_len(end - start)?.into_iter().enumerate() {
            out[map[start + k]] = b;
        }
    }
    if runs < 2 {
        return Err(format!(
            "expected SPS/PPS before every IDR, found {runs} run(s)"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = u32::try_from(8 + payload.len())
            .expect("small box")
            .to_be_bytes()
            .to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// moov > trak > mdia > (hdlr handler, mdhd of `version` with timescale 90000).
    fn movie(handler: &[u8; 4], version: u8) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        let times = if version == 1 { 16 } else { 8 };
        let mut mdhd = vec![version, 0, 0, 0];
        mdhd.extend(std::iter::repeat_n(0xAA, times));
        mdhd.extend_from_slice(&90_000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let mdia = [mp4_box(b"hdlr", &hdlr), mp4_box(b"mdhd", &mdhd)].concat();
        let trak = mp4_box(b"mdia", &mdia);
        mp4_box(b"moov", &mp4_box(b"trak", &trak))
    }

    #[test]
    fn xorshift_is_pinned() {
        let a = xorshift_bytes(42, 1000);
        assert_eq!(a, xorshift_bytes(42, 1000));
        assert_ne!(a, xorshift_bytes(43, 1000));
        assert_eq!(a[..8], 45_454_805_674u64.to_le_bytes());
        assert!(!garbage().contains(&0x47));
        assert_eq!(garbage().len(), 1000);
    }

    #[test]
    fn sei_has_the_asked_length_and_no_zero_bytes() {
        for len in 20..=200 {
            let sei = sei_of_len(len).expect("fits");
            assert_eq!(sei.len(), len);
            assert_eq!((sei[0], sei[1], usize::from(sei[2])), (0x06, 0x05, len - 4));
            assert_eq!(sei.last(), Some(&0x80));
            assert!(!sei.contains(&0));
        }
        assert!(sei_of_len(19).is_err());
        assert!(sei_of_len(300).is_err());
    }

    #[test]
    fn nal_spans_exclude_start_codes() {
        let es = [
            0, 0, 0, 1, 0x67, 0xAA, 0, 0, 1, 0x68, 0xBB, 0, 0, 0, 1, 0x65, 0x01,
        ];
        let nals = ts_es::annex_b_nals(&es);
        let got: Vec<(u8, usize, usize)> =
            nals.iter().map(|n| (n.nal_type, n.start, n.end)).collect();
        assert_eq!(got, [(7, 4, 6), (8, 9, 11), (5, 15, 17)]);
    }

    #[test]
    fn cut_keeps_half_the_mdat_and_needs_moov_last() {
        let ftyp = mp4_box(b"ftyp", b"isom");
        let mdat = mp4_box(b"mdat", &[7u8; 100]);
        let moov = movie(b"vide", 0);
        let file = [ftyp.clone(), mdat.clone(), moov.clone()].concat();
        let cut = Edit::CutInMdat.apply(&file).expect("cut");
        assert_eq!(cut.len(), ftyp.len() + 8 + 50);
        let faststart = [ftyp, moov, mdat].concat();
        assert!(Edit::CutInMdat.apply(&faststart).is_err());
    }

    #[test]
    fn timescale_zeroed_in_both_mdhd_versions() {
        for (version, offset_in_mdhd) in [(0u8, 20usize), (1, 28)] {
            let file = movie(b"vide", version);
            let out = Edit::ZeroVideoTimescale.apply(&file).expect("patched");
            let mdhd = file.windows(4).position(|w| w == b"mdhd").expect("mdhd") - 4;
            let at = mdhd + offset_in_mdhd;
            assert_eq!(file[at..at + 4], 90_000u32.to_be_bytes());
            assert_eq!(out[at..at + 4], [0, 0, 0, 0]);
            let changed = (0..file.len()).filter(|&i| file[i] != out[i]).count();
            assert!(changed <= 4);
        }
        assert!(Edit::ZeroVideoTimescale.apply(&movie(b"soun", 0)).is_err());
    }

    #[test]
    fn m2ts_prefixes_every_packet() {
        let mut ts = vec![0u8; 3 * PACKET];
        for p in ts.chunks_exact_mut(PACKET) {
            p[0] = 0x47;
        }
        let out = Edit::To192BytePackets.apply(&ts).expect("m2ts");
        assert_eq!(out.len(), 3 * 192);
        assert!(out.chunks_exact(192).all(|p| p[4] == 0x47));
        assert!(Edit::To192BytePackets.apply(&ts[1..]).is_err());
    }
}
