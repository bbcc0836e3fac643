//! Running a server binary (`streamer`, `storage-node`) for the length of a test.
//!
//! A server runs until the test stops it, so [`crate::process::spawn`]'s "wait for the exit"
//! does not fit; instead:
//!
//! - Every server is started under `timeout -k 5 LIFETIME` ([`bounded`]), so it dies on its own
//!   even if the test process is killed before it can stop it.
//! - Its stdout is read line by line as it comes: a server says it is ready by printing its
//!   address (`… on http://127.0.0.1:PORT…`), which is how a test learns the port when it asked
//!   for port 0. Waiting for that line is bounded ([`READY_TIMEOUT`]).
//! - [`Server::stop`] (and `Drop`) send SIGTERM to the `timeout` process, which passes it on to
//!   the server (and `strace` passes it on to the program it started), then wait a bounded time
//!   and SIGKILL as a last resort. Only the process this helper started is signalled, by its id.
//! - stderr is kept, so a failing test can show what the server said.

use crate::process;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a server may live (the `timeout` around it).
pub const LIFETIME: Duration = Duration::from_secs(300);

/// How long a server may take to print its ready line (a debug streamer installing the demo
/// clip on a busy 2-core machine takes a few seconds).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `timeout -k 5 LIFETIME PROGRAM`: add the program's arguments to it.
pub fn bounded(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(LIFETIME.as_secs().to_string())
        .arg(program);
    cmd
}

/// `streamer --store STORE` on loopback ports of the kernel's choosing (HTTP and RTSP), without
/// the demo, under [`bounded`]; `extra` flags are added.
pub fn streamer_command(store: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = bounded(crate::bin_path::streamer());
    cmd.arg("--store")
        .arg(store)
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--rtsp-listen", "127.0.0.1:0", "--no-demo"])
        .args(extra);
    cmd
}

/// The RTSP address in the streamer's ready line (`… and rtsp://ADDR/`).
pub fn rtsp_address_in(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("rtsp://"))
        .and_then(|a| a.trim_end_matches('/').parse().ok())
}

/// The RTSP address a started streamer announced in its ready line.
pub fn rtsp_address(srv: &Server) -> SocketAddr {
    let line = srv
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("streamer: serving "))
        .expect("ready line");
    rtsp_address_in(&line)
        .unwrap_or_else(|| panic!("no rtsp:// address in the ready line {line:?}"))
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// A running server.
pub struct Server {
    command: String,
    child: Option<Child>,
    stdout: Arc<(Mutex<Lines>, Condvar)>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The address from the ready line.
    pub addr: SocketAddr,
}

/// What a stopped server printed.
#[derive(Debug)]
pub struct Stopped {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// The address in a ready line: what follows the last ` on http://`, up to `/` or a space.
pub fn address_in(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.rsplit_once(" on http://")?;
    let end = rest.find(['/', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Server {
    /// Starts `cmd` (normally from [`bounded`]) and waits until it prints a line starting with
    /// `ready_prefix` that holds its address. Panics, with the server's stderr, when it exits
    /// first or takes longer than [`READY_TIMEOUT`].
    pub fn start(mut cmd: Command, ready_prefix: &str) -> Server {
        let command = process::describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stdout = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let out = child.stdout.take().expect("stdout is piped");
        let shared = stdout.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let (m, cv) = &*shared;
                        let mut l = m.lock().unwrap_or_else(|e| e.into_inner());
                        l.lines.push(line.trim_end().to_string());
                        cv.notify_all();
                    }
                }
            }
            let (m, cv) = &*shared;
            m.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr is piped");
        let shared = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        let mut server = Server {
            command,
            child: Some(child),
            stdout,
            stderr,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = server.wait_for_line(READY_TIMEOUT, |l| {
            l.starts_with(ready_prefix) && address_in(l).is_some()
        });
        match line.as_deref().and_then(address_in) {
            Some(addr) => server.addr = addr,
            None => {
                let stopped = server.stop();
                panic!(
                    "`{}` printed no ready line `{ready_prefix}… on http://ADDR` within {} s \
                     (exit: {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    server.command,
                    READY_TIMEOUT.as_secs(),
                    stopped.status,
                    stopped.stdout,
                    stopped.stderr
                );
            }
        }
        server
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let (m, _) = &*self.stdout;
        m.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Waits (at most `limit`) for a stdout line for which `pred` holds, and returns it; `None`
    /// when stdout closed or time ran out first.
    pub fn wait_for_line(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        let (m, cv) = &*self.stdout;
        let mut l = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(found) = l.lines.iter().find(|x| pred(x)) {
                return Some(found.clone());
            }
            let now = Instant::now();
            if l.closed || now >= deadline {
                return None;
            }
            l = cv
                .wait_timeout(l, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id of the `timeout` wrapper (or the program, if started without it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and returns its output.
    pub fn stop(&mut self) -> Stopped {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            status = child.try_wait().ok().flatten();
            if status.is_none() {
                terminate(child.id());
                let deadline = Instant::now() + STOP_TIMEOUT;
                while status.is_none() && Instant::now() < deadline {
                    status = child.try_wait().ok().flatten();
                    if status.is_none() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                if status.is_none() {
                    let _ = child.kill();
                    status = child.wait().ok();
                }
            }
        }
        // The reader threads end when the pipes close; give them a moment.
        let (m, cv) = &*self.stdout;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut l = m.lock().unwrap_or_else(|e| e.into_inner());
        while !l.closed && Instant::now() < deadline {
            l = cv
                .wait_timeout(l, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stdout = l.lines.join("\n");
        drop(l);
        Stopped {
            status,
            stdout,
            stderr: self.stderr(),
        }
    }
}

/// Sends SIGTERM to process `pid` with the shell's `kill` builtin (`sh` is always there; the
/// `kill` program is not, on slim images). Never panics: it also runs from `Drop`.
fn terminate(pid: u32) {
    let started = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut sh) = started {
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(sh.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = sh.kill();
                let _ = sh.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
