//! The shipped SSH and OS checks agree with OpenSCAP on this host: `oscap xccdf eval` runs the
//! SCAP Security Guide's standard profile (ssg-debian's content), and the shipped sshd.yml and
//! debian.yml run through `RootHost::new("/")`. Which SSG rules a check agrees with is data in
//! the policies, `compliance: ssg: [...]`: the check passes exactly when all of them pass.
//! Every check that both tools decide (pass or fail) on this host must agree, there must be at
//! least `MIN_COMPARED` of them, and the pairs are printed (`-- --nocapture`). Checks whose
//! semantics differ from SSG's name no ssg rule; the policies say why beside them.
//!
//! ssg-debian ships Debian 11 content only. The copy evaluated here has two patches: its
//! installed-OS check widened to Debian 12 (bench/baseline.sh's CPE patch), and its container
//! markers (/.dockerenv, /run/.containerenv) renamed so that its `machine` platform holds in a
//! container too: SSG leaves the rules for sshd, sysctl and packages "not applicable" in a
//! container, yet the files they read are the container's own, as they are for Hostward. On a
//! machine the second patch changes nothing.
//!
//! Without oscap or ssg-debian the test is skipped with a message; with CI=true it fails
//! (.ci/run installs openscap-scanner and ssg-debian).

use hostward_sca::{Outcome, RootHost};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const DATASTREAM: &str = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml";
const PROFILE: &str = "xccdf_org.ssgproject.content_profile_standard";
const RULE_PREFIX: &str = "xccdf_org.ssgproject.content_rule_";
const POLICIES: &[&str] = &["sshd.yml", "debian.yml"];

/// Checks compared on a Debian 12 host: 10001 root login (when openssh-server is installed),
/// 11012 ASLR, 11014 set-uid core dumps, 11030 /etc/passwd, 11031 /etc/shadow, 11051 auditd
/// installed; 11052 auditd enabled too where auditd is. Five without openssh-server.
const MIN_COMPARED: usize = 5;

/// (what, text in ssg-debian's datastream, its replacement): each must apply.
const PATCHES: &[(&str, &str, &str)] = &[
    (
        "the Debian 11 installed-OS check, widened to 12",
        r#"<ind:pattern operation="pattern match">^11.[0-9]+$</ind:pattern>"#,
        r#"<ind:pattern operation="pattern match">^1[12].[0-9]+$</ind:pattern>"#,
    ),
    (
        "the container marker /.dockerenv",
        r#"<unix:filepath datatype="string">/.dockerenv</unix:filepath>"#,
        r#"<unix:filepath datatype="string">/nonexistent/.dockerenv</unix:filepath>"#,
    ),
    (
        "the container marker /run/.containerenv",
        r#"<unix:filepath datatype="string">/run/.containerenv</unix:filepath>"#,
        r#"<unix:filepath datatype="string">/nonexistent/.containerenv</unix:filepath>"#,
    ),
];

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether oscap and the SSG content are here: outside CI a missing one skips the test with a
/// message, in CI it is a failure.
fn oscap_available() -> bool {
    let oscap = Command::new("oscap").arg("--version").output().is_ok();
    let content = Path::new(DATASTREAM).exists();
    if oscap && content {
        return true;
    }
    let missing = match (oscap, content) {
        (false, false) => format!("oscap and {DATASTREAM} are"),
        (false, true) => "oscap is".to_string(),
        _ => format!("{DATASTREAM} is"),
    };
    assert!(
        !is_ci(),
        "CI=true but {missing} missing: .ci/run installs openscap-scanner and ssg-debian \
         (apt-get install openscap-scanner ssg-debian)"
    );
    eprintln!("SKIPPED: {missing} missing (apt-get install openscap-scanner ssg-debian)");
    false
}

/// Rule results of an XCCDF results document: `rule-result` idref -> its `result` (pass, fail,
/// notapplicable, notselected, error, ...). String scanning: the elements are flat and their
/// names are what the XCCDF 1.2 schema fixes, with or without a namespace prefix.
fn rule_results(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = xml;
    while let Some(i) = rest.find("rule-result ") {
        rest = &rest[i + "rule-result ".len()..];
        let end = rest.find("rule-result>").unwrap_or(rest.len());
        let elem = &rest[..end];
        rest = &rest[end..];
        let Some(idref) = elem
            .split_once("idref=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(id, _)| id)
        else {
            continue;
        };
        // The first `result>` is the `<result>` child (attributes hold none).
        let Some(result) = elem
            .split_once("result>")
            .and_then(|(_, r)| r.split_once('<'))
            .map(|(v, _)| v.trim())
        else {
            continue;
        };
        out.insert(idref.to_string(), result.to_string());
    }
    out
}

/// Runs the standard profile on this host, on a patched copy of the datastream.
fn oscap_eval(dir: &Path) -> BTreeMap<String, String> {
    let mut ds = std::fs::read_to_string(DATASTREAM).unwrap();
    for (what, from, to) in PATCHES {
        assert!(
            ds.contains(from),
            "{DATASTREAM} no longer holds {what} ({from}): ssg-debian changed; update PATCHES"
        );
        ds = ds.replace(from, to);
    }
    let patched = dir.join("ssg-ds.xml");
    let results = dir.join("results.xml");
    std::fs::write(&patched, ds).unwrap();
    let out = Command::new("oscap")
        .args(["xccdf", "eval", "--profile", PROFILE, "--results"])
        .arg(&results)
        .arg(&patched)
        .output()
        .unwrap();
    // 0: every rule passed, 2: some failed; anything else is an error of oscap's.
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "oscap xccdf eval: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(&results).unwrap();
    rule_results(&xml)
}

/// A shipped check that names SSG rules, as it came out on this host.
struct Ours {
    id: i64,
    title: String,
    result: Outcome,
    reason: Option<String>,
    ssg: Vec<String>,
}

fn ours() -> Vec<Ours> {
    let host = RootHost::new("/");
    let policies: Vec<_> = hostward_sca::shipped()
        .into_iter()
        .filter(|p| POLICIES.contains(&p.file.as_str()))
        .collect();
    assert_eq!(policies.len(), POLICIES.len(), "shipped() has {POLICIES:?}");
    let mut out = Vec::new();
    for policy in &policies {
        let report = hostward_sca::run(policy, &host);
        if !report.applicable {
            println!(
                "{}: not applicable on this host ({})",
                policy.file,
                report.reason.unwrap_or_default()
            );
            continue;
        }
        for c in report.checks {
            let Some(ssg) = c.compliance.get("ssg").filter(|s| !s.is_empty()) else {
                continue;
            };
            for name in ssg {
                assert!(
                    !name.is_empty()
                        && !name.starts_with(RULE_PREFIX)
                        && name
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'),
                    "{} check {}: ssg entries are bare SSG rule names, not {name:?}",
                    policy.file,
                    c.id
                );
            }
            out.push(Ours {
                id: c.id,
                title: c.title,
                result: c.result,
                reason: c.reason,
                ssg: ssg.clone(),
            });
        }
    }
    out
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::NotApplicable => "n/a",
    }
}

