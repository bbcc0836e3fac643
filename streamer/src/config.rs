//! Configuration: a TOML file (`--config`) and flags; a flag given on the command line wins.
//!
//! ```toml
//! store = "./store"
//! http_listen = "0.0.0.0:8080"
//! rtsp_listen = "0.0.0.0:8554"
//! rtsp_session_timeout_secs = 60  # a session not heard from for this long ends
//! header_timeout_secs = 10      # a request head not complete this long after it began: closed
//! idle_timeout_secs = 60        # a connection with no request (and no RTSP session): closed
//! send_timeout_secs = 60        # a client that takes no bytes for this long: closed
//! max_splice_pipes = 0          # 64 KiB splice pipes open at once (0: what the kernel gives)
//! max_connections = 10000       # concurrent connections overall (HTTP and RTSP each)
//! max_connections_per_client = 1000
//! max_sessions = 10000          # RTSP sessions overall (SETUP beyond: 453)
//! max_sessions_per_client = 100
//! read_deadline_ms = 500          # a node read slower than this fails over to the next replica
//! heartbeat_ms = 200
//! missed_beats = 3
//! etcd = ["http://127.0.0.1:2379"]  # membership through etcd (feature `etcd`); default in-process
//! etcd_prefix = "/sluice"
//! near_hosts = ["host-1"]         # storage hosts on this machine (default: the in-process ones)
//! advertise_host = "sluice-1.example.net"  # where other streamers redirect sessions to
//! repair_after_ms = 5000          # a copy on a node down this long is made again elsewhere
//! repair_bytes_per_sec = 50000000 # re-replication rate limit
//! pool_hot_sessions = 100         # a content this popular gets an extra copy on a pool node
//! pool_cool_after_ms = 60000      # ... given back after this long below half of that
//! [auth]                        # access control (see the auth module)
//! users_file = "users.toml"     # who may log in (streamer users add FILE NAME)
//! key_file = "STORE/auth.key"   # HMAC key for tokens, nonces, signed URLs (made if missing)
//! realm = "Sluice"
//! basic = false                 # accept Basic (clear-text passwords) on content requests
//! token_ttl_secs = 3600
//! max_signed_ttl_secs = 86400
//! max_failed_logins = 10        # per address per minute, then refused (429 / RTSP 403)
//! [device]
//! queue_depth = 32
//! buffer_size = 262144
//! buffer_count = 256
//! o_direct = false
//! ```

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSection {
    pub queue_depth: u32,
    pub buffer_size: usize,
    pub buffer_count: usize,
    pub o_direct: bool,
}

impl Default for DeviceSection {
    fn default() -> Self {
        DeviceSection {
            queue_depth: 32,
            buffer_size: 256 << 10,
            buffer_count: 256,
            o_direct: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: PathBuf,
    pub http_listen: String,
    pub rtsp_listen: String,
    pub read_deadline_ms: u64,
    pub heartbeat_ms: u64,
    pub missed_beats: u32,
    /// etcd endpoints; empty: in-process membership (one machine).
    pub etcd: Vec<String>,
    pub etcd_prefix: String,
    /// Storage hosts on this streamer's machine (steering redirects sessions whose copy is
    /// near another streamer there); empty: the hosts run in this process.
    pub near_hosts: Vec<String>,
    /// The host name other streamers redirect sessions to (default: the listen address, or
    /// the machine's name when listening on every interface).
    pub advertise_host: Option<String>,
    pub repair_after_ms: u64,
    pub repair_bytes_per_sec: u64,
    pub pool_hot_sessions: u64,
    pub pool_cool_after_ms: u64,
    pub rtsp_session_timeout_secs: u64,
    pub header_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub send_timeout_secs: u64,
    /// Splice pipes open at once for HTTP bodies (0: as many as the kernel gives).
    pub max_splice_pipes: usize,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_sessions: usize,
    pub max_sessions_per_client: usize,
    /// Install the embedded demo clip when the store holds no content.
    pub demo: bool,
    pub device: DeviceSection,
    pub auth: crate::auth::AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: PathBuf::from("./store"),
            http_listen: "0.0.0.0:8080".into(),
            rtsp_listen: "0.0.0.0:8554".into(),
            read_deadline_ms: 500,
            heartbeat_ms: 200,
            missed_beats: 3,
            etcd: Vec::new(),
            etcd_prefix: "/sluice".into(),
            near_hosts: Vec::new(),
            advertise_host: None,
            repair_after_ms: 5000,
            repair_bytes_per_sec: 50_000_000,
            pool_hot_sessions: 100,
            pool_cool_after_ms: 60_000,
            rtsp_session_timeout_secs: 60,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            send_timeout_secs: 60,
            max_splice_pipes: 0,
            max_connections: 10_000,
            max_connections_per_client: 1000,
            max_sessions: 10_000,
            max_sessions_per_client: 100,
            demo: true,
            device: DeviceSection::default(),
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn limits(&self) -> crate::limits::Limits {
        use std::time::Duration;
        crate::limits::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            max_sessions: self.max_sessions,
            max_sessions_per_client: self.max_sessions_per_client,
            ..Default::default()
        }
    }

    pub fn device_config(&self) -> storage_device_sim::DeviceConfig {
        storage_device_sim::DeviceConfig {
            queue_depth: self.device.queue_depth,
            buffer_size: self.device.buffer_size,
            buffer_count: self.device.buffer_count,
            o_direct: self.device.o_direct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_keep_defaults_and_unknown_keys_fail() {
        let c = Config::from_toml("http_listen = \"127.0.0.1:9\"\n[device]\nqueue_depth = 8\n")
            .unwrap();
        assert_eq!(c.http_listen, "127.0.0.1:9");
        assert_eq!(c.device.queue_depth, 8);
        assert_eq!(c.device.buffer_count, 256);
        assert_eq!(c.store, PathBuf::from("./store"));
        assert!(Config::from_toml("htp_listen = 1").is_err());
    }
}
