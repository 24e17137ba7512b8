//! Vulnerability matching. The advisories live in the database (so every replica sees the same
//! ones); each replica keeps one in-memory [`Matcher`] for the current database version and
//! rebuilds it when the version moves. A job matches every server whose `risk_state` says its
//! software was not matched against the current version: after an import that is every server,
//! after a software inventory record just that one. Matching is idempotent, so two replicas
//! doing the same server is wasted work, never wrong data.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hostward_proto::HostFacts;
use hostward_vulndb::{Finding, Host, Matcher, Restart};
use tokio::sync::{Mutex, Notify};

use crate::AppState;
use hostward_store::{MatchedVuln, Store, VulnDbImport};

/// Servers matched per round of the job; the rest follow in the next round at once.
const BATCH: i64 = 200;
/// How often a replica looks for work it was not woken for (imports through another replica or
/// the CLI, software records held by another replica).
const POLL: Duration = Duration::from_secs(2);

/// The matcher of one database version.
type Loaded = Option<(i64, Arc<Matcher>)>;

#[derive(Clone, Default)]
pub struct Analyzer {
    matcher: Arc<Mutex<Loaded>>,
    wake: Arc<Notify>,
}

impl Analyzer {
    /// Asks the job to look for work now (a software record arrived).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Matches servers until none is behind the current version, every [`POLL`] or on [`wake`].
    pub fn spawn(state: AppState) {
        tokio::spawn(async move {
            loop {
                match state.analyzer.run_once(&state.store).await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "vulnerability matching failed"),
                }
                tokio::select! {
                    _ = state.analyzer.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    /// One round: matches up to [`BATCH`] servers that are behind. Returns how many it matched.
    pub async fn run_once(&self, store: &Store) -> anyhow::Result<usize> {
        let version = store.vulndb_version().await?;
        let ids = store.servers_to_match(version, BATCH).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let (version, matcher) = self.matcher(store, version).await?;
        for id in &ids {
            let Some(server) = store.server(id).await? else {
                continue;
            };
            let facts: HostFacts = serde_json::from_value(server.facts.clone()).unwrap_or_default();
            let packages = store.installed_packages(id).await?;
            let m = matcher.clone();
            let matched = tokio::task::spawn_blocking(move || {
                let host = Host {
                    os_id: facts.os_id,
                    os_version: facts.os_version,
                    kernel: facts.kernel,
                };
                let managers: HashMap<&str, &str> = packages
                    .iter()
                    .map(|p| (p.name.as_str(), p.manager.as_str()))
                    .collect();
                m.match_host(&host, &packages)
                    .into_iter()
                    .map(|f| {
                        let manager = managers.get(f.package.as_str()).copied().unwrap_or("dpkg");
                        matched(f, manager)
                    })
                    .collect::<Vec<MatchedVuln>>()
            })
            .await?;
            let out = store.apply_vuln_matches(id, version, &matched).await?;
            metrics::counter!(crate::metrics::VULN_MATCHES).increment(1);
            tracing::info!(server_id = %id, version, present = out.present, detected = out.detected, gone = out.gone, "matched vulnerabilities");
        }
        Ok(ids.len())
    }

    /// The matcher for the database as it is now, rebuilt when the version moved.
    async fn matcher(&self, store: &Store, version: i64) -> anyhow::Result<(i64, Arc<Matcher>)> {
        let mut cached = self.matcher.lock().await;
        if let Some((v, m)) = cached.as_ref()
            && *v == version
        {
            return Ok((*v, m.clone()));
        }
        let (version, rows) = store.vulndb_advisories().await?;
        let built = tokio::task::spawn_blocking(move || {
            let advisories: Vec<hostward_vulndb::Advisory> = rows
                .iter()
                // Written by `import` from decoded advisories; a row this build cannot read
                // (a newer center wrote it) is left out rather than stopping all matching.
                .filter_map(|r| serde_json::from_str(r).ok())
                .collect();
            Matcher::new(&advisories)
        })
        .await?;
        let built = Arc::new(built);
        *cached = Some((version, built.clone()));
        tracing::info!(version, "vulnerability matcher loaded");
        Ok((version, built))
    }
}

fn matched(f: Finding, manager: &str) -> MatchedVuln {
    MatchedVuln {
        advisory_id: f.advisory_id,
        cve: f.cve,
        package: f.package,
        source_package: f.source_package,
        manager: manager.to_string(),
        installed_version: f.installed_version,
        fixed_version: f.fixed_version,
        cvss: f.cvss_score,
        severity: f.severity,
        summary: f.summary,
        fix_command: f.fix_command,
        restart: match f.restart {
            Restart::None => "none",
            Restart::Service => "service",
            Restart::Reboot => "reboot",
        }
        .to_string(),
    }
}

/// Why an import stored nothing. The database is as it was.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailed {
    #[error("{0}")]
    Feed(#[from] hostward_vulndb::ImportError),
    #[error("no advisory could be imported ({skipped} records skipped; first: {first})")]
    Nothing { skipped: usize, first: String },
    #[error("storing the advisories: {0}")]
    Store(#[from] hostward_store::StoreError),
    #[error("reading the feed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Reads a feed (an OSV file, a directory or zip of them, or a Debian Security Tracker JSON) and
/// stores its advisories in one transaction. Records that do not parse are skipped and reported;
/// if nothing is importable, nothing is stored.
pub async fn import(
    store: &Store,
    path: &Path,
    source: &str,
    replace: bool,
    imported_by: &str,
) -> Result<VulnDbImport, ImportFailed> {
    let owned = path.to_path_buf();
    // Skipped records are named relative to the feed: the center's own paths are not for
    // every console user to see.
    let root = path.display().to_string();
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (rows, skipped) = tokio::task::spawn_blocking(move || {
        hostward_vulndb::import_path(&owned).map(|report| {
            let rows: Vec<(String, String)> = report
                .advisories
                .iter()
                .map(|a| {
                    (
                        a.id.clone(),
                        serde_json::to_string(a).expect("advisory serialises"),
                    )
                })
                .collect();
            let skipped: Vec<(String, String)> = report
                .skipped
                .into_iter()
                .map(|s| {
                    let name = match s.source.strip_prefix(&root) {
                        Some(rest) => format!("{base}{rest}"),
                        None => s.source,
                    };
                    (name, s.reason)
                })
                .collect();
            (rows, skipped)
        })
    })
    .await??;
    if rows.is_empty() {
        return Err(ImportFailed::Nothing {
            skipped: skipped.len(),
            first: skipped
                .first()
                .map(|(s, r)| format!("{s}: {r}"))
                .unwrap_or_else(|| "the feed holds no records".into()),
        });
    }
    Ok(store
        .import_advisories(source, &rows, &skipped, replace, imported_by)
        .await?)
}
