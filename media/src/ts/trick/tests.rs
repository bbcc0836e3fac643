//! Unit tests: the plan on synthetic indexes, the writer on spans our own muxer writes (fake
//! video payloads; the real-content, ffmpeg-checked tests are in `media/tests/trick.rs`).

use super::*;
use crate::ts::mux::{Muxer, PMT_PID, StreamSpec};
use crate::ts::pes::PesHeader;

const GOP: u64 = 90_000;
const FIRST: u64 = 90_000;

fn index(n: u64) -> Index {
    crate::index::synthetic(n)
}

/// The plan as the contract states it, written the obvious way.
fn reference(idx: &Index, from: u64, scale: f64, start: u64) -> Vec<TrickStep> {
    let mut order: Vec<usize> = (0..idx.entries.len()).collect();
    if scale < 0.0 {
        order.reverse();
    }
    let mut out = Vec::new();
    let mut last: Option<u64> = None;
    for i in order {
        let pts = idx.entries[i].pts;
        if (scale > 0.0 && pts < from) || (scale < 0.0 && pts > from) {
            continue;
        }
        let o = start + (pts.abs_diff(from) as f64 / scale.abs()).round() as u64;
        if last.is_some_and(|l| o < l + MIN_TRICK_GAP_90K) {
            continue;
        }
        last = Some(o);
        out.push(TrickStep {
            entry: i,
            out_pts: o,
            content_pts: pts,
        });
    }
    out
}

#[test]
fn plan_forward_every_keyframe_until_the_gap_bites() {
    let idx = index(21);
    let all = |s: f64| {
        TrickPlan::new(&idx, FIRST, s, 1000)
            .unwrap()
            .collect::<Vec<_>>()
    };
    // 2x and 4x: one keyframe per GOP, out_pts = start + k * GOP / s.
    for s in [2.0, 4.0, 8.0] {
        let steps = all(s);
        assert_eq!(steps.len(), 21, "scale {s}");
        for (k, st) in steps.iter().enumerate() {
            assert_eq!(st.entry, k);
            assert_eq!(st.content_pts, FIRST + k as u64 * GOP);
            assert_eq!(st.out_pts, 1000 + (k as u64 * GOP) / s as u64);
        }
    }
    // 8x lands exactly on the minimum gap (kept); 16x would be twice as dense: every other one.
    let steps = all(16.0);
    assert_eq!(
        steps.iter().map(|s| s.entry).collect::<Vec<_>>(),
        (0..21).step_by(2).collect::<Vec<_>>()
    );
    assert!(
        steps
            .windows(2)
            .all(|w| w[1].out_pts - w[0].out_pts >= MIN_TRICK_GAP_90K)
    );
    assert_eq!(steps[1].out_pts, 1000 + 2 * GOP / 16);
}

#[test]
fn plan_backward_from_the_middle() {
    let idx = index(21);
    let from = FIRST + 10 * GOP + 30_000; // between keyframes 10 and 11
    let steps: Vec<_> = TrickPlan::new(&idx, from, -4.0, 500).unwrap().collect();
    assert_eq!(
        steps.iter().map(|s| s.entry).collect::<Vec<_>>(),
        (0..=10).rev().collect::<Vec<_>>()
    );
    for st in &steps {
        assert_eq!(st.out_pts, 500 + (from - st.content_pts) / 4);
    }
    // Forward from the same place starts at the next keyframe, rounded to nearest.
    let mut fwd = TrickPlan::new(&idx, from, 16.0, 500).unwrap();
    let first = fwd.next().unwrap();
    assert_eq!(first.entry, 11);
    assert_eq!(first.out_pts, 500 + 3750); // 60_000 / 16
    // Rounding to nearest: 60_000 / 2.5 is exact, 60_001 / 16 = 3750.06 rounds down.
    let st = TrickPlan::new(&idx, from - 1, 16.0, 0)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(st.out_pts, 3750);
}

