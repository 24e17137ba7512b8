//! Isolated files: each server's quarantine as its agent reports it, one row per entry whose
//! state follows the agent's `isolated_file` records.

use hostward_proto::quarantine::IsolatedFile;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use utoipa::ToSchema;

use crate::{Bind, Result, Sql, Store, now};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ToSchema)]
pub struct IsolatedFileRow {
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub file_id: String,
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub uid: i64,
    pub gid: i64,
    pub mode: i64,
    pub reason: String,
    pub killed: Vec<u32>,
    /// `isolated`, `restored` or `deleted`.
    pub state: String,
    pub isolated_at: i64,
    pub updated_at: i64,
}

/// Applies an agent's quarantine change inside the records transaction. A malformed record is
/// dropped with a warning, never stored half.
pub(super) async fn apply_isolated_file(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    f: &IsolatedFile,
) -> Result<()> {
    if let Err(e) = f.validate() {
        tracing::warn!(server_id, error = %e, "dropping an isolated_file record");
        return Ok(());
    }
    let killed = serde_json::to_string(&f.killed).expect("pids serialise");
    let t = now();
    let updated = sqlx::query(
        "UPDATE isolated_files SET state = $1, path = $2, updated_at = $3 WHERE server_id = $4 AND file_id = $5",
    )
    .bind(f.action.clone())
    .bind(f.path.clone())
    .bind(t)
    .bind(server_id.to_string())
    .bind(f.id.clone())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO isolated_files (server_id, file_id, path, sha256, size, uid, gid, mode, reason, killed, state, isolated_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(server_id.to_string())
        .bind(f.id.clone())
        .bind(f.path.clone())
        .bind(f.sha256.clone())
        .bind(f.size as i64)
        .bind(f.uid as i64)
        .bind(f.gid as i64)
        .bind(f.mode as i64)
        .bind(f.reason.clone())
        .bind(killed)
        .bind(f.action.clone())
        .bind(f.ts)
        .bind(t)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

const COLUMNS: &str = "q.server_id, s.name AS server_name, s.project_id, q.file_id, q.path, q.sha256, q.size, q.uid, q.gid, \
     q.mode, q.reason, q.killed, q.state, q.isolated_at, q.updated_at";

fn row(r: &AnyRow) -> Result<IsolatedFileRow> {
    let killed: String = r.try_get("killed")?;
    Ok(IsolatedFileRow {
        server_id: r.try_get("server_id")?,
        server_name: r.try_get("server_name")?,
        project_id: r.try_get("project_id")?,
        file_id: r.try_get("file_id")?,
        path: r.try_get("path")?,
        sha256: r.try_get("sha256")?,
        size: r.try_get("size")?,
        uid: r.try_get("uid")?,
        gid: r.try_get("gid")?,
        mode: r.try_get("mode")?,
        reason: r.try_get("reason")?,
        killed: serde_json::from_str(&killed).unwrap_or_default(),
        state: r.try_get("state")?,
        isolated_at: r.try_get("isolated_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Isolated files of the given projects (or of one server), newest first; `state` filters.
    pub async fn isolated_files(
        &self,
        projects: &[String],
        server_id: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<IsolatedFileRow>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM isolated_files q JOIN servers s ON s.id = q.server_id WHERE "
        ));
        match server_id {
            Some(id) => sql.push("q.server_id = ").bind(Bind::Text(id.to_string())),
            None if projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("s.project_id IN ").bind_list(projects),
        };
        if let Some(st) = state {
            sql.push(" AND q.state = ").bind(Bind::Text(st.to_string()));
        }
        sql.push(" ORDER BY q.updated_at DESC, q.file_id LIMIT 10000");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row)
            .collect()
    }

    pub async fn isolated_file(
        &self,
        server_id: &str,
        file_id: &str,
    ) -> Result<Option<IsolatedFileRow>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM isolated_files q JOIN servers s ON s.id = q.server_id WHERE q.server_id = "
        ));
        sql.bind(Bind::Text(server_id.to_string()))
            .push(" AND q.file_id = ")
            .bind(Bind::Text(file_id.to_string()));
        sql.query()
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(row)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Message;

    fn change(id: &str, action: &str, ts: i64) -> Message {
        Message::IsolatedFile(IsolatedFile {
            ts,
            id: id.into(),
            action: action.into(),
            path: "/tmp/rsh".into(),
            sha256: "ab".repeat(32),
            size: 1200,
            uid: 1000,
            gid: 1000,
            mode: 0o4755,
            reason: "reverse_shell".into(),
            killed: vec![42, 43],
        })
    }

    #[tokio::test]
    async fn an_entry_follows_its_changes_and_malformed_ones_are_dropped() {
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
            let mut bad = change("q2", "isolated", 5);
            if let Message::IsolatedFile(f) = &mut bad {
                f.sha256 = "nothex".into();
            }
            s.store_records(
                &srv.id,
                &[
                    (1, change("q1", "isolated", 100)),
                    (2, bad),
                    (3, change("q1", "restored", 200)),
                ],
            )
            .await
            .unwrap();
            let all = s
                .isolated_files(std::slice::from_ref(&p.id), None, None)
                .await
                .unwrap();
            assert_eq!(
                all.len(),
                1,
                "{backend}: the malformed record stored nothing"
            );
            let f = &all[0];
            assert_eq!(
                (f.state.as_str(), f.isolated_at, f.mode),
                ("restored", 100, 0o4755),
                "{backend}"
            );
            assert_eq!(f.killed, [42, 43], "{backend}");
            assert!(
                s.isolated_files(std::slice::from_ref(&p.id), None, Some("isolated"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                s.isolated_files(&[], None, None).await.unwrap().is_empty(),
                "no projects, no rows"
            );
            assert_eq!(
                s.isolated_file(&srv.id, "q1").await.unwrap().unwrap().path,
                "/tmp/rsh"
            );
            assert!(s.isolated_file(&srv.id, "q9").await.unwrap().is_none());
        }
    }
}
