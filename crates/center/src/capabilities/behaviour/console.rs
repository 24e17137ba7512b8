//! Isolated-file pages in the alarms area: the files the agents' quarantines hold (with restore
//! and, after a confirmation page, delete, as agent tasks), and the alarm page's "Isolate and
//! kill" action. Every page reads and writes through [`crate::capabilities::behaviour::api`];
//! paths, reasons and hashes come from agents and are escaped by the templates.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};

use crate::AppState;
use crate::capabilities::behaviour::api::{
    self as ops, FileAction, FileActionBody, FileKey, IsolateBody, IsolatedQuery, file_state,
};
use crate::console::forms::{Flash, opt, opts, safe_back, seg, with_done};
use crate::console::{
    Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, fmt_bytes, html, project_opts,
    see_other,
};
use crate::web::page::{param, url};
use hostward_store::IsolatedFileRow;

/// Where the isolated-file forms may return to.
const BACK: &[&str] = &["/alarms/isolated"];
const HOME: &str = "/alarms/isolated";

/// A confirmation after a redirect. Only fixed texts and numbers: a link must not be able to
/// put words into the page.
fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let n: usize = m.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let ok = |text: String| Some(Flash { class: "ok", text });
    match m.get("done").map(String::as_str)? {
        "restore" => ok(format!(
            "Restore queued for {n} file(s): the agent puts each file back with its owner and mode and reports it; the list follows its report."
        )),
        "delete" => ok(format!(
            "Delete queued for {n} file(s): the agent deletes the isolated copy for good and reports it; the list follows its report."
        )),
        _ => None,
    }
}

fn state_class(s: &str) -> &'static str {
    match s {
        file_state::ISOLATED => "b-warn",
        file_state::RESTORED => "b-ok",
        _ => "b-muted",
    }
}

/// Permission bits as `chmod` writes them: `4755`.
pub(crate) fn octal_mode(mode: i64) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// The first 12 hex digits of a SHA-256 (the full one goes in a title).
pub(crate) fn short_hash(h: &str) -> String {
    h.chars().take(12).collect()
}

pub(crate) struct FileView {
    pub server_id: String,
    pub server_name: String,
    pub file_id: String,
    pub path: String,
    pub sha256: String,
    pub sha_short: String,
    pub size: String,
    pub owner: String,
    pub mode: String,
    pub reason: String,
    pub killed: String,
    pub state: String,
    pub state_class: &'static str,
    pub isolated_at: Ts,
    /// The caller may restore or delete it now (operator+, and the file is isolated).
    pub can_act: bool,
    /// The confirmation page of its deletion.
    pub delete_url: String,
}

