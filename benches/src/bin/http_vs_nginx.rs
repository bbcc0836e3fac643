//! The streamer against nginx (Debian package, sendfile on) serving the same `content.ts` files
//! over loopback HTTP/1.1, measured with our own light load generator (`httpload`).
//!
//! Workloads (issue 4): 4 MiB whole-file GETs, and 1 MiB random ranges (aligned to 1 MiB) of a
//! ~1 GiB file, each at 8 and 64 keep-alive connections. Each case runs the servers (two nginx
//! configurations, the streamer) in turn, in short rotating slices (default 4 × 2.5 s each,
//! every slice after a 1 s warm-up on fresh connections) whose counts are summed and whose
//! latencies are merged: the machine is shared, and slicing makes every server see the same
//! background load.
//!
//! What is measured, per server and case: requests/s and GiB/s of body, latency p50/p99 per
//! request (request written → last body byte), errors (status, `Content-Length`,
//! `Content-Range`, byte count: `httpload` checks every response), the server's CPU seconds
//! over the window (`utime + stime` from `/proc/PID/stat`: the streamer process with all its
//! threads; nginx's master and all workers), hence CPU-seconds per GiB served. Also shown: the
//! client's own CPU (it must stay below the server's), the machine's softirq time (loopback TCP
//! delivery; this kernel's tick accounting also charges it to the process it interrupted, which
//! is mostly the sender, so it is part of the server's CPU, not extra), the whole machine's busy
//! time and the CPU of everything else on it (other users' builds: a busy machine makes a run
//! noisy; the load average is printed before and after).
//!
//! Fairness: every server gets both cores. nginx runs `worker_processes 2` (what `auto` gives
//! here) with `sendfile on`, `tcp_nodelay on`, `open_file_cache`, access log off (the streamer
//! logs only warnings by default), unlimited keep-alive requests, and runs twice: once with
//! `tcp_nopush on` (the usual advice, shown as `nginx`) and once with it off (`nginx-np0`).
//! Neither is always nginx's best: on kernel 6.18.44 (2026-12-03), `tcp_nopush off` took nginx
//! from 4.2 to 7.9 GiB/s on 1 MiB ranges at 8 connections and from 0.31 to 0.22 CPU-s/GiB on
//! 4 MiB files, but from 3.8 to 3.1 GiB/s on 64 KiB ranges. So the streamer is held to the goal
//! against each configuration, and the goal column says which one it missed; the streamer
//! runs as shipped (`--store --http-listen --no-demo`, default config: a multi-thread tokio
//! runtime on both cores, io_uring nodes with the default buffers, 64 KiB splice pipes). Both
//! read from the page cache: the files are read once before the runs. The streamer runs as
//! the user who runs the bench, root on the machines so far; an ordinary user's pipe budget
//! (`fs.pipe-user-pages-soft`) once cost it 60% of its throughput at 64 connections, which
//! this bench could not see (see `storage_device_sim::pipe_pool`): measure as that user too
//! when changing how pipes are used.
//!
//! Media (cached under `target/bench-media/`): 10 s of 720p x264 (`testsrc2`, 60 Mbit/s asked),
//! cut to ~4 MiB for the small content and looped with `-stream_loop` to ≥1 GiB for the large
//! one, both installed with `install-content` into `target/bench-media/http-store/`.
//!
//! Run (builds first; the whole run takes about 3 minutes, plus ~20 s to make the media once):
//! ```text
//! cargo build --release -j2 -p sluice-benches -p streamer -p installer
//! target/release/http_vs_nginx [--duration 10] [--slices 4] [--warmup 1] [--rounds 1]
//!                              [--only TEXT] [--nginx-workers 2] [--nginx-reuseport]
//!                              [--nginx-nopush on|off|both] [--client-threads 1] [--keep]
//! ```
//! `--duration` is the measured time per server and case, split into `--slices`.
//! `--only` keeps the cases whose label ("4MiB-whole 8", "1MiB-range 64", ...) contains TEXT;
//! `--nginx-reuseport` gives each nginx worker its own listening socket (the kernel spreads
//! connections by hash); by default nginx's workers share one (`EPOLLEXCLUSIVE`), and with only
//! 8 connections one worker sometimes gets all of them, leaving a core to the client and idle.
//! `--nginx-nopush` picks the nginx configurations (default both, each its own nginx).
//! `--keep` leaves the servers running at the end (for profiling) and prints their pids.

