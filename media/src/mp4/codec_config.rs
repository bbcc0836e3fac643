//! Sample entries (`stsd`): which codec a track holds and its out-of-band configuration.
//!
//! `mp4-atom` decodes the entry; here we name the codec in our vocabulary ([`Codec`]), keep the
//! parameter sets (`avcC`, `hvcC`) and decode the AAC AudioSpecificConfig ourselves, because the
//! TS muxer needs the core object type and sampling index to write ADTS headers.
//!
//! Only the first sample entry is read: every sample is taken to use it. Files that switch
//! sample descriptions mid-track (`stsc`/`tfhd` sample_description_index > 1) are rare outside
//! broadcast captures and would need a codec change in the output anyway.
//!
//! A codec we do not handle is still a track: `Codec::Other` with the entry's four-character
//! code ("vp09", "opus", "av01", "mp4v"). If `mp4-atom` cannot decode such an entry, we read the
//! generic visual/audio fields ourselves rather than failing the whole file; an entry of a codec
//! we do handle (AVC, HEVC, AAC, MP3, AC-3, E-AC-3) must decode, or the file is an error.

use super::boxes::{BoxRef, Children, Ctx, be_u16, be_u32, decode, describe};
use crate::Result;
use crate::model::{Codec, CodecConfig};
use mp4_atom::{Avcc, Codec as Entry, Decode, Esds, Hvcc, Mp4a};

/// What one sample entry tells us.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SampleEntry {
    pub codec: Codec,
    pub config: CodecConfig,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

impl SampleEntry {
    fn of(codec: Codec) -> Self {
        SampleEntry {
            codec,
            config: CodecConfig::None,
            profile: None,
            width: None,
            height: None,
            sample_rate: None,
            channels: None,
        }
    }
}

/// What kind of samples the track's handler (`hdlr`) says it holds; decides how an entry we do
/// not model is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Video,
    Audio,
    Other,
}

/// Reads the first sample entry of `stsd`.
pub(crate) fn read_stsd(stsd: &BoxRef<'_>, handler: Handler, ctx: Ctx) -> Result<SampleEntry> {
    // FullBox header (4) and entry_count (4), then the entries as boxes.
    let count = be_u32(stsd.body, 4).ok_or_else(|| ctx.err(stsd, "box body too short"))?;
    if count == 0 {
        return Err(ctx.err(stsd, "no sample entry (entry count 0)"));
    }
    let entries_at = stsd.body_offset.saturating_add(8);
    let body = stsd.body.get(8..).unwrap_or_default();
    let Some(entry) = Children::top_level(body, entries_at).next().transpose()? else {
        return Err(ctx.err(
            stsd,
            format_args!("entry count {count} but no sample entry"),
        ));
    };
    let known = matches!(
        &entry.kind,
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"mp4a" | b".mp3" | b"ac-3" | b"ec-3"
    );
    let mut bytes = entry.bytes;
    let decoded = match Entry::decode(&mut bytes) {
        Ok(e) => e,
        Err(e) if known => return Err(ctx.err(&entry, describe(&e))),
        // A codec we only name: keep the track, read the generic fields by hand.
        Err(_) => return Ok(raw_entry(&entry, handler)),
    };
    let mut out = match &decoded {
        Entry::Avc1(a) => avc(&a.avcc),
        Entry::Avc3(a) => avc(&a.avcc),
        Entry::Hvc1(h) => hevc(&h.hvcc),
        Entry::Hev1(h) => hevc(&h.hvcc),
        Entry::Mp4a(m) => mp4a(m),
        Entry::Mp3(_) => SampleEntry::of(Codec::MpegAudio),
        Entry::Ac3(a) => {
            let mut out = SampleEntry::of(Codec::Ac3);
            out.channels = Some(ac3_channels(a.dac3.acmod, a.dac3.lfeon));
            out
        }
        Entry::Eac3(e) => {
            let mut out = SampleEntry::of(Codec::Eac3);
            out.channels = e
                .dec3
                .substreams
                .first()
                .map(|s| ac3_channels(s.acmod, s.lfeon));
            out
        }
        Entry::Unknown(..) if &entry.kind == b"mp4v" => mp4v(&entry, ctx)?,
        Entry::Unknown(..) => return Ok(raw_entry(&entry, handler)),
        _ => SampleEntry::of(Codec::Other(other_name(&entry.kind))),
    };
    if let Some(v) = decoded.visual() {
        out.width = nonzero(u32::from(v.width));
        out.height = nonzero(u32::from(v.height));
    }
    if let Some(a) = decoded.audio() {
        // The codec's own configuration wins: MP4 writers (ffmpeg among them) put the template
        // value 2 in channelcount whatever the stream has, and the 16-bit rate field cannot hold
        // rates above 65535. The entry fills in what the configuration did not say.
        out.channels = out.channels.or(nonzero(u32::from(a.channel_count)));
        out.sample_rate = out
            .sample_rate
            .or(nonzero(u32::from(a.sample_rate.integer())));
    }
    Ok(out)
}

