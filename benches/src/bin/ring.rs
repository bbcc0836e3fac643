//! Storage device reads through io_uring (`storage_device_sim::Device`) against `pread`, in the
//! same run, on one ~1 GiB file under `target/bench-media/`: 4 KiB and 1 MiB reads at random
//! aligned offsets, from the page cache and with `O_DIRECT`, at queue depths 1 and 32.
//!
//! What "depth N" means for each side (the honest way each is used):
//! - **ring**: the streamer's runtime (multi-thread tokio, one worker per core) running N
//!   tasks, each awaiting `Device::read` in a loop, so N reads are in the device at once; the
//!   device has `queue_depth` N and its own ring thread. A read whose bytes are in the page
//!   cache is done by the worker's own small ring (`RWF_NOWAIT`, see the device's `inline`
//!   module), the others by the device's ring thread; the device's stats say how many each.
//! - **pread**: N threads, each calling `pread` (`FileExt::read_at`) in a loop into its own
//!   buffer (4096-aligned), since a blocking call keeps one read in flight per thread.
//! - **raw** (for reference, not a goal): a bare io_uring loop on one thread, N `READ_FIXED`
//!   in flight, no device around it: what io_uring itself does on this machine, so the cost of
//!   the device (its thread hand-offs, knobs, pool) is the gap between `raw` and `ring`.
//!
//! Both sides drop the data unread (the ring's `Bytes` is dropped, returning its buffer). Each
//! case runs for a fixed time, five times, alternating pread, ring and raw; the best run of each
//! counts. The machine's load average is printed before and after, because it changes the
//! ring's results more than pread's: every read the ring answers costs two cross-thread
//! wake-ups, cheap (~6 µs) while the CPUs are busy and expensive (35–45 µs) when they are idle
//! (this VM halts an idle vCPU at once); other processes hogging a core hurt it too.
//! CPU is the process's user+system time (`getrusage`), which includes the ring thread and the
//! kernel's io-wq worker threads (they belong to the process). Page-cache runs come first,
//! after one sequential pass that loads the whole file into the cache; `O_DIRECT` runs bypass
//! the cache, so it need not be dropped (we try `drop_caches` anyway, for the record).
//!
//! When the 4 KiB `O_DIRECT` depth-32 case ran and `fio` is installed, fio measures the disk's
//! own limit on the same file (`psync` × 32 threads, `io_uring` at depth 32 and 128): the
//! ceiling any engine's IOPS ratio meets on this machine.
//!
//! Run: `cargo run --release -j2 -p sluice-benches --bin ring` (`RING_BENCH_ONLY="1M pagecache"`
//! runs only the cases whose "SIZE SOURCE DEPTH" label contains that text;
//! `RING_BENCH_WORKERS=1` runs the ring side on one event-loop thread instead of one per core).

use anyhow::{Context, Result, bail};
use sluice_benches::Rng;
use sluice_benches::{bench_dir, cpu_time};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_device_sim::{Device, DeviceConfig};

