//! Load-aware steering (issue 6, item 5): three hosts, the demo clip on two of them, and the
//! main copy's host able to carry about one session (`egress_bps` in the topology). RTSP
//! sessions opened one after another: the first reads from the main copy, the next ones are
//! steered to the sub once the main host is at its capacity, and every one plays.

use rtsp_proto::message::Method;
use serde_json::json;
use sluice_tests::bin_path::workspace_root;
use sluice_tests::prometheus::{self, Page};
use sluice_tests::rtsp_client::{Client, sequence_gaps};
use sluice_tests::server::{self, Server};
use sluice_tests::{http_client, store};
use std::time::{Duration, Instant};

fn metrics(srv: &Server) -> Page {
    let r = http_client::get(srv.addr, "/metrics").expect("GET /metrics");
    prometheus::parse(&r.text()).expect("metrics parse")
}

#[test]
fn sessions_leave_a_host_at_its_egress_capacity() {
    let mut topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [
            {"name": "h1", "nodes": ["a1"]},
            {"name": "h2", "nodes": ["b1"]},
            {"name": "h3", "nodes": ["c1"]},
        ],
    });
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (dir, manifest) = store::with_topology("sluice-steering-", &topology, &src, "demo", 2);
    let store_json = dir.path().join("store.json");
    let main_host = manifest["replicas"][0]["host"]
        .as_str()
        .unwrap()
        .to_string();
    let sub_host = manifest["replicas"][1]["host"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes_per_sec = manifest["bitrate"].as_u64().unwrap() / 8;
    // The main host can carry one session and a half.
    for h in topology["hosts"].as_array_mut().unwrap() {
        if h["name"] == main_host.as_str() {
            h["egress_bps"] = json!(bytes_per_sec * 3 / 2);
        }
    }
    std::fs::write(&store_json, topology.to_string()).expect("store.json");
    let srv = Server::start(
        server::streamer_command(dir.path(), &[]),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    let sessions_on = |m: &Page, h: &str| m.sum("sluice_host_sessions", &[("host", h)]);

    let mut clients = Vec::new();
    for k in 0..3 {
        let mut c = Client::connect(rtsp, "demo").expect("connect");
        c.setup(true);
        let url = c.url.clone();
        let play = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=0-")]);
        assert_eq!(play.status, 200);
        let m = metrics(&srv);
        let (on_main, on_sub) = (sessions_on(&m, &main_host), sessions_on(&m, &sub_host));
        eprintln!(
            "after session {}: {on_main} on {main_host}, {on_sub} on {sub_host}",
            k + 1
        );
        match k {
            0 => assert_eq!(
                (on_main, on_sub),
                (1.0, 0.0),
                "the first session reads the main copy"
            ),
            _ => assert_eq!(
                (on_main, on_sub),
                (1.0, k as f64),
                "session {} should be steered off the full main host",
                k + 1
            ),
        }
        clients.push((c, play));
    }
    let runs: Vec<_> = clients
        .into_iter()
        .map(|(mut c, play)| {
            std::thread::spawn(move || {
                c.collect_run(&play, Instant::now() + Duration::from_secs(40))
            })
        })
        .collect();
    for r in runs {
        let (p, bye) = r.join().expect("client thread");
        assert!(
            bye && !p.is_empty(),
            "a steered session did not play to its end"
        );
        assert_eq!(sequence_gaps(&p), 0);
    }
    // Sessions that end give their reservation back.
    let t0 = Instant::now();
    loop {
        let m = metrics(&srv);
        if sessions_on(&m, &main_host) == 0.0 && sessions_on(&m, &sub_host) == 0.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "reservations never released"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
