//! Our own MPEG-TS muxer state.
//!
//! Why our own: a player that seeks (RTSP `Range`, HLS segments cut at keyframes) starts reading in
//! the middle of the file, so the layout must be one we control: PAT and PMT immediately before
//! every video keyframe (a clean random-access point), a PCR on the PCR PID at least every
//! 40 ms of stream time, the random-access indicator on keyframes, continuity counters per PID
//! and reserved bits set as the standard says (stateless writers get these wrong).
//!
//! The muxer is sans-IO: it appends bytes to a caller's buffer and reports where each frame
//! landed, so the installer can build the index from what was really written.

use super::packet::{PACKET_LEN, PID_PAT, SYNC, write_pcr};
use super::pes;
use super::psi::{Pat, Pmt, PmtStream};
use crate::time::PTS_MASK;

/// PMT PID and first elementary PID, as ffmpeg numbers them (familiar in analysers).
pub const PMT_PID: u16 = 0x1000;
pub const FIRST_ES_PID: u16 = 0x100;
/// The PCR runs this far ahead of the DTS of the frame being written (decoder buffer time).
pub const PCR_LEAD_90K: i64 = 63_000;
/// PAT/PMT repetition when no keyframe forces it sooner.
pub const PSI_INTERVAL_90K: i64 = 9_000;
/// PCR repetition: a PCR-only packet is added before a frame when the last PCR is this old.
pub const PCR_INTERVAL_90K: i64 = 2_700;

/// Append one packet carrying a whole PSI `section` (pointer field 0, PUSI set, stuffed with
/// 0xFF) on `pid` with continuity counter `cc`. The caller keeps sections within one packet
/// (at most 183 bytes).
pub fn push_section_packet(pid: u16, cc: u8, section: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[
        SYNC,
        0x40 | (pid >> 8) as u8 & 0x1F,
        pid as u8,
        0x10 | cc & 0x0F,
        0,
    ]);
    out.extend_from_slice(&section[..section.len().min(PACKET_LEN - 5)]);
    out.resize(start + PACKET_LEN, 0xFF);
}

/// Append a packet on `pid` with only an adaptation field carrying `pcr27` (27 MHz). It has no
/// payload, so `cc` must repeat the PID's last counter (ISO/IEC 13818-1 §2.4.3.3).
pub fn push_pcr_only_packet(pid: u16, cc: u8, pcr27: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[SYNC, (pid >> 8) as u8 & 0x1F, pid as u8, 0x20 | cc & 0x0F]);
    out.extend_from_slice(&[183, 0x10]);
    let mut pcr = [0u8; 6];
    write_pcr(pcr27, &mut pcr);
    out.extend_from_slice(&pcr);
    out.resize(start + PACKET_LEN, 0xFF);
}

/// One elementary stream to mux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub stream_type: u8,
    pub stream_id: u8,
    pub language: Option<String>,
    pub video: bool,
}

impl StreamSpec {
    /// A video stream (`0x1B` H.264, `0x24` H.265) with the usual stream id.
    pub fn video(stream_type: u8) -> StreamSpec {
        StreamSpec {
            stream_type,
            stream_id: pes::STREAM_ID_VIDEO,
            language: None,
            video: true,
        }
    }

    /// An audio stream (`0x0F` AAC/ADTS, `0x03`/`0x04` MPEG audio) with the usual stream id.
    pub fn audio(stream_type: u8, language: Option<String>) -> StreamSpec {
        StreamSpec {
            stream_type,
            stream_id: pes::STREAM_ID_AUDIO,
            language,
            video: false,
        }
    }
}

/// Where a frame landed in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Offset of the PAT written just before this frame, if one was.
    pub psi_offset: Option<u64>,
    /// Offset of the TS packet that starts the frame's PES.
    pub pes_offset: u64,
    /// Offset just past the frame's last packet.
    pub end_offset: u64,
    /// The PCR in force when the frame starts (27 MHz).
    pub pcr: u64,
}

#[derive(Debug, Clone)]
struct EsState {
    spec: StreamSpec,
    pid: u16,
    cc: u8,
}

/// The muxer: owns continuity counters, PCR cadence and PSI repetition.
#[derive(Debug, Clone)]
pub struct Muxer {
    streams: Vec<EsState>,
    pcr_stream: usize,
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    written: u64,
    last_pcr: Option<i64>,
    last_psi: Option<i64>,
    clock: i64,
}