#[test]
fn plan_matches_the_contract_for_all_speeds_and_starts() {
    let idx = index(40);
    let speeds = [2.0, 3.0, 4.0, 8.0, 16.0, 32.0, 2.5];
    for s in speeds.iter().flat_map(|&s| [s, -s]) {
        for from in [
            0,
            FIRST,
            FIRST + 1,
            FIRST + 17 * GOP,
            FIRST + 39 * GOP,
            u64::MAX / 4,
        ] {
            let got: Vec<_> = TrickPlan::new(&idx, from, s, 7).unwrap().collect();
            assert_eq!(got, reference(&idx, from, s, 7), "scale {s} from {from}");
        }
    }
}

#[test]
fn plan_ends_and_empty_runs() {
    let idx = index(5);
    assert_eq!(
        TrickPlan::new(&idx, FIRST + 4 * GOP + 1, 2.0, 0)
            .unwrap()
            .count(),
        0
    );
    assert_eq!(TrickPlan::new(&idx, FIRST - 1, -2.0, 0).unwrap().count(), 0);
    assert_eq!(TrickPlan::new(&idx, FIRST, -2.0, 0).unwrap().count(), 1);
    assert_eq!(
        TrickPlan::new(&Index::default(), 0, 2.0, 0)
            .unwrap()
            .count(),
        0
    );
    let mut p = TrickPlan::new(&idx, 0, 2.0, 0).unwrap();
    assert_eq!(p.by_ref().count(), 5);
    assert_eq!(p.next(), None);
    assert_eq!(p.next(), None);
}

#[test]
fn plan_refuses_slow_or_non_finite_scales() {
    let idx = index(3);
    for s in [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.99,
        -1.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let e = TrickPlan::new(&idx, FIRST, s, 0).unwrap_err();
        assert!(matches!(e, Error::TrickScale { .. }), "{s}: {e}");
    }
    assert!(TrickPlan::new(&idx, FIRST, -2.0, 0).is_ok());
}

/// Content from our muxer: video (PCR) and audio, keyframes every 25 frames at 25 fps with
/// DTS two frames behind PTS. Returns the TS and, per keyframe, (rap, end, pts).
fn content(keyframes: usize, first_pts: u64) -> (Vec<u8>, Vec<(usize, usize, u64)>) {
    let mut m = Muxer::new(vec![StreamSpec::video(0x1B), StreamSpec::audio(0x0F, None)]);
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for f in 0..keyframes as u64 * 25 {
        let dts = first_pts + f * 3600;
        let pts = dts + 7200;
        let key = f % 25 == 0;
        let size = if key { 3000 } else { 400 };
        let w = m.write_frame(
            0,
            pts as i64,
            dts as i64,
            key,
            &vec![f as u8; size],
            &mut out,
        );
        if key {
            keys.push((w.psi_offset.unwrap() as usize, w.end_offset as usize, pts));
        }
        m.write_frame(1, dts as i64, dts as i64, true, &[9; 300], &mut out);
    }
    (out, keys)
}

struct Parsed {
    pids: Vec<u16>,
    pes: Vec<(u64, Option<u64>)>,
    pcrs: Vec<(usize, u64)>,
}

/// Checks alignment and per-PID continuity; collects PES timestamps and PCRs.
fn parse_output(out: &[u8]) -> Parsed {
    assert_eq!(out.len() % PACKET_LEN, 0);
    let mut last_cc: Vec<(u16, u8)> = Vec::new();
    let mut parsed = Parsed {
        pids: Vec::new(),
        pes: Vec::new(),
        pcrs: Vec::new(),
    };
    for (i, raw) in out.chunks(PACKET_LEN).enumerate() {
        let p = Packet::parse(raw, 0).unwrap();
        assert!(!p.adaptation.is_some_and(|a| a.discontinuity));
        let payload = raw[3] & 0x10 != 0;
        match last_cc.iter_mut().find(|(pid, _)| *pid == p.pid) {
            Some((_, c)) => {
                let want = if payload { (*c + 1) & 0xF } else { *c };
                assert_eq!(p.continuity_counter, want, "packet {i} pid {:#x}", p.pid);
                *c = want;
            }
            None => last_cc.push((p.pid, p.continuity_counter)),
        }
        if !parsed.pids.contains(&p.pid) {
            parsed.pids.push(p.pid);
        }
        if let Some(pcr) = p.pcr() {
            parsed.pcrs.push((i, pcr));
        }
        if p.pid == 0x100 && p.pusi {
            let h = PesHeader::parse(p.payload, 0).unwrap();
            parsed.pes.push((h.pts.unwrap(), h.dts));
        }
    }
    parsed
}

