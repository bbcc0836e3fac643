//! PMT stream_type (ISO/IEC 13818-1 table 2-34, ATSC A/52, ETSI EN 300 468) → [`Codec`].
//!
//! stream_type 0x06 ("PES private data") says nothing by itself: DVB signals AC-3/E-AC-3 with
//! descriptors 0x6A/0x7A, others use a registration descriptor (0x05) with a format identifier.

use crate::model::Codec;

/// Stream types carried in sections, not PES: listed in the PMT but never assembled as PES.
pub fn carries_sections(stream_type: u8) -> bool {
    matches!(stream_type, 0x05 | 0x0A..=0x0D | 0x86)
}

/// The codec of a PMT entry from its stream_type and ES_info descriptors.
pub fn codec_for(stream_type: u8, descriptors: &[u8]) -> Codec {
    match stream_type {
        0x1B => Codec::H264,
        0x24 => Codec::H265,
        0x01 | 0x02 => Codec::Mpeg2Video,
        0x0F => Codec::Aac,
        0x11 => Codec::Other("aac_latm".into()),
        0x03 | 0x04 => Codec::MpegAudio,
        0x81 => Codec::Ac3,
        0x87 => Codec::Eac3,
        0x06 => codec_from_descriptors(descriptors).unwrap_or_else(|| other(stream_type)),
        _ => other(stream_type),
    }
}

fn other(stream_type: u8) -> Codec {
    Codec::Other(format!("{stream_type:#04x}"))
}

/// The first descriptor that names a codec we know.
fn codec_from_descriptors(mut d: &[u8]) -> Option<Codec> {
    while d.len() >= 2 {
        let (tag, len) = (d[0], usize::from(d[1]));
        let body = d.get(2..2 + len)?;
        let codec = match tag {
            0x6A => Some(Codec::Ac3),
            0x7A => Some(Codec::Eac3),
            0x05 => match body.get(..4) {
                Some(b"AC-3") => Some(Codec::Ac3),
                Some(b"EAC3") => Some(Codec::Eac3),
                Some(b"Opus") => Some(Codec::Other("opus".into())),
                _ => None,
            },
            _ => None,
        };
        if codec.is_some() {
            return codec;
        }
        d = &d[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_stream_types() {
        assert_eq!(codec_for(0x1B, &[]), Codec::H264);
        assert_eq!(codec_for(0x24, &[]), Codec::H265);
        assert_eq!(codec_for(0x01, &[]), Codec::Mpeg2Video);
        assert_eq!(codec_for(0x02, &[]), Codec::Mpeg2Video);
        assert_eq!(codec_for(0x0F, &[]), Codec::Aac);
        assert_eq!(codec_for(0x11, &[]), Codec::Other("aac_latm".into()));
        assert_eq!(codec_for(0x03, &[]), Codec::MpegAudio);
        assert_eq!(codec_for(0x04, &[]), Codec::MpegAudio);
        assert_eq!(codec_for(0x81, &[]), Codec::Ac3);
        assert_eq!(codec_for(0x87, &[]), Codec::Eac3);
        assert_eq!(codec_for(0x86, &[]), Codec::Other("0x86".into()));
        assert_eq!(codec_for(0x06, &[]), Codec::Other("0x06".into()));
    }

    #[test]
    fn private_data_by_descriptor() {
        let lang = [0x0A, 4, b'e', b'n', b'g', 0];
        let with = |d: &[u8]| [&lang[..], d].concat();
        assert_eq!(codec_for(0x06, &with(&[0x6A, 1, 0])), Codec::Ac3);
        assert_eq!(codec_for(0x06, &with(&[0x7A, 1, 0])), Codec::Eac3);
        assert_eq!(codec_for(0x06, &with(b"\x05\x04AC-3")), Codec::Ac3);
        assert_eq!(codec_for(0x06, &with(b"\x05\x04EAC3")), Codec::Eac3);
        assert_eq!(
            codec_for(0x06, &with(b"\x05\x04Opus")),
            Codec::Other("opus".into())
        );
        assert_eq!(
            codec_for(0x06, &with(b"\x05\x04BSSD")),
            Codec::Other("0x06".into())
        );
        // A descriptor running past the end is ignored, never a panic.
        assert_eq!(codec_for(0x06, &[0x6A, 9, 0]), Codec::Other("0x06".into()));
        assert_eq!(
            codec_for(0x06, &[0x05, 2, b'A', b'C']),
            Codec::Other("0x06".into())
        );
    }
}
