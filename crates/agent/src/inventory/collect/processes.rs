//! Running processes from `/proc/<pid>`: parent, owner, start time, command line, and the
//! executable's hash, mode and owner. Kernel threads are left out: they have no executable.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hostward_proto::inventory::{CollectIssue, Items, Process};

use super::{Collected, Ctx};

/// Longest command line kept, in bytes.
pub const CMDLINE_MAX: usize = 4096;

const DELETED: &str = " (deleted)";

pub fn collect(ctx: &Ctx) -> Collected {
    let mut issues = Vec::new();
    let mut items = Vec::new();
    let Ok(dir) = std::fs::read_dir(ctx.path("/proc")) else {
        return Collected {
            items: Items::Processes(items),
            issues,
        };
    };
    let btime = boot_time(ctx, &mut issues);
    let ticks = clock_ticks();
    let users = super::accounts::user_names(ctx);
    let live = is_procfs(&ctx.path("/proc"));
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    pids.sort_unstable();
    for pid in pids {
        match process(ctx, pid, btime.unwrap_or(0), ticks, &users, live) {
            Ok(Some(p)) => items.push(p),
            Ok(None) => {}
            Err(issue) => issues.push(issue),
        }
    }
    if btime.is_none() && !items.is_empty() {
        issues.push(ctx.issue(
            "/proc/stat",
            None,
            "no btime line: start times are seconds since boot, not Unix times",
        ));
    }
    Collected {
        items: Items::Processes(items),
        issues,
    }
}

/// The process vanished while we read it: normal on a live system, not worth an issue.
fn gone(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH)
}

/// `Ok(None)` for a kernel thread or a process that exited mid-read.
fn process(
    ctx: &Ctx,
    pid: u32,
    btime: i64,
    ticks: i64,
    users: &HashMap<u32, String>,
    live: bool,
) -> Result<Option<Process>, CollectIssue> {
    let base = format!("/proc/{pid}");
    let read = |name: &str| -> Result<Option<String>, CollectIssue> {
        let file = format!("{base}/{name}");
        match std::fs::read(ctx.path(&file)) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(ctx.issue(&file, None, format!("cannot read: {e}"))),
        }
    };
    let Some(stat) = read("stat")? else {
        return Ok(None);
    };
    let (ppid, start_ticks) =
        parse_stat(&stat).map_err(|m| ctx.issue(&format!("{base}/stat"), Some(1), m))?;
    let Some(status) = read("status")? else {
        return Ok(None);
    };
    let uid =
        parse_uid(&status).map_err(|(line, m)| ctx.issue(&format!("{base}/status"), line, m))?;

    let exe_link = ctx.path(&format!("{base}/exe"));
    // No link: a kernel thread, a zombie, a process gone mid-read, or (without root) another
    // user's process. The command line tells them apart.
    let exe = std::fs::read_link(&exe_link)
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    let Some((cmdline, cmd_empty)) = read_cmdline(ctx, &format!("{base}/cmdline"))? else {
        return Ok(None);
    };
    if exe.is_none() && cmd_empty {
        return Ok(None);
    }
    let exe = exe.unwrap_or_default();

    // On a live procfs the exe link opens the very file the process runs, even when it was
    // deleted or lives in another mount namespace (a container), where the path names another
    // file or none. A fixture's links are plain symlinks to host paths, read under the root.
    let file = if exe.is_empty() {
        None
    } else if live || exe.ends_with(DELETED) {
        Some(exe_link)
    } else {
        Some(ctx.path(&exe))
    };
    let (sha256, exe_mode, exe_owner) = match &file {
        Some(f) => file_facts(ctx, f),
        None => (None, None, None),
    };
    Ok(Some(Process {
        pid,
        ppid,
        exe,
        cmdline,
        user: user(users, uid),
        uid,
        start_time: btime.saturating_add(start_ticks / ticks),
        sha256,
        exe_mode,
        exe_owner,
    }))
}

