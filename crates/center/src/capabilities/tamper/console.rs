//! A server's "Tamper protection" tab (`/servers/{id}/tamper`): the state its agent last
//! reported, said in words (only a `protected` report reads as protected; an agent that reports
//! nothing says so), the counts behind it, the unlock from the console, and the operators'
//! "Unlock for N minutes" and "Lock now" forms, which call the API operations. The words are
//! shared with the server page's "Tamper protection" row.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::tamper::{MAX_UNLOCK_MIN, TamperReport};

use crate::AppState;
use crate::api::servers::visible_server;
use crate::capabilities::server_tabs;
use crate::capabilities::tamper::api::{self as ops, UnlockBody};
use crate::console::forms::{Flash, seg};
use crate::console::{
    ConsoleError, Nav, PageResult, Post, Principal, Role, Session, Ts, fmt_utc, html_status,
    see_other,
};
use crate::web::page::{Tab, param, url};

/// Minutes the unlock form offers first.
const DEFAULT_UNLOCK_MIN: u32 = 30;

/// A server's tamper protection state in words, with the badge it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateView {
    /// The reported state (`protected`, `unlocked`, `failing`, `off`, `waiting`, `starting`,
    /// anything else an agent sends), or `not_reported`.
    pub state: String,
    pub words: String,
    /// Only `protected` is shown as good.
    pub class: &'static str,
}

/// The words for an agent's report; `None` is an agent that reports no tamper protection.
pub(crate) fn state_view(report: Option<&TamperReport>) -> StateView {
    let Some(r) = report else {
        return StateView {
            state: "not_reported".into(),
            words: "Not reported by this agent".into(),
            class: "b-muted",
        };
    };
    let reason = r.reason.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (words, class) = match r.state.as_str() {
        "protected" => ("Protected".to_string(), "b-ok"),
        "unlocked" => {
            let mut w = match r.until {
                Some(t) => format!("Unlocked until {} UTC", fmt_utc(t)),
                None => "Unlocked".to_string(),
            };
            if let Some(why) = reason {
                w.push_str(&format!(" ({why})"));
            }
            (w, "b-warn")
        }
        "failing" => (
            format!("Failing: {}", reason.unwrap_or("the agent gave no reason")),
            "b-bad",
        ),
        "off" => ("Off".to_string(), "b-muted"),
        "waiting" => ("Waiting for its policy".to_string(), "b-warn"),
        "starting" => ("Starting".to_string(), "b-warn"),
        other => (format!("Unknown state {other:?}"), "b-bad"),
    };
    StateView {
        state: r.state.clone(),
        words,
        class,
    }
}

/// The words for a server's last heartbeat (the server page's row).
pub(crate) fn heartbeat_state(heartbeat: &serde_json::Value) -> StateView {
    let report = heartbeat
        .get("tamper")
        .and_then(|v| serde_json::from_value::<TamperReport>(v.clone()).ok());
    state_view(report.as_ref())
}

/// The report's figures.
pub(crate) struct CountsView {
    pub directories: u64,
    pub files: u64,
    pub refused: u64,
    pub reverted: u64,
    pub last_verify: Option<Ts>,
    pub problems: Vec<String>,
}

/// The unlock from the console.
pub(crate) struct UnlockLine {
    pub until: Ts,
    pub by: String,
    pub at: Ts,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "tamper/server.html")]
pub(crate) struct ServerPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub state: StateView,
    pub counts: Option<CountsView>,
    pub reported_at: Option<Ts>,
    /// The agent is not online: the state is what it said last.
    pub agent_away: Option<String>,
    pub policy_enabled: bool,
    pub policy_directories: usize,
    pub project_id: String,
    pub unlock: Option<UnlockLine>,
    pub can_operate: bool,
    /// The unlock form's minutes: the default, or what was typed when it was refused.
    pub minutes: String,
    pub max_minutes: u32,
    pub alarms_href: String,
}

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    match param(m, "done").as_str() {
        "unlocked" => Some(Flash {
            class: "ok",
            text: "Unlocked; the server's agent gets the new configuration at once.".into(),
        }),
        "locked" => Some(Flash {
            class: "ok",
            text: "Locked; the server's agent gets the new configuration at once.".into(),
        }),
        _ => None,
    }
}

