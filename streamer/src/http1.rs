//! The HTTP/1.1 connection handler: requests in (parsed with `httparse`), responses out, one at
//! a time per connection, keep-alive and pipelining.
//!
//! # Why not hyper's server
//!
//! The content send path splices pages from a pipe into the socket ([`crate::send`]): it needs
//! the socket itself between the response head and the end of the body. hyper owns its
//! connection's I/O and only accepts bodies as frames of bytes in memory, which is exactly the
//! copy the send path removes (page cache → buffer → socket). So the streamer speaks HTTP/1.1
//! itself, on the same routing code ([`crate::http::Server::handle`], typed with the `http`
//! crate as before). What it does, matching what hyper did for our routes:
//!
//! - HTTP/1.1 keep-alive by default, `Connection: close` honoured; HTTP/1.0 keeps the
//!   connection only with `Connection: keep-alive` (echoed). Pipelined requests are answered
//!   in order (bytes after a head stay buffered for the next one).
//! - Request bodies by `Content-Length` (the admin `PUT`s), with `Expect: 100-continue`;
//!   chunked request bodies are refused (501) since no route takes a large body.
//! - Responses carry `date`, and `content-length` unless the status has no body (1xx, 204,
//!   304); `HEAD` gets the head only.
//! - Every request is parsed and validated by the sans-IO [`http_proto::request`] before any
//!   work: limits (request line 414; head, header line, header count 431; body 413), known
//!   methods (501), the target normalised and anything that could leave the store refused (400).
//!   A refusal is counted (`sluice_http_refused_total{reason}`) and closes the connection; a body
//!   that cannot be finished (every replica failed) closes the connection mid-body, so the
//!   client sees a short body, never a wrong one.
//! - Slow-loris: a request head must be complete within the header timeout (of the connect for
//!   the first request, of its first byte for later ones), else 408 and close; a keep-alive
//!   connection with no request for the idle timeout is closed ([`crate::limits::Limits`]).

use crate::http::{Body, Server};
use crate::send::{send_content, write_all};
use bytes::{Buf, Bytes, BytesMut};
use http_proto::Error;
use http_proto::request;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// After a refusal, how long and how much of the client's further input is read and dropped.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Refusals waiting for their client to close, and how many may (see [`refuse_busy`]).
static LINGERING: AtomicUsize = AtomicUsize::new(0);
const MAX_LINGERING: usize = 32;

/// Serve one connection until the client closes it or an error ends it.
pub async fn serve(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = Conn::new(server, stream, peer).run().await {
        tracing::debug!(error = %e, %peer, "connection ended");
    }
}

