//! Configuration baselines: every check across the fleet (how many servers fail it), each
//! server's results with their evidence, one result with its handling history, handling
//! (ignore, unignore, verify: a `risk_scan` task re-running that one check), whitelist rules,
//! the policies Hostward ships, and the project's baseline policy (shipped policies turned
//! off, policies people imported, each checked by the engine before it is stored and pushed).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hostward_proto::Severity;
use hostward_proto::baseline::{BaselinePolicy, CheckRef, ImportedPolicy};
use hostward_proto::risk::{SCAN_TASK, ScanCheck, ScanRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::fleet_scope;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, text_field};
use crate::auth::{Principal, Role};
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{
    BaselineCheckGroup, BaselineFilter, BaselineFinding, BaselinePolicyRow, BaselineRule,
    HandlingEntry, History, NewTasks, TaskRow, baseline_state, new_id, now,
};

/// Results one action may touch; a verification queues one task per result, so fewer.
pub const MAX_ACTION_RESULTS: usize = 1000;
pub const MAX_VERIFY_RESULTS: usize = 100;
const TASK_EXPIRY_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// Project id (fleet views; default: every project you can see).
    pub project: Option<String>,
    /// Policy id, e.g. `hostward_sshd`.
    pub policy: Option<String>,
    /// Check id within the policy.
    pub check: Option<i64>,
    /// pass, fail or not_applicable.
    pub result: Option<String>,
    /// open or ignored.
    pub state: Option<String>,
    /// critical, high, medium or low.
    pub severity: Option<String>,
    /// Substring of the check's title or the policy's name.
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultPage {
    pub items: Vec<BaselineFinding>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckPage {
    pub items: Vec<BaselineCheckGroup>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerBaselines {
    pub server_id: String,
    /// When baselines last reported a full run (None: never; the risk status is pending).
    pub scanned_at: Option<i64>,
    /// Policies run and applicable, checks passed / failed / not applicable, and imported
    /// policies the agent could not run (`issues`).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    /// Every policy the agent ran, and why those that did not apply did not.
    pub policies: Vec<BaselinePolicyRow>,
    pub results: ResultPage,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultDetail {
    pub result: BaselineFinding,
    pub history: Vec<HandlingEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Accept it on this server: the failure no longer counts toward the risk status.
    Ignore,
    /// Undo `ignore`.
    Unignore,
    /// Re-run this one check on its server now.
    Verify,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub action: Action,
    pub result_ids: Vec<String>,
    /// Why (kept in the handling history).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionResult {
    /// Results whose state changed.
    pub changed: usize,
    /// Tasks queued (verify).
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<TaskRow>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub project_id: Option<String>,
    pub policy_id: String,
    pub check_id: i64,
    /// Servers it covers; empty or absent: every server of the project.
    #[serde(default)]
    pub server_ids: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleCreated {
    pub rule: BaselineRule,
    /// Failures ignored at once.
    pub results_ignored: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleList {
    pub items: Vec<BaselineRule>,
}

/// A policy as the center knows it (shipped, or imported by the project).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyInfo {
    pub id: String,
    pub file: String,
    pub name: String,
    pub description: String,
    pub checks: usize,
    /// `shipped` or `imported`.
    pub origin: String,
    /// Whether it runs on the project's servers (a shipped policy the project turned off
    /// does not).
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BaselinePolicyBody {
    #[schema(value_type = Object)]
    pub policy: BaselinePolicy,
    pub version: i64,
    /// Shipped and imported policies, as they load.
    pub policies: Vec<PolicyInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    pub project: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub format: Option<String>,
}

fn filter(q: &ResultQuery, csv: bool) -> Result<BaselineFilter, ApiError> {
    let severity = match q.severity.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            ApiError::invalid_query(format!(
                "severity: {s:?} is not one of critical, high, medium, low"
            ))
        })?),
    };
    let result = match q.result.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(r) if hostward_proto::baseline::Outcome::parse(r).is_some() => Some(r.to_string()),
        Some(r) => {
            return Err(ApiError::invalid_query(format!(
                "result: {r:?} is not one of pass, fail, not_applicable"
            )));
        }
    };
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if baseline_state::ALL.contains(&s) => Some(s.to_string()),
        Some(s) => {
            return Err(ApiError::invalid_query(format!(
                "state: {s:?} is not one of {}",
                baseline_state::ALL.join(", ")
            )));
        }
    };
    let (page, per_page) = paging(q.page, q.per_page, csv)?;
    Ok(BaselineFilter {
        policy_id: q.policy.clone().filter(|p| !p.is_empty()),
        check_id: q.check,
        result,
        state,
        severity,
        q: q.q.clone(),
        page,
        per_page,
        ..Default::default()
    })
}

