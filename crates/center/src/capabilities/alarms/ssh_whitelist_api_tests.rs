//! SSH login whitelist API tests on both backends (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set): the lock-out guard names the caller's address and
//! stores nothing; validation names the entry; roles, 404 across projects, audit, the config
//! section and the agent's report.

use axum::http::{Method, StatusCode};
use hostward_proto::bruteforce::SshWhitelist;
use serde_json::json;

use super::*;
use crate::api::testutil::{TestApp, apps};
use crate::auth::Role;

/// The address `TestApp::send` requests come from.
const CALLER: &str = "192.0.2.10";

async fn config_version(t: &TestApp, id: &str) -> i64 {
    t.state
        .store
        .server(id)
        .await
        .unwrap()
        .unwrap()
        .config_version
}

async fn section(t: &TestApp, id: &str) -> SshWhitelist {
    let sections = t.config_sections(id).await;
    serde_json::from_value(sections["ssh_whitelist"].clone()).unwrap()
}

#[tokio::test]
async fn a_list_that_would_lock_the_admin_out_is_refused_naming_the_address() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let uri = format!("/api/v1/servers/{}/ssh-whitelist", srv.id);
        let v0 = config_version(&t, &srv.id).await;

        let (st, body) = t.get(&uri, &admin).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            (&body["enabled"], &body["addrs"], &body["your_address"]),
            (&json!(false), &json!([]), &json!(CALLER)),
            "[{b}] {body}"
        );

        let locked_out = json!({"enabled": true, "addrs": ["198.51.100.0/24", "2001:db8::1"]});
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, &locked_out.to_string())
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        assert_eq!(body["error"]["code"], "would_lock_you_out", "[{b}] {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(CALLER), "[{b}] names the address: {msg}");
        assert!(msg.contains("nothing was changed"), "[{b}] {msg}");
        assert_eq!(s.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");
        assert_eq!(config_version(&t, &srv.id).await, v0, "[{b}]");
        assert_eq!(section(&t, &srv.id).await, SshWhitelist::default(), "[{b}]");
        assert!(
            t.audited(&a.id, "server.ssh_whitelist", "ada")
                .await
                .is_empty(),
            "[{b}]"
        );

        // The same address through a dual-stack socket is the same caller.
        let mapped = "[::ffff:192.0.2.10]:40000".parse().unwrap();
        let auth = format!("Bearer {admin}");
        let ok =
            json!({"enabled": true, "addrs": ["198.51.100.0/24", "192.0.2.0/28", "192.0.2.0/28"]});
        let (st, body, _) = t
            .call_from(
                mapped,
                Method::PUT,
                &uri,
                &[("authorization", &auth)],
                Some(&ok.to_string()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            body["addrs"],
            json!(["198.51.100.0/24", "192.0.2.0/28"]),
            "[{b}] duplicates go"
        );
        assert_eq!(body["set_by"], "ada", "[{b}]");
        assert_eq!(config_version(&t, &srv.id).await, v0 + 1, "[{b}]");
        assert_eq!(
            section(&t, &srv.id).await,
            SshWhitelist {
                enabled: true,
                addrs: vec!["198.51.100.0/24".into(), "192.0.2.0/28".into()],
            },
            "[{b}] pushed to the agent"
        );
        assert_eq!(
            t.audited(&a.id, "server.ssh_whitelist", "ada").await,
            ["enabled=true addrs=198.51.100.0/24 192.0.2.0/28"],
            "[{b}]"
        );

        // From elsewhere the stored list would lock this caller out: refused, the list stays.
        let elsewhere = "203.0.113.7:5000".parse().unwrap();
        let (st, body, _) = t
            .call_from(
                elsewhere,
                Method::PUT,
                &uri,
                &[("authorization", &auth)],
                Some(&ok.to_string()),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("203.0.113.7"),
            "[{b}] {body}"
        );
        assert_eq!(config_version(&t, &srv.id).await, v0 + 1, "[{b}]");

        // Switching it off needs no address of the caller's.
        let off = json!({"enabled": false, "addrs": []});
        let (st, body, _) = t
            .call_from(
                elsewhere,
                Method::PUT,
                &uri,
                &[("authorization", &auth)],
                Some(&off.to_string()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(section(&t, &srv.id).await, SshWhitelist::default(), "[{b}]");
    }
}

#[tokio::test]
async fn bad_lists_are_refused_naming_the_entry_and_store_nothing() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let uri = format!("/api/v1/servers/{}/ssh-whitelist", srv.id);
        let many: Vec<String> = (0..51).map(|i| format!("10.0.{i}.0/24")).collect();
        for (bad, want) in [
            (
                json!({"enabled": true, "addrs": [CALLER, "10.0.0.0/33"]}),
                "addrs[1]: \"10.0.0.0/33\": prefix length must be 0 to 32",
            ),
            (
                json!({"enabled": false, "addrs": ["web01"]}),
                "addrs[0]: \"web01\": not an IPv4 or IPv6 address or prefix",
            ),
            (
                json!({"enabled": true, "addrs": []}),
                "addrs: an enabled whitelist needs at least one address",
            ),
            (
                json!({"enabled": true, "addrs": many}),
                "addrs: at most 50 distinct addresses or prefixes, not 51",
            ),
            (json!({"enabled": true, "ips": [CALLER]}), "ips"),
        ] {
            let (st, body) = t.send(Method::PUT, &uri, &admin, &bad.to_string()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {want}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(want), "[{b}] want {want:?} in {msg:?}");
        }
        assert_eq!(s.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");
    }
}

#[tokio::test]
async fn viewers_read_admins_write_and_other_projects_see_nothing() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let theirs = t.server(&other.id, "db").await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/servers/{}/ssh-whitelist", srv.id);
        let good = json!({"enabled": true, "addrs": [CALLER]}).to_string();

        assert_eq!(t.get(&uri, &viewer).await.0, StatusCode::OK, "[{b}]");
        for tok in [&viewer, &op] {
            let (st, body) = t.send(Method::PUT, &uri, tok, &good).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "[{b}] {body}");
        }
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::PUT, &uri, &stranger, &good).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let their_uri = format!("/api/v1/servers/{}/ssh-whitelist", theirs.id);
        assert_eq!(
            t.get(&their_uri, &op).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        assert_eq!(s.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");

        // The agent's report from its last heartbeat.
        let hb = json!({"rss_bytes": 1, "ssh_whitelist": {"state": "error", "addrs": 0,
            "ports": [22], "error": "nft: no such file"}});
        s.flush_last_seen(&[(srv.id.clone(), 1_700_000_100, hb.to_string())])
            .await
            .unwrap();
        let (_, body) = t.get(&uri, &viewer).await;
        assert_eq!(body["report"]["state"], "error", "[{b}] {body}");
        assert_eq!(body["report"]["error"], "nft: no such file", "[{b}] {body}");
        assert_eq!(body["reported_at"], 1_700_000_100, "[{b}]");
    }
}

#[test]
fn the_guard_lets_an_unknown_caller_and_a_disabled_list_through() {
    let wl = SshWhitelist {
        enabled: true,
        addrs: vec!["10.0.0.0/8".into()],
    };
    assert!(lockout_guard(&wl, None).is_ok());
    assert!(lockout_guard(&wl, Some("10.9.8.7".parse().unwrap())).is_ok());
    let e = lockout_guard(&wl, Some("2001:db8::5".parse().unwrap())).unwrap_err();
    assert!(e.message.contains("2001:db8::5"), "{}", e.message);
    let off = SshWhitelist {
        enabled: false,
        ..wl
    };
    assert!(lockout_guard(&off, Some("2001:db8::5".parse().unwrap())).is_ok());
}
