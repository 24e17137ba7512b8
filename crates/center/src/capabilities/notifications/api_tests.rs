//! Notification API tests on both backends: roles (viewers read, admins change, operators
//! test and retry), another project's channels and deliveries are 404, input checks name the
//! field, the secret is sealed, write-only and never in an answer or the audit, a webhook's
//! key stays with admins, deliveries list and retry, "send a test" through the outbox to a
//! real listener, and reports queued for the email channels that take them.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::api::testutil::{TestApp, apps};
use crate::auth::Role;
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};

const SECRET: &str = "smtp-Password-42";

fn email_body() -> serde_json::Value {
    json!({
        "name": "ops",
        "kind": "email",
        "email": {
            "host": "smtp.example.org",
            "port": 587,
            "username": "hostward",
            "from": "Hostward <hostward@example.org>",
            "to": ["ops@example.org"]
        },
        "secret": SECRET,
        "filters": {"min_severity": "high", "masks": [{"days": [6, 7], "note": "weekend"}]}
    })
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

struct Who {
    admin: String,
    op: String,
    viewer: String,
    stranger: String,
}

async fn people(t: &TestApp, project: &str, other: &str) -> Who {
    Who {
        admin: t
            .token(&t.user("ada", &[(project, Role::Admin)]).await)
            .await,
        op: t
            .token(&t.user("otto", &[(project, Role::Operator)]).await)
            .await,
        viewer: t
            .token(&t.user("vic", &[(project, Role::Viewer)]).await)
            .await,
        stranger: t.token(&t.user("bob", &[(other, Role::Admin)]).await).await,
    }
}

#[tokio::test]
async fn channels_need_their_roles_hide_their_secret_and_check_their_input() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let p = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let w = people(&t, &p.id, &other.id).await;
        let list = format!("/api/v1/projects/{}/notification-channels", p.id);
        let body = email_body().to_string();

        for who in [&w.viewer, &w.op] {
            let (st, _) = t.send(Method::POST, &list, who, &body).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        }
        let (st, _) = t.send(Method::POST, &list, &w.stranger, &body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] another project's");
        let (st, created) = t.send(Method::POST, &list, &w.admin, &body).await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {created}");
        assert!(!created.to_string().contains(SECRET), "[{b}] secret echoed");
        assert_eq!(created["has_secret"], true);
        assert_eq!(created["filters"]["min_severity"], "high");
        assert_eq!(created["summary_at"], "10:00", "[{b}] the default");
        let id = created["id"].as_str().unwrap().to_string();
        let one = format!("/api/v1/notification-channels/{id}");

        // Sealed at rest, opened only with the data dir's key.
        let row = s.channel(&id).await.unwrap().unwrap();
        let sealed = row.secret_sealed.clone().unwrap();
        assert!(!sealed.contains(SECRET));
        assert_eq!(
            crate::auth::sealed::open(&t.state.config.data_dir, &sealed).unwrap(),
            SECRET.as_bytes()
        );

        let (st, got) = t.get(&list, &w.viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert_eq!(got["items"][0]["id"], id.as_str());
        assert!(!got.to_string().contains(SECRET));
        for uri in [list.as_str(), one.as_str()] {
            let (st, _) = t.get(uri, &w.stranger).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {uri}");
        }
        for (m, uri, with) in [
            (Method::PUT, one.clone(), body.as_str()),
            (Method::DELETE, one.clone(), ""),
            (Method::POST, format!("{one}/test"), "{}"),
        ] {
            let (st, _) = t.send(m.clone(), &uri, &w.stranger, with).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "[{b}] {m} {uri}");
        }
        let (st, _) = t.send(Method::PUT, &one, &w.viewer, &body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");

        // Refused input names the field; nothing changes.
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = email_body();
            f(&mut v);
            v.to_string()
        };
        for (bad, want) in [
            (
                with(&|v| v["kind"] = json!("pager")),
                "kind: \"pager\" is not email or webhook",
            ),
            (
                with(&|v| v["email"]["security"] = json!("none")),
                "email.security: \"none\" sends in the clear",
            ),
            (
                with(&|v| v["summary_at"] = json!("25:00")),
                "summary_at: \"25:00\" is not HH:MM",
            ),
            (
                with(&|v| v["filters"]["types"] = json!(["nope"])),
                "filters.types[0]: \"nope\" is not an alarm type",
            ),
            (
                with(&|v| v["webhook"] = json!({"url": "https://x.example/"})),
                "email: an email channel has email settings and no webhook settings",
            ),
            (
                with(&|v| {
                    v.as_object_mut().unwrap().remove("secret");
                }),
                "secret: the SMTP password is needed with email.username",
            ),
            (with(&|v| v["extra"] = json!(1)), "unknown field `extra`"),
        ] {
            let (st, e) = t.send(Method::POST, &list, &w.admin, &bad).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {want}: {e}");
            let msg = e["error"]["message"].as_str().unwrap();
            assert!(msg.contains(want), "[{b}] {msg:?} should say {want:?}");
        }
        assert_eq!(
            s.channels(std::slice::from_ref(&p.id)).await.unwrap().len(),
            1
        );

        // An update without a secret keeps it; "" removes it (and then the user needs one).
        let mut keep = email_body();
        keep.as_object_mut().unwrap().remove("secret");
        keep["name"] = json!("ops renamed");
        let (st, v) = t.send(Method::PUT, &one, &w.admin, &keep.to_string()).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {v}");
        assert_eq!(
            (v["name"].as_str(), v["has_secret"].as_bool()),
            (Some("ops renamed"), Some(true))
        );
        assert_eq!(
            s.channel(&id).await.unwrap().unwrap().secret_sealed,
            Some(sealed)
        );
        let mut clear = keep.clone();
        clear["secret"] = json!("");
        let (st, e) = t
            .send(Method::PUT, &one, &w.admin, &clear.to_string())
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");
        clear["email"]["username"] = json!("");
        let (st, v) = t
            .send(Method::PUT, &one, &w.admin, &clear.to_string())
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {v}");
        assert_eq!(v["has_secret"], false);
        let mut kind = keep.clone();
        kind["kind"] = json!("webhook");
        let (st, e) = t.send(Method::PUT, &one, &w.admin, &kind.to_string()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");

        // The audit names the change, never the secret.
        let audited = t
            .audited(&p.id, "notifications.channel.create", "ada")
            .await;
        assert_eq!(audited.len(), 1, "[{b}]");
        assert!(audited[0].contains("ops@example.org") && audited[0].contains("secret set"));
        for d in t
            .audited(&p.id, "notifications.channel.update", "ada")
            .await
        {
            assert!(!d.contains(SECRET), "[{b}] {d}");
        }

        let (st, _) = t.send(Method::DELETE, &one, &w.op, "").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, _) = t.send(Method::DELETE, &one, &w.admin, "").await;
        assert_eq!(st, StatusCode::NO_CONTENT, "[{b}]");
        let (st, _) = t.get(&one, &w.admin).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
    }
}

