//! Servers and their agent, protection and risk statuses with history; install reports and
//! enrollment (the one place an agent identity is bound to a server).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Bind, Result, Sql, Store, StoreError, flag, new_id, now, opt_i64};
use crate::status::{self, StopHint};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub region: String,
    pub hostname: String,
    pub ip_addresses: Vec<String>,
    pub facts: serde_json::Value,
    pub agent_id: Option<String>,
    pub agent_version: String,
    #[serde(skip)]
    pub cert_serial: Option<String>,
    pub agent_status: String,
    pub agent_reason: String,
    pub agent_changed_at: i64,
    pub protection_wanted: bool,
    pub protection_status: String,
    pub protection_reason: String,
    pub protection_changed_at: i64,
    pub risk_status: String,
    /// Why the risk status is `pending`: the checks that have not reported yet ('' otherwise).
    pub risk_reason: String,
    pub risk_counts: serde_json::Value,
    pub risk_changed_at: i64,
    pub config_version: i64,
    pub last_seen_at: Option<i64>,
    pub last_seq: i64,
    /// Id of the agent outbox the stored records came from ('' until an agent sends one).
    pub outbox_id: String,
    /// When the agent last connected with a different outbox than the stored records came
    /// from: records queued in the old one may be lost.
    pub outbox_replaced_at: Option<i64>,
    /// The agent's own figures from its last heartbeat (RSS, CPU, outbox depth).
    pub heartbeat: serde_json::Value,
    pub revoked_at: Option<i64>,
    /// The installer's id for this server, unique within its project.
    pub install_id: Option<String>,
    pub created_at: i64,
    /// The edition bound to it (`basic` … `wtp`), '' when none is: see [`Server::edition`].
    pub edition: String,
    /// Its custom policy group; None: the project's default policies.
    pub policy_group_id: Option<String>,
}

impl Server {
    /// The edition bound to the server, if any.
    pub fn edition(&self) -> Option<hostward_proto::Edition> {
        hostward_proto::Edition::parse(&self.edition).ok()
    }
}

const SERVER_COLUMNS: &str = "id, project_id, name, region, hostname, ip_addresses, facts_json, agent_id, agent_version, \
     cert_serial, agent_status, agent_reason, agent_changed_at, protection_wanted, protection_status, protection_reason, \
     protection_changed_at, risk_status, risk_reason, risk_counts, risk_changed_at, config_version, last_seen_at, last_seq, \
     outbox_id, outbox_replaced_at, heartbeat_json, revoked_at, install_id, created_at, edition, policy_group_id";

