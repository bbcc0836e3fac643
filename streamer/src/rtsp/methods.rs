//! The RTSP methods: what each request does to the session table and the player, and the
//! reply it gets. Status codes follow RFC 2326 §7.1: 454 for an unknown session, 455 for a
//! method not valid in the session's state, 457 for a range outside the content, 459 for an
//! aggregate-only operation, 461 for a transport we cannot serve.

use super::conn::Conn;
use super::player::{Command, PlayRequest, Player, Sink, Status};
use super::pump::Dest;
use super::server::RtspServer;
use super::session::{self, Session, State, TransportKind};
use super::url::{self, TRACK};
use rtsp_proto::headers::{
    Lower, NptTime, RtpInfo, Transport, format_npt, format_rtp_info, format_scale, format_session,
    parse_range, parse_scale, parse_session, parse_transport,
};
use rtsp_proto::message::{Method, Request, Response};
use rtsp_proto::sdp::Description;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
const SERVER: &str = concat!("Sluice/", env!("CARGO_PKG_VERSION"));
/// Commands a session's player may have queued before the connection waits.
const CONTROL_QUEUE: usize = 16;

/// Answers one request; never fails (errors become status codes).
pub async fn handle(server: &Arc<RtspServer>, conn: &mut Conn, req: Request) -> Response {
    let started = std::time::Instant::now();
    let resp = match req.cseq() {
        None => Response::new(400).body("text/plain", "CSeq missing\r\n"),
        Some(_) => dispatch(server, conn, &req).await,
    };
    let mut resp = resp.header("Server", SERVER);
    if let Some(c) = req.headers.get("CSeq") {
        resp.headers.set("CSeq", c.trim());
    }
    server.metrics.request("rtsp", resp.status);
    tracing::info!(
        peer = %conn.peer,
        method = req.method.as_str(),
        uri = %req.uri,
        status = resp.status,
        ms = started.elapsed().as_millis() as u64,
        "rtsp"
    );
    resp
}

async fn dispatch(server: &Arc<RtspServer>, conn: &mut Conn, req: &Request) -> Response {
    // Any request naming a live session is a sign of life (keep-alive).
    if let Some(s) = session_of(server, req) {
        s.touch(server.now_ms());
    }
    match req.method {
        Method::Options => Response::new(200).header("Public", PUBLIC),
        Method::Describe => describe(server, conn, req),
        Method::Setup => setup(server, conn, req).await,
        Method::Play => play(server, conn, req).await,
        Method::Pause => pause(server, req).await,
        Method::Teardown => teardown(server, req),
        Method::GetParameter => get_parameter(server, req),
        Method::SetParameter => match with_session(server, req) {
            Err(r) => r,
            Ok(_) if req.body.iter().all(u8::is_ascii_whitespace) => Response::new(200),
            Ok(_) => Response::new(451),
        },
        Method::Announce | Method::Record | Method::Redirect => {
            Response::new(405).header("Allow", PUBLIC)
        }
        Method::Other(_) => {
            server.metrics.rtsp_refused("unknown_method");
            Response::new(501).header("Public", PUBLIC)
        }
    }
}

fn session_of(server: &RtspServer, req: &Request) -> Option<Arc<Session>> {
    let (id, _) = parse_session(req.headers.get("Session")?).ok()?;
    server.session(&id)
}

/// The session a request names: 454 when it names none we know, 400 when it names none.
fn with_session(server: &RtspServer, req: &Request) -> Result<Arc<Session>, Response> {
    let Some(v) = req.headers.get("Session") else {
        return Err(Response::new(454).body("text/plain", "Session header missing\r\n"));
    };
    let (id, _) = parse_session(v).map_err(|e| Response::new(e.status()))?;
    server.session(&id).ok_or_else(|| Response::new(454))
}

/// The content id a request URI names, or the refusal (counted): 400 for a path refused
/// outright (traversal in any encoding, see [`url::content_id`]), 404 for a path naming no
/// content id. Before any other work.
fn requested_id(server: &RtspServer, conn: &Conn, req: &Request) -> Result<String, Response> {
    match url::target(&req.uri) {
        Ok(Some(t)) => authorize(server, conn, req, t),
        Ok(None) => {
            server.metrics.rtsp_refused("bad_id");
            Err(Response::new(404))
        }
        Err(e) => {
            tracing::info!(uri = %req.uri, error = %e, "RTSP request path refused");
            server.metrics.rtsp_refused(e.reason());
            Err(Response::new(400).body("text/plain", format!("{e}\r\n")))
        }
    }
}

