//! Runtime behaviour detection and response: the project's behaviour policy (detector switches,
//! high-risk command patterns, the lists the detectors use, pushed to agents as the `behaviour`
//! config section), the files the agents' quarantines hold, and the isolate-and-kill, restore
//! and delete tasks. Its pages live in the alarms area (tabs "Isolated files" and "Behaviour
//! policy"; the alarm page's "Isolate and kill" button posts here).

pub mod api;
pub(crate) mod console;
pub(crate) mod policy_console;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use axum::Router;
use futures_util::FutureExt as _;
use hostward_proto::behaviour::BehaviourPolicy;
use hostward_proto::quarantine::{
    DELETE_TASK, FileRef, ISOLATE_TASK, IsolateRequest, RESTORE_TASK,
};
use serde::Deserialize as _;

use super::{Capability, TaskKind, no_jobs, params_as};

pub const CAPABILITY: Capability = Capability {
    id: "behaviour",
    api: api::router,
    openapi: api::openapi,
    console: || {
        Router::new()
            .merge(console::router())
            .merge(policy_console::router())
    },
    // Its pages are tabs of the alarms area.
    nav: None,
    server_tabs: &[],
    tab_counts: None,
    jobs: no_jobs,
    config: Some(|state, server| {
        async move { vec![super::policy_section::<BehaviourPolicy>(state, server).await] }.boxed()
    }),
    tasks: &[
        TaskKind {
            kind: ISOLATE_TASK,
            check_params: isolate_params,
        },
        TaskKind {
            kind: RESTORE_TASK,
            check_params: params_as::<FileRef>,
        },
        TaskKind {
            kind: DELETE_TASK,
            check_params: params_as::<FileRef>,
        },
    ],
    wake: None,
    policies: &[super::PolicyKind {
        key: <BehaviourPolicy as hostward_proto::Section>::KEY,
        label: "Intrusion detection",
        check: |v| super::checked::<BehaviourPolicy>(v, BehaviourPolicy::validate),
        default: super::default_of::<BehaviourPolicy>,
    }],
};

/// An `isolate_kill` task's params: an [`IsolateRequest`] that passes its own checks.
fn isolate_params(v: &serde_json::Value) -> Result<(), String> {
    let r = IsolateRequest::deserialize(v).map_err(|e| e.to_string())?;
    r.validate()
}
