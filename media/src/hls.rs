//! HLS playlists (RFC 8216) over one content TS, from the index.
//!
//! - The media playlist cuts byte-range segments (`EXT-X-BYTERANGE`) at clean random-access
//!   points (the PAT in front of a keyframe), aiming at [`TARGET_SEGMENT_90K`]; every segment
//!   starts with PAT, PMT and a keyframe with its parameter sets, so it decodes on its own.
//! - The I-frame playlist (`EXT-X-I-FRAMES-ONLY`) lists every keyframe: PAT, PMT and the
//!   keyframe's packets, each lasting until the next keyframe.
//! - The master playlist names the media playlist (`EXT-X-STREAM-INF`) and the I-frame playlist
//!   (`EXT-X-I-FRAME-STREAM-INF`).
//!
//! Playlists name the TS and each other by relative URI so the same files work from a store
//! folder on disk and behind the HTTP server.

use crate::index::Index;
use std::fmt::Write;

/// Segment target duration: ~6 s, as Apple recommends.
pub const TARGET_SEGMENT_90K: u64 = 6 * 90_000;

/// What the master playlist says about the stream.
#[derive(Debug, Clone, Default)]
pub struct StreamDescription {
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    /// RFC 6381 codec strings, e.g. `avc1.64001e,mp4a.40.2`.
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: u64,
    pub len: u64,
    pub duration_90k: u64,
}

/// End of presentation on the index timeline.
fn end_pts(idx: &Index) -> u64 {
    idx.first_pts.saturating_add(idx.duration_90k)
}

/// Cut the content into segments at keyframes. Content without video (or without keyframes) is
/// one segment per ~6 s of audio sync points, or a single segment.
///
/// The index is input (a file on a storage node): cut points whose time or offset goes
/// backwards, or whose offset lies past the content, are skipped, and every subtraction
/// saturates, so a damaged index gives odd segments, never a panic.
pub fn segments(idx: &Index) -> Vec<Segment> {
    // (time, byte offset) cut candidates
    let cuts: Vec<(u64, u64)> = if idx.entries.is_empty() {
        idx.audio.iter().map(|a| (a.pts, a.offset)).collect()
    } else {
        idx.entries.iter().map(|e| (e.pts, e.rap_offset)).collect()
    };
    let mut chosen: Vec<(u64, u64)> = Vec::new();
    for &(t, o) in &cuts {
        match chosen.last() {
            None => chosen.push((idx.first_pts.min(t), 0)),
            Some(&(lt, lo))
                if t >= lt.saturating_add(TARGET_SEGMENT_90K) && o > lo && o < idx.content_size =>
            {
                chosen.push((t, o))
            }
            _ => {}
        }
    }
    if chosen.is_empty() {
        chosen.push((idx.first_pts, 0));
    }
    let end = end_pts(idx);
    chosen
        .iter()
        .enumerate()
        .map(|(i, &(t, o))| {
            let (nt, no) = chosen
                .get(i + 1)
                .copied()
                .unwrap_or((end.max(t), idx.content_size));
            Segment {
                start: o,
                len: no.saturating_sub(o),
                duration_90k: nt.saturating_sub(t),
            }
        })
        .collect()
}

fn secs(ticks: u64) -> f64 {
    ticks as f64 / 90_000.0
}

