//! What the dashboard shows besides the score: each project's daily snapshot of its score and
//! open risk counts (the 7-day trend), the servers by agent, protection and risk status with
//! the unprotected ones and why, the urgent alarms and the top vulnerabilities.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::{Result, Store, opt_i64, status};

/// One project's figures on one UTC day (days since 1970-01-01).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Snapshot {
    pub day: i64,
    pub score: i64,
    /// Unhandled vulnerability findings.
    pub vulns: i64,
    /// Failed baseline checks nobody ignored.
    pub baseline_failed: i64,
    /// Unhandled alarms.
    pub alarms: i64,
    pub weak_passwords: i64,
    pub unprotected: i64,
    pub servers: i64,
    pub taken_at: i64,
}

/// Servers of one project counted by one status.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// A server whose protection is not on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnprotectedServer {
    pub id: String,
    pub name: String,
    pub protection_status: String,
    pub protection_reason: String,
    pub agent_status: String,
    pub agent_reason: String,
    pub since: i64,
}

/// The servers of a project by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ProtectionOverview {
    pub servers: i64,
    pub by_agent: Vec<StatusCount>,
    pub by_protection: Vec<StatusCount>,
    pub by_risk: Vec<StatusCount>,
    /// At most 50, by name.
    pub unprotected: Vec<UnprotectedServer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UrgentAlarm {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub alarm_type: String,
    pub severity: String,
    pub title: String,
    pub count: i64,
    pub last_seen: i64,
}

/// One CVE open in a project: its worst severity and CVSS, and the servers it affects.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopVuln {
    pub cve: String,
    pub severity: String,
    /// CVSS base score, when the feed gave one.
    pub cvss: Option<f64>,
    pub servers: i64,
    pub packages: String,
    pub summary: String,
}

/// The UTC day number of a Unix time.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(86_400)
}

fn count_by(
    rows: &[(String, String, String, i64)],
    pick: fn(&(String, String, String, i64)) -> &str,
    order: &[&str],
) -> Vec<StatusCount> {
    let mut out: Vec<StatusCount> = order
        .iter()
        .map(|s| StatusCount {
            status: s.to_string(),
            count: 0,
        })
        .collect();
    for r in rows {
        match out.iter_mut().find(|c| c.status == pick(r)) {
            Some(c) => c.count += r.3,
            None => out.push(StatusCount {
                status: pick(r).to_string(),
                count: r.3,
            }),
        }
    }
    out
}

const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

