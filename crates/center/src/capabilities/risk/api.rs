//! Risk prevention: the vulnerability database status, vulnerability findings (fleet-wide by
//! CVE, per finding, per server) and their handling (ignore, verify, one-click fix, whitelist
//! rules), weak-password accounts, password-policy results, scan tasks, and the per-project risk
//! policy pushed to agents.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hostward_proto::Severity;
use hostward_proto::risk::{FIX_TASK, FixRequest, RiskPolicy, SCAN_TASK};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::fleet_scope;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, text_field};
use crate::auth::{Principal, Role};
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{
    HandlingEntry, History, NewTasks, PolicyResultRow, RiskScanState, TaskRow, VulnDbImport,
    VulnDbStatus, VulnFilter, VulnFinding, VulnGroup, VulnRule, WeakPasswordRow, new_id, now,
    vuln_state,
};

/// Findings one action may touch.
pub const MAX_ACTION_FINDINGS: usize = 1000;
/// Fix and verify tasks expire after a day, like other tasks.
const TASK_EXPIRY_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VulnQuery {
    /// Project id (fleet views; default: every project you can see).
    pub project: Option<String>,
    /// critical, high, medium or low.
    pub severity: Option<String>,
    /// unhandled, ignored, fixing, fixed, failed, restart_required, verifying. Without it: every
    /// finding that is still present.
    pub state: Option<String>,
    /// Exact package name.
    pub package: Option<String>,
    /// Exact CVE id.
    pub cve: Option<String>,
    /// Substring of CVE id, package or summary.
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingPage {
    pub items: Vec<VulnFinding>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<VulnGroup>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingDetail {
    pub finding: VulnFinding,
    pub history: Vec<HandlingEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VulnDbBody {
    pub status: VulnDbStatus,
    /// The latest imports, newest first.
    pub imports: Vec<VulnDbImport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Accept the risk: the finding no longer counts toward the server's risk.
    Ignore,
    /// Undo `ignore`.
    Unignore,
    /// Re-collect the software of the finding's servers and match again.
    Verify,
    /// Run the package manager on the agent (only where the project's policy allows it).
    Fix,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub action: Action,
    pub finding_ids: Vec<String>,
    /// Why (kept in the handling history).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionResult {
    /// Findings whose state changed.
    pub changed: usize,
    /// Tasks queued (verify, fix).
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<TaskRow>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub project_id: Option<String>,
    /// Exact CVE id; at least one of `cve` and `package` is required.
    #[serde(default)]
    pub cve: Option<String>,
    #[serde(default)]
    pub package: Option<String>,
    /// Servers it covers; empty or absent: every server of the project.
    #[serde(default)]
    pub server_ids: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleCreated {
    pub rule: VulnRule,
    /// Servers where open findings were ignored at once.
    pub servers_affected: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleList {
    pub items: Vec<VulnRule>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    pub project: Option<String>,
    /// Password policy only: `true` lists failed checks only.
    pub failed: Option<bool>,
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeakPasswordList {
    pub items: Vec<WeakPasswordRow>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyResultList {
    pub items: Vec<PolicyResultRow>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerRisk {
    pub server_id: String,
    /// pending, risky, safe.
    pub risk_status: String,
    /// Why it is pending: the checks that have not reported yet, or that no vulnerability
    /// database is imported ('' otherwise).
    pub risk_reason: String,
    #[schema(value_type = Object)]
    pub risk_counts: serde_json::Value,
    pub scans: RiskScanState,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanQuery {
    pub project: Option<String>,
    /// queued, delivered, running, done, failed, expired.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanRow {
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub task: TaskRow,
    pub server_name: String,
    /// Seconds from queueing to the final state, once final.
    pub duration_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanList {
    pub items: Vec<ScanRow>,
    /// Count per state among the latest 1,000 scans, whatever `state` filters.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskPolicyBody {
    #[schema(value_type = Object)]
    pub policy: RiskPolicy,
    pub version: i64,
}

fn filter(q: &VulnQuery, csv: bool) -> Result<VulnFilter, ApiError> {
    let severity = match q.severity.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            ApiError::invalid_query(format!(
                "severity: {s:?} is not one of critical, high, medium, low"
            ))
        })?),
    };
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if vuln_state::ALL.contains(&s) => Some(s.to_string()),
        Some(s) => {
            return Err(ApiError::invalid_query(format!(
                "state: {s:?} is not one of {}",
                vuln_state::ALL.join(", ")
            )));
        }
    };
    let (page, per_page) = paging(q.page, q.per_page, csv)?;
    Ok(VulnFilter {
        severity,
        state,
        package: q.package.clone(),
        cve: q.cve.clone(),
        q: q.q.clone(),
        page,
        per_page,
        ..Default::default()
    })
}

pub async fn vulndb(state: &AppState, _p: &Principal) -> Result<VulnDbBody, ApiError> {
    Ok(VulnDbBody {
        status: state.store.vulndb_status().await?,
        imports: state.store.vulndb_imports(20).await?,
    })
}

/// Vulnerabilities across the caller's servers, one row per CVE.
pub async fn groups(state: &AppState, p: &Principal, q: &VulnQuery) -> Result<GroupPage, ApiError> {
    let mut f = filter(q, is_csv(q.format.as_deref())?)?;
    f.projects = fleet_scope(state, p, q.project.as_deref()).await?;
    let (items, total) = state.store.vuln_groups(&f).await?;
    Ok(GroupPage {
        items,
        total,
        page: f.page,
        per_page: f.per_page,
    })
}

/// Findings of one server (`server_id`) or across the caller's servers (`cve=` gives the
/// servers affected by one vulnerability).
pub async fn findings(
    state: &AppState,
    p: &Principal,
    server_id: Option<&str>,
    q: &VulnQuery,
) -> Result<FindingPage, ApiError> {
    let mut f = filter(q, is_csv(q.format.as_deref())?)?;
    match server_id {
        Some(id) => f.server_id = Some(visible_server(state, p, id, Role::Viewer).await?.id),
        None => f.projects = fleet_scope(state, p, q.project.as_deref()).await?,
    }
    let (items, total) = state.store.vuln_findings(&f).await?;
    Ok(FindingPage {
        items,
        total,
        page: f.page,
        per_page: f.per_page,
    })
}

async fn visible_finding(
    state: &AppState,
    p: &Principal,
    id: &str,
    min: Role,
) -> Result<VulnFinding, ApiError> {
    let f = state
        .store
        .vuln_finding(id)
        .await?
        .ok_or_else(|| ApiError::not_found("finding"))?;
    p.require_on("finding", &f.project_id, min)?;
    Ok(f)
}

pub async fn finding(state: &AppState, p: &Principal, id: &str) -> Result<FindingDetail, ApiError> {
    let finding = visible_finding(state, p, id, Role::Viewer).await?;
    Ok(FindingDetail {
        history: state
            .store
            .handling_history(History::Finding, &finding.id)
            .await?,
        finding,
    })
}

/// Handles findings (operator+ on each finding's project; all or nothing).
pub async fn act(
    state: &AppState,
    p: &Principal,
    body: ActionBody,
) -> Result<ActionResult, ApiError> {
    if body.finding_ids.is_empty() {
        return Err(ApiError::invalid_body("finding_ids: must not be empty"));
    }
    if body.finding_ids.len() > MAX_ACTION_FINDINGS {
        return Err(ApiError::invalid_body(format!(
            "finding_ids: at most {MAX_ACTION_FINDINGS}"
        )));
    }
    let note = match body.note.as_deref() {
        Some(n) if !n.trim().is_empty() => text_field("note", n, 1, 500)?,
        _ => String::new(),
    };
    let mut findings = Vec::with_capacity(body.finding_ids.len());
    for (i, id) in body.finding_ids.iter().enumerate() {
        let f = match state.store.vuln_finding(id).await? {
            Some(f) if p.role_in(&f.project_id).is_some() => f,
            _ => return Err(ApiError::not_found(&format!("finding_ids[{i}]: finding"))),
        };
        p.require_on("finding", &f.project_id, Role::Operator)?;
        if !f.present {
            return Err(ApiError::conflict(format!(
                "finding_ids[{i}]: {} on {} is already fixed",
                f.cve, f.server_name
            )));
        }
        findings.push(f);
    }
    let actor = p.username.clone();
    let ids = |fs: &[&VulnFinding]| fs.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    let mut tasks = Vec::new();
    let changed = match body.action {
        Action::Ignore => {
            let open: Vec<&VulnFinding> = findings
                .iter()
                .filter(|f| f.state != vuln_state::IGNORED)
                .collect();
            state
                .store
                .set_vuln_state(
                    &ids(&open),
                    vuln_state::IGNORED,
                    &actor,
                    "ignore",
                    &note,
                    None,
                )
                .await?
        }
        Action::Unignore => {
            let ignored: Vec<&VulnFinding> = findings
                .iter()
                .filter(|f| f.state == vuln_state::IGNORED)
                .collect();
            state
                .store
                .set_vuln_state(
                    &ids(&ignored),
                    vuln_state::UNHANDLED,
                    &actor,
                    "unignore",
                    &note,
                    None,
                )
                .await?
        }
        Action::Verify => {
            let mut by_server: BTreeMap<(String, String), Vec<&VulnFinding>> = BTreeMap::new();
            for f in &findings {
                by_server
                    .entry((f.project_id.clone(), f.server_id.clone()))
                    .or_default()
                    .push(f);
            }
            let targets: Vec<(String, String)> = by_server.keys().cloned().collect();
            let params = serde_json::json!({ "kinds": ["software"], "full": true });
            let rows = state
                .store
                .create_tasks(&NewTasks {
                    targets: &targets,
                    kind: hostward_proto::inventory::COLLECT_INVENTORY_TASK,
                    params: &params,
                    created_by: &actor,
                    expires_at: Some(now() + TASK_EXPIRY_SECS),
                })
                .await?;
            state.gateway.tasks_created(&rows);
            tasks = rows;
            let all: Vec<&VulnFinding> = findings.iter().collect();
            state
                .store
                .set_vuln_state(
                    &ids(&all),
                    vuln_state::VERIFYING,
                    &actor,
                    "verify",
                    &note,
                    None,
                )
                .await?
        }
        Action::Fix => fix(state, &actor, &findings, &note, &mut tasks).await?,
    };
    let mut projects: Vec<&str> = findings.iter().map(|f| f.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let action = serde_json::to_value(body.action).unwrap_or_default();
    for proj in projects {
        let n = findings.iter().filter(|f| f.project_id == proj).count();
        audit(
            state,
            p,
            proj,
            &format!("vulnerability.{}", action.as_str().unwrap_or("")),
            &format!("{n} findings"),
            &note,
        )
        .await;
    }
    Ok(ActionResult { changed, tasks })
}

/// One `vuln_fix` task per server, upgrading the packages of its selected findings.
async fn fix(
    state: &AppState,
    actor: &str,
    findings: &[VulnFinding],
    note: &str,
    tasks: &mut Vec<TaskRow>,
) -> Result<usize, ApiError> {
    let mut by_server: BTreeMap<(String, String), Vec<&VulnFinding>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if f.fixed_version.is_none() {
            return Err(ApiError::conflict(format!(
                "finding_ids[{i}]: {} has no fixed version of {} yet",
                f.cve, f.package
            )));
        }
        by_server
            .entry((f.project_id.clone(), f.server_id.clone()))
            .or_default()
            .push(f);
    }
    for (project, _) in by_server.keys() {
        if !state.store.policy::<RiskPolicy>(project).await?.0.allow_fix {
            return Err(ApiError::conflict(
                "one-click fixes are off in this project's risk policy (allow_fix)",
            ));
        }
    }
    let mut changed = 0;
    for ((project, server), fs) in by_server {
        let mut packages: Vec<String> = fs.iter().map(|f| f.package.clone()).collect();
        packages.sort();
        packages.dedup();
        let params = serde_json::to_value(FixRequest {
            manager: fs[0].manager.clone(),
            packages,
        })
        .expect("fix request serialises");
        let rows = state
            .store
            .create_tasks(&NewTasks {
                targets: &[(project, server)],
                kind: FIX_TASK,
                params: &params,
                created_by: actor,
                expires_at: Some(now() + TASK_EXPIRY_SECS),
            })
            .await?;
        let ids: Vec<String> = fs.iter().map(|f| f.id.clone()).collect();
        changed += state
            .store
            .set_vuln_state(
                &ids,
                vuln_state::FIXING,
                actor,
                "fix",
                note,
                Some(&rows[0].id),
            )
            .await?;
        state.gateway.tasks_created(&rows);
        tasks.extend(rows);
    }
    Ok(changed)
}

pub async fn rules(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<RuleList, ApiError> {
    let projects = fleet_scope(state, p, project).await?;
    Ok(RuleList {
        items: state.store.vuln_rules(&projects).await?,
    })
}

fn exact(field: &str, v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.len() <= 200 && s.chars().all(|c| c.is_ascii_graphic()) => {
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(ApiError::invalid_body(format!(
            "{field}: 1 to 200 printable ASCII characters, no spaces"
        ))),
    }
}

pub async fn create_rule(
    state: &AppState,
    p: &Principal,
    input: NewRule,
) -> Result<RuleCreated, ApiError> {
    let project_id =
        crate::api::target_project(state, p, input.project_id.as_deref(), Role::Operator).await?;
    let cve = exact("cve", input.cve.as_deref())?;
    let package = exact("package", input.package.as_deref())?;
    if cve.is_none() && package.is_none() {
        return Err(ApiError::invalid_body(
            "cve: give a CVE id, a package, or both",
        ));
    }
    let reason = text_field("reason", &input.reason, 1, 500)?;
    for (i, id) in input.server_ids.iter().enumerate() {
        match state.store.server(id).await? {
            Some(s) if s.project_id == project_id => {}
            _ => return Err(ApiError::not_found(&format!("server_ids[{i}]: server"))),
        }
    }
    let mut server_ids = input.server_ids;
    server_ids.sort();
    server_ids.dedup();
    let rule = VulnRule {
        id: new_id(),
        project_id: project_id.clone(),
        cve,
        package,
        server_ids,
        reason,
        created_by: p.username.clone(),
        created_at: now(),
    };
    let servers_affected = state.store.create_vuln_rule(&rule).await?;
    let detail = serde_json::json!({"cve": rule.cve, "package": rule.package, "servers": rule.server_ids.len()}).to_string();
    audit(
        state,
        p,
        &project_id,
        "vulnerability.rule.create",
        &rule.id,
        &detail,
    )
    .await;
    Ok(RuleCreated {
        rule,
        servers_affected,
    })
}

pub async fn delete_rule(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let rule = match state.store.vuln_rule(id).await? {
        Some(r) if p.role_in(&r.project_id).is_some() => r,
        _ => return Err(ApiError::not_found("rule")),
    };
    p.require_on("rule", &rule.project_id, Role::Operator)?;
    state.store.delete_vuln_rule(id).await?;
    audit(
        state,
        p,
        &rule.project_id,
        "vulnerability.rule.delete",
        id,
        "",
    )
    .await;
    Ok(())
}

pub async fn weak_passwords(
    state: &AppState,
    p: &Principal,
    server_id: Option<&str>,
    project: Option<&str>,
) -> Result<WeakPasswordList, ApiError> {
    let items = match server_id {
        Some(id) => {
            let s = visible_server(state, p, id, Role::Viewer).await?;
            state.store.weak_passwords(&[], Some(&s.id)).await?
        }
        None => {
            state
                .store
                .weak_passwords(&fleet_scope(state, p, project).await?, None)
                .await?
        }
    };
    Ok(WeakPasswordList { items })
}

pub async fn password_policy(
    state: &AppState,
    p: &Principal,
    server_id: Option<&str>,
    q: &FleetQuery,
) -> Result<PolicyResultList, ApiError> {
    let failed = q.failed.unwrap_or(false);
    let items = match server_id {
        Some(id) => {
            let s = visible_server(state, p, id, Role::Viewer).await?;
            state
                .store
                .password_policy_results(&[], Some(&s.id), failed)
                .await?
        }
        None => {
            let projects = fleet_scope(state, p, q.project.as_deref()).await?;
            state
                .store
                .password_policy_results(&projects, None, failed)
                .await?
        }
    };
    Ok(PolicyResultList { items })
}

pub async fn server_risk(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> Result<ServerRisk, ApiError> {
    let s = visible_server(state, p, id, Role::Viewer).await?;
    Ok(ServerRisk {
        scans: state.store.risk_scan_state(&s.id).await?,
        server_id: s.id,
        risk_status: s.risk_status,
        risk_reason: s.risk_reason,
        risk_counts: s.risk_counts,
    })
}

/// Scan tasks across the caller's servers, newest first (the latest 1,000).
pub async fn scans(state: &AppState, p: &Principal, q: &ScanQuery) -> Result<ScanList, ApiError> {
    let projects = fleet_scope(state, p, q.project.as_deref()).await?;
    let st = q.state.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = st
        && hostward_proto::TaskState::parse(s).is_none()
    {
        return Err(ApiError::invalid_query(format!(
            "state: {s:?} is not one of queued, delivered, running, done, failed, expired"
        )));
    }
    // Counts are of every state, so a filtered page still shows the whole picture.
    let rows = state
        .store
        .list_tasks_fleet(&projects, Some(SCAN_TASK), None, 1000)
        .await?;
    let mut counts = BTreeMap::new();
    for (task, _) in &rows {
        *counts.entry(task.state.clone()).or_insert(0) += 1;
    }
    let items = rows
        .into_iter()
        .filter(|(task, _)| st.is_none_or(|s| task.state == s))
        .map(|(task, server_name)| {
            let final_state =
                hostward_proto::TaskState::parse(&task.state).is_some_and(|s| s.is_final());
            ScanRow {
                duration_secs: final_state.then(|| task.updated_at - task.created_at),
                task,
                server_name,
            }
        })
        .collect();
    Ok(ScanList { items, counts })
}

pub async fn risk_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<RiskPolicyBody, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (policy, version) = state.store.policy(project_id).await?;
    Ok(RiskPolicyBody { policy, version })
}

/// Replaces a project's risk policy (admin) and pushes the new config to its agents.
pub async fn set_risk_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    mut policy: RiskPolicy,
) -> Result<RiskPolicyBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    policy.validate().map_err(ApiError::invalid_body)?;
    policy.custom_weak_passwords.sort();
    policy.custom_weak_passwords.dedup();
    let version = state.store.set_policy(project_id, &policy).await?;
    for (_, server_id) in state.store.server_ids_in(&[project_id.to_string()]).await? {
        state.gateway.config_changed(&server_id);
    }
    // The custom list is the project's secret-ish knowledge of its own passwords: count it only.
    let detail = serde_json::json!({
        "window_start_min": policy.window_start_min,
        "window_end_min": policy.window_end_min,
        "jitter_secs": policy.jitter_secs,
        "daily_scan": policy.daily_scan,
        "custom_weak_passwords": policy.custom_weak_passwords.len(),
        "allow_fix": policy.allow_fix,
    })
    .to_string();
    audit(state, p, project_id, "risk.policy", project_id, &detail).await;
    Ok(RiskPolicyBody { policy, version })
}

// ---- HTTP handlers ----

fn finding_rows(items: &[VulnFinding]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|f| {
            vec![
                f.server_name.clone(),
                f.cve.clone(),
                f.severity.clone(),
                f.cvss.map(|c| format!("{c:.1}")).unwrap_or_default(),
                f.package.clone(),
                f.installed_version.clone(),
                f.fixed_version.clone().unwrap_or_else(|| "unfixed".into()),
                f.state.clone(),
                f.fix_command.clone().unwrap_or_default(),
                f.restart.clone(),
                f.summary.clone(),
            ]
        })
        .collect()
}

const FINDING_CSV: &[&str] = &[
    "server",
    "cve",
    "severity",
    "cvss",
    "package",
    "installed",
    "fixed",
    "state",
    "fix_command",
    "restart",
    "summary",
];

#[utoipa::path(get, path = "/api/v1/vulndb", tag = "risk",
    responses((status = 200, body = VulnDbBody), (status = 401, body = crate::api::ErrorBody)))]
pub async fn vulndb_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<VulnDbBody>, ApiError> {
    Ok(Json(vulndb(&state, &p).await?))
}

#[utoipa::path(get, path = "/api/v1/vulnerabilities", tag = "risk", params(VulnQuery),
    responses((status = 200, body = GroupPage), (status = 400, body = crate::api::ErrorBody)))]
