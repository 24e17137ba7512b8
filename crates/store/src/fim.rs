//! File changes: what the agents' file integrity monitors report (`file_changes` records), one
//! row per change with the path's state before and after and the writer when the kernel named
//! it; the filtered, paged history; and its retention.

use hostward_proto::alarm::ProcessInfo;
use hostward_proto::fim::{FileChanges, FileState};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use crate::{Bind, Result, Sql, Store, StoreError, flag, like, now, opt_i64, paged};

/// Rows per INSERT: 21 values each stays far below both backends' bind limits (SQLite 32,766,
/// PostgreSQL 65,535) while a full record of 500 changes takes five statements, not 500.
const INSERT_CHUNK: usize = 100;
/// Rows per retention DELETE: one long DELETE would hold SQLite's write lock for as long as it
/// runs, and records transactions waiting behind it fail after the busy timeout.
const EXPIRE_CHUNK: i64 = 10_000;

/// A path's state as stored: the record's [`FileState`] with its kind as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileStateRow {
    /// file, dir, symlink, other.
    pub kind: String,
    pub size: i64,
    /// Permission bits with set-user-ID, set-group-ID and sticky.
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    /// BLAKE3 in hex of a file's content; a symlink's target.
    pub hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FileChangeRow {
    pub id: i64,
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    /// Unix seconds when the agent saw the change.
    pub ts: i64,
    pub path: String,
    /// create, delete, move, modify, attributes.
    pub op: String,
    /// A move's old path.
    pub from: Option<String>,
    /// On the policy's important-file list (the change was also an alarm).
    pub important: bool,
    /// realtime (a file event) or scan (found by comparing with the baseline: no writer known).
    pub source: String,
    /// None for a create.
    pub old: Option<FileStateRow>,
    /// None for a delete.
    pub new: Option<FileStateRow>,
    /// The writing process, when the kernel named it.
    #[schema(value_type = Option<Object>)]
    pub process: Option<ProcessInfo>,
    pub received_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct FileChangeFilter {
    /// Servers of these projects (ignored when `server_id` is set; empty: nothing).
    pub projects: Vec<String>,
    pub server_id: Option<String>,
    /// Substring of the path, case-insensitive.
    pub path: Option<String>,
    pub op: Option<String>,
    pub important: Option<bool>,
    pub source: Option<String>,
    /// `ts` at or after.
    pub since: Option<i64>,
    /// `ts` at or before.
    pub until: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

fn state_binds(s: &Option<FileState>) -> [Bind; 6] {
    match s {
        None => [
            Bind::OptText(None),
            Bind::OptInt(None),
            Bind::OptInt(None),
            Bind::OptInt(None),
            Bind::OptInt(None),
            Bind::OptText(None),
        ],
        Some(s) => [
            Bind::OptText(Some(s.kind.as_str().to_string())),
            // A size past i64 is no real file; clamped rather than wrapped negative.
            Bind::OptInt(Some(s.size.min(i64::MAX as u64) as i64)),
            Bind::OptInt(Some(i64::from(s.mode))),
            Bind::OptInt(Some(i64::from(s.uid))),
            Bind::OptInt(Some(i64::from(s.gid))),
            Bind::OptText(s.hash.clone()),
        ],
    }
}

/// Stores an agent's file changes inside the records transaction, all or none. A record that
/// fails its checks is refused as a permanent error, so the gateway keeps it whole in
/// `rejected_records` (with the message naming the change and field) and acks it.
pub(super) async fn apply_file_changes(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    rec: &FileChanges,
) -> Result<()> {
    rec.validate().map_err(StoreError::Invalid)?;
    let received = now();
    for chunk in rec.changes.chunks(INSERT_CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO file_changes (server_id, ts, path, op, from_path, important, source, \
             old_kind, old_size, old_mode, old_uid, old_gid, old_hash, \
             new_kind, new_size, new_mode, new_uid, new_gid, new_hash, process, received_at) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            let process = c
                .process
                .as_ref()
                .map(|p| serde_json::to_string(p).expect("processes serialise"));
            let mut binds = vec![
                Bind::Text(server_id.to_string()),
                Bind::Int(c.ts),
                Bind::Text(c.path.clone()),
                Bind::Text(c.op.as_str().to_string()),
                Bind::OptText(c.from.clone()),
                Bind::Int(i64::from(c.important)),
                Bind::Text(c.source.as_str().to_string()),
            ];
            binds.extend(state_binds(&c.old));
            binds.extend(state_binds(&c.new));
            binds.push(Bind::OptText(process));
            binds.push(Bind::Int(received));
            for (j, b) in binds.into_iter().enumerate() {
                if j > 0 {
                    sql.push(", ");
                }
                sql.bind(b);
            }
            sql.push(")");
        }
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}

const COLUMNS: &str = "c.id, c.server_id, s.name AS server_name, s.project_id, c.ts, c.path, c.op, c.from_path, \
     c.important, c.source, c.old_kind, c.old_size, c.old_mode, c.old_uid, c.old_gid, c.old_hash, \
     c.new_kind, c.new_size, c.new_mode, c.new_uid, c.new_gid, c.new_hash, c.process, c.received_at";

fn state_row(r: &AnyRow, prefix: &str) -> Result<Option<FileStateRow>> {
    let Some(kind) = r.try_get::<Option<String>, _>(format!("{prefix}_kind").as_str())? else {
        return Ok(None);
    };
    let int = |col: &str| opt_i64(r, &format!("{prefix}_{col}")).unwrap_or(0);
    Ok(Some(FileStateRow {
        kind,
        size: int("size"),
        mode: int("mode"),
        uid: int("uid"),
        gid: int("gid"),
        hash: r.try_get(format!("{prefix}_hash").as_str())?,
    }))
}

fn row(r: &AnyRow) -> Result<FileChangeRow> {
    let process: Option<String> = r.try_get("process")?;
    Ok(FileChangeRow {
        id: r.try_get("id")?,
        server_id: r.try_get("server_id")?,
        server_name: r.try_get("server_name")?,
        project_id: r.try_get("project_id")?,
        ts: r.try_get("ts")?,
        path: r.try_get("path")?,
        op: r.try_get("op")?,
        from: r.try_get("from_path")?,
        important: flag(r, "important"),
        source: r.try_get("source")?,
        old: state_row(r, "old")?,
        new: state_row(r, "new")?,
        // Written by apply_file_changes from a ProcessInfo; a row that no longer decodes
        // shows no writer rather than failing the whole page.
        process: process.and_then(|p| serde_json::from_str(&p).ok()),
        received_at: r.try_get("received_at")?,
    })
}

impl Store {
    fn file_change_filter(f: &FileChangeFilter) -> Sql {
        let mut sql = Sql::new(" FROM file_changes c JOIN servers s ON s.id = c.server_id WHERE ");
        match &f.server_id {
            Some(id) => sql.push("c.server_id = ").bind(Bind::Text(id.clone())),
            None if f.projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("s.project_id IN ").bind_list(&f.projects),
        };
        if let Some(q) = f.path.as_deref().filter(|q| !q.is_empty()) {
            sql.push(" AND LOWER(c.path) LIKE ")
                .bind(Bind::Text(like(q)))
                .push(" ESCAPE '\\'");
        }
        for (col, v) in [("c.op", &f.op), ("c.source", &f.source)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                sql.push(&format!(" AND {col} = "))
                    .bind(Bind::Text(v.to_string()));
            }
        }
        if let Some(i) = f.important {
            sql.push(" AND c.important = ")
                .bind(Bind::Int(i64::from(i)));
        }
        if let Some(t) = f.since {
            sql.push(" AND c.ts >= ").bind(Bind::Int(t));
        }
        if let Some(t) = f.until {
            sql.push(" AND c.ts <= ").bind(Bind::Int(t));
        }
        sql
    }

    /// File changes matching the filter, newest first, and how many match.
    pub async fn file_changes(&self, f: &FileChangeFilter) -> Result<(Vec<FileChangeRow>, i64)> {
        let (rows, total) = paged(
            self,
            COLUMNS,
            Self::file_change_filter(f),
            "c.ts DESC, c.id DESC",
            f.page,
            f.per_page,
        )
        .await?;
        Ok((rows.iter().map(row).collect::<Result<_>>()?, total))
    }

    /// Deletes file changes seen more than `days` ago; how many.
    pub async fn expire_file_changes(&self, days: i64) -> Result<u64> {
        self.delete_file_changes_before(now() - days * 86_400, EXPIRE_CHUNK)
            .await
    }

    async fn delete_file_changes_before(&self, cut: i64, chunk: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM file_changes WHERE id IN (SELECT id FROM file_changes WHERE ts < $1 LIMIT $2)",
            )
            .bind(cut)
            .bind(chunk)
            .execute(self.pool())
            .await?
            .rows_affected();
            total += n;
            if n < chunk as u64 {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Message;
    use hostward_proto::fim::{ChangeSource, FileChange, FileKind, Operation};

    fn state(size: u64, mode: u32, hash: &str) -> FileState {
        FileState {
            kind: FileKind::File,
            size,
            mode,
            uid: 0,
            gid: 42,
            hash: Some(hash.into()),
        }
    }

    fn change(ts: i64, path: &str, op: Operation) -> FileChange {
        let (old, new) = match op {
            Operation::Create => (None, Some(state(10, 0o644, "bb"))),
            Operation::Delete => (Some(state(9, 0o644, "aa")), None),
            _ => (Some(state(9, 0o644, "aa")), Some(state(10, 0o4755, "bb"))),
        };
        FileChange {
            ts,
            path: path.into(),
            op,
            from: (op == Operation::Move).then(|| "/srv/www/old.php".to_string()),
            important: false,
            old,
            new,
            process: None,
            source: ChangeSource::Scan,
        }
    }

    fn writer() -> ProcessInfo {
        ProcessInfo {
            pid: 4242,
            ppid: 1,
            exe: "/usr/bin/vi".into(),
            cmdline: "vi /etc/passwd".into(),
            uid: 0,
            euid: 0,
            user: "root".into(),
            ..Default::default()
        }
    }

    fn rec(changes: Vec<FileChange>) -> Message {
        Message::FileChanges(FileChanges { changes })
    }

    #[tokio::test]
    async fn changes_are_stored_listed_with_filters_and_go_with_their_server() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = s.ensure_project("a").await.unwrap();
            let b = s.ensure_project("b").await.unwrap();
            let new_server = |project_id: String, name: &str| NewServer {
                project_id,
                name: name.into(),
                ..Default::default()
            };
            let web = s
                .create_server(&new_server(a.id.clone(), "web"))
                .await
                .unwrap();
            let other = s
                .create_server(&new_server(b.id.clone(), "db"))
                .await
                .unwrap();
            let passwd = FileChange {
                important: true,
                process: Some(writer()),
                source: ChangeSource::Realtime,
                ..change(300, "/etc/passwd", Operation::Modify)
            };
            // 150 changes in one record: more than one INSERT chunk.
            let mut many: Vec<FileChange> = (0..150)
                .map(|i| change(100 + i, &format!("/srv/www/f{i}.PHP"), Operation::Create))
                .collect();
            many.push(change(260, "/srv/www/new.php", Operation::Move));
            many.push(change(270, "/srv/www/gone.php", Operation::Delete));
            s.store_records(&web.id, &[(1, rec(many)), (2, rec(vec![passwd]))])
                .await
                .unwrap();
            s.store_records(
                &other.id,
                &[(1, rec(vec![change(500, "/etc/hosts", Operation::Modify)]))],
            )
            .await
            .unwrap();

            let list = |f: FileChangeFilter| async move {
                s.file_changes(&FileChangeFilter {
                    page: 1,
                    per_page: 1000,
                    ..f
                })
                .await
                .unwrap()
            };
            let scope = FileChangeFilter {
                projects: vec![a.id.clone()],
                ..Default::default()
            };
            let (rows, total) = list(scope.clone()).await;
            assert_eq!((rows.len(), total), (153, 153), "{backend}: project a only");
            let top = &rows[0];
            assert_eq!(
                (
                    top.path.as_str(),
                    top.op.as_str(),
                    top.source.as_str(),
                    top.important
                ),
                ("/etc/passwd", "modify", "realtime", true),
                "{backend}: newest first"
            );
            assert_eq!(top.server_name, "web", "{backend}");
            assert_eq!(
                top.process.as_ref().unwrap().exe,
                "/usr/bin/vi",
                "{backend}"
            );
            let old = top.old.as_ref().unwrap();
            let new = top.new.as_ref().unwrap();
            assert_eq!(
                (
                    old.kind.as_str(),
                    old.size,
                    old.mode,
                    old.gid,
                    old.hash.as_deref()
                ),
                ("file", 9, 0o644, 42, Some("aa")),
                "{backend}"
            );
            assert_eq!(
                (new.size, new.mode, new.hash.as_deref()),
                (10, 0o4755, Some("bb"))
            );
            let moved = rows.iter().find(|r| r.op == "move").unwrap();
            assert_eq!(moved.from.as_deref(), Some("/srv/www/old.php"), "{backend}");
            let gone = rows.iter().find(|r| r.op == "delete").unwrap();
            assert!(gone.new.is_none() && gone.old.is_some(), "{backend}");
            assert!(gone.process.is_none(), "{backend}");

            let count = |f: FileChangeFilter| async move { list(f).await.1 };
            let f = |g: fn(&mut FileChangeFilter)| {
                let mut f = scope.clone();
                g(&mut f);
                f
            };
            assert_eq!(count(f(|f| f.important = Some(true))).await, 1, "{backend}");
            assert_eq!(
                count(f(|f| f.important = Some(false))).await,
                152,
                "{backend}"
            );
            assert_eq!(
                count(f(|f| f.op = Some("create".into()))).await,
                150,
                "{backend}"
            );
            assert_eq!(count(f(|f| f.source = Some("realtime".into()))).await, 1);
            // Case-insensitive substring; LIKE wildcards are literal.
            assert_eq!(
                count(f(|f| f.path = Some("f1".into()))).await,
                61,
                "{backend}"
            );
            assert_eq!(
                count(f(|f| f.path = Some(".php".into()))).await,
                152,
                "{backend}"
            );
            assert_eq!(
                count(f(|f| f.path = Some("f_".into()))).await,
                0,
                "{backend}"
            );
            assert_eq!(count(f(|f| f.since = Some(260))).await, 3, "{backend}");
            assert_eq!(count(f(|f| f.until = Some(101))).await, 2, "{backend}");
            let one_server = FileChangeFilter {
                server_id: Some(other.id.clone()),
                ..Default::default()
            };
            let (rows, _) = list(one_server.clone()).await;
            assert_eq!(rows.len(), 1, "{backend}");
            assert_eq!(rows[0].project_id, b.id, "{backend}");
            assert_eq!(
                count(FileChangeFilter::default()).await,
                0,
                "no projects, no rows"
            );

            // Paging: newest first, the total beside each page.
            let (page2, total) = s
                .file_changes(&FileChangeFilter {
                    page: 2,
                    per_page: 100,
                    ..scope.clone()
                })
                .await
                .unwrap();
            assert_eq!((page2.len(), total), (53, 153), "{backend}");
            assert!(page2.windows(2).all(|w| w[0].ts >= w[1].ts), "{backend}");

            s.delete_server(&other.id).await.unwrap();
            assert_eq!(
                count(one_server).await,
                0,
                "{backend}: gone with the server"
            );
            assert_eq!(count(scope).await, 153, "{backend}");
        }
    }

    #[tokio::test]
    async fn an_invalid_record_is_refused_whole_and_kept_as_rejected() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("a").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "web".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            // The first change is fine, the second is not: nothing of the record is stored.
            let bad = rec(vec![
                change(100, "/etc/hosts", Operation::Modify),
                FileChange {
                    old: None,
                    ..change(101, "/etc/passwd", Operation::Modify)
                },
            ]);
            let err = s
                .store_records(&srv.id, &[(1, bad.clone())])
                .await
                .unwrap_err();
            assert!(err.is_permanent(), "{backend}: {err}");
            assert!(
                err.to_string()
                    .contains("changes[1].old: a modify needs the old state"),
                "{backend}: {err}"
            );
            let (_, total) = s
                .file_changes(&FileChangeFilter {
                    server_id: Some(srv.id.clone()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(total, 0, "{backend}: never half-stored");
            // What the gateway does with a permanent error.
            s.reject_record(&srv.id, "", 1, &bad, &err.to_string())
                .await
                .unwrap();
            let kept = s.rejected_records(&srv.id).await.unwrap();
            assert_eq!(
                (kept[0].0, kept[0].1.as_str()),
                (1, "file_changes"),
                "{backend}"
            );
            assert_eq!(s.server(&srv.id).await.unwrap().unwrap().last_seq, 1);
        }
    }

    #[tokio::test]
    async fn retention_deletes_old_changes_in_chunks() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("a").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "web".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let t = now();
            let changes: Vec<FileChange> = [t - 100 * 86_400, t - 95 * 86_400, t - 91 * 86_400]
                .into_iter()
                .chain([t - 89 * 86_400, t - 60])
                .map(|ts| change(ts, "/etc/hosts", Operation::Modify))
                .collect();
            s.store_records(&srv.id, &[(1, rec(changes))])
                .await
                .unwrap();
            // Three old rows in chunks of two: the loop must run past its first chunk.
            assert_eq!(
                s.delete_file_changes_before(t - 90 * 86_400, 2)
                    .await
                    .unwrap(),
                3,
                "{backend}"
            );
            assert_eq!(s.expire_file_changes(90).await.unwrap(), 0, "{backend}");
            assert_eq!(s.expire_file_changes(1).await.unwrap(), 1, "{backend}");
            let (rows, _) = s
                .file_changes(&FileChangeFilter {
                    server_id: Some(srv.id.clone()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{backend}");
            assert_eq!(rows[0].ts, t - 60, "{backend}");
        }
    }
}
