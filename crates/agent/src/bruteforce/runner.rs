//! The brute-force defence loop: authentication events from `authlog` go through the
//! `engine`; its blocks go to the firewall (`nft`) and, like its alarms, into
//! the outbox as durable `block` and `alarm` records; usual login addresses it learns go there as
//! `login_ip` records for the center, which keeps each server's list and pushes it back. Manual
//! blocks and unblocks (tasks) go through the same loop, so the engine, the firewall and the
//! center agree. The server's SSH login whitelist is a chain of the same firewall table, put
//! in force (or removed) as each config arrives and kept there by the same heal tick.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, BlockChange, Evidence};
use hostward_proto::bruteforce::{LoginIp, SshWhitelist, SshWhitelistReport};
use tokio::sync::{mpsc, oneshot};

use hostward_agent_core::RecordSender;
use hostward_agent_core::util::{local_offset_secs, unix_now};

use super::authlog;
use super::engine::{self, Decision, Engine, Policy, ServerLoginIps};
use super::nft::ssh_whitelist::Rules;
use super::nft::{self, Nft};
use super::sshd;

/// How often old failure windows are pruned.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// How often the firewall table is checked (one `nft list`, a few ms) and put back if
/// something else removed it or its blocks.
const HEAL_EVERY: Duration = Duration::from_secs(10);

enum Command {
    Block {
        addr: IpAddr,
        minutes: u32,
        /// `manual`, or the detector that asked (`port_scan`, `honeypot`).
        reason: &'static str,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Unblock {
        addr: IpAddr,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Policy(Policy),
    /// The server's own usual login addresses, as the center holds them.
    LoginIps(ServerLoginIps),
    /// Protection switched on or off for this server in the console.
    Enabled(bool),
    /// The server's SSH login whitelist, as the center holds it.
    SshWhitelist(SshWhitelist),
}

/// Handle the daemon keeps for block and unblock tasks.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    authlog: Arc<authlog::Counters>,
    ssh_whitelist: Arc<Mutex<SshWhitelistReport>>,
}

impl Handle {
    /// The SSH whitelist's state as last applied (sent in every heartbeat).
    pub fn ssh_whitelist_report(&self) -> SshWhitelistReport {
        self.ssh_whitelist
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies the server's SSH login whitelist as the center pushed it.
    pub async fn set_ssh_whitelist(&self, wl: SshWhitelist) {
        let _ = self.send(Command::SshWhitelist(wl)).await;
    }

    /// What the auth log sources have read so far (sent in every heartbeat).
    pub fn authlog_stats(&self) -> authlog::Stats {
        self.authlog.snapshot()
    }

    pub async fn block(&self, addr: IpAddr, minutes: u32) -> Result<(), String> {
        self.block_for(addr, minutes, "manual").await
    }

    /// Blocks for another module's detector; `reason` names it in the `block` record.
    pub async fn block_for(
        &self,
        addr: IpAddr,
        minutes: u32,
        reason: &'static str,
    ) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Block {
            addr,
            minutes,
            reason,
            reply,
        })
        .await?;
        rx.await.map_err(|_| "the detector stopped".to_string())?
    }

    pub async fn unblock(&self, addr: IpAddr) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Unblock { addr, reply }).await?;
        rx.await.map_err(|_| "the detector stopped".to_string())?
    }

    /// Applies the project's policy as the center pushed it.
    pub async fn set_policy(&self, policy: Policy) {
        let _ = self.send(Command::Policy(policy)).await;
    }

    /// Applies the server's usual login addresses as the center pushed them. Send it after the
    /// policy of the same config.
    pub async fn set_login_ips(&self, list: ServerLoginIps) {
        let _ = self.send(Command::LoginIps(list)).await;
    }

    /// With protection off, authentication events are read but not acted on: no blocks, no
    /// alarms. Blocks already made stay until they expire or are lifted.
    pub async fn set_enabled(&self, enabled: bool) {
        let _ = self.send(Command::Enabled(enabled)).await;
    }

    async fn send(&self, c: Command) -> Result<(), String> {
        self.tx
            .send(c)
            .await
            .map_err(|_| "the detector stopped".to_string())
    }
}