fn file_facts(ctx: &Ctx, file: &Path) -> (Option<String>, Option<String>, Option<u32>) {
    match std::fs::metadata(file) {
        Ok(m) => (
            ctx.hashes.sha256(file),
            Some(format!("{:04o}", m.mode() & 0o7777)),
            Some(m.uid()),
        ),
        Err(_) => (None, None, None),
    }
}

fn is_procfs(path: &Path) -> bool {
    use nix::sys::statfs::{PROC_SUPER_MAGIC, statfs};
    statfs(path).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
}

fn user(users: &HashMap<u32, String>, uid: u32) -> String {
    users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
}

/// `(ppid, starttime in clock ticks)`. The command name may hold spaces and `)`, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Result<(u32, i64), String> {
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| "no ')' closing the command name".to_string())?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]: field n is f[n - 3].
    let field = |n: usize, what: &str| {
        f.get(n - 3)
            .ok_or_else(|| format!("{what} (field {n}) missing"))
    };
    let ppid = field(4, "ppid")?;
    let ppid = ppid.parse().map_err(|_| format!("bad ppid {ppid:?}"))?;
    let start = field(22, "starttime")?;
    let start = start
        .parse()
        .map_err(|_| format!("bad starttime {start:?}"))?;
    Ok((ppid, start))
}

/// Real uid from `Uid:\treal\teffective\tsaved\tfs`; the error carries the line when known.
fn parse_uid(status: &str) -> Result<u32, (Option<u32>, String)> {
    for (i, line) in status.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let lineno = u32::try_from(i + 1).ok();
            let real = rest.split_whitespace().next().unwrap_or_default();
            return real
                .parse()
                .map_err(|_| (lineno, format!("bad real uid {real:?}")));
        }
    }
    Err((None, "no Uid: line".to_string()))
}

