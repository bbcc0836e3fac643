//! MP4 (ISO/IEC 14496-12 and -14) reading: tracks, codec configuration and every sample's
//! position and 90 kHz timestamps.
//!
//! # Why this shape
//!
//! Boxes are decoded by [`mp4_atom`] (maintained, fuzzed, knows `hvc1`/`hev1`, signed edit lists
//! and fragments). The sample-table and timeline layer above it is ours. The `mp4` crate (0.14)
//! was weighed and refused: unmaintained since 2023, it cannot identify `hvc1`, gets keyframes and
//! timestamps in fragments wrong, and panics on crafted input (see `REFERENCE.md`).
//!
//! The reader is sans-IO: [`parse`] takes the whole file as a slice (the installer maps it) and
//! returns a [`Movie`] whose samples point into that slice by absolute offset. Nothing is copied.
//!
//! # Modules
//!
//! - `boxes`: walking containers with absolute offsets; decoding leaves with `mp4-atom`.
//! - `track`: one `trak`, decoded.
//! - `codec_config`: the sample entry → [`Codec`], [`CodecConfig`], profile, size, rate.
//! - `sample_table`: `stsz`/`stco`/`co64`/`stsc`/`stts`/`ctts`/`stss` → samples.
//! - `fragments`: `moof`/`traf`/`tfhd`/`tfdt`/`trun` → more samples.
//! - `edit_list`: the shift an edit list applies (first empty edit + first normal edit).
//! - `timeline`: track-unit samples → 90 kHz, track duration, frame rate.
//!
//! # Input is not trusted
//!
//! Every number read from the file is checked before use: counts must agree between tables,
//! counts not backed by table bytes are bounded by the file size before allocating, arithmetic is
//! checked, every sample must lie inside the file, a timescale of 0 is an error. Problems come
//! back as [`Error::Mp4`] naming the box, the track and the byte offset.
//!
//! Nothing recurses on the input: we walk the containers we need ourselves and hand `mp4-atom`
//! only flat leaf boxes (headers, tables, `avcC`, `hvcC`, `tfhd`, `trun`, ...). Its decoders for
//! containers, sample entries and `esds` descend into whatever nests inside, and a crafted file
//! of boxes nested a hundred thousand deep overflows the stack (an abort, not an error).

mod boxes;
mod codec_config;
mod edit_list;
mod fragments;
mod sample_table;
mod timeline;
mod track;

#[cfg(test)]
mod test_boxes;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ffprobe;

use crate::model::{Codec, CodecConfig, TrackInfo, TrackKind};
use crate::time::{HZ_90K, rescale};
use crate::{Error, Result};
use boxes::{BoxRef, Children, Ctx, decode, find};
use codec_config::Handler;
use fragments::FragmentTarget;
use mp4_atom::{Ftyp, Mvhd, Trex};
use timeline::Timeline;

/// A parsed MP4 file.
#[derive(Debug, Clone, PartialEq)]
pub struct Movie {
    /// In file order, including tracks of codecs we do not handle (`Codec::Other("vp09")`, ...).
    pub tracks: Vec<Track>,
    /// Movie duration in 90 kHz: the latest presentation end over all tracks.
    pub duration_90k: u64,
    /// `moof` boxes are present.
    pub fragmented: bool,
    /// The `moov` comes before the first `mdat` ("faststart"), or there is no `mdat`.
    pub moov_before_mdat: bool,
    /// `ftyp` major brand ("isom", "mp42", "qt  "); empty when there is no `ftyp`.
    pub major_brand: String,
}

/// One track and all its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// id = `track_ID`; kind from the handler; codec, profile, size, rates from the sample entry;
    /// language from `mdhd` (`None` for "und"); duration = latest presentation end.
    pub info: TrackInfo,
    /// `avcC` / `hvcC` parameter sets, or the decoded AAC AudioSpecificConfig; `None` otherwise.
    pub config: CodecConfig,
    /// `mdhd` timescale (never 0).
    pub timescale: u32,
    /// Decode order: the `moov` sample table first, then every fragment in file order.
    pub samples: Vec<Sample>,
}

