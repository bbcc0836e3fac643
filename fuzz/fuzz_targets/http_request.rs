//! HTTP request heads (`http_proto::request::parse`, what `streamer/src/http1.rs` runs on every
//! request before any work): never panics; a complete head consumed no more than it was given;
//! every prefix of an accepted head is either "need more" or already refused (the limits apply
//! while bytes arrive); a refusal has a 4xx/5xx status; the path the router sees is ASCII
//! `/`-rooted, with no `.`/`..`/empty segments, no `%`, `\` or NUL, and normalising it again
//! changes nothing. The target normaliser also sees the raw input as a target.
#![no_main]

use http_proto::request::{MAX_HEAD, parse};
use http_proto::target::{normalise, normalise_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some(head)) => {
            assert!(head.len > 0 && head.len <= data.len() && head.len <= MAX_HEAD);
            check_path(&head.target.path);
            // A prefix of a complete head is never complete (the blank line ends it).
            if let Ok(Some(h)) = parse(&data[..head.len - 1]) {
                panic!("prefix of {} bytes is complete too ({})", head.len, h.len);
            }
        }
        Ok(None) => {}
        Err(e) => assert!((400..600).contains(&e.status()), "{e:?}"),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = normalise(text, Some("example.org")) {
            check_path(&t.path);
        }
    }
});

fn check_path(path: &str) {
    assert!(path.starts_with('/') && path.is_ascii(), "{path:?}");
    assert!(!path.contains(['%', '\\', '\0', '#', '?']), "{path:?}");
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(*s != "." && *s != "..", "{path:?}");
        assert!(!s.is_empty() || i + 1 == segments.len(), "{path:?}");
    }
    assert_eq!(normalise_path(path).as_deref(), Ok(path));
}