#[tokio::test]
async fn a_webhook_key_stays_with_admins() {
    for (b, t) in apps().await {
        let p = t.state.store.ensure_project("a").await.unwrap();
        let other = t.state.store.ensure_project("b").await.unwrap();
        let w = people(&t, &p.id, &other.id).await;
        let list = format!("/api/v1/projects/{}/notification-channels", p.id);
        let url = "https://hooks.slack.com/services/T000/B000/XXXXSECRETPATH";
        let body = json!({"name": "slack", "kind": "webhook", "webhook": {"url": url, "format": "slack"}, "secret": "sign"});
        let (st, v) = t
            .send(Method::POST, &list, &w.admin, &body.to_string())
            .await;
        assert_eq!(st, StatusCode::CREATED, "[{b}] {v}");
        assert_eq!(v["webhook"]["url"], url, "[{b}] the admin sees it");
        let (_, v) = t.get(&list, &w.viewer).await;
        assert_eq!(
            v["items"][0]["webhook"]["url"], "https://hooks.slack.com/…",
            "[{b}]"
        );
        let audited = t
            .audited(&p.id, "notifications.channel.create", "ada")
            .await;
        assert!(!audited[0].contains("SECRETPATH"), "[{b}] {}", audited[0]);
        let http =
            json!({"name": "x", "kind": "webhook", "webhook": {"url": "http://example.org/h"}});
        let (st, e) = t
            .send(Method::POST, &list, &w.admin, &http.to_string())
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");
        let reports =
            json!({"name": "x", "kind": "webhook", "reports": true, "webhook": {"url": url}});
        let (st, e) = t
            .send(Method::POST, &list, &w.admin, &reports.to_string())
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");
    }
}

