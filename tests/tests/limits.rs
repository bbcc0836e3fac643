//! End-to-end tests of the limits (issue 7, item 3), against the real `streamer` on loopback
//! with the demo installed by the real `install-content`:
//!
//! - slow-loris: connections that dribble a request head a byte at a time are closed when the
//!   header timeout runs out (HTTP with a 408 first, RTSP by closing), and an idle keep-alive
//!   connection is closed after the idle timeout, while a normal client still gets its bytes;
//! - session and connection limits, set small by flags: SETUP beyond them answers 453, an HTTP
//!   connection beyond them 503 with `Retry-After`, each counted in `/metrics`;
//! - a client that stops reading is cut off after the send timeout, and one that pipelines
//!   requests without reading the answers is held back (bounded memory per connection);
//! - thousands of idle connections do not stop a normal client, and running out of descriptors
//!   (EMFILE) does not stop the accept loop.
//!
//! Every wait is bounded; everything is on loopback.

use rtsp_proto::message::Method;
use sluice_tests::bin_path::workspace_root;
use sluice_tests::http_client;
use sluice_tests::prometheus::{self, Page};
use sluice_tests::rtsp_client::{self, Client};
use sluice_tests::server::{self, Server};
use sluice_tests::store;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tempfile::TempDir;

struct Setup {
    _store: TempDir,
    srv: Server,
    rtsp: SocketAddr,
    file: Vec<u8>,
}

/// The demo installed as `demo` and a streamer with `extra` flags.
fn start(extra: &[&str]) -> Setup {
    start_under(None, extra)
}

/// As [`start`], the streamer run under `prlimit --nofile=N:N` when `nofile` is given (soft
/// and hard, so the streamer cannot raise it).
fn start_under(nofile: Option<u32>, extra: &[&str]) -> Setup {
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let store = store::with_content("sluice-limits-", &src, "demo");
    let file = fs::read(store::installed(store.path(), "demo").join("content.ts"))
        .expect("read content.ts");
    let mut cmd = server::streamer_command(store.path(), extra);
    if let Some(n) = nofile {
        let mut wrapped = std::process::Command::new("prlimit");
        wrapped
            .arg(format!("--nofile={n}:{n}"))
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        cmd = wrapped;
    }
    let srv = Server::start(cmd, "streamer: serving ");
    let rtsp = server::rtsp_address(&srv);
    Setup {
        _store: store,
        srv,
        rtsp,
        file,
    }
}

fn metrics(addr: SocketAddr) -> Page {
    let r = http_client::must_get(addr, "/metrics");
    assert_eq!(r.status, 200);
    prometheus::parse(&r.text()).expect("metrics parse")
}

/// A normal HTTP client gets the whole file, byte for byte.
fn http_plays(s: &Setup) {
    let r = http_client::must_get(s.srv.addr, "/content/demo.ts");
    assert_eq!(r.status, 200, "GET /content/demo.ts: {}", r.text());
    assert!(r.body == s.file, "the body is not the installed file");
}

/// A normal RTSP client sets up (TCP interleaved), plays, and gets the file's first bytes.
fn rtsp_plays(s: &Setup) {
    let mut c = Client::connect(s.rtsp, "demo").expect("RTSP connect");
    c.setup(true);
    let url = c.url.clone();
    let p = c.request(Method::Play, &url, &[("Range", "npt=0-")]);
    assert_eq!(p.status, 200, "PLAY: {p:?}");
    let (pk, _) = c.collect(Instant::now() + Duration::from_millis(700));
    let got = rtsp_client::payload(&pk);
    assert!(
        !got.is_empty() && s.file.starts_with(&got),
        "RTSP play: {} bytes, not the start of the file",
        got.len()
    );
    let t = c.request(Method::Teardown, &url, &[]);
    assert_eq!(t.status, 200, "TEARDOWN: {t:?}");
}

/// What a dribbling client saw: when the server closed, and what it said first.
struct Dribbled {
    closed_after: Option<Duration>,
    answer: Vec<u8>,
}

/// Connects and sends `head` one byte every `every`, reading in between, until the server
/// closes the connection or `limit` passes.
fn dribble(addr: SocketAddr, head: &'static [u8], every: Duration, limit: Duration) -> Dribbled {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(every)).expect("timeout");
    let mut answer = Vec::new();
    let mut next = 0;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        if next < head.len() && s.write_all(&head[next..next + 1]).is_ok() {
            next += 1;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                return Dribbled {
                    closed_after: Some(t0.elapsed()),
                    answer,
                };
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return Dribbled {
                    closed_after: Some(t0.elapsed()),
                    answer,
                };
            }
        }
    }
    Dribbled {
        closed_after: None,
        answer,
    }
}

