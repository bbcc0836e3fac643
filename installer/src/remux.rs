//! Writing the content TS with our muxer, and the index from what the muxer reports.
//!
//! Sources are MP4 (samples from our sample tables, interleaved by DTS across tracks) and MPEG-TS
//! (PES frames in file order, from our demuxer, which also takes ffmpeg's transcode output).
//! Video goes through [`AuRewriter`] (Annex B, AUD, parameter sets before every keyframe), raw
//! AAC gets ADTS headers, other audio passes unchanged.

use crate::analyse::{Analysis, Detail, TrackReport};
use crate::plan::{self, Action};
use crate::{InstallError, Result};
use media::codec::aac::write_adts_header;
use media::codec::video::{AuRewriter, Framing};
use media::index::{
    AUDIO_SYNC_INTERVAL_90K, AudioSync, Entry, FLAG_HAS_VIDEO, FLAG_OPEN_GOP,
    FLAG_PS_EVERY_KEYFRAME, FrameType, Index,
};
use media::model::{Codec, CodecConfig, TrackKind};
use media::ts::mux::{Muxer, PCR_LEAD_90K, StreamSpec};
use std::io::Write;
use std::path::Path;

/// Where the first DTS lands on the output timeline (1.4 s, as ffmpeg's TS muxer does), so the
/// PCR, which runs [`PCR_LEAD_90K`] ahead, starts at a positive value.
pub const FIRST_DTS_90K: i64 = 2 * PCR_LEAD_90K;
const FLUSH_AT: usize = 4 << 20;

#[derive(Debug, Clone, Default)]
pub struct RemuxStats {
    pub frames: u64,
    pub keyframes: u64,
    pub parameter_sets_inserted: u64,
    pub size: u64,
    pub crc32: u32,
}

enum Convert {
    Video(AuRewriter),
    Adts(CodecConfig),
    Pass,
}

struct Out<'w, W: Write> {
    muxer: Muxer,
    buf: Vec<u8>,
    sink: &'w mut W,
    hasher: crc32fast::Hasher,
    index: Index,
    audio_last: Vec<Option<u64>>,
    video_stream: Option<usize>,
    first_pts: Option<u64>,
    stats: RemuxStats,
    scratch: Vec<u8>,
    path: &'w Path,
    /// Where `sink` writes: a write error names it, not the source (a full disk is the output's).
    sink_path: &'w Path,
}

impl<'w, W: Write> Out<'w, W> {
    fn flush(&mut self) -> Result<()> {
        self.hasher.update(&self.buf);
        self.sink
            .write_all(&self.buf)
            .map_err(|e| InstallError::io(self.sink_path, e))?;
        self.buf.clear();
        Ok(())
    }

