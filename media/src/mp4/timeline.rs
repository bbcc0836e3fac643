//! One track's samples on its media timeline, then on the movie's 90 kHz timeline.
//!
//! The sample tables (`stbl`) and the fragments (`moof`) both append samples here in decode order
//! with timestamps in the track's own timescale. [`Timeline::finish`] then applies the edit list
//! shift and converts to 90 kHz once, and derives the track duration (latest presentation end)
//! and the frame rate from the sample durations, which never reach the public [`Sample`].

use super::Sample;
use super::edit_list::EditShift;

/// At most this many distinct sample durations are counted when judging a constant frame rate;
/// a track with more is variable-rate and gets the average.
const DISTINCT_DURATIONS: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Decode order; `dts`/`pts` in track units until [`Timeline::finish`].
    pub samples: Vec<Sample>,
    /// The decode time just after the last sample (track units): where a fragment without
    /// `tfdt` continues.
    pub next_dts: i64,
    /// Latest `pts + duration` (track units).
    max_end: Option<i64>,
    total_duration: u64,
    durations: Vec<(u32, u64)>,
    too_many_durations: bool,
}

/// What [`Timeline::finish`] returns.
#[derive(Debug)]
pub(crate) struct Finished {
    pub samples: Vec<Sample>,
    /// Latest presentation end in 90 kHz (0 when there are no samples).
    pub end_90k: Option<u64>,
    /// Samples per second from the sample durations.
    pub rate: Option<f64>,
}

impl Timeline {
    /// Appends one sample. `None` when a timestamp overflows (crafted durations or offsets).
    pub fn push(
        &mut self,
        offset: u64,
        size: u32,
        dts: i64,
        cto: i64,
        duration: u32,
        keyframe: bool,
    ) -> Option<()> {
        let pts = dts.checked_add(cto)?;
        let next = dts.checked_add(i64::from(duration))?;
        let end = pts.checked_add(i64::from(duration))?;
        self.samples.push(Sample {
            offset,
            size,
            dts,
            pts,
            keyframe,
        });
        self.next_dts = next;
        self.max_end = Some(self.max_end.map_or(end, |m| m.max(end)));
        self.total_duration = self.total_duration.saturating_add(u64::from(duration));
        if !self.too_many_durations {
            let distinct = self.durations.len();
            match self.durations.iter_mut().find(|(d, _)| *d == duration) {
                Some((_, n)) => *n += 1,
                None if distinct < DISTINCT_DURATIONS => self.durations.push((duration, 1)),
                None => self.too_many_durations = true,
            }
        }
        Some(())
    }

    /// Samples per second: `timescale / d` when one duration `d` covers at least 90% of the
    /// samples (constant rate, whatever the last frame's duration), else the average.
    fn rate(&self, timescale: u32) -> Option<f64> {
        let count = self.samples.len() as u64;
        if count == 0 {
            return None;
        }
        let mode = self.durations.iter().max_by_key(|(_, n)| *n).copied();
        if let (false, Some((d, n))) = (self.too_many_durations, mode)
            && d > 0
            && n.saturating_mul(10) >= count.saturating_mul(9)
        {
            return Some(f64::from(timescale) / f64::from(d));
        }
        if self.total_duration == 0 {
            return None;
        }
        Some(count as f64 * f64::from(timescale) / self.total_duration as f64)
    }

    /// Applies the edit list and converts to 90 kHz. `None` on overflow.
    pub fn finish(mut self, shift: EditShift, timescale: u32) -> Option<Finished> {
        let rate = self.rate(timescale);
        for s in &mut self.samples {
            s.dts = shift.apply(s.dts, timescale)?;
            s.pts = shift.apply(s.pts, timescale)?;
        }
        let end_90k = match self.max_end {
            Some(end) => Some(u64::try_from(shift.apply(end, timescale)?.max(0)).ok()?),
            None => None,
        };
        Some(Finished {
            samples: self.samples,
            end_90k,
            rate,
        })
    }
}

/// `offset + size` when the sample lies inside a file of `file_len` bytes.
pub(crate) fn sample_end(offset: u64, size: u32, file_len: u64) -> Option<u64> {
    let end = offset.checked_add(u64::from(size))?;
    (end <= file_len).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_ignores_an_odd_last_frame() {
        let mut t = Timeline::default();
        for i in 0..20 {
            let d = if i == 19 { 100 } else { 512 };
            t.push(0, 1, t.next_dts, 0, d, true).unwrap();
        }
        let f = t.finish(EditShift::default(), 12800).unwrap();
        assert_eq!(f.rate, Some(25.0));
        // 19 * 512 + 100 = 9828 ticks of 12800 Hz = 69103.125 → 69103
        assert_eq!(f.end_90k, Some(69_103));
    }

    #[test]
    fn variable_rate_is_averaged() {
        let mut t = Timeline::default();
        for d in [1000, 2000, 1000, 2000] {
            t.push(0, 1, t.next_dts, 0, d, true).unwrap();
        }
        let f = t.finish(EditShift::default(), 90_000).unwrap();
        assert_eq!(f.rate, Some(60.0));
    }

    #[test]
    fn overflow_is_none() {
        let mut t = Timeline::default();
        assert!(t.push(0, 1, i64::MAX, 1, 0, true).is_none());
        assert!(t.push(0, 1, i64::MAX - 1, 0, 5, true).is_none());
        assert_eq!(sample_end(u64::MAX, 1, u64::MAX), None);
        assert_eq!(sample_end(10, 5, 15), Some(15));
        assert_eq!(sample_end(10, 6, 15), None);
    }
}
