//! The MPEG-TS demuxer: elementary streams of the first program and their PES frames, from a
//! whole file in memory (the caller mmaps it).
//!
//! Layers: [`Framing`] yields 188-byte packets (any stride, resynchronised); this module checks
//! continuity counters and PCRs, assembles PSI sections (PAT, then the first program's PMT) and
//! PES packets per PID, and hands out complete frames **in file order of their first packet**
//! (a frame that completes early waits for the earlier-starting PES of another PID).
//!
//! Damaged input is the normal case for TS, so apart from "no sync byte at all" (an error from
//! [`Demuxer::new`]) and "no PMT in the whole file", every problem is skipped and counted in
//! [`DemuxStats`]; the first few are kept with their byte offset and PID in
//! [`Demuxer::errors`]. Memory is bounded: a section is at most [`MAX_SECTION`] bytes, a PES at
//! most [`MAX_PES`] bytes, and frames waiting for an earlier one at most [`MAX_WAITING`] bytes.
//!
//! Choices worth knowing:
//! - Packets before the first PAT are counted ([`DemuxStats::packets_before_pat`]) and ignored;
//!   so are ES packets between the PAT and the PMT. A PES whose start was missed (file starts
//!   mid-PES) is skipped up to the next PUSI on its PID.
//! - The first PAT and the first PMT win; later versions are not followed (VOD files have one).
//! - Continuity: per PID (except the null PID), a packet with payload must increment the counter,
//!   one without must repeat it; the discontinuity_indicator resets it; one duplicate packet
//!   (same counter, with payload) is allowed and dropped. A CC error inside a PES is only counted:
//!   the frame is still assembled from what arrived. On a PSI PID it drops the partial section.
//! - Packets with transport_error_indicator set are counted and dropped; TS-level scrambled
//!   packets on an ES PID are counted and dropped.
//! - PCRs are counted on the PMT's PCR_PID; a discontinuity is a step backwards or forwards by more
//!   than [`PCR_MAX_GAP`] (100 ms, the standard's maximum PCR interval) without the
//!   discontinuity_indicator.
//! - PTS/DTS are unwrapped per stream with one [`Unwrapper`] fed DTS then PTS, so both share a
//!   lap across the 33-bit wrap.

use std::collections::BTreeMap;

use super::framing::{Framing, FramingStats};
use super::packet::{PID_NULL, PID_PAT, Packet};
use super::pes::PesHeader;
use super::psi::{Pat, Pmt, TABLE_PAT, TABLE_PMT};
use super::stream_type;
use crate::model::Codec;
use crate::time::Unwrapper;
use crate::{Error, Result};

/// Largest PSI section assembled (the 12-bit section_length allows 4,098 bytes).
pub const MAX_SECTION: usize = 4096;
/// Largest PES payload assembled; a longer PES is dropped and counted.
pub const MAX_PES: usize = 16 << 20;
/// Bytes of complete frames allowed to wait for an earlier-starting PES; beyond that, the PES
/// holding them back is dropped and counted (a PID that starts a PES and never ends it).
pub const MAX_WAITING: usize = 64 << 20;
/// PCR step (27 MHz) above which a PCR counts as a discontinuity: 100 ms.
pub const PCR_MAX_GAP: u64 = 2_700_000;
/// Errors kept for [`Demuxer::errors`]; the rest are only counted.
pub const MAX_KEPT_ERRORS: usize = 32;

const PCR_WRAP: u64 = (1 << 33) * 300;
const PID_COUNT: usize = 0x2000;
const CC_UNKNOWN: u8 = 0x80;
const CC_DUPLICATE_SEEN: u8 = 0x40;
/// The optional PES header is at most 9 + 255 bytes.
const MAX_PES_HEADER: usize = 9 + 255;

/// An elementary stream of the program, as the PMT lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsStream {
    pub pid: u16,
    pub stream_type: u8,
    pub codec: Codec,
    /// ISO 639 language from descriptor 0x0A.
    pub language: Option<String>,
}

/// One complete PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesFrame {
    pub pid: u16,
    /// Offset in the data of the sync byte of the TS packet whose PUSI started this PES (for
    /// M2TS, 4 bytes after the start of its 192-byte packet).
    pub offset: u64,
    /// 90 kHz, unwrapped per stream.
    pub pts: Option<i64>,
    /// 90 kHz, unwrapped per stream; equals `pts` when the header has no DTS.
    pub dts: Option<i64>,
    /// random_access_indicator of the first packet's adaptation field.
    pub random_access: bool,
    /// The PES payload, after the PES header.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub framing: FramingStats,
    pub cc_errors: u64,
    /// Packets (other than PAT and null packets) seen before the first valid PAT.
    pub packets_before_pat: u64,
    /// PCRs on the PCR_PID.
    pub pcr_count: u64,
    pub pcr_discontinuities: u64,
    /// Packets with transport_error_indicator set (dropped).
    pub transport_errors: u64,
    /// The first program's PMT PID, once the PAT was seen.
    pub pmt_pid: Option<u16>,
    /// Packets whose header could not be parsed (adaptation field past the end); dropped.
    pub packet_errors: u64,
    /// PAT/PMT sections that were cut short, too long or failed to parse (CRC, lengths).
    pub psi_errors: u64,
    /// PES packets with a bad header, over [`MAX_PES`], holding back too much (all dropped) or
    /// shorter than their PES_packet_length (delivered anyway).
    pub pes_errors: u64,
    /// TS-level scrambled packets on an ES PID (dropped).
    pub scrambled_packets: u64,
}

/// Assembles PSI sections of one PID across packets (pointer_field, continuation packets,
/// several sections in one packet, 0xFF stuffing).
#[derive(Debug, Default)]
struct SectionAsm {
    buf: Vec<u8>,
    active: bool,
}

impl SectionAsm {
    fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Append bytes of the current section up to its end; returns how many were used.
    fn push(&mut self, bytes: &[u8], done: &mut Vec<Vec<u8>>, errors: &mut Vec<String>) -> usize {
        let mut used = 0;
        if self.buf.len() < 3 {
            used = (3 - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..used]);
            if self.buf.len() < 3 {
                return used;
            }
        }
        let total = 3 + ((usize::from(self.buf[1] & 0x0F) << 8) | usize::from(self.buf[2]));
        if total > MAX_SECTION {
            errors.push(format!(
                "section of {total} bytes is over the {MAX_SECTION}-byte limit"
            ));
            self.reset();
            return bytes.len();
        }
        let n = (total - self.buf.len()).min(bytes.len() - used);
        self.buf.extend_from_slice(&bytes[used..used + n]);
        if self.buf.len() == total {
            done.push(std::mem::take(&mut self.buf));
            self.active = false;
        }
        used + n
    }

    /// Feed one packet's payload; complete sections are appended to `done`.
    fn feed(
        &mut self,
        payload: &[u8],
        pusi: bool,
        done: &mut Vec<Vec<u8>>,
        errors: &mut Vec<String>,
    ) {
        if !pusi {
            if self.active {
                self.push(payload, done, errors);
            }
            return;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            errors.push("payload_unit_start_indicator set on an empty payload".into());
            self.reset();
            return;
        };
        let Some((tail, mut rest)) = rest.split_at_checked(usize::from(pointer)) else {
            errors.push(format!("pointer_field {pointer} runs past the packet"));
            self.reset();
            return;
        };
        if self.active {
            self.push(tail, done, errors);
            if self.active {
                errors.push("section cut short by the start of the next one".into());
            }
        }
        self.reset();
        while let Some(&table_id) = rest.first() {
            if table_id == 0xFF {
                break; // stuffing up to the end of the packet
            }
            self.active = true;
            let n = self.push(rest, done, errors);
            rest = &rest[n..];
            if self.active {
                break; // continues in the next packet
            }
        }
    }
}

