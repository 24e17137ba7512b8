//! Editions and quotas: which protection each server gets. The matrix is
//! `hostward_proto::edition` (the reference product's §1.2); each capability's policy turns off
//! what a server's edition lacks when its config is built (`policy_section` calls
//! `Section::gate`), so binding, switching and unbinding are config pushes and the agent's
//! modules follow within the second. Quotas cap each edition's servers per project; the
//! metering job counts protected time (edition bound, protection on, agent online) per server
//! and day, exported as CSV.

pub mod api;
pub(crate) mod console;

#[cfg(test)]
mod console_tests;

use std::time::Duration;

use super::{Capability, NavEntry, ServerTab};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "editions",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "editions",
        label: "Editions",
        href: "/editions",
    }),
    server_tabs: &[ServerTab {
        id: "edition",
        label: "Edition",
        path: "edition",
    }],
    tab_counts: None,
    jobs,
    config: None,
    tasks: &[],
    wake: None,
    policies: &[],
};

/// How often protected time is counted. A server that stops between two ticks is counted to
/// the tick that sees it stopped: the error is at most one period per stop.
const METER_PERIOD: Duration = Duration::from_secs(60);

fn jobs(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METER_PERIOD);
        loop {
            tick.tick().await;
            match state.store.meter_usage(hostward_store::now()).await {
                Ok(secs) => {
                    metrics::counter!(crate::metrics::PROTECTED_SECONDS).increment(secs as u64)
                }
                Err(e) => tracing::error!(error = %e, "metering protected time failed"),
            }
        }
    });
}
