//! The behaviour policy of a project, the files the agents' quarantines hold, and the tasks
//! that act on them: isolate and kill (from an alarm's process, or a pid and path given by
//! hand), restore and delete. Every task goes to the one server whose agent does the work; the
//! list of isolated files follows the agents' `isolated_file` records, never the tasks.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hostward_proto::alarm::Evidence;
use hostward_proto::behaviour::BehaviourPolicy;
use hostward_proto::malware;
use hostward_proto::quarantine::{
    DELETE_TASK, FileRef, ISOLATE_TASK, IsolateRequest, RESTORE_TASK,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::tasks::queue_for_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, fleet_scope, text_field};
use crate::auth::{Principal, Role};
use crate::capabilities::alarms::api::visible_alarm;
use crate::capabilities::{project_policy, set_project_policy};
use hostward_store::{IsolatedFileRow, TaskRow};

/// States of an isolated file, as its agent reports them.
pub mod file_state {
    pub const ISOLATED: &str = "isolated";
    pub const RESTORED: &str = "restored";
    pub const DELETED: &str = "deleted";
    pub const ALL: &[&str] = &[ISOLATED, RESTORED, DELETED];
}

/// Most files one action names.
pub const MAX_ACTION_FILES: usize = 1000;
/// An isolate task waits at most an hour for its agent: the pid it names means less the longer
/// it waits (the path still guards against a reused pid).
const ISOLATE_EXPIRY_SECS: i64 = 3600;
/// Restore and delete wait as long as any task.
const FILE_TASK_EXPIRY_SECS: i64 = crate::api::tasks::DEFAULT_EXPIRY_SECS;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BehaviourPolicyBody {
    #[schema(value_type = Object)]
    pub policy: BehaviourPolicy,
    pub version: i64,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IsolatedQuery {
    pub project: Option<String>,
    /// One server's files.
    pub server: Option<String>,
    /// isolated, restored, deleted; absent: every state.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IsolatedFileList {
    pub items: Vec<IsolatedFileRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Put the file back where it was, with its owner and mode (a `quarantine_restore` task).
    Restore,
    /// Delete the isolated copy for good (a `quarantine_delete` task).
    Delete,
}

impl FileAction {
    fn task_kind(self) -> &'static str {
        match self {
            FileAction::Restore => RESTORE_TASK,
            FileAction::Delete => DELETE_TASK,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Restore => "restore",
            FileAction::Delete => "delete",
        }
    }
}

/// One isolated file: its server and its quarantine entry's id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileKey {
    pub server_id: String,
    pub file_id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileActionBody {
    pub action: FileAction,
    pub files: Vec<FileKey>,
    /// Kept in the audit log.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileActionResult {
    /// One task per file, queued for its server's agent.
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<TaskRow>,
}

/// What to isolate: an alarm's process (`alarm_id`), or a process and/or file on a server
/// (`server_id` with `pid` and/or `path`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolateBody {
    #[serde(default)]
    pub alarm_id: Option<String>,
    #[serde(default)]
    pub server_id: Option<String>,
    /// The process whose tree is killed.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The executable the process must be running, or the file to isolate without a pid.
    #[serde(default)]
    pub path: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Operations

pub async fn behaviour_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<BehaviourPolicyBody, ApiError> {
    let (policy, version) = project_policy(state, p, project_id).await?;
    Ok(BehaviourPolicyBody { policy, version })
}

/// Replaces a project's behaviour policy (admin) and pushes it to its agents. A policy that
/// does not validate is refused whole with the field and index (`commands[3].pattern: …`).
pub async fn set_behaviour_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: BehaviourPolicy,
) -> Result<BehaviourPolicyBody, ApiError> {
    let version =
        set_project_policy(state, p, project_id, &policy, BehaviourPolicy::validate).await?;
    Ok(BehaviourPolicyBody { policy, version })
}

