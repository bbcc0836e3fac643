//! End-to-end tests of the streamer's HTTP face (issue 4, DESIGN.md §3): `/content/ID.ts` with
//! byte ranges and conditional requests, the HLS playlists, the catalog and the metrics, replica
//! failover in the middle of a response, many clients at once, and the embedded default.
//!
//! Each test installs content with the real `install-content` into a store of its own, starts the
//! real `streamer` on a loopback port of the kernel's choosing, and drives it with real clients
//! (ffprobe/ffmpeg, GStreamer, VLC) and a tiny HTTP client of our own
//! (`sluice_tests::http_client`) that compares bodies byte for byte with the installed files.
//! Faults are injected through the streamer's loopback-only admin endpoint
//! (`PUT /admin/nodes/NODE/knobs`).
//!
//! Nothing is skipped: a missing client fails its test and names `scripts/ensure-tools`. Every
//! child process and every wait is bounded.

use media_fixtures::Fixture;
use serde_json::{Value, json};
use sluice_tests::bin_path::{install_content_cmd, streamer, workspace_root};
use sluice_tests::http_client::{self, Response, must_get, must_put_json};
use sluice_tests::process::{self, Output};
use sluice_tests::prometheus::{self, Page};
use sluice_tests::ranges::{Rng, random_range};
use sluice_tests::report::Report;
use sluice_tests::server::{self, Server};
use sluice_tests::{ffprobe, hls, store};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How far a client's idea of the duration may be from the manifest's (the last frame's
/// duration and the audio tail make players report a little more than the video's span).
const DURATION_SLACK_S: f64 = 0.25;

/// How long a player may take over a few seconds of content (VLC plays in real time).
const PLAYER_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a condition that follows from heartbeats (a node marked down) may take to show.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An installed content in a store of its own.
struct Content {
    store: TempDir,
    id: String,
    /// `content.ts` as installed.
    file: Vec<u8>,
    /// `manifest.json` of the first copy.
    manifest: Value,
}

impl Content {
    fn size(&self) -> u64 {
        self.file.len() as u64
    }

    fn duration(&self) -> f64 {
        self.manifest["duration_seconds"].as_f64().unwrap_or(0.0)
    }

    /// The manifest's replicas as (node, host), main first.
    fn replicas(&self) -> Vec<(String, String)> {
        self.manifest["replicas"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["node"].as_str().unwrap_or_default().to_string(),
                            r["host"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node the streamer reads first.
    fn main_node(&self) -> String {
        self.replicas()
            .first()
            .map(|r| r.0.clone())
            .expect("the manifest names a main replica")
    }

    /// An installed file of the first copy.
    fn installed_file(&self, name: &str) -> Vec<u8> {
        let copy = store::copies(self.store.path(), &self.id)
            .into_iter()
            .next()
            .expect("an installed copy");
        fs::read(copy.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    fn ts_path(&self) -> String {
        format!("/content/{}.ts", self.id)
    }
}

fn fixture_clip() -> PathBuf {
    Fixture::H264AacFaststart
        .path()
        .unwrap_or_else(|e| panic!("cannot make the fixture: {e}"))
}

/// The 12 s demo clip (≈480 KB once installed: two 256 KiB storage reads, so a throttled main
/// node holds the second half of a response back).
fn demo_clip() -> PathBuf {
    workspace_root().join("media-fixtures/demo/demo.mp4")
}

/// At least the streamer's body step (`streamer::send::CHUNK` at most; a spliced step is one
/// 64 KiB pipe's worth, less): a fault test's file spans several.
const BODY_STEP: u64 = 1 << 20;

/// A ~3 MiB clip (4 s of noisy 720p at 6 Mbit/s), made once in the target folder: fault tests need a
/// body of several steps, so that a fault can land after bytes of the main copy went out.
fn big_clip() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("http-big-4s.mp4");
        if !path.exists() {
            // Made beside and renamed in: a run killed mid-encode leaves no half clip.
            let tmp = dir.join(format!("http-big-4s.{}.mp4", std::process::id()));
            ffprobe::encode_noisy_720p(&tmp, 4);
            fs::rename(&tmp, &path).expect("rename the big clip");
        }
        path
    })
    .clone()
}

fn new_store() -> TempDir {
    tempfile::Builder::new()
        .prefix("sluice-http-")
        .tempdir()
        .expect("tempdir")
}

/// `install-content --store STORE add SRC --id ID --replicas N`, which must succeed.
fn install(store: &Path, src: &Path, id: &str, replicas: u32) {
    let out = process::run(install_content_cmd(store).arg("add").arg(src).args([
        "--id",
        id,
        "--replicas",
        &replicas.to_string(),
    ]));
    assert!(out.success(), "installing {} failed\n{out}", src.display());
}

fn loaded(store: TempDir, id: &str) -> Content {
    let copy = store::copies(store.path(), id)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no installed copy of {id}"));
    let file = fs::read(copy.join("content.ts")).expect("read content.ts");
    let manifest: Value =
        serde_json::from_slice(&fs::read(copy.join("manifest.json")).expect("read manifest"))
            .expect("manifest is JSON");
    Content {
        store,
        id: id.to_string(),
        file,
        manifest,
    }
}

/// `src` installed as `id` into a new store with the default topology (one host, two nodes).
fn one_host(src: &Path, id: &str) -> Content {
    let store = new_store();
    install(store.path(), src, id, 1);
    loaded(store, id)
}

/// A store of two hosts with one node each (`h1`: `a1`, `h2`: `b1`).
fn two_host_store() -> TempDir {
    let store = new_store();
    let topology = json!({
        "format": "sluice-store",
        "version": 1,
        "hosts": [{"name": "h1", "nodes": ["a1"]}, {"name": "h2", "nodes": ["b1"]}],
    });
    fs::write(store.path().join("store.json"), topology.to_string()).expect("write store.json");
    store
}

/// `src` installed as `id` with two replicas on two hosts.
fn two_hosts(src: &Path, id: &str) -> Content {
    let store = two_host_store();
    install(store.path(), src, id, 2);
    let c = loaded(store, id);
    assert_eq!(
        c.replicas().len(),
        2,
        "the manifest should list two replicas: {}",
        c.manifest
    );
    c
}

/// `streamer --store STORE` on loopback ports, ready.
fn start_streamer(store: &Path, extra: &[&str]) -> Server {
    Server::start(server::streamer_command(store, extra), "streamer: serving ")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// `GET /metrics`, parsed.
fn metrics(addr: SocketAddr) -> Page {
    let r = must_get(addr, "/metrics");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    prometheus::parse(&r.text()).unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}"))
}

/// Polls `/metrics` until `ok` holds (at most `limit`); returns the last page and whether it held.
fn metrics_until(addr: SocketAddr, limit: Duration, ok: impl Fn(&Page) -> bool) -> (Page, bool) {
    let deadline = Instant::now() + limit;
    loop {
        let page = metrics(addr);
        if ok(&page) {
            return (page, true);
        }
        if Instant::now() >= deadline {
            return (page, false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const REQUESTS: &str = "sluice_http_requests_total";
const BYTES: &str = "sluice_http_response_bytes_total";
const FAILOVERS: &str = "sluice_replica_failovers_total";

/// Requests of `route` answered with a 2xx status.
fn ok_requests(p: &Page, route: &str) -> f64 {
    p.matching(REQUESTS, &[("route", route)])
        .filter(|s| s.labels.get("status").is_some_and(|st| st.starts_with('2')))
        .map(|s| s.value)
        .sum()
}

/// A client program on `PATH`, or a panic that says how to get it.
use sluice_tests::vlc::need;

/// The last `out_time_us` of ffmpeg's `-progress` output, in seconds, and whether it ended.
fn progress(out: &Output) -> (Option<f64>, bool) {
    let time = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
        .map(|us| us / 1e6);
    (time, out.stdout.lines().any(|l| l.trim() == "progress=end"))
}

/// `ffmpeg -v error -nostats [PRE…] -i URL [POST…] -c copy -f null -progress pipe:1 -`.
fn ffmpeg_copy(pre: &[&str], input: &str, post: &[&str]) -> Output {
    process::run(
        Command::new(ffprobe::tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-nostats"])
            .args(pre)
            .args(["-i", input])
            .args(post)
            .args(["-c", "copy", "-f", "null", "-progress", "pipe:1", "-"]),
    )
}

/// Total bytes of the segments of the content's `media.m3u8` (what a player that plays to the
/// end must fetch at least).
fn segment_bytes(c: &Content) -> u64 {
    let text = String::from_utf8(c.installed_file("media.m3u8")).expect("playlist is text");
    let pl = hls::parse(&text).unwrap_or_else(|e| panic!("media.m3u8: {e}"));
    pl.segments
        .iter()
        .map(|s| s.byte_range.map_or(c.size(), |(len, _)| len))
        .sum()
}

/// A byte-exactness message: sizes and the first differing offset.
fn diff(got: &[u8], want: &[u8]) -> String {
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    if got.len() == want.len() && got == want {
        "identical".into()
    } else {
        format!(
            "got {} bytes, expected {}; first difference at byte {first}",
            got.len(),
            want.len()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

/// ffprobe reads `/content/ID.ts` whole; ffmpeg seeks into it with `-ss`; our client downloads
/// it byte-exact.
#[test]
fn ffprobe_and_ffmpeg_read_the_ts_whole_and_with_seeks() {
    let c = one_host(&fixture_clip(), "clip");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let ts = url(addr, &c.ts_path());
    let mut report = Report::new(format!("{ts} ({})", srv.command()));

    let probe = ffprobe::probe(Path::new(&ts));
    report.check(probe.format_name == "mpegts", || {
        format!("ffprobe format {:?}, expected mpegts", probe.format_name)
    });
    report.check(
        probe
            .duration
            .is_some_and(|d| (d - c.duration()).abs() <= DURATION_SLACK_S),
        || {
            format!(
                "ffprobe duration {:?}, manifest says {} s",
                probe.duration,
                c.duration()
            )
        },
    );
    let codecs: Vec<(&str, &str)> = probe
        .av_streams()
        .iter()
        .map(|s| (s.codec_type.as_str(), s.codec_name.as_str()))
        .collect();
    report.check(codecs == [("video", "h264"), ("audio", "aac")], || {
        format!("ffprobe streams {codecs:?}, expected h264 video and aac audio")
    });

    // Seeks: ffmpeg reads one second from 2 s and from 4 s through byte ranges.
    for at in ["2", "4"] {
        let before = metrics(addr);
        let out = ffmpeg_copy(&["-ss", at], &ts, &["-t", "1"]);
        let after = metrics(addr);
        report.check(out.success() && out.stderr.trim().is_empty(), || {
            format!("ffmpeg -ss {at} -t 1 should succeed silently\n{out}")
        });
        let (time, ended) = progress(&out);
        report.check(
            ended && time.is_some_and(|t| (0.5..=1.5).contains(&t)),
            || {
                format!(
                    "ffmpeg -ss {at} -t 1 copied {time:?} s (expected about 1 s, ended: {ended})"
                )
            },
        );
        let ranged = after.sum(REQUESTS, &[("route", "content_ts"), ("status", "206")])
            - before.sum(REQUESTS, &[("route", "content_ts"), ("status", "206")]);
        report.check(ranged >= 2.0, || {
            format!("ffmpeg -ss {at}: only {ranged} range requests (206) were served")
        });
    }

    // The whole file, byte for byte, by our own client.
    let r = must_get(addr, &c.ts_path());
    report.check(r.status == 200, || {
        format!("GET {}: status {}", c.ts_path(), r.status)
    });
    report.check(r.body == c.file, || {
        format!("GET {}: body {}", c.ts_path(), diff(&r.body, &c.file))
    });
    report.check(r.header("content-type") == Some("video/mp2t"), || {
        format!(
            "Content-Type {:?}, expected video/mp2t",
            r.header("content-type")
        )
    });
    report.finish();
}

/// ffmpeg and GStreamer (`souphttpsrc ! tsdemux`, `souphttpsrc ! hlsdemux`) play the content
/// through to the end, over the TS URL and the HLS playlist.
#[test]
fn ffmpeg_and_gstreamer_play_to_the_end() {
    let gst = need("gst-launch-1.0");
    let c = one_host(&fixture_clip(), "clip");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let hls_url = url(addr, &format!("/content/{}/index.m3u8", c.id));
    let ts_url = url(addr, &c.ts_path());
    let segments = segment_bytes(&c);
    let mut report = Report::new(format!("players against {}", srv.command()));

    // ffmpeg over HLS: every segment, and the time it pulled is the content's duration.
    let before = metrics(addr);
    let out = ffmpeg_copy(&[], &hls_url, &[]);
    let after = metrics(addr);
    report.check(out.success() && out.stderr.trim().is_empty(), || {
        format!("ffmpeg should play {hls_url} silently\n{out}")
    });
    let (time, ended) = progress(&out);
    report.check(
        ended && time.is_some_and(|t| (t - c.duration()).abs() <= DURATION_SLACK_S),
        || {
            format!(
                "ffmpeg pulled {time:?} s of {hls_url} (ended: {ended}); the content is {} s",
                c.duration()
            )
        },
    );
    let pulled = after.sum(BYTES, &[("route", "content_ts")])
        - before.sum(BYTES, &[("route", "content_ts")]);
    report.check(pulled >= segments as f64, || {
        format!("ffmpeg over HLS pulled {pulled} TS bytes, the segments hold {segments}")
    });

    // GStreamer: TS over HTTP, then the HLS playlist, each to EOS.
    for (what, pipeline) in [
        (
            "souphttpsrc ! tsdemux",
            vec![
                "souphttpsrc".to_string(),
                format!("location={ts_url}"),
                "!".into(),
                "tsdemux".into(),
                "!".into(),
                "fakesink".into(),
            ],
        ),
        (
            "souphttpsrc ! hlsdemux",
            vec![
                "souphttpsrc".to_string(),
                format!("location={hls_url}"),
                "!".into(),
                "hlsdemux".into(),
                "!".into(),
                "fakesink".into(),
            ],
        ),
    ] {
        let before = metrics(addr);
        let out = process::spawn(Command::new(&gst).args(&pipeline)).wait_at_most(PLAYER_TIMEOUT);
        let after = metrics(addr);
        report.check(
            out.success() && out.stdout.contains("Got EOS from element"),
            || format!("gst-launch-1.0 {what} should reach EOS and exit 0\n{out}"),
        );
        report.check(!out.stderr.contains("ERROR"), || {
            format!("gst-launch-1.0 {what} reported an error\n{out}")
        });
        let pulled = after.sum(BYTES, &[("route", "content_ts")])
            - before.sum(BYTES, &[("route", "content_ts")]);
        let want = if what.contains("hls") {
            segments
        } else {
            c.size()
        };
        report.check(pulled >= want as f64, || {
            format!("gst-launch-1.0 {what} pulled {pulled} TS bytes, expected at least {want}")
        });
        if what.contains("hls") {
            let playlists = ok_requests(&after, "hls") - ok_requests(&before, "hls");
            report.check(playlists >= 2.0, || {
                format!("hlsdemux fetched {playlists} playlists (master and media expected)")
            });
        }
    }
    report.finish();
}

/// VLC (`cvlc`, as an unprivileged user: it refuses root) plays the HLS playlist to the end.
#[test]
fn vlc_plays_the_hls_playlist() {
    let c = one_host(&fixture_clip(), "clip");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let hls_url = url(addr, &format!("/content/{}/index.m3u8", c.id));
    let (mut cmd, _home) = sluice_tests::vlc::play_and_exit(&hls_url);
    let before = metrics(addr);
    let out = process::spawn(&mut cmd).wait_at_most(PLAYER_TIMEOUT);
    let after = metrics(addr);
    let mut report = Report::new(format!("VLC playing {hls_url}"));
    report.check(out.success(), || format!("cvlc should exit 0\n{out}"));
    let errors = sluice_tests::vlc::errors(&out);
    report.check(errors.is_empty(), || {
        format!("cvlc reported errors:\n{}\n\n{out}", errors.join("\n"))
    });
    let playlists = ok_requests(&after, "hls") - ok_requests(&before, "hls");
    report.check(playlists >= 2.0, || {
        format!("VLC fetched {playlists} playlists (master and media expected)\n{out}")
    });
    let ts_requests = ok_requests(&after, "content_ts") - ok_requests(&before, "content_ts");
    report.check(ts_requests >= 1.0, || {
        format!("VLC fetched no TS segments\n{out}")
    });
    let pulled = after.sum(BYTES, &[("route", "content_ts")])
        - before.sum(BYTES, &[("route", "content_ts")]);
    let segments = segment_bytes(&c);
    report.check(pulled >= segments as f64, || {
        format!(
            "VLC pulled {pulled} TS bytes, the segments hold {segments}: it did not play to \
             the end\n{out}"
        )
    });
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// HTTP semantics
// ---------------------------------------------------------------------------------------------

/// A HEAD of `path` with `headers` answers like `get` did (status and entity headers), with no
/// body bytes after the head.
fn compare_head(
    report: &mut Report,
    addr: SocketAddr,
    path: &str,
    get: &Response,
    headers: &[(&str, &str)],
) {
    const SAME: [&str; 6] = [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-range",
    ];
    let x = match http_client::open(addr, "HEAD", path, headers, &[]) {
        Ok(x) => x,
        Err(e) => return report.fail(format!("HEAD {path} {headers:?}: {e}")),
    };
    let (status, head) = (x.status, x.headers.clone());
    let extra = match x.bytes_after_body() {
        Ok(extra) => extra,
        Err(e) => return report.fail(format!("HEAD {path} {headers:?}: {e}")),
    };
    report.check(status == get.status, || {
        format!(
            "HEAD {path} {headers:?}: status {status}, GET gave {}",
            get.status
        )
    });
    for name in SAME {
        let h = head
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        report.check(h == get.header(name), || {
            format!(
                "HEAD {path} {headers:?}: {name} {h:?}, GET gave {:?}",
                get.header(name)
            )
        });
    }
    report.check(extra.is_empty(), || {
        format!(
            "HEAD {path} {headers:?}: {} body bytes were sent",
            extra.len()
        )
    });
}

/// 200 random single ranges (with suffix and open-ended forms) are byte-exact; HEAD, 416,
/// If-Range, If-None-Match, 404 and 405 behave.
#[test]
fn ranges_head_and_conditional_requests() {
    let c = one_host(&fixture_clip(), "clip");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let ts = c.ts_path();
    let size = c.size();
    let mut report = Report::new(format!("{} on {addr}", ts));

    // The whole file and its headers.
    let whole = must_get(addr, &ts);
    report.check(whole.status == 200 && whole.body == c.file, || {
        format!(
            "GET {ts}: status {}, body {}",
            whole.status,
            diff(&whole.body, &c.file)
        )
    });
    let etag = whole.header("etag").unwrap_or_default().to_string();
    report.check(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        || format!("GET {ts}: ETag {etag:?} should be a strong quoted tag"),
    );
    for (name, want) in [
        ("content-type", Some("video/mp2t".to_string())),
        ("accept-ranges", Some("bytes".to_string())),
        ("content-length", Some(size.to_string())),
    ] {
        report.check(whole.header(name).map(str::to_owned) == want, || {
            format!(
                "GET {ts}: {name} {:?}, expected {want:?}",
                whole.header(name)
            )
        });
    }
    report.check(whole.header("last-modified").is_some(), || {
        format!("GET {ts}: no Last-Modified")
    });

    // HEAD: the same headers, no body.
    compare_head(&mut report, addr, &ts, &whole, &[]);

    // Random ranges.
    let mut rng = Rng::new(0x5eed_0004);
    let mut bad = 0;
    for i in 0..200 {
        let case = random_range(&mut rng, size);
        let r = match http_client::request(addr, "GET", &ts, &[("Range", &case.header)], &[]) {
            Ok(r) => r,
            Err(e) => {
                report.fail(format!("GET {ts} Range: {}: {e}", case.header));
                continue;
            }
        };
        let want = case.slice(&c.file);
        let ok = r.status == 206
            && r.header("content-range") == Some(case.content_range(size).as_str())
            && r.header("content-length") == Some(want.len().to_string().as_str())
            && r.body == want;
        if !ok {
            bad += 1;
            if bad <= 10 {
                report.fail(format!(
                    "range #{i} Range: {} of {size} bytes: expected 206, Content-Range {:?}, \
                     {} bytes; got {}, Content-Range {:?}, Content-Length {:?}, body {}",
                    case.header,
                    case.content_range(size),
                    want.len(),
                    r.status,
                    r.header("content-range"),
                    r.header("content-length"),
                    diff(&r.body, want)
                ));
            }
        }
        if i == 0 {
            compare_head(&mut report, addr, &ts, &r, &[("Range", &case.header)]);
        }
    }
    report.check(bad <= 10, || {
        format!("{bad} of 200 ranges were wrong (first 10 above)")
    });

    // Unsatisfiable.
    let unsatisfied = format!("bytes */{size}");
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 100, size + 200),
    ] {
        match http_client::request(addr, "GET", &ts, &[("Range", &range)], &[]) {
            Ok(r) => report.check(
                r.status == 416 && r.header("content-range") == Some(unsatisfied.as_str()),
                || {
                    format!(
                        "Range: {range}: expected 416 with Content-Range {unsatisfied:?}, got {} \
                         with {:?}",
                        r.status,
                        r.header("content-range")
                    )
                },
            ),
            Err(e) => report.check(false, || format!("Range: {range}: {e}")),
        };
    }

    // If-Range: the right ETag lets the range apply; another one gets the whole file.
    let range = "bytes=100-1099";
    match http_client::request(
        addr,
        "GET",
        &ts,
        &[("Range", range), ("If-Range", &etag)],
        &[],
    ) {
        Ok(r) => report.check(r.status == 206 && r.body == c.file[100..1100], || {
            format!(
                "Range {range} + If-Range {etag}: expected 206 and bytes 100..=1099, got {} and {}",
                r.status,
                diff(&r.body, &c.file[100..1100])
            )
        }),
        Err(e) => report.check(false, || format!("If-Range {etag}: {e}")),
    };
    let other_tag = [("Range", range), ("If-Range", "\"not-the-etag\"")];
    match http_client::request(addr, "GET", &ts, &other_tag, &[]) {
        Ok(r) => report.check(r.status == 200 && r.body == c.file, || {
            format!(
                "Range {range} + If-Range with another ETag: expected 200 and the whole file, \
                 got {} and {}",
                r.status,
                diff(&r.body, &c.file)
            )
        }),
        Err(e) => report.check(false, || format!("If-Range (other ETag): {e}")),
    };

    // If-None-Match.
    match http_client::open(addr, "GET", &ts, &[("If-None-Match", &etag)], &[]) {
        Ok(x) => {
            let status = x.status;
            let extra = x.bytes_after_body().unwrap_or_default();
            report.check(status == 304 && extra.is_empty(), || {
                format!(
                    "If-None-Match {etag}: expected 304 and no body, got {status} and {} bytes",
                    extra.len()
                )
            });
        }
        Err(e) => report.fail(format!("If-None-Match {etag}: {e}")),
    }
    match http_client::request(
        addr,
        "GET",
        &ts,
        &[("If-None-Match", "\"not-the-etag\"")],
        &[],
    ) {
        Ok(r) => report.check(r.status == 200 && r.body == c.file, || {
            format!(
                "If-None-Match with another ETag: expected 200 and the file, got {}",
                r.status
            )
        }),
        Err(e) => report.check(false, || format!("If-None-Match (other ETag): {e}")),
    };

    // The playlists and the TS they point at, byte for byte; each HLS segment by its range.
    for name in ["index.m3u8", "media.m3u8", "iframes.m3u8", "content.ts"] {
        let path = format!("/content/{}/{name}", c.id);
        let want = c.installed_file(name);
        let r = must_get(addr, &path);
        report.check(r.status == 200 && r.body == want, || {
            format!(
                "GET {path}: status {}, body {}",
                r.status,
                diff(&r.body, &want)
            )
        });
        if name.ends_with(".m3u8") {
            let ct = r.header("content-type").unwrap_or_default();
            report.check(
                ct.starts_with("application/vnd.apple.mpegurl") || ct.starts_with("audio/mpegurl"),
                || format!("GET {path}: Content-Type {ct:?}, expected an HLS playlist type"),
            );
        }
    }
    let media = String::from_utf8(c.installed_file("media.m3u8")).expect("text");
    let segments = hls::parse(&media).expect("media.m3u8").segments;
    for s in &segments {
        let path = format!("/content/{}/{}", c.id, s.uri);
        let Some((len, off)) = s.byte_range else {
            continue;
        };
        let range = format!("bytes={off}-{}", off + len - 1);
        let want = &c.file[off as usize..(off + len) as usize];
        match http_client::request(addr, "GET", &path, &[("Range", &range)], &[]) {
            Ok(r) => report.check(r.status == 206 && r.body == want, || {
                format!(
                    "segment {path} Range: {range}: status {}, body {}",
                    r.status,
                    diff(&r.body, want)
                )
            }),
            Err(e) => report.check(false, || format!("segment {path} Range: {range}: {e}")),
        };
    }

    // Unknown content and methods.
    for path in [
        "/content/nope.ts",
        "/content/nope/index.m3u8",
        "/content/nope/content.ts",
        "/content/clip/nope.m3u8",
    ] {
        let r = must_get(addr, path);
        report.check(r.status == 404, || {
            format!("GET {path}: status {} (expected 404)", r.status)
        });
    }
    for method in ["POST", "DELETE", "PUT"] {
        for path in [ts.clone(), format!("/content/{}/index.m3u8", c.id)] {
            match http_client::request(addr, method, &path, &[], b"x") {
                Ok(r) => {
                    let allow = r.header("allow").unwrap_or_default().to_ascii_uppercase();
                    let ok = r.status == 405 && allow.contains("GET") && allow.contains("HEAD");
                    report.check(ok, || {
                        format!(
                            "{method} {path}: status {} with Allow {:?} (expected 405, Allow: \
                             GET, HEAD)",
                            r.status,
                            r.header("allow")
                        )
                    });
                }
                Err(e) => report.fail(format!("{method} {path}: {e}")),
            }
        }
    }
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Faults mid-response
// ---------------------------------------------------------------------------------------------

fn knobs_path(node: &str) -> String {
    format!("/admin/nodes/{node}/knobs")
}

fn failovers(p: &Page) -> f64 {
    p.sum(FAILOVERS, &[])
}

/// The main node crashes while it is sending (throttled to 1 MB/s, the body several steps
/// long): the body stays byte-exact, a failover is counted, and the node is soon reported down.
#[test]
fn crash_mid_response_fails_over_byte_exact() {
    let c = two_hosts(&big_clip(), "big");
    assert!(
        c.size() > 2 * BODY_STEP,
        "the big clip is {} bytes",
        c.size()
    );
    // A long read deadline, so that the crash, not slowness, is what moves the read.
    let srv = start_streamer(c.store.path(), &["--read-deadline-ms", "10000"]);
    let addr = srv.addr;
    let main = c.main_node();
    let main_host = c.replicas()[0].1.clone();
    let mut report = Report::new(format!("crash of {main} mid-response ({})", srv.command()));

    let m0 = metrics(addr);
    report.check(
        m0.value("sluice_node_up", &[("node", &main), ("host", &main_host)]) == Some(1.0),
        || format!("before the crash, sluice_node_up for {main} should be 1"),
    );
    must_put_json(addr, &knobs_path(&main), &json!({"bandwidth": 1_000_000}));

    let started = Instant::now();
    let mut ex = http_client::open(addr, "GET", &c.ts_path(), &[], &[])
        .unwrap_or_else(|e| panic!("GET {}: {e}", c.ts_path()));
    report.check(ex.status == 200, || format!("GET: status {}", ex.status));
    let mut body = Vec::new();
    ex.read_body_into(&mut body, 1)
        .unwrap_or_else(|e| panic!("reading the first bytes: {e}"));
    let before_crash = body.len();
    must_put_json(addr, &knobs_path(&main), &json!({"crashed": true}));
    let rest = ex.read_body_to_end();
    let elapsed = started.elapsed();
    match rest {
        Ok(rest) => body.extend_from_slice(&rest),
        Err(e) => report.fail(format!(
            "the body broke after the crash: {e} ({} of {} bytes arrived)",
            body.len(),
            c.size()
        )),
    }
    report.check(before_crash < c.file.len(), || {
        format!(
            "the whole body ({before_crash} bytes) arrived before the crash: the throttle did \
             not hold it back"
        )
    });
    report.check(body == c.file, || {
        format!(
            "body after a crash at byte ≥{before_crash}: {}",
            diff(&body, &c.file)
        )
    });
    let m1 = metrics(addr);
    report.check(failovers(&m1) >= 1.0, || {
        format!(
            "{FAILOVERS} is {} after the crash (expected ≥ 1); the GET took {elapsed:?}",
            failovers(&m1)
        )
    });
    let (m2, down) = metrics_until(addr, SETTLE_TIMEOUT, |p| {
        p.value("sluice_node_up", &[("node", &main), ("host", &main_host)]) == Some(0.0)
    });
    report.check(down, || {
        format!(
            "sluice_node_up for {main} is {:?} {} s after the crash (expected 0)",
            m2.value("sluice_node_up", &[("node", &main)]),
            SETTLE_TIMEOUT.as_secs()
        )
    });
    // The catalog says so too, and a new GET is served whole from the other replica.
    let cat = must_get(addr, "/api/v1/contents");
    let v: Value = serde_json::from_slice(&cat.body).unwrap_or_default();
    let health = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == c.id.as_str()))
        .and_then(|e| e["replicas"].as_array())
        .and_then(|r| r.iter().find(|r| r["node"] == main.as_str()))
        .map(|r| r["health"].clone());
    report.check(health == Some(json!("Down")), || {
        format!("catalog health of {main} after the crash: {health:?} (expected \"Down\")")
    });
    let again = must_get(addr, &c.ts_path());
    report.check(again.status == 200 && again.body == c.file, || {
        format!(
            "GET with the main node down: status {}, body {}",
            again.status,
            diff(&again.body, &c.file)
        )
    });
    report.finish();
}

/// The main node stalls: after the read deadline the read moves to the other replica, and the
/// body is byte-exact; once recovered, the main node serves again.
#[test]
fn stall_fails_over_after_the_read_deadline() {
    let c = two_hosts(&demo_clip(), "demo");
    let srv = start_streamer(c.store.path(), &["--read-deadline-ms", "300"]);
    let addr = srv.addr;
    let main = c.main_node();
    let mut report = Report::new(format!("stall of {main} ({})", srv.command()));
    must_put_json(addr, &knobs_path(&main), &json!({"stalled": true}));
    let started = Instant::now();
    let r = http_client::get(addr, &c.ts_path());
    let elapsed = started.elapsed();
    match r {
        Ok(r) => report.check(r.status == 200 && r.body == c.file, || {
            format!(
                "GET with {main} stalled: status {}, body {}",
                r.status,
                diff(&r.body, &c.file)
            )
        }),
        Err(e) => report.check(false, || {
            format!("GET with {main} stalled: {e} after {elapsed:?}")
        }),
    };
    let m = metrics(addr);
    report.check(failovers(&m) >= 1.0, || {
        format!(
            "{FAILOVERS} is {} after a stall (expected ≥ 1)",
            failovers(&m)
        )
    });
    report.check(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(10),
        || {
            format!(
                "GET with a stalled main node took {elapsed:?}: expected the 300 ms deadline, then \
             the other replica"
            )
        },
    );
    // Recovered, the main node serves again (a new reader starts at the main replica).
    must_put_json(addr, &knobs_path(&main), &json!({}));
    let before = failovers(&metrics(addr));
    let r = must_get(addr, &c.ts_path());
    let after = failovers(&metrics(addr));
    report.check(
        r.status == 200 && r.body == c.file && after == before,
        || {
            format!(
                "GET after recovering {main}: status {}, body {}, failovers {before} → {after} \
             (expected none)",
                r.status,
                diff(&r.body, &c.file)
            )
        },
    );
    report.finish();
}

/// An EIO range on the main copy, past the first storage read: the read that hits it moves to
/// the other replica and the body is byte-exact.
#[test]
fn eio_on_the_main_copy_fails_over_byte_exact() {
    let c = two_hosts(&big_clip(), "big");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let main = c.main_node();
    let mut report = Report::new(format!("EIO on {main} ({})", srv.command()));
    let (eio_start, eio_end) = (BODY_STEP + 300_000, BODY_STEP + 300_188);
    assert!(
        c.size() > eio_end,
        "the big content is larger than {eio_end} bytes"
    );
    let rel = format!("{}/content.ts", c.id);
    must_put_json(
        addr,
        &knobs_path(&main),
        &json!({"eio": [{"path": rel, "start": eio_start, "end": eio_end}]}),
    );
    let r = http_client::get(addr, &c.ts_path());
    match r {
        Ok(r) => report.check(r.status == 200 && r.body == c.file, || {
            format!(
                "GET across EIO at {eio_start}..{eio_end}: status {}, body {}",
                r.status,
                diff(&r.body, &c.file)
            )
        }),
        Err(e) => report.check(false, || {
            format!("GET across EIO at {eio_start}..{eio_end}: {e}")
        }),
    };
    let m = metrics(addr);
    report.check(failovers(&m) >= 1.0, || {
        format!(
            "{FAILOVERS} is {} after an EIO (expected ≥ 1)",
            failovers(&m)
        )
    });
    // A range inside the bad bytes, from a fresh reader.
    let range = format!("bytes={eio_start}-{}", eio_end - 1);
    let want = &c.file[eio_start as usize..eio_end as usize];
    match http_client::request(addr, "GET", &c.ts_path(), &[("Range", &range)], &[]) {
        Ok(r) => report.check(r.status == 206 && r.body == want, || {
            format!(
                "Range {range} inside the EIO range: status {}, body {}",
                r.status,
                diff(&r.body, want)
            )
        }),
        Err(e) => report.check(false, || format!("Range {range} inside the EIO range: {e}")),
    };
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// 200 clients at once, each the whole content or a random range: every body is correct and
/// the streamer stays up.
#[test]
fn two_hundred_concurrent_clients_get_correct_bodies() {
    concurrent_clients(200, &[], None);
}

/// With one splice pipe for the process, a body of several steps is refused the second pipe it
/// asks for (so it refills its one pipe), and bodies that overlap find none (and are copied
/// through user space): every body is still byte-exact, and the pipe is given back (or
/// closed) at the end.
#[test]
fn bodies_without_a_splice_pipe_are_copied_byte_exact() {
    concurrent_clients(40, &["--max-splice-pipes", "1"], Some(1));
}

/// `clients` threads at once, half whole GETs and half random ranges; `max_pipes`: the
/// streamer's `--max-splice-pipes`, checked against its metrics.
fn concurrent_clients(clients: usize, extra: &[&str], max_pipes: Option<usize>) {
    let c = one_host(&fixture_clip(), "clip");
    let mut srv = start_streamer(c.store.path(), extra);
    let addr = srv.addr;
    let file = Arc::new(c.file.clone());
    let ts = c.ts_path();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let before = metrics(addr);
    let mut handles = Vec::new();
    for i in 0..clients {
        let (file, ts, gate) = (file.clone(), ts.clone(), gate.clone());
        let h = std::thread::Builder::new()
            .name(format!("client-{i}"))
            .stack_size(256 << 10)
            .spawn(move || -> Result<u64, String> {
                {
                    let (m, cv) = &*gate;
                    let g = m.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = cv
                        .wait_timeout_while(g, Duration::from_secs(30), |open| !*open)
                        .unwrap_or_else(|e| e.into_inner());
                }
                let size = file.len() as u64;
                if i % 2 == 0 {
                    let r =
                        http_client::get(addr, &ts).map_err(|e| format!("client {i}: GET: {e}"))?;
                    if r.status != 200 || r.body[..] != file[..] {
                        return Err(format!(
                            "client {i}: GET: status {}, body {}",
                            r.status,
                            diff(&r.body, &file)
                        ));
                    }
                    Ok(size)
                } else {
                    let case = random_range(&mut Rng::new(0x5eed_0005 + i as u64), size);
                    let r = http_client::request(addr, "GET", &ts, &[("Range", &case.header)], &[])
                        .map_err(|e| format!("client {i}: Range: {}: {e}", case.header))?;
                    let want = case.slice(&file);
                    if r.status != 206 || r.body != want {
                        return Err(format!(
                            "client {i}: Range: {}: status {}, body {}",
                            case.header,
                            r.status,
                            diff(&r.body, want)
                        ));
                    }
                    Ok(want.len() as u64)
                }
            })
            .expect("spawn a client thread");
        handles.push(h);
    }
    let started = Instant::now();
    {
        let (m, cv) = &*gate;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
    let mut failures = Vec::new();
    let mut bytes = 0u64;
    for h in handles {
        match h.join() {
            Ok(Ok(n)) => bytes += n,
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".to_string()),
        }
    }
    let elapsed = started.elapsed();
    let mut report = Report::new(format!(
        "{clients} concurrent clients of {} (took {elapsed:?})",
        srv.command()
    ));
    report.check(failures.is_empty(), || {
        format!(
            "{} of {clients} clients got a wrong answer; the first ones:\n{}",
            failures.len(),
            failures
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    report.check(srv.is_running(), || {
        format!(
            "the streamer exited under load\n--- stderr ---\n{}",
            srv.stderr()
        )
    });
    if srv.is_running() {
        let after = metrics(addr);
        let served = ok_requests(&after, "content_ts") - ok_requests(&before, "content_ts");
        report.check(served == clients as f64, || {
            format!("the metrics count {served} successful TS requests, expected {clients}")
        });
        let counted = after.sum(BYTES, &[("route", "content_ts")])
            - before.sum(BYTES, &[("route", "content_ts")]);
        report.check(counted == bytes as f64, || {
            format!("the metrics count {counted} TS bytes, the clients received {bytes}")
        });
        let (p, idle) = metrics_until(addr, SETTLE_TIMEOUT, |p| {
            p.value("sluice_active_sessions", &[]) == Some(0.0)
        });
        report.check(idle, || {
            format!(
                "sluice_active_sessions is {:?} after every client finished (expected 0)",
                p.value("sluice_active_sessions", &[])
            )
        });
        let busy = p.value(PIPES, &[("state", "busy")]);
        report.check(busy == Some(0.0), || {
            format!(
                "{PIPES}{{state=\"busy\"}} is {busy:?} after every client finished (expected 0)"
            )
        });
        if let Some(max) = max_pipes {
            let idle = p.value(PIPES, &[("state", "idle")]).unwrap_or(-1.0);
            report.check((0.0..=max as f64).contains(&idle), || {
                format!("{idle} idle splice pipes with --max-splice-pipes {max}")
            });
            let refused = p.value(REFUSED, &[]).unwrap_or(0.0);
            report.check(refused > 0.0, || {
                format!("{REFUSED} is {refused}: no body was refused a pipe")
            });
        }
    }
    report.finish();
}

const PIPES: &str = "sluice_splice_pipes";
const REFUSED: &str = "sluice_splice_pipe_refusals_total";

// ---------------------------------------------------------------------------------------------
// The embedded default, catalog and metrics
// ---------------------------------------------------------------------------------------------

/// `streamer` in an empty folder, without `--store`: it creates `./store`, installs the demo
/// clip, prints URLs to paste into a player, and serves them.
#[test]
fn embedded_default_installs_and_serves_the_demo() {
    let dir = new_store();
    let mut cmd = server::bounded(streamer());
    cmd.current_dir(dir.path())
        .env_remove("SLUICE_STORE")
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--rtsp-listen",
            "127.0.0.1:0",
        ]);
    let srv = Server::start(cmd, "streamer: serving ");
    let addr = srv.addr;
    let mut report = Report::new(format!("the embedded default ({})", srv.command()));
    // The URL lines follow the ready line; the catalog line ends them.
    let _ = srv.wait_for_line(Duration::from_secs(10), |l| l.contains("/api/v1/contents"));
    let lines = srv.stdout_lines();
    let store_dir = dir.path().join("store");
    report.check(store_dir.join("store.json").is_file(), || {
        format!(
            "no {} after the first start",
            store_dir.join("store.json").display()
        )
    });
    report.check(!store::copies(&store_dir, "demo").is_empty(), || {
        format!(
            "no {}/*/demo/manifest.json: the demo was not installed",
            store_dir.display()
        )
    });
    let urls: Vec<String> = lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter(|w| w.starts_with("http://"))
        .map(str::to_owned)
        .collect();
    let find = |suffix: &str| urls.iter().find(|u| u.ends_with(suffix)).cloned();
    let ts_url = find("/content/demo.ts");
    let hls_url = find("/content/demo/index.m3u8");
    report.check(ts_url.is_some() && hls_url.is_some(), || {
        format!(
            "the printed URLs should include …/content/demo.ts and \
             …/content/demo/index.m3u8:\n{}",
            lines.join("\n")
        )
    });
    for u in ts_url.iter().chain(hls_url.iter()) {
        report.check(u.starts_with(&format!("http://{addr}/")), || {
            format!("printed URL {u} does not point at the address served, {addr}")
        });
    }
    if let Some(ts_url) = &ts_url {
        let probe = ffprobe::probe(Path::new(ts_url));
        let manifest: Value = store::copies(&store_dir, "demo")
            .first()
            .and_then(|c| fs::read(c.join("manifest.json")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let duration = manifest["duration_seconds"].as_f64().unwrap_or(0.0);
        report.check(probe.format_name == "mpegts", || {
            format!("ffprobe {ts_url}: format {:?}", probe.format_name)
        });
        report.check(
            probe
                .duration
                .is_some_and(|d| (d - duration).abs() <= DURATION_SLACK_S),
            || {
                format!(
                    "ffprobe {ts_url}: duration {:?}, the manifest says {duration}",
                    probe.duration
                )
            },
        );
        let codecs = probe.codecs();
        report.check(codecs == ["h264", "aac"], || {
            format!("ffprobe {ts_url}: streams {codecs:?}")
        });
    }
    let rtsp_url = lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.starts_with("rtsp://") && w.ends_with("/demo"))
        .map(str::to_owned);
    report.check(rtsp_url.is_some(), || {
        format!(
            "the printed URLs should include rtsp://…/demo:\n{}",
            lines.join("\n")
        )
    });
    if let Some(u) = &rtsp_url {
        let probe = ffprobe::probe(Path::new(u));
        let codecs = probe.codecs();
        report.check(codecs == ["h264", "aac"], || {
            format!("ffprobe {u}: streams {codecs:?}")
        });
    }
    if let Some(hls_url) = &hls_url {
        let out = ffprobe::copy_through(Path::new(hls_url));
        report.check(out.success() && out.stderr.trim().is_empty(), || {
            format!("ffmpeg should play {hls_url} silently\n{out}")
        });
    }
    report.finish();
}

/// `/api/v1/contents` lists every content with its replicas and their health; `/metrics` counts
/// requests by route and status, bytes by route, node health and read latency.
#[test]
fn catalog_and_metrics_describe_what_was_served() {
    let store = two_host_store();
    install(store.path(), &fixture_clip(), "clip", 2);
    let other_src = Fixture::H264AacTs
        .path()
        .unwrap_or_else(|e| panic!("cannot make the fixture: {e}"));
    install(store.path(), &other_src, "other", 1);
    let other_manifest: Value = serde_json::from_slice(
        &fs::read(store::copies(store.path(), "other")[0].join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    let other_size = fs::read(store::copies(store.path(), "other")[0].join("content.ts"))
        .expect("content.ts")
        .len() as u64;
    let c = loaded(store, "clip");
    let srv = start_streamer(c.store.path(), &[]);
    let addr = srv.addr;
    let mut report = Report::new(format!("catalog and metrics of {}", srv.command()));

    // The catalog.
    let r = must_get(addr, "/api/v1/contents");
    report.check(r.status == 200, || {
        format!("GET /api/v1/contents: status {}", r.status)
    });
    report.check(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        || {
            format!(
                "GET /api/v1/contents: Content-Type {:?}",
                r.header("content-type")
            )
        },
    );
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/api/v1/contents is not JSON ({e}): {}", r.text()));
    let entries = v.as_array().cloned().unwrap_or_default();
    let mut ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    ids.sort();
    report.check(ids == ["clip", "other"], || {
        format!("catalog ids {ids:?}, expected [clip, other]: {v}")
    });
    for (id, manifest, size) in [
        ("clip", c.manifest.clone(), c.size()),
        ("other", other_manifest.clone(), other_size),
    ] {
        let Some(e) = entries.iter().find(|e| e["id"] == id) else {
            continue;
        };
        let close = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-3,
            _ => false,
        };
        report.check(close(&e["duration"], &manifest["duration_seconds"]), || {
            format!(
                "catalog {id}: duration {}, manifest {}",
                e["duration"], manifest["duration_seconds"]
            )
        });
        report.check(e["bitrate"] == manifest["bitrate"], || {
            format!(
                "catalog {id}: bitrate {}, manifest {}",
                e["bitrate"], manifest["bitrate"]
            )
        });
        report.check(e["size"] == size, || {
            format!(
                "catalog {id}: size {}, content.ts is {size} bytes",
                e["size"]
            )
        });
        report.check(e["keyframes"] == manifest["keyframes"], || {
            format!(
                "catalog {id}: keyframes {}, manifest {}",
                e["keyframes"], manifest["keyframes"]
            )
        });
        let codecs = |t: &Value| -> Vec<String> {
            t.as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["codec"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        report.check(
            codecs(&e["tracks"]) == codecs(&manifest["tracks"]) && !codecs(&e["tracks"]).is_empty(),
            || {
                format!(
                    "catalog {id}: tracks {:?}, manifest {:?}",
                    codecs(&e["tracks"]),
                    codecs(&manifest["tracks"])
                )
            },
        );
        let pairs = |r: &Value| -> Vec<(String, String)> {
            r.as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            (
                                x["node"].as_str().unwrap_or_default().to_string(),
                                x["host"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        report.check(
            pairs(&e["replicas"]) == pairs(&manifest["replicas"]),
            || {
                format!(
                    "catalog {id}: replicas {:?}, manifest {:?} (same order: main first)",
                    pairs(&e["replicas"]),
                    pairs(&manifest["replicas"])
                )
            },
        );
        let healths: Vec<&Value> = e["replicas"]
            .as_array()
            .map(|a| a.iter().map(|x| &x["health"]).collect())
            .unwrap_or_default();
        report.check(
            !healths.is_empty() && healths.iter().all(|h| **h == "Up"),
            || format!("catalog {id}: replica health {healths:?}, expected all \"Up\""),
        );
        for (key, path) in [
            ("ts", format!("/content/{id}.ts")),
            ("hls", format!("/content/{id}/index.m3u8")),
        ] {
            let u = e["urls"][key].as_str().unwrap_or_default();
            report.check(u.ends_with(&path), || {
                format!("catalog {id}: urls.{key} {u:?}, expected …{path}")
            });
        }
    }

    // Metrics: counts by route and status, bytes by route, exactly what this test sent.
    let m0 = metrics(addr);
    let size = c.size();
    for _ in 0..3 {
        let r = must_get(addr, &c.ts_path());
        report.check(r.status == 200 && r.body == c.file, || {
            format!("GET {}: status {}", c.ts_path(), r.status)
        });
    }
    let mut ranged = 0u64;
    for range in ["bytes=0-999", "bytes=-188"] {
        match http_client::request(addr, "GET", &c.ts_path(), &[("Range", range)], &[]) {
            Ok(r) => {
                ranged += r.body.len() as u64;
                report.check(r.status == 206, || {
                    format!("Range {range}: status {}", r.status)
                });
            }
            Err(e) => report.fail(format!("Range {range}: {e}")),
        }
    }
    let master = must_get(addr, "/content/clip/index.m3u8");
    let nf = must_get(addr, "/content/nope.ts");
    let na = http_client::request(addr, "POST", &c.ts_path(), &[], b"x").expect("POST");
    report.check(nf.status == 404 && na.status == 405, || {
        format!(
            "unknown content gave {}, POST gave {} (expected 404 and 405)",
            nf.status, na.status
        )
    });
    let m1 = metrics(addr);
    let delta = |name: &str, labels: &[(&str, &str)]| m1.sum(name, labels) - m0.sum(name, labels);
    for (labels, want) in [
        (vec![("route", "content_ts"), ("status", "200")], 3.0),
        (vec![("route", "content_ts"), ("status", "206")], 2.0),
        (vec![("route", "hls"), ("status", "200")], 1.0),
        (vec![("status", "404")], 1.0),
        (vec![("status", "405")], 1.0),
    ] {
        let got = delta(REQUESTS, &labels);
        report.check(got == want, || {
            format!("{REQUESTS}{labels:?} rose by {got}, expected {want}")
        });
    }
    let want_bytes = (3 * size + ranged) as f64;
    let got = delta(BYTES, &[("route", "content_ts")]);
    report.check(got == want_bytes, || {
        format!("{BYTES}{{route=content_ts}} rose by {got}, expected {want_bytes}")
    });
    let got = delta(BYTES, &[("route", "hls")]);
    report.check(got == master.body.len() as f64, || {
        format!(
            "{BYTES}{{route=hls}} rose by {got}, expected {}",
            master.body.len()
        )
    });
    for (node, host) in [("a1", "h1"), ("b1", "h2")] {
        let up = m1.value("sluice_node_up", &[("node", node), ("host", host)]);
        report.check(up == Some(1.0), || {
            format!("sluice_node_up{{node={node},host={host}}} is {up:?}, expected 1")
        });
    }
    report.check(m1.value(FAILOVERS, &[]) == Some(0.0), || {
        format!(
            "{FAILOVERS} is {:?} with every node healthy (expected 0)",
            m1.value(FAILOVERS, &[])
        )
    });
    let reads = m1.sum("sluice_read_seconds_count", &[]) - m0.sum("sluice_read_seconds_count", &[]);
    report.check(reads >= 6.0, || {
        format!("sluice_read_seconds_count rose by {reads}, expected ≥ 6 (one per body)")
    });
    let inf = m1.value("sluice_read_seconds_bucket", &[("le", "+Inf")]);
    report.check(inf == m1.value("sluice_read_seconds_count", &[]), || {
        format!("sluice_read_seconds_bucket{{le=+Inf}} {inf:?} differs from the count")
    });
    let buckets: Vec<f64> = m1
        .matching("sluice_read_seconds_bucket", &[])
        .map(|s| s.value)
        .collect();
    report.check(buckets.windows(2).all(|w| w[0] <= w[1]), || {
        format!("sluice_read_seconds buckets are not cumulative: {buckets:?}")
    });
    let (p, idle) = metrics_until(addr, SETTLE_TIMEOUT, |p| {
        p.value("sluice_active_sessions", &[]) == Some(0.0)
    });
    report.check(idle, || {
        format!(
            "sluice_active_sessions is {:?} with no transfer running (expected 0)",
            p.value("sluice_active_sessions", &[])
        )
    });
    report.finish();
}

/// The streamer's disk reads go through io_uring: `strace -f -e trace=io_uring_enter` on it
/// logs calls once it has served GETs of a content evicted from the page cache (issue 3: "the
/// streamer's reads go through this ring"). Page-cache hits are spliced by the connection's
/// thread without io_uring (`storage_device_sim::inline`), so the pages are dropped first; the
/// store lives under the target folder, a real disk (a tmpfs cannot drop its pages).
#[test]
fn streamer_reads_go_through_io_uring() {
    let store = tempfile::Builder::new()
        .prefix("sluice-http-uring-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    install(store.path(), &fixture_clip(), "clip", 1);
    let c = loaded(store, "clip");
    let log = c.store.path().join("strace.log");
    let mut cmd = server::bounded(need("strace"));
    cmd.args(["-f", "-e", "trace=io_uring_enter", "-o"])
        .arg(&log)
        .arg(streamer())
        .arg("--store")
        .arg(c.store.path())
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--rtsp-listen",
            "127.0.0.1:0",
            "--no-demo",
        ]);
    let mut srv = Server::start(cmd, "streamer: serving ");
    let addr = srv.addr;
    let count = |text: &str| {
        text.lines()
            .filter(|l| l.contains("io_uring_enter("))
            .count()
    };
    let before = count(&fs::read_to_string(&log).unwrap_or_default());
    let mut report = Report::new(format!("streamer under strace ({})", srv.command()));
    for i in 0..5 {
        evict(c.store.path());
        let r = must_get(addr, &c.ts_path());
        report.check(r.status == 200 && r.body == c.file, || {
            format!(
                "GET #{i} under strace: status {}, body {}",
                r.status,
                diff(&r.body, &c.file)
            )
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let stopped = srv.stop();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let after = count(&text);
    report.check(after > before && after > 0, || {
        format!(
            "strace logged {before} io_uring_enter calls before the GETs and {after} after: the \
             reads did not go through io_uring\n--- stderr ---\n{}",
            stopped.stderr
        )
    });
    report.finish();
}

/// Drop every file of `dir` (recursively) from the page cache: written back, then
/// `POSIX_FADV_DONTNEED`.
fn evict(dir: &Path) {
    use std::os::fd::AsRawFd;
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            evict(&p);
        } else if let Ok(f) = fs::File::open(&p) {
            let _ = f.sync_all();
            // SAFETY: a plain call on an fd we hold.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}