/// Answer a connection over the connection limits: 503 with `Retry-After`, then close
/// (without reading a request: the point is to spend nothing on it).
///
/// Called in the accept loop itself, not in a task of its own: the answer is written at once
/// (a fresh socket's send buffer takes it whole), so a flood of connections arriving faster
/// than tasks run can never hold more descriptors than the refusals that linger. The client's
/// request is then drained for a moment, in a task, so that closing does not reset the answer
/// away, by at most `MAX_LINGERING` refusals at once: a flood of connections that send
/// nothing must not hold the descriptors the limits keep in reserve (beyond that, the socket
/// is closed at once; a client that sent nothing still reads the answer, since only unread
/// data turns a close into a reset).
pub fn refuse_busy(stream: TcpStream, retry_after_secs: u64) {
    struct Lingering;
    impl Drop for Lingering {
        fn drop(&mut self) {
            LINGERING.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let body = "too many connections, retry later\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {retry_after_secs}\r\n\
         content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\ndate: {}\r\n\r\n{body}",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    if stream.try_write(head.as_bytes()).ok() != Some(head.len()) {
        return;
    }
    // SAFETY: shutdown(2) of the socket we own; a failure only means it is already gone.
    unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let held = Lingering;
    tokio::spawn(async move {
        let _held = held;
        let mut stream = stream;
        crate::linger::drain(&mut stream, 64 << 10, std::time::Duration::from_secs(1)).await;
    });
}

/// A parsed request head, typed for the router.
struct Head {
    parts: Parts,
    len: usize,
    content_length: u64,
    keep_alive: bool,
    expect_continue: bool,
}

/// The head at the start of `buf` (`Ok(None)`: more bytes needed), parsed and validated by
/// [`http_proto::request::parse`] and typed with the `http` crate for the router. The router
/// sees the normalised, decoded path, never the raw target.
fn parse(buf: &[u8]) -> Result<Option<Head>, Error> {
    let Some(h) = request::parse(buf)? else {
        return Ok(None);
    };
    let uri = match &h.target.query {
        Some(q) => format!("{}?{q}", h.target.path),
        None => h.target.path.clone(),
    };
    let mut b = Request::builder()
        .method(h.method.as_str())
        .uri(uri)
        .version(if h.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for (name, value) in &h.headers {
        b = b.header(name.as_str(), value.as_slice());
    }
    let r = b.body(()).map_err(|e| Error::Malformed(e.to_string()))?;
    Ok(Some(Head {
        parts: r.into_parts().0,
        len: h.len,
        content_length: h.content_length,
        keep_alive: h.keep_alive,
        expect_continue: h.expect_continue,
    }))
}

/// Statuses whose responses never have a body.
fn bodiless(s: StatusCode) -> bool {
    s.is_informational() || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED
}

struct Conn {
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    buf: BytesMut,
}

impl Conn {
    fn new(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            server,
            stream,
            peer,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Read more request bytes; 0 at end of stream.
    async fn read_more(&mut self) -> io::Result<usize> {
        loop {
            self.buf.reserve(4096);
            self.stream.readable().await?;
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn run(mut self) -> io::Result<()> {
        let limits = self.server.limits.clone();
        // The first request's head is due within the header timeout of the connect; a later
        // one within the header timeout of its first byte, after at most the idle timeout.
        let mut head_due = Some(Instant::now() + limits.header_timeout);
        loop {
            let idle_until = Instant::now() + limits.idle_timeout;
            let head = loop {
                if !self.buf.is_empty() {
                    match parse(&self.buf) {
                        Ok(Some(h)) => break h,
                        Ok(None) => {}
                        Err(e) => return self.refuse(e).await,
                    }
                    head_due.get_or_insert_with(|| Instant::now() + limits.header_timeout);
                }
                let until = head_due.unwrap_or(idle_until);
                match tokio::time::timeout_at(until, self.read_more()).await {
                    Ok(n) => {
                        if n? == 0 {
                            return Ok(());
                        }
                    }
                    Err(_) if head_due.is_some() => return self.request_timeout().await,
                    Err(_) => {
                        self.server.metrics.refused("idle_timeout");
                        return Ok(());
                    }
                }
            };
            head_due = None;
            self.buf.advance(head.len);
            let Head {
                parts,
                content_length,
                keep_alive,
                expect_continue,
                ..
            } = head;
            let want = content_length as usize;
            if expect_continue && self.buf.len() < want {
                write_all(&self.stream, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            let body_due = Instant::now() + limits.header_timeout;
            while self.buf.len() < want {
                match tokio::time::timeout_at(body_due, self.read_more()).await {
                    Ok(n) => {
                        if n? == 0 {
                            return Ok(());
                        }
                    }
                    Err(_) => return self.request_timeout().await,
                }
            }
            let body = self.buf.split_to(want).freeze();
            let resp = self.server.handle(self.peer, &parts, body);
            self.respond(&parts, resp, keep_alive).await?;
            if !keep_alive {
                return Ok(());
            }
        }
    }

    /// Answer a request refused before any work (counted by reason) and close.
    async fn refuse(&mut self, e: Error) -> io::Result<()> {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        tracing::info!(peer = %self.peer, error = %e, status = status.as_u16(), "request refused");
        self.server.metrics.refused(e.reason());
        self.server.metrics.request("other", status.as_u16());
        let mut r = Response::new(Body::Full(Bytes::from(e.to_string() + "\n")));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let parts = Request::new(()).into_parts().0;
        self.respond(&parts, r, false).await?;
        self.linger().await;
        Ok(())
    }

    /// A request head (or small body) that did not arrive in time: 408, counted, and close.
    async fn request_timeout(&mut self) -> io::Result<()> {
        tracing::info!(peer = %self.peer, "request head not complete in time");
        self.server.metrics.refused("header_timeout");
        self.server.metrics.request("other", 408);
        let mut r = Response::new(Body::Full(Bytes::from_static(b"request timeout\n")));
        *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let parts = Request::new(()).into_parts().0;
        // A client that does not read its 408 must not hold the connection either.
        let _ = tokio::time::timeout(LINGER_TIME, self.respond(&parts, r, false)).await;
        self.linger().await;
        Ok(())
    }

    /// Close after a refusal without losing the answer: stop sending, then read and discard
    /// what the client is still sending (bounded in bytes and time). Closing a socket with
    /// unread input sends a reset, which can destroy the refusal before the client reads it.
    async fn linger(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.shutdown().await;
        crate::linger::drain(&mut self.stream, LINGER_BYTES, LINGER_TIME).await;
    }

    async fn respond(
        &mut self,
        req: &Parts,
        resp: Response<Body>,
        keep_alive: bool,
    ) -> io::Result<()> {
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(b"HTTP/1.1 ");
        head.extend_from_slice(status.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        head.extend_from_slice(b"\r\n");
        for (k, v) in &parts.headers {
            head.extend_from_slice(k.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if !parts.headers.contains_key(header::DATE) {
            head.extend_from_slice(b"date: ");
            head.extend_from_slice(
                httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
            );
            head.extend_from_slice(b"\r\n");
        }
        let no_body = bodiless(status);
        if !no_body && !parts.headers.contains_key(header::CONTENT_LENGTH) {
            let len = match &body {
                Body::Full(b) => b.len() as u64,
                Body::Content(c) => c.end - c.start,
            };
            head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
        }
        if !keep_alive {
            head.extend_from_slice(b"connection: close\r\n");
        } else if req.version == Version::HTTP_10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let send_body = !no_body && req.method != Method::HEAD;
        match body {
            Body::Full(b) => {
                if send_body {
                    head.extend_from_slice(&b);
                }
                write_all(&self.stream, &head).await
            }
            Body::Content(c) if send_body => {
                // The head waits (MSG_MORE) to leave in the same segment as the body's start.
                write_more(&self.stream, &head).await?;
                let metrics = self.server.metrics.clone();
                send_content(&self.stream, c, self.server.chunk, &metrics).await
            }
            Body::Content(_) => write_all(&self.stream, &head).await,
        }
    }
}

/// `write_all` with `MSG_MORE`: more data follows at once.
async fn write_more(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !buf.is_empty() {
        crate::send::writable(stream).await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: a live buffer and a socket fd owned by `stream`.
            let n = unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => buf = &buf[k..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_sees_the_normalised_path() {
        let h = parse(b"GET /content/d%65mo.ts?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.parts.uri.path(), "/content/demo.ts");
        assert_eq!(h.parts.uri.query(), Some("x=1"));
        assert_eq!(h.parts.method, Method::GET);
        assert!(parse(b"GET /content/%2e%2e/x HTTP/1.1\r\n\r\n").is_err());
    }
}
