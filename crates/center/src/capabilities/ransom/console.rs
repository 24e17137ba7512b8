//! A server's "Ransomware" tab (`/servers/{id}/ransom`): the state its agent last reported,
//! said in words (only a `protecting` report reads as protecting; an agent that reports nothing
//! says so), the baits, detections and problems behind it, the backup's state and snapshots,
//! the recent backup and restore tasks with their results, and the operators' "Back up now"
//! and restore forms, which call the API operations.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::ransom::{
    ALARM, BackupReport, RESTORE_TASK, RansomReport, RestoreRequest, RestoreResult, SnapshotInfo,
};
use serde::Deserialize as _;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::capabilities::alarms::console::parse_date;
use crate::capabilities::ransom::api::{self as ops, BackupTask};
use crate::capabilities::server_tabs;
use crate::console::forms::{Flash, entries, seg, truthy};
use crate::console::{
    ConsoleError, Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, fmt_bytes,
    fmt_utc, html_status, see_other,
};
use crate::web::page::{Tab, clip, param, url};

/// A state in words, with the badge it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateView {
    /// The reported state, or `not_reported`.
    pub state: String,
    pub words: String,
    pub class: &'static str,
}

fn trimmed(reason: &Option<String>) -> Option<&str> {
    reason.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `words`, with the agent's reason after it when it gave one.
fn with_reason(words: &str, reason: Option<&str>) -> String {
    match reason {
        Some(why) => format!("{words} ({why})"),
        None => words.to_string(),
    }
}

/// The words for an agent's report; `None` is an agent that reports no ransomware prevention.
pub(crate) fn state_view(report: Option<&RansomReport>) -> StateView {
    let Some(r) = report else {
        return StateView {
            state: "not_reported".into(),
            words: "Not reported by this agent".into(),
            class: "b-muted",
        };
    };
    let reason = trimmed(&r.reason);
    let (words, class) = match r.state.as_str() {
        "protecting" => (with_reason("Protecting", reason), "b-ok"),
        "failing" => (
            format!("Failing: {}", reason.unwrap_or("the agent gave no reason")),
            "b-bad",
        ),
        "off" => (with_reason("Off", reason), "b-muted"),
        "waiting" => (with_reason("Waiting for its policy", reason), "b-warn"),
        "starting" => (with_reason("Starting", reason), "b-warn"),
        other => (format!("Unknown state {other:?}"), "b-bad"),
    };
    StateView {
        state: r.state.clone(),
        words,
        class,
    }
}

/// The words for the backup part of a report.
pub(crate) fn backup_view(b: &BackupReport) -> StateView {
    let reason = trimmed(&b.reason);
    let (words, class) = match b.state.as_str() {
        "ok" => (with_reason("The last snapshot worked", reason), "b-ok"),
        "running" => (with_reason("Taking a snapshot", reason), "b-warn"),
        "failing" => (
            format!("Failing: {}", reason.unwrap_or("the agent gave no reason")),
            "b-bad",
        ),
        "off" => (with_reason("Off", reason), "b-muted"),
        "waiting" => (with_reason("Waiting for its policy", reason), "b-warn"),
        other => (format!("Unknown state {other:?}"), "b-bad"),
    };
    StateView {
        state: b.state.clone(),
        words,
        class,
    }
}

/// What the agent does to ransomware, in words.
pub(crate) fn action_words(action: &str) -> String {
    match action {
        "alarm" => "Raise an alarm only".into(),
        "kill" => "Kill the process tree".into(),
        "kill_isolate" => "Kill the process tree and isolate its program".into(),
        "" => "not reported".into(),
        other => format!("Unknown action {other:?}"),
    }
}

/// The report's figures.
pub(crate) struct ReportView {
    pub action: String,
    pub baits: u64,
    pub baits_deployed_at: Option<Ts>,
    pub watched_dirs: u64,
    pub detections: u64,
    pub killed: u64,
    pub problems: Vec<String>,
}

pub(crate) struct SnapshotRow {
    pub id: String,
    pub at: Ts,
    pub directories: String,
    pub files: u64,
    pub bytes: String,
    pub new_bytes: String,
    pub errors: u64,
    pub truncated: bool,
}

impl SnapshotRow {
    fn of(s: &SnapshotInfo) -> SnapshotRow {
        SnapshotRow {
            id: s.id.clone(),
            at: Ts::at(s.at),
            directories: s.directories.join(", "),
            files: s.files,
            bytes: fmt_bytes(s.bytes),
            new_bytes: fmt_bytes(s.new_bytes),
            errors: s.errors,
            truncated: s.truncated,
        }
    }
}

pub(crate) struct BackupView {
    pub state: StateView,
    pub next_at: Option<Ts>,
    pub stored: String,
    pub snapshots: Vec<SnapshotRow>,
}

/// One backup or restore task as the tab lists it.
pub(crate) struct TaskLine {
    pub id: String,
    pub kind: String,
    pub label: &'static str,
    pub state: String,
    pub created: Ts,
    pub updated: Ts,
    pub by: String,
    /// What was asked.
    pub what: String,
    /// What came of it.
    pub result: String,
    /// What a restore could not put back.
    pub failed: Vec<String>,
}

/// What a restore asked for, in words.
fn restore_asked(params: &serde_json::Value) -> String {
    let Ok(r) = RestoreRequest::deserialize(params) else {
        return "unreadable params".into();
    };
    let from = match (&r.snapshot, r.at) {
        (Some(id), _) => format!("snapshot {id}"),
        (None, Some(at)) => format!("the newest snapshot at or before {} UTC", fmt_utc(at)),
        (None, None) => "no snapshot".into(),
    };
    let what = match r.paths.len() {
        0 => "everything".to_string(),
        1 => r.paths[0].clone(),
        n => format!("{n} paths: {}", r.paths.join(", ")),
    };
    let mut s = format!("{what} from {from}");
    if r.remove_new {
        s.push_str(", removing files the snapshot lacks");
    }
    clip(&s, 200).0
}

fn snapshot_words(s: &SnapshotInfo) -> String {
    let mut w = format!(
        "snapshot {}: {} files, {} ({} new)",
        s.id,
        s.files,
        fmt_bytes(s.bytes),
        fmt_bytes(s.new_bytes)
    );
    if s.errors > 0 {
        w.push_str(&format!(", {} unreadable", s.errors));
    }
    if s.truncated {
        w.push_str(", truncated at the entry cap");
    }
    w
}

impl TaskLine {
    fn of(t: BackupTask) -> TaskLine {
        let restore = t.kind == RESTORE_TASK;
        let mut failed = Vec::new();
        let result = match (t.state.as_str(), &t.output) {
            ("failed", _) => format!(
                "Failed: {}",
                t.error.as_deref().unwrap_or("the agent gave no reason")
            ),
            ("expired", _) => "Expired before the agent took it".into(),
            ("done", Some(o)) if restore => match RestoreResult::deserialize(o) {
                Ok(r) => {
                    failed = r.failed.clone();
                    format!(
                        "From snapshot {} (taken {} UTC): {} restored, {} unchanged, {} removed, {} failed",
                        r.snapshot,
                        fmt_utc(r.taken_at),
                        r.restored,
                        r.unchanged,
                        r.removed,
                        r.failed.len()
                    )
                }
                Err(_) => "Done; the agent's answer is unreadable".into(),
            },
            ("done", Some(o)) => SnapshotInfo::deserialize(o)
                .or_else(|_| SnapshotInfo::deserialize(&o["snapshot"]))
                .map(|s| snapshot_words(&s))
                .unwrap_or_else(|_| "Done".into()),
            ("done", None) => "Done".into(),
            _ => String::new(),
        };
        TaskLine {
            label: if restore { "Restore" } else { "Back up now" },
            what: if restore {
                restore_asked(&t.params)
            } else {
                "a snapshot of the backed-up directories".into()
            },
            result,
            failed,
            id: t.id,
            kind: t.kind,
            state: t.state,
            created: Ts::at(t.created_at),
            updated: Ts::at(t.updated_at),
            by: t.created_by,
        }
    }
}

/// The restore form's fields as typed, so a refused one is shown again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RestoreForm {
    pub snapshot: String,
    /// `YYYY-MM-DD HH:MM` (UTC).
    pub at: String,
    /// One path per line or `;`-separated.
    pub paths: String,
    pub remove_new: bool,
}

