//! Trick play (RTSP `Scale` fast-forward and rewind), sans-IO.
//!
//! Why this shape: at speed `s` a player cannot take `s` times the bitrate, and it cannot decode
//! anything but keyframes when frames are skipped, so the classic VOD answer (live555's
//! `.tsx`-driven trick mode) is to send keyframes only, chosen from the index, with their
//! timestamps rewritten so the output looks like an ordinary stream playing at normal speed in
//! which content time runs `s` times faster (or backwards). Two pieces do this, both free of I/O
//! so the streamer decides how bytes are fetched and paced:
//!
//! - [`TrickPlan`] walks the index from the current position in either direction and says
//!   which keyframe to send and with what output PTS: `out_start + |pts - from| / |s|`. It skips
//!   keyframes that would come less than [`MIN_TRICK_GAP_90K`] after the previous one, so at
//!   high speeds the output stays at most 8 keyframes per second and its bitrate bounded,
//!   instead of growing with the speed.
//! - [`TrickWriter`] turns the bytes of each chosen keyframe span (`[rap_offset, rap_offset +
//!   ts_len)`: PAT, PMT, the keyframe's packets) into one continuous video-only TS: audio and
//!   other PIDs dropped (they cannot play at speed), the PMT rewritten to list only the video
//!   stream, every PTS/DTS shifted to the planned output time (mod 2^33, the wire width) and
//!   every PCR by the same amount, continuity counters renumbered per PID so the joins are
//!   invisible to a demuxer. Timestamps are continuous by construction, so no
//!   discontinuity_indicator is set (a player would otherwise reset its clock at every frame).
//!   Keyframes are at least 125 ms apart in output time, more than the 100 ms the standard
//!   allows between PCRs, so PCR-only packets fill each gap at the muxer's PCR cadence: the
//!   stream stays conformant and the streamer's PCR pacing has a clock to follow between frames.
//!   The installer puts parameter sets (SPS/PPS, VPS) in front of every keyframe, so each span
//!   decodes on its own.
//!
//! A span is validated completely before anything is appended to the output: on an error the
//! output and the writer's counters are as they were, and the caller can skip that keyframe.

use super::mux::{PCR_INTERVAL_90K, PCR_LEAD_90K, push_pcr_only_packet, push_section_packet};
use super::packet::{PACKET_LEN, PID_PAT, Packet, write_pcr};
use super::pes;
use super::psi::{Pat, Pmt};
use crate::index::Index;
use crate::time::PTS_MASK;
use crate::{Error, Result};

/// Smallest output-time step between two trick-play keyframes: at most 8 per output second.
pub const MIN_TRICK_GAP_90K: u64 = 90_000 / 8;
/// Slowest trick-play speed served; slower rates are normal playback's business.
pub const MIN_TRICK_SCALE: f64 = 2.0;
/// PCR wraps with its 33-bit base: 2^33 * 300 ticks of 27 MHz.
const PCR_WRAP: u64 = (PTS_MASK + 1) * 300;
/// Gaps between spans longer than this (a caller jumping the output clock, or going back in
/// it) are not filled with PCRs: a new timeline, not a pause to pace through.
const MAX_PCR_FILL_27M: u64 = 60 * 27_000_000;

/// One keyframe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrickStep {
    /// Index into `Index::entries`.
    pub entry: usize,
    /// 90 kHz: the PTS the frame gets in the output.
    pub out_pts: u64,
    /// The entry's PTS: where in the content this frame is (for position and `npt`).
    pub content_pts: u64,
}

/// Which keyframes to send and when, for one trick-play run.
#[derive(Debug, Clone)]
pub struct TrickPlan {
    /// The entries' PTS, copied so the plan does not borrow the index.
    pts: Vec<u64>,
    from_pts: u64,
    scale: f64,
    out_start_pts: u64,
    /// The next entry to consider; `None` once the run has ended.
    cursor: Option<usize>,
    last_out: Option<u64>,
}

