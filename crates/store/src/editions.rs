//! Editions bound to servers, quotas per project and edition, and the metering of protected
//! time (migration 0020). A server's edition and its protection switch change together in one
//! transaction with its config version, so its agent gets the new config at once; a quota is
//! checked in the same transaction, under a lock on the project's row, so two binds racing for
//! the last quota cannot both win.

use std::collections::BTreeMap;

use hostward_proto::Edition;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::servers::{apply_status, server_tx};
use super::status::StopHint;
use super::{Bind, Result, Server, Store, StoreError};

/// A project's quota of one edition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Quota {
    #[schema(value_type = String)]
    pub edition: Edition,
    /// Servers that may have this edition with protection on; None: no cap.
    pub total: Option<i64>,
    /// Servers that have it now.
    pub used: i64,
}

/// A project's editions: the default new servers get, and every edition's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProjectEditions {
    pub project_id: String,
    #[schema(value_type = String)]
    pub default_edition: Edition,
    pub quotas: Vec<Quota>,
}

/// One server's protected time on one UTC day in one edition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsageRow {
    pub day: String,
    pub project_id: String,
    pub server_id: String,
    /// The name when the time was counted (kept after the server is deleted).
    pub server_name: String,
    #[schema(value_type = String)]
    pub edition: Edition,
    pub seconds: i64,
}

/// The longest stretch one metering tick counts: a tick after a longer pause (a center that
/// was down) counts only this much, since nobody saw the server run meanwhile.
pub const MAX_METER_GAP_SECS: i64 = 120;

/// Ticks closer than this to the last one (another replica's) count nothing.
pub const MIN_TICK_SECS: i64 = 30;

/// Locks the project's row for the rest of `tx` (a no-op update takes the row lock on
/// PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the database).
async fn lock_project(tx: &mut Transaction<'static, Any>, project_id: &str) -> Result<()> {
    let r = sqlx::query("UPDATE projects SET default_edition = default_edition WHERE id = $1")
        .bind(project_id.to_string())
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound("project"));
    }
    Ok(())
}

/// Whether one more server may have `edition` in the project (`except`: a server already
/// counted, e.g. the one being switched); the refusal names the quota.
async fn check_quota(
    tx: &mut Transaction<'static, Any>,
    project_id: &str,
    edition: Edition,
    except: &str,
) -> Result<()> {
    let total: Option<i64> =
        sqlx::query("SELECT total FROM edition_quotas WHERE project_id = $1 AND edition = $2")
            .bind(project_id.to_string())
            .bind(edition.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("total"))
            .transpose()?;
    let Some(total) = total else {
        return Ok(());
    };
    let used: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM servers WHERE project_id = $1 AND edition = $2 \
         AND protection_wanted = 1 AND id <> $3",
    )
    .bind(project_id.to_string())
    .bind(edition.as_str())
    .bind(except.to_string())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    if used >= total {
        return Err(StoreError::Conflict(format!(
            "the project's {} quota is used up: {used} of {total} servers have it",
            edition.as_str()
        )));
    }
    Ok(())
}

/// Writes a server's edition and protection switch, bumps its config version and derives its
/// protection status.
async fn write_binding(
    tx: &mut Transaction<'static, Any>,
    server: &Server,
    edition: &str,
    wanted: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE servers SET edition = $1, protection_wanted = $2, config_version = config_version + 1 \
         WHERE id = $3",
    )
    .bind(edition.to_string())
    .bind(i64::from(wanted))
    .bind(server.id.clone())
    .execute(&mut **tx)
    .await?;
    apply_status(
        tx,
        &server.id,
        &server.agent_status,
        &server.agent_reason,
        Some(wanted),
        StopHint::None,
    )
    .await?;
    Ok(())
}

