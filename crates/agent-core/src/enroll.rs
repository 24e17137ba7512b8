//! Enrollment: first contact with the pinned CA, preflight checks, key + CSR, install reports,
//! and the state files that make up the agent's identity.
//!
//! The token is a secret. It is sent only after the pinned handshake proved the center holds the
//! CA the operator named, and it is never logged.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hostward_proto::{EnrollRequest, EnrollResponse, HostFacts, InstallReport};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};

use crate::util::write_atomic;

pub const IDENTITY_FILE: &str = "identity.json";
pub const KEY_FILE: &str = "agent.key";
pub const CERT_FILE: &str = "agent.crt";
pub const CA_FILE: &str = "ca.crt";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_FREE_BYTES: u64 = 64 << 20;

pub const SUPPORTED_OS: &[&str] = &[
    "debian",
    "ubuntu",
    "centos",
    "rhel",
    "rocky",
    "almalinux",
    "fedora",
    "opensuse-leap",
    "sles",
    "alpine",
    "amzn",
];
pub const SUPPORTED_ARCH: &[&str] = &["x86_64", "aarch64"];

/// `identity.json`: who this agent is and where its center lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub agent_id: String,
    pub server_id: String,
    pub center_url: String,
    pub gateway_url: String,
}

/// Everything the link needs to connect, read from the state dir.
#[derive(Clone)]
pub struct Credentials {
    pub identity: Identity,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn load(state_dir: &Path) -> Result<Credentials> {
        let id_path = state_dir.join(IDENTITY_FILE);
        let text = std::fs::read_to_string(&id_path).map_err(|e| {
            anyhow!(
                "{}: {e} (is this agent enrolled? run `hostward-agent enroll` first)",
                id_path.display()
            )
        })?;
        let identity: Identity = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid identity file", id_path.display()))?;
        let read = |name: &str| {
            let p = state_dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(Credentials {
            identity,
            cert_pem: read(CERT_FILE)?,
            key_pem: read(KEY_FILE)?,
            ca_pem: read(CA_FILE)?,
        })
    }

    /// The mutual-TLS client config for the gateway.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(hostward_pki::client_config(
            &self.ca_pem,
            Some((&self.cert_pem, &self.key_pem)),
        )?))
    }

    /// Writes the state files, identity last: its presence means "enrolled".
    pub fn store(&self, state_dir: &Path) -> Result<()> {
        create_private_dir(state_dir)?;
        write_atomic(&state_dir.join(KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_atomic(&state_dir.join(CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        write_atomic(&state_dir.join(CA_FILE), self.ca_pem.as_bytes(), 0o644)?;
        let id = serde_json::to_string_pretty(&self.identity)? + "\n";
        write_atomic(&state_dir.join(IDENTITY_FILE), id.as_bytes(), 0o644)
    }
}

pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting permissions of {}", dir.display()))
}

/// The center's console/API URL, reduced to what enrollment needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CenterUrl {
    /// `https://host:port` without a trailing slash.
    pub base: String,
    pub host: String,
    pub port: u16,
}

impl CenterUrl {
    pub fn parse(input: &str) -> Result<CenterUrl> {
        let url = reqwest::Url::parse(input.trim())
            .map_err(|e| anyhow!("invalid --center URL {input:?}: {e}"))?;
        if url.scheme() != "https" {
            bail!("invalid --center URL {input:?}: must start with https://");
        }
        let host = url
            .host_str()
            .ok_or_else(|| anyhow!("invalid --center URL {input:?}: no host"))?;
        // ServerName and the socket address want an IPv6 literal without its URL brackets.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let base = input.trim().trim_end_matches('/').to_string();
        Ok(CenterUrl { base, host, port })
    }

    pub fn server_name(&self) -> Result<ServerName<'static>> {
        ServerName::try_from(self.host.clone())
            .map_err(|e| anyhow!("invalid server name {:?}: {e}", self.host))
    }
}

