//! Prometheus metrics. Names are constants here so the gateway, jobs and tests agree.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

pub const AGENTS_ONLINE: &str = "hostward_agents_online";
pub const FRAMES_IN: &str = "hostward_gateway_frames_in_total";
pub const FRAMES_OUT: &str = "hostward_gateway_frames_out_total";
pub const FRAMES_REJECTED: &str = "hostward_gateway_frames_rejected_total";
pub const CONNECTIONS_REJECTED: &str = "hostward_gateway_connections_rejected_total";
pub const OUTBOX_DEPTH: &str = "hostward_agent_outbox_depth";
pub const OUTBOX_DROPPED: &str = "hostward_agent_outbox_dropped";
pub const DB_LATENCY: &str = "hostward_db_latency_seconds";
pub const RECORDS_STORED: &str = "hostward_records_stored_total";
/// Attempts to store an agent's record that failed (the record is retried, never acked).
pub const RECORDS_STORE_FAILURES: &str = "hostward_records_store_failures_total";
/// Records no retry can store, kept whole in `rejected_records` and acked.
pub const RECORDS_REJECTED: &str = "hostward_records_rejected_total";
/// Sessions closed because a record could not be stored in time: the agent resends it.
pub const RECORDS_UNAVAILABLE: &str = "hostward_records_unavailable_total";
/// Live agents whose heartbeat says their outbox is failing (disk full, I/O errors).
pub const OUTBOX_FAILING: &str = "hostward_agent_outbox_failing";
pub const VULN_MATCHES: &str = "hostward_vuln_matches_total";
/// Notifications sent, by `channel` (`email`, `webhook`).
pub const NOTIFICATIONS_SENT: &str = "hostward_notifications_sent_total";
/// Attempts at a notification that failed (each is retried, or failed after the last), by
/// `channel`.
pub const NOTIFICATIONS_FAILED: &str = "hostward_notifications_failed_total";
/// Notifications not sent on purpose (filtered, masked, repeats, a disabled channel).
pub const NOTIFICATIONS_SKIPPED: &str = "hostward_notifications_skipped_total";
/// Outbox rows waiting to be sent, across the fleet (set by the notifications job).
pub const NOTIFICATIONS_OUTBOX_DEPTH: &str = "hostward_notifications_outbox_depth";
/// Console/API (8443) connections closed by a listener limit; `reason`: `per_address`, `total`
/// (caps, at accept), `tls_timeout`, `header_timeout` (slow or idle clients).
pub const CONSOLE_CONNECTIONS_REFUSED: &str = "hostward_console_connections_refused_total";
/// Protected server time counted for usage metering (editions), seconds.
pub const PROTECTED_SECONDS: &str = "hostward_protected_seconds_total";

/// The process-wide recorder. Installed once; later calls (tests with several centers in one
/// process) share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours just records nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /metrics`: aggregate figures only, no tenant data.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!(AGENTS_ONLINE).set(state.gateway.online_count() as f64);
    if let Ok(d) = state.store.ping().await {
        metrics::gauge!(DB_LATENCY).set(d.as_secs_f64());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
