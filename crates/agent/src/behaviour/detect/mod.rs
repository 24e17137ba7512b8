//! The detectors: pure functions of events, the process table and the compiled policy, each in
//! its own file and unit-tested on recorded event sequences. They return [`Finding`]s; the
//! runner turns findings into alarms (process chain, hashes, whitelist) and responses.

pub mod accounts;
pub mod commands;
pub mod cpu;
pub mod files;
pub mod injection;
pub mod modules;
pub mod network;
pub mod process;
pub mod scan;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use hostward_proto::behaviour::{BehaviourPolicy, CommandPattern, WhitelistRule};
use hostward_proto::bruteforce::Net;
use hostward_sensor::{Event, Exec};

use super::table::{Proc, Table};

/// One detector's conclusion, before the runner adds the chain and the hashes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    pub alarm_type: &'static str,
    /// What makes repeats the same alarm (with server and type).
    pub key: String,
    /// The process the alarm is about; 0 when none (a scan, an account found at start).
    pub pid: u32,
    pub rule: Option<String>,
    pub peer: Option<SocketAddr>,
    pub file: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub details: Vec<String>,
    /// Isolate and kill applies (a reverse shell, a miner, a fileless program).
    pub isolate: bool,
    /// The process that opened the connection a reverse shell runs on (itself or an
    /// ancestor): the dropper to isolate, when it is not a system program.
    pub dialler: Option<u32>,
    /// Block `source_ip` on the firewall (a scan or a honeypot visit, per policy).
    pub block: bool,
}

/// The policy with its patterns compiled; built once per config.
pub struct Compiled {
    pub policy: BehaviourPolicy,
    pub commands: Vec<(CommandPattern, regex_lite::Regex)>,
    pub whitelist: Vec<(WhitelistRule, Option<regex_lite::Regex>)>,
    pub ioc: Vec<Net>,
}

impl Compiled {
    /// Compiles a validated policy; Err (naming the field) for one that does not validate.
    pub fn new(policy: BehaviourPolicy) -> Result<Compiled, String> {
        policy.validate()?;
        let commands = policy
            .commands
            .iter()
            .map(|c| {
                let re = regex_lite::Regex::new(&c.pattern).expect("validated");
                (c.clone(), re)
            })
            .collect();
        let whitelist = policy
            .whitelist
            .iter()
            .map(|w| {
                let re = w
                    .command
                    .as_ref()
                    .map(|c| regex_lite::Regex::new(c).expect("validated"));
                (w.clone(), re)
            })
            .collect();
        let ioc = policy
            .ioc_addresses
            .iter()
            .map(|a| Net::parse(a).expect("validated"))
            .collect();
        Ok(Compiled {
            policy,
            commands,
            whitelist,
            ioc,
        })
    }

    pub fn on(&self, detector: &str) -> bool {
        self.policy.on(detector)
    }

    /// Whether a finding about `p` (with its executable's hash when known) is whitelisted.
    pub fn whitelisted(&self, alarm_type: &str, p: Option<&Proc>, sha256: Option<&str>) -> bool {
        let Some(p) = p else { return false };
        if self.policy.process_whitelist.contains(&p.exe) {
            return true;
        }
        let cmd = command_line(&p.exe, &p.argv);
        self.whitelist.iter().any(|(r, re)| {
            r.alarm_type.as_deref().is_none_or(|t| t == alarm_type)
                && r.process_path.as_deref().is_none_or(|x| x == p.exe)
                && r.sha256
                    .as_deref()
                    .is_none_or(|h| sha256.is_some_and(|s| s.eq_ignore_ascii_case(h)))
                && re.as_ref().is_none_or(|re| re.is_match(&cmd))
        })
    }

    /// Whether any rule needs the executable's hash to decide.
    pub fn needs_hash(&self) -> bool {
        self.whitelist.iter().any(|(r, _)| r.sha256.is_some())
    }
}

