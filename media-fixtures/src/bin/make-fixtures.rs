//! Generates every fixture (or the ones named on the command line) into the cache and prints
//! name, size and path, one per line.
//!
//! `cargo run -p media-fixtures --bin make-fixtures [NAME...]`

use std::process::ExitCode;

use media_fixtures::{Fixture, fixtures_dir};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: make-fixtures [NAME...]\n\nfixtures (cached in {}):",
            fixtures_dir().display()
        );
        for f in Fixture::ALL {
            println!("  {:<26} {}", f.name(), f.expect().description);
        }
        return ExitCode::SUCCESS;
    }
    let mut chosen = Vec::new();
    for a in &args {
        match Fixture::from_name(a) {
            Some(f) => chosen.push(f),
            None => {
                eprintln!("make-fixtures: no fixture named {a:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = Fixture::ALL.to_vec();
    }
    let mut failed = false;
    for f in chosen {
        match f.path() {
            Ok(path) => {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                println!("{:<26} {:>8} {}", f.name(), size, path.display());
            }
            Err(e) => {
                eprintln!("make-fixtures: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
