//! Running child processes with a time limit.
//!
//! Every process a test starts (the installer, ffmpeg, ffprobe) is bounded: a hang in the code
//! under test must fail the test with the command line, not stall the suite. Output is read on
//! two threads so a child filling one pipe never blocks on the other.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any child process may run before it is killed and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished child process did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The lines of stderr (without line ends).
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A started child process; [`Running::wait`] collects it.
pub struct Running {
    command: String,
    child: Child,
    started: Instant,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

/// The command line as a shell would show it (for messages only).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let envs: Vec<String> = cmd
        .get_envs()
        .map(|(k, v)| {
            format!(
                "{}={}",
                k.to_string_lossy(),
                v.map_or(String::from("<unset>"), |v| v
                    .to_string_lossy()
                    .into_owned())
            )
        })
        .collect();
    if envs.is_empty() {
        parts.join(" ")
    } else {
        format!("{} {}", envs.join(" "), parts.join(" "))
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Starts `cmd` with stdin closed and stdout/stderr captured. Panics when it cannot start.
pub fn spawn(cmd: &mut Command) -> Running {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    Running {
        command,
        child,
        started: Instant::now(),
        stdout,
        stderr,
    }
}

impl Running {
    /// Waits for the child; after [`TIMEOUT`] it is killed and the test panics.
    pub fn wait(self) -> Output {
        self.wait_at_most(TIMEOUT)
    }

    /// Waits for the child; after `limit` it is killed and the test panics.
    pub fn wait_at_most(mut self, limit: Duration) -> Output {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if self.started.elapsed() >= limit => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let err = self.stderr.join().unwrap_or_default();
                    panic!(
                        "`{}` still running after {} s: killed\n--- stderr ---\n{}",
                        self.command,
                        limit.as_secs(),
                        String::from_utf8_lossy(&err)
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for `{}`: {e}", self.command),
            }
        };
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        Output {
            command: self.command,
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Runs `cmd` to completion (bounded by [`TIMEOUT`]).
pub fn run(cmd: &mut Command) -> Output {
    spawn(cmd).wait()
}
