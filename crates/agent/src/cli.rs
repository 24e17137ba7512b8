//! Command line of `hostward-agent`. `main.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hostward_proto::{Event, InventoryKind, Message};
use tokio::sync::watch;

use hostward_agent_core::enroll::{self, EnrollError, EnrollOptions};
use hostward_agent_core::outbox::{self, Outbox};
use hostward_agent_core::util::{unix_now, write_atomic};
use hostward_agent_core::{Ctx, Daemon};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "hostward-agent",
    version,
    about = "Hostward agent: protects this server and reports to a Hostward center.",
    long_about = "Hostward agent: protects this server and reports to a Hostward center.\n\n\
                  The agent never listens on a port; it only connects out to its center.\n\
                  Enroll once with `enroll`, then run the daemon with `run` (normally via systemd)."
)]
pub struct Cli {
    /// Log level or tracing filter (e.g. `debug`, `hostward_agent=trace`). Overrides RUST_LOG
    /// and the config file's log_level. Logs are JSON lines on stderr.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Enroll this server with a center: verify the center's CA, get a certificate, write the state dir.
    Enroll(EnrollArgs),
    /// Run the agent daemon: connect to the center, send heartbeats and records, run tasks.
    Run(RunArgs),
    /// Queue events in the outbox for the running daemon to deliver (integration point for external detectors).
    Emit(EmitArgs),
    /// Print this agent's identity and outbox state as JSON.
    Status(StatusArgs),
    /// Collect the host inventory once and print it as JSON (nothing is sent).
    Inventory(InventoryArgs),
    /// Lift what file protection leaves on the host while the agent is stopped: the immutable
    /// attribute web tamper protection keeps on the protected directories and files, and the
    /// ransomware bait files. Run it after stopping the agent, before uninstalling it (a
    /// running agent, or the next start, puts them back from the center's policies).
    Unprotect(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// Kind to collect (repeatable): accounts, ports, processes, software, autostart,
    /// kernel_modules, middleware [default: all].
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
    pub kinds: Vec<InventoryKind>,
    /// Filesystem root to read the host under [default: the config's inventory_root, else /].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Config file [default: /etc/hostward/agent.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also print wall time, CPU time and peak RSS growth of each collection on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Collect this many times in this process (the first run hashes executables, later runs
    /// hit the hash cache as the daemon does); the output is the last run's.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Wait this long between repeated runs, so the last run's diff against the first shows
    /// what changed meanwhile.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub interval: u64,
    /// Print on stderr the bytes the first run would send as full snapshots and the last run as
    /// diffs against the first, as frames on the wire.
    #[arg(long)]
    pub wire: bool,
}

fn parse_kind(s: &str) -> Result<InventoryKind, String> {
    InventoryKind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = InventoryKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {s:?}; one of {}", all.join(", "))
    })
}

#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    /// URL of the center's console/API port, e.g. https://center.example:8443.
    #[arg(long, value_name = "URL")]
    pub center: String,
    /// Enrollment token from the console. A secret: never logged, sent only to the pinned center.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HOSTWARD_ENROLL_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// SHA-256 fingerprint of the center's CA certificate (`hostward ca fingerprint`); hex, colons allowed.
    #[arg(long = "ca-sha256", value_name = "HEX")]
    pub ca_sha256: String,
    /// State directory for identity, keys and outbox [default: the config's state_dir, else /var/lib/hostward-agent].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file to read; written with the state dir if it does not exist yet.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Id of this install run, so the center can tie install reports to it [default: random].
    #[arg(long, value_name = "ID")]
    pub install_id: Option<String>,
    /// Skip the operating-system and architecture checks.
    #[arg(long)]
    pub allow_unsupported: bool,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Config file [default: /etc/hostward/agent.toml when it exists, else built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory; overrides the config's state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Runtime sensor: `auto` (the strongest tier that loads: BPF-LSM, BPF, else the proc
    /// connector), `proc` (never load BPF), `off` (no runtime detection); overrides
    /// `[behaviour] sensor` in the config.
    #[arg(long, value_name = "TIER", env = "HOSTWARD_AGENT_SENSOR")]
    pub sensor: Option<crate::behaviour::SensorSetting>,
    /// File integrity monitoring: `on` (as the project's policy says) or `off` (never on this
    /// host); overrides `[fim] enabled` in the config.
    #[arg(long, value_name = "ON_OFF", env = "HOSTWARD_AGENT_FIM")]
    pub fim: Option<crate::fim::Switch>,
    /// Malware scanning: `on` (as the project's policy says) or `off` (never on this host);
    /// overrides `[malware] enabled` in the config.
    #[arg(long, value_name = "ON_OFF", env = "HOSTWARD_AGENT_MALWARE")]
    pub malware: Option<crate::fim::Switch>,
    /// The first full risk scan a minute after start on a host never scanned: `on`, or `off`
    /// (the first scan waits for the nightly window); overrides `[risk] first_scan`.
    #[arg(long, value_name = "ON_OFF", env = "HOSTWARD_AGENT_FIRST_RISK_SCAN")]
    pub first_risk_scan: Option<crate::fim::Switch>,
}

