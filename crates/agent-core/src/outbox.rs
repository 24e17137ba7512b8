//! The durable outbox: records (`event`, `task_update`, `inventory`) wait here until the center acks them.
//!
//! SQLite in WAL mode so that the daemon and `hostward-agent emit` (another process) can write
//! at once. `AUTOINCREMENT` keeps seqs unique for the life of the file, even after deletes and
//! restarts, which the center's exactly-once check depends on. The table is bounded: when full,
//! new records are dropped and counted (persisted), never blocking the writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hostward_proto::{Envelope, Message};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Notify;

pub const FILE_NAME: &str = "outbox.db";

/// Bytes of record bodies read for one send batch, about.
pub const BATCH_BYTES: usize = 1 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Handle on the outbox. Cheap to clone; clones share the pool and the wake-up.
#[derive(Clone)]
pub struct Outbox {
    pool: SqlitePool,
    max_records: u64,
    queued: Arc<Notify>,
}

impl Outbox {
    pub async fn open(path: &Path, max_records: u64) -> Result<Outbox> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // The queue is read front to back once; a big page cache would only cost RSS.
            .pragma("cache_size", "-256");
        // One connection: the agent writes little, and each SQLite connection costs a thread
        // and a page cache.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening outbox {}", path.display()))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .with_context(|| format!("creating outbox schema in {}", path.display()))?;
        Ok(Outbox {
            pool,
            max_records: max_records.max(1),
            queued: Arc::new(Notify::new()),
        })
    }

    /// Appends a record; `None` means it was dropped because the outbox is full.
    pub async fn push(&self, msg: &Message) -> Result<Option<u64>> {
        let (kind, body) = split(msg)?;
        // One statement, so the bound holds against a concurrent writer in another process.
        let res = sqlx::query(
            "INSERT INTO records (kind, body, created_at) SELECT ?1, ?2, ?3 WHERE (SELECT COUNT(*) FROM records) < ?4",
        )
        .bind(kind)
        .bind(body)
        .bind(unix_now())
        .bind(self.max_records as i64)
        .execute(&self.pool)
        .await
        .context("writing to the outbox")?;
        if res.rows_affected() == 0 {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('dropped', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
                .execute(&self.pool)
                .await
                .context("counting a dropped record")?;
            return Ok(None);
        }
        self.queued.notify_one();
        Ok(Some(res.last_insert_rowid() as u64))
    }

    /// Records with seq > `seq`, oldest first, at most `limit` and about [`BATCH_BYTES`] (at
    /// least one), so a backlog of large inventory records does not balloon the agent's memory.
    pub async fn unsent_after(&self, seq: u64, limit: u32) -> Result<Vec<Envelope>> {
        use futures_util::TryStreamExt as _;
        let mut rows =
            sqlx::query("SELECT seq, kind, body FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .bind(seq as i64)
                .bind(limit as i64)
                .fetch(&self.pool);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.try_next().await.context("reading the outbox")? {
            let seq: i64 = row.try_get("seq")?;
            let kind: String = row.try_get("kind")?;
            let body: String = row.try_get("body")?;
            bytes += body.len();
            match join(&kind, &body) {
                Ok(msg) => out.push(Envelope::record(seq as u64, msg)),
                // A row this build cannot decode (e.g. written by a newer emit) must not wedge
                // the queue forever: skip it and say so.
                Err(e) => {
                    tracing::warn!(seq, kind, error = %e, "skipping undecodable outbox record")
                }
            }
            if bytes >= BATCH_BYTES {
                break;
            }
        }
        Ok(out)
    }

    /// The center stored everything up to `seq`: forget it.
    pub async fn ack(&self, seq: u64) -> Result<u64> {
        let res = sqlx::query("DELETE FROM records WHERE seq <= ?1")
            .bind(seq.min(i64::MAX as u64) as i64)
            .execute(&self.pool)
            .await
            .context("deleting acked records")?;
        Ok(res.rows_affected())
    }

    pub async fn depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    pub async fn dropped(&self) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'dropped'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Highest seq ever assigned (0 if none), deleted records included.
    pub async fn last_seq(&self) -> Result<u64> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'records'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Resolves when this process queued a record; records from other processes are found by polling.
    pub async fn queued(&self) {
        self.queued.notified().await
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

fn split(msg: &Message) -> Result<(String, String)> {
    anyhow::ensure!(
        msg.is_record(),
        "only records (event, task_update, inventory, risk) go through the outbox"
    );
    let mut v = serde_json::to_value(msg)?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let body = v.get_mut("body").map(Value::take).unwrap_or(Value::Null);
    Ok((kind, body.to_string()))
}

fn join(kind: &str, body: &str) -> Result<Message> {
    let body: Value = serde_json::from_str(body)?;
    Ok(serde_json::from_value(
        serde_json::json!({ "kind": kind, "body": body }),
    )?)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::{Event, TaskState, TaskUpdate};

    fn ev(n: i64) -> Message {
        Message::Event(Event {
            ts: n,
            event_type: "custom".into(),
            data: serde_json::json!({ "n": n }),
        })
    }

    async fn seqs(o: &Outbox) -> Vec<u64> {
        o.unsent_after(0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    #[tokio::test]
    async fn seq_is_monotonic_across_ack_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let o = Outbox::open(&path, 100).await.unwrap();
        assert_eq!(o.last_seq().await.unwrap(), 0);
        for i in 1..=3 {
            assert_eq!(o.push(&ev(i)).await.unwrap(), Some(i as u64));
        }
        assert_eq!(o.ack(3).await.unwrap(), 3);
        assert_eq!(o.depth().await.unwrap(), 0);
        assert_eq!(
            o.push(&ev(4)).await.unwrap(),
            Some(4),
            "seqs are not reused after deletes"
        );
        o.close().await;

        let o = Outbox::open(&path, 100).await.unwrap();
        assert_eq!(o.last_seq().await.unwrap(), 4);
        o.ack(4).await.unwrap();
        assert_eq!(
            o.push(&ev(5)).await.unwrap(),
            Some(5),
            "nor after a reopen of an empty outbox"
        );
    }

    #[tokio::test]
    async fn ack_deletes_exactly_up_to_seq_and_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(&dir.path().join(FILE_NAME), 100)
            .await
            .unwrap();
        for i in 1..=5 {
            o.push(&ev(i)).await.unwrap();
        }
        let upd = Message::TaskUpdate(TaskUpdate {
            task_id: "t1".into(),
            state: TaskState::Done,
            output: serde_json::json!({"pong": true}),
        });
        o.push(&upd).await.unwrap();
        assert_eq!(o.ack(2).await.unwrap(), 2);
        assert_eq!(seqs(&o).await, vec![3, 4, 5, 6]);
        assert_eq!(o.ack(2).await.unwrap(), 0, "a repeated ack is harmless");
        let after4 = o.unsent_after(4, 10).await.unwrap();
        assert_eq!(
            after4,
            vec![Envelope::record(5, ev(5)), Envelope::record(6, upd)]
        );
        assert_eq!(
            o.unsent_after(0, 2).await.unwrap().len(),
            2,
            "limit applies"
        );
        assert!(
            o.push(&Message::Ack(hostward_proto::Ack { seq: 1 }))
                .await
                .is_err(),
            "control frames are not records"
        );
    }

    #[tokio::test]
    async fn full_outbox_drops_and_counts_persistently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let o = Outbox::open(&path, 3).await.unwrap();
        for i in 1..=3 {
            assert!(o.push(&ev(i)).await.unwrap().is_some());
        }
        assert_eq!(o.push(&ev(4)).await.unwrap(), None);
        assert_eq!(o.push(&ev(5)).await.unwrap(), None);
        assert_eq!(
            (o.depth().await.unwrap(), o.dropped().await.unwrap()),
            (3, 2)
        );
        o.ack(1).await.unwrap();
        assert_eq!(
            o.push(&ev(6)).await.unwrap(),
            Some(4),
            "room again after an ack"
        );
        o.close().await;
        let o = Outbox::open(&path, 3).await.unwrap();
        assert_eq!(o.dropped().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn two_handles_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let daemon = Outbox::open(&path, 100).await.unwrap();
        let emitter = Outbox::open(&path, 100).await.unwrap();
        let (a, b) = tokio::join!(
            async {
                for i in 0..20 {
                    daemon.push(&ev(i)).await.unwrap();
                }
            },
            async {
                for i in 0..20 {
                    emitter.push(&ev(100 + i)).await.unwrap();
                }
            }
        );
        let _ = (a, b);
        let all = seqs(&daemon).await;
        assert_eq!(all, (1..=40).collect::<Vec<u64>>());
        daemon.ack(30).await.unwrap();
        assert_eq!(emitter.depth().await.unwrap(), 10);
        assert_eq!(emitter.last_seq().await.unwrap(), 40);
    }
}
