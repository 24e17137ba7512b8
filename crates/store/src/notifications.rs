//! Alarm notifications: each project's channels (email or webhook; settings and filters as
//! JSON the center reads, the secret sealed by the center) and the notifications outbox, one
//! row per (channel, notification). A new alarm's rows are queued inside the records
//! transaction that stores it (one INSERT…SELECT over the project's enabled real-time
//! channels), so a stored alarm always has its notifications and a redelivered record none
//! twice; a day's summary is queued once per channel (`dedup_key` is unique per channel). A
//! replica claims due rows under a lease, then marks each sent, skipped (filtered or masked),
//! pending again with the next attempt's time, or failed; a row is never sent by two replicas
//! at once, and one whose replica died is taken again when its lease ends.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Bind, Result, Sql, Store, StoreError, flag, new_id, opt_i64, paged};

/// Delivery states of an outbox row.
pub mod delivery_state {
    /// Waiting for its (next) attempt.
    pub const PENDING: &str = "pending";
    pub const SENT: &str = "sent";
    /// Not sent on purpose: the channel's filters or masking rules, a repeat, a disabled channel.
    pub const SKIPPED: &str = "skipped";
    /// Every attempt failed; kept with the last error until someone retries it.
    pub const FAILED: &str = "failed";
    pub const ALL: &[&str] = &[PENDING, SENT, SKIPPED, FAILED];
}

/// What an outbox row carries.
pub mod notification_kind {
    pub const ALARM: &str = "alarm";
    pub const SUMMARY: &str = "summary";
    pub const TEST: &str = "test";
    pub const REPORT: &str = "report";
}

/// A channel as stored. `settings` and `filters` are the center's JSON; the secret stays
/// sealed and never leaves the center.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// `email` or `webhook`.
    pub kind: String,
    pub settings: serde_json::Value,
    pub secret_sealed: Option<String>,
    pub filters: serde_json::Value,
    pub enabled: bool,
    pub realtime: bool,
    pub summary: bool,
    /// HH:MM.
    pub summary_at: String,
    pub reports: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a secret becomes on an update.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretChange {
    Keep,
    Set(String),
    Clear,
}

/// One notification to one channel.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Delivery {
    /// Also the `X-Hostward-Delivery` of a webhook: the same across retries.
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    /// `email` or `webhook`.
    pub channel_kind: String,
    pub project_id: String,
    /// alarm, summary, test, report.
    pub kind: String,
    pub dedup_key: String,
    /// What the notification is about (an alarm's title and server, a summary's day).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// pending, sent, skipped, failed.
    pub state: String,
    pub attempts: i64,
    /// When a pending row is tried next (Unix seconds).
    pub next_attempt_at: i64,
    /// Why the last attempt failed, or why the row was skipped.
    pub last_error: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

/// A due row this replica holds the lease of, with its channel as it is now.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub group_key: Option<String>,
    pub channel: ChannelRow,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub projects: Vec<String>,
    pub channel_id: Option<String>,
    /// A state, or `failing`: failed rows and pending ones whose last attempt failed.
    pub state: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

/// The alarms of a project in a time range, counted for a daily summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlarmCounts {
    /// Alarms seen in the range (each aggregated alarm once).
    pub alarms: i64,
    /// Occurrences they stand for.
    pub occurrences: i64,
    /// Of those alarms, the ones nobody handled yet.
    pub unhandled: i64,
    /// (severity, alarms), most severe first.
    pub by_severity: Vec<(String, i64)>,
    /// (type, title, alarms), most alarms first.
    pub by_type: Vec<(String, String, i64)>,
    /// (server name, alarms, unhandled), most alarms first.
    pub by_server: Vec<(String, i64, i64)>,
}

const CHANNEL_COLUMNS: &str = "c.id, c.project_id, c.name, c.kind, c.settings, c.secret_sealed, c.filters, c.enabled, \
     c.realtime, c.summary, c.summary_at, c.reports, c.created_by, c.created_at, c.updated_at";

const DELIVERY_COLUMNS: &str = "o.id, o.channel_id, c.name AS channel_name, c.kind AS channel_kind, o.project_id, o.kind AS o_kind, \
     o.dedup_key, o.group_key, o.payload, o.state, o.attempts, o.next_attempt_at, o.last_error, o.created_at AS o_created_at, \
     o.updated_at AS o_updated_at, o.sent_at";

