//! Counters of one device, updated by the ring thread with relaxed atomics and read from any
//! thread as a [`StatsSnapshot`].
//!
//! Latency is measured per read from the call of `read`/`read_blocking` to the reply, so it
//! includes waiting for a pool buffer, queueing behind the queue depth, the simulated delays and
//! the I/O itself. It is kept as a histogram of log2 microsecond buckets: bucket 0 counts reads
//! under 1 µs, bucket `i ≥ 1` reads of `[2^(i-1), 2^i)` µs. Percentiles are reported as the
//! upper bound of the bucket that holds them (so they overestimate by at most 2×).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets up to 2^39 µs (about six days); longer reads land in the last one.
pub const BUCKETS: usize = 40;

#[derive(Debug)]
pub(crate) struct Stats {
    reads: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
    hist: [AtomicU64; BUCKETS],
    /// `io_uring_enter` calls and read SQEs submitted: proof the ring does the work.
    enters: AtomicU64,
    sqes: AtomicU64,
    buffer_waits: AtomicU64,
    /// Reads done from the page cache by the caller's thread, and attempts that missed.
    inline_reads: AtomicU64,
    inline_misses: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            reads: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            hist: std::array::from_fn(|_| AtomicU64::new(0)),
            enters: AtomicU64::new(0),
            sqes: AtomicU64::new(0),
            buffer_waits: AtomicU64::new(0),
            inline_reads: AtomicU64::new(0),
            inline_misses: AtomicU64::new(0),
        }
    }
}

fn bucket_of(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

impl Stats {
    pub(crate) fn record_ok(&self, bytes: usize, latency: Duration) {
        self.reads.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        self.hist[bucket_of(latency)].fetch_add(1, Relaxed);
    }

    pub(crate) fn record_err(&self, latency: Duration) {
        self.errors.fetch_add(1, Relaxed);
        self.hist[bucket_of(latency)].fetch_add(1, Relaxed);
    }

    pub(crate) fn enter(&self) {
        self.enters.fetch_add(1, Relaxed);
    }

    pub(crate) fn buffer_wait(&self) {
        self.buffer_waits.fetch_add(1, Relaxed);
    }

    pub(crate) fn sqe(&self) {
        self.sqes.fetch_add(1, Relaxed);
    }

    /// An inline attempt (see [`crate::inline`]): `enters` system calls, each with one SQE.
    pub(crate) fn inline(&self, hit: bool, enters: u32) {
        self.enters.fetch_add(u64::from(enters), Relaxed);
        self.sqes.fetch_add(u64::from(enters), Relaxed);
        if hit {
            self.inline_reads.fetch_add(1, Relaxed);
        } else {
            self.inline_misses.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn snapshot(
        &self,
        pool_size: usize,
        pool_free: usize,
        admission_waits: u64,
        fixed: bool,
    ) -> StatsSnapshot {
        let counts: Vec<u64> = self.hist.iter().map(|h| h.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let pct = |p: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = ((total as f64) * p).ceil().max(1.0) as u64;
            let mut acc = 0;
            for (i, c) in counts.iter().enumerate() {
                acc += c;
                if acc >= rank {
                    return bucket_upper_us(i);
                }
            }
            bucket_upper_us(BUCKETS - 1)
        };
        StatsSnapshot {
            reads: self.reads.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            latency_p50_us: pct(0.50),
            latency_p99_us: pct(0.99),
            latency_hist: counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| LatencyBucket {
                    lt_us: bucket_upper_us(i),
                    count: *c,
                })
                .collect(),
            pool_size,
            pool_free,
            pool_waits: self.buffer_waits.load(Relaxed),
            admission_waits,
            ring_enters: self.enters.load(Relaxed),
            ring_sqes: self.sqes.load(Relaxed),
            inline_reads: self.inline_reads.load(Relaxed),
            inline_misses: self.inline_misses.load(Relaxed),
            fixed_buffers: fixed,
        }
    }
}

/// Exclusive upper bound, in µs, of histogram bucket `i`.
fn bucket_upper_us(i: usize) -> u64 {
    1u64 << i
}

/// Counts one read as in flight (accepted by `read`, not yet answered) while alive.
pub(crate) struct InFlight(std::sync::Arc<Stats>);

impl InFlight {
    pub(crate) fn new(stats: &std::sync::Arc<Stats>) -> InFlight {
        stats.in_flight.fetch_add(1, Relaxed);
        InFlight(std::sync::Arc::clone(stats))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// One non-empty latency bucket: `count` reads took less than `lt_us` µs (and at least half
/// of it, except for the first bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencyBucket {
    pub lt_us: u64,
    pub count: u64,
}

/// A device's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Reads answered with data (an empty read at end of file counts).
    pub reads: u64,
    /// Bytes returned to callers.
    pub bytes: u64,
    /// Reads answered with an error (I/O error, injected fault, crash).
    pub errors: u64,
    /// Reads accepted and not yet answered (including those waiting for a pool buffer).
    pub in_flight: u64,
    /// Median and 99th-percentile latency: upper bound of the histogram bucket, µs (0: no reads).
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    /// Non-empty log2 µs buckets, ascending.
    pub latency_hist: Vec<LatencyBucket>,
    pub pool_size: usize,
    pub pool_free: usize,
    /// Reads that found the pool empty (every buffer held by callers' `Bytes`) and waited.
    pub pool_waits: u64,
    /// Reads that found the device full (`buffer_count` reads inside) and waited to enter.
    pub admission_waits: u64,
    /// `io_uring_enter` calls, and read SQEs submitted: by the ring thread and by callers'
    /// threads for page-cache reads (see `inline_reads`).
    pub ring_enters: u64,
    pub ring_sqes: u64,
    /// Reads served from the page cache in the caller's thread, through its own io_uring with
    /// `RWF_NOWAIT` (no hand-off to the ring thread), and such attempts that missed the cache
    /// (then done by the ring thread).
    pub inline_reads: u64,
    pub inline_misses: u64,
    /// Whether reads use registered buffers (`READ_FIXED`); false if registration failed.
    pub fixed_buffers: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_percentiles() {
        assert_eq!(bucket_of(Duration::from_nanos(500)), 0);
        assert_eq!(bucket_of(Duration::from_micros(1)), 1);
        assert_eq!(bucket_of(Duration::from_micros(3)), 2);
        assert_eq!(bucket_of(Duration::from_micros(4)), 3);
        assert_eq!(bucket_of(Duration::from_secs(1_000_000_000)), BUCKETS - 1);
        let s = Stats::default();
        for _ in 0..98 {
            s.record_ok(10, Duration::from_micros(100)); // bucket 7: [64, 128)
        }
        s.record_ok(10, Duration::from_millis(5)); // bucket 13: [4096, 8192)
        s.record_err(Duration::from_millis(5));
        let snap = s.snapshot(4, 4, 0, true);
        assert_eq!(snap.reads, 99);
        assert_eq!(snap.errors, 1);
        assert_eq!(snap.bytes, 990);
        assert_eq!(snap.latency_p50_us, 128);
        assert_eq!(snap.latency_p99_us, 8192);
        assert_eq!(
            snap.latency_hist,
            vec![
                LatencyBucket {
                    lt_us: 128,
                    count: 98
                },
                LatencyBucket {
                    lt_us: 8192,
                    count: 2
                }
            ]
        );
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["latency_p99_us"], 8192);
    }
}