/// Every check across the caller's servers: the ones failing on most servers first.
pub async fn checks(
    state: &AppState,
    p: &Principal,
    q: &ProjectQuery,
) -> Result<CheckPage, ApiError> {
    let csv = is_csv(q.format.as_deref())?;
    let (page, per_page) = paging(q.page, q.per_page, csv)?;
    let projects = fleet_scope(state, p, q.project.as_deref()).await?;
    let (items, total) = state
        .store
        .baseline_checks(&projects, page, per_page)
        .await?;
    Ok(CheckPage {
        items,
        total,
        page,
        per_page,
    })
}

/// Results of one server (`server_id`) or across the caller's servers (`policy=` and
/// `check=` give the servers of one check).
pub async fn results(
    state: &AppState,
    p: &Principal,
    server_id: Option<&str>,
    q: &ResultQuery,
) -> Result<ResultPage, ApiError> {
    let mut f = filter(q, is_csv(q.format.as_deref())?)?;
    match server_id {
        Some(id) => f.server_id = Some(visible_server(state, p, id, Role::Viewer).await?.id),
        None => f.projects = fleet_scope(state, p, q.project.as_deref()).await?,
    }
    let (items, total) = state.store.baseline_findings(&f).await?;
    Ok(ResultPage {
        items,
        total,
        page: f.page,
        per_page: f.per_page,
    })
}

pub async fn server_baselines(
    state: &AppState,
    p: &Principal,
    id: &str,
    q: &ResultQuery,
) -> Result<ServerBaselines, ApiError> {
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let scan = state.store.risk_scan_state(&srv.id).await?;
    Ok(ServerBaselines {
        server_id: srv.id.clone(),
        scanned_at: scan.baseline_scanned_at,
        summary: scan.baseline_summary,
        policies: state.store.baseline_policies(&srv.id).await?,
        results: results(state, p, Some(&srv.id), q).await?,
    })
}

pub async fn result(state: &AppState, p: &Principal, id: &str) -> Result<ResultDetail, ApiError> {
    let r = match state.store.baseline_finding(id).await? {
        Some(r) if p.role_in(&r.project_id).is_some() => r,
        _ => return Err(ApiError::not_found("result")),
    };
    Ok(ResultDetail {
        history: state
            .store
            .handling_history(History::Baseline, &r.id)
            .await?,
        result: r,
    })
}

