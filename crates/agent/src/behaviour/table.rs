//! The process table: every live process the sensor has seen (or read from /proc at start),
//! so that each alarm carries its ancestry. Pure: fed events, never reads the host itself
//! (`seed` takes what the caller read). Exited processes stay a short while, because a child's
//! events may arrive after its parent's exit and still need the parent in their chain.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use hostward_proto::alarm::{MAX_CHAIN, ProcessInfo};
use hostward_sensor::{Event, Exec, Fd, Task};

/// Appends to one of a process's short histories, dropping the oldest past 8.
fn push<T>(list: &mut Vec<T>, v: T) {
    if list.len() >= 8 {
        list.remove(0);
    }
    list.push(v);
}

/// Processes kept at most; beyond it the oldest exited ones go first, then the oldest.
pub const MAX_PROCESSES: usize = 65_536;
/// How long an exited process stays, in ns of the sensor's clock: its children's events and
/// the alarms about them are handled within milliseconds; 10 s covers a stalled moment.
const EXITED_KEEP_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub sid: u32,
    pub uid: u32,
    pub euid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub tty: Option<String>,
    pub fds: [Fd; 3],
    /// When it started (exec or fork), sensor clock.
    pub start_ns: u64,
    /// Whether we saw it exec (false: known only from a fork or the start-up read).
    pub execed: bool,
    /// Executable's (dev, inode), for isolation.
    pub ino: u64,
    pub dev: u32,
    /// The effective uid this pid had before its latest exec or credential change, when known.
    pub prev_euid: Option<u32>,
    /// The real uid before its latest credential change, when one was seen.
    pub prev_uid: Option<u32>,
    /// Its executable is set-user-ID: dropping and regaining root is its normal business.
    pub suid: bool,
    /// Outbound connections it made, most recent last (at most 8).
    pub connections: Vec<SocketAddr>,
    /// Inbound connections it accepted (peer, local port), most recent last (at most 8).
    pub accepted: Vec<(SocketAddr, u16)>,
    /// Anonymous memory files it created (`memfd_create` names), most recent last (at most 8).
    pub memfds: Vec<String>,
    pub exited_ns: Option<u64>,
}

impl Proc {
    pub fn name(&self) -> &str {
        self.exe.rsplit('/').next().unwrap_or(&self.exe)
    }

    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

#[derive(Default)]
pub struct Table {
    procs: HashMap<u32, Proc>,
    /// Exited pids in exit order, for pruning.
    exited: VecDeque<(u32, u64)>,
    /// Entries pruned since `prune` last asked for the freed heap to be handed back.
    pruned: usize,
}

/// Pruned entries (their strings freed) after which the heap is worth handing back: an exec
/// burst leaves thousands, freed over the 10 s after it.
const RELEASE_AFTER: usize = 2048;

impl Table {
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Proc> {
        self.procs.values()
    }

    pub fn get(&self, pid: u32) -> Option<&Proc> {
        self.procs.get(&pid)
    }

    /// Adds a process known before the sensor started.
    pub fn seed(&mut self, p: Proc) {
        self.insert(p);
    }

    fn insert(&mut self, p: Proc) {
        if self.procs.len() >= MAX_PROCESSES && !self.procs.contains_key(&p.pid) {
            self.evict();
        }
        self.procs.insert(p.pid, p);
    }

    fn evict(&mut self) {
        while let Some((pid, _)) = self.exited.pop_front() {
            if self.procs.get(&pid).is_some_and(|p| p.exited_ns.is_some()) {
                self.procs.remove(&pid);
                return;
            }
        }
        // No exited one left: drop the oldest start (a pid storm with nothing exiting).
        if let Some(pid) = self
            .procs
            .values()
            .min_by_key(|p| p.start_ns)
            .map(|p| p.pid)
        {
            self.procs.remove(&pid);
        }
    }

