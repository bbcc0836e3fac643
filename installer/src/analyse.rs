//! Analysis: what the source is and what installing it would do.
//!
//! MP4 and MPEG-TS are read with our own parsers (`media`), completely: every sample or PES is
//! visited once, so the report states real keyframe counts, GOP lengths, open GOPs and where
//! parameter sets are. Other containers (WebM/Matroska, AVI, …) are only ever read by ffmpeg,
//! so ffprobe describes them.

use crate::plan::{self, Action, VideoFacts};
use crate::source::{Container, Source};
use crate::transcode;
use crate::{InstallError, Result};
use media::codec::aac::{self, SAMPLE_RATES};
use media::codec::nal::LengthPrefixed;
use media::codec::video::scan_access_unit;
use media::model::{Codec, CodecConfig, TrackInfo, TrackKind};
use media::mp4::Movie;
use serde::Serialize;

/// One track as the report shows it, with its plan.
#[derive(Debug, Clone, Serialize)]
pub struct TrackReport {
    #[serde(flatten)]
    pub info: TrackInfo,
    pub codec_name: String,
    /// Position of the track in the source as ffmpeg numbers streams (`-map 0:N`).
    #[serde(skip)]
    pub source_index: usize,
    pub action: Action,
    pub reason: String,
    /// RFC 6381 codec string (for the HLS master playlist).
    #[serde(skip)]
    pub rfc6381: Option<String>,
}

