//! RTP (RFC 3550) headers for MPEG-TS payloads (RFC 2250), and the RTCP packets a sender owes
//! its receivers: sender reports (so clients can map RTP time to wall time and measure drift)
//! and BYE (so a client knows the stream ended instead of waiting for a timeout).
//!
//! Writers append to a caller's buffer (no allocation per packet on the send path); readers are
//! for our own test client and load generator, which count sequence gaps and pacing.

use crate::{Error, Result};

/// RFC 3551 static payload type for MPEG-2 transport streams.
pub const PT_MP2T: u8 = 33;
/// The MP2T RTP clock.
pub const CLOCK_HZ: u32 = 90_000;
pub const RTP_HEADER_LEN: usize = 12;
/// Seven 188-byte TS packets per RTP packet (1,316 bytes of payload): fits an Ethernet MTU.
pub const TS_PER_RTP: usize = 7;

const RTCP_SR: u8 = 200;
const RTCP_SDES: u8 = 202;
const RTCP_BYE: u8 = 203;

/// The fields of an RTP header we write and read (no CSRCs, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(((self.marker as u8) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    /// The same header as 12 bytes, for scatter-gather sends.
    pub fn to_bytes(&self) -> [u8; RTP_HEADER_LEN] {
        let mut b = [0u8; RTP_HEADER_LEN];
        b[0] = 0x80;
        b[1] = ((self.marker as u8) << 7) | (self.payload_type & 0x7f);
        b[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b
    }

    /// Parses a header and returns it with the payload's offset (CSRCs, extension and padding
    /// are skipped as RFC 3550 §5.1 describes).
    pub fn parse(p: &[u8]) -> Result<(RtpHeader, std::ops::Range<usize>)> {
        if p.len() < RTP_HEADER_LEN {
            return Err(Error::Rtp(format!(
                "{} bytes is shorter than an RTP header",
                p.len()
            )));
        }
        if p[0] >> 6 != 2 {
            return Err(Error::Rtp(format!("RTP version {} (want 2)", p[0] >> 6)));
        }
        let csrc = (p[0] & 0x0f) as usize;
        let mut start = RTP_HEADER_LEN + 4 * csrc;
        if p[0] & 0x10 != 0 {
            if p.len() < start + 4 {
                return Err(Error::Rtp("truncated RTP header extension".into()));
            }
            let words = u16::from_be_bytes([p[start + 2], p[start + 3]]) as usize;
            start += 4 + 4 * words;
        }
        let mut end = p.len();
        if p[0] & 0x20 != 0 {
            let pad = p[end - 1] as usize;
            end = end.saturating_sub(pad);
        }
        if start > end {
            return Err(Error::Rtp("RTP header longer than the packet".into()));
        }
        let h = RtpHeader {
            marker: p[1] & 0x80 != 0,
            payload_type: p[1] & 0x7f,
            sequence: u16::from_be_bytes([p[2], p[3]]),
            timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        };
        Ok((h, start..end))
    }
}

/// What a sender report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// NTP timestamp (RFC 3550 §4): seconds since 1900 in the high 32 bits.
    pub ntp: u64,
    pub rtp_time: u32,
    pub packets: u32,
    pub octets: u32,
}

/// Converts a Unix time (seconds, nanoseconds) to the 64-bit NTP format.
pub fn ntp_from_unix(secs: u64, nanos: u32) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let frac = ((nanos as u64) << 32) / 1_000_000_000;
    ((secs + NTP_UNIX_OFFSET) << 32) | frac
}

/// Appends a compound RTCP packet: SR, SDES with a CNAME (required in every compound packet),
/// and a BYE when `bye` is set.
pub fn write_rtcp(sr: &SenderReport, cname: &str, bye: bool, out: &mut Vec<u8>) {
    // SR without report blocks: 7 words.
    out.push(0x80);
    out.push(RTCP_SR);
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.extend_from_slice(&sr.ntp.to_be_bytes());
    out.extend_from_slice(&sr.rtp_time.to_be_bytes());
    out.extend_from_slice(&sr.packets.to_be_bytes());
    out.extend_from_slice(&sr.octets.to_be_bytes());
    // SDES, one chunk: SSRC, CNAME item, end, padded to a word.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    out.push(0x81);
    out.push(RTCP_SDES);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk) + 1, 0);
    if bye {
        out.push(0x81);
        out.push(RTCP_BYE);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&sr.ssrc.to_be_bytes());
    }
}

/// The RTCP packets of a compound packet that a receiver cares about here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rtcp {
    SenderReport(SenderReport),
    Bye { ssrc: u32 },
    Other { packet_type: u8 },
}

/// Splits a compound RTCP packet.
pub fn parse_rtcp(mut p: &[u8]) -> Result<Vec<Rtcp>> {
    let mut out = Vec::new();
    while !p.is_empty() {
        if p.len() < 4 || p[0] >> 6 != 2 {
            return Err(Error::Rtp("malformed RTCP header".into()));
        }
        let len = (u16::from_be_bytes([p[2], p[3]]) as usize + 1) * 4;
        if len > p.len() {
            return Err(Error::Rtp(format!(
                "RTCP length {len} beyond the {} bytes left",
                p.len()
            )));
        }
        let body = &p[..len];
        out.push(match body[1] {
            RTCP_SR if len >= 28 => SenderReport {
                ssrc: be32(body, 4),
                ntp: ((be32(body, 8) as u64) << 32) | be32(body, 12) as u64,
                rtp_time: be32(body, 16),
                packets: be32(body, 20),
                octets: be32(body, 24),
            }
            .into(),
            RTCP_BYE if len >= 8 && body[0] & 0x1f >= 1 => Rtcp::Bye {
                ssrc: be32(body, 4),
            },
            t => Rtcp::Other { packet_type: t },
        });
        p = &p[len..];
    }
    Ok(out)
}

impl From<SenderReport> for Rtcp {
    fn from(sr: SenderReport) -> Rtcp {
        Rtcp::SenderReport(sr)
    }
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_header_round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: PT_MP2T,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        assert_eq!(b.as_slice(), &h.to_bytes());
        b.extend_from_slice(&[0x47; 188]);
        let (g, payload) = RtpHeader::parse(&b).unwrap();
        assert_eq!(g, h);
        assert_eq!(payload, 12..200);
        assert!(RtpHeader::parse(&b[..11]).is_err());
        b[0] = 0x40;
        assert!(RtpHeader::parse(&b).is_err());
    }

    #[test]
    fn rtcp_compound_round_trip() {
        let sr = SenderReport {
            ssrc: 7,
            ntp: ntp_from_unix(1_700_000_000, 500_000_000),
            rtp_time: 90_000,
            packets: 10,
            octets: 13_160,
        };
        for name in ["", "a", "sluice@host", "sluice"] {
            let mut b = Vec::new();
            write_rtcp(&sr, name, true, &mut b);
            assert_eq!(b.len() % 4, 0);
            let got = parse_rtcp(&b).unwrap();
            assert_eq!(
                got,
                vec![
                    Rtcp::SenderReport(sr),
                    Rtcp::Other { packet_type: 202 },
                    Rtcp::Bye { ssrc: 7 }
                ]
            );
        }
        assert_eq!(ntp_from_unix(0, 500_000_000) & 0xffff_ffff, 1 << 31);
        assert!(parse_rtcp(&[0x80, 200, 0, 9, 0, 0, 0, 0]).is_err());
    }
}
