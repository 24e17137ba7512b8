//! File integrity API tests on both backends (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set): the policy's validation, storage, audit and push into
//! the agents' config; the file-change list with its filters, paging, CSV and authorization,
//! over records stored the way the gateway stores an agent's.

use axum::http::{Method, StatusCode};
use hostward_proto::Message;
use hostward_proto::alarm::ProcessInfo;
use hostward_proto::fim::{
    ChangeSource, FileChange, FileChanges, FileKind, FileState, FimPolicy, Operation, WatchedDir,
};
use serde_json::json;

use crate::api::testutil::apps;
use crate::auth::Role;

fn dir(path: &str) -> WatchedDir {
    WatchedDir {
        path: path.into(),
        ..Default::default()
    }
}

pub(crate) fn file_state(size: u64, mode: u32, hash: &str) -> FileState {
    FileState {
        kind: FileKind::File,
        size,
        mode,
        uid: 0,
        gid: 0,
        hash: Some(hash.into()),
    }
}

/// A change of `path` at `ts`, found by a scan, with the states its operation needs.
pub(crate) fn change(ts: i64, path: &str, op: Operation) -> FileChange {
    let (old, new) = match op {
        Operation::Create => (None, Some(file_state(10, 0o644, &"b".repeat(64)))),
        Operation::Delete => (Some(file_state(9, 0o644, &"a".repeat(64))), None),
        _ => (
            Some(file_state(9, 0o644, &"a".repeat(64))),
            Some(file_state(10, 0o755, &"b".repeat(64))),
        ),
    };
    FileChange {
        ts,
        path: path.into(),
        op,
        from: (op == Operation::Move).then(|| format!("{path}.old")),
        important: false,
        old,
        new,
        process: None,
        source: ChangeSource::Scan,
    }
}

pub(crate) fn writer() -> ProcessInfo {
    ProcessInfo {
        pid: 4242,
        ppid: 4000,
        exe: "/usr/bin/vim.basic".into(),
        cmdline: "vim /etc/passwd".into(),
        uid: 0,
        euid: 0,
        user: "root".into(),
        ..Default::default()
    }
}

pub(crate) fn record(changes: Vec<FileChange>) -> Message {
    Message::FileChanges(FileChanges { changes })
}

#[tokio::test]
async fn the_fim_policy_is_validated_stored_audited_and_pushed() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/fim-policy", a.id);

        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let defaults: FimPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(defaults, FimPolicy::default(), "[{b}]");
        let version = body["version"].as_i64().unwrap();

        // Refused whole, naming the field and index; nothing stored.
        let with_dirs = |dirs: Vec<WatchedDir>| {
            serde_json::to_string(&FimPolicy {
                directories: dirs,
                ..Default::default()
            })
            .unwrap()
        };
        for (bad, want) in [
            (
                with_dirs(vec![dir("/srv/www"), dir("/srv/www/html")]),
                "directories[1].path: \"/srv/www/html\" overlaps directories[0] (\"/srv/www\")",
            ),
            (
                with_dirs(vec![dir("/srv"), dir("var/www")]),
                "directories[1].path: \"var/www\" is not an absolute path",
            ),
            (
                with_dirs(vec![dir("/")]),
                "directories[0].path: \"/\" is the whole file system",
            ),
            (
                with_dirs((0..51).map(|i| dir(&format!("/d{i}"))).collect()),
                "directories: at most 50 entries, not 51",
            ),
            (
                json!({"important_files": ["etc/passwd"]}).to_string(),
                "important_files[0]: \"etc/passwd\" is not an absolute path",
            ),
            (json!({"directorys": []}).to_string(), "directorys"),
            (json!({"enabled": "yes"}).to_string(), "enabled"),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(want), "[{b}] {msg} lacks {want}");
        }
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");

        // Only the project's admins change it; other projects' users do not see it.
        let good = FimPolicy {
            enabled: true,
            important_files: vec!["/etc/passwd".into(), "/etc/sudoers.d".into()],
            directories: vec![
                WatchedDir {
                    exclude: vec!["cache".into()],
                    exclude_types: vec!["log".into()],
                    operations: [Operation::Create, Operation::Modify].into(),
                    ..dir("/srv/www")
                },
                dir("/srv/www2"),
            ],
        };
        let good_json = serde_json::to_string(&good).unwrap();
        for tok in [&viewer, &op] {
            let (st, body) = t.send(Method::PUT, &uri, tok, &good_json).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "[{b}] {body}");
        }
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let (st, _) = t.send(Method::PUT, &uri, &stranger, &good_json).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");

        let (st, body) = t.send(Method::PUT, &uri, &admin, &good_json).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert!(body["version"].as_i64().unwrap() > version, "[{b}] {body}");
        let (_, body) = t.get(&uri, &viewer).await;
        let stored: FimPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(stored, good, "[{b}]");

        // The agents' config carries it as the `fim` section.
        let sections = crate::capabilities::config_sections(&t.state, &srv).await;
        let pushed: FimPolicy = serde_json::from_value(sections["fim"].clone()).unwrap();
        assert_eq!(pushed, good, "[{b}]");
        let audit = s
            .list_audit(Some(std::slice::from_ref(&a.id)), 10)
            .await
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.action == "fim.policy" && e.username == "ada"),
            "[{b}] {audit:?}"
        );
    }
}

