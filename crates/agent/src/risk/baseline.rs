//! The configuration baselines of a risk scan: the shipped SCA policies (but those the project
//! turned off) and the project's imported ones, run on the host root. A policy whose
//! requirements do not hold (its software is not installed) reports not applicable, with no
//! checks. Commands run only when the root is `/` (`RootHost`'s rule); on another root a
//! command check is not applicable, never a pass.

use std::path::Path;

use hostward_proto::baseline::{BaselinePolicy, BaselineResult, CheckRef};
use hostward_sca::{Policy, RootHost};

/// Runs every policy in force, or only `only` (a verification of one check).
pub fn check(root: &Path, policy: &BaselinePolicy, only: Option<&CheckRef>) -> BaselineResult {
    let mut issues = Vec::new();
    let mut imported: Vec<Policy> = Vec::new();
    for p in &policy.imported {
        match hostward_sca::load(&p.file, &p.text) {
            Ok(p) => imported.push(p),
            Err(e) => issues.push(format!("imported policy not run: {e}")),
        }
    }
    // An imported policy with a shipped one's id replaces it: the people's version wins.
    let mut policies: Vec<Policy> = hostward_sca::shipped()
        .into_iter()
        .filter(|p| !policy.disabled.contains(&p.id) && !imported.iter().any(|i| i.id == p.id))
        .collect();
    policies.extend(imported);
    let host = RootHost::new(root);
    let mut out = Vec::new();
    let mut in_force = false;
    for mut p in policies {
        if let Some(o) = only {
            if p.id != o.policy_id {
                continue;
            }
            in_force = true;
            p.checks.retain(|c| c.id == o.check_id);
            if p.checks.is_empty() {
                issues.push(format!(
                    "policy {} has no check {}",
                    o.policy_id, o.check_id
                ));
                continue;
            }
        }
        out.push(hostward_sca::run(&p, &host));
    }
    if let Some(o) = only
        && !in_force
    {
        issues.push(format!(
            "policy {} is not in force on this server (turned off or not imported)",
            o.policy_id
        ));
    }
    BaselineResult {
        policies: out,
        only: only.cloned(),
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::baseline::{ImportedPolicy, Outcome};

    const IMPORTED: &str = r#"
policy:
  id: "site_motd"
  file: "site.yml"
  name: "Site rules"
  description: "One check."
checks:
  - id: 90001
    title: "A banner is set"
    description: "d"
    rationale: "r"
    remediation: "Write /etc/motd."
    condition: all
    rules:
      - 'f:/etc/motd'
"#;

    fn root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/ssh")).unwrap();
        std::fs::write(
            d.path().join("etc/ssh/sshd_config"),
            "PermitRootLogin yes\nPasswordAuthentication yes\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn shipped_and_imported_policies_run_and_one_check_can_be_verified_alone() {
        let d = root();
        let mut pol = BaselinePolicy::default();
        pol.imported.push(ImportedPolicy {
            file: "site.yml".into(),
            text: IMPORTED.into(),
        });
        let r = check(d.path(), &pol, None);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        let sshd = r
            .policies
            .iter()
            .find(|p| p.policy_id == "hostward_sshd")
            .unwrap();
        assert!(sshd.applicable);
        assert!(sshd.checks.iter().any(|c| c.result == Outcome::Fail));
        let nginx = r
            .policies
            .iter()
            .find(|p| p.policy_id == "hostward_nginx")
            .unwrap();
        assert!(!nginx.applicable, "no nginx on this root");
        let site = r
            .policies
            .iter()
            .find(|p| p.policy_id == "site_motd")
            .unwrap();
        assert_eq!(site.checks[0].result, Outcome::Fail);

        std::fs::write(d.path().join("etc/motd"), "authorised use only\n").unwrap();
        let only = CheckRef {
            policy_id: "site_motd".into(),
            check_id: 90001,
        };
        let r = check(d.path(), &pol, Some(&only));
        assert_eq!(r.policies.len(), 1);
        assert_eq!(r.policies[0].checks.len(), 1);
        assert_eq!(r.policies[0].checks[0].result, Outcome::Pass);
        assert_eq!(r.only, Some(only));
    }

    #[test]
    fn a_disabled_policy_does_not_run_and_a_broken_import_is_reported() {
        let d = root();
        let pol = BaselinePolicy {
            disabled: vec!["hostward_sshd".into()],
            imported: vec![ImportedPolicy {
                file: "bad.yml".into(),
                text: "policy: [".into(),
            }],
        };
        let r = check(d.path(), &pol, None);
        assert!(!r.policies.iter().any(|p| p.policy_id == "hostward_sshd"));
        assert_eq!(r.issues.len(), 1);
        assert!(r.issues[0].contains("bad.yml"), "{:?}", r.issues);
        let only = CheckRef {
            policy_id: "hostward_sshd".into(),
            check_id: 10001,
        };
        let r = check(d.path(), &pol, Some(&only));
        assert!(r.policies.is_empty());
        assert!(
            r.issues.iter().any(|i| i.contains("not in force")),
            "{:?}",
            r.issues
        );
    }
}
