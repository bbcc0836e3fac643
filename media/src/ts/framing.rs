//! Packets out of real-world bytes: stride detection (188, 192-byte M2TS, 204-byte with
//! Reed-Solomon parity) and resynchronisation after stray bytes or lost sync.
//!
//! Why a layer of its own: readers that assume a clean 188-byte stream stop silently at the first
//! bad sync byte, and captures, Blu-ray rips and DVB recordings are rarely clean. This iterator is
//! the hot loop of indexing (a whole mmapped file at ≥1 GB/s), so the common path is one byte
//! compare and a slice per packet: no allocation and no `Result` per packet. Anomalies are counted
//! in [`FramingStats`] instead of being returned.
//!
//! Layout per stride (the sync byte 0x47 is at the start of the 188-byte packet):
//! - 188: plain TS;
//! - 192: M2TS/BDAV, a 4-byte arrival timestamp *before* each packet (the first sync is at 4);
//! - 204: 16 bytes of Reed-Solomon parity *after* each packet.
//!
//! Byte accounting: every byte of `data` is either part of a yielded packet's stride (prefix,
//! 188 bytes, parity) or counted in [`FramingStats::skipped_bytes`] (garbage before the first
//! packet, stray bytes skipped on resync, a trailing partial packet).

use std::iter::FusedIterator;

use super::packet::{PACKET_LEN, SYNC};
use crate::{Error, Result};

/// Strides we recognise, in order of preference when a short input fits several.
pub const STRIDES: [usize; 3] = [188, 192, 204];
/// How far into the data the first sync byte is searched for.
pub const DETECT_WINDOW: usize = 16 * 1024;
/// Consecutive sync bytes at the stride required to accept a stride (fewer if the data is shorter).
pub const DETECT_PACKETS: usize = 5;
/// Sync bytes at the stride after a candidate required to accept it when resynchronising.
pub const RESYNC_CONFIRM: usize = 3;

/// Counters of what framing saw; cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramingStats {
    /// Packets yielded.
    pub packets: u64,
    /// Bytes that were not part of any yielded packet: garbage before the first packet, stray
    /// bytes skipped on resync and a trailing partial packet.
    pub skipped_bytes: u64,
    /// Times the sync byte was missing where the stride said it should be (after detection).
    pub resyncs: u64,
}

/// Iterator over the 188-byte packets of `data`, yielding `(offset of the sync byte, packet)`.
#[derive(Debug, Clone)]
pub struct Framing<'a> {
    data: &'a [u8],
    stride: usize,
    /// Bytes before the sync byte inside a stride: 4 for M2TS, else 0.
    prefix: usize,
    /// Where the next sync byte is expected.
    pos: usize,
    stats: FramingStats,
    done: bool,
}

/// Complete packets whose sync byte could sit at `p`, `p + stride`, … in `data`.
fn packets_available(len: usize, p: usize, stride: usize) -> usize {
    if len < p + PACKET_LEN {
        0
    } else {
        (len - p - PACKET_LEN) / stride + 1
    }
}

/// Whether a packet could start at `q`: the sync byte, and an adaptation_field_control other
/// than the reserved '00' (when byte 3 is in the data). The second test matters for M2TS, whose
/// 4-byte arrival timestamps change slowly: a prefix byte equal to 0x47 repeats at the stride for
/// dozens of packets, and the real sync byte 1-3 bytes later would otherwise lose to it.
#[inline]
fn plausible(data: &[u8], q: usize) -> bool {
    data[q] == SYNC && data.get(q + 3).is_none_or(|&b| b & 0x30 != 0)
}

/// The stride at which `data[p]` starts a run of plausible packets, if any.
fn stride_at(data: &[u8], p: usize) -> Option<usize> {
    STRIDES.into_iter().find(|&stride| {
        let n = packets_available(data.len(), p, stride).min(DETECT_PACKETS);
        n > 0 && (0..n).all(|k| plausible(data, p + k * stride))
    })
}

impl<'a> Framing<'a> {
    /// Detect the stride and the first packet. Fails only when there is no MPEG-TS sync pattern
    /// in the first [`DETECT_WINDOW`] bytes.
    pub fn new(data: &'a [u8]) -> Result<Framing<'a>> {
        let window = data.len().min(DETECT_WINDOW);
        let found = data[..window]
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == SYNC)
            .find_map(|(p, _)| stride_at(data, p).map(|s| (p, s)));
        let Some((first, stride)) = found else {
            return Err(Error::Unrecognised(format!(
                "no MPEG-TS sync byte pattern (0x47 repeating every 188, 192 or 204 bytes over \
                 {DETECT_PACKETS} packets) in the first {window} of {} bytes",
                data.len()
            )));
        };
        let prefix = if stride == 192 { 4 } else { 0 };
        Ok(Framing {
            data,
            stride,
            prefix,
            pos: first,
            stats: FramingStats {
                skipped_bytes: first.saturating_sub(prefix) as u64,
                ..FramingStats::default()
            },
            done: false,
        })
    }

