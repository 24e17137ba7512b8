//! The shipped policies of server software (Apache, Tomcat, MySQL/MariaDB, PostgreSQL,
//! MongoDB, Docker, kubelet) and of the Red Hat family on fixture trees: each weak root fails
//! exactly the expected checks, each hardened root fails none, a check is not applicable only
//! where it runs a command (commands run on the live host only), and a root without the
//! software leaves the policy not applicable. The software sits in the `weak` and `hardened`
//! roots beside the Debian files of baselines.rs (Debian's layouts); the Red Hat family has
//! roots of its own, `weak_rhel` and `hardened_rhel`, which also hold Red Hat's layouts of
//! httpd, MariaDB and PostgreSQL.

use hostward_sca::rule::RuleKind;
use hostward_sca::{Outcome, Policy, PolicyReport, RootHost, run};
use std::path::Path;

mod common;
use common::{copy_tree, fixtures, ids, range, shipped};

fn result_of(report: &PolicyReport, id: i64) -> Outcome {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .result
}

/// The policies of this file.
const POLICIES: &[&str] = &[
    "rhel.yml",
    "apache.yml",
    "tomcat.yml",
    "mysql.yml",
    "postgresql.yml",
    "mongodb.yml",
    "docker.yml",
    "kubelet.yml",
];

/// One policy on one fixture root: the checks that fail, and the checks that are not
/// applicable (each must run a command; every other check passes).
struct Case {
    root: &'static str,
    policy: &'static str,
    fail: Vec<i64>,
    not_applicable: Vec<i64>,
}

fn case(root: &'static str, policy: &'static str, fail: Vec<i64>, na: &[i64]) -> Case {
    Case {
        root,
        policy,
        fail,
        not_applicable: na.to_vec(),
    }
}

fn weak_cases() -> Vec<Case> {
    let mut rhel = range(14001, 14008);
    rhel.extend(range(14010, 14015));
    rhel.extend(range(14020, 14027));
    rhel.extend([
        14040, 14041, 14042, 14050, 14051, 14060, 14070, 14072, 14073, 14074,
    ]);
    let mut apache = range(15001, 15006);
    // 15007 passes: Debian's ssl.conf sets SSLProtocol (to a weak value: 15006).
    apache.extend([15008, 15009, 15010]);
    vec![
        case("weak", "apache.yml", apache, &[15011]),
        case("weak", "tomcat.yml", range(16001, 16007), &[16008]),
        case("weak", "mysql.yml", range(17001, 17009), &[17010]),
        case("weak", "postgresql.yml", range(18001, 18007), &[]),
        case("weak", "mongodb.yml", range(19001, 19006), &[]),
        case("weak", "docker.yml", range(20001, 20008), &[]),
        // 21001 fails on the flag alone, whatever its command would say.
        case("weak", "kubelet.yml", range(21001, 21007), &[21008]),
        case("weak_rhel", "rhel.yml", rhel, &[14030, 14031, 14071]),
        // Red Hat's httpd as shipped (no ServerTokens, no TraceEnable, listings on), plus
        // server-info in httpd.conf and TLS under the LEGACY crypto policy.
        case(
            "weak_rhel",
            "apache.yml",
            vec![15001, 15003, 15004, 15005, 15007],
            &[15011],
        ),
        // Red Hat's mariadb-server.cnf as shipped: log-error set, nothing else.
        case("weak_rhel", "mysql.yml", range(17001, 17004), &[17010]),
        // initdb's postgresql.conf on Red Hat: ssl off, md5 by default on an unversioned
        // data directory, no connection logging; pg_hba.conf with peer and ident only.
        case(
            "weak_rhel",
            "postgresql.yml",
            vec![18002, 18004, 18007],
            &[],
        ),
    ]
}

fn hardened_cases() -> Vec<Case> {
    vec![
        case("hardened", "apache.yml", vec![], &[15011]),
        case("hardened", "tomcat.yml", vec![], &[16008]),
        case("hardened", "mysql.yml", vec![], &[17010]),
        case("hardened", "postgresql.yml", vec![], &[]),
        case("hardened", "mongodb.yml", vec![], &[]),
        case("hardened", "docker.yml", vec![], &[]),
        // The configuration's anonymous.enabled is read by a command.
        case("hardened", "kubelet.yml", vec![], &[21001, 21008]),
        case("hardened_rhel", "rhel.yml", vec![], &[14030, 14031, 14071]),
        case("hardened_rhel", "apache.yml", vec![], &[15011]),
        case("hardened_rhel", "mysql.yml", vec![], &[17010]),
        case("hardened_rhel", "postgresql.yml", vec![], &[]),
    ]
}

fn runs_a_command(policy: &Policy, id: i64) -> bool {
    policy
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap()
        .rules
        .iter()
        .any(|r| matches!(r.kind, RuleKind::Command { .. }))
}