#[tokio::test]
async fn deliveries_list_by_state_and_operators_retry() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let p = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let w = people(&t, &p.id, &other.id).await;
        let list = format!("/api/v1/projects/{}/notification-channels", p.id);
        let (_, c) = t
            .send(Method::POST, &list, &w.admin, &email_body().to_string())
            .await;
        let srv = t.server(&p.id, "web-1").await;
        let now = hostward_store::now();
        s.store_records(
            &srv.id,
            &[(1, alarm(now, "192.0.2.1")), (2, alarm(now, "192.0.2.2"))],
        )
        .await
        .unwrap();
        let deliveries = format!("/api/v1/projects/{}/notifications", p.id);
        let (st, v) = t.get(&deliveries, &w.viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {v}");
        assert_eq!(v["total"], 2, "[{b}] {v}");
        assert_eq!(v["items"][0]["channel_id"], c["id"]);
        assert_eq!(v["items"][0]["payload"]["server_name"], "web-1");
        let (st, _) = t.get(&deliveries, &w.stranger).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let (st, e) = t.get(&format!("{deliveries}?state=lost"), &w.viewer).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");

        // One fails for good, one is sent.
        let (claim, rows) = s.claim_notifications(now, 300, 10).await.unwrap();
        let (a, z) = (&rows[0].delivery.id, &rows[1].delivery.id);
        s.notification_failed(
            &claim,
            a,
            "SMTP smtp.example.org:587: permanent error (535)",
            None,
            now,
        )
        .await
        .unwrap();
        s.notifications_sent(&claim, std::slice::from_ref(z), now)
            .await
            .unwrap();
        let (_, v) = t
            .get(&format!("{deliveries}?state=failing"), &w.viewer)
            .await;
        assert_eq!(v["total"], 1, "[{b}] {v}");
        assert_eq!(
            v["items"][0]["last_error"],
            "SMTP smtp.example.org:587: permanent error (535)"
        );

        let retry = |id: &str| format!("/api/v1/notifications/{id}/retry");
        let (st, _) = t.send(Method::POST, &retry(a), &w.viewer, "").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, _) = t.send(Method::POST, &retry(a), &w.stranger, "").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let (st, v) = t.send(Method::POST, &retry(a), &w.op, "").await;
        assert_eq!(st, StatusCode::OK, "[{b}] {v}");
        assert_eq!(
            (v["state"].as_str(), v["attempts"].as_i64()),
            (Some("pending"), Some(0))
        );
        let (st, e) = t.send(Method::POST, &retry(z), &w.op, "").await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {e}");
        assert_eq!(
            t.audited(&p.id, "notifications.retry", "otto").await.len(),
            1
        );
    }
}

/// A webhook receiver answering 200 to one request; the request's head and body.
async fn one_request() -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let (mut sock, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf).to_string()
    });
    (port, h)
}

