//! Each server's usual login addresses: learned from its agent's `login_ip` records while
//! learning is on, or set by people. The center is the source of truth; every change bumps the
//! server's config version so its agent gets the list back in its config.

use hostward_proto::bruteforce::{LoginIp, MAX_USUAL_LOGIN_IPS, Net};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Result, Store, StoreError, flag, now};

/// Where an entry of a server's list came from.
pub mod login_ip_origin {
    /// From the agent's learning (a login from a new address).
    pub const LEARNED: &str = "learned";
    /// Set by a person (the list editor, or "trust login address" on an alarm).
    pub const MANUAL: &str = "manual";
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct LoginIpEntry {
    /// Address or prefix, canonical (`10.0.0.0/8`, `2001:db8::1`).
    pub addr: String,
    /// `learned` or `manual`.
    pub origin: String,
    pub added_at: i64,
    /// The user who added it; None for learned entries.
    pub added_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct ServerLoginIpList {
    /// Whether the agent still learns addresses into this list.
    pub learning: bool,
    /// Oldest first.
    pub items: Vec<LoginIpEntry>,
}

async fn read(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<ServerLoginIpList> {
    let learning = sqlx::query("SELECT login_ips_learning FROM servers WHERE id = $1")
        .bind(server_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    let rows = sqlx::query(
        "SELECT addr, origin, added_at, added_by FROM server_login_ips WHERE server_id = $1 \
         ORDER BY added_at, addr",
    )
    .bind(server_id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(LoginIpEntry {
                addr: r.try_get("addr")?,
                origin: r.try_get("origin")?,
                added_at: r.try_get("added_at")?,
                added_by: r.try_get("added_by")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ServerLoginIpList {
        learning: flag(&learning, "login_ips_learning"),
        items,
    })
}

async fn bump_config(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<()> {
    sqlx::query("UPDATE servers SET config_version = config_version + 1 WHERE id = $1")
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    addr: &str,
    origin: &str,
    added_by: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO server_login_ips (server_id, addr, origin, added_at, added_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(server_id.to_string())
    .bind(addr.to_string())
    .bind(origin.to_string())
    .bind(now())
    .bind(added_by.map(str::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn covers(list: &ServerLoginIpList, addr: std::net::IpAddr) -> bool {
    list.items
        .iter()
        .filter_map(|e| Net::parse(&e.addr).ok())
        .any(|n| n.contains(addr))
}

/// Stores an agent's learned address inside the records transaction: added as `learned` only
/// while the server learns, its list has room and nothing in it covers the address yet (the
/// list may have changed since the agent's config). A record that does not validate is dropped
/// with a warning. Returns whether the list changed (the config version moved).
pub(super) async fn apply_login_ip(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    rec: &LoginIp,
) -> Result<bool> {
    if let Err(e) = rec.validate() {
        tracing::warn!(server_id, error = %e, "dropping a login_ip record");
        return Ok(false);
    }
    let addr: std::net::IpAddr = rec.addr.parse().expect("validated");
    let addr = addr.to_canonical();
    let list = read(tx, server_id).await?;
    if !list.learning || list.items.len() >= MAX_USUAL_LOGIN_IPS || covers(&list, addr) {
        return Ok(false);
    }
    insert(
        tx,
        server_id,
        &addr.to_string(),
        login_ip_origin::LEARNED,
        None,
    )
    .await?;
    bump_config(tx, server_id).await?;
    tracing::info!(server_id, %addr, user = %rec.user, "learned a usual login address");
    Ok(true)
}

impl Store {
    /// A server's usual login addresses and learning switch.
    pub async fn server_login_ips(&self, server_id: &str) -> Result<ServerLoginIpList> {
        let mut tx = self.pool().begin().await?;
        let list = read(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Replaces a server's list with `addrs` (canonical, distinct, at most 20: the caller
    /// validated them) and sets learning. Entries that stay keep their origin and date; new ones
    /// are `manual`, added by `by`. Bumps the config version.
    pub async fn set_server_login_ips(
        &self,
        server_id: &str,
        addrs: &[String],
        learning: bool,
        by: &str,
    ) -> Result<ServerLoginIpList> {
        let mut tx = self.begin().await?;
        let current = read(&mut tx, server_id).await?;
        for e in &current.items {
            if !addrs.contains(&e.addr) {
                sqlx::query("DELETE FROM server_login_ips WHERE server_id = $1 AND addr = $2")
                    .bind(server_id.to_string())
                    .bind(e.addr.clone())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for a in addrs {
            if !current.items.iter().any(|e| &e.addr == a) {
                insert(&mut tx, server_id, a, login_ip_origin::MANUAL, Some(by)).await?;
            }
        }
        sqlx::query(
            "UPDATE servers SET login_ips_learning = $1, config_version = config_version + 1 WHERE id = $2",
        )
        .bind(i64::from(learning))
        .bind(server_id.to_string())
        .execute(&mut *tx)
        .await?;
        let list = read(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Adds `(server_id, addr)` pairs (canonical addresses) as `manual` entries, all or none: a
    /// server whose list would pass 20 entries is a conflict naming it, and nothing changes.
    /// Addresses a server's list already has are skipped. Returns the servers whose list
    /// changed (their config versions moved).
    pub async fn add_server_login_ips(
        &self,
        additions: &[(String, String)],
        by: &str,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut changed: Vec<String> = Vec::new();
        let mut servers: Vec<&str> = additions.iter().map(|(s, _)| s.as_str()).collect();
        servers.sort_unstable();
        servers.dedup();
        for server_id in servers {
            let current = read(&mut tx, server_id).await?;
            let mut new: Vec<&str> = additions
                .iter()
                .filter(|(s, a)| s == server_id && !current.items.iter().any(|e| &e.addr == a))
                .map(|(_, a)| a.as_str())
                .collect();
            new.sort_unstable();
            new.dedup();
            if new.is_empty() {
                continue;
            }
            if current.items.len() + new.len() > MAX_USUAL_LOGIN_IPS {
                // Dropping the transaction rolls back what earlier servers got.
                let name: String = sqlx::query("SELECT name FROM servers WHERE id = $1")
                    .bind(server_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("name")?;
                return Err(StoreError::Conflict(format!(
                    "server {name:?} ({server_id}) has {} usual login addresses; adding {} would pass the limit of {MAX_USUAL_LOGIN_IPS}",
                    current.items.len(),
                    new.len()
                )));
            }
            for a in new {
                insert(&mut tx, server_id, a, login_ip_origin::MANUAL, Some(by)).await?;
            }
            bump_config(&mut tx, server_id).await?;
            changed.push(server_id.to_string());
        }
        tx.commit().await?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Message;

    fn rec(addr: &str) -> Message {
        Message::LoginIp(LoginIp {
            ts: 1,
            addr: addr.into(),
            user: "alice".into(),
            service: "ssh".into(),
        })
    }

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

    fn addrs(l: &ServerLoginIpList) -> Vec<&str> {
        l.items.iter().map(|e| e.addr.as_str()).collect()
    }

    #[tokio::test]
    async fn learned_addresses_are_stored_while_learning_and_under_20() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let srv = server(s, "h").await;
            let list = s.server_login_ips(&srv.id).await.unwrap();
            assert!(list.learning && list.items.is_empty(), "{backend}");

            let stored = s
                .store_records(&srv.id, &[(1, rec("::ffff:192.0.2.1"))])
                .await
                .unwrap();
            assert!(
                stored.follow_ups.contains(&crate::FollowUp::PushConfig),
                "{backend}"
            );
            let list = s.server_login_ips(&srv.id).await.unwrap();
            assert_eq!(addrs(&list), ["192.0.2.1"], "{backend}");
            assert_eq!(list.items[0].origin, "learned", "{backend}");
            assert_eq!(list.items[0].added_by, None, "{backend}");
            let v1 = s.server(&srv.id).await.unwrap().unwrap().config_version;
            assert_eq!(v1, srv.config_version + 1, "{backend}");

            // Already there, a bad record, a redelivery: nothing changes, the seq still moves.
            let stored = s
                .store_records(
                    &srv.id,
                    &[
                        (2, rec("192.0.2.1")),
                        (3, rec("192.0.2.0/24")),
                        (3, rec("192.0.2.9")),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                (
                    stored.high,
                    stored.follow_ups.contains(&crate::FollowUp::PushConfig)
                ),
                (3, false),
                "{backend}"
            );
            assert_eq!(
                s.server(&srv.id).await.unwrap().unwrap().config_version,
                v1,
                "{backend}"
            );

            // Up to 20, then no more.
            let batch: Vec<_> = (0..25)
                .map(|i| (10 + i as u64, rec(&format!("198.51.100.{i}"))))
                .collect();
            s.store_records(&srv.id, &batch).await.unwrap();
            assert_eq!(
                s.server_login_ips(&srv.id).await.unwrap().items.len(),
                20,
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn nothing_is_learned_once_learning_is_off_and_a_put_keeps_what_stays() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let srv = server(s, "h").await;
            s.store_records(&srv.id, &[(1, rec("192.0.2.1")), (2, rec("192.0.2.2"))])
                .await
                .unwrap();
            let before = s.server_login_ips(&srv.id).await.unwrap();
            let list = s
                .set_server_login_ips(
                    &srv.id,
                    &["192.0.2.1".into(), "10.0.0.0/8".into()],
                    false,
                    "ann",
                )
                .await
                .unwrap();
            assert!(!list.learning, "{backend}");
            let kept = list.items.iter().find(|e| e.addr == "192.0.2.1").unwrap();
            assert_eq!(kept, &before.items[0], "{backend}: origin and date kept");
            let added = list.items.iter().find(|e| e.addr == "10.0.0.0/8").unwrap();
            assert_eq!(
                (added.origin.as_str(), added.added_by.as_deref()),
                ("manual", Some("ann")),
                "{backend}"
            );
            assert_eq!(list.items.len(), 2, "{backend}: 192.0.2.2 deleted");

            let stored = s
                .store_records(&srv.id, &[(3, rec("203.0.113.5"))])
                .await
                .unwrap();
            assert!(
                !stored.follow_ups.contains(&crate::FollowUp::PushConfig),
                "{backend}"
            );
            assert_eq!(
                s.server_login_ips(&srv.id).await.unwrap(),
                list,
                "{backend}"
            );
            // Deleted with the server.
            s.delete_server(&srv.id).await.unwrap();
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM server_login_ips")
                .fetch_one(s.pool())
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
            assert_eq!(n, 0, "{backend}");
        }
    }

    #[tokio::test]
    async fn adding_to_several_servers_is_all_or_nothing() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = server(s, "a").await;
            let full = server(s, "full").await;
            let twenty: Vec<String> = (0..20).map(|i| format!("10.0.0.{i}")).collect();
            s.set_server_login_ips(&full.id, &twenty, true, "ann")
                .await
                .unwrap();
            let err = s
                .add_server_login_ips(
                    &[
                        (a.id.clone(), "192.0.2.1".into()),
                        (full.id.clone(), "192.0.2.1".into()),
                    ],
                    "ann",
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Conflict(m) if m.contains("\"full\"")),
                "{backend}: {err}"
            );
            assert!(
                s.server_login_ips(&a.id).await.unwrap().items.is_empty(),
                "{backend}"
            );
            // An address already there takes no room.
            let changed = s
                .add_server_login_ips(
                    &[
                        (a.id.clone(), "192.0.2.1".into()),
                        (full.id.clone(), "10.0.0.3".into()),
                    ],
                    "ann",
                )
                .await
                .unwrap();
            assert_eq!(changed, vec![a.id.clone()], "{backend}");
            let list = s.server_login_ips(&a.id).await.unwrap();
            assert_eq!(addrs(&list), ["192.0.2.1"], "{backend}");
            assert_eq!(list.items[0].added_by.as_deref(), Some("ann"), "{backend}");
        }
    }
}
