//! Heartbeats: a host agent tells the membership, every interval, which of its host's virtual
//! nodes are alive (issue 3, item 3).
//!
//! The agent runs on its own thread and needs no tokio runtime. Pausing it simulates a host
//! crash or a network partition: the failure detector then marks every node of the host down
//! after the configured number of missed beats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where heartbeats go: [`crate::membership::InProcessMembership`] in one process; later a
/// remote or etcd-backed sink.
pub trait HeartbeatSink: Send + Sync + 'static {
    /// `host` is alive and so are the listed `nodes`; its nodes not listed are sick.
    fn beat(&self, host: &str, nodes: &[String]);
}

/// Whether a node is healthy enough to be listed in its host's heartbeat.
pub type NodeHealthy = Arc<dyn Fn(&str) -> bool + Send + Sync>;

enum Wake {
    /// Beat now (sent by `resume`), then carry on with the usual schedule.
    BeatNow,
}

/// Sends heartbeats for one physical host.
pub struct HostAgent {
    host: String,
    paused: Arc<AtomicBool>,
    /// Dropping the sender ends the thread.
    wake: Option<mpsc::Sender<Wake>>,
    thread: Option<JoinHandle<()>>,
}

impl HostAgent {
    /// Sends heartbeats for `host` every `interval` on its own thread, the first one at once; a
    /// node is included while `healthy(node)` returns true (e.g. its device is not crashed).
    pub fn start(
        host: String,
        nodes: Vec<String>,
        interval: Duration,
        sink: Arc<dyn HeartbeatSink>,
        healthy: NodeHealthy,
    ) -> HostAgent {
        let paused = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<Wake>();
        let interval = interval.max(Duration::from_millis(1));
        let thread = {
            let (host, paused) = (host.clone(), paused.clone());
            std::thread::Builder::new()
                .name(format!("sluice-hb-{host}"))
                .spawn(move || {
                    let beat = || {
                        if !paused.load(Ordering::SeqCst) {
                            let alive: Vec<String> =
                                nodes.iter().filter(|n| healthy(n)).cloned().collect();
                            sink.beat(&host, &alive);
                        }
                    };
                    let mut next = Instant::now();
                    loop {
                        let now = Instant::now();
                        if now >= next {
                            beat();
                            // Keep to the schedule; after a long stall, restart it from now
                            // rather than firing a burst of catch-up beats.
                            next += interval;
                            if next <= now {
                                next = now + interval;
                            }
                        }
                        match woken.recv_timeout(next.saturating_duration_since(Instant::now())) {
                            Ok(Wake::BeatNow) => next = Instant::now(),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .expect("spawn the heartbeat thread")
        };
        HostAgent {
            host,
            paused,
            wake: Some(wake),
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Simulates a host crash or a network partition: no more heartbeats until [`resume`].
    ///
    /// [`resume`]: HostAgent::resume
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Heartbeats start again, the first one at once.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        if let Some(w) = &self.wake {
            let _ = w.send(Wake::BeatNow);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Stop beating and end the thread (waits for it). Dropping the agent does the same.
    pub fn stop(self) {}

    fn shutdown(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        self.shutdown();
    }
}
