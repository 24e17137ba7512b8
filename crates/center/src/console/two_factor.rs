//! The caller's two-factor sign-in (`/account/two-factor`): set it up (the seed and its
//! `otpauth://` URI shown once, confirmed by a first code, then the recovery codes shown once),
//! turn it off with a code, and, for a project's admins, require it of the project's members.
//! Everything goes through `api::two_factor`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::{
    ConsoleError, Nav, PageResult, Post, Principal, Role, Session, html_status, project_names,
    see_other,
};
use crate::AppState;
use crate::api::two_factor::{self as ops, CodeBody, ProjectTwoFactor};

pub(crate) struct ProjectRule {
    pub id: String,
    pub name: String,
    pub required: bool,
}

#[derive(Template)]
#[template(path = "two_factor.html")]
struct TwoFactorPage {
    nav: Nav,
    error: String,
    notice: String,
    enabled: bool,
    pending: bool,
    codes_left: i64,
    required_by: Vec<String>,
    /// Shown once, right after set-up started.
    secret: String,
    uri: String,
    /// Shown once, right after confirming.
    recovery_codes: Vec<String>,
    admin_projects: Vec<ProjectRule>,
}

#[derive(Default)]
struct Shown {
    error: String,
    notice: String,
    secret: String,
    uri: String,
    recovery_codes: Vec<String>,
}

async fn render(state: &AppState, p: &Principal, status: StatusCode, shown: Shown) -> PageResult {
    let st = ops::status(state, p).await?;
    let admin_projects = project_names(state, p)
        .await?
        .into_iter()
        .filter(|(id, _)| p.require(id, Role::Admin).is_ok())
        .map(|(id, name)| ProjectRule {
            required: st.required_by.iter().any(|r| r.id == id),
            id,
            name,
        })
        .collect();
    html_status(
        status,
        &TwoFactorPage {
            nav: Nav::new(p, ""),
            error: shown.error,
            notice: shown.notice,
            enabled: st.enabled,
            pending: st.pending,
            codes_left: st.recovery_codes_left,
            required_by: st.required_by.into_iter().map(|r| r.name).collect(),
            secret: shown.secret,
            uri: shown.uri,
            recovery_codes: shown.recovery_codes,
            admin_projects,
        },
    )
}

/// `GET /account/two-factor`
pub async fn page(State(state): State<AppState>, Session(p): Session) -> PageResult {
    render(&state, &p, StatusCode::OK, Shown::default()).await
}

/// `POST /account/two-factor/start`: a new seed, shown on the page this once.
pub async fn start(State(state): State<AppState>, Post { p, .. }: Post) -> PageResult {
    match ops::start(&state, &p).await {
        Ok(s) => {
            let shown = Shown {
                secret: s.secret,
                uri: s.otpauth_uri,
                ..Default::default()
            };
            render(&state, &p, StatusCode::OK, shown).await
        }
        Err(e) if e.status == StatusCode::CONFLICT => {
            let shown = Shown {
                error: e.message,
                ..Default::default()
            };
            render(&state, &p, StatusCode::CONFLICT, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/two-factor/confirm` (`code`): on, and the recovery codes shown this once.
pub async fn confirm(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let body = CodeBody {
        code: f.get("code").to_string(),
    };
    match ops::confirm(&state, &p, body).await {
        Ok(r) => {
            let shown = Shown {
                notice: "Two-factor sign-in is on. Keep these recovery codes somewhere safe: each signs in once in place of a code, and they are not shown again.".into(),
                recovery_codes: r.recovery_codes,
                ..Default::default()
            };
            render(&state, &p, StatusCode::OK, shown).await
        }
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let shown = Shown {
                error: e.message,
                ..Default::default()
            };
            render(&state, &p, e.status, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/two-factor/disable` (`code`).
pub async fn disable(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let body = CodeBody {
        code: f.get("code").to_string(),
    };
    match ops::disable(&state, &p, body).await {
        Ok(()) => Ok(see_other("/account/two-factor")),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let shown = Shown {
                error: e.message,
                ..Default::default()
            };
            render(&state, &p, e.status, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/two-factor/project` (`project`, `required`): an admin's rule for a project.
pub async fn project(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = f.get("project").to_string();
    if project.is_empty() {
        return Err(ConsoleError::bad_request("Field project is required."));
    }
    let body = ProjectTwoFactor {
        required: super::forms::truthy(&f, "required"),
    };
    match ops::set_project_rule(&state, &p, &project, body).await {
        Ok(_) => Ok(see_other("/account/two-factor")),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let shown = Shown {
                error: e.message,
                ..Default::default()
            };
            render(&state, &p, e.status, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[path = "two_factor_tests.rs"]
mod tests;
