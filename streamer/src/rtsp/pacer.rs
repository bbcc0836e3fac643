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

use bytes::Bytes;
use media::ts::packet::{PACKET_LEN, SYNC, read_pcr};
use rtsp_proto::rtp::TS_PER_RTP;
use std::collections::VecDeque;

/// One RTP payload's worth of TS packets.
pub const PAYLOAD_LEN: usize = TS_PER_RTP * PACKET_LEN;
/// A PCR step larger than this is a discontinuity, not time passing.
pub const MAX_PCR_STEP_NS: u64 = 2_000_000_000;
/// Without any PCR, give up waiting for one after this much data and send at the last rate.
const NO_PCR_LIMIT: usize = 512 * 1024;
/// PCR modulus: 33-bit base times 300.
const PCR_WRAP: u64 = (1u64 << 33) * 300;
/// Bytes of a TS packet the PCR scan looks at (header, adaptation field length and flags, PCR).
const PCR_END: usize = 12;

/// A payload ready to send: its bytes (shared with the chunk they came from, no copy; a payload
/// that straddles two chunks is two parts, the second otherwise empty), when it is due (ns on
/// the stream clock), and where it starts in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub parts: [Bytes; 2],
    pub due_ns: u64,
    /// Stream position of the payload's first byte.
    pub pos: u64,
}

