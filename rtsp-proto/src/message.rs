//! RTSP 1.0 messages (RFC 2326 section 4-7) and `$`-interleaved binary frames (section 10.12),
//! parsed from a byte buffer and written to one.
//!
//! Why sans-IO and why this shape: the server, our test client and the load generator all read
//! RTSP from a TCP stream that may hold several pipelined requests, half of one, or RTP/RTCP
//! packets framed with `$` between them. [`parse`] therefore looks at the bytes the caller has
//! buffered and answers one of three things: a complete [`Message`] and how many bytes it took
//! (the caller drains them and calls again), `Ok(None)` (read more, then call again with the
//! grown buffer), or an [`Error`] whose [`Error::status`] is the reply to send before closing.
//! No sockets, no clocks: the parser is fuzzed (`fuzz/fuzz_targets/rtsp_message.rs`) and tested
//! on every split point of real client requests.
//!
//! Liberal in what we accept, because real clients differ: CRLF or bare LF line ends, header
//! names in any case, whitespace around values, obs-fold continuation lines (joined with one
//! space), blank lines between messages, any `RTSP/1.x`. Strict in what we send: CRLF, one
//! `Content-Length` computed from the body, and no control characters in the head (a value
//! holding CR or LF is written with spaces instead, so that nothing echoed from a peer can
//! inject a header).
//!
//! Limits are checked as soon as crossing them is certain, not once the whole head has
//! arrived, so a peer cannot make the server buffer more than [`MAX_HEAD`] + [`MAX_BODY`]
//! bytes per connection.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result, context};

/// Longest message head (start line, header lines and the blank line ending them), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields in one message (continuation lines do not count).
pub const MAX_HEADERS: usize = 64;
/// Largest body (`Content-Length`), in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest request line or status line, in bytes, not counting its line end.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// An RTSP method. Methods are case-sensitive (RFC 2326 section 6.1): only the upper-case
/// spellings are the known methods; `options` is [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Options,
    Describe,
    Setup,
    Play,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    Announce,
    Record,
    Redirect,
    /// Any other token (an extension method). Must be a token to be serialised correctly.
    Other(String),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Redirect => "REDIRECT",
            Method::Other(s) => s,
        }
    }

    /// The method for a token; an error when `token` is not an RFC 2616 token.
    /// A token starting with `$` is refused: at the start of a message `$` means an
    /// interleaved frame, so such a method could not be written and read back.
    pub fn from_token(token: &str) -> Result<Method> {
        if token.is_empty() || !token.bytes().all(is_tchar) || token.starts_with('$') {
            return Err(Error::BadRequestLine {
                line: context(token.as_bytes()),
                reason: "method is not a token (or starts with '$')",
            });
        }
        Ok(match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            "REDIRECT" => Method::Redirect,
            other => Method::Other(other.to_owned()),
        })
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        Method::from_token(s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in the order received (or set). Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field `name` (any case) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing every field of that name: the first one keeps its
    /// place, the others are removed; appended when there was none.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        let mut slot = None;
        let mut i = 0;
        while i < self.fields.len() {
            if self.fields[i].0.eq_ignore_ascii_case(&name) {
                if slot.is_none() {
                    slot = Some(i);
                    i += 1;
                } else {
                    self.fields.remove(i);
                }
            } else {
                i += 1;
            }
        }
        match slot {
            Some(i) => self.fields[i] = (name, value),
            None => self.fields.push((name, value)),
        }
    }

    /// Adds a field at the end, keeping any others of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Removes every field `name` (any case); returns the first value removed.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let mut first = None;
        self.fields.retain_mut(|(n, v)| {
            if n.eq_ignore_ascii_case(name) {
                if first.is_none() {
                    first = Some(std::mem::take(v));
                }
                false
            } else {
                true
            }
        });
        first
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `CSeq` as a number, if present and numeric.
    fn cseq(&self) -> Option<u32> {
        self.get("CSeq")?.trim().parse().ok()
    }
}

