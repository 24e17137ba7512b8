//! The agent against a small fake center: pinned first contact, enrollment, the gateway
//! session (hello, config, heartbeats, records and acks, tasks, bye) and a refused upgrade.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hostward_agent_core::daemon::Daemon;
use hostward_agent_core::enroll::{self, EnrollError, EnrollOptions};
use hostward_agent_core::link;
use hostward_agent_core::outbox::Outbox;
use hostward_proto::{Ack, AgentConfig, EnrollResponse, Envelope, Event, Message, Task, TaskState};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;

struct Pki {
    ca: hostward_pki::Ca,
    chain: String,
    key: String,
}

fn pki() -> Pki {
    hostward_pki::install_default_provider();
    let (ca, _) = hostward_pki::Ca::generate("Test CA").unwrap();
    let server = ca
        .issue_server_cert(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    Pki {
        chain: format!("{}{}", server.cert_pem, ca.cert_pem()),
        key: server.key_pem,
        ca,
    }
}

/// A one-route-per-request HTTPS server: records each request line + body, answers enroll.
async fn fake_api(pki: Arc<Pki>, seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        hostward_pki::server_config(&pki.chain, &pki.key).unwrap(),
    ));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, pki, seen) = (acceptor.clone(), pki.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = tls.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        let mut body = buf[pos + 4..].to_vec();
                        while body.len() < len {
                            let n = tls.read(&mut chunk).await.unwrap();
                            body.extend_from_slice(&chunk[..n]);
                        }
                        break (head, String::from_utf8(body).unwrap());
                    }
                };
                let line = head.lines().next().unwrap().to_string();
                seen.lock().unwrap().push(format!("{line} {body}"));
                let (status, answer) = if line.starts_with("POST /api/v1/enroll ") {
                    let req: hostward_proto::EnrollRequest = serde_json::from_str(&body).unwrap();
                    if req.token != "good-token" {
                        (
                            "401 Unauthorized",
                            r#"{"error":{"code":"invalid_token","message":"unknown token"}}"#
                                .to_string(),
                        )
                    } else {
                        let issued = pki.ca.sign_agent_csr(&req.csr_pem, "agent-1").unwrap();
                        let resp = EnrollResponse {
                            agent_id: "agent-1".into(),
                            server_id: "server-1".into(),
                            cert_pem: issued.cert_pem,
                            gateway_url: "wss://127.0.0.1:1/agent/v1".into(),
                            gateway_urls: Vec::new(),
                        };
                        ("200 OK", serde_json::to_string(&resp).unwrap())
                    }
                } else {
                    ("204 No Content", String::new())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn fixture_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    root
}

fn opts(port: u16, token: &str, pin: &str, dir: &Path) -> EnrollOptions {
    EnrollOptions {
        center: format!("https://127.0.0.1:{port}"),
        token: token.into(),
        ca_sha256: pin.into(),
        state_dir: dir.join("state"),
        install_id: Some("inst-1".into()),
        allow_unsupported: true,
        facts_root: fixture_root(dir),
    }
}

#[tokio::test]
async fn wrong_pin_never_sends_the_token() {
    let pki = Arc::new(pki());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = fake_api(pki.clone(), seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = hostward_pki::Ca::generate("Impostor").unwrap();
    let err = enroll::enroll(&opts(port, "good-token", &other.fingerprint(), dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::CaMismatch(_)), "{err}");
    assert!(err.to_string().contains("CA fingerprint mismatch"), "{err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing was sent to a server with the wrong CA"
    );
    assert!(!dir.path().join("state").exists());

    let err = enroll::enroll(&opts(port, "good-token", "not-hex", dir.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--ca-sha256"), "{err}");
}

#[tokio::test]
async fn enrollment_writes_identity_and_reports() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipped: enrollment preflight needs root");
        return;
    }
    let pki = Arc::new(pki());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = fake_api(pki.clone(), seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();

    let err = enroll::enroll(&opts(port, "bad-token", &pki.ca.fingerprint(), dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EnrollError::Refused { code, .. } if code == "invalid_token"),
        "{err}"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            2,
            "installing report + enroll, no failure report for a bad token: {seen:?}"
        );
        assert!(seen[0].contains("\"status\":\"installing\"") && seen[0].contains("inst-1"));
    }

    let id = enroll::enroll(&opts(port, "good-token", &pki.ca.fingerprint(), dir.path()))
        .await
        .unwrap();
    assert_eq!(
        (id.agent_id.as_str(), id.server_id.as_str()),
        ("agent-1", "server-1")
    );
    let creds = enroll::Credentials::load(&dir.path().join("state")).unwrap();
    assert_eq!(
        creds.ca_pem.trim(),
        pki.ca.cert_pem().trim(),
        "the pinned CA is the one stored"
    );
    assert_eq!(
        creds.identity.center_url,
        format!("https://127.0.0.1:{port}")
    );
    creds.tls_config().unwrap();
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
/// A fake gateway: mutual TLS, then either refuses the upgrade or hands frames to the test.
async fn fake_gateway(
    pki: Arc<Pki>,
    refuse: bool,
) -> (
    u16,
    tokio::sync::mpsc::Receiver<
        tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    >,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg =
        hostward_pki::gateway_server_config(&pki.chain, &pki.key, pki.ca.cert_pem(), None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let cb = move |_req: &tungstenite::handshake::server::Request, resp| {
                if refuse {
                    let body =
                        r#"{"error":{"code":"revoked","message":"agent revoked"}}"#.to_string();
                    Err(tungstenite::http::Response::builder()
                        .status(403)
                        .body(Some(body))
                        .unwrap())
                } else {
                    Ok(resp)
                }
            };
            if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls, cb).await {
                tx.send(ws).await.unwrap();
            }
        }
    });
    (port, rx)
}