/// `YYYY-MM-DD HH:MM[:SS]` (or with a `T`, as a browser's datetime field sends it), UTC, to
/// Unix seconds; None for anything else.
pub(crate) fn parse_at(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(['T', ' '])?;
    let day = parse_date(date)?;
    let two = |x: &str| -> Option<i64> {
        (x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let mut it = time.trim().split(':');
    let (h, m) = (two(it.next()?)?, two(it.next()?)?);
    let sec = match it.next() {
        Some(x) => two(x)?,
        None => 0,
    };
    if it.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(day + h * 3600 + m * 60 + sec)
}

impl RestoreForm {
    fn from_fields(f: &Fields) -> RestoreForm {
        RestoreForm {
            snapshot: f.get("snapshot").to_string(),
            at: f.get("at").to_string(),
            paths: f.0.get("paths").cloned().unwrap_or_default(),
            remove_new: truthy(f, "remove_new"),
        }
    }

    /// The request the form describes; the message names the field. The operation checks the
    /// rest.
    fn request(&self) -> Result<RestoreRequest, String> {
        let at = match self.at.trim() {
            "" => None,
            t => Some(
                parse_at(t)
                    .ok_or_else(|| format!("at: {t:?} is not a time (YYYY-MM-DD HH:MM, UTC)"))?,
            ),
        };
        Ok(RestoreRequest {
            snapshot: Some(self.snapshot.trim().to_string()).filter(|s| !s.is_empty()),
            at,
            paths: entries(&self.paths),
            remove_new: self.remove_new,
        })
    }
}

#[derive(Template)]
#[template(path = "ransom/server.html")]
pub(crate) struct ServerPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub state: StateView,
    pub report: Option<ReportView>,
    pub backup: Option<BackupView>,
    pub reported_at: Option<Ts>,
    /// The agent is not online: the state is what it said last.
    pub agent_away: Option<String>,
    pub policy_enabled: bool,
    pub policy_directories: usize,
    pub backup_enabled: bool,
    pub project_id: String,
    pub tasks: Vec<TaskLine>,
    pub can_operate: bool,
    pub form: RestoreForm,
    /// The restore form's snapshot choice: the reported snapshots, newest first.
    pub snapshot_opts: Vec<Opt>,
    pub alarms_href: String,
}

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    match param(m, "done").as_str() {
        "backup" => Some(Flash {
            class: "ok",
            text: "Snapshot asked of the server's agent; its result shows in the task list below."
                .into(),
        }),
        "restore" => Some(Flash {
            class: "ok",
            text: "Restore queued for the server's agent; its result shows in the task list below."
                .into(),
        }),
        _ => None,
    }
}