/// An RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Builder: sets a header (replacing any of that name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.set(name, value);
        self
    }

    /// The `CSeq` header as a number.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// Writes the request: request line, headers in order, `Content-Length` when the body is
    /// not empty (any `Content-Length` in `headers` is ignored), blank line, body. An empty URI
    /// is written as `*`; spaces and control characters in the URI are percent-encoded.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        if self.uri.is_empty() {
            out.push(b'*');
        }
        for &b in self.uri.as_bytes() {
            if b <= b' ' || b == 0x7f {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b" RTSP/1.0\r\n");
        write_fields_and_body(&self.headers, &self.body, out);
    }
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the standard reason phrase for `status` ([`reason_phrase`]).
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Builder: sets a header (replacing any of that name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.set(name, value);
        self
    }

    /// Builder: sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        self.headers.set("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// The `CSeq` header as a number.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// Writes `RTSP/1.0 200 OK\r\n`, the headers in order, `Content-Length` when the body is
    /// not empty (any `Content-Length` in `headers` is ignored, so it is never written twice),
    /// a blank line and the body. A status outside 100..=999 is written as 500.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        let status = if (100..=999).contains(&self.status) {
            self.status
        } else {
            500
        };
        out.extend_from_slice(format!("RTSP/1.0 {status} ").as_bytes());
        push_text(self.reason.as_bytes(), out);
        out.extend_from_slice(b"\r\n");
        write_fields_and_body(&self.headers, &self.body, out);
    }
}

/// One unit read from an RTSP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
    /// A `$`-framed binary packet (RTP or RTCP over the RTSP connection, RFC 2326 10.12).
    Interleaved {
        channel: u8,
        payload: Vec<u8>,
    },
}

/// Writes a `$` frame: `$`, channel, 16-bit big-endian length, payload.
///
/// # Panics
///
/// When `payload` is longer than 65535 bytes, which the frame cannot express. Payloads are
/// RTP/RTCP packets the server built (at most ~1.4 KB), so this is a bug in the caller, never
/// something a peer can cause.
pub fn write_interleaved(channel: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(payload.len()).expect("interleaved payload longer than 65535 bytes");
    out.reserve(4 + payload.len());
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The reason phrase of a status code (RFC 2326 section 7.1.1); `"Unknown"` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        250 => "Low on Storage Space",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        452 => "Conference Not Found",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        458 => "Parameter Is Read-Only",
        459 => "Aggregate Operation Not Allowed",
        460 => "Only Aggregate Operation Allowed",
        461 => "Unsupported Transport",
        462 => "Destination Unreachable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "RTSP Version Not Supported",
        551 => "Option Not Supported",
        _ => "Unknown",
    }
}

/// Parses one message from the front of `buf`.
///
/// `Ok(Some((message, consumed)))`: drain `consumed` bytes (blank lines before the message
/// included) and call again, there may be more. `Ok(None)`: the buffer holds only part of a
/// message (or only blank lines); read more and call again with the whole buffer. `Err`: the
/// peer sent something unusable; answer with [`Error::status`] and close, since the position
/// of the next message is unknown.
pub fn parse(buf: &[u8]) -> Result<Option<(Message, usize)>> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &buf[skip..];
    let Some(&first) = rest.first() else {
        if skip > MAX_HEAD {
            return Err(Error::HeadTooLarge { limit: MAX_HEAD });
        }
        return Ok(None);
    };
    if first == b'$' {
        let Some(&[_, channel, hi, lo]) = rest.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(payload) = rest.get(4..4 + len) else {
            return Ok(None);
        };
        let message = Message::Interleaved {
            channel,
            payload: payload.to_vec(),
        };
        return Ok(Some((message, skip + 4 + len)));
    }
    let Some(head) = parse_head(rest)? else {
        return Ok(None);
    };
    let length =
        usize::try_from(head.content_length.unwrap_or(0)).map_err(|_| Error::BodyTooLarge {
            length: u64::MAX,
            limit: MAX_BODY,
        })?;
    let Some(body) = rest.get(head.len..head.len + length) else {
        return Ok(None);
    };
    let body = body.to_vec();
    let headers = Headers {
        fields: head.fields,
    };
    let message = match head.start {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    };
    Ok(Some((message, skip + head.len + length)))
}

