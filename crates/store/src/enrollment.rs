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
    /// How many enrollments the token allows; `None` is no limit.
    pub max_uses: Option<i64>,
    /// Set on a re-install token: the one server it may bind a new agent to.
    pub server_id: Option<String>,
    /// That server's name.
    pub server_name: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

impl EnrollmentToken {
    /// `revoked`, `expired`, `used_up` or `active` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            "used_up"
        } else {
            "active"
        }
    }
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
    pub max_uses: Option<i64>,
    pub server_id: Option<String>,
    pub created_by: String,
}

const COLUMNS: &str = "id, project_id, name, token_hash, prefix, region, allowed_cidrs, expires_at, revoked_at, uses, max_uses, server_id, created_by, created_at";
/// Every token read names the server a re-install token is bound to.
const SELECT: &str = "SELECT t.id, t.project_id, t.name, t.token_hash, t.prefix, t.region, t.allowed_cidrs, \
     t.expires_at, t.revoked_at, t.uses, t.max_uses, t.server_id, t.created_by, t.created_at, s.name AS server_name \
     FROM enrollment_tokens t LEFT JOIN servers s ON s.id = t.server_id";

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
        max_uses: opt_i64(row, "max_uses"),
        server_id: row.try_get("server_id")?,
        server_name: row.try_get("server_name")?,
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
            "INSERT INTO enrollment_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9, $10, $11, $12)"
        )))
        .bind(id.clone())
        .bind(new.project_id.clone())
        .bind(new.name.clone())
        .bind(new.token_hash.clone())
        .bind(new.prefix.clone())
        .bind(new.region.clone())
        .bind(new.allowed_cidrs.join(" "))
        .bind(new.expires_at)
        .bind(new.max_uses)
        .bind(new.server_id.clone())
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
        let mut sql = Sql::new(&format!("{SELECT} WHERE t.project_id IN ("));
        for (i, p) in project_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Bind::Text(p.clone()));
        }
        sql.push(") ORDER BY t.created_at DESC, t.id");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter().map(token).collect()
    }

    pub async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
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
            "{SELECT} WHERE t.token_hash = $1"
        )))
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token).transpose()
    }

    /// An unlimited, unexpiring token of the project for tests that enroll through the store
    /// (the center's gateway and console tests too, hence the feature).
    #[cfg(any(test, feature = "testdb"))]
    pub async fn test_token(&self, project_id: &str) -> EnrollmentToken {
        self.create_enrollment_token(&NewEnrollmentToken {
            project_id: project_id.into(),
            name: "test".into(),
            token_hash: new_id(),
            prefix: "hwe_test".into(),
            ..Default::default()
        })
        .await
        .expect("test token")
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnrollRefusal, Enrollment, testdb};

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
                ..Default::default()
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
            s.revoke_enrollment_token(&t.id).await.unwrap();
            let got = s.enrollment_token_by_hash("hash-a").await.unwrap().unwrap();
            assert_eq!((got.uses, got.state(now())), (0, "revoked"), "{backend}");
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

    fn enrollment(t: &EnrollmentToken, install_id: Option<&str>, agent: &str) -> Enrollment {
        Enrollment {
            token_id: t.id.clone(),
            grant_server_id: t.server_id.clone(),
            token_created_at: t.created_at,
            project_id: t.project_id.clone(),
            region: String::new(),
            install_id: install_id.map(str::to_string),
            agent_id: agent.into(),
            cert_serial: format!("{agent}-serial"),
            cert_not_after: 0,
            facts: hostward_proto::HostFacts {
                hostname: "web-1".into(),
                ..Default::default()
            },
        }
    }

    async fn grant(s: &Store, server: &crate::Server, created_at: i64) -> EnrollmentToken {
        let t = s
            .create_enrollment_token(&NewEnrollmentToken {
                project_id: server.project_id.clone(),
                name: "re-install".into(),
                token_hash: new_id(),
                max_uses: Some(1),
                server_id: Some(server.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        EnrollmentToken { created_at, ..t }
    }

    #[tokio::test]
    async fn enrolled_and_revoked_servers_are_rebound_only_by_a_newer_grant() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = s.ensure_project("a").await.unwrap();
            let token = s.test_token(&a.id).await;
            let first = s
                .enroll(&enrollment(&token, Some("web-1"), "agent-1"))
                .await
                .unwrap()
                .unwrap();
            // The takeover: same project token, same install id, a new key.
            let again = s
                .enroll(&enrollment(&token, Some("web-1"), "agent-evil"))
                .await
                .unwrap();
            assert_eq!(
                again,
                Err(EnrollRefusal::AlreadyEnrolled {
                    server_id: first.id.clone(),
                    name: "web-1".into()
                }),
                "{backend}"
            );
            let kept = s.server(&first.id).await.unwrap().unwrap();
            assert_eq!(kept.agent_id.as_deref(), Some("agent-1"), "{backend}");
            assert_eq!(
                s.enrollment_token(&token.id).await.unwrap().unwrap().uses,
                1,
                "{backend}: a refused enrollment consumes no use"
            );

            s.revoke_agent(&first.id).await.unwrap();
            let revoked_at = s
                .server(&first.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .unwrap();
            let refused = s
                .enroll(&enrollment(&token, Some("web-1"), "agent-evil"))
                .await
                .unwrap();
            assert!(
                matches!(refused, Err(EnrollRefusal::Revoked { .. })),
                "{backend}: {refused:?}"
            );
            // A grant issued before the revocation does not lift it.
            let old = grant(s, &first, revoked_at - 10).await;
            let refused = s.enroll(&enrollment(&old, None, "agent-2")).await.unwrap();
            assert!(
                matches!(refused, Err(EnrollRefusal::Revoked { .. })),
                "{backend}: {refused:?}"
            );
            let still = s.server(&first.id).await.unwrap().unwrap();
            assert_eq!(
                (still.revoked_at, still.agent_id.as_deref()),
                (Some(revoked_at), Some("agent-1")),
                "{backend}: nothing written"
            );
            // The admin's re-install after the revocation binds the new agent, once.
            let g = grant(s, &first, revoked_at + 1).await;
            let rebound = s
                .enroll(&enrollment(&g, None, "agent-2"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rebound.id, first.id, "{backend}");
            assert_eq!(
                (rebound.agent_id.as_deref(), rebound.revoked_at),
                (Some("agent-2"), None),
                "{backend}"
            );
            assert_eq!(
                s.enroll(&enrollment(&g, None, "agent-3")).await.unwrap(),
                Err(EnrollRefusal::TokenUsedUp),
                "{backend}: a grant is single-use"
            );
        }
    }

    #[tokio::test]
    async fn install_ids_and_use_limits_are_per_project_and_atomic() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = s.ensure_project("a").await.unwrap();
            let b = s.ensure_project("b").await.unwrap();
            let ta = s.test_token(&a.id).await;
            let srv_a = s
                .install_report(&a.id, "", "host-1", "host-1", None)
                .await
                .unwrap();
            // Project B's reports and enrollments with the same install id stay in B.
            let srv_b = s
                .install_report(&b.id, "", "host-1", "evil", Some("disk_full"))
                .await
                .unwrap();
            assert_ne!(srv_b.id, srv_a.id, "{backend}");
            let a_now = s.server(&srv_a.id).await.unwrap().unwrap();
            assert_eq!(
                (a_now.agent_status.as_str(), a_now.project_id.as_str()),
                ("installing", a.id.as_str()),
                "{backend}: B's failure report does not reach A's server"
            );
            let enrolled = s
                .enroll(&enrollment(&ta, Some("host-1"), "agent-a"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(enrolled.id, srv_a.id, "{backend}");
            assert_eq!(enrolled.install_id.as_deref(), Some("host-1"), "{backend}");

            let limited = s
                .create_enrollment_token(&NewEnrollmentToken {
                    project_id: a.id.clone(),
                    name: "two".into(),
                    token_hash: new_id(),
                    max_uses: Some(2),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for i in 0..6 {
                let (s, e) = (
                    s.clone(),
                    enrollment(&limited, None, &format!("agent-l{i}")),
                );
                tasks.push(tokio::spawn(async move { s.enroll(&e).await }));
            }
            let mut enrolled = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(Ok(_)) => enrolled += 1,
                    Ok(Err(r)) => assert_eq!(r, EnrollRefusal::TokenUsedUp, "{backend}"),
                    Err(e) => panic!("{backend}: {e}"),
                }
            }
            assert_eq!(enrolled, 2, "{backend}: max_uses holds under concurrency");
            let t = s.enrollment_token(&limited.id).await.unwrap().unwrap();
            assert_eq!((t.uses, t.state(now())), (2, "used_up"), "{backend}");
        }
    }
}
