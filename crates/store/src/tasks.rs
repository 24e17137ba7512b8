//! Tasks for agents: queued, delivered, running, final; expiry and per-server listing.

use hostward_proto::TaskUpdate;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Bind, Result, Sql, Store, new_id, now, opt_i64};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub project_id: String,
    pub server_id: String,
    pub kind: String,
    pub params: serde_json::Value,
    /// queued, delivered, running, done, failed, expired
    pub state: String,
    pub output: serde_json::Value,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

const TASK_COLUMNS: &str = "id, project_id, server_id, kind, params, state, output, created_by, created_at, updated_at, expires_at";

fn task(row: &AnyRow) -> Result<TaskRow> {
    let params: String = row.try_get("params")?;
    let output: String = row.try_get("output")?;
    Ok(TaskRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        server_id: row.try_get("server_id")?,
        kind: row.try_get("kind")?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        state: row.try_get("state")?,
        output: serde_json::from_str(&output).unwrap_or_default(),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: opt_i64(row, "expires_at"),
    })
}

/// One task per server. `targets` are (project_id, server_id) pairs the caller may act on.
#[derive(Debug, Clone)]
pub struct NewTasks<'a> {
    pub targets: &'a [(String, String)],
    pub kind: &'a str,
    pub params: &'a serde_json::Value,
    pub created_by: &'a str,
    pub expires_at: Option<i64>,
}

