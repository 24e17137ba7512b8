//! The agent's only connection: a WebSocket over mutual TLS 1.3 to the center's gateway.
//!
//! [`connect`] and the frame helpers are shared with `hostward-sim`; [`run`] is the daemon loop:
//! connect → session → back-off with full jitter → again, until SIGTERM/SIGINT.

pub mod backoff;
pub mod outbox;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures_util::{SinkExt as _, StreamExt as _};
use hostward_proto::{
    AgentConfig, Bye, DecodeError, Envelope, Heartbeat, Hello, HostFacts, MAX_FRAME_BYTES, Message,
    PROTOCOL_VERSION,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::enroll::Credentials;
use crate::tasks;
use outbox::Outbox;

pub use tungstenite::Message as WsMessage;

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;
pub type WsStream = tokio_tungstenite::WebSocketStream<TlsStream>;

/// Until the center's first `config` says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Another process (`hostward-agent emit`) may add records; this is how soon they leave.
const OUTBOX_POLL: Duration = Duration::from_millis(500);
/// Records sent but not yet acked, at most. Bounds memory on both ends after a long outage.
const SEND_WINDOW: u64 = 512;
const SEND_BATCH: u32 = 128;
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Where the gateway is, from `identity.json`'s `gateway_url` (`wss://host:port/agent/v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayAddr {
    pub url: String,
    pub host: String,
    pub port: u16,
}

pub fn parse_gateway_url(url: &str) -> Result<GatewayAddr> {
    let rest = url
        .strip_prefix("wss://")
        .ok_or_else(|| anyhow!("gateway URL {url:?} must start with wss://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("gateway URL {url:?}: unclosed [ in host"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        anyhow::bail!("gateway URL {url:?} has no host");
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow!("gateway URL {url:?}: bad port {p:?}"))?,
        None => 443,
    };
    Ok(GatewayAddr {
        url: url.to_string(),
        host,
        port,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The center answered the upgrade with an error, e.g. 403 `revoked`.
    #[error("center refused the connection: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("TLS handshake with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// WebSocket limits: frames up to the protocol maximum, small buffers because an agent (and a
/// simulator holding thousands of sessions) mostly idles.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// TCP + TLS (client certificate) + WebSocket upgrade, all under one timeout.
pub async fn connect(
    gw: &GatewayAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<WsStream, ConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(gw, tls))
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::Other(format!(
                "connecting to {}: timed out",
                gw.url
            )))
        })
}

async fn connect_inner(
    gw: &GatewayAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<WsStream, ConnectError> {
    let addr = format!("{}:{}", crate::enroll::bracket(&gw.host), gw.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| ConnectError::Other(format!("connecting to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(gw.host.clone())
        .map_err(|e| ConnectError::Other(format!("invalid gateway host {:?}: {e}", gw.host)))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls {
            addr: addr.clone(),
            detail: e.to_string(),
        })?;
    match tokio_tungstenite::client_async_with_config(gw.url.as_str(), stream, Some(ws_config()))
        .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_deref().unwrap_or_default();
            let (code, message) = crate::enroll::parse_error_body(status, body);
            Err(ConnectError::Refused {
                status,
                code,
                message,
            })
        }
        Err(e) => Err(ConnectError::Other(format!(
            "WebSocket upgrade at {}: {e}",
            gw.url
        ))),
    }
}

pub async fn send(ws: &mut WsStream, env: &Envelope) -> Result<(), tungstenite::Error> {
    ws.send(WsMessage::text(env.to_json())).await
}

/// What a WebSocket message means to the agent.
// Short-lived, one at a time: boxing the frame would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    Frame(Envelope),
    Bad(DecodeError),
    /// The center closed the session, with its reason if it gave one.
    Closed(String),
    /// Ping/pong and other transport-level messages.
    Ignore,
}

