//! Alarm console tests: the router in-process on a real store (SQLite always, PostgreSQL when
//! `HOSTWARD_TEST_POSTGRES_URL` is set), users signed in through the login form, alarms and
//! firewall blocks seeded the way the gateway stores an agent's records.

use axum::http::StatusCode;
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, BlockChange, Evidence};
use hostward_proto::bruteforce::Policy;

use crate::console::testutil::{Env, body, envs, hidden, location};
use hostward_store::{AlarmFilter, alarm_state};

const EVIL: &str = "<script>alert(1)</script>";
const EVIL_LINE: &str = "sshd[77]: Failed password for invalid user \"><img src=x> from 192.0.2.7";
const ATTACKER: &str = "192.0.2.7";

impl Env {
    /// [`Env::page`], which must not show the hostile evidence raw either.
    async fn alarm_page(&self, uri: &str, cookie: &str) -> String {
        let html = self.page(uri, cookie).await;
        assert!(
            !html.contains("<img src=x>") && !html.contains("\"><img"),
            "[{}] {uri}: raw evidence",
            self.backend
        );
        html
    }

    /// A brute-force alarm from [`ATTACKER`] with hostile evidence (a minute ago), a root login
    /// without a source address (ten days ago), an active and an expired block.
    async fn seed(&self, server_id: &str) {
        let now = hostward_store::now();
        let brute = Message::Alarm(Alarm {
            ts: now - 60,
            alarm_type: "brute_force".into(),
            key: ATTACKER.into(),
            count: 7,
            evidence: Evidence {
                source_ip: Some(ATTACKER.into()),
                users: vec![EVIL.into(), "root".into()],
                service: Some("ssh".into()),
                lines: vec![EVIL_LINE.into()],
                blocked_until: Some(now + 3600),
                ..Default::default()
            },
        });
        let root = Message::Alarm(Alarm {
            ts: now - 10 * 86_400,
            alarm_type: "root_login".into(),
            key: "root".into(),
            count: 1,
            evidence: Evidence {
                users: vec!["root".into()],
                service: Some("ssh".into()),
                ..Default::default()
            },
        });
        let block = |addr: &str, ts: i64, exp: i64| {
            Message::Block(BlockChange {
                ts,
                addr: addr.into(),
                action: "blocked".into(),
                reason: "brute_force".into(),
                service: Some("ssh".into()),
                expires_at: Some(exp),
            })
        };
        self.state
            .store
            .store_records(
                server_id,
                &[
                    (1, brute),
                    (2, root),
                    (3, block(ATTACKER, now - 60, now + 3600)),
                    (4, block("198.51.100.9", now - 7200, now - 3600)),
                ],
            )
            .await
            .unwrap();
    }

