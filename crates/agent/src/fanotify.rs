//! fanotify, the one copy of its calls the modules share: notification groups in
//! directory-fid mode (kernel 5.9+: behaviour's persistence watch, fim, tamper's revert), which
//! report each event with the writer's pid and the directory handle + name it happened at, and
//! permission groups (quarantine's exec refusal, tamper's write refusal), whose events carry
//! an open descriptor and wait for our answer.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One event as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub mask: u64,
    /// The process that caused it (0 when the kernel could not tell).
    pub pid: u32,
    /// The directory's file handle (empty for a queue overflow).
    pub dir: Vec<u8>,
    /// The entry's name in that directory ("." or empty: the directory itself).
    pub name: String,
}

impl RawEvent {
    pub fn overflow(&self) -> bool {
        self.mask & libc::FAN_Q_OVERFLOW != 0
    }
}

/// A notification group reporting directory handles and names.
pub fn init() -> Result<OwnedFd, String> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A permission group: its events hold the file open (read-only) and block the opener until
/// [`respond`] answers. Events name the opening thread, not its process: what it is doing
/// (`/proc/<tid>/syscall`) is the thread's, and a multi-threaded opener's main thread is
/// busy elsewhere.
pub fn init_perm() -> Result<OwnedFd, String> {
    // SAFETY: plain syscall; the result is checked before it is owned.
    let raw = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_REPORT_TID,
            (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
        )
    };
    if raw < 0 {
        return Err(format!(
            "fanotify_init: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh descriptor we own from here.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// One permission event: the file (owned: dropping it closes it), the opening thread's id, the
/// mask.
pub struct PermEvent {
    pub file: std::fs::File,
    pub tid: u32,
    pub mask: u64,
}

/// Decodes one read buffer of a permission group.
pub fn perm_events(buf: &[u8]) -> Vec<PermEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 24 || at + len > buf.len() {
            break;
        }
        let mask = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().expect("8 bytes"));
        let efd = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
        let pid =
            i32::from_ne_bytes(buf[at + 20..at + 24].try_into().expect("4 bytes")).max(0) as u32;
        if efd >= 0 {
            use std::os::fd::FromRawFd as _;
            // SAFETY: the kernel gave us this descriptor with the event; we own it from here.
            let file = unsafe { std::fs::File::from_raw_fd(efd) };
            out.push(PermEvent {
                file,
                tid: pid,
                mask,
            });
        }
        at += len;
    }
    out
}

/// Answers a permission event: the opener goes on, or gets EPERM.
pub fn respond(group: std::os::fd::RawFd, ev: &PermEvent, allow: bool) {
    use std::os::fd::AsRawFd as _;
    let resp = libc::fanotify_response {
        fd: ev.file.as_raw_fd(),
        response: if allow {
            libc::FAN_ALLOW
        } else {
            libc::FAN_DENY
        },
    };
    // SAFETY: resp lives for the call; group is a permission group.
    unsafe {
        libc::write(
            group,
            (&resp as *const libc::fanotify_response).cast(),
            std::mem::size_of::<libc::fanotify_response>(),
        );
    }
}

/// Adds (or, with `remove`, takes away) an inode mark on a directory.
pub fn mark(fd: &OwnedFd, dir: &Path, mask: u64, remove: bool) -> std::io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = if remove {
        libc::FAN_MARK_REMOVE
    } else {
        libc::FAN_MARK_ADD
    };
    // SAFETY: fd is a fanotify descriptor; c lives for the call.
    let rc = unsafe {
        libc::fanotify_mark(
            fd.as_raw_fd(),
            flags | libc::FAN_MARK_DONT_FOLLOW,
            mask,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The file handle bytes the kernel reports for `path` (type + handle), to map events back.
pub fn handle_of(path: &Path) -> Option<Vec<u8>> {
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

/// Reads one buffer of events (blocking); Err when the descriptor failed (not on EINTR, which
/// reads again).
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: buf is a live buffer of its length; fd is ours.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Decodes one read buffer. A queue overflow comes as an event with its mask and no handle;
/// an event without a directory-handle record (other than an overflow) is skipped.
pub fn decode(buf: &[u8]) -> Vec<RawEvent> {
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
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            out.push(RawEvent {
                mask,
                pid,
                dir: Vec::new(),
                name: String::new(),
            });
        }
        let mut info = at + meta_len.max(24);
        while info + 4 <= at + len {
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
                    let raw = &buf[name_at..info + ilen];
                    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                    out.push(RawEvent {
                        mask,
                        pid,
                        dir: buf[h + 4..name_at].to_vec(),
                        name: String::from_utf8_lossy(&raw[..end]).into_owned(),
                    });
                }
            }
            info += ilen;
        }
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event as the kernel lays it out: metadata (24 bytes), then a DFID_NAME record.
    fn event(mask: u64, pid: i32, handle: &[u8], name: &str) -> Vec<u8> {
        let mut info = vec![libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0, 0, 0];
        info.extend_from_slice(&[0u8; 8]); // fsid
        info.extend_from_slice(&(handle.len() as u32 - 4).to_ne_bytes());
        info.extend_from_slice(handle);
        info.extend_from_slice(name.as_bytes());
        info.push(0);
        while info.len() % 4 != 0 {
            info.push(0);
        }
        let ilen = info.len() as u16;
        info[2..4].copy_from_slice(&ilen.to_ne_bytes());
        let mut m = Vec::new();
        m.extend_from_slice(&((24 + info.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&[3, 0]); // version, reserved
        m.extend_from_slice(&24u16.to_ne_bytes());
        m.extend_from_slice(&mask.to_ne_bytes());
        m.extend_from_slice(&(-1i32).to_ne_bytes()); // FAN_NOFD
        m.extend_from_slice(&pid.to_ne_bytes());
        m.extend_from_slice(&info);
        m
    }

    #[test]
    fn decodes_names_handles_pids_and_overflows_and_stops_at_a_torn_event() {
        let h = [1u8, 0, 0, 0, 9, 9, 9, 9];
        let mut buf = event(libc::FAN_CLOSE_WRITE, 42, &h, "passwd");
        buf.extend(event(libc::FAN_MOVED_TO, 7, &h, "x.html"));
        let mut over = vec![0u8; 24];
        over[..4].copy_from_slice(&24u32.to_ne_bytes());
        over[6..8].copy_from_slice(&24u16.to_ne_bytes());
        over[8..16].copy_from_slice(&libc::FAN_Q_OVERFLOW.to_ne_bytes());
        buf.extend(&over);
        let torn = event(libc::FAN_DELETE, 1, &h, "y");
        buf.extend(&torn[..30]);
        let ev = decode(&buf);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(
            (ev[0].mask, ev[0].pid, ev[0].name.as_str()),
            (libc::FAN_CLOSE_WRITE, 42, "passwd")
        );
        assert_eq!(
            ev[0].dir,
            h.to_vec(),
            "type and handle bytes, as handle_of gives them"
        );
        assert_eq!(ev[1].name, "x.html");
        assert!(ev[2].overflow() && ev[2].dir.is_empty());
    }
}
