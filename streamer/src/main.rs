//! `streamer`: Sluice's streaming server.
//!
//! With no arguments it opens `./store` (creating it with the default topology: one simulated
//! host of two virtual nodes), installs the embedded demo clip when the store holds no content,
//! starts one io_uring device per node, and serves HTTP on port 8080, printing the URLs to paste
//! into a player.

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use streamer::catalog::Catalog;
use streamer::cluster::Cluster;
use streamer::config::Config;
use streamer::http::Server;
use streamer::limits::{Counter, Over};
use streamer::metrics::Metrics;
use streamer::rtsp::{RtspConfig, RtspServer};

#[derive(Parser)]
#[command(
    name = "streamer",
    version,
    about = "Sluice streaming server (RTSP/RTP, HTTP byte ranges and HLS)"
)]
struct Cli {
    /// TOML configuration file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The store folder (default ./store).
    #[arg(long)]
    store: Option<PathBuf>,
    /// HTTP listen address (default 0.0.0.0:8080).
    #[arg(long)]
    http_listen: Option<String>,
    /// RTSP listen address (default 0.0.0.0:8554).
    #[arg(long)]
    rtsp_listen: Option<String>,
    /// A storage read slower than this fails over to the next replica, milliseconds.
    #[arg(long)]
    read_deadline_ms: Option<u64>,
    /// Heartbeat interval of the host agents, milliseconds.
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// etcd endpoints (comma-separated): node health from host leases in etcd instead of the
    /// in-process detector (needs a build with `--features etcd`).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// A copy on a node down this long is made again on another host, milliseconds
    /// (default 5000).
    #[arg(long)]
    repair_after_ms: Option<u64>,
    /// Storage hosts on this machine (comma-separated; default: the in-process ones): with
    /// etcd, a session whose copy is on a host near another streamer is redirected there.
    #[arg(long, value_delimiter = ',')]
    near_hosts: Vec<String>,
    /// The host name other streamers redirect sessions to (default: the listen address, or
    /// this machine's name when listening on every interface).
    #[arg(long)]
    advertise_host: Option<String>,
    /// A content with this many live sessions gets an extra copy on a spare (pool) node
    /// (default 100).
    #[arg(long)]
    pool_hot_sessions: Option<u64>,
    /// The pool copy is given back after this long below half of that, milliseconds
    /// (default 60000).
    #[arg(long)]
    pool_cool_after_ms: Option<u64>,
    /// An RTSP session not heard from for this long ends, seconds (default 60).
    #[arg(long)]
    rtsp_session_timeout: Option<u64>,
    /// A request head not complete this long after it began closes the connection (HTTP:
    /// 408), seconds (default 10).
    #[arg(long)]
    header_timeout: Option<u64>,
    /// A connection with no request (and, for RTSP, no session) for this long is closed,
    /// seconds (default 60).
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// A client that takes no bytes of a response (or RTSP media) for this long is closed,
    /// seconds (default 60).
    #[arg(long)]
    send_timeout: Option<u64>,
    /// Splice pipes (64 KiB each) open at once for HTTP bodies (default 0: as many as the
    /// kernel gives); a body that finds none is copied through user space instead.
    #[arg(long)]
    max_splice_pipes: Option<usize>,
    /// Concurrent connections overall, HTTP and RTSP each (default 10000); beyond it HTTP
    /// answers 503 with Retry-After and RTSP closes.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Concurrent connections from one client address (default 1000: many viewers may share
    /// one NAT address).
    #[arg(long)]
    max_connections_per_client: Option<usize>,
    /// RTSP sessions overall (default 10000); SETUP beyond it answers 453.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// RTSP sessions from one client address (default 100).
    #[arg(long)]
    max_sessions_per_client: Option<usize>,
    /// Do not install the demo clip into an empty store.
    #[arg(long)]
    no_demo: bool,
    /// The users file (who may log in, their clearance and rights); re-read when it changes.
    #[arg(long)]
    users: Option<PathBuf>,
    /// The HMAC key file for tokens, Digest nonces and signed URLs (default STORE/auth.key,
    /// created when missing).
    #[arg(long)]
    auth_key: Option<PathBuf>,
    /// Accept Basic credentials (clear-text passwords) on RTSP and HTTP content requests.
    #[arg(long)]
    allow_basic: bool,
    /// Log one line per request (info level); otherwise only warnings. RUST_LOG overrides.
    #[arg(long, short)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Manage the users file.
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
}

