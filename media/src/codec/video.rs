//! Access-unit rewriting for MPEG-TS output, and keyframe analysis.
//!
//! A player that joins or seeks at a random-access picture needs the parameter sets in front of
//! it. Many encoders write them once (in `avcC`/`hvcC`, or in-band before the first picture only),
//! so a seek anywhere but the start would fail. [`AuRewriter`] remembers the latest parameter sets
//! (from the sample entry and from in-band NAL units) and emits, for every access unit:
//! an access unit delimiter, then — before a random-access picture that lacks them — the
//! parameter sets, then the access unit's own NAL units, all in Annex B.

use super::nal::{AnnexB, LengthPrefixed};
use crate::model::{Codec, CodecConfig};
use crate::{Error, Result};

const START: [u8; 4] = [0, 0, 0, 1];

/// How an input access unit frames its NAL units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    AnnexB,
    LengthPrefixed(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoCodec {
    H264,
    H265,
}

/// NAL categories we care about, independent of codec numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalClass {
    Aud,
    Vps,
    Sps,
    Pps,
    /// IDR (H.264) or IDR/BLA (H.265): a closed random-access point.
    Idr,
    /// H.265 CRA: random access with leading pictures that may reference the previous GOP.
    Cra,
    OtherSlice,
    Other,
}

fn classify(codec: VideoCodec, nal: &[u8]) -> NalClass {
    let Some(&b0) = nal.first() else {
        return NalClass::Other;
    };
    match codec {
        VideoCodec::H264 => match b0 & 0x1F {
            9 => NalClass::Aud,
            7 => NalClass::Sps,
            8 => NalClass::Pps,
            5 => NalClass::Idr,
            1..=4 => NalClass::OtherSlice,
            _ => NalClass::Other,
        },
        VideoCodec::H265 => match (b0 >> 1) & 0x3F {
            35 => NalClass::Aud,
            32 => NalClass::Vps,
            33 => NalClass::Sps,
            34 => NalClass::Pps,
            16..=20 => NalClass::Idr,
            21 => NalClass::Cra,
            0..=9 => NalClass::OtherSlice,
            _ => NalClass::Other,
        },
    }
}

/// What one access unit turned out to be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuInfo {
    /// Random-access picture (IDR, BLA or CRA).
    pub keyframe: bool,
    /// The random-access picture is a CRA (open GOP).
    pub open_gop: bool,
    /// The access unit carried all needed parameter sets itself.
    pub had_parameter_sets: bool,
    /// We inserted parameter sets in front of it.
    pub inserted_parameter_sets: bool,
}

/// Rewrites access units to Annex B with AUD and parameter sets before every keyframe.
#[derive(Debug, Clone)]
pub struct AuRewriter {
    codec: VideoCodec,
    framing: Framing,
    vps: Vec<Vec<u8>>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
}

impl AuRewriter {
    /// For a video codec we carry in TS (H.264, H.265); `config` seeds the parameter sets.
    pub fn new(codec: &Codec, config: &CodecConfig, framing: Framing) -> Result<Self> {
        let codec = match codec {
            Codec::H264 => VideoCodec::H264,
            Codec::H265 => VideoCodec::H265,
            other => {
                return Err(Error::Unsupported(format!(
                    "access-unit rewriting for {}",
                    other.name()
                )));
            }
        };
        let (vps, sps, pps) = match config {
            CodecConfig::Avc { sps, pps, .. } => (Vec::new(), sps.clone(), pps.clone()),
            CodecConfig::Hevc { vps, sps, pps, .. } => (vps.clone(), sps.clone(), pps.clone()),
            _ => Default::default(),
        };
        Ok(AuRewriter {
            codec,
            framing,
            vps,
            sps,
            pps,
        })
    }

    fn nals<'a>(&self, au: &'a [u8]) -> Result<Vec<&'a [u8]>> {
        match self.framing {
            Framing::AnnexB => Ok(AnnexB::new(au).collect()),
            Framing::LengthPrefixed(n) => LengthPrefixed::new(au, n)?.collect(),
        }
    }

    /// Rewrite one access unit into `out` (appended).
    pub fn rewrite(&mut self, au: &[u8], out: &mut Vec<u8>) -> Result<AuInfo> {
        let nals = self.nals(au)?;
        let mut info = AuInfo::default();
        let (mut has_vps, mut has_sps, mut has_pps) = (false, false, false);
        let mut fresh: [Vec<Vec<u8>>; 3] = Default::default();
        for nal in &nals {
            match classify(self.codec, nal) {
                NalClass::Vps => {
                    has_vps = true;
                    fresh[0].push(nal.to_vec());
                }
                NalClass::Sps => {
                    has_sps = true;
                    fresh[1].push(nal.to_vec());
                }
                NalClass::Pps => {
                    has_pps = true;
                    fresh[2].push(nal.to_vec());
                }
                NalClass::Idr => info.keyframe = true,
                NalClass::Cra => {
                    info.keyframe = true;
                    info.open_gop = true;
                }
                _ => {}
            }
        }
        let [v, s, p] = fresh;
        if !v.is_empty() {
            self.vps = v;
        }
        if !s.is_empty() {
            self.sps = s;
        }
        if !p.is_empty() {
            self.pps = p;
        }
        let needs_vps = self.codec == VideoCodec::H265;
        info.had_parameter_sets = has_sps && has_pps && (has_vps || !needs_vps);
        // Access unit delimiter first (primary_pic_type / pic_type = any).
        out.extend_from_slice(&START);
        match self.codec {
            VideoCodec::H264 => out.extend_from_slice(&[0x09, 0xF0]),
            VideoCodec::H265 => out.extend_from_slice(&[0x46, 0x01, 0x50]),
        }
        if info.keyframe && !info.had_parameter_sets {
            if self.sps.is_empty() || self.pps.is_empty() || (needs_vps && self.vps.is_empty()) {
                return Err(Error::invalid(
                    "video access unit",
                    0,
                    "keyframe without parameter sets, and none seen before it",
                ));
            }
            for ps in self.vps.iter().chain(&self.sps).chain(&self.pps) {
                out.extend_from_slice(&START);
                out.extend_from_slice(ps);
            }
            info.inserted_parameter_sets = true;
        }
        for nal in nals {
            if classify(self.codec, nal) == NalClass::Aud {
                continue;
            }
            out.extend_from_slice(&START);
            out.extend_from_slice(nal);
        }
        Ok(info)
    }
}

