//! Behaviour API tests on both backends (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set): the policy's validation, storage and push into the
//! agents' config, the isolated-file list and actions, and isolate-and-kill from an alarm.

use axum::http::{Method, StatusCode};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence, ProcessInfo};
use hostward_proto::behaviour::{BehaviourPolicy, CommandPattern};
use hostward_proto::quarantine::IsolatedFile;
use serde_json::json;

use crate::api::testutil::{TestApp, apps};
use crate::auth::Role;
use hostward_store::AlarmFilter;

fn isolated(id: &str, action: &str, path: &str) -> Message {
    Message::IsolatedFile(IsolatedFile {
        ts: 1_700_000_000,
        id: id.into(),
        action: action.into(),
        path: path.into(),
        sha256: "ab".repeat(32),
        size: 4096,
        uid: 1000,
        gid: 1000,
        mode: 0o755,
        reason: "reverse_shell".into(),
        killed: vec![4242],
    })
}

pub(crate) fn process(pid: u32, ppid: u32, exe: &str, cmdline: &str, user: &str) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid,
        exe: exe.into(),
        cmdline: cmdline.into(),
        uid: 1000,
        euid: 1000,
        user: user.into(),
        ..Default::default()
    }
}

/// A reverse shell on `server_id` with a three-process chain (the shell, bash, sshd), and a
/// brute-force alarm without any process.
async fn seed_alarms(t: &TestApp, server_id: &str) -> (String, String) {
    let shell = Message::Alarm(Alarm {
        ts: hostward_store::now() - 60,
        alarm_type: "reverse_shell".into(),
        key: "4242".into(),
        count: 1,
        evidence: Evidence {
            processes: vec![
                process(4242, 4000, "/tmp/.x/sh", "sh -i", "alice"),
                process(4000, 100, "/usr/bin/bash", "-bash", "alice"),
                process(100, 1, "/usr/sbin/sshd", "sshd: alice [priv]", "root"),
            ],
            peer: Some("192.0.2.9:4444".into()),
            ..Default::default()
        },
    });
    let brute = Message::Alarm(Alarm {
        ts: hostward_store::now() - 60,
        alarm_type: "brute_force".into(),
        key: "192.0.2.7".into(),
        count: 5,
        evidence: Evidence {
            source_ip: Some("192.0.2.7".into()),
            ..Default::default()
        },
    });
    t.state
        .store
        .store_records(server_id, &[(1, shell), (2, brute)])
        .await
        .unwrap();
    let id = |ty: &'static str| {
        let store = t.state.store.clone();
        let server_id = server_id.to_string();
        async move {
            store
                .alarms(&AlarmFilter {
                    server_id: Some(server_id),
                    alarm_type: Some(ty.into()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .0[0]
                .id
                .clone()
        }
    };
    (id("reverse_shell").await, id("brute_force").await)
}

#[tokio::test]
async fn the_behaviour_policy_is_validated_stored_audited_and_pushed() {
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
        let uri = format!("/api/v1/projects/{}/behaviour-policy", a.id);

        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let defaults: BehaviourPolicy = serde_json::from_value(body["policy"].clone()).unwrap();
        assert_eq!(defaults, BehaviourPolicy::default(), "[{b}]");
        let version = body["version"].as_i64().unwrap();

        // A malformed pattern: 400 naming the field and index; nothing stored.
        let mut bad = BehaviourPolicy::default();
        bad.commands.push(CommandPattern {
            name: "fetch".into(),
            pattern: "curl (".into(),
            severity: hostward_proto::Severity::High,
            description: String::new(),
        });
        let n = bad.commands.len() - 1;
        let (st, body) = t
            .send(
                Method::PUT,
                &uri,
                &admin,
                &serde_json::to_string(&bad).unwrap(),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!(
                "commands[{n}].pattern: \"curl (\" is not a valid pattern"
            )),
            "[{b}] {msg}"
        );
        for (bad, field) in [
            (json!({"disabled": ["everything"]}), "disabled"),
            (json!({"auto_isolat": true}), "auto_isolat"),
            (json!({"honeypot_ports": [70000]}), "honeypot_ports"),
            (json!({"scan_ports": 1}), "scan_ports"),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "[{b}] {bad}: {msg}");
        }
        assert_eq!(t.get(&uri, &viewer).await.1["version"], version, "[{b}]");

        // Only the project's admins change it; other projects' users do not see it.
        let good = BehaviourPolicy {
            disabled: ["port_scan".to_string()].into(),
            auto_isolate: true,
            honeypot_ports: vec![2323],
            ..Default::default()
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

        let (st, body) = t.send(Method::PUT, &uri, &admin, &good_json).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert!(body["version"].as_i64().unwrap() > version, "[{b}] {body}");
        let (_, body) = t.get(&uri, &viewer).await;
        assert_eq!(body["policy"]["disabled"], json!(["port_scan"]), "[{b}]");
        assert_eq!(body["policy"]["auto_isolate"], true, "[{b}]");

        // The agents' config carries it as the `behaviour` section.
        let sections = crate::capabilities::config_sections(&t.state, &srv).await;
        let pushed: BehaviourPolicy =
            serde_json::from_value(sections["behaviour"].clone()).unwrap();
        assert_eq!(pushed, good, "[{b}]");
        let audit = s
            .list_audit(Some(std::slice::from_ref(&a.id)), 10)
            .await
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.action == "behaviour.policy" && e.username == "ada"),
            "[{b}] {audit:?}"
        );
    }
}

