//! The vocabulary shared by every reader and writer: tracks, codecs, codec configuration and
//! timed frames. Readers (MP4, TS) produce it; the TS muxer and the installer consume it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
    Other,
}

/// Codecs we recognise. Anything else is `Other` with the name the container gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    H264,
    H265,
    Mpeg2Video,
    Aac,
    /// MPEG-1/2 audio layer 1-3 (MP3 is layer 3).
    MpegAudio,
    Ac3,
    Eac3,
    Other(String),
}

impl Codec {
    pub fn name(&self) -> &str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
            Codec::Mpeg2Video => "mpeg2video",
            Codec::Aac => "aac",
            Codec::MpegAudio => "mp3",
            Codec::Ac3 => "ac3",
            Codec::Eac3 => "eac3",
            Codec::Other(s) => s,
        }
    }

    pub fn kind(&self) -> TrackKind {
        match self {
            Codec::H264 | Codec::H265 | Codec::Mpeg2Video => TrackKind::Video,
            Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => TrackKind::Audio,
            Codec::Other(_) => TrackKind::Other,
        }
    }
}

/// Out-of-band codec configuration (what an MP4 sample entry carries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CodecConfig {
    /// In-band only (TS input) or nothing needed.
    #[default]
    None,
    /// `avcC`: NAL length size and parameter sets.
    Avc {
        nal_length_size: u8,
        sps: Vec<Vec<u8>>,
        pps: Vec<Vec<u8>>,
    },
    /// `hvcC`: NAL length size and parameter sets.
    Hevc {
        nal_length_size: u8,
        vps: Vec<Vec<u8>>,
        sps: Vec<Vec<u8>>,
        pps: Vec<Vec<u8>>,
    },
    /// AAC AudioSpecificConfig, decoded.
    Aac {
        /// MPEG-4 audio object type (2 = AAC-LC).
        object_type: u8,
        sample_rate_index: u8,
        channel_config: u8,
    },
}

/// What we know about a track, from whichever container it came.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TrackInfo {
    /// Track id in the source (MP4 track_ID, TS PID).
    pub id: u32,
    pub kind: Option<TrackKind>,
    pub codec: Option<Codec>,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub language: Option<String>,
    /// Duration in 90 kHz ticks.
    pub duration_90k: Option<u64>,
}

/// One access unit (video frame or audio frame/group) with 90 kHz timestamps.
///
/// Timestamps are signed and unwrapped (64-bit): MP4 edit lists may produce negative times and
/// TS input may cross the 33-bit wrap; the muxer shifts and wraps them on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<D = Vec<u8>> {
    pub pts: i64,
    pub dts: i64,
    /// Random access point: IDR/CRA for video; always true for audio.
    pub keyframe: bool,
    pub data: D,
}
