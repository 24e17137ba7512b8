//! Enrollment tokens: the secret an install presents to get an agent certificate.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::auth::unique_conflict;
use super::{Bind, Result, Sql, Store, StoreError, new_id, now, opt_i64};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnrollmentToken {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    /// First characters of the secret, for display.
    pub prefix: String,
    /// Region given to servers enrolled with this token.
    pub region: String,
    /// Source networks allowed to enroll; empty means any.
    pub allowed_cidrs: Vec<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub uses: i64,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewEnrollmentToken {
    pub project_id: String,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub region: String,
    pub allowed_cidrs: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_by: String,
}

const COLUMNS: &str = "id, project_id, name, token_hash, prefix, region, allowed_cidrs, expires_at, revoked_at, uses, created_by, created_at";

fn token(row: &AnyRow) -> Result<EnrollmentToken> {
    let cidrs: String = row.try_get("allowed_cidrs")?;
    Ok(EnrollmentToken {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        token_hash: row.try_get("token_hash")?,
        prefix: row.try_get("prefix")?,
        region: row.try_get("region")?,
        allowed_cidrs: cidrs
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        expires_at: opt_i64(row, "expires_at"),
        revoked_at: opt_i64(row, "revoked_at"),
        uses: row.try_get("uses")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn create_enrollment_token(
        &self,
        new: &NewEnrollmentToken,
    ) -> Result<EnrollmentToken> {
        let id = new_id();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO enrollment_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9, $10)"
        )))
        .bind(id.clone())
        .bind(new.project_id.clone())
        .bind(new.name.clone())
        .bind(new.token_hash.clone())
        .bind(new.prefix.clone())
        .bind(new.region.clone())
        .bind(new.allowed_cidrs.join(" "))
        .bind(new.expires_at)
        .bind(new.created_by.clone())
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| unique_conflict(e, "enrollment token"))?;
        self.enrollment_token(&id)
            .await?
            .ok_or(StoreError::NotFound("enrollment token"))
    }

    /// Tokens of these projects, newest first.
    pub async fn list_enrollment_tokens(
        &self,
        project_ids: &[String],
    ) -> Result<Vec<EnrollmentToken>> {
        if project_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM enrollment_tokens WHERE project_id IN ("
        ));
        for (i, p) in project_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Bind::Text(p.clone()));
        }
        sql.push(") ORDER BY created_at DESC, id");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter().map(token).collect()
    }

    pub async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM enrollment_tokens WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token).transpose()
    }

    /// The token with this hash whatever its state: the caller tells expired from revoked.
    pub async fn enrollment_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<EnrollmentToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM enrollment_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token).transpose()
    }

    /// Revoking twice is not an error; an unknown id is.
    pub async fn revoke_enrollment_token(&self, id: &str) -> Result<()> {
        let r = sqlx::query(
            "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("enrollment token"));
        }
        Ok(())
    }

    pub async fn increment_enrollment_token_uses(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdb;

    #[tokio::test]
    async fn enrollment_tokens_round_trip() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = s.ensure_project("a").await.unwrap();
            let b = s.ensure_project("b").await.unwrap();
            let new = NewEnrollmentToken {
                project_id: a.id.clone(),
                name: "web".into(),
                token_hash: "hash-a".into(),
                prefix: "hwe_abcd".into(),
                region: "eu".into(),
                allowed_cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                expires_at: Some(now() + 60),
                created_by: "alice".into(),
            };
            let t = s.create_enrollment_token(&new).await.unwrap();
            assert_eq!(t.allowed_cidrs, new.allowed_cidrs, "{backend}");
            assert!(
                matches!(
                    s.create_enrollment_token(&new).await,
                    Err(StoreError::Conflict(_))
                ),
                "{backend}"
            );
            s.create_enrollment_token(&NewEnrollmentToken {
                project_id: b.id.clone(),
                token_hash: "hash-b".into(),
                ..new.clone()
            })
            .await
            .unwrap();
            assert_eq!(
                s.list_enrollment_tokens(std::slice::from_ref(&a.id))
                    .await
                    .unwrap()
                    .len(),
                1,
                "{backend}"
            );
            assert_eq!(
                s.list_enrollment_tokens(&[a.id.clone(), b.id.clone()])
                    .await
                    .unwrap()
                    .len(),
                2,
                "{backend}"
            );
            assert!(
                s.list_enrollment_tokens(&[]).await.unwrap().is_empty(),
                "{backend}"
            );
            s.increment_enrollment_token_uses(&t.id).await.unwrap();
            s.revoke_enrollment_token(&t.id).await.unwrap();
            let got = s.enrollment_token_by_hash("hash-a").await.unwrap().unwrap();
            assert_eq!(got.uses, 1, "{backend}");
            let first_revoke = got.revoked_at.unwrap();
            s.revoke_enrollment_token(&t.id).await.unwrap();
            assert_eq!(
                s.enrollment_token(&t.id).await.unwrap().unwrap().revoked_at,
                Some(first_revoke),
                "{backend}"
            );
            assert!(
                matches!(
                    s.revoke_enrollment_token("nope").await,
                    Err(StoreError::NotFound(_))
                ),
                "{backend}"
            );
        }
    }
}
