//! The HLS playlist writers (`media::hls`) fed arbitrary index entries, audio sync points,
//! durations and stream descriptions: they never panic, and what they write parses as a
//! playlist: `#EXTM3U` first, known tags only, `EXTINF` durations finite and non-negative and
//! within `EXT-X-TARGETDURATION` once rounded, `EXT-X-BYTERANGE:N@O` numbers, a URI after each
//! segment, `EXT-X-ENDLIST` last; the master names its media playlist after `EXT-X-STREAM-INF`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::hls::{StreamDescription, iframe_playlist, master_playlist, media_playlist};
use media::index::{AudioSync, Entry, FrameType, Index};

/// Little-endian integers from the input, zero once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
    /// Mostly small numbers, sometimes any 64-bit value.
    fn num(&mut self) -> u64 {
        let v = self.u64();
        if v & 3 == 0 { v >> 2 } else { (v >> 2) % 2_000_000 }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut i = Input(data);
    let mut idx = Index {
        content_size: i.num(),
        first_pts: i.num(),
        duration_90k: i.num(),
        ..Index::default()
    };
    let entries = (i.u64() % 64) as usize;
    let audio = (i.u64() % 16) as usize;
    for _ in 0..entries {
        let pts = i.num();
        let rap_offset = i.num();
        let ts_len = i.u64() as u32;
        idx.entries.push(Entry {
            pts,
            pcr: pts,
            offset: rap_offset,
            rap_offset,
            ts_len,
            frame_size: ts_len,
            frame_type: FrameType::Idr,
            parameter_sets: true,
        });
    }
    for _ in 0..audio {
        let (pts, offset) = (i.num(), i.num());
        idx.audio.push(AudioSync {
            pts,
            offset,
            pid: 0x101,
        });
    }
    check_media(&media_playlist(&idx, "content.ts"));
    check_media(&iframe_playlist(&idx, "content.ts"));
    let desc = StreamDescription {
        bandwidth: i.u64(),
        average_bandwidth: i.u64(),
        codecs: "avc1.64001e,mp4a.40.2".into(),
        resolution: Some((i.u64() as u32, i.u64() as u32)),
        frame_rate: Some(f64::from_bits(i.u64())).filter(|f| f.is_finite()),
    };
    check_master(&master_playlist(&desc, "media.m3u8", Some("iframes.m3u8")));
});

fn check_media(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    assert_eq!(lines.last(), Some(&"#EXT-X-ENDLIST"), "{text}");
    let mut target = None;
    let mut pending_uri = false;
    for line in &lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = Some(v.parse::<u64>().unwrap_or_else(|_| panic!("{line:?}")));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v
                .strip_suffix(',')
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("{line:?}"));
            assert!(d.is_finite() && d >= 0.0, "{line:?}");
            let t = target.unwrap_or_else(|| panic!("EXTINF before TARGETDURATION"));
            assert!(d.round() as u64 <= t, "{line:?} over target {t}");
            pending_uri = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            let (n, o) = v.split_once('@').unwrap_or_else(|| panic!("{line:?}"));
            assert!(n.parse::<u64>().is_ok() && o.parse::<u64>().is_ok(), "{line:?}");
        } else if line.starts_with('#') {
            let known = [
                "#EXTM3U",
                "#EXT-X-VERSION:",
                "#EXT-X-PLAYLIST-TYPE:VOD",
                "#EXT-X-INDEPENDENT-SEGMENTS",
                "#EXT-X-I-FRAMES-ONLY",
                "#EXT-X-MEDIA-SEQUENCE:",
                "#EXT-X-ENDLIST",
            ];
            assert!(known.iter().any(|k| line.starts_with(k)), "{line:?}");
        } else {
            assert!(pending_uri && !line.is_empty(), "{line:?}");
            pending_uri = false;
        }
    }
    assert!(!pending_uri, "segment without URI");
}

fn check_master(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"));
    let inf = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-STREAM-INF:BANDWIDTH="))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(lines.get(inf + 1), Some(&"media.m3u8"));
    assert!(lines.iter().all(|l| !l.is_empty()), "{text}");
}
