//! PCR pacing, sans-IO: turns a TS byte stream into RTP payloads of seven TS packets (RFC 2250),
//! each with the time it is due on a continuous stream clock.
//!
//! Why by PCR: the PCR is the encoder's statement of when each byte should reach the decoder.
//! A payload's due time is interpolated by byte position between the PCRs around it, so the
//! stream leaves at the rate it was muxed (a large keyframe spreads over its PCR interval instead
//! of bursting). The clock is continuous: PCR deltas are accumulated, and a PCR that jumps
//! backwards or by more than [`MAX_PCR_STEP_NS`] (a discontinuity, a seek in the source, the
//! 33-bit wrap gone wrong) adds nothing, so the stream never stops or bursts for long. The
//! caller maps this clock to wall time with one anchor and re-anchors when it falls too far
//! behind; absolute due times (never relative sleeps) are what keeps long sessions drift-free.

use media::ts::packet::{PACKET_LEN, SYNC, read_pcr};
use rtsp_proto::rtp::TS_PER_RTP;
use std::collections::VecDeque;
use std::ops::Range;

/// One RTP payload's worth of TS packets.
pub const PAYLOAD_LEN: usize = TS_PER_RTP * PACKET_LEN;
/// A PCR step larger than this is a discontinuity, not time passing.
pub const MAX_PCR_STEP_NS: u64 = 2_000_000_000;
/// Without any PCR, give up waiting for one after this much data and send at the last rate.
const NO_PCR_LIMIT: usize = 512 * 1024;
/// PCR modulus: 33-bit base times 300.
const PCR_WRAP: u64 = (1u64 << 33) * 300;

/// A payload ready to send: where it is in [`Pacer::data`], and when it is due (ns on the
/// stream clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub range: Range<usize>,
    pub due_ns: u64,
    /// Stream position of the payload's first byte.
    pub pos: u64,
}

