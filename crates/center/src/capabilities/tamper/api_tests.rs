//! Tamper protection API tests on both backends (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set): the policy's validation, storage, audit and push into
//! the agents' config; a server's state from its heartbeat; unlock and lock with their bounds,
//! roles, audit and the `tamper_unlock` config section.

use axum::http::{Method, StatusCode};
use hostward_proto::tamper::{MAX_UNLOCK_MIN, ProtectedDir, TamperPolicy, TamperUnlock, Window};
use serde_json::json;

use crate::api::testutil::{TestApp, apps};
use crate::auth::Role;
use hostward_store::now;

fn dir(path: &str) -> ProtectedDir {
    ProtectedDir {
        path: path.into(),
        ..Default::default()
    }
}

fn good_policy() -> TamperPolicy {
    TamperPolicy {
        enabled: true,
        directories: vec![
            ProtectedDir {
                path: "/srv/www".into(),
                exclude: vec!["uploads".into()],
                exclude_types: vec!["log".into()],
            },
            dir("/var/www/html"),
        ],
        privileged: vec!["/usr/local/bin/deploy".into()],
        windows: vec![Window {
            days: vec![1, 2, 3, 4, 5],
            start: "02:00".into(),
            end: "02:30".into(),
        }],
        lock_files: false,
    }
}

async fn config_version(t: &TestApp, id: &str) -> i64 {
    t.state
        .store
        .server(id)
        .await
        .unwrap()
        .unwrap()
        .config_version
}

#[tokio::test]
async fn the_tamper_policy_is_validated_stored_audited_and_pushed() {
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
        let uri = format!("/api/v1/projects/{}/tamper-policy", a.id);

        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let defaults: TamperPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(defaults, TamperPolicy::default(), "[{b}]");
        assert!(!defaults.enabled, "[{b}] off until someone turns it on");
        let version = body["version"].as_i64().unwrap();

        // Refused whole, naming the field and index; nothing stored.
        let with = |f: &dyn Fn(&mut TamperPolicy)| {
            let mut p = good_policy();
            f(&mut p);
            serde_json::to_string(&p).unwrap()
        };
        for (bad, want) in [
            (
                with(&|p| p.directories.push(dir("/srv/www/html"))),
                "directories[2].path: \"/srv/www/html\" overlaps directories[0]",
            ),
            (
                with(&|p| p.directories[1] = dir("/srv/www/shop")),
                "directories[1].path: \"/srv/www/shop\" overlaps directories[0]",
            ),
            (
                with(&|p| p.directories[0].path = "srv/www".into()),
                "directories[0].path: \"srv/www\" is not an absolute path",
            ),
            (
                with(&|p| p.directories[1].path = "/".into()),
                "directories[1].path: \"/\" is the whole file system",
            ),
            (
                with(&|p| p.directories[1].path = "/etc".into()),
                "directories[1].path: \"/etc\" is a system directory",
            ),
            (
                with(&|p| p.directories = (0..51).map(|i| dir(&format!("/srv/site{i}"))).collect()),
                "directories: at most 50 entries, not 51",
            ),
            (
                with(&|p| p.windows[0].end = "02:04".into()),
                "windows[0]: shorter than 5 minutes",
            ),
            (
                with(&|p| p.privileged[0] = "deploy".into()),
                "privileged[0]: \"deploy\" is not an absolute path",
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
            (json!({"directory": []}), "directory"),
            (
                json!({"directories": [{"path": "/srv/x", "excludes": []}]}),
                "excludes",
            ),
            (json!({"windows": [{"days": [1], "start": 200}]}), "start"),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "[{b}] {bad}: {msg}");
        }
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");
        assert!(
            t.audited(&a.id, "tamper.policy", "ada").await.is_empty(),
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
        let stored: TamperPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(stored, good_policy(), "[{b}]");

        // The agents' config carries it as the `tamper` section, and the server's (locked)
        // unlock beside it.
        let sec = t.config_sections(&srv.id).await;
        let pushed: TamperPolicy = serde_json::from_value(sec["tamper"].clone()).unwrap();
        assert_eq!(pushed, good_policy(), "[{b}]");
        let unlock: TamperUnlock = serde_json::from_value(sec["tamper_unlock"].clone()).unwrap();
        assert_eq!(unlock.until, None, "[{b}]");
        let details = t.audited(&a.id, "tamper.policy", "ada").await;
        assert!(
            details.len() == 1 && details[0].contains("/var/www/html"),
            "[{b}] {details:?}"
        );
    }
}

