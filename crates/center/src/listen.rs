//! Connection limits and timeouts of the center's listeners: the console/API accept loop (8443)
//! with per-address and total connection caps, and the TLS handshake and HTTP/1 settings the
//! agent gateway (10180) shares with it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::ConsoleLimits;
use crate::metrics as m;

/// How long accepted connections in flight get to finish after a graceful shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);
/// The automatic console cap never exceeds this: each TLS connection holds buffers of a few
/// tens of KiB, and a console serves people, not fleets.
const AUTO_MAX_CONSOLE: usize = 8192;

/// The console connection cap: the configured one, or a quarter of the open-files limit (at
/// most [`AUTO_MAX_CONSOLE`], at least 16) so three quarters stay for agent sessions (one
/// descriptor each), the database and files. A configured cap above half the limit is refused:
/// it would let the console starve the gateway again.
pub fn console_max_connections(nofile: u64, configured: Option<usize>) -> anyhow::Result<usize> {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    match configured {
        Some(n) if n > nofile / 2 => anyhow::bail!(
            "invalid setting console_max_connections: {n} is more than half of the open-files \
             limit ({nofile}); the agent gateway needs the rest"
        ),
        Some(n) => Ok(n),
        None => Ok((nofile / 4).clamp(16, AUTO_MAX_CONSOLE)),
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerAddress,
    Total,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::Total => "total",
        }
    }
}

/// Counts open connections per source address and in total.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<Mutex<SlotsInner>>,
    per_address: usize,
    total: usize,
}

struct SlotsInner {
    by_addr: HashMap<IpAddr, usize>,
    total: usize,
}

/// One open connection; gives its slot back when dropped.
pub struct Slot {
    slots: Slots,
    addr: IpAddr,
}

impl Slots {
    pub fn new(per_address: usize, total: usize) -> Slots {
        Slots {
            inner: Arc::new(Mutex::new(SlotsInner {
                by_addr: HashMap::new(),
                total: 0,
            })),
            per_address,
            total,
        }
    }

    pub fn try_take(&self, addr: IpAddr) -> Result<Slot, Refusal> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.total >= self.total {
            return Err(Refusal::Total);
        }
        let n = g.by_addr.entry(addr).or_insert(0);
        if *n >= self.per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        g.total += 1;
        Ok(Slot {
            slots: self.clone(),
            addr,
        })
    }

    pub fn open(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.slots.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.total -= 1;
        if let Some(n) = g.by_addr.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                g.by_addr.remove(&self.addr);
            }
        }
    }
}

/// Why a TLS handshake did not complete.
pub enum HandshakeError {
    Failed(std::io::Error),
    TimedOut,
}

/// A TLS handshake bounded in time, so a client that connects and never finishes it cannot hold
/// the descriptor.
pub async fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    limit: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(HandshakeError::Failed(e)),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}

/// HTTP/1 with a header read timeout. hyper (1.12) starts that timer whenever a connection waits
/// for a request head, on a fresh connection and again after each response, so it is also the
/// keep-alive idle timeout; upgraded connections (agent WebSockets) leave hyper's parser and are
/// not affected.
pub fn http1(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    b
}

/// `Strict-Transport-Security` on every answer of the port; `Cache-Control: no-store` on API
/// answers (tenant data, and new secrets: enrollment and API tokens, the login's CSRF token)
/// unless the handler chose its own caching.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path == "/api/v1" || path.starts_with("/api/v1/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The console/API listener: caps, timeouts and graceful shutdown around `app`.
pub struct Console {
    pub listener: TcpListener,
    pub tls: Arc<rustls::ServerConfig>,
    pub app: Router,
    pub limits: ConsoleLimits,
    pub max_connections: usize,
}

impl Console {
    /// Serves until `stop` turns true, then stops accepting and gives open connections
    /// [`DRAIN`] to finish their requests.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let Console {
            listener,
            tls,
            app,
            limits,
            max_connections,
        } = self;
        let acceptor = TlsAcceptor::from(tls);
        let slots = Slots::new(limits.max_per_ip, max_connections);
        let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "console/API accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            };
            let slot = match slots.try_take(peer.ip()) {
                Ok(s) => s,
                Err(why) => {
                    metrics::counter!(m::CONSOLE_CONNECTIONS_REFUSED, "reason" => why.label())
                        .increment(1);
                    // Dropping closes it at once, before any TLS work.
                    drop(tcp);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            let watcher = graceful.watcher();
            let limits = limits.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let tls = match tls_handshake(&acceptor, tcp, limits.tls_handshake).await {
                    Ok(t) => t,
                    Err(HandshakeError::TimedOut) => {
                        metrics::counter!(m::CONSOLE_CONNECTIONS_REFUSED, "reason" => "tls_timeout")
                            .increment(1);
                        return;
                    }
                    Err(HandshakeError::Failed(e)) => {
                        tracing::debug!(%peer, error = %e, "console TLS handshake failed");
                        return;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(
                    app.layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
                );
                let conn = http1(limits.header_timeout).serve_connection(TokioIo::new(tls), svc);
                if let Err(e) = watcher.watch(conn).await {
                    if e.is_timeout() {
                        metrics::counter!(m::CONSOLE_CONNECTIONS_REFUSED, "reason" => "header_timeout")
                            .increment(1);
                    }
                    tracing::debug!(%peer, error = %e, "console connection ended with an error");
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!(
                open = slots.open(),
                "console connections still open after the drain time"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_address_and_the_total_and_come_back() {
        let s = Slots::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = s.try_take(a).unwrap();
        let _a2 = s.try_take(a).unwrap();
        assert_eq!(s.try_take(a).err(), Some(Refusal::PerAddress));
        let _b1 = s.try_take(b).unwrap();
        assert_eq!(s.try_take(c).err(), Some(Refusal::Total));
        drop(a1);
        assert_eq!(s.open(), 2);
        let _c1 = s.try_take(c).unwrap();
        assert_eq!(s.try_take(a).err(), Some(Refusal::Total));
    }

    #[test]
    fn console_cap_leaves_the_gateway_most_descriptors() {
        assert_eq!(console_max_connections(20_000, None).unwrap(), 5_000);
        assert_eq!(
            console_max_connections(1_048_576, None).unwrap(),
            AUTO_MAX_CONSOLE
        );
        assert_eq!(console_max_connections(40, None).unwrap(), 16);
        assert_eq!(console_max_connections(20_000, Some(100)).unwrap(), 100);
        let err = console_max_connections(20_000, Some(15_000))
            .unwrap_err()
            .to_string();
        assert!(err.contains("console_max_connections"), "{err}");
    }
}
