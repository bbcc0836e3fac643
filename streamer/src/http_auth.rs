//! The HTTP side of access control ([`crate::auth`]): refusals with their challenges, and
//! the two endpoints that hand out credentials.
//!
//! ```text
//! POST /api/v1/tokens            Basic login (or a still-valid token) → a bearer token:
//!                                {"token", "token_type": "Bearer", "expires_in", "user", "clearance"}
//! GET  /api/v1/sign/ID[?ttl=S]   logged in with clearance for ID → signed, expiring URLs:
//!                                {"expires_at", "prefix", "urls": {"ts", "hls", "iframes", "rtsp_path"}}
//! ```

use crate::auth::{Denied, Proto, now_secs};
use crate::http::{HttpBody, Server, json, method_not_allowed, plain, valid_id};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use std::net::SocketAddr;

/// The response for a refused request: 401 with `WWW-Authenticate` (one per scheme), or 403.
pub fn denied(server: &Server, d: &Denied) -> Response<HttpBody> {
    server.metrics.refused(d.reason());
    let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = plain(status, d.message());
    if let Denied::Throttled { retry_after } = d {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    if d.status() == 401 {
        for c in server.auth.challenges(Proto::Http, d) {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
    }
    r
}

/// A 401 for the login endpoints: they take Basic whatever the content setting says.
fn login_refused(server: &Server, d: &Denied) -> Response<HttpBody> {
    if d.status() != 401 {
        return denied(server, d);
    }
    server.metrics.refused(d.reason());
    let mut r = plain(StatusCode::UNAUTHORIZED, d.message());
    let realm = &server.auth.config().realm;
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        r.headers_mut().append(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn authorization(req: &Parts) -> Option<&str> {
    req.headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// `POST /api/v1/tokens`.
pub fn token(server: &Server, peer: SocketAddr, req: &Parts) -> Response<HttpBody> {
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    let (name, user) = match server.auth.login(peer.ip(), authorization(req)) {
        Ok(u) => u,
        Err(d) => return login_refused(server, &d),
    };
    let ttl = server.auth.config().token_ttl_secs.max(1);
    let token = server.auth.keys().token(&name, now_secs() + ttl);
    let mut r = json(&serde_json::json!({
        "token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "user": name,
        "clearance": user.clearance,
    }));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /api/v1/sign/ID?ttl=SECONDS`.
pub fn sign(server: &Server, peer: SocketAddr, req: &Parts, id: &str) -> Response<HttpBody> {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    if !valid_id(id) {
        server.metrics.refused("bad_path");
        return plain(StatusCode::NOT_FOUND, "no such content id");
    }
    if server.catalog.get(id).is_none() {
        return plain(
            StatusCode::NOT_FOUND,
            format!("content {id} is not installed"),
        );
    }
    let (name, user) = match server.auth.login(peer.ip(), authorization(req)) {
        Ok(u) => u,
        Err(d) => return login_refused(server, &d),
    };
    let level = server.auth.level(id);
    if user.clearance < level || !user.may(crate::auth::users::Right::Http) {
        let d = Denied::Forbidden(format!(
            "content {id} needs clearance {level}; user {name} has {}",
            user.clearance
        ));
        return denied(server, &d);
    }
    let max = server.auth.config().max_signed_ttl_secs.max(1);
    let ttl = match req
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("ttl="))
    {
        None => 3600.min(max),
        Some(v) => match v.parse::<u64>() {
            Ok(t) if (1..=max).contains(&t) => t,
            _ => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("ttl must be 1..={max} seconds"),
                );
            }
        },
    };
    let expires = now_secs() + ttl;
    let prefix = server.auth.keys().sign(id, expires);
    let mut r = json(&serde_json::json!({
        "expires_at": expires,
        "prefix": prefix,
        "urls": {
            "ts": format!("{prefix}/content/{id}.ts"),
            "hls": format!("{prefix}/content/{id}/index.m3u8"),
            "iframes": format!("{prefix}/content/{id}/iframes.m3u8"),
            "rtsp_path": format!("{prefix}/{id}"),
        },
    }));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
