//! Limits that keep one client (or many) from exhausting the server: how long a request head
//! may take and how long a connection may sit idle (slow-loris), and how many connections and
//! sessions there may be overall and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Timeouts and counts, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request head (first byte to blank line, or connect to blank line for the first
    /// request) that takes longer than this closes the connection (HTTP: 408 first).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed (RTSP: only while it
    /// carries no session; sessions are governed by the session timeout).
    pub idle_timeout: Duration,
    /// Concurrent connections (HTTP or RTSP, each side counted on its own), overall.
    pub max_connections: usize,
    /// Concurrent connections from one client address.
    pub max_connections_per_client: usize,
    /// RTSP sessions overall.
    pub max_sessions: usize,
    /// RTSP sessions from one client address.
    pub max_sessions_per_client: usize,
    /// What a refused HTTP connection is told in `Retry-After`, seconds.
    pub retry_after_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: 1000,
            max_sessions: 10_000,
            max_sessions_per_client: 100,
            retry_after_secs: 5,
        }
    }
}

/// Descriptors kept out of the connection budget: listeners, the runtime's epoll and
/// eventfds, each node's ring, eventfd and open content files, the RTP/RTCP sockets, and the
/// socket a refused client holds while it is told why.
pub const FD_RESERVE: u64 = 96;
/// Descriptors one HTTP connection may hold: its socket and two splice pipes (see `send`).
pub const FDS_PER_HTTP_CONNECTION: u64 = 5;
/// Descriptors one RTSP connection holds: its socket (sessions share the RTP/RTCP sockets).
pub const FDS_PER_RTSP_CONNECTION: u64 = 1;

impl Limits {
    /// Lower the connection limits so that a full house of HTTP and RTSP connections fits in
    /// `open_files` descriptors with [`FD_RESERVE`] to spare. Without this, a flood of idle
    /// connections takes the last descriptors and the next content file or pipe cannot be
    /// opened: a client that was already answered `200` would get a cut body. With it, the
    /// client beyond the limit is refused cleanly (HTTP 503 with `Retry-After`). Returns
    /// what was lowered, for the operator.
    pub fn fit_open_files(&mut self, open_files: u64) -> Option<String> {
        let per_pair = FDS_PER_HTTP_CONNECTION + FDS_PER_RTSP_CONNECTION;
        let fit = (open_files.saturating_sub(FD_RESERVE) / per_pair).max(1) as usize;
        if self.max_connections <= fit {
            return None;
        }
        let was = self.max_connections;
        self.max_connections = fit;
        self.max_connections_per_client = self.max_connections_per_client.min(fit);
        Some(format!(
            "the open-files limit ({open_files}) allows {fit} connections per protocol, not \
             {was}: max-connections lowered (raise it with `ulimit -n`)"
        ))
    }
}

/// Why a connection or session was refused (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Total,
    PerClient,
}

/// Live connections overall and per client address. A [`Slot`] holds one place and gives it
/// back when dropped.
#[derive(Debug)]
pub struct Counter {
    max: usize,
    max_per_client: usize,
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Counter {
    pub fn new(max: usize, max_per_client: usize) -> Arc<Counter> {
        Arc::new(Counter {
            max,
            max_per_client,
            inner: Mutex::new((0, HashMap::new())),
        })
    }

    /// One more connection from `ip`, or why not.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Over> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 >= self.max {
            return Err(Over::Total);
        }
        let n = g.1.entry(ip).or_default();
        if *n >= self.max_per_client {
            return Err(Over::PerClient);
        }
        *n += 1;
        g.0 += 1;
        Ok(Slot {
            counter: self.clone(),
            ip,
        })
    }

    pub fn total(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// One held place in a [`Counter`].
#[derive(Debug)]
pub struct Slot {
    counter: Arc<Counter>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.counter.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_open_files_limit() {
        let mut l = Limits::default();
        assert_eq!(l.fit_open_files(1 << 20), None);
        assert_eq!(l.max_connections, 10_000);
        let said = l.fit_open_files(256).expect("lowered");
        assert!(said.contains("allows 26 connections"), "{said}");
        assert_eq!((l.max_connections, l.max_connections_per_client), (26, 26));
        let total = 26 * (FDS_PER_HTTP_CONNECTION + FDS_PER_RTSP_CONNECTION) + FD_RESERVE;
        assert!(total <= 256);
        // A limit below the reserve still lets one client in.
        let mut l = Limits::default();
        l.fit_open_files(10);
        assert_eq!(l.max_connections, 1);
    }

    #[test]
    fn counts_overall_and_per_client_and_gives_back() {
        let c = Counter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = c.acquire(a).unwrap();
        let _a2 = c.acquire(a).unwrap();
        assert_eq!(c.acquire(a).unwrap_err(), Over::PerClient);
        let _b1 = c.acquire(b).unwrap();
        assert_eq!(c.acquire(b).unwrap_err(), Over::Total);
        drop(a1);
        assert_eq!(c.total(), 2);
        assert!(c.acquire(b).is_ok());
    }
}
