//! The project's risk policy page (`/risk/policy`): scan window, jitter, the custom weak-password
//! list, the time budget and one-click fixes, saved through the API operation and pushed to the
//! project's agents.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::risk::{MAX_CUSTOM_WEAK_PASSWORDS, RiskPolicy};

use crate::AppState;
use crate::capabilities::risk::api::{self as ops};
use crate::console::forms::{
    Flash, lines, policy_project, project_choice, required_project, save_policy_form, truthy,
};
use crate::console::{
    Nav, Opt, PageResult, Post, Principal, Role, Session, html, html_status, project_names,
};
use crate::web::page::param;

use super::console::*;

/// The policy form's fields as text, so a refused form shows what was typed.
pub(crate) struct PolicyForm {
    pub window_start: String,
    pub window_end: String,
    pub jitter_secs: String,
    pub daily_scan: bool,
    pub words: String,
    pub word_count: usize,
    pub budget_secs: String,
    pub allow_fix: bool,
}

impl PolicyForm {
    fn of(p: &RiskPolicy) -> PolicyForm {
        PolicyForm {
            window_start: fmt_hhmm(p.window_start_min),
            window_end: fmt_hhmm(p.window_end_min),
            jitter_secs: p.jitter_secs.to_string(),
            daily_scan: p.daily_scan,
            word_count: p.custom_weak_passwords.len(),
            words: p.custom_weak_passwords.join("\n"),
            budget_secs: p.weak_password_budget_secs.to_string(),
            allow_fix: p.allow_fix,
        }
    }

    fn words(&self) -> Vec<String> {
        lines(&self.words)
    }

    /// The policy the form describes; the message names the field.
    fn policy(&self) -> Result<RiskPolicy, String> {
        let secs = |field: &str, s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{field}: a whole number of seconds"))
        };
        Ok(RiskPolicy {
            window_start_min: parse_hhmm("window_start", &self.window_start)?,
            window_end_min: parse_hhmm("window_end", &self.window_end)?,
            jitter_secs: secs("jitter_secs", &self.jitter_secs)?,
            daily_scan: self.daily_scan,
            custom_weak_passwords: self.words(),
            weak_password_budget_secs: secs("weak_password_budget_secs", &self.budget_secs)?,
            allow_fix: self.allow_fix,
        })
    }
}

#[derive(Template)]
#[template(path = "risk/policy.html")]
pub(crate) struct PolicyPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_id: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub version: i64,
    pub can_edit: bool,
    pub form: PolicyForm,
    pub max_words: usize,
}

async fn render_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    form: Option<PolicyForm>,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> PageResult {
    let body = ops::risk_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "risk"),
            section: "policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            form: form.unwrap_or_else(|| PolicyForm::of(&body.policy)),
            max_words: MAX_CUSTOM_WEAK_PASSWORDS,
        },
    )
}

#[derive(Template)]
#[template(path = "risk/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /risk/policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "risk"),
            section: "policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /risk/policy`: replaces the project's risk policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let mut form = PolicyForm {
        window_start: f.get("window_start").to_string(),
        window_end: f.get("window_end").to_string(),
        jitter_secs: f.get("jitter_secs").to_string(),
        daily_scan: truthy(&f, "daily_scan"),
        words: f.get("custom_weak_passwords").to_string(),
        word_count: 0,
        budget_secs: f.get("weak_password_budget_secs").to_string(),
        allow_fix: truthy(&f, "allow_fix"),
    };
    form.word_count = form.words().len();
    save_policy_form(
        &p,
        &project,
        "/risk/policy",
        form,
        PolicyForm::policy,
        |policy| ops::set_risk_policy(&state, &p, &project, policy),
        |form, msg| {
            render_policy(
                &state,
                &p,
                &project,
                Some(form),
                StatusCode::BAD_REQUEST,
                None,
                Some(msg),
            )
        },
    )
    .await
}

/// The policy page.
pub fn router() -> Router<AppState> {
    Router::new().route("/risk/policy", get(policy).post(save_policy))
}
