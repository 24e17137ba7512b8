//! `/reports`: a project's reports with their HTML and PDF downloads, the form to make one now
//! (daily, weekly, monthly or a custom range) and the report schedules with the form to add
//! one. A refused form is shown again with the message (naming the field) and what was typed;
//! nothing is stored. Every read and write goes through [`super::api`]; the download links are
//! the API's (`/api/v1/reports/{id}.pdf`), which take the console's session too and serve an
//! HTML report under its own policy allowing its inline styles.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::api::{self as ops, GenerateBody, ScheduleBody};
use crate::AppState;
use crate::api::ApiError;
use crate::console::forms::{
    Flash, opts, policy_project, project_choice, required_project, truthy,
};
use crate::console::{
    ConsoleError, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html_status,
    project_names, see_other,
};
use crate::web::page::{param, url};

pub(crate) struct ReportRowView {
    pub id: String,
    pub range_kind: String,
    pub from: String,
    pub to: String,
    pub made: Ts,
    pub by: String,
    pub formats: String,
    pub delivery: String,
}

pub(crate) struct ScheduleView {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub range_kind: String,
    pub formats: String,
    pub enabled: bool,
    pub next_run: String,
    pub last_run: String,
}

/// What the schedule form holds (kept when it is refused).
#[derive(Default)]
pub(crate) struct ScheduleForm {
    pub name: String,
    pub cron: String,
    pub range: String,
    pub html: bool,
    pub pdf: bool,
}

#[derive(Template)]
#[template(path = "reports/list.html")]
struct ReportsPage {
    nav: Nav,
    project: String,
    project_name: String,
    project_opts: Vec<Opt>,
    can_edit: bool,
    flash: Option<Flash>,
    error: String,
    reports: Vec<ReportRowView>,
    schedules: Vec<ScheduleView>,
    range_opts: Vec<Opt>,
    schedule_range_opts: Vec<Opt>,
    form: ScheduleForm,
}

#[derive(Template)]
#[template(path = "reports/no_project.html")]
struct NoProjectPage {
    nav: Nav,
}

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let ok = |text: &str| {
        Some(Flash {
            class: "ok",
            text: text.into(),
        })
    };
    match m.get("done").map(String::as_str)? {
        "generated" => ok("Report made: download it below."),
        "scheduled" => {
            ok("Schedule saved: its reports are made and emailed at the times it names (UTC).")
        }
        "deleted" => ok("Schedule deleted; the reports it made stay."),
        _ => None,
    }
}

async fn render(
    state: &AppState,
    p: &Principal,
    project: String,
    flash: Option<Flash>,
    error: String,
    form: ScheduleForm,
    status: StatusCode,
) -> PageResult {
    let reports = ops::reports(state, p, Some(&project)).await?;
    let schedules = ops::schedules(state, p, Some(&project)).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, &project);
    let fmt = |t: i64| crate::console::fmt_utc(t);
    html_status(
        status,
        &ReportsPage {
            nav: Nav::new(p, "reports"),
            can_edit: p.require(&project, Role::Operator).is_ok(),
            flash,
            error,
            reports: reports
                .items
                .into_iter()
                .map(|r| {
                    let r = r.report;
                    ReportRowView {
                        from: super::content::fmt_day(r.range_from),
                        to: super::content::fmt_day(r.range_to - 1),
                        made: Ts::at(r.created_at),
                        by: r.created_by,
                        formats: r.formats,
                        delivery: match r.delivery.as_str() {
                            "none" => String::new(),
                            "sent" => format!("emailed: {}", r.delivery_note),
                            "failed" => format!("email failed: {}", r.delivery_note),
                            "no_recipients" => format!("not emailed: {}", r.delivery_note),
                            other => other.to_string(),
                        },
                        range_kind: r.range_kind,
                        id: r.id,
                    }
                })
                .collect(),
            schedules: schedules
                .items
                .into_iter()
                .map(|s| ScheduleView {
                    next_run: fmt(s.next_run),
                    last_run: s.last_run.map(fmt).unwrap_or_default(),
                    id: s.id,
                    name: s.name,
                    cron: s.cron,
                    range_kind: s.range_kind,
                    formats: s.formats,
                    enabled: s.enabled,
                })
                .collect(),
            range_opts: opts(super::content::RANGE_KINDS, "daily", str::to_string),
            schedule_range_opts: opts(
                &["daily", "weekly", "monthly"],
                if form.range.is_empty() {
                    "daily"
                } else {
                    &form.range
                },
                str::to_string,
            ),
            form,
            project,
            project_name,
            project_opts,
        },
    )
}

/// `GET /reports?project=`
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return crate::console::html(&NoProjectPage {
            nav: Nav::new(&p, "reports"),
        });
    };
    p.require(&project, Role::Viewer)
        .map_err(ConsoleError::from)?;
    let form = ScheduleForm {
        cron: "5 0 * * *".into(),
        html: true,
        pdf: true,
        ..Default::default()
    };
    render(
        &state,
        &p,
        project,
        flash(&m),
        String::new(),
        form,
        StatusCode::OK,
    )
    .await
}

fn formats(f: &crate::console::Fields) -> Vec<String> {
    ["html", "pdf"]
        .iter()
        .filter(|k| truthy(f, &format!("format_{k}")))
        .map(|k| k.to_string())
        .collect()
}

/// A refusal the form shows (400) rather than an error page.
fn shown(e: &ApiError) -> bool {
    e.status == StatusCode::BAD_REQUEST
}

/// `POST /reports/generate`: project, range, from, to, format_html, format_pdf.
pub async fn generate(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let body = GenerateBody {
        range: f.get("range").to_string(),
        from: f.opt("from"),
        to: f.opt("to"),
        formats: formats(&f),
    };
    match ops::generate(&state, &p, &project, body).await {
        Ok(_) => Ok(see_other(&url(
            "/reports",
            &[("project", &project), ("done", "generated")],
        ))),
        Err(e) if shown(&e) => {
            render(
                &state,
                &p,
                project,
                None,
                e.message,
                ScheduleForm::default(),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /reports/schedules`: project, name, cron, range, format_html, format_pdf.
pub async fn create_schedule(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    let form = ScheduleForm {
        name: f.get("name").to_string(),
        cron: f.get("cron").to_string(),
        range: f.get("range").to_string(),
        html: truthy(&f, "format_html"),
        pdf: truthy(&f, "format_pdf"),
    };
    if !form.html && !form.pdf {
        p.require(&project, Role::Operator)
            .map_err(ConsoleError::from)?;
        return render(
            &state,
            &p,
            project,
            None,
            "formats: choose HTML, PDF or both".into(),
            form,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let body = ScheduleBody {
        name: form.name.clone(),
        cron: form.cron.clone(),
        range: form.range.clone(),
        formats: formats(&f),
        enabled: true,
    };
    match ops::create_schedule(&state, &p, &project, body).await {
        Ok(_) => Ok(see_other(&url(
            "/reports",
            &[("project", &project), ("done", "scheduled")],
        ))),
        Err(e) if shown(&e) => {
            render(
                &state,
                &p,
                project,
                None,
                e.message,
                form,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /reports/schedules/{id}/delete`
pub async fn delete_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    ops::delete_schedule(&state, &p, &id).await?;
    let project = f.get("project").to_string();
    Ok(see_other(&url(
        "/reports",
        &[("project", &project), ("done", "deleted")],
    )))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports/generate", post(generate))
        .route("/reports/schedules", post(create_schedule))
        .route("/reports/schedules/{id}/delete", post(delete_schedule))
}
