//! Playback gap at failover (issue 6, item 2): the real streamer (release build) with the demo
//! clip on two hosts; an RTSP session over UDP and one over TCP play while the main copy's
//! node crashes 3 s in. The longest pause between two RTP packets a viewer sees, over N runs
//! (p50, p99), against the same measure in runs without a fault, in the same run of this
//! bench: the stream's own spacing is the peer.
//!
//!   cargo run --release -p sluice-benches --bin failover_gap [RUNS] [FAULT_JSON] [4M]
//!   (FAULT_JSON default {"crashed":true}; also {"stalled":true}, {"eio":[{"start":0,"end":1e12}]};
//!   `4M`: a generated 12 s 720p clip at 4 Mbit/s instead of the demo clip)

use anyhow::Result;
use rtsp_proto::message::Method;
use serde_json::json;
use sluice_tests::bin_path::workspace_root;
use sluice_tests::http_client::must_put_json;
use sluice_tests::rtsp_client::{Client, Packet, sequence_gaps};
use sluice_tests::server::{self, Server};
use sluice_tests::store;
use std::time::{Duration, Instant};

/// Runs at once (each with its own streamer).
const PARALLEL: usize = 4;

fn longest_pause(p: &[Packet]) -> Duration {
    p.windows(2)
        .map(|w| w[1].arrival.duration_since(w[0].arrival))
        .max()
        .unwrap_or_default()
}

/// One run: the longest pause of each session (UDP, TCP), and their sequence gaps.
fn run(src: &std::path::Path, fault: Option<&serde_json::Value>) -> (Vec<Duration>, u64) {
    let topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [{"name": "h1", "nodes": ["a1"]}, {"name": "h2", "nodes": ["b1"]}],
    });
    let (dir, manifest) = store::with_topology("sluice-gap-", &topology, src, "demo", 2);
    let main = manifest["replicas"][0]["node"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let srv = Server::start(
        server::streamer_command(dir.path(), &[]),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    let runs: Vec<_> = [false, true]
        .into_iter()
        .map(|tcp| {
            let mut c = Client::connect(rtsp, "demo").expect("connect");
            c.setup(tcp);
            let url = c.url.clone();
            let play = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=0-")]);
            std::thread::spawn(move || {
                c.collect_run(&play, Instant::now() + Duration::from_secs(40))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    if let Some(f) = fault {
        must_put_json(srv.addr, &format!("/admin/nodes/{main}/knobs"), f);
    }
    let mut pauses = Vec::new();
    let mut gaps = 0;
    for r in runs {
        let (p, _) = r.join().expect("session");
        gaps += sequence_gaps(&p);
        pauses.push(longest_pause(&p));
    }
    (pauses, gaps)
}

fn many(
    src: &std::path::Path,
    n: usize,
    fault: Option<&serde_json::Value>,
) -> (Vec<Duration>, u64) {
    let mut all = Vec::new();
    let mut gaps = 0;
    let mut left = n;
    while left > 0 {
        let k = left.min(PARALLEL);
        let batch: Vec<_> = (0..k)
            .map(|_| {
                let (f, src) = (fault.cloned(), src.to_path_buf());
                std::thread::spawn(move || run(&src, f.as_ref()))
            })
            .collect();
        for b in batch {
            let (p, g) = b.join().expect("run");
            all.extend(p);
            gaps += g;
        }
        left -= k;
    }
    all.sort();
    (all, gaps)
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let fault: serde_json::Value = match args.next() {
        Some(j) => serde_json::from_str(&j)?,
        None => json!({"crashed": true}),
    };
    let src = match args.next().as_deref() {
        Some("4M") => sluice_benches::clip(
            "gap-4m.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=25",
                "-t",
                "12",
                "-c:v",
                "libx264",
                "-b:v",
                "4M",
                "-maxrate",
                "4M",
                "-bufsize",
                "2M",
                "-g",
                "50",
                "-pix_fmt",
                "yuv420p",
            ],
        )?,
        _ => workspace_root().join("media-fixtures/demo/demo.mp4"),
    };
    let (base, base_gaps) = many(&src, n, None);
    let (hit, hit_gaps) = many(&src, n, Some(&fault));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "failover_gap: {n} runs x 2 sessions (RTSP UDP + TCP), {}, fault {fault} on the main node 3 s in",
        src.file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned())
    );
    println!(
        "  longest pause without a fault: p50 {:.1} ms, p99 {:.1} ms (sequence gaps {base_gaps})",
        ms(pct(&base, 0.5)),
        ms(pct(&base, 0.99))
    );
    println!(
        "  longest pause with the fault:  p50 {:.1} ms, p99 {:.1} ms (sequence gaps {hit_gaps})",
        ms(pct(&hit, 0.5)),
        ms(pct(&hit, 0.99))
    );
    println!(
        "  ratio fault / no fault: p50 {:.2}, p99 {:.2}",
        ms(pct(&hit, 0.5)) / ms(pct(&base, 0.5)),
        ms(pct(&hit, 0.99)) / ms(pct(&base, 0.99))
    );
    Ok(())
}
