//! `httpload`'s engine: a light HTTP/1.1 keep-alive load generator that costs the client as
//! little CPU as possible, so that the server, not the client, is what gets measured.
//!
//! - One or more threads, each running an edge-free (level-triggered) `epoll` loop over its share
//!   of the connections; one request in flight per connection (no pipelining).
//! - Only the response head is read into memory (a small buffer; the few body bytes that arrive
//!   in the same segment are counted and dropped). The body is discarded in the kernel with
//!   `recv(fd, NULL, remaining, MSG_TRUNC)`: for TCP that frees the queued data without copying
//!   it to user space, so the client's cost per byte is only the socket's own accounting.
//! - Every response is checked: the status (200 whole, 206 range), `Content-Length` (equal to the
//!   whole file, or the range asked for), `Content-Range` (the exact range asked for), and that
//!   exactly `Content-Length` body bytes arrive before the next request goes out (an early close
//!   or a longer body is an error).
//! - The run has a warm-up, then a measured window; only requests that finish inside the window
//!   count, and the bytes received inside it. Latency is per request, from the moment the request
//!   was written to the last body byte.
//! - CPU is sampled at the window's edges: the client's own (`getrusage(RUSAGE_SELF)`), the
//!   server's (`utime + stime` from `/proc/PID/stat` of each given pid, threads included), and the
//!   whole machine's busy time (`/proc/stat`), so other load on the machine shows up in the report.

use crate::Rng;
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::IntoRawFd;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// Host header value.
    pub host: String,
    pub path: String,
    pub conns: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// 0: whole-file GETs; otherwise `Range` requests of this many bytes at random offsets that
    /// are multiples of `range_align`.
    pub range_size: u64,
    pub range_align: u64,
    pub seed: u64,
    /// Server processes whose CPU time is sampled over the window.
    pub server_pids: Vec<i32>,
}

