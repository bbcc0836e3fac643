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

pub mod error;
pub mod heartbeat;
pub mod membership;
pub mod placement;
pub mod topology;

pub use error::{Result, StorageError};
