//! File integrity monitoring: the important files (every change an alarm) and the monitored
//! directories of the project's `fim` policy. `engine` baselines and diffs (pure, over a
//! filesystem root), `watch` reports file events with the writer (fanotify), `runner` keeps
//! the baseline current and sends `file_changes` records and `important_file_change` alarms.
//! This file is the module's face to the runtime: the policy and protection switch from each
//! config, the monitor's state in each heartbeat.

pub mod engine;
pub mod runner;
pub mod watch;

use std::sync::{Arc, Mutex};

use hostward_agent_core::module::{BoxFuture, Module};
use hostward_proto::fim::{FimPolicy, FimReport};
use hostward_proto::{AgentConfig, Heartbeat};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// `[fim]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `false`: no file integrity monitoring on this host, whatever the project's policy says
    /// (the heartbeat says so). The `--fim` flag of `run` overrides it.
    pub enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { enabled: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// The handle the daemon holds.
#[derive(Clone)]
pub struct Fim {
    tx: mpsc::Sender<runner::Command>,
    report: Arc<Mutex<FimReport>>,
}

impl Fim {
    pub(crate) fn new(tx: mpsc::Sender<runner::Command>, report: Arc<Mutex<FimReport>>) -> Fim {
        Fim { tx, report }
    }
}

impl Module for Fim {
    fn name(&self) -> &'static str {
        "fim"
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let policy = match cfg.section::<FimPolicy>() {
                Ok(p) => match p.validate() {
                    Ok(()) => Some(p),
                    Err(e) => {
                        tracing::error!(
                            "file integrity policy refused ({e}); keeping the current one"
                        );
                        None
                    }
                },
                Err(e) => {
                    tracing::error!("{e}; keeping the current file integrity policy");
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

    fn heartbeat(&self, hb: &mut Heartbeat) {
        hb.fim = self.report.lock().ok().map(|r| Box::new(r.clone()));
    }
}
