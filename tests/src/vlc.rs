//! VLC (`cvlc`) as the tests run it: headless, and as the unprivileged user `nobody` when the
//! tests run as root (VLC refuses to run as root), with a HOME of its own.

use std::path::PathBuf;
use std::process::Command;

/// A tool the tests need, or a panic naming what installs it.
pub fn need(tool: &str) -> PathBuf {
    media_fixtures::require_tool(tool).unwrap_or_else(|e| {
        panic!("this test needs {tool}: {e} (scripts/ensure-tools installs it)")
    })
}

fn id_of(file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.split(':').next() == Some(name))?
        .split(':')
        .nth(2)?
        .parse()
        .ok()
}

pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `cvlc --play-and-exit --no-video --aout=dummy URL vlc://quit`, ready to spawn, and the
/// HOME folder it uses (keep it alive while VLC runs).
pub fn play_and_exit(url: &str) -> (Command, tempfile::TempDir) {
    let cvlc = need("cvlc");
    let home = tempfile::Builder::new()
        .prefix("sluice-vlc-home-")
        .tempdir()
        .expect("tempdir");
    let mut cmd = if running_as_root() {
        let uid = id_of("/etc/passwd", "nobody").expect("a user nobody");
        let gid = id_of("/etc/group", "nogroup").expect("a group nogroup");
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).expect("chown VLC's HOME");
        let mut cmd = Command::new(need("setpriv"));
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&cvlc);
        cmd
    } else {
        Command::new(&cvlc)
    };
    cmd.env("HOME", home.path())
        .env_remove("DISPLAY")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["--play-and-exit", "--no-video", "--aout=dummy"])
        .arg(url)
        .arg("vlc://quit");
    (cmd, home)
}

/// Lines of VLC's output that report errors, besides its missing desktop interfaces (dbus,
/// hotkeys), which it logs as errors when headless.
pub fn errors(out: &crate::process::Output) -> Vec<String> {
    out.stderr
        .lines()
        .chain(out.stdout.lines())
        .filter(|l| l.contains(" error: ") && !l.contains("interface"))
        .map(str::to_owned)
        .collect()
}
