//! One HTTP/1.1 request head from bytes (`httparse`), with every limit and check applied before
//! the router sees it: request-line length (414), head size, header line size and header count
//! (431), known methods (501 otherwise), versions 1.0 and 1.1, `Content-Length` (one value,
//! at most [`MAX_BODY`]: 413), no `Transfer-Encoding` (501), and the target normalised by
//! [`crate::target::normalise`].

use crate::Error;
use crate::target::{self, Target};

/// Longest request line (method, target, version), in bytes.
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// Longest single header line, in bytes.
pub const MAX_HEADER_LINE: usize = 8 << 10;
/// Largest request head, in bytes.
pub const MAX_HEAD: usize = 64 << 10;
/// Most header lines.
pub const MAX_HEADERS: usize = 100;
/// Largest request body (the admin knobs are a few hundred bytes).
pub const MAX_BODY: u64 = 1 << 20;

/// The methods this server knows (RFC 9110 §9); anything else is 501.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    pub fn from_token(t: &str) -> Option<Method> {
        Some(match t {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
}

/// A parsed, validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The normalised target (decoded path, raw query).
    pub target: Target,
    /// HTTP/1.0 (else 1.1).
    pub http10: bool,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the head, including the blank line.
    pub len: usize,
    pub content_length: u64,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// Parse the head at the start of `buf`: `Ok(None)` when more bytes are needed (and the limits
/// allow waiting for them), or the precise reason to refuse.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, Error> {
    // The request line alone, before httparse: a long one is 414, not 431.
    let line_end = buf.iter().position(|&b| b == b'\n');
    if line_end.unwrap_or(buf.len()) > MAX_REQUEST_LINE {
        return Err(Error::RequestLineTooLong {
            limit: MAX_REQUEST_LINE,
        });
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Error::HeadTooLarge { limit: MAX_HEAD });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::TooManyHeaders { limit: MAX_HEADERS });
        }
        Err(httparse::Error::Version) => return Err(Error::Version),
        Err(e) => return Err(Error::Malformed(e.to_string())),
    };
    if len > MAX_HEAD {
        return Err(Error::HeadTooLarge { limit: MAX_HEAD });
    }
    let token = req.method.unwrap_or("");
    let method = Method::from_token(token)
        .ok_or_else(|| Error::UnknownMethod(token.chars().take(32).collect()))?;
    let http10 = req.version == Some(0);
    let mut content_length: Option<u64> = None;
    let mut close = http10;
    let mut expect_continue = false;
    let mut host = None;
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.len() + h.value.len() > MAX_HEADER_LINE {
            return Err(Error::HeaderTooLarge {
                name: h.name.chars().take(32).collect(),
                limit: MAX_HEADER_LINE,
            });
        }
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Error::BadContentLength(value.chars().take(32).collect()))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(Error::BadContentLength(value.chars().take(32).collect()));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Error::Chunked);
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
        } else if h.name.eq_ignore_ascii_case("host") {
            host = Some(value);
        }
        out.push((h.name.to_string(), h.value.to_vec()));
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(Error::BodyTooLarge {
            len: content_length,
            limit: MAX_BODY,
        });
    }
    let target = target::normalise(req.path.unwrap_or(""), host)?;
    Ok(Some(Head {
        method,
        target,
        http10,
        headers: out,
        len,
        content_length,
        keep_alive: !close,
        expect_continue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(b: &[u8]) -> Head {
        match parse(b) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn status(b: &[u8]) -> u16 {
        match parse(b) {
            Err(e) => e.status(),
            other => panic!(
                "accepted {:?}: {}",
                String::from_utf8_lossy(&b[..b.len().min(80)]),
                other.is_ok()
            ),
        }
    }

    #[test]
    fn keep_alive_rules_and_lengths() {
        let h = complete(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b");
        assert!(h.keep_alive);
        assert_eq!(h.len, 28);
        assert_eq!(h.target.path, "/a");
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        let h = complete(b"PUT /k HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(h.content_length, 12);
        assert!(h.expect_continue);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Ok(None));
    }

    #[test]
    fn refusals() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), 400);
        assert_eq!(
            status(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"PUT / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n"),
            413
        );
        assert_eq!(status(b"G\x01T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"BREW /pot HTTP/1.1\r\n\r\n"), 501);
        assert_eq!(status(b"get / HTTP/1.1\r\n\r\n"), 501);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(status(b"GET /../x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET http://evil/x HTTP/1.1\r\nHost: good\r\n\r\n"),
            400
        );
        // Limits, also while the head is still arriving.
        let mut line = b"GET /".to_vec();
        line.resize(MAX_REQUEST_LINE + 1, b'a');
        assert_eq!(status(&line), 414);
        line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(status(&line), 414);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(status(&big), 431);
        let mut one = b"GET / HTTP/1.1\r\nX: ".to_vec();
        one.resize(one.len() + MAX_HEADER_LINE, b'a');
        one.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&one), 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
    }
}