impl Muxer {
    /// `streams` in PID order; the first video stream carries the PCR (else the first stream).
    pub fn new(streams: Vec<StreamSpec>) -> Muxer {
        let pcr_stream = streams.iter().position(|s| s.video).unwrap_or(0);
        let es: Vec<EsState> = streams
            .into_iter()
            .enumerate()
            .map(|(i, spec)| EsState {
                pid: FIRST_ES_PID + i as u16,
                spec,
                cc: 0,
            })
            .collect();
        let pat = Pat {
            transport_stream_id: 1,
            programs: vec![(1, PMT_PID)],
        }
        .to_section();
        let pmt = Pmt {
            program_number: 1,
            pcr_pid: es.get(pcr_stream).map_or(0x1FFF, |s| s.pid),
            streams: es
                .iter()
                .map(|s| PmtStream {
                    stream_type: s.spec.stream_type,
                    pid: s.pid,
                    descriptors: s
                        .spec
                        .language
                        .as_deref()
                        .map(PmtStream::language_descriptor)
                        .unwrap_or_default(),
                })
                .collect(),
        }
        .to_section();
        Muxer {
            streams: es,
            pcr_stream,
            pat,
            pmt,
            pat_cc: 0,
            pmt_cc: 0,
            written: 0,
            last_pcr: None,
            last_psi: None,
            clock: 0,
        }
    }

    pub fn pid(&self, stream: usize) -> Option<u16> {
        self.streams.get(stream).map(|s| s.pid)
    }

