//! Re-replication: a content keeps its configured number of healthy copies (issue 6, item 3).
//!
//! Reads fail over at once when a node fails (the replica reader), so viewers never wait for
//! this; but until a new copy exists, a second failure would leave the content with none.
//! Every second the controller looks at each content: when fewer of its copies are on healthy
//! nodes than its manifest asks for, and a copy has been on a down node for longer than
//! `after` (a node that merely restarts is not worth a full copy), it makes one new copy on
//! the first healthy host in the content's placement order (weighted rendezvous, as the
//! installer places; never a host that already holds a copy), reading the files through the
//! replica reader from the healthy copies (local or remote nodes alike), throttled to
//! `bytes_per_sec`, into a staging folder that is verified (checksums, index against content)
//! before it is renamed into place — the installer's own steps, so a copy is never half there.
//! The catalog then finds the new copy; readers use it after the manifest's replicas.
//!
//! The spare pool works the same way: a content with `hot_sessions` live sessions or more
//! gets one extra copy on a spare node (the hosts' `pool` in the topology, where installs never
//! place anything), on the first healthy host of its placement order holding no copy; steering
//! then spreads new sessions onto it. When the content has had fewer than half that many
//! sessions for `cool_after`, the pool copy is taken out of the tree (renamed away, then
//! deleted); sessions reading it fail over to the other copies, byte-exact.
//!
//! A host that comes back after its copy was made again elsewhere brings one copy too many:
//! once that has lasted `after`, the healthy copy on the host placed last in the content's
//! placement order is removed — the re-made one when the main returns — so the order the
//! content was installed with (main, sub, backups) is back.
//!
//! One copy at a time, one controller at a time: with etcd, only the elected streamer runs
//! it (`EtcdMembership::elect`); in one process, the streamer itself. The new copy is written
//! into the store folder, so this needs the folder shared by the processes, as on one machine
//! (a node with its own disk elsewhere would need a write API of the storage node).

use crate::catalog::{Catalog, Content};
use crate::cluster::Cluster;
use installer::info::MANIFEST_FILE;
use installer::store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_device_sim::membership::Health;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// How long a copy's node must have been down before a new copy is made.
    pub after: Duration,
    /// Copy rate limit, bytes per second.
    pub bytes_per_sec: u64,
    /// A content with this many live sessions is hot: it gets an extra copy on a spare node.
    pub hot_sessions: u64,
    /// A pool copy is given back after its content has had fewer than half the hot sessions
    /// for this long.
    pub cool_after: Duration,
}

/// Bytes per replica read while copying.
const CHUNK: usize = 256 << 10;

/// Run the controller until the process ends. `leader`: run only while it says `true`.
pub async fn run(
    cluster: Arc<Cluster>,
    catalog: Arc<Catalog>,
    store: PathBuf,
    cfg: RepairConfig,
    leader: Option<watch::Receiver<bool>>,
) {
    let mut down_since: HashMap<String, Instant> = HashMap::new();
    let mut cool_since: HashMap<String, Instant> = HashMap::new();
    let mut surplus_since: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for (node, _, h) in cluster.membership.snapshot() {
            if h == Health::Up {
                down_since.remove(&node);
            } else {
                down_since.entry(node).or_insert_with(Instant::now);
            }
        }
        if leader.as_ref().is_some_and(|l| !*l.borrow()) {
            continue;
        }
        catalog.refresh();
        let all = catalog.all();
        let mut copied = false;
        for c in all.values() {
            let Some(target) = needs_copy(&cluster, c, &down_since, cfg.after) else {
                continue;
            };
            match copy(&cluster, &store, c, &target, cfg.bytes_per_sec).await {
                Ok(()) => tracing::warn!(
                    id = c.id,
                    node = target.0,
                    host = target.1,
                    "re-replicated: the configured copy count is back"
                ),
                Err(e) => {
                    tracing::error!(id = c.id, node = target.0, error = %e, "re-replication failed")
                }
            }
            // One copy per round: the rate limit holds across contents too.
            copied = true;
            break;
        }
        for c in all.values() {
            pool_step(&cluster, &store, c, &cfg, &mut cool_since, &mut copied).await;
        }
        // A host that comes back brings its copy back: one copy too many. The copy on the
        // host placed last goes (the one re-replication made, when the main returns), which
        // puts the placement order back as installed.
        surplus_since.retain(|id, _| all.contains_key(id));
        for c in all.values() {
            let Some(node) = surplus_copy(&cluster, c) else {
                surplus_since.remove(&c.id);
                continue;
            };
            let since = *surplus_since
                .entry(c.id.clone())
                .or_insert_with(Instant::now);
            if since.elapsed() < cfg.after {
                continue;
            }
            surplus_since.remove(&c.id);
            if discard_copy(&store, &node, &c.id).await {
                tracing::warn!(
                    id = c.id,
                    node,
                    "a copy more than configured: the one placed last is removed"
                );
            }
        }
    }
}

