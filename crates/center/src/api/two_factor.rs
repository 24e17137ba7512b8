//! Two-factor sign-in for people: set up (a seed shown once, sealed at rest; confirmed by a
//! first code, which returns ten recovery codes shown once), status, turning it off (with a
//! code), and a project's rule that its members must have it. Every operation acts on the
//! caller's own account; the project rule is an admin's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, audit};
use crate::AppState;
use crate::auth::{Principal, Role, sealed, secret, totp};
use hostward_store::{RequiringProject, now};

/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "Hostward";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    /// Set up but not confirmed by a first code yet.
    pub pending: bool,
    pub recovery_codes_left: i64,
    /// The caller's projects that require it.
    pub required_by: Vec<RequiringProject>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TwoFactorSetup {
    /// The seed in base32, for typing into an authenticator app; shown this once.
    pub secret: String,
    /// The same as an `otpauth://` URI (what a QR code holds).
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The app's current six-digit code (or, to turn it off, a recovery code).
    pub code: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each signs in once in place of a code; shown this once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectTwoFactor {
    /// Every member must sign in with a second factor.
    pub required: bool,
}

fn own(p: &Principal) -> Result<&str, ApiError> {
    if p.user_id.is_empty() {
        return Err(ApiError::conflict("only a user has a second factor"));
    }
    Ok(&p.user_id)
}

fn sealing_failed(e: String) -> ApiError {
    ApiError::internal(format!("two-factor seed: {e}"))
}

pub async fn status(state: &AppState, p: &Principal) -> Result<TwoFactorStatus, ApiError> {
    let tf = state.store.two_factor(own(p)?).await?;
    let ids: Vec<String> = p.roles.keys().cloned().collect();
    Ok(TwoFactorStatus {
        enabled: tf.enabled_at.is_some(),
        pending: tf.enabled_at.is_none() && tf.sealed.is_some(),
        recovery_codes_left: tf.recovery_left,
        required_by: state.store.projects_requiring_two_factor(&ids).await?,
    })
}

/// A new seed, pending until [`confirm`]; 409 while one is on.
pub async fn start(state: &AppState, p: &Principal) -> Result<TwoFactorSetup, ApiError> {
    let user = own(p)?;
    let seed = totp::new_secret();
    let sealed = sealed::seal(&state.config.data_dir, &seed).map_err(sealing_failed)?;
    state.store.set_pending_two_factor(user, &sealed).await?;
    Ok(TwoFactorSetup {
        secret: totp::base32(&seed),
        otpauth_uri: totp::otpauth_uri(ISSUER, &p.username, &seed),
    })
}

/// Turns the pending seed on with its first code; returns the recovery codes.
pub async fn confirm(
    state: &AppState,
    p: &Principal,
    body: CodeBody,
) -> Result<RecoveryCodes, ApiError> {
    let user = own(p)?;
    let tf = state.store.two_factor(user).await?;
    let (None, Some(sealed_seed)) = (tf.enabled_at, tf.sealed.as_deref()) else {
        return Err(ApiError::conflict(
            "no pending set-up: POST /api/v1/account/two-factor first",
        ));
    };
    let seed = sealed::open(&state.config.data_dir, sealed_seed).map_err(sealing_failed)?;
    let Some(step) = totp::check(&seed, &body.code, now(), tf.last_step) else {
        return Err(ApiError::invalid_body(
            "code: not the app's current code (check the phone's clock)",
        ));
    };
    let codes = totp::recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| secret::hash_secret(&totp::normalize_recovery(c)))
        .collect();
    state.store.enable_two_factor(user, step, &hashes).await?;
    for proj in p.roles.keys() {
        audit(state, p, proj, "auth.two_factor_on", user, "").await;
    }
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Turns it off, proven by a current code or a recovery code; refused while a project of the
/// caller requires it.
pub async fn disable(state: &AppState, p: &Principal, body: CodeBody) -> Result<(), ApiError> {
    let user = own(p)?;
    let st = status(state, p).await?;
    if let Some(r) = st.required_by.first() {
        return Err(ApiError::conflict(format!(
            "project {} requires two-factor sign-in of its members",
            r.name
        )));
    }
    let tf = state.store.two_factor(user).await?;
    let Some(sealed_seed) = tf.sealed.as_deref() else {
        return Ok(());
    };
    let seed = sealed::open(&state.config.data_dir, sealed_seed).map_err(sealing_failed)?;
    let proven = match totp::check(&seed, &body.code, now(), tf.last_step) {
        Some(step) => state.store.use_totp_step(user, step).await? || tf.enabled_at.is_none(),
        None => {
            let hash = secret::hash_secret(&totp::normalize_recovery(&body.code));
            state.store.use_recovery_code(user, &hash).await?
        }
    };
    if !proven {
        return Err(ApiError::invalid_body(
            "code: not a current code or an unused recovery code",
        ));
    }
    state.store.disable_two_factor(user).await?;
    for proj in p.roles.keys() {
        audit(state, p, proj, "auth.two_factor_off", user, "").await;
    }
    Ok(())
}

pub async fn project_rule(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<ProjectTwoFactor, ApiError> {
    p.require(project_id, Role::Viewer)?;
    Ok(ProjectTwoFactor {
        required: state.store.requires_two_factor(project_id).await?,
    })
}

/// Sets the project's rule (admin). Requiring it is refused while the admin has no second
/// factor: they would lock themselves out of everything but the set-up page.
pub async fn set_project_rule(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    body: ProjectTwoFactor,
) -> Result<ProjectTwoFactor, ApiError> {
    p.require(project_id, Role::Admin)?;
    if body.required && !p.user_id.is_empty() {
        let tf = state.store.two_factor(&p.user_id).await?;
        if tf.enabled_at.is_none() {
            return Err(ApiError::conflict(
                "set up your own two-factor sign-in first (POST /api/v1/account/two-factor)",
            ));
        }
    }
    state
        .store
        .set_require_two_factor(project_id, body.required)
        .await?;
    let detail = serde_json::json!({"required": body.required}).to_string();
    audit(
        state,
        p,
        project_id,
        "project.two_factor",
        project_id,
        &detail,
    )
    .await;
    Ok(body)
}

#[utoipa::path(get, path = "/api/v1/account/two-factor", tag = "session",
    responses((status = 200, body = TwoFactorStatus), (status = 401, body = super::ErrorBody)))]
