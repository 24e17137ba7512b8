//! Process behaviour at exec: reverse shells, privilege escalation, fileless execution.

use hostward_sensor::{Exec, Fd, Task};

use super::{Compiled, Finding, is_interpreter, is_relay, is_shell, name_of};
use crate::behaviour::table::Table;

fn describe(fd: &Fd) -> String {
    match fd {
        Fd::Inet { proto, peer } => match peer {
            Some(p) => format!("{proto} socket to {p}"),
            None => format!("{proto} socket"),
        },
        Fd::Socket => "unix socket".into(),
        Fd::Pipe { .. } => "pipe".into(),
        Fd::Char => "terminal or device".into(),
        Fd::File => "file".into(),
        Fd::Closed => "closed".into(),
        Fd::Other => "other".into(),
    }
}

/// A shell or interpreter whose standard input and output are an internet socket (bash
/// `/dev/tcp`, `nc -e`, a dup2 in python/perl/php/ruby), or whose parent's are (a pty spawned
/// by such a process: python `pty.spawn`), or that a socket relay started (`socat exec:`).
/// Some(relay pid) when the finding pushed is a relay's shell whose connection is not seen yet:
/// `socat exec:… tcp:…` starts the shell before it connects, so the peer comes later.
pub fn reverse_shell(cfg: &Compiled, e: &Exec, t: &Table, out: &mut Vec<Finding>) -> Option<u32> {
    if !cfg.on("reverse_shell") {
        return None;
    }
    let exe = e.exe();
    let name = name_of(&exe);
    let names = ["stdin", "stdout", "stderr"];
    let own = e.fds[0].is_inet() && (e.fds[1].is_inet() || e.fds[2].is_inet());
    // Any program, whatever its name (a renamed shell), run on a connection this process or an
    // ancestor opened outwards: inbound services (inetd, socket activation) accepted theirs.
    let dialled = own
        && e.fds[0].peer().is_some_and(|peer| {
            t.get(e.task.pid)
                .is_some_and(|p| p.connections.contains(&peer))
                || t.ancestors(e.task.pid)
                    .iter()
                    .any(|a| a.connections.contains(&peer))
        });
    if !is_shell(name) && !is_interpreter(name) && !dialled {
        return None;
    }
    let parent =
        e.parent_fds[0].is_inet() && (e.parent_fds[1].is_inet() || e.parent_fds[2].is_inet());
    let parent_proc = t.get(e.task.ppid);
    // A relay's child shell: the relay's own connection is the peer, when we saw it.
    let relay = is_shell(name)
        && parent_proc.is_some_and(|p| {
            is_relay(p.name()) || is_relay(&p.argv.first().cloned().unwrap_or_default())
        });
    if !own && !parent && !relay {
        return None;
    }
    let mut details = Vec::new();
    let mut waits_for = None;
    let (peer, how) = if own {
        for (i, fd) in e.fds.iter().enumerate() {
            details.push(format!("{} is a {}", names[i], describe(fd)));
        }
        (
            e.fds.iter().find_map(Fd::peer),
            "its standard input and output are a network socket",
        )
    } else if parent {
        for (i, fd) in e.parent_fds.iter().enumerate() {
            details.push(format!("parent's {} is a {}", names[i], describe(fd)));
        }
        details.push(format!("{} is a {}", names[0], describe(&e.fds[0])));
        (
            e.parent_fds.iter().find_map(Fd::peer),
            "its parent relays a network socket to it (through a pty or pipes)",
        )
    } else {
        let p = parent_proc.expect("relay has a parent");
        details.push(format!("started by {} ({})", p.exe, p.command_line()));
        waits_for = p.connections.is_empty().then_some(p.pid);
        (p.connections.last().copied(), "a socket relay started it")
    };
    details.insert(0, format!("{name} started and {how}"));
    let dialler = peer.and_then(|peer| {
        std::iter::once(t.get(e.task.pid))
            .flatten()
            .chain(t.ancestors(e.task.pid))
            .find(|p| p.connections.contains(&peer))
            .map(|p| p.pid)
    });
    out.push(Finding {
        alarm_type: "reverse_shell",
        key: match peer {
            Some(p) => format!("{exe} -> {p}"),
            None => exe.clone(),
        },
        pid: e.task.pid,
        peer,
        details,
        isolate: true,
        dialler,
        ..Default::default()
    });
    waits_for
}

