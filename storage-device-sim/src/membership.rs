//! Membership: which storage nodes are up, and who is told when that changes (issue 3, item 3).
//!
//! Host agents ([`crate::heartbeat::HostAgent`]) send a heartbeat for their host every interval,
//! listing the virtual nodes that are alive. A failure detector marks a node `Down` once more
//! than `missed_beats × interval` has passed since its last beat (a whole host goes down this
//! way when its agent stops: crash, partition), and `Up` again at its next beat. A node that its
//! host's heartbeat leaves out is `Down` at once: the host agent knows that device is sick.
//! Every transition is published once, to every subscriber, in the order it happened.
//!
//! [`InProcessMembership`] is the embedded default for one process. A distributed backend (etcd,
//! issue 6) implements the same [`Membership`] trait and [`HeartbeatSink`].

use crate::heartbeat::HeartbeatSink;
use crate::topology::Topology;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Health {
    Up,
    Down,
}

/// One transition of one node, as published to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub node: String,
    pub host: String,
    pub health: Health,
}

/// What the replica reader and the streamer need to know about the storage nodes.
pub trait Membership: Send + Sync + 'static {
    /// The node's current health; an unknown node is `Down`.
    fn health(&self, node: &str) -> Health;
    /// A receiver of every transition from now on. A receiver that falls more than
    /// [`EVENT_CAPACITY`] events behind gets `RecvError::Lagged` and should re-read
    /// [`Membership::snapshot`].
    fn subscribe(&self) -> broadcast::Receiver<Change>;
    /// Every node with its host and health, in topology order.
    fn snapshot(&self) -> Vec<(String, String, Health)>;
}

/// Small facts processes share with each other (a streamer's address, the load it puts on
/// each host): what a process publishes lives as long as the process. Only a distributed
/// backend has one (etcd); in one process there is no one to tell.
pub trait Registry: Send + Sync + 'static {
    /// Set this process's entry `name` to `value`.
    fn publish(&self, name: &str, value: String);
    /// Every process's entries: name → value.
    fn entries(&self) -> std::collections::HashMap<String, String>;
}

/// How many unread events a subscriber may fall behind before it lags.
pub const EVENT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub struct DetectorConfig {
    /// The heartbeat interval (default 200 ms).
    pub interval: Duration,
    /// A node is down after this many missed beats (default 3).
    pub missed_beats: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            interval: Duration::from_millis(200),
            missed_beats: 3,
        }
    }
}

impl DetectorConfig {
    /// A node whose last beat is older than this is down: `missed_beats × interval`.
    pub fn timeout(&self) -> Duration {
        self.interval.saturating_mul(self.missed_beats.max(1))
    }

    /// How often the detector looks: a quarter of the interval (at least 1 ms), so a silent node
    /// is declared down at most this long after its timeout.
    pub fn check_period(&self) -> Duration {
        (self.interval / 4).max(Duration::from_millis(1))
    }
}

struct NodeState {
    node: String,
    host: String,
    health: Health,
    last_beat: Instant,
}

