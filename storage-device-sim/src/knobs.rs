//! Simulation knobs of one device, settable at run time from any thread (tests, the admin
//! endpoint of `storage-node`): bandwidth cap, added latency, injected EIO ranges, stall, crash.
//!
//! The knobs are plain shared state (atomics, and a mutex for the EIO list); the ring thread
//! reads them as it moves each read along (see [`crate::ring`] for where each one acts). Every
//! setter wakes the ring thread, so a change takes effect at once even when the ring is idle
//! or waiting: `unstall` releases held reads, `crash` fails the queued and held ones.
//!
//! | knob | acts |
//! |---|---|
//! | bandwidth | token bucket (burst = one buffer) charged the bytes each read transfers; a read whose tokens are not there yet waits on the ring thread's timer heap before submission |
//! | latency | added after the real completion: the answer waits on the timer heap |
//! | EIO range | checked when a read is about to be submitted; an overlapping read is not issued and fails with [`StorageError::Injected`](crate::StorageError::Injected) (after the added latency, like a slow failing disk) |
//! | stall | completed reads are held, unanswered, until `unstall`, `crash` or `recover` |
//! | crash | every read fails with [`StorageError::Crashed`](crate::StorageError::Crashed): new ones at once, queued, delayed and held ones at once, ones in the kernel when they complete |
//!
//! `recover` clears crash, stall and the EIO ranges; bandwidth and latency are settings, not
//! faults, and stay.

use crate::ring::Notify;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One injected EIO range: reads of `path` (relative to the node's root; `None`: any file)
/// overlapping `[start, end)` fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EioRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub start: u64,
    pub end: u64,
}

/// All knobs at once, as the admin endpoint reads and sets them. Missing fields deserialize to
/// their defaults (no cap, no latency, healthy), so `{}` applied is a full reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KnobsState {
    /// Bytes per second, `None` for no cap.
    pub bandwidth: Option<u64>,
    /// Added latency per read, milliseconds (fractions allowed).
    pub latency_ms: f64,
    pub stalled: bool,
    pub crashed: bool,
    pub eio: Vec<EioRange>,
}

pub(crate) struct KnobsShared {
    /// 0: no cap.
    bandwidth: AtomicU64,
    latency_ns: AtomicU64,
    stalled: AtomicBool,
    crashed: AtomicBool,
    has_eio: AtomicBool,
    eio: Mutex<Vec<EioRange>>,
    notify: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KnobsShared {
    pub(crate) fn bandwidth(&self) -> Option<u64> {
        match self.bandwidth.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// No knob acts: reads may bypass the ring thread (see [`crate::inline`]).
    pub(crate) fn idle(&self) -> bool {
        self.bandwidth().is_none()
            && self.latency().is_zero()
            && !self.stalled()
            && !self.crashed()
            && !self.has_eio.load(Ordering::Acquire)
    }

    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(Ordering::Acquire)
    }

    /// The first byte of `[offset, offset+len)` of `rel` inside an injected range, if any.
    pub(crate) fn eio_hit(&self, rel: &str, offset: u64, len: u64) -> Option<u64> {
        if !self.has_eio.load(Ordering::Acquire) {
            return None;
        }
        let end = offset.saturating_add(len);
        lock(&self.eio)
            .iter()
            .filter(|r| {
                r.path
                    .as_deref()
                    .is_none_or(|p| crate::device::same_rel(p, rel))
            })
            .filter(|r| r.start < end && offset < r.end)
            .map(|r| r.start.max(offset))
            .min()
    }
}

/// The knobs of one device. Cheap to clone; all clones act on the same device.
#[derive(Clone)]
pub struct Knobs {
    pub(crate) shared: Arc<KnobsShared>,
}

impl std::fmt::Debug for Knobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state().fmt(f)
    }
}

impl Knobs {
    pub(crate) fn new(notify: Arc<Notify>) -> Knobs {
        Knobs {
            shared: Arc::new(KnobsShared {
                bandwidth: AtomicU64::new(0),
                latency_ns: AtomicU64::new(0),
                stalled: AtomicBool::new(false),
                crashed: AtomicBool::new(false),
                has_eio: AtomicBool::new(false),
                eio: Mutex::new(Vec::new()),
                notify,
            }),
        }
    }

    fn changed(&self) {
        self.shared.notify.wake();
    }

