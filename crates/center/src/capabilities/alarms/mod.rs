//! Intrusion alarms and brute-force defence: alarms aggregated per server, type and key with
//! their handling, the alarm whitelist, firewall blocks as agents report them, the project's
//! brute-force policy, and each server's usual login addresses (`login_ips_*`).

pub mod api;
pub(crate) mod console;
pub mod login_ips_api;
pub(crate) mod login_ips_console;

#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod login_ips_console_tests;

use std::time::Duration;

use axum::Router;

use super::{Capability, NavEntry, ServerTab};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "alarms",
    api: || api::router().merge(login_ips_api::router()),
    openapi: || {
        let mut doc = api::openapi();
        doc.merge(login_ips_api::openapi());
        doc
    },
    console: || {
        Router::new()
            .merge(console::router())
            .merge(login_ips_console::router())
    },
    nav: Some(NavEntry {
        id: "alarms",
        label: "Alarms",
        href: "/alarms",
    }),
    server_tabs: &[ServerTab {
        id: "login-ips",
        label: "Login addresses",
        path: "login-ips",
    }],
    tab_counts: None,
    jobs,
};

/// Deletes alarms `--alarm-retention-days` after their last occurrence, every five minutes.
fn jobs(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            match state
                .store
                .expire_alarms(state.config.alarm_retention_days)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired old alarms"),
                Err(e) => tracing::error!(error = %e, "expiring old alarms failed"),
            }
        }
    });
}
