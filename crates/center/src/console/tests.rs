//! Console tests: a real SQLite store in a temp dir, requests through `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sha2::Digest;

use super::testutil::{Console, PASSWORD, body, hidden, set_cookie};
use super::*;
use hostward_store::{NewServer, Store};

struct Env {
    console: Console,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Env {
    type Target = Console;

    fn deref(&self) -> &Console {
        &self.console
    }
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(
        crate::config::ServeArgs::default()
            .resolve(dir.path())
            .unwrap(),
    );
    let store = Store::connect(&config.database_url).await.unwrap();
    Env {
        console: Console::new(store, config),
        _dir: dir,
    }
}

impl Env {
    /// Signs in through the form; returns the session cookie header value and the CSRF token.
    async fn login(&self, name: &str) -> (String, String) {
        let res = self.sign_in(name).await;
        assert_eq!(res.headers()[header::LOCATION], "/dashboard");
        self.session(&res).await
    }
}

#[tokio::test]
async fn login_page_renders_with_login_csrf_and_security_headers() {
    let e = env().await;
    let res = e.get("/login", "").await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let raw = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for part in [
        "__Host-hostward_login=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(raw.contains(part), "{raw} lacks {part}");
    }
    let cookie = set_cookie(&res, login::LOGIN_COOKIE).unwrap();
    let html = body(res).await;
    assert_eq!(hidden(&html, "login_csrf"), cookie);
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn login_without_or_with_wrong_login_csrf_is_403() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("alice", &p.id, Some("admin")).await;
    let creds = format!(
        "username=alice&password={}",
        crate::web::page::enc(PASSWORD)
    );
    let res = e.post_form("/login", "", &creds).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, glue::SESSION_COOKIE).is_none());
    let res = e
        .post_form(
            "/login",
            &format!("{}=aaaa", login::LOGIN_COOKIE),
            &format!("login_csrf=bbbb&{creds}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = e
        .post_form("/login", "", &format!("login_csrf=&{creds}"))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wrong_password_shows_the_login_page_with_401() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("alice", &p.id, Some("admin")).await;
    let page = e.get("/login", "").await;
    let c = set_cookie(&page, login::LOGIN_COOKIE).unwrap();
    let res = e
        .post_form(
            "/login",
            &format!("{}={c}", login::LOGIN_COOKIE),
            &format!("login_csrf={c}&username=alice&password=nope"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = body(res).await;
    assert!(html.contains("id=\"login-error\""), "{html}");
    assert!(html.contains(login::BAD_CREDENTIALS));
    assert!(html.contains("value=\"alice\""), "the user name is kept");
}

#[tokio::test]
async fn pages_without_session_redirect_to_login() {
    let e = env().await;
    for uri in ["/", "/servers", "/servers/x", "/tokens", "/users"] {
        let res = e.get(uri, "").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(res.headers()[header::LOCATION], "/login", "{uri}");
    }
    let res = e
        .get("/servers", &format!("{}=forged", glue::SESSION_COOKIE))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn hostile_host_facts_are_escaped() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("root", &p.id, None).await;
    let evil = "<script>alert(1)</script>";
    let srv = e
        .state
        .store
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: evil.into(),
            region: "eu\"><b>".into(),
            ip_addresses: vec![evil.into()],
        })
        .await
        .unwrap();
    let (cookie, _) = e.login("root").await;
    for uri in ["/servers".to_string(), format!("/servers/{}", srv.id)] {
        let res = e.get(&uri, &cookie).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        let html = body(res).await;
        assert!(!html.contains(evil), "{uri}: raw script tag in page");
        assert!(!html.contains("<b>"), "{uri}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;"),
            "{uri}: {html}"
        );
    }
}

#[tokio::test]
async fn server_list_shows_statuses_and_counts() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("vic", &p.id, Some("viewer")).await;
    let srv = e
        .state
        .store
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: "web-1".into(),
            region: "eu".into(),
            ip_addresses: vec!["10.0.0.1".into()],
        })
        .await
        .unwrap();
    let (cookie, _) = e.login("vic").await;
    let html = body(e.get("/servers", &cookie).await).await;
    assert!(html.contains("id=\"servers\""));
    assert!(html.contains(&format!("data-server-id=\"{}\"", srv.id)));
    assert!(html.contains("class=\"agent-status\" data-status=\"not_installed\""));
    assert!(
        html.contains("agent_not_installed"),
        "protection cause shown"
    );
    assert!(html.contains("class=\"risk-status\""));
    assert!(html.contains("hx-trigger=\"every 10s\""));
    // The htmx refresh gets only the list.
    let req = Request::get("/servers?status=online")
        .header(header::COOKIE, &cookie)
        .header("HX-Request", "true")
        .body(Body::empty())
        .unwrap();
    let part = body(e.send(req).await).await;
    assert!(part.starts_with("<div id=\"server-list\""), "{part}");
    assert!(!part.contains(&srv.id), "filtered out");
    // A viewer has no protection switch.
    let detail = body(e.get(&format!("/servers/{}", srv.id), &cookie).await).await;
    assert!(!detail.contains("protection-form"));
}

