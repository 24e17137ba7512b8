//! Risk scans on the host: weak passwords, the password-complexity policy, the configuration
//! baselines, and a fresh software inventory for the center's vulnerability matching. One runner owns the scans, so a scan task
//! and the daily scan never run at once; it runs the daily scan at a random point of the
//! policy's window (server local time), scan tasks when asked, and a first scan a minute after
//! it starts on a host it never scanned (the center's risk status is `pending` until every
//! check has reported once). Results leave as one durable `risk` record per scan.
//!
//! One module per check: `weak_password` (libxcrypt via `crypt`), `password_policy`,
//! `baseline` (the SCA policies, shipped and imported; a verification re-runs one); `fix` runs
//! one-click package upgrades; `schedule` decides when the daily scan runs. The software
//! collection comes from the inventory module's handle, which the module list passes in.

pub mod baseline;
pub mod crypt;
pub mod fix;
pub mod password_policy;
pub mod schedule;
pub mod weak_password;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use hostward_agent_core::module::{BoxFuture, Module};
use hostward_agent_core::util::unix_now;
use hostward_agent_core::{RecordSender, tasks};
use hostward_proto::baseline::BaselinePolicy;
use hostward_proto::inventory::{CollectNow, InventoryKind};
use hostward_proto::risk::{
    FIX_TASK, FixRequest, RiskPolicy, RiskReport, SCAN_TASK, ScanCheck, ScanRequest, ScanTrigger,
};
use hostward_proto::{AgentConfig, Message, Task};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

/// `[risk]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run the first full scan a minute after start on a host this agent never scanned
    /// (`false`: the first scan waits for the policy's nightly window). The `--first-risk-scan`
    /// flag of `run` overrides it.
    pub first_scan: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { first_scan: true }
    }
}

/// How long after start the first scan waits: the center's policy and the inventory's first
/// collection arrive meanwhile.
const FIRST_SCAN_DELAY: Duration = Duration::from_secs(60);

/// The file in the state dir whose presence says a scan completed on this host.
const SCANNED_MARK: &str = "risk-scanned";

/// What a scan did, as the task result reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub checks: Vec<ScanCheck>,
    pub started_at: i64,
    pub finished_at: i64,
    /// Software inventory kinds collected for the vulnerability check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software: Option<Vec<crate::inventory::Summary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_passwords: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts_checked: Option<u32>,
    /// False when the weak-password check ran out of its time budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_failed: Option<usize>,
    /// Baseline checks that ran and those that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_checks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_failed: Option<usize>,
    /// Imported policies that could not run, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_issues: Option<Vec<String>>,
}

struct Job {
    req: ScanRequest,
    task_id: Option<String>,
    reply: oneshot::Sender<Result<ScanSummary, String>>,
}

/// Handle the daemon keeps: push the policy, ask for scans and fixes.
#[derive(Clone)]
pub struct Handle {
    policy: watch::Sender<RiskPolicy>,
    baseline: watch::Sender<BaselinePolicy>,
    jobs: mpsc::Sender<Job>,
    /// To re-collect the software inventory after a fix.
    inventory: Option<crate::inventory::Handle>,
}

impl Handle {
    pub fn set_policy(&self, policy: RiskPolicy) {
        self.policy.send_if_modified(|p| {
            let changed = *p != policy;
            *p = policy;
            changed
        });
    }

    /// The policy in force (the center's last push, else the defaults).
    pub fn policy(&self) -> RiskPolicy {
        self.policy.borrow().clone()
    }

    /// Scans now (after a scan already running) and returns when the report is queued.
    pub async fn scan_now(
        &self,
        req: ScanRequest,
        task_id: Option<String>,
    ) -> Result<ScanSummary, String> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                req,
                task_id,
                reply,
            })
            .await
            .map_err(|_| "the risk scanner stopped".to_string())?;
        rx.await
            .map_err(|_| "the risk scanner stopped".to_string())?
    }
}

/// Starts the scanner on the current runtime; it stops when every [`Handle`] is dropped.
/// `root` is the filesystem the checks read (`/`, or a fixture tree in tests).
pub fn spawn(
    cfg: &Config,
    root: PathBuf,
    state_dir: &Path,
    outbox: RecordSender,
    inventory: Option<crate::inventory::Handle>,
) -> Handle {
    let (policy_tx, policy_rx) = watch::channel(RiskPolicy::default());
    let (baseline_tx, baseline_rx) = watch::channel(BaselinePolicy::default());
    let (jobs_tx, jobs_rx) = mpsc::channel(8);
    let mark = state_dir.join(SCANNED_MARK);
    let scanner = Scanner {
        root,
        baseline: baseline_rx,
        outbox,
        inventory: inventory.clone(),
        first: (cfg.first_scan && !mark.exists())
            .then(|| tokio::time::Instant::now() + FIRST_SCAN_DELAY),
        mark,
    };
    tokio::spawn(scanner.run(policy_rx, jobs_rx));
    Handle {
        policy: policy_tx,
        baseline: baseline_tx,
        jobs: jobs_tx,
        inventory,
    }
}

