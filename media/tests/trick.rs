//! Trick play on real content, with ffmpeg as the judge.
//!
//! The source is the `h264_aac.ts` fixture (media-fixtures: five seconds of test pattern and
//! tone, H.264 with two B-frames, 1 s GOP, SPS/PPS before every IDR, AAC); our demuxer reads it and our muxer writes it again the way installed content is
//! written (PAT+PMT before every keyframe, PCR at keyframes); `scan_ts` indexes it. Then each
//! trick run (forward and backward, several speeds) goes through `TrickPlan` and `TrickWriter`
//! as the streamer would drive them, and the output is checked twice: by our own demuxer and a
//! packet walk (video PES only, PTS exactly as planned, PCR increasing and never after the DTS
//! it precedes, continuity counters continuous), and by ffmpeg (decodes with no message at all;
//! ffprobe sees only I frames with increasing times).
//!
//! ffmpeg/ffprobe are required (DESIGN.md section 4: the test command installs them); a missing
//! binary fails these tests with a message rather than skipping them.

use media::index::{Index, scan_ts};
use media::model::Codec;
use media::ts::demux::Demuxer;
use media::ts::mux::{Muxer, StreamSpec};
use media::ts::packet::{PACKET_LEN, PID_PAT, Packet};
use media::ts::pes::PesHeader;
use media::ts::trick::{MIN_TRICK_GAP_90K, TrickPlan, TrickStep, TrickWriter};
use media_fixtures::Fixture;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PTS_MASK: u64 = (1 << 33) - 1;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-trick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn require(tool: &str) {
    if let Err(e) = media_fixtures::require_tool(tool) {
        panic!("{e}");
    }
}

/// Installed-style content and its index, made once per test binary.
fn content() -> &'static (Vec<u8>, Index) {
    static CONTENT: OnceLock<(Vec<u8>, Index)> = OnceLock::new();
    CONTENT.get_or_init(|| {
        let src = Fixture::H264AacTs.path().unwrap_or_else(|e| panic!("{e}"));
        let data = std::fs::read(&src).expect("read the fixture");

        let mut d = Demuxer::new(&data).expect("demux source");
        let streams = d.probe_streams().expect("streams").to_vec();
        let vpid = streams.iter().find(|s| s.codec == Codec::H264).unwrap().pid;
        let apid = streams.iter().find(|s| s.codec == Codec::Aac).unwrap().pid;
        let mut m = Muxer::new(vec![StreamSpec::video(0x1B), StreamSpec::audio(0x0F, None)]);
        let mut ts = Vec::new();
        while let Some(f) = d.next_frame() {
            let f = f.expect("source frame");
            let stream = if f.pid == vpid {
                0
            } else if f.pid == apid {
                1
            } else {
                continue;
            };
            let pts = f.pts.expect("pts");
            let dts = f.dts.unwrap_or(pts);
            m.write_frame(stream, pts, dts, f.random_access, &f.data, &mut ts);
        }
        let (index, _) = scan_ts(&ts).expect("index our content");
        assert_eq!(index.entries.len(), 5, "one keyframe per second");
        assert!(index.entries.iter().all(|e| e.parameter_sets));
        (ts, index)
    })
}

/// Runs a whole trick run the way the streamer does; returns the plan's steps and the output.
fn trick_run(scale: f64, from_pts: u64, out_start: u64) -> (Vec<TrickStep>, Vec<u8>) {
    let (ts, index) = content();
    let steps: Vec<TrickStep> = TrickPlan::new(index, from_pts, scale, out_start)
        .unwrap()
        .collect();
    let mut w = TrickWriter::new(index.video_pid, index.pcr_pid);
    let mut out = Vec::new();
    for s in &steps {
        let e = &index.entries[s.entry];
        let span = &ts[e.rap_offset as usize..(e.rap_offset + u64::from(e.ts_len)) as usize];
        let n = w.push_span(span, e.pts, s.out_pts, &mut out).unwrap();
        assert!(n >= 3);
    }
    (steps, out)
}