pub async fn status_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<TwoFactorStatus>, ApiError> {
    Ok(Json(status(&state, &p).await?))
}

#[utoipa::path(post, path = "/api/v1/account/two-factor", tag = "session",
    responses((status = 200, body = TwoFactorSetup), (status = 409, body = super::ErrorBody)))]
pub async fn start_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<TwoFactorSetup>, ApiError> {
    Ok(Json(start(&state, &p).await?))
}

#[utoipa::path(post, path = "/api/v1/account/two-factor/confirm", tag = "session", request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn confirm_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    Ok(Json(confirm(&state, &p, body).await?))
}

#[utoipa::path(delete, path = "/api/v1/account/two-factor", tag = "session", request_body = CodeBody,
    responses((status = 204), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn disable_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<StatusCode, ApiError> {
    disable(&state, &p, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/two-factor", tag = "session", params(("id" = String, Path)),
    responses((status = 200, body = ProjectTwoFactor), (status = 404, body = super::ErrorBody)))]
pub async fn project_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ProjectTwoFactor>, ApiError> {
    Ok(Json(project_rule(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/two-factor", tag = "session", params(("id" = String, Path)),
    request_body = ProjectTwoFactor,
    responses((status = 200, body = ProjectTwoFactor), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn set_project_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectTwoFactor>,
) -> Result<Json<ProjectTwoFactor>, ApiError> {
    Ok(Json(set_project_rule(&state, &p, &id, body).await?))
}

#[cfg(test)]
#[path = "two_factor_tests.rs"]
mod tests;