/// What the first bytes of an Annex B access unit say, once its first slice is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuScan {
    pub keyframe: bool,
    pub open_gop: bool,
    /// SPS and PPS (and VPS for H.265) come before the first slice.
    pub parameter_sets: bool,
}

/// Keyframe analysis without rewriting, on the first bytes of an access unit (the TS indexer
/// feeds the start of each video PES). `None` when no slice is in `data` yet (or not H.264/H.265).
pub fn scan_access_unit(codec: &Codec, data: &[u8]) -> Option<AuScan> {
    let c = match codec {
        Codec::H264 => VideoCodec::H264,
        Codec::H265 => VideoCodec::H265,
        _ => return None,
    };
    let (mut vps, mut sps, mut pps) = (c == VideoCodec::H264, false, false);
    for nal in AnnexB::new(data) {
        let (keyframe, open_gop) = match classify(c, nal) {
            NalClass::Vps => {
                vps = true;
                continue;
            }
            NalClass::Sps => {
                sps = true;
                continue;
            }
            NalClass::Pps => {
                pps = true;
                continue;
            }
            NalClass::Idr => (true, false),
            NalClass::Cra => (true, true),
            NalClass::OtherSlice => (false, false),
            _ => continue,
        };
        return Some(AuScan {
            keyframe,
            open_gop,
            parameter_sets: vps && sps && pps,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn inserts_parameter_sets_before_every_idr() {
        let cfg = CodecConfig::Avc {
            nal_length_size: 4,
            sps: vec![vec![0x67, 1]],
            pps: vec![vec![0x68, 2]],
        };
        let mut rw = AuRewriter::new(&Codec::H264, &cfg, Framing::LengthPrefixed(4)).unwrap();
        let mut out = Vec::new();
        let info = rw.rewrite(&lp(&[&[0x65, 9]]), &mut out).unwrap();
        assert!(info.keyframe && info.inserted_parameter_sets);
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 9
            ]
        );
        out.clear();
        let info = rw.rewrite(&lp(&[&[0x41, 7]]), &mut out).unwrap();
        assert!(!info.keyframe && !info.inserted_parameter_sets);
        assert_eq!(out, [0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x41, 7]);
    }

    #[test]
    fn in_band_sets_update_and_are_not_duplicated() {
        let mut rw = AuRewriter::new(&Codec::H264, &CodecConfig::None, Framing::AnnexB).unwrap();
        let mut out = Vec::new();
        let first = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 3, 0, 0, 1, 0x68, 4, 0, 0, 1, 0x65, 5,
        ];
        let info = rw.rewrite(&first, &mut out).unwrap();
        assert!(info.keyframe && info.had_parameter_sets && !info.inserted_parameter_sets);
        out.clear();
        rw.rewrite(&[0, 0, 1, 0x65, 6], &mut out).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x67, 3, 0, 0, 0, 1, 0x68, 4, 0, 0, 0, 1, 0x65, 6
            ]
        );
        // An IDR with no parameter sets ever seen is an error, not a silent broken stream.
        let mut fresh = AuRewriter::new(&Codec::H264, &CodecConfig::None, Framing::AnnexB).unwrap();
        assert!(fresh.rewrite(&[0, 0, 1, 0x65, 6], &mut out).is_err());
    }

    #[test]
    fn hevc_cra_is_open_gop() {
        let cfg = CodecConfig::Hevc {
            nal_length_size: 4,
            vps: vec![vec![0x40, 1]],
            sps: vec![vec![0x42, 1]],
            pps: vec![vec![0x44, 1]],
        };
        let mut rw = AuRewriter::new(&Codec::H265, &cfg, Framing::LengthPrefixed(4)).unwrap();
        let mut out = Vec::new();
        let info = rw.rewrite(&lp(&[&[21 << 1, 1, 0]]), &mut out).unwrap();
        assert!(info.keyframe && info.open_gop && info.inserted_parameter_sets);
        assert_eq!(
            scan_access_unit(&Codec::H265, &out),
            Some(AuScan {
                keyframe: true,
                open_gop: true,
                parameter_sets: true
            })
        );
    }
}
