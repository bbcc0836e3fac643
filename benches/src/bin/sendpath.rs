//! `sendpath`: which way should a content byte go from the page cache to a TCP socket?
//!
//! ```text
//! sendpath [--duration S] [--rounds N] [--modes copy,sendfile,splice,splice-split,sendzc,device]
//!          [--conns 1,8]
//! sendpath serve MODE FILE      (internal: one server process per measurement)
//! ```
//! One 1 GiB file in the page cache, loopback, the `httpload` client (`sluice_benches::loadgen`,
//! bodies discarded with `recv(MSG_TRUNC)`) asking 1 MiB random ranges at 1 and 8 connections.
//! Every mode is the same tiny HTTP/1.1 server (one thread per connection, blocking sockets)
//! differing only in how the body goes out, each in its own process so its CPU time
//! (`/proc/PID/stat`, every thread including io_uring's kernel workers) is its own:
//!
//! - `copy`: today's streamer path. A `storage_device_sim::Device` (its ring thread,
//!   `READ_FIXED` into a registered pool buffer) then `write` from that buffer: page cache →
//!   pool buffer → socket, two copies through user memory.
//! - `sendfile`: `sendfile(2)` file → socket. What nginx does. Blocks the calling thread on a
//!   cold page (the reason the streamer reads through a ring).
//! - `splice`: io_uring `SPLICE` file → pipe linked to `SPLICE` pipe → socket, one ring per
//!   connection, one `io_uring_enter` per MiB.
//! - `splice-split`: io_uring `SPLICE` file → pipe (in the ring), then `splice(2)` pipe →
//!   socket from the connection's thread. The pipe holds page references, not copies: this is
//!   the shape where a device's ring thread fills and the network side drains.
//! - `sendzc`: io_uring `READ_FIXED` into a registered buffer, then `SEND_ZC` from it (fixed
//!   buffer), waiting for the notification before the buffer is reused.
//! - `device`: the streamer's path through `storage_device_sim::Device::splice` (the shared
//!   device's ring thread splices file → pipe, the connection drains pipe → socket), with its
//!   cross-thread hand-off: the cost of keeping knobs and failover in the ring.
//!
//! Prints one table: medians over `--rounds` interleaved rounds (default 3 × 2 s) of throughput,
//! server CPU-seconds per GiB and p99, relative to `sendfile`.

use anyhow::{Context, Result, anyhow, bail};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use sluice_benches::loadgen::{self, Report};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use storage_device_sim::pipe::SplicePipe;
use storage_device_sim::{Device, DeviceConfig};

const FILE_SIZE: u64 = 1 << 30;
const CHUNK: u64 = 1 << 20;
const MODES: &[&str] = &[
    "copy",
    "sendfile",
    "splice",
    "splice-split",
    "sendzc",
    "device",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let [_, mode, file] = args.as_slice() else {
            bail!("usage: sendpath serve MODE FILE");
        };
        return serve(mode, Path::new(file));
    }
    let mut duration = 2.0;
    let mut rounds = 3usize;
    let mut modes: Vec<String> = MODES.iter().map(|s| s.to_string()).collect();
    let mut conns = vec![1usize, 8];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| anyhow!("{a} needs a value"))?;
        match a.as_str() {
            "--duration" => duration = v.parse()?,
            "--rounds" => rounds = v.parse::<usize>()?.max(1),
            "--modes" => modes = v.split(',').map(str::to_string).collect(),
            "--conns" => {
                conns = v
                    .split(',')
                    .map(|c| c.parse().context("bad --conns"))
                    .collect::<Result<_>>()?
            }
            _ => bail!("unknown option {a}"),
        }
    }
    let file = sluice_benches::bench_dir().join("sendpath-1g.bin");
    make_file(&file)?;
    // Rounds interleave the modes, so a busy moment of the (shared) machine hits them all;
    // the table shows each mode's median over the rounds.
    let mut rows: Vec<(String, usize, Vec<Report>)> = Vec::new();
    for round in 1..=rounds {
        for &c in &conns {
            for m in &modes {
                let r = measure(m, &file, c, duration)?;
                eprintln!(
                    "round {round}: {m:>12} {c} conns: {:.2} GiB/s, {:.3} CPU-s/GiB, p99 {:.2} ms",
                    r.gib_s(),
                    r.server_cpu_per_gib().unwrap_or(f64::NAN),
                    r.p99_ms
                );
                match rows.iter_mut().find(|(rm, rc, _)| rm == m && *rc == c) {
                    Some(row) => row.2.push(r),
                    None => rows.push((m.clone(), c, vec![r])),
                }
            }
        }
    }
    let median = |rs: &[Report], f: &dyn Fn(&Report) -> f64| {
        let mut v: Vec<f64> = rs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let stats = |rs: &[Report]| {
        (
            median(rs, &|r| r.gib_s()),
            median(rs, &|r| r.server_cpu_per_gib().unwrap_or(f64::NAN)),
            median(rs, &|r| r.p99_ms),
        )
    };
    println!(
        "\nmedians of {rounds} rounds of {duration} s per mode and connection count (kernel {})",
        sluice_benches::servers::kernel()
    );
    println!("| mode | conns | GiB/s | CPU-s/GiB | p99 ms | vs sendfile: thr / CPU |");
    println!("|---|---|---|---|---|---|");
    for (m, c, rs) in &rows {
        let (gib, cpu, p99) = stats(rs);
        let base = rows
            .iter()
            .find(|(bm, bc, _)| bm == "sendfile" && bc == c)
            .map(|(_, _, b)| stats(b));
        let rel = base.map_or(String::from("–"), |(bg, bc, _)| {
            format!("{:.2}× / {:.2}×", gib / bg, cpu / bc)
        });
        println!("| {m} | {c} | {gib:.2} | {cpu:.3} | {p99:.2} | {rel} |");
    }
    Ok(())
}