impl TrickPlan {
    /// `from_pts`: content PTS where the run starts (the current position; 90 kHz, same clock as
    /// `Entry::pts`); `out_start_pts`: the PTS the first output frame would get if it sat exactly
    /// at `from_pts`; `scale`: finite, `|scale| >= 2`, negative for rewind.
    pub fn new(index: &Index, from_pts: u64, scale: f64, out_start_pts: u64) -> Result<TrickPlan> {
        if !scale.is_finite() || scale.abs() < MIN_TRICK_SCALE {
            return Err(Error::TrickScale {
                scale: scale.to_string(),
            });
        }
        let pts: Vec<u64> = index.entries.iter().map(|e| e.pts).collect();
        let cursor = if scale > 0.0 {
            let i = pts.partition_point(|&p| p < from_pts);
            (i < pts.len()).then_some(i)
        } else {
            pts.partition_point(|&p| p <= from_pts).checked_sub(1)
        };
        Ok(TrickPlan {
            pts,
            from_pts,
            scale,
            out_start_pts,
            cursor,
            last_out: None,
        })
    }

    /// The speed of this run, as asked (to echo in the RTSP `Scale` header).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    pub fn is_forward(&self) -> bool {
        self.scale > 0.0
    }
}

/// `next()` gives the next keyframe to send, or `None` once the run reached the last (forward)
/// or first (backward) entry.
impl Iterator for TrickPlan {
    type Item = TrickStep;
    fn next(&mut self) -> Option<TrickStep> {
        let forward = self.is_forward();
        loop {
            let i = self.cursor?;
            self.cursor = if forward {
                i.checked_add(1).filter(|&n| n < self.pts.len())
            } else {
                i.checked_sub(1)
            };
            let Some(&pts) = self.pts.get(i) else {
                self.cursor = None;
                return None;
            };
            // The index is in stream order; a keyframe out of PTS order is skipped, not sent.
            if (forward && pts < self.from_pts) || (!forward && pts > self.from_pts) {
                continue;
            }
            let steps = (pts.abs_diff(self.from_pts) as f64 / self.scale.abs()).round() as u64;
            let out_pts = self.out_start_pts.saturating_add(steps);
            if self
                .last_out
                .is_some_and(|l| out_pts < l.saturating_add(MIN_TRICK_GAP_90K))
            {
                continue;
            }
            self.last_out = Some(out_pts);
            return Some(TrickStep {
                entry: i,
                out_pts,
                content_pts: pts,
            });
        }
    }
}

/// Rewrites the TS bytes of chosen keyframe spans into one continuous video-only trick stream.
#[derive(Debug, Clone)]
pub struct TrickWriter {
    video_pid: u16,
    pcr_pid: u16,
    /// The PMT PID and the PAT and video-only PMT sections we write, from the last span that
    /// carried them.
    pmt_pid: Option<u16>,
    pat: Option<Vec<u8>>,
    pmt: Option<Vec<u8>>,
    /// The next continuity counter per PID written so far.
    cc: Vec<(u16, u8)>,
    /// The last PCR written (27 MHz, mod 2^33 * 300).
    last_pcr: Option<u64>,
}

/// Where a kept packet sits in the staging buffer and whether it carries a payload.
struct Kept {
    at: usize,
    pid: u16,
    payload: bool,
}

fn span_error(offset: u64, reason: impl Into<String>) -> Error {
    Error::invalid("trick span", offset, reason)
}

impl TrickWriter {
    /// `video_pid` and `pcr_pid` from the index header (`Index::video_pid` / `pcr_pid`).
    pub fn new(video_pid: u16, pcr_pid: u16) -> TrickWriter {
        TrickWriter {
            video_pid,
            pcr_pid,
            pmt_pid: None,
            pat: None,
            pmt: None,
            cc: Vec::new(),
            last_pcr: None,
        }
    }

    /// The counter the next payload-carrying packet on `pid` gets; advances it.
    fn take_cc(&mut self, pid: u16) -> u8 {
        if let Some((_, c)) = self.cc.iter_mut().find(|(p, _)| *p == pid) {
            let cc = *c;
            *c = (cc + 1) & 0x0F;
            cc
        } else {
            self.cc.push((pid, 1));
            0
        }
    }

    /// The counter a packet without payload on `pid` repeats: the last one written.
    fn last_cc(&self, pid: u16) -> u8 {
        let next = self
            .cc
            .iter()
            .find(|(p, _)| *p == pid)
            .map_or(0, |&(_, c)| c);
        next.wrapping_sub(1) & 0x0F
    }

