//! One 188-byte MPEG-TS packet: header fields, adaptation field and payload (ISO/IEC 13818-1
//! §2.4.3). Zero-copy views over a caller's slice; no allocation.

use crate::{Error, Result};

pub const PACKET_LEN: usize = 188;
pub const SYNC: u8 = 0x47;
pub const PID_PAT: u16 = 0x0000;
pub const PID_NULL: u16 = 0x1FFF;

/// A parsed view of one TS packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub pid: u16,
    pub transport_error: bool,
    /// payload_unit_start_indicator: a PES or PSI section starts in this payload.
    pub pusi: bool,
    pub scrambling: u8,
    pub continuity_counter: u8,
    pub adaptation: Option<Adaptation>,
    /// Payload bytes after the header and adaptation field (may be empty).
    pub payload: &'a [u8],
}

/// The adaptation-field flags and values we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adaptation {
    pub discontinuity: bool,
    pub random_access: bool,
    /// PCR in 27 MHz units (base * 300 + extension).
    pub pcr: Option<u64>,
}

impl<'a> Packet<'a> {
    /// Parse a packet; `buf` must be at least 188 bytes and start with the sync byte.
    /// `offset` is only used in error messages.
    pub fn parse(buf: &'a [u8], offset: u64) -> Result<Packet<'a>> {
        if buf.len() < PACKET_LEN {
            return Err(Error::Truncated {
                what: "ts packet",
                offset,
                needed: (PACKET_LEN - buf.len()) as u64,
            });
        }
        let buf = &buf[..PACKET_LEN];
        if buf[0] != SYNC {
            return Err(Error::invalid(
                "ts packet",
                offset,
                "missing 0x47 sync byte",
            ));
        }
        let pid = (u16::from(buf[1] & 0x1F) << 8) | u16::from(buf[2]);
        let afc = (buf[3] >> 4) & 0x3;
        let mut pos = 4usize;
        let mut adaptation = None;
        if afc & 0x2 != 0 {
            let len = buf[4] as usize;
            if 5 + len > PACKET_LEN {
                return Err(Error::invalid(
                    "ts adaptation field",
                    offset,
                    format!("length {len} runs past the packet (pid {pid})"),
                ));
            }
            let mut a = Adaptation::default();
            if len > 0 {
                let flags = buf[5];
                a.discontinuity = flags & 0x80 != 0;
                a.random_access = flags & 0x40 != 0;
                if flags & 0x10 != 0 && len >= 7 {
                    a.pcr = Some(read_pcr(&buf[6..12]));
                }
            }
            adaptation = Some(a);
            pos = 5 + len;
        }
        let payload = if afc & 0x1 != 0 {
            &buf[pos..]
        } else {
            &buf[..0]
        };
        Ok(Packet {
            pid,
            transport_error: buf[1] & 0x80 != 0,
            pusi: buf[1] & 0x40 != 0,
            scrambling: buf[3] >> 6,
            continuity_counter: buf[3] & 0x0F,
            adaptation,
            payload,
        })
    }

    pub fn has_payload(&self) -> bool {
        !self.payload.is_empty()
    }

    pub fn pcr(&self) -> Option<u64> {
        self.adaptation.and_then(|a| a.pcr)
    }

    /// The PSI section that starts in this payload (after the pointer field), for a packet
    /// with PUSI set; empty when the pointer runs past the payload.
    pub fn section(&self) -> &'a [u8] {
        let pointer = self.payload.first().map_or(0, |&p| usize::from(p));
        self.payload.get(1 + pointer..).unwrap_or(&[])
    }
}

/// Read a 6-byte PCR field into 27 MHz units.
pub fn read_pcr(b: &[u8]) -> u64 {
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | (u64::from(b[4]) >> 7);
    let ext = (u64::from(b[4] & 0x01) << 8) | u64::from(b[5]);
    base * 300 + ext
}

/// Write a PCR (27 MHz units) as 6 bytes, with the 6 reserved bits set to 1 as the standard asks.
pub fn write_pcr(pcr27: u64, out: &mut [u8]) {
    let base = (pcr27 / 300) & crate::time::PTS_MASK;
    let ext = pcr27 % 300;
    out[0] = (base >> 25) as u8;
    out[1] = (base >> 17) as u8;
    out[2] = (base >> 9) as u8;
    out[3] = (base >> 1) as u8;
    out[4] = (((base & 1) as u8) << 7) | 0x7E | ((ext >> 8) as u8 & 1);
    out[5] = ext as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_round_trip_and_reserved_bits() {
        let mut b = [0u8; 6];
        let pcr = ((1u64 << 33) - 7) * 300 + 299;
        write_pcr(pcr, &mut b);
        assert_eq!(b[4] & 0x7E, 0x7E);
        assert_eq!(read_pcr(&b), pcr);
    }

    #[test]
    fn rejects_bad_adaptation_length() {
        let mut p = [0xFFu8; 188];
        p[0] = SYNC;
        p[1] = 0x01;
        p[2] = 0x00;
        p[3] = 0x30;
        p[4] = 200;
        assert!(Packet::parse(&p, 0).is_err());
        p[4] = 183;
        let pk = Packet::parse(&p, 0).unwrap();
        assert!(pk.payload.is_empty());
    }
}
