//! Baseline results on both backends: a full run replaces a server's results keeping each
//! check's handling, a verification updates one check, ignoring and whitelist rules take a
//! failure out of the risk status, and the status waits for baselines to report.

use super::*;
use crate::{NewServer, testdb};
use hostward_proto::Message;
use hostward_proto::baseline::CheckRef;
use hostward_proto::risk::{RiskReport, ScanCheck, ScanTrigger};

async fn server(s: &Store, name: &str) -> (String, String) {
    let p = s.ensure_project("default").await.unwrap();
    let srv = s
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    (p.id, srv.id)
}

fn check(id: i64, result: Outcome) -> CheckResult {
    CheckResult {
        id,
        title: format!("check {id}"),
        result,
        reason: None,
        evidence: vec![format!(
            "rule 1: /etc/ssh/sshd_config:{id}: PermitRootLogin yes"
        )],
        severity: Severity::High,
        rationale: "r".into(),
        remediation: "fix it".into(),
        compliance: [("cis".to_string(), vec!["5.2.8".to_string()])].into(),
    }
}

fn sshd(checks: Vec<CheckResult>) -> PolicyReport {
    PolicyReport {
        policy_id: "hostward_sshd".into(),
        name: "SSH".into(),
        applicable: true,
        reason: None,
        checks,
    }
}

fn nginx_absent() -> PolicyReport {
    PolicyReport {
        policy_id: "hostward_nginx".into(),
        name: "nginx".into(),
        applicable: false,
        reason: Some("requirements not met: nginx is installed".into()),
        checks: vec![],
    }
}

fn report(b: BaselineResult) -> RiskReport {
    RiskReport {
        task_id: None,
        trigger: ScanTrigger::Task,
        started_at: 10,
        finished_at: 20,
        checks: vec![ScanCheck::Baselines],
        weak_passwords: None,
        password_policy: None,
        baselines: Some(b),
    }
}

