//! The tamper protection loop, in one of three modes. Locked (the normal state): every
//! protected directory has the immutable attribute ([`super::lock`]), so the kernel refuses
//! every create, rename, link and unlink in it; the guard ([`super::guard`]) refuses every
//! write-open by a process that is not privileged before it happens; what changes anyway (a
//! mode, a truncate by path, a lock someone lifted by hand) is put back from the backup
//! ([`super::backup`]) as soon as the file event arrives. Deploy (while a privileged
//! executable runs; the guard holds its exec until the directory locks are lifted): the
//! privileged processes may also add, rename and remove files, what other processes add,
//! rename or remove is put back, and when the last privileged process exits the new content
//! becomes the reference and the locks return. Unlocked (a window of the policy, or "unlock now" from the console until a time):
//! no lock, no guard; when it ends the new content becomes the reference. The policy,
//! the unlock and the reference survive a restart in `<state_dir>/tamper/`, and protection
//! is put back from them at start, before the center is reached.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostward_agent_core::RecordSender;
use hostward_agent_core::util::{local_offset_secs, unix_now, unix_now_ms, write_atomic};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence, ProcessInfo};
use hostward_proto::fim::{FimPolicy, WatchedDir};
use hostward_proto::tamper::{TamperPolicy, TamperReport, TamperUnlock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::guard::{Guard, Rules, Verdict};
use super::lock;
use crate::fim::engine::{self, Baseline, Change, Kind};
use crate::fim::watch::{Watch, WatchEvent};
use crate::objects::{self, Objects};
use hostward_proto::fim::Operation;

const BATCH: Duration = Duration::from_millis(2);
const TICK: Duration = Duration::from_secs(5);
/// How often a deploy checks whether its privileged processes still run.
const DEPLOY_TICK: Duration = Duration::from_millis(200);
/// A full comparison with the backup this often.
const VERIFY_EVERY: Duration = Duration::from_secs(60);
/// A privileged process's write-open makes its change of that file the reference for this long.
const PRIVILEGED_GRACE: Duration = Duration::from_secs(10);
/// Repeats of one alarm (same file) within this are counted into the next one.
const REPEAT_MS: u64 = 10_000;
const ALARM: &str = "web_tamper";

pub(crate) enum Command {
    Config {
        policy: Option<TamperPolicy>,
        unlock: TamperUnlock,
        enabled: bool,
    },
    /// The agent is stopping: lock the files too (answered when done).
    Stop(tokio::sync::oneshot::Sender<()>),
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    policy: Option<TamperPolicy>,
    unlock: TamperUnlock,
    /// The reference: what every protected path should be.
    manifest: Baseline,
}

pub fn spawn(root: PathBuf, state_dir: &Path, records: RecordSender) -> super::Tamper {
    let (tx, rx) = mpsc::channel(8);
    let report = Arc::new(Mutex::new(TamperReport {
        state: "starting".into(),
        ..Default::default()
    }));
    let dir = state_dir.join("tamper");
    let (vtx, vrx) = mpsc::channel(4096);
    let (wtx, wrx) = mpsc::channel(8192);
    let mut problems = Vec::new();
    let guard = Guard::start(vtx)
        .map_err(|e| problems.push(format!("no write refusal: {e}")))
        .ok();
    let watch = Watch::start(wtx, Arc::new(Default::default()), true)
        .map_err(|e| problems.push(format!("no revert on file events: {e}")))
        .ok();
    let backup = Objects::open(&dir.join("backup"))
        .map_err(|e| problems.push(format!("no backup dir: {e}")))
        .ok();
    let r = Runner {
        root,
        file: dir.join("state.json"),
        records,
        report: report.clone(),
        saved: Saved::default(),
        applied: None,
        enabled: true,
        mode: Mode::Off,
        deploy_pids: Vec::new(),
        guard,
        watch,
        backup,
        start_problems: problems,
        problems: Vec::new(),
        reverted: 0,
        last_verify: None,
        sent: HashMap::new(),
        privileged_writes: HashMap::new(),
    };
    let refused = r
        .guard
        .as_ref()
        .map(|g| g.refused.clone())
        .unwrap_or_default();
    tokio::spawn(r.run(rx, vrx, wrx));
    super::Tamper::new(tx, report, refused)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Locked,
    Deploy,
    Unlocked,
}

struct Runner {
    root: PathBuf,
    file: PathBuf,
    records: RecordSender,
    report: Arc<Mutex<TamperReport>>,
    saved: Saved,
    /// The policy protection runs with (validated, every directory present); None while off.
    applied: Option<TamperPolicy>,
    /// The server's protection switch.
    enabled: bool,
    mode: Mode,
    /// Privileged processes a deploy waits for, and when each started.
    deploy_pids: Vec<(u32, Instant)>,
    guard: Option<Guard>,
    watch: Option<Watch>,
    backup: Option<Objects>,
    start_problems: Vec<String>,
    problems: Vec<String>,
    reverted: u64,
    last_verify: Option<i64>,
    /// (file) -> (first sent ms, repeats since)
    sent: HashMap<String, (u64, u32)>,
    /// Files a privileged process opened for writing, and when.
    privileged_writes: HashMap<String, Instant>,
}

/// The engine's view of the protected directories: recursive, with their exclusions.
fn as_fim(p: &TamperPolicy) -> FimPolicy {
    FimPolicy {
        enabled: true,
        important_files: Vec::new(),
        directories: p
            .directories
            .iter()
            .map(|d| WatchedDir {
                path: d.path.clone(),
                recursive: true,
                operations: Default::default(),
                exclude: d.exclude.clone(),
                exclude_types: d.exclude_types.clone(),
            })
            .collect(),
    }
}

/// Keeps each file of `manifest` in the backup; a file that could not be backed up cannot be
/// restored, so it leaves the reference (rather than be "restored" to nothing) and is named in
/// the problems returned.
fn back_up(root: &Path, backup: Option<&Objects>, manifest: &mut Baseline) -> Vec<String> {
    let Some(b) = backup else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    manifest.retain(|path, e| match (e.kind, e.hash.as_deref()) {
        (Kind::File, Some(h)) => match b.store(&root.join(path.trim_start_matches('/')), h) {
            Ok(()) => true,
            Err(err) => {
                problems.push(format!("{path}: not backed up ({err})"));
                false
            }
        },
        _ => true,
    });
    problems
}

/// Lifts every lock the protection set (`hostward-agent unprotect`, the agent stopped): the
/// directories and files of the reference in `<state_dir>/tamper/state.json` and the policy's
/// directories. The saved policy goes, so a start does not lock again before the center's
/// policy arrives. Returns how many paths were unlocked.
pub fn release(root: &Path, state_dir: &Path) -> Result<usize, String> {
    let file = state_dir.join("tamper").join("state.json");
    let mut saved: Saved = match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("{}: unreadable ({e})", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let host = |p: &str| root.join(p.trim_start_matches('/'));
    let mut paths: Vec<&str> = saved.manifest.keys().map(String::as_str).collect();
    if let Some(p) = &saved.policy {
        paths.extend(p.directories.iter().map(|d| d.path.as_str()));
    }
    let mut n = 0;
    for p in paths {
        if lock::locked(&host(p)).unwrap_or(false) && lock::set(&host(p), false).is_ok() {
            n += 1;
        }
    }
    saved.policy = None;
    let body = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
    write_atomic(&file, &body, 0o600).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(n)
}

/// Processes running one of the executables now (a deploy the agent started in the middle of).
fn running(exes: &[String]) -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let e = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let x = exes.iter().find(|x| Path::new(x) == e)?;
            Some((pid, x.clone()))
        })
        .collect()
}

