//! Agent enrollment and install reports. No user is signed in: the enrollment token is the
//! credential, checked for existence, revocation, expiry and the caller's source network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hostward_proto::{EnrollRequest, EnrollResponse, InstallReport};

use super::tokens::parse_cidrs;
use super::{ApiError, ApiJson, ClientIp};
use crate::AppState;
use crate::auth::secret;
use hostward_store::{AuditEntry, EnrollRefusal, Enrollment, EnrollmentToken, now};

/// Failed token checks per source address per window before the address is refused. Only
/// failures count: a fleet rollout with a valid token from one NAT address is never throttled,
/// while guessing tokens is.
pub const RATE_LIMIT: u32 = 30;
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Cap on tracked addresses, so a spray of sources cannot grow the map without bound.
const RATE_MAP_MAX: usize = 10_000;
const MAX_CSR_BYTES: usize = 16 * 1024;

/// Fixed-window counter of failures per source address, in memory: each replica limits on its
/// own, which is enough to blunt token guessing.
struct RateLimiter {
    map: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

static LIMITER: std::sync::LazyLock<RateLimiter> = std::sync::LazyLock::new(|| RateLimiter {
    map: Mutex::new(HashMap::new()),
});

impl RateLimiter {
    /// Whether `ip` may try again (fewer than [`RATE_LIMIT`] failures in the window).
    fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip)
            .is_none_or(|(start, n)| now.duration_since(*start) >= RATE_WINDOW || *n < RATE_LIMIT)
    }

    fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= RATE_MAP_MAX {
            map.retain(|_, (start, _)| now.duration_since(*start) < RATE_WINDOW);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= RATE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Checks the token, counting failures against the source address. An address over the limit
/// gets 429 for every token that fails, but a valid token still passes: the limit blunts
/// guessing without refusing a fleet that shares the guesser's NAT or proxy address.
async fn checked_token(
    state: &AppState,
    secret_text: &str,
    ip: Option<IpAddr>,
) -> Result<EnrollmentToken, ApiError> {
    let limited = ip.is_some_and(|ip| !LIMITER.allow(ip));
    let r = check_token(state, secret_text, ip).await;
    match (r, ip) {
        (Err(e), Some(ip)) if e.status != StatusCode::INTERNAL_SERVER_ERROR => {
            LIMITER.failed(ip);
            Err(if limited { rate_limited() } else { e })
        }
        (r, _) => r,
    }
}

fn rate_limited() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed enrollment attempts from this address; retry in a minute",
    )
}

fn token_error(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The token behind `secret`, if it may enroll from `ip`.
pub async fn check_token(
    state: &AppState,
    secret_text: &str,
    ip: Option<IpAddr>,
) -> Result<EnrollmentToken, ApiError> {
    if secret_text.is_empty() || secret_text.len() > 256 {
        return Err(token_error("invalid_token", "unknown enrollment token"));
    }
    let t = state
        .store
        .enrollment_token_by_hash(&secret::hash_secret(secret_text))
        .await?
        .ok_or_else(|| token_error("invalid_token", "unknown enrollment token"))?;
    if t.revoked_at.is_some() {
        return Err(token_error(
            "token_revoked",
            "this enrollment token was revoked",
        ));
    }
    if t.expires_at.is_some_and(|e| e <= now()) {
        return Err(token_error(
            "token_expired",
            "this enrollment token has expired",
        ));
    }
    if t.max_uses.is_some_and(|m| t.uses >= m) {
        return Err(token_error(
            "token_used_up",
            "this enrollment token has enrolled as many servers as it allows",
        ));
    }
    if !t.allowed_cidrs.is_empty() {
        // Stored entries were validated at creation; one that no longer parses allows nothing.
        let nets = parse_cidrs("allowed_cidrs", &t.allowed_cidrs).unwrap_or_default();
        let inside = ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&canonical(ip))));
        if !inside {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cidr_not_allowed",
                "this enrollment token may not be used from your network",
            ));
        }
    }
    Ok(t)
}

/// IPv4 peers on a dual-stack socket appear as `::ffff:a.b.c.d`; CIDRs are written in IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

async fn audit_token_use(
    state: &AppState,
    t: &EnrollmentToken,
    ip: Option<IpAddr>,
    action: &str,
    target: &str,
    detail: &str,
) {
    let entry = AuditEntry {
        username: format!("enrollment-token:{}", t.prefix),
        project_id: t.project_id.clone(),
        action: action.into(),
        target: target.into(),
        detail: detail.into(),
        source_ip: ip.map(|i| i.to_string()).unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(action, "writing audit entry failed: {e}");
    }
}

fn short(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.len() > max {
        return Err(ApiError::invalid_body(format!(
            "{field}: longer than {max} bytes"
        )));
    }
    Ok(())
}

