//! The sample table (`stbl`): from run-length tables to one entry per sample.
//!
//! An MP4 describes samples indirectly: `stsz` gives sizes, `stco`/`co64` where each chunk
//! starts, `stsc` how many samples each run of chunks holds, `stts` decode-time deltas in runs,
//! `ctts` composition offsets in runs, `stss` which samples are sync samples. We expand them
//! together, in one pass, into [`Timeline`] samples with absolute file offsets.
//!
//! Every count comes from the file, so nothing is trusted: counts must agree (`stts`, `ctts` and
//! `stsz` describe the same number of samples), a fixed-size `stsz` may not declare more bytes of
//! samples than the file has (its count is not backed by table bytes, so it is checked before
//! anything is allocated for it), `stsc` chunk numbers start at 1 and increase, and every sample
//! must lie inside the file. The work is bounded by the number of chunks plus the number of
//! samples, whatever `stsc` claims.

use super::boxes::{BoxRef, Ctx};
use super::timeline::{Timeline, sample_end};
use crate::Result;
use mp4_atom::{Ctts, Stsc, Stss, Stsz, StszSamples, Stts};
use std::iter::repeat_n;

/// The decoded tables of one `stbl`, each with the box it came from (for error messages).
#[derive(Debug, Default)]
pub(crate) struct SampleTables<'a> {
    pub stts: Option<(Stts, BoxRef<'a>)>,
    pub ctts: Option<(Ctts, BoxRef<'a>)>,
    pub stss: Option<(Stss, BoxRef<'a>)>,
    pub stsc: Option<(Stsc, BoxRef<'a>)>,
    pub stsz: Option<(Stsz, BoxRef<'a>)>,
    /// Chunk offsets from `stco` (widened) or `co64`.
    pub chunks: Option<(Vec<u64>, BoxRef<'a>)>,
}

/// Sizes from `stsz`: one size for all, or one per sample.
enum Sizes<'t> {
    Fixed { count: u64, size: u32 },
    PerSample(&'t [u32]),
}

impl Sizes<'_> {
    fn count(&self) -> u64 {
        match self {
            Sizes::Fixed { count, .. } => *count,
            Sizes::PerSample(s) => s.len() as u64,
        }
    }

    fn get(&self, i: u64) -> Option<u32> {
        match self {
            Sizes::Fixed { count, size } => (i < *count).then_some(*size),
            Sizes::PerSample(s) => usize::try_from(i).ok().and_then(|i| s.get(i).copied()),
        }
    }
}

/// A composition offset as written. Version 0 `ctts` is unsigned on paper, but writers put
/// negative offsets there as two's complement; like ffmpeg, read a value above `i32::MAX` (only
/// possible in version 0) as that negative number.
pub(crate) fn composition_offset(raw: i64) -> i64 {
    if raw > i64::from(i32::MAX) && raw <= i64::from(u32::MAX) {
        raw - (1i64 << 32)
    } else {
        raw
    }
}

/// Expands the tables into `timeline`. `file_len` bounds every sample.
pub(crate) fn build(
    t: &SampleTables<'_>,
    file_len: u64,
    ctx: Ctx,
    timeline: &mut Timeline,
) -> Result<()> {
    let Some((stsz, stsz_box)) = &t.stsz else {
        return Err(ctx_plain(ctx, "no 'stsz' box in the sample table"));
    };
    let sizes = match &stsz.samples {
        StszSamples::Identical { count, size } => Sizes::Fixed {
            count: u64::from(*count),
            size: *size,
        },
        StszSamples::Different { sizes } => Sizes::PerSample(sizes),
    };
    let n = sizes.count();
    if let Sizes::Fixed { count, size } = sizes {
        // Not backed by table bytes: refuse before allocating for it.
        let bytes = count.checked_mul(u64::from(size));
        if bytes.is_none_or(|b| b > file_len) {
            return Err(ctx.err(
                stsz_box,
                format_args!(
                    "{count} samples of {size} bytes cannot fit in a file of {file_len} bytes"
                ),
            ));
        }
    }
    if n == 0 {
        return Ok(());
    }

    // The other tables must describe the same samples.
    let Some((stts, stts_box)) = &t.stts else {
        return Err(ctx_plain(ctx, "no 'stts' box in the sample table"));
    };
    let stts_total = run_total(stts.entries.iter().map(|e| e.sample_count));
    if stts_total != Some(n) {
        return Err(ctx.err(
            stts_box,
            format_args!(
                "time-to-sample runs cover {} samples but 'stsz' has {n}",
                show_total(stts_total)
            ),
        ));
    }
    if let Some((ctts, ctts_box)) = &t.ctts {
        let total = run_total(ctts.entries.iter().map(|e| e.sample_count));
        if total != Some(n) {
            return Err(ctx.err(
                ctts_box,
                format_args!(
                    "composition offset runs cover {} samples but 'stsz' has {n}",
                    show_total(total)
                ),
            ));
        }
    }
    let Some((stsc, stsc_box)) = &t.stsc else {
        return Err(ctx_plain(ctx, "no 'stsc' box in the sample table"));
    };
    let Some((chunks, chunks_box)) = &t.chunks else {
        return Err(ctx_plain(
            ctx,
            "no chunk offsets ('stco' or 'co64') in the sample table",
        ));
    };

    let mut deltas = stts
        .entries
        .iter()
        .flat_map(|e| repeat_n(e.sample_delta, e.sample_count as usize));
    let mut ctos = t.ctts.as_ref().map(|(c, _)| {
        c.entries
            .iter()
            .flat_map(|e| repeat_n(composition_offset(e.sample_offset), e.sample_count as usize))
    });

    // n is bounded: by the stsz body (4 bytes a sample) or by the check above.
    let first = timeline.samples.len();
    timeline
        .samples
        .reserve(usize::try_from(n).unwrap_or(usize::MAX));
    let all_sync = t.stss.is_none();
    let chunk_count = chunks.len() as u64;
    let mut placed: u64 = 0;
    let mut prev_first_chunk: u32 = 0;
    'runs: for (i, run) in stsc.entries.iter().enumerate() {
        if run.first_chunk == 0 {
            return Err(ctx.err(
                stsc_box,
                format_args!("entry {i}: first_chunk is 0 (chunks are numbered from 1)"),
            ));
        }
        if run.first_chunk <= prev_first_chunk {
            return Err(ctx.err(
                stsc_box,
                format_args!(
                    "entry {i}: first_chunk {} does not follow {prev_first_chunk}",
                    run.first_chunk
                ),
            ));
        }
        prev_first_chunk = run.first_chunk;
        let next_first = stsc
            .entries
            .get(i + 1)
            .map_or(chunk_count.saturating_add(1), |next| {
                u64::from(next.first_chunk)
            });
        let last_chunk = next_first.saturating_sub(1).min(chunk_count);
        for chunk in u64::from(run.first_chunk)..=last_chunk {
            let Some(&chunk_offset) = usize::try_from(chunk - 1).ok().and_then(|c| chunks.get(c))
            else {
                break;
            };
            let mut pos = chunk_offset;
            for _ in 0..run.samples_per_chunk {
                if placed == n {
                    break 'runs;
                }
                let size = sizes.get(placed).unwrap_or(0);
                let Some(end) = sample_end(pos, size, file_len) else {
                    return Err(ctx.err(
                        chunks_box,
                        format_args!(
                            "sample {} ({size} bytes at byte {pos}, chunk {chunk}) lies beyond \
                             the end of the file ({file_len} bytes)",
                            placed + 1
                        ),
                    ));
                };
                let dts = timeline.next_dts;
                let delta = deltas.next().unwrap_or(0);
                let cto = ctos.as_mut().and_then(|c| c.next()).unwrap_or(0);
                timeline
                    .push(pos, size, dts, cto, delta, all_sync)
                    .ok_or_else(|| {
                        ctx.err(
                            stts_box,
                            format_args!("timestamp of sample {} overflows", placed + 1),
                        )
                    })?;
                pos = end;
                placed += 1;
            }
        }
        if placed == n {
            break;
        }
    }
    if placed < n {
        return Err(ctx.err(
            stsc_box,
            format_args!(
                "sample-to-chunk runs over {chunk_count} chunks hold only {placed} of the {n} \
                 samples in 'stsz'"
            ),
        ));
    }

    if let Some((stss, stss_box)) = &t.stss {
        for &number in &stss.entries {
            let slot = u64::from(number)
                .checked_sub(1)
                .filter(|&i| i < n)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| i.checked_add(first))
                .and_then(|i| timeline.samples.get_mut(i));
            match slot {
                Some(s) => s.keyframe = true,
                None => {
                    return Err(ctx.err(
                        stss_box,
                        format_args!("sync sample {number} is not one of the {n} samples"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn run_total(mut counts: impl Iterator<Item = u32>) -> Option<u64> {
    counts.try_fold(0u64, |acc, c| acc.checked_add(u64::from(c)))
}

fn show_total(t: Option<u64>) -> String {
    t.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
}

fn ctx_plain(ctx: Ctx, msg: &str) -> crate::Error {
    match ctx.track {
        Some(id) => crate::Error::Mp4(format!("track {id}: {msg}")),
        None => crate::Error::Mp4(msg.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version0_negative_offsets_wrap() {
        assert_eq!(composition_offset(1024), 1024);
        assert_eq!(composition_offset(-512), -512);
        assert_eq!(composition_offset(0xFFFF_FE00), -512);
        assert_eq!(composition_offset(i64::from(i32::MAX)), i64::from(i32::MAX));
    }
}