fn agent_creds(pki: &Pki, port: u16) -> enroll::Credentials {
    let (key_pem, csr) = hostward_pki::agent_key_and_csr("test-host").unwrap();
    let issued = pki.ca.sign_agent_csr(&csr, "agent-1").unwrap();
    enroll::Credentials {
        identity: enroll::Identity {
            agent_id: "agent-1".into(),
            server_id: "server-1".into(),
            center_url: "https://127.0.0.1:1".into(),
            gateway_url: format!("wss://127.0.0.1:{port}/agent/v1"),
        },
        cert_pem: issued.cert_pem,
        key_pem,
        ca_pem: pki.ca.cert_pem().to_string(),
    }
}

#[tokio::test]
async fn refused_upgrade_reports_code_and_message() {
    let pki = Arc::new(pki());
    let (port, _rx) = fake_gateway(pki.clone(), true).await;
    let creds = agent_creds(&pki, port);
    let gw = link::parse_gateway_url(&creds.identity.gateway_url).unwrap();
    let err = link::connect(&gw, creds.tls_config().unwrap())
        .await
        .unwrap_err();
    match &err {
        link::ConnectError::Refused {
            status,
            code,
            message,
        } => {
            assert_eq!(
                (*status, code.as_str(), message.as_str()),
                (403, "revoked", "agent revoked")
            )
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        err.to_string(),
        "center refused the connection: revoked: agent revoked"
    );
}

async fn next_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Envelope
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frame in time")
            .unwrap()
            .unwrap();
        if let tungstenite::Message::Text(t) = msg {
            return Envelope::from_json(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn session_delivers_records_runs_tasks_and_says_bye() {
    let pki = Arc::new(pki());
    let (port, mut sessions) = fake_gateway(pki.clone(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let creds = agent_creds(&pki, port);
    let outbox = Outbox::open(&db, 1000).await.unwrap();
    // Queued before the agent runs, as if left from a previous run.
    outbox
        .push(&Message::Event(Event {
            ts: 1,
            event_type: "early".into(),
            data: serde_json::json!({}),
        }))
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(Daemon::new(creds, outbox).run(stop_rx));

    let mut ws = tokio::time::timeout(Duration::from_secs(10), sessions.recv())
        .await
        .unwrap()
        .unwrap();
    let hello = next_frame(&mut ws).await;
    let Message::Hello(h) = hello.msg else {
        panic!("first frame must be hello, got {hello:?}")
    };
    assert_eq!(
        (h.protocol, h.last_seq),
        (hostward_proto::PROTOCOL_VERSION, 1)
    );

    // Built from JSON so that the runtime's tests, too, name no module's policy: each has a
    // default.
    let cfg: AgentConfig = serde_json::from_value(serde_json::json!({
        "version": 3,
        "heartbeat_secs": 1,
        "protection_enabled": true,
    }))
    .unwrap();
    ws.send(tungstenite::Message::text(
        Envelope::control(Message::Config(cfg)).to_json(),
    ))
    .await
    .unwrap();
    // Garbage must not end the session.
    ws.send(tungstenite::Message::text("{garbage"))
        .await
        .unwrap();

    // Another process (emit) writes the outbox; the daemon finds it by polling.
    let emitter = Outbox::open(&db, 1000).await.unwrap();
    emitter
        .push(&Message::Event(Event {
            ts: 2,
            event_type: "late".into(),
            data: serde_json::json!({}),
        }))
        .await
        .unwrap();

    let task = Task {
        id: "task-1".into(),
        kind: "ping".into(),
        params: serde_json::Value::Null,
        expires_at: None,
    };
    ws.send(tungstenite::Message::text(
        Envelope::control(Message::Task(task)).to_json(),
    ))
    .await
    .unwrap();

    let mut records = Vec::new();
    let mut heartbeats = 0;
    while records.len() < 4 || heartbeats < 1 {
        let env = next_frame(&mut ws).await;
        match &env.msg {
            Message::Heartbeat(hb) => {
                heartbeats += 1;
                assert!(hb.rss_bytes > 0);
            }
            m if m.is_record() => records.push(env),
            other => panic!("unexpected {other:?}"),
        }
    }
    let seqs: Vec<u64> = records.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "records in seq order: {seqs:?}"
    );
    assert!(matches!(&records[0].msg, Message::Event(e) if e.event_type == "early"));
    let updates: Vec<(TaskState, serde_json::Value)> = records
        .iter()
        .filter_map(|e| match &e.msg {
            Message::TaskUpdate(u) => Some((u.state, u.output.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        updates,
        vec![
            (TaskState::Running, serde_json::Value::Null),
            (TaskState::Done, serde_json::json!({"pong": true}))
        ]
    );

    let top = *seqs.last().unwrap();
    ws.send(tungstenite::Message::text(
        Envelope::control(Message::Ack(Ack { seq: top })).to_json(),
    ))
    .await
    .unwrap();
    let mut deadline = 50;
    while emitter.depth().await.unwrap() != 0 {
        deadline -= 1;
        assert!(deadline > 0, "acked records are deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stop_tx.send(true).unwrap();
    loop {
        let env = next_frame(&mut ws).await;
        if let Message::Bye(b) = env.msg {
            assert!(b.reason == "agent_stopped" || b.reason == "system_shutdown");
            break;
        }
    }
    // The agent closes the WebSocket cleanly and its run ends with Ok.
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