fn json_col(row: &AnyRow, col: &str) -> Result<serde_json::Value> {
    let text: String = row.try_get(col)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn server(row: &AnyRow) -> Result<Server> {
    let ips: String = row.try_get("ip_addresses")?;
    Ok(Server {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        region: row.try_get("region")?,
        hostname: row.try_get("hostname")?,
        ip_addresses: ips
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        facts: json_col(row, "facts_json")?,
        agent_id: row.try_get("agent_id")?,
        agent_version: row.try_get("agent_version")?,
        cert_serial: row.try_get("cert_serial")?,
        agent_status: row.try_get("agent_status")?,
        agent_reason: row.try_get("agent_reason")?,
        agent_changed_at: row.try_get("agent_changed_at")?,
        protection_wanted: flag(row, "protection_wanted"),
        protection_status: row.try_get("protection_status")?,
        protection_reason: row.try_get("protection_reason")?,
        protection_changed_at: row.try_get("protection_changed_at")?,
        risk_status: row.try_get("risk_status")?,
        risk_reason: row.try_get("risk_reason")?,
        risk_counts: json_col(row, "risk_counts")?,
        risk_changed_at: row.try_get("risk_changed_at")?,
        config_version: row.try_get("config_version")?,
        last_seen_at: opt_i64(row, "last_seen_at"),
        last_seq: row.try_get("last_seq")?,
        outbox_id: row.try_get("outbox_id")?,
        outbox_replaced_at: opt_i64(row, "outbox_replaced_at"),
        heartbeat: json_col(row, "heartbeat_json")?,
        revoked_at: opt_i64(row, "revoked_at"),
        install_id: row.try_get("install_id")?,
        created_at: row.try_get("created_at")?,
        edition: row.try_get("edition")?,
        policy_group_id: row.try_get("policy_group_id")?,
    })
}

/// A server registered by a user, without an agent yet.
#[derive(Debug, Clone, Default)]
pub struct NewServer {
    pub project_id: String,
    pub name: String,
    pub region: String,
    pub ip_addresses: Vec<String>,
}

/// Server list query. `visible_projects` is the authorization scope and is always applied.
#[derive(Debug, Clone, Default)]
pub struct ServerFilter {
    pub visible_projects: Vec<String>,
    pub project_id: Option<String>,
    pub agent_status: Option<String>,
    pub protection_status: Option<String>,
    pub risk_status: Option<String>,
    pub region: Option<String>,
    /// Substring of name, hostname or IP address.
    pub q: Option<String>,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusChange {
    pub ts: i64,
    /// `agent`, `protection` or `risk`.
    pub dimension: String,
    pub status: String,
    pub reason: String,
}

/// What an enrollment writes about the new agent.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The token presented; one of its uses is consumed in the enrollment transaction.
    pub token_id: String,
    /// The token's re-install grant: bind to this server even though it has or had an agent.
    pub grant_server_id: Option<String>,
    /// When the token was created; a grant older than the server's revocation is void.
    pub token_created_at: i64,
    pub project_id: String,
    pub region: String,
    pub install_id: Option<String>,
    pub agent_id: String,
    pub cert_serial: String,
    pub cert_not_after: i64,
    pub facts: hostward_proto::HostFacts,
}

/// Why an enrollment bound nothing. Nothing was written (the token's use is not consumed).
#[derive(Debug, Clone, PartialEq)]
pub enum EnrollRefusal {
    /// The token was used up, revoked or expired between the check and the transaction.
    TokenUsedUp,
    /// The install id names a server of the project that has an agent: rebinding it needs an
    /// admin's re-install token.
    AlreadyEnrolled { server_id: String, name: String },
    /// The install id (or the re-install token) names a server whose agent was revoked after any
    /// re-install token was issued; only a newer re-install token binds it again.
    Revoked { server_id: String, name: String },
}

fn ips_text(ips: &[String]) -> String {
    ips.join(" ")
}

pub(super) async fn history(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    ts: i64,
    dimension: &str,
    status: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO status_history (server_id, ts, dimension, status, reason) VALUES ($1, $2, $3, $4, $5)")
        .bind(server_id.to_string())
        .bind(ts)
        .bind(dimension.to_string())
        .bind(status.to_string())
        .bind(reason.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn server_tx(tx: &mut Transaction<'static, Any>, id: &str) -> Result<Server> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SERVER_COLUMNS} FROM servers WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("server"))?;
    server(&row)
}

/// Writes agent and derived protection status inside `tx` when they differ from the stored ones,
/// with history rows. Returns whether the agent status changed.
pub(crate) async fn apply_status(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    agent_status: &str,
    agent_reason: &str,
    wanted: Option<bool>,
    hint: StopHint,
) -> Result<bool> {
    let current = server_tx(tx, id).await?;
    let t = now();
    let wanted = wanted.unwrap_or(current.protection_wanted);
    let agent_changed =
        current.agent_status != agent_status || current.agent_reason != agent_reason;
    if agent_changed {
        sqlx::query("UPDATE servers SET agent_status = $1, agent_reason = $2, agent_changed_at = $3 WHERE id = $4")
            .bind(agent_status.to_string())
            .bind(agent_reason.to_string())
            .bind(t)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        history(tx, id, t, "agent", agent_status, agent_reason).await?;
    }
    let (prot, mut cause) = status::protection_for(agent_status, agent_reason, wanted, hint);
    if prot == status::PROTECTION_DISABLED && current.edition.is_empty() {
        cause = status::NO_EDITION;
    }
    if current.protection_status != prot || current.protection_reason != cause {
        sqlx::query("UPDATE servers SET protection_status = $1, protection_reason = $2, protection_changed_at = $3 WHERE id = $4")
            .bind(prot.to_string())
            .bind(cause.to_string())
            .bind(t)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        history(tx, id, t, "protection", prot, cause).await?;
    }
    Ok(agent_changed)
}

impl Store {
    pub async fn create_server(&self, new: &NewServer) -> Result<Server> {
        let id = new_id();
        let t = now();
        let (prot, cause) = status::protection_for(status::NOT_INSTALLED, "", true, StopHint::None);
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO servers (id, project_id, name, region, ip_addresses, agent_status, agent_changed_at, \
             protection_status, protection_reason, protection_changed_at, risk_changed_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7, $7, $7)",
        )
        .bind(id.clone())
        .bind(new.project_id.clone())
        .bind(new.name.clone())
        .bind(new.region.clone())
        .bind(ips_text(&new.ip_addresses))
        .bind(status::NOT_INSTALLED.to_string())
        .bind(t)
        .bind(prot.to_string())
        .bind(cause.to_string())
        .execute(&mut *tx)
        .await?;
        history(&mut tx, &id, t, "agent", status::NOT_INSTALLED, "").await?;
        super::editions::admit(&mut tx, &id).await?;
        let s = server_tx(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// The operating systems (`os_id` of their facts) the servers not revoked run, each once,
    /// sorted: whose vulnerability feeds the center fetches.
    pub async fn fleet_os_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT facts_json FROM servers WHERE revoked_at IS NULL")
            .fetch_all(self.pool())
            .await?;
        let mut out = std::collections::BTreeSet::new();
        for r in &rows {
            if let Some(id) = json_col(r, "facts_json")?
                .get("os_id")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                out.insert(id.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }

    pub async fn server(&self, id: &str) -> Result<Option<Server>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(server).transpose()
    }

    pub async fn server_by_agent_id(&self, agent_id: &str) -> Result<Option<Server>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE agent_id = $1"
        )))
        .bind(agent_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(server).transpose()
    }

    /// Servers matching the filter, newest first, and the total count without paging.
    pub async fn list_servers(&self, f: &ServerFilter) -> Result<(Vec<Server>, i64)> {
        if f.visible_projects.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut wh = Sql::new(" FROM servers WHERE project_id IN ");
        wh.bind_list(&f.visible_projects);
        let eq = [
            ("project_id", &f.project_id),
            ("agent_status", &f.agent_status),
            ("protection_status", &f.protection_status),
            ("risk_status", &f.risk_status),
            ("region", &f.region),
        ];
        for (col, val) in eq {
            if let Some(v) = val {
                wh.push(&format!(" AND {col} = "));
                wh.bind(Bind::Text(v.clone()));
            }
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            // LIKE metacharacters in the search text are taken literally.
            let pat = format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            for (i, col) in ["name", "hostname", "ip_addresses"].iter().enumerate() {
                wh.push(if i == 0 { " AND (" } else { " OR " });
                wh.push(&format!("LOWER({col}) LIKE "));
                wh.bind(Bind::Text(pat.clone()));
                wh.push(" ESCAPE '\\'");
            }
            wh.push(")");
        }
        let mut count = Sql::new("SELECT COUNT(*) AS n");
        count.text.push_str(&wh.text);
        count.binds = wh.binds.clone();
        let total: i64 = count.query().fetch_one(self.pool()).await?.try_get("n")?;

        let per_page = f.per_page.clamp(1, 500) as i64;
        let page = f.page.max(1) as i64;
        let mut list = Sql::new(&format!("SELECT {SERVER_COLUMNS}"));
        list.text.push_str(&wh.text);
        list.binds = wh.binds;
        list.push(" ORDER BY created_at DESC, id LIMIT ");
        list.bind(Bind::Int(per_page));
        list.push(" OFFSET ");
        list.bind(Bind::Int((page - 1) * per_page));
        let rows = list.query().fetch_all(self.pool()).await?;
        Ok((rows.iter().map(server).collect::<Result<_>>()?, total))
    }

    /// (project id, server id) of every server in these projects: the targets of a fleet-wide
    /// task, without loading whole rows.
    pub async fn server_ids_in(&self, projects: &[String]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in projects.chunks(500) {
            let mut sql = Sql::new("SELECT project_id, id FROM servers WHERE project_id IN ");
            sql.bind_list(chunk);
            sql.push(" ORDER BY created_at, id");
            for r in sql.query().fetch_all(self.pool()).await? {
                out.push((r.try_get("project_id")?, r.try_get("id")?));
            }
        }
        Ok(out)
    }

    /// A number that changes whenever any server's config or any project's policy changes
    /// (both versions only grow): the config poll's cheap "anything new?" check.
    pub async fn config_fingerprint(&self) -> Result<i64> {
        let r = sqlx::query(
            // SUM of BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot decode.
            "SELECT CAST((SELECT COALESCE(SUM(config_version), 0) FROM servers) + \
             (SELECT COALESCE(SUM(policy_version), 0) FROM projects) AS BIGINT) AS f",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(r.try_get("f")?)
    }

    /// The config version each of these servers should run: its own plus its project's policy's.
    pub async fn config_versions(&self, server_ids: &[String]) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for chunk in server_ids.chunks(500) {
            let mut sql = Sql::new(
                "SELECT s.id, s.config_version + p.policy_version AS v FROM servers s \
                 JOIN projects p ON p.id = s.project_id WHERE s.id IN ",
            );
            sql.bind_list(chunk);
            for r in sql.query().fetch_all(self.pool()).await? {
                out.push((r.try_get("id")?, r.try_get("v")?));
            }
        }
        Ok(out)
    }

    pub async fn delete_server(&self, id: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        Ok(())
    }

    /// Records install progress reported before the agent has an identity. The install id ties
    /// the reports and the later enrollment to one server.
    pub async fn install_report(
        &self,
        project_id: &str,
        region: &str,
        install_id: &str,
        hostname: &str,
        failed_cause: Option<&str>,
    ) -> Result<Server> {
        let (st, reason) = match failed_cause {
            Some(c) => (status::INSTALL_FAILED, c),
            None => (status::INSTALLING, ""),
        };
        let mut tx = self.begin().await?;
        let existing: Option<String> =
            sqlx::query("SELECT id FROM servers WHERE install_id = $1 AND project_id = $2")
                .bind(install_id.to_string())
                .bind(project_id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = new_id();
                let t = now();
                let (prot, cause) = status::protection_for(st, reason, true, StopHint::None);
                sqlx::query(
                    "INSERT INTO servers (id, project_id, name, region, hostname, install_id, agent_status, agent_reason, \
                     agent_changed_at, protection_status, protection_reason, protection_changed_at, risk_changed_at, created_at) \
                     VALUES ($1, $2, $3, $4, $3, $5, $6, $7, $8, $9, $10, $8, $8, $8)",
                )
                .bind(id.clone())
                .bind(project_id.to_string())
                .bind(hostname.to_string())
                .bind(region.to_string())
                .bind(install_id.to_string())
                .bind(st.to_string())
                .bind(reason.to_string())
                .bind(t)
                .bind(prot.to_string())
                .bind(cause.to_string())
                .execute(&mut *tx)
                .await?;
                history(&mut tx, &id, t, "agent", st, reason).await?;
                super::editions::admit(&mut tx, &id).await?;
                id
            }
        };
        let current = server_tx(&mut tx, &id).await?;
        // An enrolled agent's status is the gateway's business; late install reports must not
        // overwrite it.
        if current.agent_id.is_none() {
            apply_status(&mut tx, &id, st, reason, None, StopHint::None).await?;
        }
        let s = server_tx(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Stores a new agent identity, consuming one use of the token in the same transaction: on
    /// the server its install reports created, else on a new one. A server that has or had an
    /// agent is rebound only by a re-install token naming it (`grant_server_id`), and a revoked
    /// one only by a re-install token issued after the revocation; anything else is refused and
    /// writes nothing. The server stays `installing` until the agent's first hello.
    pub async fn enroll(
        &self,
        e: &Enrollment,
    ) -> Result<std::result::Result<Server, EnrollRefusal>> {
        let mut tx = self.begin().await?;
        let t = now();
        let consumed = sqlx::query(
            "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(e.token_id.clone())
        .bind(t)
        .execute(&mut *tx)
        .await?;
        if consumed.rows_affected() == 0 {
            return Ok(Err(EnrollRefusal::TokenUsedUp));
        }
        let existing = match (&e.grant_server_id, &e.install_id) {
            (Some(sid), _) => Some(server_tx(&mut tx, sid).await?),
            (None, Some(iid)) => {
                let row =
                    sqlx::query("SELECT id FROM servers WHERE install_id = $1 AND project_id = $2")
                        .bind(iid.clone())
                        .bind(e.project_id.clone())
                        .fetch_optional(&mut *tx)
                        .await?;
                match row {
                    Some(r) => Some(server_tx(&mut tx, &r.try_get::<String, _>("id")?).await?),
                    None => None,
                }
            }
            (None, None) => None,
        };
        if let Some(srv) = &existing {
            if srv.project_id != e.project_id {
                return Err(StoreError::NotFound("server"));
            }
            let granted = e.grant_server_id.as_deref() == Some(srv.id.as_str());
            let refusal = match srv.revoked_at {
                Some(r) if !granted || r > e.token_created_at => Some(EnrollRefusal::Revoked {
                    server_id: srv.id.clone(),
                    name: srv.name.clone(),
                }),
                _ if srv.agent_id.is_some() && !granted => Some(EnrollRefusal::AlreadyEnrolled {
                    server_id: srv.id.clone(),
                    name: srv.name.clone(),
                }),
                _ => None,
            };
            if let Some(refusal) = refusal {
                return Ok(Err(refusal));
            }
        }
        let facts = serde_json::to_string(&e.facts).expect("facts serialise");
        let id = match existing {
            Some(srv) => srv.id,
            None => {
                let id = new_id();
                let (prot, cause) =
                    status::protection_for(status::INSTALLING, "", true, StopHint::None);
                sqlx::query(
                    "INSERT INTO servers (id, project_id, name, region, install_id, agent_status, agent_changed_at, \
                     protection_status, protection_reason, protection_changed_at, risk_changed_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7, $7, $7)",
                )
                .bind(id.clone())
                .bind(e.project_id.clone())
                .bind(e.facts.hostname.clone())
                .bind(e.region.clone())
                .bind(e.install_id.clone())
                .bind(status::INSTALLING.to_string())
                .bind(t)
                .bind(prot.to_string())
                .bind(cause.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|err| {
                    super::auth::unique_conflict(err, "server with this install id")
                })?;
                history(&mut tx, &id, t, "agent", status::INSTALLING, "").await?;
                super::editions::admit(&mut tx, &id).await?;
                id
            }
        };
        // revoked_at can only be set here when a re-install token issued after the revocation
        // was presented: that admin decision is what lifts it. The stored seq and outbox stay:
        // a reinstall with a new outbox numbers above them (`resume`), one that kept its state
        // dir goes on where it was.
        sqlx::query(
            "UPDATE servers SET agent_id = $1, cert_serial = $2, cert_not_after = $3, hostname = $4, ip_addresses = $5, \
             facts_json = $6, revoked_at = NULL WHERE id = $7",
        )
        .bind(e.agent_id.clone())
        .bind(e.cert_serial.clone())
        .bind(e.cert_not_after)
        .bind(e.facts.hostname.clone())
        .bind(ips_text(&e.facts.ips))
        .bind(facts)
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
        apply_status(&mut tx, &id, status::INSTALLING, "", None, StopHint::None).await?;
        let s = server_tx(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(Ok(s))
    }

    /// Sets the agent status (and the protection status that follows) if it changed; writes
    /// history. Returns whether the agent status changed.
    pub async fn set_agent_status(
        &self,
        server_id: &str,
        agent_status: &str,
        reason: &str,
        hint: StopHint,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = apply_status(&mut tx, server_id, agent_status, reason, None, hint).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// The user's protection switch. Bumps the config version so the agent gets a new config.
    /// Switching on is refused (Conflict) when the edition's quota is used up.
    pub async fn set_protection_wanted(&self, server_id: &str, enabled: bool) -> Result<Server> {
        let mut tx = self.begin().await?;
        let current = server_tx(&mut tx, server_id).await?;
        if current.protection_wanted != enabled {
            // Protection on takes a quota of its edition (its project's default when it has
            // none); off frees it and keeps the edition for the next time.
            let edition = if enabled {
                super::editions::edition_for_protection(&mut tx, &current)
                    .await?
                    .as_str()
            } else {
                current.edition.as_str()
            };
            sqlx::query("UPDATE servers SET protection_wanted = $1, edition = $2, config_version = config_version + 1 WHERE id = $3")
                .bind(i64::from(enabled))
                .bind(edition.to_string())
                .bind(server_id.to_string())
                .execute(&mut *tx)
                .await?;
            apply_status(
                &mut tx,
                server_id,
                &current.agent_status,
                &current.agent_reason,
                Some(enabled),
                StopHint::None,
            )
            .await?;
        }
        let s = server_tx(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Facts from an agent's hello; marks it online.
    pub async fn agent_hello(
        &self,
        server_id: &str,
        facts: &hostward_proto::HostFacts,
        agent_version: &str,
    ) -> Result<Server> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE servers SET hostname = $1, ip_addresses = $2, facts_json = $3, agent_version = $4, last_seen_at = $5 \
             WHERE id = $6",
        )
        .bind(facts.hostname.clone())
        .bind(ips_text(&facts.ips))
        .bind(serde_json::to_string(facts).expect("facts serialise"))
        .bind(agent_version.to_string())
        .bind(now())
        .bind(server_id.to_string())
        .execute(&mut *tx)
        .await?;
        apply_status(&mut tx, server_id, status::ONLINE, "", None, StopHint::None).await?;
        let s = server_tx(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Batched last-seen update: one statement per chunk, not one per heartbeat.
    pub async fn flush_last_seen(&self, seen: &[(String, i64, String)]) -> Result<()> {
        for chunk in seen.chunks(500) {
            let mut sql = Sql::new("WITH v(id, ts, hb) AS (VALUES ");
            for (i, (id, ts, hb)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(");
                sql.bind(Bind::Text(id.clone()));
                sql.push(", ");
                // PostgreSQL types VALUES columns from the first row; cast so ints stay ints.
                sql.push("CAST(");
                sql.bind(Bind::Int(*ts));
                sql.push(" AS BIGINT), ");
                sql.bind(Bind::Text(hb.clone()));
                sql.push(")");
            }
            sql.push(
                ") UPDATE servers SET last_seen_at = (SELECT ts FROM v WHERE v.id = servers.id), \
                 heartbeat_json = (SELECT hb FROM v WHERE v.id = servers.id) WHERE id IN (SELECT id FROM v)",
            );
            sql.query().execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Revokes the server's agent: its certificate is no longer accepted.
    pub async fn revoke_agent(&self, server_id: &str) -> Result<Server> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE servers SET revoked_at = $1 WHERE id = $2 AND agent_id IS NOT NULL",
        )
        .bind(now())
        .bind(server_id.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("server with an agent"));
        }
        apply_status(
            &mut tx,
            server_id,
            status::OFFLINE,
            status::offline::REVOKED,
            None,
            StopHint::None,
        )
        .await?;
        let s = server_tx(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Agent ids revoked at or after `since`, for replicas to close their live sessions.
    pub async fn revoked_agents_since(&self, since: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT agent_id FROM servers WHERE revoked_at IS NOT NULL AND revoked_at >= $1 AND agent_id IS NOT NULL")
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("agent_id")?)).collect()
    }

    /// Which of these server ids no longer exist (deleted, possibly through another replica).
    pub async fn missing_servers(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut present = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("SELECT id FROM servers WHERE id IN ");
            sql.bind_list(chunk);
            for r in sql.query().fetch_all(self.pool()).await? {
                present.insert(r.try_get::<String, _>("id")?);
            }
        }
        Ok(ids
            .iter()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect())
    }

    /// Servers marked online whose last-seen time is older than `cutoff`: their replica died or
    /// lost them without noticing.
    pub async fn stale_online_servers(&self, cutoff: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM servers WHERE agent_status = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)")
            .bind(status::ONLINE.to_string())
            .bind(cutoff)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// An agent whose outbox restarted below the stored seq (state dir restored from an old
    /// backup) would otherwise have every new record dropped as a duplicate.
    pub async fn reset_last_seq(&self, server_id: &str, seq: i64) -> Result<()> {
        sqlx::query("UPDATE servers SET last_seq = $1 WHERE id = $2 AND last_seq > $1")
            .bind(seq)
            .bind(server_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The agent connected with another outbox than the stored records came from.
    pub async fn outbox_replaced(&self, server_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE servers SET outbox_replaced_at = $1 WHERE id = $2")
            .bind(at)
            .bind(server_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn status_history(&self, server_id: &str, limit: i64) -> Result<Vec<StatusChange>> {
        let rows = sqlx::query(
            "SELECT ts, dimension, status, reason FROM status_history WHERE server_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(server_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StatusChange {
                    ts: r.try_get("ts")?,
                    dimension: r.try_get("dimension")?,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Counts of servers by agent status, for `/metrics` and the console header.
    pub async fn count_by_agent_status(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT agent_status, COUNT(*) AS n FROM servers GROUP BY agent_status")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("agent_status")?, r.try_get("n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb;

    fn facts(host: &str) -> hostward_proto::HostFacts {
        hostward_proto::HostFacts {
            hostname: host.into(),
            ips: vec!["10.1.2.3".into()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn lifecycle_from_install_to_revoke_writes_history() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let srv = s
                .install_report(&p.id, "eu", "inst-1", "web-1", None)
                .await
                .unwrap();
            assert_eq!(srv.agent_status, "installing", "{backend}");
            let token = s.test_token(&p.id).await;
            let e = Enrollment {
                token_id: token.id,
                grant_server_id: None,
                token_created_at: token.created_at,
                project_id: p.id.clone(),
                region: "eu".into(),
                install_id: Some("inst-1".into()),
                agent_id: "agent-1".into(),
                cert_serial: "0abc".into(),
                cert_not_after: 0,
                facts: facts("web-1"),
            };
            let enrolled = s.enroll(&e).await.unwrap().unwrap();
            assert_eq!(
                enrolled.id, srv.id,
                "{backend}: enrollment reuses the install's server"
            );
            let online = s
                .agent_hello(&srv.id, &facts("web-1"), "0.1.0")
                .await
                .unwrap();
            assert_eq!(
                (
                    online.agent_status.as_str(),
                    online.protection_status.as_str()
                ),
                ("online", "enabled"),
                "{backend}"
            );
            assert!(
                s.set_agent_status(&srv.id, "offline", "heartbeat_timeout", StopHint::None)
                    .await
                    .unwrap()
            );
            assert!(
                !s.set_agent_status(&srv.id, "offline", "heartbeat_timeout", StopHint::None)
                    .await
                    .unwrap(),
                "{backend}: no-op"
            );
            let off = s.server(&srv.id).await.unwrap().unwrap();
            assert_eq!(
                (
                    off.protection_status.as_str(),
                    off.protection_reason.as_str()
                ),
                ("interrupted", "agent_offline")
            );
            let revoked = s.revoke_agent(&srv.id).await.unwrap();
            assert_eq!(revoked.agent_reason, "revoked", "{backend}");
            assert_eq!(
                s.revoked_agents_since(0).await.unwrap(),
                vec!["agent-1".to_string()],
                "{backend}"
            );
            let hist = s.status_history(&srv.id, 100).await.unwrap();
            let agent: Vec<_> = hist
                .iter()
                .rev()
                .filter(|h| h.dimension == "agent")
                .map(|h| h.status.as_str())
                .collect();
            assert_eq!(
                agent,
                ["installing", "online", "offline", "offline"],
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn list_filters_scope_and_pages() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let a = s.ensure_project("a").await.unwrap();
            let b = s.ensure_project("b").await.unwrap();
            for i in 0..5 {
                let region = if i % 2 == 0 { "eu" } else { "us" };
                let n = NewServer {
                    project_id: a.id.clone(),
                    name: format!("web-{i}"),
                    region: region.into(),
                    ip_addresses: vec![format!("10.0.0.{i}")],
                };
                s.create_server(&n).await.unwrap();
            }
            s.create_server(&NewServer {
                project_id: b.id.clone(),
                name: "db-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            let mut f = ServerFilter {
                visible_projects: vec![a.id.clone()],
                page: 1,
                per_page: 2,
                ..Default::default()
            };
            let (items, total) = s.list_servers(&f).await.unwrap();
            assert_eq!((items.len(), total), (2, 5), "{backend}");
            f.region = Some("eu".into());
            assert_eq!(s.list_servers(&f).await.unwrap().1, 3, "{backend}");
            f.region = None;
            f.q = Some("10.0.0.4".into());
            let (items, total) = s.list_servers(&f).await.unwrap();
            assert_eq!((total, items[0].name.as_str()), (1, "web-4"), "{backend}");
            f.q = Some("db".into());
            assert_eq!(
                s.list_servers(&f).await.unwrap().1,
                0,
                "{backend}: project b is out of scope"
            );
            f.q = Some("%".into());
            assert_eq!(
                s.list_servers(&f).await.unwrap().1,
                0,
                "{backend}: % is literal"
            );
        }
    }

    #[tokio::test]
    async fn last_seen_flush_is_batched_and_exact() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let mut seen = Vec::new();
            for i in 0..1200 {
                let srv = s
                    .create_server(&NewServer {
                        project_id: p.id.clone(),
                        name: format!("h{i}"),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                seen.push((srv.id, 1000 + i, format!("{{\"rss_bytes\":{i}}}")));
            }
            s.flush_last_seen(&seen).await.unwrap();
            let got = s.server(&seen[1100].0).await.unwrap().unwrap();
            assert_eq!(got.last_seen_at, Some(2100), "{backend}");
            assert_eq!(got.heartbeat["rss_bytes"], 1100, "{backend}");
        }
    }
}