/// Starts following the auth logs and defending. A firewall that cannot be set up (no nft,
/// no privilege) is logged loudly; detection and alarms go on without blocking.
pub fn spawn(
    authlog_cfg: &authlog::Config,
    firewall: nft::Config,
    root: PathBuf,
    state_dir: &Path,
    outbox: RecordSender,
) -> Handle {
    let (tx, rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let follower = authlog::spawn(authlog_cfg, state_dir, ev_tx);
    let counters = follower.counters();
    let nft = match Nft::new(firewall, state_dir.join("firewall.json")) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::error!(error = %e, "firewall config refused: brute-force sources will not be blocked");
            None
        }
    };
    let mut engine = Engine::new(Policy::default()).expect("the default policy is valid");
    // Until the center's config brings the server's list, learn nothing: an address learned
    // now may be one a person removed from the list on purpose.
    engine
        .set_server_login_ips(&ServerLoginIps {
            usual: Vec::new(),
            learning: false,
        })
        .expect("an empty list is valid");
    let ssh_whitelist = Arc::new(Mutex::new(SshWhitelistReport {
        state: "off".into(),
        ..Default::default()
    }));
    let wl = Whitelist {
        root,
        wanted: SshWhitelist::default(),
        applied: None,
        report: ssh_whitelist.clone(),
    };
    tokio::spawn(run(engine, nft, wl, outbox, ev_rx, rx, follower));
    Handle {
        tx,
        authlog: counters,
        ssh_whitelist,
    }
}

/// The SSH whitelist's side of the loop: what the center asks for, what is in force.
struct Whitelist {
    /// Where sshd_config is read (`/`, or a test's root).
    root: PathBuf,
    wanted: SshWhitelist,
    /// The rules the chain holds now; None when there is no chain (or it is unknown).
    applied: Option<Rules>,
    report: Arc<Mutex<SshWhitelistReport>>,
}

impl Whitelist {
    /// Makes the chain match `wanted` with sshd's current ports, and says so in the report.
    /// `force`: apply even when the rules did not change (the chain may be gone).
    async fn apply(&mut self, nft: Option<&Nft>, force: bool) {
        let ports = sshd::ports(&self.root);
        let result = match Rules::of(&self.wanted, &ports) {
            Err(e) => Err(format!(
                "refused the SSH whitelist, keeping what is in force: {e}"
            )),
            Ok(rules) if !force && rules == self.applied && rules.is_some() => Ok(rules),
            Ok(rules) => match nft {
                Some(n) => n
                    .set_ssh_whitelist(rules.as_ref())
                    .await
                    .map(|()| rules)
                    .map_err(|e| e.to_string()),
                // Nothing to remove without a firewall; a list that is on cannot be in force.
                None if rules.is_none() => Ok(None),
                None => Err("the firewall is not available on this host".into()),
            },
        };
        let report = match result {
            Ok(rules) => {
                if rules != self.applied {
                    tracing::info!(entries = rules.as_ref().map_or(0, Rules::len), ports = ?ports, "SSH whitelist {}", if rules.is_some() { "in force" } else { "off" });
                }
                self.applied = rules;
                match &self.applied {
                    Some(r) => SshWhitelistReport {
                        state: "applied".into(),
                        addrs: r.len(),
                        ports: r.ports.clone(),
                        error: None,
                    },
                    None => SshWhitelistReport {
                        state: "off".into(),
                        ..Default::default()
                    },
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "applying the SSH whitelist failed");
                SshWhitelistReport {
                    state: "error".into(),
                    addrs: self.applied.as_ref().map_or(0, Rules::len),
                    ports: self
                        .applied
                        .as_ref()
                        .map(|r| r.ports.clone())
                        .unwrap_or_default(),
                    error: Some(e),
                }
            }
        };
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = report;
    }

    /// On the heal tick: puts the chain back when something removed it, and follows sshd's
    /// ports when its config changed. Nothing to do while the whitelist is off.
    async fn heal(&mut self, nft: Option<&Nft>) {
        if !self.wanted.enabled {
            return;
        }
        let Some(n) = nft else { return };
        let present = n.ssh_whitelist_present().await.unwrap_or(false);
        let ports = sshd::ports(&self.root);
        // A refused list was reported when it came; the next config fixes it.
        if Rules::of(&self.wanted, &ports).is_err() {
            return;
        }
        let stale = self.applied.as_ref().is_none_or(|r| r.ports != ports);
        if !present || stale {
            if !present && self.applied.is_some() {
                tracing::warn!(
                    "the SSH whitelist chain had been removed from outside; putting it back"
                );
            }
            self.apply(nft, true).await;
        }
    }
}