impl Payload {
    pub fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why chunks and not one contiguous buffer: payloads are handed out as slices of the chunks
/// the storage reads filled, so a packet's bytes are never copied in this process (the kernel
/// copies them once, from the `iovec`s of the send). A contiguous buffer had to be compacted
/// (the pending bytes moved down) and every payload copied into its packet: with 600 ms of
/// read-ahead that was two to three copies of every byte, a tenth of the server's CPU.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Pushed bytes not yet handed out (the first chunk possibly partly handed out already).
    chunks: VecDeque<Bytes>,
    /// Absolute stream position of `chunks[0]`'s first byte.
    base: u64,
    /// Absolute position of the next byte to hand out.
    head: u64,
    /// Absolute position up to which packets were scanned for PCRs (a multiple of 188 from
    /// the position given to [`Pacer::reset_at`]).
    scanned: u64,
    /// Absolute position just past the last byte pushed.
    end: u64,
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
        *self = Pacer {
            base: pos,
            head: pos,
            scanned: pos,
            end: pos,
            ..Pacer::default()
        };
    }

    /// Stream position of the next byte to hand out (after any payload handed out).
    pub fn position(&self) -> u64 {
        self.head
    }

    /// Append TS bytes (whole packets; a trailing partial packet waits for the rest). The
    /// payloads handed out share `ts`'s memory: give an owned copy, not a pooled buffer.
    pub fn push(&mut self, ts: Bytes) {
        if ts.is_empty() {
            return;
        }
        self.end += ts.len() as u64;
        self.chunks.push_back(ts);
        self.scan();
    }

    /// No more data will come: what is left goes out, the last payload possibly short.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    pub fn is_finished(&self) -> bool {
        self.eof && self.head >= self.end
    }

    /// Bytes pushed and not yet handed out.
    pub fn pending(&self) -> usize {
        (self.end - self.head) as usize
    }

    /// Copies the bytes at `pos..pos + out.len()` (all pushed and not dropped) into `out`.
    /// The scan asks for positions near the end, so the chunk holding `pos` is looked for from
    /// the back (one step, usually, whatever the read-ahead held).
    fn copy_at(&self, pos: u64, out: &mut [u8]) {
        let mut start = self.end;
        let mut first = self.chunks.len();
        while first > 0 && start > pos {
            first -= 1;
            start -= self.chunks[first].len() as u64;
        }
        let mut at = (pos - start) as usize;
        let mut done = 0;
        for c in self.chunks.range(first..) {
            let n = (c.len() - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&c[at..at + n]);
            done += n;
            at = 0;
            if done == out.len() {
                return;
            }
        }
    }

    fn scan(&mut self) {
        let mut head = [0u8; PCR_END];
        while self.scanned + PACKET_LEN as u64 <= self.end {
            let pos = self.scanned;
            self.scanned += PACKET_LEN as u64;
            if pos < self.base {
                // Already handed out and dropped (bytes pushed after the end was given away):
                // nothing to pace by any more.
                continue;
            }
            self.copy_at(pos, &mut head);
            let p = &head;
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

    /// Takes `len` bytes from `head` as at most two slices of the chunks, and drops the
    /// chunks wholly handed out.
    fn take(&mut self, len: usize) -> [Bytes; 2] {
        let mut parts = [Bytes::new(), Bytes::new()];
        let mut want = len;
        let mut i = 0;
        while want > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let skip = (self.head - self.base) as usize;
            let n = (front.len() - skip).min(want);
            let piece = front.slice(skip..skip + n);
            if i < 2 {
                parts[i] = piece;
            } else {
                // Only with chunks shorter than a payload (never pushed by the player, whose
                // reads are far larger): join the extra piece, copying.
                let mut joined = Vec::with_capacity(parts[1].len() + n);
                joined.extend_from_slice(&parts[1]);
                joined.extend_from_slice(&piece);
                parts[1] = Bytes::from(joined);
            }
            i += 1;
            want -= n;
            self.head += n as u64;
            if skip + n == front.len() {
                self.base += front.len() as u64;
                self.chunks.pop_front();
            }
        }
        parts
    }

    /// The next payload, or `None` when more data is needed to know when it is due (or all
    /// is sent).
    pub fn next_payload(&mut self) -> Option<Payload> {
        let left = (self.end - self.head) as usize;
        let whole = left - left % PACKET_LEN;
        let len = if whole >= PAYLOAD_LEN {
            PAYLOAD_LEN
        } else if self.eof && left > 0 {
            left
        } else {
            return None;
        };
        let pos = self.head;
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
        let parts = self.take(len);
        Some(Payload {
            parts,
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
        p.push(stream(3, 1_000_000, 270_000).into());
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
        whole.push(s.clone().into());
        whole.finish();
        let want: Vec<u64> = drain(&mut whole).iter().map(|x| x.due_ns).collect();
        for cut in [1, 187, 188, 1316, 1317, 3000] {
            let mut p = Pacer::new();
            let mut got = Vec::new();
            for piece in s.chunks(cut) {
                p.push(Bytes::copy_from_slice(piece));
                got.extend(drain(&mut p).iter().map(|x| x.due_ns));
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
        p.push(stream(4, PCR_WRAP - 270_000, 270_000).into());
        // A jump back by an hour: no time added, then 10 ms steps again.
        p.push(stream(2, 5, 270_000).into());
        p.finish();
        let due: Vec<u64> = drain(&mut p).iter().map(|x| x.due_ns).collect();
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "{due:?}");
        assert_eq!(*due.last().unwrap(), 40_000_000);
    }

    #[test]
    fn payloads_are_seven_packets_and_bytes_survive() {
        let s = stream(3, 0, 270_000);
        // Pushed in pieces of every awkward size: payloads straddle them, bytes survive.
        for cut in [100, 187, 1316, 5000, s.len()] {
            let mut p = Pacer::new();
            for piece in s.chunks(cut) {
                p.push(Bytes::copy_from_slice(piece));
            }
            p.finish();
            let mut out = Vec::new();
            while let Some(x) = p.next_payload() {
                assert!(x.len() == PAYLOAD_LEN || p.is_finished(), "cut {cut}");
                assert_eq!(x.pos, out.len() as u64);
                out.extend_from_slice(&x.parts[0]);
                out.extend_from_slice(&x.parts[1]);
            }
            assert_eq!(out, s, "cut {cut}");
        }
        // Garbage without PCRs still drains at end of stream, never hangs.
        let mut g = Pacer::new();
        g.push(Bytes::from(vec![0u8; 1000]));
        g.finish();
        assert_eq!(drain(&mut g).iter().map(Payload::len).sum::<usize>(), 1000);
        // Bytes pushed after a partial last packet went out: no panic, they go out too.
        g.push(Bytes::from(s[..PAYLOAD_LEN].to_vec()));
        assert_eq!(
            drain(&mut g).iter().map(Payload::len).sum::<usize>(),
            PAYLOAD_LEN
        );
    }
}
