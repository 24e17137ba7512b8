//! Enrollment tokens: list, create (the secret and install command are shown once), revoke.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::{
    ApiError, ConsoleError, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html,
    html_status, project_names, see_other,
};
use crate::AppState;
use crate::api::tokens::{self as ops, CreateEnrollmentToken};

pub(crate) struct TokenView {
    pub id: String,
    pub name: String,
    pub project: String,
    pub region: String,
    pub prefix: String,
    pub expires: Option<Ts>,
    pub cidrs: String,
    pub uses: i64,
    pub max_uses: Option<i64>,
    /// Name of the server a re-install token is bound to.
    pub reinstall_of: Option<String>,
    pub state: &'static str,
    pub state_class: &'static str,
    pub created: Ts,
    pub can_revoke: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    flash: Option<String>,
    error: Option<String>,
    tokens: Vec<TokenView>,
    admin_projects: Vec<Opt>,
}

#[derive(Template)]
#[template(path = "token_created.html")]
struct TokenCreatedPage {
    nav: Nav,
    /// Set for a re-install token: the server it binds the next enrollment to.
    reinstall_of: Option<String>,
    name: String,
    project: String,
    region: String,
    secret: String,
    install_command: String,
}

async fn render(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    flash: Option<String>,
    error: Option<String>,
) -> PageResult {
    let projects = project_names(state, p).await?;
    let names: HashMap<&str, &str> = projects
        .iter()
        .map(|(id, n)| (id.as_str(), n.as_str()))
        .collect();
    let now = hostward_store::now();
    let mut tokens: Vec<TokenView> = ops::list(state, p)
        .await?
        .items
        .into_iter()
        .map(|t| {
            let st = t.state(now);
            let class = match st {
                "active" => "online",
                "used_up" => "expired",
                other => other,
            };
            let reinstall_of = t
                .server_id
                .as_ref()
                .map(|sid| t.server_name.clone().unwrap_or_else(|| sid.clone()));
            TokenView {
                max_uses: t.max_uses,
                reinstall_of,
                project: names
                    .get(t.project_id.as_str())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| t.project_id.clone()),
                can_revoke: t.revoked_at.is_none() && p.require(&t.project_id, Role::Admin).is_ok(),
                id: t.id,
                name: t.name,
                region: t.region,
                prefix: t.prefix,
                expires: Ts::opt(t.expires_at),
                cidrs: t.allowed_cidrs.join(", "),
                uses: t.uses,
                state: st,
                state_class: class,
                created: Ts::at(t.created_at),
            }
        })
        .collect();
    tokens.sort_by(|a, b| b.created.abs.cmp(&a.created.abs));
    let admin_projects = projects
        .iter()
        .filter(|(id, _)| p.require(id, Role::Admin).is_ok())
        .map(|(id, n)| Opt {
            value: id.clone(),
            label: n.clone(),
            selected: false,
        })
        .collect();
    html_status(
        status,
        &TokensPage {
            nav: Nav::new(p, "tokens"),
            flash,
            error,
            tokens,
            admin_projects,
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let flash = match q.get("done").map(String::as_str) {
        Some("revoked") => Some(
            "The token was revoked; installs presenting it are refused from now on.".to_string(),
        ),
        _ => None,
    };
    render(&state, &p, StatusCode::OK, flash, None).await
}

/// Validation failures show the list again with the message; other errors are error pages.
async fn form_error(state: &AppState, p: &Principal, e: ApiError) -> PageResult {
    if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT {
        return render(state, p, e.status, None, Some(e.message)).await;
    }
    Err(e.into())
}

pub async fn create(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let expires_in_secs = match f.get("expires_hours") {
        "" => None,
        h => match h.parse::<i64>() {
            Ok(h) if h > 0 => Some(h.saturating_mul(3600)),
            _ => {
                return form_error(
                    &state,
                    &p,
                    ApiError::invalid_body(
                        "expires_hours: must be a whole number of hours, at least 1",
                    ),
                )
                .await;
            }
        },
    };
    let max_uses = match f.get("max_uses") {
        "" => None,
        m => match m.parse::<i64>() {
            Ok(m) => Some(m),
            Err(_) => {
                return form_error(
                    &state,
                    &p,
                    ApiError::invalid_body(
                        "max_uses: must be a whole number, or empty for no limit",
                    ),
                )
                .await;
            }
        },
    };
    let cidrs: Vec<String> = f
        .get("allowed_cidrs")
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let input = CreateEnrollmentToken {
        project_id: f.opt("project"),
        name: f.get("name").to_string(),
        region: f.opt("region"),
        expires_in_secs,
        allowed_cidrs: Some(cidrs),
        max_uses,
    };
    let created = match ops::create(&state, &p, input).await {
        Ok(c) => c,
        Err(e) => return form_error(&state, &p, e).await,
    };
    let project = project_names(&state, &p)
        .await?
        .into_iter()
        .find(|(id, _)| *id == created.token.project_id)
        .map(|(_, name)| name)
        .unwrap_or_default();
    html(&TokenCreatedPage {
        nav: Nav::new(&p, "tokens"),
        reinstall_of: None,
        name: created.token.name,
        project,
        region: created.token.region,
        secret: created.secret,
        install_command: created.install_command,
    })
}

/// An admin's re-install of a server: the one-time command, shown once.
pub async fn reinstall(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let created = ops::reinstall(&state, &p, &id, Default::default())
        .await
        .map_err(ConsoleError::from)?;
    html(&TokenCreatedPage {
        nav: Nav::new(&p, "servers"),
        reinstall_of: created.token.server_name.clone(),
        name: created.token.name,
        project: String::new(),
        region: created.token.region,
        secret: created.secret,
        install_command: created.install_command,
    })
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    ops::revoke(&state, &p, &id)
        .await
        .map_err(ConsoleError::from)?;
    Ok(see_other("/tokens?done=revoked"))
}
