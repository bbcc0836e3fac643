//! End-to-end tests of the `storage-node` binary (issue 3): one physical host's virtual nodes
//! served over HTTP byte ranges, with health and admin endpoints, reading through io_uring.
//!
//! Each test installs a fixture with the real `install-content` into a store of its own, starts
//! `storage-node` on a loopback port of the kernel's choosing, and judges what it serves against
//! the installed files byte for byte with a tiny HTTP client of our own.

use media_fixtures::Fixture;
use serde_json::{Value, json};
use sluice_tests::bin_path::{install_content_cmd, storage_node};
use sluice_tests::http_client::{self, must_get, must_put_json};
use sluice_tests::ranges::{Rng, random_range};
use sluice_tests::report::Report;
use sluice_tests::server::{self, Server};
use sluice_tests::{process, store};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

const ID: &str = "clip";
const HOST: &str = "h1";
const NODES: [&str; 2] = ["a1", "a2"];

/// A store with one host of two nodes and the faststart fixture installed as `clip` (one copy).
/// Returns the store, the node holding the copy, and the copy's folder.
fn store_with_clip() -> (TempDir, String, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("sluice-storage-node-")
        .tempdir()
        .expect("tempdir");
    let topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [{"name": HOST, "nodes": NODES}],
    });
    fs::write(dir.path().join("store.json"), topology.to_string()).expect("write store.json");
    let clip = Fixture::H264AacFaststart.path().expect("fixture");
    let out = process::run(
        install_content_cmd(dir.path())
            .arg("add")
            .arg(&clip)
            .args(["--id", ID]),
    );
    assert!(out.success(), "installing the fixture failed\n{out}");
    let copy = store::installed(dir.path(), ID);
    let node = copy
        .parent()
        .and_then(Path::file_name)
        .expect("STORE/NODE/ID")
        .to_string_lossy()
        .into_owned();
    (dir, node, copy)
}

/// `storage-node --store STORE --host h1 --listen 127.0.0.1:0`, optionally under a wrapper
/// (`strace …`).
fn start_node(store: &Path, wrapper: &[&str]) -> Server {
    let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
        let mut c = server::bounded(first);
        c.args(rest).arg(storage_node());
        c
    } else {
        server::bounded(storage_node())
    };
    cmd.arg("--store")
        .arg(store)
        .args(["--host", HOST, "--listen", "127.0.0.1:0"]);
    Server::start(cmd, "storage-node: ")
}

fn file_path(node: &str, rel: &str) -> String {
    format!("/nodes/{node}/{ID}/{rel}")
}