#[test]
fn shipped_checks_agree_with_the_ssg_standard_profile() {
    if !oscap_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = oscap_eval(dir.path());
    let selected = theirs.values().filter(|r| *r != "notselected").count();
    assert!(
        selected >= 30,
        "the standard profile selected {selected} rules (44 in ssg-debian 0.1.65)"
    );
    let mut ours = ours();
    ours.sort_by_key(|c| c.id);

    let mut compared = 0;
    let mut disagree = Vec::new();
    println!(
        "{:<6} {:<4} {:<50} {:<14} verdict",
        "check", "ours", "SSG rule", "oscap"
    );
    for c in &ours {
        // oscap's verdict on the conjunction of the check's rules: fail when one of them
        // fails, pass when all of them pass, else none.
        let results: Vec<&str> = c
            .ssg
            .iter()
            .map(|name| match theirs.get(&format!("{RULE_PREFIX}{name}")) {
                Some(r) if r == "notselected" => "not in profile",
                Some(r) => r.as_str(),
                None => "not in content",
            })
            .collect();
        let their = if results.contains(&"fail") {
            Some(Outcome::Fail)
        } else if results.iter().all(|r| *r == "pass") {
            Some(Outcome::Pass)
        } else {
            None
        };
        let verdict = match (c.result, their) {
            (Outcome::NotApplicable, _) => format!(
                "not compared: ours not applicable ({})",
                c.reason.as_deref().unwrap_or("")
            ),
            (_, None) => {
                let mut undecided: Vec<&str> =
                    results.iter().copied().filter(|r| *r != "pass").collect();
                undecided.dedup();
                format!("not compared: oscap {}", undecided.join(", "))
            }
            (o, Some(t)) if o == t => {
                compared += 1;
                "agree".to_string()
            }
            (o, Some(t)) => {
                disagree.push(format!(
                    "{} ({}): ours {}, oscap {} ({})",
                    c.id,
                    c.title,
                    word(o),
                    word(t),
                    c.ssg
                        .iter()
                        .zip(&results)
                        .map(|(n, r)| format!("{n} {r}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                "DISAGREE".to_string()
            }
        };
        for (i, (name, r)) in c.ssg.iter().zip(&results).enumerate() {
            if i == 0 {
                println!(
                    "{:<6} {:<4} {name:<50} {r:<14} {verdict}",
                    c.id,
                    word(c.result)
                );
            } else {
                println!("{:<6} {:<4} {name:<50} {r}", "", "");
            }
        }
    }
    println!("{compared} checks compared, {} disagree", disagree.len());
    assert!(
        disagree.is_empty(),
        "shipped checks disagree with oscap's SSG standard profile on this host:\n{}",
        disagree.join("\n")
    );
    assert!(
        compared >= MIN_COMPARED,
        "only {compared} shipped checks were decided by both tools (expected {MIN_COMPARED} or \
         more): see the table above"
    );
}

#[test]
fn rule_results_are_read_with_or_without_a_prefix() {
    let xml = r#"<TestResult id="t">
      <rule-result idref="xccdf_org.ssgproject.content_rule_a" role="full" weight="1.0">
        <result>pass</result>
        <check system="x"><check-content-ref name="n" href="h"/></check>
      </rule-result>
      <xccdf:rule-result idref="xccdf_org.ssgproject.content_rule_b" time="t">
        <xccdf:result>notapplicable</xccdf:result>
      </xccdf:rule-result>
      <rule-result idref="xccdf_org.ssgproject.content_rule_c"><result>fail</result></rule-result>
    </TestResult>"#;
    let r = rule_results(xml);
    assert_eq!(r.len(), 3);
    assert_eq!(r[&format!("{RULE_PREFIX}a")], "pass");
    assert_eq!(r[&format!("{RULE_PREFIX}b")], "notapplicable");
    assert_eq!(r[&format!("{RULE_PREFIX}c")], "fail");
}
