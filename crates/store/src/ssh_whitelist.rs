//! Each server's SSH login whitelist as people set it: at most one row per server, the list
//! kept whole (canonical entries, the caller checked them). Setting it bumps the server's
//! config version in the same transaction, so every replica sends its agent the new
//! `ssh_whitelist` section within a second.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Result, Store, StoreError, flag, now};

/// A server's whitelist as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SshWhitelistRow {
    pub server_id: String,
    pub enabled: bool,
    /// Canonical addresses or prefixes, in the order they were given.
    pub addrs: Vec<String>,
    /// The user who set it.
    pub set_by: String,
    pub set_at: i64,
}

async fn read(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
) -> Result<Option<SshWhitelistRow>> {
    let row = sqlx::query(
        "SELECT server_id, enabled, addrs, set_by, set_at FROM ssh_whitelists WHERE server_id = $1",
    )
    .bind(server_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        let addrs: String = r.try_get("addrs")?;
        Ok(SshWhitelistRow {
            server_id: r.try_get("server_id")?,
            enabled: flag(&r, "enabled"),
            addrs: addrs.split_whitespace().map(str::to_string).collect(),
            set_by: r.try_get("set_by")?,
            set_at: r.try_get("set_at")?,
        })
    })
    .transpose()
}

impl Store {
    /// The server's whitelist; None when none was ever set.
    pub async fn ssh_whitelist(&self, server_id: &str) -> Result<Option<SshWhitelistRow>> {
        let mut tx = self.pool().begin().await?;
        let row = read(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Replaces the server's whitelist and bumps its config version; NotFound (and nothing
    /// written) when there is no such server. `addrs` must be canonical entries without
    /// spaces, as the center's check gives them.
    pub async fn set_ssh_whitelist(
        &self,
        server_id: &str,
        enabled: bool,
        addrs: &[String],
        by: &str,
    ) -> Result<SshWhitelistRow> {
        if let Some(bad) = addrs
            .iter()
            .find(|a| a.is_empty() || a.contains(char::is_whitespace))
        {
            return Err(StoreError::Invalid(format!(
                "ssh whitelist entry {bad:?} is empty or holds a space"
            )));
        }
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE servers SET config_version = config_version + 1 WHERE id = $1")
            .bind(server_id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        sqlx::query(
            "INSERT INTO ssh_whitelists (server_id, enabled, addrs, set_by, set_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server_id) DO UPDATE SET \
             enabled = excluded.enabled, addrs = excluded.addrs, set_by = excluded.set_by, \
             set_at = excluded.set_at",
        )
        .bind(server_id.to_string())
        .bind(i64::from(enabled))
        .bind(addrs.join(" "))
        .bind(by.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let row = read(&mut tx, server_id)
            .await?
            .ok_or(StoreError::NotFound("ssh whitelist"))?;
        tx.commit().await?;
        Ok(row)
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
    async fn whitelists_are_set_and_replaced_each_bumping_the_config() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let srv = server(s, "web").await;
            let other = server(s, "db").await;
            let v0 = version(s, &srv.id).await;
            assert_eq!(s.ssh_whitelist(&srv.id).await.unwrap(), None, "{backend}");

            let addrs = vec!["192.0.2.1".to_string(), "2001:db8::/32".to_string()];
            let row = s
                .set_ssh_whitelist(&srv.id, true, &addrs, "ann")
                .await
                .unwrap();
            assert!(row.enabled, "{backend}");
            assert_eq!(row.addrs, addrs, "{backend}");
            assert_eq!(row.set_by, "ann", "{backend}");
            assert_eq!(
                s.ssh_whitelist(&srv.id).await.unwrap(),
                Some(row),
                "{backend}"
            );
            assert_eq!(version(s, &srv.id).await, v0 + 1, "{backend}");

            let row = s
                .set_ssh_whitelist(&srv.id, false, &[], "bob")
                .await
                .unwrap();
            assert_eq!((row.enabled, row.addrs.len()), (false, 0), "{backend}");
            assert_eq!(version(s, &srv.id).await, v0 + 2, "{backend}");
            assert_eq!(
                version(s, &other.id).await,
                other.config_version,
                "{backend}"
            );
            assert_eq!(s.ssh_whitelist(&other.id).await.unwrap(), None, "{backend}");
        }
    }

    #[tokio::test]
    async fn unknown_servers_and_bad_entries_store_nothing() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let err = s
                .set_ssh_whitelist("nope", true, &["192.0.2.1".into()], "ann")
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::NotFound("server")),
                "{backend}: {err}"
            );
            let srv = server(s, "web").await;
            let v0 = version(s, &srv.id).await;
            let err = s
                .set_ssh_whitelist(&srv.id, true, &["192.0.2.1 10.0.0.1".into()], "ann")
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{backend}: {err}");
            assert_eq!(s.ssh_whitelist(&srv.id).await.unwrap(), None, "{backend}");
            assert_eq!(version(s, &srv.id).await, v0, "{backend}");

            s.set_ssh_whitelist(&srv.id, true, &["192.0.2.1".into()], "ann")
                .await
                .unwrap();
            s.delete_server(&srv.id).await.unwrap();
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ssh_whitelists")
                .fetch_one(s.pool())
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
            assert_eq!(n, 0, "{backend}: the whitelist went with its server");
        }
    }
}
