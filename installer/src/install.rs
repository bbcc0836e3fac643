//! `add`: the whole install, staged and atomic.
//!
//! Nothing touches the store until the source is analysed and planned (bad input fails before
//! any write). Then everything is written into a staging folder inside the store, fsynced,
//! verified from disk, and renamed into `NODE/ID`. On any error the staging folder, and a store
//! folder or topology file this install created, are removed: the store is as it was.
//!
//! A full disk is just such an error, wherever it strikes (the TS, the index, a playlist, the
//! manifest, a folder): it surfaces as [`InstallError::DiskFull`] naming the file being written.
//! Concurrent installs of one id each stage privately (the PID is in the staging name); the
//! first rename into `NODE/ID` wins and every later one fails with "already installed", so the
//! installed copy is always one install's verified output, never a mix.

use crate::access;
use crate::analyse::{self, Analysis};
use crate::info::{self, CONTENT_TS, FileInfo, INDEX_FILE, MANIFEST_FILE, Manifest, ReplicaInfo};
use crate::progress::Progress;
use crate::remux::{self, RemuxStats};
use crate::store::{self, Created, Store};
use crate::{InstallError, Result, source, transcode, verify};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catch SIGINT/SIGTERM so an interrupted install can remove its staging folder (a SIGKILL'd
/// one is swept by the next install). Call once from the binary.
pub fn catch_interrupts() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// Err when a stop was requested; checked between stages and during the remux.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(InstallError::Interrupted)
    } else {
        Ok(())
    }
}

pub struct Options {
    pub id: Option<String>,
    /// Copies on distinct physical hosts (main, sub, backups).
    pub replicas: usize,
    pub store: PathBuf,
    pub dry_run: bool,
    /// Security level (0: public); written before the content becomes visible.
    pub level: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub id: String,
    /// The main replica's node.
    pub node: String,
    /// Every copy, in order (main, sub, backups).
    pub replicas: Vec<ReplicaInfo>,
    /// Where it was (or, with --dry-run, would be) installed.
    pub path: PathBuf,
    pub dry_run: bool,
    pub analysis: Analysis,
    pub manifest: Option<Manifest>,
}

fn write_file(path: &Path, data: &[u8]) -> Result<FileInfo> {
    let mut f = fs::File::create(path).map_err(|e| InstallError::io(path, e))?;
    f.write_all(data).map_err(|e| InstallError::io(path, e))?;
    f.sync_all().map_err(|e| InstallError::io(path, e))?;
    Ok(FileInfo {
        size: data.len() as u64,
        crc32: info::crc_hex(data),
    })
}

pub fn add(file: &Path, opts: &Options, progress: &mut Progress) -> Result<Outcome> {
    progress.stage("analyse");
    let src = source::open(file)?;
    let analysis = analyse::analyse(&src)?;
    let id = opts.id.clone().unwrap_or_else(|| store::id_from_path(file));
    store::check_id(&id)?;
    if analysis.needs_ffmpeg && transcode::find_tool("ffmpeg").is_none() {
        let what: Vec<String> = analysis
            .tracks
            .iter()
            .filter(|t| t.action == crate::plan::Action::Transcode)
            .map(|t| format!("transcoding {}", t.codec_name))
            .collect();
        return Err(InstallError::FfmpegMissing {
            what: if what.is_empty() {
                format!("reading a {} file", analysis.container.name())
            } else {
                what.join(", ")
            },
        });
    }
    if opts.dry_run {
        let topology = match Store::open(&opts.store) {
            Ok(s) => s.topology,
            Err(_) => store::Topology::default_single_host(),
        };
        let replicas = store::placement(&topology, &id, opts.replicas)?;
        progress.finish();
        return Ok(Outcome {
            path: opts.store.join(&replicas[0].node).join(&id),
            node: replicas[0].node.clone(),
            replicas,
            id,
            dry_run: true,
            analysis,
            manifest: None,
        });
    }
    let mut created = Created::default();
    let result = (|| {
        let mut store = Store::open_or_create(&opts.store, &mut created)?;
        if !store.locate(&id).is_empty() {
            return Err(InstallError::Exists(id.clone()));
        }
        let replicas = store.placement(&id, opts.replicas)?;
        let staging = store.staging(&id)?;
        store.unlock();
        let target = Target {
            id: &id,
            staging: &staging,
            replicas: &replicas,
            level: opts.level,
        };
        let r = stage_and_commit(&store, &src, &analysis, &target, progress);
        if r.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        r
    })();
    progress.finish();
    match result {
        Ok((replicas, path, manifest)) => Ok(Outcome {
            id,
            node: replicas[0].node.clone(),
            replicas,
            path,
            dry_run: false,
            analysis,
            manifest: Some(manifest),
        }),
        Err(e) => {
            store::rollback_creation(&opts.store, &created);
            Err(e)
        }
    }
}

/// Where an install goes: its id, staging folder, replicas and security level.
struct Target<'a> {
    id: &'a str,
    staging: &'a Path,
    replicas: &'a [ReplicaInfo],
    level: u32,
}

