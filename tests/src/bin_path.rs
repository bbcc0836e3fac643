//! Where the Sluice binaries the end-to-end tests run are (`install-content`, `streamer`,
//! `storage-node`), and the command that runs the installer on a store.
//!
//! `env!("CARGO_BIN_EXE_…")` only exists for binaries of the test's own package, and these belong
//! to `installer`, `streamer` and `storage-device-sim`. Cargo builds a dependency's library for
//! our tests but not its binaries, so a binary is found next to the test executable instead: a
//! test runs as `TARGET/PROFILE/deps/install-HASH`, and the binary is `TARGET/PROFILE/NAME`.
//!
//! When that file is missing, or older than a source file it is built from (other people edit
//! those while the suite runs, and testing a stale binary would report old bugs or hide new
//! ones), the first test that needs it runs `cargo build -p PACKAGE --bin NAME` into the same
//! target folder, once per binary and test process. Cargo releases its build lock before it runs
//! test binaries, so this nested build does not deadlock; it may wait for another build's lock,
//! which is normal.

use crate::process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Name of the installer binary.
pub const BIN_NAME: &str = "install-content";

/// One binary of the workspace: its name, its package, and the sources (folders or files,
/// relative to the workspace root) whose changes make a built copy stale.
struct Binary {
    name: &'static str,
    package: &'static str,
    /// Cargo features the tests need (the cluster tests use etcd).
    features: &'static str,
    sources: &'static [&'static str],
}

const INSTALL_CONTENT: Binary = Binary {
    name: BIN_NAME,
    package: "installer",
    features: "",
    sources: &[
        "installer/src",
        "installer/Cargo.toml",
        "media/src",
        "media/Cargo.toml",
        "storage-device-sim/src",
        "storage-device-sim/Cargo.toml",
    ],
};

const STREAMER: Binary = Binary {
    name: "streamer",
    package: "streamer",
    features: "etcd",
    sources: &[
        "streamer/src",
        "streamer/Cargo.toml",
        "installer/src",
        "installer/Cargo.toml",
        "media/src",
        "media/Cargo.toml",
        "storage-device-sim/src",
        "storage-device-sim/Cargo.toml",
        // The embedded demo clip (`include_bytes!`).
        "media-fixtures/demo",
    ],
};

const STORAGE_NODE: Binary = Binary {
    name: "storage-node",
    package: "storage-device-sim",
    features: "etcd",
    sources: &["storage-device-sim/src", "storage-device-sim/Cargo.toml"],
};

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
        // A file (or nothing).
        if let Ok(m) = dir.metadata().and_then(|m| m.modified()) {
            *newest = (*newest).max(m);
        }
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

/// The newest modification time among the sources `bin` is built from.
fn sources_mtime(root: &Path, bin: &Binary) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for source in bin.sources {
        newest_mtime(&root.join(source), &mut newest);
    }
    newest
}

fn is_fresh(path: &Path, bin: &Binary) -> bool {
    let Ok(built) = path.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    built >= sources_mtime(&workspace_root(), bin)
}

fn build(profile_dir: &Path, bin: &Binary) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder has a parent");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-j2", "-p", bin.package, "--bin", bin.name])
        .args(if bin.features.is_empty() {
            vec![]
        } else {
            vec!["--features", bin.features]
        })
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = process::spawn(&mut cmd).wait_at_most(BUILD_TIMEOUT);
    assert!(
        out.success(),
        "building {} for the end-to-end tests failed\n{out}",
        bin.name
    );
}

/// `bin`, built first when missing or older than its sources (once per process).
fn located(bin: &Binary, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let dir = profile_dir();
        let path = dir.join(bin.name);
        if !is_fresh(&path, bin) {
            build(&dir, bin);
        }
        assert!(
            path.is_file(),
            "{} does not exist after `cargo build -p {} --bin {}`",
            path.display(),
            bin.package,
            bin.name
        );
        path
    })
}

/// The `install-content` binary, built first when missing or older than its sources.
pub fn install_content() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    located(&INSTALL_CONTENT, &BIN)
}

/// The `streamer` binary, built first when missing or older than its sources.
pub fn streamer() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    located(&STREAMER, &BIN)
}

/// The `storage-node` binary, built first when missing or older than its sources.
pub fn storage_node() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    located(&STORAGE_NODE, &BIN)
}

/// `install-content --store STORE`, ready for a subcommand; `SLUICE_STORE` is cleared so only the
/// given store is used.
pub fn install_content_cmd(store: &Path) -> Command {
    let mut cmd = Command::new(install_content());
    cmd.env_remove("SLUICE_STORE").arg("--store").arg(store);
    cmd
}
