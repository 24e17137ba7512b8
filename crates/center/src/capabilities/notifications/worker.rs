//! The notifications job of a replica: claims due outbox rows under a lease, decides each
//! alarm against its channel's filters (filter.rs), renders (format.rs) and sends (send.rs) up
//! to 16 at once, then marks them sent in one statement, or pending again after the next
//! back-off step, or failed after the last. It runs when a records transaction queued rows
//! (woken), else every second; it also queues each channel's daily summary once its time has
//! come (the outbox's unique key makes that once across replicas and restarts), deletes
//! finished rows after 30 days and keeps the outbox depth on `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio::sync::Notify;

use super::filter::{AlarmFacts, Decision, Filters, last_occurrence, parse_hhmm};
use super::format::{self, Notice, SummaryPayload};
use super::send::{self, EmailSettings, WebhookSettings};
use crate::AppState;
use crate::metrics::{
    NOTIFICATIONS_FAILED as FAILED, NOTIFICATIONS_OUTBOX_DEPTH as OUTBOX_DEPTH,
    NOTIFICATIONS_SENT as SENT, NOTIFICATIONS_SKIPPED as SKIPPED,
};
use hostward_store::{ChannelRow, Claimed, notification_kind, now};

/// Rows claimed per round; a full round is followed by the next at once.
const BATCH: i64 = 100;
/// Sends in flight at once.
const PARALLEL: usize = 16;
/// How long a claim holds its rows: longer than any send can take (SMTP's 20 s per command,
/// a webhook's 60 s at most), so a row is never sent twice by two live replicas.
const LEASE_SECS: i64 = 300;
/// How often a replica looks for work it was not woken for (retries that came due, rows
/// another replica queued).
const POLL: Duration = Duration::from_secs(1);
/// A summary whose time passed longer ago than this is not sent late (a center down for
/// most of a day sends the next one).
const SUMMARY_GRACE_SECS: i64 = 6 * 3600;
/// Finished rows are kept this long for the deliveries view.
const RETENTION_SECS: i64 = 30 * 86_400;

/// A channel ready to send, built once per version of the channel.
enum Sender {
    Email {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        settings: EmailSettings,
    },
    Webhook {
        client: reqwest::Client,
        settings: WebhookSettings,
        secret: Option<Vec<u8>>,
    },
}

/// Each channel's sender, by channel id, with the channel's `updated_at` it was built for.
type Senders = HashMap<String, (i64, Arc<Sender>)>;

/// This replica's notifications job: its wake-up and its senders.
#[derive(Clone, Default)]
pub struct Notifier {
    wake: Arc<Notify>,
    senders: Arc<Mutex<Senders>>,
}

/// What became of one claimed row.
enum Outcome {
    Sent,
    Skipped(String),
    Failed(String),
}

impl Notifier {
    /// Asks the job to look for work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn spawn(state: AppState) {
        tokio::spawn(async move {
            let (mut summaries_at, mut retention_at, mut gauge_at) = (0, 0, 0);
            loop {
                let t = now();
                if t >= summaries_at {
                    summaries_at = t + 5;
                    if let Err(e) = queue_summaries(&state, t).await {
                        tracing::error!(error = %e, "queuing daily summaries failed");
                    }
                }
                if t >= retention_at {
                    retention_at = t + 3600;
                    match state.store.expire_notifications(t - RETENTION_SECS).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(rows = n, "old notifications deleted"),
                        Err(e) => tracing::error!(error = %e, "deleting old notifications failed"),
                    }
                }
                if t >= gauge_at {
                    gauge_at = t + 5;
                    if let Ok(n) = state.store.notification_outbox_depth().await {
                        metrics::gauge!(OUTBOX_DEPTH).set(n as f64);
                    }
                }
                match run_once(&state).await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "sending notifications failed"),
                }
                tokio::select! {
                    _ = state.notifier.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    /// The sender of a channel as it is now (rebuilt when the channel changed).
    fn sender(&self, state: &AppState, c: &ChannelRow) -> Result<Arc<Sender>, String> {
        if let Some((at, s)) = self.senders.lock().unwrap().get(&c.id)
            && *at == c.updated_at
        {
            return Ok(s.clone());
        }
        let secret = match &c.secret_sealed {
            Some(sealed) => Some(
                crate::auth::sealed::open(&state.config.data_dir, sealed)
                    .map_err(|e| format!("the channel's secret: {e}"))?,
            ),
            None => None,
        };
        let bundle = std::fs::read_to_string(&state.config.vulndb_ca_file).ok();
        let sender = match c.kind.as_str() {
            "email" => {
                let settings: EmailSettings = serde_json::from_value(c.settings.clone())
                    .map_err(|e| format!("the channel's settings: {e}"))?;
                let password = secret
                    .as_deref()
                    .map(|s| String::from_utf8_lossy(s).into_owned());
                let hello = hello_name(&state.config.public_url);
                let transport = send::smtp_transport(
                    &settings,
                    password.as_deref(),
                    bundle.as_deref(),
                    &hello,
                )?;
                Sender::Email {
                    transport,
                    settings,
                }
            }
            "webhook" => {
                let settings: WebhookSettings = serde_json::from_value(c.settings.clone())
                    .map_err(|e| format!("the channel's settings: {e}"))?;
                let client = send::webhook_client(&settings, bundle.as_deref())?;
                Sender::Webhook {
                    client,
                    settings,
                    secret,
                }
            }
            other => return Err(format!("unknown channel kind {other:?}")),
        };
        let s = Arc::new(sender);
        self.senders
            .lock()
            .unwrap()
            .insert(c.id.clone(), (c.updated_at, s.clone()));
        Ok(s)
    }
}

/// The EHLO name: the console's host.
fn hello_name(public_url: &str) -> String {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or("localhost");
    if host.is_empty() || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        "localhost".into()
    } else {
        host.to_string()
    }
}

