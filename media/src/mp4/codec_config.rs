//! Sample entries (`stsd`): which codec a track holds and its out-of-band configuration.
//!
//! We name the codec in our vocabulary ([`Codec`]), keep the parameter sets (`avcC`, `hvcC`) and
//! decode the AAC AudioSpecificConfig ourselves, because the TS muxer needs the core object type
//! and sampling index to write ADTS headers.
//!
//! The sample entry itself is walked here, not handed whole to `mp4-atom`: its decoder for a
//! sample entry (and for `esds` descriptors) decodes whatever boxes it finds inside, recursively,
//! so a crafted entry of nested boxes a few hundred kilobytes long overflows the stack and
//! aborts the process. We read the fixed `VisualSampleEntry`/`AudioSampleEntry` fields, walk the
//! children one level, and give `mp4-atom` only the flat configuration boxes (`avcC`, `hvcC`,
//! `dac3`, `dec3`); the three nested descriptors of `esds` are read by a small loop below.
//!
//! Only the first sample entry is read: every sample is taken to use it. Files that switch
//! sample descriptions mid-track (`stsc`/`tfhd` sample_description_index > 1) are rare outside
//! broadcast captures and would need a codec change in the output anyway.
//!
//! A codec we do not handle is still a track: `Codec::Other` with the entry's four-character
//! code ("vp09", "opus", "av01", "mp4v"), with width/height or channels/rate read from the
//! generic fields. An entry of a codec we do handle (AVC, HEVC, AAC, MP3, AC-3, E-AC-3) must be
//! complete (`avc1` needs `avcC`, `mp4a` needs `esds`, ...), or the file is an error.

use super::boxes::{BoxRef, Children, Ctx, be_u16, be_u32, decode, find};
use crate::Result;
use crate::model::{Codec, CodecConfig};
use mp4_atom::{Ac3SpecificBox, Avcc, Ec3SpecificBox, Hvcc};

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
/// not know is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Video,
    Audio,
    Other,
}

/// Bytes of `VisualSampleEntry` fields before the child boxes.
const VISUAL_LEN: usize = 78;

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
    match &entry.kind {
        b"avc1" | b"avc3" => {
            let (mut out, children) = visual(&entry, ctx)?;
            let b = required(&children, b"avcC", &entry, ctx)?;
            out.absorb(avc(&decode::<Avcc>(&b, ctx)?));
            Ok(out)
        }
        b"hvc1" | b"hev1" => {
            let (mut out, children) = visual(&entry, ctx)?;
            let b = required(&children, b"hvcC", &entry, ctx)?;
            out.absorb(hevc(&decode::<Hvcc>(&b, ctx)?));
            Ok(out)
        }
        b"mp4v" => {
            let (mut out, children) = visual(&entry, ctx)?;
            if let Some(b) = child(&children, b"esds") {
                let es = read_esds(&b).map_err(|msg| ctx.err(&b, msg))?;
                // MPEG-2 video (Simple to 4:2:2 profiles); anything else stays "mp4v"
                if let 0x60..=0x65 = es.object_type_indication {
                    out.codec = Codec::Mpeg2Video;
                }
            }
            Ok(out)
        }
        b"mp4a" => {
            let (entry_fields, children) = audio(&entry, &[b"esds", b"wave"], ctx)?;
            // The esds sits in the entry (ISO) or in a QuickTime 'wave' box (MOV).
            let esds = match child(&children, b"esds") {
                Some(b) => Some(b),
                None => match child(&children, b"wave") {
                    Some(wave) => find(&wave, b"esds")?,
                    None => None,
                },
            };
            let esds = esds.ok_or_else(|| ctx.missing("esds", &entry))?;
            let es = read_esds(&esds).map_err(|msg| ctx.err(&esds, msg))?;
            let mut out = mp4a(&es, &entry_fields);
            out.fill_audio(&entry_fields);
            Ok(out)
        }
        b".mp3" => {
            // Nothing needed from the children: do not fail on them.
            let fields = audio(&entry, &[], ctx).map_or_else(|_| audio_fields(entry.body), |a| a.0);
            let mut out = SampleEntry::of(Codec::MpegAudio);
            out.fill_audio(&fields);
            Ok(out)
        }
        b"ac-3" => {
            let (fields, children) = audio(&entry, &[b"dac3"], ctx)?;
            let mut out = SampleEntry::of(Codec::Ac3);
            let b = required(&children, b"dac3", &entry, ctx)?;
            let dac3: Ac3SpecificBox = decode(&b, ctx)?;
            out.channels = Some(ac3_channels(dac3.acmod, dac3.lfeon));
            out.fill_audio(&fields);
            Ok(out)
        }
        b"ec-3" => {
            let (fields, children) = audio(&entry, &[b"dec3"], ctx)?;
            let mut out = SampleEntry::of(Codec::Eac3);
            let b = required(&children, b"dec3", &entry, ctx)?;
            let dec3: Ec3SpecificBox = decode(&b, ctx)?;
            out.channels = dec3
                .substreams
                .first()
                .map(|s| ac3_channels(s.acmod, s.lfeon));
            out.fill_audio(&fields);
            Ok(out)
        }
        _ => Ok(other_entry(&entry, handler)),
    }
}

