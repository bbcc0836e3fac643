//! Whole-file tests on MP4s built byte by byte (see `test_boxes`): layouts, sample tables,
//! composition offsets, edit lists, fragments, codecs, and crafted input.

use super::test_boxes::*;
use super::{Movie, Sample, looks_like_mp4, parse};
use crate::Error;
use crate::model::{Codec, CodecConfig, TrackKind};
use crate::time::rescale;

/// Track units of a 12.8 kHz video track → 90 kHz.
fn v90(t: i64) -> i64 {
    rescale(t, 12_800, 90_000).unwrap()
}

fn sample(offset: u64, size: u32, dts: i64, pts: i64, keyframe: bool) -> Sample {
    Sample {
        offset,
        size,
        dts,
        pts,
        keyframe,
    }
}

fn mp4_err(file: &[u8]) -> String {
    match parse(file) {
        Err(e @ Error::Mp4(_)) | Err(e @ Error::Unsupported(_)) => e.to_string(),
        Err(other) => panic!("expected an mp4 error, got {other:?}"),
        Ok(m) => panic!("expected an error, parsed {} tracks", m.tracks.len()),
    }
}

#[test]
fn detects_mp4_heads() {
    assert!(looks_like_mp4(&ftyp(b"isom")));
    assert!(looks_like_mp4(b"\0\0\0\x08free"));
    assert!(looks_like_mp4(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x10"));
    assert!(looks_like_mp4(b"\0\0\0\0moov"));
    assert!(looks_like_mp4(b"\0\0\0\x18styp"));
    assert!(!looks_like_mp4(b"\0\0\0\x04ftyp")); // size below a header
    assert!(!looks_like_mp4(b"\x47\x40\x00\x10\0\0\0\0")); // MPEG-TS
    assert!(!looks_like_mp4(b"\0\0\0\x10abcd"));
    assert!(!looks_like_mp4(b"\0\0\0"));
    assert!(!looks_like_mp4(b""));
}

/// moov at the end, `stco`, `stsc` with several runs, per-sample `stsz`, two `stts` runs, no
/// `stss` (every sample is a keyframe), chunks with gaps between them.
#[test]
fn moov_at_end_with_chunk_runs() {
    let sizes = vec![10, 20, 30, 40, 50, 60, 70, 80];
    // chunk 1: samples 1-3 at 0; chunk 2: 4-6 at 65; chunk 3: 7-8 at 222
    let chunk_at = [0u64, 65, 222];
    let data = payload(372);
    let file = file(false, &data, |base| {
        let spec = TrakSpec {
            stts: vec![(5, 512), (3, 1024)],
            stsc: vec![(1, 3, 1), (3, 2, 1)],
            sizes: Sizes::Each(sizes.clone()),
            chunks: Chunks::Stco(chunk_at.iter().map(|c| (base + c) as u32).collect()),
            ..Default::default()
        };
        moov(1000, &[spec.trak()], None)
    });
    let movie = parse(&file).unwrap();
    assert!(!movie.moov_before_mdat);
    assert!(!movie.fragmented);
    assert_eq!(movie.major_brand, "isom");
    assert_eq!(movie.tracks.len(), 1);
    let t = &movie.tracks[0];
    let base = 32 + 8; // ftyp, mdat header
    let offsets = [0, 10, 30, 65, 105, 155, 222, 292].map(|o| base + o);
    let dts = [0, 512, 1024, 1536, 2048, 2560, 3584, 4608];
    let expected: Vec<Sample> = (0..8)
        .map(|i| sample(offsets[i], sizes[i], v90(dts[i]), v90(dts[i]), true))
        .collect();
    assert_eq!(t.samples, expected);
    // every sample's bytes are where the payload put them
    for (s, o) in t
        .samples
        .iter()
        .zip([0usize, 10, 30, 65, 105, 155, 222, 292])
    {
        assert_eq!(file[s.offset as usize], data[o]);
    }

    assert_eq!(t.timescale, 12_800);
    assert_eq!(t.info.id, 1);
    assert_eq!(t.info.kind, Some(TrackKind::Video));
    assert_eq!(t.info.codec, Some(Codec::H264));
    assert_eq!(t.info.profile.as_deref(), Some("High"));
    assert_eq!((t.info.width, t.info.height), (Some(320), Some(240)));
    assert_eq!(t.info.language, None, "und is no language");
    assert_eq!(
        t.config,
        CodecConfig::Avc {
            nal_length_size: 4,
            sps: vec![SPS.to_vec()],
            pps: vec![PPS.to_vec()],
        }
    );
    // durations 5 × 512 and 3 × 1024: not constant, so the average rate
    let rate = t.info.frame_rate.unwrap();
    assert!((rate - 8.0 * 12_800.0 / 5_632.0).abs() < 1e-9, "{rate}");
    // last sample ends at 4608 + 1024 = 5632 ticks
    assert_eq!(t.info.duration_90k, Some(v90(5632) as u64));
    assert_eq!(movie.duration_90k, v90(5632) as u64);
}

/// moov first ("faststart"), `co64`, one fixed `stsz` size, an AAC track with a language.
#[test]
fn moov_first_with_co64_and_fixed_sizes() {
    let data = payload(4 * 200);
    let file = file(true, &data, |base| {
        let spec = TrakSpec {
            id: 7,
            handler: *b"soun",
            timescale: 48_000,
            language: "eng",
            entry: mp4a(0x40, 2, 48_000, Some(&[0x11, 0x90])),
            stts: vec![(4, 1024)],
            stsc: vec![(1, 2, 1)],
            sizes: Sizes::Fixed {
                size: 200,
                count: 4,
            },
            chunks: Chunks::Co64(vec![base, base + 400]),
            ..Default::default()
        };
        moov(1000, &[spec.trak()], None)
    });
    let movie = parse(&file).unwrap();
    assert!(movie.moov_before_mdat);
    let t = &movie.tracks[0];
    let mdat_payload = file.len() as u64 - 800;
    let a90 = |t: i64| rescale(t, 48_000, 90_000).unwrap();
    let expected: Vec<Sample> = (0..4u64)
        .map(|i| {
            let dts = a90(i as i64 * 1024);
            sample(mdat_payload + i * 200, 200, dts, dts, true)
        })
        .collect();
    assert_eq!(t.samples, expected);
    assert_eq!(t.info.id, 7);
    assert_eq!(t.info.kind, Some(TrackKind::Audio));
    assert_eq!(t.info.codec, Some(Codec::Aac));
    assert_eq!(t.info.profile.as_deref(), Some("LC"));
    assert_eq!(t.info.language.as_deref(), Some("eng"));
    assert_eq!(t.info.sample_rate, Some(48_000));
    assert_eq!(t.info.channels, Some(2));
    assert_eq!(t.info.frame_rate, None);
    assert_eq!(
        t.config,
        CodecConfig::Aac {
            object_type: 2,
            sample_rate_index: 3,
            channel_config: 2
        }
    );
}

/// Decode order I0 P3 B1 B2 P6 B4 B5, one frame = 512 ticks.
const DISPLAY: [i64; 7] = [0, 3, 1, 2, 6, 4, 5];

fn b_frame_file(ctts: (u8, Vec<(u32, u32)>), elst: Option<(u8, Vec<(u64, i64)>)>) -> Vec<u8> {
    let data = payload(7 * 10);
    file(false, &data, |base| {
        let spec = TrakSpec {
            stts: vec![(7, 512)],
            ctts: Some(ctts.clone()),
            stss: Some(vec![1, 5]),
            stsc: vec![(1, 7, 1)],
            sizes: Sizes::Fixed { size: 10, count: 7 },
            chunks: Chunks::Stco(vec![base as u32]),
            elst: elst.clone(),
            ..Default::default()
        };
        moov(1000, &[spec.trak()], None)
    })
}

/// `ctts` version 0 (offsets delayed by one frame so they stay positive), `stss`, and the
/// normal edit ffmpeg writes for that delay.
#[test]
fn b_frames_with_ctts_v0_stss_and_normal_edit() {
    // cto = display + 1 - decode (frames): 1, 3, 0, 0, 3, 0, 0
    let ctts = (0, vec![(1, 512), (1, 1536), (2, 0), (1, 1536), (2, 0)]);
    let file = b_frame_file(ctts, Some((0, vec![(280, 512)])));
    let movie = parse(&file).unwrap();
    let t = &movie.tracks[0];
    for (d, s) in t.samples.iter().enumerate() {
        let dts = d as i64 * 512 - 512;
        let pts = (DISPLAY[d] + 1) * 512 - 512;
        assert_eq!((s.dts, s.pts), (v90(dts), v90(pts)), "sample {d}");
    }
    assert_eq!(t.samples[0].dts, -3600, "first DTS one frame below zero");
    assert_eq!(t.samples[0].pts, 0);
    let keys: Vec<bool> = t.samples.iter().map(|s| s.keyframe).collect();
    assert_eq!(keys, [true, false, false, false, true, false, false]);
    assert_eq!(t.info.frame_rate, Some(25.0));
    // presentation ends after display frame 6: 7 frames
    assert_eq!(t.info.duration_90k, Some(v90(7 * 512) as u64));
}

/// Negative composition offsets: `ctts` version 1, and the same two's-complement values in a
/// version 0 box, as some writers do.
#[test]
fn b_frames_with_negative_ctts() {
    // cto = display - decode (frames): 0, 2, -1, -1, 2, -1, -1
    let neg = (-512i32) as u32;
    let runs = vec![(1, 0), (1, 1024), (2, neg), (1, 1024), (2, neg)];
    for version in [1, 0] {
        let movie = parse(&b_frame_file((version, runs.clone()), None)).unwrap();
        let t = &movie.tracks[0];
        for (d, s) in t.samples.iter().enumerate() {
            assert_eq!(s.dts, v90(d as i64 * 512), "v{version} sample {d}");
            assert_eq!(s.pts, v90(DISPLAY[d] * 512), "v{version} sample {d}");
        }
    }
}

fn edit_file(elst: (u8, Vec<(u64, i64)>)) -> Movie {
    let data = payload(30);
    let file = file(false, &data, |base| {
        let spec = TrakSpec {
            stts: vec![(3, 512)],
            stsc: vec![(1, 3, 1)],
            sizes: Sizes::Fixed { size: 10, count: 3 },
            chunks: Chunks::Stco(vec![base as u32]),
            elst: Some(elst.clone()),
            ..Default::default()
        };
        moov(1000, &[spec.trak()], None)
    });
    parse(&file).unwrap()
}

#[test]
fn empty_edit_delays_the_track() {
    // 500 ms in the 1000 Hz movie timescale = 45000 in 90 kHz, then the media from 0
    let movie = edit_file((0, vec![(500, -1), (120, 0)]));
    let dts: Vec<i64> = movie.tracks[0].samples.iter().map(|s| s.dts).collect();
    assert_eq!(dts, [45_000, 45_000 + 3600, 45_000 + 7200]);
    assert_eq!(movie.duration_90k, 45_000 + 10_800);
}

#[test]
fn multiple_edits_apply_first_empty_and_first_normal() {
    // 64-bit elst: empty 250 ms, another empty (ignored), media from 1024, a second normal
    // edit (ignored)
    let movie = edit_file((1, vec![(250, -1), (1000, -1), (60, 1024), (60, 0)]));
    let pts: Vec<i64> = movie.tracks[0].samples.iter().map(|s| s.pts).collect();
    let expect: Vec<i64> = [0i64, 512, 1024]
        .iter()
        .map(|t| 22_500 + v90(t - 1024))
        .collect();
    assert_eq!(pts, expect);
    assert_eq!(pts[0], 22_500 - 7200);
}

/// Builds a `moof`: `build(moof_len)` gets the final length so data offsets can refer to it.
fn moof_with(build: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let len = build(0).len() as u64;
    let moof = build(len);
    assert_eq!(moof.len() as u64, len);
    moof
}

fn traf(parts: &[Vec<u8>]) -> Vec<u8> {
    bx(b"traf", &parts.concat())
}

fn mfhd(seq: u32) -> Vec<u8> {
    full(b"mfhd", 0, 0, &seq.to_be_bytes())
}

/// Fragmented file: samples in `moov` first, then three fragments exercising `trex`/`tfhd`
/// defaults, `default-base-is-moof`, an explicit `base_data_offset`, the implicit base of a
/// second `traf`, `tfdt` present and absent, `trun` data offsets present and absent,
/// first-sample flags, per-sample duration/size/flags/signed composition offsets.
#[test]
fn fragments_follow_the_moov_samples() {
    const NON_SYNC: u32 = 0x0101_0000;
    const SYNC: u32 = 0x0200_0000;
    let ftyp = ftyp(b"iso6");
    let make_moov = |mdat0: u64| {
        let video = TrakSpec {
            id: 1,
            stts: vec![(2, 512)],
            stsc: vec![(1, 2, 1)],
            sizes: Sizes::Each(vec![11, 12]),
            chunks: Chunks::Stco(vec![mdat0 as u32]),
            ..Default::default()
        };
        let audio = TrakSpec {
            id: 2,
            handler: *b"soun",
            timescale: 48_000,
            entry: mp4a(0x40, 2, 48_000, Some(&[0x11, 0x90])),
            stts: vec![(1, 1024)],
            stsc: vec![(1, 1, 1)],
            sizes: Sizes::Each(vec![13]),
            chunks: Chunks::Stco(vec![mdat0 as u32 + 23]),
            ..Default::default()
        };
        let mvex = [trex(1, 512, 0, NON_SYNC), trex(2, 1024, 100, NON_SYNC)].concat();
        moov(1000, &[video.trak(), audio.trak()], Some(mvex))
    };
    let moov_len = make_moov(0).len() as u64;
    let mdat0_at = ftyp.len() as u64 + moov_len;
    let moov = make_moov(mdat0_at + 8);
    let mdat0 = bx(b"mdat", &payload(36));

    // moof 1: video (default-base-is-moof, tfdt, trun with data offset, first-sample flags,
    // sizes, signed offsets), then audio (no base flags: continues after the video data; no
    // tfdt: continues after its moov sample; a run of only a count)
    let p1 = mdat0_at + mdat0.len() as u64;
    let moof1 = moof_with(|len| {
        let video = traf(&[
            full(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes()),
            full(b"tfdt", 1, 0, &1024u64.to_be_bytes()),
            full(
                b"trun",
                1,
                0x1 | 0x4 | 0x200 | 0x800,
                &Be::default()
                    .u32(3)
                    .i32(len as i32 + 8)
                    .u32(SYNC)
                    .u32(100)
                    .i32(0)
                    .u32(50)
                    .i32(1024)
                    .u32(60)
                    .i32(-512)
                    .0,
            ),
        ]);
        let audio = traf(&[
            full(b"tfhd", 0, 0, &2u32.to_be_bytes()),
            full(b"trun", 0, 0, &2u32.to_be_bytes()),
        ]);
        bx(b"moof", &[mfhd(1), video, audio].concat())
    });
    let d1 = p1 + moof1.len() as u64 + 8;
    let mdat1 = bx(b"mdat", &payload(210 + 200));

    // moof 2: explicit base_data_offset, default duration and size in tfhd, no tfdt, a v0 run
    // with per-sample durations and flags and no data offset
    let p2 = d1 + 410;
    let moof2 = moof_with(|len| {
        let d2 = p2 + len + 8;
        let video = traf(&[
            full(
                b"tfhd",
                0,
                0x1 | 0x8 | 0x10,
                &Be::default().u32(1).u64(d2).u32(256).u32(70).0,
            ),
            full(
                b"trun",
                0,
                0x100 | 0x400,
                &Be::default()
                    .u32(2)
                    .u32(512)
                    .u32(SYNC)
                    .u32(256)
                    .u32(NON_SYNC)
                    .0,
            ),
        ]);
        bx(b"moof", &[mfhd(2), video].concat())
    });
    let d2 = p2 + moof2.len() as u64 + 8;
    let mdat2 = bx(b"mdat", &payload(140));

    // moof 3: tfdt jumps ahead; two count-only runs, the second continuing the first
    let p3 = d2 + 140;
    let moof3 = moof_with(|len| {
        let video = traf(&[
            full(
                b"tfhd",
                0,
                0x02_0000 | 0x10,
                &Be::default().u32(1).u32(30).0,
            ),
            full(b"tfdt", 1, 0, &10_000u64.to_be_bytes()),
            full(b"trun", 0, 0x1, &Be::default().u32(1).i32(len as i32 + 8).0),
            full(b"trun", 0, 0, &Be::default().u32(1).0),
        ]);
        bx(b"moof", &[mfhd(3), video].concat())
    });
    let d3 = p3 + moof3.len() as u64 + 8;
    let mdat3 = bx(b"mdat", &payload(60));

    let file = [ftyp, moov, mdat0, moof1, mdat1, moof2, mdat2, moof3, mdat3].concat();
    assert_eq!(file.len() as u64, d3 + 60);

    let movie = parse(&file).unwrap();
    assert!(movie.fragmented);
    assert!(movie.moov_before_mdat);
    assert_eq!(movie.major_brand, "iso6");

    let m0 = mdat0_at + 8;
    let video = &movie.tracks[0];
    let s = |o, size, dts: i64, pts: i64, key| sample(o, size, v90(dts), v90(pts), key);
    assert_eq!(
        video.samples,
        vec![
            // moov: no stss, both sync
            s(m0, 11, 0, 0, true),
            s(m0 + 11, 12, 512, 512, true),
            // moof 1: tfdt 1024, trex duration 512, first-sample flags then trex flags
            s(d1, 100, 1024, 1024, true),
            s(d1 + 100, 50, 1536, 2560, false),
            s(d1 + 150, 60, 2048, 1536, false),
            // moof 2: continues at 2560, sizes from tfhd, durations and flags per sample
            s(d2, 70, 2560, 2560, true),
            s(d2 + 70, 70, 3072, 3072, false),
            // moof 3: tfdt 10000, trex flags (non-sync), second run follows the first
            s(d3, 30, 10_000, 10_000, false),
            s(d3 + 30, 30, 10_512, 10_512, false),
        ]
    );

    let audio = &movie.tracks[1];
    let a90 = |t: i64| rescale(t, 48_000, 90_000).unwrap();
    let a = |o, dts: i64| sample(o, 100, a90(dts), a90(dts), true);
    assert_eq!(
        audio.samples,
        vec![
            sample(m0 + 23, 13, 0, 0, true),
            // after the video data of the same moof; trex size and duration; audio is always
            // sync whatever trex says
            a(d1 + 210, 1024),
            a(d1 + 310, 2048),
        ]
    );
    assert_eq!(movie.duration_90k, v90(10_512 + 512) as u64);
}

/// One empty track of each sample entry kind the codec test checks.
fn codecs_file() -> Vec<u8> {
    let empty = |id: u32, handler: &[u8; 4], entry: Vec<u8>| TrakSpec {
        id,
        handler: *handler,
        entry,
        ..Default::default()
    };
    let traks = [
        empty(1, b"vide", hvc1(1920, 1080)),
        empty(2, b"vide", raw_visual(b"vp09", 640, 360, &[])),
        empty(3, b"vide", raw_visual(b"mp4v", 720, 576, &esds(0x61))),
        empty(4, b"soun", mp4a(0x6B, 2, 44_100, None)),
        empty(5, b"soun", ac3()),
        empty(
            6,
            b"soun",
            mp4a(0x40, 2, 0, Some(&[0x2B, 0x11, 0x88, 0x00])),
        ),
        empty(7, b"tmcd", bx(b"tmcd", &[0, 0, 0, 0, 0, 0, 0, 1])),
        empty(8, b"soun", quicktime_v1_mp4a(true)),
        empty(9, b"soun", quicktime_v1_mp4a(false)),
    ]
    .map(|t| t.trak());
    [ftyp(b"mp42"), moov(600, &traks, None)].concat()
}

/// Codecs: HEVC (`hvc1`), VP9 without `vpcC` (read by hand), MPEG-2 video in `mp4v`, MP3 in
/// `mp4a`, AC-3, HE-AAC, a timecode track of a handler we do not know, and version 1 sound
/// descriptions in both their QuickTime and ISO layouts.
#[test]
fn codecs_are_named_and_configured() {
    let movie = parse(&codecs_file()).unwrap();
    let ids: Vec<u32> = movie.tracks.iter().map(|t| t.info.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9], "file order");
    assert!(movie.moov_before_mdat, "no mdat at all");
    assert_eq!(movie.duration_90k, 0);
    let t = &movie.tracks;

    assert_eq!(t[0].info.codec, Some(Codec::H265));
    assert_eq!(t[0].info.profile.as_deref(), Some("Main 10"));
    assert_eq!(
        (t[0].info.width, t[0].info.height),
        (Some(1920), Some(1080))
    );
    assert_eq!(
        t[0].config,
        CodecConfig::Hevc {
            nal_length_size: 4,
            vps: vec![vec![0x40, 0x01, 0x0C]],
            sps: vec![vec![0x42, 0x01, 0x01]],
            pps: vec![vec![0x44, 0x01, 0xC1]],
        }
    );

    assert_eq!(t[1].info.codec, Some(Codec::Other("vp09".into())));
    assert_eq!(t[1].info.kind, Some(TrackKind::Video));
    assert_eq!((t[1].info.width, t[1].info.height), (Some(640), Some(360)));
    assert_eq!(t[1].config, CodecConfig::None);

    assert_eq!(t[2].info.codec, Some(Codec::Mpeg2Video));
    assert_eq!((t[2].info.width, t[2].info.height), (Some(720), Some(576)));

    assert_eq!(t[3].info.codec, Some(Codec::MpegAudio));
    assert_eq!(t[3].info.sample_rate, Some(44_100));

    assert_eq!(t[4].info.codec, Some(Codec::Ac3));
    assert_eq!(t[4].info.channels, Some(6), "3/2 + LFE from dac3");

    assert_eq!(t[5].info.codec, Some(Codec::Aac));
    assert_eq!(t[5].info.profile.as_deref(), Some("HE-AAC"));
    assert_eq!(t[5].info.sample_rate, Some(48_000), "SBR output rate");
    assert_eq!(
        t[5].config,
        CodecConfig::Aac {
            object_type: 2,
            sample_rate_index: 6,
            channel_config: 2
        },
        "the AAC core an ADTS header can carry"
    );

    assert_eq!(t[6].info.kind, Some(TrackKind::Other));
    assert_eq!(t[6].info.codec, Some(Codec::Other("tmcd".into())));

    // version 1 sound descriptions: QuickTime's (esds in 'wave') and ISO's (no extra fields)
    for q in &t[7..9] {
        assert_eq!(q.info.codec, Some(Codec::Aac), "track {}", q.info.id);
        assert_eq!(q.info.sample_rate, Some(44_100));
        assert_eq!(q.info.channels, Some(1));
    }
}

/// An `mp4a` with version 1 in its sound description: QuickTime's layout (16 more bytes, the
/// `esds` inside a `wave`) or ISO's `AudioSampleEntryV1` (no more bytes, `esds` directly).
fn quicktime_v1_mp4a(quicktime: bool) -> Vec<u8> {
    let mut body = vec![0u8; 28];
    body[7] = 1; // data_reference_index
    body[9] = 1; // version 1
    body[17] = 2; // channelcount (the template value; the AudioSpecificConfig says mono)
    body[24..26].copy_from_slice(&44_100u16.to_be_bytes());
    // AAC-LC, 44.1 kHz (index 4), mono: 00010 0100 0001 000
    let esds = full(b"esds", 0, 0, &esds_body(0x40, &[0x12, 0x08]));
    if quicktime {
        body.extend_from_slice(&[0u8; 16]);
        let wave = [bx(b"frma", b"mp4a"), esds, vec![0; 8]].concat();
        body.extend_from_slice(&bx(b"wave", &wave));
    } else {
        body.extend_from_slice(&esds);
    }
    bx(b"mp4a", &body)
}

/// ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo, one-byte sizes.
fn esds_body(oti: u8, asc: &[u8]) -> Vec<u8> {
    let dsi = [&[0x05, asc.len() as u8][..], asc].concat();
    let dc_body = [&[oti, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &dsi].concat();
    let dc = [&[0x04, dc_body.len() as u8][..], &dc_body].concat();
    let sl = [0x06, 0x01, 0x02];
    let es_body = [&[0, 1, 0][..], &dc, &sl].concat();
    [&[0x03, es_body.len() as u8][..], &es_body].concat()
}

// ---- crafted input -------------------------------------------------------------------------

/// A valid three-sample file, with `edit` applied to the track before building.
fn crafted(edit: impl Fn(&mut TrakSpec, u64)) -> Vec<u8> {
    file(false, &payload(30), |base| {
        let mut spec = TrakSpec {
            stts: vec![(3, 512)],
            stsc: vec![(1, 3, 1)],
            sizes: Sizes::Each(vec![10, 10, 10]),
            chunks: Chunks::Stco(vec![base as u32]),
            ..Default::default()
        };
        edit(&mut spec, base);
        moov(1000, &[spec.trak()], None)
    })
}

#[test]
fn crafted_baseline_parses() {
    let movie = parse(&crafted(|_, _| {})).unwrap();
    assert_eq!(movie.tracks[0].samples.len(), 3);
}

#[test]
fn missing_moov_is_explained() {
    let file = [ftyp(b"isom"), bx(b"mdat", &payload(100))].concat();
    assert_eq!(
        mp4_err(&file),
        "mp4: no moov box: the file is not a complete MP4 (cut before its index?)"
    );
    assert!(mp4_err(&[]).contains("no moov box"));
}

#[test]
fn zero_timescales_are_errors() {
    let e = mp4_err(&crafted(|t, _| t.timescale = 0));
    assert!(
        e.contains("track 1") && e.contains("'mdhd'") && e.contains("timescale is 0"),
        "{e}"
    );
    let file = [ftyp(b"isom"), moov(0, &[], None)].concat();
    let e = mp4_err(&file);
    assert!(e.contains("'mvhd'") && e.contains("timescale is 0"), "{e}");
}

#[test]
fn samples_beyond_the_file_are_errors() {
    let e = mp4_err(&crafted(|t, _| t.chunks = Chunks::Stco(vec![0xFFFF_FF00])));
    assert!(
        e.contains("beyond the end of the file") && e.contains("'stco'"),
        "{e}"
    );
    let e = mp4_err(&crafted(|t, _| t.chunks = Chunks::Co64(vec![u64::MAX - 5])));
    assert!(
        e.contains("beyond the end of the file") && e.contains("'co64'"),
        "{e}"
    );
    let e = mp4_err(&crafted(|t, _| {
        t.sizes = Sizes::Each(vec![10, u32::MAX, 10])
    }));
    assert!(e.contains("sample 2"), "{e}");
}

#[test]
fn bad_stsc_is_an_error() {
    let e = mp4_err(&crafted(|t, _| t.stsc = vec![(0, 3, 1)]));
    assert!(
        e.contains("'stsc'") && e.contains("first_chunk is 0"),
        "{e}"
    );
    let e = mp4_err(&crafted(|t, _| t.stsc = vec![(1, 1, 1), (1, 2, 1)]));
    assert!(e.contains("does not follow"), "{e}");
    // one chunk of 2: the third sample has no chunk
    let e = mp4_err(&crafted(|t, _| t.stsc = vec![(1, 2, 1)]));
    assert!(e.contains("hold only 2 of the 3 samples"), "{e}");
    // runs for chunks that do not exist are harmless, zero samples per chunk too
    let movie = parse(&crafted(|t, _| {
        t.stsc = vec![(1, 3, 1), (2, 0, 1), (9, 5, 1)]
    }))
    .unwrap();
    assert_eq!(movie.tracks[0].samples.len(), 3);
}

#[test]
fn counts_that_do_not_match_are_errors() {
    let e = mp4_err(&crafted(|t, _| t.stts = vec![(2, 512)]));
    assert!(
        e.contains("'stts'") && e.contains("cover 2 samples but 'stsz' has 3"),
        "{e}"
    );
    let e = mp4_err(&crafted(|t, _| t.stts = vec![(3, 512), (u32::MAX, 1)]));
    assert!(e.contains("'stts'"), "{e}");
    let e = mp4_err(&crafted(|t, _| t.ctts = Some((0, vec![(4, 0)]))));
    assert!(e.contains("'ctts'") && e.contains("cover 4 samples"), "{e}");
    let e = mp4_err(&crafted(|t, _| t.stss = Some(vec![1, 4])));
    assert!(e.contains("'stss'") && e.contains("sync sample 4"), "{e}");
    let e = mp4_err(&crafted(|t, _| t.stss = Some(vec![0])));
    assert!(e.contains("sync sample 0"), "{e}");
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    // 4 billion samples of 1000 bytes in a file of a few hundred bytes
    let e = mp4_err(&crafted(|t, _| {
        t.sizes = Sizes::Fixed {
            size: 1000,
            count: u32::MAX,
        };
        t.stts = vec![(u32::MAX, 1)];
    }));
    assert!(e.contains("'stsz'") && e.contains("cannot fit"), "{e}");
    // a per-sample stsz claiming more entries than its body holds
    let file = crafted(|_, _| {});
    let at = find_box(&file, b"stsz") + 16; // size, type, version/flags, sample_size
    let mut file = file;
    file[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = mp4_err(&file);
    assert!(e.contains("'stsz'"), "{e}");
    // an stts run count nobody could hold
    let e = mp4_err(&crafted(|t, _| t.stts = vec![(u32::MAX, u32::MAX)]));
    assert!(e.contains("'stts'"), "{e}");
}

#[test]
fn structural_damage_is_an_error() {
    // moov cut short
    let file = crafted(|_, _| {});
    let cut = &file[..file.len() - 10];
    let e = mp4_err(cut);
    assert!(e.contains("'moov'") && e.contains("cut short"), "{e}");
    // no sample entry
    let e = mp4_err(&crafted(|t, _| t.entry = vec![]));
    assert!(e.contains("'stsd'"), "{e}");
    // a broken avcC in a codec we handle
    let e = mp4_err(&crafted(|t, _| t.entry = bx(b"avc1", &[0; 78])));
    assert!(e.contains("'avc1'"), "{e}");
    // two moovs
    let file = [ftyp(b"isom"), moov(1000, &[], None), moov(1000, &[], None)].concat();
    assert!(mp4_err(&file).contains("two 'moov' boxes"));
    // a box smaller than its header
    let file = [ftyp(b"isom"), vec![0, 0, 0, 3, b'f', b'r', b'e', b'e']].concat();
    assert!(mp4_err(&file).contains("smaller than its header"));
}

/// Offset of the first box of type `kind` (a plain byte search; test files only).
fn find_box(file: &[u8], kind: &[u8; 4]) -> usize {
    file.windows(4)
        .position(|w| w == kind)
        .expect("box present")
        - 4
}

/// A fragmented file whose only `traf` is `traf_body` (after `mfhd`); the video track's `trex`
/// gives duration 512, size 10.
fn fragmented(traf_body: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let moov = moov(
        1000,
        &[TrakSpec::default().trak()],
        Some(trex(1, 512, 10, 0)),
    );
    let head = [ftyp(b"iso6"), moov].concat();
    let moof = moof_with(|len| bx(b"moof", &[mfhd(1), traf(&[traf_body(len)])].concat()));
    [head, moof, bx(b"mdat", &payload(40))].concat()
}

#[test]
fn crafted_fragments_are_errors() {
    let tfhd_moof = full(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes());
    // a count-only run of 4 billion empty samples
    let e = mp4_err(&fragmented(|_| {
        [
            full(b"tfhd", 0, 0x02_0000 | 0x10, &Be::default().u32(1).u32(0).0),
            full(b"trun", 0, 0, &u32::MAX.to_be_bytes()),
        ]
        .concat()
    }));
    assert!(e.contains("'trun'") && e.contains("cannot fit"), "{e}");
    // a run reaching past the end of the file
    let e = mp4_err(&fragmented(|len| {
        [
            tfhd_moof.clone(),
            full(b"trun", 0, 0x1, &Be::default().u32(5).i32(len as i32 + 8).0),
        ]
        .concat()
    }));
    assert!(
        e.contains("track 1") && e.contains("beyond the end of the file"),
        "{e}"
    );
    // a data offset before the start of the file
    let e = mp4_err(&fragmented(|_| {
        [
            tfhd_moof.clone(),
            full(b"trun", 0, 0x1, &Be::default().u32(1).i32(i32::MIN).0),
        ]
        .concat()
    }));
    assert!(e.contains("outside the file"), "{e}");
    // a track the moov does not have
    let e = mp4_err(&fragmented(|_| {
        full(b"tfhd", 0, 0x02_0000, &9u32.to_be_bytes())
    }));
    assert!(e.contains("track 9 has no 'trak'"), "{e}");
    // a traf without tfhd
    let e = mp4_err(&fragmented(|_| full(b"tfdt", 0, 0, &0u32.to_be_bytes())));
    assert!(e.contains("no 'tfhd'"), "{e}");
    // decode times past 63 bits, and overflowing on the way
    let e = mp4_err(&fragmented(|_| {
        [
            tfhd_moof.clone(),
            full(b"tfdt", 1, 0, &u64::MAX.to_be_bytes()),
        ]
        .concat()
    }));
    assert!(e.contains("63 bits"), "{e}");
    let e = mp4_err(&fragmented(|len| {
        [
            tfhd_moof.clone(),
            full(b"tfdt", 1, 0, &(i64::MAX as u64 - 100).to_be_bytes()),
            full(b"trun", 0, 0x1, &Be::default().u32(2).i32(len as i32 + 8).0),
        ]
        .concat()
    }));
    assert!(e.contains("overflows"), "{e}");
}

/// Every truncation and every single-byte corruption of valid files parses or fails cleanly:
/// no panic, no runaway allocation.
#[test]
fn damaged_files_never_panic() {
    let plain = b_frame_file((1, vec![(7, 512)]), Some((0, vec![(100, -1), (280, 512)])));
    let frag = fragmented(|len| {
        [
            full(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes()),
            full(b"tfdt", 1, 0, &0u64.to_be_bytes()),
            full(
                b"trun",
                1,
                0x1 | 0x4 | 0x100 | 0x200 | 0x800,
                &Be::default()
                    .u32(2)
                    .i32(len as i32 + 8)
                    .u32(0)
                    .u32(512)
                    .u32(10)
                    .i32(0)
                    .u32(512)
                    .u32(10)
                    .i32(-512)
                    .0,
            ),
        ]
        .concat()
    });
    assert!(parse(&plain).is_ok());
    assert!(parse(&frag).is_ok());
    let codecs = codecs_file();
    for file in [&plain, &frag, &codecs] {
        for cut in 0..file.len() {
            let _ = parse(&file[..cut]);
        }
        for at in 0..file.len() {
            for value in [0x00, 0xFF, 0x80, 0x01] {
                let mut damaged = file.clone();
                damaged[at] = value;
                let _ = parse(&damaged);
            }
        }
    }
}

/// Boxes or descriptors nested a hundred thousand deep inside a sample entry: `mp4-atom`'s
/// sample-entry and `esds` decoders would recurse into them and overflow the stack, so they
/// never see them; we walk one level and fail cleanly.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    const DEPTH: usize = 100_000;
    // box i (from the outside) holds the DEPTH - i - 1 boxes inside it
    let mut nested = Vec::with_capacity(DEPTH * 8);
    for i in 0..DEPTH {
        nested.extend_from_slice(&(((DEPTH - i) * 8) as u32).to_be_bytes());
        nested.extend_from_slice(b"moov");
    }
    let entry = raw_visual(b"avc1", 16, 16, &nested);
    let e = mp4_err(&crafted(|t, _| t.entry = entry.clone()));
    assert!(e.contains("no 'avcC'"), "{e}");

    // ES_Descriptors inside ES_Descriptors: tag 3 and a 4-byte size each
    let mut desc = Vec::with_capacity(DEPTH * 5);
    for i in 0..DEPTH {
        let len = ((DEPTH - i - 1) * 5) as u32;
        desc.extend_from_slice(&[
            0x03,
            0x80 | ((len >> 21) & 0x7F) as u8,
            0x80 | ((len >> 14) & 0x7F) as u8,
            0x80 | ((len >> 7) & 0x7F) as u8,
            (len & 0x7F) as u8,
        ]);
    }
    let mut body = vec![0u8; 28];
    body[7] = 1;
    body.extend_from_slice(&full(b"esds", 0, 0, &desc));
    let entry = bx(b"mp4a", &body);
    let e = mp4_err(&crafted(|t, _| {
        t.handler = *b"soun";
        t.entry = entry.clone();
    }));
    assert!(e.contains("'esds'"), "{e}");
}
