//! Progress reporting: a bar on a terminal, JSON lines with `--json`, nothing otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;

pub enum Progress {
    Bar(Option<ProgressBar>),
    Json,
    Quiet,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        if json {
            Progress::Json
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Progress::Bar(None)
        } else {
            Progress::Quiet
        }
    }

    /// A new stage starts (analyse, transcode, remux, verify, commit).
    pub fn stage(&mut self, name: &str) {
        match self {
            Progress::Bar(bar) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(name.to_string());
                *bar = Some(b);
            }
            Progress::Json => json_line(&serde_json::json!({"event": "stage", "stage": name})),
            Progress::Quiet => {}
        }
    }

    pub fn bytes(&mut self, done: u64, total: u64) {
        match self {
            Progress::Bar(Some(b)) => {
                b.set_length(total);
                b.set_position(done);
            }
            Progress::Json => {
                json_line(&serde_json::json!({"event": "progress", "done": done, "total": total}))
            }
            _ => {}
        }
    }

    pub fn finish(&mut self) {
        if let Progress::Bar(bar) = self
            && let Some(b) = bar.take()
        {
            b.finish_and_clear();
        }
    }
}

pub fn json_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}