impl TrackReport {
    /// The track's codec (`Other("unknown")` when the container did not say).
    pub fn codec(&self) -> &Codec {
        static UNKNOWN: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();
        self.info
            .codec
            .as_ref()
            .unwrap_or_else(|| UNKNOWN.get_or_init(|| Codec::Other("unknown".into())))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VideoReport {
    pub keyframes: u64,
    pub frames: u64,
    /// Mean and longest keyframe interval, seconds.
    pub gop_seconds: f64,
    pub max_gop_seconds: f64,
    pub open_gop: bool,
    /// "out-of-band (avcC/hvcC)", "before every keyframe", "only before some keyframes", "none".
    pub parameter_sets: String,
}

/// What the rest of the install needs from the source beyond the report.
#[derive(Debug, Clone)]
pub enum Detail {
    Mp4(Box<Movie>),
    Ts {
        min_dts: i64,
    },
    /// Read by ffmpeg only.
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub file: String,
    pub size: u64,
    pub container: Container,
    pub container_notes: Vec<String>,
    pub duration_seconds: f64,
    #[serde(skip)]
    pub duration_90k: u64,
    pub bitrate: u64,
    pub tracks: Vec<TrackReport>,
    pub video: Option<VideoReport>,
    pub warnings: Vec<String>,
    /// Installing needs ffmpeg (a transcode, or a container only ffmpeg reads).
    pub needs_ffmpeg: bool,
    #[serde(skip)]
    pub detail: Detail,
}

fn secs(t: u64) -> f64 {
    t as f64 / 90_000.0
}

/// Analyse a source and plan its install.
pub fn analyse(src: &Source) -> Result<Analysis> {
    let mut a = match src.container {
        Container::Mp4 => analyse_mp4(src)?,
        Container::Mpegts => analyse_ts(src)?,
        _ => analyse_with_ffprobe(src)?,
    };
    if a.tracks.iter().all(|t| t.action == Action::Drop) {
        return Err(InstallError::Unsupported(format!(
            "{}: no audio or video track to install",
            src.path.display()
        )));
    }
    a.needs_ffmpeg = !matches!(src.container, Container::Mp4 | Container::Mpegts)
        || a.tracks.iter().any(|t| t.action == Action::Transcode);
    if a.duration_90k > 0 {
        a.bitrate = (a.size as f64 * 8.0 / secs(a.duration_90k)) as u64;
    }
    Ok(a)
}

fn base(src: &Source, detail: Detail) -> Analysis {
    Analysis {
        file: src.path.display().to_string(),
        size: src.bytes().len() as u64,
        container: src.container,
        container_notes: Vec::new(),
        duration_seconds: 0.0,
        duration_90k: 0,
        bitrate: 0,
        tracks: Vec::new(),
        video: None,
        warnings: Vec::new(),
        needs_ffmpeg: false,
        detail,
    }
}

fn report(
    source_index: usize,
    info: TrackInfo,
    action: Action,
    reason: String,
    rfc: Option<String>,
) -> TrackReport {
    TrackReport {
        codec_name: info
            .codec
            .as_ref()
            .map_or("unknown", |c| c.name())
            .to_string(),
        source_index,
        info,
        action,
        reason,
        rfc6381: rfc,
    }
}

fn gop_stats(keyframe_pts: &mut [i64], v: &mut VideoReport) {
    keyframe_pts.sort_unstable();
    let gaps: Vec<i64> = keyframe_pts.windows(2).map(|w| w[1] - w[0]).collect();
    if !gaps.is_empty() {
        v.gop_seconds = secs(gaps.iter().sum::<i64>() as u64) / gaps.len() as f64;
        v.max_gop_seconds = secs(*gaps.iter().max().unwrap_or(&0) as u64);
    }
}

fn analyse_mp4(src: &Source) -> Result<Analysis> {
    let movie = media::mp4::parse(src.bytes()).map_err(|e| InstallError::media(&src.path, e))?;
    let mut a = base(src, Detail::Other);
    if movie.fragmented {
        a.container_notes.push("fragmented (moof/trun)".into());
    }
    a.container_notes.push(if movie.moov_before_mdat {
        "moov before mdat (faststart)".into()
    } else {
        "moov at the end".into()
    });
    a.duration_90k = movie.duration_90k;
    a.duration_seconds = secs(movie.duration_90k);
    let mut first_video = true;
    for t in &movie.tracks {
        let codec = t
            .info
            .codec
            .clone()
            .unwrap_or(Codec::Other("unknown".into()));
        let kind = t.info.kind.unwrap_or(codec.kind());
        let is_first_video = kind != TrackKind::Video || first_video;
        let (action, reason) = plan::decide(
            a.container,
            kind,
            &codec,
            is_first_video,
            VideoFacts::default(),
        );
        let (avc_pl, aot) = match &t.config {
            CodecConfig::Avc { sps, .. } => (
                sps.first()
                    .and_then(|s| s.get(1..4))
                    .map(|b| [b[0], b[1], b[2]]),
                None,
            ),
            CodecConfig::Aac { object_type, .. } => (None, Some(*object_type)),
            _ => (None, None),
        };
        if kind == TrackKind::Video && is_first_video && action != Action::Drop {
            first_video = false;
            a.video = Some(mp4_video_report(src, t, &codec)?);
        }
        a.tracks.push(report(
            a.tracks.len(),
            t.info.clone(),
            action,
            reason,
            plan::rfc6381(&codec, avc_pl, aot),
        ));
    }
    a.detail = Detail::Mp4(Box::new(movie));
    Ok(a)
}

fn mp4_video_report(src: &Source, t: &media::mp4::Track, codec: &Codec) -> Result<VideoReport> {
    let mut v = VideoReport {
        frames: t.samples.len() as u64,
        ..Default::default()
    };
    let nls = match &t.config {
        CodecConfig::Avc {
            nal_length_size, ..
        }
        | CodecConfig::Hevc {
            nal_length_size, ..
        } => Some(*nal_length_size),
        _ => None,
    };
    let mut kf = Vec::new();
    let mut inband_ps = 0u64;
    for s in t.samples.iter().filter(|s| s.keyframe) {
        kf.push(s.pts);
        let Some(n) = nls else { continue };
        let Some(data) = usize::try_from(s.offset)
            .ok()
            .and_then(|o| src.bytes().get(o..o + s.size as usize))
        else {
            continue;
        };
        // Re-frame the first NAL units as Annex B so the shared scanner can judge them.
        let mut annexb = Vec::new();
        for nal in LengthPrefixed::new(data, n)
            .map_err(|e| InstallError::media(&src.path, e))?
            .take(16)
        {
            let Ok(nal) = nal else { break };
            annexb.extend_from_slice(&[0, 0, 1]);
            annexb.extend_from_slice(&nal[..nal.len().min(64)]);
        }
        if let Some(scan) = scan_access_unit(codec, &annexb) {
            v.open_gop |= scan.open_gop;
            inband_ps += u64::from(scan.parameter_sets);
        }
    }
    v.keyframes = kf.len() as u64;
    gop_stats(&mut kf, &mut v);
    v.parameter_sets = if inband_ps == v.keyframes && v.keyframes > 0 {
        "before every keyframe".into()
    } else {
        "out-of-band (avcC/hvcC): inserted before every keyframe".into()
    };
    Ok(v)
}

fn analyse_ts(src: &Source) -> Result<Analysis> {
    use media::ts::demux::Demuxer;
    let err = |e| InstallError::media(&src.path, e);
    let mut dmx = Demuxer::new(src.bytes()).map_err(err)?;
    let streams = dmx.probe_streams().map_err(err)?.to_vec();
    let mut a = base(src, Detail::Other);
    #[derive(Default)]
    struct Acc {
        frames: u64,
        pts: Vec<i64>,
        min_pts: Option<i64>,
        max_pts: Option<i64>,
        keyframe_pts: Vec<i64>,
        ps_keyframes: u64,
        open_gop: bool,
        sps: Option<Vec<u8>>,
        adts: Option<(u32, u32, u8)>,
    }
    let mut acc: Vec<Acc> = streams.iter().map(|_| Acc::default()).collect();
    let video_idx = streams
        .iter()
        .position(|s| s.codec.kind() == TrackKind::Video);
    let mut min_dts: Option<i64> = None;
    while let Some(frame) = dmx.next_frame() {
        let frame = frame.map_err(err)?;
        let Some(i) = streams.iter().position(|s| s.pid == frame.pid) else {
            continue;
        };
        let (Some(pts), dts) = (frame.pts, frame.dts) else {
            continue;
        };
        let dts = dts.unwrap_or(pts);
        min_dts = Some(min_dts.map_or(dts, |m| m.min(dts)));
        let s = &mut acc[i];
        s.frames += 1;
        s.min_pts = Some(s.min_pts.map_or(pts, |m| m.min(pts)));
        s.max_pts = Some(s.max_pts.map_or(pts, |m| m.max(pts)));
        if s.pts.len() < 512 {
            s.pts.push(pts);
        }
        let codec = &streams[i].codec;
        if Some(i) == video_idx {
            if let Some(scan) = scan_access_unit(codec, &frame.data)
                && scan.keyframe
            {
                s.keyframe_pts.push(pts);
                s.ps_keyframes += u64::from(scan.parameter_sets);
                s.open_gop |= scan.open_gop;
            }
            if s.sps.is_none() && *codec == Codec::H264 {
                s.sps = media::codec::nal::AnnexB::new(&frame.data)
                    .find(|n| n.first().is_some_and(|b| b & 0x1F == 7))
                    .map(<[u8]>::to_vec);
            }
        } else if *codec == Codec::Aac
            && s.adts.is_none()
            && frame.data.len() >= 7
            && frame.data[0] == 0xFF
        {
            let d = &frame.data;
            let sri = (d[2] >> 2) & 0x0F;
            let ch = ((d[2] & 1) << 2) | (d[3] >> 6);
            let aot = (d[2] >> 6) + 1;
            if let Some(&rate) = SAMPLE_RATES.get(sri as usize) {
                s.adts = Some((rate, u32::from(ch), aot));
            }
        }
    }
    let stats = dmx.stats();
    if stats.framing.skipped_bytes > 0 {
        a.warnings.push(format!(
            "{} bytes of garbage skipped while reading the TS ({} resyncs)",
            stats.framing.skipped_bytes, stats.framing.resyncs
        ));
    }
    if stats.cc_errors > 0 {
        a.warnings.push(format!(
            "{} continuity-counter errors in the source",
            stats.cc_errors
        ));
    }
    if stats.packets_before_pat > 0 {
        a.container_notes.push(format!(
            "{} packets before the first PAT ignored",
            stats.packets_before_pat
        ));
    }
    if dmx.stride() != 188 {
        a.container_notes
            .push(format!("{}-byte packets (rewritten as 188)", dmx.stride()));
    }
    // Frame duration per stream from the median pts step.
    let step = |p: &[i64]| {
        let mut v = p.to_vec();
        v.sort_unstable();
        let mut d: Vec<i64> = v
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d > 0)
            .collect();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    };
    let start = acc.iter().filter_map(|s| s.min_pts).min().unwrap_or(0);
    // The end is the video's last frame plus one frame duration. Audio PES often pack several
    // frames, so their step says little about the last one's length; use audio only when alone.
    let end_of = |s: &Acc| Some(s.max_pts? + step(&s.pts).unwrap_or(0));
    let end = match video_idx.and_then(|v| end_of(&acc[v])) {
        Some(e) => e,
        None => acc.iter().filter_map(end_of).max().unwrap_or(start),
    };
    a.duration_90k = (end - start).max(0) as u64;
    a.duration_seconds = secs(a.duration_90k);
    let mut first_video = true;
    for (i, (st, s)) in streams.iter().zip(&acc).enumerate() {
        if s.frames == 0 {
            a.warnings.push(format!(
                "stream PID {} ({}) has no frames: dropped",
                st.pid,
                st.codec.name()
            ));
            continue;
        }
        let kind = st.codec.kind();
        let is_first_video = kind != TrackKind::Video || first_video;
        let facts = VideoFacts {
            ps_every_keyframe: !s.keyframe_pts.is_empty()
                && s.ps_keyframes == s.keyframe_pts.len() as u64,
        };
        let (action, reason) =
            plan::decide(Container::Mpegts, kind, &st.codec, is_first_video, facts);
        let mut info = TrackInfo {
            id: u32::from(st.pid),
            kind: Some(kind),
            codec: Some(st.codec.clone()),
            language: st.language.clone(),
            duration_90k: s
                .max_pts
                .zip(s.min_pts)
                .map(|(x, n)| (x - n) as u64 + step(&s.pts).unwrap_or(0) as u64),
            ..Default::default()
        };
        let mut avc_pl = None;
        if let Some(sps) = &s.sps {
            if let Some(b) = sps.get(1..4) {
                avc_pl = Some([b[0], b[1], b[2]]);
                info.profile = Some(media::codec::h264::profile_name(b[0]).to_string());
            }
            if let Some((w, h)) = media::codec::h264::sps_dimensions(sps) {
                info.width = Some(w);
                info.height = Some(h);
            }
        }
        if let Some((rate, ch, aot)) = s.adts {
            info.sample_rate = Some(rate);
            info.channels = Some(ch);
            info.profile = Some(aac::profile_name(aot).to_string());
        }
        if kind == TrackKind::Video {
            info.frame_rate = step(&s.pts).map(|d| 90_000.0 / d as f64);
        }
        if kind == TrackKind::Video && is_first_video && action != Action::Drop {
            first_video = false;
            let mut v = VideoReport {
                frames: s.frames,
                keyframes: s.keyframe_pts.len() as u64,
                open_gop: s.open_gop,
                parameter_sets: if facts.ps_every_keyframe {
                    "before every keyframe".into()
                } else if s.ps_keyframes > 0 {
                    "only before some keyframes: inserted before every keyframe".into()
                } else {
                    "none in front of keyframes".into()
                },
                ..Default::default()
            };
            let mut kf = s.keyframe_pts.clone();
            gop_stats(&mut kf, &mut v);
            a.video = Some(v);
        }
        let aot = s.adts.map(|x| x.2);
        a.tracks.push(report(
            i,
            info,
            action,
            reason,
            plan::rfc6381(&st.codec, avc_pl, aot),
        ));
    }
    a.detail = Detail::Ts {
        min_dts: min_dts.unwrap_or(0),
    };
    Ok(a)
}

fn analyse_with_ffprobe(src: &Source) -> Result<Analysis> {
    let what = format!("reading a {} file", src.container.name());
    let probe = transcode::ffprobe(&src.path, &what)?;
    let mut a = base(src, Detail::Other);
    a.duration_seconds = probe.duration;
    a.duration_90k = (probe.duration * 90_000.0).round() as u64;
    let mut first_video = true;
    for (i, info) in probe.tracks.into_iter().enumerate() {
        let codec = info.codec.clone().unwrap_or(Codec::Other("unknown".into()));
        let kind = info.kind.unwrap_or(TrackKind::Other);
        let is_first_video = kind != TrackKind::Video || first_video;
        let (action, reason) = plan::decide(
            src.container,
            kind,
            &codec,
            is_first_video,
            VideoFacts::default(),
        );
        if kind == TrackKind::Video && action != Action::Drop {
            first_video = false;
            let (frames, kf) = transcode::ffprobe_keyframes(&src.path)?;
            let mut kf: Vec<i64> = kf.iter().map(|t| (t * 90_000.0).round() as i64).collect();
            let mut v = VideoReport {
                frames,
                keyframes: kf.len() as u64,
                parameter_sets: "decided after ffmpeg: inserted before every keyframe".into(),
                ..Default::default()
            };
            gop_stats(&mut kf, &mut v);
            a.video = Some(v);
        }
        let rfc = plan::rfc6381(&codec, None, None);
        a.tracks.push(report(i, info, action, reason, rfc));
    }
    Ok(a)
}