const HTTP_HEAD: &[u8] =
    b"GET /content/demo.ts HTTP/1.1\r\nHost: x\r\nUser-Agent: a-very-slow-client\r\n\r\n";
const RTSP_HEAD: &[u8] = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: a-very-slow-client\r\n\r\n";

/// Slow-loris: heads dribbled a byte every 300 ms never complete within the 2 s header
/// timeout; the server closes each connection on time (HTTP after a 408) while normal clients
/// keep playing. An idle keep-alive connection is closed after the 3 s idle timeout.
#[test]
fn slow_loris_connections_are_dropped_on_time() {
    let s = start(&["--header-timeout", "2", "--idle-timeout", "3"]);
    let every = Duration::from_millis(300);
    let limit = Duration::from_secs(8);
    let http = s.srv.addr;
    let rtsp = s.rtsp;
    let lorises: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    ("HTTP", dribble(http, HTTP_HEAD, every, limit))
                } else {
                    ("RTSP", dribble(rtsp, RTSP_HEAD, every, limit))
                }
            })
        })
        .collect();
    // Meanwhile, normal clients are served.
    http_plays(&s);
    rtsp_plays(&s);
    for l in lorises {
        let (proto, d) = l.join().expect("dribbler");
        let after = d
            .closed_after
            .unwrap_or_else(|| panic!("{proto} slow-loris still open after {limit:?}"));
        assert!(
            after >= Duration::from_millis(1500) && after < Duration::from_millis(4500),
            "{proto} slow-loris closed after {after:?}, the header timeout is 2 s"
        );
        let text = String::from_utf8_lossy(&d.answer);
        if proto == "HTTP" {
            assert!(text.starts_with("HTTP/1.1 408 "), "HTTP answer: {text:?}");
        } else {
            assert!(d.answer.is_empty(), "RTSP answer: {text:?}");
        }
    }
    // A keep-alive connection that asks once and then idles is closed after the idle timeout
    // (counted from its last request, not from the connect).
    let mut c = TcpStream::connect(http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    c.write_all(b"GET /api/v1/contents HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) => break t0.elapsed(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("idle keep-alive connection not closed: {e}"),
        }
    };
    assert!(
        got.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        closed >= Duration::from_millis(2500) && closed < Duration::from_millis(5500),
        "idle keep-alive connection closed after {closed:?}, the idle timeout is 3 s"
    );
    let m = metrics(http);
    assert!(
        m.sum("sluice_http_refused_total", &[("reason", "header_timeout")]) >= 2.0,
        "HTTP header timeouts not counted"
    );
    assert!(
        m.sum("sluice_rtsp_refused_total", &[("reason", "header_timeout")]) >= 2.0,
        "RTSP header timeouts not counted"
    );
    http_plays(&s);
}

