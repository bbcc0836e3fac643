//! Program-specific information: PAT and PMT sections (ISO/IEC 13818-1 §2.4.4), their
//! CRC-32/MPEG-2, parsing from a complete section and building one for the muxer.
//!
//! Section assembly across packets lives in the demuxer; this module only sees whole sections.

use crate::{Error, Result};

pub const TABLE_PAT: u8 = 0x00;
pub const TABLE_PMT: u8 = 0x02;

/// CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor).
pub fn crc32_mpeg(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = (i as u32) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04C1_1DB7
                } else {
                    c << 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

/// Check the common long-form section header and CRC; returns (table_id, id_ext, body) where
/// body is between the 8-byte header and the CRC.
fn open_section<'a>(sec: &'a [u8], what: &'static str) -> Result<(u8, u16, &'a [u8])> {
    if sec.len() < 3 {
        return Err(Error::Truncated {
            what,
            offset: 0,
            needed: 3 - sec.len() as u64,
        });
    }
    let len = (usize::from(sec[1] & 0x0F) << 8) | usize::from(sec[2]);
    if len < 9 {
        return Err(Error::invalid(
            what,
            0,
            format!("section_length {len} too short"),
        ));
    }
    if sec.len() < 3 + len {
        return Err(Error::Truncated {
            what,
            offset: 0,
            needed: (3 + len - sec.len()) as u64,
        });
    }
    let sec = &sec[..3 + len];
    let crc = u32::from_be_bytes([sec[len - 1], sec[len], sec[len + 1], sec[len + 2]]);
    if crc32_mpeg(&sec[..len - 1]) != crc {
        return Err(Error::invalid(what, 0, "CRC-32 mismatch"));
    }
    Ok((
        sec[0],
        u16::from_be_bytes([sec[3], sec[4]]),
        &sec[8..len - 1],
    ))
}

fn close_section(table_id: u8, id_ext: u16, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + len);
    s.push(table_id);
    // section_syntax_indicator=1, '0', reserved '11'
    s.push(0xB0 | ((len >> 8) as u8 & 0x0F));
    s.push(len as u8);
    s.extend_from_slice(&id_ext.to_be_bytes());
    s.push(0xC1); // reserved '11', version 0, current_next 1
    s.push(0); // section_number
    s.push(0); // last_section_number
    s.extend_from_slice(body);
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    /// (program_number, PMT PID); program 0 (network PID) is skipped.
    pub programs: Vec<(u16, u16)>,
}

impl Pat {
    pub fn parse(sec: &[u8]) -> Result<Pat> {
        let (tid, tsid, body) = open_section(sec, "PAT section")?;
        if tid != TABLE_PAT {
            return Err(Error::invalid(
                "PAT section",
                0,
                format!("table_id {tid:#x}"),
            ));
        }
        let programs = body
            .chunks_exact(4)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u16::from_be_bytes([c[2] & 0x1F, c[3]]),
                )
            })
            .filter(|&(n, _)| n != 0)
            .collect();
        Ok(Pat {
            transport_stream_id: tsid,
            programs,
        })
    }

    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for &(n, pid) in &self.programs {
            body.extend_from_slice(&n.to_be_bytes());
            body.extend_from_slice(&(0xE000 | pid).to_be_bytes());
        }
        close_section(TABLE_PAT, self.transport_stream_id, &body)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    /// Raw ES_info descriptors.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    /// ISO 639 language from descriptor 0x0A, if present.
    pub fn language(&self) -> Option<String> {
        let mut d = self.descriptors.as_slice();
        while d.len() >= 2 {
            let (tag, len) = (d[0], d[1] as usize);
            let Some(body) = d.get(2..2 + len) else { break };
            if tag == 0x0A && len >= 3 {
                return std::str::from_utf8(&body[..3]).ok().map(str::to_owned);
            }
            d = &d[2 + len..];
        }
        None
    }

    /// A descriptor carrying an ISO 639 language code (tag 0x0A, audio type 0).
    pub fn language_descriptor(lang: &str) -> Vec<u8> {
        let b = lang.as_bytes();
        if b.len() != 3 {
            return Vec::new();
        }
        vec![0x0A, 4, b[0], b[1], b[2], 0]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub pcr_pid: u16,
    pub streams: Vec<PmtStream>,
}

impl Pmt {
    pub fn parse(sec: &[u8]) -> Result<Pmt> {
        let (tid, program_number, body) = open_section(sec, "PMT section")?;
        if tid != TABLE_PMT {
            return Err(Error::invalid(
                "PMT section",
                0,
                format!("table_id {tid:#x}"),
            ));
        }
        if body.len() < 4 {
            return Err(Error::invalid(
                "PMT section",
                0,
                "body shorter than 4 bytes",
            ));
        }
        let pcr_pid = u16::from_be_bytes([body[0] & 0x1F, body[1]]);
        let pinfo = (usize::from(body[2] & 0x0F) << 8) | usize::from(body[3]);
        let mut rest = body
            .get(4 + pinfo..)
            .ok_or_else(|| Error::invalid("PMT section", 0, "program_info_length past end"))?;
        let mut streams = Vec::new();
        while rest.len() >= 5 {
            let stream_type = rest[0];
            let pid = u16::from_be_bytes([rest[1] & 0x1F, rest[2]]);
            let es_len = (usize::from(rest[3] & 0x0F) << 8) | usize::from(rest[4]);
            let desc = rest.get(5..5 + es_len).ok_or_else(|| {
                Error::invalid(
                    "PMT section",
                    0,
                    format!("ES_info_length past end (pid {pid})"),
                )
            })?;
            streams.push(PmtStream {
                stream_type,
                pid,
                descriptors: desc.to_vec(),
            });
            rest = &rest[5 + es_len..];
        }
        Ok(Pmt {
            program_number,
            pcr_pid,
            streams,
        })
    }

    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(0xE000 | self.pcr_pid).to_be_bytes());
        body.extend_from_slice(&0xF000u16.to_be_bytes()); // no program descriptors
        for s in &self.streams {
            body.push(s.stream_type);
            body.extend_from_slice(&(0xE000 | s.pid).to_be_bytes());
            body.extend_from_slice(&(0xF000 | s.descriptors.len() as u16).to_be_bytes());
            body.extend_from_slice(&s.descriptors);
        }
        close_section(TABLE_PMT, self.program_number, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        // PAT of ffmpeg's mpegts muxer: tsid 1, program 1 → PID 0x1000.
        let pat = Pat {
            transport_stream_id: 1,
            programs: vec![(1, 0x1000)],
        };
        let s = pat.to_section();
        assert_eq!(
            s,
            [
                0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
                0x04, 0xB2
            ]
        );
        assert_eq!(Pat::parse(&s).unwrap(), pat);
    }

    #[test]
    fn pmt_round_trip_and_bad_crc() {
        let pmt = Pmt {
            program_number: 1,
            pcr_pid: 0x100,
            streams: vec![
                PmtStream {
                    stream_type: 0x1B,
                    pid: 0x100,
                    descriptors: vec![],
                },
                PmtStream {
                    stream_type: 0x0F,
                    pid: 0x101,
                    descriptors: PmtStream::language_descriptor("fra"),
                },
            ],
        };
        let mut s = pmt.to_section();
        let back = Pmt::parse(&s).unwrap();
        assert_eq!(back, pmt);
        assert_eq!(back.streams[1].language().as_deref(), Some("fra"));
        let n = s.len();
        s[n - 1] ^= 1;
        assert!(Pmt::parse(&s).is_err());
        assert!(Pmt::parse(&s[..5]).is_err());
    }
}
