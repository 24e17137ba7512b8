//! An `AppState` on a temporary store (SQLite, or each available backend), and request helpers
//! for handler tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use tower::ServiceExt as _;

use crate::AppState;
use crate::auth::{Role, hash_password, secret};
use crate::config::ServeArgs;
use crate::gateway::Gateway;
use hostward_store::{NewApiToken, NewServer, NewUser, Server, User, testdb};

pub const PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub state: AppState,
    pub router: axum::Router,
    _db: testdb::TestDb,
    _dir: tempfile::TempDir,
}

pub async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// `tweak` adjusts the config before the state is built.
pub async fn app_with(tweak: impl FnOnce(&mut crate::config::Config)) -> TestApp {
    app_on(testdb::sqlite().await, tweak)
}

/// One app per available backend (SQLite always, PostgreSQL when
/// `HOSTWARD_TEST_POSTGRES_URL` is set), with the backend's name.
pub async fn apps() -> Vec<(&'static str, TestApp)> {
    let mut out = Vec::new();
    for (backend, db) in testdb::all().await {
        out.push((backend, app_on(db, |_| {})));
    }
    out
}

fn app_on(db: testdb::TestDb, tweak: impl FnOnce(&mut crate::config::Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        public_url: Some("https://center.test:8443".into()),
        ..Default::default()
    };
    let mut config = args.resolve(dir.path()).unwrap();
    tweak(&mut config);
    let config = Arc::new(config);
    let pki = crate::tls::load_or_create(
        dir.path(),
        &config.server_names,
        crate::tls::Reissue::OnNameChange,
    )
    .unwrap();
    let state = AppState {
        store: db.store.clone(),
        config: config.clone(),
        pki: Arc::new(pki),
        gateway: Gateway::new(db.store.clone(), config),
        metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle(),
        analyzer: Default::default(),
        notifier: Default::default(),
    };
    let router = super::router().with_state(state.clone());
    TestApp {
        state,
        router,
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    /// A user with `role` in each listed project (by id).
    pub async fn user(&self, name: &str, roles: &[(&str, Role)]) -> User {
        let hash = hash_password(PASSWORD).await.unwrap();
        let u = self
            .state
            .store
            .create_user(&NewUser {
                username: name.into(),
                password_hash: hash,
                ..Default::default()
            })
            .await
            .unwrap();
        for (project, role) in roles {
            self.state
                .store
                .set_membership(&u.id, project, role.as_str())
                .await
                .unwrap();
        }
        u
    }

    pub async fn superadmin(&self, name: &str) -> User {
        let hash = hash_password(PASSWORD).await.unwrap();
        self.state
            .store
            .create_user(&NewUser {
                username: name.into(),
                password_hash: hash,
                is_superadmin: true,
                ..Default::default()
            })
            .await
            .unwrap()
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

    /// The server's sections of its agent config as the gateway would send them now.
    pub async fn config_sections(
        &self,
        server_id: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let srv = self.state.store.server(server_id).await.unwrap().unwrap();
        crate::capabilities::config_sections(&self.state, &srv).await
    }

    /// The details of the project's audit entries with this action by this user.
    pub async fn audited(&self, project_id: &str, action: &str, user: &str) -> Vec<String> {
        self.state
            .store
            .list_audit(Some(&[project_id.to_string()]), 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action && e.username == user)
            .map(|e| e.detail)
            .collect()
    }

    /// A bearer token for the user.
    pub async fn token(&self, u: &User) -> String {
        let raw = secret::new_api_token();
        let new = NewApiToken {
            user_id: u.id.clone(),
            name: "t".into(),
            token_hash: secret::hash_secret(&raw),
            prefix: secret::display_prefix(&raw),
            expires_at: None,
        };
        self.state.store.create_api_token(&new).await.unwrap();
        raw
    }

    /// Sends a request from 192.0.2.10 and returns status, JSON body (Null when empty) and headers.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, serde_json::Value, HeaderMap) {
        self.call_from(
            "192.0.2.10:40000".parse().unwrap(),
            method,
            uri,
            headers,
            body,
        )
        .await
    }

    pub async fn call_from(
        &self,
        peer: SocketAddr,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, serde_json::Value, HeaderMap) {
        let (status, headers, bytes) = self.raw(peer, method, uri, headers, body).await;
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        (status, json, headers)
    }

    async fn raw(
        &self,
        peer: SocketAddr,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let mut req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// GET with a bearer token; the body as text (CSV exports).
    pub async fn get_text(&self, uri: &str, token: &str) -> (StatusCode, HeaderMap, String) {
        let auth = format!("Bearer {token}");
        let peer = "192.0.2.10:40000".parse().unwrap();
        let (s, h, b) = self
            .raw(peer, Method::GET, uri, &[("authorization", &auth)], None)
            .await;
        (s, h, String::from_utf8_lossy(&b).into_owned())
    }

    pub async fn get(&self, uri: &str, token: &str) -> (StatusCode, serde_json::Value) {
        let auth = format!("Bearer {token}");
        let (s, j, _) = self
            .call(Method::GET, uri, &[("authorization", &auth)], None)
            .await;
        (s, j)
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let auth = format!("Bearer {token}");
        let (s, j, _) = self
            .call(method, uri, &[("authorization", &auth)], Some(body))
            .await;
        (s, j)
    }
}
