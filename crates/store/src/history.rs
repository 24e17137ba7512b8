//! Handling history, one shape for everything people handle (vulnerability findings, alarms,
//! baseline results):
//! who did what, from which state to which, and why.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Bind, Result, Sql, Store, paged};

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct HandlingEntry {
    /// A user name, or `system` for what the center did by itself.
    pub actor: String,
    /// What happened, e.g. `detected`, `ignore`, `verify`, `fix_done`, `raised`, `handle`.
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    pub note: String,
    pub ts: i64,
}

/// One entry of the fleet's handling log: what was handled, on which server, by whom.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct HandlingLogEntry {
    /// `vulnerability`, `alarm`, `baseline` or `scan`.
    pub kind: String,
    /// The finding's, alarm's, result's or task's id.
    pub object_id: String,
    /// What it is, in a few words (CVE and package, the alarm's title, the check, the scan).
    pub object: String,
    pub server_id: String,
    pub server_name: String,
    pub project_id: String,
    #[serde(flatten)]
    pub entry: HandlingEntry,
}

#[derive(Debug, Clone, Default)]
pub struct HandlingLogFilter {
    pub projects: Vec<String>,
    /// One of the kinds, or all.
    pub kind: Option<String>,
    pub actor: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

/// The kinds of the handling log, in the order of its union.
pub const HANDLING_KINDS: &[&str] = &["vulnerability", "alarm", "baseline", "scan"];

/// Task kinds that are scans or fixes, which the log shows beside people's handling.
const SCAN_TASKS: &str = "'risk_scan', 'malware_scan', 'vuln_fix', 'backup_now', 'backup_restore'";

/// Whose history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Finding,
    Alarm,
    /// A server's result of one baseline check.
    Baseline,
}

impl History {
    /// Table and the column naming the object; fixed strings, never input.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            History::Finding => ("vuln_history", "finding_id"),
            History::Alarm => ("alarm_history", "alarm_id"),
            History::Baseline => ("baseline_history", "finding_id"),
        }
    }
}

