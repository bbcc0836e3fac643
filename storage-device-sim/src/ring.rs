//! The ring thread of one device: one io_uring, driven by one thread, doing every read.
//!
//! # Flow of a read
//!
//! 1. The caller ([`Device::read`](crate::Device::read)) validates the path, finds the open file
//!    in the device's fd table, takes an admission permit (waiting if `buffer_count` reads are
//!    already inside the device: the bound on everything queued below), and sends a `Req`
//!    over an unbounded crossbeam channel, which thus never holds more than `buffer_count`
//!    requests. It then waits on its reply: a tokio `oneshot` (async) or a crossbeam channel
//!    (blocking).
//! 2. The ring thread takes requests off the channel, charges the bandwidth token bucket, and
//!    queues them. It keeps at most `queue_depth` reads in the kernel; each takes a buffer from
//!    the pool as it is submitted (LIFO, so a recently used, cache-warm buffer) and becomes a
//!    `READ_FIXED` SQE into that registered buffer (plain `READ` if registration was refused).
//!    If every buffer is held by callers' `Bytes`, reads stay queued until one comes back.
//! 3. Completions are reaped; a short read that is not at end of file is resubmitted for the
//!    rest; the answer is a `Bytes` owning the pool buffer, sliced to what was asked (the
//!    aligned superset read for `O_DIRECT` is cut down here, without a copy).
//!
//! # Splices
//!
//! A request may carry a pipe instead of wanting a pool buffer ([`crate::pipe`],
//! `Device::splice`): it becomes an io_uring `SPLICE` from the file into the pipe, and takes no
//! pool buffer. (A splice of pages already cached is done by the caller's thread and never
//! comes here: see [`crate::inline`].) io_uring runs every splice in one of its workers (it has no non-blocking
//! attempt for it), so a cold page never holds this thread either. Tried and not kept: asking
//! `cachestat(2)` whether every page of the range is cached and then splicing inline in this
//! thread (no worker hop). Measured with `sendpath`'s `device` mode (three alternating runs
//! on a shared, noisy machine): no clear difference at one connection, and at eight about 0.9×
//! the throughput for 1.1× the CPU per GiB: every splice of the node then queues behind this
//! one thread, which also spins between requests instead of sleeping with work in the kernel.
//! Everything else is the same
//! as for a read: admission, bandwidth charged at arrival, EIO ranges checked before
//! submission, latency, stall and crash applied after completion while the bytes sit in the
//! pipe (a failed splice's pipe is thrown away by its caller), and a short splice continued
//! for the rest into the same pipe. The pipe is opened non-blocking on the splice's side
//! (`SPLICE_F_NONBLOCK`): a pipe that is not empty is a caller's bug, and fails with `EAGAIN`
//! instead of parking a worker forever.
//!
//! # Page-cache reads
//!
//! Most never reach this thread: the device first tries them from the caller's own thread
//! ([`crate::inline`]). Those that do (a knob acts, or the caller's attempt found a page
//! missing while the rest was cached) are handled as follows.
//! A read whose data is in the page cache completes inside the `io_uring_enter` that submits
//! it: the ring thread itself copies it. Queue depth buys nothing there, and 32 reads of 1 MiB
//! submitted at once would each take a different buffer, 32 MiB that no longer fit the CPU
//! cache (measured: about 0.65× the copy throughput of a warm buffer). So the thread counts
//! reads that completed within their own submission; after `CACHED_STREAK` in a row it
//! submits at most `CACHED_BYTES_IN_KERNEL` bytes at once, and the first read that has to wait
//! for the disk restores the full queue depth.
//!
//! # Waking the ring thread
//!
//! The thread sleeps only inside `io_uring_enter` (waiting for at least one CQE, with a timeout
//! when a timer is pending). To be woken by a new request it keeps a `READ` of an eventfd armed
//! in the ring: a sender writes the eventfd, the read completes, the thread wakes. To avoid one
//! `write` per request when the ring is busy, the thread raises a `sleeping` flag before it
//! waits and senders write the eventfd only if they clear that flag (a store/fence/load
//! handshake on both sides, so a request is either seen by the thread's last look at the
//! channel or wakes it). Knob setters always write the eventfd, and so does a buffer returned
//! to the pool while reads wait for one (only then).
//!
//! The price of a ring on its own thread is two thread wake-ups per read when the caller
//! waits for each read (the eventfd, then the reply). On this machine class that is about 6 µs
//! while the CPUs are busy, but 35–45 µs when they are idle: the VM halts an idle vCPU at once
//! (`haltpoll.guest_halt_poll_ns=0`), and waking it goes through the host. So before sleeping
//! with nothing in the kernel, the thread polls the channel for up to `SPIN` (50 µs): a caller
//! that just got its answer usually sends its next read within that time. A spin that times out
//! backs off exponentially (the next 1, 2, 4 … 256 idle moments sleep at once), so an idle
//! device, or one whose callers cannot run because the spinning thread holds their CPU, spins
//! rarely. Measured on 2 idle vCPUs: 4 KiB reads one at a time 29 k → 70 k per second, 1 MiB
//! ones 0.58× → 0.74× of `pread`, at *less* CPU per GiB; with another process hogging a core,
//! no change either way. A 4 KiB `pread` from the page cache still takes only ~1.2 µs, so
//! reads one at a time from the page cache stayed slower than `pread` through this thread:
//! hence the callers' inline attempts, which took 4 KiB reads one at a time from 0.09× to
//! 0.60× of `pread` and 1 MiB reads to 1.02× (depth 1) and 1.06× (depth 32). What this thread
//! buys is that the caller (the streaming event loop) never blocks on a cold read. Tried and not kept:
//! `DEFER_TASKRUN` (no better), and `IOSQE_ASYNC` for large page-cache reads so two kernel
//! workers copy in parallel (+10–20% at depth 32 on an idle machine for about 1.3× the CPU,
//! much slower at depth 1).
//!
//! # Simulated delays never block the ring
//!
//! Bandwidth and latency are virtual time, kept on a min-heap of ready-at instants in the ring
//! thread; the wait in `io_uring_enter` is bounded by the earliest one (`EXT_ARG` timeout), so
//! other reads keep flowing while some wait.
//!
//! - **Bandwidth** (token bucket, burst = one buffer, refilled at the cap): a read is charged
//!   the bytes it will transfer when it arrives; if the bucket goes negative the read is parked
//!   on the heap until the debt is paid, then submitted. Reads are thus *started* at the capped
//!   rate, so N bytes take about (N − burst) / cap.
//! - **Latency** is added after the real completion: the finished read (buffer filled, or an
//!   injected error) is parked on the heap for the added time before it is answered.
//! - **Stall** holds finished reads in a list instead of answering them; `unstall` (or
//!   `recover`) answers them, `crash` fails them.
//! - **Crash** fails every read the thread holds (queued, parked, held) at once with
//!   `Crashed`; a read in the kernel cannot be recalled (its buffer is the kernel's until the
//!   CQE), so it fails with `Crashed` when it completes, which for a local file is soon.
//! - **EIO ranges** are checked just before submission; a hit is not issued and is answered
//!   with `Injected` through the same latency/stall path as a real completion.
//!
//! # Shutdown
//!
//! When the last `Device` clone drops, its sender drops and it writes the eventfd; the thread
//! sees the channel disconnected, fails whatever it still queues with `Closed`, waits for the
//! reads in the kernel, completes its own eventfd read (by writing the eventfd) so no SQE
//! references its memory, and exits; `Device`'s drop joins it. Should the thread ever stop with
//! reads still in the kernel (a fatal ring error), their buffers are leaked, never reused.

