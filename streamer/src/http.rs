//! The HTTP face (HTTP/1.1; request and response types from the `http` crate via hyper).
//!
//! ```text
//! GET|HEAD /content/ID.ts               the content TS: Range (single, suffix, open-ended), 206/416,
//!                                       ETag, Last-Modified, If-Range, If-None-Match, Accept-Ranges
//! GET|HEAD /content/ID/index.m3u8       HLS master (names media.m3u8 and iframes.m3u8)
//! GET|HEAD /content/ID/media.m3u8       byte-range segments of content.ts, cut at keyframes
//! GET|HEAD /content/ID/iframes.m3u8     I-frame-only playlist
//! GET|HEAD /content/ID/content.ts       the TS again, where the playlists' relative URIs point
//! GET      /api/v1/contents[/ID]        JSON catalog: duration, bitrate, tracks, level, replicas + health
//! POST     /api/v1/tokens               Basic login → bearer token (see `http_auth`)
//! GET      /api/v1/sign/ID[?ttl=S]      signed, expiring URLs for a content
//! GET|HEAD /s/EXPIRY/MAC/content/…      any content path above, allowed by its signature
//! GET      /metrics                     Prometheus text
//! GET      /                            a plain-text list of contents and their URLs
//! GET|PUT  /admin/nodes/NODE/knobs      a node's simulation knobs (loopback clients only):
//!                                       bandwidth, latency, EIO ranges, stall, crash/recover
//! ```
//! Contents above level 0 need credentials whose clearance reaches their level
//! ([`crate::auth`]). Every content byte (TS and playlists) is read from the storage nodes through a replica
//! reader; nothing is served from the store folder directly.
//!
//! This module answers requests (`http` crate types: method, URI, headers in; status, headers
//! and a [`Body`] out); [`crate::http1`] is the connection handler that speaks HTTP/1.1 on the
//! socket and [`crate::send`] sends content bodies without copying them through user memory.

use crate::catalog::{Catalog, Content};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use installer::info::{CONTENT_TS, IFRAME_PLAYLIST, MASTER_PLAYLIST, MEDIA_PLAYLIST};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use storage_device_sim::KnobsState;
use storage_device_sim::http_range::{RangeSpec, parse_range};
use storage_device_sim::membership::Health;
use storage_device_sim::replica::ReplicaReader;

/// A response body: small ones in memory, content streamed from the storage nodes.
pub enum Body {
    Full(Bytes),
    Content(ContentBody),
}

/// Bytes `start..end` of a content file, read through its replicas by [`crate::send`].
pub struct ContentBody {
    pub reader: ReplicaReader,
    pub start: u64,
    pub end: u64,
    /// Route label for the byte counters.
    pub route: &'static str,
    /// This response's reservation on the host it reads from (steering).
    pub _load: Option<crate::load::LoadGuard>,
}

pub type HttpBody = Body;