impl SampleEntry {
    /// Takes codec, configuration and profile from `other`.
    fn absorb(&mut self, other: SampleEntry) {
        self.codec = other.codec;
        self.config = other.config;
        self.profile = other.profile;
    }

    /// The codec's own configuration wins: MP4 writers (ffmpeg among them) put the template
    /// value 2 in channelcount whatever the stream has, and the 16-bit rate field cannot hold
    /// rates above 65535. The entry fills in what the configuration did not say.
    fn fill_audio(&mut self, fields: &AudioFields) {
        self.channels = self.channels.or(fields.channels);
        self.sample_rate = self.sample_rate.or(fields.sample_rate);
    }
}

/// The first child of type `kind`.
fn child<'a>(children: &[BoxRef<'a>], kind: &[u8; 4]) -> Option<BoxRef<'a>> {
    children.iter().find(|c| &c.kind == kind).copied()
}

fn required<'a>(
    children: &[BoxRef<'a>],
    kind: &[u8; 4],
    entry: &BoxRef<'_>,
    ctx: Ctx,
) -> Result<BoxRef<'a>> {
    child(children, kind).ok_or_else(|| ctx.missing(&String::from_utf8_lossy(kind), entry))
}

/// The child boxes of a sample entry, after `skip` bytes of fixed fields.
fn children_after<'a>(entry: &BoxRef<'a>, skip: usize, ctx: Ctx) -> Result<Vec<BoxRef<'a>>> {
    let Some(rest) = entry.body.get(skip..) else {
        return Err(ctx.err(
            entry,
            format_args!(
                "sample entry of {} bytes, its fields need {skip}",
                entry.body.len()
            ),
        ));
    };
    Children::top_level(rest, entry.body_offset.saturating_add(skip as u64))
        .map(|c| c.map_err(|e| ctx.within(e)))
        .collect()
}

/// `VisualSampleEntry`: width and height, then child boxes.
fn visual<'a>(entry: &BoxRef<'a>, ctx: Ctx) -> Result<(SampleEntry, Vec<BoxRef<'a>>)> {
    let children = children_after(entry, VISUAL_LEN, ctx)?;
    let mut out = SampleEntry::of(Codec::Other(other_name(&entry.kind)));
    // 6 reserved bytes, data_reference_index, 16 predefined/reserved bytes, width, height
    out.width = be_u16(entry.body, 24).map(u32::from).and_then(nonzero);
    out.height = be_u16(entry.body, 26).map(u32::from).and_then(nonzero);
    Ok((out, children))
}

/// The channel count and rate an `AudioSampleEntry` states.
#[derive(Debug, Clone, Default)]
struct AudioFields {
    channels: Option<u32>,
    sample_rate: Option<u32>,
}

/// `AudioSampleEntry` (and the QuickTime sound description versions 1 and 2), then child boxes.
///
/// A version field of 1 or 2 means 16 or 36 more bytes of fields in a QuickTime sound
/// description, but nothing in an ISO `AudioSampleEntryV1`. Both layouts are tried, QuickTime's
/// first, and the first whose children include one of `wanted` is taken.
fn audio<'a>(
    entry: &BoxRef<'a>,
    wanted: &[&[u8; 4]],
    ctx: Ctx,
) -> Result<(AudioFields, Vec<BoxRef<'a>>)> {
    let b = entry.body;
    // 6 reserved, data_reference_index, version, revision, vendor, channelcount, samplesize,
    // compression id, packet size, samplerate (16.16): 28 bytes
    let v0 = audio_fields(b);
    let quicktime = match be_u16(b, 8).unwrap_or(0) {
        1 => Some((28 + 16, v0.clone())),
        // version 2: size of struct, rate as f64, channels as u32, then 20 more bytes
        2 => {
            let rate = b
                .get(32..40)
                .and_then(|r| <[u8; 8]>::try_from(r).ok())
                .map(f64::from_be_bytes)
                .filter(|r| r.is_finite() && *r >= 1.0 && *r <= f64::from(u32::MAX))
                .map(|r| r.round() as u32);
            let fields = AudioFields {
                channels: be_u32(b, 40).and_then(nonzero),
                sample_rate: rate,
            };
            Some((28 + 36, fields))
        }
        _ => None,
    };
    if let Some((len, fields)) = quicktime
        && let Ok(children) = children_after(entry, len, ctx)
        && children.iter().any(|c| wanted.contains(&&c.kind))
    {
        return Ok((fields, children));
    }
    Ok((v0, children_after(entry, 28, ctx)?))
}

