//! The file integrity loop: a baseline of what the policy monitors (taken when a policy
//! arrives, kept in `<state_dir>/fim/baseline.json` so changes made while the agent was down
//! are found at start), real-time events through [`super::watch`] (the changed paths are
//! rescanned and diffed), a rescan after lost events, a metadata check every hour and a full
//! re-read every early morning. Changes go out as `file_changes` records; changes of
//! important files also as `important_file_change` alarms naming the writer.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_agent_core::RecordSender;
use hostward_agent_core::util::{local_offset_secs, unix_now, write_atomic};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence, ProcessInfo};
use hostward_proto::fim::{
    ChangeSource, FileChange, FileChanges, FimPolicy, FimReport, MAX_CHANGES,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::engine::{self, Baseline, Change, Kind};
use super::watch::{Watch, WatchEvent};

/// How long a burst of events is gathered before it is rescanned: a `sed -i` is a create, a
/// write and a rename, diffed as one change.
const BATCH: Duration = Duration::from_millis(20);
/// A metadata check of everything (hashes reused for unchanged files) this often.
const CHECK_EVERY: i64 = 3600;
/// Events queued between the reader thread and the loop; past it they are lost and counted,
/// and a rescan follows.
const QUEUE: usize = 8192;
const ALARM: &str = "important_file_change";

pub(crate) struct Command {
    pub policy: Option<FimPolicy>,
    pub enabled: bool,
}

/// What survives a restart: the baseline and the policy it was taken for.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    policy: Option<FimPolicy>,
    baseline: Baseline,
}

/// `behaviour`, when it runs, names writers that exited before /proc could be read (from its
/// process table, with their ancestors). `baits` (ransomware's bait files) are left out of the
/// changes: touching one is ransomware's alarm, not a change to the history.
pub fn spawn(
    cfg: &super::Config,
    root: PathBuf,
    state_dir: &Path,
    records: RecordSender,
    behaviour: Option<crate::behaviour::Behaviour>,
    baits: crate::ransom::Baits,
) -> super::Fim {
    let (tx, rx) = mpsc::channel(8);
    if !cfg.enabled {
        let report = Arc::new(Mutex::new(FimReport {
            state: "off".into(),
            reason: Some(
                "turned off on this host ([fim] enabled = false in agent.toml, or --fim off)"
                    .into(),
            ),
            ..Default::default()
        }));
        tokio::spawn(async move {
            let mut rx = rx;
            while rx.recv().await.is_some() {}
        });
        return super::Fim::new(tx, report);
    }
    let report = Arc::new(Mutex::new(FimReport {
        state: "waiting".into(),
        reason: Some("no policy from the center yet".into()),
        ..Default::default()
    }));
    let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
    let lost = Arc::new(AtomicU64::new(0));
    let (watch, watch_error) = match Watch::start(ev_tx, lost.clone(), false) {
        Ok(w) => (Some(w), None),
        Err(e) => {
            tracing::warn!(error = %e, "file integrity: no real-time events; scans only");
            (None, Some(e))
        }
    };
    let runner = Runner {
        root,
        file: state_dir.join("fim").join("baseline.json"),
        records,
        behaviour,
        baits,
        report: report.clone(),
        active: None,
        saved: Saved::default(),
        watch,
        watch_error,
        lost,
        overflows: 0,
        changes: 0,
        scan_errors: 0,
        problems: Vec::new(),
        truncated: false,
        last_scan: None,
    };
    tokio::spawn(runner.run(rx, ev_rx));
    super::Fim::new(tx, report)
}

struct Runner {
    root: PathBuf,
    file: PathBuf,
    records: RecordSender,
    behaviour: Option<crate::behaviour::Behaviour>,
    baits: crate::ransom::Baits,
    report: Arc<Mutex<FimReport>>,
    /// The policy being enforced; None while off.
    active: Option<FimPolicy>,
    saved: Saved,
    watch: Option<Watch>,
    watch_error: Option<String>,
    lost: Arc<AtomicU64>,
    overflows: u64,
    changes: u64,
    scan_errors: u64,
    problems: Vec<String>,
    truncated: bool,
    last_scan: Option<i64>,
}

/// The next full re-read: a random point between 02:00 and 05:00 local time.
fn next_full(now: i64) -> i64 {
    let off = local_offset_secs(now);
    let local_midnight = (now + off).div_euclid(86_400) * 86_400 - off;
    let at = local_midnight + 2 * 3600 + rand::random_range(0..3 * 3600);
    if at > now { at } else { at + 86_400 }
}

