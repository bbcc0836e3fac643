//! The data path of one RTSP session: read the content through the replica reader, cut it into
//! RTP packets, give each its PCR-paced due time, and queue them ahead (about [`HORIZON`]) in
//! the session's [`Lane`] for the pump thread ([`super::pump`]) to send on time, over UDP or
//! into the RTSP connection (TCP interleaved). The task wakes to refill the lane, for storage
//! reads and for commands: a few dozen times a second, not once per packet.
//!
//! Why the session copies bytes out of the storage buffers: the device's registered buffers are
//! a shared, fixed pool sized for HTTP throughput, and a paced session would pin one for half a
//! second at 4 Mbit/s; at thousands of sessions that starves every reader. The copy into the
//! session's own small buffer costs 4 Mbit/s of memcpy per viewer (well under 0.1% of a core),
//! and from there the payloads go to the socket without another copy.
//!
//! Trick play reads only keyframe spans (from the index), rewrites them with re-stamped PTS and
//! PCR ([`media::ts::trick`]), and paces the result by its new PCRs like any other stream.

use super::pacer::Pacer;
use super::pump::{HEAD_CAP, Lane, Out};
use crate::metrics::Metrics;
use bytes::Bytes;
use media::index::Index;
use media::ts::trick::{TrickPlan, TrickWriter};
use rtsp_proto::rtp::{self, RTP_HEADER_LEN, RtpHeader, SenderReport};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use storage_device_sim::replica::ReplicaReader;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

/// Bytes per storage read.
const READ_LEN: usize = 64 * 1024;
/// Read more when fewer bytes than this wait in the pacer, or less than [`READ_AHEAD`] of
/// media, whichever is more.
const LOW_WATER: usize = 64 * 1024;
/// Media kept buffered ahead of the pacer (with the lane's [`HORIZON`] on top): more than the
/// replica reader's default deadline (500 ms), so that a read which stalls and fails over to
/// the next replica is over before the viewer runs dry (`benches/src/bin/failover_gap.rs`:
/// at 4 Mbit/s, a stalled main node cost a ~300 ms pause with 64 KiB of read-ahead; none with
/// this). Memory: 4 Mbit/s × 600 ms = 300 KB per session.
const READ_AHEAD: Duration = Duration::from_millis(600);
/// Further behind the schedule than this (a stall, a failover), restart the schedule from now
/// instead of bursting to catch up.
const MAX_LATE: Duration = Duration::from_millis(300);
/// RTCP sender reports this often (RFC 3550 suggests ≥ 5 s).
const SR_INTERVAL: Duration = Duration::from_secs(5);
/// Time between the last packet of a run and its RTCP BYE.
const BYE_DELAY: Duration = Duration::from_millis(200);
/// How far ahead packets are queued for the pump.
pub const HORIZON: Duration = Duration::from_millis(200);
/// Refill the lane when less than this is queued.
const LOW_HORIZON: Duration = Duration::from_millis(100);
/// How often a session whose TCP connection is not reading looks again.
const BLOCKED_POLL: Duration = Duration::from_millis(5);

/// Where the packets go: the session's lane, and for TCP the interleaved channels (RTP, RTCP)
/// whose `$` framing is written here.
pub struct Sink {
    pub lane: Arc<Lane>,
    pub tcp_channels: Option<(u8, u8)>,
}

#[derive(Debug, Clone, Copy)]
pub struct PlayRequest {
    /// Seek here first (seconds of npt); `None` resumes where the session is.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub scale: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct PlayStarted {
    pub seq: u16,
    pub rtptime: u32,
    pub start: f64,
    pub end: f64,
    pub scale: f64,
}

pub enum Command {
    /// Play; the answer goes to the first channel, and no packet is queued before the second
    /// fires (the reply is on its way to the client).
    Play(
        PlayRequest,
        oneshot::Sender<PlayStarted>,
        oneshot::Receiver<()>,
    ),
    /// Answers the position paused at (npt seconds).
    Pause(oneshot::Sender<f64>),
}

/// What the RTSP side can read without asking the task.
#[derive(Debug, Default)]
pub struct Status {
    /// Current position, npt milliseconds.
    pub position_ms: AtomicU64,
    pub ended: AtomicBool,
    pub packets: AtomicU64,
}

pub struct Player {
    pub index: Arc<Index>,
    pub reader: ReplicaReader,
    /// The session's reservation on the host it reads from (steering).
    pub _load: Option<crate::load::LoadGuard>,
    pub sink: Sink,
    pub ssrc: u32,
    pub cname: String,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
}

