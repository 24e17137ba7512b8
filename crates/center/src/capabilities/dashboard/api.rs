//! `GET /api/v1/projects/{id}/score`: the project's security score with every deduction.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use hostward_proto::risk::RiskPolicy;

use super::score::{self, BySeverity, Inputs, Score};
use crate::AppState;
use crate::api::ApiError;
use crate::auth::{Principal, Role};
use hostward_store::now;

/// "In the past month", as the reference's deductions count it.
const MONTH_SECS: i64 = 30 * 24 * 3600;

fn severities(m: &std::collections::HashMap<String, i64>) -> BySeverity {
    let n = |k: &str| m.get(k).copied().unwrap_or(0);
    [n("critical"), n("high"), n("medium"), n("low")]
}

pub async fn project_score(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<Score, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let c = state.store.score_counts(project_id).await?;
    let (risk, _) = state.store.policy::<RiskPolicy>(project_id).await?;
    let recent = |t: Option<i64>| t.is_some_and(|t| now() - t <= MONTH_SECS);
    Ok(score::score(&Inputs {
        servers: c.servers,
        unprotected: c.unprotected,
        vulns: severities(&c.vulns),
        vuln_scanned_recently: recent(c.last_vuln_match),
        baseline_failed: severities(&c.baseline_failed),
        baseline_checked_recently: recent(c.last_baseline),
        weak_passwords: c.weak_passwords,
        weak_password_scan_on: risk.daily_scan,
        alarms: severities(&c.alarms),
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/score", tag = "dashboard", params(("id" = String, Path)),
    responses((status = 200, body = Score), (status = 404, body = crate::api::ErrorBody)))]
pub async fn score_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Score>, ApiError> {
    Ok(Json(project_score(&state, &p, &id).await?))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects/{id}/score", get(score_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(score_handler))]
struct Doc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
