//! Time bases: 90 kHz PTS/DTS (33 bits on the wire) and 27 MHz PCR.

/// The MPEG system clock for PTS/DTS.
pub const HZ_90K: u64 = 90_000;
/// PTS/DTS wrap after 2^33 ticks of 90 kHz (about 26.5 hours).
pub const PTS_WRAP: u64 = 1 << 33;
pub const PTS_MASK: u64 = PTS_WRAP - 1;

/// Rescale `value` from `from` ticks per second to `to`, rounding to nearest, without overflow.
/// Returns `None` when `from` is zero (a crafted timescale must never divide by zero).
pub fn rescale(value: i64, from: u32, to: u32) -> Option<i64> {
    if from == 0 {
        return None;
    }
    let num = value as i128 * to as i128;
    let den = from as i128;
    let half = den / 2;
    let r = if num >= 0 {
        (num + half) / den
    } else {
        (num - half) / den
    };
    i64::try_from(r).ok()
}

/// Unwraps successive 33-bit timestamps into a monotonic-ish 64-bit timeline.
///
/// A jump backwards of more than half the wrap period is taken as a wrap-around.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, raw33: u64) -> i64 {
        let raw = (raw33 & PTS_MASK) as i64;
        let out = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(PTS_WRAP as i64);
                let mut cand = base + raw;
                let half = (PTS_WRAP / 2) as i64;
                if cand - last > half {
                    cand -= PTS_WRAP as i64;
                } else if last - cand > half {
                    cand += PTS_WRAP as i64;
                }
                cand
            }
        };
        self.last = Some(out);
        out
    }
}

/// Seconds as a float, for reports.
pub fn ticks_to_secs(ticks: i64) -> f64 {
    ticks as f64 / HZ_90K as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_and_refuses_zero() {
        assert_eq!(rescale(1, 1000, 90_000), Some(90));
        assert_eq!(rescale(1001, 30_000, 90_000), Some(3003));
        assert_eq!(rescale(-1, 3, 2), Some(-1));
        assert_eq!(rescale(5, 0, 90_000), None);
    }

    #[test]
    fn unwrap_crosses_33_bits() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(PTS_MASK - 10), (PTS_MASK - 10) as i64);
        assert_eq!(u.unwrap(5), (PTS_WRAP + 5) as i64);
        assert_eq!(u.unwrap(20), (PTS_WRAP + 20) as i64);
        // a small step back (B-frame order) stays on the same lap
        assert_eq!(u.unwrap(10), (PTS_WRAP + 10) as i64);
    }
}
