//! Reports' REST API: a project's report schedules (create, list, delete), reports made now
//! for a range (`POST /api/v1/projects/{id}/reports`), the list, and each report as HTML or
//! PDF (`GET /api/v1/reports/{id}.pdf`). Viewers read and download; operators make reports
//! and schedules. Other projects' reports and schedules answer 404.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::content::{self, Content, Range};
use super::cron::Cron;
use super::{html, pdf};
use crate::AppState;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, fleet_scope, text_field};
use crate::auth::{Principal, Role};
use hostward_store::{NewReport, NewSchedule, ReportRow, ReportSchedule, now};

pub const FORMATS: &[&str] = &["html", "pdf"];
/// Reports listed at most.
const LIST_LIMIT: i64 = 200;

/// A new report schedule.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Shown in lists and the email's subject, 1-100 characters.
    pub name: String,
    /// Five fields, UTC: minute hour day-of-month month day-of-week, e.g. `5 0 * * *`.
    pub cron: String,
    /// daily, weekly or monthly: each run reports the last complete period.
    pub range: String,
    /// Any of html, pdf; default both.
    #[serde(default)]
    pub formats: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A report to make now.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// daily, weekly, monthly (the last complete period) or custom (`from` to `to`).
    pub range: String,
    /// `YYYY-MM-DD`, UTC, for custom.
    #[serde(default)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`, UTC, included, for custom: 1 day to 3 months after `from`.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct ProjectQuery {
    /// One project's; all of the caller's by default.
    pub project: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleList {
    pub items: Vec<ReportSchedule>,
}

/// A report as listed, with where to download it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportItem {
    #[serde(flatten)]
    pub report: ReportRow,
    pub html_url: String,
    pub pdf_url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportList {
    pub items: Vec<ReportItem>,
}

fn item(report: ReportRow) -> ReportItem {
    ReportItem {
        html_url: format!("/api/v1/reports/{}.html", report.id),
        pdf_url: format!("/api/v1/reports/{}.pdf", report.id),
        report,
    }
}

/// The formats asked for, checked; both when none is named.
fn formats(v: &[String]) -> Result<String, ApiError> {
    if v.is_empty() {
        return Ok(FORMATS.join(","));
    }
    let mut out: Vec<&str> = Vec::new();
    for (i, f) in v.iter().enumerate() {
        let Some(known) = FORMATS.iter().find(|k| **k == f.trim()) else {
            return Err(ApiError::invalid_body(format!(
                "formats[{i}]: {f:?} is not html or pdf"
            )));
        };
        if !out.contains(known) {
            out.push(known);
        }
    }
    out.sort_unstable();
    Ok(out.join(","))
}

/// A schedule body checked whole: the refusal names the field and the bad value.
pub fn check_schedule(body: &ScheduleBody) -> Result<(String, Cron, String, String), ApiError> {
    let name = text_field("name", &body.name, 1, 100)?;
    let cron = Cron::parse(&body.cron).map_err(|e| ApiError::invalid_body(format!("cron: {e}")))?;
    let range = body.range.trim();
    if !["daily", "weekly", "monthly"].contains(&range) {
        return Err(ApiError::invalid_body(format!(
            "range: {range:?} is not daily, weekly or monthly (custom ranges are for reports made now)"
        )));
    }
    Ok((name, cron, range.to_string(), formats(&body.formats)?))
}

pub async fn create_schedule(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    body: ScheduleBody,
) -> Result<ReportSchedule, ApiError> {
    p.require(project_id, Role::Operator)?;
    let (name, cron, range, formats) = check_schedule(&body)?;
    let next_run = cron
        .next_after(now())
        .ok_or_else(|| ApiError::invalid_body("cron: never runs"))?;
    let s = state
        .store
        .create_schedule(&NewSchedule {
            project_id: project_id.to_string(),
            name,
            cron: body.cron.split_whitespace().collect::<Vec<_>>().join(" "),
            range_kind: range,
            formats,
            enabled: body.enabled,
            next_run,
            created_by: p.username.clone(),
        })
        .await?;
    audit(
        state,
        p,
        project_id,
        "reports.schedule_create",
        &s.id,
        &format!("{} {} {}", s.name, s.cron, s.range_kind),
    )
    .await;
    Ok(s)
}

