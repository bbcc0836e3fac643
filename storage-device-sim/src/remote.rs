//! A virtual node served by another process (`storage-node`), read over HTTP byte ranges.
//!
//! This is how a streamer reads from storage on other machines: each read is one `GET` with a
//! `Range` header on a pooled keep-alive connection. A node that answers 503 is down
//! ([`StorageError::Crashed`]); a connection failure is an I/O error; both make the replica
//! reader move on. Unlike a local device, the body is collected into one buffer per read.

use crate::replica::ReadAt;
use crate::{Result, StorageError};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;

pub struct RemoteNode {
    node: String,
    /// `host:port` of the storage-node process.
    addr: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

fn io_err(node: &str, what: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        path: node.into(),
        source: std::io::Error::other(what.to_string()),
    }
}

impl RemoteNode {
    pub fn new(node: impl Into<String>, addr: impl Into<String>) -> RemoteNode {
        RemoteNode {
            node: node.into(),
            addr: addr.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn url(&self, rel: &str) -> String {
        format!("http://{}/nodes/{}/{}", self.addr, self.node, rel)
    }

    async fn get(&self, rel: &str, offset: u64, len: usize) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let req = Request::get(self.url(rel))
            .header(
                header::RANGE,
                format!("bytes={offset}-{}", offset + len as u64 - 1),
            )
            .body(Empty::new())
            .map_err(|e| io_err(&self.node, e))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| io_err(&self.node, e))?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT | StatusCode::OK => {}
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Bytes::new()),
            StatusCode::SERVICE_UNAVAILABLE => {
                return Err(StorageError::Crashed {
                    node: self.node.clone(),
                });
            }
            s => {
                return Err(io_err(
                    &self.node,
                    format!("{} answered {s} for {rel}", self.addr),
                ));
            }
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io_err(&self.node, e))?;
        let mut b = body.to_bytes();
        b.truncate(len);
        Ok(b)
    }

    /// Is the storage-node process answering, and which of its nodes are up? (`GET /health`,
    /// blocking, bounded by `timeout`.)
    pub fn health_blocking(
        addr: &str,
        timeout: std::time::Duration,
    ) -> Option<Vec<(String, bool)>> {
        let body = blocking_request(addr, "GET", "/health", timeout)?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        Some(
            v["nodes"]
                .as_array()?
                .iter()
                .filter_map(|n| Some((n["name"].as_str()?.to_string(), n["up"].as_bool()?)))
                .collect(),
        )
    }
}

/// A minimal HTTP/1.0 request over a std socket for the rare synchronous calls (sizes, health).
fn blocking_request(
    addr: &str,
    method: &str,
    path: &str,
    timeout: std::time::Duration,
) -> Option<Vec<u8>> {
    use std::net::ToSocketAddrs;
    let sa = addr.to_socket_addrs().ok()?.next()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.take(16 << 20).read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let ok = head.lines().next()?.split_whitespace().nth(1)? == "200";
    if !ok {
        return None;
    }
    if method == "HEAD" {
        return Some(head.as_bytes().to_vec());
    }
    Some(buf[split + 4..].to_vec())
}

impl ReadAt for RemoteNode {
    fn read_at<'a>(
        &'a self,
        rel: &'a str,
        offset: u64,
        len: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes>> + Send + 'a>> {
        Box::pin(self.get(rel, offset, len))
    }

    fn size(&self, rel: &str) -> Result<u64> {
        let path = format!("/nodes/{}/{}", self.node, rel);
        let head = blocking_request(&self.addr, "HEAD", &path, std::time::Duration::from_secs(5))
            .ok_or_else(|| {
            io_err(&self.node, format!("HEAD {path} on {} failed", self.addr))
        })?;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        head.lines()
            .find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse().ok())
            })
            .ok_or_else(|| io_err(&self.node, "no Content-Length"))
    }
}