pub struct Server {
    pub cluster: Arc<Cluster>,
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    /// Bytes per step of a content body ([`crate::send::CHUNK`]; a replica that cannot splice
    /// answers a step with at most its buffer size).
    pub chunk: usize,
    /// Timeouts and connection limits.
    pub limits: crate::limits::Limits,
    /// Security levels and credentials.
    pub auth: Arc<crate::auth::Auth>,
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> HttpBody {
    Body::Full(bytes.into())
}

pub(crate) fn plain(status: StatusCode, msg: impl Into<String>) -> Response<HttpBody> {
    let mut r = Response::new(full(msg.into() + "\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn json(v: &serde_json::Value) -> Response<HttpBody> {
    let mut r = Response::new(full(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<HttpBody> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Which file of a content a path names, and the route label for metrics.
fn content_file(rest: &str) -> Option<(String, &'static str, &'static str)> {
    if let Some(id) = rest.strip_suffix(".ts")
        && !id.contains('/')
    {
        return Some((id.to_string(), CONTENT_TS, "content_ts"));
    }
    let (id, file) = rest.split_once('/')?;
    let (file, route) = match file {
        f if f == MASTER_PLAYLIST => (MASTER_PLAYLIST, "hls"),
        f if f == MEDIA_PLAYLIST => (MEDIA_PLAYLIST, "hls"),
        f if f == IFRAME_PLAYLIST => (IFRAME_PLAYLIST, "hls"),
        f if f == CONTENT_TS => (CONTENT_TS, "content_ts"),
        _ => return None,
    };
    Some((id.to_string(), file, route))
}

pub(crate) fn valid_id(id: &str) -> bool {
    installer::store::check_id(id).is_ok()
}

fn content_type(file: &str) -> &'static str {
    if file.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl"
    } else {
        "video/mp2t"
    }
}

/// If-Range: a strong ETag or an HTTP date that matches lets the range apply.
fn if_range_matches(h: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    let Some(v) = h.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') {
        return v == etag;
    }
    match httpdate::parse_http_date(v) {
        Ok(t) => {
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            secs(t) >= secs(modified)
        }
        Err(_) => false,
    }
}

impl Server {
    /// Answer one request (`body`: the request's body, for the admin endpoints).
    pub fn handle(&self, peer: SocketAddr, req: &Parts, body: Bytes) -> Response<HttpBody> {
        let started = Instant::now();
        let path = req.uri.path();
        let (route, resp) = if path.starts_with("/admin/") {
            ("admin", self.admin(peer, req, body))
        } else {
            match crate::auth::keys::split_signed(path) {
                Ok((signed, rest)) if signed.is_none() || rest.starts_with("/content/") => {
                    self.route(peer, req, rest, signed.as_ref())
                }
                Ok(_) => ("other", plain(StatusCode::NOT_FOUND, "not found")),
                Err(r) => {
                    self.metrics.refused("forbidden");
                    (
                        "content",
                        plain(StatusCode::FORBIDDEN, format!("signed URL {}", r.as_str())),
                    )
                }
            }
        };
        self.metrics.request(route, resp.status().as_u16());
        tracing::info!(
            method = %req.method, path, status = resp.status().as_u16(), route,
            ms = started.elapsed().as_secs_f64() * 1000.0, "request"
        );
        resp
    }

    /// Answer `req` for `path` (its path without any signed-URL prefix, `signed`).
    fn route(
        &self,
        peer: SocketAddr,
        req: &Parts,
        path: &str,
        signed: Option<&crate::auth::keys::SignedPrefix>,
    ) -> (&'static str, Response<HttpBody>) {
        let get_or_head = matches!(req.method, Method::GET | Method::HEAD);
        if let Some(rest) = path.strip_prefix("/content/") {
            let Some((id, file, route)) = content_file(rest).filter(|(id, ..)| valid_id(id)) else {
                self.metrics.refused("bad_path");
                return (
                    "content",
                    plain(StatusCode::NOT_FOUND, "no such content path"),
                );
            };
            if !get_or_head {
                return (route, method_not_allowed("GET, HEAD"));
            }
            let Some(content) = self.catalog.get(&id) else {
                return (
                    route,
                    plain(
                        StatusCode::NOT_FOUND,
                        format!("content {id} is not installed"),
                    ),
                );
            };
            let access = crate::auth::Access {
                proto: crate::auth::Proto::Http,
                peer: peer.ip(),
                id: &id,
                method: req.method.as_str(),
                uri: path,
                authorization: req
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
                signed,
            };
            if let Err(d) = self.auth.authorize(&access) {
                return (route, crate::http_auth::denied(self, &d));
            }
            // A session whose copy is on another streamer's machine belongs there.
            if let Some(base) = self.cluster.redirect(&content, crate::peers::Face::Http) {
                let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut r = plain(StatusCode::FOUND, "served from another streamer");
                if let Ok(v) = HeaderValue::from_str(&format!("{base}{target}")) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return (route, r);
            }
            return (route, self.file(req, &content, file, route));
        }
        if path == "/api/v1/tokens" {
            return ("api", crate::http_auth::token(self, peer, req));
        }
        if let Some(id) = path.strip_prefix("/api/v1/sign/") {
            return ("api", crate::http_auth::sign(self, peer, req, id));
        }
        match path {
            "/api/v1/contents" | "/metrics" | "/" if !get_or_head => {
                ("other", method_not_allowed("GET, HEAD"))
            }
            "/api/v1/contents" => (
                "api",
                json(&serde_json::Value::Array(
                    self.catalog
                        .all()
                        .values()
                        .map(|c| self.describe(c))
                        .collect(),
                )),
            ),
            "/metrics" => {
                let nodes: Vec<(String, String, bool)> = self
                    .cluster
                    .topology
                    .hosts
                    .iter()
                    .flat_map(|h| h.nodes.iter().map(move |n| (n.clone(), h.name.clone())))
                    .map(|(n, h)| {
                        let up = self.cluster.health(&n) == Health::Up;
                        (n, h, up)
                    })
                    .collect();
                let text =
                    self.metrics.render(&nodes) + &self.cluster.load.render(&self.cluster.topology);
                let mut r = Response::new(full(text));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                ("metrics", r)
            }
            "/" => ("index", plain(StatusCode::OK, self.index_text(req))),
            p => match p.strip_prefix("/api/v1/contents/") {
                Some(id) if valid_id(id) && !get_or_head => {
                    ("api", method_not_allowed("GET, HEAD"))
                }
                Some(id) if valid_id(id) => match self.catalog.get(id) {
                    Some(c) => ("api", json(&self.describe(&c))),
                    None => (
                        "api",
                        plain(
                            StatusCode::NOT_FOUND,
                            format!("content {id} is not installed"),
                        ),
                    ),
                },
                Some(_) => {
                    self.metrics.refused("bad_path");
                    ("api", plain(StatusCode::NOT_FOUND, "no such content id"))
                }
                None => ("other", plain(StatusCode::NOT_FOUND, "not found")),
            },
        }
    }

    /// Simulation knobs of a node, for tests and operators on this machine.
    fn admin(&self, peer: SocketAddr, req: &Parts, body: Bytes) -> Response<HttpBody> {
        if !peer.ip().is_loopback() {
            self.metrics.refused("admin_not_loopback");
            return plain(
                StatusCode::FORBIDDEN,
                "admin endpoints answer loopback clients only",
            );
        }
        let segs: Vec<&str> = req.uri.path().trim_start_matches('/').split('/').collect();
        let ["admin", "nodes", node, "knobs"] = segs.as_slice() else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let Some(dev) = self.cluster.devices.get(*node).cloned() else {
            return plain(StatusCode::NOT_FOUND, format!("no node {node}"));
        };
        match req.method {
            Method::GET => {}
            Method::PUT | Method::POST => match serde_json::from_slice::<KnobsState>(&body) {
                Ok(k) => dev.knobs().apply(&k),
                Err(e) => return plain(StatusCode::BAD_REQUEST, format!("knobs: {e}")),
            },
            _ => return method_not_allowed("GET, PUT, POST"),
        }
        json(&serde_json::to_value(dev.knobs().state()).unwrap_or_default())
    }

    fn index_text(&self, req: &Parts) -> String {
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost:8080");
        let mut s = String::from("Sluice: installed contents\n\n");
        for c in self.catalog.all().values() {
            s += &format!(
                "{}  ({:.1} s)\n  http://{host}/content/{}.ts\n  http://{host}/content/{}/index.m3u8\n",
                c.id, c.manifest.duration_seconds, c.id, c.id
            );
        }
        s
    }

    fn describe(&self, c: &Content) -> serde_json::Value {
        let replicas: Vec<serde_json::Value> = c
            .nodes
            .iter()
            .map(|n| {
                let host = self
                    .cluster
                    .topology
                    .host_of(n)
                    .map_or("", |h| h.name.as_str());
                serde_json::json!({"node": n, "host": host, "health": self.cluster.health(n)})
            })
            .collect();
        let m = &c.manifest;
        serde_json::json!({
            "id": c.id,
            "duration": m.duration_seconds,
            "bitrate": m.bitrate,
            "size": c.file_size(CONTENT_TS),
            "keyframes": m.keyframes,
            "tracks": m.tracks,
            "level": self.auth.level(&c.id),
            "replicas": replicas,
            "urls": {
                "ts": format!("/content/{}.ts", c.id),
                "hls": format!("/content/{}/index.m3u8", c.id),
                "iframes": format!("/content/{}/iframes.m3u8", c.id),
            },
        })
    }

    fn file(
        &self,
        req: &Parts,
        c: &Content,
        file: &'static str,
        route: &'static str,
    ) -> Response<HttpBody> {
        let Some(size) = c.file_size(file) else {
            return plain(
                StatusCode::NOT_FOUND,
                format!("{file} is not part of {}", c.id),
            );
        };
        let (etag, modified) = if file == CONTENT_TS {
            (c.etag.clone(), c.last_modified)
        } else {
            let crc = c.manifest.files.get(file).map_or("", |f| f.crc32.as_str());
            (format!("\"{crc}-{size:x}\""), c.last_modified)
        };
        let h = &req.headers;
        if h.get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().insert(
                header::ETAG,
                HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
            );
            return r;
        }
        let range = match h.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(v) if if_range_matches(h, &etag, modified) => parse_range(v, size),
            _ => RangeSpec::Full,
        };
        let (status, start, end) = match range {
            RangeSpec::Full => (StatusCode::OK, 0, size),
            RangeSpec::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
            RangeSpec::Unsatisfiable => {
                let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        };
        let body = if req.method == Method::HEAD || start == end {
            full(Bytes::new())
        } else {
            // A response is a session of the content's bitrate for steering.
            let (reader, load) =
                self.cluster
                    .steered_reader(&c.id, file, &c.nodes, c.manifest.bitrate / 8);
            Body::Content(ContentBody {
                reader,
                start,
                end,
                route,
                _load: load,
            })
        };
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let hs = r.headers_mut();
        hs.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(file)),
        );
        hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        hs.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            hs.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            hs.insert(header::LAST_MODIFIED, v);
        }
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
        {
            hs.insert(header::CONTENT_RANGE, v);
        }
        if file.ends_with(".m3u8") {
            hs.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=60"),
            );
        }
        r
    }
}
