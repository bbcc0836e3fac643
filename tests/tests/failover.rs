//! Failover that viewers do not notice (issue 6, item 2), in one process: a store of two
//! hosts with one node each and the 12 s demo clip on both (main and sub). While an RTSP
//! session over UDP and one over TCP play, the main node fails — it crashes, it stalls, or it
//! returns EIO for the rest of the file — and each session must still deliver every TS byte
//! of the content, in order, with no RTP sequence gap, RTP timestamps that never go back, and
//! no pause in arrival longer than 300 ms. Control requests sent while the session fails over
//! (PAUSE, then PLAY with a seek) are answered in order and applied.

use rtsp_proto::message::Method;
use serde_json::json;
use sluice_tests::bin_path::workspace_root;
use sluice_tests::http_client::must_put_json;
use sluice_tests::rtsp_client::{Client, Packet, payload, sequence_gaps};
use sluice_tests::server::{self, Server};
use sluice_tests::{catalog, store};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The longest a viewer may go without a packet at failover.
const MAX_GAP: Duration = Duration::from_millis(300);

struct Setup {
    _store: tempfile::TempDir,
    srv: Server,
    rtsp: SocketAddr,
    main: String,
    file: Vec<u8>,
}

fn start() -> Setup {
    let topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [{"name": "h1", "nodes": ["a1"]}, {"name": "h2", "nodes": ["b1"]}],
    });
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (dir, manifest) = store::with_topology("sluice-failover-", &topology, &src, "demo", 2);
    let copy = store::copies(dir.path(), "demo")
        .into_iter()
        .next()
        .expect("a copy");
    let main = manifest["replicas"][0]["node"]
        .as_str()
        .expect("main node")
        .to_string();
    let file = std::fs::read(copy.join("content.ts")).expect("content.ts");
    let srv = Server::start(
        server::streamer_command(dir.path(), &[]),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    Setup {
        _store: dir,
        srv,
        rtsp,
        main,
        file,
    }
}

fn knobs(s: &Setup, v: serde_json::Value) {
    must_put_json(s.srv.addr, &format!("/admin/nodes/{}/knobs", s.main), &v);
}

/// Longest pause between two packets' arrivals.
fn longest_pause(p: &[Packet]) -> Duration {
    p.windows(2)
        .map(|w| w[1].arrival.duration_since(w[0].arrival))
        .max()
        .unwrap_or_default()
}

fn timestamps_monotonic(p: &[Packet]) -> bool {
    p.windows(2)
        .all(|w| w[1].header.timestamp.wrapping_sub(w[0].header.timestamp) < 0x8000_0000)
}