/// A SETUP over TCP on a new connection; the status (the client is returned to keep the
/// connection and its session).
fn try_setup(rtsp: SocketAddr) -> (Client, u16) {
    let mut c = Client::connect(rtsp, "demo").expect("RTSP connect");
    let url = c.url.clone();
    let track = format!("{url}/track1");
    let s = c.request(
        Method::Setup,
        &track,
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    if s.status == 200 {
        let sess = s.headers.get("Session").expect("Session").to_string();
        c.session = Some(sess.split(';').next().unwrap_or("").to_string());
    }
    (c, s.status)
}

/// A raw HTTP exchange on a new connection: the status line and head, up to the blank line.
fn raw_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /api/v1/contents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Sessions beyond the limits (per client address, overall) are refused with 453 and counted;
/// a TEARDOWN makes room again. HTTP connections beyond the limits get 503 with Retry-After,
/// counted; closing one makes room again. Normal clients within the limits are served.
#[test]
fn session_and_connection_limits_refuse_with_453_and_503() {
    for (flags, reason) in [
        (
            [
                "--max-sessions-per-client",
                "2",
                "--max-connections-per-client",
                "4",
            ],
            "_per_client",
        ),
        (["--max-sessions", "2", "--max-connections", "4"], ""),
    ] {
        let s = start(&flags);
        // RTSP: two sessions fit, the third is refused with 453.
        let (mut a, st) = try_setup(s.rtsp);
        assert_eq!(st, 200, "{flags:?}: first SETUP");
        let (_b, st) = try_setup(s.rtsp);
        assert_eq!(st, 200, "{flags:?}: second SETUP");
        let (_c, st) = try_setup(s.rtsp);
        assert_eq!(st, 453, "{flags:?}: third SETUP");
        let url = a.url.clone();
        let t = a.request(Method::Teardown, &url, &[]);
        assert_eq!(t.status, 200);
        let (_d, st) = try_setup(s.rtsp);
        assert_eq!(st, 200, "{flags:?}: SETUP after a TEARDOWN made room");
        drop((a, _b, _c, _d));
        // Their sessions end when the server sees the connections close.
        std::thread::sleep(Duration::from_millis(500));

        // HTTP: four held connections fit, the fifth gets 503 with Retry-After.
        let held: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(s.srv.addr).expect("connect"))
            .collect();
        // Accepting is asynchronous: give the server a moment to count the four.
        std::thread::sleep(Duration::from_millis(300));
        let busy = raw_get(s.srv.addr);
        assert!(busy.starts_with("HTTP/1.1 503 "), "{flags:?}: {busy:?}");
        assert!(
            busy.to_ascii_lowercase().contains("\r\nretry-after: "),
            "no Retry-After: {busy:?}"
        );
        drop(held);
        // Closed connections are given back once the server sees the close.
        let t0 = Instant::now();
        let mut ok = String::new();
        while t0.elapsed() < Duration::from_secs(5) {
            ok = raw_get(s.srv.addr);
            if ok.starts_with("HTTP/1.1 200 ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            ok.starts_with("HTTP/1.1 200 "),
            "{flags:?}: after closing: {ok:?}"
        );
        http_plays(&s);
        rtsp_plays(&s);
        let m = metrics(s.srv.addr);
        let sessions = format!("max_sessions{reason}");
        let conns = format!("max_connections{reason}");
        assert!(
            m.sum("sluice_rtsp_refused_total", &[("reason", &sessions)]) >= 1.0,
            "{sessions} not counted"
        );
        assert!(
            m.sum("sluice_http_refused_total", &[("reason", &conns)]) >= 1.0,
            "{conns} not counted"
        );
    }
}

/// Raise this process's soft open-files limit to the hard one (the test holds thousands of
/// sockets); returns the soft limit now in force.
fn raise_own_fd_limit() -> libc::rlim_t {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
    }
    l.rlim_cur
}

/// 2,000 idle TCP connections to the HTTP port and 200 to the RTSP port, all held open, and a
/// normal client still gets the whole file over HTTP and plays over RTSP; the idle connections
/// are still open (the server neither ran out of descriptors nor dropped them early).
#[test]
fn thousands_of_idle_connections_do_not_stop_a_normal_client() {
    const HTTP_IDLE: usize = 2000;
    const RTSP_IDLE: usize = 200;
    let soft = raise_own_fd_limit();
    if soft < (HTTP_IDLE + RTSP_IDLE + 200) as libc::rlim_t {
        panic!("the open-files limit ({soft}) is too low for this test");
    }
    let s = start(&[
        "--max-connections-per-client",
        "5000",
        "--header-timeout",
        "60",
    ]);
    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(HTTP_IDLE + RTSP_IDLE);
    for i in 0..HTTP_IDLE + RTSP_IDLE {
        let to = if i < HTTP_IDLE { s.srv.addr } else { s.rtsp };
        let c = TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(c);
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "connecting took too long"
        );
    }
    http_plays(&s);
    rtsp_plays(&s);
    let m = metrics(s.srv.addr);
    assert_eq!(
        m.sum(
            "sluice_http_refused_total",
            &[("reason", "max_connections_per_client")]
        ),
        0.0
    );
    // The idle connections are still open: a read finds nothing (not an end of stream).
    for (i, c) in idle.iter_mut().enumerate().step_by(97) {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("idle connection {i} was closed or answered: {other:?}"),
        }
    }
    drop(idle);
    http_plays(&s);
}

