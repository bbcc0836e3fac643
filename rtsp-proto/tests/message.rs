//! Message framing and parsing against requests as ffmpeg 5.1, GStreamer 1.22 (rtspsrc) and
//! VLC 3 (live555) send them, server replies, pipelining, every split point, `$` frames and
//! the limits.

use rtsp_proto::Error;
use rtsp_proto::message::{
    Headers, MAX_BODY, MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE, Message, Method, Request, Response,
    parse, reason_phrase, write_interleaved,
};

const FFMPEG: &[&str] = &[
    "OPTIONS rtsp://127.0.0.1:8554/movie RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n",
    "DESCRIBE rtsp://127.0.0.1:8554/movie RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n",
    "SETUP rtsp://127.0.0.1:8554/movie/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=26184-26185\r\nCSeq: 3\r\nUser-Agent: Lavf59.27.100\r\n\r\n",
    "PLAY rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 4\r\nUser-Agent: Lavf59.27.100\r\nSession: 5F3C2A1B9D\r\n\r\n",
    "GET_PARAMETER rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nCSeq: 5\r\nUser-Agent: Lavf59.27.100\r\nSession: 5F3C2A1B9D\r\n\r\n",
    "PAUSE rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nCSeq: 6\r\nUser-Agent: Lavf59.27.100\r\nSession: 5F3C2A1B9D\r\n\r\n",
    "TEARDOWN rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: Lavf59.27.100\r\nSession: 5F3C2A1B9D\r\n\r\n",
];

const GSTREAMER: &[&str] = &[
    "OPTIONS rtsp://127.0.0.1:8554/movie RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: GStreamer/1.22.0\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
    "DESCRIBE rtsp://127.0.0.1:8554/movie RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: GStreamer/1.22.0\r\nAccept: application/sdp\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
    "SETUP rtsp://127.0.0.1:8554/movie/stream=0 RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: GStreamer/1.22.0\r\nTransport: RTP/AVP;unicast;client_port=50936-50937;mode=\"PLAY\"\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
    "SETUP rtsp://127.0.0.1:8554/movie/stream=0 RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: GStreamer/1.22.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
    "PLAY rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nCSeq: 4\r\nUser-Agent: GStreamer/1.22.0\r\nRange: npt=0-\r\nSession: 6QqlXFYJ3SdP9Uzj\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
    "TEARDOWN rtsp://127.0.0.1:8554/movie/ RTSP/1.0\r\nCSeq: 5\r\nUser-Agent: GStreamer/1.22.0\r\nSession: 6QqlXFYJ3SdP9Uzj\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n",
];

const VLC: &[&str] = &[
    "OPTIONS rtsp://192.168.1.10:8554/movie RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\n\r\n",
    "DESCRIBE rtsp://192.168.1.10:8554/movie RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nAccept: application/sdp\r\n\r\n",
    "SETUP rtsp://192.168.1.10:8554/movie/track1 RTSP/1.0\r\nCSeq: 4\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nTransport: RTP/AVP;unicast;client_port=53958-53959\r\n\r\n",
    "PLAY rtsp://192.168.1.10:8554/movie/ RTSP/1.0\r\nCSeq: 5\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nSession: 1A2B3C4D\r\nRange: npt=0.000-\r\n\r\n",
    "PLAY rtsp://192.168.1.10:8554/movie/ RTSP/1.0\r\nCSeq: 6\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nSession: 1A2B3C4D\r\nScale: 2.000000\r\n\r\n",
    "GET_PARAMETER rtsp://192.168.1.10:8554/movie/ RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nSession: 1A2B3C4D\r\n\r\n",
    "TEARDOWN rtsp://192.168.1.10:8554/movie/ RTSP/1.0\r\nCSeq: 8\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\nSession: 1A2B3C4D\r\n\r\n",
];

const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=movie\r\nt=0 0\r\na=range:npt=0-60.000\r\nm=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\na=control:track1\r\n";

