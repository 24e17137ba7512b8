//! Edition pages: `/editions` (a project's default edition, quotas with their use, the feature
//! matrix, protected time of the last 30 days with its CSV) and each server's Edition tab
//! (`/servers/{id}/edition`: its edition and what it turns on, bind/switch/unbind, its
//! policy group). Every page reads and writes through the API functions, so it shows and allows
//! exactly what the REST API does for the same caller.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::{Edition, Feature};

use super::api::{self as ops, BindEdition, SetEditions, UsageQuery};
use crate::AppState;
use crate::capabilities::policy_groups::api::{self as groups, AssignGroup};
use crate::capabilities::server_tabs;
use crate::console::forms::{Flash, policy_project, project_choice, required_project};
use crate::console::{
    ConsoleError, Nav, Opt, PageResult, Post, Session, html, html_status, project_names, see_other,
};
use crate::web::page::{Tab, param, url};

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let ok = |text: &str| {
        Some(Flash {
            class: "ok",
            text: text.into(),
        })
    };
    match m.get("done").map(String::as_str)? {
        "saved" => ok("Editions saved."),
        "bound" => {
            ok("Edition changed: the agent got its new configuration and its modules follow.")
        }
        "unbound" => ok("Edition unbound: protection is off and its quota is free."),
        "group" => ok("Policy group changed: the agent got the group's policies."),
        _ => None,
    }
}

pub(crate) struct QuotaLine {
    pub edition: &'static str,
    pub label: &'static str,
    pub total: String,
    pub used: i64,
    pub full: bool,
}

pub(crate) struct MatrixRow {
    pub label: &'static str,
    /// One mark per edition, in [`Edition::ALL`] order.
    pub marks: Vec<bool>,
}

pub(crate) struct UsageLine {
    pub server_name: String,
    pub edition: &'static str,
    pub hours: String,
    pub days: usize,
}

#[derive(Template)]
#[template(path = "editions/project.html")]
pub(crate) struct ProjectPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub error: String,
    pub project: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub can_edit: bool,
    pub default_edition: &'static str,
    pub editions: Vec<(&'static str, &'static str)>,
    pub quotas: Vec<QuotaLine>,
    pub matrix: Vec<MatrixRow>,
    pub usage: Vec<UsageLine>,
    pub csv_href: String,
}

#[derive(Template)]
#[template(path = "editions/no_project.html")]
struct NoProjectPage {
    nav: Nav,
}

fn edition_choices() -> Vec<(&'static str, &'static str)> {
    Edition::ALL
        .iter()
        .map(|e| (e.as_str(), e.label()))
        .collect()
}

fn matrix() -> Vec<MatrixRow> {
    Feature::ALL
        .iter()
        .map(|f| MatrixRow {
            label: f.label(),
            marks: Edition::ALL.iter().map(|e| e.has(*f)).collect(),
        })
        .collect()
}

async fn render_project(
    state: &AppState,
    p: &crate::auth::Principal,
    project: String,
    flash_: Option<Flash>,
    error: String,
    status: StatusCode,
) -> PageResult {
    let body = ops::project_editions(state, p, &project).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, &project);
    let rows = ops::usage(state, p, &project, &UsageQuery::default()).await?;
    let mut per: BTreeMap<(String, &'static str), (i64, usize)> = BTreeMap::new();
    for r in &rows {
        let e = per
            .entry((r.server_name.clone(), r.edition.as_str()))
            .or_default();
        e.0 += r.seconds;
        e.1 += 1;
    }
    html_status(
        status,
        &ProjectPage {
            nav: Nav::new(p, "editions"),
            flash: flash_,
            error,
            can_edit: p.require(&project, crate::auth::Role::Admin).is_ok(),
            project_name,
            project_opts,
            default_edition: body.editions.default_edition.as_str(),
            editions: edition_choices(),
            quotas: body
                .editions
                .quotas
                .iter()
                .map(|q| QuotaLine {
                    edition: q.edition.as_str(),
                    label: q.edition.label(),
                    total: q.total.map(|t| t.to_string()).unwrap_or_default(),
                    used: q.used,
                    full: q.total.is_some_and(|t| q.used >= t),
                })
                .collect(),
            matrix: matrix(),
            usage: per
                .into_iter()
                .map(|((server_name, edition), (secs, days))| UsageLine {
                    server_name,
                    edition,
                    hours: format!("{:.1}", secs as f64 / 3600.0),
                    days,
                })
                .collect(),
            csv_href: url(
                &format!("/api/v1/projects/{project}/usage"),
                &[("format", "csv")],
            ),
            project,
        },
    )
}

