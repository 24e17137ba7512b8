//! Web tamper protection's operations: the project's policy (protected directories, privileged
//! processes, unlock windows; pushed to its agents as the `tamper` section), each server's
//! unlock from the console ("unlock now" for a bounded time, "lock now"; pushed to that
//! server's agent as the `tamper_unlock` section) and the state its agent last reported.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hostward_proto::tamper::{MAX_UNLOCK_MIN, TamperPolicy, TamperReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, audit};
use crate::auth::{Principal, Role};
use crate::capabilities::{project_policy, set_project_policy};
use hostward_store::{Server, now};

/// Longest policy kept in an audit entry's detail; a longer one is cut (50 directories with
/// their exclusions may pass 100 KiB).

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TamperPolicyBody {
    #[schema(value_type = Object)]
    pub policy: TamperPolicy,
    pub version: i64,
}

/// "Unlock now": lift protection on one server for `minutes` from now.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    /// 1 to 1439 (a day less a minute, the longest unlock window).
    pub minutes: i64,
}

/// A server's unlock from the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnlockView {
    /// Unix seconds; protection is back from then on.
    pub until: i64,
    /// The user who unlocked.
    pub by: String,
    /// When they did.
    pub at: i64,
    /// Whether `until` is still ahead.
    pub active: bool,
}

/// A server's tamper protection as the center knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerTamper {
    pub server_id: String,
    /// Whether the project's policy turns tamper protection on.
    pub policy_enabled: bool,
    /// Directories the project's policy protects.
    pub policy_directories: usize,
    /// The unlock from the console; None when never unlocked, or locked since.
    pub unlock: Option<UnlockView>,
    /// The state in the agent's last heartbeat (`state`: protected, unlocked, failing, off,
    /// waiting, starting; counts; problems); None when its agent reports none (an agent without
    /// tamper protection, or before its first heartbeat).
    #[schema(value_type = Option<Object>)]
    pub report: Option<TamperReport>,
    /// When that heartbeat arrived (Unix seconds).
    pub reported_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A project's tamper protection policy (viewer+).
pub async fn tamper_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<TamperPolicyBody, ApiError> {
    let (policy, version) = project_policy(state, p, project_id).await?;
    Ok(TamperPolicyBody { policy, version })
}

/// Replaces a project's tamper protection policy (admin) and pushes it to its agents. A policy
/// that does not validate is refused whole naming the field and index
/// (`directories[1].path: … overlaps directories[0]`).
pub async fn set_tamper_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: TamperPolicy,
) -> Result<TamperPolicyBody, ApiError> {
    let version = set_project_policy(state, p, project_id, &policy, TamperPolicy::validate).await?;
    Ok(TamperPolicyBody { policy, version })
}

/// The server's tamper protection for a caller already allowed to see it.
async fn status_of(state: &AppState, srv: &Server) -> Result<ServerTamper, ApiError> {
    let (policy, _): (TamperPolicy, i64) = state.store.policy(&srv.project_id).await?;
    let unlock = state.store.tamper_unlock(&srv.id).await?;
    let t = now();
    let report = srv
        .heartbeat
        .get("tamper")
        .and_then(|v| serde_json::from_value::<TamperReport>(v.clone()).ok());
    Ok(ServerTamper {
        server_id: srv.id.clone(),
        policy_enabled: policy.enabled,
        policy_directories: policy.directories.len(),
        unlock: unlock.map(|u| UnlockView {
            active: u.until > t,
            until: u.until,
            by: u.set_by,
            at: u.set_at,
        }),
        reported_at: report.as_ref().and(srv.last_seen_at),
        report,
    })
}

/// A server's tamper protection: the project's switch, the unlock from the console, and the
/// state its agent last reported (viewer+ of its project; 404 for others).
pub async fn server_tamper(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<ServerTamper, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Viewer).await?;
    status_of(state, &srv).await
}

/// "Unlock now": lifts protection on one server for `minutes` (1 to [`MAX_UNLOCK_MIN`]) from
/// now, replacing any earlier unlock (operator+, as the tasks that act on a server), and
/// pushes the server's config.
pub async fn unlock(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    body: UnlockBody,
) -> Result<ServerTamper, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Operator).await?;
    if !(1..=i64::from(MAX_UNLOCK_MIN)).contains(&body.minutes) {
        return Err(ApiError::invalid_body(format!(
            "minutes: {} is not 1 to {MAX_UNLOCK_MIN} (an unlock lasts at most a day less a minute)",
            body.minutes
        )));
    }
    let until = now() + body.minutes * 60;
    state
        .store
        .set_tamper_unlock(&srv.id, until, &p.username)
        .await?;
    state.gateway.config_changed(&srv.id);
    let detail = format!("for {} minutes, until {until}", body.minutes);
    audit(state, p, &srv.project_id, "tamper.unlock", &srv.id, &detail).await;
    status_of(state, &srv).await
}

/// "Lock now": ends the server's unlock from the console (operator+) and pushes its config.
/// Unlock windows of the policy are the policy's: this does not close one.
pub async fn lock(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<ServerTamper, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Operator).await?;
    let cleared = state.store.clear_tamper_unlock(&srv.id).await?;
    if cleared.is_some() {
        state.gateway.config_changed(&srv.id);
    }
    let detail = match &cleared {
        Some(u) => format!("unlock until {} by {} ended", u.until, u.set_by),
        None => "was not unlocked".to_string(),
    };
    audit(state, p, &srv.project_id, "tamper.lock", &srv.id, &detail).await;
    status_of(state, &srv).await
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers

#[utoipa::path(get, path = "/api/v1/projects/{id}/tamper-policy", tag = "tamper", params(("id" = String, Path)),
    responses((status = 200, body = TamperPolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<TamperPolicyBody>, ApiError> {
    Ok(Json(tamper_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/tamper-policy", tag = "tamper", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = TamperPolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<TamperPolicy>,
) -> Result<Json<TamperPolicyBody>, ApiError> {
    Ok(Json(set_tamper_policy(&state, &p, &id, policy).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/tamper", tag = "tamper", params(("id" = String, Path)),
    responses((status = 200, body = ServerTamper), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ServerTamper>, ApiError> {
    Ok(Json(server_tamper(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/tamper/unlock", tag = "tamper", params(("id" = String, Path)),
    request_body = UnlockBody,
    responses((status = 200, body = ServerTamper), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn unlock_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UnlockBody>,
) -> Result<Json<ServerTamper>, ApiError> {
    Ok(Json(unlock(&state, &p, &id, body).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/tamper/lock", tag = "tamper", params(("id" = String, Path)),
    responses((status = 200, body = ServerTamper), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn lock_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ServerTamper>, ApiError> {
    Ok(Json(lock(&state, &p, &id).await?))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of web tamper protection, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/tamper-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/servers/{id}/tamper", get(server_handler))
        .route("/api/v1/servers/{id}/tamper/unlock", post(unlock_handler))
        .route("/api/v1/servers/{id}/tamper/lock", post(lock_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    policy_handler,
    set_policy_handler,
    server_handler,
    unlock_handler,
    lock_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