/// Gives a server just created its project's default edition when the quota has room; else
/// it is left with none, protection off (`no_edition`), and people see why.
pub(crate) async fn admit(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<()> {
    let server = server_tx(tx, server_id).await?;
    lock_project(tx, &server.project_id).await?;
    let default = default_edition(tx, &server.project_id).await?;
    match check_quota(tx, &server.project_id, default, server_id).await {
        Ok(()) => {
            sqlx::query("UPDATE servers SET edition = $1 WHERE id = $2")
                .bind(default.as_str())
                .bind(server_id.to_string())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
        Err(StoreError::Conflict(why)) => {
            tracing::warn!(
                server = server_id,
                "{why}; the new server is left unprotected"
            );
            write_binding(tx, &server, "", false).await
        }
        Err(e) => Err(e),
    }
}

/// The quota check for switching a server's protection on: its edition, or its project's
/// default when it has none. Returns the edition it will have.
pub(crate) async fn edition_for_protection(
    tx: &mut Transaction<'static, Any>,
    server: &Server,
) -> Result<Edition> {
    lock_project(tx, &server.project_id).await?;
    let edition = match server.edition() {
        Some(e) => e,
        None => default_edition(tx, &server.project_id).await?,
    };
    check_quota(tx, &server.project_id, edition, &server.id).await?;
    Ok(edition)
}

async fn default_edition(tx: &mut Transaction<'static, Any>, project_id: &str) -> Result<Edition> {
    let text: String = sqlx::query("SELECT default_edition FROM projects WHERE id = $1")
        .bind(project_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("project"))?
        .try_get("default_edition")?;
    Ok(Edition::parse(&text).unwrap_or_default())
}

impl Store {
    /// A project's default edition and every edition's quota and use.
    pub async fn project_editions(&self, project_id: &str) -> Result<ProjectEditions> {
        let mut tx = self.begin().await?;
        let default_edition = default_edition(&mut tx, project_id).await?;
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for r in sqlx::query("SELECT edition, total FROM edition_quotas WHERE project_id = $1")
            .bind(project_id.to_string())
            .fetch_all(&mut *tx)
            .await?
        {
            totals.insert(r.try_get("edition")?, r.try_get("total")?);
        }
        let mut used: BTreeMap<String, i64> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT edition, COUNT(*) AS n FROM servers WHERE project_id = $1 AND edition <> '' \
             AND protection_wanted = 1 GROUP BY edition",
        )
        .bind(project_id.to_string())
        .fetch_all(&mut *tx)
        .await?
        {
            used.insert(r.try_get("edition")?, r.try_get("n")?);
        }
        tx.commit().await?;
        Ok(ProjectEditions {
            project_id: project_id.to_string(),
            default_edition,
            quotas: Edition::ALL
                .iter()
                .map(|e| Quota {
                    edition: *e,
                    total: totals.get(e.as_str()).copied(),
                    used: used.get(e.as_str()).copied().unwrap_or(0),
                })
                .collect(),
        })
    }

    /// Sets (Some) or lifts (None) a project's quota of an edition. A cap below the servers
    /// that have the edition now is refused, naming them: unbind first.
    pub async fn set_quota(
        &self,
        project_id: &str,
        edition: Edition,
        total: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_project(&mut tx, project_id).await?;
        match total {
            None => {
                sqlx::query("DELETE FROM edition_quotas WHERE project_id = $1 AND edition = $2")
                    .bind(project_id.to_string())
                    .bind(edition.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Some(total) => {
                let used: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM servers WHERE project_id = $1 AND edition = $2 \
                     AND protection_wanted = 1",
                )
                .bind(project_id.to_string())
                .bind(edition.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if total < used {
                    return Err(StoreError::Conflict(format!(
                        "{used} servers have the {} edition now: unbind or switch some before \
                         setting its quota to {total}",
                        edition.as_str()
                    )));
                }
                sqlx::query(
                    "INSERT INTO edition_quotas (project_id, edition, total) VALUES ($1, $2, $3) \
                     ON CONFLICT (project_id, edition) DO UPDATE SET total = excluded.total",
                )
                .bind(project_id.to_string())
                .bind(edition.as_str())
                .bind(total)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The edition new servers of the project get.
    pub async fn set_default_edition(&self, project_id: &str, edition: Edition) -> Result<()> {
        let r = sqlx::query("UPDATE projects SET default_edition = $1 WHERE id = $2")
            .bind(edition.as_str())
            .bind(project_id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("project"));
        }
        Ok(())
    }

    /// Binds `edition` to a server (switching from the one it has), protection on; None
    /// unbinds: no edition, protection off, its quota free. A server in a custom policy group
    /// that the new edition does not allow goes back to the default group.
    pub async fn bind_edition(&self, server_id: &str, edition: Option<Edition>) -> Result<Server> {
        let mut tx = self.begin().await?;
        let server = server_tx(&mut tx, server_id).await?;
        match edition {
            Some(e) => {
                lock_project(&mut tx, &server.project_id).await?;
                check_quota(&mut tx, &server.project_id, e, server_id).await?;
                write_binding(&mut tx, &server, e.as_str(), true).await?;
                if !e.has(hostward_proto::Feature::CustomPolicyGroups) {
                    sqlx::query("UPDATE servers SET policy_group_id = NULL WHERE id = $1")
                        .bind(server_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            None => write_binding(&mut tx, &server, "", false).await?,
        }
        let s = server_tx(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// One metering tick at `now`: every server with an edition, protection on and its agent
    /// online gets the time since its last tick (at most [`MAX_METER_GAP_SECS`]) added to its
    /// usage, cut at UTC midnight; every other server stops being metered. A handful of
    /// set-based statements in one transaction, whatever the fleet's size. Several replicas
    /// may tick: the one that moves `meter_clock` counts, and a tick less than
    /// [`MIN_TICK_SECS`] after the last one counts nothing (its transaction waits for the
    /// other's row lock, then finds the clock moved). Returns the seconds counted.
    pub async fn meter_usage(&self, now: i64) -> Result<i64> {
        const ELIGIBLE: &str =
            "edition <> '' AND protection_wanted = 1 AND agent_status = 'online'";
        let mut tx = self.begin().await?;
        let claimed = sqlx::query("UPDATE meter_clock SET at = $1 WHERE id = 1 AND at <= $2")
            .bind(now)
            .bind(now - MIN_TICK_SECS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(0);
        }
        let midnight = now.div_euclid(86_400) * 86_400;
        // The stretch counted: [start, now) with start = now - min(now - metered_at, gap).
        let secs = format!(
            "CASE WHEN $1 - metered_at > {MAX_METER_GAP_SECS} THEN {MAX_METER_GAP_SECS} ELSE $1 - metered_at END"
        );
        let counted: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(SUM({secs}), 0) AS BIGINT) AS n FROM servers \
             WHERE {ELIGIBLE} AND metered_at IS NOT NULL AND metered_at < $1"
        )))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        // The part after midnight (all of it when the stretch started today), then the part
        // before it.
        for (day, part, when) in [
            (
                utc_day(now),
                format!("CASE WHEN $1 - ({secs}) < $2 THEN $1 - $2 ELSE {secs} END"),
                "TRUE",
            ),
            (
                utc_day(midnight - 1),
                format!("$2 - ($1 - ({secs}))"),
                "$1 - ({secs}) < $2",
            ),
        ] {
            let when = when.replace("{secs}", &secs);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO edition_usage (server_id, day, edition, project_id, server_name, seconds) \
                 SELECT id, $3, edition, project_id, name, {part} FROM servers \
                 WHERE {ELIGIBLE} AND metered_at IS NOT NULL AND metered_at < $1 AND {when} \
                 ON CONFLICT (server_id, day, edition) \
                 DO UPDATE SET seconds = edition_usage.seconds + excluded.seconds, \
                 server_name = excluded.server_name"
            )))
            .bind(now)
            .bind(midnight)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE servers SET metered_at = $1 WHERE {ELIGIBLE}"
        )))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE servers SET metered_at = NULL WHERE metered_at IS NOT NULL AND NOT ({ELIGIBLE})"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(counted)
    }

    /// Protected time of the projects' servers on UTC days `from..=to` (`YYYY-MM-DD`), by day,
    /// server and edition.
    pub async fn usage(&self, projects: &[String], from: &str, to: &str) -> Result<Vec<UsageRow>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = super::Sql::new(
            "SELECT day, project_id, server_id, server_name, edition, seconds FROM edition_usage \
             WHERE day >= ",
        );
        q.bind(Bind::Text(from.to_string()))
            .push(" AND day <= ")
            .bind(Bind::Text(to.to_string()))
            .push(" AND project_id IN ")
            .bind_list(projects)
            .push(" ORDER BY day, server_name, edition");
        let rows = q.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let edition: String = r.try_get("edition")?;
                Ok(UsageRow {
                    day: r.try_get("day")?,
                    project_id: r.try_get("project_id")?,
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    edition: Edition::parse(&edition).unwrap_or_default(),
                    seconds: r.try_get("seconds")?,
                })
            })
            .collect()
    }
}

/// `YYYY-MM-DD` of a Unix time, UTC (days to civil date: Howard Hinnant's algorithm).
pub fn utc_day(t: i64) -> String {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
#[path = "editions_tests.rs"]
mod tests;