    fn frame(
        &mut self,
        stream: usize,
        pts: i64,
        dts: i64,
        conv: &mut Convert,
        data: &[u8],
        src_off: u64,
    ) -> Result<()> {
        let (pts, dts) = (pts.max(0), dts.max(0));
        self.scratch.clear();
        let mut keyframe = true;
        let mut open_gop = false;
        let payload: &[u8] = match conv {
            Convert::Video(rw) => {
                let info = rw.rewrite(data, &mut self.scratch).map_err(|e| {
                    InstallError::media(
                        self.path,
                        media::Error::invalid("video frame", src_off, e.to_string()),
                    )
                })?;
                keyframe = info.keyframe;
                open_gop = info.open_gop;
                self.stats.parameter_sets_inserted += u64::from(info.inserted_parameter_sets);
                &self.scratch
            }
            Convert::Adts(cfg) => {
                write_adts_header(cfg, data.len(), &mut self.scratch)
                    .map_err(|e| InstallError::media(self.path, e))?;
                self.scratch.extend_from_slice(data);
                &self.scratch
            }
            Convert::Pass => data,
        };
        let w = self
            .muxer
            .write_frame(stream, pts, dts, keyframe, payload, &mut self.buf);
        let pts_u = pts as u64;
        self.first_pts = Some(self.first_pts.map_or(pts_u, |f| f.min(pts_u)));
        self.stats.frames += 1;
        if Some(stream) == self.video_stream {
            if keyframe {
                let rap = w.psi_offset.unwrap_or(w.pes_offset);
                self.index.entries.push(Entry {
                    pts: pts_u,
                    pcr: w.pcr,
                    offset: w.pes_offset,
                    rap_offset: rap,
                    ts_len: (w.end_offset - rap) as u32,
                    frame_size: payload.len() as u32,
                    frame_type: if open_gop {
                        FrameType::Cra
                    } else {
                        FrameType::Idr
                    },
                    parameter_sets: true,
                });
                self.stats.keyframes += 1;
                if open_gop {
                    self.index.flags |= FLAG_OPEN_GOP;
                }
            }
        } else if let Some(last) = self.audio_last.get_mut(stream)
            && last.is_none_or(|l| pts_u >= l.saturating_add(AUDIO_SYNC_INTERVAL_90K))
        {
            *last = Some(pts_u);
            self.index.audio.push(AudioSync {
                pts: pts_u,
                offset: w.pes_offset,
                pid: self.muxer.pid(stream).unwrap_or(0),
            });
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }
}

fn carried(a: &Analysis) -> Vec<&TrackReport> {
    a.tracks
        .iter()
        .filter(|t| matches!(t.action, Action::Pass | Action::Remux))
        .collect()
}

/// Remux the analysed source (`src`, read from `path`) into `sink`, which writes `sink_path`.
/// `progress` gets (source bytes done, total).
pub fn remux<W: Write>(
    src: &[u8],
    path: &Path,
    a: &Analysis,
    sink: &mut W,
    sink_path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Index, RemuxStats)> {
    let tracks = carried(a);
    if a.tracks.iter().any(|t| t.action == Action::Transcode) {
        return Err(InstallError::Unsupported(
            "internal: remux called before the transcode step".into(),
        ));
    }
    let mut specs = Vec::new();
    for t in &tracks {
        let codec = t.codec().clone();
        let (stream_type, stream_id) = plan::stream_type(&codec).ok_or_else(|| {
            InstallError::Unsupported(format!(
                "{}: cannot carry {} in TS",
                path.display(),
                codec.name()
            ))
        })?;
        specs.push(StreamSpec {
            stream_type,
            stream_id,
            language: t.info.language.clone(),
            video: t.info.kind == Some(TrackKind::Video),
        });
    }
    let video_stream = specs.iter().position(|s| s.video);
    let muxer = Muxer::new(specs);
    let mut index = Index {
        video_pid: video_stream.and_then(|v| muxer.pid(v)).unwrap_or(0),
        pcr_pid: muxer.pcr_pid().unwrap_or(0),
        duration_90k: a.duration_90k,
        ..Index::default()
    };
    if video_stream.is_some() {
        index.flags |= FLAG_HAS_VIDEO;
    }
    let mut out = Out {
        muxer,
        buf: Vec::with_capacity(FLUSH_AT + (1 << 20)),
        sink,
        hasher: crc32fast::Hasher::new(),
        index,
        audio_last: tracks.iter().map(|_| None).collect(),
        video_stream,
        first_pts: None,
        stats: RemuxStats::default(),
        scratch: Vec::new(),
        path,
        sink_path,
    };
    if let Some(v) = video_stream {
        out.audio_last[v] = None;
    }
    let total = src.len() as u64;
    match &a.detail {
        Detail::Mp4(movie) => {
            let mut convs = Vec::new();
            let mut sources = Vec::new();
            for t in &tracks {
                let mt = movie
                    .tracks
                    .iter()
                    .find(|m| m.info.id == t.info.id)
                    .ok_or_else(|| {
                        InstallError::Unsupported(format!("internal: track {} vanished", t.info.id))
                    })?;
                let codec = t.codec().clone();
                convs.push(match (&codec, &mt.config) {
                    (
                        Codec::H264 | Codec::H265,
                        CodecConfig::Avc {
                            nal_length_size, ..
                        }
                        | CodecConfig::Hevc {
                            nal_length_size, ..
                        },
                    ) => Convert::Video(
                        AuRewriter::new(
                            &codec,
                            &mt.config,
                            Framing::LengthPrefixed(*nal_length_size),
                        )
                        .map_err(|e| InstallError::media(path, e))?,
                    ),
                    (Codec::H264 | Codec::H265, _) => {
                        return Err(InstallError::media(
                            path,
                            media::Error::Mp4(format!(
                                "track {}: {} without avcC/hvcC configuration",
                                t.info.id,
                                codec.name()
                            )),
                        ));
                    }
                    (Codec::Aac, cfg @ CodecConfig::Aac { .. }) => Convert::Adts(cfg.clone()),
                    (Codec::Aac, _) => {
                        return Err(InstallError::media(
                            path,
                            media::Error::Mp4(format!(
                                "track {}: AAC without a decoder configuration (esds)",
                                t.info.id
                            )),
                        ));
                    }
                    _ => Convert::Pass,
                });
                sources.push(&mt.samples);
            }
            let min_dts = sources
                .iter()
                .filter_map(|s| s.first().map(|x| x.dts))
                .min()
                .unwrap_or(0);
            let shift = FIRST_DTS_90K - min_dts;
            let mut next = vec![0usize; sources.len()];
            let mut done = 0u64;
            loop {
                // Pick the track whose next sample has the lowest DTS (few tracks: a scan is fine).
                let pick = (0..sources.len())
                    .filter_map(|i| sources[i].get(next[i]).map(|s| (s.dts, i)))
                    .min();
                let Some((_, i)) = pick else { break };
                let s = &sources[i][next[i]];
                next[i] += 1;
                let data = usize::try_from(s.offset)
                    .ok()
                    .and_then(|o| Some(o..o.checked_add(s.size as usize)?))
                    .and_then(|r| src.get(r))
                    .ok_or_else(|| {
                        InstallError::media(
                            path,
                            media::Error::invalid(
                                "mp4 sample",
                                s.offset,
                                "data lies outside the file",
                            ),
                        )
                    })?;
                out.frame(
                    i,
                    s.pts + shift,
                    s.dts + shift,
                    &mut convs[i],
                    data,
                    s.offset,
                )?;
                done += u64::from(s.size);
                if out.stats.frames.is_multiple_of(256) {
                    crate::install::check_interrupted()?;
                    progress(done, total);
                }
            }
        }
        Detail::Ts { min_dts } => {
            let mut convs: Vec<Convert> = Vec::new();
            for t in &tracks {
                let codec = t.codec().clone();
                convs.push(match codec {
                    Codec::H264 | Codec::H265 => Convert::Video(
                        AuRewriter::new(&codec, &CodecConfig::None, Framing::AnnexB)
                            .map_err(|e| InstallError::media(path, e))?,
                    ),
                    _ => Convert::Pass,
                });
            }
            let shift = if *min_dts < PCR_LEAD_90K {
                FIRST_DTS_90K - min_dts
            } else {
                0
            };
            let mut dmx =
                media::ts::demux::Demuxer::new(src).map_err(|e| InstallError::media(path, e))?;
            dmx.probe_streams()
                .map_err(|e| InstallError::media(path, e))?;
            let mut seen_keyframe = video_stream.is_none();
            while let Some(frame) = dmx.next_frame() {
                let frame = frame.map_err(|e| InstallError::media(path, e))?;
                let Some(i) = tracks
                    .iter()
                    .position(|t| t.info.id == u32::from(frame.pid))
                else {
                    continue;
                };
                let Some(pts) = frame.pts else { continue };
                let dts = frame.dts.unwrap_or(pts);
                if Some(i) == video_stream && !seen_keyframe {
                    // Frames before the first keyframe cannot be decoded: leave them out.
                    let key = media::codec::video::scan_access_unit(tracks[i].codec(), &frame.data)
                        .is_some_and(|s| s.keyframe);
                    if !key {
                        continue;
                    }
                    seen_keyframe = true;
                }
                out.frame(
                    i,
                    pts + shift,
                    dts + shift,
                    &mut convs[i],
                    &frame.data,
                    frame.offset,
                )?;
                if out.stats.frames.is_multiple_of(256) {
                    crate::install::check_interrupted()?;
                    progress(frame.offset, total);
                }
            }
        }
        Detail::Other => {
            return Err(InstallError::Unsupported(
                "internal: remux of a container only ffmpeg reads".into(),
            ));
        }
    }
    progress(total, total);
    out.flush()?;
    out.sink
        .flush()
        .map_err(|e| InstallError::io(out.sink_path, e))?;
    let mut index = out.index;
    index.content_size = out.muxer.position();
    index.first_pts = out.first_pts.unwrap_or(0);
    if !index.entries.is_empty() {
        index.flags |= FLAG_PS_EVERY_KEYFRAME;
    }
    let mut stats = out.stats;
    stats.size = index.content_size;
    stats.crc32 = out.hasher.finalize();
    Ok((index, stats))
}
