//! RTSP viewers per core: the streamer against gst-rtsp-server serving the same 4 Mbit/s
//! MPEG-TS, each pinned to one core, ramped with our load generator (`rtspload`) on the other
//! core, over UDP and over TCP interleaved (issue 5).
//!
//! Run (builds first; the default run takes about 8 minutes on a 2-core machine, ~17 s per
//! step, plus ~1 minute to make the media once; `--hold` and `--steps` set the length):
//! ```text
//! cargo build --release -j2 -p sluice-benches -p streamer -p installer
//! target/release/rtsp_vs_gst [--hold 12] [--warmup 3] [--steps 25,50,100,...]
//!                            [--only sluice,gst,udp,tcp] [--server-core 0] [--client-core 1]
//!                            [--max-loss 0.1] [--max-p99-ms 2] [--stop-p99-ms 1000] [--keep]
//! ```
//! gst-rtsp-server comes from Debian (`apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi`);
//! the peer is `benches/scripts/gst_rtsp_vod.py`, run with `/usr/bin/python3`: a
//! `RTSPMediaFactory` launching `( filesrc ! tsparse set-timestamps=true ! rtpmp2tpay pt=33 )`
//! with `shared=false` (one pipeline per viewer, as VOD needs).
//!
//! Media (cached under `target/bench-media/`): 120 s of 720p30 `testsrc2`, x264 at 3.7 Mbit/s
//! (`-maxrate 3.8M -bufsize 1M`, GOP 2 s) with 128 kbit/s AAC: ~3.9 Mbit/s of TS. It is
//! installed with `install-content` into a fresh store; both servers play the installed
//! `content.ts` (the very same bytes). Every step starts its viewers at the beginning, and a
//! step (stagger 1 s + warm-up + hold) is far shorter than the content.
//!
//! Each server runs alone, pinned with `taskset -c SERVER_CORE`; `rtspload` runs pinned to the
//! other core, so the server has exactly one core to fill. For each step (N viewers, fresh
//! sessions) `rtspload` reports, over the steady window (`--hold` seconds after the warm-up):
//! - `loss`: RTP sequence gaps over expected packets, all sessions;
//! - `p99` (and p50, max): pacing error, how late a packet arrived against the schedule its
//!   RTP timestamps state (arrival − first arrival − (ts − first ts)/90 kHz, minus the
//!   session's minimum), kernel receive timestamps for UDP; shown as 1000 when ≥ 1 s;
//! - `rate`: packets received over what N viewers of this content should receive (the server
//!   falling behind its schedule shows here, not as loss);
//! - `cores`: the server's CPU (`utime + stime` from `/proc/PID/stat`, all threads; softirq
//!   work of loopback delivery is charged to the sender, so both servers pay the same for it);
//! - `v/core`: N / cores, viewers per fully used core at that load;
//! - `client`, `other`: cores used by `rtspload` and by everything else on the machine (other
//!   tenants: on a shared machine a step with `other` near 1 had its server core taken away,
//!   and its figures say little; rerun it, e.g. with `--only`).
//!
//! The ramp goes on while a step holds (no session error, loss < `--max-loss` %, rate ≥ 0.97,
//! p99 < `--stop-p99-ms`, default 1 s: in effect no pacing bound, so that capacity is explored
//! even when pacing is poor, and one stall caused by another tenant of a shared machine does not
//! end a ramp) and stops after the first that does not. Two figures per server and transport:
//! - **strict**: the largest N with loss < `--max-loss` % (0.1) and p99 < `--max-p99-ms` (2 ms)
//!   — the issue's figure ("viewers per core held"); N itself, since the server has one core;
//! - **capacity**: the largest N that holds with the loose pacing bound.
//!
//! and the ratios sluice/gst of both. Before the servers, `udp_limit` measures the physical
//! limit in the same run: the most 1,328-byte datagrams per core-second a bare `sendmmsg` loop
//! on the server core pushes through loopback to a receiver set up like `rtspload`'s, as
//! viewers per core of this content (no server can serve more over UDP, one datagram per send);
//! and the same with UDP GSO sends of 4 datagrams, which strict pacing at 4 Mbit/s cannot use
//! (4 packets span 8 ms of media). The streamer's figures are also given against that limit.
//! `--only` narrows to some servers and/or transports
//! (`--only sluice,udp`);
//! `--keep` leaves the last server running and prints its pid (for `perf record -g -p PID`).

