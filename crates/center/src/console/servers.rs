//! Server list and server detail, the protection switch and agent revocation.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;

use super::{
    ConsoleError, Nav, Opt, PageResult, Post, Role, Session, Ts, fmt_bytes, fmt_utc, html,
    project_names, see_other,
};
use crate::AppState;
use crate::api::servers::{self as ops, ServerQuery, SetProtection};
use hostward_store::Server;
use hostward_store::status;

pub const PER_PAGE: u32 = 50;

/// One server as the list and the detail page show it. Every string here may come from an agent
/// and is escaped by the templates.
pub(crate) struct ServerView {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub ips: Vec<String>,
    pub region: String,
    pub os: String,
    pub agent_status: String,
    pub agent_label: String,
    pub agent_reason: String,
    pub protection_status: String,
    pub protection_reason: String,
    pub risk_status: String,
    /// Why the risk status is pending: what has not reported yet.
    pub risk_reason: String,
    /// The risk counts in a few words (`3 critical · 1 weak pwd`); empty when nothing counts.
    pub risk_summary: String,
    pub last_seen: Option<Ts>,
    pub agent_version: String,
}

fn fact<'a>(s: &'a Server, key: &str) -> &'a str {
    s.facts.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

impl ServerView {
    pub fn new(s: &Server) -> ServerView {
        let os = match (fact(s, "os_name"), fact(s, "os_id"), fact(s, "os_version")) {
            ("", "", _) => String::new(),
            ("", id, ver) => format!("{id} {ver}").trim().to_string(),
            (name, _, _) => name.to_string(),
        };
        ServerView {
            id: s.id.clone(),
            name: s.name.clone(),
            hostname: s.hostname.clone(),
            ips: s.ip_addresses.clone(),
            region: s.region.clone(),
            os,
            agent_status: s.agent_status.clone(),
            agent_label: s.agent_status.replace('_', " "),
            agent_reason: s.agent_reason.clone(),
            protection_status: s.protection_status.clone(),
            protection_reason: s.protection_reason.clone(),
            risk_status: s.risk_status.clone(),
            risk_reason: s.risk_reason.clone(),
            risk_summary: risk_summary(&s.risk_counts),
            last_seen: Ts::opt(s.last_seen_at),
            agent_version: s.agent_version.clone(),
        }
    }
}

/// A server's risk counts (`risk_counts`: critical, high, medium, low, weak_passwords,
/// policy_failed, baseline_failed) in a few words: `3 critical · 1 weak pwd`. Empty when nothing counts.
pub(crate) fn risk_summary(counts: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for (key, label) in [
        ("critical", "critical"),
        ("high", "high"),
        ("medium", "medium"),
        ("low", "low"),
        ("weak_passwords", "weak pwd"),
        ("policy_failed", "policy failed"),
        ("baseline_failed", "baseline failed"),
    ] {
        match counts.get(key).and_then(|v| v.as_i64()) {
            Some(n) if n > 0 => parts.push(format!("{n} {label}")),
            _ => {}
        }
    }
    parts.join(" · ")
}

/// The list's query parameters; unknown values are kept as typed (they simply match nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub status: String,
    pub protection: String,
    pub risk: String,
    pub region: String,
    pub project: String,
    pub q: String,
    pub page: u32,
}

impl ListQuery {
    fn from_map(m: &HashMap<String, String>) -> ListQuery {
        let g = |k: &str| m.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        ListQuery {
            status: g("status"),
            protection: g("protection"),
            risk: g("risk"),
            region: g("region"),
            project: g("project"),
            q: g("q"),
            page: m
                .get("page")
                .and_then(|p| p.parse().ok())
                .filter(|p| *p >= 1)
                .unwrap_or(1),
        }
    }

    /// `/servers?…` with these parameters, empty ones left out.
    pub fn url(&self) -> String {
        let page = self.page.to_string();
        let pairs = [
            ("q", self.q.as_str()),
            ("status", &self.status),
            ("protection", &self.protection),
            ("risk", &self.risk),
            ("region", &self.region),
            ("project", &self.project),
            ("page", if self.page > 1 { &page } else { "" }),
        ];
        crate::web::page::url("/servers", &pairs)
    }