/// The streamer's open-files limit is low (256, held by `prlimit`) and 600 idle connections
/// arrive: the server fits its connection limit to its descriptors (and says so), refuses the
/// connections beyond it with 503 and `Retry-After` instead of running out of descriptors, the
/// header timeout (2 s) frees the idle ones, and a normal client that retries as told gets the
/// whole file, byte for byte (never a `200` with a cut body).
#[test]
fn connections_fit_the_open_files_limit_and_refused_clients_retry() {
    const IDLE: usize = 600;
    raise_own_fd_limit();
    // Asking for more connections than fit: the server says it lowered them (a default that
    // does not fit is lowered quietly).
    let s = start_under(
        Some(256),
        &[
            "--max-connections",
            "5000",
            "--max-connections-per-client",
            "5000",
            "--header-timeout",
            "2",
        ],
    );
    let said = s.srv.stderr();
    assert!(
        said.contains("max-connections lowered"),
        "the server did not fit its limits to 256 descriptors:\n{said}"
    );
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let c = TcpStream::connect_timeout(&s.srv.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(c);
    }
    let t0 = Instant::now();
    let mut refused = 0;
    let body = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no 200 within 30 s ({refused} refusals)\nstderr:\n{}",
            s.srv.stderr()
        );
        let mut c =
            TcpStream::connect_timeout(&s.srv.addr, Duration::from_secs(5)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"GET /content/demo.ts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let split = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "no response after {:?}: {:?}\nstderr:\n{}",
                    t0.elapsed(),
                    String::from_utf8_lossy(&got),
                    s.srv.stderr()
                )
            });
        let head = String::from_utf8_lossy(&got[..split]).into_owned();
        if head.starts_with("HTTP/1.1 503 ") {
            // Waits as long as it is told, like a polite client.
            let wait: u64 = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("retry-after")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("503 without Retry-After: {head}"));
            refused += 1;
            std::thread::sleep(Duration::from_secs(wait));
            continue;
        }
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        break got.split_off(split + 4);
    };
    assert!(
        body == s.file,
        "the body is not the installed file: {} of {} bytes\nstderr:\n{}",
        body.len(),
        s.file.len(),
        s.srv.stderr()
    );
    assert!(
        refused > 0,
        "the client was never refused: the limit did not hold"
    );
    let m = metrics(s.srv.addr);
    assert!(
        m.sum(
            "sluice_http_refused_total",
            &[("reason", "max_connections")]
        ) >= 1.0
    );
    let said = s.srv.stdout_lines().join("\n") + &s.srv.stderr();
    assert!(
        !said.contains("accept failed"),
        "the server ran out of descriptors:\n{said}"
    );
    drop(idle);
    http_plays(&s);
    rtsp_plays(&s);
}

/// A client that asks for a lot (40 pipelined GETs of the whole file) and reads nothing is cut
/// off once the socket has taken nothing for the 2 s send timeout; a normal client is served
/// meanwhile.
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let s = start(&["--send-timeout", "2"]);
    let mut c = TcpStream::connect(s.srv.addr).expect("connect");
    let mut reqs = Vec::new();
    for _ in 0..40 {
        reqs.extend_from_slice(b"GET /content/demo.ts HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    c.write_all(&reqs).expect("send requests");
    // Read nothing until well past the send timeout (the buffers on both sides fill first).
    std::thread::sleep(Duration::from_secs(6));
    http_plays(&s);
    // Now drain what was sent: the server closed the connection, so the stream ends (or is
    // reset) long before the 40 bodies.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let t0 = Instant::now();
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "still reading");
    }
    assert!(
        got < 40 * s.file.len(),
        "all {got} bytes came: the stalled client was not cut off"
    );
}

/// How many bytes of `unit` repeated a client can push at a server that answers each one
/// while the client reads nothing: stops at the first write that takes nothing for 3 s, or
/// at `cap` bytes, or after 30 s.
fn push_unread(addr: SocketAddr, unit: &[u8], cap: usize) -> usize {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut chunk = Vec::new();
    while chunk.len() < 64 << 10 {
        chunk.extend_from_slice(unit);
    }
    let t0 = Instant::now();
    let mut sent = 0usize;
    while sent < cap && t0.elapsed() < Duration::from_secs(30) {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    sent
}

/// Bounded memory per connection: a client that pipelines requests and never reads the
/// answers is stopped by back-pressure (the server stops reading while its answers are not
/// taken) instead of having its requests read and its answers queued without end; the kernel
/// buffers absorb a few megabytes, far below 256 MiB. Normal clients are served meanwhile.
#[test]
fn pipelining_without_reading_is_held_back() {
    let s = start(&[]);
    const CAP: usize = 256 << 20;
    let http = push_unread(
        s.srv.addr,
        b"GET /api/v1/contents HTTP/1.1\r\nHost: x\r\n\r\n",
        CAP,
    );
    assert!(http < 64 << 20, "HTTP: {http} bytes of requests were taken");
    let url = format!("rtsp://{}/demo", s.rtsp);
    let rtsp_req = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    let rtsp = push_unread(s.rtsp, rtsp_req.as_bytes(), CAP);
    assert!(rtsp < 64 << 20, "RTSP: {rtsp} bytes of requests were taken");
    http_plays(&s);
    rtsp_plays(&s);
}