/// Play the whole clip over UDP and TCP while `fault` hits the main node 3 s in; both
/// sessions must be byte-exact, gap-free and continuous.
fn plays_through(fault: serde_json::Value) {
    let s = start();
    let sessions: Vec<_> = [false, true]
        .into_iter()
        .map(|tcp| {
            let mut c = Client::connect(s.rtsp, "demo").expect("connect");
            c.setup(tcp);
            let url = c.url.clone();
            let play = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=0-")]);
            assert_eq!(play.status, 200);
            (tcp, c, play)
        })
        .collect();
    let collectors: Vec<_> = sessions
        .into_iter()
        .map(|(tcp, mut c, play)| {
            std::thread::spawn(move || {
                let (p, bye) = c.collect_run(&play, Instant::now() + Duration::from_secs(40));
                (tcp, p, bye)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    knobs(&s, fault.clone());
    for h in collectors {
        let (tcp, p, bye) = h.join().expect("collector");
        let t = if tcp { "TCP" } else { "UDP" };
        assert!(bye, "{t}: no BYE at the end ({fault})");
        assert_eq!(sequence_gaps(&p), 0, "{t}: RTP sequence gaps ({fault})");
        assert!(
            timestamps_monotonic(&p),
            "{t}: RTP timestamps went back ({fault})"
        );
        let got = payload(&p);
        assert!(
            got == s.file,
            "{t}: {} TS bytes of {} ({fault})",
            got.len(),
            s.file.len()
        );
        let pause = longest_pause(&p);
        eprintln!("{fault} over {t}: longest pause between packets {pause:?}");
        assert!(
            pause <= MAX_GAP,
            "{t}: a {pause:?} pause in playback ({fault})"
        );
    }
}

#[test]
fn rtsp_plays_through_a_crashed_node() {
    plays_through(json!({"crashed": true}));
}

#[test]
fn rtsp_plays_through_a_stalled_node() {
    plays_through(json!({"stalled": true}));
}

#[test]
fn rtsp_plays_through_a_node_returning_errors() {
    plays_through(json!({"eio": [{"start": 0, "end": 1u64 << 40}]}));
}

/// A TCP session that has played for a second, then its main node stalls.
fn playing_then_stalled(s: &Setup) -> (Client, String) {
    let mut c = Client::connect(s.rtsp, "demo").expect("connect");
    c.setup(true);
    let url = c.url.clone();
    let play = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=0-")]);
    assert_eq!(play.status, 200);
    let _ = c.collect(Instant::now() + Duration::from_millis(1000));
    knobs(s, json!({"stalled": true}));
    (c, url)
}

/// Control requests sent while the main node stalls (the session's next read waits for the
/// read deadline, then moves to the sub): PAUSE and a PLAY that seeks are answered in order,
/// and the stream resumes at the keyframe the seek asked for.
#[test]
fn control_requests_during_failover_are_applied_in_order() {
    let s = start();
    let (mut c, url) = playing_then_stalled(&s);
    let pause = c.request(Method::Pause, &format!("{url}/"), &[]);
    assert_eq!(pause.status, 200, "PAUSE during the stall: {pause:?}");
    let seek = c.request(Method::Play, &format!("{url}/"), &[("Range", "npt=8.5-")]);
    assert_eq!(seek.status, 200, "PLAY during the stall: {seek:?}");
    let range = seek.headers.get("Range").unwrap_or("").to_string();
    assert!(range.starts_with("npt=8"), "the seek landed at {range}");
    let (p, bye) = c.collect_run(&seek, Instant::now() + Duration::from_secs(20));
    assert!(bye, "no BYE after the seek");
    assert_eq!(sequence_gaps(&p), 0);
    let got = payload(&p);
    assert!(
        !got.is_empty() && s.file.ends_with(&got),
        "the resumed bytes are not the file's tail"
    );
}

/// Requests pipelined in one write while the session's main node stalls — PAUSE, PLAY with a
/// seek, PLAY with `Scale: 2`, TEARDOWN — are all answered, in order, each applied: the seek's
/// `Range`, the granted `Scale`, and the session gone after TEARDOWN.
#[test]
fn pipelined_control_requests_during_a_stall_are_answered_in_order() {
    let s = start();
    let (mut c, url) = playing_then_stalled(&s);
    let session = c.session.clone().expect("session");
    let base = format!("{url}/");
    let requests = [
        (Method::Pause, vec![]),
        (Method::Play, vec![("Range", "npt=6.5-")]),
        (Method::Play, vec![("Scale", "2")]),
        (Method::Teardown, vec![]),
    ];
    let mut bytes = Vec::new();
    for (k, (m, headers)) in requests.iter().enumerate() {
        let mut r = rtsp_proto::message::Request::new(m.clone(), base.as_str())
            .header("CSeq", (100 + k).to_string())
            .header("Session", session.clone());
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r.serialize(&mut bytes);
    }
    c.send_raw(&bytes).expect("send the pipelined requests");
    let replies: Vec<_> = (0..requests.len())
        .map(|_| c.reply().expect("a reply to each pipelined request"))
        .collect();
    let cseqs: Vec<Option<u32>> = replies.iter().map(|r| r.cseq()).collect();
    assert_eq!(
        cseqs,
        [Some(100), Some(101), Some(102), Some(103)],
        "{replies:?}"
    );
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    let range = replies[1].headers.get("Range").unwrap_or("");
    assert!(range.starts_with("npt=6"), "the seek landed at {range}");
    assert_eq!(
        replies[2].headers.get("Scale"),
        Some("2"),
        "{:?}",
        replies[2]
    );
    // The session is gone: a request naming it is refused.
    c.session = Some(session);
    let after = c.request(Method::GetParameter, &base, &[]);
    assert_eq!(after.status, 454, "the session outlived its TEARDOWN");
}

/// The configured copy count and the placement order come back: the main node crashes, its
/// copy is made again on the third host (`--repair-after-ms`); when the main recovers, the
/// copy count is one too many and the copy on the host placed last — the re-made one — is
/// removed, leaving main and sub as installed.
#[test]
fn a_lost_copy_is_made_again_and_the_order_returns_with_the_main() {
    let topology = store::three_single_node_hosts();
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (dir, manifest) = store::with_topology("sluice-order-", &topology, &src, "demo", 2);
    let placed: Vec<String> = manifest["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["node"].as_str().unwrap_or("").to_string())
        .collect();
    let third = ["a1", "b1", "c1"]
        .into_iter()
        .find(|n| !placed.iter().any(|p| p == n))
        .expect("a node without a copy");
    let srv = Server::start(
        server::streamer_command(dir.path(), &["--repair-after-ms", "1000"]),
        "streamer: serving ",
    );
    let limit = Duration::from_secs(20);
    let knobs_of = |node: &str, v: serde_json::Value| {
        must_put_json(srv.addr, &format!("/admin/nodes/{node}/knobs"), &v);
    };
    knobs_of(&placed[0], json!({"crashed": true}));
    let took = catalog::wait_until(&srv, "demo", limit, "no new copy on the third host", |c| {
        c.iter().any(|x| x.node == third && x.up())
    });
    eprintln!("copy made again on {third} {took:?} after the main crashed");
    knobs_of(&placed[0], json!({}));
    let took = catalog::wait_until(&srv, "demo", limit, "the re-made copy never went", |c| {
        let now: Vec<&str> = c.iter().map(|x| x.node.as_str()).collect();
        now == [placed[0].as_str(), placed[1].as_str()] && c.iter().all(catalog::Copy::up)
    });
    eprintln!("order back to {placed:?} {took:?} after the main recovered");
    assert!(!dir.path().join(third).join("demo").exists());
}
