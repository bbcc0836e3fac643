//! `install-content`: analyse, plan and install media into a Sluice store.

use anyhow::Result;
use clap::{Parser, Subcommand};
use installer::analyse::Analysis;
use installer::install::{self, Options};
use installer::progress::{Progress, json_line};
use installer::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "install-content",
    version,
    about = "Install media into a Sluice store so it can be streamed"
)]
struct Cli {
    /// The store folder.
    #[arg(long, global = true, env = "SLUICE_STORE", default_value = "./store")]
    store: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Describe a file and what installing it would do.
    Probe {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Install a file.
    Add {
        file: PathBuf,
        /// Content id (default: the file name without extension).
        #[arg(long)]
        id: Option<String>,
        /// Copies on distinct physical hosts (main, sub, backups).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Analyse and plan only; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Security level: only viewers whose clearance reaches it are served (0: public).
        #[arg(long, default_value_t = 0)]
        level: u32,
        #[arg(long)]
        json: bool,
    },
    /// List installed contents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check an installed content: checksums, index against content, playlists.
    Verify {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Restore missing or damaged replicas of a content from a good copy.
    Repair { id: String },
    /// Remove an installed content.
    Remove { id: String },
    /// Change the security level of an installed content (0: public).
    SetLevel { id: String, level: u32 },
}

fn opt<T: std::fmt::Display>(v: &Option<T>, suffix: &str) -> String {
    v.as_ref()
        .map_or(String::new(), |x| format!(" {x}{suffix}"))
}

/// "node-1 (host-a), node-4 (host-b)": where the copies are, main first.
fn nodes(replicas: &[installer::info::ReplicaInfo]) -> String {
    let v: Vec<String> = replicas
        .iter()
        .map(|r| format!("{} ({})", r.node, r.host))
        .collect();
    v.join(", ")
}

fn print_analysis(a: &Analysis) {
    println!("file:      {} ({} bytes)", a.file, a.size);
    let notes = if a.container_notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.container_notes.join(", "))
    };
    println!("container: {}{notes}", a.container.name());
    println!("duration:  {:.3} s", a.duration_seconds);
    println!("bitrate:   {:.0} kbit/s", a.bitrate as f64 / 1000.0);
    if let Some(v) = &a.video {
        println!(
            "video:     {} frames, {} keyframes, GOP {:.2} s (longest {:.2} s), {} GOP, parameter sets {}",
            v.frames,
            v.keyframes,
            v.gop_seconds,
            v.max_gop_seconds,
            if v.open_gop { "open" } else { "closed" },
            v.parameter_sets
        );
    }
    println!("tracks:");
    for t in &a.tracks {
        let i = &t.info;
        let kind = i
            .kind
            .map_or("other".to_string(), |k| format!("{k:?}").to_lowercase());
        let size = match (i.width, i.height) {
            (Some(w), Some(h)) => format!(" {w}x{h}"),
            _ => String::new(),
        };
        let fps = i
            .frame_rate
            .map_or(String::new(), |f| format!(" {f:.3} fps"));
        println!(
            "  #{} {kind} {}{}{size}{fps}{}{}{}",
            i.id,
            t.codec_name,
            opt(&i.profile, ""),
            opt(&i.sample_rate, " Hz"),
            opt(&i.channels, " ch"),
            opt(&i.language, ""),
        );
        println!("      plan: {:?} — {}", t.action, t.reason);
    }
    for w in &a.warnings {
        println!("warning:   {w}");
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Probe { file, json } => {
            let src = installer::source::open(&file)?;
            let a = installer::analyse::analyse(&src)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&a)?);
            } else {
                print_analysis(&a);
            }
        }
        Cmd::Add {
            file,
            id,
            replicas,
            dry_run,
            level,
            json,
        } => {
            install::catch_interrupts();
            let mut progress = Progress::new(json);
            let opts = Options {
                id,
                replicas,
                store: cli.store,
                dry_run,
                level,
            };
            let out = install::add(&file, &opts, &mut progress)?;
            for w in &out.analysis.warnings {
                eprintln!("install-content: warning: {w}");
            }
            if json {
                json_line(&serde_json::json!({"event": "result", "outcome": out}));
            } else {
                if dry_run {
                    print_analysis(&out.analysis);
                    println!(
                        "dry run: would install {} on {} at {}",
                        out.id,
                        nodes(&out.replicas),
                        out.path.display()
                    );
                } else {
                    let m = out.manifest.as_ref();
                    println!(
                        "installed {} on {} at {} ({} keyframes, {:.3} s)",
                        out.id,
                        nodes(&out.replicas),
                        out.path.display(),
                        m.map_or(0, |m| m.keyframes),
                        m.map_or(0.0, |m| m.duration_seconds)
                    );
                }
            }
        }
        Cmd::List { json } => {
            let store = Store::open(&cli.store)?;
            let items = store.list();
            let levels = installer::access::read(&store.root)?;
            if json {
                let v: Vec<_> = items
                    .iter()
                    .map(|(node, id, m)| match m {
                        Ok(m) => serde_json::json!({
                            "id": id, "node": node, "level": levels.level(id), "manifest": m
                        }),
                        Err(e) => {
                            serde_json::json!({"id": id, "node": node, "error": e.to_string()})
                        }
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (node, id, m) in &items {
                    match m {
                        Ok(m) => {
                            let codecs: Vec<&str> = m
                                .tracks
                                .iter()
                                .filter(|t| t.pid != 0)
                                .map(|t| t.codec.as_str())
                                .collect();
                            println!(
                                "{id}\t{node}\t{:.3} s\t{} bytes\t{}\tlevel {}",
                                m.duration_seconds,
                                m.files
                                    .get(installer::info::CONTENT_TS)
                                    .map_or(0, |f| f.size),
                                codecs.join(","),
                                levels.level(id)
                            );
                        }
                        Err(e) => println!("{id}\t{node}\tBROKEN: {e}"),
                    }
                }
            }
        }
        Cmd::Verify { id, json } => {
            let store = Store::open(&cli.store)?;
            let res = installer::verify::verify(&store, &id)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "ok": true, "copies": res})
                );
            } else {
                for (node, checks) in res {
                    println!("{id} on {node}: ok");
                    for c in checks {
                        println!("  {c}");
                    }
                }
            }
        }
        Cmd::Repair { id } => {
            let store = Store::open(&cli.store)?;
            let nodes = installer::verify::repair(&store, &id)?;
            if nodes.is_empty() {
                println!("{id}: every replica is good, nothing to repair");
            } else {
                println!("{id}: repaired on {}", nodes.join(", "));
            }
        }
        Cmd::Remove { id } => {
            let store = Store::open(&cli.store)?;
            let nodes = store.remove(&id)?;
            installer::access::set_level(&store.root, &id, 0)?;
            println!("removed {id} from {}", nodes.join(", "));
        }
        Cmd::SetLevel { id, level } => {
            let store = Store::open(&cli.store)?;
            if store.locate(&id).is_empty() {
                return Err(installer::InstallError::NotFound(id).into());
            }
            let was = installer::access::set_level(&store.root, &id, level)?;
            println!("{id}: security level {was} -> {level}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line. Our errors already name their cause in their message.
            let line = e.to_string().replace('\n', " ");
            eprintln!("install-content: error: {line}");
            ExitCode::FAILURE
        }
    }
}
