//! Policies that must be refused, each with an error naming file and line (and check and rule
//! where the fault is in a rule), and inputs that must not stall a scan.

use hostward_sca::{CommandOutput, Host, Outcome, RootHost, load, run};
use std::time::Duration;

const GOOD_HEAD: &str = "policy:
  id: t
  file: t.yml
  name: T
  description: d
checks:
";

fn refused(text: &str) -> String {
    match load("policy.yml", text) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let text = format!("{GOOD_HEAD}  - id: 1\n    title: \"unclosed\n    condition: all\n");
    let e = refused(&text);
    assert!(e.starts_with("policy.yml:"), "{e}");
    let line: u64 = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!(line >= 7, "{e}");
    let e = refused("policy: [\n");
    assert!(e.starts_with("policy.yml:"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = refused("checks:\n  - {id: 1\n");
    assert!(
        e.starts_with("policy.yml:2:") || e.starts_with("policy.yml:3:"),
        "{e}"
    );
}

#[test]
fn bad_rule_names_check_and_rule() {
    let text = format!(
        "{GOOD_HEAD}  - id: 3000
    title: ok
    condition: all
    rules:
      - 'f:/etc/passwd'
  - id: 3001
    title: bad
    condition: all
    rules:
      - 'f:/etc/passwd'
      - 'x:/etc/shadow'
"
    );
    let e = refused(&text);
    assert_eq!(
        e,
        "policy.yml:17: check 3001 rule 2: unknown rule type \"x:\""
    );
}

#[test]
fn unsupported_regex_is_a_load_error_with_the_reason() {
    let text = format!(
        "{GOOD_HEAD}  - id: 5
    title: backref
    condition: any
    rules:
      - 'f:/etc/passwd -> r:^(\\w+):\\1'
"
    );
    let e = refused(&text);
    assert!(
        e.starts_with("policy.yml:11: check 5 rule 1: bad regex"),
        "{e}"
    );
    assert!(e.contains("backreferences are not supported"), "{e}");
}

#[test]
fn missing_and_wrong_fields_are_refused() {
    // No checks at all, a check without rules, without a condition, a bad condition,
    // a bad severity, a duplicate id, no policy section.
    assert!(refused(GOOD_HEAD.trim_end_matches("checks:\n")).contains("missing field `checks`"));
    let e = refused("policy:\n  id: t\n  name: T\n  description: d\nchecks: []\n");
    assert!(e.contains("missing field `file`"), "{e}");
    let e = refused(&GOOD_HEAD.replace("checks:\n", "checks: []\n"));
    assert_eq!(e, "policy.yml:6: no checks");
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    title: x\n    condition: all\n    rules: []\n"
    ));
    assert!(e.contains("check 1: no rules"), "{e}");
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    title: x\n    rules: ['f:/x']\n"
    ));
    assert_eq!(e, "policy.yml:7: check 1: missing field `condition`");
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    condition: all\n    rules: ['f:/x']\n"
    ));
    assert_eq!(e, "policy.yml:7: check 1: missing field `title`");
    let e = refused(&format!(
        "{GOOD_HEAD}  - title: x\n    condition: all\n    rules: ['f:/x']\n"
    ));
    assert_eq!(e, "policy.yml:7: check without an id");
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    title: x\n    condition: most\n    rules: ['f:/x']\n"
    ));
    assert_eq!(
        e,
        "policy.yml:9: check 1: unknown condition \"most\" (all, any or none)"
    );
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    title: x\n    severity: urgent\n    condition: all\n    rules: ['f:/x']\n"
    ));
    assert!(
        e.starts_with("policy.yml:9: check 1: unknown severity"),
        "{e}"
    );
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: 1\n    title: x\n    condition: all\n    rules: ['f:/x']\n  - id: 1\n    title: y\n    condition: all\n    rules: ['f:/y']\n"
    ));
    assert!(e.starts_with("policy.yml:11: check 1: duplicate"), "{e}");
    let e = refused("checks:\n  - id: 1\n    title: x\n    condition: all\n    rules: ['f:/x']\n");
    assert!(e.contains("policy"), "{e}");
    let e = refused(&format!(
        "{GOOD_HEAD}  - id: one\n    title: x\n    condition: all\n    rules: ['f:/x']\n"
    ));
    assert!(e.starts_with("policy.yml:7:"), "{e}");
}