fn stage_and_commit(
    store: &Store,
    src: &source::Source,
    analysis: &Analysis,
    target: &Target<'_>,
    progress: &mut Progress,
) -> Result<(Vec<ReplicaInfo>, PathBuf, Manifest)> {
    let &Target {
        id,
        staging,
        replicas,
        level,
    } = target;
    // 1. ffmpeg first when the plan needs it; its TS output is then our source.
    let transcoded;
    let (bytes, path, plan): (&[u8], &Path, Analysis) = if analysis.needs_ffmpeg {
        progress.stage("transcode");
        let tmp = staging.join("transcode.ts");
        transcode::to_ts(&src.path, analysis, &tmp)?;
        transcoded = source::open(&tmp)?;
        let a2 = analyse::analyse(&transcoded)?;
        (transcoded.bytes(), &transcoded.path, a2)
    } else {
        (src.bytes(), &src.path, analysis.clone())
    };
    check_interrupted()?;
    // 2. Our remux into the content TS, building the index.
    progress.stage("remux");
    let ts_path = staging.join(CONTENT_TS);
    let mut ts_file = fs::File::create(&ts_path).map_err(|e| InstallError::io(&ts_path, e))?;
    let (index, stats): (_, RemuxStats) =
        remux::remux(bytes, path, &plan, &mut ts_file, &ts_path, &mut |d, t| {
            progress.bytes(d, t)
        })?;
    ts_file
        .sync_all()
        .map_err(|e| InstallError::io(&ts_path, e))?;
    drop(ts_file);
    if analysis.needs_ffmpeg {
        let tmp = staging.join("transcode.ts");
        fs::remove_file(&tmp).map_err(|e| InstallError::io(&tmp, e))?;
    }
    // 3. Information files.
    progress.stage("info");
    let mut files = BTreeMap::new();
    files.insert(
        CONTENT_TS.to_string(),
        FileInfo {
            size: stats.size,
            crc32: format!("{:08x}", stats.crc32),
        },
    );
    files.insert(
        INDEX_FILE.to_string(),
        write_file(&staging.join(INDEX_FILE), &index.to_bytes())?,
    );
    for (name, text) in info::playlists(&index, analysis) {
        files.insert(
            name.to_string(),
            write_file(&staging.join(name), text.as_bytes())?,
        );
    }
    let pids: Vec<u16> = {
        // PIDs in mux order: the muxer numbers carried streams from FIRST_ES_PID.
        let n = analysis
            .tracks
            .iter()
            .filter(|t| t.action != crate::plan::Action::Drop)
            .count();
        (0..n as u16)
            .map(|i| media::ts::mux::FIRST_ES_PID + i)
            .collect()
    };
    let mut warnings = analysis.warnings.clone();
    if stats.parameter_sets_inserted > 0 {
        warnings.push(format!(
            "parameter sets inserted before {} keyframes",
            stats.parameter_sets_inserted
        ));
    }
    if analysis.video.as_ref().is_some_and(|v| v.open_gop) {
        warnings.push("open GOP (CRA keyframes): seeks land on CRA pictures whose leading pictures are skipped".into());
    }
    let secs = (index.duration_90k as f64 / 90_000.0).max(0.001);
    let mut manifest = Manifest {
        format: info::MANIFEST_FORMAT.into(),
        version: info::MANIFEST_VERSION,
        id: id.into(),
        source: src.path.display().to_string(),
        source_container: analysis.container.name().into(),
        source_size: analysis.size,
        installed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_90k: index.duration_90k,
        duration_seconds: index.duration_90k as f64 / 90_000.0,
        bitrate: (stats.size as f64 * 8.0 / secs) as u64,
        index_version: media::index::VERSION,
        keyframes: index.entries.len() as u64,
        tracks: info::manifest_tracks(analysis, &pids),
        files,
        replicas: replicas.to_vec(),
        warnings,
        checksum: String::new(),
    };
    let mbytes = manifest.to_bytes();
    write_file(&staging.join(MANIFEST_FILE), &mbytes)?;
    store::fsync_dir(staging)?;
    check_interrupted()?;
    // 4. Verify from disk, then commit.
    progress.stage("verify");
    verify::verify_dir(staging, id).map_err(|reason| InstallError::Verify {
        id: id.into(),
        node: "staging".into(),
        reason,
    })?;
    // 5. One verified copy per further replica, then all renamed into place together.
    let mut staged = vec![(staging.to_path_buf(), replicas[0].node.clone())];
    let result = (|| {
        for (k, r) in replicas.iter().enumerate().skip(1) {
            progress.stage("replicate");
            let copy = store.stage_copy(staging, id, &format!("r{k}"))?;
            staged.push((copy.clone(), r.node.clone()));
            verify::verify_dir(&copy, id).map_err(|reason| InstallError::Verify {
                id: id.into(),
                node: r.node.clone(),
                reason,
            })?;
            check_interrupted()?;
        }
        // The level first: the content must never be visible as public, even for a moment.
        let was = access::set_level(&store.root, id, level)?;
        let committed = store.commit_all(&staged, id);
        if committed.is_err() {
            let _ = access::set_level(&store.root, id, was);
        }
        committed
    })();
    match result {
        Ok(paths) => Ok((replicas.to_vec(), paths[0].clone(), manifest)),
        Err(e) => {
            for (dir, _) in staged.iter().skip(1) {
                let _ = fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}
