//! Agent gateway on port 10180: one WSS session per agent, client certificate required.
//!
//! `listener` accepts TLS connections and checks the certificate against the database before
//! upgrading; `session` runs one agent's frames. This module keeps what the sessions of this
//! replica share: the registry of live sessions, last-seen times waiting to be flushed, agents
//! that dropped without saying goodbye, and the background jobs that act on them.

mod listener;
mod session;

pub use listener::serve;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_proto::Heartbeat;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics as m;
use hostward_store::status::{self, StopHint};
use hostward_store::{Store, TaskRow, now};

/// How often a replica advertises itself, and how long after its last advertisement it still
/// counts as live.
const REPLICA_ADVERTISE_SECS: u64 = 10;
const REPLICA_TTL_SECS: i64 = 35;

/// What the rest of the center can ask of a live session.
#[derive(Debug)]
pub(crate) enum Control {
    Tasks(Vec<TaskRow>),
    ConfigChanged,
    Close { code: &'static str, message: String },
}

struct SessionHandle {
    conn_id: u64,
    agent_id: String,
    tx: mpsc::Sender<Control>,
}

/// Handle the API uses to reach live agent sessions on this replica. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Arc<Config>,
    next_conn: AtomicU64,
    /// Live sessions by server id.
    sessions: Mutex<HashMap<String, SessionHandle>>,
    /// Last heartbeat per server, waiting to be flushed to the database in one batch.
    seen: Mutex<HashMap<String, (i64, Heartbeat)>>,
    /// Latest heartbeat figures of live sessions, for aggregate metrics.
    reported: Mutex<HashMap<String, Heartbeat>>,
    /// Servers whose connection dropped without `bye`: server id -> last frame time. They go
    /// offline with `heartbeat_timeout` unless they reconnect within three heartbeats.
    dangling: Mutex<HashMap<String, i64>>,
    /// Tasks written to a socket but not yet marked delivered in the database.
    delivered: Mutex<Vec<String>>,
    /// Tasks handed to a session and not yet marked delivered, so polling does not resend them.
    in_flight: Mutex<HashSet<String>>,
    /// Config version last sent to each live session here, so a change made through another
    /// replica (protection switch, project policy) is pushed by the config poll.
    config_sent: Mutex<HashMap<String, i64>>,
    /// This replica's id in the replicas table, and when it started.
    replica: (String, i64),
    /// Gateway URLs of the live replicas, this one's included, as agents get them.
    gateways: Mutex<Vec<String>>,
}

