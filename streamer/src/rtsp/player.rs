//! The data path of one RTSP session: read the content through the replica reader, cut it into
//! RTP packets, pace them by PCR, and send them over UDP or into the RTSP connection (TCP
//! interleaved). One tokio task per playing session; tokio's timer is a hierarchical wheel, so
//! thousands of sleeping sessions cost no polling, and each wake-up sends every packet then due
//! with one system call ([`super::udp::send_batch`]).
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
use super::udp;
use crate::metrics::Metrics;
use bytes::{BufMut, Bytes, BytesMut};
use media::index::Index;
use media::ts::trick::{TrickPlan, TrickWriter};
use rtsp_proto::rtp::{self, RtpHeader, SenderReport};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use storage_device_sim::replica::ReplicaReader;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

/// Bytes per storage read.
const READ_LEN: usize = 64 * 1024;
/// Read more when fewer bytes than this wait in the pacer.
const LOW_WATER: usize = 96 * 1024;
/// Further behind the schedule than this (a stall, a failover), restart the schedule from now
/// instead of bursting to catch up.
const MAX_LATE: Duration = Duration::from_millis(300);
/// RTCP sender reports this often (RFC 3550 suggests ≥ 5 s).
const SR_INTERVAL: Duration = Duration::from_secs(5);
/// Packets per wake-up at most, so one session cannot monopolise a worker.
const MAX_PER_WAKE: usize = 128;

/// Where the packets go.
pub enum Sink {
    Udp {
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
        rtp_dest: SocketAddr,
        rtcp_dest: SocketAddr,
    },
    /// RTP/AVP/TCP: `$`-framed into the RTSP connection's bounded write queue (back-pressure:
    /// a slow client slows its own session, never grows memory).
    Tcp {
        tx: mpsc::Sender<Bytes>,
        rtp_channel: u8,
        rtcp_channel: u8,
    },
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
    Play(PlayRequest, oneshot::Sender<PlayStarted>),
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
    reader: Option<ReplicaReader>,
    inflight: Option<Read>,
    mode: Mode,
    /// Playing (a PLAY was answered and no PAUSE since).
    playing: bool,
    pacer: Pacer,
    /// The next payload, taken from the pacer and not yet due.
    queued: Option<super::pacer::Payload>,
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
    /// Scratch buffers reused across wake-ups.
    frame: BytesMut,
    /// TCP: what the connection's full write queue did not take yet. While it waits, nothing
    /// else is sent (back-pressure), and commands are still served.
    blocked: Option<Bytes>,
}

