//! Agents' durable records stored exactly once: events and task updates with the per-agent seq,
//! and the one place where each record kind is handed to its capability.
//!
//! A record goes through two phases inside the records transaction. Its capability's apply
//! step (one `match` arm per record kind, so the compiler lists them) stores it and reports
//! what changed as an [`Applied`]; then the post-apply steps run in the order written in
//! [`post_apply`], each reacting to the changes that concern its capability (a finished fix
//! task settles the risk findings, new software is matched again, a moved config version is
//! pushed). What must happen after the commit goes back to the gateway as generic
//! [`FollowUp`]s, which name no capability.

use hostward_proto::inventory::InventoryKind;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

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

/// Background jobs of a replica that a [`FollowUp::Wake`] can name: jobs, not capabilities
/// (the gateway wakes one without knowing what it is for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Matching servers' software against the vulnerability database.
    VulnMatching,
    /// Sending the notifications outbox.
    Notifications,
}

/// What a capability's apply step changed, for the post-apply steps. Internal to the store:
/// the gateway sees only the [`FollowUp`]s these lead to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Applied<'a> {
    /// Nothing another step reacts to.
    Nothing,
    /// A task reached a final state.
    TaskFinished {
        task_id: &'a str,
        success: bool,
        detail: &'a str,
    },
    /// An inventory record of this kind was applied.
    Inventory(InventoryKind),
    /// An inventory diff of this kind did not fit the stored state; nothing changed.
    InventoryOutOfStep(InventoryKind),
    /// The server's config version moved.
    ConfigMoved,
    /// Notifications were queued in the outbox.
    NotificationsQueued,
}

/// The apply step: hands one record to its capability.
async fn apply<'a>(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    seq: i64,
    msg: &'a Message,
) -> Result<Applied<'a>> {
    Ok(match msg {
        Message::Event(e) => {
            sqlx::query(
                "INSERT INTO events (server_id, seq, ts, received_at, event_type, data) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(server_id.to_string())
            .bind(seq)
            .bind(e.ts)
            .bind(now())
            .bind(e.event_type.clone())
            .bind(e.data.to_string())
            .execute(&mut **tx)
            .await?;
            Applied::Nothing
        }
        Message::TaskUpdate(u) => {
            super::tasks::apply_update(tx, server_id, u).await?;
            if u.state.is_final() {
                Applied::TaskFinished {
                    task_id: &u.task_id,
                    success: u.state == hostward_proto::TaskState::Done,
                    detail: u.output.get("error").and_then(|e| e.as_str()).unwrap_or(""),
                }
            } else {
                Applied::Nothing
            }
        }
        Message::Inventory(inv) => {
            if super::inventory::apply_inventory(tx, server_id, inv).await? {
                Applied::InventoryOutOfStep(inv.kind())
            } else {
                Applied::Inventory(inv.kind())
            }
        }
        Message::Risk(report) => {
            super::risk::apply_risk_report(tx, server_id, report).await?;
            Applied::Nothing
        }
        Message::Alarm(alarm) => {
            if super::alarms::apply_alarm(tx, server_id, alarm).await? {
                Applied::NotificationsQueued
            } else {
                Applied::Nothing
            }
        }
        Message::Block(change) => {
            super::alarms::apply_block(tx, server_id, change).await?;
            Applied::Nothing
        }
        Message::LoginIp(rec) => {
            if super::login_ips::apply_login_ip(tx, server_id, rec).await? {
                Applied::ConfigMoved
            } else {
                Applied::Nothing
            }
        }
        Message::IsolatedFile(rec) => {
            super::quarantine::apply_isolated_file(tx, server_id, rec).await?;
            Applied::Nothing
        }
        Message::FileChanges(rec) => {
            super::fim::apply_file_changes(tx, server_id, rec).await?;
            Applied::Nothing
        }
        // Not records: the gateway handles the rest of the protocol itself. Listed rather than
        // `_` so that a new message kind is a compile error here until someone decides.
        Message::Hello(_)
        | Message::Heartbeat(_)
        | Message::Bye(_)
        | Message::Config(_)
        | Message::Task(_)
        | Message::Ack(_)
        | Message::Resume(_)
        | Message::Error(_) => Applied::Nothing,
    })
}

/// The post-apply steps, in the order they run after each record. A new capability that reacts
/// to another's records adds its step here, at the place its order requires; the steps' work
/// lives in the capabilities' files.
async fn post_apply(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    applied: Applied<'_>,
    out: &mut Vec<FollowUp>,
) -> Result<()> {
    // 1. Inventory: a diff that did not fit asks the agent for a full snapshot.
    if let Applied::InventoryOutOfStep(kind) = applied {
        out.extend(super::inventory::ask_full_snapshot(tx, server_id, kind).await?);
    }
    // 2. Risk: a finished fix task settles its findings; new software is matched again, by
    //    this replica's job at once (any replica's would pick it up at its next tick).
    match applied {
        Applied::TaskFinished {
            task_id,
            success,
            detail,
        } => super::risk::fix_task_finished(tx, server_id, task_id, success, detail).await?,
        Applied::Inventory(InventoryKind::Software) => {
            super::risk::software_changed(tx, server_id).await?;
            out.push(FollowUp::Wake(Job::VulnMatching));
        }
        _ => {}
    }
    // 3. Config: whatever moved the config version, the agent gets the new config.
    if applied == Applied::ConfigMoved {
        out.push(FollowUp::PushConfig);
    }
    // 4. Notifications: what was queued is sent by this replica's job at once (any replica's
    //    would pick it up at its next tick).
    if applied == Applied::NotificationsQueued {
        out.push(FollowUp::Wake(Job::Notifications));
    }
    Ok(())
}

