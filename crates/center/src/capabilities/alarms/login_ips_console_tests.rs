//! The server's usual-login-addresses page: the router in-process on a real store (SQLite
//! always, PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the
//! login form, a learned address stored the way the gateway stores an agent's record.

use axum::http::StatusCode;
use hostward_proto::Message;
use hostward_proto::bruteforce::LoginIp;

use crate::console::testutil::{body, envs, location};

#[tokio::test]
async fn the_list_shows_origins_and_admins_edit_it_through_the_form() {
    for e in envs().await {
        let b = e.backend;
        let store = e.state.store.clone();
        let p = store.ensure_project("default").await.unwrap();
        let other = store.ensure_project("other").await.unwrap();
        e.user("vera", &p.id, Some("viewer")).await;
        e.user("ada", &p.id, Some("admin")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let rec = Message::LoginIp(LoginIp {
            ts: 1,
            addr: "192.0.2.1".into(),
            user: "alice".into(),
            service: "ssh".into(),
        });
        store.store_records(&srv.id, &[(1, rec)]).await.unwrap();
        let uri = format!("/servers/{}/login-ips", srv.id);

        // A viewer sees the list read-only; the overview links to it.
        let (cookie, csrf) = e.login("vera").await;
        let html = e.page(&uri, &cookie).await;
        assert!(
            html.contains(r#"data-addr="192.0.2.1" data-origin="learned""#),
            "[{b}] {html}"
        );
        assert!(html.contains(r#"data-learning="true""#), "[{b}]");
        assert!(html.contains(r#"id="read-only""#), "[{b}]");
        assert!(!html.contains(r#"id="save-login-ips""#), "[{b}]");
        let overview = e.page(&format!("/servers/{}", srv.id), &cookie).await;
        assert!(overview.contains(&format!(r#"href="{uri}""#)), "[{b}]");
        let form = format!("csrf={csrf}&ips=10.0.0.1&learning=1");
        let res = e.post_form(&uri, &cookie, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");

        // Another project's admin: not found, for the page and the form.
        let (cookie, csrf) = e.login("oscar").await;
        assert_eq!(
            e.get(&uri, &cookie).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let form = format!("csrf={csrf}&ips=10.0.0.1&learning=1");
        let res = e.post_form(&uri, &cookie, &form).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
        let before = store.server_login_ips(&srv.id).await.unwrap();
        assert_eq!(before.items.len(), 1, "[{b}]");

        // The admin: a bad line is refused naming it, the typed text stays, nothing changes.
        let (cookie, csrf) = e.login("ada").await;
        let html = e.page(&uri, &cookie).await;
        assert!(html.contains(r#"id="save-login-ips""#), "[{b}]");
        let res = e
            .post_form(
                &uri,
                &cookie,
                &format!("csrf={csrf}&ips=192.0.2.1%0Anot-an-ip&learning=1"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("ips[1]: &quot;not-an-ip&quot;")
                || html.contains("ips[1]: &#34;not-an-ip&#34;"),
            "[{b}] {html}"
        );
        assert!(html.contains("not-an-ip</textarea>"), "[{b}]");
        assert_eq!(
            store.server_login_ips(&srv.id).await.unwrap(),
            before,
            "[{b}]"
        );
        // Without the token: refused.
        let res = e.post_form(&uri, &cookie, "ips=10.0.0.1&learning=1").await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");

        // Saved: the learned entry keeps its origin, the new one is the admin's, learning off.
        let res = e
            .post_form(
                &uri,
                &cookie,
                &format!("csrf={csrf}&ips=192.0.2.1%0D%0A2001:db8::/32%0A%0A"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{uri}?done=saved"), "[{b}]");
        let list = store.server_login_ips(&srv.id).await.unwrap();
        assert!(!list.learning, "[{b}]");
        assert_eq!(list.items[0], before.items[0], "[{b}]");
        assert_eq!(
            (
                list.items[1].addr.as_str(),
                list.items[1].origin.as_str(),
                list.items[1].added_by.as_deref()
            ),
            ("2001:db8::/32", "manual", Some("ada")),
            "[{b}]"
        );
        let html = e.page(&format!("{uri}?done=saved"), &cookie).await;
        assert!(html.contains(r#"id="flash""#), "[{b}]");
        assert!(html.contains(r#"data-learning="false""#), "[{b}]");
        assert!(
            html.contains(r#"data-addr="2001:db8::/32" data-origin="manual""#),
            "[{b}]"
        );
    }
}
