//! Intrusion alarms and brute-force defence: alarms aggregated per server, type and key with
//! their handling, the alarm whitelist, firewall blocks as agents report them, the project's
//! brute-force policy, each server's usual login addresses (`login_ips_*`) and each server's
//! SSH login whitelist (`ssh_whitelist_*`, closed to the admin's own lock-out).

pub mod api;
pub(crate) mod console;
pub mod login_ips_api;
pub(crate) mod login_ips_console;
pub mod ssh_whitelist_api;
pub(crate) mod ssh_whitelist_console;

#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod login_ips_console_tests;
#[cfg(test)]
mod ssh_whitelist_console_tests;

use std::time::Duration;

use axum::Router;
use futures_util::FutureExt as _;
use hostward_proto::Section as _;
use hostward_proto::bruteforce::{Policy, ServerLoginIps};
use hostward_store::Server;

use super::{Capability, NavEntry, ServerTab};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "alarms",
    api: || {
        api::router()
            .merge(login_ips_api::router())
            .merge(ssh_whitelist_api::router())
    },
    openapi: || {
        let mut doc = api::openapi();
        doc.merge(login_ips_api::openapi());
        doc.merge(ssh_whitelist_api::openapi());
        doc
    },
    console: || {
        Router::new()
            .merge(console::router())
            .merge(login_ips_console::router())
            .merge(ssh_whitelist_console::router())
    },
    nav: Some(NavEntry {
        id: "alarms",
        label: "Alarms",
        href: "/alarms",
    }),
    server_tabs: &[
        ServerTab {
            id: "login-ips",
            label: "Login addresses",
            path: "login-ips",
        },
        ServerTab {
            id: "ssh-whitelist",
            label: "SSH whitelist",
            path: "ssh-whitelist",
        },
    ],
    tab_counts: None,
    jobs,
    config: Some(|state, server| config(state, server).boxed()),
    tasks: &[],
    wake: None,
    policies: &[super::PolicyKind {
        key: <Policy as hostward_proto::Section>::KEY,
        label: "Brute-force and logins",
        check: |v| super::checked::<Policy>(v, Policy::validate),
        default: super::default_of::<Policy>,
    }],
};

/// The project's brute-force policy and the server's own usual login addresses.
async fn config(state: &AppState, server: &Server) -> Vec<(&'static str, serde_json::Value)> {
    let policy = super::policy_section::<Policy>(state, server).await;
    let login_ips = match state.store.server_login_ips(&server.id).await {
        Ok(l) => ServerLoginIps {
            usual: l.items.into_iter().map(|e| e.addr).collect(),
            learning: l.learning,
        },
        // Not the defaults here: an empty list that learns would take whatever logs in next
        // as usual. Without learning an empty list raises nothing; the next config fixes it.
        Err(e) => {
            tracing::error!(error = %e, "reading the server's usual login addresses failed");
            ServerLoginIps {
                usual: Vec::new(),
                learning: false,
            }
        }
    };
    let login_ips = serde_json::to_value(login_ips).expect("login addresses serialise");
    let ssh_whitelist = ssh_whitelist_api::config_section(state, server).await;
    vec![policy, (ServerLoginIps::KEY, login_ips), ssh_whitelist]
}

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
