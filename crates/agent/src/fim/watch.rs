//! Real-time events for the monitored paths: fanotify inode marks on every directory the
//! policy reaches (the important files' directories, each monitored directory and, when it is
//! recursive, each directory below it), reported with the writer's pid. A thread reads the
//! events, names the directory each came from and reads the writer from /proc at once, while
//! it is most likely still running; the runner decides what is in scope.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hostward_proto::alarm::ProcessInfo;
use tokio::sync::mpsc;

use crate::fanotify;

const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_ATTRIB
    | libc::FAN_EVENT_ON_CHILD
    | libc::FAN_ONDIR;

/// Directories marked at most below a watched tree (ransomware's, real-time malware's).
pub const MAX_MARKS: usize = 20_000;

/// `dir` and the directories below it (same rules as a walk: no symlinks followed), at most
/// [`MAX_MARKS`] in all.
pub fn dirs_below(root: &Path, dir: &str, out: &mut BTreeSet<String>) {
    let mut todo = vec![dir.to_string()];
    while let Some(d) = todo.pop() {
        if out.len() >= MAX_MARKS {
            return;
        }
        let p = root.join(d.trim_start_matches('/'));
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(format!("{d}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out.insert(d);
    }
}

/// What the reader thread passes on.
#[derive(Debug)]
pub enum WatchEvent {
    /// Something happened at `path` (`mask`: the fanotify event bits, several when the
    /// kernel merged events), done by `process` when the kernel named one.
    Seen {
        path: String,
        process: Option<ProcessInfo>,
        mask: u64,
    },
    /// Events were lost (the kernel's queue or ours was full): only a rescan knows what changed.
    Overflow,
}

/// The marks and the thread reading them.
pub struct Watch {
    fd: Arc<OwnedFd>,
    /// Directory handle -> the directory's path, shared with the reader.
    dirs: Arc<Mutex<HashMap<Vec<u8>, String>>>,
    marked: BTreeSet<String>,
    mask: u64,
}

impl Watch {
    /// Starts the reader; Err when fanotify is refused (no privilege, a kernel before 5.9).
    /// `modify` adds every content change (a `truncate` by path, a write through a descriptor
    /// opened earlier) to the closes: for watchers that must see a change before it is closed,
    /// at the cost of an event per write.
    pub fn start(
        tx: mpsc::Sender<WatchEvent>,
        lost: Arc<AtomicU64>,
        modify: bool,
    ) -> Result<Watch, String> {
        let fd = Arc::new(fanotify::init()?);
        let dirs = Arc::new(Mutex::new(HashMap::new()));
        let (rfd, rdirs) = (fd.clone(), dirs.clone());
        std::thread::Builder::new()
            .name("fim-watch".into())
            .spawn(move || read_loop(&rfd, &rdirs, &tx, &lost))
            .map_err(|e| format!("starting the watcher thread: {e}"))?;
        Ok(Watch {
            fd,
            dirs,
            marked: BTreeSet::new(),
            mask: if modify {
                MASK | libc::FAN_MODIFY
            } else {
                MASK
            },
        })
    }

    /// Marks exactly `wanted` (host paths of directories): adds what is new, removes what is
    /// no longer wanted. A directory that cannot be marked (gone, not a directory) is left
    /// out; the next scan sees what is in it.
    pub fn set(&mut self, root: &Path, wanted: &BTreeSet<String>) {
        let gone: Vec<String> = self.marked.difference(wanted).cloned().collect();
        for d in gone {
            let p = root.join(d.trim_start_matches('/'));
            let _ = fanotify::mark(&self.fd, &p, self.mask, true);
            if let Ok(mut m) = self.dirs.lock() {
                m.retain(|_, v| *v != d);
            }
            self.marked.remove(&d);
        }
        for d in wanted.difference(&self.marked.clone()) {
            self.add(root, d);
        }
    }

    /// Marks one more directory (one created or moved into a recursive tree).
    pub fn add(&mut self, root: &Path, dir: &str) {
        if self.marked.contains(dir) {
            return;
        }
        let p = root.join(dir.trim_start_matches('/'));
        if !p.is_dir() {
            return;
        }
        let Some(h) = fanotify::handle_of(&p) else {
            return;
        };
        match fanotify::mark(&self.fd, &p, self.mask, false) {
            Ok(()) => {
                if let Ok(mut m) = self.dirs.lock() {
                    m.insert(h, dir.to_string());
                }
                self.marked.insert(dir.to_string());
            }
            Err(e) => tracing::warn!(dir, error = %e, "file integrity: not watching a directory"),
        }
    }

    pub fn marked(&self) -> usize {
        self.marked.len()
    }
}

fn read_loop(
    fd: &OwnedFd,
    dirs: &Mutex<HashMap<Vec<u8>, String>>,
    tx: &mpsc::Sender<WatchEvent>,
    lost: &AtomicU64,
) {
    let me = std::process::id();
    let mut buf = vec![0u8; 64 * 1024];
    // The last writer read, so a burst of one process's events reads /proc once.
    let mut last: Option<(u32, std::time::Instant, Option<ProcessInfo>)> = None;
    loop {
        let n = match fanotify::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "file integrity watcher stopped");
                let _ = tx.try_send(WatchEvent::Overflow);
                return;
            }
        };
        for raw in fanotify::decode(&buf[..n]) {
            let ev = if raw.overflow() {
                WatchEvent::Overflow
            } else {
                if raw.pid == me {
                    continue; // the agent's own work (a restore) is not a change to report
                }
                let Some(dir) = dirs.lock().ok().and_then(|m| m.get(&raw.dir).cloned()) else {
                    continue;
                };
                let path = if raw.name.is_empty() || raw.name == "." {
                    dir
                } else {
                    format!("{}/{}", dir.trim_end_matches('/'), raw.name)
                };
                let fresh = last.as_ref().is_some_and(|(pid, at, _)| {
                    *pid == raw.pid && at.elapsed() < std::time::Duration::from_secs(1)
                });
                if !fresh {
                    last = Some((raw.pid, std::time::Instant::now(), writer(raw.pid)));
                }
                WatchEvent::Seen {
                    path,
                    process: last.as_ref().and_then(|(_, _, p)| p.clone()),
                    mask: raw.mask,
                }
            };
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The writing process as /proc shows it now; only its pid when it is already gone.
pub fn writer(pid: u32) -> Option<ProcessInfo> {
    if pid == 0 {
        return None;
    }
    let Some(e) = hostward_sensor::procfs::exec(Path::new("/proc"), pid, 0) else {
        // Exited, maybe not yet reaped: a zombie's stat still names its parent.
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let after = &s[s.rfind(')')? + 1..];
                after.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        return Some(ProcessInfo {
            pid,
            ppid,
            ..Default::default()
        });
    };
    let mut cmdline = e.argv.join(" ");
    if cmdline.len() > 1024 {
        let mut cut = 1021;
        while !cmdline.is_char_boundary(cut) {
            cut -= 1;
        }
        cmdline.truncate(cut);
        cmdline.push('…');
    }
    Some(ProcessInfo {
        pid,
        ppid: e.task.ppid,
        exe: e.filename,
        cmdline,
        uid: e.task.uid,
        euid: e.task.euid,
        user: user_name(e.task.uid),
        cwd: e.cwd,
        tty: e.tty,
        sha256: None,
    })
}

pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_default()
}
