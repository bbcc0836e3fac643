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
//! # The rings
//!
//! One ring per thread that reads (created on the first read, closed when the thread exits):
//! the streamer's runtime workers, mostly. It has two entries and plain `READ` (no registered
//! buffers: a page-cache copy gains nothing from them, and every device's pool would have to be
//! registered with every thread's ring). `SINGLE_ISSUER` holds: only its own thread uses it.

use io_uring::{IoUring, opcode, types};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;

thread_local! {
    /// This thread's ring; `Err` once it could not be made (or failed), so the thread stops
    /// trying and every read goes to the node's ring thread.
    static RING: RefCell<Option<io::Result<IoUring>>> = const { RefCell::new(None) };
}

/// What an inline attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// `n` bytes read (fewer than asked only at end of file), in `enters` system calls.
    Read { n: u32, enters: u32 },
    /// Not (all) in the page cache, or an error: ask the ring thread; the buffer's content is
    /// unspecified.
    Miss { enters: u32 },
    /// No usable ring in this thread; nothing was submitted.
    NoRing,
}

fn make_ring() -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(2)
        .or_else(|_| IoUring::new(2))
}

/// Read `len` bytes at `offset` of `fd` into `buf` if they are all in the page cache.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes, and not be read or written by anyone else
/// until this returns (the kernel writes it during the call, never after: every SQE submitted
/// here is reaped before returning, or the thread's ring is leaked with it).
pub(crate) unsafe fn read_cached(fd: RawFd, offset: u64, buf: *mut u8, len: u32) -> Attempt {
    RING.with(|cell| {
        let mut cell = cell.borrow_mut();
        let ring = match cell.get_or_insert_with(make_ring) {
            Ok(r) => r,
            Err(_) => return Attempt::NoRing,
        };
        let mut done = 0u32;
        let mut enters = 0u32;
        while done < len {
            // SAFETY: done < len, so the pointer stays inside the caller's buffer.
            let ptr = unsafe { buf.add(done as usize) };
            let e = opcode::Read::new(types::Fd(fd), ptr, len - done)
                .offset(offset + u64::from(done))
                .rw_flags(libc::RWF_NOWAIT)
                .build();
            // SAFETY: the buffer is valid for the rest of the read (caller's contract) and the
            // CQE is reaped below before we return.
            if unsafe { ring.submission().push(&e) }.is_err() {
                // The ring holds nothing between calls, so its queue cannot be full.
                return Attempt::Miss { enters };
            }
            let res = loop {
                enters += 1;
                match ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                        ) => {}
                    Err(_) => {
                        // The SQE may be in the kernel with nobody to reap it: give up on this
                        // thread's ring for good, leaking it (never closed, never reused) so a
                        // late completion cannot meet a buffer that went back to its pool.
                        if let Some(Ok(r)) = cell.take() {
                            std::mem::forget(r);
                        }
                        *cell = Some(Err(io::Error::other("inline ring failed")));
                        return Attempt::NoRing;
                    }
                }
                if let Some(c) = ring.completion().next() {
                    break c.result();
                }
            };
            match res {
                n if n > 0 => done += n as u32,
                0 => break, // end of file
                _ => return Attempt::Miss { enters },
            }
        }
        Attempt::Read { n: done, enters }
    })
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
