//! Console sessions: login with per-source lockout, logout, and the session cookie.

use std::net::IpAddr;

use axum::http::StatusCode;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::{Principal, password, principal_for_user, secret};
use crate::AppState;
use crate::web::ApiError;
use hostward_store::{AuditEntry, NewSession, now};

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

/// The one answer for an unknown user, a wrong password and a refused attempt alike, so the
/// answer does not tell which user names exist or which are locked.
pub fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "wrong username or password, or too many failed attempts from your address; \
         wait a while before trying again",
    )
}

async fn audit(
    state: &AppState,
    user_id: &str,
    username: &str,
    action: &str,
    detail: &str,
    ip: Option<IpAddr>,
) {
    let entry = AuditEntry {
        user_id: user_id.into(),
        username: username.into(),
        action: action.into(),
        target: username.into(),
        detail: detail.into(),
        source_ip: ip.map(|i| i.to_string()).unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!("writing audit entry {action}: {e}");
    }
}

/// The source part of a counter: an IPv4 address or an IPv6 /64 (see `password::source_key`).
fn source_label(ip: Option<IpAddr>) -> String {
    match ip.map(password::source_key) {
        Some(IpAddr::V6(v6)) => format!("{v6}/64"),
        Some(v4) => v4.to_string(),
        None => "local".into(),
    }
}

/// The failed-attempt counters one password check is charged to.
pub(crate) struct Attempt {
    /// `acct:<name>|<source>`: this account from this source.
    account: String,
    /// `src:<source>`: this source across accounts.
    source: String,
}

/// Why an attempt was refused before any password was checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Refusal {
    /// This account had `login_max_failures` failures from this source within the window.
    AccountSource,
    /// This source had `login_source_max_failures` failures across accounts within the window.
    Source,
}

impl Refusal {
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::AccountSource => "too many failures for this account from this source",
            Refusal::Source => "too many failures from this source",
        }
    }
}

impl Attempt {
    /// Scopes for `username` (lower-cased, as typed, so unknown names are counted like real
    /// ones) from `ip`.
    pub(crate) fn new(username: &str, ip: Option<IpAddr>) -> Attempt {
        let name: String = username
            .chars()
            .take(MAX_USERNAME_LEN)
            .collect::<String>()
            .to_lowercase();
        let src = source_label(ip);
        Attempt {
            account: format!("acct:{name}|{src}"),
            source: format!("src:{src}"),
        }
    }

    /// Reserves this attempt on both counters before the check. `Err(refusal)` means: do not
    /// check the password (the reservation stays: refused attempts count too).
    pub(crate) async fn reserve(&self, state: &AppState) -> Result<Result<(), Refusal>, ApiError> {
        let t = now();
        let window = state.config.lockout_secs.min(i64::MAX as u64) as i64;
        let expired = t.saturating_sub(window);
        // Counters are few per source; dropping the stale ones now and then keeps the table
        // small without a separate job.
        if rand::random::<u8>() == 0
            && let Err(e) = state.store.purge_login_attempts(expired).await
        {
            tracing::warn!("purging old login counters: {e}");
        }
        let acct = state
            .store
            .reserve_login_attempt(&self.account, t, expired)
            .await?;
        let src = state
            .store
            .reserve_login_attempt(&self.source, t, expired)
            .await?;
        if acct > i64::from(state.config.login_max_failures.max(1)) {
            return Ok(Err(Refusal::AccountSource));
        }
        if src > i64::from(state.config.login_source_max_failures.max(1)) {
            return Ok(Err(Refusal::Source));
        }
        Ok(Ok(()))
    }

    /// The check did not happen (pool busy) or succeeded: the reservation is given back.
    pub(crate) async fn release(&self, state: &AppState) -> Result<(), ApiError> {
        state.store.release_login_attempt(&self.account).await?;
        state.store.release_login_attempt(&self.source).await?;
        Ok(())
    }

    /// The password was right: this account's counter from this source starts again.
    pub(crate) async fn succeeded(&self, state: &AppState) -> Result<(), ApiError> {
        state.store.delete_login_attempt(&self.account).await?;
        state.store.release_login_attempt(&self.source).await?;
        Ok(())
    }
}

