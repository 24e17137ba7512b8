//! Baseline console tests: the router in-process on a real store (SQLite always, PostgreSQL
//! when `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login form, results
//! stored the way the gateway stores a risk record.

use axum::http::StatusCode;
use hostward_proto::Message;
use hostward_proto::Severity;
use hostward_proto::baseline::{
    BaselinePolicy, BaselineResult, CheckResult, Outcome, PolicyReport,
};
use hostward_proto::risk::{RiskReport, ScanCheck, ScanTrigger};

use crate::console::testutil::{body, envs, form, has_escaped, location};

const EVIDENCE: &str = "rule 1: /etc/ssh/sshd_config:3: PermitRootLogin yes <b>";

fn report() -> RiskReport {
    let check = |id: i64, result: Outcome| CheckResult {
        id,
        title: format!("Root login over SSH is off ({id})"),
        result,
        reason: None,
        evidence: vec![EVIDENCE.into()],
        severity: Severity::High,
        rationale: "A root password guessed is the whole server.".into(),
        remediation: "Set PermitRootLogin no.".into(),
        compliance: [("cis".to_string(), vec!["5.2.10".to_string()])].into(),
    };
    RiskReport {
        task_id: None,
        trigger: ScanTrigger::First,
        started_at: 1,
        finished_at: 2,
        checks: vec![ScanCheck::Baselines],
        weak_passwords: None,
        password_policy: None,
        baselines: Some(BaselineResult {
            policies: vec![PolicyReport {
                policy_id: "hostward_sshd".into(),
                name: "SSH server".into(),
                applicable: true,
                reason: None,
                checks: vec![check(10001, Outcome::Fail), check(10002, Outcome::Pass)],
            }],
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn results_show_their_evidence_and_are_handled_through_the_forms() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("otto", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        e.user("oscar", &other.id, Some("admin")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.state
            .store
            .store_records(&srv.id, &[(1, Message::Risk(report()))])
            .await
            .unwrap();
        let tab = format!("/servers/{}/baselines", srv.id);
        e.assert_pages_need_a_session(&[
            "/baselines",
            "/baselines/results",
            "/baselines/rules",
            "/baselines/policy",
            &tab,
        ])
        .await;

        let (vc, _) = e.login("vic").await;
        let html = e.page(&tab, &vc).await;
        assert!(
            has_escaped(&html, EVIDENCE) && !html.contains("yes <b>"),
            "[{b}] evidence escaped"
        );
        assert!(
            html.contains("data-check=\"10001\" data-result=\"fail\""),
            "[{b}]"
        );
        assert!(!html.contains("act-ignore"), "[{b}] viewers do not handle");
        let html = e.page("/baselines", &vc).await;
        assert!(
            html.contains("data-check=\"10001\" data-failing=\"1\""),
            "[{b}] {html}"
        );
        let (oc, _) = e.login("oscar").await;
        assert_eq!(
            e.get(&tab, &oc).await.status(),
            StatusCode::NOT_FOUND,
            "[{b}]"
        );

        let (cookie, csrf) = e.login("otto").await;
        let html = e.page(&tab, &cookie).await;
        assert!(
            html.contains("act-ignore") && html.contains("act-verify"),
            "[{b}]"
        );
        let id = e
            .state
            .store
            .baseline_findings(&hostward_store::BaselineFilter {
                server_id: Some(srv.id.clone()),
                check_id: Some(10001),
                page: 1,
                per_page: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .0[0]
            .id
            .clone();
        let pick = format!("result_{id}");
        e.assert_posts_need_csrf(
            &cookie,
            &[
                (
                    "/baselines/actions".into(),
                    form(&[("action", "ignore"), (&pick, "1")]),
                ),
                (format!("{tab}/scan"), String::new()),
                ("/baselines/policy".into(), form(&[("project", &p.id)])),
                (
                    "/baselines/rules".into(),
                    form(&[
                        ("policy_id", "hostward_sshd"),
                        ("check_id", "10001"),
                        ("reason", "r"),
                    ]),
                ),
            ],
        )
        .await;
        let res = e
            .post_form(
                "/baselines/actions",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("action", "ignore"),
                    (&pick, "1"),
                    ("note", "bastion"),
                    ("back", &tab),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{tab}?done=ignore&n=1"), "[{b}]");
        let html = e.page(&format!("/baselines/results/{id}"), &cookie).await;
        assert!(
            html.contains("data-state=\"ignored\"") && html.contains("bastion"),
            "[{b}]"
        );
        assert!(
            html.contains("5.2.10") && html.contains("Set PermitRootLogin no."),
            "[{b}]"
        );
        let res = e
            .post_form(
                "/baselines/actions",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("action", "verify"),
                    (&pick, "1"),
                    ("back", &tab),
                ]),
            )
            .await;
        assert_eq!(location(&res), format!("{tab}?done=verify&n=1"), "[{b}]");
        let tasks = e.tasks(&srv.id).await;
        assert_eq!(
            tasks[0].params["verify"]["check_id"], 10001,
            "[{b}] {:?}",
            tasks[0]
        );
        let res = e
            .post_form(&format!("{tab}/scan"), &cookie, &form(&[("csrf", &csrf)]))
            .await;
        assert_eq!(location(&res), format!("{tab}?done=scan&n=1"), "[{b}]");
        assert_eq!(
            e.tasks(&srv.id).await[0].params["checks"][0],
            "baselines",
            "[{b}]"
        );
        let res = e
            .post_form(
                "/baselines/rules",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("policy_id", "hostward_sshd"),
                    ("check_id", "ten"),
                    ("reason", "r"),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("check_id"), "[{b}]");
    }
}

#[tokio::test]
async fn the_policy_page_imports_a_policy_refuses_a_broken_one_with_its_line_and_is_read_only_for_viewers()
 {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let (vc, _) = e.login("vic").await;
        let html = e.page("/baselines/policy", &vc).await;
        assert!(
            html.contains("data-policy=\"hostward_sshd\"") && !html.contains("id=\"save-policy\""),
            "[{b}]"
        );

        let (cookie, csrf) = e.login("ada").await;
        let broken = "policy:\n  id: \"site\"\n  file: \"site.yml\"\n  name: \"x\"\nchecks: [\n";
        let res = e
            .post_form(
                "/baselines/policy",
                &cookie,
                &form(&[
                    ("csrf", &csrf),
                    ("project", &p.id),
                    ("run_hostward_sshd", "1"),
                    ("import_file", "site.yml"),
                    ("import_text", broken),
                ]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("id=\"form-error\"") && html.contains("site.yml:"),
            "[{b}] {html}"
        );
        assert!(html.contains("checks: ["), "[{b}] the text typed is kept");
        let (policy, _) = e.state.store.policy::<BaselinePolicy>(&p.id).await.unwrap();
        assert_eq!(policy, BaselinePolicy::default(), "[{b}] nothing stored");

        let good = "policy:\n  id: \"site\"\n  file: \"site.yml\"\n  name: \"Site\"\n  description: \"d\"\nchecks:\n  - id: 1\n    title: \"motd\"\n    condition: all\n    rules:\n      - 'f:/etc/motd'\n";
        // Every shipped policy but sshd keeps running (its box is left unticked).
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("project", p.id.as_str()),
            ("import_file", "site.yml"),
            ("import_text", good),
        ];
        let runs: Vec<String> = hostward_sca::shipped()
            .into_iter()
            .filter(|s| s.id != "hostward_sshd")
            .map(|s| format!("run_{}", s.id))
            .collect();
        fields.extend(runs.iter().map(|r| (r.as_str(), "1")));
        let res = e
            .post_form("/baselines/policy", &cookie, &form(&fields))
            .await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "[{b}] {}",
            body(res).await
        );
        let (policy, _) = e.state.store.policy::<BaselinePolicy>(&p.id).await.unwrap();
        assert_eq!(policy.disabled, ["hostward_sshd"], "[{b}]");
        assert_eq!(policy.imported[0].file, "site.yml", "[{b}]");
        let html = e.page("/baselines/policy", &cookie).await;
        assert!(html.contains("data-file=\"site.yml\""), "[{b}]");
    }
}
