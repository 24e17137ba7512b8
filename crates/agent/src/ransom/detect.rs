//! The ransomware detector, a function of file events: a write, rename or delete of a bait
//! file, or a burst of encrypted-looking writes (or renames to a new extension) of distinct
//! files by one actor within the policy's window, is ransomware. An actor is the writing
//! process, and also the script driving it (a shell, interpreter, `xargs` or `find` running a
//! script or a command line): `for f in *; do openssl enc … ; rm "$f"; done` starts a new
//! process per file, and only the script that runs them all sees the burst. The runner
//! classifies events (reads the sample, names the processes) and acts on what this returns.

use std::collections::{BTreeSet, HashMap, VecDeque};

use hostward_proto::alarm::ProcessInfo;
use hostward_proto::ransom::RansomPolicy;

/// What happened to a path, as far as the detector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Content written and closed.
    Write,
    /// Renamed away from here.
    MovedFrom,
    /// Renamed to here.
    MovedTo,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Write => "written",
            Op::MovedFrom => "renamed away",
            Op::MovedTo => "renamed over",
            Op::Delete => "deleted",
        }
    }
}

/// One classified event.
#[derive(Debug, Clone)]
pub struct FileEvent {
    pub path: String,
    pub op: Op,
    /// The content written looks encrypted (writes and renames to here).
    pub encrypted: bool,
    /// The writing process, then its ancestors (empty when the kernel named none).
    pub chain: Vec<ProcessInfo>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A bait file was written, renamed or deleted.
    Bait { path: String, op: Op },
    /// `files` distinct files in `span_ms`.
    Burst { files: usize, span_ms: u64 },
}

/// A conclusion: why, which process to stop (`target`: its tree goes), the script it runs
/// when it is an interpreter, and the files that led to it (at most 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub reason: Reason,
    pub target: ProcessInfo,
    pub script: Option<String>,
    pub chain: Vec<ProcessInfo>,
    pub files: Vec<String>,
    /// The writer's program is trusted by the policy: raise the alarm, do not stop it.
    pub trusted: bool,
}

const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "perl", "ruby", "node", "php",
    "lua", "pwsh", "tclsh",
];
/// Programs that run other programs over a list of files, never interactively.
const DRIVERS: &[&str] = &["xargs", "find", "parallel"];

