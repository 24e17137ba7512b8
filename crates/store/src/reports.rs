//! Security reports: the figures a report of one project over a time range is made of (alarms
//! by type, severity and state; vulnerabilities found and fixed; failed baseline checks;
//! servers added or that lost protection), report schedules, and the generated reports with
//! their email delivery. A schedule's run stores its report and moves the schedule's next run
//! in one transaction, so a run is never lost nor made twice (restarts, replicas).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::dashboard::severity_name;
use super::{Result, Store, StoreError, flag, new_id, now, opt_i64};

/// Alarms of one type, severity and state that occurred in a range.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct AlarmGroup {
    pub alarm_type: String,
    pub severity: String,
    /// unhandled, handled or ignored, as of the report.
    pub state: String,
    pub alarms: i64,
    /// Occurrences, repeats included.
    pub occurrences: i64,
}

/// One server of the project with what happened on it in a range.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ReportServer {
    pub id: String,
    pub name: String,
    pub agent_status: String,
    pub protection_status: String,
    pub risk_status: String,
    /// Alarms that occurred in the range.
    pub alarms: i64,
    /// Unhandled vulnerability findings now.
    pub open_vulns: i64,
    /// Failed baseline checks nobody ignored, now.
    pub failed_checks: i64,
    pub created_at: i64,
}

/// A change of a server's protection in a range.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ProtectionChange {
    pub server_id: String,
    pub server_name: String,
    pub ts: i64,
    pub status: String,
    pub reason: String,
}

/// A failed baseline check and how many servers fail it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct FailedCheck {
    pub policy: String,
    pub title: String,
    pub severity: String,
    pub servers: i64,
}

/// What the store can tell about a project over `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct RangeFacts {
    pub alarms: Vec<AlarmGroup>,
    /// Vulnerability findings first seen in the range, by severity (critical, high, medium, low).
    pub vulns_found: [i64; 4],
    /// Findings that became fixed in the range, by severity.
    pub vulns_fixed: [i64; 4],
    /// Findings ignored in the range, by severity.
    pub vulns_ignored: [i64; 4],
    /// Unhandled findings now, by severity.
    pub vulns_open: [i64; 4],
    /// Failed baseline checks nobody ignored, now, by severity (the store keeps each check's
    /// current result only, not what it was on each day of the range).
    pub baseline_failed: [i64; 4],
    /// The worst of those checks, with how many servers fail each (at most 20).
    pub failed_checks: Vec<FailedCheck>,
    pub servers: Vec<ReportServer>,
    /// Servers registered in the range.
    pub added: Vec<ReportServer>,
    /// Protection changes in the range to anything but enabled.
    pub lost_protection: Vec<ProtectionChange>,
    /// Protection changes in the range back to enabled.
    pub regained_protection: Vec<ProtectionChange>,
}

fn sev_index(s: &str) -> Option<usize> {
    ["critical", "high", "medium", "low"]
        .iter()
        .position(|x| *x == s)
}

/// A report schedule.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReportSchedule {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// Five fields, UTC: minute hour day-of-month month day-of-week.
    pub cron: String,
    /// daily, weekly or monthly: the last complete period before each run.
    pub range_kind: String,
    /// Comma-separated: html, pdf.
    pub formats: String,
    pub enabled: bool,
    pub next_run: i64,
    pub last_run: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub project_id: String,
    pub name: String,
    pub cron: String,
    pub range_kind: String,
    pub formats: String,
    pub enabled: bool,
    pub next_run: i64,
    pub created_by: String,
}

/// A generated report without its content.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReportRow {
    pub id: String,
    pub project_id: String,
    pub schedule_id: Option<String>,
    pub range_kind: String,
    pub range_from: i64,
    pub range_to: i64,
    pub formats: String,
    pub created_by: String,
    pub created_at: i64,
    /// none (made by hand), pending, sent or failed.
    pub delivery: String,
    pub delivery_note: String,
}

#[derive(Debug, Clone)]
pub struct NewReport {
    pub project_id: String,
    pub schedule_id: Option<String>,
    pub range_kind: String,
    pub range_from: i64,
    pub range_to: i64,
    pub formats: String,
    /// JSON of what the report says.
    pub content: String,
    pub created_by: String,
}

