//! Movie fragments (`moof`): samples added after the `moov`, one track fragment at a time.
//!
//! Each `traf` names its track in `tfhd` and describes runs of samples (`trun`). Values a run does
//! not carry come from `tfhd` defaults, then from the track's `trex` in `moov/mvex`. Where the
//! data is:
//!
//! - the base offset is `tfhd.base_data_offset` when present, else the start of the `moof` when
//!   `default-base-is-moof` is set, else the start of the `moof` for its first `traf` and the end
//!   of the previous `traf`'s data for the others (ISO/IEC 14496-12, 8.8.7.1);
//! - a run starts at base + `trun.data_offset` when present, else where the previous run of the
//!   same `traf` ended (the base for the first run).
//!
//! Decode time starts at `tfdt` when present, else where the track's previous samples ended.
//! A sample is a sync sample unless its flags set `sample_is_non_sync_sample` or say it depends on
//! other samples (`sample_depends_on` = 1), which is the test ffmpeg applies too. Audio samples
//! are all sync samples whatever their flags say, as in ffmpeg: every AAC/MP3/AC-3 frame decodes
//! on its own, and packagers that mark them otherwise would make seeking impossible.
//!
//! A run without per-sample fields carries only a count; its samples are refused when they could
//! not fit in the file, before anything is allocated for them.

use super::boxes::{BoxRef, Children, Ctx, decode};
use super::sample_table::composition_offset;
use super::timeline::{Timeline, sample_end};
use crate::{Error, Result};
use mp4_atom::{Tfdt, Tfhd, Trex, Trun, TrunSamples};

/// `sample_is_non_sync_sample` in the 32-bit sample flags.
const NON_SYNC: u32 = 0x0001_0000;

/// One track as fragments see it.
#[derive(Debug)]
pub(crate) struct FragmentTarget<'t> {
    pub track_id: u32,
    pub trex: Option<Trex>,
    /// Every sample is a sync sample (audio).
    pub all_sync: bool,
    pub timeline: &'t mut Timeline,
}

/// Whether 32-bit sample flags describe a sync sample.
pub(crate) fn is_sync(flags: u32) -> bool {
    let depends_on = (flags >> 24) & 0x3;
    flags & NON_SYNC == 0 && depends_on != 1
}

/// Appends the samples of one `moof` to the tracks it names.
pub(crate) fn read_moof(
    moof: &BoxRef<'_>,
    targets: &mut [FragmentTarget<'_>],
    file_len: u64,
) -> Result<()> {
    let mut prev_traf_end: Option<u64> = None;
    for traf in Children::of(moof) {
        let traf = traf?;
        if &traf.kind != b"traf" {
            continue;
        }
        let end = read_traf(moof, &traf, prev_traf_end, targets, file_len)?;
        prev_traf_end = Some(end);
    }
    Ok(())
}

/// One `traf`; returns where its data ended (the implicit base of the next `traf`).
fn read_traf(
    moof: &BoxRef<'_>,
    traf: &BoxRef<'_>,
    prev_traf_end: Option<u64>,
    targets: &mut [FragmentTarget<'_>],
    file_len: u64,
) -> Result<u64> {
    let mut tfhd = None;
    let mut tfdt = None;
    let mut truns = Vec::new();
    for child in Children::of(traf) {
        let child = child?;
        match &child.kind {
            b"tfhd" if tfhd.is_none() => tfhd = Some(decode::<Tfhd>(&child, Ctx::FILE)?),
            b"tfdt" if tfdt.is_none() => tfdt = Some(child),
            b"trun" => truns.push(child),
            _ => {}
        }
    }
    let Some(tfhd) = tfhd else {
        return Err(Ctx::FILE.missing("tfhd", traf));
    };
    let ctx = Ctx::track(tfhd.track_id);
    let Some(target) = targets.iter_mut().find(|t| t.track_id == tfhd.track_id) else {
        return Err(Error::Mp4(format!(
            "'traf' box at byte {}: track {} has no 'trak' in the 'moov'",
            traf.offset, tfhd.track_id
        )));
    };

    let base = match tfhd.base_data_offset {
        Some(b) => b,
        None if tfhd.default_base_is_moof => moof.offset,
        None => prev_traf_end.unwrap_or(moof.offset),
    };
    let trex = target.trex.as_ref();
    let default_duration = tfhd
        .default_sample_duration
        .or(trex.map(|t| t.default_sample_duration))
        .unwrap_or(0);
    let default_size = tfhd
        .default_sample_size
        .or(trex.map(|t| t.default_sample_size))
        .unwrap_or(0);
    let default_flags = tfhd
        .default_sample_flags
        .or(trex.map(|t| t.default_sample_flags))
        .unwrap_or(0);

    let mut dts = match &tfdt {
        Some(b) => {
            let t: Tfdt = decode(b, ctx)?;
            i64::try_from(t.base_media_decode_time)
                .map_err(|_| ctx.err(b, "base media decode time does not fit 63 bits"))?
        }
        None => target.timeline.next_dts,
    };

    let mut data_pos = base;
    for trun_box in &truns {
        let trun: Trun = decode(trun_box, ctx)?;
        let mut pos = match trun.data_offset {
            Some(off) => base.checked_add_signed(i64::from(off)).ok_or_else(|| {
                ctx.err(
                    trun_box,
                    format_args!("data offset {off} from base {base} is outside the file"),
                )
            })?,
            None => data_pos,
        };
        if let TrunSamples::Inherited { count, .. } = &trun.samples {
            // Only a count: refuse it when that many samples cannot be in the file.
            let bytes = u64::from(*count).checked_mul(u64::from(default_size.max(1)));
            if bytes.is_none_or(|b| b > file_len) {
                return Err(ctx.err(
                    trun_box,
                    format_args!(
                        "{count} samples of {default_size} bytes cannot fit in a file of \
                         {file_len} bytes"
                    ),
                ));
            }
        }
        for (i, entry) in trun.samples.iter().enumerate() {
            let size = entry.size.unwrap_or(default_size);
            let duration = entry.duration.unwrap_or(default_duration);
            let flags = entry.flags.unwrap_or(default_flags);
            let cto = entry.cts.map_or(0, composition_offset);
            let Some(end) = sample_end(pos, size, file_len) else {
                return Err(ctx.err(
                    trun_box,
                    format_args!(
                        "sample {} ({size} bytes at byte {pos}) lies beyond the end of the file \
                         ({file_len} bytes)",
                        i + 1
                    ),
                ));
            };
            let keyframe = target.all_sync || is_sync(flags);
            target
                .timeline
                .push(pos, size, dts, cto, duration, keyframe)
                .ok_or_else(|| {
                    ctx.err(
                        trun_box,
                        format_args!("timestamp of sample {} overflows", i + 1),
                    )
                })?;
            dts = target.timeline.next_dts;
            pos = end;
        }
        data_pos = pos;
    }
    Ok(data_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_flags() {
        assert!(is_sync(0));
        assert!(is_sync(0x0200_0000)); // depends on no other sample
        assert!(!is_sync(0x0001_0000)); // non-sync
        assert!(!is_sync(0x0101_0000)); // ffmpeg's usual non-key flags
        assert!(!is_sync(0x0100_0000)); // depends on others
    }
}