use anyhow::{Context, Result, anyhow, bail};
use sluice_benches::loadgen::{GIB, Report, percentile_ms};
use sluice_benches::servers::{
    Server, content_path, free_port, kernel, loadavg, ratio, run_ok, sibling, strip_ansi,
    wait_ready,
};
use sluice_benches::{bench_dir, clip};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SMALL_ID: &str = "small4m";
const BIG_ID: &str = "big1g";
const MIB: u64 = 1 << 20;

struct Opts {
    duration: f64,
    slices: usize,
    warmup: f64,
    rounds: usize,
    only: Option<String>,
    nginx_workers: usize,
    nginx_reuseport: bool,
    /// The `tcp_nopush` settings nginx runs with, one nginx per setting.
    nginx_nopush: Vec<bool>,
    client_threads: usize,
    keep: bool,
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        duration: 10.0,
        slices: 4,
        warmup: 1.0,
        rounds: 1,
        only: None,
        nginx_workers: 2,
        nginx_reuseport: false,
        nginx_nopush: vec![true, false],
        client_threads: 1,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = val()?.parse()?,
            "--warmup" => o.warmup = val()?.parse()?,
            "--slices" => o.slices = val()?.parse::<usize>()?.max(1),
            "--rounds" => o.rounds = val()?.parse()?,
            "--only" => o.only = Some(val()?),
            "--nginx-workers" => o.nginx_workers = val()?.parse()?,
            "--client-threads" => o.client_threads = val()?.parse()?,
            "--keep" => o.keep = true,
            "--nginx-reuseport" => o.nginx_reuseport = true,
            "--nginx-nopush" => {
                o.nginx_nopush = match val()?.as_str() {
                    "on" => vec![true],
                    "off" => vec![false],
                    "both" => vec![true, false],
                    v => bail!("--nginx-nopush on|off|both, not {v:?}"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "http_vs_nginx [--duration S] [--slices N] [--warmup S] [--rounds N] [--only TEXT] \
                     [--nginx-workers N] [--nginx-reuseport] [--nginx-nopush on|off|both] \
                     [--client-threads N] [--keep]"
                );
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?} (--help)"),
        }
    }
    Ok(o)
}

/// The store with the two contents, made once and cached.
fn media() -> Result<(PathBuf, PathBuf, PathBuf)> {
    let store = bench_dir().join("http-store");
    if let (Some(s), Some(b)) = (content_path(&store, SMALL_ID), content_path(&store, BIG_ID)) {
        return Ok((store, s, b));
    }
    let t = Instant::now();
    eprintln!(
        "making the bench media (once; cached in {})",
        store.display()
    );
    let _ = std::fs::remove_dir_all(&store);
    let base = clip(
        "http_base_10s.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "60M",
            "-g",
            "30",
        ],
    )?;
    let base_len = std::fs::metadata(&base)?.len();
    let install = sibling("install-content")?;
    let ffmpeg = |args: &[&str], out: &Path| -> Result<()> {
        run_ok(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y"])
                .args(args)
                .args(["-f", "mpegts"])
                .arg(out),
        )
    };
    // ~4 MiB: ffmpeg overshoots -fs by about a packet group, so ask a little less.
    let small = bench_dir().join(".http_small.ts");
    ffmpeg(
        &["-i", base.to_str().unwrap(), "-c", "copy", "-fs", "4128768"],
        &small,
    )?;
    run_ok(
        Command::new(&install)
            .arg("--store")
            .arg(&store)
            .arg("add")
            .arg(&small)
            .args(["--id", SMALL_ID]),
    )?;
    let _ = std::fs::remove_file(&small);
    // ≥ 1 GiB (+1% for the remux's size change).
    let copies = ((1u64 << 30) * 101 / 100).div_ceil(base_len);
    let big = bench_dir().join(".http_big.ts");
    ffmpeg(
        &[
            "-stream_loop",
            &(copies - 1).to_string(),
            "-i",
            base.to_str().unwrap(),
            "-c",
            "copy",
        ],
        &big,
    )?;
    run_ok(
        Command::new(&install)
            .arg("--store")
            .arg(&store)
            .arg("add")
            .arg(&big)
            .args(["--id", BIG_ID]),
    )?;
    let _ = std::fs::remove_file(&big);
    eprintln!("media made in {:.0} s", t.elapsed().as_secs_f64());
    let s = content_path(&store, SMALL_ID).context("small content not installed")?;
    let b = content_path(&store, BIG_ID).context("big content not installed")?;
    Ok((store, s, b))
}

