//! A pipe that a device's ring fills by `SPLICE` and the network side drains into a socket.
//!
//! This is the zero-copy alternative to a pool buffer ([`crate::pool`]): the ring thread
//! splices file pages into the pipe (page references, no copy; a cold page is read by
//! io_uring's worker, never by the caller's thread), applies the same knobs as to a read
//! (bandwidth, latency, EIO, stall, crash) while the bytes sit in the pipe, and answers with how
//! many bytes it put there. The caller then moves them to its socket with `splice(2)`, which on
//! loopback and on a real NIC passes the page references on: a content byte is never copied
//! through user memory. `benches/src/bin/sendpath.rs` measured this against copying through a
//! registered buffer, `sendfile(2)` and `SEND_ZC` (see the streamer's `send` module).
//!
//! A pipe is trusted only when its state is known: it is empty before every splice into it. A
//! splice that failed, or was abandoned (its future dropped on a deadline or a membership
//! change), may still put bytes in it later, since the ring holds a reference to the pipe
//! until the kernel is done with it. So after any failure the caller drops the pipe and takes
//! another ([`crate::pipe_pool::take`]); the ring's reference keeps the old fds open (and thus
//! never reused by another file) until its splice completes, and only the last holder's drop
//! decides, by the bytes left in it, whether the pipe goes back to the pool or is closed.

use crate::pipe_pool::Pool;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Page size: a pipe holds whole pages (one slot per page touched), so an unaligned range of
/// N bytes may need one slot more than N / 4096.
const PAGE: usize = 4096;

/// A pipe for splicing, with the capacity it actually got.
///
/// One taken from the process's pool ([`crate::pipe_pool::take`]) goes back to it when dropped
/// empty (every holder gone, so no splice into it is in flight); one dropped with bytes in
/// it is closed, since nobody knows what they are.
pub struct SplicePipe {
    ends: ManuallyDrop<Ends>,
    capacity: usize,
    /// The pool it goes back to when dropped empty.
    pool: Option<&'static Pool>,
}

/// The two ends of a pipe.
#[derive(Debug)]
pub(crate) struct Ends {
    pub(crate) r: OwnedFd,
    pub(crate) w: OwnedFd,
}

impl SplicePipe {
    /// A pipe that takes at least `want` bytes at any alignment if the system allows it
    /// (`F_SETPIPE_SZ`; an unprivileged process is limited by `/proc/sys/fs/pipe-max-size`,
    /// 1 MiB by default, and by `pipe-user-pages-soft` in all), else the largest it allows,
    /// else whatever it got: splice no more than [`capacity`](Self::capacity) at once.
    pub fn new(want: usize) -> io::Result<SplicePipe> {
        let mut fds = [0; 2];
        // SAFETY: two ints for pipe2 to fill; the result is checked.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fds this process owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let want = want.clamp(PAGE, 1 << 30);
        // With a page of slack first, then without (the limit is often exactly 1 MiB), then
        // the largest power of two the system allows below that, down to 64 KiB.
        let smaller = std::iter::successors(Some(want.next_power_of_two() / 2), |s| Some(s / 2))
            .take_while(|&s| s >= 64 << 10);
        let set = [want + PAGE, want]
            .into_iter()
            .chain(smaller)
            .find_map(|size| {
                // SAFETY: fcntl on our own pipe; failure is handled by asking its size.
                let r =
                    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
                (r > 0).then_some(r)
            });
        let set = set.unwrap_or(0);
        let size = if set > 0 {
            set as usize
        } else {
            // SAFETY: as above.
            let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if got <= 0 {
                return Err(io::Error::last_os_error());
            }
            got as usize
        };
        // One slot may hold a partial first page and another a partial last page.
        let capacity = size.saturating_sub(PAGE).max(PAGE);
        Ok(SplicePipe::from_ends(Ends { r, w }, capacity, None))
    }

    /// This pipe, given back to the pool when dropped empty.
    pub(crate) fn into_pooled(mut self, pool: &'static Pool) -> SplicePipe {
        self.pool = Some(pool);
        self
    }

    pub(crate) fn from_ends(
        ends: Ends,
        capacity: usize,
        pool: Option<&'static Pool>,
    ) -> SplicePipe {
        SplicePipe {
            ends: ManuallyDrop::new(ends),
            capacity,
            pool,
        }
    }

    /// Bytes waiting in the pipe (`FIONREAD`), or `None` if the kernel will not say.
    pub fn waiting(&self) -> Option<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to a live local.
        let r = unsafe { libc::ioctl(self.ends.r.as_raw_fd(), libc::FIONREAD, &mut n) };
        (r == 0 && n >= 0).then_some(n as usize)
    }

    /// Bytes one splice may put in the (empty) pipe, whatever their alignment in the file.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The read end (non-blocking): drain it into a socket.
    pub fn read_fd(&self) -> RawFd {
        self.ends.r.as_raw_fd()
    }

    /// The write end (non-blocking): the ring splices into it.
    pub fn write_fd(&self) -> RawFd {
        self.ends.w.as_raw_fd()
    }

    /// Move up to `len` bytes from the pipe to `out` (a socket) without blocking:
    /// `splice(2)` with `SPLICE_F_NONBLOCK`. `WouldBlock` when the socket is full.
    pub fn splice_to(&self, out: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: valid fds; null offsets (a pipe and a socket have none).
        let n = unsafe {
            libc::splice(
                self.ends.r.as_raw_fd(),
                std::ptr::null_mut(),
                out,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl std::fmt::Debug for SplicePipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplicePipe")
            .field("read_fd", &self.read_fd())
            .field("capacity", &self.capacity)
            .field("pooled", &self.pool.is_some())
            .finish()
    }
}

impl Drop for SplicePipe {
    fn drop(&mut self) {
        let empty = self.pool.is_some() && self.waiting() == Some(0);
        // SAFETY: taken once, here, and never used again.
        let ends = unsafe { ManuallyDrop::take(&mut self.ends) };
        if let Some(pool) = self.pool {
            pool.give_back(ends, self.capacity, empty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_at_least_a_page_and_splice_moves_bytes() {
        let p = SplicePipe::new(1 << 20).unwrap();
        assert!(p.capacity() >= 4096);
        let out = SplicePipe::new(4096).unwrap();
        // Empty pipe: nothing to move, no blocking.
        let e = p.splice_to(out.write_fd(), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // SAFETY: writes 5 bytes from a live array to our pipe.
        let n = unsafe { libc::write(p.write_fd(), b"hello".as_ptr().cast(), 5) };
        assert_eq!(n, 5);
        assert_eq!(p.splice_to(out.write_fd(), 10).unwrap(), 5);
        let mut buf = [0u8; 8];
        // SAFETY: reads into a live array.
        let n = unsafe { libc::read(out.read_fd(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(&buf[..n as usize], b"hello");
    }
}