/// A 1 GiB file of pseudo-random bytes, made once, then read once to be in the page cache.
fn make_file(path: &Path) -> Result<()> {
    if std::fs::metadata(path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..FILE_SIZE >> 20 {
            for w in block.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block)?;
        }
        f.flush()?;
    }
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(mode: &str, file: &Path, conns: usize, duration: f64) -> Result<Report> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", mode])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let pid = child.id() as i32;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let port: u16 = line.trim().parse().with_context(|| format!("{line:?}"))?;
    let mut cfg = loadgen::Config::from_url(&format!("http://127.0.0.1:{port}/big.bin"))?;
    cfg.conns = conns;
    cfg.threads = conns.min(2);
    cfg.warmup = Duration::from_secs(1);
    cfg.duration = Duration::from_secs_f64(duration);
    cfg.range_size = CHUNK;
    cfg.range_align = 4096;
    cfg.server_pids = vec![pid];
    let r = loadgen::run(&cfg)?;
    drop(server);
    if r.errors > 0 {
        bail!("{mode}: {} errors, first {:?}", r.errors, r.first_error);
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// The server side.

fn serve(mode: &str, file: &Path) -> Result<()> {
    if !MODES.contains(&mode) {
        bail!("unknown mode {mode}");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("bad file name"))?
        .to_string();
    let device = if mode == "copy" || mode == "device" {
        Some(Device::open("bench", &dir, DeviceConfig::default())?)
    } else {
        None
    };
    for s in listener.incoming() {
        let s = s?;
        let ctx = Conn {
            mode: mode.to_string(),
            path: dir.join(&name),
            name: name.clone(),
            device: device.clone(),
        };
        std::thread::spawn(move || {
            let _ = ctx.run(s);
        });
    }
    Ok(())
}

struct Conn {
    mode: String,
    path: PathBuf,
    name: String,
    device: Option<Device>,
}

/// A request: HEAD?, `Range: bytes=a-b`, `Connection: close`?
type Asked = (bool, Option<(u64, u64)>, bool);

/// One request head: HEAD or GET, optional `Range: bytes=a-b`, `Connection: close`.
fn parse_head(head: &str) -> Option<Asked> {
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let is_head = first.starts_with("HEAD ");
    let mut range = None;
    let mut close = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("range") {
            let (a, b) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
            range = Some((a.parse().ok()?, b.parse().ok()?));
        }
        close |= k.trim().eq_ignore_ascii_case("connection") && v.trim() == "close";
    }
    Some((is_head, range, close))
}

