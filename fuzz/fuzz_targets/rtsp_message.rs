//! RTSP message framing and the typed headers: parse every message in the input (pipelined,
//! `$` frames between), check progress, serialise each one and parse it back (it must be the
//! same message, `Content-Length` aside), and run the typed-header parsers on every header
//! value, round-tripping what they accept through the strict writers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_proto::headers::{
    NptTime, format_rtp_info, format_scale, format_session, parse_range, parse_rtp_info,
    parse_scale, parse_session, parse_transport,
};
use rtsp_proto::message::{Message, parse, write_interleaved};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((message, consumed))) = parse(rest) {
        assert!(
            consumed > 0 && consumed <= rest.len(),
            "no progress: {consumed}"
        );
        check_message(message);
        rest = &rest[consumed..];
    }
    // The header parsers also see raw text that never went through the message parser.
    if let Ok(text) = std::str::from_utf8(data) {
        check_value(text);
    }
});

fn check_message(message: Message) {
    let mut out = Vec::new();
    match &message {
        Message::Request(r) => r.serialize(&mut out),
        Message::Response(r) => r.serialize(&mut out),
        Message::Interleaved { channel, payload } => write_interleaved(*channel, payload, &mut out),
    }
    let (back, consumed) = match parse(&out) {
        Ok(Some(parsed)) => parsed,
        other => panic!("serialised {message:?} as {out:?}, which parses as {other:?}"),
    };
    assert_eq!(consumed, out.len());
    assert_eq!(normalise(back), normalise(message.clone()));
    let headers = match &message {
        Message::Request(r) => &r.headers,
        Message::Response(r) => &r.headers,
        Message::Interleaved { .. } => return,
    };
    for (_, value) in headers.iter() {
        check_value(value);
    }
}

/// `Content-Length` is written from the body, not from the headers.
fn normalise(mut message: Message) -> Message {
    match &mut message {
        Message::Request(r) => _ = r.headers.remove("Content-Length"),
        Message::Response(r) => _ = r.headers.remove("Content-Length"),
        Message::Interleaved { .. } => {}
    }
    message
}

fn check_value(value: &str) {
    if let Ok(transports) = parse_transport(value) {
        for t in transports {
            let text = t.to_header_value();
            let back = parse_transport(&text)
                .unwrap_or_else(|e| panic!("{t:?} written as {text:?} does not parse: {e}"));
            assert_eq!(back, [t], "{text:?}");
        }
    }
    if let Ok(range) = parse_range(value) {
        let text = range.to_header_value();
        let back =
            parse_range(&text).unwrap_or_else(|e| panic!("{range:?} as {text:?} fails: {e}"));
        // Three decimals: within 0.0005, plus the rounding of the float read back.
        let close = |a: f64, b: f64| (a - b).abs() <= 0.0005 + 4.0 * f64::EPSILON * a.abs();
        match (range.start, back.start) {
            (Some(NptTime::Seconds(a)), Some(NptTime::Seconds(b))) => {
                assert!(close(a, b), "{range:?} {back:?}")
            }
            (a, b) => assert_eq!(a, b),
        }
        match (range.end, back.end) {
            (Some(a), Some(b)) => assert!(close(a, b), "{range:?} {back:?}"),
            (a, b) => assert_eq!(a, b),
        }
    }
    if let Ok(scale) = parse_scale(value) {
        assert!(scale.is_finite() && scale != 0.0);
        assert_eq!(parse_scale(&format_scale(scale)), Ok(scale));
    }
    if let Ok((id, timeout)) = parse_session(value) {
        let timeout = timeout.unwrap_or(60);
        assert_eq!(
            parse_session(&format_session(&id, timeout)),
            Ok((id, Some(timeout)))
        );
    }
    if let Ok(entries) = parse_rtp_info(value) {
        let text = format_rtp_info(&entries);
        assert_eq!(parse_rtp_info(&text).as_ref(), Ok(&entries), "{text:?}");
    }
}
