//! The streamer's catalog (`/api/v1/contents/ID`) as the tests read it: where a content's
//! copies are and how healthy, and waiting (bounded) for that to change.

use crate::server::Server;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One copy of a content as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub node: String,
    pub host: String,
    pub health: String,
}

impl Copy {
    pub fn up(&self) -> bool {
        self.health == "Up"
    }
}

/// The copies of `id`, in the catalog's order (main first).
pub fn copies(addr: SocketAddr, id: &str) -> Vec<Copy> {
    let r = crate::http_client::get(addr, &format!("/api/v1/contents/{id}"))
        .unwrap_or_else(|e| panic!("GET the catalog of {id}: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("catalog JSON");
    v["replicas"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    Copy {
                        node: s("node"),
                        host: s("host"),
                        health: s("health"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `srv`'s catalog of `id` (every 100 ms, at most `limit`) until `pred` holds; how long
/// it took. Panics with `what`, the copies and the server's log otherwise.
pub fn wait_until(
    srv: &Server,
    id: &str,
    limit: Duration,
    what: &str,
    pred: impl Fn(&[Copy]) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let c = copies(srv.addr, id);
        if pred(&c) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{what}: {c:?}\n{}",
            srv.stdout_lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
