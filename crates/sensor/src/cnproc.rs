//! The netlink proc connector. The fallback tier where BPF is unusable: it tells fork, exec and
//! exit by pid, and [`crate::procfs`] reads the rest from `/proc` while the process still
//! lives. Every tier: credential changes (reported from `commit_creds`, so a kernel exploit's
//! too, not only set*id calls) and ptrace attaches, which no tracepoint reports and which cost
//! nothing per system call this way.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::event::{Event, Task};
use crate::{Counters, procfs};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const NLMSG_DONE: u16 = 3;

const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_UID: u32 = 0x4;
const PROC_EVENT_GID: u32 = 0x40;
const PROC_EVENT_PTRACE: u32 = 0x100;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Header sizes: nlmsghdr (16) + cn_msg (20); proc_event's data starts 16 bytes further.
const EVENT_AT: usize = 36;
const DATA_AT: usize = EVENT_AT + 16;

/// The event filter of a listen request (`enum proc_cn_event`): credential changes and ptrace.
const CREDS_AND_PTRACE: u32 = PROC_EVENT_UID | PROC_EVENT_GID | PROC_EVENT_PTRACE;

/// What a listener asks the connector for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    All,
    /// Credential changes and ptrace only (beside the BPF tier, which has the rest).
    CredsAndPtrace,
}

pub struct Listener {
    fd: OwnedFd,
    events: Events,
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether the running kernel filters connector events per listener (Linux 6.6+): an older one
/// drops a listen request of the newer size, so it gets the old one and everything is sent.
fn kernel_filters() -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = u.release().to_string_lossy().into_owned();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse::<u32>().ok());
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (6, 6)
}

