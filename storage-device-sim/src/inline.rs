//! Page-cache reads done by the calling thread, through a small io_uring of its own, with
//! `RWF_NOWAIT` so that they can never block.
//!
//! # Why
//!
//! A read handed to the node's ring thread ([`crate::ring`]) costs two cross-thread wake-ups
//! (the request, then the answer). When the bytes are in the page cache the read itself is a
//! memory copy (≈1 µs for 4 KiB, ≈100 µs for 1 MiB here), so the hand-off is most of the cost
//! of a small read, and a single ring thread is the only CPU copying however many event-loop
//! threads ask. Measured with `benches/src/bin/ring.rs` before this path existed: 4 KiB reads
//! one at a time at 0.09× the rate of `pread`, 1 MiB reads at depth 32 at 0.51× (32 threads of
//! `pread` copy on both cores; the ring thread on one).
//!
//! So a read first tries the page cache from the caller's thread: one `READ` SQE with
//! `RWF_NOWAIT` on this thread's ring, submitted and reaped in the same `io_uring_enter`.
//! `RWF_NOWAIT` makes the kernel answer `EAGAIN` instead of waiting for the disk (or punting
//! the read to an io_uring worker), so the caller's event loop never blocks on a cold page:
//! the one property the ring thread existed for. A miss (`EAGAIN`, a short read that is not at
//! end of file, any error) costs one system call, and the read then goes to the node's ring
//! thread as before, which also produces the error if there is one.
//!
//! The device takes this path only when it can make no difference to what the caller sees:
//! no `O_DIRECT` (never in the page cache), and no knob active (bandwidth, latency, stall,
//! crash and EIO ranges all act in the ring thread). A knob set while an inline read runs
//! finds it as it would find a read already in the kernel: it completes. A device whose inline
//! attempts keep missing stops trying for a while (see `Device`'s backoff).
//!
//! # Splices
//!
//! io_uring has no non-blocking attempt for `SPLICE`: it hands every one to an io_uring worker
//! (the opcode is always issued asynchronously), which would wait for the disk if a page is
//! cold. So a splice into a caller's pipe (`splice_cached`) first asks `cachestat(2)` whether
//! every page of the range is in the page cache and, only if so, moves the page references
//! into the pipe with `splice(2)` in this thread: no copy, no disk, a few microseconds.
//!
//! Why not `SPLICE` on this thread's ring, as reads do: that is the same `splice` run by an
//! io_uring worker thread, plus waking the worker and being woken by it. perf on the streamer
//! under `httpload` (8 connections, page-cache hits) put 23% of its CPU in that hand-off
//! (`io_wq_worker`, `io_uring_enter` waiting) at 4 KiB ranges and 14–20% at 1 MiB ranges,
//! against 3% for the splice itself; with one event-loop thread, 1 MiB ranges went from 0.221
//! to 0.166 CPU-seconds per GiB without it (`benches/src/bin/http_vs_nginx.rs`). A range that
//! is not all cached, or any knob, still goes to the node's ring thread (`SPLICE` in its
//! ring), so the disk is only ever read through io_uring. The one way this can still wait for
//! the disk is a page evicted between the two calls (microseconds apart): one read's latency,
//! once.
//!
//! # The rings
//!
//! One ring per thread that reads (created on the first read, closed when the thread exits):
//! the streamer's runtime workers, mostly. It has two entries and plain `READ` (no registered
//! buffers: a page-cache copy gains nothing from them, and every device's pool would have to be
//! registered with every thread's ring). `SINGLE_ISSUER` holds: only its own thread uses it.

use io_uring::{IoUring, opcode, squeue, types};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// This thread's ring. (One per thread, in place: the size of the largest variant costs
/// nothing.)
#[allow(clippy::large_enum_variant)]
enum Local {
    Unset,
    Ready(IoUring),
    /// Could not be made (out of descriptors, io_uring disabled): try again after
    /// [`RETRY_AFTER`]; meanwhile every request goes to the node's ring thread.
    Failed(Instant),
    /// Failed with a request maybe still in the kernel: leaked, never used again.
    Broken,
}

