//! The fixture set: one enum variant per file, its file name and what installing it should find.

use std::path::{Path, PathBuf};

use crate::FixtureError;
use crate::expect::{Container, Expect, Track, audio, video};

/// One test media file. See the crate README for the whole set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fixture {
    /// H.264 + AAC in MP4, `moov` after `mdat` (ffmpeg's default layout).
    H264AacMoovEnd,
    /// H.264 + AAC in MP4, `moov` before `mdat` (`-movflags +faststart`).
    H264AacFaststart,
    /// H.264 + AAC in fragmented MP4 (empty `moov`, one `moof`/`mdat` per GOP).
    H264AacFragmented,
    /// H.264 + AAC in MPEG-TS.
    H264AacTs,
    /// HEVC (`hvc1`) + AAC in MP4.
    HevcAacMp4,
    /// VP9 + Opus in WebM: both tracks need a transcode.
    Vp9OpusWebm,
    /// MPEG-4 Part 2 + MP3 in AVI: the video needs a transcode.
    Mpeg4Mp3Avi,
    /// H.264 + two AAC tracks (languages `eng`, `fra`) in MP4.
    H264TwoAacMp4,
    /// H.264 + AAC in MPEG-TS whose SPS/PPS appear only once, before the first IDR.
    H264SpsOnceTs,
    /// H.264 + MP3 in MP4.
    H264Mp3Mp4,
    /// A zero-byte file named `.mp4`.
    Empty,
    /// 64 KiB of fixed-seed pseudo-random bytes.
    RandomBin,
    /// A paragraph of English text.
    Text,
    /// [`Fixture::H264AacMoovEnd`] cut in the middle of `mdat`, so the `moov` is missing.
    CutBeforeMoov,
    /// [`Fixture::H264AacFaststart`] with the video track's `mdhd` timescale set to 0.
    Timescale0,
    /// [`Fixture::H264AacTs`] with 1,000 garbage bytes inserted at a packet boundary mid-file.
    GarbageMiddleTs,
    /// [`Fixture::H264AacTs`] rewritten with 192-byte packets (M2TS arrival timestamps).
    M2ts192,
}

/// Bytes of garbage [`Fixture::GarbageMiddleTs`] inserts.
pub const GARBAGE_BYTES: u64 = 1000;

const H264_AAC: &[Track] = &[video("h264"), audio("aac")];
const HEVC_AAC: &[Track] = &[video("hevc"), audio("aac")];
const VP9_OPUS: &[Track] = &[video("vp9").transcode(), audio("opus").transcode()];
const MPEG4_MP3: &[Track] = &[video("mpeg4").transcode(), audio("mp3")];
const H264_AAC_ENG_FRA: &[Track] = &[
    video("h264"),
    audio("aac").lang("eng"),
    audio("aac").lang("fra"),
];
const H264_MP3: &[Track] = &[video("h264"), audio("mp3")];

/// The nominal length of every playable fixture, in seconds.
pub(crate) const DURATION_S: f64 = 5.0;

const fn good(container: Container, tracks: &'static [Track], description: &'static str) -> Expect {
    let mut needs_transcode = false;
    let mut i = 0;
    while i < tracks.len() {
        needs_transcode |= tracks[i].needs_transcode;
        i += 1;
    }
    Expect {
        container,
        tracks,
        duration_s: DURATION_S,
        needs_transcode,
        must_fail: None,
        skipped_bytes: None,
        description,
    }
}

const fn hostile(container: Container, word: &'static str, description: &'static str) -> Expect {
    Expect {
        container,
        tracks: &[],
        duration_s: 0.0,
        needs_transcode: false,
        must_fail: Some(word),
        skipped_bytes: None,
        description,
    }
}

