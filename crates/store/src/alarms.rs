//! The alarm pipeline every detector feeds: alarms aggregated per (server, type, key) with a
//! count and first/last seen, their handling and its history, the alarm whitelist, retention,
//! and each server's firewall blocks as its agent reports them.

use hostward_proto::alarm::{Alarm, BlockChange, alarm_type};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::history::{self, History};
use super::{Bind, Result, Sql, Store, StoreError, flag, new_id, now, opt_i64, paged};

/// Handling states of an alarm.
pub mod alarm_state {
    pub const UNHANDLED: &str = "unhandled";
    pub const HANDLED: &str = "handled";
    pub const IGNORED: &str = "ignored";
    pub const ALL: &[&str] = &[UNHANDLED, HANDLED, IGNORED];
}

/// Repeats of an open alarm within this many seconds of its last occurrence add to it.
pub const AGGREGATION_SECS: i64 = 86_400;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct AlarmRow {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    /// Stable code, e.g. `brute_force`.
    pub alarm_type: String,
    pub title: String,
    /// critical, high, medium, low.
    pub severity: String,
    /// MITRE ATT&CK tactic, e.g. `TA0006 Credential Access`.
    pub tactic: String,
    /// MITRE ATT&CK technique, e.g. `T1110.001 Brute Force: Password Guessing`.
    pub technique: String,
    pub source_ip: Option<String>,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub count: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// unhandled, handled, ignored.
    pub state: String,
    pub note: String,
}

