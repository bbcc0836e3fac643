//! The content index: parsing (with a serialisation round trip) and the TS scanner that builds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::index::Index;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = Index::parse(data) {
        let bytes = idx.to_bytes();
        let again = Index::parse(&bytes).expect("a serialised index parses");
        assert_eq!(again, idx, "index round trip");
    }
    let _ = media::index::scan_ts(data);
});
