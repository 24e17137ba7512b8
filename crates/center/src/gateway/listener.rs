//! Accepts agent connections: TLS 1.3 with a client certificate from our CA, then the
//! certificate is checked against the database before the WebSocket upgrade.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hostward_pki::PeerIdentity;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::session;
use crate::AppState;
use crate::listen::{self, HandshakeError};
use crate::metrics as m;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the gateway on `listener` until the process ends.
pub async fn serve(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    let gw = state.gateway.clone();
    let on_stale: hostward_pki::OnStaleCert =
        Arc::new(move |id, why| gw.stale_certificate(id, why));
    let tls = hostward_pki::gateway_server_config(
        &state.pki.chain_pem,
        &state.pki.server_key_pem,
        state.pki.ca.cert_pem(),
        Some(on_stale),
    )?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let app = Router::new()
        .route(hostward_proto::AGENT_WS_PATH, get(upgrade))
        .with_state(state);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move { connection(acceptor, app, tcp, peer).await });
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match listen::tls_handshake(&acceptor, tcp, HANDSHAKE_TIMEOUT).await {
        Ok(tls) => tls,
        Err(HandshakeError::Failed(e)) => {
            metrics::counter!(m::CONNECTIONS_REJECTED, "reason" => "tls").increment(1);
            tracing::info!(%peer, error = %e, "gateway TLS handshake refused");
            return;
        }
        Err(HandshakeError::TimedOut) => {
            metrics::counter!(m::CONNECTIONS_REJECTED, "reason" => "tls_timeout").increment(1);
            return;
        }
    };
    // The verifier required a certificate chained to our CA, so one is present.
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| hostward_pki::peer_identity(c.as_ref()));
    let Some(identity) = identity else {
        metrics::counter!(m::CONNECTIONS_REJECTED, "reason" => "no_identity").increment(1);
        return;
    };
    let svc = hyper_util::service::TowerToHyperService::new(app.layer(Extension(Peer {
        identity,
        addr: peer,
    })));
    // The header timer ends at the WebSocket upgrade: a live agent session is bounded by its
    // heartbeats (session.rs), not by this.
    let conn = listen::http1(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(tls), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "gateway connection ended with an error");
    }
}

#[derive(Clone)]
pub(super) struct Peer {
    pub identity: PeerIdentity,
    pub addr: SocketAddr,
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    metrics::counter!(m::CONNECTIONS_REJECTED, "reason" => code).increment(1);
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

async fn upgrade(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    let server = match state
        .store
        .server_by_agent_id(&peer.identity.agent_id)
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "unknown_agent",
                "no server is enrolled with this agent id",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "gateway lookup failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "center database unavailable",
            );
        }
    };
    if server.revoked_at.is_some() {
        tracing::info!(agent_id = %peer.identity.agent_id, peer = %peer.addr, "refused a revoked agent");
        return refuse(StatusCode::FORBIDDEN, "revoked", "agent revoked");
    }
    if server.cert_serial.as_deref() != Some(peer.identity.serial_hex.as_str()) {
        tracing::warn!(agent_id = %peer.identity.agent_id, peer = %peer.addr, "certificate serial does not match the enrolled one");
        return refuse(
            StatusCode::FORBIDDEN,
            "certificate_mismatch",
            "certificate is not the one issued to this agent",
        );
    }
    // The transport reads frames a few times over the protocol limit so that an oversized frame
    // gets an `oversized` error frame from the decoder and the session survives; only beyond
    // this does the socket give up mid-frame. Buffers stay small: tungstenite's 128 KiB defaults
    // cost 2.5 GB across 20,000 mostly idle sessions.
    let max = 4 * hostward_proto::MAX_FRAME_BYTES;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(2 * max)
        .on_upgrade(move |socket| session::run(state, server, peer, socket))
}