#[derive(Debug, Default)]
pub struct Pacer {
    buf: Vec<u8>,
    /// First byte of `buf` not yet handed out.
    head: usize,
    /// Bytes of `buf` already scanned for PCRs (a multiple of 188 from 0).
    scanned: usize,
    /// Absolute stream position of `buf[0]`.
    base: u64,
    /// PCR points: absolute position of the packet carrying it, and the stream clock there.
    points: VecDeque<(u64, u64)>,
    last_pcr: Option<u64>,
    clock_ns: u64,
    last_due: u64,
    eof: bool,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// Forget everything (a seek or a mode change): the clock starts again at 0 and the next
    /// byte pushed is at stream position `pos`.
    pub fn reset_at(&mut self, pos: u64) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        *self = Pacer {
            buf,
            base: pos,
            ..Pacer::default()
        };
    }

    /// Stream position of the next byte to hand out (after any payload handed out).
    pub fn position(&self) -> u64 {
        self.base + self.head as u64
    }

    /// Append TS bytes (whole packets; a trailing partial packet waits for the rest).
    pub fn push(&mut self, ts: &[u8]) {
        self.buf.extend_from_slice(ts);
        self.scan();
    }

    /// No more data will come: what is left goes out, the last payload possibly short.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    pub fn is_finished(&self) -> bool {
        self.eof && self.head >= self.buf.len()
    }

    /// Bytes handed out and still held (dropped by [`Pacer::compact`]).
    pub fn consumed(&self) -> usize {
        self.head
    }

    /// Bytes pushed and not yet handed out.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// The bytes the ranges of [`Payload`] index into (valid until [`Pacer::compact`]).
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Drop the bytes already handed out, but none at or after `keep` (the start of a payload
    /// handed out and not yet sent); ranges move down by the returned amount.
    pub fn compact(&mut self, keep: Option<usize>) -> usize {
        let shift = keep.map_or(self.head, |k| k.min(self.head));
        if shift == 0 {
            return 0;
        }
        self.buf.drain(..shift);
        self.scanned -= shift;
        self.base += shift as u64;
        self.head -= shift;
        shift
    }

    fn scan(&mut self) {
        while self.scanned + PACKET_LEN <= self.buf.len() {
            let p = &self.buf[self.scanned..self.scanned + PACKET_LEN];
            let pos = self.base + self.scanned as u64;
            self.scanned += PACKET_LEN;
            if p[0] != SYNC || p[3] & 0x20 == 0 || p[4] < 7 || p[5] & 0x10 == 0 {
                continue;
            }
            let pcr = read_pcr(&p[6..12]);
            if let Some(last) = self.last_pcr {
                let step = (pcr + PCR_WRAP - last) % PCR_WRAP;
                let ns = step * 1000 / 27;
                if ns <= MAX_PCR_STEP_NS {
                    self.clock_ns += ns;
                }
            }
            self.last_pcr = Some(pcr);
            self.points.push_back((pos, self.clock_ns));
        }
    }

    /// The next payload, or `None` when more data is needed to know when it is due (or all
    /// is sent).
    pub fn next_payload(&mut self) -> Option<Payload> {
        let left = self.buf.len() - self.head;
        let whole = left - left % PACKET_LEN;
        let len = if whole >= PAYLOAD_LEN {
            PAYLOAD_LEN
        } else if self.eof && left > 0 {
            left
        } else {
            return None;
        };
        let pos = self.base + self.head as u64;
        // Drop PCR points no longer needed: keep the last one at or before `pos`.
        while self.points.len() >= 2 && self.points[1].0 <= pos {
            self.points.pop_front();
        }
        let before = self.points.front().filter(|p| p.0 <= pos).copied();
        let after = self.points.iter().find(|p| p.0 > pos).copied();
        let due = match (before, after) {
            (Some((pa, ca)), Some((pb, cb))) => {
                ca + ((cb - ca) as u128 * (pos - pa) as u128 / (pb - pa) as u128) as u64
            }
            (None, Some((_, cb))) => cb,
            (Some((_, ca)), None) if self.eof => ca.max(self.last_due),
            (None, None) if self.eof || left >= NO_PCR_LIMIT => self.last_due,
            _ => return None,
        };
        let due = due.max(self.last_due);
        self.last_due = due;
        let range = self.head..self.head + len;
        self.head += len;
        Some(Payload {
            range,
            due_ns: due,
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::ts::packet::write_pcr;

    fn packet(pcr: Option<u64>) -> [u8; PACKET_LEN] {
        let mut p = [0xffu8; PACKET_LEN];
        p[0] = SYNC;
        p[1] = 0x01;
        p[2] = 0x00;
        match pcr {
            Some(v) => {
                p[3] = 0x30;
                p[4] = 7;
                p[5] = 0x10;
                write_pcr(v, &mut p[6..12]);
            }
            None => p[3] = 0x10,
        }
        p
    }

    /// 14 packets per PCR interval of 10 ms.
    fn stream(intervals: usize, pcr0: u64, step: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..intervals {
            v.extend_from_slice(&packet(Some((pcr0 + i as u64 * step) % PCR_WRAP)));
            for _ in 0..13 {
                v.extend_from_slice(&packet(None));
            }
        }
        v
    }

    fn drain(p: &mut Pacer) -> Vec<Payload> {
        std::iter::from_fn(|| p.next_payload()).collect()
    }

    #[test]
    fn interpolates_between_pcrs() {
        let mut p = Pacer::new();
        p.push(&stream(3, 1_000_000, 270_000));
        let got = drain(&mut p);
        // The third interval waits for a PCR after it.
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].due_ns, 0);
        assert_eq!(got[1].due_ns, 5_000_000);
        assert_eq!(got[2].due_ns, 10_000_000);
        assert_eq!(got[3].due_ns, 15_000_000);
        p.finish();
        let rest = drain(&mut p);
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|r| r.due_ns == 20_000_000));
        assert!(p.is_finished());
    }

    #[test]
    fn every_split_gives_the_same_schedule() {
        let s = stream(5, 5, 270_000);
        let mut whole = Pacer::new();
        whole.push(&s);
        whole.finish();
        let want: Vec<u64> = drain(&mut whole).iter().map(|x| x.due_ns).collect();
        for cut in [1, 187, 188, 1316, 1317, 3000] {
            let mut p = Pacer::new();
            let mut got = Vec::new();
            for piece in s.chunks(cut) {
                p.push(piece);
                got.extend(drain(&mut p).iter().map(|x| x.due_ns));
                p.compact(None);
            }
            p.finish();
            got.extend(drain(&mut p).iter().map(|x| x.due_ns));
            assert_eq!(got, want, "cut {cut}");
        }
    }

    #[test]
    fn wrap_and_discontinuity_keep_the_clock_running() {
        let mut p = Pacer::new();
        // Wraps through 2^33*300: still 10 ms steps.
        p.push(&stream(4, PCR_WRAP - 270_000, 270_000));
        // A jump back by an hour: no time added, then 10 ms steps again.
        p.push(&stream(2, 5, 270_000));
        p.finish();
        let due: Vec<u64> = drain(&mut p).iter().map(|x| x.due_ns).collect();
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "{due:?}");
        assert_eq!(*due.last().unwrap(), 40_000_000);
    }

    #[test]
    fn payloads_are_seven_packets_and_bytes_survive() {
        let s = stream(3, 0, 270_000);
        let mut p = Pacer::new();
        p.push(&s);
        p.finish();
        let mut out = Vec::new();
        while let Some(x) = p.next_payload() {
            assert!(x.range.len() == PAYLOAD_LEN || p.is_finished());
            out.extend_from_slice(&p.data()[x.range]);
        }
        assert_eq!(out, s);
        // Garbage without PCRs still drains at end of stream, never hangs.
        let mut g = Pacer::new();
        g.push(&[0u8; 1000]);
        g.finish();
        assert_eq!(
            drain(&mut g).iter().map(|x| x.range.len()).sum::<usize>(),
            1000
        );
    }
}
