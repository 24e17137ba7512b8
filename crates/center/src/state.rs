//! What every handler can reach.

use std::sync::Arc;

use hostward_pki::Ca;

use crate::config::Config;
use crate::gateway::Gateway;
use hostward_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub pki: Arc<CenterPki>,
    pub gateway: Gateway,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Vulnerability matching of this replica (its in-memory matcher and the job's wake-up).
    pub analyzer: crate::capabilities::risk::matching::Analyzer,
    /// The notifications job of this replica (its wake-up and its channels' senders).
    pub notifier: crate::capabilities::notifications::Notifier,
}

/// The center's CA and the facts about it that install commands carry.
pub struct CenterPki {
    pub ca: Ca,
    /// SHA-256 of the CA certificate, hex: the `--ca-sha256` of install commands.
    pub ca_fingerprint: String,
    /// `sha256//…` pin of the server key, for `curl --pinnedpubkey`.
    pub spki_pin: String,
    /// Server certificate followed by the CA certificate.
    pub chain_pem: String,
    pub server_key_pem: String,
}

impl AppState {
    /// The one-line install command for an enrollment token secret.
    pub fn install_command(&self, token: &str) -> String {
        format!(
            "curl -fsSk --pinnedpubkey '{pin}' {url}/install.sh | sudo sh -s -- --token {token} --ca-sha256 {fp}",
            pin = self.pki.spki_pin,
            url = self.config.public_url,
            fp = self.pki.ca_fingerprint,
        )
    }
}