async fn render(
    state: &AppState,
    p: &Principal,
    id: &str,
    typed_minutes: Option<String>,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever else is asked.
    let t = ops::server_tamper(state, p, id).await?;
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let tabs = server_tabs(state, p, &srv.id, "tamper").await?;
    let agent_away = (srv.agent_status != hostward_store::status::ONLINE)
        .then(|| srv.agent_status.replace('_', " "));
    html_status(
        status,
        &ServerPage {
            nav: Nav::new(p, "servers"),
            can_operate: p.require(&srv.project_id, Role::Operator).is_ok(),
            alarms_href: url("/alarms", &[("type", "web_tamper"), ("server", &srv.id)]),
            sid: srv.id,
            sname: srv.name,
            tabs,
            flash,
            error,
            state: state_view(t.report.as_ref()),
            counts: t.report.map(|r| CountsView {
                directories: r.directories,
                files: r.files,
                refused: r.refused,
                reverted: r.reverted,
                last_verify: Ts::opt(r.last_verify),
                problems: r.problems,
            }),
            reported_at: Ts::opt(t.reported_at),
            agent_away,
            policy_enabled: t.policy_enabled,
            policy_directories: t.policy_directories,
            project_id: srv.project_id,
            unlock: t.unlock.map(|u| UnlockLine {
                until: Ts::at(u.until),
                by: u.by,
                at: Ts::at(u.at),
                active: u.active,
            }),
            minutes: typed_minutes.unwrap_or_else(|| DEFAULT_UNLOCK_MIN.to_string()),
            max_minutes: MAX_UNLOCK_MIN,
        },
    )
}

/// `GET /servers/{id}/tamper`.
pub async fn page(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render(&state, &p, &id, None, StatusCode::OK, flash(&m), None).await
}

fn back(id: &str, done: &str) -> String {
    url(&format!("/servers/{}/tamper", seg(id)), &[("done", done)])
}

/// `POST /servers/{id}/tamper/unlock`: "Unlock for N minutes" (operators). Minutes that are not
/// a whole number, or out of bounds, are shown again with the message.
pub async fn unlock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let typed = f.get("minutes").to_string();
    let refuse = |msg: String| {
        render(
            &state,
            &p,
            &id,
            Some(typed.clone()),
            StatusCode::BAD_REQUEST,
            None,
            Some(msg),
        )
    };
    let Ok(minutes) = typed.parse::<i64>() else {
        // Authorize before echoing anything back about the server.
        visible_server(&state, &p, &id, Role::Operator).await?;
        return refuse(format!("minutes: {typed:?} is not a whole number")).await;
    };
    match ops::unlock(&state, &p, &id, UnlockBody { minutes }).await {
        Ok(t) => Ok(see_other(&back(&t.server_id, "unlocked"))),
        // The operation checked the role before the minutes, so a 400 is for someone allowed.
        Err(e) if e.status == StatusCode::BAD_REQUEST => refuse(e.message).await,
        Err(e) => Err(ConsoleError::from(e)),
    }
}

/// `POST /servers/{id}/tamper/lock`: "Lock now" (operators).
pub async fn lock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    let t = ops::lock(&state, &p, &id).await?;
    Ok(see_other(&back(&t.server_id, "locked")))
}

/// The server tab and its forms.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{id}/tamper", get(page))
        .route("/servers/{id}/tamper/unlock", post(unlock))
        .route("/servers/{id}/tamper/lock", post(lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: &str) -> TamperReport {
        TamperReport {
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_protected_report_reads_as_protected() {
        let v = state_view(Some(&report("protected")));
        assert_eq!((v.words.as_str(), v.class), ("Protected", "b-ok"));
        let mut r = report("unlocked");
        r.until = Some(1_700_000_000);
        assert_eq!(
            state_view(Some(&r)).words,
            "Unlocked until 2023-11-14 22:13:20 UTC"
        );
        r.until = None;
        r.reason = Some("window 02:00-02:30".into());
        assert_eq!(state_view(Some(&r)).words, "Unlocked (window 02:00-02:30)");
        let mut r = report("failing");
        r.reason = Some("/srv/www: no such directory".into());
        let v = state_view(Some(&r));
        assert_eq!(
            (v.words.as_str(), v.class),
            ("Failing: /srv/www: no such directory", "b-bad")
        );
        r.reason = Some(" ".into());
        assert_eq!(
            state_view(Some(&r)).words,
            "Failing: the agent gave no reason"
        );
        assert_eq!(state_view(Some(&report("off"))).words, "Off");
        assert_eq!(
            state_view(Some(&report("odd"))).words,
            "Unknown state \"odd\""
        );
        let none = state_view(None);
        assert_eq!(
            (none.state.as_str(), none.words.as_str()),
            ("not_reported", "Not reported by this agent")
        );
        for s in [
            "unlocked", "failing", "off", "waiting", "starting", "odd", "",
        ] {
            assert_ne!(state_view(Some(&report(s))).class, "b-ok", "{s}");
        }
    }

    #[test]
    fn a_heartbeat_without_a_readable_report_is_not_reported() {
        let hb = serde_json::json!({"rss_bytes": 1});
        assert_eq!(heartbeat_state(&hb).state, "not_reported");
        let hb = serde_json::json!({"tamper": {"state": 3}});
        assert_eq!(heartbeat_state(&hb).state, "not_reported");
        let hb = serde_json::json!({"tamper": {"state": "protected", "directories": 2,
            "files": 10, "refused": 0, "reverted": 0}});
        assert_eq!(heartbeat_state(&hb).words, "Protected");
    }
}
