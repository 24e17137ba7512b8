//! Raw gateway sessions (mutual TLS + WebSocket) for bad-input tests: frames sent and read
//! by hand, below what the agent's own link code would ever send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

use crate::{Context as _, Result, anyhow, bail, init, secs, truncate};

pub type GatewayStream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// What came back from the gateway.
#[derive(Debug)]
pub enum Frame {
    /// A text frame, parsed as JSON when it is JSON.
    Text(String, Value),
    Close(Option<(u16, String)>),
    /// The stream ended or failed without a close frame.
    Ended(String),
    Timeout,
}

/// Opens a WSS session on the gateway presenting `client` (cert PEM, key PEM) or no certificate;
/// the server is verified against `ca_pem`. Fails when TLS or the upgrade fails.
pub async fn gateway_connect(
    port: u16,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<GatewayStream> {
    init();
    let cfg = hostward_pki::client_config(ca_pem, client)?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .context("TCP connect to the gateway")?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("IP server name");
    let tls = tokio::time::timeout(secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| anyhow!("TLS handshake timed out"))?
        .context("TLS handshake")?;
    let url = format!("wss://127.0.0.1:{port}{}", hostward_proto::AGENT_WS_PATH);
    let (ws, _) = tokio::time::timeout(secs(10), tokio_tungstenite::client_async(url, tls))
        .await
        .map_err(|_| anyhow!("WebSocket upgrade timed out"))?
        .context("WebSocket upgrade")?;
    Ok(ws)
}

pub async fn ws_send(ws: &mut GatewayStream, text: String) -> Result<()> {
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .context("sending a frame")
}

/// Next text or close frame (pings are skipped), within `timeout`.
pub async fn ws_recv(ws: &mut GatewayStream, timeout: Duration) -> Frame {
    use tokio_tungstenite::tungstenite::Message as M;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return Frame::Timeout,
            Ok(None) => return Frame::Ended("stream ended".into()),
            Ok(Some(Err(e))) => return Frame::Ended(e.to_string()),
            Ok(Some(Ok(M::Text(t)))) => {
                let s = t.to_string();
                let v = serde_json::from_str(&s).unwrap_or(Value::Null);
                return Frame::Text(s, v);
            }
            Ok(Some(Ok(M::Close(c)))) => {
                return Frame::Close(c.map(|c| (u16::from(c.code), c.reason.to_string())));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Receives frames until one of `kind` arrives (others are skipped), within `timeout`.
pub async fn ws_recv_kind(ws: &mut GatewayStream, kind: &str, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws_recv(ws, left).await {
            Frame::Text(_, v) if v["kind"] == kind => return Ok(v),
            Frame::Text(t, _) => seen.push(truncate(&t, 300)),
            other => bail!("waiting for a {kind:?} frame: got {other:?} after {seen:?}"),
        }
    }
}

/// A `hello` for a raw session, with this host's plausible facts.
pub fn hello_frame() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "e2e".into());
    hostward_proto::Envelope::control(hostward_proto::Message::Hello(hostward_proto::Hello {
        agent_version: "0.1.0".into(),
        protocol: hostward_proto::PROTOCOL_VERSION,
        now,
        facts: hostward_proto::HostFacts {
            hostname,
            os_id: "debian".into(),
            os_version: "12".into(),
            os_name: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0".into(),
            arch: "x86_64".into(),
            ips: vec![],
            boot_time: now - 1000,
        },
        config_version: 0,
        last_seq: 0,
        outbox_id: String::new(),
    }))
    .to_json()
}

pub fn event_frame(seq: u64, event_type: &str, data: Value) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    hostward_proto::Envelope::record(
        seq,
        hostward_proto::Message::Event(hostward_proto::Event {
            ts,
            event_type: event_type.into(),
            data,
        }),
    )
    .to_json()
}
