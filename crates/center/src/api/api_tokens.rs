//! A user's own API tokens. The secret is returned once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, audit, expiry, text_field};
use crate::AppState;
use crate::auth::{Principal, secret};
use hostward_store::{ApiToken, NewApiToken};

pub const MAX_EXPIRY_SECS: i64 = 5 * 365 * 24 * 3600;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    pub name: String,
    /// Lifetime; absent means no expiry.
    #[serde(default)]
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub token: ApiToken,
    /// Send as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<ApiToken>,
}

fn needs_user(p: &Principal) -> Result<(), ApiError> {
    if p.user_id.is_empty() {
        return Err(ApiError::invalid_body(
            "the system principal has no API tokens; create them as a user",
        ));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    p: &Principal,
    input: CreateApiToken,
) -> Result<CreatedApiToken, ApiError> {
    needs_user(p)?;
    let name = text_field("name", &input.name, 1, 100)?;
    let expires_at = expiry("expires_in_secs", input.expires_in_secs, MAX_EXPIRY_SECS)?;
    let secret = secret::new_api_token();
    let token = state
        .store
        .create_api_token(&NewApiToken {
            user_id: p.user_id.clone(),
            name,
            token_hash: secret::hash_secret(&secret),
            prefix: secret::display_prefix(&secret),
            expires_at,
        })
        .await?;
    audit(state, p, "", "api_token.create", &token.id, &token.name).await;
    Ok(CreatedApiToken { token, secret })
}

/// The caller's tokens, revoked ones included, newest first.
pub async fn list(state: &AppState, p: &Principal) -> Result<ApiTokenList, ApiError> {
    needs_user(p)?;
    Ok(ApiTokenList {
        items: state.store.list_api_tokens(&p.user_id).await?,
    })
}

/// For the CLI: a token for the user named `username`, audited as the system. Returns the secret.
pub async fn create_for_user(
    state: &AppState,
    username: &str,
    name: &str,
) -> Result<String, ApiError> {
    let u = state
        .store
        .user_by_name(username)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut p = crate::auth::principal_for_user(state, &u, None).await?;
    p.username = format!("system (for {})", u.username);
    let created = create(
        state,
        &p,
        CreateApiToken {
            name: name.to_string(),
            expires_in_secs: None,
        },
    )
    .await?;
    Ok(created.secret)
}

pub async fn revoke(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    needs_user(p)?;
    state.store.revoke_api_token(&p.user_id, id).await?;
    audit(state, p, "", "api_token.revoke", id, "").await;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "api-tokens", responses((status = 200, body = ApiTokenList), (status = 401, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<ApiTokenList>, ApiError> {
    Ok(Json(list(&state, &p).await?))
}

#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "api-tokens", request_body = CreateApiToken,
    responses((status = 201, body = CreatedApiToken), (status = 400, body = super::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &p, input).await?)))
}

#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "api-tokens", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn revoke_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
