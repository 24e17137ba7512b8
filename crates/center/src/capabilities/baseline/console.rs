//! Baseline pages: every check across the fleet (`/baselines`), the servers of one check or
//! any filtered set of results (`/baselines/results`), one result with its evidence and
//! handling history, a server's Baselines tab, whitelist rules, and the project's baseline
//! policy (shipped policies on or off, imported policies).
//!
//! Every page reads and writes through [`crate::capabilities::baseline::api`], so it shows and
//! allows exactly what the REST API does for the same caller. Every string from an agent or an
//! imported policy is escaped by the templates, none is marked safe.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::baseline::{BaselinePolicy, ImportedPolicy};
use serde_json::Value;

use crate::AppState;
use crate::capabilities::baseline::api::{
    self as ops, ActionBody, NewRule, ProjectQuery, ResultQuery,
};
use crate::capabilities::server_tabs;
use crate::console::forms::{
    Flash, opt, opts, policy_project, project_choice, required_project, seg, severity_opts, truthy,
};
use crate::console::{
    ConsoleError, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html, html_status,
    project_names, project_opts, see_other,
};
use crate::findings::{
    self, ActionBar, ActionButton, ActionsView, HistoryView, RuleFacts, RuleMeta,
};
use crate::web::labels::{severity_class, severity_label};
use crate::web::page::{Pager, Tab, page_param, param, url};
use hostward_store::{BaselineCheckGroup, BaselineFinding, BaselinePolicyRow, baseline_state};

pub const PER_PAGE: i64 = 50;

/// Where an action may return to.
const BACK: &[&str] = &["/baselines", "/servers/"];

const ACTIONS: ActionBar = ActionBar {
    checkbox_prefix: "result_",
    class: "",
    buttons: &[
        ActionButton {
            value: "ignore",
            label: "Ignore",
            class: "act-ignore",
            title: "Accept it on this server: the failure no longer counts toward its risk",
            conditional: false,
        },
        ActionButton {
            value: "unignore",
            label: "Unignore",
            class: "act-unignore",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "verify",
            label: "Verify",
            class: "primary act-verify",
            title: "Re-run this check on its server now",
            conditional: false,
        },
    ],
    back: BACK,
    home: "/baselines",
};

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let n: usize = m.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let ok = |text: String| Some(Flash { class: "ok", text });
    match m.get("done").map(String::as_str)? {
        "ignore" => ok(format!(
            "{n} result(s) ignored: they no longer count toward the servers' risk."
        )),
        "unignore" => ok(format!("{n} result(s) reopened.")),
        "verify" => ok(
            "Verification requested: each server re-runs the check and the result updates here."
                .into(),
        ),
        "none" => Some(Flash {
            class: "warn",
            text: "Select at least one result first.".into(),
        }),
        "scan" => ok("Baseline check requested; results show here when the agent reports.".into()),
        "rule" => ok(format!(
            "Whitelist rule created; {n} failing result(s) it covers are now ignored."
        )),
        "rule_deleted" => ok(
            "Whitelist rule deleted. Results it ignored stay ignored; new failures are no longer covered."
                .into(),
        ),
        "saved" => ok("Baseline policy saved; the project's agents get it at once.".into()),
        _ => None,
    }
}

pub(crate) fn state_class(s: &str) -> &'static str {
    match s {
        baseline_state::IGNORED => "b-muted",
        _ => "b-warn",
    }
}

fn result_class(r: &str) -> &'static str {
    match r {
        "fail" => "b-bad",
        "pass" => "b-ok",
        _ => "b-muted",
    }
}

fn result_label(r: &str) -> &'static str {
    match r {
        "fail" => "Failed",
        "pass" => "Passed",
        _ => "Not applicable",
    }
}

pub(crate) struct ResultRow {
    pub id: String,
    pub href: String,
    pub server_id: String,
    pub server_name: String,
    pub policy_id: String,
    pub policy_name: String,
    pub check_id: i64,
    pub title: String,
    pub result: String,
    pub result_label: &'static str,
    pub result_class: &'static str,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub state: String,
    pub state_class: &'static str,
    pub state_note: String,
    /// The first line of evidence (or why it is not applicable).
    pub evidence: String,
    pub checked: Ts,
}

