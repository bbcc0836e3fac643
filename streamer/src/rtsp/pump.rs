//! The pump: one thread that sends every session's RTP packets at their due times.
//!
//! Why a thread of its own instead of a timer per session: at 4 Mbit/s a viewer needs a packet
//! every 2.7 ms. A tokio task per session woken for each packet costs a timer, a task poll and
//! a system call per packet, and tokio's timer rounds every sleep up to the next millisecond
//! (measured: 160–300 viewers per core, pacing error p99 2–8 ms). Here sessions prepare their
//! packets ahead (each with its due time, sequence number and RTP timestamp already written)
//! into a [`Lane`]; the pump wakes at the earliest due time with a sub-millisecond sleep,
//! takes what is due from every lane, and sends it to every UDP destination with one
//! `sendmmsg` per 1,024 packets. A session task wakes only to refill its lane (every few tens
//! of milliseconds) or to obey a command.
//!
//! Why not UDP GSO (one send of several datagrams to one viewer): it would cut the kernel's
//! cost per datagram (measured by `benches/src/bin/udp_limit.rs` on loopback: ~390k datagrams
//! per core-second one by one, ~650k in GSO sends of four), but only packets of one viewer leave
//! together, and at 4 Mbit/s they are 2.7 ms apart: a burst of two already puts the pacing
//! error over the 2 ms p99 bound the benchmark holds us to. So every packet is its own
//! datagram, sent at its time, and batching is across sessions.
//!
//! TCP lanes are drained the same way into their connection's bounded write queue
//! (`try_send`, never waiting): when the queue is full the packets stay in the lane, and the
//! session stops refilling it (back-pressure; a slow client cannot grow memory).

use crate::metrics::Metrics;
use bytes::Bytes;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest the pump sleeps when nothing is due (a new lane pokes it anyway).
const IDLE: Duration = Duration::from_millis(50);
/// Shortest sleep between two rounds: packets falling due within it share one batch.
const QUANTUM: Duration = Duration::from_micros(200);
/// When a TCP connection's write queue is full, look again this much later.
const TCP_RETRY: Duration = Duration::from_millis(2);
/// Most messages per `sendmmsg` (the kernel's UIO_MAXIOV).
const MAX_MMSG: usize = 1024;

/// Longest header an [`Out`] carries: a TCP `$` frame header and an RTP header.
pub const HEAD_CAP: usize = 16;

/// One packet ready to go: a small header held inline (no allocation per packet) and a body
/// of at most two shared slices (the TS packets as the pacer handed them out; or a compound
/// RTCP packet). The kernel gathers the three pieces from `iovec`s: no copy in this process.
#[derive(Debug, Clone)]
pub struct Out {
    pub due: Instant,
    head: [u8; HEAD_CAP],
    head_len: u8,
    body: [Bytes; 2],
    pub rtcp: bool,
    /// RTP sequence number and stream position of the payload (for rewinding on PAUSE).
    pub seq: u16,
    pub pos: u64,
}

impl Out {
    /// A packet of `head` (at most [`HEAD_CAP`] bytes) followed by `body`.
    pub fn new(due: Instant, head: &[u8], body: [Bytes; 2], rtcp: bool, seq: u16, pos: u64) -> Out {
        let mut h = [0u8; HEAD_CAP];
        let n = head.len().min(HEAD_CAP);
        h[..n].copy_from_slice(&head[..n]);
        Out {
            due,
            head: h,
            head_len: n as u8,
            body,
            rtcp,
            seq,
            pos,
        }
    }

