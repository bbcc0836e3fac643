//! Sending a content body: from the storage nodes to the client's socket, with no copy through
//! user memory when the bytes come from a local node.
//!
//! # The path, and why it won
//!
//! For each step (a pipe's worth, 60 KiB) the replica reader asks the
//! current replica's device to `SPLICE` the file's pages into a pipe
//! ([`storage_device_sim::pipe`]). When `cachestat(2)` says every page is cached and no knob
//! acts, this thread does it itself with `splice(2)` (`storage_device_sim::inline`: no
//! hand-off to the ring thread, nor to an io_uring worker; measured 0.73–0.85× → 0.75–0.99×
//! nginx's throughput and 1.30–1.84× → 1.25–1.34× its CPU per GiB when the hand-off to the
//! ring thread went, and less CPU again when io_uring's worker went, see that module).
//! Otherwise the device's ring thread does it (a cold page is read by an io_uring
//! worker, so this event loop never blocks on the disk), applies the node's knobs (bandwidth,
//! latency, EIO, stall, crash) while the bytes wait in the pipe, and answers with the count.
//! This task then `splice(2)`s the pipe into the socket (non-blocking, driven by the socket's
//! readiness). The pipe carries page references: page cache → socket with no
//! copy at all in this process, which is what `sendfile(2)` gives nginx.
//!
//! Chunk k+1 is spliced into a second pipe while chunk k goes out, so the socket does not wait
//! for the ring between chunks. Pipes come from the process's pool
//! ([`storage_device_sim::pipe_pool`]: 64 KiB pipes, within the kernel's per-user pipe
//! budget), taken for a body and given back drained.
//!
//! `benches/src/bin/sendpath.rs` measured the candidates (1 GiB file in the page cache,
//! loopback, 1 MiB random ranges, the `httpload` client; medians of 3 interleaved rounds on
//! the shared 2-core machine; throughput / CPU-seconds per GiB relative to `sendfile`, at 8
//! connections, then at 1):
//!
//! - copy through a registered buffer (the old path: ring `READ_FIXED`, then `write`):
//!   0.89× / 1.04×; 0.45× / 2.29× at 1 connection. Two copies.
//! - `READ_FIXED` then io_uring `SEND_ZC` from the registered buffer: 0.58× / 1.42×; 0.45× /
//!   2.41×. The worst: the read still copies, on loopback the kernel copies "zero-copy" pages
//!   anyway when it delivers them to a local socket (the receiver must not see user pages that
//!   may change), and each buffer waits for its notification before reuse.
//! - `sendfile(2)` (nginx): 1.00. No copy, but it reads the file in the calling thread (a cold
//!   page blocks the event loop) and cannot apply the simulated device's knobs.
//! - io_uring `SPLICE` file → pipe linked to `SPLICE` pipe → socket, a ring per connection:
//!   1.21× / 0.85×; 1.03× / 1.08×. The send runs in an io_uring worker, so a slow client would
//!   hold a worker and a ring slot, and the knobs could not hold bytes between the two halves.
//! - `SPLICE` file → pipe in a ring, `splice(2)` pipe → socket by the connection, a ring per
//!   connection: 1.96× / 0.52×; 0.81× / 1.18×. A 1 MiB pipe goes to the socket in one call
//!   (`sendfile` loops over a small internal pipe): the cheapest per GiB of all.
//! - the same split through the node's shared ring thread, one pipe (`device` mode, what this
//!   module does minus the second pipe): 0.93× / 1.03×; 0.60× / 1.52×. The hand-off to the
//!   ring thread and its io_uring worker costs what the larger pipe saves.
//!
//! The split won: the only zero-copy shape that keeps the ring as the one owner of the file,
//! the knobs and failover (bytes wait in the pipe while latency, stall or crash apply), never
//! lets a client's speed hold the ring, and reads cold pages in an io_uring worker instead of
//! this event loop.
//!
//! # Where the CPU went, and what it cost per GiB
//!
//! A re-run of `sendpath` on 2026-12-03 (8 connections) did not reproduce the split's lead:
//! sendfile 1.00, split 1.06× / 1.07×, `device` 0.93× / 1.01×. The kernel's share is the same
//! for every zero-copy shape; what separates the streamer from nginx is what it does per
//! request and per step. Measured with `httpload` at 4 KiB ranges (where only that counts),
//! the streamer spent 46 µs of CPU per request against nginx's 16–19; perf put it in:
//! io_uring's worker hand-off for the cached splice (23%), `statx` of the node folders by the
//! catalog on every request (7%), and, per 256 KiB step, a timer and a membership
//! subscription per replica attempt. Now: the cached splice is a plain `splice(2)`, the
//! catalog re-checks at most every 100 ms, an attempt done at its first poll arms nothing, and
//! a step is [`CHUNK`] (1 MiB, a quarter of the steps). `http_vs_nginx` went from 1.15–1.28×
//! nginx's CPU per GiB to 0.97–1.05× (see the issue notes for the runs).
//!
//! # It depends on the kernel
//!
//! On kernel 6.18.44 (2026-12-03, another 2-core machine) the same `sendpath` run gave sendfile
//! 1.00, split 2.71× / 0.38×, `device` 2.91× / 0.34×. `sendfile(2)` moves a file through the
//! task's internal 16-page pipe, our 1 MiB pipe goes to the socket in one `splice`; why that
//! is worth 2.7× on this machine and 1.06× on the earlier one was not pinned down.
//!
//! nginx's own setting matters as much: on that kernel `tcp_nopush off` took nginx from 4.2 to
//! 5.5–7.9 GiB/s on 1 MiB ranges. With 1 MiB pipes the streamer beat nginx with `tcp_nopush
//! on` on all four workloads but only tied `tcp_nopush off` on 4 MiB files (0.92–1.17×
//! throughput, 0.91–1.12× CPU per GiB), over 90% of its CPU in `splice_to_socket`, the
//! kernel's TCP send path that `sendfile` takes too. What moved it was the shape of what
//! reaches that path: with 64 KiB pipes (a step is one loopback TCP segment, see
//! [`pipe_pool`]) the first full `http_vs_nginx` run gave 1.22× / 0.85× / 0.49× (throughput,
//! CPU per GiB, p99) against `tcp_nopush off` on 4 MiB files at 64 connections, and met the
//! goal on every workload against both settings. `http_vs_nginx` measures against both;
//! every run names its kernel.
//!
//! Failover stays byte-exact: a failed or abandoned splice throws the pipe away (its content is
//! unknown) and the next replica splices the same offset into a fresh one; bytes reach the
//! socket only after a splice succeeded. A replica that cannot splice (a remote
//! `storage-node`, an `O_DIRECT` device) returns `Bytes`, written with `write` as before.

