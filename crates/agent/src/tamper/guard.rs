//! The permission group of tamper protection, answered by a dedicated thread. It marks every
//! protected directory (`FAN_OPEN_PERM`): every open of a protected file waits for its answer,
//! so it answers from what it can tell at once. The kernel has counted a write-opener as a
//! writer of the file before it asks us, so when a read lease can be taken on the file nobody
//! writes it and the open is a read, allowed on the spot (two fcntl calls); otherwise the
//! opening thread's flags are read from its `/proc/<tid>/syscall` ([`super::intent`]) and a
//! write is allowed only to a privileged executable. It also marks the privileged executables
//! (`FAN_OPEN_EXEC_PERM`): when one starts, its exec is held until the runner has lifted the
//! directory locks for it (a deploy). Refusals and privileged writes go to the runner
//! afterwards, never before the answer.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use hostward_proto::alarm::ProcessInfo;
use hostward_proto::tamper::ProtectedDir;
use tokio::sync::mpsc;

use super::intent::{self, Intent};
use crate::fanotify;

const MASK: u64 = libc::FAN_OPEN_PERM | libc::FAN_EVENT_ON_CHILD;

/// What the guard decides by: who may write, and which file types are left out.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub privileged: Vec<String>,
    pub dirs: Vec<ProtectedDir>,
}

/// What the guard tells the runner.
#[derive(Debug)]
pub enum Verdict {
    /// A write refused: the file, the process (read while it waited), why it was refused.
    Refused {
        path: String,
        process: ProcessInfo,
        why: String,
    },
    /// A privileged process opened a protected file for writing: its change is the new
    /// reference.
    Privileged { path: String },
    /// A privileged executable is starting as `pid`; its exec waits until `ready` is
    /// answered (or 3 s pass).
    Exec {
        pid: u32,
        /// The privileged executable being started.
        exe: String,
        ready: std::sync::mpsc::Sender<()>,
    },
}

pub struct Guard {
    fd: Arc<OwnedFd>,
    marked: BTreeSet<String>,
    execs: BTreeSet<String>,
    pub rules: Arc<RwLock<Rules>>,
    pub refused: Arc<AtomicU64>,
    /// The locks are lifted (a deploy, an unlock): a privileged exec need not wait.
    pub deploying: Arc<std::sync::atomic::AtomicBool>,
}

impl Guard {
    pub fn start(tx: mpsc::Sender<Verdict>) -> Result<Guard, String> {
        let fd = Arc::new(fanotify::init_perm()?);
        let rules = Arc::new(RwLock::new(Rules::default()));
        let refused = Arc::new(AtomicU64::new(0));
        let deploying = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (f, r, n, d) = (
            fd.clone(),
            rules.clone(),
            refused.clone(),
            deploying.clone(),
        );
        std::thread::Builder::new()
            .name("tamper-guard".into())
            .spawn(move || serve(&f, &r, &n, &d, &tx))
            .map_err(|e| format!("starting the guard thread: {e}"))?;
        Ok(Guard {
            fd,
            marked: BTreeSet::new(),
            execs: BTreeSet::new(),
            deploying,
            rules,
            refused,
        })
    }

    /// Guards exactly the files directly in `dirs` (host paths under `root`); returns the
    /// directories that could not be marked, with why.
    pub fn set(&mut self, root: &Path, dirs: &BTreeSet<String>) -> Vec<String> {
        let mut problems = Vec::new();
        for d in self.marked.difference(dirs).cloned().collect::<Vec<_>>() {
            let _ = fanotify::mark(&self.fd, &root.join(d.trim_start_matches('/')), MASK, true);
            self.marked.remove(&d);
        }
        for d in dirs.difference(&self.marked.clone()) {
            match fanotify::mark(&self.fd, &root.join(d.trim_start_matches('/')), MASK, false) {
                Ok(()) => {
                    self.marked.insert(d.clone());
                }
                Err(e) => problems.push(format!("{d}: {e}")),
            }
        }
        problems
    }

    pub fn marked(&self) -> usize {
        self.marked.len()
    }

    /// Watches exactly these executables (host paths) start; returns those that could not be
    /// marked (not installed on this host), with why.
    pub fn set_execs(&mut self, root: &Path, exes: &BTreeSet<String>) -> Vec<String> {
        let mask = libc::FAN_OPEN_EXEC_PERM;
        let mut problems = Vec::new();
        for e in self.execs.difference(exes).cloned().collect::<Vec<_>>() {
            let _ = fanotify::mark(&self.fd, &root.join(e.trim_start_matches('/')), mask, true);
            self.execs.remove(&e);
        }
        for e in exes.difference(&self.execs.clone()) {
            match fanotify::mark(&self.fd, &root.join(e.trim_start_matches('/')), mask, false) {
                Ok(()) => {
                    self.execs.insert(e.clone());
                }
                Err(err) => problems.push(format!("privileged {e}: {err}")),
            }
        }
        problems
    }
}