    /// The API query; filter values outside the known sets are dropped rather than refused.
    fn api(&self) -> ServerQuery {
        let o = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        let known =
            |s: &str, set: &[&str]| Some(s.to_string()).filter(|s| set.contains(&s.as_str()));
        ServerQuery {
            status: known(&self.status, status::AGENT_STATUSES),
            protection: known(&self.protection, status::PROTECTION_STATUSES),
            risk: known(&self.risk, status::RISK_STATUSES),
            project: o(&self.project),
            region: o(&self.region),
            q: o(&self.q),
            page: Some(self.page.max(1)),
            per_page: Some(PER_PAGE),
        }
    }
}

pub(crate) struct CountView {
    pub status: &'static str,
    pub label: String,
    pub n: i64,
    pub href: String,
    pub active: bool,
}

/// The part of the list page that htmx refreshes every 10 s.
pub(crate) struct ServerList {
    pub counts: Vec<CountView>,
    pub rows: Vec<ServerView>,
    pub total: i64,
    pub first: i64,
    pub last: i64,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    pub refresh_url: String,
    pub rendered_at: String,
}

#[derive(Template)]
#[template(path = "servers.html")]
pub(crate) struct ServersPage {
    pub nav: Nav,
    pub q: String,
    pub region: String,
    pub status_opts: Vec<Opt>,
    pub protection_opts: Vec<Opt>,
    pub risk_opts: Vec<Opt>,
    pub project_opts: Vec<Opt>,
    pub list: ServerList,
}

#[derive(Template)]
#[template(path = "servers_list.html")]
pub(crate) struct ServersPartial {
    pub list: ServerList,
}

fn opts(values: &[&str], selected: &str) -> Vec<Opt> {
    values
        .iter()
        .map(|v| Opt {
            value: v.to_string(),
            label: v.replace('_', " "),
            selected: *v == selected,
        })
        .collect()
}