const FILE: &str = "ring-1g.bin";
const FILE_LEN: u64 = 1 << 30;
const RUN: Duration = Duration::from_millis(800);
const ROUNDS: usize = 5;
const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// The test file, made once (pseudo-random bytes, so nothing compresses or dedups).
fn test_file() -> Result<std::path::PathBuf> {
    let path = bench_dir().join(FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == FILE_LEN) {
        return Ok(path);
    }
    let tmp = bench_dir().join(format!(".{FILE}.tmp.{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    let mut rng = Rng(0x5EED);
    let mut chunk = vec![0u8; 8 << 20];
    for _ in 0..FILE_LEN / chunk.len() as u64 {
        for w in chunk.chunks_exact_mut(8) {
            w.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A 4096-aligned heap buffer (what O_DIRECT pread needs).
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}
impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Aligned { ptr, layout }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: allocated with this length, owned exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}
impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[derive(Clone, Copy, Default)]
struct Run {
    ops: u64,
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn iops(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
    fn mib_s(&self, size: usize) -> f64 {
        self.iops() * size as f64 / MIB
    }
    /// CPU seconds per GiB read.
    fn cpu_per_gib(&self, size: usize) -> f64 {
        self.cpu.as_secs_f64() / (self.ops as f64 * size as f64 / GIB)
    }
}

fn measure(f: impl FnOnce() -> Result<u64>) -> Result<Run> {
    let c0 = cpu_time().0;
    let t0 = Instant::now();
    let ops = f()?;
    Ok(Run {
        ops,
        wall: t0.elapsed(),
        cpu: cpu_time().0 - c0,
    })
}

fn run_pread(path: &Path, size: usize, depth: usize, direct: bool) -> Result<Run> {
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let file = oo.open(path).context("open for pread")?;
    let blocks = FILE_LEN / size as u64;
    let total = AtomicU64::new(0);
    measure(|| {
        let stop = Instant::now() + RUN;
        std::thread::scope(|s| -> Result<()> {
            let hs: Vec<_> = (0..depth)
                .map(|t| {
                    let (file, total) = (&file, &total);
                    std::thread::Builder::new()
                        .name("pread".into())
                        .spawn_scoped(s, move || -> Result<()> {
                            let mut buf = Aligned::new(size);
                            let mut rng = Rng(0x1234_5678 + t as u64);
                            let mut n = 0;
                            while Instant::now() < stop {
                                let off = rng.next_u64() % blocks * size as u64;
                                let got = file.read_at(buf.as_mut(), off)?;
                                if got != size {
                                    bail!("pread short: {got}");
                                }
                                n += 1;
                            }
                            total.fetch_add(n, Ordering::Relaxed);
                            Ok(())
                        })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            for h in hs {
                h.join().expect("pread thread")?;
            }
            Ok(())
        })?;
        Ok(total.load(Ordering::Relaxed))
    })
}

fn run_raw(path: &Path, size: usize, depth: usize, direct: bool) -> Result<Run> {
    use io_uring::{IoUring, opcode, types};
    use std::os::fd::AsRawFd;
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let file = oo.open(path).context("open for raw io_uring")?;
    let mut ring: IoUring = IoUring::new((depth as u32).next_power_of_two())?;
    let mut bufs: Vec<Aligned> = (0..depth).map(|_| Aligned::new(size)).collect();
    let iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut().as_mut_ptr().cast(),
            iov_len: size,
        })
        .collect();
    // SAFETY: the buffers live until the end of this function, after the ring is drained.
    unsafe { ring.submitter().register_buffers(&iovecs)? };
    let fd = types::Fd(file.as_raw_fd());
    let blocks = FILE_LEN / size as u64;
    let mut rng = Rng(0x0BAD_CAFE);
    let mut push = |ring: &mut IoUring, i: usize| -> Result<()> {
        let off = rng.next_u64() % blocks * size as u64;
        let e = opcode::ReadFixed::new(fd, iovecs[i].iov_base.cast(), size as u32, i as u16)
            .offset(off)
            .build()
            .user_data(i as u64);
        // SAFETY: the buffer is registered and owned by slot i until its completion.
        unsafe { ring.submission().push(&e) }.map_err(|_| anyhow::anyhow!("SQ full"))?;
        Ok(())
    };
    measure(|| {
        let stop = Instant::now() + RUN;
        for i in 0..depth {
            push(&mut ring, i)?;
        }
        let mut ops = 0u64;
        let mut in_flight = depth;
        let mut done = Vec::with_capacity(depth);
        while in_flight > 0 {
            ring.submit_and_wait(1)?;
            done.clear();
            done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
            for &(i, res) in &done {
                if res as usize != size {
                    bail!("raw read: {res}");
                }
                ops += 1;
                if Instant::now() < stop {
                    push(&mut ring, i as usize)?;
                } else {
                    in_flight -= 1;
                }
            }
        }
        Ok(ops)
    })
}

fn run_ring(dev: &Device, size: usize, depth: usize) -> Result<Run> {
    let workers = std::env::var("RING_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()?;
    let blocks = FILE_LEN / size as u64;
    measure(|| {
        rt.block_on(async {
            let stop = Instant::now() + RUN;
            let hs: Vec<_> = (0..depth)
                .map(|t| {
                    let dev = dev.clone();
                    tokio::spawn(async move {
                        let mut rng = Rng(0x8765_4321 + t as u64);
                        let mut n = 0u64;
                        while Instant::now() < stop {
                            let off = rng.next_u64() % blocks * size as u64;
                            let b = dev.read(FILE, off, size).await?;
                            if b.len() != size {
                                bail!("ring short: {}", b.len());
                            }
                            n += 1;
                        }
                        Ok(n)
                    })
                })
                .collect();
            let mut total = 0;
            for h in hs {
                total += h.await??;
            }
            Ok(total)
        })
    })
}

/// The disk's own limit for 4 KiB `O_DIRECT` random reads, measured by `fio` (Debian's
/// `fio`, when installed) on the same file: `psync` with `jobs` threads, or `io_uring` at
/// `depth`. Returns IOPS, or `None` if fio is missing or failed.
fn fio_iops(path: &Path, engine: &str, jobs: usize, depth: usize) -> Option<f64> {
    let out = std::process::Command::new("fio")
        .args([
            "--name=disk",
            "--rw=randread",
            "--bs=4k",
            "--direct=1",
            "--runtime=2",
            "--time_based",
            "--group_reporting",
            "--minimal",
        ])
        .arg(format!("--filename={}", path.display()))
        .arg(format!("--ioengine={engine}"))
        .arg(format!("--numjobs={jobs}"))
        .arg(format!("--iodepth={depth}"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // Terse format v3: field 8 (1-based) is the read IOPS.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .split(';')
        .nth(7)?
        .parse()
        .ok()
}

fn main() -> Result<()> {
    let t_all = Instant::now();
    let path = test_file()?;
    // Load the whole file into the page cache for the page-cache runs.
    {
        let f = File::open(&path)?;
        let mut buf = vec![0u8; 8 << 20];
        let mut off = 0;
        while off < FILE_LEN {
            off += f.read_at(&mut buf, off)? as u64;
        }
    }
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    println!("load average before: {}", load());
    println!(
        "ring vs pread: {} MiB file {}, {:.1} s per run, best of {ROUNDS} (alternating), 2 cores",
        FILE_LEN >> 20,
        path.display(),
        RUN.as_secs_f64()
    );
    println!(
        "pread depth N = N threads each pread-ing; ring depth N = N async tasks on Device::read (queue_depth N) in a tokio runtime of one worker per core"
    );
    println!("best run shown; spread = how much slower the worst of the {ROUNDS} runs was");
    println!();
    println!(
        "{:>6} {:>9} {:>5} {:>6} {:>9} {:>9} {:>8} {:>10} | {:>9} {:>9}",
        "size",
        "source",
        "depth",
        "engine",
        "MiB/s",
        "IOPS",
        "spread",
        "CPU s/GiB",
        "thr ratio",
        "CPU ratio"
    );
    let mut summary = Vec::new();
    for direct in [false, true] {
        if direct {
            let dropped = std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
            println!(
                "(drop_caches before O_DIRECT runs: {})",
                if dropped { "done" } else { "not permitted" }
            );
        }
        for size in [4096usize, 1 << 20] {
            for depth in [1usize, 32] {
                let src = if direct { "O_DIRECT" } else { "pagecache" };
                let sz = if size == 4096 { "4K" } else { "1M" };
                if let Ok(only) = std::env::var("RING_BENCH_ONLY")
                    && !format!("{sz} {src} {depth}").contains(&only)
                {
                    continue;
                }
                let dev = Device::open(
                    "bench",
                    bench_dir(),
                    DeviceConfig {
                        queue_depth: depth as u32,
                        buffer_size: size,
                        buffer_count: (2 * depth).max(4),
                        o_direct: direct,
                    },
                )?;
                // Warm up the device (opens the file, faults in nothing else).
                dev.read_blocking(FILE, 0, size)?;
                let (mut best_p, mut best_r, mut best_x) =
                    (Run::default(), Run::default(), Run::default());
                let (mut worst_p, mut worst_r, mut worst_x) = (f64::MAX, f64::MAX, f64::MAX);
                for _ in 0..ROUNDS {
                    let p = run_pread(&path, size, depth, direct)?;
                    let r = run_ring(&dev, size, depth)?;
                    let x = run_raw(&path, size, depth, direct)?;
                    for (run, best, worst) in [
                        (p, &mut best_p, &mut worst_p),
                        (r, &mut best_r, &mut worst_r),
                        (x, &mut best_x, &mut worst_x),
                    ] {
                        if best.ops == 0 || run.iops() > best.iops() {
                            *best = run;
                        }
                        *worst = worst.min(run.iops());
                    }
                }
                let st = dev.stats();
                if !st.fixed_buffers || st.errors != 0 || st.ring_sqes < st.reads {
                    bail!("unexpected device stats: {st:?}");
                }
                let thr = best_r.iops() / best_p.iops();
                let cpu = best_r.cpu_per_gib(size) / best_p.cpu_per_gib(size);
                let raw = best_x.iops() / best_p.iops();
                for (name, r, worst) in [
                    ("pread", best_p, worst_p),
                    ("ring", best_r, worst_r),
                    ("raw", best_x, worst_x),
                ] {
                    print!(
                        "{sz:>6} {src:>9} {depth:>5} {name:>6} {:>9.0} {:>9.0} {:>7.1}% {:>10.3}",
                        r.mib_s(size),
                        r.iops(),
                        (1.0 - worst / r.iops()) * 100.0,
                        r.cpu_per_gib(size)
                    );
                    if name == "pread" {
                        println!(" |");
                    } else {
                        let t = r.iops() / best_p.iops();
                        let c = r.cpu_per_gib(size) / best_p.cpu_per_gib(size);
                        println!(" | {t:>8.2}× {c:>8.2}×");
                    }
                }
                println!(
                    "{:>27} device: {:.1}% of {} reads done inline by the caller's thread, {} inline misses",
                    "",
                    100.0 * st.inline_reads as f64 / st.reads.max(1) as f64,
                    st.reads,
                    st.inline_misses
                );
                summary.push((sz, src, depth, thr, cpu, raw));
            }
        }
    }
    println!();
    println!("goals (ring/pread):");
    for &(sz, src, depth, thr, cpu, raw) in &summary {
        if sz == "1M" && src == "pagecache" {
            println!(
                "  1 MiB page cache, depth {depth:>2}: throughput {thr:.3}× (goal ≥ 1: {}), CPU/GiB {cpu:.2}×; bare io_uring {raw:.3}×",
                if thr >= 1.0 { "met" } else { "NOT met" }
            );
        }
        if sz == "4K" && src == "O_DIRECT" && depth == 32 {
            println!(
                "  4 KiB O_DIRECT,   depth 32: IOPS {thr:.3}× (goal ≥ 1.3: {}), CPU/GiB {cpu:.2}× (goal < 1: {}); bare io_uring {raw:.3}×",
                if thr >= 1.3 { "met" } else { "NOT met" },
                if cpu < 1.0 { "met" } else { "NOT met" }
            );
        }
    }
    if summary
        .iter()
        .any(|&(sz, src, depth, ..)| sz == "4K" && src == "O_DIRECT" && depth == 32)
    {
        // Whether any engine can do more IOPS on this disk: fio, a peer, measured now.
        let runs = [
            ("psync, 32 threads", "psync", 32, 1),
            ("io_uring, depth 32", "io_uring", 1, 32),
            ("io_uring, depth 128", "io_uring", 1, 128),
        ];
        let got: Vec<_> = runs
            .iter()
            .map(|&(label, engine, jobs, depth)| (label, fio_iops(&path, engine, jobs, depth)))
            .collect();
        if got.iter().all(|(_, v)| v.is_some()) {
            println!("  the disk's limit, 4 KiB O_DIRECT random reads by fio (2 s each):");
            let base = got[0].1.unwrap_or(1.0);
            for (label, v) in &got {
                let v = v.unwrap_or(0.0);
                println!(
                    "    {label:<20} {v:>9.0} IOPS  ({:.2}× fio psync)",
                    v / base
                );
            }
        } else {
            println!(
                "  (fio not found or failed: apt-get install fio to measure the disk's limit)"
            );
        }
    }
    println!("load average after: {}", load());
    println!("total bench time {:.0} s", t_all.elapsed().as_secs_f64());
    Ok(())
}