fn describe_reply() -> String {
    format!(
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://127.0.0.1:8554/movie/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn one(buf: &[u8]) -> (Message, usize) {
    parse(buf).expect("parses").expect("complete")
}

fn request(buf: &[u8]) -> Request {
    match one(buf) {
        (Message::Request(r), n) => {
            assert_eq!(n, buf.len());
            r
        }
        other => panic!("not a request: {other:?}"),
    }
}

fn response(buf: &[u8]) -> Response {
    match one(buf) {
        (Message::Response(r), n) => {
            assert_eq!(n, buf.len());
            r
        }
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn client_requests_parse() {
    let expected = [
        Method::Options,
        Method::Describe,
        Method::Setup,
        Method::Play,
        Method::GetParameter,
        Method::Pause,
        Method::Teardown,
    ];
    for (text, method) in FFMPEG.iter().zip(&expected) {
        let r = request(text.as_bytes());
        assert_eq!(&r.method, method);
        assert!(r.uri.starts_with("rtsp://127.0.0.1:8554/movie"));
        assert_eq!(r.headers.get("user-agent"), Some("Lavf59.27.100"));
        assert!(r.body.is_empty());
    }
    let setup = request(FFMPEG[2].as_bytes());
    assert_eq!(setup.cseq(), Some(3));
    assert_eq!(
        setup.headers.get("TRANSPORT"),
        Some("RTP/AVP/UDP;unicast;client_port=26184-26185")
    );
    assert_eq!(
        request(FFMPEG[1].as_bytes()).headers.get("accept"),
        Some("application/sdp")
    );
    assert_eq!(
        request(FFMPEG[3].as_bytes()).headers.get("Range"),
        Some("npt=0.000-")
    );

    for text in GSTREAMER.iter().chain(VLC) {
        let r = request(text.as_bytes());
        assert!(r.cseq().is_some());
        assert!(r.headers.get("User-Agent").is_some());
    }
    let gst = request(GSTREAMER[2].as_bytes());
    assert_eq!(
        gst.headers.get("transport"),
        Some("RTP/AVP;unicast;client_port=50936-50937;mode=\"PLAY\"")
    );
    assert_eq!(
        request(VLC[4].as_bytes()).headers.get("scale"),
        Some("2.000000")
    );
}

#[test]
fn server_replies_parse() {
    let text = describe_reply();
    let r = response(text.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "OK");
    assert_eq!(r.cseq(), Some(2));
    assert_eq!(r.body, SDP.as_bytes());

    let r = response(b"RTSP/1.0 454 Session Not Found\r\nCSeq: 9\r\n\r\n");
    assert_eq!((r.status, r.reason.as_str()), (454, "Session Not Found"));
    let r = response(b"RTSP/1.0 200\r\nCSeq: 1\r\n\r\n");
    assert_eq!((r.status, r.reason.as_str()), (200, ""));
}

#[test]
fn pipelined_requests_in_one_buffer() {
    for client in [FFMPEG, GSTREAMER, VLC] {
        let all: String = client.concat();
        let mut buf = all.as_bytes();
        let mut seen = 0;
        while let Some((m, n)) = parse(buf).unwrap() {
            assert!(matches!(m, Message::Request(_)));
            assert_eq!(n, client[seen].len());
            buf = &buf[n..];
            seen += 1;
        }
        assert!(buf.is_empty());
        assert_eq!(seen, client.len());
    }
}

#[test]
fn every_split_point_needs_more_bytes() {
    let mut texts: Vec<String> = FFMPEG
        .iter()
        .chain(GSTREAMER)
        .map(|s| s.to_string())
        .collect();
    texts.push(describe_reply());
    texts.push(VLC[2].replace("\r\n", "\n"));
    for text in &texts {
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut} of {text:?}");
        }
        let (_, n) = one(bytes);
        assert_eq!(n, bytes.len());
    }
    let mut frame = Vec::new();
    write_interleaved(1, &[0x80, 0x21, 0, 1, 2, 3], &mut frame);
    for cut in 0..frame.len() {
        assert_eq!(parse(&frame[..cut]), Ok(None));
    }
}

#[test]
fn interleaved_frames_between_messages() {
    let rtp: Vec<u8> = (0..1328u32).map(|i| i as u8).collect();
    let mut buf = Vec::new();
    write_interleaved(0, &rtp, &mut buf);
    buf.extend_from_slice(FFMPEG[4].as_bytes()); // keep-alive between RTP packets
    write_interleaved(1, &[0x81, 0xc8, 0, 6], &mut buf);
    write_interleaved(0, &[], &mut buf);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(describe_reply().as_bytes());

    let mut got = Vec::new();
    let mut rest = &buf[..];
    while let Some((m, n)) = parse(rest).unwrap() {
        got.push(m);
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0],
        Message::Interleaved {
            channel: 0,
            payload: rtp
        }
    );
    assert!(matches!(&got[1], Message::Request(r) if r.method == Method::GetParameter));
    assert_eq!(
        got[2],
        Message::Interleaved {
            channel: 1,
            payload: vec![0x81, 0xc8, 0, 6]
        }
    );
    assert_eq!(
        got[3],
        Message::Interleaved {
            channel: 0,
            payload: vec![]
        }
    );
    assert!(matches!(&got[4], Message::Response(r) if r.body == SDP.as_bytes()));
}

