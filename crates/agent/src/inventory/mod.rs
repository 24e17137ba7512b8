//! Inventory scheduling and diffing: runs each collector on its policy interval (or at once when
//! asked), compares the result with what was last sent, and queues a full snapshot or a diff in
//! the outbox, split into parts that fit a frame.
//!
//! Collectors, one per kind, live in `collect/`. This module answers the runtime: the policy
//! from each config, `collect_inventory` tasks; others (risk) ask it for collections through
//! its [`Handle`], as the module list wires them.
//!
//! What was last sent is kept per kind in `<state_dir>/inventory/<kind>.json` as item digests,
//! not items, and is written only after the records are queued, so a crash re-sends rather than
//! skips. If that file is lost or the center's copy drifted, the center sees a `base` it does
//! not hold and asks for a full snapshot.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod collect;

use anyhow::{Context, Result};
use hostward_agent_core::module::{BoxFuture, Module};
use hostward_agent_core::util::{unix_now, write_atomic};
use hostward_agent_core::{RecordSender, tasks};
use hostward_proto::inventory::COLLECT_INVENTORY_TASK;
use hostward_proto::inventory::{CollectIssue, CollectNow, Inventory as Record, Items};
use hostward_proto::{AgentConfig, InventoryKind, InventoryPolicy, MAX_FRAME_BYTES, Message, Task};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use collect::hashcache::sha256_hex;
use collect::{Collected, Ctx, HashCache};

/// Items of one record part, in serialised bytes, at most: well inside the frame limit.
const PART_BYTES: usize = MAX_FRAME_BYTES / 2;

/// What was last queued for one kind.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub digest: String,
    /// Item key → SHA-256 of the item's JSON.
    pub items: BTreeMap<String, String>,
    /// SHA-256 of the issues list, so a changed or cleared issue is sent even without item changes.
    pub issues: String,
}

/// The records to queue for one collection, and the state to remember once they are queued.
#[derive(Debug)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub sent: Sent,
    pub items: usize,
}

/// Compares a collection with what was sent. `prev == None` or `full` gives a full snapshot.
pub fn diff(c: Collected, prev: Option<&Sent>, full: bool, now: i64) -> Outcome {
    let mut items = c.items;
    let mut rows = items.rows();
    // Keys must be unique; a collector that reports one twice keeps the first.
    let mut seen = std::collections::HashSet::new();
    let keep: Vec<bool> = rows.iter().map(|r| seen.insert(r.key.clone())).collect();
    if keep.iter().any(|k| !k) {
        items.retain_indexed(|i| keep[i]);
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    let hashes: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.key.clone(), sha256_hex(r.json.as_bytes())))
        .collect();
    let digest = {
        let mut all = String::new();
        for (k, h) in &hashes {
            all.push_str(k);
            all.push('\0');
            all.push_str(h);
            all.push('\n');
        }
        sha256_hex(all.as_bytes())
    };
    let issues_hash = sha256_hex(
        serde_json::to_string(&c.issues)
            .unwrap_or_default()
            .as_bytes(),
    );
    let sent = Sent {
        digest: digest.clone(),
        items: hashes,
        issues: issues_hash,
    };
    let full = full || prev.is_none();
    let (upsert, removed): (Vec<bool>, Vec<String>) = match prev.filter(|_| !full) {
        None => (vec![true; rows.len()], vec![]),
        Some(p) => (
            rows.iter()
                .map(|r| p.items.get(&r.key) != sent.items.get(&r.key))
                .collect(),
            p.items
                .keys()
                .filter(|k| !sent.items.contains_key(*k))
                .cloned()
                .collect(),
        ),
    };
    let unchanged = !full
        && prev.is_some_and(|p| p.issues == sent.issues)
        && removed.is_empty()
        && !upsert.iter().any(|u| *u);
    let n = rows.len();
    if unchanged {
        return Outcome {
            records: vec![],
            sent,
            items: n,
        };
    }
    // Group the items to send into parts by serialised size.
    let mut part_of = vec![None; n];
    let (mut part, mut bytes) = (0u32, 0usize);
    for (i, r) in rows.iter().enumerate() {
        if !upsert[i] {
            continue;
        }
        if bytes > 0 && bytes + r.json.len() > PART_BYTES {
            part += 1;
            bytes = 0;
        }
        bytes += r.json.len();
        part_of[i] = Some(part);
    }
    let parts = part + 1;
    let base = match prev.filter(|_| !full) {
        Some(p) => p.digest.clone(),
        None => String::new(),
    };
    let records = (0..parts)
        .map(|p| {
            let mut its = items.clone();
            its.retain_indexed(|i| part_of[i] == Some(p));
            Record {
                collected_at: now,
                full,
                base: base.clone(),
                digest: digest.clone(),
                part: p,
                parts,
                items: its,
                removed: if p == 0 { removed.clone() } else { vec![] },
                issues: if p == 0 { c.issues.clone() } else { vec![] },
            }
        })
        .collect();
    Outcome {
        records,
        sent,
        items: n,
    }
}

