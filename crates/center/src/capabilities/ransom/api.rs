//! Ransomware prevention's operations: the project's policy (watched directories, bait, the
//! burst bound, the action, trusted programs and the backups; pushed to its agents as the
//! `ransom` section), a server's state as its agent last reported it with its recent backup and
//! restore tasks, and the operators' "back up now" and "restore" (a `backup_now` or
//! `backup_restore` task for that server's agent).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hostward_proto::ransom::{
    BACKUP_TASK, RESTORE_TASK, RansomPolicy, RansomReport, RestoreRequest,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::tasks::{DEFAULT_EXPIRY_SECS, queue_for_server};
use crate::api::{ApiError, ApiJson, audit};
use crate::auth::{Principal, Role};
use crate::capabilities::{project_policy, set_project_policy};
use hostward_store::{Server, TaskRow};

/// Backup and restore tasks a server's state lists.
pub const TASK_LIST_LIMIT: i64 = 20;
/// A snapshot waits as long as any task: taken late, it is still a snapshot.
const BACKUP_EXPIRY_SECS: i64 = DEFAULT_EXPIRY_SECS;
/// A restore waits at most an hour for its agent: it writes over the files as they are when it
/// runs, so one run a day later could undo a day's work done after the attack was dealt with.
const RESTORE_EXPIRY_SECS: i64 = 3600;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RansomPolicyBody {
    #[schema(value_type = Object)]
    pub policy: RansomPolicy,
    pub version: i64,
}

/// The body of a restore: which snapshot (by id, or the newest taken at or before a point in
/// time) and what of it. Unknown fields are refused. Only the OpenAPI document reads this: the
/// handler reads proto's `RestoreRequest`, which has no schema, and a test keeps the fields
/// of the two the same.
#[derive(Debug, Clone, ToSchema)]
pub struct RestoreBody {
    /// A snapshot id the server's agent reported; give this or `at`.
    pub snapshot: Option<String>,
    /// Unix seconds: the newest snapshot taken at or before it; give this or `snapshot`.
    pub at: Option<i64>,
    /// Absolute paths (directories with all below them, or files) under a backed-up
    /// directory, at most 100; empty: everything in the snapshot.
    pub paths: Vec<String>,
    /// Also remove files under the restored directories that the snapshot lacks (the
    /// encrypted copies ransomware left).
    pub remove_new: bool,
}

/// One of a server's backup or restore tasks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BackupTask {
    pub id: String,
    /// `backup_now` or `backup_restore`.
    pub kind: String,
    /// queued, delivered, running, done, failed, expired.
    pub state: String,
    /// For a restore, the `RestoreRequest`.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// What the agent answered (for a restore, `{snapshot, taken_at, restored, unchanged,
    /// removed, failed}`); None until it did.
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    /// Why it failed, in the agent's words.
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

impl From<TaskRow> for BackupTask {
    fn from(t: TaskRow) -> BackupTask {
        let error = (t.state == "failed")
            .then(|| t.output.get("error").and_then(|e| e.as_str()))
            .flatten()
            .map(str::to_string);
        BackupTask {
            output: Some(t.output).filter(|o| !o.is_null()),
            error,
            id: t.id,
            kind: t.kind,
            state: t.state,
            params: t.params,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
            expires_at: t.expires_at,
        }
    }
}

/// A server's ransomware prevention as the center knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerRansom {
    pub server_id: String,
    /// Whether the project's policy turns ransomware prevention on.
    pub policy_enabled: bool,
    /// Directories the project's policy watches.
    pub policy_directories: usize,
    /// Whether the project's policy takes backups.
    pub backup_enabled: bool,
    /// The state in the agent's last heartbeat (`state`: protecting, off, waiting, starting,
    /// failing; baits, detections, the backup's state and snapshots); None when its agent
    /// reports none (an agent without ransomware prevention, or before its first heartbeat).
    #[schema(value_type = Option<Object>)]
    pub report: Option<RansomReport>,
    /// When that heartbeat arrived (Unix seconds).
    pub reported_at: Option<i64>,
    /// The server's backup and restore tasks, newest first (at most 20).
    pub tasks: Vec<BackupTask>,
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A project's ransomware prevention policy (viewer+).
pub async fn ransom_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<RansomPolicyBody, ApiError> {
    let (policy, version) = project_policy(state, p, project_id).await?;
    Ok(RansomPolicyBody { policy, version })
}

/// Replaces a project's ransomware prevention policy (admin) and pushes it to its agents. A
/// policy that does not validate is refused whole naming the field and index
/// (`backup.directories[1]: … overlaps backup.directories[0]`).
pub async fn set_ransom_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: RansomPolicy,
) -> Result<RansomPolicyBody, ApiError> {
    let version = set_project_policy(state, p, project_id, &policy, RansomPolicy::validate).await?;
    Ok(RansomPolicyBody { policy, version })
}

/// The report in a server's last heartbeat; None when it has none, or one this center cannot
/// read (never a made-up state).
fn report_of(srv: &Server) -> Option<RansomReport> {
    srv.heartbeat
        .get("ransom")
        .and_then(|v| serde_json::from_value::<RansomReport>(v.clone()).ok())
}

