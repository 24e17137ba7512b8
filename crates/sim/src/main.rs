//! hostward-sim: N agents in one process, each with its own key and real certificate, speaking
//! the real protocol through the agent runtime's own link code: failover among the center's
//! advertised gateways, and optionally `sim` events at a set rate through an in-memory outbox
//! per agent (resent after a lost session until acked). Prints a JSON status line every 5 s
//! (`--status-secs`: sessions, events produced/sent/acked/pending, failovers) and a final one on
//! exit, and per task when the first and the last agent received it (broadcast latency).

mod outbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use hostward_agent_core::enroll::{self, CenterUrl, EnrollError};
use hostward_agent_core::link::gateways::Gateways;
use hostward_agent_core::link::{self, GatewayAddr, Incoming, WsStream, backoff};
use hostward_agent_core::util;
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_proto::{
    EnrollRequest, Envelope, Event, Heartbeat, HostFacts, Message, TaskState, TaskUpdate,
};
use outbox::Outbox;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

#[derive(Parser, Debug)]
#[command(
    name = "hostward-sim",
    version,
    about = "Simulates N Hostward agents against a center, with real certificates and the real protocol."
)]
struct Args {
    /// URL of the center's console/API port, e.g. https://center.example:8443.
    #[arg(long, value_name = "URL")]
    center: String,
    /// Enrollment token used to enroll the simulated agents (never logged).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HOSTWARD_ENROLL_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// SHA-256 fingerprint of the center's CA certificate.
    #[arg(long = "ca-sha256", value_name = "HEX")]
    ca_sha256: String,
    /// Number of agents to simulate.
    #[arg(long, value_name = "N")]
    agents: usize,
    /// New sessions opened per second.
    #[arg(long, value_name = "N", default_value_t = 500.0)]
    ramp_per_sec: f64,
    /// Seed for host names, jitter and back-off, so runs are repeatable.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Heartbeat period per agent, in seconds; 0 follows the center's config.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    heartbeat_secs: u64,
    /// Where enrolled identities are cached, so reruns reuse them instead of enrolling again.
    #[arg(long, value_name = "DIR", default_value = "./hostward-sim-state")]
    state_dir: PathBuf,
    /// Stop after this many seconds (agents say bye); 0 runs until Ctrl-C.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    duration_secs: u64,
    /// Enrollments in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    enroll_concurrency: usize,
    /// Log level for the JSON logs on stderr.
    #[arg(long, value_name = "FILTER", default_value = "warn")]
    log_level: String,
    /// Events (type `sim`) each agent produces per minute, with jitter; kept in memory until
    /// acked and resent after a lost session. 0 sends none. SIGUSR1 stops producing (what is
    /// pending still goes), so a run can wait for `events_pending` to reach 0.
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    events_per_min: f64,
    /// Share (0 to 1) of those records that are `alarm` records instead: brute-force alarms,
    /// each with a key of its own (so each is a new alarm on the center, which notifies), for
    /// the notification benchmark. Counted with the events.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    alarm_share: f64,
    /// Seconds between two JSON status lines on stdout.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    status_secs: f64,
}

/// A cached identity: what one simulated agent needs to connect again.
#[derive(Serialize, Deserialize)]
struct SimIdentity {
    agent_id: String,
    server_id: String,
    gateway_url: String,
    cert_pem: String,
    key_pem: String,
}

#[derive(Default)]
struct Stats {
    connected: AtomicU64,
    /// Sessions that got their config (the center has stored the hello).
    configured: AtomicU64,
    connecting: AtomicU64,
    /// Agents waiting to retry after a failed connect or a lost session.
    failed: AtomicU64,
    connect_errors: AtomicU64,
    refused: AtomicU64,
    tasks_received: AtomicU64,
    heartbeats_sent: AtomicU64,
    /// Sessions established at another gateway than the agent's previous session.
    failovers: AtomicU64,
    /// Sessions that ended without the agent stopping (dropped, closed by the center).
    sessions_lost: AtomicU64,
    events_produced: AtomicU64,
    /// Event frames sent, resends included.
    events_sent: AtomicU64,
    events_acked: AtomicU64,
    /// Produced, not yet acked.
    events_pending: AtomicU64,
    /// Not queued because the agent's outbox was full.
    events_dropped: AtomicU64,
    /// Agents whose gateway list holds more than the enrolled one (the center advertised others).
    multi_gateway: AtomicU64,
    /// Set by SIGUSR1: agents stop producing events.
    stopped_producing: std::sync::atomic::AtomicBool,
    tasks: Mutex<HashMap<String, TaskStat>>,
}