impl Handle {
    /// Upgrades packages (params: `{"manager": "dpkg"|"rpm", "packages": [...]}`) if the policy
    /// allows one-click fixes, then re-collects the software inventory so the center verifies
    /// the fix at once.
    async fn fix(&self, task: &Task) -> Result<serde_json::Value, String> {
        let req: FixRequest =
            serde_json::from_value(task.params.clone()).map_err(|e| format!("bad params: {e}"))?;
        if !self.policy().allow_fix {
            return Err("one-click fixes are off in this server's risk policy".to_string());
        }
        let out = fix::run(&req).await?;
        if let Some(inv) = &self.inventory {
            let again = CollectNow {
                kinds: vec![InventoryKind::Software],
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
    }
}

impl Module for Handle {
    fn name(&self) -> &'static str {
        "risk"
    }

    fn task_kinds(&self) -> &'static [&'static str] {
        &[SCAN_TASK, FIX_TASK]
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        // A section that does not decode keeps the policy in force (the center validates every
        // policy it stores, so this is a version mismatch worth a loud line, not a reset).
        match cfg.section() {
            Ok(policy) => self.set_policy(policy),
            Err(e) => tracing::error!("{e}; keeping the current risk policy"),
        }
        match cfg.section::<BaselinePolicy>() {
            Ok(b) => {
                self.baseline.send_if_modified(|p| {
                    let changed = *p != b;
                    *p = b;
                    changed
                });
            }
            Err(e) => tracing::error!("{e}; keeping the current baseline policy"),
        }
        Box::pin(async {})
    }

    /// `risk_scan` (params: `{"checks": [...]}`, optional) scans now and reports what it
    /// found; `vuln_fix` runs [`Handle::fix`].
    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            if task.kind == FIX_TASK {
                return self.fix(task).await;
            }
            let req: ScanRequest = tasks::params(task)?;
            let summary = self.scan_now(req, Some(task.id.clone())).await?;
            serde_json::to_value(summary).map_err(|e| e.to_string())
        })
    }
}

struct Scanner {
    root: PathBuf,
    /// The project's baseline policy, read at each scan.
    baseline: watch::Receiver<BaselinePolicy>,
    outbox: RecordSender,
    inventory: Option<crate::inventory::Handle>,
    /// When the first scan on this host is due (None: done before, or turned off).
    first: Option<tokio::time::Instant>,
    /// Written after any scan completed: no first scan on the next start.
    mark: PathBuf,
}

/// The wall clock is re-read at least this often while waiting for the daily scan, so a clock
/// step or a suspended VM does not push the scan off by hours.
const CLOCK_RECHECK: Duration = Duration::from_secs(60);

fn draw_next(now: i64, policy: &RiskPolicy) -> Option<i64> {
    policy.daily_scan.then(|| {
        schedule::next_scan_at(
            now,
            hostward_agent_core::util::local_offset_secs(now),
            policy,
            rand::random::<f64>(),
            rand::random::<f64>(),
        )
    })
}

impl Scanner {
    async fn run(mut self, mut policy: watch::Receiver<RiskPolicy>, mut jobs: mpsc::Receiver<Job>) {
        let mut next = draw_next(unix_now(), &policy.borrow_and_update());
        if let Some(at) = next {
            tracing::info!(next_scan_at = at, "daily risk scan scheduled");
        }
        loop {
            let wait = match next {
                Some(at) => Duration::from_secs(at.saturating_sub(unix_now()).max(0) as u64)
                    .min(CLOCK_RECHECK),
                None => CLOCK_RECHECK,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(self.first.unwrap_or_else(tokio::time::Instant::now)), if self.first.is_some() => {
                    self.first = None;
                    let pol = policy.borrow().clone();
                    if let Err(e) = self.scan(&ScanRequest::default(), ScanTrigger::First, None, &pol).await {
                        tracing::error!(error = %e, "first risk scan failed");
                    }
                    crate::mem::release_after_job().await;
                }
                _ = tokio::time::sleep(wait) => {
                    if next.is_some_and(|at| unix_now() >= at) {
                        let pol = policy.borrow().clone();
                        if let Err(e) = self.scan(&ScanRequest::default(), ScanTrigger::Scheduled, None, &pol).await {
                            tracing::error!(error = %e, "daily risk scan failed");
                        }
                        next = draw_next(unix_now(), &pol);
                        tracing::info!(next_scan_at = ?next, "daily risk scan done");
                        crate::mem::release_after_job().await;
                    }
                }
                changed = policy.changed() => {
                    if changed.is_err() { return; }
                    let pol = policy.borrow_and_update().clone();
                    next = draw_next(unix_now(), &pol);
                    tracing::info!(next_scan_at = ?next, "risk policy applied");
                }
                job = jobs.recv() => {
                    let Some(job) = job else { return };
                    let pol = policy.borrow().clone();
                    let out = self.scan(&job.req, ScanTrigger::Task, job.task_id, &pol).await;
                    let _ = job.reply.send(out);
                    crate::mem::release_after_job().await;
                }
            }
        }
    }

