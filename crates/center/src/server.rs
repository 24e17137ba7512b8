//! Builds the center from its configuration and runs both listeners and the background jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::gateway::Gateway;
use crate::state::AppState;
use crate::{api, console, install, metrics, tls};
use hostward_store::{DEFAULT_PROJECT, Store};

/// A started center.
pub struct Running {
    pub state: AppState,
    pub api_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Stops accepting console/API connections and lets requests in flight finish.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// Who builds the state: the serving center, or an admin command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Admin,
}

/// Where a running center told agents and browsers to reach it; admin commands print install
/// commands with these, not with whatever their own flags would default to.
#[derive(Debug, Serialize, Deserialize)]
struct Endpoints {
    public_url: String,
    gateway_url: String,
}

const ENDPOINTS_FILE: &str = "endpoints.json";

/// The state the handlers see, without listeners. Admin CLI commands act through it, so they
/// pass the same checks as the API.
pub async fn state(mut cfg: Config, mode: Mode) -> anyhow::Result<AppState> {
    hostward_pki::install_default_provider();
    let reissue = match mode {
        Mode::Serve => tls::Reissue::OnNameChange,
        Mode::Admin => tls::Reissue::Never,
    };
    let pki = tls::load_or_create(&cfg.data_dir, &cfg.server_names, reissue)?;
    let endpoints_path = cfg.data_dir.join(ENDPOINTS_FILE);
    match mode {
        Mode::Serve => {
            let e = Endpoints {
                public_url: cfg.public_url.clone(),
                gateway_url: cfg.gateway_url.clone(),
            };
            tls::write_file(
                &endpoints_path,
                serde_json::to_string_pretty(&e)?.as_bytes(),
                0o644,
            )?;
        }
        Mode::Admin => {
            if let Ok(text) = std::fs::read_to_string(&endpoints_path) {
                let e: Endpoints = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", endpoints_path.display()))?;
                cfg.public_url = e.public_url;
                cfg.gateway_url = e.gateway_url;
            }
        }
    }
    let store = Store::connect(&cfg.database_url)
        .await
        .context("opening the database")?;
    store.ensure_project(DEFAULT_PROJECT).await?;
    let config = Arc::new(cfg);
    let gateway = Gateway::new(store.clone(), config.clone());
    Ok(AppState {
        store,
        config,
        pki: Arc::new(pki),
        gateway,
        metrics: metrics::handle(),
        analyzer: Default::default(),
        notifier: Default::default(),
    })
}

/// Binds both listeners and starts serving in the background.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let nofile = raise_fd_limit();
    let max_console = crate::listen::console_max_connections(nofile, cfg.console.max_connections)?;
    let state = state(cfg, Mode::Serve).await?;
    let config = state.config.clone();
    let gateway = state.gateway.clone();

    let install = install::InstallSettings {
        center_url: config.public_url.clone(),
        spki_pin: state.pki.spki_pin.clone(),
        agent_binary: config.agent_binary.clone(),
        scanner_binary: config.scanner_path.clone(),
    };
    let app = Router::new()
        .merge(api::router())
        .merge(console::router())
        .merge(install::router(install))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::render))
        .layer(axum::middleware::from_fn(crate::listen::security_headers))
        .with_state(state.clone());

    let api_listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let api_addr = api_listener.local_addr()?;
    let tls_config = hostward_pki::server_config(&state.pki.chain_pem, &state.pki.server_key_pem)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let console = crate::listen::Console {
        listener: api_listener,
        tls: Arc::new(tls_config),
        app,
        limits: config.console.clone(),
        max_connections: max_console,
    };
    tokio::spawn(console.serve(stopped));

    let gw_listener = tokio::net::TcpListener::bind(config.gateway_listen)
        .await
        .with_context(|| format!("binding {}", config.gateway_listen))?;
    let gateway_addr = gw_listener.local_addr()?;
    let gw_state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::gateway::serve(gw_state, gw_listener).await {
            tracing::error!(error = %e, "agent gateway failed");
        }
    });
    gateway.spawn_jobs();
    spawn_housekeeping(state.clone());
    crate::capabilities::spawn_jobs(&state);
    tracing::info!(console = %config.public_url, %api_addr, %gateway_addr, gateway_url = %config.gateway_url, max_console, open_files = nofile, "center started");
    Ok(Running {
        state,
        api_addr,
        gateway_addr,
        stop,
    })
}

fn spawn_housekeeping(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = state.store.purge_expired_sessions().await {
                tracing::error!(error = %e, "purging expired sessions failed");
            }
        }
    });
}

/// One file descriptor per agent connection: lift the soft limit to the hard one. Returns the
/// limit in force, from which the console's connection cap is derived.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(error = %e, soft, hard, "could not raise the open-files limit");
            return soft;
        }
        return hard;
    }
    soft
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
