//! The cluster across processes, coordinated by a real etcd (Debian `etcd-server`) on a
//! loopback port (issue 6): three `storage-node` processes, one per physical host, keep a
//! lease each in etcd through their heartbeats; a `streamer` watches etcd for node health and
//! reads from the nodes over HTTP. A storage node killed with SIGKILL stops beating: the
//! streamer sees its beats stop in etcd and marks its nodes down, then its lease expires and
//! etcd deletes its nodes' keys; ffmpeg clients
//! playing over RTSP (UDP and TCP) and HTTP all play the whole clip through it, and the
//! elected controller copies the content to the third host so that two healthy copies exist
//! again.

use serde_json::Value;
use sluice_tests::bin_path::{install_content_cmd, storage_node, workspace_root};
use sluice_tests::process::{self, Output};
use sluice_tests::server::{self, Server};
use sluice_tests::vlc::need;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use storage_device_sim::etcd::LocalEtcd;

const HOSTS: [&str; 3] = ["host-1", "host-2", "host-3"];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A store of three hosts (one node each, addresses on loopback) with the 12 s demo clip
/// installed as `movie` on two of them.
fn store() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::Builder::new()
        .prefix("sluice-cluster-")
        .tempdir()
        .expect("tempdir");
    let addrs: Vec<String> = HOSTS
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let hosts: Vec<Value> = HOSTS
        .iter()
        .zip(&addrs)
        .map(|(h, a)| serde_json::json!({"name": h, "nodes": [format!("{h}-n1")], "address": a}))
        .collect();
    let topology = serde_json::json!({"format": "sluice-store", "version": 1, "hosts": hosts});
    std::fs::write(dir.path().join("store.json"), topology.to_string()).expect("store.json");
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let out = process::run(install_content_cmd(dir.path()).arg("add").arg(&src).args([
        "--id",
        "movie",
        "--replicas",
        "2",
    ]));
    assert!(out.success(), "{out}");
    (dir, addrs)
}

fn start_node(store: &Path, host: &str, addr: &str, etcd: &str) -> Server {
    let mut cmd = server::bounded(storage_node());
    cmd.arg("--store")
        .arg(store)
        .args(["--host", host, "--listen", addr, "--etcd", etcd]);
    Server::start(cmd, "storage-node: host")
}

/// (node, host, health) of the movie's replicas, main first.
fn replicas(addr: SocketAddr) -> Vec<(String, String, String)> {
    sluice_tests::catalog::copies(addr, "movie")
        .into_iter()
        .map(|c| (c.node, c.host, c.health))
        .collect()
}

/// The last `out_time_us` of ffmpeg's `-progress` output, in seconds.
fn progress_secs(out: &Output) -> f64 {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
        .unwrap_or(0.0)
        / 1e6
}

