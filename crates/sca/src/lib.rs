//! Configuration baselines: policies in Wazuh's SCA YAML format (so the policies security teams
//! already keep load as they are), evaluated against a host into pass / fail / not applicable
//! with evidence.
//!
//! Pure but for the [`Host`] it is given: [`load`] parses a policy's text (every error names
//! file, line, and for a rule the check id and rule position), [`run`] evaluates it through the
//! host's files, directory listings, processes and commands. [`RootHost`] is the real host over
//! a filesystem root; commands run only when that root is `/`, in a process group killed at a
//! time limit, with capped output.
//!
//! Semantics follow Wazuh: content rules match line by line; regexes are case-insensitive and
//! byte-wise with ASCII classes (Wazuh 5's PCRE2 flags, no UTF) but run on the linear-time
//! `regex` crate, so a pathological pattern cannot stall a scan and a backreference or
//! look-around is refused at load (PCRE spellings the crate lacks, `\/`, `\h`, a literal `{`,
//! are translated: 69 of the 72 policies in Wazuh's ruleset load; the other three have regexes
//! PCRE2 refuses too, or a Windows path); a rule on a
//! missing file does not match; a check that cannot be evaluated (a command that is missing,
//! killed, or not run; a file that cannot be read) is not applicable with the reason, never a
//! pass. Hostward's additions: a check's optional `severity`, a `*` glob in the last part of
//! an `f:` path, and `d:` searches that read links to files (Wazuh skips every link; Debian's
//! nginx sites-enabled/ holds nothing else). One deliberate difference: a content rule on a
//! missing file does not match (Wazuh 5 makes it not applicable), so `not f:/x -> r:...` holds
//! where /x is absent, which is what a baseline forbidding a setting means.

mod eval;
pub mod host;
mod policy;
pub mod rule;

pub use host::{CommandOutput, DirEntry, EntryKind, Host, RootHost};
pub use policy::{Check, Policy, PolicyError, Requirements, load};
pub use rule::Rule;

use serde::{Deserialize, Serialize};

/// The policies Hostward ships (`content/sca/`), built into every binary that runs baselines:
/// (file name, text). One line per policy; the `shipped` test checks the folder and this list
/// agree.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "apache.yml",
        include_str!("../../../content/sca/apache.yml"),
    ),
    (
        "debian.yml",
        include_str!("../../../content/sca/debian.yml"),
    ),
    (
        "docker.yml",
        include_str!("../../../content/sca/docker.yml"),
    ),
    (
        "kubelet.yml",
        include_str!("../../../content/sca/kubelet.yml"),
    ),
    (
        "mongodb.yml",
        include_str!("../../../content/sca/mongodb.yml"),
    ),
    ("mysql.yml", include_str!("../../../content/sca/mysql.yml")),
    ("nginx.yml", include_str!("../../../content/sca/nginx.yml")),
    (
        "postgresql.yml",
        include_str!("../../../content/sca/postgresql.yml"),
    ),
    ("redis.yml", include_str!("../../../content/sca/redis.yml")),
    ("rhel.yml", include_str!("../../../content/sca/rhel.yml")),
    ("sshd.yml", include_str!("../../../content/sca/sshd.yml")),
    (
        "tomcat.yml",
        include_str!("../../../content/sca/tomcat.yml"),
    ),
];

/// The shipped policies, loaded. A shipped policy that does not load is a build defect the
/// `shipped` test catches; here it is left out rather than stopping every scan.
pub fn shipped() -> Vec<Policy> {
    SHIPPED
        .iter()
        .filter_map(|(file, text)| load(file, text).ok())
        .collect()
}

/// How a check's rules combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Every rule matches.
    All,
    /// At least one rule matches.
    Any,
    /// No rule matches.
    None,
}

/// Hostward's one severity scale (a policy may write it in any case).
pub use hostward_proto::Severity;

/// The result types are the wire's: the agent sends them as they come out of [`run`].
pub use hostward_proto::baseline::{CheckResult, Outcome, PolicyReport};

/// Evaluates every check of `policy` on `host`, after its requirements.
pub fn run(policy: &Policy, host: &dyn Host) -> PolicyReport {
    let mut report = PolicyReport {
        policy_id: policy.id.clone(),
        name: policy.name.clone(),
        applicable: true,
        reason: None,
        checks: Vec::new(),
    };
    if let Some(req) = &policy.requirements {
        let v = eval::eval_rules(req.condition, &req.rules, host);
        if v.outcome != Outcome::Pass {
            let mut why = format!("requirements not met: {}", req.title);
            if let Some(r) = v.reason {
                why.push_str(&format!(" ({r})"));
            } else if !v.evidence.is_empty() {
                why.push_str(&format!(" ({})", v.evidence.join("; ")));
            }
            report.applicable = false;
            report.reason = Some(why);
            return report;
        }
    }
    for c in &policy.checks {
        let v = eval::eval_rules(c.condition, &c.rules, host);
        report.checks.push(CheckResult {
            id: c.id,
            title: c.title.clone(),
            result: v.outcome,
            reason: v.reason,
            evidence: v.evidence,
            severity: c.severity,
            rationale: c.rationale.clone(),
            remediation: c.remediation.clone(),
            compliance: c.compliance.clone(),
        });
    }
    report
}
