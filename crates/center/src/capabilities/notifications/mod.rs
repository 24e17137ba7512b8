//! Alarm notifications: each project's channels (email through an SMTP relay, or a webhook in
//! our JSON, Slack's or Teams' shape) with severity, type and server filters, masking rules and
//! de-duplication of repeats; real-time alarms and a daily summary; "send a test"; the
//! deliveries with their errors and a retry. Everything goes through the notifications outbox
//! in the database: a new alarm's rows are queued in the records transaction that stores it
//! (the store's `alarms`), so sending never slows ingestion and a restart neither loses nor
//! repeats one; this replica's job (worker.rs) sends them. Other capabilities mail through it
//! with [`enqueue_email`].

pub mod api;
pub(crate) mod console;
pub mod filter;
pub mod format;
pub mod send;
pub mod worker;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod console_tests;

use base64::Engine as _;
use hostward_store::Job;

pub use worker::Notifier;

use super::{Capability, NavEntry};
use crate::AppState;
use crate::api::ApiError;

pub const CAPABILITY: Capability = Capability {
    id: "notifications",
    api: api::router,
    openapi: api::openapi,
    console: console::router,
    nav: Some(NavEntry {
        id: "notifications",
        label: "Notifications",
        href: "/notifications",
    }),
    server_tabs: &[],
    tab_counts: None,
    jobs: |state| Notifier::spawn(state.clone()),
    config: None,
    tasks: &[],
    wake: Some(|state, job| {
        if job == Job::Notifications {
            state.notifier.wake()
        }
    }),
    policies: &[],
};

/// Largest attachment [`enqueue_email`] takes.
pub const MAX_ATTACHMENT: usize = 10 << 20;

/// Queues one email to every enabled email channel of the project that takes reports (its
/// `reports` switch), through the outbox: sent, retried and shown in the deliveries like any
/// notification. Returns how many channels it was queued for (0: none takes reports).
pub async fn enqueue_email(
    state: &AppState,
    project_id: &str,
    subject: &str,
    text: &str,
    html: Option<&str>,
    attachment: Option<(String, String, Vec<u8>)>,
) -> Result<usize, ApiError> {
    let subject = crate::api::text_field("subject", subject, 1, 300)?;
    let attachment = match attachment {
        Some((name, mime, bytes)) => {
            if bytes.len() > MAX_ATTACHMENT {
                return Err(ApiError::invalid_body(format!(
                    "attachment: {} bytes, at most {MAX_ATTACHMENT}",
                    bytes.len()
                )));
            }
            let name = crate::api::text_field("attachment name", &name, 1, 200)?;
            if lettre::message::header::ContentType::parse(&mime).is_err() {
                return Err(ApiError::invalid_body(format!(
                    "attachment: {mime:?} is not a MIME type"
                )));
            }
            Some(format::Attachment {
                name,
                mime,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        }
        None => None,
    };
    let payload = format::ReportPayload {
        subject,
        text: text.to_string(),
        html: html.map(str::to_string),
        attachment,
    };
    let payload = serde_json::to_value(payload).map_err(ApiError::internal)?;
    let n = state
        .store
        .enqueue_report(project_id, &payload, hostward_store::now())
        .await?;
    if n > 0 {
        state.notifier.wake();
    }
    Ok(n as usize)
}
