//! Ransomware prevention console tests: the router in-process on a real store (SQLite always,
//! PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login
//! form, heartbeats stored the way the gateway flushes them and task results the way it stores
//! an agent's records.

use axum::http::StatusCode;
use hostward_proto::ransom::{
    Action, BackupDir, BackupPolicy, RansomPolicy, RestoreRequest, RestoreResult,
};
use hostward_proto::{Message, TaskState, TaskUpdate};
use serde_json::json;

use super::api_tests::report;
use crate::console::testutil::{Env, body, envs, form, has_escaped, has_url, location};

impl Env {
    async fn ransom_policy(&self, project_id: &str) -> (RansomPolicy, i64) {
        self.state
            .store
            .policy::<RansomPolicy>(project_id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_server_tab_says_the_reported_state_and_operators_back_up_and_restore() {
    for e in envs().await {
        let b = e.backend;
        let s = e.state.store.clone();
        let p = s.ensure_project("default").await.unwrap();
        let other = s.ensure_project("other").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("otto", &p.id, Some("operator")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let srv = e.server(&p.id, "files-1").await;
        let uri = format!("/servers/{}/ransom", srv.id);
        let (backup, restore) = (format!("{uri}/backup"), format!("{uri}/restore"));
        e.assert_pages_need_a_session(&[&uri]).await;

        // Nothing reported: said so, never as protecting; no forms for a viewer.
        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("data-state=\"not_reported\"")
                && html.contains("Not reported by this agent")
                && html.contains("id=\"not-reported\"")
                && html.contains("id=\"backup-not-reported\""),
            "[{b}] {html}"
        );
        assert!(!html.contains(">Protecting<"), "[{b}]");
        assert!(html.contains("id=\"agent-away\""), "[{b}] not online");
        assert!(
            has_url(&html, &format!("/alarms?type=ransomware&server={}", srv.id)),
            "[{b}] the server's ransomware alarms"
        );
        assert!(
            html.contains("id=\"read-only\"")
                && !html.contains("id=\"backup-form\"")
                && !html.contains("id=\"restore-form\""),
            "[{b}] a viewer gets no forms"
        );
        assert!(
            html.contains("data-tab=\"ransom\"") && html.contains("id=\"backup-tasks-empty\""),
            "[{b}]"
        );
        e.heartbeat(&srv.id, "ransom", None).await;
        assert!(
            e.page(&uri, &vc)
                .await
                .contains("data-state=\"not_reported\""),
            "[{b}] a heartbeat without the report"
        );

        // Protecting, with its figures, problems escaped, the backup and its snapshots.
        let mut r = report();
        r["problems"] = json!(["/srv/<script>x</script>: no such directory"]);
        e.heartbeat(&srv.id, "ransom", Some(r)).await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("data-state=\"protecting\"") && html.contains(">Protecting<"),
            "[{b}] {html}"
        );
        for (k, n) in [
            ("baits", 12),
            ("watched_dirs", 40),
            ("detections", 1),
            ("killed", 1),
            ("snapshots", 2),
        ] {
            assert!(
                html.contains(&format!("data-count=\"{k}\">{n}")),
                "[{b}] {k}"
            );
        }
        assert!(
            html.contains("Kill the process tree and isolate its program"),
            "[{b}] the action"
        );
        assert!(html.contains("2023-11-14 22:13:20"), "[{b}] baits deployed");
        assert!(
            has_escaped(&html, "<script>x</script>: no such directory")
                && !html.contains("<script>x"),
            "[{b}] problems, escaped"
        );
        assert!(
            html.contains("data-state=\"ok\">The last snapshot worked<")
                && html.contains("5.0 MiB"),
            "[{b}] the backup's state and size"
        );
        assert!(
            html.contains("data-snapshot=\"1700000000-ab12\"")
                && html.contains("data-snapshot=\"1699900000-cd34\"")
                && html.contains("data-errors=\"2\"")
                && html.contains("data-truncated=\"true\""),
            "[{b}] the snapshots"
        );
        // Failing, in words.
        e.heartbeat(
            &srv.id,
            "ransom",
            Some(
                json!({"state": "failing", "reason": "fanotify: permission denied",
                "baits": 0, "watched_dirs": 0, "detections": 0, "killed": 0,
                "backup": {"state": "failing", "reason": "/srv/data: no such directory",
                    "snapshots": [], "stored_bytes": 0}}),
            ),
        )
        .await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("Failing: fanotify: permission denied")
                && html.contains("Failing: /srv/data: no such directory")
                && html.contains("id=\"snapshots-empty\"")
                && !html.contains(">Protecting<"),
            "[{b}]"
        );

        // A viewer cannot post; another project's admin does not find the server.
        let res = e.post_form(&backup, &vc, &format!("csrf={vcsrf}")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let res = e
            .post_form(
                &restore,
                &vc,
                &format!("at=2023-11-14+22%3A00&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let (oc, ocsrf) = e.login("oscar").await;
        assert_eq!(
            e.get(&uri, &oc).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        for (to, f) in [
            (&backup, format!("csrf={ocsrf}")),
            (&restore, format!("at=bad&csrf={ocsrf}")),
        ] {
            let res = e.post_form(to, &oc, &f).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] {to}");
        }
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");

        // The operator: both forms, the reported snapshots to choose from.
        e.heartbeat(&srv.id, "ransom", Some(report())).await;
        let (c, csrf) = e.login("otto").await;
        let html = e.page(&uri, &c).await;
        assert!(
            html.contains("id=\"backup-form\"") && html.contains("id=\"restore-form\""),
            "[{b}]"
        );
        assert!(
            html.contains("<option value=\"1699900000-cd34\">"),
            "[{b}] {html}"
        );
        e.assert_posts_need_csrf(
            &c,
            &[
                (backup.clone(), String::new()),
                (restore.clone(), "at=2023-11-14+22%3A00".into()),
            ],
        )
        .await;
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");

        // Refused restores: the page again with the message, what was typed kept.
        for (pairs, want) in [
            (
                vec![("at", "last tuesday"), ("paths", "/srv/data/<b>x</b>")],
                "at: \"last tuesday\" is not a time (YYYY-MM-DD HH:MM, UTC)",
            ),
            (
                vec![
                    ("snapshot", "1600000000-0000"),
                    ("paths", "/srv/data/<b>x</b>"),
                ],
                "snapshot: \"1600000000-0000\" is not a snapshot of this server",
            ),
            (
                vec![
                    ("snapshot", "1700000000-ab12"),
                    ("at", "2023-11-14 22:00"),
                    ("paths", "/srv/data/<b>x</b>"),
                ],
                "snapshot, at: name a snapshot or a point in time, not both",
            ),
            (
                vec![
                    ("snapshot", "1700000000-ab12"),
                    ("paths", "/srv/data/<b>x</b>; rel"),
                ],
                "paths[1]: \"rel\" is not an absolute path",
            ),
            (
                vec![("paths", "/srv/data/<b>x</b>")],
                "snapshot, at: name a snapshot",
            ),
        ] {
            let res = e
                .post_form(&restore, &c, &format!("{}&csrf={csrf}", form(&pairs)))
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}] {want}");
            let html = body(res).await;
            assert!(
                html.contains("id=\"form-error\"") && has_escaped(&html, want),
                "[{b}] {want}: {html}"
            );
            assert!(
                has_escaped(&html, "/srv/data/<b>x</b>") && !html.contains("<b>x"),
                "[{b}] the paths are kept, escaped"
            );
        }
        let res = e
            .post_form(
                &restore,
                &c,
                &format!(
                    "{}&csrf={csrf}",
                    form(&[("at", "2023-11-14 22:00"), ("remove_new", "1")])
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}] a point in time");
        assert_eq!(
            e.tasks(&srv.id).await.len(),
            1,
            "[{b}] only that one queued"
        );

        // Back up now, then a restore of a listed snapshot.
        let res = e.post_form(&backup, &c, &format!("csrf={csrf}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=backup"), "[{b}]");
        let res = e
            .post_form(
                &restore,
                &c,
                &format!(
                    "{}&csrf={csrf}",
                    form(&[
                        ("snapshot", "1699900000-cd34"),
                        ("at", ""),
                        ("paths", "/srv/data/docs\n/srv/data/a.txt; /srv/data/b.txt"),
                        ("remove_new", "1"),
                    ])
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=restore"), "[{b}]");
        let tasks = e.tasks(&srv.id).await;
        let at_task = tasks.iter().find(|t| t.params["at"].is_i64()).unwrap();
        assert_eq!(at_task.params["at"], 1_699_999_200, "[{b}] read as UTC");
        assert!(
            tasks
                .iter()
                .any(|t| t.kind == "backup_now" && t.params == json!({})),
            "[{b}]"
        );
        let restore_task = tasks
            .iter()
            .find(|t| t.params["snapshot"] == "1699900000-cd34")
            .unwrap();
        let asked: RestoreRequest = serde_json::from_value(restore_task.params.clone()).unwrap();
        assert_eq!(
            asked,
            RestoreRequest {
                snapshot: Some("1699900000-cd34".into()),
                at: None,
                paths: vec![
                    "/srv/data/docs".into(),
                    "/srv/data/a.txt".into(),
                    "/srv/data/b.txt".into()
                ],
                remove_new: true,
            },
            "[{b}]"
        );
        let html = e.page(&format!("{uri}?done=restore"), &c).await;
        assert!(
            html.contains("id=\"flash\"")
                && html.contains(&format!("data-task-id=\"{}\"", restore_task.id))
                && html.contains("data-kind=\"backup_now\""),
            "[{b}]"
        );

        // The agent's answer: the counts and what failed, in words.
        let done = RestoreResult {
            snapshot: "1699900000-cd34".into(),
            taken_at: 1_699_900_000,
            restored: 7,
            unchanged: 100,
            removed: 3,
            failed: vec!["/srv/data/<i>locked</i>: permission denied".into()],
        };
        s.store_records(
            &srv.id,
            &[(
                1,
                Message::TaskUpdate(TaskUpdate {
                    task_id: restore_task.id.clone(),
                    state: TaskState::Done,
                    output: serde_json::to_value(&done).unwrap(),
                }),
            )],
        )
        .await
        .unwrap();
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("7 restored, 100 unchanged, 3 removed, 1 failed"),
            "[{b}] {html}"
        );
        assert!(
            has_escaped(&html, "/srv/data/<i>locked</i>: permission denied")
                && !html.contains("<i>locked"),
            "[{b}] what failed, escaped"
        );
    }
}

#[tokio::test]
async fn the_ransom_policy_page_saves_refuses_keeping_the_input_and_is_read_only_for_viewers() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let page = "/alarms/ransom-policy";
        e.assert_pages_need_a_session(&[page]).await;
        let (_, version) = e.ransom_policy(&p.id).await;

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page(page, &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"save-policy\""),
            "[{b}]"
        );
        assert!(
            html.contains("name=\"enabled\" value=\"1\" disabled"),
            "[{b}] off by default, and not editable"
        );
        assert!(
            has_url(&html, &format!("/alarms?type=ransomware&project={}", p.id)),
            "[{b}] the project's ransomware alarms"
        );
        let html = e.page("/alarms", &vc).await;
        assert!(
            html.contains("href=\"/alarms/ransom-policy\""),
            "[{b}] a tab of the alarms area"
        );

        let (ac, acsrf) = e.login("ada").await;
        let html = e.page(page, &ac).await;
        assert!(html.contains("id=\"save-policy\""), "[{b}]");
        assert!(
            html.contains("name=\"bdir_path_2\"") && !html.contains("name=\"bdir_path_3\""),
            "[{b}] three empty backup rows"
        );
        assert!(
            html.contains("<option value=\"kill_isolate\" selected>"),
            "[{b}] the default action"
        );

        let base = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("project", p.id.as_str()),
                ("enabled", "1"),
                ("directories", "/srv/data\n/home"),
                ("random_bait", "1"),
                ("action", "kill"),
                ("burst_files", "20"),
                ("window_secs", "30"),
                ("trusted", "/usr/bin/restic"),
                ("backup_enabled", "1"),
                ("bdir_path_0", "/srv/data"),
                ("bdir_exclude_0", "cache; tmp/x"),
                ("bdir_types_0", "*.log"),
                ("interval_hours", "6"),
                ("keep_count", "10"),
                ("keep_days", "14"),
            ];
            pairs.extend_from_slice(extra);
            form(&pairs)
        };
        // Refused: the form again with the message and what was typed.
        let bad = base(&[("bdir_path_1", "/srv")]);
        e.assert_posts_need_csrf(&ac, &[(page.into(), bad.clone())])
            .await;
        for (extra, want) in [
            (
                vec![("bdir_path_1", "/srv")],
                "backup.directories[1]: \"/srv\" overlaps backup.directories[0]",
            ),
            (
                vec![("directories", "/srv/data\n/srv/data/x")],
                "directories[1]: \"/srv/data/x\" overlaps directories[0]",
            ),
            (
                vec![("burst_files", "ten")],
                "burst_files: \"ten\" is not a whole number",
            ),
            (vec![("window_secs", "1")], "window_secs: 1 is not 5 to 600"),
            (
                vec![("keep_count", "0")],
                "backup.keep_count: 0 is not 1 to 100",
            ),
            (
                vec![
                    ("bdir_path_0", ""),
                    ("bdir_exclude_0", ""),
                    ("bdir_types_0", ""),
                ],
                "backup.directories: name at least one directory to back up",
            ),
            (vec![("action", "nuke")], "action: \"nuke\" is not one of"),
        ] {
            let res = e
                .post_form(page, &ac, &format!("{}&csrf={acsrf}", base(&extra)))
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}] {want}");
            let html = body(res).await;
            assert!(
                html.contains("id=\"form-error\"") && has_escaped(&html, want),
                "[{b}] {want}: {html}"
            );
            assert!(
                html.contains(">/usr/bin/restic</textarea>"),
                "[{b}] {want}: the input is kept"
            );
        }
        let res = e.post_form(page, &ac, &format!("{bad}&csrf={acsrf}")).await;
        let html = body(res).await;
        assert!(
            html.contains("name=\"bdir_path_1\" value=\"/srv\"")
                && html.contains("value=\"cache; tmp/x\"")
                && html.contains("<option value=\"kill\" selected>"),
            "[{b}] the rows and the choice are kept"
        );
        assert_eq!(
            e.ransom_policy(&p.id).await.1,
            version,
            "[{b}] nothing saved"
        );

        // A viewer does not save; another project's admin does not see the project.
        let good = base(&[
            ("bdir_path_1", "/home/<b>shared</b>"),
            ("bdir_types_1", ".tmp; *.bak"),
        ]);
        let res = e
            .post_form(page, &vc, &format!("{good}&csrf={vcsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let (oc, ocsrf) = e.login("oscar").await;
        let res = e
            .post_form(page, &oc, &format!("{good}&csrf={ocsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        let res = e.get(&format!("{page}?project={}", p.id), &oc).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(e.ransom_policy(&p.id).await.1, version, "[{b}]");

        let res = e
            .post_form(page, &ac, &format!("{good}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("{page}?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (saved, v2) = e.ransom_policy(&p.id).await;
        assert!(v2 > version, "[{b}]");
        assert_eq!(
            saved,
            RansomPolicy {
                enabled: true,
                directories: vec!["/srv/data".into(), "/home".into()],
                random_bait: true,
                action: Action::Kill,
                burst_files: 20,
                window_secs: 30,
                trusted: vec!["/usr/bin/restic".into()],
                backup: BackupPolicy {
                    enabled: true,
                    directories: vec![
                        BackupDir {
                            path: "/srv/data".into(),
                            exclude: vec!["cache".into(), "tmp/x".into()],
                            exclude_types: vec!["log".into()],
                        },
                        BackupDir {
                            path: "/home/<b>shared</b>".into(),
                            exclude: vec![],
                            exclude_types: vec!["tmp".into(), "bak".into()],
                        },
                    ],
                    interval_hours: 6,
                    keep_count: 10,
                    keep_days: 14,
                },
            },
            "[{b}]"
        );
        let html = e
            .page(&format!("{page}?project={}&done=saved", p.id), &ac)
            .await;
        assert!(html.contains("Ransomware policy saved"), "[{b}]");
        assert!(
            html.contains("name=\"enabled\" value=\"1\" checked"),
            "[{b}]"
        );
        assert!(
            has_escaped(&html, "/home/<b>shared</b>") && !html.contains("<b>shared"),
            "[{b}] escaped"
        );
        assert!(html.contains("value=\"tmp; bak\""), "[{b}]");
        assert!(
            html.contains("name=\"bdir_path_4\"") && !html.contains("name=\"bdir_path_5\""),
            "[{b}] two filled rows and three empty ones"
        );
    }
}
