//! Users, memberships, console sessions and API tokens. SQL only: password checks, lockout
//! thresholds and role rules live in `crate::auth`.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, flag, new_id, now, opt_i64};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
    pub failed_logins: i64,
    /// Unix seconds; 0 when not locked.
    pub locked_until: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
}

/// A user's role in one project.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Membership {
    pub project_id: String,
    pub project_name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
}

/// A member of one project.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub user_id: String,
    pub username: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// A live console session with its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub user: User,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// First characters of the token, so a user can tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub expires_at: Option<i64>,
}

const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.is_superadmin, u.must_change_password, u.failed_logins, u.locked_until, u.created_at";
const TOKEN_COLUMNS: &str =
    "t.id, t.user_id, t.name, t.prefix, t.created_at, t.last_used_at, t.expires_at, t.revoked_at";

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        is_superadmin: flag(row, "is_superadmin"),
        must_change_password: flag(row, "must_change_password"),
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
    })
}

fn api_token(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: opt_i64(row, "last_used_at"),
        expires_at: opt_i64(row, "expires_at"),
        revoked_at: opt_i64(row, "revoked_at"),
    })
}

/// Turns a unique-key violation into `Conflict` so the API can answer 409.
pub(crate) fn unique_conflict(e: sqlx::Error, what: &str) -> StoreError {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        StoreError::Conflict(format!("{what} already exists"))
    } else {
        StoreError::Db(e)
    }
}

fn b(v: bool) -> i64 {
    v as i64
}

