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
//! - A malformed request gets 400 (a head over 64 KiB 431) and the connection closes; a body
//!   that cannot be finished (every replica failed) closes the connection mid-body, so the
//!   client sees a short body, never a wrong one.

use crate::http::{Body, Server};
use crate::send::{Pipes, send_content, write_all};
use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest request head, and number of header lines.
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 100;
/// Largest request body (knob settings are a few hundred bytes).
const MAX_BODY: u64 = 1 << 20;

/// Serve one connection until the client closes it or an error ends it.
pub async fn serve(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = Conn::new(server, stream, peer).run().await {
        tracing::debug!(error = %e, %peer, "connection ended");
    }
}

/// A parsed request head.
struct Head {
    parts: Parts,
    len: usize,
    content_length: u64,
    keep_alive: bool,
    expect_continue: bool,
}

enum Parsed {
    Complete(Box<Head>),
    Partial,
    /// Refuse with this status and close.
    Bad(StatusCode, String),
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Bad(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large".into(),
            );
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Bad(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header lines".into(),
            );
        }
        Err(e) => return Parsed::Bad(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut b = Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"))
        .version(version);
    let mut content_length = 0u64;
    let mut close = version == Version::HTTP_10;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => content_length = n,
                Err(_) => {
                    return Parsed::Bad(
                        StatusCode::BAD_REQUEST,
                        format!("bad Content-Length {value:?}"),
                    );
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(
                StatusCode::NOT_IMPLEMENTED,
                "chunked request bodies are not accepted".into(),
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
        b = b.header(h.name, h.value);
    }
    match b.body(()) {
        Ok(r) => Parsed::Complete(Box::new(Head {
            parts: r.into_parts().0,
            len,
            content_length,
            keep_alive: !close,
            expect_continue,
        })),
        Err(e) => Parsed::Bad(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
    }
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
    /// The connection's splice pipes (see `crate::send`), made on the first content body.
    pipes: Pipes,
}

impl Conn {
    fn new(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            server,
            stream,
            peer,
            buf: BytesMut::with_capacity(4096),
            pipes: [None, None],
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
        loop {
            let head = loop {
                if !self.buf.is_empty() {
                    match parse(&self.buf) {
                        Parsed::Complete(h) => break h,
                        Parsed::Partial => {}
                        Parsed::Bad(status, msg) => return self.refuse(status, msg).await,
                    }
                }
                if self.read_more().await? == 0 {
                    return Ok(());
                }
            };
            self.buf.advance(head.len);
            let Head {
                parts,
                content_length,
                keep_alive,
                expect_continue,
                ..
            } = *head;
            if content_length > MAX_BODY {
                return self
                    .refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large".into(),
                    )
                    .await;
            }
            let want = content_length as usize;
            if expect_continue && self.buf.len() < want {
                write_all(&self.stream, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            while self.buf.len() < want {
                if self.read_more().await? == 0 {
                    return Ok(());
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

    /// Answer an unparseable request and close.
    async fn refuse(&mut self, status: StatusCode, msg: String) -> io::Result<()> {
        self.server.metrics.request("other", status.as_u16());
        let mut r = Response::new(Body::Full(Bytes::from(msg + "\n")));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let parts = Request::new(()).into_parts().0;
        self.respond(&parts, r, false).await
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
                send_content(
                    &self.stream,
                    c,
                    self.server.chunk,
                    &mut self.pipes,
                    &metrics,
                )
                .await
            }
            Body::Content(_) => write_all(&self.stream, &head).await,
        }
    }
}

/// `write_all` with `MSG_MORE`: more data follows at once.
async fn write_more(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !buf.is_empty() {
        stream.writable().await?;
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

    fn complete(b: &[u8]) -> Box<Head> {
        match parse(b) {
            Parsed::Complete(h) => h,
            Parsed::Partial => panic!("partial"),
            Parsed::Bad(s, m) => panic!("{s} {m}"),
        }
    }

    #[test]
    fn keep_alive_rules_and_lengths() {
        let h = complete(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b");
        assert!(h.keep_alive);
        assert_eq!(h.len, 28);
        assert_eq!(h.parts.uri.path(), "/a");
        let h = complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = complete(b"PUT /k HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(h.content_length, 12);
        assert!(h.expect_continue);
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial));
    }

    #[test]
    fn refusals() {
        let bad = |b: &[u8]| match parse(b) {
            Parsed::Bad(s, _) => s,
            _ => panic!("accepted {:?}", String::from_utf8_lossy(b)),
        };
        assert_eq!(bad(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(bad(b"G\x01T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(bad(&big), 431);
    }
}
