//! Placement: which nodes hold a content's replicas (DESIGN.md §5).
//!
//! Weighted rendezvous hashing (highest random weight) over **physical hosts** ranks every host
//! for a content id; the first `replicas` hosts hold the replicas, in order: main, sub, then
//! backups. Virtual nodes on one host fail together, so two replicas never share a host. Within a
//! chosen host, plain (unweighted) rendezvous over that host's nodes picks the node.
//!
//! Each host's score for a content is `weight / -ln(u)`, with `u` a stable 64-bit hash of
//! (host, content) mapped into the open interval (0, 1). `-ln(u) / weight` is exponentially
//! distributed with rate `weight`, so the host with the highest score (the smallest of those
//! draws) is host `i` with probability `weight_i / Σ weight`: a host of weight 2 is the main
//! replica of about twice as much content as a host of weight 1. Because each host's score
//! depends only on that host and the content, adding a host moves to it only the contents it now
//! wins (about `weight_new / Σ weight` of them) and moves nothing else; removing a host moves only
//! what it held.
//!
//! The hash is written here (FNV-1a over length-prefixed fields, finished with a 64-bit
//! avalanche mix) rather than taken from `std`, whose hasher is seeded per process: placement
//! must be the same in every process, on every machine, in every build. A test pins known
//! placements so a change of hash cannot slip in unnoticed.

use crate::topology::{Host, Topology};
use crate::{Result, StorageError};
use serde::Serialize;

/// One replica of a content: the physical host and the virtual node on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    pub host: String,
    pub node: String,
}

/// Domain tags keep the host ranking and the node choice independent of each other.
const HOST_TAG: &[u8] = b"sluice/host/v1";
const NODE_TAG: &[u8] = b"sluice/node/v1";

/// Place `replicas` replicas of `content_id`: weighted rendezvous over the physical hosts picks
/// `replicas` distinct hosts, best first (main, sub, backups); on each, rendezvous over its nodes
/// picks the node.
///
/// Errors with [`StorageError::Placement`] when `replicas` is 0 or more than the number of hosts
/// that can hold a replica (hosts with nodes and a positive weight; a validated [`Topology`]
/// has only those).
pub fn place(topology: &Topology, content_id: &str, replicas: usize) -> Result<Vec<Replica>> {
    let ranked = rank_hosts(topology, content_id);
    if replicas == 0 || replicas > ranked.len() {
        return Err(StorageError::Placement {
            replicas,
            hosts: ranked.len(),
        });
    }
    Ok(ranked
        .into_iter()
        .take(replicas)
        .map(|host| Replica {
            host: host.name.clone(),
            node: pick_node(host, content_id).to_owned(),
        })
        .collect())
}

/// Every usable host of `topology` (positive finite weight, at least one node), ranked for
/// `content_id` from best to worst. `place(t, id, r)` uses the first `r`. Ties (which need a
/// 64-bit hash collision) are broken by host name, so the order is total and stable.
pub fn rank_hosts<'t>(topology: &'t Topology, content_id: &str) -> Vec<&'t Host> {
    let mut scored: Vec<(f64, &Host)> = topology
        .hosts
        .iter()
        .filter(|h| h.weight.is_finite() && h.weight > 0.0 && h.placeable().next().is_some())
        .map(|h| (host_score(h, content_id), h))
        .collect();
    scored.sort_by(|(sa, ha), (sb, hb)| sb.total_cmp(sa).then_with(|| ha.name.cmp(&hb.name)));
    scored.into_iter().map(|(_, h)| h).collect()
}

/// The node of `host` that holds `content_id`'s replica on that host: unweighted rendezvous over
/// the host's nodes (the highest hash wins; ties broken by name). Adding or removing a node of a
/// host moves only the contents that node wins or held. Panics if the host has no nodes (a
/// validated topology never has such a host; [`place`] skips them).
pub fn pick_node<'h>(host: &'h Host, content_id: &str) -> &'h str {
    rendezvous(host.placeable(), content_id).expect("host has at least one node")
}

/// The spare (pool) node of `host` for an extra copy of `content_id`, if it has any.
pub fn pick_spare<'h>(host: &'h Host, content_id: &str) -> Option<&'h str> {
    rendezvous(host.pool.iter(), content_id)
}

