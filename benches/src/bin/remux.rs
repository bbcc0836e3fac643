//! Remux MP4 → TS: ours (the installer's analyse + remux, in process, to a file) against
//! `ffmpeg -i X -c copy -f mpegts` on the same files in the same run; and indexing an existing
//! content TS from page cache with the index scanner. Prints throughput and ratios.
//!
//! Run: `cargo run --release -p sluice-benches --bin remux`

use anyhow::{Result, bail};
use sluice_benches::{best_of, clip, cpu_time, mb_per_s};
use std::process::Command;

const RUNS: usize = 5;

fn main() -> Result<()> {
    // 60 s of 720p30 H.264 (B-frames) + AAC at ~6 Mbit/s, in the three MP4 layouts.
    let make = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "6M",
            "-g",
            "60",
            "-bf",
            "2",
            "-c:a",
            "aac",
        ];
        args.extend_from_slice(extra);
        clip(name, &args)
    };
    let files = [
        make("bench_720p_60s_moov_end.mp4", &[])?,
        make("bench_720p_60s_faststart.mp4", &["-movflags", "+faststart"])?,
        make(
            "bench_720p_60s_frag.mp4",
            &["-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
        )?,
    ];
    let out_dir = tempdir()?;
    println!(
        "remux MP4 -> TS, best of {RUNS} runs (wall), output to {}",
        out_dir.display()
    );
    let mut ratios = Vec::new();
    for f in &files {
        let size = std::fs::metadata(f)?.len();
        // Warm the page cache for both.
        let _ = std::fs::read(f)?;
        let ff_out = out_dir.join("ffmpeg.ts");
        let ff_cpu0 = cpu_time().1;
        let (ff, _) = best_of(RUNS, || {
            let st = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-i"])
                .arg(f)
                .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
                .arg(&ff_out)
                .status()?;
            if !st.success() {
                bail!("ffmpeg failed");
            }
            Ok(())
        })?;
        let ff_cpu = cpu_time().1 - ff_cpu0;
        let ours_out = out_dir.join("ours.ts");
        let t0 = cpu_time().0;
        let (ours, ts_size) = best_of(RUNS, || {
            let src = installer::source::open(f)?;
            let a = installer::analyse::analyse(&src)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&ours_out)?);
            let (idx, stats) =
                installer::remux::remux(src.bytes(), f, &a, &mut out, &ours_out, &mut |_, _| {})?;
            drop(out);
            assert!(!idx.entries.is_empty(), "remux produced no keyframes");
            Ok(stats.size)
        })?;
        let ours_cpu = cpu_time().0 - t0;
        let ratio = ff.as_secs_f64() / ours.as_secs_f64();
        ratios.push(ratio);
        println!(
            "  {:<32} {:>6.1} MB  ffmpeg {:>7.1} MB/s  ours {:>7.1} MB/s  ratio {:>5.2}x  (cpu/run: ffmpeg {:.3} s, ours {:.3} s; TS {} MB vs ffmpeg {} MB)",
            f.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            size as f64 / 1e6,
            mb_per_s(size, ff),
            mb_per_s(size, ours),
            ratio,
            ff_cpu.as_secs_f64() / RUNS as f64,
            ours_cpu.as_secs_f64() / RUNS as f64,
            ts_size / 1_000_000,
            std::fs::metadata(&ff_out)?.len() / 1_000_000,
        );
    }
    let geo = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64;
    println!(
        "remux throughput vs ffmpeg -c copy -f mpegts: geometric mean {:.2}x",
        geo.exp()
    );

    // Indexing: scan our content TS from memory (page cache via mmap).
    let ts = out_dir.join("ours.ts");
    let file = std::fs::File::open(&ts)?;
    // SAFETY: read-only mapping of a file this process just wrote and no one else changes.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let _ = media::index::scan_ts(&map)?; // warm
    let (d, (idx, _)) = best_of(RUNS * 2, || Ok(media::index::scan_ts(&map)?))?;
    println!(
        "index scan of a {:.1} MB content TS from page cache: {:.2} GB/s ({} keyframes)",
        map.len() as f64 / 1e6,
        map.len() as f64 / d.as_secs_f64() / 1e9,
        idx.entries.len()
    );
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
