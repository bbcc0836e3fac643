//! Collecting failed checks: a test runs all its checks, then fails once with every problem
//! listed, so one run of the suite tells the installer's author everything that is wrong with a
//! fixture's install, not only the first thing.

use std::fmt::Display;

/// The failures of one test so far.
#[derive(Debug)]
pub struct Report {
    what: String,
    failures: Vec<String>,
}

impl Report {
    /// A report about `what` (e.g. a fixture name).
    pub fn new(what: impl Into<String>) -> Report {
        Report {
            what: what.into(),
            failures: Vec::new(),
        }
    }

    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.failures.push(message());
        }
        ok
    }

    /// Records a failure.
    pub fn fail(&mut self, message: impl Display) {
        self.failures.push(message.to_string());
    }

    /// Whether nothing has failed yet.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics with every recorded failure, if any.
    pub fn finish(self) {
        if !self.failures.is_empty() {
            let list: Vec<String> = self
                .failures
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{}. {f}", i + 1))
                .collect();
            panic!(
                "{}: {} check(s) failed:\n{}",
                self.what,
                self.failures.len(),
                list.join("\n")
            );
        }
    }
}