const RETRY_AFTER: Duration = Duration::from_secs(1);

thread_local! {
    static RING: RefCell<Local> = const { RefCell::new(Local::Unset) };
}

/// What an inline attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// `n` bytes read (fewer than asked only at end of file), in `enters` system calls.
    Read { n: u32, enters: u32 },
    /// Not (all) in the page cache, or an error: ask the ring thread; the buffer's content is
    /// unspecified, the pipe is still empty.
    Miss { enters: u32 },
    /// No usable ring in this thread; nothing was submitted.
    NoRing,
    /// This thread's ring failed while the request may still be in the kernel: the buffer or
    /// pipe may still be written. Never reuse the buffer (leak it); throw the pipe away.
    Lost,
}

fn make_ring() -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(2)
        .or_else(|_| IoUring::new(2))
}

/// Why [`run_one`] has no result.
enum NoResult {
    /// Nothing was submitted.
    NoRing,
    /// Submitted, and the ring failed before its completion: see [`Attempt::Lost`].
    Lost,
}

/// Submit one SQE on this thread's ring and wait for its completion.
///
/// # Safety
/// Every buffer or fd the entry names must stay valid until this returns, and after
/// `Err(NoResult::Lost)` for as long as the process lives (buffers: leak them).
unsafe fn run_one(e: &squeue::Entry) -> Result<i32, NoResult> {
    RING.with(|cell| {
        let mut local = cell.borrow_mut();
        let retry = match &*local {
            Local::Unset => true,
            Local::Failed(at) => at.elapsed() >= RETRY_AFTER,
            Local::Ready(_) | Local::Broken => false,
        };
        if retry {
            *local = match make_ring() {
                Ok(r) => Local::Ready(r),
                Err(_) => Local::Failed(Instant::now()),
            };
        }
        let Local::Ready(ring) = &mut *local else {
            return Err(NoResult::NoRing);
        };
        // SAFETY: the caller keeps what the entry names alive until we return.
        if unsafe { ring.submission().push(e) }.is_err() {
            // The ring holds nothing between calls, so its queue cannot be full.
            return Err(NoResult::NoRing);
        }
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(_) => {
                    // The SQE may be in the kernel with nobody to reap it: leak the ring
                    // (never closed, never reused); the caller leaks what the SQE names.
                    if let Local::Ready(r) = std::mem::replace(&mut *local, Local::Broken) {
                        std::mem::forget(r);
                    }
                    return Err(NoResult::Lost);
                }
            }
            if let Some(c) = ring.completion().next() {
                return Ok(c.result());
            }
        }
    })
}

/// Read `len` bytes at `offset` of `fd` into `buf` if they are all in the page cache.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes, and not be read or written by anyone else
/// until this returns (the kernel writes it during the call, never after), or ever again after
/// [`Attempt::Lost`].
pub(crate) unsafe fn read_cached(fd: RawFd, offset: u64, buf: *mut u8, len: u32) -> Attempt {
    let mut done = 0u32;
    let mut enters = 0u32;
    while done < len {
        // SAFETY: done < len, so the pointer stays inside the caller's buffer.
        let ptr = unsafe { buf.add(done as usize) };
        let e = opcode::Read::new(types::Fd(fd), ptr, len - done)
            .offset(offset + u64::from(done))
            .rw_flags(libc::RWF_NOWAIT)
            .build();
        enters += 1;
        // SAFETY: the buffer is valid for the rest of the read (caller's contract).
        match unsafe { run_one(&e) } {
            Err(NoResult::Lost) => return Attempt::Lost,
            Err(NoResult::NoRing) if done == 0 => return Attempt::NoRing,
            Err(NoResult::NoRing) => return Attempt::Miss { enters },
            Ok(n) if n > 0 => done += n as u32,
            Ok(0) => break, // end of file
            Ok(_) => return Attempt::Miss { enters },
        }
    }
    Attempt::Read { n: done, enters }
}

