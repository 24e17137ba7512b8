//! Configuration baselines: each server's latest result of every check of every policy its
//! agent ran, the handling state people give a failed check (`open`, `ignored`) with its
//! history, whitelist rules, and the policies each server ran. Results arrive inside the `risk`
//! record's transaction (`apply_baselines`); a failed open check counts in the server's risk
//! status (`risk::refresh_risk_status` reads [`open_failures`]).

use std::collections::{HashMap, HashSet};

use hostward_proto::Severity;
use hostward_proto::baseline::{BaselineResult, CheckResult, Outcome, PolicyReport};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::history::{self, History};
use super::{Bind, Result, Sql, Store, StoreError, like, new_id, now, opt_i64, paged};

/// Handling states of a baseline result.
pub mod baseline_state {
    pub const OPEN: &str = "open";
    pub const IGNORED: &str = "ignored";
    pub const ALL: &[&str] = &[OPEN, IGNORED];
}

/// One check's latest result on one server.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BaselineFinding {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    pub policy_id: String,
    pub policy_name: String,
    pub check_id: i64,
    pub title: String,
    /// `pass`, `fail` or `not_applicable`.
    pub result: String,
    /// Critical, High, Medium or Low.
    pub severity: String,
    /// Why it is not applicable.
    pub reason: Option<String>,
    /// What decided it: `path:line: text`, a command's output excerpt, a missing file.
    pub evidence: Vec<String>,
    pub rationale: String,
    pub remediation: String,
    /// Compliance references: framework -> ids (e.g. `cis: ["5.2.8"]`).
    #[schema(value_type = Object)]
    pub compliance: serde_json::Value,
    /// `open` or `ignored`.
    pub state: String,
    pub state_note: String,
    /// When the current run of failures began (None while it passes).
    pub failing_since: Option<i64>,
    pub checked_at: i64,
}

/// One check across the fleet.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BaselineCheckGroup {
    pub policy_id: String,
    pub policy_name: String,
    pub check_id: i64,
    pub title: String,
    pub severity: String,
    /// Servers where it fails and is not ignored.
    pub failing: i64,
    pub ignored: i64,
    pub passing: i64,
    pub not_applicable: i64,
}

/// A policy on one server: whether it applied, and its counts.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BaselinePolicyRow {
    pub policy_id: String,
    pub name: String,
    pub applicable: bool,
    /// Why it did not apply (its software is not installed).
    pub reason: Option<String>,
    pub checked_at: i64,
    pub passed: i64,
    pub failed: i64,
    pub not_applicable: i64,
}

