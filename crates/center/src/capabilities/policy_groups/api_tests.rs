//! Policy groups through the REST API on both backends: copies, checked edits, assignment by
//! edition, and the config a group's server is sent.

use axum::http::{Method, StatusCode};
use hostward_proto::fim::FimPolicy;
use hostward_store::status::{ONLINE, StopHint};

use crate::api::testutil::apps;
use crate::auth::Role;

#[tokio::test]
async fn a_custom_group_is_copied_edited_assigned_and_sent() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web = t.server(&a.id, "web").await;
        let db = t.server(&a.id, "db").await;
        for srv in [&web, &db] {
            s.set_agent_status(&srv.id, ONLINE, "", StopHint::None)
                .await
                .unwrap();
        }
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        s.set_policy(
            &a.id,
            &FimPolicy {
                enabled: true,
                important_files: vec!["/etc/passwd".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let list = format!("/api/v1/projects/{}/policy-groups", a.id);

        // Names follow the reference product's rule; the refusal names it and stores nothing.
        for (name, says) in [
            (" web", "name: no space at the start or end"),
            ("web/1", "name: '/' is not allowed"),
            ("", "name: 1 to 64 characters"),
        ] {
            let body = serde_json::json!({ "name": name }).to_string();
            let (st, resp) = t.send(Method::POST, &list, &admin, &body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {name:?}: {resp}");
            assert!(
                resp["error"]["message"].as_str().unwrap().contains(says),
                "[{b}] {resp}"
            );
        }
        let (st, _) = t
            .send(Method::POST, &list, &viewer, r#"{"name":"web"}"#)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, g) = t
            .send(
                Method::POST,
                &list,
                &admin,
                r#"{"name":"web servers","description":"nginx"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {g}");
        let gid = g["id"].as_str().unwrap().to_string();
        let (st, _) = t
            .send(Method::POST, &list, &admin, r#"{"name":"web servers"}"#)
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}]");
        let (st, _) = t
            .get(&format!("/api/v1/policy-groups/{gid}"), &stranger)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");

        // The copy holds the default's file integrity policy.
        let (st, body) = t
            .get(&format!("/api/v1/policy-groups/{gid}"), &viewer)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let fim = body["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == "fim")
            .unwrap()
            .clone();
        assert_eq!(fim["policy"]["important_files"][0], "/etc/passwd", "[{b}]");

        // Edits are checked as the capability's own API checks them.
        let put = format!("/api/v1/policy-groups/{gid}/policies/fim");
        let bad = r#"{"enabled":true,"important_files":["relative/path"]}"#;
        let (st, resp) = t.send(Method::PUT, &put, &admin, bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("fim: important_files[0]"), "[{b}] {msg}");
        let (st, resp) = t
            .send(Method::PUT, &put, &admin, r#"{"enabled":true,"bogus":1}"#)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {resp}");
        let (st, _) = t
            .send(
                Method::PUT,
                &format!("/api/v1/policy-groups/{gid}/policies/nope"),
                &admin,
                "{}",
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let good = r#"{"enabled":true,"important_files":["/etc/shadow"]}"#;
        let (st, resp) = t.send(Method::PUT, &put, &admin, good).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {resp}");

        // Only editions with custom groups may leave the default.
        let assign = |id: &str| format!("/api/v1/servers/{id}/policy-group");
        let to_group = serde_json::json!({ "group_id": gid }).to_string();
        let (st, _) = t
            .send(
                Method::PUT,
                &format!("/api/v1/servers/{}/edition", db.id),
                &admin,
                r#"{"edition":"enterprise"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let (st, resp) = t
            .send(Method::PUT, &assign(&db.id), &admin, &to_group)
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains("enterprise edition"),
            "[{b}] {resp}"
        );
        let (st, resp) = t
            .send(Method::PUT, &assign(&web.id), &admin, &to_group)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {resp}");
        assert_eq!(resp["policy_group_id"], gid.as_str(), "[{b}]");

        // web gets the group's policy, db the project's.
        let c = t.config_sections(&web.id).await;
        assert_eq!(c["fim"]["important_files"][0], "/etc/shadow", "[{b}]");
        let c = t.config_sections(&db.id).await;
        assert_eq!(c["fim"]["important_files"][0], "/etc/passwd", "[{b}]");

        // A group in use stays; once empty it goes.
        let del = format!("/api/v1/policy-groups/{gid}");
        let (st, resp) = t.send(Method::DELETE, &del, &admin, "").await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {resp}");
        let (st, _) = t
            .send(
                Method::PUT,
                &assign(&web.id),
                &admin,
                r#"{"group_id":null}"#,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let (st, _) = t.send(Method::DELETE, &del, &admin, "").await;
        assert_eq!(st, StatusCode::NO_CONTENT, "[{b}]");
        let (_, body) = t.get(&list, &viewer).await;
        assert_eq!(body, serde_json::json!([]), "[{b}]");
        for action in [
            "policy_group.create",
            "policy_group.fim",
            "server.policy_group",
            "policy_group.delete",
        ] {
            assert!(
                !t.audited(&a.id, action, "ada").await.is_empty(),
                "[{b}] {action}"
            );
        }
    }
}
