//! Two-factor sign-in: each user's sealed TOTP seed (pending until confirmed), the newest time
//! step a code was accepted for, single-use recovery codes (SHA-256 digests), and the projects
//! that require a second factor of their members. What a seed or a code is, is the center's
//! business; the store only keeps them and makes each use happen once, in one statement.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::{Result, Store, StoreError, now, opt_i64};

/// A user's second factor as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwoFactor {
    /// The sealed seed: pending while `enabled_at` is None.
    pub sealed: Option<String>,
    pub enabled_at: Option<i64>,
    pub last_step: i64,
    pub recovery_left: i64,
}

/// A project that requires a second factor, as a member sees it.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct RequiringProject {
    pub id: String,
    pub name: String,
}

impl Store {
    pub async fn two_factor(&self, user_id: &str) -> Result<TwoFactor> {
        let r = sqlx::query(
            "SELECT totp_sealed, totp_enabled_at, totp_last_step, \
             (SELECT COUNT(*) FROM recovery_codes c WHERE c.user_id = u.id AND c.used_at IS NULL) AS left_ \
             FROM users u WHERE u.id = $1",
        )
        .bind(user_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("user"))?;
        Ok(TwoFactor {
            sealed: r.try_get("totp_sealed")?,
            enabled_at: opt_i64(&r, "totp_enabled_at"),
            last_step: r.try_get("totp_last_step")?,
            recovery_left: opt_i64(&r, "left_").unwrap_or(0),
        })
    }

