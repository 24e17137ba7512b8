//! Ransomware prevention (section `ransom`, pushed per project): the directories watched for
//! ransomware, where bait files are deployed and bursts of encrypted rewrites are counted per
//! process, what the agent does to the process (alarm, kill, kill and isolate), and the local
//! backups of chosen directories with their schedule and retention. The tasks `backup_now`
//! and `backup_restore` take a snapshot now and put files back from one; the state each agent
//! reports rides in its heartbeat. Validation names the field and index of what it refuses,
//! so a policy is taken whole or not at all.

use serde::{Deserialize, Serialize};

use crate::paths;

/// Watched directories, backed-up directories (the reference product's 20), trusted
/// executables, excluded subpaths and types per backed-up directory.
pub const MAX_DIRECTORIES: usize = 20;
pub const MAX_TRUSTED: usize = 10;
pub const MAX_EXCLUDES: usize = 10;
/// Bait files are put in place again this often (and whenever the policy changes).
pub const BAIT_REDEPLOY_HOURS: u32 = 12;
/// Snapshots kept at most, whatever the policy says.
pub const MAX_KEEP: u32 = 100;
/// Paths one restore names at most.
pub const MAX_RESTORE_PATHS: usize = 100;

/// Take a snapshot of the backed-up directories now (params: `{}`).
pub const BACKUP_TASK: &str = "backup_now";
/// Put files back from a snapshot (params: [`RestoreRequest`]; output: [`RestoreResult`]).
pub const RESTORE_TASK: &str = "backup_restore";
pub const ALARM: &str = "ransomware";

/// What the agent does to a process it concludes is ransomware (the alarm is always raised).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Raise the alarm only.
    Alarm,
    /// Kill the process tree (the script that runs it, when it is one).
    Kill,
    /// Kill it and isolate its program or script in the quarantine.
    #[default]
    KillIsolate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alarm => "alarm",
            Action::Kill => "kill",
            Action::KillIsolate => "kill_isolate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RansomPolicy {
    /// Off by default: bait files appear in the directories, and a kill stops a process.
    pub enabled: bool,
    /// Directories watched (with all below them): bait files are deployed in each, and every
    /// write, rename and delete in them is checked.
    pub directories: Vec<String>,
    /// Also deploy bait files in random subdirectories of `directories` and of the host's
    /// usual data places (`/home/*`, `/root`, `/srv`, `/opt`, `/var/www`, `/data`).
    pub random_bait: bool,
    pub action: Action,
    /// A process (or the script running it) that writes this many encrypted-looking files, or
    /// renames this many files to a new extension, within `window_secs` is ransomware: the
    /// bound on files lost before it is stopped. 3 to 100.
    pub burst_files: u32,
    /// 5 to 600 seconds.
    pub window_secs: u32,
    /// Executables (absolute paths) whose writes are never counted: a backup or encryption
    /// tool run on purpose. A bait file touched by them still raises the alarm.
    pub trusted: Vec<String>,
    pub backup: BackupPolicy,
}

impl Default for RansomPolicy {
    fn default() -> Self {
        RansomPolicy {
            enabled: false,
            directories: Vec::new(),
            random_bait: true,
            action: Action::KillIsolate,
            burst_files: 10,
            window_secs: 60,
            trusted: Vec::new(),
            backup: BackupPolicy::default(),
        }
    }
}

impl crate::Section for RansomPolicy {
    const KEY: &'static str = "ransom";