/// A storage read in flight: it owns the reader while it runs and gives it back with the
/// bytes, and for trick play the keyframe's PTS and the PTS it gets in the output.
type Read = Pin<Box<dyn Future<Output = Arrival> + Send>>;
type Arrival = (
    ReplicaReader,
    storage_device_sim::Result<Vec<u8>>,
    Option<(u64, u64)>,
);

enum Mode {
    Idle,
    Normal {
        next: u64,
        end: u64,
    },
    Trick {
        plan: TrickPlan,
        writer: TrickWriter,
        rewind: bool,
    },
}

/// Reads `[offset, offset + len)` in pieces, copying out of the pool buffers.
async fn read_span(
    mut reader: ReplicaReader,
    offset: u64,
    len: usize,
    restamp: Option<(u64, u64)>,
) -> Arrival {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let want = (len - out.len()).min(READ_LEN);
        match reader.read_at(offset + out.len() as u64, want).await {
            Ok(b) if b.is_empty() => break,
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (reader, Err(e), restamp),
        }
    }
    (reader, Ok(out), restamp)
}

struct Run {
    p: Player,
    /// Bytes the pacer keeps buffered before the next read: [`LOW_WATER`] or
    /// [`READ_AHEAD`] of media at the content's bitrate, whichever is more.
    low_water: usize,
    reader: Option<ReplicaReader>,
    inflight: Option<Read>,
    mode: Mode,
    /// Playing (a PLAY was answered and no PAUSE since).
    playing: bool,
    pacer: Pacer,
    /// Wall time and stream-clock time that correspond.
    anchor: Option<(Instant, u64)>,
    /// When the last PLAY was answered: the first packet after it is due then.
    play_wall: Instant,
    epoch: Instant,
    ts_base: u32,
    seq: u16,
    marker: bool,
    packets: u64,
    octets: u64,
    last_sr: Instant,
    /// Content PTS of the last trick frame queued, for the position.
    trick_pts: u64,
    size: u64,
    /// The reader's failover count already added to the metrics.
    failovers_seen: u64,
    /// The PLAY reply is not queued yet: hold the packets back.
    go: Option<oneshot::Receiver<()>>,
    /// The pacer could not give a payload from what it holds: it needs more bytes.
    starved: bool,
}

impl Player {
    /// Runs until the command channel closes (TEARDOWN, timeout, connection gone).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let size = self.index.content_size;
        let secs = self.index.duration_90k as f64 / 90_000.0;
        let low_water = if secs > 0.0 {
            ((size as f64 / secs) * READ_AHEAD.as_secs_f64()) as usize
        } else {
            0
        }
        .clamp(LOW_WATER, 4 << 20);
        let reader = std::mem::replace(
            &mut self.reader,
            ReplicaReader::new(String::new(), Vec::new(), None, Duration::from_secs(1)),
        );
        let now = Instant::now();
        let mut r = Run {
            low_water,
            reader: Some(reader),
            inflight: None,
            mode: Mode::Idle,
            playing: false,
            pacer: Pacer::new(),
            anchor: None,
            play_wall: now,
            epoch: now,
            ts_base: rand::random(),
            seq: rand::random(),
            marker: false,
            packets: 0,
            octets: 0,
            last_sr: now,
            trick_pts: 0,
            size,
            failovers_seen: 0,
            go: None,
            starved: false,
            p: self,
        };
        r.p.metrics.rtsp_session(true);
        loop {
            r.top_up();
            r.fill();
            // Filling may have found the pacer starved: read now, not at the next wake-up.
            r.top_up();
            let wake = r.next_wake();
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(c) => r.command(c).await,
                    None => break,
                },
                done = async { r.inflight.as_mut().expect("guarded by the select condition").await }, if r.inflight.is_some() => {
                    r.inflight = None;
                    r.arrived(done);
                }
                _ = async { r.go.as_mut().expect("guarded by the select condition").await }, if r.go.is_some() => {
                    r.go = None;
                }
                _ = sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)), if wake.is_some() => {}
            }
        }
        r.p.sink.lane.close();
        r.p.metrics.rtsp_session(false);
    }
}

impl Run {
    fn npt_of_pts(&self, pts: u64) -> f64 {
        pts.saturating_sub(self.p.index.first_pts) as f64 / 90_000.0
    }

    fn duration(&self) -> f64 {
        self.p.index.duration_90k as f64 / 90_000.0
    }