#[test]
fn unknown_keys_are_ignored_and_both_compliance_shapes_load() {
    let text = format!(
        "future_section: {{a: 1}}
{GOOD_HEAD}  - id: 1
    name: wazuh 5 spelling
    regex_type: pcre2
    mitre: {{tactic: {{id: [TA0001], name: [x]}}}}
    compliance:
      - cis: [\"5.1.20\", 4.1]
      - pci_dss: 2.2
    condition: all
    rules: ['f:/x']
  - id: 2
    title: map shape
    compliance:
      cis: [\"1.1\"]
      ssg: [sshd_disable_root_login]
    condition: none
    rules: ['f:/x']
"
    );
    let p = load("policy.yml", &text).unwrap();
    assert_eq!(p.checks[0].title, "wazuh 5 spelling");
    assert_eq!(p.file, "t.yml");
    assert_eq!(p.checks[0].compliance["cis"], ["5.1.20", "4.1"]);
    assert_eq!(p.checks[0].compliance["pci_dss"], ["2.2"]);
    assert_eq!(p.checks[1].compliance["ssg"], ["sshd_disable_root_login"]);
}

#[test]
fn references_and_variables_load_in_every_shape_wazuh_policies_use() {
    let text = "policy:
  id: t
  file: t.yml
  name: T
  description: d
  references: https://one.example/
variables:
  $empty:
  $list: [/etc/a, /etc/b]
  $plain: /etc/c,/etc/d
checks:
  - id: 1
    title: titled references
    references:
      - AppArmor Documentation: https://two.example/
      - https://three.example/
    condition: any
    rules:
      - 'f:$list'
      - 'f:$plain'
";
    let p = load("policy.yml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.references, ["https://one.example/"]);
    assert_eq!(
        p.checks[0].references,
        [
            "AppArmor Documentation: https://two.example/",
            "https://three.example/"
        ]
    );
    assert_eq!(p.checks[0].rules[0].text, "f:/etc/a,/etc/b");
    assert_eq!(p.checks[0].rules[1].text, "f:/etc/c,/etc/d");
}

#[test]
fn a_pathological_regex_returns() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    // Exponential for a backtracking engine; linear here.
    let mut line = "a".repeat(200_000);
    line.push('!');
    std::fs::write(t.path().join("etc/long"), format!("{line}\n")).unwrap();
    let text = format!(
        "{GOOD_HEAD}  - id: 1
    title: catastrophic
    condition: all
    rules:
      - 'f:/etc/long -> r:^(a+)+$'
      - 'f:/etc/long -> r:(a|aa)*b'
"
    );
    let p = load("policy.yml", &text).unwrap();
    let r = run(&p, &RootHost::new(t.path()));
    assert_eq!(r.checks[0].result, Outcome::Fail);
    assert!(
        r.checks[0].evidence[0].contains("no line matches"),
        "{:?}",
        r.checks[0]
    );
}

#[test]
fn a_hanging_command_is_killed_and_not_applicable() {
    let text = format!(
        "{GOOD_HEAD}  - id: 1
    title: hangs
    condition: all
    rules:
      - 'c:sleep 100 -> r:never'
"
    );
    let p = load("policy.yml", &text).unwrap();
    let mut host = RootHost::new("/");
    host.command_timeout = Duration::from_secs(1);
    let r = run(&p, &host);
    let c = &r.checks[0];
    assert_eq!(c.result, Outcome::NotApplicable);
    let reason = c.reason.as_deref().unwrap_or("");
    assert!(reason.contains("killed after 1 s"), "{reason}");
}

#[test]
fn command_not_found_is_not_applicable() {
    let text = format!(
        "{GOOD_HEAD}  - id: 1
    title: missing program
    condition: none
    rules:
      - 'c:hostward-no-such-program-x --version -> r:.'
"
    );
    let p = load("policy.yml", &text).unwrap();
    let host = RootHost::new("/");
    assert!(matches!(
        host.run("exit 0"),
        CommandOutput::Ran { code: Some(0), .. }
    ));
    let r = run(&p, &host);
    assert_eq!(r.checks[0].result, Outcome::NotApplicable);
    assert!(
        r.checks[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("not found")
    );
}