    pub fn len(&self) -> usize {
        self.head_len as usize + self.body[0].len() + self.body[1].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packet's pieces, in order (some possibly empty).
    pub fn pieces(&self) -> [&[u8]; 3] {
        [
            &self.head[..self.head_len as usize],
            &self.body[0],
            &self.body[1],
        ]
    }
}

/// Where a lane's packets go.
pub enum Dest {
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
    Tcp { tx: mpsc::Sender<Bytes> },
}

/// One session's queue of prepared packets, shared by its task (producer) and the pump.
pub struct Lane {
    queue: Mutex<VecDeque<Out>>,
    dest: Dest,
    closed: AtomicBool,
    /// The TCP write queue refused packets at the pump's last visit.
    blocked: AtomicBool,
    /// The lane has an entry in the pump's schedule (of generation `generation`).
    scheduled: AtomicBool,
    generation: AtomicU64,
    pump: Weak<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lane {
    /// Queues a packet; its due time must not be before the last one queued.
    pub fn push(self: &Arc<Self>, o: Out) {
        lock(&self.queue).push_back(o);
        if !self.scheduled.swap(true, Ordering::AcqRel)
            && let Some(p) = self.pump.upgrade()
        {
            lock(&p.incoming).push(self.clone());
            p.poke();
        }
    }

    /// Due time of the last packet queued, if any.
    pub fn last_due(&self) -> Option<Instant> {
        lock(&self.queue).back().map(|o| o.due)
    }

    pub fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.queue).is_empty()
    }

    /// Drops what was not sent yet and returns the first dropped RTP packet's (seq, pos).
    pub fn drain_unsent(&self) -> Option<(u16, u64)> {
        let mut q = lock(&self.queue);
        let first = q.iter().find(|o| !o.rtcp).map(|o| (o.seq, o.pos));
        q.clear();
        // Whatever the schedule holds for this lane is stale now.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.scheduled.store(false, Ordering::Release);
        first
    }

    /// The TCP connection is not taking packets as fast as they fall due.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// The session ended: the pump forgets the lane.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.drain_unsent();
    }
}

struct Shared {
    /// Lanes that became non-empty since the pump last looked.
    incoming: Mutex<Vec<Arc<Lane>>>,
    wake: (Mutex<bool>, Condvar),
}

impl Shared {
    fn poke(&self) {
        let (m, cv) = &self.wake;
        *lock(m) = true;
        cv.notify_one();
    }
}

/// The pump's handle: makes lanes; the thread stops when the handle drops.
pub struct Pump {
    shared: Arc<Shared>,
}

impl Pump {
    /// Starts the pump thread sending UDP from `rtp` (RTP) and `rtcp` (RTCP).
    pub fn start(rtp: &UdpSocket, rtcp: &UdpSocket, metrics: Arc<Metrics>) -> io::Result<Pump> {
        let shared = Arc::new(Shared {
            incoming: Mutex::new(Vec::new()),
            wake: (Mutex::new(false), Condvar::new()),
        });
        let (rtp, rtcp) = (rtp.try_clone()?, rtcp.try_clone()?);
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("rtp-pump".into())
            .spawn(move || run(weak, rtp, rtcp, metrics))?;
        Ok(Pump { shared })
    }

    pub fn lane(&self, dest: Dest) -> Arc<Lane> {
        Arc::new(Lane {
            queue: Mutex::new(VecDeque::new()),
            dest,
            closed: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            pump: Arc::downgrade(&self.shared),
        })
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.shared.poke();
    }
}

/// One UDP datagram of a batch.
struct Dgram {
    to: SocketAddr,
    out: Out,
}

/// A lane's place in the schedule: when its first packet is due.
struct Entry {
    due: Instant,
    generation: u64,
    lane: Arc<Lane>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest due must come first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.due.cmp(&self.due)
    }
}

