//! File integrity console tests: the router in-process on a real store (SQLite always,
//! PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login
//! form, file changes seeded the way the gateway stores an agent's records, heartbeats the way
//! the gateway flushes them.

use axum::http::StatusCode;
use hostward_proto::fim::{ChangeSource, FileChange, FimPolicy, Operation, WatchedDir};

use super::api_tests::{change, record, writer};
use crate::console::testutil::{Env, body, envs, form, location};

const EVIL_PATH: &str = "/srv/www/<script>alert(1)</script>.php";

fn escaped(html: &str, raw: &str) -> bool {
    let a = raw.replace('<', "&#60;").replace('>', "&#62;");
    let b = raw.replace('<', "&lt;").replace('>', "&gt;");
    html.contains(&a) || html.contains(&b)
}

impl Env {
    async fn fim_policy(&self, project_id: &str) -> (FimPolicy, i64) {
        self.state
            .store
            .policy::<FimPolicy>(project_id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn file_changes_are_listed_filtered_and_escaped_fleet_wide_and_per_server() {
    for e in envs().await {
        let b = e.backend;
        let s = &e.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        e.user("vic", &a.id, Some("viewer")).await;
        let web = e.agent_server(&a.id, "web-a").await;
        let app = e.agent_server(&a.id, "app-a").await;
        let theirs = e.agent_server(&other.id, "web-b").await;
        let now = hostward_store::now();
        let passwd = FileChange {
            important: true,
            process: Some(writer()),
            source: ChangeSource::Realtime,
            ..change(now - 60, "/etc/passwd", Operation::Modify)
        };
        s.store_records(
            &web.id,
            &[
                (
                    1,
                    record(vec![
                        change(now - 600, EVIL_PATH, Operation::Create),
                        change(now - 500, "/srv/www/shell.php", Operation::Move),
                    ]),
                ),
                (2, record(vec![passwd])),
            ],
        )
        .await
        .unwrap();
        s.store_records(
            &app.id,
            &[(
                1,
                record(vec![change(
                    now - 400,
                    "/opt/app/run.sh",
                    Operation::Delete,
                )]),
            )],
        )
        .await
        .unwrap();
        s.store_records(
            &theirs.id,
            &[(
                1,
                record(vec![change(now - 300, "/etc/theirs", Operation::Modify)]),
            )],
        )
        .await
        .unwrap();
        let server_tab = format!("/servers/{}/file-changes", web.id);
        e.assert_pages_need_a_session(&["/files", &server_tab])
            .await;

        let (vc, _) = e.login("vic").await;
        let html = e.page("/files", &vc).await;
        assert!(
            html.contains("href=\"/files\" class=\"active\" aria-current=\"page\""),
            "[{b}] the nav entry"
        );
        assert_eq!(html.matches("data-change-id=").count(), 4, "[{b}]");
        assert!(
            !html.contains("/etc/theirs"),
            "[{b}] another project's change"
        );
        assert!(escaped(&html, EVIL_PATH), "[{b}] the path, escaped");
        assert!(!html.contains("<script>alert"), "[{b}]");
        let row = |html: &str, path: &str| -> String {
            let at = html.find(path).unwrap_or_else(|| panic!("[{b}] no {path}"));
            let start = html[..at].rfind("<tr").unwrap();
            let end = at + html[at..].find("</tr>").unwrap();
            html[start..end].to_string()
        };
        let r = row(&html, "/etc/passwd");
        for shown in [
            "data-important=\"true\"",
            ">modify<",
            ">important<",
            "web-a",
            ">aaaaaaaaaaaa</span> → <strong class=\"new\"",
            ">bbbbbbbbbbbb</strong>",
            "9 B</span> → <strong class=\"new\">10 B<",
            ">0644</span> → <strong class=\"new\">0755<",
            ">0:0<",
            ">/usr/bin/vim.basic<",
            "<span class=\"pid\">4242</span>",
            "root (uid 0)",
            "vim /etc/passwd",
        ] {
            assert!(r.contains(shown), "[{b}] {shown} in {r}");
        }
        assert!(
            r.contains(&format!("title=\"{}\"", "b".repeat(64))),
            "[{b}] the full hash"
        );
        let r = row(&html, "/srv/www/shell.php.old");
        assert!(
            r.contains("<span class=\"from\">/srv/www/shell.php.old</span> → <span class=\"to\">/srv/www/shell.php</span>"),
            "[{b}] a move is from → to: {r}"
        );
        assert!(r.contains("found by a scan: writer unknown"), "[{b}]");
        assert!(!r.contains(">important<"), "[{b}]");
        let r = row(&html, "/opt/app/run.sh");
        assert!(r.contains(">delete<") && r.contains("app-a"), "[{b}]");
        assert!(
            html.contains("href=\"/api/v1/file-changes?format=csv\" id=\"csv-download\""),
            "[{b}] the CSV of the same filters"
        );

        // Filters.
        let one_server = format!("server={}", app.id);
        for (q, want, not) in [
            ("op=move", "/srv/www/shell.php", "/etc/passwd"),
            ("important=true", "/etc/passwd", "/opt/app/run.sh"),
            ("source=realtime", "/etc/passwd", "/srv/www/shell.php"),
            ("path=RUN.", "/opt/app/run.sh", "/etc/passwd"),
            (one_server.as_str(), "/opt/app/run.sh", "/etc/passwd"),
        ] {
            let html = e.page(&format!("/files?{q}"), &vc).await;
            assert!(html.contains(want) && !html.contains(not), "[{b}] {q}");
            assert!(html.contains("href=\"/files\">Reset</a>"), "[{b}] {q}");
        }
        let html = e.page("/files?op=explode&important=sure", &vc).await;
        assert_eq!(
            html.matches("data-change-id=").count(),
            4,
            "[{b}] nonsense from a link is no filter"
        );
        let html = e.page("/files?path=nothing-like-it", &vc).await;
        assert!(
            html.contains("No file change matches these filters."),
            "[{b}]"
        );
        let res = e.get(&format!("/files?server={}", theirs.id), &vc).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");

        // One server's tab: its changes only, the tab active.
        let html = e.page(&server_tab, &vc).await;
        assert_eq!(html.matches("data-change-id=").count(), 3, "[{b}]");
        assert!(!html.contains("/opt/app/run.sh"), "[{b}]");
        assert!(
            html.contains("data-tab=\"file-changes\" aria-current=\"page\""),
            "[{b}] the tab"
        );
        assert!(
            html.contains(&format!("format=csv&amp;server={}", web.id))
                || html.contains(&format!("format=csv&#38;server={}", web.id)),
            "[{b}] the CSV of this server"
        );
        let html = e.page(&format!("{server_tab}?important=true"), &vc).await;
        assert_eq!(html.matches("data-change-id=").count(), 1, "[{b}]");
        let res = e
            .get(&format!("/servers/{}/file-changes", theirs.id), &vc)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        let html = e.page(&format!("/servers/{}", web.id), &vc).await;
        assert!(
            html.contains(&format!("href=\"{server_tab}\"")),
            "[{b}] the server's tab bar links it"
        );
    }
}

#[tokio::test]
async fn the_change_list_pages_newest_first() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web").await;
        let changes = (0..60)
            .map(|i| change(1_000 + i, &format!("/srv/www/f{i:02}"), Operation::Modify))
            .collect();
        e.state
            .store
            .store_records(&srv.id, &[(1, record(changes))])
            .await
            .unwrap();
        let (vc, _) = e.login("vic").await;
        let html = e.page("/files", &vc).await;
        assert_eq!(html.matches("data-change-id=").count(), 50, "[{b}]");
        assert!(html.contains("1–50 of 60"), "[{b}]");
        assert!(
            html.find("/srv/www/f59") < html.find("/srv/www/f10"),
            "[{b}]"
        );
        assert!(!html.contains("/srv/www/f09"), "[{b}]");
        assert!(
            html.contains("href=\"/files?page=2\" rel=\"next\""),
            "[{b}]"
        );
        let html = e.page("/files?page=2", &vc).await;
        assert!(
            html.contains("51–60 of 60") && html.contains("/srv/www/f00"),
            "[{b}]"
        );
    }
}

/// The policy form as a browser sends it: the fields of each directory row as given.
fn policy_form(project: &str, fields: &[(&str, &str)]) -> String {
    let mut pairs = vec![("project", project)];
    pairs.extend_from_slice(fields);
    form(&pairs)
}

/// Every operation box of row `i` ticked, as an untouched row sends them.
fn all_ops(i: usize) -> Vec<(String, String)> {
    Operation::ALL
        .iter()
        .map(|o| (format!("dir{i}_op_{}", o.as_str()), "1".to_string()))
        .collect()
}

#[tokio::test]
async fn the_fim_policy_page_saves_refuses_keeping_the_input_and_is_read_only_for_viewers() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.assert_pages_need_a_session(&["/files/policy"]).await;
        let (_, version) = e.fim_policy(&p.id).await;

        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page("/files/policy", &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"save-policy\""),
            "[{b}]"
        );
        assert!(
            html.contains("/etc/ld.so.preload"),
            "[{b}] the shipped important files"
        );
        assert!(
            html.contains("id=\"no-directories\""),
            "[{b}] no spare rows for viewers"
        );
        assert!(
            html.contains("data-section=\"policy\" aria-current=\"page\""),
            "[{b}] the tab"
        );

        let (ac, acsrf) = e.login("ada").await;
        let html = e.page("/files/policy", &ac).await;
        assert!(html.contains("id=\"save-policy\""), "[{b}]");
        assert!(
            html.contains("name=\"enabled\" value=\"1\" checked"),
            "[{b}]"
        );
        assert_eq!(html.matches("<tr data-row=").count(), 5, "[{b}] spare rows");
        assert!(
            html.contains("name=\"dir0_op_modify\" value=\"1\" checked"),
            "[{b}] a spare row records everything"
        );

        // Two overlapping directories: refused by the API naming the second, the input kept.
        let mut overlap: Vec<(String, String)> = vec![
            ("enabled".into(), "1".into()),
            (
                "important_files".into(),
                "/etc/passwd\n/etc/<shadow>".into(),
            ),
            ("dir0_path".into(), "/srv/www".into()),
            ("dir0_recursive".into(), "1".into()),
            ("dir0_exclude".into(), "cache; tmp/upload".into()),
            ("dir0_types".into(), "log; .tmp".into()),
            ("dir2_path".into(), "/srv/www/html".into()),
        ];
        overlap.extend(all_ops(0));
        overlap.extend(all_ops(2));
        let refs: Vec<(&str, &str)> = overlap
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bad = policy_form(&p.id, &refs);
        e.assert_posts_need_csrf(&ac, &[("/files/policy".into(), bad.clone())])
            .await;
        let res = e
            .post_form("/files/policy", &ac, &format!("{bad}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("id=\"form-error\""), "[{b}]");
        assert!(
            html.contains("directories[1].path: &#34;/srv/www/html&#34; overlaps directories[0]")
                || html.contains(
                    "directories[1].path: &quot;/srv/www/html&quot; overlaps directories[0]"
                ),
            "[{b}] {html}"
        );
        assert!(
            html.contains("name=\"dir1_path\" value=\"/srv/www/html\""),
            "[{b}] the row typed third is directories[1] on the page too"
        );
        assert!(
            html.contains("value=\"cache; tmp/upload\""),
            "[{b}] the input is kept"
        );
        assert!(
            escaped(&html, "/etc/<shadow>") && !html.contains("/etc/<shadow>"),
            "[{b}] escaped"
        );

        // Refused by the form itself: a row recording nothing.
        let bad = policy_form(&p.id, &[("dir0_path", "/srv/www"), ("dir0_recursive", "1")]);
        let res = e
            .post_form("/files/policy", &ac, &format!("{bad}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            body(res)
                .await
                .contains("directories[0].operations: tick at least one"),
            "[{b}]"
        );
        // A relative path.
        let mut rel = vec![("dir0_path".to_string(), "srv/www".to_string())];
        rel.extend(all_ops(0));
        let refs: Vec<(&str, &str)> = rel.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let res = e
            .post_form(
                "/files/policy",
                &ac,
                &format!("{}&csrf={acsrf}", policy_form(&p.id, &refs)),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("directories[0].path:"), "[{b}]");
        assert_eq!(e.fim_policy(&p.id).await.1, version, "[{b}] nothing stored");

        // A good policy: viewers may not save it, admins do.
        let mut good: Vec<(String, String)> = vec![
            (
                "important_files".into(),
                "/etc/passwd\n\n /etc/sudoers ".into(),
            ),
            ("dir0_path".into(), "/srv/www".into()),
            ("dir0_recursive".into(), "1".into()),
            ("dir0_op_create".into(), "1".into()),
            ("dir0_op_modify".into(), "1".into()),
            ("dir0_exclude".into(), "cache; tmp/upload".into()),
            ("dir0_types".into(), "log; .tmp".into()),
            ("dir3_path".into(), "/opt/app/bin".into()),
        ];
        good.extend(all_ops(3));
        let refs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let good = policy_form(&p.id, &refs);
        let res = e
            .post_form("/files/policy", &vc, &format!("{good}&csrf={vcsrf}"))
            .await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "[{b}] viewers do not save"
        );
        let res = e
            .post_form("/files/policy", &ac, &format!("{good}&csrf={acsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/files/policy?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (saved, v2) = e.fim_policy(&p.id).await;
        assert!(v2 > version, "[{b}]");
        let want = FimPolicy {
            enabled: false,
            important_files: vec!["/etc/passwd".into(), "/etc/sudoers".into()],
            directories: vec![
                WatchedDir {
                    path: "/srv/www".into(),
                    recursive: true,
                    operations: [Operation::Create, Operation::Modify].into(),
                    exclude: vec!["cache".into(), "tmp/upload".into()],
                    exclude_types: vec!["log".into(), "tmp".into()],
                },
                WatchedDir {
                    path: "/opt/app/bin".into(),
                    recursive: false,
                    ..Default::default()
                },
            ],
        };
        assert_eq!(saved, want, "[{b}]");
        let html = e.page(&location(&res), &ac).await;
        assert!(html.contains("File integrity policy saved"), "[{b}]");
        assert!(
            html.contains("name=\"dir1_path\" value=\"/opt/app/bin\""),
            "[{b}]"
        );
        assert!(
            html.contains("name=\"dir0_op_delete\" value=\"1\">"),
            "[{b}] unticked stays so"
        );
        assert_eq!(
            html.matches("<tr data-row=").count(),
            5,
            "[{b}] two and three spare"
        );
    }
}

