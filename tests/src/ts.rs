//! The little MPEG-TS reading the tests need to check index offsets, written here from
//! ISO/IEC 13818-1 rather than taken from `media` (the code under test): the 4-byte packet
//! header, the adaptation field length, and the PTS of a PES header.

/// TS packet size.
pub const PACKET: usize = 188;

/// The header fields of one TS packet and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub pid: u16,
    /// payload_unit_start_indicator.
    pub pusi: bool,
    /// The bytes after the header and adaptation field (empty without a payload).
    pub payload: &'a [u8],
}

/// The TS packet at byte `offset` of `ts`.
pub fn packet_at(ts: &[u8], offset: u64) -> Result<Packet<'_>, String> {
    let start = usize::try_from(offset).map_err(|_| format!("offset {offset} out of range"))?;
    let p = ts.get(start..start + PACKET).ok_or_else(|| {
        format!(
            "offset {offset}: no whole packet there (file is {} bytes)",
            ts.len()
        )
    })?;
    if p[0] != 0x47 {
        return Err(format!(
            "offset {offset}: byte is {:#04x}, not the sync byte 0x47",
            p[0]
        ));
    }
    let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
    let pusi = p[1] & 0x40 != 0;
    let afc = (p[3] >> 4) & 0x03;
    let mut payload_start = 4;
    if afc & 0x02 != 0 {
        payload_start += 1 + usize::from(p[4]);
    }
    let payload = if afc & 0x01 != 0 && payload_start <= PACKET {
        &p[payload_start..]
    } else {
        &[][..]
    };
    Ok(Packet { pid, pusi, payload })
}

/// The PTS (33 bits) of the PES header at the start of `pes`, if it has one.
pub fn pes_pts(pes: &[u8]) -> Result<Option<u64>, String> {
    if pes.len() < 9 {
        return Err(format!(
            "PES header truncated: {} bytes in the first packet",
            pes.len()
        ));
    }
    if pes[0..3] != [0, 0, 1] {
        return Err(format!(
            "payload starts with {:02x} {:02x} {:02x}, not the PES start code 00 00 01",
            pes[0], pes[1], pes[2]
        ));
    }
    if pes[7] & 0x80 == 0 {
        return Ok(None);
    }
    let b = pes
        .get(9..14)
        .ok_or("PES header truncated before its PTS")?;
    let pts = (u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1);
    Ok(Some(pts))
}