    /// A new seed waiting for its first code; a seed already confirmed is not replaced.
    pub async fn set_pending_two_factor(&self, user_id: &str, sealed: &str) -> Result<()> {
        let r = sqlx::query(
            "UPDATE users SET totp_sealed = $1, totp_last_step = 0 WHERE id = $2 AND totp_enabled_at IS NULL",
        )
        .bind(sealed.to_string())
        .bind(user_id.to_string())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "two-factor sign-in is already on: turn it off first".into(),
            ));
        }
        Ok(())
    }

    /// Confirms the pending seed with the step of its first code, and replaces the recovery
    /// codes by `code_hashes`, in one transaction.
    pub async fn enable_two_factor(
        &self,
        user_id: &str,
        step: i64,
        code_hashes: &[String],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE users SET totp_enabled_at = $1, totp_last_step = $2 \
             WHERE id = $3 AND totp_sealed IS NOT NULL AND totp_enabled_at IS NULL AND totp_last_step < $2",
        )
        .bind(now())
        .bind(step)
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "no pending two-factor set-up to confirm".into(),
            ));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        for h in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id.to_string())
                .bind(h.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Turns the second factor off: seed and recovery codes gone.
    pub async fn disable_two_factor(&self, user_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_sealed = NULL, totp_enabled_at = NULL, totp_last_step = 0 WHERE id = $1",
        )
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a code of `step` was accepted; false when that step or a later one was
    /// already used (a replayed code, or a race with another sign-in).
    pub async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_enabled_at IS NOT NULL AND totp_last_step < $1",
        )
        .bind(step)
        .bind(user_id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Spends a recovery code; false when it is not one of the user's, or was used.
    pub async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now())
        .bind(user_id.to_string())
        .bind(code_hash.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_require_two_factor(&self, project_id: &str, required: bool) -> Result<()> {
        let r = sqlx::query("UPDATE projects SET require_two_factor = $1 WHERE id = $2")
            .bind(i64::from(required))
            .bind(project_id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("project"));
        }
        Ok(())
    }

    pub async fn requires_two_factor(&self, project_id: &str) -> Result<bool> {
        let r = sqlx::query("SELECT require_two_factor FROM projects WHERE id = $1")
            .bind(project_id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("project"))?;
        Ok(opt_i64(&r, "require_two_factor").unwrap_or(0) != 0)
    }

    /// The first (by name) of `project_ids` requiring a second factor, while the user has none
    /// on: what keeps them to the set-up page. One statement, as every request asks it.
    pub async fn two_factor_required_by(
        &self,
        user_id: &str,
        project_ids: &[String],
    ) -> Result<Option<String>> {
        if project_ids.is_empty() {
            return Ok(None);
        }
        let mut sql = super::Sql::new(
            "SELECT name FROM projects WHERE require_two_factor <> 0 AND NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = ",
        );
        sql.bind(super::Bind::Text(user_id.to_string()))
            .push(" AND u.totp_enabled_at IS NOT NULL) AND id IN ")
            .bind_list(project_ids)
            .push(" ORDER BY name LIMIT 1");
        Ok(sql
            .query()
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get("name"))
            .transpose()?)
    }

    /// The projects among `project_ids` that require a second factor, by name.
    pub async fn projects_requiring_two_factor(
        &self,
        project_ids: &[String],
    ) -> Result<Vec<RequiringProject>> {
        if project_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = super::Sql::new(
            "SELECT id, name FROM projects WHERE require_two_factor <> 0 AND id IN ",
        );
        sql.bind_list(project_ids).push(" ORDER BY name");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(RequiringProject {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewUser, testdb};

    #[tokio::test]
    async fn a_step_and_a_recovery_code_are_each_used_once() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let u = s
                .create_user(&NewUser {
                    username: "ada".into(),
                    password_hash: "h".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                s.two_factor(&u.id).await.unwrap().enabled_at,
                None,
                "{backend}"
            );
            assert!(
                s.enable_two_factor(&u.id, 5, &[]).await.is_err(),
                "nothing pending: {backend}"
            );
            s.set_pending_two_factor(&u.id, "sealed").await.unwrap();
            s.enable_two_factor(&u.id, 5, &["h1".into(), "h2".into()])
                .await
                .unwrap();
            let tf = s.two_factor(&u.id).await.unwrap();
            assert!(
                tf.enabled_at.is_some() && tf.recovery_left == 2 && tf.last_step == 5,
                "{backend}"
            );
            assert!(
                s.set_pending_two_factor(&u.id, "other").await.is_err(),
                "{backend}"
            );
            assert!(
                !s.use_totp_step(&u.id, 5).await.unwrap(),
                "the confirming code: {backend}"
            );
            assert!(s.use_totp_step(&u.id, 6).await.unwrap(), "{backend}");
            assert!(
                !s.use_totp_step(&u.id, 6).await.unwrap(),
                "replayed: {backend}"
            );
            assert!(s.use_recovery_code(&u.id, "h1").await.unwrap(), "{backend}");
            assert!(
                !s.use_recovery_code(&u.id, "h1").await.unwrap(),
                "once: {backend}"
            );
            assert!(
                !s.use_recovery_code(&u.id, "nope").await.unwrap(),
                "{backend}"
            );
            assert_eq!(
                s.two_factor(&u.id).await.unwrap().recovery_left,
                1,
                "{backend}"
            );
            s.disable_two_factor(&u.id).await.unwrap();
            assert_eq!(
                s.two_factor(&u.id).await.unwrap(),
                Default::default(),
                "{backend}"
            );

            let p = s.ensure_project("ops").await.unwrap();
            assert!(!s.requires_two_factor(&p.id).await.unwrap(), "{backend}");
            s.set_require_two_factor(&p.id, true).await.unwrap();
            let req = s
                .projects_requiring_two_factor(&[p.id.clone(), "x".into()])
                .await
                .unwrap();
            assert_eq!(req.len(), 1, "{backend}");
            assert_eq!(req[0].name, "ops", "{backend}");
            let ids = [p.id.clone()];
            assert_eq!(
                s.two_factor_required_by(&u.id, &ids)
                    .await
                    .unwrap()
                    .as_deref(),
                Some("ops"),
                "{backend}"
            );
            s.set_pending_two_factor(&u.id, "sealed").await.unwrap();
            s.enable_two_factor(&u.id, 1, &[]).await.unwrap();
            assert_eq!(
                s.two_factor_required_by(&u.id, &ids).await.unwrap(),
                None,
                "{backend}: on"
            );
        }
    }
}