/// The offset east of UTC that channel times are read in: the configured one, else this
/// machine's local time at `t` (daylight saving included).
pub fn utc_offset(state: &AppState, t: i64) -> i64 {
    state
        .config
        .notify_utc_offset
        .unwrap_or_else(|| local_offset_secs(t))
}

fn local_offset_secs(t: i64) -> i64 {
    use nix::libc;
    let t: libc::time_t = t as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: localtime_r writes only into `tm`, on this stack frame; it is the reentrant
    // variant, safe with other threads.
    let ok = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if ok {
        // SAFETY: localtime_r succeeded, so `tm` is initialised.
        unsafe { tm.assume_init() }.tm_gmtoff
    } else {
        0
    }
}

/// The summary of a project's alarms in `[from, to)`.
pub async fn summary_payload(
    state: &AppState,
    project_id: &str,
    from: i64,
    to: i64,
    day: String,
    test: bool,
) -> Result<SummaryPayload, hostward_store::StoreError> {
    let c = state.store.alarm_counts(project_id, from, to).await?;
    let project_name = state
        .store
        .project(project_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_else(|| project_id.to_string());
    Ok(SummaryPayload {
        day,
        from,
        to,
        project_name,
        alarms: c.alarms,
        occurrences: c.occurrences,
        unhandled: c.unhandled,
        by_severity: c.by_severity,
        by_type: c.by_type,
        by_server: c.by_server,
        test,
    })
}

/// Queues each summary channel's summary whose time came within the grace period and that is
/// not queued yet (by this replica before a restart, or by another).
async fn queue_summaries(state: &AppState, t: i64) -> anyhow::Result<()> {
    let offset = utc_offset(state, t);
    let mut queued = false;
    for c in state.store.summary_channels().await? {
        let at = parse_hhmm(&c.summary_at).unwrap_or(600);
        let (due, day) = last_occurrence(at, t, offset);
        if t - due > SUMMARY_GRACE_SECS {
            continue;
        }
        let key = format!("summary:{day}");
        if state.store.notification_queued(&c.id, &key).await? {
            continue;
        }
        let payload = summary_payload(state, &c.project_id, due - 86_400, due, day, false).await?;
        let payload = serde_json::to_value(payload)?;
        if state
            .store
            .enqueue_notification(&c.id, notification_kind::SUMMARY, &key, &payload, t)
            .await?
            .is_some()
        {
            tracing::info!(channel_id = %c.id, %key, "daily summary queued");
            queued = true;
        }
    }
    if queued {
        state.notifier.wake();
    }
    Ok(())
}

/// Whether an alarm row passes its channel, at `t`.
async fn decide(
    state: &AppState,
    row: &Claimed,
    notice: &Notice,
    t: i64,
) -> anyhow::Result<Decision> {
    let c = &row.channel;
    if !c.enabled
        && matches!(
            row.delivery.kind.as_str(),
            notification_kind::ALARM | notification_kind::SUMMARY
        )
    {
        return Ok(Decision::Skip("the channel is disabled".into()));
    }
    let Notice::Alarm(a) = notice else {
        return Ok(Decision::Send);
    };
    if row.delivery.kind != notification_kind::ALARM {
        return Ok(Decision::Send);
    }
    let filters: Filters = serde_json::from_value(c.filters.clone()).unwrap_or_default();
    let last = match &row.group_key {
        Some(g) if filters.dedup_minutes > 0 => state.store.last_sent_in_group(&c.id, g).await?,
        _ => None,
    };
    let severity =
        hostward_proto::Severity::parse(&a.severity).unwrap_or(hostward_proto::Severity::Low);
    let facts = AlarmFacts {
        alarm_type: &a.alarm_type,
        severity,
        server_id: &a.server_id,
        server_name: &a.server_name,
    };
    Ok(filters.decide(&facts, t, utc_offset(state, t), last))
}

/// Sends one row through its channel's sender.
async fn deliver(
    state: &AppState,
    sender: &Sender,
    row: &Claimed,
    notice: &Notice,
    t: i64,
) -> Result<(), String> {
    let center = state.config.public_url.trim_end_matches('/');
    let id = &row.delivery.id;
    match sender {
        Sender::Email {
            transport,
            settings,
        } => {
            let email = format::email(notice, center);
            let attachment = match notice {
                Notice::Report(r) => r.attachment.as_ref(),
                _ => None,
            };
            let m = send::mail_message(settings, &email, attachment, id)?;
            send::send_mail(transport, settings, m).await
        }
        Sender::Webhook {
            client,
            settings,
            secret,
        } => {
            let body = format::webhook_body(settings.format, notice, id, center);
            let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            send::post_webhook(
                client,
                settings,
                secret.as_deref(),
                id,
                notice.event(),
                body,
                t,
            )
            .await
        }
    }
}

/// One round: claims up to [`BATCH`] due rows and settles each. Returns how many it claimed.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let t = now();
    let (claim, rows) = state
        .store
        .claim_notifications(t, LEASE_SECS, BATCH)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    // Decided in order, so two rows of one group in a batch send once.
    let mut sent_groups: HashMap<(String, String), ()> = HashMap::new();
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    let mut jobs = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    for (i, row) in rows.iter().enumerate() {
        let notice = match Notice::decode(&row.delivery.kind, &row.delivery.payload) {
            Ok(n) => n,
            Err(e) => {
                outcomes.push((i, Outcome::Failed(e)));
                continue;
            }
        };
        let group = row.group_key.clone().map(|g| (row.channel.id.clone(), g));
        let decision = match &group {
            Some(g)
                if sent_groups.contains_key(g) && row.delivery.kind == notification_kind::ALARM =>
            {
                Decision::Skip(
                    "repeat: the same server, type and key was sent in this round".into(),
                )
            }
            _ => decide(state, row, &notice, t).await?,
        };
        if let Decision::Skip(why) = decision {
            outcomes.push((i, Outcome::Skipped(why)));
            continue;
        }
        if let Some(g) = group {
            sent_groups.insert(g, ());
        }
        let sender = match state.notifier.sender(state, &row.channel) {
            Ok(s) => s,
            Err(e) => {
                outcomes.push((i, Outcome::Failed(e)));
                continue;
            }
        };
        let (state, row, permit) = (
            state.clone(),
            row.clone(),
            limit.clone().acquire_owned().await?,
        );
        jobs.spawn(async move {
            let r = deliver(&state, &sender, &row, &notice, t).await;
            drop(permit);
            (i, r)
        });
    }
    while let Some(done) = jobs.join_next().await {
        let (i, r) = done?;
        outcomes.push((
            i,
            match r {
                Ok(()) => Outcome::Sent,
                Err(e) => Outcome::Failed(e),
            },
        ));
    }
    let t = now();
    let mut sent = Vec::new();
    for (i, outcome) in outcomes {
        let row = &rows[i];
        let d = &row.delivery;
        let kind = row.channel.kind.clone();
        match outcome {
            Outcome::Sent => {
                sent.push(d.id.clone());
                metrics::counter!(SENT, "channel" => kind).increment(1);
                tracing::info!(delivery_id = %d.id, channel_id = %d.channel_id, kind = %d.kind, "notification sent");
            }
            Outcome::Skipped(why) => {
                metrics::counter!(SKIPPED, "channel" => kind).increment(1);
                state
                    .store
                    .notification_skipped(&claim, &d.id, &why, t)
                    .await?;
            }
            Outcome::Failed(e) => {
                metrics::counter!(FAILED, "channel" => kind).increment(1);
                let retry_at = retry_at(&state.config.notify_retry_secs, d.attempts + 1, t);
                tracing::warn!(delivery_id = %d.id, channel_id = %d.channel_id, attempt = d.attempts + 1,
                    error = %e, retry_at, "sending a notification failed");
                state
                    .store
                    .notification_failed(&claim, &d.id, &e, retry_at, t)
                    .await?;
            }
        }
    }
    state.store.notifications_sent(&claim, &sent, t).await?;
    Ok(n)
}

