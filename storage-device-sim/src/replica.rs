//! The read path the streamer uses: a content read by offset from the first healthy replica.
//!
//! Replicas are ordered (main, sub, backups). A read goes to the current replica; on an error,
//! on a stall longer than the deadline, or when membership says the node went down (even while
//! a read is in flight), the same offset is read from the next replica, and the reader stays
//! there. Every read is a fresh positional read, so what the caller gets is byte-exact whatever
//! fails in between: no partial buffer from a failed node is ever returned.
//!
//! [`ReplicaReader::send_at`] is the same walk for the zero-copy send path: a replica that can
//! splice (a local device, see [`crate::pipe`]) puts the bytes in the caller's pipe; one that
//! cannot (a remote node, an `O_DIRECT` device) returns them as `Bytes`. A failed or abandoned
//! splice leaves the pipe in an unknown state, so the reader drops it and the next attempt
//! (same offset, next replica) gets a fresh one: what reaches the socket stays byte-exact.

use crate::membership::{Health, Membership};
use crate::pipe::SplicePipe;
use crate::{Result, StorageError};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Something a content can be read from by offset: a local io_uring device, or a remote
/// `storage-node` over HTTP.
pub trait ReadAt: Send + Sync + 'static {
    fn read_at<'a>(
        &'a self,
        rel: &'a str,
        offset: u64,
        len: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes>> + Send + 'a>>;
    fn size(&self, rel: &str) -> Result<u64>;
    /// Splice up to `len` bytes at `offset` into `pipe` (empty), if this source can: how many
    /// bytes the pipe then holds. `None`: this source only reads ([`read_at`](Self::read_at)).
    fn splice_at<'a>(
        &'a self,
        _rel: &'a str,
        _offset: u64,
        _len: usize,
        _pipe: &'a Arc<SplicePipe>,
    ) -> Option<Pin<Box<dyn Future<Output = Result<usize>> + Send + 'a>>> {
        None
    }
}

/// What one step of [`ReplicaReader::send_at`] produced.
#[derive(Debug)]
pub enum Chunk {
    /// This many bytes wait in the caller's pipe (0: end of file).
    Piped(usize),
    /// Bytes read into memory, from a replica that cannot splice.
    Bytes(Bytes),
}

impl ReadAt for crate::device::Device {
    fn read_at<'a>(
        &'a self,
        rel: &'a str,
        offset: u64,
        len: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes>> + Send + 'a>> {
        Box::pin(self.read(rel, offset, len))
    }

    fn size(&self, rel: &str) -> Result<u64> {
        self.file_size(rel)
    }

    fn splice_at<'a>(
        &'a self,
        rel: &'a str,
        offset: u64,
        len: usize,
        pipe: &'a Arc<SplicePipe>,
    ) -> Option<Pin<Box<dyn Future<Output = Result<usize>> + Send + 'a>>> {
        if !self.can_splice() {
            return None;
        }
        Some(Box::pin(self.splice(rel, offset, len, pipe)))
    }
}

/// When every replica failed its normal attempt, each gets one more with this many deadlines.
const LAST_CHANCE: u32 = 4;

/// One replica: the node's name and how to read from it.
#[derive(Clone)]
pub struct ReplicaSource {
    pub node: String,
    pub source: Arc<dyn ReadAt>,
}

/// Reads one content file across its replicas.
pub struct ReplicaReader {
    rel: String,
    replicas: Vec<ReplicaSource>,
    membership: Option<Arc<dyn Membership>>,
    deadline: Duration,
    current: usize,
    failovers: u64,
    /// The most one read into memory asks for (see [`with_read_max`](Self::with_read_max)).
    read_max: usize,
}

impl ReplicaReader {
    /// `rel` is the file's path inside each node (`ID/content.ts`); `deadline` bounds one read
    /// (a stall beyond it fails over).
    pub fn new(
        rel: impl Into<String>,
        replicas: Vec<ReplicaSource>,
        membership: Option<Arc<dyn Membership>>,
        deadline: Duration,
    ) -> ReplicaReader {
        ReplicaReader {
            rel: rel.into(),
            replicas,
            membership,
            deadline,
            current: 0,
            failovers: 0,
            read_max: usize::MAX,
        }
    }