    async fn scan(
        &self,
        req: &ScanRequest,
        trigger: ScanTrigger,
        task_id: Option<String>,
        policy: &RiskPolicy,
    ) -> Result<ScanSummary, String> {
        let started_at = unix_now();
        let checks: Vec<ScanCheck> = ScanCheck::ALL
            .into_iter()
            .filter(|c| req.wants(*c))
            .collect();
        tracing::info!(?checks, ?trigger, "risk scan started");
        let mut software = None;
        if req.wants(ScanCheck::Vulnerabilities) {
            let inv = self
                .inventory
                .as_ref()
                .ok_or("the inventory runner is not running")?;
            let req = CollectNow {
                kinds: vec![InventoryKind::Software],
                full: false,
            };
            software = Some(inv.collect_now(req).await.map_err(|e| e.to_string())?);
        }
        let weak_passwords = if req.wants(ScanCheck::WeakPasswords) {
            let root = self.root.clone();
            let custom = policy.custom_weak_passwords.clone();
            let budget = Duration::from_secs(u64::from(policy.weak_password_budget_secs));
            Some(
                tokio::task::spawn_blocking(move || {
                    weak_password::check(&weak_password::Config {
                        root: &root,
                        custom: &custom,
                        budget,
                    })
                })
                .await
                .map_err(|e| format!("weak-password check: {e}"))?,
            )
        } else {
            None
        };
        let password_policy = if req.wants(ScanCheck::PasswordPolicy) {
            let root = self.root.clone();
            Some(
                tokio::task::spawn_blocking(move || password_policy::check(&root))
                    .await
                    .map_err(|e| format!("password-policy check: {e}"))?,
            )
        } else {
            None
        };
        let baselines = if req.wants(ScanCheck::Baselines) {
            let root = self.root.clone();
            let pol = self.baseline.borrow().clone();
            let only = req.verify.clone();
            Some(
                tokio::task::spawn_blocking(move || baseline::check(&root, &pol, only.as_ref()))
                    .await
                    .map_err(|e| format!("baseline check: {e}"))?,
            )
        } else {
            None
        };
        let finished_at = unix_now();
        let baseline_results = || {
            baselines
                .iter()
                .flat_map(|b| &b.policies)
                .flat_map(|p| &p.checks)
        };
        let summary = ScanSummary {
            checks: checks.clone(),
            started_at,
            finished_at,
            software,
            weak_passwords: weak_passwords.as_ref().map(|w| w.findings.len()),
            accounts_checked: weak_passwords.as_ref().map(|w| w.accounts_checked),
            complete: weak_passwords.as_ref().map(|w| w.complete),
            policy_failed: password_policy
                .as_ref()
                .map(|p| p.checks.iter().filter(|c| !c.pass).count()),
            baseline_checks: baselines.as_ref().map(|_| baseline_results().count()),
            baseline_failed: baselines.as_ref().map(|_| {
                baseline_results()
                    .filter(|c| c.result == hostward_proto::baseline::Outcome::Fail)
                    .count()
            }),
            baseline_issues: baselines
                .as_ref()
                .map(|b| b.issues.clone())
                .filter(|i| !i.is_empty()),
        };
        let all_checks = checks.len() == ScanCheck::ALL.len() && req.verify.is_none();
        let report = RiskReport {
            task_id,
            trigger,
            started_at,
            finished_at,
            checks,
            weak_passwords,
            password_policy,
            baselines,
        };
        match self.outbox.push(&Message::Risk(report)).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err("outbox full: the scan report was dropped".into()),
            Err(e) => return Err(format!("queueing the scan report: {e}")),
        }
        if all_checks && let Err(e) = std::fs::write(&self.mark, b"") {
            tracing::warn!(error = %e, path = %self.mark.display(), "the first-scan mark was not written: the next start scans again");
        }
        tracing::info!(
            weak_passwords = ?summary.weak_passwords,
            policy_failed = ?summary.policy_failed,
            baseline_failed = ?summary.baseline_failed,
            secs = finished_at - started_at,
            "risk scan finished"
        );
        Ok(summary)
    }
}