impl Gateway {
    pub fn new(store: Store, config: Arc<Config>) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                store,
                next_conn: AtomicU64::new(1),
                sessions: Mutex::default(),
                seen: Mutex::default(),
                reported: Mutex::default(),
                dangling: Mutex::default(),
                delivered: Mutex::default(),
                in_flight: Mutex::default(),
                config_sent: Mutex::default(),
                replica: (format!("{:032x}", rand::random::<u128>()), now()),
                gateways: Mutex::new(vec![config.gateway_url.clone()]),
                config,
            }),
        }
    }

    fn heartbeat_secs(&self) -> i64 {
        self.inner.config.heartbeat_secs as i64
    }

    /// Closes the agent's live session on this replica at once (other replicas poll).
    pub fn revoke(&self, agent_id: &str) {
        let sessions = self.inner.sessions.lock().unwrap();
        for h in sessions.values().filter(|h| h.agent_id == agent_id) {
            let _ = h.tx.try_send(Control::Close {
                code: "revoked",
                message: "agent revoked".into(),
            });
        }
    }

    /// Delivers queued tasks of these servers to the ones connected here.
    pub fn tasks_queued(&self, server_ids: &[String]) {
        let local: Vec<String> = {
            let sessions = self.inner.sessions.lock().unwrap();
            server_ids
                .iter()
                .filter(|id| sessions.contains_key(*id))
                .cloned()
                .collect()
        };
        if local.is_empty() {
            return;
        }
        let gw = self.clone();
        tokio::spawn(async move {
            if let Err(e) = gw.dispatch(&local).await {
                tracing::error!(error = %e, "task dispatch failed; the poller will retry");
            }
        });
    }

    /// Hands tasks just created on this replica to the sessions held here, without reading them
    /// back from the database (a broadcast creates one per server).
    pub fn tasks_created(&self, tasks: &[TaskRow]) {
        self.deliver(tasks.to_vec());
    }

    async fn dispatch(&self, server_ids: &[String]) -> hostward_store::Result<()> {
        let tasks = self.inner.store.queued_tasks_for(server_ids).await?;
        self.deliver(tasks);
        Ok(())
    }

    /// Sends tasks to their sessions here; tasks of agents connected elsewhere (or nowhere) stay
    /// queued for the poller or the next connect.
    fn deliver(&self, tasks: Vec<TaskRow>) {
        let mut by_server: HashMap<String, Vec<TaskRow>> = HashMap::new();
        {
            let mut in_flight = self.inner.in_flight.lock().unwrap();
            for t in tasks {
                if in_flight.insert(t.id.clone()) {
                    by_server.entry(t.server_id.clone()).or_default().push(t);
                }
            }
        }
        let sessions = self.inner.sessions.lock().unwrap();
        let mut in_flight = self.inner.in_flight.lock().unwrap();
        for (server_id, tasks) in by_server {
            let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
            let sent = sessions
                .get(&server_id)
                .is_some_and(|h| h.tx.try_send(Control::Tasks(tasks)).is_ok());
            if !sent {
                // Still queued in the database; the poller or the next connect delivers them.
                for id in &ids {
                    in_flight.remove(id);
                }
            }
        }
    }

    /// The server's config (e.g. protection switch) changed: push it to its agent.
    pub fn config_changed(&self, server_id: &str) {
        if let Some(h) = self.inner.sessions.lock().unwrap().get(server_id) {
            let _ = h.tx.try_send(Control::ConfigChanged);
        }
    }

    /// A certificate our CA issued failed the handshake on time grounds (expired, or the agent's
    /// clock is off): the agent cannot connect, so its server is offline with `tls_error`.
    pub(crate) fn stale_certificate(&self, id: hostward_pki::PeerIdentity, why: String) {
        let gw = self.clone();
        tokio::spawn(async move {
            let server = match gw.inner.store.server_by_agent_id(&id.agent_id).await {
                Ok(Some(s)) => s,
                _ => return,
            };
            let current = server.cert_serial.as_deref() == Some(id.serial_hex.as_str());
            let connected = gw.inner.sessions.lock().unwrap().contains_key(&server.id);
            if !current
                || connected
                || server.revoked_at.is_some()
                || server.agent_status == status::ONLINE
            {
                return;
            }
            tracing::warn!(server_id = %server.id, agent_id = %id.agent_id, reason = %why, "agent certificate refused on time grounds");
            if let Err(e) = gw
                .inner
                .store
                .set_agent_status(
                    &server.id,
                    status::OFFLINE,
                    status::offline::TLS_ERROR,
                    StopHint::None,
                )
                .await
            {
                tracing::error!(error = %e, "marking agent offline (tls_error) failed");
            }
        });
    }

    /// Servers whose agent has a live session on this replica.
    fn held(&self) -> Vec<String> {
        self.inner
            .sessions
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    /// Agents with a live session on this replica.
    pub fn online_count(&self) -> usize {
        self.inner.sessions.lock().unwrap().len()
    }

    fn register(&self, server_id: &str, agent_id: &str, tx: mpsc::Sender<Control>) -> u64 {
        let conn_id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        self.inner.dangling.lock().unwrap().remove(server_id);
        let old = self.inner.sessions.lock().unwrap().insert(
            server_id.to_string(),
            SessionHandle {
                conn_id,
                agent_id: agent_id.to_string(),
                tx,
            },
        );
        if let Some(old) = old {
            // The agent reconnected before its old connection was noticed dead.
            let _ = old.tx.try_send(Control::Close {
                code: "replaced",
                message: "a newer session replaced this one".into(),
            });
        }
        conn_id
    }

    /// Removes the session if it is still the registered one. `dropped` sessions wait in the
    /// dangling set for the heartbeat timeout.
    fn unregister(&self, server_id: &str, conn_id: u64, dropped_at: Option<i64>) {
        let mut sessions = self.inner.sessions.lock().unwrap();
        if sessions
            .get(server_id)
            .is_some_and(|h| h.conn_id == conn_id)
        {
            sessions.remove(server_id);
            self.inner.reported.lock().unwrap().remove(server_id);
            self.inner.config_sent.lock().unwrap().remove(server_id);
            if let Some(t) = dropped_at {
                self.inner
                    .dangling
                    .lock()
                    .unwrap()
                    .insert(server_id.to_string(), t);
            }
        }
    }

    fn saw(&self, server_id: &str, hb: Heartbeat) {
        self.inner
            .seen
            .lock()
            .unwrap()
            .insert(server_id.to_string(), (now(), hb.clone()));
        self.inner
            .reported
            .lock()
            .unwrap()
            .insert(server_id.to_string(), hb);
    }

    fn config_sent(&self, server_id: &str, version: i64) {
        self.inner
            .config_sent
            .lock()
            .unwrap()
            .insert(server_id.to_string(), version);
    }

    /// Pushes config to live sessions here whose stored config version differs from the one
    /// they were sent. Cheap when nothing changed: one aggregate query.
    async fn poll_config(&self, last: Option<i64>) -> Option<i64> {
        let fingerprint = match self.inner.store.config_fingerprint().await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "config poll failed");
                return last;
            }
        };
        if last == Some(fingerprint) {
            return last;
        }
        let held: Vec<String> = self
            .inner
            .config_sent
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        match self.inner.store.config_versions(&held).await {
            Ok(versions) => {
                let sent = self.inner.config_sent.lock().unwrap().clone();
                for (id, v) in versions {
                    if sent.get(&id).is_some_and(|s| *s != v) {
                        self.config_changed(&id);
                    }
                }
                Some(fingerprint)
            }
            Err(e) => {
                tracing::error!(error = %e, "config poll failed");
                last
            }
        }
    }

    /// Gateway URLs agents may use: every live replica's, this one's first.
    pub fn gateways(&self) -> Vec<String> {
        self.inner.gateways.lock().unwrap().clone()
    }

    /// Advertises this replica and reads the others: when the list changes, every agent here
    /// gets a config with the new list, so it knows where to go if this replica dies.
    async fn advertise(&self) {
        let own = &self.inner.config.gateway_url;
        let (id, started) = &self.inner.replica;
        let t = now();
        let listed = match self.inner.store.replica_seen(id, own, *started, t).await {
            Ok(()) => self.inner.store.live_gateways(t - REPLICA_TTL_SECS).await,
            Err(e) => Err(e),
        };
        let mut list = match listed {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "advertising this replica failed"),
        };
        list.retain(|u| u != own);
        list.insert(0, own.clone());
        let changed = {
            let mut have = self.inner.gateways.lock().unwrap();
            let changed = *have != list;
            *have = list.clone();
            changed
        };
        if changed {
            tracing::info!(gateways = ?list, "replica gateways changed; pushing them to agents");
            let held = self.held();
            for id in held {
                self.config_changed(&id);
            }
        }
    }

    fn delivered(&self, ids: impl IntoIterator<Item = String>) {
        self.inner.delivered.lock().unwrap().extend(ids);
    }

    /// Starts the background jobs: last-seen flush, dangling and stale sweeps, task and
    /// revocation polling. They run until the process ends.
    pub fn spawn_jobs(&self) {
        let hb = self.heartbeat_secs();
        // Flushing often enough that the database-level sweep never mistakes a live agent.
        let flush = Duration::from_secs(hb.clamp(1, 5) as u64);
        let gw = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush);
            loop {
                tick.tick().await;
                gw.flush().await;
            }
        });
        let gw = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last_revoke_check = now() - 2;
            let mut config_fingerprint = None;
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                gw.sweep_dangling().await;
                last_revoke_check = gw.poll_revocations(last_revoke_check).await;
                if n.is_multiple_of(2) {
                    gw.poll_tasks().await;
                    config_fingerprint = gw.poll_config(config_fingerprint).await;
                }
                if n % (2 * REPLICA_ADVERTISE_SECS) == 1 {
                    gw.advertise().await;
                }
                if n.is_multiple_of(20) {
                    gw.sweep_stale().await;
                    gw.close_deleted().await;
                    if let Err(e) = gw.inner.store.expire_due_tasks().await {
                        tracing::error!(error = %e, "expiring tasks failed");
                    }
                }
            }
        });
    }

    async fn flush(&self) {
        let seen: Vec<(String, i64, String)> = self
            .inner
            .seen
            .lock()
            .unwrap()
            .drain()
            .map(|(id, (ts, hb))| {
                (
                    id,
                    ts,
                    serde_json::to_string(&hb).expect("heartbeat serialises"),
                )
            })
            .collect();
        if !seen.is_empty()
            && let Err(e) = self.inner.store.flush_last_seen(&seen).await
        {
            tracing::error!(error = %e, n = seen.len(), "flushing last-seen times failed");
        }
        let delivered: Vec<String> = std::mem::take(&mut *self.inner.delivered.lock().unwrap());
        if !delivered.is_empty() {
            match self.inner.store.mark_delivered(&delivered).await {
                Ok(()) => {
                    let mut in_flight = self.inner.in_flight.lock().unwrap();
                    for id in &delivered {
                        in_flight.remove(id);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "marking tasks delivered failed; retrying");
                    self.inner.delivered.lock().unwrap().extend(delivered);
                }
            }
        }
        let (depth, dropped, failing) = self.inner.reported.lock().unwrap().values().fold(
            (0u64, 0u64, 0u64),
            |(d, x, f), hb| {
                (
                    d + hb.outbox_depth,
                    x + hb.outbox_dropped,
                    f + u64::from(hb.outbox_error.is_some()),
                )
            },
        );
        metrics::gauge!(m::OUTBOX_DEPTH).set(depth as f64);
        metrics::gauge!(m::OUTBOX_DROPPED).set(dropped as f64);
        metrics::gauge!(m::OUTBOX_FAILING).set(failing as f64);
        metrics::gauge!(m::AGENTS_ONLINE).set(self.online_count() as f64);
    }

    async fn sweep_dangling(&self) {
        let cutoff = now() - 3 * self.heartbeat_secs();
        let due: Vec<(String, i64)> = {
            let mut dangling = self.inner.dangling.lock().unwrap();
            let due: Vec<(String, i64)> = dangling
                .iter()
                .filter(|(_, t)| **t <= cutoff)
                .map(|(id, t)| (id.clone(), *t))
                .collect();
            for (id, _) in &due {
                dangling.remove(id);
            }
            due
        };
        for (id, last) in due {
            if self.inner.sessions.lock().unwrap().contains_key(&id) {
                continue;
            }
            match self
                .inner
                .store
                .set_agent_status(
                    &id,
                    status::OFFLINE,
                    status::offline::HEARTBEAT_TIMEOUT,
                    StopHint::None,
                )
                .await
            {
                Ok(true) => {
                    tracing::info!(server_id = %id, reason = "heartbeat_timeout", "agent offline")
                }
                Ok(false) | Err(hostward_store::StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(server_id = %id, error = %e, "marking agent offline failed; will retry");
                    self.inner
                        .dangling
                        .lock()
                        .unwrap()
                        .entry(id)
                        .or_insert(last);
                }
            }
        }
    }

    /// Agents marked online in the database whose last-seen time stopped moving: a replica that
    /// held them died. Ours are skipped: their sessions and the dangling set cover them.
    async fn sweep_stale(&self) {
        let hb = self.heartbeat_secs();
        let cutoff = now() - (3 * hb + 2 * hb.clamp(1, 5) + 5);
        let stale = match self.inner.store.stale_online_servers(cutoff).await {
            Ok(s) => s,
            Err(e) => return tracing::error!(error = %e, "stale sweep failed"),
        };
        for id in stale {
            let ours = self.inner.sessions.lock().unwrap().contains_key(&id)
                || self.inner.dangling.lock().unwrap().contains_key(&id);
            if !ours {
                let _ = self
                    .inner
                    .store
                    .set_agent_status(
                        &id,
                        status::OFFLINE,
                        status::offline::HEARTBEAT_TIMEOUT,
                        StopHint::None,
                    )
                    .await;
                tracing::info!(server_id = %id, reason = "heartbeat_timeout", "agent offline (no replica holds it)");
            }
        }
    }

    /// Closes sessions whose server was deleted, here or through another replica.
    async fn close_deleted(&self) {
        let local = self.held();
        match self.inner.store.missing_servers(&local).await {
            Ok(gone) => {
                let sessions = self.inner.sessions.lock().unwrap();
                for id in gone {
                    if let Some(h) = sessions.get(&id) {
                        let _ = h.tx.try_send(Control::Close {
                            code: "revoked",
                            message: "server deleted".into(),
                        });
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "deleted-server check failed"),
        }
    }

    async fn poll_revocations(&self, since: i64) -> i64 {
        let checked_at = now();
        match self.inner.store.revoked_agents_since(since).await {
            Ok(ids) => {
                for id in ids {
                    self.revoke(&id);
                }
                // Overlap by two seconds: revocation times have one-second resolution.
                checked_at - 2
            }
            Err(e) => {
                tracing::error!(error = %e, "revocation poll failed");
                since
            }
        }
    }

    async fn poll_tasks(&self) {
        match self.inner.store.queued_server_ids().await {
            Ok(ids) => self.tasks_queued(&ids),
            Err(e) => tracing::error!(error = %e, "task poll failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::api::testutil;
    use hostward_pki::PeerIdentity;
    use hostward_store::Enrollment;

    #[tokio::test]
    async fn expired_certificate_of_the_enrolled_agent_marks_tls_error() {
        let t = testutil::app().await;
        let s = &t.state.store;
        let p = s.ensure_project("default").await.unwrap();
        let token = s.test_token(&p.id).await;
        let e = Enrollment {
            token_id: token.id,
            grant_server_id: None,
            token_created_at: token.created_at,
            project_id: p.id,
            region: String::new(),
            install_id: None,
            agent_id: "agent-1".into(),
            cert_serial: "0a0b".into(),
            cert_not_after: 0,
            facts: Default::default(),
        };
        let srv = s.enroll(&e).await.unwrap().unwrap();
        let gw = &t.state.gateway;
        // An older certificate of the same agent (replaced at re-enrollment) changes nothing.
        gw.stale_certificate(
            PeerIdentity {
                agent_id: "agent-1".into(),
                serial_hex: "ffff".into(),
            },
            "expired".into(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            s.server(&srv.id).await.unwrap().unwrap().agent_status,
            "installing"
        );
        gw.stale_certificate(
            PeerIdentity {
                agent_id: "agent-1".into(),
                serial_hex: "0a0b".into(),
            },
            "expired".into(),
        );
        let mut got = None;
        for _ in 0..50 {
            let now = s.server(&srv.id).await.unwrap().unwrap();
            if now.agent_status == "offline" {
                got = Some(now.agent_reason);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(got.as_deref(), Some("tls_error"));
    }
}
