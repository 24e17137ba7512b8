//! Authentication and authorization: who is calling ([`Principal`]), with which role in which
//! project ([`Role`]), proven by an API token or a console session (plus CSRF token for unsafe
//! methods). Every API operation and console page checks a `Principal` against the project of the
//! object it touches; see ARCHITECTURE.md "Authorization on every call".

pub mod password;
pub mod sealed;
pub mod secret;
pub mod session;
pub mod totp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::web::ApiError;
use hostward_store::User;

pub use password::{
    HashPool, MIN_PASSWORD_LEN, hash_password, random_password, validate_new_password,
};
pub use secret::{hash_secret, new_api_token, new_enrollment_token};
pub use session::{SESSION_COOKIE, bad_credentials, login, logout, removal_cookie, session_cookie};

/// Header carrying the session's CSRF token on unsafe methods.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A role in one project. The order is the privilege order: `Viewer < Operator < Admin`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::parse(s).ok_or_else(|| format!("{s:?} is not a role (admin, operator, viewer)"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
    /// Role per project id. For a superadmin authenticated by token or session this lists every
    /// project as `Admin`; [`Principal::system`] leaves it empty (its checks do not need it).
    pub roles: HashMap<String, Role>,
    /// The session's CSRF token when authenticated by console session cookie; `None` for API
    /// tokens, which browsers never send on their own.
    pub csrf: Option<String>,
    /// TCP peer address, for the audit log.
    pub source_ip: Option<IpAddr>,
    /// A project of this user that requires two-factor sign-in while the user has none: until
    /// it is set up only the two-factor set-up, `/me` and sign-out work.
    pub two_factor_required_by: Option<String>,
}

impl Principal {
    /// The CLI acting with full rights, audited as user "system".
    pub fn system() -> Principal {
        Principal {
            user_id: String::new(),
            username: "system".into(),
            is_superadmin: true,
            must_change_password: false,
            roles: HashMap::new(),
            csrf: None,
            source_ip: None,
            two_factor_required_by: None,
        }
    }

    pub fn role_in(&self, project_id: &str) -> Option<Role> {
        if self.is_superadmin {
            return Some(Role::Admin);
        }
        self.roles.get(project_id).copied()
    }

    /// Answers 404 when the caller has no role in the project (so its objects stay invisible),
    /// 403 when the role is below `min`.
    pub fn require(&self, project_id: &str, min: Role) -> Result<(), ApiError> {
        self.require_on("project", project_id, min)
    }

