//! Sign-in and sign-out for API clients that use the session cookie (scripts, the browser's fetch).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ClientIp};
use crate::AppState;
use crate::auth::{self, SESSION_COOKIE};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// With two-factor sign-in on: the authenticator app's current code, or a recovery code.
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LoginResponse {
    /// Send as X-CSRF-Token on POST/PUT/PATCH/DELETE with this session.
    pub csrf_token: String,
    pub username: String,
    pub must_change_password: bool,
}

/// Signs in. An unknown user, a wrong password and an attempt refused for too many failures
/// (of this account from this address, or of this address across accounts) all answer 401
/// `bad_credentials`. 503 `busy` with `Retry-After` when too many password checks are running.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn login_handler(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<(CookieJar, Json<LoginResponse>), axum::response::Response> {
    let (p, raw) = auth::login(
        &state,
        &req.username,
        &req.password,
        req.code.as_deref(),
        ip,
    )
    .await
    .map_err(auth::password::retry_after)?;
    let jar = jar.add(auth::session_cookie(&raw, state.config.session_ttl_secs));
    let body = LoginResponse {
        csrf_token: p.csrf.clone().unwrap_or_default(),
        username: p.username,
        must_change_password: p.must_change_password,
    };
    Ok((jar, Json(body)))
}

/// Ends the presented session, if any. No CSRF token is needed: the worst a forged request can
/// do is sign the user out.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204)))]
pub async fn logout_handler(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        auth::logout(&state, c.value()).await?;
    }
    Ok((jar.add(auth::removal_cookie()), StatusCode::NO_CONTENT))
}