/// `GET /editions?project=`
pub async fn project_page(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "editions"),
        });
    };
    render_project(
        &state,
        &p,
        project,
        flash(&m),
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /editions`: `default_edition` and `quota_<edition>` (empty: no cap).
pub async fn save(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let mut input = SetEditions {
        default_edition: f.opt("default_edition"),
        ..Default::default()
    };
    for e in Edition::ALL {
        let v = f.get(&format!("quota_{}", e.as_str()));
        let total = if v.is_empty() {
            None
        } else {
            match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    let msg = format!("quotas.{}: {v:?} is not a whole number", e.as_str());
                    return render_project(&state, &p, project, None, msg, StatusCode::BAD_REQUEST)
                        .await;
                }
            }
        };
        input.quotas.insert(e.as_str().to_string(), total);
    }
    match ops::set_editions(&state, &p, &project, input).await {
        Ok(_) => Ok(see_other(&url(
            "/editions",
            &[("project", project.as_str()), ("done", "saved")],
        ))),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            render_project(&state, &p, project, None, e.message, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) struct FeatureLine {
    pub label: &'static str,
    pub on: bool,
}

#[derive(Template)]
#[template(path = "editions/server.html")]
pub(crate) struct ServerPage {
    pub nav: Nav,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub error: String,
    pub sid: String,
    pub sname: String,
    pub edition: String,
    pub edition_label: &'static str,
    pub protection_status: String,
    pub protection_reason: String,
    pub online: bool,
    pub can_edit: bool,
    pub editions: Vec<(&'static str, &'static str)>,
    pub features: Vec<FeatureLine>,
    pub custom_groups: bool,
    pub groups: Vec<Opt>,
    pub group_name: String,
}

async fn render_server(
    state: &AppState,
    p: &crate::auth::Principal,
    id: &str,
    flash_: Option<Flash>,
    error: String,
    status: StatusCode,
) -> PageResult {
    let srv = crate::api::servers::visible_server(state, p, id, crate::auth::Role::Viewer).await?;
    let tabs = server_tabs(state, p, &srv.id, "edition").await?;
    let edition = srv.edition();
    let list = groups::list(state, p, &srv.project_id).await?;
    let group_name = srv
        .policy_group_id
        .as_ref()
        .and_then(|g| list.iter().find(|x| &x.id == g))
        .map(|g| g.name.clone())
        .unwrap_or_else(|| "Default".into());
    html_status(
        status,
        &ServerPage {
            nav: Nav::new(p, "servers"),
            tabs,
            flash: flash_,
            error,
            edition_label: edition.map_or("None", |e| e.label()),
            edition: srv.edition.clone(),
            protection_status: srv.protection_status.clone(),
            protection_reason: srv.protection_reason.clone(),
            online: srv.agent_status == hostward_store::status::ONLINE,
            can_edit: p.require(&srv.project_id, crate::auth::Role::Admin).is_ok(),
            editions: edition_choices(),
            features: Feature::ALL
                .iter()
                .map(|f| FeatureLine {
                    label: f.label(),
                    on: ops::has(&srv, *f),
                })
                .collect(),
            custom_groups: ops::has(&srv, Feature::CustomPolicyGroups),
            groups: list
                .into_iter()
                .map(|g| Opt {
                    selected: srv.policy_group_id.as_deref() == Some(g.id.as_str()),
                    value: g.id,
                    label: g.name,
                })
                .collect(),
            group_name,
            sid: srv.id.clone(),
            sname: srv.name.clone(),
        },
    )
}

/// `GET /servers/{id}/edition`
pub async fn server_page(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render_server(&state, &p, &id, flash(&m), String::new(), StatusCode::OK).await
}

/// `POST /servers/{id}/edition`: `edition` (empty: unbind).
pub async fn bind(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let edition = f.opt("edition");
    let done = if edition.is_some() {
        "bound"
    } else {
        "unbound"
    };
    match ops::bind(&state, &p, &id, BindEdition { edition }).await {
        Ok(srv) => Ok(see_other(&url(
            &format!("/servers/{}/edition", srv.id),
            &[("done", done)],
        ))),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            render_server(&state, &p, &id, None, e.message, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /servers/{id}/policy-group`: `group` (empty: the default).
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let input = AssignGroup {
        group_id: f.opt("group"),
    };
    match groups::assign(&state, &p, &id, input).await {
        Ok(srv) => Ok(see_other(&url(
            &format!("/servers/{}/edition", srv.id),
            &[("done", "group")],
        ))),
        Err(e) if e.status == StatusCode::CONFLICT => {
            render_server(&state, &p, &id, None, e.message, e.status).await
        }
        Err(e) => Err(ConsoleError::from(e)),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/editions", get(project_page).post(save))
        .route("/servers/{id}/edition", get(server_page).post(bind))
        .route("/servers/{id}/policy-group", post(assign))
}