fn state_param(v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if file_state::ALL.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(ApiError::invalid_query(format!(
            "state: {s:?} is not one of {}",
            file_state::ALL.join(", ")
        ))),
    }
}

/// Isolated files of the caller's projects (or of one project or server), newest first.
pub async fn isolated_files(
    state: &AppState,
    p: &Principal,
    q: &IsolatedQuery,
) -> Result<IsolatedFileList, ApiError> {
    let st = state_param(q.state.as_deref())?;
    let items = match q.server.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => {
            let s = visible_server(state, p, id, Role::Viewer).await?;
            state
                .store
                .isolated_files(&[], Some(&s.id), st.as_deref())
                .await?
        }
        None => {
            let projects = fleet_scope(state, p, q.project.as_deref()).await?;
            state
                .store
                .isolated_files(&projects, None, st.as_deref())
                .await?
        }
    };
    Ok(IsolatedFileList { items })
}

/// One isolated file, if the caller has `min` in its project (404 when it has no role there).
pub async fn isolated_file(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    file_id: &str,
    min: Role,
) -> Result<IsolatedFileRow, ApiError> {
    lookup(state, p, server_id, file_id, min, "isolated file").await
}

async fn lookup(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    file_id: &str,
    min: Role,
    what: &str,
) -> Result<IsolatedFileRow, ApiError> {
    let f = match state.store.isolated_file(server_id, file_id).await? {
        Some(f) if p.role_in(&f.project_id).is_some() => f,
        _ => return Err(ApiError::not_found(what)),
    };
    p.require_on(what, &f.project_id, min)?;
    Ok(f)
}

/// Queues a restore or delete for each file (operator+ on each file's project; all or
/// nothing: every file is checked before any task is queued). Only isolated files can be
/// restored or deleted; another state is 409 naming the file.
pub async fn act_on_files(
    state: &AppState,
    p: &Principal,
    body: FileActionBody,
) -> Result<FileActionResult, ApiError> {
    if body.files.is_empty() || body.files.len() > MAX_ACTION_FILES {
        return Err(ApiError::invalid_body(format!(
            "files: 1 to {MAX_ACTION_FILES} files"
        )));
    }
    let note = match body.note.as_deref() {
        Some(n) if !n.trim().is_empty() => text_field("note", n, 1, 500)?,
        _ => String::new(),
    };
    let mut seen = HashSet::new();
    let mut files = Vec::with_capacity(body.files.len());
    for (i, key) in body.files.iter().enumerate() {
        if !seen.insert(key) {
            continue;
        }
        let what = format!("files[{i}]: isolated file");
        let f = lookup(
            state,
            p,
            &key.server_id,
            &key.file_id,
            Role::Operator,
            &what,
        )
        .await?;
        if f.state != file_state::ISOLATED {
            return Err(ApiError::conflict(format!(
                "files[{i}]: {} on {} is {}, not isolated; only isolated files can be {}d",
                f.path,
                f.server_name,
                f.state,
                body.action.as_str()
            )));
        }
        files.push(f);
    }
    let mut tasks = Vec::with_capacity(files.len());
    for f in &files {
        let params = serde_json::to_value(FileRef {
            id: f.file_id.clone(),
        })
        .expect("serialises");
        tasks.push(
            queue_for_server(
                state,
                p,
                (&f.project_id, &f.server_id),
                body.action.task_kind(),
                &params,
                FILE_TASK_EXPIRY_SECS,
            )
            .await?,
        );
        let mut detail = format!("{} {}", f.file_id, f.path);
        if !note.is_empty() {
            detail.push_str(&format!(" ({note})"));
        }
        let action = format!("quarantine.{}", body.action.as_str());
        audit(state, p, &f.project_id, &action, &f.server_id, &detail).await;
    }
    Ok(FileActionResult { tasks })
}

