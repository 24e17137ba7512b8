//! File behaviour: persistence written (cron, services, ld.so.preload, authorized_keys, shell
//! start-up files), set-user-ID bits or capabilities added, shell binaries copied, linked or
//! changed. Pure: the runner reports each change with the writer's pid and what it read of the
//! file ([`FileFacts`]).

use std::collections::HashMap;

use super::{Compiled, Finding, under_package_manager};
use crate::behaviour::table::Table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Closed after writing.
    Write,
    Create,
    /// Renamed into place.
    MovedTo,
    /// Mode, owner, links or extended attributes changed.
    Attrib,
    Delete,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    pub mode: u32,
    pub uid: u32,
    pub size: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    /// A `security.capability` extended attribute is set.
    pub caps: bool,
    /// The shell binary this file is a byte-for-byte copy of, when it is one.
    pub shell_copy_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    pub ts_ns: u64,
    /// The writer; 0 when the kernel did not say.
    pub pid: u32,
    pub path: String,
    pub op: FileOp,
    /// None when the file was gone by the time it was read (a temporary file renamed away).
    pub facts: Option<FileFacts>,
}

/// A shell binary as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellFile {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
}

/// Which persistence alarm a written path is, if any.
pub fn persistence_type(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path == "/etc/ld.so.preload" {
        return Some("persistence_preload");
    }
    if path == "/etc/crontab"
        || path.starts_with("/etc/cron.")
        || path.starts_with("/var/spool/cron/")
        || path.starts_with("/etc/anacrontab")
    {
        return Some("persistence_cron");
    }
    if path.starts_with("/etc/systemd/system/")
        || path.starts_with("/lib/systemd/system/")
        || path.starts_with("/usr/lib/systemd/system/")
        || path.starts_with("/etc/init.d/")
        || path == "/etc/rc.local"
    {
        return Some("persistence_service");
    }
    if path.contains("/.ssh/authorized_keys") {
        return Some("persistence_ssh_key");
    }
    if path == "/etc/profile"
        || path.starts_with("/etc/profile.d/")
        || path == "/etc/bash.bashrc"
        || path == "/etc/environment"
        || ((path.starts_with("/root/") || path.starts_with("/home/"))
            && matches!(
                name,
                ".bashrc" | ".bash_profile" | ".profile" | ".zshrc" | ".bash_login"
            ))
    {
        return Some("persistence_shell_profile");
    }
    None
}

/// Directories where new set-user-ID files and shell copies are looked for: the program
/// directories and the world-writable ones.
pub const PROGRAM_DIRS: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
];

/// Whether a path is directly in one of [`PROGRAM_DIRS`].
pub fn in_program_dir(path: &str) -> bool {
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    PROGRAM_DIRS.contains(&dir)
}

pub fn on_file(
    cfg: &Compiled,
    ev: &FileEvent,
    t: &Table,
    suid_baseline: &HashMap<String, u32>,
    out: &mut Vec<Finding>,
) {
    let installer = ev.pid != 0 && under_package_manager(t, ev.pid);
    if matches!(ev.op, FileOp::Write | FileOp::MovedTo)
        && cfg.on("persistence")
        && let Some(kind) = persistence_type(&ev.path)
        // Packages install units and cron files; ld.so.preload is never a package's business.
        && (!installer || kind == "persistence_preload")
        // A temporary file renamed away before we looked (crontab -e, editors) is reported by
        // its rename.
        && ev.facts.is_some()
    {
        out.push(Finding {
            alarm_type: kind,
            key: ev.path.clone(),
            pid: ev.pid,
            file: Some(ev.path.clone()),
            details: vec![format!(
                "{} {}",
                ev.path,
                if ev.op == FileOp::Write {
                    "written"
                } else {
                    "renamed into place"
                }
            )],
            ..Default::default()
        });
    }
    let Some(f) = &ev.facts else { return };
    if installer || ev.op == FileOp::Delete || !in_program_dir(&ev.path) {
        return;
    }
    let special = f.mode & 0o6000;
    if cfg.on("privilege_escalation") && (special != 0 || f.caps) && f.mode & 0o170000 == 0o100000 {
        let before = suid_baseline.get(&ev.path).copied();
        if before != Some(special) || f.caps {
            let mut what = Vec::new();
            if f.mode & 0o4000 != 0 {
                what.push("set-user-ID");
            }
            if f.mode & 0o2000 != 0 {
                what.push("set-group-ID");
            }
            if f.caps {
                what.push("file capabilities");
            }
            out.push(Finding {
                alarm_type: "file_privilege_escalation",
                key: ev.path.clone(),
                pid: ev.pid,
                file: Some(ev.path.clone()),
                details: vec![format!(
                    "{} now has {} (mode {:o}, owner uid {})",
                    ev.path,
                    what.join(" and "),
                    f.mode & 0o7777,
                    f.uid
                )],
                ..Default::default()
            });
        }
    }
    if cfg.on("abnormal_shell")
        && let Some(orig) = &f.shell_copy_of
        && *orig != ev.path
    {
        out.push(Finding {
            alarm_type: "abnormal_shell",
            key: ev.path.clone(),
            pid: ev.pid,
            file: Some(ev.path.clone()),
            details: vec![format!("{} is a copy of the shell {orig}", ev.path)],
            ..Default::default()
        });
    }
}

/// Changes of the shell binaries since they were last seen: moved or deleted, mode changed,
/// hard links added. `installing`: a package manager ran since, whose upgrades replace shells.
pub fn shell_changes(
    cfg: &Compiled,
    before: &[ShellFile],
    now: &[Option<ShellFile>],
    installing: bool,
) -> Vec<Finding> {
    if !cfg.on("abnormal_shell") || installing {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (b, n) in before.iter().zip(now) {
        let detail = match n {
            None => format!("{} was moved or deleted", b.path),
            Some(n) if n.ino != b.ino || n.dev != b.dev => {
                format!("{} was replaced by another file", b.path)
            }
            Some(n) if n.mode != b.mode => format!(
                "{} mode changed from {:o} to {:o}",
                b.path,
                b.mode & 0o7777,
                n.mode & 0o7777
            ),
            Some(n) if n.nlink > b.nlink => format!(
                "{} got another hard link ({} -> {} links)",
                b.path, b.nlink, n.nlink
            ),
            _ => continue,
        };
        out.push(Finding {
            alarm_type: "abnormal_shell",
            key: b.path.clone(),
            file: Some(b.path.clone()),
            details: vec![detail],
            ..Default::default()
        });
    }
    out
}
