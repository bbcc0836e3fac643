//! Simulated storage devices for Sluice.
//!
//! Sluice streams from network storage devices dedicated to streaming. This crate simulates
//! them in software, on real files and real io_uring, so the streaming path, failover and load
//! can be built and tested on one machine and later spread across many (DESIGN.md §5).
//!
//! - [`topology`]: physical hosts, each with virtual nodes (the store's `store.json`, or a TOML
//!   file for `storage-node`).
//! - [`placement`]: weighted rendezvous hashing over physical hosts picks a content's replicas.
//! - [`membership`] and [`heartbeat`]: host agents send heartbeats for their virtual nodes; a
//!   failure detector marks nodes and hosts down and up and tells subscribers.
//! - [`device`]: the simulated device of one node: an io_uring ring on its own thread
//!   ([`ring`]), registered buffers handed out as `Bytes` ([`pool`]), run-time fault and speed
//!   [`knobs`], and [`stats`]. A device can also splice file pages into a [`pipe`] the
//!   network side drains into a socket: the zero-copy send path of local nodes. Reads and
//!   splices of pages already in the page cache skip the ring thread: the caller's thread does
//!   them on a small io_uring of its own, without ever waiting for the disk ([`inline`]).

pub mod device;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod heartbeat;
pub mod inline;
/// `Range` header parsing, shared with the streamer (sans-IO, in `http-proto`).
pub use http_proto::range as http_range;
pub mod knobs;
pub mod membership;
pub mod node_server;
pub mod pipe;
pub mod pipe_pool;
pub mod placement;
pub mod pool;
pub mod remote;
pub mod replica;
pub mod ring;
pub mod stats;
pub mod topology;

pub use device::{Device, DeviceConfig};
pub use error::{Result, StorageError};
pub use knobs::{Knobs, KnobsState};
pub use stats::StatsSnapshot;
