//! Vulnerability feeds the center fetches and imports: the ones configured (`--vulndb-url`),
//! else the public feeds of the operating systems the fleet's servers run, chosen again as
//! servers enroll, each fetched at start and every `--vulndb-fetch-hours`, and imported when
//! its content changed. `--vulndb-fetch off` turns fetching off (offline centers import with
//! `hostward vulndb import`). Each replica fetches for itself; an unchanged feed costs one
//! download and no write.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use hostward_store::VulnDbImport;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use super::matching::import;
use crate::AppState;

const OSV: &str = "https://osv-vulnerabilities.storage.googleapis.com";

/// The public feeds of each operating system, by its `ID` in /etc/os-release.
const PUBLIC_FEEDS: &[(&str, &[&str])] = &[
    (
        "debian",
        &[
            "/Debian/all.zip",
            "https://security-tracker.debian.org/tracker/data/json",
        ],
    ),
    ("ubuntu", &["/Ubuntu/all.zip"]),
    ("almalinux", &["/AlmaLinux/all.zip"]),
    ("rocky", &["/Rocky%20Linux/all.zip"]),
    ("alpine", &["/Alpine/all.zip"]),
];

/// The feeds to fetch: the configured ones, else the public feeds of `os_ids`.
pub fn wanted(configured: &[String], os_ids: &[String]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    PUBLIC_FEEDS
        .iter()
        .filter(|(os, _)| os_ids.iter().any(|o| o == os))
        .flat_map(|(_, urls)| urls.iter())
        .map(|u| {
            if u.starts_with('/') {
                format!("{OSV}{u}")
            } else {
                u.to_string()
            }
        })
        .collect()
}

/// How often the fleet's operating systems are looked at again (a new one's feeds are
/// fetched then).
const RECHECK: Duration = Duration::from_secs(60);

/// A failed fetch is tried again after this long (or the fetch interval, if shorter).
const RETRY: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Feed {
    next: Option<tokio::time::Instant>,
    digest: Option<Vec<u8>>,
}

pub fn spawn(state: AppState) {
    if !state.config.vulndb_fetch {
        tracing::info!("vulnerability feeds are not fetched (--vulndb-fetch off)");
        return;
    }
    let every = Duration::from_secs(state.config.vulndb_fetch_hours * 3600);
    tokio::spawn(async move {
        let mut feeds: HashMap<String, Feed> = HashMap::new();
        loop {
            let os = match state.store.fleet_os_ids().await {
                Ok(os) => os,
                Err(e) => {
                    tracing::error!(error = %e, "reading the fleet's operating systems");
                    Vec::new()
                }
            };
            for url in wanted(&state.config.vulndb_urls, &os) {
                let feed = feeds.entry(url.clone()).or_default();
                let now = tokio::time::Instant::now();
                if feed.next.is_some_and(|t| now < t) {
                    continue;
                }
                let shown = public_url(&url);
                feed.next = Some(match fetch_once(&state, &url, &mut feed.digest).await {
                    Ok(Some(i)) => {
                        tracing::info!(url = %shown, version = i.version, advisories = i.advisories, skipped = i.skipped, "vulnerability feed imported");
                        now + every
                    }
                    Ok(None) => {
                        tracing::info!(url = %shown, "vulnerability feed unchanged");
                        now + every
                    }
                    Err(e) => {
                        tracing::error!(url = %shown, error = format!("{e:#}"), "vulnerability feed fetch failed");
                        now + RETRY.min(every)
                    }
                });
            }
            tokio::time::sleep(RECHECK).await;
        }
    });
}

/// The URL without credentials or query, which may carry secrets: what the console may show.
fn public_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Largest feed download accepted (Ubuntu's whole OSV archive is well below).
const MAX_DOWNLOAD: usize = 1 << 30;

/// Downloads `url` to a file in the data dir (never whole in memory) and imports it unless its
/// SHA-256 is `last`'s; `last` becomes the imported one's.
async fn fetch_once(
    state: &AppState,
    url: &str,
    last: &mut Option<Vec<u8>>,
) -> anyhow::Result<Option<VulnDbImport>> {
    let ca = &state.config.vulndb_ca_file;
    let bundle = tokio::fs::read_to_string(ca)
        .await
        .with_context(|| format!("reading the CA bundle {}", ca.display()))?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(hostward_pki::bundle_client_config(&bundle)?)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(1800))
        .build()?;
    // reqwest's errors carry the URL, whose credentials or query may be secrets: logged
    // without it (the caller names the feed by its public form).
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.without_url())?;
    let part = state.config.data_dir.join("vulndb-download.part");
    let result = async {
        let mut file = tokio::fs::File::create(&part).await?;
        let (mut size, mut hash, mut head) = (0usize, sha2::Sha256::new(), Vec::new());
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url())? {
            size += chunk.len();
            anyhow::ensure!(
                size <= MAX_DOWNLOAD,
                "the feed is larger than {MAX_DOWNLOAD} bytes"
            );
            if head.len() < 2 {
                head.extend_from_slice(&chunk[..chunk.len().min(2)]);
            }
            hash.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let digest = hash.finalize().to_vec();
        if last.as_ref() == Some(&digest) {
            return Ok(None);
        }
        // The importer tells the formats apart by the file's extension.
        let ext = if head.starts_with(b"PK") {
            "zip"
        } else {
            "json"
        };
        let path = part.with_extension(ext);
        tokio::fs::rename(&part, &path).await?;
        let imported = import(&state.store, &path, &public_url(url), false, "fetch").await;
        let _ = tokio::fs::remove_file(&path).await;
        let imported = imported?;
        *last = Some(digest);
        Ok(Some(imported))
    }
    .await;
    let _ = tokio::fs::remove_file(&part).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleets_systems_choose_the_public_feeds_unless_some_are_configured() {
        let os = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wanted(&[], &[]).is_empty(), "no server, nothing to fetch");
        assert_eq!(
            wanted(&[], &os(&["debian", "rocky", "plan9"])),
            [
                "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
                "https://security-tracker.debian.org/tracker/data/json",
                "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip",
            ]
        );
        let mine = os(&["https://mirror.example/osv.zip"]);
        assert_eq!(wanted(&mine, &os(&["debian"])), mine);
    }

    #[test]
    fn shown_urls_lose_credentials_and_queries() {
        assert_eq!(
            public_url("https://user:tok@feeds.example/osv/all.zip?sig=abc#x"),
            "https://feeds.example/osv/all.zip"
        );
        assert_eq!(public_url("https://feeds.example"), "https://feeds.example");
    }
}