#[test]
fn leading_blank_lines_are_consumed() {
    let text = format!("\r\n\n\r\n{}", FFMPEG[0]);
    let (_, n) = one(text.as_bytes());
    assert_eq!(n, text.len());
    assert_eq!(parse(b"\r\n\r\n"), Ok(None));
    assert_eq!(parse(b""), Ok(None));
    let blank = vec![b'\n'; MAX_HEAD + 1];
    assert_eq!(parse(&blank).unwrap_err().status(), 413);
}

#[test]
fn bare_lf_and_liberal_spelling() {
    let text = "SETUP  rtsp://h/movie/track1\tRTSP/1.0\ncseq:3\nTRANSPORT :   RTP/AVP;unicast;\n  client_port=5000-5001  \nx-empty:\n\n";
    let r = request(text.as_bytes());
    assert_eq!(r.method, Method::Setup);
    assert_eq!(r.uri, "rtsp://h/movie/track1");
    assert_eq!(r.cseq(), Some(3));
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP;unicast; client_port=5000-5001")
    );
    assert_eq!(r.headers.get("X-Empty"), Some(""));
    // Mixed line ends, and a continuation onto an empty value.
    let r = request(b"OPTIONS * RTSP/1.0\r\nX-A:\n\tfolded\r\nCSeq: 1\n\r\n");
    assert_eq!(r.headers.get("x-a"), Some("folded"));
    assert_eq!(r.uri, "*");
    // Methods are case-sensitive: lower case is an extension method.
    assert_eq!(
        request(b"options * RTSP/1.0\r\n\r\n").method,
        Method::Other("options".into())
    );
    // RTSP/1.x minor versions are accepted.
    assert_eq!(
        request(b"OPTIONS * RTSP/1.1\r\n\r\n").method,
        Method::Options
    );
}

fn err(buf: &[u8]) -> Error {
    parse(buf).expect_err("must be refused")
}

#[test]
fn malformed_heads_are_refused() {
    assert_eq!(err(b"OPTIONS * RTSP/2.0\r\n").status(), 505);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(), 505);
    assert_eq!(err(b"HTTP/1.1 200 OK\r\n\r\n").status(), 505);
    assert!(matches!(
        err(b"OPTIONS *\r\n\r\n"),
        Error::BadRequestLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS a b RTSP/1.0\r\n\r\n"),
        Error::BadRequestLine { .. }
    ));
    assert!(matches!(
        err(b"OPT(ONS * RTSP/1.0\r\n\r\n"),
        Error::BadRequestLine { .. }
    ));
    // Found by fuzzing: " $X" would become a method that serialises as a `$` frame.
    for bad in [
        &b"\t$X * RTSP/1.0\r\n\r\n"[..],
        b" OPTIONS * RTSP/1.0\r\n\r\n",
    ] {
        assert!(matches!(err(bad), Error::BadRequestLine { .. }));
    }
    assert!("$X".parse::<Method>().is_err());
    assert!(matches!(
        err(b"OPTIONS *\x01 RTSP/1.0\r\n\r\n"),
        Error::BadRequestLine { .. }
    ));
    assert!(matches!(
        err(b"RTSP/1.0 20 OK\r\n\r\n"),
        Error::BadStatusLine { .. }
    ));
    assert!(matches!(
        err(b"RTSP/1.0 2000 OK\r\n\r\n"),
        Error::BadStatusLine { .. }
    ));
    assert!(matches!(
        err(b"RTSP/1.0 099 X\r\n\r\n"),
        Error::BadStatusLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\nno colon\r\n"),
        Error::BadHeaderLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\n: v\r\n"),
        Error::BadHeaderLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\nA B: v\r\n"),
        Error::BadHeaderLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\n x: v\r\n"),
        Error::BadHeaderLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\nA: v\x00\r\n"),
        Error::BadHeaderLine { .. }
    ));
    assert!(matches!(
        err(b"OPTIONS * RTSP/1.0\r\nA: v\r\r\n"),
        Error::BadHeaderLine { .. }
    ));
    for e in [
        err(b"OPTIONS * RTSP/1.0\r\nA: v\r\r\n"),
        err(b"OPTIONS *\r\n\r\n"),
    ] {
        assert_eq!(e.status(), 400);
        assert!(!e.to_string().is_empty());
    }
    // Errors surface as soon as the start line is complete.
    assert_eq!(err(b"OPTIONS * RTSP/2.0\r\n").status(), 505);
}

