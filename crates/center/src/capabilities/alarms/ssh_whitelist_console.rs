//! A server's SSH login whitelist: `/servers/{id}/ssh-whitelist` shows it with the state the
//! agent reports, the address the center sees the reader at, and lets the project's admins
//! change it. A refused list (bad entry, or one that would lock the admin out) is shown again
//! as typed, with the API's message.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::bruteforce::MAX_SSH_WHITELIST;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::capabilities::alarms::ssh_whitelist_api::{self as ops, SetSshWhitelist};
use crate::capabilities::server_tabs;
use crate::console::forms::{Flash, lines, truthy};
use crate::console::{
    ConsoleError, Nav, PageResult, Post, Principal, Role, Session, Ts, html_status, see_other,
};
use crate::web::page::{Tab, param, url};

#[derive(Template)]
#[template(path = "alarms/ssh_whitelist.html")]
pub(crate) struct SshWhitelistPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub enabled: bool,
    pub addrs: Vec<String>,
    /// "by whom, when" of the last change; empty when never set.
    pub set_by: String,
    pub set_at: Option<Ts>,
    /// The address the center sees this request come from.
    pub your_address: String,
    /// The agent's report: state word, badge class, detail.
    pub report_state: String,
    pub report_class: &'static str,
    pub report_detail: String,
    pub can_edit: bool,
    /// The form: the stored list, or what was typed when it was refused.
    pub form_addrs: String,
    pub form_enabled: bool,
    pub max: usize,
}

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    (param(m, "done") == "saved").then(|| Flash {
        class: "ok",
        text: "SSH whitelist saved; the server's agent applies it within seconds.".into(),
    })
}

async fn render(
    state: &AppState,
    p: &Principal,
    id: &str,
    typed: Option<(String, bool)>,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever else is asked.
    let body = ops::get(state, p, id).await?;
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let tabs = server_tabs(state, p, &srv.id, "ssh-whitelist").await?;
    let (form_addrs, form_enabled) = typed.unwrap_or_else(|| (body.addrs.join("\n"), body.enabled));
    let (report_state, report_class, report_detail) = match &body.report {
        None => ("not reported".to_string(), "", String::new()),
        Some(r) => match r.state.as_str() {
            "applied" => (
                "applied".to_string(),
                "b-ok",
                format!(
                    "{} entries; sshd port(s) {}",
                    r.addrs,
                    r.ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            "off" => ("off".to_string(), "", String::new()),
            other => (
                other.to_string(),
                "b-bad",
                r.error.clone().unwrap_or_default(),
            ),
        },
    };
    html_status(
        status,
        &SshWhitelistPage {
            nav: Nav::new(p, "servers"),
            can_edit: p.require(&srv.project_id, Role::Admin).is_ok(),
            sid: srv.id,
            sname: srv.name,
            tabs,
            flash,
            error,
            enabled: body.enabled,
            addrs: body.addrs,
            set_by: body.set_by.unwrap_or_default(),
            set_at: body.set_at.map(Ts::at),
            your_address: body.your_address.unwrap_or_else(|| "unknown".into()),
            report_state,
            report_class,
            report_detail,
            form_addrs,
            form_enabled,
            max: MAX_SSH_WHITELIST,
        },
    )
}

/// `GET /servers/{id}/ssh-whitelist`.
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render(&state, &p, &id, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /servers/{id}/ssh-whitelist`: replaces the list (`addrs`, one per line) and the switch
/// (admins).
pub async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let typed = f.0.get("addrs").cloned().unwrap_or_default();
    let enabled = truthy(&f, "enabled");
    let input = SetSshWhitelist {
        addrs: lines(&typed),
        enabled,
    };
    match ops::set(&state, &p, &id, input).await {
        Ok(_) => Ok(see_other(&url(
            &format!("/servers/{id}/ssh-whitelist"),
            &[("done", "saved")],
        ))),
        // The API checked the role before the list, so these are for someone allowed to see it.
        Err(e) if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT => {
            let status = e.status;
            render(
                &state,
                &p,
                &id,
                Some((typed, enabled)),
                status,
                None,
                Some(e.message),
            )
            .await
        }
        Err(e) => Err(ConsoleError::from(e)),
    }
}

/// The console pages of this capability.
pub fn router() -> Router<AppState> {
    Router::new().route("/servers/{id}/ssh-whitelist", get(page).post(save))
}
