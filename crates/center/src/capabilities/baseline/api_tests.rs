//! Baseline API tests on both backends: the project's baseline policy (imported policies
//! checked by the engine, refused with file and line, stored, audited and pushed), and results
//! reported in a risk record, read per server and fleet-wide, handled (ignore, unignore,
//! verify as a one-check scan task) by the roles allowed, and hidden from other projects.

use axum::http::{Method, StatusCode};
use hostward_proto::Message;
use hostward_proto::Severity;
use hostward_proto::baseline::{BaselineResult, CheckResult, Outcome, PolicyReport};
use hostward_proto::risk::{RiskReport, ScanCheck, ScanTrigger};
use serde_json::json;

use crate::api::testutil::apps;
use crate::auth::Role;

/// A policy in Wazuh's SCA format, as a team would keep it.
const SITE: &str = r#"
policy:
  id: "site_ssh"
  file: "site_ssh.yml"
  name: "Site SSH rules"
  description: "What our auditors ask."
requirements:
  title: "OpenSSH server"
  description: "sshd is configured"
  condition: all
  rules:
    - 'f:/etc/ssh/sshd_config'
checks:
  - id: 50001
    title: "No X11 forwarding"
    description: "X11Forwarding is off."
    rationale: "X11 forwarding opens the client's display to the server."
    remediation: "Set X11Forwarding no in /etc/ssh/sshd_config."
    compliance:
      - cis: ["5.2.6"]
    condition: none
    rules:
      - 'f:/etc/ssh/sshd_config -> r:^\s*X11Forwarding\s+yes'
"#;

