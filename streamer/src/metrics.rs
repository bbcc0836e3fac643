//! Counters behind `/metrics` (Prometheus text format 0.0.4): requests and bytes by route and
//! status, active sessions (HTTP bodies being sent, RTSP sessions), read latency, failovers; node health is read
//! from membership when the page is rendered.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Read latency bucket bounds, seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// One counter family of refusals by reason, in Prometheus text.
fn refusals(s: &mut String, name: &str, help: &str, m: &Mutex<BTreeMap<&'static str, u64>>) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} counter");
    if let Ok(m) = m.lock() {
        for (reason, n) in m.iter() {
            let _ = writeln!(s, "{name}{{reason=\"{reason}\"}} {n}");
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    bytes: Mutex<BTreeMap<&'static str, u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    rtsp_refused: Mutex<BTreeMap<&'static str, u64>>,
    active: AtomicU64,
    rtsp_sessions: AtomicU64,
    failovers: AtomicU64,
    read_buckets: [AtomicU64; BUCKETS.len()],
    read_count: AtomicU64,
    read_sum_ns: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
    }

    pub fn bytes(&self, route: &'static str, n: u64) {
        if let Ok(mut m) = self.bytes.lock() {
            *m.entry(route).or_default() += n;
        }
    }

    pub fn refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// An RTSP request refused before any work (bad framing, limits, a path that leaves the
    /// store, an unknown method), by reason.
    pub fn rtsp_refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.rtsp_refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    pub fn session_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// An RTSP session's player started (or, with `false`, ended).
    pub fn rtsp_session(&self, started: bool) {
        if started {
            self.rtsp_sessions.fetch_add(1, Ordering::Relaxed);
        } else {
            self.rtsp_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    pub fn failovers(&self, n: u64) {
        self.failovers.fetch_add(n, Ordering::Relaxed);
    }

    pub fn observe_read(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.read_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.read_count.fetch_add(1, Ordering::Relaxed);
        self.read_sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The page; `nodes` is (node, host, up).
    pub fn render(&self, nodes: &[(String, String, bool)]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP sluice_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(s, "# TYPE sluice_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "sluice_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP sluice_http_response_bytes_total Body bytes sent by route."
        );
        let _ = writeln!(s, "# TYPE sluice_http_response_bytes_total counter");
        if let Ok(m) = self.bytes.lock() {
            for (route, n) in m.iter() {
                let _ = writeln!(
                    s,
                    "sluice_http_response_bytes_total{{route=\"{route}\"}} {n}"
                );
            }
        }
        refusals(
            &mut s,
            "sluice_http_refused_total",
            "Requests refused before any work, by reason.",
            &self.refused,
        );
        refusals(
            &mut s,
            "sluice_rtsp_refused_total",
            "RTSP requests refused before any work, by reason.",
            &self.rtsp_refused,
        );
        let _ = writeln!(
            s,
            "# HELP sluice_active_sessions Response bodies being sent."
        );
        let _ = writeln!(s, "# TYPE sluice_active_sessions gauge");
        let _ = writeln!(s, "sluice_active_sessions {}", self.active());
        let pipes = storage_device_sim::pipe_pool::stats();
        let _ = writeln!(
            s,
            "# HELP sluice_splice_pipes Splice pipes of the process's pool, by state."
        );
        let _ = writeln!(s, "# TYPE sluice_splice_pipes gauge");
        let _ = writeln!(s, "sluice_splice_pipes{{state=\"idle\"}} {}", pipes.idle);
        let _ = writeln!(
            s,
            "sluice_splice_pipes{{state=\"busy\"}} {}",
            pipes.open - pipes.idle
        );
        let _ = writeln!(
            s,
            "# HELP sluice_splice_pipe_bytes Bytes one step may splice into a pooled pipe."
        );
        let _ = writeln!(s, "# TYPE sluice_splice_pipe_bytes gauge");
        let _ = writeln!(s, "sluice_splice_pipe_bytes {}", pipes.capacity);
        let _ = writeln!(
            s,
            "# HELP sluice_splice_pipe_refusals_total Splice pipes asked for and not given: the kernel's budget or --max-splice-pipes spent (the body is copied)."
        );
        let _ = writeln!(s, "# TYPE sluice_splice_pipe_refusals_total counter");
        let _ = writeln!(s, "sluice_splice_pipe_refusals_total {}", pipes.refusals);
        let _ = writeln!(
            s,
            "# HELP sluice_rtsp_sessions RTSP sessions set up and not ended."
        );
        let _ = writeln!(s, "# TYPE sluice_rtsp_sessions gauge");
        let _ = writeln!(
            s,
            "sluice_rtsp_sessions {}",
            self.rtsp_sessions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP sluice_node_up Storage node health from heartbeats (1 up, 0 down)."
        );
        let _ = writeln!(s, "# TYPE sluice_node_up gauge");
        for (node, host, up) in nodes {
            let _ = writeln!(
                s,
                "sluice_node_up{{node=\"{node}\",host=\"{host}\"}} {}",
                u8::from(*up)
            );
        }
        let _ = writeln!(
            s,
            "# HELP sluice_replica_failovers_total Reads that moved to another replica."
        );
        let _ = writeln!(s, "# TYPE sluice_replica_failovers_total counter");
        let _ = writeln!(
            s,
            "sluice_replica_failovers_total {}",
            self.failovers.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP sluice_read_seconds Latency of one storage read through the replica reader."
        );
        let _ = writeln!(s, "# TYPE sluice_read_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "sluice_read_seconds_bucket{{le=\"{b}\"}} {}",
                self.read_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.read_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "sluice_read_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "sluice_read_seconds_sum {}",
            self.read_sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(s, "sluice_read_seconds_count {count}");
        s
    }
}
