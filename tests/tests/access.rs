//! Access control end to end: security levels set by `install-content add --level` and
//! `set-level`, users made by `streamer users add`, and real clients logging in the way they
//! do — ffmpeg/ffprobe with RTSP Digest from credentials in the URL, GStreamer `rtspsrc` with
//! `user-id`/`user-pw`, our RTSP client retrying on the same connection after a first 401 as
//! VLC does, bearer tokens over HTTP, and signed URLs played as HLS by ffmpeg and VLC.
//!
//! Every store holds the 12 s demo clip twice: `open` (level 0) and `secret` (level 2). Users:
//! alice (clearance 2), bob (clearance 1), carol (clearance 5, HTTP only).

use md5::{Digest as _, Md5};
use rtsp_proto::message::Method;
use sluice_tests::bin_path::{install_content_cmd, streamer, workspace_root};
use sluice_tests::http_client::{self, Response};
use sluice_tests::process::{self, Output};
use sluice_tests::prometheus::{self, Page};
use sluice_tests::rtsp_client::Client;
use sluice_tests::server::{self, Server};
use sluice_tests::store;
use sluice_tests::vlc::need;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLAYER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a change to the users file or the levels may take to be seen (checked each second).
const RELOAD_WITHIN: Duration = Duration::from_secs(10);

struct Setup {
    store: tempfile::TempDir,
    users: PathBuf,
    srv: Server,
    rtsp: SocketAddr,
    file: Vec<u8>,
}

