//! The behaviour loop: sensor events, file changes and connection attempts in; alarms (with
//! the process chain, the executable's hash and what was done), isolate-and-kill and firewall
//! blocks out. Owns the process table and the detectors' state; nothing else touches them.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_agent_core::RecordSender;
use hostward_agent_core::util::{unix_now, unix_now_ms};
use hostward_proto::Message;
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_proto::behaviour::{BehaviourPolicy, SensorReport};
use hostward_proto::quarantine::IsolateRequest;
use hostward_sensor::{Event, Options, Sensor, Tier, Want, procfs};
use tokio::sync::mpsc;

use super::detect::files::{self, FileEvent, FileOp, ShellFile};
use super::detect::scan::Probe;
use super::detect::{Compiled, Detectors, Finding, accounts, is_package_manager};
use super::fswatch::{self, ShellPrint};
use super::netwatch;
use super::table::{Proc, Table};
use super::{Behaviour, Command, Config, SensorSetting};
use crate::bruteforce::runner::Handle as Firewall;
use crate::inventory::collect::hashcache::HashCache;
use crate::quarantine::Quarantine;

/// The same alarm (type and key) is sent at most this often; repeats in between are counted
/// into the next one (a storm of one command is one record every 10 s, not one per exec).
const REPEAT_MS: u64 = 10_000;
const TICK: Duration = Duration::from_secs(5);
/// File changes wait for the writer's exec to arrive from the sensor (which batches its
/// records up to 100 ms), so the alarm names the writer; at most this long.
const FILE_WAIT: Duration = Duration::from_millis(250);

/// Starts the sensor (per `cfg.sensor`) and the loop.
pub fn spawn(
    cfg: &Config,
    records: RecordSender,
    quarantine: Arc<Quarantine>,
    firewall: Option<Firewall>,
) -> Behaviour {
    let (tx, rx) = mpsc::channel(16);
    let report = Arc::new(Mutex::new(SensorReport {
        tier: "off".into(),
        reason: "starting".into(),
        ..Default::default()
    }));
    let cfg = cfg.clone();
    let r = report.clone();
    tokio::spawn(async move {
        let runner = Runner::start(cfg, records, quarantine, firewall, r).await;
        if let Some(runner) = runner {
            runner.run(rx).await;
        }
    });
    Behaviour::new(tx, report)
}

struct Runner {
    sensor: Option<Sensor>,
    events: mpsc::Receiver<Event>,
    files: mpsc::Receiver<FileEvent>,
    probes_tx: mpsc::Sender<Probe>,
    probes: mpsc::Receiver<Probe>,
    table: Table,
    det: Detectors,
    users: HashMap<u32, String>,
    shells: Vec<ShellFile>,
    shell_prints: Arc<Mutex<Vec<ShellPrint>>>,
    suid: HashMap<String, u32>,
    /// (type, key) -> (last sent ms, repeats since)
    sent: HashMap<(String, String), (u64, u32)>,
    hashes: HashCache,
    records: RecordSender,
    quarantine: Arc<Quarantine>,
    firewall: Option<Firewall>,
    report: Arc<Mutex<SensorReport>>,
    unavailable: Vec<String>,
    files_dropped: Arc<AtomicU64>,
    netns: Option<PathBuf>,
    honeypots: Vec<tokio::task::JoinHandle<()>>,
    honeypot_ports: Vec<u16>,
    enabled: bool,
    /// When a package manager last ran (sensor clock): shells it replaces are no alarm.
    installing_until_ns: u64,
    /// File changes whose writer the table does not know yet, oldest first.
    waiting_files: std::collections::VecDeque<(tokio::time::Instant, FileEvent)>,
}

