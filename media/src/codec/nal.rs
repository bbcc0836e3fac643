//! NAL unit framing: Annex B (start codes, as in MPEG-TS) and length-prefixed (as in MP4).

use crate::{Error, Result};

/// Iterates the NAL units of an Annex B byte stream (without their start codes).
/// Trailing zero bytes before a start code belong to the next start code and are dropped.
pub struct AnnexB<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> AnnexB<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let pos = find_start(data, 0).map_or(data.len(), |(_, end)| end);
        AnnexB { data, pos }
    }
}

/// Finds the next `00 00 01` at or after `from`; returns (start of the code, first byte after).
fn find_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip fast: a start code needs data[i+2] == 1 and two zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

impl<'a> Iterator for AnnexB<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start(self.data, start) {
                Some((s, n)) => (s, n),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut nal = &self.data[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Iterates length-prefixed NAL units (`nal_length_size` of 1, 2 or 4 bytes).
pub struct LengthPrefixed<'a> {
    data: &'a [u8],
    size: usize,
    pos: usize,
}

impl<'a> LengthPrefixed<'a> {
    pub fn new(data: &'a [u8], nal_length_size: u8) -> Result<Self> {
        if !matches!(nal_length_size, 1 | 2 | 4) {
            return Err(Error::invalid(
                "NAL length size",
                0,
                format!("{nal_length_size} (must be 1, 2 or 4)"),
            ));
        }
        Ok(LengthPrefixed {
            data,
            size: nal_length_size as usize,
            pos: 0,
        })
    }
}

impl<'a> Iterator for LengthPrefixed<'a> {
    type Item = Result<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let Some(len_bytes) = self.data.get(self.pos..self.pos + self.size) else {
            self.pos = self.data.len();
            return Some(Err(Error::invalid(
                "NAL length prefix",
                self.pos as u64,
                "truncated",
            )));
        };
        let len = len_bytes.iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        let start = self.pos + self.size;
        let Some(nal) = start
            .checked_add(len)
            .and_then(|end| self.data.get(start..end))
        else {
            let at = self.pos as u64;
            self.pos = self.data.len();
            return Some(Err(Error::invalid(
                "NAL unit",
                at,
                format!("length {len} runs past the sample"),
            )));
        };
        self.pos = start + len;
        Some(Ok(nal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_splits_three_and_four_byte_codes() {
        let d = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 0, 3, 1,
        ];
        let n: Vec<&[u8]> = AnnexB::new(&d).collect();
        assert_eq!(
            n,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0, 0, 3, 1][..]]
        );
        assert_eq!(AnnexB::new(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn length_prefixed_checks_bounds() {
        let d = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 9, 1];
        let mut it = LengthPrefixed::new(&d, 4).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), &[0x65, 1]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
        assert!(LengthPrefixed::new(&d, 3).is_err());
    }
}