pub(crate) async fn build_list(
    state: &AppState,
    p: &super::Principal,
    q: &ListQuery,
) -> Result<ServerList, ConsoleError> {
    let found = ops::list(state, p, q.api()).await?;
    let (items, total) = (found.items, found.total);
    let mut counts = Vec::new();
    for st in status::AGENT_STATUSES {
        let cq = ListQuery {
            status: st.to_string(),
            page: 1,
            ..q.clone()
        };
        let n = ops::list(
            state,
            p,
            ServerQuery {
                per_page: Some(1),
                ..cq.api()
            },
        )
        .await?
        .total;
        counts.push(CountView {
            status: st,
            label: st.replace('_', " "),
            n,
            href: cq.url(),
            active: q.status == *st,
        });
    }
    let per = i64::from(PER_PAGE);
    let page = i64::from(q.page);
    let first = if items.is_empty() {
        0
    } else {
        (page - 1) * per + 1
    };
    let last = if items.is_empty() {
        0
    } else {
        first + items.len() as i64 - 1
    };
    let prev_url = (q.page > 1).then(|| {
        ListQuery {
            page: q.page - 1,
            ..q.clone()
        }
        .url()
    });
    let next_url = (page * per < total).then(|| {
        ListQuery {
            page: q.page + 1,
            ..q.clone()
        }
        .url()
    });
    let now = hostward_store::now();
    Ok(ServerList {
        counts,
        rows: items.iter().map(ServerView::new).collect(),
        total,
        first,
        last,
        prev_url,
        next_url,
        refresh_url: q.url(),
        rendered_at: fmt_utc(now)[11..].to_string(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Session(p): Session,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let q = ListQuery::from_map(&params);
    let list = build_list(&state, &p, &q).await?;
    if headers.get("hx-request").is_some() {
        return html(&ServersPartial { list });
    }
    let projects = project_names(&state, &p).await?;
    let project_opts = projects
        .iter()
        .map(|(id, name)| Opt {
            value: id.clone(),
            label: name.clone(),
            selected: *id == q.project,
        })
        .collect();
    html(&ServersPage {
        nav: Nav::new(&p, "servers"),
        status_opts: opts(status::AGENT_STATUSES, &q.status),
        protection_opts: opts(status::PROTECTION_STATUSES, &q.protection),
        risk_opts: opts(status::RISK_STATUSES, &q.risk),
        project_opts,
        q: q.q.clone(),
        region: q.region.clone(),
        list,
    })
}

pub(crate) struct HistoryView {
    pub at: Ts,
    pub dimension: String,
    pub status: String,
    pub reason: String,
}

pub(crate) struct TaskView {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub created: Ts,
    pub updated: Ts,
    pub created_by: String,
}

#[derive(Template)]
#[template(path = "server.html")]
pub(crate) struct ServerPage {
    pub nav: Nav,
    pub s: ServerView,
    pub flash: Option<String>,
    pub project_name: String,
    pub agent_changed: Ts,
    pub protection_changed: Ts,
    pub risk_changed: Ts,
    pub can_operate: bool,
    pub can_admin: bool,
    pub has_agent: bool,
    pub revoked: bool,
    pub revoked_at: Option<Ts>,
    pub protection_wanted: bool,
    pub kernel: String,
    pub arch: String,
    pub boot_time: Option<Ts>,
    pub agent_id: String,
    pub hb_rss: String,
    pub hb_cpu: String,
    pub hb_outbox: String,
    /// What is wrong with the agent's outbox: failing writes, a reset, a replacement the center
    /// saw. Each may mean records were lost, so each is said plainly.
    pub outbox_problems: Vec<String>,
    pub hb_authlog: String,
    /// The runtime sensor from the last heartbeat; None when the agent reports none.
    pub sensor: Option<SensorView>,
    /// The file integrity monitor from the last heartbeat; None when the agent reports none.
    pub fim: Option<FimView>,
    /// Web tamper protection from the last heartbeat, in words ("Not reported by this agent"
    /// when it has none).
    pub tamper: crate::capabilities::tamper::console::StateView,
    pub config_version: i64,
    pub history: Vec<HistoryView>,
    pub tasks: Vec<TaskView>,
    pub tabs: Vec<crate::web::page::Tab>,
}

fn allowed(p: &super::Principal, project_id: &str, role: Role) -> bool {
    p.require(project_id, role).is_ok()
}

pub async fn detail(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let ops::ServerDetail { server: s, history } = ops::detail(&state, &p, &id).await?;
    let tasks = crate::api::tasks::list_for_server(&state, &p, &s.id)
        .await?
        .items;
    let tabs = crate::capabilities::server_tabs(&state, &p, &s.id, "overview").await?;
    let project_name = super::project_names(&state, &p)
        .await?
        .into_iter()
        .find(|(id, _)| *id == s.project_id)
        .map(|(_, name)| name)
        .unwrap_or_else(|| s.project_id.clone());
    let hb = &s.heartbeat;
    let hb_u64 = |k: &str| hb.get(k).and_then(|v| v.as_u64());
    let flash = match params.get("done").map(String::as_str) {
        Some("protection") => Some(
            "Protection switch saved; the agent gets the new configuration at once.".to_string(),
        ),
        Some("revoked") => Some("The agent was revoked.".to_string()),
        _ => None,
    };
    let page = ServerPage {
        nav: Nav::new(&p, "servers"),
        flash,
        project_name,
        agent_changed: Ts::at(s.agent_changed_at),
        protection_changed: Ts::at(s.protection_changed_at),
        risk_changed: Ts::at(s.risk_changed_at),
        can_operate: allowed(&p, &s.project_id, Role::Operator),
        can_admin: allowed(&p, &s.project_id, Role::Admin),
        has_agent: s.agent_id.is_some(),
        revoked: s.revoked_at.is_some(),
        revoked_at: Ts::opt(s.revoked_at),
        protection_wanted: s.protection_wanted,
        kernel: fact(&s, "kernel").to_string(),
        arch: fact(&s, "arch").to_string(),
        boot_time: Ts::opt(s.facts.get("boot_time").and_then(|v| v.as_i64())),
        agent_id: s.agent_id.clone().unwrap_or_default(),
        hb_rss: hb_u64("rss_bytes")
            .map(fmt_bytes)
            .unwrap_or_else(|| "–".into()),
        hb_cpu: hb
            .get("cpu_percent")
            .and_then(|v| v.as_f64())
            .map(|c| format!("{c:.1} %"))
            .unwrap_or_else(|| "–".into()),
        hb_outbox: match (hb_u64("outbox_depth"), hb_u64("outbox_dropped")) {
            (Some(d), Some(x)) if x > 0 => format!("{d} queued, {x} dropped"),
            (Some(d), _) => format!("{d} queued"),
            _ => "–".into(),
        },
        outbox_problems: outbox_problems(&s),
        hb_authlog: authlog_summary(hb.get("authlog")),
        sensor: sensor_view(hb.get("sensor")),
        fim: fim_view(hb.get("fim")),
        tamper: crate::capabilities::tamper::console::heartbeat_state(hb),
        config_version: s.config_version,
        history: history
            .into_iter()
            .map(|h| HistoryView {
                at: Ts::at(h.ts),
                dimension: h.dimension,
                status: h.status,
                reason: h.reason,
            })
            .collect(),
        tasks: tasks
            .into_iter()
            .take(20)
            .map(|t| TaskView {
                id: t.id,
                kind: t.kind,
                state: t.state,
                created: Ts::at(t.created_at),
                updated: Ts::at(t.updated_at),
                created_by: t.created_by,
            })
            .collect(),
        s: ServerView::new(&s),
        tabs,
    };
    html(&page)
}

pub async fn protection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let enabled = match f.get("enabled") {
        "true" | "on" | "1" => true,
        "false" | "off" | "0" => false,
        _ => {
            return Err(ConsoleError::bad_request(
                "Field enabled must be true or false.",
            ));
        }
    };
    let s = ops::set_protection(&state, &p, &id, SetProtection { enabled }).await?;
    Ok(see_other(&format!("/servers/{}?done=protection", s.id)))
}

#[derive(Template)]
#[template(path = "revoke.html")]
struct RevokePage {
    nav: Nav,
    id: String,
    name: String,
    hostname: String,
}

pub async fn revoke_confirm(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
) -> PageResult {
    let s = ops::visible_server(&state, &p, &id, Role::Admin).await?;
    if s.agent_id.is_none() || s.revoked_at.is_some() {
        return Ok(see_other(&format!("/servers/{}", s.id)));
    }
    html(&RevokePage {
        nav: Nav::new(&p, "servers"),
        id: s.id,
        name: s.name,
        hostname: s.hostname,
    })
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    if f.get("confirm") != "yes" {
        // Authorize before even showing the way to the confirmation page.
        let s = ops::visible_server(&state, &p, &id, Role::Admin).await?;
        return Ok(see_other(&format!("/servers/{}/revoke", s.id)));
    }
    let s = ops::revoke(&state, &p, &id).await?;
    Ok(see_other(&format!("/servers/{}?done=revoked", s.id)))
}

/// "N lines, M sign-in events, K skipped (x not UTF-8, …)" from the heartbeat's auth log
/// counters; a dash before the first heartbeat that carries them.
fn authlog_summary(v: Option<&serde_json::Value>) -> String {
    let Some(st) =
        v.and_then(|v| serde_json::from_value::<hostward_proto::AuthlogStats>(v.clone()).ok())
    else {
        return "–".into();
    };
    let mut out = format!("{} lines, {} sign-in events", st.lines, st.events);
    if st.skipped() > 0 {
        let parts: Vec<String> = [
            (st.skipped_non_utf8, "not UTF-8"),
            (st.skipped_too_long, "too long"),
            (st.skipped_unparsed, "unexpected shape"),
            (st.skipped_no_address, "no source address"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        out.push_str(&format!(
            ", {} skipped ({})",
            st.skipped(),
            parts.join(", ")
        ));
    }
    out
}

/// The runtime sensor row of the server page.
pub(crate) struct SensorView {
    /// `lsm`, `bpf`, `proc` or `off`, as the agent says.
    pub tier: String,
    /// A tier that watches nothing: said as a warning.
    pub off: bool,
    pub reason: String,
    /// `N events seen, M received`, then each non-zero loss.
    pub counters: String,
    /// Detectors this tier cannot run, each with why.
    pub unavailable: Vec<String>,
}

/// The heartbeat's sensor report as the server page says it; None when there is none (an
/// agent without a sensor, or before its first heartbeat).
fn sensor_view(v: Option<&serde_json::Value>) -> Option<SensorView> {
    let r: hostward_proto::behaviour::SensorReport = serde_json::from_value(v?.clone()).ok()?;
    let mut counters = format!("{} events seen, {} received", r.seen_kernel, r.received);
    for (n, what) in [
        (r.dropped_kernel, "lost in the kernel"),
        (r.dropped_user, "lost in the agent"),
        (
            r.incomplete,
            "incomplete (process gone before /proc was read)",
        ),
        (r.undecodable, "undecodable"),
    ] {
        if n > 0 {
            counters.push_str(&format!(", {n} {what}"));
        }
    }
    if r.processes > 0 {
        counters.push_str(&format!("; {} processes tracked", r.processes));
    }
    Some(SensorView {
        off: r.tier == "off" || r.tier.is_empty(),
        tier: if r.tier.is_empty() {
            "off".into()
        } else {
            r.tier
        },
        reason: r.reason,
        counters,
        unavailable: r.unavailable,
    })
}

/// The file integrity row of the server page.
pub(crate) struct FimView {
    /// The state in a word or two (`watching`, `scans only`, …).
    pub label: String,
    pub class: &'static str,
    /// What the state means for the server's files.
    pub meaning: &'static str,
    pub reason: String,
    /// Baseline size, real-time marks, changes, overflows and unreadable paths, zeros included:
    /// a missing figure must not read as a good one.
    pub figures: String,
    pub last_scan: Option<Ts>,
    /// The baseline hit its entry cap.
    pub truncated: bool,
    /// Unreadable paths and directories that do not exist, as the agent words them.
    pub problems: Vec<String>,
}

/// The heartbeat's file integrity report as the server page says it; None when there is none
/// (an agent without the monitor, or before its first heartbeat). A report this center cannot
/// read is said to be one, never shown as absent or fine.
fn fim_view(v: Option<&serde_json::Value>) -> Option<FimView> {
    let Ok(r) = serde_json::from_value::<hostward_proto::fim::FimReport>(v?.clone()) else {
        return Some(FimView {
            label: "unreadable".into(),
            class: "b-warn",
            meaning: "the agent reported its file integrity monitor in a form this center does not read",
            reason: String::new(),
            figures: String::new(),
            last_scan: None,
            truncated: false,
            problems: Vec::new(),
        });
    };
    let (label, class, meaning) = match r.state.as_str() {
        "watching" => (
            "watching",
            "b-ok",
            "baseline taken; changes are seen as they happen, with the process that made them",
        ),
        "scanning" => (
            "taking the baseline",
            "b-warn",
            "the first scan of the monitored paths is running",
        ),
        "scan_only" => (
            "scans only",
            "b-warn",
            "no real-time events: changes are found by scans, without the process that made them",
        ),
        "off" => (
            "off",
            "b-bad",
            "nothing is monitored: the policy or the server's protection is off",
        ),
        "failing" => ("failing", "b-bad", "nothing is monitored"),
        "waiting" => ("waiting", "b-warn", "not monitoring yet"),
        other => (other, "b-warn", "a state this center does not know"),
    };
    let figures = format!(
        "{} files in the baseline, {} directories watched in real time, {} changes reported since the agent started, {} event-queue overflows (each followed by a rescan), {} paths the last scan could not read",
        r.files, r.watched_dirs, r.changes, r.overflows, r.scan_errors
    );
    Some(FimView {
        label: label.to_string(),
        class,
        meaning,
        reason: r.reason.unwrap_or_default(),
        figures,
        last_scan: Ts::opt(r.last_scan),
        truncated: r.truncated,
        problems: r.problems,
    })
}

/// The server page's outbox warnings, from the agent's last heartbeat and the center's own
/// record of a replaced outbox.
fn outbox_problems(s: &hostward_store::Server) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = s.heartbeat.get("outbox_error").and_then(|v| v.as_str()) {
        out.push(format!("Outbox failing: {e}"));
    }
    if let Some(r) = s.heartbeat.get("outbox_reset") {
        let at = r.get("at").and_then(|v| v.as_i64()).map(|t| Ts::at(t).abs);
        let reason = r
            .get("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown reason");
        let moved = r
            .get("moved_to")
            .and_then(|v| v.as_str())
            .map(|m| format!(" (old file kept at {m})"))
            .unwrap_or_default();
        out.push(format!(
            "Outbox started anew{}: {reason}{moved}",
            at.map(|a| format!(" at {a}")).unwrap_or_default()
        ));
    }
    if let Some(t) = s.outbox_replaced_at {
        out.push(format!(
            "The agent connected with a new outbox at {}: records queued in the old one may be lost",
            Ts::at(t).abs
        ));
    }
    out
}