#[tokio::test]
async fn servers_are_unlocked_and_locked_by_operators_within_bounds() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let theirs = t.server(&other.id, "their-web").await;
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
        let base = format!("/api/v1/servers/{}/tamper", srv.id);
        let (unlock, lock) = (format!("{base}/unlock"), format!("{base}/lock"));

        // Nothing reported, nothing unlocked, the policy off: said as such.
        let (st, body) = t.get(&base, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            (
                &body["unlock"],
                &body["report"],
                &body["reported_at"],
                &body["policy_enabled"]
            ),
            (&json!(null), &json!(null), &json!(null), &json!(false)),
            "[{b}] {body}"
        );

        // The last heartbeat's report, as stored for the server page.
        let hb = json!({"rss_bytes": 1, "tamper": {"state": "protected", "directories": 3,
            "files": 120, "refused": 4, "reverted": 1, "last_verify": 1_700_000_000,
            "problems": ["/srv/www/cache: not protected (excluded)"]}});
        s.flush_last_seen(&[(srv.id.clone(), 1_700_000_100, hb.to_string())])
            .await
            .unwrap();
        let (_, body) = t.get(&base, &viewer).await;
        assert_eq!(body["report"]["state"], "protected", "[{b}] {body}");
        assert_eq!(
            (&body["report"]["files"], &body["report"]["refused"]),
            (&json!(120), &json!(4)),
            "[{b}]"
        );
        assert_eq!(body["reported_at"], 1_700_000_100, "[{b}]");

        // Other projects' users: 404 for their servers, and ours are theirs to not see.
        for (uri, tok) in [
            (&base, &stranger),
            (&format!("/api/v1/servers/{}/tamper", theirs.id), &op),
        ] {
            assert_eq!(
                t.get(uri, tok).await.0,
                StatusCode::NOT_FOUND,
                "[{b}] {uri}"
            );
            let (st, _) = t
                .send(
                    Method::POST,
                    &format!("{uri}/unlock"),
                    tok,
                    r#"{"minutes":5}"#,
                )
                .await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {uri}");
            let (st, _) = t.send(Method::POST, &format!("{uri}/lock"), tok, "").await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {uri}");
        }
        // A viewer cannot unlock or lock.
        let (st, _) = t
            .send(Method::POST, &unlock, &viewer, r#"{"minutes":5}"#)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, _) = t.send(Method::POST, &lock, &viewer, "").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");

        // Out of bounds: refused naming the field.
        let v0 = config_version(&t, &srv.id).await;
        for bad in [
            json!({"minutes": 0}),
            json!({"minutes": -5}),
            json!({"minutes": MAX_UNLOCK_MIN + 1}),
            json!({"minutes": "ten"}),
            json!({}),
            json!({"minutes": 5, "until": 1}),
        ] {
            let (st, body) = t.send(Method::POST, &unlock, &op, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("minutes") || msg.contains("until"),
                "[{b}] {bad}: {msg}"
            );
        }
        let (_, body) = t.send(Method::POST, &unlock, &op, r#"{"minutes":0}"#).await;
        assert_eq!(
            body["error"]["message"],
            "minutes: 0 is not 1 to 1439 (an unlock lasts at most a day less a minute)",
            "[{b}]"
        );
        assert_eq!(
            config_version(&t, &srv.id).await,
            v0,
            "[{b}] nothing written"
        );
        assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "[{b}]");

        // An operator unlocks: until is set, the config moves and carries it.
        let before = now();
        let (st, body) = t
            .send(Method::POST, &unlock, &op, r#"{"minutes":30}"#)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let until = body["unlock"]["until"].as_i64().unwrap();
        assert!(
            (before + 1800..=now() + 1800).contains(&until),
            "[{b}] {until}"
        );
        assert_eq!(
            (&body["unlock"]["by"], &body["unlock"]["active"]),
            (&json!("otto"), &json!(true)),
            "[{b}]"
        );
        assert_eq!(config_version(&t, &srv.id).await, v0 + 1, "[{b}]");
        let sec = t.config_sections(&srv.id).await;
        let pushed: TamperUnlock = serde_json::from_value(sec["tamper_unlock"].clone()).unwrap();
        assert_eq!(pushed.until, Some(until), "[{b}]");
        assert_eq!(
            t.audited(&a.id, "tamper.unlock", "otto").await,
            [format!("for 30 minutes, until {until}")],
            "[{b}]"
        );
        // The other project's server is untouched.
        let sec = t.config_sections(&theirs.id).await;
        assert_eq!(sec["tamper_unlock"], json!({"until": null}), "[{b}]");

        // An admin may too, up to the bound; the later unlock replaces the earlier.
        let (st, body) = t
            .send(
                Method::POST,
                &unlock,
                &admin,
                &json!({ "minutes": MAX_UNLOCK_MIN }).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["unlock"]["by"], "ada", "[{b}]");
        assert_eq!(config_version(&t, &srv.id).await, v0 + 2, "[{b}]");

        // Lock now: cleared, pushed, audited; locking again changes nothing.
        let (st, body) = t.send(Method::POST, &lock, &op, "").await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["unlock"], json!(null), "[{b}]");
        assert_eq!(config_version(&t, &srv.id).await, v0 + 3, "[{b}]");
        let sec = t.config_sections(&srv.id).await;
        assert_eq!(sec["tamper_unlock"], json!({"until": null}), "[{b}]");
        let (st, _) = t.send(Method::POST, &lock, &op, "").await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert_eq!(config_version(&t, &srv.id).await, v0 + 3, "[{b}]");
        let locks = t.audited(&a.id, "tamper.lock", "otto").await;
        assert_eq!(locks.len(), 2, "[{b}] {locks:?}");
        assert!(
            locks.iter().any(|d| d.contains("by ada ended")),
            "[{b}] {locks:?}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_has_the_tamper_routes() {
    let (_, t) = apps().await.remove(0);
    let (st, doc, _) = t.call(Method::GET, "/api/v1/openapi.json", &[], None).await;
    assert_eq!(st, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/projects/{id}/tamper-policy", "get"),
        ("/api/v1/projects/{id}/tamper-policy", "put"),
        ("/api/v1/servers/{id}/tamper", "get"),
        ("/api/v1/servers/{id}/tamper/unlock", "post"),
        ("/api/v1/servers/{id}/tamper/lock", "post"),
    ] {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{method} {path} missing"
        );
    }
    for schema in [
        "ServerTamper",
        "UnlockView",
        "UnlockBody",
        "TamperPolicyBody",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
}
