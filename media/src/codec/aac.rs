//! AAC: AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and ADTS headers (§1.A.2).

use crate::model::CodecConfig;
use crate::{Error, Result};

pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Decode the first bytes of an AudioSpecificConfig into [`CodecConfig::Aac`].
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<CodecConfig> {
    if asc.len() < 2 {
        return Err(Error::invalid(
            "AudioSpecificConfig",
            0,
            "shorter than 2 bytes",
        ));
    }
    let mut object_type = asc[0] >> 3;
    let mut rest_bits: u32 =
        (u32::from(asc[0]) << 16) | (u32::from(asc[1]) << 8) | u32::from(*asc.get(2).unwrap_or(&0));
    // bits consumed so far: 5
    let mut consumed = 5;
    if object_type == 31 {
        object_type = 32 + (((rest_bits >> (24 - 5 - 6)) & 0x3F) as u8);
        consumed += 6;
    }
    let sample_rate_index = ((rest_bits >> (24 - consumed - 4)) & 0x0F) as u8;
    consumed += 4;
    if sample_rate_index == 0x0F {
        return Err(Error::Unsupported(
            "AAC with an explicit sample rate (frequency index 15)".into(),
        ));
    }
    if sample_rate_index as usize >= SAMPLE_RATES.len() {
        return Err(Error::invalid(
            "AudioSpecificConfig",
            0,
            format!("reserved sampling frequency index {sample_rate_index}"),
        ));
    }
    rest_bits >>= 24 - consumed - 4;
    let channel_config = (rest_bits & 0x0F) as u8;
    Ok(CodecConfig::Aac {
        object_type,
        sample_rate_index,
        channel_config,
    })
}

/// Profile name for reports.
pub fn profile_name(object_type: u8) -> &'static str {
    match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        5 => "HE-AAC",
        29 => "HE-AACv2",
        _ => "other",
    }
}

/// Write a 7-byte ADTS header (no CRC) for a raw AAC frame of `frame_len` bytes.
/// HE-AAC (SBR/PS) is signalled as LC with implicit SBR, as ADTS can only carry types 1-4.
pub fn write_adts_header(cfg: &CodecConfig, frame_len: usize, out: &mut Vec<u8>) -> Result<()> {
    let CodecConfig::Aac {
        object_type,
        sample_rate_index,
        channel_config,
    } = *cfg
    else {
        return Err(Error::invalid("ADTS", 0, "track has no AAC configuration"));
    };
    let total = frame_len + 7;
    if total > 0x1FFF {
        return Err(Error::invalid(
            "ADTS",
            0,
            format!("AAC frame of {frame_len} bytes is too large"),
        ));
    }
    let profile = match object_type {
        1..=4 => object_type - 1,
        _ => 1,
    };
    out.extend_from_slice(&[
        0xFF,
        0xF1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (sample_rate_index << 2) | ((channel_config >> 2) & 1),
        ((channel_config & 3) << 6) | ((total >> 11) as u8 & 0x03),
        (total >> 3) as u8,
        (((total & 7) as u8) << 5) | 0x1F,
        0xFC,
    ]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_lc_48k_stereo() {
        let c = parse_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(
            c,
            CodecConfig::Aac {
                object_type: 2,
                sample_rate_index: 3,
                channel_config: 2
            }
        );
        let mut h = Vec::new();
        write_adts_header(&c, 100, &mut h).unwrap();
        assert_eq!(h, [0xFF, 0xF1, 0x4C, 0x80, 0x0D, 0x7F, 0xFC]);
        assert!(parse_audio_specific_config(&[0x11]).is_err());
        assert!(parse_audio_specific_config(&[0x17, 0x80]).is_err());
    }
}
