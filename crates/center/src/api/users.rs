//! Users and roles. Superadmins create and delete users; a project admin manages roles in the
//! projects they administer (for users who already share one of the caller's projects) and
//! resets passwords of users who belong only to projects they administer. Only superadmins act
//! on users outside the caller's projects, so a project admin cannot adopt and take over one.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, audit, scope};
use crate::AppState;
use crate::auth::{self, Principal, Role};
use hostward_store::{Membership, NewUser, User};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ProjectRole {
    pub project_id: String,
    pub project_name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
    /// Unix seconds; 0 when not locked. Only an administrator's lock sets it: failed sign-ins
    /// lock one source for the account, never the account itself.
    pub locked_until: i64,
    pub created_at: i64,
    /// Roles in the projects the caller may see.
    pub roles: Vec<ProjectRole>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UserList {
    pub items: Vec<UserInfo>,
}

impl IntoIterator for UserList {
    type Item = UserInfo;
    type IntoIter = std::vec::IntoIter<UserInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    /// At least 12 characters; not a common password, not repetitive or sequential, not the
    /// user name.
    pub password: String,
    #[serde(default)]
    pub is_superadmin: bool,
    /// Project for `role`; defaults to the caller's only project, else `default`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Role to give in `project_id`; absent gives none (add roles later).
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password: at least 12 characters; not a common password, not repetitive or
    /// sequential, not the user name.
    pub password: String,
    /// Required when changing your own password.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// What a password change or reset ended.
///
/// Your own change (with `current_password`) ends every other console session (the one making
/// the change stays signed in) and revokes all your API tokens: whoever knew the old password
/// may have made some. An administrator's reset ends all the user's sessions, revokes all their
/// API tokens and makes them choose a new password at next sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PasswordChanged {
    pub sessions_ended: u64,
    pub api_tokens_revoked: u64,
}

/// `role: null` removes the user from the project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub project_id: String,
    pub role: Option<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
    pub roles: Vec<ProjectRole>,
    /// Present when signed in with a console session: send it as X-CSRF-Token.
    pub csrf_token: Option<String>,
}

fn roles_of(ms: Vec<Membership>, visible: &HashSet<String>) -> Vec<ProjectRole> {
    ms.into_iter()
        .filter(|m| visible.contains(&m.project_id))
        .filter_map(|m| {
            Role::parse(&m.role).map(|role| ProjectRole {
                project_id: m.project_id,
                project_name: m.project_name,
                role,
            })
        })
        .collect()
}

async fn info(state: &AppState, u: User, visible: &HashSet<String>) -> Result<UserInfo, ApiError> {
    let roles = roles_of(state.store.memberships_of(&u.id).await?, visible);
    Ok(UserInfo {
        id: u.id,
        username: u.username,
        is_superadmin: u.is_superadmin,
        must_change_password: u.must_change_password,
        locked_until: u.locked_until,
        created_at: u.created_at,
        roles,
    })
}

fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(ApiError::invalid_body(
            "username: 1 to 64 characters of letters, digits and . _ - @",
        ));
    }
    Ok(())
}

fn superadmin_only(p: &Principal) -> Result<(), ApiError> {
    if p.is_superadmin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only a superadmin may do this"))
    }
}

/// Superadmins see every user; a project admin sees the members of the projects they administer.
pub async fn list(state: &AppState, p: &Principal) -> Result<UserList, ApiError> {
    let visible: HashSet<String> = scope(state, p).await?.into_iter().collect();
    let mut items = Vec::new();
    if p.is_superadmin {
        for u in state.store.list_users().await? {
            items.push(info(state, u, &visible).await?);
        }
        return Ok(UserList { items });
    }
    let admin_of = p.projects_with(Role::Admin);
    if admin_of.is_empty() {
        return Err(ApiError::forbidden(
            "listing users needs the admin role in a project",
        ));
    }
    let mut ids = Vec::new();
    for proj in &admin_of {
        for m in state.store.project_members(proj).await? {
            if !ids.contains(&m.user_id) {
                ids.push(m.user_id);
            }
        }
    }
    let admin_set: HashSet<String> = admin_of.into_iter().collect();
    for id in ids {
        if let Some(u) = state.store.user(&id).await? {
            items.push(info(state, u, &admin_set).await?);
        }
    }
    items.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(UserList { items })
}