#[tokio::test]
async fn posts_need_the_session_csrf_token_and_the_role() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    let other = e.state.store.ensure_project("other").await.unwrap();
    e.user("olga", &p.id, Some("operator")).await;
    let srv = e
        .state
        .store
        .create_server(&NewServer {
            project_id: p.id.clone(),
            name: "web-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let foreign = e
        .state
        .store
        .create_server(&NewServer {
            project_id: other.id.clone(),
            name: "db-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (cookie, csrf) = e.login("olga").await;
    let uri = format!("/servers/{}/protection", srv.id);

    let res = e.post_form(&uri, &cookie, "enabled=false").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "missing csrf");
    let res = e.post_form(&uri, &cookie, "enabled=false&csrf=wrong").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "wrong csrf");
    assert!(
        e.state
            .store
            .server(&srv.id)
            .await
            .unwrap()
            .unwrap()
            .protection_wanted,
        "nothing changed"
    );

    let res = e
        .post_form(&uri, &cookie, &format!("enabled=false&csrf={csrf}"))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = e.state.store.server(&srv.id).await.unwrap().unwrap();
    assert_eq!(
        (s.protection_wanted, s.protection_status.as_str()),
        (false, "disabled")
    );

    // Other projects' objects do not exist for this user.
    assert_eq!(
        e.get(&format!("/servers/{}", foreign.id), &cookie)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let res = e
        .post_form(
            &format!("/servers/{}/protection", foreign.id),
            &cookie,
            &format!("enabled=false&csrf={csrf}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Revocation is for admins.
    let res = e
        .post_form(
            &format!("/servers/{}/revoke", srv.id),
            &cookie,
            &format!("confirm=yes&csrf={csrf}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Logout needs the token too, then ends the session.
    assert_eq!(
        e.post_form("/logout", &cookie, "").await.status(),
        StatusCode::FORBIDDEN
    );
    let res = e
        .post_form("/logout", &cookie, &format!("csrf={csrf}"))
        .await;
    assert_eq!(res.headers()[header::LOCATION], "/login");
    assert_eq!(
        e.get("/servers", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn static_files_have_types_and_long_cache() {
    let e = env().await;
    let res = e.get("/static/htmx.min.js", "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        res.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let res = e.get("/static/console.css", "").await;
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert_eq!(
        e.get("/static/nope.js", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        e.get("/static/../Cargo.toml", "").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn vendored_htmx_matches_its_checksum() {
    let js = Assets::get("htmx.min.js").expect("htmx.min.js embedded");
    let want = Assets::get("htmx.min.js.sha256").expect("checksum embedded");
    let want = std::str::from_utf8(&want.data)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(hex::encode(sha2::Sha256::digest(&js.data)), want);
}

#[test]
fn times_render_in_utc_with_a_relative_hint() {
    assert_eq!(fmt_utc(0), "1970-01-01 00:00:00");
    assert_eq!(fmt_utc(1_700_000_000), "2023-11-14 22:13:20");
    assert_eq!(relative(1000, 1002), "just now");
    assert_eq!(relative(1000, 1000 + 180), "3 min ago");
    assert_eq!(relative(1000, 1000 + 7200), "2 h ago");
    assert_eq!(relative(1000 + 90_000, 1000), "in 1 d");
    assert_eq!(fmt_bytes(512), "512 B");
    assert_eq!(fmt_bytes(25 * 1024 * 1024), "25.0 MiB");
}

#[tokio::test]
async fn locked_account_answers_like_a_wrong_password() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("alice", &p.id, Some("admin")).await;
    let u = e.state.store.user_by_name("alice").await.unwrap().unwrap();
    e.state
        .store
        .lock_user_until(&u.id, hostward_store::now() + 600)
        .await
        .unwrap();
    let page = e.get("/login", "").await;
    let c = set_cookie(&page, login::LOGIN_COOKIE).unwrap();
    let body_text = format!(
        "login_csrf={c}&username=alice&password={}",
        crate::web::page::enc(PASSWORD)
    );
    let res = e
        .post_form(
            "/login",
            &format!("{}={c}", login::LOGIN_COOKIE),
            &body_text,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = body(res).await;
    assert!(html.contains("id=\"login-error\""), "{html}");
    assert!(html.contains(login::BAD_CREDENTIALS), "{html}");
}

#[tokio::test]
async fn enrollment_token_secret_and_install_command_are_shown_once() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("ada", &p.id, Some("admin")).await;
    e.user("vic", &p.id, Some("viewer")).await;
    let (cookie, csrf) = e.login("ada").await;
    let form = format!(
        "name=web+eu&project={}&region=eu&expires_hours=24&allowed_cidrs=10.0.0.0%2F8%2C+192.168.1.7",
        p.id
    );
    assert_eq!(
        e.post_form("/tokens", &cookie, &form).await.status(),
        StatusCode::FORBIDDEN,
        "no csrf"
    );
    let res = e
        .post_form("/tokens", &cookie, &format!("{form}&csrf={csrf}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = body(res).await;
    let start = html
        .find("id=\"install-command\">")
        .expect("install command block")
        + "id=\"install-command\">".len();
    let cmd = &html[start..start + html[start..].find("</code>").unwrap()];
    assert!(
        cmd.contains("--token ") && cmd.contains(&e.state.pki.ca_fingerprint),
        "{cmd}"
    );
    let secret = hidden_code(&html, "token-secret");
    assert!(cmd.contains(&secret));

    let list = body(e.get("/tokens", &cookie).await).await;
    assert!(
        list.contains("web eu") && list.contains("10.0.0.0/8"),
        "{list}"
    );
    assert!(!list.contains(&secret), "the secret is never shown again");

    // Bad input re-renders the form with the message.
    let res = e
        .post_form(
            "/tokens",
            &cookie,
            &format!("name=x&project={}&allowed_cidrs=nonsense&csrf={csrf}", p.id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("allowed_cidrs"));

    // A viewer sees no tokens and cannot create one.
    let (vcookie, vcsrf) = e.login("vic").await;
    let vlist = body(e.get("/tokens", &vcookie).await).await;
    assert!(!vlist.contains("web eu") && !vlist.contains("create-token-form"));
    let res = e
        .post_form(
            "/tokens",
            &vcookie,
            &format!("name=x&project={}&csrf={vcsrf}", p.id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Revoke.
    let id_start = list.find("data-token-id=\"").unwrap() + "data-token-id=\"".len();
    let id = &list[id_start..id_start + 36];
    let res = e
        .post_form(
            &format!("/tokens/{id}/revoke"),
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        e.state
            .store
            .enrollment_token(id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

fn hidden_code(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find("</code>").unwrap()].to_string()
}

#[tokio::test]
async fn superadmin_manages_users_and_roles() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("root", &p.id, None).await;
    let (cookie, csrf) = e.login("root").await;
    let form = format!(
        "username=bob&password={}&project={}&role=viewer&csrf={csrf}",
        crate::web::page::enc(PASSWORD),
        p.id
    );
    let res = e.post_form("/users", &cookie, &form).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let bob = e
        .state
        .store
        .user_by_name("bob")
        .await
        .unwrap()
        .expect("bob created");
    let html = body(e.get("/users", &cookie).await).await;
    assert!(
        html.contains(&format!("data-user-id=\"{}\"", bob.id)) && html.contains("viewer"),
        "{html}"
    );
    // Too short a password re-renders with the message.
    let res = e
        .post_form(
            "/users",
            &cookie,
            &format!(
                "username=carl&password=short&role=viewer&project={}&csrf={csrf}",
                p.id
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("id=\"form-error\""));

    let res = e
        .post_form(
            &format!("/users/{}/role", bob.id),
            &cookie,
            &format!("project={}&role=operator&csrf={csrf}", p.id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        e.state.store.memberships_of(&bob.id).await.unwrap()[0].role,
        "operator"
    );

    // Bob, made by a signed-in admin, must choose his own password first: every page but the
    // password page sends him there.
    assert!(bob.must_change_password);
    let signed = e.sign_in("bob").await;
    let bsession = set_cookie(&signed, glue::SESSION_COOKIE).unwrap();
    let bc = format!("{}={bsession}", glue::SESSION_COOKIE);
    for path in ["/servers", "/users", "/tokens"] {
        let res = e.get(path, &bc).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.headers()["location"], "/account/password", "{path}");
    }
    let html = body(e.get("/account/password", &bc).await).await;
    let bcsrf0 = hidden(&html, "csrf");
    let res = e
        .post_form(
            &format!("/users/{}/delete", bob.id),
            &bc,
            &format!("csrf={bcsrf0}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "forms wait too");
    assert_eq!(res.headers()["location"], "/account/password");
    let res = e
        .post_form(
            "/account/password",
            &bc,
            &format!(
                "current_password={}&password={1}&password_again={1}&csrf={bcsrf0}",
                crate::web::page::enc(PASSWORD),
                crate::web::page::enc("bob's very own passphrase")
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        e.get("/servers", &bc).await.status(),
        StatusCode::OK,
        "changed: free again"
    );
    // Back to the fixture password, so the rest of the test signs in as before.
    e.state
        .store
        .set_password_hash(
            &bob.id,
            &crate::auth::hash_password(PASSWORD).await.unwrap(),
            false,
        )
        .await
        .unwrap();

    // Bob, an operator, may not manage users.
    let (bcookie, bcsrf) = e.login("bob").await;
    let page = e.get("/users", &bcookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!body(page).await.contains("add-user-form"));
    let res = e
        .post_form(
            &format!("/users/{}/delete", bob.id),
            &bcookie,
            &format!("csrf={bcsrf}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = e
        .post_form(
            &format!("/users/{}/delete", bob.id),
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(e.state.store.user_by_name("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn own_password_change() {
    let e = env().await;
    let p = e.state.store.ensure_project("default").await.unwrap();
    e.user("alice", &p.id, Some("viewer")).await;
    let (cookie, csrf) = e.login("alice").await;
    assert_eq!(
        e.get("/account/password", &cookie).await.status(),
        StatusCode::OK
    );
    let new = "another long passphrase";
    let res = e
        .post_form(
            "/account/password",
            &cookie,
            &format!(
                "current_password=wrong&password={0}&password_again={0}&csrf={csrf}",
                crate::web::page::enc(new)
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let form = format!(
        "current_password={}&password={1}&password_again={1}&csrf={csrf}",
        crate::web::page::enc(PASSWORD),
        crate::web::page::enc(new)
    );
    let res = e.post_form("/account/password", &cookie, &form).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_server_page_reports_the_runtime_sensor_or_says_it_is_not_reported() {
    for e in super::testutil::envs().await {
        let b = e.backend;
        let p = e.state.store.ensure_project("default").await.unwrap();
        e.user("vic", &p.id, Some("viewer")).await;
        let with = e.agent_server(&p.id, "web-1").await;
        let without = e.agent_server(&p.id, "web-2").await;
        let old = e.agent_server(&p.id, "web-3").await;
        let hb = |sensor: serde_json::Value| {
            serde_json::json!({"now": 1, "rss_bytes": 1, "cpu_percent": 0.5, "outbox_depth": 0,
                "outbox_dropped": 0, "sensor": sensor})
            .to_string()
        };
        let sensor = serde_json::json!({
            "tier": "proc", "reason": "BPF is not permitted: <kernel.unprivileged_bpf_disabled>",
            "seen_kernel": 1200, "received": 1190, "dropped_kernel": 0, "dropped_user": 4,
            "incomplete": 6, "undecodable": 0, "processes": 310,
            "unavailable": ["abnormal_outbound: needs BPF", "port_scan: needs BPF"]
        });
        e.state
            .store
            .flush_last_seen(&[
                (with.id.clone(), 10, hb(sensor)),
                (without.id.clone(), 10, hb(serde_json::json!({"tier": "off", "reason": "no kernel support"}))),
                (
                    old.id.clone(),
                    10,
                    r#"{"now": 1, "rss_bytes": 1, "cpu_percent": 0.5, "outbox_depth": 0, "outbox_dropped": 0}"#.into(),
                ),
            ])
            .await
            .unwrap();
        let (cookie, _) = e.login("vic").await;

        let html = e.page(&format!("/servers/{}", with.id), &cookie).await;
        assert!(
            html.contains("<span id=\"sensor-tier-name\">proc</span>"),
            "[{b}] {html}"
        );
        assert!(
            html.contains("1200 events seen, 1190 received, 4 lost in the agent, 6 incomplete (process gone before /proc was read); 310 processes tracked"),
            "[{b}] the losses that are not zero"
        );
        assert!(
            !html.contains("lost in the kernel"),
            "[{b}] a zero loss is not listed"
        );
        assert!(
            html.contains("&#60;kernel.unprivileged_bpf_disabled&#62;")
                || html.contains("&lt;kernel.unprivileged_bpf_disabled&gt;"),
            "[{b}] the reason, escaped"
        );
        let list = &html[html.find("id=\"sensor-unavailable\"").expect("the list")..];
        assert!(
            list.contains("<li>abnormal_outbound: needs BPF</li><li>port_scan: needs BPF</li>"),
            "[{b}]"
        );
        assert!(html.contains("not available on this tier:"), "[{b}]");

        let html = e.page(&format!("/servers/{}", without.id), &cookie).await;
        assert!(
            html.contains("<span id=\"sensor-tier-name\">off</span>"),
            "[{b}]"
        );
        assert!(html.contains("no kernel support"), "[{b}]");
        assert!(!html.contains("id=\"sensor-unavailable\""), "[{b}]");

        let html = e.page(&format!("/servers/{}", old.id), &cookie).await;
        let row = &html[html.find("id=\"sensor-tier\"").expect("the row")..];
        assert!(
            row[..200.min(row.len())].contains("not reported by this agent"),
            "[{b}] {row}"
        );
        assert!(!html.contains("id=\"sensor-tier-name\""), "[{b}]");
    }
}
