//! The ransomware loop. A detector thread ([`detect_loop`]) takes every file event in the
//! watched directories and at the baits, reads what a write left (its first bytes), names the
//! writer and the script driving it, and runs the [`Detector`]; on a finding it stops
//! (SIGSTOP) the target's tree at once, before anything waits on the runtime, and hands the
//! finding to the loop, which kills and isolates through the quarantine per the policy and
//! raises the critical alarm. The loop also deploys the baits (at each policy change and every
//! 12 hours, and again when one was touched), marks the directories, and takes the scheduled
//! backups. The policy, the baits in place and the last deployment survive a restart in
//! `<state_dir>/ransom/state.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_agent_core::RecordSender;
use hostward_agent_core::util::{unix_now, unix_now_ms, write_atomic};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence, ProcessInfo};
use hostward_proto::paths::nested;
use hostward_proto::quarantine::IsolateRequest;
use hostward_proto::ransom::{
    ALARM, Action, BAIT_REDEPLOY_HOURS, BackupReport, RansomPolicy, RansomReport, RestoreRequest,
    RestoreResult, SnapshotInfo,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Baits;
use super::backup::Store;
use super::bait::{self, Bait};
use super::detect::{Detector, FileEvent, Finding, Op, Reason};
use super::entropy;
use crate::fim::watch::{MAX_MARKS, Watch, WatchEvent, dirs_below, writer};
use crate::quarantine::{Quarantine, kill};

const TICK: Duration = Duration::from_secs(5);
/// Baits are checked for changes the events did not show (made while the agent was down)
/// this often.
const BAIT_CHECK_SECS: i64 = 300;

pub(crate) struct Command {
    pub policy: Option<RansomPolicy>,
    pub enabled: bool,
}

/// What the tasks and the heartbeat share with the loop.
pub struct Shared {
    root: PathBuf,
    pub(crate) baits: Baits,
    store: Mutex<Option<Store>>,
    store_error: Option<String>,
    /// The policy in force (protection on); None while off or waiting.
    policy: Mutex<Option<RansomPolicy>>,
    report: Mutex<RansomReport>,
    backing_up: AtomicBool,
}

impl Shared {
    pub fn report(&self) -> RansomReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn set_backup(&self, f: impl FnOnce(&mut BackupReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r.backup);
        }
    }
}

/// What the detector thread tells the loop.
enum Note {
    Found(Box<Finding>),
    /// A directory appeared in a watched tree: mark it.
    NewDir(String),
}

/// What the detector thread works with, replaced whole at each change.
#[derive(Default)]
struct DetectConfig {
    policy: Option<RansomPolicy>,
    baits: BTreeSet<String>,
    version: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    policy: Option<RansomPolicy>,
    baits: Vec<Bait>,
    deployed_at: Option<i64>,
}

