//! The dashboard, the console's landing page: the security score of a project and of each
//! server (score.rs, pure, with the reference product's categories and deductions) from the
//! counts the store keeps, what costs the most points, the 7-day trend from the daily
//! snapshots the job here writes, the protection overview, urgent alarms and top
//! vulnerabilities (api.rs, console.rs).

pub mod api;
pub(crate) mod console;
pub mod score;

#[cfg(test)]
mod console_tests;

use std::time::Duration;

use super::{Capability, NavEntry};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "dashboard",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "dashboard",
        label: "Dashboard",
        href: "/dashboard",
    }),
    server_tabs: &[],
    tab_counts: None,
    jobs,
    config: None,
    tasks: &[],
    wake: None,
    policies: &[],
};

/// How often today's snapshot of every project is rewritten: the day's last write stands, so
/// a day's point is at most this old at midnight.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(3600);

/// Writes today's snapshot of every project, at start and then hourly. Every replica does: a
/// snapshot is an upsert of the same figures, so two writers agree.
fn jobs(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = api::snapshot_all(&state).await {
                tracing::error!(code = %e.code, message = %e.message, "writing the dashboard's daily snapshots failed");
            }
        }
    });
}