/// nginx's name in the tables for a `tcp_nopush` setting.
fn nginx_name(nopush: bool) -> &'static str {
    if nopush { "nginx" } else { "nginx-np0" }
}

fn start_nginx(dir: &Path, small: &Path, big: &Path, o: &Opts, nopush: bool) -> Result<Server> {
    let (workers, keep) = (o.nginx_workers, o.keep);
    let nopush_value = if nopush { "on" } else { "off" };
    let reuseport = if o.nginx_reuseport { " reuseport" } else { "" };
    let port = free_port()?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    let text = format!(
        "# Written by benches/src/bin/http_vs_nginx.rs.
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush {nopush_value};
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    open_file_cache max=64 inactive=60s;
    default_type video/mp2t;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port}{reuseport};
        location = /content/{SMALL_ID}.ts {{ alias {}; }}
        location = /content/{BIG_ID}.ts {{ alias {}; }}
    }}
}}
",
        small.display(),
        big.display()
    );
    std::fs::write(&conf, text)?;
    let log = dir.join("nginx.stderr");
    let mut child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log)?)
        .spawn()
        .context("starting nginx (apt-get install nginx)")?;
    wait_ready(port, &mut child, "nginx")?;
    let s = Server {
        name: nginx_name(nopush),
        child,
        port,
        log,
        keep,
    };
    // Wait for the workers to exist, so their CPU is counted.
    let t = Instant::now();
    while s.pids().len() < 1 + workers && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(s)
}

fn start_streamer(dir: &Path, store: &Path, keep: bool) -> Result<Server> {
    let port = free_port()?;
    // Its logs (tracing) go to stdout, the banner too: keep both, show the warnings at the end.
    let log = dir.join("streamer.log");
    let out = File::create(&log)?;
    let mut child = Command::new(sibling("streamer")?)
        .arg("--store")
        .arg(store)
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--no-demo")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the streamer")?;
    wait_ready(port, &mut child, "streamer")?;
    Ok(Server {
        name: "streamer",
        child,
        port,
        log,
        keep,
    })
}

struct Case {
    label: &'static str,
    id: &'static str,
    range: u64,
    conns: usize,
}

