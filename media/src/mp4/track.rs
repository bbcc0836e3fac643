//! One `trak`: walking `tkhd`, `edts`, `mdia` (`mdhd`, `hdlr`, `minf/stbl`) and decoding the
//! boxes we use, each with `mp4-atom`.

use super::boxes::{BoxRef, Children, Ctx, be_u32, decode, find};
use super::codec_config::{Handler, SampleEntry, read_stsd};
use super::edit_list::EditShift;
use super::sample_table::SampleTables;
use crate::Result;
use mp4_atom::{Co64, Ctts, Elst, Hdlr, Mdhd, Stco, Stsc, Stss, Stsz, Stts, Tkhd};

/// What a `trak` holds, decoded but not yet expanded into samples.
#[derive(Debug)]
pub(crate) struct TrakParts<'a> {
    pub id: u32,
    /// `tkhd` width and height (integer part), the fallback for the sample entry's.
    pub tkhd_size: (u32, u32),
    pub timescale: u32,
    /// `mdhd` duration in `timescale` units (`None` when unknown: all ones).
    pub media_duration: Option<u64>,
    /// ISO-639-2/T code; `None` for "und" or an unset/QuickTime language.
    pub language: Option<String>,
    pub handler: Handler,
    pub entry: SampleEntry,
    pub shift: EditShift,
    pub tables: SampleTables<'a>,
}

/// Decodes one `trak`. `movie_timescale` (from `mvhd`, non-zero) converts empty edits.
pub(crate) fn read_trak<'a>(trak: &BoxRef<'a>, movie_timescale: u32) -> Result<TrakParts<'a>> {
    let Some(tkhd_box) = find(trak, b"tkhd")? else {
        return Err(Ctx::FILE.missing("tkhd", trak));
    };
    let tkhd: Tkhd = decode(&tkhd_box, Ctx::FILE)?;
    let ctx = Ctx::track(tkhd.track_id);

    let mut shift = EditShift::default();
    if let Some(edts) = find(trak, b"edts")?
        && let Some(elst_box) = find(&edts, b"elst")?
    {
        let elst: Elst = decode(&elst_box, ctx)?;
        shift = EditShift::from_entries(&elst.entries, movie_timescale)
            .map_err(|msg| ctx.err(&elst_box, msg))?;
    }

    let mdia = find(trak, b"mdia")?.ok_or_else(|| ctx.missing("mdia", trak))?;
    let mdhd_box = find(&mdia, b"mdhd")?.ok_or_else(|| ctx.missing("mdhd", &mdia))?;
    let mdhd: Mdhd = decode(&mdhd_box, ctx)?;
    if mdhd.timescale == 0 {
        return Err(ctx.err(&mdhd_box, "timescale is 0"));
    }
    let media_duration = (mdhd.duration != u64::from(u32::MAX) && mdhd.duration != u64::MAX)
        .then_some(mdhd.duration);
    let language = Some(mdhd.language)
        .filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_lowercase()) && l != "und");

    let hdlr_box = find(&mdia, b"hdlr")?.ok_or_else(|| ctx.missing("hdlr", &mdia))?;
    let handler = handler_type(&hdlr_box, ctx)?;
    let handler = match &handler {
        b"vide" => Handler::Video,
        b"soun" => Handler::Audio,
        _ => Handler::Other,
    };

    let minf = find(&mdia, b"minf")?.ok_or_else(|| ctx.missing("minf", &mdia))?;
    let stbl = find(&minf, b"stbl")?.ok_or_else(|| ctx.missing("stbl", &minf))?;
    let mut tables = SampleTables::default();
    let mut stsd = None;
    for child in Children::of(&stbl) {
        let b = child?;
        match &b.kind {
            b"stsd" => stsd = Some(b),
            b"stts" => tables.stts = Some((decode::<Stts>(&b, ctx)?, b)),
            b"ctts" => tables.ctts = Some((decode::<Ctts>(&b, ctx)?, b)),
            b"stss" => tables.stss = Some((decode::<Stss>(&b, ctx)?, b)),
            b"stsc" => tables.stsc = Some((decode::<Stsc>(&b, ctx)?, b)),
            b"stsz" => tables.stsz = Some((decode::<Stsz>(&b, ctx)?, b)),
            b"stz2" => {
                return Err(crate::Error::Unsupported(format!(
                    "track {}: compact sample sizes ('stz2' box at byte {})",
                    tkhd.track_id, b.offset
                )));
            }
            b"stco" => {
                let stco: Stco = decode(&b, ctx)?;
                let offsets = stco.entries.into_iter().map(u64::from).collect();
                // co64 wins when a writer left both.
                if tables.chunks.is_none() {
                    tables.chunks = Some((offsets, b));
                }
            }
            b"co64" => tables.chunks = Some((decode::<Co64>(&b, ctx)?.entries, b)),
            _ => {}
        }
    }
    let stsd = stsd.ok_or_else(|| ctx.missing("stsd", &stbl))?;
    let entry = read_stsd(&stsd, handler, ctx)?;

    Ok(TrakParts {
        id: tkhd.track_id,
        tkhd_size: (
            u32::from(tkhd.width.integer()),
            u32::from(tkhd.height.integer()),
        ),
        timescale: mdhd.timescale,
        media_duration,
        language,
        handler,
        entry,
        shift,
        tables,
    })
}

/// The handler type of `hdlr`. Old QuickTime files write the name as a Pascal string that is
/// not always UTF-8; only the four bytes of the type matter, so read them by hand if `mp4-atom`
/// refuses the name.
fn handler_type(hdlr: &BoxRef<'_>, ctx: Ctx) -> Result<[u8; 4]> {
    match decode::<Hdlr>(hdlr, ctx) {
        Ok(h) => Ok(*h.handler.as_ref()),
        Err(e) => match be_u32(hdlr.body, 8) {
            Some(t) => Ok(t.to_be_bytes()),
            None => Err(e),
        },
    }
}
