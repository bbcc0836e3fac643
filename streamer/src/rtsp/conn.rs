//! One RTSP connection: read, parse (pipelined requests, `$` frames from the client), answer in
//! order. Everything written to the socket (replies and, for RTP/AVP/TCP sessions, the
//! interleaved media) goes through one bounded queue drained by a writer task, so a client that
//! stops reading stalls its own sessions instead of growing memory. A request head must be
//! complete within the header timeout and a connection without sessions may idle only for the
//! idle timeout (slow-loris, [`crate::limits::Limits`]); either closes the connection.

use super::methods;
use super::server::RtspServer;
use bytes::{Bytes, BytesMut};
use rtsp_proto::message::{Message, Response, parse};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Write-queue depth: each item is one reply or one wake-up's batch of RTP packets.
pub const WRITE_QUEUE: usize = 64;

/// The per-connection context the method handlers need.
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tx: mpsc::Sender<Bytes>,
    /// Interleaved channel pairs handed out on this connection.
    pub next_channel: u8,
    /// Fired once the current reply is in the write queue: a PLAY's media must not overtake
    /// its reply (ffmpeg drops interleaved packets that arrive before the PLAY reply).
    pub after_reply: Option<oneshot::Sender<()>>,
}

pub async fn serve(server: Arc<RtspServer>, stream: TcpStream, peer: SocketAddr, id: u64) {
    let local = stream.local_addr().unwrap_or(peer);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            // A client that takes nothing for the send timeout is cut off.
            let stall = crate::send::stall_timeout();
            if !matches!(
                tokio::time::timeout(stall, wr.write_all(&b)).await,
                Ok(Ok(()))
            ) {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut conn = Conn {
        id,
        peer,
        local,
        tx,
        next_channel: 0,
        after_reply: None,
    };
    let mut buf = BytesMut::with_capacity(4096);
    let limits = server.config.limits.clone();
    // As over HTTP: a head is due within the header timeout of the connect (first request)
    // or of its first byte; a connection without sessions may idle for the idle timeout.
    let mut head_due = Some(Instant::now() + limits.header_timeout);
    let mut idle_until = Instant::now() + limits.idle_timeout;
    'read: loop {
        loop {
            match parse(&buf) {
                Ok(Some((msg, used))) => {
                    let _ = buf.split_to(used);
                    head_due = None;
                    idle_until = Instant::now() + limits.idle_timeout;
                    match msg {
                        Message::Request(req) => {
                            let resp = methods::handle(&server, &mut conn, req).await;
                            if send(&conn, &resp).await.is_err() {
                                break 'read;
                            }
                            if let Some(go) = conn.after_reply.take() {
                                let _ = go.send(());
                            }
                        }
                        // RTCP receiver reports from an interleaved client: signs of life.
                        Message::Interleaved { .. } => server.touch_connection(id),
                        Message::Response(_) => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "bad RTSP request");
                    server.metrics.request("rtsp", e.status());
                    server.metrics.rtsp_refused(refusal_reason(&e));
                    let _ = send(
                        &conn,
                        &Response::new(e.status()).header("Connection", "close"),
                    )
                    .await;
                    linger(&mut rd).await;
                    break 'read;
                }
            }
        }
        if !buf.is_empty() {
            head_due.get_or_insert_with(|| Instant::now() + limits.header_timeout);
        }
        let until = head_due.unwrap_or(idle_until);
        match tokio::time::timeout_at(until, rd.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) if head_due.is_some() => {
                tracing::info!(%peer, "RTSP request head not complete in time");
                server.metrics.rtsp_refused("header_timeout");
                break;
            }
            // Sessions on this connection keep it open: the session timeout governs them.
            Err(_) if server.has_connection_sessions(id) => {
                idle_until = Instant::now() + limits.idle_timeout;
            }
            Err(_) => {
                server.metrics.rtsp_refused("idle_timeout");
                break;
            }
        }
    }
    server.remove_connection(id);
    drop(conn);
    let _ = writer.await;
}

/// After a refusal that closes the connection, read and drop what the client still sends
/// (bounded in bytes and time) while the writer sends the reply: closing a socket with unread
/// input resets it, which can destroy the reply before the client reads it.
async fn linger(rd: &mut tokio::net::tcp::OwnedReadHalf) {
    crate::linger::drain(rd, 1 << 20, std::time::Duration::from_secs(2)).await;
}

/// The metric label for a request the parser refused.
fn refusal_reason(e: &rtsp_proto::Error) -> &'static str {
    use rtsp_proto::Error as E;
    match e {
        E::StartLineTooLong { .. } => "request_line_too_long",
        E::HeadTooLarge { .. } => "head_too_large",
        E::TooManyHeaders { .. } => "too_many_headers",
        E::BodyTooLarge { .. } => "body_too_large",
        E::Version { .. } => "version",
        E::BadContentLength { .. } => "bad_content_length",
        _ => "malformed",
    }
}

async fn send(conn: &Conn, resp: &Response) -> Result<(), ()> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    resp.serialize(&mut out);
    conn.tx.send(Bytes::from(out)).await.map_err(|_| ())
}
