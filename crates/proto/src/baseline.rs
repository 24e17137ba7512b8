//! Configuration baselines: the results of Wazuh-SCA-format policies on a host (the agent runs
//! them in its risk scan and sends them in the `risk` record), and the project's baseline
//! policy the center pushes (which shipped policies run, and the policies people imported).
//!
//! The center keys a result by (policy id, check id): two policies may reuse a check id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotApplicable => "not_applicable",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Pass, Outcome::Fail, Outcome::NotApplicable]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One check's result on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: i64,
    pub title: String,
    pub result: Outcome,
    /// Why a check is not applicable.
    #[serde(default)]
    pub reason: Option<String>,
    /// What decided it: `path:line: text`, a command's output, `path: no such file`, each
    /// prefixed with the rule's position (`rule 2: ...`).
    #[serde(default)]
    pub evidence: Vec<String>,
    pub severity: Severity,
    #[serde(default)]
    pub rationale: String,
    #[serde(default)]
    pub remediation: String,
    #[serde(default)]
    pub compliance: BTreeMap<String, Vec<String>>,
}

/// A policy's results on one host. `applicable` false (requirements not met on this host:
/// its software is not there; `reason` says which) comes with no check results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub policy_id: String,
    pub name: String,
    pub applicable: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
}

/// The baseline part of a risk report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Every policy that ran, applicable or not.
    pub policies: Vec<PolicyReport>,
    /// Set when only one check ran (a verification): the center updates that check and leaves
    /// the server's other results as they are.
    #[serde(default)]
    pub only: Option<CheckRef>,
    /// Policies that were not run: an imported policy this agent could not load, with why.
    #[serde(default)]
    pub issues: Vec<String>,
}

/// One check of one policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRef {
    pub policy_id: String,
    pub check_id: i64,
}

/// An imported policy: the YAML as a person wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedPolicy {
    /// The file name it was imported as, named in every error.
    pub file: String,
    pub text: String,
}

/// Largest number of imported policies per project.
pub const MAX_IMPORTED: usize = 20;
/// Largest total size of a project's imported policies: the config frame carries them.
pub const MAX_IMPORTED_BYTES: usize = 512 * 1024;

/// The project's baseline policy, pushed to its agents in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselinePolicy {
    /// Shipped policies (by policy id) that do not run.
    pub disabled: Vec<String>,
    /// Policies people imported, run beside the shipped ones.
    pub imported: Vec<ImportedPolicy>,
}

impl crate::Section for BaselinePolicy {
    const KEY: &'static str = "baseline";
}

impl BaselinePolicy {
    /// The limits; the message names the field. Whether each text is a policy is the center's
    /// check (it has the engine).
    pub fn validate(&self) -> Result<(), String> {
        if self.disabled.len() > 100 {
            return Err("disabled: at most 100 policy ids".into());
        }
        if let Some(i) = self
            .disabled
            .iter()
            .position(|d| d.is_empty() || d.len() > 128 || d.chars().any(char::is_control))
        {
            return Err(format!(
                "disabled[{i}]: 1 to 128 characters, no control characters"
            ));
        }
        if self.imported.len() > MAX_IMPORTED {
            return Err(format!("imported: at most {MAX_IMPORTED} policies"));
        }
        let total: usize = self.imported.iter().map(|p| p.text.len()).sum();
        if total > MAX_IMPORTED_BYTES {
            return Err(format!(
                "imported: {total} bytes in all, at most {MAX_IMPORTED_BYTES}"
            ));
        }
        for (i, p) in self.imported.iter().enumerate() {
            let ok_name = !p.file.is_empty()
                && p.file.len() <= 128
                && p.file
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok_name {
                return Err(format!(
                    "imported[{i}].file: 1 to 128 characters of letters, digits, '.', '_', '-'"
                ));
            }
            if self.imported[..i].iter().any(|q| q.file == p.file) {
                return Err(format!("imported[{i}].file: {} is imported twice", p.file));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field() {
        let mut p = BaselinePolicy::default();
        assert!(p.validate().is_ok());
        p.imported.push(ImportedPolicy {
            file: "../x.yml".into(),
            text: String::new(),
        });
        assert!(p.validate().unwrap_err().starts_with("imported[0].file"));
        p.imported[0].file = "ok.yml".into();
        p.imported.push(p.imported[0].clone());
        assert!(p.validate().unwrap_err().contains("twice"));
        p.imported.pop();
        p.imported[0].text = "x".repeat(MAX_IMPORTED_BYTES + 1);
        assert!(p.validate().unwrap_err().starts_with("imported:"));
    }

    #[test]
    fn outcomes_round_trip_their_names() {
        for o in [Outcome::Pass, Outcome::Fail, Outcome::NotApplicable] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::json!(o.as_str())
            );
        }
    }
}
