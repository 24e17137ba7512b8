//! `/history`: the fleet's handling log on one page (vulnerabilities, alarms, baseline results,
//! scans), filtered by kind, person and project, through `api::history`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};

use super::{Nav, Opt, PageResult, Role, Session, Ts, html, project_opts};
use crate::AppState;
use crate::api::history::{self as ops, HistoryQuery};
use crate::console::forms::{opt, opts, seg};
use crate::web::page::{Pager, page_param, param, url};
use hostward_store::HANDLING_KINDS;

const PER_PAGE: i64 = 100;

pub(crate) struct Row {
    pub at: Ts,
    pub kind: String,
    pub object: String,
    pub href: String,
    pub server_id: String,
    pub server_name: String,
    pub actor: String,
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    nav: Nav,
    rows: Vec<Row>,
    pager: Pager,
    kind_opts: Vec<Opt>,
    project_opts: Vec<Opt>,
    actor: String,
    csv_url: String,
}

/// Where the object of an entry is shown.
fn href(kind: &str, id: &str, server_id: &str) -> String {
    match kind {
        "vulnerability" => format!("/vulnerabilities/findings/{}", seg(id)),
        "alarm" => format!("/alarms/{}", seg(id)),
        "baseline" => format!("/baselines/results/{}", seg(id)),
        _ => format!("/servers/{}", seg(server_id)),
    }
}

/// `GET /history?kind=&actor=&project=&page=`
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let (kind, actor, project, page) = (
        param(&m, "kind"),
        param(&m, "actor"),
        param(&m, "project"),
        page_param(&m),
    );
    let q = HistoryQuery {
        project: opt(&project),
        kind: opt(&kind),
        actor: opt(&actor),
        page: Some(page),
        per_page: Some(PER_PAGE),
        ..Default::default()
    };
    let found = ops::history(&state, &p, &q).await?;
    let pairs = [
        ("kind", kind.as_str()),
        ("actor", actor.as_str()),
        ("project", project.as_str()),
    ];
    let rows: Vec<Row> = found
        .items
        .iter()
        .map(|e| Row {
            at: Ts::at(e.entry.ts),
            href: href(&e.kind, &e.object_id, &e.server_id),
            kind: e.kind.clone(),
            object: e.object.clone(),
            server_id: e.server_id.clone(),
            server_name: e.server_name.clone(),
            actor: e.entry.actor.clone(),
            action: e.entry.action.replace('_', " "),
            from_state: e.entry.from_state.replace('_', " "),
            to_state: e.entry.to_state.replace('_', " "),
            note: e.entry.note.clone(),
        })
        .collect();
    html(&HistoryPage {
        nav: Nav::new(&p, "history"),
        pager: Pager::new(page, PER_PAGE, rows.len(), found.total, |n| {
            let n = n.to_string();
            url(
                "/history",
                &[pairs.as_slice(), &[("page", n.as_str())]].concat(),
            )
        }),
        csv_url: url(
            "/api/v1/history",
            &[pairs.as_slice(), &[("format", "csv")]].concat(),
        ),
        rows,
        kind_opts: opts(HANDLING_KINDS, &kind, str::to_string),
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        actor,
    })
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
