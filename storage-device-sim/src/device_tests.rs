//! Tests of the device: reads through the ring against `pread`, every knob, the pool, shutdown.
//! Files live under the workspace's `target/device-sim-tests/` (a real disk, so `O_DIRECT`
//! works; tmpfs may refuse it). Every wait is bounded in time.

use super::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn test_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/device-sim-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_file(dir: &Path, rel: &str, size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &data).unwrap();
    data
}

/// The oracle: `pread` until `len` bytes or end of file.
fn pread(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], offset + done as u64).unwrap();
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    buf
}

fn small_cfg() -> DeviceConfig {
    DeviceConfig {
        queue_depth: 8,
        buffer_size: 64 * 1024,
        buffer_count: 16,
        o_direct: false,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Spin (sleeping 1 ms) until `f` holds, at most `WAIT`.
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ring_threads(name: &str) -> usize {
    let comm = format!("ring-{name}");
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == comm)
        .count()
}

fn random_reads_match_pread(name: &str, o_direct: bool) {
    let dir = test_dir(name);
    let size = 3 * 1024 * 1024 + 1234;
    write_file(&dir, "media/a.ts", size, 7);
    write_file(&dir, "b.bin", 100_000, 8);
    let cfg = DeviceConfig {
        o_direct,
        ..small_cfg()
    };
    let max = cfg.buffer_size;
    let dev = Device::open(name, &dir, cfg).unwrap();
    // Fail loudly, with the filesystem's answer, if O_DIRECT is refused.
    if let Err(e) = dev.read_blocking("media/a.ts", 1, 10) {
        panic!("first read failed: {e}");
    }
    let files: [(&str, u64); 2] = [("media/a.ts", size as u64), ("b.bin", 100_000)];
    // Zero-length reads answer at once without entering the ring or the stats.
    let ring_reads = std::sync::atomic::AtomicU64::new(1);
    let check = |got: Bytes, rel: &str, offset: u64, len: usize| {
        let want = pread(&dir.join(rel), offset, len);
        assert_eq!(got.len(), want.len(), "{rel} @{offset} +{len}");
        assert!(got[..] == want[..], "{rel} @{offset} +{len}: bytes differ");
        if len > 0 {
            ring_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let pick = |rng: &mut Rng| {
        let (rel, fsize) = files[rng.below(2) as usize];
        // Offsets up to 20 kB past the end: reads across and after end of file.
        let offset = rng.below(fsize + 20_000);
        let len = match rng.below(4) {
            0 => rng.below(64) as usize,
            1 => max,
            _ => rng.below(max as u64 + 1) as usize,
        };
        (rel, offset, len)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // Blocking callers on 4 threads ...
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let dev = dev.clone();
            let (check, pick) = (&check, &pick);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t);
                for _ in 0..150 {
                    assert!(Instant::now() < deadline, "blocking readers too slow");
                    let (rel, offset, len) = pick(&mut rng);
                    check(
                        dev.read_blocking(rel, offset, len).unwrap(),
                        rel,
                        offset,
                        len,
                    );
                }
            });
        }
    });
    // ... and 16 async tasks at once (more than the queue depth of 8) on 2 runtime threads.
    let rt = rt();
    rt.block_on(async {
        let tasks = (0..16u64).map(|t| {
            let dev = dev.clone();
            let (check, pick) = (&check, &pick);
            async move {
                let mut rng = Rng(0xABCD_0000 + t);
                for _ in 0..60 {
                    let (rel, offset, len) = pick(&mut rng);
                    check(dev.read(rel, offset, len).await.unwrap(), rel, offset, len);
                }
            }
        });
        let all = futures_join_all(tasks.collect());
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("async readers too slow");
    });
    let s = dev.stats();
    assert_eq!(s.reads, ring_reads.into_inner());
    assert_eq!(s.errors, 0);
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.pool_free, s.pool_size);
    assert!(s.ring_sqes >= s.reads, "{s:?}");
    assert!(
        s.fixed_buffers,
        "running as root, buffer registration should work"
    );
    assert!(s.latency_p50_us > 0 && s.latency_p99_us >= s.latency_p50_us);
}

