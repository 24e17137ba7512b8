//! Refusing writes before they happen: a fanotify permission group with `FAN_OPEN_PERM` marks
//! on every protected directory, answered by a dedicated thread. Every open of a protected
//! file waits for it, so it answers from what it can read at once: the opener's open flags (its
//! `/proc/<pid>/syscall`, see [`super::intent`]) — a read is allowed on the spot — then, for a
//! write, whether the opener runs a privileged executable. Refusals and privileged writes go
//! to the runner afterwards, never before the answer.

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
    Privileged { path: String, pid: u32 },
}

pub struct Guard {
    fd: Arc<OwnedFd>,
    marked: BTreeSet<String>,
    pub rules: Arc<RwLock<Rules>>,
    pub refused: Arc<AtomicU64>,
}

impl Guard {
    pub fn start(tx: mpsc::Sender<Verdict>) -> Result<Guard, String> {
        let fd = Arc::new(fanotify::init_perm()?);
        let rules = Arc::new(RwLock::new(Rules::default()));
        let refused = Arc::new(AtomicU64::new(0));
        let (f, r, n) = (fd.clone(), rules.clone(), refused.clone());
        std::thread::Builder::new()
            .name("tamper-guard".into())
            .spawn(move || serve(&f, &r, &n, &tx))
            .map_err(|e| format!("starting the guard thread: {e}"))?;
        Ok(Guard {
            fd,
            marked: BTreeSet::new(),
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
}

fn serve(fd: &OwnedFd, rules: &RwLock<Rules>, refused: &AtomicU64, tx: &mpsc::Sender<Verdict>) {
    let me = std::process::id();
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

/// The answer to one open, and what to tell the runner.
fn decide(ev: &fanotify::PermEvent, me: u32, rules: &RwLock<Rules>) -> (bool, Option<Verdict>) {
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
        return (true, Some(Verdict::Privileged { path, pid }));
    }
    drop(r);
    let process = crate::fim::watch::writer(pid).unwrap_or_default();
    (false, Some(Verdict::Refused { path, process, why }))
}