pub fn spawn(
    root: PathBuf,
    state_dir: &Path,
    records: RecordSender,
    quarantine: Arc<Quarantine>,
    behaviour: Option<crate::behaviour::Behaviour>,
    baits: Baits,
) -> super::Ransom {
    let dir = state_dir.join("ransom");
    let (store, store_error) = match Store::open(&dir.join("backup")) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(format!("backup store unusable: {e}"))),
    };
    let shared = Arc::new(Shared {
        root: root.clone(),
        baits,
        store: Mutex::new(store),
        store_error,
        policy: Mutex::new(None),
        report: Mutex::new(RansomReport {
            state: "waiting".into(),
            reason: Some("no policy from the center yet".into()),
            ..Default::default()
        }),
        backing_up: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel(8);
    let (wtx, wrx) = mpsc::channel(8192);
    let (ntx, nrx) = mpsc::channel(256);
    let detect = Arc::new(Mutex::new(DetectConfig::default()));
    let watch = match Watch::start(wtx, Arc::new(Default::default()), false) {
        Ok(w) => {
            let (cfg, root) = (detect.clone(), root.clone());
            let sensor = behaviour.is_some();
            std::thread::Builder::new()
                .name("ransom-detect".into())
                .spawn(move || detect_loop(&root, wrx, &cfg, behaviour.as_ref(), &ntx))
                .map_err(|e| tracing::error!(error = %e, "ransomware: no detector thread"))
                .ok();
            if !sensor {
                tracing::warn!(
                    "ransomware: without the runtime sensor, a script that starts a new process per file is caught by the baits only"
                );
            }
            Ok(w)
        }
        Err(e) => Err(e),
    };
    let saved: Saved = std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Ok(mut b) = shared.baits.write() {
        b.extend(saved.baits.iter().map(|b| b.path.clone()));
    }
    let r = Runner {
        shared: shared.clone(),
        file: dir.join("state.json"),
        records,
        quarantine,
        watch,
        detect,
        saved,
        enabled: true,
        active: None,
        problems: Vec::new(),
        detections: 0,
        killed: 0,
        next_backup: None,
        last_bait_check: 0,
    };
    tokio::spawn(r.run(rx, nrx));
    super::Ransom::new(tx, shared)
}

struct Runner {
    shared: Arc<Shared>,
    file: PathBuf,
    records: RecordSender,
    quarantine: Arc<Quarantine>,
    watch: Result<Watch, String>,
    detect: Arc<Mutex<DetectConfig>>,
    saved: Saved,
    enabled: bool,
    /// The policy being enforced.
    active: Option<RansomPolicy>,
    problems: Vec<String>,
    detections: u64,
    killed: u64,
    next_backup: Option<i64>,
    last_bait_check: i64,
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut notes: mpsc::Receiver<Note>) {
        // Protection from the last policy before the center is reached.
        if let Some(p) = self.saved.policy.clone() {
            self.apply(Some(p)).await;
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(c) = cmd else { return };
                    self.enabled = c.enabled;
                    match c.policy {
                        Some(p) => self.apply(Some(p)).await,
                        // A refused policy keeps the current one.
                        None => if !c.enabled { self.apply(None).await },
                    }
                    if c.enabled && self.active.is_none() && self.saved.policy.is_some() {
                        self.apply(self.saved.policy.clone()).await;
                    }
                }
                Some(n) = notes.recv() => match n {
                    Note::Found(f) => self.respond(*f).await,
                    Note::NewDir(d) => {
                        let root = self.shared.root.clone();
                        if let Ok(w) = self.watch.as_mut() { w.add(&root, &d) }
                    }
                },
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    fn save(&self) {
        match serde_json::to_vec(&self.saved) {
            Ok(b) => {
                if let Err(e) = write_atomic(&self.file, &b, 0o600) {
                    tracing::error!(error = %e, "ransomware: saving state failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "ransomware: state does not serialise"),
        }
    }

    /// Puts `want` in force (None: off): baits, marks, the detector, the backup schedule.
    async fn apply(&mut self, want: Option<RansomPolicy>) {
        let want = want.filter(|_| self.enabled);
        if want.is_some() {
            self.saved.policy = want.clone();
        }
        let detecting = want.as_ref().filter(|p| p.enabled).cloned();
        let changed = self
            .active
            .as_ref()
            .map(|p| (&p.directories, p.random_bait))
            != detecting.as_ref().map(|p| (&p.directories, p.random_bait));
        if changed || detecting.is_none() {
            self.redeploy(detecting.as_ref()).await;
        } else if self.active != detecting
            && let Ok(mut d) = self.detect.lock()
        {
            // Same places, new action, bound or trusted programs: the baits stay.
            d.policy = detecting.clone();
            d.version += 1;
        }
        self.active = detecting.clone();
        *self.shared.policy.lock().expect("policy") = want.clone();
        self.next_backup = match want.as_ref().filter(|p| p.backup.enabled) {
            Some(p) => {
                // Busy: a snapshot is being taken now (never wait for it on the runtime's one
                // thread: a large first snapshot takes minutes).
                let last = match self.shared.store.try_lock() {
                    Ok(s) => s.as_ref().and_then(|s| s.list().first().map(|i| i.at)),
                    Err(_) => Some(unix_now()),
                };
                Some(last.map_or(unix_now(), |t| {
                    t + i64::from(p.backup.interval_hours) * 3600
                }))
            }
            None => None,
        };
        self.publish();
        self.save();
    }

    /// Removes the baits in place and, when detecting, deploys new ones and marks what they
    /// and the watched directories need.
    async fn redeploy(&mut self, policy: Option<&RansomPolicy>) {
        let root = self.shared.root.clone();
        let old = std::mem::take(&mut self.saved.baits);
        let p = policy.cloned();
        let job = tokio::task::spawn_blocking(move || {
            bait::remove(&root, &old);
            let Some(p) = p else {
                return (Vec::new(), Vec::new(), BTreeSet::new());
            };
            let mut problems: Vec<String> = p
                .directories
                .iter()
                .filter(|d| !root.join(d.trim_start_matches('/')).is_dir())
                .map(|d| format!("{d}: does not exist"))
                .collect();
            let places = bait::places(&root, &p.directories, p.random_bait);
            let (baits, bait_problems) = bait::deploy(&root, &places);
            problems.extend(bait_problems);
            let mut marks = BTreeSet::new();
            for d in &p.directories {
                dirs_below(&root, d, &mut marks);
            }
            if marks.len() >= MAX_MARKS {
                problems.push(format!(
                    "more than {MAX_MARKS} directories below the watched ones: the rest is watched through its baits only"
                ));
            }
            for b in &baits {
                if let Some((parent, _)) = b.path.rsplit_once('/') {
                    marks.insert(parent.to_string());
                }
            }
            (baits, problems, marks)
        });
        let (baits, problems, marks) = job.await.unwrap_or_default();
        let root = self.shared.root.clone();
        if let Ok(w) = self.watch.as_mut() {
            w.set(&root, &marks);
        }
        self.problems = problems;
        self.saved.deployed_at = policy.map(|_| unix_now());
        let paths: BTreeSet<String> = baits.iter().map(|b| b.path.clone()).collect();
        self.saved.baits = baits;
        if let Ok(mut b) = self.shared.baits.write() {
            *b = paths.clone();
        }
        if let Ok(mut d) = self.detect.lock() {
            d.policy = policy.cloned();
            d.baits = paths;
            d.version += 1;
        }
        self.last_bait_check = unix_now();
    }

    fn publish(&self) {
        let mut r = self.shared.report.lock().expect("report");
        let backup = std::mem::take(&mut r.backup);
        *r = RansomReport {
            action: self
                .active
                .as_ref()
                .map(|p| p.action.as_str().to_string())
                .unwrap_or_default(),
            baits: self.saved.baits.len() as u64,
            baits_deployed_at: self.saved.deployed_at.filter(|_| self.active.is_some()),
            watched_dirs: self.watch.as_ref().map(|w| w.marked() as u64).unwrap_or(0),
            detections: self.detections,
            killed: self.killed,
            problems: self.problems.iter().take(10).cloned().collect(),
            backup,
            ..Default::default()
        };
        (r.state, r.reason) = match (&self.active, &self.watch) {
            _ if !self.enabled => (
                "off".into(),
                Some("protection is off for this server".into()),
            ),
            (None, _) if self.saved.policy.is_none() => (
                "waiting".into(),
                Some("no policy from the center yet".into()),
            ),
            (None, _) => ("off".into(), Some("off in the project's policy".into())),
            (Some(_), Err(e)) => ("failing".into(), Some(format!("no file events: {e}"))),
            (Some(_), Ok(_)) if self.saved.baits.is_empty() => (
                "failing".into(),
                Some("no bait file could be placed; see problems".into()),
            ),
            (Some(_), Ok(_)) => ("protecting".into(), None),
        };
        let store_error = self.shared.store_error.clone();
        let backup_on = self
            .shared
            .policy
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.backup.enabled))
            .unwrap_or(false);
        let b = &mut r.backup;
        b.next_at = self.next_backup;
        if let Some(e) = store_error {
            (b.state, b.reason) = ("failing".into(), Some(e));
        } else if !backup_on {
            (b.state, b.reason) = ("off".into(), Some("off in the project's policy".into()));
        } else if b.state.is_empty() || b.state == "off" {
            (b.state, b.reason) = ("waiting".into(), Some("no snapshot yet".into()));
        }
        if b.snapshots.is_empty()
            && let Ok(s) = self.shared.store.try_lock()
            && let Some(s) = s.as_ref()
        {
            b.snapshots = s.list();
            b.stored_bytes = s.stored_bytes();
        }
    }

    async fn tick(&mut self) {
        let now = unix_now();
        if let Some(p) = self.active.clone() {
            let due = self
                .saved
                .deployed_at
                .is_some_and(|t| now - t >= i64::from(BAIT_REDEPLOY_HOURS) * 3600);
            let touched = if now - self.last_bait_check >= BAIT_CHECK_SECS {
                self.last_bait_check = now;
                let (root, baits) = (self.shared.root.clone(), self.saved.baits.clone());
                tokio::task::spawn_blocking(move || !bait::touched(&root, &baits).is_empty())
                    .await
                    .unwrap_or(false)
            } else {
                false
            };
            if due || touched {
                self.redeploy(Some(&p)).await;
                self.save();
            }
        }
        if self.next_backup.is_some_and(|t| now >= t) {
            let every = self
                .shared
                .policy
                .lock()
                .ok()
                .and_then(|p| p.as_ref().map(|p| p.backup.interval_hours))
                .unwrap_or(24);
            self.next_backup = Some(now + i64::from(every) * 3600);
            let shared = self.shared.clone();
            tokio::spawn(async move {
                if let Err(e) = backup_now(&shared).await {
                    tracing::warn!(error = %e, "ransomware: scheduled backup");
                }
            });
        }
        self.publish();
    }

    async fn respond(&mut self, f: Finding) {
        self.detections += 1;
        let action = self
            .active
            .as_ref()
            .map(|p| p.action)
            .unwrap_or(Action::Alarm);
        let response = if f.trusted {
            format!(
                "not stopped: {} is trusted by the policy",
                f.chain.first().map(|p| p.exe.as_str()).unwrap_or("?")
            )
        } else if f.target.pid <= 1 {
            "the process had exited before it could be named; nothing to stop".to_string()
        } else {
            match action {
                Action::Alarm => "alarm only (the policy's action); the process runs".to_string(),
                Action::Kill => {
                    let pid = f.target.pid;
                    let killed = tokio::task::spawn_blocking(move || {
                        kill::kill_tree(Path::new("/proc"), pid)
                    })
                    .await
                    .unwrap_or_default();
                    self.killed += u64::from(!killed.is_empty());
                    format!("killed {} process(es)", killed.len())
                }
                Action::KillIsolate => self.kill_isolate(&f).await,
            }
        };
        let (rule, first) = match &f.reason {
            Reason::Bait { path, op } => ("bait", format!("bait file {path} {}", op.as_str())),
            Reason::Burst { files, span_ms } => (
                "burst",
                format!(
                    "{files} files rewritten encrypted or renamed to a new extension in {:.1} s",
                    *span_ms as f64 / 1000.0
                ),
            ),
        };
        let mut details = vec![first];
        details.extend(f.files.iter().take(8).map(|p| format!("file: {p}")));
        if let Some(s) = &f.script {
            details.push(format!("script: {s}"));
        }
        let key = f
            .script
            .clone()
            .or_else(|| Some(f.target.exe.clone()).filter(|e| !e.is_empty()))
            .unwrap_or_else(|| f.files.first().cloned().unwrap_or_default());
        let alarm = Alarm {
            ts: unix_now(),
            alarm_type: ALARM.into(),
            key,
            count: 1,
            evidence: Evidence {
                processes: f
                    .chain
                    .iter()
                    .take(hostward_proto::alarm::MAX_CHAIN)
                    .cloned()
                    .collect(),
                file: f.files.first().cloned(),
                rule: Some(rule.into()),
                details: details.into_iter().take(10).collect(),
                response: Some(response),
                ..Default::default()
            },
        };
        match self.records.push(&Message::Alarm(alarm)).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!("outbox full: a ransomware alarm was dropped"),
            Err(e) => tracing::error!(error = %e, "queueing a ransomware alarm failed"),
        }
        self.publish();
    }

    /// Kills the target's tree and isolates its program, or the script it runs when the
    /// program is a system interpreter.
    async fn kill_isolate(&mut self, f: &Finding) -> String {
        let req = IsolateRequest {
            pid: Some(f.target.pid),
            path: None,
            reason: ALARM.into(),
        };
        let mut out = match self.quarantine.isolate(req).await {
            Ok(o) => {
                self.killed += u64::from(!o.killed.is_empty());
                o.describe()
            }
            Err(e) => format!("not killed: {e}"),
        };
        if let Some(script) = &f.script {
            let req = IsolateRequest {
                pid: None,
                path: Some(script.clone()),
                reason: ALARM.into(),
            };
            match self.quarantine.isolate(req).await {
                Ok(o) => match o.entry {
                    Some(e) => out.push_str(&format!("; script {} isolated", e.path)),
                    None => out.push_str(&format!(
                        "; script {script} not isolated: {}",
                        o.file_problem.unwrap_or_default()
                    )),
                },
                Err(e) => out.push_str(&format!("; script {script} not isolated: {e}")),
            }
        }
        out
    }
}

/// Removes the bait files in place and forgets them and the policy (`hostward-agent
/// unprotect`, the agent stopped); returns how many were removed.
pub fn release(root: &Path, state_dir: &Path) -> Result<usize, String> {
    let file = state_dir.join("ransom").join("state.json");
    let saved: Saved = match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("{}: unreadable ({e})", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let there = saved
        .baits
        .iter()
        .filter(|b| root.join(b.path.trim_start_matches('/')).is_file())
        .count();
    bait::remove(root, &saved.baits);
    let body = serde_json::to_vec(&Saved::default()).map_err(|e| e.to_string())?;
    write_atomic(&file, &body, 0o600).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(there)
}

/// Takes a snapshot now (and applies the retention); the task and the schedule call it.
pub async fn backup_now(shared: &Arc<Shared>) -> Result<SnapshotInfo, String> {
    let policy = shared
        .policy
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .filter(|p| p.backup.enabled)
        .ok_or("backups are off in this server's policy (or protection is off)")?;
    if shared.backing_up.swap(true, Ordering::SeqCst) {
        return Err("a backup is already running".into());
    }
    shared.set_backup(|b| {
        b.state = "running".into();
        b.reason = None;
    });
    let s = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let guard = s
            .store
            .lock()
            .map_err(|_| "backup store lock poisoned".to_string())?;
        let store = guard
            .as_ref()
            .ok_or_else(|| s.store_error.clone().unwrap_or_default())?;
        let skip = s.baits.read().map(|b| b.clone()).unwrap_or_default();
        let snap = store
            .take(&s.root, &policy.backup, &skip, unix_now())
            .map_err(|e| format!("snapshot failed: {e}"))?;
        if let Err(e) = store.retain(&policy.backup, unix_now()) {
            tracing::warn!(error = %e, "ransomware: retention");
        }
        Ok::<_, String>((snap.info, store.list(), store.stored_bytes()))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    shared.backing_up.store(false, Ordering::SeqCst);
    match result {
        Ok((info, list, bytes)) => {
            shared.set_backup(|b| {
                (b.state, b.reason) = if info.errors > 0 {
                    (
                        "failing".into(),
                        Some(format!("{} path(s) could not be read", info.errors)),
                    )
                } else {
                    ("ok".into(), None)
                };
                b.snapshots = list;
                b.stored_bytes = bytes;
            });
            Ok(info)
        }
        Err(e) => {
            shared.set_backup(|b| {
                b.state = "failing".into();
                b.reason = Some(e.clone());
            });
            Err(e)
        }
    }
}

/// Puts files back from a snapshot.
pub async fn restore(shared: &Arc<Shared>, req: RestoreRequest) -> Result<RestoreResult, String> {
    req.validate()?;
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let guard = s
            .store
            .lock()
            .map_err(|_| "backup store lock poisoned".to_string())?;
        let store = guard
            .as_ref()
            .ok_or_else(|| s.store_error.clone().unwrap_or_default())?;
        let snap = store.pick(&req)?;
        let skip = s.baits.read().map(|b| b.clone()).unwrap_or_default();
        let r = store.restore(&s.root, &snap, &req, &skip);
        if r.restored + r.unchanged + r.removed == 0 && !r.failed.is_empty() {
            return Err(r.failed.join("; "));
        }
        Ok(r)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The event kinds a fanotify mask holds, in the order they happened when merged.
fn ops(mask: u64) -> Vec<Op> {
    let mut out = Vec::new();
    if mask & libc::FAN_MOVED_FROM != 0 {
        out.push(Op::MovedFrom);
    }
    if mask & libc::FAN_CLOSE_WRITE != 0 {
        out.push(Op::Write);
    }
    if mask & libc::FAN_MOVED_TO != 0 {
        out.push(Op::MovedTo);
    }
    if mask & libc::FAN_DELETE != 0 {
        out.push(Op::Delete);
    }
    out
}

/// The writer and the process that started it: from /proc when the writer still ran (or was a
/// zombie naming its parent) at the event, else from the runtime sensor's table (it keeps
/// exited processes 30 s), asked again for a while: the sensor drains its ring buffer every
/// 100 ms (`DRAIN_MS`), so a reaped writer's exec may reach it that much after its file event.
fn chain_of(
    seen: Option<ProcessInfo>,
    behaviour: Option<&crate::behaviour::Behaviour>,
) -> Vec<ProcessInfo> {
    let Some(w) = seen else { return Vec::new() };
    if w.ppid > 1 {
        let parent = writer(w.ppid).filter(|p| !p.exe.is_empty());
        return std::iter::once(w).chain(parent).collect();
    }
    let Some(b) = behaviour else { return vec![w] };
    // 370 ms in all: past one drain period and a busy host's scheduling delay.
    for wait in [0, 20, 50, 100, 200] {
        std::thread::sleep(Duration::from_millis(wait));
        let ch = b.chain_blocking(w.pid);
        if ch.first().is_some_and(|p| !p.exe.is_empty()) {
            return ch.into_iter().take(2).collect();
        }
    }
    vec![w]
}

/// The detector thread: events in, findings out; the target's tree is stopped here, at once.
fn detect_loop(
    root: &Path,
    mut rx: mpsc::Receiver<WatchEvent>,
    cfg: &Mutex<DetectConfig>,
    behaviour: Option<&crate::behaviour::Behaviour>,
    notes: &mpsc::Sender<Note>,
) {
    let mut det = Detector::new(RansomPolicy::default(), BTreeSet::new());
    let (mut version, mut active) = (0, None::<RansomPolicy>);
    while let Some(ev) = rx.blocking_recv() {
        let WatchEvent::Seen {
            path,
            process,
            mask,
        } = ev
        else {
            continue; // an overflow: the baits are checked on the next tick
        };
        if let Ok(c) = cfg.lock()
            && c.version != version
        {
            version = c.version;
            active = c.policy.clone();
            det.set(c.policy.clone().unwrap_or_default(), c.baits.clone());
        }
        let Some(policy) = active.as_ref() else {
            continue;
        };
        let bait = det.is_bait(&path);
        if !bait && !policy.directories.iter().any(|d| nested(d, &path)) {
            continue;
        }
        let host = root.join(path.trim_start_matches('/'));
        if mask & libc::FAN_CREATE != 0 && mask & libc::FAN_ONDIR != 0 {
            let _ = notes.blocking_send(Note::NewDir(path.clone()));
        }
        if mask & libc::FAN_ONDIR != 0 {
            continue;
        }
        let mut chain: Option<Vec<ProcessInfo>> = None;
        for op in ops(mask) {
            let encrypted = !bait
                && matches!(op, Op::Write | Op::MovedTo)
                && entropy::sample(&host).is_ok_and(|s| entropy::looks_encrypted(&s));
            if !(bait || encrypted || matches!(op, Op::MovedFrom | Op::MovedTo)) {
                continue;
            }
            let ch = chain
                .get_or_insert_with(|| chain_of(process.clone(), behaviour))
                .clone();
            let found = det.event(&FileEvent {
                path: path.clone(),
                op,
                encrypted,
                chain: ch,
                at_ms: unix_now_ms(),
            });
            if let Some(f) = found {
                if !f.trusted && policy.action != Action::Alarm && f.target.pid > 1 {
                    // It writes nothing more while the loop kills it.
                    kill::stop_tree(Path::new("/proc"), f.target.pid);
                }
                let _ = notes.blocking_send(Note::Found(Box::new(f)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_masks_give_every_operation_in_order() {
        assert_eq!(
            ops(libc::FAN_CREATE | libc::FAN_CLOSE_WRITE | libc::FAN_MOVED_FROM),
            [Op::MovedFrom, Op::Write]
        );
        assert_eq!(ops(libc::FAN_DELETE), [Op::Delete]);
        assert!(ops(libc::FAN_ATTRIB).is_empty());
    }

    #[test]
    fn directories_below_are_collected_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("srv/a/b")).unwrap();
        std::fs::create_dir_all(d.path().join("elsewhere/x")).unwrap();
        std::os::unix::fs::symlink(d.path().join("elsewhere"), d.path().join("srv/link")).unwrap();
        let mut out = BTreeSet::new();
        dirs_below(d.path(), "/srv", &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            ["/srv", "/srv/a", "/srv/a/b"]
        );
    }
}
