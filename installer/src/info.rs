//! The information files next to the content TS: the manifest and the HLS playlists.
//!
//! The manifest is JSON an operator can read, versioned and checksummed like the index: its
//! `checksum` is the CRC-32 of the manifest serialised with `checksum` empty, so a reader can
//! tell a damaged or hand-edited file from a good one. A reader refuses versions it does not know.

use crate::analyse::{Analysis, TrackReport};
use crate::plan::Action;
use crate::{InstallError, Result};
use media::hls::{self, StreamDescription};
use media::index::Index;
use media::model::TrackKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const MANIFEST_FORMAT: &str = "sluice-manifest";
pub const MANIFEST_VERSION: u32 = 1;

/// File names inside a content folder.
pub const CONTENT_TS: &str = "content.ts";
pub const INDEX_FILE: &str = "index.sidx";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const MASTER_PLAYLIST: &str = "index.m3u8";
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
pub const IFRAME_PLAYLIST: &str = "iframes.m3u8";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestTrack {
    pub pid: u16,
    pub kind: String,
    pub codec: String,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub language: Option<String>,
    /// What the installer did with the source track, and why.
    pub action: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    pub size: u64,
    /// CRC-32 (IEEE), hex.
    pub crc32: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub source: String,
    pub source_container: String,
    pub source_size: u64,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
    pub duration_90k: u64,
    pub duration_seconds: f64,
    /// Average bits per second of the content TS.
    pub bitrate: u64,
    pub index_version: u16,
    pub keyframes: u64,
    pub tracks: Vec<ManifestTrack>,
    pub files: BTreeMap<String, FileInfo>,
    /// Where the copies live, in order: main, sub, backups (every copy holds the same manifest).
    #[serde(default)]
    pub replicas: Vec<ReplicaInfo>,
    pub warnings: Vec<String>,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub host: String,
    pub node: String,
}

pub fn crc_hex(data: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(data))
}

impl Manifest {
    fn body_checksum(&self) -> String {
        let mut m = self.clone();
        m.checksum = String::new();
        crc_hex(&serde_json::to_vec(&m).unwrap_or_default())
    }

    /// Serialise with the checksum filled in.
    pub fn to_bytes(&mut self) -> Vec<u8> {
        self.checksum = self.body_checksum();
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let bad = |reason: String| InstallError::Store {
            path: path.into(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("manifest is not JSON: {e}")))?;
        if v["format"] != MANIFEST_FORMAT {
            return Err(bad("not a Sluice manifest (format field)".into()));
        }
        let version = v["version"].as_u64().unwrap_or(0);
        if version != u64::from(MANIFEST_VERSION) {
            return Err(bad(format!(
                "manifest version {version} is not supported (this build reads version {MANIFEST_VERSION})"
            )));
        }
        let m: Manifest =
            serde_json::from_value(v).map_err(|e| bad(format!("manifest fields: {e}")))?;
        let sum = m.body_checksum();
        if sum != m.checksum {
            return Err(bad(format!(
                "manifest checksum mismatch (stored {}, computed {sum}): the file is damaged or was edited",
                m.checksum
            )));
        }
        Ok(m)
    }
}

/// Tracks as carried in the content (PIDs in mux order) with their plan.
pub fn manifest_tracks(a: &Analysis, pids: &[u16]) -> Vec<ManifestTrack> {
    let carried = a.tracks.iter().filter(|t| t.action != Action::Drop);
    carried
        .zip(pids)
        .map(|(t, &pid)| track(t, pid))
        .chain(
            a.tracks
                .iter()
                .filter(|t| t.action == Action::Drop)
                .map(|t| track(t, 0)),
        )
        .collect()
}

fn track(t: &TrackReport, pid: u16) -> ManifestTrack {
    let i = &t.info;
    let (codec, profile) = if t.action == Action::Transcode {
        let c = if i.kind == Some(TrackKind::Video) {
            "h264"
        } else {
            "aac"
        };
        (c.to_string(), None)
    } else {
        (t.codec_name.clone(), i.profile.clone())
    };
    ManifestTrack {
        pid,
        kind: match i.kind {
            Some(TrackKind::Video) => "video",
            Some(TrackKind::Audio) => "audio",
            _ => "other",
        }
        .into(),
        codec,
        profile,
        width: i.width,
        height: i.height,
        frame_rate: i.frame_rate,
        sample_rate: i.sample_rate,
        channels: i.channels,
        language: i.language.clone(),
        action: format!("{:?}", t.action).to_lowercase(),
        reason: t.reason.clone(),
    }
}

/// The three playlists (master, media, I-frame), by file name.
pub fn playlists(idx: &Index, a: &Analysis) -> Vec<(&'static str, String)> {
    let secs = (idx.duration_90k as f64 / 90_000.0).max(0.001);
    let avg = (idx.content_size as f64 * 8.0 / secs) as u64;
    let seg_peak = hls::segments(idx)
        .iter()
        .map(|s| (s.len as f64 * 8.0 / (s.duration_90k.max(1) as f64 / 90_000.0)) as u64)
        .max()
        .unwrap_or(avg);
    let video = a
        .tracks
        .iter()
        .find(|t| t.info.kind == Some(TrackKind::Video) && t.action != Action::Drop);
    let codecs: Vec<String> = a
        .tracks
        .iter()
        .filter(|t| t.action != Action::Drop)
        .filter_map(|t| {
            if t.action == Action::Transcode {
                Some(
                    if t.info.kind == Some(TrackKind::Video) {
                        "avc1.640028"
                    } else {
                        "mp4a.40.2"
                    }
                    .to_string(),
                )
            } else {
                t.rfc6381.clone()
            }
        })
        .collect();
    let desc = StreamDescription {
        bandwidth: seg_peak.max(avg),
        average_bandwidth: avg,
        codecs: codecs.join(","),
        resolution: video.and_then(|v| Some((v.info.width?, v.info.height?))),
        frame_rate: video.and_then(|v| v.info.frame_rate),
    };
    let has_iframes = !idx.entries.is_empty();
    vec![
        (
            MASTER_PLAYLIST,
            hls::master_playlist(
                &desc,
                MEDIA_PLAYLIST,
                has_iframes.then_some(IFRAME_PLAYLIST),
            ),
        ),
        (MEDIA_PLAYLIST, hls::media_playlist(idx, CONTENT_TS)),
        (IFRAME_PLAYLIST, hls::iframe_playlist(idx, CONTENT_TS)),
    ]
}