fn rendezvous<'h>(nodes: impl Iterator<Item = &'h String>, content_id: &str) -> Option<&'h str> {
    nodes
        .max_by(|a, b| {
            hash64(NODE_TAG, a, content_id)
                .cmp(&hash64(NODE_TAG, b, content_id))
                .then_with(|| b.cmp(a))
        })
        .map(String::as_str)
}

/// `host`'s weighted rendezvous score for `content_id`; higher wins.
pub fn host_score(host: &Host, content_id: &str) -> f64 {
    score(host.weight, hash64(HOST_TAG, &host.name, content_id))
}

/// The weighted rendezvous score of one candidate: `weight / -ln(u)`, where `u` is `hash`
/// mapped into the open interval (0, 1) by [`unit_interval`]. Always finite and positive for a
/// positive finite weight.
pub fn score(weight: f64, hash: u64) -> f64 {
    weight / -unit_interval(hash).ln()
}

/// Map a 64-bit hash to a float strictly inside (0, 1): the top 52 bits, centred in their cell,
/// so neither 0 (`ln` = -inf) nor 1 (`ln` = 0, a division by zero) can come out. (52, not 53:
/// `k + 0.5` must be exact in an f64's 53-bit significand, or the top cell rounds up to 1.)
pub fn unit_interval(hash: u64) -> f64 {
    ((hash >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

/// A stable 64-bit hash of (`tag`, `name`, `content_id`): FNV-1a over the fields, each prefixed
/// with its length so field boundaries cannot shift (`"ab","c"` differs from `"a","bc"`), then
/// the 64-bit finaliser of MurmurHash3 so every input bit affects every output bit (FNV alone
/// mixes its last bytes poorly into the high bits that [`unit_interval`] uses).
pub fn hash64(tag: &[u8], name: &str, content_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(tag);
    feed(name.as_bytes());
    feed(content_id.as_bytes());
    fmix64(h)
}

/// MurmurHash3's 64-bit finaliser (an avalanche mix; a bijection on u64).
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{STORE_FORMAT, STORE_VERSION};
    use std::collections::{HashMap, HashSet};

    const IDS: usize = 1000;

    fn host(name: &str, weight: f64, nodes: usize) -> Host {
        Host {
            name: name.into(),
            weight,
            nodes: (1..=nodes).map(|i| format!("{name}-n{i}")).collect(),
            address: None,
            egress_bps: None,
            pool: Vec::new(),
        }
    }

    fn topo(hosts: Vec<Host>) -> Topology {
        let t = Topology {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            hosts,
        };
        t.validate().unwrap();
        t
    }

    fn equal_hosts(n: usize) -> Topology {
        topo(
            (1..=n)
                .map(|i| host(&format!("host-{i}"), 1.0, 3))
                .collect(),
        )
    }

    /// Content ids shaped like the installer's (names with a number), not random strings.
    fn ids() -> Vec<String> {
        (0..IDS).map(|i| format!("movie-{i:04}")).collect()
    }

    fn mains(t: &Topology) -> Vec<String> {
        ids()
            .iter()
            .map(|id| place(t, id, 1).unwrap().remove(0).host)
            .collect()
    }

    fn counts(mains: &[String]) -> HashMap<&str, usize> {
        let mut c = HashMap::new();
        for m in mains {
            *c.entry(m.as_str()).or_default() += 1;
        }
        c
    }

    /// Spare (pool) nodes never receive a placed replica; a host of spares only is never
    /// ranked; `pick_spare` finds the spares.
    #[test]
    fn pool_nodes_are_never_placed() {
        let mut a = host("a", 1.0, 3);
        a.pool = vec!["a-n3".into()];
        let mut p = host("p", 1.0, 2);
        p.pool = p.nodes.clone();
        let t = topo(vec![a, host("b", 1.0, 2), p]);
        for k in 0..1000 {
            let id = format!("content-{k}");
            for r in place(&t, &id, 2).unwrap() {
                assert!(!t.is_spare(&r.node), "{id} placed on the spare {}", r.node);
            }
            assert_eq!(
                rank_hosts(&t, &id).len(),
                2,
                "the spare-only host is ranked"
            );
            assert!(place(&t, &id, 3).is_err());
        }
        assert_eq!(pick_spare(&t.hosts[0], "x"), Some("a-n3"));
        assert_eq!(pick_spare(&t.hosts[1], "x"), None);
        assert!(
            t.hosts[2]
                .pool
                .iter()
                .any(|n| Some(n.as_str()) == pick_spare(&t.hosts[2], "x"))
        );
        let mut bad = host("q", 1.0, 1);
        bad.pool = vec!["elsewhere".into()];
        assert!(
            Topology {
                format: STORE_FORMAT.into(),
                version: STORE_VERSION,
                hosts: vec![bad],
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn replicas_are_distinct_hosts_and_stable() {
        let t = equal_hosts(5);
        for id in ids() {
            let r = place(&t, &id, 3).unwrap();
            assert_eq!(r.len(), 3);
            let hosts: HashSet<_> = r.iter().map(|x| &x.host).collect();
            assert_eq!(hosts.len(), 3, "{id}: {r:?}");
            for x in &r {
                assert_eq!(t.host_of(&x.node).unwrap().name, x.host, "{id}: {r:?}");
            }
            assert_eq!(
                place(&t, &id, 3).unwrap(),
                r,
                "{id}: same call, same answer"
            );
            // Fewer replicas are a prefix of more: main stays main, sub stays sub.
            assert_eq!(place(&t, &id, 2).unwrap(), r[..2]);
            assert_eq!(place(&t, &id, 5).unwrap()[..3], r[..]);
            // A clone (a topology read back from store.json) places the same.
            assert_eq!(place(&t.clone(), &id, 3).unwrap(), r);
        }
    }

    /// Pinned placements: a change to the hash or the score would silently move every content
    /// of every existing store, so it must show up here first.
    #[test]
    fn placement_is_pinned_across_builds() {
        assert_eq!(hash64(HOST_TAG, "host-1", "movie-0000"), PINNED_HASH);
        assert_ne!(hash64(HOST_TAG, "ab", "c"), hash64(HOST_TAG, "a", "bc"));
        assert_ne!(
            hash64(HOST_TAG, "host-1", "x"),
            hash64(NODE_TAG, "host-1", "x")
        );
        let t = equal_hosts(5);
        let got: Vec<String> = ["movie-0000", "movie-0001", "big-buck-bunny"]
            .iter()
            .map(|id| {
                place(&t, id, 3)
                    .unwrap()
                    .iter()
                    .map(|r| r.node.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(got, PINNED, "placement changed: existing stores would move");
    }
    const PINNED_HASH: u64 = 15_389_612_996_852_458_021;
    const PINNED: [&str; 3] = [
        "host-4-n1,host-1-n3,host-2-n3",
        "host-2-n3,host-1-n3,host-5-n2",
        "host-4-n3,host-5-n1,host-3-n2",
    ];

    #[test]
    fn bad_replica_counts_are_typed_errors() {
        let t = equal_hosts(3);
        for r in [0, 4, 100] {
            match place(&t, "movie", r) {
                Err(e @ StorageError::Placement { replicas, hosts }) => {
                    assert_eq!((replicas, hosts), (r, 3));
                    assert!(e.to_string().contains("3 hosts"), "{e}");
                }
                other => panic!("{r} replicas: {other:?}"),
            }
        }
        assert_eq!(place(&t, "movie", 3).unwrap().len(), 3);
    }

    #[test]
    fn equal_weights_spread_evenly() {
        let t = equal_hosts(5);
        let m = mains(&t);
        let c = counts(&m);
        assert_eq!(c.len(), 5, "{c:?}");
        eprintln!("equal weights, mains per host: {c:?}");
        for (h, n) in &c {
            // Expect 200 each; binomial sd ≈ 12.6, so ±60 is ~5 sd.
            assert!((140..=260).contains(n), "{h}: {n} of {IDS} ({c:?})");
        }
        // Every replica rank spreads too, and the nodes within a host are all used.
        let mut subs = HashMap::<String, usize>::new();
        let mut nodes = HashMap::<String, usize>::new();
        for id in ids() {
            let r = place(&t, &id, 2).unwrap();
            *subs.entry(r[1].host.clone()).or_default() += 1;
            for x in r {
                *nodes.entry(x.node).or_default() += 1;
            }
        }
        for (h, n) in &subs {
            assert!((140..=260).contains(n), "sub on {h}: {n} ({subs:?})");
        }
        assert_eq!(nodes.len(), 15, "{nodes:?}");
        for (node, n) in &nodes {
            // 2000 replicas over 15 nodes: ~133 each.
            assert!((80..=190).contains(n), "{node}: {n} ({nodes:?})");
        }
    }

    #[test]
    fn weight_two_gets_about_twice() {
        let mut hosts: Vec<Host> = (1..=4)
            .map(|i| host(&format!("host-{i}"), 1.0, 2))
            .collect();
        hosts.push(host("big", 2.0, 2));
        let t = topo(hosts);
        let m = mains(&t);
        let c = counts(&m);
        // Shares: big 2/6 ≈ 333, others 1/6 ≈ 167.
        let big = c["big"] as f64;
        let small = (1..=4)
            .map(|i| c[format!("host-{i}").as_str()] as f64)
            .sum::<f64>()
            / 4.0;
        let ratio = big / small;
        eprintln!("weight 2 vs 1: {big} vs {small:.1} mains, ratio {ratio:.2}");
        assert!((1.6..=2.4).contains(&ratio), "ratio {ratio:.2} ({c:?})");
        assert!((270.0..=400.0).contains(&big), "{c:?}");
    }

    #[test]
    fn adding_a_host_moves_about_one_nth_and_only_to_it() {
        let before_t = equal_hosts(5);
        let mut after_t = before_t.clone();
        after_t.hosts.push(host("host-new", 1.0, 3));
        let n = after_t.hosts.len() as f64;
        let before = mains(&before_t);
        let after = mains(&after_t);
        let mut moved = 0;
        for ((b, a), id) in before.iter().zip(&after).zip(ids()) {
            if a != b {
                moved += 1;
                assert_eq!(a, "host-new", "{id} moved {b} -> {a}, not to the new host");
            }
        }
        let frac = moved as f64 / IDS as f64;
        eprintln!("adding a 6th host moved {moved} of {IDS} mains ({frac:.3}; 1/N = 0.167)");
        assert!(
            (0.5 / n..=1.6 / n).contains(&frac),
            "moved {moved} of {IDS} ({frac:.3}; 1/N = {:.3})",
            1.0 / n
        );
        // The whole ordered replica list: the new host is inserted somewhere, every other host
        // keeps its relative order, and nodes within old hosts do not change.
        for id in ids() {
            let b = place(&before_t, &id, 3).unwrap();
            let a = place(&after_t, &id, 3).unwrap();
            let a_old: Vec<_> = a.iter().filter(|r| r.host != "host-new").cloned().collect();
            assert_eq!(a_old[..], b[..a_old.len()], "{id}: {b:?} -> {a:?}");
        }
    }

    #[test]
    fn removing_a_host_moves_only_what_it_held() {
        let before_t = equal_hosts(6);
        let mut after_t = before_t.clone();
        let gone = after_t.hosts.remove(2).name;
        let before = mains(&before_t);
        let after = mains(&after_t);
        let mut moved = 0;
        for ((b, a), id) in before.iter().zip(&after).zip(ids()) {
            if *b == gone {
                moved += 1;
                assert_ne!(*a, gone);
            } else {
                assert_eq!(a, b, "{id} moved {b} -> {a} though {b} is still there");
            }
        }
        assert!(moved > 0);
        // Replica lists: the removed host drops out and the next one moves up; nothing else.
        for id in ids() {
            let b = place(&before_t, &id, 3).unwrap();
            let a = place(&after_t, &id, 3).unwrap();
            let b_kept: Vec<_> = b.iter().filter(|r| r.host != gone).cloned().collect();
            assert_eq!(a[..b_kept.len()], b_kept[..], "{id}: {b:?} -> {a:?}");
        }
    }

    #[test]
    fn unit_interval_is_open() {
        for h in [0, 1, u64::MAX, u64::MAX >> 1, 1 << 63] {
            let u = unit_interval(h);
            assert!(u > 0.0 && u < 1.0, "{h}: {u}");
            let s = score(1.0, h);
            assert!(s.is_finite() && s > 0.0, "{h}: {s}");
        }
    }
}
