//! Walking the box tree over a byte slice, with absolute file offsets.
//!
//! `mp4-atom` decodes one box at a time; it does not know where in the file a box sits, and a
//! container decoded as a whole fails as a whole when one child it does not need is odd (a
//! `udta` with a non-UTF-8 string, an unusual `sgpd`). So we walk containers ourselves, keep the
//! absolute offset of every box (needed for `moof`-relative data offsets and for error messages),
//! and hand only the leaf boxes we use to `mp4-atom`.

use crate::{Error, Result};
use mp4_atom::{Atom, Decode};

/// One box: its type, where it starts in the file, and its body (the bytes after the header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxRef<'a> {
    pub kind: [u8; 4],
    /// Absolute file offset of the first header byte.
    pub offset: u64,
    /// The whole box, header included (what `mp4-atom` decodes).
    pub bytes: &'a [u8],
    /// The body: the bytes after the (possibly 64-bit) size field and type.
    pub body: &'a [u8],
    /// Absolute file offset of the first body byte.
    pub body_offset: u64,
}

impl BoxRef<'_> {
    pub fn name(&self) -> String {
        fourcc_name(&self.kind)
    }
}

/// The printable form of a four-character code (non-printable bytes as `?`).
pub(crate) fn fourcc_name(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Iterates over the boxes laid end to end in `data`, which starts at file offset `base`.
pub(crate) struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    /// The type of the box holding these boxes (`None`: the file itself), for error messages.
    parent: Option<[u8; 4]>,
    /// Let the last box run past the end of `data` (a top-level `mdat` cut short): it is clipped.
    clip_last: bool,
    done: bool,
}

impl<'a> Children<'a> {
    /// The top-level boxes of a file (or of a slice of it starting at file offset `base`).
    pub fn top_level(data: &'a [u8], base: u64) -> Self {
        Children {
            data,
            pos: 0,
            base,
            parent: None,
            clip_last: false,
            done: false,
        }
    }

    /// Children of a box.
    pub fn of(parent_box: &BoxRef<'a>) -> Self {
        Children {
            data: parent_box.body,
            pos: 0,
            base: parent_box.body_offset,
            parent: Some(parent_box.kind),
            clip_last: false,
            done: false,
        }
    }

    fn parent_name(&self) -> String {
        match &self.parent {
            Some(kind) => format!("'{}' box", fourcc_name(kind)),
            None => "file".to_string(),
        }
    }

    /// Tolerate a final `mdat`/`free`/`skip` that claims more bytes than the file has (a file cut
    /// short inside its media data; the samples are checked against the file length later).
    pub fn clip_last(mut self) -> Self {
        self.clip_last = true;
        self
    }

    fn abs(&self, pos: usize) -> u64 {
        self.base.saturating_add(pos as u64)
    }