#[test]
fn a_storage_node_killed_mid_play_is_detected_through_etcd_clients_finish_and_the_copy_returns() {
    let etcd = LocalEtcd::start().expect("etcd (scripts/ensure-tools installs etcd-server)");
    let (store, addrs) = store();
    let mut nodes: Vec<Server> = HOSTS
        .iter()
        .zip(&addrs)
        .map(|(h, a)| start_node(store.path(), h, a, &etcd.endpoint))
        .collect();
    let srv = Server::start(
        server::streamer_command(
            store.path(),
            &["--etcd", &etcd.endpoint, "--repair-after-ms", "1000"],
        ),
        "streamer: serving ",
    );
    let http = srv.addr;
    let rtsp = server::rtsp_address(&srv);
    // Every replica up, as etcd says.
    let t0 = Instant::now();
    let reps = loop {
        let r = replicas(http);
        if r.len() == 2 && r.iter().all(|(_, _, h)| h == "Up") {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replicas never all up: {r:?}\n{}",
            srv.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let main_host = reps[0].1.clone();
    let victim = HOSTS
        .iter()
        .position(|h| *h == main_host)
        .expect("main host");

    // Three clients at real-time pace: RTSP over UDP and TCP, HTTP with -re.
    let ffmpeg = need("ffmpeg");
    let client = |args: Vec<String>| {
        let mut c = Command::new(&ffmpeg);
        c.args(["-v", "error", "-nostats", "-progress", "pipe:1"])
            .args(args)
            .args(["-c", "copy", "-f", "null", "-"]);
        std::thread::spawn(move || {
            let started = Instant::now();
            let out = process::spawn(&mut c).wait_at_most(CLIENT_TIMEOUT);
            (out, started.elapsed())
        })
    };
    let url = format!("rtsp://{rtsp}/movie");
    let runs = vec![
        (
            "rtsp/udp",
            client(vec![
                "-rtsp_transport".into(),
                "udp".into(),
                "-i".into(),
                url.clone(),
            ]),
        ),
        (
            "rtsp/tcp",
            client(vec![
                "-rtsp_transport".into(),
                "tcp".into(),
                "-i".into(),
                url,
            ]),
        ),
        (
            "http",
            client(vec![
                "-re".into(),
                "-i".into(),
                format!("http://{http}/content/movie.ts"),
            ]),
        ),
    ];
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = Instant::now();
    // The server runs under `timeout`: the storage node is its child.
    let wrapper = nodes[victim].pid().expect("storage-node pid");
    let children = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children"))
        .expect("children of the timeout wrapper");
    let pid: i32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the storage-node process");
    // SAFETY: a plain signal to a process this test started.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill -9 {pid}");
    // The streamer learns it from etcd: the lease expires (TTL 1 s) and the key goes.
    let detected = loop {
        let r = replicas(http);
        if r.iter().any(|(_, h, st)| *h == main_host && st == "Down") {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the killed host never went down: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("killed {main_host}: down in the streamer's view after {detected:?}");
    assert!(
        detected <= Duration::from_millis(1500),
        "detection took {detected:?} (3 beats of 200 ms)"
    );
    // Its beats stopped in etcd; then its lease expired and etcd deleted its node keys.
    assert!(
        srv.wait_for_line(Duration::from_secs(10), |l| l
            .contains("no heartbeat seen in etcd"))
            .is_some(),
        "the streamer did not see the beats stop"
    );
    assert!(
        srv.wait_for_line(Duration::from_secs(10), |l| l
            .contains("node key gone from etcd"))
            .is_some(),
        "the killed host's lease never expired:\n{}",
        srv.stdout_lines().join("\n")
    );
    for (name, run) in runs {
        let (out, wall) = run.join().expect("client thread");
        assert!(out.success(), "{name} client failed\n{out}");
        let secs = progress_secs(&out);
        assert!(
            secs >= 11.5,
            "{name} client played {secs:.2} s of 12 in {wall:?}\n{out}"
        );
    }
    // The two other hosts are still up, as etcd says.
    let r = replicas(http);
    assert!(
        r.iter()
            .filter(|(_, h, _)| *h != main_host)
            .all(|(_, _, st)| st == "Up"),
        "{r:?}"
    );
    // The replica count comes back: the elected controller copies the movie to the third host.
    let third = HOSTS
        .iter()
        .find(|h| !reps.iter().any(|(_, rh, _)| rh == *h))
        .expect("a host without a copy");
    let t0 = Instant::now();
    let restored = loop {
        let r = replicas(http);
        let up: Vec<&str> = r
            .iter()
            .filter(|(_, _, st)| st == "Up")
            .map(|(_, h, _)| h.as_str())
            .collect();
        if up.len() >= 2 && up.contains(third) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no new copy on {third}: {r:?}\n{}",
            srv.stdout_lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("a new copy on {third} {restored:?} after the clients finished");
    // The copy is visible once renamed into place; the controller logs right after.
    assert!(
        srv.wait_for_line(Duration::from_secs(10), |l| l.contains("re-replicated"))
            .is_some(),
        "{}",
        srv.stdout_lines().join("\n")
    );
    let out = process::run(install_content_cmd(store.path()).args(["verify", "movie"]));
    assert!(
        out.stdout.contains(&format!("{third}-n1")),
        "verify does not list the new copy\n{out}"
    );
    drop(nodes.remove(victim));
}

/// Steering across machines: two streamers, each near one storage host (`--near-hosts`),
/// the movie on both hosts, the main copy's host able to carry about one session. A first
/// session at the streamer near the main copy reads it there; the next one, with the main host
/// at capacity, belongs near the sub copy: that streamer answers DESCRIBE with `302` to the
/// other streamer (ffprobe follows it and plays), and an HTTP request with `302` too.
#[test]
fn sessions_are_redirected_to_the_streamer_near_the_copy_with_room() {
    let etcd = LocalEtcd::start().expect("etcd (scripts/ensure-tools installs etcd-server)");
    let addrs: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut topology = serde_json::json!({"format": "sluice-store", "version": 1, "hosts": [
        {"name": "host-1", "nodes": ["host-1-n1"], "address": addrs[0]},
        {"name": "host-2", "nodes": ["host-2-n1"], "address": addrs[1]},
    ]});
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let (store, manifest) =
        sluice_tests::store::with_topology("sluice-steer-", &topology, &src, "movie", 2);
    let (main_host, sub_host) =
        sluice_tests::store::limit_main_host(store.path(), &mut topology, &manifest);
    let _nodes: Vec<Server> = ["host-1", "host-2"]
        .iter()
        .zip(&addrs)
        .map(|(h, a)| start_node(store.path(), h, a, &etcd.endpoint))
        .collect();
    let streamer = |near: &str| {
        Server::start(
            server::streamer_command(
                store.path(),
                &["--etcd", &etcd.endpoint, "--near-hosts", near],
            ),
            "streamer: serving ",
        )
    };
    let a = streamer(&main_host);
    let b = streamer(&sub_host);
    let (a_rtsp, b_rtsp) = (server::rtsp_address(&a), server::rtsp_address(&b));
    // The first session at A reads the main copy, on A's machine.
    let mut first = sluice_tests::rtsp_client::Client::connect(a_rtsp, "movie").expect("connect");
    first.setup(true);
    let url = first.url.clone();
    let play = first.request(
        rtsp_proto::message::Method::Play,
        &format!("{url}/"),
        &[("Range", "npt=0-")],
    );
    assert_eq!(play.status, 200);
    // The next one belongs near the sub: A redirects it to B (once A has heard of B).
    let t0 = Instant::now();
    let location = loop {
        let mut c = sluice_tests::rtsp_client::Client::connect(a_rtsp, "movie").expect("connect");
        let r = c.request(
            rtsp_proto::message::Method::Describe,
            &format!("rtsp://{a_rtsp}/movie"),
            &[("Accept", "application/sdp")],
        );
        if r.status == 302 {
            break r.headers.get("Location").expect("Location").to_string();
        }
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "A never redirected a session to B"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(location, format!("rtsp://{b_rtsp}/movie"));
    // ffprobe follows the redirect and reads the stream from B.
    let out = process::run(
        Command::new(need("ffprobe"))
            .args(["-v", "error", "-show_entries", "format=duration", "-of"])
            .args(["default=nw=1:nk=1"])
            .arg(format!("rtsp://{a_rtsp}/movie")),
    );
    assert!(
        out.success() && out.stdout.trim().starts_with("12"),
        "ffprobe through the redirect\n{out}"
    );
    // HTTP too.
    let r = sluice_tests::http_client::get(a.addr, "/content/movie.ts").expect("GET");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{}/content/movie.ts", b.addr).as_str())
    );
    let out = process::run(
        Command::new(need("ffprobe"))
            .args(["-v", "error", "-show_entries", "format=duration", "-of"])
            .args(["default=nw=1:nk=1"])
            .arg(format!("http://{}/content/movie.ts", a.addr)),
    );
    assert!(out.success(), "ffprobe through the HTTP redirect\n{out}");
    // B, near the sub copy with room, serves what it is sent.
    let r = sluice_tests::http_client::get(b.addr, "/content/movie/index.m3u8").expect("GET");
    assert_eq!(r.status, 200);
    drop(first);
}
