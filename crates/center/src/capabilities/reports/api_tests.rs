//! Reports through the REST API on both backends: operators make reports and schedules,
//! viewers list and download them, other projects' answer 404; a bad schedule is refused
//! naming the field and the value with nothing stored; the job makes a due schedule's report
//! once and sends it once.

use axum::http::{Method, StatusCode};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};

use super::content::{fmt_day, last_period};
use crate::api::testutil::apps;
use crate::auth::Role;
use hostward_store::now;

fn brute(ts: i64, ip: &str) -> Message {
    Message::Alarm(Alarm {
        ts,
        alarm_type: "brute_force".into(),
        key: ip.into(),
        count: 5,
        evidence: Evidence {
            source_ip: Some(ip.into()),
            ..Default::default()
        },
    })
}

#[tokio::test]
async fn reports_are_made_listed_and_downloaded_by_project() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web = t.server(&a.id, "web-<1>").await;
        t.server(&a.id, "db-1").await;
        s.store_records(
            &web.id,
            &[
                (1, brute(now() - 60, "192.0.2.7")),
                (2, brute(now() - 30, "192.0.2.8")),
            ],
        )
        .await
        .unwrap();
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/reports", a.id);
        // Yesterday and today: the alarms of a minute ago are in it whatever the hour.
        let (yesterday, today) = (fmt_day(now() - 86_400), fmt_day(now()));
        let body = format!(r#"{{"range":"custom","from":"{yesterday}","to":"{today}"}}"#);

        assert_eq!(
            t.send(Method::POST, &uri, &viewer, &body).await.0,
            StatusCode::FORBIDDEN,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::POST, &uri, &stranger, &body).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let (st, e) = t
            .send(
                Method::POST,
                &uri,
                &op,
                r#"{"range":"custom","from":"2026-01-01"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("from: "),
            "[{b}] {e}"
        );
        let (st, e) = t
            .send(Method::POST, &uri, &op, r#"{"range":"hourly"}"#)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("range: \"hourly\""),
            "[{b}] {e}"
        );
        assert!(
            s.reports(std::slice::from_ref(&a.id), 10)
                .await
                .unwrap()
                .is_empty(),
            "[{b}] nothing stored"
        );

        let (st, r) = t.send(Method::POST, &uri, &op, &body).await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {r}");
        assert_eq!(r["delivery"], "none", "[{b}]");
        let (st, list) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "[{b}]");
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let (_, all) = t.get("/api/v1/reports", &stranger).await;
        assert!(
            all["items"].as_array().unwrap().is_empty(),
            "[{b}] other projects' are not listed"
        );

        let pdf_url = r["pdf_url"].as_str().unwrap().to_string();
        let (st, h, pdf) = t.get_text(&pdf_url, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert_eq!(h["content-type"], "application/pdf", "[{b}]");
        assert!(pdf.starts_with("%PDF-") && pdf.contains("web-<1>"), "[{b}]");
        let (st, h, html) = t.get_text(r["html_url"].as_str().unwrap(), &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'"),
            "[{b}]"
        );
        assert!(
            html.contains("web-&lt;1&gt;") || html.contains("web-&#60;1&#62;"),
            "[{b}] escaped"
        );
        assert!(!html.contains("web-<1>"), "[{b}]");
        assert!(html.contains("Alarms: 2"), "[{b}] both alarms of the range");
        assert!(html.contains("db-1"), "[{b}]");
        assert_eq!(
            t.get_text(&pdf_url, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let id = r["id"].as_str().unwrap();
        assert_eq!(
            t.get_text(&format!("/api/v1/reports/{id}.exe"), &viewer)
                .await
                .0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        assert_eq!(
            t.get_text("/api/v1/reports/nope.pdf", &viewer).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn schedules_refuse_bad_input_and_run_once() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        t.server(&a.id, "web-1").await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/report-schedules", a.id);

        for (body, want) in [
            (
                r#"{"name":"n","cron":"61 0 * * *","range":"daily"}"#,
                "cron: minute: 61 is out of range 0-59",
            ),
            (
                r#"{"name":"n","cron":"0 0 * *","range":"daily"}"#,
                "cron: expected 5 fields",
            ),
            (
                r#"{"name":"n","cron":"0 0 30 2 *","range":"daily"}"#,
                "cron: day-of-month: \"30\" never falls in month \"2\"",
            ),
            (
                r#"{"name":"n","cron":"0 0 * * *","range":"custom"}"#,
                "range: \"custom\"",
            ),
            (
                r#"{"name":"n","cron":"0 0 * * *","range":"daily","formats":["docx"]}"#,
                "formats[0]: \"docx\"",
            ),
            (
                r#"{"name":"","cron":"0 0 * * *","range":"daily"}"#,
                "name: must not be empty",
            ),
        ] {
            let (st, e) = t.send(Method::POST, &uri, &op, body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
            let msg = e["error"]["message"].as_str().unwrap();
            assert!(
                msg.starts_with(want),
                "[{b}] {msg:?} should start with {want:?}"
            );
        }
        assert!(
            t.get(&uri, &viewer).await.1["items"]
                .as_array()
                .unwrap()
                .is_empty(),
            "[{b}] nothing stored"
        );

        let good = r#"{"name":"nightly","cron":"5 0 * * *","range":"weekly","formats":["pdf"]}"#;
        assert_eq!(
            t.send(Method::POST, &uri, &viewer, good).await.0,
            StatusCode::FORBIDDEN,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::POST, &uri, &stranger, good).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let (st, sched) = t.send(Method::POST, &uri, &op, good).await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {sched}");
        let next_run = sched["next_run"].as_i64().unwrap();
        assert!(
            next_run > now() && (next_run / 60) % 1440 == 5,
            "[{b}] {sched}"
        );
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );

        // The job at the due time: one report of the last week before it, sent once.
        assert_eq!(
            super::jobs::run_due(&t.state, next_run - 1).await.unwrap(),
            0,
            "[{b}] not due yet"
        );
        assert_eq!(
            super::jobs::run_due(&t.state, next_run).await.unwrap(),
            1,
            "[{b}]"
        );
        assert_eq!(
            super::jobs::run_due(&t.state, next_run).await.unwrap(),
            0,
            "[{b}] not twice"
        );
        let reports = s.reports(std::slice::from_ref(&a.id), 10).await.unwrap();
        assert_eq!(reports.len(), 1, "[{b}]");
        let week = last_period("weekly", next_run).unwrap();
        assert_eq!(
            (reports[0].range_from, reports[0].range_to),
            (week.from, week.to),
            "[{b}]"
        );
        assert_eq!(reports[0].delivery, "pending", "[{b}]");
        let moved = s.schedule(sched["id"].as_str().unwrap()).await.unwrap();
        assert_eq!(
            moved.next_run,
            next_run + 86_400,
            "[{b}] the next day at 00:05"
        );
        // An email channel of the project that takes reports: the report is queued for it in
        // the notifications outbox, with the PDF attached.
        let channels = format!("/api/v1/projects/{}/notification-channels", a.id);
        let channel = serde_json::json!({
            "name": "security team", "kind": "email", "reports": true,
            "email": {"host": "smtp.example.org", "port": 587, "username": "hostward",
                      "from": "Hostward <hostward@example.org>", "to": ["sec@example.org"]},
            "secret": "a relay password"
        });
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let (st, body) = t
            .send(Method::POST, &channels, &admin, &channel.to_string())
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {body}");
        assert_eq!(
            super::jobs::deliver_pending(&t.state).await.unwrap(),
            1,
            "[{b}]"
        );
        assert_eq!(
            super::jobs::deliver_pending(&t.state).await.unwrap(),
            0,
            "[{b}] sent once"
        );
        let done = s.report(&reports[0].id).await.unwrap();
        assert_eq!(
            (done.delivery.as_str(), done.delivery_note.as_str()),
            ("sent", "queued for 1 email channel(s)"),
            "[{b}]"
        );
        let (queued, _) = s
            .deliveries(&hostward_store::DeliveryFilter {
                projects: vec![a.id.clone()],
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(queued.len(), 1, "[{b}]");
        assert_eq!(
            (queued[0].kind.as_str(), queued[0].channel_name.as_str()),
            ("report", "security team"),
            "[{b}] {:?}",
            queued[0]
        );

        let del = format!("/api/v1/report-schedules/{}", moved.id);
        assert_eq!(
            t.send(Method::DELETE, &del, &stranger, "").await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::DELETE, &del, &viewer, "").await.0,
            StatusCode::FORBIDDEN,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::DELETE, &del, &op, "").await.0,
            StatusCode::NO_CONTENT,
            "[{b}]"
        );
        assert_eq!(
            t.send(Method::DELETE, &del, &op, "").await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        assert_eq!(
            s.reports(std::slice::from_ref(&a.id), 10)
                .await
                .unwrap()
                .len(),
            1,
            "[{b}] its report stays"
        );
    }
}
