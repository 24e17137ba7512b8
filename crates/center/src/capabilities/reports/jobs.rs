//! The reports job: every minute it runs the schedules that are due and emails the reports
//! waiting to be sent. A run gathers the report first, then stores it and moves the schedule
//! to its next time in one transaction that only succeeds if the schedule still waits for that
//! run: a second replica, or this one after a restart, finds it moved and does nothing, and a
//! crash before the commit leaves the run due. Sending is claimed per report for a while, so
//! one replica sends it; a claim whose replica died runs out and another sends it.

use std::time::Duration;

use super::api::{rendered, stored_content};
use super::content::{self, Content};
use super::cron::Cron;
use crate::AppState;
use crate::api::ApiError;
use hostward_store::{NewReport, ReportRow, ReportSchedule, now};

/// How often due schedules and deliveries are looked for.
const TICK: Duration = Duration::from_secs(60);
/// How long a replica has to send a report before another may.
const DELIVERY_CLAIM_SECS: i64 = 600;

pub fn spawn(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            match run_due(&state, now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(reports = n, "scheduled reports made"),
                Err(e) => {
                    tracing::error!(code = %e.code, message = %e.message, "running report schedules failed")
                }
            }
            if let Err(e) = deliver_pending(&state).await {
                tracing::error!(code = %e.code, message = %e.message, "sending reports failed");
            }
        }
    });
}

/// Runs every schedule due at `at`; returns the reports made.
pub async fn run_due(state: &AppState, at: i64) -> Result<usize, ApiError> {
    let mut made = 0;
    for s in state.store.due_schedules(at).await? {
        match run_one(state, &s, at).await {
            Ok(true) => made += 1,
            Ok(false) => {}
            // One schedule's failure does not hold up the others; it stays due.
            Err(e) => {
                tracing::error!(schedule = %s.id, code = %e.code, message = %e.message, "a report schedule's run failed")
            }
        }
    }
    Ok(made)
}

async fn run_one(state: &AppState, s: &ReportSchedule, at: i64) -> Result<bool, ApiError> {
    // The expression was checked when stored; one that no longer parses (a later, stricter
    // parser) is moved a day on and said in the log rather than retried every minute.
    let cron = match Cron::parse(&s.cron) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(schedule = %s.id, cron = %s.cron, error = %e, "a stored report schedule does not parse");
            state
                .store
                .skip_schedule_run(&s.id, s.next_run, at + 86_400)
                .await?;
            return Ok(false);
        }
    };
    let next = cron.next_after(at).unwrap_or(at + 86_400);
    // The period is the one before the time the run was due, not when it happened to run.
    let range = content::last_period(&s.range_kind, s.next_run).map_err(ApiError::internal)?;
    let c = content::gather(state, &s.project_id, &s.range_kind, range).await?;
    let id = state
        .store
        .finish_schedule_run(
            s,
            next,
            &NewReport {
                project_id: s.project_id.clone(),
                schedule_id: Some(s.id.clone()),
                range_kind: s.range_kind.clone(),
                range_from: range.from,
                range_to: range.to,
                formats: s.formats.clone(),
                content: serde_json::to_string(&c).map_err(ApiError::internal)?,
                created_by: format!("schedule {}", s.name),
            },
        )
        .await?;
    Ok(id.is_some())
}

/// Sends every report waiting to be emailed; returns how many were sent.
pub async fn deliver_pending(state: &AppState) -> Result<usize, ApiError> {
    let mut sent = 0;
    while let Some(r) = state
        .store
        .claim_delivery(now(), now() + DELIVERY_CLAIM_SECS)
        .await?
    {
        let outcome = match stored_content(state, &r).await {
            Ok(c) => deliver(state, &r, &c).await,
            Err(e) => Err(e),
        };
        match outcome {
            // Nobody to send it to is said as such, never as "sent".
            Ok(0) => {
                state
                    .store
                    .finish_delivery(
                        &r.id,
                        "no_recipients",
                        "no email channel of the project takes reports (a channel's \"reports\" switch)",
                    )
                    .await?;
            }
            Ok(n) => {
                state
                    .store
                    .finish_delivery(&r.id, "sent", &format!("queued for {n} email channel(s)"))
                    .await?;
                sent += 1;
            }
            Err(e) => {
                tracing::error!(report = %r.id, code = %e.code, message = %e.message, "emailing a report failed");
                state
                    .store
                    .finish_delivery(&r.id, "failed", &e.message)
                    .await?;
            }
        }
    }
    Ok(sent)
}

/// Emails one report to its project's recipients, with the PDF attached when the schedule
/// asked for it and the HTML as the mail's body. Returns how many recipients it was queued for.
pub async fn deliver(state: &AppState, report: &ReportRow, c: &Content) -> Result<usize, ApiError> {
    let subject = c.title();
    let (alarms, _) = c.alarm_totals();
    let text = format!(
        "{subject}\n\nSecurity score: {} of 100\nAlarms in the range: {alarms}\nServers: {}\n\nThe full report is attached, and in the console under Reports.\n",
        c.score,
        c.facts.servers.len()
    );
    let html = if report.formats.contains("html") {
        Some(String::from_utf8(rendered(c, "html")?.2).map_err(ApiError::internal)?)
    } else {
        None
    };
    let attachment = if report.formats.contains("pdf") {
        let (name, mime, bytes) = rendered(c, "pdf")?;
        Some((name, mime.to_string(), bytes))
    } else {
        None
    };
    crate::capabilities::notifications::enqueue_email(
        state,
        &report.project_id,
        &subject,
        &text,
        html.as_deref(),
        attachment,
    )
    .await
}
