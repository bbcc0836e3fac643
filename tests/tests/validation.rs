//! End-to-end tests of request validation (issue 7, item 1): every request is checked before
//! any work, and a refusal is the right status and a counted metric.
//!
//! Over HTTP and RTSP, against the real `streamer` on loopback with content installed by the
//! real `install-content`: path traversal in every encoding (`..`, `%2e%2e` in any case,
//! `%2f`, `%5c`, backslashes, overlong UTF-8 `%c0%ae`, double encoding `%252e`, NUL, empty
//! segments, absolute-form targets naming another host, ids the store refuses), oversized
//! request lines (414) and heads (431 over HTTP, 413 over RTSP), too many headers, unknown
//! methods (501), known methods a route does not take (405 with `Allow`). A canary file placed
//! in the store folder (beside the nodes' folders) must never come back, and after every
//! refusal the server still serves a normal request, byte for byte.

use rtsp_proto::message::Method;
use sluice_tests::bin_path::workspace_root;
use sluice_tests::http_client;
use sluice_tests::prometheus::{self, Page};
use sluice_tests::rtsp_client::Client;
use sluice_tests::server::{self, Server};
use sluice_tests::store;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const CANARY: &str = "SLUICE-CANARY-must-never-be-served";
const IO_TIMEOUT: Duration = Duration::from_secs(15);

struct Setup {
    store: TempDir,
    srv: Server,
    rtsp: SocketAddr,
    file: Vec<u8>,
}

/// The demo clip installed as `demo`, canaries planted in and beside the store, a streamer.
fn start() -> Setup {
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let store = store::with_content("sluice-valid-", &src, "demo");
    let copy = store::installed(store.path(), "demo");
    let file = fs::read(copy.join("content.ts")).expect("read content.ts");
    // Files a traversal would reach: in the store root, in a node folder, and in a content's
    // own folder under a name no route serves.
    for p in [
        store.path().join("canary.ts"),
        store.path().join("secret"),
        copy.parent().expect("node folder").join("canary.ts"),
        copy.join("canary.ts"),
    ] {
        fs::write(p, CANARY).expect("write canary");
    }
    let srv = Server::start(
        server::streamer_command(store.path(), &[]),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    Setup {
        store,
        srv,
        rtsp,
        file,
    }
}

/// A raw response: status, head text, body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `bytes` as they are and reads the answer until the server closes (requests carry
/// `Connection: close`, and refusals close).
fn raw(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    // The server may refuse before reading everything: a failed write is not the test's end.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut chunk = [0u8; 64 << 10];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => {
                assert!(
                    !out.is_empty(),
                    "no answer to {:?}: {e}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
                );
                break;
            }
        }
    }
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {head:?}"));
    Raw {
        status,
        head,
        body: out[split + 4..].to_vec(),
    }
}