pub async fn create(
    state: &AppState,
    p: &Principal,
    input: CreateUser,
) -> Result<UserInfo, ApiError> {
    superadmin_only(p)?;
    validate_username(&input.username)?;
    auth::validate_new_password("password", &input.password, &input.username)?;
    let grant = match input.role {
        Some(role) => Some((
            super::target_project(state, p, input.project_id.as_deref(), Role::Admin).await?,
            role,
        )),
        None if input.project_id.is_some() => {
            return Err(ApiError::invalid_body(
                "role: required when project_id is given",
            ));
        }
        None => None,
    };
    let password_hash = auth::password::pool(&state.config)
        .hash(p.source_ip, &input.password)
        .await?;
    let u = state
        .store
        .create_user(&NewUser {
            username: input.username.clone(),
            password_hash,
            is_superadmin: input.is_superadmin,
            // An account a signed-in admin made starts with a password that admin knows; the
            // CLI (system) is the operator setting up their own access.
            must_change_password: !p.user_id.is_empty(),
        })
        .await?;
    if let Some((project_id, role)) = &grant {
        state
            .store
            .set_membership(&u.id, project_id, role.as_str())
            .await?;
        audit(
            state,
            p,
            project_id,
            "user.role",
            &u.username,
            role.as_str(),
        )
        .await;
    }
    let detail = if u.is_superadmin { "superadmin" } else { "" };
    audit(state, p, "", "user.create", &u.username, detail).await;
    let visible: HashSet<String> = scope(state, p).await?.into_iter().collect();
    info(state, u, &visible).await
}

pub async fn delete(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    superadmin_only(p)?;
    if p.is_user(id) {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    let u = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    state.store.delete_user(&u.id).await?;
    audit(state, p, "", "user.delete", &u.username, "").await;
    Ok(())
}

/// Whether `p` may manage `target`'s account: superadmins always; a project admin when the target
/// is no superadmin and every project the target belongs to is one the caller administers.
async fn may_manage(state: &AppState, p: &Principal, target: &User) -> Result<bool, ApiError> {
    if p.is_superadmin {
        return Ok(true);
    }
    if target.is_superadmin {
        return Ok(false);
    }
    let ms = state.store.memberships_of(&target.id).await?;
    Ok(!ms.is_empty()
        && ms
            .iter()
            .all(|m| p.role_in(&m.project_id) == Some(Role::Admin)))
}

/// Users the caller may not see answer 404 rather than 403.
async fn visible_user(state: &AppState, p: &Principal, id: &str) -> Result<User, ApiError> {
    let u = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if p.is_superadmin || p.is_user(id) {
        return Ok(u);
    }
    let shares = state
        .store
        .memberships_of(&u.id)
        .await?
        .iter()
        .any(|m| p.role_in(&m.project_id) == Some(Role::Admin));
    if shares {
        Ok(u)
    } else {
        Err(ApiError::not_found("user"))
    }
}

/// Sets another user's password (superadmin, or admin of every project the user belongs to).
/// The user must change it at next sign-in; all their sessions end, all their API tokens are
/// revoked and any lockout is lifted. Your own password goes through [`change_own_password`].
pub async fn set_password(
    state: &AppState,
    p: &Principal,
    id: &str,
    password: &str,
) -> Result<PasswordChanged, ApiError> {
    let u = visible_user(state, p, id).await?;
    if p.is_user(&u.id) {
        return Err(ApiError::invalid_body(
            "current_password: required to change your own password",
        ));
    }
    auth::validate_new_password("password", password, &u.username)?;
    if !may_manage(state, p, &u).await? {
        return Err(ApiError::forbidden("you may not set this user's password"));
    }
    let hash = auth::password::pool(&state.config)
        .hash(p.source_ip, password)
        .await?;
    state.store.set_password_hash(&u.id, &hash, true).await?;
    let done = PasswordChanged {
        sessions_ended: state.store.delete_user_sessions(&u.id).await?,
        api_tokens_revoked: state.store.revoke_user_api_tokens(&u.id).await?,
    };
    state
        .store
        .clear_login_attempts(&format!("acct:{}|", u.username.to_lowercase()))
        .await?;
    let detail = format!(
        "sessions ended: {}, api tokens revoked: {}",
        done.sessions_ended, done.api_tokens_revoked
    );
    audit(state, p, "", "user.password_reset", &u.username, &detail).await;
    Ok(done)
}

/// Changes the caller's own password after checking the current one. A wrong current password
/// counts as a failed sign-in of this account from this source (the same counters and limit);
/// past the limit it is not checked and the answer is 429 `locked`. On success every other
/// session of the user ends (the calling session stays) and all the user's API tokens are
/// revoked.
pub async fn change_own_password(
    state: &AppState,
    p: &Principal,
    current_password: &str,
    new_password: &str,
) -> Result<PasswordChanged, ApiError> {
    let u = state
        .store
        .user(&p.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    auth::validate_new_password("password", new_password, &u.username)?;
    if new_password == current_password {
        return Err(ApiError::invalid_body(
            "password: must differ from the current password",
        ));
    }
    let pool = auth::password::pool(&state.config);
    let attempt = auth::session::Attempt::new(&u.username, p.source_ip);
    if let Err(refusal) = attempt.reserve(state).await? {
        audit(
            state,
            p,
            "",
            "user.password_change_refused",
            &u.username,
            refusal.detail(),
        )
        .await;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            "current_password: too many wrong passwords from your address; try again later",
        ));
    }
    let matches = match pool
        .verify(p.source_ip, current_password, &u.password_hash)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            attempt.release(state).await?;
            return Err(e);
        }
    };
    if !matches {
        audit(
            state,
            p,
            "",
            "user.password_change_failed",
            &u.username,
            "wrong current password",
        )
        .await;
        return Err(ApiError::invalid_body("current_password: does not match"));
    }
    attempt.succeeded(state).await?;
    let hash = pool.hash(p.source_ip, new_password).await?;
    state.store.set_password_hash(&u.id, &hash, false).await?;
    let sessions_ended = match &p.csrf {
        Some(csrf) => state.store.delete_other_sessions(&u.id, csrf).await?,
        None => state.store.delete_user_sessions(&u.id).await?,
    };
    let done = PasswordChanged {
        sessions_ended,
        api_tokens_revoked: state.store.revoke_user_api_tokens(&u.id).await?,
    };
    let detail = format!(
        "other sessions ended: {}, api tokens revoked: {}",
        done.sessions_ended, done.api_tokens_revoked
    );
    audit(state, p, "", "user.password_change", &u.username, &detail).await;
    Ok(done)
}

