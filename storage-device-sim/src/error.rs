//! The one error type of the storage crate. Faults injected by the simulation reach callers as
//! typed variants, so the replica reader can tell "this node is sick" from "this read is wrong".

use std::path::PathBuf;
use thiserror::Error;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topology: {0}")]
    Topology(String),
    /// `place` was asked for 0 replicas, or for more than there are physical hosts (two
    /// replicas never share a host).
    #[error(
        "placement: cannot place {replicas} replica(s) on a topology of {hosts} hosts (need 1 to {hosts}; two replicas never share a host)"
    )]
    Placement { replicas: usize, hosts: usize },
    /// A read overlapping an EIO range injected with `Knobs::inject_eio`.
    #[error("node {node}: injected I/O error reading {path} at offset {offset}")]
    Injected {
        node: String,
        path: String,
        offset: u64,
    },
    /// The device was crashed with `Knobs::crash` (until `Knobs::recover`).
    #[error("node {node}: device crashed")]
    Crashed { node: String },
    /// A path that is empty, absolute or climbs out of the node's root with `..`.
    #[error("bad path {path:?}: must be relative to the node's root, without '..'")]
    BadPath { path: String },
    /// A read longer than the device's buffer size (callers chunk).
    #[error("read of {len} bytes is larger than the device's buffer size {max}")]
    TooLarge { len: usize, max: usize },
    /// The device's ring thread is gone.
    #[error("node {node}: device closed")]
    Closed { node: String },
    /// The filesystem refused `O_DIRECT` (tmpfs and some others do): use a disk-backed folder.
    #[error(
        "{path}: O_DIRECT refused by the filesystem (use a disk-backed folder, not tmpfs, or o_direct = false): {source}"
    )]
    DirectIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Setting up a device's io_uring (or its thread) failed.
    #[error("node {node}: io_uring setup: {source}")]
    Ring {
        node: String,
        #[source]
        source: std::io::Error,
    },
    /// An invalid device configuration.
    #[error("config: {0}")]
    BadConfig(String),
    #[error("{path}: no replica could serve the read (last: {last})")]
    NoReplica { path: String, last: String },
    #[error("node {node}: read took longer than {after_ms} ms")]
    Deadline { node: String, after_ms: u64 },
    #[error("node {node} went down during the read")]
    NodeDown { node: String },
}
