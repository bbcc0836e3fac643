//! The `Range` header parser the streamer and the storage nodes use
//! (`http_proto::range::parse_range`): never panics, and a partial range always lies inside the
//! entity (`start <= end < size`); a range of a non-empty entity starting at 0 with no end is
//! the whole entity.
#![no_main]

use http_proto::range::{RangeSpec, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    // Small sizes are the interesting ones half the time; the rest use all 64 bits.
    let raw = u64::from_le_bytes(*size);
    let size = if raw & 1 == 0 { raw >> 1 } else { (raw >> 1) % 4096 };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    match parse_range(value, size) {
        RangeSpec::Partial { start, end } => {
            assert!(start <= end && end < size, "{value:?} size {size}: {start}-{end}");
        }
        RangeSpec::Full | RangeSpec::Unsatisfiable => {}
    }
    if size > 0 {
        assert_eq!(
            parse_range("bytes=0-", size),
            RangeSpec::Partial { start: 0, end: size - 1 }
        );
    }
});