/// Whether the request's credentials (or signed URL) reach the content's security level:
/// 401 with a Digest challenge (the connection stays open: VLC asks its user only after a
/// first 401), or 403. See [`crate::auth`].
fn authorize(
    server: &RtspServer,
    conn: &Conn,
    req: &Request,
    t: url::Target,
) -> Result<String, Response> {
    let Some(auth) = &server.config.auth else {
        return Ok(t.id);
    };
    let access = crate::auth::Access {
        proto: crate::auth::Proto::Rtsp,
        peer: conn.peer.ip(),
        id: &t.id,
        method: req.method.as_str(),
        uri: &req.uri,
        authorization: req.headers.get("Authorization"),
        signed: t.signed.as_ref(),
    };
    match auth.authorize(&access) {
        Ok(_) => Ok(t.id),
        Err(d) => {
            tracing::info!(uri = %req.uri, reason = %d.message(), "RTSP request refused");
            server.metrics.rtsp_refused(d.reason());
            // RTSP 1.0 has no 429: a throttled address is refused outright.
            let mut r = Response::new(if d.status() == 429 { 403 } else { d.status() });
            if d.status() == 401 {
                for c in auth.challenges(crate::auth::Proto::Rtsp, &d) {
                    r.headers.append("WWW-Authenticate", c);
                }
            }
            Err(r)
        }
    }
}

fn session_header(server: &RtspServer, s: &Session) -> String {
    format_session(&s.id, server.config.session_timeout.as_secs() as u32)
}

fn describe(server: &RtspServer, conn: &Conn, req: &Request) -> Response {
    if let Some(a) = req.headers.get("Accept")
        && !a.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t == "application/sdp" || t == "*/*" || t == "application/*"
        })
    {
        return Response::new(406);
    }
    let id = match requested_id(server, conn, req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let id = id.as_str();
    let Some(c) = server.catalog.get(id) else {
        return Response::new(404);
    };
    // A session whose copy is on another streamer's machine belongs there.
    if let Some(base) = server.cluster.redirect(&c, crate::peers::Face::Rtsp) {
        let path = url::path_and_query(&req.uri);
        tracing::info!(id, to = %base, "DESCRIBE redirected to the streamer near the copy");
        return Response::new(302).header("Location", format!("{base}{path}"));
    }
    let addr = conn.local.ip().to_string();
    let sdp = Description {
        session_id: server.epoch.elapsed().as_secs() ^ crc(id),
        origin_addr: &addr,
        title: id,
        duration_secs: c.manifest.duration_seconds,
        bitrate_bps: c.manifest.bitrate,
        track_control: TRACK,
    }
    .render();
    Response::new(200)
        .header("Content-Base", url::content_base(&req.uri))
        .body("application/sdp", sdp)
}

fn crc(s: &str) -> u64 {
    crc32fast::hash(s.as_bytes()) as u64
}

/// The first transport the client offers that we serve.
fn choose_transport(v: &str) -> Result<Option<Transport>, Response> {
    let offers = parse_transport(v).map_err(|e| Response::new(e.status()))?;
    Ok(offers
        .into_iter()
        .find(|t| t.unicast && t.destination.is_none()))
}

