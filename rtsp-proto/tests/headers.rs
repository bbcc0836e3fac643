//! Typed headers: every `Range` and `Transport` form real clients send, the refusals, and the
//! canonical forms the server writes.

use rtsp_proto::Error;
use rtsp_proto::headers::{
    Lower, NptRange, NptTime, RtpInfo, Transport, format_npt, format_rtp_info, format_scale,
    format_session, parse_range, parse_rtp_info, parse_scale, parse_session, parse_transport,
};

fn udp(a: u16, b: u16) -> Lower {
    Lower::Udp {
        client_port: (a, b),
    }
}

#[test]
fn transport_forms_of_real_clients() {
    // ffmpeg 5.1
    let t = parse_transport("RTP/AVP/UDP;unicast;client_port=26184-26185").unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].lower, udp(26184, 26185));
    assert!(t[0].unicast);
    assert_eq!(t[0].mode, None);
    // GStreamer 1.22
    let t = parse_transport("RTP/AVP;unicast;client_port=50936-50937;mode=\"PLAY\"").unwrap();
    assert_eq!(t[0].lower, udp(50936, 50937));
    assert_eq!(t[0].mode.as_deref(), Some("PLAY"));
    // TCP interleaved (ffmpeg -rtsp_transport tcp, gst protocols=tcp, VLC fallback)
    let t = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap();
    assert_eq!(
        t[0].lower,
        Lower::Tcp {
            interleaved: Some((0, 1))
        }
    );
    let t = parse_transport("RTP/AVP/TCP;unicast").unwrap();
    assert_eq!(t[0].lower, Lower::Tcp { interleaved: None });
    // VLC 3 (live555)
    let t = parse_transport("RTP/AVP;unicast;client_port=53958-53959").unwrap();
    assert_eq!(t[0].lower, udp(53958, 53959));
}

#[test]
fn transport_alternatives_and_liberal_forms() {
    let t = parse_transport(
        "RTP/SAVP;unicast;client_port=1-2, RAW/RAW/UDP;unicast;client_port=3-4,\
         RTP/AVP;multicast;ttl=127 , rtp/avp/tcp;interleaved=2-3;mode=PLAY,\
         RTP/AVP;unicast;client_port=5000;x-unknown=\"a,b;c\";ssrc=0000abcd;destination=10.0.0.2;source=10.0.0.1;server_port=6970-6971,",
    )
    .unwrap();
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(
        t[0].lower,
        Lower::Tcp {
            interleaved: Some((2, 3))
        }
    );
    assert_eq!(t[0].mode.as_deref(), Some("PLAY"));
    assert_eq!(t[1].lower, udp(5000, 5001));
    assert_eq!(t[1].ssrc, Some(0xABCD));
    assert_eq!(t[1].destination.as_deref(), Some("10.0.0.2"));
    assert_eq!(t[1].source.as_deref(), Some("10.0.0.1"));
    assert_eq!(t[1].server_port, Some((6970, 6971)));
    // Whitespace around parameters, interleaved with one channel.
    let t = parse_transport(" RTP/AVP/TCP ; unicast ; interleaved = 4 ").unwrap();
    assert_eq!(
        t[0].lower,
        Lower::Tcp {
            interleaved: Some((4, 5))
        }
    );
    let t = parse_transport("RTP/AVP;multicast;client_port=1-2").unwrap();
    assert!(!t[0].unicast);
    // Nothing usable: an empty list (the caller answers 461), not an error.
    assert_eq!(
        parse_transport("RAW/RAW/UDP;unicast;client_port=3-4").unwrap(),
        []
    );
    assert_eq!(parse_transport("RTP/AVP;unicast").unwrap(), []);
}

#[test]
fn broken_transports_are_errors() {
    for bad in [
        "",
        "  ",
        ";unicast",
        "RTP/AVP;client_port=abc",
        "RTP/AVP;client_port=70000-70001",
        "RTP/AVP;client_port=65535",
        "RTP/AVP;client_port=-5",
        "RTP/AVP/TCP;interleaved=255",
        "RTP/AVP/TCP;interleaved=0-256",
        "RTP/AVP;client_port=1-2;ssrc=123456789",
        "RTP/AVP;client_port=1-2;ssrc=xyz",
        "RTP/AVP;client_port=1-2;mode=\"PLAY",
        "RTP/AVP;client_port=1-2;mode=PL\"AY\"",
        "RTP/AVP;client_port=1-2;destination=\"a,b\"",
        "RTP/AVP;client_port=1-2;source=a b",
    ] {
        let e = parse_transport(bad).expect_err(bad);
        assert_eq!(e.status(), 400, "{bad}");
    }
    assert_eq!(
        Error::UnsupportedTransport { value: "x".into() }.status(),
        461
    );
}