/// Per-kind `Sent` files under `<state_dir>/inventory/`.
#[derive(Debug, Clone)]
pub struct SentStore {
    dir: PathBuf,
}

impl SentStore {
    pub fn new(state_dir: &Path) -> SentStore {
        SentStore {
            dir: state_dir.join("inventory"),
        }
    }

    fn path(&self, kind: InventoryKind) -> PathBuf {
        self.dir.join(format!("{}.json", kind.as_str()))
    }

    /// A missing or unreadable file means "nothing sent": the next record is a full snapshot.
    pub fn load(&self, kind: InventoryKind) -> Option<Sent> {
        let text = std::fs::read_to_string(self.path(kind)).ok()?;
        match serde_json::from_str(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(kind = %kind, error = %e, "inventory state unreadable; sending a full snapshot");
                None
            }
        }
    }

    pub fn save(&self, kind: InventoryKind, sent: &Sent) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let text = serde_json::to_vec(sent)?;
        write_atomic(&self.path(kind), &text, 0o600)
    }
}

/// What one collection produced, reported as a task result.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kind: InventoryKind,
    pub items: usize,
    pub records: usize,
    pub issues: usize,
    pub dropped: bool,
}

type Request = (CollectNow, oneshot::Sender<Vec<Summary>>);

/// Handle the daemon keeps: push policies and ask for collections.
#[derive(Clone)]
pub struct Handle {
    policy: watch::Sender<InventoryPolicy>,
    now: mpsc::Sender<Request>,
}

impl Handle {
    pub fn set_policy(&self, policy: InventoryPolicy) {
        self.policy.send_if_modified(|p| {
            let changed = *p != policy;
            *p = policy;
            changed
        });
    }

    /// Collects at once and returns when the records are queued.
    pub async fn collect_now(&self, req: CollectNow) -> Result<Vec<Summary>> {
        let (tx, rx) = oneshot::channel();
        self.now
            .send((req, tx))
            .await
            .map_err(|_| anyhow::anyhow!("inventory runner stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("inventory runner stopped"))
    }
}

impl Module for Handle {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn task_kinds(&self) -> &'static [&'static str] {
        &[COLLECT_INVENTORY_TASK]
    }

    fn on_config<'a>(&'a self, cfg: &'a AgentConfig) -> BoxFuture<'a, ()> {
        // A section that does not decode keeps the policy in force (see the risk module).
        match cfg.section() {
            Ok(policy) => self.set_policy(policy),
            Err(e) => tracing::error!("{e}; keeping the current inventory policy"),
        }
        Box::pin(async {})
    }

    /// Collects now (params: `{"kinds": [...], "full": bool}`, both optional) and reports per
    /// kind how many items it found and records it queued.
    fn on_task<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let req: CollectNow = tasks::params(task)?;
            let summary = self.collect_now(req).await.map_err(|e| e.to_string())?;
            serde_json::to_value(summary).map_err(|e| e.to_string())
        })
    }
}

/// Starts the runner on the current runtime. It stops when every [`Handle`] is dropped.
pub fn spawn(root: PathBuf, state_dir: &Path, outbox: RecordSender) -> Handle {
    let (policy_tx, policy_rx) = watch::channel(InventoryPolicy::default());
    let (now_tx, now_rx) = mpsc::channel(8);
    let runner = Runner {
        root,
        store: SentStore::new(state_dir),
        outbox,
        hashes: Arc::new(HashCache::default()),
        last_run: HashMap::new(),
    };
    tokio::spawn(runner.run(policy_rx, now_rx));
    Handle {
        policy: policy_tx,
        now: now_tx,
    }
}

struct Runner {
    root: PathBuf,
    store: SentStore,
    outbox: RecordSender,
    hashes: Arc<HashCache>,
    last_run: HashMap<InventoryKind, tokio::time::Instant>,
}

