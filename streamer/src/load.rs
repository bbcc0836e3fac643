//! Load-aware steering (issue 6, item 5): which replica a new session reads from.
//!
//! Each physical host may declare its egress capacity (`egress_bps` in the topology, bytes
//! per second). Every session — an HTTP response or an RTSP session — reserves its content's
//! bitrate on the host it starts reading from, for as long as it lives ([`LoadGuard`]); the
//! sum per host is that host's egress as this server drives it, with the session counts,
//! published in `/metrics`. Counting reserved bitrates rather than measuring bytes keeps the
//! choice stable: reads are bursty (a read-ahead fetches seconds of media at once), sessions
//! are not.
//!
//! The choice is bounded-load rendezvous: the healthy replicas in their placement order (so
//! that, unloaded, every session of a content goes to its main copy and caches stay warm),
//! taking the first whose host stays under its capacity and holds fewer than
//! `ceil((1 + ε) × m / n)` sessions, `m` being all sessions counting this one and `n` the hosts
//! (bounded-load consistent hashing); when none qualifies, the one with the most headroom
//! (least loaded when no capacity is declared). The other replicas follow in placement order, for failover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use storage_device_sim::membership::Health;
use storage_device_sim::topology::Topology;

/// How far above the mean a host may be loaded before sessions go elsewhere.
const EPSILON: f64 = 0.25;

#[derive(Debug, Default, Clone, Copy)]
struct HostLoad {
    /// Reserved egress, bytes per second.
    bps: u64,
    sessions: u64,
}

#[derive(Debug, Default)]
pub struct Load {
    hosts: Mutex<HashMap<String, HostLoad>>,
    /// Live sessions per content: its demand, for the spare pool (see `repair`).
    contents: Mutex<HashMap<String, u64>>,
    /// Other streamers' reservations per host (bytes per second, sessions), from
    /// [`crate::peers`].
    remote: Mutex<HashMap<String, (u64, u64)>>,
}

/// A session's reservation on a host; released when dropped.
#[derive(Debug)]
pub struct LoadGuard {
    load: Arc<Load>,
    host: String,
    id: String,
    bps: u64,
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let mut h = self.load.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = h.get_mut(&self.host) {
            l.bps = l.bps.saturating_sub(self.bps);
            l.sessions = l.sessions.saturating_sub(1);
        }
        drop(h);
        let mut c = self.load.contents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.id);
            }
        }
    }
}

