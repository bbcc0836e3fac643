//! Where the `install-content` binary is, and the command that runs it on a store.
//!
//! `env!("CARGO_BIN_EXE_install-content")` only exists for binaries of the test's own package,
//! and `install-content` belongs to `installer`. Cargo builds a dependency's library for our
//! tests but not its binaries, so the binary is found next to the test executable instead: a
//! test runs as `TARGET/PROFILE/deps/install-HASH`, and the binary is
//! `TARGET/PROFILE/install-content`.
//!
//! When that file is missing, or older than a source file of `installer/` or `media/` (other
//! people edit those while the suite runs, and testing a stale binary would report old bugs or
//! hide new ones), the first test that needs it runs
//! `cargo build -p installer --bin install-content` into the same target folder, once per test
//! process. Cargo releases its build lock before it runs test binaries, so this nested build
//! does not deadlock; it may wait for another build's lock, which is normal.

use crate::process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Name of the installer binary.
pub const BIN_NAME: &str = "install-content";

/// How long the on-demand build may take (it may wait for other builds' locks).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The workspace root (this crate's parent folder).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `TARGET/PROFILE` of the running test executable (`TARGET/PROFILE/deps/NAME`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable is in a folder");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

fn newest_mtime(dir: &Path, newest: &mut SystemTime) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            newest_mtime(&e.path(), newest);
        } else if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
}

/// The newest modification time among the sources the binary is built from.
fn sources_mtime(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for krate in ["installer", "media", "storage-device-sim"] {
        newest_mtime(&root.join(krate).join("src"), &mut newest);
        if let Ok(m) = root
            .join(krate)
            .join("Cargo.toml")
            .metadata()
            .and_then(|m| m.modified())
        {
            newest = newest.max(m);
        }
    }
    newest
}

fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    built >= sources_mtime(&workspace_root())
}

fn build(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder has a parent");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "installer",
            "--bin",
            BIN_NAME,
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = process::spawn(&mut cmd).wait_at_most(BUILD_TIMEOUT);
    assert!(
        out.success(),
        "building {BIN_NAME} for the end-to-end tests failed\n{out}"
    );
}

/// The `install-content` binary, built first when missing or older than its sources.
pub fn install_content() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = profile_dir();
        let bin = dir.join(BIN_NAME);
        if !is_fresh(&bin) {
            build(&dir);
        }
        assert!(
            bin.is_file(),
            "{} does not exist after `cargo build -p installer`",
            bin.display()
        );
        bin
    })
}

/// `install-content --store STORE`, ready for a subcommand; `SLUICE_STORE` is cleared so only the
/// given store is used.
pub fn install_content_cmd(store: &Path) -> Command {
    let mut cmd = Command::new(install_content());
    cmd.env_remove("SLUICE_STORE").arg("--store").arg(store);
    cmd
}