/// One entry, inside the transaction that made the change.
#[allow(clippy::too_many_arguments)]
pub(super) async fn add(
    tx: &mut Transaction<'static, Any>,
    which: History,
    id: &str,
    actor: &str,
    action: &str,
    from: &str,
    to: &str,
    note: &str,
    ts: i64,
) -> Result<()> {
    let (table, col) = which.table();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} ({col}, actor, action, from_state, to_state, note, ts) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )))
    .bind(id.to_string())
    .bind(actor.to_string())
    .bind(action.to_string())
    .bind(from.to_string())
    .bind(to.to_string())
    .bind(note.to_string())
    .bind(ts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Everything handled across the projects' servers, newest first: vulnerability findings,
    /// alarms and baseline results (each change of state with who and why) and scans (each
    /// scan or fix task with who asked and where it stands).
    pub async fn handling_log(
        &self,
        f: &HandlingLogFilter,
    ) -> Result<(Vec<HandlingLogEntry>, i64)> {
        if f.projects.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut sql = Sql::new(&format!(
            " FROM (\
             SELECT 'vulnerability' AS kind, h.finding_id AS object_id, o.cve || ' ' || o.package AS object, o.server_id, \
             o.project_id, h.actor, h.action, h.from_state, h.to_state, h.note, h.ts, h.id AS seq \
             FROM vuln_history h JOIN vuln_findings o ON o.id = h.finding_id \
             UNION ALL SELECT 'alarm', h.alarm_id, o.title, o.server_id, o.project_id, h.actor, h.action, h.from_state, \
             h.to_state, h.note, h.ts, h.id FROM alarm_history h JOIN alarms o ON o.id = h.alarm_id \
             UNION ALL SELECT 'baseline', h.finding_id, o.policy_id || ' ' || o.title, o.server_id, o.project_id, h.actor, \
             h.action, h.from_state, h.to_state, h.note, h.ts, h.id FROM baseline_history h JOIN baseline_results o ON o.id = h.finding_id \
             UNION ALL SELECT 'scan', t.id, t.kind, t.server_id, t.project_id, t.created_by, t.kind, '', t.state, '', \
             t.updated_at, 0 FROM tasks t WHERE t.kind IN ({SCAN_TASKS})\
             ) x JOIN servers s ON s.id = x.server_id WHERE x.project_id IN "
        ));
        sql.bind_list(&f.projects);
        if let Some(k) = &f.kind {
            sql.push(" AND x.kind = ").bind(Bind::Text(k.clone()));
        }
        if let Some(a) = &f.actor {
            sql.push(" AND x.actor = ").bind(Bind::Text(a.clone()));
        }
        if let Some(t) = f.since {
            sql.push(" AND x.ts >= ").bind(Bind::Int(t));
        }
        let (rows, total) = paged(
            self,
            "x.kind, x.object_id, x.object, x.server_id, s.name AS server_name, x.project_id, x.actor, x.action, \
             x.from_state, x.to_state, x.note, x.ts",
            sql,
            "x.ts DESC, x.seq DESC, x.object_id",
            f.page,
            f.per_page,
        )
        .await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(HandlingLogEntry {
                    kind: r.try_get("kind")?,
                    object_id: r.try_get("object_id")?,
                    object: r.try_get("object")?,
                    server_id: r.try_get("server_id")?,
                    server_name: r.try_get("server_name")?,
                    project_id: r.try_get("project_id")?,
                    entry: HandlingEntry {
                        actor: r.try_get("actor")?,
                        action: r.try_get("action")?,
                        from_state: r.try_get("from_state")?,
                        to_state: r.try_get("to_state")?,
                        note: r.try_get("note")?,
                        ts: r.try_get("ts")?,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok((entries, total))
    }

    /// The history of one finding or alarm, newest first.
    pub async fn handling_history(&self, which: History, id: &str) -> Result<Vec<HandlingEntry>> {
        let (table, col) = which.table();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT actor, action, from_state, to_state, note, ts FROM {table} WHERE {col} = $1 ORDER BY id DESC"
        )))
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(HandlingEntry {
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                from_state: r.try_get("from_state")?,
                to_state: r.try_get("to_state")?,
                note: r.try_get("note")?,
                ts: r.try_get("ts")?,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MatchedVuln, NewServer, NewTasks, testdb, vuln_state};
    use hostward_proto::Severity;

    #[tokio::test]
    async fn the_log_joins_every_kind_scoped_to_projects_newest_first() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            let p = s.ensure_project("default").await.unwrap();
            let other = s.ensure_project("other").await.unwrap();
            let srv = s
                .create_server(&NewServer {
                    project_id: p.id.clone(),
                    name: "web-1".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let vuln = MatchedVuln {
                advisory_id: "DSA-1".into(),
                cve: "CVE-2024-0001".into(),
                package: "openssl".into(),
                source_package: None,
                manager: "dpkg".into(),
                installed_version: "1".into(),
                fixed_version: Some("2".into()),
                cvss: Some(7.5),
                severity: Severity::High,
                summary: "s".into(),
                fix_command: None,
                restart: "none".into(),
            };
            s.apply_vuln_matches(&srv.id, 1, &[vuln]).await.unwrap();
            let (found, _) = s
                .vuln_findings(&crate::VulnFilter {
                    server_id: Some(srv.id.clone()),
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            s.set_vuln_state(
                &[found[0].id.clone()],
                vuln_state::IGNORED,
                "alice",
                "ignore",
                "lab",
                None,
            )
            .await
            .unwrap();
            let check = testdb::failed_check(10001, "Root login off", Severity::High);
            let run = testdb::baseline_run("hostward_sshd", vec![check]);
            s.store_records(&srv.id, &[(1, run)]).await.unwrap();
            s.create_tasks(&NewTasks {
                targets: &[(p.id.clone(), srv.id.clone())],
                kind: "risk_scan",
                params: &serde_json::json!({}),
                created_by: "bob",
                expires_at: None,
            })
            .await
            .unwrap();

            let log = |kind: Option<&str>, actor: Option<&str>, projects: Vec<String>| {
                let f = HandlingLogFilter {
                    projects,
                    kind: kind.map(String::from),
                    actor: actor.map(String::from),
                    page: 1,
                    per_page: 50,
                    ..Default::default()
                };
                async move { s.handling_log(&f).await.unwrap() }
            };
            let (all, total) = log(None, None, vec![p.id.clone()]).await;
            assert_eq!(total as usize, all.len(), "{backend}");
            let mut kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
            kinds.dedup();
            for k in ["vulnerability", "baseline", "scan"] {
                assert!(kinds.contains(&k), "{backend}: {kinds:?}");
            }
            assert!(
                all.windows(2).all(|w| w[0].entry.ts >= w[1].entry.ts),
                "{backend}"
            );
            let (alice, _) = log(None, Some("alice"), vec![p.id.clone()]).await;
            assert_eq!(alice.len(), 1, "{backend}");
            assert_eq!(
                (alice[0].object.as_str(), alice[0].entry.note.as_str()),
                ("CVE-2024-0001 openssl", "lab"),
                "{backend}"
            );
            assert_eq!(alice[0].server_name, "web-1", "{backend}");
            let (scans, _) = log(Some("scan"), None, vec![p.id.clone()]).await;
            assert_eq!(
                (scans.len(), scans[0].entry.actor.as_str()),
                (1, "bob"),
                "{backend}"
            );
            let (base, _) = log(Some("baseline"), None, vec![p.id.clone()]).await;
            assert_eq!(base[0].object, "hostward_sshd Root login off", "{backend}");
            assert_eq!(
                log(None, None, vec![other.id.clone()]).await.1,
                0,
                "another project's: {backend}"
            );
        }
    }
}