pub fn decode(msg: WsMessage) -> Incoming {
    match msg {
        WsMessage::Text(t) => match Envelope::from_json(t.as_str()) {
            Ok(env) => Incoming::Frame(env),
            Err(e) => Incoming::Bad(e),
        },
        WsMessage::Binary(_) => Incoming::Bad(DecodeError::Malformed(
            "binary frame; frames are JSON text".into(),
        )),
        WsMessage::Close(frame) => Incoming::Closed(
            frame
                .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                .unwrap_or_default(),
        ),
        _ => Incoming::Ignore,
    }
}

pub fn hello(facts: HostFacts, config_version: i64, last_seq: u64) -> Envelope {
    Envelope::control(Message::Hello(Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: PROTOCOL_VERSION,
        now: unix_now(),
        facts,
        config_version,
        last_seq,
    }))
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends `bye`, then closes the WebSocket and waits briefly for the center's close reply so the
/// center sees a clean end rather than a dropped connection.
pub async fn goodbye(ws: &mut WsStream, reason: &str) {
    let _ = send(
        ws,
        &Envelope::control(Message::Bye(Bye {
            reason: reason.to_string(),
        })),
    )
    .await;
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Resolves once `stop` is true. The guard `wait_for` returns is dropped here, so callers'
/// futures stay `Send`; a dropped sender never stops anyone.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why the agent is stopping: `system_shutdown` when systemd says the system is going down.
pub async fn stop_reason() -> &'static str {
    let out = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::process::Command::new("systemctl")
            .arg("is-system-running")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(o)) if String::from_utf8_lossy(&o.stdout).trim() == "stopping" => "system_shutdown",
        _ => "agent_stopped",
    }
}

/// What the daemon keeps between sessions.
pub struct Daemon {
    pub creds: Credentials,
    pub outbox: Outbox,
    /// Root for facts (tests point it at fixtures).
    pub facts_root: PathBuf,
    config: Option<AgentConfig>,
    recent_tasks: tasks::Recent,
    cpu: CpuSampler,
    inventory: Option<crate::inventory::Handle>,
    risk: Option<crate::risk::Handle>,
    detect: Option<crate::detect::runner::Handle>,
}

enum SessionEnd {
    Stopped,
    Lost { configured: bool, why: String },
}

impl Daemon {
    pub fn new(creds: Credentials, outbox: Outbox) -> Daemon {
        Daemon {
            creds,
            outbox,
            facts_root: PathBuf::from("/"),
            config: None,
            recent_tasks: tasks::Recent::default(),
            cpu: CpuSampler::new(),
            inventory: None,
            risk: None,
            detect: None,
        }
    }

    /// Hands the brute-force defence block and unblock tasks.
    pub fn with_detect(mut self, handle: crate::detect::runner::Handle) -> Daemon {
        self.detect = Some(handle);
        self
    }

    /// Hands the risk scanner the pushed policy and scan and fix tasks.
    pub fn with_risk(mut self, handle: crate::risk::Handle) -> Daemon {
        self.risk = Some(handle);
        self
    }

    /// Hands the inventory runner the pushed policy and "collect now" tasks.
    pub fn with_inventory(mut self, handle: crate::inventory::Handle) -> Daemon {
        self.inventory = Some(handle);
        self
    }