fn read_users() -> HashMap<u32, String> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// The shells of /etc/shells (and the common ones), resolved, with their fingerprints.
fn read_shells() -> (Vec<ShellFile>, Vec<ShellPrint>) {
    let text = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let mut paths: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .map(String::from)
        .collect();
    paths.extend(["/bin/sh", "/bin/bash", "/bin/dash"].map(String::from));
    let mut files = Vec::new();
    let mut prints: Vec<ShellPrint> = Vec::new();
    for p in paths {
        let Ok(real) = std::fs::canonicalize(&p) else {
            continue;
        };
        let real_s = real.to_string_lossy().into_owned();
        if files.iter().any(|f: &ShellFile| f.path == real_s) {
            continue;
        }
        let Ok(m) = std::fs::metadata(&real) else {
            continue;
        };
        files.push(ShellFile {
            path: real_s.clone(),
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            size: m.size(),
        });
        if let Some(h) = crate::inventory::collect::hashcache::hash_file(&real) {
            prints.push(ShellPrint {
                path: real_s,
                size: m.size(),
                sha256: h,
            });
        }
    }
    (files, prints)
}

fn shell_now(f: &ShellFile) -> Option<ShellFile> {
    let m = std::fs::metadata(&f.path).ok()?;
    Some(ShellFile {
        path: f.path.clone(),
        dev: m.dev(),
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink(),
        size: m.size(),
    })
}

/// Set-user-ID and set-group-ID files in the program directories now.
fn suid_baseline() -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for d in files::PROGRAM_DIRS {
        let Ok(dir) = std::fs::read_dir(d) else {
            continue;
        };
        for e in dir.flatten() {
            if let Ok(m) = e.path().symlink_metadata()
                && m.is_file()
                && m.mode() & 0o6000 != 0
            {
                out.insert(e.path().to_string_lossy().into_owned(), m.mode() & 0o6000);
            }
        }
    }
    out
}