#[tokio::test]
async fn isolated_files_are_listed_per_project_and_restored_or_deleted_by_task() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let sa = t.server(&a.id, "web-a").await;
        let sb = t.server(&other.id, "web-b").await;
        s.store_records(
            &sa.id,
            &[
                (1, isolated("q1", "isolated", "/tmp/.x/sh")),
                (2, isolated("q2", "isolated", "/tmp/miner")),
                (3, isolated("q2", "restored", "/tmp/miner")),
            ],
        )
        .await
        .unwrap();
        s.store_records(&sb.id, &[(1, isolated("q3", "isolated", "/tmp/b"))])
            .await
            .unwrap();
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;

        let files = |body: &serde_json::Value| -> Vec<String> {
            let mut v: Vec<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["file_id"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        };
        let (st, body) = t.get("/api/v1/isolated-files", &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            files(&body),
            ["q1", "q2"],
            "[{b}] the other project's file is invisible"
        );
        let q1 = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["file_id"] == "q1")
            .unwrap();
        assert_eq!(
            (&q1["server_name"], &q1["path"], &q1["mode"], &q1["killed"]),
            (
                &json!("web-a"),
                &json!("/tmp/.x/sh"),
                &json!(0o755),
                &json!([4242])
            ),
            "[{b}]"
        );
        let (_, body) = t
            .get("/api/v1/isolated-files?state=isolated", &viewer)
            .await;
        assert_eq!(files(&body), ["q1"], "[{b}]");
        let (_, body) = t
            .get(&format!("/api/v1/isolated-files?server={}", sa.id), &viewer)
            .await;
        assert_eq!(files(&body), ["q1", "q2"], "[{b}]");
        for uri in [
            format!("/api/v1/isolated-files?server={}", sb.id),
            format!("/api/v1/isolated-files?project={}", other.id),
        ] {
            assert_eq!(
                t.get(&uri, &viewer).await.0,
                StatusCode::NOT_FOUND,
                "[{b}] {uri}"
            );
        }
        let (st, body) = t.get("/api/v1/isolated-files?state=gone", &viewer).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "[{b}] {body}"
        );

        let act = |action: &str, files: serde_json::Value| {
            json!({"action": action, "files": files, "note": "checked"}).to_string()
        };
        let uri = "/api/v1/isolated-files/actions";
        let q1_key = json!([{"server_id": sa.id, "file_id": "q1"}]);
        let (st, _) = t
            .send(Method::POST, uri, &viewer, &act("restore", q1_key.clone()))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        // A file that is not isolated: 409 naming it, nothing queued.
        let (st, body) = t
            .send(
                Method::POST,
                uri,
                &op,
                &act("delete", json!([{"server_id": sa.id, "file_id": "q2"}])),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("files[0]: /tmp/miner on web-a is restored"),
            "[{b}] {msg}"
        );
        // Another project's file: 404, and nothing queued for the visible one either.
        let (st, body) = t
            .send(
                Method::POST,
                uri,
                &op,
                &act(
                    "restore",
                    json!([{"server_id": sa.id, "file_id": "q1"}, {"server_id": sb.id, "file_id": "q3"}]),
                ),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("files[1]"),
            "[{b}] {body}"
        );
        for (bad, field) in [
            (act("restore", json!([])), "files"),
            (act("shred", q1_key.clone()), "action"),
        ] {
            let (st, body) = t.send(Method::POST, uri, &op, &bad).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {body}");
            assert!(body["error"]["message"].as_str().unwrap().contains(field));
        }
        assert!(s.list_tasks(&sa.id, 10).await.unwrap().is_empty(), "[{b}]");

        for (action, kind) in [
            ("restore", "quarantine_restore"),
            ("delete", "quarantine_delete"),
        ] {
            let (st, body) = t
                .send(Method::POST, uri, &op, &act(action, q1_key.clone()))
                .await;
            assert_eq!(st, StatusCode::OK, "[{b}] {body}");
            assert_eq!(body["tasks"].as_array().unwrap().len(), 1, "[{b}] {body}");
            let task = &body["tasks"][0];
            assert_eq!(
                (
                    &task["kind"],
                    &task["params"],
                    &task["server_id"],
                    &task["created_by"]
                ),
                (
                    &json!(kind),
                    &json!({"id": "q1"}),
                    &json!(sa.id),
                    &json!("otto")
                ),
                "[{b}]"
            );
        }
        let mut queued: Vec<String> = s
            .list_tasks(&sa.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect();
        queued.sort();
        assert_eq!(queued, ["quarantine_delete", "quarantine_restore"], "[{b}]");
        assert!(s.list_tasks(&sb.id, 10).await.unwrap().is_empty(), "[{b}]");
    }
}

