//! The HTTP face of a `storage-node` process: one physical host's virtual nodes, served to
//! remote streamers as byte ranges, plus health and admin endpoints.
//!
//! ```text
//! GET|HEAD /nodes/NODE/ID/FILE     the file, with Range (206/416), Content-Length, Accept-Ranges
//! GET      /health                 the host, its nodes, their knobs and read stats (JSON)
//! GET      /admin/nodes/NODE/knobs the node's simulation knobs (JSON)
//! PUT      /admin/nodes/NODE/knobs set them (JSON body, same shape): bandwidth, latency, faults
//! ```
//!
//! Bodies stream straight from the device's pooled buffers (`Bytes` over registered io_uring
//! memory): the bytes the ring read are the bytes written to the socket.

use crate::device::Device;
use crate::http_range::{RangeSpec, parse_range};
use crate::knobs::KnobsState;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub type HttpBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// The nodes one process serves, by name.
pub struct NodeServer {
    pub host: String,
    pub nodes: BTreeMap<String, Device>,
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<HttpBody> {
    let body = Full::new(Bytes::from(msg.into() + "\n")).map_err(|e: Infallible| match e {});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body.boxed_unsync())
        .unwrap_or_else(|_| Response::new(empty()))
}

fn json(v: &serde_json::Value) -> Response<HttpBody> {
    let body = Full::new(Bytes::from(v.to_string())).map_err(|e: Infallible| match e {});
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.boxed_unsync())
        .unwrap_or_else(|_| Response::new(empty()))
}

fn empty() -> HttpBody {
    Full::new(Bytes::new())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// A response body read from a device chunk by chunk, as the socket takes it.
struct DeviceBody {
    device: Device,
    rel: Arc<str>,
    pos: u64,
    end: u64,
    chunk: usize,
    pending: Option<Pin<Box<dyn Future<Output = crate::Result<Bytes>> + Send>>>,
}

impl Body for DeviceBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.pos >= this.end && this.pending.is_none() {
            return Poll::Ready(None);
        }
        if this.pending.is_none() {
            let (dev, rel, pos) = (this.device.clone(), this.rel.clone(), this.pos);
            let len = ((this.end - this.pos) as usize).min(this.chunk);
            this.pending = Some(Box::pin(async move { dev.read(&rel, pos, len).await }));
        }
        let Some(fut) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(res) => {
                this.pending = None;
                match res {
                    Ok(b) if b.is_empty() => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} ended at {} before {}", this.rel, this.pos, this.end),
                    )))),
                    Ok(b) => {
                        this.pos += b.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Err(e) => Poll::Ready(Some(Err(std::io::Error::other(e.to_string())))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end && self.pending.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.end - self.pos)
    }
}

/// A node-relative path from URL segments: plain names only (no `..`, no empty segments).
fn rel_path(segments: &[&str]) -> Option<String> {
    let ok = !segments.is_empty()
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    ok.then(|| segments.join("/"))
}

impl NodeServer {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<HttpBody>, Infallible> {
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let resp = match (req.method(), segs.as_slice()) {
            (&Method::GET, ["health"]) => self.health(),
            (m, ["nodes", node, rest @ ..]) if m == Method::GET || m == Method::HEAD => {
                self.file(node, rest, &req)
            }
            (&Method::GET, ["admin", "nodes", node, "knobs"]) => match self.nodes.get(*node) {
                Some(d) => json(&serde_json::to_value(d.knobs().state()).unwrap_or_default()),
                None => text(
                    StatusCode::NOT_FOUND,
                    format!("no node {node} on {}", self.host),
                ),
            },
            (&Method::PUT | &Method::POST, ["admin", "nodes", node, "knobs"]) => {
                let node = node.to_string();
                let Some(dev) = self.nodes.get(&node).cloned() else {
                    return Ok(text(
                        StatusCode::NOT_FOUND,
                        format!("no node {node} on {}", self.host),
                    ));
                };
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return Ok(text(StatusCode::BAD_REQUEST, e.to_string())),
                };
                match serde_json::from_slice::<KnobsState>(&body) {
                    Ok(s) => {
                        dev.knobs().apply(&s);
                        json(&serde_json::to_value(dev.knobs().state()).unwrap_or_default())
                    }
                    Err(e) => text(StatusCode::BAD_REQUEST, format!("knobs: {e}")),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "not found"),
        };
        Ok(resp)
    }

    fn health(&self) -> Response<HttpBody> {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|(name, d)| {
                serde_json::json!({
                    "name": name,
                    "up": !d.knobs().is_crashed(),
                    "knobs": d.knobs().state(),
                    "stats": d.stats(),
                })
            })
            .collect();
        json(&serde_json::json!({"host": self.host, "nodes": nodes}))
    }

    fn file(&self, node: &str, rest: &[&str], req: &Request<Incoming>) -> Response<HttpBody> {
        let Some(dev) = self.nodes.get(node) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no node {node} on {}", self.host),
            );
        };
        if dev.knobs().is_crashed() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("node {node} is down"),
            );
        }
        let Some(rel) = rel_path(rest) else {
            return text(StatusCode::BAD_REQUEST, "bad path");
        };
        let size = match dev.file_size(&rel) {
            Ok(s) => s,
            Err(_) => return text(StatusCode::NOT_FOUND, format!("{rel} not on {node}")),
        };
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(RangeSpec::Full, |v| parse_range(v, size));
        let (status, start, end) = match range {
            RangeSpec::Full => (StatusCode::OK, 0, size),
            RangeSpec::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
            RangeSpec::Unsatisfiable => {
                let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                if let Ok(v) = format!("bytes */{size}").parse() {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        };
        let mut b = Response::builder()
            .status(status)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_LENGTH, end - start)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        if status == StatusCode::PARTIAL_CONTENT {
            b = b.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            );
        }
        let body = if req.method() == Method::HEAD {
            empty()
        } else {
            DeviceBody {
                device: dev.clone(),
                rel: rel.into(),
                pos: start,
                end,
                chunk: dev.config().buffer_size,
                pending: None,
            }
            .boxed_unsync()
        };
        b.body(body)
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"))
    }
}
