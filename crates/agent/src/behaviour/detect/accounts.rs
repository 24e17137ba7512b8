//! Invalid accounts from `/etc/passwd` and `/etc/group`: a second uid-0 account, a hidden
//! account, a non-root user in a root-equivalent group. Each is raised once, when first seen
//! (at start, or when a change to the files brings it).

use std::collections::BTreeSet;

use super::{Compiled, Finding};

/// What is wrong with the accounts, as (key, detail) pairs. Pure; malformed lines are skipped
/// (the inventory's account collector reports them with file and line).
pub fn check(passwd: &str, group: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            continue;
        }
        let (name, uid) = (f[0], f[2]);
        if uid == "0" && name != "root" {
            out.push((
                format!("uid0 {name}"),
                format!("{name} has uid 0: a second root account (cloned root)"),
            ));
        }
        let hidden = name.is_empty()
            || name.starts_with('.')
            || name.starts_with('-')
            || name.ends_with('$')
            || name.chars().any(|c| c.is_whitespace() || c.is_control());
        if hidden {
            out.push((
                format!("hidden {}", name.escape_debug()),
                format!("account {:?} has a name made to hide it", name),
            ));
        }
    }
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            continue;
        }
        // sudo, wheel and admin membership is how people administer hosts (and sudo logs
        // it); membership of gid 0 itself gives root's group rights silently.
        let (name, gid) = (f[0], f[2]);
        if gid != "0" {
            continue;
        }
        for member in f[3]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty() && *m != "root")
        {
            out.push((
                format!("rootgroup {member}"),
                format!("non-root user {member} is a member of group {name} (gid 0)"),
            ));
        }
    }
    out
}

/// What has been raised already.
#[derive(Default)]
pub struct Known {
    seen: BTreeSet<String>,
}

impl Known {
    /// Findings for problems not seen before; problems that went away are forgotten, so they
    /// alarm again if they come back. `pid`: the writer that changed the files (0 at start).
    pub fn update(
        &mut self,
        cfg: &Compiled,
        found: Vec<(String, String)>,
        pid: u32,
    ) -> Vec<Finding> {
        let now: BTreeSet<String> = found.iter().map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        if cfg.on("invalid_account") {
            for (key, detail) in found {
                if !self.seen.contains(&key) {
                    out.push(Finding {
                        alarm_type: "invalid_account",
                        key,
                        pid,
                        file: Some("/etc/passwd".into()),
                        details: vec![detail],
                        ..Default::default()
                    });
                }
            }
        }
        self.seen = now;
        out
    }
}