#[derive(Debug, Clone, Default)]
pub struct BaselineFilter {
    /// Projects in scope (fleet views); ignored when `server_id` is set.
    pub projects: Vec<String>,
    pub server_id: Option<String>,
    pub policy_id: Option<String>,
    pub check_id: Option<i64>,
    /// `pass`, `fail`, `not_applicable`.
    pub result: Option<String>,
    pub state: Option<String>,
    pub severity: Option<Severity>,
    /// Substring of the title or the policy name.
    pub q: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

/// Ignores one check on a project's servers (all of them when `server_ids` is empty).
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BaselineRule {
    pub id: String,
    pub project_id: String,
    pub policy_id: String,
    pub check_id: i64,
    pub server_ids: Vec<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

impl BaselineRule {
    pub fn covers(&self, server_id: &str, policy_id: &str, check_id: i64) -> bool {
        self.policy_id == policy_id
            && self.check_id == check_id
            && (self.server_ids.is_empty() || self.server_ids.iter().any(|s| s == server_id))
    }
}

const COLUMNS: &str = "b.id, b.server_id, s.name AS server_name, b.project_id, b.policy_id, b.policy_name, \
     b.check_id, b.title, b.result, b.severity, b.reason, b.evidence, b.rationale, b.remediation, b.compliance, \
     b.state, b.state_note, b.failing_since, b.checked_at";

fn finding(row: &AnyRow) -> Result<BaselineFinding> {
    let evidence: String = row.try_get("evidence")?;
    let compliance: String = row.try_get("compliance")?;
    Ok(BaselineFinding {
        id: row.try_get("id")?,
        server_id: row.try_get("server_id")?,
        server_name: row.try_get("server_name")?,
        project_id: row.try_get("project_id")?,
        policy_id: row.try_get("policy_id")?,
        policy_name: row.try_get("policy_name")?,
        check_id: row.try_get("check_id")?,
        title: row.try_get("title")?,
        result: row.try_get("result")?,
        severity: row.try_get("severity")?,
        reason: row.try_get("reason")?,
        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
        rationale: row.try_get("rationale")?,
        remediation: row.try_get("remediation")?,
        compliance: serde_json::from_str(&compliance).unwrap_or_default(),
        state: row.try_get("state")?,
        state_note: row.try_get("state_note")?,
        failing_since: opt_i64(row, "failing_since"),
        checked_at: row.try_get("checked_at")?,
    })
}

fn rule(row: &AnyRow) -> Result<BaselineRule> {
    let servers: String = row.try_get("server_ids")?;
    Ok(BaselineRule {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        policy_id: row.try_get("policy_id")?,
        check_id: row.try_get("check_id")?,
        server_ids: serde_json::from_str(&servers).unwrap_or_default(),
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The server's failed checks nobody ignored, per severity.
pub(super) async fn open_failures(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
) -> Result<HashMap<String, i64>> {
    sqlx::query(
        "SELECT severity, COUNT(*) AS n FROM baseline_results WHERE server_id = $1 AND result = 'fail' AND state = 'open' GROUP BY severity",
    )
    .bind(server_id.to_string())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("severity")?, r.try_get("n")?)))
    .collect()
}

/// What the store keeps of one row before a scan replaces it.
struct Prior {
    id: String,
    result: String,
    state: String,
    failing_since: Option<i64>,
}

/// Stores the baseline part of a risk report inside the record's transaction: a full run
/// replaces the server's results (keeping each check's id, handling state and history), a
/// verification (`only`) updates its one check.
pub(super) async fn apply_baselines(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    at: i64,
    b: &BaselineResult,
) -> Result<()> {
    let project_id: String = sqlx::query("SELECT project_id FROM servers WHERE id = $1")
        .bind(server_id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?
        .try_get("project_id")?;
    let mut prior: HashMap<(String, i64), Prior> = HashMap::new();
    for r in sqlx::query(
        "SELECT id, policy_id, check_id, result, state, failing_since FROM baseline_results WHERE server_id = $1",
    )
    .bind(server_id.to_string())
    .fetch_all(&mut **tx)
    .await?
    {
        prior.insert(
            (r.try_get("policy_id")?, r.try_get("check_id")?),
            Prior {
                id: r.try_get("id")?,
                result: r.try_get("result")?,
                state: r.try_get("state")?,
                failing_since: opt_i64(&r, "failing_since"),
            },
        );
    }
    let rules: Vec<BaselineRule> = sqlx::query(
        "SELECT id, project_id, policy_id, check_id, server_ids, reason, created_by, created_at FROM baseline_rules WHERE project_id = $1",
    )
    .bind(project_id.clone())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(rule)
    .collect::<Result<_>>()?;
    let mut seen: HashSet<(String, i64)> = HashSet::new();
    for p in &b.policies {
        upsert_policy(tx, server_id, at, p).await?;
        // A verified check whose policy no longer applies: say so on that check.
        if let Some(o) = b
            .only
            .as_ref()
            .filter(|o| !p.applicable && o.policy_id == p.policy_id)
        {
            let key = (o.policy_id.clone(), o.check_id);
            if let Some(old) = prior.get(&key) {
                seen.insert(key);
                stopped_applying(tx, old, p.reason.as_deref(), at).await?;
            }
            continue;
        }
        for c in &p.checks {
            let key = (p.policy_id.clone(), c.id);
            seen.insert(key.clone());
            let old = prior.get(&key);
            let covered = rules
                .iter()
                .find(|r| r.covers(server_id, &p.policy_id, c.id));
            store_check(tx, server_id, &project_id, at, p, c, old, covered).await?;
        }
    }
    if b.only.is_none() {
        // Checks (and policies) that no longer run go with their history.
        for (key, old) in &prior {
            if !seen.contains(key) {
                sqlx::query("DELETE FROM baseline_results WHERE id = $1")
                    .bind(old.id.clone())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let ran: Vec<String> = b.policies.iter().map(|p| p.policy_id.clone()).collect();
        let mut sql = Sql::new("DELETE FROM baseline_policies WHERE server_id = ");
        sql.bind(Bind::Text(server_id.to_string()));
        if !ran.is_empty() {
            sql.push(" AND policy_id NOT IN ").bind_list(&ran);
        }
        sql.query().execute(&mut **tx).await?;
        let count = |o: Outcome| {
            b.policies
                .iter()
                .flat_map(|p| &p.checks)
                .filter(|c| c.result == o)
                .count()
        };
        let summary = serde_json::json!({
            "policies": b.policies.len(),
            "applicable": b.policies.iter().filter(|p| p.applicable).count(),
            "passed": count(Outcome::Pass),
            "failed": count(Outcome::Fail),
            "not_applicable": count(Outcome::NotApplicable),
            "issues": b.issues,
        });
        sqlx::query(
            "UPDATE risk_state SET baseline_scanned_at = $1, baseline_summary = $2 WHERE server_id = $3",
        )
        .bind(at)
        .bind(summary.to_string())
        .bind(server_id.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn upsert_policy(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    at: i64,
    p: &PolicyReport,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO baseline_policies (server_id, policy_id, name, applicable, reason, checked_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (server_id, policy_id) DO UPDATE SET name = excluded.name, applicable = excluded.applicable, \
         reason = excluded.reason, checked_at = excluded.checked_at",
    )
    .bind(server_id.to_string())
    .bind(p.policy_id.clone())
    .bind(p.name.clone())
    .bind(i64::from(p.applicable))
    .bind(p.reason.clone())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn store_check(
    tx: &mut Transaction<'static, Any>,
    server_id: &str,
    project_id: &str,
    at: i64,
    p: &PolicyReport,
    c: &CheckResult,
    old: Option<&Prior>,
    covered: Option<&BaselineRule>,
) -> Result<()> {
    let result = c.result.as_str();
    let fails = c.result == Outcome::Fail;
    let evidence = serde_json::to_string(&c.evidence).unwrap_or_else(|_| "[]".into());
    let compliance = serde_json::to_string(&c.compliance).unwrap_or_else(|_| "{}".into());
    let Some(old) = old else {
        let id = new_id();
        let (state, note) = match covered {
            Some(r) if fails => (
                baseline_state::IGNORED,
                format!("whitelist rule {}: {}", r.id, r.reason),
            ),
            _ => (baseline_state::OPEN, String::new()),
        };
        sqlx::query(
            "INSERT INTO baseline_results (id, server_id, project_id, policy_id, check_id, policy_name, title, result, severity, \
             severity_rank, reason, evidence, rationale, remediation, compliance, state, state_note, failing_since, checked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(id.clone())
        .bind(server_id.to_string())
        .bind(project_id.to_string())
        .bind(p.policy_id.clone())
        .bind(c.id)
        .bind(p.name.clone())
        .bind(c.title.clone())
        .bind(result)
        .bind(c.severity.as_str())
        .bind(c.severity as i64)
        .bind(c.reason.clone())
        .bind(evidence)
        .bind(c.rationale.clone())
        .bind(c.remediation.clone())
        .bind(compliance)
        .bind(state)
        .bind(note.clone())
        .bind(fails.then_some(at))
        .bind(at)
        .execute(&mut **tx)
        .await?;
        if fails {
            let action = if covered.is_some() { "rule" } else { "failed" };
            history::add(
                tx,
                History::Baseline,
                &id,
                "system",
                action,
                "",
                state,
                &note,
                at,
            )
            .await?;
        }
        return Ok(());
    };
    let failing_since = match (fails, old.failing_since) {
        (true, Some(since)) => Some(since),
        (true, None) => Some(at),
        (false, _) => None,
    };
    sqlx::query(
        "UPDATE baseline_results SET policy_name = $1, title = $2, result = $3, severity = $4, severity_rank = $5, reason = $6, \
         evidence = $7, rationale = $8, remediation = $9, compliance = $10, failing_since = $11, checked_at = $12 WHERE id = $13",
    )
    .bind(p.name.clone())
    .bind(c.title.clone())
    .bind(result)
    .bind(c.severity.as_str())
    .bind(c.severity as i64)
    .bind(c.reason.clone())
    .bind(evidence)
    .bind(c.rationale.clone())
    .bind(c.remediation.clone())
    .bind(compliance)
    .bind(failing_since)
    .bind(at)
    .bind(old.id.clone())
    .execute(&mut **tx)
    .await?;
    note_change(tx, old, result, at).await
}

/// A verified check whose policy stopped applying (its software went): not applicable with
/// the policy's reason; its words stay as they were.
async fn stopped_applying(
    tx: &mut Transaction<'static, Any>,
    old: &Prior,
    reason: Option<&str>,
    at: i64,
) -> Result<()> {
    let result = Outcome::NotApplicable.as_str();
    sqlx::query(
        "UPDATE baseline_results SET result = $1, reason = $2, evidence = '[]', failing_since = NULL, checked_at = $3 WHERE id = $4",
    )
    .bind(result)
    .bind(reason.map(str::to_string))
    .bind(at)
    .bind(old.id.clone())
    .execute(&mut **tx)
    .await?;
    note_change(tx, old, result, at).await
}

/// A history row when a check starts or stops failing.
async fn note_change(
    tx: &mut Transaction<'static, Any>,
    old: &Prior,
    result: &str,
    at: i64,
) -> Result<()> {
    let fails = result == Outcome::Fail.as_str();
    if old.result != result && (fails || old.result == Outcome::Fail.as_str()) {
        let (action, note) = if fails {
            ("failed", String::new())
        } else {
            ("passed", format!("the check now gives {result}"))
        };
        history::add(
            tx,
            History::Baseline,
            &old.id,
            "system",
            action,
            &old.state,
            &old.state,
            &note,
            at,
        )
        .await?;
    }
    Ok(())
}

impl Store {
    fn baseline_filter(f: &BaselineFilter) -> Sql {
        let mut sql =
            Sql::new(" FROM baseline_results b JOIN servers s ON s.id = b.server_id WHERE ");
        match &f.server_id {
            Some(id) => {
                sql.push("b.server_id = ").bind(Bind::Text(id.clone()));
            }
            None if f.projects.is_empty() => {
                sql.push("1 = 0");
            }
            None => {
                sql.push("b.project_id IN ").bind_list(&f.projects);
            }
        }
        if let Some(p) = &f.policy_id {
            sql.push(" AND b.policy_id = ").bind(Bind::Text(p.clone()));
        }
        if let Some(c) = f.check_id {
            sql.push(" AND b.check_id = ").bind(Bind::Int(c));
        }
        if let Some(r) = &f.result {
            sql.push(" AND b.result = ").bind(Bind::Text(r.clone()));
        }
        if let Some(st) = &f.state {
            sql.push(" AND b.state = ").bind(Bind::Text(st.clone()));
        }
        if let Some(sev) = f.severity {
            sql.push(" AND b.severity = ")
                .bind(Bind::Text(sev.as_str().into()));
        }
        if let Some(q) = f.q.as_ref().filter(|q| !q.is_empty()) {
            let pat = like(q);
            sql.push(" AND (LOWER(b.title) LIKE ")
                .bind(Bind::Text(pat.clone()))
                .push(" ESCAPE '\\' OR LOWER(b.policy_name) LIKE ")
                .bind(Bind::Text(pat))
                .push(" ESCAPE '\\')");
        }
        sql
    }

    /// Results matching the filter: failures first, most severe first.
    pub async fn baseline_findings(
        &self,
        f: &BaselineFilter,
    ) -> Result<(Vec<BaselineFinding>, i64)> {
        let (rows, total) = paged(
            self,
            COLUMNS,
            Self::baseline_filter(f),
            "CASE b.result WHEN 'fail' THEN 0 WHEN 'not_applicable' THEN 1 ELSE 2 END, b.severity_rank DESC, s.name, b.policy_id, b.check_id",
            f.page,
            f.per_page,
        )
        .await?;
        Ok((rows.iter().map(finding).collect::<Result<_>>()?, total))
    }

    pub async fn baseline_finding(&self, id: &str) -> Result<Option<BaselineFinding>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM baseline_results b JOIN servers s ON s.id = b.server_id WHERE b.id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(finding)
        .transpose()
    }

    /// Every check across the projects' servers, with how many servers fail, pass or cannot
    /// tell: the checks failing on most servers first.
    pub async fn baseline_checks(
        &self,
        projects: &[String],
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<BaselineCheckGroup>, i64)> {
        if projects.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut count = Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT policy_id, check_id FROM baseline_results WHERE project_id IN ",
        );
        count.bind_list(projects).push(") t");
        let total: i64 = count.query().fetch_one(self.pool()).await?.try_get("n")?;
        let mut sql = Sql::new(
            "SELECT policy_id, check_id, MIN(policy_name) AS policy_name, MIN(title) AS title, MAX(severity_rank) AS rank, \
             SUM(CASE WHEN result = 'fail' AND state = 'open' THEN 1 ELSE 0 END) AS failing, \
             SUM(CASE WHEN result = 'fail' AND state <> 'open' THEN 1 ELSE 0 END) AS ignored, \
             SUM(CASE WHEN result = 'pass' THEN 1 ELSE 0 END) AS passing, \
             SUM(CASE WHEN result = 'not_applicable' THEN 1 ELSE 0 END) AS not_applicable \
             FROM baseline_results WHERE project_id IN ",
        );
        sql.bind_list(projects).push(
            " GROUP BY policy_id, check_id ORDER BY failing DESC, rank DESC, policy_id, check_id LIMIT ",
        );
        let (limit, off) = super::offset(page, per_page);
        sql.bind(Bind::Int(limit))
            .push(" OFFSET ")
            .bind(Bind::Int(off));
        let groups = sql
            .query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let rank: i64 = r.try_get("rank")?;
                Ok(BaselineCheckGroup {
                    policy_id: r.try_get("policy_id")?,
                    policy_name: r.try_get("policy_name")?,
                    check_id: r.try_get("check_id")?,
                    title: r.try_get("title")?,
                    severity: Severity::ALL
                        .into_iter()
                        .find(|s| *s as i64 == rank)
                        .unwrap_or(Severity::Medium)
                        .as_str()
                        .into(),
                    failing: opt_i64(r, "failing").unwrap_or(0),
                    ignored: opt_i64(r, "ignored").unwrap_or(0),
                    passing: opt_i64(r, "passing").unwrap_or(0),
                    not_applicable: opt_i64(r, "not_applicable").unwrap_or(0),
                })
            })
            .collect::<Result<_>>()?;
        Ok((groups, total))
    }

    /// The policies a server ran, with their counts.
    pub async fn baseline_policies(&self, server_id: &str) -> Result<Vec<BaselinePolicyRow>> {
        sqlx::query(
            "SELECT p.policy_id, p.name, p.applicable, p.reason, p.checked_at, \
             (SELECT COUNT(*) FROM baseline_results b WHERE b.server_id = p.server_id AND b.policy_id = p.policy_id AND b.result = 'pass') AS passed, \
             (SELECT COUNT(*) FROM baseline_results b WHERE b.server_id = p.server_id AND b.policy_id = p.policy_id AND b.result = 'fail') AS failed, \
             (SELECT COUNT(*) FROM baseline_results b WHERE b.server_id = p.server_id AND b.policy_id = p.policy_id AND b.result = 'not_applicable') AS not_applicable \
             FROM baseline_policies p WHERE p.server_id = $1 ORDER BY p.applicable DESC, p.name",
        )
        .bind(server_id.to_string())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(BaselinePolicyRow {
                policy_id: r.try_get("policy_id")?,
                name: r.try_get("name")?,
                applicable: opt_i64(r, "applicable").unwrap_or(0) != 0,
                reason: r.try_get("reason")?,
                checked_at: r.try_get("checked_at")?,
                passed: opt_i64(r, "passed").unwrap_or(0),
                failed: opt_i64(r, "failed").unwrap_or(0),
                not_applicable: opt_i64(r, "not_applicable").unwrap_or(0),
            })
        })
        .collect()
    }

    /// Moves results to `to` (a person's action: `open` or `ignored`), each with a history
    /// row, and refreshes their servers' risk status. Returns how many changed.
    pub async fn set_baseline_state(
        &self,
        ids: &[String],
        to: &str,
        actor: &str,
        action: &str,
        note: &str,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        let t = now();
        let mut servers = HashSet::new();
        let mut changed = 0;
        for id in ids {
            let Some(r) =
                sqlx::query("SELECT server_id, state FROM baseline_results WHERE id = $1")
                    .bind(id.clone())
                    .fetch_optional(&mut *tx)
                    .await?
            else {
                continue;
            };
            let from: String = r.try_get("state")?;
            if from == to {
                continue;
            }
            sqlx::query("UPDATE baseline_results SET state = $1, state_note = $2 WHERE id = $3")
                .bind(to.to_string())
                .bind(note.to_string())
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
            history::add(
                &mut tx,
                History::Baseline,
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
            super::risk::refresh_risk_status(&mut tx, s).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Notes a verification asked for (the history says who asked, and the task).
    pub async fn note_baseline_verify(&self, id: &str, actor: &str, task_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let state: String = sqlx::query("SELECT state FROM baseline_results WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("baseline result"))?
            .try_get("state")?;
        let note = format!("task {task_id}");
        history::add(
            &mut tx,
            History::Baseline,
            id,
            actor,
            "verify",
            &state,
            &state,
            &note,
            now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a whitelist rule and ignores the open failures it covers at once. Returns how many
    /// results it ignored.
    pub async fn create_baseline_rule(&self, r: &BaselineRule) -> Result<usize> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO baseline_rules (id, project_id, policy_id, check_id, server_ids, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.clone())
        .bind(r.project_id.clone())
        .bind(r.policy_id.clone())
        .bind(r.check_id)
        .bind(serde_json::to_string(&r.server_ids).unwrap_or_default())
        .bind(r.reason.clone())
        .bind(r.created_by.clone())
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT id, server_id FROM baseline_results WHERE project_id = $1 AND policy_id = $2 AND check_id = $3 \
             AND result = 'fail' AND state = 'open'",
        )
        .bind(r.project_id.clone())
        .bind(r.policy_id.clone())
        .bind(r.check_id)
        .fetch_all(&mut *tx)
        .await?;
        let note = format!("whitelist rule {}: {}", r.id, r.reason);
        let t = now();
        let mut servers = HashSet::new();
        let mut n = 0;
        for row in &rows {
            let server_id: String = row.try_get("server_id")?;
            if !r.covers(&server_id, &r.policy_id, r.check_id) {
                continue;
            }
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE baseline_results SET state = $1, state_note = $2 WHERE id = $3")
                .bind(baseline_state::IGNORED)
                .bind(note.clone())
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
            history::add(
                &mut tx,
                History::Baseline,
                &id,
                &r.created_by,
                "rule",
                baseline_state::OPEN,
                baseline_state::IGNORED,
                &note,
                t,
            )
            .await?;
            servers.insert(server_id);
            n += 1;
        }
        for s in &servers {
            super::risk::refresh_risk_status(&mut tx, s).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    pub async fn baseline_rules(&self, projects: &[String]) -> Result<Vec<BaselineRule>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT id, project_id, policy_id, check_id, server_ids, reason, created_by, created_at FROM baseline_rules WHERE project_id IN ",
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

    pub async fn baseline_rule(&self, id: &str) -> Result<Option<BaselineRule>> {
        sqlx::query(
            "SELECT id, project_id, policy_id, check_id, server_ids, reason, created_by, created_at FROM baseline_rules WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(rule)
        .transpose()
    }

    /// Deletes a rule. Results it ignored stay ignored (a person decided that); new failures
    /// are no longer covered.
    pub async fn delete_baseline_rule(&self, id: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM baseline_rules WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("rule"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "baseline_tests.rs"]
mod tests;
