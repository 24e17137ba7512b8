//! Notification store tests on both backends: a new alarm queues its notifications in the
//! records transaction (once, for enabled real-time channels only, never for repeats or
//! whitelisted alarms), claims hold a lease, attempts back off and end failed, a retry brings
//! a row back, a summary is queued once per channel and key, reports go to email channels that
//! take them, and the counts a summary is made of.

use super::*;
use crate::{FollowUp, Job, NewServer, now, testdb};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};

fn channel(project_id: &str, name: &str, kind: &str) -> ChannelRow {
    ChannelRow {
        id: new_id(),
        project_id: project_id.into(),
        name: name.into(),
        kind: kind.into(),
        settings: serde_json::json!({"to": ["ops@example.org"]}),
        secret_sealed: Some("sealed".into()),
        filters: serde_json::json!({}),
        enabled: true,
        realtime: true,
        summary: true,
        summary_at: "10:00".into(),
        reports: false,
        created_by: "ada".into(),
        created_at: 1,
        updated_at: 1,
    }
}

fn alarm(ts: i64, ip: &str) -> Message {
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
async fn a_new_alarm_queues_one_row_per_enabled_channel_in_the_records_transaction() {
    for (b, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let other = s.ensure_project("other").await.unwrap();
        let srv = s
            .create_server(&NewServer {
                project_id: p.id.clone(),
                name: "web-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mail = channel(&p.id, "mail", "email");
        let hook = channel(&p.id, "hook", "webhook");
        let off = ChannelRow {
            enabled: false,
            ..channel(&p.id, "off", "email")
        };
        let summary_only = ChannelRow {
            realtime: false,
            ..channel(&p.id, "daily", "email")
        };
        let elsewhere = channel(&other.id, "theirs", "email");
        for c in [&mail, &hook, &off, &summary_only, &elsewhere] {
            s.create_channel(c).await.unwrap();
        }
        let t = now();
        let stored = s
            .store_records(&srv.id, &[(1, alarm(t, "192.0.2.1"))])
            .await
            .unwrap();
        assert!(
            stored
                .follow_ups
                .contains(&FollowUp::Wake(Job::Notifications)),
            "[{b}] {stored:?}"
        );
        let all = |state: Option<&str>| DeliveryFilter {
            projects: vec![p.id.clone(), other.id.clone()],
            state: state.map(str::to_string),
            page: 1,
            per_page: 100,
            ..Default::default()
        };
        let (rows, total) = s.deliveries(&all(None)).await.unwrap();
        assert_eq!(total, 2, "[{b}] {rows:?}");
        let mut names: Vec<&str> = rows.iter().map(|r| r.channel_name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["hook", "mail"], "[{b}]");
        let r = &rows[0];
        assert_eq!(
            (r.kind.as_str(), r.state.as_str(), r.attempts),
            ("alarm", "pending", 0),
            "[{b}]"
        );
        assert_eq!(r.payload["server_name"], "web-1", "[{b}]");
        assert_eq!(r.payload["severity"], "high", "[{b}]");
        assert_eq!(r.payload["source_ip"], "192.0.2.1", "[{b}]");

        // Redelivered (same seq), a repeat of the open alarm, a whitelisted one: nothing more.
        s.store_records(&srv.id, &[(1, alarm(t, "192.0.2.1"))])
            .await
            .unwrap();
        let repeat = s
            .store_records(&srv.id, &[(2, alarm(t + 5, "192.0.2.1"))])
            .await
            .unwrap();
        assert!(repeat.follow_ups.is_empty(), "[{b}] {repeat:?}");
        s.add_alarm_whitelist(&crate::AlarmWhitelistRule {
            id: new_id(),
            project_id: p.id.clone(),
            alarm_type: None,
            source_ip: Some("198.51.100.9".into()),
            reason: "scanner".into(),
            created_by: "ada".into(),
            created_at: 1,
        })
        .await
        .unwrap();
        s.store_records(&srv.id, &[(3, alarm(t, "198.51.100.9"))])
            .await
            .unwrap();
        assert_eq!(s.deliveries(&all(None)).await.unwrap().1, 2, "[{b}]");
        assert_eq!(s.notification_outbox_depth().await.unwrap(), 2, "[{b}]");

        // Another source is a new alarm: two more.
        s.store_records(&srv.id, &[(4, alarm(t, "192.0.2.2"))])
            .await
            .unwrap();
        assert_eq!(s.deliveries(&all(None)).await.unwrap().1, 4, "[{b}]");

        // Deleting a channel takes its rows.
        s.delete_channel(&hook.id).await.unwrap();
        assert_eq!(s.deliveries(&all(None)).await.unwrap().1, 2, "[{b}]");
        assert!(matches!(
            s.delete_channel(&hook.id).await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn claims_lease_rows_attempts_back_off_end_failed_and_a_retry_brings_them_back() {
    for (b, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let srv = s
            .create_server(&NewServer {
                project_id: p.id.clone(),
                name: "web-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mail = channel(&p.id, "mail", "email");
        s.create_channel(&mail).await.unwrap();
        let t = now();
        s.store_records(
            &srv.id,
            &[(1, alarm(t, "192.0.2.1")), (2, alarm(t, "192.0.2.2"))],
        )
        .await
        .unwrap();

        let (claim, rows) = s.claim_notifications(t, 300, 10).await.unwrap();
        assert_eq!(rows.len(), 2, "[{b}]");
        assert_eq!(rows[0].channel.name, "mail", "[{b}]");
        assert!(rows[0].group_key.as_deref().unwrap().contains("192.0.2."));
        // Leased: another replica gets nothing, even once they are due.
        let (_, again) = s.claim_notifications(t + 10, 300, 10).await.unwrap();
        assert!(again.is_empty(), "[{b}] leased rows are not claimed twice");

        let (sent, failing) = (&rows[0].delivery, &rows[1].delivery);
        assert_eq!(
            s.notifications_sent(&claim, std::slice::from_ref(&sent.id), t)
                .await
                .unwrap(),
            1
        );
        // A stale claim cannot mark anything.
        assert_eq!(
            s.notifications_sent("not-the-claim", std::slice::from_ref(&failing.id), t)
                .await
                .unwrap(),
            0,
            "[{b}]"
        );
        let group = rows[0].group_key.clone().unwrap();
        assert_eq!(
            s.last_sent_in_group(&mail.id, &group).await.unwrap(),
            Some(t),
            "[{b}]"
        );
        assert_eq!(s.last_sent_in_group(&mail.id, "other").await.unwrap(), None);

        // First failure: pending again, due in 30 s, with the error.
        s.notification_failed(&claim, &failing.id, "connection refused", Some(t + 30), t)
            .await
            .unwrap();
        let d = s.delivery(&failing.id).await.unwrap().unwrap();
        assert_eq!(
            (
                d.state.as_str(),
                d.attempts,
                d.next_attempt_at,
                d.last_error.as_str()
            ),
            ("pending", 1, t + 30, "connection refused"),
            "[{b}]"
        );
        assert!(
            s.claim_notifications(t + 29, 300, 10)
                .await
                .unwrap()
                .1
                .is_empty()
        );
        let failing_view = DeliveryFilter {
            projects: vec![p.id.clone()],
            state: Some("failing".into()),
            page: 1,
            per_page: 10,
            ..Default::default()
        };
        assert_eq!(s.deliveries(&failing_view).await.unwrap().1, 1, "[{b}]");

        // Due again: the last attempt fails for good.
        let (claim2, rows) = s.claim_notifications(t + 30, 300, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "[{b}]");
        assert_eq!(rows[0].delivery.attempts, 1);
        s.notification_failed(
            &claim2,
            &failing.id,
            "535 authentication failed",
            None,
            t + 30,
        )
        .await
        .unwrap();
        let d = s.delivery(&failing.id).await.unwrap().unwrap();
        assert_eq!((d.state.as_str(), d.attempts), ("failed", 2), "[{b}]");
        assert!(
            s.claim_notifications(t + 10_000, 300, 10)
                .await
                .unwrap()
                .1
                .is_empty()
        );
        assert_eq!(s.deliveries(&failing_view).await.unwrap().1, 1, "[{b}]");
        assert_eq!(s.notification_outbox_depth().await.unwrap(), 0, "[{b}]");

        // Retry: due now with its attempts back; a sent row is not retried.
        assert!(!s.retry_notification(&sent.id, t + 40).await.unwrap());
        assert!(s.retry_notification(&failing.id, t + 40).await.unwrap());
        let d = s.delivery(&failing.id).await.unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.attempts, d.next_attempt_at),
            ("pending", 0, t + 40),
            "[{b}]"
        );
        let (claim3, rows) = s.claim_notifications(t + 40, 300, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "[{b}]");
        s.notification_skipped(&claim3, &failing.id, "masked", t + 40)
            .await
            .unwrap();
        let d = s.delivery(&failing.id).await.unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.last_error.as_str()),
            ("skipped", "masked")
        );

        // An expired lease (its replica died) is claimed again.
        s.store_records(&srv.id, &[(3, alarm(t, "192.0.2.3"))])
            .await
            .unwrap();
        let (_, rows) = s.claim_notifications(t + 50, 60, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "[{b}]");
        assert!(
            s.claim_notifications(t + 100, 60, 10)
                .await
                .unwrap()
                .1
                .is_empty()
        );
        let (_, rows) = s.claim_notifications(t + 111, 60, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "[{b}] taken again once the lease ended");

        // Retention keeps pending rows.
        assert_eq!(s.expire_notifications(t + 1000).await.unwrap(), 2, "[{b}]");
        assert_eq!(s.notification_outbox_depth().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn summaries_queue_once_per_key_reports_go_to_email_channels_that_take_them() {
    for (b, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let srv = s
            .create_server(&NewServer {
                project_id: p.id.clone(),
                name: "web-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mail = ChannelRow {
            reports: true,
            ..channel(&p.id, "mail", "email")
        };
        let hook = ChannelRow {
            reports: true,
            ..channel(&p.id, "hook", "webhook")
        };
        let plain = channel(&p.id, "plain", "email");
        for c in [&mail, &hook, &plain] {
            s.create_channel(c).await.unwrap();
        }
        let payload = serde_json::json!({"day": "2025-01-02"});
        let first = s
            .enqueue_notification(&mail.id, "summary", "summary:2025-01-02", &payload, 5)
            .await
            .unwrap();
        assert!(first.is_some(), "[{b}]");
        assert!(
            s.notification_queued(&mail.id, "summary:2025-01-02")
                .await
                .unwrap()
        );
        assert_eq!(
            s.enqueue_notification(&mail.id, "summary", "summary:2025-01-02", &payload, 6)
                .await
                .unwrap(),
            None,
            "[{b}] once per channel and key"
        );
        assert_eq!(
            s.enqueue_notification("gone", "summary", "k", &payload, 6)
                .await
                .unwrap(),
            None,
            "[{b}] no channel, no row"
        );
        let report = serde_json::json!({"subject": "Weekly report"});
        assert_eq!(
            s.enqueue_report(&p.id, &report, 7).await.unwrap(),
            1,
            "[{b}]"
        );
        let (rows, _) = s
            .deliveries(&DeliveryFilter {
                projects: vec![p.id.clone()],
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let report_row = rows.iter().find(|r| r.kind == "report").unwrap();
        assert_eq!(report_row.channel_name, "mail", "[{b}]");
        assert_eq!(report_row.payload["subject"], "Weekly report");

        // Secrets: kept, replaced, cleared.
        let mut changed = mail.clone();
        changed.name = "ops mail".into();
        s.update_channel(&changed, &SecretChange::Keep)
            .await
            .unwrap();
        let got = s.channel(&mail.id).await.unwrap().unwrap();
        assert_eq!(
            (got.name.as_str(), got.secret_sealed.as_deref()),
            ("ops mail", Some("sealed"))
        );
        s.update_channel(&changed, &SecretChange::Set("new".into()))
            .await
            .unwrap();
        assert_eq!(
            s.channel(&mail.id)
                .await
                .unwrap()
                .unwrap()
                .secret_sealed
                .as_deref(),
            Some("new")
        );
        s.update_channel(&changed, &SecretChange::Clear)
            .await
            .unwrap();
        assert_eq!(
            s.channel(&mail.id).await.unwrap().unwrap().secret_sealed,
            None
        );
        assert_eq!(s.summary_channels().await.unwrap().len(), 3, "[{b}]");

        // The counts of a summary.
        let t = now();
        s.store_records(
            &srv.id,
            &[
                (1, alarm(t - 100, "192.0.2.1")),
                (2, alarm(t - 90, "192.0.2.1")),
                (3, alarm(t - 80, "192.0.2.2")),
                (4, alarm(t - 200_000, "192.0.2.3")),
            ],
        )
        .await
        .unwrap();
        let c = s.alarm_counts(&p.id, t - 86_400, t + 1).await.unwrap();
        assert_eq!(
            (c.alarms, c.occurrences, c.unhandled),
            (2, 15, 2),
            "[{b}] {c:?}"
        );
        assert_eq!(c.by_severity, vec![("high".to_string(), 2)], "[{b}]");
        assert_eq!(c.by_type[0].0, "brute_force");
        assert_eq!(c.by_server, vec![("web-1".to_string(), 2, 2)], "[{b}]");
    }
}