pub async fn groups_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<VulnQuery>,
) -> Result<Response, ApiError> {
    let page = groups(&state, &p, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|g| {
                vec![
                    g.cve.clone(),
                    g.severity.clone(),
                    g.cvss.map(|c| format!("{c:.1}")).unwrap_or_default(),
                    g.servers.to_string(),
                    g.open.to_string(),
                    g.package.clone(),
                    g.packages.to_string(),
                    g.summary.clone(),
                ]
            })
            .collect();
        return Ok(csv_response(
            "vulnerabilities.csv",
            &[
                "cve", "severity", "cvss", "servers", "open", "package", "packages", "summary",
            ],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/vulnerabilities/findings", tag = "risk", params(VulnQuery),
    responses((status = 200, body = FindingPage), (status = 400, body = crate::api::ErrorBody)))]
pub async fn fleet_findings_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<VulnQuery>,
) -> Result<Response, ApiError> {
    let page = findings(&state, &p, None, &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            "vulnerability-findings.csv",
            FINDING_CSV,
            finding_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/vulnerabilities", tag = "risk",
    params(("id" = String, Path), VulnQuery),
    responses((status = 200, body = FindingPage), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_findings_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<VulnQuery>,
) -> Result<Response, ApiError> {
    let page = findings(&state, &p, Some(&id), &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            "server-vulnerabilities.csv",
            FINDING_CSV,
            finding_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/vulnerabilities/findings/{id}", tag = "risk", params(("id" = String, Path)),
    responses((status = 200, body = FindingDetail), (status = 404, body = crate::api::ErrorBody)))]
pub async fn finding_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<FindingDetail>, ApiError> {
    Ok(Json(finding(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/vulnerabilities/actions", tag = "risk", request_body = ActionBody,
    responses((status = 200, body = ActionResult), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn action_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<ActionResult>, ApiError> {
    Ok(Json(act(&state, &p, body).await?))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    pub project: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/vulnerability-rules", tag = "risk", params(ProjectQuery),
    responses((status = 200, body = RuleList)))]
pub async fn rules_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<RuleList>, ApiError> {
    Ok(Json(rules(&state, &p, q.project.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/v1/vulnerability-rules", tag = "risk", request_body = NewRule,
    responses((status = 201, body = RuleCreated), (status = 400, body = crate::api::ErrorBody)))]
pub async fn create_rule_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<NewRule>,
) -> Result<(StatusCode, Json<RuleCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_rule(&state, &p, input).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/vulnerability-rules/{id}", tag = "risk", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)))]
pub async fn delete_rule_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_rule(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/weak-passwords", tag = "risk", params(FleetQuery),
    responses((status = 200, body = WeakPasswordList)))]
pub async fn fleet_weak_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<WeakPasswordList>, ApiError> {
    Ok(Json(
        weak_passwords(&state, &p, None, q.project.as_deref()).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/weak-passwords", tag = "risk", params(("id" = String, Path)),
    responses((status = 200, body = WeakPasswordList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_weak_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<WeakPasswordList>, ApiError> {
    Ok(Json(weak_passwords(&state, &p, Some(&id), None).await?))
}

#[utoipa::path(get, path = "/api/v1/password-policy", tag = "risk", params(FleetQuery),
    responses((status = 200, body = PolicyResultList)))]
pub async fn fleet_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<PolicyResultList>, ApiError> {
    Ok(Json(password_policy(&state, &p, None, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/password-policy", tag = "risk", params(("id" = String, Path), FleetQuery),
    responses((status = 200, body = PolicyResultList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<PolicyResultList>, ApiError> {
    Ok(Json(password_policy(&state, &p, Some(&id), &q).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/risk", tag = "risk", params(("id" = String, Path)),
    responses((status = 200, body = ServerRisk), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_risk_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ServerRisk>, ApiError> {
    Ok(Json(server_risk(&state, &p, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/scans", tag = "risk", params(ScanQuery),
    responses((status = 200, body = ScanList)))]
pub async fn scans_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ScanQuery>,
) -> Result<Json<ScanList>, ApiError> {
    Ok(Json(scans(&state, &p, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/risk-policy", tag = "risk", params(("id" = String, Path)),
    responses((status = 200, body = RiskPolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<RiskPolicyBody>, ApiError> {
    Ok(Json(risk_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/risk-policy", tag = "risk", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = RiskPolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<RiskPolicy>,
) -> Result<Json<RiskPolicyBody>, ApiError> {
    Ok(Json(set_risk_policy(&state, &p, &id, policy).await?))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of risk prevention, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vulndb", get(vulndb_handler))
        .route("/api/v1/vulnerabilities", get(groups_handler))
        .route(
            "/api/v1/vulnerabilities/findings",
            get(fleet_findings_handler),
        )
        .route(
            "/api/v1/vulnerabilities/findings/{id}",
            get(finding_handler),
        )
        .route("/api/v1/vulnerabilities/actions", post(action_handler))
        .route(
            "/api/v1/vulnerability-rules",
            get(rules_handler).post(create_rule_handler),
        )
        .route(
            "/api/v1/vulnerability-rules/{id}",
            delete(delete_rule_handler),
        )
        .route("/api/v1/weak-passwords", get(fleet_weak_handler))
        .route("/api/v1/password-policy", get(fleet_policy_handler))
        .route("/api/v1/scans", get(scans_handler))
        .route(
            "/api/v1/projects/{id}/risk-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route(
            "/api/v1/servers/{id}/vulnerabilities",
            get(server_findings_handler),
        )
        .route(
            "/api/v1/servers/{id}/weak-passwords",
            get(server_weak_handler),
        )
        .route(
            "/api/v1/servers/{id}/password-policy",
            get(server_policy_handler),
        )
        .route("/api/v1/servers/{id}/risk", get(server_risk_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    vulndb_handler,
    groups_handler,
    fleet_findings_handler,
    server_findings_handler,
    finding_handler,
    action_handler,
    rules_handler,
    create_rule_handler,
    delete_rule_handler,
    fleet_weak_handler,
    server_weak_handler,
    fleet_policy_handler,
    server_policy_handler,
    server_risk_handler,
    scans_handler,
    policy_handler,
    set_policy_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