    fn gate(&mut self, edition: crate::Edition) {
        self.enabled &= edition.has(crate::Feature::Ransomware);
        if !edition.has(crate::Feature::Blocking) {
            self.action = Action::Alarm;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupPolicy {
    pub enabled: bool,
    pub directories: Vec<BackupDir>,
    /// A snapshot at policy arrival when there is none, then every this many hours (1 to
    /// 168).
    pub interval_hours: u32,
    /// Snapshots kept: the newest `keep_count` (1 to [`MAX_KEEP`])…
    pub keep_count: u32,
    /// …of those younger than this many days (0: no age limit; at most 3,650). The newest
    /// snapshot is always kept.
    pub keep_days: u32,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        BackupPolicy {
            enabled: false,
            directories: Vec::new(),
            interval_hours: 24,
            keep_count: 7,
            keep_days: 30,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupDir {
    pub path: String,
    /// Subpaths under `path`, relative to it, left out with all below them.
    pub exclude: Vec<String>,
    /// File name extensions left out, without the dot (`log`, `tmp`).
    pub exclude_types: Vec<String>,
}

impl BackupDir {
    /// Whether `path` (absolute) is backed up by this directory.
    pub fn covers(&self, path: &str) -> bool {
        match paths::relative(&self.path, path) {
            None => false,
            Some("") => true,
            Some(rel) => !paths::excluded(rel, &self.exclude, &self.exclude_types),
        }
    }
}

/// Directories whose watching or backing up would be the host's own churn, or a restore
/// into them a way to replace system files.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var",
    "/var/lib", "/var/log", "/tmp",
];

fn check_dirs<'a>(
    field: &str,
    dirs: impl Iterator<Item = &'a str> + Clone,
    max: usize,
) -> Result<(), String> {
    let n = dirs.clone().count();
    if n > max {
        return Err(format!("{field}: at most {max} entries, not {n}"));
    }
    for (i, d) in dirs.clone().enumerate() {
        let f = format!("{field}[{i}]");
        paths::check_path(&f, d)?;
        if SYSTEM_DIRS.contains(&d) || paths::nested("/proc", d) || paths::nested("/sys", d) {
            return Err(format!(
                "{f}: {d:?} is a system directory; name the data directory under it"
            ));
        }
        for (j, other) in dirs.clone().enumerate().take(i) {
            if paths::nested(other, d) || paths::nested(d, other) {
                return Err(format!(
                    "{f}: {d:?} overlaps {field}[{j}] ({other:?}); name one of them"
                ));
            }
        }
    }
    Ok(())
}

impl RansomPolicy {
    /// Checks every field; the message starts with the field's name and index.
    pub fn validate(&self) -> Result<(), String> {
        check_dirs(
            "directories",
            self.directories.iter().map(String::as_str),
            MAX_DIRECTORIES,
        )?;
        if !(3..=100).contains(&self.burst_files) {
            return Err(format!("burst_files: {} is not 3 to 100", self.burst_files));
        }
        if !(5..=600).contains(&self.window_secs) {
            return Err(format!("window_secs: {} is not 5 to 600", self.window_secs));
        }
        if self.trusted.len() > MAX_TRUSTED {
            return Err(format!("trusted: at most {MAX_TRUSTED} entries"));
        }
        for (i, t) in self.trusted.iter().enumerate() {
            paths::check_path(&format!("trusted[{i}]"), t)?;
        }
        let b = &self.backup;
        check_dirs(
            "backup.directories",
            b.directories.iter().map(|d| d.path.as_str()),
            MAX_DIRECTORIES,
        )?;
        for (i, d) in b.directories.iter().enumerate() {
            paths::check_exclusions(
                &format!("backup.directories[{i}]"),
                &d.path,
                &d.exclude,
                &d.exclude_types,
                MAX_EXCLUDES,
            )?;
        }
        if b.enabled && b.directories.is_empty() {
            return Err("backup.directories: name at least one directory to back up".into());
        }
        if !(1..=168).contains(&b.interval_hours) {
            return Err(format!(
                "backup.interval_hours: {} is not 1 to 168",
                b.interval_hours
            ));
        }
        if !(1..=MAX_KEEP).contains(&b.keep_count) {
            return Err(format!(
                "backup.keep_count: {} is not 1 to {MAX_KEEP}",
                b.keep_count
            ));
        }
        if b.keep_days > 3650 {
            return Err(format!(
                "backup.keep_days: {} is more than 3,650",
                b.keep_days
            ));
        }
        Ok(())
    }

    /// Whether `exe` is trusted.
    pub fn trusts(&self, exe: &str) -> bool {
        self.trusted.iter().any(|t| t == exe)
    }
}

/// Params of [`RESTORE_TASK`]: which snapshot (by id, or the newest taken at or before a point
/// in time) and what of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreRequest {
    pub snapshot: Option<String>,
    /// Unix seconds.
    pub at: Option<i64>,
    /// Absolute paths: directories (with all below them) or files, each under a backed-up
    /// directory. Empty: everything in the snapshot.
    pub paths: Vec<String>,
    /// Also remove files under the restored directories that the snapshot does not have (the
    /// encrypted copies ransomware left). Files newer than the snapshot go with them.
    pub remove_new: bool,
}

impl RestoreRequest {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.snapshot, self.at) {
            (Some(_), Some(_)) => {
                return Err("snapshot, at: name a snapshot or a point in time, not both".into());
            }
            (None, None) => return Err("snapshot, at: name a snapshot or a point in time".into()),
            (Some(id), None) if !valid_id(id) => {
                return Err(format!(
                    "snapshot: {id:?} is not a snapshot id (1 to 64 letters, digits and '-')"
                ));
            }
            (None, Some(at)) if at <= 0 => {
                return Err(format!("at: {at} is not a time (Unix seconds)"));
            }
            _ => {}
        }
        if self.paths.len() > MAX_RESTORE_PATHS {
            return Err(format!("paths: at most {MAX_RESTORE_PATHS} entries"));
        }
        for (i, p) in self.paths.iter().enumerate() {
            paths::check_path(&format!("paths[{i}]"), p)?;
        }
        Ok(())
    }
}

