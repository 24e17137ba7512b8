//! Two-factor sign-in in the console, on both backends: set up from the account page (key
//! shown once, confirmed by a code, recovery codes shown once), the sign-in form refusing the
//! password alone and taking the code, and a project's rule sending a member without a second
//! factor to the set-up page whatever they open.

use axum::http::StatusCode;

use crate::auth::totp;
use crate::console::testutil::{body, envs, form, hidden, location};
use hostward_store::now;

/// The text of the element with this id (the template puts it on one line).
fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].trim().to_string()
}

#[tokio::test]
async fn set_up_sign_in_with_the_code_and_a_project_rule_from_the_console() {
    for e in envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("ada", &p.id, Some("admin")).await;
        e.user("vic", &p.id, Some("viewer")).await;
        let (cookie, csrf) = e.login("ada").await;
        e.assert_posts_need_csrf(
            &cookie,
            &[
                ("/account/two-factor/start".into(), String::new()),
                (
                    "/account/two-factor/confirm".into(),
                    form(&[("code", "123456")]),
                ),
                (
                    "/account/two-factor/disable".into(),
                    form(&[("code", "123456")]),
                ),
                (
                    "/account/two-factor/project".into(),
                    form(&[("project", &p.id), ("required", "1")]),
                ),
            ],
        )
        .await;
        let html = e.page("/account/two-factor", &cookie).await;
        assert!(
            html.contains("id=\"start-form\"") && html.contains("data-enabled=\"false\""),
            "[{b}]"
        );

        let res = e
            .post_form(
                "/account/two-factor/start",
                &cookie,
                &form(&[("csrf", &csrf)]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "[{b}]");
        let html = body(res).await;
        let key = data_encoding::BASE32_NOPAD
            .decode(text_of(&html, "totp-secret").as_bytes())
            .unwrap();
        assert!(
            text_of(&html, "totp-uri").starts_with("otpauth://totp/Hostward:ada?"),
            "[{b}]"
        );
        let res = e
            .post_form(
                "/account/two-factor/confirm",
                &cookie,
                &form(&[("csrf", &csrf), ("code", "999")]),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "[{b}]");
        let code = totp::code_at(&key, now());
        let res = e
            .post_form(
                "/account/two-factor/confirm",
                &cookie,
                &form(&[("csrf", &csrf), ("code", &code)]),
            )
            .await;
        let html = body(res).await;
        assert!(
            html.contains("id=\"recovery-codes\"") && html.contains("data-enabled=\"true\""),
            "[{b}] {html}"
        );
        let again = e.page("/account/two-factor", &cookie).await;
        assert!(
            !again.contains("id=\"recovery-codes\"") && !again.contains("id=\"totp-secret\""),
            "[{b}] shown once"
        );

        // Signing in: the password alone is refused on the form, the next code lets her in.
        let res = e.sign_in_with("ada", "").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "[{b}]");
        assert!(body(res).await.contains("id=\"login-error\""), "[{b}]");
        let next = totp::code_at(&key, now() + totp::STEP_SECS);
        let res = e.sign_in_with("ada", &next).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}]");

        // The project's rule: vic, without a second factor, lands on the set-up page.
        let res = e
            .post_form(
                "/account/two-factor/project",
                &cookie,
                &form(&[("csrf", &csrf), ("project", &p.id), ("required", "1")]),
            )
            .await;
        assert_eq!(location(&res), "/account/two-factor", "[{b}]");
        assert!(
            e.state.store.requires_two_factor(&p.id).await.unwrap(),
            "[{b}]"
        );
        let res = e.sign_in_with("vic", "").await;
        let vc = crate::console::testutil::set_cookie(&res, crate::console::glue::SESSION_COOKIE)
            .unwrap();
        let vc = format!("{}={vc}", crate::console::glue::SESSION_COOKIE);
        for page in ["/servers", "/baselines", "/alarms"] {
            let res = e.get(page, &vc).await;
            assert_eq!(location(&res), "/account/two-factor", "[{b}] {page}");
        }
        let html = e.page("/account/two-factor", &vc).await;
        assert!(
            html.contains("id=\"required\"") && hidden(&html, "csrf").len() > 10,
            "[{b}]"
        );
    }
}