    /// As [`Principal::require`], naming the object (`what`) in the 404.
    pub fn require_on(&self, what: &str, project_id: &str, min: Role) -> Result<(), ApiError> {
        match self.role_in(project_id) {
            None => Err(ApiError::not_found(what)),
            Some(r) if r < min => Err(ApiError::forbidden(format!(
                "this needs the {min} role in the project; you are {r}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Ids of the projects the caller may see. Complete for principals built from a token or
    /// session; for [`Principal::system`] use `api::scope`, which asks the store.
    pub fn visible_projects(&self) -> Vec<String> {
        let mut v: Vec<String> = self.roles.keys().cloned().collect();
        v.sort();
        v
    }

    /// Projects where the caller has at least `min`.
    pub fn projects_with(&self, min: Role) -> Vec<String> {
        let mut v: Vec<String> = self
            .roles
            .iter()
            .filter(|(_, r)| **r >= min)
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether this is the actor `user_id` (never true for the system principal).
    pub fn is_user(&self, user_id: &str) -> bool {
        !self.user_id.is_empty() && self.user_id == user_id
    }
}

/// Loads roles for an authenticated user.
pub(crate) async fn principal_for_user(
    state: &AppState,
    user: &User,
    csrf: Option<String>,
) -> Result<Principal, ApiError> {
    let mut roles = HashMap::new();
    if user.is_superadmin {
        for p in state.store.list_projects().await? {
            roles.insert(p.id, Role::Admin);
        }
    } else {
        for m in state.store.memberships_of(&user.id).await? {
            if let Some(r) = Role::parse(&m.role) {
                roles.insert(m.project_id, r);
            }
        }
    }
    let ids: Vec<String> = roles.keys().cloned().collect();
    let two_factor_required_by = state.store.two_factor_required_by(&user.id, &ids).await?;
    Ok(Principal {
        user_id: user.id.clone(),
        username: user.username.clone(),
        is_superadmin: user.is_superadmin,
        must_change_password: user.must_change_password,
        roles,
        csrf,
        source_ip: None,
        two_factor_required_by,
    })
}

/// TCP peer address of the request, when the server was started with connect info.
pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip())
}

/// The caller, from an `Authorization: Bearer` API token or the session cookie, or `None` when
/// neither is valid. Does not check CSRF: the console checks its form field itself, and the
/// [`Principal`] extractor checks the header.
pub async fn principal_from_parts(
    state: &AppState,
    parts: &Parts,
) -> Result<Option<Principal>, ApiError> {
    let ip = peer_ip(parts);
    if let Some(auth) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let Some(token) = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Ok(None);
        };
        let Some((tok, user)) = state.store.api_token_by_hash(&hash_secret(token)).await? else {
            return Ok(None);
        };
        // The row read just now says whether a write is due; most requests need none.
        let due = tok
            .last_used_at
            .is_none_or(|t| t < hostward_store::now() - 60);
        if due && let Err(e) = state.store.touch_api_token(&tok.id).await {
            tracing::warn!(token_id = %tok.id, "recording API token use failed: {e}");
        }
        let mut p = principal_for_user(state, &user, None).await?;
        p.source_ip = ip;
        return Ok(Some(p));
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(sess) = state.store.session(&hash_secret(cookie.value())).await? else {
        return Ok(None);
    };
    let mut p = principal_for_user(state, &sess.user, Some(sess.csrf_token)).await?;
    p.source_ip = ip;
    Ok(Some(p))
}

/// What a user whose password must change may still do, by API token or session: read who
/// they are, change their own password, sign out. Everything else waits for the change, so an
/// administrator-set (or leaked first) password cannot be used for real work.
pub fn allowed_before_password_change(p: &Principal, method: &Method, path: &str) -> bool {
    let own_password = format!("/api/v1/users/{}/password", p.user_id);
    matches!(
        (method, path),
        (&Method::GET, "/api/v1/me") | (&Method::DELETE, "/api/v1/session")
    ) || (method == Method::PUT && path == own_password)
}

/// What a user a project requires a second factor of may do before setting one up: see who
/// they are, set it up, sign out.
pub fn allowed_before_two_factor(method: &Method, path: &str) -> bool {
    path.starts_with("/api/v1/account/two-factor")
        || matches!(
            (method, path),
            (&Method::GET, "/api/v1/me") | (&Method::DELETE, "/api/v1/session")
        )
}

/// 403 `password_change_required`, naming the call that lifts it.
pub fn password_change_required(p: &Principal) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "password_change_required",
        format!(
            "your password must be changed first: PUT /api/v1/users/{}/password with \
             current_password and password",
            p.user_id
        ),
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a session-authenticated request may proceed: safe methods always, unsafe ones only
/// with the session's CSRF token in `presented`.
pub fn csrf_ok(p: &Principal, method: &Method, presented: Option<&str>) -> bool {
    match &p.csrf {
        None => true,
        Some(_) if is_safe(method) => true,
        Some(expected) => {
            presented.is_some_and(|v| secret::constant_time_eq(v.as_bytes(), expected.as_bytes()))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let p = principal_from_parts(state, parts)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !csrf_ok(&p, &parts.method, presented) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf_failed",
                "this request needs the X-CSRF-Token header of your session",
            ));
        }
        if p.must_change_password
            && !allowed_before_password_change(&p, &parts.method, parts.uri.path())
        {
            return Err(password_change_required(&p));
        }
        if let Some(project) = &p.two_factor_required_by
            && !allowed_before_two_factor(&parts.method, parts.uri.path())
        {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "two_factor_required",
                format!(
                    "project {project} requires two-factor sign-in: set it up first (POST /api/v1/account/two-factor, then POST /api/v1/account/two-factor/confirm)"
                ),
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn viewer_of(project: &str) -> Principal {
        let mut p = Principal::system();
        p.is_superadmin = false;
        p.user_id = "u1".into();
        p.username = "vic".into();
        p.roles.insert(project.into(), Role::Viewer);
        p
    }

    #[test]
    fn roles_are_ordered_and_serialise_lowercase() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(
            serde_json::to_string(&Role::Operator).unwrap(),
            "\"operator\""
        );
        assert_eq!(
            serde_json::from_str::<Role>("\"admin\"").unwrap(),
            Role::Admin
        );
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
    }

    #[test]
    fn require_hides_foreign_projects_and_forbids_low_roles() {
        let p = viewer_of("b");
        assert_eq!(
            p.require("a", Role::Viewer).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert!(p.require("b", Role::Viewer).is_ok());
        let e = p.require("b", Role::Operator).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "forbidden"));
        assert_eq!(p.visible_projects(), vec!["b".to_string()]);
        assert!(p.projects_with(Role::Operator).is_empty());
    }

    #[test]
    fn superadmin_is_admin_everywhere() {
        let s = Principal::system();
        assert_eq!(s.role_in("anything"), Some(Role::Admin));
        assert!(s.require("anything", Role::Admin).is_ok());
        assert!(!s.is_user(""));
    }

    #[test]
    fn a_pending_password_change_allows_only_me_own_password_and_logout() {
        let p = viewer_of("b");
        assert!(allowed_before_password_change(
            &p,
            &Method::GET,
            "/api/v1/me"
        ));
        assert!(allowed_before_password_change(
            &p,
            &Method::PUT,
            "/api/v1/users/u1/password"
        ));
        assert!(allowed_before_password_change(
            &p,
            &Method::DELETE,
            "/api/v1/session"
        ));
        for (m, path) in [
            (Method::GET, "/api/v1/servers"),
            (Method::PUT, "/api/v1/users/u2/password"),
            (Method::POST, "/api/v1/api-tokens"),
            (Method::POST, "/api/v1/me"),
        ] {
            assert!(!allowed_before_password_change(&p, &m, path), "{m} {path}");
        }
        let e = password_change_required(&p);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::FORBIDDEN, "password_change_required")
        );
    }

    #[test]
    fn csrf_needed_only_for_unsafe_methods_of_sessions() {
        let mut p = viewer_of("b");
        assert!(
            csrf_ok(&p, &Method::POST, None),
            "API tokens need no CSRF token"
        );
        p.csrf = Some("tok".into());
        assert!(csrf_ok(&p, &Method::GET, None));
        assert!(!csrf_ok(&p, &Method::DELETE, None));
        assert!(!csrf_ok(&p, &Method::POST, Some("nope")));
        assert!(csrf_ok(&p, &Method::POST, Some("tok")));
    }
}