#[tokio::test]
async fn a_test_goes_through_the_outbox_to_the_channel_signed() {
    for (b, t) in apps().await {
        let p = t.state.store.ensure_project("a").await.unwrap();
        let other = t.state.store.ensure_project("b").await.unwrap();
        let w = people(&t, &p.id, &other.id).await;
        super::Notifier::spawn(t.state.clone());
        let (port, got) = one_request().await;
        let list = format!("/api/v1/projects/{}/notification-channels", p.id);
        let body = json!({"name": "hook", "kind": "webhook", "summary": false,
            "webhook": {"url": format!("http://127.0.0.1:{port}/hook"), "format": "teams"}, "secret": "sign-me"});
        let (_, c) = t
            .send(Method::POST, &list, &w.admin, &body.to_string())
            .await;
        let test = format!(
            "/api/v1/notification-channels/{}/test",
            c["id"].as_str().unwrap()
        );
        let (st, _) = t.send(Method::POST, &test, &w.viewer, "{}").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, e) = t
            .send(Method::POST, &test, &w.op, r#"{"kind":"page"}"#)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {e}");
        let (st, d) = t.send(Method::POST, &test, &w.op, "{}").await;
        assert_eq!(st, StatusCode::OK, "[{b}] {d}");
        assert_eq!(
            (d["state"].as_str(), d["kind"].as_str()),
            (Some("sent"), Some("test")),
            "[{b}] {d}"
        );
        let req = got.await.unwrap();
        let (head, body) = req.split_once("\r\n\r\n").unwrap();
        let head = head.to_lowercase();
        assert!(
            head.contains(&format!(
                "x-hostward-delivery: {}",
                d["id"].as_str().unwrap()
            )),
            "{head}"
        );
        assert!(
            head.contains("x-hostward-event: test") && head.contains("x-hostward-signature: t="),
            "{head}"
        );
        let sig = head
            .lines()
            .find_map(|l| l.strip_prefix("x-hostward-signature: "))
            .unwrap();
        assert!(super::format::verify_signature(
            b"sign-me",
            sig,
            body.as_bytes(),
            hostward_store::now(),
            60
        ));
        let card: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(card["@type"], "MessageCard", "[{b}] {card}");
        assert!(
            card["title"]
                .as_str()
                .unwrap()
                .starts_with("[test] HIGH alarm on test-server")
        );
    }
}

#[tokio::test]
async fn reports_are_queued_for_email_channels_that_take_them() {
    for (b, t) in apps().await {
        let p = t.state.store.ensure_project("a").await.unwrap();
        let other = t.state.store.ensure_project("b").await.unwrap();
        let w = people(&t, &p.id, &other.id).await;
        let list = format!("/api/v1/projects/{}/notification-channels", p.id);
        let mut with_reports = email_body();
        with_reports["reports"] = json!(true);
        t.send(Method::POST, &list, &w.admin, &with_reports.to_string())
            .await;
        t.send(Method::POST, &list, &w.admin, &email_body().to_string())
            .await;
        let n = super::enqueue_email(
            &t.state,
            &p.id,
            "Weekly report",
            "see attached",
            Some("<p>see attached</p>"),
            Some((
                "report.csv".into(),
                "text/csv".into(),
                b"a,b\n1,2\n".to_vec(),
            )),
        )
        .await
        .unwrap();
        assert_eq!(n, 1, "[{b}]");
        assert_eq!(
            super::enqueue_email(&t.state, &other.id, "x", "y", None, None)
                .await
                .unwrap(),
            0
        );
        let bad = super::enqueue_email(
            &t.state,
            &p.id,
            "x",
            "y",
            None,
            Some(("r".into(), "not a type".into(), vec![])),
        )
        .await
        .unwrap_err();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "[{b}]");
        let (_, v) = t
            .get(
                &format!("/api/v1/projects/{}/notifications", p.id),
                &w.viewer,
            )
            .await;
        assert_eq!(v["items"][0]["kind"], "report", "[{b}] {v}");
        assert_eq!(v["items"][0]["payload"]["attachment"]["name"], "report.csv");
    }
}