fn base(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

fn interpreter(exe: &str) -> bool {
    let b = base(exe);
    INTERPRETERS.contains(&b)
        || b.strip_prefix("python")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        || b.strip_prefix("php")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Whether `p` drives other programs without a person at it: an interpreter running a script
/// or a `-c` command line (an interactive shell is `bash` or `-bash` alone), or a driver.
pub fn driver(p: &ProcessInfo) -> bool {
    if DRIVERS.contains(&base(&p.exe)) {
        return true;
    }
    if !interpreter(&p.exe) {
        return false;
    }
    let mut args = p.cmdline.split_whitespace().skip(1);
    args.any(|a| a == "-c" || !a.starts_with('-'))
}

/// The script an interpreter runs: its first argument that is not an option, resolved against
/// its working directory. None for `-c` command lines and other programs.
pub fn script_of(p: &ProcessInfo) -> Option<String> {
    if !interpreter(&p.exe) {
        return None;
    }
    for a in p.cmdline.split_whitespace().skip(1) {
        let code = a == "-e" && matches!(base(&p.exe), "perl" | "ruby" | "node");
        if a == "-c" || a == "-" || code {
            return None;
        }
        if a.starts_with('-') {
            continue;
        }
        return Some(if a.starts_with('/') {
            a.to_string()
        } else {
            let cwd = p.cwd.as_deref().unwrap_or("/");
            format!(
                "{}/{}",
                cwd.trim_end_matches('/'),
                a.trim_start_matches("./")
            )
        });
    }
    None
}

/// A name's extension; a hidden file's leading dot does not start one.
fn ext(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name.strip_prefix('.').unwrap_or(name);
    name.rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty())
}

#[derive(Default)]
struct Actor {
    /// (time, path) of suspicious events, oldest first, distinct paths.
    events: VecDeque<(u64, String)>,
}

pub struct Detector {
    policy: RansomPolicy,
    baits: BTreeSet<String>,
    /// Counts by actor pid.
    actors: HashMap<u32, Actor>,
    /// The last path each pid renamed away, to see a rename's new extension.
    moved_from: HashMap<u32, (u64, String)>,
    /// Actors already concluded on, until when: their dying tree's events are not new findings.
    handled: HashMap<u32, u64>,
}

impl Detector {
    pub fn new(policy: RansomPolicy, baits: BTreeSet<String>) -> Detector {
        Detector {
            policy,
            baits,
            actors: HashMap::new(),
            moved_from: HashMap::new(),
            handled: HashMap::new(),
        }
    }

    pub fn set(&mut self, policy: RansomPolicy, baits: BTreeSet<String>) {
        self.policy = policy;
        self.baits = baits;
    }

    pub fn is_bait(&self, path: &str) -> bool {
        self.baits.contains(path)
    }

    /// The actors an event counts for: the writer, and the script driving it.
    fn actors_of(chain: &[ProcessInfo]) -> Vec<&ProcessInfo> {
        let mut out = Vec::new();
        if let Some(w) = chain.first() {
            out.push(w);
            if let Some(p) = chain.get(1).filter(|p| p.pid > 1 && driver(p)) {
                out.push(p);
            }
        }
        out
    }

    /// What to stop for an event by `chain`: the script driving the writer, or the writer.
    fn target(chain: &[ProcessInfo]) -> Option<ProcessInfo> {
        let actors = Self::actors_of(chain);
        actors.last().map(|p| (*p).clone())
    }

    fn finding(
        &self,
        reason: Reason,
        target: ProcessInfo,
        ev: &FileEvent,
        files: Vec<String>,
    ) -> Finding {
        let trusted = ev
            .chain
            .first()
            .is_some_and(|w| !w.exe.is_empty() && self.policy.trusts(&w.exe));
        Finding {
            reason,
            script: script_of(&target),
            target,
            chain: ev.chain.clone(),
            files,
            trusted,
        }
    }

    pub fn event(&mut self, ev: &FileEvent) -> Option<Finding> {
        let window = u64::from(self.policy.window_secs) * 1000;
        self.handled.retain(|_, until| *until > ev.at_ms);
        self.moved_from
            .retain(|_, (at, _)| ev.at_ms.saturating_sub(*at) < 1000);
        if self.baits.contains(&ev.path) {
            let target = Self::target(&ev.chain).unwrap_or_default();
            if target.pid != 0 && self.handled.contains_key(&target.pid) {
                return None;
            }
            self.handled.insert(target.pid, ev.at_ms + window);
            return Some(self.finding(
                Reason::Bait {
                    path: ev.path.clone(),
                    op: ev.op,
                },
                target,
                ev,
                vec![ev.path.clone()],
            ));
        }
        let writer = ev.chain.first()?;
        if writer.pid == 0 || (!writer.exe.is_empty() && self.policy.trusts(&writer.exe)) {
            return None;
        }
        let suspicious = match ev.op {
            Op::Write => ev.encrypted,
            Op::MovedFrom => {
                self.moved_from
                    .insert(writer.pid, (ev.at_ms, ev.path.clone()));
                false
            }
            Op::MovedTo => {
                let renamed = self
                    .moved_from
                    .remove(&writer.pid)
                    .is_some_and(|(_, from)| {
                        let old = ext(&from);
                        old.is_some() && old != ext(&ev.path)
                    });
                ev.encrypted || renamed
            }
            Op::Delete => false,
        };
        if !suspicious {
            return None;
        }
        let burst = self.policy.burst_files as usize;
        let mut hit: Option<(ProcessInfo, Vec<String>, u64)> = None;
        for a in Self::actors_of(&ev.chain) {
            if self.handled.contains_key(&a.pid) {
                return None;
            }
            let slot = self.actors.entry(a.pid).or_default();
            while slot
                .events
                .front()
                .is_some_and(|(t, _)| ev.at_ms.saturating_sub(*t) > window)
            {
                slot.events.pop_front();
            }
            if !slot.events.iter().any(|(_, p)| *p == ev.path) {
                slot.events.push_back((ev.at_ms, ev.path.clone()));
            }
            // The writer is checked first: when it alone reaches the bound, it is the target.
            if hit.is_none() && slot.events.len() >= burst {
                let span = ev.at_ms - slot.events.front().map(|(t, _)| *t).unwrap_or(ev.at_ms);
                let files = slot
                    .events
                    .iter()
                    .rev()
                    .take(10)
                    .map(|(_, p)| p.clone())
                    .collect();
                hit = Some(((*a).clone(), files, span));
            }
        }
        if self.actors.len() > 10_000 {
            let now = ev.at_ms;
            self.actors.retain(|_, a| {
                a.events
                    .back()
                    .is_some_and(|(t, _)| now.saturating_sub(*t) <= window)
            });
        }
        let (target, files, span_ms) = hit?;
        for a in Self::actors_of(&ev.chain) {
            self.actors.remove(&a.pid);
            self.handled.insert(a.pid, ev.at_ms + window);
        }
        Some(self.finding(
            Reason::Burst {
                files: burst,
                span_ms,
            },
            target,
            ev,
            files,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, exe: &str, cmdline: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            exe: exe.into(),
            cmdline: cmdline.into(),
            cwd: Some("/root".into()),
            ..Default::default()
        }
    }

    fn policy() -> RansomPolicy {
        RansomPolicy {
            enabled: true,
            directories: vec!["/srv/data".into()],
            burst_files: 5,
            window_secs: 10,
            trusted: vec!["/usr/bin/restic".into()],
            ..Default::default()
        }
    }

    fn ev(path: &str, op: Op, encrypted: bool, chain: Vec<ProcessInfo>, at_ms: u64) -> FileEvent {
        FileEvent {
            path: path.into(),
            op,
            encrypted,
            chain,
            at_ms,
        }
    }

    #[test]
    fn a_script_running_openssl_per_file_is_stopped_at_the_burst_bound() {
        let script = proc(100, 50, "/usr/bin/bash", "bash ./enc.sh /srv/data");
        let mut d = Detector::new(policy(), BTreeSet::new());
        let mut found = None;
        for i in 0..20u32 {
            let openssl = proc(200 + i, 100, "/usr/bin/openssl", "openssl enc -aes-256-cbc");
            let rm = proc(300 + i, 100, "/usr/bin/rm", "rm f");
            let at = u64::from(i) * 10;
            let chain = vec![openssl, script.clone()];
            let f = d.event(&ev(
                &format!("/srv/data/{i}.txt.enc"),
                Op::Write,
                true,
                chain,
                at,
            ));
            d.event(&ev(
                &format!("/srv/data/{i}.txt"),
                Op::Delete,
                false,
                vec![rm, script.clone()],
                at + 1,
            ));
            if let Some(f) = f {
                found = Some((i, f));
                break;
            }
        }
        let (i, f) = found.expect("the burst is found");
        assert_eq!(i, 4, "the fifth encrypted file reaches the bound of 5");
        assert_eq!(f.target.pid, 100, "the script is stopped, not one openssl");
        assert_eq!(f.script.as_deref(), Some("/root/enc.sh"));
        assert_eq!(
            f.reason,
            Reason::Burst {
                files: 5,
                span_ms: 40
            }
        );
        assert_eq!(f.files.len(), 5);
        // Its dying tree's next events are not a second finding.
        let late = proc(299, 100, "/usr/bin/openssl", "openssl");
        assert!(
            d.event(&ev(
                "/srv/data/x.enc",
                Op::Write,
                true,
                vec![late, script],
                60
            ))
            .is_none()
        );
    }

    #[test]
    fn one_process_encrypting_is_its_own_target_and_slow_or_plain_writes_are_not_a_burst() {
        let shell = proc(10, 1, "/usr/bin/bash", "-bash");
        let py = proc(11, 10, "/usr/bin/python3", "python3 /tmp/lock.py");
        let mut d = Detector::new(policy(), BTreeSet::new());
        // Plain writes and deletes: never.
        for i in 0..50 {
            let c = vec![py.clone(), shell.clone()];
            assert!(
                d.event(&ev(
                    &format!("/srv/data/{i}"),
                    Op::Write,
                    false,
                    c.clone(),
                    i
                ))
                .is_none()
            );
            assert!(
                d.event(&ev(&format!("/srv/data/{i}"), Op::Delete, false, c, i))
                    .is_none()
            );
        }
        // Encrypted writes further apart than the window: never.
        for i in 0..10u64 {
            let c = vec![py.clone(), shell.clone()];
            assert!(
                d.event(&ev(
                    &format!("/srv/data/s{i}"),
                    Op::Write,
                    true,
                    c,
                    1000 + i * 11_000
                ))
                .is_none()
            );
        }
        // The same file rewritten again and again is one file.
        for i in 0..10u64 {
            let c = vec![py.clone(), shell.clone()];
            assert!(
                d.event(&ev("/srv/data/db", Op::Write, true, c, 200_000 + i))
                    .is_none()
            );
        }
        let mut d = Detector::new(policy(), BTreeSet::new());
        let mut hit = None;
        for i in 0..5u64 {
            hit = d.event(&ev(
                &format!("/srv/data/f{i}"),
                Op::Write,
                true,
                vec![py.clone(), shell.clone()],
                i,
            ));
        }
        let f = hit.expect("five files");
        assert_eq!(f.target.pid, 11, "an interactive shell is not a driver");
        assert_eq!(f.script.as_deref(), Some("/tmp/lock.py"));
    }

    #[test]
    fn renames_to_a_new_extension_count_and_editors_saves_do_not() {
        let sh = proc(
            20,
            1,
            "/usr/bin/sh",
            "sh -c for f in *; do mv $f $f.locked; done",
        );
        let mut d = Detector::new(policy(), BTreeSet::new());
        let mut hit = None;
        for i in 0..5u64 {
            let mv = proc(30 + i as u32, 20, "/usr/bin/mv", "mv");
            let c = vec![mv, sh.clone()];
            d.event(&ev(
                &format!("/srv/data/r{i}.docx"),
                Op::MovedFrom,
                false,
                c.clone(),
                i * 5,
            ));
            hit = d.event(&ev(
                &format!("/srv/data/r{i}.docx.locked"),
                Op::MovedTo,
                false,
                c,
                i * 5 + 1,
            ));
        }
        assert_eq!(hit.expect("renames").target.pid, 20);
        // sed -i: a temporary file without extension renamed over the original.
        let mut d = Detector::new(policy(), BTreeSet::new());
        let sed = proc(40, 1, "/usr/bin/sed", "sed -i s/a/b/ x.conf");
        for i in 0..20u64 {
            let c = vec![sed.clone()];
            d.event(&ev(
                &format!("/srv/data/sedAb{i}"),
                Op::MovedFrom,
                false,
                c.clone(),
                i,
            ));
            assert!(
                d.event(&ev(
                    &format!("/srv/data/c{i}.conf"),
                    Op::MovedTo,
                    false,
                    c,
                    i
                ))
                .is_none()
            );
        }
    }

    #[test]
    fn a_bait_touched_is_a_finding_at_once_even_by_a_trusted_program_and_other_trusted_writes_never_count()
     {
        let baits: BTreeSet<String> = ["/srv/data/!0-invoices-a1b2c3.docx".to_string()].into();
        let script = proc(100, 50, "/usr/bin/bash", "bash -c rm /srv/data/*");
        let rm = proc(101, 100, "/usr/bin/rm", "rm");
        let mut d = Detector::new(policy(), baits.clone());
        let f = d
            .event(&ev(
                "/srv/data/!0-invoices-a1b2c3.docx",
                Op::Delete,
                false,
                vec![rm, script.clone()],
                5,
            ))
            .expect("bait");
        assert!(matches!(f.reason, Reason::Bait { op: Op::Delete, .. }));
        assert_eq!((f.target.pid, f.trusted, f.script), (100, false, None));
        let restic = proc(7, 1, "/usr/bin/restic", "restic backup");
        for i in 0..20u64 {
            assert!(
                d.event(&ev(
                    &format!("/srv/data/t{i}"),
                    Op::Write,
                    true,
                    vec![restic.clone()],
                    i
                ))
                .is_none()
            );
        }
        let mut d = Detector::new(policy(), baits);
        let f = d
            .event(&ev(
                "/srv/data/!0-invoices-a1b2c3.docx",
                Op::Write,
                false,
                vec![restic],
                1,
            ))
            .expect("a bait touched by a trusted program is still an alarm");
        assert!(f.trusted);
    }

    #[test]
    fn drivers_and_scripts_are_told_from_interactive_shells() {
        assert!(driver(&proc(1, 0, "/usr/bin/bash", "bash enc.sh")));
        assert!(driver(&proc(1, 0, "/bin/sh", "sh -c x")));
        assert!(driver(&proc(1, 0, "/usr/bin/xargs", "xargs -n1 openssl")));
        assert!(driver(&proc(
            1,
            0,
            "/usr/bin/python3.11",
            "python3.11 x.py"
        )));
        assert!(!driver(&proc(1, 0, "/usr/bin/bash", "-bash")));
        assert!(!driver(&proc(1, 0, "/usr/bin/bash", "bash -l")));
        assert!(!driver(&proc(1, 0, "/usr/sbin/sshd", "sshd: root@pts/0")));
        assert_eq!(
            script_of(&proc(1, 0, "/usr/bin/bash", "bash -e /opt/x.sh a")).as_deref(),
            Some("/opt/x.sh")
        );
        assert_eq!(script_of(&proc(1, 0, "/usr/bin/bash", "bash -c x")), None);
        assert_eq!(ext("/a/b.txt"), Some("txt"));
        assert_eq!(ext("/a/b.txt.locked"), Some("locked"));
        assert_eq!(ext("/a/.bashrc"), None);
        assert_eq!(ext("/a/sedX1"), None);
    }
}