fn result_row(r: &BaselineFinding) -> ResultRow {
    let evidence = if r.result == "not_applicable" {
        r.reason.clone().unwrap_or_default()
    } else {
        r.evidence.first().cloned().unwrap_or_default()
    };
    ResultRow {
        href: format!("/baselines/results/{}", seg(&r.id)),
        id: r.id.clone(),
        server_id: r.server_id.clone(),
        server_name: r.server_name.clone(),
        policy_id: r.policy_id.clone(),
        policy_name: r.policy_name.clone(),
        check_id: r.check_id,
        title: r.title.clone(),
        result: r.result.clone(),
        result_label: result_label(&r.result),
        result_class: result_class(&r.result),
        sev_label: severity_label(&r.severity),
        sev_class: severity_class(&r.severity),
        state: r.state.clone(),
        state_class: state_class(&r.state),
        state_note: r.state_note.clone(),
        evidence: crate::web::page::clip(&evidence, 160).0,
        checked: Ts::at(r.checked_at),
    }
}

/// The filters of a result list, as typed.
#[derive(Default)]
struct ResultFilter {
    project: String,
    policy: String,
    check: String,
    result: String,
    state: String,
    severity: String,
    q: String,
    page: i64,
}

impl ResultFilter {
    fn from_map(m: &HashMap<String, String>) -> ResultFilter {
        ResultFilter {
            project: param(m, "project"),
            policy: param(m, "policy"),
            check: param(m, "check"),
            result: param(m, "result"),
            state: param(m, "state"),
            severity: param(m, "severity"),
            q: param(m, "q"),
            page: page_param(m),
        }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("project", self.project.as_str()),
            ("policy", self.policy.as_str()),
            ("check", self.check.as_str()),
            ("result", self.result.as_str()),
            ("state", self.state.as_str()),
            ("severity", self.severity.as_str()),
            ("q", self.q.as_str()),
        ]
    }

    fn link(&self, base: &str, page: i64) -> String {
        let p = page.to_string();
        let mut pairs = self.pairs();
        if page > 1 {
            pairs.push(("page", &p));
        }
        url(base, &pairs)
    }

    fn api(&self) -> Result<ResultQuery, ConsoleError> {
        let check = match opt(&self.check) {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ConsoleError::bad_request("Field check must be a check id (a whole number).")
            })?),
        };
        Ok(ResultQuery {
            project: opt(&self.project),
            policy: opt(&self.policy),
            check,
            result: opt(&self.result),
            state: opt(&self.state),
            severity: opt(&self.severity),
            q: opt(&self.q),
            page: Some(self.page),
            per_page: Some(PER_PAGE),
            format: None,
        })
    }
}

pub(crate) struct ResultList {
    /// Where the filter form goes, and the scope it keeps (hidden fields).
    pub filter_action: String,
    pub hidden: Vec<(String, String)>,
    pub rows: Vec<ResultRow>,
    pub pager: Pager,
    pub csv_url: String,
    pub can_act: bool,
    pub show_server: bool,
    pub result: String,
    pub result_opts: Vec<Opt>,
    pub state: String,
    pub state_opts: Vec<Opt>,
    pub severity_opts: Vec<Opt>,
    pub q: String,
}

