use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, new_id, now};

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
