//! MPEG-TS (ISO/IEC 13818-1).
//!
//! - [`demux`]: the reader: streams of the first program and their PES frames in file order,
//!   with continuity, PCR and error accounting.
//! - [`stream_type`]: PMT stream_type and descriptors to codec.
//! - [`framing`]: packets out of real-world bytes (188/192/204-byte strides, resync).
//! - [`packet`]: one packet's header, adaptation field and PCR.
//! - [`mux`]: our own muxer state (continuity counters, PCR cadence, PAT/PMT repetition, PES
//!   splitting), because stateless writers get reserved bits and cadence wrong.
//! - [`trick`]: trick play (RTSP `Scale`): which keyframes to send, and their spans rewritten
//!   into one continuous, re-stamped, video-only stream.

pub mod demux;
pub mod framing;
pub mod mux;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod stream_type;
pub mod trick;