#[test]
fn writer_restamps_drops_audio_and_keeps_counters_continuous() {
    let (ts, keys) = content(6, FIRST);
    let mut w = TrickWriter::new(0x100, 0x100);
    let mut out = Vec::new();
    // Backward at 4x: keyframes 5..0, one output frame per 22_500 ticks.
    let mut total = 0;
    for (n, &(rap, end, pts)) in keys.iter().rev().enumerate() {
        let out_pts = 1_000_000 + n as u64 * 22_500;
        total += w.push_span(&ts[rap..end], pts, out_pts, &mut out).unwrap();
    }
    assert_eq!(total * PACKET_LEN, out.len());
    let p = parse_output(&out);
    assert_eq!(p.pids, vec![PID_PAT, PMT_PID, 0x100]);
    assert_eq!(p.pes.len(), 6);
    for (n, &(pts, dts)) in p.pes.iter().enumerate() {
        let want = 1_000_000 + n as u64 * 22_500;
        assert_eq!((pts, dts), (want, Some(want - 7200)));
    }
    // The muxer's keyframe PCR (DTS - lead), moved with the frame, and PCR-only packets
    // between frames so that PCRs are never more than the muxer's interval apart.
    let on_keyframes: Vec<u64> = p
        .pcrs
        .iter()
        .filter(|&&(at, _)| Packet::parse(&out[at * PACKET_LEN..], 0).unwrap().pusi)
        .map(|&(_, pcr)| pcr)
        .collect();
    assert_eq!(on_keyframes.len(), 6);
    for (n, &pcr) in on_keyframes.iter().enumerate() {
        assert_eq!(pcr, (1_000_000 + n as u64 * 22_500 - 7200 - 63_000) * 300);
    }
    assert_eq!(p.pcrs.len(), 6 + 5 * 8); // 22_500 / 2_700: 8 fillers per gap
    assert!(
        p.pcrs
            .windows(2)
            .all(|w| w[1].1 > w[0].1 && w[1].1 - w[0].1 <= 2700 * 300)
    );
    // The PMT lists only the video stream.
    let pmt_pkt = out.chunks(PACKET_LEN).nth(1).unwrap();
    let pmt = Pmt::parse(Packet::parse(pmt_pkt, 0).unwrap().section()).unwrap();
    assert_eq!(pmt.streams.len(), 1);
    assert_eq!((pmt.streams[0].pid, pmt.pcr_pid), (0x100, 0x100));
}

#[test]
fn writer_wraps_at_33_bits() {
    // Content past the wrap: the index holds unwrapped PTS, the TS holds them mod 2^33.
    let base = PTS_MASK - 50_000;
    let (ts, keys) = content(2, base);
    let (rap, end, pts) = keys[1];
    assert!(pts > PTS_MASK);
    let mut w = TrickWriter::new(0x100, 0x100);
    let mut out = Vec::new();
    let out_pts = (1u64 << 33) * 2 + 123;
    w.push_span(&ts[rap..end], pts, out_pts, &mut out).unwrap();
    let p = parse_output(&out);
    assert_eq!(
        p.pes,
        vec![(123, Some((123u64.wrapping_sub(7200)) & PTS_MASK))]
    );
    let pcr = p.pcrs[0].1;
    assert_eq!(pcr, ((123u64.wrapping_sub(70_200)) & PTS_MASK) * 300);
}