async fn run(
    mut engine: Engine,
    nft: Option<Nft>,
    mut wl: Whitelist,
    outbox: RecordSender,
    mut events: mpsc::Receiver<crate::bruteforce::AuthEvent>,
    mut commands: mpsc::Receiver<Command>,
    _follower: authlog::Handle,
) {
    if let Some(n) = &nft {
        match n.ensure().await {
            Ok(()) => match n.restore().await {
                Ok(kept) => tracing::info!(
                    blocks = kept.len(),
                    "firewall table ready; still-valid blocks restored"
                ),
                Err(e) => tracing::error!(error = %e, "restoring firewall blocks failed"),
            },
            Err(e) => tracing::error!(error = %e, "setting up the firewall table failed"),
        }
    }
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    let mut heal = tokio::time::interval_at(tokio::time::Instant::now() + HEAL_EVERY, HEAL_EVERY);
    let mut enabled = true;
    // With every log source off (or gone) the firewall still serves blocks: manual ones and
    // other modules' (port scans).
    let mut logs_open = true;
    loop {
        tokio::select! {
            ev = events.recv(), if logs_open => {
                let Some(ev) = ev else {
                    logs_open = false;
                    continue;
                };
                if !enabled {
                    continue;
                }
                let hour = local_hour(ev.ts);
                for d in engine.on_event(&ev, hour) {
                    act(&d, nft.as_ref(), &outbox).await;
                }
            }
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Command::Block { addr, minutes, reason, reply }) => {
                    let secs = u64::from(minutes) * 60;
                    let out = if engine.policy().block {
                        firewall_block(nft.as_ref(), addr, Duration::from_secs(secs)).await
                    } else {
                        Err("blocking is off for this server (its edition or the brute-force policy)".into())
                    };
                    if out.is_ok() {
                        let now = unix_now();
                        record(&outbox, Message::Block(BlockChange {
                            ts: now,
                            addr: addr.to_string(),
                            action: "blocked".into(),
                            reason: reason.into(),
                            service: None,
                            expires_at: Some(now + secs as i64),
                        })).await;
                    }
                    let _ = reply.send(out);
                }
                Some(Command::Unblock { addr, reply }) => {
                    engine.unblocked(addr);
                    let out = match &nft {
                        Some(n) => n.unblock(addr).await.map_err(|e| e.to_string()),
                        None => Err("the firewall is not available on this host".into()),
                    };
                    if out.is_ok() {
                        record(&outbox, Message::Block(BlockChange {
                            ts: unix_now(),
                            addr: addr.to_string(),
                            action: "unblocked".into(),
                            reason: "manual".into(),
                            service: None,
                            expires_at: None,
                        })).await;
                    }
                    let _ = reply.send(out);
                }
                Some(Command::Enabled(on)) => {
                    if on != enabled {
                        tracing::info!(enabled = on, "brute-force defence switched");
                    }
                    enabled = on;
                }
                Some(Command::Policy(policy)) => match engine.set_policy(policy) {
                    Ok(lifted) => {
                        for addr in lifted {
                            if let Some(n) = &nft
                                && let Err(e) = n.unblock(addr).await
                            {
                                tracing::error!(%addr, error = %e, "unblocking a newly whitelisted source failed");
                                continue;
                            }
                            record(&outbox, Message::Block(BlockChange {
                                ts: unix_now(),
                                addr: addr.to_string(),
                                action: "unblocked".into(),
                                reason: "whitelist".into(),
                                service: None,
                                expires_at: None,
                            })).await;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "refused the brute-force policy; keeping the previous one"),
                },
                Some(Command::SshWhitelist(wanted)) => {
                    wl.wanted = wanted;
                    wl.apply(nft.as_ref(), false).await;
                }
                Some(Command::LoginIps(list)) => {
                    if let Err(e) = engine.set_server_login_ips(&list) {
                        tracing::error!(error = %e, "refused the server's usual login addresses; keeping the previous ones");
                    }
                }
            },
            _ = expire.tick() => engine.expire(unix_now()),
            _ = heal.tick() => {
                if let Some(n) = &nft {
                    match n.heal().await {
                        Ok(back) if !back.is_empty() => tracing::warn!(blocks = back.len(), "the firewall table had been removed or emptied from outside; blocks put back"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "checking the firewall table failed"),
                    }
                }
                wl.heal(nft.as_ref()).await;
            }
        }
    }
}

async fn firewall_block(nft: Option<&Nft>, addr: IpAddr, timeout: Duration) -> Result<(), String> {
    match nft {
        Some(n) => n.block(addr, timeout).await.map_err(|e| e.to_string()),
        None => Err("the firewall is not available on this host".into()),
    }
}

/// Carries out one decision: the firewall first (the attack is live), then the records.
async fn act(d: &Decision, nft: Option<&Nft>, outbox: &RecordSender) {
    match d {
        Decision::Block(b) => {
            if let Err(e) = firewall_block(nft, b.addr, b.duration).await {
                tracing::error!(addr = %b.addr, error = %e, "blocking a brute-force source failed");
                return;
            }
            tracing::warn!(addr = %b.addr, service = b.service.as_str(), failures = b.failures, until = b.until, "blocked a brute-force source");
            record(
                outbox,
                Message::Block(BlockChange {
                    ts: b.at,
                    addr: b.addr.to_string(),
                    action: "blocked".into(),
                    reason: "brute_force".into(),
                    service: Some(b.service.as_str().into()),
                    expires_at: Some(b.until),
                }),
            )
            .await;
        }
        Decision::Alarm(a) => record(outbox, Message::Alarm(alarm(a))).await,
        Decision::UsualIpLearned {
            addr,
            ts,
            user,
            service,
        } => {
            tracing::info!(%addr, "learned a usual login address");
            let rec = login_ip(*addr, *ts, user, *service);
            record(outbox, Message::LoginIp(rec)).await;
        }
    }
}

