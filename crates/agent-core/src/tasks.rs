//! The runtime's own tasks (`ping`, `collect_facts`) and what every task shares: the expiry
//! check, the `running`/`done`/`failed` updates, params parsing and the memory of recent task
//! ids. A task's result is a `TaskUpdate` record; the daemon puts it in the outbox so it
//! survives a disconnect.

use std::collections::VecDeque;
use std::path::Path;

use hostward_proto::{Task, TaskState, TaskUpdate};
use serde_json::json;

/// Kinds the runtime runs itself; no module may claim them.
pub const RUNTIME_KINDS: &[&str] = &["ping", "collect_facts"];

/// Runs a task and returns its final update (`done` or `failed`).
pub fn run(task: &Task, now: i64, root: &Path) -> TaskUpdate {
    finished(task, outcome(task, now, root))
}

/// `done` with the output, or `failed` with `{"error": ...}`.
pub fn finished(task: &Task, outcome: Result<serde_json::Value, String>) -> TaskUpdate {
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

/// `Err("expired")` once the task's deadline has passed: it must not start any more.
pub fn expired(task: &Task, now: i64) -> Result<(), String> {
    if task.expires_at.is_some_and(|exp| exp < now) {
        return Err("expired".to_string());
    }
    Ok(())
}

/// The task's params as `T`; no params at all mean `T::default()`.
pub fn params<T: serde::de::DeserializeOwned + Default>(task: &Task) -> Result<T, String> {
    if task.params.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(task.params.clone()).map_err(|e| format!("bad params: {e}"))
}

/// The update that says a task started.
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
