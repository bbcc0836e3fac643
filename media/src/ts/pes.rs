//! PES packet headers (ISO/IEC 13818-1 §2.4.3.6): parse the optional header (PTS/DTS and the
//! extension fields we skip over by length) and write one for the muxer.

use crate::time::PTS_MASK;
use crate::{Error, Result};

/// Stream ids we write.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
pub const STREAM_ID_AUDIO: u8 = 0xC0;
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// PES_packet_length (0 = unbounded, video only).
    pub packet_length: u16,
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    pub data_alignment: bool,
    /// Bytes from the start of the PES packet to the first payload byte.
    pub header_len: usize,
}

/// Stream ids without the optional PES header (program_stream_map, padding, private_2, …).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xFF | 0xF2 | 0xF8
    )
}

fn read_ts(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// The 5-byte PTS/DTS field: 4-bit `prefix`, 33-bit value, marker bits set.
fn encode_ts(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & PTS_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8) << 1) | 1,
    ]
}

fn write_ts(prefix: u8, ts: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&encode_ts(prefix, ts));
}

/// Shift the PTS and DTS of the PES header at the start of `buf` in place by `delta` 90 kHz
/// ticks, modulo 2^33 (the wire width), keeping each field's prefix nibble and marker bits.
/// Returns the header as parsed before the shift; `offset` is only used in errors.
pub fn shift_timestamps(buf: &mut [u8], delta: u64, offset: u64) -> Result<PesHeader> {
    let h = PesHeader::parse(buf, offset)?;
    for (at, ts) in [(9usize, h.pts), (14, h.dts)] {
        let (Some(ts), Some(field)) = (ts, buf.get_mut(at..at + 5)) else {
            continue;
        };
        let prefix = field[0] >> 4;
        field.copy_from_slice(&encode_ts(prefix, ts.wrapping_add(delta)));
    }
    Ok(h)
}

impl PesHeader {
    /// Parse the PES header at the start of `buf` (the payload of a packet with PUSI set).
    pub fn parse(buf: &[u8], offset: u64) -> Result<PesHeader> {
        if buf.len() < 6 {
            return Err(Error::Truncated {
                what: "PES header",
                offset,
                needed: (6 - buf.len()) as u64,
            });
        }
        if buf[0..3] != [0, 0, 1] {
            return Err(Error::invalid(
                "PES header",
                offset,
                "no 00 00 01 start code prefix",
            ));
        }
        let stream_id = buf[3];
        let packet_length = u16::from_be_bytes([buf[4], buf[5]]);
        let mut h = PesHeader {
            stream_id,
            packet_length,
            pts: None,
            dts: None,
            data_alignment: false,
            header_len: 6,
        };
        if !has_optional_header(stream_id) {
            return Ok(h);
        }
        if buf.len() < 9 {
            return Err(Error::Truncated {
                what: "PES optional header",
                offset,
                needed: (9 - buf.len()) as u64,
            });
        }
        if buf[6] & 0xC0 != 0x80 {
            return Err(Error::invalid(
                "PES header",
                offset,
                "optional header marker bits not '10'",
            ));
        }
        h.data_alignment = buf[6] & 0x04 != 0;
        let flags = buf[7] >> 6;
        let hdr_data_len = buf[8] as usize;
        h.header_len = 9 + hdr_data_len;
        let opt = buf.get(9..9 + hdr_data_len).ok_or(Error::Truncated {
            what: "PES optional fields",
            offset,
            needed: (9 + hdr_data_len).saturating_sub(buf.len()) as u64,
        })?;
        match flags {
            0b10 if opt.len() >= 5 => h.pts = Some(read_ts(&opt[0..5])),
            0b11 if opt.len() >= 10 => {
                h.pts = Some(read_ts(&opt[0..5]));
                h.dts = Some(read_ts(&opt[5..10]));
            }
            0b00 => {}
            _ => {
                return Err(Error::invalid(
                    "PES header",
                    offset,
                    "PTS/DTS flags promise more bytes than PES_header_data_length holds",
                ));
            }
        }
        Ok(h)
    }
}

/// Write a PES header. `dts` is written only when it differs from `pts`. `payload_len` sets
/// PES_packet_length, or 0 (unbounded) when it does not fit in 16 bits (allowed for video).
pub fn write_header(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: usize,
    out: &mut Vec<u8>,
) {
    let dts = dts.filter(|&d| d & PTS_MASK != pts & PTS_MASK);
    let opt_len = if dts.is_some() { 10 } else { 5 };
    let total = 3 + opt_len + payload_len;
    let packet_length = if total > 0xFFFF { 0 } else { total as u16 };
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&packet_length.to_be_bytes());
    out.push(0x84); // '10', not scrambled, data_alignment_indicator
    out.push(if dts.is_some() { 0xC0 } else { 0x80 });
    out.push(opt_len as u8);
    match dts {
        Some(d) => {
            write_ts(0b0011, pts, out);
            write_ts(0b0001, d, out);
        }
        None => write_ts(0b0010, pts, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_pts_dts() {
        let mut v = Vec::new();
        write_header(STREAM_ID_VIDEO, (1 << 33) - 1, Some(5), 100, &mut v);
        let h = PesHeader::parse(&v, 0).unwrap();
        assert_eq!(h.pts, Some((1 << 33) - 1));
        assert_eq!(h.dts, Some(5));
        assert_eq!(h.header_len, 19);
        assert_eq!(h.packet_length as usize, 13 + 100);
        let mut a = Vec::new();
        write_header(STREAM_ID_AUDIO, 900, Some(900), 70_000, &mut a);
        let h = PesHeader::parse(&a, 0).unwrap();
        assert_eq!((h.pts, h.dts, h.packet_length), (Some(900), None, 0));
    }

    #[test]
    fn shift_wraps_at_33_bits_and_keeps_prefixes() {
        let mut v = Vec::new();
        write_header(
            STREAM_ID_VIDEO,
            PTS_MASK - 1,
            Some(PTS_MASK - 3001),
            10,
            &mut v,
        );
        let before = PesHeader::parse(&v, 0).unwrap();
        shift_timestamps(&mut v, 3000, 0).unwrap();
        let h = PesHeader::parse(&v, 0).unwrap();
        assert_eq!((h.pts, h.dts), (Some(2998), Some(PTS_MASK - 1)));
        assert_eq!((v[9] >> 4, v[14] >> 4), (0b0011, 0b0001));
        assert_eq!(h.header_len, before.header_len);
        let mut a = Vec::new();
        write_header(STREAM_ID_AUDIO, 900, None, 10, &mut a);
        shift_timestamps(&mut a, 100, 0).unwrap();
        assert_eq!(PesHeader::parse(&a, 0).unwrap().pts, Some(1000));
        assert!(shift_timestamps(&mut [0, 0, 1, 0xE0, 0], 1, 0).is_err());
    }

    #[test]
    fn refuses_short_and_lying_headers() {
        assert!(PesHeader::parse(&[0, 0, 1, 0xE0], 0).is_err());
        assert!(PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 2, 0, 0], 0).is_err());
        assert!(PesHeader::parse(&[0, 0, 2, 0xE0, 0, 0, 0x80, 0, 0], 0).is_err());
    }
}
