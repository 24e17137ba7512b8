//! The security score of a seeded project, on both backends, equals the value the reference
//! table (hss-features §10.4) gives for what was seeded, computed here by hand.

use axum::http::StatusCode;
use hostward_proto::baseline::{BaselineResult, PolicyReport};
use hostward_proto::risk::{
    RiskReport, ScanCheck, ScanTrigger, WeakPassword, WeakPasswordResult, WeakReason,
};
use hostward_proto::{Message, Severity};

use crate::api::testutil::apps;
use crate::auth::Role;
use hostward_store::{MatchedVuln, now, testdb};

fn vuln(cve: &str, sev: Severity) -> MatchedVuln {
    MatchedVuln {
        advisory_id: format!("DSA-{cve}"),
        cve: cve.into(),
        package: format!("pkg-{cve}"),
        source_package: None,
        manager: "dpkg".into(),
        installed_version: "1".into(),
        fixed_version: Some("2".into()),
        cvss: None,
        severity: sev,
        summary: "s".into(),
        fix_command: None,
        restart: "none".into(),
    }
}

#[tokio::test]
async fn a_seeded_projects_score_is_the_reference_tables_value() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web1 = t.server(&a.id, "web-1").await;
        let web2 = t.server(&a.id, "web-2").await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        let uri = format!("/api/v1/projects/{}/score", a.id);

        // Nothing checked yet: no vulnerability scan (15), no baseline check (10).
        let (st, body) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        let unprotected = [&web1, &web2]
            .iter()
            .filter(|srv| srv.protection_status != "enabled")
            .count() as f64;
        let none_protected = if unprotected == 2.0 { 30.0 } else { 0.0 };
        let expect = |lost: f64| (100.0f64 - lost).round() as i64;
        assert_eq!(
            body["score"],
            expect(15.0 + 10.0 + none_protected + 0.5 * unprotected),
            "[{b}] {body}"
        );

        // Vulnerabilities: 1 critical, 2 high, 3 low, unhandled: 10 + 2*3 + 3*0.1 = 16.3 (of 20).
        let vulns = [
            vuln("CVE-1", Severity::Critical),
            vuln("CVE-2", Severity::High),
            vuln("CVE-3", Severity::High),
            vuln("CVE-4", Severity::Low),
            vuln("CVE-5", Severity::Low),
            vuln("CVE-6", Severity::Low),
        ];
        s.apply_vuln_matches(&web1.id, 1, &vulns).await.unwrap();
        // Compliance: a weak password (10), baseline failures high 10 + 2 medium 3 each = 26,
        // capped at 20.
        let report = RiskReport {
            task_id: None,
            trigger: ScanTrigger::Task,
            started_at: now() - 5,
            finished_at: now(),
            checks: vec![ScanCheck::WeakPasswords, ScanCheck::Baselines],
            weak_passwords: Some(WeakPasswordResult {
                accounts_checked: 2,
                candidates: 10,
                complete: true,
                findings: vec![WeakPassword {
                    account: "bob".into(),
                    uid: Some(1000),
                    login_allowed: true,
                    reasons: vec![WeakReason::CommonPassword],
                    shared_with: vec![],
                }],
                issues: vec![],
            }),
            password_policy: None,
            baselines: Some(BaselineResult {
                policies: vec![PolicyReport {
                    policy_id: "hostward_sshd".into(),
                    name: "SSH".into(),
                    applicable: true,
                    reason: None,
                    checks: vec![
                        testdb::failed_check(1, "check 1", Severity::High),
                        testdb::failed_check(2, "check 2", Severity::Medium),
                        testdb::failed_check(3, "check 3", Severity::Medium),
                    ],
                }],
                ..Default::default()
            }),
        };
        s.store_records(&web1.id, &[(1, Message::Risk(report))])
            .await
            .unwrap();

        let (_, body) = t.get(&uri, &viewer).await;
        let lost = 16.3 + 20.0 + none_protected + 0.5 * unprotected;
        assert_eq!(body["score"], expect(lost), "[{b}] {body}");
        let cat = |name: &str| {
            body["categories"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap()["deducted"]
                .as_f64()
                .unwrap()
        };
        assert!((cat("vulnerabilities") - 16.3).abs() < 1e-9, "[{b}]");
        assert_eq!(cat("compliance"), 20.0, "[{b}] capped at its share");
        assert!(
            body["not_scored"].as_array().is_some_and(|n| !n.is_empty()),
            "[{b}]"
        );
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn each_servers_score_uses_the_same_table_and_the_dashboard_answers_in_one() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let other = s.ensure_project("b").await.unwrap();
        let web1 = t.server(&a.id, "web-1").await;
        let web2 = t.server(&a.id, "web-2").await;
        let viewer = t
            .token(&t.user("vic", &[(&a.id, Role::Viewer)]).await)
            .await;
        let stranger = t
            .token(&t.user("bob", &[(&other.id, Role::Admin)]).await)
            .await;
        // web-1: 1 critical, 2 high, 3 low unhandled: 10 + 6 + 0.3 = 16.3, and matched now.
        let vulns = [
            vuln("CVE-1", Severity::Critical),
            vuln("CVE-2", Severity::High),
            vuln("CVE-3", Severity::High),
            vuln("CVE-4", Severity::Low),
            vuln("CVE-5", Severity::Low),
            vuln("CVE-6", Severity::Low),
        ];
        s.apply_vuln_matches(&web1.id, 1, &vulns).await.unwrap();
        // Each server alone: no baseline check (10); unprotected, it is "no server protected"
        // (30) and one unprotected server (0.5).
        let alone = |srv: &hostward_store::Server| {
            if srv.protection_status != "enabled" {
                30.5
            } else {
                0.0
            }
        };
        let expect = |lost: f64| (100.0f64 - lost).round() as i64;
        let score = async |id: &str, token: &str| {
            t.get(&format!("/api/v1/servers/{id}/score"), token).await
        };
        let (st, body) = score(&web1.id, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            body["score"],
            expect(16.3 + 10.0 + alone(&web1)),
            "[{b}] {body}"
        );
        // web-2 was never matched: no vulnerability scan in the past month (15).
        let (_, body) = score(&web2.id, &viewer).await;
        assert_eq!(
            body["score"],
            expect(15.0 + 10.0 + alone(&web2)),
            "[{b}] {body}"
        );
        assert_eq!(
            score(&web1.id, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );

        let uri = format!("/api/v1/projects/{}/dashboard", a.id);
        let (st, d) = t.get(&uri, &viewer).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {d}");
        let (_, sc) = t
            .get(&format!("/api/v1/projects/{}/score", a.id), &viewer)
            .await;
        assert_eq!(d["score"]["score"], sc["score"], "[{b}]");
        let trend = d["trend"].as_array().unwrap();
        assert_eq!(trend.len(), 7, "[{b}]");
        assert!(
            trend[..6].iter().all(|t| t["snapshot"].is_null()),
            "[{b}] no data, not made up"
        );
        assert_eq!(trend[6]["live"], true, "[{b}]");
        assert_eq!(trend[6]["snapshot"]["score"], sc["score"], "[{b}]");
        assert_eq!(trend[6]["snapshot"]["vulns"], 6, "[{b}]");
        let costs = d["costs_most"].as_array().unwrap();
        let lost: Vec<f64> = costs.iter().map(|c| c["lost"].as_f64().unwrap()).collect();
        assert!(lost.windows(2).all(|w| w[0] >= w[1]), "[{b}] {lost:?}");
        let total: f64 = lost.iter().sum();
        assert_eq!(
            (100.0 - total).round() as i64,
            sc["score"].as_i64().unwrap(),
            "[{b}] the costs add up to what the score lost"
        );
        assert_eq!(d["top_vulns"][0]["cve"], "CVE-1", "[{b}]");
        assert_eq!(d["top_vulns"].as_array().unwrap().len(), 6, "[{b}]");
        assert_eq!(d["overview"]["servers"], 2, "[{b}]");
        assert_eq!(d["server_scores"].as_array().unwrap().len(), 2, "[{b}]");
        assert_eq!(
            t.get(&uri, &stranger).await.0,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );

        // The job's snapshot is what the trend shows for the day.
        super::snapshot_all(&t.state).await.unwrap();
        let today = hostward_store::day_of(now());
        let snaps = s.snapshots(&a.id, today, today).await.unwrap();
        assert_eq!(snaps.len(), 1, "[{b}]");
        assert_eq!(Some(snaps[0].score), sc["score"].as_i64(), "[{b}]");
    }
}