/// What isolating an alarm's evidence asks of the agent, or why it cannot (the message starts
/// with `alarm_id`). A malware or web-shell alarm names the detected file: that file is
/// isolated, and a process is killed only when it runs that very file (never the process that
/// wrote it, a web server or an editor). Any other alarm names a process: the chain's process
/// whose executable the evidence names as its file (the dropper that dialled out for a reverse
/// shell), else the alarm's own, by pid and executable together.
pub(crate) fn alarm_isolate_request(
    alarm_type: &str,
    ev: &Evidence,
) -> Result<IsolateRequest, String> {
    let file = ev.file.as_deref().filter(|f| !f.is_empty());
    let req = match file {
        Some(f) if alarm_type == malware::ALARM || alarm_type == malware::WEBSHELL_ALARM => {
            IsolateRequest {
                pid: ev.processes.iter().find(|p| p.exe == f).map(|p| p.pid),
                path: Some(f.to_string()),
                reason: alarm_type.to_string(),
            }
        }
        _ => {
            let named = file.and_then(|f| ev.processes.iter().find(|p| p.exe == f));
            let Some(proc) = named.or(ev.processes.first()) else {
                return Err("alarm_id: the alarm's evidence names no process to kill".into());
            };
            if proc.exe.is_empty() {
                return Err(
                    "alarm_id: the alarm's process has no known executable, so a reused pid could not be told apart; isolate it with server_id, pid and path"
                        .into(),
                );
            }
            IsolateRequest {
                pid: Some(proc.pid),
                path: Some(proc.exe.clone()),
                reason: alarm_type.to_string(),
            }
        }
    };
    req.validate()
        .map_err(|e| format!("alarm_id: the alarm's file or process cannot be isolated: {e}"))?;
    Ok(req)
}

/// Kills a process tree and isolates its executable (operator+): for an alarm, the process its
/// evidence names first (pid and executable, so a reused pid is not killed), or for a malware
/// or web-shell alarm its file ([`alarm_isolate_request`]); else the pid and/or path given for
/// a server. One `isolate_kill` task for that server's agent.
pub async fn isolate(
    state: &AppState,
    p: &Principal,
    body: IsolateBody,
) -> Result<TaskRow, ApiError> {
    let alarm_id = body.alarm_id.filter(|s| !s.is_empty());
    let server_id = body.server_id.filter(|s| !s.is_empty());
    let (project_id, server_id, req) = match (alarm_id, server_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_body(
                "alarm_id: give an alarm_id, or a server_id with pid and/or path, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid_body(
                "alarm_id: give an alarm_id, or a server_id with pid and/or path",
            ));
        }
        (Some(id), None) => {
            if body.pid.is_some() || body.path.is_some() {
                return Err(ApiError::invalid_body(
                    "pid: pid and path go with server_id; an alarm names its own process",
                ));
            }
            let a = visible_alarm(state, p, &id, Role::Operator).await?;
            let ev: Evidence = serde_json::from_value(a.evidence.clone()).unwrap_or_default();
            let req = alarm_isolate_request(&a.alarm_type, &ev).map_err(ApiError::conflict)?;
            (a.project_id, a.server_id, req)
        }
        (None, Some(id)) => {
            let s = visible_server(state, p, &id, Role::Operator).await?;
            let req = IsolateRequest {
                pid: body.pid,
                path: body.path.filter(|s| !s.is_empty()),
                reason: "manual".into(),
            };
            req.validate().map_err(ApiError::invalid_body)?;
            (s.project_id, s.id, req)
        }
    };
    let params = serde_json::to_value(&req).expect("serialises");
    let task = queue_for_server(
        state,
        p,
        (&project_id, &server_id),
        ISOLATE_TASK,
        &params,
        ISOLATE_EXPIRY_SECS,
    )
    .await?;
    let detail = format!(
        "pid {} {} ({})",
        req.pid.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        req.path.as_deref().unwrap_or("-"),
        req.reason
    );
    audit(
        state,
        p,
        &project_id,
        "quarantine.isolate",
        &server_id,
        &detail,
    )
    .await;
    Ok(task)
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers

