//! The quarantine module (tasks `isolate_kill`, `quarantine_restore`, `quarantine_delete`):
//! kills a process tree and isolates its executable (`vault`), refuses isolated files at exec,
//! copies included (`deny`), restores and deletes. A shared service: the behaviour module's
//! automatic isolate-and-kill and the malware module call the same [`Quarantine`]; the
//! malware module also sets the exec check that holds a first run for a scan.
//! Every change goes to the center as an `isolated_file` record.

pub mod deny;
pub mod kill;
pub mod vault;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use hostward_agent_core::RecordSender;
use hostward_agent_core::module::{BoxFuture, Module};
use hostward_agent_core::util::unix_now;
use hostward_proto::quarantine::{
    DELETE_TASK, FileRef, ISOLATE_TASK, IsolateRequest, IsolatedFile, RESTORE_TASK,
};
use hostward_proto::{AgentConfig, Message, Task};
use serde_json::json;

pub struct Quarantine {
    proc: PathBuf,
    vault: Mutex<vault::Vault>,
    denied: deny::Denied,
    check: deny::Check,
    deny: Option<Mutex<deny::Deny>>,
    /// Execs refused since start.
    pub refused: Arc<AtomicU64>,
    records: RecordSender,
}

/// What an isolate-and-kill did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub killed: Vec<u32>,
    pub entry: Option<vault::Entry>,
    /// Why the file was not isolated (kill only), in words.
    pub file_problem: Option<String>,
}

impl Outcome {
    pub fn describe(&self) -> String {
        let mut s = format!("killed {} process(es)", self.killed.len());
        match (&self.entry, &self.file_problem) {
            (Some(e), _) => s.push_str(&format!(
                "; {} isolated (SHA-256 {})",
                e.path,
                &e.sha256[..16]
            )),
            (None, Some(p)) => s.push_str(&format!("; file not isolated: {p}")),
            (None, None) => {}
        }
        s
    }
}

/// System directories: a reverse shell run by /usr/bin/bash is killed, but bash stays.
/// `/usr/local` is where attackers drop tools, so it is not one.
pub fn system_file(p: &Path) -> bool {
    !p.starts_with("/usr/local")
        && ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/boot"]
            .iter()
            .any(|d| p.starts_with(d))
}

pub fn spawn(state_dir: &Path, records: RecordSender) -> Arc<Quarantine> {
    let vault = vault::Vault::open(state_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "quarantine directory unusable; isolating into a temporary one");
        vault::Vault::open(&std::env::temp_dir().join("hostward-quarantine")).expect("temp quarantine")
    });
    let denied: deny::Denied = Arc::new(Mutex::new(vault.denied()));
    let refused = Arc::new(AtomicU64::new(0));
    let check: deny::Check = Arc::default();
    let deny = match deny::open() {
        Ok(mut d) => {
            let fd = d.raw_fd();
            let (list, c, count) = (denied.clone(), check.clone(), refused.clone());
            std::thread::Builder::new()
                .name("exec-deny".into())
                .spawn(move || deny::Deny::serve(fd, list, c, count))
                .expect("spawning the exec-deny thread");
            let on = !vault.denied().is_empty();
            for p in d.set(on) {
                tracing::warn!(problem = %p, "exec deny mark");
            }
            Some(Mutex::new(d))
        }
        Err(e) => {
            tracing::warn!(error = %e, "isolated files cannot be refused at exec on this kernel");
            None
        }
    };
    Arc::new(Quarantine {
        proc: PathBuf::from("/proc"),
        vault: Mutex::new(vault),
        denied,
        check,
        deny,
        refused,
        records,
    })
}

fn record(e: &vault::Entry, action: &str) -> Message {
    Message::IsolatedFile(IsolatedFile {
        ts: unix_now(),
        id: e.id.clone(),
        action: action.into(),
        path: e.path.clone(),
        sha256: e.sha256.clone(),
        size: e.size,
        uid: e.uid,
        gid: e.gid,
        mode: e.mode,
        reason: e.reason.clone(),
        killed: e.killed.iter().take(256).copied().collect(),
    })
}

impl Quarantine {
    fn refresh_deny(&self) {
        let list = self.vault.lock().expect("vault").denied();
        let on = !list.is_empty() || self.check.read().is_ok_and(|c| c.is_some());
        *self.denied.lock().expect("denied") = list;
        if let Some(d) = &self.deny {
            for p in d.lock().expect("deny").set(on) {
                tracing::warn!(problem = %p, "exec deny mark");
            }
        }
    }

    /// Sets (or, with None, removes) the check every program not yet allowed is put to before
    /// it runs; the cache of allowed programs is dropped, so each is checked again.
    pub fn set_exec_check(&self, check: Option<deny::ExecCheck>) {
        *self.check.write().expect("exec check") = check;
        self.refresh_deny();
        if let Some(d) = &self.deny {
            for p in d.lock().expect("deny").reset() {
                tracing::warn!(problem = %p, "exec deny mark");
            }
        }
    }