fn nonzero(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

/// The codec name for `Codec::Other`: the four-character code, lower case, printable only.
pub(crate) fn other_name(kind: &[u8; 4]) -> String {
    let name: String = kind
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        .map(|b| b.to_ascii_lowercase() as char)
        .collect();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// An entry `mp4-atom` does not model (or could not decode): name it, and read the
/// `VisualSampleEntry` or `AudioSampleEntry` fields the handler says it has.
fn raw_entry(entry: &BoxRef<'_>, handler: Handler) -> SampleEntry {
    let mut out = SampleEntry::of(Codec::Other(other_name(&entry.kind)));
    let b = entry.body;
    match handler {
        // 6 reserved bytes, data_reference_index, 16 predefined bytes, then width and height;
        // 78 bytes in all.
        Handler::Video if b.len() >= 78 => {
            out.width = be_u16(b, 24).map(u32::from).and_then(nonzero);
            out.height = be_u16(b, 26).map(u32::from).and_then(nonzero);
        }
        // 8 bytes as above, 8 of version/reserved, channel count, sample size, 4 reserved, then
        // the rate as 16.16; 28 bytes in all.
        Handler::Audio if b.len() >= 28 => {
            out.channels = be_u16(b, 16).map(u32::from).and_then(nonzero);
            out.sample_rate = be_u16(b, 24).map(u32::from).and_then(nonzero);
        }
        _ => {}
    }
    out
}

/// Channels of an AC-3 `acmod` (audio coding mode) plus the LFE channel.
fn ac3_channels(acmod: u8, lfe: bool) -> u32 {
    const BY_ACMOD: [u32; 8] = [2, 1, 2, 3, 3, 4, 4, 5];
    BY_ACMOD.get(usize::from(acmod)).copied().unwrap_or(2) + u32::from(lfe)
}

fn avc(c: &Avcc) -> SampleEntry {
    let mut out = SampleEntry::of(Codec::H264);
    out.config = CodecConfig::Avc {
        nal_length_size: c.length_size,
        sps: c.sequence_parameter_sets.clone(),
        pps: c.picture_parameter_sets.clone(),
    };
    out.profile = Some(avc_profile(
        c.avc_profile_indication,
        c.profile_compatibility,
    ));
    out
}

/// H.264 profile names as ffprobe prints them.
pub(crate) fn avc_profile(idc: u8, constraints: u8) -> String {
    let constrained = constraints & 0x40 != 0; // constraint_set1_flag
    let intra = constraints & 0x10 != 0; // constraint_set3_flag
    match idc {
        66 if constrained => "Constrained Baseline".into(),
        66 => "Baseline".into(),
        77 => "Main".into(),
        88 => "Extended".into(),
        100 => "High".into(),
        110 if intra => "High 10 Intra".into(),
        110 => "High 10".into(),
        122 if intra => "High 4:2:2 Intra".into(),
        122 => "High 4:2:2".into(),
        244 if intra => "High 4:4:4 Intra".into(),
        244 => "High 4:4:4 Predictive".into(),
        44 => "CAVLC 4:4:4".into(),
        118 => "Multiview High".into(),
        128 => "Stereo High".into(),
        other => format!("profile {other}"),
    }
}

fn hevc(c: &Hvcc) -> SampleEntry {
    let mut out = SampleEntry::of(Codec::H265);
    let nalus = |t: u8| -> Vec<Vec<u8>> {
        c.arrays
            .iter()
            .filter(|a| a.nal_unit_type == t)
            .flat_map(|a| a.nalus.iter().cloned())
            .collect()
    };
    out.config = CodecConfig::Hevc {
        nal_length_size: c.length_size_minus_one.saturating_add(1),
        vps: nalus(32),
        sps: nalus(33),
        pps: nalus(34),
    };
    out.profile = Some(hevc_profile(
        c.general_profile_idc,
        c.general_profile_compatibility_flags,
    ));
    out
}

/// H.265 profile names as ffprobe prints them.
pub(crate) fn hevc_profile(idc: u8, compat: [u8; 4]) -> String {
    // general_profile_compatibility_flag[j] is bit (31 - j) of the 32-bit field.
    let flag = |j: u32| u32::from_be_bytes(compat) & (1 << (31 - j)) != 0;
    let idc = if idc == 0 {
        (1..=4).find(|&j| flag(j)).map_or(0, |j| j as u8)
    } else {
        idc
    };
    match idc {
        1 => "Main".into(),
        2 => "Main 10".into(),
        3 => "Main Still Picture".into(),
        4 => "Rext".into(),
        other => format!("profile {other}"),
    }
}

fn mp4a(m: &Mp4a) -> SampleEntry {
    let dc = &m.esds.es_desc.dec_config;
    let oti = dc.object_type_indication;
    let mut out = SampleEntry::of(Codec::Other(format!("mp4a.{oti:02x}")));
    match oti {
        // MPEG-4 audio, MPEG-2 AAC Main / LC / SSR
        0x40 | 0x66..=0x68 => {
            out.codec = Codec::Aac;
            let asc = dc
                .dec_specific
                .as_ref()
                .and_then(|d| AudioSpecificConfig::parse(&d.raw));
            match asc {
                Some(asc) => {
                    out.config = CodecConfig::Aac {
                        object_type: asc.core_object_type,
                        sample_rate_index: asc.core_sample_rate_index,
                        channel_config: asc.channel_config,
                    };
                    out.profile = Some(aac_profile(asc.object_type));
                    out.sample_rate = asc.sample_rate();
                    out.channels = channels_of_config(asc.channel_config);
                }
                None => {
                    // No DecoderSpecificInfo: derive an LC config from the entry's fields.
                    let object_type = match oti {
                        0x66 => 1,
                        0x68 => 3,
                        _ => 2,
                    };
                    let rate = u32::from(m.audio.sample_rate.integer());
                    let channels = m.audio.channel_count;
                    let index = SAMPLE_RATES.iter().position(|&r| r == rate);
                    let config = match channels {
                        1..=6 => Some(channels as u8),
                        8 => Some(7),
                        _ => None,
                    };
                    if let (Some(index), Some(channel_config)) = (index, config) {
                        out.config = CodecConfig::Aac {
                            object_type,
                            sample_rate_index: index as u8,
                            channel_config,
                        };
                    }
                    out.profile = Some(aac_profile(object_type));
                }
            }
        }
        // MPEG-2 audio (MP3 at 16-24 kHz) and MPEG-1 audio
        0x69 | 0x6B => out.codec = Codec::MpegAudio,
        0xA5 => out.codec = Codec::Ac3,
        0xA6 => out.codec = Codec::Eac3,
        _ => {}
    }
    out
}

/// `mp4v` is MPEG-4 Part 2 video, or MPEG-1/2 video when its `esds` says so.
fn mp4v(entry: &BoxRef<'_>, ctx: Ctx) -> Result<SampleEntry> {
    let mut out = raw_entry(entry, Handler::Video);
    let children = entry.body.get(78..).unwrap_or_default();
    for child in Children::top_level(children, entry.body_offset.saturating_add(78)) {
        let Ok(child) = child else { break };
        if &child.kind == b"esds" {
            let esds: Esds = decode(&child, ctx)?;
            if let 0x60..=0x65 = esds.es_desc.dec_config.object_type_indication {
                out.codec = Codec::Mpeg2Video;
            }
        }
    }
    Ok(out)
}

/// AAC profile names as ffprobe prints them.
pub(crate) fn aac_profile(object_type: u8) -> String {
    match object_type {
        1 => "Main".into(),
        2 => "LC".into(),
        3 => "SSR".into(),
        4 => "LTP".into(),
        5 => "HE-AAC".into(),
        29 => "HE-AACv2".into(),
        23 => "LD".into(),
        39 => "ELD".into(),
        other => format!("object type {other}"),
    }
}

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3, 1.6.3.4).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

fn channels_of_config(config: u8) -> Option<u32> {
    match config {
        1..=6 => Some(u32::from(config)),
        7 => Some(8),
        _ => None,
    }
}

/// The start of an AudioSpecificConfig (ISO/IEC 14496-3, 1.6.2.1).
///
/// For HE-AAC with explicit signalling (object type 5 or 29 first), `core_*` is the AAC core
/// underneath (normally LC at half the output rate): that is what an ADTS header can carry, and
/// decoders find the SBR/PS extension in the stream by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioSpecificConfig {
    pub object_type: u8,
    pub sample_rate_index: u8,
    /// The rate when `sample_rate_index` is 15 (explicit).
    pub explicit_rate: Option<u32>,
    pub channel_config: u8,
    pub core_object_type: u8,
    pub core_sample_rate_index: u8,
    /// The SBR output rate index, when signalled explicitly.
    pub extension_rate_index: Option<u8>,
}

