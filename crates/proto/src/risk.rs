//! Risk checks that run on the agent: weak passwords, the password-complexity policy and the
//! configuration baselines (their types are in [`crate::baseline`]).
//!
//! OS vulnerabilities are not here: the center matches them from the software inventory, so a
//! new vulnerability feed re-matches every server without an agent rescan. What the agent sends
//! is a [`RiskReport`] record after each scan. No password hash and no cracked password ever
//! leaves the host: a weak-password finding names the account and the reason only.

use serde::{Deserialize, Serialize};

use crate::inventory::CollectIssue;

/// Task kind: run a risk scan now (params: [`ScanRequest`], optional).
pub const SCAN_TASK: &str = "risk_scan";
/// Task kind: upgrade packages to fix vulnerabilities (params: [`FixRequest`]). The agent runs it
/// only while its policy allows one-click fixes.
pub const FIX_TASK: &str = "vuln_fix";

/// One check of a scan. A scan runs all of them unless the request names some.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanCheck {
    /// Re-collects the software inventory, which the center matches against its feed.
    Vulnerabilities,
    WeakPasswords,
    PasswordPolicy,
    /// The configuration baselines (shipped and imported SCA policies).
    Baselines,
}

impl ScanCheck {
    pub const ALL: [ScanCheck; 4] = [
        ScanCheck::Vulnerabilities,
        ScanCheck::WeakPasswords,
        ScanCheck::PasswordPolicy,
        ScanCheck::Baselines,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScanCheck::Vulnerabilities => "vulnerabilities",
            ScanCheck::WeakPasswords => "weak_passwords",
            ScanCheck::PasswordPolicy => "password_policy",
            ScanCheck::Baselines => "baselines",
        }
    }
}

/// Params of a [`SCAN_TASK`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Empty: every check.
    #[serde(default)]
    pub checks: Vec<ScanCheck>,
    /// Re-run this one baseline check only ("verify"): `checks` is then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::baseline::CheckRef>,
}

impl ScanRequest {
    pub fn wants(&self, check: ScanCheck) -> bool {
        if self.verify.is_some() {
            return check == ScanCheck::Baselines;
        }
        self.checks.is_empty() || self.checks.contains(&check)
    }
}

/// Params of a [`FIX_TASK`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixRequest {
    /// `dpkg` or `rpm`: which package manager to run.
    pub manager: String,
    /// Binary package names to upgrade.
    pub packages: Vec<String>,
}

/// Why the scan ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanTrigger {
    /// The daily scan inside the policy's window.
    Scheduled,
    /// A `risk_scan` task from the console, API or CLI.
    Task,
    /// The first scan on a host, a minute after the agent first starts there, so its risk
    /// status does not wait for the night.
    First,
}