/// Processes alive before the sensor started, from /proc, so chains reach them.
fn seed(table: &mut Table) {
    let proc = Path::new("/proc");
    let Ok(dir) = std::fs::read_dir(proc) else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some(t) = procfs::task(proc, pid) else {
            continue;
        };
        let exe = std::fs::read_link(e.path().join("exe"))
            .map(|p| {
                p.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
            .unwrap_or_default();
        let argv = std::fs::read(e.path().join("cmdline"))
            .unwrap_or_default()
            .split(|&c| c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        table.seed(Proc {
            pid,
            ppid: t.ppid,
            sid: t.sid,
            uid: t.uid,
            euid: t.euid,
            exe,
            argv,
            ..Default::default()
        });
    }
}

impl Runner {
    async fn start(
        cfg: Config,
        records: RecordSender,
        quarantine: Arc<Quarantine>,
        firewall: Option<Firewall>,
        report: Arc<Mutex<SensorReport>>,
    ) -> Option<Runner> {
        let netns = cfg.netns.as_deref().map(netwatch::netns_path);
        let mut unavailable = Vec::new();
        let (sensor, events) = match cfg.sensor {
            SensorSetting::Off => {
                let mut r = report.lock().expect("report");
                r.tier = "off".into();
                r.reason =
                    "runtime detection is off in agent.toml ([behaviour] sensor = \"off\")".into();
                r.unavailable = vec!["all runtime detectors: the sensor is off".into()];
                return None;
            }
            s => {
                let want = if s == SensorSetting::Proc {
                    Want::Proc
                } else {
                    Want::Auto
                };
                let opts = Options {
                    want,
                    syscall_events: cfg.syscall_events,
                    proc: PathBuf::from("/proc"),
                };
                match Sensor::start(opts) {
                    Ok((sensor, rx)) => (Some(sensor), rx),
                    Err(e) => {
                        tracing::error!(error = %e, "no sensor tier works on this host");
                        unavailable.push(format!("process and network detectors: no sensor ({e})"));
                        (None, mpsc::channel(1).1)
                    }
                }
            }
        };
        // Loading parsed the kernel's BTF (megabytes, freed again): give it back.
        crate::mem::release();
        if let Some(s) = &sensor {
            tracing::info!(tier = s.tier.as_str(), reason = %s.reason, "runtime sensor started");
            if s.tier == Tier::Proc {
                unavailable.extend([
                    "abnormal_outbound: needs BPF (the proc-connector tier sees no connections)".to_string(),
                    "crypto_miner: pool connections need BPF (miner names and pool URLs are still detected)".into(),
                    "kernel_module: needs BPF (the proc-connector tier sees no module loads)".into(),
                    "fileless_execution: who created a memory file needs BPF (its execution is still detected)".into(),
                    "short-lived processes may be gone before /proc is read (counted as incomplete)".into(),
                ]);
            } else if !cfg.syscall_events {
                unavailable.extend([
                    "kernel_module: needs syscall_events = true in agent.toml ([behaviour])".to_string(),
                    "fileless_execution: who created a memory file needs syscall_events = true (its execution is still detected)".into(),
                ]);
            }
        }
        let mut table = Table::default();
        seed(&mut table);
        let (shells, prints) = read_shells();
        let shell_prints = Arc::new(Mutex::new(prints));
        let files_dropped = Arc::new(AtomicU64::new(0));
        let (ftx, files) = mpsc::channel(4096);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        match fswatch::watch(&fswatch::home_dirs(&passwd)) {
            Ok(w) => {
                let (p, d) = (shell_prints.clone(), files_dropped.clone());
                std::thread::Builder::new()
                    .name("fswatch".into())
                    .spawn(move || w.run(ftx, p, d))
                    .expect("spawning the file watcher");
            }
            Err(e) => unavailable.push(format!(
                "persistence, file privilege escalation, shell copies, account changes: file watching refused ({e})"
            )),
        }
        if !quarantine.can_refuse() {
            unavailable.push(
                "isolated files cannot be refused at exec (fanotify permission events refused)"
                    .into(),
            );
        }
        let (probes_tx, probes) = mpsc::channel(4096);
        match netwatch::open_syn_socket(netns.clone()) {
            Ok(fd) => {
                let tx = probes_tx.clone();
                std::thread::Builder::new()
                    .name("synwatch".into())
                    .spawn(move || netwatch::run_syn_reader(fd, tx))
                    .expect("spawning the SYN reader");
            }
            Err(e) => unavailable.push(format!("port_scan: {e}")),
        }
        let cfg = Compiled::new(BehaviourPolicy::default()).expect("the default policy is valid");
        let r = Runner {
            sensor,
            events,
            files,
            probes_tx,
            probes,
            table,
            det: Detectors::new(cfg, std::process::id()),
            users: read_users(),
            shells,
            shell_prints,
            suid: suid_baseline(),
            sent: HashMap::new(),
            hashes: HashCache::default(),
            records,
            quarantine,
            firewall,
            report,
            unavailable,
            files_dropped,
            netns,
            honeypots: Vec::new(),
            honeypot_ports: Vec::new(),
            enabled: true,
            installing_until_ns: 0,
            waiting_files: std::collections::VecDeque::new(),
        };
        r.update_report();
        Some(r)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // Accounts as they are when detection starts: what is wrong already is raised once.
        self.check_accounts(0).await;
        let mut tick = tokio::time::interval(TICK);
        let mut files_tick = tokio::time::interval(Duration::from_millis(50));
        files_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = files_tick.tick(), if !self.waiting_files.is_empty() => self.release_files().await,
                ev = self.events.recv(), if self.sensor.is_some() => {
                    let Some(ev) = ev else { self.sensor = None; continue };
                    self.on_event(ev).await;
                }
                fe = self.files.recv() => {
                    let Some(fe) = fe else { continue };
                    self.waiting_files.push_back((tokio::time::Instant::now(), fe));
                    self.release_files().await;
                }
                p = self.probes.recv() => {
                    let Some(p) = p else { continue };
                    let mut out = Vec::new();
                    self.det.scans.on_probe(&self.det.cfg, p, &mut out);
                    for f in out {
                        self.emit(f).await;
                    }
                }
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Enabled(on)) => {
                        if on != self.enabled {
                            tracing::info!(enabled = on, "behaviour detection switched");
                        }
                        self.enabled = on;
                    }
                    Some(Command::Policy(p)) => self.set_policy(*p).await,
                    Some(Command::Chain(pid, reply)) => {
                        // The asker saw the process act before this loop read its exec:
                        // what the sensor has delivered is read first.
                        while let Ok(ev) = self.events.try_recv() {
                            self.on_event(ev).await;
                        }
                        let users = &self.users;
                        let name = |uid: u32| users.get(&uid).cloned().unwrap_or_default();
                        let _ = reply.send(self.table.chain(pid, &name));
                    }
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    async fn set_policy(&mut self, p: BehaviourPolicy) {
        let ports = if p.on("honeypot") {
            p.honeypot_ports.clone()
        } else {
            Vec::new()
        };
        match Compiled::new(p) {
            Ok(c) => self.det.cfg = c,
            Err(e) => {
                tracing::error!("behaviour policy refused ({e}); keeping the current one");
                return;
            }
        }
        if ports != self.honeypot_ports {
            for h in self.honeypots.drain(..) {
                h.abort();
            }
            self.honeypot_ports = ports.clone();
            if !ports.is_empty() {
                match netwatch::open_honeypots(self.netns.clone(), ports) {
                    Ok(ls) => {
                        let opened: Vec<u16> = ls.iter().map(|(p, _)| *p).collect();
                        tracing::info!(ports = ?opened, "decoy ports open");
                        for (port, l) in ls {
                            self.honeypots.push(tokio::spawn(netwatch::run_honeypot(
                                port,
                                l,
                                self.probes_tx.clone(),
                            )));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "opening decoy ports failed"),
                }
            }
        }
    }

    async fn on_event(&mut self, ev: Event) {
        self.table.apply(&ev);
        if let Event::Exec(e) = &ev
            && is_package_manager(e.task.comm.as_str())
        {
            self.installing_until_ns = e.ts_ns + 120_000_000_000;
        }
        if !self.enabled {
            return;
        }
        for f in self.det.on_event(&ev, &self.table) {
            self.emit(f).await;
        }
    }

    /// Handles waiting file changes, in order, as far as their writers are known (or waited
    /// for long enough).
    async fn release_files(&mut self) {
        while let Some((at, fe)) = self.waiting_files.front() {
            let known = fe.pid == 0 || self.table.get(fe.pid).is_some_and(|p| !p.exe.is_empty());
            if !known && at.elapsed() < FILE_WAIT {
                break;
            }
            let (_, fe) = self.waiting_files.pop_front().expect("front exists");
            self.on_file(fe).await;
        }
    }

    async fn on_file(&mut self, fe: FileEvent) {
        if fe.pid != 0 && self.det.ours(&self.table, fe.pid) {
            return;
        }
        if matches!(fe.path.as_str(), "/etc/passwd" | "/etc/group")
            && matches!(fe.op, FileOp::Write | FileOp::MovedTo)
        {
            self.users = read_users();
            if self.enabled {
                self.check_accounts(fe.pid).await;
            }
        }
        if !self.enabled {
            return;
        }
        let mut out = Vec::new();
        files::on_file(&self.det.cfg, &fe, &self.table, &self.suid, &mut out);
        if let Some(f) = &fe.facts {
            if f.mode & 0o6000 != 0 {
                self.suid.insert(fe.path.clone(), f.mode & 0o6000);
            } else {
                self.suid.remove(&fe.path);
            }
        }
        for f in out {
            self.emit(f).await;
        }
    }

    async fn check_accounts(&mut self, pid: u32) {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let found = accounts::check(&passwd, &group);
        for f in self.det.accounts.update(&self.det.cfg, found, pid) {
            self.emit(f).await;
        }
    }

    /// CPU time of the running programs that are not system ones, for the sustained-load
    /// miner check.
    async fn sample_cpu(&mut self) {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let now = unix_now_ms();
        let candidates: Vec<(u32, String)> = self
            .table
            .iter()
            .filter(|p| p.exited_ns.is_none() && p.exe.starts_with('/'))
            .filter(|p| !crate::quarantine::system_file(Path::new(&p.exe)))
            .map(|p| (p.pid, p.exe.clone()))
            .collect();
        let mut alive = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (pid, exe) in candidates {
            if self.det.ours(&self.table, pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            let (Some(u), Some(s)) = (
                f.get(11).and_then(|x| x.parse::<f64>().ok()),
                f.get(12).and_then(|x| x.parse::<f64>().ok()),
            ) else {
                continue;
            };
            alive.insert(pid);
            self.det
                .cpu
                .on_sample(&self.det.cfg, pid, &exe, now, (u + s) / hz, &mut out);
        }
        self.det.cpu.retain(&alive);
        for f in out {
            self.emit(f).await;
        }
    }

    async fn on_tick(&mut self) {
        if self.enabled {
            self.sample_cpu().await;
        }
        let now: Vec<Option<ShellFile>> = self.shells.iter().map(shell_now).collect();
        let installing = hostward_sensor::boot_ns() < self.installing_until_ns;
        let found = files::shell_changes(
            &self.det.cfg,
            &self.shells,
            &now,
            installing || !self.enabled,
        );
        if now
            .iter()
            .zip(&self.shells)
            .any(|(n, b)| n.as_ref() != Some(b))
        {
            let (files, prints) = read_shells();
            self.shells = files;
            *self.shell_prints.lock().expect("prints") = prints;
        }
        for f in found {
            self.emit(f).await;
        }
        for f in self.det.release_relayed(hostward_sensor::boot_ns()) {
            self.emit(f).await;
        }
        if self.table.prune(hostward_sensor::boot_ns()) {
            crate::mem::release();
        }
        let cutoff = unix_now_ms().saturating_sub(REPEAT_MS * 6);
        self.sent.retain(|_, (at, n)| *at > cutoff || *n > 0);
        self.flush_repeats().await;
        self.update_report();
    }

    fn update_report(&self) {
        let mut r = self.report.lock().expect("report");
        match &self.sensor {
            Some(s) => {
                let st = s.stats();
                r.tier = s.tier.as_str().into();
                r.reason = s.reason.clone();
                r.seen_kernel = st.seen_kernel;
                r.dropped_kernel = st.dropped_kernel;
                r.received = st.received;
                r.dropped_user = st.dropped_user;
                r.incomplete = st.incomplete;
                r.undecodable = st.undecodable;
            }
            None => {
                r.tier = "off".into();
                r.reason = "no sensor tier works on this host".into();
            }
        }
        r.processes = self.table.len() as u64;
        r.unavailable = self.unavailable.clone();
        let dropped = self.files_dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            r.unavailable
                .push(format!("{dropped} file changes were lost (queue full)"));
        }
    }

    /// Sends alarms whose repeats were held back and whose window has passed.
    async fn flush_repeats(&mut self) {
        let now = unix_now_ms();
        let due: Vec<(String, String, u32)> = self
            .sent
            .iter_mut()
            .filter(|(_, (at, n))| *n > 0 && now.saturating_sub(*at) >= REPEAT_MS)
            .map(|((t, k), (at, n))| {
                let c = *n;
                *n = 0;
                *at = now;
                (t.clone(), k.clone(), c)
            })
            .collect();
        for (t, k, count) in due {
            let alarm = Alarm {
                ts: unix_now(),
                alarm_type: t,
                key: k,
                count,
                evidence: Evidence {
                    details: vec![format!(
                        "{count} repeat(s) in the last {} s",
                        REPEAT_MS / 1000
                    )],
                    ..Default::default()
                },
            };
            self.send(Message::Alarm(alarm)).await;
        }
    }

    async fn emit(&mut self, f: Finding) {
        let proc = self.table.get(f.pid).cloned();
        let sha256 = proc
            .as_ref()
            .filter(|p| p.exe.starts_with('/'))
            .and_then(|p| self.hashes.sha256(Path::new(&p.exe)));
        if self
            .det
            .cfg
            .whitelisted(f.alarm_type, proc.as_ref(), sha256.as_deref())
        {
            return;
        }
        let mut key = f.key.clone();
        if key.len() > 256 {
            let mut cut = 256;
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            key.truncate(cut);
        }
        let now = unix_now_ms();
        let slot = self
            .sent
            .entry((f.alarm_type.to_string(), key.clone()))
            .or_insert((0, 0));
        if slot.0 != 0 && now.saturating_sub(slot.0) < REPEAT_MS {
            slot.1 += 1;
            return;
        }
        *slot = (now, 0);
        let users = &self.users;
        let name = |uid: u32| users.get(&uid).cloned().unwrap_or_default();
        let mut processes = if f.pid != 0 {
            self.table.chain(f.pid, &name)
        } else {
            Vec::new()
        };
        if let Some(first) = processes.first_mut() {
            first.sha256 = sha256.clone();
        }
        // What to isolate: the program that dialled out, when it is no system program (the
        // dropper a shell was started by), else the process itself.
        let target = f
            .dialler
            .and_then(|d| self.table.get(d))
            .filter(|d| {
                d.exe.starts_with('/') && !crate::quarantine::system_file(Path::new(&d.exe))
            })
            .cloned()
            .or_else(|| proc.clone());
        let mut file = f.file.clone();
        if f.isolate
            && let Some(t) = &target
            && t.pid != f.pid
        {
            file = Some(t.exe.clone());
        }
        let mut response = None;
        if f.isolate && self.det.cfg.policy.auto_isolate && f.pid > 1 {
            let t = target.as_ref();
            let req = IsolateRequest {
                pid: Some(t.map(|t| t.pid).unwrap_or(f.pid)),
                path: t.map(|p| p.exe.clone()).filter(|e| e.starts_with('/')),
                reason: f.alarm_type.into(),
            };
            response = Some(match self.quarantine.isolate(req).await {
                Ok(o) => format!("isolated and killed automatically: {}", o.describe()),
                Err(e) => format!("automatic isolate and kill failed: {e}"),
            });
        }
        let mut blocked_until = None;
        if f.block
            && let (Some(fw), Some(ip)) = (&self.firewall, f.source_ip)
        {
            let minutes = self.det.cfg.policy.scan_block_minutes;
            match fw.block_for(ip, minutes, f.alarm_type).await {
                Ok(()) => blocked_until = Some(unix_now() + i64::from(minutes) * 60),
                Err(e) => response = Some(format!("blocking {ip} failed: {e}")),
            }
        }
        let details = f.details.iter().take(10).map(|d| clip(d, 512)).collect();
        let alarm = Alarm {
            ts: unix_now(),
            alarm_type: f.alarm_type.into(),
            key,
            count: 1,
            evidence: Evidence {
                source_ip: f.source_ip.map(|i| i.to_string()),
                blocked_until,
                processes,
                file: file.map(|p| clip(&p, 4096)),
                peer: f.peer.map(|p| p.to_string()),
                rule: f.rule,
                details,
                response,
                ..Default::default()
            },
        };
        tracing::info!(alarm_type = %alarm.alarm_type, key = %alarm.key, pid = f.pid, "behaviour alarm");
        self.send(Message::Alarm(alarm)).await;
    }

    async fn send(&self, msg: Message) {
        match self.records.push(&msg).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!("outbox full: a behaviour alarm was dropped"),
            Err(e) => tracing::error!(error = %e, "queueing a behaviour alarm failed"),
        }
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max - 3;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}
