//! The installer endpoints on the console/API port: `GET /install.sh` (the script with this
//! center's URL and key pin filled in), `GET /download/hostward-agent` (the agent binary),
//! `GET /download/hostward-scanner` (the malware scanner the agent runs) and
//! `GET /download/hostward-agent.service` (its systemd unit). No authentication: nothing here
//! is secret, and the script authenticates the center by its key pin.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const SCRIPT_TEMPLATE: &str = include_str!("../../assets/install.sh");
const SERVICE_UNIT: &str = include_str!("../../../agent/dist/hostward-agent.service");
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// Public URL of the console/API port, e.g. `https://center.example:8443`.
    pub center_url: String,
    /// Pin of the center's TLS key for `curl --pinnedpubkey`: `sha256//<base64>` (the bare
    /// base64 of `hostward_pki::spki_sha256_base64` is accepted too).
    pub spki_pin: String,
    /// The agent binary served to installers.
    pub agent_binary: PathBuf,
    /// The malware scanner the agent runs, served beside it (the same file the center checks
    /// imported rules with).
    pub scanner_binary: PathBuf,
}

struct Shared {
    script: String,
    agent_binary: PathBuf,
    scanner_binary: PathBuf,
}

pub fn router<S: Clone + Send + Sync + 'static>(settings: InstallSettings) -> Router<S> {
    let shared = Arc::new(Shared {
        script: render_script(&settings),
        agent_binary: settings.agent_binary,
        scanner_binary: settings.scanner_binary,
    });
    Router::new()
        .route("/install.sh", get(script))
        .route("/download/hostward-agent", get(agent_binary))
        .route("/download/hostward-scanner", get(scanner_binary))
        .route("/download/hostward-agent.service", get(service_unit))
        .with_state(shared)
}

/// The script with its placeholders filled in. Both values sit inside single quotes in the
/// script, so a quote in them is escaped rather than allowed to end the string.
pub fn render_script(settings: &InstallSettings) -> String {
    let url = settings.center_url.trim().trim_end_matches('/');
    let pin = settings.spki_pin.trim();
    let pin = if pin.starts_with("sha256//") {
        pin.to_string()
    } else {
        format!("sha256//{pin}")
    };
    SCRIPT_TEMPLATE
        .replace("__CENTER_URL__", &sh_single_quoted(url))
        .replace("__SPKI_PIN__", &sh_single_quoted(&pin))
}

fn sh_single_quoted(s: &str) -> String {
    s.replace('\'', r"'\''")
}

async fn script(State(shared): State<Arc<Shared>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        shared.script.clone(),
    )
        .into_response()
}

async fn service_unit() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        SERVICE_UNIT,
    )
        .into_response()
}

async fn agent_binary(State(shared): State<Arc<Shared>>) -> Response {
    binary(&shared.agent_binary, "hostward-agent", "agent_binary").await
}

async fn scanner_binary(State(shared): State<Arc<Shared>>) -> Response {
    binary(&shared.scanner_binary, "hostward-scanner", "scanner_path").await
}

/// Streams the binary at `path` as `name`; 404 naming the `setting` when it is not there.
async fn binary(path: &std::path::Path, name: &str, setting: &str) -> Response {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "{name} not available for download");
            return not_found(name, setting);
        }
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return not_found(name, setting),
    };
    // Stream in chunks: the binary is several MB and many hosts may install at once.
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn not_found(name: &str, setting: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": "not_found",
            "message": format!("{name} is not available on this center (see the center's {setting} setting)"),
        }
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    fn settings(bin: PathBuf) -> InstallSettings {
        InstallSettings {
            center_url: "https://center.example:8443/".into(),
            spki_pin: "AbC+/123=".into(),
            scanner_binary: bin.with_file_name("hostward-scanner"),
            agent_binary: bin,
        }
    }

    #[test]
    fn script_gets_url_and_pin_substituted() {
        let s = render_script(&settings(PathBuf::from("/nope")));
        assert!(
            s.contains("CENTER_URL='https://center.example:8443'"),
            "trailing slash trimmed"
        );
        assert!(s.contains("SPKI_PIN='sha256//AbC+/123='"));
        assert!(!s.contains("__CENTER_URL__") && !s.contains("__SPKI_PIN__"));
        assert!(s.starts_with("#!/bin/sh"));
        let already = InstallSettings {
            spki_pin: "sha256//xyz=".into(),
            ..settings(PathBuf::new())
        };
        assert!(
            render_script(&already).contains("SPKI_PIN='sha256//xyz='"),
            "prefix not doubled"
        );
    }

    #[test]
    fn quotes_cannot_break_out_of_the_script_strings() {
        let evil = InstallSettings {
            center_url: "https://x'; rm -rf /; '".into(),
            ..settings(PathBuf::new())
        };
        let s = render_script(&evil);
        assert!(
            s.contains(r"CENTER_URL='https://x'\''; rm -rf /; '\'''"),
            "{}",
            &s[..400]
        );
    }

    #[test]
    fn installer_script_is_valid_posix_sh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.sh");
        std::fs::write(&path, render_script(&settings(PathBuf::new()))).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn get(app: Router, path: &str) -> (StatusCode, Vec<u8>) {
        let resp = app
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    #[tokio::test]
    async fn routes_serve_script_unit_and_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("hostward-agent");
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&bin, &payload).unwrap();
        let app: Router = router(settings(bin.clone()));

        let (status, body) = get(app.clone(), "/install.sh").await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8(body).unwrap().contains("center.example"));

        let (status, body) = get(app.clone(), "/download/hostward-agent.service").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("ExecStart=/usr/local/bin/hostward-agent run")
        );

        let (status, body) = get(app.clone(), "/download/hostward-agent").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, payload, "streamed in chunks, intact");
        let (status, body) = get(app.clone(), "/download/hostward-scanner").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "no scanner beside it");
        assert!(String::from_utf8_lossy(&body).contains("scanner_path"));
        std::fs::write(dir.path().join("hostward-scanner"), b"scanner").unwrap();
        let (status, body) = get(app.clone(), "/download/hostward-scanner").await;
        assert_eq!((status, body), (StatusCode::OK, b"scanner".to_vec()));

        std::fs::remove_file(&bin).unwrap();
        let (status, body) = get(app, "/download/hostward-agent").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
    }
}
