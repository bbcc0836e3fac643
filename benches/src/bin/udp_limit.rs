//! `udp_limit`: the physical limit of the RTSP benchmark's packet rate on this machine — how many
//! RTP-sized datagrams one core can push through loopback when it does nothing else.
//!
//! ```text
//! udp_limit [--seconds 5] [--gso 1] [--batch 64] [--sender-core 0] [--receiver-core 1]
//!           [--pps-per-viewer 380]
//! udp_limit send PORT SECONDS GSO BATCH     (internal: the sender process)
//! ```
//!
//! The sender is a process of its own pinned to `--sender-core` (as the servers are in
//! `rtsp_vs_gst`): a loop of `sendmmsg` of `--batch` datagrams of 1,328 bytes (an RTP header
//! and seven TS packets, what the streamer sends) to one loopback socket, unpaced, with
//! nothing to read, nothing to build and no timer. With `--gso K` every message is one
//! `UDP_SEGMENT` send of K such datagrams (what UDP GSO would allow if K packets of a viewer
//! could leave at once). The receiver is this process on `--receiver-core`, reading the way
//! `rtspload` does: one socket with a 256 MiB buffer, `SO_TIMESTAMPNS`, `recvmmsg` of 64 with
//! only 16 bytes copied out. The sender's CPU is measured as the servers' is (`utime + stime`
//! of `/proc/PID/stat`), so loopback delivery costs the same on both sides of the comparison.
//!
//! Prints `LIMIT {json}`: datagrams sent and received per second, the sender's cores, datagrams
//! per sender core-second, and that divided by `--pps-per-viewer` (the content's RTP packets per
//! second per viewer): the most viewers one core could serve if a server cost nothing but its
//! sends. `rtsp_vs_gst` runs it in the same run and reports the streamer against it.

use anyhow::{Context, Result, anyhow, bail};
use sluice_benches::loadgen::proc_cpu_s;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An RTP header and seven TS packets.
const DGRAM: usize = 12 + 7 * 188;
/// Datagrams per `recvmmsg`, and bytes copied out of each (the RTP header).
const RX_BATCH: usize = 64;
const HDR: usize = 16;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("send") {
        let [_, port, secs, gso, batch] = args.as_slice() else {
            bail!("usage: udp_limit send PORT SECONDS GSO BATCH");
        };
        return send(port.parse()?, secs.parse()?, gso.parse()?, batch.parse()?);
    }
    let (mut seconds, mut gso, mut batch) = (5.0f64, 1usize, 64usize);
    let (mut sender_core, mut receiver_core, mut ppv) = (0u32, 1u32, 380.0f64);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => seconds = val()?.parse()?,
            "--gso" => gso = val()?.parse()?,
            "--batch" => batch = val()?.parse()?,
            "--sender-core" => sender_core = val()?.parse()?,
            "--receiver-core" => receiver_core = val()?.parse()?,
            "--pps-per-viewer" => ppv = val()?.parse()?,
            _ => bail!(
                "usage: udp_limit [--seconds S] [--gso K] [--batch B] [--sender-core C] \
                 [--receiver-core C] [--pps-per-viewer P]"
            ),
        }
    }
    if !(1..=64).contains(&gso) || !(1..=1024).contains(&batch) {
        bail!("--gso takes 1..=64 and --batch 1..=1024");
    }
    pin(receiver_core)?;
    let rx = receiver()?;
    let port = rx.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(sender_core.to_string())
        .arg(exe)
        .args(["send", &port.to_string(), &seconds.to_string()])
        .args([gso.to_string(), batch.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the sender (taskset)")?;
    let pid = child.id() as i32;
    // What counts is what arrived (the receiver's count) against the sender's CPU; the sender
    // prints what it sent on stderr.
    let t0 = Instant::now();
    let cpu0 = proc_cpu_s(pid).unwrap_or(0.0);
    let mut received = 0u64;
    let mut bufs = vec![[0u8; HDR]; RX_BATCH];
    let mut cmsg = vec![[0u64; 8]; RX_BATCH];
    let deadline = t0 + Duration::from_secs_f64(seconds + 10.0);
    let mut cpu_end = cpu0;
    let mut t_end = t0;
    loop {
        let n = recv_batch(&rx, &mut bufs, &mut cmsg);
        received += n as u64;
        if n == 0 {
            if let Some(c) = proc_cpu_s(pid) {
                cpu_end = c;
                t_end = Instant::now();
            }
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("sender failed: {st}");
    }
    let wall = (t_end - t0).as_secs_f64().max(1e-3);
    let cores = (cpu_end - cpu0) / wall;
    let per_core = received as f64 / (cpu_end - cpu0).max(1e-3);
    let line = format!(
        "{{\"gso\":{gso},\"batch\":{batch},\"received_pps\":{:.0},\"sender_cores\":{cores:.3},\
         \"pps_per_core\":{per_core:.0},\"viewers_per_core\":{:.0}}}",
        received as f64 / wall,
        per_core / ppv
    );
    println!("LIMIT {line}");
    eprintln!(
        "udp_limit: GSO {gso}, batch {batch}: {:.0} datagrams/s received, sender {cores:.2} cores \
         = {per_core:.0} datagrams per core-second = {:.0} viewers/core at {ppv} packets/s each",
        received as f64 / wall,
        per_core / ppv
    );
    Ok(())
}

fn pin(core: u32) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; CPU_SET writes within it; 0 is this thread.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        bail!(
            "pinning to core {core}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn set_int(fd: i32, level: i32, opt: i32, v: libc::c_int) -> i32 {
    // SAFETY: setsockopt reads an int from the pointer we pass.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    }
}

/// The receiving socket, set up as `rtspload` sets up its RTP socket.
fn receiver() -> Result<UdpSocket> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_nonblocking(true)?;
    let fd = rx.as_raw_fd();
    if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 256 << 20) != 0 {
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 256 << 20);
    }
    set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    Ok(rx)
}