impl Runner {
    async fn run(
        mut self,
        mut policy: watch::Receiver<InventoryPolicy>,
        mut now: mpsc::Receiver<Request>,
    ) {
        loop {
            let pol = policy.borrow_and_update().clone();
            let t = tokio::time::Instant::now();
            let due: Vec<InventoryKind> = InventoryKind::ALL
                .into_iter()
                .filter(|k| pol.interval(*k) > 0)
                .filter(|k| {
                    self.last_run
                        .get(k)
                        .is_none_or(|l| t >= *l + Duration::from_secs(pol.interval(*k)))
                })
                .collect();
            if !due.is_empty() {
                for kind in due {
                    self.once(kind, false, &pol).await;
                }
                crate::mem::release_after_job().await;
            }
            let next = InventoryKind::ALL
                .into_iter()
                .filter(|k| pol.interval(*k) > 0)
                .filter_map(|k| {
                    self.last_run
                        .get(&k)
                        .map(|l| *l + Duration::from_secs(pol.interval(k)))
                })
                .min()
                .unwrap_or(t + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = policy.changed() => if changed.is_err() { return },
                req = now.recv() => match req {
                    None => return,
                    Some((req, reply)) => {
                        let pol = policy.borrow().clone();
                        let kinds = if req.kinds.is_empty() { InventoryKind::ALL.to_vec() } else { req.kinds.clone() };
                        let mut out = Vec::new();
                        for kind in kinds {
                            out.push(self.once(kind, req.full, &pol).await);
                        }
                        let _ = reply.send(out);
                        crate::mem::release_after_job().await;
                    }
                },
            }
        }
    }

    /// Collects one kind, queues what changed, remembers what was queued.
    async fn once(&mut self, kind: InventoryKind, full: bool, policy: &InventoryPolicy) -> Summary {
        self.last_run.insert(kind, tokio::time::Instant::now());
        let (root, hashes, pol) = (self.root.clone(), self.hashes.clone(), policy.clone());
        // Collectors read files and /proc: blocking work, off the runtime thread.
        let collected = tokio::task::spawn_blocking(move || {
            let ctx = Ctx {
                root: &root,
                policy: &pol,
                hashes: &hashes,
            };
            collect::collect(kind, &ctx)
        })
        .await;
        let collected = match collected {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(kind = %kind, error = %e, "collector crashed");
                Collected {
                    items: Items::empty(kind),
                    issues: vec![CollectIssue {
                        file: String::new(),
                        line: None,
                        message: format!("collector crashed: {e}"),
                    }],
                }
            }
        };
        for issue in &collected.issues {
            tracing::warn!(kind = %kind, file = %issue.file, line = issue.line, "inventory: {}", issue.message);
        }
        let issues = collected.issues.len();
        let prev = self.store.load(kind);
        let out = diff(collected, prev.as_ref(), full, unix_now());
        let mut dropped = false;
        for rec in &out.records {
            match self.outbox.push(&Message::Inventory(rec.clone())).await {
                Ok(Some(_)) => {}
                Ok(None) => dropped = true,
                Err(e) => {
                    tracing::error!(kind = %kind, error = %e, "could not queue inventory");
                    dropped = true;
                }
            }
        }
        if dropped {
            // Not remembered as sent: the next cycle's diff is against what the center holds,
            // and if parts were lost the center asks for a full snapshot.
            tracing::error!(kind = %kind, "outbox full: inventory record dropped");
        } else if !out.records.is_empty()
            && let Err(e) = self.store.save(kind, &out.sent)
        {
            tracing::error!(kind = %kind, error = %e, "could not save inventory state");
        }
        tracing::debug!(kind = %kind, items = out.items, records = out.records.len(), "inventory collected");
        Summary {
            kind,
            items: out.items,
            records: out.records.len(),
            issues,
            dropped,
        }
    }
}

/// CPU time and memory of this process, for `hostward-agent inventory --stats` and the bench.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_secs: f64,
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
}

