//! The RTSP server: the listener, the shared UDP sockets, the session table, the reaper that
//! times sessions out, and the RTCP reader that counts receiver reports as signs of life.

use super::conn;
use super::pump::Pump;
use super::session::{Session, TransportKind, now_ms};
use crate::catalog::{Catalog, Content};
use crate::cluster::Cluster;
use crate::limits::{Counter, Over};
use crate::metrics::Metrics;
use media::index::Index;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};

/// What the RTSP side is configured with.
#[derive(Debug, Clone)]
pub struct RtspConfig {
    /// A session nobody hears from (requests, RTCP receiver reports) for this long ends.
    pub session_timeout: Duration,
    /// Header and idle timeouts, connection and session limits.
    pub limits: crate::limits::Limits,
    /// Access control; `None` serves every content to anyone (tests of other parts).
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            session_timeout: Duration::from_secs(60),
            limits: crate::limits::Limits::default(),
            auth: None,
        }
    }
}

pub struct RtspServer {
    pub cluster: Arc<Cluster>,
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    pub config: RtspConfig,
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub pump: Pump,
    pub epoch: Instant,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Client RTCP address → session id, for receiver reports.
    rtcp_peers: Mutex<HashMap<SocketAddr, String>>,
    indexes: Mutex<HashMap<String, Arc<Index>>>,
    next_conn: AtomicU64,
    /// Live RTSP connections, overall and per client address.
    connections: Arc<Counter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds an RTP socket on an even port and RTCP on the next one, on `ip`.
async fn bind_pair(ip: std::net::IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::other(
        "no free even/odd UDP port pair for RTP/RTCP",
    ))
}