impl Store {
    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, is_superadmin, must_change_password, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(new.username.clone())
        .bind(new.password_hash.clone())
        .bind(b(new.is_superadmin))
        .bind(b(new.must_change_password))
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| unique_conflict(e, "user"))?;
        self.user(&id).await?.ok_or(StoreError::NotFound("user"))
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1"
        )))
        .bind(username.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user).collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }

    /// Deletes the user; memberships, sessions and API tokens go with it (ON DELETE CASCADE).
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }

    /// Also clears any lockout: an administrator resetting a password unlocks the account.
    pub async fn set_password_hash(
        &self,
        id: &str,
        password_hash: &str,
        must_change: bool,
    ) -> Result<()> {
        let r = sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = $2, failed_logins = 0, locked_until = 0 WHERE id = $3",
        )
        .bind(password_hash.to_string())
        .bind(b(must_change))
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }

    /// Reserves one failed attempt on the counter `scope` before a password is checked, in one
    /// statement so parallel attempts each see a distinct count. A counter whose window started
    /// at or before `expired` starts again at 1 with its window at `now`. Returns the count
    /// including this attempt: the caller checks the password only while it is within the limit.
    pub async fn reserve_login_attempt(&self, scope: &str, now: i64, expired: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO login_attempts (scope, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (scope) DO UPDATE SET \
               failures = CASE WHEN login_attempts.window_start <= $3 THEN 1 ELSE login_attempts.failures + 1 END, \
               window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2 ELSE login_attempts.window_start END \
             RETURNING failures",
        )
        .bind(scope.to_string())
        .bind(now)
        .bind(expired)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("failures")?)
    }

    /// Gives back a reservation that did not turn into a failed check (a success, or the check
    /// never ran).
    pub async fn release_login_attempt(&self, scope: &str) -> Result<()> {
        sqlx::query(
            "UPDATE login_attempts SET failures = failures - 1 WHERE scope = $1 AND failures > 0",
        )
        .bind(scope.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets one counter (a successful sign-in clears its account+source counter).
    pub async fn delete_login_attempt(&self, scope: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE scope = $1")
            .bind(scope.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets the counters whose scope starts with `prefix` (an administrator's reset clears
    /// every source of the account: `acct:<name>|`).
    pub async fn clear_login_attempts(&self, prefix: &str) -> Result<()> {
        let like = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        sqlx::query("DELETE FROM login_attempts WHERE scope LIKE $1 ESCAPE '\\'")
            .bind(like)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes counters whose window ended (at or before `expired`).
    pub async fn purge_login_attempts(&self, expired: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM login_attempts WHERE window_start <= $1")
            .bind(expired)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// The count of a counter, 0 when absent or past its window (for tests and the console).
    pub async fn login_attempts(&self, scope: &str, expired: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT failures FROM login_attempts WHERE scope = $1 AND window_start > $2",
        )
        .bind(scope.to_string())
        .bind(expired)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => r.try_get("failures")?,
            None => 0,
        })
    }

    pub async fn lock_user_until(&self, id: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE users SET locked_until = $1 WHERE id = $2")
            .bind(until)
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Gives the user `role` in the project, replacing any role they had there.
    pub async fn set_membership(&self, user_id: &str, project_id: &str, role: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO memberships (user_id, project_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id.to_string())
        .bind(project_id.to_string())
        .bind(role.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Returns whether the user had a role there.
    pub async fn remove_membership(&self, user_id: &str, project_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND project_id = $2")
            .bind(user_id.to_string())
            .bind(project_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT m.project_id, p.name AS project_name, m.role FROM memberships m JOIN projects p ON p.id = m.project_id \
             WHERE m.user_id = $1 ORDER BY p.name",
        )
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    project_id: r.try_get("project_id")?,
                    project_name: r.try_get("project_name")?,
                    role: r.try_get("role")?,
                })
            })
            .collect()
    }

    pub async fn project_members(&self, project_id: &str) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY u.username",
        )
        .bind(project_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                })
            })
            .collect()
    }

    pub async fn create_session(&self, new: &NewSession) -> Result<()> {
        sqlx::query("INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(new.id_hash.clone())
            .bind(new.user_id.clone())
            .bind(new.csrf_token.clone())
            .bind(now())
            .bind(new.expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The session with this id hash if it has not expired, with its user.
    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, s.id_hash, s.csrf_token, s.created_at AS s_created_at, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2"
        )))
        .bind(id_hash.to_string())
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Session {
            id_hash: r.try_get("id_hash")?,
            csrf_token: r.try_get("csrf_token")?,
            created_at: r.try_get("s_created_at")?,
            expires_at: r.try_get("expires_at")?,
            user: user(&r)?,
        }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session of a user (password change, lockout by an admin).
    pub async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Ends every session of a user but the one with CSRF token `keep_csrf` (each session has
    /// its own random one). Returns how many ended.
    pub async fn delete_other_sessions(&self, user_id: &str, keep_csrf: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND csrf_token <> $2")
            .bind(user_id.to_string())
            .bind(keep_csrf.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Revokes every usable token of a user (password change or reset). Returns how many.
    pub async fn revoke_user_api_tokens(&self, user_id: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(user_id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn create_api_token(&self, new: &NewApiToken) -> Result<ApiToken> {
        let id = new_id();
        let t = now();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(new.user_id.clone())
        .bind(new.name.clone())
        .bind(new.token_hash.clone())
        .bind(new.prefix.clone())
        .bind(t)
        .bind(new.expires_at)
        .execute(self.pool())
        .await
        .map_err(|e| unique_conflict(e, "api token"))?;
        Ok(ApiToken {
            id,
            user_id: new.user_id.clone(),
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            created_at: t,
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
        })
    }

    /// The usable (not revoked, not expired) token with this hash, with its user.
    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<(ApiToken, User)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS}, u.username, u.password_hash, u.is_superadmin, u.must_change_password, u.failed_logins, \
             u.locked_until, u.created_at AS u_created_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        )))
        .bind(token_hash.to_string())
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tok = api_token(&r)?;
        let u = User {
            id: tok.user_id.clone(),
            username: r.try_get("username")?,
            password_hash: r.try_get("password_hash")?,
            is_superadmin: flag(&r, "is_superadmin"),
            must_change_password: flag(&r, "must_change_password"),
            failed_logins: r.try_get("failed_logins")?,
            locked_until: r.try_get("locked_until")?,
            created_at: r.try_get("u_created_at")?,
        };
        Ok(Some((tok, u)))
    }

    /// A user's tokens, revoked ones included, newest first.
    pub async fn list_api_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.created_at DESC, t.id"
        )))
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(api_token).collect()
    }

    /// Revokes one of the user's own tokens; another user's token is `NotFound`.
    pub async fn revoke_api_token(&self, user_id: &str, id: &str) -> Result<()> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now())
            .bind(id.to_string())
            .bind(user_id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("api token"));
        }
        Ok(())
    }

    /// Records use, at most once a minute per token so API traffic does not become writes.
    pub async fn touch_api_token(&self, id: &str) -> Result<()> {
        let t = now();
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(t)
            .bind(id.to_string())
            .bind(t - 60)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb;

    fn alice() -> NewUser {
        NewUser {
            username: "alice".into(),
            password_hash: "h1".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn users_lockout_and_memberships() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let u = s.create_user(&alice()).await.unwrap();
            assert!(
                matches!(s.create_user(&alice()).await, Err(StoreError::Conflict(_))),
                "{backend}"
            );
            assert_eq!(
                s.user_by_name("alice").await.unwrap().unwrap().id,
                u.id,
                "{backend}"
            );
            // Reservations count one by one; a window past its end starts again.
            let scope = "acct:alice|192.0.2.1";
            for want in 1..=3 {
                assert_eq!(
                    s.reserve_login_attempt(scope, 1000, 100).await.unwrap(),
                    want,
                    "{backend}"
                );
            }
            s.release_login_attempt(scope).await.unwrap();
            assert_eq!(s.login_attempts(scope, 100).await.unwrap(), 2, "{backend}");
            assert_eq!(
                s.reserve_login_attempt(scope, 2000, 1000).await.unwrap(),
                1,
                "{backend}: window 1000 ended"
            );
            s.reserve_login_attempt("acct:alice|192.0.2.2", 2000, 1000)
                .await
                .unwrap();
            s.reserve_login_attempt("acct:alice_x|192.0.2.2", 2000, 1000)
                .await
                .unwrap();
            s.reserve_login_attempt("acct:alice|192.0.2.10", 2000, 1000)
                .await
                .unwrap();
            s.delete_login_attempt("acct:alice|192.0.2.1")
                .await
                .unwrap();
            assert_eq!(s.login_attempts(scope, 0).await.unwrap(), 0, "{backend}");
            assert_eq!(
                s.login_attempts("acct:alice|192.0.2.10", 0).await.unwrap(),
                1,
                "{backend}: only the exact scope"
            );
            s.clear_login_attempts("acct:alice|").await.unwrap();
            assert_eq!(s.login_attempts(scope, 0).await.unwrap(), 0, "{backend}");
            assert_eq!(
                s.login_attempts("acct:alice_x|192.0.2.2", 0).await.unwrap(),
                1,
                "{backend}: _ is not a wildcard"
            );
            assert_eq!(s.purge_login_attempts(2000).await.unwrap(), 1, "{backend}");
            s.lock_user_until(&u.id, 500).await.unwrap();
            s.set_password_hash(&u.id, "h2", true).await.unwrap();
            let reset = s.user(&u.id).await.unwrap().unwrap();
            assert_eq!(
                (
                    reset.password_hash.as_str(),
                    reset.must_change_password,
                    reset.locked_until
                ),
                ("h2", true, 0),
                "{backend}"
            );

            let p = s.ensure_project("a").await.unwrap();
            s.set_membership(&u.id, &p.id, "viewer").await.unwrap();
            s.set_membership(&u.id, &p.id, "admin").await.unwrap();
            let m = s.memberships_of(&u.id).await.unwrap();
            assert_eq!(
                (m.len(), m[0].role.as_str(), m[0].project_name.as_str()),
                (1, "admin", "a"),
                "{backend}"
            );
            assert_eq!(
                s.project_members(&p.id).await.unwrap()[0].username,
                "alice",
                "{backend}"
            );
            assert!(
                s.remove_membership(&u.id, &p.id).await.unwrap(),
                "{backend}"
            );
            assert!(
                s.memberships_of(&u.id).await.unwrap().is_empty(),
                "{backend}"
            );

            s.set_membership(&u.id, &p.id, "operator").await.unwrap();
            s.delete_user(&u.id).await.unwrap();
            assert!(
                s.project_members(&p.id).await.unwrap().is_empty(),
                "{backend}: memberships cascade"
            );
            assert!(
                matches!(s.delete_user(&u.id).await, Err(StoreError::NotFound(_))),
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn sessions_expire_and_tokens_revoke() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let u = s.create_user(&alice()).await.unwrap();
            let live = NewSession {
                id_hash: "live".into(),
                user_id: u.id.clone(),
                csrf_token: "c".into(),
                expires_at: now() + 60,
            };
            s.create_session(&live).await.unwrap();
            s.create_session(&NewSession {
                id_hash: "old".into(),
                expires_at: now() - 1,
                ..live.clone()
            })
            .await
            .unwrap();
            let got = s.session("live").await.unwrap().unwrap();
            assert_eq!(
                (got.user.username.as_str(), got.csrf_token.as_str()),
                ("alice", "c"),
                "{backend}"
            );
            assert!(
                s.session("old").await.unwrap().is_none(),
                "{backend}: expired"
            );
            assert_eq!(s.purge_expired_sessions().await.unwrap(), 1, "{backend}");
            s.delete_session("live").await.unwrap();
            assert!(s.session("live").await.unwrap().is_none(), "{backend}");

            let new = NewApiToken {
                user_id: u.id.clone(),
                name: "ci".into(),
                token_hash: "th".into(),
                prefix: "hwa_ab".into(),
                expires_at: None,
            };
            let tok = s.create_api_token(&new).await.unwrap();
            s.create_api_token(&NewApiToken {
                token_hash: "gone".into(),
                expires_at: Some(1),
                ..new.clone()
            })
            .await
            .unwrap();
            assert!(
                s.api_token_by_hash("gone").await.unwrap().is_none(),
                "{backend}: expired"
            );
            let (t, owner) = s.api_token_by_hash("th").await.unwrap().unwrap();
            assert_eq!(
                (t.id.as_str(), owner.username.as_str()),
                (tok.id.as_str(), "alice"),
                "{backend}"
            );
            s.touch_api_token(&tok.id).await.unwrap();
            assert!(
                s.list_api_tokens(&u.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|t| t.last_used_at.is_some()),
                "{backend}"
            );
            assert!(
                matches!(
                    s.revoke_api_token("someone-else", &tok.id).await,
                    Err(StoreError::NotFound(_))
                ),
                "{backend}"
            );
            s.revoke_api_token(&u.id, &tok.id).await.unwrap();
            assert!(
                s.api_token_by_hash("th").await.unwrap().is_none(),
                "{backend}: revoked"
            );
            assert_eq!(
                s.list_api_tokens(&u.id).await.unwrap().len(),
                2,
                "{backend}"
            );
        }
    }
}
