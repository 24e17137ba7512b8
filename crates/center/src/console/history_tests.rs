//! The handling log page on both backends: what was handled in the caller's projects, with
//! who and why, escaped; filters; another project's entries never shown.

use axum::http::StatusCode;
use hostward_proto::Severity;
use hostward_store::testdb;

use crate::console::testutil::envs;

#[tokio::test]
async fn the_history_page_lists_what_was_handled_in_the_callers_projects() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        e.assert_pages_need_a_session(&["/history"]).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let check = testdb::failed_check(10001, "Root login off <b>", Severity::High);
        let run = testdb::baseline_run("hostward_sshd", vec![check]);
        e.state
            .store
            .store_records(&srv.id, &[(1, run)])
            .await
            .unwrap();
        let (rows, _) = e
            .state
            .store
            .baseline_findings(&hostward_store::BaselineFilter {
                server_id: Some(srv.id.clone()),
                page: 1,
                per_page: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        e.state
            .store
            .set_baseline_state(
                &[rows[0].id.clone()],
                "ignored",
                "otto",
                "ignore",
                "jump host",
            )
            .await
            .unwrap();

        let (vc, _) = e.login("vic").await;
        let html = e.page("/history", &vc).await;
        assert!(
            html.contains("data-kind=\"baseline\" data-actor=\"otto\""),
            "[{b}] {html}"
        );
        assert!(
            html.contains("jump host") && !html.contains("off <b>"),
            "[{b}] escaped"
        );
        assert!(
            html.contains(&format!("/baselines/results/{}", rows[0].id)),
            "[{b}]"
        );
        let html = e.page("/history?kind=alarm", &vc).await;
        assert!(html.contains("id=\"history-empty\""), "[{b}]");
        assert_eq!(
            e.get("/history?kind=bogus", &vc).await.status(),
            StatusCode::BAD_REQUEST,
            "[{b}]"
        );
        let (oc, _) = e.login("oscar").await;
        let html = e.page("/history", &oc).await;
        assert!(
            html.contains("id=\"history-empty\""),
            "[{b}] another project's history is not shown"
        );
    }
}
