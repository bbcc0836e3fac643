//! Topology: physical hosts, each holding virtual nodes.
//!
//! Virtual nodes on one host share its disks, network and power: they fail together, so
//! placement spreads replicas over hosts, never over two nodes of one host. The same structure
//! is stored in a store's `store.json` (the store describes itself) and read from TOML by
//! `storage-node`.

use crate::{Result, StorageError};
use serde::{Deserialize, Serialize};

pub const STORE_FORMAT: &str = "sluice-store";
pub const STORE_VERSION: u32 = 1;

fn default_weight() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub name: String,
    /// Relative capacity for weighted rendezvous placement (default 1.0).
    #[serde(default = "default_weight")]
    pub weight: f64,
    pub nodes: Vec<String>,
    /// Where this host's `storage-node` serves reads (`127.0.0.1:9001`), when it runs as its
    /// own process; absent for in-process nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The host's network egress capacity, bytes per second (load-aware steering keeps new
    /// sessions off a host at its capacity); absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_bps: Option<u64>,
    /// Nodes of `nodes` held in the spare pool: installs never place a replica there; the
    /// streamer's controller puts extra copies of hot contents there and takes them back
    /// when demand cools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<String>,
}

impl Host {
    /// The nodes installs may place replicas on (every node not in the pool).
    pub fn placeable(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().filter(|n| !self.pool.contains(n))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Topology {
    pub format: String,
    pub version: u32,
    pub hosts: Vec<Host>,
}

impl Topology {
    /// The embedded default: one physical host with two virtual nodes.
    pub fn default_single_host() -> Topology {
        Topology {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            hosts: vec![Host {
                name: "host-1".into(),
                weight: 1.0,
                nodes: vec!["node-1".into(), "node-2".into()],
                address: None,
                egress_bps: None,
                pool: Vec::new(),
            }],
        }
    }

    /// Check names are unique and usable as folder names, weights positive, nodes present.
    pub fn validate(&self) -> Result<()> {
        if self.format != STORE_FORMAT || self.version != STORE_VERSION {
            return Err(StorageError::Topology(format!(
                "format {} version {} is not supported (this build reads {STORE_FORMAT} {STORE_VERSION})",
                self.format, self.version
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if self.hosts.is_empty() {
            return Err(StorageError::Topology("no hosts".into()));
        }
        for h in &self.hosts {
            if !(h.weight.is_finite() && h.weight > 0.0) {
                return Err(StorageError::Topology(format!(
                    "host {}: weight must be > 0",
                    h.name
                )));
            }
            if let Some(p) = h.pool.iter().find(|p| !h.nodes.contains(p)) {
                return Err(StorageError::Topology(format!(
                    "host {}: pool node {p} is not one of its nodes",
                    h.name
                )));
            }
            if h.nodes.is_empty() {
                return Err(StorageError::Topology(format!(
                    "host {} has no nodes",
                    h.name
                )));
            }
            for n in std::iter::once(&h.name).chain(&h.nodes) {
                let ok = !n.is_empty()
                    && !n.starts_with('.')
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(StorageError::Topology(format!(
                        "bad host or node name {n:?}"
                    )));
                }
                if !seen.insert(n.clone()) {
                    return Err(StorageError::Topology(format!("name {n:?} used twice")));
                }
            }
        }
        Ok(())
    }

    pub fn from_json(bytes: &[u8]) -> Result<Topology> {
        let t: Topology =
            serde_json::from_slice(bytes).map_err(|e| StorageError::Topology(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    pub fn from_toml(text: &str) -> Result<Topology> {
        let t: Topology =
            toml::from_str(text).map_err(|e| StorageError::Topology(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.hosts
            .iter()
            .flat_map(|h| h.nodes.iter().map(String::as_str))
    }

    /// Whether `node` is a spare in its host's pool.
    pub fn is_spare(&self, node: &str) -> bool {
        self.host_of(node)
            .is_some_and(|h| h.pool.iter().any(|p| p == node))
    }

    /// The host a node lives on.
    pub fn host_of(&self, node: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.nodes.iter().any(|n| n == node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_agree() {
        let t = Topology::from_toml(
            r#"
format = "sluice-store"
version = 1
[[hosts]]
name = "host-a"
nodes = ["a1", "a2"]
[[hosts]]
name = "host-b"
weight = 2.0
nodes = ["b1"]
address = "127.0.0.1:9001"
"#,
        )
        .unwrap();
        assert_eq!(t.hosts[0].weight, 1.0);
        assert_eq!(Topology::from_json(&t.to_json()).unwrap(), t);
        assert_eq!(t.host_of("b1").unwrap().name, "host-b");
        let mut dup = t.clone();
        dup.hosts[1].nodes.push("a1".into());
        assert!(dup.validate().is_err());
    }
}