/// The state shared by the membership handle and its detector thread.
struct Shared {
    /// Nodes in topology order; `index` maps a node name into it.
    nodes: Mutex<Vec<NodeState>>,
    index: HashMap<String, usize>,
    /// Host name → its nodes' positions in `nodes`.
    hosts: HashMap<String, Vec<usize>>,
    events: broadcast::Sender<Change>,
    timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<NodeState>> {
        // A panic while holding the lock leaves the health map consistent (each update is one
        // field write), so carry on rather than poison every later caller.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set a node's health, publishing only a real transition. Called with the lock held, so
    /// events go out in the order the state changed.
    fn set(&self, n: &mut NodeState, health: Health) {
        if n.health != health {
            n.health = health;
            // No subscriber is not an error.
            let _ = self.events.send(Change {
                node: n.node.clone(),
                host: n.host.clone(),
                health,
            });
        }
    }

    fn beat(&self, host: &str, alive: &[String]) {
        let Some(members) = self.hosts.get(host) else {
            return; // not a host of this topology: nothing to update
        };
        let now = Instant::now();
        let mut nodes = self.lock();
        for &i in members {
            let n = &mut nodes[i];
            if alive.contains(&n.node) {
                n.last_beat = now;
                self.set(n, Health::Up);
            } else {
                self.set(n, Health::Down);
            }
        }
    }

    /// One pass of the failure detector: every up node silent for longer than the timeout
    /// goes down.
    fn check(&self) {
        let now = Instant::now();
        let mut nodes = self.lock();
        for n in nodes.iter_mut() {
            if n.health == Health::Up && now.duration_since(n.last_beat) > self.timeout {
                self.set(n, Health::Down);
            }
        }
    }
}

/// The embedded membership of one process: heartbeats arrive by method call
/// ([`HeartbeatSink::beat`]), and a failure detector thread marks silent nodes down. The thread
/// needs no tokio runtime; it stops when the membership is dropped.
pub struct InProcessMembership {
    shared: Arc<Shared>,
    /// Dropping the sender wakes the detector thread and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    cfg: DetectorConfig,
}

impl InProcessMembership {
    /// Start tracking every node of `topology`. Every node starts `Up`, as if it had just beaten:
    /// it goes down only after `missed_beats × interval` without a beat.
    pub fn start(topology: &Topology, cfg: DetectorConfig) -> Arc<InProcessMembership> {
        let now = Instant::now();
        let mut nodes = Vec::new();
        let mut index = HashMap::new();
        let mut hosts: HashMap<String, Vec<usize>> = HashMap::new();
        for h in &topology.hosts {
            for node in &h.nodes {
                if index.contains_key(node) {
                    continue; // a validated topology has no duplicate; keep the first
                }
                index.insert(node.clone(), nodes.len());
                hosts.entry(h.name.clone()).or_default().push(nodes.len());
                nodes.push(NodeState {
                    node: node.clone(),
                    host: h.name.clone(),
                    health: Health::Up,
                    last_beat: now,
                });
            }
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(Shared {
            nodes: Mutex::new(nodes),
            index,
            hosts,
            events,
            timeout: cfg.timeout(),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let period = cfg.check_period();
        let detector = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sluice-detector".into())
            .spawn(move || {
                // Ends when the sender is dropped (Disconnected); a message also ends it.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    detector.check();
                }
            })
            .expect("spawn the failure detector thread");
        Arc::new(InProcessMembership {
            shared,
            stop: Some(stop),
            thread: Some(thread),
            cfg,
        })
    }

    /// A heartbeat from `host`: the listed `nodes` are alive (and `Up` again if they were down);
    /// every node of that host not listed is `Down` at once. Beats from an unknown host, and
    /// listed nodes that are not on that host, are ignored.
    pub fn beat(&self, host: &str, nodes: &[String]) {
        self.shared.beat(host, nodes);
    }

    pub fn config(&self) -> DetectorConfig {
        self.cfg
    }

    #[cfg(test)]
    fn shared_weak(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }
}

impl Membership for InProcessMembership {
    fn health(&self, node: &str) -> Health {
        match self.shared.index.get(node) {
            Some(&i) => self.shared.lock()[i].health,
            None => Health::Down,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.events.subscribe()
    }

    fn snapshot(&self) -> Vec<(String, String, Health)> {
        self.shared
            .lock()
            .iter()
            .map(|n| (n.node.clone(), n.host.clone(), n.health))
            .collect()
    }
}

/// In one process there is no other process to tell.
impl Registry for InProcessMembership {
    fn publish(&self, _: &str, _: String) {}

    fn entries(&self) -> std::collections::HashMap<String, String> {
        std::collections::HashMap::new()
    }
}

impl HeartbeatSink for InProcessMembership {
    fn beat(&self, host: &str, nodes: &[String]) {
        self.shared.beat(host, nodes);
    }
}

impl Drop for InProcessMembership {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::HostAgent;
    use crate::topology::{Host, STORE_FORMAT, STORE_VERSION};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::broadcast::error::TryRecvError;

    /// Slack for a loaded 2-core machine (scheduling delays of a thread that sleeps).
    const SLACK: Duration = Duration::from_millis(1000);

    fn topo() -> Topology {
        let host = |name: &str, nodes: &[&str]| Host {
            name: name.into(),
            weight: 1.0,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            address: None,
            egress_bps: None,
            pool: Vec::new(),
        };
        let t = Topology {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            hosts: vec![
                host("host-a", &["a1", "a2"]),
                host("host-b", &["b1", "b2", "b3"]),
            ],
        };
        t.validate().unwrap();
        t
    }

    fn nodes_of(t: &Topology, host: &str) -> Vec<String> {
        t.hosts
            .iter()
            .find(|h| h.name == host)
            .unwrap()
            .nodes
            .clone()
    }

    fn cfg(ms: u64) -> DetectorConfig {
        DetectorConfig {
            interval: Duration::from_millis(ms),
            missed_beats: 3,
        }
    }

    /// Everything a receiver has now, without blocking.
    fn drain(rx: &mut broadcast::Receiver<Change>, into: &mut Vec<Change>) {
        loop {
            match rx.try_recv() {
                Ok(c) => into.push(c),
                Err(TryRecvError::Empty) => return,
                Err(e) => panic!("receiver: {e:?}"),
            }
        }
    }

    /// Poll until `pred` holds on the events received so far, or panic at `deadline`.
    fn wait_for(
        rx: &mut broadcast::Receiver<Change>,
        seen: &mut Vec<Change>,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Change]) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            drain(rx, seen);
            if pred(seen) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "{what}: not within {within:?}; events {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn has(seen: &[Change], node: &str, health: Health) -> bool {
        seen.iter().any(|c| c.node == node && c.health == health)
    }

    /// Each node's events alternate Down, Up, Down, ... starting with Down (all start Up):
    /// every transition published exactly once.
    fn assert_no_duplicates(seen: &[Change]) {
        let mut last: HashMap<&str, Health> = HashMap::new();
        for c in seen {
            let prev = last.insert(&c.node, c.health).unwrap_or(Health::Up);
            assert_ne!(prev, c.health, "duplicate {c:?} in {seen:?}");
        }
    }

    #[test]
    fn starts_up_and_unknown_is_down() {
        let t = topo();
        let m = InProcessMembership::start(&t, cfg(200));
        assert_eq!(m.health("a1"), Health::Up);
        assert_eq!(m.health("nope"), Health::Down);
        let snap = m.snapshot();
        assert_eq!(snap.len(), 5);
        assert_eq!(snap[0], ("a1".into(), "host-a".into(), Health::Up));
        assert_eq!(snap[4], ("b3".into(), "host-b".into(), Health::Up));
        // Beats from strangers change nothing.
        let mut rx = m.subscribe();
        m.beat("host-z", &["a1".into()]);
        m.beat("host-a", &["a1".into(), "a2".into(), "b1".into()]);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    /// Without agents: a single beat and silence. The node must not be down before the timeout
    /// (exact: the detector compares to the last beat), and must be down soon after it.
    #[test]
    fn silence_is_detected_after_the_timeout_not_before() {
        let t = topo();
        let c = cfg(40);
        let m = InProcessMembership::start(&t, c);
        let mut rx = m.subscribe();
        let mut seen = Vec::new();
        let beat_at = Instant::now();
        m.beat("host-a", &nodes_of(&t, "host-a"));
        m.beat("host-b", &nodes_of(&t, "host-b"));
        wait_for(
            &mut rx,
            &mut seen,
            c.timeout() + SLACK * 2,
            "all down",
            |s| s.len() == 5,
        );
        let took = beat_at.elapsed();
        assert!(took > c.timeout(), "down after {took:?} < timeout");
        assert!(seen.iter().all(|c| c.health == Health::Down), "{seen:?}");
        // Beats resume: up again, once each.
        m.beat("host-a", &nodes_of(&t, "host-a"));
        m.beat("host-a", &nodes_of(&t, "host-a"));
        drain(&mut rx, &mut seen);
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert!(has(&seen[5..], "a1", Health::Up) && has(&seen[5..], "a2", Health::Up));
        assert_no_duplicates(&seen);
    }

    #[test]
    fn paused_host_goes_down_and_comes_back() {
        let t = topo();
        let c = cfg(250);
        let m = InProcessMembership::start(&t, c);
        let healthy: Arc<dyn Fn(&str) -> bool + Send + Sync> = Arc::new(|_: &str| true);
        let agent = |h: &str| {
            HostAgent::start(
                h.into(),
                nodes_of(&t, h),
                c.interval,
                m.clone(),
                healthy.clone(),
            )
        };
        let a = agent("host-a");
        let b = agent("host-b");
        let mut subs: Vec<_> = (0..3).map(|_| (m.subscribe(), Vec::new())).collect();

        // Steady state: nobody goes down.
        std::thread::sleep(c.timeout() * 2);
        for (rx, seen) in &mut subs {
            drain(rx, seen);
            assert!(seen.is_empty(), "steady state: {seen:?}");
        }

        a.pause();
        let paused = Instant::now();
        let bound = c.timeout() + c.check_period() + SLACK;
        for (rx, seen) in &mut subs {
            wait_for(rx, seen, bound, "host-a down", |s| {
                has(s, "a1", Health::Down) && has(s, "a2", Health::Down)
            });
        }
        let detected = paused.elapsed();
        assert!(detected <= bound, "detected after {detected:?} > {bound:?}");
        assert_eq!(m.health("a1"), Health::Down);
        assert_eq!(m.health("a2"), Health::Down);
        // The other host stays up while host-a is silent.
        std::thread::sleep(c.interval * 2);
        for n in nodes_of(&t, "host-b") {
            assert_eq!(m.health(&n), Health::Up, "{n}");
        }

        a.resume();
        for (rx, seen) in &mut subs {
            wait_for(rx, seen, c.interval + SLACK, "host-a up", |s| {
                s.iter().filter(|c| c.health == Health::Up).count() == 2
            });
        }
        // Quiet again for a while: no late or repeated events.
        std::thread::sleep(c.timeout());
        for (rx, seen) in &mut subs {
            drain(rx, seen);
            assert_eq!(seen.len(), 4, "{seen:?}");
            assert!(seen.iter().all(|c| c.host == "host-a"), "{seen:?}");
            assert_no_duplicates(seen);
        }
        eprintln!(
            "paused host detected down after {detected:?} (timeout {:?})",
            c.timeout()
        );
        a.stop();
        drop(b);
    }

    #[test]
    fn unhealthy_node_is_down_at_once_siblings_stay_up() {
        let t = topo();
        let c = cfg(250);
        let m = InProcessMembership::start(&t, c);
        let sick = Arc::new(AtomicBool::new(false));
        let s2 = sick.clone();
        let healthy: Arc<dyn Fn(&str) -> bool + Send + Sync> =
            Arc::new(move |n: &str| !(n == "b2" && s2.load(Ordering::SeqCst)));
        let _b = HostAgent::start(
            "host-b".into(),
            nodes_of(&t, "host-b"),
            c.interval,
            m.clone(),
            healthy,
        );
        let _a = HostAgent::start(
            "host-a".into(),
            nodes_of(&t, "host-a"),
            c.interval,
            m.clone(),
            Arc::new(|_: &str| true),
        );
        let mut rx = m.subscribe();
        let mut seen = Vec::new();
        sick.store(true, Ordering::SeqCst);
        // Down at the next beat, well before the silence timeout.
        let took = wait_for(&mut rx, &mut seen, c.interval + SLACK, "b2 down", |s| {
            has(s, "b2", Health::Down)
        });
        eprintln!(
            "unhealthy node down after {took:?} (interval {:?})",
            c.interval
        );
        std::thread::sleep(c.timeout());
        drain(&mut rx, &mut seen);
        assert_eq!(seen.len(), 1, "only b2: {seen:?}");
        for n in ["a1", "a2", "b1", "b3"] {
            assert_eq!(m.health(n), Health::Up, "{n}");
        }
        sick.store(false, Ordering::SeqCst);
        wait_for(&mut rx, &mut seen, c.interval + SLACK, "b2 up", |s| {
            has(s, "b2", Health::Up)
        });
        assert_no_duplicates(&seen);
    }

    #[test]
    fn dropping_stops_the_threads() {
        let t = topo();
        let c = cfg(10);
        let m = InProcessMembership::start(&t, c);
        let weak = m.shared_weak();
        let agent = HostAgent::start(
            "host-a".into(),
            nodes_of(&t, "host-a"),
            c.interval,
            m.clone(),
            Arc::new(|_: &str| true),
        );
        assert_eq!(Arc::strong_count(&m), 2, "the agent holds the sink");
        let t0 = Instant::now();
        agent.stop(); // joins: its clone of the sink is gone
        assert_eq!(Arc::strong_count(&m), 1);
        // Drop by Drop too.
        let dropped = HostAgent::start(
            "host-b".into(),
            nodes_of(&t, "host-b"),
            c.interval,
            m.clone(),
            Arc::new(|_: &str| true),
        );
        drop(dropped);
        assert_eq!(Arc::strong_count(&m), 1);
        drop(m); // joins the detector: the last reference to the shared state goes with it
        assert!(
            weak.upgrade().is_none(),
            "detector thread still holds its state"
        );
        assert!(t0.elapsed() < SLACK, "stopping took {:?}", t0.elapsed());
        // Stopped promptly even with a long interval: no waiting out a sleep.
        let slow = InProcessMembership::start(&t, cfg(60_000));
        let t0 = Instant::now();
        let agent = HostAgent::start(
            "host-a".into(),
            nodes_of(&t, "host-a"),
            Duration::from_secs(60),
            slow.clone(),
            Arc::new(|_: &str| true),
        );
        agent.stop();
        drop(slow);
        assert!(t0.elapsed() < SLACK, "stopping took {:?}", t0.elapsed());
    }

    #[test]
    fn events_are_consistent_with_snapshots_under_concurrency() {
        // Many beats and detector passes racing: each subscriber sees each node alternate, and
        // its last event agrees with the final snapshot.
        let t = topo();
        let c = cfg(5);
        let m = InProcessMembership::start(&t, c);
        let mut rx = m.subscribe();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, h) in ["host-a", "host-b"].into_iter().enumerate() {
            let (m, stop, nodes) = (m.clone(), stop.clone(), nodes_of(&t, h));
            threads.push(std::thread::spawn(move || {
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let alive: Vec<String> = nodes
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| !(k + *j as u32 + i as u32).is_multiple_of(3))
                        .map(|(_, n)| n.clone())
                        .collect();
                    m.beat(h, &alive);
                    if k.is_multiple_of(50) {
                        std::thread::sleep(Duration::from_millis(20)); // let the detector fire
                    }
                }
            }));
        }
        let mut seen = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            drain(&mut rx, &mut seen);
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        // With the beats stopped the detector still runs: every node goes down within the
        // timeout and then nothing changes. Compare only once that state is reached, so no
        // event can land between the snapshot and the drain.
        let settled = Instant::now();
        let snap = loop {
            let snap = m.snapshot();
            if snap.iter().all(|(_, _, h)| *h == Health::Down) {
                break snap;
            }
            assert!(settled.elapsed() < SLACK, "nodes still up: {snap:?}");
            std::thread::sleep(Duration::from_millis(5));
        };
        drain(&mut rx, &mut seen);
        assert!(seen.len() > 10, "{} events", seen.len());
        assert_no_duplicates(&seen);
        let nodes: HashSet<&str> = seen.iter().map(|c| c.node.as_str()).collect();
        for (node, _, health) in &snap {
            if nodes.contains(node.as_str()) {
                let last = seen.iter().rev().find(|c| c.node == *node).unwrap();
                assert_eq!(last.health, *health, "{node}");
            }
        }
    }
}