/// Our own reading of the output: demuxer plus a packet walk.
fn check_with_our_demuxer(steps: &[TrickStep], out: &[u8], video_pid: u16) {
    assert_eq!(out.len() % PACKET_LEN, 0);
    let mut d = Demuxer::new(out).unwrap();
    let streams = d.probe_streams().unwrap().to_vec();
    assert_eq!(streams.len(), 1, "video only: {streams:?}");
    assert_eq!(
        (streams[0].pid, &streams[0].codec),
        (video_pid, &Codec::H264)
    );
    let mut pts = Vec::new();
    while let Some(f) = d.next_frame() {
        let f = f.unwrap();
        assert_eq!(f.pid, video_pid);
        assert!(f.random_access);
        pts.push(f.pts.unwrap() as u64);
    }
    let stats = d.stats();
    assert_eq!(stats.cc_errors, 0);
    assert_eq!(stats.pcr_discontinuities, 0);
    let want: Vec<u64> = steps.iter().map(|s| s.out_pts & PTS_MASK).collect();
    assert_eq!(pts, want);
    assert!(pts.windows(2).all(|w| w[1] >= w[0] + MIN_TRICK_GAP_90K));

    // Packet walk: PIDs, counters, PCR against the DTS of the next PES start.
    let mut last_cc: Vec<(u16, u8)> = Vec::new();
    let mut pending_pcr: Vec<u64> = Vec::new();
    let mut last_pcr = None;
    for (i, raw) in out.chunks(PACKET_LEN).enumerate() {
        let p = Packet::parse(raw, (i * PACKET_LEN) as u64).unwrap();
        assert!(
            [PID_PAT, 0x1000, video_pid].contains(&p.pid),
            "pid {:#x}",
            p.pid
        );
        assert!(!p.adaptation.is_some_and(|a| a.discontinuity));
        let payload = raw[3] & 0x10 != 0;
        match last_cc.iter_mut().find(|(pid, _)| *pid == p.pid) {
            Some((_, c)) => {
                let want = if payload { (*c + 1) & 0xF } else { *c };
                assert_eq!(p.continuity_counter, want, "packet {i}");
                *c = want;
            }
            None => last_cc.push((p.pid, p.continuity_counter)),
        }
        if let Some(pcr) = p.pcr() {
            assert!(
                last_pcr.is_none_or(|l| pcr > l),
                "PCR not increasing at {i}"
            );
            last_pcr = Some(pcr);
            pending_pcr.push(pcr);
        }
        if p.pid == video_pid && p.pusi {
            let h = PesHeader::parse(p.payload, 0).unwrap();
            let dts = h.dts.or(h.pts).unwrap();
            for pcr in pending_pcr.drain(..) {
                assert!(pcr <= dts * 300, "PCR {pcr} after DTS {dts} at packet {i}");
            }
        }
    }
}

/// ffmpeg decodes the output without a word; ffprobe sees I frames only, in time order.
fn check_with_ffmpeg(name: &str, steps: &[TrickStep], out: &[u8]) {
    require("ffmpeg");
    require("ffprobe");
    let path = scratch().join(format!("{name}.ts"));
    std::fs::write(&path, out).unwrap();
    let dec = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(dec.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&dec.stdout),
        String::from_utf8_lossy(&dec.stderr)
    );
    assert!(said.trim().is_empty(), "ffmpeg said: {said}");
    let frames = ffprobe_frames(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(frames.len(), steps.len(), "{frames:?}");
    for (n, (pict, t)) in frames.iter().enumerate() {
        assert_eq!(pict, "I", "frame {n}");
        let want = (steps[n].out_pts & PTS_MASK) as f64 / 90_000.0;
        assert!((t - want).abs() < 0.0005, "frame {n}: {t} vs {want}");
    }
    assert!(frames.windows(2).all(|w| w[1].1 > w[0].1));
}

fn ffprobe_frames(path: &Path) -> Vec<(String, f64)> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_frames"])
        .args([
            "-show_entries",
            "frame=pict_type,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // csv order follows ffprobe's field order: pts_time, pict_type.
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let t = f.iter().find_map(|x| x.parse::<f64>().ok()).unwrap();
            let p = f.iter().find(|x| x.parse::<f64>().is_err()).unwrap();
            (p.to_string(), t)
        })
        .collect()
}

