//! Codec helpers: NAL unit handling for H.264/H.265 and AAC/ADTS framing.
//!
//! - [`nal`]: Annex B and length-prefixed NAL iteration.
//! - [`video`]: rewriting access units for MPEG-TS: Annex B, an access unit delimiter, and
//!   parameter sets in front of every random-access picture (inserted where the source had them
//!   only once), with keyframe and open-GOP detection.
//! - [`aac`]: AudioSpecificConfig parsing and ADTS headers.

pub mod aac;
pub mod h264;
pub mod nal;
pub mod video;
