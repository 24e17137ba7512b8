//! Alarms (every detector's output, aggregated), their handling, the alarm whitelist, and the
//! addresses each agent's firewall blocks, with manual block and unblock as agent tasks.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hostward_proto::alarm::{BLOCK_TASK, BlockRequest, UNBLOCK_TASK, alarm_type};
use hostward_proto::bruteforce::Net;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::fleet_scope;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, text_field};
use crate::auth::{Principal, Role};
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{
    AlarmFilter, AlarmRow, AlarmWhitelistRule, BlockedIp, HandlingEntry, History, NewTasks,
    TaskRow, alarm_state, new_id, now,
};

/// Longest manual block, minutes (30 days), as the agent's policy allows.
pub const MAX_BLOCK_MINUTES: u32 = 43_200;
const MAX_ACTION_ALARMS: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlarmQuery {
    pub project: Option<String>,
    /// One server's alarms.
    pub server: Option<String>,
    /// Alarm type code, e.g. `brute_force`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub alarm_type: Option<String>,
    /// critical, high, medium, low.
    pub severity: Option<String>,
    /// unhandled, handled, ignored.
    pub state: Option<String>,
    /// Unix seconds: alarms seen at or after.
    pub since: Option<i64>,
    /// Unix seconds: alarms first seen at or before.
    pub until: Option<i64>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlarmPage {
    pub items: Vec<AlarmRow>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlarmDetail {
    pub alarm: AlarmRow,
    pub history: Vec<HandlingEntry>,
    /// The type's category in the catalog (the reference product's, e.g. `Abnormal system
    /// behaviour`).
    pub category: String,
    /// The reference product's event-type code, `HSS 1017`, when it has one.
    pub hss_code: Option<String>,
    /// What to do about an alarm of this type.
    pub recommendation: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmAction {
    /// Dealt with.
    Handle,
    /// Not a concern.
    Ignore,
    /// Back to unhandled.
    Reopen,
    /// Ignore, and store future alarms of this type from this address as ignored.
    Whitelist,
    /// Lift the firewall block of the alarm's source address on its server (and mark handled).
    Unblock,
    /// Add the alarm's source address to its server's usual login addresses, so logins from it
    /// there raise no unusual-address alarm; mark handled. Admins only, as editing the list.
    LoginWhitelist,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmActionBody {
    pub action: AlarmAction,
    pub alarm_ids: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlarmActionResult {
    pub changed: usize,
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<TaskRow>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhitelistList {
    pub items: Vec<AlarmWhitelistRule>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWhitelistRule {
    pub project_id: Option<String>,
    /// Alarm type code; absent: every type.
    #[serde(default)]
    pub alarm_type: Option<String>,
    /// An IPv4 or IPv6 address; absent: every address.
    #[serde(default)]
    pub source_ip: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlockedQuery {
    pub project: Option<String>,
    /// `false` also lists lifted and expired blocks.
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockedList {
    pub items: Vec<BlockedIp>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    pub addr: String,
    /// 1 to 43,200 (30 days).
    pub minutes: u32,
}

fn addr_param(field: &str, s: &str) -> Result<IpAddr, ApiError> {
    s.trim().parse().map_err(|_| {
        ApiError::invalid_body(format!("{field}: {s:?} is not an IPv4 or IPv6 address"))
    })
}

fn one_of(field: &str, v: Option<&str>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if allowed.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(ApiError::invalid_query(format!(
            "{field}: {s:?} is not one of {}",
            allowed.join(", ")
        ))),
    }
}

pub async fn list(state: &AppState, p: &Principal, q: &AlarmQuery) -> Result<AlarmPage, ApiError> {
    let types: Vec<&str> = hostward_proto::alarm::ALARM_TYPES
        .iter()
        .map(|t| t.code)
        .collect();
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let mut f = AlarmFilter {
        alarm_type: one_of("type", q.alarm_type.as_deref(), &types)?,
        severity: one_of(
            "severity",
            q.severity.as_deref(),
            &["critical", "high", "medium", "low"],
        )?,
        state: one_of("state", q.state.as_deref(), alarm_state::ALL)?,
        since: q.since,
        until: q.until,
        page,
        per_page,
        ..Default::default()
    };
    match q.server.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => f.server_id = Some(visible_server(state, p, id, Role::Viewer).await?.id),
        None => f.projects = fleet_scope(state, p, q.project.as_deref()).await?,
    }
    let (items, total) = state.store.alarms(&f).await?;
    Ok(AlarmPage {
        items,
        total,
        page,
        per_page,
    })
}

/// One alarm, if the caller has `min` in its project (404 when it has no role there).
pub(crate) async fn visible_alarm(
    state: &AppState,
    p: &Principal,
    id: &str,
    min: Role,
) -> Result<AlarmRow, ApiError> {
    let a = match state.store.alarm(id).await? {
        Some(a) if p.role_in(&a.project_id).is_some() => a,
        _ => return Err(ApiError::not_found("alarm")),
    };
    p.require_on("alarm", &a.project_id, min)?;
    Ok(a)
}

pub async fn detail(state: &AppState, p: &Principal, id: &str) -> Result<AlarmDetail, ApiError> {
    let alarm = visible_alarm(state, p, id, Role::Viewer).await?;
    let kind = alarm_type(&alarm.alarm_type);
    Ok(AlarmDetail {
        history: state
            .store
            .handling_history(History::Alarm, &alarm.id)
            .await?,
        category: kind.map(|t| t.category.to_string()).unwrap_or_default(),
        hss_code: kind.and_then(|t| t.hss_code).map(|c| format!("HSS {c}")),
        recommendation: kind
            .map(|t| t.recommendation.to_string())
            .unwrap_or_default(),
        alarm,
    })
}

/// Handles alarms (operator+ on each alarm's project; all or nothing).
pub async fn act(
    state: &AppState,
    p: &Principal,
    body: AlarmActionBody,
) -> Result<AlarmActionResult, ApiError> {
    if body.alarm_ids.is_empty() || body.alarm_ids.len() > MAX_ACTION_ALARMS {
        return Err(ApiError::invalid_body(format!(
            "alarm_ids: 1 to {MAX_ACTION_ALARMS} ids"
        )));
    }
    let note = match body.note.as_deref() {
        Some(n) if !n.trim().is_empty() => text_field("note", n, 1, 500)?,
        _ => String::new(),
    };
    let mut alarms = Vec::with_capacity(body.alarm_ids.len());
    for (i, id) in body.alarm_ids.iter().enumerate() {
        let a = match state.store.alarm(id).await? {
            Some(a) if p.role_in(&a.project_id).is_some() => a,
            _ => return Err(ApiError::not_found(&format!("alarm_ids[{i}]: alarm"))),
        };
        p.require_on("alarm", &a.project_id, Role::Operator)?;
        alarms.push(a);
    }
    // Both act per source address: refuse the whole batch before doing anything if one alarm
    // has none (a whitelist rule without an address would silence the type project-wide).
    if matches!(
        body.action,
        AlarmAction::Whitelist | AlarmAction::Unblock | AlarmAction::LoginWhitelist
    ) && let Some(i) = alarms.iter().position(|a| a.source_ip.is_none())
    {
        return Err(ApiError::conflict(format!(
            "alarm_ids[{i}]: the alarm has no source address"
        )));
    }
    let ids: Vec<String> = alarms.iter().map(|a| a.id.clone()).collect();
    let actor = p.username.clone();
    let mut tasks = Vec::new();
    let (to, action) = match body.action {
        AlarmAction::Handle => (alarm_state::HANDLED, "handle"),
        AlarmAction::Ignore => (alarm_state::IGNORED, "ignore"),
        AlarmAction::Reopen => (alarm_state::UNHANDLED, "reopen"),
        AlarmAction::Whitelist => {
            for a in &alarms {
                state
                    .store
                    .add_alarm_whitelist(&AlarmWhitelistRule {
                        id: new_id(),
                        project_id: a.project_id.clone(),
                        alarm_type: Some(a.alarm_type.clone()),
                        source_ip: a.source_ip.clone(),
                        reason: if note.is_empty() {
                            format!("from alarm {}", a.id)
                        } else {
                            note.clone()
                        },
                        created_by: actor.clone(),
                        created_at: now(),
                    })
                    .await?;
            }
            (alarm_state::IGNORED, "whitelist")
        }
        AlarmAction::Unblock => {
            for a in &alarms {
                let ip = a.source_ip.as_deref().expect("checked above");
                tasks.extend(
                    queue_block_task(
                        state,
                        &actor,
                        &a.project_id,
                        &a.server_id,
                        UNBLOCK_TASK,
                        ip,
                        None,
                    )
                    .await?,
                );
            }
            (alarm_state::HANDLED, "unblock")
        }
        AlarmAction::LoginWhitelist => {
            // Editing a server's list is an admin's right, as on its page: check every alarm
            // before changing anything; the store adds all or nothing.
            for a in &alarms {
                p.require_on("alarm", &a.project_id, Role::Admin)?;
            }
            let additions: Vec<(String, String)> = alarms
                .iter()
                .map(|a| {
                    let ip = a.source_ip.as_deref().expect("checked above");
                    let ip = ip.parse().map_err(|_| {
                        ApiError::conflict(format!("alarm {}: bad source address {ip:?}", a.id))
                    })?;
                    Ok((a.server_id.clone(), Net::host(ip).to_string()))
                })
                .collect::<Result<_, ApiError>>()?;
            for server_id in state.store.add_server_login_ips(&additions, &actor).await? {
                state.gateway.config_changed(&server_id);
                let a = alarms
                    .iter()
                    .find(|a| a.server_id == server_id)
                    .expect("ours");
                let added: Vec<&str> = additions
                    .iter()
                    .filter(|(s, _)| *s == server_id)
                    .map(|(_, ip)| ip.as_str())
                    .collect();
                audit(
                    state,
                    p,
                    &a.project_id,
                    "server.login_ips",
                    &server_id,
                    &format!("added {}", added.join(" ")),
                )
                .await;
            }
            (alarm_state::HANDLED, "login_whitelist")
        }
    };
    let changed = state
        .store
        .set_alarm_state(&ids, to, &actor, action, &note)
        .await?;
    let mut projects: Vec<&str> = alarms.iter().map(|a| a.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    for proj in projects {
        audit(
            state,
            p,
            proj,
            &format!("alarm.{action}"),
            &format!("{} alarms", ids.len()),
            &note,
        )
        .await;
    }
    Ok(AlarmActionResult { changed, tasks })
}

async fn queue_block_task(
    state: &AppState,
    actor: &str,
    project_id: &str,
    server_id: &str,
    kind: &str,
    addr: &str,
    minutes: Option<u32>,
) -> Result<Vec<TaskRow>, ApiError> {
    let params = serde_json::to_value(BlockRequest {
        addr: addr.to_string(),
        minutes,
    })
    .expect("serialises");
    let rows = state
        .store
        .create_tasks(&NewTasks {
            targets: &[(project_id.to_string(), server_id.to_string())],
            kind,
            params: &params,
            created_by: actor,
            expires_at: Some(now() + 3600),
        })
        .await?;
    state.gateway.tasks_created(&rows);
    Ok(rows)
}

pub async fn whitelist(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<WhitelistList, ApiError> {
    Ok(WhitelistList {
        items: state
            .store
            .alarm_whitelist(&fleet_scope(state, p, project).await?)
            .await?,
    })
}

pub async fn add_whitelist(
    state: &AppState,
    p: &Principal,
    input: NewWhitelistRule,
) -> Result<AlarmWhitelistRule, ApiError> {
    let project_id =
        crate::api::target_project(state, p, input.project_id.as_deref(), Role::Operator).await?;
    let alarm_type = match input.alarm_type.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(t) if alarm_type(t).is_some() => Some(t.to_string()),
        Some(t) => {
            return Err(ApiError::invalid_body(format!(
                "alarm_type: unknown type {t:?}"
            )));
        }
    };
    let source_ip = match input.source_ip.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(addr_param("source_ip", s)?.to_string()),
    };
    if alarm_type.is_none() && source_ip.is_none() {
        return Err(ApiError::invalid_body(
            "alarm_type: give an alarm type, a source_ip, or both",
        ));
    }
    let rule = AlarmWhitelistRule {
        id: new_id(),
        project_id: project_id.clone(),
        alarm_type,
        source_ip,
        reason: text_field("reason", &input.reason, 1, 500)?,
        created_by: p.username.clone(),
        created_at: now(),
    };
    state.store.add_alarm_whitelist(&rule).await?;
    audit(
        state,
        p,
        &project_id,
        "alarm.whitelist.create",
        &rule.id,
        "",
    )
    .await;
    Ok(rule)
}

pub async fn delete_whitelist(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let rules = state
        .store
        .alarm_whitelist(&crate::api::scope(state, p).await?)
        .await?;
    let Some(rule) = rules.into_iter().find(|r| r.id == id) else {
        return Err(ApiError::not_found("whitelist rule"));
    };
    p.require_on("whitelist rule", &rule.project_id, Role::Operator)?;
    state.store.delete_alarm_whitelist(id).await?;
    audit(state, p, &rule.project_id, "alarm.whitelist.delete", id, "").await;
    Ok(())
}

pub async fn blocked(
    state: &AppState,
    p: &Principal,
    server_id: Option<&str>,
    q: &BlockedQuery,
) -> Result<BlockedList, ApiError> {
    let active = q.active.unwrap_or(true);
    let items = match server_id {
        Some(id) => {
            let s = visible_server(state, p, id, Role::Viewer).await?;
            state.store.blocked_ips(&[], Some(&s.id), active).await?
        }
        None => {
            let projects = fleet_scope(state, p, q.project.as_deref()).await?;
            state.store.blocked_ips(&projects, None, active).await?
        }
    };
    Ok(BlockedList { items })
}

/// Blocks an address on one server now (operator+): a `block_ip` task for its agent.
pub async fn block(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    body: BlockBody,
) -> Result<TaskRow, ApiError> {
    let s = visible_server(state, p, server_id, Role::Operator).await?;
    let addr = addr_param("addr", &body.addr)?;
    if !crate::capabilities::editions::api::has(&s, hostward_proto::Feature::Blocking) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "edition",
            format!(
                "{} has {} edition, which detects and never blocks",
                s.name,
                s.edition().map_or("no".to_string(), |e| format!("the {e}"))
            ),
        ));
    }
    if !(1..=MAX_BLOCK_MINUTES).contains(&body.minutes) {
        return Err(ApiError::invalid_body(format!(
            "minutes: 1 to {MAX_BLOCK_MINUTES}"
        )));
    }
    let rows = queue_block_task(
        state,
        &p.username,
        &s.project_id,
        &s.id,
        BLOCK_TASK,
        &addr.to_string(),
        Some(body.minutes),
    )
    .await?;
    audit(
        state,
        p,
        &s.project_id,
        "firewall.block",
        &s.id,
        &addr.to_string(),
    )
    .await;
    Ok(rows.into_iter().next().expect("one target, one task"))
}

/// Lifts a block on one server now (operator+): an `unblock_ip` task for its agent.
pub async fn unblock(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    addr: &str,
) -> Result<TaskRow, ApiError> {
    let s = visible_server(state, p, server_id, Role::Operator).await?;
    let addr = addr_param("addr", addr)?;
    let rows = queue_block_task(
        state,
        &p.username,
        &s.project_id,
        &s.id,
        UNBLOCK_TASK,
        &addr.to_string(),
        None,
    )
    .await?;
    audit(
        state,
        p,
        &s.project_id,
        "firewall.unblock",
        &s.id,
        &addr.to_string(),
    )
    .await;
    Ok(rows.into_iter().next().expect("one target, one task"))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BruteforcePolicyBody {
    #[schema(value_type = Object)]
    pub policy: hostward_proto::bruteforce::Policy,
    pub version: i64,
}

pub async fn bruteforce_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<BruteforcePolicyBody, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (policy, version) = state.store.policy(project_id).await?;
    Ok(BruteforcePolicyBody { policy, version })
}

/// Replaces a project's brute-force policy (admin) and pushes it to its agents, which apply it
/// at once (a source the new whitelist covers is unblocked).
pub async fn set_bruteforce_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: hostward_proto::bruteforce::Policy,
) -> Result<BruteforcePolicyBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    policy.validate().map_err(ApiError::invalid_body)?;
    let version = state.store.set_policy(project_id, &policy).await?;
    for (_, server_id) in state.store.server_ids_in(&[project_id.to_string()]).await? {
        state.gateway.config_changed(&server_id);
    }
    let detail = serde_json::to_string(&policy).unwrap_or_default();
    audit(
        state,
        p,
        project_id,
        "bruteforce.policy",
        project_id,
        &detail,
    )
    .await;
    Ok(BruteforcePolicyBody { policy, version })
}

// ---- HTTP handlers ----

#[utoipa::path(get, path = "/api/v1/projects/{id}/bruteforce-policy", tag = "alarms", params(("id" = String, Path)),
    responses((status = 200, body = BruteforcePolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<BruteforcePolicyBody>, ApiError> {
    Ok(Json(bruteforce_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/bruteforce-policy", tag = "alarms", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = BruteforcePolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<hostward_proto::bruteforce::Policy>,
) -> Result<Json<BruteforcePolicyBody>, ApiError> {
    Ok(Json(set_bruteforce_policy(&state, &p, &id, policy).await?))
}

#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms", params(AlarmQuery),
    responses((status = 200, body = AlarmPage), (status = 400, body = crate::api::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<AlarmQuery>,
) -> Result<Response, ApiError> {
    let page = list(&state, &p, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|a| {
                vec![
                    a.server_name.clone(),
                    a.alarm_type.clone(),
                    a.severity.clone(),
                    a.technique.clone(),
                    a.source_ip.clone().unwrap_or_default(),
                    a.count.to_string(),
                    a.first_seen.to_string(),
                    a.last_seen.to_string(),
                    a.state.clone(),
                ]
            })
            .collect();
        return Ok(csv_response(
            "alarms.csv",
            &[
                "server",
                "type",
                "severity",
                "technique",
                "source_ip",
                "count",
                "first_seen",
                "last_seen",
                "state",
            ],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/alarms/{id}", tag = "alarms", params(("id" = String, Path)),
    responses((status = 200, body = AlarmDetail), (status = 404, body = crate::api::ErrorBody)))]
pub async fn detail_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<AlarmDetail>, ApiError> {
    Ok(Json(detail(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/alarms/actions", tag = "alarms", request_body = AlarmActionBody,
    responses((status = 200, body = AlarmActionResult), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn action_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<AlarmActionBody>,
) -> Result<Json<AlarmActionResult>, ApiError> {
    Ok(Json(act(&state, &p, body).await?))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    pub project: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alarm-whitelist", tag = "alarms", params(ProjectQuery),
    responses((status = 200, body = WhitelistList)))]
pub async fn whitelist_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<WhitelistList>, ApiError> {
    Ok(Json(whitelist(&state, &p, q.project.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/v1/alarm-whitelist", tag = "alarms", request_body = NewWhitelistRule,
    responses((status = 201, body = AlarmWhitelistRule), (status = 400, body = crate::api::ErrorBody)))]
pub async fn add_whitelist_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<NewWhitelistRule>,
) -> Result<(StatusCode, Json<AlarmWhitelistRule>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(add_whitelist(&state, &p, input).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/alarm-whitelist/{id}", tag = "alarms", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)))]
pub async fn delete_whitelist_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_whitelist(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/blocked-ips", tag = "alarms", params(BlockedQuery),
    responses((status = 200, body = BlockedList)))]
pub async fn fleet_blocked_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<BlockedQuery>,
) -> Result<Json<BlockedList>, ApiError> {
    Ok(Json(blocked(&state, &p, None, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/blocked-ips", tag = "alarms", params(("id" = String, Path), BlockedQuery),
    responses((status = 200, body = BlockedList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_blocked_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<BlockedQuery>,
) -> Result<Json<BlockedList>, ApiError> {
    Ok(Json(blocked(&state, &p, Some(&id), &q).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/blocked-ips", tag = "alarms", params(("id" = String, Path)),
    request_body = BlockBody,
    responses((status = 201, body = Object), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "the server's edition does not block", body = crate::api::ErrorBody)))]
pub async fn block_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BlockBody>,
) -> Result<(StatusCode, Json<TaskRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(block(&state, &p, &id, body).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/servers/{id}/blocked-ips/{addr}", tag = "alarms",
    params(("id" = String, Path), ("addr" = String, Path)),
    responses((status = 202, body = Object), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn unblock_handler(
    State(state): State<AppState>,
    p: Principal,
    Path((id, addr)): Path<(String, String)>,
) -> Result<(StatusCode, Json<TaskRow>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(unblock(&state, &p, &id, &addr).await?),
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of alarms and brute-force defence, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alarms", get(list_handler))
        .route(
            "/api/v1/projects/{id}/bruteforce-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/alarms/actions", post(action_handler))
        .route("/api/v1/alarms/{id}", get(detail_handler))
        .route(
            "/api/v1/alarm-whitelist",
            get(whitelist_handler).post(add_whitelist_handler),
        )
        .route(
            "/api/v1/alarm-whitelist/{id}",
            delete(delete_whitelist_handler),
        )
        .route("/api/v1/blocked-ips", get(fleet_blocked_handler))
        .route(
            "/api/v1/servers/{id}/blocked-ips",
            get(server_blocked_handler).post(block_handler),
        )
        .route(
            "/api/v1/servers/{id}/blocked-ips/{addr}",
            delete(unblock_handler),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_handler,
    policy_handler,
    set_policy_handler,
    detail_handler,
    action_handler,
    whitelist_handler,
    add_whitelist_handler,
    delete_whitelist_handler,
    fleet_blocked_handler,
    server_blocked_handler,
    block_handler,
    unblock_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