#[test]
fn serves_files_whole_and_by_range_byte_exact() {
    let (dir, node, copy) = store_with_clip();
    let srv = start_node(dir.path(), &[]);
    let addr = srv.addr;
    let mut report = Report::new(format!("storage-node on {addr}"));

    // The ready line names the host and its nodes.
    let ready = srv.stdout_lines().first().cloned().unwrap_or_default();
    report.check(
        ready.contains(HOST) && NODES.iter().all(|n| ready.contains(n)),
        || format!("ready line {ready:?} should name host {HOST} and nodes {NODES:?}"),
    );

    // Every file of the content, whole.
    for name in store::CONTENT_FILES {
        let want = fs::read(copy.join(name)).expect("read installed file");
        let r = must_get(addr, &file_path(&node, name));
        report.check(r.status == 200, || {
            format!("GET {name}: status {} (expected 200)", r.status)
        });
        report.check(r.body == want, || {
            format!(
                "GET {name}: body of {} bytes differs from the installed file of {} bytes",
                r.body.len(),
                want.len()
            )
        });
        report.check(
            r.header("content-length") == Some(want.len().to_string().as_str()),
            || {
                format!(
                    "GET {name}: Content-Length {:?}, expected {}",
                    r.header("content-length"),
                    want.len()
                )
            },
        );
    }

    let file = fs::read(copy.join("content.ts")).expect("read content.ts");
    let size = file.len() as u64;
    let ts = file_path(&node, "content.ts");

    // HEAD: same length, no body.
    match http_client::open(addr, "HEAD", &ts, &[], &[]).and_then(|x| {
        let (status, len, ranges) = (
            x.status,
            x.header("content-length").map(str::to_owned),
            x.header("accept-ranges").map(str::to_owned),
        );
        Ok((status, len, ranges, x.bytes_after_body()?))
    }) {
        Ok((status, len, ranges, extra)) => {
            report.check(status == 200, || format!("HEAD: status {status}"));
            report.check(len.as_deref() == Some(size.to_string().as_str()), || {
                format!("HEAD: Content-Length {len:?}, expected {size}")
            });
            report.check(ranges.as_deref() == Some("bytes"), || {
                format!("HEAD: Accept-Ranges {ranges:?}, expected \"bytes\"")
            });
            report.check(extra.is_empty(), || {
                format!("HEAD: {} body bytes were sent", extra.len())
            });
        }
        Err(e) => report.fail(format!("HEAD {ts}: {e}")),
    }

    // Random ranges, byte-exact.
    let mut rng = Rng::new(0x5eed_0003);
    for _ in 0..100 {
        let case = random_range(&mut rng, size);
        let r = match http_client::request(addr, "GET", &ts, &[("Range", &case.header)], &[]) {
            Ok(r) => r,
            Err(e) => {
                report.fail(format!("GET {ts} Range: {}: {e}", case.header));
                continue;
            }
        };
        let ok = r.status == 206
            && r.header("content-range") == Some(case.content_range(size).as_str())
            && r.body == case.slice(&file);
        report.check(ok, || {
            format!(
                "Range: {} of {size} bytes: expected 206, Content-Range {:?} and bytes {}..={}; \
                 got {} with Content-Range {:?} and {} bytes{}",
                case.header,
                case.content_range(size),
                case.start,
                case.last,
                r.status,
                r.header("content-range"),
                r.body.len(),
                if r.body.len() == case.slice(&file).len() {
                    " (different bytes)"
                } else {
                    ""
                }
            )
        });
    }

    // Unsatisfiable ranges.
    for bad in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 10, size + 20),
    ] {
        match http_client::request(addr, "GET", &ts, &[("Range", &bad)], &[]) {
            Ok(r) => {
                report.check(
                    r.status == 416
                        && r.header("content-range") == Some(format!("bytes */{size}").as_str()),
                    || {
                        format!(
                            "Range: {bad}: expected 416 with Content-Range \"bytes */{size}\", got \
                             {} with {:?}",
                            r.status,
                            r.header("content-range")
                        )
                    },
                );
            }
            Err(e) => report.fail(format!("GET {ts} Range: {bad}: {e}")),
        }
    }

    // What is not there.
    let other = NODES.iter().find(|n| **n != node).expect("two nodes");
    for (path, what) in [
        (file_path(other, "content.ts"), "a node without the content"),
        (format!("/nodes/zz9/{ID}/content.ts"), "an unknown node"),
        (file_path(&node, "nope.ts"), "an unknown file"),
    ] {
        let r = must_get(addr, &path);
        report.check(r.status == 404, || {
            format!("GET {path} ({what}): status {} (expected 404)", r.status)
        });
    }
    report.finish();
}