pub fn usage() -> Usage {
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok();
    let cpu_secs = ru.map_or(0.0, |r| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(r.user_time()) + t(r.system_time())
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu_secs,
        rss_kb: field("VmRSS:"),
        peak_rss_kb: field("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::inventory::{Item, KernelModule};

    fn kmods(names: &[(&str, u64)]) -> Collected {
        Collected {
            items: Items::KernelModules(
                names
                    .iter()
                    .map(|(n, size)| KernelModule {
                        name: n.to_string(),
                        size: *size,
                        used_by: vec![],
                        state: "Live".into(),
                        path: None,
                        sha256: None,
                    })
                    .collect(),
            ),
            issues: vec![],
        }
    }

    fn keys(items: &Items) -> Vec<String> {
        items.rows().into_iter().map(|r| r.key).collect()
    }

    #[test]
    fn first_collection_is_a_full_snapshot_then_only_changes_travel() {
        let first = diff(kmods(&[("a", 1), ("b", 2)]), None, false, 10);
        assert_eq!(first.records.len(), 1);
        let r = &first.records[0];
        assert!(r.full && r.base.is_empty());
        assert_eq!(keys(&r.items), ["a", "b"]);

        let same = diff(kmods(&[("b", 2), ("a", 1)]), Some(&first.sent), false, 20);
        assert!(same.records.is_empty(), "nothing changed: nothing sent");
        assert_eq!(same.sent.digest, first.sent.digest, "order does not matter");

        let next = diff(kmods(&[("a", 9), ("c", 3)]), Some(&first.sent), false, 30);
        let r = &next.records[0];
        assert!(!r.full);
        assert_eq!(r.base, first.sent.digest);
        assert_eq!(r.digest, next.sent.digest);
        assert_eq!(keys(&r.items), ["a", "c"], "changed and added");
        assert_eq!(r.removed, ["b"]);

        let forced = diff(kmods(&[("a", 9), ("c", 3)]), Some(&next.sent), true, 40);
        assert!(forced.records[0].full && forced.records[0].removed.is_empty());
        assert_eq!(keys(&forced.records[0].items), ["a", "c"]);
    }

    #[test]
    fn a_changed_issue_list_is_sent_even_without_item_changes() {
        let first = diff(kmods(&[("a", 1)]), None, false, 1);
        let mut c = kmods(&[("a", 1)]);
        c.issues.push(CollectIssue {
            file: "/proc/modules".into(),
            line: Some(3),
            message: "bad".into(),
        });
        let out = diff(c, Some(&first.sent), false, 2);
        assert_eq!(out.records.len(), 1);
        assert!(out.records[0].items.is_empty());
        assert_eq!(out.records[0].issues.len(), 1);
        let cleared = diff(kmods(&[("a", 1)]), Some(&out.sent), false, 3);
        assert_eq!(cleared.records.len(), 1, "clearing the issue is news too");
    }

    #[test]
    fn big_snapshots_are_split_into_parts_that_fit_a_frame() {
        let names: Vec<(String, u64)> = (0..20_000)
            .map(|i| (format!("module_with_a_long_name_{i:06}"), i))
            .collect();
        let refs: Vec<(&str, u64)> = names.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let out = diff(kmods(&refs), None, false, 1);
        assert!(out.records.len() > 1, "{} parts", out.records.len());
        let mut total = 0;
        for (i, r) in out.records.iter().enumerate() {
            assert_eq!((r.part, r.parts), (i as u32, out.records.len() as u32));
            assert_eq!(r.digest, out.sent.digest);
            let frame =
                hostward_proto::Envelope::record(1, Message::Inventory(r.clone())).to_json();
            assert!(
                frame.len() < MAX_FRAME_BYTES,
                "part {i}: {} bytes",
                frame.len()
            );
            total += r.items.len();
        }
        assert_eq!(total, 20_000);
    }

    #[test]
    fn duplicate_keys_keep_the_first_item() {
        let out = diff(kmods(&[("a", 1), ("a", 2)]), None, false, 1);
        let Items::KernelModules(v) = &out.records[0].items else {
            panic!()
        };
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].key(), v[0].size), ("a".to_string(), 1));
    }

    #[test]
    fn sent_state_round_trips_and_a_corrupt_file_means_full_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = SentStore::new(dir.path());
        assert_eq!(store.load(InventoryKind::Ports), None);
        let out = diff(kmods(&[("a", 1)]), None, false, 1);
        store.save(InventoryKind::Ports, &out.sent).unwrap();
        assert_eq!(store.load(InventoryKind::Ports), Some(out.sent));
        std::fs::write(dir.path().join("inventory/ports.json"), b"{garbage").unwrap();
        assert_eq!(store.load(InventoryKind::Ports), None);
    }

    #[test]
    fn collect_now_requests_parse_strictly() {
        let r: CollectNow =
            serde_json::from_value(serde_json::json!({"kinds": ["ports"], "full": true})).unwrap();
        assert_eq!(
            r,
            CollectNow {
                kinds: vec![InventoryKind::Ports],
                full: true
            }
        );
        assert!(
            serde_json::from_value::<CollectNow>(serde_json::json!({"kinds": ["secrets"]}))
                .is_err()
        );
        assert_eq!(
            serde_json::from_value::<CollectNow>(serde_json::Value::Null).ok(),
            None
        );
    }
}
