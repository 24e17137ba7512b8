//! The risk store on both backends: the database, matches and their handling, scan reports,
//! and the risk status they derive.

use super::*;
use crate::{NewServer, testdb};
use hostward_proto::Message;
use hostward_proto::risk::{
    PasswordPolicyResult, PolicyCheck, ScanCheck, ScanTrigger, WeakPassword, WeakPasswordResult,
    WeakReason,
};

fn vuln(cve: &str, package: &str, sev: Severity) -> MatchedVuln {
    MatchedVuln {
        advisory_id: format!("DSA-{cve}"),
        cve: cve.into(),
        package: package.into(),
        source_package: None,
        manager: "dpkg".into(),
        installed_version: "1.0-1".into(),
        fixed_version: Some("1.0-2".into()),
        cvss: Some(7.5),
        severity: sev,
        summary: "s".into(),
        fix_command: Some(format!("apt-get install --only-upgrade -y {package}")),
        restart: "none".into(),
    }
}

async fn server(s: &Store) -> (String, String) {
    let p = s.ensure_project("default").await.unwrap();
    let srv = s
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: "web-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    (p.id, srv.id)
}

async fn states(s: &Store, server_id: &str, state: Option<&str>) -> Vec<(String, String, String)> {
    let (rows, _) = s
        .vuln_findings(&VulnFilter {
            server_id: Some(server_id.into()),
            state: state.map(String::from),
            page: 1,
            per_page: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut v: Vec<_> = rows
        .into_iter()
        .map(|f| (f.cve, f.package, f.state))
        .collect();
    v.sort();
    v
}

async fn risk(s: &Store, id: &str) -> (String, serde_json::Value) {
    let srv = s.server(id).await.unwrap().unwrap();
    (srv.risk_status, srv.risk_counts)
}

async fn risk_reason(s: &Store, id: &str) -> String {
    s.server(id).await.unwrap().unwrap().risk_reason
}

/// A database with one advisory, and a clean weak-password and password-policy report of
/// `id`: the checks a status needs before it is more than `pending`.
async fn checks_reported(s: &Store, id: &str) {
    testdb::import_one_advisory(s).await;
    s.store_records(id, &[(1, Message::Risk(report(vec![], vec![])))])
        .await
        .unwrap();
}

#[tokio::test]
async fn matches_keep_handling_state_and_close_what_is_gone() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (_, id) = server(s).await;
        assert_eq!(risk(s, &id).await.0, "pending", "{backend}");
        checks_reported(s, &id).await;
        let a = vuln("CVE-2024-0001", "openssl", Severity::Critical);
        let b = vuln("CVE-2024-0002", "bash", Severity::Medium);
        let out = s
            .apply_vuln_matches(&id, 1, &[a.clone(), b.clone()])
            .await
            .unwrap();
        assert_eq!(
            (out.detected, out.gone, out.present),
            (2, 0, 2),
            "{backend}"
        );
        let (status, counts) = risk(s, &id).await;
        assert_eq!(status, "risky", "{backend}");
        assert_eq!(
            (counts["critical"].as_i64(), counts["medium"].as_i64()),
            (Some(1), Some(1)),
            "{backend}"
        );

        // A person ignores one; the next match keeps that.
        let (found, _) = s
            .vuln_findings(&VulnFilter {
                server_id: Some(id.clone()),
                cve: Some(a.cve.clone()),
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let fa = found[0].id.clone();
        assert_eq!(
            s.set_vuln_state(
                std::slice::from_ref(&fa),
                vuln_state::IGNORED,
                "alice",
                "ignore",
                "accepted",
                None
            )
            .await
            .unwrap(),
            1
        );
        s.apply_vuln_matches(&id, 1, &[a.clone(), b.clone()])
            .await
            .unwrap();
        assert_eq!(
            states(s, &id, None).await,
            vec![
                ("CVE-2024-0001".into(), "openssl".into(), "ignored".into()),
                ("CVE-2024-0002".into(), "bash".into(), "unhandled".into())
            ],
            "{backend}"
        );
        assert_eq!(
            risk(s, &id).await.1["critical"].as_i64(),
            Some(0),
            "ignored does not count: {backend}"
        );

        // bash was upgraded: gone means fixed; it comes back as unhandled if it reappears.
        let out = s
            .apply_vuln_matches(&id, 2, std::slice::from_ref(&a))
            .await
            .unwrap();
        assert_eq!(out.gone, 1, "{backend}");
        assert_eq!(
            states(s, &id, Some("fixed")).await,
            vec![("CVE-2024-0002".into(), "bash".into(), "fixed".into())],
            "{backend}"
        );
        assert_eq!(
            risk(s, &id).await.0,
            "safe",
            "only an ignored finding is left: {backend}"
        );
        s.apply_vuln_matches(&id, 3, &[a.clone(), b.clone()])
            .await
            .unwrap();
        assert_eq!(
            states(s, &id, Some("unhandled")).await.len(),
            1,
            "{backend}"
        );
        let hist = s.handling_history(History::Finding, &fa).await.unwrap();
        let actions: Vec<(&str, &str)> = hist
            .iter()
            .map(|h| (h.action.as_str(), h.actor.as_str()))
            .collect();
        assert_eq!(
            actions,
            [("ignore", "alice"), ("detected", "system")],
            "newest first: {backend}"
        );
        assert_eq!(
            s.risk_scan_state(&id).await.unwrap().vuln_matched_version,
            3,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn verification_and_fix_tasks_move_findings_on() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (pid, id) = server(s).await;
        let mut k = vuln(
            "CVE-2024-1000",
            "linux-image-6.1.0-13-amd64",
            Severity::High,
        );
        k.restart = "reboot".into();
        let o = vuln("CVE-2024-1001", "openssl", Severity::High);
        let v = vuln("CVE-2024-1002", "curl", Severity::Low);
        s.apply_vuln_matches(&id, 1, &[k.clone(), o.clone(), v.clone()])
            .await
            .unwrap();
        let all = s
            .vuln_findings(&VulnFilter {
                server_id: Some(id.clone()),
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .0;
        let idof = |p: &str| all.iter().find(|f| f.package == p).unwrap().id.clone();
        let tasks = s
            .create_tasks(&crate::NewTasks {
                targets: &[(pid.clone(), id.clone())],
                kind: "vuln_fix",
                params: &serde_json::json!({}),
                created_by: "alice",
                expires_at: None,
            })
            .await
            .unwrap();
        let task = tasks[0].id.clone();
        s.set_vuln_state(
            &[idof(&k.package), idof("openssl")],
            vuln_state::FIXING,
            "alice",
            "fix",
            "",
            Some(&task),
        )
        .await
        .unwrap();
        s.set_vuln_state(
            &[idof("curl")],
            vuln_state::VERIFYING,
            "alice",
            "verify",
            "",
            None,
        )
        .await
        .unwrap();
        let done = hostward_proto::TaskUpdate {
            task_id: task.clone(),
            state: hostward_proto::TaskState::Done,
            output: serde_json::json!({"exit_code": 0}),
        };
        s.store_records(&id, &[(1, Message::TaskUpdate(done))])
            .await
            .unwrap();
        let by_pkg = |v: Vec<(String, String, String)>| {
            v.into_iter().map(|(_, p, st)| (p, st)).collect::<Vec<_>>()
        };
        let mut got = by_pkg(states(s, &id, None).await);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("curl".into(), "verifying".into()),
                (k.package.clone(), "restart_required".into()),
                ("openssl".into(), "verifying".into()),
            ],
            "{backend}"
        );
        // The new software: openssl fixed; the kernel still runs; curl is still there.
        s.apply_vuln_matches(&id, 1, &[k.clone(), v.clone()])
            .await
            .unwrap();
        let mut got = by_pkg(states(s, &id, None).await);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("curl".into(), "unhandled".into()),
                (k.package.clone(), "restart_required".into())
            ],
            "{backend}"
        );
        assert_eq!(
            by_pkg(states(s, &id, Some("fixed")).await),
            vec![("openssl".into(), "fixed".into())],
            "{backend}"
        );
        let curl = s
            .handling_history(History::Finding, &idof("curl"))
            .await
            .unwrap();
        assert_eq!(
            curl[0].note, "still present after verification",
            "{backend}"
        );
    }
}

#[tokio::test]
async fn whitelist_rules_cover_their_scope_now_and_later() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (pid, id) = server(s).await;
        let other = s
            .create_server(&NewServer {
                project_id: pid.clone(),
                name: "db-1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        let a = vuln("CVE-2024-2000", "openssl", Severity::High);
        s.apply_vuln_matches(&id, 1, std::slice::from_ref(&a))
            .await
            .unwrap();
        s.apply_vuln_matches(&other, 1, std::slice::from_ref(&a))
            .await
            .unwrap();
        let rule = VulnRule {
            id: new_id(),
            project_id: pid.clone(),
            cve: Some(a.cve.clone()),
            package: None,
            server_ids: vec![id.clone()],
            reason: "not reachable".into(),
            created_by: "bob".into(),
            created_at: now(),
        };
        assert_eq!(s.create_vuln_rule(&rule).await.unwrap(), 1, "{backend}");
        assert_eq!(states(s, &id, None).await[0].2, "ignored", "{backend}");
        assert_eq!(
            states(s, &other, None).await[0].2,
            "unhandled",
            "out of scope: {backend}"
        );
        // A new finding under the rule is ignored from the start.
        let b = vuln("CVE-2024-2000", "libssl3", Severity::High);
        s.apply_vuln_matches(&id, 2, &[a.clone(), b]).await.unwrap();
        assert!(
            states(s, &id, None).await.iter().all(|f| f.2 == "ignored"),
            "{backend}"
        );
        assert_eq!(
            s.vuln_rules(std::slice::from_ref(&pid))
                .await
                .unwrap()
                .len(),
            1,
            "{backend}"
        );
        s.delete_vuln_rule(&rule.id).await.unwrap();
        assert!(
            matches!(
                s.delete_vuln_rule(&rule.id).await,
                Err(StoreError::NotFound(_))
            ),
            "{backend}"
        );
        let (groups, total) = s
            .vuln_groups(&VulnFilter {
                projects: vec![pid.clone()],
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(total, 1, "{backend}");
        assert_eq!(
            (groups[0].servers, groups[0].open, groups[0].packages),
            (2, 1, 2),
            "{backend}"
        );
    }
}

fn report(weak: Vec<WeakPassword>, checks: Vec<PolicyCheck>) -> RiskReport {
    RiskReport {
        task_id: None,
        trigger: ScanTrigger::Scheduled,
        started_at: 10,
        finished_at: 20,
        checks: vec![
            ScanCheck::WeakPasswords,
            ScanCheck::PasswordPolicy,
            ScanCheck::Baselines,
        ],
        weak_passwords: Some(WeakPasswordResult {
            accounts_checked: 3,
            candidates: 100,
            complete: true,
            findings: weak,
            issues: vec![],
        }),
        password_policy: Some(PasswordPolicyResult {
            checks,
            issues: vec![],
        }),
        baselines: Some(Default::default()),
    }
}

#[tokio::test]
async fn risk_reports_replace_each_check_and_set_the_status() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let (pid, id) = server(s).await;
        let weak = WeakPassword {
            account: "deploy".into(),
            uid: Some(1001),
            login_allowed: true,
            reasons: vec![WeakReason::CommonPassword],
            shared_with: vec![],
        };
        let check = |pass| PolicyCheck {
            id: "login_defs.pass_max_days".into(),
            title: "Maximum password age".into(),
            file: "/etc/login.defs".into(),
            expected: "<= 90".into(),
            actual: Some("99999".into()),
            pass,
            remedy: "set PASS_MAX_DAYS 90".into(),
        };
        s.store_records(
            &id,
            &[(1, Message::Risk(report(vec![weak], vec![check(false)])))],
        )
        .await
        .unwrap();
        // What was found counts, but without a vulnerability database the status says
        // what is missing rather than a verdict.
        let (status, counts) = risk(s, &id).await;
        assert_eq!(
            (
                status.as_str(),
                counts["weak_passwords"].as_i64(),
                counts["policy_failed"].as_i64()
            ),
            ("pending", Some(1), Some(1)),
            "{backend}"
        );
        assert_eq!(
            risk_reason(s, &id).await,
            "no vulnerability database imported",
            "{backend}"
        );
        testdb::import_one_advisory(s).await;
        // The import reaches the status when the analyzer matched the server against it.
        s.apply_vuln_matches(&id, 1, &[]).await.unwrap();
        assert_eq!(risk(s, &id).await.0, "risky", "{backend}");
        assert_eq!(risk_reason(s, &id).await, "", "{backend}");
        let w = s
            .weak_passwords(std::slice::from_ref(&pid), None)
            .await
            .unwrap();
        assert_eq!(
            (w[0].account.as_str(), w[0].reasons.clone()),
            ("deploy", vec!["common_password".to_string()]),
            "{backend}"
        );
        let st = s.risk_scan_state(&id).await.unwrap();
        assert_eq!(
            (st.weak_scanned_at, st.last_scan_trigger.as_str()),
            (Some(20), "scheduled"),
            "{backend}"
        );
        // Fixed on the host: the next report empties both lists.
        s.store_records(
            &id,
            &[(2, Message::Risk(report(vec![], vec![check(true)])))],
        )
        .await
        .unwrap();
        assert_eq!(risk(s, &id).await.0, "safe", "{backend}");
        assert!(
            s.weak_passwords(&[], Some(&id)).await.unwrap().is_empty(),
            "{backend}"
        );
        assert!(
            s.password_policy_results(&[], Some(&id), true)
                .await
                .unwrap()
                .is_empty(),
            "{backend}"
        );
        let hist = s.status_history(&id, 10).await.unwrap();
        let risk_hist: Vec<&str> = hist
            .iter()
            .filter(|h| h.dimension == "risk")
            .map(|h| h.status.as_str())
            .collect();
        assert_eq!(risk_hist, ["safe", "risky"], "{backend}");
    }
}

#[tokio::test]
async fn imports_merge_or_replace_and_a_software_record_asks_for_a_match() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        assert_eq!(s.vulndb_version().await.unwrap(), 0, "{backend}");
        let rows = |ids: &[&str]| {
            ids.iter()
                .map(|i| (i.to_string(), format!("{{\"id\":\"{i}\"}}")))
                .collect::<Vec<_>>()
        };
        let skipped = vec![("f.json".to_string(), "truncated".to_string())];
        let one = s
            .import_advisories("feed-a", &rows(&["A", "B", "A"]), &skipped, false, "cli")
            .await
            .unwrap();
        assert_eq!(
            (one.version, one.advisories, one.skipped),
            (1, 3, 1),
            "{backend}"
        );
        s.import_advisories("feed-b", &rows(&["C"]), &[], false, "cli")
            .await
            .unwrap();
        assert_eq!(
            s.vulndb_status().await.unwrap().advisories,
            3,
            "merged: {backend}"
        );
        let r = s
            .import_advisories("feed-c", &rows(&["D"]), &[], true, "cli")
            .await
            .unwrap();
        assert!(r.replaced, "{backend}");
        let (v, data) = s.vulndb_advisories().await.unwrap();
        assert_eq!((v, data.len()), (3, 1), "{backend}");

        let (_, id) = server(s).await;
        assert!(
            s.servers_to_match(3, 10).await.unwrap().is_empty(),
            "no software yet: {backend}"
        );
        sqlx::query("INSERT INTO inventory_state (server_id, kind, digest, updated_at) VALUES ($1, 'software', 'd', 0)")
            .bind(id.clone())
            .execute(s.pool())
            .await
            .unwrap();
        assert_eq!(
            s.servers_to_match(3, 10).await.unwrap(),
            vec![id.clone()],
            "{backend}"
        );
        s.apply_vuln_matches(&id, 3, &[]).await.unwrap();
        assert!(
            s.servers_to_match(3, 10).await.unwrap().is_empty(),
            "{backend}"
        );
        assert_eq!(
            (
                risk(s, &id).await.0.as_str(),
                risk_reason(s, &id).await.as_str()
            ),
            (
                "pending",
                "weak-password check not run yet (first risk scan pending); password-policy check not run yet (first risk scan pending); configuration baselines not checked yet (first risk scan pending)"
            ),
            "matched, nothing found, the other checks not run: {backend}"
        );
        s.store_records(&id, &[(1, Message::Risk(report(vec![], vec![])))])
            .await
            .unwrap();
        assert_eq!(risk(s, &id).await.0, "safe", "every check ran: {backend}");
        assert_eq!(
            s.servers_to_match(4, 10).await.unwrap(),
            vec![id.clone()],
            "a new version: {backend}"
        );
    }
}