    pub fn pcr_pid(&self) -> Option<u16> {
        self.pid(self.pcr_stream)
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    fn push_section(&mut self, pid: u16, table: bool, out: &mut Vec<u8>) {
        let (section, cc) = if table {
            (&self.pat, &mut self.pat_cc)
        } else {
            (&self.pmt, &mut self.pmt_cc)
        };
        // Our sections fit one packet (PAT 16 bytes; PMT 12 + 5..11 per stream).
        push_section_packet(pid, *cc, section, out);
        *cc = (*cc + 1) & 0x0F;
        self.written += PACKET_LEN as u64;
    }

    fn pcr27(&self) -> u64 {
        (self.clock.max(0) as u64 & PTS_MASK) * 300
    }

    /// A packet on the PCR PID with only an adaptation field carrying the PCR (CC unchanged).
    fn push_pcr_only(&mut self, out: &mut Vec<u8>) {
        let pid = self.streams[self.pcr_stream].pid;
        let cc = self.streams[self.pcr_stream].cc;
        push_pcr_only_packet(pid, cc.wrapping_sub(1) & 0x0F, self.pcr27(), out);
        self.written += PACKET_LEN as u64;
        self.last_pcr = Some(self.clock);
    }

    /// Write one frame as a PES. `pts`/`dts` are 90 kHz and must be ≥ 0 (the caller shifts its
    /// timeline; the muxer wraps to 33 bits on output). Frames must come in DTS order across
    /// streams (interleaved) for the PCR to be meaningful.
    pub fn write_frame(
        &mut self,
        stream: usize,
        pts: i64,
        dts: i64,
        keyframe: bool,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Written {
        let Some(es) = self.streams.get(stream) else {
            return Written {
                psi_offset: None,
                pes_offset: self.written,
                end_offset: self.written,
                pcr: self.pcr27(),
            };
        };
        let is_video = es.spec.video;
        let stream_id = es.spec.stream_id;
        let is_pcr = stream == self.pcr_stream;
        self.clock = self.clock.max(dts - PCR_LEAD_90K);

        let mut psi_offset = None;
        let psi_due = self
            .last_psi
            .is_none_or(|t| self.clock - t >= PSI_INTERVAL_90K);
        if (is_video && keyframe) || psi_due {
            psi_offset = Some(self.written);
            self.push_section(PID_PAT, true, out);
            self.push_section(PMT_PID, false, out);
            self.last_psi = Some(self.clock);
        }
        let pcr_due = self
            .last_pcr
            .is_none_or(|t| self.clock - t >= PCR_INTERVAL_90K);
        if pcr_due && !is_pcr {
            self.push_pcr_only(out);
        }
        let with_pcr = is_pcr && (pcr_due || keyframe);
        let pcr = self.pcr27();
        let pes_offset = self.written;

        let mut header = Vec::with_capacity(19);
        pes::write_header(
            stream_id,
            pts as u64 & PTS_MASK,
            Some(dts as u64 & PTS_MASK),
            data.len(),
            &mut header,
        );
        let es = &mut self.streams[stream];
        let pid = es.pid;
        let total = header.len() + data.len();
        let mut sent = 0usize; // bytes of header+data sent
        let mut first = true;
        while sent < total || first {
            let start = out.len();
            let pusi = if first { 0x40 } else { 0 };
            out.extend_from_slice(&[SYNC, pusi | (pid >> 8) as u8, pid as u8, 0]);
            // Adaptation field content (without its length byte).
            let mut af: [u8; 8] = [0; 8];
            let mut af_len = 0usize;
            if first && (with_pcr || keyframe) {
                af[0] = if keyframe { 0x40 } else { 0 };
                af_len = 1;
                if with_pcr {
                    af[0] |= 0x10;
                    write_pcr(pcr, &mut af[1..7]);
                    af_len = 7;
                }
            }
            let has_af = af_len > 0;
            let room = PACKET_LEN - 4 - if has_af { 1 + af_len } else { 0 };
            let remaining = total - sent;
            let (take, stuffing) = if remaining >= room {
                (room, 0)
            } else {
                (remaining, room - remaining)
            };
            // Stuffing goes in the adaptation field: grow it (or create it).
            let afc;
            if has_af || stuffing > 0 {
                afc = 0x30;
                let (len_byte, flags_needed) = if has_af {
                    (af_len + stuffing, false)
                } else if stuffing == 1 {
                    (0, false)
                } else {
                    (stuffing - 1, true)
                };
                out.push(len_byte as u8);
                if has_af {
                    out.extend_from_slice(&af[..af_len]);
                    out.resize(out.len() + stuffing, 0xFF);
                } else if flags_needed {
                    out.push(0x00);
                    out.resize(out.len() + stuffing - 2, 0xFF);
                }
            } else {
                afc = 0x10;
            }
            out[start + 3] = afc | es.cc;
            es.cc = (es.cc + 1) & 0x0F;
            // Payload: header bytes first, then data.
            let mut need = take;
            if sent < header.len() {
                let h = (header.len() - sent).min(need);
                out.extend_from_slice(&header[sent..sent + h]);
                need -= h;
                sent += h;
            }
            if need > 0 {
                let d = sent - header.len();
                out.extend_from_slice(&data[d..d + need]);
                sent += need;
            }
            debug_assert_eq!(out.len() - start, PACKET_LEN);
            self.written += PACKET_LEN as u64;
            first = false;
        }
        if with_pcr {
            self.last_pcr = Some(self.clock);
        }
        Written {
            psi_offset,
            pes_offset,
            end_offset: self.written,
            pcr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::Packet;
    use super::super::pes::PesHeader;
    use super::*;

    fn specs() -> Vec<StreamSpec> {
        vec![
            StreamSpec::video(0x1B),
            StreamSpec::audio(0x0F, Some("eng".into())),
        ]
    }

    #[test]
    fn layout_cc_pcr_and_payload_round_trip() {
        let mut m = Muxer::new(specs());
        let mut out = Vec::new();
        let frame: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let w = m.write_frame(0, 70_000, 66_000, true, &frame, &mut out);
        assert_eq!(w.psi_offset, Some(0));
        assert_eq!(w.pes_offset, 376);
        let a = m.write_frame(1, 66_500, 66_500, true, &[7; 10], &mut out);
        let w2 = m.write_frame(0, 80_000, 69_600, false, &frame[..183], &mut out);
        assert_eq!(out.len() % PACKET_LEN, 0);
        assert_eq!(w.end_offset as usize, a.pes_offset as usize);
        // Re-read the video PID: CC continuous, PCR on keyframe, payload = header + frame.
        let mut cc = None;
        let mut payload = Vec::new();
        for (i, chunk) in out.chunks(PACKET_LEN).enumerate() {
            let p = Packet::parse(chunk, (i * PACKET_LEN) as u64).unwrap();
            if p.pid != 0x100 || !p.has_payload() {
                continue;
            }
            if let Some(c) = cc {
                assert_eq!(p.continuity_counter, (c + 1) & 0xF);
            }
            cc = Some(p.continuity_counter);
            if (i * PACKET_LEN) as u64 == w.pes_offset {
                assert!(p.pusi);
                assert_eq!(p.pcr(), Some(3000 * 300));
                assert!(p.adaptation.unwrap().random_access);
            }
            if (i * PACKET_LEN) as u64 >= w2.pes_offset {
                break;
            }
            payload.extend_from_slice(p.payload);
        }
        let h = PesHeader::parse(&payload, 0).unwrap();
        assert_eq!((h.pts, h.dts), (Some(70_000), Some(66_000)));
        assert_eq!(&payload[h.header_len..], &frame[..]);
    }

    #[test]
    fn stuffing_of_every_size_fills_packets_exactly() {
        for len in 0..400usize {
            let mut m = Muxer::new(specs());
            let mut out = Vec::new();
            m.write_frame(1, 63_000, 63_000, true, &vec![1u8; len], &mut out);
            assert_eq!(out.len() % PACKET_LEN, 0, "len {len}");
            let mut data = Vec::new();
            for c in out.chunks(PACKET_LEN) {
                let p = Packet::parse(c, 0).unwrap();
                if p.pid == 0x101 {
                    data.extend_from_slice(p.payload);
                }
            }
            let h = PesHeader::parse(&data, 0).unwrap();
            assert_eq!(data.len() - h.header_len, len, "len {len}");
        }
    }
}
