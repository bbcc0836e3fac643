//! Batched RTP sends over UDP: one `sendmmsg(2)` per wake-up of a session, each message two
//! iovecs (the 12-byte RTP header and the payload, straight from the session's buffer), so a
//! burst of packets costs one system call and no copy into a packet buffer.
//!
//! Every session shares the server's one RTP socket (and one RTCP socket): the source port in
//! the `Transport` reply's `server_port` is the same for all, as in most RTSP servers, and one
//! socket per session would cost file descriptors for nothing.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// At most this many messages per `sendmmsg` call (the kernel caps at UIO_MAXIOV = 1024).
pub const MAX_BATCH: usize = 64;

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// One `sendmmsg` over `packets` (at most [`MAX_BATCH`]); the pointers live only inside.
fn sendmmsg_once(
    fd: std::os::fd::RawFd,
    ss: &libc::sockaddr_storage,
    ss_len: libc::socklen_t,
    packets: &[([u8; 12], &[u8])],
) -> io::Result<usize> {
    let mut iov: Vec<[libc::iovec; 2]> = packets
        .iter()
        .map(|(h, p)| {
            [
                libc::iovec {
                    iov_base: h.as_ptr() as *mut _,
                    iov_len: h.len(),
                },
                libc::iovec {
                    iov_base: p.as_ptr() as *mut _,
                    iov_len: p.len(),
                },
            ]
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = ss as *const _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = ss_len;
            m.msg_hdr.msg_iov = v.as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
            m
        })
        .collect();
    // SAFETY: msgs, iov, the headers, payloads and ss outlive the call; lengths match.
    let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends each `(header, payload)` as one datagram to `dest`, in order, waiting for the socket
/// when its buffer is full. Returns the number of datagrams sent.
pub async fn send_batch(
    socket: &UdpSocket,
    dest: SocketAddr,
    packets: &[([u8; 12], &[u8])],
) -> io::Result<usize> {
    let (ss, ss_len) = sockaddr(&dest);
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < packets.len() {
        let chunk = &packets[sent..packets.len().min(sent + MAX_BATCH)];
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || sendmmsg_once(fd, &ss, ss_len, chunk)) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_arrives_in_order_and_whole() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..150u8).map(|i| vec![i; 100 + i as usize]).collect();
        let packets: Vec<([u8; 12], &[u8])> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| ([i as u8; 12], p.as_slice()))
            .collect();
        assert_eq!(
            send_batch(&tx, rx.local_addr().unwrap(), &packets)
                .await
                .unwrap(),
            150
        );
        let mut buf = [0u8; 2048];
        for i in 0..150usize {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 12 + 100 + i);
            assert!(buf[..12].iter().all(|&b| b == i as u8));
            assert!(buf[12..n].iter().all(|&b| b == i as u8));
        }
    }
}
