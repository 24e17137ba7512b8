//! A server's usual login addresses: its agent learns them from the first logins, people edit
//! them. A login from an address in neither this list nor the project's (`usual_login_ips` of
//! the brute-force policy) raises `unusual_login_ip`.

use axum::extract::{Path, State};
use axum::routing;
use axum::{Json, Router};
use hostward_proto::bruteforce::{MAX_USUAL_LOGIN_IPS, Net, Policy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, audit};
use crate::auth::{Principal, Role};
use hostward_store::{LoginIpEntry, Server};

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct LoginIpsBody {
    /// Whether the agent still adds addresses of new logins (up to 20) instead of alarming.
    pub learning: bool,
    /// The server's own list, oldest first.
    pub items: Vec<LoginIpEntry>,
    /// Usual for every server of the project (its brute-force policy), read-only here.
    pub project_ips: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLoginIps {
    /// Addresses or prefixes, IPv4 or IPv6, at most 20 once duplicates are removed.
    pub ips: Vec<String>,
    pub learning: bool,
}

async fn body(state: &AppState, srv: &Server) -> Result<LoginIpsBody, ApiError> {
    let list = state.store.server_login_ips(&srv.id).await?;
    let (policy, _): (Policy, i64) = state.store.policy(&srv.project_id).await?;
    Ok(LoginIpsBody {
        learning: list.learning,
        items: list.items,
        project_ips: policy.usual_login_ips,
    })
}

/// The addresses in canonical form (`10.1.2.3/8` is `10.0.0.0/8`), duplicates removed, first
/// spelling's place kept. Errors name the entry (`ips[3]: ...`).
pub fn parse_ips(ips: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(ips.len());
    for (i, s) in ips.iter().enumerate() {
        let net =
            Net::parse(s).map_err(|e| ApiError::invalid_body(format!("ips[{i}]: {s:?}: {e}")))?;
        let canonical = net.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    if out.len() > MAX_USUAL_LOGIN_IPS {
        return Err(ApiError::invalid_body(format!(
            "ips: at most {MAX_USUAL_LOGIN_IPS} distinct addresses or prefixes, not {}",
            out.len()
        )));
    }
    Ok(out)
}

/// A server's usual login addresses (viewer+ of its project).
pub async fn get(state: &AppState, p: &Principal, id: &str) -> Result<LoginIpsBody, ApiError> {
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    body(state, &srv).await
}

/// Replaces a server's usual login addresses and its learning switch (admin, as the project's
/// policy) and pushes them to its agent. Entries that stay keep their origin and date.
pub async fn set(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: SetLoginIps,
) -> Result<LoginIpsBody, ApiError> {
    let srv = visible_server(state, p, id, Role::Admin).await?;
    let ips = parse_ips(&input.ips)?;
    state
        .store
        .set_server_login_ips(&srv.id, &ips, input.learning, &p.username)
        .await?;
    state.gateway.config_changed(&srv.id);
    let detail = format!("learning={} ips={}", input.learning, ips.join(" "));
    audit(
        state,
        p,
        &srv.project_id,
        "server.login_ips",
        &srv.id,
        &detail,
    )
    .await;
    body(state, &srv).await
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/login-ips", tag = "alarms", params(("id" = String, Path)),
    responses((status = 200, body = LoginIpsBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<LoginIpsBody>, ApiError> {
    Ok(Json(get(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/servers/{id}/login-ips", tag = "alarms", params(("id" = String, Path)),
    request_body = SetLoginIps,
    responses((status = 200, body = LoginIpsBody), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetLoginIps>,
) -> Result<Json<LoginIpsBody>, ApiError> {
    Ok(Json(set(&state, &p, &id, input).await?))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of servers' usual login addresses, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/servers/{id}/login-ips",
        routing::get(get_handler).put(set_handler),
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(get_handler, set_handler,))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
