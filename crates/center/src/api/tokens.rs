//! Enrollment tokens (admin of the project). The secret is returned once, at creation, with the
//! install command; afterwards only its prefix is shown.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, audit, expiry, scope, target_project, text_field};
use crate::AppState;
use crate::auth::{Principal, Role, secret};
use hostward_store::{EnrollmentToken, NewEnrollmentToken};

pub const MAX_EXPIRY_SECS: i64 = 365 * 24 * 3600;
/// A token nobody set a lifetime for still ends: a leaked install command from last year must
/// not enroll servers today.
pub const DEFAULT_EXPIRY_SECS: i64 = 7 * 24 * 3600;
/// A re-install token is for one install run happening now.
pub const REINSTALL_EXPIRY_SECS: i64 = 24 * 3600;
const MAX_USES: i64 = 1_000_000;
const MAX_CIDRS: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// Defaults to the caller's only project, else `default`.
    #[serde(default)]
    pub project_id: Option<String>,
    pub name: String,
    /// Region given to servers enrolled with this token.
    #[serde(default)]
    pub region: Option<String>,
    /// Lifetime in seconds, 1 to 31536000 (365 days); absent: 604800 (7 days).
    #[serde(default)]
    pub expires_in_secs: Option<i64>,
    /// Networks (CIDR or single addresses) allowed to enroll; absent or empty means any.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// How many servers the token may enroll (1 to 1000000); absent: no limit.
    #[serde(default)]
    pub max_uses: Option<i64>,
}

/// Body of `POST /api/v1/servers/{id}/reinstall`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReinstallToken {
    /// Lifetime in seconds, 1 to 604800; absent: 86400 (24 hours).
    #[serde(default)]
    pub expires_in_secs: Option<i64>,
}

/// The new token, its secret and the install command: shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub token: EnrollmentToken,
    pub secret: String,
    pub install_command: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentTokenList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<EnrollmentToken>,
}

impl IntoIterator for EnrollmentTokenList {
    type Item = EnrollmentToken;
    type IntoIter = std::vec::IntoIter<EnrollmentToken>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Parses `allowed_cidrs[i]`; a bare address means just that host.
pub fn parse_cidrs(field: &str, list: &[String]) -> Result<Vec<IpNet>, ApiError> {
    if list.len() > MAX_CIDRS {
        return Err(ApiError::invalid_body(format!(
            "{field}: at most {MAX_CIDRS} entries"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.trim();
            c.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ApiError::invalid_body(format!(
                        "{field}[{i}]: {c:?} is not a CIDR such as 10.0.0.0/8 or an IP address"
                    ))
                })
        })
        .collect()
}

pub async fn create(
    state: &AppState,
    p: &Principal,
    input: CreateEnrollmentToken,
) -> Result<CreatedEnrollmentToken, ApiError> {
    let project_id = target_project(state, p, input.project_id.as_deref(), Role::Admin).await?;
    let name = text_field("name", &input.name, 1, 100)?;
    let region = text_field("region", input.region.as_deref().unwrap_or(""), 0, 100)?;
    let expires_at = expiry(
        "expires_in_secs",
        Some(input.expires_in_secs.unwrap_or(DEFAULT_EXPIRY_SECS)),
        MAX_EXPIRY_SECS,
    )?;
    let cidrs = parse_cidrs(
        "allowed_cidrs",
        input.allowed_cidrs.as_deref().unwrap_or(&[]),
    )?;
    if let Some(m) = input.max_uses
        && !(1..=MAX_USES).contains(&m)
    {
        return Err(ApiError::invalid_body(format!(
            "max_uses: must be 1 to {MAX_USES}"
        )));
    }
    issue(
        state,
        p,
        NewEnrollmentToken {
            project_id,
            name,
            region,
            allowed_cidrs: cidrs.iter().map(ToString::to_string).collect(),
            expires_at,
            max_uses: input.max_uses,
            ..Default::default()
        },
        None,
    )
    .await
}

/// An admin's one-time grant to put a new agent on a server that has (or had, if revoked) one:
/// a single-use token bound to that server, with the install command naming its install id.
/// Ordinary tokens never rebind such a server, so holding a project's token and knowing an
/// install id is not enough to take a server's identity.
pub async fn reinstall(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    input: CreateReinstallToken,
) -> Result<CreatedEnrollmentToken, ApiError> {
    let srv = super::servers::visible_server(state, p, server_id, Role::Admin).await?;
    let expires_at = expiry(
        "expires_in_secs",
        Some(input.expires_in_secs.unwrap_or(REINSTALL_EXPIRY_SECS)),
        7 * 24 * 3600,
    )?;
    let name: String = format!("re-install {}", srv.name)
        .chars()
        .take(100)
        .collect();
    issue(
        state,
        p,
        NewEnrollmentToken {
            project_id: srv.project_id.clone(),
            name,
            region: srv.region.clone(),
            expires_at,
            max_uses: Some(1),
            server_id: Some(srv.id.clone()),
            ..Default::default()
        },
        srv.install_id.as_deref(),
    )
    .await
}

async fn issue(
    state: &AppState,
    p: &Principal,
    new: NewEnrollmentToken,
    install_id: Option<&str>,
) -> Result<CreatedEnrollmentToken, ApiError> {
    let secret = secret::new_enrollment_token();
    let token = state
        .store
        .create_enrollment_token(&NewEnrollmentToken {
            token_hash: secret::hash_secret(&secret),
            prefix: secret::display_prefix(&secret),
            created_by: p.username.clone(),
            ..new
        })
        .await?;
    let (action, target) = match &token.server_id {
        Some(sid) => ("server.reinstall", sid.as_str()),
        None => ("enrollment_token.create", token.id.as_str()),
    };
    audit(state, p, &token.project_id, action, target, &token.name).await;
    let mut install_command = state.install_command(&secret);
    if let Some(iid) = install_id {
        // Install ids are made of the installer's own characters; quote anything else.
        if iid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            install_command.push_str(&format!(" --install-id {iid}"));
        } else {
            install_command.push_str(&format!(" --install-id '{}'", iid.replace('\'', "'\\''")));
        }
    }
    Ok(CreatedEnrollmentToken {
        token,
        secret,
        install_command,
    })
}