/// One sample (access unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Absolute file offset of the sample data.
    pub offset: u64,
    pub size: u32,
    /// 90 kHz, edit list applied.
    pub dts: i64,
    /// 90 kHz, edit list applied (dts + composition offset).
    pub pts: i64,
    /// Sync sample: listed in `stss` (every sample when there is no `stss`), or not flagged
    /// non-sync in a fragment.
    pub keyframe: bool,
}

/// Box types an MP4 file plausibly starts with.
const FIRST_BOXES: [&[u8; 4]; 5] = [b"ftyp", b"moov", b"mdat", b"free", b"styp"];

/// Whether `head` (the first bytes of a file) looks like an MP4: one of `ftyp`, `moov`, `mdat`,
/// `free`, `styp` at offset 4, after a size that a first box can have (0 = to the end of the
/// file, 1 = 64-bit size follows, else at least 8).
pub fn looks_like_mp4(head: &[u8]) -> bool {
    let (Some(size), Some(kind)) = (boxes::be_u32(head, 0), head.get(4..8)) else {
        return false;
    };
    let plausible_size = size == 0 || size == 1 || size >= 8;
    plausible_size && FIRST_BOXES.iter().any(|k| k.as_slice() == kind)
}

/// Parses a whole MP4 file.
pub fn parse(file: &[u8]) -> Result<Movie> {
    let file_len = file.len() as u64;
    let mut major_brand = None;
    let mut moov: Option<BoxRef<'_>> = None;
    let mut moofs = Vec::new();
    let mut first_mdat = None;
    for b in Children::top_level(file, 0).clip_last() {
        let b = b?;
        match &b.kind {
            b"ftyp" if major_brand.is_none() => {
                // Only the major brand matters; an odd compatible-brand list is no reason to
                // refuse the file, so fall back to the first four bytes.
                let brand = match decode::<Ftyp>(&b, Ctx::FILE) {
                    Ok(ftyp) => *ftyp.major_brand.as_ref(),
                    Err(e) => b
                        .body
                        .get(..4)
                        .and_then(|m| <[u8; 4]>::try_from(m).ok())
                        .ok_or(e)?,
                };
                major_brand = Some(boxes::fourcc_name(&brand));
            }
            b"moov" => {
                if let Some(first) = &moov {
                    return Err(Error::Mp4(format!(
                        "two 'moov' boxes, at byte {} and at byte {}",
                        first.offset, b.offset
                    )));
                }
                moov = Some(b);
            }
            b"moof" => moofs.push(b),
            b"mdat" => {
                first_mdat.get_or_insert(b.offset);
            }
            _ => {}
        }
    }
    let Some(moov) = moov else {
        return Err(Error::Mp4(
            "no moov box: the file is not a complete MP4 (cut before its index?)".into(),
        ));
    };

    let mvhd_box = find(&moov, b"mvhd")?.ok_or_else(|| Ctx::FILE.missing("mvhd", &moov))?;
    let mvhd: Mvhd = decode(&mvhd_box, Ctx::FILE)?;
    if mvhd.timescale == 0 {
        return Err(Ctx::FILE.err(&mvhd_box, "timescale is 0"));
    }
    let trex = read_trex(&moov)?;

    let mut parts = Vec::new();
    for b in Children::of(&moov) {
        let b = b?;
        if &b.kind == b"trak" {
            let p = track::read_trak(&b, mvhd.timescale)?;
            if parts.iter().any(|q: &track::TrakParts<'_>| q.id == p.id) {
                return Err(Error::Mp4(format!(
                    "'trak' box at byte {}: track id {} is used twice",
                    b.offset, p.id
                )));
            }
            parts.push(p);
        }
    }

    let mut timelines = Vec::with_capacity(parts.len());
    for p in &parts {
        let mut t = Timeline::default();
        sample_table::build(&p.tables, file_len, Ctx::track(p.id), &mut t)?;
        timelines.push(t);
    }

    if !moofs.is_empty() {
        let mut targets: Vec<FragmentTarget<'_>> = parts
            .iter()
            .zip(timelines.iter_mut())
            .map(|(p, timeline)| FragmentTarget {
                track_id: p.id,
                trex: trex.iter().find(|t| t.track_id == p.id).cloned(),
                all_sync: p.handler == Handler::Audio,
                timeline,
            })
            .collect();
        for moof in &moofs {
            fragments::read_moof(moof, &mut targets, file_len)?;
        }
    }

    let mut tracks = Vec::with_capacity(parts.len());
    for (p, t) in parts.into_iter().zip(timelines) {
        tracks.push(finish_track(p, t)?);
    }

    let movie_duration = tracks.iter().filter_map(|t| t.info.duration_90k).max();
    let duration_90k = match movie_duration {
        Some(d) => d,
        None => known_duration(mvhd.duration)
            .and_then(|d| to_90k(d, mvhd.timescale))
            .unwrap_or(0),
    };
    Ok(Movie {
        tracks,
        duration_90k,
        fragmented: !moofs.is_empty(),
        moov_before_mdat: first_mdat.is_none_or(|m| moov.offset < m),
        major_brand: major_brand.unwrap_or_default(),
    })
}