    /// The id of the server's alarm of a type.
    async fn alarm_id(&self, server_id: &str, alarm_type: &str) -> String {
        let (items, _) = self
            .state
            .store
            .alarms(&AlarmFilter {
                server_id: Some(server_id.into()),
                alarm_type: Some(alarm_type.into()),
                page: 1,
                per_page: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        items[0].id.clone()
    }

    async fn whitelist(&self, project_id: &str) -> Vec<hostward_store::AlarmWhitelistRule> {
        self.state
            .store
            .alarm_whitelist(&[project_id.to_string()])
            .await
            .unwrap()
    }

    /// The project's brute-force policy and its version.
    async fn policy(&self, project_id: &str) -> (Policy, i64) {
        self.state.store.policy::<Policy>(project_id).await.unwrap()
    }

    async fn alarm_state(&self, id: &str) -> String {
        self.state.store.alarm(id).await.unwrap().unwrap().state
    }
}

fn assert_escaped(html: &str, what: &str) {
    assert!(!html.contains(EVIL), "{what}: raw agent text");
    assert!(
        html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
        "{what}: escaped user name missing"
    );
    assert!(
        html.contains("&#60;img src=x&#62;") || html.contains("&lt;img src=x&gt;"),
        "{what}: escaped log line missing"
    );
}

#[tokio::test]
async fn alarm_pages_render_for_a_viewer() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.seed(&srv.id).await;
        let brute = e.alarm_id(&srv.id, "brute_force").await;
        let root = e.alarm_id(&srv.id, "root_login").await;
        let (cookie, _) = e.login("vic").await;

        let html = e.alarm_page("/alarms", &cookie).await;
        assert!(html.contains("id=\"alarms\""), "[{b}]");
        assert!(
            html.contains(&format!("data-alarm-id=\"{brute}\""))
                && html.contains(&format!("data-alarm-id=\"{root}\"")),
            "[{b}]"
        );
        assert!(
            html.contains("Brute-force password guessing") && html.contains("Root login"),
            "[{b}] type titles"
        );
        assert!(
            html.contains("sev-high") && html.contains("sev-low"),
            "[{b}] badges"
        );
        assert!(
            html.contains("T1110.001 Brute Force: Password Guessing")
                && html.contains("https://attack.mitre.org/techniques/T1110/001/"),
            "[{b}] MITRE"
        );
        assert!(html.contains(ATTACKER), "[{b}] source");
        assert!(
            html.contains("<td class=\"num count\">7</td>"),
            "[{b}] count"
        );
        assert!(
            html.contains(&format!("href=\"/servers/{}\"", srv.id)),
            "[{b}] server link"
        );
        assert!(
            html.contains("href=\"/api/v1/alarms?format=csv\""),
            "[{b}] CSV link"
        );
        assert!(
            !html.contains("name=\"action\"") && !html.contains("name=\"alarm_"),
            "[{b}] a viewer gets no action buttons"
        );
        assert!(
            html.contains("href=\"/alarms\" class=\"active\""),
            "[{b}] nav"
        );

        // Filters narrow the list; nonsense filter values are dropped, not errors.
        let html = e.alarm_page("/alarms?type=root_login", &cookie).await;
        assert!(
            html.contains(&format!("data-alarm-id=\"{root}\""))
                && !html.contains(&format!("data-alarm-id=\"{brute}\"")),
            "[{b}]"
        );
        let html = e
            .alarm_page("/alarms?range=24h&severity=high", &cookie)
            .await;
        assert!(
            html.contains(&format!("data-alarm-id=\"{brute}\""))
                && !html.contains(&format!("data-alarm-id=\"{root}\"")),
            "[{b}] last 24 h"
        );
        assert!(
            html.contains("/api/v1/alarms?format=csv&amp;severity=high&amp;since=")
                || html.contains("/api/v1/alarms?format=csv&#38;severity=high&#38;since="),
            "[{b}] the CSV has the same filters: {html}"
        );
        let today = crate::console::fmt_utc(hostward_store::now())[..10].to_string();
        let html = e
            .alarm_page(&format!("/alarms?since={today}&state=unhandled"), &cookie)
            .await;
        assert!(
            html.contains(&format!("data-alarm-id=\"{brute}\""))
                && !html.contains(&format!("data-alarm-id=\"{root}\"")),
            "[{b}] since a date"
        );
        let html = e
            .alarm_page(&format!("/alarms?server={}&state=ignored", srv.id), &cookie)
            .await;
        assert!(html.contains("id=\"alarms-empty\""), "[{b}]");
        e.alarm_page(
            "/alarms?type=nope&severity=nope&state=nope&range=1y&since=x&until=2024-13-40&page=x",
            &cookie,
        )
        .await;

        let html = e.alarm_page(&format!("/alarms/{brute}"), &cookie).await;
        assert!(
            html.contains("id=\"mitre-tactic\"") && html.contains("TA0006 Credential Access"),
            "[{b}]"
        );
        assert!(html.contains("id=\"evidence-lines\""), "[{b}]");
        assert!(html.contains("<pre id=\"evidence-lines\">"), "[{b}]");
        assert!(html.contains("id=\"evidence-blocked\""), "[{b}]");
        assert!(!html.contains("not blocked by the detector"), "[{b}]");
        assert!(html.contains("data-action=\"raised\""), "[{b}] history");
        assert!(!html.contains("id=\"alarm-form\""), "[{b}] viewer");
        assert_escaped(&html, "alarm detail");
        let html = e.alarm_page(&format!("/alarms/{root}"), &cookie).await;
        assert!(html.contains("T1078.003"), "[{b}]");

        let html = e.alarm_page("/alarms/blocked", &cookie).await;
        assert!(
            html.contains(&format!("data-addr=\"{ATTACKER}\" data-active=\"true\"")),
            "[{b}]"
        );
        assert!(!html.contains("198.51.100.9"), "[{b}] expired is history");
        assert!(
            !html.contains("class=\"danger unblock\"") && !html.contains("id=\"block-form\""),
            "[{b}] a viewer cannot block or unblock"
        );
        let html = e.alarm_page("/alarms/blocked?history=1", &cookie).await;
        assert!(
            html.contains("data-addr=\"198.51.100.9\" data-active=\"false\""),
            "[{b}]"
        );
        let html = e
            .alarm_page(&format!("/alarms/blocked?server={}", srv.id), &cookie)
            .await;
        assert!(html.contains(ATTACKER), "[{b}]");

        let html = e.alarm_page("/alarms/whitelist", &cookie).await;
        assert!(
            html.contains("id=\"alarm-rules\"") && !html.contains("create-rule-form"),
            "[{b}]"
        );
        let html = e.alarm_page("/alarms/policy", &cookie).await;
        assert!(html.contains("id=\"read-only\""), "[{b}]");
        assert!(
            !html.contains("id=\"save-policy\"") && html.contains("disabled"),
            "[{b}]"
        );
        assert!(
            html.contains("name=\"short_failures\" value=\"5\"")
                && html.contains("name=\"ssh_block_minutes\" value=\"720\""),
            "[{b}] defaults"
        );
    }
}

