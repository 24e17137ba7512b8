//! The lock: the immutable attribute (`chattr +i`) on every protected directory and file. A
//! directory so marked refuses, in the kernel and to root too, every change of its entries:
//! creating a file (so not even an empty one is left behind by a refused `O_CREAT`), renaming
//! into or out of it, unlinking, hard-linking, making a subdirectory; a file so marked refuses
//! every write-open, truncate, mode and owner change. Reads cost nothing extra, and the mark
//! survives an agent restart.

use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS` (`_IOR/_IOW('f', 1/2, long)`) and `FS_IMMUTABLE_FL`.
const GETFLAGS: libc::c_ulong = 0x8008_6601;
const SETFLAGS: libc::c_ulong = 0x4008_6602;
const IMMUTABLE: libc::c_int = 0x10;

/// A directory or regular file, read-only, not following a symlink (whose attributes cannot
/// be set) and not blocking on a fifo.
fn open_dir(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn flags(f: &std::fs::File) -> std::io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    // SAFETY: the ioctl writes one int through a valid pointer.
    if unsafe { libc::ioctl(f.as_raw_fd(), GETFLAGS, &mut v) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v)
}

/// Whether the directory or file is locked now.
pub fn locked(dir: &Path) -> std::io::Result<bool> {
    Ok(flags(&open_dir(dir)?)? & IMMUTABLE != 0)
}

/// Locks (`on`) or unlocks a directory or file; a no-op when it already is.
pub fn set(dir: &Path, on: bool) -> std::io::Result<()> {
    let f = open_dir(dir)?;
    let v = flags(&f)?;
    let want = if on { v | IMMUTABLE } else { v & !IMMUTABLE };
    if want == v {
        return Ok(());
    }
    // SAFETY: the ioctl reads one int through a valid pointer.
    if unsafe { libc::ioctl(f.as_raw_fd(), SETFLAGS, &want) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with `dir` unlocked, and locks it again whatever `f` did (the agent's own restore
/// needs the directory open for a moment).
pub fn unlocked<T>(dir: &Path, f: impl FnOnce() -> T) -> std::io::Result<T> {
    let was = locked(dir)?;
    if was {
        set(dir, false)?;
    }
    let out = f();
    if was {
        set(dir, true)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_refuses_new_renamed_and_removed_entries_even_to_root() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: setting the immutable attribute needs root");
            return;
        }
        let d = tempfile::tempdir_in("/var/tmp").unwrap();
        let dir = d.path().join("www");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "hi").unwrap();
        set(&dir, true).unwrap();
        assert!(locked(&dir).unwrap());
        assert!(std::fs::write(dir.join("new.html"), "x").is_err(), "create");
        assert!(!dir.join("new.html").exists(), "not even an empty file");
        assert!(
            std::fs::remove_file(dir.join("index.html")).is_err(),
            "unlink"
        );
        assert!(
            std::fs::rename(dir.join("index.html"), d.path().join("out")).is_err(),
            "rename out"
        );
        std::fs::write(d.path().join("evil"), "x").unwrap();
        assert!(
            std::fs::rename(d.path().join("evil"), dir.join("index.html")).is_err(),
            "rename over"
        );
        assert!(
            std::fs::hard_link(d.path().join("evil"), dir.join("l")).is_err(),
            "link"
        );
        std::fs::write(dir.join("index.html"), "content stays writable").unwrap();
        set(&dir.join("index.html"), true).unwrap();
        assert!(
            std::fs::write(dir.join("index.html"), "x").is_err(),
            "a locked file refuses writes"
        );
        assert!(
            std::fs::read_to_string(dir.join("index.html")).is_ok(),
            "and reads"
        );
        set(&dir.join("index.html"), false).unwrap();
        let made = unlocked(&dir, || std::fs::write(dir.join("restored"), "ok").is_ok()).unwrap();
        assert!(made && locked(&dir).unwrap(), "locked again after");
        set(&dir, false).unwrap();
        assert!(!locked(&dir).unwrap());
    }
}
