//! Agents' durable records stored exactly once: events and task updates with the per-agent seq.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, StoreError, now};
use hostward_proto::Message;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub server_id: String,
    pub seq: i64,
    pub ts: i64,
    pub received_at: i64,
    pub event_type: String,
    pub data: serde_json::Value,
}

/// What [`Store::store_records`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Highest seq now stored: the ack.
    pub high: u64,
    /// What the gateway does next, in order, once the transaction committed.
    pub follow_ups: Vec<FollowUp>,
}

/// A step after a records transaction. Capabilities ask for these generic steps from their
/// post-apply functions; the gateway carries them out without knowing any capability.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// The server's config version moved in the transaction: push it its config.
    PushConfig,
    /// Queue this task for the server. Whatever must not be asked twice was claimed inside
    /// the transaction.
    QueueTask {
        kind: &'static str,
        params: serde_json::Value,
        expires_in_secs: i64,
    },
    /// Wake a background job of this replica now rather than at its next tick.
    Wake(Job),
}

/// Background jobs a [`FollowUp::Wake`] can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Matching servers' software against the vulnerability database.
    VulnMatching,
}

impl Store {
    /// Stores a batch of an agent's durable records exactly once and returns the highest seq
    /// now stored, which the gateway acks. Records at or below the stored seq are duplicates of
    /// an earlier delivery and are skipped. One transaction: records and seq move together.
    pub async fn store_records(
        &self,
        server_id: &str,
        records: &[(u64, Message)],
    ) -> Result<Stored> {
        let mut tx = self.begin().await?;
        let last: i64 = sqlx::query("SELECT last_seq FROM servers WHERE id = $1")
            .bind(server_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("server"))?
            .try_get("last_seq")?;
        let mut high = last;
        let mut follow_ups = Vec::new();
        let t = now();
        for (seq, msg) in records {
            let seq = *seq as i64;
            if seq <= high {
                continue;
            }
            match msg {
                Message::Event(e) => {
                    sqlx::query(
                        "INSERT INTO events (server_id, seq, ts, received_at, event_type, data) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(server_id.to_string())
                    .bind(seq)
                    .bind(e.ts)
                    .bind(t)
                    .bind(e.event_type.clone())
                    .bind(e.data.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                Message::TaskUpdate(u) => {
                    // A late update never moves a task out of a final state.
                    sqlx::query(
                        "UPDATE tasks SET state = $1, output = $2, updated_at = $3 \
                         WHERE id = $4 AND server_id = $5 AND state NOT IN ('done', 'failed', 'expired')",
                    )
                    .bind(u.state.as_str().to_string())
                    .bind(u.output.to_string())
                    .bind(t)
                    .bind(u.task_id.clone())
                    .bind(server_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                    if u.state.is_final() {
                        let detail = u.output.get("error").and_then(|e| e.as_str()).unwrap_or("");
                        super::risk::fix_task_finished(
                            &mut tx,
                            server_id,
                            &u.task_id,
                            u.state == hostward_proto::TaskState::Done,
                            detail,
                        )
                        .await?;
                    }
                }
                Message::Inventory(inv) => {
                    follow_ups.extend(super::inventory::record(&mut tx, server_id, inv).await?);
                }
                Message::Risk(report) => {
                    super::risk::apply_risk_report(&mut tx, server_id, report).await?;
                }
                Message::Alarm(alarm) => {
                    super::alarms::apply_alarm(&mut tx, server_id, alarm).await?;
                }
                Message::Block(change) => {
                    super::alarms::apply_block(&mut tx, server_id, change).await?;
                }
                Message::LoginIp(rec) => {
                    let config_moved =
                        super::login_ips::apply_login_ip(&mut tx, server_id, rec).await?;
                    follow_ups.extend(config_moved.then_some(FollowUp::PushConfig));
                }
                _ => {}
            }
            high = seq;
        }
        if high != last {
            sqlx::query("UPDATE servers SET last_seq = $1 WHERE id = $2")
                .bind(high)
                .bind(server_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        follow_ups.dedup();
        Ok(Stored {
            high: high as u64,
            follow_ups,
        })
    }

    /// Newest events of a server first.
    pub async fn list_events(&self, server_id: &str, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, server_id, seq, ts, received_at, event_type, data FROM events WHERE server_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(server_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(StoredEvent {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    received_at: r.try_get("received_at")?,
                    event_type: r.try_get("event_type")?,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    pub async fn count_events(&self, server_id: &str) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM events WHERE server_id = $1")
                .bind(server_id.to_string())
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Event;

    fn ev(n: i64) -> Message {
        Message::Event(Event {
            ts: n,
            event_type: "custom".into(),
            data: serde_json::json!({ "n": n }),
        })
    }

    #[tokio::test]
    async fn redelivered_records_are_stored_once() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id,
                    name: "h".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let first: Vec<_> = (1..=5).map(|i| (i as u64, ev(i))).collect();
            assert_eq!(
                s.store_records(&srv.id, &first).await.unwrap().high,
                5,
                "{backend}"
            );
            // The ack was lost: the agent sends 3..=8 again.
            let again: Vec<_> = (3..=8).map(|i| (i as u64, ev(i))).collect();
            assert_eq!(
                s.store_records(&srv.id, &again).await.unwrap().high,
                8,
                "{backend}"
            );
            assert_eq!(s.count_events(&srv.id).await.unwrap(), 8, "{backend}");
            let seqs: Vec<i64> = s
                .list_events(&srv.id, 100)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(seqs, vec![8, 7, 6, 5, 4, 3, 2, 1], "{backend}");
        }
    }
}