    /// Runs until `stop` turns true. Returns Ok after a graceful stop.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let gw = parse_gateway_url(&self.creds.identity.gateway_url)?;
        let tls = self.creds.tls_config()?;
        let mut attempt: u32 = 0;
        loop {
            let connected = tokio::select! {
                r = connect(&gw, tls.clone()) => r,
                _ = stopped(&mut stop) => return self.finish().await,
            };
            match connected {
                Ok(mut ws) => {
                    tracing::info!(gateway = %gw.url, agent_id = %self.creds.identity.agent_id, "connected to the center");
                    match self.session(&mut ws, &mut stop).await {
                        SessionEnd::Stopped => return self.finish().await,
                        SessionEnd::Lost { configured, why } => {
                            tracing::warn!(reason = %why, "session ended");
                            if configured {
                                attempt = 0;
                            }
                        }
                    }
                }
                Err(ConnectError::Refused {
                    status,
                    code,
                    message,
                }) => {
                    // Revoked, unknown or mismatched identity: say why, loudly. Retrying is
                    // still right: an operator may fix it on the center.
                    tracing::error!(status, code = %code, message = %message,
                        "center refused the connection: {code}: {message}");
                }
                Err(e) => tracing::warn!(gateway = %gw.url, "{e}"),
            }
            let delay = backoff::delay(attempt);
            attempt = attempt.saturating_add(1);
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                attempt,
                "reconnecting after back-off"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => return self.finish().await,
            }
        }
    }

    async fn finish(&self) -> Result<()> {
        self.outbox.close().await;
        tracing::info!("agent stopped");
        Ok(())
    }

    fn heartbeat_period(&self) -> Duration {
        match &self.config {
            Some(c) if c.heartbeat_secs > 0 => Duration::from_secs(c.heartbeat_secs),
            _ => DEFAULT_HEARTBEAT,
        }
    }

    async fn session(&mut self, ws: &mut WsStream, stop: &mut watch::Receiver<bool>) -> SessionEnd {
        let last_seq = self.outbox.last_seq().await.unwrap_or(0);
        let facts = crate::facts::collect(&self.facts_root);
        let version = self.config.as_ref().map_or(0, |c| c.version);
        if let Err(e) = send(ws, &hello(facts, version, last_seq)).await {
            return SessionEnd::Lost {
                configured: false,
                why: format!("sending hello: {e}"),
            };
        }
        let mut configured = false;
        let mut sent_upto: u64 = 0;
        let mut acked: u64 = 0;
        let mut pump = false;
        let mut bad_frames: u64 = 0;
        let mut hb = heartbeat_timer(self.heartbeat_period());
        let mut poll = tokio::time::interval(OUTBOX_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        macro_rules! lost {
            ($why:expr) => {
                SessionEnd::Lost {
                    configured,
                    why: $why,
                }
            };
        }

        loop {
            if configured && pump {
                match self.send_pending(ws, &mut sent_upto, acked).await {
                    Ok(more) => pump = more,
                    Err(why) => return lost!(why),
                }
            }
            tokio::select! {
                _ = stopped(stop) => {
                    let reason = stop_reason().await;
                    tracing::info!(reason, "stopping: saying bye to the center");
                    goodbye(ws, reason).await;
                    return SessionEnd::Stopped;
                }
                msg = ws.next() => {
                    let msg = match msg {
                        None => return lost!("connection closed".into()),
                        Some(Err(e)) => return lost!(format!("connection error: {e}")),
                        Some(Ok(m)) => m,
                    };
                    match decode(msg) {
                        Incoming::Frame(env) => match env.msg {
                            Message::Config(cfg) => {
                                let period_changed = self.config.as_ref().map(|c| c.heartbeat_secs) != Some(cfg.heartbeat_secs);
                                tracing::info!(version = cfg.version, heartbeat_secs = cfg.heartbeat_secs,
                                    protection_enabled = cfg.protection_enabled, "config applied");
                                if let Some(inv) = &self.inventory {
                                    inv.set_policy(cfg.inventory.clone());
                                }
                                if let Some(risk) = &self.risk {
                                    risk.set_policy(cfg.risk.clone());
                                }
                                if let Some(detect) = &self.detect {
                                    detect.set_enabled(cfg.protection_enabled).await;
                                    detect.set_policy(cfg.bruteforce.clone()).await;
                                    detect.set_login_ips(cfg.login_ips.clone()).await;
                                }
                                self.config = Some(cfg);
                                if period_changed {
                                    hb = heartbeat_timer(self.heartbeat_period());
                                }
                                configured = true;
                                pump = true;
                            }
                            Message::Ack(a) => {
                                if let Err(e) = self.outbox.ack(a.seq).await {
                                    tracing::error!(error = %e, "could not delete acked records");
                                }
                                acked = acked.max(a.seq);
                                pump = true;
                            }
                            Message::Task(task) => self.start_task(task),
                            Message::Error(e) => tracing::warn!(code = %e.code, message = %e.message, "center reported an error"),
                            other => tracing::debug!(?other, "ignoring a frame the center should not send"),
                        },
                        Incoming::Bad(e) => {
                            bad_frames += 1;
                            tracing::warn!(code = e.code(), error = %e, bad_frames, "undecodable frame from the center");
                        }
                        Incoming::Closed(reason) => return lost!(format!("center closed the session {reason}").trim_end().to_string()),
                        Incoming::Ignore => {}
                    }
                }
                _ = hb.tick() => {
                    let frame = self.heartbeat().await;
                    if let Err(e) = send(ws, &frame).await {
                        return lost!(format!("sending heartbeat: {e}"));
                    }
                }
                _ = self.outbox.queued() => pump = true,
                // A backlog larger than one batch keeps flowing without waiting for the poll.
                _ = std::future::ready(()), if configured && pump => {}
                _ = poll.tick() => pump = true,
            }
        }
    }

    /// Sends records not yet sent in this session, in seq order, within the ack window.
    /// Returns whether more may be waiting.
    async fn send_pending(
        &self,
        ws: &mut WsStream,
        sent_upto: &mut u64,
        acked: u64,
    ) -> Result<bool, String> {
        if sent_upto.saturating_sub(acked) >= SEND_WINDOW {
            return Ok(false); // the next ack reopens the window
        }
        let floor = (*sent_upto).max(acked);
        let batch = match self.outbox.unsent_after(floor, SEND_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox");
                return Ok(false);
            }
        };
        // A batch may stop short at its byte budget: anything sent means more may wait.
        let more = !batch.is_empty();
        for env in &batch {
            send(ws, env)
                .await
                .map_err(|e| format!("sending record {}: {e}", env.seq))?;
            *sent_upto = env.seq;
        }
        Ok(more)
    }

    fn start_task(&mut self, task: hostward_proto::Task) {
        if !self.recent_tasks.first_time(&task.id) {
            tracing::info!(task_id = %task.id, "task delivered again; already started");
            return;
        }
        tracing::info!(task_id = %task.id, kind = %task.kind, "task received");
        let outbox = self.outbox.clone();
        let root = self.facts_root.clone();
        let inventory = self.inventory.clone();
        let risk = self.risk.clone();
        let detect = self.detect.clone();
        // Results go to the outbox, not the socket, so they survive a disconnect.
        tokio::spawn(async move {
            if let Err(e) = outbox
                .push(&Message::TaskUpdate(tasks::running(&task)))
                .await
            {
                tracing::error!(task_id = %task.id, error = %e, "could not queue task update");
            }
            let update = match task.kind.as_str() {
                tasks::COLLECT_INVENTORY => {
                    tasks::collect_inventory(&task, unix_now(), inventory.as_ref()).await
                }
                tasks::RISK_SCAN => tasks::risk_scan(&task, unix_now(), risk.as_ref()).await,
                tasks::BLOCK_IP | tasks::UNBLOCK_IP => {
                    tasks::firewall(&task, unix_now(), detect.as_ref()).await
                }
                tasks::VULN_FIX => {
                    tasks::vuln_fix(&task, unix_now(), risk.as_ref(), inventory.as_ref()).await
                }
                _ => tasks::run(&task, unix_now(), &root),
            };
            tracing::info!(task_id = %task.id, state = update.state.as_str(), "task finished");
            match outbox.push(&Message::TaskUpdate(update)).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::error!(task_id = %task.id, "outbox full: task result dropped"),
                Err(e) => {
                    tracing::error!(task_id = %task.id, error = %e, "could not queue task result")
                }
            }
        });
    }

    async fn heartbeat(&mut self) -> Envelope {
        let (rss_bytes, cpu_percent) = self.cpu.sample();
        Envelope::control(Message::Heartbeat(Heartbeat {
            now: unix_now(),
            rss_bytes,
            cpu_percent,
            outbox_depth: self.outbox.depth().await.unwrap_or(0),
            outbox_dropped: self.outbox.dropped().await.unwrap_or(0),
            authlog: self.detect.as_ref().map(|d| d.authlog_stats()),
        }))
    }
}

