//! Watches the directories persistence, accounts and privilege escalation live in with
//! fanotify in directory-fid mode (kernel 5.9+): every create, rename-in, write and attribute
//! change comes with the writer's pid, which inotify cannot tell. Inode marks, not recursive:
//! the list below is the set of directories. Runs on its own thread; each event goes out with
//! what the thread read of the file ([`FileFacts`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::detect::files::{self, FileEvent, FileFacts, FileOp};
use crate::fanotify;

/// Directories watched, when they exist, beside [`files::PROGRAM_DIRS`] (and each home
/// directory and its `.ssh`): where persistence and accounts live.
pub const DIRS: &[&str] = &[
    "/etc",
    "/etc/cron.d",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/var/spool/cron",
    "/var/spool/cron/crontabs",
    "/etc/systemd/system",
    "/etc/systemd/system/multi-user.target.wants",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/etc/init.d",
    "/etc/profile.d",
    "/root",
    "/root/.ssh",
];

/// A shell binary's size and hash, to recognise copies.
#[derive(Debug, Clone)]
pub struct ShellPrint {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

pub struct Watcher {
    fd: OwnedFd,
    /// Directory handle bytes -> path.
    dirs: HashMap<Vec<u8>, String>,
}

const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_MOVED_TO
    | libc::FAN_ATTRIB
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_DELETE
    | libc::FAN_EVENT_ON_CHILD;

/// Sets up the marks; Err when fanotify in this mode is refused (old kernel, no privilege).
pub fn watch(extra: &[PathBuf]) -> Result<Watcher, String> {
    let fd = fanotify::init()?;
    let mut dirs = HashMap::new();
    let mut paths: Vec<PathBuf> = DIRS
        .iter()
        .chain(files::PROGRAM_DIRS)
        .map(PathBuf::from)
        .collect();
    paths.extend(extra.iter().cloned());
    for p in paths {
        let Ok(canon) = std::fs::canonicalize(&p) else {
            continue;
        };
        if !canon.is_dir() {
            continue;
        }
        let Some(h) = fanotify::handle_of(&canon) else {
            continue;
        };
        if dirs.contains_key(&h) {
            continue; // /bin -> /usr/bin on merged-/usr systems
        }
        if let Err(e) = fanotify::mark(&fd, &canon, MASK, false) {
            tracing::warn!(dir = %canon.display(), error = %e, "not watching a directory");
            continue;
        }
        // Report the path as asked for: /bin/x stays /bin/x only if /bin is real.
        dirs.insert(h, canon.to_string_lossy().into_owned());
    }
    if dirs.is_empty() {
        return Err("no directory could be watched".into());
    }
    Ok(Watcher { fd, dirs })
}

/// Home directories and their `.ssh`, from /etc/passwd (uid >= 1000 and root's are in DIRS).
pub fn home_dirs(passwd: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let uid: u32 = f[2].parse().unwrap_or(0);
        if uid >= 1000 && f[5].starts_with("/home/") {
            out.push(PathBuf::from(f[5]));
            out.push(PathBuf::from(f[5]).join(".ssh"));
        }
    }
    out
}

/// Reads what the detectors need of a file; None when it is gone.
pub fn facts(path: &str, shells: &[ShellPrint]) -> Option<FileFacts> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let caps = m.is_file() && xattr_exists(path, "security.capability");
    let shell_copy_of = if m.is_file() && shells.iter().any(|s| s.size == m.size()) {
        crate::inventory::collect::hashcache::hash_file(Path::new(path)).and_then(|h| {
            shells
                .iter()
                .find(|s| s.sha256 == h && s.size == m.size())
                .map(|s| s.path.clone())
        })
    } else {
        None
    };
    Some(FileFacts {
        mode: m.mode(),
        uid: m.uid(),
        size: m.size(),
        nlink: m.nlink(),
        dev: m.dev(),
        ino: m.ino(),
        caps,
        shell_copy_of,
    })
}

fn xattr_exists(path: &str, name: &str) -> bool {
    let (Ok(p), Ok(n)) = (CString::new(path), CString::new(name)) else {
        return false;
    };
    // SAFETY: a size query (null buffer, size 0) on valid C strings.
    unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// The file operation an event stands for; None for what the detectors do not look at.
fn op_of(mask: u64) -> Option<FileOp> {
    if mask & libc::FAN_CLOSE_WRITE != 0 {
        Some(FileOp::Write)
    } else if mask & libc::FAN_MOVED_TO != 0 {
        Some(FileOp::MovedTo)
    } else if mask & libc::FAN_CREATE != 0 {
        Some(FileOp::Create)
    } else if mask & libc::FAN_ATTRIB != 0 {
        Some(FileOp::Attrib)
    } else if mask & libc::FAN_DELETE != 0 {
        Some(FileOp::Delete)
    } else {
        None
    }
}

impl Watcher {
    /// Runs on the calling (dedicated) thread until the receiver goes away.
    pub fn run(
        self,
        tx: mpsc::Sender<FileEvent>,
        shells: Arc<std::sync::Mutex<Vec<ShellPrint>>>,
        dropped: Arc<AtomicU64>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match fanotify::read(&self.fd, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "file watcher stopped");
                    return;
                }
            };
            let ts_ns = hostward_sensor::boot_ns();
            let prints = shells.lock().map(|s| s.clone()).unwrap_or_default();
            for raw in fanotify::decode(&buf[..n]) {
                let Some(op) = op_of(raw.mask) else { continue };
                let (pid, handle, name) = (raw.pid, raw.dir, raw.name);
                let Some(dir) = self.dirs.get(&handle) else {
                    continue;
                };
                if name.is_empty() || name == "." {
                    continue;
                }
                let path = format!("{}/{}", dir.trim_end_matches('/'), name);
                let facts = if op == FileOp::Delete {
                    None
                } else {
                    facts(&path, &prints)
                };
                let ev = FileEvent {
                    ts_ns,
                    pid,
                    path,
                    op,
                    facts,
                };
                match tx.try_send(ev) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}
