//! The process's splice pipes: shared by every connection, within the budget the kernel grants.
//!
//! # Why a pool
//!
//! The kernel counts pipe slots (one per page) per user. A process without `CAP_SYS_RESOURCE`
//! may hold `fs.pipe-user-pages-soft` of them in all (16384 by default); beyond that a new
//! pipe gets 2 slots and `F_SETPIPE_SZ` fails. Before this pool every HTTP connection made two
//! 1 MiB pipes and kept them: a streamer run as an ordinary user gave its 33rd and later
//! connections 8 KiB pipes, and at 64 connections served 4 MiB files at 1.54 GiB/s and
//! 0.78 CPU-s/GiB against nginx's 3.80 GiB/s and 0.31 (2026-12-03). The benchmark ran as root
//! and never saw it.
//!
//! So a pipe is taken for the steps of one body and given back when it is dropped empty
//! (every holder gone, so no splice into it is in flight); idle pipes wait here for the next
//! body, whichever connection sends it. A pipe dropped with bytes in it is closed: nobody
//! knows what they are. When the kernel will not give a useful pipe (smaller than
//! [`MIN_USEFUL`]), or the operator's limit is reached, [`take`] says `None` and the caller
//! sends without one (a read and a write: a copy) or keeps to the one it has; the kernel is
//! asked again once a pooled pipe has been closed, or after [`RETRY`].
//!
//! # Why 64 KiB
//!
//! A pipe's capacity bounds a step of the streamer's send: one splice in, one splice out.
//! Measured on loopback (kernel 6.18.44, 2026-12-03; four streamers side by side with pipes of
//! 64 KiB, 128 KiB, 256 KiB and 1 MiB, alternating `httpload` slices with nginx), the small
//! pipes won where the bytes are many: 4 MiB files at 64 connections 5.17–5.54 GiB/s and
//! 0.233–0.242 CPU-s/GiB with 64 KiB pipes against 4.06 and 0.305 with 1 MiB ones, with
//! 17,800 TCP data segments per GiB against 23,300. A 60 KiB step (15 pages, what fits with a
//! slot kept for an unaligned start) leaves as one segment; a larger step queues more than the
//! socket sends at once, and (our reading of the counts, not traced in the kernel) is cut at
//! window and pacing edges into smaller ones.
//! (Draining a 1 MiB pipe in 64 KiB pieces was worse still: 64 KiB is 53 bytes over the
//! loopback MSS, so every piece left a 53-byte segment.) `sendfile(2)` moves a file through a
//! 16-page pipe too. 128 KiB pipes did as well on 1 MiB ranges and worse on 4 MiB files. A
//! 64 KiB pipe is also what the kernel makes by default (no `F_SETPIPE_SZ`), and a user's
//! budget holds 1024 of them.

