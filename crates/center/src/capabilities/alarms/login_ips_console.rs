//! A server's usual login addresses: `/servers/{id}/login-ips` lists them with where each came
//! from, and lets the project's admins edit the list and switch learning.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::bruteforce::MAX_USUAL_LOGIN_IPS;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::capabilities::alarms::login_ips_api::{self as ops, SetLoginIps};
use crate::capabilities::server_tabs;
use crate::console::forms::{Flash, lines, truthy};
use crate::console::{
    ConsoleError, Nav, PageResult, Post, Principal, Role, Session, Ts, html_status, see_other,
};
use crate::web::page::{Tab, param, url};

pub(crate) struct EntryView {
    pub addr: String,
    pub origin: String,
    pub added: Ts,
    pub added_by: String,
}

#[derive(Template)]
#[template(path = "alarms/login_ips.html")]
pub(crate) struct LoginIpsPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub learning: bool,
    pub items: Vec<EntryView>,
    pub project_ips: Vec<String>,
    pub can_edit: bool,
    /// The form: the stored list, or what was typed when it was refused.
    pub form_ips: String,
    pub form_learning: bool,
    pub max: usize,
}

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    (param(m, "done") == "saved").then(|| Flash {
        class: "ok",
        text: "Usual login addresses saved; the server's agent applies them at once.".into(),
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
    let tabs = server_tabs(state, p, &srv.id, "login-ips").await?;
    let (form_ips, form_learning) = typed.unwrap_or_else(|| {
        let ips: Vec<&str> = body.items.iter().map(|e| e.addr.as_str()).collect();
        (ips.join("\n"), body.learning)
    });
    html_status(
        status,
        &LoginIpsPage {
            nav: Nav::new(p, "servers"),
            can_edit: p.require(&srv.project_id, Role::Admin).is_ok(),
            sid: srv.id,
            sname: srv.name,
            tabs,
            flash,
            error,
            learning: body.learning,
            items: body
                .items
                .into_iter()
                .map(|e| EntryView {
                    addr: e.addr,
                    origin: e.origin,
                    added: Ts::at(e.added_at),
                    added_by: e.added_by.unwrap_or_default(),
                })
                .collect(),
            project_ips: body.project_ips,
            form_ips,
            form_learning,
            max: MAX_USUAL_LOGIN_IPS,
        },
    )
}

/// `GET /servers/{id}/login-ips`.
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render(&state, &p, &id, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /servers/{id}/login-ips`: replaces the list (`ips`, one per line) and the learning
/// switch (admins). A refused list is shown again with the API's message.
pub async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let typed = f.0.get("ips").cloned().unwrap_or_default();
    let learning = truthy(&f, "learning");
    let input = SetLoginIps {
        ips: lines(&typed),
        learning,
    };
    match ops::set(&state, &p, &id, input).await {
        Ok(_) => Ok(see_other(&url(
            &format!("/servers/{id}/login-ips"),
            &[("done", "saved")],
        ))),
        // The API checked the role before the list, so a 400 is for someone allowed to see it.
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let typed = Some((typed, learning));
            render(
                &state,
                &p,
                &id,
                typed,
                StatusCode::BAD_REQUEST,
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
    Router::new().route("/servers/{id}/login-ips", get(page).post(save))
}