/// `cachestat(2)` (Linux ≥ 6.5; the same number on every architecture, as all new calls).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Set once `cachestat` is found missing (an older kernel): splices then always go to the ring.
static NO_CACHESTAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether every page of `[offset, end)` of `fd` is in the page cache.
fn all_cached(fd: RawFd, offset: u64, end: u64) -> bool {
    use std::sync::atomic::Ordering;
    const PAGE: u64 = 4096;
    if end <= offset || NO_CACHESTAT.load(Ordering::Relaxed) {
        return false;
    }
    let first = offset / PAGE;
    let pages = end.div_ceil(PAGE) - first;
    let range = CachestatRange {
        off: first * PAGE,
        len: pages * PAGE,
    };
    let mut cs = Cachestat::default();
    // SAFETY: both structs live for the call and have the kernel's layout; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &raw const range,
            &raw mut cs,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return false;
    }
    cs.nr_cache >= pages
}

/// Splice `len` bytes at `offset` of `fd` (a file of `file_len` bytes) into the pipe whose
/// write end is `pipe_w` if they are all in the page cache, with `splice(2)` in this thread
/// (see the module doc). The pipe must be empty and take `len` bytes. `Read { n, enters }`:
/// the pipe holds the `n` bytes (fewer than asked only at end of file), after `enters` calls;
/// `Miss`: it holds nothing, ask the ring thread.
pub(crate) fn splice_cached(
    fd: RawFd,
    file_len: u64,
    offset: u64,
    len: u32,
    pipe_w: RawFd,
) -> Attempt {
    let end = offset.saturating_add(u64::from(len)).min(file_len);
    if end <= offset {
        return Attempt::Read { n: 0, enters: 0 };
    }
    if !all_cached(fd, offset, end) {
        return Attempt::Miss { enters: 0 };
    }
    let want = (end - offset) as u32;
    let mut done = 0u32;
    let mut calls = 0u32;
    while done < want {
        let mut off = (offset + u64::from(done)) as libc::loff_t;
        calls += 1;
        // SAFETY: plain fds the caller keeps open for the call, and a live offset.
        let r = unsafe {
            libc::splice(
                fd,
                &raw mut off,
                pipe_w,
                std::ptr::null_mut(),
                (want - done) as usize,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match r {
            n if n > 0 => done += n as u32,
            0 => break, // end of file (the file shrank)
            // A full pipe after a short splice: the bytes in it are good, the caller asks for
            // the rest next time. Nothing spliced and an error: the ring thread says why.
            _ if done > 0 => break,
            _ => return Attempt::Miss { enters: calls },
        }
    }
    Attempt::Read {
        n: done,
        enters: calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn cached_bytes_are_read_and_end_of_file_is_short() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/device-sim-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inline-cached.bin");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 8192];
        // SAFETY: buf is ours, 8192 bytes.
        let a = unsafe { read_cached(f.as_raw_fd(), 1000, buf.as_mut_ptr(), 8192) };
        assert!(matches!(a, Attempt::Read { n: 8192, .. }), "{a:?}");
        assert_eq!(&buf[..], &data[1000..9192]);
        // SAFETY: as above.
        let a = unsafe { read_cached(f.as_raw_fd(), 15_000, buf.as_mut_ptr(), 8192) };
        assert!(matches!(a, Attempt::Read { n: 5000, .. }), "{a:?}");
        assert_eq!(&buf[..5000], &data[15_000..]);
        // SAFETY: as above.
        let a = unsafe { read_cached(f.as_raw_fd(), 30_000, buf.as_mut_ptr(), 8192) };
        assert!(matches!(a, Attempt::Read { n: 0, .. }), "{a:?}");
    }

    #[test]
    fn a_bad_descriptor_is_a_miss_not_a_panic() {
        let mut buf = vec![0u8; 4096];
        // SAFETY: buf is ours.
        let a = unsafe { read_cached(-1, 0, buf.as_mut_ptr(), 4096) };
        assert!(matches!(a, Attempt::Miss { .. }), "{a:?}");
    }
}
