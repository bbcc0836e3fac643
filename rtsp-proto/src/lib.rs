//! Sans-IO RTSP 1.0 (RFC 2326) for Sluice: the wire formats, with no sockets, clocks or tasks.
//!
//! Why a crate of its own: the server (`streamer`), our test client (`tests`) and the RTSP load
//! generator (`benches`) all speak the same messages, and the fuzz target for the parser should
//! build without tokio, hyper and io_uring behind it.
//!
//! - [`message`]: requests, responses and `$`-interleaved binary frames, parsed from a byte
//!   buffer that may hold several pipelined messages or half of one; strict serialisation.
//! - [`headers`]: the typed headers stream control needs (`Transport`, `Range: npt=`, `Scale`,
//!   `Session`, `RTP-Info`), accepted liberally, written strictly.
//! - [`rtp`]: RTP headers (RFC 3550) for MPEG-TS payloads (RFC 2250) and RTCP sender reports
//!   and BYE.
//! - [`sdp`]: the session description DESCRIBE returns.

pub mod error;
pub mod headers;
pub mod message;
pub mod rtp;
pub mod sdp;

pub use error::{Error, Result};
