//! Sluice's streaming server.
//!
//! - [`config`]: the TOML file and flags (every option is both).
//! - [`cluster`]: the storage side: one io_uring device per virtual node of the store's
//!   topology, host agents sending heartbeats, in-process membership.
//! - [`catalog`]: what is installed where, from the manifests on the nodes.
//! - [`http`]: the HTTP face: `/content/ID.ts` with byte ranges, HLS playlists, the JSON
//!   catalog, Prometheus metrics, answered on HTTP/1.1 connections by [`http1`]. Every content
//!   byte comes from the storage nodes through a replica reader, so a node failing
//!   mid-response does not break the body; [`send`] moves local nodes' bytes from the page
//!   cache to the socket without copying them through user memory.
//! - [`auth`]: security levels, users, Digest/Basic/bearer credentials, signed URLs.
//! - [`limits`]: header and idle timeouts, connection and session limits.
//! - [`metrics`]: counters and histograms behind `/metrics`.
//! - [`load`]: load-aware steering of new sessions among a content's replicas.
//! - [`peers`]: the other streamers (etcd), and redirects to the one a session belongs on.
//! - [`repair`]: re-replication when a copy's node stays down.
//! - [`demo`]: the embedded default: a small clip installed into an empty store.

pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod http;
pub mod http1;
pub mod http_auth;
pub mod limits;
pub mod linger;
pub mod load;
pub mod metrics;
pub mod peers;
pub mod repair;
pub mod rtsp;
pub mod send;