#[test]
fn writer_inserts_a_pcr_when_the_span_has_none() {
    let (ts, keys) = content(2, FIRST);
    let mut w = TrickWriter::new(0x100, 0x100);
    let mut out = Vec::new();
    let (rap, end, pts) = keys[0];
    w.push_span(&ts[rap..end], pts, 200_000, &mut out).unwrap();
    // Second span with the PCR flag of the keyframe's first packet cleared.
    let (rap, end, pts) = keys[1];
    let mut span = ts[rap..end].to_vec();
    assert_eq!(span[2 * PACKET_LEN + 5] & 0x10, 0x10);
    span[2 * PACKET_LEN + 5] &= !0x10;
    let before = out.len() / PACKET_LEN;
    let n = w.push_span(&span, pts, 300_000, &mut out).unwrap();
    assert_eq!(n, 39 + span.len() / PACKET_LEN + 1);
    let p = parse_output(&out);
    let (at, pcr) = *p.pcrs.last().unwrap();
    // Fillers first (from PCR 129_800 to 237_000 at 2_700: 39), then PAT and PMT.
    assert_eq!((at, pcr), (before + 39 + 2, (300_000 - 63_000) * 300));
    let pkt = Packet::parse(&out[at * PACKET_LEN..], 0).unwrap();
    assert!(pkt.pid == 0x100 && !pkt.has_payload());
    // Clamped at 0 near the start of the output timeline.
    let mut w = TrickWriter::new(0x100, 0x100);
    let mut o = Vec::new();
    w.push_span(&span, pts, 1000, &mut o).unwrap();
    assert_eq!(parse_output(&o).pcrs[0].1, 0);
}

#[test]
fn writer_uses_earlier_psi_and_leaves_output_untouched_on_error() {
    let (ts, keys) = content(3, FIRST);
    let mut w = TrickWriter::new(0x100, 0x100);
    let mut out = Vec::new();
    let (rap, end, pts) = keys[1];
    // No PSI seen yet: a span that starts at the PES is refused.
    assert!(w.push_span(&ts[rap + 376..end], pts, 0, &mut out).is_err());
    assert!(out.is_empty());
    w.push_span(&ts[rap..end], pts, 100_000, &mut out).unwrap();
    let len = out.len();
    // Errors on the way leave the output and the counters alone.
    let mut bad = ts[rap..end].to_vec();
    let last = bad.len() - PACKET_LEN;
    bad[last] = 0x00;
    assert!(w.push_span(&bad, pts, 120_000, &mut out).is_err());
    assert!(
        w.push_span(&bad[..bad.len() - 1], pts, 120_000, &mut out)
            .is_err()
    );
    assert_eq!(out.len(), len);
    // Now without its own PAT/PMT: the ones from the first span are repeated.
    let (rap, end, pts) = keys[2];
    w.push_span(&ts[rap + 376..end], pts, 120_000, &mut out)
        .unwrap();
    let p = parse_output(&out);
    assert_eq!(p.pes.len(), 2);
    assert_eq!(p.pids, vec![PID_PAT, PMT_PID, 0x100]);
}

#[test]
fn writer_refuses_bad_spans_without_panicking() {
    let (ts, keys) = content(2, FIRST);
    let (rap, end, pts) = keys[0];
    let span = &ts[rap..end];
    let try_span = |video: u16, pcr: u16, s: &[u8]| {
        let mut out = Vec::new();
        let r = TrickWriter::new(video, pcr).push_span(s, pts, 90_000, &mut out);
        if r.is_err() {
            assert!(out.is_empty());
        }
        r
    };
    assert!(try_span(0x100, 0x100, &[]).is_err());
    assert!(try_span(0x100, 0x100, &span[..PACKET_LEN * 3 - 1]).is_err());
    assert!(try_span(0x100, 0x100, &span[..PACKET_LEN * 2]).is_err()); // PAT+PMT only
    assert!(try_span(0x100, 0x100, &span[1..PACKET_LEN * 4 + 1]).is_err()); // no sync
    assert!(try_span(0x200, 0x200, span).is_err()); // video PID not in the PMT
    assert!(try_span(0x101, 0x100, span).is_err()); // audio is not video
    assert!(try_span(0x100, 0x100, &[0x47; 188 * 3]).is_err());
    // Every single-byte corruption of the span, and random bytes behind sync bytes: an error
    // or a well-formed output, never a panic.
    for i in 0..span.len() {
        for v in [0x00, 0xFF, span[i] ^ 0x10] {
            let mut s = span.to_vec();
            s[i] = v;
            if let Ok(n) = try_span(0x100, 0x100, &s) {
                assert!(n >= 3);
            }
        }
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        let mut s = vec![0u8; PACKET_LEN * 4];
        for b in s.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for p in s.chunks_mut(PACKET_LEN) {
            p[0] = 0x47;
        }
        let _ = try_span((x >> 8) as u16 & 0x1FFF, 0x100, &s);
        s[1] = 0x40;
        s[2] = 0;
        let _ = try_span(0x100, 0x100, &s);
    }
}