/// The highest seq stored from the server.
async fn stored_seq(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<i64> {
    Ok(sqlx::query("SELECT last_seq FROM servers WHERE id = $1")
        .bind(server_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?
        .try_get("last_seq")?)
}

/// Moves the stored seq to `seq`, and the outbox it came from to `outbox_id` (unless empty: an
/// agent that sends no id leaves the known one).
async fn advance_seq(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    seq: i64,
    outbox_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE servers SET last_seq = $1, outbox_id = CASE WHEN $2 = '' THEN outbox_id ELSE $2 END WHERE id = $3",
    )
    .bind(seq)
    .bind(outbox_id.to_string())
    .bind(server_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a batch of an agent's durable records exactly once and returns the highest seq
    /// now stored, which the gateway acks. Records at or below the stored seq are duplicates of
    /// an earlier delivery and are skipped. One transaction: records, their post-apply steps
    /// and the seq move together.
    pub async fn store_records(
        &self,
        server_id: &str,
        records: &[(u64, Message)],
    ) -> Result<Stored> {
        self.store_records_from(server_id, "", records).await
    }

    /// As [`Store::store_records`], naming the agent outbox they come from (empty from agents
    /// that send none); it is stored with the seq, so the next connect's `resume` names it.
    pub async fn store_records_from(
        &self,
        server_id: &str,
        outbox_id: &str,
        records: &[(u64, Message)],
    ) -> Result<Stored> {
        let mut tx = self.begin().await?;
        let last = stored_seq(&mut tx, server_id).await?;
        let mut high = last;
        let mut follow_ups = Vec::new();
        for (seq, msg) in records {
            let seq = *seq as i64;
            if seq <= high {
                continue;
            }
            let applied = apply(&mut tx, server_id, seq, msg).await?;
            post_apply(&mut tx, server_id, applied, &mut follow_ups).await?;
            high = seq;
        }
        if high != last {
            advance_seq(&mut tx, server_id, high, outbox_id).await?;
        }
        tx.commit().await?;
        follow_ups.dedup();
        Ok(Stored {
            high: high as u64,
            follow_ups,
        })
    }

    /// Keeps a record its capability could not store (see [`StoreError::is_permanent`]) whole,
    /// with the error, and moves the seq past it in one transaction: it is acked like a stored
    /// record, so it neither blocks the agent's later records nor is lost. Returns the seq to
    /// ack.
    pub async fn reject_record(
        &self,
        server_id: &str,
        outbox_id: &str,
        seq: u64,
        msg: &Message,
        error: &str,
    ) -> Result<u64> {
        let (kind, body) = msg.kind_and_body();
        let mut tx = self.begin().await?;
        let last = stored_seq(&mut tx, server_id).await?;
        let seq = seq as i64;
        if seq > last {
            sqlx::query(
                "INSERT INTO rejected_records (server_id, seq, kind, body, error, received_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(server_id.to_string())
            .bind(seq)
            .bind(kind)
            .bind(body.to_string())
            .bind(error.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
            advance_seq(&mut tx, server_id, seq, outbox_id).await?;
        }
        tx.commit().await?;
        Ok(seq.max(last) as u64)
    }

    /// Records of a server kept by [`Store::reject_record`]: (seq, kind, error), oldest first.
    pub async fn rejected_records(&self, server_id: &str) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT seq, kind, error FROM rejected_records WHERE server_id = $1 ORDER BY seq",
        )
        .bind(server_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("kind")?, r.try_get("error")?)))
            .collect()
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

    #[tokio::test]
    async fn a_record_that_breaks_a_constraint_is_kept_and_acked_not_retried_forever() {
        assert!(!StoreError::Db(sqlx::Error::PoolTimedOut).is_permanent());
        assert!(!StoreError::Db(sqlx::Error::PoolClosed).is_permanent());
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
            let first: Vec<_> = (1..=3).map(|i| (i as u64, ev(i))).collect();
            s.store_records_from(&srv.id, "box-a", &first)
                .await
                .unwrap();
            assert_eq!(
                s.server(&srv.id).await.unwrap().unwrap().outbox_id,
                "box-a",
                "{backend}"
            );
            // An agent of the old kind restarted its outbox: the stored seq went back down and
            // seq 2 is taken by an event already.
            s.reset_last_seq(&srv.id, 0).await.unwrap();
            let err = s.store_records(&srv.id, &[(2, ev(20))]).await.unwrap_err();
            assert!(err.is_permanent(), "{backend}: {err}");
            let high = s
                .reject_record(&srv.id, "", 2, &ev(20), &err.to_string())
                .await
                .unwrap();
            assert_eq!(high, 2, "{backend}");
            let kept = s.rejected_records(&srv.id).await.unwrap();
            assert_eq!(kept.len(), 1, "{backend}");
            assert_eq!((kept[0].0, kept[0].1.as_str()), (2, "event"), "{backend}");
            // Rejecting again (a resend) keeps one copy.
            s.reject_record(&srv.id, "", 2, &ev(20), "again")
                .await
                .unwrap();
            assert_eq!(
                s.rejected_records(&srv.id).await.unwrap().len(),
                1,
                "{backend}"
            );
            assert_eq!(s.count_events(&srv.id).await.unwrap(), 3, "{backend}");
        }
    }
}
