//! Membership through etcd (cargo feature `etcd`): what lets Sluice span machines on a trusted
//! coordination engine instead of a home-made one (issue 6, item 1).
//!
//! Keys, under a prefix (default `/sluice`):
//! - `PREFIX/nodes/NODE` = `HOST`, attached to the lease of `HOST`.
//! - `PREFIX/election/NAME`: etcd's election API ([`EtcdMembership::elect`]).
//!
//! One lease per physical host, granted with a TTL of `missed_beats × interval` (whole
//! seconds, at least one) and kept alive by the host agent's heartbeats ([`HeartbeatSink`]):
//! each beat renews the lease, puts the nodes it lists and deletes those it left out (the agent
//! knows a sick device). A host that dies stops beating, its lease expires and etcd deletes
//! every key attached to it at once: all its virtual nodes go down together, for every watcher
//! on every machine.
//!
//! Every beat also puts `PREFIX/beats/HOST` (a counter, on the same lease). Every process that
//! needs health watches both prefixes: a node is `Up` while its key exists and its host's beats
//! keep arriving. A host whose beats stop for `silence` (missed_beats × interval, 600 ms by
//! default) is down for every watcher at once — within a second, which lease expiry alone
//! cannot give (TTLs are whole seconds and etcd revokes expired leases on a ~500 ms loop, so
//! expiry lands 1.0–1.5 s after the last beat); the lease expiring then deletes the host's keys,
//! so the state in etcd itself is cleaned up for anyone who reads it later. A node absent from
//! etcd is `Down`. Changes are published to subscribers in the order they are seen. The etcd client is async (tonic); this type runs it on a thread of its own with a
//! current-thread runtime, so host agents (plain threads) and any runtime can use it.

use crate::heartbeat::HeartbeatSink;
use crate::membership::{Change, EVENT_CAPACITY, Health, Membership};
use crate::topology::Topology;
use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions,
    WatchOptions,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Where etcd is and how the keys are laid out.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `http://127.0.0.1:2379`, …
    pub endpoints: Vec<String>,
    /// Key prefix (several Sluice clusters may share one etcd).
    pub prefix: String,
    /// Lease TTL of a host, seconds (at least 1).
    pub ttl_secs: i64,
    /// A host whose beats are not seen for this long is down.
    pub silence: Duration,
}

impl EtcdConfig {
    /// The configuration for host agents beating every `interval`, down after `missed_beats`.
    pub fn new(
        endpoints: Vec<String>,
        prefix: String,
        interval: Duration,
        missed_beats: u32,
    ) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix,
            ttl_secs: EtcdConfig::ttl_for(interval, missed_beats),
            silence: interval * missed_beats.max(1),
        }
    }

    /// The TTL that matches a heartbeat detector: `missed_beats × interval`, rounded up.
    pub fn ttl_for(interval: Duration, missed_beats: u32) -> i64 {
        let ms = interval.as_millis() as i64 * i64::from(missed_beats.max(1));
        ((ms + 999) / 1000).max(1)
    }
}

enum Cmd {
    Beat(String, Vec<String>),
    Publish(String, String),
    Elect {
        name: String,
        value: String,
        leader: watch::Sender<bool>,
    },
}

