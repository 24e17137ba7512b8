//! The shipped policies and a Wazuh-style policy on real fixture trees: the weak root fails
//! exactly the expected checks, the hardened root fails none, and fixing one file in a copy
//! flips that check to pass.

use hostward_sca::{Outcome, PolicyReport, RootHost, load, run};

mod common;
use common::{copy_tree, fixtures, ids, range, shipped};

/// Every check that reads files: on a fixture root only `c:` checks are not applicable.
const COMMAND_CHECKS: &[i64] = &[10018, 11030, 11031, 11040, 11041, 11052, 12004, 13006];

fn expected_weak(policy: &str) -> Vec<i64> {
    let mut v = match policy {
        "sshd.yml" => range(10001, 10021),
        "debian.yml" => {
            let mut v = range(11001, 11015);
            v.extend([11020, 11021, 11022, 11023, 11024, 11025]);
            v.extend([11032, 11033, 11034, 11050, 11051, 11060, 11061, 11062]);
            v
        }
        "nginx.yml" => vec![12001, 12002, 12003],
        // 13004 (short password) passes: the weak root has no password at all (13003).
        "redis.yml" => vec![13001, 13002, 13003, 13005],
        _ => unreachable!(),
    };
    v.retain(|id| !COMMAND_CHECKS.contains(id));
    v
}

const POLICIES: &[&str] = &["sshd.yml", "debian.yml", "nginx.yml", "redis.yml"];

#[test]
fn weak_root_fails_exactly_the_expected_checks() {
    let host = RootHost::new(fixtures().join("weak"));
    for name in POLICIES {
        let report = run(&shipped(name), &host);
        assert!(report.applicable, "{name}: {:?}", report.reason);
        assert_eq!(ids(&report, Outcome::Fail), expected_weak(name), "{name}");
        for c in &report.checks {
            if c.result == Outcome::NotApplicable {
                assert!(
                    COMMAND_CHECKS.contains(&c.id),
                    "{name} {}: {:?}",
                    c.id,
                    c.reason
                );
                assert!(
                    c.reason
                        .as_deref()
                        .unwrap_or("")
                        .contains("commands only run on the live host"),
                    "{c:?}"
                );
            }
            assert!(
                !c.evidence.is_empty() || c.result == Outcome::NotApplicable,
                "{c:?}"
            );
        }
    }
}

#[test]
fn hardened_root_passes() {
    let host = RootHost::new(fixtures().join("hardened"));
    for name in POLICIES {
        let report = run(&shipped(name), &host);
        assert!(report.applicable, "{name}: {:?}", report.reason);
        let failed: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.result == Outcome::Fail)
            .collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
        for c in &report.checks {
            let want = if COMMAND_CHECKS.contains(&c.id) {
                Outcome::NotApplicable
            } else {
                Outcome::Pass
            };
            assert_eq!(c.result, want, "{name} {}: {c:?}", c.id);
        }
    }
}

#[test]
fn evidence_names_file_line_and_text() {
    let host = RootHost::new(fixtures().join("weak"));
    let report = run(&shipped("sshd.yml"), &host);
    let root_login = report.checks.iter().find(|c| c.id == 10001).unwrap();
    assert_eq!(
        root_login.evidence,
        [
            "rule 1: /etc/ssh/sshd_config: no line matches r:^\\s*PermitRootLogin\\s+no\\s*$",
            "rule 1: /etc/ssh/sshd_config.d/50-cloud-init.conf: no line matches r:^\\s*PermitRootLogin\\s+no\\s*$"
        ]
    );
    let empty = report.checks.iter().find(|c| c.id == 10003).unwrap();
    assert_eq!(
        empty.evidence,
        ["rule 1: /etc/ssh/sshd_config:6: PermitEmptyPasswords yes"]
    );
    // sites-enabled/default is a link (absolute, so resolved inside the root) to sites-available.
    let nginx = run(&shipped("nginx.yml"), &host);
    let autoindex = nginx.checks.iter().find(|c| c.id == 12003).unwrap();
    assert_eq!(
        autoindex.evidence,
        ["rule 2: /etc/nginx/sites-enabled/default:5:         autoindex on;"]
    );
    // The drop-in counts as well as the main file.
    let pw = report.checks.iter().find(|c| c.id == 10002).unwrap();
    assert_eq!(pw.evidence.len(), 2, "{pw:?}");
    assert!(
        pw.evidence[1].starts_with("rule 1: /etc/ssh/sshd_config.d/50-cloud-init.conf: no line"),
        "{pw:?}"
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"result\":\"fail\""), "{json}");
    let back: PolicyReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

fn result_of(report: &PolicyReport, id: i64) -> Outcome {
    report.checks.iter().find(|c| c.id == id).unwrap().result
}