impl Config {
    /// Parses `http://host:port/path`.
    pub fn from_url(url: &str) -> Result<Config> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only http:// URLs: {url}"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hp = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = hp
            .to_socket_addrs()
            .with_context(|| format!("resolving {hp}"))?
            .next()
            .ok_or_else(|| anyhow!("no address for {hp}"))?;
        Ok(Config {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
            conns: 8,
            threads: 1,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            range_size: 0,
            range_align: 0,
            seed: 0x5eed_1234_abcd_0001,
            server_pids: Vec::new(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub file_size: u64,
    pub window_s: f64,
    pub requests: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub reconnects: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub client_cpu_s: f64,
    /// None when no pids were given.
    pub server_cpu_s: Option<f64>,
    /// Busy CPU-seconds of the whole machine (all cores) over the window.
    pub machine_busy_s: f64,
    /// Of which softirq time (loopback TCP delivery and ACK processing). With tick-based CPU
    /// accounting (this kernel) a softirq tick is also charged to the task it interrupted, so
    /// this overlaps the server's and the client's CPU; it is shown for information.
    pub softirq_s: f64,
    /// Every in-window request's latency, microseconds, sorted (not in the `RESULT` line).
    pub lat_us: Vec<u32>,
}

pub const GIB: f64 = (1u64 << 30) as f64;

impl Report {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.window_s
    }
    pub fn gib_s(&self) -> f64 {
        self.bytes as f64 / GIB / self.window_s
    }
    pub fn server_cpu_per_gib(&self) -> Option<f64> {
        self.server_cpu_s
            .map(|c| c / (self.bytes as f64 / GIB).max(1e-9))
    }
    /// CPU of everything else on the machine (other processes, kernel threads).
    pub fn other_cpu_s(&self) -> f64 {
        self.machine_busy_s - self.client_cpu_s - self.server_cpu_s.unwrap_or(0.0)
    }

    /// One line of `key=value` pairs, for drivers.
    pub fn machine_line(&self) -> String {
        format!(
            "RESULT file_size={} window_s={:.3} requests={} bytes={} rps={:.1} gib_s={:.4} \
             p50_ms={:.3} p99_ms={:.3} max_ms={:.3} errors={} reconnects={} client_cpu_s={:.3} \
             server_cpu_s={} server_cpu_per_gib={} machine_busy_s={:.3} softirq_s={:.3}",
            self.file_size,
            self.window_s,
            self.requests,
            self.bytes,
            self.rps(),
            self.gib_s(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.reconnects,
            self.client_cpu_s,
            self.server_cpu_s.map_or("-".into(), |c| format!("{c:.3}")),
            self.server_cpu_per_gib()
                .map_or("-".into(), |c| format!("{c:.4}")),
            self.machine_busy_s,
            self.softirq_s,
        )
    }

    pub fn parse_machine_line(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("RESULT ")?;
        let mut r = Report::default();
        let mut rps_seen = false;
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let f = || v.parse::<f64>().ok();
            match k {
                "file_size" => r.file_size = v.parse().ok()?,
                "window_s" => r.window_s = f()?,
                "requests" => r.requests = v.parse().ok()?,
                "bytes" => r.bytes = v.parse().ok()?,
                "p50_ms" => r.p50_ms = f()?,
                "p99_ms" => r.p99_ms = f()?,
                "max_ms" => r.max_ms = f()?,
                "errors" => r.errors = v.parse().ok()?,
                "reconnects" => r.reconnects = v.parse().ok()?,
                "client_cpu_s" => r.client_cpu_s = f()?,
                "server_cpu_s" => r.server_cpu_s = f(),
                "machine_busy_s" => r.machine_busy_s = f()?,
                "softirq_s" => r.softirq_s = f()?,
                "rps" => rps_seen = true,
                _ => {}
            }
        }
        if !rps_seen {
            return None;
        }
        Some(r)
    }
}

/// The p-quantile (nearest rank) of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[idx] as f64 / 1000.0
}

/// A blocking `HEAD` to learn the file's size (and that the URL works).
pub fn head_size(cfg: &Config) -> Result<u64> {
    let mut s = TcpStream::connect(cfg.addr).with_context(|| format!("connecting {}", cfg.addr))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "HEAD {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        cfg.path, cfg.host
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let end = find_head_end(&buf).ok_or_else(|| anyhow!("HEAD: no complete response head"))?;
    let h = parse_head(&buf[..end]).map_err(|e| anyhow!("HEAD: {e}"))?;
    if h.status != 200 {
        bail!("HEAD {}: status {}", cfg.path, h.status);
    }
    h.content_length
        .ok_or_else(|| anyhow!("HEAD: no Content-Length"))
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

struct Head {
    status: u16,
    content_length: Option<u64>,
    /// `Content-Range: bytes a-b/total`.
    content_range: Option<(u64, u64)>,
    close: bool,
}

fn parse_head(b: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(b).map_err(|_| "head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let ver = parts.next().unwrap_or("");
    if !ver.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut h = Head {
        status,
        content_length: None,
        content_range: None,
        close: ver == "HTTP/1.0",
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            h.content_length = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("content-range") {
            let r = value
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('/'))
                .and_then(|(r, _)| r.split_once('-'))
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| format!("bad Content-Range {value:?}"))?;
            h.content_range = Some(r);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                h.close = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                h.close = false;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unexpected Transfer-Encoding {value:?}"));
        }
    }
    Ok(h)
}

#[derive(PartialEq)]
enum State {
    Sending,
    Head,
    Body,
}

struct Conn {
    fd: i32,
    state: State,
    req: Vec<u8>,
    sent: usize,
    head: Vec<u8>,
    remaining: u64,
    /// The range asked for (inclusive), or None for the whole file.
    asked: Option<(u64, u64)>,
    close_after: bool,
    t_send: Instant,
}

const HEAD_CAP: usize = 2048;
const MAX_HEAD: usize = 16 * 1024;

/// What one worker thread counted inside the window.
#[derive(Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    reconnects: u64,
    lat_us: Vec<u32>,
}