struct TaskStat {
    kind: String,
    received_by: u64,
    first_ms: u64,
    last_ms: u64,
    dirty: bool,
}

impl Stats {
    fn task_received(&self, id: &str, kind: &str) {
        self.tasks_received.fetch_add(1, Ordering::Relaxed);
        let now = util::unix_now_ms();
        let mut tasks = self.tasks.lock().unwrap();
        let t = tasks.entry(id.to_string()).or_insert_with(|| TaskStat {
            kind: kind.to_string(),
            received_by: 0,
            first_ms: now,
            last_ms: now,
            dirty: true,
        });
        t.received_by += 1;
        t.last_ms = now;
        t.dirty = true;
    }

    fn status(&self, started: std::time::Instant) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "elapsed_secs": started.elapsed().as_secs(),
            "unix_ms": util::unix_now_ms(),
            "connected": g(&self.connected),
            "configured": g(&self.configured),
            "connecting": g(&self.connecting),
            "failed": g(&self.failed),
            "connect_errors": g(&self.connect_errors),
            "refused": g(&self.refused),
            "failovers": g(&self.failovers),
            "sessions_lost": g(&self.sessions_lost),
            "multi_gateway": g(&self.multi_gateway),
            "tasks_received": g(&self.tasks_received),
            "heartbeats_sent": g(&self.heartbeats_sent),
            "events_produced": g(&self.events_produced),
            "events_sent": g(&self.events_sent),
            "events_acked": g(&self.events_acked),
            "events_pending": g(&self.events_pending),
            "events_dropped": g(&self.events_dropped),
            "producing": !self.stopped_producing.load(Ordering::Relaxed),
        })
    }

    /// The status line, then the tasks seen since the last one (all of them in the final one).
    fn print(&self, started: std::time::Instant, last: bool) {
        let mut status = self.status(started);
        if last {
            status["final"] = true.into();
        }
        println!("{status}");
        let all_tasks = last;
        let mut tasks = self.tasks.lock().unwrap();
        for (id, t) in tasks.iter_mut().filter(|(_, t)| t.dirty || all_tasks) {
            t.dirty = false;
            println!(
                "{}",
                serde_json::json!({
                    "task_id": id,
                    "task_kind": t.kind,
                    "received_by": t.received_by,
                    "first_unix_ms": t.first_ms,
                    "last_unix_ms": t.last_ms,
                })
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    hostward_pki::install_default_provider();
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(args.ramp_per_sec > 0.0, "--ramp-per-sec must be positive");
    anyhow::ensure!(
        args.events_per_min.is_finite() && args.events_per_min >= 0.0,
        "--events-per-min must be 0 or more"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.alarm_share),
        "--alarm-share must be 0 to 1"
    );
    anyhow::ensure!(
        args.status_secs.is_finite() && args.status_secs >= 0.05,
        "--status-secs must be at least 0.05"
    );
    raise_nofile(args.agents);
    let identities = enroll_all(&args).await?;
    let stats = Arc::new(Stats::default());
    let started = std::time::Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);

    let printer = {
        let stats = stats.clone();
        let every = Duration::from_secs_f64(args.status_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                stats.print(started, false);
            }
        })
    };
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("installing the SIGUSR1 handler")?;
    let usr1_watch = {
        let stats = stats.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                stats.stopped_producing.store(true, Ordering::Relaxed);
                eprintln!("hostward-sim: SIGUSR1: no more events are produced");
            }
        })
    };

    let ca_pem = Arc::new(std::fs::read_to_string(
        args.state_dir.join(enroll::CA_FILE),
    )?);
    let heartbeat = (args.heartbeat_secs > 0).then(|| Duration::from_secs(args.heartbeat_secs));
    let event_every =
        (args.events_per_min > 0.0).then(|| Duration::from_secs_f64(60.0 / args.events_per_min));
    let mut agents = tokio::task::JoinSet::new();
    let spawner = {
        let stats = stats.clone();
        let stop_rx = stop_rx.clone();
        let seed = args.seed;
        async move {
            let mut ramp = tokio::time::interval(Duration::from_secs_f64(1.0 / args.ramp_per_sec));
            ramp.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for (i, id) in identities.into_iter().enumerate() {
                ramp.tick().await;
                if *stop_rx.borrow() {
                    break;
                }
                let agent = SimAgent::new(
                    i,
                    seed,
                    id,
                    ca_pem.clone(),
                    heartbeat,
                    event_every,
                    args.alarm_share,
                    stats.clone(),
                );
                agents.spawn(agent.run(stop_rx.clone()));
            }
            agents
        }
    };

    let deadline = async {
        if args.duration_secs > 0 {
            tokio::time::sleep(Duration::from_secs(args.duration_secs)).await
        } else {
            std::future::pending().await
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(spawner, deadline, ctrl_c);
    let mut agents = tokio::select! {
        a = &mut spawner => Some(a),
        _ = &mut deadline => None,
        _ = &mut ctrl_c => None,
    };
    if agents.is_some() {
        tokio::select! {
            _ = &mut deadline => {}
            _ = &mut ctrl_c => {}
        }
    }
    let _ = stop_tx.send(true);
    let agents = match agents.take() {
        Some(a) => a,
        None => spawner.await,
    };
    // Sessions say bye; give them a bounded time to do so.
    let _ = tokio::time::timeout(Duration::from_secs(10), agents.join_all()).await;
    printer.abort();
    usr1_watch.abort();
    stats.print(started, true);
    Ok(())
}

fn raise_nofile(agents: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard
                && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            {
                tracing::warn!(error = %e, "could not raise the open-files limit");
            }
            if (hard as usize) < agents + 64 {
                tracing::warn!(
                    hard,
                    agents,
                    "open-files hard limit is below the agent count; some sessions will fail"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the open-files limit"),
    }
}

/// Enrolls the agents not yet in the cache, `enroll_concurrency` at a time.
async fn enroll_all(args: &Args) -> Result<Vec<SimIdentity>> {
    let pin = hostward_pki::normalize_fingerprint(&args.ca_sha256).with_context(|| {
        format!(
            "--ca-sha256 {:?} is not a SHA-256 fingerprint",
            args.ca_sha256
        )
    })?;
    let center = CenterUrl::parse(&args.center)?;
    let agents_dir = args.state_dir.join("agents");
    let ca_path = args.state_dir.join(enroll::CA_FILE);
    // Identities from another center (another CA) are useless: start over.
    let cached_ca_ok = std::fs::read_to_string(&ca_path)
        .ok()
        .and_then(|pem| hostward_pki::fingerprint_sha256(&pem).ok())
        .is_some_and(|fp| fp == hex_of(&pin));
    if !cached_ca_ok && agents_dir.exists() {
        std::fs::remove_dir_all(&agents_dir)
            .with_context(|| format!("clearing {}", agents_dir.display()))?;
    }
    std::fs::create_dir_all(&agents_dir)
        .with_context(|| format!("creating {}", agents_dir.display()))?;

    let mut identities: Vec<Option<SimIdentity>> = (0..args.agents)
        .map(|i| load_identity(&agents_dir, i))
        .collect();
    let missing: Vec<usize> = identities
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_none())
        .map(|(i, _)| i)
        .collect();
    if missing.is_empty() {
        eprintln!("hostward-sim: reusing {} cached identities", args.agents);
        return Ok(identities.into_iter().flatten().collect());
    }

    let ca_pem = match enroll::first_contact(&center, pin).await {
        Ok(pem) => pem,
        Err(e) => bail!("{e}"),
    };
    util::write_atomic(&ca_path, ca_pem.as_bytes(), 0o644)?;
    let client = enroll::http_client(&ca_pem)?;
    eprintln!(
        "hostward-sim: enrolling {} agents ({} cached)",
        missing.len(),
        args.agents - missing.len()
    );

    let limit = Arc::new(Semaphore::new(args.enroll_concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in missing {
        let permit = limit.clone().acquire_owned().await.expect("semaphore open");
        let (client, center, token, dir, seed) = (
            client.clone(),
            center.clone(),
            args.token.clone(),
            agents_dir.clone(),
            args.seed,
        );
        set.spawn(async move {
            let _permit = permit;
            let r = enroll_one(&client, &center, &token, seed, i).await;
            if let Ok(id) = &r {
                let path = identity_path(&dir, i);
                let text = serde_json::to_string(id).expect("identity serialises");
                if let Err(e) = util::write_atomic(&path, text.as_bytes(), 0o600) {
                    return (i, Err(EnrollError::Other(e)));
                }
            }
            (i, r)
        });
    }
    let mut failures = 0usize;
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.context("enrollment task panicked")?;
        match r {
            Ok(id) => identities[i] = Some(id),
            Err(e) => {
                failures += 1;
                if let EnrollError::Refused { code, .. } = &e
                    && enroll::is_token_error(code)
                {
                    set.abort_all();
                    bail!("{e}");
                }
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let ready: Vec<SimIdentity> = identities.into_iter().flatten().collect();
    if failures > 0 {
        eprintln!(
            "hostward-sim: {failures} enrollments failed (first: {}); continuing with {}",
            first_error.unwrap_or_default(),
            ready.len()
        );
    }
    if ready.is_empty() {
        bail!("no agent could be enrolled");
    }
    Ok(ready)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn identity_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:06}.json"))
}

fn load_identity(dir: &Path, i: usize) -> Option<SimIdentity> {
    serde_json::from_str(&std::fs::read_to_string(identity_path(dir, i)).ok()?).ok()
}

fn sim_facts(seed: u64, i: usize) -> HostFacts {
    HostFacts {
        hostname: format!("sim-{seed}-{i:06}"),
        os_id: "debian".into(),
        os_version: "12".into(),
        os_name: "Debian GNU/Linux 12 (simulated)".into(),
        kernel: "6.1.0-sim".into(),
        arch: "x86_64".into(),
        ips: vec![format!(
            "10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )],
        boot_time: util::unix_now() - 86_400,
    }
}

async fn enroll_one(
    client: &enroll::HttpClient,
    center: &CenterUrl,
    token: &str,
    seed: u64,
    i: usize,
) -> Result<SimIdentity, EnrollError> {
    let facts = sim_facts(seed, i);
    let (key_pem, csr_pem) =
        hostward_pki::agent_key_and_csr(&facts.hostname).map_err(anyhow::Error::from)?;
    let req = EnrollRequest {
        token: token.to_string(),
        csr_pem,
        facts,
        install_id: None,
    };
    let resp = enroll::post_enroll(client, center, &req).await?;
    link::parse_gateway_url(&resp.gateway_url)?;
    Ok(SimIdentity {
        agent_id: resp.agent_id,
        server_id: resp.server_id,
        gateway_url: resp.gateway_url,
        cert_pem: resp.cert_pem,
        key_pem,
    })
}

/// Records sent but not yet acked in one session, at most (the real agent's window).
const SEND_WINDOW: usize = 512;

struct SimAgent {
    index: usize,
    seed: u64,
    identity: SimIdentity,
    ca_pem: Arc<String>,
    heartbeat: Option<Duration>,
    rng: StdRng,
    stats: Arc<Stats>,
    outbox: Outbox,
    /// Mean time between two events; None produces none.
    event_every: Option<Duration>,
    /// Share of them that are alarms.
    alarm_share: f64,
    /// When this agent started (ms): alarm keys are new in every run, so none is a repeat of
    /// an open alarm from an earlier run (which the center would only count).
    started_ms: u64,
    next_event: Option<tokio::time::Instant>,
    events_made: u64,
}

enum End {
    Stopped,
    Lost { configured: bool },
}

/// Resolves at `at`; never when there is no next event.
async fn due(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl SimAgent {
    #[allow(clippy::too_many_arguments)]
    fn new(
        index: usize,
        seed: u64,
        identity: SimIdentity,
        ca_pem: Arc<String>,
        heartbeat: Option<Duration>,
        event_every: Option<Duration>,
        alarm_share: f64,
        stats: Arc<Stats>,
    ) -> SimAgent {
        let mut rng =
            StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        // The first event lands anywhere in the period, so agents do not produce in step.
        let next_event =
            event_every.map(|p| tokio::time::Instant::now() + p.mul_f64(rng.random::<f64>()));
        SimAgent {
            index,
            seed,
            identity,
            ca_pem,
            heartbeat,
            rng,
            stats,
            outbox: Outbox::new(outbox::MAX_RECORDS),
            event_every,
            alarm_share,
            started_ms: util::unix_now_ms(),
            next_event,
            events_made: 0,
        }
    }

    /// Queues one `sim` event and schedules the next (mean period ±50 %).
    fn produce(&mut self) {
        let Some(period) = self.event_every else {
            return;
        };
        if self.stats.stopped_producing.load(Ordering::Relaxed) {
            self.next_event = None;
            return;
        }
        self.events_made += 1;
        let event = if self.alarm_share > 0.0 && self.rng.random_bool(self.alarm_share) {
            let n = self.events_made;
            Message::Alarm(Alarm {
                ts: util::unix_now(),
                alarm_type: "brute_force".into(),
                key: format!("sim-{}-{}-{n}", self.started_ms, self.index),
                count: 1,
                evidence: Evidence {
                    source_ip: Some(format!("198.18.{}.{}", (n >> 8) & 0xff, n & 0xff)),
                    users: vec!["root".into()],
                    service: Some("ssh".into()),
                    ..Default::default()
                },
            })
        } else {
            Message::Event(Event {
                ts: util::unix_now(),
                event_type: "sim".into(),
                data: serde_json::json!({ "agent": self.index, "n": self.events_made }),
            })
        };
        let s = &self.stats;
        s.events_produced.fetch_add(1, Ordering::Relaxed);
        if self.outbox.push(event) {
            s.events_pending.fetch_add(1, Ordering::Relaxed);
        } else {
            s.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        let base = self.next_event.unwrap_or_else(tokio::time::Instant::now);
        let next = base + period.mul_f64(self.rng.random_range(0.5..1.5));
        // After a stall (a busy runtime), do not fire a burst to catch up.
        self.next_event = Some(next.max(tokio::time::Instant::now()));
    }

    /// Waits until `until` (or a stop), producing events meanwhile.
    async fn pause(&mut self, until: tokio::time::Instant, stop: &mut watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = link::stopped(stop) => return,
                _ = due(self.next_event) => self.produce(),
            }
        }
    }

    /// Connects to the current gateway as the real daemon does: on a failed connect or a lost
    /// session it moves to the next gateway the center advertised after a short jittered pause,
    /// and backs off (full jitter, growing) once every gateway failed since the last good
    /// session.
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let tls = match hostward_pki::client_config(
            &self.ca_pem,
            Some((&self.identity.cert_pem, &self.identity.key_pem)),
        ) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(agent = self.index, error = %e, "bad cached identity");
                return;
            }
        };
        let mut gateways = Gateways::load(&self.identity.gateway_url, None);
        let mut attempt = 0u32;
        let mut last_url: Option<String> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            // The enrolled URL was checked at enrollment, advertised ones by `Gateways`.
            let gw = match link::parse_gateway_url(gateways.current()) {
                Ok(gw) => gw,
                Err(e) => {
                    tracing::error!(agent = self.index, error = %e, "bad gateway URL");
                    return;
                }
            };
            let s = self.stats.clone();
            s.connecting.fetch_add(1, Ordering::Relaxed);
            let connected = {
                let connect = link::connect(&gw, tls.clone());
                tokio::pin!(connect);
                loop {
                    tokio::select! {
                        r = &mut connect => break Some(r),
                        _ = link::stopped(&mut stop) => break None,
                        _ = due(self.next_event) => self.produce(),
                    }
                }
            };
            s.connecting.fetch_sub(1, Ordering::Relaxed);
            let Some(connected) = connected else { return };
            match connected {
                Ok(mut ws) => {
                    if last_url.as_deref().is_some_and(|u| u != gw.url) {
                        s.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    last_url = Some(gw.url.clone());
                    s.connected.fetch_add(1, Ordering::Relaxed);
                    let end = self.session(&mut ws, &gw, &mut stop, &mut gateways).await;
                    s.connected.fetch_sub(1, Ordering::Relaxed);
                    if matches!(end, End::Lost { .. }) {
                        s.sessions_lost.fetch_add(1, Ordering::Relaxed);
                    }
                    match end {
                        End::Stopped => return,
                        End::Lost { configured: true } => {
                            attempt = 0;
                            gateways.worked();
                        }
                        End::Lost { .. } => {}
                    }
                }
                Err(e) => {
                    s.connect_errors.fetch_add(1, Ordering::Relaxed);
                    if matches!(e, link::ConnectError::Refused { .. }) {
                        s.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(agent = self.index, gateway = %gw.url, error = %e, "connect failed");
                }
            }
            // daemon.rs: the next gateway after a short jittered pause; the full back-off once
            // every gateway failed since the last good session.
            let unit = self.rng.random::<f64>();
            let delay = if gateways.failed() {
                let d = backoff::full_jitter(attempt, backoff::BASE, backoff::CAP, unit);
                attempt = attempt.saturating_add(1);
                d
            } else {
                backoff::full_jitter(0, backoff::BASE / 2, backoff::CAP, unit)
            };
            s.failed.fetch_add(1, Ordering::Relaxed);
            self.pause(tokio::time::Instant::now() + delay, &mut stop)
                .await;
            s.failed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn next_heartbeat(&mut self, period: Duration, first: bool) -> tokio::time::Instant {
        // The first beat lands anywhere in the period so a ramped fleet does not beat in step;
        // later ones keep ±10 % jitter.
        let factor = if first {
            self.rng.random::<f64>()
        } else {
            self.rng.random_range(0.9..1.1)
        };
        tokio::time::Instant::now() + period.mul_f64(factor)
    }

    /// Sends the records after `sent_upto` that fit in the window, in seq order.
    async fn send_pending(&mut self, ws: &mut WsStream, sent_upto: &mut u64) -> Result<(), ()> {
        for (seq, json, event) in self.outbox.next_batch(*sent_upto, SEND_WINDOW) {
            ws.send(link::WsMessage::text(json)).await.map_err(|_| ())?;
            if event {
                self.stats.events_sent.fetch_add(1, Ordering::Relaxed);
            }
            *sent_upto = seq;
        }
        Ok(())
    }

    fn acked(&mut self, seq: u64) {
        let a = self.outbox.ack(seq);
        let s = &self.stats;
        s.events_acked.fetch_add(a.events, Ordering::Relaxed);
        s.events_pending.fetch_sub(a.events, Ordering::Relaxed);
    }

    async fn session(
        &mut self,
        ws: &mut WsStream,
        gw: &GatewayAddr,
        stop: &mut watch::Receiver<bool>,
        gateways: &mut Gateways,
    ) -> End {
        let mut configured = false;
        let end = self.frames(ws, gw, stop, gateways, &mut configured).await;
        if configured {
            self.stats.configured.fetch_sub(1, Ordering::Relaxed);
        }
        end
    }

    /// hello, then frames both ways; every unacked record goes again after `config`.
    async fn frames(
        &mut self,
        ws: &mut WsStream,
        gw: &GatewayAddr,
        stop: &mut watch::Receiver<bool>,
        gateways: &mut Gateways,
        configured: &mut bool,
    ) -> End {
        let facts = sim_facts(self.seed, self.index);
        let last_seq = self.outbox.hello_seq();
        if link::send(ws, &link::hello(facts, 0, last_seq, ""))
            .await
            .is_err()
        {
            return End::Lost { configured: false };
        }
        let mut sent_upto = 0u64;
        let mut period = self.heartbeat.unwrap_or(link::DEFAULT_HEARTBEAT);
        let mut next_hb = self.next_heartbeat(period, true);
        loop {
            if *configured && self.send_pending(ws, &mut sent_upto).await.is_err() {
                return End::Lost { configured: true };
            }
            let lost = End::Lost {
                configured: *configured,
            };
            tokio::select! {
                _ = link::stopped(stop) => {
                    link::goodbye(ws, "agent_stopped").await;
                    return End::Stopped;
                }
                msg = ws.next() => {
                    let Some(Ok(msg)) = msg else { return lost };
                    match link::decode(msg) {
                        Incoming::Frame(env) => match env.msg {
                            Message::Config(c) => {
                                if !*configured {
                                    *configured = true;
                                    self.stats.configured.fetch_add(1, Ordering::Relaxed);
                                }
                                let before = gateways.len();
                                gateways.update(&c.gateways);
                                if before == 1 && gateways.len() > 1 {
                                    self.stats.multi_gateway.fetch_add(1, Ordering::Relaxed);
                                }
                                if self.heartbeat.is_none() && c.heartbeat_secs > 0 && Duration::from_secs(c.heartbeat_secs) != period {
                                    period = Duration::from_secs(c.heartbeat_secs);
                                    next_hb = self.next_heartbeat(period, true);
                                }
                            }
                            Message::Ack(a) => self.acked(a.seq),
                            Message::Task(t) => {
                                self.stats.task_received(&t.id, &t.kind);
                                // Through the outbox, so it keeps its place in seq order.
                                self.outbox.push(Message::TaskUpdate(TaskUpdate {
                                    task_id: t.id,
                                    state: TaskState::Done,
                                    output: serde_json::json!({ "simulated": true, "pong": true }),
                                }));
                            }
                            Message::Error(e) => tracing::warn!(agent = self.index, code = %e.code, message = %e.message, "center error"),
                            _ => {}
                        },
                        Incoming::Bad(e) => tracing::warn!(agent = self.index, error = %e, "undecodable frame"),
                        Incoming::Closed(reason) => {
                            tracing::warn!(agent = self.index, gateway = %gw.url, reason, "center closed the session");
                            return lost;
                        }
                        Incoming::Ignore => {}
                    }
                }
                _ = tokio::time::sleep_until(next_hb) => {
                    let hb = Envelope::control(Message::Heartbeat(Heartbeat { now: util::unix_now(), ..Heartbeat::default() }));
                    if link::send(ws, &hb).await.is_err() {
                        return lost;
                    }
                    self.stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                    next_hb = self.next_heartbeat(period, false);
                }
                _ = due(self.next_event) => self.produce(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stats_track_first_and_last_receipt() {
        let s = Stats::default();
        s.task_received("t1", "ping");
        std::thread::sleep(Duration::from_millis(5));
        s.task_received("t1", "ping");
        s.task_received("t2", "collect_facts");
        let tasks = s.tasks.lock().unwrap();
        let t1 = &tasks["t1"];
        assert_eq!((t1.kind.as_str(), t1.received_by), ("ping", 2));
        assert!(t1.last_ms >= t1.first_ms + 5);
        assert_eq!(s.tasks_received.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn facts_are_distinct_and_repeatable() {
        assert_eq!(sim_facts(1, 7).hostname, "sim-1-000007");
        assert_ne!(sim_facts(1, 7).ips, sim_facts(1, 8).ips);
        assert_eq!(sim_facts(1, 70_000).ips, vec!["10.1.17.112".to_string()]);
    }

    #[test]
    fn cached_identities_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_identity(dir.path(), 3).is_none());
        let id = SimIdentity {
            agent_id: "a".into(),
            server_id: "s".into(),
            gateway_url: "wss://h:1/agent/v1".into(),
            cert_pem: "c".into(),
            key_pem: "k".into(),
        };
        std::fs::write(
            identity_path(dir.path(), 3),
            serde_json::to_string(&id).unwrap(),
        )
        .unwrap();
        assert_eq!(load_identity(dir.path(), 3).unwrap().agent_id, "a");
    }

    #[test]
    fn cli_has_help_for_every_flag() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        for arg in Args::command().get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" {
                assert!(arg.get_help().is_some(), "--{} lacks help", arg.get_id());
            }
        }
    }
}
