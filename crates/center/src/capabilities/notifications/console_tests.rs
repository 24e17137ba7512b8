//! Notification console tests on both backends: the pages need a session and every form its
//! CSRF token; an admin creates and edits a channel through the form (the secret never shows,
//! an empty password keeps it, a refused form keeps the input), viewers read only, another
//! project's channel is 404; failing deliveries show their error with a retry for operators.

use axum::http::StatusCode;

use super::console::input_from_form;
use crate::console::Fields;
use crate::console::testutil::{Env, body, envs, form, has_escaped, location};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};

const SECRET: &str = "smtp-Form-Secret-9";

fn channel_form(csrf: &str, project: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("csrf", csrf),
        ("project", project),
        ("kind", "email"),
        ("name", "ops <mail>"),
        ("enabled", "1"),
        ("realtime", "1"),
        ("summary", "1"),
        ("summary_at", "09:30"),
        ("email_host", "smtp.example.org"),
        ("email_port", "587"),
        ("email_security", "starttls"),
        ("email_username", "hostward"),
        ("email_from", "hostward@example.org"),
        ("email_to", "ops@example.org\nsec@example.org"),
        ("secret", SECRET),
        ("min_severity", "medium"),
        ("types", "brute_force; malware"),
        ("dedup_minutes", "30"),
        ("mask_types_0", "brute_force"),
        ("mask_day_0_6", "1"),
        ("mask_day_0_7", "1"),
        ("mask_start_0", "22:00"),
        ("mask_end_0", "06:00"),
        ("mask_note_0", "weekend nights"),
    ];
    pairs.extend_from_slice(extra);
    form(&pairs)
}

impl Env {
    async fn only_channel(&self, project: &str) -> hostward_store::ChannelRow {
        let mut all = self
            .state
            .store
            .channels(&[project.to_string()])
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "[{}]", self.backend);
        all.remove(0)
    }
}

#[test]
fn the_form_reads_settings_filters_and_mask_rows() {
    let f = Fields::of(&[
        ("kind", "webhook"),
        ("name", "chat"),
        ("webhook_url", "https://hooks.example.org/x"),
        ("webhook_format", "slack"),
        ("webhook_timeout", "7"),
        ("servers", "web-1; db-1"),
        ("dedup_minutes", ""),
        ("mask_servers_3", "web-1"),
        ("mask_day_3_1", "1"),
        ("mask_note_5", ""),
        ("secret_clear", "1"),
    ]);
    let i = input_from_form(&f);
    assert_eq!(i.kind, "webhook");
    assert!(i.email.is_none());
    let w = i.webhook.unwrap();
    assert_eq!(
        (w.url.as_str(), w.format.as_str(), w.timeout_secs),
        ("https://hooks.example.org/x", "slack", 7)
    );
    assert_eq!(i.filters.servers, ["web-1", "db-1"]);
    assert_eq!(i.filters.dedup_minutes, 60, "empty: the default");
    assert_eq!(i.filters.masks.len(), 1, "empty rows are left out");
    assert_eq!(i.filters.masks[0].days, [1]);
    assert_eq!(i.secret.as_deref(), Some(""), "remove the stored secret");
    assert!(!i.enabled && !i.realtime);
}