#[derive(clap::Subcommand)]
enum UsersCmd {
    /// Add or replace a user; the password is read from the first line of stdin.
    Add {
        /// The users file (created if missing, mode 0600).
        file: PathBuf,
        /// User name: letters, digits, '_' and '-'.
        name: String,
        /// Highest content security level this user may play.
        #[arg(long, default_value_t = 0)]
        clearance: u32,
        /// Protocols the user may use.
        #[arg(long, value_delimiter = ',', default_value = "rtsp,http")]
        rights: Vec<String>,
        /// The Digest realm the server uses (its `auth.realm`).
        #[arg(long, default_value = "Sluice")]
        realm: String,
    },
}

fn users_command(cmd: UsersCmd) -> Result<()> {
    use streamer::auth::users::{self, Right};
    match cmd {
        UsersCmd::Add {
            file,
            name,
            clearance,
            rights,
            realm,
        } => {
            let rights = rights
                .iter()
                .map(|r| match r.trim() {
                    "rtsp" => Ok(Right::Rtsp),
                    "http" => Ok(Right::Http),
                    other => Err(anyhow::anyhow!("unknown right {other:?} (rtsp, http)")),
                })
                .collect::<Result<Vec<_>>>()?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            users::add(&file, &name, password, &realm, clearance, rights)
                .map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "{}: user {name} (clearance {clearance}) saved",
                file.display()
            );
            Ok(())
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut cfg = match &cli.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Config::default(),
    };
    if let Some(s) = &cli.store {
        cfg.store = s.clone();
    }
    if let Some(a) = &cli.http_listen {
        cfg.http_listen = a.clone();
    }
    if let Some(a) = &cli.rtsp_listen {
        cfg.rtsp_listen = a.clone();
    }
    if let Some(ms) = cli.read_deadline_ms {
        cfg.read_deadline_ms = ms;
    }
    if !cli.etcd.is_empty() {
        cfg.etcd = cli.etcd.clone();
    }
    if !cli.near_hosts.is_empty() {
        cfg.near_hosts = cli.near_hosts.clone();
    }
    if let Some(h) = &cli.advertise_host {
        cfg.advertise_host = Some(h.clone());
    }
    if let Some(ms) = cli.repair_after_ms {
        cfg.repair_after_ms = ms;
    }
    if let Some(n) = cli.pool_hot_sessions {
        cfg.pool_hot_sessions = n;
    }
    if let Some(ms) = cli.pool_cool_after_ms {
        cfg.pool_cool_after_ms = ms;
    }
    if let Some(ms) = cli.heartbeat_ms {
        cfg.heartbeat_ms = ms;
    }
    if let Some(s) = cli.rtsp_session_timeout {
        cfg.rtsp_session_timeout_secs = s;
    }
    if let Some(s) = cli.header_timeout {
        cfg.header_timeout_secs = s;
    }
    if let Some(s) = cli.idle_timeout {
        cfg.idle_timeout_secs = s;
    }
    if let Some(s) = cli.send_timeout {
        cfg.send_timeout_secs = s;
    }
    if let Some(n) = cli.max_splice_pipes {
        cfg.max_splice_pipes = n;
    }
    if let Some(n) = cli.max_connections {
        cfg.max_connections = n;
    }
    if let Some(n) = cli.max_connections_per_client {
        cfg.max_connections_per_client = n;
    }
    if let Some(n) = cli.max_sessions {
        cfg.max_sessions = n;
    }
    if let Some(n) = cli.max_sessions_per_client {
        cfg.max_sessions_per_client = n;
    }
    if cli.no_demo {
        cfg.demo = false;
    }
    if let Some(p) = &cli.users {
        cfg.auth.users_file = Some(p.clone());
    }
    if let Some(p) = &cli.auth_key {
        cfg.auth.key_file = Some(p.clone());
    }
    if cli.allow_basic {
        cfg.auth.basic = true;
    }
    Ok(cfg)
}

