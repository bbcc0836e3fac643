//! Every fixture generates, is what its `Expect` says (checked with ffprobe, not with our own
//! parsers), and comes out byte-identical when made again. ffmpeg and ffprobe are required: when
//! they are missing these tests fail with the message that says how to get them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use media_fixtures::{
    Container, DURATION_TOLERANCE_S, Fixture, FixtureError, GARBAGE_BYTES, TrackKind, fixtures_dir,
    require_tool,
};

fn tool(name: &str) -> PathBuf {
    require_tool(name).unwrap_or_else(|e| panic!("{e}"))
}

fn path(f: Fixture) -> PathBuf {
    f.path().unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// ffprobe's `-of flat` output as key → value (quotes removed).
fn ffprobe(p: &Path) -> Result<BTreeMap<String, String>, String> {
    let out = run(Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name,duration:stream=codec_type,codec_name:stream_tags=language",
            "-of",
            "flat",
        ])
        .arg(p));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect())
}

/// A scratch folder of this test process, removed by the caller.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("media-fixtures-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// Types of the H.264 NAL units in an Annex B stream, by scanning for 00 00 01.
fn nal_types(es: &[u8]) -> Vec<u8> {
    es.windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1f)
        .collect()
}

/// The video elementary stream of a TS file as ffmpeg extracts it (no bitstream filter: the
/// bytes are the ones in the PES payloads).
fn h264_es(ts: &Path) -> Vec<u8> {
    let out = run(Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(ts)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "h264", "-"]));
    assert!(
        out.status.success(),
        "ffmpeg could not extract H.264 from {}: {}",
        ts.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn every_fixture_generates() {
    for &f in Fixture::ALL {
        let p = path(f);
        assert!(p.starts_with(fixtures_dir()), "{f} is at {}", p.display());
        assert_eq!(p.file_name().and_then(|n| n.to_str()), Some(f.name()));
        let len = read(&p).len();
        if f == Fixture::Empty {
            assert_eq!(len, 0);
        } else {
            assert!(len > 0, "{f} is empty");
        }
        // A second call gives the same path. (Whether it was remade is not asserted: another
        // test process filling the same cold cache may legitimately rename its copy in.)
        assert_eq!(path(f), p);
    }
}

#[test]
fn playable_fixtures_probe_as_expected() {
    for &f in Fixture::ALL {
        let e = f.expect();
        if e.must_fail.is_some() {
            continue;
        }
        let p = path(f);
        let probe = ffprobe(&p).unwrap_or_else(|err| panic!("ffprobe rejects {f}: {err}"));
        assert_eq!(
            probe.get("format.format_name").map(String::as_str),
            e.container.ffprobe_format_name(),
            "{f}: container"
        );
        let duration: f64 = probe["format.duration"]
            .parse()
            .expect("duration is a number");
        assert!(
            (duration - e.duration_s).abs() <= DURATION_TOLERANCE_S,
            "{f}: ffprobe says {duration} s, expected {} s",
            e.duration_s
        );
        let count = probe
            .keys()
            .filter(|k| k.starts_with("streams.stream.") && k.ends_with(".codec_type"))
            .count();
        assert_eq!(count, e.tracks.len(), "{f}: number of tracks in {probe:?}");
        for (i, t) in e.tracks.iter().enumerate() {
            let get = |k: &str| {
                probe
                    .get(&format!("streams.stream.{i}.{k}"))
                    .map(String::as_str)
            };
            let kind = match t.kind {
                TrackKind::Video => "video",
                TrackKind::Audio => "audio",
            };
            assert_eq!(get("codec_type"), Some(kind), "{f}: track {i} kind");
            assert_eq!(get("codec_name"), Some(t.codec), "{f}: track {i} codec");
            let language = get("tags.language").filter(|l| *l != "und");
            assert_eq!(language, t.language, "{f}: track {i} language");
        }
    }
}

#[test]
fn playable_fixtures_decode_without_errors() {
    for &f in Fixture::ALL {
        if f.is_hostile() {
            continue;
        }
        let p = path(f);
        let out = run(Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&p)
            .args(["-f", "null", "-"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{f}: {stderr}"
        );
    }
}

#[test]
fn keyframes_every_second() {
    for &f in Fixture::ALL {
        if f.is_hostile() {
            continue;
        }
        let out = run(Command::new(tool("ffprobe"))
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
            .arg(path(f)));
        let keys = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('K'))
            .count();
        assert_eq!(keys, 5, "{f}: keyframes in 5 s at GOP 25");
    }
}

#[test]
fn sps_once_ts_has_one_sps_and_pps() {
    let once = nal_types(&h264_es(&path(Fixture::H264SpsOnceTs)));
    let count = |types: &[u8], t: u8| types.iter().filter(|&&x| x == t).count();
    assert_eq!(count(&once, 7), 1, "SPS count in {once:?}");
    assert_eq!(count(&once, 8), 1, "PPS count");
    assert_eq!(count(&once, 5), 5, "IDR count");
    let first_idr = once.iter().position(|&t| t == 5);
    assert!(
        once.iter().position(|&t| t == 7) < first_idr,
        "SPS before the first IDR"
    );

    // The source it was made from repeats them before every IDR; only those bytes changed.
    let plain = nal_types(&h264_es(&path(Fixture::H264AacTs)));
    assert_eq!(count(&plain, 7), 5);
    assert_eq!(
        read(&path(Fixture::H264AacTs)).len(),
        read(&path(Fixture::H264SpsOnceTs)).len()
    );
}

#[test]
fn hostile_fixtures_are_damaged_as_described() {
    for &f in Fixture::ALL {
        let e = f.expect();
        if let Some(word) = e.must_fail {
            assert!(!word.is_empty() && e.tracks.is_empty(), "{f}");
        }
    }

    assert!(read(&path(Fixture::Empty)).is_empty());

    let random = read(&path(Fixture::RandomBin));
    assert_eq!(random.len(), 64 * 1024);
    assert!(
        ffprobe(&path(Fixture::RandomBin)).is_err(),
        "ffprobe accepts random.bin"
    );

    let text = read(&path(Fixture::Text));
    let text = String::from_utf8(text).expect("text.txt is UTF-8");
    assert!(text.split_whitespace().count() > 30, "a paragraph: {text}");
    assert!(
        ffprobe(&path(Fixture::Text)).is_err(),
        "ffprobe accepts text.txt"
    );

    let full = read(&path(Fixture::H264AacMoovEnd));
    let cut = read(&path(Fixture::CutBeforeMoov));
    assert!(cut.len() < full.len() && full.starts_with(&cut));
    let err = ffprobe(&path(Fixture::CutBeforeMoov)).expect_err("cut file probes");
    assert!(err.contains("moov atom not found"), "{err}");

    let fast = read(&path(Fixture::H264AacFaststart));
    let zero = read(&path(Fixture::Timescale0));
    assert_eq!(fast.len(), zero.len());
    let changed: Vec<usize> = (0..fast.len()).filter(|&i| fast[i] != zero[i]).collect();
    assert!(
        !changed.is_empty() && changed.len() <= 4,
        "changed bytes {changed:?}"
    );
    let probe = run(Command::new(tool("ffprobe"))
        .args(["-v", "error"])
        .arg(path(Fixture::Timescale0)));
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(stderr.contains("Invalid mdhd time scale 0"), "{stderr}");

    let ts = read(&path(Fixture::H264AacTs));
    let garbage = read(&path(Fixture::GarbageMiddleTs));
    assert_eq!(
        Fixture::GarbageMiddleTs.expect().skipped_bytes,
        Some(GARBAGE_BYTES)
    );
    let n = GARBAGE_BYTES as usize;
    assert_eq!(garbage.len(), ts.len() + n);
    let at = (0..ts.len())
        .find(|&i| ts[i] != garbage[i])
        .expect("garbage inserted");
    assert_eq!(at % 188, 0);
    assert!(
        at > ts.len() / 4 && at < ts.len() * 3 / 4,
        "near the middle: {at}"
    );
    assert!(
        !garbage[at..at + n].contains(&0x47),
        "garbage holds a sync byte"
    );
    assert_eq!(&garbage[..at], &ts[..at]);
    assert_eq!(&garbage[at + n..], &ts[at..]);

    let m2ts = read(&path(Fixture::M2ts192));
    assert_eq!(m2ts.len(), ts.len() / 188 * 192);
    let payload: Vec<u8> = m2ts
        .chunks_exact(192)
        .flat_map(|p| p[4..].to_vec())
        .collect();
    assert_eq!(payload, ts);
    assert_eq!(Fixture::M2ts192.expect().container, Container::M2ts);
}

#[test]
fn expectations_are_consistent() {
    let mut names: Vec<&str> = Fixture::ALL.iter().map(|f| f.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Fixture::ALL.len(), "names are unique");
    for &f in Fixture::ALL {
        let e = f.expect();
        assert_eq!(Fixture::from_name(f.name()), Some(f));
        assert!(!e.description.is_empty(), "{f}");
        assert_eq!(
            e.needs_transcode,
            e.tracks.iter().any(|t| t.needs_transcode),
            "{f}"
        );
        if e.must_fail.is_none() {
            assert!(
                !e.tracks.is_empty() && e.duration_s >= 4.0 && e.duration_s <= 6.0,
                "{f}"
            );
        }
    }
    assert!(Fixture::Vp9OpusWebm.expect().needs_transcode);
    assert!(Fixture::Mpeg4Mp3Avi.expect().needs_transcode);
    assert!(!Fixture::H264Mp3Mp4.expect().needs_transcode);
}

/// Every fixture, made again from scratch, has the same bytes as the cached one.
#[test]
fn generation_is_reproducible() {
    let dir = scratch("repro");
    for &f in Fixture::ALL {
        let cached = read(&path(f));
        let again = dir.join(f.name());
        f.generate_to(&again).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(read(&again) == cached, "{f} differs when made again");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn make_fixtures(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_make-fixtures"));
    cmd.env("SLUICE_FIXTURES_DIR", dir);
    cmd
}

/// Two processes filling one empty cache at the same time both succeed and leave whole files;
/// threads asking for the same fixture get the same file.
#[test]
fn concurrent_generation_is_safe() {
    let dir = scratch("concurrent");
    let names = ["h264_aac.ts", "m2ts192.ts", "text.txt"];
    let children: Vec<_> = (0..2)
        .map(|_| {
            make_fixtures(&dir)
                .args(names)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start make-fixtures")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait for make-fixtures");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in names {
        let f = Fixture::from_name(name).expect("known name");
        assert!(read(&dir.join(name)) == read(&path(f)), "{name} differs");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("list scratch")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| path(Fixture::H264AacFaststart)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file whose recipe stamp is stale is remade; the stamp, not the file, is what is trusted.
#[test]
fn stale_recipe_is_remade() {
    let dir = scratch("stale");
    let run_ok = |dir: &Path| {
        let out = run(make_fixtures(dir).arg("text.txt"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_ok(&dir);
    let good = read(&dir.join("text.txt"));
    std::fs::write(dir.join("text.txt"), b"old").expect("write");
    std::fs::write(dir.join(".recipes").join("text.txt"), b"an older recipe").expect("write");
    run_ok(&dir);
    assert_eq!(read(&dir.join("text.txt")), good);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_ffmpeg_is_a_clear_error() {
    let dir = scratch("noffmpeg");
    let out = run(make_fixtures(&dir).env("PATH", "").arg("h264_aac.ts"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "ffmpeg not found on PATH: run scripts/test (it installs ffmpeg) or apt-get install ffmpeg"
        ),
        "{stderr}"
    );
    // Rust-made fixtures need no ffmpeg.
    let out = run(make_fixtures(&dir).env("PATH", "").arg("random.bin"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);

    match require_tool("sluice-no-such-tool") {
        Err(e @ FixtureError::ToolMissing { .. }) => {
            assert!(
                e.to_string()
                    .starts_with("sluice-no-such-tool not found on PATH")
            );
        }
        other => panic!("{other:?}"),
    }
}