    /// Byte offset → npt, interpolated between keyframes.
    fn npt_of_offset(&self, off: u64) -> f64 {
        let e = &self.p.index.entries;
        let i = e.partition_point(|x| x.rap_offset <= off);
        if i == 0 {
            return 0.0;
        }
        let a = &e[i - 1];
        let end_pts = self.p.index.first_pts + self.p.index.duration_90k;
        let (b_off, b_pts) = e
            .get(i)
            .map_or((self.size, end_pts), |b| (b.rap_offset, b.pts));
        let frac = if b_off > a.rap_offset {
            (off - a.rap_offset) as f64 / (b_off - a.rap_offset) as f64
        } else {
            0.0
        };
        self.npt_of_pts(a.pts) + frac * b_pts.saturating_sub(a.pts) as f64 / 90_000.0
    }

    fn position(&self) -> f64 {
        match &self.mode {
            Mode::Trick { .. } => self.npt_of_pts(self.trick_pts),
            _ => self.npt_of_offset(self.pacer.position()),
        }
    }

    fn publish_position(&self) {
        let ms = (self.position() * 1000.0) as u64;
        self.p.status.position_ms.store(ms, Ordering::Relaxed);
    }

    /// Offset and real npt of the clean start at or before `npt`.
    fn seek(&self, npt: f64) -> (u64, f64) {
        if npt <= 0.0 {
            return (0, 0.0);
        }
        let pts = self.p.index.first_pts + (npt * 90_000.0) as u64;
        match self.p.index.seek(pts) {
            Some(e) if e.pts <= pts => (e.rap_offset, self.npt_of_pts(e.pts)),
            _ => (0, 0.0),
        }
    }

    /// Where a run that should stop at `npt` ends: the next clean start after it.
    fn end_offset(&self, npt: Option<f64>) -> u64 {
        let Some(npt) = npt else { return self.size };
        let pts = self.p.index.first_pts + (npt * 90_000.0) as u64;
        let e = &self.p.index.entries;
        e.iter()
            .find(|e| e.pts > pts)
            .map_or(self.size, |e| e.rap_offset)
    }

    fn rtp_ts(&self, at: Instant) -> u32 {
        let ticks = at.saturating_duration_since(self.epoch).as_nanos() * 9 / 100_000;
        self.ts_base.wrapping_add(ticks as u32)
    }

    async fn settle_read(&mut self) {
        if let Some(f) = self.inflight.take() {
            let (reader, _, _) = f.await;
            self.reader = Some(reader);
        }
    }

    /// Start the next storage read when the pacer runs low.
    fn top_up(&mut self) {
        // Read when little is buffered, or when what is buffered cannot be paced yet (a large
        // keyframe between two PCRs can exceed the low-water mark).
        if !self.playing
            || self.inflight.is_some()
            || (self.pacer.pending() >= self.low_water && !self.starved)
        {
            return;
        }
        let Some(reader) = self.reader.take() else {
            return;
        };
        let read: Option<Read> = match &mut self.mode {
            Mode::Normal { next, end } if *next < *end => {
                let len = (*end - *next).min(READ_LEN as u64) as usize;
                Some(Box::pin(read_span(reader, *next, len, None)))
            }
            Mode::Trick { plan, .. } => match plan.next() {
                Some(step) => {
                    let e = self.p.index.entries[step.entry];
                    self.trick_pts = step.content_pts;
                    let restamp = Some((e.pts, step.out_pts));
                    Some(Box::pin(read_span(
                        reader,
                        e.rap_offset,
                        e.ts_len as usize,
                        restamp,
                    )))
                }
                None => {
                    self.reader = Some(reader);
                    self.pacer.finish();
                    None
                }
            },
            Mode::Normal { .. } => {
                self.reader = Some(reader);
                self.pacer.finish();
                None
            }
            Mode::Idle => {
                self.reader = Some(reader);
                None
            }
        };
        self.inflight = read;
    }