/// A complete message head.
struct Head {
    start: StartLine,
    fields: Vec<(String, String)>,
    content_length: Option<u64>,
    /// Bytes from the start line through the blank line.
    len: usize,
}

enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

/// Frames and parses a head; `Ok(None)` while incomplete. Each complete line is checked as it
/// arrives so that errors (and limits) surface before the head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        let partial = buf.strip_suffix(b"\r").unwrap_or(buf);
        if partial.len() > MAX_REQUEST_LINE {
            return Err(Error::StartLineTooLong {
                length: partial.len(),
                limit: MAX_REQUEST_LINE,
            });
        }
        return Ok(None);
    };
    let first = strip_cr(&window[..nl]);
    if first.len() > MAX_REQUEST_LINE {
        return Err(Error::StartLineTooLong {
            length: first.len(),
            limit: MAX_REQUEST_LINE,
        });
    }
    let start = parse_start_line(first)?;
    let mut pos = nl + 1;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut content_length = None;
    loop {
        let Some(nl) = window[pos..].iter().position(|&b| b == b'\n') else {
            // The last field is final once the next line starts with anything but SP/HT.
            if let (Some(last), Some(&next)) = (fields.last(), buf.get(pos))
                && !is_ws(next)
            {
                check_content_length(last, &mut content_length)?;
            }
            if buf.len() > MAX_HEAD {
                return Err(Error::HeadTooLarge { limit: MAX_HEAD });
            }
            return Ok(None);
        };
        let line = strip_cr(&window[pos..pos + nl]);
        pos += nl + 1;
        if line.is_empty() {
            if let Some(last) = fields.last() {
                check_content_length(last, &mut content_length)?;
            }
            return Ok(Some(Head {
                start,
                fields,
                content_length,
                len: pos,
            }));
        }
        if let Some(cont) = line.strip_prefix(b" ").or_else(|| line.strip_prefix(b"\t")) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(Error::BadHeaderLine {
                    line: context(line),
                    reason: "continuation line before any header",
                });
            };
            let more = header_text(trim(cont), line)?;
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(&more);
            }
            continue;
        }
        if let Some(last) = fields.last() {
            check_content_length(last, &mut content_length)?;
        }
        if fields.len() == MAX_HEADERS {
            return Err(Error::TooManyHeaders { limit: MAX_HEADERS });
        }
        fields.push(parse_field(line)?);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_start_line(line: &[u8]) -> Result<StartLine> {
    if line.first().is_some_and(|&b| is_ws(b)) {
        return Err(Error::BadRequestLine {
            line: context(line),
            reason: "whitespace before the method",
        });
    }
    let first_word = line.split(|&b| is_ws(b)).next().unwrap_or_default();
    if first_word.contains(&b'/') {
        return parse_status_line(line);
    }
    let bad = |reason| Error::BadRequestLine {
        line: context(line),
        reason,
    };
    if line.iter().any(|&b| is_ctl(b)) {
        return Err(bad("control character"));
    }
    let mut parts = line.split(|&b| is_ws(b)).filter(|p| !p.is_empty());
    let (Some(method), Some(uri), version, extra) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected METHOD URI RTSP/1.0"));
    };
    let Some(version) = version else {
        return Err(bad("no protocol version"));
    };
    if extra.is_some() {
        return Err(bad("whitespace in the URI or extra fields"));
    }
    check_version(version)?;
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("method is not a token"));
    }
    // A token is ASCII, so this cannot fail; no unwrap on peer data all the same.
    let method = Method::from_token(&String::from_utf8_lossy(method))?;
    let uri = String::from_utf8_lossy(uri).into_owned();
    Ok(StartLine::Request { method, uri })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine> {
    let bad = |reason| Error::BadStatusLine {
        line: context(line),
        reason,
    };
    let split = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
    check_version(&line[..split])?;
    if line.iter().any(|&b| is_ctl(b)) {
        return Err(bad("control character"));
    }
    let rest = trim(&line[split..]);
    let code_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if code_len != 3 || rest.get(3).is_some_and(|&b| !is_ws(b)) {
        return Err(bad("status code is not three digits"));
    }
    let status = rest[..3]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if status < 100 {
        return Err(bad("status code below 100"));
    }
    let reason = String::from_utf8_lossy(trim(&rest[3..])).into_owned();
    Ok(StartLine::Response { status, reason })
}

