//! The server's SSH whitelist page: the router in-process on a real store (SQLite always,
//! PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login
//! form, forms sent from a known peer address as the console's listener gives it.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::console::testutil::{body, envs, location};

const PEER: &str = "192.0.2.44:50000";

fn from_peer(mut req: Request<Body>) -> Request<Body> {
    let peer: SocketAddr = PEER.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn post(uri: &str, cookie: &str, form: &str) -> Request<Body> {
    from_peer(
        Request::post(uri)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap(),
    )
}

#[tokio::test]
async fn the_page_says_where_you_are_and_refuses_a_list_that_locks_you_out() {
    for e in envs().await {
        let b = e.backend;
        let store = e.state.store.clone();
        let p = store.ensure_project("default").await.unwrap();
        let other = store.ensure_project("other").await.unwrap();
        e.user("vera", &p.id, Some("viewer")).await;
        e.user("ada", &p.id, Some("admin")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let uri = format!("/servers/{}/ssh-whitelist", srv.id);
        e.assert_pages_need_a_session(&[&uri]).await;

        // A viewer reads it; the tab is on the server's pages; the form is refused.
        let (cookie, csrf) = e.login("vera").await;
        let html = e.page(&uri, &cookie).await;
        assert!(html.contains(r#"data-enabled="false""#), "[{b}] {html}");
        assert!(html.contains(r#"id="read-only""#), "[{b}]");
        assert!(!html.contains(r#"id="save-ssh-whitelist""#), "[{b}]");
        let overview = e.page(&format!("/servers/{}", srv.id), &cookie).await;
        assert!(overview.contains(&format!(r#"href="{uri}""#)), "[{b}]");
        let form = format!("csrf={csrf}&addrs=192.0.2.44&enabled=1");
        let res = e.send(post(&uri, &cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");

        // Another project's admin: not found.
        let (cookie, csrf) = e.login("oscar").await;
        assert_eq!(
            e.get(&uri, &cookie).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let form = format!("csrf={csrf}&addrs=192.0.2.44&enabled=1");
        let res = e.send(post(&uri, &cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(store.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");

        // The admin sees the address the center sees them at.
        let (cookie, csrf) = e.login("ada").await;
        let res = e
            .send(from_peer(
                Request::get(&uri)
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap(),
            ))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("sees you at <code>192.0.2.44</code>"),
            "[{b}] {html}"
        );
        e.assert_posts_need_csrf(&cookie, &[(uri.clone(), "addrs=10.0.0.1&enabled=1".into())])
            .await;

        // A list without that address: refused naming it, the typed text stays, nothing stored.
        let form = format!("csrf={csrf}&addrs=198.51.100.0/24&enabled=1");
        let res = e.send(post(&uri, &cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        let html = body(res).await;
        assert!(html.contains(r#"id="form-error""#), "[{b}] {html}");
        assert!(html.contains("does not hold 192.0.2.44"), "[{b}] {html}");
        assert!(html.contains("198.51.100.0/24</textarea>"), "[{b}]");
        assert_eq!(store.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");

        // A bad line is refused naming it.
        let form = format!("csrf={csrf}&addrs=192.0.2.44%0Anot-an-ip&enabled=1");
        let res = e.send(post(&uri, &cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("addrs[1]:"), "[{b}] {html}");
        assert_eq!(store.ssh_whitelist(&srv.id).await.unwrap(), None, "[{b}]");

        // Saved with the admin's address in a prefix; the agent's report shows on the page.
        let form = format!("csrf={csrf}&addrs=192.0.2.0/24%0D%0A2001:db8::/32&enabled=1");
        let res = e.send(post(&uri, &cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=saved"), "[{b}]");
        let row = store.ssh_whitelist(&srv.id).await.unwrap().unwrap();
        assert_eq!(
            (row.enabled, row.addrs.clone()),
            (
                true,
                vec!["192.0.2.0/24".to_string(), "2001:db8::/32".to_string()]
            ),
            "[{b}]"
        );
        e.heartbeat(
            &srv.id,
            "ssh_whitelist",
            Some(json!({"state": "applied", "addrs": 2, "ports": [22, 2222]})),
        )
        .await;
        let html = e.page(&format!("{uri}?done=saved"), &cookie).await;
        assert!(html.contains(r#"id="flash""#), "[{b}]");
        assert!(html.contains(r#"data-enabled="true""#), "[{b}]");
        assert!(html.contains(r#"data-state="applied""#), "[{b}] {html}");
        assert!(html.contains("sshd port(s) 22, 2222"), "[{b}] {html}");
    }
}
