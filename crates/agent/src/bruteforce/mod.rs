//! The brute-force defence module: `authlog` reads authentication events from journald or the
//! auth log files; `engine` (pure) decides which source addresses to block and what to alarm
//! on; `nft` blocks them in a table of our own; `runner` ties them to the records. This file
//! holds the event types they share and the module's face to the runtime: the policy, the
//! server's usual login addresses, its SSH login whitelist (`sshd` reads sshd's ports for it)
//! and protection on/off from each config, the block and unblock tasks, and the auth log
//! counters and the whitelist's state in each heartbeat.

pub mod authlog;
pub mod engine;
pub mod nft;
pub mod runner;
pub mod sshd;

use std::net::IpAddr;

use hostward_agent_core::module::{BoxFuture, Module};
use hostward_proto::alarm::{BLOCK_TASK, BlockRequest, UNBLOCK_TASK};
use hostward_proto::{AgentConfig, Heartbeat, Task};
use serde_json::json;

/// The service an authentication event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ssh,
    Ftp,
    Mysql,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Ftp => "ftp",
            Service::Mysql => "mysql",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOutcome {
    /// A wrong password or key for an existing or unknown user, a PAM failure, a connection
    /// closed after too many attempts (counted as [`AuthEvent::count`] says).
    Failure,
    /// A successful login.
    Success,
}

/// One authentication event from a service's log, with the source address as the service
/// itself logged it (never as text found inside a user name: see `authlog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// Unix seconds when it was read (log timestamps lack the year and often the zone).
    pub ts: i64,
    pub service: Service,
    pub outcome: AuthOutcome,
    /// The user name tried, as logged (may be empty, may be hostile text).
    pub user: String,
    /// Whether the service said the user does not exist.
    pub invalid_user: bool,
    pub source: IpAddr,
    pub port: Option<u16>,
    /// `password`, `publickey`, `keyboard-interactive`, ... when logged.
    pub method: Option<String>,
    /// How many failures this one line stands for: sshd's "message repeated N times"; 0 for
    /// the other lines of an attempt that its `Failed METHOD` line counts (`Invalid user`, PAM,
    /// preauth disconnects), which are evidence only; 1 otherwise.
    pub count: u32,
    /// The log line, at most 512 bytes, for the alarm's evidence.
    pub line: String,
}

impl Module for runner::Handle {
    fn name(&self) -> &'static str {
        "bruteforce"
    }

    fn task_kinds(&self) -> &'static [&'static str] {
        &[BLOCK_TASK, UNBLOCK_TASK]
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.set_enabled(cfg.protection_enabled).await;
            // A section that does not decode keeps what is in force (see the risk module).
            match cfg.section() {
                Ok(policy) => self.set_policy(policy).await,
                Err(e) => tracing::error!("{e}; keeping the current brute-force policy"),
            }
            match cfg.section() {
                Ok(ips) => self.set_login_ips(ips).await,
                Err(e) => tracing::error!("{e}; keeping the current usual login addresses"),
            }
            match cfg.section() {
                Ok(wl) => self.set_ssh_whitelist(wl).await,
                Err(e) => tracing::error!("{e}; keeping the current SSH whitelist"),
            }
        })
    }

    /// Blocks or unblocks an address (params: `{"addr": "...", "minutes": N}`).
    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let req: BlockRequest = serde_json::from_value(task.params.clone())
                .map_err(|e| format!("bad params: {e}"))?;
            let addr: IpAddr = req
                .addr
                .parse()
                .map_err(|_| format!("bad params: addr {:?} is not an address", req.addr))?;
            if task.kind == BLOCK_TASK {
                let minutes = req
                    .minutes
                    .filter(|m| (1..=43_200).contains(m))
                    .ok_or("bad params: minutes must be 1 to 43200")?;
                self.block(addr, minutes).await?;
            } else {
                self.unblock(addr).await?;
            }
            Ok(json!({ "addr": addr.to_string() }))
        })
    }

    fn heartbeat(&self, hb: &mut Heartbeat) {
        hb.authlog = Some(self.authlog_stats());
        hb.ssh_whitelist = Some(self.ssh_whitelist_report());
    }
}