/// The healthy copy of `c` beyond its configured count on the host ranked last by its
/// placement order, when there is one (spare-pool copies are the pool's business).
fn surplus_copy(cluster: &Cluster, c: &Content) -> Option<String> {
    let want = c.manifest.replicas.len().max(1);
    let topo = &cluster.topology;
    let healthy: Vec<&String> = c
        .nodes
        .iter()
        .filter(|n| !topo.is_spare(n) && cluster.health(n) == Health::Up)
        .collect();
    if healthy.len() <= want {
        return None;
    }
    let rank: Vec<String> = storage_device_sim::placement::rank_hosts(topo, &c.id)
        .into_iter()
        .map(|h| h.name.clone())
        .collect();
    let rank_of = |n: &str| {
        topo.host_of(n)
            .and_then(|h| rank.iter().position(|r| *r == h.name))
            .unwrap_or(usize::MAX)
    };
    healthy
        .into_iter()
        .max_by_key(|n| rank_of(n))
        .map(|n| n.to_string())
}

/// Take `STORE/NODE/ID` out of the tree (renamed away, then deleted); whether it went.
async fn discard_copy(store: &Path, node: &str, id: &str) -> bool {
    let path = store.join(node).join(id);
    let (root, id2) = (store.to_path_buf(), id.to_string());
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        Store::open(&root)?.discard(&path, &id2)?;
        Ok(())
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    if let Err(e) = &res {
        tracing::error!(id, node, error = %e, "removing a copy failed");
    }
    res.is_ok()
}

/// The spare pool for one content: an extra copy when it is hot (unless a copy was made this
/// round already), the extra copy given back when it has cooled.
async fn pool_step(
    cluster: &Cluster,
    store: &Path,
    c: &Content,
    cfg: &RepairConfig,
    cool_since: &mut HashMap<String, Instant>,
    copied: &mut bool,
) {
    let topo = &cluster.topology;
    let sessions = cluster.load.sessions_of(&c.id);
    let spares: Vec<&String> = c.nodes.iter().filter(|n| topo.is_spare(n)).collect();
    if spares.is_empty() {
        cool_since.remove(&c.id);
        if sessions < cfg.hot_sessions.max(1) || *copied {
            return;
        }
        let Some(target) = spare_for(cluster, c) else {
            return;
        };
        *copied = true;
        match copy(cluster, store, c, &target, cfg.bytes_per_sec).await {
            Ok(()) => tracing::warn!(
                id = c.id,
                sessions,
                node = target.0,
                host = target.1,
                "hot content: an extra copy on a pool node"
            ),
            Err(e) => tracing::error!(id = c.id, error = %e, "pool copy failed"),
        }
        return;
    }
    if sessions * 2 >= cfg.hot_sessions.max(1) {
        cool_since.remove(&c.id);
        return;
    }
    let since = *cool_since.entry(c.id.clone()).or_insert_with(Instant::now);
    if since.elapsed() < cfg.cool_after {
        return;
    }
    cool_since.remove(&c.id);
    for node in spares {
        if discard_copy(store, node, &c.id).await {
            tracing::warn!(
                id = c.id,
                node,
                sessions,
                "content cooled: its pool copy is given back"
            );
        }
    }
}

