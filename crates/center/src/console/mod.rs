//! Server-rendered console: askama templates (`crates/center/templates`), static files embedded
//! with rust-embed (`crates/center/static`), htmx only for progressive niceties.
//!
//! Every page takes the caller's [`Principal`]; pages without a session redirect (303) to
//! `/login`. Every POST form carries the session's CSRF token in a `csrf` field, checked before
//! anything else happens ([`Post`]). Objects outside the caller's projects answer 404.
//! Responses carry a strict CSP (no inline scripts or styles) and the other security headers.

pub(crate) mod forms;
mod glue;
mod history;
mod login;
pub(crate) mod servers;
mod tokens;
mod two_factor;
mod users;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod tokens_tests;

use std::collections::HashMap;
use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rust_embed::RustEmbed;

use crate::AppState;
pub(crate) use glue::{ApiError, Principal, Role};
use hostward_store::StoreError;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/servers", get(servers::list))
        .route("/servers/{id}", get(servers::detail))
        .route("/servers/{id}/protection", post(servers::protection))
        .route(
            "/servers/{id}/revoke",
            get(servers::revoke_confirm).post(servers::revoke),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/servers/{id}/reinstall", post(tokens::reinstall))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}/role", post(users::set_role))
        .route("/users/{id}/delete", post(users::delete))
        .route(
            "/account/password",
            get(users::password_page).post(users::change_password),
        )
        .route("/history", get(history::page))
        .route("/account/two-factor", get(two_factor::page))
        .route("/account/two-factor/start", post(two_factor::start))
        .route("/account/two-factor/confirm", post(two_factor::confirm))
        .route("/account/two-factor/disable", post(two_factor::disable))
        .route("/account/two-factor/project", post(two_factor::project))
        .route("/static/{*path}", get(static_file))
        .merge(crate::capabilities::console_router())
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn root(state: axum::extract::State<AppState>, parts: Parts) -> Response {
    match glue::principal_from_parts(&state, &parts).await {
        Ok(Some(_)) => see_other("/dashboard"),
        _ => see_other("/login"),
    }
}

/// 303 See Other: after a POST, and for pages that need a session.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

// ---------------------------------------------------------------------------------------------
// Static files

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Short content hash of the stylesheet and script, appended to their URLs so the long cache
/// never serves a stale file after an upgrade.
pub(crate) fn asset_version() -> &'static str {
    static V: LazyLock<String> = LazyLock::new(|| {
        let mut all = Vec::new();
        for f in ["console.css", "htmx.min.js"] {
            if let Some(a) = Assets::get(f) {
                all.extend_from_slice(&a.metadata.sha256_hash());
            }
        }
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(&all)[..5])
    });
    &V
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

async fn static_file(Path(path): Path<String>, headers: axum::http::HeaderMap) -> Response {
    // The checksum file documents the vendored htmx; it is not served.
    // Only plain names: in debug builds rust-embed reads the folder from disk.
    let plain = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
        && !path.contains('\\');
    let Some(file) = Assets::get(&path).filter(|_| plain && !path.ends_with(".sha256")) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "not found",
        )
            .into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = [
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, content_type(&path))],
        Body::from(file.data.into_owned()),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What a console handler can end in besides its page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No session: 303 to the login page.
    Login,
    /// The password must be changed first: 303 to `/account/password`.
    ChangePassword,
    /// A project requires a second factor first: 303 to `/account/two-factor`.
    SetUpTwoFactor,
    /// A plain error page.
    Page(StatusCode, String),
}