/// Run futures concurrently on the current task (borrowing is fine: no spawn).
async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: Vec<F>) {
    let mut fs: Vec<_> = fs.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in fs.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

#[test]
fn random_reads_match_pread_buffered() {
    random_reads_match_pread("rnd-buf", false);
}

#[test]
fn random_reads_match_pread_o_direct() {
    random_reads_match_pread("rnd-direct", true);
}

#[test]
fn end_of_file_and_sizes() {
    let dir = test_dir("eof");
    let data = write_file(&dir, "f", 10_000, 3);
    std::fs::write(dir.join("empty"), b"").unwrap();
    for o_direct in [false, true] {
        let dev = Device::open(
            "eof",
            &dir,
            DeviceConfig {
                o_direct,
                ..small_cfg()
            },
        )
        .unwrap();
        assert_eq!(dev.file_size("f").unwrap(), 10_000);
        assert_eq!(dev.read_blocking("f", 0, 10_000).unwrap(), data[..]);
        assert_eq!(dev.read_blocking("f", 9_990, 100).unwrap(), data[9_990..]);
        assert!(dev.read_blocking("f", 10_000, 100).unwrap().is_empty());
        assert!(dev.read_blocking("f", 1 << 40, 100).unwrap().is_empty());
        assert!(dev.read_blocking("empty", 0, 100).unwrap().is_empty());
        assert!(dev.read_blocking("f", 5, 0).unwrap().is_empty());
        // `./` and `//` are the same file.
        assert_eq!(dev.read_blocking("./f", 4095, 2).unwrap(), data[4095..4097]);
        assert_eq!(dev.stats().pool_free, 16);
    }
}

#[test]
fn bad_paths_too_large_and_missing_files() {
    let dir = test_dir("badpath");
    write_file(&dir, "f", 100, 3);
    let dev = Device::open("badpath", &dir, small_cfg()).unwrap();
    for p in ["/etc/passwd", "../f", "a/../../f", "a/../f", "", ".", "//f"] {
        match dev.read_blocking(p, 0, 10) {
            Err(StorageError::BadPath { path }) => assert_eq!(path, p),
            other => panic!("{p:?}: {other:?}"),
        }
        assert!(matches!(
            dev.file_size(p),
            Err(StorageError::BadPath { .. })
        ));
    }
    match dev.read_blocking("f", 0, 64 * 1024 + 1) {
        Err(StorageError::TooLarge { len, max }) => assert_eq!((len, max), (65537, 65536)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        dev.read_blocking("nope", 0, 10),
        Err(StorageError::Io { .. })
    ));
    assert!(matches!(
        dev.file_size("nope"),
        Err(StorageError::Io { .. })
    ));
    assert!(matches!(
        Device::open("x", dir.join("f"), small_cfg()),
        Err(StorageError::BadConfig(_))
    ));
    let zero = DeviceConfig {
        queue_depth: 0,
        ..small_cfg()
    };
    assert!(matches!(
        Device::open("x", &dir, zero),
        Err(StorageError::BadConfig(_))
    ));
}

#[test]
fn injected_eio_ranges() {
    let dir = test_dir("eio");
    let data = write_file(&dir, "a", 50_000, 1);
    write_file(&dir, "b", 50_000, 2);
    let dev = Device::open("eio", &dir, small_cfg()).unwrap();
    dev.knobs().inject_eio(Some("a".into()), 10_000..20_000);
    match dev.read_blocking("a", 5_000, 6_000) {
        Err(StorageError::Injected { node, path, offset }) => {
            assert_eq!((node.as_str(), path.as_str(), offset), ("eio", "a", 10_000));
        }
        other => panic!("{other:?}"),
    }
    match dev.read_blocking("./a", 15_000, 1) {
        Err(StorageError::Injected { offset, .. }) => assert_eq!(offset, 15_000),
        other => panic!("{other:?}"),
    }
    // Just outside the range, and the other file, read fine.
    assert_eq!(
        dev.read_blocking("a", 5_000, 5_000).unwrap(),
        data[5_000..10_000]
    );
    assert_eq!(
        dev.read_blocking("a", 20_000, 10).unwrap(),
        data[20_000..20_010]
    );
    assert!(dev.read_blocking("b", 15_000, 10).is_ok());
    // Any file.
    dev.knobs().inject_eio(None, 40_000..40_001);
    assert!(matches!(
        dev.read_blocking("b", 39_000, 2_000),
        Err(StorageError::Injected { offset: 40_000, .. })
    ));
    assert_eq!(dev.knobs().state().eio.len(), 2);
    assert!(dev.stats().errors >= 3);
    dev.knobs().recover();
    assert_eq!(
        dev.read_blocking("a", 15_000, 10).unwrap(),
        data[15_000..15_010]
    );
    assert_eq!(dev.stats().pool_free, 16);
}

#[test]
fn stall_then_unstall_completes() {
    let dir = test_dir("stall");
    let data = write_file(&dir, "a", 50_000, 1);
    let dev = Device::open("stall", &dir, small_cfg()).unwrap();
    dev.knobs().stall();
    let d2 = dev.clone();
    let t = std::thread::spawn(move || d2.read_blocking("a", 100, 1000));
    wait_until("the read to be in flight", || dev.stats().in_flight == 1);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.is_finished(), "a stalled read completed");
    dev.knobs().unstall();
    wait_until("the read to finish", || t.is_finished());
    assert_eq!(t.join().unwrap().unwrap(), data[100..1100]);
    // recover() also releases a stall, for async readers too.
    dev.knobs().stall();
    let rt = rt();
    let h = rt.spawn({
        let dev = dev.clone();
        async move { dev.read("a", 0, 10).await }
    });
    wait_until("the read to be in flight", || dev.stats().in_flight == 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!h.is_finished());
    dev.knobs().recover();
    let r = rt
        .block_on(async { tokio::time::timeout(WAIT, h).await })
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap(), data[..10]);
}