use crate::device::OpenFile;
use crate::knobs::KnobsShared;
use crate::pipe::SplicePipe;
use crate::pool::{ALIGN, Admitted, Pool, PooledBuf, Slot};
use crate::stats::{InFlight, Stats};
use crate::{Result, StorageError};
use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use io_uring::{IoUring, opcode, squeue, types};
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// user_data of the eventfd read; reads use their slab index.
const EFD_UD: u64 = u64::MAX;

/// While reads are being served from the page cache (see `cached_streak`), at most this many
/// bytes are submitted at once, so the few buffers in use stay in the CPU cache.
const CACHED_BYTES_IN_KERNEL: u64 = 4 << 20;
/// Consecutive reads completed within their own submission that switch to the cap above.
const CACHED_STREAK: u32 = 8;
/// How long the ring thread polls the channel before sleeping (see `spin_for_requests`).
const SPIN: Duration = Duration::from_micros(50);

/// Wakes the ring thread: an eventfd the thread keeps a read armed on.
pub(crate) struct Notify {
    efd: OwnedFd,
    sleeping: AtomicBool,
}

impl Notify {
    pub(crate) fn new() -> io::Result<Notify> {
        // Blocking eventfd: io_uring then polls it instead of returning EAGAIN.
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Notify {
            // SAFETY: a fresh fd we own.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }

    /// Wake the ring thread (or make its next wait return at once).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. It cannot block (the counter
        // would have to reach 2^64-2) and a failure only means the fd is gone, i.e. shutdown.
        unsafe {
            libc::write(self.efd.as_raw_fd(), (&raw const one).cast(), 8);
        }
    }

    /// The eventfd's counter (and reset it), without blocking. For tests.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> u64 {
        let mut pfd = libc::pollfd {
            fd: self.efd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        if unsafe { libc::poll(&mut pfd, 1, 0) } != 1 {
            return 0;
        }
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; the fd is readable (poll said so).
        unsafe { libc::read(self.efd.as_raw_fd(), (&raw mut v).cast(), 8) };
        v
    }

    /// After sending a request: wake the thread only if it is (about to be) asleep.
    pub(crate) fn wake_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }
}

