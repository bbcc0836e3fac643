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
}