#[test]
fn crash_fails_stalled_in_flight_reads_until_recover() {
    let dir = test_dir("crash");
    let data = write_file(&dir, "a", 50_000, 1);
    let dev = Device::open("crash", &dir, small_cfg()).unwrap();
    dev.knobs().stall();
    let rt = rt();
    let handles: Vec<_> = (0..3u64)
        .map(|i| {
            let dev = dev.clone();
            rt.spawn(async move { dev.read("a", i * 1000, 1000).await })
        })
        .collect();
    wait_until("three reads in flight", || dev.stats().in_flight == 3);
    std::thread::sleep(Duration::from_millis(50));
    assert!(handles.iter().all(|h| !h.is_finished()));
    let t = Instant::now();
    dev.knobs().crash();
    assert!(dev.knobs().is_crashed());
    for h in handles {
        let r = rt
            .block_on(async { tokio::time::timeout(WAIT, h).await })
            .unwrap()
            .unwrap();
        assert!(
            matches!(r, Err(StorageError::Crashed { ref node }) if node == "crash"),
            "{r:?}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    // New reads fail too, blocking and async, while crashed ...
    assert!(matches!(
        dev.read_blocking("a", 0, 10),
        Err(StorageError::Crashed { .. })
    ));
    let r = rt.block_on(dev.read("a", 0, 10));
    assert!(matches!(r, Err(StorageError::Crashed { .. })));
    // ... including reads delayed by latency when the crash comes.
    dev.knobs().recover();
    dev.knobs().set_latency(Duration::from_secs(5));
    let d2 = dev.clone();
    let t2 = std::thread::spawn(move || d2.read_blocking("a", 0, 10));
    wait_until("the delayed read", || dev.stats().in_flight == 1);
    dev.knobs().crash();
    wait_until("the delayed read to fail", || t2.is_finished());
    assert!(matches!(
        t2.join().unwrap(),
        Err(StorageError::Crashed { .. })
    ));
    dev.knobs().set_latency(Duration::ZERO);
    dev.knobs().recover();
    assert!(!dev.knobs().is_crashed());
    assert_eq!(dev.read_blocking("a", 10, 10).unwrap(), data[10..20]);
    let s = dev.stats();
    assert_eq!((s.in_flight, s.pool_free), (0, 16));
}

#[test]
fn bandwidth_cap_slows_reads() {
    let dir = test_dir("bw");
    write_file(&dir, "a", 4 << 20, 1);
    let cfg = DeviceConfig {
        buffer_size: 1 << 20,
        buffer_count: 8,
        ..small_cfg()
    };
    let dev = Device::open("bw", &dir, cfg).unwrap();
    let read_all = |dev: &Device| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for i in 0..4u64 {
                let dev = dev.clone();
                s.spawn(move || {
                    assert_eq!(
                        dev.read_blocking("a", i << 20, 1 << 20).unwrap().len(),
                        1 << 20
                    )
                });
            }
        });
        t.elapsed()
    };
    let free = read_all(&dev);
    dev.knobs().set_bandwidth(Some(16 << 20));
    let capped = read_all(&dev);
    // 4 MiB at 16 MiB/s with a 1 MiB burst: 3 MiB must wait, 187.5 ms.
    assert!(
        capped >= Duration::from_millis(180),
        "capped read took {capped:?}"
    );
    assert!(
        capped < Duration::from_secs(3),
        "capped read took {capped:?}"
    );
    assert!(free < capped, "uncapped {free:?} vs capped {capped:?}");
    assert_eq!(dev.knobs().state().bandwidth, Some(16 << 20));
    dev.knobs().set_bandwidth(None);
    let again = read_all(&dev);
    assert!(
        again < Duration::from_millis(180),
        "uncapped again took {again:?}"
    );
}