    /// Parse the PMT section of a span and keep only the video stream.
    fn video_only_pmt(&self, section: &[u8], offset: u64) -> Result<Vec<u8>> {
        let pmt = Pmt::parse(section).map_err(|e| span_error(offset, format!("PMT: {e}")))?;
        let video = pmt
            .streams
            .into_iter()
            .find(|s| s.pid == self.video_pid)
            .ok_or_else(|| {
                span_error(
                    offset,
                    format!("the PMT does not list the video PID {:#x}", self.video_pid),
                )
            })?;
        Ok(Pmt {
            program_number: pmt.program_number,
            pcr_pid: self.pcr_pid,
            streams: vec![video],
        }
        .to_section())
    }

    /// `span`: the bytes `[rap_offset, rap_offset + ts_len)` of one entry (188-byte packets).
    /// `entry_pts`: `Entry::pts` of that keyframe; `out_pts`: `TrickStep::out_pts`.
    ///
    /// Appends to `out` a PAT, a PMT listing only the video stream, and the video-PID packets
    /// of the span (PCR-only packets on the PCR PID kept, everything else dropped), with PTS/DTS
    /// shifted so the keyframe's PTS reads `out_pts` (mod 2^33) and PCRs shifted alike,
    /// continuity counters continuous across spans. When no PCR comes before the keyframe's
    /// first packet, a PCR-only packet with PCR = `out_pts - PCR_LEAD_90K` goes first. Returns
    /// the number of packets appended; on error nothing is appended.
    pub fn push_span(
        &mut self,
        span: &[u8],
        entry_pts: u64,
        out_pts: u64,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        if span.is_empty() || !span.len().is_multiple_of(PACKET_LEN) {
            return Err(span_error(
                span.len() as u64,
                format!(
                    "{} bytes is not a whole, non-zero number of 188-byte packets",
                    span.len()
                ),
            ));
        }
        // Written PTS = (entry_pts + delta) mod 2^33 = out_pts mod 2^33; 2^33 divides 2^64, so
        // wrapping arithmetic then masking is exact even when entry_pts is past the 33-bit wrap.
        let delta = out_pts.wrapping_sub(entry_pts) & PTS_MASK;
        let mut pmt_pid = self.pmt_pid;
        let mut pat = None;
        let mut pmt = None;
        let mut staged: Vec<u8> = Vec::with_capacity(span.len());
        let mut kept: Vec<Kept> = Vec::new();
        let mut keyframe_at = None;
        let mut pcr_before_keyframe = false;
        let (mut first_pcr, mut span_last_pcr) = (None, None);

        for (i, raw) in span.chunks_exact(PACKET_LEN).enumerate() {
            let off = (i * PACKET_LEN) as u64;
            let p = Packet::parse(raw, off)?;
            if p.pid == PID_PAT {
                if p.pusi {
                    let parsed = Pat::parse(p.section())
                        .map_err(|e| span_error(off, format!("PAT: {e}")))?;
                    let &(program, pid) = parsed
                        .programs
                        .first()
                        .ok_or_else(|| span_error(off, "the PAT lists no program"))?;
                    pmt_pid = Some(pid);
                    pat = Some(
                        Pat {
                            transport_stream_id: parsed.transport_stream_id,
                            programs: vec![(program, pid)],
                        }
                        .to_section(),
                    );
                }
                continue;
            }
            if Some(p.pid) == pmt_pid {
                if p.pusi {
                    pmt = Some(self.video_only_pmt(p.section(), off)?);
                }
                continue;
            }
            let payload = raw[3] & 0x10 != 0;
            let is_video = p.pid == self.video_pid;
            let pcr_only = p.pid == self.pcr_pid && !payload && p.pcr().is_some();
            // Video packets before the keyframe's PES start belong to an earlier frame.
            let video_in_frame = is_video && (keyframe_at.is_some() || p.pusi);
            if !(video_in_frame || pcr_only) || raw[3] & 0x30 == 0 {
                continue;
            }
            if is_video && p.scrambling != 0 {
                return Err(Error::Unsupported(format!(
                    "trick play of scrambled video (PID {:#x}, span byte {off})",
                    p.pid
                )));
            }
            let at = staged.len();
            staged.extend_from_slice(&raw[..PACKET_LEN]);
            let pkt = &mut staged[at..];
            if let Some(a) = p.adaptation {
                if raw[4] > 0 {
                    pkt[5] &= !0x80; // discontinuity_indicator: timestamps stay continuous
                }
                if let Some(pcr) = a.pcr {
                    let pcr = (pcr + delta * 300) % PCR_WRAP;
                    write_pcr(pcr, &mut pkt[6..12]);
                    pcr_before_keyframe |= keyframe_at.is_none();
                    first_pcr.get_or_insert(pcr);
                    span_last_pcr = Some(pcr);
                }
            }
            if is_video && p.pusi && payload {
                let header_at = PACKET_LEN - p.payload.len();
                let h = pes::shift_timestamps(&mut pkt[header_at..], delta, off)?;
                if h.pts.is_none() {
                    return Err(span_error(off, "video PES without a PTS"));
                }
                keyframe_at.get_or_insert(at);
            }
            kept.push(Kept {
                at,
                pid: p.pid,
                payload,
            });
        }
        if keyframe_at.is_none() {
            return Err(span_error(
                0,
                format!("no video PES starts on PID {:#x}", self.video_pid),
            ));
        }
        let (Some(pmt_pid), Some(pat), Some(pmt)) = (
            pmt_pid,
            pat.or_else(|| self.pat.clone()),
            pmt.or_else(|| self.pmt.clone()),
        ) else {
            return Err(span_error(
                0,
                "no PAT and PMT in this span and none in an earlier one",
            ));
        };
        for (what, section) in [("PAT", &pat), ("PMT", &pmt)] {
            if section.len() > PACKET_LEN - 5 {
                return Err(Error::Unsupported(format!(
                    "trick play: a {what} section of {} bytes does not fit one packet",
                    section.len()
                )));
            }
        }

        let inserted_pcr = (!pcr_before_keyframe)
            .then(|| (out_pts.saturating_sub(PCR_LEAD_90K.unsigned_abs()) & PTS_MASK) * 300);
        // The span's first PCR: inserted (it goes first) or the span's own.
        let Some(span_first_pcr) = inserted_pcr.or(first_pcr) else {
            return Err(span_error(0, "no PCR in the span and none inserted"));
        };

        // Valid: commit.
        let start = out.len();
        out.reserve(staged.len() + 3 * PACKET_LEN);
        self.fill_pcr_gap(span_first_pcr, out);
        let cc = self.take_cc(PID_PAT);
        push_section_packet(PID_PAT, cc, &pat, out);
        let cc = self.take_cc(pmt_pid);
        push_section_packet(pmt_pid, cc, &pmt, out);
        if let Some(pcr) = inserted_pcr {
            push_pcr_only_packet(self.pcr_pid, self.last_cc(self.pcr_pid), pcr, out);
        }
        for k in &kept {
            let cc = if k.payload {
                self.take_cc(k.pid)
            } else {
                self.last_cc(k.pid)
            };
            let at = out.len();
            out.extend_from_slice(&staged[k.at..k.at + PACKET_LEN]);
            out[at + 3] = (out[at + 3] & 0xF0) | cc;
        }
        self.pmt_pid = Some(pmt_pid);
        self.pat = Some(pat);
        self.pmt = Some(pmt);
        self.last_pcr = span_last_pcr.or(inserted_pcr);
        Ok((out.len() - start) / PACKET_LEN)
    }

    /// PCR-only packets every `PCR_INTERVAL_90K` from the last PCR written up to (not
    /// including) `next_pcr`, so no two PCRs are further apart than that.
    fn fill_pcr_gap(&mut self, next_pcr: u64, out: &mut Vec<u8>) {
        let Some(last) = self.last_pcr else { return };
        let gap = (next_pcr + PCR_WRAP - last) % PCR_WRAP;
        if gap > MAX_PCR_FILL_27M {
            return;
        }
        let step = PCR_INTERVAL_90K.unsigned_abs() * 300;
        let mut t = step;
        while t < gap {
            let cc = self.last_cc(self.pcr_pid);
            push_pcr_only_packet(self.pcr_pid, cc, (last + t) % PCR_WRAP, out);
            t += step;
        }
    }
}

#[cfg(test)]
mod tests;