    /// Applies one event; call before the detectors see it.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Exec(e) | Event::Killed(e) => self.exec(e),
            Event::Fork { ts_ns, task, child } => {
                let mut p = self.procs.get(&task.pid).cloned().unwrap_or(Proc {
                    pid: task.pid,
                    ppid: task.ppid,
                    sid: task.sid,
                    uid: task.uid,
                    euid: task.euid,
                    ..Default::default()
                });
                p.ppid = task.pid;
                p.pid = *child;
                p.start_ns = *ts_ns;
                p.execed = false;
                // What the parent did stays the parent's: chains look at ancestors.
                p.connections.clear();
                p.accepted.clear();
                p.memfds.clear();
                p.prev_uid = None;
                p.exited_ns = None;
                self.insert(p);
            }
            Event::Exit { ts_ns, pid, .. } => {
                if let Some(p) = self.procs.get_mut(pid) {
                    p.exited_ns = Some(*ts_ns);
                    self.exited.push_back((*pid, *ts_ns));
                }
                let _ = self.prune(*ts_ns);
            }
            Event::Connect(c) => push(&mut self.entry(&c.task, c.ts_ns).connections, c.peer),
            Event::Accept(c) => push(
                &mut self.entry(&c.task, c.ts_ns).accepted,
                (c.peer, c.local_port),
            ),
            Event::Memfd {
                ts_ns, task, name, ..
            } => push(&mut self.entry(task, *ts_ns).memfds, name.clone()),
            Event::Creds { ts_ns, task } => {
                let p = self.entry(task, *ts_ns);
                p.prev_uid = Some(p.uid);
                p.prev_euid = Some(p.euid);
                p.uid = task.uid;
                p.euid = task.euid;
            }
            Event::Ptrace { .. } | Event::Module { .. } => {}
        }
    }

    /// The live entry of `task`, made from the event when the table does not know it.
    fn entry(&mut self, task: &Task, ts_ns: u64) -> &mut Proc {
        if !self.procs.contains_key(&task.pid) {
            self.insert(Proc {
                pid: task.pid,
                ppid: task.ppid,
                sid: task.sid,
                uid: task.uid,
                euid: task.euid,
                start_ns: ts_ns,
                ..Default::default()
            });
        }
        self.procs.get_mut(&task.pid).expect("inserted above")
    }

    fn exec(&mut self, e: &Exec) {
        let prev = self
            .procs
            .get(&e.task.pid)
            .filter(|p| p.exited_ns.is_none());
        let prev_euid = prev.map(|p| p.euid);
        // Descriptors survive exec: the connections and memory files stay the process's.
        let connections = prev.map(|p| p.connections.clone()).unwrap_or_default();
        let accepted = prev.map(|p| p.accepted.clone()).unwrap_or_default();
        let memfds = prev.map(|p| p.memfds.clone()).unwrap_or_default();
        let p = Proc {
            prev_euid,
            pid: e.task.pid,
            ppid: e.task.ppid,
            sid: e.task.sid,
            uid: e.task.uid,
            euid: e.task.euid,
            exe: e.exe(),
            argv: e.argv.clone(),
            cwd: e.cwd.clone(),
            tty: e.tty.clone(),
            fds: e.fds.clone(),
            start_ns: e.ts_ns,
            execed: true,
            ino: e.ino,
            dev: e.dev,
            prev_uid: None,
            suid: e.setuid(),
            connections,
            accepted,
            memfds,
            exited_ns: None,
        };
        // A parent unknown so far (started before us and missed by the seed) gets a stub, so
        // the chain at least shows its pid.
        if !self.procs.contains_key(&e.task.ppid) {
            self.insert(Proc {
                pid: e.task.ppid,
                euid: e.task.parent_euid,
                ..Default::default()
            });
        }
        self.insert(p);
    }

    /// Drops processes that exited long enough ago; true when enough was freed for the runner
    /// to hand the memory back (the table's allocation shrank, or many entries went).
    pub fn prune(&mut self, now_ns: u64) -> bool {
        while let Some(&(pid, at)) = self.exited.front() {
            if now_ns.saturating_sub(at) < EXITED_KEEP_NS {
                break;
            }
            self.exited.pop_front();
            if self
                .procs
                .get(&pid)
                .is_some_and(|p| p.exited_ns == Some(at))
            {
                self.procs.remove(&pid);
                self.pruned += 1;
            }
        }
        // Shrunk in steps as a burst's entries go, down to a host's usual few hundred.
        let shrink = self.procs.capacity() > 1024 && self.procs.len() < self.procs.capacity() / 4;
        if shrink {
            self.procs.shrink_to_fit();
            self.exited.shrink_to_fit();
        }
        if shrink || self.pruned >= RELEASE_AFTER {
            self.pruned = 0;
            return true;
        }
        false
    }

    /// The process and its ancestors, nearest first, up to init (not included; at most
    /// `MAX_CHAIN`). Past the session leader too: a shell a pty spawned leads its own session,
    /// and what spawned it is the evidence. `users` names uids.
    pub fn chain(&self, pid: u32, users: &dyn Fn(u32) -> String) -> Vec<ProcessInfo> {
        let mut out = Vec::new();
        let mut cur = pid;
        while out.len() < MAX_CHAIN && cur > 0 {
            let Some(p) = self.procs.get(&cur) else {
                out.push(ProcessInfo {
                    pid: cur,
                    ..Default::default()
                });
                break;
            };
            out.push(info(p, users));
            if p.ppid == cur || p.ppid <= 1 {
                break;
            }
            cur = p.ppid;
        }
        out
    }

    /// Ancestors of `pid`, nearest first (itself excluded), as far as known.
    pub fn ancestors(&self, pid: u32) -> Vec<&Proc> {
        let mut out = Vec::new();
        let mut cur = self.procs.get(&pid).map(|p| p.ppid).unwrap_or(0);
        while cur > 0 && out.len() < MAX_CHAIN {
            let Some(p) = self.procs.get(&cur) else { break };
            out.push(p);
            if p.ppid == cur {
                break;
            }
            cur = p.ppid;
        }
        out
    }

    /// Live children of `pid`, recursively (for killing a tree), deepest last.
    pub fn descendants(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut queue = vec![pid];
        while let Some(p) = queue.pop() {
            for c in self
                .procs
                .values()
                .filter(|c| c.ppid == p && c.pid != p && c.exited_ns.is_none())
            {
                if !out.contains(&c.pid) {
                    out.push(c.pid);
                    queue.push(c.pid);
                }
            }
        }
        out
    }
}

