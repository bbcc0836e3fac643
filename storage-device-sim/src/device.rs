//! The simulated storage device of one node: a folder (the node's "disk", `STORE/NODE`), one
//! io_uring ring driven by its own thread ([`crate::ring`]), a pool of registered, aligned
//! buffers ([`crate::pool`]), run-time [`Knobs`] and [`StatsSnapshot`] counters.
//!
//! Every read goes through io_uring; there is no `pread` fallback. A read whose bytes are all in
//! the page cache is done by the caller's thread on its own small ring with `RWF_NOWAIT`, which
//! cannot block ([`crate::inline`]: no hand-off, so a cached read costs what `pread` costs);
//! every other read, and every read while a knob acts, goes to the node's ring thread
//! ([`crate::ring`]). Reads return `bytes::Bytes`
//! that own a pool buffer: clone and slice them freely, send them to the network, and the
//! buffer returns to the pool when the last clone drops. Holding many `Bytes` for a long time
//! starves the pool (reads then wait for a buffer), so copy out what must be kept.
//!
//! Open files are cached per path (an fd table, at most [`MAX_OPEN_FILES`] per device). A file
//! replaced on disk (rename over it, as `repair` does) is noticed by [`Device::file_size`],
//! which compares inode numbers and drops a stale fd, or explicitly with
//! [`Device::invalidate`].

use crate::knobs::Knobs;
use crate::pipe::SplicePipe;
use crate::pool::{ALIGN, Admission, Admitted, Pool, PooledBuf};
use crate::ring::{self, Notify, Reply, Req, RingParams};
use crate::stats::{InFlight, Stats, StatsSnapshot};
use crate::{Result, StorageError};
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

/// Open files kept per device; beyond this an arbitrary idle entry is closed.
pub const MAX_OPEN_FILES: usize = 512;
/// Largest accepted `queue_depth`, `buffer_count` (the kernel's limit on registered buffers)
/// and `buffer_size`.
pub const MAX_QUEUE_DEPTH: u32 = 4096;
pub const MAX_BUFFERS: usize = 16384;
pub const MAX_BUFFER_SIZE: usize = 1 << 30;

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Reads in the kernel at once (default 32).
    pub queue_depth: u32,
    /// Largest read, bytes (default 1 MiB). Buffers are this size rounded up to 4096 (plus
    /// 4096 with `O_DIRECT`, so an unaligned read of `buffer_size` still fits its aligned
    /// superset).
    pub buffer_size: usize,
    /// Buffers in the pool: reads (and `Bytes` held by callers) at once (default 64).
    pub buffer_count: usize,
    /// Open files with `O_DIRECT`, bypassing the page cache (default false).
    pub o_direct: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            queue_depth: 32,
            buffer_size: 1 << 20,
            buffer_count: 64,
            o_direct: false,
        }
    }
}

/// An open file of the fd table. Reads in flight hold it, so closing (evicting) is safe.
pub(crate) struct OpenFile {
    /// Normalized path relative to the node's root.
    pub(crate) rel: String,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Size when opened (installed contents do not change; a replaced file is a new inode;
    /// a splice reaching past it asks again).
    len: u64,
    dev: u64,
    ino: u64,
}

/// A storage node's device. Cheap to clone; the ring thread stops when the last clone drops.
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    root: PathBuf,
    cfg: DeviceConfig,
    /// `Some` until drop; dropping it tells the ring thread to stop.
    tx: Option<crossbeam_channel::Sender<Req>>,
    notify: Arc<Notify>,
    knobs: Knobs,
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    admission: Arc<Admission>,
    fixed: bool,
    files: Mutex<HashMap<String, Arc<OpenFile>>>,
    thread: Option<JoinHandle<()>>,
    /// Inline attempts to skip before the next one, and the skip the next miss sets: a device
    /// whose reads keep missing the page cache (cold data) stops paying the attempt's system
    /// call, trying again after 1, 2, 4 … `INLINE_MAX_SKIP` reads.
    inline_skip: AtomicU32,
    inline_backoff: AtomicU32,
}

