//! Web tamper protection: protected directories that refuse, before it happens, every write by
//! a process that is not privileged (`guard`: fanotify permission events, the open's flags read
//! from the waiting opener), refuse new, renamed and removed entries in the kernel (`lock`: the
//! immutable attribute on each directory), and get back what still changes from a local
//! backup (a [`crate::objects`] store); `runner` drives it from the project's `tamper` policy,
//! the server's `tamper_unlock` and the policy's windows. This file is the module's face to the runtime.

pub mod guard;
pub mod intent;
pub mod lock;
pub mod runner;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hostward_agent_core::module::{BoxFuture, Module};
use hostward_proto::tamper::{TamperPolicy, TamperReport, TamperUnlock};
use hostward_proto::{AgentConfig, Heartbeat};
use tokio::sync::mpsc;

/// The handle the daemon holds.
#[derive(Clone)]
pub struct Tamper {
    tx: mpsc::Sender<runner::Command>,
    report: Arc<Mutex<TamperReport>>,
    /// The guard's count of refused writes, live (the report is rebuilt on state changes).
    refused: Arc<AtomicU64>,
}

impl Tamper {
    pub(crate) fn new(
        tx: mpsc::Sender<runner::Command>,
        report: Arc<Mutex<TamperReport>>,
        refused: Arc<AtomicU64>,
    ) -> Tamper {
        Tamper {
            tx,
            report,
            refused,
        }
    }
}

impl Module for Tamper {
    fn name(&self) -> &'static str {
        "tamper"
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let policy = match cfg.section::<TamperPolicy>() {
                Ok(p) => match p.validate() {
                    Ok(()) => Some(p),
                    Err(e) => {
                        tracing::error!("tamper policy refused ({e}); keeping the current one");
                        None
                    }
                },
                Err(e) => {
                    tracing::error!("{e}; keeping the current tamper policy");
                    None
                }
            };
            let unlock = cfg.section::<TamperUnlock>().unwrap_or_default();
            let _ = self
                .tx
                .send(runner::Command::Config {
                    policy,
                    unlock,
                    enabled: cfg.protection_enabled,
                })
                .await;
        })
    }

    fn on_stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = tokio::sync::oneshot::channel();
            if self.tx.send(runner::Command::Stop(done)).await.is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
            }
        })
    }

    fn heartbeat(&self, hb: &mut Heartbeat) {
        hb.tamper = self.report.lock().ok().map(|r| {
            let mut r = Box::new(r.clone());
            r.refused = self.refused.load(Ordering::Relaxed);
            r
        });
    }
}
