//! Projects, the tenancy unit every object belongs to, and their policies pushed to agents.

use hostward_proto::Section;
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

/// Policies read for agents' configs, so a reconnect storm does not read every capability's
/// policy once per agent. An entry serves only while the project's policy version it was read
/// at is the newest this replica has read: every config frame reads the version first
/// ([`Store::policy_version`]), so a change made anywhere misses the cache at the next frame.
#[derive(Default)]
pub(crate) struct PolicyCache {
    /// Newest policy version read per project (versions only grow).
    newest: std::collections::HashMap<String, i64>,
    /// (project or policy group, policy key) -> (project policy version it was read at, body).
    bodies: std::collections::HashMap<(String, &'static str), (i64, serde_json::Value)>,
}

impl PolicyCache {
    fn saw(&mut self, project_id: &str, version: i64) {
        let v = self.newest.entry(project_id.to_string()).or_insert(version);
        *v = (*v).max(version);
    }
}

/// Policies of projects are rows of scope kind `project`.
pub(crate) const PROJECT_SCOPE: &str = "project";

impl Store {
    /// A project's policy of type `T` (the defaults until one is set) and the project's policy
    /// version, which counts changes of all its policies (0 until one is first set). The row is
    /// the one whose `capability` is `T::KEY`, the name its config section has on the wire.
    pub async fn policy<T: Section>(&self, project_id: &str) -> Result<(T, i64)> {
        self.policy_at(project_id, T::KEY).await
    }

    /// Replaces a project's policy of type `T`, bumping its own version and the project's, in
    /// one transaction; returns the project's new policy version.
    pub async fn set_policy<T: Section>(&self, project_id: &str, policy: &T) -> Result<i64> {
        self.set_policy_at(project_id, T::KEY, policy).await
    }

    /// [`Store::policy`] by the row's key (the migration tests read rows of any shape).
    pub(crate) async fn policy_at<T: serde::de::DeserializeOwned + Default>(
        &self,
        project_id: &str,
        key: &str,
    ) -> Result<(T, i64)> {
        let r = sqlx::query(
            "SELECT p.policy_version, pol.body FROM projects p LEFT JOIN policies pol \
             ON pol.scope_kind = $1 AND pol.scope_id = p.id AND pol.capability = $2 WHERE p.id = $3",
        )
        .bind(PROJECT_SCOPE)
        .bind(key)
        .bind(project_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("project"))?;
        let text: Option<String> = r.try_get("body")?;
        // Written only by set_policy from a validated value; a damaged row falls back to the
        // defaults rather than stopping every agent's config.
        let policy = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok((policy, r.try_get("policy_version")?))
    }

    /// The project's policy version: it counts changes of all its policies (0 until one is
    /// first set) and is part of every agent's config version.
    pub async fn policy_version(&self, project_id: &str) -> Result<i64> {
        let r = sqlx::query("SELECT policy_version FROM projects WHERE id = $1")
            .bind(project_id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("project"))?;
        let v: i64 = r.try_get("policy_version")?;
        self.policies.lock().unwrap().saw(project_id, v);
        Ok(v)
    }

    /// A server's policy of type `T` for its agent's config: its policy group's (`group`) or,
    /// when None, its project's. Read right after [`Store::policy_version`]: from the cache
    /// when nothing changed since it was read (see [`PolicyCache`]); group changes move the
    /// project's version too.
    pub async fn policy_for_config<T: Section>(
        &self,
        project_id: &str,
        group: Option<&str>,
    ) -> Result<T> {
        let scope = group.unwrap_or(project_id).to_string();
        {
            let cache = self.policies.lock().unwrap();
            let newest = cache.newest.get(project_id);
            if let Some((v, body)) = cache.bodies.get(&(scope.clone(), T::KEY))
                && newest == Some(v)
                && let Ok(policy) = T::deserialize(body)
            {
                return Ok(policy);
            }
        }
        let (policy, v): (T, i64) = match group {
            None => self.policy(project_id).await?,
            Some(g) => {
                let (body, v) = self.group_policy_body(g, T::KEY).await?;
                // Written only from a validated value; a damaged row falls back to defaults.
                let policy = body
                    .and_then(|b| T::deserialize(b).ok())
                    .unwrap_or_default();
                (policy, v)
            }
        };
        let body = serde_json::to_value(&policy).expect("policies serialise");
        let mut cache = self.policies.lock().unwrap();
        cache.saw(project_id, v);
        cache.bodies.insert((scope, T::KEY), (v, body));
        Ok(policy)
    }

    /// [`Store::set_policy`] by the row's key.
    pub(crate) async fn set_policy_at<T: serde::Serialize>(
        &self,
        project_id: &str,
        key: &str,
        policy: &T,
    ) -> Result<i64> {
        let text = serde_json::to_string(policy).expect("policy serialises");
        let mut tx = self.begin().await?;
        let r =
            sqlx::query("UPDATE projects SET policy_version = policy_version + 1 WHERE id = $1")
                .bind(project_id.to_string())
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("project"));
        }
        sqlx::query(
            "INSERT INTO policies (scope_kind, scope_id, capability, body, version, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (scope_kind, scope_id, capability) \
             DO UPDATE SET body = excluded.body, version = policies.version + 1, updated_at = excluded.updated_at",
        )
        .bind(PROJECT_SCOPE)
        .bind(project_id.to_string())
        .bind(key)
        .bind(text)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let v: i64 = sqlx::query("SELECT policy_version FROM projects WHERE id = $1")
            .bind(project_id.to_string())
            .fetch_one(&mut *tx)
            .await?
            .try_get("policy_version")?;
        tx.commit().await?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::testdb;

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

    #[tokio::test]
    async fn config_policies_are_cached_until_the_version_moves() {
        use hostward_proto::RiskPolicy;
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            s.policy_version(&p.id).await.unwrap();
            let first: RiskPolicy = s.policy_for_config(&p.id, None).await.unwrap();
            assert!(!first.allow_fix, "{backend}");
            // Changed behind this store's back (another replica): the next config reads the
            // version first and must miss the cache.
            let other = crate::Store {
                pool: s.pool.clone(),
                backend: s.backend,
                policies: Default::default(),
                rules: Default::default(),
            };
            other
                .set_policy(
                    &p.id,
                    &RiskPolicy {
                        allow_fix: true,
                        ..RiskPolicy::default()
                    },
                )
                .await
                .unwrap();
            let cached: RiskPolicy = s.policy_for_config(&p.id, None).await.unwrap();
            assert!(
                !cached.allow_fix,
                "{backend}: no version read yet, the cached body serves"
            );
            s.policy_version(&p.id).await.unwrap();
            let fresh: RiskPolicy = s.policy_for_config(&p.id, None).await.unwrap();
            assert!(
                fresh.allow_fix,
                "{backend}: the moved version misses the cache"
            );
        }
    }
}
