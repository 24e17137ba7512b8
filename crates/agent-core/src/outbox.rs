//! The durable outbox: records (events, task updates and every module's records) wait here
//! until the center acks them.
//!
//! SQLite in WAL mode so that the daemon and `hostward-agent emit` (another process) can write
//! at once. `AUTOINCREMENT` keeps seqs unique for the life of the file, even after deletes and
//! restarts, which the center's exactly-once check depends on. The table is bounded: when full,
//! new records are dropped and counted (persisted), never blocking the writer.
//!
//! Seqs outlive the file too. Each outbox has a random id, made with the file; the center says
//! at every connect which outbox its stored records came from and the highest seq
//! ([`Outbox::resume`]), and a new outbox (the old one lost, truncated or corrupt) renumbers
//! its records above that before sending any, so it never reuses a seq the center stored.
//!
//! A write the file refuses (disk full, I/O error) is counted as dropped in memory, since it
//! cannot be counted in the file, and the error is kept for the heartbeat until a write works.
//!
//! One rusqlite connection behind a mutex, used only on tokio's blocking threads: SQLite calls
//! block (fsync, a writer in another process holding the lock for up to the busy timeout), and
//! the agent's runtime has one thread that must keep the session alive meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hostward_proto::{Envelope, Message, OutboxReset, Resume};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;
use tokio::sync::Notify;

use crate::util::unix_now;

pub const FILE_NAME: &str = "outbox.db";

/// Bytes of record bodies read for one send batch, about.
pub const BATCH_BYTES: usize = 1 << 20;

/// Below this much free space on the outbox's filesystem the heartbeat says the outbox is
/// failing before a write is refused: a record, its WAL frames and the checkpoint need pages.
const LOW_SPACE_BYTES: u64 = 1 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Handle on the outbox. Cheap to clone; clones share the connection and the wake-up.
#[derive(Clone)]
pub struct Outbox {
    /// `None` once closed.
    conn: Arc<Mutex<Option<Connection>>>,
    path: PathBuf,
    max_records: u64,
    queued: Arc<Notify>,
    health: Arc<Health>,
}

/// What the file could not record about itself: refusals since this process started and the
/// last error, cleared by the next write that works.
#[derive(Default)]
struct Health {
    refused: AtomicU64,
    /// Highest seq the center acked in this process: records up to it are done even when
    /// deleting them failed.
    acked: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn failed(&self, e: &anyhow::Error) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{e:#}"));
    }
    fn worked(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
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

    /// Appends records all or none, in one transaction: `None` means they were dropped.
    pub async fn push_all(&self, msgs: &[Message]) -> Result<Option<Vec<u64>>> {
        self.outbox.push_all(msgs).await
    }
}

/// What [`Outbox::resume`] did with the center's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Same outbox as the center's records: records up to the stored seq were deleted.
    Same,
    /// A new outbox: its records were renumbered by this much (0 when none needed it).
    Renumbered(u64),
}

fn connect(path: &Path) -> rusqlite::Result<(Connection, bool)> {
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
    let had_records: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records')",
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(SCHEMA)?;
    // The id is made once per file. A file from before ids existed keeps its numbering: the
    // center's records came from it, so it counts as the outbox the center knows.
    let id: Option<String> = conn
        .query_row("SELECT value FROM info WHERE key = 'id'", [], |r| r.get(0))
        .optional()?;
    if id.is_none() {
        let new_id = format!("{:032x}", rand::random::<u128>());
        conn.execute(
            "INSERT INTO info (key, value) VALUES ('id', ?1)",
            params![new_id],
        )?;
        if had_records {
            conn.execute(
                "INSERT INTO info (key, value) VALUES ('inherited', '1')",
                [],
            )?;
        }
    }
    Ok((conn, had_records))
}

/// Whether SQLite says the file is not a database or is damaged: the only errors for which
/// the daemon moves the file aside rather than stopping.
fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

impl Outbox {
    /// Opens the outbox, failing on any error (`emit`, `status`: they must not touch a file the
    /// daemon owns).
    pub async fn open(path: &Path, max_records: u64) -> Result<Outbox> {
        let owned = path.to_path_buf();
        let (conn, _) = tokio::task::spawn_blocking(move || connect(&owned))
            .await
            .context("the outbox thread failed")?
            .with_context(|| format!("opening outbox {}", path.display()))?;
        Ok(Outbox::from_conn(conn, path, max_records))
    }