#[tokio::test]
async fn another_projects_alarms_are_not_found() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        let other = e.state.store.ensure_project("other").await.unwrap();
        e.user("eve", &other.id, Some("admin")).await;
        e.user("root", &p.id, None).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.seed(&srv.id).await;
        let brute = e.alarm_id(&srv.id, "brute_force").await;
        // A whitelist rule in the first project, made by its superadmin.
        let (rcookie, rcsrf) = e.login("root").await;
        let res = e
            .post_form(
                "/alarms/whitelist",
                &rcookie,
                &format!(
                    "project={}&alarm_type=root_login&reason=ops&csrf={rcsrf}",
                    p.id
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let rule = e.whitelist(&p.id).await[0].id.clone();

        let (cookie, csrf) = e.login("eve").await;
        for uri in [
            format!("/alarms/{brute}"),
            format!("/alarms?server={}", srv.id),
            format!("/alarms?project={}", p.id),
            format!("/alarms/blocked?server={}", srv.id),
            format!("/alarms/policy?project={}", p.id),
        ] {
            let res = e.get(&uri, &cookie).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] {uri}");
            let html = body(res).await;
            assert!(
                !html.contains("web-1") && !html.contains(ATTACKER),
                "[{b}] {uri}"
            );
        }
        // Fleet pages simply do not show it.
        for uri in ["/alarms", "/alarms/blocked", "/alarms/whitelist"] {
            let html = e.alarm_page(uri, &cookie).await;
            assert!(
                !html.contains(ATTACKER) && !html.contains("web-1") && !html.contains(&rule),
                "[{b}] {uri}"
            );
        }
        // Nor can it be acted on.
        for (uri, form) in [
            (
                "/alarms/actions".to_string(),
                format!("action=handle&alarm_{brute}=1&csrf={csrf}"),
            ),
            (
                "/alarms/actions".to_string(),
                format!("action=unblock&alarm_{brute}=1&csrf={csrf}"),
            ),
            (
                "/alarms/blocked/unblock".to_string(),
                format!("server={}&addr={ATTACKER}&csrf={csrf}", srv.id),
            ),
            (
                "/alarms/blocked".to_string(),
                format!("server={}&addr=203.0.113.1&minutes=5&csrf={csrf}", srv.id),
            ),
            (
                "/alarms/blocked".to_string(),
                format!("server={}&addr=203.0.113.1&minutes=x&csrf={csrf}", srv.id),
            ),
            (
                format!("/alarms/whitelist/{rule}/delete"),
                format!("csrf={csrf}"),
            ),
            (
                "/alarms/policy".to_string(),
                format!(
                    "project={}&short_failures=1&short_window_secs=1&long_failures=1&long_window_secs=1\
                     &ssh_block_minutes=1&other_block_minutes=1&csrf={csrf}",
                    p.id
                ),
            ),
            (
                "/alarms/policy".to_string(),
                format!("project={}&short_failures=x&csrf={csrf}", p.id),
            ),
        ] {
            let res = e.post_form(&uri, &cookie, &form).await;
            assert_eq!(
                res.status(),
                StatusCode::NOT_FOUND,
                "[{b}] POST {uri} {form}"
            );
        }
        assert_eq!(e.alarm_state(&brute).await, alarm_state::UNHANDLED, "[{b}]");
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");
        assert_eq!(e.whitelist(&p.id).await.len(), 1, "[{b}]");
        assert_eq!(e.policy(&p.id).await.1, 0, "[{b}]");
    }
}