/// The command line patterns match: the executable's file name, then the arguments.
pub fn command_line(exe: &str, argv: &[String]) -> String {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let mut s = name.to_string();
    for a in argv.iter().skip(1) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Shells, by file name.
pub fn is_shell(name: &str) -> bool {
    matches!(
        name,
        "sh" | "bash"
            | "dash"
            | "zsh"
            | "ksh"
            | "mksh"
            | "csh"
            | "tcsh"
            | "fish"
            | "ash"
            | "busybox"
            | "rbash"
    )
}

/// Interpreters a reverse shell is commonly written in.
pub fn is_interpreter(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(
        base,
        "python" | "perl" | "php" | "ruby" | "lua" | "node" | "tclsh" | "awk" | "gawk"
    )
}

/// Tools that relay a socket to a program (`socat exec:`, `nc -e`).
pub fn is_relay(name: &str) -> bool {
    matches!(
        name,
        "socat" | "nc" | "ncat" | "netcat" | "nc.traditional" | "nc.openbsd" | "telnet" | "openssl"
    )
}

/// Programs whose writes to system paths are installs, not attacks.
pub fn is_package_manager(name: &str) -> bool {
    matches!(
        name,
        "dpkg"
            | "apt"
            | "apt-get"
            | "aptitude"
            | "unattended-upgr"
            | "unattended-upgrade"
            | "rpm"
            | "dnf"
            | "yum"
            | "microdnf"
            | "zypper"
            | "apk"
            | "snapd"
            | "packagekitd"
            | "dpkg-deb"
    )
}

fn name_of(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// Whether `pid` or one of its ancestors is a package manager.
pub fn under_package_manager(t: &Table, pid: u32) -> bool {
    t.get(pid).is_some_and(|p| is_package_manager(p.name()))
        || t.ancestors(pid)
            .iter()
            .any(|a| is_package_manager(a.name()))
}

/// Pipe ends seen recently, for "download | shell" typed at a prompt (two execs, one pipe).
#[derive(Default)]
pub struct Pipes {
    /// pipe inode -> (the downloader's pid and command line, when)
    writers: HashMap<u64, (u32, String, u64)>,
    /// pipe inode -> (the shell's pid, when)
    readers: HashMap<u64, (u32, u64)>,
    order: VecDeque<(u64, u64)>,
}

const PIPE_KEEP_NS: u64 = 10_000_000_000;

impl Pipes {
    fn prune(&mut self, now: u64) {
        while let Some(&(ino, at)) = self.order.front() {
            if now.saturating_sub(at) < PIPE_KEEP_NS && self.order.len() < 4096 {
                break;
            }
            self.order.pop_front();
            if self.writers.get(&ino).is_some_and(|w| w.2 == at) {
                self.writers.remove(&ino);
            }
            if self.readers.get(&ino).is_some_and(|r| r.1 == at) {
                self.readers.remove(&ino);
            }
        }
    }
}

/// How long a relay's shell waits for the relay's connection before it is raised without one.
const RELAY_WAIT_NS: u64 = 2_000_000_000;

/// A relay's shell, found, waiting for the relay to connect.
struct Relayed {
    relay: u32,
    until_ns: u64,
    finding: Finding,
}

/// Everything the detectors remember between events.
pub struct Detectors {
    pub cfg: Compiled,
    pipes: Pipes,
    /// Rules each recent process matched, so a child repeating its parent's command line (sudo
    /// -> bash -c) is one alarm.
    matched: HashMap<u32, Vec<String>>,
    matched_order: VecDeque<u32>,
    pub scans: scan::Scans,
    pub accounts: accounts::Known,
    pub cpu: cpu::CpuWatch,
    /// Reverse shells raised recently, by pid.
    shells_seen: Vec<u32>,
    /// Relays' shells held for the relay's connection (the peer), oldest first.
    relayed: VecDeque<Relayed>,
    /// The agent's own pid: what it and its children do is not an attack.
    own_pid: u32,
}

impl Detectors {
    pub fn new(cfg: Compiled, own_pid: u32) -> Detectors {
        Detectors {
            cfg,
            pipes: Pipes::default(),
            matched: HashMap::new(),
            matched_order: VecDeque::new(),
            scans: scan::Scans::default(),
            accounts: accounts::Known::default(),
            cpu: cpu::CpuWatch::default(),
            shells_seen: Vec::new(),
            relayed: VecDeque::new(),
            own_pid,
        }
    }

    /// Whether `pid` is the agent or runs under it.
    pub fn ours(&self, t: &Table, pid: u32) -> bool {
        pid == self.own_pid || t.ancestors(pid).iter().any(|a| a.pid == self.own_pid)
    }

    /// Findings of one sensor event; call after `Table::apply`.
    pub fn on_event(&mut self, ev: &Event, t: &Table) -> Vec<Finding> {
        if self.ours(t, ev.pid()) {
            return Vec::new();
        }
        let mut out = self.release_relayed(ev.ts_ns());
        match ev {
            Event::Exec(e) => self.on_exec(e, t, &mut out),
            Event::Connect(c) => {
                self.relay_connected(c.task.pid, c.peer, &mut out);
                network::on_connect(&self.cfg, c, t, &mut out)
            }
            Event::Fork { task, .. } => process::cred_change(&self.cfg, task, t, &mut out),
            Event::Creds { task, .. } => process::setid(&self.cfg, task, t, &mut out),
            Event::Ptrace {
                task,
                target,
                request,
                result,
                ..
            } => injection::ptrace(&self.cfg, task, *target, request, *result, t, &mut out),
            Event::Module {
                task, file, result, ..
            } => modules::load(&self.cfg, task, file, *result, t, &mut out),
            Event::Exit { .. } | Event::Killed(_) | Event::Memfd { .. } | Event::Accept(_) => {}
        }
        out
    }

    fn on_exec(&mut self, e: &Exec, t: &Table, out: &mut Vec<Finding>) {
        // Everything a reverse shell runs inherits its socket: one alarm, for the shell.
        let under_shell = self.shells_seen.contains(&e.task.pid)
            || t.ancestors(e.task.pid)
                .iter()
                .any(|a| self.shells_seen.contains(&a.pid));
        if !under_shell {
            let before = out.len();
            let waits_for = process::reverse_shell(&self.cfg, e, t, out);
            if out.len() > before {
                self.remember_shell(e.task.pid);
                if let Some(relay) = waits_for {
                    let finding = out.pop().expect("pushed above");
                    self.relayed.push_back(Relayed {
                        relay,
                        until_ns: e.ts_ns + RELAY_WAIT_NS,
                        finding,
                    });
                }
            }
        }
        process::privilege_escalation(&self.cfg, e, t, out);
        process::fileless(&self.cfg, e, t, out);
        network::miner_exec(&self.cfg, e, out);
        if self.cfg.on("high_risk_command") {
            let found = commands::matches(&self.cfg, e);
            let parent_rules = self.matched.get(&e.task.ppid).cloned().unwrap_or_default();
            let mine: Vec<String> = found
                .iter()
                .map(|f| f.rule.clone().unwrap_or_default())
                .collect();
            out.extend(
                found
                    .into_iter()
                    .filter(|f| !parent_rules.contains(f.rule.as_ref().expect("set"))),
            );
            if !mine.is_empty() {
                self.remember(e.task.pid, mine);
            }
            self.pipes.prune(e.ts_ns);
            commands::piped_download(&mut self.pipes, e, out);
        }
    }

    /// A held relay shell's alarm, now with the relay's connection as its peer.
    fn relay_connected(&mut self, pid: u32, peer: SocketAddr, out: &mut Vec<Finding>) {
        while let Some(i) = self.relayed.iter().position(|r| r.relay == pid) {
            let mut f = self.relayed.remove(i).expect("found").finding;
            f.key = format!("{} -> {peer}", f.key);
            f.peer = Some(peer);
            f.dialler = Some(pid);
            out.push(f);
        }
    }

    /// The held relay shells whose relay did not connect in time: raised without a peer.
    pub fn release_relayed(&mut self, now_ns: u64) -> Vec<Finding> {
        let mut out = Vec::new();
        while self.relayed.front().is_some_and(|r| r.until_ns <= now_ns) {
            let mut f = self.relayed.pop_front().expect("front").finding;
            f.details
                .push("the relay's connection was not seen: no peer known".into());
            out.push(f);
        }
        out
    }

    fn remember_shell(&mut self, pid: u32) {
        if self.shells_seen.len() >= 1024 {
            self.shells_seen.remove(0);
        }
        self.shells_seen.push(pid);
    }

    fn remember(&mut self, pid: u32, rules: Vec<String>) {
        if self.matched_order.len() >= 1024
            && let Some(old) = self.matched_order.pop_front()
        {
            self.matched.remove(&old);
        }
        self.matched_order.push_back(pid);
        self.matched.insert(pid, rules);
    }
}
