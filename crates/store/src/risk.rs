//! Risk prevention: the vulnerability database, each server's vulnerability findings with their
//! handling state and history, whitelist rules, weak-password and password-policy results, and
//! the server's risk status derived from all of them.
//!
//! Matching itself happens in `capabilities::risk::matching`; this module only stores what it found. A
//! server's software is (re)matched when `risk_state.vuln_matched_version` differs from the
//! database version: an import moves the version, a software inventory record resets the
//! server's to -1. Any replica's analyzer may pick the work up.

use std::collections::{HashMap, HashSet};

use hostward_proto::Severity;
use hostward_proto::risk::RiskReport;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::history::{self, History};
use super::{Bind, Result, Sql, Store, StoreError, flag, like, new_id, now, opt_i64, paged};
use crate::status;

/// Handling states of a vulnerability finding.
pub mod vuln_state {
    pub const UNHANDLED: &str = "unhandled";
    pub const IGNORED: &str = "ignored";
    pub const FIXING: &str = "fixing";
    pub const FIXED: &str = "fixed";
    pub const FAILED: &str = "failed";
    pub const RESTART_REQUIRED: &str = "restart_required";
    pub const VERIFYING: &str = "verifying";
    pub const ALL: &[&str] = &[
        UNHANDLED,
        IGNORED,
        FIXING,
        FIXED,
        FAILED,
        RESTART_REQUIRED,
        VERIFYING,
    ];
    /// States that still count as a risk of the server.
    pub const OPEN: &[&str] = &[UNHANDLED, FIXING, FAILED, RESTART_REQUIRED, VERIFYING];
}

/// Largest number of skipped-record reasons kept per import (the count is always complete).
pub const MAX_SKIPPED_DETAIL: usize = 1000;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VulnDbImport {
    /// The database version this import produced.
    pub version: i64,
    pub source: String,
    /// Advisories imported (new or replaced).
    pub advisories: i64,
    /// Records skipped, with reasons in `skipped_detail` (first 1,000).
    pub skipped: i64,
    #[schema(value_type = Object)]
    pub skipped_detail: serde_json::Value,
    /// Whether the import replaced the whole database instead of merging into it.
    pub replaced: bool,
    pub imported_by: String,
    pub imported_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VulnDbStatus {
    /// 0 until the first import.
    pub version: i64,
    pub advisories: i64,
    pub last_import: Option<VulnDbImport>,
}

/// One vulnerability of one package on one server, as matching found it.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedVuln {
    pub advisory_id: String,
    pub cve: String,
    pub package: String,
    pub source_package: Option<String>,
    pub manager: String,
    pub installed_version: String,
    pub fixed_version: Option<String>,
    pub cvss: Option<f64>,
    pub severity: Severity,
    pub summary: String,
    pub fix_command: Option<String>,
    /// `none`, `service` or `reboot`.
    pub restart: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VulnFinding {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub cve: String,
    pub package: String,
    pub advisory_id: String,
    pub source_package: Option<String>,
    /// `dpkg` or `rpm`.
    pub manager: String,
    pub installed_version: String,
    /// None: no fix released yet (`unfixed`).
    pub fixed_version: Option<String>,
    /// CVSS base score.
    pub cvss: Option<f64>,
    /// critical, high, medium, low.
    pub severity: String,
    pub summary: String,
    pub fix_command: Option<String>,
    /// What applying the fix needs: `none`, `service` (restart the services using it), `reboot`.
    pub restart: String,
    /// unhandled, ignored, fixing, fixed, failed, restart_required, verifying.
    pub state: String,
    pub state_note: String,
    /// Whether the latest match still finds it (false once fixed).
    pub present: bool,
    pub fix_task_id: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub updated_at: i64,
}

/// One CVE across the servers in scope.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VulnGroup {
    pub cve: String,
    pub severity: String,
    pub cvss: Option<f64>,
    pub summary: String,
    /// Servers where it is present.
    pub servers: i64,
    /// Findings (server × package) that are still open.
    pub open: i64,
    /// One affected package (the first by name) and how many distinct packages there are.
    pub package: String,
    pub packages: i64,
}

