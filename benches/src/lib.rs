//! Shared helpers for the benchmark binaries: making bench media with ffmpeg (cached under
//! `target/bench-media/`), timing a closure or a process, and CPU time from `getrusage`.
//!
//! Every benchmark reports a ratio against a real peer measured in the same run, never a lone
//! absolute time: the machine's speed cancels out.

pub mod loadgen;
pub mod servers;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn bench_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-media");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A clip made by ffmpeg from lavfi sources, cached by name.
pub fn clip(name: &str, args: &[&str]) -> Result<PathBuf> {
    let path = bench_dir().join(name);
    if path.exists() {
        return Ok(path);
    }
    let tmp = bench_dir().join(format!(".{name}.tmp.{}", std::process::id()));
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .args([
            "-f",
            if name.ends_with(".ts") {
                "mpegts"
            } else {
                "mp4"
            },
        ])
        .arg(&tmp)
        .status()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    if !st.success() {
        bail!("ffmpeg failed making {name}");
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// User+system CPU time of this process and of its waited-for children.
pub fn cpu_time() -> (Duration, Duration) {
    fn get(who: i32) -> Duration {
        let mut ru = std::mem::MaybeUninit::<libc_rusage>::zeroed();
        // SAFETY: getrusage writes a struct rusage into the pointer we pass.
        let r = unsafe { getrusage(who, ru.as_mut_ptr()) };
        if r != 0 {
            return Duration::ZERO;
        }
        // SAFETY: initialised by getrusage on success.
        let ru = unsafe { ru.assume_init() };
        let tv = |s: i64, us: i64| Duration::from_secs(s as u64) + Duration::from_micros(us as u64);
        tv(ru.utime_s, ru.utime_us) + tv(ru.stime_s, ru.stime_us)
    }
    (get(0), get(-1))
}

#[repr(C)]
struct libc_rusage {
    utime_s: i64,
    utime_us: i64,
    stime_s: i64,
    stime_us: i64,
    _rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut libc_rusage) -> i32;
}

/// Best (minimum) wall time of `runs` runs of `f`.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best = None;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f()?;
        let e = t.elapsed();
        best = Some(best.map_or(e, |b: Duration| b.min(e)));
        last = Some(v);
    }
    Ok((best.unwrap_or_default(), last.expect("runs > 0")))
}

pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// xorshift64* — a tiny deterministic PRNG for offsets and ranges (no crate needed, same
/// sequence in every run so benchmark workloads repeat).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