use anyhow::{Context, Result, anyhow, bail};
use sluice_benches::servers::{Server, free_port, ratio, run_ok, sibling, wait_ready};
use sluice_benches::{bench_dir, clip};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const ID: &str = "bench4m";
/// TS packets per RTP packet.
const RTP_PAYLOAD: f64 = 7.0 * 188.0;

struct Opts {
    hold: f64,
    warmup: f64,
    steps: String,
    only: Option<String>,
    server_core: u32,
    client_core: u32,
    max_loss: f64,
    max_p99_ms: f64,
    stop_p99_ms: f64,
    keep: bool,
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        hold: 12.0,
        warmup: 3.0,
        steps: "25,50,100,200,300,500,750,1000,1500,2000,3000,4000".into(),
        only: None,
        server_core: 0,
        client_core: 1,
        max_loss: 0.1,
        max_p99_ms: 2.0,
        stop_p99_ms: 1000.0,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--hold" => o.hold = val()?.parse()?,
            "--warmup" => o.warmup = val()?.parse()?,
            "--steps" => o.steps = val()?,
            "--only" => o.only = Some(val()?),
            "--server-core" => o.server_core = val()?.parse()?,
            "--client-core" => o.client_core = val()?.parse()?,
            "--max-loss" => o.max_loss = val()?.parse()?,
            "--max-p99-ms" => o.max_p99_ms = val()?.parse()?,
            "--stop-p99-ms" => o.stop_p99_ms = val()?.parse()?,
            "--keep" => o.keep = true,
            "-h" | "--help" => {
                println!(
                    "rtsp_vs_gst [--hold S] [--warmup S] [--steps N,N,...] [--only sluice,gst,udp,tcp] \
                     [--server-core C] [--client-core C] [--max-loss PCT] [--max-p99-ms MS] \
                     [--stop-p99-ms MS] [--keep]"
                );
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?} (--help)"),
        }
    }
    Ok(o)
}

/// The 4 Mbit/s TS, made once.
fn media() -> Result<PathBuf> {
    clip(
        "rtsp_4mbit_120s.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "120",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "3.7M",
            "-maxrate",
            "3.8M",
            "-bufsize",
            "1M",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ],
    )
}

fn taskset(core: u32, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(core.to_string()).arg(prog);
    c
}

fn start_streamer(o: &Opts, dir: &Path, store: &Path) -> Result<Server> {
    let port = free_port()?;
    let log = dir.join("streamer.log");
    let out = File::create(&log)?;
    let mut child = taskset(o.server_core, sibling("streamer")?)
        .arg("--store")
        .arg(store)
        .arg("--rtsp-listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--http-listen", "127.0.0.1:0", "--no-demo"])
        // Every viewer of the load generator comes from 127.0.0.1: lift the per-client caps
        // (the overall ones stay as shipped).
        .args(["--max-sessions-per-client", "100000"])
        .args(["--max-connections-per-client", "100000"])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the streamer")?;
    wait_ready(port, &mut child, "streamer")?;
    Ok(Server {
        name: "sluice",
        child,
        port,
        log,
        keep: o.keep,
    })
}

