//! Sign-in and sign-out.
//!
//! The login form is protected against login CSRF by a double-submit token: a random value in the
//! `__Host-hostward_login` cookie that must equal the form's hidden `login_csrf` field.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::glue::{self, SESSION_COOKIE};
use super::{
    ConsoleError, PageResult, Post, asset_version, ct_eq, html_status, random_token, see_other,
};
use crate::AppState;

pub const LOGIN_COOKIE: &str = "__Host-hostward_login";

/// One message for unknown users, wrong passwords and refused attempts alike (see
/// `auth::login`), so the page does not tell which user names exist or are locked.
pub const BAD_CREDENTIALS: &str = "Invalid user name, password or code, or too many failed sign-ins from your address: wait a while before trying again.";
pub const BUSY: &str = "The server is busy checking other sign-ins. Try again in a moment.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    login_csrf: String,
    username: String,
    error: Option<String>,
    v: &'static str,
}

fn login_cookie(value: String) -> Cookie<'static> {
    Cookie::build((LOGIN_COOKIE, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::hours(1))
        .build()
}

/// The login page with a fresh login CSRF token in cookie and form.
fn render(
    jar: CookieJar,
    status: StatusCode,
    username: String,
    error: Option<String>,
) -> PageResult {
    let token = random_token();
    let page = LoginPage {
        login_csrf: token.clone(),
        username,
        error,
        v: asset_version(),
    };
    let html = html_status(status, &page)?;
    Ok((jar.add(login_cookie(token)), html).into_response())
}

pub async fn page(State(state): State<AppState>, parts: Parts) -> PageResult {
    if let Ok(Some(_)) = glue::principal_from_parts(&state, &parts).await {
        return Ok(see_other("/dashboard"));
    }
    render(
        CookieJar::from_headers(&parts.headers),
        StatusCode::OK,
        String::new(),
        None,
    )
}

pub async fn submit(
    State(state): State<AppState>,
    parts: Parts,
    jar: CookieJar,
    form: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> PageResult {
    let fields: super::Fields = super::Fields(
        form.map(|Form(f)| f.into_iter().collect())
            .unwrap_or_default(),
    );
    let cookie = jar.get(LOGIN_COOKIE).map(|c| c.value().to_string());
    let field = fields.0.get("login_csrf");
    match (cookie, field) {
        (Some(c), Some(f)) if !c.is_empty() && ct_eq(c.as_bytes(), f.as_bytes()) => {}
        _ => {
            return Err(ConsoleError::Page(
                StatusCode::FORBIDDEN,
                "The sign-in form expired or was not sent from this console. Open the sign-in page again.".into(),
            ));
        }
    }
    let username = fields.get("username").to_string();
    let password = fields.0.get("password").cloned().unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return render(
            jar,
            StatusCode::UNAUTHORIZED,
            username,
            Some(BAD_CREDENTIALS.into()),
        );
    }
    let code = fields
        .0
        .get("code")
        .cloned()
        .filter(|c| !c.trim().is_empty());
    match glue::login(
        &state,
        &username,
        &password,
        code.as_deref(),
        glue::peer_ip(&parts),
    )
    .await
    {
        Ok((_principal, raw)) => {
            let jar = jar
                .remove(Cookie::build(LOGIN_COOKIE).path("/").secure(true))
                .add(glue::session_cookie(&raw, state.config.session_ttl_secs));
            Ok((jar, see_other("/dashboard")).into_response())
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => render(
            jar,
            StatusCode::UNAUTHORIZED,
            username,
            Some(BAD_CREDENTIALS.into()),
        ),
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            let mut res = render(
                jar,
                StatusCode::SERVICE_UNAVAILABLE,
                username,
                Some(BUSY.into()),
            )?;
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::auth::password::RETRY_AFTER_SECS),
            );
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(State(state): State<AppState>, jar: CookieJar, _post: Post) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE)
        && let Err(e) = glue::logout(&state, c.value()).await
    {
        tracing::warn!("console logout: {e}");
    }
    let jar = jar.add(glue::removal_cookie());
    (jar, see_other("/login")).into_response()
}
