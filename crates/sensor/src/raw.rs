//! The BPF program's records (`bpf/sensor.bpf.c`) as `#[repr(C)]` mirrors, and their decoding
//! into [`Event`]s. Pure: a record that is too short or of an unknown kind is an error naming
//! it, never a panic (`fuzz/fuzz_targets/sensor_record.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::event::{Connect, Event, Exec, Fd, Proto, Task};

const EV_EXEC: u32 = 1;
const EV_FORK: u32 = 2;
const EV_EXIT: u32 = 3;
const EV_CONNECT: u32 = 4;
const EV_KILLED: u32 = 5;
// 6 and 7 are not used: credential changes and ptrace come from the proc connector.
const EV_MEMFD: u32 = 8;
const EV_ACCEPT: u32 = 9;
const EV_MODULE: u32 = 10;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct FdInfo {
    mode: u32,
    family: u16,
    sock_type: u16,
    dport: u16,
    sport: u16,
    pad: u32,
    ino: u64,
    daddr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct TaskInfo {
    pid: u32,
    ppid: u32,
    sid: u32,
    uid: u32,
    euid: u32,
    gid: u32,
    egid: u32,
    p_euid: u32,
    comm: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ExecEvent {
    kind: u32,
    argv_len: u32,
    ts_ns: u64,
    t: TaskInfo,
    ino: u64,
    dev: u32,
    mode: u32,
    nlink: u32,
    cwd_parts: u32,
    fds: [FdInfo; 3],
    pfds: [FdInfo; 3],
    tty: [u8; 32],
    filename: [u8; 256],
    name: [u8; 64],
    cwd: [[u8; 32]; 8],
    argv: [u8; 512],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SmallEvent {
    kind: u32,
    code: u32,
    ts_ns: u64,
    t: TaskInfo,
    child: u32,
    family: u16,
    dport: u16,
    daddr: [u8; 16],
    sport: u16,
    pad: [u16; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SysEvent {
    kind: u32,
    ret: i32,
    ts_ns: u64,
    t: TaskInfo,
    flags: u64,
    fd: FdInfo,
    name: [u8; 64],
}

/// Sizes the C compiler gives the same structs (checked against the object's BTF in tests).
pub const EXEC_SIZE: usize = std::mem::size_of::<ExecEvent>();
pub const SMALL_SIZE: usize = std::mem::size_of::<SmallEvent>();
pub const SYS_SIZE: usize = std::mem::size_of::<SysEvent>();

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("sensor record: {0} bytes is too short for its kind {1}")]
    Short(usize, u32),
    #[error("sensor record: unknown kind {0}")]
    Kind(u32),
}

fn read<T: Copy>(b: &[u8], kind: u32) -> Result<T, DecodeError> {
    if b.len() < std::mem::size_of::<T>() {
        return Err(DecodeError::Short(b.len(), kind));
    }
    // SAFETY: the length is checked above and T is a plain-old-data #[repr(C)] struct of
    // integers and byte arrays, valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

/// Decodes one ring buffer record.
pub fn decode(b: &[u8]) -> Result<Event, DecodeError> {
    let Some(kind) = b
        .get(..4)
        .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
    else {
        return Err(DecodeError::Short(b.len(), 0));
    };
    match kind {
        EV_EXEC | EV_KILLED => {
            let e: ExecEvent = read(b, kind)?;
            let exec = Box::new(exec(&e));
            Ok(if kind == EV_EXEC {
                Event::Exec(exec)
            } else {
                Event::Killed(exec)
            })
        }
        EV_FORK | EV_EXIT | EV_CONNECT => {
            let e: SmallEvent = read(b, kind)?;
            Ok(match kind {
                EV_FORK => Event::Fork {
                    ts_ns: e.ts_ns,
                    task: task(&e.t),
                    child: e.child,
                },
                EV_EXIT => Event::Exit {
                    ts_ns: e.ts_ns,
                    pid: e.t.pid,
                    // The kernel's exit_code: status << 8, or the signal number.
                    code: e.code as i32,
                },
                _ => Event::Connect(Connect {
                    ts_ns: e.ts_ns,
                    task: task(&e.t),
                    proto: Proto::Tcp,
                    peer: SocketAddr::new(
                        addr(e.family, &e.daddr).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        u16::from_be(e.dport),
                    ),
                    local_port: e.sport,
                }),
            })
        }
        EV_MEMFD..=EV_MODULE => {
            let e: SysEvent = read(b, kind)?;
            let (ts_ns, task) = (e.ts_ns, task(&e.t));
            Ok(match kind {
                EV_MEMFD => Event::Memfd {
                    ts_ns,
                    task,
                    name: cstr(&e.name),
                    flags: e.flags as u32,
                },
                EV_ACCEPT => Event::Accept(Connect {
                    ts_ns,
                    task,
                    proto: Proto::Tcp,
                    peer: SocketAddr::new(
                        addr(e.fd.family, &e.fd.daddr).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        u16::from_be(e.fd.dport),
                    ),
                    local_port: e.fd.sport,
                }),
                _ => Event::Module {
                    ts_ns,
                    task,
                    file: cstr(&e.name),
                    result: e.ret,
                },
            })
        }
        k => Err(DecodeError::Kind(k)),
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn task(t: &TaskInfo) -> Task {
    Task {
        pid: t.pid,
        ppid: t.ppid,
        sid: t.sid,
        uid: t.uid,
        euid: t.euid,
        gid: t.gid,
        egid: t.egid,
        parent_euid: t.p_euid,
        comm: cstr(&t.comm),
    }
}

fn addr(family: u16, a: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a)).to_canonical()),
        _ => None,
    }
}

fn fd(f: &FdInfo) -> Fd {
    match f.mode {
        0 => Fd::Closed,
        0o140000 if matches!(f.family, AF_INET | AF_INET6) => Fd::Inet {
            proto: match f.sock_type {
                SOCK_STREAM => Proto::Tcp,
                SOCK_DGRAM => Proto::Udp,
                _ => Proto::Raw,
            },
            peer: addr(f.family, &f.daddr)
                .filter(|ip| !ip.is_unspecified())
                .map(|ip| SocketAddr::new(ip, u16::from_be(f.dport))),
        },
        0o140000 => Fd::Socket,
        0o010000 => Fd::Pipe { ino: f.ino },
        0o020000 => Fd::Char,
        0o100000 => Fd::File,
        _ => Fd::Other,
    }
}

fn exec(e: &ExecEvent) -> Exec {
    let argv_len = (e.argv_len as usize).min(e.argv.len());
    let argv: Vec<String> = e.argv[..argv_len]
        .split(|&c| c == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // The args end with a NUL, which leaves one empty string; a cut-off last arg keeps its part.
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    // Innermost first, at most 8; more than 8 means the walk was cut: say so with a leading "…".
    let parts = (e.cwd_parts as usize).min(8);
    let mut cwd = String::new();
    if e.cwd_parts as usize > 8 {
        cwd.push('…');
    }
    for p in e.cwd[..parts].iter().rev() {
        cwd.push('/');
        cwd.push_str(&cstr(p));
    }
    if cwd.is_empty() {
        cwd.push('/');
    }
    let tty = cstr(&e.tty);
    Exec {
        ts_ns: e.ts_ns,
        task: task(&e.t),
        filename: cstr(&e.filename),
        file_name: cstr(&e.name),
        ino: e.ino,
        dev: e.dev,
        mode: e.mode,
        nlink: e.nlink,
        argv,
        cwd: Some(cwd),
        tty: (!tty.is_empty()).then_some(tty),
        fds: [fd(&e.fds[0]), fd(&e.fds[1]), fd(&e.fds[2])],
        parent_fds: [fd(&e.pfds[0]), fd(&e.pfds[1]), fd(&e.pfds[2])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        // bpf/sensor.bpf.c: struct exec_event and struct small_event, as clang lays them out.
        assert_eq!(EXEC_SIZE, 1448);
        assert_eq!(SMALL_SIZE, 96);
        assert_eq!(SYS_SIZE, 176);
    }

    fn bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is one of the plain #[repr(C)] records above.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    #[test]
    fn an_exec_record_decodes_with_its_socket_descriptors() {
        // SAFETY: all-zero is valid for these integer structs.
        let mut e: ExecEvent = unsafe { std::mem::zeroed() };
        e.kind = EV_EXEC;
        e.t.pid = 42;
        e.t.ppid = 7;
        e.t.comm[..4].copy_from_slice(b"bash");
        e.filename[..9].copy_from_slice(b"/bin/bash");
        let argv = b"bash\0-i\0";
        e.argv[..argv.len()].copy_from_slice(argv);
        e.argv_len = argv.len() as u32;
        e.cwd_parts = 2;
        e.cwd[0][..3].copy_from_slice(b"tmp");
        e.cwd[1][..3].copy_from_slice(b"var");
        e.fds[0] = FdInfo {
            mode: 0o140000,
            family: AF_INET,
            sock_type: SOCK_STREAM,
            dport: 4444u16.to_be(),
            sport: 50000,
            pad: 0,
            ino: 9,
            daddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        e.fds[1].mode = 0o020000;
        let Event::Exec(x) = decode(&bytes(&e)).unwrap() else {
            panic!("not an exec")
        };
        assert_eq!(x.task.comm, "bash");
        assert_eq!(x.argv, ["bash", "-i"]);
        assert_eq!(x.cwd.as_deref(), Some("/var/tmp"));
        assert_eq!(x.fds[0].peer(), Some("127.0.0.1:4444".parse().unwrap()));
        assert_eq!(x.fds[1], Fd::Char);
        assert_eq!(x.fds[2], Fd::Closed);
        assert_eq!(x.exe(), "/bin/bash");
    }

    #[test]
    fn system_call_records_decode() {
        // SAFETY: all-zero is valid for these integer structs.
        let mut e: SysEvent = unsafe { std::mem::zeroed() };
        e.kind = 7;
        assert_eq!(decode(&bytes(&e)), Err(DecodeError::Kind(7)));
        e.kind = EV_MEMFD;
        e.t.pid = 50;
        e.name[..4].copy_from_slice(b"evil");
        e.flags = 1;
        assert!(matches!(
            decode(&bytes(&e)).unwrap(),
            Event::Memfd { ref name, flags: 1, .. } if name == "evil"
        ));
        e.kind = EV_ACCEPT;
        e.fd.family = AF_INET6;
        e.fd.daddr = Ipv6Addr::LOCALHOST.octets();
        e.fd.dport = 40000u16.to_be();
        e.fd.sport = 22;
        let Event::Accept(c) = decode(&bytes(&e)).unwrap() else {
            panic!("not an accept")
        };
        assert_eq!((c.peer, c.local_port), ("[::1]:40000".parse().unwrap(), 22));
        e.kind = EV_MODULE;
        e.ret = -38;
        assert!(matches!(
            decode(&bytes(&e)).unwrap(),
            Event::Module { ref file, result: -38, .. } if file == "evil"
        ));
        assert_eq!(
            decode(&bytes(&e)[..100]),
            Err(DecodeError::Short(100, EV_MODULE))
        );
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert_eq!(decode(&[]), Err(DecodeError::Short(0, 0)));
        assert_eq!(decode(&[1, 0, 0, 0, 9]), Err(DecodeError::Short(5, 1)));
        assert_eq!(decode(&[99, 0, 0, 0]), Err(DecodeError::Kind(99)));
    }
}
