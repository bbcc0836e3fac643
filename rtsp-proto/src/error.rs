//! The one error type of this crate.
//!
//! Why one type with precise variants: the RTSP server must answer every bad request with the
//! right status code (a client that sent an unusable `Range` needs 457, not a dropped
//! connection), and an operator reading a log needs to see *what* was wrong. So each variant
//! carries the offending text (shortened to [`CONTEXT_LIMIT`] bytes, so that a hostile peer
//! cannot make our logs or errors large) and [`Error::status`] maps it to the status code a
//! server should reply with. "Need more bytes" is not an error: the parser answers `Ok(None)`.

/// Longest piece of peer-supplied text an error keeps as context.
pub const CONTEXT_LIMIT: usize = 80;

/// What went wrong, with enough context to answer the peer with the right status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request line (or a response's status line) is longer than
    /// [`MAX_REQUEST_LINE`](crate::message::MAX_REQUEST_LINE). Answer 414.
    #[error("RTSP start line longer than {limit} bytes (at least {length} bytes)")]
    StartLineTooLong { length: usize, limit: usize },

    /// The message head (start line, headers and the blank line) is longer than
    /// [`MAX_HEAD`](crate::message::MAX_HEAD). Answer 413 (RTSP 1.0 has no 431).
    #[error("RTSP message head longer than {limit} bytes")]
    HeadTooLarge { limit: usize },

    /// More header fields than [`MAX_HEADERS`](crate::message::MAX_HEADERS). Answer 413.
    #[error("more than {limit} RTSP header fields")]
    TooManyHeaders { limit: usize },

    /// `Content-Length` larger than [`MAX_BODY`](crate::message::MAX_BODY). Answer 413.
    #[error("RTSP body of {length} bytes is larger than the limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },

    /// A protocol version other than RTSP/1.x (for example `RTSP/2.0` or `HTTP/1.1`).
    /// Answer 505.
    #[error("unsupported protocol version {version:?} (only RTSP/1.0 is spoken)")]
    Version { version: String },

    /// The request line is not `METHOD SP URI SP RTSP/1.0`. Answer 400.
    #[error("malformed RTSP request line {line:?}: {reason}")]
    BadRequestLine { line: String, reason: &'static str },

    /// The status line is not `RTSP/1.0 SP 3DIGIT SP reason`. Answer 400.
    #[error("malformed RTSP status line {line:?}: {reason}")]
    BadStatusLine { line: String, reason: &'static str },

    /// A header line that is not `name: value`, a bad name, or control characters. Answer 400.
    #[error("malformed RTSP header line {line:?}: {reason}")]
    BadHeaderLine { line: String, reason: &'static str },

    /// A `Content-Length` that is not a plain decimal number, or two that disagree. Answer 400.
    #[error("bad Content-Length {value:?}: {reason}")]
    BadContentLength { value: String, reason: &'static str },

    /// A typed header (`Transport`, `Scale`, `Session`, `RTP-Info`, `CSeq`, ...) whose value
    /// is syntactically broken. Answer 400.
    #[error("bad {header} header {value:?}: {reason}")]
    BadHeaderValue {
        header: &'static str,
        value: String,
        reason: &'static str,
    },

    /// A `Range` the server cannot honour: not `npt=`, negative, NaN, `end < start`, minutes
    /// or seconds out of range. Answer 457 Invalid Range (RFC 2326 11.3.9), also for the
    /// units we do not implement (`clock=`, `smpte=`): the client may retry with `npt=`,
    /// which a 501 would not suggest.
    #[error("invalid Range {value:?}: {reason}")]
    InvalidRange { value: String, reason: &'static str },

    /// No transport the server can use was offered. The parser does not return this (an
    /// empty list is its answer); the server may use it to answer 461.
    #[error("unsupported transport {value:?}")]
    UnsupportedTransport { value: String },

    /// An RTP or RTCP packet that is not what RFC 3550 says (readers only: our test client
    /// and load generator). Never answered with a status.
    #[error("malformed RTP/RTCP: {0}")]
    Rtp(String),
}

impl Error {
    /// The RTSP status code a server should answer this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::StartLineTooLong { .. } => 414,
            Error::HeadTooLarge { .. } | Error::TooManyHeaders { .. } => 413,
            Error::BodyTooLarge { .. } => 413,
            Error::Version { .. } => 505,
            Error::BadRequestLine { .. }
            | Error::BadStatusLine { .. }
            | Error::BadHeaderLine { .. }
            | Error::BadContentLength { .. }
            | Error::BadHeaderValue { .. } => 400,
            Error::InvalidRange { .. } => 457,
            Error::UnsupportedTransport { .. } => 461,
            Error::Rtp(_) => 400,
        }
    }

    /// Whether the connection can go on after this error. Errors in the framing (start line,
    /// head, lengths) leave the byte stream at an unknown position: reply, then close. Errors
    /// in a typed header value come after the message was framed correctly.
    pub fn is_fatal_to_connection(&self) -> bool {
        !matches!(
            self,
            Error::BadHeaderValue { .. }
                | Error::InvalidRange { .. }
                | Error::UnsupportedTransport { .. }
        )
    }
}

/// Peer text for an error: lossy UTF-8, at most [`CONTEXT_LIMIT`] bytes, a split char shown as U+FFFD.
pub(crate) fn context(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(CONTEXT_LIMIT)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > CONTEXT_LIMIT {
        s.push('…');
    }
    s
}

/// [`context`] for text already in a `&str`.
pub(crate) fn context_str(s: &str) -> String {
    context(s.as_bytes())
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_bounded_and_never_splits_a_char() {
        let long = "é".repeat(100);
        let c = context_str(&long);
        assert!(c.len() <= CONTEXT_LIMIT + '…'.len_utf8() + 3);
        assert!(c.ends_with('…'));
        assert_eq!(context(b"short"), "short");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            Error::Version {
                version: "RTSP/2.0".into()
            }
            .status(),
            505
        );
        assert_eq!(
            Error::BodyTooLarge {
                length: 1 << 20,
                limit: 1
            }
            .status(),
            413
        );
        assert_eq!(
            Error::StartLineTooLong {
                length: 9000,
                limit: 8192
            }
            .status(),
            414
        );
        assert_eq!(
            Error::InvalidRange {
                value: "clock=x".into(),
                reason: "unit"
            }
            .status(),
            457
        );
        assert_eq!(
            Error::UnsupportedTransport {
                value: "RAW/RAW/UDP".into()
            }
            .status(),
            461
        );
    }
}