fn heartbeat_timer(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// The agent's own RSS and CPU use, from /proc/self.
struct CpuSampler {
    ticks_per_sec: f64,
    page_size: u64,
    last: Option<(u64, std::time::Instant)>,
}

impl CpuSampler {
    fn new() -> CpuSampler {
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .unwrap_or(100);
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        let mut s = CpuSampler {
            ticks_per_sec: ticks as f64,
            page_size: page as u64,
            last: None,
        };
        s.last = read_cpu_ticks().map(|t| (t, std::time::Instant::now()));
        s
    }

    /// (RSS bytes, CPU percent of one core since the previous sample).
    fn sample(&mut self) -> (u64, f64) {
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map_or(0, |pages| pages * self.page_size);
        let now = std::time::Instant::now();
        let ticks = read_cpu_ticks();
        let cpu = match (self.last, ticks) {
            (Some((t0, i0)), Some(t1)) => {
                cpu_percent(t1.saturating_sub(t0), self.ticks_per_sec, now - i0)
            }
            _ => 0.0,
        };
        if let Some(t) = ticks {
            self.last = Some((t, now));
        }
        (rss, cpu)
    }
}

fn read_cpu_ticks() -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// utime + stime from a /proc/PID/stat line. The command name may contain spaces and
/// parentheses, so fields are counted after the last ')'.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_percent(ticks: u64, ticks_per_sec: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        ticks as f64 / ticks_per_sec / secs * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_parse() {
        let g = parse_gateway_url("wss://center.example:10180/agent/v1").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("center.example", 10180));
        let g = parse_gateway_url("wss://[::1]:10180/agent/v1").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("::1", 10180));
        assert_eq!(
            parse_gateway_url("wss://10.1.2.3/agent/v1").unwrap().port,
            443
        );
        assert!(parse_gateway_url("ws://x:1/agent/v1").is_err());
        assert!(parse_gateway_url("wss://x:port/agent/v1").is_err());
        assert!(parse_gateway_url("wss://:1/").is_err());
    }

    #[test]
    fn proc_stat_ticks_survive_odd_command_names() {
        let line = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
        let own = read_cpu_ticks();
        assert!(own.is_some());
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        assert_eq!(cpu_percent(100, 100.0, Duration::from_secs(10)), 10.0);
        assert_eq!(cpu_percent(5, 100.0, Duration::ZERO), 0.0);
    }

    #[test]
    fn frames_decode_or_are_reported_bad() {
        let ack = Envelope::control(Message::Ack(hostward_proto::Ack { seq: 3 }));
        assert!(matches!(decode(WsMessage::text(ack.to_json())), Incoming::Frame(e) if e == ack));
        assert!(
            matches!(decode(WsMessage::text("{nope")), Incoming::Bad(e) if e.code() == "malformed")
        );
        let unknown = r#"{"v":1,"seq":0,"kind":"self_destruct","body":{}}"#;
        assert!(
            matches!(decode(WsMessage::text(unknown)), Incoming::Bad(e) if e.code() == "unknown_kind")
        );
        assert!(matches!(
            decode(WsMessage::Binary(vec![1u8].into())),
            Incoming::Bad(_)
        ));
        assert!(matches!(
            decode(WsMessage::Close(None)),
            Incoming::Closed(_)
        ));
        let h = hello(HostFacts::default(), 0, 9);
        let Message::Hello(h) = h.msg else { panic!() };
        assert_eq!((h.protocol, h.last_seq), (PROTOCOL_VERSION, 9));
    }
}
