//! Building MP4 files byte by byte for the tests.
//!
//! Header boxes and sample entries (`mvhd`, `tkhd`, `mdhd`, `hdlr`, `avc1`, `hvc1`, `mp4a`,
//! `ac-3`) come from `mp4-atom`'s encoder; tables whose exact version and flags a test is about
//! (`stts`, `ctts`, `stsc`, `stsz`, `stco`, `co64`, `elst`, `tfhd`, `trun`, ...) are written by
//! hand so the bytes are exactly what the test says.

use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor};
use mp4_atom::{
    Ac3, Ac3SpecificBox, Audio, Avc1, Avcc, Encode, Esds, FixedPoint, FourCC, Hdlr, Hvc1,
    HvcCArray, Hvcc, Mdhd, Mp4a, Mvhd, Tkhd, Visual,
};

/// A plain box.
pub fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// A full box (version and 24-bit flags before the body).
pub fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.extend_from_slice(&(((version as u32) << 24) | (flags & 0xFF_FFFF)).to_be_bytes());
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// Big-endian fields, concatenated.
#[derive(Default)]
pub struct Be(pub Vec<u8>);

impl Be {
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
}

fn encode(atom: &impl Encode) -> Vec<u8> {
    let mut out = Vec::new();
    atom.encode(&mut out).expect("encode test box");
    out
}

pub fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
    bx(
        b"ftyp",
        &[&brand[..], &[0, 0, 2, 0], b"isomiso2avc1mp41"].concat(),
    )
}

pub fn mvhd(timescale: u32) -> Vec<u8> {
    encode(&Mvhd {
        timescale,
        duration: 0,
        rate: FixedPoint::new(1, 0),
        volume: FixedPoint::new(1, 0),
        ..Default::default()
    })
}

/// A minimal H.264 SPS/PPS (only the first bytes matter to us: NAL type and profile).
pub const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1E, 0xAC, 0xD9, 0x40];
pub const PPS: &[u8] = &[0x68, 0xEB, 0xE3, 0xCB];

pub fn avc1(width: u16, height: u16) -> Vec<u8> {
    encode(&Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc: Avcc::new(SPS, PPS).expect("avcC"),
        ..Default::default()
    })
}

pub fn hvc1(width: u16, height: u16) -> Vec<u8> {
    let array = |t: u8, nal: &[u8]| HvcCArray {
        completeness: true,
        nal_unit_type: t,
        nalus: vec![nal.to_vec()],
    };
    encode(&Hvc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        hvcc: Hvcc {
            general_profile_idc: 2,
            general_profile_compatibility_flags: [0x20, 0, 0, 0],
            length_size_minus_one: 3,
            arrays: vec![
                array(32, &[0x40, 0x01, 0x0C]),
                array(33, &[0x42, 0x01, 0x01]),
                array(34, &[0x44, 0x01, 0xC1]),
            ],
            ..Hvcc::new()
        },
        ..Default::default()
    })
}

fn audio(channels: u16, rate: u16) -> Audio {
    Audio {
        data_reference_index: 1,
        channel_count: channels,
        sample_size: 16,
        sample_rate: FixedPoint::new(rate, 0),
    }
}

