//! The dashboard's API: `GET /api/v1/projects/{id}/score` (the project's security score with
//! every deduction), `GET /api/v1/servers/{id}/score` (one server's, from the same table) and
//! `GET /api/v1/projects/{id}/dashboard` (the score, what costs the most, the 7-day trend, the
//! protection overview, urgent alarms and top vulnerabilities in one answer).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use hostward_proto::risk::RiskPolicy;
use serde::Serialize;
use utoipa::ToSchema;

use super::score::{self, BySeverity, Inputs, Score};
use crate::AppState;
use crate::api::ApiError;
use crate::auth::{Principal, Role};
use hostward_store::{
    ProtectionOverview, ScoreCounts, Snapshot, TopVuln, UrgentAlarm, day_of, now,
};

/// "In the past month", as the reference's deductions count it.
const MONTH_SECS: i64 = 30 * 24 * 3600;
/// The trend's length, today included.
pub const TREND_DAYS: i64 = 7;
/// Urgent alarms and top vulnerabilities shown.
const TOP: i64 = 10;
/// Servers whose own score the dashboard computes (the first registered), listed lowest first.
const SERVER_SCORES: usize = 50;

fn severities(m: &std::collections::HashMap<String, i64>) -> BySeverity {
    let n = |k: &str| m.get(k).copied().unwrap_or(0);
    [n("critical"), n("high"), n("medium"), n("low")]
}

/// The score's inputs from the store's counts and the project's risk policy.
fn inputs(c: &ScoreCounts, risk: &RiskPolicy, at: i64) -> Inputs {
    let recent = |t: Option<i64>| t.is_some_and(|t| at - t <= MONTH_SECS);
    Inputs {
        servers: c.servers,
        unprotected: c.unprotected,
        vulns: severities(&c.vulns),
        vuln_scanned_recently: recent(c.last_vuln_match),
        baseline_failed: severities(&c.baseline_failed),
        baseline_checked_recently: recent(c.last_baseline),
        weak_passwords: c.weak_passwords,
        weak_password_scan_on: risk.daily_scan,
        alarms: severities(&c.alarms),
    }
}

/// The project's score and the counts it came from, unchecked (jobs and reports use it; the
/// operations below check the caller first).
pub(crate) async fn score_now(
    state: &AppState,
    project_id: &str,
) -> Result<(Score, Snapshot), ApiError> {
    let c = state.store.score_counts(project_id).await?;
    let (risk, _) = state.store.policy::<RiskPolicy>(project_id).await?;
    let at = now();
    let s = score::score(&inputs(&c, &risk, at));
    let sum = |m: &std::collections::HashMap<String, i64>| m.values().sum::<i64>();
    let snap = Snapshot {
        day: day_of(at),
        score: s.score,
        vulns: sum(&c.vulns),
        baseline_failed: sum(&c.baseline_failed),
        alarms: sum(&c.alarms),
        weak_passwords: c.weak_passwords,
        unprotected: c.unprotected,
        servers: c.servers,
        taken_at: at,
    };
    Ok((s, snap))
}

pub async fn project_score(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<Score, ApiError> {
    p.require(project_id, Role::Viewer)?;
    Ok(score_now(state, project_id).await?.0)
}

/// One server's score: the same table over its own counts (the project-wide "no server
/// protected" deduction then means this server).
pub async fn server_score(
    state: &AppState,
    p: &Principal,
    server_id: &str,
) -> Result<Score, ApiError> {
    let srv = crate::api::servers::visible_server(state, p, server_id, Role::Viewer).await?;
    let c = state.store.server_score_counts(&srv.id).await?;
    let (risk, _) = state.store.policy::<RiskPolicy>(&srv.project_id).await?;
    Ok(score::score(&inputs(&c, &risk, now())))
}

/// A day of the trend: its snapshot, or none ("no data": nothing is made up for it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Computed now rather than read from a snapshot (today).
    pub live: bool,
    pub snapshot: Option<Snapshot>,
}

