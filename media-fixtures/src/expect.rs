//! What a correct install of each fixture should find.
//!
//! The installer's tests compare their analysis report against these values, so they are written
//! down once here, next to the recipes that make the files, instead of being repeated (and
//! drifting) in every test that uses a fixture.

/// Durations in [`Expect::duration_s`] are nominal; a reader may report up to this much more or
/// less (AAC priming and frame padding, the audio start offset in MPEG-TS, fragment rounding).
pub const DURATION_TOLERANCE_S: f64 = 0.1;

/// The container a fixture is (or pretends to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// ISO BMFF with one `moov` and the media in `mdat`.
    Mp4,
    /// ISO BMFF with an empty `moov` and `moof`/`mdat` fragments.
    FragmentedMp4,
    /// MPEG-TS with 188-byte packets.
    MpegTs,
    /// MPEG-TS with 192-byte packets (4-byte arrival timestamp before each packet), as on Blu-ray.
    M2ts,
    /// WebM (Matroska subset).
    WebM,
    /// AVI (RIFF).
    Avi,
    /// Not a media container at all (empty, random bytes, text).
    Unknown,
}

impl Container {
    /// The `format_name` ffprobe prints for this container, `None` for [`Container::Unknown`].
    pub fn ffprobe_format_name(&self) -> Option<&'static str> {
        match self {
            Container::Mp4 | Container::FragmentedMp4 => Some("mov,mp4,m4a,3gp,3g2,mj2"),
            Container::MpegTs | Container::M2ts => Some("mpegts"),
            Container::WebM => Some("matroska,webm"),
            Container::Avi => Some("avi"),
            Container::Unknown => None,
        }
    }
}

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
}

/// One track a correct install should find, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Track {
    /// Video or audio.
    pub kind: TrackKind,
    /// The codec as ffprobe spells it: `h264`, `hevc`, `aac`, `vp9`, `opus`, `mpeg4`, `mp3`.
    pub codec: &'static str,
    /// ISO 639-2 language tag when the file sets one (`None`: not set or `und`).
    pub language: Option<&'static str>,
    /// Whether this track cannot go into MPEG-TS as it is and needs an ffmpeg transcode.
    pub needs_transcode: bool,
}

/// What a correct install of a fixture should find, or how it should fail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expect {
    /// The container.
    pub container: Container,
    /// The tracks in file order; empty when the install must fail.
    pub tracks: &'static [Track],
    /// Nominal duration in seconds (see [`DURATION_TOLERANCE_S`]); 0 when the install must fail.
    pub duration_s: f64,
    /// Whether installing needs an ffmpeg transcode (true if any track needs one).
    pub needs_transcode: bool,
    /// `Some(word)`: installing must fail, and the one-line error should contain `word`.
    pub must_fail: Option<&'static str>,
    /// `Some(n)`: installing succeeds with a warning that `n` bytes of garbage were skipped.
    pub skipped_bytes: Option<u64>,
    /// A short description of what the fixture is for.
    pub description: &'static str,
}

pub(crate) const fn video(codec: &'static str) -> Track {
    Track {
        kind: TrackKind::Video,
        codec,
        language: None,
        needs_transcode: false,
    }
}

pub(crate) const fn audio(codec: &'static str) -> Track {
    Track {
        kind: TrackKind::Audio,
        codec,
        language: None,
        needs_transcode: false,
    }
}

impl Track {
    pub(crate) const fn transcode(mut self) -> Track {
        self.needs_transcode = true;
        self
    }

    pub(crate) const fn lang(mut self, language: &'static str) -> Track {
        self.language = Some(language);
        self
    }
}