#[tokio::test]
async fn the_server_page_reports_file_integrity_or_says_it_is_not_reported() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let scan_only = e.agent_server(&p.id, "web-1").await;
        let old = e.agent_server(&p.id, "web-2").await;
        let odd = e.agent_server(&p.id, "web-3").await;
        let hb = |fim: Option<serde_json::Value>| {
            let mut v = serde_json::json!({"now": 1, "rss_bytes": 1, "cpu_percent": 0.5,
                "outbox_depth": 0, "outbox_dropped": 0});
            if let Some(f) = fim {
                v["fim"] = f;
            }
            v.to_string()
        };
        let report = serde_json::json!({
            "state": "scan_only", "reason": "fanotify is not permitted: <EPERM>",
            "files": 48213, "watched_dirs": 0, "last_scan": 1_700_000_000, "scan_errors": 2,
            "problems": ["/srv/www: does not exist", "/root/.ssh/id_rsa: permission denied"],
            "truncated": true, "overflows": 0, "changes": 17
        });
        e.state
            .store
            .flush_last_seen(&[
                (scan_only.id.clone(), 10, hb(Some(report))),
                (old.id.clone(), 10, hb(None)),
                (
                    odd.id.clone(),
                    10,
                    hb(Some(serde_json::json!({"state": 3}))),
                ),
            ])
            .await
            .unwrap();
        let (cookie, _) = e.login("vic").await;

        let html = e.page(&format!("/servers/{}", scan_only.id), &cookie).await;
        assert!(
            html.contains("<span id=\"fim-state-name\">scans only</span>"),
            "[{b}] {html}"
        );
        assert!(
            html.contains("no real-time events: changes are found by scans"),
            "[{b}]"
        );
        assert!(
            escaped(&html, "fanotify is not permitted: <EPERM>"),
            "[{b}] the reason, escaped"
        );
        assert!(
            html.contains("48213 files in the baseline, 0 directories watched in real time, 17 changes reported since the agent started, 0 event-queue overflows (each followed by a rescan), 2 paths the last scan could not read"),
            "[{b}] every figure, zeros included"
        );
        assert!(
            html.contains("last scan completed 2023-11-14 22:13:20"),
            "[{b}]"
        );
        assert!(html.contains("id=\"fim-truncated\""), "[{b}]");
        assert!(
            html.contains(
                "<li>/srv/www: does not exist</li><li>/root/.ssh/id_rsa: permission denied</li>"
            ),
            "[{b}]"
        );

        let html = e.page(&format!("/servers/{}", old.id), &cookie).await;
        let row = &html[html.find("id=\"fim-state\"").expect("the row")..];
        assert!(
            row[..200.min(row.len())].contains("not reported by this agent"),
            "[{b}] {row}"
        );
        assert!(!html.contains("id=\"fim-state-name\""), "[{b}]");

        let html = e.page(&format!("/servers/{}", odd.id), &cookie).await;
        assert!(
            html.contains("<span id=\"fim-state-name\">unreadable</span>"),
            "[{b}] a report that does not decode is not shown as absent"
        );
    }
}
