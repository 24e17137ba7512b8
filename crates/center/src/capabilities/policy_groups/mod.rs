//! Policy groups: the project's default group (its own policies) and custom groups copied from
//! it or from each other, edited policy by policy with each capability's own checks (the
//! `policies` of every entry in `ALL`), and servers assigned to them. A server's config reads
//! its group's policies (`policy_section`); a change is pushed to the group's agents at once.

pub mod api;
pub(crate) mod console;

#[cfg(test)]
mod api_tests;

use super::{Capability, NavEntry, no_jobs};

pub const CAPABILITY: Capability = Capability {
    id: "policy_groups",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "policy-groups",
        label: "Policy groups",
        href: "/policy-groups",
    }),
    server_tabs: &[],
    tab_counts: None,
    jobs: no_jobs,
    config: None,
    tasks: &[],
    wake: None,
    policies: &[],
};