/// Accepts `RTSP/1.x` (any case of `RTSP`, any minor); anything else is a version error.
fn check_version(version: &[u8]) -> Result<()> {
    let refuse = || Error::Version {
        version: context(version),
    };
    let Some((name, number)) = version.split_at_checked(5) else {
        return Err(refuse());
    };
    if !name.eq_ignore_ascii_case(b"RTSP/") {
        return Err(refuse());
    }
    let Some(dot) = number.iter().position(|&b| b == b'.') else {
        return Err(refuse());
    };
    let (major, minor) = (&number[..dot], &number[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) {
        return Err(refuse());
    }
    let major = &major[major.iter().take_while(|&&b| b == b'0').count()..];
    if major != b"1" {
        return Err(refuse());
    }
    Ok(())
}

fn parse_field(line: &[u8]) -> Result<(String, String)> {
    let bad = |reason| Error::BadHeaderLine {
        line: context(line),
        reason,
    };
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(bad("no colon"));
    };
    let name = trim(&line[..colon]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("header name is not a token"));
    }
    let value = header_text(trim(&line[colon + 1..]), line)?;
    Ok((String::from_utf8_lossy(name).into_owned(), value))
}

/// Header value text: no control characters but HT; bytes that are not UTF-8 become U+FFFD
/// (a stray Latin-1 byte in a `User-Agent` should not cost a viewer the stream).
fn header_text(value: &[u8], line: &[u8]) -> Result<String> {
    if value.iter().any(|&b| is_ctl(b)) {
        return Err(Error::BadHeaderLine {
            line: context(line),
            reason: "control character in the value",
        });
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// Checks a finished field: a `Content-Length` must be decimal digits, agree with any earlier
/// one, and be within [`MAX_BODY`].
fn check_content_length(field: &(String, String), seen: &mut Option<u64>) -> Result<()> {
    let (name, value) = field;
    if !name.eq_ignore_ascii_case("Content-Length") {
        return Ok(());
    }
    let bad = |reason| Error::BadContentLength {
        value: context(value.as_bytes()),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal number"));
    }
    let length = value.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    if seen.is_some_and(|earlier| earlier != length) {
        return Err(bad("two Content-Length headers disagree"));
    }
    if length > MAX_BODY as u64 {
        return Err(Error::BodyTooLarge {
            length,
            limit: MAX_BODY,
        });
    }
    *seen = Some(length);
    Ok(())
}

fn write_fields_and_body(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let name: Vec<u8> = name.bytes().filter(|&b| is_tchar(b)).collect();
        if name.is_empty() {
            continue;
        }
        out.extend_from_slice(&name);
        out.extend_from_slice(b": ");
        push_text(value.as_bytes(), out);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Writes head text with every control character (CR and LF included) replaced by a space.
fn push_text(text: &[u8], out: &mut Vec<u8>) {
    out.extend(text.iter().map(|&b| if is_ctl(b) { b' ' } else { b }));
}

/// RFC 2616 `token` characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Control characters not allowed in a head line (HT is allowed).
fn is_ctl(b: u8) -> bool {
    (b < b' ' && b != b'\t') || b == 0x7f
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}
