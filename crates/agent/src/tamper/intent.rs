//! Whether an open writes: a permission event does not carry the open flags, so the guard
//! reads the opener's `/proc/<pid>/syscall` while it waits in the kernel and takes them from
//! the system call's arguments. Pure: a function of that text (and, for `openat2`, of the
//! flags word its argument points to).

/// What an open intends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Read,
    Write,
    /// `openat2`: the flags are in a struct at this address of the opener's memory.
    Openat2(u64),
    /// A system call we cannot read flags from (io_uring, an unknown architecture): refused
    /// for processes that are not privileged, since it may write.
    Unknown(i64),
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const OPEN: i64 = 2;
    pub const CREAT: i64 = 85;
    pub const OPENAT: i64 = 257;
    pub const OPEN_BY_HANDLE_AT: i64 = 304;
    pub const EXECVE: i64 = 59;
    pub const EXECVEAT: i64 = 322;
    pub const OPENAT2: i64 = 437;
    pub const USELIB: i64 = 134;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const OPEN: i64 = -100; // no open(2) on arm64
    pub const CREAT: i64 = -101;
    pub const OPENAT: i64 = 56;
    pub const OPEN_BY_HANDLE_AT: i64 = 265;
    pub const EXECVE: i64 = 221;
    pub const EXECVEAT: i64 = 281;
    pub const OPENAT2: i64 = 437;
    pub const USELIB: i64 = -102;
}

/// Whether open flags write: an access mode other than read-only, or truncation.
pub fn writes(flags: u64) -> bool {
    let f = flags as i32;
    (f & libc::O_ACCMODE) != libc::O_RDONLY || f & libc::O_TRUNC != 0
}

/// Reads the intent from `/proc/<pid>/syscall` text: "NR arg0 … arg5 sp pc" in hex after the
/// number ("running" or "-1 …" when the task is not in a system call).
pub fn parse(syscall: &str) -> Intent {
    let mut f = syscall.split_whitespace();
    let Some(Ok(n)) = f.next().map(|n| n.parse::<i64>()) else {
        return Intent::Unknown(-1);
    };
    let args: Vec<u64> = f
        .take(6)
        .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap_or(u64::MAX))
        .collect();
    let arg = |i: usize| args.get(i).copied();
    let by_flags = |v: Option<u64>| match v {
        Some(fl) if writes(fl) => Intent::Write,
        Some(_) => Intent::Read,
        None => Intent::Unknown(n),
    };
    match n {
        nr::OPEN => by_flags(arg(1)),
        nr::OPENAT | nr::OPEN_BY_HANDLE_AT => by_flags(arg(2)),
        nr::CREAT => Intent::Write,
        nr::EXECVE | nr::EXECVEAT | nr::USELIB => Intent::Read,
        nr::OPENAT2 => arg(2).map_or(Intent::Unknown(n), Intent::Openat2),
        _ => Intent::Unknown(n),
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn open_flags_from_the_syscall_line() {
        // openat(AT_FDCWD, path, O_WRONLY|O_CREAT|O_TRUNC, 0666), as bash's `>` does.
        assert_eq!(
            parse("257 0xffffffffffffff9c 0x55d0 0x241 0x1b6 0x0 0x0 0x7ffd 0x7f12"),
            Intent::Write
        );
        // openat(…, O_RDONLY|O_CLOEXEC): cat, nginx.
        assert_eq!(
            parse("257 0xffffffffffffff9c 0x55d0 0x80000 0x0 0x0 0x0 0x7ffd 0x7f12"),
            Intent::Read
        );
        // O_RDONLY|O_TRUNC truncates.
        assert_eq!(
            parse("257 0xffffff9c 0x1 0x200 0x0 0x0 0x0 0x1 0x1"),
            Intent::Write
        );
        // open(path, O_RDWR).
        assert_eq!(parse("2 0x55d0 0x2 0x0 0x0 0x0 0x0 0x1 0x1"), Intent::Write);
        assert_eq!(
            parse("85 0x55d0 0x1b6 0x0 0x0 0x0 0x0 0x1 0x1"),
            Intent::Write
        );
        assert_eq!(parse("59 0x55d0 0x1 0x2 0x0 0x0 0x0 0x1 0x1"), Intent::Read);
        assert_eq!(
            parse("437 0xffffff9c 0x55d0 0x7ffd1000 0x18 0x0 0x0 0x1 0x1"),
            Intent::Openat2(0x7ffd1000)
        );
        assert_eq!(
            parse("426 0x3 0x1 0x0 0x0 0x0 0x0 0x1 0x1"),
            Intent::Unknown(426)
        );
        assert_eq!(parse("running"), Intent::Unknown(-1));
        assert_eq!(parse(""), Intent::Unknown(-1));
    }
}