/// Whether a window of the policy is open at `now` (server local time).
pub fn in_window(p: &TamperPolicy, now: i64) -> bool {
    let local = now + local_offset_secs(now);
    let minute = (local.rem_euclid(86_400) / 60) as u16;
    // 1970-01-01 was a Thursday (4).
    let weekday = ((local.div_euclid(86_400) + 3).rem_euclid(7) + 1) as u8;
    p.windows
        .iter()
        .any(|w| w.on_day(weekday) && w.span().is_some_and(|(s, e)| s <= minute && minute < e))
}

impl Runner {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut verdicts: mpsc::Receiver<Verdict>,
        mut events: mpsc::Receiver<WatchEvent>,
    ) {
        self.saved = self.load();
        // Protection from what was last applied, before the center is reached.
        if let Some(p) = self.saved.policy.clone() {
            self.apply(p).await;
        } else {
            self.set_state(
                "waiting",
                Some("no policy from the center yet".into()),
                None,
            );
        }
        let mut tick = tokio::time::interval(TICK);
        let mut deploy_tick = tokio::time::interval(DEPLOY_TICK);
        let mut next_verify = Instant::now() + VERIFY_EVERY;
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(Command::Config { policy, unlock, enabled }) => {
                        self.configure(policy, unlock, enabled).await
                    }
                    Some(Command::Stop(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                    }
                    None => return,
                },
                Some(v) = verdicts.recv() => self.verdict(v).await,
                Some(ev) = events.recv() => {
                    let mut batch = vec![ev];
                    tokio::time::sleep(BATCH).await;
                    while let Ok(e) = events.try_recv() {
                        batch.push(e);
                    }
                    // Privileged writes first: their changes are not tampering.
                    while let Ok(v) = verdicts.try_recv() {
                        self.verdict(v).await;
                    }
                    self.events(batch).await;
                }
                _ = deploy_tick.tick(), if self.mode == Mode::Deploy => self.deploy_check().await,
                _ = tick.tick() => {
                    self.on_tick().await;
                    if Instant::now() >= next_verify {
                        next_verify = Instant::now() + VERIFY_EVERY;
                        if self.mode == Mode::Locked {
                            self.verify().await;
                        }
                    }
                }
            }
        }
    }

    fn load(&self) -> Saved {
        std::fs::read(&self.file)
            .ok()
            .and_then(|b| match serde_json::from_slice(&b) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "tamper state unreadable; waiting for the center's policy");
                    None
                }
            })
            .unwrap_or_default()
    }

    fn save(&self) {
        let out = serde_json::to_vec(&self.saved)
            .map_err(anyhow::Error::from)
            .and_then(|b| write_atomic(&self.file, &b, 0o600));
        if let Err(e) = out {
            tracing::error!(error = %e, "saving the tamper state failed");
        }
    }

    fn set_state(&self, state: &str, reason: Option<String>, until: Option<i64>) {
        let mut problems = self.start_problems.clone();
        problems.extend(self.problems.iter().cloned());
        problems.truncate(10);
        if let Ok(mut r) = self.report.lock() {
            *r = TamperReport {
                state: state.into(),
                reason,
                until,
                directories: self.guard.as_ref().map_or(0, |g| g.marked()) as u64,
                files: self
                    .saved
                    .manifest
                    .values()
                    .filter(|e| e.kind == Kind::File)
                    .count() as u64,
                refused: self
                    .guard
                    .as_ref()
                    .map_or(0, |g| g.refused.load(std::sync::atomic::Ordering::Relaxed)),
                reverted: self.reverted,
                last_verify: self.last_verify,
                problems,
            };
        }
    }

    /// The unlock in force now: the console's until a time, or a window's.
    fn unlocked_until(&self, p: &TamperPolicy) -> Option<Option<i64>> {
        let now = unix_now();
        match self.saved.unlock.until {
            Some(t) if t > now => Some(Some(t)),
            _ if in_window(p, now) => Some(None),
            _ => None,
        }
    }

    async fn configure(
        &mut self,
        policy: Option<TamperPolicy>,
        unlock: TamperUnlock,
        enabled: bool,
    ) {
        self.enabled = enabled;
        if unlock != self.saved.unlock {
            self.saved.unlock = unlock;
            self.save();
        }
        let Some(p) = policy else {
            // A refused policy: keep what runs.
            self.on_tick().await;
            return;
        };
        if !enabled || !p.enabled {
            self.off(if enabled {
                "web tamper protection is off in the project's policy"
            } else {
                "protection is off for this server"
            });
            self.saved.policy = Some(p);
            self.save();
            return;
        }
        if self.applied.as_ref() == Some(&p) {
            self.on_tick().await;
            return;
        }
        self.apply(p).await;
    }

    /// Lifts everything: no lock, no guard; the reference is kept for a later policy.
    fn off(&mut self, why: &str) {
        if let Some(p) = self.applied.take() {
            self.unlock_all(&p);
        }
        if let Some(g) = self.guard.as_mut() {
            g.set(&self.root, &BTreeSet::new());
            g.set_execs(&self.root, &BTreeSet::new());
        }
        if let Some(w) = self.watch.as_mut() {
            w.set(&self.root, &BTreeSet::new());
        }
        self.mode = Mode::Off;
        self.deploy_pids.clear();
        self.set_state("off", Some(why.into()), None);
    }

    /// Every directory of the protected trees as the reference knows them.
    fn tree_dirs(&self, p: &TamperPolicy) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = p.directories.iter().map(|d| d.path.clone()).collect();
        out.extend(
            self.saved
                .manifest
                .iter()
                .filter(|(k, e)| e.kind == Kind::Dir && p.directories.iter().any(|d| d.covers(k)))
                .map(|(k, _)| k.clone()),
        );
        out
    }

    fn host(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Lifts the locks of the trees: the directories, and the files `lock_files` (or a stop)
    /// locked.
    fn unlock_all(&mut self, p: &TamperPolicy) {
        for d in self.tree_dirs(p) {
            let _ = lock::set(&self.host(&d), false);
        }
        self.lock_files(p, false);
    }

    /// Locks (or unlocks) every protected file of the reference; returns how many it set.
    fn lock_files(&self, p: &TamperPolicy, on: bool) -> usize {
        let mut n = 0;
        for (path, e) in self.saved.manifest.iter() {
            if e.kind == Kind::File
                && p.directories.iter().any(|d| d.covers(path))
                && lock::set(&self.host(path), on).is_ok()
            {
                n += 1;
            }
        }
        n
    }

    /// Takes a policy: every directory must exist (else the current one stays and the state
    /// names the path), then lock or unlock as the time says.
    async fn apply(&mut self, p: TamperPolicy) {
        if !self.enabled || !p.enabled {
            self.saved.policy = Some(p);
            self.save();
            self.off("web tamper protection is off");
            return;
        }
        for (i, d) in p.directories.iter().enumerate() {
            if !self.host(&d.path).is_dir() {
                let why = format!(
                    "directories[{i}].path: {} does not exist on this host or is not a directory; {}",
                    d.path,
                    if self.applied.is_some() {
                        "the previous policy stays"
                    } else {
                        "nothing is protected"
                    }
                );
                tracing::error!("{why}");
                self.set_state("failing", Some(why), None);
                return;
            }
        }
        if self.guard.is_none() || self.backup.is_none() {
            self.set_state("failing", Some(self.start_problems.join("; ")), None);
            return;
        }
        // Directories no longer protected are unlocked and forgotten.
        if let Some(old) = self.applied.take() {
            let dropped: Vec<String> = old
                .directories
                .iter()
                .filter(|d| !p.directories.iter().any(|n| n.path == d.path))
                .map(|d| d.path.clone())
                .collect();
            for root in &dropped {
                let keys: Vec<String> = self
                    .saved
                    .manifest
                    .keys()
                    .filter(|k| *k == root || k.starts_with(&format!("{root}/")))
                    .cloned()
                    .collect();
                for k in keys {
                    if self
                        .saved
                        .manifest
                        .get(&k)
                        .is_some_and(|e| matches!(e.kind, Kind::Dir | Kind::File))
                    {
                        let _ = lock::set(&self.host(&k), false);
                    }
                    self.saved.manifest.remove(&k);
                }
                let _ = lock::set(&self.host(root), false);
            }
        }
        if let Some(mut r) = self.guard.as_ref().and_then(|g| g.rules.write().ok()) {
            *r = Rules {
                privileged: p.privileged.clone(),
                dirs: p.directories.clone(),
            };
        }
        let restart = self.saved.policy.as_ref() == Some(&p) && !self.saved.manifest.is_empty();
        self.saved.policy = Some(p.clone());
        self.applied = Some(p.clone());
        match self.unlocked_until(&p) {
            Some(until) => self.unlock(until).await,
            None if restart => {
                // The reference from before the restart: what changed meanwhile goes back.
                self.lock_all().await;
                self.verify().await;
            }
            None => self.relock().await,
        }
        // A privileged process that was already running (a deploy across a restart).
        if self.mode == Mode::Locked {
            for (pid, exe) in running(&p.privileged) {
                self.start_deploy(pid, &exe).await;
            }
        }
        self.save();
    }

    /// Backs up the trees as they are now (the new reference) and locks them.
    async fn relock(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        self.set_state("starting", Some("taking the backup".into()), None);
        let (root, fp, known) = (
            self.root.clone(),
            as_fim(&p),
            std::mem::take(&mut self.saved.manifest),
        );
        // Hashing and copying a whole site takes a while: off the agent's one runtime thread.
        let backup = self.backup.clone();
        let (scan, manifest, failed) = tokio::task::spawn_blocking(move || {
            let scan = engine::scan(&root, &fp, Some(&known));
            let mut manifest = scan.baseline.clone();
            let failed = back_up(&root, backup.as_ref(), &mut manifest);
            (scan, manifest, failed)
        })
        .await
        .unwrap_or_default();
        self.problems = scan.errors.iter().take(5).cloned().collect();
        if scan.truncated {
            self.problems.push(format!(
                "more than {} entries: the rest is not protected",
                engine::MAX_ENTRIES
            ));
        }
        self.problems.extend(failed);
        self.saved.manifest = manifest;
        if let Some(b) = self.backup.as_ref() {
            let _ = b.prune(&[&self.saved.manifest]);
        }
        self.lock_all().await;
        self.save();
    }

    /// Locks every directory of the trees, and puts the guard and the watch on them and the
    /// guard on the privileged executables.
    async fn lock_all(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        let dirs = self.tree_dirs(&p);
        let mut problems = Vec::new();
        if let Some(w) = self.watch.as_mut() {
            w.set(&self.root, &dirs);
        }
        // With the files locked, the kernel refuses their writes: no open waits for the guard.
        let guarded = if p.lock_files {
            BTreeSet::new()
        } else {
            dirs.clone()
        };
        if let Some(g) = self.guard.as_mut() {
            problems.extend(g.set(&self.root, &guarded));
        }
        for d in dirs.iter() {
            if let Err(e) = lock::set(&self.host(d), true) {
                problems.push(format!("{d}: not locked ({e})"));
            }
        }
        // Without `lock_files`, files locked while the agent was stopped: the guard answers
        // for them again.
        if p.lock_files || problems.is_empty() {
            let want = self
                .saved
                .manifest
                .iter()
                .filter(|(_, e)| e.kind == Kind::File)
                .count();
            let set = self.lock_files(&p, p.lock_files);
            if p.lock_files && set < want {
                problems.push(format!(
                    "{} protected files could not be locked",
                    want - set
                ));
            }
        }
        if let Some(g) = self.guard.as_mut() {
            problems.extend(g.set_execs(&self.root, &p.privileged.iter().cloned().collect()));
            g.deploying
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        self.mode = Mode::Locked;
        self.deploy_pids.clear();
        self.problems.extend(problems.iter().cloned());
        if problems.is_empty() {
            let how = p.lock_files.then(|| {
                "files locked in the kernel: writes are refused at no cost per open, without an alarm for each".to_string()
            });
            self.set_state("protected", how, None);
        } else {
            self.set_state("failing", Some(problems.join("; ")), None);
        }
        tracing::info!(
            directories = dirs.len(),
            files = self.saved.manifest.len(),
            "web tamper protection on"
        );
    }

    /// The agent is stopping, and its guard with it: protected files get the immutable
    /// attribute too, so nothing writes them until the next start lifts it again (once the
    /// guard is back). A crash skips this: what is written then is put back at start.
    async fn stop(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        if self.mode != Mode::Locked {
            return;
        }
        let n = self.lock_files(&p, true);
        tracing::info!(
            files = n,
            "protected files locked while the agent is stopped"
        );
    }

    /// A privileged process started: the directory locks are lifted for it (the guard goes on
    /// refusing other writers).
    async fn start_deploy(&mut self, pid: u32, exe: &str) {
        if !self.deploy_pids.iter().any(|(p, _)| *p == pid) {
            self.deploy_pids.push((pid, Instant::now()));
        }
        if self.mode != Mode::Locked {
            return;
        }
        let Some(p) = self.applied.clone() else {
            return;
        };
        let dirs = self.tree_dirs(&p);
        if let Some(g) = self.guard.as_mut() {
            g.deploying
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if p.lock_files {
                // The guard takes over from the file locks before they go.
                for problem in g.set(&self.root, &dirs) {
                    tracing::warn!(problem, "deploy: a directory not guarded");
                }
            }
        }
        if p.lock_files {
            self.lock_files(&p, false);
        }
        for d in dirs.iter() {
            let _ = lock::set(&self.host(d), false);
        }
        self.mode = Mode::Deploy;
        tracing::info!(pid, exe, "a privileged process runs: deploy mode");
        self.set_state(
            "protected",
            Some(format!("a deploy is running ({exe}, pid {pid}): other processes' writes are refused, their new, renamed and removed files put back")),
            None,
        );
    }

    /// Ends the deploy once its privileged processes are gone: what they wrote is the new
    /// reference.
    async fn deploy_check(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        // Its exec was held while the locks went: for a moment its exe is still what ran it.
        self.deploy_pids.retain(|(pid, started)| {
            match std::fs::read_link(format!("/proc/{pid}/exe")) {
                Ok(e) => {
                    p.privileged.iter().any(|x| Path::new(x) == e)
                        || started.elapsed() < Duration::from_secs(2)
                }
                Err(_) => false,
            }
        });
        // A privileged process started while the deploy ran was not held at its exec, and its
        // verdict may still be queued: it is part of this deploy.
        for (pid, _) in running(&p.privileged) {
            if !self.deploy_pids.iter().any(|(q, _)| *q == pid) {
                self.deploy_pids.push((pid, Instant::now()));
            }
        }
        if self.deploy_pids.is_empty() {
            tracing::info!("the deploy ended; its result is the new reference");
            // From here a privileged exec waits for the relock to end, then starts a deploy.
            if let Some(g) = self.guard.as_ref() {
                g.deploying
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            self.relock().await;
        }
    }

    async fn unlock(&mut self, until: Option<i64>) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        self.unlock_all(&p);
        if let Some(g) = self.guard.as_mut() {
            g.set(&self.root, &BTreeSet::new());
            g.deploying
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(w) = self.watch.as_mut() {
            w.set(&self.root, &BTreeSet::new());
        }
        self.mode = Mode::Unlocked;
        self.deploy_pids.clear();
        let why = match until {
            Some(_) => "unlocked from the console",
            None => "an unlock window of the policy is open",
        };
        self.set_state("unlocked", Some(why.into()), until);
        tracing::info!(?until, "web tamper protection unlocked");
    }

    /// Windows opening and closing, unlocks ending, and a lock someone lifted put back.
    async fn on_tick(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        match (self.mode, self.unlocked_until(&p)) {
            (Mode::Locked | Mode::Deploy, Some(until)) => self.unlock(until).await,
            (Mode::Unlocked, None) => self.relock().await,
            (Mode::Locked, None) => {
                let mut lifted = Vec::new();
                let files = self
                    .saved
                    .manifest
                    .iter()
                    .filter(|(k, e)| {
                        p.lock_files
                            && e.kind == Kind::File
                            && p.directories.iter().any(|d| d.covers(k))
                    })
                    .map(|(k, _)| k.clone());
                for d in self.tree_dirs(&p).into_iter().chain(files) {
                    if !lock::locked(&self.host(&d)).unwrap_or(true) {
                        lifted.push(d.clone());
                        let _ = lock::set(&self.host(&d), true);
                    }
                }
                if !lifted.is_empty() {
                    tracing::warn!(
                        ?lifted,
                        "the immutable attribute was removed from protected directories; put back"
                    );
                    self.verify().await;
                }
            }
            (Mode::Unlocked, Some(until)) => {
                let reason = self.report.lock().ok().and_then(|r| r.reason.clone());
                self.set_state("unlocked", reason, until);
            }
            (Mode::Deploy | Mode::Off, None) | (Mode::Off, Some(_)) => {}
        }
    }

    async fn verdict(&mut self, v: Verdict) {
        match v {
            Verdict::Privileged { path } => {
                self.privileged_writes.insert(path, Instant::now());
            }
            Verdict::Exec { pid, exe, ready } => {
                if matches!(self.mode, Mode::Locked | Mode::Deploy) {
                    self.start_deploy(pid, &exe).await;
                }
                let _ = ready.send(());
            }
            Verdict::Refused { path, process, why } => {
                self.alarm(
                    &path,
                    Some(process),
                    vec![format!("write refused: {why}")],
                    "refused",
                )
                .await;
            }
        }
    }

    async fn events(&mut self, batch: Vec<WatchEvent>) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        if !matches!(self.mode, Mode::Locked | Mode::Deploy) {
            return;
        }
        self.privileged_writes
            .retain(|_, t| t.elapsed() < PRIVILEGED_GRACE);
        let mut accept = Vec::new();
        let mut check: Vec<(String, Option<ProcessInfo>)> = Vec::new();
        let mut overflow = false;
        for ev in batch {
            match ev {
                WatchEvent::Overflow => overflow = true,
                WatchEvent::Seen { path, process, .. } => {
                    if !p.directories.iter().any(|d| d.covers(&path)) {
                        continue;
                    }
                    // In a deploy, what privileged processes change becomes the reference at
                    // its end; locked, nothing changes legitimately.
                    let privileged = self.mode == Mode::Deploy
                        && (process.as_ref().is_some_and(|w| {
                            self.deploy_pids.iter().any(|(p, _)| *p == w.pid)
                                || (!w.exe.is_empty() && p.privileged.contains(&w.exe))
                        }) || self.privileged_writes.contains_key(&path));
                    if privileged {
                        accept.push(path);
                    } else if !check.iter().any(|(c, _)| *c == path) {
                        check.push((path, process));
                    }
                }
            }
        }
        if overflow {
            self.verify().await;
            return;
        }
        if !accept.is_empty() {
            self.accept(&p, &accept).await;
        }
        if !check.is_empty() {
            let paths: Vec<String> = check.iter().map(|(c, _)| c.clone()).collect();
            let changes = self.changes(&p, &paths);
            for c in changes {
                let who = check
                    .iter()
                    .find(|(path, _)| *path == c.path || Some(path) == c.from.as_ref())
                    .and_then(|(_, w)| w.clone());
                self.revert(c, who).await;
            }
        }
    }

    /// What changed at `paths` against the reference.
    fn changes(&self, p: &TamperPolicy, paths: &[String]) -> Vec<Change> {
        let (old, scan) = engine::rescan(&self.root, &as_fim(p), paths, &self.saved.manifest);
        engine::diff(&old, &scan.baseline)
    }

    /// A privileged process's change becomes the reference.
    async fn accept(&mut self, p: &TamperPolicy, paths: &[String]) {
        let (old, scan) = engine::rescan(&self.root, &as_fim(p), paths, &self.saved.manifest);
        for k in old.keys() {
            self.saved.manifest.remove(k);
        }
        // The privileged change stands whether or not its copy could be kept.
        let mut kept = scan.baseline.clone();
        for problem in back_up(&self.root, self.backup.as_ref(), &mut kept) {
            tracing::warn!(problem, "a privileged change could not be backed up");
        }
        self.saved.manifest.extend(scan.baseline);
        self.save();
    }

    /// Puts one change back as the reference says.
    async fn revert(&mut self, c: Change, who: Option<ProcessInfo>) {
        let started = Instant::now();
        let Some(b) = self.backup.as_ref() else {
            return;
        };
        let root = self.root.clone();
        let relock =
            self.mode == Mode::Locked && self.applied.as_ref().is_some_and(|p| p.lock_files);
        let parent = |p: &str| -> PathBuf {
            root.join(p.trim_start_matches('/'))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.clone())
        };
        let put_back = |path: &str, e: &engine::Entry| -> Result<String, String> {
            // A file someone locked is in the way of the rename.
            let dest = root.join(path.trim_start_matches('/'));
            let _ = lock::set(&dest, false);
            match lock::unlocked(&parent(path), || b.restore(&root, path, e)) {
                Ok(Ok(())) => {
                    if relock && e.kind == Kind::File {
                        let _ = lock::set(&dest, true);
                    }
                    Ok(format!("{path} restored from the backup"))
                }
                Ok(Err(err)) | Err(err) => Err(format!("{path}: restore failed ({err})")),
            }
        };
        let take_away = |path: &str| -> Result<String, String> {
            let dest = root.join(path.trim_start_matches('/'));
            let _ = lock::set(&dest, false);
            match lock::unlocked(&parent(path), || objects::remove(&dest)) {
                Ok(Ok(())) => Ok(format!("{path} removed")),
                Ok(Err(err)) | Err(err) => Err(format!("{path}: not removed ({err})")),
            }
        };
        let mut steps = Vec::new();
        match c.op {
            Operation::Create => steps.push(take_away(&c.path)),
            Operation::Move => {
                steps.push(take_away(&c.path));
                if let (Some(from), Some(old)) = (c.from.as_deref(), c.old.as_ref()) {
                    steps.push(put_back(from, old));
                }
            }
            Operation::Delete | Operation::Modify | Operation::Attributes => {
                if let Some(old) = c.old.as_ref() {
                    steps.push(put_back(&c.path, old));
                }
            }
        }
        let done: Vec<String> = steps.iter().filter_map(|s| s.clone().ok()).collect();
        let failed: Vec<String> = steps.iter().filter_map(|s| s.clone().err()).collect();
        self.reverted += 1;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(path = %c.path, op = c.op.as_str(), ms, "tampering reverted");
        let mut details = vec![format!("{} reverted in {ms:.1} ms", c.op.as_str())];
        details.extend(done);
        details.extend(failed.iter().cloned());
        let response = if failed.is_empty() {
            "reverted"
        } else {
            "revert failed"
        };
        self.alarm(&c.path, who, details, response).await;
    }

    /// Everything against the reference, put back where it differs.
    async fn verify(&mut self) {
        let Some(p) = self.applied.clone() else {
            return;
        };
        let (root, fp, known) = (self.root.clone(), as_fim(&p), self.saved.manifest.clone());
        let scan = tokio::task::spawn_blocking(move || engine::scan(&root, &fp, Some(&known)))
            .await
            .unwrap_or_default();
        self.last_verify = Some(unix_now());
        // Deepest first, so a directory's content is dealt with before the directory.
        let mut changes = engine::diff(&self.saved.manifest, &scan.baseline);
        changes.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        for c in changes {
            self.revert(c, None).await;
        }
        if self.mode == Mode::Locked {
            self.set_state("protected", None, None);
        }
    }

    async fn alarm(
        &mut self,
        path: &str,
        who: Option<ProcessInfo>,
        details: Vec<String>,
        response: &str,
    ) {
        let now = unix_now_ms();
        let slot = self.sent.entry(path.to_string()).or_insert((0, 0));
        if slot.0 != 0 && now.saturating_sub(slot.0) < REPEAT_MS {
            slot.1 += 1;
            return;
        }
        let count = 1 + std::mem::take(&mut slot.1);
        slot.0 = now;
        if self.sent.len() > 10_000 {
            self.sent
                .retain(|_, (t, _)| now.saturating_sub(*t) < REPEAT_MS);
        }
        let alarm = Alarm {
            ts: unix_now(),
            alarm_type: ALARM.into(),
            key: path.to_string(),
            count,
            evidence: Evidence {
                processes: who.into_iter().collect(),
                file: Some(path.to_string()),
                details: details.into_iter().take(10).collect(),
                response: Some(response.to_string()),
                ..Default::default()
            },
        };
        match self.records.push(&Message::Alarm(alarm)).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!("outbox full: a tamper alarm was dropped"),
            Err(e) => tracing::error!(error = %e, "queueing a tamper alarm failed"),
        }
        if let Ok(mut r) = self.report.lock() {
            r.reverted = self.reverted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::tamper::Window;

    #[test]
    fn windows_open_on_their_days_and_minutes() {
        let p = TamperPolicy {
            windows: vec![Window {
                days: vec![],
                start: "02:00".into(),
                end: "02:30".into(),
            }],
            ..Default::default()
        };
        // Find a local 02:10 and 03:00 near a known time.
        let base = 1_800_000_000i64;
        let off = local_offset_secs(base);
        let local_midnight = (base + off).div_euclid(86_400) * 86_400 - off;
        assert!(in_window(&p, local_midnight + 2 * 3600 + 600));
        assert!(!in_window(&p, local_midnight + 3 * 3600));
        assert!(
            !in_window(&p, local_midnight + 2 * 3600 + 30 * 60),
            "the end is outside"
        );
        let weekday = ((((local_midnight + off).div_euclid(86_400)) + 3).rem_euclid(7) + 1) as u8;
        let other = TamperPolicy {
            windows: vec![Window {
                days: vec![weekday % 7 + 1],
                ..p.windows[0].clone()
            }],
            ..Default::default()
        };
        assert!(
            !in_window(&other, local_midnight + 2 * 3600 + 600),
            "another day's window"
        );
    }
}