fn login_ip(addr: IpAddr, ts: i64, user: &str, service: crate::bruteforce::Service) -> LoginIp {
    LoginIp {
        ts,
        addr: addr.to_string(),
        user: user.to_string(),
        service: service.as_str().into(),
    }
}

/// The wire form of an engine alarm. Brute force aggregates per source address; login alarms
/// per address and user.
fn alarm(a: &engine::Alarm) -> Alarm {
    let key = match a.kind {
        engine::AlarmKind::BruteForce => a.addr.to_string(),
        _ => format!("{} {}", a.addr, a.user),
    };
    let mut users = a.users.clone();
    if users.is_empty() && !a.user.is_empty() {
        users.push(a.user.clone());
    }
    Alarm {
        ts: a.ts,
        alarm_type: a.kind.code().into(),
        key,
        count: a.failures.max(1),
        evidence: Evidence {
            source_ip: Some(a.addr.to_string()),
            users,
            service: Some(a.service.as_str().into()),
            lines: a.sample_lines.clone(),
            blocked_until: a.blocked_until,
            ..Default::default()
        },
    }
}

async fn record(outbox: &RecordSender, msg: Message) {
    match outbox.push(&msg).await {
        Ok(Some(_)) => {}
        Ok(None) => tracing::error!("outbox full: a detector record was dropped"),
        Err(e) => tracing::error!(error = %e, "queueing a detector record failed"),
    }
}

fn local_hour(ts: i64) -> u8 {
    let local = ts + local_offset_secs(ts);
    (local.rem_euclid(86_400) / 3600) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bruteforce::Service;
    use crate::bruteforce::engine::AlarmKind;

    fn engine_alarm(kind: AlarmKind) -> engine::Alarm {
        engine::Alarm {
            kind,
            ts: 100,
            addr: "192.0.2.7".parse().unwrap(),
            user: "root".into(),
            service: Service::Ssh,
            failures: 0,
            users: vec![],
            sample_lines: vec!["Accepted password for root".into()],
            blocked_until: None,
            local_hour: Some(3),
        }
    }

    #[test]
    fn every_engine_alarm_kind_is_in_the_wire_catalog_and_valid() {
        for kind in [
            AlarmKind::BruteForce,
            AlarmKind::PasswordCracked,
            AlarmKind::UnusualLoginIp,
            AlarmKind::UnusualLoginTime,
            AlarmKind::RootLogin,
        ] {
            let wire = alarm(&engine_alarm(kind));
            assert!(
                hostward_proto::alarm::alarm_type(&wire.alarm_type).is_some(),
                "{kind:?}"
            );
            assert_eq!(wire.validate(), Ok(()), "{kind:?}");
            assert_eq!(wire.count, 1, "a login is one occurrence");
        }
        assert_eq!(alarm(&engine_alarm(AlarmKind::BruteForce)).key, "192.0.2.7");
        assert_eq!(
            alarm(&engine_alarm(AlarmKind::RootLogin)).key,
            "192.0.2.7 root"
        );
        assert_eq!(
            alarm(&engine_alarm(AlarmKind::RootLogin)).evidence.users,
            ["root"]
        );
    }

    #[test]
    fn a_learned_address_is_a_valid_login_ip_record() {
        let mut engine = Engine::new(Policy::default()).unwrap();
        let ev = crate::bruteforce::AuthEvent {
            ts: 100,
            service: Service::Ftp,
            outcome: crate::bruteforce::AuthOutcome::Success,
            user: "alice".into(),
            invalid_user: false,
            source: "::ffff:192.0.2.9".parse().unwrap(),
            port: None,
            method: None,
            count: 1,
            line: "OK LOGIN".into(),
        };
        let ds = engine.on_event(&ev, 12);
        let [
            Decision::UsualIpLearned {
                addr,
                ts,
                user,
                service,
            },
        ] = ds.as_slice()
        else {
            panic!("{ds:?}")
        };
        let rec = login_ip(*addr, *ts, user, *service);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(
            (rec.addr.as_str(), rec.user.as_str(), rec.service.as_str()),
            ("192.0.2.9", "alice", "ftp")
        );
    }

    #[test]
    fn local_hours_stay_within_a_day() {
        for ts in [0, 3599, 3600, 86_399, 1_796_126_400, -1] {
            assert!(local_hour(ts) < 24);
        }
    }
}