/// The hosts that hold a copy of `c` (healthy or not).
fn hosts_holding<'t>(cluster: &'t Cluster, c: &Content) -> Vec<&'t str> {
    c.nodes
        .iter()
        .filter_map(|n| cluster.topology.host_of(n).map(|h| h.name.as_str()))
        .collect()
}

/// A spare node for an extra copy of `c`: on the first healthy host of its placement order
/// that holds no copy and has a healthy spare (hosts made only of spares come last).
fn spare_for(cluster: &Cluster, c: &Content) -> Option<(String, String)> {
    let topo = &cluster.topology;
    let holding = hosts_holding(cluster, c);
    storage_device_sim::placement::rank_hosts(topo, &c.id)
        .into_iter()
        .chain(topo.hosts.iter().filter(|h| h.placeable().next().is_none()))
        .filter(|h| !holding.contains(&h.name.as_str()))
        .find_map(|h| {
            let spare = storage_device_sim::placement::pick_spare(h, &c.id)?;
            (cluster.health(spare) == Health::Up).then(|| (spare.to_string(), h.name.clone()))
        })
}

/// Where a new copy of `c` should go (node, host), if it needs one now.
fn needs_copy(
    cluster: &Cluster,
    c: &Content,
    down_since: &HashMap<String, Instant>,
    after: Duration,
) -> Option<(String, String)> {
    let want = c.manifest.replicas.len().max(1);
    let healthy = c
        .nodes
        .iter()
        .filter(|n| cluster.health(n) == Health::Up)
        .count();
    if healthy >= want || healthy == 0 {
        return None;
    }
    let long_down = c
        .nodes
        .iter()
        .any(|n| down_since.get(n).is_some_and(|t| t.elapsed() >= after));
    let missing = c.nodes.len() < want;
    if !long_down && !missing {
        return None;
    }
    let topo = &cluster.topology;
    let holding = hosts_holding(cluster, c);
    storage_device_sim::placement::rank_hosts(topo, &c.id)
        .into_iter()
        .filter(|h| !holding.contains(&h.name.as_str()))
        .map(|h| (storage_device_sim::placement::pick_node(h, &c.id), h))
        .find(|(n, _)| cluster.health(n) == Health::Up)
        .map(|(n, h)| (n.to_string(), h.name.clone()))
}

/// Copy every file of `c` from its healthy copies to `target`, verified, then in place.
async fn copy(
    cluster: &Cluster,
    store_root: &Path,
    c: &Content,
    target: &(String, String),
    bytes_per_sec: u64,
) -> anyhow::Result<()> {
    let store = Store::open(store_root)?;
    let staging = store.staging(&c.id)?;
    let res = async {
        let mut files: Vec<String> = c.manifest.files.keys().cloned().collect();
        files.push(MANIFEST_FILE.to_string());
        let started = Instant::now();
        let mut moved: u64 = 0;
        for f in files {
            let mut reader = cluster.reader(&c.id, &f, &c.nodes);
            let mut out = Vec::new();
            loop {
                let b = reader.read_at(out.len() as u64, CHUNK).await?;
                if b.is_empty() {
                    break;
                }
                out.extend_from_slice(&b);
                moved += b.len() as u64;
                // Throttle: never ahead of the rate.
                let due = Duration::from_secs_f64(moved as f64 / bytes_per_sec.max(1) as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            let path = staging.join(&f);
            tokio::task::spawn_blocking(move || std::fs::write(&path, out)).await??;
        }
        let (st, id, node, dir) = (
            store_root.to_path_buf(),
            c.id.clone(),
            target.0.clone(),
            staging.clone(),
        );
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            installer::verify::verify_dir(&dir, &id)
                .map_err(|r| anyhow::anyhow!("the new copy does not verify: {r}"))?;
            for f in std::fs::read_dir(&dir)?.flatten() {
                std::fs::File::open(f.path())?.sync_all()?;
            }
            Store::open(&st)?.commit(&dir, &node, &id)?;
            Ok(())
        })
        .await??;
        Ok(())
    }
    .await;
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    res
}