/// Why enrollment stopped; `cause` is the install-report code when there is one.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    CaMismatch(String),
    #[error("{detail}")]
    Preflight { cause: &'static str, detail: String },
    #[error("center refused enrollment: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// `{0:#}` so the whole context chain shows, e.g. "connecting to X: connection refused".
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// First contact: a TLS handshake that succeeds only if the center's chain contains the CA whose
/// SHA-256 is `pin`. Returns that CA (PEM), the only CA trusted from then on. Nothing is sent.
pub async fn first_contact(center: &CenterUrl, pin: [u8; 32]) -> Result<String, EnrollError> {
    let (cfg, verifier) = hostward_pki::pinned_client_config(pin).map_err(anyhow::Error::from)?;
    let addr = format!("{}:{}", bracket(&center.host), center.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let handshake = tokio::time::timeout(
        CONNECT_TIMEOUT,
        connector.connect(center.server_name()?, tcp),
    )
    .await
    .map_err(|_| anyhow!("TLS handshake with {addr}: timed out"))?;
    match handshake {
        Ok(mut tls) => {
            use tokio::io::AsyncWriteExt as _;
            let _ = tls.shutdown().await;
        }
        Err(e) => {
            let msg = e.to_string();
            if msg.contains(hostward_pki::CA_MISMATCH) {
                return Err(EnrollError::CaMismatch(format!(
                    "{}: the server at {addr} does not present the CA you pinned; the token was not sent \
                     (check --ca-sha256, or whether something intercepts this connection): {msg}",
                    hostward_pki::CA_MISMATCH
                )));
            }
            return Err(anyhow!("TLS handshake with {addr}: {msg}").into());
        }
    }
    verifier
        .matched_ca_pem()
        .ok_or_else(|| anyhow!("TLS handshake with {addr} matched no CA").into())
}

pub fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The HTTP client [`http_client`] builds; named so users need no reqwest dependency of their own.
pub type HttpClient = reqwest::Client;

/// HTTPS client that trusts only the center's CA.
pub fn http_client(ca_pem: &str) -> Result<HttpClient> {
    let tls = hostward_pki::client_config(ca_pem, None)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .context("building the HTTPS client")
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Reads the center's `{"error":{"code","message"}}`, falling back to the status and raw text.
pub fn parse_error_body(status: u16, body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            (
                format!("http_{status}"),
                if text.trim().is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                },
            )
        }
    }
}

