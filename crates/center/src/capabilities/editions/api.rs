//! Editions and quotas: `GET/PUT /api/v1/projects/{id}/editions` (the default edition, each
//! edition's quota and use, the feature matrix), `PUT /api/v1/servers/{id}/edition` (bind,
//! switch or unbind, only while the agent is online: its modules follow at the next config
//! frame, which is pushed at once) and `GET /api/v1/projects/{id}/usage` (protected time per
//! server and day, JSON or CSV).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use hostward_proto::{Edition, Feature};
use hostward_store::{ProjectEditions, Server, UsageRow, now, status, utc_day};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit};
use crate::auth::{Principal, Role};
use crate::web::paging::{csv_response, is_csv};

/// Largest quota accepted: a cap, not a count of anything real.
pub const MAX_QUOTA: i64 = 1_000_000;
/// Longest usage range one request reads, days.
pub const MAX_USAGE_DAYS: i64 = 366;

/// One edition of the matrix: what it includes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EditionFeatures {
    pub edition: String,
    pub label: String,
    /// Feature codes (`blocking`, `ransomware`, …).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EditionsBody {
    #[serde(flatten)]
    pub editions: ProjectEditions,
    pub matrix: Vec<EditionFeatures>,
}

/// The feature matrix, cheapest edition first.
pub fn matrix() -> Vec<EditionFeatures> {
    Edition::ALL
        .iter()
        .map(|e| EditionFeatures {
            edition: e.as_str().into(),
            label: e.label().into(),
            features: e.features().iter().map(|f| f.as_str().into()).collect(),
        })
        .collect()
}

/// A change of a project's editions: the default for new servers, and quotas by edition
/// (`null` lifts a cap). What is left out stays as it is.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEditions {
    pub default_edition: Option<String>,
    #[serde(default)]
    pub quotas: BTreeMap<String, Option<i64>>,
}

