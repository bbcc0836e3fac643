//! Edit lists (`edts/elst`): where a track's media timeline lands on the movie timeline.
//!
//! We apply the two kinds of edit that real files use to place a track, and nothing else:
//!
//! - the **first normal edit** (`media_time >= 0`): presentation starts at `media_time` in the
//!   media, so every timestamp moves back by it. Encoders write this for B-frame delay (x264 with
//!   `-bf 2` starts at two frame durations) and for AAC priming (1024 samples). This is why the
//!   first DTS of a B-frame stream comes out negative, exactly as ffprobe shows it;
//! - the **first empty edit** (`media_time = -1`) *before* that normal edit: the track starts
//!   later than the movie, so every timestamp moves forward by the empty edit's duration, which
//!   is in the movie (`mvhd`) timescale and is converted straight to 90 kHz.
//!
//! Simplification, on purpose: later edits (a second normal edit cutting or repeating media,
//! empty edits in the middle), segment durations (trimming the end) and `media_rate` (dwells,
//! slow motion) are ignored. Those describe editing decisions a streaming server does not
//! replay; every sample stays in the list, shifted by one constant. An empty edit *after* the
//! first normal edit is a gap in the middle and is ignored too.

use crate::time::{HZ_90K, rescale};
use mp4_atom::ElstEntry;

/// The constant shift an edit list applies to one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EditShift {
    /// Subtracted from media timestamps, in the track (media) timescale.
    pub media_time: i64,
    /// Added after conversion to 90 kHz (empty edit, from the movie timescale).
    pub empty_90k: i64,
}

impl EditShift {
    /// The shift described by `entries` (an `elst`); `movie_timescale` is the `mvhd` timescale.
    /// The error says what is wrong; the caller adds track and box offset.
    pub fn from_entries(entries: &[ElstEntry], movie_timescale: u32) -> Result<Self, String> {
        let mut shift = EditShift::default();
        let mut seen_empty = false;
        for entry in entries {
            match entry.media_time {
                None => {
                    // Only the first empty edit before the first normal edit counts.
                    if !seen_empty {
                        seen_empty = true;
                        let duration = i64::try_from(entry.segment_duration)
                            .map_err(|_| "empty edit duration does not fit 63 bits".to_string())?;
                        shift.empty_90k = rescale(duration, movie_timescale, HZ_90K as u32)
                            .ok_or_else(|| {
                                format!(
                                    "cannot convert an empty edit of {duration} ticks \
                                     (movie timescale {movie_timescale}) to 90 kHz"
                                )
                            })?;
                    }
                }
                Some(media_time) => {
                    shift.media_time = i64::try_from(media_time)
                        .map_err(|_| "media_time does not fit 63 bits".to_string())?;
                    break;
                }
            }
        }
        Ok(shift)
    }

    /// Track-unit timestamp → 90 kHz on the movie timeline.
    pub fn apply(&self, t: i64, timescale: u32) -> Option<i64> {
        let shifted = t.checked_sub(self.media_time)?;
        rescale(shifted, timescale, HZ_90K as u32)?.checked_add(self.empty_90k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::FixedPoint;

    fn edit(segment_duration: u64, media_time: Option<u64>) -> ElstEntry {
        ElstEntry {
            segment_duration,
            media_time,
            media_rate: FixedPoint::new(1, 0),
        }
    }

    #[test]
    fn normal_edit_shifts_back() {
        let s = EditShift::from_entries(&[edit(4000, Some(1024))], 1000).unwrap();
        assert_eq!(s.media_time, 1024);
        assert_eq!(s.empty_90k, 0);
        // 12800 Hz track: dts 0 → -1024 ticks → -7200 in 90 kHz
        assert_eq!(s.apply(0, 12800), Some(-7200));
        assert_eq!(s.apply(1024, 12800), Some(0));
    }

    #[test]
    fn empty_edit_shifts_forward_in_movie_timescale() {
        // 500 ticks of a 1000 Hz movie = 0.5 s = 45000 in 90 kHz
        let s = EditShift::from_entries(&[edit(500, None), edit(4000, Some(0))], 1000).unwrap();
        assert_eq!(s.empty_90k, 45_000);
        assert_eq!(s.media_time, 0);
        assert_eq!(s.apply(0, 48_000), Some(45_000));
    }

    #[test]
    fn multiple_edits_use_first_empty_and_first_normal() {
        let s = EditShift::from_entries(
            &[
                edit(100, None),
                edit(200, None),
                edit(1000, Some(3000)),
                edit(50, None),
                edit(1000, Some(9000)),
            ],
            100,
        )
        .unwrap();
        assert_eq!(s.empty_90k, 90_000);
        assert_eq!(s.media_time, 3000);
        // An empty edit after the normal edit is a mid-track gap: ignored.
        let s = EditShift::from_entries(&[edit(1000, Some(10)), edit(50, None)], 100).unwrap();
        assert_eq!(s.empty_90k, 0);
        assert_eq!(s.media_time, 10);
    }

    #[test]
    fn crafted_edits_are_errors() {
        let e = EditShift::from_entries(&[edit(1, None)], 0).unwrap_err();
        assert!(e.contains("movie timescale 0"), "{e}");
        let e = EditShift::from_entries(&[edit(u64::MAX, None)], 1).unwrap_err();
        assert!(e.contains("63 bits"), "{e}");
        let e = EditShift::from_entries(&[edit(1, Some(u64::MAX))], 1).unwrap_err();
        assert!(e.contains("63 bits"), "{e}");
        // overflow on apply is None, never a panic
        let s = EditShift {
            media_time: i64::MIN,
            empty_90k: 0,
        };
        assert_eq!(s.apply(1, 90_000), None);
    }
}