impl Store {
    /// Writes (or rewrites) a project's snapshot of `s.day`.
    pub async fn put_snapshot(&self, project_id: &str, s: &Snapshot) -> Result<()> {
        sqlx::query(
            "INSERT INTO score_snapshots (project_id, day, score, vulns, baseline_failed, alarms, weak_passwords, unprotected, servers, taken_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (project_id, day) DO UPDATE SET score = excluded.score, vulns = excluded.vulns, \
             baseline_failed = excluded.baseline_failed, alarms = excluded.alarms, weak_passwords = excluded.weak_passwords, \
             unprotected = excluded.unprotected, servers = excluded.servers, taken_at = excluded.taken_at",
        )
        .bind(project_id.to_string())
        .bind(s.day)
        .bind(s.score)
        .bind(s.vulns)
        .bind(s.baseline_failed)
        .bind(s.alarms)
        .bind(s.weak_passwords)
        .bind(s.unprotected)
        .bind(s.servers)
        .bind(s.taken_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A project's snapshots of days `from..=to`, oldest first; days without one are absent.
    pub async fn snapshots(&self, project_id: &str, from: i64, to: i64) -> Result<Vec<Snapshot>> {
        let rows = sqlx::query(
            "SELECT day, score, vulns, baseline_failed, alarms, weak_passwords, unprotected, servers, taken_at \
             FROM score_snapshots WHERE project_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(project_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Snapshot {
                    day: r.try_get("day")?,
                    score: r.try_get("score")?,
                    vulns: r.try_get("vulns")?,
                    baseline_failed: r.try_get("baseline_failed")?,
                    alarms: r.try_get("alarms")?,
                    weak_passwords: r.try_get("weak_passwords")?,
                    unprotected: r.try_get("unprotected")?,
                    servers: r.try_get("servers")?,
                    taken_at: r.try_get("taken_at")?,
                })
            })
            .collect()
    }

    /// The servers of a project by agent, protection and risk status, and the unprotected ones.
    pub async fn protection_overview(&self, project_id: &str) -> Result<ProtectionOverview> {
        let rows = sqlx::query(
            "SELECT agent_status, protection_status, risk_status, COUNT(*) AS n FROM servers \
             WHERE project_id = $1 GROUP BY agent_status, protection_status, risk_status",
        )
        .bind(project_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let rows: Vec<(String, String, String, i64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("agent_status")?,
                    r.try_get("protection_status")?,
                    r.try_get("risk_status")?,
                    r.try_get("n")?,
                ))
            })
            .collect::<Result<_>>()?;
        let unprotected = sqlx::query(
            "SELECT id, name, protection_status, protection_reason, agent_status, agent_reason, protection_changed_at \
             FROM servers WHERE project_id = $1 AND protection_status <> $2 ORDER BY name, id LIMIT 50",
        )
        .bind(project_id.to_string())
        .bind(status::PROTECTION_ENABLED)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(UnprotectedServer {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                protection_status: r.try_get("protection_status")?,
                protection_reason: r.try_get("protection_reason")?,
                agent_status: r.try_get("agent_status")?,
                agent_reason: r.try_get("agent_reason")?,
                since: r.try_get("protection_changed_at")?,
            })
        })
        .collect::<Result<_>>()?;
        Ok(ProtectionOverview {
            servers: rows.iter().map(|r| r.3).sum(),
            by_agent: count_by(&rows, |r| &r.0, status::AGENT_STATUSES),
            by_protection: count_by(&rows, |r| &r.1, status::PROTECTION_STATUSES),
            by_risk: count_by(&rows, |r| &r.2, status::RISK_STATUSES),
            unprotected,
        })
    }

    /// Unhandled critical and high alarms of a project, newest first.
    pub async fn urgent_alarms(&self, project_id: &str, limit: i64) -> Result<Vec<UrgentAlarm>> {
        sqlx::query(
            "SELECT a.id, a.server_id, s.name AS server_name, a.alarm_type, a.severity, a.title, a.count, a.last_seen \
             FROM alarms a JOIN servers s ON s.id = a.server_id \
             WHERE a.project_id = $1 AND a.state = 'unhandled' AND a.severity IN ('critical', 'high') \
             ORDER BY a.last_seen DESC, a.id LIMIT $2",
        )
        .bind(project_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(UrgentAlarm {
                id: r.try_get("id")?,
                server_id: r.try_get("server_id")?,
                server_name: r.try_get("server_name")?,
                alarm_type: r.try_get("alarm_type")?,
                severity: r.try_get("severity")?,
                title: r.try_get("title")?,
                count: r.try_get("count")?,
                last_seen: r.try_get("last_seen")?,
            })
        })
        .collect()
    }

    /// The unhandled vulnerabilities of a project by CVE: worst severity, then CVSS, then
    /// servers affected.
    pub async fn top_vulns(&self, project_id: &str, limit: i64) -> Result<Vec<TopVuln>> {
        sqlx::query(
            "SELECT cve, MAX(severity_rank) AS rank, MAX(cvss_x10) AS cvss, COUNT(DISTINCT server_id) AS servers, \
             MIN(package) AS package, COUNT(DISTINCT package) AS packages, MIN(summary) AS summary \
             FROM vuln_findings WHERE project_id = $1 AND present = 1 AND state = 'unhandled' \
             GROUP BY cve ORDER BY rank DESC, cvss DESC, servers DESC, cve LIMIT $2",
        )
        .bind(project_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let rank: i64 = r.try_get("rank")?;
            let n: i64 = r.try_get("packages")?;
            let first: String = r.try_get("package")?;
            Ok(TopVuln {
                cve: r.try_get("cve")?,
                severity: severity_name(rank).to_string(),
                cvss: opt_i64(r, "cvss").map(|c| c as f64 / 10.0),
                servers: r.try_get("servers")?,
                packages: if n > 1 {
                    format!("{first} and {} more", n - 1)
                } else {
                    first
                },
                summary: r.try_get("summary")?,
            })
        })
        .collect()
    }
}

/// The severity of a stored rank (`Severity as i64`: low 0 … critical 3).
pub(crate) fn severity_name(rank: i64) -> &'static str {
    match rank {
        r if r >= 3 => SEVERITIES[0],
        2 => SEVERITIES[1],
        1 => SEVERITIES[2],
        _ => SEVERITIES[3],
    }
}

#[cfg(test)]
#[path = "dashboard_tests.rs"]
pub(crate) mod tests;
