//! One RTSP session: its state (RFC 2326 Appendix A: Ready, Playing; Init is "no session"),
//! its transport, its player task, and when the client was last heard from.

use super::player::{Command, Status};
use crate::catalog::Content;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Set up, not playing (after SETUP, after PAUSE, at the end of the content).
    Ready,
    Playing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
    Tcp { connection: u64 },
}

pub struct Session {
    pub id: String,
    pub content: Arc<Content>,
    /// The URL the client set the stream up with (what `RTP-Info` must name).
    pub stream_url: String,
    pub transport: TransportKind,
    /// The RTSP connection that set it up, and the client's address (for the limits).
    pub connection: u64,
    pub client: std::net::IpAddr,
    pub state: Mutex<State>,
    pub control: mpsc::Sender<Command>,
    pub status: Arc<Status>,
    /// Milliseconds since the server's epoch when the client was last heard from.
    last_seen: AtomicU64,
}

impl Session {
    pub fn new(
        id: String,
        content: Arc<Content>,
        stream_url: String,
        transport: TransportKind,
        control: mpsc::Sender<Command>,
        status: Arc<Status>,
        now_ms: u64,
    ) -> Session {
        Session {
            id,
            content,
            stream_url,
            transport,
            connection: 0,
            client: std::net::Ipv4Addr::UNSPECIFIED.into(),
            state: Mutex::new(State::Ready),
            control,
            status,
            last_seen: AtomicU64::new(now_ms),
        }
    }

    /// The same session, set up on connection `connection` from `client`.
    pub fn on(mut self, connection: u64, client: std::net::IpAddr) -> Session {
        self.connection = connection;
        self.client = client;
        self
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_seen.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_state(&self, s: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// A session id: 16 hex digits from the thread RNG (unguessable enough that one client
/// cannot drive another's session by counting).
pub fn new_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// Milliseconds on a monotonic clock shared by the server.
pub fn now_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}
