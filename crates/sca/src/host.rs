//! What the evaluator may ask of a host: files, directory listings, process names and command
//! output. [`Host`] keeps the evaluator pure; [`RootHost`] is the real one, over a filesystem
//! root (`/` on a live host, a fixture tree in tests) that no policy path can leave.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a path is, symbolic links not followed (a listing) or followed (a stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutput {
    /// It ran and exited (`code` None: ended by a signal). Output is cut at the host's cap.
    Ran {
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    /// It ran past the time limit; its process group was killed.
    Killed { after: Duration },
    /// It was not run, or could not be started: why.
    NotRun(String),
}

/// The host a policy is evaluated against. Paths are absolute, as written in policies.
pub trait Host {
    /// The whole file, or an error (a file over the host's cap is an error, not a prefix: a
    /// verdict on part of a file could be wrong).
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>>;
    /// What `path` is, symbolic links followed.
    fn stat(&self, path: &str) -> io::Result<EntryKind>;
    /// The entries of a directory, symbolic links not followed, in name order.
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>>;
    /// Names of running processes (each process's `comm` and its program's file name).
    fn processes(&self) -> Vec<String>;
    /// Runs a shell command line.
    fn run(&self, command: &str) -> CommandOutput;
}

/// The real host, or a copy of one under `root`.
#[derive(Debug, Clone)]
pub struct RootHost {
    pub root: PathBuf,
    /// A command still running after this is killed with its process group.
    pub command_timeout: Duration,
    /// Bytes kept of each of a command's stdout and stderr.
    pub output_cap: usize,
    /// Largest file read.
    pub file_cap: u64,
}

/// Symbolic links followed in one path before it is refused (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

impl RootHost {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RootHost {
            root: root.into(),
            command_timeout: Duration::from_secs(30),
            output_cap: 256 * 1024,
            file_cap: 4 * 1024 * 1024,
        }
    }

    fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `path` resolved inside the root as if the root were `/`: `..` stops at the root and
    /// symbolic links are followed by hand, an absolute target starting again from the root, so
    /// no link in a fixture or container tree reaches the host's own files.
    pub fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let mut done: Vec<OsString> = Vec::new();
        let mut pending: Vec<OsString> = components_rev(Path::new(path));
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let mut candidate = self.root.clone();
            candidate.extend(&done);
            candidate.push(&part);
            match std::fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(io::Error::other(format!(
                            "{path}: too many levels of symbolic links"
                        )));
                    }
                    let target = std::fs::read_link(&candidate)?;
                    if target.is_absolute() {
                        done.clear();
                    }
                    pending.extend(components_rev(&target));
                }
                _ => done.push(part),
            }
        }
        let mut out = self.root.clone();
        out.extend(&done);
        Ok(out)
    }
}

/// The normal components of `p`, last first (a stack to pop); `.` dropped, `..` kept.
fn components_rev(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    v.reverse();
    v
}