/// One server's score, for the list of the lowest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerScore {
    pub id: String,
    pub name: String,
    pub score: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dashboard {
    pub project_id: String,
    pub score: Score,
    /// Every deduction, the most points lost first (its share of the capped category).
    pub costs_most: Vec<score::Cost>,
    /// The past seven days, oldest first, today last (live).
    pub trend: Vec<TrendDay>,
    pub overview: ProtectionOverview,
    /// Unhandled critical and high alarms, newest first, at most 10.
    pub urgent_alarms: Vec<UrgentAlarm>,
    /// Unhandled vulnerabilities by severity, CVSS and servers affected, at most 10.
    pub top_vulns: Vec<TopVuln>,
    /// Server scores, lowest first, of the first 50 servers registered.
    pub server_scores: Vec<ServerScore>,
    /// Servers beyond the 50 whose score is not listed.
    pub server_scores_left_out: i64,
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn date_of_day(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| day.to_string())
}

/// The seven days ending today from the stored snapshots and today's live figures.
pub(crate) fn trend(stored: &[Snapshot], today: &Snapshot) -> Vec<TrendDay> {
    (today.day - TREND_DAYS + 1..=today.day)
        .map(|day| {
            let live = day == today.day;
            TrendDay {
                date: date_of_day(day),
                live,
                snapshot: if live {
                    Some(today.clone())
                } else {
                    stored.iter().find(|s| s.day == day).cloned()
                },
            }
        })
        .collect()
}

pub async fn dashboard(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<Dashboard, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (score, today) = score_now(state, project_id).await?;
    let stored = state
        .store
        .snapshots(project_id, today.day - TREND_DAYS + 1, today.day - 1)
        .await?;
    let overview = state.store.protection_overview(project_id).await?;
    let ids = state.store.server_ids_in(&[project_id.to_string()]).await?;
    let (risk, _) = state.store.policy::<RiskPolicy>(project_id).await?;
    let mut servers = Vec::new();
    for (_, id) in ids.iter().take(SERVER_SCORES) {
        let Some(srv) = state.store.server(id).await? else {
            continue;
        };
        let c = state.store.server_score_counts(id).await?;
        servers.push(ServerScore {
            id: srv.id,
            name: srv.name,
            score: score::score(&inputs(&c, &risk, today.taken_at)).score,
        });
    }
    servers.sort_by(|a, b| a.score.cmp(&b.score).then_with(|| a.name.cmp(&b.name)));
    Ok(Dashboard {
        project_id: project_id.to_string(),
        costs_most: score::costs(&score),
        trend: trend(&stored, &today),
        overview,
        urgent_alarms: state.store.urgent_alarms(project_id, TOP).await?,
        top_vulns: state.store.top_vulns(project_id, TOP).await?,
        server_scores_left_out: (ids.len().saturating_sub(SERVER_SCORES)) as i64,
        server_scores: servers,
        score,
    })
}

/// Writes today's snapshot of every project (the dashboard job, hourly: the day's last write
/// stands). Returns how many were written.
pub(crate) async fn snapshot_all(state: &AppState) -> Result<usize, ApiError> {
    let mut n = 0;
    for project in state.store.list_projects().await? {
        let (_, snap) = score_now(state, &project.id).await?;
        state.store.put_snapshot(&project.id, &snap).await?;
        n += 1;
    }
    Ok(n)
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

#[utoipa::path(get, path = "/api/v1/servers/{id}/score", tag = "dashboard", params(("id" = String, Path)),
    responses((status = 200, body = Score), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_score_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Score>, ApiError> {
    Ok(Json(server_score(&state, &p, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/dashboard", tag = "dashboard", params(("id" = String, Path)),
    responses((status = 200, body = Dashboard), (status = 404, body = crate::api::ErrorBody)))]
pub async fn dashboard_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Dashboard>, ApiError> {
    Ok(Json(dashboard(&state, &p, &id).await?))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{id}/score", get(score_handler))
        .route("/api/v1/servers/{id}/score", get(server_score_handler))
        .route("/api/v1/projects/{id}/dashboard", get(dashboard_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(score_handler, server_score_handler, dashboard_handler))]
struct Doc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