fn serve(
    fd: &Arc<OwnedFd>,
    rules: &RwLock<Rules>,
    refused: &AtomicU64,
    deploying: &std::sync::atomic::AtomicBool,
    tx: &mpsc::Sender<Verdict>,
) {
    let me = std::process::id();
    // A lease break would signal us with SIGIO, whose default is to end the process.
    // SAFETY: setting a signal's disposition to ignore.
    unsafe {
        libc::signal(libc::SIGIO, libc::SIG_IGN);
    }
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match fanotify::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                // Nobody answers from here on: drop every mark, so no open waits forever.
                tracing::error!(error = %e, "tamper guard stopped; writes are no longer refused");
                // SAFETY: our fanotify fd; a flush takes no path.
                unsafe {
                    libc::fanotify_mark(
                        fd.as_raw_fd(),
                        libc::FAN_MARK_FLUSH,
                        0,
                        libc::AT_FDCWD,
                        std::ptr::null(),
                    );
                }
                return;
            }
        };
        for ev in fanotify::perm_events(&buf[..n]) {
            if ev.mask & libc::FAN_OPEN_EXEC_PERM != 0 && ev.mask & libc::FAN_OPEN_PERM == 0 {
                // A privileged executable starting: the locks go before it runs. Its exec
                // waits on a thread of its own, so this one goes on answering (the runner
                // opens protected files while it lifts the locks).
                let (ready, done) = std::sync::mpsc::channel();
                let pid = tgid(ev.tid).unwrap_or(ev.tid);
                let exe = std::fs::read_link(format!("/proc/self/fd/{}", ev.file.as_raw_fd()))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Read before the runner hears of it: its answer lifts the locks and sets the
                // flag, and an exec that saw the flag set by its own answer would not wait.
                let wait = !deploying.load(Ordering::Relaxed);
                let sent = tx.blocking_send(Verdict::Exec { pid, exe, ready }).is_ok() && wait;
                let group = fd.clone();
                let waiter = std::thread::Builder::new()
                    .name("tamper-exec".into())
                    .spawn(move || {
                        if sent {
                            let _ = done.recv_timeout(std::time::Duration::from_secs(3));
                        }
                        fanotify::respond(group.as_raw_fd(), &ev, true);
                    });
                if let Err(e) = waiter {
                    tracing::error!(error = %e, "no thread for a privileged exec; it runs locked");
                }
                continue;
            }
            let (allow, verdict) = decide(&ev, me, rules);
            fanotify::respond(fd.as_raw_fd(), &ev, allow);
            if !allow {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(v) = verdict {
                let _ = tx.try_send(v);
            }
        }
    }
}

fn own_thread(tid: u32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/task/{tid}")).is_ok()
}

/// The process a thread belongs to.
fn tgid(tid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// The opener's intent from its `/proc/<pid>/syscall`. The kernel wakes us as it queues the
/// event, so the opener may not be asleep yet: the file then says "running", and we read again
/// (for at most about 2 ms; it sleeps within microseconds).
fn opener_intent(pid: u32) -> Intent {
    let path = format!("/proc/{pid}/syscall");
    let mut last = Intent::Unknown(-1);
    for i in 0..200 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        last = intent::parse(&text);
        if last != Intent::Unknown(-1) || !text.starts_with("running") {
            return last;
        }
        if i < 20 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(10));
        }
    }
    last
}

/// Whether nobody has the file open for writing: a read lease conflicts with any writer,
/// including an opener the kernel is asking us about. The lease is dropped at once (while we
/// hold it, a writer's open would wait for us: we ignore SIGIO, which tells us of that).
fn no_writers(f: &std::fs::File) -> bool {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_SETLEASE takes an int.
    unsafe {
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) != 0 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
    }
    true
}

/// The answer to one open, and what to tell the runner.
fn decide(ev: &fanotify::PermEvent, me: u32, rules: &RwLock<Rules>) -> (bool, Option<Verdict>) {
    if ev.mask & libc::FAN_OPEN_PERM != 0 && no_writers(&ev.file) {
        return (true, None);
    }
    // One of our own threads (a scan, a restore, the backup).
    if ev.mask & libc::FAN_OPEN_PERM == 0 || ev.tid == me || own_thread(ev.tid) {
        return (true, None);
    }
    let why = match opener_intent(ev.tid) {
        Intent::Read => return (true, None),
        Intent::Write => "opened for writing".to_string(),
        Intent::Openat2(addr) => {
            let mut flags = [0u8; 8];
            let read = std::fs::File::open(format!("/proc/{}/mem", ev.tid))
                .and_then(|m| m.read_exact_at(&mut flags, addr));
            match read {
                Ok(()) if !intent::writes(u64::from_ne_bytes(flags)) => return (true, None),
                Ok(()) => "opened for writing (openat2)".to_string(),
                Err(e) => format!("openat2 flags unreadable ({e})"),
            }
        }
        Intent::Unknown(nr) => format!("opened by system call {nr}, which may write"),
    };
    // /proc/<tid> is the thread's view; its Tgid is the process.
    let pid = tgid(ev.tid).unwrap_or(ev.tid);
    let path = std::fs::read_link(format!("/proc/self/fd/{}", ev.file.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Ok(r) = rules.read() else {
        return (true, None);
    };
    if !r.dirs.iter().any(|d| d.covers(&path)) {
        return (true, None); // an excluded file type
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !exe.is_empty() && r.privileged.contains(&exe) {
        return (true, Some(Verdict::Privileged { path }));
    }
    drop(r);
    let process = crate::fim::watch::writer(pid).unwrap_or_default();
    (false, Some(Verdict::Refused { path, process, why }))
}
