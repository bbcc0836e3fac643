//! The ffmpeg step: describing containers we do not parse (ffprobe) and re-encoding the tracks
//! our TS cannot carry (ffmpeg → H.264/AAC in MPEG-TS, which our remuxer then rewrites and
//! indexes like any TS source). ffmpeg is found on the PATH; without it, a clear error.

use crate::analyse::Analysis;
use crate::plan::Action;
use crate::{InstallError, Result};
use media::model::{Codec, TrackInfo, TrackKind};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Keyframe interval we ask x264 for, seconds: seek and trick play granularity.
pub const KEYFRAME_INTERVAL_S: u32 = 2;

pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn tool(name: &str, what: &str) -> Result<PathBuf> {
    find_tool(name).ok_or_else(|| InstallError::FfmpegMissing { what: what.into() })
}

/// Codec as we name it, from ffprobe's codec_name.
pub fn codec_from_ffprobe(name: &str) -> Codec {
    match name {
        "h264" => Codec::H264,
        "hevc" => Codec::H265,
        "aac" => Codec::Aac,
        "mp3" | "mp2" | "mp1" => Codec::MpegAudio,
        "ac3" => Codec::Ac3,
        "eac3" => Codec::Eac3,
        "mpeg2video" => Codec::Mpeg2Video,
        other => Codec::Other(other.to_string()),
    }
}

pub struct Probe {
    pub duration: f64,
    pub tracks: Vec<TrackInfo>,
}

/// Describe a file with ffprobe (containers we do not parse ourselves).
pub fn ffprobe(path: &Path, what: &str) -> Result<Probe> {
    let bin = tool("ffprobe", what)?;
    let v = ffprobe_json(&bin, path, &["-show_streams", "-show_format"])?;
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let duration = num(&v["format"]["duration"]).unwrap_or(0.0);
    let mut tracks = Vec::new();
    for s in v["streams"].as_array().into_iter().flatten() {
        let codec = codec_from_ffprobe(s["codec_name"].as_str().unwrap_or("unknown"));
        let kind = match s["codec_type"].as_str() {
            Some("video") => TrackKind::Video,
            Some("audio") => TrackKind::Audio,
            _ => TrackKind::Other,
        };
        let frame_rate = s["avg_frame_rate"].as_str().and_then(|r| {
            let (n, d) = r.split_once('/')?;
            let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
            (d > 0.0 && n > 0.0).then(|| n / d)
        });
        tracks.push(TrackInfo {
            id: s["index"].as_u64().unwrap_or(0) as u32,
            kind: Some(kind),
            codec: Some(codec),
            profile: s["profile"].as_str().map(str::to_owned),
            width: s["width"].as_u64().map(|x| x as u32),
            height: s["height"].as_u64().map(|x| x as u32),
            frame_rate: frame_rate.filter(|_| kind == TrackKind::Video),
            sample_rate: num(&s["sample_rate"]).map(|x| x as u32),
            channels: s["channels"].as_u64().map(|x| x as u32),
            language: s["tags"]["language"]
                .as_str()
                .filter(|l| *l != "und")
                .map(str::to_owned),
            duration_90k: num(&s["duration"]).map(|d| (d * 90_000.0) as u64),
        });
    }
    Ok(Probe { duration, tracks })
}

/// Frame count and keyframe times (seconds) of the first video stream, from ffprobe's packets.
pub fn ffprobe_keyframes(path: &Path) -> Result<(u64, Vec<f64>)> {
    let bin = tool("ffprobe", "reading keyframes")?;
    let v = ffprobe_json(
        &bin,
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,flags",
        ],
    )?;
    let packets = v["packets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let time = |p: &serde_json::Value| {
        p["pts_time"]
            .as_str()
            .or(p["dts_time"].as_str())
            .and_then(|t| t.parse::<f64>().ok())
    };
    let keyframes = packets
        .iter()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.contains('K')))
        .filter_map(time)
        .collect();
    Ok((packets.len() as u64, keyframes))
}

/// Run ffprobe with `args` on `path` and parse its JSON output.
fn ffprobe_json(bin: &Path, path: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(bin)
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "json"])
        .arg(path)
        .output()
        .map_err(|e| InstallError::io("ffprobe", e))?;
    if !out.status.success() {
        return Err(ffmpeg_error(path, &out.status, &out.stderr));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| InstallError::Ffmpeg {
        path: path.into(),
        status: "ffprobe output".into(),
        stderr: e.to_string(),
    })
}

fn ffmpeg_error(path: &Path, status: &std::process::ExitStatus, stderr: &[u8]) -> InstallError {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    InstallError::Ffmpeg {
        path: path.into(),
        status: status.to_string(),
        stderr: last.trim().to_string(),
    }
}

/// Run ffmpeg: copy what passes, re-encode what needs it, into an MPEG-TS at `out`.
pub fn to_ts(src: &Path, a: &Analysis, out: &Path) -> Result<()> {
    let needs: Vec<String> = a
        .tracks
        .iter()
        .filter(|t| t.action == Action::Transcode)
        .map(|t| t.codec_name.clone())
        .collect();
    let what = if needs.is_empty() {
        format!("reading the {} container", a.container.name())
    } else {
        format!("transcoding {}", needs.join(", "))
    };
    let bin = tool("ffmpeg", &what)?;
    let mut cmd = Command::new(bin);
    cmd.args(["-nostdin", "-v", "error", "-y", "-i"]).arg(src);
    for (o, t) in a
        .tracks
        .iter()
        .filter(|t| t.action != Action::Drop)
        .enumerate()
    {
        cmd.args(["-map", &format!("0:{}", t.source_index)]);
        let spec = format!("-c:{o}");
        match (t.action, t.info.kind) {
            (Action::Transcode, Some(TrackKind::Video)) => {
                cmd.args([&spec, "libx264", "-preset", "veryfast", "-crf", "21"]);
                cmd.args([&format!("-pix_fmt:{o}"), "yuv420p"]);
                cmd.args([
                    "-force_key_frames",
                    &format!("expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})"),
                ]);
            }
            (Action::Transcode, _) => {
                cmd.args([&spec, "aac", &format!("-b:{o}"), "160k"]);
            }
            _ => {
                cmd.args([&spec, "copy"]);
            }
        }
    }
    cmd.args(["-f", "mpegts"]).arg(out);
    let res = cmd.output().map_err(|e| InstallError::io("ffmpeg", e))?;
    if !res.status.success() {
        return Err(ffmpeg_error(src, &res.status, &res.stderr));
    }
    Ok(())
}
