//! How each fixture is made: an ffmpeg command line, bytes made in Rust, or a byte edit of
//! another fixture.
//!
//! Every ffmpeg recipe reads only lavfi sources (`testsrc2` video, `sine` audio), so no input
//! file is needed, and asks for reproducible output: `-threads 1` and single-threaded encoder
//! settings (frame threading makes x264/x265/libvpx decisions depend on timing), `bitexact`
//! flags (no library version strings in headers), `-map_metadata -1`, fixed GOP (25 frames at
//! 25 fps, no scene-cut keyframes). Everything is 320x240, 25 fps, 5 s, stereo 48 kHz.
//!
//! The recipe's [`key`] is stored next to the cached file; when a recipe changes, its key
//! changes and the cached file is remade. Byte edits carry [`EDITS_VERSION`]: bump it when an
//! edit's code changes.

use crate::edits::Edit;
use crate::fixture::Fixture;

/// Bump when the code of an [`Edit`] or of the Rust-made bytes changes, so cached files are
/// remade.
pub(crate) const EDITS_VERSION: u32 = 1;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 25;
const SECONDS: u32 = 5;

pub(crate) enum Recipe {
    /// `ffmpeg <args> <output>`.
    Ffmpeg(Vec<String>),
    /// Bytes made in Rust.
    Bytes(Vec<u8>),
    /// A byte edit of another fixture.
    Derived(Fixture, Edit),
}

pub(crate) fn recipe(f: Fixture) -> Recipe {
    use Fixture::*;
    match f {
        H264AacMoovEnd => ffmpeg(&[440], &[x264(), aac(), fmt("mp4")]),
        H264AacFaststart => ffmpeg(
            &[440],
            &[x264(), aac(), s(&["-movflags", "+faststart"]), fmt("mp4")],
        ),
        H264AacFragmented => ffmpeg(
            &[440],
            &[
                x264(),
                aac(),
                s(&["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]),
                fmt("mp4"),
            ],
        ),
        H264AacTs => ffmpeg(&[440], &[x264(), aac(), fmt("mpegts")]),
        HevcAacMp4 => ffmpeg(&[440], &[x265(), aac(), fmt("mp4")]),
        Vp9OpusWebm => ffmpeg(&[440], &[vp9(), opus(), fmt("webm")]),
        Mpeg4Mp3Avi => ffmpeg(&[440], &[mpeg4(), mp3(), fmt("avi")]),
        H264TwoAacMp4 => ffmpeg(
            &[440, 660],
            &[
                x264(),
                aac(),
                s(&[
                    "-metadata:s:a:0",
                    "language=eng",
                    "-metadata:s:a:1",
                    "language=fra",
                ]),
                fmt("mp4"),
            ],
        ),
        H264SpsOnceTs => Recipe::Derived(H264AacTs, Edit::SpsOnlyOnce),
        H264Mp3Mp4 => ffmpeg(&[440], &[x264(), mp3(), fmt("mp4")]),
        Empty => Recipe::Bytes(Vec::new()),
        RandomBin => Recipe::Bytes(crate::edits::xorshift_bytes(
            0x5EED_F1C5_0000_0001,
            64 * 1024,
        )),
        Text => Recipe::Bytes(TEXT.as_bytes().to_vec()),
        CutBeforeMoov => Recipe::Derived(H264AacMoovEnd, Edit::CutInMdat),
        Timescale0 => Recipe::Derived(H264AacFaststart, Edit::ZeroVideoTimescale),
        GarbageMiddleTs => Recipe::Derived(H264AacTs, Edit::InsertGarbage),
        M2ts192 => Recipe::Derived(H264AacTs, Edit::To192BytePackets),
    }
}

/// A string that changes whenever the bytes the recipe makes would change.
pub(crate) fn key(f: Fixture) -> String {
    match recipe(f) {
        Recipe::Ffmpeg(args) => format!("ffmpeg {}", args.join(" ")),
        Recipe::Bytes(bytes) => format!(
            "bytes v{EDITS_VERSION} len={} fnv1a64={:016x}",
            bytes.len(),
            fnv1a64(&bytes)
        ),
        Recipe::Derived(from, edit) => {
            format!(
                "{edit:?} v{EDITS_VERSION} of {} [{}]",
                from.name(),
                key(from)
            )
        }
    }
}

const TEXT: &str = "Sluice installs video files and streams them to viewers over RTSP, HTTP \
and HLS. This file is not a video: it is a paragraph of plain English text that someone \
might hand to the installer by mistake, perhaps a README saved with the wrong name. A correct \
installer reads the first bytes, finds no container it recognises, and refuses with one clear \
line, leaving the store exactly as it was before.\n";

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn fmt(format: &str) -> Vec<String> {
    s(&["-f", format])
}

/// Inputs (testsrc2 video, one sine per audio track), the stream mapping and the deterministic
/// output flags, then the codec and muxer parts.
fn ffmpeg(audio_hz: &[u32], parts: &[Vec<String>]) -> Recipe {
    let mut a = s(&["-f", "lavfi", "-i"]);
    a.push(format!(
        "testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={SECONDS}"
    ));
    for hz in audio_hz {
        a.extend(s(&["-f", "lavfi", "-i"]));
        a.push(format!(
            "sine=frequency={hz}:sample_rate=48000:duration={SECONDS}"
        ));
    }
    a.extend(s(&["-map", "0:v:0"]));
    for i in 1..=audio_hz.len() {
        a.push("-map".to_owned());
        a.push(format!("{i}:a:0"));
    }
    a.extend(s(&[
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-threads",
        "1",
    ]));
    for p in parts {
        a.extend(p.iter().cloned());
    }
    Recipe::Ffmpeg(a)
}

fn gop() -> Vec<String> {
    s(&["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
}

fn x264() -> Vec<String> {
    let mut a = s(&[
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-crf",
        "28",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "2",
    ]);
    a.extend(gop());
    a.extend(s(&["-x264-params", "threads=1"]));
    a
}

/// Closed GOPs (IDR keyframes, not CRA) and no thread pool.
fn x265() -> Vec<String> {
    s(&[
        "-c:v",
        "libx265",
        "-preset",
        "veryfast",
        "-crf",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-tag:v",
        "hvc1",
        "-x265-params",
        "log-level=error:pools=none:frame-threads=1:keyint=25:min-keyint=25:scenecut=0:open-gop=0:bframes=2",
    ])
}

fn vp9() -> Vec<String> {
    let mut a = s(&[
        "-c:v",
        "libvpx-vp9",
        "-b:v",
        "0",
        "-crf",
        "40",
        "-deadline",
        "good",
        "-cpu-used",
        "4",
        "-row-mt",
        "0",
        "-tile-columns",
        "0",
        "-frame-parallel",
        "0",
        "-pix_fmt",
        "yuv420p",
    ]);
    a.extend(gop());
    a
}

fn mpeg4() -> Vec<String> {
    let mut a = s(&["-c:v", "mpeg4", "-q:v", "10", "-pix_fmt", "yuv420p"]);
    a.extend(gop());
    a
}

fn aac() -> Vec<String> {
    s(&["-c:a", "aac", "-ac", "2", "-b:a", "96k"])
}

fn opus() -> Vec<String> {
    s(&["-c:a", "libopus", "-ac", "2", "-b:a", "64k"])
}

fn mp3() -> Vec<String> {
    s(&["-c:a", "libmp3lame", "-ac", "2", "-b:a", "96k"])
}