/// A PES being assembled.
#[derive(Debug)]
struct Partial {
    offset: u64,
    random_access: bool,
    header: Option<PesHeader>,
    /// The PES header bytes while the header spans packets (rare).
    head: Vec<u8>,
    data: Vec<u8>,
    /// Payload length promised by PES_packet_length (None: unbounded).
    expected: Option<usize>,
}

#[derive(Debug)]
struct EsState {
    pid: u16,
    /// False for stream types carried in sections.
    assemble: bool,
    partial: Option<Partial>,
    clock: Unwrapper,
}

#[derive(Debug, Clone, Copy)]
enum Cc {
    Ok,
    Duplicate,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Psi {
    Pat,
    Pmt,
}

/// Elementary streams and PES frames of the first program of an MPEG-TS file.
#[derive(Debug)]
pub struct Demuxer<'a> {
    framing: Framing<'a>,
    stats: DemuxStats,
    errors: Vec<Error>,
    /// Per PID: last continuity counter (low nibble) | CC_UNKNOWN | CC_DUPLICATE_SEEN.
    cc: Box<[u8]>,
    /// Per PID: index + 1 into `es`; 0 when the PID is not an elementary stream of the program.
    es_slot: Box<[u16]>,
    /// (program_number, PMT PID) of the first program of the first PAT.
    program: Option<(u16, u16)>,
    pat_asm: SectionAsm,
    pmt_asm: SectionAsm,
    pmt_seen: bool,
    pcr_pid: Option<u16>,
    last_pcr: Option<u64>,
    streams: Vec<EsStream>,
    es: Vec<EsState>,
    /// Complete frames by offset, waiting for earlier-starting PES of other PIDs.
    ready: BTreeMap<u64, PesFrame>,
    ready_bytes: usize,
    max_pes: usize,
    max_waiting: usize,
    eof: bool,
    no_pmt_reported: bool,
}

impl<'a> Demuxer<'a> {
    /// Detect the packet stride. Fails only when `data` has no MPEG-TS sync pattern.
    pub fn new(data: &'a [u8]) -> Result<Demuxer<'a>> {
        Ok(Demuxer {
            framing: Framing::new(data)?,
            stats: DemuxStats::default(),
            errors: Vec::new(),
            cc: vec![CC_UNKNOWN; PID_COUNT].into_boxed_slice(),
            es_slot: vec![0u16; PID_COUNT].into_boxed_slice(),
            program: None,
            pat_asm: SectionAsm::default(),
            pmt_asm: SectionAsm::default(),
            pmt_seen: false,
            pcr_pid: None,
            last_pcr: None,
            streams: Vec::new(),
            es: Vec::new(),
            ready: BTreeMap::new(),
            ready_bytes: 0,
            max_pes: MAX_PES,
            max_waiting: MAX_WAITING,
            eof: false,
            no_pmt_reported: false,
        })
    }

    /// Packet stride of the input: 188, 192 or 204.
    pub fn stride(&self) -> usize {
        self.framing.stride()
    }

    /// Next complete PES frame of any elementary stream of the first program, in file order of
    /// their first packet. Returns `Some(Err(_))` once when the file ends without a PMT.
    pub fn next_frame(&mut self) -> Option<Result<PesFrame>> {
        loop {
            if let Some(f) = self.pop_ready() {
                return Some(Ok(f));
            }
            if !self.step() && self.ready.is_empty() {
                if !self.pmt_seen && !self.no_pmt_reported {
                    self.no_pmt_reported = true;
                    return Some(Err(self.no_pmt_error()));
                }
                return None;
            }
        }
    }

    /// The program's elementary streams; empty until the PMT was seen (see
    /// [`Demuxer::probe_streams`]).
    pub fn streams(&self) -> &[EsStream] {
        &self.streams
    }

    /// Read ahead until the PMT is parsed; frames completed meanwhile are kept for
    /// [`Demuxer::next_frame`]. Errors when the whole file has no usable PMT.
    pub fn probe_streams(&mut self) -> Result<&[EsStream]> {
        while !self.pmt_seen {
            if !self.step() {
                self.no_pmt_reported = true;
                return Err(self.no_pmt_error());
            }
        }
        Ok(&self.streams)
    }

    pub fn stats(&self) -> DemuxStats {
        DemuxStats {
            framing: self.framing.stats(),
            ..self.stats
        }
    }

    /// The first [`MAX_KEPT_ERRORS`] non-fatal problems, with offset and PID.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    fn no_pmt_error(&self) -> Error {
        let reason = match self.program {
            None => "no PMT found: no valid PAT in the whole file".to_string(),
            Some((n, pid)) => {
                format!("no PMT found: PAT points program {n} to PID {pid:#x}, no valid PMT there")
            }
        };
        Error::invalid("MPEG-TS program", self.framing.data().len() as u64, reason)
    }