/// Node health from etcd, and a heartbeat sink that keeps host leases alive.
pub struct EtcdMembership {
    /// (node, host) in topology order.
    nodes: Vec<(String, String)>,
    /// What processes published under `PREFIX/registry/` (name → value), refreshed
    /// twice a second.
    registry: Arc<Mutex<HashMap<String, String>>>,
    state: Arc<Mutex<HashMap<String, Health>>>,
    events: broadcast::Sender<Change>,
    cmds: mpsc::UnboundedSender<Cmd>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EtcdMembership {
    /// Connect (within `connect_timeout`), read the current nodes and start watching. An
    /// error when etcd cannot be reached at start: a server must not believe every node down
    /// (or up) because its coordination engine is missing.
    pub fn start(
        topology: &Topology,
        cfg: EtcdConfig,
        connect_timeout: Duration,
    ) -> Result<Arc<EtcdMembership>, String> {
        let nodes: Vec<(String, String)> = topology
            .hosts
            .iter()
            .flat_map(|h| h.nodes.iter().map(move |n| (n.clone(), h.name.clone())))
            .collect();
        let state = Arc::new(Mutex::new(
            nodes
                .iter()
                .map(|(n, _)| (n.clone(), Health::Down))
                .collect::<HashMap<_, _>>(),
        ));
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let registry = Arc::new(Mutex::new(HashMap::new()));
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = Worker {
            cfg,
            hosts: nodes.iter().cloned().collect(),
            present: Default::default(),
            last_beat: Default::default(),
            silent: Default::default(),
            state: state.clone(),
            events: events.clone(),
            leases: HashMap::new(),
            registry: registry.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("etcd".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("etcd runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(worker.run(connect_timeout, cmd_rx, stop_rx, ready_tx));
            })
            .map_err(|e| format!("etcd thread: {e}"))?;
        match ready_rx.recv_timeout(connect_timeout + Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err("etcd: no answer in time".into()),
        }
        Ok(Arc::new(EtcdMembership {
            nodes,
            registry,
            state,
            events,
            cmds,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    /// Campaign for `name` (as `value`, e.g. this process's name) with a lease of our own:
    /// the receiver turns `true` while this process is the elected one. When the leader's
    /// process dies its lease expires and the next candidate is elected.
    pub fn elect(&self, name: &str, value: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let _ = self.cmds.send(Cmd::Elect {
            name: name.to_string(),
            value: value.to_string(),
            leader: tx,
        });
        rx
    }
}

impl crate::membership::Registry for EtcdMembership {
    fn publish(&self, name: &str, value: String) {
        let _ = self.cmds.send(Cmd::Publish(name.to_string(), value));
    }

    fn entries(&self) -> HashMap<String, String> {
        lock(&self.registry).clone()
    }
}

impl Membership for EtcdMembership {
    fn health(&self, node: &str) -> Health {
        lock(&self.state).get(node).copied().unwrap_or(Health::Down)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.events.subscribe()
    }

    fn snapshot(&self) -> Vec<(String, String, Health)> {
        let s = lock(&self.state);
        self.nodes
            .iter()
            .map(|(n, h)| {
                (
                    n.clone(),
                    h.clone(),
                    s.get(n).copied().unwrap_or(Health::Down),
                )
            })
            .collect()
    }
}

impl HeartbeatSink for EtcdMembership {
    fn beat(&self, host: &str, nodes: &[String]) {
        let _ = self.cmds.send(Cmd::Beat(host.to_string(), nodes.to_vec()));
    }
}

impl Drop for EtcdMembership {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A host's lease and the node keys put under it.
struct HostLease {
    id: i64,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
    listed: BTreeSet<String>,
    beats: u64,
}

struct Worker {
    cfg: EtcdConfig,
    /// node → host.
    hosts: HashMap<String, String>,
    /// Nodes whose key exists in etcd.
    present: std::collections::HashSet<String>,
    /// When each host's last beat was seen.
    last_beat: HashMap<String, std::time::Instant>,
    /// Hosts whose beats stopped.
    silent: std::collections::HashSet<String>,
    state: Arc<Mutex<HashMap<String, Health>>>,
    events: broadcast::Sender<Change>,
    leases: HashMap<String, HostLease>,
    registry: Arc<Mutex<HashMap<String, String>>>,
}

impl Worker {
    fn node_key(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.cfg.prefix)
    }

    fn beat_key(&self, host: &str) -> String {
        format!("{}/beats/{host}", self.cfg.prefix)
    }

    /// A node's health from what etcd shows: its key exists and its host beats.
    fn refresh(&self, node: &str, why: &str) {
        let host = self.hosts.get(node).map(String::as_str).unwrap_or_default();
        let up = self.present.contains(node) && !self.silent.contains(host);
        self.set(node, if up { Health::Up } else { Health::Down }, why);
    }

    fn set(&self, node: &str, health: Health, why: &str) {
        let changed = {
            let mut s = lock(&self.state);
            let old = s.insert(node.to_string(), health);
            old != Some(health)
        };
        if changed {
            let host = self.hosts.get(node).cloned().unwrap_or_default();
            if health == Health::Down {
                tracing::warn!(node, host, why, "node down in etcd");
            } else {
                tracing::info!(node, host, "node up in etcd");
            }
            let _ = self.events.send(Change {
                node: node.to_string(),
                host,
                health,
            });
        }
    }

    async fn run(
        mut self,
        connect_timeout: Duration,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut stop: oneshot::Receiver<()>,
        ready: std::sync::mpsc::Sender<Result<(), String>>,
    ) {
        let opts = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_timeout(Duration::from_secs(5));
        let mut client = match Client::connect(&self.cfg.endpoints, Some(opts)).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(format!(
                    "etcd at {}: {e}",
                    self.cfg.endpoints.join(",")
                )));
                return;
            }
        };
        let prefix = format!("{}/nodes/", self.cfg.prefix);
        let rev = match client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
        {
            Ok(r) => {
                for kv in r.kvs() {
                    if let Ok(k) = kv.key_str()
                        && let Some(node) = k.strip_prefix(&prefix)
                    {
                        self.present.insert(node.to_string());
                        self.refresh(node, "");
                    }
                }
                // Every host gets one silence of grace from now.
                let now = std::time::Instant::now();
                for h in self.hosts.values() {
                    self.last_beat.insert(h.clone(), now);
                }
                r.header().map_or(0, |h| h.revision())
            }
            Err(e) => {
                let _ = ready.send(Err(format!("etcd: reading {prefix}: {e}")));
                return;
            }
        };
        let mut stream = match client
            .watch(
                prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(rev + 1),
                ),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(format!("etcd: watching {prefix}: {e}")));
                return;
            }
        };
        let beats_prefix = format!("{}/beats/", self.cfg.prefix);
        let mut beats = match client
            .watch(
                beats_prefix.as_str(),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(format!("etcd: watching {beats_prefix}: {e}")));
                return;
            }
        };
        let mut silence_check =
            tokio::time::interval((self.cfg.silence / 4).max(Duration::from_millis(10)));
        let _ = ready.send(Ok(()));
        let mut elections = tokio::task::JoinSet::new();
        let registry_prefix = format!("{}/registry/", self.cfg.prefix);
        elections.spawn(read_registry(
            client.clone(),
            registry_prefix.clone(),
            self.registry.clone(),
        ));
        let mut published: HashMap<String, watch::Sender<String>> = HashMap::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            let Ok(k) = kv.key_str() else { continue };
                            let Some(node) = k.strip_prefix(&prefix) else { continue };
                            match ev.event_type() {
                                EventType::Put => {
                                    self.present.insert(node.to_string());
                                }
                                EventType::Delete => {
                                    self.present.remove(node);
                                    tracing::warn!(node, "node key gone from etcd (lease expired or the host left it out)");
                                }
                            }
                            self.refresh(node, "its etcd key is gone (lease expired or the host left it out)");
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::error!("etcd watch ended: re-watching");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        match client
                            .watch(prefix.as_str(), Some(WatchOptions::new().with_prefix()))
                            .await
                        {
                            Ok(s) => stream = s,
                            Err(e) => tracing::error!(error = %e, "etcd watch failed"),
                        }
                    }
                },
                msg = beats.message() => match msg {
                    Ok(Some(resp)) => {
                        for ev in resp.events() {
                            if ev.event_type() != EventType::Put {
                                continue;
                            }
                            let Some(host) = ev
                                .kv()
                                .and_then(|kv| kv.key_str().ok())
                                .and_then(|k| k.strip_prefix(&beats_prefix))
                            else {
                                continue;
                            };
                            self.last_beat.insert(host.to_string(), std::time::Instant::now());
                            if self.silent.remove(host) {
                                tracing::info!(host, "host beats again in etcd");
                                self.refresh_host(host);
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if let Ok(s) = client
                            .watch(beats_prefix.as_str(), Some(WatchOptions::new().with_prefix()))
                            .await
                        {
                            beats = s;
                        }
                    }
                },
                _ = silence_check.tick() => {
                    let late: Vec<String> = self
                        .last_beat
                        .iter()
                        .filter(|(h, t)| !self.silent.contains(*h) && t.elapsed() > self.cfg.silence)
                        .map(|(h, _)| h.clone())
                        .collect();
                    for host in late {
                        tracing::warn!(host, silence_ms = self.cfg.silence.as_millis() as u64, "host silent: no heartbeat seen in etcd");
                        self.silent.insert(host.clone());
                        self.refresh_host(&host);
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(Cmd::Beat(host, nodes)) => {
                        if let Err(e) = self.beat(&mut client, &host, &nodes).await {
                            tracing::warn!(host, error = %e, "heartbeat to etcd failed");
                            self.leases.remove(&host);
                        }
                    }
                    Some(Cmd::Publish(name, value)) => {
                        if let Some(tx) = published.get(&name) {
                            let _ = tx.send(value);
                        } else {
                            let (tx, rx) = watch::channel(value);
                            let key = format!("{registry_prefix}{name}");
                            elections.spawn(publish(client.clone(), key, rx, self.cfg.ttl_secs));
                            published.insert(name, tx);
                        }
                    }
                    Some(Cmd::Elect { name, value, leader }) => {
                        let name = format!("{}/election/{name}", self.cfg.prefix);
                        elections.spawn(campaign(client.clone(), name, value, self.cfg.ttl_secs, leader));
                    }
                },
            }
        }
        // A clean stop gives the nodes up at once instead of waiting for the TTL.
        for (_, l) in self.leases.drain() {
            let _ = client.lease_revoke(l.id).await;
        }
        elections.abort_all();
    }

    fn refresh_host(&self, host: &str) {
        let nodes: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| *h == host)
            .map(|(n, _)| n.clone())
            .collect();
        for n in nodes {
            self.refresh(&n, "its host's heartbeats stopped");
        }
    }

    /// One heartbeat of `host`: renew (or take) its lease, put the nodes listed, delete the
    /// ones left out, and put the host's beat counter (what watchers time).
    async fn beat(
        &mut self,
        client: &mut Client,
        host: &str,
        nodes: &[String],
    ) -> Result<(), etcd_client::Error> {
        let renewed = match self.leases.get_mut(host) {
            Some(l) => {
                l.keeper.keep_alive().await?;
                match tokio::time::timeout(Duration::from_secs(2), l.answers.message()).await {
                    Ok(Ok(Some(r))) => r.ttl() > 0,
                    _ => false,
                }
            }
            None => false,
        };
        if !renewed {
            // First beat, or the lease expired (the host was silent too long): a new lease,
            // and every listed node is put again under it.
            let id = client.lease_grant(self.cfg.ttl_secs, None).await?.id();
            let (keeper, answers) = client.lease_keep_alive(id).await?;
            self.leases.insert(
                host.to_string(),
                HostLease {
                    id,
                    keeper,
                    answers,
                    listed: BTreeSet::new(),
                    beats: 0,
                },
            );
        }
        let Some(lease) = self.leases.get(host) else {
            return Ok(());
        };
        let id = lease.id;
        let listed = lease.listed.clone();
        let now: BTreeSet<String> = nodes.iter().cloned().collect();
        for n in now.difference(&listed) {
            client
                .put(
                    self.node_key(n),
                    host,
                    Some(PutOptions::new().with_lease(id)),
                )
                .await?;
        }
        for n in listed.difference(&now) {
            client.delete(self.node_key(n), None).await?;
        }
        let beat = match self.leases.get_mut(host) {
            Some(l) => {
                l.listed = now;
                l.beats += 1;
                l.beats
            }
            None => 0,
        };
        client
            .put(
                self.beat_key(host),
                beat.to_string(),
                Some(PutOptions::new().with_lease(id)),
            )
            .await?;
        Ok(())
    }
}

