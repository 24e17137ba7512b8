//! The counts a project's security score is computed from (the center's dashboard computes
//! the score itself): open problems by severity, unprotected servers, and when each kind of
//! scan last reported; the same counts for one server.

use std::collections::HashMap;

use sqlx::Row;

use super::{Result, Store, opt_i64, status};

/// Counts of one project. Severities are keyed by name (critical, high, medium, low).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreCounts {
    pub servers: i64,
    pub unprotected: i64,
    pub vulns: HashMap<String, i64>,
    pub baseline_failed: HashMap<String, i64>,
    pub alarms: HashMap<String, i64>,
    pub weak_passwords: i64,
    /// The newest vulnerability match and baseline report of any of its servers.
    pub last_vuln_match: Option<i64>,
    pub last_baseline: Option<i64>,
}

impl Store {
    pub async fn score_counts(&self, project_id: &str) -> Result<ScoreCounts> {
        self.counts_of(Scope::Project, project_id).await
    }

    /// The same counts for one server: its own score uses the same table.
    pub async fn server_score_counts(&self, server_id: &str) -> Result<ScoreCounts> {
        self.counts_of(Scope::Server, server_id).await
    }

    async fn counts_of(&self, scope: Scope, id: &str) -> Result<ScoreCounts> {
        let p = id.to_string();
        // Only these two fixed column names are ever put into the text.
        let (col, srv) = match scope {
            Scope::Project => ("project_id", "s.project_id"),
            Scope::Server => ("server_id", "s.id"),
        };
        let by_severity = async |sql: String| -> Result<HashMap<String, i64>> {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(p.clone())
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok((r.try_get("severity")?, r.try_get("n")?)))
                .collect()
        };
        let vulns = by_severity(format!(
            "SELECT severity, COUNT(*) AS n FROM vuln_findings WHERE {col} = $1 AND present = 1 AND state = 'unhandled' GROUP BY severity"
        ))
        .await?;
        let baseline_failed = by_severity(format!(
            "SELECT severity, COUNT(*) AS n FROM baseline_results WHERE {col} = $1 AND result = 'fail' AND state = 'open' GROUP BY severity"
        ))
        .await?;
        let alarms = by_severity(format!(
            "SELECT severity, COUNT(*) AS n FROM alarms WHERE {col} = $1 AND state = 'unhandled' GROUP BY severity"
        ))
        .await?;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS servers, \
             SUM(CASE WHEN s.protection_status = $2 THEN 0 ELSE 1 END) AS unprotected, \
             MAX(r.vuln_matched_at) AS last_vuln, MAX(r.baseline_scanned_at) AS last_baseline, \
             (SELECT COUNT(*) FROM weak_passwords w JOIN servers ws ON ws.id = w.server_id WHERE ws.{} = $1) AS weak \
             FROM servers s LEFT JOIN risk_state r ON r.server_id = s.id WHERE {srv} = $1",
            if scope == Scope::Project { "project_id" } else { "id" }
        )))
        .bind(p.clone())
        .bind(status::PROTECTION_ENABLED)
        .fetch_one(self.pool())
        .await?;
        Ok(ScoreCounts {
            servers: opt_i64(&r, "servers").unwrap_or(0),
            unprotected: opt_i64(&r, "unprotected").unwrap_or(0),
            vulns,
            baseline_failed,
            alarms,
            weak_passwords: opt_i64(&r, "weak").unwrap_or(0),
            last_vuln_match: opt_i64(&r, "last_vuln"),
            last_baseline: opt_i64(&r, "last_baseline"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Project,
    Server,
}