#[tokio::test]
async fn channels_are_made_and_edited_through_the_form_without_showing_the_secret() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        e.assert_pages_need_a_session(&[
            "/notifications",
            "/notifications/deliveries",
            "/notifications/new?project=x",
        ])
        .await;
        let (ac, acsrf) = e.login("ada").await;
        let html = e.page("/notifications", &ac).await;
        assert!(
            html.contains("No notification channels yet") && html.contains("kind=email"),
            "[{b}]"
        );
        let html = e
            .page(
                &format!("/notifications/new?project={}&kind=email", p.id),
                &ac,
            )
            .await;
        assert!(
            html.contains("name=\"email_host\"") && html.contains("name=\"mask_start_1\""),
            "[{b}]"
        );

        // Refused: the form again with the message and the input, never the password.
        let res = e
            .post_form(
                "/notifications/channels",
                &ac,
                &channel_form(&acsrf, &p.id, &[("email_to", "not an address")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("email.to[0]"), "[{b}] {html}");
        assert!(
            html.contains("smtp.example.org") && !html.contains(SECRET),
            "[{b}]"
        );

        let res = e
            .post_form(
                "/notifications/channels",
                &ac,
                &channel_form(&acsrf, &p.id, &[]),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "[{b}] {}",
            body(res).await
        );
        let c = e.only_channel(&p.id).await;
        assert_eq!(c.summary_at, "09:30");
        assert_eq!(
            c.settings["to"],
            serde_json::json!(["ops@example.org", "sec@example.org"])
        );
        assert_eq!(c.filters["masks"][0]["days"], serde_json::json!([6, 7]));
        let sealed = c.secret_sealed.clone().unwrap();

        let html = e.page("/notifications", &ac).await;
        assert!(
            has_escaped(&html, "ops <mail>") && !html.contains(SECRET),
            "[{b}]"
        );
        assert!(
            html.contains("(secret set)") && html.contains("daily summary at 09:30"),
            "[{b}]"
        );
        let edit = format!("/notifications/channels/{}", c.id);
        let html = e.page(&edit, &ac).await;
        assert!(
            !html.contains(SECRET) && html.contains("stored; leave empty to keep it"),
            "[{b}]"
        );
        assert!(
            html.contains("value=\"weekend nights\"")
                && html.contains("name=\"mask_day_0_6\" value=\"1\" checked"),
            "[{b}]"
        );

        // Saved with the password field empty: the secret stays.
        let res = e
            .post_form(
                &edit,
                &ac,
                &channel_form(&acsrf, &p.id, &[("secret", ""), ("name", "ops")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/notifications?done=saved");
        let c2 = e.only_channel(&p.id).await;
        assert_eq!(
            (c2.name.as_str(), c2.secret_sealed.as_deref()),
            ("ops", Some(sealed.as_str()))
        );

        // Viewers read only; another project's admin gets 404.
        let (vc, vcsrf) = e.login("vic").await;
        let html = e.page(&edit, &vc).await;
        assert!(
            html.contains("id=\"read-only\"") && !html.contains("id=\"save-channel\""),
            "[{b}]"
        );
        let res = e
            .post_form(&edit, &vc, &channel_form(&vcsrf, &p.id, &[]))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let (oc, ocsrf) = e.login("oscar").await;
        assert_eq!(
            e.get(&edit, &oc).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let res = e
            .post_form(&format!("{edit}/delete"), &oc, &form(&[("csrf", &ocsrf)]))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}]");

        e.assert_posts_need_csrf(
            &ac,
            &[
                (
                    "/notifications/channels".into(),
                    channel_form("", &p.id, &[]),
                ),
                (edit.clone(), channel_form("", &p.id, &[])),
                (format!("{edit}/delete"), String::new()),
                (format!("{edit}/test"), "kind=alarm".into()),
                ("/notifications/deliveries/x/retry".into(), String::new()),
            ],
        )
        .await;
        assert_eq!(
            e.only_channel(&p.id).await.name,
            "ops",
            "[{b}] nothing changed"
        );

        let res = e
            .post_form(&format!("{edit}/delete"), &ac, &form(&[("csrf", &acsrf)]))
            .await;
        assert_eq!(location(&res), "/notifications?done=deleted", "[{b}]");
        assert!(
            e.state
                .store
                .channels(std::slice::from_ref(&p.id))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn failing_deliveries_show_their_error_and_operators_retry_them() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("otto", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let (ac, acsrf) = e.login("ada").await;
        e.post_form(
            "/notifications/channels",
            &ac,
            &channel_form(&acsrf, &p.id, &[]),
        )
        .await;
        let srv = e.server(&p.id, "web-1").await;
        let t = hostward_store::now();
        let alarm = Message::Alarm(Alarm {
            ts: t,
            alarm_type: "brute_force".into(),
            key: "192.0.2.1".into(),
            count: 3,
            evidence: Evidence::default(),
        });
        e.state
            .store
            .store_records(&srv.id, &[(1, alarm)])
            .await
            .unwrap();
        let (claim, rows) = e.state.store.claim_notifications(t, 300, 10).await.unwrap();
        let id = rows[0].delivery.id.clone();
        e.state
            .store
            .notification_failed(
                &claim,
                &id,
                "SMTP smtp.example.org:587: <refused>",
                Some(t + 600),
                t,
            )
            .await
            .unwrap();

        let (vc, _) = e.login("vic").await;
        let html = e.page("/notifications", &vc).await;
        assert!(
            has_escaped(&html, "SMTP smtp.example.org:587: <refused>"),
            "[{b}] {html}"
        );
        assert!(
            html.contains("high Brute-force password guessing on web-1"),
            "[{b}]"
        );
        assert!(
            !html.contains("retry-delivery"),
            "[{b}] viewers do not retry"
        );
        let html = e.page("/notifications/deliveries?state=failing", &vc).await;
        assert!(
            html.contains(&format!("data-delivery-id=\"{id}\"")),
            "[{b}]"
        );

        let (oc, ocsrf) = e.login("otto").await;
        let html = e.page("/notifications", &oc).await;
        assert!(
            html.contains("retry-delivery") && !html.contains("delete-channel"),
            "[{b}]"
        );
        let res = e
            .post_form(
                &format!("/notifications/deliveries/{id}/retry"),
                &oc,
                &form(&[("csrf", &ocsrf)]),
            )
            .await;
        assert_eq!(location(&res), "/notifications?done=retried", "[{b}]");
        let d = e.state.store.delivery(&id).await.unwrap().unwrap();
        assert!(d.next_attempt_at <= hostward_store::now(), "[{b}] due now");
        let html = e.page("/notifications?done=retried", &oc).await;
        assert!(html.contains("being tried again"), "[{b}]");
    }
}