/// `mp4a` with object type indication `oti` and, when given, a DecoderSpecificInfo.
pub fn mp4a(oti: u8, channels: u16, rate: u16, asc: Option<&[u8]>) -> Vec<u8> {
    encode(&Mp4a {
        audio: audio(channels, rate),
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: 2,
                dec_config: DecoderConfig {
                    object_type_indication: oti,
                    stream_type: 5,
                    up_stream: 0,
                    dec_specific: asc.map(|raw| DecoderSpecific {
                        raw: raw.to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    })
}

pub fn ac3() -> Vec<u8> {
    encode(&Ac3 {
        audio: audio(2, 48_000),
        dac3: Ac3SpecificBox {
            fscod: 0,
            bsid: 8,
            bsmod: 0,
            acmod: 7,
            lfeon: true,
            bit_rate_code: 10,
        },
    })
}

/// A visual sample entry `mp4-atom` does not model fully (e.g. `vp09` without `vpcC`), with
/// child boxes appended.
pub fn raw_visual(kind: &[u8; 4], width: u16, height: u16, children: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 78];
    b[7] = 1; // data_reference_index
    b[24..26].copy_from_slice(&width.to_be_bytes());
    b[26..28].copy_from_slice(&height.to_be_bytes());
    b[32..34].copy_from_slice(&[0, 0x48]);
    b.extend_from_slice(children);
    bx(kind, &b)
}

/// An `esds` with just an object type indication.
pub fn esds(oti: u8) -> Vec<u8> {
    encode(&Esds {
        es_desc: EsDescriptor {
            es_id: 1,
            dec_config: DecoderConfig {
                object_type_indication: oti,
                stream_type: 4,
                ..Default::default()
            },
            ..Default::default()
        },
    })
}

pub enum Sizes {
    Fixed { size: u32, count: u32 },
    Each(Vec<u32>),
}

pub enum Chunks {
    Stco(Vec<u32>),
    Co64(Vec<u64>),
}

/// Everything one `trak` needs; `Default` is an empty video track.
pub struct TrakSpec {
    pub id: u32,
    pub handler: [u8; 4],
    pub timescale: u32,
    pub language: &'static str,
    /// A complete sample entry box.
    pub entry: Vec<u8>,
    /// (sample_count, sample_delta)
    pub stts: Vec<(u32, u32)>,
    /// version and (sample_count, raw 32-bit offset)
    pub ctts: Option<(u8, Vec<(u32, u32)>)>,
    pub stss: Option<Vec<u32>>,
    /// (first_chunk, samples_per_chunk, sample_description_index)
    pub stsc: Vec<(u32, u32, u32)>,
    pub sizes: Sizes,
    pub chunks: Chunks,
    /// version and (segment_duration, media_time)
    pub elst: Option<(u8, Vec<(u64, i64)>)>,
}

impl Default for TrakSpec {
    fn default() -> Self {
        TrakSpec {
            id: 1,
            handler: *b"vide",
            timescale: 12_800,
            language: "und",
            entry: avc1(320, 240),
            stts: vec![],
            ctts: None,
            stss: None,
            stsc: vec![],
            sizes: Sizes::Each(vec![]),
            chunks: Chunks::Stco(vec![]),
            elst: None,
        }
    }
}

impl TrakSpec {
    pub fn trak(&self) -> Vec<u8> {
        let tkhd = encode(&Tkhd {
            track_id: self.id,
            enabled: true,
            in_movie: true,
            width: FixedPoint::new(320, 0),
            height: FixedPoint::new(240, 0),
            ..Default::default()
        });
        let edts = match &self.elst {
            Some((version, entries)) => {
                let mut b = Be::default().u32(entries.len() as u32);
                for &(duration, media_time) in entries {
                    b = if *version == 1 {
                        b.u64(duration).i64(media_time)
                    } else {
                        b.u32(duration as u32).i32(media_time as i32)
                    };
                    b = b.u32(0x0001_0000);
                }
                bx(b"edts", &full(b"elst", *version, 0, &b.0))
            }
            None => vec![],
        };
        let mdhd = encode(&Mdhd {
            timescale: self.timescale,
            duration: 0,
            language: self.language.into(),
            ..Default::default()
        });
        let hdlr = encode(&Hdlr {
            handler: FourCC::new(&self.handler),
            name: "test".into(),
        });
        let minf = bx(b"minf", &self.stbl());
        let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
        bx(b"trak", &[tkhd, edts, mdia].concat())
    }

    fn stbl(&self) -> Vec<u8> {
        let stsd = full(
            b"stsd",
            0,
            0,
            &[&1u32.to_be_bytes()[..], &self.entry].concat(),
        );
        let mut b = Be::default().u32(self.stts.len() as u32);
        for &(count, delta) in &self.stts {
            b = b.u32(count).u32(delta);
        }
        let stts = full(b"stts", 0, 0, &b.0);
        let ctts = match &self.ctts {
            Some((version, runs)) => {
                let mut b = Be::default().u32(runs.len() as u32);
                for &(count, offset) in runs {
                    b = b.u32(count).u32(offset);
                }
                full(b"ctts", *version, 0, &b.0)
            }
            None => vec![],
        };
        let stss = match &self.stss {
            Some(list) => {
                let mut b = Be::default().u32(list.len() as u32);
                for &n in list {
                    b = b.u32(n);
                }
                full(b"stss", 0, 0, &b.0)
            }
            None => vec![],
        };
        let mut b = Be::default().u32(self.stsc.len() as u32);
        for &(first, per_chunk, index) in &self.stsc {
            b = b.u32(first).u32(per_chunk).u32(index);
        }
        let stsc = full(b"stsc", 0, 0, &b.0);
        let stsz = match &self.sizes {
            Sizes::Fixed { size, count } => {
                full(b"stsz", 0, 0, &Be::default().u32(*size).u32(*count).0)
            }
            Sizes::Each(sizes) => {
                let mut b = Be::default().u32(0).u32(sizes.len() as u32);
                for &s in sizes {
                    b = b.u32(s);
                }
                full(b"stsz", 0, 0, &b.0)
            }
        };
        let chunks = match &self.chunks {
            Chunks::Stco(list) => {
                let mut b = Be::default().u32(list.len() as u32);
                for &o in list {
                    b = b.u32(o);
                }
                full(b"stco", 0, 0, &b.0)
            }
            Chunks::Co64(list) => {
                let mut b = Be::default().u32(list.len() as u32);
                for &o in list {
                    b = b.u64(o);
                }
                full(b"co64", 0, 0, &b.0)
            }
        };
        bx(
            b"stbl",
            &[stsd, stts, ctts, stss, stsc, stsz, chunks].concat(),
        )
    }
}

/// `moov` with `mvhd`, the given `trak`s and optional `mvex` body.
pub fn moov(movie_timescale: u32, traks: &[Vec<u8>], mvex: Option<Vec<u8>>) -> Vec<u8> {
    let mut body = mvhd(movie_timescale);
    for t in traks {
        body.extend_from_slice(t);
    }
    if let Some(m) = mvex {
        body.extend_from_slice(&bx(b"mvex", &m));
    }
    bx(b"moov", &body)
}

/// `trex` with default duration, size and flags.
pub fn trex(track_id: u32, duration: u32, size: u32, flags: u32) -> Vec<u8> {
    full(
        b"trex",
        0,
        0,
        &Be::default()
            .u32(track_id)
            .u32(1)
            .u32(duration)
            .u32(size)
            .u32(flags)
            .0,
    )
}

/// A file laid out as `ftyp`, then `moov` and `mdat` in either order. `make_moov` receives the
/// absolute offset of the first `mdat` payload byte, so tables can point into `payload`.
pub fn file(moov_first: bool, payload: &[u8], make_moov: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let ftyp = ftyp(b"isom");
    let mdat = bx(b"mdat", payload);
    if moov_first {
        // Box sizes do not depend on the offset values, so measure once, then build for real.
        let len = make_moov(0).len() as u64;
        let moov = make_moov(ftyp.len() as u64 + len + 8);
        [ftyp, moov, mdat].concat()
    } else {
        let moov = make_moov(ftyp.len() as u64 + 8);
        [ftyp, mdat, moov].concat()
    }
}

/// Distinct payload bytes, so offsets can be checked by content too.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