    /// Distance between sync bytes: 188, 192 or 204.
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn stats(&self) -> FramingStats {
        self.stats
    }

    /// The input this iterator walks.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether `p` starts a plausible packet confirmed by [`RESYNC_CONFIRM`] more at the stride
    /// (confirmations past the end of the data are not required).
    fn confirmed(&self, p: usize) -> bool {
        (0..=RESYNC_CONFIRM)
            .map(|k| p + k * self.stride)
            .take_while(|&q| q < self.data.len())
            .all(|q| plausible(self.data, q))
    }

    /// Sync was lost at `self.pos`: find the next confirmed packet, or give up on the rest.
    #[cold]
    #[inline(never)]
    fn resync(&mut self) -> Option<(u64, &'a [u8])> {
        self.stats.resyncs += 1;
        let data = self.data;
        let last_start = data.len().saturating_sub(PACKET_LEN);
        let mut p = self.pos + 1;
        while p <= last_start {
            match data[p..=last_start].iter().position(|&b| b == SYNC) {
                None => break,
                Some(i) => p += i,
            }
            if self.confirmed(p) {
                self.stats.skipped_bytes += (p - self.pos) as u64;
                return Some(self.take(p));
            }
            p += 1;
        }
        self.finish();
        None
    }

    #[inline(always)]
    fn take(&mut self, p: usize) -> (u64, &'a [u8]) {
        self.pos = p + self.stride;
        self.stats.packets += 1;
        (p as u64, &self.data[p..p + PACKET_LEN])
    }

    /// End of data: what is left from where the next packet's stride would begin is skipped.
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            let start = self.pos.saturating_sub(self.prefix);
            self.stats.skipped_bytes += self.data.len().saturating_sub(start) as u64;
            self.pos = self.data.len();
        }
    }
}

impl<'a> Iterator for Framing<'a> {
    type Item = (u64, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let p = self.pos;
        if p + PACKET_LEN <= self.data.len() {
            if self.data[p] == SYNC {
                return Some(self.take(p));
            }
            return self.resync();
        }
        self.finish();
        None
    }
}

