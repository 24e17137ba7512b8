//! Risk prevention: OS vulnerabilities matched on the center against the vulnerability
//! database (the matching job in `matching.rs`, the feeds it is fetched from in `feeds.rs`),
//! weak passwords and
//! password-policy results from the agents' scans, whitelist rules, one-click fixes and the
//! project's risk policy.

pub mod api;
pub(crate) mod console;
pub mod feeds;
pub mod matching;
pub(crate) mod policy_console;
pub(crate) mod scans_console;

#[cfg(test)]
mod console_tests;

use futures_util::FutureExt as _;
use hostward_proto::RiskPolicy;
use hostward_store::Job;

use super::{Capability, NavEntry, ServerTab};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "risk",
    api: api::router,
    openapi: api::openapi,
    console: || {
        console::router()
            .merge(scans_console::router())
            .merge(policy_console::router())
    },
    nav: Some(NavEntry {
        id: "risk",
        label: "Risks",
        href: "/vulnerabilities",
    }),
    server_tabs: &[ServerTab {
        id: "risks",
        label: "Risks",
        path: "risks",
    }],
    tab_counts: None,
    jobs,
    config: Some(|state, server| {
        async move { vec![super::policy_section::<RiskPolicy>(state, server).await] }.boxed()
    }),
    tasks: &[super::TaskKind {
        kind: hostward_proto::risk::SCAN_TASK,
        check_params: super::params_as::<hostward_proto::risk::ScanRequest>,
    }],
    wake: Some(|state, job| {
        if job == Job::VulnMatching {
            state.analyzer.wake()
        }
    }),
    policies: &[super::PolicyKind {
        key: <RiskPolicy as hostward_proto::Section>::KEY,
        label: "Risk scans",
        check: |v| super::checked::<RiskPolicy>(v, RiskPolicy::validate),
        default: super::default_of::<RiskPolicy>,
    }],
};

/// Recomputes every server's risk status once (a rule or the database may have changed while
/// the center was down), matches every server whose software or the database moved, and
/// fetches the vulnerability feeds (feeds.rs).
fn jobs(state: &AppState) {
    let s = state.clone();
    tokio::spawn(async move {
        match s.store.refresh_risk_statuses().await {
            Ok(n) => tracing::info!(servers = n, "risk statuses recomputed"),
            Err(e) => tracing::error!(error = %e, "recomputing risk statuses failed"),
        }
    });
    matching::Analyzer::spawn(state.clone());
    feeds::spawn(state.clone());
}
