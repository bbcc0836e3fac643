//! The storage side of one streamer process: every virtual node of the store's topology as an
//! io_uring device on its own ring thread, a host agent per physical host sending heartbeats
//! (a node whose device crashed drops out of its host's beats), and the in-process membership
//! that turns missed beats into Down events for the replica readers.
//!
//! A host with an `address` in the topology runs as its own `storage-node` process: its nodes
//! are read over HTTP byte ranges ([`RemoteNode`]), and its heartbeat is its `/health` answer,
//! polled every interval (a process that stops answering misses its beats). The manifests are
//! still read from the store folder, which the processes share on one machine.

use crate::config::Config;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_device_sim::Device;
use storage_device_sim::heartbeat::{HeartbeatSink, HostAgent};
use storage_device_sim::membership::{DetectorConfig, Health, InProcessMembership, Membership};
use storage_device_sim::remote::RemoteNode;
use storage_device_sim::replica::{ReadAt, ReplicaReader, ReplicaSource};
use storage_device_sim::topology::Topology;

pub struct Cluster {
    pub topology: Topology,
    /// Nodes of in-process hosts (their knobs are settable through the admin endpoint).
    pub devices: BTreeMap<String, Device>,
    /// Every node, local or remote, as something to read from.
    pub sources: BTreeMap<String, Arc<dyn ReadAt>>,
    pub membership: Arc<dyn Membership>,
    pub read_deadline: Duration,
    /// The most one read into memory asks a node for (the device's buffer size).
    pub read_max: usize,
    /// With etcd: whether this process is the elected controller (re-replication runs only
    /// there); `None` in one process, where it always runs.
    pub controller: Option<tokio::sync::watch::Receiver<bool>>,
    /// Sessions' reserved egress per host, for steering.
    pub load: Arc<crate::load::Load>,
    /// The other streamers (with etcd), for steering across machines.
    pub peers: Arc<crate::peers::Peers>,
    _agents: Vec<HostAgent>,
    _pollers: Vec<RemotePoller>,
}

/// The heartbeat of a remote host: its `/health`, polled on a thread until dropped.
struct RemotePoller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RemotePoller {
    fn start(
        host: String,
        addr: String,
        interval: Duration,
        sink: Arc<dyn HeartbeatSink>,
    ) -> RemotePoller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("poll-{host}"))
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    if let Some(nodes) = RemoteNode::health_blocking(&addr, interval) {
                        let up: Vec<String> = nodes
                            .into_iter()
                            .filter(|(_, up)| *up)
                            .map(|(n, _)| n)
                            .collect();
                        sink.beat(&host, &up);
                    }
                    std::thread::sleep(interval.saturating_sub(started.elapsed()));
                }
            })
            .ok();
        RemotePoller { stop, thread }
    }
}

impl Drop for RemotePoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// This process's standing in the controller election.
type Elected = tokio::sync::watch::Receiver<bool>;

/// The etcd membership, and this process's standing in the controller election.
#[cfg(feature = "etcd")]
fn etcd_membership(
    topology: &Topology,
    cfg: &Config,
    interval: Duration,
) -> Result<(Arc<storage_device_sim::etcd::EtcdMembership>, Elected)> {
    use storage_device_sim::etcd::{EtcdConfig, EtcdMembership};
    let ec = EtcdConfig::new(
        cfg.etcd.clone(),
        cfg.etcd_prefix.clone(),
        interval,
        cfg.missed_beats,
    );
    let m = EtcdMembership::start(topology, ec, Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!(e))?;
    let me = format!("streamer-{}", std::process::id());
    let elected = m.elect("controller", &me);
    Ok((m, elected))
}

#[cfg(not(feature = "etcd"))]
fn etcd_membership(
    _: &Topology,
    _: &Config,
    _: Duration,
) -> Result<(Arc<InProcessMembership>, Elected)> {
    anyhow::bail!(
        "this streamer was built without etcd support: cargo build --release -p streamer --features etcd"
    )
}