impl FusedIterator for Framing<'_> {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` packets at `stride` with PID = index and payload bytes free of 0x47. M2TS prefixes
    /// have 0x47 in their slowly changing byte 1 (the worst case); parity bytes are pseudo-random.
    pub(crate) fn synthetic(n: usize, stride: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * stride);
        for i in 0..n {
            if stride == 192 {
                out.extend_from_slice(&[0x00, 0x47, (i * 37) as u8, (i * 101 + 5) as u8]);
            }
            let mut p = [0u8; PACKET_LEN];
            p[0] = SYNC;
            p[1] = (i >> 8) as u8 & 0x1F;
            p[2] = i as u8;
            p[3] = 0x10 | (i as u8 & 0x0F);
            for (j, b) in p[4..].iter_mut().enumerate() {
                *b = ((i + j) % 0x40) as u8;
            }
            out.extend_from_slice(&p);
            if stride == 204 {
                out.extend((0..16).map(|j| ((i * 16 + j) * 73 + 11) as u8));
            }
        }
        out
    }

    fn pid_of(p: &[u8]) -> usize {
        (usize::from(p[1] & 0x1F) << 8) | usize::from(p[2])
    }

    #[test]
    fn detects_each_stride() {
        for stride in STRIDES {
            let data = synthetic(50, stride);
            let mut f = Framing::new(&data).unwrap();
            assert_eq!(f.stride(), stride);
            let prefix = if stride == 192 { 4 } else { 0 };
            let got: Vec<_> = f.by_ref().collect();
            assert_eq!(got.len(), 50);
            for (i, (off, p)) in got.iter().enumerate() {
                assert_eq!(*off as usize, i * stride + prefix);
                assert_eq!(p.len(), PACKET_LEN);
                assert_eq!(pid_of(p), i);
            }
            assert_eq!(
                f.stats(),
                FramingStats {
                    packets: 50,
                    skipped_bytes: 0,
                    resyncs: 0
                }
            );
        }
    }

    #[test]
    fn short_inputs() {
        // Fewer packets than DETECT_PACKETS: all of them must agree.
        for stride in STRIDES {
            let data = synthetic(2, stride);
            let f = Framing::new(&data).unwrap();
            assert_eq!(f.count(), 2);
        }
        let one = synthetic(1, 188);
        assert_eq!(Framing::new(&one).unwrap().count(), 1);
        assert!(Framing::new(&[]).is_err());
        assert!(Framing::new(&one[..100]).is_err());
        let e = Framing::new(&vec![0u8; 100_000]).unwrap_err();
        assert!(
            matches!(&e, Error::Unrecognised(m) if m.contains("no MPEG-TS sync")),
            "{e}"
        );
    }

    #[test]
    fn leading_garbage_is_skipped() {
        for stride in STRIDES {
            // Garbage full of 0x47 that never lines up five times at any stride.
            let mut data: Vec<u8> = (0..333u32)
                .map(|i| if i % 7 == 0 { 0x47 } else { i as u8 & 0x3F })
                .collect();
            data.extend_from_slice(&synthetic(20, stride));
            let mut f = Framing::new(&data).unwrap();
            assert_eq!(f.stride(), stride);
            assert_eq!(f.by_ref().count(), 20);
            assert_eq!(f.stats().skipped_bytes, 333);
            assert_eq!(f.stats().resyncs, 0);
        }
    }

    #[test]
    fn garbage_in_the_middle_is_skipped() {
        for stride in STRIDES {
            let clean = synthetic(40, stride);
            let cut = 17 * stride;
            let mut garbage: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 64) as u8).collect();
            // Stray sync bytes that are not confirmed at the stride.
            garbage[10] = 0x47;
            garbage[500] = 0x47;
            garbage[999] = 0x47;
            let mut data = clean[..cut].to_vec();
            data.extend_from_slice(&garbage);
            data.extend_from_slice(&clean[cut..]);
            let mut f = Framing::new(&data).unwrap();
            let got: Vec<_> = f.by_ref().collect();
            assert_eq!(got.len(), 40, "stride {stride}");
            for (i, (off, p)) in got.iter().enumerate() {
                assert_eq!(pid_of(p), i);
                assert_eq!(&data[*off as usize..*off as usize + 188], *p);
            }
            assert_eq!(
                f.stats(),
                FramingStats {
                    packets: 40,
                    skipped_bytes: 1000,
                    resyncs: 1
                },
                "stride {stride}"
            );
        }
    }

    #[test]
    fn lost_bytes_and_truncated_tail() {
        // A packet missing 50 bytes: its sync is found early, then the next one is off.
        let clean = synthetic(30, 188);
        let mut data = clean[..10 * 188].to_vec();
        data.extend_from_slice(&clean[10 * 188 + 50..]);
        data.extend_from_slice(&clean[..100]); // partial packet at EOF
        let mut f = Framing::new(&data).unwrap();
        let got: Vec<_> = f.by_ref().collect();
        // Packet 10 lost its first 50 bytes: its remaining 138 are skipped, 11 on are found.
        assert_eq!(got.len(), 29);
        assert!(
            got.iter()
                .all(|(o, p)| data[*o as usize] == 0x47 && p.len() == 188)
        );
        let s = f.stats();
        assert_eq!(s.resyncs, 1);
        assert_eq!(s.skipped_bytes, 138 + 100);
        assert_eq!(
            s.packets as usize * 188 + s.skipped_bytes as usize,
            data.len()
        );
        assert_eq!(f.next(), None);
    }

    #[test]
    fn truncated_tail_for_each_stride() {
        for stride in STRIDES {
            let mut data = synthetic(10, stride);
            let full = data.len();
            data.truncate(full - stride + 100);
            let mut f = Framing::new(&data).unwrap();
            assert_eq!(f.by_ref().count(), 9);
            assert_eq!(f.stats().skipped_bytes, 100, "stride {stride}");
            assert_eq!(f.stats().resyncs, 0);
        }
    }

    #[test]
    fn no_resync_possible_skips_the_rest() {
        let mut data = synthetic(10, 188);
        data.extend(std::iter::repeat_n(0u8, 5000));
        let mut f = Framing::new(&data).unwrap();
        assert_eq!(f.by_ref().count(), 10);
        assert_eq!(f.stats().skipped_bytes, 5000);
        assert_eq!(f.stats().resyncs, 1);
    }
}
