//! The risk scan pages: `/risk/scans` lists the `risk_scan` tasks with their timing and
//! results and starts scans on chosen servers (through [`crate::api::tasks`], which checks the
//! caller).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::risk::{SCAN_TASK, ScanCheck};
use serde_json::Value;

use crate::AppState;
use crate::api::servers::ServerQuery;
use crate::api::tasks::{self, CreateTasks};
use crate::capabilities::risk::api::{self as ops, ScanQuery};
use crate::console::forms::{Flash, checked_ids, opt};
use crate::console::{
    Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html_status, project_names,
    project_opts, see_other,
};
use crate::web::page::{Pager, clip, page_param, param, url};
use hostward_store::TaskRow;

use super::console::*;

pub(crate) struct ScanView {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub state: String,
    pub created: Ts,
    pub updated: Ts,
    pub duration: String,
    pub created_by: String,
    pub checks: String,
    pub result: String,
}

/// Which checks a scan task asked for, in words.
pub(super) fn scan_checks(params: &Value) -> String {
    let list: Vec<String> = params
        .get("checks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| c.replace('_', " "))
        .collect();
    if list.is_empty() {
        "all checks".into()
    } else {
        list.join(", ")
    }
}

/// What a finished scan reported, in a few words.
fn scan_result(t: &TaskRow) -> String {
    let o = &t.output;
    if let Some(e) = o.get("error").and_then(Value::as_str) {
        return clip(e, 160).0;
    }
    let mut parts = Vec::new();
    if let Some(n) = o.get("weak_passwords").and_then(Value::as_i64) {
        let checked = o
            .get("accounts_checked")
            .and_then(Value::as_i64)
            .map(|c| format!(" of {c} accounts"))
            .unwrap_or_default();
        parts.push(format!("{n} weak password(s){checked}"));
    }
    if o.get("complete").and_then(Value::as_bool) == Some(false) {
        parts.push("time budget ran out".into());
    }
    if let Some(n) = o.get("policy_failed").and_then(Value::as_i64) {
        parts.push(format!("{n} policy item(s) failed"));
    }
    if o.get("software").is_some() {
        parts.push("software collected".into());
    }
    parts.join(" · ")
}

pub(crate) struct StateCount {
    pub state: String,
    pub n: i64,
    pub href: String,
    pub active: bool,
}

pub(crate) struct ServerPick {
    pub id: String,
    pub name: String,
    pub project: String,
    pub agent_status: String,
    pub checked: bool,
}

pub(crate) struct CheckOpt {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "risk/scans.html")]
pub(crate) struct ScansPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub state: String,
    pub project_opts: Vec<Opt>,
    pub counts: Vec<StateCount>,
    pub rows: Vec<ScanView>,
    pub pager: Pager,
    pub can_scan: bool,
    pub operator_projects: Vec<Opt>,
    pub checks: Vec<CheckOpt>,
    pub servers: Vec<ServerPick>,
    pub more_servers: bool,
    pub target: String,
}

const TASK_STATES: &[&str] = &[
    "queued",
    "delivered",
    "running",
    "done",
    "failed",
    "expired",
];

fn check_label(c: ScanCheck) -> &'static str {
    match c {
        ScanCheck::Vulnerabilities => "Vulnerabilities (collect software, match)",
        ScanCheck::WeakPasswords => "Weak passwords",
        ScanCheck::PasswordPolicy => "Password policy",
        ScanCheck::Baselines => "Configuration baselines",
    }
}

/// What the scan form had, to show it again after a refusal.
#[derive(Default)]
struct ScanForm {
    checks: Vec<ScanCheck>,
    servers: Vec<String>,
    project: String,
    target: String,
}

