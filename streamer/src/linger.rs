//! Lingering close: after a refusal that ends a connection, read and drop what the client still
//! sends, bounded in bytes and time, before closing. Closing a socket with unread input makes
//! the kernel send a reset, which can destroy the answer before the client reads it (RFC 9112
//! §9.6 describes the same for HTTP). Shared by the HTTP and RTSP connections.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read and drop up to `max_bytes` from `rd`, for at most `max_time`, or until it ends.
pub async fn drain<R: AsyncRead + Unpin>(rd: &mut R, max_bytes: usize, max_time: Duration) {
    let work = async {
        let mut sink = [0u8; 16 << 10];
        let mut left = max_bytes;
        while left > 0 {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(max_time, work).await;
}