fn report(checks: Vec<(i64, Outcome)>) -> RiskReport {
    RiskReport {
        task_id: None,
        trigger: ScanTrigger::First,
        started_at: 1,
        finished_at: 2,
        checks: vec![ScanCheck::Baselines],
        weak_passwords: None,
        password_policy: None,
        baselines: Some(BaselineResult {
            policies: vec![
                PolicyReport {
                    policy_id: "hostward_sshd".into(),
                    name: "SSH server".into(),
                    applicable: true,
                    reason: None,
                    checks: checks
                        .into_iter()
                        .map(|(id, result)| CheckResult {
                            id,
                            title: format!("check {id}"),
                            result,
                            reason: None,
                            evidence: vec![format!(
                                "rule 1: /etc/ssh/sshd_config:12: PermitRootLogin yes ({id})"
                            )],
                            severity: Severity::High,
                            rationale: "why".into(),
                            remediation: "how".into(),
                            compliance: Default::default(),
                        })
                        .collect(),
                },
                PolicyReport {
                    policy_id: "hostward_redis".into(),
                    name: "Redis".into(),
                    applicable: false,
                    reason: Some("requirements not met: Redis is installed".into()),
                    checks: vec![],
                },
            ],
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn the_baseline_policy_checks_imports_with_file_and_line_and_is_pushed() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let admin = t.token(&t.user("ada", &[(&a.id, Role::Admin)]).await).await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/baseline-policy", a.id);

        let (st, body) = t.get(&uri, &op).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let ids: Vec<&str> = body["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&"hostward_sshd") && ids.contains(&"hostward_debian"),
            "[{b}] {ids:?}"
        );
        assert!(
            body["policies"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["enabled"] == true),
            "[{b}]"
        );

        // Malformed YAML: refused with the file and the line; nothing stored.
        let broken = SITE.replace("  condition: all\n  rules:", "  condition: all\n  rules: [");
        let (st, body) = t
            .send(
                Method::POST,
                &format!("{uri}/imports"),
                &admin,
                &json!({"file": "site_ssh.yml", "text": broken}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(msg.starts_with("imported[0]: site_ssh.yml:"), "[{b}] {msg}");
        // A regex the linear-time engine cannot run (a backreference) is refused too.
        let backref = SITE.replace(r"^\s*X11Forwarding\s+yes", r"^(a)\1");
        let (st, body) = t
            .send(
                Method::POST,
                &format!("{uri}/imports"),
                &admin,
                &json!({"file": "site_ssh.yml", "text": backref}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        let (st, body) = t
            .send(
                Method::PUT,
                &uri,
                &admin,
                &json!({"disabled": ["no_such_policy"]}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert!(body.to_string().contains("disabled[0]"), "[{b}] {body}");
        let (stored, _) = s
            .policy::<hostward_proto::baseline::BaselinePolicy>(&a.id)
            .await
            .unwrap();
        assert_eq!(stored, Default::default(), "[{b}] nothing stored");

        // Operators may not change it; another project's admin does not see it.
        let good = json!({"file": "site_ssh.yml", "text": SITE}).to_string();
        let (st, _) = t
            .send(Method::POST, &format!("{uri}/imports"), &op, &good)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, _) = t
            .send(Method::POST, &format!("{uri}/imports"), &stranger, &good)
            .await;
        assert!(
            st == StatusCode::FORBIDDEN || st == StatusCode::NOT_FOUND,
            "[{b}] {st}"
        );

        let (_, before) = s
            .policy::<hostward_proto::baseline::BaselinePolicy>(&a.id)
            .await
            .unwrap();
        let (st, body) = t
            .send(Method::POST, &format!("{uri}/imports"), &admin, &good)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let site = body["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "site_ssh")
            .unwrap()
            .clone();
        assert_eq!(
            (site["origin"].as_str(), site["checks"].as_u64()),
            (Some("imported"), Some(1)),
            "[{b}]"
        );
        let (st, _) = t
            .send(
                Method::PUT,
                &uri,
                &admin,
                &json!({"disabled": ["hostward_redis"], "imported": body["policy"]["imported"]})
                    .to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        let (_, after) = s
            .policy::<hostward_proto::baseline::BaselinePolicy>(&a.id)
            .await
            .unwrap();
        assert_eq!(
            after,
            before + 2,
            "[{b}] each change is a new version of the agents' config"
        );
        let sec = &t.config_sections(&srv.id).await["baseline"];
        assert_eq!(sec["imported"][0]["file"], "site_ssh.yml", "[{b}] {sec}");
        assert_eq!(sec["disabled"][0], "hostward_redis", "[{b}]");
        assert_eq!(
            t.audited(&a.id, "baseline.policy", "ada").await.len(),
            2,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn results_are_read_handled_and_verified_by_the_roles_allowed() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let srv = t.server(&a.id, "web").await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        s.store_records(
            &srv.id,
            &[(
                1,
                Message::Risk(report(vec![(10001, Outcome::Fail), (10002, Outcome::Pass)])),
            )],
        )
        .await
        .unwrap();

        let (st, body) = t
            .get(&format!("/api/v1/servers/{}/baselines", srv.id), &viewer)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert!(body["scanned_at"].is_i64(), "[{b}] {body}");
        assert_eq!(body["summary"]["failed"], 1, "[{b}] {body}");
        let redis = body["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy_id"] == "hostward_redis")
            .unwrap();
        assert_eq!(redis["applicable"], false, "[{b}]");
        let items = body["results"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "[{b}]");
        assert_eq!(
            (items[0]["check_id"].as_i64(), items[0]["result"].as_str()),
            (Some(10001), Some("fail")),
            "failures first [{b}]"
        );
        assert!(
            items[0]["evidence"][0]
                .as_str()
                .unwrap()
                .contains("sshd_config:12"),
            "[{b}]"
        );
        let id = items[0]["id"].as_str().unwrap().to_string();

        let (st, body) = t.get("/api/v1/baselines", &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert_eq!(body["items"][0]["failing"], 1, "[{b}] {body}");
        let (st, _, csv) = t
            .get_text("/api/v1/baselines/results?result=fail&format=csv", &viewer)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}]");
        assert!(
            csv.lines().nth(1).is_some_and(|l| l.contains("10001")),
            "[{b}] {csv}"
        );
        let (st, _) = t
            .get(&format!("/api/v1/baselines/results/{id}"), &stranger)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let (st, _) = t
            .get(&format!("/api/v1/servers/{}/baselines", srv.id), &stranger)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "[{b}]");
        let (st, body) = t
            .get("/api/v1/baselines/results?result=maybe", &viewer)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");

        // Viewers look; operators handle.
        let ignore =
            json!({"action": "ignore", "result_ids": [id], "note": "jump host"}).to_string();
        let (st, _) = t
            .send(Method::POST, "/api/v1/baselines/actions", &viewer, &ignore)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}]");
        let (st, body) = t
            .send(Method::POST, "/api/v1/baselines/actions", &op, &ignore)
            .await;
        assert_eq!(
            (st, body["changed"].as_u64()),
            (StatusCode::OK, Some(1)),
            "[{b}] {body}"
        );
        let counts = s.server(&srv.id).await.unwrap().unwrap().risk_counts;
        assert_eq!(counts["baseline_failed"], 0, "[{b}] {counts}");
        let (_, body) = t
            .get(&format!("/api/v1/baselines/results/{id}"), &viewer)
            .await;
        assert_eq!(body["result"]["state"], "ignored", "[{b}]");
        assert_eq!(
            (
                body["history"][0]["action"].as_str(),
                body["history"][0]["actor"].as_str()
            ),
            (Some("ignore"), Some("otto")),
            "[{b}] {body}"
        );

        // Verify: one scan task re-running that one check, noted in the history.
        let verify = json!({"action": "verify", "result_ids": [id]}).to_string();
        let (st, body) = t
            .send(Method::POST, "/api/v1/baselines/actions", &op, &verify)
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let task = &body["tasks"][0];
        assert_eq!(task["kind"], "risk_scan", "[{b}] {body}");
        assert_eq!(
            task["params"]["verify"],
            json!({"policy_id": "hostward_sshd", "check_id": 10001}),
            "[{b}] {body}"
        );
        let (_, body) = t
            .get(&format!("/api/v1/baselines/results/{id}"), &viewer)
            .await;
        assert_eq!(body["history"][0]["action"], "verify", "[{b}] {body}");
        assert_eq!(
            t.audited(&a.id, "baseline.ignore", "otto").await.len(),
            1,
            "[{b}]"
        );
    }
}
