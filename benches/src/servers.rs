//! Running the servers a benchmark compares: our binaries next to the bench's own, free
//! loopback ports, waiting for a listener, stopping a child at the end, small report helpers.

use anyhow::{Context, Result, bail};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Our other binaries, next to this one in `target/release/`.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("exe dir")?.join(name);
    if !p.exists() {
        bail!(
            "{} not found: cargo build --release -j2 -p sluice-benches -p streamer -p installer",
            p.display()
        );
    }
    Ok(p)
}

pub fn run_ok(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

/// `STORE/NODE/ID/content.ts` of an installed content, if any.
pub fn content_path(store: &Path, id: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(store).ok()?.flatten() {
        let p = e.path().join(id).join("content.ts");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_ready(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited at start: {st}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} not listening on port {port} after 30 s")
}

/// A server process we started; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub name: &'static str,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub keep: bool,
}

impl Server {
    /// The pids whose CPU counts: the process and its children (nginx's workers).
    pub fn pids(&self) -> Vec<i32> {
        let pid = self.child.id() as i32;
        let mut v = vec![pid];
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            v.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The running kernel's release (`/proc/sys/kernel/osrelease`): the zero-copy send paths'
/// costs differ between kernels (`sendpath`: splice through a 1 MiB pipe 1.06× `sendfile`'s
/// throughput on one machine, 2.71× on kernel 6.18.44), so every report names it.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Drops terminal colour sequences (`ESC [ ... m`) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}