/// A process raised to root by a set-user-ID program not on the allowed list, or that became
/// root with no set-user-ID program at all (the mark of a kernel exploit).
pub fn privilege_escalation(cfg: &Compiled, e: &Exec, table: &Table, out: &mut Vec<Finding>) {
    if !cfg.on("privilege_escalation") {
        return;
    }
    let t = &e.task;
    if t.euid != 0 || t.parent_euid == 0 {
        return;
    }
    let exe = e.exe();
    if e.setuid() {
        if cfg.policy.suid_allowed.contains(&exe) {
            return;
        }
        out.push(Finding {
            alarm_type: "process_privilege_escalation",
            key: exe.clone(),
            pid: t.pid,
            file: Some(exe.clone()),
            details: vec![
                format!(
                    "euid {} -> 0 by running set-user-ID {exe} (mode {:o}), which is not on the allowed list",
                    t.parent_euid,
                    e.mode & 0o7777
                ),
                format!("real uid {}", t.uid),
            ],
            isolate: true,
            ..Default::default()
        });
    } else {
        // Root already before this exec (a set-user-ID shell running `id` in place): the
        // escalation was its own exec, reported then.
        // Unknown before: nothing to compare with, no alarm.
        let prev = table.get(e.task.pid).and_then(|p| p.prev_euid);
        if prev.is_none_or(|u| u == 0) {
            return;
        }
        out.push(Finding {
            alarm_type: "process_privilege_escalation",
            key: format!("no-suid {exe}"),
            pid: t.pid,
            details: vec![format!(
                "runs as root (euid 0) while its parent runs as euid {}, and {exe} is not set-user-ID: root was gained without a privileged program",
                t.parent_euid
            )],
            ..Default::default()
        });
    }
}

/// A process whose credentials the table knew as non-root shows euid 0 with no exec between:
/// the kernel gave it root in place (`commit_creds` from an exploit).
pub fn cred_change(cfg: &Compiled, task: &Task, t: &Table, out: &mut Vec<Finding>) {
    if !cfg.on("privilege_escalation") || task.euid != 0 {
        return;
    }
    let Some(p) = t.get(task.pid) else { return };
    // Only what we saw start: a stub or seeded entry may have stale credentials.
    if !p.execed || p.euid == 0 {
        return;
    }
    out.push(Finding {
        alarm_type: "process_privilege_escalation",
        key: format!("in-place {}", p.exe),
        pid: task.pid,
        details: vec![format!(
            "euid {} -> 0 without an exec: the kernel changed the running process's credentials",
            p.euid
        )],
        isolate: true,
        ..Default::default()
    });
}

/// A set*id call that made a process root whose real and effective uids were both not root
/// and whose program is not set-user-ID: only CAP_SETUID allows that (file capabilities on an
/// interpreter, the GTFOBins way) or an exploited kernel. Seen as it happens, not at the
/// process's next exec or fork.
pub fn setid(cfg: &Compiled, task: &Task, t: &Table, out: &mut Vec<Finding>) {
    if !cfg.on("privilege_escalation") || task.euid != 0 {
        return;
    }
    let Some(p) = t.get(task.pid) else { return };
    let (Some(uid), Some(euid)) = (p.prev_uid, p.prev_euid) else {
        return;
    };
    // A set-user-ID program regaining its saved root, and a root daemon switching back from a
    // user, were root before: that is not a gain.
    if p.suid || uid == 0 || euid == 0 || uid == Task::UNKNOWN_ID || euid == Task::UNKNOWN_ID {
        return;
    }
    if cfg.policy.suid_allowed.contains(&p.exe) {
        return;
    }
    out.push(Finding {
        alarm_type: "process_privilege_escalation",
        key: format!("setid {}", p.exe),
        pid: task.pid,
        file: Some(p.exe.clone()),
        details: vec![
            format!(
                "uid {uid}, euid {euid} -> uid {}, euid 0 by a set*id call",
                task.uid
            ),
            format!(
                "{} is not set-user-ID: the process held CAP_SETUID (file capabilities on its program?) or the kernel was exploited",
                p.exe
            ),
        ],
        isolate: true,
        ..Default::default()
    });
}

/// Exec of a memfd or of a deleted file: nothing on disk to inspect.
pub fn fileless(cfg: &Compiled, e: &Exec, t: &Table, out: &mut Vec<Finding>) {
    if !cfg.on("fileless_execution") || !e.fileless() {
        return;
    }
    // runc re-executes itself from a sealed memfd on purpose (CVE-2019-5736's fix).
    if e.file_name.starts_with("memfd:runc_cloned") {
        return;
    }
    let what = if e.file_name.starts_with("memfd:") {
        format!("an anonymous memory file ({})", e.file_name)
    } else {
        format!("a deleted file ({})", e.filename)
    };
    let mut details = vec![
        format!("the program runs from {what}"),
        format!("exec path {}", e.filename),
    ];
    // Who made the memory file, when the sensor saw memfd_create (BPF tier).
    if let Some(name) = e.file_name.strip_prefix("memfd:") {
        let name = name.trim_end_matches(" (deleted)");
        let maker = std::iter::once(t.get(e.task.pid))
            .flatten()
            .chain(t.ancestors(e.task.pid))
            .find(|p| p.memfds.iter().any(|m| m == name));
        if let Some(p) = maker {
            details.push(format!(
                "memfd_create({name:?}) was called by pid {} ({}) before the exec",
                p.pid,
                if p.pid == e.task.pid {
                    "this process, before it replaced itself".to_string()
                } else {
                    p.exe.clone()
                }
            ));
        }
    }
    out.push(Finding {
        alarm_type: "fileless_execution",
        key: e.file_name.clone(),
        pid: e.task.pid,
        details,
        isolate: true,
        ..Default::default()
    });
}