/// `start` (a request line and any headers) followed by `n` header lines with `len`-byte
/// values and the blank line.
fn padded(start: &str, n: usize, len: usize) -> Vec<u8> {
    let mut out = start.as_bytes().to_vec();
    for i in 0..n {
        out.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "b".repeat(len)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn get_raw(addr: SocketAddr, target: &str) -> Raw {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn metrics(addr: SocketAddr) -> Page {
    let r = http_client::must_get(addr, "/metrics");
    prometheus::parse(&r.text()).expect("metrics parse")
}

/// The refusal reasons of paths that try to leave the store, the same over HTTP and RTSP.
const PATH_REASONS: &[&str] = &[
    "traversal",
    "encoded_separator",
    "backslash",
    "non_ascii",
    "double_encoding",
    "nul",
    "empty_segment",
];

/// Each of `reasons` was counted at least once in the counter family `name`.
fn assert_counted(page: &Page, name: &str, reasons: &[&str]) {
    for reason in reasons {
        assert!(
            page.value(name, &[("reason", reason)]) >= Some(1.0),
            "{name}: no refusal counted for {reason}"
        );
    }
}

/// The server still answers a normal request after a refusal.
fn still_serves(addr: SocketAddr, after: &str) {
    let r = http_client::must_get(addr, "/content/demo/index.m3u8");
    assert_eq!(r.status, 200, "after {after}: index.m3u8 {}", r.status);
}

/// (target, expected status) for every traversal encoding over HTTP.
const HTTP_TRAVERSALS: &[(&str, u16)] = &[
    ("/content/../canary.ts", 400),
    ("/content/../../secret", 400),
    ("/content/demo/../../canary.ts", 400),
    ("/content/./demo.ts", 400),
    ("/content/%2e%2e/canary.ts", 400),
    ("/content/%2E%2e/canary.ts", 400),
    ("/content/%2e%2E%2fcanary.ts", 400),
    ("/content/.%2e/secret", 400),
    ("/content/..%2fcanary.ts", 400),
    ("/content/..%2Fsecret", 400),
    ("/content/demo%2fcanary.ts", 400),
    ("/content/..%5ccanary.ts", 400),
    ("/content/..\\canary.ts", 400),
    ("/content/demo\\canary.ts", 400),
    ("/content/%c0%ae%c0%ae/canary.ts", 400),
    ("/content/%c0%ae%c0%ae%c0%afsecret", 400),
    ("/content/%e0%80%ae%e0%80%ae/secret", 400),
    ("/content/%252e%252e/canary.ts", 400),
    ("/content/%252e%252e%252fsecret", 400),
    ("/content/demo%00.ts", 400),
    ("/content/demo.ts%00.m3u8", 400),
    ("/content/demo/canary.ts%00", 400),
    ("//secret", 400),
    ("/content//canary.ts", 400),
    ("/content/%2fsecret", 400),
    ("http://evil.example/content/demo.ts", 400),
    ("http://evil.example/../secret", 400),
    ("file:///etc/passwd", 400),
    ("/api/v1/contents/..%2f..%2fsecret", 400),
    ("/api/v1/contents/%2e%2e", 400),
    ("/content/canary.ts", 404),
    ("/content/demo/canary.ts", 404),
    ("/content/.hidden.ts", 404),
    ("/content/-demo.ts", 404),
    ("/content/%2e.ts", 404),
    ("/content/demo/store.json", 404),
    ("/api/v1/contents/.demo", 404),
];

#[test]
fn http_refuses_traversal_limits_and_methods_and_keeps_serving() {
    let s = start();
    let addr = s.srv.addr;
    let mut refused = 0.0;

    for &(target, want) in HTTP_TRAVERSALS {
        let r = get_raw(addr, target);
        assert_eq!(
            r.status,
            want,
            "GET {target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains(CANARY), "GET {target} served the canary");
        assert!(
            r.body.len() < 4096,
            "GET {target}: a body of {} bytes",
            r.body.len()
        );
        still_serves(addr, target);
        if want == 400 {
            refused += 1.0;
        }
    }
    // Proof that content still comes through the catalog: the same bytes for an encoded but
    // harmless path and for an absolute-form target naming this server.
    let r = get_raw(addr, "/content/d%65mo.ts");
    assert_eq!(r.status, 200);
    assert!(r.body == s.file, "/content/d%65mo.ts is not content.ts");
    let r = get_raw(addr, &format!("http://{addr}/content/demo.ts"));
    assert_eq!(r.status, 200);
    assert!(r.body == s.file, "absolute-form is not content.ts");

    // Limits: a long request line (no end in sight) is 414; a large head, one large header
    // line, or too many header lines are 431; a large body is 413. Each closes the connection.
    let mut line = b"GET /".to_vec();
    line.resize(9000, b'a');
    let limits: [(Vec<u8>, u16, &str); 6] = [
        (line, 414, "a 9000-byte request line"),
        (
            format!("GET /content/{}.ts HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(),
            414,
            "a 9000-byte URI",
        ),
        (
            padded("GET / HTTP/1.1\r\nHost: x\r\n", 80, 1000),
            431,
            "an 80 KB head",
        ),
        (
            padded("GET / HTTP/1.1\r\n", 1, 9000),
            431,
            "a 9 KB header line",
        ),
        (
            padded("GET / HTTP/1.1\r\n", 101, 1),
            431,
            "101 header lines",
        ),
        (
            b"PUT /admin/nodes/n1/knobs HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n".to_vec(),
            413,
            "a 5 MB body",
        ),
    ];
    for (bytes, want, what) in &limits {
        assert_eq!(raw(addr, bytes).status, *want, "{what}");
        still_serves(addr, what);
    }
    refused += limits.len() as f64;

    // Unknown methods are 501; known methods a route does not take are 405 with Allow.
    for req in [
        "BREW /content/demo.ts HTTP/1.1\r\n\r\n",
        "get /content/demo.ts HTTP/1.1\r\n\r\n",
        "PROPFIND / HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(raw(addr, req.as_bytes()).status, 501, "{req:?}");
        still_serves(addr, req);
        refused += 1.0;
    }
    for (method, path) in [
        ("POST", "/content/demo.ts"),
        ("DELETE", "/content/demo/index.m3u8"),
        ("PUT", "/api/v1/contents"),
        ("DELETE", "/api/v1/contents/demo"),
        ("POST", "/metrics"),
        ("OPTIONS", "/"),
    ] {
        let r = raw(
            addr,
            format!("{method} {path} HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD"),
            "{method} {path}: {}",
            r.head
        );
        still_serves(addr, method);
    }

    // Every refusal before work was counted, by reason.
    let page = metrics(addr);
    let total = page.sum("sluice_http_refused_total", &[]);
    assert!(total >= refused, "refused_total {total} < {refused}");
    assert_counted(&page, "sluice_http_refused_total", PATH_REASONS);
    assert_counted(
        &page,
        "sluice_http_refused_total",
        &[
            "foreign_host",
            "bad_target",
            "bad_path",
            "request_line_too_long",
            "head_too_large",
            "header_too_large",
            "too_many_headers",
            "body_too_large",
            "unknown_method",
        ],
    );
    let r = http_client::must_get(addr, "/content/demo.ts");
    assert!(r.status == 200 && r.body == s.file, "the TS at the end");
    drop(s.store);
}

/// RTSP request URIs for every traversal encoding, and the status they must get.
const RTSP_TRAVERSALS: &[(&str, u16)] = &[
    ("/../secret", 400),
    ("/demo/../../secret", 400),
    ("/%2e%2e/secret", 400),
    ("/%2E%2e/demo", 400),
    ("/..%2fsecret", 400),
    ("/demo%2ftrack1", 400),
    ("/..%5csecret", 400),
    ("/..\\secret", 400),
    ("/%c0%ae%c0%ae/secret", 400),
    ("/%252e%252e/secret", 400),
    ("/demo%00", 400),
    ("//secret", 400),
    ("/canary.ts", 404),
    ("/.demo", 404),
    ("/demo/canary.ts", 404),
    ("/secret", 404),
];

#[test]
fn rtsp_refuses_traversal_limits_and_unknown_methods_and_keeps_serving() {
    let s = start();
    let base = format!("rtsp://{}", s.rtsp);
    let mut c = Client::connect(s.rtsp, "demo").expect("connect");
    for &(path, want) in RTSP_TRAVERSALS {
        let uri = format!("{base}{path}");
        let r = c.request(Method::Describe, &uri, &[]);
        assert_eq!(r.status, want, "DESCRIBE {uri}");
        assert!(!String::from_utf8_lossy(&r.body).contains(CANARY));
        let r = c.request(
            Method::Setup,
            &format!("{uri}/track1"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        );
        assert!(
            r.status == want || r.status == 400 || r.status == 404,
            "SETUP {uri}/track1: {}",
            r.status
        );
        // The same connection still describes the real content.
        let ok = c.request(Method::Describe, &format!("{base}/demo"), &[]);
        assert_eq!(ok.status, 200, "DESCRIBE after {uri}");
    }
    // A URI with a harmless escape names the content.
    let r = c.request(Method::Describe, &format!("{base}/d%65mo"), &[]);
    assert_eq!(r.status, 200);
    // Unknown methods: 501, the connection goes on.
    let r = c.request(Method::Other("BREW".into()), &format!("{base}/demo"), &[]);
    assert_eq!(r.status, 501);
    assert_eq!(c.request(Method::Options, "*", &[]).status, 200);

    // Framing limits close the connection with 414/413; a new connection plays.
    let over = |bytes: &[u8], want: u16, what: &str| {
        let mut c = Client::connect(s.rtsp, "demo").expect("connect");
        c.send_raw(bytes).expect("send");
        let r = c.reply().unwrap_or_else(|| panic!("no reply to {what}"));
        assert_eq!(r.status, want, "{what}");
        let mut fresh = Client::connect(s.rtsp, "demo").expect("connect");
        let r = fresh.request(Method::Describe, &format!("{base}/demo"), &[]);
        assert_eq!(r.status, 200, "DESCRIBE after {what}");
    };
    let mut line = format!("DESCRIBE {base}/").into_bytes();
    line.resize(9000, b'a');
    over(&line, 414, "a 9000-byte request line");
    let head = padded(
        &format!("DESCRIBE {base}/demo RTSP/1.0\r\nCSeq: 1\r\n"),
        20,
        1000,
    );
    over(&head, 413, "a 20 KB head");
    let many = padded(
        &format!("DESCRIBE {base}/demo RTSP/1.0\r\nCSeq: 1\r\n"),
        70,
        1,
    );
    over(&many, 413, "70 header lines");
    over(
        format!("DESCRIBE {base}/de\0mo RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes(),
        400,
        "a raw NUL in the URI",
    );

    // And a whole session still plays after all that.
    let mut c = Client::connect(s.rtsp, "demo").expect("connect");
    c.setup(true);
    let play = c.request(
        Method::Play,
        &format!("{base}/demo"),
        &[("Range", "npt=0-")],
    );
    assert_eq!(play.status, 200, "PLAY");
    let (packets, _) = c.collect(Instant::now() + Duration::from_secs(2));
    assert!(!packets.is_empty(), "no media after the refusals");

    let page = metrics(s.srv.addr);
    assert_counted(&page, "sluice_rtsp_refused_total", PATH_REASONS);
    assert_counted(
        &page,
        "sluice_rtsp_refused_total",
        &[
            "bad_id",
            "unknown_method",
            "request_line_too_long",
            "head_too_large",
            "too_many_headers",
        ],
    );
}
