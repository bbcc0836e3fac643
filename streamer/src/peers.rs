//! Other streamers, for steering across machines (issue 6, item 5).
//!
//! With etcd, each streamer publishes (every second, under its own lease, see
//! `storage_device_sim::membership::Registry`) where it serves (HTTP and RTSP base URLs), the
//! storage hosts that are on its own machine (`near_hosts`: reading them costs no network
//! between machines), and the egress it has reserved on every host ([`crate::load`]). Each
//! streamer adds the others' reservations to its own when it steers, so a host's capacity is
//! shared by all of them.
//!
//! When steering picks a copy on a host that is near another streamer and not near this one,
//! the session belongs on that other machine: a new session is redirected there (RTSP `302` on
//! DESCRIBE, HTTP `302` on a content request) with the same path, and the other streamer
//! serves it from its own machine. Without etcd, or when no other streamer is near the chosen
//! host, this streamer serves the session itself.

use crate::load::Load;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage_device_sim::membership::Registry;

/// What a streamer publishes about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    /// `http://HOST:PORT`
    pub http: String,
    /// `rtsp://HOST:PORT`
    pub rtsp: String,
    /// Storage hosts on this streamer's machine.
    pub near: Vec<String>,
    /// Reserved egress per host, bytes per second, and sessions.
    pub load: HashMap<String, (u64, u64)>,
}

pub struct Peers {
    registry: Option<Arc<dyn Registry>>,
    near: Vec<String>,
    me: RwLock<Peer>,
    name: RwLock<String>,
    others: RwLock<Vec<Peer>>,
}

/// Which face a redirect is for.
#[derive(Debug, Clone, Copy)]
pub enum Face {
    Http,
    Rtsp,
}

impl Peers {
    pub fn new(registry: Option<Arc<dyn Registry>>, near: Vec<String>) -> Peers {
        Peers {
            registry,
            near,
            me: RwLock::new(Peer::default()),
            name: RwLock::new(String::new()),
            others: RwLock::new(Vec::new()),
        }
    }

    /// This streamer's addresses (once its listeners are bound); its registry name is its
    /// HTTP address, unique among streamers.
    pub fn set_me(&self, http: String, rtsp: String) {
        *self.name.write().unwrap_or_else(|e| e.into_inner()) =
            http.trim_start_matches("http://").replace([':', '/'], "_");
        let mut me = self.me.write().unwrap_or_else(|e| e.into_inner());
        me.http = http;
        me.rtsp = rtsp;
        me.near = self.near.clone();
    }

    pub fn is_near(&self, host: &str) -> bool {
        self.near.iter().any(|h| h == host)
    }

    /// The base URL of the streamer a session whose copy is on `host` belongs to, when that
    /// is another streamer.
    pub fn redirect_for(&self, host: &str, face: Face) -> Option<String> {
        if self.registry.is_none() || self.is_near(host) {
            return None;
        }
        let me = self
            .me
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .http
            .clone();
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        others
            .iter()
            .filter(|p| p.http != me)
            .find(|p| p.near.iter().any(|h| h == host))
            .map(|p| match face {
                Face::Http => p.http.clone(),
                Face::Rtsp => p.rtsp.clone(),
            })
    }

    /// Publish this streamer and read the others, every second, while the process runs.
    pub async fn run(self: Arc<Self>, load: Arc<Load>) {
        let Some(registry) = self.registry.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let name = self.name.read().unwrap_or_else(|e| e.into_inner()).clone();
            if name.is_empty() {
                continue;
            }
            let me = {
                let mut m = self.me.write().unwrap_or_else(|e| e.into_inner());
                m.load = load.local();
                m.clone()
            };
            if let Ok(v) = serde_json::to_string(&me) {
                registry.publish(&name, v);
            }
            let others: Vec<Peer> = registry
                .entries()
                .into_iter()
                .filter(|(n, _)| *n != name)
                .filter_map(|(_, v)| serde_json::from_str(&v).ok())
                .collect();
            let mut remote: HashMap<String, (u64, u64)> = HashMap::new();
            for p in &others {
                for (h, (bps, sessions)) in &p.load {
                    let e = remote.entry(h.clone()).or_default();
                    e.0 += bps;
                    e.1 += sessions;
                }
            }
            load.set_remote(remote);
            *self.others.write().unwrap_or_else(|e| e.into_inner()) = others;
        }
    }
}
