//! ffprobe and ffmpeg as the reference client.
//!
//! The tests never ask the installer what it wrote; they ask ffprobe (durations, streams,
//! keyframe timestamps) and ffmpeg (does it decode, does each playlist play). Both must be on
//! `PATH`; when they are not, the tests fail with the fix (`apt-get install ffmpeg`, or
//! `scripts/test`, which installs it) instead of skipping.

use crate::process::{self, Output};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `name` (`ffmpeg` or `ffprobe`) on `PATH`, or a panic that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    media_fixtures::require_tool(name).unwrap_or_else(|e| {
        panic!("the end-to-end tests need {name} as their reference and cannot run without it: {e}")
    })
}

/// One stream as ffprobe describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// `video`, `audio`, …
    pub codec_type: String,
    /// `h264`, `aac`, …
    pub codec_name: String,
    /// `tags.language` when set.
    pub language: Option<String>,
    /// Stream duration in seconds, when ffprobe knows it.
    pub duration: Option<f64>,
    /// `r_frame_rate` as a number, when it is a proper fraction.
    pub frame_rate: Option<f64>,
}

/// A file as ffprobe describes it (`-show_format -show_streams`).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub format_name: String,
    /// `format.duration` in seconds.
    pub duration: Option<f64>,
    pub streams: Vec<Stream>,
}

impl Probe {
    /// The audio and video streams, in file order.
    pub fn av_streams(&self) -> Vec<&Stream> {
        self.streams
            .iter()
            .filter(|s| s.codec_type == "video" || s.codec_type == "audio")
            .collect()
    }

    /// The first video stream's frame rate.
    /// Codec names of the audio and video streams, in order.
    pub fn codecs(&self) -> Vec<&str> {
        self.av_streams()
            .iter()
            .map(|s| s.codec_name.as_str())
            .collect()
    }

    pub fn video_frame_rate(&self) -> Option<f64> {
        self.streams
            .iter()
            .find(|s| s.codec_type == "video")
            .and_then(|s| s.frame_rate)
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn fraction(v: &Value) -> Option<f64> {
    let (n, d) = v.as_str()?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

fn ffprobe_json(args: &[&str], file: &Path) -> Value {
    let out = process::run(Command::new(tool("ffprobe")).args(args).arg(file));
    assert!(out.success(), "ffprobe failed\n{out}");
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe printed something that is not JSON ({e})\n{out}"))
}

/// `ffprobe -show_format -show_streams` of `file`.
pub fn probe(file: &Path) -> Probe {
    let v = ffprobe_json(
        &[
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ],
        file,
    );
    let streams = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| Stream {
                    codec_type: s["codec_type"].as_str().unwrap_or_default().to_owned(),
                    codec_name: s["codec_name"].as_str().unwrap_or_default().to_owned(),
                    language: s["tags"]["language"].as_str().map(str::to_owned),
                    duration: num(&s["duration"]),
                    frame_rate: fraction(&s["r_frame_rate"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Probe {
        format_name: v["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        duration: num(&v["format"]["duration"]),
        streams,
    }
}

/// The PTS (in the stream's time base, 90 kHz for MPEG-TS) of every keyframe packet of the first
/// video stream, in file order: the packets of
/// `ffprobe -select_streams v:0 -show_packets -show_entries packet=pts,flags` whose flags contain
/// `K` (read as JSON rather than CSV because ffprobe appends side data to CSV rows).
pub fn keyframe_pts(file: &Path) -> Vec<i64> {
    let v = ffprobe_json(
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_packets",
            "-show_entries",
            "packet=pts,flags",
            "-of",
            "json",
        ],
        file,
    );
    v["packets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["flags"].as_str().is_some_and(|f| f.contains('K')))
                .map(|p| {
                    p["pts"].as_i64().unwrap_or_else(|| {
                        panic!(
                            "ffprobe shows a keyframe without a PTS in {}: {p}",
                            file.display()
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `ffmpeg -v error -i FILE -f null -`: decodes every stream; a clean file prints nothing.
pub fn decode(file: &Path) -> Output {
    process::run(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"]),
    )
}

/// `ffmpeg -v error -i FILE -c copy -f null -`: reads every packet (for a playlist: every
/// segment it names) without decoding; a clean input prints nothing.
pub fn copy_through(file: &Path) -> Output {
    process::run(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args(["-c", "copy", "-f", "null", "-"]),
    )
}

/// Encode `secs` seconds of noisy 720p H.264 (6 Mbit/s, a keyframe every 2 s) with AAC into
/// `out` (the container from its extension): a clip of about `secs` × 750 KB whose keyframes
/// are large, for tests that need more bytes than the small fixtures have. Panics with
/// ffmpeg's output if it fails.
pub fn encode_noisy_720p(out: &std::path::Path, secs: u32) {
    let enc = crate::process::run(
        std::process::Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=1280x720:rate=25:duration={secs}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=duration={secs}"))
            .args(["-vf", "noise=alls=20:allf=t", "-c:v", "libx264"])
            .args(["-preset", "ultrafast", "-b:v", "6M", "-maxrate", "6M"])
            .args(["-bufsize", "3M", "-g", "50", "-c:a", "aac", "-shortest"])
            .arg(out),
    );
    assert!(enc.success(), "encoding {} failed\n{enc}", out.display());
}