#[tokio::test]
async fn an_operator_handles_alarms_through_the_forms() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("olga", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.seed(&srv.id).await;
        let brute = e.alarm_id(&srv.id, "brute_force").await;
        let root = e.alarm_id(&srv.id, "root_login").await;
        let (cookie, csrf) = e.login("olga").await;

        let html = e.alarm_page("/alarms", &cookie).await;
        assert!(
            html.contains(&format!("name=\"alarm_{brute}\""))
                && html.contains("value=\"handle\"")
                && html.contains("value=\"unblock\""),
            "[{b}] checkboxes and buttons"
        );
        assert_eq!(hidden(&html, "back"), "/alarms", "[{b}]");

        // Nothing ticked: back with a hint, nothing changed.
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!("action=handle&back=%2Falarms%3Fstate%3Dunhandled&csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            "/alarms?state=unhandled&done=none&n=0",
            "[{b}]"
        );

        // Handle one alarm from its page.
        let page = format!("/alarms/{brute}");
        let html = e.alarm_page(&page, &cookie).await;
        assert!(html.contains("id=\"alarm-form\""), "[{b}]");
        assert_eq!(hidden(&html, "back"), page, "[{b}]");
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!(
                    "action=handle&alarm_{brute}=1&note=blocked+upstream&back={}&csrf={csrf}",
                    crate::web::page::enc(&page)
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        let to = location(&res);
        assert_eq!(to, format!("{page}?done=handle&n=1"), "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::HANDLED, "[{b}]");
        let html = e.alarm_page(&to, &cookie).await;
        assert!(
            html.contains("id=\"flash\"") && html.contains("1 alarm(s) marked handled"),
            "[{b}]"
        );
        assert!(html.contains("data-action=\"handle\""), "[{b}]");
        assert!(
            html.contains("olga") && html.contains("blocked upstream"),
            "[{b}] who and why"
        );

        // A foreign return address is not followed.
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!(
                    "action=reopen&alarm_{brute}=1&back=https%3A%2F%2Fevil.example%2F&csrf={csrf}"
                ),
            )
            .await;
        assert_eq!(location(&res), "/alarms?done=reopen&n=1", "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::UNHANDLED, "[{b}]");

        // Unblock from the alarm: an unblock_ip task for its source on its server.
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!("action=unblock&alarm_{brute}=1&csrf={csrf}"),
            )
            .await;
        assert_eq!(location(&res), "/alarms?done=unblock&n=1", "[{b}]");
        let tasks = e.tasks(&srv.id).await;
        assert_eq!(tasks.len(), 1, "[{b}]");
        assert_eq!(tasks[0].kind, "unblock_ip", "[{b}]");
        assert_eq!(tasks[0].params["addr"], ATTACKER, "[{b}]");
        // An alarm without a source address cannot be unblocked: the API's reason is shown.
        let html = e.alarm_page(&format!("/alarms/{root}"), &cookie).await;
        assert!(
            !html.contains("value=\"unblock\""),
            "[{b}] no source, no button"
        );
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!("action=unblock&alarm_{root}=1&csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        assert!(body(res).await.contains("no source address"), "[{b}]");

        // Whitelist from the alarm: ignored, and a rule for its type and address.
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!("action=whitelist&alarm_{brute}=1&note=pentest&csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::IGNORED, "[{b}]");
        let html = e.alarm_page("/alarms/whitelist", &cookie).await;
        assert!(html.contains(ATTACKER) && html.contains("pentest"), "[{b}]");

        // A viewer sees no buttons and is refused.
        let (vcookie, vcsrf) = e.login("vic").await;
        let res = e
            .post_form(
                "/alarms/actions",
                &vcookie,
                &format!("action=handle&alarm_{root}=1&csrf={vcsrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(e.alarm_state(&root).await, alarm_state::UNHANDLED, "[{b}]");
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &format!("action=explode&alarm_{root}=1&csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
    }
}

#[tokio::test]
async fn whitelist_rules_are_created_and_deleted() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("olga", &p.id, Some("operator")).await;
        let (cookie, csrf) = e.login("olga").await;
        let html = e
            .alarm_page(
                "/alarms/whitelist?type=brute_force&source_ip=203.0.113.5",
                &cookie,
            )
            .await;
        assert!(html.contains("id=\"create-rule-form\""), "[{b}]");
        assert!(
            html.contains("<option value=\"brute_force\" selected>")
                && html.contains("value=\"203.0.113.5\""),
            "[{b}] prefilled"
        );

        // Neither type nor address: the API's message, and what was typed stays.
        let res = e
            .post_form(
                "/alarms/whitelist",
                &cookie,
                &format!("project={}&reason=keep+me+typed&csrf={csrf}", p.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("id=\"form-error\"")
                && html.contains("give an alarm type, a source_ip, or both"),
            "[{b}] {html}"
        );
        assert!(html.contains("value=\"keep me typed\""), "[{b}]");
        let res = e
            .post_form(
                "/alarms/whitelist",
                &cookie,
                &format!("project={}&source_ip=not-an-ip&reason=x&csrf={csrf}", p.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("source_ip:"), "[{b}]");

        let res = e
            .post_form(
                "/alarms/whitelist",
                &cookie,
                &format!(
                    "project={}&alarm_type=brute_force&source_ip=203.0.113.5&reason=scanner&csrf={csrf}",
                    p.id
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/alarms/whitelist?done=rule", "[{b}]");
        let rules = e.whitelist(&p.id).await;
        assert_eq!(rules.len(), 1, "[{b}]");
        let id = rules[0].id.clone();
        let html = e.alarm_page("/alarms/whitelist?done=rule", &cookie).await;
        assert!(
            html.contains(&format!("data-rule-id=\"{id}\"")) && html.contains("scanner"),
            "[{b}]"
        );
        assert!(html.contains("id=\"flash\""), "[{b}]");

        let res = e
            .post_form(
                &format!("/alarms/whitelist/{id}/delete"),
                &cookie,
                &format!("csrf={csrf}"),
            )
            .await;
        assert_eq!(
            location(&res),
            "/alarms/whitelist?done=rule_deleted",
            "[{b}]"
        );
        let html = e.alarm_page("/alarms/whitelist", &cookie).await;
        assert!(
            !html.contains(&format!("data-rule-id=\"{id}\""))
                && html.contains("id=\"rules-empty\""),
            "[{b}]"
        );
        let res = e
            .post_form(
                &format!("/alarms/whitelist/{id}/delete"),
                &cookie,
                &format!("csrf={csrf}"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "[{b}] already gone");
    }
}

#[tokio::test]
async fn block_and_unblock_forms_queue_agent_tasks() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("olga", &p.id, Some("operator")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let bare = e.server(&p.id, "no-agent").await;
        e.seed(&srv.id).await;
        let (cookie, csrf) = e.login("olga").await;

        let html = e.alarm_page("/alarms/blocked", &cookie).await;
        assert!(html.contains("class=\"danger unblock\""), "[{b}]");
        assert!(html.contains("id=\"block-form\""), "[{b}]");
        assert!(
            html.contains(&format!("<option value=\"{}\"", srv.id))
                && !html.contains(&format!("<option value=\"{}\"", bare.id)),
            "[{b}] only servers with an agent are offered"
        );

        let res = e
            .post_form(
                "/alarms/blocked/unblock",
                &cookie,
                &format!(
                    "server={}&addr={ATTACKER}&back=%2Falarms%2Fblocked&csrf={csrf}",
                    srv.id
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            "/alarms/blocked?done=unblocked&n=1",
            "[{b}]"
        );
        let tasks = e.tasks(&srv.id).await;
        assert_eq!(
            (tasks.len(), tasks[0].kind.as_str()),
            (1, "unblock_ip"),
            "[{b}]"
        );
        assert_eq!(tasks[0].params["addr"], ATTACKER, "[{b}]");

        let res = e
            .post_form(
                "/alarms/blocked",
                &cookie,
                &format!("server={}&addr=203.0.113.9&minutes=30&csrf={csrf}", srv.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/alarms/blocked?done=blocked&n=1", "[{b}]");
        let tasks = e.tasks(&srv.id).await;
        let block = tasks
            .iter()
            .find(|t| t.kind == "block_ip")
            .expect("block task");
        assert_eq!(block.params["addr"], "203.0.113.9", "[{b}]");
        assert_eq!(block.params["minutes"], 30, "[{b}]");

        // Refusals show the API's message and keep what was typed.
        for (form, msg) in [
            ("addr=10.0.0.300&minutes=30", "addr:"),
            ("addr=203.0.113.9&minutes=0", "minutes: 1 to 43200"),
            ("addr=203.0.113.9&minutes=soon", "minutes: a whole number"),
        ] {
            let res = e
                .post_form(
                    "/alarms/blocked",
                    &cookie,
                    &format!("server={}&{form}&csrf={csrf}", srv.id),
                )
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}] {form}");
            let html = body(res).await;
            assert!(
                html.contains("id=\"form-error\"") && html.contains(msg),
                "[{b}] {form}: {html}"
            );
            let addr = form.split('&').next().unwrap().trim_start_matches("addr=");
            assert!(html.contains(&format!("value=\"{addr}\"")), "[{b}] kept");
        }
        assert_eq!(
            e.tasks(&srv.id).await.len(),
            2,
            "[{b}] refusals queue nothing"
        );

        // Viewers cannot.
        let (vcookie, vcsrf) = e.login("vic").await;
        let res = e
            .post_form(
                "/alarms/blocked/unblock",
                &vcookie,
                &format!("server={}&addr={ATTACKER}&csrf={vcsrf}", srv.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        let res = e
            .post_form(
                "/alarms/blocked",
                &vcookie,
                &format!("server={}&addr=203.0.113.9&minutes=5&csrf={vcsrf}", srv.id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(e.tasks(&srv.id).await.len(), 2, "[{b}]");
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
        let html = e.alarm_page("/alarms/policy", &cookie).await;
        assert!(
            html.contains("id=\"save-policy\"") && !html.contains("id=\"read-only\""),
            "[{b}]"
        );
        let form = |whitelist: &str, start: &str, csrf: &str| {
            format!(
                "project={}&short_failures=4&short_window_secs=60&long_failures=20&long_window_secs=7200\
                 &ssh_block_minutes=90&other_block_minutes=120&block=1&escalate=1&alarm_on_root_login=1\
                 &whitelist={}&usual_login_ips=10.0.0.0%2F8&usual_hours_start={start}&usual_hours_end=18\
                 &csrf={csrf}",
                p.id,
                crate::web::page::enc(whitelist)
            )
        };
        let many: Vec<String> = (1..=51).map(|i| format!("10.0.0.{i}")).collect();
        let res = e
            .post_form(
                "/alarms/policy",
                &cookie,
                &form(&many.join("\n"), "8", &csrf),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let html = body(res).await;
        assert!(
            html.contains("id=\"form-error\"")
                && html.contains("whitelist: at most 50 entries, not 51"),
            "[{b}] {html}"
        );
        assert!(
            html.contains("10.0.0.51")
                && html.contains("value=\"90\"")
                && html.contains("(51 of at most 50"),
            "[{b}] what was typed stays"
        );
        assert_eq!(e.policy(&p.id).await.1, 0, "[{b}] nothing saved");
        // The form's own checks name the field too.
        let res = e
            .post_form("/alarms/policy", &cookie, &form("192.0.2.1", "", &csrf))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        assert!(body(res).await.contains("usual_hours:"), "[{b}]");

        let res = e
            .post_form(
                "/alarms/policy",
                &cookie,
                &form("192.0.2.1\n\n 198.51.100.0/24 \n", "8", &csrf),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            location(&res),
            format!("/alarms/policy?project={}&done=saved", p.id),
            "[{b}]"
        );
        let (policy, version) = e.policy(&p.id).await;
        assert!(version > 0, "[{b}]");
        assert_eq!(
            policy,
            Policy {
                short_failures: 4,
                short_window_secs: 60,
                long_failures: 20,
                long_window_secs: 7200,
                ssh_block_minutes: 90,
                other_block_minutes: 120,
                block: true,
                escalate: true,
                whitelist: vec!["192.0.2.1".into(), "198.51.100.0/24".into()],
                alarm_on_root_login: true,
                usual_login_ips: vec!["10.0.0.0/8".into()],
                learn_usual_ips: false,
                usual_hours: Some((8, 18)),
            },
            "[{b}]"
        );
        let html = e
            .alarm_page(
                &format!("/alarms/policy?project={}&done=saved", p.id),
                &cookie,
            )
            .await;
        assert!(html.contains("id=\"flash\""), "[{b}]");
        assert!(html.contains("198.51.100.0/24"), "[{b}]");

        // Operators read it but cannot save it.
        let (ocookie, ocsrf) = e.login("olga").await;
        let html = e.alarm_page("/alarms/policy", &ocookie).await;
        assert!(html.contains("id=\"read-only\""), "[{b}]");
        let res = e
            .post_form("/alarms/policy", &ocookie, &form("192.0.2.9", "8", &ocsrf))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(e.policy(&p.id).await.0, policy, "[{b}]");
    }
}

#[tokio::test]
async fn alarm_posts_without_the_csrf_token_are_refused() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("root", &p.id, None).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        e.seed(&srv.id).await;
        let brute = e.alarm_id(&srv.id, "brute_force").await;
        let (cookie, _) = e.login("root").await;
        let posts = [
            (
                "/alarms/actions".to_string(),
                format!("action=handle&alarm_{brute}=1"),
            ),
            (
                "/alarms/blocked/unblock".to_string(),
                format!("server={}&addr={ATTACKER}", srv.id),
            ),
            (
                "/alarms/blocked".to_string(),
                format!("server={}&addr=203.0.113.1&minutes=5", srv.id),
            ),
            (
                "/alarms/whitelist".to_string(),
                format!("project={}&alarm_type=root_login&reason=x", p.id),
            ),
            ("/alarms/whitelist/x/delete".to_string(), String::new()),
            (
                "/alarms/policy".to_string(),
                format!(
                    "project={}&short_failures=1&short_window_secs=1&long_failures=1&long_window_secs=1\
                     &ssh_block_minutes=1&other_block_minutes=1",
                    p.id
                ),
            ),
        ];
        e.assert_posts_need_csrf(&cookie, &posts).await;
        assert_eq!(e.alarm_state(&brute).await, alarm_state::UNHANDLED, "[{b}]");
        assert!(e.tasks(&srv.id).await.is_empty(), "[{b}]");
        assert!(e.whitelist(&p.id).await.is_empty(), "[{b}]");
        assert_eq!(e.policy(&p.id).await.1, 0, "[{b}]");
    }
}

#[tokio::test]
async fn alarm_pages_without_session_redirect_to_login() {
    for e in envs().await {
        e.assert_pages_need_a_session(&[
            "/alarms",
            "/alarms/x",
            "/alarms/blocked",
            "/alarms/whitelist",
            "/alarms/policy",
        ])
        .await;
    }
}

#[tokio::test]
async fn trusting_a_login_address_adds_it_to_the_servers_list_for_admins_only() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("olga", &p.id, Some("operator")).await;
        e.user("ada", &p.id, Some("admin")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let full = e.agent_server(&p.id, "web-full").await;
        e.seed(&srv.id).await;
        e.seed(&full.id).await;
        let brute = e.alarm_id(&srv.id, "brute_force").await;
        let full_brute = e.alarm_id(&full.id, "brute_force").await;
        let root = e.alarm_id(&srv.id, "root_login").await;
        let twenty: Vec<String> = (0..20).map(|i| format!("10.0.0.{i}")).collect();
        e.state
            .store
            .set_server_login_ips(&full.id, &twenty, true, "ada")
            .await
            .unwrap();
        let form = |ids: &[&str], csrf: &str| {
            let picks: String = ids.iter().map(|id| format!("alarm_{id}=1&")).collect();
            format!("action=login_whitelist&{picks}back=%2Falarms&csrf={csrf}")
        };
        let list = |id: String| {
            let store = e.state.store.clone();
            async move { store.server_login_ips(&id).await.unwrap() }
        };

        // An operator may handle alarms but not change a server's usual addresses.
        let (cookie, csrf) = e.login("olga").await;
        let res = e
            .post_form("/alarms/actions", &cookie, &form(&[&brute], &csrf))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "[{b}]");
        assert!(list(srv.id.clone()).await.items.is_empty(), "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::UNHANDLED, "[{b}]");

        let (cookie, csrf) = e.login("ada").await;
        // An alarm without a source address cannot be trusted: nothing changes.
        let res = e
            .post_form("/alarms/actions", &cookie, &form(&[&root], &csrf))
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        // One server's list is full: the whole batch is refused, naming it.
        let res = e
            .post_form(
                "/alarms/actions",
                &cookie,
                &form(&[&brute, &full_brute], &csrf),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "[{b}]");
        assert!(body(res).await.contains("web-full"), "[{b}]");
        assert!(list(srv.id.clone()).await.items.is_empty(), "[{b}]");
        assert_eq!(list(full.id.clone()).await.items.len(), 20, "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::UNHANDLED, "[{b}]");

        let version = e
            .state
            .store
            .server(&srv.id)
            .await
            .unwrap()
            .unwrap()
            .config_version;
        let res = e
            .post_form("/alarms/actions", &cookie, &form(&[&brute], &csrf))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(location(&res), "/alarms?done=login_whitelist&n=1", "[{b}]");
        let items = list(srv.id.clone()).await.items;
        assert_eq!(items.len(), 1, "[{b}]");
        assert_eq!(
            (
                items[0].addr.as_str(),
                items[0].origin.as_str(),
                items[0].added_by.as_deref()
            ),
            (ATTACKER, "manual", Some("ada")),
            "[{b}]"
        );
        // The agent gets the list in a new config; the project's policy is untouched.
        assert!(
            e.state
                .store
                .server(&srv.id)
                .await
                .unwrap()
                .unwrap()
                .config_version
                > version,
            "[{b}]"
        );
        assert!(e.policy(&p.id).await.0.usual_login_ips.is_empty(), "[{b}]");
        assert_eq!(e.alarm_state(&brute).await, alarm_state::HANDLED, "[{b}]");
        let hist = e
            .state
            .store
            .handling_history(hostward_store::History::Alarm, &brute)
            .await
            .unwrap();
        assert_eq!(
            (hist[0].actor.as_str(), hist[0].action.as_str()),
            ("ada", "login_whitelist"),
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn a_runtime_alarm_shows_its_process_tree_catalog_facts_and_evidence_escaped() {
    use hostward_proto::alarm::ProcessInfo;
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let srv = e.agent_server(&p.id, "web-1").await;
        let proc = |pid, ppid, exe: &str, cmdline: &str, (uid, euid), user: &str| ProcessInfo {
            pid,
            ppid,
            exe: exe.into(),
            cmdline: cmdline.into(),
            uid,
            euid,
            user: user.into(),
            ..Default::default()
        };
        let own = ProcessInfo {
            cwd: Some("/tmp/.x".into()),
            tty: Some("pts/0".into()),
            sha256: Some("cd".repeat(32)),
            ..proc(4242, 4000, "/tmp/.x/sh", "sh -i", (1000, 0), "alice")
        };
        let shell = Message::Alarm(Alarm {
            ts: hostward_store::now() - 60,
            alarm_type: "reverse_shell".into(),
            key: "4242".into(),
            count: 1,
            evidence: Evidence {
                processes: vec![
                    own,
                    proc(
                        4000,
                        100,
                        "/usr/bin/bash",
                        &format!("bash -c '{EVIL}'"),
                        (1000, 1000),
                        "alice",
                    ),
                    proc(
                        100,
                        1,
                        "/usr/sbin/sshd",
                        "sshd: alice [priv]",
                        (0, 0),
                        "root",
                    ),
                ],
                file: Some("/tmp/.x/sh".into()),
                peer: Some("192.0.2.9:4444".into()),
                details: vec!["stdin is tcp 192.0.2.9:4444".into(), EVIL_LINE.into()],
                response: Some("none (auto_isolate is off)".into()),
                ..Default::default()
            },
        });
        e.state
            .store
            .store_records(&srv.id, &[(1, shell)])
            .await
            .unwrap();
        let id = e.alarm_id(&srv.id, "reverse_shell").await;
        let (cookie, _) = e.login("vic").await;
        let html = e.alarm_page(&format!("/alarms/{id}"), &cookie).await;

        // The tree: the session leader at the top, the alarm's own process deepest and marked.
        let at = |needle: &str| {
            html.find(needle)
                .unwrap_or_else(|| panic!("[{b}] {needle} missing"))
        };
        let (sshd, bash, sh) = (
            at("data-pid=\"100\""),
            at("data-pid=\"4000\""),
            at("data-pid=\"4242\""),
        );
        assert!(sshd < bash && bash < sh, "[{b}] oldest ancestor first");
        let tree = &html[at("id=\"evidence-processes\"")..];
        let tree = &tree[..tree.find("</section>").unwrap_or(tree.len())];
        assert_eq!(tree.matches("<ul class=\"proc-tree\">").count(), 3, "[{b}]");
        let before_own = &html[at("id=\"evidence-processes\"")..sh];
        assert!(!before_own.contains("</ul>"), "[{b}] nested, not siblings");
        assert!(
            html.contains("<li class=\"proc own\" data-pid=\"4242\">")
                && html.matches("class=\"proc own\"").count() == 1,
            "[{b}] the alarm's process is marked"
        );
        for shown in [
            "alice (uid 1000, euid 0)",
            "alice (uid 1000)",
            "root (uid 0)",
            "/tmp/.x/sh",
            "sshd: alice [priv]",
            ">pts/0<",
            ">cdcdcdcdcdcd<",
            "/tmp/.x<",
        ] {
            assert!(html.contains(shown), "[{b}] {shown}");
        }
        // The catalog's facts.
        assert!(
            html.contains("id=\"alarm-category\">Abnormal system behaviour"),
            "[{b}]"
        );
        assert!(html.contains("id=\"alarm-hss\">HSS 1017<"), "[{b}]");
        let rec = hostward_proto::alarm::alarm_type("reverse_shell")
            .unwrap()
            .recommendation;
        assert!(
            html.contains(&format!("id=\"alarm-recommendation\">{rec}<")),
            "[{b}]"
        );
        // The other evidence, escaped.
        assert!(html.contains("id=\"evidence-file\">/tmp/.x/sh<"), "[{b}]");
        assert!(
            html.contains("id=\"evidence-peer\">192.0.2.9:4444<"),
            "[{b}]"
        );
        assert!(
            html.contains("<li>stdin is tcp 192.0.2.9:4444</li>"),
            "[{b}]"
        );
        assert!(
            html.contains("id=\"evidence-response\">none (auto_isolate is off)<"),
            "[{b}]"
        );
        assert_escaped(&html, "process chain");
        assert!(
            !html.contains("id=\"isolate-form\""),
            "[{b}] viewers do not isolate"
        );
        assert!(
            !html.contains("Sample log lines"),
            "[{b}] no log lines to show"
        );
    }
}
