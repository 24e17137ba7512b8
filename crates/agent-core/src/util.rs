//! Small helpers every part of the agent needs once: the clock (Unix time, the host's UTC
//! offset) and atomic file replacement. They live here so that modules need not import each
//! other, or the link, for them.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context, Result, anyhow};

/// Unix seconds; 0 if the clock is before 1970 (the center's clock-skew check reports it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Local time minus UTC at `now`, from the host's time zone (TZ, /etc/localtime).
pub fn local_offset_secs(now: i64) -> i64 {
    use nix::libc;
    let t: libc::time_t = now as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame; it is the
    // reentrant variant, safe with other threads.
    let ok = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if ok {
        // SAFETY: localtime_r succeeded, so `tm` is initialised.
        unsafe { tm.assume_init() }.tm_gmtoff
    } else {
        0
    }
}

/// Temp file in the same directory + fsync + rename: a crash leaves the old file or the new
/// one, never half of one. The mode is set at creation so a key is never briefly readable.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if path.file_name().is_none() {
        return Err(anyhow!("{} has no file name", path.display()));
    }
    replace_file(path, data, mode, true).with_context(|| format!("writing {}", path.display()))
}

/// The one implementation behind [`write_atomic`]. `durable: false` skips the fsyncs, for
/// files that are a cache of state held elsewhere too and are written often (blocks, log
/// positions): the fsync would cost more than losing the last write after a power cut.
pub fn replace_file(path: &Path, data: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only on creation: a leftover temp file must not lend us its mode.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable && let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-01 12:00:00 UTC
    const NOON: i64 = 1_796_126_400;

    #[test]
    fn local_offset_of_utc_host_is_zero_or_a_whole_quarter_hour() {
        let off = local_offset_secs(NOON);
        assert_eq!(off % 900, 0, "{off}");
        assert!(off.abs() <= 14 * 3600);
    }

    #[test]
    fn replaced_files_take_the_mode_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        std::fs::write(
            dir.path()
                .join(format!(".f.json.tmp{}", std::process::id())),
            "x",
        )
        .unwrap();
        for durable in [true, false] {
            replace_file(&path, b"{}", 0o600, durable).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                (mode, std::fs::read(&path).unwrap()),
                (0o600, b"{}".to_vec())
            );
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomic(Path::new("/"), b"", 0o600).is_err());
    }
}