async fn results(s: &Store, server_id: &str) -> Vec<(i64, String, String)> {
    let (rows, _) = s
        .baseline_findings(&BaselineFilter {
            server_id: Some(server_id.into()),
            page: 1,
            per_page: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut v: Vec<_> = rows
        .into_iter()
        .map(|f| (f.check_id, f.result, f.state))
        .collect();
    v.sort();
    v
}

async fn counts(s: &Store, id: &str) -> (String, i64, String) {
    let srv = s.server(id).await.unwrap().unwrap();
    (
        srv.risk_status,
        srv.risk_counts["baseline_failed"].as_i64().unwrap_or(-1),
        srv.risk_reason,
    )
}

#[tokio::test]
async fn a_full_run_replaces_results_and_keeps_their_handling() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (_, id) = server(s, "web-1").await;
        let mut seq = 0;
        let mut send = async |b: BaselineResult| {
            seq += 1;
            s.store_records(&id, &[(seq, Message::Risk(report(b)))])
                .await
                .unwrap();
        };
        send(BaselineResult {
            policies: vec![
                sshd(vec![
                    check(1, Outcome::Fail),
                    check(2, Outcome::Pass),
                    check(3, Outcome::Fail),
                ]),
                nginx_absent(),
            ],
            ..Default::default()
        })
        .await;
        assert_eq!(
            results(s, &id).await,
            [
                (1, "fail".into(), "open".into()),
                (2, "pass".into(), "open".into()),
                (3, "fail".into(), "open".into())
            ],
            "{backend}"
        );
        let (status, failed, reason) = counts(s, &id).await;
        assert_eq!((status.as_str(), failed), ("pending", 2), "{backend}");
        assert!(
            !reason.contains("baselines"),
            "baselines reported: {reason} {backend}"
        );
        let pols = s.baseline_policies(&id).await.unwrap();
        assert_eq!(pols.len(), 2, "{backend}");
        let nginx = pols
            .iter()
            .find(|p| p.policy_id == "hostward_nginx")
            .unwrap();
        assert!(
            !nginx.applicable && nginx.reason.as_deref().unwrap().contains("nginx"),
            "{backend}"
        );
        let sshd_row = pols
            .iter()
            .find(|p| p.policy_id == "hostward_sshd")
            .unwrap();
        assert_eq!((sshd_row.passed, sshd_row.failed), (1, 2), "{backend}");

        // Ignored: out of the counts, with who and why in the history.
        let (rows, _) = s
            .baseline_findings(&BaselineFilter {
                server_id: Some(id.clone()),
                check_id: Some(1),
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let one = rows[0].id.clone();
        assert_eq!(rows[0].evidence.len(), 1, "{backend}");
        assert_eq!(rows[0].compliance["cis"][0], "5.2.8", "{backend}");
        let n = s
            .set_baseline_state(
                std::slice::from_ref(&one),
                baseline_state::IGNORED,
                "alice",
                "ignore",
                "jump host",
            )
            .await
            .unwrap();
        assert_eq!(n, 1, "{backend}");
        assert_eq!(counts(s, &id).await.1, 1, "{backend}");

        // The next run: check 1 still fails (still ignored), 3 passes, 2 is gone.
        send(BaselineResult {
            policies: vec![sshd(vec![check(1, Outcome::Fail), check(3, Outcome::Pass)])],
            ..Default::default()
        })
        .await;
        assert_eq!(
            results(s, &id).await,
            [
                (1, "fail".into(), "ignored".into()),
                (3, "pass".into(), "open".into())
            ],
            "{backend}"
        );
        assert_eq!(counts(s, &id).await.1, 0, "{backend}");
        assert_eq!(
            s.baseline_policies(&id).await.unwrap().len(),
            1,
            "nginx no longer ran: {backend}"
        );
        let h = s.handling_history(History::Baseline, &one).await.unwrap();
        let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["ignore", "failed"], "newest first: {backend}");
        assert_eq!(
            (h[0].actor.as_str(), h[0].note.as_str()),
            ("alice", "jump host"),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_verification_updates_its_one_check_and_rules_ignore_later_failures() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (pid, a) = server(s, "web-1").await;
        let (_, b) = server(s, "web-2").await;
        s.store_records(
            &a,
            &[(
                1,
                Message::Risk(report(BaselineResult {
                    policies: vec![sshd(vec![check(1, Outcome::Fail), check(2, Outcome::Fail)])],
                    ..Default::default()
                })),
            )],
        )
        .await
        .unwrap();
        // Verify check 1 after the fix: only it changes.
        s.store_records(
            &a,
            &[(
                2,
                Message::Risk(report(BaselineResult {
                    policies: vec![sshd(vec![check(1, Outcome::Pass)])],
                    only: Some(CheckRef {
                        policy_id: "hostward_sshd".into(),
                        check_id: 1,
                    }),
                    issues: vec![],
                })),
            )],
        )
        .await
        .unwrap();
        assert_eq!(
            results(s, &a).await,
            [
                (1, "pass".into(), "open".into()),
                (2, "fail".into(), "open".into())
            ],
            "{backend}"
        );
        let (rows, _) = s
            .baseline_findings(&BaselineFilter {
                server_id: Some(a.clone()),
                check_id: Some(1),
                page: 1,
                per_page: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows[0].failing_since, None, "{backend}");
        let h = s
            .handling_history(History::Baseline, &rows[0].id)
            .await
            .unwrap();
        assert_eq!(h[0].action, "passed", "{backend}");

        // A rule for check 2 on web-2 only: web-1's failure stays open, web-2's is ignored on
        // arrival.
        let n = s
            .create_baseline_rule(&BaselineRule {
                id: new_id(),
                project_id: pid.clone(),
                policy_id: "hostward_sshd".into(),
                check_id: 2,
                server_ids: vec![b.clone()],
                reason: "bastion".into(),
                created_by: "alice".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        assert_eq!(n, 0, "web-2 has not reported: {backend}");
        s.store_records(
            &b,
            &[(
                1,
                Message::Risk(report(BaselineResult {
                    policies: vec![sshd(vec![check(2, Outcome::Fail)])],
                    ..Default::default()
                })),
            )],
        )
        .await
        .unwrap();
        assert_eq!(
            results(s, &b).await,
            [(2, "fail".into(), "ignored".into())],
            "{backend}"
        );
        assert_eq!(
            results(s, &a).await[1],
            (2, "fail".into(), "open".into()),
            "{backend}"
        );
        let (groups, total) = s
            .baseline_checks(std::slice::from_ref(&pid), 1, 50)
            .await
            .unwrap();
        assert_eq!(total, 2, "{backend}");
        let g2 = groups.iter().find(|g| g.check_id == 2).unwrap();
        assert_eq!((g2.failing, g2.ignored, g2.passing), (1, 1, 0), "{backend}");
        assert_eq!(groups[0].check_id, 2, "the most failing first: {backend}");
    }
}
