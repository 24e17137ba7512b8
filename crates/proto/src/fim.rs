//! File integrity monitoring policy (section `fim`), pushed per project: the important files
//! whose every change is an alarm, and up to 50 monitored directories whose changes land in
//! the history. Validation names the field and index of what it refuses, so a policy is taken
//! whole or not at all.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::alarm::ProcessInfo;
use crate::paths;

/// Monitored directories per policy (the reference product's limit).
pub const MAX_DIRECTORIES: usize = 50;
/// Excluded paths, and excluded file types, per directory.
pub const MAX_EXCLUDES: usize = 10;
pub const MAX_TYPES: usize = MAX_EXCLUDES;
pub const MAX_IMPORTANT: usize = 1_000;

/// What happened to a file; a directory records the ones its policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Delete,
    Move,
    Modify,
    /// Mode, owner or group.
    Attributes,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Create,
        Operation::Delete,
        Operation::Move,
        Operation::Modify,
        Operation::Attributes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Move => "move",
            Operation::Modify => "modify",
            Operation::Attributes => "attributes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FimPolicy {
    pub enabled: bool,
    /// Files whose every change is an alarm (a directory here means the files directly in it).
    pub important_files: Vec<String>,
    pub directories: Vec<WatchedDir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchedDir {
    pub path: String,
    /// Subdirectories too.
    pub recursive: bool,
    /// The changes recorded; empty means all.
    pub operations: BTreeSet<Operation>,
    /// Paths under `path`, relative to it, left out with everything below them.
    pub exclude: Vec<String>,
    /// File name extensions left out, without the dot (`log`, `tmp`).
    pub exclude_types: Vec<String>,
}

impl Default for WatchedDir {
    fn default() -> Self {
        WatchedDir {
            path: String::new(),
            recursive: true,
            operations: BTreeSet::new(),
            exclude: Vec::new(),
            exclude_types: Vec::new(),
        }
    }
}

impl WatchedDir {
    pub fn records(&self, op: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&op)
    }

    /// Whether `path` (absolute) is in this directory's scope: under it (directly, unless
    /// recursive), not under an excluded path, not of an excluded type.
    pub fn covers(&self, path: &str) -> bool {
        match paths::relative(&self.path, path) {
            None | Some("") => false,
            Some(rel) if !self.recursive && rel.contains('/') => false,
            Some(rel) => !paths::excluded(rel, &self.exclude, &self.exclude_types),
        }
    }
}

impl crate::Section for FimPolicy {
    const KEY: &'static str = "fim";

    fn gate(&mut self, edition: crate::Edition) {
        self.enabled &= edition.has(crate::Feature::FileIntegrity);
    }
}

/// The reference product's important files, and the account, sudo, PAM, sshd and loader files
/// an intruder changes to keep access.
pub const IMPORTANT_FILES: &[&str] = &[
    "/bin/ls",
    "/bin/ps",
    "/bin/bash",
    "/bin/login",
    "/usr/bin/ls",
    "/usr/bin/ps",
    "/usr/bin/bash",
    "/usr/bin/login",
    "/usr/bin/passwd",
    "/usr/bin/top",
    "/usr/bin/killall",
    "/usr/bin/ssh",
    "/usr/bin/wget",
    "/usr/bin/curl",
    "/usr/bin/sudo",
    "/usr/bin/su",
    "/usr/sbin/sshd",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/pam.d",
    "/etc/ssh/sshd_config",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/crontab",
    "/etc/hosts",
];

impl Default for FimPolicy {
    fn default() -> Self {
        FimPolicy {
            enabled: true,
            important_files: IMPORTANT_FILES.iter().map(|s| s.to_string()).collect(),
            directories: Vec::new(),
        }
    }
}