#[derive(Debug, Clone, Default)]
pub struct VulnFilter {
    /// Projects in scope (fleet views); ignored when `server_id` is set.
    pub projects: Vec<String>,
    pub server_id: Option<String>,
    pub severity: Option<Severity>,
    /// A handling state; `fixed` lists findings that are gone. Without it: every present finding.
    pub state: Option<String>,
    /// Exact package name.
    pub package: Option<String>,
    /// Exact CVE id.
    pub cve: Option<String>,
    /// Substring of CVE, package or summary.
    pub q: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VulnRule {
    pub id: String,
    pub project_id: String,
    /// Exact CVE id; None: any CVE.
    pub cve: Option<String>,
    /// Exact package name; None: any package.
    pub package: Option<String>,
    /// Servers it applies to; empty: every server of the project.
    pub server_ids: Vec<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

impl VulnRule {
    fn covers(&self, server_id: &str, cve: &str, package: &str) -> bool {
        self.cve.as_deref().is_none_or(|c| c == cve)
            && self.package.as_deref().is_none_or(|p| p == package)
            && (self.server_ids.is_empty() || self.server_ids.iter().any(|s| s == server_id))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct WeakPasswordRow {
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub account: String,
    pub uid: Option<i64>,
    pub login_allowed: bool,
    /// empty, common_password, custom_list, username_variant, shared.
    pub reasons: Vec<String>,
    pub shared_with: Vec<String>,
    pub first_seen: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct PolicyResultRow {
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub check_id: String,
    pub title: String,
    pub file: String,
    pub expected: String,
    pub actual: Option<String>,
    pub pass: bool,
    pub remedy: String,
    pub updated_at: i64,
}

/// When each check last reported on a server.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct RiskScanState {
    pub vuln_matched_version: i64,
    pub vuln_matched_at: Option<i64>,
    pub weak_scanned_at: Option<i64>,
    #[schema(value_type = Object)]
    pub weak_summary: serde_json::Value,
    pub policy_scanned_at: Option<i64>,
    #[schema(value_type = Object)]
    pub policy_summary: serde_json::Value,
    pub baseline_scanned_at: Option<i64>,
    /// Policies run and applicable, checks passed / failed / not applicable, and imported
    /// policies the agent could not run (`issues`).
    #[schema(value_type = Object)]
    pub baseline_summary: serde_json::Value,
    pub last_scan_at: Option<i64>,
    pub last_scan_trigger: String,
}

/// What a match changed, for the log and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchOutcome {
    pub detected: usize,
    pub gone: usize,
    pub present: usize,
}

const FINDING_COLUMNS: &str = "f.id, f.server_id, s.name AS server_name, f.project_id, f.cve, f.package, f.advisory_id, \
     f.source_package, f.manager, f.installed_version, f.fixed_version, f.cvss_x10, f.severity, f.summary, f.fix_command, \
     f.restart, f.state, f.state_note, f.present, f.fix_task_id, f.first_seen, f.last_seen, f.updated_at";

fn cvss_of(row: &AnyRow, col: &str) -> Option<f64> {
    opt_i64(row, col).map(|v| v as f64 / 10.0)
}

fn finding(row: &AnyRow) -> Result<VulnFinding> {
    Ok(VulnFinding {
        id: row.try_get("id")?,
        server_id: row.try_get("server_id")?,
        server_name: row.try_get("server_name")?,
        project_id: row.try_get("project_id")?,
        cve: row.try_get("cve")?,
        package: row.try_get("package")?,
        advisory_id: row.try_get("advisory_id")?,
        source_package: row.try_get("source_package")?,
        manager: row.try_get("manager")?,
        installed_version: row.try_get("installed_version")?,
        fixed_version: row.try_get("fixed_version")?,
        cvss: cvss_of(row, "cvss_x10"),
        severity: row.try_get("severity")?,
        summary: row.try_get("summary")?,
        fix_command: row.try_get("fix_command")?,
        restart: row.try_get("restart")?,
        state: row.try_get("state")?,
        state_note: row.try_get("state_note")?,
        present: flag(row, "present"),
        fix_task_id: row.try_get("fix_task_id")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn import_row(row: &AnyRow) -> Result<VulnDbImport> {
    let detail: String = row.try_get("skipped_detail")?;
    Ok(VulnDbImport {
        version: row.try_get("id")?,
        source: row.try_get("source")?,
        advisories: row.try_get("advisories")?,
        skipped: row.try_get("skipped")?,
        skipped_detail: serde_json::from_str(&detail).unwrap_or_default(),
        replaced: flag(row, "replaced"),
        imported_by: row.try_get("imported_by")?,
        imported_at: row.try_get("imported_at")?,
    })
}

fn json_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(col)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn rule(row: &AnyRow) -> Result<VulnRule> {
    Ok(VulnRule {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        cve: row.try_get("cve")?,
        package: row.try_get("package")?,
        server_ids: json_list(row, "server_ids")?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn severity_rank(s: Severity) -> i64 {
    s as i64
}

/// Makes sure the server has a `risk_state` row.
async fn ensure_risk_state(tx: &mut Transaction<'static, Any>, server_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO risk_state (server_id) VALUES ($1) ON CONFLICT (server_id) DO NOTHING",
    )
    .bind(server_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Recomputes the server's risk counts and status from what is stored. `pending` until every
/// check has reported at least once and vulnerabilities were matched against a database that
/// holds advisories, with what is missing as the reason (what was found meanwhile is in the
/// counts); then `risky` while an open vulnerability, a weak password, a failed policy item or
/// a failed baseline check nobody ignored remains; else `safe`. A status change gets a history
/// row.
pub(super) async fn refresh_risk_status(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
) -> Result<()> {
    let mut counts = serde_json::Map::new();
    for s in Severity::ALL {
        counts.insert(s.as_str().into(), 0.into());
    }
    let mut sql = Sql::new("SELECT severity, COUNT(*) AS n FROM vuln_findings WHERE server_id = ");
    sql.bind(Bind::Text(server_id.to_string()))
        .push(" AND present = 1 AND state IN ");
    let open: Vec<String> = vuln_state::OPEN.iter().map(|s| s.to_string()).collect();
    sql.bind_list(&open).push(" GROUP BY severity");
    let mut vulns = 0i64;
    for r in sql.query().fetch_all(&mut **tx).await? {
        let n: i64 = r.try_get("n")?;
        let sev: String = r.try_get("severity")?;
        vulns += n;
        counts.insert(sev, n.into());
    }
    let weak: i64 = sqlx::query("SELECT COUNT(*) AS n FROM weak_passwords WHERE server_id = $1")
        .bind(server_id.to_string())
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    let policy: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM password_policy_results WHERE server_id = $1 AND pass = 0",
    )
    .bind(server_id.to_string())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    let baseline: i64 = super::baseline::open_failures(tx, server_id)
        .await?
        .values()
        .sum();
    counts.insert("vulnerabilities".into(), vulns.into());
    counts.insert("weak_passwords".into(), weak.into());
    counts.insert("policy_failed".into(), policy.into());
    counts.insert("baseline_failed".into(), baseline.into());
    let state = sqlx::query(
        "SELECT vuln_matched_version, vuln_matched_at, weak_scanned_at, policy_scanned_at, baseline_scanned_at FROM risk_state WHERE server_id = $1",
    )
    .bind(server_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let ran = |c: &str| state.as_ref().is_some_and(|r| opt_i64(r, c).is_some());
    // Version 0 is a match against no database at all.
    let matched_version = state
        .as_ref()
        .and_then(|r| opt_i64(r, "vuln_matched_version"))
        .unwrap_or(0);
    let advisories = sqlx::query("SELECT 1 AS one FROM vuln_advisories LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    let mut missing = Vec::new();
    if !advisories {
        missing.push("no vulnerability database imported");
    } else if !ran("vuln_matched_at") || matched_version < 1 {
        missing.push("vulnerabilities not matched yet (the software inventory has not arrived)");
    }
    if !ran("weak_scanned_at") {
        missing.push("weak-password check not run yet (first risk scan pending)");
    }
    if !ran("policy_scanned_at") {
        missing.push("password-policy check not run yet (first risk scan pending)");
    }
    if !ran("baseline_scanned_at") {
        missing.push("configuration baselines not checked yet (first risk scan pending)");
    }
    let (status, reason) = if !missing.is_empty() {
        (status::RISK_PENDING, missing.join("; "))
    } else if vulns + weak + policy + baseline > 0 {
        (status::RISK_RISKY, String::new())
    } else {
        (status::RISK_SAFE, String::new())
    };
    let old: Option<String> = sqlx::query("SELECT risk_status FROM servers WHERE id = $1")
        .bind(server_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("risk_status"))
        .transpose()?;
    let Some(old) = old else {
        return Err(StoreError::NotFound("server"));
    };
    let t = now();
    let counts = serde_json::Value::Object(counts).to_string();
    if old == status {
        sqlx::query("UPDATE servers SET risk_counts = $1, risk_reason = $2 WHERE id = $3")
            .bind(counts)
            .bind(reason)
            .bind(server_id.to_string())
            .execute(&mut **tx)
            .await?;
    } else {
        sqlx::query(
            "UPDATE servers SET risk_status = $1, risk_counts = $2, risk_reason = $3, risk_changed_at = $4 WHERE id = $5",
        )
        .bind(status.to_string())
        .bind(counts)
        .bind(reason)
        .bind(t)
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
        super::servers::history(tx, server_id, t, "risk", status, "").await?;
    }
    Ok(())
}

/// Stores a risk report inside the record transaction: each check that ran replaces that
/// check's previous results of the server.
pub(super) async fn apply_risk_report(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    r: &RiskReport,
) -> Result<()> {
    let t = now();
    ensure_risk_state(tx, server_id).await?;
    if let Some(weak) = &r.weak_passwords {
        let first_seen: HashMap<String, i64> =
            sqlx::query("SELECT account, first_seen FROM weak_passwords WHERE server_id = $1")
                .bind(server_id.to_string())
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("account")?, row.try_get("first_seen")?)))
                .collect::<Result<_>>()?;
        sqlx::query("DELETE FROM weak_passwords WHERE server_id = $1")
            .bind(server_id.to_string())
            .execute(&mut **tx)
            .await?;
        for w in &weak.findings {
            let reasons: Vec<_> = w
                .reasons
                .iter()
                .map(|x| serde_json::to_value(x).unwrap_or_default())
                .collect();
            sqlx::query(
                "INSERT INTO weak_passwords (server_id, account, uid, login_allowed, reasons, shared_with, first_seen, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (server_id, account) DO NOTHING",
            )
            .bind(server_id.to_string())
            .bind(w.account.clone())
            .bind(w.uid.map(i64::from))
            .bind(i64::from(w.login_allowed))
            .bind(serde_json::Value::from(reasons).to_string())
            .bind(serde_json::to_string(&w.shared_with).unwrap_or_default())
            .bind(first_seen.get(&w.account).copied().unwrap_or(t))
            .bind(t)
            .execute(&mut **tx)
            .await?;
        }
        let summary = serde_json::json!({
            "accounts_checked": weak.accounts_checked,
            "candidates": weak.candidates,
            "complete": weak.complete,
            "findings": weak.findings.len(),
            "issues": weak.issues,
        });
        sqlx::query(
            "UPDATE risk_state SET weak_scanned_at = $1, weak_summary = $2 WHERE server_id = $3",
        )
        .bind(r.finished_at)
        .bind(summary.to_string())
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    }
    if let Some(policy) = &r.password_policy {
        sqlx::query("DELETE FROM password_policy_results WHERE server_id = $1")
            .bind(server_id.to_string())
            .execute(&mut **tx)
            .await?;
        for c in &policy.checks {
            sqlx::query(
                "INSERT INTO password_policy_results (server_id, check_id, title, file, expected, actual, pass, remedy, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (server_id, check_id) DO NOTHING",
            )
            .bind(server_id.to_string())
            .bind(c.id.clone())
            .bind(c.title.clone())
            .bind(c.file.clone())
            .bind(c.expected.clone())
            .bind(c.actual.clone())
            .bind(i64::from(c.pass))
            .bind(c.remedy.clone())
            .bind(t)
            .execute(&mut **tx)
            .await?;
        }
        let failed = policy.checks.iter().filter(|c| !c.pass).count();
        let summary = serde_json::json!({
            "checks": policy.checks.len(),
            "failed": failed,
            "issues": policy.issues,
        });
        sqlx::query(
            "UPDATE risk_state SET policy_scanned_at = $1, policy_summary = $2 WHERE server_id = $3",
        )
        .bind(r.finished_at)
        .bind(summary.to_string())
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    }
    if let Some(b) = &r.baselines {
        super::baseline::apply_baselines(tx, server_id, r.finished_at, b).await?;
    }
    let trigger = serde_json::to_value(r.trigger)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    sqlx::query(
        "UPDATE risk_state SET last_scan_at = $1, last_scan_trigger = $2 WHERE server_id = $3",
    )
    .bind(r.finished_at)
    .bind(trigger)
    .bind(server_id.to_string())
    .execute(&mut **tx)
    .await?;
    refresh_risk_status(tx, server_id).await
}

/// The software of a server changed: its vulnerabilities must be matched again.
pub(super) async fn software_changed(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
) -> Result<()> {
    ensure_risk_state(tx, server_id).await?;
    sqlx::query("UPDATE risk_state SET vuln_matched_version = -1 WHERE server_id = $1")
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A `vuln_fix` task reached a final state: its findings move on from `fixing`. Success means
/// `verifying` until the next software match (or `restart_required` for what needs a reboot);
/// failure means `failed`.
pub(super) async fn fix_task_finished(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    task_id: &str,
    success: bool,
    detail: &str,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id, restart FROM vuln_findings WHERE server_id = $1 AND fix_task_id = $2 AND state = $3",
    )
    .bind(server_id.to_string())
    .bind(task_id.to_string())
    .bind(vuln_state::FIXING)
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let t = now();
    for r in &rows {
        let id: String = r.try_get("id")?;
        let restart: String = r.try_get("restart")?;
        let (to, action) = match (success, restart.as_str()) {
            (false, _) => (vuln_state::FAILED, "fix_failed"),
            (true, "reboot") => (vuln_state::RESTART_REQUIRED, "fix_done"),
            (true, _) => (vuln_state::VERIFYING, "fix_done"),
        };
        sqlx::query(
            "UPDATE vuln_findings SET state = $1, state_note = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(to)
        .bind(detail.to_string())
        .bind(t)
        .bind(id.clone())
        .execute(&mut **tx)
        .await?;
        history::add(
            tx,
            History::Finding,
            &id,
            "system",
            action,
            vuln_state::FIXING,
            to,
            detail,
            t,
        )
        .await?;
    }
    refresh_risk_status(tx, server_id).await
}

impl Store {
    // ---- vulnerability database ----

    /// Stores advisories (`(id, normalised JSON)`) in one transaction, merged by id or, with
    /// `replace`, instead of everything held before. Either all of it lands or nothing does.
    pub async fn import_advisories(
        &self,
        source: &str,
        advisories: &[(String, String)],
        skipped: &[(String, String)],
        replace: bool,
        imported_by: &str,
    ) -> Result<VulnDbImport> {
        let t = now();
        let detail: Vec<_> = skipped
            .iter()
            .take(MAX_SKIPPED_DETAIL)
            .map(|(s, r)| serde_json::json!({"source": s, "reason": r}))
            .collect();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO vulndb_imports (source, advisories, skipped, skipped_detail, replaced, imported_by, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(source.to_string())
        .bind(advisories.len() as i64)
        .bind(skipped.len() as i64)
        .bind(serde_json::Value::from(detail).to_string())
        .bind(i64::from(replace))
        .bind(imported_by.to_string())
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.try_get("id")?;
        if replace {
            sqlx::query("DELETE FROM vuln_advisories")
                .execute(&mut *tx)
                .await?;
        }
        // A batch may not name one id twice (PostgreSQL refuses ON CONFLICT on a row the same
        // statement inserted); the later record of an id wins, as it would one by one.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, (id, _)) in advisories.iter().enumerate() {
            last.insert(id.as_str(), i);
        }
        let unique: Vec<&(String, String)> = advisories
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| last.get(id.as_str()) == Some(i))
            .map(|(_, a)| a)
            .collect();
        for chunk in unique.chunks(300) {
            let mut sql = Sql::new("INSERT INTO vuln_advisories (id, data, import_id) VALUES ");
            for (i, (id, data)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Bind::Text(id.clone()))
                    .push(", ")
                    .bind(Bind::Text(data.clone()))
                    .push(", ")
                    .bind(Bind::Int(version))
                    .push(")");
            }
            sql.push(
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data, import_id = excluded.import_id",
            );
            sql.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let row = sqlx::query(
            "SELECT id, source, advisories, skipped, skipped_detail, replaced, imported_by, imported_at \
             FROM vulndb_imports WHERE id = $1",
        )
        .bind(version)
        .fetch_one(self.pool())
        .await?;
        import_row(&row)
    }

    /// The database version: the id of the latest import, 0 before any.
    pub async fn vulndb_version(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(id), 0) AS v FROM vulndb_imports")
                .fetch_one(self.pool())
                .await?
                .try_get("v")?,
        )
    }

    pub async fn vulndb_imports(&self, limit: i64) -> Result<Vec<VulnDbImport>> {
        sqlx::query(
            "SELECT id, source, advisories, skipped, skipped_detail, replaced, imported_by, imported_at \
             FROM vulndb_imports ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(import_row)
        .collect()
    }

    pub async fn vulndb_status(&self) -> Result<VulnDbStatus> {
        let advisories: i64 = sqlx::query("SELECT COUNT(*) AS n FROM vuln_advisories")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        let last_import = self.vulndb_imports(1).await?.into_iter().next();
        Ok(VulnDbStatus {
            version: last_import.as_ref().map_or(0, |i| i.version),
            advisories,
            last_import,
        })
    }

    /// Recomputes every server's risk status, each in a transaction of its own: at start, so a
    /// status computed by an older rule (or before a database was deleted) is not kept.
    pub async fn refresh_risk_statuses(&self) -> Result<usize> {
        let ids: Vec<String> = sqlx::query("SELECT id FROM servers ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
        for id in &ids {
            let mut tx = self.begin().await?;
            refresh_risk_status(&mut tx, id).await?;
            tx.commit().await?;
        }
        Ok(ids.len())
    }

    /// Every advisory (normalised JSON) with the version they make up. Read in one statement so
    /// the version and the rows agree.
    pub async fn vulndb_advisories(&self) -> Result<(i64, Vec<String>)> {
        let mut tx = self.pool().begin().await?;
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS v FROM vulndb_imports")
            .fetch_one(&mut *tx)
            .await?
            .try_get("v")?;
        let rows = sqlx::query("SELECT data FROM vuln_advisories")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let data = rows
            .iter()
            .map(|r| r.try_get("data"))
            .collect::<std::result::Result<_, _>>()?;
        Ok((version, data))
    }

    // ---- matching ----

    /// Servers whose software is known but was not matched against `version` yet.
    pub async fn servers_to_match(&self, version: i64, limit: i64) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT i.server_id FROM inventory_state i LEFT JOIN risk_state r ON r.server_id = i.server_id \
             WHERE i.kind = 'software' AND i.digest <> '' \
             AND (r.server_id IS NULL OR r.vuln_matched_version <> $1) ORDER BY i.server_id LIMIT $2",
        )
        .bind(version)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get("server_id")?))
        .collect()
    }

    /// The server's installed packages, from its software inventory.
    pub async fn installed_packages(
        &self,
        server_id: &str,
    ) -> Result<Vec<hostward_proto::inventory::Package>> {
        let rows = sqlx::query(
            "SELECT data FROM inventory_items WHERE server_id = $1 AND kind = 'software'",
        )
        .bind(server_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text: String = r.try_get("data")?;
            // Stored by apply_inventory from a decoded record; a row that no longer decodes is
            // left out of matching rather than stopping it.
            match serde_json::from_str(&text) {
                Ok(p) => out.push(p),
                Err(e) => tracing::warn!(server_id, error = %e, "software item does not decode"),
            }
        }
        Ok(out)
    }

    /// Replaces the server's vulnerability findings with what a match against `version` found,
    /// keeping every finding's handling state: new ones are `unhandled` (or `ignored` under a
    /// whitelist rule), ones no longer found are `fixed`, fixed ones found again reopen.
    pub async fn apply_vuln_matches(
        &self,
        server_id: &str,
        version: i64,
        matches: &[MatchedVuln],
    ) -> Result<MatchOutcome> {
        let mut tx = self.begin().await?;
        let project_id: String = sqlx::query("SELECT project_id FROM servers WHERE id = $1")
            .bind(server_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("server"))?
            .try_get("project_id")?;
        let rules: Vec<VulnRule> = sqlx::query(
            "SELECT id, project_id, cve, package, server_ids, reason, created_by, created_at FROM vuln_rules WHERE project_id = $1",
        )
        .bind(project_id.clone())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(rule)
        .collect::<Result<_>>()?;
        struct Old {
            id: String,
            state: String,
            present: bool,
            fix_task: Option<String>,
        }
        let old: HashMap<(String, String), Old> = sqlx::query(
            "SELECT id, cve, package, state, present, fix_task_id FROM vuln_findings WHERE server_id = $1",
        )
        .bind(server_id.to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                (r.try_get("cve")?, r.try_get("package")?),
                Old {
                    id: r.try_get("id")?,
                    state: r.try_get("state")?,
                    present: flag(r, "present"),
                    fix_task: r.try_get("fix_task_id")?,
                },
            ))
        })
        .collect::<Result<_>>()?;
        let t = now();
        let mut out = MatchOutcome::default();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for m in matches {
            let key = (m.cve.clone(), m.package.clone());
            if !seen.insert(key.clone()) {
                continue;
            }
            out.present += 1;
            let rule = rules
                .iter()
                .find(|r| r.covers(server_id, &m.cve, &m.package));
            let (id, from, to, action, note) = match old.get(&key) {
                None => {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO vuln_findings (id, server_id, project_id, cve, package, advisory_id, source_package, manager, \
                         installed_version, fixed_version, cvss_x10, severity, severity_rank, summary, fix_command, restart, state, \
                         present, first_seen, last_seen, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18, $18, $18)",
                    )
                    .bind(id.clone())
                    .bind(server_id.to_string())
                    .bind(project_id.clone())
                    .bind(m.cve.clone())
                    .bind(m.package.clone())
                    .bind(m.advisory_id.clone())
                    .bind(m.source_package.clone())
                    .bind(m.manager.clone())
                    .bind(m.installed_version.clone())
                    .bind(m.fixed_version.clone())
                    .bind(m.cvss.map(|c| (c * 10.0).round() as i64))
                    .bind(m.severity.as_str())
                    .bind(severity_rank(m.severity))
                    .bind(m.summary.clone())
                    .bind(m.fix_command.clone())
                    .bind(m.restart.clone())
                    .bind(if rule.is_some() { vuln_state::IGNORED } else { vuln_state::UNHANDLED })
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
                    out.detected += 1;
                    let to = if rule.is_some() {
                        vuln_state::IGNORED
                    } else {
                        vuln_state::UNHANDLED
                    };
                    let note = rule
                        .map(|r| format!("whitelist rule {}", r.id))
                        .unwrap_or_default();
                    history::add(
                        &mut tx,
                        History::Finding,
                        &id,
                        "system",
                        "detected",
                        "",
                        to,
                        &note,
                        t,
                    )
                    .await?;
                    continue;
                }
                Some(o) if !o.present => {
                    let to = if rule.is_some() {
                        vuln_state::IGNORED
                    } else {
                        vuln_state::UNHANDLED
                    };
                    (
                        o.id.clone(),
                        o.state.clone(),
                        to,
                        "reappeared",
                        String::new(),
                    )
                }
                Some(o) if o.state == vuln_state::VERIFYING => {
                    let (to, note) = if o.fix_task.is_some() {
                        (vuln_state::FAILED, "still present after the fix task")
                    } else {
                        (vuln_state::UNHANDLED, "still present after verification")
                    };
                    (
                        o.id.clone(),
                        o.state.clone(),
                        to,
                        "still_present",
                        note.to_string(),
                    )
                }
                Some(o) => (o.id.clone(), o.state.clone(), "", "", String::new()),
            };
            let state_change = !to.is_empty();
            let mut sql = Sql::new("UPDATE vuln_findings SET present = 1, last_seen = ");
            sql.bind(Bind::Int(t));
            for (col, v) in [
                ("advisory_id", Bind::Text(m.advisory_id.clone())),
                ("installed_version", Bind::Text(m.installed_version.clone())),
                ("fixed_version", Bind::OptText(m.fixed_version.clone())),
                (
                    "cvss_x10",
                    Bind::OptInt(m.cvss.map(|c| (c * 10.0).round() as i64)),
                ),
                ("severity", Bind::Text(m.severity.as_str().into())),
                ("severity_rank", Bind::Int(severity_rank(m.severity))),
                ("summary", Bind::Text(m.summary.clone())),
                ("fix_command", Bind::OptText(m.fix_command.clone())),
                ("restart", Bind::Text(m.restart.clone())),
            ] {
                sql.push(&format!(", {col} = ")).bind(v);
            }
            if state_change {
                sql.push(", state = ")
                    .bind(Bind::Text(to.into()))
                    .push(", state_note = ")
                    .bind(Bind::Text(note.clone()))
                    .push(", updated_at = ")
                    .bind(Bind::Int(t));
            }
            sql.push(" WHERE id = ").bind(Bind::Text(id.clone()));
            sql.query().execute(&mut *tx).await?;
            if state_change {
                history::add(
                    &mut tx,
                    History::Finding,
                    &id,
                    "system",
                    action,
                    &from,
                    to,
                    &note,
                    t,
                )
                .await?;
            }
        }
        for (key, o) in &old {
            if o.present && !seen.contains(key) {
                sqlx::query(
                    "UPDATE vuln_findings SET present = 0, state = $1, state_note = '', updated_at = $2 WHERE id = $3",
                )
                .bind(vuln_state::FIXED)
                .bind(t)
                .bind(o.id.clone())
                .execute(&mut *tx)
                .await?;
                history::add(
                    &mut tx,
                    History::Finding,
                    &o.id,
                    "system",
                    "gone",
                    &o.state,
                    vuln_state::FIXED,
                    "no longer found in the installed software",
                    t,
                )
                .await?;
                out.gone += 1;
            }
        }
        ensure_risk_state(&mut tx, server_id).await?;
        sqlx::query(
            "UPDATE risk_state SET vuln_matched_version = $1, vuln_matched_at = $2 WHERE server_id = $3",
        )
        .bind(version)
        .bind(t)
        .bind(server_id.to_string())
        .execute(&mut *tx)
        .await?;
        refresh_risk_status(&mut tx, server_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    // ---- findings ----

    fn finding_filter(f: &VulnFilter) -> Sql {
        let mut sql = Sql::new(" FROM vuln_findings f JOIN servers s ON s.id = f.server_id WHERE ");
        match &f.server_id {
            Some(id) => {
                sql.push("f.server_id = ").bind(Bind::Text(id.clone()));
            }
            None if f.projects.is_empty() => {
                sql.push("1 = 0");
            }
            None => {
                sql.push("f.project_id IN ").bind_list(&f.projects);
            }
        }
        match f.state.as_deref() {
            Some(vuln_state::FIXED) => {
                sql.push(" AND f.present = 0");
            }
            Some(s) => {
                sql.push(" AND f.present = 1 AND f.state = ")
                    .bind(Bind::Text(s.to_string()));
            }
            None => {
                sql.push(" AND f.present = 1");
            }
        }
        if let Some(s) = f.severity {
            sql.push(" AND f.severity = ")
                .bind(Bind::Text(s.as_str().into()));
        }
        if let Some(p) = f.package.as_deref().filter(|p| !p.is_empty()) {
            sql.push(" AND f.package = ")
                .bind(Bind::Text(p.to_string()));
        }
        if let Some(c) = f.cve.as_deref().filter(|c| !c.is_empty()) {
            sql.push(" AND f.cve = ").bind(Bind::Text(c.to_string()));
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            let pat = like(q);
            sql.push(" AND (LOWER(f.cve) LIKE ")
                .bind(Bind::Text(pat.clone()))
                .push(" ESCAPE '\\' OR LOWER(f.package) LIKE ")
                .bind(Bind::Text(pat.clone()))
                .push(" ESCAPE '\\' OR LOWER(f.summary) LIKE ")
                .bind(Bind::Text(pat))
                .push(" ESCAPE '\\')");
        }
        sql
    }

    /// Findings matching the filter, most severe first.
    pub async fn vuln_findings(&self, f: &VulnFilter) -> Result<(Vec<VulnFinding>, i64)> {
        let (rows, total) = paged(
            self,
            FINDING_COLUMNS,
            Self::finding_filter(f),
            "f.severity_rank DESC, f.cvss_x10 DESC, f.cve, s.name, f.package",
            f.page,
            f.per_page,
        )
        .await?;
        Ok((rows.iter().map(finding).collect::<Result<_>>()?, total))
    }

    /// Findings grouped by CVE, with how many servers each reaches.
    pub async fn vuln_groups(&self, f: &VulnFilter) -> Result<(Vec<VulnGroup>, i64)> {
        let filter = Self::finding_filter(f);
        let open: Vec<String> = vuln_state::OPEN.iter().map(|s| s.to_string()).collect();
        let total = {
            let sql = Sql {
                text: format!("SELECT COUNT(DISTINCT f.cve) AS n{}", filter.text),
                binds: filter.binds.clone(),
            };
            sql.query().fetch_one(self.pool()).await?.try_get("n")?
        };
        let mut sql = Sql {
            text: String::new(),
            binds: filter.binds.clone(),
        };
        sql.push(
            "SELECT f.cve, MAX(f.severity_rank) AS rank, MAX(f.cvss_x10) AS cvss_x10, MIN(f.summary) AS summary, \
             COUNT(DISTINCT f.server_id) AS servers, MIN(f.package) AS package, COUNT(DISTINCT f.package) AS packages, \
             SUM(CASE WHEN f.state IN ",
        );
        sql.bind_list(&open);
        sql.push(" THEN 1 ELSE 0 END) AS open");
        sql.push(&filter.text);
        sql.push(" GROUP BY f.cve ORDER BY rank DESC, cvss_x10 DESC, servers DESC, f.cve LIMIT ");
        let (limit, off) = super::offset(f.page, f.per_page);
        sql.bind(Bind::Int(limit))
            .push(" OFFSET ")
            .bind(Bind::Int(off));
        let rows = sql.query().fetch_all(self.pool()).await?;
        let groups = rows
            .iter()
            .map(|r| {
                let rank: i64 = r.try_get("rank")?;
                Ok(VulnGroup {
                    cve: r.try_get("cve")?,
                    severity: Severity::ALL
                        .into_iter()
                        .find(|s| severity_rank(*s) == rank)
                        .unwrap_or(Severity::Medium)
                        .as_str()
                        .into(),
                    cvss: cvss_of(r, "cvss_x10"),
                    summary: r.try_get("summary")?,
                    servers: r.try_get("servers")?,
                    open: opt_i64(r, "open").unwrap_or(0),
                    package: r.try_get("package")?,
                    packages: r.try_get("packages")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((groups, total))
    }

    pub async fn vuln_finding(&self, id: &str) -> Result<Option<VulnFinding>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FINDING_COLUMNS} FROM vuln_findings f JOIN servers s ON s.id = f.server_id WHERE f.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(finding)
        .transpose()
    }

    /// Moves findings to `to` (a user's action), each with a history row, and refreshes the
    /// risk status of their servers. Findings that are gone (fixed) are left alone. The fix task
    /// is replaced too (None for every action but a fix), so a later verification is judged as a
    /// verification, not as the outcome of an old fix. Returns how many changed.
    pub async fn set_vuln_state(
        &self,
        ids: &[String],
        to: &str,
        actor: &str,
        action: &str,
        note: &str,
        fix_task_id: Option<&str>,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        let t = now();
        let mut servers = HashSet::new();
        let mut changed = 0;
        for id in ids {
            let Some(r) = sqlx::query(
                "SELECT server_id, state FROM vuln_findings WHERE id = $1 AND present = 1",
            )
            .bind(id.clone())
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let from: String = r.try_get("state")?;
            sqlx::query(
                "UPDATE vuln_findings SET state = $1, state_note = $2, fix_task_id = $3, updated_at = $4 WHERE id = $5",
            )
            .bind(to.to_string())
            .bind(note.to_string())
            .bind(fix_task_id.map(str::to_string))
            .bind(t)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
            history::add(
                &mut tx,
                History::Finding,
                id,
                actor,
                action,
                &from,
                to,
                note,
                t,
            )
            .await?;
            servers.insert(r.try_get::<String, _>("server_id")?);
            changed += 1;
        }
        for s in &servers {
            refresh_risk_status(&mut tx, s).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ---- whitelist rules ----

    /// Adds a rule and ignores the open findings it covers at once.
    pub async fn create_vuln_rule(&self, r: &VulnRule) -> Result<usize> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO vuln_rules (id, project_id, cve, package, server_ids, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.clone())
        .bind(r.project_id.clone())
        .bind(r.cve.clone())
        .bind(r.package.clone())
        .bind(serde_json::to_string(&r.server_ids).unwrap_or_default())
        .bind(r.reason.clone())
        .bind(r.created_by.clone())
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?;
        let mut sql = Sql::new(
            "SELECT id, server_id, cve, package, state FROM vuln_findings WHERE project_id = ",
        );
        sql.bind(Bind::Text(r.project_id.clone()))
            .push(" AND present = 1 AND state <> ")
            .bind(Bind::Text(vuln_state::IGNORED.into()));
        if let Some(c) = &r.cve {
            sql.push(" AND cve = ").bind(Bind::Text(c.clone()));
        }
        if let Some(p) = &r.package {
            sql.push(" AND package = ").bind(Bind::Text(p.clone()));
        }
        let rows = sql.query().fetch_all(&mut *tx).await?;
        let t = now();
        let note = format!("whitelist rule {}: {}", r.id, r.reason);
        let mut servers = HashSet::new();
        for row in &rows {
            let server_id: String = row.try_get("server_id")?;
            if !r.covers(
                &server_id,
                &row.try_get::<String, _>("cve")?,
                &row.try_get::<String, _>("package")?,
            ) {
                continue;
            }
            let id: String = row.try_get("id")?;
            let from: String = row.try_get("state")?;
            sqlx::query("UPDATE vuln_findings SET state = $1, state_note = $2, updated_at = $3 WHERE id = $4")
                .bind(vuln_state::IGNORED)
                .bind(note.clone())
                .bind(t)
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
            history::add(
                &mut tx,
                History::Finding,
                &id,
                &r.created_by,
                "rule",
                &from,
                vuln_state::IGNORED,
                &note,
                t,
            )
            .await?;
            servers.insert(server_id);
        }
        for s in &servers {
            refresh_risk_status(&mut tx, s).await?;
        }
        tx.commit().await?;
        Ok(servers.len())
    }

    pub async fn vuln_rules(&self, projects: &[String]) -> Result<Vec<VulnRule>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT id, project_id, cve, package, server_ids, reason, created_by, created_at FROM vuln_rules WHERE project_id IN ",
        );
        sql.bind_list(projects)
            .push(" ORDER BY created_at DESC, id");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(rule)
            .collect()
    }

    pub async fn vuln_rule(&self, id: &str) -> Result<Option<VulnRule>> {
        sqlx::query(
            "SELECT id, project_id, cve, package, server_ids, reason, created_by, created_at FROM vuln_rules WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(rule)
        .transpose()
    }

    /// Deletes a rule. Findings it ignored stay ignored (a person decided that); new matches
    /// are no longer covered.
    pub async fn delete_vuln_rule(&self, id: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM vuln_rules WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("rule"));
        }
        Ok(())
    }

    // ---- weak passwords and password policy ----

    pub async fn weak_passwords(
        &self,
        projects: &[String],
        server_id: Option<&str>,
    ) -> Result<Vec<WeakPasswordRow>> {
        let mut sql = Sql::new(
            "SELECT w.server_id, s.name AS server_name, s.project_id, w.account, w.uid, w.login_allowed, w.reasons, \
             w.shared_with, w.first_seen, w.updated_at FROM weak_passwords w JOIN servers s ON s.id = w.server_id WHERE ",
        );
        match server_id {
            Some(id) => sql.push("w.server_id = ").bind(Bind::Text(id.to_string())),
            None if projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("s.project_id IN ").bind_list(projects),
        };
        sql.push(" ORDER BY s.name, w.account LIMIT 10000");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(WeakPasswordRow {
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    project_id: r.try_get("project_id")?,
                    account: r.try_get("account")?,
                    uid: opt_i64(r, "uid"),
                    login_allowed: flag(r, "login_allowed"),
                    reasons: json_list(r, "reasons")?,
                    shared_with: json_list(r, "shared_with")?,
                    first_seen: r.try_get("first_seen")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn password_policy_results(
        &self,
        projects: &[String],
        server_id: Option<&str>,
        failed_only: bool,
    ) -> Result<Vec<PolicyResultRow>> {
        let mut sql = Sql::new(
            "SELECT p.server_id, s.name AS server_name, s.project_id, p.check_id, p.title, p.file, p.expected, p.actual, \
             p.pass, p.remedy, p.updated_at FROM password_policy_results p JOIN servers s ON s.id = p.server_id WHERE ",
        );
        match server_id {
            Some(id) => sql.push("p.server_id = ").bind(Bind::Text(id.to_string())),
            None if projects.is_empty() => sql.push("1 = 0"),
            None => sql.push("s.project_id IN ").bind_list(projects),
        };
        if failed_only {
            sql.push(" AND p.pass = 0");
        }
        sql.push(" ORDER BY s.name, p.check_id LIMIT 10000");
        sql.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(PolicyResultRow {
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    project_id: r.try_get("project_id")?,
                    check_id: r.try_get("check_id")?,
                    title: r.try_get("title")?,
                    file: r.try_get("file")?,
                    expected: r.try_get("expected")?,
                    actual: r.try_get("actual")?,
                    pass: flag(r, "pass"),
                    remedy: r.try_get("remedy")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn risk_scan_state(&self, server_id: &str) -> Result<RiskScanState> {
        let Some(r) = sqlx::query(
            "SELECT vuln_matched_version, vuln_matched_at, weak_scanned_at, weak_summary, policy_scanned_at, \
             policy_summary, baseline_scanned_at, baseline_summary, last_scan_at, last_scan_trigger FROM risk_state WHERE server_id = $1",
        )
        .bind(server_id.to_string())
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(RiskScanState::default());
        };
        let json = |c: &str| -> Result<serde_json::Value> {
            let t: String = r.try_get(c)?;
            Ok(serde_json::from_str(&t).unwrap_or_default())
        };
        Ok(RiskScanState {
            vuln_matched_version: r.try_get("vuln_matched_version")?,
            vuln_matched_at: opt_i64(&r, "vuln_matched_at"),
            weak_scanned_at: opt_i64(&r, "weak_scanned_at"),
            weak_summary: json("weak_summary")?,
            policy_scanned_at: opt_i64(&r, "policy_scanned_at"),
            policy_summary: json("policy_summary")?,
            baseline_scanned_at: opt_i64(&r, "baseline_scanned_at"),
            baseline_summary: json("baseline_summary")?,
            last_scan_at: opt_i64(&r, "last_scan_at"),
            last_scan_trigger: r.try_get("last_scan_trigger")?,
        })
    }
}

#[cfg(test)]
#[path = "risk_tests.rs"]
mod tests;
