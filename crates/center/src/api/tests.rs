//! Handler-level tests: the router on a real store, driven with `oneshot`.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::testutil::{PASSWORD, app, app_with};
use crate::auth::Role;
use hostward_store::NewServer;

#[tokio::test]
async fn other_projects_are_invisible_and_roles_are_enforced() {
    let t = app().await;
    let s = &t.state.store;
    let a = s.ensure_project("a").await.unwrap();
    let b = s.ensure_project("b").await.unwrap();
    let srv_a = s
        .create_server(&NewServer {
            project_id: a.id.clone(),
            name: "web-a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let srv_b = s
        .create_server(&NewServer {
            project_id: b.id.clone(),
            name: "web-b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let viewer = t.user("vic", &[(&b.id, Role::Viewer)]).await;
    let tok = t.token(&viewer).await;

    let (st, body) = t.get(&format!("/api/v1/servers/{}", srv_a.id), &tok).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    let (st, body) = t
        .get(&format!("/api/v1/servers/{}/tasks", srv_a.id), &tok)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

    let (st, body) = t.get("/api/v1/servers", &tok).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-b"]);
    assert_eq!(body["total"], 1);
    let (_, body) = t
        .get(&format!("/api/v1/servers?project={}", a.id), &tok)
        .await;
    assert_eq!(
        body["total"], 0,
        "filtering on a foreign project shows nothing"
    );

    let (st, body) = t.get(&format!("/api/v1/servers/{}", srv_b.id), &tok).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "web-b");
    assert!(
        body["history"].as_array().is_some_and(|h| !h.is_empty()),
        "{body}"
    );

    // Seeing is not acting.
    let uri = format!("/api/v1/servers/{}/protection", srv_b.id);
    let (st, body) = t
        .send(Method::PUT, &uri, &tok, r#"{"enabled":false}"#)
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{body}"
    );
    let uri = format!("/api/v1/servers/{}/protection", srv_a.id);
    assert_eq!(
        t.send(Method::PUT, &uri, &tok, r#"{"enabled":false}"#)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (_, body) = t.get("/api/v1/projects", &tok).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["items"][0]["role"], "viewer");
}

#[tokio::test]
async fn bad_bodies_and_queries_are_400_naming_the_field() {
    let t = app().await;
    let p = t.state.store.ensure_project("default").await.unwrap();
    let op = t.user("oscar", &[(&p.id, Role::Operator)]).await;
    let tok = t.token(&op).await;

    let (st, body) = t
        .send(Method::POST, "/api/v1/servers", &tok, r#"{"name": 1}"#)
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );

    let (st, body) = t
        .send(
            Method::POST,
            "/api/v1/servers",
            &tok,
            r#"{"name": "x", "ip_addresses": ["10.0.0.1", "nope"]}"#,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("ip_addresses[1]"),
        "{body}"
    );

    let (st, body) = t
        .send(Method::POST, "/api/v1/servers", &tok, "{not json")
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body")),
        "{body}"
    );

    let (st, body) = t.get("/api/v1/servers?per_page=lots", &tok).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per_page"),
        "{body}"
    );
    let (st, body) = t.get("/api/v1/servers?status=sleeping", &tok).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("status"),
        "{body}"
    );

    let (st, body) = t
        .send(
            Method::POST,
            "/api/v1/servers",
            &tok,
            r#"{"name": "web-1", "region": "eu"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["agent_status"], "not_installed");
    let (st, body) = t
        .send(
            Method::POST,
            "/api/v1/tasks",
            &tok,
            r#"{"all": true, "kind": "reboot"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("kind"),
        "{body}"
    );
    let (st, body) = t
        .send(
            Method::POST,
            "/api/v1/tasks",
            &tok,
            r#"{"all": true, "kind": "ping"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let task_id = body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.get(&format!("/api/v1/tasks/{task_id}"), &tok).await.1["state"],
        "queued"
    );

    let audit = t
        .state
        .store
        .list_audit(Some(std::slice::from_ref(&p.id)), 10)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["task.create", "server.create"]);
    assert_eq!(audit[0].username, "oscar");
    assert_eq!(audit[0].source_ip, "192.0.2.10");
}

#[tokio::test]
async fn session_cookie_needs_csrf_header_for_unsafe_methods() {
    let t = app().await;
    let p = t.state.store.ensure_project("default").await.unwrap();
    t.user("olga", &[(&p.id, Role::Operator)]).await;

    let (st, _, _) = t.call(Method::GET, "/api/v1/me", &[], None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    let login = json!({"username": "olga", "password": PASSWORD}).to_string();
    let (st, body, headers) = t
        .call(Method::POST, "/api/v1/session", &[], Some(&login))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let set_cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.starts_with("__Host-hostward_session=") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = body["csrf_token"].as_str().unwrap().to_string();

    let (st, me, _) = t
        .call(Method::GET, "/api/v1/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(
        (st, me["username"].as_str()),
        (StatusCode::OK, Some("olga")),
        "{me}"
    );

    let create = r#"{"name": "web-1"}"#;
    let (st, body, _) = t
        .call(
            Method::POST,
            "/api/v1/servers",
            &[("cookie", &cookie)],
            Some(create),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed")),
        "{body}"
    );
    let (st, _, _) = t
        .call(
            Method::POST,
            "/api/v1/servers",
            &[("cookie", &cookie), ("x-csrf-token", "wrong")],
            Some(create),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body, _) = t
        .call(
            Method::POST,
            "/api/v1/servers",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(create),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    let (st, _, headers) = t
        .call(
            Method::DELETE,
            "/api/v1/session",
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(
        headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (st, _, _) = t
        .call(Method::GET, "/api/v1/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "the session is gone after logout"
    );
}

#[tokio::test]
async fn failed_logins_lock_the_account_for_the_source_and_answer_like_unknown_users() {
    let t = app_with(|c| {
        c.login_max_failures = 2;
        c.lockout_secs = 600;
    })
    .await;
    t.user("lena", &[]).await;
    let bad = json!({"username": "lena", "password": "not the password"}).to_string();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (st, body, _) = t
            .call(Method::POST, "/api/v1/session", &[], Some(&bad))
            .await;
        answers.push((st, body));
    }
    let good = json!({"username": "lena", "password": PASSWORD}).to_string();
    let (st, locked, _) = t
        .call(Method::POST, "/api/v1/session", &[], Some(&good))
        .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "locked even with the right password"
    );
    let ghost = json!({"username": "nobody", "password": PASSWORD}).to_string();
    let (st, unknown, _) = t
        .call(Method::POST, "/api/v1/session", &[], Some(&ghost))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    for (st, body) in &answers {
        assert_eq!((*st, body), (StatusCode::UNAUTHORIZED, &unknown));
    }
    assert_eq!(locked, unknown, "locked and unknown answer alike");
    assert_eq!(unknown["error"]["code"], "bad_credentials");
    let audit = t.state.store.list_audit(None, 10).await.unwrap();
    let count = |action: &str| audit.iter().filter(|a| a.action == action).count();
    assert_eq!(
        count("auth.login_failed"),
        3,
        "2 wrong passwords and the unknown user"
    );
    assert_eq!(
        count("auth.login_locked"),
        2,
        "refused unchecked: 1 wrong and the right one"
    );
    assert!(
        audit
            .iter()
            .all(|a| !a.detail.contains(PASSWORD) && !a.target.contains(PASSWORD))
    );
}

#[tokio::test]
async fn enrollment_with_token_checks_and_cidrs() {
    let t = app().await;
    let p = t.state.store.ensure_project("default").await.unwrap();
    let admin = t.user("ada", &[(&p.id, Role::Admin)]).await;
    let tok = t.token(&admin).await;
    let body =
        json!({"name": "lab", "region": "eu", "allowed_cidrs": ["192.0.2.0/24"]}).to_string();
    let (st, created) = t
        .send(Method::POST, "/api/v1/enrollment-tokens", &tok, &body)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hwe_"));
    assert!(
        created["install_command"]
            .as_str()
            .unwrap()
            .contains(&secret)
    );
    let (_, list) = t.get("/api/v1/enrollment-tokens", &tok).await;
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once"
    );

    let (_, csr) = hostward_pki::agent_key_and_csr("web-9").unwrap();
    let facts = hostward_proto::HostFacts {
        hostname: "web-9".into(),
        ips: vec!["192.0.2.9".into()],
        ..Default::default()
    };
    let req = |token: &str| {
        serde_json::to_string(&hostward_proto::EnrollRequest {
            token: token.into(),
            csr_pem: csr.clone(),
            facts: facts.clone(),
            install_id: Some("i-1".into()),
        })
        .unwrap()
    };
    let inside: std::net::SocketAddr = "192.0.2.77:5000".parse().unwrap();
    let outside: std::net::SocketAddr = "198.51.100.1:5000".parse().unwrap();

    let (st, body, _) = t
        .call_from(
            outside,
            Method::POST,
            "/api/v1/enroll",
            &[],
            Some(&req(&secret)),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("cidr_not_allowed")),
        "{body}"
    );
    let (st, body, _) = t
        .call_from(
            inside,
            Method::POST,
            "/api/v1/enroll",
            &[],
            Some(&req("hwe_guess")),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "{body}"
    );
    let bad_csr = json!({"token": secret, "csr_pem": "garbage", "facts": facts}).to_string();
    let (st, body, _) = t
        .call_from(inside, Method::POST, "/api/v1/enroll", &[], Some(&bad_csr))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_csr")),
        "{body}"
    );

    let report =
        json!({"token": secret, "install_id": "i-1", "hostname": "web-9", "status": "installing"})
            .to_string();
    let (st, body, _) = t
        .call_from(
            inside,
            Method::POST,
            "/api/v1/enroll/report",
            &[],
            Some(&report),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");

    let (st, body, _) = t
        .call_from(
            inside,
            Method::POST,
            "/api/v1/enroll",
            &[],
            Some(&req(&secret)),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let resp: hostward_proto::EnrollResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.gateway_url, t.state.config.gateway_url);
    assert!(resp.cert_pem.contains("BEGIN CERTIFICATE"));
    let srv = t
        .state
        .store
        .server(&resp.server_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (srv.agent_id.as_deref(), srv.region.as_str()),
        (Some(resp.agent_id.as_str()), "eu")
    );

    let id = created["id"].as_str().unwrap();
    let (st, _, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{id}"),
            &[("authorization", &format!("Bearer {tok}"))],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body, _) = t
        .call_from(
            inside,
            Method::POST,
            "/api/v1/enroll",
            &[],
            Some(&req(&secret)),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked")),
        "{body}"
    );
    assert_eq!(
        t.state
            .store
            .enrollment_token(id)
            .await
            .unwrap()
            .unwrap()
            .uses,
        1
    );

    // Revoking the agent through the API.
    let (st, body) = t
        .send(
            Method::POST,
            &format!("/api/v1/servers/{}/revoke", srv.id),
            &tok,
            "{}",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["agent_reason"], "revoked");
}

#[tokio::test]
async fn users_roles_and_api_tokens() {
    let t = app().await;
    let a = t.state.store.ensure_project("a").await.unwrap();
    let b = t.state.store.ensure_project("b").await.unwrap();
    let root = t.superadmin("root").await;
    let root_tok = t.token(&root).await;
    let admin_a = t.user("anna", &[(&a.id, Role::Admin)]).await;
    let anna = t.token(&admin_a).await;

    let body = json!({"username": "bob", "password": "short"}).to_string();
    let (st, e) = t
        .send(Method::POST, "/api/v1/users", &root_tok, &body)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("password"),
        "{e}"
    );
    let body =
        json!({"username": "bob", "password": PASSWORD, "project_id": b.id, "role": "viewer"})
            .to_string();
    assert_eq!(
        t.send(Method::POST, "/api/v1/users", &anna, &body).await.0,
        StatusCode::FORBIDDEN,
        "only superadmins create users"
    );
    let (st, bob) = t
        .send(Method::POST, "/api/v1/users", &root_tok, &body)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{bob}");
    let bob_id = bob["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.send(Method::POST, "/api/v1/users", &root_tok, &body)
            .await
            .0,
        StatusCode::CONFLICT
    );

    // Anna administers a, not b: she cannot touch his role in b, and cannot adopt bob into a
    // while he shares none of her projects (only superadmins manage such users).
    let uri = format!("/api/v1/users/{bob_id}/roles");
    let (st, e) = t
        .send(
            Method::PUT,
            &uri,
            &anna,
            &json!({"project_id": b.id, "role": "admin"}).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    let (st, e) = t
        .send(
            Method::PUT,
            &uri,
            &anna,
            &json!({"project_id": a.id, "role": "superuser"}).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("role"),
        "{e}"
    );
    let operator = json!({"project_id": a.id, "role": "operator"}).to_string();
    let (st, e) = t.send(Method::PUT, &uri, &anna, &operator).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    let viewer = json!({"project_id": a.id, "role": "viewer"}).to_string();
    let (st, e) = t.send(Method::PUT, &uri, &root_tok, &viewer).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{e}");
    let (st, _) = t.send(Method::PUT, &uri, &anna, &operator).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "bob shares a with anna now");
    let (_, users) = t.get("/api/v1/users", &anna).await;
    let bob_seen = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(
        bob_seen["roles"].as_array().unwrap().len(),
        1,
        "anna sees only roles in her projects: {bob_seen}"
    );
    // Bob is also in b, so anna may not reset his password.
    let pw = json!({"password": "another long password"}).to_string();
    assert_eq!(
        t.send(
            Method::PUT,
            &format!("/api/v1/users/{bob_id}/password"),
            &anna,
            &pw
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.send(
            Method::PUT,
            &format!("/api/v1/users/{bob_id}/password"),
            &root_tok,
            &pw
        )
        .await
        .0,
        StatusCode::OK
    );

    // Own API tokens.
    let (st, created) = t
        .send(
            Method::POST,
            "/api/v1/api-tokens",
            &anna,
            r#"{"name": "ci"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hwa_"));
    assert_eq!(t.get("/api/v1/me", &secret).await.1["username"], "anna");
    let id = created["id"].as_str().unwrap();
    let (st, _, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/api-tokens/{id}"),
            &[("authorization", &format!("Bearer {root_tok}"))],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another user's token");
    let (st, _, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/api-tokens/{id}"),
            &[("authorization", &format!("Bearer {anna}"))],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/api/v1/me", &secret).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (st, _, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{bob_id}"),
            &[("authorization", &format!("Bearer {root_tok}"))],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let t = app().await;
    let (st, doc, _) = t.call(Method::GET, "/api/v1/openapi.json", &[], None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/servers",
        "/api/v1/servers/{id}",
        "/api/v1/enroll",
        "/api/v1/tasks",
        "/api/v1/users/{id}/roles",
        "/api/v1/servers/{id}/inventory",
        "/api/v1/servers/{id}/inventory/{kind}",
        "/api/v1/servers/{id}/inventory/changes",
        "/api/v1/inventory/changes",
        "/api/v1/assets/{kind}",
        "/api/v1/assets/{kind}/servers",
        "/api/v1/projects/{id}/inventory-policy",
        "/api/v1/servers/{id}/login-ips",
        "/api/v1/servers/{id}/ssh-whitelist",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test]
async fn inventory_queries_and_policies_reject_bad_input_naming_the_field() {
    use hostward_proto::inventory::{Inventory, Items, Port, PortRisk};
    use hostward_store::NewServer;
    let t = app().await;
    let p = t.state.store.ensure_project("default").await.unwrap();
    let admin = t.user("ada", &[(&p.id, Role::Admin)]).await;
    let tok = t.token(&admin).await;
    let srv = t
        .state
        .store
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let port = |n: u16, program: &str| Port {
        protocol: "tcp".into(),
        family: "v4".into(),
        address: "0.0.0.0".into(),
        port: n,
        state: "listen".into(),
        pid: Some(1),
        program: Some(program.into()),
        risk: PortRisk::Unknown,
        risk_reason: None,
    };
    let rec = hostward_proto::Message::Inventory(Inventory {
        collected_at: 1,
        full: true,
        base: String::new(),
        digest: "d".into(),
        part: 0,
        parts: 1,
        // A hostile host names its program like a spreadsheet formula.
        items: Items::Ports(vec![
            port(22, "/usr/sbin/sshd"),
            port(6379, "=HYPERLINK(\"http://x\")"),
        ]),
        removed: vec![],
        issues: vec![],
    });
    t.state
        .store
        .store_records(&srv.id, &[(1, rec)])
        .await
        .unwrap();

    let base = format!("/api/v1/servers/{}/inventory", srv.id);
    for (path, field) in [
        (format!("{base}/secrets"), "kind"),
        (format!("{base}/ports?format=xml"), "format"),
        (format!("{base}/ports?page=0"), "page"),
        (format!("{base}/ports?per_page=5000"), "per_page"),
        (format!("{base}/changes?change=moved"), "change"),
        (format!("{base}/changes?kind=nope"), "kind"),
        ("/api/v1/assets/nope".to_string(), "kind"),
        ("/api/v1/assets/software/servers".to_string(), "name"),
    ] {
        let (st, body) = t.get(&path, &tok).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{path}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{path}: {body}"
        );
    }
    let (st, body) = t.get(&format!("{base}/ports?q=sshd"), &tok).await;
    assert_eq!(
        (st, body["total"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (st, body) = t.get("/api/v1/assets/ports?q=6379", &tok).await;
    assert_eq!(
        (st, body["items"][0]["name"].as_str()),
        (StatusCode::OK, Some("tcp/6379")),
        "{body}"
    );

    // CSV export: a formula-like cell is defused.
    let (st, headers, text) = t.get_text(&format!("{base}/ports?format=csv"), &tok).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(text.starts_with("name,value,key,data\n"), "{text}");
    assert!(text.contains("'=HYPERLINK"), "{text}");

    let policy = format!("/api/v1/projects/{}/inventory-policy", p.id);
    for (body, field) in [
        (r#"{"interval_secs": {"ports": -1}}"#, "interval_secs"),
        (
            r#"{"interval_secs": {"ports": 99999999}}"#,
            "interval_secs.ports",
        ),
        (r#"{"interval_secs": {"secrets": 5}}"#, "secrets"),
        (r#"{"ignored_ports": [70000]}"#, "ignored_ports"),
        (r#"{"interval": {}}"#, "interval"),
    ] {
        let (st, resp) = t.send(Method::PUT, &policy, &tok, body).await;
        assert_eq!(
            (st, resp["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_body")),
            "{body}: {resp}"
        );
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {resp}"
        );
    }
    let (st, resp) = t
        .send(
            Method::PUT,
            &policy,
            &tok,
            r#"{"interval_secs": {"ports": 10}, "ignored_ports": [6379, 6379]}"#,
        )
        .await;
    assert_eq!(
        (st, resp["version"].as_i64(), resp["ignored_ports"].clone()),
        (StatusCode::OK, Some(1), serde_json::json!([6379])),
        "{resp}"
    );
    assert_eq!(resp["effective_interval_secs"]["software"], 86400, "{resp}");
}

#[tokio::test]
async fn server_login_ips_are_learned_listed_and_replaced_with_validation() {
    let t = app().await;
    let s = &t.state.store;
    let a = s.ensure_project("a").await.unwrap();
    let b = s.ensure_project("b").await.unwrap();
    let srv = s
        .create_server(&NewServer {
            project_id: a.id.clone(),
            name: "web-a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let policy = hostward_proto::bruteforce::Policy {
        usual_login_ips: vec!["203.0.113.0/24".into()],
        ..Default::default()
    };
    s.set_policy(&a.id, &policy).await.unwrap();
    let viewer = t.user("vic", &[(&a.id, Role::Viewer)]).await;
    let operator = t.user("otto", &[(&a.id, Role::Operator)]).await;
    let admin = t.user("ada", &[(&a.id, Role::Admin)]).await;
    let other_admin = t.user("bob", &[(&b.id, Role::Admin)]).await;
    let (vt, ot, at, bt) = (
        t.token(&viewer).await,
        t.token(&operator).await,
        t.token(&admin).await,
        t.token(&other_admin).await,
    );
    let uri = format!("/api/v1/servers/{}/login-ips", srv.id);

    // The agent learns an address: the record path stores it.
    let rec = hostward_proto::Message::LoginIp(hostward_proto::bruteforce::LoginIp {
        ts: 1,
        addr: "192.0.2.1".into(),
        user: "alice".into(),
        service: "ssh".into(),
    });
    assert!(
        s.store_records(&srv.id, &[(1, rec)])
            .await
            .unwrap()
            .follow_ups
            .contains(&hostward_store::FollowUp::PushConfig)
    );
    let (st, body) = t.get(&uri, &vt).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["learning"], true);
    assert_eq!(body["items"][0]["addr"], "192.0.2.1");
    assert_eq!(body["items"][0]["origin"], "learned");
    assert_eq!(body["items"][0]["added_by"], serde_json::Value::Null);
    assert_eq!(body["project_ips"], json!(["203.0.113.0/24"]));
    let before = body;

    // Bad bodies: 400 naming the field, nothing changes.
    let too_many: Vec<String> = (0..21).map(|i| format!("10.0.0.{i}")).collect();
    for (bad, field) in [
        (
            json!({"ips": ["192.0.2.1", "nope"], "learning": true}).to_string(),
            "ips[1]:",
        ),
        (
            json!({"ips": ["10.0.0.0/33"], "learning": true}).to_string(),
            "ips[0]:",
        ),
        (
            json!({"ips": too_many, "learning": true}).to_string(),
            "ips:",
        ),
        (json!({"ips": ["192.0.2.1"]}).to_string(), "learning"),
        (
            json!({"ips": "192.0.2.1", "learning": true}).to_string(),
            "ips",
        ),
        (
            json!({"ips": [], "learning": "yes"}).to_string(),
            "learning",
        ),
    ] {
        let (st, body) = t.send(Method::PUT, &uri, &at, &bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{bad}: {msg}");
        if field.starts_with("ips") && field.ends_with(':') {
            assert!(msg.starts_with(field), "{bad}: {msg}");
        }
    }
    let ok = json!({"ips": ["10.1.2.3/8", "192.0.2.1", "10.0.0.0/8", "::ffff:192.0.2.1"], "learning": false})
        .to_string();
    // Operators may not edit it; another project's admin does not see the server.
    let (st, _) = t.send(Method::PUT, &uri, &ot, &ok).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = t.send(Method::PUT, &uri, &bt, &ok).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = t.get(&uri, &bt).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&uri, &vt).await.1, before);

    let version = s.server(&srv.id).await.unwrap().unwrap().config_version;
    let (st, body) = t.send(Method::PUT, &uri, &at, &ok).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["learning"], false);
    let items = body["items"].as_array().unwrap();
    let addrs: Vec<&str> = items.iter().map(|i| i["addr"].as_str().unwrap()).collect();
    assert_eq!(addrs.len(), 2, "canonical duplicates removed: {body}");
    assert!(addrs.contains(&"10.0.0.0/8") && addrs.contains(&"192.0.2.1"));
    let kept = items.iter().find(|i| i["addr"] == "192.0.2.1").unwrap();
    assert_eq!(kept, &before["items"][0], "origin and date kept");
    let added = items.iter().find(|i| i["addr"] == "10.0.0.0/8").unwrap();
    assert_eq!(
        (&added["origin"], &added["added_by"]),
        (&json!("manual"), &json!("ada"))
    );
    assert!(s.server(&srv.id).await.unwrap().unwrap().config_version > version);
    let audit = s
        .list_audit(Some(std::slice::from_ref(&a.id)), 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "server.login_ips" && e.username == "ada" && e.target == srv.id),
        "{audit:?}"
    );
    // Learning is off now: the agent's next learned address is not stored.
    let rec = hostward_proto::Message::LoginIp(hostward_proto::bruteforce::LoginIp {
        ts: 2,
        addr: "198.51.100.7".into(),
        user: "alice".into(),
        service: "ssh".into(),
    });
    assert!(
        !s.store_records(&srv.id, &[(2, rec)])
            .await
            .unwrap()
            .follow_ups
            .contains(&hostward_store::FollowUp::PushConfig)
    );
    assert_eq!(s.server_login_ips(&srv.id).await.unwrap().items.len(), 2);
}
