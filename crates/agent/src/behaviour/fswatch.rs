//! Watches the directories persistence, accounts and privilege escalation live in with
//! fanotify in directory-fid mode (kernel 5.9+): every create, rename-in, write and attribute
//! change comes with the writer's pid, which inotify cannot tell. Inode marks, not recursive:
//! the list below is the set of directories. Runs on its own thread; each event goes out with
//! what the thread read of the file ([`FileFacts`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::detect::files::{self, FileEvent, FileFacts, FileOp};

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

fn handle_of(path: &Path) -> Option<Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 8 + 128];
    // file_handle { handle_bytes: u32, handle_type: i32, f_handle[] }
    buf[..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: buf holds a file_handle header with room for 128 handle bytes, as handle_bytes
    // says; c and mount_id live for the call.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut mount_id,
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let n = u32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
    Some(buf[4..8 + n].to_vec())
}

/// Sets up the marks; Err when fanotify in this mode is refused (old kernel, no privilege).
pub fn watch(extra: &[PathBuf]) -> Result<Watcher, String> {
    // SAFETY: plain syscall; the result is checked before it is owned.
    let raw = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_REPORT_DFID_NAME,
            (libc::O_RDONLY | libc::O_LARGEFILE) as u32,
        )
    };
    if raw < 0 {
        return Err(format!(
            "fanotify_init: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh descriptor we own from here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
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
        let Some(h) = handle_of(&canon) else { continue };
        if dirs.contains_key(&h) {
            continue; // /bin -> /usr/bin on merged-/usr systems
        }
        let Ok(c) = CString::new(canon.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: fd is our fanotify descriptor; c lives for the call.
        let rc = unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD,
                MASK,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        if rc != 0 {
            tracing::warn!(dir = %canon.display(), error = %std::io::Error::last_os_error(), "not watching a directory");
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

/// Decodes one read buffer of fanotify events into (op, writer pid, dir handle, name).
pub fn decode(buf: &[u8]) -> Vec<(FileOp, u32, Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 24 || at + len > buf.len() {
            break;
        }
        let meta_len =
            u16::from_ne_bytes(buf[at + 6..at + 8].try_into().expect("2 bytes")) as usize;
        let mask = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().expect("8 bytes"));
        let pid =
            i32::from_ne_bytes(buf[at + 20..at + 24].try_into().expect("4 bytes")).max(0) as u32;
        let op = if mask & libc::FAN_CLOSE_WRITE != 0 {
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
        };
        let mut info = at + meta_len.max(24);
        while let (Some(op), true) = (op, info + 4 <= at + len) {
            let kind = buf[info];
            let ilen =
                u16::from_ne_bytes(buf[info + 2..info + 4].try_into().expect("2 bytes")) as usize;
            if ilen < 4 || info + ilen > at + len {
                break;
            }
            // header (4) + fsid (8) + file_handle { bytes: u32, type: i32, handle[bytes] } + name
            if kind == libc::FAN_EVENT_INFO_TYPE_DFID_NAME && ilen >= 20 {
                let h = info + 12;
                let hb = u32::from_ne_bytes(buf[h..h + 4].try_into().expect("4 bytes")) as usize;
                let name_at = h + 8 + hb;
                if name_at <= info + ilen {
                    let handle = buf[h + 4..name_at].to_vec();
                    let raw = &buf[name_at..info + ilen];
                    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
                    out.push((op, pid, handle, name));
                }
            }
            info += ilen;
        }
        at += len;
    }
    out
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
            // SAFETY: buf is a live buffer of its length; fd is ours.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "file watcher stopped");
                return;
            }
            let ts_ns = hostward_sensor::boot_ns();
            let prints = shells.lock().map(|s| s.clone()).unwrap_or_default();
            for (op, pid, handle, name) in decode(&buf[..n as usize]) {
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
