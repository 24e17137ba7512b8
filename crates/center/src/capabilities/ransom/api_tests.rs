//! Ransomware prevention API tests on both backends (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set): the policy's validation, storage, audit and push into
//! the agents' config; a server's state from its heartbeat with its backup tasks; "back up
//! now" and restore with their roles, checks and tasks, also through `POST /tasks`.

use axum::http::{Method, StatusCode};
use hostward_proto::ransom::{
    Action, BackupDir, BackupPolicy, RansomPolicy, RestoreRequest, RestoreResult,
};
use hostward_proto::{Message, TaskState, TaskUpdate};
use serde_json::json;

use crate::api::testutil::apps;
use crate::auth::Role;

fn bdir(path: &str) -> BackupDir {
    BackupDir {
        path: path.into(),
        ..Default::default()
    }
}

fn good_policy() -> RansomPolicy {
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
            directories: vec![BackupDir {
                path: "/srv/data".into(),
                exclude: vec!["cache".into()],
                exclude_types: vec!["tmp".into()],
            }],
            interval_hours: 6,
            keep_count: 10,
            keep_days: 14,
        },
    }
}

/// A heartbeat's `ransom` report with two snapshots, as an agent sends it.
pub(crate) fn report() -> serde_json::Value {
    json!({"state": "protecting", "action": "kill_isolate", "baits": 12,
        "baits_deployed_at": 1_700_000_000, "watched_dirs": 40, "detections": 1, "killed": 1,
        "problems": ["/data: no such directory"],
        "backup": {"state": "ok", "next_at": 1_700_021_600, "stored_bytes": 5_242_880,
            "snapshots": [
                {"id": "1700000000-ab12", "at": 1_700_000_000, "directories": ["/srv/data"],
                 "files": 120, "bytes": 4_194_304, "new_bytes": 1024, "errors": 2,
                 "truncated": false},
                {"id": "1699900000-cd34", "at": 1_699_900_000, "directories": ["/srv/data"],
                 "files": 118, "bytes": 4_100_000, "new_bytes": 4_100_000, "errors": 0,
                 "truncated": true}]}})
}

#[tokio::test]
async fn the_ransom_policy_is_validated_stored_audited_and_pushed() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "files").await;
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
        let uri = format!("/api/v1/projects/{}/ransom-policy", a.id);

        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let defaults: RansomPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(defaults, RansomPolicy::default(), "[{b}]");
        assert!(!defaults.enabled, "[{b}] off until someone turns it on");
        let version = body["version"].as_i64().unwrap();

        // Refused whole, naming the field and index; nothing stored.
        let with = |f: &dyn Fn(&mut RansomPolicy)| {
            let mut p = good_policy();
            f(&mut p);
            serde_json::to_string(&p).unwrap()
        };
        for (bad, want) in [
            (
                with(&|p| p.directories.push("/srv/data/x".into())),
                "directories[2]: \"/srv/data/x\" overlaps directories[0]",
            ),
            (
                with(&|p| p.directories[1] = "/usr".into()),
                "directories[1]: \"/usr\" is a system directory",
            ),
            (with(&|p| p.directories[0] = "srv".into()), "directories[0]"),
            (
                with(&|p| p.burst_files = 2),
                "burst_files: 2 is not 3 to 100",
            ),
            (
                with(&|p| p.window_secs = 601),
                "window_secs: 601 is not 5 to 600",
            ),
            (with(&|p| p.trusted.push("restic".into())), "trusted[1]"),
            (
                with(&|p| p.backup.directories.push(bdir("/srv"))),
                "backup.directories[1]: \"/srv\" overlaps backup.directories[0]",
            ),
            (
                with(&|p| p.backup.directories[0].exclude.push("/abs".into())),
                "backup.directories[0].exclude[1]",
            ),
            (
                with(&|p| p.backup.directories.clear()),
                "backup.directories: name at least one directory to back up",
            ),
            (
                with(&|p| p.backup.interval_hours = 0),
                "backup.interval_hours: 0 is not 1 to 168",
            ),
            (
                with(&|p| p.backup.keep_count = 101),
                "backup.keep_count: 101 is not 1 to 100",
            ),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {want}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.starts_with(want),
                "[{b}] {msg} does not start with {want}"
            );
        }
        for (bad, field) in [
            (json!({"enabled": "yes"}), "enabled"),
            (json!({"dirs": []}), "dirs"),
            (json!({"action": "nuke"}), "nuke"),
            (json!({"backup": {"every": 3}}), "every"),
            (json!({"burst_files": -1}), "burst_files"),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "[{b}] {bad}: {msg}");
        }
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");
        assert!(
            t.audited(&a.id, "ransom.policy", "ada").await.is_empty(),
            "[{b}]"
        );

        // Only the project's admins change it; other projects' users do not see it.
        let good = serde_json::to_string(&good_policy()).unwrap();
        for tok in [&viewer, &op] {
            let (st, body) = t.send(Method::PUT, &uri, tok, &good).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "[{b}] {body}");
        }
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let (st, _) = t.send(Method::PUT, &uri, &stranger, &good).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");

        let (st, body) = t.send(Method::PUT, &uri, &admin, &good).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert!(body["version"].as_i64().unwrap() > version, "[{b}] {body}");
        let (_, body) = t.get(&uri, &viewer).await;
        let stored: RansomPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(stored, good_policy(), "[{b}]");

        // The agents' config carries it as the `ransom` section.
        let sec = t.config_sections(&srv.id).await;
        let pushed: RansomPolicy = serde_json::from_value(sec["ransom"].clone()).unwrap();
        assert_eq!(pushed, good_policy(), "[{b}]");
        let details = t.audited(&a.id, "ransom.policy", "ada").await;
        assert!(
            details.len() == 1 && details[0].contains("/usr/bin/restic"),
            "[{b}] {details:?}"
        );
    }
}

