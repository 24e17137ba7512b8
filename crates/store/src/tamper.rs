//! Web tamper protection's unlocks from the console: at most one row per server saying until
//! when its protection is lifted and who asked. Setting or clearing one bumps the server's
//! config version in the same transaction, so every replica sends its agent the new
//! `tamper_unlock` section within a second. The project's policy is a `policies` row.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Result, Store, StoreError, now};

/// A server's unlock as people set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TamperUnlockRow {
    pub server_id: String,
    /// Unix seconds; protection is back from then on (a past value is locked).
    pub until: i64,
    /// The user who unlocked.
    pub set_by: String,
    pub set_at: i64,
}

async fn read(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
) -> Result<Option<TamperUnlockRow>> {
    let row = sqlx::query(
        "SELECT server_id, until, set_by, set_at FROM tamper_unlocks WHERE server_id = $1",
    )
    .bind(server_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(TamperUnlockRow {
            server_id: r.try_get("server_id")?,
            until: r.try_get("until")?,
            set_by: r.try_get("set_by")?,
            set_at: r.try_get("set_at")?,
        })
    })
    .transpose()
}

/// Moves the server's config version on; NotFound when there is no such server (then the
/// caller's transaction is dropped and nothing is written).
async fn bump_config(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<()> {
    let r = sqlx::query("UPDATE servers SET config_version = config_version + 1 WHERE id = $1")
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound("server"));
    }
    Ok(())
}

impl Store {
    /// The server's unlock, past or current; None when it was never unlocked or was locked.
    pub async fn tamper_unlock(&self, server_id: &str) -> Result<Option<TamperUnlockRow>> {
        let mut tx = self.pool().begin().await?;
        let row = read(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Unlocks the server until `until` (Unix seconds; the caller checked the bound), replacing
    /// any earlier unlock, and bumps its config version.
    pub async fn set_tamper_unlock(
        &self,
        server_id: &str,
        until: i64,
        by: &str,
    ) -> Result<TamperUnlockRow> {
        let mut tx = self.begin().await?;
        bump_config(&mut tx, server_id).await?;
        sqlx::query(
            "INSERT INTO tamper_unlocks (server_id, until, set_by, set_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (server_id) DO UPDATE SET until = excluded.until, set_by = excluded.set_by, \
             set_at = excluded.set_at",
        )
        .bind(server_id.to_string())
        .bind(until)
        .bind(by.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let row = read(&mut tx, server_id)
            .await?
            .ok_or(StoreError::NotFound("tamper unlock"))?;
        tx.commit().await?;
        Ok(row)
    }

    /// Locks the server again: deletes its unlock and bumps its config version. Returns the
    /// unlock it deleted; None (and no new config) when there was none.
    pub async fn clear_tamper_unlock(&self, server_id: &str) -> Result<Option<TamperUnlockRow>> {
        let mut tx = self.begin().await?;
        let Some(row) = read(&mut tx, server_id).await? else {
            let exists = sqlx::query("SELECT id FROM servers WHERE id = $1")
                .bind(server_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StoreError::NotFound("server")),
            };
        };
        sqlx::query("DELETE FROM tamper_unlocks WHERE server_id = $1")
            .bind(server_id.to_string())
            .execute(&mut *tx)
            .await?;
        bump_config(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};

    async fn server(s: &Store, name: &str) -> crate::Server {
        let p = s.ensure_project("default").await.unwrap();
        s.create_server(&NewServer {
            project_id: p.id,
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    async fn version(s: &Store, id: &str) -> i64 {
        s.server(id).await.unwrap().unwrap().config_version
    }

    #[tokio::test]
    async fn unlocks_are_set_replaced_and_cleared_each_bumping_the_config() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let srv = server(s, "web").await;
            let other = server(s, "db").await;
            let v0 = version(s, &srv.id).await;
            assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "{backend}");

            let row = s
                .set_tamper_unlock(&srv.id, 2_000_000_000, "ann")
                .await
                .unwrap();
            assert_eq!(
                (row.server_id.as_str(), row.until, row.set_by.as_str()),
                (srv.id.as_str(), 2_000_000_000, "ann"),
                "{backend}"
            );
            assert!(row.set_at >= now() - 5, "{backend}");
            assert_eq!(
                s.tamper_unlock(&srv.id).await.unwrap(),
                Some(row),
                "{backend}"
            );
            assert_eq!(version(s, &srv.id).await, v0 + 1, "{backend}");

            // A second unlock replaces the first; the other server is untouched.
            let row = s
                .set_tamper_unlock(&srv.id, 2_000_000_600, "bob")
                .await
                .unwrap();
            assert_eq!(
                (row.until, row.set_by.as_str()),
                (2_000_000_600, "bob"),
                "{backend}"
            );
            assert_eq!(version(s, &srv.id).await, v0 + 2, "{backend}");
            assert_eq!(
                version(s, &other.id).await,
                other.config_version,
                "{backend}"
            );
            assert_eq!(s.tamper_unlock(&other.id).await.unwrap(), None, "{backend}");

            // Locking deletes it and says what it deleted; locking again changes nothing.
            let cleared = s.clear_tamper_unlock(&srv.id).await.unwrap();
            assert_eq!(cleared, Some(row), "{backend}");
            assert_eq!(s.tamper_unlock(&srv.id).await.unwrap(), None, "{backend}");
            assert_eq!(version(s, &srv.id).await, v0 + 3, "{backend}");
            assert_eq!(
                s.clear_tamper_unlock(&srv.id).await.unwrap(),
                None,
                "{backend}"
            );
            assert_eq!(version(s, &srv.id).await, v0 + 3, "{backend}");
        }
    }

    #[tokio::test]
    async fn unknown_servers_are_not_found_and_unlocks_go_with_their_server() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            for err in [
                s.set_tamper_unlock("nope", 2_000_000_000, "ann")
                    .await
                    .unwrap_err(),
                s.clear_tamper_unlock("nope").await.unwrap_err(),
            ] {
                assert!(
                    matches!(err, StoreError::NotFound("server")),
                    "{backend}: {err}"
                );
            }
            let srv = server(s, "web").await;
            s.set_tamper_unlock(&srv.id, 2_000_000_000, "ann")
                .await
                .unwrap();
            s.delete_server(&srv.id).await.unwrap();
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tamper_unlocks")
                .fetch_one(s.pool())
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
            assert_eq!(n, 0, "{backend}: the unlock went with its server");
        }
    }
}
