//! A tiny HTTP/1.1 client over `std::net::TcpStream`, written for the tests so that what the
//! server sends is judged byte by byte by code that does not share anything with it (no hyper).
//!
//! One request per connection (`Connection: close`), so the end of a body is known from its
//! framing (`Content-Length` or chunked) and a body cut short is an error that names how many
//! bytes arrived, never a silently shorter body. Every socket operation has a timeout, and a
//! whole exchange has a deadline ([`IO_TIMEOUT`]): a server that hangs fails the test instead of
//! stalling it.
//!
//! [`open`] returns after the response head, so a test can read part of a body, change the
//! server's state (inject a fault), and read the rest; [`request`] does the whole exchange.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on connecting, on each read or write, and on a whole exchange.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// Chunked: bytes left in the current chunk (`None` before the first size line), or done.
    Chunked { left: Option<u64>, done: bool },
    /// Until the server closes.
    Close { done: bool },
}

/// A response whose head has been read; the body is read on demand.
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    deadline: Instant,
    /// Body bytes read so far.
    pub received: u64,
}

/// Sends `method path` to `addr` with `headers` and `body`, and reads the response head.
pub fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Exchange> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut w = &stream;
    w.write_all(req.as_bytes())?;
    w.write_all(body)?;
    w.flush()?;
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let (status, headers) = read_head(&mut reader)?;
    let framing = if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        Framing::None
    } else if header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked {
            left: None,
            done: false,
        }
    } else if let Some(len) = header(&headers, "content-length") {
        Framing::Length(len.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad Content-Length {len:?}"),
            )
        })?)
    } else {
        Framing::Close { done: false }
    };
    Ok(Exchange {
        status,
        headers,
        reader,
        framing,
        deadline,
        received: 0,
    })
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_line(r: &mut BufReader<TcpStream>, limit: usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.by_ref().take(limit as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a complete line",
        ));
    }
    if !line.ends_with(b"\n") {
        return Err(invalid("line too long or cut short"));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("line is not UTF-8"))
}

fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(r, MAX_HEAD)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!(
            "not an HTTP/1 status line: {status_line:?}"
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    let mut total = status_line.len();
    loop {
        let line = read_line(r, MAX_HEAD)?;
        total += line.len();
        if total > MAX_HEAD {
            return Err(invalid("response head too large"));
        }
        if line.is_empty() {
            break;
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok((status, headers))
}

impl Exchange {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn check_deadline(&self) -> io::Result<()> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "exchange still running after {} s ({} body bytes received)",
                    IO_TIMEOUT.as_secs(),
                    self.received
                ),
            ));
        }
        Ok(())
    }

    /// Reads some body bytes into `buf`; `Ok(0)` at the end of the body. A body that ends
    /// before its framing says is an `UnexpectedEof` error.
    pub fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_deadline()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match self.framing {
            Framing::None | Framing::Close { done: true } => 0,
            Framing::Chunked { done: true, .. } => 0,
            Framing::Length(0) => 0,
            Framing::Length(left) => {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "body cut short: the connection closed after {} bytes, {left} more \
                             were announced",
                            self.received
                        ),
                    ));
                }
                self.framing = Framing::Length(left - n as u64);
                n
            }
            Framing::Close { done: false } => {
                let n = self.reader.read(buf)?;
                if n == 0 {
                    self.framing = Framing::Close { done: true };
                }
                n
            }
            Framing::Chunked { left, done: false } => {
                let left = match left {
                    Some(l) if l > 0 => l,
                    _ => {
                        if left == Some(0) {
                            // The CRLF after a chunk's data.
                            let crlf = read_line(&mut self.reader, 2)?;
                            if !crlf.is_empty() {
                                return Err(invalid("chunk data not followed by CRLF"));
                            }
                        }
                        let size_line = read_line(&mut self.reader, 1024)?;
                        let hex = size_line.split(';').next().unwrap_or_default().trim();
                        let size = u64::from_str_radix(hex, 16)
                            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
                        if size == 0 {
                            // Trailers, up to the empty line.
                            while !read_line(&mut self.reader, MAX_HEAD)?.is_empty() {}
                            self.framing = Framing::Chunked {
                                left: Some(0),
                                done: true,
                            };
                            return Ok(0);
                        }
                        size
                    }
                };
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "chunked body cut short after {} bytes, inside a chunk",
                            self.received
                        ),
                    ));
                }
                self.framing = Framing::Chunked {
                    left: Some(left - n as u64),
                    done: false,
                };
                n
            }
        };
        self.received += n as u64;
        Ok(n)
    }

    /// Reads body bytes until `buf` holds at least `at_least` bytes or the body ends.
    pub fn read_body_into(&mut self, buf: &mut Vec<u8>, at_least: usize) -> io::Result<()> {
        let mut chunk = vec![0u8; 64 << 10];
        while buf.len() < at_least {
            let n = self.read_body(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }

    /// The rest of the body.
    pub fn read_body_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_body_into(&mut out, usize::MAX)?;
        Ok(out)
    }

    /// Whatever the server sends after the end of the body until it closes the connection
    /// (for a HEAD or a 304: must be nothing).
    pub fn bytes_after_body(mut self) -> io::Result<Vec<u8>> {
        let mut extra = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            self.check_deadline()?;
            let n = self.reader.read(&mut chunk)?;
            if n == 0 {
                return Ok(extra);
            }
            extra.extend_from_slice(&chunk[..n]);
        }
    }

    /// The whole response (reads the rest of the body).
    pub fn finish(mut self) -> io::Result<Response> {
        let body = self.read_body_to_end()?;
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// One whole exchange.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    open(addr, method, path, headers, body)?.finish()
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, &[], &[])
}

/// `GET path`, panicking with the request when the exchange itself fails (any status is fine).
pub fn must_get(addr: SocketAddr, path: &str) -> Response {
    get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// `PUT path` with a JSON body; panics unless the answer is 2xx.
pub fn must_put_json(addr: SocketAddr, path: &str, json: &serde_json::Value) -> Response {
    let r = request(
        addr,
        "PUT",
        path,
        &[("Content-Type", "application/json")],
        json.to_string().as_bytes(),
    )
    .unwrap_or_else(|e| panic!("PUT http://{addr}{path} {json}: {e}"));
    assert!(
        (200..300).contains(&r.status),
        "PUT http://{addr}{path} {json}: status {}: {}",
        r.status,
        r.text()
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `canned` (after reading the request head) and closes it.
    fn serve_once(canned: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(&s);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = (&s).write_all(canned);
        });
        addr
    }

    #[test]
    fn content_length_body() {
        let addr =
            serve_once(b"HTTP/1.1 206 Partial\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA");
        let r = get(addr, "/").expect("response");
        assert_eq!(r.status, 206);
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn chunked_body() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(get(addr, "/").expect("response").body, b"abcde");
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let e = get(addr, "/").expect_err("cut short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("after 3 bytes"), "{e}");
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        assert!(get(addr, "/").is_err());
    }

    #[test]
    fn head_reads_no_body_and_sees_extra_bytes() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        let x = open(addr, "HEAD", "/", &[], &[]).expect("head");
        assert_eq!(x.header("content-length"), Some("10"));
        assert!(x.bytes_after_body().expect("eof").is_empty());
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        let x = open(addr, "HEAD", "/", &[], &[]).expect("head");
        assert_eq!(x.bytes_after_body().expect("eof"), b"abc");
    }
}