pub async fn schedules(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<ScheduleList, ApiError> {
    let scope = fleet_scope(state, p, project).await?;
    Ok(ScheduleList {
        items: state.store.schedules(&scope).await?,
    })
}

pub async fn delete_schedule(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let s = state.store.schedule(id).await?;
    p.require_on("report schedule", &s.project_id, Role::Operator)?;
    state.store.delete_schedule(id).await?;
    audit(
        state,
        p,
        &s.project_id,
        "reports.schedule_delete",
        id,
        &s.name,
    )
    .await;
    Ok(())
}

/// The range a body asks for, checked.
pub fn range_of(body: &GenerateBody, at: i64) -> Result<(String, Range), ApiError> {
    let kind = body.range.trim();
    let range = match kind {
        "custom" => {
            let (Some(from), Some(to)) = (body.from.as_deref(), body.to.as_deref()) else {
                return Err(ApiError::invalid_body(
                    "from: a custom range needs from and to (YYYY-MM-DD)",
                ));
            };
            content::custom(from, to)
        }
        _ => content::last_period(kind, at),
    }
    .map_err(ApiError::invalid_body)?;
    Ok((kind.to_string(), range))
}

/// Makes a report now and stores it.
pub async fn generate(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    body: GenerateBody,
) -> Result<ReportItem, ApiError> {
    p.require(project_id, Role::Operator)?;
    let (kind, range) = range_of(&body, now())?;
    let formats = formats(&body.formats)?;
    let c = content::gather(state, project_id, &kind, range).await?;
    let report = state
        .store
        .create_report(&NewReport {
            project_id: project_id.to_string(),
            schedule_id: None,
            range_kind: kind,
            range_from: range.from,
            range_to: range.to,
            formats,
            content: serde_json::to_string(&c).map_err(ApiError::internal)?,
            created_by: p.username.clone(),
        })
        .await?;
    audit(
        state,
        p,
        project_id,
        "reports.generate",
        &report.id,
        &c.title(),
    )
    .await;
    Ok(item(report))
}

pub async fn reports(
    state: &AppState,
    p: &Principal,
    project: Option<&str>,
) -> Result<ReportList, ApiError> {
    let scope = fleet_scope(state, p, project).await?;
    Ok(ReportList {
        items: state
            .store
            .reports(&scope, LIST_LIMIT)
            .await?
            .into_iter()
            .map(item)
            .collect(),
    })
}

/// A report's row and content, for a caller who may see it.
pub async fn report(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> Result<(ReportRow, Content), ApiError> {
    let row = state.store.report(id).await?;
    p.require_on("report", &row.project_id, Role::Viewer)?;
    let c = stored_content(state, &row).await?;
    Ok((row, c))
}

/// The content stored with a report (no authorization: the job and `report` use it).
pub(crate) async fn stored_content(state: &AppState, row: &ReportRow) -> Result<Content, ApiError> {
    let text = state.store.report_content(&row.id).await?;
    serde_json::from_str(&text).map_err(ApiError::internal)
}

/// The rendered report: (file name, MIME type, bytes).
pub fn rendered(c: &Content, format: &str) -> Result<(String, &'static str, Vec<u8>), ApiError> {
    match format {
        "pdf" => Ok((c.file_name("pdf"), "application/pdf", pdf::render(c))),
        "html" => Ok((
            c.file_name("html"),
            "text/html; charset=utf-8",
            html::render(c).map_err(ApiError::internal)?.into_bytes(),
        )),
        _ => Err(ApiError::not_found("report")),
    }
}

/// Only the report's own inline styles: no script, nothing fetched.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// A report as a download; HTML also opens in the browser.
pub fn download_response(name: &str, mime: &'static str, bytes: Vec<u8>) -> Response {
    let disposition = if mime == "application/pdf" {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("inline; filename=\"{name}\"")
    };
    let mut res = (
        [(header::CONTENT_TYPE, mime)],
        [(header::CONTENT_DISPOSITION, disposition)],
        bytes,
    )
        .into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(REPORT_CSP),
    );
    res
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/report-schedules", tag = "reports", params(("id" = String, Path)),
    responses((status = 200, body = ScheduleList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn schedules_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ScheduleList>, ApiError> {
    p.require(&id, Role::Viewer)?;
    Ok(Json(schedules(&state, &p, Some(&id)).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/report-schedules", tag = "reports", params(("id" = String, Path)),
    request_body = ScheduleBody,
    responses((status = 201, body = ReportSchedule), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn create_schedule_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<(StatusCode, Json<ReportSchedule>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_schedule(&state, &p, &id, body).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/report-schedules/{id}", tag = "reports", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn delete_schedule_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_schedule(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/reports", tag = "reports", params(("id" = String, Path)),
    responses((status = 200, body = ReportList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn reports_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ReportList>, ApiError> {
    p.require(&id, Role::Viewer)?;
    Ok(Json(reports(&state, &p, Some(&id)).await?))
}

#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(ProjectQuery),
    responses((status = 200, body = ReportList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn all_reports_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<ReportList>, ApiError> {
    Ok(Json(reports(&state, &p, q.project.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/reports", tag = "reports", params(("id" = String, Path)),
    request_body = GenerateBody,
    responses((status = 201, body = ReportItem), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn generate_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GenerateBody>,
) -> Result<(StatusCode, Json<ReportItem>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(generate(&state, &p, &id, body).await?),
    ))
}

/// `{id}.pdf` or `{id}.html`.
#[utoipa::path(get, path = "/api/v1/reports/{file}", tag = "reports",
    params(("file" = String, Path, description = "the report's id with .pdf or .html")),
    responses((status = 200, description = "the report as PDF or HTML", content_type = "application/pdf"),
        (status = 404, body = crate::api::ErrorBody)))]
pub async fn download_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let Some((id, format)) = file.rsplit_once('.') else {
        return Err(ApiError::not_found("report"));
    };
    if !FORMATS.contains(&format) {
        return Err(ApiError::not_found("report"));
    }
    let (_, c) = report(&state, &p, id).await?;
    let (name, mime, bytes) = rendered(&c, format)?;
    Ok(download_response(&name, mime, bytes))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/report-schedules",
            get(schedules_handler).post(create_schedule_handler),
        )
        .route(
            "/api/v1/report-schedules/{id}",
            delete(delete_schedule_handler),
        )
        .route(
            "/api/v1/projects/{id}/reports",
            get(reports_handler).post(generate_handler),
        )
        .route("/api/v1/reports", get(all_reports_handler))
        .route("/api/v1/reports/{file}", get(download_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    schedules_handler,
    create_schedule_handler,
    delete_schedule_handler,
    reports_handler,
    all_reports_handler,
    generate_handler,
    download_handler
))]
struct Doc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
