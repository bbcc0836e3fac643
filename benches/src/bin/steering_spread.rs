//! Load spread under skewed demand (issue 6, item 5): the steering code the streamer runs
//! (`streamer::load::Load::steer`), fed a Zipf-distributed demand over many contents placed
//! by the real placement (`storage_device_sim::placement`), against the same demand all read
//! from each content's main copy, in the same run. Reports max/mean host egress for both.
//!
//!   cargo run --release -p sluice-benches --bin steering_spread [SESSIONS] [CONTENTS] [HOSTS]

use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;
use storage_device_sim::membership::Health;
use storage_device_sim::placement::place;
use storage_device_sim::topology::Topology;
use streamer::load::Load;

fn topology(hosts: usize) -> Result<Topology> {
    let hs: Vec<String> = (1..=hosts)
        .map(|i| format!(r#"{{"name":"h{i}","nodes":["h{i}-n1"]}}"#))
        .collect();
    Ok(Topology::from_json(
        format!(
            r#"{{"format":"sluice-store","version":1,"hosts":[{}]}}"#,
            hs.join(",")
        )
        .as_bytes(),
    )?)
}

/// max / mean of the per-host loads.
fn spread(loads: &HashMap<String, u64>, hosts: usize) -> f64 {
    let total: u64 = loads.values().sum();
    let max = loads.values().copied().max().unwrap_or(0);
    max as f64 / (total as f64 / hosts as f64)
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sessions = args.first().copied().unwrap_or(5000);
    let contents = args.get(1).copied().unwrap_or(200);
    let hosts = args.get(2).copied().unwrap_or(6);
    let t = topology(hosts)?;
    let placed: Vec<Vec<String>> = (0..contents)
        .map(|c| {
            place(&t, &format!("content-{c}"), 2).map(|r| r.into_iter().map(|x| x.node).collect())
        })
        .collect::<Result<_, _>>()?;
    // Zipf(1): content k has weight 1/(k+1); sessions drawn by inverse CDF from a fixed seed.
    let weights: Vec<f64> = (0..contents).map(|k| 1.0 / (k as f64 + 1.0)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(contents);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let bps = 500_000u64;
    let load = Arc::new(Load::default());
    let mut main_only: HashMap<String, u64> = HashMap::new();
    let mut steered: HashMap<String, u64> = HashMap::new();
    let mut guards = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let u = next();
        let c = cdf.iter().position(|&x| x >= u).unwrap_or(contents - 1);
        let nodes = &placed[c];
        let host_of = |n: &str| t.host_of(n).map(|h| h.name.clone()).unwrap_or_default();
        *main_only.entry(host_of(&nodes[0])).or_default() += bps;
        let (order, guard) = load.steer(&t, |_| Health::Up, &format!("content-{c}"), nodes, bps);
        *steered.entry(host_of(&order[0])).or_default() += bps;
        guards.push(guard);
    }
    let top = cdf[0];
    println!(
        "steering_spread: {sessions} sessions of {contents} contents (Zipf 1: the top one draws {:.0}%) on {hosts} hosts, 2 copies each",
        top * 100.0
    );
    let (a, b) = (spread(&main_only, hosts), spread(&steered, hosts));
    println!("  max/mean host egress, every session on its main copy: {a:.2}");
    println!("  max/mean host egress, steered (bounded-load, eps 0.25): {b:.2}");
    println!("  ratio steered / main-only: {:.2}", b / a);
    Ok(())
}
