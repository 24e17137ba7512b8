//! Behaviour console tests: the router in-process on a real store (SQLite always, PostgreSQL
//! when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login form, isolated
//! files and alarms seeded the way the gateway stores an agent's records.

use axum::http::StatusCode;
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence, ProcessInfo};
use hostward_proto::behaviour::{BehaviourPolicy, DETECTORS, shipped_commands};
use hostward_proto::quarantine::IsolatedFile;
use serde_json::json;

use crate::console::testutil::{Env, body, envs, form, has_url, location};
use crate::web::page::enc;
use hostward_store::AlarmFilter;

const EVIL_PATH: &str = "/tmp/<script>alert(1)</script>";

fn isolated(id: &str, action: &str, path: &str) -> Message {
    Message::IsolatedFile(IsolatedFile {
        ts: hostward_store::now() - 120,
        id: id.into(),
        action: action.into(),
        path: path.into(),
        sha256: "ab".repeat(32),
        size: 2048,
        uid: 1000,
        gid: 1001,
        mode: 0o4755,
        reason: "reverse_shell".into(),
        killed: vec![4242, 4243],
    })
}

impl Env {
    async fn seed_files(&self, server_id: &str, files: &[Message]) {
        let records: Vec<(u64, Message)> = files
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| (i as u64 + 1, m))
            .collect();
        self.state
            .store
            .store_records(server_id, &records)
            .await
            .unwrap();
    }

    /// A reverse shell with its process chain and a brute-force alarm without one; their ids.
    async fn seed_shell(&self, server_id: &str) -> (String, String) {
        let proc = |pid, ppid, exe: &str, cmdline: &str| ProcessInfo {
            pid,
            ppid,
            exe: exe.into(),
            cmdline: cmdline.into(),
            uid: 1000,
            euid: 1000,
            user: "alice".into(),
            ..Default::default()
        };
        let now = hostward_store::now();
        let shell = Message::Alarm(Alarm {
            ts: now - 60,
            alarm_type: "reverse_shell".into(),
            key: "4242".into(),
            count: 1,
            evidence: Evidence {
                processes: vec![
                    proc(4242, 4000, "/tmp/.x/sh", "sh -i"),
                    proc(4000, 100, "/usr/bin/bash", "-bash"),
                    proc(100, 1, "/usr/sbin/sshd", "sshd: alice"),
                ],
                ..Default::default()
            },
        });
        let brute = Message::Alarm(Alarm {
            ts: now - 60,
            alarm_type: "brute_force".into(),
            key: "192.0.2.7".into(),
            count: 5,
            evidence: Evidence {
                source_ip: Some("192.0.2.7".into()),
                ..Default::default()
            },
        });
        self.state
            .store
            .store_records(server_id, &[(100, shell), (101, brute)])
            .await
            .unwrap();
        let mut ids = Vec::new();
        for ty in ["reverse_shell", "brute_force"] {
            let (items, _) = self
                .state
                .store
                .alarms(&AlarmFilter {
                    server_id: Some(server_id.into()),
                    alarm_type: Some(ty.into()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            ids.push(items[0].id.clone());
        }
        (ids[0].clone(), ids[1].clone())
    }

    async fn behaviour_policy(&self, project_id: &str) -> (BehaviourPolicy, i64) {
        self.state
            .store
            .policy::<BehaviourPolicy>(project_id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn isolated_files_are_listed_restored_and_deleted_after_a_confirmation() {
    for e in envs().await {
        let b = e.backend;
        let s = &e.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        e.user("vic", &a.id, Some("viewer")).await;
        e.user("otto", &a.id, Some("operator")).await;
        let sa = e.agent_server(&a.id, "web-a").await;
        let sb = e.agent_server(&other.id, "web-b").await;
        e.seed_files(
            &sa.id,
            &[
                isolated("q1", "isolated", EVIL_PATH),
                isolated("q2", "isolated", "/tmp/miner"),
                isolated("q2", "restored", "/tmp/miner"),
            ],
        )
        .await;
        e.seed_files(&sb.id, &[isolated("q3", "isolated", "/tmp/other")])
            .await;
        e.assert_pages_need_a_session(&[
            "/alarms/isolated",
            &format!("/alarms/isolated/delete?server={}&file=q1", sa.id),
        ])
        .await;

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page("/alarms/isolated", &vc).await;
        assert!(
            html.contains("data-file-id=\"q1\"") && html.contains("data-file-id=\"q2\""),
            "[{b}]"
        );
        assert!(
            !html.contains("data-file-id=\"q3\""),
            "[{b}] another project's file"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
            "[{b}] the path, escaped"
        );
        for shown in [
            ">4755<",
            ">1000:1001<",
            "4242, 4243",
            ">abababababab<",
            "2.0 KiB",
            "reverse shell",
            "web-a",
        ] {
            assert!(html.contains(shown), "[{b}] {shown}");
        }
        assert!(
            html.contains("data-section=\"isolated\" aria-current=\"page\""),
            "[{b}] tab"
        );
        assert!(
            !html.contains("class=\"restore\""),
            "[{b}] a viewer gets no buttons"
        );
        let html = e.page("/alarms/isolated?state=restored", &vc).await;
        assert!(
            html.contains("data-file-id=\"q2\"") && !html.contains("data-file-id=\"q1\""),
            "[{b}]"
        );
        let restore_q1 = form(&[("server", &sa.id), ("file", "q1")]);
        let res = e
            .post_form(
                "/alarms/isolated/restore",
                &vc,
                &format!("{restore_q1}&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}] viewer");

        let (oc, ocsrf) = e.login("otto").await;
        let html = e.page("/alarms/isolated", &oc).await;
        assert_eq!(
            html.matches("action=\"/alarms/isolated/restore\"").count(),
            1,
            "[{b}] only the isolated file has buttons"
        );
        assert!(
            has_url(
                &html,
                &format!(
                    "/alarms/isolated/delete?server={}&file=q1&back=%2Falarms%2Fisolated",
                    sa.id
                )
            ),
            "[{b}] the delete link goes to the confirmation"
        );
        let delete_q1 = form(&[("server", &sa.id), ("file", "q1"), ("confirm", "yes")]);
        e.assert_posts_need_csrf(
            &oc,
            &[
                ("/alarms/isolated/restore".to_string(), restore_q1.clone()),
                ("/alarms/isolated/delete".to_string(), delete_q1.clone()),
            ],
        )
        .await;
        assert!(e.tasks(&sa.id).await.is_empty(), "[{b}] nothing queued");

        // Restore: a task, then back to the filtered list with a confirmation.
        let back = "/alarms/isolated?state=isolated";
        let res = e
            .post_form(
                "/alarms/isolated/restore",
                &oc,
                &format!("{restore_q1}&back={}&csrf={ocsrf}", enc(back)),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{back}&done=restore&n=1"), "[{b}]");
        let tasks = e.tasks(&sa.id).await;
        assert_eq!(
            (tasks[0].kind.as_str(), &tasks[0].params),
            ("quarantine_restore", &json!({"id": "q1"})),
            "[{b}]"
        );
        let html = e.page(&location(&res), &oc).await;
        assert!(html.contains("Restore queued for 1 file(s)"), "[{b}]");
        // A file that is no longer isolated cannot be restored.
        let res = e
            .post_form(
                "/alarms/isolated/restore",
                &oc,
                &format!("server={}&file=q2&csrf={ocsrf}", sa.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        assert!(body(res).await.contains("not isolated"), "[{b}]");

        // Delete: without the confirmation, to the confirmation page first.
        let res = e
            .post_form(
                "/alarms/isolated/delete",
                &oc,
                &format!("server={}&file=q1&csrf={ocsrf}", sa.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let confirm = location(&res);
        assert!(
            confirm.starts_with("/alarms/isolated/delete?server="),
            "[{b}] {confirm}"
        );
        assert_eq!(e.tasks(&sa.id).await.len(), 1, "[{b}] nothing more queued");
        let html = e.page(&confirm, &oc).await;
        assert!(html.contains("id=\"delete-form\""), "[{b}]");
        assert!(html.contains("name=\"confirm\" value=\"yes\""), "[{b}]");
        assert!(html.contains(&"ab".repeat(32)), "[{b}] the full hash");
        assert!(!html.contains("<script>alert"), "[{b}]");
        let res = e
            .post_form(
                "/alarms/isolated/delete",
                &oc,
                &format!("{delete_q1}&csrf={ocsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/alarms/isolated?done=delete&n=1", "[{b}]");
        let kinds: Vec<String> = e.tasks(&sa.id).await.into_iter().map(|t| t.kind).collect();
        assert!(
            kinds.contains(&"quarantine_delete".to_string()),
            "[{b}] {kinds:?}"
        );
        let html = e.page("/alarms/isolated?done=delete&n=1", &oc).await;
        assert!(html.contains("Delete queued for 1 file(s)"), "[{b}]");

        // Another project's file: 404 everywhere.
        let res = e
            .get(
                &format!("/alarms/isolated/delete?server={}&file=q3", sb.id),
                &oc,
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        let res = e
            .post_form(
                "/alarms/isolated/restore",
                &oc,
                &format!("server={}&file=q3&csrf={ocsrf}", sb.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        assert!(e.tasks(&sb.id).await.is_empty(), "[{b}]");
    }
}

#[tokio::test]
async fn the_alarm_page_isolates_and_kills_for_operators() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("otto", &p.id, Some("operator")).await;
        let srv = e.agent_server(&p.id, "web").await;
        let (shell, brute) = e.seed_shell(&srv.id).await;
        let uri = format!("/alarms/{shell}/isolate");

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page(&format!("/alarms/{shell}"), &vc).await;
        assert!(
            !html.contains("id=\"isolate-form\""),
            "[{b}] not for viewers"
        );
        let res = e.post_form(&uri, &vc, &format!("csrf={vcsrf}")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");

        let (oc, ocsrf) = e.login("otto").await;
        let html = e.page(&format!("/alarms/{shell}"), &oc).await;
        assert!(html.contains("id=\"isolate-form\""), "[{b}]");
        assert!(
            html.contains(&format!("action=\"/alarms/{shell}/isolate\"")),
            "[{b}]"
        );
        let html = e.page(&format!("/alarms/{brute}"), &oc).await;
        assert!(
            !html.contains("id=\"isolate-form\""),
            "[{b}] no process, no button"
        );
        e.assert_posts_need_csrf(&oc, &[(uri.clone(), String::new())])
            .await;
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");

        let res = e.post_form(&uri, &oc, &format!("csrf={ocsrf}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/alarms/{shell}?done=isolate&n=1"),
            "[{b}]"
        );
        let tasks = e.tasks(&srv.id).await;
        assert_eq!(
            (tasks[0].kind.as_str(), &tasks[0].params),
            (
                "isolate_kill",
                &json!({"pid": 4242, "path": "/tmp/.x/sh", "reason": "reverse_shell"})
            ),
            "[{b}]"
        );
        let html = e.page(&location(&res), &oc).await;
        assert!(html.contains("Isolate and kill queued"), "[{b}]");
        let res = e
            .post_form(
                &format!("/alarms/{brute}/isolate"),
                &oc,
                &format!("csrf={ocsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        assert_eq!(e.tasks(&srv.id).await.len(), 1, "[{b}]");
    }
}

/// The policy form as a browser sends it: every detector ticked but `off`, and the fields.
fn policy_form(project: &str, off: &[&str], fields: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = vec![("project".into(), project.into())];
    for d in DETECTORS.iter().filter(|d| !off.contains(d)) {
        pairs.push((format!("det_{d}"), "1".into()));
    }
    for (k, v) in fields {
        pairs.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form(&refs)
}

#[tokio::test]
async fn the_behaviour_policy_page_saves_refuses_keeping_the_input_and_is_read_only_for_viewers() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.assert_pages_need_a_session(&["/alarms/behaviour-policy"])
            .await;
        let (_, version) = e.behaviour_policy(&p.id).await;

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page("/alarms/behaviour-policy", &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"save-policy\""),
            "[{b}]"
        );
        assert!(
            html.contains("read_shadow | high | "),
            "[{b}] the shipped patterns"
        );
        let html = e.page("/alarms", &vc).await;
        assert!(
            html.contains("href=\"/alarms/behaviour-policy\"")
                && html.contains("href=\"/alarms/isolated\""),
            "[{b}] the alarms area's tabs"
        );

        let (ac, acsrf) = e.login("ada").await;
        let html = e.page("/alarms/behaviour-policy", &ac).await;
        assert!(html.contains("id=\"save-policy\""), "[{b}]");
        assert!(
            html.contains("name=\"det_reverse_shell\" value=\"1\" checked")
                && html.contains("name=\"det_honeypot\" value=\"1\">"),
            "[{b}] ticked: on; honeypot is off by default"
        );
        assert!(html.contains("Reverse shell"), "[{b}] detector labels");

        let fields = |commands: &'static str| {
            vec![
                ("commands", commands),
                (
                    "whitelist",
                    "high_risk_command | - | - | ^backup( |$)|rsync",
                ),
                ("auto_isolate", "1"),
                ("scan_ports", "30"),
                ("scan_window_secs", "10"),
                ("scan_block", "1"),
                ("scan_block_minutes", "90"),
                ("honeypot_ports", "23, 2323"),
                ("suid_allowed", "/usr/bin/sudo\n/usr/bin/passwd"),
                ("miner_names", "xmrig"),
                ("miner_hashes", ""),
                ("stratum_ports", "3333\n14444"),
                ("ioc_addresses", "203.0.113.0/24"),
                ("process_whitelist", "/opt/backup/bin/run"),
            ]
        };
        // A malformed pattern: the form again with the message and what was typed.
        let bad = policy_form(
            &p.id,
            &["port_scan"],
            &fields("read_shadow | critical | ^cat /etc/shadow\nfetch | high | curl ("),
        );
        e.assert_posts_need_csrf(&ac, &[("/alarms/behaviour-policy".into(), bad.clone())])
            .await;
        let res = e
            .post_form(
                "/alarms/behaviour-policy",
                &ac,
                &format!("{bad}&csrf={acsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("id=\"form-error\""), "[{b}]");
        assert!(html.contains("commands[1].pattern:"), "[{b}] {html}");
        assert!(
            html.contains("fetch | high | curl ("),
            "[{b}] the input is kept"
        );
        assert!(
            html.contains("name=\"det_port_scan\" value=\"1\">"),
            "[{b}] unticked stays so"
        );
        assert!(html.contains("xmrig</textarea>"), "[{b}]");
        // A line that is no pattern at all, refused by the form itself.
        let bad = policy_form(&p.id, &[], &fields("just-a-name"));
        let res = e
            .post_form(
                "/alarms/behaviour-policy",
                &ac,
                &format!("{bad}&csrf={acsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            body(res)
                .await
                .contains("commands[0]: write name | severity | pattern")
        );
        assert_eq!(
            e.behaviour_policy(&p.id).await.1,
            version,
            "[{b}] nothing stored"
        );

        let good = policy_form(
            &p.id,
            &["port_scan", "honeypot"],
            &fields("read_shadow | critical | ^cat /etc/shadow\nmine | low | (curl|wget) .* | ?sh"),
        );
        let res = e
            .post_form(
                "/alarms/behaviour-policy",
                &vc,
                &format!("{good}&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "[{b}] viewers do not save"
        );
        let res = e
            .post_form(
                "/alarms/behaviour-policy",
                &ac,
                &format!("{good}&csrf={acsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/alarms/behaviour-policy?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (saved, v2) = e.behaviour_policy(&p.id).await;
        assert!(v2 > version, "[{b}]");
        assert_eq!(
            saved.disabled,
            ["honeypot".to_string(), "port_scan".to_string()].into(),
            "[{b}]"
        );
        assert!(saved.auto_isolate && saved.scan_block, "[{b}]");
        assert_eq!(
            (saved.scan_ports, saved.scan_block_minutes),
            (30, 90),
            "[{b}]"
        );
        assert_eq!(saved.honeypot_ports, [23, 2323], "[{b}]");
        assert_eq!(saved.stratum_ports, [3333, 14444], "[{b}]");
        assert_eq!(
            saved.suid_allowed,
            ["/usr/bin/sudo", "/usr/bin/passwd"],
            "[{b}]"
        );
        assert_eq!(saved.process_whitelist, ["/opt/backup/bin/run"], "[{b}]");
        assert_eq!(saved.commands.len(), 2, "[{b}]");
        let shipped = shipped_commands();
        let read_shadow = shipped.iter().find(|c| c.name == "read_shadow").unwrap();
        assert_eq!(
            saved.commands[0].description, read_shadow.description,
            "[{b}] a kept pattern keeps its description"
        );
        assert_eq!(saved.commands[1].pattern, "(curl|wget) .* | ?sh", "[{b}]");
        assert_eq!(
            saved.commands[1].severity,
            hostward_proto::Severity::Low,
            "[{b}]"
        );
        assert_eq!(
            saved.whitelist[0].command.as_deref(),
            Some("^backup( |$)|rsync"),
            "[{b}]"
        );
        assert_eq!(saved.whitelist[0].process_path, None, "[{b}]");
        let html = e
            .page(
                &format!("/alarms/behaviour-policy?project={}&done=saved", p.id),
                &ac,
            )
            .await;
        assert!(html.contains("Behaviour policy saved"), "[{b}]");
        assert!(html.contains("mine | low | (curl|wget) .* | ?sh"), "[{b}]");
    }
}
