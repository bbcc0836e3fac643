//! Real files: ffmpeg writes them at test time, ffprobe is the oracle for every sample.
//!
//! Each test encodes four seconds of test pattern and tone (H.264 with two B-frames or H.265,
//! AAC) in one of the layouts real files come in, parses it, and compares every video and audio
//! sample with `ffprobe -show_packets`: same count, size, file position, keyframe flag, and the
//! same DTS/PTS once both are in 90 kHz. ffprobe applies the edit list the way we do (the first
//! DTS of a B-frame stream is negative, AAC priming puts the first audio PTS below zero), and
//! its time base for MP4 streams is the track timescale.
//!
//! ffmpeg/ffprobe are required: the project's test command installs them (DESIGN.md section 4),
//! and a missing binary fails these tests with a message rather than skipping them.

use super::{Movie, Track, parse};
use crate::model::{Codec, CodecConfig, TrackKind};
use crate::time::{HZ_90K, rescale};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("sluice-mp4-ffprobe-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not on PATH: these tests need ffmpeg and ffprobe (Debian package `ffmpeg`)"
    );
}

/// Encodes the test clip to `dir/name.mp4` with the given video codec arguments and extra
/// muxer arguments.
fn encode(dir: &Path, name: &str, video: &[&str], extra: &[&str]) -> PathBuf {
    require("ffmpeg");
    let out = dir.join(format!("{name}.mp4"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-y", "-v", "error", "-nostdin"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4"])
        .args(video)
        .args(["-c:a", "aac"])
        .args(extra)
        .arg(&out);
    let result = cmd.output().expect("run ffmpeg");
    assert!(
        result.status.success(),
        "ffmpeg failed for {name}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

const H264: &[&str] = &["-c:v", "libx264", "-g", "25", "-bf", "2"];
const H265_HVC1: &[&str] = &[
    "-c:v",
    "libx265",
    "-x265-params",
    "log-level=error",
    "-tag:v",
    "hvc1",
];
const H265_DEFAULT: &[&str] = &["-c:v", "libx265", "-x265-params", "log-level=error"];

/// One packet as ffprobe reports it (times in the stream time base = track timescale).
#[derive(Debug)]
struct Packet {
    pts: i64,
    dts: i64,
    size: u32,
    pos: u64,
    keyframe: bool,
}

fn ffprobe(file: &Path, stream: &str) -> Vec<Packet> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_packets"])
        .args(["-show_entries", "packet=pts,dts,flags,pos,size"])
        .args(["-of", "csv=p=0:nk=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ffprobe output is UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let field = |key: &str| -> &str {
                line.split(',')
                    .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                    .unwrap_or_else(|| panic!("no {key} in ffprobe line {line:?}"))
            };
            let num = |key: &str| -> i64 {
                field(key)
                    .parse()
                    .unwrap_or_else(|_| panic!("bad {key} in ffprobe line {line:?}"))
            };
            Packet {
                pts: num("pts"),
                dts: num("dts"),
                size: num("size") as u32,
                pos: num("pos") as u64,
                keyframe: field("flags").contains('K'),
            }
        })
        .collect()
}

fn to_90k(ticks: i64, timescale: u32) -> i64 {
    rescale(ticks, timescale, HZ_90K as u32).expect("rescale")
}

/// Every sample of `track` against ffprobe's packets of `stream`.
fn compare(file: &Path, track: &Track, stream: &str) {
    let packets = ffprobe(file, stream);
    let id = track.info.id;
    assert_eq!(
        track.samples.len(),
        packets.len(),
        "track {id}: sample count vs ffprobe"
    );
    for (i, (s, p)) in track.samples.iter().zip(&packets).enumerate() {
        assert_eq!(s.size, p.size, "track {id} sample {i}: size");
        assert_eq!(s.offset, p.pos, "track {id} sample {i}: offset");
        assert_eq!(s.keyframe, p.keyframe, "track {id} sample {i}: keyframe");
        assert_eq!(
            s.dts,
            to_90k(p.dts, track.timescale),
            "track {id} sample {i}: dts ({} in 1/{})",
            p.dts,
            track.timescale
        );
        assert_eq!(
            s.pts,
            to_90k(p.pts, track.timescale),
            "track {id} sample {i}: pts ({} in 1/{})",
            p.pts,
            track.timescale
        );
    }
}

fn track_of(movie: &Movie, kind: TrackKind) -> &Track {
    movie
        .tracks
        .iter()
        .find(|t| t.info.kind == Some(kind))
        .unwrap_or_else(|| panic!("no {kind:?} track"))
}