use crate::pipe::{Ends, SplicePipe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The pipe size asked of the kernel (see the module doc).
pub const PIPE_SIZE: usize = 64 << 10;

/// A pipe smaller than this is not worth a step of its own: the kernel's budget is spent (a
/// pipe made beyond it has 2 slots).
pub const MIN_USEFUL: usize = 32 << 10;

/// Idle pipes kept at most (each holds its slots of the user's budget while idle).
const MAX_IDLE: usize = 1024;

/// How long a refusal stands when no pooled pipe has been closed since.
pub const RETRY: Duration = Duration::from_secs(1);

/// A pool of pipes of one size. The process has one ([`take`]); tests make their own.
pub struct Pool {
    state: Mutex<State>,
    size: usize,
    /// Pipes open at most (0: as many as the kernel gives).
    max_open: AtomicUsize,
    refusals: AtomicU64,
}

struct State {
    idle: Vec<(Ends, usize)>,
    /// Pooled pipes open (idle or taken).
    open: usize,
    /// When the kernel last refused a useful pipe, and how many were open then.
    refused: Option<(Instant, usize)>,
    /// The capacity of the last pipe made.
    capacity: usize,
}

static POOL: Pool = Pool::new(PIPE_SIZE);

/// A pipe from the process's pool, or a new one; `None` when the kernel's pipe budget or the
/// operator's limit ([`set_max_open`]) is spent.
pub fn take() -> Option<SplicePipe> {
    POOL.take()
}

/// Limits the process's pipes to `n` open at once (0: as many as the kernel gives).
pub fn set_max_open(n: usize) {
    POOL.max_open.store(n, Ordering::Relaxed);
}

/// The process's pool now.
pub fn stats() -> PoolStats {
    POOL.stats()
}

impl Pool {
    /// An empty pool of pipes of `size` bytes.
    pub const fn new(size: usize) -> Pool {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                refused: None,
                capacity: 0,
            }),
            size,
            max_open: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle pipe, or a new one; `None` when the kernel or the limit refuses.
    pub fn take(&'static self) -> Option<SplicePipe> {
        let p = self.take_or_make();
        if p.is_none() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    fn take_or_make(&'static self) -> Option<SplicePipe> {
        {
            let mut st = self.state();
            if let Some((ends, cap)) = st.idle.pop() {
                return Some(SplicePipe::from_ends(ends, cap, Some(self)));
            }
            let max = self.max_open.load(Ordering::Relaxed);
            if max > 0 && st.open >= max {
                return None;
            }
            if let Some((at, open)) = st.refused
                && st.open >= open
                && at.elapsed() < RETRY
            {
                return None;
            }
            st.open += 1;
        }
        // Made outside the lock: a few system calls.
        let made = SplicePipe::new(self.size - 4096)
            .ok()
            .filter(|p| p.capacity() >= MIN_USEFUL);
        let mut st = self.state();
        match made {
            Some(p) => {
                st.capacity = p.capacity();
                st.refused = None;
                Some(p.into_pooled(self))
            }
            None => {
                st.open -= 1;
                st.refused = Some((Instant::now(), st.open));
                None
            }
        }
    }

    /// A pooled pipe dropped: kept for the next body if it is empty, else closed.
    pub(crate) fn give_back(&self, ends: Ends, capacity: usize, empty: bool) {
        let mut st = self.state();
        let max = self.max_open.load(Ordering::Relaxed);
        if empty && st.idle.len() < MAX_IDLE && (max == 0 || st.open <= max) {
            st.idle.push((ends, capacity));
            return;
        }
        st.open -= 1;
        drop(st);
        drop(ends);
    }

    /// What the pool holds.
    pub fn stats(&self) -> PoolStats {
        let st = self.state();
        PoolStats {
            open: st.open,
            idle: st.idle.len(),
            capacity: st.capacity,
            refusals: self.refusals.load(Ordering::Relaxed),
        }
    }
}

/// What a pool holds, for metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pipes open: idle in the pool or taken.
    pub open: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Bytes a step may splice into the last pipe made (0 before the first).
    pub capacity: usize,
    /// Times a pipe was asked for and none given (the kernel's budget or the limit spent).
    pub refusals: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool::new(PIPE_SIZE)))
    }

    #[test]
    fn an_empty_pipe_comes_back_and_is_taken_again() {
        let pool = pool();
        let p = pool.take().expect("a pipe");
        assert!(p.capacity() >= MIN_USEFUL);
        let fd = p.read_fd();
        assert_eq!(pool.stats().open, 1);
        drop(p);
        assert_eq!(pool.stats().idle, 1);
        let again = pool.take().expect("the idle pipe");
        assert_eq!(again.read_fd(), fd, "the idle pipe, not a new one");
        assert_eq!((pool.stats().open, pool.stats().idle), (1, 0));
    }

    #[test]
    fn a_pipe_with_bytes_in_it_is_closed_not_pooled() {
        let pool = pool();
        let p = pool.take().expect("a pipe");
        // SAFETY: writes 3 bytes from a live array to our pipe.
        assert_eq!(
            unsafe { libc::write(p.write_fd(), b"abc".as_ptr().cast(), 3) },
            3
        );
        assert_eq!(p.waiting(), Some(3));
        drop(p);
        assert_eq!((pool.stats().open, pool.stats().idle), (0, 0));
    }

    #[test]
    fn the_limit_refuses_a_new_pipe_and_a_given_back_one_is_reused() {
        let pool = pool();
        pool.max_open.store(1, Ordering::Relaxed);
        let a = pool.take().expect("the first pipe");
        assert!(pool.take().is_none(), "over the limit");
        drop(a);
        let b = pool.take().expect("the first pipe again");
        assert!(b.read_fd().as_raw_fd() > 0);
        assert!(pool.take().is_none());
        assert_eq!(pool.stats().refusals, 2);
    }
}