    fn next_box(&mut self) -> Result<Option<BoxRef<'a>>> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        let offset = self.abs(self.pos);
        if rest.len() < 8 {
            // Fewer bytes than a box header: padding some writers (QuickTime) leave after the last
            // child. It cannot be a box, so nothing is lost by stopping here.
            return Ok(None);
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (size, header): (u64, usize) = match size32 {
            0 => (rest.len() as u64, 8),
            1 => {
                let Some(large) = rest.get(8..16) else {
                    return Err(Error::Mp4(format!(
                        "'{}' box at byte {offset}: 64-bit size field cut off",
                        fourcc_name(&kind)
                    )));
                };
                let mut b = [0u8; 8];
                b.copy_from_slice(large);
                (u64::from_be_bytes(b), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header as u64 {
            return Err(Error::Mp4(format!(
                "'{}' box at byte {offset} in the {}: size {size} is smaller than its header",
                fourcc_name(&kind),
                self.parent_name()
            )));
        }
        let len = if size > rest.len() as u64 {
            let tolerated = self.clip_last && matches!(&kind, b"mdat" | b"free" | b"skip");
            if !tolerated {
                return Err(Error::Mp4(format!(
                    "'{}' box at byte {offset} in the {} claims {size} bytes but only {} remain{}",
                    fourcc_name(&kind),
                    self.parent_name(),
                    rest.len(),
                    if self.parent.is_none() {
                        " (file cut short?)"
                    } else {
                        ""
                    }
                )));
            }
            rest.len()
        } else {
            // size <= rest.len() which is a usize, so this cannot truncate.
            usize::try_from(size).unwrap_or(rest.len())
        };
        let bytes = rest.get(..len).unwrap_or(rest);
        let body = bytes.get(header..).unwrap_or_default();
        self.pos = self.pos.saturating_add(len);
        Ok(Some(BoxRef {
            kind,
            offset,
            bytes,
            body,
            body_offset: offset.saturating_add(header as u64),
        }))
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<BoxRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_box() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Where a box sits, for error messages: the track (when known) and the byte offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub track: Option<u32>,
}

impl Ctx {
    pub const FILE: Ctx = Ctx { track: None };

    pub fn track(id: u32) -> Ctx {
        Ctx { track: Some(id) }
    }

    /// An error about box `b`: "track 1: 'stsz' box at byte 1234: ...".
    pub fn err(&self, b: &BoxRef<'_>, msg: impl std::fmt::Display) -> Error {
        self.err_at(&b.name(), b.offset, msg)
    }

    pub fn err_at(&self, name: &str, offset: u64, msg: impl std::fmt::Display) -> Error {
        match self.track {
            Some(id) => Error::Mp4(format!("track {id}: '{name}' box at byte {offset}: {msg}")),
            None => Error::Mp4(format!("'{name}' box at byte {offset}: {msg}")),
        }
    }

    /// Adds the track to an error raised without it (by the box walker).
    pub fn within(&self, e: Error) -> Error {
        match (self.track, e) {
            (Some(id), Error::Mp4(m)) if !m.starts_with("track ") => {
                Error::Mp4(format!("track {id}: {m}"))
            }
            (_, e) => e,
        }
    }

    /// A box we need is missing from its parent.
    pub fn missing(&self, what: &str, parent: &BoxRef<'_>) -> Error {
        self.err(parent, format_args!("no '{what}' box inside"))
    }
}

/// Decodes one box with `mp4-atom`, turning its errors into ours with box, track and offset.
pub(crate) fn decode<T: Atom>(b: &BoxRef<'_>, ctx: Ctx) -> Result<T> {
    let mut bytes = b.bytes;
    let atom = T::decode(&mut bytes).map_err(|e| ctx.err(b, describe(&e)))?;
    Ok(atom)
}

/// `mp4-atom`'s error text, made a little more telling for the common cases.
pub(crate) fn describe(e: &mp4_atom::Error) -> String {
    match e {
        mp4_atom::Error::OverDecode(k) => format!("box body ends before its fields do ({k})"),
        mp4_atom::Error::UnderDecode(k) => format!("unexpected bytes after the fields of '{k}'"),
        mp4_atom::Error::OutOfBounds | mp4_atom::Error::ShortRead => {
            "box body ends before its fields do".to_string()
        }
        other => other.to_string(),
    }
}

/// The first child of `parent` with type `kind`.
pub(crate) fn find<'a>(parent: &BoxRef<'a>, kind: &[u8; 4]) -> Result<Option<BoxRef<'a>>> {
    for child in Children::of(parent) {
        let child = child?;
        if &child.kind == kind {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// Big-endian readers over a slice, returning `None` past the end.
pub(crate) fn be_u16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

pub(crate) fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sizes_largesize_and_to_end() {
        let mut data = Vec::new();
        data.extend_from_slice(&[0, 0, 0, 12, b'f', b'r', b'e', b'e', 1, 2, 3, 4]);
        data.extend_from_slice(&[0, 0, 0, 1, b's', b'k', b'i', b'p']);
        data.extend_from_slice(&20u64.to_be_bytes());
        data.extend_from_slice(&[9, 9, 9, 9]);
        data.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 7, 7]);
        let boxes: Vec<_> = Children::top_level(&data, 100)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(boxes.len(), 3);
        assert_eq!(&boxes[0].kind, b"free");
        assert_eq!(boxes[0].offset, 100);
        assert_eq!(boxes[0].body, &[1, 2, 3, 4]);
        assert_eq!(&boxes[1].kind, b"skip");
        assert_eq!(boxes[1].body_offset, 112 + 16);
        assert_eq!(boxes[1].body, &[9, 9, 9, 9]);
        assert_eq!(&boxes[2].kind, b"mdat");
        assert_eq!(boxes[2].body, &[7, 7]);
    }

    #[test]
    fn rejects_bad_sizes_and_overruns() {
        let small = [0, 0, 0, 4, b'f', b'r', b'e', b'e'];
        let e = Children::top_level(&small, 0).next().unwrap().unwrap_err();
        assert!(e.to_string().contains("smaller than its header"), "{e}");

        let over = [0, 0, 0, 99, b'm', b'o', b'o', b'v', 0, 0];
        let e = Children::top_level(&over, 0).next().unwrap().unwrap_err();
        assert!(e.to_string().contains("claims 99 bytes"), "{e}");

        // A cut mdat at the end of the file is clipped when allowed.
        let cut = [0, 0, 0, 99, b'm', b'd', b'a', b't', 0, 0];
        let b = Children::top_level(&cut, 0)
            .clip_last()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(b.body.len(), 2);

        let largesize_cut = [0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0];
        let e = Children::top_level(&largesize_cut, 0)
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("64-bit size"), "{e}");
    }
}
