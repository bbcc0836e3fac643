//! A small RTSP client of our own for the tests that real clients cannot do: PAUSE and resume,
//! `Scale`, keep-alive and timeouts, exact sequence numbers, and the stream's bytes compared
//! with the installed file. Blocking sockets with timeouts (every wait is bounded); messages
//! through the sans-IO `rtsp-proto` crate, the same code the server uses, but the checks are
//! made on bytes and numbers a test can state independently.

use rtsp_proto::message::{Message, Method, Request, Response, parse};
use rtsp_proto::rtp::{Rtcp, RtpHeader, parse_rtcp};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long one reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One RTP packet as received.
#[derive(Debug, Clone)]
pub struct Packet {
    pub header: RtpHeader,
    pub payload: Vec<u8>,
    pub arrival: Instant,
}

/// What arrived on the media channels.
#[derive(Debug, Clone)]
pub enum Media {
    Rtp(Packet),
    Rtcp(Vec<Rtcp>),
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    pub url: String,
    pub session: Option<String>,
    /// Interleaved frames read while waiting for a reply.
    pending: std::collections::VecDeque<(u8, Vec<u8>)>,
    udp: Option<(UdpSocket, UdpSocket)>,
}

impl Client {
    pub fn connect(addr: SocketAddr, id: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            cseq: 0,
            url: format!("rtsp://{addr}/{id}"),
            session: None,
            pending: Default::default(),
            udp: None,
        })
    }

    /// Sends raw bytes (for malformed-request tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `method uri` with `headers` (CSeq and Session added) and waits for the reply.
    pub fn request(&mut self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Response {
        self.cseq += 1;
        let mut req = Request::new(method.clone(), uri).header("CSeq", self.cseq.to_string());
        if let Some(s) = &self.session {
            req = req.header("Session", s.clone());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut out = Vec::new();
        req.serialize(&mut out);
        self.stream
            .write_all(&out)
            .unwrap_or_else(|e| panic!("sending {}: {e}", method.as_str()));
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.next_message(deadline) {
                Some(Message::Response(r)) if r.cseq() == Some(self.cseq) => return r,
                Some(_) => {}
                None => panic!(
                    "no reply to {} {uri} within {REPLY_TIMEOUT:?}",
                    method.as_str()
                ),
            }
        }
    }

    /// The next reply, whatever its CSeq (for requests sent raw).
    pub fn reply(&mut self) -> Option<Response> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.next_message(deadline)? {
                Message::Response(r) => return Some(r),
                _ => continue,
            }
        }
    }

    /// The next message from the server before `deadline` (interleaved frames included).
    fn next_message(&mut self, deadline: Instant) -> Option<Message> {
        loop {
            match parse(&self.buf) {
                Ok(Some((m, used))) => {
                    self.buf.drain(..used);
                    if let Message::Interleaved { channel, payload } = m {
                        self.pending.push_back((channel, payload.clone()));
                        return Some(Message::Interleaved { channel, payload });
                    }
                    return Some(m);
                }
                Ok(None) => {}
                Err(e) => panic!("the server sent something that is not RTSP: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// DESCRIBE, SETUP over TCP interleaved (channels 0-1) or UDP, and keep the session.
    pub fn setup(&mut self, tcp: bool) -> (Response, Response) {
        let url = self.url.clone();
        let d = self.request(Method::Describe, &url, &[("Accept", "application/sdp")]);
        assert_eq!(d.status, 200, "DESCRIBE {url}: {d:?}");
        let track = format!("{url}/track1");
        let transport = if tcp {
            "RTP/AVP/TCP;unicast;interleaved=0-1".to_string()
        } else {
            let (rtp, rtcp) = udp_pair();
            let p = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
            self.udp = Some((rtp, rtcp));
            format!("RTP/AVP;unicast;client_port={}-{}", p, p + 1)
        };
        let s = self.request(Method::Setup, &track, &[("Transport", &transport)]);
        assert_eq!(s.status, 200, "SETUP {track}: {s:?}");
        let sess = s
            .headers
            .get("Session")
            .expect("SETUP reply has a Session")
            .to_string();
        self.session = Some(sess.split(';').next().unwrap_or("").to_string());
        (d, s)
    }

    /// The next RTP or RTCP packet before `deadline`.
    pub fn media(&mut self, deadline: Instant) -> Option<Media> {
        if let Some((rtp, rtcp)) = &self.udp {
            let mut b = [0u8; 2048];
            for s in [rtcp, rtp] {
                s.set_nonblocking(true).ok()?;
                if let Ok(n) = s.recv(&mut b) {
                    return Some(decode(std::ptr::eq(s, rtcp), &b[..n]));
                }
            }
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                rtp.set_nonblocking(false).ok()?;
                rtp.set_read_timeout(Some(
                    (deadline - now)
                        .min(Duration::from_millis(20))
                        .max(Duration::from_millis(1)),
                ))
                .ok()?;
                if let Ok(n) = rtp.recv(&mut b) {
                    return Some(decode(false, &b[..n]));
                }
                rtcp.set_nonblocking(true).ok()?;
                if let Ok(n) = rtcp.recv(&mut b) {
                    return Some(decode(true, &b[..n]));
                }
            }
        }
        loop {
            if let Some((ch, p)) = self.pending.pop_front() {
                return Some(decode(ch % 2 == 1, &p));
            }
            match self.next_message(deadline)? {
                Message::Interleaved { .. } => {}
                other => panic!("unexpected message while reading media: {other:?}"),
            }
        }
    }

    /// Like [`Client::collect`] after a PLAY whose reply is `play`: packets sent before it
    /// (still in flight after a PAUSE) are dropped; the run starts at the sequence number
    /// `RTP-Info` names.
    pub fn collect_run(&mut self, play: &Response, until: Instant) -> (Vec<Packet>, bool) {
        let seq = play
            .headers
            .get("RTP-Info")
            .and_then(|v| rtsp_proto::headers::parse_rtp_info(v).ok())
            .and_then(|v| v.first().and_then(|e| e.seq))
            .unwrap_or_else(|| panic!("PLAY reply without RTP-Info seq: {play:?}"));
        let (pk, bye) = self.collect(until);
        let from = pk
            .iter()
            .position(|x| x.header.sequence == seq)
            .unwrap_or(pk.len());
        (pk[from..].to_vec(), bye)
    }

    /// Every RTP packet until `until` passes or an RTCP BYE arrives; (packets, bye seen).
    pub fn collect(&mut self, until: Instant) -> (Vec<Packet>, bool) {
        let mut v = Vec::new();
        while let Some(m) = self.media(until) {
            match m {
                Media::Rtp(p) => v.push(p),
                Media::Rtcp(r) if r.iter().any(|x| matches!(x, Rtcp::Bye { .. })) => {
                    return (v, true);
                }
                Media::Rtcp(_) => {}
            }
        }
        (v, false)
    }
}

fn decode(rtcp: bool, b: &[u8]) -> Media {
    if rtcp {
        return Media::Rtcp(
            parse_rtcp(b).unwrap_or_else(|e| panic!("bad RTCP from the server: {e}")),
        );
    }
    let (header, range) =
        RtpHeader::parse(b).unwrap_or_else(|e| panic!("bad RTP from the server: {e}"));
    Media::Rtp(Packet {
        header,
        payload: b[range].to_vec(),
        arrival: Instant::now(),
    })
}

/// Two UDP sockets on consecutive ports (RTP even, RTCP odd) on 127.0.0.1.
fn udp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let Ok(a) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(p) = a.local_addr().map(|x| x.port()) else {
            continue;
        };
        if p % 2 == 1 || p == u16::MAX {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            return (a, b);
        }
    }
    panic!("no free UDP port pair on 127.0.0.1");
}

/// Sequence gaps in order of arrival (16-bit wrap handled): how many packets are missing.
pub fn sequence_gaps(packets: &[Packet]) -> u64 {
    packets
        .windows(2)
        .map(|w| {
            w[1].header
                .sequence
                .wrapping_sub(w[0].header.sequence)
                .wrapping_sub(1) as u64
        })
        .filter(|&g| g < 0x8000)
        .sum()
}

/// The TS bytes carried by `packets`, in order.
pub fn payload(packets: &[Packet]) -> Vec<u8> {
    packets
        .iter()
        .flat_map(|p| p.payload.iter().copied())
        .collect()
}