async fn setup(server: &Arc<RtspServer>, conn: &mut Conn, req: &Request) -> Response {
    let id = match requested_id(server, conn, req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(content) = server.catalog.get(&id) else {
        return Response::new(404);
    };
    if let Some(v) = req.headers.get("Session") {
        // One stream per session: a second SETUP may only re-set up a session not playing.
        let Ok((sid, _)) = parse_session(v) else {
            return Response::new(454);
        };
        match server.session(&sid) {
            None => return Response::new(454),
            Some(s) if s.state() == State::Playing => return Response::new(455),
            Some(s) if s.content.id != content.id => return Response::new(459),
            Some(_) => {
                server.remove(&sid);
            }
        }
    }
    let Some(tv) = req.headers.get("Transport") else {
        return Response::new(461).body("text/plain", "Transport header missing\r\n");
    };
    let t = match choose_transport(tv) {
        Ok(Some(t)) => t,
        Ok(None) => return Response::new(461),
        Err(r) => return r,
    };
    if let Err(reason) = server.session_room(conn.peer.ip()) {
        tracing::info!(peer = %conn.peer, reason, "SETUP refused: session limit");
        server.metrics.rtsp_refused(reason);
        return Response::new(453);
    }
    let index = match server.index(&content).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "index unreadable");
            return Response::new(503).header("Retry-After", "5");
        }
    };
    let ssrc: u32 = rand::random();
    let (sink, kind, reply) = match t.lower {
        Lower::Udp { client_port } => {
            let ip = conn.peer.ip();
            let rtp = SocketAddr::new(ip, client_port.0);
            let rtcp = SocketAddr::new(ip, client_port.1);
            let mut r = t.clone();
            r.server_port = Some(server.server_ports());
            r.ssrc = Some(ssrc);
            r.source = None;
            let sink = Sink {
                lane: server.pump.lane(Dest::Udp { rtp, rtcp }),
                tcp_channels: None,
            };
            (sink, TransportKind::Udp { rtp, rtcp }, r)
        }
        Lower::Tcp { interleaved } => {
            let ch = interleaved.unwrap_or((conn.next_channel, conn.next_channel.wrapping_add(1)));
            conn.next_channel = ch.1.wrapping_add(1);
            let mut r = t.clone();
            r.lower = Lower::Tcp {
                interleaved: Some(ch),
            };
            r.ssrc = Some(ssrc);
            let sink = Sink {
                lane: server.pump.lane(Dest::Tcp {
                    tx: conn.tx.clone(),
                }),
                tcp_channels: Some(ch),
            };
            (
                sink,
                TransportKind::Tcp {
                    connection: conn.id,
                },
                r,
            )
        }
    };
    let (ctl, rx) = mpsc::channel(CONTROL_QUEUE);
    let status = Arc::new(Status::default());
    let (reader, load) = server.cluster.steered_reader(
        &content.id,
        installer::info::CONTENT_TS,
        &content.nodes,
        content.manifest.bitrate / 8,
    );
    let player = Player {
        index,
        reader,
        _load: load,
        sink,
        ssrc,
        cname: format!("sluice@{}", conn.local.ip()),
        metrics: server.metrics.clone(),
        status: status.clone(),
    };
    tokio::spawn(player.run(rx));
    let sess = Arc::new(
        Session::new(
            session::new_id(),
            content,
            req.uri.clone(),
            kind,
            ctl,
            status,
            server.now_ms(),
        )
        .on(conn.id, conn.peer.ip()),
    );
    server.insert(sess.clone());
    Response::new(200)
        .header("Transport", reply.to_header_value())
        .header("Session", session_header(server, &sess))
}