struct Worker<'a> {
    cfg: &'a Config,
    file_size: u64,
    epfd: i32,
    conns: Vec<Conn>,
    rng: Rng,
    window: (Instant, Instant),
    tally: Tally,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Worker<'_> {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    /// Errors during warm-up count too: a wrong answer is wrong whenever it comes.
    fn error(&mut self, msg: String) {
        self.tally.errors += 1;
        if self.tally.first_error.is_none() {
            self.tally.first_error = Some(msg);
        }
    }

    fn connect(&mut self) -> Result<i32> {
        let s = TcpStream::connect(self.cfg.addr)
            .with_context(|| format!("connecting {}", self.cfg.addr))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let fd = s.into_raw_fd();
        Ok(fd)
    }

    fn register(&self, i: usize, events: u32, op: i32) {
        let fd = self.conns[i].fd;
        let mut ev = libc::epoll_event {
            events,
            u64: i as u64,
        };
        // SAFETY: epfd and fd are open descriptors we own; ev is a valid epoll_event.
        let r = unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) };
        assert!(r == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    }

    /// Builds and writes conn i's next request.
    fn start_request(&mut self, i: usize) {
        let cfg = self.cfg;
        let (req, asked) = if cfg.range_size == 0 {
            (
                format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", cfg.path, cfg.host),
                None,
            )
        } else {
            let slots = (self.file_size.saturating_sub(cfg.range_size)) / cfg.range_align + 1;
            let a = (self.rng.next_u64() % slots) * cfg.range_align;
            let b = (a + cfg.range_size).min(self.file_size) - 1;
            (
                format!(
                    "GET {} HTTP/1.1\r\nHost: {}\r\nRange: bytes={a}-{b}\r\n\r\n",
                    cfg.path, cfg.host
                ),
                Some((a, b)),
            )
        };
        let c = &mut self.conns[i];
        c.req.clear();
        c.req.extend_from_slice(req.as_bytes());
        c.sent = 0;
        c.head.clear();
        c.asked = asked;
        c.state = State::Sending;
        c.t_send = Instant::now();
        self.send_some(i);
    }

    fn send_some(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while c.sent < c.req.len() {
            let rest = &c.req[c.sent..];
            // SAFETY: rest is a valid readable slice; fd is a connected socket.
            let n = unsafe {
                libc::send(
                    c.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = errno();
                if e == libc::EAGAIN {
                    // Rare: wait for room (EPOLLOUT) before reading the answer.
                    self.register(
                        i,
                        (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                        libc::EPOLL_CTL_MOD,
                    );
                    return;
                }
                self.error(format!("send: {}", std::io::Error::from_raw_os_error(e)));
                self.reconnect(i);
                return;
            }
            c.sent += n as usize;
        }
        if c.state == State::Sending {
            c.state = State::Head;
        }
    }

    fn reconnect(&mut self, i: usize) {
        let old = self.conns[i].fd;
        // SAFETY: old is our open descriptor; closing it also removes it from the epoll set.
        unsafe { libc::close(old) };
        self.tally.reconnects += 1;
        match self.connect() {
            Ok(fd) => {
                self.conns[i].fd = fd;
                self.register(i, libc::EPOLLIN as u32, libc::EPOLL_CTL_ADD);
                if Instant::now() < self.window.1 {
                    self.start_request(i);
                }
            }
            Err(e) => {
                self.error(format!("reconnect: {e:#}"));
                // Leave a dead descriptor; the loop will not hear from it again.
                self.conns[i].fd = -1;
            }
        }
    }

    fn finish(&mut self, i: usize) {
        let now = Instant::now();
        let c = &self.conns[i];
        if self.in_window(now) {
            self.tally.requests += 1;
            let us = now
                .duration_since(c.t_send)
                .as_micros()
                .min(u32::MAX as u128) as u32;
            self.tally.lat_us.push(us);
        }
        if c.close_after {
            self.reconnect(i);
        } else if now < self.window.1 {
            self.start_request(i);
        }
    }

    fn count_bytes(&mut self, n: u64) {
        if self.in_window(Instant::now()) {
            self.tally.bytes += n;
        }
    }

    /// Discards up to `remaining` body bytes in the kernel; returns false if conn i was reset.
    fn drain_body(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        let want = c.remaining.min(1 << 30) as usize;
        // SAFETY: with MSG_TRUNC on a TCP socket the kernel discards the data and never writes
        // through the (null) buffer pointer.
        let n = unsafe {
            libc::recv(
                c.fd,
                std::ptr::null_mut(),
                want,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            c.remaining -= n as u64;
            self.count_bytes(n as u64);
            if self.conns[i].remaining == 0 {
                self.finish(i);
            }
            return true;
        }
        if n == 0 {
            let left = self.conns[i].remaining;
            self.error(format!("connection closed with {left} body bytes missing"));
            self.reconnect(i);
            return false;
        }
        let e = errno();
        if e != libc::EAGAIN {
            self.error(format!("recv: {}", std::io::Error::from_raw_os_error(e)));
            self.reconnect(i);
            return false;
        }
        true
    }

    fn read_head(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.head.capacity() - c.head.len() < 512 {
            c.head.reserve(HEAD_CAP);
        }
        let spare = c.head.spare_capacity_mut();
        // SAFETY: reading into the vector's spare capacity, then growing len by what was read.
        let n = unsafe {
            libc::recv(
                c.fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            let e = errno();
            if n < 0 && e == libc::EAGAIN {
                return;
            }
            let what = if n == 0 {
                "connection closed before the response head".to_string()
            } else {
                format!("recv: {}", std::io::Error::from_raw_os_error(e))
            };
            self.error(what);
            self.reconnect(i);
            return;
        }
        // SAFETY: the kernel initialised n bytes of spare capacity.
        unsafe { c.head.set_len(c.head.len() + n as usize) };
        let Some(end) = find_head_end(&c.head) else {
            if c.head.len() > MAX_HEAD {
                self.error("response head too long".into());
                self.reconnect(i);
            }
            return;
        };
        let extra = (c.head.len() - end) as u64;
        let checked = parse_head(&c.head[..end]).and_then(|h| {
            let want_status = if c.asked.is_some() { 206 } else { 200 };
            if h.status != want_status {
                return Err(format!("status {} (wanted {want_status})", h.status));
            }
            let cl = h.content_length.ok_or("no Content-Length")?;
            let want_len = match c.asked {
                Some((a, b)) => {
                    if h.content_range != Some((a, b)) {
                        return Err(format!(
                            "Content-Range {:?} for bytes={a}-{b}",
                            h.content_range
                        ));
                    }
                    b - a + 1
                }
                None => self.file_size,
            };
            if cl != want_len {
                return Err(format!("Content-Length {cl} (wanted {want_len})"));
            }
            if extra > cl {
                return Err(format!("{} bytes past Content-Length", extra - cl));
            }
            Ok((cl, h.close))
        });
        match checked {
            Err(e) => {
                self.error(e);
                self.reconnect(i);
            }
            Ok((cl, close)) => {
                let c = &mut self.conns[i];
                c.remaining = cl - extra;
                c.close_after = close;
                c.state = State::Body;
                self.count_bytes(extra);
                if self.conns[i].remaining == 0 {
                    self.finish(i);
                } else {
                    // Likely more is already queued: take it now rather than after epoll_wait.
                    self.drain_body(i);
                }
            }
        }
    }

    fn run(&mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; self.conns.len().max(1)];
        for i in 0..self.conns.len() {
            self.start_request(i);
        }
        loop {
            let now = Instant::now();
            if now >= self.window.1 {
                break;
            }
            let timeout = (self.window.1 - now).as_millis().clamp(1, 100) as i32;
            // SAFETY: events is a valid buffer of events.len() entries.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, timeout)
            };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                panic!("epoll_wait: {}", std::io::Error::last_os_error());
            }
            for ev in &events[..n as usize] {
                let i = ev.u64 as usize;
                let flags = ev.events;
                if self.conns[i].fd < 0 {
                    continue;
                }
                if flags & libc::EPOLLOUT as u32 != 0 && self.conns[i].state == State::Sending {
                    self.register(i, libc::EPOLLIN as u32, libc::EPOLL_CTL_MOD);
                    self.send_some(i);
                }
                if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    match self.conns[i].state {
                        State::Head => self.read_head(i),
                        State::Body => {
                            self.drain_body(i);
                        }
                        State::Sending => {
                            // The server answered (or closed) before the request was written.
                            self.read_head(i);
                        }
                    }
                }
            }
        }
        for c in &self.conns {
            if c.fd >= 0 {
                // SAFETY: our descriptor, closed once.
                unsafe { libc::close(c.fd) };
            }
        }
        // SAFETY: our epoll descriptor.
        unsafe { libc::close(self.epfd) };
    }
}

