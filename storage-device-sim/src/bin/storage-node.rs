//! `storage-node`: one physical host of simulated storage devices as its own process.
//!
//! Each virtual node of the host reads its folder (`STORE/NODE`) through its own io_uring ring
//! and is served over HTTP byte ranges to remote streamers, with health and admin endpoints
//! (see `storage_device_sim::node_server`).

use anyhow::{Context, Result, bail};
use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use storage_device_sim::device::{Device, DeviceConfig};
#[cfg(feature = "etcd")]
use storage_device_sim::heartbeat::HostAgent;
use storage_device_sim::node_server::NodeServer;
use storage_device_sim::topology::Topology;

#[derive(Parser)]
#[command(
    name = "storage-node",
    version,
    about = "Run one host's simulated storage nodes and serve them over HTTP"
)]
struct Cli {
    /// The store folder (its store.json names the hosts and nodes).
    #[arg(long, default_value = "./store")]
    store: PathBuf,
    /// A TOML topology instead of the store's store.json.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which host of the topology this process is (default: the first).
    #[arg(long)]
    host: Option<String>,
    /// Address to serve on (default: the host's `address` in the topology, else 127.0.0.1:9001).
    #[arg(long)]
    listen: Option<String>,
    /// io_uring queue depth per node.
    #[arg(long, default_value_t = 32)]
    queue_depth: u32,
    /// Size of each pooled read buffer, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    buffer_size: usize,
    /// Pooled buffers per node.
    #[arg(long, default_value_t = 64)]
    buffers: usize,
    /// Open files with O_DIRECT (bypass the page cache).
    #[arg(long)]
    o_direct: bool,
    /// etcd endpoints (comma-separated): this host keeps a lease there, renewed by its
    /// heartbeats, with its nodes' keys attached (needs a build with `--features etcd`).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/sluice")]
    etcd_prefix: String,
    /// Heartbeat interval, milliseconds (the lease TTL is missed-beats × this).
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    /// Missed beats before the host's lease expires.
    #[arg(long, default_value_t = 3)]
    missed_beats: u32,
}

/// With `--etcd`: the host agent, beating into etcd until the process ends.
#[cfg(feature = "etcd")]
fn join_etcd(
    cli: &Cli,
    topology: &Topology,
    host: &str,
    nodes: &BTreeMap<String, Device>,
) -> Result<Option<(Arc<storage_device_sim::etcd::EtcdMembership>, HostAgent)>> {
    use storage_device_sim::etcd::{EtcdConfig, EtcdMembership};
    if cli.etcd.is_empty() {
        return Ok(None);
    }
    let interval = std::time::Duration::from_millis(cli.heartbeat_ms.max(10));
    let cfg = EtcdConfig::new(
        cli.etcd.clone(),
        cli.etcd_prefix.clone(),
        interval,
        cli.missed_beats,
    );
    let m = EtcdMembership::start(topology, cfg, std::time::Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!(e))?;
    let devs = nodes.clone();
    let agent = HostAgent::start(
        host.to_string(),
        nodes.keys().cloned().collect(),
        interval,
        m.clone(),
        Arc::new(move |n: &str| devs.get(n).is_some_and(|d| !d.knobs().is_crashed())),
    );
    Ok(Some((m, agent)))
}

#[cfg(not(feature = "etcd"))]
fn join_etcd(cli: &Cli, _: &Topology, _: &str, _: &BTreeMap<String, Device>) -> Result<Option<()>> {
    if cli.etcd.is_empty() {
        return Ok(None);
    }
    bail!(
        "this storage-node was built without etcd support: cargo build -p storage-device-sim --features etcd"
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let topology = match &cli.config {
        Some(p) => Topology::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => {
            let p = cli.store.join("store.json");
            Topology::from_json(&std::fs::read(&p).with_context(|| {
                format!(
                    "reading {} (install something first, or pass --config)",
                    p.display()
                )
            })?)?
        }
    };
    let host = match &cli.host {
        Some(h) => topology
            .hosts
            .iter()
            .find(|x| &x.name == h)
            .with_context(|| format!("no host {h} in the topology"))?,
        None => topology
            .hosts
            .first()
            .context("the topology has no hosts")?,
    };
    let cfg = DeviceConfig {
        queue_depth: cli.queue_depth,
        buffer_size: cli.buffer_size,
        buffer_count: cli.buffers,
        o_direct: cli.o_direct,
    };
    let mut nodes = BTreeMap::new();
    for n in &host.nodes {
        let dir = cli.store.join(n);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        nodes.insert(n.clone(), Device::open(n.clone(), dir, cfg.clone())?);
    }
    if nodes.is_empty() {
        bail!("host {} has no nodes", host.name);
    }
    let addr = cli
        .listen
        .clone()
        .or_else(|| host.address.clone())
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let _etcd = join_etcd(&cli, &topology, &host.name, &nodes)?;
    let server = Arc::new(NodeServer {
        host: host.name.clone(),
        nodes,
    });
    println!(
        "storage-node: host {} with {} on http://{}",
        server.host,
        server.nodes.keys().cloned().collect::<Vec<_>>().join(", "),
        listener.local_addr()?
    );
    if !cli.etcd.is_empty() {
        println!("storage-node: heartbeats to etcd at {}", cli.etcd.join(","));
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| server.clone().handle(req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