/// Where a read's answer goes.
pub(crate) enum Reply {
    Async(oneshot::Sender<Result<Bytes>>),
    Blocking(crossbeam_channel::Sender<Result<Bytes>>),
    /// A splice into the request's pipe: how many bytes the pipe now holds.
    Spliced(oneshot::Sender<Result<usize>>),
}

impl Reply {
    fn send(self, r: Result<Bytes>) {
        // A caller that stopped waiting (dropped future) is not an error: the Bytes drops
        // here and its buffer goes back to the pool.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
            Reply::Spliced(tx) => {
                let _ = tx.send(r.map(|b| b.len()));
            }
        }
    }
}

/// One read, from the caller to the ring and back.
pub(crate) struct Req {
    pub(crate) file: Arc<OpenFile>,
    /// What the caller asked: `len` bytes at `offset`.
    pub(crate) offset: u64,
    pub(crate) len: usize,
    /// What the kernel reads: `read_len` bytes at `read_off` (aligned for `O_DIRECT`), the
    /// caller's bytes starting `skip` bytes into the buffer.
    pub(crate) read_off: u64,
    pub(crate) read_len: u32,
    pub(crate) skip: u32,
    /// The pool buffer, taken by the ring thread at submission.
    pub(crate) slot: Option<Slot>,
    /// Splice into this pipe instead of reading into a pool buffer (see [`crate::pipe`]).
    /// Held until the kernel is done with it, so its fds outlive any splice into them.
    pub(crate) pipe: Option<Arc<SplicePipe>>,
    pub(crate) reply: Reply,
    pub(crate) started: Instant,
    pub(crate) in_flight: InFlight,
    pub(crate) admitted: Admitted,
    /// Bytes read so far (short reads are continued).
    pub(crate) done: u32,
    /// The added latency has been applied.
    pub(crate) delayed: bool,
    /// Found the pool empty once (counted once in the stats).
    pub(crate) starved: bool,
    /// The `io_uring_enter` (by number) that submitted the read.
    pub(crate) enter_no: u64,
}

type Outcome = std::result::Result<u32, StorageError>;

enum Event {
    Submit(Req),
    Complete(Req, Outcome),
}

/// An entry of the timer heap, ordered so `BinaryHeap` pops the earliest (then the oldest).
struct Timed {
    at: Instant,
    seq: u64,
    ev: Event,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.at.cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

pub(crate) struct RingParams {
    pub(crate) node: String,
    pub(crate) depth: u32,
    pub(crate) o_direct: bool,
    /// Token bucket burst: one buffer.
    pub(crate) burst: u64,
    pub(crate) pool: Arc<Pool>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) knobs: Arc<KnobsShared>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) rx: Receiver<Req>,
}

