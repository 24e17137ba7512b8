//! The durable outbox: records (events, task updates and every module's records) wait here
//! until the center acks them.
//!
//! SQLite in WAL mode so that the daemon and `hostward-agent emit` (another process) can write
//! at once. `AUTOINCREMENT` keeps seqs unique for the life of the file, even after deletes and
//! restarts, which the center's exactly-once check depends on. The table is bounded: when full,
//! new records are dropped and counted (persisted), never blocking the writer.
//!
//! One rusqlite connection behind a mutex, used only on tokio's blocking threads: SQLite calls
//! block (fsync, a writer in another process holding the lock for up to the busy timeout), and
//! the agent's runtime has one thread that must keep the session alive meanwhile.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hostward_proto::{Envelope, Message};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;
use tokio::sync::Notify;

use crate::util::unix_now;

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

/// Handle on the outbox. Cheap to clone; clones share the connection and the wake-up.
#[derive(Clone)]
pub struct Outbox {
    /// `None` once closed.
    conn: Arc<Mutex<Option<Connection>>>,
    max_records: u64,
    queued: Arc<Notify>,
}

/// What a module gets of the outbox: it may add records, nothing else (the daemon alone sends,
/// acks and deletes them).
#[derive(Clone)]
pub struct RecordSender {
    outbox: Outbox,
}

impl RecordSender {
    /// Appends a record; `None` means it was dropped because the outbox is full.
    pub async fn push(&self, msg: &Message) -> Result<Option<u64>> {
        self.outbox.push(msg).await
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL is a property of the file (kept across opens); NORMAL is safe with WAL: a power
    // cut may lose the last records, never corrupt the queue.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "the outbox could not switch to WAL");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The queue is read front to back once; a big page cache would only cost RSS. At 256 KiB,
    // the pages that an idle agent's records had passed through stayed cached (~180 KiB of its
    // heap); a page read again comes from the kernel's page cache.
    conn.pragma_update(None, "cache_size", -64)?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl Outbox {
    pub async fn open(path: &Path, max_records: u64) -> Result<Outbox> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || connect(&owned))
            .await
            .context("the outbox thread failed")?
            .with_context(|| format!("opening outbox {}", path.display()))?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(Some(conn))),
            max_records: max_records.max(1),
            queued: Arc::new(Notify::new()),
        })
    }

    /// The handle modules get: push only.
    pub fn sender(&self) -> RecordSender {
        RecordSender {
            outbox: self.clone(),
        }
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            let c = guard
                .as_ref()
                .ok_or_else(|| anyhow!("the outbox is closed"))?;
            f(c)
        })
        .await
        .context("the outbox thread failed")?
    }

    /// Appends a record; `None` means it was dropped because the outbox is full.
    pub async fn push(&self, msg: &Message) -> Result<Option<u64>> {
        let (kind, body) = split(msg)?;
        let max = self.max_records as i64;
        let seq = self
            .with(move |c| {
                // One statement, so the bound holds against a concurrent writer in another process.
                let n = c
                    .execute(
                        "INSERT INTO records (kind, body, created_at) SELECT ?1, ?2, ?3 WHERE (SELECT COUNT(*) FROM records) < ?4",
                        params![kind, body, unix_now(), max],
                    )
                    .context("writing to the outbox")?;
                if n == 0 {
                    c.execute("INSERT INTO meta (key, value) VALUES ('dropped', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1", [])
                        .context("counting a dropped record")?;
                    return Ok(None);
                }
                Ok(Some(c.last_insert_rowid() as u64))
            })
            .await?;
        if seq.is_some() {
            self.queued.notify_one();
        }
        Ok(seq)
    }

    /// Records with seq > `seq`, oldest first, at most `limit` and about [`BATCH_BYTES`] (at
    /// least one), so a backlog of large records does not balloon the agent's memory.
    pub async fn unsent_after(&self, seq: u64, limit: u32) -> Result<Vec<Envelope>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, kind, body FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .context("reading the outbox")?;
            let mut rows = stmt
                .query(params![seq as i64, limit as i64])
                .context("reading the outbox")?;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = rows.next().context("reading the outbox")? {
                let seq: i64 = row.get("seq")?;
                let kind: String = row.get("kind")?;
                let body: String = row.get("body")?;
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
        })
        .await
    }

    /// The center stored everything up to `seq`: forget it.
    pub async fn ack(&self, seq: u64) -> Result<u64> {
        let seq = seq.min(i64::MAX as u64) as i64;
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM records WHERE seq <= ?1", params![seq])
                .context("deleting acked records")?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn depth(&self) -> Result<u64> {
        self.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn dropped(&self) -> Result<u64> {
        self.with(|c| {
            let n: Option<i64> = c
                .query_row("SELECT value FROM meta WHERE key = 'dropped'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(n.unwrap_or(0) as u64)
        })
        .await
    }

    /// Highest seq ever assigned (0 if none), deleted records included.
    pub async fn last_seq(&self) -> Result<u64> {
        self.with(|c| {
            let n: Option<i64> = c
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'records'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(n.unwrap_or(0) as u64)
        })
        .await
    }

    /// Resolves when this process queued a record; records from other processes are found by polling.
    pub async fn queued(&self) {
        self.queued.notified().await
    }

    /// Closes the connection (the last one to close checkpoints the WAL into the file). Every
    /// clone is closed with it: later calls fail.
    pub async fn close(&self) {
        let conn = self.conn.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let taken = conn.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = taken
                && let Err((_, e)) = c.close()
            {
                tracing::warn!(error = %e, "closing the outbox failed");
            }
        })
        .await;
    }
}

fn split(msg: &Message) -> Result<(String, String)> {
    anyhow::ensure!(
        msg.is_record(),
        "only records go through the outbox, not control frames"
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