    fn arrived(&mut self, (reader, res, restamp): Arrival) {
        self.starved = false;
        let moved = reader.failovers().saturating_sub(self.failovers_seen);
        if moved > 0 {
            self.failovers_seen += moved;
            self.p.metrics.failovers(moved);
        }
        self.reader = Some(reader);
        let data = match res {
            Ok(d) => d,
            Err(e) => {
                // Every replica failed: end the stream cleanly rather than hang the client.
                tracing::warn!(error = %e, "content unreadable on every replica: ending the session's stream");
                self.mode = Mode::Idle;
                self.pacer.finish();
                return;
            }
        };
        match &mut self.mode {
            Mode::Normal { next, end } => {
                if data.is_empty() {
                    *end = *next;
                } else {
                    *next += data.len() as u64;
                    // One copy, out of the device's pooled buffer (which goes back to its pool
                    // now); packets then share this one.
                    self.pacer.push(Bytes::copy_from_slice(&data));
                }
            }
            Mode::Trick { writer, .. } => {
                let (entry_pts, out_pts) = restamp.unwrap_or_default();
                let mut out = Vec::with_capacity(data.len());
                match writer.push_span(&data, entry_pts, out_pts, &mut out) {
                    Ok(_) => self.pacer.push(out.into()),
                    Err(e) => tracing::warn!(error = %e, "keyframe span skipped in trick play"),
                }
            }
            Mode::Idle => {}
        }
    }

    fn wall_of(&mut self, due_ns: u64) -> Instant {
        let (w, c) = *self.anchor.get_or_insert((self.play_wall, due_ns));
        w + Duration::from_nanos(due_ns.saturating_sub(c))
    }

    /// When the task should look at its lane again.
    fn next_wake(&self) -> Option<tokio::time::Instant> {
        if !self.playing || self.go.is_some() {
            return None;
        }
        let lane = &self.p.sink.lane;
        if lane.is_blocked() {
            return Some((Instant::now() + BLOCKED_POLL).into());
        }
        match lane.last_due() {
            Some(d) if self.pacer.pending() > 0 || self.inflight.is_none() => {
                Some(d.checked_sub(LOW_HORIZON).unwrap_or(d).into())
            }
            // Waiting for storage: the read's completion wakes the task.
            _ => None,
        }
    }

    /// Queues packets until the lane holds [`HORIZON`] of them, or the pacer needs data;
    /// at the end of the run, the RTCP BYE.
    fn fill(&mut self) {
        if !self.playing || self.go.is_some() || self.p.sink.lane.is_blocked() {
            return;
        }
        let now = Instant::now();
        let horizon = now + HORIZON;
        let mut last = self.p.sink.lane.last_due();
        while last.is_none_or(|d| d < horizon) {
            let Some(p) = self.pacer.next_payload() else {
                self.starved = !self.pacer.is_finished();
                break;
            };
            let mut due = self.wall_of(p.due_ns);
            if now.saturating_duration_since(due) > MAX_LATE {
                // Far behind (a stall or a failover): restart the schedule here.
                self.anchor = Some((now, p.due_ns));
                due = now;
            }
            let h = RtpHeader {
                marker: std::mem::take(&mut self.marker),
                payload_type: rtp::PT_MP2T,
                sequence: self.seq,
                timestamp: self.rtp_ts(due),
                ssrc: self.p.ssrc,
            };
            // The header is held in the packet; the payload is the pacer's slices (no copy).
            let len = p.len();
            let mut head = [0u8; HEAD_CAP];
            let mut n = 0;
            if let Some((ch, _)) = self.p.sink.tcp_channels {
                head[..2].copy_from_slice(&[b'$', ch]);
                head[2..4].copy_from_slice(&((RTP_HEADER_LEN + len) as u16).to_be_bytes());
                n = 4;
            }
            head[n..n + RTP_HEADER_LEN].copy_from_slice(&h.to_bytes());
            n += RTP_HEADER_LEN;
            self.p
                .sink
                .lane
                .push(Out::new(due, &head[..n], p.parts, false, self.seq, p.pos));
            self.seq = self.seq.wrapping_add(1);
            self.packets += 1;
            self.octets += len as u64;
            self.p.status.packets.fetch_add(1, Ordering::Relaxed);
            last = Some(due);
        }
        self.publish_position();
        if self.last_sr.elapsed() >= SR_INTERVAL {
            self.rtcp(false, last.unwrap_or(now).max(now));
        }
        if self.pacer.is_finished() && self.inflight.is_none() {
            // The BYE trails the last packet a little: a client (GStreamer's rtpbin) that sees
            // it together with the last packets may end before it has played them.
            self.finish(last.unwrap_or(now).max(now) + BYE_DELAY);
        }
    }

    /// End of the content (or of the requested range): a sender report and BYE after the last
    /// packet, so the client ends cleanly instead of waiting for a timeout.
    fn finish(&mut self, at: Instant) {
        self.playing = false;
        if matches!(self.mode, Mode::Trick { rewind: true, .. }) {
            // Rewound to the start: stay paused at 0 rather than ending the session.
            self.trick_pts = self.p.index.first_pts;
            self.mode = Mode::Normal {
                next: 0,
                end: self.size,
            };
            self.pacer.reset_at(0);
            self.publish_position();
            return;
        }
        self.p.status.ended.store(true, Ordering::Relaxed);
        self.publish_position();
        self.rtcp(true, at);
    }