use crate::http::ContentBody;
use crate::metrics::Metrics;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use storage_device_sim::pipe::SplicePipe;
use storage_device_sim::pipe_pool;
use storage_device_sim::replica::{Chunk, ReplicaReader};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes per step of a body at most: one storage read. A spliced step is bounded by its pipe's
/// capacity, 60 KiB ([`pipe_pool::PIPE_SIZE`] less a page kept for an unaligned start; why that
/// size won is in [`pipe_pool`]), so this bounds what a replica that cannot splice is asked
/// for (it answers with at most its buffer size, 256 KiB by default).
///
/// Before the pool, steps of 1 MiB − 4 KiB were measured against other shapes (2026-12-03,
/// kernel 6.18.44; two streamers side by side, alternating 2.5 s slices of `httpload`): whole
/// 1 MiB steps from a page-aligned offset were *slower* on 4 MiB files at 64 connections
/// (4.58 vs 5.06 GiB/s), 512 KiB steps faster on 1 MiB ranges and slower on 4 MiB files.
/// Those steps were all larger than one TCP segment on loopback; see [`pipe_pool`] for why
/// that, not their alignment, was what cost.
pub const CHUNK: usize = 1 << 20;

/// Counts the body as an active session while it is being sent.
struct Session<'a>(&'a Metrics);

