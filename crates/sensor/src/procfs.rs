//! What the fallback tier learns of a process from `/proc` after the kernel told it only a pid:
//! a function of the proc root, so tests read fixture trees. A process gone before it is read
//! yields None (the proc connector's known race: 2 % to over 50 % of short-lived processes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::event::{Exec, Fd, Proto, Task};

/// The process's task fields from `status` and `stat`.
pub fn task(proc: &Path, pid: u32) -> Option<Task> {
    let dir = proc.join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let uids = ids("Uid:");
    let gids = ids("Gid:");
    let ppid = ids("PPid:").first().copied().unwrap_or(0);
    let comm = status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
    // Fields after the parenthesised comm, which may itself hold spaces and parentheses.
    let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let sid = fields.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let parent_euid = if ppid > 0 {
        std::fs::read_to_string(proc.join(ppid.to_string()).join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    } else {
        0
    };
    Some(Task {
        pid,
        ppid,
        sid,
        uid: uids.first().copied().unwrap_or(0),
        euid: uids.get(1).copied().unwrap_or(0),
        gid: gids.first().copied().unwrap_or(0),
        egid: gids.get(1).copied().unwrap_or(0),
        parent_euid,
        comm,
    })
}

/// An exec event rebuilt from `/proc/<pid>`.
pub fn exec(proc: &Path, pid: u32, ts_ns: u64) -> Option<Exec> {
    let dir = proc.join(pid.to_string());
    let task = task(proc, pid)?;
    let exe_link = std::fs::read_link(dir.join("exe")).ok()?;
    let exe_text = exe_link.to_string_lossy().into_owned();
    let deleted = exe_text.ends_with(" (deleted)");
    let exe = exe_text.trim_end_matches(" (deleted)").to_string();
    let meta = std::fs::metadata(dir.join("exe")).ok();
    let argv: Vec<String> = std::fs::read(dir.join("cmdline"))
        .unwrap_or_default()
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(dir.join("cwd"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let fds = fds(proc, pid);
    let tty = std::fs::read_link(dir.join("fd/0"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with("/dev/pts/") || p.starts_with("/dev/tty"))
        .map(|p| p.trim_start_matches("/dev/").to_string());
    let parent_fds = fds_or_closed(proc, task.ppid);
    let file_name = exe.rsplit('/').next().unwrap_or("").to_string();
    Some(Exec {
        ts_ns,
        filename: exe.clone(),
        file_name,
        ino: meta.as_ref().map(|m| m.ino()).unwrap_or(0),
        dev: meta.as_ref().map(|m| kernel_dev(m.dev())).unwrap_or(0),
        mode: meta.as_ref().map(|m| m.mode()).unwrap_or(0),
        nlink: if deleted {
            0
        } else {
            meta.as_ref().map(|m| m.nlink() as u32).unwrap_or(1)
        },
        argv,
        cwd,
        tty,
        fds,
        parent_fds,
        task,
    })
}

/// The kernel's `s_dev` (major << 20 | minor) from a userspace st_dev, as BPF maps key on it.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
    let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
    ((major << 20) | minor) as u32
}

fn fds_or_closed(proc: &Path, pid: u32) -> [Fd; 3] {
    if pid == 0 {
        return Default::default();
    }
    fds(proc, pid)
}

fn fds(proc: &Path, pid: u32) -> [Fd; 3] {
    let dir = proc.join(pid.to_string());
    let one = |n: u32| -> Fd {
        let Ok(link) = std::fs::read_link(dir.join(format!("fd/{n}"))) else {
            return Fd::Closed;
        };
        let l = link.to_string_lossy();
        if let Some(ino) = l
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        {
            return inet_socket(&dir, ino).unwrap_or(Fd::Socket);
        }
        if let Some(ino) = l.strip_prefix("pipe:[").and_then(|s| s.strip_suffix(']')) {
            return Fd::Pipe {
                ino: ino.parse().unwrap_or(0),
            };
        }
        if l.starts_with("/dev/") {
            return Fd::Char;
        }
        if l.starts_with('/') {
            return Fd::File;
        }
        Fd::Other
    };
    [one(0), one(1), one(2)]
}

/// Finds a socket inode in the process's own network namespace tables.
fn inet_socket(dir: &Path, ino: u64) -> Option<Fd> {
    for (table, proto) in [
        ("net/tcp", Proto::Tcp),
        ("net/tcp6", Proto::Tcp),
        ("net/udp", Proto::Udp),
        ("net/udp6", Proto::Udp),
    ] {
        let Ok(text) = std::fs::read_to_string(dir.join(table)) else {
            continue;
        };
        if let Some(peer) = find_inode(&text, ino) {
            return Some(Fd::Inet {
                proto,
                peer: peer.filter(|p| !p.ip().is_unspecified()),
            });
        }
    }
    None
}

/// Scans a `/proc/net/{tcp,udp}{,6}` table for an inode: Some(peer) when found.
pub fn find_inode(table: &str, ino: u64) -> Option<Option<SocketAddr>> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[9].parse::<u64>().ok() != Some(ino) {
            continue;
        }
        return Some(parse_addr(f[2]));
    }
    None
}

/// `0100007F:115C` (IPv4, little-endian words) or the 32-digit IPv6 form.
pub fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut b = [0u8; 16];
            for (i, w) in b.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                w.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(
            parse_addr("0100007F:115C"),
            Some("127.0.0.1:4444".parse().unwrap())
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0016"),
            Some("[::1]:22".parse().unwrap())
        );
        assert_eq!(parse_addr("zz:1"), None);
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:C350 0100007F:115C 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(
            find_inode(table, 4242),
            Some(Some("127.0.0.1:4444".parse().unwrap()))
        );
        assert_eq!(find_inode(table, 1), None);
    }

    #[test]
    fn a_fixture_process_reads_with_its_socket_and_parent() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let me = p.join("100");
        std::fs::create_dir_all(me.join("fd")).unwrap();
        std::fs::create_dir_all(me.join("net")).unwrap();
        std::fs::write(
            me.join("status"),
            "Name:\tbash\nPPid:\t50\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        std::fs::write(me.join("stat"), "100 (ba sh) S 50 100 77 0").unwrap();
        std::fs::write(me.join("cmdline"), b"bash\0-i\0").unwrap();
        std::os::unix::fs::symlink("/bin/sh", me.join("exe")).unwrap();
        std::os::unix::fs::symlink("/tmp", me.join("cwd")).unwrap();
        std::os::unix::fs::symlink("socket:[4242]", me.join("fd/0")).unwrap();
        std::os::unix::fs::symlink("pipe:[5]", me.join("fd/1")).unwrap();
        std::fs::write(me.join("net/tcp"), "hdr\n   0: 0100007F:C350 0100007F:115C 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1\n").unwrap();
        let parent = p.join("50");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(
            parent.join("status"),
            "Name:\tpython3\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        let e = exec(p, 100, 9).unwrap();
        assert_eq!(e.task.ppid, 50);
        assert_eq!(e.task.sid, 77);
        assert_eq!(
            (e.task.uid, e.task.euid, e.task.parent_euid),
            (1000, 0, 1000)
        );
        assert_eq!(e.argv, ["bash", "-i"]);
        assert_eq!(e.cwd.as_deref(), Some("/tmp"));
        assert_eq!(e.fds[0].peer(), Some("127.0.0.1:4444".parse().unwrap()));
        assert_eq!(e.fds[1], Fd::Pipe { ino: 5 });
        assert_eq!(e.parent_fds[0], Fd::Closed);
        assert!(exec(p, 101, 9).is_none(), "a process gone is None");
    }

    #[test]
    fn kernel_dev_matches_the_kernel_encoding() {
        // st_dev 8:1 (sda1) -> s_dev (8 << 20) | 1.
        assert_eq!(kernel_dev(nix::sys::stat::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(
            kernel_dev(nix::sys::stat::makedev(259, 65536)),
            (259 << 20) | 65536
        );
    }
}