/// A server's ransomware prevention: the project's switches, the state its agent last reported
/// and its recent backup and restore tasks (viewer+ of its project; 404 for others).
pub async fn server_ransom(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<ServerRansom, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Viewer).await?;
    let (policy, _): (RansomPolicy, i64) = state.store.policy(&srv.project_id).await?;
    let tasks = state
        .store
        .list_tasks_of_kinds(&srv.id, &[BACKUP_TASK, RESTORE_TASK], TASK_LIST_LIMIT)
        .await?;
    let report = report_of(&srv);
    Ok(ServerRansom {
        server_id: srv.id.clone(),
        policy_enabled: policy.enabled,
        policy_directories: policy.directories.len(),
        backup_enabled: policy.backup.enabled,
        reported_at: report.as_ref().and(srv.last_seen_at),
        report,
        tasks: tasks.into_iter().map(BackupTask::from).collect(),
    })
}

/// "Back up now": a `backup_now` task for the server's agent (operator+, as every task that
/// acts on a server). The agent backs up what its policy names, and says so if that is
/// nothing.
pub async fn backup_now(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<TaskRow, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Operator).await?;
    let task = queue_for_server(
        state,
        p,
        (&srv.project_id, &srv.id),
        BACKUP_TASK,
        &serde_json::json!({}),
        BACKUP_EXPIRY_SECS,
    )
    .await?;
    audit(
        state,
        p,
        &srv.project_id,
        "ransom.backup",
        &srv.id,
        &task.id,
    )
    .await;
    Ok(task)
}

/// "Restore": a `backup_restore` task for the server's agent (operator+). The request is
/// checked whole (400 naming the field); a snapshot id must be one the agent last listed,
/// when it listed any.
pub async fn restore(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    req: RestoreRequest,
) -> Result<TaskRow, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Operator).await?;
    req.validate().map_err(ApiError::invalid_body)?;
    if let (Some(id), Some(report)) = (&req.snapshot, report_of(&srv)) {
        let snaps = &report.backup.snapshots;
        // An agent that lists none may still hold some (an older report, a list it could not
        // read): its own check then answers.
        if !snaps.is_empty() && !snaps.iter().any(|s| s.id == *id) {
            return Err(ApiError::invalid_body(format!(
                "snapshot: {id:?} is not a snapshot of this server"
            )));
        }
    }
    let params = serde_json::to_value(&req).map_err(ApiError::internal)?;
    let task = queue_for_server(
        state,
        p,
        (&srv.project_id, &srv.id),
        RESTORE_TASK,
        &params,
        RESTORE_EXPIRY_SECS,
    )
    .await?;
    let from = match (&req.snapshot, req.at) {
        (Some(id), _) => format!("snapshot {id}"),
        (None, Some(at)) => format!("the snapshot at or before {at}"),
        (None, None) => "no snapshot".to_string(),
    };
    let what = if req.paths.is_empty() {
        "everything".to_string()
    } else {
        req.paths.join(", ")
    };
    let mut detail = format!("{} from {from}: {what}", task.id);
    if req.remove_new {
        detail.push_str(" (removing files the snapshot lacks)");
    }
    audit(
        state,
        p,
        &srv.project_id,
        "ransom.restore",
        &srv.id,
        &detail,
    )
    .await;
    Ok(task)
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers

#[utoipa::path(get, path = "/api/v1/projects/{id}/ransom-policy", tag = "ransom", params(("id" = String, Path)),
    responses((status = 200, body = RansomPolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<RansomPolicyBody>, ApiError> {
    Ok(Json(ransom_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/ransom-policy", tag = "ransom", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = RansomPolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<RansomPolicy>,
) -> Result<Json<RansomPolicyBody>, ApiError> {
    Ok(Json(set_ransom_policy(&state, &p, &id, policy).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/ransom", tag = "ransom", params(("id" = String, Path)),
    responses((status = 200, body = ServerRansom), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ServerRansom>, ApiError> {
    Ok(Json(server_ransom(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/backups", tag = "ransom", params(("id" = String, Path)),
    responses((status = 201, body = Object, description = "the queued `backup_now` task"),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn backup_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TaskRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(backup_now(&state, &p, &id).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/backups/restore", tag = "ransom", params(("id" = String, Path)),
    request_body = RestoreBody,
    responses((status = 201, body = Object, description = "the queued `backup_restore` task"),
        (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)))]
pub async fn restore_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> Result<(StatusCode, Json<TaskRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(restore(&state, &p, &id, req).await?),
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of ransomware prevention, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/ransom-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/servers/{id}/ransom", get(server_handler))
        .route("/api/v1/servers/{id}/backups", post(backup_handler))
        .route(
            "/api/v1/servers/{id}/backups/restore",
            post(restore_handler),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        policy_handler,
        set_policy_handler,
        server_handler,
        backup_handler,
        restore_handler,
    ),
    components(schemas(BackupTask))
)]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