impl Conn {
    fn run(self, mut s: TcpStream) -> Result<()> {
        s.set_nodelay(true)?;
        let file = std::fs::File::open(&self.path)?;
        let size = file.metadata()?.len();
        let mut send = Sender::new(&self.mode, self.device.clone(), self.name.clone())?;
        let mut buf = Vec::with_capacity(4096);
        let mut tmp = [0u8; 4096];
        loop {
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = s.read(&mut tmp)?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&tmp[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let (is_head, range, close) = parse_head(&head).ok_or_else(|| anyhow!("bad head"))?;
            let (start, stop) = match range {
                Some((a, b)) if b < size && a <= b => (a, b + 1),
                _ => (0, size),
            };
            let resp = if range.is_some() {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{size}\r\n\r\n",
                    stop - start,
                    stop - 1
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n")
            };
            s.write_all(resp.as_bytes())?;
            if !is_head {
                send.body(&s, &file, start, stop)?;
            }
            if close {
                return Ok(());
            }
        }
    }
}

/// How the body goes out; the rings are per connection (the lower bound of their cost: no
/// cross-thread hand-off), the `copy` device is shared like the streamer's.
enum Sender {
    Copy(Device, String),
    /// The streamer's path: the shared device's ring splices into a pipe, this thread drains
    /// it into the socket.
    Device(
        Device,
        String,
        tokio::runtime::Runtime,
        Vec<Arc<SplicePipe>>,
    ),
    Sendfile,
    Splice(IoUring, Pipe),
    SpliceSplit(IoUring, Pipe),
    SendZc(IoUring, Vec<u8>),
}

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

fn pipe() -> Result<Pipe> {
    let mut fds = [0; 2];
    // SAFETY: two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on our pipe.
    if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) } < 0 {
        bail!("F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
    }
    Ok(Pipe { r, w })
}

fn os_err(what: &str, res: i32) -> anyhow::Error {
    anyhow!("{what}: {}", std::io::Error::from_raw_os_error(-res))
}

/// Submit `entries` and wait for as many completions; returns (user_data, result, flags).
fn run_ring(
    ring: &mut IoUring,
    entries: &[squeue::Entry],
    want: usize,
) -> Result<Vec<(u64, i32, u32)>> {
    for e in entries {
        // SAFETY: every entry points at memory the caller keeps alive until this returns.
        unsafe { ring.submission().push(e) }.map_err(|_| anyhow!("SQ full"))?;
    }
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        ring.submit_and_wait(want - out.len())?;
        out.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
    }
    Ok(out)
}

impl Sender {
    fn new(mode: &str, device: Option<Device>, name: String) -> Result<Sender> {
        Ok(match mode {
            "copy" => Sender::Copy(device.ok_or_else(|| anyhow!("no device"))?, name),
            "device" => Sender::Device(
                device.ok_or_else(|| anyhow!("no device"))?,
                name,
                tokio::runtime::Builder::new_current_thread().build()?,
                vec![Arc::new(SplicePipe::new(CHUNK as usize)?)],
            ),
            "sendfile" => Sender::Sendfile,
            "splice" => Sender::Splice(IoUring::new(8)?, pipe()?),
            "splice-split" => Sender::SpliceSplit(IoUring::new(8)?, pipe()?),
            "sendzc" => {
                let ring = IoUring::new(8)?;
                let buf = vec![0u8; CHUNK as usize];
                let iov = libc::iovec {
                    iov_base: buf.as_ptr() as *mut _,
                    iov_len: buf.len(),
                };
                // SAFETY: the buffer lives as long as the ring (both in this variant; the
                // ring is dropped first, see `Drop` order of the tuple fields).
                unsafe { ring.submitter().register_buffers(&[iov])? };
                Sender::SendZc(ring, buf)
            }
            m => bail!("unknown mode {m}"),
        })
    }

