//! The per-track plan: what happens to each track and why.
//!
//! Our TS carries, for the target clients (VLC, ffplay, GStreamer, browsers through HLS):
//! H.264 and H.265 video (with parameter sets before every keyframe), AAC in ADTS, MP3/MPEG
//! audio, AC-3 and E-AC-3. Everything else (VP8/VP9, AV1, MPEG-4 Part 2, MPEG-2 video, Opus,
//! Vorbis, FLAC, PCM…) is transcoded by ffmpeg to H.264/AAC. MPEG-2 video is transcoded too
//! although TS can carry it: our index finds keyframes in H.264/H.265 only, and seek and trick
//! play depend on the index.

use crate::source::Container;
use media::model::{Codec, TrackKind};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The elementary stream goes into our TS unchanged.
    Pass,
    /// Same codec, rewrapped (length-prefixed → Annex B, raw AAC → ADTS, parameter sets added).
    Remux,
    /// ffmpeg re-encodes it to H.264 or AAC.
    Transcode,
    /// Not carried (subtitles, data, extra video tracks).
    Drop,
}

/// Stream type and PES stream id we write for a codec we carry.
pub fn stream_type(codec: &Codec) -> Option<(u8, u8)> {
    use media::ts::pes::{STREAM_ID_AUDIO, STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO};
    Some(match codec {
        Codec::H264 => (0x1B, STREAM_ID_VIDEO),
        Codec::H265 => (0x24, STREAM_ID_VIDEO),
        Codec::Aac => (0x0F, STREAM_ID_AUDIO),
        Codec::MpegAudio => (0x03, STREAM_ID_AUDIO),
        Codec::Ac3 => (0x81, STREAM_ID_PRIVATE_1),
        Codec::Eac3 => (0x87, STREAM_ID_PRIVATE_1),
        _ => return None,
    })
}

/// What the analysis knows about a video track's keyframes, for the reason text.
#[derive(Debug, Clone, Copy, Default)]
pub struct VideoFacts {
    /// Parameter sets present in front of every keyframe already.
    pub ps_every_keyframe: bool,
}

/// Decide one track. `first_video` is false for second and later video tracks (dropped: one
/// video per content keeps the index and trick play unambiguous).
pub fn decide(
    container: Container,
    kind: TrackKind,
    codec: &Codec,
    first_video: bool,
    facts: VideoFacts,
) -> (Action, String) {
    let name = codec.name();
    if kind == TrackKind::Other {
        return (
            Action::Drop,
            format!("{name}: only video and audio tracks are carried"),
        );
    }
    if kind == TrackKind::Video && !first_video {
        return (
            Action::Drop,
            "a content carries one video track; this is not the first".into(),
        );
    }
    let carried = stream_type(codec).is_some();
    let via_ffmpeg = !matches!(container, Container::Mp4 | Container::Mpegts);
    if !carried {
        let target = if kind == TrackKind::Video {
            "H.264"
        } else {
            "AAC"
        };
        return (
            Action::Transcode,
            format!(
                "{name} cannot be streamed in our MPEG-TS to the target players: ffmpeg re-encodes it to {target}"
            ),
        );
    }
    if via_ffmpeg {
        return (
            Action::Pass,
            format!(
                "{name} streams as it is; ffmpeg copies it out of the {} container",
                container.name()
            ),
        );
    }
    match (container, codec) {
        (Container::Mp4, Codec::H264 | Codec::H265) => (
            Action::Remux,
            format!(
                "{name}: length-prefixed NAL units to Annex B, parameter sets put in front of every keyframe"
            ),
        ),
        (Container::Mp4, Codec::Aac) => (Action::Remux, "aac: raw frames get ADTS headers".into()),
        (Container::Mpegts, Codec::H264 | Codec::H265) if !facts.ps_every_keyframe => (
            Action::Remux,
            format!(
                "{name}: parameter sets missing before some keyframes: inserted before every keyframe"
            ),
        ),
        _ => (Action::Pass, format!("{name} streams as it is")),
    }
}

/// RFC 6381 codec string for the master playlist, from what we know.
pub fn rfc6381(
    codec: &Codec,
    avc_profile_level: Option<[u8; 3]>,
    aac_object_type: Option<u8>,
) -> Option<String> {
    match codec {
        Codec::H264 => Some(match avc_profile_level {
            Some([p, c, l]) => format!("avc1.{p:02x}{c:02x}{l:02x}"),
            None => "avc1.640028".into(),
        }),
        Codec::H265 => Some("hvc1.1.6.L93.B0".into()),
        Codec::Aac => Some(format!("mp4a.40.{}", aac_object_type.unwrap_or(2))),
        Codec::MpegAudio => Some("mp4a.40.34".into()),
        Codec::Ac3 => Some("ac-3".into()),
        Codec::Eac3 => Some("ec-3".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let f = VideoFacts::default();
        assert_eq!(
            decide(Container::Mp4, TrackKind::Video, &Codec::H264, true, f).0,
            Action::Remux
        );
        assert_eq!(
            decide(Container::Mpegts, TrackKind::Audio, &Codec::Aac, true, f).0,
            Action::Pass
        );
        assert_eq!(
            decide(
                Container::Matroska,
                TrackKind::Video,
                &Codec::Other("vp9".into()),
                true,
                f
            )
            .0,
            Action::Transcode
        );
        assert_eq!(
            decide(Container::Matroska, TrackKind::Audio, &Codec::Aac, true, f).0,
            Action::Pass
        );
        assert_eq!(
            decide(Container::Mp4, TrackKind::Video, &Codec::H264, false, f).0,
            Action::Drop
        );
        let ps = VideoFacts {
            ps_every_keyframe: true,
        };
        assert_eq!(
            decide(Container::Mpegts, TrackKind::Video, &Codec::H264, true, ps).0,
            Action::Pass
        );
        assert_eq!(
            decide(Container::Mpegts, TrackKind::Video, &Codec::H264, true, f).0,
            Action::Remux
        );
    }
}