    /// The daemon's open: a file SQLite calls corrupt or not a database is moved aside (kept for
    /// inspection, with its WAL) and a new outbox is started, and so is one that existed but held
    /// no outbox (truncated); either is recorded in the new outbox for the heartbeat. Any other
    /// error stops the start, as before.
    pub async fn open_or_reset(path: &Path, max_records: u64) -> Result<Outbox> {
        let owned = path.to_path_buf();
        let existed = std::fs::metadata(path).is_ok();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let reset = match connect(&owned) {
                Ok((conn, had_records)) => {
                    if had_records || !existed {
                        return Ok(conn);
                    }
                    let reason = "outbox.db existed but held no outbox (empty or truncated); records queued in it are lost".to_string();
                    tracing::error!(path = %owned.display(), "{reason}; started a new outbox");
                    record_reset(&conn, &reason, None)?;
                    return Ok(conn);
                }
                Err(e) if is_corrupt(&e) => e,
                Err(e) => return Err(e.into()),
            };
            let moved = owned.with_extension(format!("db.corrupt-{}", unix_now()));
            std::fs::rename(&owned, &moved)
                .with_context(|| format!("moving the corrupt outbox to {}", moved.display()))?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", owned.display()));
                if side.exists() {
                    let _ = std::fs::rename(&side, format!("{}{suffix}", moved.display()));
                }
            }
            let reason = format!("outbox.db could not be read ({reset}); records queued in it were not sent");
            tracing::error!(path = %owned.display(), moved_to = %moved.display(), "{reason}; moved it aside and started a new outbox");
            let (conn, _) = connect(&owned)?;
            record_reset(&conn, &reason, Some(&moved.display().to_string()))?;
            Ok(conn)
        })
        .await
        .context("the outbox thread failed")?
        .with_context(|| format!("opening outbox {}", path.display()))?;
        Ok(Outbox::from_conn(conn, path, max_records))
    }

    fn from_conn(conn: Connection, path: &Path, max_records: u64) -> Outbox {
        Outbox {
            conn: Arc::new(Mutex::new(Some(conn))),
            path: path.to_path_buf(),
            max_records: max_records.max(1),
            queued: Arc::new(Notify::new()),
            health: Arc::default(),
        }
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

    /// As [`Outbox::with`] for a write: its failure is kept for the heartbeat, its success
    /// clears the last one.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let r = self.with(f).await;
        match &r {
            Ok(_) => self.health.worked(),
            Err(e) => self.health.failed(e),
        }
        r
    }

    /// Appends a record; `None` means it was dropped because the outbox is full. A write the
    /// file refuses is an error and is counted as dropped.
    pub async fn push(&self, msg: &Message) -> Result<Option<u64>> {
        Ok(self
            .push_all(std::slice::from_ref(msg))
            .await?
            .map(|seqs| seqs[0]))
    }

    /// Appends records all or none, in one transaction: their seqs, or `None` when they do not
    /// all fit (then all are counted as dropped). A refused write is an error; every record of
    /// the call is counted as dropped.
    pub async fn push_all(&self, msgs: &[Message]) -> Result<Option<Vec<u64>>> {
        if msgs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let rows = msgs.iter().map(split).collect::<Result<Vec<_>>>()?;
        let n = rows.len() as i64;
        let max = self.max_records as i64;
        let r = self
            .write(move |c| {
                immediate(c, "writing to the outbox", |tx| {
                    // Counted inside the transaction, so the bound holds against a writer in
                    // another process.
                    let have: i64 = tx.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
                    if have + n > max {
                        tx.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?1) ON CONFLICT(key) DO UPDATE SET value = value + ?1", params![n])?;
                        return Ok(None);
                    }
                    let mut seqs = Vec::with_capacity(rows.len());
                    let mut stmt = tx.prepare_cached("INSERT INTO records (kind, body, created_at) VALUES (?1, ?2, ?3)")?;
                    for (kind, body) in &rows {
                        stmt.execute(params![kind, body, unix_now()])?;
                        seqs.push(tx.last_insert_rowid() as u64);
                    }
                    Ok(Some(seqs))
                })
            })
            .await;
        match &r {
            Ok(Some(_)) => self.queued.notify_one(),
            Ok(None) => {}
            Err(_) => {
                self.health.refused.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        r
    }

    /// Records with seq > `seq`, oldest first, at most `limit` and about [`BATCH_BYTES`] (at
    /// least one), so a backlog of large records does not balloon the agent's memory.
    pub async fn unsent_after(&self, seq: u64, limit: u32) -> Result<Vec<Envelope>> {
        let seq = seq.max(self.health.acked.load(Ordering::Relaxed));
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

    /// The center stored everything up to `seq`: forget it. When the delete fails (disk full),
    /// the records still count as done in this process and the next ack deletes them.
    pub async fn ack(&self, seq: u64) -> Result<u64> {
        self.health.acked.fetch_max(seq, Ordering::Relaxed);
        let seq = seq.min(i64::MAX as u64) as i64;
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM records WHERE seq <= ?1", params![seq])
                .context("deleting acked records")?;
            Ok(n as u64)
        })
        .await
    }

    /// Applies the center's [`Resume`]: the same outbox deletes what the center stored; a new
    /// one renumbers its records (and the counter) above the center's seq, in one transaction,
    /// so `emit` in another process never takes a seq in between.
    pub async fn resume(&self, center: &Resume) -> Result<Resumed> {
        let (id, inherited) = self.with(identity).await?;
        let same = if center.outbox_id.is_empty() {
            inherited
        } else {
            center.outbox_id == id
        };
        if same {
            // A delete the disk refuses is only late: the records count as acked meanwhile.
            if let Err(e) = self.ack(center.last_seq).await {
                tracing::warn!(error = %e, "could not delete the records the center has stored");
            }
            return Ok(Resumed::Same);
        }
        let floor = center.last_seq.min(i64::MAX as u64 / 2) as i64;
        self.write(move |c| immediate(c, "renumbering the outbox", |tx| {
            let min: Option<i64> = tx.query_row("SELECT MIN(seq) FROM records", [], |r| r.get(0))?;
            let shift = match min {
                Some(m) if m <= floor => floor + 1 - m,
                _ => 0,
            };
            if shift > 0 {
                // Through negative seqs, so no row lands on another's seq on the way.
                tx.execute("UPDATE records SET seq = -seq", [])?;
                tx.execute("UPDATE records SET seq = -seq + ?1", params![shift])?;
            }
            let top: i64 = tx.query_row(
                "SELECT MAX(?1, COALESCE((SELECT MAX(seq) FROM records), 0), COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0))",
                params![floor],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM sqlite_sequence WHERE name = 'records'", [])?;
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?1)",
                params![top],
            )?;
            Ok(Resumed::Renumbered(shift as u64))
        }))
        .await
    }

    /// This outbox's id, sent in `hello`.
    pub async fn id(&self) -> Result<String> {
        self.with(|c| Ok(identity(c)?.0)).await
    }

    /// Records waiting to be acked.
    pub async fn depth(&self) -> Result<u64> {
        let acked = self.health.acked.load(Ordering::Relaxed) as i64;
        self.with(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM records WHERE seq > ?1",
                params![acked],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// Records dropped: counted in the file (outbox full) plus refused by it in this process.
    pub async fn dropped(&self) -> Result<u64> {
        let refused = self.health.refused.load(Ordering::Relaxed);
        self.with(move |c| {
            let n: Option<i64> = c
                .query_row("SELECT value FROM meta WHERE key = 'dropped'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(n.unwrap_or(0) as u64 + refused)
        })
        .await
    }

    /// Why the outbox is failing, if it is: the last write error, or too little free space
    /// left on its filesystem for the next writes.
    pub fn failing(&self) -> Option<String> {
        if let Some(e) = self
            .health
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(e);
        }
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let st = nix::sys::statvfs::statvfs(dir).ok()?;
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        (free < LOW_SPACE_BYTES).then(|| {
            format!(
                "only {} KiB free on the filesystem of {}: new records may be refused",
                free / 1024,
                dir.display()
            )
        })
    }

    /// Why this outbox was started in place of an unreadable one, if it was.
    pub async fn reset(&self) -> Result<Option<OutboxReset>> {
        self.with(|c| {
            let get = |k: &str| -> rusqlite::Result<Option<String>> {
                c.query_row("SELECT value FROM info WHERE key = ?1", params![k], |r| {
                    r.get(0)
                })
                .optional()
            };
            let Some(reason) = get("reset_reason")? else {
                return Ok(None);
            };
            Ok(Some(OutboxReset {
                at: get("reset_at")?.and_then(|v| v.parse().ok()).unwrap_or(0),
                reason,
                moved_to: get("reset_moved_to")?,
            }))
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

/// Runs `f` in a write transaction taken at its start (`BEGIN IMMEDIATE`): a transaction that
/// reads first and writes later cannot wait for another process's writer, SQLite refuses it at
/// once with "database is locked"; taking the write lock first makes it wait (busy timeout).
fn immediate<T>(
    c: &Connection,
    what: &'static str,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    c.execute_batch("BEGIN IMMEDIATE").context(what)?;
    match f(c).and_then(|v| c.execute_batch("COMMIT").map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(anyhow::Error::new(e).context(what))
        }
    }
}

/// (id, inherited): inherited outboxes predate ids and hold the numbering the center knows.
fn identity(c: &Connection) -> Result<(String, bool)> {
    let id: String = c
        .query_row("SELECT value FROM info WHERE key = 'id'", [], |r| r.get(0))
        .context("reading the outbox id")?;
    let inherited = c
        .query_row("SELECT 1 FROM info WHERE key = 'inherited'", [], |_| Ok(()))
        .optional()?
        .is_some();
    Ok((id, inherited))
}

fn record_reset(c: &Connection, reason: &str, moved_to: Option<&str>) -> Result<()> {
    let mut rows = vec![
        ("reset_at", unix_now().to_string()),
        ("reset_reason", reason.to_string()),
    ];
    if let Some(m) = moved_to {
        rows.push(("reset_moved_to", m.to_string()));
    }
    for (k, v) in rows {
        c.execute(
            "INSERT INTO info (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![k, v],
        )
        .context("recording the outbox reset")?;
    }
    Ok(())
}

fn split(msg: &Message) -> Result<(String, String)> {
    anyhow::ensure!(
        msg.is_record(),
        "only records go through the outbox, not control frames"
    );
    let (kind, body) = msg.kind_and_body();
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

    #[tokio::test]
    async fn a_new_outbox_numbers_above_what_the_center_stored() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(&dir.path().join(FILE_NAME), 100)
            .await
            .unwrap();
        for i in 1..=3 {
            o.push(&ev(i)).await.unwrap();
        }
        let id = o.id().await.unwrap();
        assert_eq!(id.len(), 32);
        // The center stored up to 5000 from another outbox: ours was lost and replaced.
        let r = o
            .resume(&Resume {
                outbox_id: "other".into(),
                last_seq: 5000,
            })
            .await
            .unwrap();
        assert_eq!(r, Resumed::Renumbered(5000));
        assert_eq!(seqs(&o).await, vec![5001, 5002, 5003]);
        assert_eq!(
            o.push(&ev(4)).await.unwrap(),
            Some(5004),
            "the counter moved too"
        );
        assert_eq!(o.last_seq().await.unwrap(), 5004);
        // Asked again (the session dropped before anything was stored): nothing moves.
        let again = o
            .resume(&Resume {
                outbox_id: "other".into(),
                last_seq: 5000,
            })
            .await
            .unwrap();
        assert_eq!(again, Resumed::Renumbered(0));
        assert_eq!(seqs(&o).await, vec![5001, 5002, 5003, 5004]);
        // Once the center stored some from this outbox, a resume naming it is an ack.
        let same = o
            .resume(&Resume {
                outbox_id: id.clone(),
                last_seq: 5002,
            })
            .await
            .unwrap();
        assert_eq!(same, Resumed::Same);
        assert_eq!(seqs(&o).await, vec![5003, 5004]);
        // An empty outbox with nothing stored anywhere: the counter starts above the center's.
        let fresh = Outbox::open(&dir.path().join("fresh.db"), 100)
            .await
            .unwrap();
        fresh
            .resume(&Resume {
                outbox_id: String::new(),
                last_seq: 77,
            })
            .await
            .unwrap();
        assert_eq!(fresh.push(&ev(1)).await.unwrap(), Some(78));
    }

    #[tokio::test]
    async fn an_outbox_from_before_ids_keeps_the_numbering_the_center_knows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO records (kind, body, created_at) VALUES ('event', '{\"ts\":1,\"event_type\":\"custom\",\"data\":null}', 1);
                 INSERT INTO records (kind, body, created_at) VALUES ('event', '{\"ts\":2,\"event_type\":\"custom\",\"data\":null}', 2);",
            )
            .unwrap();
        }
        let o = Outbox::open(&path, 100).await.unwrap();
        // The center never heard an id, and stored seq 1 from this very file.
        let r = o
            .resume(&Resume {
                outbox_id: String::new(),
                last_seq: 1,
            })
            .await
            .unwrap();
        assert_eq!(r, Resumed::Same);
        assert_eq!(seqs(&o).await, vec![2]);
    }

    #[tokio::test]
    async fn push_all_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(&dir.path().join(FILE_NAME), 5).await.unwrap();
        let three: Vec<Message> = (1..=3).map(ev).collect();
        assert_eq!(o.push_all(&three).await.unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(
            o.push_all(&three).await.unwrap(),
            None,
            "3 more do not fit in 5"
        );
        assert_eq!(o.depth().await.unwrap(), 3, "none of them was queued");
        assert_eq!(o.dropped().await.unwrap(), 3, "all of them were counted");
        let bad = vec![ev(9), Message::Ack(hostward_proto::Ack { seq: 1 })];
        assert!(o.push_all(&bad).await.is_err());
        assert_eq!(o.depth().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_corrupt_outbox_is_moved_aside_and_a_truncated_one_noted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        assert!(
            Outbox::open(&path, 100).await.is_err(),
            "emit and status refuse it"
        );
        let o = Outbox::open_or_reset(&path, 100).await.unwrap();
        let reset = o.reset().await.unwrap().expect("the reset is recorded");
        assert!(reset.reason.contains("could not be read"), "{reset:?}");
        let moved = reset.moved_to.expect("the old file is kept");
        assert_eq!(std::fs::read(&moved).unwrap(), vec![0x5a; 8192]);
        assert_eq!(o.push(&ev(1)).await.unwrap(), Some(1));
        o.close().await;

        std::fs::write(&path, b"").unwrap();
        let _ = std::fs::remove_file(format!("{}-wal", path.display()));
        let o = Outbox::open_or_reset(&path, 100).await.unwrap();
        let reset = o
            .reset()
            .await
            .unwrap()
            .expect("a truncated outbox is noted");
        assert!(reset.reason.contains("empty or truncated"), "{reset:?}");
        assert_eq!(reset.moved_to, None);
        o.close().await;

        // A healthy outbox reopened is no reset, and neither is the first open of a new one.
        let o = Outbox::open_or_reset(&dir.path().join("new.db"), 100)
            .await
            .unwrap();
        assert_eq!(o.reset().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_refused_write_is_counted_and_reported_until_one_works() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(&dir.path().join(FILE_NAME), 100)
            .await
            .unwrap();
        assert_eq!(o.failing(), None);
        o.push(&ev(1)).await.unwrap();
        // A read-only file stands in for a full disk: SQLite refuses the write the same way.
        o.with(|c| Ok(c.execute_batch("PRAGMA query_only = 1")?))
            .await
            .unwrap();
        assert!(o.push_all(&[ev(2), ev(3)]).await.is_err());
        assert_eq!(o.dropped().await.unwrap(), 2);
        assert!(
            o.failing().is_some_and(|e| e.contains("writing")),
            "{:?}",
            o.failing()
        );
        // The ack cannot delete, yet the records count as done.
        assert!(o.ack(1).await.is_err());
        assert_eq!(o.depth().await.unwrap(), 0);
        assert!(
            o.unsent_after(0, 10).await.unwrap().is_empty(),
            "not sent again"
        );
        o.with(|c| Ok(c.execute_batch("PRAGMA query_only = 0")?))
            .await
            .unwrap();
        assert_eq!(o.push(&ev(4)).await.unwrap(), Some(2));
        assert_eq!(o.failing(), None, "a write that works clears the error");
    }
}