#[test]
fn fixing_a_file_flips_its_check() {
    let t = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("weak"), t.path());
    let host = RootHost::new(t.path());
    let sshd = shipped("sshd.yml");
    let redis = shipped("redis.yml");
    assert_eq!(result_of(&run(&sshd, &host), 10001), Outcome::Fail);
    assert_eq!(result_of(&run(&redis, &host), 13003), Outcome::Fail);

    let conf = t.path().join("etc/ssh/sshd_config");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("PermitRootLogin yes", "PermitRootLogin no"),
    )
    .unwrap();
    let after = run(&sshd, &host);
    assert_eq!(result_of(&after, 10001), Outcome::Pass);
    // Nothing else changed.
    let mut still = expected_weak("sshd.yml");
    still.retain(|id| *id != 10001);
    assert_eq!(ids(&after, Outcome::Fail), still);

    // A second PermitRootLogin with another value, in a drop-in, fails it again.
    std::fs::write(
        t.path().join("etc/ssh/sshd_config.d/99-local.conf"),
        "PermitRootLogin prohibit-password\n",
    )
    .unwrap();
    let c = run(&sshd, &host);
    let check = c.checks.iter().find(|c| c.id == 10001).unwrap();
    assert_eq!(check.result, Outcome::Fail);
    assert_eq!(
        check.evidence,
        ["rule 2: /etc/ssh/sshd_config.d/99-local.conf:1: PermitRootLogin prohibit-password"]
    );

    let rconf = t.path().join("etc/redis/redis.conf");
    let mut text = std::fs::read_to_string(&rconf).unwrap();
    text.push_str("requirepass 9b2e61f0c4a84d7f8e3c5a1b\n");
    std::fs::write(&rconf, text).unwrap();
    assert_eq!(result_of(&run(&redis, &host), 13003), Outcome::Pass);
}

#[test]
fn a_policy_whose_requirements_fail_is_not_applicable() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    let report = run(&shipped("nginx.yml"), &RootHost::new(t.path()));
    assert!(!report.applicable);
    assert!(report.checks.is_empty());
    let reason = report.reason.unwrap();
    assert!(
        reason.starts_with("requirements not met: nginx is configured on this host"),
        "{reason}"
    );
    assert!(
        reason.contains("/etc/nginx/nginx.conf: no such file"),
        "{reason}"
    );
}

#[test]
fn wazuh_style_policy_gives_the_expected_results() {
    let text = std::fs::read_to_string(fixtures().join("wazuh_style.yml")).unwrap();
    let policy = load("wazuh_style.yml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.checks[0].compliance["pci_dss"], ["2.2.4"]);
    let report = run(&policy, &RootHost::new(fixtures().join("wazuh_root")));
    assert!(report.applicable, "{:?}", report.reason);
    let got: Vec<(i64, Outcome)> = report.checks.iter().map(|c| (c.id, c.result)).collect();
    use Outcome::*;
    assert_eq!(
        got,
        [
            (500, Pass),
            (501, Fail),
            (502, Pass),
            (503, Pass),
            (504, Pass),
            (505, Pass),
            (506, Pass),
            (507, Pass),
            (508, NotApplicable),
            (509, Pass),
            (510, Fail),
            (511, Pass),
            (512, NotApplicable),
            (513, Pass),
        ]
    );
    let by = |id| report.checks.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        by(501).evidence,
        [
            "rule 1: /etc/app/missing.conf: no such file",
            "rule 1: /etc/app/app.conf: no line matches n:^workers\\s*=\\s*(\\d+) compare <= 8"
        ]
    );
    assert_eq!(
        by(503).evidence,
        ["rule 1: /etc/app/conf.d/10-tls.conf:1: tls = on"]
    );
    assert!(
        by(508)
            .reason
            .as_deref()
            .unwrap()
            .contains("commands only run on the live host")
    );
    assert!(by(512).reason.as_deref().unwrap().contains("Windows"));
    assert_eq!(
        by(509).evidence,
        ["rule 2: /etc/app/app.conf:3: workers = 16"]
    );
}

/// The shipped policies on this machine itself: whatever it is, every check has a verdict with
/// evidence, or is not applicable with a reason (commands really run here, with a short limit).
#[test]
fn shipped_policies_run_on_the_live_host() {
    let mut host = RootHost::new("/");
    host.command_timeout = std::time::Duration::from_secs(5);
    for name in POLICIES {
        let report = run(&shipped(name), &host);
        if !report.applicable {
            assert!(report.reason.is_some(), "{name}");
            continue;
        }
        for c in &report.checks {
            match c.result {
                Outcome::NotApplicable => assert!(c.reason.is_some(), "{name} {c:?}"),
                _ => assert!(!c.evidence.is_empty(), "{name} {c:?}"),
            }
        }
    }
}
