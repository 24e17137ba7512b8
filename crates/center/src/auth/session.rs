//! Console sessions: login with lockout, logout, and the session cookie.

use std::net::IpAddr;

use axum::http::StatusCode;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::{Principal, password, principal_for_user, secret};
use crate::AppState;
use crate::api::ApiError;
use crate::store::{AuditEntry, NewSession, now};

/// `__Host-` binds the cookie to this origin: Secure, Path=/, no Domain.
pub const SESSION_COOKIE: &str = "__Host-hostward_session";

/// Usernames longer than this are not looked up (they cannot exist).
const MAX_USERNAME_LEN: usize = 64;

/// The session cookie for a raw session id.
pub fn session_cookie(raw_session_id: &str, ttl_secs: u64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, raw_session_id.to_string()))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(time::Duration::seconds(ttl_secs.min(i64::MAX as u64) as i64))
        .build()
}

/// A cookie that makes the browser drop the session cookie.
pub fn removal_cookie() -> Cookie<'static> {
    let mut c = session_cookie("", 0);
    c.make_removal();
    c
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "wrong username or password",
    )
}

fn locked() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "locked",
        "too many failed logins; this account is locked for a while",
    )
}

async fn audit(state: &AppState, user_id: &str, username: &str, action: &str, ip: Option<IpAddr>) {
    let entry = AuditEntry {
        user_id: user_id.into(),
        username: username.into(),
        action: action.into(),
        target: username.into(),
        source_ip: ip.map(|i| i.to_string()).unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!("writing audit entry {action}: {e}");
    }
}

/// Checks the password and opens a session. Returns the principal and the raw session id for
/// [`session_cookie`]; only its SHA-256 is stored. Unknown users, wrong passwords and malformed
/// input all answer `bad_credentials` after the same Argon2 work; a locked account answers 429
/// `locked`.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    source_ip: Option<IpAddr>,
) -> Result<(Principal, String), ApiError> {
    let user = if username.is_empty() || username.len() > MAX_USERNAME_LEN {
        None
    } else {
        state.store.user_by_name(username).await?
    };
    let Some(user) = user else {
        password::verify_dummy(password).await;
        audit(
            state,
            "",
            &username.chars().take(MAX_USERNAME_LEN).collect::<String>(),
            "auth.login_failed",
            source_ip,
        )
        .await;
        return Err(bad_credentials());
    };
    let t = now();
    if user.locked_until > t {
        password::verify_dummy(password).await;
        audit(
            state,
            &user.id,
            &user.username,
            "auth.login_locked",
            source_ip,
        )
        .await;
        return Err(locked());
    }
    if !password::verify_password(password, &user.password_hash).await {
        let max = i64::from(state.config.login_max_failures.max(1));
        let until = t.saturating_add(state.config.lockout_secs.min(i64::MAX as u64) as i64);
        let now_locked = state
            .store
            .record_failed_login(&user.id, max, until)
            .await?;
        audit(
            state,
            &user.id,
            &user.username,
            if now_locked {
                "auth.locked"
            } else {
                "auth.login_failed"
            },
            source_ip,
        )
        .await;
        return Err(if now_locked {
            locked()
        } else {
            bad_credentials()
        });
    }
    state.store.reset_failed_logins(&user.id).await?;
    let raw = secret::random_secret();
    let csrf = secret::random_secret();
    let ttl = state.config.session_ttl_secs.min(i64::MAX as u64) as i64;
    state
        .store
        .create_session(&NewSession {
            id_hash: secret::hash_secret(&raw),
            user_id: user.id.clone(),
            csrf_token: csrf.clone(),
            expires_at: t.saturating_add(ttl),
        })
        .await?;
    audit(state, &user.id, &user.username, "auth.login", source_ip).await;
    let mut p = principal_for_user(state, &user, Some(csrf)).await?;
    p.source_ip = source_ip;
    Ok((p, raw))
}

/// Ends the session with this raw id; unknown ids are not an error.
pub async fn logout(state: &AppState, raw_session_id: &str) -> Result<(), ApiError> {
    state
        .store
        .delete_session(&secret::hash_secret(raw_session_id))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_host_prefixed_and_strict() {
        let c = session_cookie("abc", 3600).to_string();
        for part in [
            "__Host-hostward_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }
}