impl Cluster {
    pub fn start(store: &Path, cfg: &Config) -> Result<Cluster> {
        let file = store.join("store.json");
        let topology = Topology::from_json(
            &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
        )?;
        let mut devices = BTreeMap::new();
        let mut sources: BTreeMap<String, Arc<dyn ReadAt>> = BTreeMap::new();
        for h in topology.hosts.iter().filter(|h| h.address.is_some()) {
            for n in &h.nodes {
                let addr = h.address.clone().unwrap_or_default();
                sources.insert(n.clone(), Arc::new(RemoteNode::new(n.clone(), addr)));
            }
        }
        let local = topology
            .hosts
            .iter()
            .filter(|h| h.address.is_none())
            .flat_map(|h| h.nodes.iter());
        for node in local {
            let dir = store.join(node);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let dev = Device::open(node.to_string(), dir, cfg.device_config())
                .with_context(|| format!("starting the io_uring device of {node}"))?;
            sources.insert(node.to_string(), Arc::new(dev.clone()));
            devices.insert(node.to_string(), dev);
        }
        let interval = Duration::from_millis(cfg.heartbeat_ms.max(10));
        let mut controller = None;
        let mut registry: Option<Arc<dyn storage_device_sim::membership::Registry>> = None;
        let (membership, sink, pollers): (Arc<dyn Membership>, Arc<dyn HeartbeatSink>, Vec<_>) =
            if cfg.etcd.is_empty() {
                let m = InProcessMembership::start(
                    &topology,
                    DetectorConfig {
                        interval,
                        missed_beats: cfg.missed_beats.max(1),
                    },
                );
                let sink: Arc<dyn HeartbeatSink> = m.clone();
                // Remote hosts' heartbeat is their /health, polled.
                let pollers = topology
                    .hosts
                    .iter()
                    .filter_map(|h| {
                        Some(RemotePoller::start(
                            h.name.clone(),
                            h.address.clone()?,
                            interval,
                            sink.clone(),
                        ))
                    })
                    .collect();
                (m, sink, pollers)
            } else {
                // Every host (remote ones from their own process) beats into etcd; health is
                // what the etcd watch says.
                let (m, elected) = etcd_membership(&topology, cfg, interval)?;
                controller = Some(elected);
                registry = Some(m.clone());
                (m.clone(), m, Vec::new())
            };
        let agents = topology
            .hosts
            .iter()
            .filter(|h| h.address.is_none())
            .map(|h| {
                let devs: BTreeMap<String, Device> = h
                    .nodes
                    .iter()
                    .filter_map(|n| Some((n.clone(), devices.get(n)?.clone())))
                    .collect();
                let healthy =
                    Arc::new(move |n: &str| devs.get(n).is_some_and(|d| !d.knobs().is_crashed()));
                HostAgent::start(
                    h.name.clone(),
                    h.nodes.clone(),
                    interval,
                    sink.clone(),
                    healthy,
                )
            })
            .collect();
        // The hosts on this machine: as configured, else the ones run in this process.
        let near: Vec<String> = if cfg.near_hosts.is_empty() {
            topology
                .hosts
                .iter()
                .filter(|h| h.address.is_none())
                .map(|h| h.name.clone())
                .collect()
        } else {
            cfg.near_hosts.clone()
        };
        Ok(Cluster {
            topology,
            devices,
            sources,
            membership,
            read_deadline: Duration::from_millis(cfg.read_deadline_ms.max(1)),
            read_max: cfg.device.buffer_size,
            controller,
            load: Arc::default(),
            peers: Arc::new(crate::peers::Peers::new(registry, near)),
            _agents: agents,
            _pollers: pollers,
        })
    }

    pub fn health(&self, node: &str) -> Health {
        self.membership.health(node)
    }

    /// A reader for a new session of `bps` bytes per second: the replicas ordered by
    /// load-aware steering ([`crate::load`]), and the session's reservation on the chosen
    /// host (hold it as long as the session lives).
    pub fn steered_reader(
        &self,
        id: &str,
        file: &str,
        nodes: &[String],
        bps: u64,
    ) -> (ReplicaReader, Option<crate::load::LoadGuard>) {
        let (order, guard) = self.load.steer(
            &self.topology,
            |n| self.membership.health(n),
            id,
            nodes,
            bps,
        );
        (self.reader(id, file, &order), guard)
    }

    /// The base URL of another streamer a new session of `c` belongs on (its copy would be
    /// read from a host on that streamer's machine), if any.
    pub fn redirect(
        &self,
        c: &crate::catalog::Content,
        face: crate::peers::Face,
    ) -> Option<String> {
        // The session would read from one of the copies' hosts: when every one is on this
        // machine (always, with a single streamer) there is nowhere to send it, and no need to
        // weigh the load.
        let all_near = c.nodes.iter().all(|n| {
            self.topology
                .host_of(n)
                .is_none_or(|h| self.peers.is_near(&h.name))
        });
        if all_near {
            return None;
        }
        let bps = c.manifest.bitrate / 8;
        let host = self
            .load
            .peek(&self.topology, |n| self.membership.health(n), &c.nodes, bps)?;
        if self.peers.is_near(&host) {
            return None;
        }
        // A healthy copy on this machine with room serves just as well: redirect only when
        // none has, so that two streamers with slightly different views of the load never
        // send a session back and forth.
        let room_here = c.nodes.iter().any(|n| {
            self.membership.health(n) == Health::Up
                && self.topology.host_of(n).is_some_and(|h| {
                    self.peers.is_near(&h.name) && self.load.has_room(&self.topology, &h.name, bps)
                })
        });
        if room_here {
            return None;
        }
        self.peers.redirect_for(&host, face)
    }

    /// A reader of `ID/FILE` over the given replica nodes (main first).
    pub fn reader(&self, id: &str, file: &str, nodes: &[String]) -> ReplicaReader {
        let replicas = nodes
            .iter()
            .filter_map(|n| {
                Some(ReplicaSource {
                    node: n.clone(),
                    source: self.sources.get(n)?.clone(),
                })
            })
            .collect();
        let m = self.membership.clone();
        ReplicaReader::new(
            format!("{id}/{file}"),
            replicas,
            Some(m),
            self.read_deadline,
        )
        .with_read_max(self.read_max)
    }
}