/// Keep `key` = the latest value of `value` in etcd under a lease of this process's, so that it
/// vanishes when the process does.
async fn publish(mut client: Client, key: String, mut value: watch::Receiver<String>, ttl: i64) {
    loop {
        let attempt = async {
            let id = client.lease_grant(ttl, None).await?.id();
            let (mut keeper, mut answers) = client.lease_keep_alive(id).await?;
            let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
            loop {
                let v = value.borrow_and_update().clone();
                client
                    .put(key.as_str(), v, Some(PutOptions::new().with_lease(id)))
                    .await?;
                loop {
                    tokio::select! {
                        changed = value.changed() => {
                            if changed.is_err() {
                                return Ok::<(), etcd_client::Error>(());
                            }
                            break;
                        }
                        () = tokio::time::sleep(period) => {
                            keeper.keep_alive().await?;
                            match answers.message().await? {
                                Some(a) if a.ttl() > 0 => {}
                                _ => return Ok(()),
                            }
                        }
                    }
                }
            }
        };
        if let Err(e) = attempt.await {
            tracing::warn!(key, error = %e, "publishing to etcd failed");
        }
        if value.has_changed().is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Read everything under `prefix` twice a second into `into` (name → value).
async fn read_registry(
    mut client: Client,
    prefix: String,
    into: Arc<Mutex<HashMap<String, String>>>,
) {
    loop {
        if let Ok(r) = client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
        {
            let now: HashMap<String, String> = r
                .kvs()
                .iter()
                .filter_map(|kv| {
                    let k = kv.key_str().ok()?.strip_prefix(&prefix)?.to_string();
                    Some((k, kv.value_str().ok()?.to_string()))
                })
                .collect();
            *lock(&into) = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Campaign for `name` until elected, then hold it while the lease lives; on losing it, run
/// again.
async fn campaign(
    mut client: Client,
    name: String,
    value: String,
    ttl: i64,
    leader: watch::Sender<bool>,
) {
    loop {
        let attempt = async {
            let id = client.lease_grant(ttl, None).await?.id();
            let (mut keeper, mut answers) = client.lease_keep_alive(id).await?;
            let mut c2 = client.clone();
            let elected = c2.campaign(name.as_str(), value.as_str(), id);
            tokio::pin!(elected);
            let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
            // Keep the lease alive while waiting to be elected and while leading.
            let mut won = false;
            loop {
                tokio::select! {
                    r = &mut elected, if !won => {
                        r?;
                        won = true;
                        let _ = leader.send(true);
                    }
                    () = tokio::time::sleep(period) => {
                        keeper.keep_alive().await?;
                        match answers.message().await? {
                            Some(a) if a.ttl() > 0 => {}
                            _ => return Ok::<(), etcd_client::Error>(()),
                        }
                    }
                }
            }
        };
        if let Err(e) = attempt.await {
            tracing::warn!(name, error = %e, "election: lost the lease or etcd");
        }
        let _ = leader.send(false);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A single-member etcd on loopback ports of its own, in a temporary data folder, killed when
/// dropped: for tests and the one-machine cluster script. Fast elections (heartbeat 50 ms,
/// election timeout 250 ms) so that one-second leases are allowed.
pub struct LocalEtcd {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub endpoint: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalEtcd {
    /// Start `etcd` (Debian `etcd-server`) and wait until it answers, at most 20 s.
    pub fn start() -> Result<LocalEtcd, String> {
        let dir = std::env::temp_dir().join(format!(
            "sluice-etcd-{}-{}",
            std::process::id(),
            free_port().map_err(|e| e.to_string())?
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (client, peer) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let child = std::process::Command::new("etcd")
            .args(["--name", "sluice", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("sluice={peer_url}")])
            .args(["--heartbeat-interval", "50", "--election-timeout", "250"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting etcd (apt-get install etcd-server): {e}"))?;
        let me = LocalEtcd {
            child,
            dir,
            endpoint,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return Ok(me);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "etcd did not listen on {} within 20 s: {}",
                    me.endpoint,
                    std::fs::read_to_string(me.dir.join("etcd.log")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::HostAgent;
    use std::time::Instant;

    fn topology() -> Topology {
        Topology::from_toml(
            r#"
            format = "sluice-store"
            version = 1
            [[hosts]]
            name = "host-a"
            nodes = ["a1", "a2"]
            [[hosts]]
            name = "host-b"
            nodes = ["b1", "b2"]
            "#,
        )
        .unwrap()
    }

    fn wait_for(m: &EtcdMembership, limit: Duration, want: &[(&str, Health)]) -> Duration {
        let t0 = Instant::now();
        while want.iter().any(|(n, h)| m.health(n) != *h) {
            assert!(
                t0.elapsed() < limit,
                "not {want:?} within {limit:?}: {:?}",
                m.snapshot()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t0.elapsed()
    }

    /// Host leases: both hosts' nodes come up from their beats; a host whose agent stops is
    /// taken down by its lease expiring (all its nodes at once, subscribers told), the other
    /// host untouched; its next beat brings it back; a node the agent leaves out goes down.
    #[test]
    fn host_leases_bring_nodes_up_and_down_together() {
        let etcd = LocalEtcd::start().expect("etcd");
        let interval = Duration::from_millis(200);
        let cfg = EtcdConfig::new(vec![etcd.endpoint.clone()], "/test".into(), interval, 3);
        assert_eq!(cfg.ttl_secs, 1);
        let topo = topology();
        let m = EtcdMembership::start(&topo, cfg.clone(), Duration::from_secs(5)).unwrap();
        // Another process watching the same etcd sees the same thing.
        let watcher = EtcdMembership::start(&topo, cfg.clone(), Duration::from_secs(5)).unwrap();
        let sick = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = sick.clone();
        let a = HostAgent::start(
            "host-a".into(),
            vec!["a1".into(), "a2".into()],
            interval,
            m.clone(),
            Arc::new(move |n: &str| !(n == "a2" && s2.load(std::sync::atomic::Ordering::Relaxed))),
        );
        let _b = HostAgent::start(
            "host-b".into(),
            vec!["b1".into(), "b2".into()],
            interval,
            m.clone(),
            Arc::new(|_: &str| true),
        );
        let all_up = [
            ("a1", Health::Up),
            ("a2", Health::Up),
            ("b1", Health::Up),
            ("b2", Health::Up),
        ];
        wait_for(&watcher, Duration::from_secs(5), &all_up);
        let mut events = watcher.subscribe();
        a.pause();
        let took = wait_for(
            &watcher,
            Duration::from_secs(5),
            &[("a1", Health::Down), ("a2", Health::Down)],
        );
        eprintln!("host-a down in etcd {took:?} after its agent stopped (3 beats of 200 ms)");
        assert!(
            took <= Duration::from_millis(1000),
            "detected after {took:?}"
        );
        assert_eq!(watcher.health("b1"), Health::Up);
        let mut down = Vec::new();
        while let Ok(c) = events.try_recv() {
            down.push((c.node, c.health));
        }
        assert!(down.contains(&("a1".into(), Health::Down)), "{down:?}");
        assert!(down.contains(&("a2".into(), Health::Down)), "{down:?}");
        // The lease then expires and etcd deletes host-a's keys: a process that starts now
        // reads them as gone, host-b's as there.
        let t0 = Instant::now();
        loop {
            let late = EtcdMembership::start(&topo, cfg.clone(), Duration::from_secs(5)).unwrap();
            if late.health("a1") == Health::Down && late.health("a2") == Health::Down {
                assert_eq!(late.health("b1"), Health::Up);
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "host-a's lease never expired"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        a.resume();
        wait_for(&watcher, Duration::from_secs(5), &all_up);
        sick.store(true, std::sync::atomic::Ordering::Relaxed);
        wait_for(&watcher, Duration::from_secs(5), &[("a2", Health::Down)]);
        assert_eq!(watcher.health("a1"), Health::Up);
    }

    /// One leader among candidates; when its process goes away, another is elected.
    #[test]
    fn one_controller_is_elected_and_replaced() {
        let etcd = LocalEtcd::start().expect("etcd");
        let cfg = EtcdConfig::new(
            vec![etcd.endpoint.clone()],
            "/test".into(),
            Duration::from_millis(200),
            3,
        );
        let topo = topology();
        let p1 = EtcdMembership::start(&topo, cfg.clone(), Duration::from_secs(5)).unwrap();
        let p2 = EtcdMembership::start(&topo, cfg, Duration::from_secs(5)).unwrap();
        let l1 = p1.elect("controller", "p1");
        let t0 = Instant::now();
        while !*l1.borrow() {
            assert!(t0.elapsed() < Duration::from_secs(5), "p1 never elected");
            std::thread::sleep(Duration::from_millis(20));
        }
        let l2 = p2.elect("controller", "p2");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!*l2.borrow(), "two leaders");
        drop(p1);
        let t0 = Instant::now();
        while !*l2.borrow() {
            assert!(t0.elapsed() < Duration::from_secs(10), "p2 never took over");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
