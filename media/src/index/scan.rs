//! Building an index by scanning a finished content TS.
//!
//! The installer builds the index from what its muxer reports; `verify` and the indexing
//! benchmark rebuild it from the bytes with this scanner, and the two must agree exactly. The
//! scanner reads the layout our muxer writes (188-byte packets, PSI sections in one packet), so
//! it can stay a single allocation-free pass at memory speed; anything else is a precise error.

use super::{
    AUDIO_SYNC_INTERVAL_90K, AudioSync, Entry, FLAG_HAS_VIDEO, FLAG_OPEN_GOP,
    FLAG_PS_EVERY_KEYFRAME, FrameType, Index,
};
use crate::codec::video::scan_access_unit;
use crate::model::Codec;
use crate::time::Unwrapper;
use crate::ts::packet::{PACKET_LEN, PID_PAT, Packet};
use crate::ts::pes::PesHeader;
use crate::ts::psi::{Pat, Pmt};
use crate::{Error, Result};

/// Bytes of a video PES we look at to find its first slice.
const SCAN_LIMIT: usize = 8192;

/// Facts the scan found besides the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub packets: u64,
    pub video_frames: u64,
    /// Largest PTS seen on any stream (unwrapped).
    pub max_pts: u64,
}

struct Pending {
    entry: Option<Entry>,
    pes_header_len: usize,
    payload: u64,
    head: Vec<u8>,
    scanned: bool,
    last_end: u64,
}

fn video_codec(stream_type: u8) -> Option<Codec> {
    match stream_type {
        0x1B => Some(Codec::H264),
        0x24 => Some(Codec::H265),
        _ => None,
    }
}

