//! Risk console tests: the router in-process on a real store (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login form, findings and
//! scan results seeded the way the analyzer and the gateway store them.

use axum::http::StatusCode;
use hostward_proto::risk::{
    PasswordPolicyResult, PolicyCheck, RiskReport, ScanCheck, ScanTrigger, WeakPassword,
    WeakPasswordResult, WeakReason,
};
use hostward_proto::{Message, Severity};

use crate::console::testutil::{Env, body, envs, hidden, location};
use hostward_store::{MatchedVuln, vuln_state};

const EVIL: &str = "<script>alert(1)</script>";
const CVE: &str = "CVE-2099-0001";
const CVE2: &str = "CVE-2099-0002";

impl Env {
    /// Two findings on the server, as a match against database version 1 stores them.
    async fn seed_vulns(&self, server_id: &str) {
        let v = |cve: &str, package: &str, severity, cvss, summary: &str| MatchedVuln {
            advisory_id: format!("DEBIAN-{cve}"),
            cve: cve.into(),
            package: package.into(),
            source_package: None,
            manager: "dpkg".into(),
            installed_version: "1.0-1".into(),
            fixed_version: Some("1.0-2".into()),
            cvss: Some(cvss),
            severity,
            summary: summary.into(),
            fix_command: Some(format!("apt-get install --only-upgrade -y {package}")),
            restart: "service".into(),
        };
        // A database to match against: without one the risk status stays pending.
        hostward_store::testdb::import_one_advisory(&self.state.store).await;
        self.state
            .store
            .apply_vuln_matches(
                server_id,
                1,
                &[
                    v(CVE, "openssl", Severity::Critical, 9.8, EVIL),
                    v(CVE2, "zlib1g", Severity::Medium, 5.3, "zlib bug"),
                ],
            )
            .await
            .unwrap();
    }

    /// A scan report with one weak password and a failed and a passed policy item.
    async fn seed_scan(&self, server_id: &str) {
        let now = hostward_store::now();
        let report = RiskReport {
            task_id: None,
            trigger: ScanTrigger::Task,
            started_at: now - 5,
            finished_at: now,
            checks: vec![
                ScanCheck::WeakPasswords,
                ScanCheck::PasswordPolicy,
                ScanCheck::Baselines,
            ],
            weak_passwords: Some(WeakPasswordResult {
                accounts_checked: 3,
                candidates: 120,
                complete: true,
                findings: vec![WeakPassword {
                    account: "bob".into(),
                    uid: Some(1001),
                    login_allowed: true,
                    reasons: vec![WeakReason::CommonPassword, WeakReason::Shared],
                    shared_with: vec![EVIL.into()],
                }],
                issues: vec![],
            }),
            password_policy: Some(PasswordPolicyResult {
                checks: vec![
                    PolicyCheck {
                        id: "login_defs.pass_max_days".into(),
                        title: "Maximum password age".into(),
                        file: "/etc/login.defs".into(),
                        expected: "<= 90".into(),
                        actual: Some("99999".into()),
                        pass: false,
                        remedy: "Set PASS_MAX_DAYS 90 in /etc/login.defs".into(),
                    },
                    PolicyCheck {
                        id: "pwquality.minlen".into(),
                        title: "Minimum password length".into(),
                        file: "/etc/security/pwquality.conf".into(),
                        expected: ">= 8".into(),
                        actual: Some("12".into()),
                        pass: true,
                        remedy: "Set minlen = 8".into(),
                    },
                ],
                issues: vec![],
            }),
            baselines: Some(Default::default()),
        };
        self.state
            .store
            .store_records(server_id, &[(1, Message::Risk(report))])
            .await
            .unwrap();
    }

