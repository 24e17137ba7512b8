//! The agent's only connection: a WebSocket over mutual TLS 1.3 to the center's gateway.
//!
//! [`connect`] and the frame helpers are shared with `hostward-sim`; the daemon loop that uses
//! them (connect → session → back-off with full jitter → again) is `crate::daemon`.

pub mod backoff;
pub mod gateways;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures_util::{SinkExt as _, StreamExt as _};
use hostward_proto::{
    Bye, DecodeError, Envelope, Hello, HostFacts, MAX_FRAME_BYTES, Message, PROTOCOL_VERSION,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use tungstenite::Message as WsMessage;

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;
pub type WsStream = tokio_tungstenite::WebSocketStream<TlsStream>;

/// Until the center's first `config` says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Where the gateway is, from `identity.json`'s `gateway_url` (`wss://host:port/agent/v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayAddr {
    pub url: String,
    pub host: String,
    pub port: u16,
}

pub fn parse_gateway_url(url: &str) -> Result<GatewayAddr> {
    let rest = url
        .strip_prefix("wss://")
        .ok_or_else(|| anyhow!("gateway URL {url:?} must start with wss://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("gateway URL {url:?}: unclosed [ in host"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        anyhow::bail!("gateway URL {url:?} has no host");
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow!("gateway URL {url:?}: bad port {p:?}"))?,
        None => 443,
    };
    Ok(GatewayAddr {
        url: url.to_string(),
        host,
        port,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The center answered the upgrade with an error, e.g. 403 `revoked`.
    #[error("center refused the connection: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("TLS handshake with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// WebSocket limits: frames up to the protocol maximum, small buffers because an agent (and a
/// simulator holding thousands of sessions) mostly idles.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// TCP + TLS (client certificate) + WebSocket upgrade, all under one timeout.
pub async fn connect(
    gw: &GatewayAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<WsStream, ConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(gw, tls))
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::Other(format!(
                "connecting to {}: timed out",
                gw.url
            )))
        })
}

async fn connect_inner(
    gw: &GatewayAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<WsStream, ConnectError> {
    let addr = format!("{}:{}", crate::enroll::bracket(&gw.host), gw.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| ConnectError::Other(format!("connecting to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(gw.host.clone())
        .map_err(|e| ConnectError::Other(format!("invalid gateway host {:?}: {e}", gw.host)))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls {
            addr: addr.clone(),
            detail: e.to_string(),
        })?;
    match tokio_tungstenite::client_async_with_config(gw.url.as_str(), stream, Some(ws_config()))
        .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_deref().unwrap_or_default();
            let (code, message) = crate::enroll::parse_error_body(status, body);
            Err(ConnectError::Refused {
                status,
                code,
                message,
            })
        }
        Err(e) => Err(ConnectError::Other(format!(
            "WebSocket upgrade at {}: {e}",
            gw.url
        ))),
    }
}

pub async fn send(ws: &mut WsStream, env: &Envelope) -> Result<(), tungstenite::Error> {
    ws.send(WsMessage::text(env.to_json())).await
}

/// What a WebSocket message means to the agent.
// Short-lived, one at a time: boxing the frame would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    Frame(Envelope),
    Bad(DecodeError),
    /// The center closed the session, with its reason if it gave one.
    Closed(String),
    /// Ping/pong and other transport-level messages.
    Ignore,
}

pub fn decode(msg: WsMessage) -> Incoming {
    match msg {
        WsMessage::Text(t) => match Envelope::from_json(t.as_str()) {
            Ok(env) => Incoming::Frame(env),
            Err(e) => Incoming::Bad(e),
        },
        WsMessage::Binary(_) => Incoming::Bad(DecodeError::Malformed(
            "binary frame; frames are JSON text".into(),
        )),
        WsMessage::Close(frame) => Incoming::Closed(
            frame
                .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                .unwrap_or_default(),
        ),
        _ => Incoming::Ignore,
    }
}

pub fn hello(facts: HostFacts, config_version: i64, last_seq: u64, outbox_id: &str) -> Envelope {
    Envelope::control(Message::Hello(Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: PROTOCOL_VERSION,
        now: crate::util::unix_now(),
        facts,
        config_version,
        last_seq,
        outbox_id: outbox_id.to_string(),
    }))
}

/// Sends `bye`, then closes the WebSocket and waits briefly for the center's close reply so the
/// center sees a clean end rather than a dropped connection.
pub async fn goodbye(ws: &mut WsStream, reason: &str) {
    let _ = send(
        ws,
        &Envelope::control(Message::Bye(Bye {
            reason: reason.to_string(),
        })),
    )
    .await;
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Resolves once `stop` is true. The guard `wait_for` returns is dropped here, so callers'
/// futures stay `Send`; a dropped sender never stops anyone.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why the agent is stopping: `system_shutdown` when systemd says the system is going down.
pub async fn stop_reason() -> &'static str {
    let out = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::process::Command::new("systemctl")
            .arg("is-system-running")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(o)) if String::from_utf8_lossy(&o.stdout).trim() == "stopping" => "system_shutdown",
        _ => "agent_stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_parse() {
        let g = parse_gateway_url("wss://center.example:10180/agent/v1").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("center.example", 10180));
        let g = parse_gateway_url("wss://[::1]:10180/agent/v1").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("::1", 10180));
        assert_eq!(
            parse_gateway_url("wss://10.1.2.3/agent/v1").unwrap().port,
            443
        );
        assert!(parse_gateway_url("ws://x:1/agent/v1").is_err());
        assert!(parse_gateway_url("wss://x:port/agent/v1").is_err());
        assert!(parse_gateway_url("wss://:1/").is_err());
    }

    #[test]
    fn frames_decode_or_are_reported_bad() {
        let ack = Envelope::control(Message::Ack(hostward_proto::Ack { seq: 3 }));
        assert!(matches!(decode(WsMessage::text(ack.to_json())), Incoming::Frame(e) if e == ack));
        assert!(
            matches!(decode(WsMessage::text("{nope")), Incoming::Bad(e) if e.code() == "malformed")
        );
        let unknown = r#"{"v":1,"seq":0,"kind":"self_destruct","body":{}}"#;
        assert!(
            matches!(decode(WsMessage::text(unknown)), Incoming::Bad(e) if e.code() == "unknown_kind")
        );
        assert!(matches!(
            decode(WsMessage::Binary(vec![1u8].into())),
            Incoming::Bad(_)
        ));
        assert!(matches!(
            decode(WsMessage::Close(None)),
            Incoming::Closed(_)
        ));
        let h = hello(HostFacts::default(), 0, 9, "");
        let Message::Hello(h) = h.msg else { panic!() };
        assert_eq!((h.protocol, h.last_seq), (PROTOCOL_VERSION, 9));
    }
}
