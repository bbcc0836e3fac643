//! The one error type of this crate.

/// What went wrong, with enough context to answer the peer with the right status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the parser lands; replaced by precise variants.
    #[error("malformed RTSP: {0}")]
    Malformed(String),
    /// An RTP or RTCP packet that is not what RFC 3550 says (readers only).
    #[error("malformed RTP/RTCP: {0}")]
    Rtp(String),
}

pub type Result<T> = std::result::Result<T, Error>;