#[test]
fn latency_adds_delay_without_serialising_reads() {
    let dir = test_dir("lat");
    write_file(&dir, "a", 100_000, 1);
    let dev = Device::open("lat", &dir, small_cfg()).unwrap();
    dev.knobs().set_latency(Duration::from_millis(50));
    let t = Instant::now();
    dev.read_blocking("a", 0, 100).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(50));
    // Eight reads at once take about one latency, not eight.
    let rt = rt();
    let t = Instant::now();
    rt.block_on(async {
        let mut hs = Vec::new();
        for i in 0..8u64 {
            let dev = dev.clone();
            hs.push(tokio::spawn(
                async move { dev.read("a", i * 100, 100).await },
            ));
        }
        for h in hs {
            h.await.unwrap().unwrap();
        }
    });
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(50) && e < Duration::from_millis(300),
        "{e:?}"
    );
    assert!(dev.stats().latency_p50_us >= 32_768);
    dev.knobs().set_latency(Duration::ZERO);
    let t = Instant::now();
    dev.read_blocking("a", 0, 100).unwrap();
    assert!(t.elapsed() < Duration::from_millis(50));
}

#[test]
fn buffers_return_to_the_pool() {
    let dir = test_dir("pool");
    let data = write_file(&dir, "a", 200_000, 1);
    let cfg = DeviceConfig {
        buffer_count: 4,
        queue_depth: 4,
        ..small_cfg()
    };
    let dev = Device::open("pool", &dir, cfg).unwrap();
    let t = Instant::now();
    for i in 0..2000u64 {
        let b = dev.read_blocking("a", (i * 997) % 200_000, 4096).unwrap();
        let _c = b.slice(1..).clone();
        assert!(t.elapsed() < WAIT);
    }
    let s = dev.stats();
    assert_eq!(
        (s.pool_free, s.pool_size, s.pool_waits, s.admission_waits),
        (4, 4, 0, 0)
    );
    // Hold every buffer: the next read waits for one ...
    let mut held: Vec<Bytes> = (0..4)
        .map(|i| dev.read_blocking("a", i * 10, 10).unwrap())
        .collect();
    assert_eq!(dev.stats().pool_free, 0);
    let rt = rt();
    let h = rt.spawn({
        let dev = dev.clone();
        async move { dev.read("a", 50, 10).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!h.is_finished(), "read went ahead with an empty pool");
    assert_eq!(dev.stats().in_flight, 1);
    // ... until one is dropped (the Bytes shares the buffer: no copy).
    let first = held[0].slice(2..5);
    drop(held.remove(0));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(dev.stats().pool_free, 0);
    assert!(
        !h.is_finished(),
        "a buffer still shared by a Bytes slice went back to the pool"
    );
    assert_eq!(first, data[2..5]);
    drop(first);
    let r = rt
        .block_on(async { tokio::time::timeout(WAIT, h).await })
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap(), data[50..60]);
    assert!(dev.stats().pool_waits >= 1);
    drop(held);
    assert_eq!(dev.stats().pool_free, 4);
    // A read whose caller gave up still returns its buffer.
    dev.knobs().set_latency(Duration::from_millis(30));
    let r = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(5), dev.read("a", 0, 10)).await
    });
    assert!(r.is_err());
    let t = Instant::now();
    while !(dev.stats().pool_free == 4 && dev.stats().in_flight == 0) {
        assert!(
            t.elapsed() < WAIT,
            "the abandoned read's buffer did not return: {:?}",
            dev.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn dropping_the_device_stops_its_thread() {
    let dir = test_dir("drop");
    write_file(&dir, "a", 1000, 1);
    let dev = Device::open("dropme", &dir, small_cfg()).unwrap();
    assert_eq!(ring_threads("dropme"), 1);
    let clone = dev.clone();
    drop(dev);
    assert_eq!(ring_threads("dropme"), 1);
    // A Bytes may outlive the device (its pool stays alive with it).
    let b = clone.read_blocking("a", 0, 100).unwrap();
    let knobs = clone.knobs().clone();
    drop(clone);
    assert_eq!(ring_threads("dropme"), 0);
    assert_eq!(b.len(), 100);
    knobs.crash(); // harmless after the thread is gone
}

#[test]
fn replaced_file_is_reopened() {
    let dir = test_dir("replace");
    write_file(&dir, "a", 1000, 1);
    let dev = Device::open("replace", &dir, small_cfg()).unwrap();
    let old = dev.read_blocking("a", 0, 100).unwrap();
    let new = write_file(&dir, "a.tmp", 1000, 2);
    std::fs::rename(dir.join("a.tmp"), dir.join("a")).unwrap();
    // The cached fd still reads the old file ...
    assert_eq!(dev.read_blocking("a", 0, 100).unwrap(), old);
    // ... until file_size notices the new inode.
    assert_eq!(dev.file_size("a").unwrap(), 1000);
    assert_eq!(dev.read_blocking("a", 0, 100).unwrap(), new[..100]);
}

#[test]
fn blocking_reads_inside_a_runtime_task() {
    // Many blocking reads inside one task poll must not trip tokio's cooperative budget.
    let dir = test_dir("inrt");
    write_file(&dir, "a", 10_000, 1);
    let dev = Device::open("inrt", &dir, small_cfg()).unwrap();
    let rt = rt();
    let n = rt.block_on(async move {
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..500u64 {
                n += dev.read_blocking("a", i, 10).unwrap().len();
            }
            n
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 5000);
}

/// Read what a splice put in the pipe (all of it: the pipe is drained to empty).
fn drain_pipe(p: &crate::pipe::SplicePipe, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut done = 0;
    while done < n {
        // SAFETY: reads into the live tail of `out`.
        let k = unsafe { libc::read(p.read_fd(), out[done..].as_mut_ptr().cast(), n - done) };
        assert!(k > 0, "pipe held {done} of {n} bytes");
        done += k as usize;
    }
    out
}

#[test]
fn splice_into_a_pipe_matches_pread_and_obeys_knobs() {
    use crate::pipe::SplicePipe;
    let dir = test_dir("splice");
    write_file(&dir, "a", 300_000, 9);
    let dev = Device::open("splice", &dir, small_cfg()).unwrap();
    assert!(dev.can_splice());
    let rt = rt();
    let pipe = Arc::new(SplicePipe::new(64 * 1024).unwrap());
    let mut rng = Rng(5);
    for _ in 0..50 {
        let off = rng.below(310_000);
        let len = 1 + rng.below(64 * 1024) as usize;
        let n = rt.block_on(dev.splice("a", off, len, &pipe)).unwrap();
        let want = pread(&dir.join("a"), off, len.min(pipe.capacity()));
        assert_eq!(n, want.len(), "splice of {len} at {off}");
        assert!(drain_pipe(&pipe, n) == want, "bytes at {off}");
    }
    // The file was just written: every splice found its pages cached and was done by the
    // calling thread (cachestat, then splice(2)), none by the ring.
    let s = dev.stats();
    assert_eq!((s.inline_reads, s.inline_misses), (50, 0), "{s:?}");
    // Pages not in the page cache: an io_uring worker reads them.
    let f = File::open(dir.join("a")).unwrap();
    f.sync_all().unwrap();
    // SAFETY: advice on our own open file.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let cold = none_cached(&dir.join("a"), 123_457, 40_000);
    let n = rt
        .block_on(dev.splice("a", 123_457, 40_000, &pipe))
        .unwrap();
    assert_eq!(n, 40_000);
    assert!(drain_pipe(&pipe, n) == pread(&dir.join("a"), 123_457, 40_000));
    if cold {
        let s = dev.stats();
        assert_eq!((s.inline_reads, s.inline_misses), (50, 1), "{s:?}");
        assert!(s.ring_sqes >= 1, "{s:?}");
    }
    // EIO: nothing enters the pipe.
    dev.knobs().inject_eio(None, 1000..1001);
    let e = rt.block_on(dev.splice("a", 0, 4096, &pipe)).unwrap_err();
    assert!(
        matches!(e, StorageError::Injected { offset: 1000, .. }),
        "{e}"
    );
    dev.knobs().recover();
    // Stall holds the answer; crash fails it.
    dev.knobs().stall();
    let h = rt.spawn({
        let (dev, pipe) = (dev.clone(), pipe.clone());
        async move { dev.splice("a", 0, 4096, &pipe).await }
    });
    wait_until("the splice to be in flight", || dev.stats().in_flight == 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!h.is_finished(), "a stalled splice completed");
    dev.knobs().crash();
    let r = rt
        .block_on(async { tokio::time::timeout(WAIT, h).await })
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(StorageError::Crashed { .. })), "{r:?}");
    dev.knobs().recover();
    // No pool buffer was ever taken.
    assert_eq!(dev.stats().pool_free, 16);
    let o = Device::open(
        "splice-od",
        &dir,
        DeviceConfig {
            o_direct: true,
            ..small_cfg()
        },
    );
    if let Ok(o) = o {
        assert!(!o.can_splice());
    }
}

/// Whether no page of `path` in `offset..offset + len` is in the page cache (`mincore` over a
/// mapping, which does not fault pages in). Eviction is advice: the kernel may keep some pages
/// (and another process may read them back), so a test asserts a miss only where none is left.
fn none_cached(path: &Path, offset: usize, len: usize) -> bool {
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len() as usize;
    // SAFETY: a read-only shared mapping of a file we hold open, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let mut vec = vec![0u8; size.div_ceil(4096)];
    // SAFETY: `vec` has one byte per page of the mapping.
    let r = unsafe { libc::mincore(p, size, vec.as_mut_ptr()) };
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(p, size) };
    assert_eq!(r, 0);
    let pages = offset / 4096..(offset + len).div_ceil(4096).min(vec.len());
    vec[pages].iter().all(|v| v & 1 == 0)
}

