//! Reading the segments of an HLS media or I-frame playlist (RFC 8216 §4.3.2): each URI line with
//! the `#EXTINF` and `#EXT-X-BYTERANGE` in front of it. A byte range without `@offset` starts
//! where the previous one of the same URI ended (§4.3.2.2), and is resolved so here.

/// One segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `#EXTINF` duration in seconds.
    pub duration: f64,
    /// `(length, offset)` from `#EXT-X-BYTERANGE`, with the offset resolved.
    pub byte_range: Option<(u64, u64)>,
    pub uri: String,
}

/// A parsed playlist: its tags (lines starting `#EXT` that are not per-segment) and segments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Playlist {
    pub tags: Vec<String>,
    pub segments: Vec<Segment>,
    /// How many `#EXTINF` lines the text has.
    pub extinf_count: usize,
}

/// Parses `text`, or says which line is wrong.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut pl = Playlist::default();
    let mut duration = None;
    let mut range: Option<(u64, Option<u64>)> = None;
    let mut next_offset: Option<(String, u64)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            pl.extinf_count += 1;
            let d = rest.split(',').next().unwrap_or_default();
            duration = Some(
                d.parse::<f64>()
                    .map_err(|e| format!("line {}: #EXTINF {d:?}: {e}", n + 1))?,
            );
        } else if let Some(rest) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            let (len, off) = match rest.split_once('@') {
                Some((l, o)) => (l, Some(o)),
                None => (rest, None),
            };
            let len = len
                .parse::<u64>()
                .map_err(|e| format!("line {}: byte range {rest:?}: {e}", n + 1))?;
            let off = off
                .map(|o| o.parse::<u64>())
                .transpose()
                .map_err(|e| format!("line {}: byte range {rest:?}: {e}", n + 1))?;
            range = Some((len, off));
        } else if line.starts_with('#') {
            if line.starts_with("#EXT") {
                pl.tags.push(line.to_owned());
            }
        } else if !line.is_empty() {
            let duration = duration
                .take()
                .ok_or_else(|| format!("line {}: URI {line:?} without #EXTINF", n + 1))?;
            let byte_range = match range.take() {
                None => None,
                Some((len, Some(off))) => Some((len, off)),
                Some((len, None)) => match &next_offset {
                    Some((uri, off)) if uri == line => Some((len, *off)),
                    _ => {
                        return Err(format!(
                            "line {}: byte range without offset and no previous range of {line}",
                            n + 1
                        ));
                    }
                },
            };
            if let Some((len, off)) = byte_range {
                next_offset = Some((line.to_owned(), off + len));
            }
            pl.segments.push(Segment {
                duration,
                byte_range,
                uri: line.to_owned(),
            });
        }
    }
    Ok(pl)
}
