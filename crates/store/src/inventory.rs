//! Host inventory: current items per server and kind, their change history, fleet-wide views,
//! and the per-project inventory policy.
//!
//! Records arrive in seq order, exactly once (see `records.rs`), inside the transaction that
//! moves the server's seq. A full snapshot's parts stamp every item they carry with the
//! snapshot's digest; its last part deletes what was not stamped. A diff applies only on top of
//! the state it names as its base; otherwise nothing changes and the caller asks the agent for
//! a full snapshot, so the stored inventory never drifts from the host's.

use std::collections::HashMap;

use hostward_proto::inventory::{Inventory, InventoryKind};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Bind, FollowUp, Result, Sql, Store, like, now, offset, paged};

/// Rows per `IN (...)` list: well under both backends' parameter limits.
const CHUNK: usize = 400;
/// A kind's resync is asked again only after this long without a full snapshot.
const RESYNC_AGAIN_SECS: i64 = 600;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct InventorySummary {
    pub kind: String,
    pub items: i64,
    /// When the agent last reported a change of this kind (Unix seconds).
    pub collected_at: i64,
    pub updated_at: i64,
    /// Files the collector could not read or parse, as reported with the last record.
    #[schema(value_type = Vec<Object>)]
    pub issues: serde_json::Value,
    /// False while a full snapshot is awaited after a diff that did not fit.
    pub in_sync: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct InventoryItem {
    pub key: String,
    pub name: String,
    pub value: String,
    pub first_seen: i64,
    pub updated_at: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct InventoryChange {
    pub id: i64,
    pub server_id: String,
    pub server_name: String,
    pub kind: String,
    pub key: String,
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Top-level fields that differ, for `changed`.
    pub fields: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub old: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub new: Option<serde_json::Value>,
    /// When the agent collected it (Unix seconds).
    pub ts: i64,
}

/// One group of a fleet-wide view: e.g. software `openssl` version `3.0.11-1~deb12u2` on 12
/// servers.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct AssetGroup {
    pub name: String,
    pub value: String,
    pub servers: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct AssetServer {
    pub server_id: String,
    pub server_name: String,
    pub hostname: String,
    pub project_id: String,
    pub name: String,
    pub value: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// One server, or every server of `visible_projects`.
    pub server_id: Option<String>,
    pub visible_projects: Vec<String>,
    pub kind: Option<InventoryKind>,
    pub change: Option<String>,
    /// Substring of the item's name.
    pub q: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// Top-level fields whose values differ between two items.
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return vec![];
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn add_change(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    kind: InventoryKind,
    key: &str,
    name: &str,
    change: &str,
    old: Option<&str>,
    new: Option<&str>,
    ts: i64,
) -> Result<()> {
    let fields = match (old, new) {
        (Some(o), Some(n)) => changed_fields(&json(o), &json(n)).join(","),
        _ => String::new(),
    };
    sqlx::query(
        "INSERT INTO inventory_changes (server_id, kind, item_key, name, change, fields, old_data, new_data, ts, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(server_id.to_string())
    .bind(kind.as_str().to_string())
    .bind(key.to_string())
    .bind(name.to_string())
    .bind(change.to_string())
    .bind(fields)
    .bind(old.map(str::to_string))
    .bind(new.map(str::to_string))
    .bind(ts)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies one inventory record inside the records transaction. Returns true when the record
/// did not fit the stored state and the agent must send a full snapshot of this kind.
pub(crate) async fn apply_inventory(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    inv: &Inventory,
) -> Result<bool> {
    let kind = inv.kind();
    let k = kind.as_str().to_string();
    if inv.parts == 0 || inv.part >= inv.parts {
        tracing::warn!(kind = %k, part = inv.part, parts = inv.parts, "inventory record with impossible part numbers ignored");
        return Ok(false);
    }
    let t = now();
    let state = sqlx::query(
        "SELECT digest, pending_digest FROM inventory_state WHERE server_id = $1 AND kind = $2",
    )
    .bind(server_id.to_string())
    .bind(k.clone())
    .fetch_optional(&mut **tx)
    .await?;
    let (digest, pending): (String, String) = match &state {
        Some(r) => (r.try_get("digest")?, r.try_get("pending_digest")?),
        None => (String::new(), String::new()),
    };
    let accept = if inv.part == 0 {
        inv.full || (!digest.is_empty() && digest == inv.base)
    } else {
        !pending.is_empty() && pending == inv.digest
    };
    if inv.part == 0 {
        let issues = serde_json::to_string(&inv.issues).unwrap_or_else(|_| "[]".into());
        let pending = if accept {
            inv.digest.clone()
        } else {
            String::new()
        };
        sqlx::query(
            "INSERT INTO inventory_state (server_id, kind, pending_digest, issues, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (server_id, kind) DO UPDATE SET pending_digest = excluded.pending_digest, issues = excluded.issues, updated_at = excluded.updated_at",
        )
        .bind(server_id.to_string())
        .bind(k.clone())
        .bind(pending)
        .bind(issues)
        .bind(t)
        .execute(&mut **tx)
        .await?;
    }
    if !accept {
        // Parts after a refused part 0 are dropped silently: the resync was asked once.
        return Ok(inv.part == 0);
    }
    // The first inventory the center ever holds for this kind is a baseline, not a change.
    let history = kind.has_history() && !(inv.full && digest.is_empty());
    let snap = if inv.full {
        inv.digest.clone()
    } else {
        String::new()
    };
    let rows = inv.items.rows();
    let mut existing: HashMap<String, String> = HashMap::new();
    for chunk in rows.chunks(CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|r| r.key.clone()).collect();
        let mut sql = Sql::new("SELECT item_key, data FROM inventory_items WHERE server_id = ");
        sql.bind(Bind::Text(server_id.to_string()))
            .push(" AND kind = ")
            .bind(Bind::Text(k.clone()))
            .push(" AND item_key IN ");
        sql.bind_list(&keys);
        for r in sql.query().fetch_all(&mut **tx).await? {
            existing.insert(r.try_get("item_key")?, r.try_get("data")?);
        }
    }
    let mut unchanged = Vec::new();
    for r in &rows {
        match existing.get(&r.key) {
            None => {
                sqlx::query(
                    "INSERT INTO inventory_items (server_id, kind, item_key, name, value, data, snap, first_seen, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(server_id.to_string())
                .bind(k.clone())
                .bind(r.key.clone())
                .bind(r.name.clone())
                .bind(r.value.clone())
                .bind(r.json.clone())
                .bind(snap.clone())
                .bind(t)
                .bind(t)
                .execute(&mut **tx)
                .await?;
                if history {
                    add_change(
                        tx,
                        server_id,
                        kind,
                        &r.key,
                        &r.name,
                        "added",
                        None,
                        Some(&r.json),
                        inv.collected_at,
                    )
                    .await?;
                }
            }
            Some(old) if json(old) != json(&r.json) => {
                sqlx::query(
                    "UPDATE inventory_items SET name = $1, value = $2, data = $3, snap = $4, updated_at = $5 \
                     WHERE server_id = $6 AND kind = $7 AND item_key = $8",
                )
                .bind(r.name.clone())
                .bind(r.value.clone())
                .bind(r.json.clone())
                .bind(snap.clone())
                .bind(t)
                .bind(server_id.to_string())
                .bind(k.clone())
                .bind(r.key.clone())
                .execute(&mut **tx)
                .await?;
                if history {
                    add_change(
                        tx,
                        server_id,
                        kind,
                        &r.key,
                        &r.name,
                        "changed",
                        Some(old),
                        Some(&r.json),
                        inv.collected_at,
                    )
                    .await?;
                }
            }
            Some(_) => unchanged.push(r.key.clone()),
        }
    }
    if inv.full {
        for chunk in unchanged.chunks(CHUNK) {
            let mut sql = Sql::new("UPDATE inventory_items SET snap = ");
            sql.bind(Bind::Text(snap.clone()))
                .push(" WHERE server_id = ")
                .bind(Bind::Text(server_id.to_string()))
                .push(" AND kind = ")
                .bind(Bind::Text(k.clone()))
                .push(" AND item_key IN ");
            sql.bind_list(chunk);
            sql.query().execute(&mut **tx).await?;
        }
    }
    let mut gone: Vec<(String, String, String)> = Vec::new();
    if !inv.full {
        for chunk in inv.removed.chunks(CHUNK) {
            let mut sql =
                Sql::new("SELECT item_key, name, data FROM inventory_items WHERE server_id = ");
            sql.bind(Bind::Text(server_id.to_string()))
                .push(" AND kind = ")
                .bind(Bind::Text(k.clone()))
                .push(" AND item_key IN ");
            sql.bind_list(chunk);
            for r in sql.query().fetch_all(&mut **tx).await? {
                gone.push((
                    r.try_get("item_key")?,
                    r.try_get("name")?,
                    r.try_get("data")?,
                ));
            }
        }
    } else if inv.part + 1 == inv.parts {
        let rs = sqlx::query(
            "SELECT item_key, name, data FROM inventory_items WHERE server_id = $1 AND kind = $2 AND snap <> $3",
        )
        .bind(server_id.to_string())
        .bind(k.clone())
        .bind(snap.clone())
        .fetch_all(&mut **tx)
        .await?;
        for r in rs {
            gone.push((
                r.try_get("item_key")?,
                r.try_get("name")?,
                r.try_get("data")?,
            ));
        }
    }
    for (key, name, data) in &gone {
        sqlx::query(
            "DELETE FROM inventory_items WHERE server_id = $1 AND kind = $2 AND item_key = $3",
        )
        .bind(server_id.to_string())
        .bind(k.clone())
        .bind(key.clone())
        .execute(&mut **tx)
        .await?;
        if history {
            add_change(
                tx,
                server_id,
                kind,
                key,
                name,
                "removed",
                Some(data),
                None,
                inv.collected_at,
            )
            .await?;
        }
    }
    if inv.part + 1 == inv.parts {
        sqlx::query(
            "UPDATE inventory_state SET digest = $1, pending_digest = '', collected_at = $2, updated_at = $3, resync_requested_at = NULL, \
             item_count = (SELECT COUNT(*) FROM inventory_items WHERE server_id = $4 AND kind = $5) \
             WHERE server_id = $4 AND kind = $5",
        )
        .bind(inv.digest.clone())
        .bind(inv.collected_at)
        .bind(t)
        .bind(server_id.to_string())
        .bind(k)
        .execute(&mut **tx)
        .await?;
    }
    Ok(false)
}

fn summary(r: &AnyRow) -> Result<InventorySummary> {
    let issues: String = r.try_get("issues")?;
    let pending: String = r.try_get("pending_digest")?;
    let digest: String = r.try_get("digest")?;
    Ok(InventorySummary {
        kind: r.try_get("kind")?,
        items: r.try_get("item_count")?,
        collected_at: r.try_get("collected_at")?,
        updated_at: r.try_get("updated_at")?,
        issues: json(&issues),
        in_sync: !digest.is_empty() || !pending.is_empty(),
    })
}

/// The inventory capability's post-apply step for a diff that did not fit the stored state:
/// asks the agent for a full snapshot of that kind (claimed here, at most once per kind every
/// ten minutes, so a broken agent is not flooded).
pub(super) async fn ask_full_snapshot(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    kind: InventoryKind,
) -> Result<Option<FollowUp>> {
    if !claim_resync_tx(tx, server_id, kind).await? {
        return Ok(None);
    }
    tracing::warn!(%server_id, kind = %kind, "inventory diff does not fit the stored state; asking for a full snapshot");
    Ok(Some(FollowUp::QueueTask {
        kind: hostward_proto::inventory::COLLECT_INVENTORY_TASK,
        params: serde_json::json!({ "kinds": [kind], "full": true }),
        expires_in_secs: 86_400,
    }))
}

async fn claim_resync_tx(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    kind: InventoryKind,
) -> Result<bool> {
    let t = now();
    let r = sqlx::query(
        "UPDATE inventory_state SET resync_requested_at = $1 WHERE server_id = $2 AND kind = $3 \
         AND (resync_requested_at IS NULL OR resync_requested_at < $4)",
    )
    .bind(t)
    .bind(server_id.to_string())
    .bind(kind.as_str().to_string())
    .bind(t - RESYNC_AGAIN_SECS)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() > 0)
}

impl Store {
    /// What the center holds per kind for one server, in kind order.
    pub async fn inventory_summary(&self, server_id: &str) -> Result<Vec<InventorySummary>> {
        let rows = sqlx::query(
            "SELECT kind, item_count, collected_at, updated_at, issues, digest, pending_digest \
             FROM inventory_state WHERE server_id = $1",
        )
        .bind(server_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<InventorySummary> = rows.iter().map(summary).collect::<Result<_>>()?;
        out.sort_by_key(|s| InventoryKind::parse(&s.kind));
        Ok(out)
    }

    /// One server's items of a kind, by name, optionally filtered by a substring of the name or
    /// value; with the total count.
    pub async fn inventory_items(
        &self,
        server_id: &str,
        kind: InventoryKind,
        q: Option<&str>,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<InventoryItem>, i64)> {
        let mut filter = Sql::new(" FROM inventory_items WHERE server_id = ");
        filter
            .bind(Bind::Text(server_id.to_string()))
            .push(" AND kind = ")
            .bind(Bind::Text(kind.as_str().to_string()));
        name_or_value_like(&mut filter, "", q);
        let (rows, total) = paged(
            self,
            "item_key, name, value, data, first_seen, updated_at",
            filter,
            "name, item_key",
            page,
            per_page,
        )
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(InventoryItem {
                    key: r.try_get("item_key")?,
                    name: r.try_get("name")?,
                    value: r.try_get("value")?,
                    first_seen: r.try_get("first_seen")?,
                    updated_at: r.try_get("updated_at")?,
                    data: json(&data),
                })
            })
            .collect::<Result<_>>()?;
        Ok((items, total))
    }

    /// Change history, newest first: of one server, or of every server in the visible projects.
    pub async fn inventory_changes(&self, f: &ChangeFilter) -> Result<(Vec<InventoryChange>, i64)> {
        let mut filter =
            Sql::new(" FROM inventory_changes c JOIN servers s ON s.id = c.server_id WHERE ");
        match &f.server_id {
            Some(id) => {
                filter.push("c.server_id = ").bind(Bind::Text(id.clone()));
            }
            None if f.visible_projects.is_empty() => return Ok((vec![], 0)),
            None => {
                filter.push("s.project_id IN ");
                filter.bind_list(&f.visible_projects);
            }
        }
        if let Some(k) = f.kind {
            filter
                .push(" AND c.kind = ")
                .bind(Bind::Text(k.as_str().to_string()));
        }
        if let Some(c) = &f.change {
            filter.push(" AND c.change = ").bind(Bind::Text(c.clone()));
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            filter
                .push(" AND LOWER(c.name) LIKE ")
                .bind(Bind::Text(like(q)))
                .push(" ESCAPE '\\'");
        }
        let (rows, total) = paged(
            self,
            "c.id, c.server_id, s.name AS server_name, c.kind, c.item_key, c.name, c.change, c.fields, c.old_data, c.new_data, c.ts",
            filter,
            "c.id DESC",
            f.page,
            f.per_page,
        )
        .await?;
        let changes = rows
            .iter()
            .map(|r| {
                let fields: String = r.try_get("fields")?;
                let old: Option<String> = r.try_get("old_data")?;
                let new: Option<String> = r.try_get("new_data")?;
                Ok(InventoryChange {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    kind: r.try_get("kind")?,
                    key: r.try_get("item_key")?,
                    name: r.try_get("name")?,
                    change: r.try_get("change")?,
                    fields: fields
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    old: old.as_deref().map(json),
                    new: new.as_deref().map(json),
                    ts: r.try_get("ts")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((changes, total))
    }

    /// Fleet-wide groups of one kind: (name, value) with how many servers have it, most common
    /// first. `q` matches a substring of the name (`openssl`) or the value (`3.0.11`).
    pub async fn fleet_assets(
        &self,
        kind: InventoryKind,
        visible_projects: &[String],
        q: Option<&str>,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<AssetGroup>, i64)> {
        if visible_projects.is_empty() {
            return Ok((vec![], 0));
        }
        let mut filter = Sql::new(
            " FROM inventory_items i JOIN servers s ON s.id = i.server_id WHERE i.kind = ",
        );
        filter
            .bind(Bind::Text(kind.as_str().to_string()))
            .push(" AND s.project_id IN ");
        filter.bind_list(visible_projects);
        name_or_value_like(&mut filter, "i.", q);
        let total_sql = Sql {
            text: format!(
                "SELECT COUNT(*) AS n FROM (SELECT i.name, i.value{} GROUP BY i.name, i.value) g",
                filter.text
            ),
            binds: filter.binds.clone(),
        };
        let total: i64 = total_sql
            .query()
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        let (limit, off) = offset(page, per_page);
        let mut sql = Sql {
            text: format!(
                "SELECT i.name, i.value, COUNT(DISTINCT i.server_id) AS servers{} GROUP BY i.name, i.value \
                 ORDER BY servers DESC, i.name, i.value LIMIT ",
                filter.text
            ),
            binds: filter.binds,
        };
        sql.bind(Bind::Int(limit))
            .push(" OFFSET ")
            .bind(Bind::Int(off));
        let rows = sql.query().fetch_all(self.pool()).await?;
        let groups = rows
            .iter()
            .map(|r| {
                Ok(AssetGroup {
                    name: r.try_get("name")?,
                    value: r.try_get("value")?,
                    servers: r.try_get("servers")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((groups, total))
    }

    /// The servers (and their items) behind a fleet-wide group: exact `name`, and `value` when
    /// given.
    pub async fn fleet_asset_servers(
        &self,
        kind: InventoryKind,
        visible_projects: &[String],
        name: &str,
        value: Option<&str>,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<AssetServer>, i64)> {
        if visible_projects.is_empty() {
            return Ok((vec![], 0));
        }
        let mut filter = Sql::new(
            " FROM inventory_items i JOIN servers s ON s.id = i.server_id WHERE i.kind = ",
        );
        filter
            .bind(Bind::Text(kind.as_str().to_string()))
            .push(" AND i.name = ")
            .bind(Bind::Text(name.to_string()))
            .push(" AND s.project_id IN ");
        filter.bind_list(visible_projects);
        if let Some(v) = value {
            filter
                .push(" AND i.value = ")
                .bind(Bind::Text(v.to_string()));
        }
        let (rows, total) = paged(
            self,
            "s.id AS server_id, s.name AS server_name, s.hostname, s.project_id, i.name, i.value, i.data",
            filter,
            "s.name, s.id, i.item_key",
            page,
            per_page,
        )
        .await?;
        let out = rows
            .iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(AssetServer {
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    hostname: r.try_get("hostname")?,
                    project_id: r.try_get("project_id")?,
                    name: r.try_get("name")?,
                    value: r.try_get("value")?,
                    data: json(&data),
                })
            })
            .collect::<Result<_>>()?;
        Ok((out, total))
    }
}

/// ` AND (name LIKE %q% OR value LIKE %q%)`, case-insensitive, wildcards in `q` taken literally.
fn name_or_value_like(filter: &mut Sql, alias: &str, q: Option<&str>) {
    if let Some(q) = q.filter(|q| !q.is_empty()) {
        let pat = like(q);
        filter
            .push(&format!(" AND (LOWER({alias}name) LIKE "))
            .bind(Bind::Text(pat.clone()))
            .push(&format!(" ESCAPE '\\' OR LOWER({alias}value) LIKE "))
            .bind(Bind::Text(pat))
            .push(" ESCAPE '\\')");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewServer, testdb};
    use hostward_proto::Message;
    use hostward_proto::inventory::{InventoryPolicy, Items, Package};

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            manager: "dpkg".into(),
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
            vendor: None,
            install_time: None,
        }
    }

    fn rec(
        full: bool,
        base: &str,
        digest: &str,
        part: u32,
        parts: u32,
        pkgs: Vec<Package>,
        removed: &[&str],
    ) -> Message {
        Message::Inventory(Inventory {
            collected_at: 1000,
            full,
            base: base.into(),
            digest: digest.into(),
            part,
            parts,
            items: Items::Software(pkgs),
            removed: removed.iter().map(|s| s.to_string()).collect(),
            issues: vec![],
        })
    }

    async fn names(s: &Store, server: &str) -> Vec<(String, String)> {
        let (items, total) = s
            .inventory_items(server, InventoryKind::Software, None, 1, 100)
            .await
            .unwrap();
        assert_eq!(total as usize, items.len());
        items.into_iter().map(|i| (i.name, i.value)).collect()
    }

    async fn history(s: &Store, server: &str) -> Vec<(String, String, Vec<String>)> {
        let (items, _) = s
            .inventory_changes(&ChangeFilter {
                server_id: Some(server.into()),
                page: 1,
                per_page: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        items
            .into_iter()
            .rev()
            .map(|c| (c.change, c.name, c.fields))
            .collect()
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[tokio::test]
    async fn snapshots_and_diffs_keep_items_and_history_in_step() {
        for (backend, db) in testdb::all().await {
            let st = &db.store;
            let p = st.ensure_project("default").await.unwrap();
            let srv = st
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "h".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let id = srv.id.as_str();
            // Baseline: stored, but no history.
            let r = st
                .store_records(
                    id,
                    &[(
                        1,
                        rec(
                            true,
                            "",
                            "d1",
                            0,
                            1,
                            vec![pkg("openssl", "3.0.11"), pkg("curl", "7.88")],
                            &[],
                        ),
                    )],
                )
                .await
                .unwrap();
            assert!(
                !r.follow_ups
                    .iter()
                    .any(|f| matches!(f, crate::FollowUp::QueueTask { .. })),
                "{backend}"
            );
            assert_eq!(
                names(st, id).await,
                [(s("curl"), s("7.88")), (s("openssl"), s("3.0.11"))],
                "{backend}"
            );
            assert!(
                history(st, id).await.is_empty(),
                "{backend}: a baseline is not a change"
            );

            // A diff on top of d1: openssl upgraded, vim added, curl removed.
            st.store_records(
                id,
                &[(
                    2,
                    rec(
                        false,
                        "d1",
                        "d2",
                        0,
                        1,
                        vec![pkg("openssl", "3.0.13"), pkg("vim", "9.0")],
                        &["curl:amd64"],
                    ),
                )],
            )
            .await
            .unwrap();
            assert_eq!(
                names(st, id).await,
                [(s("openssl"), s("3.0.13")), (s("vim"), s("9.0"))],
                "{backend}"
            );
            assert_eq!(
                history(st, id).await,
                [
                    (s("changed"), s("openssl"), vec![s("version")]),
                    (s("added"), s("vim"), vec![]),
                    (s("removed"), s("curl"), vec![]),
                ],
                "{backend}"
            );
            let (changes, _) = st
                .inventory_changes(&ChangeFilter {
                    server_id: Some(id.into()),
                    change: Some("changed".into()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                changes[0].old.as_ref().unwrap()["version"],
                "3.0.11",
                "{backend}"
            );
            assert_eq!(
                changes[0].new.as_ref().unwrap()["version"],
                "3.0.13",
                "{backend}"
            );

            // A diff against a state the center does not hold: nothing changes, resync asked.
            let r = st
                .store_records(
                    id,
                    &[(
                        3,
                        rec(
                            false,
                            "d-unknown",
                            "d9",
                            0,
                            1,
                            vec![pkg("evil", "1")],
                            &["vim:amd64"],
                        ),
                    )],
                )
                .await
                .unwrap();
            assert_eq!(
                r.follow_ups,
                [crate::FollowUp::QueueTask {
                    kind: hostward_proto::inventory::COLLECT_INVENTORY_TASK,
                    params: serde_json::json!({"kinds": ["software"], "full": true}),
                    expires_in_secs: 86_400,
                }],
                "{backend}"
            );
            assert_eq!(names(st, id).await.len(), 2, "{backend}");
            // The same misfit again within ten minutes: the resync was asked once.
            let again = st
                .store_records(
                    id,
                    &[(
                        4,
                        rec(false, "d-unknown", "d9", 0, 1, vec![pkg("evil", "1")], &[]),
                    )],
                )
                .await
                .unwrap();
            assert!(again.follow_ups.is_empty(), "{backend}: asked once");

            // A full snapshot in two parts: items not in any part go at the last part.
            st.store_records(
                id,
                &[(
                    5,
                    rec(true, "", "d3", 0, 2, vec![pkg("openssl", "3.0.13")], &[]),
                )],
            )
            .await
            .unwrap();
            assert_eq!(
                names(st, id).await.len(),
                2,
                "{backend}: removals wait for the last part"
            );
            st.store_records(
                id,
                &[(6, rec(true, "", "d3", 1, 2, vec![pkg("bash", "5.2")], &[]))],
            )
            .await
            .unwrap();
            assert_eq!(
                names(st, id).await,
                [(s("bash"), s("5.2")), (s("openssl"), s("3.0.13"))],
                "{backend}"
            );
            let h = history(st, id).await;
            assert_eq!(
                &h[3..],
                [
                    (s("added"), s("bash"), vec![]),
                    (s("removed"), s("vim"), vec![])
                ],
                "{backend}"
            );
            let sum = st.inventory_summary(id).await.unwrap();
            assert_eq!(
                (sum[0].kind.as_str(), sum[0].items, sum[0].in_sync),
                ("software", 2, true),
                "{backend}"
            );

            // A diff on the new state applies again.
            st.store_records(
                id,
                &[(7, rec(false, "d3", "d4", 0, 1, vec![], &["bash:amd64"]))],
            )
            .await
            .unwrap();
            assert_eq!(names(st, id).await.len(), 1, "{backend}");
        }
    }

    #[tokio::test]
    async fn fleet_views_group_by_name_and_value_within_visible_projects() {
        for (backend, db) in testdb::all().await {
            let st = &db.store;
            let a = st.ensure_project("a").await.unwrap();
            let b = st.ensure_project("b").await.unwrap();
            let mut ids = vec![];
            for (proj, name, ver) in [
                (&a, "a1", "3.0.11"),
                (&a, "a2", "3.0.11"),
                (&b, "b1", "3.0.13"),
            ] {
                let srv = st
                    .create_server(&NewServer {
                        project_id: proj.id.clone(),
                        name: name.into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                st.store_records(
                    &srv.id,
                    &[(
                        1,
                        rec(
                            true,
                            "",
                            "d",
                            0,
                            1,
                            vec![pkg("openssl", ver), pkg("zlib", "1.2")],
                            &[],
                        ),
                    )],
                )
                .await
                .unwrap();
                ids.push(srv.id);
            }
            let both = vec![a.id.clone(), b.id.clone()];
            let (groups, total) = st
                .fleet_assets(InventoryKind::Software, &both, Some("OpenSSL"), 1, 50)
                .await
                .unwrap();
            assert_eq!(total, 2, "{backend}");
            assert_eq!(
                (groups[0].value.as_str(), groups[0].servers),
                ("3.0.11", 2),
                "{backend}"
            );
            assert_eq!(
                (groups[1].value.as_str(), groups[1].servers),
                ("3.0.13", 1),
                "{backend}"
            );
            let (groups, _) = st
                .fleet_assets(
                    InventoryKind::Software,
                    std::slice::from_ref(&b.id),
                    Some("openssl"),
                    1,
                    50,
                )
                .await
                .unwrap();
            assert_eq!(groups.len(), 1, "{backend}: project a is not visible");
            let (servers, total) = st
                .fleet_asset_servers(
                    InventoryKind::Software,
                    &both,
                    "openssl",
                    Some("3.0.11"),
                    1,
                    50,
                )
                .await
                .unwrap();
            assert_eq!(total, 2, "{backend}");
            assert_eq!(servers[0].server_name, "a1", "{backend}");
            assert_eq!(servers[0].data["version"], "3.0.11", "{backend}");
            let (none, _) = st
                .fleet_assets(InventoryKind::Software, &[], None, 1, 50)
                .await
                .unwrap();
            assert!(none.is_empty(), "{backend}");
            // LIKE wildcards in the search are literal.
            let (pct, _) = st
                .fleet_assets(InventoryKind::Software, &both, Some("%"), 1, 50)
                .await
                .unwrap();
            assert!(pct.is_empty(), "{backend}");
        }
    }

    #[tokio::test]
    async fn policies_round_trip_and_bump_their_version() {
        for (backend, db) in testdb::all().await {
            let st = &db.store;
            let p = st.ensure_project("default").await.unwrap();
            let (pol, v) = st.policy::<InventoryPolicy>(&p.id).await.unwrap();
            assert_eq!((pol, v), (InventoryPolicy::default(), 0), "{backend}");
            let srv = st
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "h".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let before = st.config_fingerprint().await.unwrap();
            let mut pol = InventoryPolicy::default();
            pol.interval_secs.insert(InventoryKind::Ports, 5);
            pol.ignored_ports = vec![6379];
            assert_eq!(st.set_policy(&p.id, &pol).await.unwrap(), 1, "{backend}");
            assert_eq!(
                st.policy::<InventoryPolicy>(&p.id).await.unwrap(),
                (pol, 1),
                "{backend}"
            );
            // The config poll sees the change, and the server's version includes the policy's.
            assert_ne!(st.config_fingerprint().await.unwrap(), before, "{backend}");
            let versions = st
                .config_versions(std::slice::from_ref(&srv.id))
                .await
                .unwrap();
            assert_eq!(
                versions,
                [(srv.id.clone(), srv.config_version + 1)],
                "{backend}"
            );
        }
    }
}