#[test]
fn content_length_rules() {
    let with = |cl: &str| format!("ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n{cl}\r\n\r\nabc");
    for bad in [
        "Content-Length: -3",
        "Content-Length: +3",
        "Content-Length: 3 3",
        "Content-Length:",
        "Content-Length: 0x3",
        "Content-Length: 3.0",
    ] {
        assert!(
            matches!(err(with(bad).as_bytes()), Error::BadContentLength { .. }),
            "{bad}"
        );
    }
    let conflicting = with("Content-Length: 3\r\ncontent-length: 4");
    assert_eq!(err(conflicting.as_bytes()).status(), 400);
    let same = with("Content-Length: 3\r\ncontent-length: 3");
    assert_eq!(request(same.as_bytes()).body, b"abc");
    // The body waits for its bytes; what follows it is the next message.
    let text = with("Content-Length: 3");
    assert_eq!(parse(&text.as_bytes()[..text.len() - 1]), Ok(None));
    let mut two = text.clone().into_bytes();
    two.extend_from_slice(FFMPEG[0].as_bytes());
    let (_, n) = one(&two);
    assert_eq!(n, text.len());
    let huge = with("Content-Length: 99999999999999999999999999");
    assert_eq!(err(huge.as_bytes()).status(), 413);
}

#[test]
fn limits_just_below_and_just_above() {
    // MAX_REQUEST_LINE, not counting the line end.
    let line = |len: usize| {
        let fixed = "OPTIONS rtsp://h/ RTSP/1.0".len();
        format!("OPTIONS rtsp://h/{} RTSP/1.0", "a".repeat(len - fixed))
    };
    let ok = line(MAX_REQUEST_LINE);
    assert_eq!(ok.len(), MAX_REQUEST_LINE);
    assert!(matches!(
        one(format!("{ok}\r\n\r\n").as_bytes()).0,
        Message::Request(_)
    ));
    let long = line(MAX_REQUEST_LINE + 1);
    assert_eq!(err(format!("{long}\r\n\r\n").as_bytes()).status(), 414);
    // Known too long before the line end arrives; not before (a CR may be the line end).
    assert_eq!(err(long.as_bytes()).status(), 414);
    assert_eq!(parse(format!("{ok}\r").as_bytes()), Ok(None));

    // MAX_HEAD, start line through the blank line.
    let head = |len: usize| {
        let mut h = String::from("OPTIONS * RTSP/1.0\r\n");
        while len - h.len() - 2 > 1000 {
            h.push_str(&format!("X-Pad: {}\r\n", "p".repeat(990)));
        }
        let rest = len - h.len() - 2 - "X-Last: \r\n".len();
        h.push_str(&format!("X-Last: {}\r\n\r\n", "q".repeat(rest)));
        assert_eq!(h.len(), len);
        h
    };
    let ok = head(MAX_HEAD);
    assert_eq!(one(ok.as_bytes()).1, MAX_HEAD);
    let big = head(MAX_HEAD + 1);
    assert_eq!(err(big.as_bytes()), Error::HeadTooLarge { limit: MAX_HEAD });
    assert_eq!(
        err(&big.as_bytes()[..MAX_HEAD + 1]),
        Error::HeadTooLarge { limit: MAX_HEAD }
    );
    assert_eq!(parse(&big.as_bytes()[..MAX_HEAD]), Ok(None));

    // MAX_HEADERS fields; continuation lines do not count.
    let fields = |n: usize| {
        let mut h = String::from("OPTIONS * RTSP/1.0\r\n");
        for i in 0..n {
            h.push_str(&format!("X-{i}: v\r\n continued\r\n"));
        }
        h
    };
    let ok = fields(MAX_HEADERS) + "\r\n";
    let r = request(ok.as_bytes());
    assert_eq!(r.headers.len(), MAX_HEADERS);
    assert_eq!(r.headers.get("x-0"), Some("v continued"));
    // Refused at the 65th line, without waiting for the end of the head.
    let over = fields(MAX_HEADERS + 1);
    assert_eq!(
        err(over.as_bytes()),
        Error::TooManyHeaders { limit: MAX_HEADERS }
    );

    // MAX_BODY.
    let body = |n: usize| {
        let mut m = format!("SET_PARAMETER * RTSP/1.0\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        m.resize(m.len() + n, b'b');
        m
    };
    let ok = body(MAX_BODY);
    assert_eq!(request(&ok).body.len(), MAX_BODY);
    let over = body(MAX_BODY + 1);
    assert_eq!(err(&over).status(), 413);
    // Refused once the Content-Length line is followed by another line, before the body.
    let early = format!(
        "SET_PARAMETER * RTSP/1.0\r\nContent-Length: {}\r\nX",
        MAX_BODY + 1
    );
    assert!(matches!(err(early.as_bytes()), Error::BodyTooLarge { .. }));
}

#[test]
fn response_serializes_exactly() {
    let mut out = Vec::new();
    Response::new(200)
        .header("CSeq", "4")
        .header("Session", "ABC123;timeout=60")
        .header("Content-Length", "999")
        .serialize(&mut out);
    assert_eq!(
        out,
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: ABC123;timeout=60\r\n\r\n"
    );

    let mut out = Vec::new();
    let r = Response::new(200)
        .header("CSeq", "2")
        .body("application/sdp", SDP);
    r.serialize(&mut out);
    let expected = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);

    // Nothing from a value can start a new header line.
    let mut out = Vec::new();
    Response::new(404)
        .header("X-Echo", "a\r\nSet-Cookie: evil")
        .serialize(&mut out);
    assert_eq!(
        out,
        b"RTSP/1.0 404 Not Found\r\nX-Echo: a  Set-Cookie: evil\r\n\r\n"
    );
}

