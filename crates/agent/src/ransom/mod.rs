//! Ransomware prevention and local backups: bait files (`bait`) in the watched directories and
//! random places, a detector of bait touches and of bursts of encrypted-looking writes per
//! process or script (`detect`, on `entropy`), kill and isolate through the quarantine, and
//! incremental content-addressed snapshots of chosen directories with a restore to a point in
//! time (`backup`); `runner` drives them from the project's `ransom` policy. This file is the
//! module's face to the runtime: the `ransom` section, the tasks `backup_now` and
//! `backup_restore`, the heartbeat's report.

pub mod backup;
pub mod bait;
pub mod detect;
pub mod entropy;
pub mod runner;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use hostward_agent_core::module::{BoxFuture, Module};
use hostward_proto::ransom::{BACKUP_TASK, RESTORE_TASK, RansomPolicy, RestoreRequest};
use hostward_proto::{AgentConfig, Heartbeat, Task};
use tokio::sync::mpsc;

/// The bait files in place (host paths), shared with the file integrity monitor, which leaves
/// them out of its changes: their alarm is this module's.
pub type Baits = Arc<RwLock<BTreeSet<String>>>;

/// The handle the daemon holds.
#[derive(Clone)]
pub struct Ransom {
    tx: mpsc::Sender<runner::Command>,
    shared: Arc<runner::Shared>,
}

impl Ransom {
    pub(crate) fn new(tx: mpsc::Sender<runner::Command>, shared: Arc<runner::Shared>) -> Ransom {
        Ransom { tx, shared }
    }
}

impl Module for Ransom {
    fn name(&self) -> &'static str {
        "ransom"
    }

    fn task_kinds(&self) -> &'static [&'static str] {
        &[BACKUP_TASK, RESTORE_TASK]
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let policy = match cfg.section::<RansomPolicy>() {
                Ok(p) => match p.validate() {
                    Ok(()) => Some(p),
                    Err(e) => {
                        tracing::error!("ransom policy refused ({e}); keeping the current one");
                        None
                    }
                },
                Err(e) => {
                    tracing::error!("{e}; keeping the current ransom policy");
                    None
                }
            };
            let _ = self
                .tx
                .send(runner::Command {
                    policy,
                    enabled: cfg.protection_enabled,
                })
                .await;
        })
    }

    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            match task.kind.as_str() {
                BACKUP_TASK => {
                    let info = runner::backup_now(&self.shared).await?;
                    serde_json::to_value(info).map_err(|e| e.to_string())
                }
                RESTORE_TASK => {
                    let req: RestoreRequest = serde_json::from_value(task.params.clone())
                        .map_err(|e| format!("params: {e}"))?;
                    let r = runner::restore(&self.shared, req).await?;
                    serde_json::to_value(r).map_err(|e| e.to_string())
                }
                other => Err(format!("unknown task kind {other:?}")),
            }
        })
    }

    fn heartbeat(&self, hb: &mut Heartbeat) {
        hb.ransom = Some(Box::new(self.shared.report()));
    }
}