/// Gives or removes a role in a project the caller administers.
pub async fn set_role(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: SetRole,
) -> Result<(), ApiError> {
    p.require(&input.project_id, Role::Admin)?;
    if state.store.project(&input.project_id).await?.is_none() {
        return Err(ApiError::not_found("project"));
    }
    let u = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if !p.is_superadmin {
        if p.is_user(&u.id) {
            return Err(ApiError::forbidden("you cannot change your own role"));
        }
        // Adding a user from outside one's projects and then resetting their password would
        // take the account over; such users (and superadmins) are the superadmins' to manage,
        // and stay invisible (404) like other projects' objects.
        let shares = state
            .store
            .memberships_of(&u.id)
            .await?
            .iter()
            .any(|m| p.role_in(&m.project_id).is_some());
        if u.is_superadmin || !shares {
            return Err(ApiError::not_found("user"));
        }
    }
    match input.role {
        Some(r) => {
            state
                .store
                .set_membership(&u.id, &input.project_id, r.as_str())
                .await?
        }
        None => {
            state
                .store
                .remove_membership(&u.id, &input.project_id)
                .await?;
        }
    }
    let detail = input.role.map(Role::as_str).unwrap_or("none");
    audit(
        state,
        p,
        &input.project_id,
        "user.role",
        &u.username,
        detail,
    )
    .await;
    Ok(())
}

pub async fn me(state: &AppState, p: &Principal) -> Result<Me, ApiError> {
    let visible: HashSet<String> = scope(state, p).await?.into_iter().collect();
    let roles = if p.is_superadmin {
        state
            .store
            .list_projects()
            .await?
            .into_iter()
            .map(|pr| ProjectRole {
                project_id: pr.id,
                project_name: pr.name,
                role: Role::Admin,
            })
            .collect()
    } else {
        roles_of(state.store.memberships_of(&p.user_id).await?, &visible)
    };
    Ok(Me {
        user_id: p.user_id.clone(),
        username: p.username.clone(),
        is_superadmin: p.is_superadmin,
        must_change_password: p.must_change_password,
        roles,
        csrf_token: p.csrf.clone(),
    })
}

#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, body = Me), (status = 401, body = super::ErrorBody)))]
pub async fn me_handler(State(state): State<AppState>, p: Principal) -> Result<Json<Me>, ApiError> {
    Ok(Json(me(&state, &p).await?))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = UserList), (status = 403, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(list(&state, &p).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserInfo), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(input): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserInfo>), axum::response::Response> {
    let u = create(&state, &p, input)
        .await
        .map_err(auth::password::retry_after)?;
    Ok((StatusCode::CREATED, Json(u)))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn delete_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your own password (with `current_password`): other sessions end, your API tokens are
/// revoked. Another user's (admin reset): all their sessions end, their API tokens are revoked,
/// they must choose a new password at next sign-in. The answer counts what ended.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = String, Path)), request_body = SetPassword,
    responses((status = 200, body = PasswordChanged), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 429, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn password_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetPassword>,
) -> Result<Json<PasswordChanged>, axum::response::Response> {
    let done = if p.is_user(&id) {
        change_own_password(
            &state,
            &p,
            input.current_password.as_deref().unwrap_or(""),
            &input.password,
        )
        .await
    } else {
        set_password(&state, &p, &id, &input.password).await
    };
    done.map(Json).map_err(auth::password::retry_after)
}

#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "users", params(("id" = String, Path)), request_body = SetRole,
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn role_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetRole>,
) -> Result<StatusCode, ApiError> {
    set_role(&state, &p, &id, input).await?;
    Ok(StatusCode::NO_CONTENT)
}