    /// Queues a compound RTCP packet (SR, SDES, and BYE when `bye`) due at `at`.
    fn rtcp(&mut self, bye: bool, at: Instant) {
        self.last_sr = Instant::now();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            + at.saturating_duration_since(Instant::now());
        let sr = SenderReport {
            ssrc: self.p.ssrc,
            ntp: rtp::ntp_from_unix(wall.as_secs(), wall.subsec_nanos()),
            rtp_time: self.rtp_ts(at),
            packets: self.packets as u32,
            octets: self.octets as u32,
        };
        let mut pkt = Vec::with_capacity(64);
        rtp::write_rtcp(&sr, &self.p.cname, bye, &mut pkt);
        let mut head = Vec::with_capacity(4);
        if let Some((_, ch)) = self.p.sink.tcp_channels {
            head.extend_from_slice(&[b'$', ch]);
            head.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        }
        let body = [Bytes::from(pkt), Bytes::new()];
        self.p
            .sink
            .lane
            .push(Out::new(at, &head, body, true, self.seq, 0));
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Pause(reply) => {
                self.settle_read().await;
                let pos = self.position();
                // Resume exactly where the sent bytes stop (trick play resumes at 1x from the
                // keyframe shown last).
                let unsent = self.p.sink.lane.drain_unsent();
                if let Some((seq, _)) = unsent {
                    self.seq = seq;
                }
                let resume = match &self.mode {
                    Mode::Normal { end, .. } => {
                        Some((unsent.map_or(self.pacer.position(), |(_, pos)| pos), *end))
                    }
                    Mode::Trick { .. } => Some((self.seek(pos).0, self.size)),
                    Mode::Idle => None,
                };
                if let Some((next, end)) = resume {
                    self.mode = Mode::Normal { next, end };
                    self.pacer.reset_at(next);
                }
                self.playing = false;
                self.publish_position();
                let _ = reply.send(pos);
            }
            Command::Play(req, reply, go) => {
                self.go = Some(go);
                self.settle_read().await;
                // What was queued and not sent is dropped: the new run takes its sequence
                // numbers, and a resume at 1x starts at its first byte.
                let unsent = self.p.sink.lane.drain_unsent();
                if let Some((seq, _)) = unsent {
                    self.seq = seq;
                }
                let resume = unsent.map_or(self.pacer.position(), |(_, pos)| pos);
                let ended = self.p.status.ended.load(Ordering::Relaxed);
                let here = if ended { 0.0 } else { self.position() };
                let from = req.start.unwrap_or(here).clamp(0.0, self.duration());
                let mut granted = 1.0;
                let mut started = None;
                if req.scale != 1.0 {
                    let pts = self.p.index.first_pts + (from * 90_000.0) as u64;
                    match TrickPlan::new(&self.p.index, pts, req.scale, pts) {
                        Ok(plan) => {
                            let writer =
                                TrickWriter::new(self.p.index.video_pid, self.p.index.pcr_pid);
                            self.mode = Mode::Trick {
                                plan,
                                writer,
                                rewind: req.scale < 0.0,
                            };
                            self.trick_pts = pts;
                            self.pacer.reset_at(0);
                            granted = req.scale;
                            started = Some(from);
                        }
                        Err(e) => {
                            tracing::info!(error = %e, scale = req.scale, "trick play refused: playing at 1x")
                        }
                    }
                }
                let started = match started {
                    Some(s) => s,
                    None => {
                        let (off, npt) = match (&self.mode, req.start) {
                            (Mode::Normal { .. }, None) if !ended => (resume, here),
                            _ => self.seek(from),
                        };
                        let end = self.end_offset(req.end).max(off);
                        self.mode = Mode::Normal { next: off, end };
                        self.pacer.reset_at(off);
                        npt
                    }
                };
                self.p.status.ended.store(false, Ordering::Relaxed);
                let now = Instant::now();
                self.anchor = None;
                self.play_wall = now;
                self.marker = true;
                self.playing = true;
                let end = req.end.unwrap_or(self.duration()).max(started);
                self.publish_position();
                let _ = reply.send(PlayStarted {
                    seq: self.seq,
                    rtptime: self.rtp_ts(now),
                    start: started,
                    end,
                    scale: granted,
                });
            }
        }
    }
}
