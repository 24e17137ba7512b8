//! Web tamper protection: the project's policy (protected directories with their exclusions,
//! privileged processes, weekly unlock windows; pushed to agents as the `tamper` config
//! section) and each server's unlock from the console ("unlock now", "lock now"; the
//! `tamper_unlock` section), with the state each agent reports in its heartbeat. Tamper
//! attempts arrive as `web_tamper` alarms, which the alarms capability stores and shows. The
//! policy page is a tab of the alarms area ("Tamper policy"); each server has a "Tamper
//! protection" tab.

pub mod api;
pub(crate) mod console;
pub(crate) mod policy_console;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use axum::Router;
use futures_util::FutureExt as _;
use hostward_proto::Section as _;
use hostward_proto::tamper::{TamperPolicy, TamperUnlock};
use hostward_store::Server;

use super::{Capability, ServerTab, no_jobs};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "tamper",
    api: api::router,
    openapi: api::openapi,
    console: || {
        Router::new()
            .merge(console::router())
            .merge(policy_console::router())
    },
    // The policy page is a tab of the alarms area, as behaviour's is.
    nav: None,
    server_tabs: &[ServerTab {
        id: "tamper",
        label: "Tamper protection",
        path: "tamper",
    }],
    tab_counts: None,
    jobs: no_jobs,
    config: Some(|state, server| config(state, server).boxed()),
    tasks: &[],
    wake: None,
    policies: &[super::PolicyKind {
        key: <TamperPolicy as hostward_proto::Section>::KEY,
        label: "Web tamper protection",
        check: |v| super::checked::<TamperPolicy>(v, TamperPolicy::validate),
        default: super::default_of::<TamperPolicy>,
    }],
};

/// The project's tamper policy and the server's unlock from the console.
async fn config(state: &AppState, server: &Server) -> Vec<(&'static str, serde_json::Value)> {
    let policy = super::policy_section::<TamperPolicy>(state, server).await;
    let unlock = match state.store.tamper_unlock(&server.id).await {
        // As stored, even when past (the agent reads a past `until` as locked): the section
        // stays the same for one config version.
        Ok(u) => TamperUnlock {
            until: u.map(|u| u.until),
        },
        // Locked: an unlock that cannot be read is not granted. The next change of the
        // server's config sends it again.
        Err(e) => {
            tracing::error!(error = %e, server_id = %server.id, "reading the server's tamper unlock failed; sending it locked");
            TamperUnlock::default()
        }
    };
    let unlock = serde_json::to_value(unlock).expect("the unlock serialises");
    vec![policy, (TamperUnlock::KEY, unlock)]
}