impl Runner {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<WatchEvent>,
    ) {
        self.saved = self.load();
        let mut next_check = unix_now() + CHECK_EVERY;
        let mut full_at = next_full(unix_now());
        loop {
            let until_check =
                Duration::from_secs((next_check.min(full_at) - unix_now()).max(1) as u64);
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.configure(c).await,
                    None => return,
                },
                Some(ev) = events.recv() => {
                    let mut batch = vec![ev];
                    tokio::time::sleep(BATCH).await;
                    while let Ok(e) = events.try_recv() {
                        batch.push(e);
                    }
                    self.events(batch).await;
                }
                _ = tokio::time::sleep(until_check) => {
                    let full = unix_now() >= full_at;
                    if full {
                        full_at = next_full(unix_now());
                    }
                    next_check = unix_now() + CHECK_EVERY;
                    if self.active.is_some() {
                        self.check(full).await;
                    }
                }
            }
        }
    }

    fn load(&self) -> Saved {
        match std::fs::read(&self.file) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(file = %self.file.display(), error = %e, "file integrity baseline unreadable; a new one is taken and changes since the last one are not reported");
                    Saved::default()
                }
            },
            Err(_) => Saved::default(),
        }
    }

    fn save(&self) {
        let write = || -> anyhow::Result<()> {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            write_atomic(&self.file, &serde_json::to_vec(&self.saved)?, 0o600)
        };
        if let Err(e) = write() {
            tracing::error!(error = %e, "saving the file integrity baseline failed");
        }
    }

    fn set_state(&self, state: &str, reason: Option<String>) {
        if let Ok(mut r) = self.report.lock() {
            *r = FimReport {
                state: state.into(),
                reason,
                files: self.saved.baseline.len() as u64,
                watched_dirs: self.watch.as_ref().map_or(0, |w| w.marked()) as u64,
                last_scan: self.last_scan,
                scan_errors: self.scan_errors,
                problems: self.problems.clone(),
                truncated: self.truncated,
                overflows: self.overflows + self.lost.load(Ordering::Relaxed),
                changes: self.changes,
            };
        }
    }

    fn live_state(&self) {
        match &self.watch_error {
            None => self.set_state("watching", None),
            Some(e) => self.set_state(
                "scan_only",
                Some(format!(
                    "no real-time events ({e}); changes are found by the hourly check"
                )),
            ),
        }
    }

    async fn configure(&mut self, c: Command) {
        let want = match (c.enabled, c.policy) {
            (false, _) => {
                self.stop("protection is off for this server");
                return;
            }
            (true, None) => return, // a refused policy: keep what runs
            (true, Some(p)) if !p.enabled => {
                self.stop("file integrity monitoring is off in the project's policy");
                return;
            }
            (true, Some(p)) => p,
        };
        if self.active.as_ref() == Some(&want) {
            return;
        }
        self.set_state("scanning", Some("taking the baseline".into()));
        let old_policy = self.saved.policy.clone();
        let old = std::mem::take(&mut self.saved.baseline);
        let (old, scan) = self.blocking_scan(&want, old, true).await;
        // Only what both the old and the new policy monitor can have changed; a path the new
        // policy adds is baselined, not reported as created.
        let changes: Vec<Change> = engine::diff(&old, &scan)
            .into_iter()
            .filter(|c| {
                old_policy
                    .as_ref()
                    .is_some_and(|op| engine::in_scope(op, c.from.as_deref().unwrap_or(&c.path)))
                    && engine::recorded(&want, c)
            })
            .collect();
        self.saved = Saved {
            policy: Some(want.clone()),
            baseline: scan,
        };
        self.active = Some(want);
        self.mark_all();
        self.report(changes, ChangeSource::Scan, &HashMap::new())
            .await;
        // What changed between the walk and the marks: a cheap check (hashes reused).
        self.check(false).await;
    }

    fn stop(&mut self, why: &str) {
        self.active = None;
        if let Some(w) = self.watch.as_mut() {
            w.set(&self.root, &BTreeSet::new());
        }
        self.set_state("off", Some(why.into()));
    }

    /// Scans on a blocking thread, with `known`'s hashes reused for unchanged files when
    /// `reuse` (see [`engine::scan`]); gives `known` back with the new baseline.
    async fn blocking_scan(
        &mut self,
        policy: &FimPolicy,
        known: Baseline,
        reuse: bool,
    ) -> (Baseline, Baseline) {
        let (root, p) = (self.root.clone(), policy.clone());
        let done = tokio::task::spawn_blocking(move || {
            let s = engine::scan(&root, &p, reuse.then_some(&known));
            (known, s)
        })
        .await;
        match done {
            Ok((known, s)) => {
                self.scan_errors = s.errors.len() as u64;
                self.problems = s.errors.iter().take(10).cloned().collect();
                self.truncated = s.truncated;
                self.last_scan = Some(unix_now());
                for e in s.errors.iter().take(5) {
                    tracing::warn!(error = %e, "file integrity scan");
                }
                (known, s.baseline)
            }
            Err(e) => {
                tracing::error!(error = %e, "file integrity scan failed");
                (Baseline::new(), Baseline::new())
            }
        }
    }

    /// The directories to mark: each important file's directory, each important directory,
    /// each monitored directory and (recursive ones) every directory below it.
    fn mark_all(&mut self) {
        let Some(p) = &self.active else { return };
        let mut want = BTreeSet::new();
        for f in &p.important_files {
            if let Some((dir, _)) = f.rsplit_once('/') {
                want.insert(if dir.is_empty() {
                    "/".into()
                } else {
                    dir.to_string()
                });
            }
            want.insert(f.clone());
        }
        for d in &p.directories {
            want.insert(d.path.clone());
            if d.recursive {
                want.extend(
                    self.saved
                        .baseline
                        .range(format!("{}/", d.path)..)
                        .take_while(|(k, _)| k.starts_with(&format!("{}/", d.path)))
                        .filter(|(_, e)| e.kind == Kind::Dir)
                        .map(|(k, _)| k.clone()),
                );
            }
        }
        if let Some(w) = self.watch.as_mut() {
            w.set(&self.root, &want);
        }
        self.live_state();
    }

    /// A check of everything against the baseline; `full` re-reads every file.
    async fn check(&mut self, full: bool) {
        let Some(p) = self.active.clone() else { return };
        let old = std::mem::take(&mut self.saved.baseline);
        let (old, new) = self.blocking_scan(&p, old, !full).await;
        let changes: Vec<Change> = engine::diff(&old, &new)
            .into_iter()
            .filter(|c| engine::recorded(&p, c))
            .collect();
        self.saved.baseline = new;
        self.mark_all();
        self.report(changes, ChangeSource::Scan, &HashMap::new())
            .await;
    }

    async fn events(&mut self, batch: Vec<WatchEvent>) {
        let Some(p) = self.active.clone() else { return };
        if batch.iter().any(|e| matches!(e, WatchEvent::Overflow))
            || self.lost.swap(0, Ordering::Relaxed) > 0
        {
            self.overflows += 1;
            tracing::warn!("file integrity: events were lost; rescanning");
            self.check(false).await;
            return;
        }
        let mut writers: HashMap<String, ProcessInfo> = HashMap::new();
        let mut paths: Vec<String> = Vec::new();
        for e in batch {
            if let WatchEvent::Seen { path, process, .. } = e {
                if !engine::in_scope(&p, &path) {
                    continue;
                }
                if let Some(proc_) = process {
                    writers.insert(path.clone(), proc_);
                }
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        if paths.is_empty() {
            return;
        }
        let (root, pol, known) = (
            self.root.clone(),
            p.clone(),
            std::mem::take(&mut self.saved.baseline),
        );
        let Ok((known, old, scan)) = tokio::task::spawn_blocking(move || {
            let (old, scan) = engine::rescan(&root, &pol, &paths, &known);
            (known, old, scan)
        })
        .await
        else {
            return;
        };
        let mut baseline = known;
        for k in old.keys() {
            baseline.remove(k);
        }
        let new_dirs: Vec<String> = scan
            .baseline
            .iter()
            .filter(|(k, e)| e.kind == Kind::Dir && !old.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let changes: Vec<Change> = engine::diff(&old, &scan.baseline)
            .into_iter()
            .filter(|c| engine::recorded(&p, c))
            .collect();
        baseline.extend(scan.baseline);
        self.saved.baseline = baseline;
        if let Some(w) = self.watch.as_mut() {
            for d in new_dirs {
                if p.directories.iter().any(|wd| wd.recursive && wd.covers(&d)) {
                    w.add(&self.root, &d);
                }
            }
        }
        self.report(changes, ChangeSource::Realtime, &writers).await;
    }

    /// Sends the changes and the important ones' alarms, and saves the baseline they lead to.
    async fn report(
        &mut self,
        mut changes: Vec<Change>,
        source: ChangeSource,
        writers: &HashMap<String, ProcessInfo>,
    ) {
        self.live_state();
        if let Ok(baits) = self.baits.read()
            && !baits.is_empty()
        {
            changes.retain(|c| {
                !baits.contains(&c.path) && c.from.as_ref().is_none_or(|f| !baits.contains(f))
            });
        }
        if changes.is_empty() {
            if source == ChangeSource::Scan {
                self.save();
            }
            return;
        }
        let Some(p) = self.active.clone() else { return };
        let now = unix_now();
        let mut out: Vec<FileChange> = Vec::with_capacity(changes.len());
        let mut alarms = Vec::new();
        let mut chains: HashMap<u32, Vec<ProcessInfo>> = HashMap::new();
        let mut waited = false;
        for c in changes {
            let chain = match writer_of(writers, &c) {
                Some(w) => match chains.get(&w.pid) {
                    Some(ch) => ch.clone(),
                    None => {
                        let ch = self.chain(&w, &mut waited).await;
                        chains.insert(w.pid, ch.clone());
                        ch
                    }
                },
                None => Vec::new(),
            };
            let process = chain.first().cloned();
            let important = engine::important(&p, &c.path)
                || c.from.as_deref().is_some_and(|f| engine::important(&p, f));
            let fc = FileChange {
                ts: now,
                path: c.path.clone(),
                op: c.op,
                from: c.from.clone(),
                important,
                old: c.old.as_ref().map(|e| e.state()),
                new: c.new.as_ref().map(|e| e.state()),
                process,
                source,
            };
            if important {
                alarms.push(Message::Alarm(alarm(&fc, chain)));
            }
            out.push(fc);
        }
        self.changes += out.len() as u64;
        tracing::info!(
            changes = out.len(),
            important = alarms.len(),
            source = source.as_str(),
            "file changes"
        );
        let mut msgs: Vec<Message> = out
            .chunks(MAX_CHANGES)
            .map(|c| {
                Message::FileChanges(FileChanges {
                    changes: c.to_vec(),
                })
            })
            .collect();
        msgs.extend(alarms);
        match self.records.push_all(&msgs).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!("outbox full: file changes were dropped"),
            Err(e) => tracing::error!(error = %e, "queueing file changes failed"),
        }
        self.save();
        self.live_state();
    }
}

impl Runner {
    /// The writer and its ancestors. The writer as /proc showed it at the event when it
    /// was still running, else (it exited first, like `echo > file`) as the behaviour
    /// module's process table knows it, after waiting once per report for the sensor's batch
    /// to bring its exec (the table keeps exited processes 30 s); the ancestors from the table.
    async fn chain(&self, seen: &ProcessInfo, waited: &mut bool) -> Vec<ProcessInfo> {
        let Some(b) = &self.behaviour else {
            return vec![seen.clone()];
        };
        if seen.exe.is_empty() && !*waited {
            tokio::time::sleep(Duration::from_millis(300)).await;
            *waited = true;
        }
        let mut ch = b.chain(seen.pid).await;
        if !seen.exe.is_empty() || ch.is_empty() {
            if ch.is_empty() {
                ch.push(seen.clone());
            } else {
                ch[0] = seen.clone();
            }
        }
        ch
    }
}

/// The writer of a change: the process the events named for its path, its old path, or the
/// nearest directory above it that the batch saw.
fn writer_of(writers: &HashMap<String, ProcessInfo>, c: &Change) -> Option<ProcessInfo> {
    let mut p = c.path.as_str();
    if let Some(w) = writers
        .get(p)
        .or_else(|| c.from.as_deref().and_then(|f| writers.get(f)))
    {
        return Some(w.clone());
    }
    while let Some((dir, _)) = p.rsplit_once('/') {
        if let Some(w) = writers.get(dir) {
            return Some(w.clone());
        }
        p = dir;
    }
    None
}

fn short(h: &Option<String>) -> String {
    match h {
        Some(h) if h.len() > 16 => h[..16].to_string(),
        Some(h) => h.clone(),
        None => "-".into(),
    }
}

/// The facts of a change, as an alarm's details.
pub fn details(c: &FileChange) -> Vec<String> {
    let mut d = vec![match &c.from {
        Some(f) => format!("{} (from {f})", c.op.as_str()),
        None => c.op.as_str().to_string(),
    }];
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => {
            if o.hash != n.hash {
                d.push(format!("blake3 {} -> {}", short(&o.hash), short(&n.hash)));
            }
            if o.size != n.size {
                d.push(format!("size {} -> {}", o.size, n.size));
            }
            if o.mode != n.mode {
                d.push(format!("mode {:04o} -> {:04o}", o.mode, n.mode));
            }
            if (o.uid, o.gid) != (n.uid, n.gid) {
                d.push(format!("owner {}:{} -> {}:{}", o.uid, o.gid, n.uid, n.gid));
            }
            if o.kind != n.kind {
                d.push(format!("kind {} -> {}", o.kind.as_str(), n.kind.as_str()));
            }
        }
        (None, Some(n)) => d.push(format!(
            "new {} blake3 {} size {}",
            n.kind.as_str(),
            short(&n.hash),
            n.size
        )),
        (Some(o), None) => d.push(format!("was blake3 {} size {}", short(&o.hash), o.size)),
        (None, None) => {}
    }
    if c.process.is_none() {
        d.push(match c.source {
            ChangeSource::Scan => "found by a scan: the writer is not known".into(),
            ChangeSource::Realtime => "the kernel did not name the writer".into(),
        });
    }
    d
}