/// `utime + stime` of a process (all its threads), seconds.
pub fn proc_cpu_s(pid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ut + st) as f64 / clk_tck())
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy (non-idle, non-iowait) CPU seconds of the whole machine since boot, and of those the
/// softirq seconds.
pub fn machine_busy_s() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let Some(line) = s.lines().next() else {
        return (0.0, 0.0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user)
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| *x)
        .sum();
    let softirq = v.get(6).copied().unwrap_or(0);
    (busy as f64 / clk_tck(), softirq as f64 / clk_tck())
}

fn self_cpu_s() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: zero-initialised and filled on success.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn servers_cpu_s(pids: &[i32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| proc_cpu_s(p)).sum()
}

/// Runs the load and reports on the measured window.
pub fn run(cfg: &Config) -> Result<Report> {
    if cfg.conns == 0 || cfg.threads == 0 {
        bail!("conns and threads must be at least 1");
    }
    let file_size = head_size(cfg)?;
    let mut cfg = cfg.clone();
    if cfg.range_size > 0 {
        if cfg.range_align == 0 {
            cfg.range_align = cfg.range_size;
        }
        if cfg.range_size > file_size {
            bail!("range size {} > file size {file_size}", cfg.range_size);
        }
    }
    let cfg = &cfg;
    let threads = cfg.threads.min(cfg.conns);
    let start = Instant::now();
    let window = (start + cfg.warmup, start + cfg.warmup + cfg.duration);
    let (results, samples) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = cfg.conns / threads + usize::from(t < cfg.conns % threads);
                s.spawn(move || -> Result<Tally> {
                    // SAFETY: plain syscall.
                    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                    if epfd < 0 {
                        bail!("epoll_create1: {}", std::io::Error::last_os_error());
                    }
                    let mut w = Worker {
                        cfg,
                        file_size,
                        epfd,
                        conns: Vec::with_capacity(n),
                        rng: Rng(cfg.seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                        window,
                        tally: Tally::default(),
                    };
                    for i in 0..n {
                        let fd = w.connect()?;
                        w.conns.push(Conn {
                            fd,
                            state: State::Head,
                            req: Vec::with_capacity(256),
                            sent: 0,
                            head: Vec::with_capacity(HEAD_CAP),
                            remaining: 0,
                            asked: None,
                            close_after: false,
                            t_send: Instant::now(),
                        });
                        w.register(i, libc::EPOLLIN as u32, libc::EPOLL_CTL_ADD);
                    }
                    w.run();
                    Ok(w.tally)
                })
            })
            .collect();
        // Sample CPU at the window's edges while the workers run.
        std::thread::sleep(window.0.saturating_duration_since(Instant::now()));
        let t0 = Instant::now();
        let c0 = self_cpu_s();
        let s0 = servers_cpu_s(&cfg.server_pids);
        let m0 = machine_busy_s();
        std::thread::sleep(window.1.saturating_duration_since(Instant::now()));
        let t1 = Instant::now();
        let c1 = self_cpu_s();
        let s1 = servers_cpu_s(&cfg.server_pids);
        let m1 = machine_busy_s();
        let samples = (
            (t1 - t0).as_secs_f64(),
            c1 - c0,
            s0.zip(s1).map(|(a, b)| b - a),
            m1.0 - m0.0,
            m1.1 - m0.1,
        );
        let results: Vec<Result<Tally>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("worker panicked"))))
            .collect();
        (results, samples)
    });
    let (window_s, client_cpu_s, server_cpu_s, machine_busy_s, softirq_s) = samples;
    let mut all = Tally::default();
    for r in results {
        let t = r?;
        all.requests += t.requests;
        all.bytes += t.bytes;
        all.errors += t.errors;
        all.reconnects += t.reconnects;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
        all.lat_us.extend(t.lat_us);
    }
    all.lat_us.sort_unstable();
    let pct = |p: f64| percentile_ms(&all.lat_us, p);
    // The window is nominal (the workers' clock); the sampled one differs by microseconds.
    let _ = window_s;
    let (p50_ms, p99_ms) = (pct(0.50), pct(0.99));
    let max_ms = all.lat_us.last().map_or(0.0, |&u| u as f64 / 1000.0);
    Ok(Report {
        file_size,
        window_s: cfg.duration.as_secs_f64(),
        requests: all.requests,
        bytes: all.bytes,
        errors: all.errors,
        first_error: all.first_error,
        reconnects: all.reconnects,
        p50_ms,
        p99_ms,
        max_ms,
        client_cpu_s,
        server_cpu_s,
        machine_busy_s,
        softirq_s,
        lat_us: all.lat_us,
    })
}