/// Start the ring thread; returns its handle and whether buffers are registered.
pub(crate) fn start(p: RingParams) -> Result<(JoinHandle<()>, bool)> {
    let node = p.node.clone();
    let (tx0, rx0) = std::sync::mpsc::sync_channel(1);
    let h = std::thread::Builder::new()
        .name(format!("ring-{node}"))
        .spawn(move || match Ring::new(p) {
            Ok(mut ring) => {
                let _ = tx0.send(Ok(ring.fixed));
                ring.run();
            }
            Err(e) => {
                let _ = tx0.send(Err(e));
            }
        })
        .map_err(|source| StorageError::Ring {
            node: node.clone(),
            source,
        })?;
    match rx0.recv() {
        Ok(Ok(fixed)) => Ok((h, fixed)),
        Ok(Err(source)) => {
            let _ = h.join();
            Err(StorageError::Ring { node, source })
        }
        Err(_) => {
            let _ = h.join();
            Err(StorageError::Closed { node })
        }
    }
}

struct Ring {
    // Declared first: dropped (ring closed, buffers unregistered) before the pool.
    uring: IoUring,
    rx: Receiver<Req>,
    notify: Arc<Notify>,
    knobs: Arc<KnobsShared>,
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    node: String,
    fixed: bool,
    o_direct: bool,
    /// Reads in the kernel, indexed by user_data; `free` lists the empty entries.
    slab: Vec<Option<Req>>,
    free: Vec<usize>,
    /// Bytes of the reads in the kernel.
    kernel_bytes: u64,
    /// `io_uring_enter` calls so far.
    enters: u64,
    /// Consecutive reads that completed within the enter that submitted them: served from the
    /// page cache. At `CACHED_STREAK` the bytes in the kernel are capped; one read that had to
    /// wait for the device resets it and restores the full queue depth.
    cached_streak: u32,
    /// Spin-before-sleep backoff: idle moments left to sleep at once, and the next such count.
    spin_skip: u32,
    spin_backoff: u32,
    /// Admitted, waiting for a free slab entry (queue depth).
    waiting: VecDeque<Req>,
    timers: BinaryHeap<Timed>,
    seq: u64,
    /// Finished while stalled.
    held: Vec<(Req, Outcome)>,
    efd_buf: Box<u64>,
    efd_armed: bool,
    // Token bucket.
    burst: u64,
    bucket_on: bool,
    tokens: f64,
    bucket_at: Instant,
    closing: bool,
    cqes: Vec<(u64, i32)>,
}