impl AudioSpecificConfig {
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let mut r = Bits { data: raw, pos: 0 };
        let object_type = r.object_type()?;
        let (sample_rate_index, explicit_rate) = r.rate_index()?;
        let channel_config = r.bits(4)? as u8;
        let (mut core_object_type, mut extension_rate_index) = (object_type, None);
        if object_type == 5 || object_type == 29 {
            let (ext, _) = r.rate_index()?;
            extension_rate_index = Some(ext);
            core_object_type = r.object_type()?;
        }
        if core_object_type == 5 || core_object_type == 29 {
            core_object_type = 2;
        }
        Some(AudioSpecificConfig {
            object_type,
            sample_rate_index,
            explicit_rate,
            channel_config,
            core_object_type,
            core_sample_rate_index: sample_rate_index,
            extension_rate_index,
        })
    }

    /// The output sample rate (the SBR rate for HE-AAC).
    pub fn sample_rate(&self) -> Option<u32> {
        let index = self.extension_rate_index.unwrap_or(self.sample_rate_index);
        match index {
            15 => self.explicit_rate,
            i => SAMPLE_RATES.get(usize::from(i)).copied(),
        }
    }
}

/// A big-endian bit reader that returns `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(v)
    }

    fn object_type(&mut self) -> Option<u8> {
        let t = self.bits(5)? as u8;
        if t == 31 {
            Some(32 + self.bits(6)? as u8)
        } else {
            Some(t)
        }
    }

    fn rate_index(&mut self) -> Option<(u8, Option<u32>)> {
        let index = self.bits(4)? as u8;
        if index == 15 {
            Some((index, Some(self.bits(24)?)))
        } else {
            Some((index, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_specific_config_lc_and_he() {
        // AAC-LC, 48 kHz (index 3), stereo: 00010 0011 0010 000
        let lc = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!(
            (lc.object_type, lc.sample_rate_index, lc.channel_config),
            (2, 3, 2)
        );
        assert_eq!(lc.sample_rate(), Some(48_000));
        // HE-AAC explicit: AOT 5, core 24 kHz (6), stereo, ext 48 kHz (3), core AOT 2
        // 00101 0110 0010 0011 00010 → 0x2B 0x11 0x88 (padded)
        let he = AudioSpecificConfig::parse(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(he.object_type, 5);
        assert_eq!(he.core_object_type, 2);
        assert_eq!(he.core_sample_rate_index, 6);
        assert_eq!(he.channel_config, 2);
        assert_eq!(he.sample_rate(), Some(48_000));
        // escape object type and explicit rate
        // 11111 000001 (=33) 1111 <24 bits 44100> 0001
        let mut bits = String::from("11111000001");
        bits += "1111";
        bits += &format!("{:024b}", 44_100);
        bits += "0001";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        let esc = AudioSpecificConfig::parse(&bytes).unwrap();
        assert_eq!(esc.object_type, 33);
        assert_eq!(esc.sample_rate(), Some(44_100));
        assert_eq!(esc.channel_config, 1);
        assert_eq!(AudioSpecificConfig::parse(&[0x11]), None);
        assert_eq!(AudioSpecificConfig::parse(&[]), None);
    }

    #[test]
    fn profile_names() {
        assert_eq!(avc_profile(100, 0), "High");
        assert_eq!(avc_profile(66, 0xC0), "Constrained Baseline");
        assert_eq!(hevc_profile(1, [0x60, 0, 0, 0]), "Main");
        assert_eq!(hevc_profile(0, [0x20, 0, 0, 0]), "Main 10");
        assert_eq!(aac_profile(2), "LC");
        assert_eq!(other_name(b"Opus"), "opus");
        assert_eq!(other_name(b"\0\0\0\0"), "unknown");
    }
}