fn json(r: &AnyRow, col: &str) -> Result<serde_json::Value> {
    let text: String = r.try_get(col)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn channel_row(r: &AnyRow) -> Result<ChannelRow> {
    Ok(ChannelRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        settings: json(r, "settings")?,
        secret_sealed: r.try_get("secret_sealed")?,
        filters: json(r, "filters")?,
        enabled: flag(r, "enabled"),
        realtime: flag(r, "realtime"),
        summary: flag(r, "summary"),
        summary_at: r.try_get("summary_at")?,
        reports: flag(r, "reports"),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery_row(r: &AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: r.try_get("id")?,
        channel_id: r.try_get("channel_id")?,
        channel_name: r.try_get("channel_name")?,
        channel_kind: r.try_get("channel_kind")?,
        project_id: r.try_get("project_id")?,
        kind: r.try_get("o_kind")?,
        dedup_key: r.try_get("dedup_key")?,
        payload: json(r, "payload")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("o_created_at")?,
        updated_at: r.try_get("o_updated_at")?,
        sent_at: opt_i64(r, "sent_at"),
    })
}

/// Queues a new alarm's notification to every enabled real-time channel of its project,
/// inside the records transaction: one statement, whatever the number of channels (none costs
/// one indexed look-up). Returns how many rows it queued.
pub(super) async fn enqueue_alarm(
    tx: &mut Transaction<'static, Any>,
    project_id: &str,
    alarm_id: &str,
    group_key: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<u64> {
    let r = sqlx::query(
        "INSERT INTO notification_outbox (id, channel_id, project_id, kind, dedup_key, group_key, payload, state, \
         attempts, next_attempt_at, lease_until, last_error, created_at, updated_at) \
         SELECT $1 || c.id, c.id, c.project_id, $2, $3, $4, $5, $6, 0, $7, 0, '', $7, $7 \
         FROM notification_channels c WHERE c.project_id = $8 AND c.enabled = 1 AND c.realtime = 1",
    )
    .bind(format!("{alarm_id}:"))
    .bind(notification_kind::ALARM)
    .bind(format!("alarm:{alarm_id}"))
    .bind(group_key.to_string())
    .bind(payload.to_string())
    .bind(delivery_state::PENDING)
    .bind(now)
    .bind(project_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

impl Store {
    pub async fn create_channel(&self, c: &ChannelRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO notification_channels (id, project_id, name, kind, settings, secret_sealed, filters, enabled, \
             realtime, summary, summary_at, reports, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(c.id.clone())
        .bind(c.project_id.clone())
        .bind(c.name.clone())
        .bind(c.kind.clone())
        .bind(c.settings.to_string())
        .bind(c.secret_sealed.clone())
        .bind(c.filters.to_string())
        .bind(i64::from(c.enabled))
        .bind(i64::from(c.realtime))
        .bind(i64::from(c.summary))
        .bind(c.summary_at.clone())
        .bind(i64::from(c.reports))
        .bind(c.created_by.clone())
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a channel's name, settings, filters and switches (its kind and project stay)
    /// and changes its secret as asked.
    pub async fn update_channel(&self, c: &ChannelRow, secret: &SecretChange) -> Result<()> {
        let (set_secret, sealed) = match secret {
            SecretChange::Keep => (0i64, None),
            SecretChange::Set(s) => (1, Some(s.clone())),
            SecretChange::Clear => (1, None),
        };
        let r = sqlx::query(
            "UPDATE notification_channels SET name = $1, settings = $2, filters = $3, enabled = $4, realtime = $5, \
             summary = $6, summary_at = $7, reports = $8, updated_at = $9, \
             secret_sealed = CASE WHEN $10 = 1 THEN $11 ELSE secret_sealed END WHERE id = $12",
        )
        .bind(c.name.clone())
        .bind(c.settings.to_string())
        .bind(c.filters.to_string())
        .bind(i64::from(c.enabled))
        .bind(i64::from(c.realtime))
        .bind(i64::from(c.summary))
        .bind(c.summary_at.clone())
        .bind(i64::from(c.reports))
        .bind(c.updated_at)
        .bind(set_secret)
        .bind(sealed)
        .bind(c.id.clone())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("notification channel"));
        }
        Ok(())
    }

    /// Deletes a channel and its outbox rows.
    pub async fn delete_channel(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM notification_outbox WHERE channel_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("notification channel"));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn channel(&self, id: &str) -> Result<Option<ChannelRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels c WHERE c.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(channel_row)
        .transpose()
    }

    /// The channels of these projects, by project and name.
    pub async fn channels(&self, projects: &[String]) -> Result<Vec<ChannelRow>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels c WHERE c.project_id IN "
        ));
        sql.bind_list(projects)
            .push(" ORDER BY c.project_id, c.name, c.id");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(channel_row)
            .collect()
    }

    /// Every enabled channel that receives the daily summary.
    pub async fn summary_channels(&self) -> Result<Vec<ChannelRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels c WHERE c.enabled = 1 AND c.summary = 1 ORDER BY c.id"
        )))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(channel_row)
        .collect()
    }

    /// Queues one notification to one channel unless the channel already has one with this
    /// `dedup_key` (a day's summary queued by another replica, or before a restart). Returns
    /// the new row's id, or None when it was there already.
    pub async fn enqueue_notification(
        &self,
        channel_id: &str,
        kind: &str,
        dedup_key: &str,
        payload: &serde_json::Value,
        now: i64,
    ) -> Result<Option<String>> {
        let id = new_id();
        let r = sqlx::query(
            "INSERT INTO notification_outbox (id, channel_id, project_id, kind, dedup_key, group_key, payload, state, \
             attempts, next_attempt_at, lease_until, last_error, created_at, updated_at) \
             SELECT $1, c.id, c.project_id, $2, $3, NULL, $4, $5, 0, $6, 0, '', $6, $6 \
             FROM notification_channels c WHERE c.id = $7 \
             ON CONFLICT (channel_id, dedup_key) DO NOTHING",
        )
        .bind(id.clone())
        .bind(kind.to_string())
        .bind(dedup_key.to_string())
        .bind(payload.to_string())
        .bind(delivery_state::PENDING)
        .bind(now)
        .bind(channel_id.to_string())
        .execute(self.pool())
        .await?;
        Ok((r.rows_affected() > 0).then_some(id))
    }

    /// Queues a report (`payload`: subject, texts, attachment) to every enabled email channel
    /// of the project that takes reports, in one statement. Returns how many.
    pub async fn enqueue_report(
        &self,
        project_id: &str,
        payload: &serde_json::Value,
        now: i64,
    ) -> Result<u64> {
        let prefix = format!("{}:", new_id());
        let r = sqlx::query(
            "INSERT INTO notification_outbox (id, channel_id, project_id, kind, dedup_key, group_key, payload, state, \
             attempts, next_attempt_at, lease_until, last_error, created_at, updated_at) \
             SELECT $1 || c.id, c.id, c.project_id, $2, $3, NULL, $4, $5, 0, $6, 0, '', $6, $6 \
             FROM notification_channels c WHERE c.project_id = $7 AND c.enabled = 1 AND c.reports = 1 AND c.kind = 'email'",
        )
        .bind(prefix.clone())
        .bind(notification_kind::REPORT)
        .bind(format!("report:{prefix}"))
        .bind(payload.to_string())
        .bind(delivery_state::PENDING)
        .bind(now)
        .bind(project_id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Whether the channel has a notification with this `dedup_key`.
    pub async fn notification_queued(&self, channel_id: &str, dedup_key: &str) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 AS one FROM notification_outbox WHERE channel_id = $1 AND dedup_key = $2",
        )
        .bind(channel_id.to_string())
        .bind(dedup_key.to_string())
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }

    /// Takes up to `limit` due rows (pending, their time come, no live lease) under a lease
    /// until `now + lease_secs`, oldest first, with their channels. A row another replica
    /// claimed in between is not taken: the update checks the lease again.
    pub async fn claim_notifications(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<(String, Vec<Claimed>)> {
        let claim = new_id();
        sqlx::query(
            "UPDATE notification_outbox SET lease_owner = $1, lease_until = $2 WHERE id IN \
             (SELECT id FROM notification_outbox WHERE state = $3 AND next_attempt_at <= $4 AND lease_until <= $4 \
              ORDER BY next_attempt_at LIMIT $5) \
             AND state = $3 AND lease_until <= $4",
        )
        .bind(claim.clone())
        .bind(now + lease_secs)
        .bind(delivery_state::PENDING)
        .bind(now)
        .bind(limit)
        .execute(self.pool())
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_outbox o \
             JOIN notification_channels c ON c.id = o.channel_id WHERE o.lease_owner = $1 AND o.state = $2 \
             ORDER BY o.next_attempt_at, o.created_at"
        )))
        .bind(claim.clone())
        .bind(delivery_state::PENDING)
        .fetch_all(self.pool())
        .await?;
        let mut channels: std::collections::HashMap<String, ChannelRow> = Default::default();
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let delivery = delivery_row(r)?;
            if !channels.contains_key(&delivery.channel_id) {
                // Deleted in between: its rows went with it.
                let Some(c) = self.channel(&delivery.channel_id).await? else {
                    continue;
                };
                channels.insert(c.id.clone(), c);
            }
            claimed.push(Claimed {
                group_key: r.try_get("group_key")?,
                channel: channels[&delivery.channel_id].clone(),
                delivery,
            });
        }
        Ok((claim, claimed))
    }

    /// Marks rows of this claim sent, in one statement. Returns how many (a row whose lease
    /// another replica took over meanwhile is not counted).
    pub async fn notifications_sent(&self, claim: &str, ids: &[String], now: i64) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sql = Sql::new("UPDATE notification_outbox SET state = ");
        sql.bind(Bind::Text(delivery_state::SENT.into()))
            .push(", sent_at = ")
            .bind(Bind::Int(now))
            .push(", updated_at = ")
            .bind(Bind::Int(now))
            .push(", attempts = attempts + 1, last_error = '', lease_owner = NULL, lease_until = 0 WHERE lease_owner = ")
            .bind(Bind::Text(claim.into()))
            .push(" AND id IN ")
            .bind_list(ids);
        Ok(sql.query().execute(self.pool()).await?.rows_affected())
    }

    /// Ends this claim's attempt at a row: pending again at `retry_at` with `error`, or failed
    /// when `retry_at` is None (no attempt left).
    pub async fn notification_failed(
        &self,
        claim: &str,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let state = match retry_at {
            Some(_) => delivery_state::PENDING,
            None => delivery_state::FAILED,
        };
        sqlx::query(
            "UPDATE notification_outbox SET state = $1, attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
             updated_at = $4, lease_owner = NULL, lease_until = 0 WHERE id = $5 AND lease_owner = $6",
        )
        .bind(state)
        .bind(error.to_string())
        .bind(retry_at.unwrap_or(now))
        .bind(now)
        .bind(id.to_string())
        .bind(claim.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a row of this claim skipped, saying why.
    pub async fn notification_skipped(
        &self,
        claim: &str,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notification_outbox SET state = $1, last_error = $2, updated_at = $3, lease_owner = NULL, \
             lease_until = 0 WHERE id = $4 AND lease_owner = $5",
        )
        .bind(delivery_state::SKIPPED)
        .bind(reason.to_string())
        .bind(now)
        .bind(id.to_string())
        .bind(claim.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// When the channel last sent a notification of this group (server, alarm type and key).
    pub async fn last_sent_in_group(
        &self,
        channel_id: &str,
        group_key: &str,
    ) -> Result<Option<i64>> {
        let r = sqlx::query(
            "SELECT MAX(sent_at) AS t FROM notification_outbox WHERE channel_id = $1 AND group_key = $2 AND state = $3",
        )
        .bind(channel_id.to_string())
        .bind(group_key.to_string())
        .bind(delivery_state::SENT)
        .fetch_one(self.pool())
        .await?;
        Ok(opt_i64(&r, "t"))
    }

    fn delivery_filter(f: &DeliveryFilter) -> Sql {
        let mut sql = Sql::new(
            " FROM notification_outbox o JOIN notification_channels c ON c.id = o.channel_id WHERE ",
        );
        if f.projects.is_empty() {
            sql.push("1 = 0");
        } else {
            sql.push("o.project_id IN ").bind_list(&f.projects);
        }
        if let Some(id) = f.channel_id.as_deref().filter(|s| !s.is_empty()) {
            sql.push(" AND o.channel_id = ")
                .bind(Bind::Text(id.to_string()));
        }
        match f.state.as_deref().filter(|s| !s.is_empty()) {
            Some("failing") => {
                sql.push(" AND (o.state = ")
                    .bind(Bind::Text(delivery_state::FAILED.into()))
                    .push(" OR (o.state = ")
                    .bind(Bind::Text(delivery_state::PENDING.into()))
                    .push(" AND o.attempts > 0))");
            }
            Some(s) => {
                sql.push(" AND o.state = ").bind(Bind::Text(s.to_string()));
            }
            None => {}
        }
        sql
    }

    /// Outbox rows matching the filter, newest first.
    pub async fn deliveries(&self, f: &DeliveryFilter) -> Result<(Vec<Delivery>, i64)> {
        let (rows, total) = paged(
            self,
            DELIVERY_COLUMNS,
            Self::delivery_filter(f),
            "o.created_at DESC, o.id",
            f.page,
            f.per_page,
        )
        .await?;
        Ok((rows.iter().map(delivery_row).collect::<Result<_>>()?, total))
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_outbox o JOIN notification_channels c ON c.id = o.channel_id \
             WHERE o.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(delivery_row)
        .transpose()
    }

    /// Makes a failed row, or a pending one waiting for its next attempt, due now; a failed
    /// one gets its attempts back. False when the row is neither (sent, skipped, or being
    /// sent right now).
    pub async fn retry_notification(&self, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE notification_outbox SET attempts = CASE WHEN state = $1 THEN 0 ELSE attempts END, state = $2, \
             next_attempt_at = $3, updated_at = $3 WHERE id = $4 AND (state = $1 OR state = $2) AND lease_until <= $3",
        )
        .bind(delivery_state::FAILED)
        .bind(delivery_state::PENDING)
        .bind(now)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Rows waiting to be sent, across the fleet (the `/metrics` outbox depth).
    pub async fn notification_outbox_depth(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM notification_outbox WHERE state = $1")
                .bind(delivery_state::PENDING)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// Deletes sent, skipped and failed rows last changed before `before`, at most 10,000 per
    /// statement (SQLite's write lock is never held long). Returns how many.
    pub async fn expire_notifications(&self, before: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let r = sqlx::query(
                "DELETE FROM notification_outbox WHERE id IN (SELECT id FROM notification_outbox \
                 WHERE state <> $1 AND updated_at < $2 LIMIT 10000)",
            )
            .bind(delivery_state::PENDING)
            .bind(before)
            .execute(self.pool())
            .await?;
            total += r.rows_affected();
            if r.rows_affected() < 10_000 {
                return Ok(total);
            }
        }
    }

    /// The project's alarms seen in `[from, to)`, counted for a summary.
    pub async fn alarm_counts(&self, project_id: &str, from: i64, to: i64) -> Result<AlarmCounts> {
        const RANGE: &str = "a.project_id = $1 AND a.last_seen >= $2 AND a.last_seen < $3";
        let range = |sql: String| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(project_id.to_string())
                .bind(from)
                .bind(to)
        };
        let r = range(format!(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(a.count), 0) AS BIGINT) AS occ, \
             CAST(COALESCE(SUM(CASE WHEN a.state = $4 THEN 1 ELSE 0 END), 0) AS BIGINT) AS open_ FROM alarms a WHERE {RANGE}"
        ))
        .bind(super::alarm_state::UNHANDLED)
        .fetch_one(self.pool())
        .await?;
        let mut out = AlarmCounts {
            alarms: r.try_get("n")?,
            occurrences: opt_i64(&r, "occ").unwrap_or(0),
            unhandled: opt_i64(&r, "open_").unwrap_or(0),
            ..Default::default()
        };
        for r in range(format!(
            "SELECT a.severity, MAX(a.severity_rank) AS rank_, COUNT(*) AS n FROM alarms a WHERE {RANGE} \
             GROUP BY a.severity ORDER BY rank_ DESC"
        ))
        .fetch_all(self.pool())
        .await?
        {
            out.by_severity
                .push((r.try_get("severity")?, r.try_get("n")?));
        }
        for r in range(format!(
            "SELECT a.alarm_type, MAX(a.title) AS title, COUNT(*) AS n FROM alarms a WHERE {RANGE} \
             GROUP BY a.alarm_type ORDER BY n DESC, a.alarm_type LIMIT 50"
        ))
        .fetch_all(self.pool())
        .await?
        {
            out.by_type.push((
                r.try_get("alarm_type")?,
                r.try_get("title")?,
                r.try_get("n")?,
            ));
        }
        for r in range(format!(
            "SELECT s.name, COUNT(*) AS n, CAST(SUM(CASE WHEN a.state = $4 THEN 1 ELSE 0 END) AS BIGINT) AS open_ \
             FROM alarms a JOIN servers s ON s.id = a.server_id WHERE {RANGE} GROUP BY s.name ORDER BY n DESC, s.name LIMIT 100"
        ))
        .bind(super::alarm_state::UNHANDLED)
        .fetch_all(self.pool())
        .await?
        {
            out.by_server.push((
                r.try_get("name")?,
                r.try_get("n")?,
                opt_i64(&r, "open_").unwrap_or(0),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "notifications_tests.rs"]
mod tests;
