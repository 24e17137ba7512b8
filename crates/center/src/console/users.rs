//! Users and their roles per project; the caller's own password.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::{
    ApiError, ConsoleError, Nav, Opt, PageResult, Post, Principal, Role, Session, html,
    html_status, project_names, see_other,
};
use crate::AppState;
use crate::api::users::{self as ops, CreateUser, SetRole};

pub(crate) struct RoleView {
    pub project: String,
    pub role: &'static str,
}

pub(crate) struct UserView {
    pub id: String,
    pub username: String,
    pub is_superadmin: bool,
    pub is_self: bool,
    pub roles: Vec<RoleView>,
    pub can_delete: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    flash: Option<String>,
    error: Option<String>,
    users: Vec<UserView>,
    admin_projects: Vec<Opt>,
    can_create: bool,
}

async fn render(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    flash: Option<String>,
    error: Option<String>,
) -> PageResult {
    let (users, error) = match ops::list(state, p).await {
        Ok(list) => (list.into_iter().collect::<Vec<_>>(), error),
        // Not an admin anywhere: the page explains instead of failing.
        Err(e) if e.status == StatusCode::FORBIDDEN => (
            Vec::new(),
            Some(
                error.unwrap_or_else(|| "Managing users needs the admin role in a project.".into()),
            ),
        ),
        Err(e) => return Err(e.into()),
    };
    let users = users
        .into_iter()
        .map(|u| UserView {
            is_self: p.is_user(&u.id),
            can_delete: p.is_superadmin && !p.is_user(&u.id),
            roles: u
                .roles
                .into_iter()
                .map(|r| RoleView {
                    project: r.project_name,
                    role: r.role.as_str(),
                })
                .collect(),
            id: u.id,
            username: u.username,
            is_superadmin: u.is_superadmin,
        })
        .collect();
    let admin_projects = project_names(state, p)
        .await?
        .into_iter()
        .filter(|(id, _)| p.require(id, Role::Admin).is_ok())
        .map(|(id, name)| Opt {
            value: id,
            label: name,
            selected: false,
        })
        .collect();
    html_status(
        status,
        &UsersPage {
            nav: Nav::new(p, "users"),
            flash,
            error,
            users,
            admin_projects,
            can_create: p.is_superadmin,
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let flash = match q.get("done").map(String::as_str) {
        Some("created") => Some("User added.".to_string()),
        Some("role") => Some("Role saved.".to_string()),
        Some("deleted") => Some("User deleted.".to_string()),
        _ => None,
    };
    render(&state, &p, StatusCode::OK, flash, None).await
}

/// Validation failures and conflicts show the list again with the message.
async fn form_error(state: &AppState, p: &Principal, e: ApiError) -> PageResult {
    if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT {
        return render(state, p, e.status, None, Some(e.message)).await;
    }
    Err(e.into())
}

fn parse_role(v: &str) -> Result<Option<Role>, ApiError> {
    match v {
        "none" => Ok(None),
        r => Role::parse(r)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_body("role: must be viewer, operator, admin or none")),
    }
}

pub async fn create(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let role = match parse_role(f.get("role")) {
        Ok(r) => r,
        Err(e) => return form_error(&state, &p, e).await,
    };
    let input = CreateUser {
        username: f.get("username").to_string(),
        password: f.0.get("password").cloned().unwrap_or_default(),
        is_superadmin: false,
        project_id: f.opt("project").filter(|_| role.is_some()),
        role,
    };
    match ops::create(&state, &p, input).await {
        Ok(_) => Ok(see_other("/users?done=created")),
        Err(e) => form_error(&state, &p, e).await,
    }
}

pub async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let role = match parse_role(f.get("role")) {
        Ok(r) => r,
        Err(e) => return form_error(&state, &p, e).await,
    };
    match ops::set_role(
        &state,
        &p,
        &id,
        SetRole {
            project_id: f.get("project").to_string(),
            role,
        },
    )
    .await
    {
        Ok(()) => Ok(see_other("/users?done=role")),
        Err(e) => form_error(&state, &p, e).await,
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    match ops::delete(&state, &p, &id).await {
        Ok(()) => Ok(see_other("/users?done=deleted")),
        Err(e) => form_error(&state, &p, e).await,
    }
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    nav: Nav,
    error: Option<String>,
    done: bool,
    min_len: usize,
}

pub async fn password_page(
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let done = q.contains_key("done");
    html(&PasswordPage {
        nav: Nav::new(&p, ""),
        error: None,
        done,
        min_len: crate::auth::MIN_PASSWORD_LEN,
    })
}

pub async fn change_password(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let new = f.0.get("password").cloned().unwrap_or_default();
    let again = f.0.get("password_again").cloned().unwrap_or_default();
    let result = if new != again {
        Err(ApiError::invalid_body("The two new passwords differ."))
    } else {
        let current = f.0.get("current_password").cloned().unwrap_or_default();
        ops::change_own_password(&state, &p, &current, &new).await
    };
    match result {
        Ok(_) => Ok(see_other("/account/password?done=1")),
        Err(e)
            if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::TOO_MANY_REQUESTS =>
        {
            let page = PasswordPage {
                nav: Nav::new(&p, ""),
                error: Some(e.message),
                done: false,
                min_len: crate::auth::MIN_PASSWORD_LEN,
            };
            html_status(e.status, &page)
        }
        Err(e) => Err(ConsoleError::from(e)),
    }
}