pub async fn post_enroll(
    client: &reqwest::Client,
    center: &CenterUrl,
    req: &EnrollRequest,
) -> Result<EnrollResponse, EnrollError> {
    let url = format!("{}/api/v1/enroll", center.base);
    let resp = client
        .post(&url)
        .json(req)
        .send()
        .await
        .map_err(|e| anyhow!("POST {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| anyhow!("POST {url}: reading the answer: {e}"))?;
    if !status.is_success() {
        let (code, message) = parse_error_body(status.as_u16(), &body);
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            code,
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|e| anyhow!("POST {url}: unexpected answer: {e}").into())
}

/// Sends an install report. A report is advisory: failures are logged and must not become the
/// reason an install fails. Returns the center's refusal, so a caller can stop early when the
/// refusal is about the token itself.
pub async fn report(
    client: &reqwest::Client,
    center: &CenterUrl,
    report: &InstallReport,
) -> Option<EnrollError> {
    let url = format!("{}/api/v1/enroll/report", center.base);
    match client.post(&url).json(report).send().await {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => {
            let status = r.status().as_u16();
            let (code, message) = parse_error_body(status, &r.bytes().await.unwrap_or_default());
            tracing::warn!(status, code, message, "install report refused");
            Some(EnrollError::Refused {
                status,
                code,
                message,
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "install report not delivered");
            None
        }
    }
}

/// Inputs of the preflight decision, gathered separately so the decision is testable.
#[derive(Debug, Clone)]
pub struct PreflightInput {
    pub euid: u32,
    pub os_id: String,
    pub arch: String,
    pub free_bytes: Option<u64>,
}

impl PreflightInput {
    pub fn gather(facts: &HostFacts, state_dir: &Path) -> PreflightInput {
        PreflightInput {
            euid: nix::unistd::geteuid().as_raw(),
            os_id: facts.os_id.clone(),
            arch: facts.arch.clone(),
            free_bytes: free_bytes(state_dir),
        }
    }
}

/// Space left for the state dir (nearest existing ancestor). Counts only blocks available to
/// unprivileged users: an agent eating the root reserve would hurt the host it protects.
fn free_bytes(dir: &Path) -> Option<u64> {
    let mut p: PathBuf = dir.to_path_buf();
    loop {
        if p.exists() {
            let s = nix::sys::statvfs::statvfs(&p).ok()?;
            return Some(s.blocks_available() as u64 * s.fragment_size() as u64);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// The first failing check as (cause, detail), or None when the host is fit.
pub fn preflight(
    input: &PreflightInput,
    allow_unsupported: bool,
) -> Option<(&'static str, String)> {
    if input.euid != 0 {
        return Some((
            "not_root",
            format!(
                "the agent must be enrolled as root (running as uid {})",
                input.euid
            ),
        ));
    }
    if !allow_unsupported {
        if !SUPPORTED_OS.contains(&input.os_id.as_str()) {
            let id = if input.os_id.is_empty() {
                "unknown"
            } else {
                &input.os_id
            };
            return Some((
                "unsupported_os",
                format!(
                    "operating system {id:?} is not supported (supported: {}); --allow-unsupported skips this check",
                    SUPPORTED_OS.join(", ")
                ),
            ));
        }
        if !SUPPORTED_ARCH.contains(&input.arch.as_str()) {
            return Some((
                "unsupported_arch",
                format!(
                    "architecture {:?} is not supported (x86_64, aarch64); --allow-unsupported skips this check",
                    input.arch
                ),
            ));
        }
    }
    if let Some(free) = input.free_bytes
        && free < MIN_FREE_BYTES
    {
        return Some((
            "disk_full",
            format!(
                "only {} MiB free for the state directory; at least 64 MiB needed",
                free >> 20
            ),
        ));
    }
    None
}

pub fn random_install_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Token-related refusals: reporting them would use the very token that was refused.
pub fn is_token_error(code: &str) -> bool {
    matches!(
        code,
        "invalid_token" | "token_expired" | "token_revoked" | "token_used_up"
    )
}

/// What `hostward-agent enroll` needs. No Debug: it holds the token.
pub struct EnrollOptions {
    pub center: String,
    pub token: String,
    pub ca_sha256: String,
    pub state_dir: PathBuf,
    pub install_id: Option<String>,
    pub allow_unsupported: bool,
    /// Root for facts and preflight (tests point it at fixtures).
    pub facts_root: PathBuf,
}

/// The whole enrollment. On success the state dir holds the new identity.
pub async fn enroll(opts: &EnrollOptions) -> Result<Identity, EnrollError> {
    let pin = hostward_pki::normalize_fingerprint(&opts.ca_sha256).ok_or_else(|| {
        anyhow!(
            "--ca-sha256 {:?} is not a SHA-256 fingerprint (64 hex digits; colons and a sha256: prefix are allowed)",
            opts.ca_sha256
        )
    })?;
    let center = CenterUrl::parse(&opts.center)?;
    let ca_pem = first_contact(&center, pin).await?;
    tracing::info!(center = %center.base, "center presented the pinned CA");
    let client = http_client(&ca_pem)?;

    let facts = crate::facts::collect(&opts.facts_root);
    let install_id = opts.install_id.clone().unwrap_or_else(random_install_id);
    let base_report = InstallReport {
        token: opts.token.clone(),
        install_id: install_id.clone(),
        hostname: facts.hostname.clone(),
        status: "installing".into(),
        cause: None,
        detail: None,
    };
    // A token the center refuses now will be refused for enrollment too: stop here rather than
    // spend a second failed attempt against the center's rate limit.
    if let Some(e @ EnrollError::Refused { .. }) = report(&client, &center, &base_report).await
        && let EnrollError::Refused { code, .. } = &e
        && (is_token_error(code) || code == "cidr_not_allowed")
    {
        return Err(e);
    }
    let failed = |cause: &str, detail: String| InstallReport {
        status: "failed".into(),
        cause: Some(cause.to_string()),
        detail: Some(detail),
        ..base_report.clone()
    };

    let input = PreflightInput::gather(&facts, &opts.state_dir);
    if let Some((cause, detail)) = preflight(&input, opts.allow_unsupported) {
        report(&client, &center, &failed(cause, detail.clone())).await;
        return Err(EnrollError::Preflight { cause, detail });
    }

    let (key_pem, csr_pem) =
        hostward_pki::agent_key_and_csr(&facts.hostname).map_err(anyhow::Error::from)?;
    let req = EnrollRequest {
        token: opts.token.clone(),
        csr_pem,
        facts,
        install_id: Some(install_id),
    };
    let resp = match post_enroll(&client, &center, &req).await {
        Ok(r) => r,
        Err(e) => {
            match &e {
                EnrollError::Refused { code, .. } if is_token_error(code) => {}
                EnrollError::Refused { code, .. } => {
                    report(&client, &center, &failed("enroll_failed", code.clone())).await;
                }
                other => {
                    report(
                        &client,
                        &center,
                        &failed("enroll_failed", other.to_string()),
                    )
                    .await;
                }
            }
            return Err(e);
        }
    };

    let creds = Credentials {
        identity: Identity {
            agent_id: resp.agent_id,
            server_id: resp.server_id,
            center_url: center.base.clone(),
            gateway_url: resp.gateway_url,
        },
        cert_pem: resp.cert_pem,
        key_pem,
        ca_pem,
    };
    // Refuse to store a certificate we could not use.
    creds
        .tls_config()
        .context("the center returned an unusable certificate")?;
    parse_gateway_check(&creds.identity.gateway_url)?;
    creds.store(&opts.state_dir)?;
    // The other replicas' gateways, so the first connect can already fail over.
    let file = crate::link::gateways::Gateways::file_in(&opts.state_dir);
    crate::link::gateways::Gateways::load(&creds.identity.gateway_url, Some(file))
        .update(&resp.gateway_urls);
    tracing::info!(agent_id = %creds.identity.agent_id, server_id = %creds.identity.server_id, "enrolled");
    Ok(creds.identity)
}

fn parse_gateway_check(url: &str) -> Result<()> {
    crate::link::parse_gateway_url(url)
        .map(|_| ())
        .context("the center returned an unusable gateway URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> PreflightInput {
        PreflightInput {
            euid: 0,
            os_id: "debian".into(),
            arch: "x86_64".into(),
            free_bytes: Some(1 << 30),
        }
    }

    #[test]
    fn preflight_maps_each_failure_to_its_cause() {
        assert_eq!(preflight(&fit(), false), None);
        let cause = |i: PreflightInput, allow| preflight(&i, allow).map(|(c, _)| c);
        assert_eq!(
            cause(
                PreflightInput {
                    euid: 1000,
                    ..fit()
                },
                false
            ),
            Some("not_root")
        );
        assert_eq!(
            cause(
                PreflightInput {
                    euid: 1000,
                    ..fit()
                },
                true
            ),
            Some("not_root")
        );
        assert_eq!(
            cause(
                PreflightInput {
                    os_id: "gentoo".into(),
                    ..fit()
                },
                false
            ),
            Some("unsupported_os")
        );
        assert_eq!(
            cause(
                PreflightInput {
                    os_id: "gentoo".into(),
                    ..fit()
                },
                true
            ),
            None
        );
        assert_eq!(
            cause(
                PreflightInput {
                    arch: "riscv64".into(),
                    ..fit()
                },
                false
            ),
            Some("unsupported_arch")
        );
        assert_eq!(
            cause(
                PreflightInput {
                    arch: "riscv64".into(),
                    ..fit()
                },
                true
            ),
            None
        );
        assert_eq!(
            cause(
                PreflightInput {
                    free_bytes: Some(10 << 20),
                    ..fit()
                },
                true
            ),
            Some("disk_full")
        );
        for os in SUPPORTED_OS {
            assert_eq!(
                cause(
                    PreflightInput {
                        os_id: os.to_string(),
                        arch: "aarch64".into(),
                        ..fit()
                    },
                    false
                ),
                None
            );
        }
    }

    #[test]
    fn center_urls_parse_with_ports_and_ipv6() {
        let c = CenterUrl::parse("https://center.example:8443/").unwrap();
        assert_eq!(
            (c.base.as_str(), c.host.as_str(), c.port),
            ("https://center.example:8443", "center.example", 8443)
        );
        let c = CenterUrl::parse("https://[::1]:8443").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 8443));
        assert_eq!(bracket(&c.host), "[::1]");
        assert_eq!(CenterUrl::parse("https://10.0.0.1").unwrap().port, 443);
        assert!(CenterUrl::parse("http://x:8443").is_err());
        assert!(CenterUrl::parse("not a url").is_err());
    }

    #[test]
    fn error_bodies_are_read_or_summarised() {
        let (code, msg) = parse_error_body(
            401,
            br#"{"error":{"code":"token_expired","message":"token expired"}}"#,
        );
        assert_eq!(
            (code.as_str(), msg.as_str()),
            ("token_expired", "token expired")
        );
        let (code, msg) = parse_error_body(502, b"Bad Gateway");
        assert_eq!((code.as_str(), msg.as_str()), ("http_502", "Bad Gateway"));
        assert!(is_token_error("invalid_token") && !is_token_error("cidr_not_allowed"));
    }

    #[test]
    fn state_files_are_written_atomically_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let creds = Credentials {
            identity: Identity {
                agent_id: "a1".into(),
                server_id: "s1".into(),
                center_url: "https://c:8443".into(),
                gateway_url: "wss://c:10180/agent/v1".into(),
            },
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            ca_pem: "CA".into(),
        };
        creds.store(&state).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(KEY_FILE)), 0o600);
        let back = Credentials::load(&state).unwrap();
        assert_eq!(back.identity, creds.identity);
        assert_eq!(back.key_pem, "KEY");
        let leftovers: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let err = Credentials::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("enroll"), "{err}");
    }
}