fn file_view(f: &IsolatedFileRow, p: &Principal, back: &str) -> FileView {
    let killed: Vec<String> = f.killed.iter().map(u32::to_string).collect();
    FileView {
        server_id: f.server_id.clone(),
        server_name: f.server_name.clone(),
        file_id: f.file_id.clone(),
        path: f.path.clone(),
        sha_short: short_hash(&f.sha256),
        sha256: f.sha256.clone(),
        size: fmt_bytes(f.size.max(0) as u64),
        owner: format!("{}:{}", f.uid, f.gid),
        mode: octal_mode(f.mode),
        reason: f.reason.replace('_', " "),
        killed: killed.join(", "),
        state: f.state.clone(),
        state_class: state_class(&f.state),
        isolated_at: Ts::at(f.isolated_at),
        can_act: f.state == file_state::ISOLATED
            && p.require(&f.project_id, Role::Operator).is_ok(),
        delete_url: url(
            "/alarms/isolated/delete",
            &[
                ("server", &f.server_id),
                ("file", &f.file_id),
                ("back", back),
            ],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// /alarms/isolated

#[derive(Template)]
#[template(path = "behaviour/isolated.html")]
pub(crate) struct IsolatedPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub project_opts: Vec<Opt>,
    pub server: String,
    pub state_opts: Vec<Opt>,
    pub rows: Vec<FileView>,
    pub isolated_count: usize,
    pub back: String,
}

/// `GET /alarms/isolated?project=&server=&state=`
pub async fn isolated(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let project = param(&m, "project");
    let server = param(&m, "server");
    // Nonsense from a link is "any state", as on the other lists.
    let st = Some(param(&m, "state"))
        .filter(|s| file_state::ALL.contains(&s.as_str()))
        .unwrap_or_default();
    let list = ops::isolated_files(
        &state,
        &p,
        &IsolatedQuery {
            project: opt(&project),
            server: opt(&server),
            state: opt(&st),
        },
    )
    .await?;
    let back = url(
        HOME,
        &[("project", &project), ("server", &server), ("state", &st)],
    );
    let rows: Vec<FileView> = list.items.iter().map(|f| file_view(f, &p, &back)).collect();
    html(&IsolatedPage {
        nav: Nav::new(&p, "alarms"),
        section: "isolated",
        flash: flash(&m),
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        server,
        state_opts: opts(file_state::ALL, &st, str::to_string),
        isolated_count: rows
            .iter()
            .filter(|r| r.state == file_state::ISOLATED)
            .count(),
        rows,
        back,
    })
}

/// Runs a restore or delete of one file and returns to the list it was asked from.
async fn act(
    state: &AppState,
    p: &Principal,
    f: &crate::console::Fields,
    action: FileAction,
) -> PageResult {
    let body = FileActionBody {
        action,
        files: vec![FileKey {
            server_id: f.get("server").to_string(),
            file_id: f.get("file").to_string(),
        }],
        note: f.opt("note"),
    };
    let n = ops::act_on_files(state, p, body).await?.tasks.len();
    let back = safe_back(f.get("back"), BACK).unwrap_or(HOME);
    Ok(see_other(&with_done(back, action.as_str(), n)))
}

/// `POST /alarms/isolated/restore` (`server`, `file`): a `quarantine_restore` task.
pub async fn restore(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    act(&state, &p, &f, FileAction::Restore).await
}

#[derive(Template)]
#[template(path = "behaviour/delete_confirm.html")]
pub(crate) struct DeleteConfirmPage {
    pub nav: Nav,
    pub f: FileView,
    pub back: String,
}

/// `GET /alarms/isolated/delete?server=&file=&back=`: what will be deleted, and the button.
pub async fn delete_confirm(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let row = ops::isolated_file(
        &state,
        &p,
        &param(&m, "server"),
        &param(&m, "file"),
        Role::Operator,
    )
    .await?;
    let back = safe_back(&param(&m, "back"), BACK)
        .unwrap_or(HOME)
        .to_string();
    if row.state != file_state::ISOLATED {
        return Ok(see_other(&back));
    }
    html(&DeleteConfirmPage {
        nav: Nav::new(&p, "alarms"),
        f: file_view(&row, &p, &back),
        back,
    })
}

/// `POST /alarms/isolated/delete` (`server`, `file`, `confirm=yes`): a `quarantine_delete`
/// task. Without the confirmation, to the confirmation page.
pub async fn delete(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    if f.get("confirm") != "yes" {
        // Authorize before showing the way to the confirmation page.
        let row =
            ops::isolated_file(&state, &p, f.get("server"), f.get("file"), Role::Operator).await?;
        let back = safe_back(f.get("back"), BACK).unwrap_or(HOME);
        return Ok(see_other(&url(
            "/alarms/isolated/delete",
            &[
                ("server", &row.server_id),
                ("file", &row.file_id),
                ("back", back),
            ],
        )));
    }
    act(&state, &p, &f, FileAction::Delete).await
}

/// `POST /alarms/{id}/isolate`: kill the alarm's process tree and isolate its executable (an
/// `isolate_kill` task), then back to the alarm.
pub async fn isolate_alarm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let body = IsolateBody {
        alarm_id: Some(id.clone()),
        ..Default::default()
    };
    ops::isolate(&state, &p, body).await?;
    Ok(see_other(&format!("/alarms/{}?done=isolate&n=1", seg(&id))))
}

/// The isolated-file pages and the alarm page's isolate action.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alarms/isolated", get(isolated))
        .route("/alarms/isolated/restore", post(restore))
        .route("/alarms/isolated/delete", get(delete_confirm).post(delete))
        .route("/alarms/{id}/isolate", post(isolate_alarm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_hashes_and_returns() {
        assert_eq!(octal_mode(0o104755), "4755");
        assert_eq!(octal_mode(0o644), "0644");
        assert_eq!(short_hash(&"ab".repeat(32)), "abababababab");
        assert_eq!(short_hash("abc"), "abc");
        assert_eq!(
            safe_back("/alarms/isolated?state=isolated", BACK),
            Some("/alarms/isolated?state=isolated")
        );
        assert_eq!(safe_back("/alarms/1", BACK), None);
        assert_eq!(safe_back("//evil.example/alarms/isolated", BACK), None);
    }
}
