//! Sans-IO HTTP/1.1 for the streamer: a request head parsed from bytes, validated before any
//! work is done, and the `Range` header.
//!
//! - [`request::parse`] turns the bytes a connection has read into a request head, "need more
//!   bytes", or a precise [`Error`] naming the status to refuse with (414, 431, 413, 501, 400)
//!   and a short reason for the `refused` metric. Size limits are enforced while the head is
//!   still arriving, so an oversized request never buffers more than [`request::MAX_HEAD`].
//! - [`target::normalise`] turns a request target into the decoded path the router sees, and
//!   refuses (rather than resolves) anything that could name something else: `.`/`..` segments
//!   in any encoding, encoded separators, backslashes, double encoding, non-ASCII bytes (so
//!   overlong UTF-8 never decodes to `.` or `/`), control bytes and NUL, empty segments, and
//!   absolute-form targets naming another host. The RTSP server uses the same path rules.
//! - [`range::parse_range`] reads a `Range` header for an entity of a known size.
//! - [`auth::parse`] reads an `Authorization` header (Basic, Digest, Bearer), for HTTP and RTSP.
//!
//! No sockets, clocks or async here: the connection handler (`streamer/src/http1.rs`) feeds
//! bytes in and acts on the result, and the fuzz targets `http_request` and `http_range` feed
//! arbitrary bytes to the same functions.

pub mod auth;
pub mod range;
pub mod request;
pub mod target;

/// Why a request is refused: each maps to one status and one metric reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("request line longer than {limit} bytes")]
    RequestLineTooLong { limit: usize },
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("header line {name:?} longer than {limit} bytes")]
    HeaderTooLarge { name: String, limit: usize },
    #[error("more than {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("HTTP version not supported")]
    Version,
    #[error("method {0:?} is not implemented")]
    UnknownMethod(String),
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
    #[error("request body of {len} bytes is larger than {limit}")]
    BodyTooLarge { len: u64, limit: u64 },
    #[error("chunked request bodies are not accepted")]
    Chunked,
    #[error("request target {0:?} is not a path on this server")]
    BadTarget(String),
    #[error("request target names another host {0:?}")]
    ForeignHost(String),
    #[error("`.` or `..` segment in the path")]
    Traversal,
    #[error("empty segment in the path")]
    EmptySegment,
    #[error("backslash in the path")]
    Backslash,
    #[error("percent-encoded separator in the path")]
    EncodedSeparator,
    #[error("double percent-encoding in the path")]
    DoubleEncoding,
    #[error("bad percent-escape in the path")]
    BadEscape,
    #[error("non-ASCII byte in the path")]
    NonAscii,
    #[error("NUL byte in the path")]
    Nul,
    #[error("control character in the path")]
    ControlChar,
    #[error("character {0:?} not allowed in a path")]
    BadChar(char),
    #[error("malformed Authorization header: {0}")]
    BadCredentials(String),
}

impl Error {
    /// The HTTP status to refuse with.
    pub fn status(&self) -> u16 {
        match self {
            Error::RequestLineTooLong { .. } => 414,
            Error::HeadTooLarge { .. }
            | Error::HeaderTooLarge { .. }
            | Error::TooManyHeaders { .. } => 431,
            Error::Version => 505,
            Error::UnknownMethod(_) | Error::Chunked => 501,
            Error::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A short label for the `refused` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::RequestLineTooLong { .. } => "request_line_too_long",
            Error::HeadTooLarge { .. } => "head_too_large",
            Error::HeaderTooLarge { .. } => "header_too_large",
            Error::TooManyHeaders { .. } => "too_many_headers",
            Error::Malformed(_) => "malformed",
            Error::Version => "version",
            Error::UnknownMethod(_) => "unknown_method",
            Error::BadContentLength(_) => "bad_content_length",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::Chunked => "chunked_body",
            Error::BadTarget(_) => "bad_target",
            Error::ForeignHost(_) => "foreign_host",
            Error::Traversal => "traversal",
            Error::EmptySegment => "empty_segment",
            Error::Backslash => "backslash",
            Error::EncodedSeparator => "encoded_separator",
            Error::DoubleEncoding => "double_encoding",
            Error::BadEscape => "bad_escape",
            Error::NonAscii => "non_ascii",
            Error::Nul => "nul",
            Error::ControlChar => "control_char",
            Error::BadChar(_) => "bad_char",
            Error::BadCredentials(_) => "bad_credentials",
        }
    }
}
