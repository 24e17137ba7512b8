//! Refusing isolated files at exec, copies included: fanotify `FAN_OPEN_EXEC_PERM` on every
//! local filesystem, answered by a dedicated thread. A file whose size is no isolated file's is
//! allowed at once and cached (an ignore mark, dropped by the kernel when the file changes);
//! only a size match is hashed. With an exec check set (the malware scanner's real time), a
//! file that is not isolated is also put to it before it runs: a first run waits for its scan,
//! later runs of the unchanged file are cached the same way. Marks exist only while something
//! is isolated or a check is set, so a host with neither pays nothing. This works on every
//! sensor tier, and without one.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::fanotify;

/// Filesystem types whose files can be executed and are local.
const FS_TYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "f2fs", "zfs", "vfat", "reiserfs",
    "jfs",
];

pub type Denied = Arc<Mutex<Vec<(u64, String)>>>;

/// Decides whether a file that is not isolated may run: called on the exec-deny thread with the
/// file and the executing thread's id, while that exec waits. It must answer within its own
/// time bound and never start a program itself (that exec would wait on this thread).
pub type ExecCheck = Arc<dyn Fn(&std::fs::File, u32) -> bool + Send + Sync>;
pub type Check = Arc<std::sync::RwLock<Option<ExecCheck>>>;

pub struct Deny {
    fd: OwnedFd,
    marked: bool,
}

/// Mount points of the local filesystems, one per filesystem, from /proc/self/mounts text.
pub fn mount_points(mounts: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !FS_TYPES.contains(&f[2]) {
            continue;
        }
        // The same device mounted twice is one filesystem (one mark).
        let dev = format!("{} {}", f[0], f[2]);
        if f[2] != "tmpfs" && seen.contains(&dev) {
            continue;
        }
        seen.push(dev);
        out.push(f[1].replace("\\040", " "));
    }
    out
}

pub fn open() -> Result<Deny, String> {
    Ok(Deny {
        fd: fanotify::init_perm()?,
        marked: false,
    })
}

impl Deny {
    fn mark(&self, flags: u32, path: &str) -> Result<(), String> {
        let c = CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: our fanotify fd; c lives for the call.
        let rc = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                flags,
                libc::FAN_OPEN_EXEC_PERM,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(format!("{path}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Marks every local filesystem (when `on`) or removes the marks.
    pub fn set(&mut self, on: bool) -> Vec<String> {
        if on == self.marked {
            return Vec::new();
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let flags = if on {
            libc::FAN_MARK_ADD
        } else {
            libc::FAN_MARK_REMOVE
        } | libc::FAN_MARK_FILESYSTEM;
        let mut problems = Vec::new();
        for m in mount_points(&mounts) {
            if let Err(e) = self.mark(flags, &m) {
                problems.push(e);
            }
        }
        if !on {
            // Drops the filesystem marks, then the ignore marks cached for allowed files
            // (inode marks: a flush without a mark-type flag).
            for kind in [libc::FAN_MARK_FILESYSTEM, 0] {
                // SAFETY: our fanotify fd.
                unsafe {
                    libc::fanotify_mark(
                        self.fd.as_raw_fd(),
                        libc::FAN_MARK_FLUSH | kind,
                        0,
                        libc::AT_FDCWD,
                        std::ptr::null(),
                    );
                }
            }
        }
        self.marked = on;
        problems
    }

    /// Drops the cache of allowed files (their ignore marks): every file is checked again at
    /// its next run, as when the exec check or its rules change.
    pub fn reset(&mut self) -> Vec<String> {
        if !self.marked {
            return Vec::new();
        }
        let mut p = self.set(false);
        p.extend(self.set(true));
        p
    }

    /// Answers permission events forever, on the calling thread. Must never block on anything
    /// but the file being executed and the exec check: every exec on the host waits for this
    /// answer.
    pub fn serve(
        fd: i32,
        denied: Denied,
        check: Check,
        refused: Arc<std::sync::atomic::AtomicU64>,
    ) {
        let mut buf = vec![0u8; 4096];
        loop {
            // SAFETY: live buffer; fd stays open while the owning Deny lives (as long as us).
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            for ev in fanotify::perm_events(&buf[..n as usize]) {
                let mut allow = verdict(&ev.file, &denied);
                if allow {
                    let c = check.read().ok().and_then(|c| c.clone());
                    if let Some(c) = c {
                        allow = c(&ev.file, ev.tid);
                    }
                }
                if !allow {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                fanotify::respond(fd, &ev, allow);
                if allow {
                    // Cache: no more events for this inode until it is modified.
                    // SAFETY: our fanotify fd and the event's file descriptor.
                    unsafe {
                        libc::fanotify_mark(
                            fd,
                            libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK,
                            libc::FAN_OPEN_EXEC_PERM,
                            ev.file.as_raw_fd(),
                            std::ptr::null(),
                        );
                    }
                }
            }
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Allow unless the file's size and SHA-256 are an isolated file's.
fn verdict(mut file: &std::fs::File, denied: &Denied) -> bool {
    let Ok(meta) = file.metadata() else {
        return true;
    };
    let list = denied.lock().map(|d| d.clone()).unwrap_or_default();
    if !list.iter().any(|(size, _)| *size == meta.len()) {
        return true;
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => h.update(&buf[..k]),
            Err(_) => return true,
        }
    }
    let sum = hex::encode(h.finalize());
    !list.iter().any(|(_, s)| *s == sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mark_per_local_filesystem() {
        let mounts = "proc /proc proc rw 0 0\n/dev/vda1 / ext4 rw 0 0\n/dev/vda1 /srv ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\nsysfs /sys sysfs rw 0 0\n/dev/vdb /data\\040x xfs rw 0 0\n";
        assert_eq!(mount_points(mounts), ["/", "/tmp", "/dev/shm", "/data x"]);
    }
}
