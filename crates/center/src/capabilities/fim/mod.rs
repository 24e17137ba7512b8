//! File integrity monitoring: the project's policy (important files, monitored directories;
//! pushed to agents as the `fim` config section), the file changes the agents report (the
//! "Files" area and each server's "File changes" tab) and their retention. Important-file
//! changes are also `important_file_change` alarms, which the alarms capability shows.

pub mod api;
pub(crate) mod console;
pub(crate) mod policy_console;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use std::time::Duration;

use axum::Router;
use futures_util::FutureExt as _;
use hostward_proto::fim::FimPolicy;

use super::{Capability, NavEntry, ServerTab};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "fim",
    api: api::router,
    openapi: api::openapi,
    console: || {
        Router::new()
            .merge(console::router())
            .merge(policy_console::router())
    },
    nav: Some(NavEntry {
        id: "files",
        label: "Files",
        href: "/files",
    }),
    server_tabs: &[ServerTab {
        id: "file-changes",
        label: "File changes",
        path: "file-changes",
    }],
    tab_counts: None,
    jobs,
    config: Some(|state, server| {
        async move { vec![super::policy_section::<FimPolicy>(state, server).await] }.boxed()
    }),
    tasks: &[],
    wake: None,
    policies: &[super::PolicyKind {
        key: <FimPolicy as hostward_proto::Section>::KEY,
        label: "File integrity",
        check: |v| super::checked::<FimPolicy>(v, FimPolicy::validate),
        default: super::default_of::<FimPolicy>,
    }],
};

/// Deletes file changes `--file-change-retention-days` after the agent saw them, hourly: the
/// retention is counted in days, so an hour late costs nothing.
fn jobs(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match state
                .store
                .expire_file_changes(state.config.file_change_retention_days)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired old file changes"),
                Err(e) => tracing::error!(error = %e, "expiring old file changes failed"),
            }
        }
    });
}