#[test]
fn cached_reads_are_done_by_the_caller_and_cold_ones_by_the_ring() {
    let dir = test_dir("inline");
    let data = write_file(&dir, "a", 1 << 20, 3);
    let path = dir.join("a");
    File::open(&path).unwrap().sync_all().unwrap();
    let dev = Device::open("inline", &dir, small_cfg()).unwrap();
    let rt = rt();

    // In the page cache (just written): done inline, byte-exact, counted as io_uring SQEs.
    let b = rt.block_on(dev.read("a", 5000, 60_000)).unwrap();
    assert_eq!(&b[..], &data[5000..65_000]);
    let b = dev.read_blocking("a", (1 << 20) - 100, 4096).unwrap();
    assert_eq!(&b[..], &data[(1 << 20) - 100..]);
    let s = dev.stats();
    assert_eq!((s.inline_reads, s.inline_misses), (2, 0), "{s:?}");
    assert!(s.ring_sqes >= 2 && s.reads == 2, "{s:?}");
    drop(b);

    // Evicted: the attempt misses (it must not wait for the disk) and the ring thread reads.
    // The kernel may keep a page (it is advice), so the miss is asserted only when mincore
    // says the pages are gone.
    let f = File::open(&path).unwrap();
    // SAFETY: plain syscall on our fd.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let cold = none_cached(&path, 300_000, 65_536);
    let b = rt.block_on(dev.read("a", 300_000, 65_536)).unwrap();
    assert_eq!(&b[..], &data[300_000..365_536]);
    drop(b);
    let s = dev.stats();
    if cold {
        // A miss, or a hit after all: an `RWF_NOWAIT` read of an absent page starts the
        // kernel's readahead without waiting for it, and then takes the page if that I/O is
        // already done (a fast virtual disk). Either way the caller did not wait for the disk.
        let (reads, misses) = (s.inline_reads, s.inline_misses);
        assert!(
            (reads, misses) == (2, 1) || (reads, misses) == (3, 0),
            "{s:?}"
        );
    }
    // After a miss the next read skips the attempt (backoff), then they resume.
    let b = rt.block_on(dev.read("a", 0, 1000)).unwrap();
    assert_eq!(&b[..], &data[..1000]);
    drop(b);
    for k in 0..4u64 {
        let b = rt
            .block_on(dev.read("a", 300_000 + k * 1000, 1000))
            .unwrap();
        assert_eq!(&b[..], &data[300_000 + k as usize * 1000..][..1000]);
    }
    let s = dev.stats();
    assert!(s.inline_reads > 2, "{s:?}");

    // While a knob acts, every read goes to the ring thread, which applies it.
    let before = dev.stats().inline_reads;
    dev.knobs().set_latency(Duration::from_millis(20));
    let t = Instant::now();
    let b = rt.block_on(dev.read("a", 0, 1000)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(&b[..], &data[..1000]);
    assert_eq!(dev.stats().inline_reads, before);
    dev.knobs().set_latency(Duration::ZERO);
    dev.knobs().set_bandwidth(Some(1 << 30));
    rt.block_on(dev.read("a", 0, 1000)).unwrap();
    assert_eq!(dev.stats().inline_reads, before);
    dev.knobs().set_bandwidth(None);
    rt.block_on(dev.read("a", 0, 1000)).unwrap();
    assert_eq!(dev.stats().inline_reads, before + 1);
}

#[test]
fn a_file_that_grew_after_opening_is_spliced_whole() {
    use crate::pipe::SplicePipe;
    use std::io::Write;
    let dir = test_dir("grew");
    let mut data = write_file(&dir, "a", 10_000, 4);
    let dev = Device::open("grew", &dir, small_cfg()).unwrap();
    let rt = rt();
    let pipe = Arc::new(SplicePipe::new(64 * 1024).unwrap());
    // Opens the file (its size, 10,000, is noted) and splices inline.
    let n = rt.block_on(dev.splice("a", 0, 4096, &pipe)).unwrap();
    assert!(drain_pipe(&pipe, n) == data[..4096]);
    let more: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("a"))
        .unwrap()
        .write_all(&more)
        .unwrap();
    data.extend_from_slice(&more);
    let n = rt.block_on(dev.splice("a", 8000, 8000, &pipe)).unwrap();
    assert_eq!(n, 8000);
    assert!(drain_pipe(&pipe, n) == data[8000..16_000]);
    assert_eq!(dev.stats().inline_reads, 2, "{:?}", dev.stats());
}