/// One `recvmmsg` of up to 64 datagrams, 16 bytes and the timestamp of each copied out.
fn recv_batch(rx: &UdpSocket, bufs: &mut [[u8; HDR]], cmsg: &mut [[u64; 8]]) -> usize {
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: HDR,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .zip(cmsg.iter_mut())
        .map(|(v, c)| {
            // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = c.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = std::mem::size_of_val(c);
            m
        })
        .collect();
    // SAFETY: every message points at live buffers of the stated lengths.
    let n = unsafe {
        libc::recvmmsg(
            rx.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    n.max(0) as usize
}

/// The sender: `batch` messages per `sendmmsg`, each one datagram or one GSO send of `gso`.
fn send(port: u16, seconds: f64, gso: usize, batch: usize) -> Result<()> {
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(("127.0.0.1", port))?;
    let fd = tx.as_raw_fd();
    set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 16 << 20);
    let payload = vec![0x47u8; DGRAM * gso];
    // One control message per send: UDP_SEGMENT with the segment size.
    let mut ctl = vec![[0u64; 4]; batch];
    let mut iov: Vec<libc::iovec> = (0..batch)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: payload.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(batch);
    for (v, c) in iov.iter_mut().zip(ctl.iter_mut()) {
        // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
        if gso > 1 {
            m.msg_hdr.msg_control = c.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is arithmetic.
            m.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
            // SAFETY: the control buffer (32 bytes) holds one cmsghdr and a u16.
            unsafe {
                let h = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                (*h).cmsg_level = libc::SOL_UDP;
                (*h).cmsg_type = libc::UDP_SEGMENT;
                (*h).cmsg_len = libc::CMSG_LEN(2) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(h).cast::<u16>(), DGRAM as u16);
            }
        }
        msgs.push(m);
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    while Instant::now() < end {
        // SAFETY: msgs point at the payload, iovecs and control buffers, all alive.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch as u32, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
            return Err(e).context("sendmmsg");
        }
        sent += n as u64 * gso as u64;
    }
    eprintln!("udp_limit sender: {sent} datagrams in {seconds} s");
    Ok(())
}