#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    pub projects: Vec<String>,
    pub server_id: Option<String>,
    pub alarm_type: Option<String>,
    pub severity: Option<String>,
    pub state: Option<String>,
    /// `last_seen` at or after.
    pub since: Option<i64>,
    /// `first_seen` at or before.
    pub until: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct AlarmWhitelistRule {
    pub id: String,
    pub project_id: String,
    /// None: every type.
    pub alarm_type: Option<String>,
    /// An address; None: every address.
    pub source_ip: Option<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BlockedIp {
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub addr: String,
    /// `brute_force` or `manual`.
    pub reason: String,
    pub service: Option<String>,
    pub blocked_at: i64,
    pub expires_at: Option<i64>,
    /// Whether the block is in force (reported and not yet expired or lifted).
    pub active: bool,
    pub unblocked_at: Option<i64>,
}

const ALARM_COLUMNS: &str = "a.id, a.server_id, s.name AS server_name, a.project_id, a.alarm_type, a.title, a.severity, \
     a.tactic, a.technique, a.source_ip, a.evidence, a.count, a.first_seen, a.last_seen, a.state, a.note";

fn alarm_row(r: &AnyRow) -> Result<AlarmRow> {
    let evidence: String = r.try_get("evidence")?;
    Ok(AlarmRow {
        id: r.try_get("id")?,
        server_id: r.try_get("server_id")?,
        server_name: r.try_get("server_name")?,
        project_id: r.try_get("project_id")?,
        alarm_type: r.try_get("alarm_type")?,
        title: r.try_get("title")?,
        severity: r.try_get("severity")?,
        tactic: r.try_get("tactic")?,
        technique: r.try_get("technique")?,
        source_ip: r.try_get("source_ip")?,
        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
        count: r.try_get("count")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        state: r.try_get("state")?,
        note: r.try_get("note")?,
    })
}

/// Stores an agent's alarm inside the records transaction. A record the catalog does not know
/// is dropped with a warning (an older center, a newer agent): it must not stop the records
/// behind it. A new alarm (not a repeat adding to an open one, nor one a whitelist rule
/// ignores) queues its notifications in the same transaction; returns whether it queued any.
pub(super) async fn apply_alarm(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    a: &Alarm,
) -> Result<bool> {
    if let Err(e) = a.validate() {
        tracing::warn!(server_id, error = %e, "dropping an alarm record");
        return Ok(false);
    }
    let kind = alarm_type(&a.alarm_type).expect("validated");
    let srv = sqlx::query("SELECT project_id, name FROM servers WHERE id = $1")
        .bind(server_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    let project_id: String = srv.try_get("project_id")?;
    let server_name: String = srv.try_get("name")?;
    let evidence = serde_json::to_string(&a.evidence).expect("evidence serialises");
    let t = now();
    let open = sqlx::query(
        "SELECT id FROM alarms WHERE server_id = $1 AND alarm_type = $2 AND agg_key = $3 AND state = $4 \
         AND last_seen >= $5 ORDER BY last_seen DESC LIMIT 1",
    )
    .bind(server_id.to_string())
    .bind(a.alarm_type.clone())
    .bind(a.key.clone())
    .bind(alarm_state::UNHANDLED)
    .bind(a.ts - AGGREGATION_SECS)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = open {
        let id: String = r.try_get("id")?;
        sqlx::query(
            "UPDATE alarms SET count = count + $1, last_seen = CASE WHEN last_seen > $2 THEN last_seen ELSE $2 END, \
             evidence = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(i64::from(a.count))
        .bind(a.ts)
        .bind(evidence)
        .bind(t)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        return Ok(false);
    }
    let whitelisted = sqlx::query(
        "SELECT id FROM alarm_whitelist WHERE project_id = $1 AND (alarm_type IS NULL OR alarm_type = $2) \
         AND (source_ip IS NULL OR source_ip = $3) LIMIT 1",
    )
    .bind(project_id.clone())
    .bind(a.alarm_type.clone())
    .bind(a.evidence.source_ip.clone().unwrap_or_default())
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get::<String, _>("id"))
    .transpose()?;
    let (state, note) = match &whitelisted {
        Some(rule) => (alarm_state::IGNORED, format!("alarm whitelist rule {rule}")),
        None => (alarm_state::UNHANDLED, String::new()),
    };
    let id = new_id();
    let m = kind.mitre;
    sqlx::query(
        "INSERT INTO alarms (id, server_id, project_id, alarm_type, severity, severity_rank, tactic, technique, agg_key, \
         title, source_ip, evidence, count, first_seen, last_seen, state, note, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17)",
    )
    .bind(id.clone())
    .bind(server_id.to_string())
    .bind(project_id.clone())
    .bind(a.alarm_type.clone())
    .bind(kind.severity.as_str())
    .bind(kind.severity as i64)
    .bind(format!("{} {}", m.tactic_id, m.tactic))
    .bind(format!("{} {}", m.technique_id, m.technique))
    .bind(a.key.clone())
    .bind(kind.title)
    .bind(a.evidence.source_ip.clone())
    .bind(evidence.clone())
    .bind(i64::from(a.count))
    .bind(a.ts)
    .bind(state)
    .bind(note.clone())
    .bind(t)
    .execute(&mut **tx)
    .await?;
    history::add(
        tx,
        History::Alarm,
        &id,
        "system",
        "raised",
        "",
        state,
        &note,
        t,
    )
    .await?;
    if whitelisted.is_some() {
        return Ok(false);
    }
    // What the notification says, as the alarm was raised (later repeats add to its count on
    // the alarm page, not to the message).
    let payload = serde_json::json!({
        "alarm_id": id,
        "server_id": server_id,
        "server_name": server_name,
        "alarm_type": a.alarm_type,
        "title": kind.title,
        "severity": kind.severity.as_str(),
        "tactic": format!("{} {}", m.tactic_id, m.tactic),
        "technique": format!("{} {}", m.technique_id, m.technique),
        "key": a.key,
        "source_ip": a.evidence.source_ip,
        "count": a.count,
        "ts": a.ts,
        "evidence": serde_json::from_str::<serde_json::Value>(&evidence).unwrap_or_default(),
    });
    let group = format!("{server_id}\u{1f}{}\u{1f}{}", a.alarm_type, a.key);
    let queued =
        super::notifications::enqueue_alarm(tx, &project_id, &id, &group, &payload, t).await?;
    Ok(queued > 0)
}

/// Records a block or unblock the agent made.
pub(super) async fn apply_block(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    b: &BlockChange,
) -> Result<()> {
    if b.addr.parse::<std::net::IpAddr>().is_err() {
        tracing::warn!(server_id, "dropping a block record without a valid address");
        return Ok(());
    }
    match b.action.as_str() {
        "blocked" => {
            sqlx::query(
                "INSERT INTO blocked_ips (server_id, addr, reason, service, blocked_at, expires_at, active, unblocked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, NULL) ON CONFLICT (server_id, addr) DO UPDATE SET \
                 reason = excluded.reason, service = excluded.service, blocked_at = excluded.blocked_at, \
                 expires_at = excluded.expires_at, active = 1, unblocked_at = NULL",
            )
            .bind(server_id.to_string())
            .bind(b.addr.clone())
            .bind(b.reason.clone())
            .bind(b.service.clone())
            .bind(b.ts)
            .bind(b.expires_at)
            .execute(&mut **tx)
            .await?;
        }
        "unblocked" => {
            sqlx::query("UPDATE blocked_ips SET active = 0, unblocked_at = $1 WHERE server_id = $2 AND addr = $3")
                .bind(b.ts)
                .bind(server_id.to_string())
                .bind(b.addr.clone())
                .execute(&mut **tx)
                .await?;
        }
        other => tracing::warn!(
            server_id,
            action = other,
            "dropping a block record with an unknown action"
        ),
    }
    Ok(())
}

impl Store {
    fn alarm_filter(f: &AlarmFilter) -> Sql {
        let mut sql = Sql::new(" FROM alarms a JOIN servers s ON s.id = a.server_id WHERE ");
        match &f.server_id {
            Some(id) => sql.push("a.server_id = ").bind(Bind::Text(id.clone())),
            None if f.projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("a.project_id IN ").bind_list(&f.projects),
        };
        for (col, v) in [
            ("a.alarm_type", &f.alarm_type),
            ("a.severity", &f.severity),
            ("a.state", &f.state),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                sql.push(&format!(" AND {col} = "))
                    .bind(Bind::Text(v.to_string()));
            }
        }
        if let Some(t) = f.since {
            sql.push(" AND a.last_seen >= ").bind(Bind::Int(t));
        }
        if let Some(t) = f.until {
            sql.push(" AND a.first_seen <= ").bind(Bind::Int(t));
        }
        sql
    }

    /// Alarms matching the filter, newest first.
    pub async fn alarms(&self, f: &AlarmFilter) -> Result<(Vec<AlarmRow>, i64)> {
        let (rows, total) = paged(
            self,
            ALARM_COLUMNS,
            Self::alarm_filter(f),
            "a.last_seen DESC, a.id",
            f.page,
            f.per_page,
        )
        .await?;
        Ok((rows.iter().map(alarm_row).collect::<Result<_>>()?, total))
    }

    pub async fn alarm(&self, id: &str) -> Result<Option<AlarmRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALARM_COLUMNS} FROM alarms a JOIN servers s ON s.id = a.server_id WHERE a.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(alarm_row)
        .transpose()
    }

    /// A person's handling of alarms, each with a history row. Returns how many changed.
    pub async fn set_alarm_state(
        &self,
        ids: &[String],
        to: &str,
        actor: &str,
        action: &str,
        note: &str,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        let t = now();
        let mut changed = 0;
        for id in ids {
            let Some(r) = sqlx::query("SELECT state FROM alarms WHERE id = $1")
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await?
            else {
                continue;
            };
            let from: String = r.try_get("state")?;
            sqlx::query("UPDATE alarms SET state = $1, note = $2, updated_at = $3 WHERE id = $4")
                .bind(to.to_string())
                .bind(note.to_string())
                .bind(t)
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
            history::add(
                &mut tx,
                History::Alarm,
                id,
                actor,
                action,
                &from,
                to,
                note,
                t,
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn add_alarm_whitelist(&self, r: &AlarmWhitelistRule) -> Result<()> {
        sqlx::query(
            "INSERT INTO alarm_whitelist (id, project_id, alarm_type, source_ip, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.clone())
        .bind(r.project_id.clone())
        .bind(r.alarm_type.clone())
        .bind(r.source_ip.clone())
        .bind(r.reason.clone())
        .bind(r.created_by.clone())
        .bind(r.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn alarm_whitelist(&self, projects: &[String]) -> Result<Vec<AlarmWhitelistRule>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT id, project_id, alarm_type, source_ip, reason, created_by, created_at FROM alarm_whitelist WHERE project_id IN ",
        );
        sql.bind_list(projects)
            .push(" ORDER BY created_at DESC, id");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(AlarmWhitelistRule {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    alarm_type: r.try_get("alarm_type")?,
                    source_ip: r.try_get("source_ip")?,
                    reason: r.try_get("reason")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a whitelist rule; returns its project, or NotFound.
    pub async fn delete_alarm_whitelist(&self, id: &str) -> Result<String> {
        let project: String = sqlx::query("SELECT project_id FROM alarm_whitelist WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("whitelist rule"))?
            .try_get("project_id")?;
        sqlx::query("DELETE FROM alarm_whitelist WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(project)
    }

    /// Deletes alarms whose last occurrence is older than `days`. Returns how many.
    pub async fn expire_alarms(&self, days: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM alarms WHERE last_seen < $1")
            .bind(now() - days * 86_400)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Blocks of one server or of the servers of `projects`; `active_only` leaves out lifted
    /// and expired ones.
    pub async fn blocked_ips(
        &self,
        projects: &[String],
        server_id: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<BlockedIp>> {
        let mut sql = Sql::new(
            "SELECT b.server_id, s.name AS server_name, s.project_id, b.addr, b.reason, b.service, b.blocked_at, \
             b.expires_at, b.active, b.unblocked_at FROM blocked_ips b JOIN servers s ON s.id = b.server_id WHERE ",
        );
        match server_id {
            Some(id) => sql.push("b.server_id = ").bind(Bind::Text(id.to_string())),
            None if projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("s.project_id IN ").bind_list(projects),
        };
        if active_only {
            sql.push(" AND b.active = 1 AND (b.expires_at IS NULL OR b.expires_at > ")
                .bind(Bind::Int(now()))
                .push(")");
        }
        sql.push(" ORDER BY b.blocked_at DESC LIMIT 10000");
        let t = now();
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let expires_at = opt_i64(r, "expires_at");
                Ok(BlockedIp {
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    project_id: r.try_get("project_id")?,
                    addr: r.try_get("addr")?,
                    reason: r.try_get("reason")?,
                    service: r.try_get("service")?,
                    blocked_at: r.try_get("blocked_at")?,
                    active: flag(r, "active") && expires_at.is_none_or(|e| e > t),
                    expires_at,
                    unblocked_at: opt_i64(r, "unblocked_at"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Message;
    use hostward_proto::alarm::Evidence;

    fn brute(ts: i64, ip: &str, count: u32) -> Message {
        Message::Alarm(Alarm {
            ts,
            alarm_type: "brute_force".into(),
            key: ip.into(),
            count,
            evidence: Evidence {
                source_ip: Some(ip.into()),
                users: vec!["root".into()],
                service: Some("ssh".into()),
                ..Default::default()
            },
        })
    }

    #[tokio::test]
    async fn repeats_aggregate_and_handled_alarms_start_a_new_one() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "web".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            s.store_records(
                &srv.id,
                &[
                    (1, brute(1000, "192.0.2.7", 5)),
                    (2, brute(1010, "192.0.2.7", 3)),
                    (3, brute(1020, "2001:db8::7", 5)),
                ],
            )
            .await
            .unwrap();
            let f = AlarmFilter {
                projects: vec![p.id.clone()],
                page: 1,
                per_page: 10,
                ..Default::default()
            };
            let (list, total) = s.alarms(&f).await.unwrap();
            assert_eq!(total, 2, "{backend}");
            let v4 = list
                .iter()
                .find(|a| a.source_ip.as_deref() == Some("192.0.2.7"))
                .unwrap();
            assert_eq!(
                (v4.count, v4.first_seen, v4.last_seen),
                (8, 1000, 1010),
                "{backend}"
            );
            assert_eq!(
                (v4.severity.as_str(), v4.technique.as_str()),
                ("high", "T1110.001 Brute Force: Password Guessing"),
                "{backend}"
            );

            s.set_alarm_state(
                std::slice::from_ref(&v4.id),
                alarm_state::HANDLED,
                "alice",
                "handle",
                "blocked upstream",
            )
            .await
            .unwrap();
            s.store_records(&srv.id, &[(4, brute(1030, "192.0.2.7", 5))])
                .await
                .unwrap();
            let (list, _) = s
                .alarms(&AlarmFilter {
                    state: Some("unhandled".into()),
                    ..f.clone()
                })
                .await
                .unwrap();
            assert_eq!(
                list.len(),
                2,
                "a handled alarm is not reopened by repeats: {backend}"
            );
            let hist = s.handling_history(History::Alarm, &v4.id).await.unwrap();
            assert_eq!(
                (hist[0].actor.as_str(), hist[0].to_state.as_str()),
                ("alice", "handled"),
                "{backend}"
            );

            // Whitelisted sources are stored, but as ignored; unknown types are dropped.
            s.add_alarm_whitelist(&AlarmWhitelistRule {
                id: new_id(),
                project_id: p.id.clone(),
                alarm_type: Some("brute_force".into()),
                source_ip: Some("198.51.100.1".into()),
                reason: "scanner".into(),
                created_by: "alice".into(),
                created_at: 1,
            })
            .await
            .unwrap();
            let unknown = Message::Alarm(Alarm {
                ts: 1,
                alarm_type: "nope".into(),
                key: "k".into(),
                count: 1,
                evidence: Evidence::default(),
            });
            s.store_records(
                &srv.id,
                &[(5, brute(1040, "198.51.100.1", 5)), (6, unknown)],
            )
            .await
            .unwrap();
            let (ignored, _) = s
                .alarms(&AlarmFilter {
                    state: Some("ignored".into()),
                    ..f.clone()
                })
                .await
                .unwrap();
            assert_eq!(ignored.len(), 1, "{backend}");
            assert_eq!(
                s.alarms(&f).await.unwrap().1,
                4,
                "the unknown type was dropped: {backend}"
            );
            assert_eq!(
                s.expire_alarms(30).await.unwrap(),
                4,
                "all are decades old: {backend}"
            );
        }
    }

    #[tokio::test]
    async fn block_records_keep_the_list_of_blocked_addresses() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "web".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let t = now();
            let block = |addr: &str, action: &str, exp: i64| {
                Message::Block(BlockChange {
                    ts: t,
                    addr: addr.into(),
                    action: action.into(),
                    reason: "brute_force".into(),
                    service: Some("ssh".into()),
                    expires_at: Some(exp),
                })
            };
            s.store_records(
                &srv.id,
                &[
                    (1, block("192.0.2.9", "blocked", t + 3600)),
                    (2, block("192.0.2.10", "blocked", t - 1)),
                    (3, block("not an ip", "blocked", t + 5)),
                ],
            )
            .await
            .unwrap();
            let active = s
                .blocked_ips(std::slice::from_ref(&p.id), None, true)
                .await
                .unwrap();
            assert_eq!(
                active.iter().map(|b| b.addr.as_str()).collect::<Vec<_>>(),
                ["192.0.2.9"],
                "expired is not active: {backend}"
            );
            s.store_records(&srv.id, &[(4, block("192.0.2.9", "unblocked", 0))])
                .await
                .unwrap();
            assert!(
                s.blocked_ips(&[], Some(&srv.id), true)
                    .await
                    .unwrap()
                    .is_empty(),
                "{backend}"
            );
            assert_eq!(
                s.blocked_ips(&[], Some(&srv.id), false)
                    .await
                    .unwrap()
                    .len(),
                2,
                "history kept: {backend}"
            );
        }
    }
}
