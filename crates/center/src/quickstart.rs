//! `hostward up`: a center on SQLite plus a local agent enrolled to it, in one command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::api;
use crate::auth::{Principal, Role};
use crate::config::ServeArgs;
use crate::state::AppState;
use hostward_store::DEFAULT_PROJECT;

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Where the center keeps its CA, database and the local agent's state.
    #[arg(long, default_value = "./hostward-data")]
    pub data_dir: PathBuf,
    /// Console/API address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Agent gateway address.
    #[arg(long, default_value = "127.0.0.1:10180")]
    pub gateway_listen: SocketAddr,
    /// Agent heartbeat interval in seconds.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// Do not start a local agent.
    #[arg(long)]
    pub no_agent: bool,
    /// The agent binary. Default: `hostward-agent` beside this binary.
    #[arg(long)]
    pub agent_binary: Option<PathBuf>,
    /// Log filter for the JSON logs on stderr.
    #[arg(long, default_value = "warn")]
    pub log: String,
}

/// Creates the first administrator if there are no users yet. Returns the user name and the
/// one-time password to show the operator; the password is not stored anywhere in clear.
///
/// Replicas started together on an empty database all get here: the one whose insert wins
/// shows the password, the others find the administrator there (the user name's unique key
/// decides) and start normally.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<(String, String)>> {
    if !state.store.list_users().await?.is_empty() {
        return Ok(None);
    }
    let project = state.store.ensure_project(DEFAULT_PROJECT).await?;
    let password = crate::auth::random_password();
    let input = api::users::CreateUser {
        username: "admin".into(),
        password: password.clone(),
        is_superadmin: true,
        project_id: Some(project.id),
        role: Some(Role::Admin),
    };
    match api::users::create(state, &Principal::system(), input).await {
        Ok(_) => Ok(Some(("admin".into(), password))),
        Err(e) if e.code == "conflict" && !state.store.list_users().await?.is_empty() => {
            tracing::info!("another replica created the first administrator");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("{}: {}", e.code, e.message)),
    }
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    crate::cli::init_logging(&args.log);
    let data_dir = absolute(&args.data_dir)?;
    let host = args.listen.ip();
    let url_host = if host.is_ipv6() {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let serve = ServeArgs {
        data_dir: Some(data_dir.clone()),
        listen: Some(args.listen),
        gateway_listen: Some(args.gateway_listen),
        public_url: Some(format!("https://{url_host}:{}", args.listen.port())),
        heartbeat_secs: Some(args.heartbeat_secs),
        agent_binary: args.agent_binary.clone(),
        log: Some(args.log.clone()),
        ..Default::default()
    };
    let cfg = serve.resolve(&data_dir)?;
    let running = crate::server::start(cfg).await?;
    let state = running.state.clone();
    let admin = bootstrap_admin(&state).await?;

    let mut agent = None;
    if !args.no_agent {
        agent = Some(start_local_agent(&state, &data_dir.join("agent")).await?);
    }

    println!("Hostward is running.");
    println!("  Console:    {}", state.config.public_url);
    match &admin {
        Some((user, password)) => {
            println!("  User:       {user}");
            println!("  Password:   {password}   (one-time: shown only now)");
        }
        None => println!(
            "  User:       existing users kept (reset a password with `hostward user passwd NAME --data-dir {}`)",
            data_dir.display()
        ),
    }
    println!(
        "  CA SHA-256: {}   (your browser will warn: the certificate is from this center's own CA, {}/ca.crt)",
        state.pki.ca_fingerprint,
        data_dir.display()
    );
    if agent.is_some() {
        println!(
            "  Local agent: enrolled, state in {}/agent",
            data_dir.display()
        );
    }
    println!("Press Ctrl-C to stop.");

    crate::server::shutdown_signal().await;
    if let Some(mut child) = agent {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    running.shutdown();
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

async fn start_local_agent(
    state: &AppState,
    state_dir: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let bin = &state.config.agent_binary;
    if !bin.exists() {
        bail!(
            "agent binary {} not found (build it, or pass --agent-binary, or --no-agent)",
            bin.display()
        );
    }
    if !state_dir.join("identity.json").exists() {
        let project = state.store.ensure_project(DEFAULT_PROJECT).await?;
        let input = api::tokens::CreateEnrollmentToken {
            project_id: Some(project.id),
            name: "quickstart".into(),
            region: Some("local".into()),
            expires_in_secs: Some(600),
            allowed_cidrs: Some(vec![]),
            max_uses: Some(1),
        };
        let token = api::tokens::create(state, &Principal::system(), input)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let out = tokio::process::Command::new(bin)
            .arg("enroll")
            .arg("--center")
            .arg(&state.config.public_url)
            .arg("--token")
            .arg(&token.secret)
            .arg("--ca-sha256")
            .arg(&state.pki.ca_fingerprint)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--allow-unsupported")
            .output()
            .await
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "the local agent could not enroll: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let log =
        std::fs::File::create(state_dir.join("agent.log")).context("creating the agent log")?;
    let child = tokio::process::Command::new(bin)
        .arg("run")
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two replicas started together on an empty database both run; one creates the first
    /// administrator and the other finds it there.
    #[tokio::test]
    async fn replicas_starting_together_create_one_first_administrator() {
        for e in crate::console::testutil::envs().await {
            let b = e.backend;
            let (one, two) = tokio::join!(bootstrap_admin(&e.state), bootstrap_admin(&e.state));
            let one = one.unwrap_or_else(|err| panic!("[{b}] first: {err:#}"));
            let two = two.unwrap_or_else(|err| panic!("[{b}] second: {err:#}"));
            assert_eq!(
                usize::from(one.is_some()) + usize::from(two.is_some()),
                1,
                "[{b}] exactly one creates the administrator"
            );
            assert_eq!(e.state.store.list_users().await.unwrap().len(), 1, "[{b}]");
            assert!(bootstrap_admin(&e.state).await.unwrap().is_none(), "[{b}]");
        }
    }
}
