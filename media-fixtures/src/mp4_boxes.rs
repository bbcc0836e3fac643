//! Just enough ISO BMFF box walking to find the bytes the damaging edits patch.
//!
//! This is deliberately not the `media` crate's MP4 reader: the fixtures are what that reader is
//! tested against, so the edits that make hostile files must not depend on it.

/// One box: where its header starts, where its payload starts and where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoxSpan {
    pub kind: [u8; 4],
    pub start: usize,
    pub payload: usize,
    pub end: usize,
}

/// The boxes directly inside `data[from..to]`, or a reason why the bytes are not boxes.
pub(crate) fn children(data: &[u8], from: usize, to: usize) -> Result<Vec<BoxSpan>, String> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let header = data
            .get(pos..pos + 8)
            .ok_or_else(|| format!("box header at {pos} runs past the end"))?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, payload) = match size32 {
            0 => (to - pos, pos + 8),
            1 => {
                let large = data
                    .get(pos + 8..pos + 16)
                    .ok_or_else(|| format!("largesize at {pos} runs past the end"))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(large);
                let size = usize::try_from(u64::from_be_bytes(b))
                    .map_err(|_| format!("box at {pos} is too large"))?;
                (size, pos + 16)
            }
            n => (n as usize, pos + 8),
        };
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= to && e >= payload)
            .ok_or_else(|| format!("box {} at {pos} has bad size {size}", show(kind)))?;
        out.push(BoxSpan {
            kind,
            start: pos,
            payload,
            end,
        });
        pos = end;
    }
    Ok(out)
}

/// The first child of `parent` with this type.
pub(crate) fn child(data: &[u8], parent: &BoxSpan, kind: &[u8; 4]) -> Result<BoxSpan, String> {
    children(data, parent.payload, parent.end)?
        .into_iter()
        .find(|b| &b.kind == kind)
        .ok_or_else(|| format!("no {} in {}", show(*kind), show(parent.kind)))
}

/// The box type as text, for messages.
pub(crate) fn show(kind: [u8; 4]) -> String {
    String::from_utf8_lossy(&kind).into_owned()
}
