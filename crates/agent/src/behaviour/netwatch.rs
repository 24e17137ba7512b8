//! Inbound connection attempts, for port-scan detection, and the decoy listeners of the
//! honeypot. A packet socket with a classic BPF filter passes only inbound TCP SYNs (IPv4 and
//! IPv6) to userspace, so a busy server's traffic never reaches the agent. Both can be opened
//! inside another network namespace (`[behaviour] netns` in agent.toml), where the services
//! are; the sockets stay bound to that namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::detect::scan::Probe;

/// Runs `f` on a thread that entered `netns` first (or the current one when None).
fn in_netns<T: Send + 'static>(
    netns: Option<PathBuf>,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            let file = std::fs::File::open(&ns).map_err(|e| format!("{}: {e}", ns.display()))?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {}: {e}", ns.display()))?;
        }
        f()
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_string())?
}

/// The classic BPF program: inbound (not PACKET_OUTGOING) TCP segments with SYN set and ACK
/// clear, over Ethernet framing; everything else is dropped in the kernel.
fn syn_filter() -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    vec![
        op(0x20, 0, 0, 0xffff_f004), // ld pkttype
        op(0x15, 15, 0, 4),          // == PACKET_OUTGOING -> drop
        op(0x28, 0, 0, 12),          // ldh ethertype
        op(0x15, 0, 6, 0x0800),      // IPv4? else -> v6 check
        op(0x30, 0, 0, 23),          // ldb ip proto
        op(0x15, 0, 11, 6),          // TCP? else drop
        op(0xb1, 0, 0, 14),          // ldxb 4*(ihl)
        op(0x50, 0, 0, 27),          // ldb [x+27]: TCP flags
        op(0x54, 0, 0, 0x12),        // and SYN|ACK
        op(0x15, 6, 7, 0x02),        // SYN only -> accept, else drop
        op(0x15, 0, 6, 0x86dd),      // IPv6? else drop
        op(0x30, 0, 0, 20),          // ldb next header
        op(0x15, 0, 4, 6),           // TCP (no extension headers)? else drop
        op(0x30, 0, 0, 67),          // ldb TCP flags
        op(0x54, 0, 0, 0x12),        // and SYN|ACK
        op(0x15, 0, 1, 0x02),        // SYN only -> accept
        op(0x06, 0, 0, 128),         // accept 128 bytes
        op(0x06, 0, 0, 0),           // drop
    ]
}

/// Opens the SYN socket (in `netns` when given).
pub fn open_syn_socket(netns: Option<PathBuf>) -> Result<OwnedFd, String> {
    in_netns(netns, || {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2); checked before owned.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if raw < 0 {
            return Err(format!(
                "packet socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: fresh descriptor, owned from here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let filter = syn_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points into `filter`, alive for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as u32,
            )
        };
        if rc != 0 {
            return Err(format!(
                "attaching the SYN filter: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(fd)
    })
}

/// Source and destination port of an Ethernet frame the filter passed.
pub fn parse_syn(frame: &[u8]) -> Option<(IpAddr, u16)> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    match ethertype {
        0x0800 => {
            let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
            let src: [u8; 4] = frame.get(26..30)?.try_into().ok()?;
            let t = 14 + ihl;
            let dport = u16::from_be_bytes(frame.get(t + 2..t + 4)?.try_into().ok()?);
            Some((IpAddr::V4(Ipv4Addr::from(src)), dport))
        }
        0x86dd => {
            let src: [u8; 16] = frame.get(22..38)?.try_into().ok()?;
            let dport = u16::from_be_bytes(frame.get(56..58)?.try_into().ok()?);
            Some((IpAddr::V6(Ipv6Addr::from(src)).to_canonical(), dport))
        }
        _ => None,
    }
}

/// Reads SYNs on the calling (dedicated) thread until the receiver goes away.
pub fn run_syn_reader(fd: OwnedFd, tx: mpsc::Sender<Probe>) {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: buf is live for the call.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %std::io::Error::last_os_error(), "SYN reader stopped");
            return;
        }
        let Some((source, port)) = parse_syn(&buf[..n as usize]) else {
            continue;
        };
        let probe = Probe {
            ts_ms: hostward_agent_core::util::unix_now_ms() as u64,
            source,
            port,
            honeypot: false,
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(probe) {
            return;
        }
    }
}

/// Decoy listeners on those of `ports` nothing listens on (in `netns` when given).
pub fn open_honeypots(
    netns: Option<PathBuf>,
    ports: Vec<u16>,
) -> Result<Vec<(u16, TcpListener)>, String> {
    in_netns(netns, move || {
        let mut out = Vec::new();
        for port in ports {
            // Dual-stack where the host allows it; IPv4 only where it does not.
            let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
                .or_else(|_| TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))));
            match l {
                Ok(l) => {
                    l.set_nonblocking(true).map_err(|e| e.to_string())?;
                    out.push((port, l));
                }
                // In use: a real service is there, which is no place for a decoy.
                Err(e) => tracing::info!(port, error = %e, "no decoy on this port"),
            }
        }
        Ok(out)
    })
}

/// Accepts and drops connections on a decoy, reporting each visitor.
pub async fn run_honeypot(port: u16, l: TcpListener, tx: mpsc::Sender<Probe>) {
    let Ok(l) = tokio::net::TcpListener::from_std(l) else {
        return;
    };
    loop {
        let Ok((conn, peer)) = l.accept().await else {
            continue;
        };
        drop(conn);
        let probe = Probe {
            ts_ms: hostward_agent_core::util::unix_now_ms() as u64,
            source: peer.ip().to_canonical(),
            port,
            honeypot: true,
        };
        if tx.send(probe).await.is_err() {
            return;
        }
    }
}

/// The namespace file of a `[behaviour] netns` setting: a name under /var/run/netns or a path.
pub fn netns_path(setting: &str) -> PathBuf {
    if setting.starts_with('/') {
        PathBuf::from(setting)
    } else {
        Path::new("/var/run/netns").join(setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_frames_parse() {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 79, 0, 2]);
        f[36..38].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(parse_syn(&f), Some(("10.79.0.2".parse().unwrap(), 22)));
        assert_eq!(parse_syn(&f[..20]), None);
        let mut g = vec![0u8; 14 + 40 + 20];
        g[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        g[22..38].copy_from_slice(&"fd79::2".parse::<Ipv6Addr>().unwrap().octets());
        g[56..58].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(parse_syn(&g), Some(("fd79::2".parse().unwrap(), 443)));
        assert_eq!(syn_filter().len(), 18);
    }
}
