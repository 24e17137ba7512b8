//! Editions through the REST API on both backends: the quota and binding rules, and what each
//! edition turns on in the agent config the gateway sends.

use axum::http::{Method, StatusCode};
use hostward_proto::ransom::RansomPolicy;
use hostward_store::status::{ONLINE, StopHint};

use crate::api::testutil::{TestApp, apps};
use crate::auth::Role;

async fn online(t: &TestApp, id: &str) {
    t.state
        .store
        .set_agent_status(id, ONLINE, "", StopHint::None)
        .await
        .unwrap();
}

#[tokio::test]
async fn switching_editions_turns_the_agent_s_modules_on_and_off() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web = t.server(&a.id, "web").await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        // The project runs ransomware protection and file integrity where the edition has them.
        s.set_policy(
            &a.id,
            &RansomPolicy {
                enabled: true,
                directories: vec!["/srv/data".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let uri = format!("/api/v1/servers/{}/edition", web.id);

        // Only while the agent is online, and only for admins of the project.
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":"premium"}"#)
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        assert_eq!(body["error"]["code"], "agent_offline", "[{b}] {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("web"),
            "[{b}] {body}"
        );
        online(&t, &web.id).await;
        let (st, _) = t
            .send(Method::PUT, &uri, &viewer, r#"{"edition":"premium"}"#)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, _) = t
            .send(Method::PUT, &uri, &stranger, r#"{"edition":"premium"}"#)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":"gold"}"#)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("edition: unknown edition \"gold\""),
            "[{b}] {body}"
        );

        // Professional: no ransomware, no file integrity, no asset discovery; blocking on.
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":"professional"}"#)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["edition"], "professional", "[{b}]");
        let c = t.config_sections(&web.id).await;
        assert_eq!(c["ransom"]["enabled"], false, "[{b}]");
        assert_eq!(c["bruteforce"]["block"], true, "[{b}]");
        assert_eq!(c["inventory"]["interval_secs"]["accounts"], 0, "[{b}]");
        assert!(
            c["inventory"]["interval_secs"].get("software").is_none(),
            "[{b}]"
        );
        let disabled = c["behaviour"]["disabled"].as_array().unwrap();
        assert!(disabled.contains(&"port_scan".into()), "[{b}]");
        assert!(!disabled.contains(&"reverse_shell".into()), "[{b}]");

        // Premium: the ransomware module is on with the project's directories.
        let before = s.server(&web.id).await.unwrap().unwrap().config_version;
        let (st, _) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":"premium"}"#)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let after = s.server(&web.id).await.unwrap().unwrap().config_version;
        assert!(after > before, "[{b}]: the agent is sent a new config");
        let c = t.config_sections(&web.id).await;
        assert_eq!(c["ransom"]["enabled"], true, "[{b}]");
        assert_eq!(c["ransom"]["directories"][0], "/srv/data", "[{b}]");
        assert_eq!(c["tamper"]["enabled"], false, "[{b}]: not without WTP");

        // Basic: brute force alarms, nothing blocks, nothing isolates.
        let (st, _) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":"basic"}"#)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let c = t.config_sections(&web.id).await;
        assert_eq!(c["bruteforce"]["block"], false, "[{b}]");
        assert_eq!(c["behaviour"]["scan_block"], false, "[{b}]");
        assert_eq!(c["malware"]["enabled"], false, "[{b}]");
        assert_eq!(c["ransom"]["enabled"], false, "[{b}]");

        // Unbind: protection off, the quota free, and the audit says who did what.
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, r#"{"edition":null}"#)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["edition"], "", "[{b}]");
        assert_eq!(body["protection_status"], "disabled", "[{b}]");
        assert_eq!(body["protection_reason"], "no_edition", "[{b}]");
        let trail = t.audited(&a.id, "server.edition", "ada").await;
        assert_eq!(
            trail,
            vec![
                "basic -> none",
                "premium -> basic",
                "professional -> premium",
                "wtp -> professional"
            ],
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn quotas_are_set_checked_and_reported() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let one = t.server(&a.id, "one").await;
        let two = t.server(&a.id, "two").await;
        online(&t, &one.id).await;
        online(&t, &two.id).await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/editions", a.id);

        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body["default_edition"], "wtp", "[{b}]");
        assert_eq!(body["matrix"].as_array().unwrap().len(), 5, "[{b}]");
        let (st, _) = t
            .send(Method::PUT, &uri, &viewer, r#"{"quotas":{"premium":1}}"#)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");

        // Bad input is named and nothing is written.
        for (body, says) in [
            (
                r#"{"quotas":{"premium":-1}}"#,
                "quotas.premium: must be between 0",
            ),
            (r#"{"quotas":{"gold":1}}"#, "quotas.gold: unknown edition"),
            (
                r#"{"default_edition":"x"}"#,
                "default_edition: unknown edition",
            ),
            (r#"{"quota":{}}"#, "unknown field"),
        ] {
            let (st, resp) = t.send(Method::PUT, &uri, &admin, body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}: {resp}");
            assert!(
                resp["error"]["message"].as_str().unwrap().contains(says),
                "[{b}] {resp}"
            );
        }
        let (_, body) = t.get(&uri, &viewer).await;
        assert!(
            body["quotas"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["total"].is_null()),
            "[{b}] {body}"
        );

        // Two servers have the full edition: a cap of one is refused.
        let (st, body) = t
            .send(Method::PUT, &uri, &admin, r#"{"quotas":{"wtp":1}}"#)
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        let (st, body) = t
            .send(
                Method::PUT,
                &uri,
                &admin,
                r#"{"default_edition":"premium","quotas":{"premium":1}}"#,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let premium = body["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["edition"] == "premium")
            .unwrap()
            .clone();
        assert_eq!(
            (premium["total"].as_i64(), premium["used"].as_i64()),
            (Some(1), Some(0)),
            "[{b}]"
        );
        let bind = |id: &str| format!("/api/v1/servers/{id}/edition");
        let (st, _) = t
            .send(
                Method::PUT,
                &bind(&one.id),
                &admin,
                r#"{"edition":"premium"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let (st, body) = t
            .send(
                Method::PUT,
                &bind(&two.id),
                &admin,
                r#"{"edition":"premium"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("premium quota is used up: 1 of 1"),
            "[{b}] {body}"
        );
        assert_eq!(
            s.server(&two.id).await.unwrap().unwrap().edition,
            "wtp",
            "[{b}]: unchanged"
        );
    }
}

#[tokio::test]
async fn usage_is_reported_as_json_and_csv_with_checked_days() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let web = t.server(&a.id, "web").await;
        online(&t, &web.id).await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let noon = 1_796_644_800; // 2026-12-07 12:00 UTC
        s.meter_usage(noon).await.unwrap();
        s.meter_usage(noon + 60).await.unwrap();
        let uri = format!(
            "/api/v1/projects/{}/usage?from=2026-12-07&to=2026-12-07",
            a.id
        );
        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(body[0]["server_name"], "web", "[{b}] {body}");
        assert_eq!(body[0]["seconds"], 60, "[{b}] {body}");
        let (st, _, text) = t.get_text(&format!("{uri}&format=csv"), &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("day,server_id,server_name,edition,seconds,hours"),
            "[{b}]"
        );
        assert_eq!(
            lines.next(),
            Some(format!("2026-12-07,{},web,wtp,60,0.02", web.id).as_str()),
            "[{b}]"
        );
        for (q, says) in [
            ("from=2026-02-30", "from: \"2026-02-30\" is not a day"),
            ("to=07-12-2026", "to: \"07-12-2026\" is not a day"),
            ("from=2026-12-08&to=2026-12-07", "from: after to"),
            ("from=2024-01-01&to=2026-12-07", "at most 366 days"),
        ] {
            let (st, body) = t
                .get(&format!("/api/v1/projects/{}/usage?{q}", a.id), &viewer)
                .await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {q}: {body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(says),
                "[{b}] {body}"
            );
        }
    }
}
