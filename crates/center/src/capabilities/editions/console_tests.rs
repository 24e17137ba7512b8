//! The edition and policy group pages, on both backends: sessions and CSRF, quotas saved and
//! refused from the form, a server bound and assigned from its Edition tab, a group created,
//! edited and deleted.

use axum::http::StatusCode;
use hostward_store::status::{ONLINE, StopHint};

use crate::console::testutil::{body, envs, form, has_escaped, location};

#[tokio::test]
async fn editions_and_groups_are_managed_from_the_console() {
    for e in envs().await {
        let b = e.backend;
        let s = &e.state.store;
        let p = s.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let web = e.server(&p.id, "web-1").await;
        let tab = format!("/servers/{}/edition", web.id);
        e.assert_pages_need_a_session(&["/editions", &tab, "/policy-groups"])
            .await;
        let (cookie, csrf) = e.login("ada").await;
        e.assert_posts_need_csrf(
            &cookie,
            &[
                ("/editions".into(), form(&[("project", &p.id)])),
                (tab.clone(), form(&[("edition", "basic")])),
                (format!("/servers/{}/policy-group", web.id), String::new()),
                (
                    "/policy-groups".into(),
                    form(&[("project", &p.id), ("name", "x")]),
                ),
            ],
        )
        .await;
        assert_eq!(
            s.project_editions(&p.id)
                .await
                .unwrap()
                .default_edition
                .as_str(),
            "wtp",
            "[{b}]"
        );

        // Quotas: a bad number is named, a good change is saved.
        let html = e.page("/editions", &cookie).await;
        assert!(
            html.contains("id=\"quotas\"") && html.contains("id=\"matrix\""),
            "[{b}]"
        );
        let res = e
            .post_form(
                "/editions",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("project", &p.id),
                    ("default_edition", "premium"),
                    ("quota_premium", "two"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            has_escaped(
                &body(res).await,
                "quotas.premium: \"two\" is not a whole number"
            ),
            "[{b}]"
        );
        let res = e
            .post_form(
                "/editions",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("project", &p.id),
                    ("default_edition", "premium"),
                    ("quota_premium", "5"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let got = s.project_editions(&p.id).await.unwrap();
        assert_eq!(got.default_edition.as_str(), "premium", "[{b}]");
        assert!(
            got.quotas
                .iter()
                .any(|q| q.edition.as_str() == "premium" && q.total == Some(5)),
            "[{b}]"
        );

        // The Edition tab: offline, no form; online, bind premium.
        let html = e.page(&tab, &cookie).await;
        assert!(html.contains("id=\"bind-offline\""), "[{b}]");
        s.set_agent_status(&web.id, ONLINE, "", StopHint::None)
            .await
            .unwrap();
        let res = e
            .post_form(
                &tab,
                &cookie,
                &form(&[("csrf", &csrf), ("edition", "premium")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{tab}?done=bound"), "[{b}]");
        let html = e.page(&format!("{tab}?done=bound"), &cookie).await;
        assert!(
            html.contains("data-edition=\"premium\"") && html.contains("id=\"group-form\""),
            "[{b}]"
        );

        // A group from the list page, edited as JSON (a refusal keeps the text), assigned.
        let res = e
            .post_form(
                "/policy-groups",
                &cookie,
                &form(&[("csrf", &csrf), ("project", &p.id), ("name", "web tier")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let group = location(&res).split('?').next().unwrap().to_string();
        let gid = group.trim_start_matches("/policy-groups/").to_string();
        let html = e.page(&group, &cookie).await;
        assert!(html.contains("id=\"policy-fim\""), "[{b}]");
        let res = e
            .post_form(
                &format!("{group}/policies/fim"),
                &cookie,
                &form(&[("csrf", &csrf), ("policy", "{\"enabled\": tru")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("fim: not JSON") && has_escaped(&html, "{\"enabled\": tru"),
            "[{b}]"
        );
        let res = e
            .post_form(
                &format!("{group}/policies/fim"),
                &cookie,
                &form(&[("csrf", &csrf), ("policy", "{\"enabled\": true}")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let res = e
            .post_form(
                &format!("/servers/{}/policy-group", web.id),
                &cookie,
                &form(&[("csrf", &csrf), ("group", &gid)]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            s.server(&web.id)
                .await
                .unwrap()
                .unwrap()
                .policy_group_id
                .as_deref(),
            Some(gid.as_str()),
            "[{b}]"
        );
        let html = e.page("/policy-groups", &cookie).await;
        assert!(html.contains("web tier"), "[{b}]");

        // A viewer sees, and is refused.
        let (vcookie, vcsrf) = e.login("vic").await;
        let html = e.page("/editions", &vcookie).await;
        assert!(!html.contains("id=\"save-editions\""), "[{b}]");
        let res = e
            .post_form(
                &tab,
                &vcookie,
                &form(&[("csrf", &vcsrf), ("edition", "basic")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(
            s.server(&web.id).await.unwrap().unwrap().edition,
            "premium",
            "[{b}]"
        );
    }
}