#[test]
fn round_trips() {
    for text in FFMPEG.iter().chain(GSTREAMER).chain(VLC) {
        let r = request(text.as_bytes());
        let mut out = Vec::new();
        r.serialize(&mut out);
        assert_eq!(out, text.as_bytes());
        assert_eq!(request(&out), r);
    }
    let r = Request::new(Method::SetParameter, "rtsp://h/x")
        .header("CSeq", "9")
        .header("Content-Type", "text/parameters");
    let r = Request {
        body: b"volume: 5\r\n".to_vec(),
        ..r
    };
    let mut out = Vec::new();
    r.serialize(&mut out);
    let mut back = request(&out);
    assert_eq!(back.headers.remove("content-length").as_deref(), Some("11"));
    assert_eq!(back, r);

    let reply = describe_reply();
    let r = response(reply.as_bytes());
    let mut out = Vec::new();
    r.serialize(&mut out);
    assert_eq!(out, reply.as_bytes());
    for status in [200, 301, 401, 454, 457, 461, 505] {
        let r = Response::new(status).header("CSeq", "1");
        let mut out = Vec::new();
        r.serialize(&mut out);
        assert_eq!(response(&out), r);
    }
}

#[test]
fn headers_api() {
    let mut h = Headers::new();
    assert!(h.is_empty());
    h.append("CSeq", "1");
    h.append("X-A", "1");
    h.append("x-a", "2");
    h.append("Y", "y");
    assert_eq!(h.get("X-a"), Some("1"));
    assert_eq!(h.get_all("X-A").collect::<Vec<_>>(), ["1", "2"]);
    h.set("X-A", "3");
    assert_eq!(
        h.iter().collect::<Vec<_>>(),
        [("CSeq", "1"), ("X-A", "3"), ("Y", "y")]
    );
    h.set("Z", "z");
    assert_eq!(h.len(), 4);
    assert_eq!(h.remove("cseq").as_deref(), Some("1"));
    assert_eq!(h.remove("cseq"), None);
    assert_eq!(h.len(), 3);
}

#[test]
fn reason_phrases() {
    let expect = [
        (200, "OK"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (406, "Not Acceptable"),
        (408, "Request Time-out"),
        (413, "Request Entity Too Large"),
        (414, "Request-URI Too Large"),
        (415, "Unsupported Media Type"),
        (451, "Parameter Not Understood"),
        (453, "Not Enough Bandwidth"),
        (454, "Session Not Found"),
        (455, "Method Not Valid in This State"),
        (456, "Header Field Not Valid for Resource"),
        (457, "Invalid Range"),
        (459, "Aggregate Operation Not Allowed"),
        (460, "Only Aggregate Operation Allowed"),
        (461, "Unsupported Transport"),
        (462, "Destination Unreachable"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (505, "RTSP Version Not Supported"),
    ];
    for (status, phrase) in expect {
        assert_eq!(reason_phrase(status), phrase);
    }
    assert_eq!(Method::GetParameter.as_str(), "GET_PARAMETER");
    assert_eq!("TEARDOWN".parse::<Method>(), Ok(Method::Teardown));
    assert!("TEAR DOWN".parse::<Method>().is_err());
}