#[test]
fn transport_written_strictly() {
    let t = Transport {
        lower: udp(26184, 26185),
        unicast: true,
        destination: None,
        source: None,
        server_port: Some((6970, 6971)),
        ssrc: Some(0xABCD),
        mode: None,
    };
    assert_eq!(
        t.to_header_value(),
        "RTP/AVP;unicast;client_port=26184-26185;server_port=6970-6971;ssrc=0000ABCD"
    );
    let tcp = Transport {
        lower: Lower::Tcp {
            interleaved: Some((0, 1)),
        },
        server_port: None,
        ssrc: Some(0xDEADBEEF),
        ..t.clone()
    };
    assert_eq!(
        tcp.to_header_value(),
        "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=DEADBEEF"
    );
    for t in [t, tcp] {
        assert_eq!(parse_transport(&t.to_header_value()).unwrap(), [t]);
    }
}

fn range(v: &str) -> NptRange {
    parse_range(v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn secs(s: f64) -> Option<NptTime> {
    Some(NptTime::Seconds(s))
}

#[test]
fn range_forms() {
    let cases: &[(&str, Option<NptTime>, Option<f64>)] = &[
        ("npt=0-", secs(0.0), None),
        ("npt=0.000-", secs(0.0), None),
        ("npt=10-20", secs(10.0), Some(20.0)),
        ("npt=-20", None, Some(20.0)),
        ("npt=now-", Some(NptTime::Now), None),
        ("npt=1:02:03.5-", secs(3723.5), None),
        ("npt=0:00:10-0:00:20", secs(10.0), Some(20.0)),
        (" npt = 5 - ", secs(5.0), None),
        ("npt=12.345-;time=20261129T120000Z", secs(12.345), None),
        ("NPT=5.-", secs(5.0), None),
        ("npt=10-10", secs(10.0), Some(10.0)),
        (
            "npt=123:59:59.999-",
            secs(123.0 * 3600.0 + 59.0 * 60.0 + 59.999),
            None,
        ),
    ];
    for &(v, start, end) in cases {
        assert_eq!(range(v), NptRange { start, end }, "{v}");
    }
}

#[test]
fn range_refusals_are_457() {
    for bad in [
        "clock=19961108T142300Z-",
        "smpte=10:07:00-10:07:33:05.01",
        "frames=1-2",
        "0-10",
        "npt=",
        "npt=-",
        "npt=5",
        "npt=-5-10",
        "npt=20-10",
        "npt=nan-",
        "npt=inf-",
        "npt=1e3-",
        "npt=+5-",
        "npt=0:60:00-",
        "npt=0:00:60-",
        "npt=0:00:5x-",
        "npt=1:2-",
        "npt=now-now",
        "npt=5-now",
        "npt=abc-",
        "npt=1:02:03:04-",
        &format!("npt={}-", "9".repeat(400)),
    ] {
        let e = parse_range(bad).expect_err(bad);
        assert_eq!(e.status(), 457, "{bad}");
        assert!(matches!(e, Error::InvalidRange { .. }));
    }
}

#[test]
fn range_written_with_three_decimals() {
    let r = NptRange {
        start: secs(12.345),
        end: Some(60.0),
    };
    assert_eq!(r.to_header_value(), "npt=12.345-60.000");
    let r = NptRange {
        start: secs(12.3454),
        end: None,
    };
    assert_eq!(r.to_header_value(), "npt=12.345-");
    assert_eq!(
        NptRange {
            start: Some(NptTime::Now),
            end: None
        }
        .to_header_value(),
        "npt=now-"
    );
    assert_eq!(
        NptRange {
            start: None,
            end: Some(20.0)
        }
        .to_header_value(),
        "npt=-20.000"
    );
    assert_eq!(format_npt(12.345), "12.345");
    assert_eq!(format_npt(-1.0), "0.000");
    assert_eq!(format_npt(f64::NAN), "0.000");
    let r = range("npt=0:01:02.5-0:02:00");
    assert_eq!(range(&r.to_header_value()), r);
}

#[test]
fn scale() {
    for (v, s) in [
        ("4", 4.0),
        ("-2.0", -2.0),
        ("0.5", 0.5),
        (" 8 ", 8.0),
        ("2.000000", 2.0),
        ("+1", 1.0),
        ("-.5", -0.5),
    ] {
        assert_eq!(parse_scale(v), Ok(s), "{v}");
    }
    for bad in [
        "0",
        "-0.0",
        "",
        "-",
        "x",
        "1e2",
        "inf",
        "NaN",
        "2 x",
        "--2",
        &"9".repeat(400),
    ] {
        assert_eq!(parse_scale(bad).expect_err(bad).status(), 400, "{bad}");
    }
    for (s, text) in [
        (4.0, "4"),
        (-2.0, "-2"),
        (0.5, "0.5"),
        (1.0, "1"),
        (-0.25, "-0.25"),
    ] {
        assert_eq!(format_scale(s), text);
        assert_eq!(parse_scale(text), Ok(s));
    }
}

#[test]
fn session() {
    assert_eq!(
        parse_session("ABC123;timeout=60"),
        Ok(("ABC123".into(), Some(60)))
    );
    assert_eq!(
        parse_session(" 5F3C2A1B9D "),
        Ok(("5F3C2A1B9D".into(), None))
    );
    assert_eq!(
        parse_session("a$-_.+Z ; Timeout = 30"),
        Ok(("a$-_.+Z".into(), Some(30)))
    );
    let max = "x".repeat(64);
    assert_eq!(parse_session(&max), Ok((max.clone(), None)));
    for bad in [
        "",
        ";timeout=5",
        "a b",
        "abc/def",
        &"x".repeat(65),
        "abc;timeout=x",
        "abc;timeout=99999999999",
    ] {
        assert_eq!(parse_session(bad).expect_err(bad).status(), 400, "{bad}");
    }
    assert_eq!(format_session("ABC123", 60), "ABC123;timeout=60");
    assert_eq!(
        parse_session(&format_session("ABC123", 60)),
        Ok(("ABC123".into(), Some(60)))
    );
}

#[test]
fn rtp_info() {
    let entries = vec![
        RtpInfo {
            url: "rtsp://h/x/track1".into(),
            seq: Some(123),
            rtptime: Some(456),
        },
        RtpInfo {
            url: "rtsp://h/x/track2;jsessionid=7".into(),
            seq: None,
            rtptime: Some(9),
        },
    ];
    let text = format_rtp_info(&entries);
    assert_eq!(
        text,
        "url=rtsp://h/x/track1;seq=123;rtptime=456,url=rtsp://h/x/track2;jsessionid=7;rtptime=9"
    );
    assert_eq!(parse_rtp_info(&text).unwrap(), entries);
    // A comma inside a URL, spaces, unknown parameters, an ssrc some servers add.
    let parsed =
        parse_rtp_info("url=rtsp://h/a,b;seq=1;ssrc=ABCD;rtptime=2 , URL = rtsp://h/c ; SEQ=3")
            .unwrap();
    assert_eq!(
        parsed[0],
        RtpInfo {
            url: "rtsp://h/a,b".into(),
            seq: Some(1),
            rtptime: Some(2)
        }
    );
    assert_eq!(
        parsed[1],
        RtpInfo {
            url: "rtsp://h/c".into(),
            seq: Some(3),
            rtptime: None
        }
    );
    // Unknown parameters after a known one are ignored, before one they belong to the URL.
    let parsed = parse_rtp_info("url=rtsp://h/x;a=b;seq=1;foo=bar;rtptime=2").unwrap();
    assert_eq!(
        parsed,
        [RtpInfo {
            url: "rtsp://h/x;a=b".into(),
            seq: Some(1),
            rtptime: Some(2)
        }]
    );
    assert_eq!(parse_rtp_info(&format_rtp_info(&parsed)).unwrap(), parsed);
    for bad in [
        "",
        "seq=1",
        "url=",
        "url=x;seq=70000",
        "url=x;rtptime=-1",
        "url=x;seq=a",
    ] {
        assert_eq!(parse_rtp_info(bad).expect_err(bad).status(), 400, "{bad}");
    }
}
