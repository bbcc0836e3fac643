//! `Authorization` headers (`http_proto::auth::parse`, run on every request for a protected
//! content over HTTP and RTSP): never panics; a refusal is a 400-class error; Basic
//! credentials round-trip through base64 (what was decoded re-encodes to the input); a Digest
//! answer has every field the check needs, and `qop` only with `nc` and `cnonce`; a bearer
//! token is a non-empty token68.
#![no_main]

use http_proto::auth::{Credentials, basic_value, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(Credentials::Basic { user, password }) => {
            let b64 = text.trim().split_once([' ', '\t']).map(|(_, r)| r.trim()).unwrap();
            assert_eq!(basic_value(&user, &password), format!("Basic {b64}"));
        }
        Ok(Credentials::Digest(d)) => {
            if d.qop.is_some() {
                assert!(d.nc.is_some() && d.cnonce.is_some());
            }
        }
        Ok(Credentials::Bearer(t)) => assert!(!t.is_empty() && !t.contains(' ')),
        Err(e) => assert_eq!(e.status(), 400),
    }
});