/// One `httpload` run of `duration` seconds (after the warm-up) against `srv`.
fn run_load(o: &Opts, srv: &Server, case: &Case, duration: f64, lat: &Path) -> Result<Report> {
    let url = format!("http://127.0.0.1:{}/content/{}.ts", srv.port, case.id);
    let pids = srv
        .pids()
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(sibling("httpload")?);
    cmd.arg(&url)
        .args(["--conns", &case.conns.to_string()])
        .args(["--threads", &o.client_threads.to_string()])
        .args(["--duration", &duration.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--pids", &pids])
        .arg("--lat-out")
        .arg(lat)
        .stderr(Stdio::inherit());
    if case.range > 0 {
        cmd.args(["--range", &case.range.to_string()]);
    }
    let out = cmd.output().context("running httpload")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = text
        .lines()
        .find_map(Report::parse_machine_line)
        .ok_or_else(|| anyhow!("httpload gave no RESULT ({}): {text}", out.status))?;
    r.lat_us = std::fs::read(lat)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let _ = std::fs::remove_file(lat);
    Ok(r)
}

/// Slices of one server's measurement, summed (latencies merged, percentiles recomputed).
fn merge(parts: Vec<Report>) -> Report {
    let mut m = Report::default();
    for r in parts {
        m.file_size = r.file_size;
        m.window_s += r.window_s;
        m.requests += r.requests;
        m.bytes += r.bytes;
        m.errors += r.errors;
        m.reconnects += r.reconnects;
        m.client_cpu_s += r.client_cpu_s;
        m.server_cpu_s = Some(m.server_cpu_s.unwrap_or(0.0) + r.server_cpu_s.unwrap_or(f64::NAN));
        m.machine_busy_s += r.machine_busy_s;
        m.softirq_s += r.softirq_s;
        m.lat_us.extend(r.lat_us);
    }
    m.lat_us.sort_unstable();
    m.p50_ms = percentile_ms(&m.lat_us, 0.50);
    m.p99_ms = percentile_ms(&m.lat_us, 0.99);
    m.max_ms = m.lat_us.last().map_or(0.0, |&u| u as f64 / 1000.0);
    m
}

fn main() -> Result<()> {
    let o = parse_opts()?;
    if Command::new("nginx").arg("-v").output().is_err() {
        bail!("nginx not found: apt-get install nginx");
    }
    let (store, small, big) = media()?;
    let small_len = std::fs::metadata(&small)?.len();
    let big_len = std::fs::metadata(&big)?.len();
    // Into the page cache, for both servers alike.
    for p in [&small, &big] {
        std::io::copy(&mut File::open(p)?, &mut std::io::sink())?;
    }
    let dir = std::env::temp_dir().join(format!("sluice-http-vs-nginx.{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let cases: Vec<Case> = [8usize, 64]
        .into_iter()
        .flat_map(|conns| {
            [
                Case {
                    label: "4MiB-whole",
                    id: SMALL_ID,
                    range: 0,
                    conns,
                },
                Case {
                    label: "1MiB-range",
                    id: BIG_ID,
                    range: MIB,
                    conns,
                },
            ]
        })
        .filter(|c| {
            o.only
                .as_ref()
                .is_none_or(|t| format!("{} {}", c.label, c.conns).contains(t.as_str()))
        })
        .collect();
    if cases.is_empty() {
        bail!("--only matched no case");
    }

    let nginx_version = Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!(
        "http_vs_nginx: {nginx_version} (worker_processes {}{}, sendfile on, tcp_nopush {}) vs streamer; \
         kernel {}, {} CPUs; small content {small_len} B ({:.2} MiB), big content {big_len} B ({:.3} GiB); \
         per server and case {} s measured in {} alternating slices, each after a {} s warm-up; \
         httpload with {} thread(s)",
        o.nginx_workers,
        if o.nginx_reuseport {
            ", listen reuseport"
        } else {
            ""
        },
        o.nginx_nopush
            .iter()
            .map(|&n| format!("{} as {}", if n { "on" } else { "off" }, nginx_name(n)))
            .collect::<Vec<_>>()
            .join(" / "),
        kernel(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        small_len as f64 / MIB as f64,
        big_len as f64 / GIB,
        o.duration,
        o.slices,
        o.warmup,
        o.client_threads,
    );

    let mut servers = Vec::new();
    for &nopush in &o.nginx_nopush {
        let name = nginx_name(nopush);
        servers.push(start_nginx(&dir.join(name), &small, &big, &o, nopush)?);
    }
    servers.push(start_streamer(&dir, &store, o.keep)?);
    let streamer_at = servers.len() - 1;
    for srv in &servers {
        println!("{} pids {:?} on port {}", srv.name, srv.pids(), srv.port);
    }

    let mut any_errors = false;
    for round in 1..=o.rounds {
        let la0 = loadavg();
        // Per case: the merged report of every server, in `servers` order.
        let mut rows: Vec<(&Case, Vec<Report>)> = Vec::new();
        for (k, case) in cases.iter().enumerate() {
            // Short slices, the servers' order rotating, so that all see the same background
            // load and none always runs first.
            let mut got: Vec<Vec<Report>> = servers.iter().map(|_| Vec::new()).collect();
            for j in 0..o.slices {
                for i in 0..servers.len() {
                    let at = (i + j + k) % servers.len();
                    let srv = &servers[at];
                    let lat = dir.join(format!("lat.{}", srv.name));
                    let r = run_load(&o, srv, case, o.duration / o.slices as f64, &lat)?;
                    got[at].push(r);
                }
            }
            rows.push((case, got.into_iter().map(merge).collect()));
        }
        let la1 = loadavg();
        println!();
        println!(
            "round {round}/{}: load average before {la0}, after {la1}",
            o.rounds
        );
        println!(
            "{:<11} {:>5} {:<9} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>9} {:>8} {:>8} {:>6} {:>6}",
            "workload",
            "conns",
            "server",
            "req/s",
            "GiB/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "srv CPU",
            "CPU-s/GiB",
            "cli CPU",
            "softirq",
            "busy",
            "other"
        );
        for (case, reports) in &rows {
            for (srv, r) in servers.iter().zip(reports) {
                let name = srv.name;
                any_errors |= r.errors > 0;
                println!(
                    "{:<11} {:>5} {:<9} {:>8.1} {:>7.3} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>8.2} {:>9.3} {:>8.2} {:>8.2} {:>6.2} {:>6.2}",
                    case.label,
                    case.conns,
                    name,
                    r.rps(),
                    r.gib_s(),
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.errors,
                    r.server_cpu_s.unwrap_or(f64::NAN),
                    r.server_cpu_per_gib().unwrap_or(f64::NAN),
                    r.client_cpu_s,
                    r.softirq_s,
                    r.machine_busy_s,
                    r.other_cpu_s(),
                );
            }
        }
        println!();
        println!(
            "round {round}: streamer / each nginx (goal: throughput >= 1.00x, CPU-s/GiB <= 1.00x, \
             p99 <= 1.00x, against every nginx configuration)"
        );
        println!(
            "{:<11} {:>5} {:<9} {:>11} {:>10} {:>8}  {:<38} {:>8}",
            "workload", "conns", "vs", "throughput", "CPU-s/GiB", "p99", "goal", "softirq"
        );
        for (case, reports) in &rows {
            let s = &reports[streamer_at];
            for (srv, n) in servers.iter().zip(reports).take(streamer_at) {
                let thr = s.gib_s() / n.gib_s();
                let cpu = s.server_cpu_per_gib().unwrap_or(f64::NAN)
                    / n.server_cpu_per_gib().unwrap_or(f64::NAN);
                let p99 = s.p99_ms / n.p99_ms;
                // A NaN ratio (nothing measured) counts as missed.
                let met = |r: f64, ok: fn(f64) -> bool| !r.is_nan() && ok(r);
                let mut missed = Vec::new();
                if !met(thr, |r| r >= 1.0) {
                    missed.push("throughput");
                }
                if !met(cpu, |r| r <= 1.0) {
                    missed.push("CPU/GiB");
                }
                if !met(p99, |r| r <= 1.0) {
                    missed.push("p99");
                }
                if s.errors > 0 || n.errors > 0 {
                    missed.push("ERRORS");
                }
                println!(
                    "{:<11} {:>5} {:<9} {:>11} {:>10} {:>8}  {:<38} {:>8}",
                    case.label,
                    case.conns,
                    srv.name,
                    ratio(s.gib_s(), n.gib_s()),
                    ratio(
                        s.server_cpu_per_gib().unwrap_or(0.0),
                        n.server_cpu_per_gib().unwrap_or(0.0)
                    ),
                    ratio(s.p99_ms, n.p99_ms),
                    if missed.is_empty() {
                        "met".to_string()
                    } else {
                        format!("missed: {}", missed.join(", "))
                    },
                    ratio(s.softirq_s, n.softirq_s),
                );
            }
        }
        std::io::stdout().flush()?;
    }
    println!();
    println!(
        "columns: CPU in CPU-seconds over the window; srv = server (nginx master+workers / streamer \
         process, all threads), cli = httpload, softirq = machine softirq time (loopback TCP; \
         tick accounting also charges it to the interrupted process, so it overlaps srv and cli), \
         busy = whole machine (all CPUs), other = busy - srv - cli (other users, kernel threads); \
         ratios are the streamer's over the nginx named in `vs`; the goal column judges the \
         issue's three ratios only"
    );
    for srv in &servers {
        let is_nginx = srv.name != "streamer";
        let log = std::fs::read_to_string(&srv.log).unwrap_or_default();
        let errlog = if is_nginx {
            std::fs::read_to_string(dir.join(srv.name).join("error.log")).unwrap_or_default()
        } else {
            String::new()
        };
        let all = format!("{log}{errlog}");
        // nginx's stderr and error.log hold only problems; the streamer's log also has its banner.
        let bad: Vec<&str> = all
            .lines()
            .filter(|l| {
                is_nginx || l.contains("WARN") || l.contains("ERROR") || l.contains("panick")
            })
            .collect();
        if !bad.is_empty() {
            println!(
                "{} log: {} warning/error lines, the last ones:",
                srv.name,
                bad.len()
            );
            for l in &bad[bad.len().saturating_sub(5)..] {
                println!("  {}", strip_ansi(l));
            }
        }
    }
    if o.keep {
        for srv in &servers {
            println!(
                "--keep: {} (pid {}, port {}) left running",
                srv.name,
                srv.child.id(),
                srv.port
            );
        }
    } else {
        drop(servers);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if any_errors {
        bail!("some responses were wrong (see the errors column)");
    }
    Ok(())
}