    /// Bound each read into memory to `n` bytes (a device's buffer size): a
    /// [`send_at`](Self::send_at) chunk larger than that, from a replica that cannot splice,
    /// comes back short instead of being refused as too large.
    pub fn with_read_max(mut self, n: usize) -> ReplicaReader {
        self.read_max = n.max(1);
        self
    }

    /// The node reads currently go to.
    pub fn current_node(&self) -> Option<&str> {
        self.replicas.get(self.current).map(|r| r.node.as_str())
    }

    /// How many times this reader moved to another replica.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    fn is_down(&self, node: &str) -> bool {
        self.membership
            .as_ref()
            .is_some_and(|m| m.health(node) == Health::Down)
    }

    /// Size of the file, from the first replica that answers.
    pub fn size(&mut self) -> Result<u64> {
        let mut last = None;
        for k in 0..self.replicas.len() {
            let i = (self.current + k) % self.replicas.len();
            let r = &self.replicas[i];
            if self.is_down(&r.node) {
                continue;
            }
            match r.source.size(&self.rel) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(StorageError::NoReplica {
            path: self.rel.clone(),
            last: last.unwrap_or_else(|| "every replica is down".into()),
        })
    }

    /// Read up to `len` bytes at `offset` (fewer only at the end of the file).
    pub async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        match self.walk(offset, len, None).await? {
            Chunk::Bytes(b) => Ok(b),
            // Not reachable: without a pipe every attempt reads.
            Chunk::Piped(_) => Err(StorageError::NoReplica {
                path: self.rel.clone(),
                last: "spliced without a pipe".into(),
            }),
        }
    }

    /// Up to `len` bytes at `offset` (fewer only at the end of the file), spliced into `*pipe`
    /// by a replica that can (a fresh pipe of `len` bytes is made when `*pipe` is `None`, and
    /// `*pipe` is reset after a failed attempt), or read into memory by one that cannot.
    pub async fn send_at(
        &mut self,
        offset: u64,
        len: usize,
        pipe: &mut Option<Arc<SplicePipe>>,
    ) -> Result<Chunk> {
        self.walk(offset, len, Some(pipe)).await
    }

    async fn walk(
        &mut self,
        offset: u64,
        len: usize,
        mut pipe: Option<&mut Option<Arc<SplicePipe>>>,
    ) -> Result<Chunk> {
        let n = self.replicas.len();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let r = self.replicas[self.current].clone();
            if !self.is_down(&r.node) {
                let attempt =
                    self.try_read(&r, offset, len, pipe.as_deref_mut(), true, self.deadline);
                match attempt.await {
                    Ok(b) => return Ok(b),
                    Err(e) => last = Some(format!("{}: {e}", r.node)),
                }
            } else {
                last = Some(format!("{}: down", r.node));
            }
            self.current = (self.current + 1) % n;
            self.failovers += 1;
        }
        // Nothing healthy answered in time. Membership and deadlines are judgements (a process
        // starved of CPU misses its own heartbeats and deadlines); before failing the reader,
        // give every replica one last, longer chance and trust only a real error.
        for _ in 0..n {
            let r = self.replicas[self.current].clone();
            let deadline = self.deadline * LAST_CHANCE;
            match self
                .try_read(&r, offset, len, pipe.as_deref_mut(), false, deadline)
                .await
            {
                Ok(b) => return Ok(b),
                Err(e) => last = Some(format!("{}: {e}", r.node)),
            }
            self.current = (self.current + 1) % n;
        }
        Err(StorageError::NoReplica {
            path: self.rel.clone(),
            last: last.unwrap_or_else(|| "no replicas".into()),
        })
    }

    /// One attempt on one replica: a splice into `pipe` if given and the replica can, else a
    /// read. A failed splice drops the pipe (its content is unknown).
    async fn try_read(
        &self,
        r: &ReplicaSource,
        offset: u64,
        len: usize,
        pipe: Option<&mut Option<Arc<SplicePipe>>>,
        watch_membership: bool,
        deadline: Duration,
    ) -> Result<Chunk> {
        if let Some(slot) = pipe {
            if slot.is_none() {
                // No pipe (none made yet, or the system refuses one): read instead.
                *slot = crate::pipe_pool::take().map(Arc::new);
            }
            if let Some(p) = slot.clone()
                && let Some(f) = r.source.splice_at(&self.rel, offset, len, &p)
            {
                let res = self.bounded(r, f, watch_membership, deadline).await;
                if res.is_err() {
                    *slot = None;
                }
                return res.map(Chunk::Piped);
            }
        }
        let f = r.source.read_at(&self.rel, offset, len.min(self.read_max));
        self.bounded(r, f, watch_membership, deadline)
            .await
            .map(Chunk::Bytes)
    }

    /// An attempt on replica `r`, bounded by the deadline, abandoned as soon as membership
    /// reports the node down.
    async fn bounded<T>(
        &self,
        r: &ReplicaSource,
        attempt: impl Future<Output = Result<T>>,
        watch_membership: bool,
        deadline: Duration,
    ) -> Result<T> {
        // Most attempts finish at their first poll (a page-cache hit is done in the caller's
        // thread): those need no timer and no membership subscription, which cost more than
        // the splice itself at small chunks.
        let mut attempt = std::pin::pin!(attempt);
        let first = std::future::poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx))).await;
        if let Poll::Ready(res) = first {
            return res;
        }
        let read = tokio::time::timeout(deadline, attempt);
        let expired = || StorageError::Deadline {
            node: r.node.clone(),
            after_ms: deadline.as_millis() as u64,
        };
        let Some(m) = self.membership.as_ref().filter(|_| watch_membership) else {
            return read.await.unwrap_or_else(|_| Err(expired()));
        };
        let mut changes = m.subscribe();
        // Subscribed after the first poll: a fall in between is seen here instead.
        if m.health(&r.node) == Health::Down {
            return Err(StorageError::NodeDown {
                node: r.node.clone(),
            });
        }
        let node = r.node.clone();
        let down = async move {
            loop {
                match changes.recv().await {
                    Ok(c) if c.node == node && c.health == Health::Down => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            res = read => res.unwrap_or_else(|_| Err(expired())),
            () = down => Err(StorageError::NodeDown { node: r.node.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Device, DeviceConfig};
    use crate::heartbeat::HostAgent;
    use crate::membership::{DetectorConfig, InProcessMembership};
    use crate::topology::{Host, Topology};
    use std::path::PathBuf;

    const SIZE: usize = 3 << 20;
    const CHUNK: usize = 64 << 10;

    fn test_dir(name: &str) -> PathBuf {
        // Under target/ (a real disk), not /tmp, like the device tests.
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-replica")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn content() -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Three hosts with one node each, every node holding `c/content.ts`.
    fn setup(name: &str) -> (PathBuf, Vec<Device>, Topology, Vec<u8>) {
        let root = test_dir(name);
        let data = content();
        let mut devices = Vec::new();
        let mut hosts = Vec::new();
        for i in 0..3 {
            let node = format!("n{i}");
            let dir = root.join(&node);
            std::fs::create_dir_all(dir.join("c")).unwrap();
            std::fs::write(dir.join("c/content.ts"), &data).unwrap();
            let cfg = DeviceConfig {
                buffer_size: CHUNK,
                buffer_count: 8,
                ..DeviceConfig::default()
            };
            devices.push(Device::open(node.clone(), dir, cfg).unwrap());
            hosts.push(Host {
                name: format!("h{i}"),
                weight: 1.0,
                nodes: vec![node],
                address: None,
                egress_bps: None,
                pool: Vec::new(),
            });
        }
        let topology = Topology {
            hosts,
            ..Topology::default_single_host()
        };
        (root, devices, topology, data)
    }

    fn sources(devices: &[Device]) -> Vec<ReplicaSource> {
        devices
            .iter()
            .map(|d| ReplicaSource {
                node: d.name().to_string(),
                source: Arc::new(d.clone()),
            })
            .collect()
    }

    async fn read_all(r: &mut ReplicaReader, mut each: impl FnMut(u64)) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(SIZE);
        let mut off = 0u64;
        loop {
            each(off);
            let b = r.read_at(off, CHUNK).await?;
            if b.is_empty() {
                return Ok(out);
            }
            off += b.len() as u64;
            out.extend_from_slice(&b);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn byte_exact_through_eio_stall_and_crash() {
        let (root, devices, _topo, data) = setup("faults");
        let mut r = ReplicaReader::new(
            "c/content.ts",
            sources(&devices),
            None,
            Duration::from_millis(150),
        );
        assert_eq!(r.size().unwrap(), SIZE as u64);
        // n0 fails a range in the middle; n1 stalls when we reach 2 MiB; n2 takes over.
        devices[0]
            .knobs()
            .inject_eio(Some("c/content.ts".into()), 1 << 20..(1 << 20) + 10);
        let d1 = devices[1].clone();
        let got = read_all(&mut r, |off| {
            if off == 2 << 20 {
                d1.knobs().stall();
            }
        })
        .await
        .unwrap();
        assert!(got == data, "bytes differ from the file");
        assert_eq!(r.current_node(), Some("n2"));
        assert_eq!(r.failovers(), 2);
        // Everything broken: a typed error naming the file, not a hang or a panic.
        devices[2].knobs().crash();
        devices[0].knobs().crash();
        let e = r.read_at(0, CHUNK).await.unwrap_err();
        assert!(matches!(e, StorageError::NoReplica { .. }), "{e}");
        for d in &devices {
            d.knobs().recover();
        }
        let _ = std::fs::remove_dir_all(root);
    }

    /// The zero-copy walk: bytes spliced into the caller's pipe, byte-exact through an EIO
    /// and a stall, each failure replacing the pipe; a source that cannot splice reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_at_splices_byte_exact_through_faults() {
        let (root, devices, _topo, data) = setup("send-at");
        let mut r = ReplicaReader::new(
            "c/content.ts",
            sources(&devices),
            None,
            Duration::from_millis(150),
        );
        devices[0]
            .knobs()
            .inject_eio(Some("c/content.ts".into()), 1 << 20..(1 << 20) + 10);
        let mut pipe = None;
        let mut got = Vec::with_capacity(SIZE);
        let mut pipes = Vec::new();
        let mut stalled = false;
        loop {
            let off = got.len() as u64;
            if off >= 2 << 20 && !stalled {
                devices[1].knobs().stall();
                stalled = true;
            }
            match r.send_at(off, CHUNK, &mut pipe).await.unwrap() {
                Chunk::Piped(0) => break,
                Chunk::Piped(n) => {
                    let p = pipe.clone().expect("a pipe after a splice");
                    if !pipes.iter().any(|q| Arc::ptr_eq(q, &p)) {
                        pipes.push(p.clone());
                    }
                    let mut buf = vec![0u8; n];
                    let mut done = 0;
                    while done < n {
                        // SAFETY: reads into the live tail of `buf`.
                        let k = unsafe {
                            libc::read(p.read_fd(), buf[done..].as_mut_ptr().cast(), n - done)
                        };
                        assert!(k > 0);
                        done += k as usize;
                    }
                    got.extend_from_slice(&buf);
                }
                Chunk::Bytes(b) => panic!("read {} bytes instead of splicing", b.len()),
            }
        }
        assert!(got == data, "bytes differ from the file");
        assert_eq!(r.failovers(), 2);
        assert_eq!(pipes.len(), 3, "each failure should replace the pipe");
        devices[1].knobs().recover();
        let _ = std::fs::remove_dir_all(root);
    }

    /// A source that only reads, like a remote node.
    struct ReadOnly(Device);

    impl ReadAt for ReadOnly {
        fn read_at<'a>(
            &'a self,
            rel: &'a str,
            offset: u64,
            len: usize,
        ) -> Pin<Box<dyn Future<Output = Result<Bytes>> + Send + 'a>> {
            Box::pin(self.0.read(rel, offset, len))
        }

        fn size(&self, rel: &str) -> Result<u64> {
            self.0.file_size(rel)
        }
    }

    /// A splice that fails moves to a replica that cannot splice: its bytes come as `Bytes`,
    /// from the same offset.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_at_falls_back_to_reads_on_a_source_that_cannot_splice() {
        let (root, devices, _topo, data) = setup("send-at-read");
        let replicas = vec![
            ReplicaSource {
                node: "n0".into(),
                source: Arc::new(devices[0].clone()),
            },
            ReplicaSource {
                node: "n1".into(),
                source: Arc::new(ReadOnly(devices[1].clone())),
            },
        ];
        let mut r = ReplicaReader::new("c/content.ts", replicas, None, Duration::from_secs(5));
        devices[0].knobs().inject_eio(None, 100_000..100_001);
        let mut pipe = None;
        match r.send_at(0, CHUNK, &mut pipe).await.unwrap() {
            Chunk::Piped(n) => assert_eq!(n, CHUNK.min(pipe.as_ref().expect("a pipe").capacity())),
            c => panic!("{c:?}"),
        }
        let p = pipe.clone().expect("a pipe");
        match r.send_at(99_000, CHUNK, &mut pipe).await.unwrap() {
            Chunk::Bytes(b) => assert!(b[..] == data[99_000..99_000 + CHUNK]),
            c => panic!("{c:?}"),
        }
        assert!(
            !pipe.as_ref().is_some_and(|q| Arc::ptr_eq(q, &p)),
            "the failed splice's pipe was kept"
        );
        assert_eq!(r.failovers(), 1);
        drop(p);
        let _ = std::fs::remove_dir_all(root);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn membership_change_moves_an_in_flight_read() {
        let (root, devices, topo, data) = setup("membership");
        let m = InProcessMembership::start(
            &topo,
            // Generous against a loaded CI machine starving the agents' threads.
            DetectorConfig {
                interval: Duration::from_millis(100),
                missed_beats: 5,
            },
        );
        let sink: Arc<dyn crate::heartbeat::HeartbeatSink> = m.clone();
        let agents: Vec<HostAgent> = topo
            .hosts
            .iter()
            .map(|h| {
                HostAgent::start(
                    h.name.clone(),
                    h.nodes.clone(),
                    Duration::from_millis(100),
                    sink.clone(),
                    Arc::new(|_: &str| true),
                )
            })
            .collect();
        // A long deadline: only the membership change can move the stalled read.
        let membership: Arc<dyn Membership> = m.clone();
        let mut r = ReplicaReader::new(
            "c/content.ts",
            sources(&devices),
            Some(membership),
            Duration::from_secs(30),
        );
        let d0 = devices[0].clone();
        let started = std::time::Instant::now();
        let got = read_all(&mut r, |off| {
            if off == 1 << 20 {
                // Host h0 dies: its disk hangs and its heartbeats stop.
                d0.knobs().stall();
                agents[0].pause();
            }
        })
        .await
        .unwrap();
        assert!(got == data, "bytes differ from the file");
        assert_eq!(r.current_node(), Some("n1"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        d0.knobs().recover();
        drop(agents);
        let _ = std::fs::remove_dir_all(root);
    }

    /// Membership that believes every node is down (as when this process was starved of CPU
    /// and missed its own heartbeats).
    struct AllDown(tokio::sync::broadcast::Sender<crate::membership::Change>);

    impl Membership for AllDown {
        fn health(&self, _: &str) -> Health {
            Health::Down
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::membership::Change> {
            self.0.subscribe()
        }
        fn snapshot(&self) -> Vec<(String, String, Health)> {
            Vec::new()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_down_verdict_does_not_cut_a_readable_content() {
        let (root, devices, _topo, data) = setup("all-down");
        let m: Arc<dyn Membership> = Arc::new(AllDown(tokio::sync::broadcast::channel(4).0));
        let mut r = ReplicaReader::new(
            "c/content.ts",
            sources(&devices[..1]),
            Some(m),
            Duration::from_millis(150),
        );
        let got = read_all(&mut r, |_| {}).await.unwrap();
        assert!(got == data, "bytes differ from the file");
        let _ = std::fs::remove_dir_all(root);
    }
}