/// Subscribes to process events; fails without CAP_NET_ADMIN or without the connector.
pub fn listen(events: Events) -> Result<Listener, String> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_CONNECTOR,
        )
    };
    if raw < 0 {
        return Err(format!(
            "proc connector socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a fresh, valid descriptor we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data; zeroed is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = CN_IDX_PROC;
    // SAFETY: sa lives for the call and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(format!(
            "proc connector bind: {}",
            std::io::Error::last_os_error()
        ));
    }
    // struct proc_input { mcast_op, event_type } where the kernel filters, else the bare op.
    let filter = (events == Events::CredsAndPtrace && kernel_filters()).then_some(CREDS_AND_PTRACE);
    let data_len: u16 = if filter.is_some() { 8 } else { 4 };
    let mut msg = Vec::with_capacity(44);
    msg.extend_from_slice(&(36 + u32::from(data_len)).to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&data_len.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    if let Some(f) = filter {
        msg.extend_from_slice(&f.to_ne_bytes());
    }
    // SAFETY: msg is a live buffer of the given length.
    let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(format!(
            "proc connector listen: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(Listener { fd, events })
}

/// One proc connector message, decoded: what happened to which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {
    Fork {
        parent: u32,
        child: u32,
    },
    Exec {
        pid: u32,
    },
    Exit {
        pid: u32,
        code: i32,
    },
    /// The process's uid or gid changed (commit_creds reports every change, set*id or not).
    Creds {
        pid: u32,
    },
    /// `tracer` attached to `target`.
    Ptrace {
        target: u32,
        tracer: u32,
    },
    Other,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one datagram; None when it is too short for what it claims.
pub fn decode(b: &[u8]) -> Option<Raw> {
    let what = u32_at(b, EVENT_AT)?;
    Some(match what {
        // fork: parent_pid, parent_tgid, child_pid, child_tgid
        PROC_EVENT_FORK => {
            let child_pid = u32_at(b, DATA_AT + 8)?;
            let child = u32_at(b, DATA_AT + 12)?;
            if child_pid != child {
                return Some(Raw::Other); // a new thread
            }
            Raw::Fork {
                parent: u32_at(b, DATA_AT + 4)?,
                child,
            }
        }
        PROC_EVENT_EXEC => Raw::Exec {
            pid: u32_at(b, DATA_AT + 4)?,
        },
        PROC_EVENT_EXIT => {
            let pid = u32_at(b, DATA_AT)?;
            let tgid = u32_at(b, DATA_AT + 4)?;
            if pid != tgid {
                return Some(Raw::Other);
            }
            Raw::Exit {
                pid: tgid,
                code: u32_at(b, DATA_AT + 8)? as i32,
            }
        }
        // id: process_pid, process_tgid, ruid or rgid, euid or egid; each thread of a
        // process changes its own credentials: the leader's stands for the process.
        PROC_EVENT_UID | PROC_EVENT_GID => {
            let pid = u32_at(b, DATA_AT)?;
            let tgid = u32_at(b, DATA_AT + 4)?;
            if pid != tgid {
                return Some(Raw::Other);
            }
            Raw::Creds { pid: tgid }
        }
        // ptrace: process_pid, process_tgid, tracer_pid, tracer_tgid (0 on detach)
        PROC_EVENT_PTRACE => {
            let target = u32_at(b, DATA_AT + 4)?;
            let tracer = u32_at(b, DATA_AT + 12)?;
            if tracer == 0 {
                return Some(Raw::Other);
            }
            Raw::Ptrace { target, tracer }
        }
        _ => Raw::Other,
    })
}

impl Listener {
    /// Reads every waiting datagram (the socket is non-blocking) into `out`; Err when the
    /// socket failed for good.
    pub fn drain(
        &self,
        proc: &Path,
        counters: &Counters,
        buf: &mut [u8],
        out: &mut Vec<Event>,
    ) -> std::io::Result<()> {
        loop {
            // SAFETY: buf is a live buffer of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    // The socket overflowed: the kernel dropped an unknown number.
                    Some(libc::ENOBUFS) => {
                        counters.dropped_kernel.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
            let ts_ns = crate::boot_ns();
            let raw = decode(&buf[..n as usize]);
            if self.events == Events::CredsAndPtrace
                && matches!(
                    raw,
                    Some(Raw::Fork { .. } | Raw::Exec { .. } | Raw::Exit { .. })
                )
            {
                continue; // an old kernel that sends everything: BPF has these
            }
            counters.seen_kernel.fetch_add(1, Ordering::Relaxed);
            let ev = match raw {
                // The connector tells no credentials with a fork: they are marked unknown,
                // and changes come as their own events (Raw::Creds).
                Some(Raw::Fork { parent, child }) => Some(Event::Fork {
                    ts_ns,
                    task: Task::unknown(parent),
                    child,
                }),
                Some(Raw::Exec { pid }) => procfs::exec(proc, pid, ts_ns)
                    .map(|e| Event::Exec(Box::new(e)))
                    .or_else(|| {
                        counters.incomplete.fetch_add(1, Ordering::Relaxed);
                        None
                    }),
                Some(Raw::Exit { pid, code }) => Some(Event::Exit { ts_ns, pid, code }),
                Some(Raw::Creds { pid }) => procfs::task(proc, pid)
                    .map(|task| Event::Creds { ts_ns, task })
                    .or_else(|| {
                        counters.incomplete.fetch_add(1, Ordering::Relaxed);
                        None
                    }),
                Some(Raw::Ptrace { target, tracer }) => Some(Event::Ptrace {
                    ts_ns,
                    task: procfs::task(proc, tracer).unwrap_or(Task::unknown(tracer)),
                    target,
                    request: "attach".into(),
                    result: 0,
                }),
                Some(Raw::Other) => None,
                None => {
                    counters.undecodable.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            out.extend(ev);
        }
    }

    /// The proc tier: runs until the receiver is dropped.
    pub async fn run(self, proc: PathBuf, tx: mpsc::Sender<Event>, counters: Arc<Counters>) {
        // SAFETY: the socket is owned by the listener, which the AsyncFd owns and drops
        // (deregistering first); nothing else closes it.
        let fd = match unsafe { AsyncFd::register_with_interest(self, Interest::READABLE) } {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "sensor: cannot poll the proc connector");
                return;
            }
        };
        let mut buf = vec![0u8; 8192];
        let mut events = Vec::new();
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            if let Err(e) = fd.get_ref().drain(&proc, &counters, &mut buf, &mut events) {
                tracing::error!(error = %e, "sensor: proc connector read failed");
                return;
            }
            guard.clear_ready();
            if !send(&tx, &counters, events.drain(..)) {
                return;
            }
        }
    }
}

/// Hands events on; false once the receiver is gone.
pub(crate) fn send(
    tx: &mpsc::Sender<Event>,
    counters: &Counters,
    events: impl Iterator<Item = Event>,
) -> bool {
    for ev in events {
        match tx.try_send(ev) {
            Ok(()) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.dropped_user.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(what: u32, data: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; EVENT_AT];
        b.extend_from_slice(&what.to_ne_bytes());
        b.extend_from_slice(&[0u8; 12]);
        for d in data {
            b.extend_from_slice(&d.to_ne_bytes());
        }
        b
    }

    #[test]
    fn messages_decode_and_threads_are_not_processes() {
        assert_eq!(
            decode(&msg(PROC_EVENT_FORK, &[10, 10, 11, 11])),
            Some(Raw::Fork {
                parent: 10,
                child: 11
            })
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_FORK, &[10, 10, 12, 11])),
            Some(Raw::Other)
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_EXEC, &[11, 11])),
            Some(Raw::Exec { pid: 11 })
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_EXIT, &[11, 11, 256, 17])),
            Some(Raw::Exit { pid: 11, code: 256 })
        );
        assert_eq!(decode(&msg(PROC_EVENT_EXEC, &[11])), None);
        assert_eq!(
            decode(&msg(PROC_EVENT_UID, &[11, 11, 1000, 0])),
            Some(Raw::Creds { pid: 11 })
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_GID, &[12, 11, 0, 0])),
            Some(Raw::Other)
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_PTRACE, &[11, 11, 20, 20])),
            Some(Raw::Ptrace {
                target: 11,
                tracer: 20
            })
        );
        assert_eq!(
            decode(&msg(PROC_EVENT_PTRACE, &[11, 11, 0, 0])),
            Some(Raw::Other)
        );
        assert_eq!(decode(&[1, 2, 3]), None);
    }
}