async fn render(
    state: &AppState,
    p: &Principal,
    id: &str,
    typed: Option<RestoreForm>,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever else is asked.
    let r = ops::server_ransom(state, p, id).await?;
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let tabs = server_tabs(state, p, &srv.id, "ransom").await?;
    let agent_away = (srv.agent_status != hostward_store::status::ONLINE)
        .then(|| srv.agent_status.replace('_', " "));
    let form = typed.unwrap_or_default();
    let snapshots = r
        .report
        .as_ref()
        .map(|rep| rep.backup.snapshots.as_slice())
        .unwrap_or_default();
    let snapshot_opts = snapshots
        .iter()
        .map(|s| Opt {
            value: s.id.clone(),
            label: format!("{} · {} UTC · {} files", s.id, fmt_utc(s.at), s.files),
            selected: s.id == form.snapshot,
        })
        .collect();
    html_status(
        status,
        &ServerPage {
            nav: Nav::new(p, "servers"),
            can_operate: p.require(&srv.project_id, Role::Operator).is_ok(),
            alarms_href: url("/alarms", &[("type", ALARM), ("server", &srv.id)]),
            sid: srv.id,
            sname: srv.name,
            tabs,
            flash,
            error,
            state: state_view(r.report.as_ref()),
            backup: r.report.as_ref().map(|rep| BackupView {
                state: backup_view(&rep.backup),
                next_at: Ts::opt(rep.backup.next_at),
                stored: fmt_bytes(rep.backup.stored_bytes),
                snapshots: rep.backup.snapshots.iter().map(SnapshotRow::of).collect(),
            }),
            snapshot_opts,
            report: r.report.map(|rep| ReportView {
                action: action_words(&rep.action),
                baits: rep.baits,
                baits_deployed_at: Ts::opt(rep.baits_deployed_at),
                watched_dirs: rep.watched_dirs,
                detections: rep.detections,
                killed: rep.killed,
                problems: rep.problems,
            }),
            reported_at: Ts::opt(r.reported_at),
            agent_away,
            policy_enabled: r.policy_enabled,
            policy_directories: r.policy_directories,
            backup_enabled: r.backup_enabled,
            project_id: srv.project_id,
            tasks: r.tasks.into_iter().map(TaskLine::of).collect(),
            form,
        },
    )
}

