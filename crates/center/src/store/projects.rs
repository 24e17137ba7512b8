//! Projects, the tenancy unit every object belongs to, and their policies pushed to agents.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, new_id, now};

pub const DEFAULT_PROJECT: &str = "default";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

fn project(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Returns the project with this name, creating it if needed.
    pub async fn ensure_project(&self, name: &str) -> Result<Project> {
        if let Some(p) = self.project_by_name(name).await? {
            return Ok(p);
        }
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(new_id())
            .bind(name.to_string())
            .bind(now())
            .execute(self.pool())
            .await?;
        self.project_by_name(name)
            .await?
            .ok_or(super::StoreError::NotFound("project"))
    }

    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT id, name, created_at FROM projects WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(project).transpose()
    }

    pub async fn project(&self, id: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT id, name, created_at FROM projects WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(project).transpose()
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM projects ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(project).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdb;

    #[tokio::test]
    async fn ensure_project_is_idempotent() {
        for (backend, db) in testdb::all().await {
            let a = db.store.ensure_project("default").await.unwrap();
            let b = db.store.ensure_project("default").await.unwrap();
            assert_eq!(a, b, "{backend}");
            assert_eq!(
                db.store.list_projects().await.unwrap().len(),
                1,
                "{backend}"
            );
        }
    }
}

/// The policies a project keeps as JSON columns, each pushed to its agents in their config.
/// One version counts changes of all of them, so any change re-sends the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyColumn {
    Inventory,
    Risk,
    Bruteforce,
}

impl PolicyColumn {
    fn column(self) -> &'static str {
        match self {
            PolicyColumn::Inventory => "inventory_policy",
            PolicyColumn::Risk => "risk_policy",
            PolicyColumn::Bruteforce => "bruteforce_policy",
        }
    }
}

impl Store {
    /// A project's policy and the shared policy version (0 until one is first set).
    pub async fn policy<T: serde::de::DeserializeOwned + Default>(
        &self,
        project_id: &str,
        which: PolicyColumn,
    ) -> Result<(T, i64)> {
        let col = which.column();
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {col} AS policy, policy_version FROM projects WHERE id = $1"
        )))
        .bind(project_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("project"))?;
        let text: String = r.try_get("policy")?;
        // Written only by set_policy from a validated value; a damaged row falls back to the
        // defaults rather than stopping every agent's config.
        let policy = serde_json::from_str(&text).unwrap_or_default();
        Ok((policy, r.try_get("policy_version")?))
    }

    /// Replaces a project's policy; returns the new shared version.
    pub async fn set_policy<T: serde::Serialize>(
        &self,
        project_id: &str,
        which: PolicyColumn,
        policy: &T,
    ) -> Result<i64> {
        let col = which.column();
        let text = serde_json::to_string(policy).expect("policy serialises");
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET {col} = $1, policy_version = policy_version + 1 WHERE id = $2"
        )))
        .bind(text)
        .bind(project_id.to_string())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("project"));
        }
        let v: i64 = sqlx::query("SELECT policy_version FROM projects WHERE id = $1")
            .bind(project_id.to_string())
            .fetch_one(self.pool())
            .await?
            .try_get("policy_version")?;
        Ok(v)
    }
}
