//! Detector tests on event sequences recorded from the real sensor on this project's reference
//! kernel (`cargo run -p hostward-sensor --example sensor_dump`, filtered to the attack's
//! session): each attack raises its alarm with the right process, and a normal workload none.

use hostward_proto::behaviour::BehaviourPolicy;
use hostward_sensor::Event;

use super::{Compiled, Detectors, Finding};
use crate::behaviour::table::Table;

fn fixture(name: &str) -> (String, String) {
    let path = format!(
        "{}/src/behaviour/detect/fixtures/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn replay(name: &str, policy: BehaviourPolicy) -> (Vec<Finding>, Table) {
    let (path, text) = fixture(name);
    replay_text(&path, &text, policy)
}

fn replay_text(path: &str, text: &str, policy: BehaviourPolicy) -> (Vec<Finding>, Table) {
    let mut t = Table::default();
    let mut d = Detectors::new(Compiled::new(policy).unwrap(), 1);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let ev: Event =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
        t.apply(&ev);
        out.extend(d.on_event(&ev, &t));
    }
    // What is still held comes out at the runner's next tick.
    out.extend(d.release_relayed(u64::MAX));
    (out, t)
}

fn types(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|f| f.alarm_type).collect()
}

#[test]
fn bash_dev_tcp_is_one_reverse_shell_with_its_peer() {
    let (f, t) = replay("bash_tcp", BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert_eq!(f[0].peer, Some("127.0.0.1:9001".parse().unwrap()));
    let p = t.get(f[0].pid).unwrap();
    assert_eq!(p.argv, ["bash", "-i"]);
    assert!(f[0].isolate);
    // The chain goes up to the session leader: bash -i, bash -c, the session's bash.
    let chain = t.chain(f[0].pid, &|_| String::new());
    assert!(chain.len() >= 2, "{chain:?}");
    assert_eq!(chain[1].pid, p.ppid);
}

#[test]
fn python_pty_is_caught_through_the_parents_socket() {
    let (f, t) = replay("python_pty", BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert_eq!(t.get(f[0].pid).unwrap().exe, "/bin/bash");
    assert!(
        f[0].details
            .iter()
            .any(|d| d.contains("parent's stdin is a tcp socket to 127.0.0.1:9002")),
        "{:?}",
        f[0].details
    );
}

#[test]
fn socat_and_ncat_e_are_caught_as_relayed_shells() {
    let (f, t) = replay("socat", BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert_eq!(
        f[0].peer,
        Some("127.0.0.1:9003".parse().unwrap()),
        "the relay's connection"
    );
    assert_eq!(
        t.get(t.get(f[0].pid).unwrap().ppid).unwrap().name(),
        "socat"
    );
    let (f, _) = replay("ncat_e", BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert!(f[0].details[1].contains("ncat"), "{:?}", f[0].details);
}

/// `socat exec:… tcp:…` forks the shell before it connects: the shell's exec can be read
/// before the relay's connection (the recording, reordered as the CI's kernel delivered it
/// once). The alarm waits for the connection and names its peer; without one it is raised
/// anyway, saying the peer is unknown.
#[test]
fn a_relay_connecting_after_its_shell_started_still_names_the_peer() {
    let (path, text) = fixture("socat");
    let mut lines: Vec<&str> = text.lines().collect();
    let connect = lines
        .iter()
        .position(|l| l.contains(r#""ev":"connect""#))
        .unwrap();
    let line = lines.remove(connect);
    assert!(
        lines[connect].contains(r#""comm":"bash""#) && lines[connect].contains(r#""ev":"exec""#)
    );
    lines.insert(connect + 1, line);
    let (f, _) = replay_text(&path, &lines.join("\n"), BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert_eq!(f[0].peer, Some("127.0.0.1:9003".parse().unwrap()));
    assert!(f[0].key.ends_with(" -> 127.0.0.1:9003"), "{}", f[0].key);
    assert!(f[0].dialler.is_some());

    lines.remove(connect + 1);
    let (f, _) = replay_text(&path, &lines.join("\n"), BehaviourPolicy::default());
    assert_eq!(types(&f), ["reverse_shell"], "{f:#?}");
    assert_eq!(f[0].peer, None);
    assert!(
        f[0].details.iter().any(|d| d.contains("no peer known")),
        "{:?}",
        f[0].details
    );
}

#[test]
fn a_suid_shell_escalation_is_one_alarm_not_two() {
    let (f, _) = replay("suid_bash", BehaviourPolicy::default());
    assert_eq!(types(&f), ["process_privilege_escalation"], "{f:#?}");
    assert_eq!(f[0].file.as_deref(), Some("/tmp/rec/rootbash"));
    assert!(
        f[0].details[0].contains("euid 65534 -> 0"),
        "{:?}",
        f[0].details
    );
    // su itself is on the allowed list; taking rootbash onto it silences the alarm.
    let mut p = BehaviourPolicy::default();
    p.suid_allowed.push("/tmp/rec/rootbash".into());
    assert!(replay("suid_bash", p).0.is_empty());
}

#[test]
fn memfd_execution_is_fileless_and_names_who_made_the_memfd() {
    let (f, _) = replay("memfd", BehaviourPolicy::default());
    assert_eq!(types(&f), ["fileless_execution"], "{f:#?}");
    assert_eq!(f[0].key, "memfd:payload");
    assert!(
        f[0].details
            .iter()
            .any(|d| d.starts_with("memfd_create(\"payload\") was called by pid")),
        "{:?}",
        f[0].details
    );
}

#[test]
fn a_capability_setuid_to_root_is_escalation_when_it_happens() {
    // nobody runs a python copy holding cap_setuid+ep: os.setuid(0), then `id`. The setuid
    // itself is the alarm; su's own switch to nobody (root -> user) and the child shell that
    // inherits root are not.
    let (f, t) = replay("cap_setuid", BehaviourPolicy::default());
    assert_eq!(types(&f), ["process_privilege_escalation"], "{f:#?}");
    assert_eq!(f[0].file.as_deref(), Some("/tmp/rec/capy"));
    assert!(f[0].details[0].starts_with("uid 65534, euid 65534 -> uid 0, euid 0"));
    assert_eq!(t.get(f[0].pid).unwrap().euid, 0);
    let mut p = BehaviourPolicy::default();
    p.suid_allowed.push("/tmp/rec/capy".into());
    assert!(replay("cap_setuid", p).0.is_empty());
}

#[test]
fn ptrace_on_a_process_not_started_by_the_tracer_is_injection() {
    // python attaches to its own child (allowed: debugging), then a second python attaches to
    // a sleep its shell started (a sibling): one alarm, for the second.
    let (f, t) = replay("ptrace", BehaviourPolicy::default());
    assert_eq!(types(&f), ["process_injection"], "{f:#?}");
    assert_eq!(t.get(f[0].pid).unwrap().argv[1], "/tmp/rec/ptrace.py");
    assert!(
        f[0].details[0].contains("/usr/bin/sleep"),
        "{:?}",
        f[0].details
    );
    let mut p = BehaviourPolicy::default();
    p.ptrace_allowed.push("/usr/bin/python3".into());
    assert!(replay("ptrace", p).0.is_empty());
}

#[test]
fn a_module_load_is_an_alarm_even_when_the_kernel_refuses_it() {
    let (f, _) = replay("module", BehaviourPolicy::default());
    assert_eq!(types(&f), ["kernel_module_load"], "{f:#?}");
    assert_eq!(f[0].key, "evil");
    assert!(
        f[0].details[0].contains("no module support (ENOSYS)"),
        "{:?}",
        f[0].details
    );
    let mut p = BehaviourPolicy::default();
    p.module_allowed.push("evil".into());
    assert!(replay("module", p).0.is_empty());
    assert_eq!(
        super::modules::module_name("/lib/modules/6.1/nf_tables.ko.xz"),
        "nf_tables"
    );
}

#[test]
fn download_piped_to_a_shell_is_caught_from_the_pipe_and_the_command_line() {
    let (f, _) = replay("curl_sh", BehaviourPolicy::default());
    let rules: Vec<_> = f
        .iter()
        .map(|f| (f.alarm_type, f.rule.clone().unwrap_or_default()))
        .collect();
    // The test's own `bash -c '... | sh'` line, and the two execs joined by one pipe.
    assert_eq!(
        rules,
        [
            ("high_risk_command", "download_to_shell".to_string()),
            ("high_risk_command", "download_to_shell".to_string())
        ],
        "{f:#?}"
    );
    assert!(
        f[1].details[0].contains("curl -s http://127.0.0.1:8765/x.sh"),
        "{:?}",
        f[1].details
    );
}

#[test]
fn a_stratum_connection_is_a_miner() {
    let (f, _) = replay("miner", BehaviourPolicy::default());
    assert_eq!(types(&f), ["crypto_miner"], "{f:#?}");
    assert_eq!(f[0].peer, Some("127.0.0.1:3333".parse().unwrap()));
    let mut p = BehaviourPolicy::default();
    p.disabled.insert("crypto_miner".into());
    assert!(
        replay("miner", p).0.is_empty(),
        "a detector switched off raises nothing"
    );
}

#[test]
fn indicator_addresses_alarm_on_connect() {
    let mut p = BehaviourPolicy::default();
    p.ioc_addresses.push("127.0.0.0/8".into());
    let (f, _) = replay("curl_sh", p);
    assert!(
        f.iter().any(|f| f.alarm_type == "abnormal_outbound"
            && f.peer == Some("127.0.0.1:8765".parse().unwrap())),
        "{f:#?}"
    );
}

#[test]
fn a_normal_workload_raises_nothing() {
    // gcc, tar, python, git, curl to a file, su to a user, dpkg -l, echo | sh, make.
    let (f, t) = replay("workload", BehaviourPolicy::default());
    assert!(f.is_empty(), "{f:#?}");
    assert!(t.len() > 10);
}

#[test]
fn whitelists_match_on_path_and_command() {
    let (f, t) = replay("bash_tcp", BehaviourPolicy::default());
    let p = t.get(f[0].pid);
    let mut pol = BehaviourPolicy::default();
    pol.whitelist
        .push(hostward_proto::behaviour::WhitelistRule {
            alarm_type: Some("reverse_shell".into()),
            command: Some("^bash -i$".into()),
            ..Default::default()
        });
    let c = Compiled::new(pol).unwrap();
    assert!(c.whitelisted("reverse_shell", p, None));
    assert!(
        !c.whitelisted("high_risk_command", p, None),
        "the rule names one type"
    );
    let mut pol = BehaviourPolicy::default();
    pol.process_whitelist.push("/usr/bin/bash".into());
    assert!(
        Compiled::new(pol)
            .unwrap()
            .whitelisted("reverse_shell", p, None)
    );
}

mod files_accounts_scans {
    use std::collections::HashMap;

    use super::super::accounts::{Known, check};
    use super::super::files::{FileEvent, FileFacts, FileOp, ShellFile, on_file, shell_changes};
    use super::super::scan::{Probe, Scans};
    use super::*;

    fn cfg() -> Compiled {
        Compiled::new(BehaviourPolicy::default()).unwrap()
    }

    fn write(path: &str, pid: u32, op: FileOp, facts: Option<FileFacts>) -> FileEvent {
        FileEvent {
            ts_ns: 1,
            pid,
            path: path.into(),
            op,
            facts,
        }
    }

    fn exec(pid: u32, ppid: u32, exe: &str) -> Event {
        Event::Exec(Box::new(hostward_sensor::Exec {
            task: hostward_sensor::Task {
                pid,
                ppid,
                ..Default::default()
            },
            filename: exe.into(),
            argv: vec![exe.rsplit('/').next().unwrap().into()],
            ..Default::default()
        }))
    }

    #[test]
    fn persistence_writes_alarm_unless_a_package_manager_wrote_them() {
        let c = cfg();
        let mut t = Table::default();
        t.apply(&exec(10, 1, "/usr/bin/bash"));
        t.apply(&exec(20, 1, "/usr/bin/dpkg"));
        t.apply(&exec(21, 20, "/usr/bin/cp"));
        let facts = Some(FileFacts {
            mode: 0o100644,
            ..Default::default()
        });
        let none = HashMap::new();
        let mut out = Vec::new();
        for (path, pid) in [
            ("/etc/ld.so.preload", 10),
            ("/etc/cron.d/evil", 10),
            ("/root/.ssh/authorized_keys", 10),
            ("/etc/systemd/system/x.service", 10),
            ("/etc/profile.d/x.sh", 10),
            ("/etc/systemd/system/pkg.service", 21),
            ("/etc/hostname", 10),
        ] {
            on_file(
                &c,
                &write(path, pid, FileOp::Write, facts.clone()),
                &t,
                &none,
                &mut out,
            );
        }
        // A temporary file renamed away before it was read is left to its rename.
        on_file(
            &c,
            &write("/var/spool/cron/crontabs/tmp.X", 10, FileOp::Write, None),
            &t,
            &none,
            &mut out,
        );
        // The installer's write of ld.so.preload still alarms.
        on_file(
            &c,
            &write("/etc/ld.so.preload", 21, FileOp::Write, facts.clone()),
            &t,
            &none,
            &mut out,
        );
        assert_eq!(
            types(&out),
            [
                "persistence_preload",
                "persistence_cron",
                "persistence_ssh_key",
                "persistence_service",
                "persistence_shell_profile",
                "persistence_preload"
            ]
        );
        assert_eq!(out[0].pid, 10);
    }

    #[test]
    fn setuid_bits_and_shell_copies_in_program_dirs() {
        let c = cfg();
        let t = Table::default();
        let mut base = HashMap::new();
        base.insert("/usr/bin/sudo".to_string(), 0o4000);
        let suid = Some(FileFacts {
            mode: 0o104755,
            ..Default::default()
        });
        let mut out = Vec::new();
        on_file(
            &c,
            &write("/tmp/x", 5, FileOp::Attrib, suid.clone()),
            &t,
            &base,
            &mut out,
        );
        on_file(
            &c,
            &write("/usr/bin/sudo", 5, FileOp::Attrib, suid.clone()),
            &t,
            &base,
            &mut out,
        );
        on_file(
            &c,
            &write("/home/a/x", 5, FileOp::Attrib, suid),
            &t,
            &base,
            &mut out,
        );
        let copy = Some(FileFacts {
            mode: 0o100755,
            shell_copy_of: Some("/usr/bin/bash".into()),
            ..Default::default()
        });
        on_file(
            &c,
            &write("/tmp/.sh", 5, FileOp::Write, copy),
            &t,
            &base,
            &mut out,
        );
        assert_eq!(
            types(&out),
            ["file_privilege_escalation", "abnormal_shell"],
            "{out:#?}"
        );
        assert!(out[0].details[0].contains("set-user-ID"));
    }

    #[test]
    fn shell_binaries_changed_in_place_alarm_but_not_during_installs() {
        let c = cfg();
        let b = ShellFile {
            path: "/usr/bin/bash".into(),
            dev: 1,
            ino: 2,
            mode: 0o100755,
            nlink: 1,
            size: 9,
        };
        let chmod = ShellFile {
            mode: 0o104755,
            ..b.clone()
        };
        let linked = ShellFile {
            nlink: 2,
            ..b.clone()
        };
        assert!(shell_changes(&c, std::slice::from_ref(&b), &[Some(b.clone())], false).is_empty());
        assert_eq!(
            shell_changes(&c, std::slice::from_ref(&b), &[Some(chmod.clone())], false)[0].details
                [0],
            "/usr/bin/bash mode changed from 755 to 4755"
        );
        assert!(
            shell_changes(&c, std::slice::from_ref(&b), &[Some(linked)], false)[0].details[0]
                .contains("hard link")
        );
        assert!(
            shell_changes(&c, std::slice::from_ref(&b), &[None], false)[0].details[0]
                .contains("moved or deleted")
        );
        assert!(shell_changes(&c, &[b], &[Some(chmod)], true).is_empty());
    }

    #[test]
    fn invalid_accounts_are_raised_once_each() {
        let c = cfg();
        let passwd = "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n.hidden:x:1001:1001::/tmp:/bin/sh\nbroken line\n";
        let group = "root:x:0:alice\nsudo:x:27:bob\n";
        let found = check(passwd, group);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["uid0 toor", "hidden .hidden", "rootgroup alice"]);
        let mut k = Known::default();
        assert_eq!(k.update(&c, found.clone(), 7).len(), 3);
        assert!(k.update(&c, found, 7).is_empty(), "raised once");
        assert!(k.update(&c, Vec::new(), 0).is_empty());
        assert_eq!(
            k.update(&c, check(passwd, ""), 9).len(),
            2,
            "back again: raised again"
        );
    }

    #[test]
    fn many_ports_from_one_source_is_a_scan_and_decoys_alarm_at_once() {
        let c = cfg();
        let mut s = Scans::default();
        let mut out = Vec::new();
        let src = "10.79.0.2".parse().unwrap();
        for port in 1..=19u16 {
            s.on_probe(
                &c,
                Probe {
                    ts_ms: 1000 + u64::from(port),
                    source: src,
                    port,
                    honeypot: false,
                },
                &mut out,
            );
        }
        assert!(out.is_empty(), "19 ports is below the default 20");
        for port in 20..=100u16 {
            s.on_probe(
                &c,
                Probe {
                    ts_ms: 2000 + u64::from(port),
                    source: src,
                    port,
                    honeypot: false,
                },
                &mut out,
            );
        }
        assert_eq!(types(&out), ["port_scan"], "one alarm per scan");
        assert!(out[0].block);
        // The same ports slowly (one per 11 s) are no scan.
        let slow = "10.79.0.3".parse().unwrap();
        let mut quiet = Vec::new();
        for port in 1..=40u16 {
            s.on_probe(
                &c,
                Probe {
                    ts_ms: u64::from(port) * 11_000,
                    source: slow,
                    port,
                    honeypot: false,
                },
                &mut quiet,
            );
        }
        assert!(quiet.is_empty());
        let mut pol = BehaviourPolicy::default();
        pol.disabled.clear();
        let c = Compiled::new(pol).unwrap();
        let mut hp = Vec::new();
        s.on_probe(
            &c,
            Probe {
                ts_ms: 1,
                source: "10.79.0.4".parse().unwrap(),
                port: 23,
                honeypot: true,
            },
            &mut hp,
        );
        s.on_probe(
            &c,
            Probe {
                ts_ms: 2,
                source: "10.79.0.4".parse().unwrap(),
                port: 445,
                honeypot: true,
            },
            &mut hp,
        );
        assert_eq!(types(&hp), ["honeypot"]);
        // Loopback is never a scanner.
        let mut lo = Vec::new();
        for port in 1..=100u16 {
            s.on_probe(
                &c,
                Probe {
                    ts_ms: 5,
                    source: "127.0.0.1".parse().unwrap(),
                    port,
                    honeypot: false,
                },
                &mut lo,
            );
        }
        assert!(lo.is_empty());
    }
}
