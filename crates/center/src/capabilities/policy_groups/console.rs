//! Policy group pages: `/policy-groups` (a project's groups: the default and its custom ones,
//! with their servers; create a copy; delete an unused one) and `/policy-groups/{id}` (each
//! policy of a group as JSON, saved one at a time with the capability's own checks). Every page
//! goes through the API functions.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::api::{self as ops, NewGroup};
use crate::AppState;
use crate::auth::{Principal, Role};
use crate::console::forms::{Flash, policy_project, project_choice, required_project};
use crate::console::{
    Nav, Opt, PageResult, Post, Session, html, html_status, project_names, see_other,
};
use crate::web::page::{param, url};

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let ok = |text: &str| {
        Some(Flash {
            class: "ok",
            text: text.into(),
        })
    };
    match m.get("done").map(String::as_str)? {
        "created" => ok("Policy group created as a copy; edit its policies, then assign servers."),
        "deleted" => ok("Policy group deleted."),
        "saved" => ok("Policy saved; the group's online agents got it at once."),
        _ => None,
    }
}

pub(crate) struct GroupLine {
    pub id: String,
    pub name: String,
    pub description: String,
    pub servers: i64,
}

#[derive(Template)]
#[template(path = "policy_groups/list.html")]
pub(crate) struct ListPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub error: String,
    pub project: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub can_edit: bool,
    pub groups: Vec<GroupLine>,
    pub name: String,
}

#[derive(Template)]
#[template(path = "policy_groups/no_project.html")]
struct NoProjectPage {
    nav: Nav,
}

async fn render_list(
    state: &AppState,
    p: &Principal,
    project: String,
    flash_: Option<Flash>,
    error: String,
    name: String,
    status: StatusCode,
) -> PageResult {
    let groups = ops::list(state, p, &project).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, &project);
    html_status(
        status,
        &ListPage {
            nav: Nav::new(p, "policy-groups"),
            flash: flash_,
            error,
            can_edit: p.require(&project, Role::Admin).is_ok(),
            project_name,
            project_opts,
            groups: groups
                .into_iter()
                .map(|g| GroupLine {
                    id: g.id,
                    name: g.name,
                    description: g.description,
                    servers: g.servers,
                })
                .collect(),
            name,
            project,
        },
    )
}

/// `GET /policy-groups?project=`
pub async fn list(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "policy-groups"),
        });
    };
    render_list(
        &state,
        &p,
        project,
        flash(&m),
        String::new(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /policy-groups`: `name`, `description`, `copy_from` (empty: the default).
pub async fn create(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let input = NewGroup {
        name: f.0.get("name").cloned().unwrap_or_default(),
        description: f.get("description").to_string(),
        copy_from: f.opt("copy_from"),
    };
    let name = input.name.clone();
    match ops::create(&state, &p, &project, input).await {
        Ok(g) => Ok(see_other(&url(
            &format!("/policy-groups/{}", g.id),
            &[("done", "created")],
        ))),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            render_list(&state, &p, project, None, e.message, name, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /policy-groups/{id}/delete`
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let g = ops::policies(&state, &p, &id).await?.group;
    match ops::delete(&state, &p, &id).await {
        Ok(()) => Ok(see_other(&url(
            "/policy-groups",
            &[("project", g.project_id.as_str()), ("done", "deleted")],
        ))),
        Err(e) if e.status == StatusCode::CONFLICT => {
            render_list(
                &state,
                &p,
                g.project_id,
                None,
                e.message,
                String::new(),
                e.status,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) struct PolicyBox {
    pub key: String,
    pub label: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "policy_groups/group.html")]
pub(crate) struct GroupPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub error: String,
    pub id: String,
    pub name: String,
    pub project: String,
    pub servers: i64,
    pub version: i64,
    pub can_edit: bool,
    pub policies: Vec<PolicyBox>,
}

async fn render_group(
    state: &AppState,
    p: &Principal,
    id: &str,
    flash_: Option<Flash>,
    error: String,
    typed: Option<(String, String)>,
    status: StatusCode,
) -> PageResult {
    let g = ops::policies(state, p, id).await?;
    html_status(
        status,
        &GroupPage {
            nav: Nav::new(p, "policy-groups"),
            flash: flash_,
            error,
            can_edit: p.require(&g.group.project_id, Role::Admin).is_ok(),
            id: g.group.id,
            name: g.group.name,
            project: g.group.project_id,
            servers: g.group.servers,
            version: g.version,
            policies: g
                .policies
                .into_iter()
                .map(|x| {
                    let text = match &typed {
                        Some((k, t)) if *k == x.key => t.clone(),
                        _ => serde_json::to_string_pretty(&x.policy).unwrap_or_default(),
                    };
                    PolicyBox {
                        key: x.key,
                        label: x.label,
                        text,
                    }
                })
                .collect(),
        },
    )
}

/// `GET /policy-groups/{id}`
pub async fn group(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render_group(
        &state,
        &p,
        &id,
        flash(&m),
        String::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /policy-groups/{id}/policies/{key}`: `policy`, the policy as JSON.
pub async fn save_policy(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    Post { p, f }: Post,
) -> PageResult {
    let text = f.0.get("policy").cloned().unwrap_or_default();
    let refused = |msg: String| (msg, Some((key.clone(), text.clone())));
    let result = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(body) => ops::set_policy(&state, &p, &id, &key, body)
            .await
            .map_err(|e| (e.status, e.message)),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("{key}: not JSON: {e}"))),
    };
    match result {
        Ok(_) => Ok(see_other(&url(
            &format!("/policy-groups/{id}"),
            &[("done", "saved")],
        ))),
        Err((status, msg)) if status == StatusCode::BAD_REQUEST => {
            let (error, typed) = refused(msg);
            render_group(&state, &p, &id, None, error, typed, status).await
        }
        Err((status, msg)) => Err(crate::api::ApiError::new(status, "refused", msg).into()),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/policy-groups", get(list).post(create))
        .route("/policy-groups/{id}", get(group))
        .route("/policy-groups/{id}/delete", post(delete))
        .route("/policy-groups/{id}/policies/{key}", post(save_policy))
}