/// Handles results (operator+ on each result's project; all or nothing).
pub async fn act(
    state: &AppState,
    p: &Principal,
    body: ActionBody,
) -> Result<ActionResult, ApiError> {
    if body.result_ids.is_empty() {
        return Err(ApiError::invalid_body("result_ids: must not be empty"));
    }
    let max = if body.action == Action::Verify {
        MAX_VERIFY_RESULTS
    } else {
        MAX_ACTION_RESULTS
    };
    if body.result_ids.len() > max {
        return Err(ApiError::invalid_body(format!(
            "result_ids: at most {max} for this action"
        )));
    }
    let note = match body.note.as_deref() {
        Some(n) if !n.trim().is_empty() => text_field("note", n, 1, 500)?,
        _ => String::new(),
    };
    let mut found = Vec::with_capacity(body.result_ids.len());
    for (i, id) in body.result_ids.iter().enumerate() {
        let r = match state.store.baseline_finding(id).await? {
            Some(r) if p.role_in(&r.project_id).is_some() => r,
            _ => return Err(ApiError::not_found(&format!("result_ids[{i}]: result"))),
        };
        p.require_on("result", &r.project_id, Role::Operator)?;
        found.push(r);
    }
    let actor = p.username.clone();
    let mut tasks = Vec::new();
    let changed = match body.action {
        Action::Ignore | Action::Unignore => {
            let (to, verb) = if body.action == Action::Ignore {
                (baseline_state::IGNORED, "ignore")
            } else {
                (baseline_state::OPEN, "unignore")
            };
            let ids: Vec<String> = found
                .iter()
                .filter(|r| r.state != to)
                .map(|r| r.id.clone())
                .collect();
            state
                .store
                .set_baseline_state(&ids, to, &actor, verb, &note)
                .await?
        }
        Action::Verify => {
            for r in &found {
                let params = serde_json::to_value(ScanRequest {
                    checks: vec![ScanCheck::Baselines],
                    verify: Some(CheckRef {
                        policy_id: r.policy_id.clone(),
                        check_id: r.check_id,
                    }),
                })
                .expect("a scan request serialises");
                let rows = state
                    .store
                    .create_tasks(&NewTasks {
                        targets: &[(r.project_id.clone(), r.server_id.clone())],
                        kind: SCAN_TASK,
                        params: &params,
                        created_by: &actor,
                        expires_at: Some(now() + TASK_EXPIRY_SECS),
                    })
                    .await?;
                state
                    .store
                    .note_baseline_verify(&r.id, &actor, &rows[0].id)
                    .await?;
                state.gateway.tasks_created(&rows);
                tasks.extend(rows);
            }
            0
        }
    };
    let mut projects: Vec<&str> = found.iter().map(|r| r.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let action = serde_json::to_value(body.action).unwrap_or_default();
    for proj in projects {
        let n = found.iter().filter(|r| r.project_id == proj).count();
        audit(
            state,
            p,
            proj,
            &format!("baseline.{}", action.as_str().unwrap_or("")),
            &format!("{n} results"),
            &note,
        )
        .await;
    }
    Ok(ActionResult { changed, tasks })
}

pub async fn rules(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<RuleList, ApiError> {
    let projects = fleet_scope(state, p, project).await?;
    Ok(RuleList {
        items: state.store.baseline_rules(&projects).await?,
    })
}

pub async fn create_rule(
    state: &AppState,
    p: &Principal,
    input: NewRule,
) -> Result<RuleCreated, ApiError> {
    let project_id =
        crate::api::target_project(state, p, input.project_id.as_deref(), Role::Operator).await?;
    let policy_id = input.policy_id.trim().to_string();
    if policy_id.is_empty()
        || policy_id.len() > 128
        || !policy_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::invalid_body(
            "policy_id: 1 to 128 printable ASCII characters, no spaces",
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
    let rule = BaselineRule {
        id: new_id(),
        project_id: project_id.clone(),
        policy_id,
        check_id: input.check_id,
        server_ids,
        reason,
        created_by: p.username.clone(),
        created_at: now(),
    };
    let results_ignored = state.store.create_baseline_rule(&rule).await?;
    let detail = serde_json::json!({"policy_id": rule.policy_id, "check_id": rule.check_id, "servers": rule.server_ids.len()}).to_string();
    audit(
        state,
        p,
        &project_id,
        "baseline.rule.create",
        &rule.id,
        &detail,
    )
    .await;
    Ok(RuleCreated {
        rule,
        results_ignored,
    })
}

pub async fn delete_rule(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let rule = match state.store.baseline_rule(id).await? {
        Some(r) if p.role_in(&r.project_id).is_some() => r,
        _ => return Err(ApiError::not_found("rule")),
    };
    p.require_on("rule", &rule.project_id, Role::Operator)?;
    state.store.delete_baseline_rule(id).await?;
    audit(state, p, &rule.project_id, "baseline.rule.delete", id, "").await;
    Ok(())
}

/// The shipped and imported policies, as they load, with whether each runs.
fn policy_infos(policy: &BaselinePolicy) -> Vec<PolicyInfo> {
    let info = |p: &hostward_sca::Policy, origin: &str, enabled: bool| PolicyInfo {
        id: p.id.clone(),
        file: p.file.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        checks: p.checks.len(),
        origin: origin.into(),
        enabled,
    };
    let imported: Vec<hostward_sca::Policy> = policy
        .imported
        .iter()
        .filter_map(|i| hostward_sca::load(&i.file, &i.text).ok())
        .collect();
    let mut out: Vec<PolicyInfo> = hostward_sca::shipped()
        .iter()
        .map(|p| {
            let on = !policy.disabled.contains(&p.id) && !imported.iter().any(|i| i.id == p.id);
            info(p, "shipped", on)
        })
        .collect();
    out.extend(imported.iter().map(|p| info(p, "imported", true)));
    out
}

pub async fn baseline_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<BaselinePolicyBody, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (policy, version) = state.store.policy::<BaselinePolicy>(project_id).await?;
    Ok(BaselinePolicyBody {
        policies: policy_infos(&policy),
        policy,
        version,
    })
}

/// Checks a policy before it is stored: the limits, every imported text through the engine
/// (the error names the file and line), no two imported policies with one id, and turned-off
/// ids that a shipped policy has.
pub fn check_policy(policy: &BaselinePolicy) -> Result<(), String> {
    policy.validate()?;
    let mut ids: Vec<String> = Vec::new();
    for (i, p) in policy.imported.iter().enumerate() {
        let loaded =
            hostward_sca::load(&p.file, &p.text).map_err(|e| format!("imported[{i}]: {e}"))?;
        if ids.contains(&loaded.id) {
            return Err(format!(
                "imported[{i}] ({}): policy id {} is imported twice",
                p.file, loaded.id
            ));
        }
        ids.push(loaded.id);
    }
    let shipped: Vec<String> = hostward_sca::shipped().into_iter().map(|p| p.id).collect();
    if let Some((i, d)) = policy
        .disabled
        .iter()
        .enumerate()
        .find(|(_, d)| !shipped.contains(d))
    {
        return Err(format!(
            "disabled[{i}]: {d} is not a shipped policy (one of {})",
            shipped.join(", ")
        ));
    }
    Ok(())
}

/// Replaces a project's baseline policy (admin) and pushes it to its agents.
pub async fn set_baseline_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    mut policy: BaselinePolicy,
) -> Result<BaselinePolicyBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    check_policy(&policy).map_err(ApiError::invalid_body)?;
    policy.disabled.sort();
    policy.disabled.dedup();
    let version = state.store.set_policy(project_id, &policy).await?;
    for (_, server_id) in state.store.server_ids_in(&[project_id.to_string()]).await? {
        state.gateway.config_changed(&server_id);
    }
    let files: Vec<&str> = policy.imported.iter().map(|i| i.file.as_str()).collect();
    let detail = serde_json::json!({"disabled": policy.disabled, "imported": files}).to_string();
    audit(state, p, project_id, "baseline.policy", project_id, &detail).await;
    Ok(BaselinePolicyBody {
        policies: policy_infos(&policy),
        policy,
        version,
    })
}

