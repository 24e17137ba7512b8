//! Web tamper protection (section `tamper`, pushed per project, and `tamper_unlock`, per
//! server): the protected directories, the privileged processes that may still write there,
//! the scheduled unlock windows for planned deploys, and the state each agent reports in its
//! heartbeat. Validation names the field and index of what it refuses, so a policy is taken
//! whole or not at all; whether a directory exists is checked by each agent, which keeps its
//! current policy and reports the path when one does not.

use serde::{Deserialize, Serialize};

use crate::paths;

/// Protected directories per policy, excluded subdirectories (and file types) per directory,
/// privileged processes, unlock windows (the reference product's limits; windows are ours).
pub const MAX_DIRECTORIES: usize = 50;
pub const MAX_EXCLUDES: usize = 10;
pub const MAX_PRIVILEGED: usize = 10;
pub const MAX_WINDOWS: usize = 20;
/// A window lasts at least this long, and windows of one day are at least this far apart.
pub const MIN_WINDOW_MIN: u16 = 5;
/// Longest unlock from the console ("unlock now"), in minutes: the same bound as a window.
pub const MAX_UNLOCK_MIN: u32 = 24 * 60 - 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TamperPolicy {
    /// Off by default: protecting a directory refuses writes a deploy may expect to work.
    pub enabled: bool,
    pub directories: Vec<ProtectedDir>,
    /// Executables (absolute paths) whose processes may rewrite protected files, e.g. the
    /// deploy tool. Adding, renaming and deleting files needs an unlock window.
    pub privileged: Vec<String>,
    /// When the directories are unlocked for planned deploys (server local time).
    pub windows: Vec<Window>,
    /// Also lock every protected file (the immutable attribute) while no deploy runs: writes
    /// are refused in the kernel and opens of protected files cost nothing, where the guard's
    /// permission events cost each open a round trip to the agent (about 45 µs on a small VM);
    /// the guard then answers only while a privileged process deploys. A write the lock
    /// refuses raises no alarm (the kernel tells nobody), so it is off by default.
    pub lock_files: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtectedDir {
    pub path: String,
    /// Subdirectories under `path`, relative to it, left unprotected with all below them.
    pub exclude: Vec<String>,
    /// File name extensions left unprotected, without the dot (`log`, `tmp`).
    pub exclude_types: Vec<String>,
}

impl ProtectedDir {
    /// Whether `path` (absolute) is protected by this directory: at or under it, not under an
    /// excluded subdirectory, not of an excluded type.
    pub fn covers(&self, path: &str) -> bool {
        match paths::relative(&self.path, path) {
            None => false,
            Some("") => true,
            Some(rel) => !paths::excluded(rel, &self.exclude, &self.exclude_types),
        }
    }
}

/// A weekly unlock window: `days` (1 = Monday … 7 = Sunday; empty = every day), from `start`
/// to `end`, "HH:MM" server local time, within one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Window {
    pub days: Vec<u8>,
    pub start: String,
    pub end: String,
}

/// Minutes since midnight of "HH:MM" (24:00 is the end of the day).
pub fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

impl Window {
    /// (start, end) in minutes since midnight; valid windows only.
    pub fn span(&self) -> Option<(u16, u16)> {
        Some((minutes(&self.start)?, minutes(&self.end)?))
    }

    pub fn on_day(&self, weekday: u8) -> bool {
        self.days.is_empty() || self.days.contains(&weekday)
    }
}

impl crate::Section for TamperPolicy {
    const KEY: &'static str = "tamper";

    fn gate(&mut self, edition: crate::Edition) {
        self.enabled &= edition.has(crate::Feature::WebTamper);
    }
}

/// A server's unlock from the console (section `tamper_unlock`): protection is lifted until
/// `until` (Unix seconds); None or past means locked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TamperUnlock {
    pub until: Option<i64>,
}

impl crate::Section for TamperUnlock {
    const KEY: &'static str = "tamper_unlock";
}

/// Directories no web root is: protecting them would lock the host itself.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
    "/var", "/var/lib", "/var/log", "/tmp", "/home", "/root",
];