#[utoipa::path(get, path = "/api/v1/projects/{id}/behaviour-policy", tag = "behaviour", params(("id" = String, Path)),
    responses((status = 200, body = BehaviourPolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<BehaviourPolicyBody>, ApiError> {
    Ok(Json(behaviour_policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/behaviour-policy", tag = "behaviour", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, body = BehaviourPolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<BehaviourPolicy>,
) -> Result<Json<BehaviourPolicyBody>, ApiError> {
    Ok(Json(set_behaviour_policy(&state, &p, &id, policy).await?))
}

#[utoipa::path(get, path = "/api/v1/isolated-files", tag = "behaviour", params(IsolatedQuery),
    responses((status = 200, body = IsolatedFileList), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<IsolatedQuery>,
) -> Result<Json<IsolatedFileList>, ApiError> {
    Ok(Json(isolated_files(&state, &p, &q).await?))
}

#[utoipa::path(post, path = "/api/v1/isolated-files/actions", tag = "behaviour", request_body = FileActionBody,
    responses((status = 200, body = FileActionResult), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn action_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<FileActionBody>,
) -> Result<Json<FileActionResult>, ApiError> {
    Ok(Json(act_on_files(&state, &p, body).await?))
}

#[utoipa::path(post, path = "/api/v1/isolated-files/isolate", tag = "behaviour", request_body = IsolateBody,
    responses((status = 201, body = Object), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn isolate_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<IsolateBody>,
) -> Result<(StatusCode, Json<TaskRow>), ApiError> {
    Ok((StatusCode::CREATED, Json(isolate(&state, &p, body).await?)))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of behaviour detection and response, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/behaviour-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/isolated-files", get(list_handler))
        .route("/api/v1/isolated-files/actions", post(action_handler))
        .route("/api/v1/isolated-files/isolate", post(isolate_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    policy_handler,
    set_policy_handler,
    list_handler,
    action_handler,
    isolate_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::alarm::ProcessInfo;

    fn proc(pid: u32, exe: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            exe: exe.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_malware_alarm_isolates_its_file_and_kills_only_what_runs_it() {
        let ev = |file: Option<&str>, processes: Vec<ProcessInfo>| Evidence {
            file: file.map(str::to_string),
            processes,
            ..Default::default()
        };
        let req = |ty: &str, e: &Evidence| alarm_isolate_request(ty, e);
        // Written by php-fpm, run by nothing: the file alone.
        let e = ev(
            Some("/var/www/up/shell.php"),
            vec![proc(40, "/usr/sbin/php-fpm8.2")],
        );
        assert_eq!(
            req("webshell", &e),
            Ok(IsolateRequest {
                pid: None,
                path: Some("/var/www/up/shell.php".into()),
                reason: "webshell".into(),
            })
        );
        // Running: that process too.
        let e = ev(
            Some("/tmp/.x/miner"),
            vec![proc(41, "/tmp/.x/miner"), proc(1, "/sbin/init")],
        );
        assert_eq!(req("malware", &e).unwrap().pid, Some(41));
        // No file named: nothing to isolate.
        assert!(req("malware", &ev(None, vec![])).is_err());
        // Any other alarm names a process, never a bare file (an important file changed is
        // /etc/passwd, not something to take away).
        let e = ev(Some("/etc/passwd"), vec![]);
        let err = req("important_file_change", &e).unwrap_err();
        assert!(err.contains("names no process"), "{err}");
        let e = ev(
            Some("/tmp/.x/sh"),
            vec![proc(7, "/bin/bash"), proc(8, "/tmp/.x/sh")],
        );
        assert_eq!(
            req("reverse_shell", &e).unwrap(),
            IsolateRequest {
                pid: Some(8),
                path: Some("/tmp/.x/sh".into()),
                reason: "reverse_shell".into(),
            }
        );
    }
}