#[tokio::test]
async fn a_servers_state_is_what_its_agent_reported_with_its_backup_tasks() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "files").await;
        let theirs = t.server(&other.id, "their-files").await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let uri = format!("/api/v1/servers/{}/ransom", srv.id);

        // Nothing reported, nothing asked, the policy off: said as such.
        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            (
                &body["report"],
                &body["reported_at"],
                &body["policy_enabled"],
                &body["backup_enabled"],
                &body["tasks"]
            ),
            (
                &json!(null),
                &json!(null),
                &json!(false),
                &json!(false),
                &json!([])
            ),
            "[{b}] {body}"
        );
        // A heartbeat without the report (an older agent) is still not reported.
        s.flush_last_seen(&[(
            srv.id.clone(),
            1_700_000_050,
            json!({"rss_bytes": 1}).to_string(),
        )])
        .await
        .unwrap();
        let (_, body) = t.get(&uri, &viewer).await;
        assert_eq!(
            (&body["report"], &body["reported_at"]),
            (&json!(null), &json!(null)),
            "[{b}] {body}"
        );

        // The last heartbeat's report, as stored for the server page.
        let hb = json!({"rss_bytes": 1, "ransom": report()});
        s.flush_last_seen(&[(srv.id.clone(), 1_700_000_100, hb.to_string())])
            .await
            .unwrap();
        let (_, body) = t.get(&uri, &viewer).await;
        assert_eq!(body["report"]["state"], "protecting", "[{b}] {body}");
        assert_eq!(
            (
                &body["report"]["baits"],
                &body["report"]["backup"]["stored_bytes"]
            ),
            (&json!(12), &json!(5_242_880)),
            "[{b}]"
        );
        assert_eq!(
            body["report"]["backup"]["snapshots"][1]["id"], "1699900000-cd34",
            "[{b}]"
        );
        assert_eq!(body["reported_at"], 1_700_000_100, "[{b}]");

        // Tasks: only backups and restores, newest first, with the agent's error.
        let (st, body) = t
            .send(
                Method::POST,
                &format!("/api/v1/servers/{}/backups", srv.id),
                &op,
                "",
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        let backup_id = body["id"].as_str().unwrap().to_string();
        let (st, _) = t
            .send(
                Method::POST,
                &format!("/api/v1/servers/{}/tasks", srv.id),
                &op,
                r#"{"kind":"ping"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}]");
        let (st, body) = t
            .send(
                Method::POST,
                &format!("/api/v1/servers/{}/backups/restore", srv.id),
                &op,
                r#"{"snapshot":"1700000000-ab12"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        let restore_id = body["id"].as_str().unwrap().to_string();
        let done = RestoreResult {
            snapshot: "1700000000-ab12".into(),
            taken_at: 1_700_000_000,
            restored: 7,
            unchanged: 100,
            removed: 3,
            failed: vec!["/srv/data/locked: permission denied".into()],
        };
        let updates = [
            (
                1,
                Message::TaskUpdate(TaskUpdate {
                    task_id: backup_id.clone(),
                    state: TaskState::Failed,
                    output: json!({"error": "backup: the policy names no directory"}),
                }),
            ),
            (
                2,
                Message::TaskUpdate(TaskUpdate {
                    task_id: restore_id.clone(),
                    state: TaskState::Done,
                    output: serde_json::to_value(&done).unwrap(),
                }),
            ),
        ];
        s.store_records(&srv.id, &updates).await.unwrap();
        let (_, body) = t.get(&uri, &viewer).await;
        let tasks = body["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 2, "[{b}] the ping is not listed: {body}");
        let by_id = |id: &str| tasks.iter().find(|x| x["id"] == id).unwrap().clone();
        let bt = by_id(&backup_id);
        assert_eq!(
            (&bt["kind"], &bt["state"], &bt["error"]),
            (
                &json!("backup_now"),
                &json!("failed"),
                &json!("backup: the policy names no directory")
            ),
            "[{b}] {bt}"
        );
        let rt = by_id(&restore_id);
        assert_eq!(
            (&rt["kind"], &rt["state"], &rt["error"]),
            (&json!("backup_restore"), &json!("done"), &json!(null)),
            "[{b}] {rt}"
        );
        let got: RestoreResult = serde_json::from_value(rt["output"].clone()).unwrap();
        assert_eq!(got, done, "[{b}]");
        assert!(
            tasks
                .windows(2)
                .all(|w| w[0]["created_at"].as_i64() >= w[1]["created_at"].as_i64()),
            "[{b}] newest first"
        );

        // Another project's server is not found, for its viewers' neighbours too.
        for (u, tok) in [
            (format!("/api/v1/servers/{}/ransom", theirs.id), &op),
            (
                uri.clone(),
                &t.token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
                    .await,
            ),
        ] {
            assert_eq!(t.get(&u, tok).await.0, StatusCode::NOT_FOUND, "[{b}] {u}");
        }
    }
}

#[tokio::test]
async fn backups_and_restores_are_queued_for_operators_and_bad_restores_refused() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "files").await;
        let theirs = t.server(&other.id, "their-files").await;
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
        let backups = format!("/api/v1/servers/{}/backups", srv.id);
        let restore = format!("{backups}/restore");
        let good = r#"{"at": 1700000000}"#;

        // Viewers may not; other projects' servers are not found, either way round.
        for (uri, body) in [(&backups, ""), (&restore, good)] {
            let (st, _) = t.send(Method::POST, uri, &viewer, body).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "[{b}] {uri}");
            let (st, _) = t.send(Method::POST, uri, &stranger, body).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {uri}");
        }
        for uri in [
            format!("/api/v1/servers/{}/backups", theirs.id),
            format!("/api/v1/servers/{}/backups/restore", theirs.id),
        ] {
            let (st, _) = t.send(Method::POST, &uri, &admin, good).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {uri}");
        }
        assert!(
            t.state
                .store
                .list_tasks(&srv.id, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Bad restores: refused naming the field, nothing queued.
        for (bad, want) in [
            (
                json!({}),
                "snapshot, at: name a snapshot or a point in time",
            ),
            (
                json!({"snapshot": "1700000000-ab12", "at": 5}),
                "snapshot, at: name a snapshot or a point in time, not both",
            ),
            (
                json!({"snapshot": "../x"}),
                "snapshot: \"../x\" is not a snapshot id",
            ),
            (json!({"at": 0}), "at: 0 is not a time"),
            (
                json!({"at": 1, "paths": ["srv/data"]}),
                "paths[0]: \"srv/data\" is not an absolute path",
            ),
            (json!({"at": 1, "force": true}), "force"),
            (json!({"at": "yesterday"}), "at"),
            (json!({"at": 1, "paths": "/srv"}), "paths"),
        ] {
            let (st, body) = t.send(Method::POST, &restore, &op, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.starts_with(want) || (want.len() < 8 && msg.contains(want)),
                "[{b}] {bad}: {msg} (want {want})"
            );
        }
        assert!(
            t.state
                .store
                .list_tasks(&srv.id, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Before the agent lists snapshots, any well-formed id is its to check.
        let (st, body) = t
            .send(
                Method::POST,
                &restore,
                &op,
                r#"{"snapshot":"1600000000-0000"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        // Once it lists them, an id not among them is refused.
        let hb = json!({"ransom": report()});
        s.flush_last_seen(&[(srv.id.clone(), 1_700_000_100, hb.to_string())])
            .await
            .unwrap();
        let (st, body) = t
            .send(
                Method::POST,
                &restore,
                &op,
                r#"{"snapshot":"1600000000-0000"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert_eq!(
            body["error"]["message"],
            "snapshot: \"1600000000-0000\" is not a snapshot of this server",
            "[{b}]"
        );

        // A listed snapshot, some paths, removing what it lacks.
        let req = RestoreRequest {
            snapshot: Some("1699900000-cd34".into()),
            at: None,
            paths: vec!["/srv/data/docs".into(), "/srv/data/a.txt".into()],
            remove_new: true,
        };
        let (st, body) = t
            .send(
                Method::POST,
                &restore,
                &op,
                &serde_json::to_string(&req).unwrap(),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        assert_eq!(
            (&body["kind"], &body["state"], &body["server_id"]),
            (&json!("backup_restore"), &json!("queued"), &json!(srv.id)),
            "[{b}] {body}"
        );
        let params: RestoreRequest = serde_json::from_value(body["params"].clone()).unwrap();
        assert_eq!(params, req, "[{b}]");
        let until = body["expires_at"].as_i64().unwrap() - body["created_at"].as_i64().unwrap();
        assert_eq!(until, 3600, "[{b}] a restore waits an hour at most");
        let stored = s.task(body["id"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.params, body["params"], "[{b}]");
        let restores = t.audited(&a.id, "ransom.restore", "otto").await;
        assert!(
            restores
                .iter()
                .any(|d| d.contains("snapshot 1699900000-cd34")
                    && d.contains("/srv/data/docs")
                    && d.contains("removing")),
            "[{b}] {restores:?}"
        );

        // Back up now: an admin may too; params are `{}`.
        let (st, body) = t.send(Method::POST, &backups, &admin, "").await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        assert_eq!(
            (&body["kind"], &body["params"], &body["created_by"]),
            (&json!("backup_now"), &json!({}), &json!("ada")),
            "[{b}] {body}"
        );
        assert_eq!(
            t.audited(&a.id, "ransom.backup", "ada").await.len(),
            1,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn both_kinds_go_through_post_tasks_with_their_params_checked() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let srv = t.server(&a.id, "files").await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let post = |kind: &str, params: serde_json::Value| {
            json!({"server_ids": [srv.id], "kind": kind, "params": params}).to_string()
        };
        for (body, want) in [
            (
                post("backup_now", json!({"dirs": ["/srv"]})),
                "params: backup_now takes no params",
            ),
            (post("backup_restore", json!({})), "params: snapshot, at"),
            (
                post("backup_restore", json!({"at": 1, "paths": ["rel"]})),
                "params: paths[0]",
            ),
            (
                post("backup_restore", json!({"at": 1, "force": 1})),
                "params: unknown field `force`",
            ),
        ] {
            let (st, res) = t.send(Method::POST, "/api/v1/tasks", &op, &body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}: {res}");
            let msg = res["error"]["message"].as_str().unwrap();
            assert!(msg.starts_with(want), "[{b}] {msg} (want {want})");
        }
        for body in [
            post("backup_now", json!({})),
            json!({"server_ids": [srv.id], "kind": "backup_now"}).to_string(),
            post(
                "backup_restore",
                json!({"snapshot": "1700000000-ab12", "remove_new": true}),
            ),
        ] {
            let (st, res) = t.send(Method::POST, "/api/v1/tasks", &op, &body).await;
            assert_eq!(st, StatusCode::CREATED, "[{b}] {body}: {res}");
        }
        let kinds: Vec<String> = s
            .list_tasks(&srv.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(kinds.len(), 3, "[{b}] {kinds:?}");
    }
}

#[tokio::test]
async fn the_openapi_document_has_the_ransom_routes() {
    let (_, t) = apps().await.remove(0);
    let (st, doc, _) = t.call(Method::GET, "/api/v1/openapi.json", &[], None).await;
    assert_eq!(st, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/projects/{id}/ransom-policy", "get"),
        ("/api/v1/projects/{id}/ransom-policy", "put"),
        ("/api/v1/servers/{id}/ransom", "get"),
        ("/api/v1/servers/{id}/backups", "post"),
        ("/api/v1/servers/{id}/backups/restore", "post"),
    ] {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{method} {path} missing"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "ServerRansom",
        "BackupTask",
        "RansomPolicyBody",
        "RestoreBody",
    ] {
        assert!(schemas.get(schema).is_some(), "{schema} missing");
    }
    // The restore body's description is the wire type's fields, no more, no fewer.
    let mut documented: Vec<String> = schemas["RestoreBody"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut wire: Vec<String> = serde_json::to_value(RestoreRequest::default())
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    documented.sort();
    wire.sort();
    assert_eq!(documented, wire);
}