const SCHEDULE_COLUMNS: &str = "id, project_id, name, cron, range_kind, formats, enabled, next_run, last_run, created_by, created_at";
const REPORT_COLUMNS: &str = "id, project_id, schedule_id, range_kind, range_from, range_to, formats, created_by, created_at, delivery, delivery_note";

fn schedule(r: &AnyRow) -> Result<ReportSchedule> {
    Ok(ReportSchedule {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        cron: r.try_get("cron")?,
        range_kind: r.try_get("range_kind")?,
        formats: r.try_get("formats")?,
        enabled: flag(r, "enabled"),
        next_run: r.try_get("next_run")?,
        last_run: opt_i64(r, "last_run"),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn report(r: &AnyRow) -> Result<ReportRow> {
    Ok(ReportRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        schedule_id: r.try_get("schedule_id")?,
        range_kind: r.try_get("range_kind")?,
        range_from: r.try_get("range_from")?,
        range_to: r.try_get("range_to")?,
        formats: r.try_get("formats")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        delivery: r.try_get("delivery")?,
        delivery_note: r.try_get("delivery_note")?,
    })
}

/// Counts by severity of `sql`, which takes the project and, when given, the range.
async fn by_severity(
    store: &Store,
    sql: &'static str,
    p: &str,
    range: Option<(i64, i64)>,
) -> Result<[i64; 4]> {
    let mut out = [0; 4];
    let mut q = sqlx::query(sql).bind(p.to_string());
    if let Some((from, to)) = range {
        q = q.bind(from).bind(to);
    }
    for r in q.fetch_all(store.pool()).await? {
        let sev: String = r.try_get("severity")?;
        if let Some(i) = sev_index(&sev) {
            out[i] += r.try_get::<i64, _>("n")?;
        }
    }
    Ok(out)
}

async fn protection_changes(
    store: &Store,
    p: &str,
    from: i64,
    to: i64,
    enabled: bool,
) -> Result<Vec<ProtectionChange>> {
    let op = if enabled { "=" } else { "<>" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT h.server_id, s.name, h.ts, h.status, h.reason FROM status_history h JOIN servers s ON s.id = h.server_id \
         WHERE s.project_id = $1 AND h.dimension = 'protection' AND h.ts >= $2 AND h.ts < $3 AND h.status {op} 'enabled' \
         ORDER BY h.ts, h.id LIMIT 500"
    )))
    .bind(p.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(ProtectionChange {
            server_id: r.try_get("server_id")?,
            server_name: r.try_get("name")?,
            ts: r.try_get("ts")?,
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
        })
    })
    .collect()
}