/// Puts `lane` (back) in the schedule at its first packet's due time, or marks it unscheduled
/// when it is empty (re-checking, so a packet pushed meanwhile is not forgotten).
fn reschedule(heap: &mut BinaryHeap<Entry>, lane: Arc<Lane>, not_before: Option<Instant>) {
    loop {
        let generation = lane.generation.load(Ordering::Acquire);
        let front = lock(&lane.queue).front().map(|o| o.due);
        if let Some(due) = front {
            let due = not_before.map_or(due, |n| due.max(n));
            heap.push(Entry {
                due,
                generation,
                lane,
            });
            return;
        }
        lane.scheduled.store(false, Ordering::Release);
        if lane.is_empty() || lane.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

fn run(shared: Weak<Shared>, rtp: UdpSocket, rtcp: UdpSocket, metrics: Arc<Metrics>) {
    let _ = rtp.set_nonblocking(true);
    let _ = rtcp.set_nonblocking(true);
    let mut batch: Vec<Dgram> = Vec::with_capacity(MAX_MMSG);
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    loop {
        let Some(sh) = shared.upgrade() else { return };
        let incoming = std::mem::take(&mut *lock(&sh.incoming));
        for lane in incoming {
            reschedule(&mut heap, lane, None);
        }
        let now = Instant::now();
        let mut bytes = 0u64;
        while heap.peek().is_some_and(|e| e.due <= now) {
            let Some(e) = heap.pop() else { break };
            let lane = e.lane;
            if e.generation != lane.generation.load(Ordering::Acquire)
                || lane.closed.load(Ordering::Relaxed)
            {
                continue;
            }
            let mut retry = None;
            {
                let mut q = lock(&lane.queue);
                match &lane.dest {
                    Dest::Udp {
                        rtp: to_rtp,
                        rtcp: to_rtcp,
                    } => {
                        while q.front().is_some_and(|o| o.due <= now) {
                            let Some(o) = q.pop_front() else { break };
                            bytes += o.len() as u64;
                            let to = if o.rtcp { *to_rtcp } else { *to_rtp };
                            batch.push(Dgram { to, out: o });
                            if batch.len() == MAX_MMSG {
                                send_all(&rtp, &rtcp, &mut batch);
                            }
                        }
                    }
                    Dest::Tcp { tx } => {
                        // Everything due goes as one write-queue item (one write(2) by the
                        // connection's writer); a full queue leaves it all in the lane.
                        let k = q.iter().take_while(|o| o.due <= now).count();
                        let mut blocked = false;
                        if k > 0 {
                            // One copy, into the write-queue item (a writev of every piece
                            // would save it but cost an item per piece in the bounded queue).
                            let len = q.iter().take(k).map(Out::len).sum();
                            let mut b = bytes::BytesMut::with_capacity(len);
                            for o in q.iter().take(k) {
                                for piece in o.pieces() {
                                    b.extend_from_slice(piece);
                                }
                            }
                            let item = b.freeze();
                            let n = item.len() as u64;
                            match tx.try_send(item) {
                                Ok(()) => {
                                    bytes += n;
                                    q.drain(..k);
                                }
                                Err(mpsc::error::TrySendError::Full(_)) => blocked = true,
                                Err(mpsc::error::TrySendError::Closed(_)) => {
                                    q.clear();
                                    lane.closed.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                        lane.blocked.store(blocked, Ordering::Relaxed);
                        if blocked {
                            retry = Some(now + TCP_RETRY);
                        }
                    }
                }
            }
            reschedule(&mut heap, lane, retry);
        }
        send_all(&rtp, &rtcp, &mut batch);
        if bytes > 0 {
            metrics.bytes("rtsp", bytes);
        }
        // Sleep until the next packet falls due (at least a quantum, so packets due close
        // together go in one batch), or until a lane is added.
        let now = Instant::now();
        let next = heap
            .peek()
            .map_or(now + IDLE, |e| e.due.min(now + IDLE))
            .max(now + QUANTUM);
        let (m, cv) = &sh.wake;
        let mut poked = lock(m);
        if !*poked {
            poked = cv
                .wait_timeout(poked, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *poked = false;
    }
}

/// Sends the batch (RTP from `rtp`, RTCP from `rtcp`), in order, and empties it. A full socket
/// buffer is waited out briefly; a datagram the kernel refuses otherwise is dropped (UDP).
fn send_all(rtp: &UdpSocket, rtcp: &UdpSocket, batch: &mut Vec<Dgram>) {
    let mut i = 0;
    while i < batch.len() {
        let kind = batch[i].out.rtcp;
        let run = batch[i..].iter().take_while(|d| d.out.rtcp == kind).count();
        let sock = if kind { rtcp } else { rtp };
        let mut sent = 0;
        let mut stalls = 0;
        while sent < run {
            match sendmmsg(sock, &batch[i + sent..i + run]) {
                Ok(n) => sent += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && stalls < 50 => {
                    stalls += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "RTP send failed: datagram dropped");
                    sent += 1;
                }
            }
        }
        i += run;
    }
    batch.clear();
}

fn sendmmsg(sock: &UdpSocket, d: &[Dgram]) -> io::Result<usize> {
    let names: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        d.iter().map(|x| sockaddr(&x.to)).collect();
    // Every datagram's non-empty pieces, gathered by the kernel.
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(d.len() * 3);
    let mut spans = Vec::with_capacity(d.len());
    for x in d {
        let first = iov.len();
        for piece in x.out.pieces().into_iter().filter(|p| !p.is_empty()) {
            iov.push(libc::iovec {
                iov_base: piece.as_ptr() as *mut _,
                iov_len: piece.len(),
            });
        }
        spans.push((first, iov.len() - first));
    }
    let mut msgs: Vec<libc::mmsghdr> = spans
        .iter()
        .zip(&names)
        .map(|(&(first, n), (ss, len))| {
            // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = ss as *const _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = *len;
            // `iov` is complete and not touched again while `msgs` lives.
            m.msg_hdr.msg_iov = iov[first..].as_ptr() as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = n;
            m
        })
        .collect();
    // SAFETY: every pointer (names, iovecs, the Bytes) outlives the call; lengths match.
    let n = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(crate) fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(due: Instant, seq: u16) -> Out {
        // A head, and a body in two parts: the datagram is their concatenation.
        Out::new(
            due,
            &[seq as u8; 10],
            [
                Bytes::from(vec![seq as u8; 60]),
                Bytes::from(vec![seq as u8; 30]),
            ],
            false,
            seq,
            seq as u64 * 100,
        )
    }

    #[test]
    fn packets_leave_in_order_and_never_early() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let pump = Pump::start(&tx, &tx2, Arc::new(Metrics::default())).unwrap();
        let to = rx.local_addr().unwrap();
        let lane = pump.lane(Dest::Udp { rtp: to, rtcp: to });
        let t0 = Instant::now() + Duration::from_millis(20);
        for i in 0..50u16 {
            lane.push(out(t0 + Duration::from_millis(i as u64), i));
        }
        let mut b = [0u8; 200];
        for i in 0..50u16 {
            let n = rx.recv(&mut b).unwrap();
            let now = Instant::now();
            assert_eq!((n, b[0]), (100, i as u8));
            assert!(
                now >= t0 + Duration::from_millis(i as u64),
                "packet {i} early"
            );
            assert!(
                now < t0 + Duration::from_millis(i as u64 + 50),
                "packet {i} very late"
            );
        }
        // Unsent packets are dropped and named.
        let later = Instant::now() + Duration::from_secs(5);
        lane.push(out(later, 60));
        lane.push(out(later, 61));
        assert_eq!(lane.drain_unsent(), Some((60, 6000)));
        assert!(lane.is_empty());
    }

    #[test]
    fn a_full_tcp_queue_keeps_packets_in_the_lane() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pump = Pump::start(&a, &b, Arc::new(Metrics::default())).unwrap();
        let (qtx, mut qrx) = mpsc::channel(1);
        let lane = pump.lane(Dest::Tcp { tx: qtx });
        let now = Instant::now();
        lane.push(out(now, 1));
        std::thread::sleep(Duration::from_millis(20));
        lane.push(out(now + Duration::from_millis(30), 2));
        std::thread::sleep(Duration::from_millis(80));
        // The queue holds one item: the second packet waits in the lane.
        assert!(lane.is_blocked());
        assert_eq!(lane.len(), 1);
        assert_eq!(qrx.try_recv().unwrap()[0], 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(qrx.try_recv().unwrap()[0], 2);
        assert!(lane.is_empty());
    }
}