/// Checks the password and opens a session. Returns the principal and the raw session id for
/// [`session_cookie`]; only its SHA-256 is stored.
///
/// Each attempt is first reserved on two counters in the database (this account from this
/// source, and this source across accounts), in one statement each, so a burst of parallel
/// attempts gets at most the limit of checks. Past either limit the password is not checked.
/// Unknown users, wrong passwords, refused attempts and malformed input all answer 401
/// `bad_credentials` after the same Argon2 work; the audit log says which it was. A full
/// Argon2 pool answers 503 `busy` and gives the reservation back.
///
/// A user with two-factor sign-in on must also give `code`: the current TOTP code (each code
/// works once) or one of their recovery codes (each works once). A missing or wrong code is a
/// failed attempt like a wrong password, and answers the same.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    code: Option<&str>,
    source_ip: Option<IpAddr>,
) -> Result<(Principal, String), ApiError> {
    let pool = password::pool(&state.config);
    let shown: String = username.chars().take(MAX_USERNAME_LEN).collect();
    let attempt = Attempt::new(username, source_ip);
    let user = if username.is_empty() || username.len() > MAX_USERNAME_LEN {
        None
    } else {
        state.store.user_by_name(username).await?
    };
    let t = now();
    let refusal = match attempt.reserve(state).await? {
        Err(r) => Some(r.detail()),
        Ok(()) if user.as_ref().is_some_and(|u| u.locked_until > t) => {
            Some("account locked by an administrator")
        }
        Ok(()) => None,
    };
    let checked = match (&user, refusal) {
        (Some(u), None) => pool.verify(source_ip, password, &u.password_hash).await,
        _ => pool.verify_dummy(source_ip, password).await.map(|()| false),
    };
    let ok = match checked {
        Ok(ok) => ok,
        Err(e) => {
            if refusal.is_none() {
                attempt.release(state).await?;
            }
            return Err(e);
        }
    };
    let (uid, uname) = user
        .as_ref()
        .map(|u| (u.id.clone(), u.username.clone()))
        .unwrap_or_else(|| (String::new(), shown));
    if let Some(why) = refusal {
        audit(state, &uid, &uname, "auth.login_locked", why, source_ip).await;
        return Err(bad_credentials());
    }
    let Some(user) = user.filter(|_| ok) else {
        let why = if uid.is_empty() {
            "unknown user"
        } else {
            "wrong password"
        };
        audit(state, &uid, &uname, "auth.login_failed", why, source_ip).await;
        return Err(bad_credentials());
    };
    if let Some(why) = second_factor_refused(state, &user.id, code, source_ip).await? {
        audit(
            state,
            &user.id,
            &user.username,
            "auth.login_failed",
            why,
            source_ip,
        )
        .await;
        return Err(bad_credentials());
    }
    attempt.succeeded(state).await?;
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
    audit(state, &user.id, &user.username, "auth.login", "", source_ip).await;
    let mut p = principal_for_user(state, &user, Some(csrf)).await?;
    p.source_ip = source_ip;
    Ok((p, raw))
}

/// Why the second factor of a user who has one turned on does not let them in (None: it
/// does, or they have none). A recovery code spent is audited.
async fn second_factor_refused(
    state: &AppState,
    user_id: &str,
    code: Option<&str>,
    source_ip: Option<IpAddr>,
) -> Result<Option<&'static str>, ApiError> {
    let tf = state.store.two_factor(user_id).await?;
    let (Some(_), Some(sealed)) = (tf.enabled_at, tf.sealed.as_deref()) else {
        return Ok(None);
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Some("second factor missing"));
    };
    if code
        .chars()
        .filter(|c| !c.is_whitespace())
        .all(|c| c.is_ascii_digit())
    {
        let seed = super::sealed::open(&state.config.data_dir, sealed)
            .map_err(|e| ApiError::internal(format!("a two-factor seed: {e}")))?;
        return Ok(match super::totp::check(&seed, code, now(), tf.last_step) {
            Some(step) if state.store.use_totp_step(user_id, step).await? => None,
            Some(_) => Some("second factor code already used"),
            None => Some("wrong second factor code"),
        });
    }
    let hash = secret::hash_secret(&super::totp::normalize_recovery(code));
    if state.store.use_recovery_code(user_id, &hash).await? {
        let user = state
            .store
            .user(user_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        audit(
            state,
            user_id,
            &user,
            "auth.recovery_code_used",
            "",
            source_ip,
        )
        .await;
        return Ok(None);
    }
    Ok(Some("wrong or used recovery code"))
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