/// `(command line, whether it was empty)`; `None` when the process is gone. Only the first
/// few KiB are read: arguments can run to megabytes.
fn read_cmdline(ctx: &Ctx, file: &str) -> Result<Option<(String, bool)>, CollectIssue> {
    let mut bytes = Vec::new();
    let res = std::fs::File::open(ctx.path(file)).and_then(|f| {
        // A few bytes past the limit so a character cut by the read is not mistaken for one
        // that fits.
        f.take(CMDLINE_MAX as u64 + 4).read_to_end(&mut bytes)
    });
    match res {
        Ok(_) => {}
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(ctx.issue(file, None, format!("cannot read: {e}"))),
    }
    let empty = bytes.is_empty();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    for b in &mut bytes {
        if *b == 0 {
            *b = b' ';
        }
    }
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if s.len() > CMDLINE_MAX {
        let mut end = CMDLINE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    Ok(Some((s, empty)))
}

/// `btime` of `/proc/stat`, Unix seconds.
fn boot_time(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Option<i64> {
    let text = ctx.read_text("/proc/stat", issues)?;
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.strip_prefix("btime ") {
            match v.trim().parse() {
                Ok(t) => return Some(t),
                Err(_) => {
                    issues.push(ctx.issue(
                        "/proc/stat",
                        u32::try_from(i + 1).ok(),
                        format!("bad btime {v:?}"),
                    ));
                    return None;
                }
            }
        }
    }
    None
}

// c_long is i32 on 32-bit targets, so the conversion is not useless everywhere.
#[allow(clippy::useless_conversion)]
fn clock_ticks() -> i64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => i64::from(t),
        // USER_HZ has been 100 on every Linux architecture we ship for.
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use hostward_proto::InventoryPolicy;

    use super::super::HashCache;
    use super::*;

    const BTIME: i64 = 1_700_000_000;

    fn write(root: &Path, host: &str, bytes: impl AsRef<[u8]>) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn stat_line(pid: u32, comm: &str, ppid: u32, start: i64) -> String {
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        )
    }

    /// A process dir; `exe` None makes a kernel-thread-like entry without the link.
    fn process(root: &Path, pid: u32, comm: &str, exe: Option<&str>, cmdline: &[u8], uid: u32) {
        write(
            root,
            &format!("/proc/{pid}/stat"),
            stat_line(pid, comm, 1, 100 * pid as i64),
        );
        write(
            root,
            &format!("/proc/{pid}/status"),
            format!(
                "Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t{pid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\n"
            ),
        );
        write(root, &format!("/proc/{pid}/cmdline"), cmdline);
        if let Some(exe) = exe {
            symlink(exe, root.join(format!("proc/{pid}/exe"))).unwrap();
        }
    }

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/proc/stat",
            format!("cpu  1 2 3\nbtime {BTIME}\nprocesses 9\n"),
        );
        write(
            root,
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nbroken line\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n",
        );
        write(root, "/usr/sbin/nginx", b"nginx binary");
        std::fs::set_permissions(
            root.join("usr/sbin/nginx"),
            std::fs::Permissions::from_mode(0o4750),
        )
        .unwrap();
        process(
            root,
            1,
            "systemd",
            Some("/usr/lib/systemd/systemd"),
            b"/sbin/init\0splash\0",
            0,
        );
        process(root, 2, "kthreadd", None, b"", 0);
        process(
            root,
            77,
            "(a) b)",
            Some("/usr/sbin/nginx"),
            b"nginx: master process\0",
            33,
        );
        process(
            root,
            78,
            "gone",
            Some("/usr/sbin/old (deleted)"),
            b"old\0",
            1234,
        );
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::create_dir_all(root.join("proc/sys")).unwrap();
        dir
    }

    fn run(ctx: &Ctx) -> (Vec<Process>, Vec<CollectIssue>) {
        let c = collect(ctx);
        match c.items {
            Items::Processes(p) => (p, c.issues),
            other => panic!("wrong kind {other:?}"),
        }
    }

    #[test]
    fn processes_from_a_fixture_root() {
        let dir = fixture();
        let (policy, hashes) = (InventoryPolicy::default(), HashCache::default());
        let ctx = Ctx {
            root: dir.path(),
            policy: &policy,
            hashes: &hashes,
        };
        let (procs, issues) = run(&ctx);
        assert!(issues.is_empty(), "{issues:?}");
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 77, 78], "kernel thread 2 is skipped");

        let init = &procs[0];
        assert_eq!(init.exe, "/usr/lib/systemd/systemd");
        assert_eq!(init.cmdline, "/sbin/init splash");
        assert_eq!((init.uid, init.user.as_str()), (0, "root"));
        assert_eq!(init.start_time, BTIME + 100 / clock_ticks());
        assert_eq!(init.sha256, None, "the exe is not in the fixture");

        let nginx = &procs[1];
        assert_eq!(
            (nginx.ppid, nginx.uid, nginx.user.as_str()),
            (1, 33, "www-data")
        );
        assert_eq!(nginx.start_time, BTIME + 7700 / clock_ticks());
        assert_eq!(nginx.cmdline, "nginx: master process");
        assert_eq!(
            nginx.sha256.as_deref(),
            Some(super::super::hashcache::sha256_hex(b"nginx binary").as_str())
        );
        assert_eq!(nginx.exe_mode.as_deref(), Some("4750"));
        let owner = std::fs::metadata(dir.path().join("usr/sbin/nginx"))
            .unwrap()
            .uid();
        assert_eq!(nginx.exe_owner, Some(owner));

        let gone = &procs[2];
        assert_eq!(gone.exe, "/usr/sbin/old (deleted)");
        assert_eq!(gone.user, "1234", "unknown uid is shown as a number");

        // Unchanged executables are not hashed again.
        assert_eq!(hashes.len(), 1);
        let (again, _) = run(&ctx);
        assert_eq!(again, procs);
        assert_eq!(hashes.len(), 1);
    }

    #[test]
    fn stat_with_odd_command_names() {
        let s = stat_line(5, "(a) b)", 4, 12345);
        assert_eq!(parse_stat(&s), Ok((4, 12345)));
        let s = stat_line(5, "x) S 999 999 (", 3, 7);
        assert_eq!(parse_stat(&s), Ok((3, 7)));
        assert!(
            parse_stat("5 (sh) S 1 5")
                .unwrap_err()
                .contains("starttime")
        );
        assert!(parse_stat("5 sh S 1").unwrap_err().contains(")"));
        assert!(parse_stat("5 (sh) S x").unwrap_err().contains("ppid"));
    }

    #[test]
    fn long_command_lines_are_cut_at_a_character_boundary() {
        let dir = fixture();
        let root = dir.path();
        // 4095 ASCII bytes then a 3-byte character that would straddle the limit.
        let mut long = vec![b'a'; 4000];
        long.push(0);
        long.extend(std::iter::repeat_n(b'b', 94));
        long.extend("€€€".as_bytes());
        long.push(0);
        process(root, 90, "long", Some("/usr/sbin/nginx"), &long, 0);
        let (policy, hashes) = (InventoryPolicy::default(), HashCache::default());
        let (procs, issues) = run(&Ctx {
            root,
            policy: &policy,
            hashes: &hashes,
        });
        assert!(issues.is_empty(), "{issues:?}");
        let p = procs.iter().find(|p| p.pid == 90).unwrap();
        assert_eq!(p.cmdline.len(), 4095);
        assert!(p.cmdline.starts_with("aaaa"));
        assert_eq!(&p.cmdline[4000..4001], " ");
        assert!(p.cmdline.ends_with('b'));
    }

    #[test]
    fn damaged_files_are_issues_and_the_rest_is_collected() {
        let dir = fixture();
        let root = dir.path();
        process(root, 50, "bad", Some("/usr/sbin/nginx"), b"x\0", 0);
        write(root, "/proc/50/stat", b"50 (bad\xff\x00 S \n");
        process(root, 51, "bad", Some("/usr/sbin/nginx"), b"x\0", 0);
        write(root, "/proc/51/status", b"Name:\tbad\nUid:\t\xfe\xff\t0\n");
        // pid dir without files: exited between listing and reading
        std::fs::create_dir_all(root.join("proc/52")).unwrap();
        let (policy, hashes) = (InventoryPolicy::default(), HashCache::default());
        let (procs, issues) = run(&Ctx {
            root,
            policy: &policy,
            hashes: &hashes,
        });
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 77, 78]);
        let at: Vec<(&str, Option<u32>)> =
            issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        assert_eq!(
            at,
            [("/proc/50/stat", Some(1)), ("/proc/51/status", Some(2))],
            "{issues:#?}"
        );
    }

    #[test]
    fn deleted_executable_is_hashed_through_its_proc_link() {
        // A real process on this host whose binary was removed after it started.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("sleeper");
        std::fs::copy("/bin/sleep", &bin).unwrap();
        let want = super::super::hashcache::sha256_hex(&std::fs::read(&bin).unwrap());
        let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
        std::fs::remove_file(&bin).unwrap();
        let (policy, hashes) = (InventoryPolicy::default(), HashCache::default());
        let (procs, _) = run(&Ctx {
            root: Path::new("/"),
            policy: &policy,
            hashes: &hashes,
        });
        child.kill().ok();
        child.wait().ok();
        let p = procs
            .iter()
            .find(|p| p.pid == child.id())
            .expect("the child is listed");
        assert_eq!(p.exe, format!("{} (deleted)", bin.display()));
        assert_eq!(p.cmdline, format!("{} 30", bin.display()));
        assert_eq!(p.sha256.as_deref(), Some(want.as_str()));
        assert_eq!(p.ppid, std::process::id());
        let me = procs.iter().find(|p| p.pid == std::process::id()).unwrap();
        assert_eq!(
            me.exe,
            std::env::current_exe().unwrap().display().to_string()
        );
    }
}