/// Adds or replaces (by file name) one imported policy.
pub async fn import_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    file: ImportedPolicy,
) -> Result<BaselinePolicyBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    let (mut policy, _) = state.store.policy::<BaselinePolicy>(project_id).await?;
    match policy.imported.iter_mut().find(|i| i.file == file.file) {
        Some(i) => *i = file,
        None => policy.imported.push(file),
    }
    set_baseline_policy(state, p, project_id, policy).await
}

// ---- HTTP handlers ----

const RESULT_CSV: &[&str] = &[
    "server",
    "policy",
    "check_id",
    "title",
    "result",
    "severity",
    "state",
    "evidence",
    "checked_at",
];

fn result_rows(items: &[BaselineFinding]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|r| {
            vec![
                r.server_name.clone(),
                r.policy_id.clone(),
                r.check_id.to_string(),
                r.title.clone(),
                r.result.clone(),
                r.severity.clone(),
                r.state.clone(),
                r.evidence.join(" | "),
                r.checked_at.to_string(),
            ]
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/baselines", tag = "baseline", params(ProjectQuery),
    responses((status = 200, body = CheckPage), (status = 400, body = crate::api::ErrorBody)))]
pub async fn checks_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Response, ApiError> {
    let page = checks(&state, &p, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|g| {
                vec![
                    g.policy_id.clone(),
                    g.check_id.to_string(),
                    g.title.clone(),
                    g.severity.clone(),
                    g.failing.to_string(),
                    g.ignored.to_string(),
                    g.passing.to_string(),
                    g.not_applicable.to_string(),
                ]
            })
            .collect();
        return Ok(csv_response(
            "baselines.csv",
            &[
                "policy",
                "check_id",
                "title",
                "severity",
                "failing",
                "ignored",
                "passing",
                "not_applicable",
            ],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/baselines/results", tag = "baseline", params(ResultQuery),
    responses((status = 200, body = ResultPage), (status = 400, body = crate::api::ErrorBody)))]
pub async fn fleet_results_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Response, ApiError> {
    let page = results(&state, &p, None, &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            "baseline-results.csv",
            RESULT_CSV,
            result_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/baselines", tag = "baseline",
    params(("id" = String, Path), ResultQuery),
    responses((status = 200, body = ServerBaselines), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Response, ApiError> {
    if is_csv(q.format.as_deref())? {
        let page = results(&state, &p, Some(&id), &q).await?;
        return Ok(csv_response(
            "server-baselines.csv",
            RESULT_CSV,
            result_rows(&page.items),
        ));
    }
    Ok(Json(server_baselines(&state, &p, &id, &q).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/baselines/results/{id}", tag = "baseline", params(("id" = String, Path)),
    responses((status = 200, body = ResultDetail), (status = 404, body = crate::api::ErrorBody)))]
pub async fn result_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ResultDetail>, ApiError> {
    Ok(Json(result(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/baselines/actions", tag = "baseline", request_body = ActionBody,
    responses((status = 200, body = ActionResult), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn action_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<ActionResult>, ApiError> {
    Ok(Json(act(&state, &p, body).await?))
}

#[utoipa::path(get, path = "/api/v1/baseline-rules", tag = "baseline", params(ProjectQuery),
    responses((status = 200, body = RuleList)))]
pub async fn rules_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<RuleList>, ApiError> {
    Ok(Json(rules(&state, &p, q.project.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/v1/baseline-rules", tag = "baseline", request_body = NewRule,
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

#[utoipa::path(delete, path = "/api/v1/baseline-rules/{id}", tag = "baseline", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)))]
pub async fn delete_rule_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_rule(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/baseline-policy", tag = "baseline", params(("id" = String, Path)),
    responses((status = 200, body = BaselinePolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<BaselinePolicyBody>, ApiError> {
    Ok(Json(baseline_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/baseline-policy", tag = "baseline", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = BaselinePolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<BaselinePolicy>,
) -> Result<Json<BaselinePolicyBody>, ApiError> {
    Ok(Json(set_baseline_policy(&state, &p, &id, policy).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/baseline-policy/imports", tag = "baseline", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = BaselinePolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
pub async fn import_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(file): ApiJson<ImportedPolicy>,
) -> Result<Json<BaselinePolicyBody>, ApiError> {
    Ok(Json(import_policy(&state, &p, &id, file).await?))
}

/// The REST routes of baselines, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/baselines", get(checks_handler))
        .route("/api/v1/baselines/results", get(fleet_results_handler))
        .route("/api/v1/baselines/results/{id}", get(result_handler))
        .route("/api/v1/baselines/actions", post(action_handler))
        .route(
            "/api/v1/baseline-rules",
            get(rules_handler).post(create_rule_handler),
        )
        .route("/api/v1/baseline-rules/{id}", delete(delete_rule_handler))
        .route(
            "/api/v1/projects/{id}/baseline-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route(
            "/api/v1/projects/{id}/baseline-policy/imports",
            post(import_handler),
        )
        .route("/api/v1/servers/{id}/baselines", get(server_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    checks_handler,
    fleet_results_handler,
    server_handler,
    result_handler,
    action_handler,
    rules_handler,
    create_rule_handler,
    delete_rule_handler,
    policy_handler,
    set_policy_handler,
    import_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
