//! The fleet's handling log, one list for everything people (and the center) handled:
//! vulnerability findings, alarms, baseline results, and scan and fix tasks.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiQuery, fleet_scope};
use crate::AppState;
use crate::auth::Principal;
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{HANDLING_KINDS, HandlingLogEntry, HandlingLogFilter};

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Project id (default: every project you can see).
    pub project: Option<String>,
    /// vulnerability, alarm, baseline or scan.
    pub kind: Option<String>,
    /// Who: a user name, or `system`.
    pub actor: Option<String>,
    /// Unix seconds: entries at or after.
    pub since: Option<i64>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HandlingLogEntry>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

pub async fn history(
    state: &AppState,
    p: &Principal,
    q: &HistoryQuery,
) -> Result<HistoryPage, ApiError> {
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) if HANDLING_KINDS.contains(&k) => Some(k.to_string()),
        Some(k) => {
            return Err(ApiError::invalid_query(format!(
                "kind: {k:?} is not one of {}",
                HANDLING_KINDS.join(", ")
            )));
        }
    };
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let f = HandlingLogFilter {
        projects: fleet_scope(state, p, q.project.as_deref()).await?,
        kind,
        actor: q.actor.clone().filter(|a| !a.is_empty()),
        since: q.since,
        page,
        per_page,
    };
    let (items, total) = state.store.handling_log(&f).await?;
    Ok(HistoryPage {
        items,
        total,
        page,
        per_page,
    })
}

#[utoipa::path(get, path = "/api/v1/history", tag = "history", params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = super::ErrorBody)))]
pub async fn handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let page = history(&state, &p, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|e| {
                vec![
                    e.entry.ts.to_string(),
                    e.kind.clone(),
                    e.object.clone(),
                    e.server_name.clone(),
                    e.entry.actor.clone(),
                    e.entry.action.clone(),
                    e.entry.from_state.clone(),
                    e.entry.to_state.clone(),
                    e.entry.note.clone(),
                ]
            })
            .collect();
        return Ok(csv_response(
            "history.csv",
            &[
                "ts",
                "kind",
                "object",
                "server",
                "actor",
                "action",
                "from_state",
                "to_state",
                "note",
            ],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}