    /// Whether isolated files are refused at exec here.
    pub fn can_refuse(&self) -> bool {
        self.deny.is_some()
    }

    /// Kills the tree of `pid` (when it still runs `path`, if given) and isolates its
    /// executable, or isolates `path` alone.
    pub async fn isolate(self: &Arc<Self>, req: IsolateRequest) -> Result<Outcome, String> {
        req.validate()?;
        let me = self.clone();
        let outcome = tokio::task::spawn_blocking(move || me.isolate_blocking(&req))
            .await
            .map_err(|e| e.to_string())??;
        if let Some(e) = &outcome.entry {
            self.refresh_deny();
            self.send(record(e, "isolated")).await;
        }
        Ok(outcome)
    }

    fn isolate_blocking(&self, req: &IsolateRequest) -> Result<Outcome, String> {
        let mut file: Option<PathBuf> = req.path.as_ref().map(PathBuf::from);
        let mut killed = Vec::new();
        if let Some(pid) = req.pid {
            let link = std::fs::read_link(self.proc.join(pid.to_string()).join("exe")).ok();
            let running = link.as_ref().map(|l| l.to_string_lossy().into_owned());
            match (&running, &req.path) {
                (None, None) => return Err(format!("process {pid} is not running")),
                (Some(r), Some(p)) if r.trim_end_matches(" (deleted)") != p => {
                    return Err(format!("process {pid} now runs {r}, not {p}: not killed"));
                }
                _ => {}
            }
            if running.is_some() {
                killed = kill::kill_tree(&self.proc, pid);
            }
            if file.is_none() {
                file = running.map(PathBuf::from);
            }
        }
        let mut problem = None;
        let entry = match file {
            Some(f)
                if f.to_string_lossy().ends_with(" (deleted)")
                    || f.to_string_lossy().starts_with("/memfd:") =>
            {
                problem = Some("the program ran from memory or a deleted file".into());
                None
            }
            Some(f) if system_file(&f) => {
                problem = Some(format!(
                    "{} is a system program (isolating it would break the host); only the processes were killed",
                    f.display()
                ));
                None
            }
            Some(f) => {
                match self
                    .vault
                    .lock()
                    .expect("vault")
                    .isolate(&f, &req.reason, killed.clone())
                {
                    Ok(e) => Some(e),
                    Err(e) if req.pid.is_some() => {
                        problem = Some(e);
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        Ok(Outcome {
            killed,
            entry,
            file_problem: problem,
        })
    }

    pub async fn restore(&self, id: &str) -> Result<vault::Entry, String> {
        let e = self.vault.lock().expect("vault").restore(id)?;
        self.refresh_deny();
        self.send(record(&e, "restored")).await;
        Ok(e)
    }

    pub async fn delete(&self, id: &str) -> Result<vault::Entry, String> {
        let e = self.vault.lock().expect("vault").delete(id)?;
        self.send(record(&e, "deleted")).await;
        Ok(e)
    }

    async fn send(&self, msg: Message) {
        match self.records.push(&msg).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!("outbox full: a quarantine record was dropped"),
            Err(e) => tracing::error!(error = %e, "queueing a quarantine record failed"),
        }
    }
}

/// The module face: the three tasks.
pub struct QuarantineModule(pub Arc<Quarantine>);

impl Module for QuarantineModule {
    fn name(&self) -> &'static str {
        "quarantine"
    }

    fn task_kinds(&self) -> &'static [&'static str] {
        &[ISOLATE_TASK, RESTORE_TASK, DELETE_TASK]
    }

    fn on_config<'a>(&'a self, _config: &'a AgentConfig) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            match task.kind.as_str() {
                ISOLATE_TASK => {
                    let req: IsolateRequest = serde_json::from_value(task.params.clone())
                        .map_err(|e| format!("params: {e}"))?;
                    let o = self.0.isolate(req).await?;
                    Ok(json!({
                        "killed": o.killed,
                        "isolated": o.entry.as_ref().map(|e| json!({"id": e.id, "path": e.path, "sha256": e.sha256})),
                        "file_problem": o.file_problem,
                        "summary": o.describe(),
                    }))
                }
                RESTORE_TASK | DELETE_TASK => {
                    let r: FileRef = serde_json::from_value(task.params.clone())
                        .map_err(|e| format!("params: {e}"))?;
                    let e = if task.kind == RESTORE_TASK {
                        self.0.restore(&r.id).await?
                    } else {
                        self.0.delete(&r.id).await?
                    };
                    Ok(json!({"id": e.id, "path": e.path}))
                }
                other => Err(format!("unknown task kind {other:?}")),
            }
        })
    }
}
