//! Random single byte ranges (RFC 9110 §14.1.2) and what a correct server answers to each, for
//! checking byte-range serving against the file on disk.
//!
//! The generator is a fixed-seed xorshift, so a failing case is the same on every run and the
//! message's `Range` header reproduces it with curl.

/// A small deterministic pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One `Range` request and the bytes a correct 206 carries.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeCase {
    /// The `Range` header value.
    pub header: String,
    /// First byte served.
    pub start: u64,
    /// Last byte served (inclusive).
    pub last: u64,
}

impl RangeCase {
    /// `Content-Range` of the 206.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.last)
    }

    /// The served bytes of `file`.
    pub fn slice<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.start as usize..=self.last as usize]
    }
}

/// A satisfiable single range of a `size`-byte file (`size > 0`): `a-b` (sometimes with `b` past
/// the end, which is clamped), `-n` (suffix, sometimes longer than the file) or `a-`, with small
/// and large lengths and ranges touching the first and last byte.
pub fn random_range(rng: &mut Rng, size: u64) -> RangeCase {
    assert!(size > 0);
    let len = match rng.below(4) {
        0 => 1 + rng.below(16),
        1 => 1 + rng.below(4096),
        2 => 1 + rng.below(size),
        _ => 188 * (1 + rng.below(64)),
    };
    match rng.below(10) {
        0..=5 => {
            let start = match rng.below(8) {
                0 => 0,
                1 => size - 1,
                _ => rng.below(size),
            };
            let b = start + len - 1;
            RangeCase {
                header: format!("bytes={start}-{b}"),
                start,
                last: b.min(size - 1),
            }
        }
        6 | 7 => {
            let n = if rng.below(8) == 0 { size + len } else { len };
            RangeCase {
                header: format!("bytes=-{n}"),
                start: size.saturating_sub(n),
                last: size - 1,
            }
        }
        _ => {
            let start = if rng.below(8) == 0 {
                size - 1
            } else {
                rng.below(size)
            };
            RangeCase {
                header: format!("bytes={start}-"),
                start,
                last: size - 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_stay_inside_the_file() {
        let mut rng = Rng::new(7);
        for size in [1u64, 2, 188, 1000, 1 << 20] {
            for _ in 0..2000 {
                let c = random_range(&mut rng, size);
                assert!(c.start <= c.last && c.last < size, "{c:?} of {size}");
            }
        }
    }
}