impl TamperPolicy {
    /// Checks every field; the message starts with the field's name and index.
    pub fn validate(&self) -> Result<(), String> {
        if self.directories.len() > MAX_DIRECTORIES {
            return Err(format!(
                "directories: at most {MAX_DIRECTORIES} entries, not {}",
                self.directories.len()
            ));
        }
        for (i, d) in self.directories.iter().enumerate() {
            let f = format!("directories[{i}]");
            paths::check_path(&format!("{f}.path"), &d.path)?;
            if SYSTEM_DIRS.contains(&d.path.as_str()) {
                return Err(format!(
                    "{f}.path: {:?} is a system directory; name the web root under it",
                    d.path
                ));
            }
            paths::check_exclusions(&f, &d.path, &d.exclude, &d.exclude_types, MAX_EXCLUDES)?;
            for (j, other) in self.directories.iter().enumerate().take(i) {
                let (a, b) = (&other.path, &d.path);
                if paths::nested(a, b) || paths::nested(b, a) {
                    return Err(format!(
                        "{f}.path: {b:?} overlaps directories[{j}] ({a:?}); protect one and exclude"
                    ));
                }
            }
        }
        if self.privileged.len() > MAX_PRIVILEGED {
            return Err(format!(
                "privileged: at most {MAX_PRIVILEGED} entries, not {}",
                self.privileged.len()
            ));
        }
        for (i, p) in self.privileged.iter().enumerate() {
            paths::check_path(&format!("privileged[{i}]"), p)?;
        }
        if self.windows.len() > MAX_WINDOWS {
            return Err(format!("windows: at most {MAX_WINDOWS} entries"));
        }
        let mut spans: Vec<(&Window, u16, u16)> = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let f = format!("windows[{i}]");
            if let Some(d) = w.days.iter().find(|d| !(1..=7).contains(*d)) {
                return Err(format!("{f}.days: {d} is not 1 (Monday) to 7 (Sunday)"));
            }
            let Some(s) = minutes(&w.start) else {
                return Err(format!("{f}.start: {:?} is not HH:MM", w.start));
            };
            let Some(e) = minutes(&w.end) else {
                return Err(format!("{f}.end: {:?} is not HH:MM", w.end));
            };
            if e <= s {
                return Err(format!(
                    "{f}: ends at {} before it starts at {}; a window stays within one day",
                    w.end, w.start
                ));
            }
            if e - s < MIN_WINDOW_MIN {
                return Err(format!("{f}: shorter than {MIN_WINDOW_MIN} minutes"));
            }
            if e - s >= 24 * 60 {
                return Err(format!(
                    "{f}: 24 hours or longer; turn protection off instead"
                ));
            }
            for (j, (ow, os, oe)) in spans.iter().enumerate() {
                let shares_day = w.days.is_empty()
                    || ow.days.is_empty()
                    || w.days.iter().any(|d| ow.days.contains(d));
                if shares_day && s < oe + MIN_WINDOW_MIN && *os < e + MIN_WINDOW_MIN {
                    return Err(format!(
                        "{f}: overlaps windows[{j}] or is less than {MIN_WINDOW_MIN} minutes from it"
                    ));
                }
            }
            spans.push((w, s, e));
        }
        Ok(())
    }
}