/// What one scan found. A durable record (`kind: "risk"`): the center replaces the server's
/// previous results of each check that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    /// The task id when a task started it.
    #[serde(default)]
    pub task_id: Option<String>,
    pub trigger: ScanTrigger,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: i64,
    /// Checks that ran; results of other checks are left as they are on the center.
    pub checks: Vec<ScanCheck>,
    #[serde(default)]
    pub weak_passwords: Option<WeakPasswordResult>,
    #[serde(default)]
    pub password_policy: Option<PasswordPolicyResult>,
    #[serde(default)]
    pub baselines: Option<crate::baseline::BaselineResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeakPasswordResult {
    /// Accounts with a password hash that were checked.
    pub accounts_checked: u32,
    /// Candidate passwords tried per account (dictionary + custom list + user-name variants).
    pub candidates: u32,
    /// False when the time budget ran out before every account was checked.
    pub complete: bool,
    pub findings: Vec<WeakPassword>,
    /// Files that could not be read or parsed, with the line.
    #[serde(default)]
    pub issues: Vec<CollectIssue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeakPassword {
    pub account: String,
    pub uid: Option<u32>,
    /// Whether the account can log in (a shell that allows it and a password that is not locked).
    pub login_allowed: bool,
    pub reasons: Vec<WeakReason>,
    /// Other accounts with the same password (same hash or same cracked word).
    #[serde(default)]
    pub shared_with: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeakReason {
    /// The password field is empty: no password at all.
    Empty,
    /// One of the built-in common passwords.
    CommonPassword,
    /// On the project's custom weak-password list.
    CustomList,
    /// The user name or a variant of it (reversed, with digits, capitalised...).
    UsernameVariant,
    /// Shared with another account.
    Shared,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PasswordPolicyResult {
    pub checks: Vec<PolicyCheck>,
    #[serde(default)]
    pub issues: Vec<CollectIssue>,
}

/// One item of the password-complexity policy, e.g. `login_defs.pass_max_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCheck {
    /// Stable id, e.g. `login_defs.pass_max_days`, `pwquality.minlen`, `faillock.deny`.
    pub id: String,
    /// One line for a person, e.g. "Maximum password age".
    pub title: String,
    /// The file the value was read from (or would be set in).
    pub file: String,
    /// The expected value, as a person would write it: `<= 90`, `>= 8`, `enabled`.
    pub expected: String,
    /// What the host has; `None` when it is not set at all.
    pub actual: Option<String>,
    pub pass: bool,
    /// How to fix it, one line.
    pub remedy: String,
}

/// Risk-scan policy of a project, pushed to its agents in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskPolicy {
    /// Start of the daily scan window, minutes after local midnight (default 0 = 00:00).
    pub window_start_min: u32,
    /// End of the window, minutes after local midnight (default 240 = 04:00). May be lower than
    /// the start: the window then crosses midnight.
    pub window_end_min: u32,
    /// Extra random delay, at most this many seconds (default 7,200), so a fleet does not scan
    /// at one instant.
    pub jitter_secs: u32,
    /// Daily scan on or off.
    pub daily_scan: bool,
    /// The project's own weak-password list (at most 300 words).
    pub custom_weak_passwords: Vec<String>,
    /// Time budget of the weak-password check per scan, seconds.
    pub weak_password_budget_secs: u32,
    /// Whether `vuln_fix` tasks may run the package manager on the host. Off by default.
    pub allow_fix: bool,
}

impl crate::Section for RiskPolicy {
    const KEY: &'static str = "risk";
}

impl Default for RiskPolicy {
    fn default() -> Self {
        RiskPolicy {
            window_start_min: 0,
            window_end_min: 240,
            jitter_secs: 7200,
            daily_scan: true,
            custom_weak_passwords: Vec::new(),
            weak_password_budget_secs: 300,
            allow_fix: false,
        }
    }
}

/// Largest custom weak-password list a project may keep.
pub const MAX_CUSTOM_WEAK_PASSWORDS: usize = 300;

impl RiskPolicy {
    /// Checks the limits; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_start_min >= 1440 {
            return Err("window_start_min: must be below 1440 (minutes after midnight)".into());
        }
        if self.window_end_min > 1440 {
            return Err("window_end_min: must be at most 1440 (minutes after midnight)".into());
        }
        if self.window_start_min == self.window_end_min {
            return Err("window_end_min: the window must not be empty".into());
        }
        if self.jitter_secs > 86_400 {
            return Err("jitter_secs: at most 86400".into());
        }
        if self.custom_weak_passwords.len() > MAX_CUSTOM_WEAK_PASSWORDS {
            return Err(format!(
                "custom_weak_passwords: at most {MAX_CUSTOM_WEAK_PASSWORDS} words"
            ));
        }
        if let Some(i) = self
            .custom_weak_passwords
            .iter()
            .position(|w| w.is_empty() || w.len() > 128 || w.chars().any(char::is_control))
        {
            return Err(format!(
                "custom_weak_passwords[{i}]: 1 to 128 characters, no control characters"
            ));
        }
        if !(1..=3600).contains(&self.weak_password_budget_secs) {
            return Err("weak_password_budget_secs: 1 to 3600".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_matches_the_reference_window() {
        let p = RiskPolicy::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(
            (p.window_start_min, p.window_end_min, p.jitter_secs),
            (0, 240, 7200)
        );
        assert!(!p.allow_fix);
    }

    #[test]
    fn policy_limits_name_the_field() {
        let mut p = RiskPolicy {
            custom_weak_passwords: vec!["x".into(); 301],
            ..Default::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("custom_weak_passwords")
        );
        p.custom_weak_passwords = vec!["ok".into(), "bad\n".into()];
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("custom_weak_passwords[1]")
        );
        p.custom_weak_passwords.clear();
        p.window_end_min = p.window_start_min;
        assert!(p.validate().unwrap_err().starts_with("window_end_min"));
    }

    #[test]
    fn scan_request_without_checks_wants_all() {
        let all: ScanRequest = serde_json::from_str("{}").unwrap();
        assert!(ScanCheck::ALL.iter().all(|c| all.wants(*c)));
        let one: ScanRequest = serde_json::from_str(r#"{"checks":["weak_passwords"]}"#).unwrap();
        assert!(one.wants(ScanCheck::WeakPasswords) && !one.wants(ScanCheck::PasswordPolicy));
        assert!(serde_json::from_str::<ScanRequest>(r#"{"checks":["nope"]}"#).is_err());
    }
}
