//! Task handlers. A task's result is a `TaskUpdate` record; the link puts it in the outbox so it
//! survives a disconnect.

use std::collections::VecDeque;
use std::path::Path;

use hostward_proto::{Task, TaskState, TaskUpdate};
use serde_json::json;

/// Runs a task and returns its final update (`done` or `failed`).
pub fn run(task: &Task, now: i64, root: &Path) -> TaskUpdate {
    finished(task, outcome(task, now, root))
}

/// `done` with the output, or `failed` with `{"error": ...}`.
fn finished(task: &Task, outcome: Result<serde_json::Value, String>) -> TaskUpdate {
    let (state, output) = match outcome {
        Ok(out) => (TaskState::Done, out),
        Err(msg) => (TaskState::Failed, json!({ "error": msg })),
    };
    TaskUpdate {
        task_id: task.id.clone(),
        state,
        output,
    }
}

fn outcome(task: &Task, now: i64, root: &Path) -> Result<serde_json::Value, String> {
    expired(task, now)?;
    match task.kind.as_str() {
        "ping" => Ok(json!({ "pong": true })),
        "collect_facts" => {
            serde_json::to_value(crate::facts::collect(root)).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown task kind {other:?}")),
    }
}

/// Kind of the "collect inventory now" task; runs on the inventory runner, not here.
pub use hostward_proto::inventory::COLLECT_INVENTORY_TASK as COLLECT_INVENTORY;

/// Asks the inventory runner to collect (params: `{"kinds": [...], "full": bool}`, both
/// optional) and reports per kind how many items it found and records it queued.
pub async fn collect_inventory(
    task: &Task,
    now: i64,
    runner: Option<&crate::inventory::Handle>,
) -> TaskUpdate {
    let outcome = async {
        expired(task, now)?;
        let req: hostward_proto::inventory::CollectNow = params(task)?;
        let runner = runner.ok_or("the inventory runner is not running")?;
        let summary = runner.collect_now(req).await.map_err(|e| e.to_string())?;
        serde_json::to_value(summary).map_err(|e| e.to_string())
    };
    finished(task, outcome.await)
}

/// Kinds of the risk tasks; they run on the risk scanner.
pub use hostward_proto::risk::{FIX_TASK as VULN_FIX, SCAN_TASK as RISK_SCAN};

fn expired(task: &Task, now: i64) -> Result<(), String> {
    if task.expires_at.is_some_and(|exp| exp < now) {
        return Err("expired".to_string());
    }
    Ok(())
}

fn params<T: serde::de::DeserializeOwned + Default>(task: &Task) -> Result<T, String> {
    if task.params.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(task.params.clone()).map_err(|e| format!("bad params: {e}"))
}

/// Runs a risk scan now (params: `{"checks": [...]}`, optional) and reports what it found.
pub async fn risk_scan(task: &Task, now: i64, risk: Option<&crate::risk::Handle>) -> TaskUpdate {
    let outcome = async {
        expired(task, now)?;
        let req: hostward_proto::risk::ScanRequest = params(task)?;
        let risk = risk.ok_or("the risk scanner is not running")?;
        let summary = risk.scan_now(req, Some(task.id.clone())).await?;
        serde_json::to_value(summary).map_err(|e| e.to_string())
    };
    finished(task, outcome.await)
}

/// Upgrades packages (params: `{"manager": "dpkg"|"rpm", "packages": [...]}`) if the policy
/// allows one-click fixes, then re-collects the software inventory so the center verifies the
/// fix at once.
pub async fn vuln_fix(
    task: &Task,
    now: i64,
    risk: Option<&crate::risk::Handle>,
    inventory: Option<&crate::inventory::Handle>,
) -> TaskUpdate {
    let outcome = async {
        expired(task, now)?;
        let req: hostward_proto::risk::FixRequest =
            serde_json::from_value(task.params.clone()).map_err(|e| format!("bad params: {e}"))?;
        let risk = risk.ok_or("the risk scanner is not running")?;
        if !risk.policy().allow_fix {
            return Err("one-click fixes are off in this server's risk policy".to_string());
        }
        let out = crate::risk::fix::run(&req).await?;
        if let Some(inv) = inventory {
            let again = hostward_proto::inventory::CollectNow {
                kinds: vec![hostward_proto::InventoryKind::Software],
                full: true,
            };
            if let Err(e) = inv.collect_now(again).await {
                tracing::warn!(error = %e, "re-collecting software after a fix failed");
            }
        }
        if out.success {
            Ok(json!({ "exit_code": out.exit_code, "output": out.output }))
        } else {
            Err(format!(
                "the package manager exited with {:?}: {}",
                out.exit_code, out.output
            ))
        }
    };
    finished(task, outcome.await)
}

/// Kinds of the manual firewall tasks; they run on the brute-force defence loop.
pub use hostward_proto::alarm::{BLOCK_TASK as BLOCK_IP, UNBLOCK_TASK as UNBLOCK_IP};

/// Blocks or unblocks an address (params: `{"addr": "...", "minutes": N}`).
pub async fn firewall(
    task: &Task,
    now: i64,
    detect: Option<&crate::detect::runner::Handle>,
) -> TaskUpdate {
    let outcome = async {
        expired(task, now)?;
        let req: hostward_proto::alarm::BlockRequest =
            serde_json::from_value(task.params.clone()).map_err(|e| format!("bad params: {e}"))?;
        let addr: std::net::IpAddr = req
            .addr
            .parse()
            .map_err(|_| format!("bad params: addr {:?} is not an address", req.addr))?;
        let detect = detect.ok_or("the brute-force defence is not running")?;
        if task.kind == BLOCK_IP {
            let minutes = req
                .minutes
                .filter(|m| (1..=43_200).contains(m))
                .ok_or("bad params: minutes must be 1 to 43200")?;
            detect.block(addr, minutes).await?;
        } else {
            detect.unblock(addr).await?;
        }
        Ok(json!({ "addr": addr.to_string() }))
    };
    finished(task, outcome.await)
}

pub fn running(task: &Task) -> TaskUpdate {
    TaskUpdate {
        task_id: task.id.clone(),
        state: TaskState::Running,
        output: serde_json::Value::Null,
    }
}

/// Ids of recently started tasks: the center redelivers a task whose result it has not stored
/// yet (e.g. after a reconnect), and a task must not run twice. Bounded, oldest forgotten first.
#[derive(Debug, Default)]
pub struct Recent {
    ids: VecDeque<String>,
}

impl Recent {
    const CAP: usize = 1024;

    /// True the first time an id is seen.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.ids.iter().any(|i| i == id) {
            return false;
        }
        if self.ids.len() == Self::CAP {
            self.ids.pop_front();
        }
        self.ids.push_back(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: &str, expires_at: Option<i64>) -> Task {
        Task {
            id: "t1".into(),
            kind: kind.into(),
            params: serde_json::Value::Null,
            expires_at,
        }
    }

    #[test]
    fn ping_answers_pong() {
        let u = run(&task("ping", None), 100, Path::new("/"));
        assert_eq!((u.task_id.as_str(), u.state), ("t1", TaskState::Done));
        assert_eq!(u.output, json!({"pong": true}));
        assert_eq!(
            run(&task("ping", Some(100)), 100, Path::new("/")).state,
            TaskState::Done
        );
    }

    #[test]
    fn collect_facts_returns_facts() {
        let u = run(&task("collect_facts", None), 0, Path::new("/"));
        assert_eq!(u.state, TaskState::Done);
        assert!(u.output.get("hostname").is_some(), "{}", u.output);
    }

    #[test]
    fn unknown_and_expired_tasks_fail_with_a_reason() {
        let u = run(&task("launch", None), 0, Path::new("/"));
        assert_eq!(u.state, TaskState::Failed);
        assert!(u.output["error"].as_str().unwrap().contains("launch"));
        let u = run(&task("ping", Some(99)), 100, Path::new("/"));
        assert_eq!(
            (u.state, u.output["error"].as_str()),
            (TaskState::Failed, Some("expired"))
        );
    }

    #[test]
    fn recent_ids_are_remembered_within_the_bound() {
        let mut r = Recent::default();
        assert!(r.first_time("a"));
        assert!(!r.first_time("a"));
        for i in 0..Recent::CAP {
            r.first_time(&i.to_string());
        }
        assert!(r.first_time("a"), "forgotten once pushed out");
    }
}