#[tokio::test]
async fn isolate_and_kill_queues_the_alarms_process_or_the_given_one() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let (shell, brute) = seed_alarms(&t, &srv.id).await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = "/api/v1/isolated-files/isolate";
        let body = json!({"alarm_id": shell}).to_string();

        assert_eq!(
            t.send(Method::POST, uri, &viewer, &body).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            t.send(Method::POST, uri, &stranger, &body).await.0,
            StatusCode::NOT_FOUND
        );
        let (st, resp) = t
            .send(
                Method::POST,
                uri,
                &op,
                &json!({"alarm_id": brute}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no process")
        );
        assert!(s.list_tasks(&srv.id, 10).await.unwrap().is_empty(), "[{b}]");

        let (st, resp) = t.send(Method::POST, uri, &op, &body).await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {resp}");
        assert_eq!(resp["kind"], "isolate_kill", "[{b}]");
        assert_eq!(
            resp["params"],
            json!({"pid": 4242, "path": "/tmp/.x/sh", "reason": "reverse_shell"}),
            "[{b}]"
        );
        assert_eq!(resp["server_id"], srv.id, "[{b}]");

        // By hand: a server with a pid and a path, checked like the task's params.
        let manual = json!({"server_id": srv.id, "pid": 777, "path": "/dev/shm/x"}).to_string();
        let (st, resp) = t.send(Method::POST, uri, &op, &manual).await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {resp}");
        assert_eq!(
            resp["params"],
            json!({"pid": 777, "path": "/dev/shm/x", "reason": "manual"}),
            "[{b}]"
        );
        for (bad, field) in [
            (json!({"server_id": srv.id, "pid": 1}), "pid:"),
            (json!({"server_id": srv.id, "path": "tmp/x"}), "path:"),
            (json!({"server_id": srv.id}), "pid or path"),
            (json!({"alarm_id": shell, "server_id": srv.id}), "alarm_id:"),
            (json!({"alarm_id": shell, "pid": 5}), "pid:"),
            (json!({}), "alarm_id:"),
            (json!({"alarm_id": shell, "signal": 9}), "signal"),
        ] {
            let (st, resp) = t.send(Method::POST, uri, &op, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {bad}: {resp}");
            let msg = resp["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "[{b}] {bad}: {msg}");
        }
        assert_eq!(s.list_tasks(&srv.id, 10).await.unwrap().len(), 2, "[{b}]");

        // The task kinds are offered through POST /tasks too, with the same params checks.
        let tasks = json!({"server_ids": [srv.id], "kind": "isolate_kill", "params": {"pid": 0}});
        let (st, resp) = t
            .send(Method::POST, "/api/v1/tasks", &op, &tasks.to_string())
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("params: pid")
        );
        let tasks =
            json!({"server_ids": [srv.id], "kind": "quarantine_delete", "params": {"id": "q1"}});
        let (st, resp) = t
            .send(Method::POST, "/api/v1/tasks", &op, &tasks.to_string())
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {resp}");
    }
}

#[tokio::test]
async fn the_alarm_detail_names_the_catalog_and_carries_the_process_chain() {
    for (b, t) in apps().await {
        let a = t.state.store.ensure_project("a").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let (shell, brute) = seed_alarms(&t, &srv.id).await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let (st, body) = t.get(&format!("/api/v1/alarms/{shell}"), &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["category"], "Abnormal system behaviour", "[{b}]");
        assert_eq!(body["hss_code"], "HSS 1017", "[{b}]");
        assert!(
            body["recommendation"]
                .as_str()
                .unwrap()
                .starts_with("Isolate and kill")
        );
        let chain = body["alarm"]["evidence"]["processes"].as_array().unwrap();
        let pids: Vec<i64> = chain.iter().map(|p| p["pid"].as_i64().unwrap()).collect();
        assert_eq!(pids, [4242, 4000, 100], "[{b}]");
        assert_eq!(body["alarm"]["evidence"]["peer"], "192.0.2.9:4444", "[{b}]");
        let (_, body) = t.get(&format!("/api/v1/alarms/{brute}"), &viewer).await;
        assert_eq!(body["hss_code"], "HSS 4002", "[{b}]");
    }
}

#[tokio::test]
async fn the_openapi_document_has_the_behaviour_routes() {
    let (_, t) = apps().await.remove(0);
    let (st, doc, _) = t.call(Method::GET, "/api/v1/openapi.json", &[], None).await;
    assert_eq!(st, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/projects/{id}/behaviour-policy", "get"),
        ("/api/v1/projects/{id}/behaviour-policy", "put"),
        ("/api/v1/isolated-files", "get"),
        ("/api/v1/isolated-files/actions", "post"),
        ("/api/v1/isolated-files/isolate", "post"),
    ] {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(
        doc["components"]["schemas"]
            .get("IsolatedFileRow")
            .is_some()
    );
}
