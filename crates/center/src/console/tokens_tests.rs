//! Console tests of enrollment tokens and re-installs: limits and states on the list, and the
//! server page's Re-install, which only admins get and which shows a one-time command once.

use axum::http::StatusCode;

use super::testutil::{body, envs};

#[tokio::test]
async fn reinstall_is_an_admins_one_time_command_and_the_list_shows_limits() {
    for e in envs().await {
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let (admin, csrf) = e.login("ada").await;
        let (viewer, viewer_csrf) = e.login("vic").await;

        let page = e.page(&format!("/servers/{}", srv.id), &admin).await;
        assert!(
            page.contains("id=\"reinstall-form\""),
            "[{}] admins get Re-install",
            e.backend
        );
        let page = e.page(&format!("/servers/{}", srv.id), &viewer).await;
        assert!(
            !page.contains("reinstall-form"),
            "[{}] viewers do not",
            e.backend
        );
        let res = e
            .post_form(
                &format!("/servers/{}/reinstall", srv.id),
                &viewer,
                &format!("csrf={viewer_csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{}]", e.backend);
        let res = e
            .post_form(
                &format!("/servers/{}/reinstall", srv.id),
                &admin,
                "csrf=wrong",
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{}] CSRF", e.backend);

        let res = e
            .post_form(
                &format!("/servers/{}/reinstall", srv.id),
                &admin,
                &format!("csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "[{}]", e.backend);
        let html = body(res).await;
        assert!(
            html.contains("Re-install of web-1"),
            "[{}] {html}",
            e.backend
        );
        assert!(html.contains("id=\"install-command\""), "[{}]", e.backend);

        let list = e.page("/tokens", &admin).await;
        assert!(
            list.contains("re-install of web-1"),
            "[{}] {list}",
            e.backend
        );
        assert!(
            list.contains("0 of 1"),
            "[{}] a re-install token has one use",
            e.backend
        );
        assert!(!list.contains("0 = never"), "[{}]", e.backend);
    }
}