fn has_content(store: &std::path::Path) -> bool {
    installer::store::Store::open(store).is_ok_and(|s| !s.list().is_empty())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if let Some(Cmd::Users { cmd }) = cli.cmd.take() {
        return users_command(cmd);
    }
    let default = if cli.verbose { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_target(false)
        .init();
    let mut cfg = load_config(&cli)?;
    let open_files = raise_fd_limit();
    let mut limits = cfg.limits();
    let asked = limits.max_connections;
    if let Some(said) = open_files.and_then(|n| limits.fit_open_files(n)) {
        // Said aloud only when the operator asked for more than fits; the default is just
        // fitted to the machine.
        if asked != streamer::limits::Limits::default().max_connections {
            eprintln!("streamer: {said}");
        } else {
            tracing::info!("{said}");
        }
        cfg.max_connections = limits.max_connections;
        cfg.max_connections_per_client = limits.max_connections_per_client;
    }
    streamer::send::set_stall_timeout(std::time::Duration::from_secs(cfg.send_timeout_secs.max(1)));
    storage_device_sim::pipe_pool::set_max_open(cfg.max_splice_pipes);
    if cfg.demo && !has_content(&cfg.store) {
        eprintln!(
            "streamer: the store {} is empty: installing the demo clip",
            cfg.store.display()
        );
        streamer::demo::install(&cfg.store)?;
    } else if !cfg.store.join("store.json").exists() {
        // An empty store with the demo off: record the default topology so nodes can start.
        let mut created = installer::store::Created::default();
        installer::store::Store::open_or_create(&cfg.store, &mut created)?;
    }
    let auth = Arc::new(
        streamer::auth::Auth::open(&cfg.store, cfg.auth.clone())
            .map_err(|e| anyhow::anyhow!("access control: {e}"))?,
    );
    tokio::spawn(auth.clone().watch());
    let cluster = Arc::new(Cluster::start(&cfg.store, &cfg)?);
    let catalog = Arc::new(Catalog::new(&cfg.store, &cluster.topology));
    tokio::spawn(streamer::repair::run(
        cluster.clone(),
        catalog.clone(),
        cfg.store.clone(),
        streamer::repair::RepairConfig {
            after: std::time::Duration::from_millis(cfg.repair_after_ms),
            bytes_per_sec: cfg.repair_bytes_per_sec.max(1),
            hot_sessions: cfg.pool_hot_sessions,
            cool_after: std::time::Duration::from_millis(cfg.pool_cool_after_ms),
        },
        cluster.controller.clone(),
    ));
    let metrics = Arc::new(Metrics::default());
    let rtsp_listener = listen(&cfg.rtsp_listen, "RTSP", "--rtsp-listen").await?;
    let rtsp_local = rtsp_listener.local_addr()?;
    let rtsp = RtspServer::start(
        &rtsp_listener,
        cluster.clone(),
        catalog.clone(),
        metrics.clone(),
        RtspConfig {
            session_timeout: std::time::Duration::from_secs(cfg.rtsp_session_timeout_secs.max(1)),
            limits: cfg.limits(),
            auth: Some(auth.clone()),
        },
    )
    .await
    .context("starting RTSP")?;
    tokio::spawn(rtsp.serve(rtsp_listener));
    let listener = listen(&cfg.http_listen, "HTTP", "--http-listen").await?;
    let local = listener.local_addr()?;
    let show = |a: std::net::SocketAddr| {
        if a.ip().is_unspecified() {
            format!("localhost:{}", a.port())
        } else {
            a.to_string()
        }
    };
    let shown = show(local);
    let rtsp_shown = show(rtsp_local);
    println!(
        "streamer: serving {} on http://{shown}/ and rtsp://{rtsp_shown}/",
        cfg.store.display()
    );
    for c in catalog.all().values() {
        println!("  {}:", c.id);
        println!("    ffplay rtsp://{rtsp_shown}/{}", c.id);
        println!(
            "    ffplay -rtsp_transport tcp rtsp://{rtsp_shown}/{}",
            c.id
        );
        println!("    ffplay http://{shown}/content/{}.ts", c.id);
        println!("    ffplay http://{shown}/content/{}/index.m3u8", c.id);
        println!("    vlc http://{shown}/content/{}/index.m3u8", c.id);
    }
    println!("  catalog: http://{shown}/api/v1/contents   metrics: http://{shown}/metrics");
    // What other streamers redirect sessions to: the listen address, or this machine's name
    // (or --advertise-host) when listening on every interface ("localhost" would send a
    // viewer back to their own machine).
    let advertised = |a: std::net::SocketAddr| {
        let host = match &cfg.advertise_host {
            Some(h) => h.clone(),
            None if a.ip().is_unspecified() => hostname().unwrap_or_else(|| "localhost".into()),
            None => a.ip().to_string(),
        };
        match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]:{}", a.port()),
            Err(_) => format!("{host}:{}", a.port()),
        }
    };
    cluster.peers.set_me(
        format!("http://{}", advertised(local)),
        format!("rtsp://{}", advertised(rtsp_local)),
    );
    tokio::spawn(cluster.peers.clone().run(cluster.load.clone()));
    let server = Arc::new(Server {
        chunk: streamer::send::CHUNK,
        cluster,
        catalog,
        metrics,
        limits: cfg.limits(),
        auth,
    });
    let http_conns = Counter::new(
        server.limits.max_connections,
        server.limits.max_connections_per_client,
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match http_conns.acquire(peer.ip()) {
                    Ok(slot) => {
                        let server = server.clone();
                        tokio::spawn(async move {
                            streamer::http1::serve(server, stream, peer).await;
                            drop(slot);
                        });
                    }
                    Err(over) => {
                        server.metrics.refused(match over {
                            Over::Total => "max_connections",
                            Over::PerClient => "max_connections_per_client",
                        });
                        server.metrics.request("other", 503);
                        streamer::http1::refuse_busy(stream, server.limits.retry_after_secs);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("streamer: stopping");
                return Ok(());
            }
        }
    }
}