impl Load {
    /// The index in `nodes` of the replica a new session of `bps` bytes per second should
    /// read, and its host (see the module doc); `None` when no replica is healthy.
    fn choose(
        &self,
        hosts: &HashMap<String, HostLoad>,
        topology: &Topology,
        health: impl Fn(&str) -> Health,
        nodes: &[String],
        bps: u64,
    ) -> Option<(usize, String)> {
        let remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        let host_of = |n: &str| topology.host_of(n).map(|h| (h.name.as_str(), h.egress_bps));
        let healthy: Vec<(usize, &str, Option<u64>)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| health(n) == Health::Up)
            .filter_map(|(i, n)| host_of(n).map(|(h, cap)| (i, h, cap)))
            .collect();
        let load = |h: &str| hosts.get(h).map_or(0, |l| l.bps) + remote.get(h).map_or(0, |r| r.0);
        let count =
            |h: &str| hosts.get(h).map_or(0, |l| l.sessions) + remote.get(h).map_or(0, |r| r.1);
        // The bound of bounded-load hashing, in sessions: ceil((1 + ε) × m / n) with m the
        // sessions on every host counting this one, n the hosts.
        // (Summing `count` over every host named locally or remotely is summing both maps.)
        let m = hosts.values().map(|l| l.sessions).sum::<u64>()
            + remote.values().map(|r| r.1).sum::<u64>()
            + 1;
        let n = topology.hosts.len().max(1);
        let bound = ((1.0 + EPSILON) * m as f64 / n as f64).ceil() as u64;
        let fits =
            |h: &str, cap: Option<u64>| cap.is_none_or(|c| load(h) + bps <= c) && count(h) < bound;
        healthy
            .iter()
            .find(|(_, h, cap)| fits(h, *cap))
            .or_else(|| {
                healthy.iter().max_by_key(|(_, h, cap)| {
                    let used = load(h) as i128;
                    cap.map_or(i128::MAX / 2 - used, |c| c as i128 - used)
                })
            })
            .map(|(i, h, _)| (*i, h.to_string()))
    }

    /// The host a new session of `bps` would read from, without reserving anything (to
    /// decide whether it belongs on another streamer).
    pub fn peek(
        &self,
        topology: &Topology,
        health: impl Fn(&str) -> Health,
        nodes: &[String],
        bps: u64,
    ) -> Option<String> {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        self.choose(&hosts, topology, health, nodes, bps)
            .map(|(_, h)| h)
    }

    /// Whether `host` can take `bps` more within its egress capacity (counting every
    /// streamer's reservations).
    pub fn has_room(&self, topology: &Topology, host: &str, bps: u64) -> bool {
        let Some(cap) = topology
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.egress_bps)
        else {
            return false;
        };
        let local = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .map_or(0, |l| l.bps);
        let remote = self
            .remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .map_or(0, |r| r.0);
        cap.is_none_or(|c| local + remote + bps <= c)
    }

    /// This streamer's reservations per host: (bytes per second, sessions).
    pub fn local(&self) -> HashMap<String, (u64, u64)> {
        self.hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(h, l)| (h.clone(), (l.bps, l.sessions)))
            .collect()
    }

    /// The other streamers' reservations per host.
    pub fn set_remote(&self, remote: HashMap<String, (u64, u64)>) {
        *self.remote.lock().unwrap_or_else(|e| e.into_inner()) = remote;
    }

    /// Order `nodes` (a content's replicas, placement order) for a new session of `bps` bytes
    /// per second, and reserve the load on the first one's host.
    pub fn steer(
        self: &Arc<Self>,
        topology: &Topology,
        health: impl Fn(&str) -> Health,
        id: &str,
        nodes: &[String],
        bps: u64,
    ) -> (Vec<String>, Option<LoadGuard>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let chosen = self.choose(&hosts, topology, health, nodes, bps);
        let Some((first, host)) = chosen else {
            return (nodes.to_vec(), None);
        };
        let l = hosts.entry(host.clone()).or_default();
        l.bps += bps;
        l.sessions += 1;
        let mut order = vec![nodes[first].clone()];
        order.extend(
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != first)
                .map(|(_, n)| n.clone()),
        );
        drop(hosts);
        *self
            .contents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default() += 1;
        let guard = LoadGuard {
            load: self.clone(),
            host,
            id: id.to_string(),
            bps,
        };
        (order, Some(guard))
    }

    /// Live sessions of content `id`.
    pub fn sessions_of(&self, id: &str) -> u64 {
        self.contents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Prometheus text: reserved egress and sessions per host.
    pub fn render(&self, topology: &Topology) -> String {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::from(
            "# HELP sluice_host_egress_bytes_per_second Bitrate of the sessions reading from each host.\n\
             # TYPE sluice_host_egress_bytes_per_second gauge\n",
        );
        let mut sessions = String::from(
            "# HELP sluice_host_sessions Sessions reading from each host.\n\
             # TYPE sluice_host_sessions gauge\n",
        );
        for h in &topology.hosts {
            let l = hosts.get(&h.name).copied().unwrap_or_default();
            s += &format!(
                "sluice_host_egress_bytes_per_second{{host=\"{}\"}} {}\n",
                h.name, l.bps
            );
            sessions += &format!(
                "sluice_host_sessions{{host=\"{}\"}} {}\n",
                h.name, l.sessions
            );
        }
        s + &sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(cap_a: Option<u64>) -> Topology {
        let mut t = Topology::from_json(
            br#"{"format":"sluice-store","version":1,"hosts":[
                {"name":"ha","nodes":["a"]},{"name":"hb","nodes":["b"]},{"name":"hc","nodes":["c"]}]}"#,
        )
        .unwrap();
        t.hosts[0].egress_bps = cap_a;
        t
    }

    #[test]
    fn main_first_until_its_cap_or_the_bound_then_elsewhere() {
        let load = Arc::new(Load::default());
        let t = topo(Some(250));
        let nodes = vec!["a".to_string(), "b".to_string()];
        let up = |_: &str| Health::Up;
        // Unloaded: the main copy, up to the bound ceil(1.25 m / 3).
        let (o1, g1) = load.steer(&t, up, "x", &nodes, 100);
        assert_eq!(o1, ["a", "b"]);
        let (o2, g2) = load.steer(&t, up, "x", &nodes, 100);
        assert_eq!(
            o2,
            ["b", "a"],
            "a would hold 2 of 2: above ceil(1.25 x 2 / 3) = 1"
        );
        // Sessions of another content on c raise the bound.
        let other = vec!["c".to_string()];
        let g_c: Vec<_> = (0..4)
            .map(|_| load.steer(&t, up, "y", &other, 1).1)
            .collect();
        let (o3, g3) = load.steer(&t, up, "x", &nodes, 100);
        assert_eq!(
            o3[0], "a",
            "7 sessions: bound ceil(1.25 x 7 / 3) = 3, a holds 1"
        );
        let (o4, g4) = load.steer(&t, up, "x", &nodes, 100);
        assert_eq!(
            o4[0], "b",
            "a is within the bound but its cap (250) is full"
        );
        drop((g1, g2, g3, g4, g_c));
        // A down main: the sub, reserved there.
        let (o, g) = load.steer(
            &t,
            |n: &str| if n == "a" { Health::Down } else { Health::Up },
            "y",
            &nodes,
            10,
        );
        assert_eq!(o[0], "b");
        assert_eq!(g.as_ref().map(|g| g.host.as_str()), Some("hb"));
        assert_eq!((load.sessions_of("y"), load.sessions_of("x")), (1, 0));
        let text = load.render(&t);
        assert!(
            text.contains("sluice_host_sessions{host=\"hb\"} 1"),
            "{text}"
        );
        drop(g);
        assert!(
            load.render(&t)
                .contains("sluice_host_egress_bytes_per_second{host=\"hb\"} 0")
        );
    }
}
