//! Users and roles. Superadmins create and delete users; a project admin manages roles in the
//! projects they administer and resets passwords of users who belong only to those projects.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, audit, scope};
use crate::AppState;
use crate::auth::{self, Principal, Role};
use crate::store::{Membership, NewUser, User};

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
    /// Unix seconds; 0 when not locked.
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
    /// At least 12 characters.
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
    /// At least 12 characters.
    pub password: String,
    /// Required when changing your own password.
    #[serde(default)]
    pub current_password: Option<String>,
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
    auth::validate_new_password("password", &input.password)?;
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
    let password_hash = auth::hash_password(&input.password).await?;
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
/// The user must change it at next sign-in, and their sessions end. Your own password goes
/// through [`change_own_password`].
pub async fn set_password(
    state: &AppState,
    p: &Principal,
    id: &str,
    password: &str,
) -> Result<(), ApiError> {
    let u = visible_user(state, p, id).await?;
    if p.is_user(&u.id) {
        return Err(ApiError::invalid_body(
            "current_password: required to change your own password",
        ));
    }
    auth::validate_new_password("password", password)?;
    if !may_manage(state, p, &u).await? {
        return Err(ApiError::forbidden("you may not set this user's password"));
    }
    let hash = auth::hash_password(password).await?;
    state.store.set_password_hash(&u.id, &hash, true).await?;
    state.store.delete_user_sessions(&u.id).await?;
    audit(state, p, "", "user.password_reset", &u.username, "").await;
    Ok(())
}

/// Changes the caller's own password after checking the current one. Sessions stay open.
pub async fn change_own_password(
    state: &AppState,
    p: &Principal,
    current_password: &str,
    new_password: &str,
) -> Result<(), ApiError> {
    let u = state
        .store
        .user(&p.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    auth::validate_new_password("password", new_password)?;
    if !auth::verify_password(current_password, &u.password_hash).await {
        return Err(ApiError::invalid_body("current_password: does not match"));
    }
    let hash = auth::hash_password(new_password).await?;
    state.store.set_password_hash(&u.id, &hash, false).await?;
    audit(state, p, "", "user.password_change", &u.username, "").await;
    Ok(())
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
    // A project admin may add any existing user to their project, so any user id resolves.
    let u = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if p.is_user(&u.id) && !p.is_superadmin {
        return Err(ApiError::forbidden("you cannot change your own role"));
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
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &p, input).await?)))
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

#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = String, Path)), request_body = SetPassword,
    responses((status = 204), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn password_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    if p.is_user(&id) {
        change_own_password(
            &state,
            &p,
            input.current_password.as_deref().unwrap_or(""),
            &input.password,
        )
        .await?;
    } else {
        set_password(&state, &p, &id, &input.password).await?;
    }
    Ok(StatusCode::NO_CONTENT)
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