/// The tasks' apply step in the records transaction: an agent's update moves its task on. A
/// late update never moves a task out of a final state.
pub(super) async fn apply_update(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    u: &TaskUpdate,
) -> Result<()> {
    sqlx::query(
        "UPDATE tasks SET state = $1, output = $2, updated_at = $3 \
         WHERE id = $4 AND server_id = $5 AND state NOT IN ('done', 'failed', 'expired')",
    )
    .bind(u.state.as_str().to_string())
    .bind(u.output.to_string())
    .bind(now())
    .bind(u.task_id.clone())
    .bind(server_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Queues one task per target in batched inserts inside one transaction.
    pub async fn create_tasks(&self, new: &NewTasks<'_>) -> Result<Vec<TaskRow>> {
        let t = now();
        let params = new.params.to_string();
        let ids: Vec<String> = new.targets.iter().map(|_| new_id()).collect();
        let mut tx = self.begin().await?;
        for (chunk_ids, chunk) in ids.chunks(400).zip(new.targets.chunks(400)) {
            let mut sql = Sql::new(&format!("INSERT INTO tasks ({TASK_COLUMNS}) VALUES "));
            for (i, (id, (project_id, server_id))) in chunk_ids.iter().zip(chunk).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                for (j, b) in [
                    Bind::Text(id.clone()),
                    Bind::Text(project_id.clone()),
                    Bind::Text(server_id.clone()),
                    Bind::Text(new.kind.to_string()),
                    Bind::Text(params.clone()),
                    Bind::Text("queued".into()),
                    Bind::Text("null".into()),
                    Bind::Text(new.created_by.to_string()),
                    Bind::Int(t),
                    Bind::Int(t),
                    Bind::OptInt(new.expires_at),
                ]
                .into_iter()
                .enumerate()
                {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.bind(b);
                }
                sql.push(")");
            }
            sql.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids
            .into_iter()
            .zip(new.targets)
            .map(|(id, (project_id, server_id))| TaskRow {
                id,
                project_id: project_id.clone(),
                server_id: server_id.clone(),
                kind: new.kind.to_string(),
                params: new.params.clone(),
                state: "queued".into(),
                output: serde_json::Value::Null,
                created_by: new.created_by.to_string(),
                created_at: t,
                updated_at: t,
                expires_at: new.expires_at,
            })
            .collect())
    }

    pub async fn task(&self, id: &str) -> Result<Option<TaskRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(task).transpose()
    }

    /// Tasks of one server, newest first.
    pub async fn list_tasks(&self, server_id: &str, limit: i64) -> Result<Vec<TaskRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE server_id = $1 ORDER BY created_at DESC, id LIMIT $2"
        )))
        .bind(server_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task).collect()
    }

    /// Tasks of one server of the given kinds, newest first (a capability's own tasks, which
    /// other kinds' many runs must not push out of its list).
    pub async fn list_tasks_of_kinds(
        &self,
        server_id: &str,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Vec<TaskRow>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let mut sql = Sql::new(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE server_id = "
        ));
        sql.bind(Bind::Text(server_id.to_string()));
        sql.push(" AND kind IN ").bind_list(&kinds);
        sql.push(" ORDER BY created_at DESC, id LIMIT ")
            .bind(Bind::Int(limit));
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(task)
            .collect()
    }

    /// Tasks of the servers in `projects`, newest first, optionally of one kind and state, with
    /// the server's name.
    pub async fn list_tasks_fleet(
        &self,
        projects: &[String],
        kind: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(TaskRow, String)>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let cols: String = TASK_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = Sql::new(&format!(
            "SELECT {cols}, s.name AS server_name FROM tasks t JOIN servers s ON s.id = t.server_id WHERE t.project_id IN "
        ));
        sql.bind_list(projects);
        if let Some(k) = kind {
            sql.push(" AND t.kind = ").bind(Bind::Text(k.to_string()));
        }
        if let Some(st) = state {
            sql.push(" AND t.state = ").bind(Bind::Text(st.to_string()));
        }
        sql.push(" ORDER BY t.created_at DESC, t.id LIMIT ")
            .bind(Bind::Int(limit));
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((task(r)?, r.try_get("server_name")?)))
            .collect()
    }

    /// Expires queued or delivered tasks whose time has passed.
    pub async fn expire_due_tasks(&self) -> Result<u64> {
        let t = now();
        let r = sqlx::query(
            "UPDATE tasks SET state = 'expired', updated_at = $1 \
             WHERE state IN ('queued', 'delivered') AND expires_at IS NOT NULL AND expires_at < $1",
        )
        .bind(t)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Queued tasks of these servers, oldest first, in chunked queries (a broadcast may name
    /// every server).
    pub async fn queued_tasks_for(&self, server_ids: &[String]) -> Result<Vec<TaskRow>> {
        let mut out = Vec::new();
        for chunk in server_ids.chunks(500) {
            let mut sql = Sql::new(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'queued' AND server_id IN "
            ));
            sql.bind_list(chunk);
            sql.push(" ORDER BY created_at, id");
            for r in sql.query().fetch_all(self.pool()).await? {
                out.push(task(&r)?);
            }
        }
        Ok(out)
    }

    /// Marks tasks delivered once they are written to the agent's socket.
    pub async fn mark_delivered(&self, ids: &[String]) -> Result<()> {
        let t = now();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("UPDATE tasks SET state = 'delivered', updated_at = ");
            sql.bind(Bind::Int(t));
            sql.push(" WHERE state = 'queued' AND id IN ");
            sql.bind_list(chunk);
            sql.query().execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Servers that have queued tasks; a replica intersects this with the agents it holds.
    pub async fn queued_server_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT server_id FROM tasks WHERE state = 'queued'")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("server_id")?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, Server, testdb};
    use hostward_proto::{Message, TaskState, TaskUpdate};

    #[tokio::test]
    async fn tasks_queue_deliver_and_finish() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "h".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let targets = vec![(p.id.clone(), srv.id.clone())];
            let params = serde_json::json!({});
            let new = NewTasks {
                targets: &targets,
                kind: "ping",
                params: &params,
                created_by: "alice",
                expires_at: None,
            };
            let created = s.create_tasks(&new).await.unwrap();
            let expired = s
                .create_tasks(&NewTasks {
                    expires_at: Some(1),
                    ..new.clone()
                })
                .await
                .unwrap();
            assert_eq!(s.expire_due_tasks().await.unwrap(), 1, "{backend}");
            let queued = s
                .queued_tasks_for(std::slice::from_ref(&srv.id))
                .await
                .unwrap();
            assert_eq!(
                queued.len(),
                1,
                "{backend}: the expired one is not handed out"
            );
            assert_eq!(
                s.task(&expired[0].id).await.unwrap().unwrap().state,
                "expired",
                "{backend}"
            );
            assert_eq!(s.queued_server_ids().await.unwrap(), vec![srv.id.clone()]);
            s.mark_delivered(&[created[0].id.clone()]).await.unwrap();
            assert!(
                s.queued_tasks_for(std::slice::from_ref(&srv.id))
                    .await
                    .unwrap()
                    .is_empty(),
                "{backend}"
            );
            let done = Message::TaskUpdate(TaskUpdate {
                task_id: created[0].id.clone(),
                state: TaskState::Done,
                output: serde_json::json!({"pong": true}),
            });
            s.store_records(&srv.id, &[(1, done)]).await.unwrap();
            let late = Message::TaskUpdate(TaskUpdate {
                task_id: created[0].id.clone(),
                state: TaskState::Running,
                output: serde_json::Value::Null,
            });
            s.store_records(&srv.id, &[(2, late)]).await.unwrap();
            let t = s.task(&created[0].id).await.unwrap().unwrap();
            assert_eq!(
                (t.state.as_str(), t.output["pong"].as_bool()),
                ("done", Some(true)),
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn tasks_are_listed_by_kind_newest_first() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let mk = |name: &'static str| NewServer {
                project_id: p.id.clone(),
                name: name.into(),
                ..Default::default()
            };
            let srv = s.create_server(&mk("a")).await.unwrap();
            let other = s.create_server(&mk("b")).await.unwrap();
            let params = serde_json::json!({});
            let queue = |server: &Server, kind: &'static str| {
                let targets = vec![(p.id.clone(), server.id.clone())];
                let params = params.clone();
                async move {
                    s.create_tasks(&NewTasks {
                        targets: &targets,
                        kind,
                        params: &params,
                        created_by: "alice",
                        expires_at: None,
                    })
                    .await
                    .unwrap()
                    .remove(0)
                }
            };
            let first = queue(&srv, "backup_now").await;
            queue(&srv, "ping").await;
            queue(&other, "backup_now").await;
            let second = queue(&srv, "backup_restore").await;
            let third = queue(&srv, "backup_now").await;
            let got = s
                .list_tasks_of_kinds(&srv.id, &["backup_now", "backup_restore"], 10)
                .await
                .unwrap();
            let mut want = vec![first.id, second.id, third.id.clone()];
            // Same second: the order within it is by id, so compare as sets, then the limit.
            let mut ids: Vec<String> = got.iter().map(|t| t.id.clone()).collect();
            ids.sort();
            want.sort();
            assert_eq!(ids, want, "{backend}: this server's, these kinds only");
            assert!(
                got.windows(2).all(|w| w[0].created_at >= w[1].created_at),
                "{backend}: newest first"
            );
            let one = s
                .list_tasks_of_kinds(&srv.id, &["backup_restore"], 10)
                .await
                .unwrap();
            assert_eq!(one.len(), 1, "{backend}");
            assert_eq!(one[0].kind, "backup_restore", "{backend}");
            let limited = s
                .list_tasks_of_kinds(&srv.id, &["backup_now", "backup_restore"], 2)
                .await
                .unwrap();
            assert_eq!(limited.len(), 2, "{backend}");
            assert!(
                s.list_tasks_of_kinds(&srv.id, &[], 10)
                    .await
                    .unwrap()
                    .is_empty(),
                "{backend}"
            );
        }
    }
}
