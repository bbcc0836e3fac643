//! Just enough MPEG-TS reading to find H.264 NAL units in the video elementary stream and map
//! every elementary-stream byte back to its offset in the file, so an edit can overwrite NAL
//! units in place without moving a single TS packet.

pub(crate) const PACKET: usize = 188;
const SYNC: u8 = 0x47;

/// The PID, payload_unit_start_indicator and payload start offset of the packet at `pkt`
/// (payload start = packet end when there is no payload). `pkt + 188` must be in `data`.
fn payload(data: &[u8], pkt: usize) -> Result<(u16, bool, usize), String> {
    let p = &data[pkt..pkt + PACKET];
    if p[0] != SYNC {
        return Err(format!("no sync byte at offset {pkt}"));
    }
    let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    let pusi = p[1] & 0x40 != 0;
    let afc = (p[3] >> 4) & 3;
    let mut off = 4;
    if afc & 2 != 0 {
        off += 1 + usize::from(p[4]);
    }
    if afc & 1 == 0 || off > PACKET {
        off = PACKET;
    }
    Ok((pid, pusi, pkt + off))
}

/// The PID of the first H.264 stream (stream_type 0x1B) in the first PMT.
fn h264_pid(data: &[u8]) -> Result<u16, String> {
    let section = |pkt: usize| -> Result<Option<(u16, &[u8])>, String> {
        let (pid, pusi, start) = payload(data, pkt)?;
        if !pusi || start >= pkt + PACKET {
            return Ok(None);
        }
        let ptr = usize::from(data[start]);
        let s = start + 1 + ptr;
        let body = data.get(s..pkt + PACKET).ok_or("bad pointer field")?;
        if body.len() < 3 {
            return Err(format!("short PSI section at {pkt}"));
        }
        let len = usize::from(u16::from_be_bytes([body[1] & 0x0f, body[2]]));
        let body = body
            .get(..3 + len)
            .ok_or_else(|| format!("PSI section at {pkt} spans packets"))?;
        if body.len() < 16 {
            return Err(format!("short PSI section at {pkt}"));
        }
        Ok(Some((pid, body)))
    };
    let mut pmt_pid = None;
    for pkt in (0..data.len() / PACKET).map(|i| i * PACKET) {
        let Some((pid, sec)) = section(pkt)? else {
            continue;
        };
        if pid == 0 && sec[0] == 0x00 && pmt_pid.is_none() {
            // PAT: programs start after the 8-byte header, CRC is the last 4 bytes.
            for prog in sec[8..sec.len() - 4].chunks_exact(4) {
                if u16::from_be_bytes([prog[0], prog[1]]) != 0 {
                    pmt_pid = Some((u16::from(prog[2] & 0x1f) << 8) | u16::from(prog[3]));
                    break;
                }
            }
        } else if Some(pid) == pmt_pid && sec[0] == 0x02 {
            let info_len = usize::from(u16::from_be_bytes([sec[10] & 0x0f, sec[11]]));
            let mut i = 12 + info_len;
            // The CRC takes the last 4 bytes; a section is at least 16 bytes (checked above).
            while i + 5 <= sec.len() - 4 {
                let stream_type = sec[i];
                let es_pid = (u16::from(sec[i + 1] & 0x1f) << 8) | u16::from(sec[i + 2]);
                if stream_type == 0x1b {
                    return Ok(es_pid);
                }
                i += 5 + usize::from(u16::from_be_bytes([sec[i + 3] & 0x0f, sec[i + 4]]));
            }
            return Err("the PMT has no H.264 stream".into());
        }
    }
    Err("no PAT/PMT found".into())
}

/// The H.264 elementary stream (PES headers removed) and, for each of its bytes, the offset of
/// that byte in the file.
pub(crate) fn h264_es(data: &[u8]) -> Result<(Vec<u8>, Vec<usize>), String> {
    if !data.chunks_exact(PACKET).remainder().is_empty() {
        return Err(format!(
            "{} bytes is not a whole number of packets",
            data.len()
        ));
    }
    let pid = h264_pid(data)?;
    let mut es = Vec::new();
    let mut map = Vec::new();
    for pkt in (0..data.len() / PACKET).map(|i| i * PACKET) {
        let (p, pusi, mut start) = payload(data, pkt)?;
        if p != pid {
            continue;
        }
        let end = pkt + PACKET;
        if pusi {
            let h = data.get(start..end).unwrap_or_default();
            if h.len() < 9 || h[..3] != [0, 0, 1] {
                return Err(format!("no PES header at offset {start}"));
            }
            start += 9 + usize::from(h[8]);
            if start > end {
                return Err(format!("PES header at offset {pkt} spans packets"));
            }
        }
        es.extend_from_slice(&data[start..end]);
        map.extend(start..end);
    }
    Ok((es, map))
}

/// One NAL unit in an Annex B stream: its type and the range from its header byte to the end of
/// its last non-zero byte (trailing zero bytes belong to the next start code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nal {
    pub nal_type: u8,
    pub start: usize,
    pub end: usize,
}

/// The NAL units of an Annex B byte stream (H.264 header: type in the low 5 bits).
pub(crate) fn annex_b_nals(es: &[u8]) -> Vec<Nal> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &(_, header)) in starts.iter().enumerate() {
        if header >= es.len() {
            break;
        }
        let mut end = starts.get(k + 1).map_or(es.len(), |&(sc, _)| sc);
        while end > header + 1 && es[end - 1] == 0 {
            end -= 1;
        }
        nals.push(Nal {
            nal_type: es[header] & 0x1f,
            start: header,
            end,
        });
    }
    nals
}
