//! Servers: list, detail, registration, deletion, protection switch, agent revocation.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiQuery, audit, scope, target_project, text_field};
use crate::AppState;
use crate::auth::{Principal, Role};
use hostward_store::status;
use hostward_store::{NewServer, Server, ServerFilter, StatusChange};

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 500;
/// Status history rows shown with a server.
pub const HISTORY_LIMIT: i64 = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ServerQuery {
    /// Agent status: not_installed, installing, install_failed, online, offline.
    pub status: Option<String>,
    /// Protection status: enabled, disabled, interrupted.
    pub protection: Option<String>,
    /// Risk status: pending, risky, safe.
    pub risk: Option<String>,
    /// Project id.
    pub project: Option<String>,
    pub region: Option<String>,
    /// Substring of name, hostname or IP address.
    pub q: Option<String>,
    /// 1-based page number.
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Server>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub server: Server,
    /// Newest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<StatusChange>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    /// Defaults to the caller's only project, else `default`.
    pub project_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub ip_addresses: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetProtection {
    pub enabled: bool,
}

fn one_of(
    field: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::invalid_query(format!(
            "{field}: {v:?} is not one of {}",
            allowed.join(", ")
        ))),
        v => Ok(v),
    }
}

/// Servers the caller may see, filtered and paged.
pub async fn list(state: &AppState, p: &Principal, q: ServerQuery) -> Result<ServerPage, ApiError> {
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_query("page: must be at least 1"));
    }
    let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::invalid_query(format!(
            "per_page: must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let filter = ServerFilter {
        visible_projects: scope(state, p).await?,
        project_id: q.project.filter(|v| !v.is_empty()),
        agent_status: one_of("status", q.status, status::AGENT_STATUSES)?,
        protection_status: one_of("protection", q.protection, status::PROTECTION_STATUSES)?,
        risk_status: one_of("risk", q.risk, status::RISK_STATUSES)?,
        region: q.region.filter(|v| !v.is_empty()),
        q: q.q.filter(|v| !v.is_empty()),
        page,
        per_page,
    };
    let (items, total) = state.store.list_servers(&filter).await?;
    Ok(ServerPage {
        items,
        total,
        page,
        per_page,
    })
}

/// A server the caller may see with at least `min`; 404 when absent or not visible.
pub async fn visible_server(
    state: &AppState,
    p: &Principal,
    id: &str,
    min: Role,
) -> Result<Server, ApiError> {
    let srv = state
        .store
        .server(id)
        .await?
        .ok_or_else(|| ApiError::not_found("server"))?;
    p.require_on("server", &srv.project_id, min)?;
    Ok(srv)
}

pub async fn detail(state: &AppState, p: &Principal, id: &str) -> Result<ServerDetail, ApiError> {
    let server = visible_server(state, p, id, Role::Viewer).await?;
    let history = state
        .store
        .status_history(&server.id, HISTORY_LIMIT)
        .await?;
    Ok(ServerDetail { server, history })
}

/// Registers a server that has no agent yet (`not_installed`).
pub async fn create(
    state: &AppState,
    p: &Principal,
    input: CreateServer,
) -> Result<Server, ApiError> {
    let project_id = target_project(state, p, input.project_id.as_deref(), Role::Operator).await?;
    let name = text_field("name", &input.name, 1, 200)?;
    let region = text_field("region", input.region.as_deref().unwrap_or(""), 0, 100)?;
    let mut ips = Vec::new();
    for (i, ip) in input.ip_addresses.unwrap_or_default().iter().enumerate() {
        let parsed: IpAddr = ip.trim().parse().map_err(|_| {
            ApiError::invalid_body(format!("ip_addresses[{i}]: {ip:?} is not an IP address"))
        })?;
        ips.push(parsed.to_string());
    }
    if ips.len() > 64 {
        return Err(ApiError::invalid_body("ip_addresses: at most 64 addresses"));
    }
    let srv = state
        .store
        .create_server(&NewServer {
            project_id,
            name,
            region,
            ip_addresses: ips,
        })
        .await?;
    audit(
        state,
        p,
        &srv.project_id,
        "server.create",
        &srv.id,
        &srv.name,
    )
    .await;
    Ok(srv)
}

/// Deletes a server (admin); its agent, if any, is cut off at once.
pub async fn delete(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let srv = visible_server(state, p, id, Role::Admin).await?;
    state.store.delete_server(&srv.id).await?;
    if let Some(agent) = &srv.agent_id {
        state.gateway.revoke(agent);
    }
    audit(
        state,
        p,
        &srv.project_id,
        "server.delete",
        &srv.id,
        &srv.name,
    )
    .await;
    Ok(())
}

/// Switches protection on or off (operator+) and pushes the new config to the agent.
pub async fn set_protection(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: SetProtection,
) -> Result<Server, ApiError> {
    let srv = visible_server(state, p, id, Role::Operator).await?;
    let srv = state
        .store
        .set_protection_wanted(&srv.id, input.enabled)
        .await?;
    state.gateway.config_changed(&srv.id);
    let action = if input.enabled {
        "server.protection_on"
    } else {
        "server.protection_off"
    };
    audit(state, p, &srv.project_id, action, &srv.id, &srv.name).await;
    Ok(srv)
}

/// Revokes the server's agent certificate (admin); its live session closes.
pub async fn revoke(state: &AppState, p: &Principal, id: &str) -> Result<Server, ApiError> {
    let srv = visible_server(state, p, id, Role::Admin).await?;
    let Some(agent) = srv.agent_id.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_agent",
            "this server has no enrolled agent",
        ));
    };
    let srv = state.store.revoke_agent(&srv.id).await?;
    state.gateway.revoke(&agent);
    audit(state, p, &srv.project_id, "server.revoke", &srv.id, &agent).await;
    Ok(srv)
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", params(ServerQuery),
    responses((status = 200, body = ServerPage), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ServerQuery>,
) -> Result<Json<ServerPage>, ApiError> {
    Ok(Json(list(&state, &p, q).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers", params(("id" = String, Path)),
    responses((status = 200, body = ServerDetail), (status = 404, body = super::ErrorBody)))]
pub async fn detail_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ServerDetail>, ApiError> {
    Ok(Json(detail(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = CreateServer,
    responses((status = 201, body = Object), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<CreateServer>,
) -> Result<(StatusCode, Json<Server>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &p, input).await?)))
}

#[utoipa::path(delete, path = "/api/v1/servers/{id}", tag = "servers", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn delete_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/servers/{id}/protection", tag = "servers", params(("id" = String, Path)),
    request_body = SetProtection, responses((status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn protection_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetProtection>,
) -> Result<Json<Server>, ApiError> {
    Ok(Json(set_protection(&state, &p, &id, input).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/revoke", tag = "servers", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn revoke_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Server>, ApiError> {
    Ok(Json(revoke(&state, &p, &id).await?))
}
