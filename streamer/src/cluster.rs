//! The storage side of one streamer process: every virtual node of the store's topology as an
//! io_uring device on its own ring thread, a host agent per physical host sending heartbeats
//! (a node whose device crashed drops out of its host's beats), and the in-process membership
//! that turns missed beats into Down events for the replica readers.

use crate::config::Config;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_device_sim::Device;
use storage_device_sim::heartbeat::{HeartbeatSink, HostAgent};
use storage_device_sim::membership::{DetectorConfig, Health, InProcessMembership, Membership};
use storage_device_sim::replica::{ReplicaReader, ReplicaSource};
use storage_device_sim::topology::Topology;

pub struct Cluster {
    pub topology: Topology,
    pub devices: BTreeMap<String, Device>,
    pub membership: Arc<InProcessMembership>,
    pub read_deadline: Duration,
    _agents: Vec<HostAgent>,
}

impl Cluster {
    pub fn start(store: &Path, cfg: &Config) -> Result<Cluster> {
        let file = store.join("store.json");
        let topology = Topology::from_json(
            &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
        )?;
        let mut devices = BTreeMap::new();
        for node in topology.nodes() {
            let dir = store.join(node);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let dev = Device::open(node.to_string(), dir, cfg.device_config())
                .with_context(|| format!("starting the io_uring device of {node}"))?;
            devices.insert(node.to_string(), dev);
        }
        let interval = Duration::from_millis(cfg.heartbeat_ms.max(10));
        let membership = InProcessMembership::start(
            &topology,
            DetectorConfig {
                interval,
                missed_beats: cfg.missed_beats.max(1),
            },
        );
        let sink: Arc<dyn HeartbeatSink> = membership.clone();
        let agents = topology
            .hosts
            .iter()
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
        Ok(Cluster {
            topology,
            devices,
            membership,
            read_deadline: Duration::from_millis(cfg.read_deadline_ms.max(1)),
            _agents: agents,
        })
    }

    pub fn health(&self, node: &str) -> Health {
        self.membership.health(node)
    }

    /// A reader of `ID/FILE` over the given replica nodes (main first).
    pub fn reader(&self, id: &str, file: &str, nodes: &[String]) -> ReplicaReader {
        let replicas = nodes
            .iter()
            .filter_map(|n| {
                Some(ReplicaSource {
                    node: n.clone(),
                    source: Arc::new(self.devices.get(n)?.clone()),
                })
            })
            .collect();
        let m: Arc<dyn Membership> = self.membership.clone();
        ReplicaReader::new(
            format!("{id}/{file}"),
            replicas,
            Some(m),
            self.read_deadline,
        )
    }
}