/// Web tamper protection's state in each heartbeat: the console shows protected, unlocked
/// (until when) or failing (why) from it, never a state the agent did not report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperReport {
    /// `protected` (writes refused, directories locked, the backup taken), `unlocked`
    /// (`until`), `failing` (`reason`), `off`, `waiting` (no policy yet), `starting`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// End of the current unlock (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Protected directories (the policy's, with every directory below them).
    pub directories: u64,
    /// Files in the backup.
    pub files: u64,
    /// Writes refused since start.
    pub refused: u64,
    /// Changes reverted from the backup since start.
    pub reverted: u64,
    /// Unix seconds of the last full comparison with the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> ProtectedDir {
        ProtectedDir {
            path: p.into(),
            ..Default::default()
        }
    }

    fn win(days: &[u8], s: &str, e: &str) -> Window {
        Window {
            days: days.to_vec(),
            start: s.into(),
            end: e.into(),
        }
    }

    #[test]
    fn bad_policies_are_refused_naming_the_field() {
        let base = TamperPolicy {
            enabled: true,
            directories: vec![dir("/srv/www")],
            privileged: vec!["/usr/local/bin/deploy".into()],
            windows: vec![win(&[1, 2], "02:00", "02:30")],
            lock_files: false,
        };
        assert_eq!(base.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut TamperPolicy)| {
            let mut p = base.clone();
            f(&mut p);
            p.validate().unwrap_err()
        };
        let cases: Vec<(String, &str)> = vec![
            (
                with(&|p| p.directories[0].path = "srv/www".into()),
                "directories[0].path: \"srv/www\" is not an absolute path",
            ),
            (
                with(&|p| p.directories[0].path = "/".into()),
                "directories[0].path: \"/\" is the whole file system",
            ),
            (
                with(&|p| p.directories[0].path = "/etc".into()),
                "directories[0].path: \"/etc\" is a system directory",
            ),
            (
                with(&|p| p.directories.push(dir("/srv/www/html"))),
                "directories[1].path: \"/srv/www/html\" overlaps directories[0]",
            ),
            (
                with(&|p| p.directories = (0..51).map(|i| dir(&format!("/srv/d{i}"))).collect()),
                "directories: at most 50 entries, not 51",
            ),
            (
                with(&|p| p.directories[0].exclude = (0..11).map(|i| format!("x{i}")).collect()),
                "directories[0].exclude: at most 10",
            ),
            (
                with(&|p| p.directories[0].exclude_types = vec!["php;".into()]),
                "directories[0].exclude_types[0]",
            ),
            (
                with(&|p| p.privileged = (0..11).map(|i| format!("/bin/p{i}")).collect()),
                "privileged: at most 10 entries, not 11",
            ),
            (
                with(&|p| p.privileged[0] = "deploy".into()),
                "privileged[0]: \"deploy\" is not an absolute path",
            ),
            (
                with(&|p| p.windows[0].end = "02:04".into()),
                "windows[0]: shorter than 5 minutes",
            ),
            (
                with(&|p| p.windows[0] = win(&[], "23:00", "01:00")),
                "windows[0]: ends at 01:00 before it starts",
            ),
            (
                with(&|p| p.windows[0].start = "2:00".into()),
                "windows[0].start: \"2:00\" is not HH:MM",
            ),
            (
                with(&|p| p.windows[0].days = vec![8]),
                "windows[0].days: 8 is not 1 (Monday)",
            ),
            (
                with(&|p| p.windows.push(win(&[2], "02:33", "03:00"))),
                "windows[1]: overlaps windows[0] or is less than 5 minutes",
            ),
            (
                with(&|p| p.windows[0] = win(&[], "00:00", "24:00")),
                "windows[0]: 24 hours or longer",
            ),
        ];
        for (got, want) in cases {
            assert!(got.starts_with(want), "{got} does not start with {want}");
        }
        // Five minutes apart, or on other days: fine.
        let mut ok = base.clone();
        ok.windows.push(win(&[1], "02:35", "03:00"));
        ok.windows.push(win(&[3], "02:10", "02:20"));
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn a_directory_covers_itself_and_below_minus_exclusions() {
        let d = ProtectedDir {
            path: "/srv/www".into(),
            exclude: vec!["uploads".into()],
            exclude_types: vec!["log".into()],
        };
        assert!(
            d.covers("/srv/www") && d.covers("/srv/www/index.html") && d.covers("/srv/www/a/b")
        );
        assert!(
            !d.covers("/srv/www2/x")
                && !d.covers("/srv/www/uploads/x")
                && !d.covers("/srv/www/uploads")
        );
        assert!(!d.covers("/srv/www/a/x.LOG") && d.covers("/srv/www/uploadsx"));
    }
}