/// Snapshot ids: `<unix seconds>-<4 hex>`, or what the agent made of them.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Output of [`RESTORE_TASK`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    pub snapshot: String,
    pub taken_at: i64,
    /// Files, directories and links written back.
    pub restored: u64,
    /// Already as in the snapshot.
    pub unchanged: u64,
    /// Removed because the snapshot lacks them (`remove_new`).
    pub removed: u64,
    /// What could not be put back, with why (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Ransomware prevention's state in each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RansomReport {
    /// `protecting` (baits in place, directories watched), `off`, `waiting` (no policy yet),
    /// `starting`, `failing` (`reason`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy's action, as the agent applies it.
    #[serde(default)]
    pub action: String,
    /// Bait files in place.
    pub baits: u64,
    /// Unix seconds of the last bait deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baits_deployed_at: Option<i64>,
    /// Directories with a real-time mark.
    pub watched_dirs: u64,
    /// Processes concluded to be ransomware since start, and how many of them were killed.
    pub detections: u64,
    pub killed: u64,
    /// Watched directories this host lacks, bait files that could not be placed (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    pub backup: BackupReport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// `ok` (the last snapshot worked), `running`, `failing` (`reason`), `off`, `waiting`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<i64>,
    /// Newest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Bytes the backup store holds (each content once).
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    pub directories: Vec<String>,
    pub files: u64,
    /// Bytes of the files it holds.
    pub bytes: u64,
    /// Bytes it added to the store (what earlier snapshots did not have).
    pub new_bytes: u64,
    /// Paths it could not read (their first is in the backup report's reason when it failed).
    pub errors: u64,
    /// It hit the entry cap: what is past it is not in it.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdir(p: &str) -> BackupDir {
        BackupDir {
            path: p.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_policies_are_refused_naming_the_field() {
        let base = RansomPolicy {
            enabled: true,
            directories: vec!["/srv/data".into(), "/home".into()],
            trusted: vec!["/usr/bin/restic".into()],
            backup: BackupPolicy {
                enabled: true,
                directories: vec![bdir("/srv/data")],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(base.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut RansomPolicy), want: &str| {
            let mut p = base.clone();
            f(&mut p);
            let e = p.validate().unwrap_err();
            assert!(e.starts_with(want), "{e} should start with {want}");
        };
        bad(&|p| p.directories.push("srv".into()), "directories[2]");
        bad(&|p| p.directories.push("/".into()), "directories[2]");
        bad(
            &|p| p.directories.push("/srv/../etc".into()),
            "directories[2]",
        );
        bad(
            &|p| p.directories.push("/srv/data/x".into()),
            "directories[2]",
        );
        bad(&|p| p.directories.push("/usr".into()), "directories[2]");
        bad(&|p| p.directories.push("/proc/1".into()), "directories[2]");
        bad(
            &|p| p.directories = (0..21).map(|i| format!("/d{i}")).collect(),
            "directories: at most 20",
        );
        bad(&|p| p.burst_files = 2, "burst_files");
        bad(&|p| p.window_secs = 601, "window_secs");
        bad(&|p| p.trusted.push("restic".into()), "trusted[1]");
        bad(
            &|p| p.backup.directories.push(bdir("/srv")),
            "backup.directories[1]",
        );
        bad(
            &|p| p.backup.directories[0].exclude.push("/abs".into()),
            "backup.directories[0].exclude[0]",
        );
        bad(
            &|p| p.backup.directories[0].exclude_types.push("t.x".into()),
            "backup.directories[0].exclude_types[0]",
        );
        bad(&|p| p.backup.directories.clear(), "backup.directories");
        bad(&|p| p.backup.interval_hours = 0, "backup.interval_hours");
        bad(&|p| p.backup.keep_count = 101, "backup.keep_count");
        bad(&|p| p.backup.keep_days = 4000, "backup.keep_days");
    }

    #[test]
    fn unknown_fields_and_bad_actions_are_refused_and_defaults_fill_the_rest() {
        let p: RansomPolicy =
            serde_json::from_str(r#"{"enabled":true,"directories":["/srv"]}"#).unwrap();
        assert_eq!(
            (p.burst_files, p.window_secs, p.action),
            (10, 60, Action::KillIsolate)
        );
        assert_eq!(p.backup.keep_count, 7);
        assert!(serde_json::from_str::<RansomPolicy>(r#"{"dirs":[]}"#).is_err());
        assert!(serde_json::from_str::<RansomPolicy>(r#"{"action":"nuke"}"#).is_err());
        assert!(serde_json::from_str::<RansomPolicy>(r#"{"backup":{"every":3}}"#).is_err());
    }

    #[test]
    fn restores_name_one_snapshot_and_absolute_paths() {
        let ok = RestoreRequest {
            snapshot: Some("1700000000-ab12".into()),
            paths: vec!["/srv/data/a.txt".into()],
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let at = RestoreRequest {
            at: Some(1_700_000_000),
            ..Default::default()
        };
        assert_eq!(at.validate(), Ok(()));
        let e = |r: RestoreRequest| r.validate().unwrap_err();
        assert!(e(RestoreRequest::default()).starts_with("snapshot, at"));
        assert!(
            e(RestoreRequest {
                at: Some(5),
                ..ok.clone()
            })
            .contains("not both")
        );
        assert!(
            e(RestoreRequest {
                snapshot: Some("../x".into()),
                ..Default::default()
            })
            .starts_with("snapshot:")
        );
        assert!(
            e(RestoreRequest {
                paths: vec!["rel".into()],
                ..ok.clone()
            })
            .starts_with("paths[0]")
        );
        assert!(
            e(RestoreRequest {
                at: Some(0),
                ..Default::default()
            })
            .starts_with("at:")
        );
    }

    #[test]
    fn backup_dirs_cover_what_is_below_them_but_not_exclusions() {
        let d = BackupDir {
            path: "/srv/data".into(),
            exclude: vec!["cache".into()],
            exclude_types: vec!["tmp".into()],
        };
        assert!(d.covers("/srv/data") && d.covers("/srv/data/a/b.txt"));
        assert!(!d.covers("/srv/data/cache/x") && !d.covers("/srv/data/x.TMP"));
        assert!(!d.covers("/srv/data2/x"));
    }
}
