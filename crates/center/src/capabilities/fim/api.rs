//! The file integrity policy of a project (important files, monitored directories; pushed to
//! the agents as the `fim` config section) and the file changes the agents report, with
//! filters, paging and a CSV export.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hostward_proto::fim::{FimPolicy, MAX_REPORTED_PATH, Operation};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, fleet_scope};
use crate::auth::{Principal, Role};
use crate::capabilities::{project_policy, set_project_policy};
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{FileChangeFilter, FileChangeRow, FileStateRow};

/// Longest policy kept in an audit entry's detail; a longer one is cut (1,000 important files
/// of 256 bytes would be a quarter of a megabyte).

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FimPolicyBody {
    #[schema(value_type = Object)]
    pub policy: FimPolicy,
    pub version: i64,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileChangeQuery {
    pub project: Option<String>,
    /// One server's changes.
    pub server: Option<String>,
    /// Substring of the path, case-insensitive.
    pub path: Option<String>,
    /// create, delete, move, modify, attributes.
    pub op: Option<String>,
    /// `true`: changes of important files only; `false`: the others.
    pub important: Option<String>,
    /// realtime or scan.
    pub source: Option<String>,
    /// Unix seconds: changes seen at or after.
    pub since: Option<i64>,
    /// Unix seconds: changes seen at or before.
    pub until: Option<i64>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileChangePage {
    pub items: Vec<FileChangeRow>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The operations as the API spells them.
pub fn operations() -> Vec<&'static str> {
    Operation::ALL.iter().map(|o| o.as_str()).collect()
}

/// The sources as the API spells them ([`hostward_proto::fim::ChangeSource::as_str`]).
pub const SOURCES: &[&str] = &["realtime", "scan"];

// ---------------------------------------------------------------------------------------------
// Operations

pub async fn fim_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<FimPolicyBody, ApiError> {
    let (policy, version) = project_policy(state, p, project_id).await?;
    Ok(FimPolicyBody { policy, version })
}

/// Replaces a project's file integrity policy (admin) and pushes it to its agents. A policy
/// that does not validate is refused whole naming the field and index
/// (`directories[1].path: … overlaps directories[0]`).
pub async fn set_fim_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: FimPolicy,
) -> Result<FimPolicyBody, ApiError> {
    let version = set_project_policy(state, p, project_id, &policy, FimPolicy::validate).await?;
    Ok(FimPolicyBody { policy, version })
}

fn one_of(field: &str, v: Option<&str>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if allowed.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(ApiError::invalid_query(format!(
            "{field}: {s:?} is not one of {}",
            allowed.join(", ")
        ))),
    }
}

fn important_param(v: Option<&str>) -> Result<Option<bool>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(s) => Err(ApiError::invalid_query(format!(
            "important: {s:?} is not true or false"
        ))),
    }
}

fn path_param(v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.len() > MAX_REPORTED_PATH => Err(ApiError::invalid_query(format!(
            "path: longer than {MAX_REPORTED_PATH} bytes"
        ))),
        Some(s) if s.chars().any(char::is_control) => Err(ApiError::invalid_query(
            "path: must not contain control characters",
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// File changes of the caller's projects (or of one project or server), newest first.
pub async fn file_changes(
    state: &AppState,
    p: &Principal,
    q: &FileChangeQuery,
) -> Result<FileChangePage, ApiError> {
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let mut f = FileChangeFilter {
        path: path_param(q.path.as_deref())?,
        op: one_of("op", q.op.as_deref(), &operations())?,
        important: important_param(q.important.as_deref())?,
        source: one_of("source", q.source.as_deref(), SOURCES)?,
        since: q.since,
        until: q.until,
        page,
        per_page,
        ..Default::default()
    };
    match q.server.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => f.server_id = Some(visible_server(state, p, id, Role::Viewer).await?.id),
        None => f.projects = fleet_scope(state, p, q.project.as_deref()).await?,
    }
    let (items, total) = state.store.file_changes(&f).await?;
    Ok(FileChangePage {
        items,
        total,
        page,
        per_page,
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers

#[utoipa::path(get, path = "/api/v1/projects/{id}/fim-policy", tag = "fim", params(("id" = String, Path)),
    responses((status = 200, body = FimPolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<FimPolicyBody>, ApiError> {
    Ok(Json(fim_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/fim-policy", tag = "fim", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = FimPolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<FimPolicy>,
) -> Result<Json<FimPolicyBody>, ApiError> {
    Ok(Json(set_fim_policy(&state, &p, &id, policy).await?))
}

/// A state's CSV cells: kind, size, octal mode, uid:gid, hash (empty without a state).
fn state_cells(s: &Option<FileStateRow>) -> [String; 5] {
    match s {
        None => Default::default(),
        Some(s) => [
            s.kind.clone(),
            s.size.to_string(),
            format!("{:04o}", s.mode & 0o7777),
            format!("{}:{}", s.uid, s.gid),
            s.hash.clone().unwrap_or_default(),
        ],
    }
}

#[utoipa::path(get, path = "/api/v1/file-changes", tag = "fim", params(FileChangeQuery),
    responses((status = 200, body = FileChangePage), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<FileChangeQuery>,
) -> Result<Response, ApiError> {
    let page = file_changes(&state, &p, &q).await?;
    if !is_csv(q.format.as_deref())? {
        return Ok(Json(page).into_response());
    }
    let rows = page
        .items
        .iter()
        .map(|c| {
            let proc = c.process.as_ref();
            let mut row = vec![
                c.ts.to_string(),
                c.server_name.clone(),
                c.op.clone(),
                c.path.clone(),
                c.from.clone().unwrap_or_default(),
                c.important.to_string(),
                c.source.clone(),
            ];
            row.extend(state_cells(&c.old));
            row.extend(state_cells(&c.new));
            row.extend([
                proc.map(|p| p.pid.to_string()).unwrap_or_default(),
                proc.map(|p| p.exe.clone()).unwrap_or_default(),
                proc.map(|p| p.cmdline.clone()).unwrap_or_default(),
                proc.map(|p| p.user.clone()).unwrap_or_default(),
            ]);
            row
        })
        .collect();
    Ok(csv_response(
        "file_changes.csv",
        &[
            "ts",
            "server",
            "op",
            "path",
            "from",
            "important",
            "source",
            "old_kind",
            "old_size",
            "old_mode",
            "old_owner",
            "old_hash",
            "new_kind",
            "new_size",
            "new_mode",
            "new_owner",
            "new_hash",
            "pid",
            "exe",
            "cmdline",
            "user",
        ],
        rows,
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of file integrity monitoring, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/fim-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/file-changes", get(list_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(policy_handler, set_policy_handler, list_handler))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::fim::ChangeSource;

    #[test]
    fn sources_are_the_protocol_s() {
        let wire: Vec<&str> = [ChangeSource::Realtime, ChangeSource::Scan]
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(SOURCES, wire);
    }
}
