//! RTSP 1.0 video on demand: MPEG-TS over RTP (RFC 2250), UDP or TCP interleaved, with seek
//! (`Range: npt=`) and trick play (`Scale`).
//!
//! - [`server`]: listener, shared RTP/RTCP sockets, session table, timeouts.
//! - [`conn`]: one connection: parse, answer in order, one bounded write queue.
//! - [`methods`]: what each method does and which status it answers.
//! - [`session`]: a session's state and liveness.
//! - [`player`]: the data path of one session: storage reads, RTP, PCR pacing, RTCP.
//! - [`pacer`]: sans-IO PCR pacing.
//! - [`pump`]: the thread that sends every session's packets on time, batched.
//! - [`url`]: which content a URL names.
//!
//! The wire formats (messages, headers, SDP, RTP/RTCP) are the sans-IO crate `rtsp-proto`.

pub mod conn;
pub mod methods;
pub mod pacer;
pub mod player;
pub mod pump;
pub mod server;
pub mod session;
pub mod url;

pub use server::{RtspConfig, RtspServer};