    async fn finding_id(&self, server_id: &str, cve: &str) -> String {
        let (items, _) = self
            .state
            .store
            .vuln_findings(&hostward_store::VulnFilter {
                server_id: Some(server_id.into()),
                cve: Some(cve.into()),
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        items[0].id.clone()
    }
}

fn assert_escaped(html: &str, what: &str) {
    assert!(!html.contains(EVIL), "{what}: raw agent text");
    assert!(
        html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
        "{what}: escaped text missing"
    );
}

#[tokio::test]
async fn risk_pages_render_for_a_viewer() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.server(&p.id, "web-1").await;
        let (cookie, _) = e.login("vic").await;
        // Before any import: the empty database is said, and the server waits for it.
        let html = e.page("/vulnerabilities", &cookie).await;
        assert!(
            html.contains("id=\"vulndb-warning\"") && html.contains("database is empty"),
            "[{b}]"
        );
        e.seed_vulns(&srv.id).await;
        e.seed_scan(&srv.id).await;
        let fid = e.finding_id(&srv.id, CVE).await;

        let html = e.page("/vulnerabilities", &cookie).await;
        assert!(html.contains("id=\"vuln-groups\""), "[{b}]");
        assert!(html.contains(&format!("data-cve=\"{CVE}\"")), "[{b}]");
        assert!(
            html.contains(&format!("href=\"/vulnerabilities/{CVE}\"")),
            "[{b}]"
        );
        assert!(
            html.contains("sev-critical") && html.contains("Critical"),
            "[{b}]"
        );
        assert!(html.contains("9.8"), "[{b}] CVSS shown");
        assert!(
            html.contains("<svg id=\"severity-chart\"") && html.contains("<rect"),
            "[{b}] severity chart"
        );
        assert!(
            html.contains("href=\"/api/v1/vulnerabilities?format=csv\""),
            "[{b}] CSV link"
        );
        assert!(html.contains("id=\"vulndb-line\""), "[{b}]");
        assert!(
            html.contains("id=\"vulndb-advisories\">1</span> advisory"),
            "[{b}]"
        );
        assert!(
            !html.contains("id=\"vulndb-warning\""),
            "[{b}] imported just now"
        );
        assert_escaped(&html, "vulnerabilities");
        // Filters narrow the list; nonsense filter values are dropped, not errors.
        let html = e.page("/vulnerabilities?severity=medium", &cookie).await;
        assert!(
            html.contains(CVE2) && !html.contains(&format!("data-cve=\"{CVE}\"")),
            "[{b}]"
        );
        e.page("/vulnerabilities?severity=nope&state=nope&page=x", &cookie)
            .await;

        let html = e.page(&format!("/vulnerabilities/{CVE}"), &cookie).await;
        assert!(
            html.contains(&format!("data-finding-id=\"{fid}\"")),
            "[{b}]"
        );
        assert!(
            html.contains("apt-get install --only-upgrade -y openssl"),
            "[{b}]"
        );
        assert!(html.contains("restart services"), "[{b}]");
        assert!(
            !html.contains("name=\"action\""),
            "[{b}] a viewer gets no action buttons"
        );
        assert_escaped(&html, "cve");

        let html = e
            .page(&format!("/vulnerabilities/findings/{fid}"), &cookie)
            .await;
        assert!(html.contains("id=\"finding-history\""), "[{b}]");
        assert!(html.contains("data-action=\"detected\""), "[{b}] history");
        assert!(!html.contains("id=\"finding-form\""), "[{b}]");

        let html = e.page(&format!("/servers/{}/risks", srv.id), &cookie).await;
        assert!(
            html.contains("data-tab=\"risks\"")
                && html.contains("class=\"tab active\" data-tab=\"risks\""),
            "[{b}] the Risks tab is the active one"
        );
        assert!(html.contains("data-status=\"risky\""), "[{b}]");
        assert!(
            html.contains("1 critical · 1 medium · 1 weak pwd · 1 policy failed"),
            "[{b}]"
        );
        assert!(html.contains("data-account=\"bob\""), "[{b}] weak password");
        assert!(html.contains("common password"), "[{b}]");
        assert!(
            html.contains("data-check=\"login_defs.pass_max_days\" data-pass=\"false\""),
            "[{b}]"
        );
        assert!(html.contains("99999") && html.contains("= 90"), "[{b}]");
        assert!(
            html.contains("id=\"weak-scanned\" data-scanned=\"1\""),
            "[{b}]"
        );
        assert!(
            !html.contains("id=\"scan-form\""),
            "[{b}] a viewer cannot scan"
        );
        assert!(!html.contains("name=\"action\""), "[{b}]");
        assert_escaped(&html, "server risks");

        let html = e.page("/risk/weak-passwords", &cookie).await;
        assert!(
            html.contains("data-account=\"bob\"") && html.contains("web-1"),
            "[{b}]"
        );
        assert_escaped(&html, "weak passwords");
        let html = e.page("/risk/password-policy", &cookie).await;
        assert!(
            html.contains("pwquality.minlen") && html.contains("login_defs.pass_max_days"),
            "[{b}]"
        );
        let html = e.page("/risk/password-policy?failed=1", &cookie).await;
        assert!(
            !html.contains("pwquality.minlen") && html.contains("login_defs.pass_max_days"),
            "[{b}]"
        );

        let html = e.page("/risk/scans", &cookie).await;
        assert!(
            html.contains("id=\"scans\"") && !html.contains("id=\"scan-form\""),
            "[{b}]"
        );
        let html = e.page("/risk/rules", &cookie).await;
        assert!(
            html.contains("id=\"rules\"") && !html.contains("create-rule-form"),
            "[{b}]"
        );
        let html = e.page("/risk/policy", &cookie).await;
        assert!(
            html.contains("id=\"read-only\""),
            "[{b}] read-only for a viewer"
        );
        assert!(
            !html.contains("id=\"save-policy\"") && html.contains("disabled"),
            "[{b}]"
        );
        assert!(
            html.contains("value=\"00:00\"") && html.contains("value=\"04:00\""),
            "[{b}]"
        );

        // The list shows the counts too, and the nav has the Risks entry.
        let html = e.page("/servers", &cookie).await;
        assert!(
            html.contains("class=\"risk-counts\">1 critical · 1 medium"),
            "[{b}] {html}"
        );
        assert!(html.contains("href=\"/vulnerabilities\""), "[{b}]");
    }
}