/// `GET /servers/{id}/ransom`.
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render(&state, &p, &id, None, StatusCode::OK, flash(&m), None).await
}

fn back(id: &str, done: &str) -> String {
    url(&format!("/servers/{}/ransom", seg(id)), &[("done", done)])
}

/// `POST /servers/{id}/ransom/backup`: "Back up now" (operators).
pub async fn backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let t = ops::backup_now(&state, &p, &id).await?;
    Ok(see_other(&back(&t.server_id, "backup")))
}

/// `POST /servers/{id}/ransom/restore`: a restore (operators). A form that does not describe
/// one, or one the operation refuses, is shown again as typed with the message naming the
/// field; nothing is queued.
pub async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let form = RestoreForm::from_fields(&f);
    let refuse = |form: RestoreForm, msg: String| {
        render(
            &state,
            &p,
            &id,
            Some(form),
            StatusCode::BAD_REQUEST,
            None,
            Some(msg),
        )
    };
    let req = match form.request() {
        Ok(req) => req,
        Err(msg) => {
            // Authorize before echoing anything back about the server.
            visible_server(&state, &p, &id, Role::Operator).await?;
            return refuse(form, msg).await;
        }
    };
    match ops::restore(&state, &p, &id, req).await {
        Ok(t) => Ok(see_other(&back(&t.server_id, "restore"))),
        // The operation checked the role before the request, so a 400 is for someone allowed.
        Err(e) if e.status == StatusCode::BAD_REQUEST => refuse(form, e.message).await,
        Err(e) => Err(ConsoleError::from(e)),
    }
}

