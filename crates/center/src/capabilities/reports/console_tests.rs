//! The Reports page on both backends: it needs a session, its forms need the CSRF token, an
//! operator makes a report and a schedule through them, a bad schedule is shown again with the
//! message naming the field and the typed values, and nothing is stored; viewers see no forms;
//! another project's page is 404.

use axum::http::StatusCode;

use crate::console::testutil::{body, envs, form, location};

#[tokio::test]
async fn reports_page_forms_make_reports_and_refuse_bad_schedules() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("otto", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.server(&p.id, "web-1").await;
        e.assert_pages_need_a_session(&["/reports"]).await;

        let (oc, csrf) = e.login("otto").await;
        let project = p.id.as_str();
        e.assert_posts_need_csrf(
            &oc,
            &[
                (
                    "/reports/generate".into(),
                    form(&[("project", project), ("range", "daily")]),
                ),
                (
                    "/reports/schedules".into(),
                    form(&[
                        ("project", project),
                        ("name", "n"),
                        ("cron", "0 0 * * *"),
                        ("range", "daily"),
                        ("format_pdf", "1"),
                    ]),
                ),
            ],
        )
        .await;
        let html = e.page("/reports", &oc).await;
        assert!(
            html.contains("id=\"generate-form\"") && html.contains("id=\"schedule-form\""),
            "[{b}]"
        );

        // A bad schedule: 400, the message names the field and value, the form keeps it.
        let res = e
            .post_form(
                "/reports/schedules",
                &oc,
                &form(&[
                    ("csrf", &csrf),
                    ("project", project),
                    ("name", "nightly <x>"),
                    ("cron", "0 25 * * *"),
                    ("range", "daily"),
                    ("format_pdf", "1"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("cron: hour: 25 is out of range 0-23"),
            "[{b}]"
        );
        assert!(
            html.contains("value=\"0 25 * * *\""),
            "[{b}] what was typed is kept"
        );
        assert!(
            html.contains("nightly &lt;x&gt;") || html.contains("nightly &#60;x&#62;"),
            "[{b}]"
        );
        assert!(
            e.state
                .store
                .schedules(std::slice::from_ref(&p.id))
                .await
                .unwrap()
                .is_empty(),
            "[{b}] nothing stored"
        );

        let res = e
            .post_form(
                "/reports/schedules",
                &oc,
                &form(&[
                    ("csrf", &csrf),
                    ("project", project),
                    ("name", "nightly"),
                    ("cron", "5 0 * * *"),
                    ("range", "weekly"),
                    ("format_pdf", "1"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert!(location(&res).contains("done=scheduled"), "[{b}]");
        let res = e
            .post_form(
                "/reports/generate",
                &oc,
                &form(&[
                    ("csrf", &csrf),
                    ("project", project),
                    ("range", "daily"),
                    ("format_pdf", "1"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let html = e.page(&location(&res), &oc).await;
        let reports = e
            .state
            .store
            .reports(std::slice::from_ref(&p.id), 10)
            .await
            .unwrap();
        assert_eq!(reports.len(), 1, "[{b}]");
        assert!(
            html.contains(&format!("/api/v1/reports/{}.pdf", reports[0].id)),
            "[{b}] download link"
        );
        assert!(html.contains("5 0 * * *"), "[{b}] the schedule is listed");

        // Deleting it through its form.
        let sched = &e
            .state
            .store
            .schedules(std::slice::from_ref(&p.id))
            .await
            .unwrap()[0];
        let del = format!("/reports/schedules/{}/delete", sched.id);
        e.assert_posts_need_csrf(&oc, &[(del.clone(), form(&[("project", project)]))])
            .await;
        let res = e
            .post_form(&del, &oc, &form(&[("csrf", &csrf), ("project", project)]))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert!(
            e.state
                .store
                .schedules(std::slice::from_ref(&p.id))
                .await
                .unwrap()
                .is_empty(),
            "[{b}]"
        );

        // A viewer sees the list and no forms; another project is 404.
        let (vc, _) = e.login("vic").await;
        let html = e.page("/reports", &vc).await;
        assert!(!html.contains("id=\"generate-form\""), "[{b}]");
        assert!(
            html.contains(&format!("/api/v1/reports/{}.pdf", reports[0].id)),
            "[{b}]"
        );
        let res = e.get(&format!("/reports?project={}", other.id), &vc).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");
    }
}
