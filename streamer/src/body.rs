//! A response body streamed from the storage nodes through a replica reader.
//!
//! Send path: the ring reads into a buffer registered with io_uring; that buffer becomes the
//! `Bytes` of a body frame and hyper writes it to the socket from the same memory, so a content
//! byte crosses user space exactly once (disk → pooled buffer → socket), with no copy between
//! storage and network. `sendfile` would skip user space entirely, but only from a local file
//! descriptor: it cannot fail over between replicas mid-body, apply the simulated device's
//! faults and bandwidth, or read from a remote storage node, which is what this server is for.
//! The benchmark (`benches/`) measures this path against nginx with sendfile.

use crate::metrics::Metrics;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use storage_device_sim::replica::ReplicaReader;

type Pending =
    Pin<Box<dyn Future<Output = (ReplicaReader, storage_device_sim::Result<Bytes>)> + Send>>;

pub struct ReplicaBody {
    reader: Option<ReplicaReader>,
    pending: Option<Pending>,
    pos: u64,
    end: u64,
    chunk: usize,
    metrics: Arc<Metrics>,
    route: &'static str,
    failovers_seen: u64,
    read_started: Instant,
}

impl ReplicaBody {
    /// Bytes `start..end` of the reader's file, read `chunk` bytes at a time.
    pub fn new(
        reader: ReplicaReader,
        start: u64,
        end: u64,
        chunk: usize,
        metrics: Arc<Metrics>,
        route: &'static str,
    ) -> ReplicaBody {
        metrics.session_started();
        ReplicaBody {
            reader: Some(reader),
            pending: None,
            pos: start,
            end,
            chunk: chunk.max(4096),
            metrics,
            route,
            failovers_seen: 0,
            read_started: Instant::now(),
        }
    }
}

impl Drop for ReplicaBody {
    fn drop(&mut self) {
        self.metrics.session_ended();
    }
}

impl Body for ReplicaBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.pending.is_none() {
            if this.pos >= this.end {
                return Poll::Ready(None);
            }
            let Some(mut reader) = this.reader.take() else {
                return Poll::Ready(None);
            };
            let (pos, len) = (this.pos, ((this.end - this.pos) as usize).min(this.chunk));
            this.read_started = Instant::now();
            this.pending = Some(Box::pin(async move {
                let r = reader.read_at(pos, len).await;
                (reader, r)
            }));
        }
        let Some(fut) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((reader, res)) => {
                this.pending = None;
                this.metrics.observe_read(this.read_started.elapsed());
                let f = reader.failovers();
                if f > this.failovers_seen {
                    this.metrics.failovers(f - this.failovers_seen);
                    this.failovers_seen = f;
                }
                this.reader = Some(reader);
                match res {
                    Ok(b) if b.is_empty() => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("content ended at byte {} before {}", this.pos, this.end),
                    )))),
                    Ok(mut b) => {
                        if b.len() as u64 > this.end - this.pos {
                            b.truncate((this.end - this.pos) as usize);
                        }
                        this.pos += b.len() as u64;
                        this.metrics.bytes(this.route, b.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "read failed on every replica: response cut");
                        Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
                    }
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