/// The `trex` boxes of `moov/mvex` (per-track defaults for fragments).
fn read_trex(moov: &BoxRef<'_>) -> Result<Vec<Trex>> {
    let mut out = Vec::new();
    if let Some(mvex) = find(moov, b"mvex")? {
        for b in Children::of(&mvex) {
            let b = b?;
            if &b.kind == b"trex" {
                out.push(decode::<Trex>(&b, Ctx::FILE)?);
            }
        }
    }
    Ok(out)
}

/// A duration field, unless it is all ones ("unknown").
fn known_duration(d: u64) -> Option<u64> {
    (d != u64::from(u32::MAX) && d != u64::MAX).then_some(d)
}

fn to_90k(ticks: u64, timescale: u32) -> Option<u64> {
    let t = rescale(i64::try_from(ticks).ok()?, timescale, HZ_90K as u32)?;
    u64::try_from(t).ok()
}

fn finish_track(p: track::TrakParts<'_>, t: Timeline) -> Result<Track> {
    let finished = t.finish(p.shift, p.timescale).ok_or_else(|| {
        Error::Mp4(format!(
            "track {}: timestamps overflow once the edit list is applied",
            p.id
        ))
    })?;
    let duration_90k = finished.end_90k.or_else(|| {
        p.media_duration
            .and_then(|d| to_90k(d, p.timescale))
            .filter(|&d| d > 0)
    });
    let entry = p.entry;
    let kind = match p.handler {
        Handler::Video => TrackKind::Video,
        Handler::Audio => TrackKind::Audio,
        Handler::Other => TrackKind::Other,
    };
    let (mut width, mut height) = (entry.width, entry.height);
    let (mut frame_rate, mut sample_rate, mut channels) = (None, None, None);
    match kind {
        TrackKind::Video => {
            width = width.or((p.tkhd_size.0 > 0).then_some(p.tkhd_size.0));
            height = height.or((p.tkhd_size.1 > 0).then_some(p.tkhd_size.1));
            frame_rate = finished.rate;
        }
        TrackKind::Audio => {
            sample_rate = entry.sample_rate.or(Some(p.timescale));
            channels = entry.channels;
        }
        TrackKind::Other => {}
    }
    let codec: Codec = entry.codec;
    Ok(Track {
        info: TrackInfo {
            id: p.id,
            kind: Some(kind),
            codec: Some(codec),
            profile: entry.profile,
            width,
            height,
            frame_rate,
            sample_rate,
            channels,
            language: p.language,
            duration_90k,
        },
        config: entry.config,
        timescale: p.timescale,
        samples: finished.samples,
    })
}