impl RtspServer {
    /// Binds the UDP sockets on the listener's address and starts the reaper and RTCP reader.
    pub async fn start(
        listener: &TcpListener,
        cluster: Arc<Cluster>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        config: RtspConfig,
    ) -> std::io::Result<Arc<RtspServer>> {
        let (rtp, rtcp) = bind_pair(listener.local_addr()?.ip()).await?;
        // Room for bursts of many sessions between two wake-ups of the socket.
        let _ = socket2_sndbuf(&rtp, 4 << 20);
        let pump = Pump::start(&std_clone(&rtp)?, &std_clone(&rtcp)?, metrics.clone())?;
        let connections = Counter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_client,
        );
        let server = Arc::new(RtspServer {
            connections,
            pump,
            cluster,
            catalog,
            metrics,
            config,
            rtp: Arc::new(rtp),
            rtcp: Arc::new(rtcp),
            epoch: Instant::now(),
            sessions: Mutex::new(HashMap::new()),
            rtcp_peers: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        tokio::spawn(reaper(Arc::downgrade(&server)));
        tokio::spawn(rtcp_reader(Arc::downgrade(&server), server.rtcp.clone()));
        Ok(server)
    }

    pub fn server_ports(&self) -> (u16, u16) {
        let p = |s: &UdpSocket| s.local_addr().map_or(0, |a| a.port());
        (p(&self.rtp), p(&self.rtcp))
    }

    /// Accepts connections until the listener fails for good.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let slot = match self.connections.acquire(peer.ip()) {
                        Ok(slot) => slot,
                        Err(over) => {
                            // No request to answer yet: closing is the refusal.
                            self.metrics.rtsp_refused(match over {
                                Over::Total => "max_connections",
                                Over::PerClient => "max_connections_per_client",
                            });
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let server = self.clone();
                    tokio::spawn(async move {
                        conn::serve(server, stream, peer, id).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "RTSP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    pub fn now_ms(&self) -> u64 {
        now_ms(self.epoch)
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn insert(&self, s: Arc<Session>) {
        if let TransportKind::Udp { rtcp, .. } = &s.transport {
            lock(&self.rtcp_peers).insert(*rtcp, s.id.clone());
        }
        lock(&self.sessions).insert(s.id.clone(), s);
    }

    /// Ends a session: its player stops when the last sender of its command channel drops.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = lock(&self.sessions).remove(id)?;
        if let TransportKind::Udp { rtcp, .. } = &s.transport {
            lock(&self.rtcp_peers).remove(rtcp);
        }
        Some(s)
    }

    /// Whether one more session from `client` fits the session limits; the refusal's metric
    /// label otherwise. (Checked before the session is built, so racing SETUPs from many
    /// connections may overshoot by the few in flight.)
    pub fn session_room(&self, client: std::net::IpAddr) -> Result<(), &'static str> {
        let l = &self.config.limits;
        let sessions = lock(&self.sessions);
        if sessions.len() >= l.max_sessions {
            return Err("max_sessions");
        }
        if sessions.values().filter(|s| s.client == client).count() >= l.max_sessions_per_client {
            return Err("max_sessions_per_client");
        }
        Ok(())
    }

    /// Whether any live session was set up on connection `connection` (either transport).
    pub fn has_connection_sessions(&self, connection: u64) -> bool {
        lock(&self.sessions)
            .values()
            .any(|s| s.connection == connection)
    }

    /// Sessions carried by a TCP connection that closed.
    pub fn remove_connection(&self, connection: u64) {
        let ids: Vec<String> = lock(&self.sessions)
            .values()
            .filter(|s| s.transport == TransportKind::Tcp { connection })
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// The content's index, read through the replica reader once per content version.
    pub async fn index(&self, c: &Content) -> Result<Arc<Index>, String> {
        let key = format!("{}/{}", c.id, c.etag);
        if let Some(i) = lock(&self.indexes).get(&key) {
            return Ok(i.clone());
        }
        let file = installer::info::INDEX_FILE;
        let size = c
            .file_size(file)
            .ok_or_else(|| format!("{}: no {file} in the manifest", c.id))?;
        let mut reader = self.cluster.reader(&c.id, file, &c.nodes);
        let mut bytes = Vec::with_capacity(size as usize);
        while (bytes.len() as u64) < size {
            let b = reader
                .read_at(
                    bytes.len() as u64,
                    (size as usize - bytes.len()).min(256 << 10),
                )
                .await
                .map_err(|e| format!("{}: reading {file}: {e}", c.id))?;
            if b.is_empty() {
                return Err(format!("{}: {file} shorter than its manifest says", c.id));
            }
            bytes.extend_from_slice(&b);
        }
        let idx = Arc::new(Index::parse(&bytes).map_err(|e| format!("{}: {file}: {e}", c.id))?);
        let mut cache = lock(&self.indexes);
        cache.retain(|k, _| !k.starts_with(&format!("{}/", c.id)));
        cache.insert(key, idx.clone());
        Ok(idx)
    }
}

/// A std handle on the same socket (the pump thread sends without tokio).
fn std_clone(s: &UdpSocket) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::AsFd;
    Ok(std::net::UdpSocket::from(s.as_fd().try_clone_to_owned()?))
}

fn socket2_sndbuf(s: &UdpSocket, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Ends sessions nobody has heard from within the timeout.
async fn reaper(server: std::sync::Weak<RtspServer>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        let now = s.now_ms();
        let limit = s.config.session_timeout.as_millis() as u64;
        let expired: Vec<String> = lock(&s.sessions)
            .values()
            .filter(|x| x.idle_ms(now) > limit)
            .map(|x| x.id.clone())
            .collect();
        for id in expired {
            tracing::info!(session = %id, "RTSP session timed out");
            s.metrics.refused("rtsp_session_timeout");
            s.remove(&id);
        }
    }
}

/// Receiver reports keep a UDP session alive (RFC 2326 §12.37 allows RTCP as keep-alive).
async fn rtcp_reader(server: std::sync::Weak<RtspServer>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((_, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Some(s) = server.upgrade() else { return };
        let id = lock(&s.rtcp_peers).get(&from).cloned();
        if let Some(sess) = id.and_then(|id| s.session(&id)) {
            sess.touch(s.now_ms());
        }
    }
}

impl RtspServer {
    /// Interleaved RTCP from a client: every session on its connection is alive.
    pub fn touch_connection(&self, connection: u64) {
        let now = self.now_ms();
        for s in lock(&self.sessions).values() {
            if s.transport == (TransportKind::Tcp { connection }) {
                s.touch(now);
            }
        }
    }
}