fn target_duration(durations: impl Iterator<Item = u64>) -> u64 {
    durations
        .map(|d| secs(d).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// The media playlist: byte-range segments of `ts_uri`.
pub fn media_playlist(idx: &Index, ts_uri: &str) -> String {
    let segs = segments(idx);
    let mut s = String::new();
    let _ = writeln!(s, "#EXTM3U");
    let _ = writeln!(s, "#EXT-X-VERSION:4");
    let _ = writeln!(s, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(s, "#EXT-X-INDEPENDENT-SEGMENTS");
    let _ = writeln!(
        s,
        "#EXT-X-TARGETDURATION:{}",
        target_duration(segs.iter().map(|g| g.duration_90k))
    );
    let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:0");
    for g in &segs {
        let _ = writeln!(s, "#EXTINF:{:.5},", secs(g.duration_90k));
        let _ = writeln!(s, "#EXT-X-BYTERANGE:{}@{}", g.len, g.start);
        let _ = writeln!(s, "{ts_uri}");
    }
    let _ = writeln!(s, "#EXT-X-ENDLIST");
    s
}

/// The I-frame-only playlist: every keyframe with its PAT/PMT, lasting until the next one.
pub fn iframe_playlist(idx: &Index, ts_uri: &str) -> String {
    let end = end_pts(idx);
    let durs: Vec<u64> = idx
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            idx.entries
                .get(i + 1)
                .map_or(end, |n| n.pts)
                .saturating_sub(e.pts)
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "#EXTM3U");
    let _ = writeln!(s, "#EXT-X-VERSION:4");
    let _ = writeln!(s, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(s, "#EXT-X-I-FRAMES-ONLY");
    let _ = writeln!(
        s,
        "#EXT-X-TARGETDURATION:{}",
        target_duration(durs.iter().copied())
    );
    let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:0");
    for (e, d) in idx.entries.iter().zip(&durs) {
        let _ = writeln!(s, "#EXTINF:{:.5},", secs(*d));
        let _ = writeln!(s, "#EXT-X-BYTERANGE:{}@{}", e.ts_len, e.rap_offset);
        let _ = writeln!(s, "{ts_uri}");
    }
    let _ = writeln!(s, "#EXT-X-ENDLIST");
    s
}

/// The master playlist naming the media playlist and (when there is video) the I-frame one.
pub fn master_playlist(
    desc: &StreamDescription,
    media_uri: &str,
    iframe_uri: Option<&str>,
) -> String {
    let mut attrs = format!(
        "BANDWIDTH={},AVERAGE-BANDWIDTH={}",
        desc.bandwidth.max(1),
        desc.average_bandwidth.max(1)
    );
    if !desc.codecs.is_empty() {
        let _ = write!(attrs, ",CODECS=\"{}\"", desc.codecs);
    }
    if let Some((w, h)) = desc.resolution {
        let _ = write!(attrs, ",RESOLUTION={w}x{h}");
    }
    if let Some(f) = desc.frame_rate {
        let _ = write!(attrs, ",FRAME-RATE={f:.3}");
    }
    let mut s = String::new();
    let _ = writeln!(s, "#EXTM3U");
    let _ = writeln!(s, "#EXT-X-VERSION:4");
    let _ = writeln!(s, "#EXT-X-INDEPENDENT-SEGMENTS");
    let _ = writeln!(s, "#EXT-X-STREAM-INF:{attrs}");
    let _ = writeln!(s, "{media_uri}");
    if let Some(uri) = iframe_uri {
        let mut a = format!("BANDWIDTH={}", (desc.bandwidth / 10).max(1));
        let video_codec = desc
            .codecs
            .split(',')
            .find(|c| c.starts_with("avc") || c.starts_with("hvc") || c.starts_with("hev"));
        if let Some(c) = video_codec {
            let _ = write!(a, ",CODECS=\"{c}\"");
        }
        if let Some((w, h)) = desc.resolution {
            let _ = write!(a, ",RESOLUTION={w}x{h}");
        }
        let _ = writeln!(s, "#EXT-X-I-FRAME-STREAM-INF:{a},URI=\"{uri}\"");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(n: u64) -> Index {
        crate::index::synthetic(n)
    }

    #[test]
    fn segments_cover_the_file_at_keyframes() {
        let i = idx(20);
        let segs = segments(&i);
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[0].start, 0);
        assert_eq!(segs.iter().map(|s| s.len).sum::<u64>(), i.content_size);
        assert_eq!(
            segs.iter().map(|s| s.duration_90k).sum::<u64>(),
            20 * 90_000
        );
        assert!(segs.windows(2).all(|w| w[0].start + w[0].len == w[1].start));
        let m = media_playlist(&i, "content.ts");
        assert!(m.contains("#EXT-X-BYTERANGE:112800@0\ncontent.ts"));
        assert!(m.contains("#EXT-X-TARGETDURATION:6"));
        assert!(m.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn iframe_playlist_lists_every_keyframe() {
        let i = idx(5);
        let p = iframe_playlist(&i, "content.ts");
        assert_eq!(p.matches("#EXTINF:1.00000,").count(), 5);
        assert!(p.contains("#EXT-X-BYTERANGE:1880@18800"));
        let m = master_playlist(
            &StreamDescription {
                bandwidth: 1_000_000,
                average_bandwidth: 800_000,
                codecs: "avc1.64001e,mp4a.40.2".into(),
                resolution: Some((320, 240)),
                frame_rate: Some(25.0),
            },
            "media.m3u8",
            Some("iframes.m3u8"),
        );
        assert!(m.contains("RESOLUTION=320x240"));
        assert!(m.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,CODECS=\"avc1.64001e\",RESOLUTION=320x240,URI=\"iframes.m3u8\""));
    }
}