fn result_list(
    page: &ops::ResultPage,
    ff: &ResultFilter,
    base: &str,
    csv_url: String,
    can_act: bool,
    show_server: bool,
) -> ResultList {
    let hidden = [
        ("project", &ff.project),
        ("policy", &ff.policy),
        ("check", &ff.check),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    ResultList {
        filter_action: base.to_string(),
        hidden,
        rows: page.items.iter().map(result_row).collect(),
        pager: Pager::new(ff.page, PER_PAGE, page.items.len(), page.total, |n| {
            ff.link(base, n)
        }),
        csv_url,
        can_act,
        show_server,
        result_opts: opts(&["fail", "pass", "not_applicable"], &ff.result, |r| {
            result_label(r).to_string()
        }),
        result: ff.result.clone(),
        state_opts: opts(baseline_state::ALL, &ff.state, str::to_string),
        state: ff.state.clone(),
        severity_opts: severity_opts(&ff.severity),
        q: ff.q.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// /baselines

pub(crate) struct CheckRow {
    pub href: String,
    pub policy_id: String,
    pub policy_name: String,
    pub check_id: i64,
    pub title: String,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub failing: i64,
    pub ignored: i64,
    pub passing: i64,
    pub not_applicable: i64,
}

fn check_row(g: &BaselineCheckGroup, project: &str) -> CheckRow {
    let check = g.check_id.to_string();
    CheckRow {
        href: url(
            "/baselines/results",
            &[
                ("project", project),
                ("policy", &g.policy_id),
                ("check", &check),
            ],
        ),
        policy_id: g.policy_id.clone(),
        policy_name: g.policy_name.clone(),
        check_id: g.check_id,
        title: g.title.clone(),
        sev_label: severity_label(&g.severity),
        sev_class: severity_class(&g.severity),
        failing: g.failing,
        ignored: g.ignored,
        passing: g.passing,
        not_applicable: g.not_applicable,
    }
}

#[derive(Template)]
#[template(path = "baseline/checks.html")]
pub(crate) struct ChecksPage {
    pub nav: Nav,
    pub project_opts: Vec<Opt>,
    pub rows: Vec<CheckRow>,
    pub pager: Pager,
    pub csv_url: String,
    pub failing_checks: usize,
}

/// `GET /baselines?project=&page=`: every check, the ones failing on most servers first.
pub async fn checks(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let project = param(&m, "project");
    let page = page_param(&m);
    let q = ProjectQuery {
        project: opt(&project),
        page: Some(page),
        per_page: Some(PER_PAGE),
        format: None,
    };
    let found = ops::checks(&state, &p, &q).await?;
    let rows: Vec<CheckRow> = found.items.iter().map(|g| check_row(g, &project)).collect();
    html(&ChecksPage {
        nav: Nav::new(&p, "baseline"),
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        failing_checks: rows.iter().filter(|r| r.failing > 0).count(),
        pager: Pager::new(page, PER_PAGE, rows.len(), found.total, |n| {
            url(
                "/baselines",
                &[("project", project.as_str()), ("page", &n.to_string())],
            )
        }),
        csv_url: url(
            "/api/v1/baselines",
            &[("project", project.as_str()), ("format", "csv")],
        ),
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// /baselines/results

#[derive(Template)]
#[template(path = "baseline/results.html")]
pub(crate) struct ResultsPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub project: String,
    pub policy: String,
    pub check: String,
    pub list: ResultList,
    pub actions: ActionsView,
}

/// `GET /baselines/results?policy=&check=&result=&state=&severity=&q=&page=`
pub async fn results(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let ff = ResultFilter::from_map(&m);
    let found = ops::results(&state, &p, None, &ff.api()?).await?;
    let base = "/baselines/results";
    let csv_pairs: Vec<(&str, &str)> = [vec![("format", "csv")], ff.pairs()].concat();
    let can_act = found
        .items
        .iter()
        .any(|r| p.require(&r.project_id, Role::Operator).is_ok());
    html(&ResultsPage {
        nav: Nav::new(&p, "baseline"),
        flash: flash(&m),
        list: result_list(
            &found,
            &ff,
            base,
            url("/api/v1/baselines/results", &csv_pairs),
            can_act,
            true,
        ),
        actions: ACTIONS.view(&p, &ff.link(base, ff.page), true),
        project: ff.project.clone(),
        policy: ff.policy.clone(),
        check: ff.check.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// /baselines/results/{id}

pub(crate) struct Reference {
    pub framework: String,
    pub ids: String,
}

#[derive(Template)]
#[template(path = "baseline/result.html")]
pub(crate) struct ResultPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub r: ResultRow,
    pub reason: String,
    pub evidence: Vec<String>,
    pub rationale: String,
    pub remediation: String,
    pub compliance: Vec<Reference>,
    pub failing_since: Option<Ts>,
    pub history: HistoryView,
    pub can_act: bool,
    pub actions: ActionsView,
}

/// `GET /baselines/results/{id}`: one check on one server, its evidence and its history.
pub async fn result(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let d = ops::result(&state, &p, &id).await?;
    let r = &d.result;
    let compliance = match &r.compliance {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| Reference {
                framework: k.clone(),
                ids: v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        _ => Vec::new(),
    };
    html(&ResultPage {
        nav: Nav::new(&p, "baseline"),
        flash: flash(&m),
        reason: r.reason.clone().unwrap_or_default(),
        evidence: r.evidence.clone(),
        rationale: r.rationale.clone(),
        remediation: r.remediation.clone(),
        compliance,
        failing_since: Ts::opt(r.failing_since),
        history: findings::history("result-history", &d.history, state_class),
        can_act: p.require(&r.project_id, Role::Operator).is_ok(),
        actions: ACTIONS.view(&p, &format!("/baselines/results/{}", seg(&r.id)), true),
        r: result_row(r),
    })
}

/// `POST /baselines/actions`: ignore, unignore or verify the checked results (`result_<id>`).
pub async fn act(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    ACTIONS
        .submit(&f, |action, result_ids, note| async move {
            let body = ActionBody {
                action,
                result_ids,
                note,
            };
            let out = ops::act(&state, &p, body).await?;
            Ok(out.changed.max(out.tasks.len()))
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// /servers/{id}/baselines

pub(crate) struct PolicyLine {
    pub policy_id: String,
    pub name: String,
    pub applicable: bool,
    pub reason: String,
    pub passed: i64,
    pub failed: i64,
    pub not_applicable: i64,
}

fn policy_line(r: &BaselinePolicyRow) -> PolicyLine {
    PolicyLine {
        policy_id: r.policy_id.clone(),
        name: r.name.clone(),
        applicable: r.applicable,
        reason: r.reason.clone().unwrap_or_default(),
        passed: r.passed,
        failed: r.failed,
        not_applicable: r.not_applicable,
    }
}

#[derive(Template)]
#[template(path = "baseline/server.html")]
pub(crate) struct ServerPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub scanned: Option<Ts>,
    pub passed: i64,
    pub failed: i64,
    pub not_applicable: i64,
    pub issues: Vec<String>,
    pub policies: Vec<PolicyLine>,
    pub can_scan: bool,
    pub list: ResultList,
    pub actions: ActionsView,
}

/// `GET /servers/{id}/baselines?result=&state=&severity=&q=&page=`
pub async fn server(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let ff = ResultFilter {
        project: String::new(),
        ..ResultFilter::from_map(&m)
    };
    // Authorization first: another project's server is 404 whatever else is asked.
    let b = ops::server_baselines(&state, &p, &id, &ff.api()?).await?;
    let srv = crate::api::servers::visible_server(&state, &p, &b.server_id, Role::Viewer).await?;
    let tabs = server_tabs(&state, &p, &srv.id, "baselines").await?;
    let base = format!("/servers/{}/baselines", srv.id);
    let csv_pairs: Vec<(&str, &str)> = [vec![("format", "csv")], ff.pairs()].concat();
    let num = |k: &str| b.summary.get(k).and_then(Value::as_i64).unwrap_or(0);
    let can_act = p.require(&srv.project_id, Role::Operator).is_ok();
    html(&ServerPage {
        nav: Nav::new(&p, "servers"),
        tabs,
        flash: flash(&m),
        scanned: Ts::opt(b.scanned_at),
        passed: num("passed"),
        failed: num("failed"),
        not_applicable: num("not_applicable"),
        issues: b
            .summary
            .get("issues")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        policies: b.policies.iter().map(policy_line).collect(),
        can_scan: can_act && srv.agent_id.is_some() && srv.revoked_at.is_none(),
        list: result_list(
            &b.results,
            &ff,
            &base,
            url(&format!("/api/v1/servers/{}/baselines", srv.id), &csv_pairs),
            can_act,
            false,
        ),
        actions: ACTIONS.view(&p, &ff.link(&base, ff.page), true),
        sid: srv.id,
        sname: srv.name,
    })
}

/// `POST /servers/{id}/baselines/scan`: a `risk_scan` task of the baselines only.
pub async fn scan_server(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let params = serde_json::json!({"checks": ["baselines"]});
    crate::capabilities::risk::console::queue_scan(&state, &p, id, params, "baselines").await
}

// ---------------------------------------------------------------------------------------------
// /baselines/rules

pub(crate) struct RuleView {
    pub meta: RuleMeta,
    pub policy_id: String,
    pub check_id: i64,
    pub servers: String,
}

#[derive(Template)]
#[template(path = "baseline/rules.html")]
pub(crate) struct RulesPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub error: String,
    pub rules: Vec<RuleView>,
    pub project_opts: Vec<Opt>,
    pub policy_id: String,
    pub check_id: String,
    pub reason: String,
    pub can_create: bool,
}

async fn render_rules(
    state: &AppState,
    p: &Principal,
    m: &HashMap<String, String>,
    error: String,
    typed: (String, String, String, String),
    status: StatusCode,
) -> PageResult {
    let (project, policy_id, check_id, reason) = typed;
    let list = ops::rules(state, p, None).await?;
    let names = project_names(state, p).await?;
    let names: HashMap<String, String> = names.into_iter().collect();
    let rules = list
        .items
        .into_iter()
        .map(|r| RuleView {
            servers: if r.server_ids.is_empty() {
                "every server of the project".into()
            } else {
                format!("{} server(s)", r.server_ids.len())
            },
            policy_id: r.policy_id.clone(),
            check_id: r.check_id,
            meta: RuleMeta::new(
                p,
                &names,
                "/baselines/rules",
                RuleFacts {
                    id: r.id,
                    project_id: &r.project_id,
                    reason: r.reason,
                    created_by: r.created_by,
                    created_at: r.created_at,
                },
            ),
        })
        .collect();
    let can_create = names.keys().any(|id| p.require(id, Role::Operator).is_ok());
    html_status(
        status,
        &RulesPage {
            nav: Nav::new(p, "baseline"),
            flash: flash(m),
            error,
            rules,
            project_opts: project_opts(state, p, &project, Role::Operator).await?,
            policy_id,
            check_id,
            reason,
            can_create,
        },
    )
}

/// `GET /baselines/rules`
pub async fn rules(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let typed = (
        param(&m, "project"),
        param(&m, "policy"),
        param(&m, "check"),
        String::new(),
    );
    render_rules(&state, &p, &m, String::new(), typed, StatusCode::OK).await
}

/// `POST /baselines/rules`: a whitelist rule for one check.
pub async fn create_rule(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let typed = (
        f.get("project").to_string(),
        f.get("policy_id").to_string(),
        f.get("check_id").to_string(),
        f.get("reason").to_string(),
    );
    let policy_id = typed.1.clone();
    let parsed = typed.2.trim().parse::<i64>();
    let created = match parsed {
        Err(_) => Err(crate::web::ApiError::invalid_body(
            "check_id: a check id (a whole number)",
        )),
        Ok(check) => {
            ops::create_rule(
                &state,
                &p,
                NewRule {
                    project_id: opt(&typed.0),
                    policy_id,
                    check_id: check,
                    server_ids: Vec::new(),
                    reason: typed.3.clone(),
                },
            )
            .await
        }
    };
    findings::create_rule(
        created,
        &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY],
        |r| format!("/baselines/rules?done=rule&n={}", r.results_ignored),
        |status, msg| async move {
            render_rules(&state, &p, &HashMap::new(), msg, typed, status).await
        },
    )
    .await
}

/// `POST /baselines/rules/{id}/delete`
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    ops::delete_rule(&state, &p, &id).await?;
    Ok(see_other("/baselines/rules?done=rule_deleted&n=0"))
}

// ---------------------------------------------------------------------------------------------
// /baselines/policy

pub(crate) struct PolicyChoice {
    pub id: String,
    pub file: String,
    pub name: String,
    pub checks: usize,
    pub enabled: bool,
}

pub(crate) struct ImportedLine {
    pub file: String,
    pub id: String,
    pub name: String,
    pub checks: usize,
}

#[derive(Template)]
#[template(path = "baseline/policy.html")]
pub(crate) struct PolicyPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub error: String,
    pub project: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub version: i64,
    pub shipped: Vec<PolicyChoice>,
    pub imported: Vec<ImportedLine>,
    pub can_edit: bool,
    pub import_file: String,
    pub import_text: String,
}

#[derive(Template)]
#[template(path = "baseline/no_project.html")]
pub(crate) struct NoProjectPage {
    pub nav: Nav,
}

async fn render_policy(
    state: &AppState,
    p: &Principal,
    project: String,
    flash_: Option<Flash>,
    error: String,
    typed: (String, String),
    status: StatusCode,
) -> PageResult {
    let body = ops::baseline_policy(state, p, &project).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, &project);
    let shipped = body
        .policies
        .iter()
        .filter(|i| i.origin == "shipped")
        .map(|i| PolicyChoice {
            id: i.id.clone(),
            file: i.file.clone(),
            name: i.name.clone(),
            checks: i.checks,
            enabled: !body.policy.disabled.contains(&i.id),
        })
        .collect();
    let imported = body
        .policies
        .iter()
        .filter(|i| i.origin == "imported")
        .map(|i| ImportedLine {
            file: i.file.clone(),
            id: i.id.clone(),
            name: i.name.clone(),
            checks: i.checks,
        })
        .collect();
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "baseline"),
            flash: flash_,
            error,
            can_edit: p.require(&project, Role::Admin).is_ok(),
            project_name,
            project_opts,
            version: body.version,
            shipped,
            imported,
            import_file: typed.0,
            import_text: typed.1,
            project,
        },
    )
}

/// `GET /baselines/policy?project=`
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "baseline"),
        });
    };
    render_policy(
        &state,
        &p,
        project,
        flash(&m),
        String::new(),
        Default::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /baselines/policy`: which shipped policies run (`run_<policy id>` boxes), imported
/// policies to drop (`drop_<file>` boxes), and one policy file to import (`import_file`,
/// `import_text`), saved in one change.
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let body = ops::baseline_policy(&state, &p, &project).await?;
    let mut policy: BaselinePolicy = body.policy.clone();
    policy.disabled = body
        .policies
        .iter()
        .filter(|i| i.origin == "shipped" && !truthy(&f, &format!("run_{}", i.id)))
        .map(|i| i.id.clone())
        .collect();
    policy
        .imported
        .retain(|i| !truthy(&f, &format!("drop_{}", i.file)));
    let file = f.get("import_file").trim().to_string();
    let text = f.get("import_text").to_string();
    if !file.is_empty() || !text.trim().is_empty() {
        let new = ImportedPolicy {
            file: file.clone(),
            text: text.clone(),
        };
        match policy.imported.iter_mut().find(|i| i.file == file) {
            Some(i) => *i = new,
            None => policy.imported.push(new),
        }
    }
    match ops::set_baseline_policy(&state, &p, &project, policy).await {
        Ok(_) => Ok(see_other(&url(
            "/baselines/policy",
            &[("project", project.as_str()), ("done", "saved")],
        ))),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            render_policy(
                &state,
                &p,
                project,
                None,
                e.message,
                (file, text),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The console pages of this capability.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/baselines", get(checks))
        .route("/baselines/results", get(results))
        .route("/baselines/results/{id}", get(result))
        .route("/baselines/actions", post(act))
        .route("/baselines/rules", get(rules).post(create_rule))
        .route("/baselines/rules/{id}/delete", post(delete_rule))
        .route("/baselines/policy", get(policy).post(save_policy))
        .route("/servers/{id}/baselines", get(server))
        .route("/servers/{id}/baselines/scan", post(scan_server))
}