#[tokio::test]
async fn another_projects_risks_are_not_found() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("eve", &other.id, Some("admin")).await;
        let srv = e.server(&p.id, "web-1").await;
        e.seed_vulns(&srv.id).await;
        e.seed_scan(&srv.id).await;
        let fid = e.finding_id(&srv.id, CVE).await;
        let (cookie, csrf) = e.login("eve").await;
        for uri in [
            format!("/servers/{}/risks", srv.id),
            format!("/vulnerabilities/findings/{fid}"),
            format!("/vulnerabilities/{CVE}"),
            format!("/risk/policy?project={}", p.id),
            format!("/vulnerabilities?project={}", p.id),
        ] {
            let res = e.get(&uri, &cookie).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] {uri}");
            let html = body(res).await;
            assert!(
                !html.contains("web-1") && !html.contains("openssl"),
                "[{b}] {uri}"
            );
        }
        // Fleet pages simply do not show it.
        for uri in [
            "/vulnerabilities",
            "/risk/weak-passwords",
            "/risk/password-policy",
            "/risk/scans",
        ] {
            let html = e.page(uri, &cookie).await;
            assert!(
                !html.contains(CVE) && !html.contains("web-1"),
                "[{b}] {uri}"
            );
        }
        // Nor can it be acted on.
        for (uri, form) in [
            (
                "/vulnerabilities/actions".to_string(),
                format!("action=ignore&finding_{fid}=1&csrf={csrf}"),
            ),
            (
                format!("/servers/{}/risks/scan", srv.id),
                format!("csrf={csrf}"),
            ),
            (
                "/risk/scans".to_string(),
                format!(
                    "check_weak_passwords=1&target=selected&server_{}=1&csrf={csrf}",
                    srv.id
                ),
            ),
        ] {
            let res = e.post_form(&uri, &cookie, &form).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] POST {uri}");
        }
        let f = e.state.store.vuln_finding(&fid).await.unwrap().unwrap();
        assert_eq!(f.state, vuln_state::UNHANDLED, "[{b}]");
    }
}

