//! Policy groups (migration 0020): a project's custom groups of policies, each a copy of the
//! default group (the project's own policies) or of another group, then edited. A group's
//! policies are rows of the policies table with scope kind `group`; a change bumps the
//! project's policy version, which is part of every agent's config version, in the same
//! transaction. Servers are assigned to a group; deleting a group with servers is refused.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::servers::server_tx;
use super::{Result, Server, Store, StoreError, new_id, now};

pub(crate) const GROUP_SCOPE: &str = "group";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PolicyGroup {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    /// Servers assigned to it.
    pub servers: i64,
}

fn group(r: &sqlx::any::AnyRow) -> Result<PolicyGroup> {
    Ok(PolicyGroup {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        servers: r.try_get("servers")?,
    })
}

const GROUP_SELECT: &str = "SELECT g.id, g.project_id, g.name, g.description, g.created_at, \
     (SELECT COUNT(*) FROM servers s WHERE s.policy_group_id = g.id) AS servers FROM policy_groups g";

async fn bump_project(tx: &mut Transaction<'static, Any>, project_id: &str) -> Result<()> {
    sqlx::query("UPDATE projects SET policy_version = policy_version + 1 WHERE id = $1")
        .bind(project_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// A project's custom groups, by name.
    pub async fn policy_groups(&self, project_id: &str) -> Result<Vec<PolicyGroup>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.project_id = $1 ORDER BY g.name"
        )))
        .bind(project_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(group).collect()
    }

    pub async fn policy_group(&self, id: &str) -> Result<Option<PolicyGroup>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(group).transpose()
    }

    /// Creates a group holding a copy of every policy of `copy_from` (a group of the same
    /// project) or, when None, of the project's default policies. A name the project already
    /// has is a conflict.
    pub async fn create_policy_group(
        &self,
        project_id: &str,
        name: &str,
        description: &str,
        copy_from: Option<&str>,
    ) -> Result<PolicyGroup> {
        let id = new_id();
        let mut tx = self.begin().await?;
        let (scope_kind, scope_id) = match copy_from {
            Some(g) => {
                let owner: Option<String> =
                    sqlx::query("SELECT project_id FROM policy_groups WHERE id = $1")
                        .bind(g.to_string())
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("project_id"))
                        .transpose()?;
                if owner.as_deref() != Some(project_id) {
                    return Err(StoreError::NotFound("policy group"));
                }
                (GROUP_SCOPE, g.to_string())
            }
            None => (super::projects::PROJECT_SCOPE, project_id.to_string()),
        };
        sqlx::query(
            "INSERT INTO policy_groups (id, project_id, name, description, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.clone())
        .bind(project_id.to_string())
        .bind(name.to_string())
        .bind(description.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| super::auth::unique_conflict(e, "policy group with this name"))?;
        sqlx::query(
            "INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at) \
             SELECT $1, $2, capability, body, 1, $3 FROM policies WHERE scope_kind = $4 AND scope_id = $5",
        )
        .bind(GROUP_SCOPE)
        .bind(id.clone())
        .bind(now())
        .bind(scope_kind)
        .bind(scope_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.policy_group(&id)
            .await?
            .ok_or(StoreError::NotFound("policy group"))
    }

    /// Deletes a group that no server uses; one that some do is refused, naming how many.
    pub async fn delete_policy_group(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM servers WHERE policy_group_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "{n} servers use this policy group: assign them another one first"
            )));
        }
        sqlx::query("DELETE FROM policies WHERE scope_kind = $1 AND scope_id = $2")
            .bind(GROUP_SCOPE)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM policy_groups WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("policy group"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Assigns a server to a group of its project (None: the default policies), bumping its
    /// config version so its agent gets the group's policies at once.
    pub async fn assign_policy_group(
        &self,
        server_id: &str,
        group: Option<&str>,
    ) -> Result<Server> {
        let mut tx = self.begin().await?;
        let server = server_tx(&mut tx, server_id).await?;
        if let Some(g) = group {
            let owner: Option<String> =
                sqlx::query("SELECT project_id FROM policy_groups WHERE id = $1")
                    .bind(g.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("project_id"))
                    .transpose()?;
            if owner.as_deref() != Some(server.project_id.as_str()) {
                return Err(StoreError::NotFound("policy group"));
            }
        }
        sqlx::query(
            "UPDATE servers SET policy_group_id = $1, config_version = config_version + 1 WHERE id = $2",
        )
        .bind(group.map(str::to_string))
        .bind(server_id.to_string())
        .execute(&mut *tx)
        .await?;
        let s = server_tx(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// A group's stored policy body for capability key `key` (None: never set, the defaults)
    /// and the project's policy version.
    pub async fn group_policy_body(
        &self,
        group_id: &str,
        key: &str,
    ) -> Result<(Option<serde_json::Value>, i64)> {
        let r = sqlx::query(
            "SELECT p.policy_version, pol.body FROM policy_groups g JOIN projects p ON p.id = g.project_id \
             LEFT JOIN policies pol ON pol.scope_kind = $1 AND pol.scope_id = g.id AND pol.capability = $2 \
             WHERE g.id = $3",
        )
        .bind(GROUP_SCOPE)
        .bind(key.to_string())
        .bind(group_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("policy group"))?;
        let body: Option<String> = r.try_get("body")?;
        Ok((
            body.and_then(|b| serde_json::from_str(&b).ok()),
            r.try_get("policy_version")?,
        ))
    }

    /// Replaces a group's policy `key` with `body` (validated by the caller), bumping the
    /// project's policy version; returns the new version.
    pub async fn set_group_policy_body(
        &self,
        group_id: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let project_id: String = sqlx::query("SELECT project_id FROM policy_groups WHERE id = $1")
            .bind(group_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("policy group"))?
            .try_get("project_id")?;
        bump_project(&mut tx, &project_id).await?;
        sqlx::query(
            "INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (scope_kind, scope_id, capability) \
             DO UPDATE SET body = excluded.body, version = policies.version + 1, updated_at = excluded.updated_at",
        )
        .bind(GROUP_SCOPE)
        .bind(group_id.to_string())
        .bind(key.to_string())
        .bind(body.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let v: i64 = sqlx::query("SELECT policy_version FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("policy_version")?;
        tx.commit().await?;
        Ok(v)
    }

    /// Ids of the servers assigned to a group.
    pub async fn policy_group_servers(&self, group_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM servers WHERE policy_group_id = $1")
            .bind(group_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect::<Result<_>>()
    }
}
