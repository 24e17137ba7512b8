//! Projects the caller belongs to.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use crate::AppState;
use crate::auth::{Principal, Role};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ProjectInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// The caller's role there.
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ProjectList {
    pub items: Vec<ProjectInfo>,
}

/// Sorted by name.
pub async fn list(state: &AppState, p: &Principal) -> Result<ProjectList, ApiError> {
    let items = state
        .store
        .list_projects()
        .await?
        .into_iter()
        .filter_map(|pr| {
            p.role_in(&pr.id).map(|role| ProjectInfo {
                id: pr.id,
                name: pr.name,
                created_at: pr.created_at,
                role,
            })
        })
        .collect();
    Ok(ProjectList { items })
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", responses((status = 200, body = ProjectList), (status = 401, body = super::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<ProjectList>, ApiError> {
    Ok(Json(list(&state, &p).await?))
}