impl Store {
    /// What the store can tell about a project over `[from, to)`.
    pub async fn range_facts(&self, project_id: &str, from: i64, to: i64) -> Result<RangeFacts> {
        let p = project_id.to_string();
        let alarms = sqlx::query(
            "SELECT alarm_type, severity, state, COUNT(*) AS n, CAST(SUM(count) AS BIGINT) AS occurrences FROM alarms \
             WHERE project_id = $1 AND last_seen >= $2 AND first_seen < $3 \
             GROUP BY alarm_type, severity, state ORDER BY alarm_type, severity, state",
        )
        .bind(p.clone())
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(AlarmGroup {
                alarm_type: r.try_get("alarm_type")?,
                severity: r.try_get("severity")?,
                state: r.try_get("state")?,
                alarms: r.try_get("n")?,
                occurrences: opt_i64(r, "occurrences").unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let vulns_found = by_severity(
            self,
            "SELECT severity, COUNT(*) AS n FROM vuln_findings WHERE project_id = $1 AND first_seen >= $2 AND first_seen < $3 GROUP BY severity",
            &p,
            Some((from, to)),
        )
        .await?;
        let vulns_fixed = by_severity(
            self,
            "SELECT f.severity, COUNT(DISTINCT f.id) AS n FROM vuln_history h JOIN vuln_findings f ON f.id = h.finding_id \
             WHERE f.project_id = $1 AND h.to_state = 'fixed' AND h.ts >= $2 AND h.ts < $3 GROUP BY f.severity",
            &p,
            Some((from, to)),
        )
        .await?;
        let vulns_ignored = by_severity(
            self,
            "SELECT f.severity, COUNT(DISTINCT f.id) AS n FROM vuln_history h JOIN vuln_findings f ON f.id = h.finding_id \
             WHERE f.project_id = $1 AND h.to_state = 'ignored' AND h.ts >= $2 AND h.ts < $3 GROUP BY f.severity",
            &p,
            Some((from, to)),
        )
        .await?;
        let vulns_open = by_severity(
            self,
            "SELECT severity, COUNT(*) AS n FROM vuln_findings WHERE project_id = $1 AND present = 1 AND state = 'unhandled' GROUP BY severity",
            &p,
            None,
        )
        .await?;
        let baseline_failed = by_severity(
            self,
            "SELECT severity, COUNT(*) AS n FROM baseline_results WHERE project_id = $1 AND result = 'fail' AND state = 'open' GROUP BY severity",
            &p,
            None,
        )
        .await?;
        let failed_checks = sqlx::query(
            "SELECT policy_name, title, MAX(severity_rank) AS rank, COUNT(DISTINCT server_id) AS n FROM baseline_results \
             WHERE project_id = $1 AND result = 'fail' AND state = 'open' \
             GROUP BY policy_name, title ORDER BY rank DESC, n DESC, policy_name, title LIMIT 20",
        )
        .bind(p.clone())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(FailedCheck {
                policy: r.try_get("policy_name")?,
                title: r.try_get("title")?,
                severity: severity_name(r.try_get("rank")?).into(),
                servers: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let servers = sqlx::query(
            "SELECT s.id, s.name, s.agent_status, s.protection_status, s.risk_status, s.created_at, \
             (SELECT COUNT(*) FROM alarms a WHERE a.server_id = s.id AND a.last_seen >= $2 AND a.first_seen < $3) AS alarms, \
             (SELECT COUNT(*) FROM vuln_findings v WHERE v.server_id = s.id AND v.present = 1 AND v.state = 'unhandled') AS vulns, \
             (SELECT COUNT(*) FROM baseline_results b WHERE b.server_id = s.id AND b.result = 'fail' AND b.state = 'open') AS checks \
             FROM servers s WHERE s.project_id = $1 ORDER BY s.name, s.id LIMIT 1000",
        )
        .bind(p.clone())
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ReportServer {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                agent_status: r.try_get("agent_status")?,
                protection_status: r.try_get("protection_status")?,
                risk_status: r.try_get("risk_status")?,
                alarms: r.try_get("alarms")?,
                open_vulns: r.try_get("vulns")?,
                failed_checks: r.try_get("checks")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let added = servers
            .iter()
            .filter(|s| s.created_at >= from && s.created_at < to)
            .cloned()
            .collect();
        Ok(RangeFacts {
            alarms,
            vulns_found,
            vulns_fixed,
            vulns_ignored,
            vulns_open,
            baseline_failed,
            failed_checks,
            servers,
            added,
            lost_protection: protection_changes(self, &p, from, to, false).await?,
            regained_protection: protection_changes(self, &p, from, to, true).await?,
        })
    }

    pub async fn create_schedule(&self, s: &NewSchedule) -> Result<ReportSchedule> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO report_schedules (id, project_id, name, cron, range_kind, formats, enabled, next_run, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.clone())
        .bind(s.project_id.clone())
        .bind(s.name.clone())
        .bind(s.cron.clone())
        .bind(s.range_kind.clone())
        .bind(s.formats.clone())
        .bind(s.enabled as i64)
        .bind(s.next_run)
        .bind(s.created_by.clone())
        .bind(now())
        .execute(self.pool())
        .await?;
        self.schedule(&id).await
    }

    pub async fn schedule(&self, id: &str) -> Result<ReportSchedule> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound("report schedule"))?;
        schedule(&r)
    }

    pub async fn schedules(&self, projects: &[String]) -> Result<Vec<ReportSchedule>> {
        let mut sql = super::Sql::new(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE project_id IN "
        ));
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        sql.bind_list(projects).push(" ORDER BY created_at, id");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(schedule)
            .collect()
    }

    pub async fn delete_schedule(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM report_schedules WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("report schedule"));
        }
        Ok(())
    }

    /// Enabled schedules whose next run is at or before `at`.
    pub async fn due_schedules(&self, at: i64) -> Result<Vec<ReportSchedule>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE enabled = 1 AND next_run <= $1 ORDER BY next_run, id LIMIT 100"
        )))
        .bind(at)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(schedule)
        .collect()
    }

    /// Records the run of `s` that was due at `s.next_run`: stores its report (pending
    /// delivery) and moves the schedule to `next_run`, in one transaction, only if no one else
    /// ran it meanwhile. Returns the report's id, or None when another replica (or an earlier
    /// run of this one) took it.
    pub async fn finish_schedule_run(
        &self,
        s: &ReportSchedule,
        next_run: i64,
        r: &NewReport,
    ) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE report_schedules SET next_run = $1, last_run = $2 WHERE id = $3 AND next_run = $4 AND enabled = 1",
        )
        .bind(next_run)
        .bind(now())
        .bind(s.id.clone())
        .bind(s.next_run)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id = new_id();
        let inserted = insert_report(&mut tx, &id, r, "pending").await?;
        tx.commit().await?;
        Ok(inserted.then_some(id))
    }

    /// Moves a schedule's next run without a report (one that cannot be made: its project is
    /// gone), only if it is still `from`.
    pub async fn skip_schedule_run(&self, id: &str, from: i64, next_run: i64) -> Result<bool> {
        let moved = sqlx::query(
            "UPDATE report_schedules SET next_run = $1 WHERE id = $2 AND next_run = $3",
        )
        .bind(next_run)
        .bind(id.to_string())
        .bind(from)
        .execute(self.pool())
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    /// Stores a report made by hand (not emailed).
    pub async fn create_report(&self, r: &NewReport) -> Result<ReportRow> {
        let id = new_id();
        let mut tx = self.begin().await?;
        insert_report(&mut tx, &id, r, "none").await?;
        tx.commit().await?;
        self.report(&id).await
    }

    pub async fn report(&self, id: &str) -> Result<ReportRow> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound("report"))?;
        report(&r)
    }

    /// A report's content (JSON).
    pub async fn report_content(&self, id: &str) -> Result<String> {
        let r = sqlx::query("SELECT content FROM reports WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound("report"))?;
        Ok(r.try_get("content")?)
    }

    /// Reports of the projects, newest first.
    pub async fn reports(&self, projects: &[String], limit: i64) -> Result<Vec<ReportRow>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = super::Sql::new(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE project_id IN "
        ));
        sql.bind_list(projects)
            .push(" ORDER BY created_at DESC, id LIMIT ")
            .bind(super::Bind::Int(limit.clamp(1, 1000)));
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(report)
            .collect()
    }

    /// Claims one report waiting to be emailed until `until` (so one replica sends it); a claim
    /// that ran out (its replica died) can be taken again.
    pub async fn claim_delivery(&self, at: i64, until: i64) -> Result<Option<ReportRow>> {
        let candidates: Vec<String> = sqlx::query(
            "SELECT id FROM reports WHERE delivery = 'pending' AND (delivery_claimed_until IS NULL OR delivery_claimed_until < $1) \
             ORDER BY created_at, id LIMIT 10",
        )
        .bind(at)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
        for id in candidates {
            let took = sqlx::query(
                "UPDATE reports SET delivery_claimed_until = $1 WHERE id = $2 AND delivery = 'pending' \
                 AND (delivery_claimed_until IS NULL OR delivery_claimed_until < $3)",
            )
            .bind(until)
            .bind(id.clone())
            .bind(at)
            .execute(self.pool())
            .await?;
            if took.rows_affected() == 1 {
                return Ok(Some(self.report(&id).await?));
            }
        }
        Ok(None)
    }

    /// Ends a delivery: `sent`, `no_recipients` or `failed`, with a note (recipients, or the
    /// error).
    pub async fn finish_delivery(&self, id: &str, outcome: &str, note: &str) -> Result<()> {
        sqlx::query(
            "UPDATE reports SET delivery = $1, delivery_note = $2, delivery_claimed_until = NULL WHERE id = $3",
        )
        .bind(outcome.to_string())
        .bind(note.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Inserts a report; false when the schedule already has one for that period.
async fn insert_report(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    r: &NewReport,
    delivery: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO reports (id, project_id, schedule_id, range_kind, range_from, range_to, formats, content, created_by, created_at, delivery) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (schedule_id, range_from) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(r.project_id.clone())
    .bind(r.schedule_id.clone())
    .bind(r.range_kind.clone())
    .bind(r.range_from)
    .bind(r.range_to)
    .bind(r.formats.clone())
    .bind(r.content.clone())
    .bind(r.created_by.clone())
    .bind(now())
    .bind(delivery.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
#[path = "reports_tests.rs"]
mod tests;
