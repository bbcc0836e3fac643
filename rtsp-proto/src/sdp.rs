//! The SDP (RFC 4566) that DESCRIBE returns for one content: one MPEG-TS stream over RTP
//! (payload type 33, RFC 2250), its duration as `a=range` so players show a seek bar, and its
//! bitrate as `b=AS` so clients size their buffers.

use std::fmt::Write;

/// What the description says about a content.
#[derive(Debug, Clone)]
pub struct Description<'a> {
    pub session_id: u64,
    /// The server's address as the client reached it (for `o=`).
    pub origin_addr: &'a str,
    pub title: &'a str,
    pub duration_secs: f64,
    pub bitrate_bps: u64,
    /// The stream's control URL, relative to the `Content-Base` of the reply.
    pub track_control: &'a str,
}

impl Description<'_> {
    pub fn render(&self) -> String {
        let ip = if self.origin_addr.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no={sid} 1 IN {ip} {addr}\r\ns={title}\r\nc=IN {ip} {any}\r\nt=0 0\r\n\
             a=tool:sluice\r\na=control:*\r\na=range:npt=0-{dur:.3}\r\n\
             m=video 0 RTP/AVP 33\r\nb=AS:{kbps}\r\na=rtpmap:33 MP2T/90000\r\na=control:{track}\r\n",
            sid = self.session_id,
            addr = self.origin_addr,
            title = sanitize(self.title),
            any = if ip == "IP6" { "::" } else { "0.0.0.0" },
            dur = self.duration_secs.max(0.0),
            kbps = self.bitrate_bps.div_ceil(1000).max(1),
            track = sanitize(self.track_control),
        );
        s
    }
}

/// SDP lines end at CR or LF: a title must not smuggle in lines of its own.
fn sanitize(s: &str) -> String {
    let t: String = s.chars().filter(|c| !c.is_control()).collect();
    if t.is_empty() { "-".into() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_clients_need() {
        let d = Description {
            session_id: 42,
            origin_addr: "127.0.0.1",
            title: "demo\r\nm=audio",
            duration_secs: 12.3456,
            bitrate_bps: 4_000_001,
            track_control: "track1",
        };
        let s = d.render();
        assert!(
            s.starts_with("v=0\r\no=42 1 IN IP4 127.0.0.1\r\ns=demom=audio\r\n"),
            "{s}"
        );
        for line in [
            "a=range:npt=0-12.346",
            "m=video 0 RTP/AVP 33",
            "b=AS:4001",
            "a=rtpmap:33 MP2T/90000",
            "a=control:track1",
        ] {
            assert!(s.contains(&format!("{line}\r\n")), "{line} missing in {s}");
        }
        assert_eq!(s.lines().filter(|l| l.starts_with("m=")).count(), 1);
    }
}
