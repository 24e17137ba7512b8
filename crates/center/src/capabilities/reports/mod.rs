//! Security reports of a project over a range (daily, weekly, monthly or custom): what they
//! say is gathered through the store (content.rs) and kept with the report, rendered as HTML
//! (html.rs) or PDF (pdf.rs) when downloaded; schedules with cron expressions (cron.rs) run in
//! the job (jobs.rs), which stores each run's report once and emails it.

pub mod api;
pub(crate) mod console;
pub mod content;
pub mod cron;
pub mod html;
pub mod jobs;
pub mod pdf;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use super::{Capability, NavEntry};

pub const CAPABILITY: Capability = Capability {
    id: "reports",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "reports",
        label: "Reports",
        href: "/reports",
    }),
    server_tabs: &[],
    tab_counts: None,
    jobs: jobs::spawn,
    config: None,
    tasks: &[],
    wake: None,
    policies: &[],
};
