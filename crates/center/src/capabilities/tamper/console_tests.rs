//! Tamper protection console tests: the router in-process on a real store (SQLite always,
//! PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login
//! form, heartbeats stored the way the gateway flushes them.

use axum::http::StatusCode;
use hostward_proto::tamper::{ProtectedDir, TamperPolicy, Window};
use serde_json::json;

use crate::console::testutil::{Env, body, envs, form, has_escaped, has_url, location};

impl Env {
    async fn tamper_policy(&self, project_id: &str) -> (TamperPolicy, i64) {
        self.state
            .store
            .policy::<TamperPolicy>(project_id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_tamper_policy_page_saves_refuses_keeping_the_input_and_is_read_only_for_viewers() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        e.assert_pages_need_a_session(&["/alarms/tamper-policy"])
            .await;
        let (_, version) = e.tamper_policy(&p.id).await;

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page("/alarms/tamper-policy", &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"save-policy\""),
            "[{b}]"
        );
        assert!(
            html.contains("name=\"enabled\" value=\"1\" disabled"),
            "[{b}] off by default, and not editable"
        );
        assert!(
            has_url(&html, &format!("/alarms?type=web_tamper&project={}", p.id)),
            "[{b}] the project's tamper alarms"
        );
        let html = e.page("/alarms", &vc).await;
        assert!(
            html.contains("href=\"/alarms/tamper-policy\""),
            "[{b}] a tab of the alarms area"
        );

        let (ac, acsrf) = e.login("ada").await;
        let html = e.page("/alarms/tamper-policy", &ac).await;
        assert!(html.contains("id=\"save-policy\""), "[{b}]");
        assert!(
            html.contains("name=\"dir_path_2\"") && !html.contains("name=\"dir_path_3\""),
            "[{b}] three empty directory rows"
        );
        assert!(
            html.contains("name=\"win_day_1_7\"") && !html.contains("name=\"win_start_2\""),
            "[{b}] two empty window rows"
        );

        let base = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("project", p.id.as_str()),
                ("enabled", "1"),
                ("dir_path_0", "/srv/www"),
                ("dir_exclude_0", "uploads; cache"),
                ("dir_types_0", "log"),
                ("privileged", "/usr/local/bin/deploy"),
                ("win_day_0_1", "1"),
                ("win_day_0_5", "1"),
                ("win_start_0", "02:00"),
                ("win_end_0", "02:30"),
            ];
            pairs.extend_from_slice(extra);
            form(&pairs)
        };
        // An overlapping directory: the form again with the message and what was typed.
        let bad = base(&[("dir_path_1", "/srv/www/shop")]);
        e.assert_posts_need_csrf(&ac, &[("/alarms/tamper-policy".into(), bad.clone())])
            .await;
        let res = e
            .post_form("/alarms/tamper-policy", &ac, &format!("{bad}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("id=\"form-error\""), "[{b}]");
        assert!(
            has_escaped(
                &html,
                "directories[1].path: \"/srv/www/shop\" overlaps directories[0]"
            ),
            "[{b}] {html}"
        );
        assert!(
            html.contains("value=\"/srv/www/shop\"") && html.contains("value=\"uploads; cache\""),
            "[{b}] the input is kept"
        );
        assert!(
            html.contains("name=\"win_day_0_5\" value=\"1\" checked"),
            "[{b}] ticked days stay ticked"
        );
        // Empty rows in between are dropped, so the index named is the row shown with it.
        let bad = form(&[
            ("project", &p.id),
            ("dir_path_0", ""),
            ("dir_path_1", "/srv/a"),
            ("dir_path_2", ""),
            ("dir_path_3", "/"),
        ]);
        let res = e
            .post_form("/alarms/tamper-policy", &ac, &format!("{bad}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            has_escaped(&html, "directories[1].path: \"/\" is the whole file system"),
            "[{b}] {html}"
        );
        assert!(
            html.contains("<tr data-row=\"1\">\n        <td class=\"muted small mono\">directories[1]</td>\n        <td><input type=\"text\" name=\"dir_path_1\" value=\"/\""),
            "[{b}] {html}"
        );
        // A system directory, a window of 4 minutes: refused naming them.
        for (extra, want) in [
            (
                vec![("dir_path_1", "/etc")],
                "directories[1].path: \"/etc\" is a system directory",
            ),
            (
                vec![("win_start_1", "03:00"), ("win_end_1", "03:04")],
                "windows[1]: shorter than 5 minutes",
            ),
            (
                vec![("dir_path_1", "srv/shop")],
                "directories[1].path: \"srv/shop\" is not an absolute path",
            ),
        ] {
            let res = e
                .post_form(
                    "/alarms/tamper-policy",
                    &ac,
                    &format!("{}&csrf={acsrf}", base(&extra)),
                )
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}] {want}");
            let html = body(res).await;
            assert!(has_escaped(&html, want), "[{b}] {want}: {html}");
        }
        assert_eq!(
            e.tamper_policy(&p.id).await.1,
            version,
            "[{b}] nothing saved"
        );

        // A viewer does not save; another project's admin does not see the project.
        let good = base(&[
            ("dir_path_2", "/var/www/<b>shop</b>"),
            ("dir_types_2", ".tmp; *.bak"),
            ("win_start_1", "23:00"),
            ("win_end_1", "24:00"),
            ("lock_files", "1"),
        ]);
        let res = e
            .post_form(
                "/alarms/tamper-policy",
                &vc,
                &format!("{good}&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let (oc, ocsrf) = e.login("oscar").await;
        let res = e
            .post_form(
                "/alarms/tamper-policy",
                &oc,
                &format!("{good}&csrf={ocsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        let res = e
            .get(&format!("/alarms/tamper-policy?project={}", p.id), &oc)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(e.tamper_policy(&p.id).await.1, version, "[{b}]");

        let res = e
            .post_form(
                "/alarms/tamper-policy",
                &ac,
                &format!("{good}&csrf={acsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/alarms/tamper-policy?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (saved, v2) = e.tamper_policy(&p.id).await;
        assert!(v2 > version, "[{b}]");
        assert_eq!(
            saved,
            TamperPolicy {
                enabled: true,
                directories: vec![
                    ProtectedDir {
                        path: "/srv/www".into(),
                        exclude: vec!["uploads".into(), "cache".into()],
                        exclude_types: vec!["log".into()],
                    },
                    ProtectedDir {
                        path: "/var/www/<b>shop</b>".into(),
                        exclude: vec![],
                        exclude_types: vec!["tmp".into(), "bak".into()],
                    },
                ],
                privileged: vec!["/usr/local/bin/deploy".into()],
                windows: vec![
                    Window {
                        days: vec![1, 5],
                        start: "02:00".into(),
                        end: "02:30".into(),
                    },
                    Window {
                        days: vec![],
                        start: "23:00".into(),
                        end: "24:00".into(),
                    },
                ],
                lock_files: true,
            },
            "[{b}]"
        );
        let html = e
            .page(
                &format!("/alarms/tamper-policy?project={}&done=saved", p.id),
                &ac,
            )
            .await;
        assert!(html.contains("Tamper protection policy saved"), "[{b}]");
        assert!(
            html.contains("name=\"enabled\" value=\"1\" checked"),
            "[{b}]"
        );
        assert!(
            has_escaped(&html, "<b>shop</b>") && !html.contains("<b>shop"),
            "[{b}] escaped"
        );
        assert!(html.contains("value=\"tmp; bak\""), "[{b}]");
        assert!(
            html.contains("name=\"dir_path_4\"") && !html.contains("name=\"dir_path_5\""),
            "[{b}] two filled rows and three empty ones"
        );
    }
}

#[tokio::test]
async fn the_server_tab_says_the_reported_state_and_operators_unlock_and_lock() {
    for e in envs().await {
        let b = e.backend;
        let s = e.state.store.clone();
        let p = s.ensure_project("default").await.unwrap();
        let other = s.ensure_project("other").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("otto", &p.id, Some("operator")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let srv = e.server(&p.id, "web-1").await;
        let uri = format!("/servers/{}/tamper", srv.id);
        let (unlock, lock) = (format!("{uri}/unlock"), format!("{uri}/lock"));
        let overview = format!("/servers/{}", srv.id);
        e.assert_pages_need_a_session(&[&uri]).await;

        // Nothing reported: said so, never as protected; the overview's row says the same.
        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("data-state=\"not_reported\"")
                && html.contains("Not reported by this agent")
                && html.contains("id=\"not-reported\""),
            "[{b}] {html}"
        );
        assert!(!html.contains(">Protected<"), "[{b}]");
        assert!(
            html.contains("id=\"agent-away\""),
            "[{b}] an agent that is not online"
        );
        assert!(
            has_url(&html, &format!("/alarms?type=web_tamper&server={}", srv.id)),
            "[{b}] the server's tamper alarms"
        );
        let html = e.page(&overview, &vc).await;
        assert!(
            html.contains("id=\"tamper-row\" data-state=\"not_reported\"")
                && html.contains(&format!("href=\"{uri}\"")),
            "[{b}] the overview's row and tab"
        );
        e.heartbeat(&srv.id, "tamper", None).await;
        assert!(
            e.page(&uri, &vc)
                .await
                .contains("data-state=\"not_reported\""),
            "[{b}] a heartbeat without the report"
        );

        // Protected, with counts and the agent's problems, escaped.
        e.heartbeat(
            &srv.id,
            "tamper",
            Some(
                json!({"state": "protected", "directories": 3, "files": 1234,
                "refused": 7, "reverted": 2, "last_verify": 1_700_000_000,
                "problems": ["/srv/www/<script>x</script>: vanished"]}),
            ),
        )
        .await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("data-state=\"protected\"") && html.contains(">Protected<"),
            "[{b}] {html}"
        );
        for (k, n) in [
            ("directories", 3),
            ("files", 1234),
            ("refused", 7),
            ("reverted", 2),
        ] {
            assert!(
                html.contains(&format!("data-count=\"{k}\">{n}")),
                "[{b}] {k}"
            );
        }
        assert!(html.contains("2023-11-14 22:13:20"), "[{b}] last verify");
        assert!(
            has_escaped(&html, "<script>x</script>: vanished") && !html.contains("<script>x"),
            "[{b}] problems, escaped"
        );
        assert!(
            e.page(&overview, &vc)
                .await
                .contains("id=\"tamper-row\" data-state=\"protected\""),
            "[{b}]"
        );
        // Failing and unlocked, in words.
        e.heartbeat(
            &srv.id,
            "tamper",
            Some(
                json!({"state": "failing", "reason": "fanotify: permission denied",
                "directories": 0, "files": 0, "refused": 0, "reverted": 0}),
            ),
        )
        .await;
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("Failing: fanotify: permission denied") && !html.contains(">Protected<"),
            "[{b}]"
        );
        e.heartbeat(
            &srv.id,
            "tamper",
            Some(json!({"state": "unlocked", "until": 1_700_000_000,
                "directories": 3, "files": 10, "refused": 0, "reverted": 0})),
        )
        .await;
        assert!(
            e.page(&uri, &vc)
                .await
                .contains("Unlocked until 2023-11-14 22:13:20 UTC"),
            "[{b}]"
        );

        // A viewer sees no forms and cannot post them.
        let html = e.page(&uri, &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"unlock-form\""),
            "[{b}]"
        );
        let res = e
            .post_form(&unlock, &vc, &format!("minutes=10&csrf={vcsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        // Another project's admin: not found, for the page and the forms.
        let (oc, ocsrf) = e.login("oscar").await;
        assert_eq!(
            e.get(&uri, &oc).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        for (to, f) in [
            (&unlock, format!("minutes=10&csrf={ocsrf}")),
            (&lock, format!("csrf={ocsrf}")),
        ] {
            let res = e.post_form(to, &oc, &f).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] {to}");
        }

        // The operator: the unlock form, no lock form while nothing is unlocked.
        let (c, csrf) = e.login("otto").await;
        let html = e.page(&uri, &c).await;
        assert!(
            html.contains("id=\"unlock-form\"") && !html.contains("id=\"lock-form\""),
            "[{b}]"
        );
        assert!(
            html.contains("id=\"unlock-state\" data-active=\"false\""),
            "[{b}]"
        );
        e.assert_posts_need_csrf(
            &c,
            &[
                (unlock.clone(), "minutes=10".into()),
                (lock.clone(), String::new()),
            ],
        )
        .await;
        assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "[{b}]");

        // Out of bounds or not a number: the page again with the message and the input.
        for (typed, want) in [
            ("0", "minutes: 0 is not 1 to 1439".to_string()),
            ("1440", "minutes: 1440 is not 1 to 1439".to_string()),
            ("ten", "minutes: \"ten\" is not a whole number".to_string()),
        ] {
            let res = e
                .post_form(&unlock, &c, &format!("minutes={typed}&csrf={csrf}"))
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}] {typed}");
            let html = body(res).await;
            assert!(has_escaped(&html, &want), "[{b}] {want}: {html}");
            assert!(
                html.contains(&format!("name=\"minutes\" value=\"{typed}\"")),
                "[{b}]"
            );
        }
        assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "[{b}]");

        // Unlocked for 45 minutes, then locked again.
        let v0 = s.server(&srv.id).await.unwrap().unwrap().config_version;
        let res = e
            .post_form(&unlock, &c, &format!("minutes=45&csrf={csrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=unlocked"), "[{b}]");
        let u = s.tamper_unlock(&srv.id).await.unwrap().expect("unlocked");
        assert_eq!(u.set_by, "otto", "[{b}]");
        assert!(
            (u.until - hostward_store::now() - 45 * 60).abs() < 10,
            "[{b}] {u:?}"
        );
        assert_eq!(
            s.server(&srv.id).await.unwrap().unwrap().config_version,
            v0 + 1,
            "[{b}]"
        );
        let html = e.page(&format!("{uri}?done=unlocked"), &c).await;
        assert!(html.contains("id=\"flash\""), "[{b}]");
        assert!(
            html.contains("id=\"unlock-state\" data-active=\"true\"")
                && html.contains("id=\"lock-form\""),
            "[{b}]"
        );
        let res = e.post_form(&lock, &c, &format!("csrf={csrf}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=locked"), "[{b}]");
        assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "[{b}]");
        let html = e.page(&format!("{uri}?done=locked"), &c).await;
        assert!(
            html.contains("id=\"unlock-state\" data-active=\"false\"")
                && !html.contains("id=\"lock-form\""),
            "[{b}]"
        );
    }
}
