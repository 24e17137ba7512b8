//! Tasks: queue work for one server or many, read their state.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::servers::visible_server;
use super::{ApiError, ApiJson, audit, expiry, scope};
use crate::AppState;
use crate::auth::{Principal, Role};
use hostward_store::{NewTasks, TaskRow};

/// The agent runtime's own task kinds, which anyone with operator rights may queue; the
/// capabilities add theirs (`Capability::tasks`). A kind not offered there (`vuln_fix`) goes
/// through its capability's own action, which checks what it must.
pub const RUNTIME_TASK_KINDS: &[&str] = &["ping", "collect_facts"];
/// A task nobody set an expiry for still must not run days after it was asked for.
pub const DEFAULT_EXPIRY_SECS: i64 = 24 * 3600;
pub const MAX_EXPIRY_SECS: i64 = 30 * 24 * 3600;
pub const LIST_LIMIT: i64 = 100;
/// Largest params object, serialized.
const MAX_PARAMS_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServerTask {
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub expires_in_secs: Option<i64>,
}

/// Targets are either `server_ids` or `all: true` (every server of `project_id`, or of every
/// project where the caller is operator or admin).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTasks {
    #[serde(default)]
    pub server_ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub project_id: Option<String>,
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<TaskRow>,
}

/// Tasks of one server, newest first.
pub async fn list_for_server(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<TaskList, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Viewer).await?;
    Ok(TaskList {
        items: state.store.list_tasks(&srv.id, LIST_LIMIT).await?,
    })
}

pub async fn get(state: &AppState, p: &Principal, id: &str) -> Result<TaskRow, ApiError> {
    let t = state
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    p.require_on("task", &t.project_id, Role::Viewer)?;
    Ok(t)
}

pub async fn create_for_server(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    input: CreateServerTask,
) -> Result<TaskList, ApiError> {
    let all = CreateTasks {
        server_ids: Some(vec![server_id.to_string()]),
        kind: input.kind,
        params: input.params,
        expires_in_secs: input.expires_in_secs,
        ..Default::default()
    };
    create(state, p, all).await
}

/// Queues one task per target; the caller needs operator or admin on every target's project.
/// All or nothing: one invisible or forbidden target fails the whole request.
pub async fn create(
    state: &AppState,
    p: &Principal,
    input: CreateTasks,
) -> Result<TaskList, ApiError> {
    let offered = crate::capabilities::tasks();
    let check = offered.iter().find(|t| t.kind == input.kind);
    if check.is_none() && !RUNTIME_TASK_KINDS.contains(&input.kind.as_str()) {
        let mut all: Vec<&str> = RUNTIME_TASK_KINDS.to_vec();
        all.extend(offered.iter().map(|t| t.kind));
        return Err(ApiError::invalid_body(format!(
            "kind: {:?} is not one of {}",
            input.kind,
            all.join(", ")
        )));
    }
    let params = input.params.unwrap_or_else(|| serde_json::json!({}));
    if !params.is_object() {
        return Err(ApiError::invalid_body("params: must be an object"));
    }
    if let Some(t) = check
        && let Err(e) = (t.check_params)(&params)
    {
        return Err(ApiError::invalid_body(format!("params: {e}")));
    }
    if params.to_string().len() > MAX_PARAMS_BYTES {
        return Err(ApiError::invalid_body(format!(
            "params: larger than {MAX_PARAMS_BYTES} bytes"
        )));
    }
    let expires_at = expiry(
        "expires_in_secs",
        Some(input.expires_in_secs.unwrap_or(DEFAULT_EXPIRY_SECS)),
        MAX_EXPIRY_SECS,
    )?;
    let targets = match (input.server_ids, input.all.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(ApiError::invalid_body(
                "server_ids: give either server_ids or all, not both",
            ));
        }
        (None, false) => {
            return Err(ApiError::invalid_body(
                "server_ids: required unless all is true",
            ));
        }
        (Some(ids), false) => explicit_targets(state, p, ids).await?,
        (None, true) => all_targets(state, p, input.project_id.as_deref()).await?,
    };
    if targets.is_empty() {
        return Err(ApiError::invalid_body(
            "server_ids: no servers to run the task on",
        ));
    }
    let created_by = p.username.clone();
    let rows = state
        .store
        .create_tasks(&NewTasks {
            targets: &targets,
            kind: &input.kind,
            params: &params,
            created_by: &created_by,
            expires_at,
        })
        .await?;
    state.gateway.tasks_created(&rows);
    let mut per_project: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (proj, srv) in &targets {
        per_project.entry(proj).or_default().push(srv);
    }
    for (proj, servers) in per_project {
        let target = if servers.len() == 1 {
            servers[0].to_string()
        } else {
            format!("{} servers", servers.len())
        };
        audit(state, p, proj, "task.create", &target, &input.kind).await;
    }
    Ok(TaskList { items: rows })
}

/// Queues one task for one server's agent the caller was already allowed to act on (a
/// capability's action, which checked the role and the params itself) and wakes the gateway
/// holding its session. The caller audits what the task is for.
pub async fn queue_for_server(
    state: &AppState,
    p: &Principal,
    (project_id, server_id): (&str, &str),
    kind: &str,
    params: &serde_json::Value,
    expiry_secs: i64,
) -> Result<TaskRow, ApiError> {
    let rows = state
        .store
        .create_tasks(&NewTasks {
            targets: &[(project_id.to_string(), server_id.to_string())],
            kind,
            params,
            created_by: &p.username,
            expires_at: Some(hostward_store::now() + expiry_secs),
        })
        .await?;
    state.gateway.tasks_created(&rows);
    rows.into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("one target queued no task"))
}

async fn explicit_targets(
    state: &AppState,
    p: &Principal,
    ids: Vec<String>,
) -> Result<Vec<(String, String)>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid_body("server_ids: must not be empty"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let srv = match state.store.server(&id).await? {
            Some(s) if p.role_in(&s.project_id).is_some() => s,
            _ => return Err(ApiError::not_found(&format!("server_ids[{i}]: server"))),
        };
        p.require_on("server", &srv.project_id, Role::Operator)?;
        out.push((srv.project_id, srv.id));
    }
    Ok(out)
}

async fn all_targets(
    state: &AppState,
    p: &Principal,
    project_id: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    let projects = match project_id {
        Some(id) => {
            p.require(id, Role::Operator)?;
            vec![id.to_string()]
        }
        None if p.is_superadmin => scope(state, p).await?,
        None => p.projects_with(Role::Operator),
    };
    Ok(state.store.server_ids_in(&projects).await?)
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/tasks", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskList), (status = 404, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskList>, ApiError> {
    Ok(Json(list_for_server(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/tasks", tag = "tasks", params(("id" = String, Path)),
    request_body = CreateServerTask, responses((status = 201, body = TaskList), (status = 400, body = super::ErrorBody)))]
pub async fn create_for_server_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CreateServerTask>,
) -> Result<(StatusCode, Json<TaskList>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_for_server(&state, &p, &id, input).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = CreateTasks,
    responses((status = 201, body = TaskList), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<CreateTasks>,
) -> Result<(StatusCode, Json<TaskList>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &p, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskRow>, ApiError> {
    Ok(Json(get(&state, &p, &id).await?))
}