impl ConsoleError {
    pub fn not_found() -> ConsoleError {
        ConsoleError::Page(
            StatusCode::NOT_FOUND,
            "There is no such object, or it is not in one of your projects.".into(),
        )
    }
    pub fn bad_csrf() -> ConsoleError {
        ConsoleError::Page(
            StatusCode::FORBIDDEN,
            "The form's security token is missing or does not match your session. Reload the page and try again.".into(),
        )
    }
    pub fn bad_request(msg: impl Into<String>) -> ConsoleError {
        ConsoleError::Page(StatusCode::BAD_REQUEST, msg.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    v: &'static str,
    status: u16,
    title: &'a str,
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        v: asset_version(),
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or(""),
        message,
    };
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::Login => see_other("/login"),
            ConsoleError::ChangePassword => see_other("/account/password"),
            ConsoleError::SetUpTwoFactor => see_other("/account/two-factor"),
            ConsoleError::Page(status, msg) => error_page(status, &msg),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> ConsoleError {
        match e.status {
            StatusCode::UNAUTHORIZED => ConsoleError::Login,
            StatusCode::NOT_FOUND => ConsoleError::not_found(),
            s if s.is_server_error() => {
                tracing::error!(code = %e.code, message = %e.message, "console: operation failed");
                ConsoleError::Page(s, "Something went wrong on the server; see its log.".into())
            }
            s => ConsoleError::Page(s, e.message),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> ConsoleError {
        match e {
            StoreError::NotFound(_) => ConsoleError::not_found(),
            StoreError::Conflict(m) => ConsoleError::Page(StatusCode::CONFLICT, m),
            e => {
                tracing::error!(error = %e, "console: storage error");
                ConsoleError::Page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the server; see its log.".into(),
                )
            }
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> ConsoleError {
        tracing::error!(error = %e, "console: template failed");
        ConsoleError::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The page could not be rendered.".into(),
        )
    }
}

pub(crate) type PageResult = Result<Response, ConsoleError>;

/// Renders a template as a 200 HTML page.
pub(crate) fn html<T: Template>(t: &T) -> PageResult {
    html_status(StatusCode::OK, t)
}

pub(crate) fn html_status<T: Template>(status: StatusCode, t: &T) -> PageResult {
    let body = t.render()?;
    Ok((
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Extractors

/// The signed-in caller of a page. Without a session: 303 to `/login`.
pub(crate) struct Session(pub Principal);

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match glue::principal_from_parts(state, parts).await {
            Ok(Some(p)) if must_change_first(&p, parts) => Err(ConsoleError::ChangePassword),
            Ok(Some(p)) if must_set_up_two_factor(&p, parts) => Err(ConsoleError::SetUpTwoFactor),
            Ok(Some(p)) => Ok(Session(p)),
            Ok(None) => Err(ConsoleError::Login),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether the caller must change their password before this page: until then only the
/// password page and sign-out work (the API answers 403 `password_change_required` likewise).
fn must_change_first(p: &Principal, parts: &Parts) -> bool {
    p.must_change_password && !matches!(parts.uri.path(), "/account/password" | "/logout")
}

/// Whether a project requires a second factor the caller has not set up: until then only the
/// two-factor page and sign-out work (the API answers 403 `two_factor_required` likewise).
fn must_set_up_two_factor(p: &Principal, parts: &Parts) -> bool {
    p.two_factor_required_by.is_some()
        && !parts.uri.path().starts_with("/account/two-factor")
        && parts.uri.path() != "/logout"
}

/// A console form POST: the caller and the form fields, after the CSRF check. A missing session
/// redirects to `/login`; a missing, wrong or unreadable token answers 403 before the handler runs.
pub(crate) struct Post {
    pub p: Principal,
    pub f: Fields,
}

impl FromRequest<AppState> for Post {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let p = match glue::principal_from_parts(state, &parts).await {
            Ok(Some(p)) if must_change_first(&p, &parts) => {
                return Err(ConsoleError::ChangePassword);
            }
            Ok(Some(p)) if must_set_up_two_factor(&p, &parts) => {
                return Err(ConsoleError::SetUpTwoFactor);
            }
            Ok(Some(p)) => p,
            Ok(None) => return Err(ConsoleError::Login),
            Err(e) => return Err(e.into()),
        };
        let req = Request::from_parts(parts, body);
        let Ok(Form(pairs)) = Form::<Vec<(String, String)>>::from_request(req, state).await else {
            return Err(ConsoleError::bad_csrf());
        };
        let f = Fields(pairs.into_iter().collect());
        match (&p.csrf, f.0.get("csrf")) {
            (Some(want), Some(got)) if ct_eq(want.as_bytes(), got.as_bytes()) => Ok(Post { p, f }),
            _ => Err(ConsoleError::bad_csrf()),
        }
    }
}

/// Form fields by name (the last value wins).
#[derive(Debug, Default)]
pub(crate) struct Fields(pub HashMap<String, String>);

impl Fields {
    /// The trimmed value, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|s| s.trim()).unwrap_or("")
    }
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Fields as a form would post them, for the forms' tests.
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Constant-time comparison for tokens.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// View helpers

/// What the layout needs: the top bar's user, the logout form's token, the active nav entry.
pub(crate) struct Nav {
    pub username: String,
    pub is_superadmin: bool,
    pub must_change_password: bool,
    pub csrf: String,
    pub active: &'static str,
    pub v: &'static str,
}

impl Nav {
    pub fn new(p: &Principal, active: &'static str) -> Nav {
        Nav {
            username: p.username.clone(),
            is_superadmin: p.is_superadmin,
            must_change_password: p.must_change_password,
            csrf: p.csrf.clone().unwrap_or_default(),
            active,
            v: asset_version(),
        }
    }

    /// The top navigation: servers, each capability's entry in the list's order, then the
    /// platform's administration pages.
    pub fn entries(&self) -> Vec<crate::capabilities::NavEntry> {
        use crate::capabilities::NavEntry;
        let mut v = vec![NavEntry {
            id: "servers",
            label: "Servers",
            href: "/servers",
        }];
        v.extend(crate::capabilities::nav());
        v.push(NavEntry {
            id: "history",
            label: "History",
            href: "/history",
        });
        v.push(NavEntry {
            id: "tokens",
            label: "Enrollment tokens",
            href: "/tokens",
        });
        v.push(NavEntry {
            id: "users",
            label: "Users",
            href: "/users",
        });
        v
    }
}

/// A `<select>` option.
pub(crate) struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A Unix time rendered for people: UTC `YYYY-MM-DD HH:MM:SS` and a relative hint.
#[derive(Debug, Clone)]
pub(crate) struct Ts {
    pub abs: String,
    pub rel: String,
}

impl Ts {
    pub fn at(ts: i64) -> Ts {
        Ts::at_now(ts, hostward_store::now())
    }

    pub fn at_now(ts: i64, now: i64) -> Ts {
        Ts {
            abs: fmt_utc(ts),
            rel: relative(ts, now),
        }
    }

    pub fn opt(ts: Option<i64>) -> Option<Ts> {
        ts.filter(|t| *t > 0).map(Ts::at)
    }
}

pub(crate) fn fmt_utc(ts: i64) -> String {
    const FMT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(FMT).ok())
        .unwrap_or_else(|| ts.to_string())
}

pub(crate) fn relative(ts: i64, now: i64) -> String {
    let d = now - ts;
    let (n, future) = if d >= 0 { (d, false) } else { (-d, true) };
    let amount = match n {
        0..=4 => return "just now".to_string(),
        5..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        86_400..=2_591_999 => format!("{} d", n / 86_400),
        2_592_000..=31_535_999 => format!("{} mo", n / 2_592_000),
        _ => format!("{} y", n / 31_536_000),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Bytes for people: `12.3 MiB`.
pub(crate) fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// 32 random bytes, hex.
pub(crate) fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Projects the caller sees, as (id, name), sorted by name.
pub(crate) async fn project_names(
    state: &AppState,
    p: &Principal,
) -> Result<Vec<(String, String)>, ConsoleError> {
    let mut v: Vec<(String, String)> = crate::api::projects::list(state, p)
        .await?
        .items
        .into_iter()
        .map(|pr| (pr.id, pr.name))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(v)
}

/// The caller's projects in which it has at least `min`, as select options.
pub(crate) async fn project_opts(
    state: &AppState,
    p: &Principal,
    selected: &str,
    min: Role,
) -> Result<Vec<Opt>, ConsoleError> {
    Ok(project_names(state, p)
        .await?
        .into_iter()
        .filter(|(id, _)| p.require(id, min).is_ok())
        .map(|(id, name)| Opt {
            selected: id == selected,
            value: id,
            label: name,
        })
        .collect())
}