/// `edition: null` unbinds: protection off, the quota free.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindEdition {
    pub edition: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// First UTC day, `YYYY-MM-DD` (default: 30 days before `to`).
    pub from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD` (default: today).
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

fn edition(field: &str, s: &str) -> Result<Edition, ApiError> {
    Edition::parse(s).map_err(|e| ApiError::invalid_body(format!("{field}: {e}")))
}

pub async fn project_editions(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<EditionsBody, ApiError> {
    p.require(project_id, Role::Viewer)?;
    Ok(EditionsBody {
        editions: state.store.project_editions(project_id).await?,
        matrix: matrix(),
    })
}

/// Sets the default edition and quotas (admin). Everything is checked before anything is
/// written; a cap below the servers using an edition is refused (409) naming them.
pub async fn set_editions(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    input: SetEditions,
) -> Result<EditionsBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    let default = input
        .default_edition
        .as_deref()
        .map(|s| edition("default_edition", s))
        .transpose()?;
    let mut quotas = Vec::new();
    for (name, total) in &input.quotas {
        let e = edition(&format!("quotas.{name}"), name)?;
        if let Some(t) = total
            && !(0..=MAX_QUOTA).contains(t)
        {
            return Err(ApiError::invalid_body(format!(
                "quotas.{name}: must be between 0 and {MAX_QUOTA}, or null for no cap"
            )));
        }
        quotas.push((e, *total));
    }
    for (e, total) in &quotas {
        state.store.set_quota(project_id, *e, *total).await?;
    }
    if let Some(e) = default {
        state.store.set_default_edition(project_id, e).await?;
    }
    let detail = serde_json::json!({
        "default_edition": default.map(|e| e.as_str()),
        "quotas": input.quotas,
    });
    audit(
        state,
        p,
        project_id,
        "editions.set",
        project_id,
        &detail.to_string(),
    )
    .await;
    project_editions(state, p, project_id).await
}

/// Binds, switches or unbinds a server's edition (admin), only while its agent is online (as
/// the reference product: a switch must reach the agent to mean anything). The agent gets its
/// new config at once: modules the new edition has start, the others stop.
pub async fn bind(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    input: BindEdition,
) -> Result<Server, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Admin).await?;
    let wanted = input
        .edition
        .as_deref()
        .map(|s| edition("edition", s))
        .transpose()?;
    if srv.agent_status != status::ONLINE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_offline",
            format!(
                "the agent of {} is {} ({}): editions are bound, switched and unbound only while it is online",
                srv.name,
                srv.agent_status,
                if srv.agent_reason.is_empty() {
                    "no reason given"
                } else {
                    srv.agent_reason.as_str()
                }
            ),
        ));
    }
    let from = srv.edition.clone();
    let srv = state.store.bind_edition(&srv.id, wanted).await?;
    state.gateway.config_changed(&srv.id);
    let to = wanted.map_or("none", |e| e.as_str());
    let detail = format!("{} -> {to}", if from.is_empty() { "none" } else { &from });
    audit(
        state,
        p,
        &srv.project_id,
        "server.edition",
        &srv.id,
        &detail,
    )
    .await;
    Ok(srv)
}

/// A `YYYY-MM-DD` day, checked by reading it back.
fn day(field: &str, s: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid_query(format!("{field}: {s:?} is not a day as YYYY-MM-DD"));
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) else {
        return Err(bad());
    };
    if y.to_string().len() != 4 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm), then back: 2026-02-30 differs.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let t = (era * 146_097 + doe - 719_468) * 86_400;
    if utc_day(t) != s {
        return Err(bad());
    }
    Ok(t)
}

/// Protected time of a project's servers by day (viewer).
pub async fn usage(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    q: &UsageQuery,
) -> Result<Vec<UsageRow>, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let to = match q.to.as_deref() {
        Some(s) => day("to", s)?,
        None => now().div_euclid(86_400) * 86_400,
    };
    let from = match q.from.as_deref() {
        Some(s) => day("from", s)?,
        None => to - 30 * 86_400,
    };
    if from > to {
        return Err(ApiError::invalid_query("from: after to"));
    }
    if (to - from) / 86_400 >= MAX_USAGE_DAYS {
        return Err(ApiError::invalid_query(format!(
            "from: at most {MAX_USAGE_DAYS} days per request"
        )));
    }
    Ok(state
        .store
        .usage(&[project_id.to_string()], &utc_day(from), &utc_day(to))
        .await?)
}

/// Whether `server`'s edition includes `f` (a server with none has nothing).
pub fn has(server: &Server, f: Feature) -> bool {
    server.edition().is_some_and(|e| e.has(f))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/editions", tag = "editions", params(("id" = String, Path)),
    responses((status = 200, body = EditionsBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<EditionsBody>, ApiError> {
    Ok(Json(project_editions(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/editions", tag = "editions", params(("id" = String, Path)),
    request_body = SetEditions,
    responses((status = 200, body = EditionsBody), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody),
        (status = 409, body = crate::api::ErrorBody)))]
pub async fn put_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetEditions>,
) -> Result<Json<EditionsBody>, ApiError> {
    Ok(Json(set_editions(&state, &p, &id, input).await?))
}

#[utoipa::path(put, path = "/api/v1/servers/{id}/edition", tag = "editions", params(("id" = String, Path)),
    request_body = BindEdition,
    responses((status = 200, body = Object), (status = 400, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "the agent is not online, or the edition's quota is used up", body = crate::api::ErrorBody)))]
pub async fn bind_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<BindEdition>,
) -> Result<Json<Server>, ApiError> {
    Ok(Json(bind(&state, &p, &id, input).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/usage", tag = "editions",
    params(("id" = String, Path), UsageQuery),
    responses((status = 200, body = [UsageRow], description = "JSON, or CSV with format=csv"),
        (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn usage_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let csv = is_csv(q.format.as_deref())?;
    let rows = usage(&state, &p, &id, &q).await?;
    if !csv {
        return Ok(Json(rows).into_response());
    }
    let rows = rows
        .into_iter()
        .map(|r| {
            vec![
                r.day,
                r.server_id,
                r.server_name,
                r.edition.as_str().to_string(),
                r.seconds.to_string(),
                format!("{:.2}", r.seconds as f64 / 3600.0),
            ]
        })
        .collect();
    Ok(csv_response(
        "protected-time.csv",
        &[
            "day",
            "server_id",
            "server_name",
            "edition",
            "seconds",
            "hours",
        ],
        rows,
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/editions",
            get(get_handler).put(put_handler),
        )
        .route("/api/v1/servers/{id}/edition", put(bind_handler))
        .route("/api/v1/projects/{id}/usage", get(usage_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(get_handler, put_handler, bind_handler, usage_handler))]
struct Doc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