impl Setup {
    fn http(&self) -> SocketAddr {
        self.srv.addr
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = process::run(cmd);
    assert!(out.success(), "{out}");
    out
}

/// `streamer users add FILE NAME --clearance N [--rights R]` with the password on stdin.
fn add_user(file: &Path, name: &str, password: &str, clearance: u32, rights: &str) {
    let mut cmd = server::bounded(streamer());
    cmd.args(["users", "add"])
        .arg(file)
        .arg(name)
        .args(["--clearance", &clearance.to_string(), "--rights", rights])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn streamer users add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("streamer users add");
    assert!(
        out.status.success(),
        "streamer users add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two contents, three users, and a streamer with `extra` flags (tokens last 4 s; the
/// failed-login limit is high, since these tests fail logins on purpose from one address).
fn start(extra: &[&str]) -> Setup {
    start_with(
        "[auth]\ntoken_ttl_secs = 4\nmax_failed_logins = 1000\n",
        extra,
    )
}

fn start_with(config_text: &str, extra: &[&str]) -> Setup {
    let src = workspace_root().join("media-fixtures/demo/demo.mp4");
    let store = store::with_content("sluice-access-", &src, "open");
    run_ok(
        install_content_cmd(store.path())
            .arg("add")
            .arg(&src)
            .args(["--id", "secret", "--level", "2"]),
    );
    let users = store.path().join("users.toml");
    add_user(&users, "alice", "alice-pw", 2, "rtsp,http");
    add_user(&users, "bob", "bob-pw", 1, "rtsp,http");
    add_user(&users, "carol", "carol-pw", 5, "http");
    let config = store.path().join("streamer.toml");
    std::fs::write(&config, config_text).expect("write config");
    let mut args: Vec<&str> = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(&["--users", users.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let srv = Server::start(
        server::streamer_command(store.path(), &args),
        "streamer: serving ",
    );
    let rtsp = server::rtsp_address(&srv);
    let file = std::fs::read(store::installed(store.path(), "secret").join("content.ts"))
        .expect("read content.ts");
    Setup {
        store,
        users,
        srv,
        rtsp,
        file,
    }
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    http_client::request(addr, "GET", path, headers, &[])
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn basic(user: &str, password: &str) -> String {
    http_proto::auth::basic_value(user, password)
}

fn token(addr: SocketAddr, user: &str, password: &str) -> String {
    let r = http_client::request(
        addr,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &basic(user, password))],
        &[],
    )
    .expect("POST /api/v1/tokens");
    assert_eq!(r.status, 200, "login {user}: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("token JSON");
    v["token"].as_str().expect("token").to_string()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn metrics(addr: SocketAddr) -> Page {
    let r = http_client::get(addr, "/metrics").expect("GET /metrics");
    prometheus::parse(&r.text()).expect("metrics parse")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// A parameter of a `WWW-Authenticate: Digest …` challenge.
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[at..].find('"')? + at;
    Some(challenge[at..end].to_string())
}

/// The Digest `Authorization` value (RFC 2069 form, as live555/VLC send it).
fn digest(user: &str, password: &str, challenge: &str, method: &str, uri: &str) -> String {
    let realm = challenge_param(challenge, "realm").expect("realm");
    let nonce = challenge_param(challenge, "nonce").expect("nonce");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
    )
}

/// `pred` becomes true within `limit`, polled every 200 ms.
fn eventually(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Levels over HTTP: public content for anyone; protected content for a bearer token whose
/// user's clearance reaches the level; 401 with a Bearer challenge otherwise (no credentials,
/// a forged token, an expired token, Basic when not enabled); 403 for a user below the level.
#[test]
fn http_serves_by_clearance_with_bearer_tokens() {
    let s = start(&[]);
    let a = s.http();
    let r = get(a, "/content/open.ts", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == s.file, "the public content is the installed file");

    for path in [
        "/content/secret.ts",
        "/content/secret/index.m3u8",
        "/content/secret/media.m3u8",
        "/content/secret/content.ts",
    ] {
        let r = get(a, path, &[]);
        assert_eq!(r.status, 401, "{path} without credentials: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"Sluice\""),
            "{path}"
        );
    }
    // Logins: wrong password and unknown user refused.
    for (u, p) in [("alice", "wrong"), ("mallory", "x")] {
        let r = http_client::request(
            a,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &basic(u, p))],
            &[],
        )
        .unwrap();
        assert_eq!(r.status, 401, "login {u}/{p}");
    }
    let alice = token(a, "alice", "alice-pw");
    let r = get(
        a,
        "/content/secret.ts",
        &[("Authorization", &bearer(&alice))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == s.file, "alice gets the whole protected file");
    let r = get(
        a,
        "/content/secret.ts",
        &[
            ("Authorization", &bearer(&alice)),
            ("Range", "bytes=1000-1999"),
        ],
    );
    assert_eq!(r.status, 206);
    assert!(r.body == s.file[1000..2000]);

    let bob = token(a, "bob", "bob-pw");
    let r = get(a, "/content/secret.ts", &[("Authorization", &bearer(&bob))]);
    assert_eq!(r.status, 403, "bob (clearance 1) on level 2: {}", r.text());
    assert!(r.text().contains("needs clearance 2"), "{}", r.text());
    let r = get(a, "/content/open.ts", &[("Authorization", &bearer(&bob))]);
    assert_eq!(r.status, 200, "bob on the public content");
    // carol may use HTTP only, with clearance 5.
    let carol = token(a, "carol", "carol-pw");
    let r = get(
        a,
        "/content/secret.ts",
        &[("Authorization", &bearer(&carol))],
    );
    assert_eq!(r.status, 200);

    // Forged: bob's token with alice's name, or with another expiry.
    let forged = bob.replacen("bob", "alice", 1);
    let r = get(
        a,
        "/content/secret.ts",
        &[("Authorization", &bearer(&forged))],
    );
    assert_eq!(r.status, 401, "a forged token");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("error=\"invalid_token\"")),
        "{:?}",
        r.headers
    );
    let parts: Vec<&str> = alice.split('.').collect();
    let later = format!(
        "{}.{}.{}",
        parts[0],
        parts[1].parse::<u64>().unwrap() + 3600,
        parts[2]
    );
    let r = get(
        a,
        "/content/secret.ts",
        &[("Authorization", &bearer(&later))],
    );
    assert_eq!(r.status, 401, "a token with its expiry pushed back");
    for junk in [
        "Bearer",
        "Bearer a b",
        "Negotiate x",
        "Digest username=\"alice\"",
    ] {
        let r = get(a, "/content/secret.ts", &[("Authorization", junk)]);
        assert_eq!(r.status, 401, "{junk}");
    }
    // Basic is not accepted on content unless the server is told to.
    let r = get(
        a,
        "/content/secret.ts",
        &[("Authorization", &basic("alice", "alice-pw"))],
    );
    assert_eq!(r.status, 401, "Basic on content without --allow-basic");

    // Tokens last 4 s here: alice's stops working.
    assert!(
        eventually(Duration::from_secs(10), || {
            get(
                a,
                "/content/secret.ts",
                &[("Authorization", &bearer(&alice))],
            )
            .status
                == 401
        }),
        "alice's token never expired"
    );
    let m = metrics(a);
    let refused = |reason| m.sum("sluice_http_refused_total", &[("reason", reason)]);
    assert!(
        refused("unauthenticated") >= 12.0,
        "{}",
        refused("unauthenticated")
    );
    assert!(refused("forbidden") >= 1.0);
    // The catalog shows each content's level.
    let r = get(a, "/api/v1/contents/secret", &[]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["level"], 2);
}

/// Signed, expiring URLs: minted for a user with the clearance, they play the protected
/// content as HLS in ffmpeg and in VLC (players that send no headers: every playlist and
/// segment they resolve carries the signature). Forged, expired and borrowed signatures: 403.
#[test]
fn signed_urls_play_hls_in_ffmpeg_and_vlc() {
    let s = start(&[]);
    let a = s.http();
    assert_eq!(get(a, "/api/v1/sign/secret", &[]).status, 401);
    let bob = basic("bob", "bob-pw");
    assert_eq!(
        get(a, "/api/v1/sign/secret", &[("Authorization", &bob)]).status,
        403
    );
    let alice = basic("alice", "alice-pw");
    let r = get(
        a,
        "/api/v1/sign/secret?ttl=600",
        &[("Authorization", &alice)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let hls = v["urls"]["hls"].as_str().unwrap().to_string();
    let ts = v["urls"]["ts"].as_str().unwrap().to_string();
    let prefix = v["prefix"].as_str().unwrap().to_string();
    assert!(hls.starts_with("/s/") && hls.ends_with("/content/secret/index.m3u8"));
    let r = get(a, &ts, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == s.file, "the signed TS URL gives the file");

    // ffmpeg plays the signed HLS playlist to the end (stream copy, no decoding).
    let url = format!("http://{a}{hls}");
    let out = process::run(
        Command::new(need("ffmpeg"))
            .args(["-v", "error", "-i", &url, "-c", "copy", "-f", "null", "-"])
            .args(["-progress", "pipe:1"]),
    );
    assert!(out.success(), "ffmpeg on the signed playlist\n{out}");
    let end_us: f64 = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0.0);
    assert!(
        end_us / 1e6 > 11.0,
        "ffmpeg stopped at {} s\n{out}",
        end_us / 1e6
    );

    // VLC, as an unprivileged user, plays it too.
    let before = metrics(a);
    let (mut cmd, _home) = sluice_tests::vlc::play_and_exit(&url);
    let out = process::spawn(&mut cmd).wait_at_most(PLAYER_TIMEOUT);
    assert!(out.success(), "cvlc on the signed playlist\n{out}");
    let errors = sluice_tests::vlc::errors(&out);
    assert!(errors.is_empty(), "cvlc errors: {errors:?}\n{out}");
    let after = metrics(a);
    let pulled = after.sum(
        "sluice_http_response_bytes_total",
        &[("route", "content_ts")],
    ) - before.sum(
        "sluice_http_response_bytes_total",
        &[("route", "content_ts")],
    );
    assert!(
        pulled >= s.file.len() as f64 * 0.9,
        "VLC pulled {pulled} of {} bytes",
        s.file.len()
    );

    // A signature for `open` does not open `secret`; a changed MAC or expiry is refused.
    let r = get(a, "/api/v1/sign/open", &[("Authorization", &bob)]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let open_prefix = v["prefix"].as_str().unwrap();
    assert_eq!(
        get(a, &format!("{open_prefix}/content/secret.ts"), &[]).status,
        403
    );
    let mut forged = prefix.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        get(a, &format!("{forged}/content/secret/index.m3u8"), &[]).status,
        403
    );
    let parts: Vec<&str> = prefix.split('/').collect(); // "", "s", EXPIRY, MAC
    let pushed = format!(
        "/s/{}/{}",
        parts[2].parse::<u64>().unwrap() + 3600,
        parts[3]
    );
    assert_eq!(
        get(a, &format!("{pushed}/content/secret.ts"), &[]).status,
        403
    );
    assert_eq!(
        get(a, "/s/1/nothex/content/secret.ts", &[]).status,
        403,
        "a malformed prefix"
    );
    // Expiry: a 1 s signature stops working.
    let r = get(a, "/api/v1/sign/secret?ttl=1", &[("Authorization", &alice)]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let short = v["urls"]["ts"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(5), || get(a, &short, &[]).status == 403),
        "the 1 s signed URL never expired"
    );
    assert_eq!(
        get(
            a,
            "/api/v1/sign/secret?ttl=999999999",
            &[("Authorization", &alice)]
        )
        .status,
        400
    );
}

/// RTSP Digest: a first DESCRIBE without credentials gets 401 and a Digest challenge and the
/// connection stays open; the same connection retries with a Digest response and plays
/// (VLC's way). ffprobe (credentials in the URL) and GStreamer (`user-id`/`user-pw`) log in
/// by themselves; a user below the level gets 403; a wrong password, a response for another
/// URI, and Basic (not enabled) get 401; a signed URL plays without credentials.
#[test]
fn rtsp_digest_logins_like_vlc_ffmpeg_and_gstreamer() {
    let s = start(&[]);
    let base = format!("rtsp://{}/secret", s.rtsp);
    let mut c = Client::connect(s.rtsp, "secret").expect("connect");
    let r = c.request(Method::Describe, &base, &[]);
    assert_eq!(r.status, 401);
    let challenge = r
        .headers
        .get("WWW-Authenticate")
        .expect("a challenge")
        .to_string();
    assert!(
        challenge.starts_with("Digest realm=\"Sluice\""),
        "{challenge}"
    );
    assert!(
        !r.headers
            .get_all("WWW-Authenticate")
            .any(|v| v.starts_with("Basic")),
        "Basic offered without --allow-basic"
    );
    // Wrong password, another user's clearance, a response made for another URI, Basic.
    let wrong = digest("alice", "nope", &challenge, "DESCRIBE", &base);
    assert_eq!(
        c.request(Method::Describe, &base, &[("Authorization", &wrong)])
            .status,
        401
    );
    let other_uri = digest("alice", "alice-pw", &challenge, "DESCRIBE", "rtsp://x/open");
    assert_eq!(
        c.request(Method::Describe, &base, &[("Authorization", &other_uri)])
            .status,
        401
    );
    let bob = digest("bob", "bob-pw", &challenge, "DESCRIBE", &base);
    assert_eq!(
        c.request(Method::Describe, &base, &[("Authorization", &bob)])
            .status,
        403
    );
    let b = basic("alice", "alice-pw");
    assert_eq!(
        c.request(Method::Describe, &base, &[("Authorization", &b)])
            .status,
        401
    );
    // The right answer, on the same connection.
    let ok = digest("alice", "alice-pw", &challenge, "DESCRIBE", &base);
    let r = c.request(Method::Describe, &base, &[("Authorization", &ok)]);
    assert_eq!(r.status, 200, "{r:?}");
    let track = format!("{base}/track1");
    let setup_auth = digest("alice", "alice-pw", &challenge, "SETUP", &track);
    let r = c.request(
        Method::Setup,
        &track,
        &[
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
            ("Authorization", &setup_auth),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    c.session = r
        .headers
        .get("Session")
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let r = c.request(Method::Play, &format!("{base}/"), &[("Range", "npt=0-")]);
    assert_eq!(r.status, 200);
    let (packets, _) = c.collect(Instant::now() + Duration::from_secs(2));
    assert!(
        packets.len() > 10,
        "{} RTP packets after PLAY",
        packets.len()
    );
    drop(c);

    // The public content needs nothing.
    let mut c = Client::connect(s.rtsp, "open").expect("connect");
    let open = format!("rtsp://{}/open", s.rtsp);
    assert_eq!(c.request(Method::Describe, &open, &[]).status, 200);

    // ffprobe with credentials in the URL (ffmpeg answers the Digest challenge).
    let probe = |url: &str| {
        process::run(
            Command::new(need("ffprobe"))
                .args(["-v", "error", "-show_entries", "format=duration", "-of"])
                .args(["default=nw=1:nk=1", url]),
        )
    };
    let out = probe(&format!("rtsp://alice:alice-pw@{}/secret", s.rtsp));
    assert!(out.success(), "ffprobe as alice\n{out}");
    assert!(out.stdout.trim().starts_with("12"), "{out}");
    let out = probe(&format!("rtsp://bob:bob-pw@{}/secret", s.rtsp));
    assert!(!out.success() && out.stderr.contains("403"), "bob\n{out}");
    let out = probe(&format!("rtsp://alice:bad@{}/secret", s.rtsp));
    assert!(
        !out.success() && out.stderr.contains("401"),
        "bad password\n{out}"
    );
    // carol has no RTSP right.
    let out = probe(&format!("rtsp://carol:carol-pw@{}/secret", s.rtsp));
    assert!(!out.success() && out.stderr.contains("403"), "carol\n{out}");

    // A signed URL plays over RTSP without credentials (SETUP's URL keeps the prefix).
    let r = get(
        s.http(),
        "/api/v1/sign/secret",
        &[("Authorization", &basic("alice", "alice-pw"))],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let path = v["urls"]["rtsp_path"].as_str().unwrap();
    let out = probe(&format!("rtsp://{}{path}", s.rtsp));
    assert!(out.success(), "ffprobe on the signed RTSP URL\n{out}");

    // GStreamer logs in with user-id / user-pw and plays to the end over TCP.
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("gst.ts");
    let out = process::spawn(
        Command::new(need("gst-launch-1.0"))
            .arg("rtspsrc")
            .arg(format!("location={base}"))
            .args(["user-id=alice", "user-pw=alice-pw", "protocols=tcp"])
            .args(["!", "rtpmp2tdepay", "!", "filesink"])
            .arg(format!("location={}", sink.display())),
    )
    .wait_at_most(PLAYER_TIMEOUT);
    let got = std::fs::read(&sink).unwrap_or_default();
    assert!(
        out.stdout.contains("Got EOS from element") && got.len() as f64 > 0.9 * s.file.len() as f64,
        "gst as alice: {} of {} bytes\n{out}",
        got.len(),
        s.file.len()
    );
    let m = metrics(s.http());
    assert!(
        m.sum(
            "sluice_rtsp_refused_total",
            &[("reason", "unauthenticated")]
        ) >= 4.0
    );
    assert!(m.sum("sluice_rtsp_refused_total", &[("reason", "forbidden")]) >= 2.0);
}

/// With `--allow-basic`, Basic works on RTSP and HTTP and is offered in challenges. The users
/// file and the levels are re-read while the server runs: bob's raised clearance and a level
/// change apply within seconds, and a users file that no longer parses leaves the last good
/// users in force.
#[test]
fn basic_when_allowed_and_changes_apply_without_restart() {
    let s = start(&["--allow-basic"]);
    let a = s.http();
    let alice = basic("alice", "alice-pw");
    let r = get(a, "/content/secret.ts", &[]);
    assert_eq!(r.status, 401);
    let offered: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        offered.iter().any(|v| v.starts_with("Basic")),
        "{offered:?}"
    );
    let r = get(a, "/content/secret.ts", &[("Authorization", &alice)]);
    assert_eq!(r.status, 200);
    assert!(r.body == s.file);
    let mut c = Client::connect(s.rtsp, "secret").expect("connect");
    let base = format!("rtsp://{}/secret", s.rtsp);
    assert_eq!(
        c.request(Method::Describe, &base, &[("Authorization", &alice)])
            .status,
        200
    );

    // bob's clearance goes from 1 to 2.
    let bob = basic("bob", "bob-pw");
    assert_eq!(
        get(a, "/content/secret.ts", &[("Authorization", &bob)]).status,
        403
    );
    add_user(&s.users, "bob", "bob-pw", 2, "rtsp,http");
    assert!(
        eventually(RELOAD_WITHIN, || get(
            a,
            "/content/secret.ts",
            &[("Authorization", &bob)]
        )
        .status
            == 200),
        "bob's new clearance was never applied"
    );
    // The public content becomes level 3, then public again.
    run_ok(install_content_cmd(s.store.path()).args(["set-level", "open", "3"]));
    assert!(
        eventually(RELOAD_WITHIN, || get(a, "/content/open.ts", &[]).status
            == 401),
        "the new level was never applied"
    );
    assert_eq!(
        get(a, "/content/open.ts", &[("Authorization", &alice)]).status,
        403,
        "alice (2) on level 3"
    );
    run_ok(install_content_cmd(s.store.path()).args(["set-level", "open", "0"]));
    assert!(eventually(RELOAD_WITHIN, || get(
        a,
        "/content/open.ts",
        &[]
    )
    .status
        == 200));
    // A broken users file: reported, and the last good users stay.
    std::fs::write(&s.users, "[users.alice\nclearance = ").unwrap();
    assert!(
        s.srv
            .wait_for_line(RELOAD_WITHIN, |l| l.contains("users file not reloaded"))
            .is_some()
            || s.srv.stderr().contains("users file not reloaded"),
        "no report of the broken users file\n{}",
        s.srv.stderr()
    );
    assert_eq!(
        get(a, "/content/secret.ts", &[("Authorization", &alice)]).status,
        200
    );
    // install-content refuses a level for a content that is not installed.
    let out = process::run(install_content_cmd(s.store.path()).args(["set-level", "nope", "1"]));
    assert!(
        !out.success() && out.stderr.contains("not installed"),
        "{out}"
    );
}

/// Credential guessing: after `max_failed_logins` (3 here) failed logins an address is refused
/// without a check, even with the right password (HTTP 429 with `Retry-After`, RTSP 403),
/// while requests without credentials were never counted.
#[test]
fn guessing_passwords_gets_an_address_refused() {
    let s = start_with("[auth]\nmax_failed_logins = 3\n", &[]);
    let a = s.http();
    for _ in 0..5 {
        assert_eq!(get(a, "/content/secret.ts", &[]).status, 401);
    }
    let login = |user: &str, pw: &str| {
        http_client::request(
            a,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &basic(user, pw))],
            &[],
        )
        .expect("POST /api/v1/tokens")
    };
    for guess in ["a", "b", "c"] {
        assert_eq!(login("alice", guess).status, 401, "guess {guess}");
    }
    let r = login("alice", "alice-pw");
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
    let mut c = Client::connect(s.rtsp, "secret").expect("connect");
    let base = format!("rtsp://{}/secret", s.rtsp);
    let r = c.request(
        Method::Describe,
        &base,
        &[("Authorization", &basic("alice", "x"))],
    );
    assert_eq!(r.status, 403, "RTSP from the throttled address");
    let m = metrics(a);
    assert!(
        m.sum(
            "sluice_http_refused_total",
            &[("reason", "login_throttled")]
        ) >= 1.0
    );
    assert!(
        m.sum(
            "sluice_rtsp_refused_total",
            &[("reason", "login_throttled")]
        ) >= 1.0
    );
}