    fn body(&mut self, s: &TcpStream, file: &std::fs::File, start: u64, end: u64) -> Result<()> {
        let sock = s.as_raw_fd();
        let fd = file.as_raw_fd();
        let mut off = start;
        match self {
            Sender::Device(dev, name, rt, pipes) => {
                while off < end {
                    let p = &pipes[0];
                    let n = (end - off).min(CHUNK) as usize;
                    let got = rt.block_on(dev.splice(name, off, n, p))?;
                    if got == 0 {
                        bail!("eof");
                    }
                    let mut left = got;
                    while left > 0 {
                        match p.splice_to(sock, left) {
                            Ok(k) => left -= k,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                let mut pfd = libc::pollfd {
                                    fd: sock,
                                    events: libc::POLLOUT,
                                    revents: 0,
                                };
                                // SAFETY: one live pollfd.
                                unsafe { libc::poll(&mut pfd, 1, 1000) };
                            }
                            Err(e) => bail!("splice pipe→socket: {e}"),
                        }
                    }
                    off += got as u64;
                }
            }
            Sender::Copy(dev, name) => {
                let mut w = s;
                while off < end {
                    let b = dev.read_blocking(name, off, (end - off).min(CHUNK) as usize)?;
                    if b.is_empty() {
                        bail!("eof");
                    }
                    w.write_all(&b)?;
                    off += b.len() as u64;
                }
            }
            Sender::Sendfile => {
                while off < end {
                    let mut o = off as libc::off_t;
                    // SAFETY: valid fds and a live offset.
                    let n = unsafe { libc::sendfile(sock, fd, &mut o, (end - off) as usize) };
                    if n <= 0 {
                        bail!("sendfile: {}", std::io::Error::last_os_error());
                    }
                    off += n as u64;
                }
            }
            Sender::Splice(ring, p) => {
                let mut in_pipe = 0u64;
                while off < end || in_pipe > 0 {
                    let to_sock = |n: u64| {
                        opcode::Splice::new(
                            types::Fd(p.r.as_raw_fd()),
                            -1,
                            types::Fd(sock),
                            -1,
                            n as u32,
                        )
                        .flags(libc::SPLICE_F_MOVE)
                        .build()
                        .user_data(2)
                    };
                    if in_pipe > 0 {
                        let c = run_ring(ring, &[to_sock(in_pipe)], 1)?;
                        if c[0].1 <= 0 {
                            return Err(os_err("splice pipe→socket", c[0].1));
                        }
                        in_pipe -= c[0].1 as u64;
                        continue;
                    }
                    let n = (end - off).min(CHUNK);
                    let fill = fill_pipe(fd, off, p, n)
                        .flags(squeue::Flags::IO_LINK)
                        .user_data(1);
                    for (ud, res, _) in run_ring(ring, &[fill, to_sock(n)], 2)? {
                        match (ud, res) {
                            (1, r) if r <= 0 => return Err(os_err("splice file→pipe", r)),
                            (1, r) => {
                                off += r as u64;
                                in_pipe += r as u64;
                            }
                            (_, r) if r == -libc::ECANCELED => {}
                            (_, r) if r < 0 => return Err(os_err("splice pipe→socket", r)),
                            (_, r) => in_pipe -= r as u64,
                        }
                    }
                }
            }
            Sender::SpliceSplit(ring, p) => {
                while off < end {
                    let n = (end - off).min(CHUNK);
                    let fill = fill_pipe(fd, off, p, n);
                    let r = run_ring(ring, &[fill], 1)?[0].1;
                    if r <= 0 {
                        return Err(os_err("splice file→pipe", r));
                    }
                    off += r as u64;
                    drain_pipe(p.r.as_raw_fd(), sock, r as usize)?;
                }
            }
            Sender::SendZc(ring, buf) => {
                while off < end {
                    let n = (end - off).min(CHUNK) as u32;
                    let read = opcode::ReadFixed::new(types::Fd(fd), buf.as_mut_ptr(), n, 0)
                        .offset(off)
                        .build();
                    let r = run_ring(ring, &[read], 1)?[0].1;
                    if r <= 0 {
                        return Err(os_err("read", r));
                    }
                    let mut sent = 0u32;
                    while sent < r as u32 {
                        // SAFETY: within the registered buffer.
                        let ptr = unsafe { buf.as_ptr().add(sent as usize) };
                        let e = opcode::SendZc::new(types::Fd(sock), ptr, r as u32 - sent)
                            .buf_index(Some(0))
                            .build();
                        // The send's completion (flag MORE when a notification follows),
                        // then the notification: only then may the buffer be rewritten.
                        let c = run_ring(ring, &[e], 1)?;
                        let (_, res, flags) = c[0];
                        if cqueue::more(flags) && !c.iter().any(|x| cqueue::notif(x.2)) {
                            run_ring(ring, &[], 1)?;
                        }
                        if res <= 0 {
                            return Err(os_err("send_zc", res));
                        }
                        sent += res as u32;
                    }
                    off += u64::from(sent);
                }
            }
        }
        Ok(())
    }
}

/// The SQE splicing `n` bytes at `off` of `file` into the pipe.
fn fill_pipe(file: RawFd, off: u64, p: &Pipe, n: u64) -> squeue::Entry {
    opcode::Splice::new(
        types::Fd(file),
        off as i64,
        types::Fd(p.w.as_raw_fd()),
        -1,
        n as u32,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build()
}

/// `splice(2)` `n` bytes from a pipe into a (blocking) socket.
fn drain_pipe(pipe_r: RawFd, sock: RawFd, mut n: usize) -> Result<()> {
    while n > 0 {
        // SAFETY: valid fds; null offsets (pipe and socket).
        let r = unsafe {
            libc::splice(
                pipe_r,
                std::ptr::null_mut(),
                sock,
                std::ptr::null_mut(),
                n,
                libc::SPLICE_F_MOVE,
            )
        };
        if r <= 0 {
            bail!("splice pipe→socket: {}", std::io::Error::last_os_error());
        }
        n -= r as usize;
    }
    Ok(())
}
