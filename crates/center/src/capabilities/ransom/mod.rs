//! Ransomware prevention and backups: the project's policy (watched directories with their
//! bait files, the burst bound, what to do to the process, trusted programs, and the local
//! backups with their schedule and retention; pushed to agents as the `ransom` config
//! section), the state each agent reports in its heartbeat with its snapshots, and the
//! operators' "back up now" and "restore" (the `backup_now` and `backup_restore` tasks).
//! Detections arrive as `ransomware` alarms, which the alarms capability stores and shows. The
//! policy page is a tab of the alarms area ("Ransomware policy"); each server has a
//! "Ransomware" tab.

pub mod api;
pub(crate) mod console;
pub(crate) mod policy_console;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use axum::Router;
use futures_util::FutureExt as _;
use hostward_proto::ransom::{BACKUP_TASK, RESTORE_TASK, RansomPolicy, RestoreRequest};
use hostward_store::Server;
use serde::Deserialize as _;

use super::{Capability, ServerTab, TaskKind, no_jobs};
use crate::AppState;

pub const CAPABILITY: Capability = Capability {
    id: "ransom",
    api: api::router,
    openapi: api::openapi,
    console: || {
        Router::new()
            .merge(console::router())
            .merge(policy_console::router())
    },
    // The policy page is a tab of the alarms area, as tamper's and behaviour's are.
    nav: None,
    server_tabs: &[ServerTab {
        id: "ransom",
        label: "Ransomware",
        path: "ransom",
    }],
    tab_counts: None,
    jobs: no_jobs,
    config: Some(|state, server| config(state, server).boxed()),
    tasks: &[
        TaskKind {
            kind: BACKUP_TASK,
            check_params: backup_params,
        },
        TaskKind {
            kind: RESTORE_TASK,
            check_params: restore_params,
        },
    ],
    wake: None,
    policies: &[super::PolicyKind {
        key: <RansomPolicy as hostward_proto::Section>::KEY,
        label: "Ransomware",
        check: |v| super::checked::<RansomPolicy>(v, RansomPolicy::validate),
        default: super::default_of::<RansomPolicy>,
    }],
};

async fn config(state: &AppState, server: &Server) -> Vec<(&'static str, serde_json::Value)> {
    vec![super::policy_section::<RansomPolicy>(state, server).await]
}

/// A snapshot takes nothing: what to back up is the policy's.
fn backup_params(v: &serde_json::Value) -> Result<(), String> {
    match v.as_object() {
        Some(o) if o.is_empty() => Ok(()),
        _ => Err(format!("{BACKUP_TASK} takes no params: give {{}}")),
    }
}

/// A restore's params as the agent reads them, and within its bounds.
fn restore_params(v: &serde_json::Value) -> Result<(), String> {
    RestoreRequest::deserialize(v)
        .map_err(|e| e.to_string())?
        .validate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_params_are_checked_as_the_agent_reads_them() {
        assert_eq!(backup_params(&json!({})), Ok(()));
        for bad in [json!({"dirs": ["/srv"]}), json!([]), json!(null)] {
            assert!(backup_params(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            restore_params(&json!({"snapshot": "1700000000-ab12", "paths": ["/srv/a"]})),
            Ok(())
        );
        assert_eq!(restore_params(&json!({"at": 1_700_000_000})), Ok(()));
        let e = restore_params(&json!({"snapshot": "x", "paths": ["rel"]})).unwrap_err();
        assert!(e.starts_with("paths[0]"), "{e}");
        let e = restore_params(&json!({})).unwrap_err();
        assert!(e.starts_with("snapshot, at"), "{e}");
        let e = restore_params(&json!({"snapshot": "x", "force": true})).unwrap_err();
        assert!(e.contains("force"), "{e}");
    }
}