pub fn info(p: &Proc, users: &dyn Fn(u32) -> String) -> ProcessInfo {
    let mut cmdline = p.command_line();
    if cmdline.len() > 1024 {
        let mut cut = 1021;
        while !cmdline.is_char_boundary(cut) {
            cut -= 1;
        }
        cmdline.truncate(cut);
        cmdline.push('…');
    }
    ProcessInfo {
        pid: p.pid,
        ppid: p.ppid,
        exe: p.exe.chars().take(4096).collect(),
        cmdline,
        uid: p.uid,
        euid: p.euid,
        user: users(p.uid),
        cwd: p.cwd.clone().filter(|c| c.len() <= 4096),
        tty: p.tty.clone().filter(|t| t.len() <= 64),
        sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_sensor::Task;

    fn exec(pid: u32, ppid: u32, sid: u32, exe: &str, argv: &[&str]) -> Event {
        Event::Exec(Box::new(Exec {
            ts_ns: pid as u64,
            task: Task {
                pid,
                ppid,
                sid,
                ..Default::default()
            },
            filename: exe.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))
    }

    #[test]
    fn chains_go_past_the_session_leader_and_forks_inherit() {
        let mut t = Table::default();
        t.apply(&exec(100, 1, 100, "/usr/sbin/sshd", &["sshd: alice"]));
        t.apply(&exec(200, 100, 200, "/bin/bash", &["-bash"]));
        t.apply(&Event::Fork {
            ts_ns: 5,
            task: Task {
                pid: 200,
                ppid: 100,
                sid: 200,
                ..Default::default()
            },
            child: 201,
        });
        t.apply(&exec(
            201,
            200,
            200,
            "/usr/bin/python3",
            &["python3", "-c", "pty"],
        ));
        let names = |u: u32| format!("u{u}");
        let chain = t.chain(201, &names);
        let pids: Vec<u32> = chain.iter().map(|p| p.pid).collect();
        assert_eq!(
            pids,
            [201, 200, 100],
            "up to init, past the session leader 200"
        );
        assert_eq!(chain[0].exe, "/usr/bin/python3");
        assert_eq!(chain[0].user, "u0");
        assert_eq!(t.descendants(100), [200, 201]);
        // Exit: kept for a while, then pruned.
        t.apply(&Event::Exit {
            ts_ns: 10,
            pid: 201,
            code: 0,
        });
        assert!(t.get(201).is_some());
        let _ = t.prune(10 + EXITED_KEEP_NS);
        assert!(t.get(201).is_none());
        assert_eq!(t.descendants(100), [200]);
    }

    #[test]
    fn an_unknown_parent_shows_as_its_pid() {
        let mut t = Table::default();
        t.apply(&exec(300, 299, 1, "/bin/sh", &["sh"]));
        let chain = t.chain(300, &|_| String::new());
        assert_eq!(chain.iter().map(|p| p.pid).collect::<Vec<_>>(), [300, 299]);
        assert!(t.chain(1, &|_| String::new()).len() == 1);
        assert_eq!(chain[1].exe, "");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Table::default();
        for pid in 1..=(MAX_PROCESSES as u32 + 100) {
            t.apply(&exec(pid + 1000, 1, 1, "/bin/true", &["true"]));
        }
        assert!(t.len() <= MAX_PROCESSES + 1);
    }

    #[test]
    fn after_a_burst_the_table_shrinks_back_and_asks_for_the_heap_to_be_released() {
        let mut t = Table::default();
        for pid in 2..20_000u32 {
            t.apply(&exec(pid, 1, 1, "/bin/true", &["true"]));
            t.apply(&Event::Exit {
                ts_ns: u64::from(pid),
                pid,
                code: 0,
            });
        }
        let burst = t.procs.capacity();
        let mut released = 0;
        // Pruned as time passes, one second at a time.
        for s in 10..=12 {
            released += usize::from(t.prune(s * 1_000_000_000 + 20_000));
        }
        assert!(t.len() <= 2, "{}", t.len());
        assert!(
            t.procs.capacity() <= 1024 && burst > 16_000,
            "{burst} -> {}",
            t.procs.capacity()
        );
        assert!(released >= 1);
    }
}