#[derive(clap::Args, Debug)]
pub struct EmitArgs {
    /// Event type code, e.g. `custom` or `detector.file_changed`.
    #[arg(long, value_name = "TYPE")]
    pub event_type: String,
    /// Event data as a JSON value.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub data: String,
    /// Number of events to queue.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u64,
    /// State directory; overrides the config's state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file [default: /etc/hostward/agent.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// State directory; overrides the config's state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file [default: /etc/hostward/agent.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    hostward_pki::install_default_provider();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One core is plenty for an agent; a current-thread runtime keeps threads and RSS down.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Flag, then RUST_LOG, then the config file.
fn init_logging(flag: Option<&str>, config_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match flag {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(config_level)),
    }
    .unwrap_or_else(|e| {
        eprintln!("warning: bad log filter ({e}); using info");
        EnvFilter::new("info")
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn state_dir(flag: Option<PathBuf>, cfg: &Config) -> PathBuf {
    flag.unwrap_or_else(|| cfg.state_dir.clone())
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let log_flag = cli.log_level.as_deref();
    match cli.command {
        Command::Enroll(a) => {
            // The config may not exist yet: enroll is what writes it.
            let cfg = match &a.config {
                Some(p) if p.exists() => Config::load(p)?,
                _ => Config::default(),
            };
            init_logging(log_flag, &cfg.log_level);
            let dir = state_dir(a.state_dir.clone(), &cfg);
            cmd_enroll(a, dir)
        }
        Command::Run(a) => {
            let mut cfg = Config::resolve(a.config.as_deref())?;
            if let Some(s) = a.sensor {
                cfg.behaviour.sensor = s;
            }
            if let Some(f) = a.fim {
                cfg.fim.enabled = f == crate::fim::Switch::On;
            }
            if let Some(m) = a.malware {
                cfg.malware.enabled = m == crate::fim::Switch::On;
            }
            if let Some(f) = a.first_risk_scan {
                cfg.risk.first_scan = f == crate::fim::Switch::On;
            }
            init_logging(log_flag, &cfg.log_level);
            let dir = state_dir(a.state_dir, &cfg);
            crate::mem::limit_arenas();
            runtime()?.block_on(cmd_run(dir, cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Emit(a) => {
            let cfg = Config::resolve(a.config.as_deref())?;
            init_logging(log_flag, &cfg.log_level);
            let dir = state_dir(a.state_dir.clone(), &cfg);
            runtime()?.block_on(cmd_emit(a, dir, cfg.outbox_max_records))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => {
            let cfg = Config::resolve(a.config.as_deref())?;
            init_logging(log_flag, &cfg.log_level);
            let dir = state_dir(a.state_dir, &cfg);
            runtime()?.block_on(cmd_status(dir, cfg.outbox_max_records))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Unprotect(a) => {
            let cfg = Config::resolve(a.config.as_deref())?;
            init_logging(log_flag, &cfg.log_level);
            let dir = state_dir(a.state_dir, &cfg);
            let root = cfg.inventory_root.clone();
            let unlocked =
                crate::tamper::runner::release(&root, &dir).map_err(anyhow::Error::msg)?;
            let baits = crate::ransom::runner::release(&root, &dir).map_err(anyhow::Error::msg)?;
            println!(
                "{}",
                serde_json::json!({"unlocked": unlocked, "baits_removed": baits})
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Inventory(a) => {
            let cfg = Config::resolve(a.config.as_deref())?;
            init_logging(log_flag, &cfg.log_level);
            let root = a.root.clone().unwrap_or(cfg.inventory_root);
            cmd_inventory(a, &root)
        }
    }
}

fn cmd_inventory(a: InventoryArgs, root: &Path) -> Result<ExitCode> {
    use crate::inventory::collect::{self, Ctx, HashCache};
    use crate::inventory::{Sent, diff, usage};
    let kinds = if a.kinds.is_empty() {
        InventoryKind::ALL.to_vec()
    } else {
        a.kinds.clone()
    };
    let policy = hostward_proto::InventoryPolicy::default();
    let hashes = HashCache::default();
    let ctx = Ctx {
        root,
        policy: &policy,
        hashes: &hashes,
    };
    let frame_bytes = |recs: &[hostward_proto::Inventory]| -> usize {
        recs.iter()
            .map(|r| {
                hostward_proto::Envelope::record(1, Message::Inventory(r.clone()))
                    .to_json()
                    .len()
            })
            .sum()
    };
    let mut first: Vec<(InventoryKind, Sent)> = Vec::new();
    let mut out = serde_json::Map::new();
    for run in 1..=a.repeat {
        if run > 1 && a.interval > 0 {
            std::thread::sleep(std::time::Duration::from_secs(a.interval));
        }
        let before = usage();
        let wall = std::time::Instant::now();
        let results: Vec<_> = kinds
            .iter()
            .map(|k| (*k, collect::collect(*k, &ctx)))
            .collect();
        let wall = wall.elapsed();
        let after = usage();
        if a.stats {
            eprintln!(
                "{}",
                serde_json::json!({
                    "run": run,
                    "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "wall_ms": wall.as_secs_f64() * 1e3,
                    "cpu_ms": (after.cpu_secs - before.cpu_secs) * 1e3,
                    "rss_start_kb": before.rss_kb,
                    "rss_peak_kb": after.peak_rss_kb,
                    "peak_extra_kb": after.peak_rss_kb.saturating_sub(before.rss_kb),
                })
            );
        }
        let now = unix_now();
        let last = run == a.repeat;
        out.clear();
        for (kind, c) in results {
            if last {
                out.insert(
                    kind.as_str().to_string(),
                    serde_json::json!({ "items": c.items, "issues": c.issues }),
                );
            }
            if !a.wire {
                continue;
            }
            if run == 1 {
                // What one added or changed item of this kind costs: the diff against a state
                // that lacks one key.
                let mut lacking = diff(clone_collected(&c), None, true, now).sent;
                let one = lacking.items.pop_first().map(|_| {
                    let d = diff(clone_collected(&c), Some(&lacking), false, now);
                    frame_bytes(&d.records)
                });
                let full = diff(c, None, true, now);
                eprintln!(
                    "{}",
                    serde_json::json!({"wire": "full", "kind": kind.as_str(), "items": full.items, "records": full.records.len(), "bytes": frame_bytes(&full.records), "one_change_bytes": one})
                );
                first.push((kind, full.sent));
            } else if last {
                let base = first.iter().find(|(k, _)| *k == kind).map(|(_, s)| s);
                let d = diff(c, base, false, now);
                eprintln!(
                    "{}",
                    serde_json::json!({"wire": "diff", "kind": kind.as_str(), "records": d.records.len(), "bytes": frame_bytes(&d.records)})
                );
            }
        }
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(ExitCode::SUCCESS)
}

fn clone_collected(
    c: &crate::inventory::collect::Collected,
) -> crate::inventory::collect::Collected {
    crate::inventory::collect::Collected {
        items: c.items.clone(),
        issues: c.issues.clone(),
    }
}

fn cmd_enroll(a: EnrollArgs, dir: PathBuf) -> Result<ExitCode> {
    let opts = EnrollOptions {
        center: a.center,
        token: a.token,
        ca_sha256: a.ca_sha256,
        state_dir: dir.clone(),
        install_id: a.install_id,
        allow_unsupported: a.allow_unsupported,
        facts_root: PathBuf::from("/"),
    };
    match runtime()?.block_on(enroll::enroll(&opts)) {
        Ok(id) => {
            if let Some(path) = a.config.as_deref().filter(|p| !p.exists()) {
                write_config(path, &dir)?;
            }
            let out = serde_json::json!({
                "enrolled": true,
                "agent_id": id.agent_id,
                "server_id": id.server_id,
                "state_dir": dir,
            });
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            match &e {
                EnrollError::CaMismatch(msg) => eprintln!("error: {msg}"),
                EnrollError::Preflight { cause, detail } => {
                    eprintln!("error: preflight check failed ({cause}): {detail}")
                }
                EnrollError::Refused { code, message, .. } => {
                    eprintln!("error: enrollment refused: {code}: {message}")
                }
                EnrollError::Other(err) => eprintln!("error: enrollment failed: {err:#}"),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn write_config(path: &Path, state_dir: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let cfg = Config {
        state_dir: state_dir.to_path_buf(),
        ..Config::default()
    };
    write_atomic(path, cfg.to_toml().as_bytes(), 0o644)
}

async fn open_outbox(dir: &Path, max_records: u64) -> Result<Outbox> {
    anyhow::ensure!(
        dir.is_dir(),
        "state directory {} does not exist (is this agent enrolled? run `hostward-agent enroll` first)",
        dir.display()
    );
    Outbox::open(&dir.join(outbox::FILE_NAME), max_records).await
}

async fn cmd_run(dir: PathBuf, cfg: Config) -> Result<()> {
    let inventory_root = cfg.inventory_root.clone();
    let creds = enroll::Credentials::load(&dir)?;
    anyhow::ensure!(
        dir.is_dir(),
        "state directory {} does not exist (is this agent enrolled? run `hostward-agent enroll` first)",
        dir.display()
    );
    let outbox =
        Outbox::open_or_reset(&dir.join(outbox::FILE_NAME), cfg.outbox_max_records).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        agent_id = %creds.identity.agent_id,
        state_dir = %dir.display(),
        "agent starting"
    );
    let ctx = Ctx {
        state_dir: dir,
        root: inventory_root,
        records: outbox.sender(),
    };
    let modules = crate::modules::all(&ctx, &cfg);
    Daemon::new(creds, outbox)
        .with_state_dir(&ctx.state_dir)
        .with_modules(modules)?
        .run(stop_rx)
        .await
}

async fn cmd_emit(a: EmitArgs, dir: PathBuf, max_records: u64) -> Result<()> {
    let data: serde_json::Value = serde_json::from_str(&a.data)
        .map_err(|e| anyhow::anyhow!("--data is not valid JSON: {e}"))?;
    anyhow::ensure!(
        !a.event_type.trim().is_empty(),
        "--event-type must not be empty"
    );
    let outbox = open_outbox(&dir, max_records).await?;
    let msgs: Vec<Message> = (0..a.count)
        .map(|_| {
            Message::Event(Event {
                ts: unix_now(),
                event_type: a.event_type.clone(),
                data: data.clone(),
            })
        })
        .collect();
    // All or none: a caller told "failed" knows nothing of this call was queued.
    let pushed = outbox.push_all(&msgs).await;
    outbox.close().await;
    let seqs = pushed.context("queuing the events failed; none were queued")?;
    let Some(seqs) = seqs else {
        anyhow::bail!(
            "the outbox has no room for {} more records; none were queued (counted as dropped)",
            msgs.len()
        );
    };
    println!(
        "{}",
        serde_json::json!({ "queued": seqs.len(), "dropped": 0, "first_seq": seqs.first(), "last_seq": seqs.last() })
    );
    Ok(())
}

async fn cmd_status(dir: PathBuf, max_records: u64) -> Result<()> {
    let path = dir.join(enroll::IDENTITY_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is this agent enrolled?)", path.display()))?;
    let identity: enroll::Identity =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let outbox = open_outbox(&dir, max_records).await?;
    let out = serde_json::json!({
        "agent_id": identity.agent_id,
        "server_id": identity.server_id,
        "center_url": identity.center_url,
        "gateway_url": identity.gateway_url,
        "gateways": hostward_agent_core::link::gateways::Gateways::load(
            &identity.gateway_url,
            Some(hostward_agent_core::link::gateways::Gateways::file_in(&dir)),
        )
        .urls(),
        "state_dir": dir,
        "outbox": {
            "id": outbox.id().await?,
            "depth": outbox.depth().await?,
            "dropped": outbox.dropped().await?,
            "last_seq": outbox.last_seq().await?,
            "max_records": max_records,
            "failing": outbox.failing(),
            "reset": outbox.reset().await?,
        },
    });
    outbox.close().await;
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_every_flag_has_help() {
        Cli::command().debug_assert();
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} lacks help", sub.get_name());
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{} lacks help",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "hostward-agent",
            "--log-level",
            "debug",
            "enroll",
            "--center",
            "https://c:8443",
            "--token",
            "t",
            "--ca-sha256",
            "ab",
            "--allow-unsupported",
        ])
        .unwrap();
        let Command::Enroll(a) = cli.command else {
            panic!()
        };
        assert!(a.allow_unsupported);
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
        let cli = Cli::try_parse_from([
            "hostward-agent",
            "emit",
            "--event-type",
            "custom",
            "--count",
            "3",
        ])
        .unwrap();
        let Command::Emit(a) = cli.command else {
            panic!()
        };
        assert_eq!((a.count, a.data.as_str()), (3, "{}"));
    }

    #[test]
    fn written_config_is_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/agent.toml");
        write_config(&p, Path::new("/srv/state")).unwrap();
        assert_eq!(
            Config::load(&p).unwrap().state_dir,
            PathBuf::from("/srv/state")
        );
    }
}
