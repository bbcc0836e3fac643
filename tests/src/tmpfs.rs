//! A small tmpfs of an exact size, private to one test, for "the disk is full" tests.
//!
//! Mounting in the test's own mount namespace would leak the mount into the host when the test
//! is killed between `mount` and `umount`. Instead a holder process (`unshare -m` with private
//! propagation) mounts the tmpfs in a mount namespace of its own and sleeps; the test and the
//! installer reach that mount through the holder's `/proc/PID/root`, which resolves paths in
//! the holder's namespace. When the holder dies (dropped, killed, or its sleep ends), the
//! namespace and the mount die with it: nothing can outlive the test, and nothing outside the
//! test's own temporary folder is touched.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Without it the test fails with that message; it does
//! not skip.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the holder keeps the mount at most: a bound on any one test's use of it.
const HOLD_SECS: u64 = 600;
/// How long mounting may take before the test fails.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// tmpfs counts its size in pages.
pub const PAGE: u64 = 4096;

/// The effective user id, from `/proc/self/status` (no libc in the tests).
fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Panics with a clear message unless the tests run as root (they must, to mount a tmpfs).
pub fn require_root(what: &str) {
    assert_eq!(
        euid(),
        Some(0),
        "{what} mounts a small tmpfs (in a private mount namespace) and needs root: \
         run the tests as root (CI does)"
    );
}

/// A tmpfs of `size` bytes mounted on a folder, seen only through [`PrivateTmpfs::path`].
pub struct PrivateTmpfs {
    holder: Child,
    path: PathBuf,
}

impl PrivateTmpfs {
    /// Mounts a tmpfs of `size` bytes (rounded up to pages by the kernel) on `dir`.
    pub fn mount(dir: &Path, size: u64) -> PrivateTmpfs {
        PrivateTmpfs::mount_with(dir, &format!("size={size}"))
    }

    /// Mounts a tmpfs with the given `-o` options (`size=…`, `nr_inodes=…`) on `dir`, an empty
    /// folder inside the test's temporary folder, in a new private mount namespace.
    pub fn mount_with(dir: &Path, options: &str) -> PrivateTmpfs {
        require_root("this test");
        let dir = dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("tmpfs mount point {}: {e}", dir.display()));
        let script = format!(
            "mount -t tmpfs -o {options},mode=0755 sluice-test-tmpfs \"$1\" && exec sleep {HOLD_SECS}"
        );
        let holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "sh",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `unshare` (util-linux) to mount a tmpfs: {e}")
            });
        let rel = dir.strip_prefix("/").unwrap_or(&dir);
        let path = Path::new("/proc")
            .join(holder.id().to_string())
            .join("root")
            .join(rel);
        let mut tmpfs = PrivateTmpfs { holder, path };
        tmpfs.wait_mounted(&dir);
        tmpfs
    }

    /// Waits until the holder's view of the folder is another filesystem than the folder.
    fn wait_mounted(&mut self, dir: &Path) {
        let outer = fs::metadata(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .dev();
        let start = Instant::now();
        loop {
            if let Ok(m) = fs::metadata(&self.path)
                && m.dev() != outer
            {
                return;
            }
            if let Ok(Some(status)) = self.holder.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.holder.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!(
                    "mounting a tmpfs on {} in a private namespace failed ({status}): {}",
                    dir.display(),
                    err.trim()
                );
            }
            assert!(
                start.elapsed() < MOUNT_TIMEOUT,
                "the tmpfs on {} was not mounted after {MOUNT_TIMEOUT:?}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The mounted folder, as this process (and any child it starts) reaches it.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTmpfs {
    fn drop(&mut self) {
        // The holder is the only process in the namespace: its death unmounts the tmpfs.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