async fn render_scans(
    state: &AppState,
    p: &Principal,
    m: &HashMap<String, String>,
    form: Option<ScanForm>,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let project = param(m, "project");
    let st = Some(param(m, "state"))
        .filter(|s| TASK_STATES.contains(&s.as_str()))
        .unwrap_or_default();
    let page = page_param(m);
    let all = ops::scans(
        state,
        p,
        &ScanQuery {
            project: opt(&project),
            state: None,
        },
    )
    .await?;
    let shown = if st.is_empty() {
        all.items
    } else {
        ops::scans(
            state,
            p,
            &ScanQuery {
                project: opt(&project),
                state: Some(st.clone()),
            },
        )
        .await?
        .items
    };
    let counts = TASK_STATES
        .iter()
        .map(|s| StateCount {
            state: s.to_string(),
            n: all.counts.get(*s).copied().unwrap_or(0),
            href: url("/risk/scans", &[("state", s), ("project", &project)]),
            active: st == *s,
        })
        .collect();
    let total = shown.len();
    let per = SCAN_PER_PAGE as i64;
    let rows: Vec<ScanView> = shown
        .iter()
        .skip(((page - 1) * per) as usize)
        .take(SCAN_PER_PAGE)
        .map(|r| ScanView {
            id: r.task.id.clone(),
            server_id: r.task.server_id.clone(),
            server_name: r.server_name.clone(),
            state: r.task.state.clone(),
            created: Ts::at(r.task.created_at),
            updated: Ts::at(r.task.updated_at),
            duration: r.duration_secs.map(duration).unwrap_or_default(),
            created_by: r.task.created_by.clone(),
            checks: scan_checks(&r.task.params),
            result: scan_result(&r.task),
        })
        .collect();
    let pager = Pager::new(page, per, rows.len(), total as i64, |n| {
        url(
            "/risk/scans",
            &[
                ("state", &st),
                ("project", &project),
                ("page", &n.to_string()),
            ],
        )
    });
    let form = form.unwrap_or_else(|| ScanForm {
        checks: ScanCheck::ALL.to_vec(),
        target: "selected".into(),
        ..Default::default()
    });
    let operator_projects = project_opts(state, p, &form.project, Role::Operator).await?;
    let can_scan = !operator_projects.is_empty();
    let names: HashMap<String, String> = project_names(state, p).await?.into_iter().collect();
    let (servers, more_servers) = if can_scan {
        let list = crate::api::servers::list(
            state,
            p,
            ServerQuery {
                per_page: Some(PICK_SERVERS),
                ..Default::default()
            },
        )
        .await?;
        let more = list.total > list.items.len() as i64;
        let picks = list
            .items
            .into_iter()
            .filter(|s| p.require(&s.project_id, Role::Operator).is_ok())
            .filter(|s| s.agent_id.is_some() && s.revoked_at.is_none())
            .map(|s| ServerPick {
                project: names.get(&s.project_id).cloned().unwrap_or_default(),
                checked: form.servers.contains(&s.id),
                id: s.id,
                name: s.name,
                agent_status: s.agent_status,
            })
            .collect();
        (picks, more)
    } else {
        (Vec::new(), false)
    };
    let checks = ScanCheck::ALL
        .iter()
        .map(|c| CheckOpt {
            value: c.as_str(),
            label: check_label(*c),
            checked: form.checks.contains(c),
        })
        .collect();
    let mut servers: Vec<ServerPick> = servers;
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    html_status(
        status,
        &ScansPage {
            nav: Nav::new(p, "risk"),
            section: "scans",
            flash: flash(m),
            error,
            project_opts: project_opts(state, p, &project, Role::Viewer).await?,
            counts,
            rows,
            pager,
            can_scan,
            operator_projects,
            checks,
            servers,
            more_servers,
            target: form.target,
            state: st,
        },
    )
}

/// `GET /risk/scans?project=&state=&page=`
pub async fn scans(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render_scans(&state, &p, &m, None, StatusCode::OK, None).await
}

/// `POST /risk/scans`: a `risk_scan` task with the ticked checks for the ticked servers
/// (`server_<id>`), or for every server of a project (`target=project`).
pub async fn start_scans(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let checks: Vec<ScanCheck> = ScanCheck::ALL
        .into_iter()
        .filter(|c| !f.get(&format!("check_{}", c.as_str())).is_empty())
        .collect();
    let servers = checked_ids(&f, "server_");
    let target = if f.get("target") == "project" {
        "project"
    } else {
        "selected"
    };
    let form = ScanForm {
        checks: checks.clone(),
        servers: servers.clone(),
        project: f.get("project").to_string(),
        target: target.into(),
    };
    let refuse = |msg: String, status: StatusCode, form: ScanForm| {
        let state = state.clone();
        let p = p.clone();
        async move { render_scans(&state, &p, &HashMap::new(), Some(form), status, Some(msg)).await }
    };
    if checks.is_empty() {
        return refuse(
            "Tick at least one check.".into(),
            StatusCode::BAD_REQUEST,
            form,
        )
        .await;
    }
    let params = serde_json::json!({
        "checks": checks.iter().map(|c| c.as_str()).collect::<Vec<_>>()
    });
    let input = if target == "project" {
        CreateTasks {
            all: Some(true),
            project_id: f.opt("project"),
            kind: SCAN_TASK.to_string(),
            params: Some(params),
            ..Default::default()
        }
    } else {
        if servers.is_empty() {
            return refuse(
                "Tick at least one server, or choose to scan every server of a project.".into(),
                StatusCode::BAD_REQUEST,
                form,
            )
            .await;
        }
        CreateTasks {
            server_ids: Some(servers),
            kind: SCAN_TASK.to_string(),
            params: Some(params),
            ..Default::default()
        }
    };
    match tasks::create(&state, &p, input).await {
        Ok(list) => Ok(see_other(&format!(
            "/risk/scans?done=scan&n={}",
            list.items.len()
        ))),
        Err(e) if e.status == StatusCode::BAD_REQUEST => refuse(e.message, e.status, form).await,
        Err(e) => Err(e.into()),
    }
}

/// The scan pages.
pub fn router() -> Router<AppState> {
    Router::new().route("/risk/scans", get(scans).post(start_scans))
}
