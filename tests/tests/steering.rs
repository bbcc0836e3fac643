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
use sluice_tests::{catalog, http_client, store};
use std::time::{Duration, Instant};

/// Every session's packets to its end (BYE), collected side by side.
fn play_out(
    sessions: Vec<(Client, rtsp_proto::message::Response)>,
) -> Vec<(Vec<sluice_tests::rtsp_client::Packet>, bool)> {
    let runs: Vec<_> = sessions
        .into_iter()
        .map(|(mut c, play)| {
            std::thread::spawn(move || {
                c.collect_run(&play, Instant::now() + Duration::from_secs(40))
            })
        })
        .collect();
    runs.into_iter()
        .map(|r| r.join().expect("client thread"))
        .collect()
}

fn metrics(srv: &Server) -> Page {
    let r = http_client::get(srv.addr, "/metrics").expect("GET /metrics");
    prometheus::parse(&r.text()).expect("metrics parse")
}

#[test]
fn sessions_leave_a_host_at_its_egress_capacity() {
    let mut topology = store::three_single_node_hosts();
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (dir, manifest) = store::with_topology("sluice-steering-", &topology, &src, "demo", 2);
    // The main host can carry one session and a half.
    let (main_host, sub_host) = store::limit_main_host(dir.path(), &mut topology, &manifest);
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
    for (p, bye) in play_out(clients) {
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

/// The spare pool: host `h3` holds only a spare node (installs never place there). Two live
/// sessions make the clip hot (`--pool-hot-sessions 2`): the controller copies it to the spare
/// node, verified, and the catalog lists the extra copy, which steering then uses for the next
/// session. When the sessions are gone for `--pool-cool-after-ms`, the copy is given back.
#[test]
fn a_hot_content_gains_a_pool_copy_and_gives_it_back_when_it_cools() {
    let topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [
            {"name": "h1", "nodes": ["a1"]},
            {"name": "h2", "nodes": ["b1"]},
            {"name": "h3", "nodes": ["p1"], "pool": ["p1"]},
        ],
    });
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (dir, manifest) = store::with_topology("sluice-pool-", &topology, &src, "demo", 2);
    let placed: Vec<&str> = manifest["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert!(
        !placed.contains(&"p1"),
        "an install placed a copy on the spare: {placed:?}"
    );
    let srv = Server::start(
        server::streamer_command(
            dir.path(),
            &["--pool-hot-sessions", "2", "--pool-cool-after-ms", "2000"],
        ),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    let limit = Duration::from_secs(20);
    // Two sessions: hot.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(rtsp, "demo").expect("connect");
        c.setup(true);
        let url = c.url.clone();
        let play = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=0-")]);
        assert_eq!(play.status, 200);
        sessions.push((c, play));
    }
    let took = catalog::wait_until(&srv, "demo", limit, "no pool copy while hot", |c| {
        c.iter().any(|x| x.node == "p1")
    });
    eprintln!("pool copy on p1 {took:?} after the content became hot");
    assert!(dir.path().join("p1/demo/manifest.json").is_file());
    let out = sluice_tests::process::run(
        sluice_tests::bin_path::install_content_cmd(dir.path()).args(["verify", "demo"]),
    );
    assert!(out.success() && out.stdout.contains("p1"), "{out}");
    // The two sessions play to the end, then close: the content cools.
    for (p, bye) in play_out(sessions) {
        assert!(
            bye && sequence_gaps(&p) == 0,
            "a hot session did not play cleanly"
        );
    }
    let took = catalog::wait_until(
        &srv,
        "demo",
        limit,
        "the pool copy was never given back",
        |c| !c.iter().any(|x| x.node == "p1"),
    );
    eprintln!("pool copy given back {took:?} after the sessions ended");
    assert!(
        !dir.path().join("p1/demo").exists(),
        "the pool copy is still on disk"
    );
    // The copy vanishes from the catalog when it is renamed away; the log follows its deletion.
    assert!(
        srv.wait_for_line(Duration::from_secs(10), |l| l
            .contains("its pool copy is given back"))
            .is_some(),
        "{}",
        srv.stdout_lines().join("\n")
    );
}