#[tokio::test]
async fn an_operator_handles_findings_and_scans_through_the_forms() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("olga", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.seed_vulns(&srv.id).await;
        let fid = e.finding_id(&srv.id, CVE).await;
        let (cookie, csrf) = e.login("olga").await;
        let tab = format!("/servers/{}/risks", srv.id);
        let html = e.page(&tab, &cookie).await;
        assert!(
            html.contains(&format!("name=\"finding_{fid}\"")),
            "[{b}] checkbox"
        );
        assert!(
            html.contains("id=\"scan-form\""),
            "[{b}] an operator may scan"
        );
        let back = hidden(&html, "back");
        assert_eq!(back, tab, "[{b}]");

        // Nothing ticked: back with a hint, nothing changed.
        let res = e
            .post_form(
                "/vulnerabilities/actions",
                &cookie,
                &format!(
                    "action=ignore&back={}&csrf={csrf}",
                    crate::web::page::enc(&back)
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{tab}?done=none&n=0"), "[{b}]");

        let form = format!(
            "action=ignore&finding_{fid}=1&note=accepted+risk&back={}&csrf={csrf}",
            crate::web::page::enc(&back)
        );
        let res = e
            .post_form("/vulnerabilities/actions", &cookie, &form)
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let to = location(&res);
        assert_eq!(to, format!("{tab}?done=ignore&n=1"), "[{b}]");
        let f = e.state.store.vuln_finding(&fid).await.unwrap().unwrap();
        assert_eq!(f.state, vuln_state::IGNORED, "[{b}]");
        let html = e.page(&to, &cookie).await;
        assert!(
            html.contains("id=\"flash\"") && html.contains("1 finding(s) ignored"),
            "[{b}]"
        );
        let html = e
            .page(&format!("/vulnerabilities/findings/{fid}"), &cookie)
            .await;
        assert!(html.contains("data-action=\"ignore\""), "[{b}]");
        assert!(
            html.contains("olga") && html.contains("accepted risk"),
            "[{b}] who and why"
        );

        // A foreign return address is not followed.
        let res = e
            .post_form(
                "/vulnerabilities/actions",
                &cookie,
                &format!(
                    "action=unignore&finding_{fid}=1&back=https%3A%2F%2Fevil.example%2F&csrf={csrf}"
                ),
            )
            .await;
        assert_eq!(
            location(&res),
            "/vulnerabilities?done=unignore&n=1",
            "[{b}]"
        );

        // Fix is refused while the policy does not allow it; the API's reason is shown.
        let res = e
            .post_form(
                "/vulnerabilities/actions",
                &cookie,
                &format!("action=fix&finding_{fid}=1&csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        assert!(body(res).await.contains("allow_fix"), "[{b}]");

        // A viewer cannot act.
        let (vcookie, vcsrf) = e.login("vic").await;
        let res = e
            .post_form(
                "/vulnerabilities/actions",
                &vcookie,
                &format!("action=ignore&finding_{fid}=1&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let res = e
            .post_form(&format!("{tab}/scan"), &vcookie, &format!("csrf={vcsrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");

        // Scan now from the tab, then from the scans page; both show on the scans page.
        let res = e
            .post_form(&format!("{tab}/scan"), &cookie, &format!("csrf={csrf}"))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), format!("{tab}?done=scan&n=1"), "[{b}]");
        let html = e.page(&location(&res), &cookie).await;
        assert!(
            html.contains("id=\"latest-scan\"><span class=\"badge s-queued\""),
            "[{b}]"
        );
        let res = e
            .post_form(
                "/risk/scans",
                &cookie,
                &format!(
                    "check_weak_passwords=1&target=selected&server_{}=1&csrf={csrf}",
                    srv.id
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/risk/scans?done=scan&n=1", "[{b}]");
        let tasks = e.tasks(&srv.id).await;
        assert_eq!(tasks.len(), 2, "[{b}]");
        assert!(tasks.iter().all(|t| t.kind == "risk_scan"), "[{b}]");
        assert!(
            tasks
                .iter()
                .any(|t| t.params == serde_json::json!({"checks": ["weak_passwords"]})),
            "[{b}] {tasks:?}"
        );
        let html = e.page("/risk/scans?done=scan&n=1", &cookie).await;
        assert_eq!(
            html.matches("data-state=\"queued\"").count(),
            3,
            "[{b}] 2 rows + the count"
        );
        assert!(
            html.contains("weak passwords") && html.contains("all checks"),
            "[{b}]"
        );
        // No check ticked, or no server: the form says so.
        let res = e
            .post_form(
                "/risk/scans",
                &cookie,
                &format!("target=selected&server_{}=1&csrf={csrf}", srv.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("id=\"form-error\""), "[{b}]");
        let res = e
            .post_form(
                "/risk/scans",
                &cookie,
                &format!(
                    "check_password_policy=1&target=project&project={}&csrf={csrf}",
                    p.id
                ),
            )
            .await;
        assert_eq!(location(&res), "/risk/scans?done=scan&n=1", "[{b}]");

        // A whitelist rule ignores the other finding; deleting it leaves that as it is.
        let fid2 = e.finding_id(&srv.id, CVE2).await;
        let res = e
            .post_form(
                "/risk/rules",
                &cookie,
                &format!(
                    "project={}&package=zlib1g&reason=not+reachable&csrf={csrf}",
                    p.id
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/risk/rules?done=rule&n=1", "[{b}]");
        let f2 = e.state.store.vuln_finding(&fid2).await.unwrap().unwrap();
        assert_eq!(f2.state, vuln_state::IGNORED, "[{b}]");
        let html = e.page("/risk/rules", &cookie).await;
        assert!(
            html.contains("not reachable") && html.contains("zlib1g"),
            "[{b}]"
        );
        let rule_id = {
            let m = "data-rule-id=\"";
            let s = html.find(m).unwrap() + m.len();
            html[s..].split('"').next().unwrap().to_string()
        };
        let res = e
            .post_form(
                "/risk/rules",
                &cookie,
                &format!("project={}&reason=nothing&csrf={csrf}", p.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(
            body(res)
                .await
                .contains("cve: give a CVE id, a package, or both"),
            "[{b}]"
        );
        let res = e
            .post_form(
                &format!("/risk/rules/{rule_id}/delete"),
                &cookie,
                &format!("csrf={csrf}"),
            )
            .await;
        assert_eq!(location(&res), "/risk/rules?done=rule_deleted", "[{b}]");
        assert!(
            e.state.store.vuln_rule(&rule_id).await.unwrap().is_none(),
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn the_policy_form_saves_and_shows_the_apis_refusals() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("olga", &p.id, Some("operator")).await;
        let (cookie, csrf) = e.login("ada").await;
        let html = e.page("/risk/policy", &cookie).await;
        assert!(
            html.contains("id=\"save-policy\"") && !html.contains("id=\"read-only\""),
            "[{b}]"
        );

        let form = |words: &str, start: &str| {
            format!(
                "project={}&window_start={}&window_end=23%3A30&jitter_secs=60&daily_scan=1&allow_fix=1\
                 &weak_password_budget_secs=120&custom_weak_passwords={}&csrf={csrf}",
                p.id,
                crate::web::page::enc(start),
                crate::web::page::enc(words)
            )
        };
        let many: Vec<String> = (0..301).map(|i| format!("word{i}")).collect();
        let res = e
            .post_form("/risk/policy", &cookie, &form(&many.join("\n"), "22:00"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(html.contains("id=\"form-error\""), "[{b}]");
        assert!(
            html.contains("custom_weak_passwords: at most 300 words"),
            "[{b}] the API's message"
        );
        assert!(
            html.contains("word300") && html.contains("value=\"22:00\""),
            "[{b}] what was typed stays"
        );
        assert_eq!(
            e.state
                .store
                .policy::<hostward_proto::RiskPolicy>(&p.id)
                .await
                .unwrap()
                .1,
            0,
            "[{b}] nothing saved"
        );

        let res = e
            .post_form("/risk/policy", &cookie, &form("summer2024", "25:00"))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("window_start: use HH:MM"), "[{b}]");

        let res = e
            .post_form(
                "/risk/policy",
                &cookie,
                &form("summer2024\r\n\r\nacme!\r\n", "22:00"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/risk/policy?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (policy, version) = e
            .state
            .store
            .policy::<hostward_proto::RiskPolicy>(&p.id)
            .await
            .unwrap();
        assert!(version > 0, "[{b}]");
        assert_eq!(
            (
                policy.window_start_min,
                policy.window_end_min,
                policy.jitter_secs
            ),
            (1320, 1410, 60),
            "[{b}]"
        );
        assert!(policy.daily_scan && policy.allow_fix, "[{b}]");
        assert_eq!(policy.weak_password_budget_secs, 120, "[{b}]");
        assert_eq!(
            policy.custom_weak_passwords,
            ["acme!", "summer2024"],
            "[{b}]"
        );
        let html = e.page(&location(&res), &cookie).await;
        assert!(
            html.contains("id=\"flash\"") && html.contains("acme!\nsummer2024"),
            "[{b}]"
        );

        // An operator sees it read-only and cannot save.
        let (ocookie, ocsrf) = e.login("olga").await;
        let html = e.page("/risk/policy", &ocookie).await;
        assert!(html.contains("id=\"read-only\""), "[{b}]");
        let res = e
            .post_form(
                "/risk/policy",
                &ocookie,
                &form("x", "01:00").replace(&csrf, &ocsrf),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(
            e.state
                .store
                .policy::<hostward_proto::RiskPolicy>(&p.id)
                .await
                .unwrap()
                .0,
            policy,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn risk_posts_without_the_csrf_token_are_refused() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("root", &p.id, None).await;
        let srv = e.server(&p.id, "web-1").await;
        e.seed_vulns(&srv.id).await;
        let fid = e.finding_id(&srv.id, CVE).await;
        let (cookie, _) = e.login("root").await;
        let posts = [
            (
                "/vulnerabilities/actions".to_string(),
                format!("action=ignore&finding_{fid}=1"),
            ),
            (format!("/servers/{}/risks/scan", srv.id), String::new()),
            (
                "/risk/scans".to_string(),
                format!("check_weak_passwords=1&server_{}=1", srv.id),
            ),
            (
                "/risk/rules".to_string(),
                format!("project={}&cve={CVE}&reason=x", p.id),
            ),
            ("/risk/rules/x/delete".to_string(), String::new()),
            (
                "/risk/policy".to_string(),
                format!(
                    "project={}&window_start=01%3A00&window_end=02%3A00&jitter_secs=0&weak_password_budget_secs=10",
                    p.id
                ),
            ),
        ];
        e.assert_posts_need_csrf(&cookie, &posts).await;
        let f = e.state.store.vuln_finding(&fid).await.unwrap().unwrap();
        assert_eq!(f.state, vuln_state::UNHANDLED, "[{b}] nothing changed");
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");
        assert!(
            e.state
                .store
                .vuln_rules(std::slice::from_ref(&p.id))
                .await
                .unwrap()
                .is_empty(),
            "[{b}]"
        );
        assert_eq!(
            e.state
                .store
                .policy::<hostward_proto::RiskPolicy>(&p.id)
                .await
                .unwrap()
                .1,
            0,
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn risk_pages_without_session_redirect_to_login() {
    for e in envs().await {
        e.assert_pages_need_a_session(&[
            "/vulnerabilities",
            "/vulnerabilities/CVE-1",
            "/vulnerabilities/findings/x",
            "/servers/x/risks",
            "/risk/weak-passwords",
            "/risk/password-policy",
            "/risk/scans",
            "/risk/rules",
            "/risk/policy",
        ])
        .await;
    }
}