/// Parses `file`, checks what every layout shares, compares both tracks with ffprobe.
fn check(file: &Path, video_codec: Codec) -> Movie {
    let bytes = std::fs::read(file).expect("read encoded file");
    let movie = parse(&bytes).expect("parse");
    assert_eq!(movie.tracks.len(), 2);

    let v = track_of(&movie, TrackKind::Video);
    assert_eq!(v.info.codec, Some(video_codec));
    assert_eq!((v.info.width, v.info.height), (Some(320), Some(240)));
    assert_eq!(v.info.frame_rate, Some(25.0));
    assert_eq!(v.samples.len(), 100);
    assert!(v.samples[0].keyframe);
    assert!(v.samples.iter().any(|s| s.pts != s.dts), "B-frames reorder");

    let a = track_of(&movie, TrackKind::Audio);
    assert_eq!(a.info.codec, Some(Codec::Aac));
    assert_eq!(a.info.profile.as_deref(), Some("LC"));
    assert_eq!(a.info.sample_rate, Some(48_000));
    assert_eq!(a.info.channels, Some(1));
    assert_eq!(
        a.config,
        CodecConfig::Aac {
            object_type: 2,
            sample_rate_index: 3,
            channel_config: 1
        }
    );

    // Four seconds, give or take a frame and the audio padding.
    let secs = movie.duration_90k as f64 / HZ_90K as f64;
    assert!((3.9..4.2).contains(&secs), "duration {secs} s");

    compare(file, v, "v:0");
    compare(file, a, "a:0");
    movie
}

/// The encoder wrote the sample entry type the test is about.
fn assert_sample_entry(file: &Path, kind: &[u8; 4]) {
    let bytes = std::fs::read(file).expect("read encoded file");
    assert!(
        bytes.windows(4).any(|w| w == kind),
        "ffmpeg did not write a '{}' sample entry",
        String::from_utf8_lossy(kind)
    );
}

#[test]
fn h264_moov_at_end() {
    let dir = Scratch::new("h264-end");
    let file = encode(&dir.0, "end", H264, &[]);
    let movie = check(&file, Codec::H264);
    assert!(!movie.moov_before_mdat);
    assert!(!movie.fragmented);
    let v = track_of(&movie, TrackKind::Video);
    assert_eq!(v.info.profile.as_deref(), Some("High"));
    let CodecConfig::Avc {
        nal_length_size,
        sps,
        pps,
    } = &v.config
    else {
        panic!("avcC expected, got {:?}", v.config);
    };
    assert_eq!(*nal_length_size, 4);
    assert_eq!((sps.len(), pps.len()), (1, 1));
    assert_eq!(sps[0].first().map(|b| b & 0x1F), Some(7), "SPS NAL type");
    // -bf 2: the edit list moves the first DTS two frames below zero
    assert_eq!(v.samples[0].dts, -7200);
    assert_eq!(v.samples[0].pts, 0);
    // -g 25: a keyframe every second
    let keys: Vec<usize> = (0..v.samples.len())
        .filter(|&i| v.samples[i].keyframe)
        .collect();
    assert_eq!(keys, vec![0, 25, 50, 75]);
}

#[test]
fn h264_faststart() {
    let dir = Scratch::new("h264-faststart");
    let file = encode(&dir.0, "fast", H264, &["-movflags", "+faststart"]);
    let movie = check(&file, Codec::H264);
    assert!(movie.moov_before_mdat);
    assert!(!movie.fragmented);
}

#[test]
fn h264_fragmented() {
    let dir = Scratch::new("h264-frag");
    let file = encode(
        &dir.0,
        "frag",
        H264,
        &["-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
    );
    let movie = check(&file, Codec::H264);
    assert!(movie.fragmented);
    assert!(movie.moov_before_mdat);
}

#[test]
fn h265_hvc1() {
    let dir = Scratch::new("h265-hvc1");
    let file = encode(&dir.0, "hvc1", H265_HVC1, &[]);
    assert_sample_entry(&file, b"hvc1");
    let movie = check(&file, Codec::H265);
    let v = track_of(&movie, TrackKind::Video);
    assert_eq!(v.info.profile.as_deref(), Some("Main"));
    let CodecConfig::Hevc { vps, sps, pps, .. } = &v.config else {
        panic!("hvcC expected, got {:?}", v.config);
    };
    assert_eq!((vps.len(), sps.len(), pps.len()), (1, 1, 1));
}

#[test]
fn h265_hev1_default_tag() {
    let dir = Scratch::new("h265-hev1");
    let file = encode(&dir.0, "hev1", H265_DEFAULT, &[]);
    assert_sample_entry(&file, b"hev1");
    let movie = check(&file, Codec::H265);
    let v = track_of(&movie, TrackKind::Video);
    assert!(matches!(v.config, CodecConfig::Hevc { ref sps, .. } if sps.len() == 1));
}