/// The version 0 fields: channel count at 16, rate (16.16) at 24.
fn audio_fields(body: &[u8]) -> AudioFields {
    AudioFields {
        channels: be_u16(body, 16).map(u32::from).and_then(nonzero),
        sample_rate: be_u16(body, 24).map(u32::from).and_then(nonzero),
    }
}

/// An entry whose codec we only name: read the fields its handler says it has.
fn other_entry(entry: &BoxRef<'_>, handler: Handler) -> SampleEntry {
    let mut out = SampleEntry::of(Codec::Other(other_name(&entry.kind)));
    let b = entry.body;
    match handler {
        Handler::Video if b.len() >= VISUAL_LEN => {
            out.width = be_u16(b, 24).map(u32::from).and_then(nonzero);
            out.height = be_u16(b, 26).map(u32::from).and_then(nonzero);
        }
        Handler::Audio if b.len() >= 28 => out.fill_audio(&audio_fields(b)),
        _ => {}
    }
    out
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

fn mp4a(es: &EsInfo, fields: &AudioFields) -> SampleEntry {
    let oti = es.object_type_indication;
    let mut out = SampleEntry::of(Codec::Other(format!("mp4a.{oti:02x}")));
    match oti {
        // MPEG-4 audio, MPEG-2 AAC Main / LC / SSR
        0x40 | 0x66..=0x68 => {
            out.codec = Codec::Aac;
            match es.decoder_specific.and_then(AudioSpecificConfig::parse) {
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
                    // No DecoderSpecificInfo: derive a config from the entry's fields.
                    let object_type = match oti {
                        0x66 => 1,
                        0x68 => 3,
                        _ => 2,
                    };
                    let index = fields
                        .sample_rate
                        .and_then(|rate| SAMPLE_RATES.iter().position(|&r| r == rate))
                        .and_then(|i| u8::try_from(i).ok());
                    let config = match fields.channels {
                        Some(c @ 1..=6) => u8::try_from(c).ok(),
                        Some(8) => Some(7),
                        _ => None,
                    };
                    if let (Some(sample_rate_index), Some(channel_config)) = (index, config) {
                        out.config = CodecConfig::Aac {
                            object_type,
                            sample_rate_index,
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

/// What we use of an `esds`: the object type and the DecoderSpecificInfo bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EsInfo<'a> {
    pub object_type_indication: u8,
    pub decoder_specific: Option<&'a [u8]>,
}

/// Reads `esds` (ISO/IEC 14496-1, 7.2.6): ES_Descriptor (tag 3) → DecoderConfigDescriptor
/// (tag 4) → DecoderSpecificInfo (tag 5). Three fixed levels, walked with loops: nothing
/// recurses on the input, whatever it nests.
pub(crate) fn read_esds<'a>(esds: &BoxRef<'a>) -> std::result::Result<EsInfo<'a>, String> {
    // FullBox version and flags first.
    let body = esds.body.get(4..).ok_or("box body too short")?;
    let es = descriptor(body, 0x03).ok_or("no ES_Descriptor (tag 3)")?;
    // ES_ID, then flags announcing optional fields.
    let flags = *es.get(2).ok_or("ES_Descriptor too short")?;
    let mut at = 3usize;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let len = *es.get(at).ok_or("ES_Descriptor URL cut off")?;
        at += 1 + usize::from(len);
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    let rest = es
        .get(at..)
        .ok_or("ES_Descriptor too short for its flags")?;
    let dc = descriptor(rest, 0x04).ok_or("no DecoderConfigDescriptor (tag 4)")?;
    let object_type_indication = *dc.first().ok_or("DecoderConfigDescriptor is empty")?;
    // objectTypeIndication, streamType, bufferSizeDB (3), maxBitrate (4), avgBitrate (4)
    let decoder_specific = dc.get(13..).and_then(|d| descriptor(d, 0x05));
    Ok(EsInfo {
        object_type_indication,
        decoder_specific,
    })
}

/// The body of the first descriptor with `tag` among the descriptors laid end to end in
/// `data` (each: tag, size in 1-4 bytes of 7 bits, body).
fn descriptor(mut data: &[u8], tag: u8) -> Option<&[u8]> {
    while let Some((&t, rest)) = data.split_first() {
        let mut size = 0usize;
        let mut len_bytes = 0usize;
        loop {
            let b = *rest.get(len_bytes)?;
            size = (size << 7) | usize::from(b & 0x7F);
            len_bytes += 1;
            if b & 0x80 == 0 {
                break;
            }
            if len_bytes == 4 {
                return None;
            }
        }
        let body_at = len_bytes;
        let body = rest.get(body_at..body_at.checked_add(size)?)?;
        if t == tag {
            return Some(body);
        }
        data = rest.get(body_at + size..)?;
    }
    None
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