    fn note(&mut self, e: Error) {
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push(e);
        }
    }

    /// Process one packet; false at the end of the data (after flushing every PES).
    fn step(&mut self) -> bool {
        if self.eof {
            return false;
        }
        match self.framing.next() {
            Some((offset, raw)) => {
                self.packet(offset, raw);
                true
            }
            None => {
                self.eof = true;
                for i in 0..self.es.len() {
                    if let Some(p) = self.es[i].partial.take() {
                        self.complete(i, p);
                    }
                }
                false
            }
        }
    }

    fn packet(&mut self, offset: u64, raw: &'a [u8]) {
        let pkt = match Packet::parse(raw, offset) {
            Ok(p) => p,
            Err(e) => {
                self.stats.packet_errors += 1;
                self.note(e);
                return;
            }
        };
        if pkt.transport_error {
            self.stats.transport_errors += 1;
            return;
        }
        let pid = pkt.pid;
        if pid == PID_NULL {
            return;
        }
        let discontinuity = pkt.adaptation.is_some_and(|a| a.discontinuity);
        // adaptation_field_control's payload bit, even when the adaptation field fills the packet.
        let has_payload = raw[3] & 0x10 != 0;
        let cc_ok = match self.continuity(pid, pkt.continuity_counter, has_payload, discontinuity) {
            Cc::Ok => true,
            Cc::Duplicate => return,
            Cc::Error => false,
        };
        let Some((_, pmt_pid)) = self.program else {
            if pid == PID_PAT {
                self.psi(Psi::Pat, offset, &pkt, cc_ok);
            } else {
                self.stats.packets_before_pat += 1;
            }
            return;
        };
        if let Some(pcr) = pkt.pcr().filter(|_| Some(pid) == self.pcr_pid) {
            self.pcr(pcr, discontinuity);
        }
        if pid == pmt_pid {
            if !self.pmt_seen {
                self.psi(Psi::Pmt, offset, &pkt, cc_ok);
            }
            return;
        }
        let slot = self.es_slot[usize::from(pid)];
        if slot != 0 {
            self.es_packet(usize::from(slot - 1), offset, &pkt);
        }
    }

    fn continuity(&mut self, pid: u16, cc: u8, has_payload: bool, discontinuity: bool) -> Cc {
        let state = &mut self.cc[usize::from(pid)];
        let prev = *state;
        *state = cc;
        if prev & CC_UNKNOWN != 0 || discontinuity {
            return Cc::Ok;
        }
        let last = prev & 0x0F;
        let ok = if has_payload {
            if cc == (last + 1) & 0x0F {
                true
            } else if cc == last && prev & CC_DUPLICATE_SEEN == 0 {
                *state = cc | CC_DUPLICATE_SEEN;
                return Cc::Duplicate;
            } else {
                false
            }
        } else {
            cc == last
        };
        if ok {
            Cc::Ok
        } else {
            self.stats.cc_errors += 1;
            Cc::Error
        }
    }

    fn pcr(&mut self, pcr: u64, discontinuity: bool) {
        self.stats.pcr_count += 1;
        let pcr = pcr % PCR_WRAP;
        if let Some(last) = self.last_pcr {
            let forward = (pcr + PCR_WRAP - last) % PCR_WRAP;
            if !discontinuity && forward > PCR_MAX_GAP {
                self.stats.pcr_discontinuities += 1;
            }
        }
        self.last_pcr = Some(pcr);
    }

    fn psi(&mut self, which: Psi, offset: u64, pkt: &Packet<'_>, cc_ok: bool) {
        let asm = match which {
            Psi::Pat => &mut self.pat_asm,
            Psi::Pmt => &mut self.pmt_asm,
        };
        if !cc_ok {
            asm.reset();
        }
        let mut done = Vec::new();
        let mut problems = Vec::new();
        asm.feed(pkt.payload, pkt.pusi, &mut done, &mut problems);
        for reason in problems {
            self.psi_error(offset, pkt.pid, reason);
        }
        for section in done {
            // Stop at the first useful one: later sections of this packet are repeats.
            if (which == Psi::Pat && self.program.is_some()) || (which == Psi::Pmt && self.pmt_seen)
            {
                break;
            }
            self.section(which, offset, pkt.pid, &section);
        }
    }

    fn psi_error(&mut self, offset: u64, pid: u16, reason: impl std::fmt::Display) {
        self.stats.psi_errors += 1;
        self.note(Error::invalid(
            "PSI section",
            offset,
            format!("PID {pid:#x}: {reason}"),
        ));
    }

    fn section(&mut self, which: Psi, offset: u64, pid: u16, sec: &[u8]) {
        let table_id = sec[0];
        // current_next_indicator 0: a table announced for later, not in force yet.
        let current = sec.get(5).is_none_or(|b| b & 1 == 1);
        match which {
            Psi::Pat if table_id == TABLE_PAT && current => match Pat::parse(sec) {
                Ok(pat) => {
                    if let Some(&(number, pmt_pid)) = pat.programs.first() {
                        self.program = Some((number, pmt_pid));
                        self.stats.pmt_pid = Some(pmt_pid);
                        self.pat_asm = SectionAsm::default();
                    }
                }
                Err(e) => self.psi_error(offset, pid, e),
            },
            Psi::Pmt if table_id == TABLE_PMT && current => match Pmt::parse(sec) {
                Ok(pmt) if Some(pmt.program_number) == self.program.map(|p| p.0) => {
                    self.install(pmt)
                }
                Ok(_) => {} // another program's PMT sharing the PID
                Err(e) => self.psi_error(offset, pid, e),
            },
            _ => {}
        }
    }

    fn install(&mut self, pmt: Pmt) {
        let pmt_pid = self.program.map(|p| p.1);
        for s in pmt.streams {
            let pid = s.pid;
            if pid == PID_PAT
                || pid == PID_NULL
                || Some(pid) == pmt_pid
                || self.es_slot[usize::from(pid)] != 0
            {
                continue;
            }
            self.streams.push(EsStream {
                pid,
                stream_type: s.stream_type,
                codec: stream_type::codec_for(s.stream_type, &s.descriptors),
                language: s.language(),
            });
            self.es.push(EsState {
                pid,
                assemble: !stream_type::carries_sections(s.stream_type),
                partial: None,
                clock: Unwrapper::default(),
            });
            self.es_slot[usize::from(pid)] = self.es.len() as u16;
        }
        self.pcr_pid = (pmt.pcr_pid != PID_NULL).then_some(pmt.pcr_pid);
        self.pmt_seen = true;
        self.pmt_asm = SectionAsm::default();
    }

    fn es_packet(&mut self, i: usize, offset: u64, pkt: &Packet<'_>) {
        if !self.es[i].assemble || pkt.payload.is_empty() {
            return;
        }
        if pkt.scrambling != 0 {
            self.stats.scrambled_packets += 1;
            return;
        }
        if pkt.pusi {
            if let Some(p) = self.es[i].partial.take() {
                self.complete(i, p);
            }
            self.es[i].partial = Some(Partial {
                offset,
                random_access: pkt.adaptation.is_some_and(|a| a.random_access),
                header: None,
                head: Vec::new(),
                data: Vec::new(),
                expected: None,
            });
        }
        if self.es[i].partial.is_some() {
            self.pes_bytes(i, pkt.payload);
        }
    }

    /// Append payload bytes to stream `i`'s PES (which exists).
    fn pes_bytes(&mut self, i: usize, bytes: &[u8]) {
        let pid = self.es[i].pid;
        let max_pes = self.max_pes;
        let Some(p) = self.es[i].partial.as_mut() else {
            return;
        };
        if p.header.is_some() {
            p.data.extend_from_slice(bytes);
        } else {
            // Parse in place when the header fits in this packet (the usual case).
            let buf = if p.head.is_empty() {
                bytes
            } else {
                p.head.extend_from_slice(bytes);
                &p.head[..]
            };
            match PesHeader::parse(buf, p.offset) {
                Ok(h) => {
                    let bounded = usize::from(h.packet_length);
                    let expected = match bounded {
                        0 => Ok(None),
                        n => (n + 6)
                            .checked_sub(h.header_len)
                            .map(Some)
                            .ok_or(h.header_len),
                    };
                    match expected {
                        Ok(expected) => {
                            p.expected = expected;
                            p.data = Vec::with_capacity(expected.unwrap_or(0).min(max_pes));
                            p.data.extend_from_slice(&buf[h.header_len..]);
                            p.header = Some(h);
                            p.head = Vec::new();
                        }
                        Err(header_len) => {
                            let offset = p.offset;
                            self.es[i].partial = None;
                            let reason = format!(
                                "PID {pid:#x}: PES_packet_length {bounded} shorter than its {header_len}-byte header"
                            );
                            self.pes_error(Error::invalid("PES packet", offset, reason));
                            return;
                        }
                    }
                }
                Err(Error::Truncated { .. }) if buf.len() < MAX_PES_HEADER => {
                    if p.head.is_empty() {
                        p.head.extend_from_slice(bytes);
                    }
                    return;
                }
                Err(e) => {
                    let offset = p.offset;
                    self.es[i].partial = None;
                    self.pes_error(Error::invalid(
                        "PES packet",
                        offset,
                        format!("PID {pid:#x}: {e}"),
                    ));
                    return;
                }
            }
        }
        if let Some(n) = p.expected.filter(|&n| p.data.len() >= n) {
            p.data.truncate(n);
            if let Some(p) = self.es[i].partial.take() {
                self.complete(i, p);
            }
            return;
        }
        if p.data.len() > max_pes {
            let offset = p.offset;
            self.es[i].partial = None;
            let reason = format!("PID {pid:#x}: PES over {max_pes} bytes, dropped");
            self.pes_error(Error::invalid("PES packet", offset, reason));
        }
    }

    fn pes_error(&mut self, e: Error) {
        self.stats.pes_errors += 1;
        self.note(e);
    }

    /// A PES ended (next PUSI, length reached or end of data): queue it as a frame.
    fn complete(&mut self, i: usize, p: Partial) {
        let pid = self.es[i].pid;
        let Some(h) = p.header else {
            let e = Error::Truncated {
                what: "PES header",
                offset: p.offset,
                needed: 9usize
                    .max(p.head.get(8).map_or(0, |&n| 9 + usize::from(n)))
                    .saturating_sub(p.head.len()) as u64,
            };
            self.pes_error(e);
            return;
        };
        if let Some(n) = p.expected.filter(|&n| p.data.len() < n) {
            let reason = format!(
                "PID {pid:#x}: PES ended {} bytes short of its PES_packet_length",
                n - p.data.len()
            );
            self.pes_error(Error::invalid("PES packet", p.offset, reason));
        }
        let clock = &mut self.es[i].clock;
        let (pts, dts) = match h.pts {
            Some(pts) => {
                let dts = h.dts.map(|d| clock.unwrap(d));
                let pts = clock.unwrap(pts);
                (Some(pts), Some(dts.unwrap_or(pts)))
            }
            None => (None, None),
        };
        self.ready_bytes += p.data.len();
        self.ready.insert(
            p.offset,
            PesFrame {
                pid,
                offset: p.offset,
                pts,
                dts,
                random_access: p.random_access,
                data: p.data,
            },
        );
    }

    /// The earliest complete frame, unless a PES that started before it is still open.
    fn pop_ready(&mut self) -> Option<PesFrame> {
        let (&first, _) = self.ready.first_key_value()?;
        let blocked = |es: &[EsState]| {
            es.iter()
                .any(|e| e.partial.as_ref().is_some_and(|p| p.offset < first))
        };
        if blocked(&self.es) {
            if self.ready_bytes <= self.max_waiting {
                return None;
            }
            for i in 0..self.es.len() {
                if let Some(p) = self.es[i].partial.take_if(|p| p.offset < first) {
                    let reason = format!(
                        "PID {:#x}: PES holds back over {} bytes of other frames, dropped",
                        self.es[i].pid, self.max_waiting
                    );
                    self.pes_error(Error::invalid("PES packet", p.offset, reason));
                }
            }
        }
        let (_, f) = self.ready.pop_first()?;
        self.ready_bytes -= f.data.len();
        Some(f)
    }
}

