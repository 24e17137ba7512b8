//! Handling history, one shape for everything people handle (vulnerability findings, alarms,
//! baseline results):
//! who did what, from which state to which, and why.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{Result, Store};

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