impl Fixture {
    /// Every fixture, sources before the fixtures derived from them.
    pub const ALL: &'static [Fixture] = &[
        Fixture::H264AacMoovEnd,
        Fixture::H264AacFaststart,
        Fixture::H264AacFragmented,
        Fixture::H264AacTs,
        Fixture::HevcAacMp4,
        Fixture::Vp9OpusWebm,
        Fixture::Mpeg4Mp3Avi,
        Fixture::H264TwoAacMp4,
        Fixture::H264SpsOnceTs,
        Fixture::H264Mp3Mp4,
        Fixture::Empty,
        Fixture::RandomBin,
        Fixture::Text,
        Fixture::CutBeforeMoov,
        Fixture::Timescale0,
        Fixture::GarbageMiddleTs,
        Fixture::M2ts192,
    ];

    /// The file name, e.g. `h264_aac_moov_end.mp4`.
    pub fn name(&self) -> &'static str {
        match self {
            Fixture::H264AacMoovEnd => "h264_aac_moov_end.mp4",
            Fixture::H264AacFaststart => "h264_aac_faststart.mp4",
            Fixture::H264AacFragmented => "h264_aac_fragmented.mp4",
            Fixture::H264AacTs => "h264_aac.ts",
            Fixture::HevcAacMp4 => "hevc_aac.mp4",
            Fixture::Vp9OpusWebm => "vp9_opus.webm",
            Fixture::Mpeg4Mp3Avi => "mpeg4_mp3.avi",
            Fixture::H264TwoAacMp4 => "h264_aac_eng_fra.mp4",
            Fixture::H264SpsOnceTs => "h264_aac_sps_once.ts",
            Fixture::H264Mp3Mp4 => "h264_mp3.mp4",
            Fixture::Empty => "empty.mp4",
            Fixture::RandomBin => "random.bin",
            Fixture::Text => "text.txt",
            Fixture::CutBeforeMoov => "cut_before_moov.mp4",
            Fixture::Timescale0 => "timescale0.mp4",
            Fixture::GarbageMiddleTs => "garbage_middle.ts",
            Fixture::M2ts192 => "m2ts192.ts",
        }
    }

    /// The fixture with this file name.
    pub fn from_name(name: &str) -> Option<Fixture> {
        Fixture::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The cached file, generated on first use.
    ///
    /// Generation writes to a temporary name in the cache folder and renames it into place, so a
    /// reader never sees a half-written file, and several threads or test processes may call this
    /// at once (threads of one process wait for each other; processes may each generate, and the
    /// last rename wins with identical content). A file made by an older recipe is remade.
    pub fn path(&self) -> Result<PathBuf, FixtureError> {
        crate::cache::cached_path(*self)
    }

    /// Makes the fixture afresh at `dest` (any path), bypassing the cache for this fixture; a
    /// fixture derived from another one takes its source from the cache. The reproducibility
    /// tests compare this against [`Fixture::path`].
    pub fn generate_to(&self, dest: &Path) -> Result<(), FixtureError> {
        crate::cache::make_atomically(*self, dest)
    }

    /// Whether this fixture is damaged or not media at all (a hostile input for the installer).
    pub fn is_hostile(&self) -> bool {
        let e = self.expect();
        e.must_fail.is_some() || e.skipped_bytes.is_some() || matches!(self, Fixture::M2ts192)
    }

    /// What a correct install should find.
    pub fn expect(&self) -> Expect {
        match self {
            Fixture::H264AacMoovEnd => good(
                Container::Mp4,
                H264_AAC,
                "H.264 (High, 2 B-frames, 1 s GOP) + AAC in MP4 with moov at the end: the reader must seek to the tail for the index",
            ),
            Fixture::H264AacFaststart => good(
                Container::Mp4,
                H264_AAC,
                "H.264 + AAC in MP4 with moov first (faststart): the common web layout",
            ),
            Fixture::H264AacFragmented => good(
                Container::FragmentedMp4,
                H264_AAC,
                "H.264 + AAC in fragmented MP4 (empty moov, moof+mdat per GOP, default-base-is-moof): samples come from trun boxes",
            ),
            Fixture::H264AacTs => good(
                Container::MpegTs,
                H264_AAC,
                "H.264 + AAC in MPEG-TS (SPS/PPS before every IDR): passes through without remux of the elementary streams",
            ),
            Fixture::HevcAacMp4 => good(
                Container::Mp4,
                HEVC_AAC,
                "HEVC (hvc1, closed GOP) + AAC in MP4: remux to TS needs hvcC parameter sets turned into Annex B",
            ),
            Fixture::Vp9OpusWebm => good(
                Container::WebM,
                VP9_OPUS,
                "VP9 + Opus in WebM: neither codec is carried in Sluice's MPEG-TS, so both are transcoded",
            ),
            Fixture::Mpeg4Mp3Avi => good(
                Container::Avi,
                MPEG4_MP3,
                "MPEG-4 Part 2 + MP3 in AVI: the video is transcoded, the MP3 can pass through",
            ),
            Fixture::H264TwoAacMp4 => good(
                Container::Mp4,
                H264_AAC_ENG_FRA,
                "H.264 + two AAC tracks (eng 440 Hz, fra 660 Hz) in MP4: both audio tracks and their languages must survive",
            ),
            Fixture::H264SpsOnceTs => good(
                Container::MpegTs,
                H264_AAC,
                "H.264 + AAC in MPEG-TS with SPS/PPS only before the first IDR (later copies overwritten by same-size SEI): the installer must put parameter sets before every IDR",
            ),
            Fixture::H264Mp3Mp4 => good(
                Container::Mp4,
                H264_MP3,
                "H.264 + MP3 in MP4: MP3 passes through into TS",
            ),
            Fixture::Empty => hostile(Container::Unknown, "empty", "a zero-byte file named .mp4"),
            Fixture::RandomBin => hostile(
                Container::Unknown,
                "unrecognised",
                "64 KiB of fixed-seed xorshift bytes: no container recognised",
            ),
            Fixture::Text => hostile(
                Container::Unknown,
                "unrecognised",
                "a paragraph of English text: no container recognised",
            ),
            Fixture::CutBeforeMoov => hostile(
                Container::Mp4,
                "moov",
                "h264_aac_moov_end.mp4 truncated in the middle of mdat: the moov (at the end) is missing",
            ),
            Fixture::Timescale0 => hostile(
                Container::Mp4,
                "timescale",
                "h264_aac_faststart.mp4 with the video track's mdhd timescale patched to 0",
            ),
            Fixture::GarbageMiddleTs => Expect {
                skipped_bytes: Some(GARBAGE_BYTES),
                description: "h264_aac.ts with 1,000 garbage bytes (no 0x47) inserted at a packet boundary near the middle: installs with a warning that 1000 bytes were skipped",
                ..good(Container::MpegTs, H264_AAC, "")
            },
            Fixture::M2ts192 => good(
                Container::M2ts,
                H264_AAC,
                "h264_aac.ts rewritten with 192-byte packets (4-byte arrival timestamp before each 188-byte packet): installs fine",
            ),
        }
    }
}

impl std::fmt::Display for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