impl Iterator for Demuxer<'_> {
    type Item = Result<PesFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::{SYNC, write_pcr};
    use crate::ts::pes::{STREAM_ID_AUDIO, STREAM_ID_VIDEO, write_header};
    use crate::ts::psi::PmtStream;

    const PMT_PID: u16 = 0x1000;
    const VIDEO: u16 = 0x100;
    const AUDIO: u16 = 0x101;

    /// A small TS writer for tests: packets, sections split over packets, PES split over packets.
    struct Ts {
        out: Vec<u8>,
        cc: Vec<u8>,
    }

    impl Ts {
        fn new() -> Ts {
            Ts {
                out: Vec::new(),
                cc: vec![0; PID_COUNT],
            }
        }

        /// One packet carrying as much of `payload` as fits (stuffing through the adaptation
        /// field); returns the payload bytes used.
        fn put(
            &mut self,
            pid: u16,
            pusi: bool,
            flags: u8,
            pcr: Option<u64>,
            payload: &[u8],
        ) -> usize {
            let mut af: Option<Vec<u8>> = None;
            if flags != 0 || pcr.is_some() {
                let mut a = vec![flags | if pcr.is_some() { 0x10 } else { 0 }];
                if let Some(pcr) = pcr {
                    let mut b = [0u8; 6];
                    write_pcr(pcr, &mut b);
                    a.extend_from_slice(&b);
                }
                af = Some(a);
            }
            let af_len = af.as_ref().map_or(0, |a| 1 + a.len());
            let n = payload.len().min(184 - af_len);
            let mut stuff = 184 - af_len - n;
            if stuff > 0 {
                if af.is_none() {
                    af = Some(Vec::new());
                    stuff -= 1;
                }
                let a = af.as_mut().unwrap();
                if a.is_empty() && stuff > 0 {
                    a.push(0);
                    stuff -= 1;
                }
                a.extend(std::iter::repeat_n(0xFF, stuff));
            }
            let afc = (u8::from(af.is_some()) << 1) | u8::from(n > 0);
            let cc = self.cc[usize::from(pid)];
            if n > 0 {
                self.cc[usize::from(pid)] = (cc + 1) & 0x0F;
            }
            self.out.extend_from_slice(&[
                SYNC,
                (u8::from(pusi) << 6) | (pid >> 8) as u8,
                pid as u8,
                (afc << 4) | cc,
            ]);
            if let Some(a) = af {
                self.out.push(a.len() as u8);
                self.out.extend_from_slice(&a);
            }
            self.out.extend_from_slice(&payload[..n]);
            assert_eq!(self.out.len() % 188, 0);
            n
        }

        fn section(&mut self, pid: u16, sec: &[u8]) {
            let mut data = vec![0u8];
            data.extend_from_slice(sec);
            let mut rest = &data[..];
            let mut first = true;
            while !rest.is_empty() {
                let n = self.put(pid, first, 0, None, rest);
                rest = &rest[n..];
                first = false;
            }
        }

        fn psi(&mut self, streams: &[(u8, u16, Vec<u8>)]) {
            let pat = Pat {
                transport_stream_id: 1,
                programs: vec![(1, PMT_PID)],
            };
            self.section(PID_PAT, &pat.to_section());
            let pmt = Pmt {
                program_number: 1,
                pcr_pid: VIDEO,
                streams: streams
                    .iter()
                    .map(|(t, pid, d)| PmtStream {
                        stream_type: *t,
                        pid: *pid,
                        descriptors: d.clone(),
                    })
                    .collect(),
            };
            self.section(PMT_PID, &pmt.to_section());
        }

        fn av_psi(&mut self) {
            self.psi(&[
                (0x1B, VIDEO, vec![]),
                (0x0F, AUDIO, PmtStream::language_descriptor("eng")),
            ]);
        }

        /// A PES from raw PES bytes; the first packet gets `flags` and `pcr`. Returns its offset.
        fn raw_pes(&mut self, pid: u16, pes: &[u8], flags: u8, pcr: Option<u64>) -> u64 {
            let offset = self.out.len() as u64;
            let mut rest = pes;
            let n = self.put(pid, true, flags, pcr, rest);
            rest = &rest[n..];
            while !rest.is_empty() {
                let n = self.put(pid, false, 0, None, rest);
                rest = &rest[n..];
            }
            offset
        }

        fn pes(&mut self, pid: u16, pts: u64, dts: Option<u64>, payload: &[u8], key: bool) -> u64 {
            let (sid, len) = if pid == VIDEO {
                (STREAM_ID_VIDEO, 70_000)
            } else {
                (STREAM_ID_AUDIO, payload.len())
            };
            let mut pes = Vec::new();
            write_header(sid, pts, dts, len, &mut pes);
            pes.extend_from_slice(payload);
            self.raw_pes(pid, &pes, if key { 0x40 } else { 0 }, None)
        }
    }

    fn payload(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 251) as u8)
            .collect()
    }

    fn all_frames(d: &mut Demuxer<'_>) -> Vec<PesFrame> {
        d.by_ref().map(|f| f.unwrap()).collect()
    }

    #[test]
    fn streams_and_frames_of_a_clean_stream() {
        let mut ts = Ts::new();
        ts.av_psi();
        let mut want = Vec::new();
        for i in 0..6u64 {
            let v = payload(i as usize, 1000 + 400 * i as usize);
            let off = ts.pes(
                VIDEO,
                9000 + 3600 * i,
                Some(6000 + 3600 * i),
                &v,
                i % 3 == 0,
            );
            want.push((VIDEO, off, v));
            let a = payload(100 + i as usize, 300);
            let off = ts.pes(AUDIO, 9000 + 3600 * i, None, &a, true);
            want.push((AUDIO, off, a));
        }
        let mut d = Demuxer::new(&ts.out).unwrap();
        let streams = d.probe_streams().unwrap().to_vec();
        assert_eq!(
            streams,
            vec![
                EsStream {
                    pid: VIDEO,
                    stream_type: 0x1B,
                    codec: Codec::H264,
                    language: None
                },
                EsStream {
                    pid: AUDIO,
                    stream_type: 0x0F,
                    codec: Codec::Aac,
                    language: Some("eng".into())
                },
            ]
        );
        let frames = all_frames(&mut d);
        assert_eq!(frames.len(), want.len());
        for (f, (pid, off, data)) in frames.iter().zip(&want) {
            assert_eq!((f.pid, f.offset), (*pid, *off));
            assert_eq!(&f.data, data);
        }
        let v1 = &frames[2];
        assert_eq!(
            (v1.pts, v1.dts, v1.random_access),
            (Some(12_600), Some(9600), false)
        );
        let a0 = &frames[1];
        assert_eq!(
            (a0.pts, a0.dts, a0.random_access),
            (Some(9000), Some(9000), true)
        );
        assert!(frames[0].random_access);
        let s = d.stats();
        assert_eq!(s.pmt_pid, Some(PMT_PID));
        assert_eq!(
            (
                s.cc_errors,
                s.packets_before_pat,
                s.psi_errors,
                s.pes_errors,
                s.packet_errors
            ),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(s.framing.packets as usize, ts.out.len() / 188);
        assert!(d.errors().is_empty());
        assert!(d.next_frame().is_none());
    }

    #[test]
    fn frames_come_in_order_of_their_first_packet() {
        // Video PES (unbounded) interleaved with a whole audio PES that completes first.
        let mut ts = Ts::new();
        ts.av_psi();
        let mut pes = Vec::new();
        let v = payload(1, 600);
        write_header(STREAM_ID_VIDEO, 1000, None, 70_000, &mut pes);
        pes.extend_from_slice(&v);
        let v_off = ts.out.len() as u64;
        let n = ts.put(VIDEO, true, 0, None, &pes);
        let a_off = ts.pes(AUDIO, 900, None, &payload(2, 100), true);
        let mut rest = &pes[n..];
        while !rest.is_empty() {
            let n = ts.put(VIDEO, false, 0, None, rest);
            rest = &rest[n..];
        }
        let v2_off = ts.pes(VIDEO, 4600, None, &payload(3, 50), false);
        let frames = all_frames(&mut Demuxer::new(&ts.out).unwrap());
        let got: Vec<_> = frames.iter().map(|f| (f.pid, f.offset)).collect();
        assert_eq!(got, vec![(VIDEO, v_off), (AUDIO, a_off), (VIDEO, v2_off)]);
        assert_eq!(frames[0].data, v);
    }

    #[test]
    fn pmt_spanning_two_packets_and_private_streams() {
        let mut ts = Ts::new();
        let mut long = PmtStream::language_descriptor("fra");
        long.extend_from_slice(&[0x80, 120]);
        long.extend(std::iter::repeat_n(0x55, 120));
        let streams = vec![
            (0x24, VIDEO, long.clone()),
            (0x06, AUDIO, [long.clone(), vec![0x7A, 1, 0]].concat()),
            (0x06, 0x102, b"\x05\x04Opus".to_vec()),
            (0x86, 0x103, vec![]),
        ];
        ts.psi(&streams);
        // PAT + 2-packet PMT
        assert_eq!(ts.out.len(), 3 * 188);
        ts.pes(VIDEO, 0, None, &payload(0, 10), true);
        let mut d = Demuxer::new(&ts.out).unwrap();
        let s = d.probe_streams().unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.pid, s.codec.clone(), s.language.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (VIDEO, Codec::H265, Some("fra".into())),
                (AUDIO, Codec::Eac3, Some("fra".into())),
                (0x102, Codec::Other("opus".into()), None),
                (0x103, Codec::Other("0x86".into()), None),
            ]
        );
        assert_eq!(all_frames(&mut d).len(), 1);
        assert_eq!(d.stats().psi_errors, 0);
    }

    #[test]
    fn section_assembly_with_pointer_field_and_several_sections() {
        let pmt = Pmt {
            program_number: 1,
            pcr_pid: VIDEO,
            streams: (0..40)
                .map(|i| PmtStream {
                    stream_type: 0x1B,
                    pid: 0x200 + i,
                    descriptors: vec![],
                })
                .collect(),
        }
        .to_section();
        assert!(pmt.len() > 183);
        let pat = Pat {
            transport_stream_id: 7,
            programs: vec![(1, PMT_PID)],
        }
        .to_section();
        let mut asm = SectionAsm::default();
        let (mut done, mut errs) = (Vec::new(), Vec::new());
        // Packet 1: start of the PMT.
        let mut p1 = vec![0u8];
        p1.extend_from_slice(&pmt[..183]);
        asm.feed(&p1, true, &mut done, &mut errs);
        assert!(done.is_empty() && asm.active);
        // Packet 2: pointer_field to the PMT's tail, then two more sections, then stuffing.
        let tail = &pmt[183..];
        let mut p2 = vec![tail.len() as u8];
        p2.extend_from_slice(tail);
        p2.extend_from_slice(&pat);
        p2.extend_from_slice(&pat);
        p2.resize(184, 0xFF);
        asm.feed(&p2, true, &mut done, &mut errs);
        assert_eq!(done, vec![pmt.clone(), pat.clone(), pat.clone()]);
        assert!(errs.is_empty());
        assert!(!asm.active);
        // Continuation without a started section is ignored.
        done.clear();
        asm.feed(&[0x12; 184], false, &mut done, &mut errs);
        assert!(done.is_empty() && errs.is_empty());
        // A section cut short by the next PUSI, a bad pointer_field, an oversized section.
        asm.feed(&p1, true, &mut done, &mut errs);
        asm.feed(&[0, 0xFF], true, &mut done, &mut errs);
        asm.feed(&[200, 0], true, &mut done, &mut errs);
        asm.feed(&[0, 0x02, 0xBF, 0xFF, 0, 0], true, &mut done, &mut errs);
        assert!(done.is_empty());
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(!asm.active);
        // A section whose 3-byte header itself spans packets.
        asm.feed(&[pat.len() as u8 - 2, 0, 0xB0], false, &mut done, &mut errs);
        let mut p = vec![0u8; 182];
        p.extend_from_slice(&pat[..2]);
        p[0] = 181;
        asm.feed(&p, true, &mut done, &mut errs);
        asm.feed(&pat[2..], false, &mut done, &mut errs);
        assert_eq!(done, vec![pat]);
    }

    #[test]
    fn bad_sections_are_counted_not_fatal() {
        let mut ts = Ts::new();
        let mut pat = Pat {
            transport_stream_id: 1,
            programs: vec![(1, PMT_PID)],
        }
        .to_section();
        let n = pat.len();
        pat[n - 1] ^= 0xFF; // CRC mismatch
        ts.section(PID_PAT, &pat);
        // section_length 0xFFF: over MAX_SECTION
        ts.put(PID_PAT, true, 0, None, &[0, 0, 0xBF, 0xFF]);
        ts.av_psi();
        ts.pes(AUDIO, 0, None, &[1, 2, 3], true);
        let mut d = Demuxer::new(&ts.out).unwrap();
        assert_eq!(all_frames(&mut d).len(), 1);
        assert_eq!(d.stats().psi_errors, 2);
        assert_eq!(d.errors().len(), 2);
        assert!(
            d.errors()[0].to_string().contains("CRC"),
            "{}",
            d.errors()[0]
        );
    }

    #[test]
    fn packets_before_pat_are_counted_and_ignored() {
        let mut ts = Ts::new();
        ts.pes(VIDEO, 0, None, &payload(0, 300), true); // 2 packets
        ts.pes(AUDIO, 0, None, &payload(0, 10), true); // 1 packet
        ts.put(PID_NULL, false, 0, None, &[0xFF; 184]);
        ts.av_psi();
        let off = ts.pes(VIDEO, 3600, None, &payload(1, 10), true);
        let mut d = Demuxer::new(&ts.out).unwrap();
        let frames = all_frames(&mut d);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].offset, off);
        assert_eq!(d.stats().packets_before_pat, 3);
    }

    #[test]
    fn no_pmt_is_an_error() {
        let mut ts = Ts::new();
        ts.pes(VIDEO, 0, None, &payload(0, 300), true);
        let mut d = Demuxer::new(&ts.out).unwrap();
        let e = d.probe_streams().unwrap_err();
        assert!(e.to_string().contains("no PMT found"), "{e}");
        let mut d = Demuxer::new(&ts.out).unwrap();
        assert!(matches!(d.next_frame(), Some(Err(e)) if e.to_string().contains("no PMT found")));
        assert!(d.next_frame().is_none());
        // PAT but no PMT
        let mut ts = Ts::new();
        ts.section(
            PID_PAT,
            &Pat {
                transport_stream_id: 1,
                programs: vec![(1, PMT_PID)],
            }
            .to_section(),
        );
        let e = Demuxer::new(&ts.out).unwrap().probe_streams().unwrap_err();
        assert!(
            e.to_string().contains("no PMT found") && e.to_string().contains("0x1000"),
            "{e}"
        );
    }

    #[test]
    fn continuity_errors_duplicates_and_discontinuity() {
        let mut ts = Ts::new();
        ts.av_psi();
        let v = payload(0, 1000);
        let first = ts.pes(VIDEO, 0, None, &v, true); // 6 packets
        // Duplicate the last packet of that PES: allowed once, dropped.
        let last = ts.out[ts.out.len() - 188..].to_vec();
        ts.out.extend_from_slice(&last);
        ts.pes(VIDEO, 3600, None, &payload(1, 100), false);
        // Lose a packet's worth of counter: one CC error, the frame is still delivered.
        ts.cc[usize::from(VIDEO)] = (ts.cc[usize::from(VIDEO)] + 1) & 0x0F;
        ts.pes(VIDEO, 7200, None, &payload(2, 100), false);
        // Jump with discontinuity_indicator: no error.
        ts.cc[usize::from(VIDEO)] = (ts.cc[usize::from(VIDEO)] + 5) & 0x0F;
        let mut pes = Vec::new();
        write_header(STREAM_ID_VIDEO, 10_800, None, 0, &mut pes);
        ts.raw_pes(VIDEO, &pes, 0x80, None);
        // Adaptation-only packet keeps the counter.
        ts.put(AUDIO, false, 0x00, Some(27_000_000), &[]);
        ts.pes(AUDIO, 0, None, &[9; 20], true);
        // Two copies of one packet: the second is an error.
        let last = ts.out[ts.out.len() - 188..].to_vec();
        ts.out.extend_from_slice(&last);
        ts.out.extend_from_slice(&last);
        let mut d = Demuxer::new(&ts.out).unwrap();
        let frames = all_frames(&mut d);
        assert_eq!(frames[0].offset, first);
        assert_eq!(frames[0].data, v, "duplicate packet was not dropped");
        assert_eq!(frames.len(), 5);
        assert_eq!(d.stats().cc_errors, 2);
    }

    #[test]
    fn pts_wrap_is_unwrapped() {
        let wrap = 1u64 << 33;
        let mut ts = Ts::new();
        ts.av_psi();
        let raw: Vec<(u64, u64)> = (0..8u64)
            .map(|i| {
                let dts = wrap - 4 * 3600 + i * 3600;
                // B-frame-like PTS: ahead of DTS by 1 or 2 frames, crossing the wrap before DTS.
                (dts + 3600 * (1 + i % 2), dts)
            })
            .collect();
        for &(pts, dts) in &raw {
            ts.pes(VIDEO, pts % wrap, Some(dts % wrap), &[0; 10], false);
            ts.pes(AUDIO, dts % wrap, None, &[0; 10], true);
        }
        let frames = all_frames(&mut Demuxer::new(&ts.out).unwrap());
        let video: Vec<_> = frames.iter().filter(|f| f.pid == VIDEO).collect();
        let audio: Vec<_> = frames.iter().filter(|f| f.pid == AUDIO).collect();
        for (f, &(pts, dts)) in video.iter().zip(&raw) {
            assert_eq!((f.pts, f.dts), (Some(pts as i64), Some(dts as i64)));
        }
        assert!(audio.windows(2).all(|w| w[1].pts > w[0].pts));
        assert_eq!(audio.last().unwrap().pts, Some((wrap + 3 * 3600) as i64));
    }

    #[test]
    fn pes_header_with_extra_fields_and_spanning_packets() {
        let mut ts = Ts::new();
        ts.av_psi();
        // PTS + ESCR + PES_extension (flags byte only) + 3 stuffing bytes.
        let body = payload(5, 400);
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x84, 0x80 | 0x20 | 0x01, 5 + 6 + 1 + 3];
        let mut hdr = Vec::new();
        write_header(STREAM_ID_VIDEO, 123_456, None, 0, &mut hdr);
        pes.extend_from_slice(&hdr[9..14]); // the PTS
        pes.extend_from_slice(&[0x44, 0x00, 0x04, 0x00, 0x04, 0x01]); // ESCR
        pes.push(0x0E); // PES_extension flags: nothing present (reserved bits)
        pes.extend_from_slice(&[0xFF; 3]);
        pes.extend_from_slice(&body);
        let off1 = ts.raw_pes(VIDEO, &pes, 0, None);
        // Header split over two packets: an adaptation field leaves 7 bytes in the first.
        let mut pes2 = Vec::new();
        write_header(STREAM_ID_AUDIO, 777, Some(700), 50, &mut pes2);
        pes2.extend_from_slice(&payload(6, 50));
        let n = pes2.len();
        ts.out.extend_from_slice(&[
            SYNC,
            0x40 | (AUDIO >> 8) as u8,
            AUDIO as u8,
            0x30,
            176,
            0x40,
        ]);
        ts.out.extend(std::iter::repeat_n(0xFF, 175));
        ts.out.extend_from_slice(&pes2[..7]);
        let off2 = ts.out.len() as u64 - 188;
        ts.cc[usize::from(AUDIO)] = 1;
        let mut rest = &pes2[7..];
        while !rest.is_empty() {
            rest = &rest[ts.put(AUDIO, false, 0, None, rest)..];
        }
        assert_eq!(n, 19 + 50);
        let mut d = Demuxer::new(&ts.out).unwrap();
        let frames = all_frames(&mut d);
        assert_eq!(d.stats().pes_errors, 0, "{:?}", d.errors());
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].offset, frames[0].pts), (off1, Some(123_456)));
        assert_eq!(frames[0].data, body);
        assert_eq!(
            (frames[1].offset, frames[1].pts, frames[1].dts),
            (off2, Some(777), Some(700))
        );
        assert!(frames[1].random_access);
        assert_eq!(frames[1].data, payload(6, 50));
    }

    #[test]
    fn bad_and_oversized_pes_are_dropped_and_counted() {
        let mut ts = Ts::new();
        ts.av_psi();
        ts.raw_pes(VIDEO, &[0, 0, 2, 0xE0, 0, 0, 0x80, 0, 0, 1, 2, 3], 0, None); // bad start code
        ts.raw_pes(
            AUDIO,
            &[0, 0, 1, 0xC0, 0, 2, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1],
            0,
            None,
        ); // length < header
        let big = ts.pes(VIDEO, 0, None, &payload(0, 5000), true);
        let ok = ts.pes(VIDEO, 3600, None, &payload(1, 500), false);
        // Bounded PES cut short by the next PUSI: delivered, counted.
        let mut short = Vec::new();
        write_header(STREAM_ID_AUDIO, 10, None, 1000, &mut short);
        short.extend_from_slice(&payload(2, 300));
        let cut = ts.raw_pes(AUDIO, &short, 0, None);
        ts.pes(AUDIO, 20, None, &payload(3, 10), true);
        let mut d = Demuxer::new(&ts.out).unwrap();
        d.max_pes = 4000;
        let frames = all_frames(&mut d);
        let offs: Vec<_> = frames.iter().map(|f| f.offset).collect();
        assert!(!offs.contains(&big));
        assert!(offs.contains(&ok) && offs.contains(&cut));
        assert_eq!(frames.len(), 3);
        assert_eq!(d.stats().pes_errors, 4, "{:?}", d.errors());
        assert_eq!(d.errors().len(), 4);
        assert!(
            d.errors()
                .iter()
                .all(|e| matches!(e, Error::Invalid { .. }))
        );
    }

    #[test]
    fn a_pes_never_ended_cannot_hold_frames_forever() {
        let mut ts = Ts::new();
        ts.av_psi();
        let mut pes = Vec::new();
        write_header(STREAM_ID_VIDEO, 0, None, 70_000, &mut pes); // unbounded
        let stuck = ts.raw_pes(VIDEO, &pes, 0, None);
        for i in 0..50 {
            ts.pes(AUDIO, i * 1920, None, &payload(i as usize, 170), true);
        }
        let mut d = Demuxer::new(&ts.out).unwrap();
        d.max_waiting = 1000;
        let mut n = 0;
        while let Some(f) = d.next_frame() {
            let f = f.unwrap();
            assert_ne!(f.offset, stuck);
            n += 1;
            // Frames come out while reading, not all at the end.
            if n == 1 {
                assert!(d.stats().framing.packets < 20);
            }
        }
        assert_eq!(n, 50);
        assert_eq!(d.stats().pes_errors, 1);
    }

    #[test]
    fn pcr_count_and_discontinuities() {
        let mut ts = Ts::new();
        ts.av_psi();
        let mut pcr = 27_000_000 * 10u64;
        let mut step = |ts: &mut Ts, delta: i64, flags: u8| {
            pcr = (pcr as i64 + delta) as u64;
            ts.put(VIDEO, false, flags, Some(pcr), &[]);
        };
        step(&mut ts, 0, 0);
        step(&mut ts, 1_000_000, 0);
        step(&mut ts, 2_700_000, 0); // exactly 100 ms: fine
        step(&mut ts, -27_000, 0); // backwards
        step(&mut ts, 27_000_000, 0); // 1 s forwards
        step(&mut ts, 27_000_000, 0x80); // announced
        step(&mut ts, 540_000, 0);
        ts.put(AUDIO, false, 0, Some(5), &[]); // not the PCR_PID
        let mut d = Demuxer::new(&ts.out).unwrap();
        assert!(all_frames(&mut d).is_empty());
        let s = d.stats();
        assert_eq!((s.pcr_count, s.pcr_discontinuities, s.cc_errors), (7, 2, 0));
        // Across the 33-bit wrap the PCR keeps going forward.
        let mut ts = Ts::new();
        ts.av_psi();
        ts.put(VIDEO, false, 0, Some(PCR_WRAP - 300), &[]);
        ts.put(VIDEO, false, 0, Some(600), &[]);
        let mut d = Demuxer::new(&ts.out).unwrap();
        assert!(all_frames(&mut d).is_empty());
        assert_eq!((d.stats().pcr_count, d.stats().pcr_discontinuities), (2, 0));
    }

    #[test]
    fn transport_errors_and_bad_packets_are_dropped() {
        let mut ts = Ts::new();
        ts.av_psi();
        ts.pes(VIDEO, 0, None, &payload(0, 10), true);
        let mut bad = ts.out[ts.out.len() - 188..].to_vec();
        bad[1] |= 0x80;
        ts.out.extend_from_slice(&bad);
        bad[1] &= 0x7F;
        bad[3] = 0x30;
        bad[4] = 190; // adaptation field past the end
        ts.out.extend_from_slice(&bad);
        let mut d = Demuxer::new(&ts.out).unwrap();
        assert_eq!(all_frames(&mut d).len(), 1);
        let s = d.stats();
        assert_eq!((s.transport_errors, s.packet_errors), (1, 1));
    }

    #[test]
    fn garbage_and_truncated_final_packet() {
        let mut ts = Ts::new();
        ts.av_psi();
        let mut offs = Vec::new();
        for i in 0..5 {
            offs.push(ts.pes(VIDEO, i * 3600, None, &payload(i as usize, 500), i == 0));
        }
        let cut = ts.out.len() - 100; // the last packet of the last PES loses 100 bytes
        let mut data = ts.out[..2 * 188 + 400].to_vec(); // mid-packet of the first PES
        let garbage = payload(9, 1000);
        data.extend_from_slice(&garbage);
        data.extend_from_slice(&ts.out[2 * 188 + 400..cut]);
        let mut d = Demuxer::new(&data).unwrap();
        let frames = all_frames(&mut d);
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].offset, offs[0]);
        for (f, &o) in frames[1..].iter().zip(&offs[1..]) {
            assert_eq!(f.offset, o + 1000);
        }
        assert_eq!(frames[1].data, payload(1, 500));
        // The damaged last frame is still delivered, minus its truncated last packet (146 bytes
        // of payload after 38 of stuffing).
        assert_eq!(frames[4].data, payload(4, 500)[..354]);
        let s = d.stats();
        assert_eq!(s.framing.skipped_bytes, 1000 + 88);
        assert_eq!(s.framing.resyncs, 1);
    }

    #[test]
    fn damaged_input_never_panics() {
        let mut ts = Ts::new();
        ts.av_psi();
        for i in 0..30u64 {
            ts.pes(
                VIDEO,
                i * 3600,
                Some(i * 3600),
                &payload(i as usize, 700),
                i % 10 == 0,
            );
            ts.pes(AUDIO, i * 3600, None, &payload(i as usize, 200), true);
        }
        let clean = ts.out;
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut data = clean.clone();
            for _ in 0..1 + rand() % 40 {
                let at = (rand() % data.len() as u64) as usize;
                match rand() % 4 {
                    0 => data[at] = rand() as u8,
                    1 => data[at] ^= 1 << (rand() % 8),
                    2 => {
                        data.remove(at);
                    }
                    _ => data.insert(at, rand() as u8),
                }
            }
            if let Ok(mut d) = Demuxer::new(&data) {
                let _ = d.probe_streams();
                for f in d.by_ref().flatten() {
                    assert!(f.data.len() <= MAX_PES);
                }
                let _ = d.stats();
            }
        }
    }

    /// Checks against real ffmpeg output, with ffprobe as the oracle.
    mod ffmpeg {
        use super::*;
        use std::collections::{BTreeSet, HashMap};
        use std::path::{Path, PathBuf};
        use std::process::Command;

        struct TempDir(PathBuf);

        impl TempDir {
            fn new(name: &str) -> TempDir {
                let dir =
                    std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                TempDir(dir)
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        /// Run a tool; a missing tool is a test failure with the reason, never a skip.
        fn run(tool: &str, args: &[&str]) -> String {
            let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
                panic!("cannot run `{tool}` ({e}): this test needs ffmpeg/ffprobe installed (Debian package `ffmpeg`)")
            });
            assert!(
                out.status.success(),
                "`{tool} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }

        fn encode(path: &Path, extra: &[&str]) {
            let mut args = vec![
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-bf",
                "2",
                "-c:a",
                "aac",
                "-f",
                "mpegts",
            ];
            args.extend_from_slice(extra);
            args.push(path.to_str().unwrap());
            run("ffmpeg", &args);
        }

        #[derive(Debug)]
        struct Probed {
            pid: u16,
            pts: Option<i64>,
            dts: Option<i64>,
            size: usize,
            pos: Option<u64>,
            key: bool,
        }

        fn fields(line: &str) -> HashMap<&str, &str> {
            line.split('|')
                .filter_map(|kv| kv.split_once('='))
                .collect()
        }

        fn ffprobe(path: &Path) -> Vec<Probed> {
            let path = path.to_str().unwrap();
            let streams = run(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=index,id",
                    "-of",
                    "compact=nk=0",
                    path,
                ],
            );
            let pids: HashMap<String, u16> = streams
                .lines()
                .filter(|l| l.starts_with("stream|"))
                .map(|l| {
                    let f = fields(l);
                    let id = f["id"].trim_start_matches("0x");
                    (f["index"].to_string(), u16::from_str_radix(id, 16).unwrap())
                })
                .collect();
            let packets = run(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-show_packets",
                    "-show_entries",
                    "packet=stream_index,pts,dts,pos,size,flags",
                    "-of",
                    "compact=nk=0",
                    path,
                ],
            );
            packets
                .lines()
                .filter(|l| l.starts_with("packet|"))
                .map(|l| {
                    let f = fields(l);
                    Probed {
                        pid: pids[f["stream_index"]],
                        pts: f["pts"].parse().ok(),
                        dts: f["dts"].parse().ok(),
                        size: f["size"].parse().unwrap(),
                        pos: f["pos"].parse().ok(),
                        key: f["flags"].starts_with('K'),
                    }
                })
                .collect()
        }

        /// Our frames of `data` against ffprobe's packets of the file at `path`. Our offset is the
        /// sync byte's; ffprobe's `pos` is its read position minus the stride: the sync byte for
        /// 188, the 4-byte prefix for 192 (sync - 4) and, a quirk, sync - 16 for 204.
        fn compare(path: &Path, data: &[u8], stride: usize, audio_codec: Codec) -> Vec<PesFrame> {
            let sync_delta: u64 = match stride {
                188 => 0,
                192 => 4,
                _ => 16,
            };
            let probed = ffprobe(path);
            let mut d = Demuxer::new(data).unwrap();
            assert_eq!(d.stride(), stride);
            let streams = d.probe_streams().unwrap().to_vec();
            let codecs: Vec<_> = streams.iter().map(|s| s.codec.clone()).collect();
            assert_eq!(codecs, vec![Codec::H264, audio_codec]);
            let (video, audio) = (streams[0].pid, streams[1].pid);
            let frames = all_frames(&mut d);
            assert!(
                frames.windows(2).all(|w| w[0].offset < w[1].offset),
                "frames not in file order"
            );

            let mine: Vec<_> = frames.iter().filter(|f| f.pid == video).collect();
            let mut theirs: Vec<_> = probed.iter().filter(|p| p.pid == video).collect();
            theirs.sort_by_key(|p| p.pos);
            assert_eq!(mine.len(), theirs.len(), "video frame count");
            assert!(mine.len() >= 70);
            for (m, t) in mine.iter().zip(&theirs) {
                assert_eq!(
                    Some(m.offset),
                    t.pos.map(|p| p + sync_delta),
                    "video offset"
                );
                assert_eq!(
                    (m.pts, m.dts),
                    (t.pts, t.dts),
                    "video pts/dts at {}",
                    m.offset
                );
                assert_eq!(m.data.len(), t.size, "video size at {}", m.offset);
                assert_eq!(m.random_access, t.key, "video keyframe at {}", m.offset);
            }
            assert_eq!(mine.iter().filter(|f| f.random_access).count(), 3);

            let mine: Vec<_> = frames.iter().filter(|f| f.pid == audio).collect();
            let theirs: Vec<_> = probed.iter().filter(|p| p.pid == audio).collect();
            let my_offsets: BTreeSet<u64> = mine.iter().map(|f| f.offset).collect();
            let their_offsets: BTreeSet<u64> = theirs
                .iter()
                .filter_map(|p| p.pos)
                .map(|p| p + sync_delta)
                .collect();
            assert_eq!(my_offsets, their_offsets, "audio PES offsets");
            assert_eq!(
                mine.iter().map(|f| f.data.len()).sum::<usize>(),
                theirs.iter().map(|p| p.size).sum::<usize>(),
                "audio bytes"
            );
            // Each audio PES starts with the ADTS frame ffprobe lists at its position.
            for m in &mine {
                let t = theirs
                    .iter()
                    .find(|p| p.pos.map(|p| p + sync_delta) == Some(m.offset))
                    .unwrap();
                assert_eq!(m.pts, t.pts);
                assert_eq!(m.data[0], 0xFF);
            }

            let s = d.stats();
            assert_eq!(s.framing.skipped_bytes, 0);
            assert_eq!(s.framing.resyncs, 0);
            assert_eq!(
                (s.cc_errors, s.psi_errors, s.pes_errors, s.packet_errors),
                (0, 0, 0, 0)
            );
            // ffmpeg writes its SDT (PID 0x11) before the PAT.
            assert_eq!(
                (
                    s.transport_errors,
                    s.packets_before_pat,
                    s.pcr_discontinuities
                ),
                (0, 1, 0)
            );
            assert!(s.pcr_count > 10);
            assert!(s.pmt_pid.is_some());
            assert!(d.errors().is_empty(), "{:?}", d.errors());
            frames
        }

        /// Re-frame 188-byte packets with a 4-byte prefix (192) or 16 bytes of parity (204).
        fn restride(ts: &[u8], stride: usize) -> Vec<u8> {
            let mut out = Vec::with_capacity(ts.len() / 188 * stride);
            for (k, p) in ts.chunks_exact(188).enumerate() {
                if stride == 192 {
                    // copy_permission 00, arrival time stamp in 27 MHz, ~10 Mbit/s
                    out.extend_from_slice(&((k as u32 * 4000) & 0x3FFF_FFFF).to_be_bytes());
                }
                out.extend_from_slice(p);
                if stride == 204 {
                    out.extend((0..16).map(|j| (k * 31 + j * 17) as u8));
                }
            }
            out
        }

        #[test]
        fn frames_match_ffprobe_for_188_192_and_204_byte_packets() {
            let dir = TempDir::new("demux-ffmpeg");
            let path = dir.0.join("x.ts");
            encode(&path, &[]);
            let ts = std::fs::read(&path).unwrap();
            assert_eq!(ts.len() % 188, 0);
            let base = compare(&path, &ts, 188, Codec::Aac);

            for (stride, delta) in [(192, 4u64), (204, 0)] {
                let other = restride(&ts, stride);
                let p = dir.0.join(format!("x{stride}.ts"));
                std::fs::write(&p, &other).unwrap();
                let frames = compare(&p, &other, stride, Codec::Aac);
                assert_eq!(frames.len(), base.len());
                for (a, b) in frames.iter().zip(&base) {
                    assert_eq!(a.offset, b.offset / 188 * stride as u64 + delta);
                    assert_eq!(
                        (a.pid, a.pts, a.dts, &a.data),
                        (b.pid, b.pts, b.dts, &b.data)
                    );
                }
            }

            // ffmpeg's own M2TS output (real arrival timestamps). It marks AAC as stream_type
            // 0x06 without descriptors (ffprobe finds AAC by sniffing the payload).
            let m2ts = dir.0.join("x.m2ts");
            encode(&m2ts, &["-mpegts_m2ts_mode", "1"]);
            let data = std::fs::read(&m2ts).unwrap();
            compare(&m2ts, &data, 192, Codec::Other("0x06".into()));
        }
    }
}
