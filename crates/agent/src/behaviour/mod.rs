//! The runtime behaviour module: events from the sensor (`hostward-sensor`: eBPF, or the proc
//! connector), file changes (`fswatch`) and inbound connection attempts (`netwatch`) go
//! through the process table (`table`) and the detectors (`detect`, pure); the `runner` turns
//! their findings into alarms with the process chain, isolates and kills per policy through
//! the quarantine module, and blocks scanners through the brute-force module's firewall. This
//! file is the module's face to the runtime: the policy and protection switch from each
//! config, the sensor report in each heartbeat, and the `[behaviour]` settings of agent.toml.

pub mod detect;
pub mod fswatch;
pub mod netwatch;
pub mod runner;
pub mod table;

use std::sync::{Arc, Mutex};

use hostward_agent_core::module::{BoxFuture, Module};
use hostward_proto::alarm::ProcessInfo;
use hostward_proto::behaviour::{BehaviourPolicy, SensorReport};
use hostward_proto::{AgentConfig, Heartbeat};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// `[behaviour]` in agent.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `auto` (the strongest tier that loads), `proc` (never load BPF), or `off` (no runtime
    /// detection at all). The `--sensor` flag of `run` overrides it.
    pub sensor: SensorSetting,
    /// A network namespace (a name under /var/run/netns, or a path) to watch for port scans
    /// and open decoy ports in, instead of the agent's own.
    pub netns: Option<String>,
    /// BPF tier: also report memfd creation, accepted connections and kernel module loads
    /// (attempts included), from a program on every system call's exit. Off by default: that
    /// tracepoint sends every system call of every task through the kernel's slow path
    /// (`bench/sensor.sh` prints the cost beside auditd's).
    pub syscall_events: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SensorSetting {
    #[default]
    Auto,
    Proc,
    Off,
}

pub(crate) enum Command {
    Policy(Box<BehaviourPolicy>),
    Enabled(bool),
    /// The process and its ancestors as the table knows them.
    Chain(u32, tokio::sync::oneshot::Sender<Vec<ProcessInfo>>),
}

/// The handle the daemon holds.
#[derive(Clone)]
pub struct Behaviour {
    tx: mpsc::Sender<Command>,
    report: Arc<Mutex<SensorReport>>,
}

impl Behaviour {
    pub(crate) fn new(tx: mpsc::Sender<Command>, report: Arc<Mutex<SensorReport>>) -> Behaviour {
        Behaviour { tx, report }
    }

    /// A process and its ancestors from the process table, nearest first: what other modules
    /// name a writer by when it exited before they could read /proc (the table keeps exited
    /// processes 30 s). Empty when the module does not answer within a second.
    pub async fn chain(&self, pid: u32) -> Vec<ProcessInfo> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Command::Chain(pid, tx)).await.is_err() {
            return Vec::new();
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// [`Behaviour::chain`] for a thread outside the runtime (ransomware's detector, which
    /// must not wait on the runtime's one thread).
    pub fn chain_blocking(&self, pid: u32) -> Vec<ProcessInfo> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.blocking_send(Command::Chain(pid, tx)).is_err() {
            return Vec::new();
        }
        rx.blocking_recv().unwrap_or_default()
    }
}

impl Module for Behaviour {
    fn name(&self) -> &'static str {
        "behaviour"
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.tx.send(Command::Enabled(cfg.protection_enabled)).await;
            match cfg.section::<BehaviourPolicy>() {
                Ok(p) => match p.validate() {
                    Ok(()) => {
                        let _ = self.tx.send(Command::Policy(Box::new(p))).await;
                    }
                    Err(e) => {
                        tracing::error!("behaviour policy refused ({e}); keeping the current one")
                    }
                },
                Err(e) => tracing::error!("{e}; keeping the current behaviour policy"),
            }
        })
    }

    fn heartbeat(&self, hb: &mut Heartbeat) {
        hb.sensor = self.report.lock().ok().map(|r| r.clone());
    }
}