/// Longest run of reads sent straight to the ring thread after inline attempts missed.
const INLINE_MAX_SKIP: u32 = 64;

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.notify.wake();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.inner.name)
            .field("root", &self.inner.root)
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `rel` as a clean relative path (`a/b`), or `None` if it is empty, absolute or has `..`.
pub(crate) fn normalize(rel: &str) -> Option<Cow<'_, str>> {
    if rel.is_empty() || rel.starts_with('/') || rel.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    let mut clean = true;
    for c in rel.split('/') {
        match c {
            "" | "." => clean = false,
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(if clean {
        Cow::Borrowed(rel)
    } else {
        Cow::Owned(parts.join("/"))
    })
}

/// Whether two relative paths name the same file of a node (after normalization).
pub(crate) fn same_rel(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A read ready to enter the device.
struct Prepared {
    file: Arc<OpenFile>,
    offset: u64,
    len: usize,
    read_off: u64,
    read_len: u32,
    skip: u32,
}

impl Device {
    /// Open the device of node `name` on folder `root` and start its ring thread.
    pub fn open(
        name: impl Into<String>,
        root: impl Into<PathBuf>,
        cfg: DeviceConfig,
    ) -> Result<Device> {
        let name = name.into();
        let root = root.into();
        let bad = |m: String| Err(StorageError::BadConfig(format!("device {name}: {m}")));
        if cfg.queue_depth == 0 || cfg.queue_depth > MAX_QUEUE_DEPTH {
            return bad(format!(
                "queue_depth {} not in 1..={MAX_QUEUE_DEPTH}",
                cfg.queue_depth
            ));
        }
        if cfg.buffer_count == 0 || cfg.buffer_count > MAX_BUFFERS {
            return bad(format!(
                "buffer_count {} not in 1..={MAX_BUFFERS}",
                cfg.buffer_count
            ));
        }
        if cfg.buffer_size == 0 || cfg.buffer_size > MAX_BUFFER_SIZE {
            return bad(format!(
                "buffer_size {} not in 1..={MAX_BUFFER_SIZE}",
                cfg.buffer_size
            ));
        }
        let md = std::fs::metadata(&root).map_err(|source| StorageError::Io {
            path: root.clone(),
            source,
        })?;
        if !md.is_dir() {
            return bad(format!("root {} is not a directory", root.display()));
        }
        let cap = cfg.buffer_size.next_multiple_of(ALIGN) + if cfg.o_direct { ALIGN } else { 0 };
        let notify = Arc::new(Notify::new().map_err(|source| StorageError::Ring {
            node: name.clone(),
            source,
        })?);
        let pool = Pool::new(cap, cfg.buffer_count, Arc::clone(&notify)).map_err(|e| {
            StorageError::BadConfig(format!(
                "device {name}: buffer pool of {} × {cap} bytes: {e}",
                cfg.buffer_count
            ))
        })?;
        let pool = Arc::new(pool);
        let admission = Arc::new(Admission::new(cfg.buffer_count));
        let knobs = Knobs::new(Arc::clone(&notify));
        let stats = Arc::new(Stats::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        let (thread, fixed) = ring::start(RingParams {
            node: name.clone(),
            depth: cfg.queue_depth,
            o_direct: cfg.o_direct,
            burst: cfg.buffer_size as u64,
            pool: Arc::clone(&pool),
            notify: Arc::clone(&notify),
            knobs: Arc::clone(&knobs.shared),
            stats: Arc::clone(&stats),
            rx,
        })?;
        Ok(Device {
            inner: Arc::new(Inner {
                name,
                root,
                cfg,
                tx: Some(tx),
                notify,
                knobs,
                stats,
                pool,
                admission,
                fixed,
                files: Mutex::new(HashMap::new()),
                thread: Some(thread),
                inline_skip: AtomicU32::new(0),
                inline_backoff: AtomicU32::new(1),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.inner.cfg
    }

    pub fn knobs(&self) -> &Knobs {
        &self.inner.knobs
    }

    pub fn stats(&self) -> StatsSnapshot {
        let i = &self.inner;
        i.stats.snapshot(
            i.pool.count(),
            i.pool.free_count(),
            i.admission.waits(),
            i.fixed,
        )
    }

    fn bad_path(rel: &str) -> StorageError {
        StorageError::BadPath {
            path: rel.to_string(),
        }
    }

    fn closed(&self) -> StorageError {
        StorageError::Closed {
            node: self.inner.name.clone(),
        }
    }

    fn crashed(&self) -> StorageError {
        StorageError::Crashed {
            node: self.inner.name.clone(),
        }
    }

    /// Size of `rel` (stat of the path). Drops the cached fd if the file was replaced.
    pub fn file_size(&self, rel: &str) -> Result<u64> {
        let key = normalize(rel).ok_or_else(|| Self::bad_path(rel))?;
        let path = self.inner.root.join(&*key);
        let md = std::fs::metadata(&path).map_err(|source| StorageError::Io {
            path: path.clone(),
            source,
        })?;
        if md.is_dir() {
            return Err(StorageError::Io {
                path,
                source: std::io::Error::from_raw_os_error(libc::EISDIR),
            });
        }
        let mut files = lock(&self.inner.files);
        if let Some(f) = files.get(&*key)
            && (f.dev, f.ino) != (md.dev(), md.ino())
        {
            files.remove(&*key);
        }
        Ok(md.len())
    }

    /// Forget the cached fd of `rel` (the next read reopens the path).
    pub fn invalidate(&self, rel: &str) {
        if let Some(key) = normalize(rel) {
            lock(&self.inner.files).remove(&*key);
        }
    }

    fn file(&self, key: &str) -> Result<Arc<OpenFile>> {
        if let Some(f) = lock(&self.inner.files).get(key) {
            return Ok(Arc::clone(f));
        }
        let path = self.inner.root.join(key);
        let mut oo = std::fs::OpenOptions::new();
        oo.read(true);
        if self.inner.cfg.o_direct {
            oo.custom_flags(libc::O_DIRECT);
        }
        let file = match oo.open(&path) {
            Ok(f) => f,
            Err(source)
                if self.inner.cfg.o_direct && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                return Err(StorageError::DirectIo { path, source });
            }
            Err(source) => return Err(StorageError::Io { path, source }),
        };
        let md = file.metadata().map_err(|source| StorageError::Io {
            path: path.clone(),
            source,
        })?;
        let of = Arc::new(OpenFile {
            rel: key.to_string(),
            path,
            file,
            len: md.len(),
            dev: md.dev(),
            ino: md.ino(),
        });
        let mut files = lock(&self.inner.files);
        if files.len() >= MAX_OPEN_FILES
            && !files.contains_key(key)
            && let Some(k) = files.keys().next().cloned()
        {
            files.remove(&k);
        }
        Ok(Arc::clone(files.entry(key.to_string()).or_insert(of)))
    }

    /// Checks and the fd; `None` for an empty read. `max`: the most one request may move (a
    /// read's buffer; a splice's pipe, which holds page references and no buffer).
    fn prepare(&self, rel: &str, offset: u64, len: usize, max: usize) -> Result<Option<Prepared>> {
        if len > max {
            return Err(StorageError::TooLarge { len, max });
        }
        let key = normalize(rel).ok_or_else(|| Self::bad_path(rel))?;
        if self.inner.knobs.is_crashed() {
            return Err(self.crashed());
        }
        let file = self.file(&key)?;
        if len == 0 {
            return Ok(None);
        }
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or_else(|| StorageError::Io {
                path: file.path.clone(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        let (read_off, read_end) = if self.inner.cfg.o_direct {
            let a = ALIGN as u64;
            (offset - offset % a, end.next_multiple_of(a))
        } else {
            (offset, end)
        };
        // At most buffer_size rounded up plus one alignment unit: fits the buffer.
        let read_len = (read_end - read_off) as u32;
        Ok(Some(Prepared {
            file,
            offset,
            len,
            read_off,
            read_len,
            skip: (offset - read_off) as u32,
        }))
    }

    /// Whether an inline attempt may be made now: no knob acts, not `O_DIRECT`, and no recent
    /// misses (the backoff).
    fn inline_allowed(&self) -> bool {
        let i = &self.inner;
        if i.cfg.o_direct || !i.knobs.shared.idle() {
            return false;
        }
        // Racy by design (relaxed load, then store): the skip count is a heuristic.
        let skip = i.inline_skip.load(Ordering::Relaxed);
        if skip > 0 {
            i.inline_skip.store(skip - 1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Count an inline attempt; a miss makes the next ones skip (backoff).
    fn inline_done(&self, attempt: &crate::inline::Attempt) {
        use crate::inline::Attempt;
        let i = &self.inner;
        match *attempt {
            Attempt::Read { enters, .. } => {
                i.stats.inline(true, enters);
                i.inline_backoff.store(1, Ordering::Relaxed);
            }
            Attempt::Miss { enters } => {
                i.stats.inline(false, enters);
                let b = i.inline_backoff.load(Ordering::Relaxed);
                i.inline_skip.store(b, Ordering::Relaxed);
                i.inline_backoff
                    .store((b * 2).min(INLINE_MAX_SKIP), Ordering::Relaxed);
            }
            Attempt::NoRing | Attempt::Lost => {}
        }
    }

    /// Try `p` from the page cache in this thread ([`crate::inline`]); `None`: send it to the
    /// ring thread (a knob acts, `O_DIRECT`, no free buffer, recent misses, or a miss now).
    fn read_inline(&self, p: &Prepared, started: Instant) -> Option<Bytes> {
        if !self.inline_allowed() {
            return None;
        }
        let i = &self.inner;
        let mut slot = i.pool.try_take()?;
        let _in_flight = InFlight::new(&i.stats);
        // SAFETY: the slot is ours alone and holds at least `read_len` bytes (`prepare`).
        let attempt = unsafe {
            crate::inline::read_cached(
                p.file.file.as_raw_fd(),
                p.read_off,
                slot.as_mut_ptr(),
                p.read_len,
            )
        };
        self.inline_done(&attempt);
        let n = match attempt {
            crate::inline::Attempt::Read { n, .. } => n,
            crate::inline::Attempt::Lost => {
                // The kernel may still write this buffer: it must never be handed out again.
                std::mem::forget(slot);
                return None;
            }
            _ => return None,
        };
        let n = (n.saturating_sub(p.skip) as usize).min(p.len);
        i.stats.record_ok(n, started.elapsed());
        Some(if n == 0 {
            Bytes::new()
        } else {
            Bytes::from_owner(PooledBuf::new(slot, p.skip as usize, n))
        })
    }

    /// Splice `p` into `pipe` from the page cache in this thread ([`crate::inline`]): how many
    /// bytes the pipe now holds; `None`: send it to the ring thread (the pipe is still empty).
    fn splice_inline(&self, p: &Prepared, pipe: &SplicePipe, started: Instant) -> Option<usize> {
        if !self.inline_allowed() {
            return None;
        }
        let i = &self.inner;
        let _in_flight = InFlight::new(&i.stats);
        // Installed contents do not change, but a read reaching past the size seen at open
        // asks the file again, so a file that grew is never cut short here.
        let mut file_len = p.file.len;
        if p.read_off + u64::from(p.read_len) > file_len {
            file_len = p.file.file.metadata().map_or(file_len, |m| m.len());
        }
        let attempt = crate::inline::splice_cached(
            p.file.file.as_raw_fd(),
            file_len,
            p.read_off,
            p.read_len,
            pipe.write_fd(),
        );
        self.inline_done(&attempt);
        // A plain `splice(2)`: it reads or misses (the pipe then still empty), nothing else.
        let crate::inline::Attempt::Read { n, .. } = attempt else {
            return None;
        };
        let n = (n as usize).min(p.len);
        i.stats.record_ok(n, started.elapsed());
        Some(n)
    }

    fn send(
        &self,
        p: Prepared,
        pipe: Option<Arc<SplicePipe>>,
        admitted: Admitted,
        reply: Reply,
        started: Instant,
        in_flight: InFlight,
    ) -> Result<()> {
        if self.inner.knobs.is_crashed() {
            return Err(self.crashed());
        }
        let req = Req {
            file: p.file,
            offset: p.offset,
            len: p.len,
            read_off: p.read_off,
            read_len: p.read_len,
            skip: p.skip,
            slot: None,
            pipe,
            reply,
            started,
            in_flight,
            admitted,
            done: 0,
            delayed: false,
            starved: false,
            enter_no: 0,
        };
        let tx = self.inner.tx.as_ref().ok_or_else(|| self.closed())?;
        tx.send(req).map_err(|_| self.closed())?;
        self.inner.notify.wake_if_sleeping();
        Ok(())
    }

    fn count_err<T>(&self, started: Instant, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.inner.stats.record_err(started.elapsed());
        }
        r
    }

    /// Read up to `len` bytes at `offset` of `rel` (relative to the root; absolute paths and
    /// `..` are refused). Fewer bytes only at end of file, none at or after it. `len` above
    /// `buffer_size` is an error (callers chunk). Waits while the device is full (`buffer_count`
    /// reads inside) and, inside, while every pool buffer is held by callers' `Bytes`.
    /// Cancellation-safe: dropping the future returns the buffer when the read completes.
    pub async fn read(&self, rel: &str, offset: u64, len: usize) -> Result<Bytes> {
        let started = Instant::now();
        let p = match self.prepare(rel, offset, len, self.inner.cfg.buffer_size) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Bytes::new()),
            Err(e) => return self.count_err(started, Err(e)),
        };
        if let Some(b) = self.read_inline(&p, started) {
            return Ok(b);
        }
        let in_flight = InFlight::new(&self.inner.stats);
        let admitted = self.inner.admission.acquire().await;
        let (tx, rx) = oneshot::channel();
        let sent = self.send(p, None, admitted, Reply::Async(tx), started, in_flight);
        self.count_err(started, sent)?;
        rx.await.map_err(|_| self.closed())?
    }

    /// Whether [`splice`](Self::splice) is offered: not with `O_DIRECT`, whose alignment rules
    /// a splice into a pipe cannot follow; such a device is read into pool buffers.
    pub fn can_splice(&self) -> bool {
        !self.inner.cfg.o_direct
    }

    /// Like [`read`](Self::read), but the ring splices the bytes into `pipe` (which must be
    /// empty) instead of copying them into a pool buffer; returns how many it put there (fewer
    /// than `len` only at end of file). `len` is capped at the pipe's capacity and at
    /// `buffer_size`. Every knob applies as to a read. On an error, or if this future is
    /// dropped before it finishes, the pipe's content is unknown: throw the pipe away (see
    /// [`crate::pipe`]).
    pub async fn splice(
        &self,
        rel: &str,
        offset: u64,
        len: usize,
        pipe: &Arc<SplicePipe>,
    ) -> Result<usize> {
        let started = Instant::now();
        if !self.can_splice() {
            let e = StorageError::BadConfig(format!(
                "device {}: no splice with O_DIRECT",
                self.inner.name
            ));
            return self.count_err(started, Err(e));
        }
        // A splice is bounded by the pipe, not by the pool's buffers (it uses none).
        let len = len.min(pipe.capacity());
        let p = match self.prepare(rel, offset, len, pipe.capacity()) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(0),
            Err(e) => return self.count_err(started, Err(e)),
        };
        if let Some(n) = self.splice_inline(&p, pipe, started) {
            return Ok(n);
        }
        let in_flight = InFlight::new(&self.inner.stats);
        let admitted = self.inner.admission.acquire().await;
        let (tx, rx) = oneshot::channel();
        let sent = self.send(
            p,
            Some(Arc::clone(pipe)),
            admitted,
            Reply::Spliced(tx),
            started,
            in_flight,
        );
        self.count_err(started, sent)?;
        rx.await.map_err(|_| self.closed())?
    }

    /// [`read`](Self::read), blocking the calling thread (also safe inside a runtime, where it
    /// blocks that worker).
    pub fn read_blocking(&self, rel: &str, offset: u64, len: usize) -> Result<Bytes> {
        let started = Instant::now();
        let p = match self.prepare(rel, offset, len, self.inner.cfg.buffer_size) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Bytes::new()),
            Err(e) => return self.count_err(started, Err(e)),
        };
        if let Some(b) = self.read_inline(&p, started) {
            return Ok(b);
        }
        let in_flight = InFlight::new(&self.inner.stats);
        let admitted = self.inner.admission.acquire_blocking();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sent = self.send(p, None, admitted, Reply::Blocking(tx), started, in_flight);
        self.count_err(started, sent)?;
        rx.recv().map_err(|_| self.closed())?
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