/// Signs the agent's CSR and records the new agent.
pub async fn enroll(
    state: &AppState,
    req: EnrollRequest,
    ip: Option<IpAddr>,
) -> Result<EnrollResponse, ApiError> {
    let t = checked_token(state, &req.token, ip).await?;
    short("csr_pem", &req.csr_pem, MAX_CSR_BYTES)?;
    req.facts
        .validate("facts.")
        .map_err(ApiError::invalid_body)?;
    if let Some(iid) = &req.install_id {
        short("install_id", iid, 100)?;
    }
    let agent_id = uuid::Uuid::new_v4().to_string();
    let issued = state
        .pki
        .ca
        .sign_agent_csr(&req.csr_pem, &agent_id)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_csr",
                format!("csr_pem: {e}"),
            )
        })?;
    let outcome = state
        .store
        .enroll(&Enrollment {
            token_id: t.id.clone(),
            grant_server_id: t.server_id.clone(),
            token_created_at: t.created_at,
            project_id: t.project_id.clone(),
            region: t.region.clone(),
            install_id: req.install_id.clone().filter(|s| !s.is_empty()),
            agent_id: agent_id.clone(),
            cert_serial: issued.serial_hex,
            cert_not_after: issued.not_after,
            facts: req.facts.clone(),
        })
        .await?;
    let srv = match outcome {
        Ok(srv) => srv,
        Err(refusal) => return Err(refused(state, &t, ip, &req, refusal).await),
    };
    audit_token_use(
        state,
        &t,
        ip,
        "agent.enroll",
        &srv.id,
        &format!("agent {agent_id}, host {}", req.facts.hostname),
    )
    .await;
    Ok(EnrollResponse {
        agent_id,
        server_id: srv.id,
        cert_pem: issued.cert_pem,
        gateway_url: state.config.gateway_url.clone(),
        gateway_urls: state.gateway.gateways(),
    })
}

/// The answer to an enrollment the store refused, audited in the token's project: a refused
/// rebind is what an identity takeover attempt looks like.
async fn refused(
    state: &AppState,
    t: &EnrollmentToken,
    ip: Option<IpAddr>,
    req: &EnrollRequest,
    refusal: EnrollRefusal,
) -> ApiError {
    let iid = req.install_id.as_deref().unwrap_or("");
    let (target, code, err) = match refusal {
        EnrollRefusal::TokenUsedUp => (
            String::new(),
            "token_used_up",
            token_error(
                "token_used_up",
                "this enrollment token has enrolled as many servers as it allows",
            ),
        ),
        EnrollRefusal::AlreadyEnrolled { server_id, name } => (
            server_id,
            "already_enrolled",
            ApiError::new(
                StatusCode::CONFLICT,
                "already_enrolled",
                format!(
                    "install id {iid:?} belongs to server {name:?}, which already has an agent; \
                     to replace it an admin chooses Re-install on that server and runs the \
                     one-time command it gives"
                ),
            ),
        ),
        EnrollRefusal::Revoked { server_id, name } => (
            server_id,
            "server_revoked",
            ApiError::new(
                StatusCode::CONFLICT,
                "server_revoked",
                format!(
                    "server {name:?} (install id {iid:?}) had its agent revoked; only a \
                     Re-install command an admin issues after the revocation enrolls it again"
                ),
            ),
        ),
    };
    let detail = format!("{code}: host {}", req.facts.hostname);
    audit_token_use(state, t, ip, "agent.enroll_refused", &target, &detail).await;
    err
}

/// Records install progress or failure before the agent exists.
pub async fn report(
    state: &AppState,
    r: InstallReport,
    ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    let t = checked_token(state, &r.token, ip).await?;
    if r.install_id.trim().is_empty() {
        return Err(ApiError::invalid_body("install_id: must not be empty"));
    }
    short("install_id", &r.install_id, 100)?;
    short("hostname", &r.hostname, 255)?;
    short("detail", r.detail.as_deref().unwrap_or(""), 4096)?;
    let cause = match r.status.as_str() {
        "installing" => None,
        "failed" => {
            let c = r
                .cause
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "unknown".into());
            if c.len() > 64
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                return Err(ApiError::invalid_body(
                    "cause: must be a code of lower-case letters, digits and _",
                ));
            }
            Some(c)
        }
        other => {
            return Err(ApiError::invalid_body(format!(
                "status: {other:?} is not one of installing, failed"
            )));
        }
    };
    let srv = state
        .store
        .install_report(
            &t.project_id,
            &t.region,
            &r.install_id,
            &r.hostname,
            cause.as_deref(),
        )
        .await?;
    let detail = match &cause {
        Some(c) => format!("failed: {c}"),
        None => "installing".to_string(),
    };
    audit_token_use(state, &t, ip, "agent.install_report", &srv.id, &detail).await;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/enroll", tag = "enrollment", request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
pub async fn enroll_handler(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    Ok(Json(enroll(&state, req, ip).await?))
}

#[utoipa::path(post, path = "/api/v1/enroll/report", tag = "enrollment", request_body = Object,
    responses((status = 204), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
pub async fn report_handler(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(r): ApiJson<InstallReport>,
) -> Result<StatusCode, ApiError> {
    report(&state, r, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_after_repeated_failures_only() {
        let l = RateLimiter {
            map: Mutex::new(HashMap::new()),
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..RATE_LIMIT * 3 {
            assert!(l.allow(ip), "successes alone never limit");
        }
        for _ in 0..RATE_LIMIT {
            assert!(l.allow(ip));
            l.failed(ip);
        }
        assert!(!l.allow(ip));
        assert!(
            l.allow("192.0.2.2".parse().unwrap()),
            "other addresses are unaffected"
        );
    }

    #[test]
    fn mapped_ipv4_is_canonical() {
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