impl Player {
    /// Runs until the command channel closes (TEARDOWN, timeout, connection gone).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let size = self.index.content_size;
        let reader = std::mem::replace(
            &mut self.reader,
            ReplicaReader::new(String::new(), Vec::new(), None, Duration::from_secs(1)),
        );
        let now = Instant::now();
        let mut r = Run {
            reader: Some(reader),
            inflight: None,
            mode: Mode::Idle,
            playing: false,
            pacer: Pacer::new(),
            queued: None,
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
            frame: BytesMut::new(),
            blocked: None,
            p: self,
        };
        r.p.metrics.rtsp_session(true);
        let tcp = match &r.p.sink {
            Sink::Tcp { tx, .. } => Some(tx.clone()),
            Sink::Udp { .. } => None,
        };
        loop {
            r.top_up();
            let next_due = if r.blocked.is_some() {
                None
            } else {
                r.next_due()
            };
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
                _ = sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)), if next_due.is_some() => {
                    r.send_due().await;
                }
                permit = async { tcp.as_ref().expect("guarded by the select condition").reserve().await }, if r.blocked.is_some() && tcp.is_some() => {
                    match permit {
                        Ok(p) => p.send(r.blocked.take().unwrap_or_default()),
                        Err(_) => r.playing = false,
                    }
                }
            }
        }
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
        if !self.playing || self.inflight.is_some() || self.pacer.pending() >= LOW_WATER {
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
                    self.pacer.push(&data);
                }
            }
            Mode::Trick { writer, .. } => {
                let (entry_pts, out_pts) = restamp.unwrap_or_default();
                let mut out = Vec::with_capacity(data.len());
                match writer.push_span(&data, entry_pts, out_pts, &mut out) {
                    Ok(_) => self.pacer.push(&out),
                    Err(e) => tracing::warn!(error = %e, "keyframe span skipped in trick play"),
                }
            }
            Mode::Idle => {}
        }
    }

    /// When the next payload is due, taking it from the pacer if needed.
    fn next_due(&mut self) -> Option<tokio::time::Instant> {
        if !self.playing {
            return None;
        }
        if self.queued.is_none() {
            self.queued = self.pacer.next_payload();
        }
        match &self.queued {
            Some(p) => Some(self.wall_of(p.due_ns).into()),
            None if self.pacer.is_finished() && self.inflight.is_none() => {
                // Everything sent: due now, to say BYE.
                Some(Instant::now().into())
            }
            None => None,
        }
    }

    fn wall_of(&mut self, due_ns: u64) -> Instant {
        let (w, c) = *self.anchor.get_or_insert((self.play_wall, due_ns));
        w + Duration::from_nanos(due_ns.saturating_sub(c))
    }

    async fn send_due(&mut self) {
        let now = Instant::now();
        let mut batch: Vec<([u8; 12], std::ops::Range<usize>)> = Vec::new();
        while batch.len() < MAX_PER_WAKE {
            if self.queued.is_none() {
                self.queued = self.pacer.next_payload();
            }
            let Some(p) = self.queued.clone() else { break };
            let mut due = self.wall_of(p.due_ns);
            if now.saturating_duration_since(due) > MAX_LATE {
                // Far behind (a stall or a failover): restart the schedule here.
                self.anchor = Some((now, p.due_ns));
                due = now;
            }
            if due > now {
                break;
            }
            self.queued = None;
            let h = RtpHeader {
                marker: std::mem::take(&mut self.marker),
                payload_type: rtp::PT_MP2T,
                sequence: self.seq,
                timestamp: self.rtp_ts(due),
                ssrc: self.p.ssrc,
            };
            self.seq = self.seq.wrapping_add(1);
            batch.push((h.to_bytes(), p.range));
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let bytes: u64 = batch.iter().map(|(_, r)| r.len() as u64).sum();
            let data = self.pacer.data();
            match &self.p.sink {
                Sink::Udp { rtp, rtp_dest, .. } => {
                    let pk: Vec<([u8; 12], &[u8])> =
                        batch.iter().map(|(h, r)| (*h, &data[r.clone()])).collect();
                    if let Err(e) = udp::send_batch(rtp, *rtp_dest, &pk).await {
                        tracing::debug!(error = %e, dest = %rtp_dest, "RTP send failed");
                    }
                }
                Sink::Tcp { rtp_channel, .. } => {
                    self.frame.clear();
                    for (h, r) in &batch {
                        self.frame.put_u8(b'$');
                        self.frame.put_u8(*rtp_channel);
                        self.frame.put_u16((12 + r.len()) as u16);
                        self.frame.put_slice(h);
                        self.frame.put_slice(&data[r.clone()]);
                    }
                    let out = self.frame.split().freeze();
                    self.tcp_push(out);
                }
            }
            self.packets += n;
            self.octets += bytes;
            self.p.status.packets.fetch_add(n, Ordering::Relaxed);
            self.p.metrics.bytes("rtsp", bytes);
            let keep = self.queued.as_ref().map(|q| q.range.start);
            let shift = self.pacer.compact(keep);
            if let Some(q) = &mut self.queued {
                q.range = q.range.start - shift..q.range.end - shift;
            }
            self.publish_position();
        }
        let done = self.queued.is_none() && self.pacer.is_finished() && self.inflight.is_none();
        if done && self.playing {
            self.finish().await;
        } else if self.last_sr.elapsed() >= SR_INTERVAL {
            self.rtcp(false).await;
        }
    }

    /// End of the content (or of the requested range): a sender report and BYE, so the
    /// client ends cleanly instead of waiting for a timeout.
    async fn finish(&mut self) {
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
        self.rtcp(true).await;
    }

    async fn rtcp(&mut self, bye: bool) {
        self.last_sr = Instant::now();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let sr = SenderReport {
            ssrc: self.p.ssrc,
            ntp: rtp::ntp_from_unix(wall.as_secs(), wall.subsec_nanos()),
            rtp_time: self.rtp_ts(Instant::now()),
            packets: self.packets as u32,
            octets: self.octets as u32,
        };
        let mut pkt = Vec::with_capacity(64);
        rtp::write_rtcp(&sr, &self.p.cname, bye, &mut pkt);
        match &self.p.sink {
            Sink::Udp {
                rtcp, rtcp_dest, ..
            } => {
                let _ = rtcp.send_to(&pkt, *rtcp_dest).await;
            }
            Sink::Tcp { rtcp_channel, .. } => {
                let mut f = BytesMut::with_capacity(pkt.len() + 4);
                f.put_u8(b'$');
                f.put_u8(*rtcp_channel);
                f.put_u16(pkt.len() as u16);
                f.put_slice(&pkt);
                self.tcp_push(f.freeze());
            }
        }
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Pause(reply) => {
                self.settle_read().await;
                let pos = self.position();
                // Resume exactly where the sent bytes stop (trick play resumes at 1x from the
                // keyframe shown last).
                let resume = match &self.mode {
                    Mode::Normal { end, .. } => {
                        Some((self.pacer.position() - self.queued_len(), *end))
                    }
                    Mode::Trick { .. } => Some((self.seek(pos).0, self.size)),
                    Mode::Idle => None,
                };
                if let Some((next, end)) = resume {
                    self.mode = Mode::Normal { next, end };
                    self.pacer.reset_at(next);
                }
                self.queued = None;
                self.playing = false;
                self.publish_position();
                let _ = reply.send(pos);
            }
            Command::Play(req, reply) => {
                self.settle_read().await;
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
                            (Mode::Normal { next, .. }, None) if !ended => (*next, here),
                            _ => self.seek(from),
                        };
                        let end = self.end_offset(req.end).max(off);
                        self.mode = Mode::Normal { next: off, end };
                        self.pacer.reset_at(off);
                        npt
                    }
                };
                self.queued = None;
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

    /// Hands a frame to the connection's write queue without waiting: when the queue is full
    /// it waits in `blocked` (joined to what already waits there).
    fn tcp_push(&mut self, b: Bytes) {
        let Sink::Tcp { tx, .. } = &self.p.sink else {
            return;
        };
        if let Some(w) = self.blocked.take() {
            let mut joined = BytesMut::with_capacity(w.len() + b.len());
            joined.put_slice(&w);
            joined.put_slice(&b);
            self.blocked = Some(joined.freeze());
            return;
        }
        match tx.try_send(b) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(b)) => self.blocked = Some(b),
            Err(mpsc::error::TrySendError::Closed(_)) => self.playing = false,
        }
    }

    fn queued_len(&self) -> u64 {
        self.queued.as_ref().map_or(0, |q| q.range.len() as u64)
    }
}