impl Ring {
    fn new(p: RingParams) -> io::Result<Ring> {
        let depth = p.depth as usize;
        let entries = (p.depth + 2).next_power_of_two();
        // The thread that builds the ring is the only one to submit (SINGLE_ISSUER), and it
        // does not need interrupting task work (COOP_TASKRUN; DEFER_TASKRUN measured no better).
        // Older kernels: plain ring.
        let uring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        if !uring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "kernel lacks IORING_FEAT_EXT_ARG (needs Linux ≥ 5.11)",
            ));
        }
        let iovecs = p.pool.iovecs();
        // SAFETY: the iovecs describe the pool's mapping, which outlives the ring (the ring
        // is dropped first, see the field order) and is only written by the kernel for reads
        // whose slot the ring thread owns.
        let fixed = unsafe { uring.submitter().register_buffers(&iovecs) }.is_ok();
        Ok(Ring {
            uring,
            rx: p.rx,
            notify: p.notify,
            knobs: p.knobs,
            stats: p.stats,
            pool: p.pool,
            node: p.node,
            fixed,
            o_direct: p.o_direct,
            slab: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
            kernel_bytes: 0,
            enters: 0,
            cached_streak: 0,
            spin_skip: 0,
            spin_backoff: 1,
            waiting: VecDeque::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            held: Vec::new(),
            efd_buf: Box::new(0),
            efd_armed: false,
            burst: p.burst,
            bucket_on: false,
            tokens: 0.0,
            bucket_at: Instant::now(),
            closing: false,
            cqes: Vec::with_capacity(depth + 2),
        })
    }

    fn in_kernel(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    fn run(&mut self) {
        self.arm_eventfd();
        loop {
            self.intake();
            self.fire_timers();
            self.apply_knobs();
            self.submit_waiting();
            if self.closing {
                self.fail_queued(|node| StorageError::Closed { node });
                if self.in_kernel() == 0 {
                    if !self.efd_armed {
                        break;
                    }
                    // Complete our own eventfd read so nothing in the kernel points at us.
                    self.notify.wake();
                }
            }
            if self.in_kernel() == 0 && !self.closing {
                self.spin_for_requests();
            }
            let timeout = self
                .timers
                .peek()
                .map(|t| t.at.saturating_duration_since(Instant::now()));
            self.notify.sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let block = self.rx.is_empty();
            let r = if !block {
                self.uring.submit()
            } else if let Some(d) = timeout {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            } else {
                self.uring.submit_and_wait(1)
            };
            self.notify.sleeping.store(false, Ordering::Relaxed);
            self.enters += 1;
            self.stats.enter();
            if let Err(e) = r {
                match e.raw_os_error() {
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                    _ => {
                        eprintln!(
                            "storage node {}: io_uring_enter failed: {e}; ring stopped",
                            self.node
                        );
                        break;
                    }
                }
            }
            self.reap();
        }
        self.fail_queued(|node| StorageError::Closed { node });
    }

    /// Nothing in the kernel and nothing to do: poll the channel for up to `SPIN` before
    /// sleeping, since a caller that just got its answer usually sends its next read within
    /// microseconds, and catching it here saves the two vCPU wake-ups of a sleep. A spin that
    /// times out backs off: the next 1, 2, 4 … 256 idle moments sleep at once, so an idle
    /// device, or one whose callers cannot run because this thread holds their CPU, spins
    /// rarely.
    fn spin_for_requests(&mut self) {
        if !self.rx.is_empty() {
            return;
        }
        if self.spin_skip > 0 {
            self.spin_skip -= 1;
            return;
        }
        let now = Instant::now();
        let mut until = now + SPIN;
        if let Some(t) = self.timers.peek() {
            until = until.min(t.at);
        }
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            if !self.rx.is_empty() {
                self.spin_backoff = 1;
                return;
            }
            if Instant::now() >= until {
                break;
            }
        }
        self.spin_skip = self.spin_backoff;
        self.spin_backoff = (self.spin_backoff * 2).min(256);
    }

    fn arm_eventfd(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.notify.efd.as_raw_fd()),
            (&raw mut *self.efd_buf).cast::<u8>(),
            8,
        )
        .build()
        .user_data(EFD_UD);
        self.push(e);
        self.efd_armed = true;
    }

    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every SQE we build points at memory that stays valid until its CQE: a
            // slot owned by a slab entry, or `efd_buf` (see `Drop`).
            if unsafe { self.uring.submission().push(&e) }.is_ok() {
                return;
            }
            // The SQ is sized for depth + 2 entries and flushed on every loop, so this is a
            // safety net only.
            self.enters += 1;
            self.stats.enter();
            let _ = self.uring.submit();
        }
    }

    fn intake(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(req) => self.admit(req),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.closing = true;
                    break;
                }
            }
        }
    }

    fn admit(&mut self, req: Req) {
        if self.knobs.crashed() {
            let e = self.crashed();
            return self.deliver(req, Err(e));
        }
        match self.knobs.bandwidth() {
            Some(rate) => {
                let now = Instant::now();
                let at = self.bucket_take(now, u64::from(req.read_len), rate);
                if at > now {
                    self.push_timer(at, Event::Submit(req));
                    return;
                }
            }
            None => self.bucket_on = false,
        }
        self.waiting.push_back(req);
    }

    /// Charge `cost` bytes; returns when the read may start.
    fn bucket_take(&mut self, now: Instant, cost: u64, rate: u64) -> Instant {
        let burst = self.burst as f64;
        if !self.bucket_on {
            self.bucket_on = true;
            self.tokens = burst;
            self.bucket_at = now;
        }
        let dt = now.saturating_duration_since(self.bucket_at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate as f64).min(burst) - cost as f64;
        self.bucket_at = now;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / rate as f64)
        }
    }

    fn push_timer(&mut self, at: Instant, ev: Event) {
        self.seq += 1;
        self.timers.push(Timed {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|t| t.at <= now) {
            let Some(t) = self.timers.pop() else { break };
            match t.ev {
                Event::Submit(req) => {
                    if self.knobs.crashed() {
                        let e = self.crashed();
                        self.deliver(req, Err(e));
                    } else {
                        self.waiting.push_back(req);
                    }
                }
                Event::Complete(req, out) => self.finish(req, out),
            }
        }
    }

    fn apply_knobs(&mut self) {
        if self.knobs.crashed() {
            self.fail_queued(|node| StorageError::Crashed { node });
        } else if !self.held.is_empty() && !self.knobs.stalled() {
            for (req, out) in std::mem::take(&mut self.held) {
                self.deliver(req, out);
            }
        }
    }

    /// Fail every read the thread holds outside the kernel.
    fn fail_queued(&mut self, err: impl Fn(String) -> StorageError) {
        for req in std::mem::take(&mut self.waiting) {
            self.deliver(req, Err(err(self.node.clone())));
        }
        for t in std::mem::take(&mut self.timers).into_vec() {
            let req = match t.ev {
                Event::Submit(r) | Event::Complete(r, _) => r,
            };
            self.deliver(req, Err(err(self.node.clone())));
        }
        for (req, _) in std::mem::take(&mut self.held) {
            self.deliver(req, Err(err(self.node.clone())));
        }
    }

    fn crashed(&self) -> StorageError {
        StorageError::Crashed {
            node: self.node.clone(),
        }
    }

    fn submit_waiting(&mut self) {
        let cached = self.cached_streak >= CACHED_STREAK;
        while !self.free.is_empty() {
            let Some(mut req) = self.waiting.pop_front() else {
                break;
            };
            if self.knobs.crashed() {
                let e = self.crashed();
                self.deliver(req, Err(e));
                continue;
            }
            if let Some(at) = self
                .knobs
                .eio_hit(&req.file.rel, req.offset, req.len as u64)
            {
                let e = StorageError::Injected {
                    node: self.node.clone(),
                    path: req.file.rel.clone(),
                    offset: at,
                };
                self.finish(req, Err(e));
                continue;
            }
            let bytes = u64::from(req.read_len);
            if cached && self.kernel_bytes > 0 && self.kernel_bytes + bytes > CACHED_BYTES_IN_KERNEL
            {
                self.waiting.push_front(req);
                break;
            }
            if req.pipe.is_none() {
                let Some(slot) = self.pool.take_or_wake_me() else {
                    // Every buffer is held by callers' Bytes: wait for one to come back.
                    if !req.starved {
                        req.starved = true;
                        self.stats.buffer_wait();
                    }
                    self.waiting.push_front(req);
                    break;
                };
                req.slot = Some(slot);
            }
            let Some(i) = self.free.pop() else { break };
            self.kernel_bytes += bytes;
            self.slab[i] = Some(req);
            self.issue(i);
        }
    }

    /// Submit (the rest of) the read in slab entry `i`.
    fn issue(&mut self, i: usize) {
        let next_enter = self.enters + 1;
        let Some(req) = self.slab[i].as_mut() else {
            return;
        };
        let fd = types::Fd(req.file.file.as_raw_fd());
        if let Some(pipe) = &req.pipe {
            // The file's pages into the (empty) pipe. NONBLOCK concerns the pipe only: a full
            // pipe would be a caller's bug, and fails (EAGAIN) instead of parking a worker.
            let off = req.read_off + u64::from(req.done);
            let len = req.read_len - req.done;
            let e = opcode::Splice::new(fd, off as i64, types::Fd(pipe.write_fd()), -1, len)
                .flags(libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK)
                .build();
            req.enter_no = next_enter;
            self.push(e.user_data(i as u64));
            self.stats.sqe();
            return;
        }
        let Some(slot) = req.slot.as_mut() else {
            return;
        };
        let done = req.done;
        // SAFETY: done < read_len <= buffer capacity.
        let ptr = unsafe { slot.as_mut_ptr().add(done as usize) };
        let len = req.read_len - done;
        let off = req.read_off + u64::from(done);
        let e = if self.fixed {
            let idx = slot.index() as u16; // count <= 16384, checked at open
            opcode::ReadFixed::new(fd, ptr, len, idx)
                .offset(off)
                .build()
        } else {
            opcode::Read::new(fd, ptr, len).offset(off).build()
        };
        req.enter_no = next_enter;
        self.push(e.user_data(i as u64));
        self.stats.sqe();
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.uring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &cqes {
            if ud == EFD_UD {
                self.efd_armed = false;
                if !self.closing {
                    self.arm_eventfd();
                }
            } else {
                self.complete(ud as usize, res);
            }
        }
        self.cqes = cqes;
    }

    fn complete(&mut self, i: usize, res: i32) {
        let o_direct = self.o_direct;
        let Some(req) = self.slab.get_mut(i).and_then(|e| e.as_mut()) else {
            return;
        };
        if res == -libc::EINTR || (res == -libc::EAGAIN && req.pipe.is_none()) {
            return self.issue(i);
        }
        if req.enter_no == self.enters {
            self.cached_streak = self.cached_streak.saturating_add(1);
        } else {
            self.cached_streak = 0;
        }
        let out = if res == -libc::EAGAIN && req.done > 0 {
            // The pipe is full after a short splice (its slots hold partial pages): the bytes
            // already in it are good, and the caller asks for the rest next time.
            Ok(req.done)
        } else if res < 0 {
            let source = io::Error::from_raw_os_error(-res);
            let path = req.file.path.clone();
            Err(if o_direct && res == -libc::EINVAL {
                StorageError::DirectIo { path, source }
            } else {
                StorageError::Io { path, source }
            })
        } else {
            req.done += res as u32;
            // A short read is continued unless it hit end of file (0 bytes, or an unaligned
            // count under O_DIRECT, which only happens at end of file).
            let more = res > 0
                && req.done < req.read_len
                && (!o_direct || (req.done as usize).is_multiple_of(ALIGN));
            if more {
                return self.issue(i);
            }
            Ok(req.done)
        };
        let Some(req) = self.slab[i].take() else {
            return;
        };
        self.free.push(i);
        self.kernel_bytes -= u64::from(req.read_len);
        self.finish(req, out);
    }

    /// A read is done (or failed before reaching the kernel): apply crash, latency, stall.
    fn finish(&mut self, mut req: Req, out: Outcome) {
        if self.knobs.crashed() {
            let e = self.crashed();
            return self.deliver(req, Err(e));
        }
        if !req.delayed {
            let lat = self.knobs.latency();
            if !lat.is_zero() {
                req.delayed = true;
                return self.push_timer(Instant::now() + lat, Event::Complete(req, out));
            }
        }
        if self.knobs.stalled() {
            return self.held.push((req, out));
        }
        self.deliver(req, out);
    }

    /// Answer the caller.
    fn deliver(&mut self, req: Req, out: Outcome) {
        let latency = req.started.elapsed();
        let Req {
            slot,
            pipe,
            reply,
            skip,
            len,
            in_flight,
            admitted,
            ..
        } = req;
        if pipe.is_some() {
            let r = match out {
                Ok(done) => {
                    let n = (done as usize).min(len);
                    self.stats.record_ok(n, latency);
                    Ok(n)
                }
                Err(e) => {
                    self.stats.record_err(latency);
                    Err(e)
                }
            };
            drop(admitted);
            drop(in_flight);
            if let Reply::Spliced(tx) = reply {
                let _ = tx.send(r);
            }
            return;
        }
        let r = match (out, slot) {
            (Ok(done), Some(slot)) => {
                let n = (done.saturating_sub(skip) as usize).min(len);
                self.stats.record_ok(n, latency);
                if n == 0 {
                    drop(slot);
                    Ok(Bytes::new())
                } else {
                    Ok(Bytes::from_owner(PooledBuf::new(slot, skip as usize, n)))
                }
            }
            (Ok(_), None) => {
                // Not reachable: a read is only Ok after the kernel filled its buffer.
                self.stats.record_ok(0, latency);
                Ok(Bytes::new())
            }
            (Err(e), slot) => {
                drop(slot);
                self.stats.record_err(latency);
                Err(e)
            }
        };
        drop(admitted);
        drop(in_flight);
        reply.send(r);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Only after a fatal ring error can reads still be in the kernel: their buffers may
        // still be written, so leak them rather than return them to the pool.
        for e in &mut self.slab {
            if let Some(req) = e.take() {
                let Req { slot, .. } = req;
                if let Some(slot) = slot {
                    std::mem::forget(slot);
                }
            }
        }
        if self.efd_armed {
            Box::leak(std::mem::take(&mut self.efd_buf));
        }
    }
}