impl<'a> Session<'a> {
    fn start(m: &'a Metrics) -> Session<'a> {
        m.session_started();
        Session(m)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.0.session_ended();
    }
}

/// Send `body` on `stream`, `chunk` bytes per storage read at most (a step is also bounded by
/// its pipe's capacity). Chunk k+1 is fetched (spliced into a second pipe) while chunk k goes
/// out; when the pool has no second pipe (the kernel's pipe budget or the operator's limit is
/// spent, see [`storage_device_sim::pipe_pool`]) the one pipe is refilled once drained, and
/// with no pipe at all the body is read and written. The pipes go back to the pool at the end.
/// An error means the response is cut: the caller closes the connection.
pub async fn send_content(
    stream: &TcpStream,
    mut body: ContentBody,
    chunk: usize,
    metrics: &Metrics,
) -> io::Result<()> {
    let _session = Session::start(metrics);
    let chunk = chunk.max(4096);
    let len_at = |pos: u64| ((body.end - pos) as usize).min(chunk);
    let mut pipes: [Option<Arc<SplicePipe>>; 2] = [take_pipe(), None];
    let mut failovers_seen = body.reader.failovers();
    let mut cur = 0;
    let mut pos = body.start;
    let mut fetched = fetch(&mut body.reader, pos, len_at(pos), &mut pipes[cur], metrics).await;
    loop {
        let f = body.reader.failovers();
        if f > failovers_seen {
            metrics.failovers(f - failovers_seen);
            failovers_seen = f;
        }
        let (chunk_now, n) = checked(fetched, len_at(pos), pos, body.end)?;
        let next = pos + n as u64;
        // Counted before it goes out, so a client that has the whole body sees it counted.
        metrics.bytes(body.route, n as u64);
        let pipe = pipes[cur].clone();
        let out = deliver(stream, chunk_now, n, pipe.as_deref());
        let other = 1 - cur;
        if next < body.end && pipes[cur].is_some() && pipes[other].is_none() {
            pipes[other] = take_pipe();
        }
        let sent = if next >= body.end {
            fetched = Ok(Chunk::Piped(0));
            out.await
        } else if pipes[cur].is_none() || pipes[other].is_some() {
            let prefetch = fetch(
                &mut body.reader,
                next,
                len_at(next),
                &mut pipes[other],
                metrics,
            );
            let (sent, got) = tokio::join!(out, prefetch);
            fetched = got;
            cur = other;
            sent
        } else {
            // One pipe: it is refilled once drained.
            let sent = out.await;
            fetched = match sent {
                Ok(()) => {
                    fetch(
                        &mut body.reader,
                        next,
                        len_at(next),
                        &mut pipes[cur],
                        metrics,
                    )
                    .await
                }
                Err(_) => Ok(Chunk::Piped(0)),
            };
            sent
        };
        if sent.is_err() {
            // Part of a chunk may still be in its pipe: closed, not given back.
            pipes = [None, None];
        }
        sent?;
        pos = next;
        if pos >= body.end {
            return Ok(());
        }
    }
}

/// A pipe from the process's pool; the first refusal is said once, with what lifts it.
fn take_pipe() -> Option<Arc<SplicePipe>> {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let p = pipe_pool::take();
    if p.is_none() && !SAID.swap(true, Ordering::Relaxed) {
        let st = pipe_pool::stats();
        tracing::warn!(
            pipes = st.open,
            "no splice pipe to be had (max_splice_pipes reached, or the kernel refused one: \
             the user's fs.pipe-user-pages-soft budget is spent): bodies beyond these pipes \
             are copied through user space, slower. Raise the limit or fs.pipe-user-pages-soft \
             (sysctl), or run with CAP_SYS_RESOURCE"
        );
    }
    p.map(Arc::new)
}

/// One chunk from the replicas, into `pipe` if there is one (a failed splice drops it, and the
/// replica reader takes another from the pool or reads).
async fn fetch(
    reader: &mut ReplicaReader,
    pos: u64,
    len: usize,
    pipe: &mut Option<Arc<SplicePipe>>,
    metrics: &Metrics,
) -> storage_device_sim::Result<Chunk> {
    let started = Instant::now();
    let res = reader.send_at(pos, len, pipe).await;
    metrics.observe_read(started.elapsed());
    res
}

/// The chunk and how many of its bytes to send, or why the response must be cut.
fn checked(
    fetched: storage_device_sim::Result<Chunk>,
    len: usize,
    pos: u64,
    end: u64,
) -> io::Result<(Chunk, usize)> {
    match fetched {
        Ok(Chunk::Piped(n)) if n > 0 => Ok((Chunk::Piped(n), n.min(len))),
        Ok(Chunk::Bytes(b)) if !b.is_empty() => {
            let n = b.len().min(len);
            Ok((Chunk::Bytes(b), n))
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("content ended at byte {pos} before {end}"),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "read failed on every replica: response cut");
            Err(io::Error::other(e.to_string()))
        }
    }
}

/// Send `n` bytes of a chunk: drained from the pipe it was spliced into, or written.
async fn deliver(
    stream: &TcpStream,
    c: Chunk,
    n: usize,
    pipe: Option<&SplicePipe>,
) -> io::Result<()> {
    match (c, pipe) {
        (Chunk::Piped(_), Some(p)) => drain(stream, p, n).await,
        (Chunk::Piped(_), None) => Err(io::Error::other("spliced chunk without a pipe")),
        (Chunk::Bytes(b), _) => write_all(stream, &b[..n]).await,
    }
}

/// Move `n` bytes from the pipe into the socket, waiting for the socket to take them.
async fn drain(stream: &TcpStream, pipe: &SplicePipe, mut n: usize) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while n > 0 {
        writable(stream).await?;
        match stream.try_io(Interest::WRITABLE, || pipe.splice_to(fd, n)) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "pipe empty before the chunk was sent",
                ));
            }
            Ok(k) => n -= k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How long a socket may refuse to take any byte before the send gives up (a client that
/// stops reading must not hold its connection, pipes and buffers for ever), milliseconds.
static STALL_MS: AtomicU64 = AtomicU64::new(60_000);

/// Sets the send stall timeout for the process (from the configuration, at start).
pub fn set_stall_timeout(d: std::time::Duration) {
    STALL_MS.store(d.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// The send stall timeout in force.
pub fn stall_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(STALL_MS.load(Ordering::Relaxed))
}

/// Wait until the socket takes bytes, at most the stall timeout (then `TimedOut`).
pub async fn writable(stream: &TcpStream) -> io::Result<()> {
    // Usually the socket is writable already (its readiness is cached until a send returns
    // `WouldBlock`): then no timer is armed, which costs more than the wait.
    let mut ready = std::pin::pin!(stream.writable());
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(ready.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(r) = first {
        return r;
    }
    match tokio::time::timeout(stall_timeout(), ready).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took no bytes within the send timeout",
        )),
    }
}

/// `write_all` on a shared `&TcpStream`.
pub async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        writable(stream).await?;
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => buf = &buf[k..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