#[tokio::test]
async fn file_changes_are_listed_filtered_and_exported_per_project() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web = t.server(&a.id, "web").await;
        let app = t.server(&a.id, "app").await;
        let theirs = t.server(&other.id, "db").await;
        let passwd = FileChange {
            important: true,
            process: Some(writer()),
            source: ChangeSource::Realtime,
            ..change(1_000, "/etc/passwd", Operation::Modify)
        };
        s.store_records(
            &web.id,
            &[
                (
                    1,
                    record(vec![
                        change(100, "/srv/www/index.php", Operation::Create),
                        change(200, "/srv/www/shell.php", Operation::Move),
                        change(300, "/srv/www/old.php", Operation::Delete),
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
                record(vec![FileChange {
                    // A command line a spreadsheet would run as a formula.
                    process: Some(ProcessInfo {
                        cmdline: "=cmd|' /C calc'!A0".into(),
                        ..writer()
                    }),
                    source: ChangeSource::Realtime,
                    ..change(400, "/opt/app/run.sh", Operation::Attributes)
                }]),
            )],
        )
        .await
        .unwrap();
        s.store_records(
            &theirs.id,
            &[(
                1,
                record(vec![change(500, "/etc/hosts", Operation::Modify)]),
            )],
        )
        .await
        .unwrap();
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;

        let paths = |body: &serde_json::Value| -> Vec<String> {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["path"].as_str().unwrap().to_string())
                .collect()
        };
        let (st, body) = t.get("/api/v1/file-changes", &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            paths(&body),
            [
                "/etc/passwd",
                "/opt/app/run.sh",
                "/srv/www/old.php",
                "/srv/www/shell.php",
                "/srv/www/index.php"
            ],
            "[{b}] newest first; the other project's change is invisible"
        );
        assert_eq!(body["total"], 5, "[{b}]");
        let top = &body["items"][0];
        for (k, want) in [
            ("server_id", json!(web.id)),
            ("server_name", json!("web")),
            ("ts", json!(1_000)),
            ("op", json!("modify")),
            ("from", json!(null)),
            ("important", json!(true)),
            ("source", json!("realtime")),
            (
                "old",
                json!({"kind": "file", "size": 9, "mode": 0o644, "uid": 0, "gid": 0, "hash": "a".repeat(64)}),
            ),
            (
                "new",
                json!({"kind": "file", "size": 10, "mode": 0o755, "uid": 0, "gid": 0, "hash": "b".repeat(64)}),
            ),
        ] {
            assert_eq!(top[k], want, "[{b}] {k}");
        }
        assert!(top["id"].as_i64().is_some(), "[{b}]");
        for (k, want) in [
            ("pid", json!(4242)),
            ("ppid", json!(4000)),
            ("exe", json!("/usr/bin/vim.basic")),
            ("cmdline", json!("vim /etc/passwd")),
            ("uid", json!(0)),
            ("euid", json!(0)),
            ("user", json!("root")),
        ] {
            assert_eq!(top["process"][k], want, "[{b}] process.{k}");
        }
        let by_path = |body: &serde_json::Value, p: &str| {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["path"] == p)
                .cloned()
                .unwrap()
        };
        let moved = by_path(&body, "/srv/www/shell.php");
        assert_eq!(moved["from"], "/srv/www/shell.php.old", "[{b}]");
        let gone = by_path(&body, "/srv/www/old.php");
        assert_eq!(
            (&gone["new"], &gone["process"]),
            (&json!(null), &json!(null))
        );
        assert!(
            by_path(&body, "/srv/www/index.php")["old"].is_null(),
            "[{b}]"
        );

        // Each filter.
        let all = paths(&body);
        for (q, want) in [
            (format!("server={}", app.id), vec!["/opt/app/run.sh"]),
            (
                format!("project={}", a.id),
                all.iter().map(String::as_str).collect(),
            ),
            (
                "path=WWW/".to_string(),
                vec![
                    "/srv/www/old.php",
                    "/srv/www/shell.php",
                    "/srv/www/index.php",
                ],
            ),
            ("op=move".to_string(), vec!["/srv/www/shell.php"]),
            ("important=true".to_string(), vec!["/etc/passwd"]),
            (
                "important=false&source=realtime".to_string(),
                vec!["/opt/app/run.sh"],
            ),
            (
                "source=realtime".to_string(),
                vec!["/etc/passwd", "/opt/app/run.sh"],
            ),
            (
                "since=300&until=400".to_string(),
                vec!["/opt/app/run.sh", "/srv/www/old.php"],
            ),
            (
                "per_page=2&page=2".to_string(),
                vec!["/srv/www/old.php", "/srv/www/shell.php"],
            ),
        ] {
            let (st, body) = t.get(&format!("/api/v1/file-changes?{q}"), &viewer).await;
            assert_eq!(st, StatusCode::OK, "[{b}] {q}: {body}");
            assert_eq!(paths(&body), want, "[{b}] {q}");
        }
        let (_, body) = t
            .get("/api/v1/file-changes?per_page=2&page=2", &viewer)
            .await;
        assert_eq!(
            (&body["total"], &body["page"], &body["per_page"]),
            (&json!(5), &json!(2), &json!(2))
        );

        // Another project's server or project: 404, as if it did not exist.
        for q in [
            format!("server={}", theirs.id),
            format!("project={}", other.id),
            "server=nope".into(),
        ] {
            let (st, _) = t.get(&format!("/api/v1/file-changes?{q}"), &viewer).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {q}");
        }

        // Bad query values: 400 naming the parameter.
        for (q, name) in [
            ("op=explode", "op:"),
            ("important=maybe", "important:"),
            ("source=guess", "source:"),
            ("since=yesterday", "since"),
            ("until=1.5", "until"),
            ("page=0", "page:"),
            ("per_page=5000", "per_page:"),
            ("format=xml", "format:"),
        ] {
            let (st, body) = t.get(&format!("/api/v1/file-changes?{q}"), &viewer).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {q}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(name), "[{b}] {q}: {msg}");
        }

        // CSV: every matching row, a formula-looking command line defused.
        let (st, headers, text) = t
            .get_text(
                &format!("/api/v1/file-changes?format=csv&project={}", a.id),
                &viewer,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {text}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv"),
            "[{b}]"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "[{b}] header and five rows: {text}");
        assert!(
            lines[0].starts_with("ts,server,op,path,from,important,source,old_kind"),
            "[{b}]"
        );
        assert!(
            lines[1].starts_with("1000,web,modify,/etc/passwd,,true,realtime,file,9,0644,0:0,"),
            "[{b}] {}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(",4242,/usr/bin/vim.basic,vim /etc/passwd,root"),
            "[{b}]"
        );
        assert!(text.contains(",'=cmd|' /C calc'!A0,root"), "[{b}] {text}");
    }
}