/// Scan a content TS written by our muxer and build its index (duration left 0: the caller
/// knows it from the source).
pub fn scan_ts(data: &[u8]) -> Result<(Index, ScanSummary)> {
    if !data.len().is_multiple_of(PACKET_LEN) {
        return Err(Error::invalid(
            "content TS",
            data.len() as u64,
            "size is not a multiple of 188 bytes",
        ));
    }
    let mut idx = Index {
        content_size: data.len() as u64,
        ..Index::default()
    };
    let mut sum = ScanSummary::default();
    let mut pmt_pid = None;
    let mut video: Option<(u16, Codec)> = None;
    let mut audio_pids: Vec<(u16, Unwrapper, Option<u64>)> = Vec::new();
    let mut vclock = Unwrapper::default();
    let mut last_pat = None;
    let mut first_pts: Option<u64> = None;
    let mut cur: Option<Pending> = None;
    let mut ps_everywhere = true;
    let mut open_gop = false;

    let finish = |p: Pending, idx: &mut Index, ps_everywhere: &mut bool, open_gop: &mut bool| {
        if let Some(mut e) = p.entry
            && p.scanned
        {
            {
                e.ts_len = (p.last_end - e.rap_offset) as u32;
                e.frame_size = p.payload.saturating_sub(p.pes_header_len as u64) as u32;
                *ps_everywhere &= e.parameter_sets;
                *open_gop |= e.frame_type == FrameType::Cra;
                idx.entries.push(e);
            }
        }
    };

    for (i, chunk) in data.chunks_exact(PACKET_LEN).enumerate() {
        let off = (i * PACKET_LEN) as u64;
        let p = Packet::parse(chunk, off)?;
        sum.packets += 1;
        if p.pid == PID_PAT {
            if p.pusi {
                let sec = p.section();
                let pat = Pat::parse(sec).map_err(|e| Error::invalid("PAT", off, e.to_string()))?;
                pmt_pid = pat.programs.first().map(|&(_, pid)| pid);
                last_pat = Some(off);
            }
            continue;
        }
        if Some(p.pid) == pmt_pid {
            if p.pusi && video.is_none() && audio_pids.is_empty() {
                let sec = p.section();
                let pmt = Pmt::parse(sec).map_err(|e| Error::invalid("PMT", off, e.to_string()))?;
                idx.pcr_pid = pmt.pcr_pid;
                for s in &pmt.streams {
                    match video_codec(s.stream_type) {
                        Some(c) if video.is_none() => video = Some((s.pid, c)),
                        Some(_) => {}
                        None => audio_pids.push((s.pid, Unwrapper::default(), None)),
                    }
                }
                if let Some((pid, _)) = video {
                    idx.video_pid = pid;
                    idx.flags |= FLAG_HAS_VIDEO;
                }
            }
            continue;
        }
        if let Some((vpid, codec)) = &video
            && p.pid == *vpid
        {
            {
                if !p.has_payload() {
                    // PCR-only packets carry no part of any frame.
                    continue;
                }
                if p.pusi {
                    if let Some(prev) = cur.take() {
                        finish(prev, &mut idx, &mut ps_everywhere, &mut open_gop);
                    }
                    let h = PesHeader::parse(p.payload, off)?;
                    let pts = h
                        .pts
                        .ok_or_else(|| Error::invalid("video PES", off, "no PTS"))?;
                    let pts = vclock.unwrap(pts).max(0) as u64;
                    first_pts = Some(first_pts.map_or(pts, |f| f.min(pts)));
                    sum.max_pts = sum.max_pts.max(pts);
                    sum.video_frames += 1;
                    let rap = match last_pat {
                        Some(pat) if pat + 2 * PACKET_LEN as u64 == off => pat,
                        _ => off,
                    };
                    cur = Some(Pending {
                        entry: Some(Entry {
                            pts,
                            pcr: p.pcr().unwrap_or(0),
                            offset: off,
                            rap_offset: rap,
                            ts_len: 0,
                            frame_size: 0,
                            frame_type: FrameType::Idr,
                            parameter_sets: false,
                        }),
                        pes_header_len: h.header_len,
                        payload: 0,
                        head: Vec::new(),
                        scanned: false,
                        last_end: off,
                    });
                }
                if let Some(c) = cur.as_mut() {
                    c.payload += p.payload.len() as u64;
                    c.last_end = off + PACKET_LEN as u64;
                    if !c.scanned && c.entry.is_some() {
                        let skip = if p.pusi {
                            c.pes_header_len.min(p.payload.len())
                        } else {
                            0
                        };
                        c.head.extend_from_slice(&p.payload[skip..]);
                        match scan_access_unit(codec, &c.head) {
                            Some(s) if s.keyframe => {
                                c.scanned = true;
                                if let Some(e) = c.entry.as_mut() {
                                    e.parameter_sets = s.parameter_sets;
                                    e.frame_type = if s.open_gop {
                                        FrameType::Cra
                                    } else {
                                        FrameType::Idr
                                    };
                                }
                                c.head = Vec::new();
                            }
                            Some(_) => c.entry = None,
                            None if c.head.len() > SCAN_LIMIT => c.entry = None,
                            None => {}
                        }
                    }
                }
                continue;
            }
        }
        if p.pusi
            && let Some((pid, clock, last)) = audio_pids.iter_mut().find(|(pid, ..)| *pid == p.pid)
        {
            {
                let h = PesHeader::parse(p.payload, off)?;
                if let Some(raw) = h.pts {
                    let pts = clock.unwrap(raw).max(0) as u64;
                    first_pts = Some(first_pts.map_or(pts, |f| f.min(pts)));
                    sum.max_pts = sum.max_pts.max(pts);
                    if last.is_none_or(|l| pts >= l.saturating_add(AUDIO_SYNC_INTERVAL_90K)) {
                        *last = Some(pts);
                        idx.audio.push(AudioSync {
                            pts,
                            offset: off,
                            pid: *pid,
                        });
                    }
                }
            }
        }
    }
    if let Some(prev) = cur.take() {
        finish(prev, &mut idx, &mut ps_everywhere, &mut open_gop);
    }
    if pmt_pid.is_none() {
        return Err(Error::invalid("content TS", 0, "no PAT found"));
    }
    if ps_everywhere && !idx.entries.is_empty() {
        idx.flags |= FLAG_PS_EVERY_KEYFRAME;
    }
    if open_gop {
        idx.flags |= FLAG_OPEN_GOP;
    }
    idx.first_pts = first_pts.unwrap_or(0);
    Ok((idx, sum))
}
