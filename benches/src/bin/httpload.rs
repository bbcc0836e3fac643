//! `httpload`: a light HTTP/1.1 keep-alive load generator (see `sluice_benches::loadgen`).
//!
//! ```text
//! httpload URL [--conns N] [--threads T] [--duration S] [--warmup S]
//!              [--range BYTES [--align BYTES]] [--pids PID,PID,...] [--seed N]
//!              [--lat-out FILE]
//! ```
//! Whole-file GETs by default; with `--range`, `Range: bytes=a-b` requests of BYTES at random
//! offsets aligned to `--align` (default BYTES). `--pids` names the server's processes, whose
//! CPU time (`/proc/PID/stat`) is measured over the window. Prints a human summary and one
//! `RESULT key=value ...` line; exits 1 if any response was wrong. `--lat-out` writes every
//! measured request's latency (microseconds, little-endian u32, sorted) for a driver to merge.
//!
//! Example: `target/release/httpload http://127.0.0.1:8080/content/big.ts --conns 64
//! --range 1048576 --pids $(pgrep -d, nginx)`.

use anyhow::{Context, Result, anyhow, bail};
use sluice_benches::loadgen::{Config, run};
use std::time::Duration;

fn secs(v: &str) -> Result<Duration> {
    Ok(Duration::from_secs_f64(
        v.parse().with_context(|| format!("bad seconds {v:?}"))?,
    ))
}

/// A byte count: plain, or with a `k`/`KiB`/`m`/`MiB` suffix (binary units).
fn bytes(v: &str) -> Result<u64> {
    let lower = v.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let mul = match &lower[digits.len()..] {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        u => bail!("unknown unit {u:?} in {v:?}"),
    };
    Ok(digits
        .parse::<u64>()
        .with_context(|| format!("bad size {v:?}"))?
        * mul)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut opts = Vec::new();
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            println!(
                "httpload URL [--conns N] [--threads T] [--duration S] [--warmup S] \
                 [--range BYTES [--align BYTES]] [--pids PID,...] [--seed N] [--lat-out FILE]"
            );
            return Ok(());
        }
        if a.starts_with("--") {
            let v = args.next().ok_or_else(|| anyhow!("{a} needs a value"))?;
            opts.push((a, v));
        } else if url.is_none() {
            url = Some(a);
        } else {
            bail!("unexpected argument {a:?}");
        }
    }
    let url = url.ok_or_else(|| anyhow!("usage: httpload URL [options] (--help)"))?;
    let mut cfg = Config::from_url(&url)?;
    let mut lat_out = None;
    for (k, v) in &opts {
        match k.as_str() {
            "--conns" => cfg.conns = v.parse()?,
            "--threads" => cfg.threads = v.parse()?,
            "--duration" => cfg.duration = secs(v)?,
            "--warmup" => cfg.warmup = secs(v)?,
            "--range" => cfg.range_size = bytes(v)?,
            "--align" => cfg.range_align = bytes(v)?,
            "--seed" => cfg.seed = v.parse()?,
            "--lat-out" => lat_out = Some(std::path::PathBuf::from(v)),
            "--pids" => {
                cfg.server_pids = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().parse().with_context(|| format!("bad pid {s:?}")))
                    .collect::<Result<_>>()?
            }
            _ => bail!("unknown option {k}"),
        }
    }
    let r = run(&cfg)?;
    let what = if cfg.range_size == 0 {
        format!("whole file ({} B)", r.file_size)
    } else {
        format!("{} B ranges of {} B", cfg.range_size, r.file_size)
    };
    eprintln!(
        "httpload {url}: {what}, {} conns, {:.1} s window: {:.1} req/s, {:.3} GiB/s, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}, client CPU {:.2} s{}",
        cfg.conns,
        r.window_s,
        r.rps(),
        r.gib_s(),
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.errors,
        r.client_cpu_s,
        match (r.server_cpu_s, r.server_cpu_per_gib()) {
            (Some(c), Some(g)) => format!(", server CPU {c:.2} s ({g:.3} CPU-s/GiB)"),
            _ => String::new(),
        }
    );
    if let Some(e) = &r.first_error {
        eprintln!("httpload: first error: {e}");
    }
    if let Some(p) = &lat_out {
        let bytes: Vec<u8> = r.lat_us.iter().flat_map(|u| u.to_le_bytes()).collect();
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{}", r.machine_line());
    if r.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