impl FimPolicy {
    /// Checks every field; the message starts with the field's name and index.
    pub fn validate(&self) -> Result<(), String> {
        if self.important_files.len() > MAX_IMPORTANT {
            return Err(format!(
                "important_files: at most {MAX_IMPORTANT} entries, not {}",
                self.important_files.len()
            ));
        }
        for (i, p) in self.important_files.iter().enumerate() {
            paths::check_path(&format!("important_files[{i}]"), p)?;
        }
        if self.directories.len() > MAX_DIRECTORIES {
            return Err(format!(
                "directories: at most {MAX_DIRECTORIES} entries, not {}",
                self.directories.len()
            ));
        }
        for (i, d) in self.directories.iter().enumerate() {
            let f = format!("directories[{i}]");
            paths::check_path(&format!("{f}.path"), &d.path)?;
            paths::check_exclusions(&f, &d.path, &d.exclude, &d.exclude_types, MAX_EXCLUDES)?;
            for (j, other) in self.directories.iter().enumerate().take(i) {
                let (a, b) = (&other.path, &d.path);
                if paths::nested(a, b) || paths::nested(b, a) {
                    return Err(format!(
                        "{f}.path: {b:?} overlaps directories[{j}] ({a:?}); use one with exclusions"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Changes one `file_changes` record carries at most; a scan that finds more sends several.
pub const MAX_CHANGES: usize = 500;
/// Bytes of a reported path (the kernel's PATH_MAX) and of a symlink target.
pub const MAX_REPORTED_PATH: usize = 4096;

/// File changes the agent saw (`kind: "file_changes"`), in the order it saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChanges {
    pub changes: Vec<FileChange>,
}

/// One change of one monitored path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    /// Unix seconds when the agent saw it.
    pub ts: i64,
    pub path: String,
    pub op: Operation,
    /// A move's old path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// On the policy's important-file list: the change is also an alarm.
    #[serde(default)]
    pub important: bool,
    /// What the path was; None for a create.
    #[serde(default)]
    pub old: Option<FileState>,
    /// What it is now; None for a delete.
    #[serde(default)]
    pub new: Option<FileState>,
    /// The process that made the change, when the kernel named it (a real-time event); None
    /// when a scan found the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
    pub source: ChangeSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// A file event, seen as it happened.
    Realtime,
    /// A scan against the baseline (after an event-queue overflow, a restart or a policy
    /// change, and every day).
    Scan,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Realtime => "realtime",
            ChangeSource::Scan => "scan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices.
    Other,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Other => "other",
        }
    }
}

/// A path's state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits with set-user-ID, set-group-ID and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// BLAKE3 in hex of a file's content; a symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

fn check_reported(field: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.len() > MAX_REPORTED_PATH || p.contains('\0') {
        return Err(format!(
            "{field}: not an absolute path of at most {MAX_REPORTED_PATH} bytes"
        ));
    }
    Ok(())
}

impl FileChanges {
    /// What the center checks before it stores a record: the message names the change and field.
    pub fn validate(&self) -> Result<(), String> {
        if self.changes.len() > MAX_CHANGES {
            return Err(format!(
                "changes: at most {MAX_CHANGES} per record, not {}",
                self.changes.len()
            ));
        }
        for (i, c) in self.changes.iter().enumerate() {
            let f = format!("changes[{i}]");
            check_reported(&format!("{f}.path"), &c.path)?;
            if let Some(from) = &c.from {
                check_reported(&format!("{f}.from"), from)?;
            }
            let (needs_old, needs_new) = match c.op {
                Operation::Create => (false, true),
                Operation::Delete => (true, false),
                Operation::Move => (false, true),
                Operation::Modify | Operation::Attributes => (true, true),
            };
            if needs_old && c.old.is_none() {
                return Err(format!("{f}.old: a {} needs the old state", c.op.as_str()));
            }
            if needs_new && c.new.is_none() {
                return Err(format!("{f}.new: a {} needs the new state", c.op.as_str()));
            }
            if c.op == Operation::Move && c.from.is_none() {
                return Err(format!("{f}.from: a move needs the old path"));
            }
            for (name, s) in [("old", &c.old), ("new", &c.new)] {
                if let Some(h) = s.as_ref().and_then(|s| s.hash.as_ref())
                    && h.len() > MAX_REPORTED_PATH
                {
                    return Err(format!(
                        "{f}.{name}.hash: longer than {MAX_REPORTED_PATH} bytes"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The file integrity monitor's state in each heartbeat: what is watched and how, so the
/// console never shows a server as monitored when it is not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FimReport {
    /// `watching` (baseline taken, real-time events on), `scanning` (taking the baseline),
    /// `scan_only` (no real-time events: `reason` says why; changes are found by scans),
    /// `off` (the policy or protection is off), `failing` (`reason`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Paths in the baseline.
    pub files: u64,
    /// Directories with a real-time mark.
    pub watched_dirs: u64,
    /// Unix seconds of the last completed scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<i64>,
    /// Paths the last scan could not read.
    pub scan_errors: u64,
    /// The first of those, and monitored directories that do not exist on this host (at most
    /// 10: `/srv/www: does not exist`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The baseline hit its entry cap: what is past it is not monitored.
    pub truncated: bool,
    /// Event-queue overflows since start (each followed by a rescan).
    pub overflows: u64,
    /// Changes reported since start.
    pub changes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> WatchedDir {
        WatchedDir {
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_default_policy_is_valid_and_watches_the_reference_files() {
        let p = FimPolicy::default();
        assert_eq!(p.validate(), Ok(()));
        assert!(p.important_files.iter().any(|f| f == "/usr/bin/curl"));
    }

    #[test]
    fn bad_paths_and_limits_are_refused_naming_them() {
        let cases: Vec<(FimPolicy, &str)> = vec![
            (
                FimPolicy {
                    directories: vec![dir("var/www")],
                    ..Default::default()
                },
                "directories[0].path: \"var/www\" is not an absolute path",
            ),
            (
                FimPolicy {
                    directories: vec![dir("/")],
                    ..Default::default()
                },
                "directories[0].path: \"/\" is the whole file system",
            ),
            (
                FimPolicy {
                    directories: vec![dir("/srv/www/../etc")],
                    ..Default::default()
                },
                "directories[0].path: \"/srv/www/../etc\" is not normalised",
            ),
            (
                FimPolicy {
                    directories: vec![dir("/srv/www"), dir("/srv/www/html")],
                    ..Default::default()
                },
                "directories[1].path: \"/srv/www/html\" overlaps directories[0]",
            ),
            (
                FimPolicy {
                    directories: (0..51).map(|i| dir(&format!("/d{i}"))).collect(),
                    ..Default::default()
                },
                "directories: at most 50 entries, not 51",
            ),
            (
                FimPolicy {
                    directories: vec![WatchedDir {
                        exclude_types: vec!["tar.gz".into()],
                        ..dir("/srv")
                    }],
                    ..Default::default()
                },
                "directories[0].exclude_types[0]: \"tar.gz\"",
            ),
            (
                FimPolicy {
                    directories: vec![WatchedDir {
                        exclude: vec!["../etc".into()],
                        ..dir("/srv")
                    }],
                    ..Default::default()
                },
                "directories[0].exclude[0]",
            ),
        ];
        for (p, want) in cases {
            let e = p.validate().unwrap_err();
            assert!(e.starts_with(want), "{e} does not start with {want}");
        }
        // Siblings with a shared prefix do not overlap.
        let p = FimPolicy {
            directories: vec![dir("/srv/www"), dir("/srv/www2")],
            ..Default::default()
        };
        assert_eq!(p.validate(), Ok(()));
        let bad: Result<FimPolicy, _> = serde_json::from_str(r#"{"directorys":[]}"#);
        assert!(bad.is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_directory_covers_what_is_under_it_minus_its_exclusions() {
        let d = WatchedDir {
            exclude: vec!["cache".into()],
            exclude_types: vec!["log".into()],
            ..dir("/srv/www")
        };
        assert!(d.covers("/srv/www/index.html"));
        assert!(d.covers("/srv/www/a/b.php"));
        assert!(!d.covers("/srv/www"));
        assert!(!d.covers("/srv/www2/x"));
        assert!(!d.covers("/srv/www/cache/x"));
        assert!(d.covers("/srv/www/cachex"));
        assert!(!d.covers("/srv/www/a/access.LOG"));
        let flat = WatchedDir {
            recursive: false,
            ..dir("/srv/www")
        };
        assert!(flat.covers("/srv/www/index.html") && !flat.covers("/srv/www/a/b"));
    }

    fn state() -> FileState {
        FileState {
            kind: FileKind::File,
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            hash: Some("ab".into()),
        }
    }

    #[test]
    fn file_change_records_are_checked_naming_the_change() {
        let ok = FileChange {
            ts: 1,
            path: "/etc/passwd".into(),
            op: Operation::Modify,
            from: None,
            important: true,
            old: Some(state()),
            new: Some(state()),
            process: None,
            source: ChangeSource::Realtime,
        };
        let rec = |c: FileChange| FileChanges {
            changes: vec![ok.clone(), c],
        };
        assert_eq!(rec(ok.clone()).validate(), Ok(()));
        let cases = [
            (
                FileChange {
                    path: "etc/passwd".into(),
                    ..ok.clone()
                },
                "changes[1].path: not an absolute path",
            ),
            (
                FileChange {
                    old: None,
                    ..ok.clone()
                },
                "changes[1].old: a modify needs the old state",
            ),
            (
                FileChange {
                    op: Operation::Move,
                    ..ok.clone()
                },
                "changes[1].from: a move needs the old path",
            ),
            (
                FileChange {
                    new: Some(FileState {
                        hash: Some("x".repeat(5000)),
                        ..state()
                    }),
                    ..ok.clone()
                },
                "changes[1].new.hash",
            ),
        ];
        for (c, want) in cases {
            let e = rec(c).validate().unwrap_err();
            assert!(e.starts_with(want), "{e} does not start with {want}");
        }
        let many = FileChanges {
            changes: vec![ok; MAX_CHANGES + 1],
        };
        assert!(
            many.validate()
                .unwrap_err()
                .starts_with("changes: at most 500")
        );
    }
}