/// This machine's host name.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Raise the soft limit on open files to the hard one: each HTTP connection holds its socket
/// and two splice pipes (four fds, see `streamer::send`), so the usual soft limit of 1024 would
/// cap the server near 250 clients. (A connection that cannot get a pipe still works: its
/// bodies are read into memory and written.) Returns the soft limit in force.
fn raise_fd_limit() -> Option<u64> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l = raised;
            }
        }
    }
    Some(l.rlim_cur)
}

/// Bind a listening socket; a port already taken (another streamer, or another server) says
/// which flag moves it.
async fn listen(addr: &str, face: &str, flag: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{face} address {addr} is already in use (another streamer running?): \
                 stop it, or listen elsewhere with {flag} ADDR:PORT or in the configuration file"
            )
        } else {
            anyhow::Error::new(e).context(format!("listening for {face} on {addr}"))
        }
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_taken_port_names_the_flag_that_moves_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        let e = super::listen(&addr, "RTSP", "--rtsp-listen")
            .await
            .expect_err("the port is taken");
        let msg = e.to_string();
        assert!(
            msg.contains(&addr) && msg.contains("--rtsp-listen"),
            "{msg}"
        );
        assert!(
            super::listen("127.0.0.1:0", "HTTP", "--http-listen")
                .await
                .is_ok()
        );
    }
}
