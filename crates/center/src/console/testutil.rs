//! What the console tests share: an `AppState` around a given store, the router in-process
//! (`tower::ServiceExt::oneshot`), users signed in through the login form, and small readers
//! of responses.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use tower::ServiceExt;

use super::{glue, login, router};
use crate::AppState;
use crate::config::Config;
use crate::state::CenterPki;
use hostward_store::{NewServer, NewUser, Server, Store, testdb};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The console of one `AppState`.
pub(crate) struct Console {
    pub state: AppState,
}

impl Console {
    /// An `AppState` on `store` with a fresh test CA.
    pub fn new(store: Store, config: Arc<Config>) -> Console {
        let (ca, _) = hostward_pki::Ca::generate("Hostward test CA").unwrap();
        let pki = CenterPki {
            ca_fingerprint: ca.fingerprint(),
            ca,
            spki_pin: "sha256//test".into(),
            chain_pem: String::new(),
            server_key_pem: String::new(),
        };
        let gateway = crate::gateway::Gateway::new(store.clone(), config.clone());
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        Console {
            state: AppState {
                store,
                config,
                pki: Arc::new(pki),
                gateway,
                metrics,
                analyzer: Default::default(),
                notifier: Default::default(),
            },
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        router()
            .with_state(self.state.clone())
            .oneshot(req)
            .await
            .unwrap()
    }

    pub async fn get(&self, uri: &str, cookie: &str) -> Response {
        self.send(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_form(&self, uri: &str, cookie: &str, body: &str) -> Response {
        let req = Request::post(uri)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    /// A user with `role` in a project, or a superadmin when `role` is None.
    pub async fn user(&self, name: &str, project_id: &str, role: Option<&str>) {
        let hash = crate::auth::hash_password(PASSWORD).await.unwrap();
        let u = self
            .state
            .store
            .create_user(&NewUser {
                username: name.into(),
                password_hash: hash,
                is_superadmin: role.is_none(),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(r) = role {
            self.state
                .store
                .set_membership(&u.id, project_id, r)
                .await
                .unwrap();
        }
    }

    /// Posts the login form for `name`; the answer, which must be a 303.
    pub async fn sign_in(&self, name: &str) -> Response {
        let res = self.sign_in_with(name, "").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {name}");
        res
    }

    /// Posts the login form for `name` with a two-factor `code` (empty: none); the answer.
    pub async fn sign_in_with(&self, name: &str, code: &str) -> Response {
        let page = self.get("/login", "").await;
        let login_cookie = set_cookie(&page, login::LOGIN_COOKIE).unwrap();
        let html = body(page).await;
        let token = hidden(&html, "login_csrf");
        self.post_form(
            "/login",
            &format!("{}={login_cookie}", login::LOGIN_COOKIE),
            &format!(
                "login_csrf={token}&username={name}&password={}&code={}",
                crate::web::page::enc(PASSWORD),
                crate::web::page::enc(code)
            ),
        )
        .await
    }

    /// The session cookie header value a sign-in answer set, and the session's CSRF token.
    pub async fn session(&self, signed_in: &Response) -> (String, String) {
        let session = set_cookie(signed_in, glue::SESSION_COOKIE).expect("session cookie");
        let cookie = format!("{}={session}", glue::SESSION_COOKIE);
        let html = body(self.get("/servers", &cookie).await).await;
        let csrf = hidden(&html, "csrf");
        (cookie, csrf)
    }

    /// Signs in through the form; the session cookie header value and the CSRF token.
    pub async fn login(&self, name: &str) -> (String, String) {
        let res = self.sign_in(name).await;
        self.session(&res).await
    }
}

pub(crate) fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=')?;
            (k == name && !val.is_empty()).then(|| val.to_string())
        })
}

pub(crate) async fn body(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 10 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Value of the first hidden input with this name.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden field {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A console on one test database backend, with its own data folder.
pub(crate) struct Env {
    pub backend: &'static str,
    pub console: Console,
    _db: testdb::TestDb,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Env {
    type Target = Console;

    fn deref(&self) -> &Console {
        &self.console
    }
}

/// One environment per available backend (SQLite always, PostgreSQL when
/// `HOSTWARD_TEST_POSTGRES_URL` is set).
pub(crate) async fn envs() -> Vec<Env> {
    let mut out = Vec::new();
    for (backend, db) in testdb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(
            crate::config::ServeArgs::default()
                .resolve(dir.path())
                .unwrap(),
        );
        out.push(Env {
            backend,
            console: Console::new(db.store.clone(), config),
            _db: db,
            _dir: dir,
        });
    }
    out
}

impl Env {
    /// GET that must answer 200; the page.
    pub async fn page(&self, uri: &str, cookie: &str) -> String {
        let res = self.get(uri, cookie).await;
        let status = res.status();
        let html = body(res).await;
        assert_eq!(status, StatusCode::OK, "[{}] {uri}: {html}", self.backend);
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "[{}] {uri}: inline script or style breaks the CSP",
            self.backend
        );
        html
    }

    /// Each form POST is refused with 403 without the CSRF token or with a wrong one, and sent
    /// without a session it goes to the login page. (Callers then check nothing changed.)
    pub async fn assert_posts_need_csrf(&self, cookie: &str, posts: &[(String, String)]) {
        let b = self.backend;
        for (uri, form) in posts {
            for extra in ["", "&csrf=wrong"] {
                let res = self.post_form(uri, cookie, &format!("{form}{extra}")).await;
                assert_eq!(
                    res.status(),
                    StatusCode::FORBIDDEN,
                    "[{b}] POST {uri}{extra}"
                );
            }
            // Without a session at all: to the login page.
            let res = self.post_form(uri, "", form).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "[{b}] POST {uri}");
            assert_eq!(location(&res), "/login", "[{b}]");
        }
    }

    /// Each page answers a request without a session with 303 to the login page.
    pub async fn assert_pages_need_a_session(&self, uris: &[&str]) {
        for uri in uris {
            let res = self.get(uri, "").await;
            assert_eq!(
                res.status(),
                StatusCode::SEE_OTHER,
                "[{}] {uri}",
                self.backend
            );
            assert_eq!(location(&res), "/login");
        }
    }

    /// The server's agent tasks (the latest ten).
    pub async fn tasks(&self, server_id: &str) -> Vec<hostward_store::TaskRow> {
        self.state.store.list_tasks(server_id, 10).await.unwrap()
    }

    /// Stores a heartbeat 5 s old, as the gateway's flush does, carrying `report` under
    /// `key` (a capability's report; None: a heartbeat without it).
    pub async fn heartbeat(&self, server_id: &str, key: &str, report: Option<serde_json::Value>) {
        let mut hb = serde_json::json!({"rss_bytes": 1, "cpu_percent": 0.1, "outbox_depth": 0,
            "outbox_dropped": 0});
        if let Some(r) = report {
            hb[key] = r;
        }
        self.state
            .store
            .flush_last_seen(&[(
                server_id.to_string(),
                hostward_store::now() - 5,
                hb.to_string(),
            )])
            .await
            .unwrap();
    }

    /// A server without an agent.
    pub async fn server(&self, project_id: &str, name: &str) -> Server {
        self.state
            .store
            .create_server(&NewServer {
                project_id: project_id.into(),
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// A server with an enrolled agent (scans and the block form are offered only for those).
    pub async fn agent_server(&self, project_id: &str, name: &str) -> Server {
        let token = self.state.store.test_token(project_id).await;
        self.state
            .store
            .enroll(&hostward_store::Enrollment {
                token_id: token.id,
                grant_server_id: None,
                token_created_at: token.created_at,
                project_id: project_id.into(),
                region: String::new(),
                install_id: None,
                agent_id: format!("agent-{name}"),
                cert_serial: "0abc".into(),
                cert_not_after: 0,
                facts: hostward_proto::HostFacts {
                    hostname: name.into(),
                    ..Default::default()
                },
            })
            .await
            .unwrap()
            .expect("enrolled")
    }
}

/// A form body from pairs, every value encoded.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::web::page::enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether the page holds `text` as askama escapes it (numeric references), or with named ones.
pub(crate) fn has_escaped(html: &str, text: &str) -> bool {
    let esc = |named: bool| {
        text.chars()
            .map(|c| match (c, named) {
                ('<', false) => "&#60;".to_string(),
                ('>', false) => "&#62;".to_string(),
                ('"', false) => "&#34;".to_string(),
                ('<', true) => "&lt;".to_string(),
                ('>', true) => "&gt;".to_string(),
                ('"', true) => "&quot;".to_string(),
                (c, _) => c.to_string(),
            })
            .collect::<String>()
    };
    html.contains(&esc(false)) || html.contains(&esc(true))
}

/// Whether the page holds `url` in an attribute (`&` escaped as askama does).
pub(crate) fn has_url(html: &str, url: &str) -> bool {
    html.contains(&url.replace('&', "&amp;")) || html.contains(&url.replace('&', "&#38;"))
}

/// The `Location` of a redirect.
pub(crate) fn location(res: &Response) -> String {
    res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}
