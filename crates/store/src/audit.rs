//! Audit log: who changed what, from where. Entries never carry secrets.

use serde::Serialize;
use sqlx::Row;

use super::{Bind, Result, Sql, Store, now};

/// One audited action. Empty strings mean "not applicable" (e.g. no project for user creation).
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub user_id: String,
    pub username: String,
    pub project_id: String,
    /// Stable dotted code, e.g. `server.delete`, `user.create`, `auth.login_failed`.
    pub action: String,
    /// Id or name of the object acted on.
    pub target: String,
    pub detail: String,
    pub source_ip: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub ts: i64,
    pub user_id: String,
    pub username: String,
    pub project_id: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub source_ip: String,
}

impl Store {
    pub async fn audit(&self, e: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (ts, user_id, username, project_id, action, target, detail, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now())
        .bind(e.user_id.clone())
        .bind(e.username.clone())
        .bind(e.project_id.clone())
        .bind(e.action.clone())
        .bind(e.target.clone())
        .bind(e.detail.clone())
        .bind(e.source_ip.clone())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Newest entries first. `Some(ids)` limits to those projects; `None` is every entry,
    /// including those without a project (for superadmins).
    pub async fn list_audit(
        &self,
        project_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let mut sql = Sql::new(
            "SELECT id, ts, user_id, username, project_id, action, target, detail, source_ip FROM audit_log",
        );
        if let Some(ids) = project_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" WHERE project_id IN (");
            for (i, p) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Bind::Text(p.clone()));
            }
            sql.push(")");
        }
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.bind(Bind::Int(limit));
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    ts: r.try_get("ts")?,
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    project_id: r.try_get("project_id")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                    source_ip: r.try_get("source_ip")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb;

    #[tokio::test]
    async fn audit_is_scoped_by_project() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            for (p, action) in [
                ("pa", "server.create"),
                ("pb", "server.delete"),
                ("", "user.create"),
                ("pa", "task.create"),
            ] {
                s.audit(&AuditEntry {
                    project_id: p.into(),
                    action: action.into(),
                    username: "alice".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            let a = s.list_audit(Some(&["pa".to_string()]), 10).await.unwrap();
            let actions: Vec<_> = a.iter().map(|r| r.action.as_str()).collect();
            assert_eq!(actions, ["task.create", "server.create"], "{backend}");
            assert_eq!(s.list_audit(None, 10).await.unwrap().len(), 4, "{backend}");
            assert_eq!(s.list_audit(None, 2).await.unwrap().len(), 2, "{backend}");
            assert!(
                s.list_audit(Some(&[]), 10).await.unwrap().is_empty(),
                "{backend}"
            );
        }
    }
}
