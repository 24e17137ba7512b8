//! Configuration baselines: the results of the SCA policies (shipped in `content/sca`, and
//! those a project imports) that agents run in their risk scan, fleet-wide and per server with
//! their evidence, handled as findings (ignore, verify, whitelist rules), and the project's
//! baseline policy pushed to its agents. The records arrive in the `risk` record; a failed
//! check nobody ignored counts in the server's risk status (the store derives it).

pub mod api;
pub(crate) mod console;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use futures_util::FutureExt as _;
use hostward_proto::baseline::BaselinePolicy;

use super::{Capability, NavEntry, ServerTab};

pub const CAPABILITY: Capability = Capability {
    id: "baseline",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "baseline",
        label: "Baselines",
        href: "/baselines",
    }),
    server_tabs: &[ServerTab {
        id: "baselines",
        label: "Baselines",
        path: "baselines",
    }],
    tab_counts: None,
    jobs: super::no_jobs,
    config: Some(|state, server| {
        async move { vec![super::policy_section::<BaselinePolicy>(state, server).await] }.boxed()
    }),
    tasks: &[],
    wake: None,
    policies: &[super::PolicyKind {
        key: <BaselinePolicy as hostward_proto::Section>::KEY,
        label: "Configuration baselines",
        check: |v| super::checked::<BaselinePolicy>(v, api::check_policy),
        default: super::default_of::<BaselinePolicy>,
    }],
};