fn assert_case(c: &Case) {
    let policy = shipped(c.policy);
    let report = run(&policy, &RootHost::new(fixtures().join(c.root)));
    let at = format!("{} on {}", c.policy, c.root);
    assert!(report.applicable, "{at}: {:?}", report.reason);
    assert_eq!(report.checks.len(), policy.checks.len(), "{at}");
    assert_eq!(ids(&report, Outcome::Fail), c.fail, "{at}: failed checks");
    let mut na = c.not_applicable.clone();
    na.sort();
    assert_eq!(
        ids(&report, Outcome::NotApplicable),
        na,
        "{at}: not applicable checks"
    );
    for check in &report.checks {
        match check.result {
            Outcome::NotApplicable => {
                assert!(runs_a_command(&policy, check.id), "{at} {}", check.id);
                let reason = check.reason.as_deref().unwrap_or("");
                assert!(
                    reason.contains("commands only run on the live host"),
                    "{at} {check:?}"
                );
            }
            _ => assert!(!check.evidence.is_empty(), "{at} {check:?}"),
        }
    }
}

#[test]
fn weak_roots_fail_exactly_the_expected_checks() {
    for c in weak_cases() {
        assert_case(&c);
    }
}

#[test]
fn hardened_roots_fail_nothing() {
    for c in hardened_cases() {
        assert!(c.fail.is_empty());
        assert_case(&c);
    }
}

#[test]
fn every_policy_and_root_is_covered() {
    // Each policy is tested on a weak and a hardened root.
    for name in POLICIES {
        assert!(weak_cases().iter().any(|c| c.policy == *name), "{name}");
        assert!(hardened_cases().iter().any(|c| c.policy == *name), "{name}");
    }
}

/// Where its software is missing a policy does not apply: on an empty root, on the roots of
/// the other family, and (MySQL) where only the client libraries' option file exists.
#[test]
fn policies_do_not_apply_without_their_software() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("etc")).unwrap();
    let empty_host = RootHost::new(empty.path());
    for name in POLICIES {
        let report = run(&shipped(name), &empty_host);
        assert!(!report.applicable, "{name}");
        assert!(report.checks.is_empty(), "{name}");
        let reason = report.reason.unwrap();
        assert!(
            reason.starts_with("requirements not met: "),
            "{name}: {reason}"
        );
    }

    let not_there: &[(&str, &[&str])] = &[
        // Debian roots: no Red Hat release file.
        ("weak", &["rhel.yml"]),
        ("hardened", &["rhel.yml"]),
        ("wazuh_root", POLICIES),
        // Red Hat roots: httpd, MariaDB and PostgreSQL only, and not Debian.
        (
            "weak_rhel",
            &[
                "tomcat.yml",
                "mongodb.yml",
                "docker.yml",
                "kubelet.yml",
                "debian.yml",
                "sshd.yml",
                "nginx.yml",
                "redis.yml",
            ],
        ),
        (
            "hardened_rhel",
            &[
                "tomcat.yml",
                "mongodb.yml",
                "docker.yml",
                "kubelet.yml",
                "debian.yml",
                "sshd.yml",
                "nginx.yml",
                "redis.yml",
            ],
        ),
    ];
    for (root, names) in not_there {
        let host = RootHost::new(fixtures().join(root));
        for name in *names {
            let report = run(&shipped(name), &host);
            assert!(!report.applicable, "{name} on {root}: {:?}", report.checks);
        }
    }

    // Client libraries bring /etc/mysql/my.cnf (Debian's mysql-common) or /etc/my.cnf (Red
    // Hat's mariadb-connector-c-config); that is not a server to check.
    let mysql = shipped("mysql.yml");
    for file in ["etc/mysql/my.cnf", "etc/my.cnf"] {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            file,
            "[client-server]\n!includedir /etc/mysql/conf.d/\n",
        );
        let report = run(&mysql, &RootHost::new(t.path()));
        assert!(!report.applicable, "{file}");
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A root holding these files.
fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(t.path(), rel, text);
    }
    t
}

/// `id`'s result with each text as the whole of `file` (next to `also`, the files that make
/// the policy apply).
fn outcomes(policy: &str, id: i64, file: &str, also: &[(&str, &str)], cases: &[(&str, Outcome)]) {
    let policy = shipped(policy);
    for (text, want) in cases {
        let mut files = also.to_vec();
        files.push((file, text));
        let t = root_with(&files);
        let report = run(&policy, &RootHost::new(t.path()));
        assert!(report.applicable, "{:?}", report.reason);
        let got = report.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(got.result, *want, "{id} with {text:?}: {:?}", got.evidence);
    }
}

