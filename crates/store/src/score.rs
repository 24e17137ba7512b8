//! The counts a project's security score is computed from (the center's dashboard computes
//! the score itself): open problems by severity, unprotected servers, and when each kind of
//! scan last reported.

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
        let p = project_id.to_string();
        let by_severity = async |sql: &'static str| -> Result<HashMap<String, i64>> {
            sqlx::query(sql)
                .bind(p.clone())
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok((r.try_get("severity")?, r.try_get("n")?)))
                .collect()
        };
        let vulns = by_severity(
            "SELECT severity, COUNT(*) AS n FROM vuln_findings WHERE project_id = $1 AND present = 1 AND state = 'unhandled' GROUP BY severity",
        )
        .await?;
        let baseline_failed = by_severity(
            "SELECT severity, COUNT(*) AS n FROM baseline_results WHERE project_id = $1 AND result = 'fail' AND state = 'open' GROUP BY severity",
        )
        .await?;
        let alarms = by_severity(
            "SELECT severity, COUNT(*) AS n FROM alarms WHERE project_id = $1 AND state = 'unhandled' GROUP BY severity",
        )
        .await?;
        let r = sqlx::query(
            "SELECT COUNT(*) AS servers, \
             SUM(CASE WHEN s.protection_status = $2 THEN 0 ELSE 1 END) AS unprotected, \
             MAX(r.vuln_matched_at) AS last_vuln, MAX(r.baseline_scanned_at) AS last_baseline, \
             (SELECT COUNT(*) FROM weak_passwords w JOIN servers ws ON ws.id = w.server_id WHERE ws.project_id = $1) AS weak \
             FROM servers s LEFT JOIN risk_state r ON r.server_id = s.id WHERE s.project_id = $1",
        )
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