fn kind_of(ft: std::fs::FileType) -> EntryKind {
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl Host for RootHost {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        let real = self.resolve(path)?;
        // The path was resolved link by link; O_NOFOLLOW keeps a link swapped in since then
        // from taking the read outside the root.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&real)?;
        let mut buf = Vec::new();
        f.take(self.file_cap + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > self.file_cap {
            return Err(io::Error::other(format!(
                "larger than {} bytes",
                self.file_cap
            )));
        }
        Ok(buf)
    }

    fn stat(&self, path: &str) -> io::Result<EntryKind> {
        let real = self.resolve(path)?;
        Ok(kind_of(std::fs::symlink_metadata(real)?.file_type()))
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let real = self.resolve(path)?;
        let mut out = Vec::new();
        for e in std::fs::read_dir(real)? {
            let e = e?;
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind: kind_of(e.file_type()?),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn processes(&self) -> Vec<String> {
        let mut names = Vec::new();
        let Ok(dir) = std::fs::read_dir(self.root.join("proc")) else {
            return names;
        };
        for e in dir.flatten() {
            let pid_dir = e.path();
            if !e
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            if let Ok(comm) = std::fs::read_to_string(pid_dir.join("comm")) {
                names.push(comm.trim_end_matches('\n').to_string());
            }
            // comm is cut at 15 bytes; the program's own name is not.
            if let Ok(cmdline) = std::fs::read(pid_dir.join("cmdline"))
                && let Some(argv0) = cmdline.split(|b| *b == 0).next()
                && !argv0.is_empty()
            {
                let argv0 = String::from_utf8_lossy(argv0);
                let base = argv0.rsplit('/').next().unwrap_or(&argv0);
                // "sshd: user [priv]" style titles: the program name is the first word.
                let base = base.split([' ', ':']).next().unwrap_or(base);
                if !base.is_empty() {
                    names.push(base.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn run(&self, command: &str) -> CommandOutput {
        if !self.is_live() {
            return CommandOutput::NotRun("commands only run on the live host".into());
        }
        run_limited(command, self.command_timeout, self.output_cap)
    }
}

/// `sh -c command` in a process group of its own, stdin closed, output capped, killed with its
/// whole group (children too) at the time limit.
fn run_limited(command: &str, limit: Duration, cap: usize) -> CommandOutput {
    let mut child = match Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return CommandOutput::NotRun(format!("cannot start /bin/sh: {e}")),
    };
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|p| drain(p, out.clone(), cap)),
        child.stderr.take().map(|p| drain(p, err.clone(), cap)),
    ];
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= limit => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return CommandOutput::NotRun(format!("waiting for the command: {e}")),
        }
    };
    let Some(status) = status else {
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return CommandOutput::Killed { after: limit };
    };
    // A background grandchild may keep the pipes open after the shell exits: the readers get
    // a short grace, then what they have read is used.
    let grace = Instant::now() + Duration::from_millis(500);
    for r in readers.into_iter().flatten() {
        while !r.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| {
        let g = b.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g).into_owned()
    };
    CommandOutput::Ran {
        code: status.code(),
        stdout: text(&out),
        stderr: text(&err),
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes (the rest is read and dropped so the
/// writer never blocks on a full pipe).
fn drain(
    mut pipe: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    cap: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut g = into.lock().unwrap_or_else(|p| p.into_inner());
                    let room = cap.saturating_sub(g.len());
                    g.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_never_leaves_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        std::fs::write(root.join("etc/ssh/sshd_config"), "x\n").unwrap();
        std::os::unix::fs::symlink("/etc/ssh/sshd_config", root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", root.join("etc/rel")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("etc/loop")).unwrap();
        let h = RootHost::new(root);
        assert_eq!(
            h.resolve("/etc/abs").unwrap(),
            root.join("etc/ssh/sshd_config")
        );
        assert_eq!(h.read_file("/etc/abs").unwrap(), b"x\n");
        assert_eq!(
            h.resolve("/../../etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(h.resolve("/etc/rel").unwrap(), root.join("etc/passwd"));
        assert!(h.read_file("/etc/rel").is_err());
        assert!(h.read_file("/etc/loop").is_err());
        assert_eq!(h.stat("/etc/ssh").unwrap(), EntryKind::Dir);
    }

    #[test]
    fn commands_run_only_on_the_live_host() {
        let t = tempfile::tempdir().unwrap();
        assert!(
            matches!(RootHost::new(t.path()).run("true"), CommandOutput::NotRun(r) if r.contains("live host"))
        );
        let live = RootHost::new("/");
        assert_eq!(
            live.run("echo hi; echo err >&2; exit 3"),
            CommandOutput::Ran {
                code: Some(3),
                stdout: "hi\n".into(),
                stderr: "err\n".into()
            }
        );
    }

    #[test]
    fn output_is_capped() {
        let mut live = RootHost::new("/");
        live.output_cap = 10;
        let CommandOutput::Ran { stdout, .. } = live.run("yes | head -c 100000") else {
            panic!()
        };
        assert_eq!(stdout.len(), 10);
    }

    #[test]
    fn a_hanging_command_is_killed_with_its_children() {
        let mut live = RootHost::new("/");
        live.command_timeout = Duration::from_secs(1);
        // The child sleep holds the pipes; killing only the shell would leave it running.
        let r = live.run("sleep 100 & sleep 100");
        assert_eq!(
            r,
            CommandOutput::Killed {
                after: Duration::from_secs(1)
            }
        );
    }
}
