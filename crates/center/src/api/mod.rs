//! REST API under /api/v1. (Being written.)
use crate::AppState;
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
}
