//! The dashboard page on both backends: signing in and `/` land on it; it shows the API's
//! score, the 7-day trend with "no data" for days without a snapshot, the protection overview
//! linking to the filtered server list, urgent alarms and the unprotected servers; another
//! project's dashboard is 404.

use axum::http::StatusCode;
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_store::{Snapshot, day_of, now};

use crate::auth::{Principal, Role};
use crate::console::testutil::{envs, has_url, location};

#[tokio::test]
async fn the_console_lands_on_the_dashboard_and_it_shows_the_projects_figures() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let web = e.agent_server(&p.id, "web-1").await;
        let _db = e.server(&p.id, "db-<1>").await;
        e.state
            .store
            .store_records(
                &web.id,
                &[(
                    1,
                    Message::Alarm(Alarm {
                        ts: now() - 30,
                        alarm_type: "brute_force".into(),
                        key: "192.0.2.7".into(),
                        count: 5,
                        evidence: Evidence {
                            source_ip: Some("192.0.2.7".into()),
                            ..Default::default()
                        },
                    }),
                )],
            )
            .await
            .unwrap();
        // Yesterday has a snapshot, the days before none.
        let today = day_of(now());
        e.state
            .store
            .put_snapshot(
                &p.id,
                &Snapshot {
                    day: today - 1,
                    score: 42,
                    servers: 2,
                    taken_at: now() - 86_400,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        e.assert_pages_need_a_session(&["/dashboard"]).await;

        let signed_in = e.sign_in("vic").await;
        assert_eq!(
            location(&signed_in),
            "/dashboard",
            "[{b}] sign-in lands on the dashboard"
        );
        let (cookie, _) = e.session(&signed_in).await;
        let res = e.get("/", &cookie).await;
        assert_eq!(location(&res), "/dashboard", "[{b}] / shows the dashboard");

        let html = e.page("/dashboard", &cookie).await;
        let viewer = Principal {
            roles: [(p.id.clone(), Role::Viewer)].into(),
            ..Principal::system()
        };
        let want = super::api::project_score(&e.state, &viewer, &p.id)
            .await
            .unwrap()
            .score;
        assert!(
            html.contains(&format!("id=\"score\" data-score=\"{want}\"")),
            "[{b}] the API's score {want}"
        );
        assert_eq!(
            html.matches("data-nodata=\"1\"").count(),
            5,
            "[{b}] five days without data"
        );
        assert!(
            html.contains("data-score=\"42\""),
            "[{b}] yesterday's snapshot"
        );
        assert!(
            has_url(
                &html,
                &format!("/servers?protection=enabled&project={}", p.id)
            ),
            "[{b}] counts link to the filtered server list"
        );
        assert!(
            html.contains("Brute-force password guessing"),
            "[{b}] urgent alarm"
        );
        assert!(
            html.contains("db-&lt;1&gt;") || html.contains("db-&#60;1&#62;"),
            "[{b}] unprotected server, escaped"
        );
        assert!(!html.contains("db-<1>"), "[{b}]");
        assert!(
            html.contains("agent not installed"),
            "[{b}] why it is unprotected"
        );

        let res = e
            .get(&format!("/dashboard?project={}", other.id), &cookie)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
    }
}
