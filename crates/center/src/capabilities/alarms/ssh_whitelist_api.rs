//! A server's SSH login whitelist: while it is on, the server's agent lets only the listed
//! addresses or prefixes open new connections to sshd (its firewall table's `ssh_whitelist`
//! chain). Guarded against locking out the admin who sets it: an enabled list that does not
//! hold the address the center sees the request come from is refused, naming that address.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing;
use axum::{Json, Router};
use hostward_proto::bruteforce::{MAX_SSH_WHITELIST, Net, SshWhitelist, SshWhitelistReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, audit};
use crate::auth::{Principal, Role};
use hostward_store::Server;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct SshWhitelistBody {
    pub server_id: String,
    pub enabled: bool,
    /// Canonical addresses or prefixes (`10.0.0.0/8`, `2001:db8::1`).
    pub addrs: Vec<String>,
    /// Who set it last, and when (Unix seconds); None when it was never set.
    pub set_by: Option<String>,
    pub set_at: Option<i64>,
    /// The address the center sees this request come from: an enabled list must hold it.
    pub your_address: Option<String>,
    /// The state the agent's last heartbeat reported (`applied`, `off`, `error` with the
    /// error, the entries and sshd ports in force); None before it reports one.
    #[schema(value_type = Option<Object>)]
    pub report: Option<SshWhitelistReport>,
    /// When that heartbeat arrived (Unix seconds).
    pub reported_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSshWhitelist {
    pub enabled: bool,
    /// Addresses or prefixes, IPv4 or IPv6, at most 50 once duplicates are removed.
    pub addrs: Vec<String>,
}

/// The caller's address as the center compares it: IPv4 peers of a dual-stack socket arrive
/// as `::ffff:a.b.c.d`.
fn caller_address(p: &Principal) -> Option<IpAddr> {
    p.source_ip.map(|ip| ip.to_canonical())
}

fn body(
    srv: &Server,
    p: &Principal,
    row: Option<hostward_store::SshWhitelistRow>,
) -> SshWhitelistBody {
    let report = srv
        .heartbeat
        .get(<SshWhitelist as hostward_proto::Section>::KEY)
        .and_then(|v| serde_json::from_value::<SshWhitelistReport>(v.clone()).ok());
    SshWhitelistBody {
        server_id: srv.id.clone(),
        enabled: row.as_ref().is_some_and(|r| r.enabled),
        addrs: row.as_ref().map(|r| r.addrs.clone()).unwrap_or_default(),
        set_by: row.as_ref().map(|r| r.set_by.clone()),
        set_at: row.as_ref().map(|r| r.set_at),
        your_address: caller_address(p).map(|a| a.to_string()),
        reported_at: report.as_ref().and(srv.last_seen_at),
        report,
    }
}

/// The entries in canonical form, duplicates removed (first place kept), checked as the
/// agent's section is. Errors name the entry (`addrs[3]: ...`).
pub fn parse(input: &SetSshWhitelist) -> Result<SshWhitelist, ApiError> {
    let mut addrs: Vec<String> = Vec::with_capacity(input.addrs.len());
    for (i, s) in input.addrs.iter().enumerate() {
        let net =
            Net::parse(s).map_err(|e| ApiError::invalid_body(format!("addrs[{i}]: {s:?}: {e}")))?;
        let canonical = net.to_string();
        if !addrs.contains(&canonical) {
            addrs.push(canonical);
        }
    }
    if addrs.len() > MAX_SSH_WHITELIST {
        return Err(ApiError::invalid_body(format!(
            "addrs: at most {MAX_SSH_WHITELIST} distinct addresses or prefixes, not {}",
            addrs.len()
        )));
    }
    let wl = SshWhitelist {
        enabled: input.enabled,
        addrs,
    };
    wl.validate().map_err(ApiError::invalid_body)?;
    Ok(wl)
}

/// Refuses an enabled list that leaves out `caller`. Without a caller address (the CLI acting
/// on the center's own machine) there is nobody to lock out.
pub fn lockout_guard(wl: &SshWhitelist, caller: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    if !wl.enabled {
        return Ok(());
    }
    let nets = wl.nets().unwrap_or_default();
    if nets.iter().any(|n| n.contains(caller)) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "would_lock_you_out",
        format!(
            "addrs: the list does not hold {caller}, the address this request comes from; \
             you would be locked out of SSH on this server. Add {caller} (or a prefix holding it) \
             and send it again; nothing was changed"
        ),
    ))
}

/// A server's SSH login whitelist (viewer+ of its project; 404 for others).
pub async fn get(state: &AppState, p: &Principal, id: &str) -> Result<SshWhitelistBody, ApiError> {
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let row = state.store.ssh_whitelist(&srv.id).await?;
    Ok(body(&srv, p, row))
}

/// Replaces a server's SSH login whitelist (admin) and pushes it to its agent. Bad entries,
/// an enabled empty list and a list that would lock the caller out are refused whole.
pub async fn set(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: SetSshWhitelist,
) -> Result<SshWhitelistBody, ApiError> {
    let srv = visible_server(state, p, id, Role::Admin).await?;
    let wl = parse(&input)?;
    lockout_guard(&wl, caller_address(p))?;
    let row = state
        .store
        .set_ssh_whitelist(&srv.id, wl.enabled, &wl.addrs, &p.username)
        .await?;
    state.gateway.config_changed(&srv.id);
    let detail = format!("enabled={} addrs={}", wl.enabled, wl.addrs.join(" "));
    audit(
        state,
        p,
        &srv.project_id,
        "server.ssh_whitelist",
        &srv.id,
        &detail,
    )
    .await;
    Ok(body(&srv, p, Some(row)))
}

/// The server's `ssh_whitelist` config section. A list that cannot be read is sent off: the
/// agent then keeps sshd open rather than closing it on a guess (the next change re-sends it).
pub async fn config_section(
    state: &AppState,
    server: &Server,
) -> (&'static str, serde_json::Value) {
    let wl = match state.store.ssh_whitelist(&server.id).await {
        Ok(Some(r)) => SshWhitelist {
            enabled: r.enabled,
            addrs: r.addrs,
        },
        Ok(None) => SshWhitelist::default(),
        Err(e) => {
            tracing::error!(error = %e, server_id = %server.id, "reading the server's SSH whitelist failed; sending it off");
            SshWhitelist::default()
        }
    };
    (
        <SshWhitelist as hostward_proto::Section>::KEY,
        serde_json::to_value(wl).expect("the whitelist serialises"),
    )
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/ssh-whitelist", tag = "alarms", params(("id" = String, Path)),
    responses((status = 200, body = SshWhitelistBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<SshWhitelistBody>, ApiError> {
    Ok(Json(get(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/servers/{id}/ssh-whitelist", tag = "alarms", params(("id" = String, Path)),
    request_body = SetSshWhitelist,
    responses((status = 200, body = SshWhitelistBody), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "would_lock_you_out: the list leaves out the caller's address", body = crate::api::ErrorBody)))]
pub async fn set_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetSshWhitelist>,
) -> Result<Json<SshWhitelistBody>, ApiError> {
    Ok(Json(set(&state, &p, &id, input).await?))
}

/// The REST routes of servers' SSH login whitelists, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/servers/{id}/ssh-whitelist",
        routing::get(get_handler).put(set_handler),
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(get_handler, set_handler))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
#[path = "ssh_whitelist_api_tests.rs"]
mod tests;