async fn play(server: &Arc<RtspServer>, conn: &mut Conn, req: &Request) -> Response {
    let s = match with_session(server, req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let duration = s.content.manifest.duration_seconds;
    let (start, end) = match req.headers.get("Range") {
        None => (None, None),
        Some(v) => match parse_range(v) {
            Err(e) => return Response::new(e.status()),
            Ok(r) => {
                let start = match r.start {
                    None => Some(0.0),
                    Some(NptTime::Now) => None,
                    Some(NptTime::Seconds(x)) => Some(x),
                };
                if start.is_some_and(|x| x > duration + 0.001) || r.end.is_some_and(|e| e <= 0.0) {
                    return Response::new(457)
                        .header("Range", format!("npt=0-{}", format_npt(duration)));
                }
                (start, r.end.map(|e| e.min(duration)))
            }
        },
    };
    let asked = match req.headers.get("Scale") {
        None => 1.0,
        Some(v) => match parse_scale(v) {
            Ok(x) => x,
            Err(e) => return Response::new(e.status()),
        },
    };
    let (tx, rx) = oneshot::channel();
    let (go_tx, go) = oneshot::channel();
    conn.after_reply = Some(go_tx);
    let cmd = Command::Play(
        PlayRequest {
            start,
            end,
            scale: grant_scale(asked),
        },
        tx,
        go,
    );
    if s.control.send(cmd).await.is_err() {
        return Response::new(500);
    }
    let Ok(p) = rx.await else {
        return Response::new(500);
    };
    s.set_state(State::Playing);
    let mut r = Response::new(200)
        .header("Session", session_header(server, &s))
        .header(
            "Range",
            // An end only when the client asked for one: players (GStreamer's jitter buffer)
            // clip what they receive to the reply's range, and the paced stream runs a few
            // tens of milliseconds past the last frame's time (the mux's PCR lead); the
            // content's duration is in the SDP's `a=range`.
            match end {
                Some(_) => format!("npt={}-{}", format_npt(p.start), format_npt(p.end)),
                None => format!("npt={}-", format_npt(p.start)),
            },
        )
        .header(
            "RTP-Info",
            format_rtp_info(&[RtpInfo {
                url: s.stream_url.clone(),
                seq: Some(p.seq),
                rtptime: Some(p.rtptime),
            }]),
        );
    if req.headers.contains("Scale") || p.scale != 1.0 {
        r = r.header("Scale", format_scale(p.scale));
    }
    r
}

/// The speed we grant for the one asked: 1, or a trick speed of magnitude 2…32 (I-frames
/// only). Slow motion (0 < |s| < 1) is not offered: it is answered with 1, which tells the
/// client (VLC believes only the echo) that it was not granted.
pub fn grant_scale(asked: f64) -> f64 {
    if !asked.is_finite() || asked == 1.0 || (asked > 0.0 && asked < 1.0) {
        1.0
    } else {
        asked.signum() * asked.abs().clamp(2.0, 32.0)
    }
}

async fn pause(server: &Arc<RtspServer>, req: &Request) -> Response {
    let s = match with_session(server, req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    if s.control.send(Command::Pause(tx)).await.is_err() {
        return Response::new(500);
    }
    let Ok(pos) = rx.await else {
        return Response::new(500);
    };
    s.set_state(State::Ready);
    Response::new(200)
        .header("Session", session_header(server, &s))
        .header("Range", format!("npt={}-", format_npt(pos)))
}

fn teardown(server: &RtspServer, req: &Request) -> Response {
    match with_session(server, req) {
        Ok(s) => {
            server.remove(&s.id);
            Response::new(200)
        }
        Err(r) => r,
    }
}

fn get_parameter(server: &RtspServer, req: &Request) -> Response {
    let s = match with_session(server, req) {
        Ok(s) => s,
        // GET_PARAMETER without a session is a plain ping.
        Err(r) if !req.headers.contains("Session") => {
            return if req.body.is_empty() {
                Response::new(200)
            } else {
                r
            };
        }
        Err(r) => return r,
    };
    let mut r = Response::new(200).header("Session", session_header(server, &s));
    let body = String::from_utf8_lossy(&req.body);
    let mut out = String::new();
    for name in body
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match name {
            "position" => {
                let ms = s
                    .status
                    .position_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
                out.push_str(&format!("position: {}\r\n", format_npt(ms as f64 / 1000.0)));
            }
            "scale" | "state" => {
                let st = if s.status.ended.load(std::sync::atomic::Ordering::Relaxed) {
                    "ended"
                } else if s.state() == State::Playing {
                    "playing"
                } else {
                    "ready"
                };
                out.push_str(&format!("state: {st}\r\n"));
            }
            _ => return Response::new(451).header("Session", session_header(server, &s)),
        }
    }
    if !out.is_empty() {
        r = r.body("text/parameters", out);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::grant_scale;

    #[test]
    fn scales_granted() {
        for (asked, want) in [
            (1.0, 1.0),
            (0.5, 1.0),
            (2.0, 2.0),
            (1.5, 2.0),
            (4.0, 4.0),
            (100.0, 32.0),
            (-1.0, -2.0),
            (-0.5, -2.0),
            (-8.0, -8.0),
            (-64.0, -32.0),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(grant_scale(asked), want, "{asked}");
        }
    }
}