#[test]
fn apache_tls_protocol_lines() {
    use Outcome::*;
    outcomes(
        "apache.yml",
        15006,
        "etc/apache2/apache2.conf",
        &[],
        &[
            ("SSLProtocol all -SSLv3\n", Fail),
            ("SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\n", Pass),
            ("SSLProtocol ALL -TLSv1 -TLSv1.1\n", Fail),
            ("SSLProtocol -all +TLSv1.2 +TLSv1.3\n", Pass),
            ("  SSLProtocol TLSv1.2 +TLSv1.1\n", Fail),
            ("SSLProtocol +TLSv1.3\n", Pass),
            ("SSLProtocol TLSv1\n", Fail),
            ("#SSLProtocol all\n", Pass),
        ],
    );
    // No SSLProtocol where TLS is served: mod_ssl's default includes TLS 1.0 and 1.1, unless
    // the crypto policy of the Red Hat family limits it.
    let httpd = "SSLEngine on\n";
    outcomes(
        "apache.yml",
        15007,
        "etc/httpd/conf/httpd.conf",
        &[],
        &[(httpd, Fail), ("SSLEngine off\n", Pass)],
    );
    outcomes(
        "apache.yml",
        15007,
        "etc/crypto-policies/config",
        &[("etc/httpd/conf/httpd.conf", httpd)],
        &[
            ("DEFAULT\n", Pass),
            ("FUTURE:AD-SUPPORT\n", Pass),
            ("LEGACY\n", Fail),
        ],
    );
    outcomes(
        "apache.yml",
        15008,
        "etc/apache2/apache2.conf",
        &[],
        &[
            ("SSLCipherSuite HIGH:!aNULL:!MD5:!RC4:-3DES\n", Pass),
            (
                "SSLCipherSuite ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-SHA\n",
                Pass,
            ),
            ("SSLCipherSuite HIGH:MEDIUM:!aNULL\n", Fail),
            (
                "SSLCipherSuite ECDHE-RSA-AES128-SHA:EDH-RSA-DES-CBC3-SHA\n",
                Fail,
            ),
            ("SSLCipherSuite RC4-MD5\n", Fail),
        ],
    );
}

#[test]
fn mysql_option_spellings() {
    use Outcome::*;
    let server = [("etc/mysql/mariadb.conf.d/50-server.cnf", "[mysqld]\n")];
    outcomes(
        "mysql.yml",
        17001,
        "etc/my.cnf",
        &server,
        &[
            ("[mysqld]\nbind-address = 127.0.0.1\n", Pass),
            ("[mysqld]\nbind_address=::1\n", Pass),
            ("[mysqld]\nskip-networking\n", Pass),
            ("[mysqld]\nport = 3306\n", Fail),
            ("[mysqld]\nbind-address = 0.0.0.0\n", Fail),
            ("[mysqld]\nbind-address = *\n", Fail),
            ("[mysqld]\nbind-address = ::\n", Fail),
            ("[mysqld]\nbind-address = 10.0.0.5,0.0.0.0\n", Fail),
            (
                "[mysqld]\nbind-address = 127.0.0.1\nbind-address = 0.0.0.0\n",
                Fail,
            ),
        ],
    );
    outcomes(
        "mysql.yml",
        17002,
        "etc/my.cnf",
        &server,
        &[
            ("[mysqld]\nlocal_infile = 0\n", Pass),
            ("[mysqld]\nloose-local-infile=OFF\n", Pass),
            ("[mysqld]\nskip-local-infile\n", Pass),
            ("[mysqld]\n#local-infile = 0\n", Fail),
            ("[mysqld]\nlocal-infile\n", Fail),
            (
                "[mysqld]\nlocal_infile = 0\n[mysql]\nlocal-infile = 1\n",
                Fail,
            ),
        ],
    );
    outcomes(
        "mysql.yml",
        17004,
        "etc/my.cnf",
        &server,
        &[
            ("[mysqld]\nsecure-file-priv = /var/lib/mysql-files\n", Pass),
            ("[mysqld]\nsecure_file_priv = NULL\n", Pass),
            ("[mysqld]\nsecure_file_priv = \"\"\n", Fail),
            (
                "[mysqld]\nsecure_file_priv = /var/lib/mysql-files\nsecure_file_priv=\n",
                Fail,
            ),
            ("[mysqld]\nsecure_file_priv = /\n", Fail),
        ],
    );
    outcomes(
        "mysql.yml",
        17006,
        "etc/my.cnf",
        &server,
        &[
            ("[mysqld]\nlog-error\n", Pass),
            ("[mysqld]\nlog_error = /var/log/mysql/error.log\n", Pass),
            ("[mysqld]\nlog_error_verbosity = 3\n", Fail),
            ("[mysqld]\nlog-error =\n", Fail),
        ],
    );
}

