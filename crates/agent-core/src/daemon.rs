//! The daemon: what the agent keeps between sessions and the session loop. It connects to one of
//! the center's gateways (moving to the next when one fails), sends `hello`, applies the
//! center's `resume` to the outbox, pumps the outbox within an ack window, hands every `config` to every module, runs each task
//! on the module that claims its kind (or runs `ping`/`collect_facts` itself), and adds each
//! module's figures to the heartbeat. It names no module: they come in as `dyn Module`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt as _;
use hostward_proto::{AgentConfig, Envelope, Heartbeat, Message};
use tokio::sync::watch;

use crate::enroll::Credentials;
use crate::link::gateways::Gateways;
use crate::link::{
    ConnectError, DEFAULT_HEARTBEAT, Incoming, WsStream, backoff, connect, decode, goodbye, hello,
    parse_gateway_url, send, stop_reason, stopped,
};
use crate::module::Module;
use crate::outbox::{Outbox, Resumed};
use crate::tasks;
use crate::util::unix_now;

/// Another process (`hostward-agent emit`) may add records; this is how soon they leave.
const OUTBOX_POLL: Duration = Duration::from_millis(500);
/// Records sent but not yet acked, at most. Bounds memory on both ends after a long outage.
const SEND_WINDOW: u64 = 512;
const SEND_BATCH: u32 = 128;

/// What the daemon keeps between sessions.
pub struct Daemon {
    pub creds: Credentials,
    pub outbox: Outbox,
    /// Root for facts (tests point it at fixtures).
    pub facts_root: PathBuf,
    gateways: Gateways,
    config: Option<AgentConfig>,
    recent_tasks: tasks::Recent,
    cpu: CpuSampler,
    /// In the order they get each config: the module list's order.
    modules: Vec<Arc<dyn Module>>,
    /// Task kind -> index into `modules`.
    routes: HashMap<&'static str, usize>,
}

enum SessionEnd {
    Stopped,
    Lost { configured: bool, why: String },
}

impl Daemon {
    pub fn new(creds: Credentials, outbox: Outbox) -> Daemon {
        Daemon {
            gateways: Gateways::load(&creds.identity.gateway_url, None),
            creds,
            outbox,
            facts_root: PathBuf::from("/"),
            config: None,
            recent_tasks: tasks::Recent::default(),
            cpu: CpuSampler::new(),
            modules: Vec::new(),
            routes: HashMap::new(),
        }
    }

    /// Keeps the center's gateway list in `state_dir` (and starts from the one saved there).
    pub fn with_state_dir(mut self, state_dir: &std::path::Path) -> Daemon {
        self.gateways = Gateways::load(
            &self.creds.identity.gateway_url,
            Some(Gateways::file_in(state_dir)),
        );
        self
    }

    /// Adds the modules that run in this agent. Fails if two claim the same task kind, or one
    /// claims a kind the runtime runs itself: which one runs it would be an accident.
    pub fn with_modules(mut self, modules: Vec<Arc<dyn Module>>) -> Result<Daemon> {
        for m in modules {
            let index = self.modules.len();
            for kind in m.task_kinds() {
                anyhow::ensure!(
                    !tasks::RUNTIME_KINDS.contains(kind),
                    "module {} claims the runtime's task kind {kind:?}",
                    m.name()
                );
                if let Some(other) = self.routes.insert(kind, index) {
                    anyhow::bail!(
                        "modules {} and {} both claim task kind {kind:?}",
                        self.modules[other].name(),
                        m.name()
                    );
                }
            }
            self.modules.push(m);
        }
        Ok(self)
    }

    /// Runs until `stop` turns true. Returns Ok after a graceful stop.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        // The enrolled gateway must parse; advertised ones were checked when they came in.
        parse_gateway_url(&self.creds.identity.gateway_url)?;
        let tls = self.creds.tls_config()?;
        let mut attempt: u32 = 0;
        loop {
            let gw = parse_gateway_url(self.gateways.current())?;
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
                            tracing::warn!(gateway = %gw.url, reason = %why, "session ended");
                            if configured {
                                attempt = 0;
                                self.gateways.worked();
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
            // Another replica is tried after a short jittered pause; once every one has failed
            // since the last good session, the full back-off applies.
            let delay = if self.gateways.failed() {
                let d = backoff::delay(attempt);
                attempt = attempt.saturating_add(1);
                d
            } else {
                backoff::full_jitter(0, backoff::BASE / 2, backoff::CAP, rand::random::<f64>())
            };
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                attempt,
                next_gateway = %self.gateways.current(),
                "reconnecting after back-off"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => return self.finish().await,
            }
        }
    }

    async fn finish(&self) -> Result<()> {
        for m in &self.modules {
            m.on_stop().await;
        }
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
        let outbox_id = match self.outbox.id().await {
            Ok(id) => id,
            Err(e) => {
                return SessionEnd::Lost {
                    configured: false,
                    why: format!("reading the outbox id: {e:#}"),
                };
            }
        };
        let facts = crate::facts::collect(&self.facts_root);
        let version = self.config.as_ref().map_or(0, |c| c.version);
        if let Err(e) = send(ws, &hello(facts, version, last_seq, &outbox_id)).await {
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
                                for m in &self.modules {
                                    m.on_config(&cfg).await;
                                }
                                self.gateways.update(&cfg.gateways);
                                self.config = Some(cfg);
                                if period_changed {
                                    hb = heartbeat_timer(self.heartbeat_period());
                                }
                                configured = true;
                                pump = true;
                            }
                            // Before config, so before any record is sent: a new outbox must
                            // number above what the center stored, or send nothing.
                            Message::Resume(r) => match self.outbox.resume(&r).await {
                                // A first connect, or nothing queued below the center's seq.
                                Ok(Resumed::Same | Resumed::Renumbered(0)) => {}
                                Ok(Resumed::Renumbered(shift)) => tracing::warn!(center_last_seq = r.last_seq, shift,
                                    "this outbox is new to the center: its records now number above the center's stored seq"),
                                Err(e) => return lost!(format!("could not renumber the outbox above the center's seq {}: {e:#}", r.last_seq)),
                            },
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
        let module = self
            .routes
            .get(task.kind.as_str())
            .map(|i| self.modules[*i].clone());
        // Results go to the outbox, not the socket, so they survive a disconnect.
        tokio::spawn(async move {
            if let Err(e) = outbox
                .push(&Message::TaskUpdate(tasks::running(&task)))
                .await
            {
                tracing::error!(task_id = %task.id, error = %e, "could not queue task update");
            }
            let update = match module {
                Some(m) => {
                    let outcome = match tasks::expired(&task, unix_now()) {
                        Ok(()) => m.on_task(&task).await,
                        Err(e) => Err(e),
                    };
                    tasks::finished(&task, outcome)
                }
                None => tasks::run(&task, unix_now(), &root),
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
        let mut hb = Heartbeat {
            now: unix_now(),
            rss_bytes,
            cpu_percent,
            outbox_depth: self.outbox.depth().await.unwrap_or(0),
            outbox_dropped: self.outbox.dropped().await.unwrap_or(0),
            outbox_error: self.outbox.failing(),
            outbox_reset: self.outbox.reset().await.unwrap_or_default(),
            ..Heartbeat::default()
        };
        for m in &self.modules {
            m.heartbeat(&mut hb);
        }
        Envelope::control(Message::Heartbeat(hb))
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
}