fn alarm(c: &FileChange, chain: Vec<ProcessInfo>) -> Alarm {
    Alarm {
        ts: c.ts,
        alarm_type: ALARM.into(),
        key: c.path.clone(),
        count: 1,
        evidence: Evidence {
            processes: chain,
            file: Some(c.path.clone()),
            details: details(c),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::fim::{FileKind, FileState, Operation};

    #[test]
    fn an_alarm_says_what_changed_and_who_changed_it() {
        let st = |h: &str, size, mode| FileState {
            kind: FileKind::File,
            size,
            mode,
            uid: 0,
            gid: 0,
            hash: Some(h.repeat(64)),
        };
        let mut c = FileChange {
            ts: 5,
            path: "/etc/passwd".into(),
            op: Operation::Modify,
            from: None,
            important: true,
            old: Some(st("a", 100, 0o644)),
            new: Some(st("b", 120, 0o666)),
            process: None,
            source: ChangeSource::Scan,
        };
        let a = alarm(&c, Vec::new());
        assert_eq!(
            (a.alarm_type.as_str(), a.key.as_str()),
            (ALARM, "/etc/passwd")
        );
        assert!(
            hostward_proto::alarm::alarm_type(ALARM).is_some(),
            "in the catalog"
        );
        assert_eq!(
            a.evidence.details,
            [
                "modify",
                "blake3 aaaaaaaaaaaaaaaa -> bbbbbbbbbbbbbbbb",
                "size 100 -> 120",
                "mode 0644 -> 0666",
                "found by a scan: the writer is not known"
            ]
        );
        let sed = ProcessInfo {
            pid: 42,
            exe: "/usr/bin/sed".into(),
            ..Default::default()
        };
        c.process = Some(sed.clone());
        let a = alarm(&c, vec![sed]);
        assert_eq!(a.evidence.processes[0].exe, "/usr/bin/sed");
        assert!(!a.evidence.details.iter().any(|d| d.contains("not known")));
    }

    #[test]
    fn the_writer_is_found_by_path_old_path_or_directory() {
        let w = |pid| ProcessInfo {
            pid,
            ..Default::default()
        };
        let writers = HashMap::from([
            ("/srv/www/a.html".to_string(), w(1)),
            ("/srv/www/sub".to_string(), w(2)),
        ]);
        let ch = |path: &str, from: Option<&str>| Change {
            path: path.into(),
            op: Operation::Modify,
            from: from.map(String::from),
            old: None,
            new: None,
        };
        assert_eq!(
            writer_of(&writers, &ch("/srv/www/a.html", None))
                .unwrap()
                .pid,
            1
        );
        assert_eq!(
            writer_of(&writers, &ch("/srv/www/b.html", Some("/srv/www/a.html")))
                .unwrap()
                .pid,
            1
        );
        assert_eq!(
            writer_of(&writers, &ch("/srv/www/sub/x/y", None))
                .unwrap()
                .pid,
            2
        );
        assert!(writer_of(&writers, &ch("/srv/other", None)).is_none());
    }

    #[test]
    fn the_full_reread_is_early_in_the_morning_and_ahead() {
        let now = 1_800_000_000;
        let at = next_full(now);
        assert!(at > now && at - now <= 86_400 + 5 * 3600);
        let local = (at + local_offset_secs(at)).rem_euclid(86_400);
        assert!((2 * 3600..5 * 3600).contains(&local), "{local}");
    }
}