/// The server tab and its forms.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{id}/ransom", get(page))
        .route("/servers/{id}/ransom/backup", post(backup))
        .route("/servers/{id}/ransom/restore", post(restore))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::ransom::BACKUP_TASK;
    use serde_json::json;

    fn report(state: &str) -> RansomReport {
        RansomReport {
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_protecting_report_reads_as_protecting() {
        let v = state_view(Some(&report("protecting")));
        assert_eq!((v.words.as_str(), v.class), ("Protecting", "b-ok"));
        let mut r = report("failing");
        r.reason = Some("fanotify: permission denied".into());
        let v = state_view(Some(&r));
        assert_eq!(
            (v.words.as_str(), v.class),
            ("Failing: fanotify: permission denied", "b-bad")
        );
        r.reason = Some(" ".into());
        assert_eq!(
            state_view(Some(&r)).words,
            "Failing: the agent gave no reason"
        );
        let mut r = report("off");
        r.reason = Some("turned off in agent.toml".into());
        assert_eq!(state_view(Some(&r)).words, "Off (turned off in agent.toml)");
        assert_eq!(
            state_view(Some(&report("waiting"))).words,
            "Waiting for its policy"
        );
        assert_eq!(
            state_view(Some(&report("odd"))).words,
            "Unknown state \"odd\""
        );
        let none = state_view(None);
        assert_eq!(
            (none.state.as_str(), none.words.as_str()),
            ("not_reported", "Not reported by this agent")
        );
        for s in ["failing", "off", "waiting", "starting", "odd", ""] {
            assert_ne!(state_view(Some(&report(s))).class, "b-ok", "{s}");
        }
        let b = |s: &str| BackupReport {
            state: s.into(),
            ..Default::default()
        };
        assert_eq!(backup_view(&b("ok")).class, "b-ok");
        for s in ["running", "failing", "off", "waiting", "odd"] {
            assert_ne!(backup_view(&b(s)).class, "b-ok", "{s}");
        }
    }

    #[test]
    fn points_in_time_are_read_as_utc() {
        assert_eq!(parse_at("2023-11-14 22:13"), Some(1_699_999_980));
        assert_eq!(parse_at("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(parse_at(" 2023-11-14 22:13:20 "), Some(1_700_000_000));
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14 24:00",
            "2023-11-14 22:60",
            "2023-11-14 2:13",
            "2023-11-14 22:13:20:1",
            "yesterday",
            "1700000000",
        ] {
            assert_eq!(parse_at(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_restore_form_reads_paths_per_line_or_semicolon_and_names_a_bad_time() {
        let f = Fields(
            [
                ("snapshot", " 1700000000-ab12 "),
                ("at", ""),
                ("paths", "/srv/a\n\n /srv/b ; /srv/c\n"),
                ("remove_new", "1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let req = RestoreForm::from_fields(&f).request().unwrap();
        assert_eq!(
            req,
            RestoreRequest {
                snapshot: Some("1700000000-ab12".into()),
                at: None,
                paths: vec!["/srv/a".into(), "/srv/b".into(), "/srv/c".into()],
                remove_new: true,
            }
        );
        let form = RestoreForm {
            at: "last tuesday".into(),
            ..Default::default()
        };
        assert_eq!(
            form.request().unwrap_err(),
            "at: \"last tuesday\" is not a time (YYYY-MM-DD HH:MM, UTC)"
        );
    }

    #[test]
    fn task_results_are_said_in_words() {
        let task = |kind: &str, state: &str, params, output: Option<serde_json::Value>| {
            let error = output
                .as_ref()
                .and_then(|o| o["error"].as_str())
                .map(str::to_string);
            TaskLine::of(BackupTask {
                id: "t1".into(),
                kind: kind.into(),
                state: state.into(),
                params,
                output,
                error,
                created_by: "otto".into(),
                created_at: 1_700_000_000,
                updated_at: 1_700_000_000,
                expires_at: None,
            })
        };
        let done = task(
            RESTORE_TASK,
            "done",
            json!({"snapshot": "s1", "paths": ["/srv/a", "/srv/b"], "remove_new": true}),
            Some(
                json!({"snapshot": "s1", "taken_at": 1_700_000_000, "restored": 12,
                "unchanged": 3, "removed": 2, "failed": ["/srv/a/x: busy"]}),
            ),
        );
        assert_eq!(
            done.what,
            "2 paths: /srv/a, /srv/b from snapshot s1, removing files the snapshot lacks"
        );
        assert_eq!(
            done.result,
            "From snapshot s1 (taken 2023-11-14 22:13:20 UTC): 12 restored, 3 unchanged, 2 removed, 1 failed"
        );
        assert_eq!(done.failed, ["/srv/a/x: busy"]);
        let failed = task(
            RESTORE_TASK,
            "failed",
            json!({"at": 1_700_000_000}),
            Some(json!({"error": "no snapshot at or before that time"})),
        );
        assert_eq!(
            failed.what,
            "everything from the newest snapshot at or before 2023-11-14 22:13:20 UTC"
        );
        assert_eq!(failed.result, "Failed: no snapshot at or before that time");
        let backup = task(
            BACKUP_TASK,
            "done",
            json!({}),
            Some(
                json!({"id": "s2", "at": 1, "directories": ["/srv"], "files": 4,
                "bytes": 4096, "new_bytes": 1024, "errors": 0, "truncated": false}),
            ),
        );
        assert_eq!(
            (backup.label, backup.result.as_str()),
            ("Back up now", "snapshot s2: 4 files, 4.0 KiB (1.0 KiB new)")
        );
        assert_eq!(task(BACKUP_TASK, "queued", json!({}), None).result, "");
        assert_eq!(
            task(BACKUP_TASK, "expired", json!({}), None).result,
            "Expired before the agent took it"
        );
    }
}
