//! REST API under `/api/v1`. Each operation is a plain `pub async fn (state, principal, input)` in
//! its area module, so the console and the CLI run the same authorization as the HTTP handlers,
//! which are thin wrappers. Errors are [`ApiError`]; request bodies go through [`ApiJson`] and
//! query strings through [`ApiQuery`] so every parse failure is a 400 naming the field.

pub mod api_tokens;
pub mod enroll;
pub mod history;
pub mod openapi;
pub mod projects;
pub mod servers;
pub mod session;
pub mod tasks;
pub mod tokens;
pub mod two_factor;
pub mod users;

use std::net::IpAddr;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use serde::de::DeserializeOwned;

pub use crate::web::{ApiError, ErrorBody, ErrorDetail};

use crate::AppState;
use crate::auth::Principal;
use hostward_store::AuditEntry;

/// Every route of the REST API, with full `/api/v1/…` paths; merge it into the console router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::handler))
        .route("/api/v1/enroll", post(enroll::enroll_handler))
        .route("/api/v1/enroll/report", post(enroll::report_handler))
        .route(
            "/api/v1/session",
            post(session::login_handler).delete(session::logout_handler),
        )
        .route("/api/v1/me", get(users::me_handler))
        .route("/api/v1/history", get(history::handler))
        .route(
            "/api/v1/account/two-factor",
            get(two_factor::status_handler)
                .post(two_factor::start_handler)
                .delete(two_factor::disable_handler),
        )
        .route(
            "/api/v1/account/two-factor/confirm",
            post(two_factor::confirm_handler),
        )
        .route(
            "/api/v1/projects/{id}/two-factor",
            get(two_factor::project_handler).put(two_factor::set_project_handler),
        )
        .route("/api/v1/projects", get(projects::list_handler))
        .route(
            "/api/v1/servers",
            get(servers::list_handler).post(servers::create_handler),
        )
        .route(
            "/api/v1/servers/{id}",
            get(servers::detail_handler).delete(servers::delete_handler),
        )
        .route(
            "/api/v1/servers/{id}/protection",
            put(servers::protection_handler),
        )
        .route("/api/v1/servers/{id}/revoke", post(servers::revoke_handler))
        .route(
            "/api/v1/servers/{id}/reinstall",
            post(tokens::reinstall_handler),
        )
        .route(
            "/api/v1/servers/{id}/tasks",
            get(tasks::list_handler).post(tasks::create_for_server_handler),
        )
        .route("/api/v1/tasks", post(tasks::create_handler))
        .route("/api/v1/tasks/{id}", get(tasks::get_handler))
        .route(
            "/api/v1/enrollment-tokens",
            get(tokens::list_handler).post(tokens::create_handler),
        )
        .route(
            "/api/v1/enrollment-tokens/{id}",
            delete(tokens::revoke_handler),
        )
        .route(
            "/api/v1/users",
            get(users::list_handler).post(users::create_handler),
        )
        .route("/api/v1/users/{id}", delete(users::delete_handler))
        .route("/api/v1/users/{id}/password", put(users::password_handler))
        .route("/api/v1/users/{id}/roles", put(users::role_handler))
        .route(
            "/api/v1/api-tokens",
            get(api_tokens::list_handler).post(api_tokens::create_handler),
        )
        .route(
            "/api/v1/api-tokens/{id}",
            delete(api_tokens::revoke_handler),
        )
        .merge(crate::capabilities::api_router())
}

/// A JSON body. Any failure (syntax, wrong type, missing field, content type) is 400
/// `invalid_body` with serde's message, which starts with the path of the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(ApiError::invalid_body(rej.body_text())),
        }
    }
}

/// A query string; failures are 400 `invalid_query` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(ApiError::invalid_query(rej.body_text())),
        }
    }
}

/// The TCP peer address, when the listener provides connect info; never from headers, which the
/// client controls.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(crate::auth::peer_ip(parts)))
    }
}

/// Project ids the caller may see, complete for every principal (the system principal's role
/// map is empty, so superadmins ask the store).
pub async fn scope(state: &AppState, p: &Principal) -> Result<Vec<String>, ApiError> {
    if p.is_superadmin {
        Ok(state
            .store
            .list_projects()
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect())
    } else {
        Ok(p.visible_projects())
    }
}

/// Projects a fleet-wide view covers: the one asked for (which must be visible), else all.
pub(crate) async fn fleet_scope(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let all = scope(state, p).await?;
    match project.filter(|s| !s.is_empty()) {
        None => Ok(all),
        Some(id) if all.iter().any(|a| a == id) => Ok(vec![id.to_string()]),
        Some(_) => Err(ApiError::not_found("project")),
    }
}

/// Writes an audit entry for an action that already happened; a failure is logged, not
/// returned, since the change itself stands.
pub(crate) async fn audit(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    action: &str,
    target: &str,
    detail: &str,
) {
    let entry = AuditEntry {
        user_id: p.user_id.clone(),
        username: p.username.clone(),
        project_id: project_id.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
        source_ip: p.source_ip.map(|i| i.to_string()).unwrap_or_default(),
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(action, "writing audit entry failed: {e}");
    }
}

/// Checks a free-text field: trimmed length within `min..=max` characters, no control
/// characters. Returns the trimmed text.
pub(crate) fn text_field(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, ApiError> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min {
        return Err(ApiError::invalid_body(if min == 1 {
            format!("{field}: must not be empty")
        } else {
            format!("{field}: must be at least {min} characters")
        }));
    }
    if n > max {
        return Err(ApiError::invalid_body(format!(
            "{field}: must be at most {max} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::invalid_body(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(v.to_string())
}

/// Picks the project of a new object: the one given (the caller needs `min` there), else the
/// only project where the caller has `min`, else the `default` project if the caller has `min`
/// there.
pub(crate) async fn target_project(
    state: &AppState,
    p: &Principal,
    given: Option<&str>,
    min: crate::auth::Role,
) -> Result<String, ApiError> {
    if let Some(id) = given {
        p.require(id, min)?;
        if state.store.project(id).await?.is_none() {
            return Err(ApiError::not_found("project"));
        }
        return Ok(id.to_string());
    }
    let mine: Vec<String> = if p.is_superadmin {
        scope(state, p).await?
    } else {
        p.projects_with(min)
    };
    if mine.len() == 1 {
        return Ok(mine[0].clone());
    }
    let default = state
        .store
        .project_by_name(hostward_store::DEFAULT_PROJECT)
        .await?;
    if let Some(d) = default
        && p.role_in(&d.id).is_some_and(|r| r >= min)
    {
        return Ok(d.id);
    }
    Err(ApiError::invalid_body(
        "project_id: required (you belong to several projects or none)",
    ))
}

/// A lifetime in seconds from a request, turned into an absolute expiry.
pub(crate) fn expiry(field: &str, secs: Option<i64>, max: i64) -> Result<Option<i64>, ApiError> {
    match secs {
        None => Ok(None),
        Some(s) if s < 1 => Err(ApiError::invalid_body(format!(
            "{field}: must be at least 1"
        ))),
        Some(s) if s > max => Err(ApiError::invalid_body(format!(
            "{field}: must be at most {max}"
        ))),
        Some(s) => Ok(Some(hostward_store::now() + s)),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