/// password_encryption's default is md5 up to PostgreSQL 13 and scram-sha-256 from 14.
#[test]
fn postgresql_password_default_follows_the_version() {
    use Outcome::*;
    let quiet = "#password_encryption = md5\n";
    for (file, text, want) in [
        ("etc/postgresql/16/main/postgresql.conf", quiet, Pass),
        ("etc/postgresql/13/main/postgresql.conf", quiet, Fail),
        ("var/lib/pgsql/17/data/postgresql.conf", quiet, Pass),
        ("var/lib/pgsql/data/postgresql.conf", quiet, Fail),
        (
            "etc/postgresql/13/main/postgresql.conf",
            "password_encryption = 'scram-sha-256'\n",
            Pass,
        ),
        (
            "etc/postgresql/16/main/postgresql.conf",
            "password_encryption = md5\n",
            Fail,
        ),
    ] {
        let t = root_with(&[(file, text)]);
        let report = run(&shipped("postgresql.yml"), &RootHost::new(t.path()));
        assert!(report.applicable, "{file}");
        assert_eq!(result_of(&report, 18004), want, "{file}: {text:?}");
    }
    // ALTER SYSTEM's file counts as much as postgresql.conf.
    let t = root_with(&[
        ("etc/postgresql/16/main/postgresql.conf", "ssl = on\n"),
        (
            "var/lib/postgresql/16/main/postgresql.auto.conf",
            "ssl = 'off'\n",
        ),
    ]);
    let report = run(&shipped("postgresql.yml"), &RootHost::new(t.path()));
    assert_eq!(result_of(&report, 18002), Fail);
}

#[test]
fn docker_settings_on_one_line_and_on_the_command_line() {
    let t = root_with(&[
        (
            "etc/docker/daemon.json",
            r#"{"icc": false, "userns-remap": "default", "live-restore": true, "no-new-privileges": true, "log-driver": "journald"}"#,
        ),
        (
            "etc/systemd/system/docker.service.d/tcp.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2375\n",
        ),
    ]);
    let report = run(&shipped("docker.yml"), &RootHost::new(t.path()));
    assert!(report.applicable);
    assert_eq!(ids(&report, Outcome::Fail), [20005]);
    std::fs::write(
        t.path().join("etc/systemd/system/docker.service.d/tcp.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/etc/docker/ca.pem\n",
    )
    .unwrap();
    let report = run(&shipped("docker.yml"), &RootHost::new(t.path()));
    assert_eq!(ids(&report, Outcome::Fail), Vec::<i64>::new());
}

/// Without a configuration file the kubelet's flags have unsafe defaults (AlwaysAllow,
/// read-only port 10255), so the checks relying on the file's defaults fail.
#[test]
fn kubelet_without_a_configuration_file() {
    let t = root_with(&[(
        "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --kubeconfig=/etc/kubernetes/kubelet.conf\n",
    )]);
    let report = run(&shipped("kubelet.yml"), &RootHost::new(t.path()));
    assert!(report.applicable);
    for id in [21001, 21002, 21004] {
        assert_eq!(result_of(&report, id), Outcome::Fail, "{id}");
    }
    // The same with the safe values given as flags.
    std::fs::write(
        t.path().join("etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --anonymous-auth=false --authorization-mode=Webhook --read-only-port=0\n",
    )
    .unwrap();
    let report = run(&shipped("kubelet.yml"), &RootHost::new(t.path()));
    assert_eq!(result_of(&report, 21002), Outcome::Pass);
    assert_eq!(result_of(&report, 21004), Outcome::Pass);
}

/// Fixing one MySQL setting in a copy of the weak root flips its check alone.
#[test]
fn fixing_the_mysql_bind_address_flips_its_check() {
    let t = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("weak"), t.path());
    let host = RootHost::new(t.path());
    let mysql = shipped("mysql.yml");
    let server = t.path().join("etc/mysql/mariadb.conf.d/50-server.cnf");
    let text = std::fs::read_to_string(&server).unwrap();
    std::fs::write(
        &server,
        text.replace("= 0.0.0.0", "= 127.0.0.1")
            .replace("skip-grant-tables\n", ""),
    )
    .unwrap();
    let report = run(&mysql, &host);
    let mut want = range(17002, 17009);
    want.retain(|id| *id != 17005);
    assert_eq!(ids(&report, Outcome::Fail), want);
    let bind = report.checks.iter().find(|c| c.id == 17001).unwrap();
    assert_eq!(
        bind.evidence[0],
        "rule 1: /etc/mysql/mariadb.conf.d/50-server.cnf:10: bind-address            = 127.0.0.1"
    );
}

/// The policies on this machine itself: whatever it runs, every check has a verdict with
/// evidence, or is not applicable with a reason (commands really run here, with a short limit).
#[test]
fn policies_run_on_the_live_host() {
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