/// Tokens of the projects the caller administers, newest first.
pub async fn list(state: &AppState, p: &Principal) -> Result<EnrollmentTokenList, ApiError> {
    let projects = if p.is_superadmin {
        scope(state, p).await?
    } else {
        p.projects_with(Role::Admin)
    };
    Ok(EnrollmentTokenList {
        items: state.store.list_enrollment_tokens(&projects).await?,
    })
}

pub async fn revoke(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let t = state
        .store
        .enrollment_token(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment token"))?;
    p.require_on("enrollment token", &t.project_id, Role::Admin)?;
    state.store.revoke_enrollment_token(&t.id).await?;
    audit(
        state,
        p,
        &t.project_id,
        "enrollment_token.revoke",
        &t.id,
        &t.name,
    )
    .await;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "enrollment",
    responses((status = 200, body = EnrollmentTokenList), (status = 401, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<EnrollmentTokenList>, ApiError> {
    Ok(Json(list(&state, &p).await?))
}

#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "enrollment", request_body = CreateEnrollmentToken,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<CreateEnrollmentToken>,
) -> Result<(StatusCode, Json<CreatedEnrollmentToken>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &p, input).await?)))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/reinstall", tag = "enrollment", params(("id" = String, Path)),
    request_body = CreateReinstallToken,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
pub async fn reinstall_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CreateReinstallToken>,
) -> Result<(StatusCode, Json<CreatedEnrollmentToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(reinstall(&state, &p, &id, input).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{id}", tag = "enrollment", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn revoke_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_name_the_bad_entry() {
        let ok = parse_cidrs(
            "allowed_cidrs",
            &[
                "10.1.2.3/8".into(),
                "192.0.2.7".into(),
                "2001:db8::/32".into(),
            ],
        )
        .unwrap();
        let shown: Vec<String> = ok.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let err = parse_cidrs(
            "allowed_cidrs",
            &["10.0.0.0/8".into(), "10.0.0.0/99".into()],
        )
        .unwrap_err();
        assert!(
            err.message.starts_with("allowed_cidrs[1]"),
            "{}",
            err.message
        );
    }
}
