//! `/dashboard`: the console's landing page. One project's security score with what costs the
//! most, the 7-day trend as an inline SVG (a day without a snapshot is drawn as "no data"),
//! servers by agent, protection and risk status linking to the filtered server list, the
//! unprotected servers and why, urgent alarms, top vulnerabilities and the lowest server
//! scores. Everything comes from [`super::api::dashboard`], so the page shows what the REST
//! API answers for the same caller.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;

use super::api::{self as ops, Dashboard};
use crate::AppState;
use crate::console::forms::{policy_project, project_choice, seg};
use crate::console::{Nav, Opt, PageResult, Session, Ts, html, project_names};
use crate::web::labels::{severity_class, severity_label};
use crate::web::page::{param, url};

/// A status count linking to the server list filtered by it.
pub(crate) struct CountLink {
    pub status: String,
    pub label: String,
    pub n: i64,
    pub href: String,
}

/// One day of the trend chart.
pub(crate) struct Bar {
    pub date: String,
    pub x: i64,
    /// Top of the bar and its height; 0 for a day without data.
    pub y: i64,
    pub h: i64,
    pub score: Option<i64>,
    pub detail: String,
    pub live: bool,
}

pub(crate) struct CostRow {
    pub category: String,
    pub what: String,
    pub count: i64,
    pub lost: String,
}

pub(crate) struct AlarmRow {
    pub id: String,
    pub title: String,
    pub sev_class: &'static str,
    pub sev_label: &'static str,
    pub server_id: String,
    pub server_name: String,
    pub count: i64,
    pub at: Ts,
}

pub(crate) struct VulnRow {
    pub cve: String,
    pub href: String,
    pub sev_class: &'static str,
    pub sev_label: &'static str,
    pub cvss: String,
    pub servers: i64,
    pub packages: String,
}

pub(crate) struct UnprotectedRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: String,
    pub agent: String,
    pub since: Ts,
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct DashboardPage {
    nav: Nav,
    project: String,
    project_name: String,
    project_opts: Vec<Opt>,
    d: Dashboard,
    score_class: &'static str,
    costs: Vec<CostRow>,
    bars: Vec<Bar>,
    chart_w: i64,
    chart_h: i64,
    agent: Vec<CountLink>,
    protection: Vec<CountLink>,
    risk: Vec<CountLink>,
    unprotected: Vec<UnprotectedRow>,
    alarms: Vec<AlarmRow>,
    vulns: Vec<VulnRow>,
}

#[derive(Template)]
#[template(path = "dashboard/no_project.html")]
struct NoProjectPage {
    nav: Nav,
}

const BAR_W: i64 = 56;
const CHART_H: i64 = 120;

fn score_class(score: i64) -> &'static str {
    match score {
        90.. => "b-ok",
        60..=89 => "b-warn",
        _ => "b-bad",
    }
}

fn links(counts: &[hostward_store::StatusCount], key: &str, project: &str) -> Vec<CountLink> {
    counts
        .iter()
        .map(|c| CountLink {
            label: c.status.replace('_', " "),
            n: c.count,
            href: url(
                "/servers",
                &[(key, c.status.as_str()), ("project", project)],
            ),
            status: c.status.clone(),
        })
        .collect()
}

pub(crate) fn bars(d: &Dashboard) -> Vec<Bar> {
    d.trend
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let score = t.snapshot.as_ref().map(|s| s.score);
            let h = score.map(|s| s.clamp(0, 100) * (CHART_H - 30) / 100).unwrap_or(0);
            Bar {
                date: t.date.clone(),
                x: i as i64 * BAR_W + 8,
                y: CHART_H - 20 - h,
                h,
                score,
                detail: match &t.snapshot {
                    Some(s) => format!(
                        "{}: score {}, {} vulnerabilities, {} failed checks, {} alarms, {} unprotected{}",
                        t.date,
                        s.score,
                        s.vulns,
                        s.baseline_failed,
                        s.alarms,
                        s.unprotected,
                        if t.live { " (now)" } else { "" }
                    ),
                    None => format!("{}: no data (no snapshot was taken that day)", t.date),
                },
                live: t.live,
            }
        })
        .collect()
}

/// `GET /dashboard?project=`
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "dashboard"),
        });
    };
    let d = ops::dashboard(&state, &p, &project).await?;
    let (project_name, project_opts) = project_choice(project_names(&state, &p).await?, &project);
    let bars = bars(&d);
    html(&DashboardPage {
        nav: Nav::new(&p, "dashboard"),
        score_class: score_class(d.score.score),
        costs: d
            .costs_most
            .iter()
            .filter(|c| c.lost > 0.0)
            .map(|c| CostRow {
                category: c.category.to_string(),
                what: c.what.clone(),
                count: c.count,
                lost: format!("{:.1}", c.lost),
            })
            .collect(),
        chart_w: bars.len() as i64 * BAR_W + 16,
        chart_h: CHART_H,
        bars,
        agent: links(&d.overview.by_agent, "status", &project),
        protection: links(&d.overview.by_protection, "protection", &project),
        risk: links(&d.overview.by_risk, "risk", &project),
        unprotected: d
            .overview
            .unprotected
            .iter()
            .map(|s| UnprotectedRow {
                id: s.id.clone(),
                name: s.name.clone(),
                status: s.protection_status.replace('_', " "),
                reason: s.protection_reason.replace('_', " "),
                agent: if s.agent_reason.is_empty() {
                    s.agent_status.replace('_', " ")
                } else {
                    format!(
                        "{} ({})",
                        s.agent_status.replace('_', " "),
                        s.agent_reason.replace('_', " ")
                    )
                },
                since: Ts::at(s.since),
            })
            .collect(),
        alarms: d
            .urgent_alarms
            .iter()
            .map(|a| AlarmRow {
                id: a.id.clone(),
                title: a.title.clone(),
                sev_class: severity_class(&a.severity),
                sev_label: severity_label(&a.severity),
                server_id: a.server_id.clone(),
                server_name: a.server_name.clone(),
                count: a.count,
                at: Ts::at(a.last_seen),
            })
            .collect(),
        vulns: d
            .top_vulns
            .iter()
            .map(|v| VulnRow {
                href: format!("/vulnerabilities/{}", seg(&v.cve)),
                cve: v.cve.clone(),
                sev_class: severity_class(&v.severity),
                sev_label: severity_label(&v.severity),
                cvss: v.cvss.map(|c| format!("{c:.1}")).unwrap_or_default(),
                servers: v.servers,
                packages: v.packages.clone(),
            })
            .collect(),
        project,
        project_name,
        project_opts,
        d,
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard", get(page))
}
