//! The dashboard's figures: the security score of a project (score.rs, pure, with the
//! reference product's categories and deductions) from the counts the store keeps. The
//! dashboard page itself, the 7-day trend and the protection overview are not built yet.

pub mod api;
pub mod score;

use super::{Capability, no_jobs};

pub const CAPABILITY: Capability = Capability {
    id: "dashboard",
    api: api::router,
    openapi: api::openapi,
    console: axum::Router::new,
    nav: None,
    server_tabs: &[],
    tab_counts: None,
    jobs: no_jobs,
    config: None,
    tasks: &[],
    wake: None,
    policies: &[],
};