fn start_gst(o: &Opts, dir: &Path, ts: &Path) -> Result<Server> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gst_rtsp_vod.py");
    let port = free_port()?;
    let log = dir.join("gst.log");
    let out = File::create(&log)?;
    let mut child = taskset(o.server_core, "/usr/bin/python3")
        .arg(&script)
        .arg(ts)
        .arg(port.to_string())
        .arg(ID)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting gst-rtsp-server (python3)")?;
    wait_ready(port, &mut child, "gst-rtsp-server").with_context(|| {
        format!(
            "gst-rtsp-server did not start (apt-get install gir1.2-gst-rtsp-server-1.0 \
             python3-gi): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    })?;
    Ok(Server {
        name: "gst",
        child,
        port,
        log,
        keep: o.keep,
    })
}

/// A number field of one of `rtspload`'s JSON lines (flat objects it writes itself).
fn field(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[derive(Clone, Default)]
struct Step {
    n: f64,
    loss: f64,
    p50: f64,
    p99: f64,
    max: f64,
    rate: f64,
    cores: f64,
    client_cores: f64,
    other: f64,
    drops: f64,
    errors: f64,
    pass: bool,
}

impl Step {
    fn strict(&self, o: &Opts) -> bool {
        self.pass && self.loss < o.max_loss && self.p99 < o.max_p99_ms
    }
}

/// One ramp of `rtspload` against `srv`; the steps it ran, in order.
fn ramp(o: &Opts, srv: &Server, transport: &str, pps: f64) -> Result<Vec<Step>> {
    let url = format!("rtsp://127.0.0.1:{}/{ID}", srv.port);
    let pids = srv
        .pids()
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut child = taskset(o.client_core, sibling("rtspload")?)
        .arg(&url)
        .args(["--transport", transport])
        .args(["--steps", &o.steps])
        .args(["--hold", &o.hold.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--pids", &pids])
        .args(["--max-loss", &o.max_loss.to_string()])
        .args(["--max-p99-ms", &o.stop_p99_ms.to_string()])
        .args(["--expect-pps", &format!("{pps:.2}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running rtspload")?;
    let mut steps = Vec::new();
    let out = child.stdout.take().context("rtspload stdout")?;
    for line in BufReader::new(out).lines() {
        let line = line?;
        let Some(j) = line.strip_prefix("STEP ") else {
            continue;
        };
        let f = |k: &str| field(j, k).unwrap_or(f64::NAN);
        steps.push(Step {
            n: f("n"),
            loss: f("loss_pct"),
            p50: f("pacing_p50_ms"),
            p99: f("pacing_p99_ms"),
            max: f("pacing_max_ms"),
            rate: f("rate"),
            cores: f("server_cores"),
            client_cores: f("client_cpu_s") / f("window_s"),
            other: f("other_cores"),
            drops: f("client_drops"),
            errors: f("errors"),
            pass: j.contains("\"pass\":true"),
        });
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("rtspload failed: {st}");
    }
    Ok(steps)
}

struct Outcome {
    server: &'static str,
    transport: &'static str,
    steps: Vec<Step>,
}

impl Outcome {
    fn best(&self, ok: impl Fn(&Step) -> bool) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| ok(s))
            .max_by(|a, b| a.n.total_cmp(&b.n))
    }
}

fn main() -> Result<()> {
    let o = parse_opts()?;
    // `--only` lists servers and/or transports; a kind not named is kept whole.
    let only: Vec<&str> = o
        .only
        .as_deref()
        .map_or(Vec::new(), |x| x.split(',').collect());
    let wants = |what: &str, kind: [&str; 2]| {
        only.contains(&what) || !kind.iter().any(|k| only.contains(k))
    };
    let t_all = Instant::now();
    if wants("gst", ["sluice", "gst"]) {
        // Before any ramp: a missing peer must not cost the runs made before it.
        let ok = Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0'); \
                 from gi.repository import GstRtspServer",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!(
                "gst-rtsp-server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 \
                 python3-gi), or run with --only sluice"
            );
        }
    }
    let src = media()?;
    let dir = bench_dir().join(format!("rtsp-run.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("store");
    run_ok(
        Command::new(sibling("install-content")?)
            .arg("add")
            .arg(&src)
            .arg("--store")
            .arg(&store)
            .args(["--id", ID])
            .stdout(Stdio::null()),
    )?;
    let ts = sluice_benches::servers::content_path(&store, ID).context("content not installed")?;
    // The content's RTP packet rate, for the delivered-rate check.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&ts)
        .output()?;
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse()?;
    let size = std::fs::metadata(&ts)?.len() as f64;
    let pps = size / RTP_PAYLOAD / duration;
    println!(
        "content: {:.1} s, {:.2} Mbit/s, {pps:.1} RTP packets/s per viewer; server on core {}, \
         rtspload on core {}; hold {} s per step",
        duration,
        size * 8.0 / duration / 1e6,
        o.server_core,
        o.client_core,
        o.hold
    );
    // Read once, so both servers start from the page cache.
    let _ = std::fs::read(&ts)?;

    let transports: Vec<&'static str> = ["udp", "tcp"]
        .into_iter()
        .filter(|t| wants(t, ["udp", "tcp"]))
        .collect();
    // The physical limit, measured now, on the same cores.
    let mut limits = Vec::new();
    if transports.contains(&"udp") {
        for gso in [1, 4] {
            let out = Command::new(sibling("udp_limit")?)
                .args(["--seconds", "4", "--gso", &gso.to_string()])
                .args(["--sender-core", &o.server_core.to_string()])
                .args(["--receiver-core", &o.client_core.to_string()])
                .args(["--pps-per-viewer", &format!("{pps:.2}")])
                .stderr(Stdio::inherit())
                .output()
                .context("running udp_limit")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix("LIMIT "))
                .and_then(|j| field(j, "viewers_per_core"))
                .context("udp_limit printed no LIMIT line")?;
            limits.push((gso, v));
        }
    }
    let mut outcomes = Vec::new();
    for server in ["sluice", "gst"] {
        if !wants(server, ["sluice", "gst"]) {
            continue;
        }
        for &transport in &transports {
            // A fresh server per transport: nothing left over from the other ramp.
            let srv = if server == "sluice" {
                start_streamer(&o, &dir, &store)?
            } else {
                start_gst(&o, &dir, &ts)?
            };
            eprintln!(
                "== {server} {transport} (pid {}, port {})",
                srv.child.id(),
                srv.port
            );
            let steps = ramp(&o, &srv, transport, pps)?;
            if o.keep {
                println!("{server} left running: pid {}", srv.child.id());
            }
            outcomes.push(Outcome {
                server,
                transport,
                steps,
            });
        }
    }

    println!();
    println!(
        "{:<7} {:<4} {:>5} {:>8} {:>7} {:>7} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6}  result",
        "server",
        "tr",
        "N",
        "loss%",
        "p50ms",
        "p99ms",
        "max ms",
        "rate",
        "cores",
        "v/core",
        "client",
        "other",
        "drops"
    );
    for oc in &outcomes {
        for s in &oc.steps {
            println!(
                "{:<7} {:<4} {:>5} {:>8.4} {:>7.2} {:>7.2} {:>8.2} {:>6.3} {:>6.2} {:>7} {:>6.2} {:>6.2} {:>6}  {}",
                oc.server,
                oc.transport,
                s.n,
                s.loss,
                s.p50,
                s.p99,
                s.max,
                s.rate,
                s.cores,
                if s.cores >= 0.01 {
                    format!("{:.0}", s.n / s.cores)
                } else {
                    "-".into()
                },
                s.client_cores,
                s.other,
                s.drops,
                if s.strict(&o) {
                    "strict pass"
                } else if s.pass {
                    "holds (pacing over the strict bound)"
                } else if s.errors > 0.0 {
                    "FAIL (session errors)"
                } else {
                    "FAIL"
                }
            );
        }
    }
    println!();
    let best = |server: &str, transport: &str, strict: bool| -> Option<Step> {
        outcomes
            .iter()
            .find(|x| x.server == server && x.transport == transport)
            .and_then(|x| x.best(|s| if strict { s.strict(&o) } else { s.pass }))
            .cloned()
    };
    let show = |s: &Option<Step>| {
        s.as_ref().map_or("none".to_string(), |s| {
            format!(
                "N={} ({:.2} cores, {:.0} viewers/core)",
                s.n,
                s.cores,
                s.n / s.cores.max(1e-9)
            )
        })
    };
    let n = |s: &Option<Step>| s.as_ref().map_or(0.0, |s| s.n);
    for &transport in &transports {
        for (label, strict) in [
            (
                format!("strict (loss<{}%, p99<{} ms)", o.max_loss, o.max_p99_ms),
                true,
            ),
            (
                format!(
                    "capacity (loss<{}%, p99<{} ms, rate>=0.97)",
                    o.max_loss, o.stop_p99_ms
                ),
                false,
            ),
        ] {
            let (a, b) = (
                best("sluice", transport, strict),
                best("gst", transport, strict),
            );
            println!(
                "{transport} {label}: sluice {} | gst {} | sluice/gst {}",
                show(&a),
                show(&b),
                ratio(n(&a), n(&b))
            );
        }
    }
    for (gso, v) in &limits {
        let what = if *gso == 1 {
            "one datagram per send".to_string()
        } else {
            format!("GSO sends of {gso}, not usable under strict pacing")
        };
        let of = |strict: bool| {
            best("sluice", "udp", strict).map_or("-".to_string(), |s| {
                format!("{:.2}", s.n / s.cores.max(1e-9) / v)
            })
        };
        println!(
            "udp physical limit ({what}): {v:.0} viewers/core | sluice strict/limit {} | \
             sluice capacity/limit {}",
            of(true),
            of(false)
        );
    }
    println!("total {:.0} s", t_all.elapsed().as_secs_f64());
    if !o.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