/// When attempt `attempts + 1` is due after `attempts` failed ones: the schedule's step, or
/// None when the schedule is used up (the row is failed).
pub fn retry_at(schedule: &[u64], attempts: i64, t: i64) -> Option<i64> {
    let i = usize::try_from(attempts - 1).ok()?;
    schedule.get(i).map(|s| t + *s as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_follows_the_schedule_then_fails() {
        let s = [30, 120, 600];
        assert_eq!(retry_at(&s, 1, 1000), Some(1030));
        assert_eq!(retry_at(&s, 2, 1000), Some(1120));
        assert_eq!(retry_at(&s, 3, 1000), Some(1600));
        assert_eq!(retry_at(&s, 4, 1000), None);
        assert_eq!(retry_at(&[], 1, 1000), None);
    }

    #[test]
    fn the_hello_name_is_the_console_host() {
        assert_eq!(hello_name("https://hw.example.org:8443"), "hw.example.org");
        assert_eq!(hello_name("https://127.0.0.1:8443"), "localhost");
        assert_eq!(hello_name("https://[::1]:8443/"), "localhost");
    }

    #[test]
    fn the_local_offset_is_whole_quarter_hours() {
        let off = local_offset_secs(1_704_067_200);
        assert_eq!(off % 900, 0);
        assert!(off.abs() <= 14 * 3600);
    }
}
