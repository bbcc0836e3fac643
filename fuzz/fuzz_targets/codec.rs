//! Codec helpers and the small TS structures: NAL splitting, SPS/ASC parsing, PES headers,
//! PAT/PMT sections, access-unit rewriting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::codec::nal::{AnnexB, LengthPrefixed};
use media::codec::video::{AuRewriter, Framing};
use media::model::{Codec, CodecConfig};

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(AnnexB::new(data).count());
    if let Ok(nals) = LengthPrefixed::new(data, 4) {
        for nal in nals {
            let _ = std::hint::black_box(nal);
        }
    }
    std::hint::black_box(media::codec::h264::sps_dimensions(data));
    let _ = std::hint::black_box(media::codec::aac::parse_audio_specific_config(data));
    let _ = std::hint::black_box(media::ts::pes::PesHeader::parse(data, 0));
    let _ = std::hint::black_box(media::ts::psi::Pat::parse(data));
    let _ = std::hint::black_box(media::ts::psi::Pmt::parse(data));
    for codec in [Codec::H264, Codec::H265] {
        let mut rewriter = AuRewriter::new(&codec, &CodecConfig::None, Framing::AnnexB)
            .expect("H.264/H.265 are supported");
        let mut out = Vec::new();
        let _ = std::hint::black_box(rewriter.rewrite(data, &mut out));
        // A second access unit sees the parameter sets the first one left behind.
        out.clear();
        let _ = std::hint::black_box(rewriter.rewrite(data, &mut out));
    }
});