    /// Cap the device's read bandwidth (token bucket, burst = one buffer); `None` removes the
    /// cap. `Some(0)` is taken as 1 byte/s.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        let v = bytes_per_sec.map_or(0, |b| b.max(1));
        self.shared.bandwidth.store(v, Ordering::Relaxed);
        self.changed();
    }

    /// Add `added` to the completion time of every read (zero removes it).
    pub fn set_latency(&self, added: Duration) {
        let ns = u64::try_from(added.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_ns.store(ns, Ordering::Relaxed);
        self.changed();
    }

    /// Reads overlapping `range` of `rel` (or of any file, for `None`) fail with
    /// `StorageError::Injected`. Ranges accumulate until `recover`.
    pub fn inject_eio(&self, rel: Option<String>, range: Range<u64>) {
        let mut eio = lock(&self.shared.eio);
        eio.push(EioRange {
            path: rel,
            start: range.start,
            end: range.end,
        });
        self.shared.has_eio.store(true, Ordering::Release);
        drop(eio);
        self.changed();
    }

    /// Reads stop completing (they are held, unanswered) until `unstall`, `crash` or `recover`.
    pub fn stall(&self) {
        self.shared.stalled.store(true, Ordering::Release);
        self.changed();
    }

    pub fn unstall(&self) {
        self.shared.stalled.store(false, Ordering::Release);
        self.changed();
    }

    /// Every read, including stalled and in-flight ones, fails with `StorageError::Crashed`
    /// until `recover`.
    pub fn crash(&self) {
        self.shared.crashed.store(true, Ordering::Release);
        self.changed();
    }

    /// Clear crash, stall and injected EIO ranges (bandwidth and latency stay).
    pub fn recover(&self) {
        let mut eio = lock(&self.shared.eio);
        eio.clear();
        self.shared.has_eio.store(false, Ordering::Release);
        drop(eio);
        self.shared.crashed.store(false, Ordering::Release);
        self.shared.stalled.store(false, Ordering::Release);
        self.changed();
    }

    pub fn is_crashed(&self) -> bool {
        self.shared.crashed()
    }

    pub fn is_stalled(&self) -> bool {
        self.shared.stalled()
    }

    pub fn state(&self) -> KnobsState {
        KnobsState {
            bandwidth: self.shared.bandwidth(),
            latency_ms: self.shared.latency().as_secs_f64() * 1e3,
            stalled: self.shared.stalled(),
            crashed: self.shared.crashed(),
            eio: lock(&self.shared.eio).clone(),
        }
    }

    /// Set every knob to `s` (a full replacement, not a merge).
    pub fn apply(&self, s: &KnobsState) {
        let bw = s.bandwidth.map_or(0, |b| b.max(1));
        self.shared.bandwidth.store(bw, Ordering::Relaxed);
        let ms = if s.latency_ms.is_finite() && s.latency_ms > 0.0 {
            s.latency_ms
        } else {
            0.0
        };
        let ns = (ms * 1e6).min(u64::MAX as f64) as u64;
        self.shared.latency_ns.store(ns, Ordering::Relaxed);
        let mut eio = lock(&self.shared.eio);
        *eio = s.eio.clone();
        self.shared
            .has_eio
            .store(!eio.is_empty(), Ordering::Release);
        drop(eio);
        self.shared.stalled.store(s.stalled, Ordering::Release);
        self.shared.crashed.store(s.crashed, Ordering::Release);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_eio_matches() {
        let k = Knobs::new(Arc::new(Notify::new().unwrap()));
        assert_eq!(k.state(), KnobsState::default());
        k.set_bandwidth(Some(16 << 20));
        k.set_latency(Duration::from_micros(2500));
        k.inject_eio(Some("a/b.ts".into()), 100..200);
        k.inject_eio(None, 1000..1001);
        k.stall();
        let s = k.state();
        assert_eq!(s.bandwidth, Some(16 << 20));
        assert!((s.latency_ms - 2.5).abs() < 1e-9);
        assert!(s.stalled && !s.crashed);
        let json = serde_json::to_string(&s).unwrap();
        let back: KnobsState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);

        let sh = &k.shared;
        assert_eq!(sh.eio_hit("a/b.ts", 0, 100), None);
        assert_eq!(sh.eio_hit("a/b.ts", 0, 101), Some(100));
        assert_eq!(sh.eio_hit("./a//b.ts", 150, 10), Some(150));
        assert_eq!(sh.eio_hit("a/c.ts", 150, 10), None);
        assert_eq!(sh.eio_hit("a/c.ts", 990, 20), Some(1000));
        assert_eq!(sh.eio_hit("a/c.ts", 1001, 20), None);

        let k2 = Knobs::new(Arc::new(Notify::new().unwrap()));
        k2.apply(&back);
        assert_eq!(k2.state(), s);
        k2.crash();
        assert!(k2.is_crashed());
        k2.recover();
        let r = k2.state();
        assert!(!r.crashed && !r.stalled && r.eio.is_empty());
        assert_eq!(r.bandwidth, Some(16 << 20));
        let reset: KnobsState = serde_json::from_str("{}").unwrap();
        k2.apply(&reset);
        assert_eq!(k2.state(), KnobsState::default());
    }
}
