//! An agent under test: its state dir, enrollment, and a running `hostward-agent run` whose
//! runtime sensor, file integrity monitor, malware scanning and first risk scan are off unless
//! the test turns them on (agents see
//! every process and every change of /etc on the host, and tests of other areas must not raise
//! each other's alarms).

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use crate::*;

/// An agent: a state dir, enrolled or not, and maybe a running `hostward-agent run`.
pub struct Agent {
    pub label: String,
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub agent_id: String,
    pub server_id: String,
    /// `--sensor` for `run`: `off` unless a behaviour test sets `auto` or `proc`.
    pub sensor: &'static str,
    /// `--fim` for `run`: `off` unless a file-protection test sets `on` (the monitor sees
    /// every test's changes of /etc).
    pub fim: &'static str,
    /// `--malware` for `run`: `off` unless a malware test sets `on` (real time holds every
    /// program's first run on the host for a scan).
    pub malware: &'static str,
    /// `--first-risk-scan` for `run`: `off` unless a risk test sets `on` (a scan a minute after
    /// start reads every account's password hash on the host and its software).
    pub first_risk_scan: &'static str,
    proc: Option<Proc>,
}

impl Agent {
    /// A fresh, not yet enrolled agent dir.
    pub fn new(env: &TestEnv, label: &str) -> Agent {
        let dir = env.subdir(&format!("agent-{label}"));
        Agent {
            label: format!("agent[{label}]"),
            state_dir: dir.join("state"),
            dir,
            agent_id: String::new(),
            server_id: String::new(),
            sensor: "off",
            fim: "off",
            malware: "off",
            first_risk_scan: "off",
            proc: None,
        }
    }

    /// `hostward-agent enroll` against `center_url` with any token and fingerprint; returns the
    /// output whatever the exit code (negative tests look at it).
    pub async fn try_enroll(
        &self,
        center_url: &str,
        token: &str,
        ca_sha256: &str,
    ) -> Result<Output> {
        let args: Vec<String> = [
            "enroll",
            "--center",
            center_url,
            "--token",
            token,
            "--ca-sha256",
            ca_sha256,
            "--state-dir",
            &self.state_dir.display().to_string(),
            "--allow-unsupported",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = run_cmd(&bin("hostward-agent")?, &args, None).await?;
        let log = self.dir.join("enroll.log");
        let _ = std::fs::write(&log, out.to_string());
        Ok(out)
    }

    /// Enrolls with `token` at `center` and reads the new identity.
    pub async fn enroll(&mut self, env: &TestEnv, center: &Center, token: &str) -> Result<()> {
        env.add_log(
            &format!("{} enroll", self.label),
            &self.dir.join("enroll.log"),
        );
        self.try_enroll(&center.url(), token, &center.ca_fingerprint()?)
            .await?
            .ok()?;
        let id = self.identity()?;
        self.agent_id = id["agent_id"].as_str().unwrap_or_default().to_string();
        self.server_id = id["server_id"].as_str().unwrap_or_default().to_string();
        ensure!(
            !self.agent_id.is_empty() && !self.server_id.is_empty(),
            "identity.json lacks ids: {id}"
        );
        Ok(())
    }

    /// A new agent, enrolled with a fresh token of the default project, and running.
    pub async fn start(env: &TestEnv, center: &Center, label: &str) -> Result<Agent> {
        let token = center.create_token(&["--name", label]).await?;
        let mut agent = Agent::new(env, label);
        agent.enroll(env, center, &token.secret).await?;
        agent.run(env)?;
        Ok(agent)
    }

    pub fn identity(&self) -> Result<Value> {
        let p = self.state_dir.join("identity.json");
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn cert_pem(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.state_dir.join("agent.crt"))?)
    }

    pub fn key_pem(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.state_dir.join("agent.key"))?)
    }

    /// Starts `hostward-agent run`. Its stderr goes to `<dir>/agent.stderr.log` (appended).
    pub fn run(&mut self, env: &TestEnv) -> Result<()> {
        self.run_with(env, &[])
    }

    /// As [`Agent::run`], with extra arguments to `run` (e.g. `--config FILE`).
    pub fn run_with(&mut self, env: &TestEnv, extra: &[&str]) -> Result<()> {
        if self.is_running() {
            bail!("{} is already running", self.label);
        }
        let mut cmd = command(bin("hostward-agent")?);
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(extra)
            .env("HOSTWARD_AGENT_SENSOR", self.sensor)
            .env("HOSTWARD_AGENT_FIM", self.fim)
            .env("HOSTWARD_AGENT_MALWARE", self.malware)
            .env("HOSTWARD_AGENT_FIRST_RISK_SCAN", self.first_risk_scan)
            .env("RUST_LOG", "info");
        self.proc = Some(Proc::spawn(env, &self.label, cmd, &self.dir, "agent")?);
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    pub fn proc(&mut self) -> Result<&mut Proc> {
        self.proc
            .as_mut()
            .ok_or_else(|| anyhow!("{} was never started", self.label))
    }

    pub async fn kill9(&mut self) -> Result<()> {
        self.proc()?.kill9().await?;
        Ok(())
    }

    /// SIGTERM; returns the exit status.
    pub async fn term(&mut self) -> Result<ExitStatus> {
        self.proc()?.term(secs(30)).await
    }

    /// stderr of the current (or last) run only.
    pub fn stderr(&self) -> String {
        self.proc.as_ref().map(Proc::stderr).unwrap_or_default()
    }

    /// stderr of every run.
    pub fn all_stderr(&self) -> String {
        read_from(&self.dir.join("agent.stderr.log"), 0)
    }

    /// Waits until the current run's stderr contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        wait_until(
            &format!("{} to log {needle:?}", self.label),
            timeout,
            millis(50),
            || async {
                let log = self.stderr();
                if log.contains(needle) {
                    Ok(log)
                } else {
                    Err(anyhow!("{}", tail(&log, 5)))
                }
            },
        )
        .await
    }

    pub fn state_args(&self) -> Vec<String> {
        vec!["--state-dir".into(), self.state_dir.display().to_string()]
    }

    /// `hostward-agent emit --event-type T --count N`.
    pub async fn emit(&self, event_type: &str, count: u32) -> Result<Output> {
        let mut args: Vec<String> = vec!["emit".into()];
        args.extend(self.state_args());
        args.extend([
            "--event-type".into(),
            event_type.into(),
            "--count".into(),
            count.to_string(),
        ]);
        run_cmd(&bin("hostward-agent")?, &args, None).await?.ok()
    }

    /// `hostward-agent status` JSON.
    pub async fn status(&self) -> Result<Value> {
        let mut args: Vec<String> = vec!["status".into()];
        args.extend(self.state_args());
        let out = run_cmd(&bin("hostward-agent")?, &args, None).await?.ok()?;
        serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("agent status is not JSON: {}", out.stdout))
    }
}