#[test]
fn forward_at_4x_from_the_start() {
    let (_, index) = content();
    let from = index.entries[0].pts;
    let (steps, out) = trick_run(4.0, from, 200_000);
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0].out_pts, 200_000);
    for s in &steps {
        assert_eq!(s.out_pts, 200_000 + (s.content_pts - from) / 4);
    }
    check_with_our_demuxer(&steps, &out, index.video_pid);
    check_with_ffmpeg("fwd4", &steps, &out);
}

#[test]
fn backward_at_4x_from_the_middle() {
    let (_, index) = content();
    let from = index.entries[3].pts + 30_000;
    let (steps, out) = trick_run(-4.0, from, 500_000);
    assert_eq!(
        steps.iter().map(|s| s.entry).collect::<Vec<_>>(),
        (0..=3).rev().collect::<Vec<_>>()
    );
    check_with_our_demuxer(&steps, &out, index.video_pid);
    check_with_ffmpeg("bwd4", &steps, &out);
}

#[test]
fn sixteen_times_both_ways_skips_to_keep_the_rate() {
    let (_, index) = content();
    let first = index.entries[0].pts;
    let last = index.entries[4].pts;
    let (steps, out) = trick_run(16.0, first, 100_000);
    assert_eq!(steps.len(), 3, "every other keyframe at 16x with a 1 s GOP");
    check_with_our_demuxer(&steps, &out, index.video_pid);
    check_with_ffmpeg("fwd16", &steps, &out);
    let (steps, out) = trick_run(-16.0, last, 100_000);
    assert_eq!(steps.len(), 3);
    check_with_our_demuxer(&steps, &out, index.video_pid);
    check_with_ffmpeg("bwd16", &steps, &out);
}

#[test]
fn output_across_the_33_bit_wrap_plays() {
    let (_, index) = content();
    let from = index.entries[0].pts;
    // The output timeline crosses 2^33 in the middle of the run.
    let (steps, out) = trick_run(2.0, from, PTS_MASK - 100_000);
    assert!(steps.first().unwrap().out_pts < PTS_MASK && steps.last().unwrap().out_pts > PTS_MASK);
    let mut d = Demuxer::new(&out).unwrap();
    let mut pts = Vec::new();
    while let Some(f) = d.next_frame() {
        pts.push(f.unwrap().pts.unwrap() as u64);
    }
    // The demuxer unwraps: the output runs on smoothly through the wrap.
    let want: Vec<u64> = steps.iter().map(|s| s.out_pts).collect();
    assert_eq!(pts, want);
    assert_eq!(d.stats().cc_errors, 0);
}

#[test]
fn real_spans_damaged_are_errors_not_panics() {
    let (ts, index) = content();
    let e = &index.entries[3];
    let span = &ts[e.rap_offset as usize..(e.rap_offset + u64::from(e.ts_len)) as usize];
    let mut out = Vec::new();
    let mut w = TrickWriter::new(index.video_pid, index.pcr_pid);
    assert!(
        w.push_span(&span[..span.len() - 100], e.pts, 0, &mut out)
            .is_err()
    );
    assert!(
        w.push_span(&span[..2 * PACKET_LEN], e.pts, 0, &mut out)
            .is_err()
    );
    assert!(
        w.push_span(&span[5..5 + 4 * PACKET_LEN], e.pts, 0, &mut out)
            .is_err()
    );
    let mut wrong = TrickWriter::new(index.video_pid + 7, index.pcr_pid);
    assert!(wrong.push_span(span, e.pts, 0, &mut out).is_err());
    assert!(out.is_empty());
    // Packets from inside the keyframe (no PES start, no PSI) are refused too.
    assert!(
        w.push_span(&span[4 * PACKET_LEN..8 * PACKET_LEN], e.pts, 0, &mut out)
            .is_err()
    );
    assert!(out.is_empty());
}