#[test]
fn admin_crash_gives_503_health_tells_and_recover_serves_again() {
    let (dir, node, copy) = store_with_clip();
    let srv = start_node(dir.path(), &[]);
    let addr = srv.addr;
    let file = fs::read(copy.join("content.ts")).expect("read content.ts");
    let ts = file_path(&node, "content.ts");
    let knobs = format!("/admin/nodes/{node}/knobs");
    let mut report = Report::new(format!("storage-node on {addr}"));

    let health = |report: &mut Report, when: &str| -> Option<Value> {
        let r = must_get(addr, "/health");
        if r.status != 200 {
            report.fail(format!("GET /health {when}: status {}", r.status));
            return None;
        }
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) => Some(v),
            Err(e) => {
                report.fail(format!("GET /health {when}: not JSON ({e}): {}", r.text()));
                None
            }
        }
    };
    let node_up = |v: &Value, name: &str| -> Option<bool> {
        v["nodes"].as_array()?.iter().find(|n| n["name"] == name)?["up"].as_bool()
    };

    if let Some(v) = health(&mut report, "at start") {
        report.check(v["host"] == HOST, || {
            format!("/health host is {}, expected {HOST:?}", v["host"])
        });
        let mut names: Vec<&str> = v["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["name"].as_str()).collect())
            .unwrap_or_default();
        names.sort();
        report.check(names == NODES, || {
            format!("/health lists nodes {names:?}, expected {NODES:?}: {v}")
        });
        for n in NODES {
            report.check(node_up(&v, n) == Some(true), || {
                format!("/health at start: node {n} should be up: {v}")
            });
        }
    }

    // Crash the node holding the copy.
    must_put_json(addr, &knobs, &json!({"crashed": true}));
    let state = must_get(addr, &knobs);
    let state: Value = serde_json::from_slice(&state.body).unwrap_or_default();
    report.check(state["crashed"] == true, || {
        format!("GET {knobs} after the crash: {state} (expected crashed: true)")
    });
    let r = must_get(addr, &ts);
    report.check(r.status == 503, || {
        format!(
            "GET {ts} on a crashed node: status {} (expected 503)",
            r.status
        )
    });
    if let Some(v) = health(&mut report, "after the crash") {
        report.check(node_up(&v, &node) == Some(false), || {
            format!("/health after crashing {node}: it should be down: {v}")
        });
        let other = NODES.iter().find(|n| **n != node).expect("two nodes");
        report.check(node_up(&v, other) == Some(true), || {
            format!("/health after crashing {node}: {other} should stay up: {v}")
        });
    }

    // Recover: `{}` is the healthy default state.
    must_put_json(addr, &knobs, &json!({}));
    let r = must_get(addr, &ts);
    report.check(r.status == 200 && r.body == file, || {
        format!(
            "GET {ts} after recovering: status {} and {} bytes (expected 200 and the file's {} \
             bytes)",
            r.status,
            r.body.len(),
            file.len()
        )
    });
    if let Some(v) = health(&mut report, "after recovering") {
        report.check(node_up(&v, &node) == Some(true), || {
            format!("/health after recovering {node}: it should be up: {v}")
        });
    }

    // An injected EIO range fails reads that touch it, and only those.
    let eio_start = 188 * 100;
    let rel = format!("{ID}/content.ts");
    must_put_json(
        addr,
        &knobs,
        &json!({"eio": [{"path": rel, "start": eio_start, "end": eio_start + 188}]}),
    );
    let clean = format!("bytes=0-{}", eio_start - 1);
    match http_client::request(addr, "GET", &ts, &[("Range", &clean)], &[]) {
        Ok(r) => report.check(r.status == 206 && r.body == file[..eio_start], || {
            format!(
                "Range {clean} before an EIO range at {eio_start}: status {}, {} bytes \
                     (expected 206 and the file's bytes)",
                r.status,
                r.body.len()
            )
        }),
        Err(e) => report.check(false, || format!("Range {clean} before the EIO range: {e}")),
    };
    let whole = http_client::get(addr, &ts);
    report.check(
        !matches!(&whole, Ok(r) if r.status == 200 && r.body == file),
        || {
            format!(
                "GET {ts} across an injected EIO range at {eio_start} returned the whole file: \
                 the fault was not applied"
            )
        },
    );
    must_put_json(addr, &knobs, &json!({}));
    report.finish();
}

/// The node's reads go through io_uring: `strace -f -e trace=io_uring_enter` on the serving
/// process logs `io_uring_enter` calls once GETs have been served.
#[test]
fn reads_go_through_io_uring() {
    let (dir, node, copy) = store_with_clip();
    let log = dir.path().join("strace.log");
    let log_arg = log.display().to_string();
    let mut srv = start_node(
        dir.path(),
        &["strace", "-f", "-e", "trace=io_uring_enter", "-o", &log_arg],
    );
    let addr = srv.addr;
    let file = fs::read(copy.join("content.ts")).expect("read content.ts");
    let ts = file_path(&node, "content.ts");
    let count = |text: &str| {
        text.lines()
            .filter(|l| l.contains("io_uring_enter("))
            .count()
    };
    let before = count(&fs::read_to_string(&log).unwrap_or_default());
    let mut report = Report::new(format!("storage-node under strace on {addr}"));
    for i in 0..5 {
        let r = must_get(addr, &ts);
        report.check(r.status == 200 && r.body == file, || {
            format!(
                "GET #{i} under strace: status {}, {} bytes (expected 200 and {} bytes)",
                r.status,
                r.body.len(),
                file.len()
            )
        });
    }
    // Let strace write its lines, then stop it (it passes SIGTERM on to storage-node).
    std::thread::sleep(Duration::from_millis(200));
    let stopped = srv.stop();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let after = count(&text);
    report.check(after > before && after > 0, || {
        format!(
            "strace logged {before} io_uring_enter calls before the GETs and {after} after: the \
             reads did not go through io_uring\n--- storage-node stderr ---\n{}\n--- strace log \
             (first 40 lines) ---\n{}",
            stopped.stderr,
            text.lines().take(40).collect::<Vec<_>>().join("\n")
        )
    });
    report.finish();
}
