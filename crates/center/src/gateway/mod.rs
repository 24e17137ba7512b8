//! Agent gateway on port 10180: one WSS session per agent, client certificate required.

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

/// Handle the API uses to reach live agent sessions on this replica. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    #[allow(dead_code)]
    inner: Arc<Inner>,
}

struct Inner {
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    config: Arc<Config>,
}

impl Gateway {
    pub fn new(store: Store, config: Arc<Config>) -> Gateway {
        Gateway { inner: Arc::new(Inner { store, config }) }
    }

    /// Closes the agent's live session on this replica at once (other replicas poll).
    pub fn revoke(&self, _agent_id: &str) {}

    /// Wakes delivery of queued tasks for these servers.
    pub fn tasks_queued(&self, _server_ids: &[String]) {}

    /// The server's config (e.g. protection switch) changed: push it to its agent.
    pub fn config_changed(&self, _server_id: &str) {}

    /// Agents with a live session on this replica.
    pub fn online_count(&self) -> usize {
        0
    }
}
