//! Alarm and brute-force defence pages: the fleet's alarms (filters, paging, CSV, handling),
//! one alarm with its evidence (the process chain drawn as a tree) and handling history, the
//! firewall blocks the agents report (with manual block and unblock), the alarm whitelist and
//! the per-project brute-force policy.
//!
//! Every page reads and writes through [`crate::capabilities::alarms::api`], so it shows and allows exactly
//! what the REST API does for the same caller; objects of other projects answer 404 there.
//! Evidence (user names, log lines) is attacker-controlled text: the templates escape it, none
//! is marked safe.
//!
//! Forms that select many alarms name each checkbox `alarm_<id>`: the console's form reader
//! keeps one value per name, and distinct names keep every selection without any script.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::Severity;
use hostward_proto::alarm::{ALARM_TYPES, Evidence, ProcessInfo, alarm_type};
use hostward_proto::bruteforce::{MAX_USUAL_LOGIN_IPS, MAX_WHITELIST, Policy};
use hostward_proto::malware;

use crate::AppState;
use crate::api::servers::ServerQuery;
use crate::capabilities::alarms::api::{
    self as ops, AlarmActionBody, AlarmQuery, BlockBody, BlockedQuery, MAX_BLOCK_MINUTES,
    NewWhitelistRule,
};
use crate::console::forms::{
    Flash, lines, opt, opts, policy_project, project_choice, required_project, safe_back,
    save_policy_form, seg, severity_opts, truthy, with_done,
};
use crate::console::{
    Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html, html_status,
    project_names, project_opts, see_other,
};
use crate::findings::{
    self, ActionBar, ActionButton, ActionsView, HistoryView, RuleFacts, RuleMeta,
};
use crate::web::labels::{severity_class, severity_label};
use crate::web::page::{Pager, page_param, param, url};
use hostward_store::{AlarmRow, BlockedIp, alarm_state};

/// Rows per page of the alarm list.
pub const PER_PAGE: i64 = 50;
/// Servers offered in the block form, at most (the API's largest page).
const PICK_SERVERS: u32 = 500;
/// The time-range shortcuts of the alarm list: value, label, seconds back from now.
const RANGES: &[(&str, &str, i64)] = &[
    ("24h", "last 24 h", 86_400),
    ("7d", "last 7 days", 7 * 86_400),
    ("30d", "last 30 days", 30 * 86_400),
];

// ---------------------------------------------------------------------------------------------
// Small pure helpers

/// Where an alarm action may return to: an alarm page of this console.
const BACK: &[&str] = &["/alarms"];

fn known_severity(s: &str) -> String {
    Severity::parse(s)
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

fn known_state(s: &str) -> String {
    Some(s)
        .filter(|s| alarm_state::ALL.contains(s))
        .unwrap_or_default()
        .to_string()
}

fn known_type(s: &str) -> String {
    alarm_type(s)
        .map(|t| t.code.to_string())
        .unwrap_or_default()
}

fn known_range(s: &str) -> String {
    RANGES
        .iter()
        .find(|r| r.0 == s)
        .map(|r| r.0.to_string())
        .unwrap_or_default()
}

/// `YYYY-MM-DD` (UTC) to the Unix time of its first second; None for anything else.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y) && digits(m) && digits(d)) {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

pub(crate) fn state_class(s: &str) -> &'static str {
    match s {
        alarm_state::UNHANDLED => "b-bad",
        alarm_state::HANDLED => "b-ok",
        _ => "b-muted",
    }
}

/// The ATT&CK page of a technique id (`T1110.001` -> `.../T1110/001/`).
fn mitre_url(technique_id: &str) -> String {
    if technique_id.is_empty()
        || !technique_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return String::new();
    }
    format!(
        "https://attack.mitre.org/techniques/{}/",
        technique_id.replace('.', "/")
    )
}

fn type_title(code: &str) -> String {
    alarm_type(code)
        .map(|t| t.title.to_string())
        .unwrap_or_else(|| code.replace('_', " "))
}

fn type_opts(selected: &str) -> Vec<Opt> {
    let codes: Vec<&str> = ALARM_TYPES.iter().map(|t| t.code).collect();
    opts(&codes, selected, type_title)
}

fn state_opts(selected: &str) -> Vec<Opt> {
    opts(alarm_state::ALL, selected, str::to_string)
}

fn range_opts(selected: &str) -> Vec<Opt> {
    let values: Vec<&str> = RANGES.iter().map(|r| r.0).collect();
    opts(&values, selected, |v| {
        RANGES
            .iter()
            .find(|r| r.0 == v)
            .map(|r| r.1.to_string())
            .unwrap_or_default()
    })
}

/// A confirmation after a redirect. Only fixed texts and numbers: a link must not be able to
/// put words into the page.
fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let n: usize = m.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let ok = |text: String| Some(Flash { class: "ok", text });
    match m.get("done").map(String::as_str)? {
        "handle" => ok(format!("{n} alarm(s) marked handled.")),
        "ignore" => ok(format!("{n} alarm(s) ignored.")),
        "reopen" => ok(format!("{n} alarm(s) reopened.")),
        "whitelist" => ok(format!(
            "{n} alarm(s) ignored, and future alarms of the same type from the same address will be stored as ignored."
        )),
        "unblock" => ok(format!(
            "Unblock queued for {n} alarm(s): the agents lift the firewall blocks of their source addresses."
        )),
        "login_whitelist" => ok(format!(
            "{n} alarm(s) handled; their source addresses are now usual login addresses of their servers."
        )),
        "none" => Some(Flash {
            class: "warn",
            text: "Select at least one alarm first.".into(),
        }),
        "blocked" => ok(
            "Block queued: the agent adds the address to its firewall and reports the block.".into(),
        ),
        "unblocked" => ok(
            "Unblock queued: the agent lifts the block and reports it; the list follows its report."
                .into(),
        ),
        "rule" => ok("Whitelist rule created: matching alarms are now stored as ignored.".into()),
        "rule_deleted" => ok(
            "Whitelist rule deleted. Alarms it ignored stay ignored; new ones are no longer covered."
                .into(),
        ),
        "saved" => ok("Brute-force policy saved; the project's agents apply it at once.".into()),
        "isolate" => ok(
            "Isolate and kill queued: the agent kills the process tree, isolates its executable and reports the file under Isolated files."
                .into(),
        ),
        "malware_whitelist" => ok(
            "Added to the project's malware whitelist and marked handled; the project's agents raise no alarm for it from now on."
                .into(),
        ),
        "malware_whitelist_had" => ok(
            "The project's malware whitelist already had it; the alarm is marked handled."
                .into(),
        ),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Views

pub(crate) struct AlarmView {
    pub id: String,
    pub href: String,
    pub server_id: String,
    pub server_name: String,
    pub alarm_type: String,
    pub title: String,
    pub severity: String,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub tactic: String,
    pub technique: String,
    pub technique_url: String,
    pub source_ip: String,
    pub count: i64,
    pub first_seen: Ts,
    pub last_seen: Ts,
    pub state: String,
    pub state_class: &'static str,
    pub note: String,
    /// The caller may handle alarms of this project.
    pub selectable: bool,
}

fn alarm_view(a: &AlarmRow, p: &Principal) -> AlarmView {
    let technique_id = alarm_type(&a.alarm_type)
        .map(|t| t.mitre.technique_id)
        .unwrap_or("");
    AlarmView {
        id: a.id.clone(),
        href: format!("/alarms/{}", seg(&a.id)),
        server_id: a.server_id.clone(),
        server_name: a.server_name.clone(),
        alarm_type: a.alarm_type.clone(),
        title: if a.title.is_empty() {
            type_title(&a.alarm_type)
        } else {
            a.title.clone()
        },
        severity: a.severity.clone(),
        sev_label: severity_label(&a.severity),
        sev_class: severity_class(&a.severity),
        tactic: a.tactic.clone(),
        technique: a.technique.clone(),
        technique_url: mitre_url(technique_id),
        source_ip: a.source_ip.clone().unwrap_or_default(),
        count: a.count,
        first_seen: Ts::at(a.first_seen),
        last_seen: Ts::at(a.last_seen),
        state: a.state.clone(),
        state_class: state_class(&a.state),
        note: a.note.clone(),
        selectable: p.require(&a.project_id, Role::Operator).is_ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// /alarms

#[derive(Template)]
#[template(path = "alarms/list.html")]
pub(crate) struct AlarmsPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub project_opts: Vec<Opt>,
    pub type_opts: Vec<Opt>,
    pub severity_opts: Vec<Opt>,
    pub state_opts: Vec<Opt>,
    pub range_opts: Vec<Opt>,
    pub server: String,
    pub since: String,
    pub until: String,
    pub rows: Vec<AlarmView>,
    pub pager: Pager,
    pub csv_url: String,
    pub filtered: bool,
    pub can_act: bool,
    /// The Unblock button is offered on the list always (the API refuses alarms without a
    /// source address).
    pub actions: ActionsView,
}

/// The alarm list's filters as read from its query; nonsense values are dropped (they come
/// from a form, and "any" is the honest reading of nonsense).
struct AlarmParams {
    project: String,
    alarm_type: String,
    severity: String,
    server: String,
    state: String,
    range: String,
    since: String,
    until: String,
    page: i64,
}

impl AlarmParams {
    fn from_map(m: &HashMap<String, String>) -> AlarmParams {
        let date = |k: &str| Some(param(m, k)).filter(|d| parse_date(d).is_some());
        AlarmParams {
            project: param(m, "project"),
            alarm_type: known_type(&param(m, "type")),
            severity: known_severity(&param(m, "severity")),
            server: param(m, "server"),
            state: known_state(&param(m, "state")),
            range: known_range(&param(m, "range")),
            since: date("since").unwrap_or_default(),
            until: date("until").unwrap_or_default(),
            page: page_param(m),
        }
    }

    /// Unix bounds: a range shortcut wins over the `since` date; `until` covers its whole day.
    fn bounds(&self, now: i64) -> (Option<i64>, Option<i64>) {
        let since = match RANGES.iter().find(|r| r.0 == self.range) {
            Some(r) => Some(now - r.2),
            None => parse_date(&self.since),
        };
        (since, parse_date(&self.until).map(|t| t + 86_399))
    }

    fn pairs<'a>(&'a self, page: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("project", &self.project),
            ("type", &self.alarm_type),
            ("severity", &self.severity),
            ("server", &self.server),
            ("state", &self.state),
            ("range", &self.range),
            ("since", &self.since),
            ("until", &self.until),
            ("page", page),
        ]
    }

    fn link(&self, page: i64) -> String {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        url("/alarms", &self.pairs(&page))
    }

    fn api(&self, now: i64) -> AlarmQuery {
        let (since, until) = self.bounds(now);
        AlarmQuery {
            project: opt(&self.project),
            server: opt(&self.server),
            alarm_type: opt(&self.alarm_type),
            severity: opt(&self.severity),
            state: opt(&self.state),
            since,
            until,
            page: Some(self.page),
            per_page: Some(PER_PAGE),
            format: None,
        }
    }

    /// The API's CSV of the same filters (absolute times, so the file matches the page).
    fn csv_url(&self, now: i64) -> String {
        let (since, until) = self.bounds(now);
        let since = since.map(|t| t.to_string()).unwrap_or_default();
        let until = until.map(|t| t.to_string()).unwrap_or_default();
        url(
            "/api/v1/alarms",
            &[
                ("format", "csv"),
                ("project", &self.project),
                ("server", &self.server),
                ("type", &self.alarm_type),
                ("severity", &self.severity),
                ("state", &self.state),
                ("since", &since),
                ("until", &until),
            ],
        )
    }
}

/// `GET /alarms?project=&type=&severity=&server=&state=&range=&since=&until=&page=`
pub async fn list(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let ap = AlarmParams::from_map(&m);
    let now = hostward_store::now();
    let found = ops::list(&state, &p, &ap.api(now)).await?;
    let rows: Vec<AlarmView> = found.items.iter().map(|a| alarm_view(a, &p)).collect();
    let pager = Pager::new(ap.page, PER_PAGE, rows.len(), found.total, |n| ap.link(n));
    html(&AlarmsPage {
        nav: Nav::new(&p, "alarms"),
        section: "alarms",
        flash: flash(&m),
        project_opts: project_opts(&state, &p, &ap.project, Role::Viewer).await?,
        type_opts: type_opts(&ap.alarm_type),
        severity_opts: severity_opts(&ap.severity),
        state_opts: state_opts(&ap.state),
        range_opts: range_opts(&ap.range),
        can_act: rows.iter().any(|r| r.selectable),
        rows,
        pager,
        csv_url: ap.csv_url(now),
        filtered: ap.pairs("").iter().any(|(_, v)| !v.is_empty()),
        actions: ACTIONS.view(&p, &ap.link(ap.page), true),
        server: ap.server,
        since: ap.since,
        until: ap.until,
    })
}

/// `POST /alarms/actions`: handle, ignore, reopen, whitelist or unblock the checked alarms
/// (`alarm_<id>` fields), then back to the page the form was on.
pub async fn act(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    ACTIONS
        .submit(&f, |action, alarm_ids, note| async move {
            let body = AlarmActionBody {
                action,
                alarm_ids,
                note,
            };
            Ok(ops::act(&state, &p, body).await?.changed)
        })
        .await
}

/// The alarms' bulk actions, in the order of the buttons.
const ACTIONS: ActionBar = ActionBar {
    checkbox_prefix: "alarm_",
    class: "alarm-actions",
    buttons: &[
        ActionButton {
            value: "handle",
            label: "Handle",
            class: "primary act-handle",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "ignore",
            label: "Ignore",
            class: "act-ignore",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "reopen",
            label: "Reopen",
            class: "act-reopen",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "whitelist",
            label: "Whitelist",
            class: "act-whitelist",
            title: "Ignore, and store future alarms of the same type from the same address as ignored",
            conditional: false,
        },
        ActionButton {
            value: "login_whitelist",
            label: "Trust login address",
            class: "act-login-whitelist",
            title: "Add the source address to its server's usual login addresses (needs project admin), and mark handled",
            conditional: false,
        },
        ActionButton {
            value: "unblock",
            label: "Unblock",
            class: "danger act-unblock",
            title: "Lift the firewall block of the source address on its server, and mark handled",
            conditional: true,
        },
    ],
    back: BACK,
    home: "/alarms",
};

// ---------------------------------------------------------------------------------------------
// /alarms/{id}

/// One process of an alarm's chain as the page shows it. Every string came from the agent.
pub(crate) struct ProcessNode {
    pub pid: u32,
    pub exe: String,
    pub cmdline: String,
    /// `alice (uid 1000, euid 0)`; the effective uid only when it differs.
    pub user: String,
    pub cwd: String,
    pub tty: String,
    pub sha256: String,
    pub sha_short: String,
    /// The alarm's own process (the deepest node).
    pub own: bool,
}

/// The chain as the page draws it: the session leader (oldest ancestor) first, the alarm's
/// own process last. The evidence lists it the other way round.
pub(crate) fn process_chain(processes: &[ProcessInfo]) -> Vec<ProcessNode> {
    processes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| {
            let ids = if p.uid == p.euid {
                format!("uid {}", p.uid)
            } else {
                format!("uid {}, euid {}", p.uid, p.euid)
            };
            let sha256 = p.sha256.clone().unwrap_or_default();
            ProcessNode {
                pid: p.pid,
                exe: p.exe.clone(),
                cmdline: p.cmdline.clone(),
                user: if p.user.is_empty() {
                    ids
                } else {
                    format!("{} ({ids})", p.user)
                },
                cwd: p.cwd.clone().unwrap_or_default(),
                tty: p.tty.clone().unwrap_or_default(),
                sha_short: sha256.chars().take(12).collect(),
                sha256,
                own: i == 0,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "alarms/detail.html")]
pub(crate) struct AlarmPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub a: AlarmView,
    pub project_name: String,
    pub tactic_url: String,
    pub category: String,
    pub hss_code: String,
    pub recommendation: String,
    pub users: Vec<String>,
    pub service: String,
    pub lines: Vec<String>,
    pub blocked_until: Option<Ts>,
    pub processes: Vec<ProcessNode>,
    pub file: String,
    pub peer: String,
    pub rule: String,
    pub details: Vec<String>,
    pub response: String,
    /// A malicious file's SHA-256, the family its rule names, and its owner.
    pub sha256: String,
    pub family: String,
    pub owner: String,
    pub history: HistoryView,
    pub can_act: bool,
    /// Operators may isolate and kill the alarm's process: the evidence names it with its
    /// executable (the agent checks it, so a reused pid is not killed), or, for a malware or
    /// web-shell alarm, the file.
    pub can_isolate: bool,
    /// What "isolate" does here: the file alone (no process runs it), not a process tree.
    pub isolate_file_only: bool,
    pub isolate_path: String,
    /// The project's admins may whitelist a malware or web-shell alarm's file by hash or path
    /// (in the project's malware policy): the action and what it would add.
    pub whitelist_hash: Option<String>,
    pub whitelist_path: Option<String>,
    pub malware_policy_url: String,
    pub actions: ActionsView,
    pub whitelist_url: String,
}

/// `GET /alarms/{id}`: one alarm, its evidence and who did what with it.
pub async fn detail(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let d = ops::detail(&state, &p, &id).await?;
    let a = &d.alarm;
    // Evidence the center stored is well-formed; anything else shows as none.
    let ev: Evidence = serde_json::from_value(a.evidence.clone()).unwrap_or_default();
    let project_name = project_names(&state, &p)
        .await?
        .into_iter()
        .find(|(pid, _)| *pid == a.project_id)
        .map(|(_, n)| n)
        .unwrap_or_default();
    let tactic_id = alarm_type(&a.alarm_type)
        .map(|t| t.mitre.tactic_id)
        .unwrap_or("");
    let source = a.source_ip.clone().unwrap_or_default();
    let isolate =
        crate::capabilities::behaviour::api::alarm_isolate_request(&a.alarm_type, &ev).ok();
    let is_malware = a.alarm_type == malware::ALARM || a.alarm_type == malware::WEBSHELL_ALARM;
    let may_whitelist = is_malware && p.require(&a.project_id, Role::Admin).is_ok();
    let offer = |v: &Option<String>| v.clone().filter(|v| may_whitelist && !v.is_empty());
    let (whitelist_hash, whitelist_path) = (offer(&ev.sha256), offer(&ev.file));
    html(&AlarmPage {
        nav: Nav::new(&p, "alarms"),
        flash: flash(&m),
        project_name,
        tactic_url: if tactic_id.starts_with("TA")
            && tactic_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            format!("https://attack.mitre.org/tactics/{tactic_id}/")
        } else {
            String::new()
        },
        category: d.category.clone(),
        hss_code: d.hss_code.clone().unwrap_or_default(),
        recommendation: d.recommendation.clone(),
        users: ev.users,
        service: ev.service.unwrap_or_default(),
        lines: ev.lines,
        blocked_until: Ts::opt(ev.blocked_until),
        processes: process_chain(&ev.processes),
        file: ev.file.unwrap_or_default(),
        peer: ev.peer.unwrap_or_default(),
        rule: ev.rule.unwrap_or_default(),
        details: ev.details,
        response: ev.response.unwrap_or_default(),
        whitelist_hash,
        whitelist_path,
        malware_policy_url: url("/alarms/malware-policy", &[("project", &a.project_id)]),
        sha256: ev.sha256.unwrap_or_default(),
        family: ev.family.unwrap_or_default(),
        owner: ev.owner.unwrap_or_default(),
        history: findings::history("alarm-history", &d.history, state_class),
        can_act: p.require(&a.project_id, Role::Operator).is_ok(),
        can_isolate: p.require(&a.project_id, Role::Operator).is_ok() && isolate.is_some(),
        isolate_file_only: isolate.as_ref().is_some_and(|r| r.pid.is_none()),
        isolate_path: isolate.and_then(|r| r.path).unwrap_or_default(),
        actions: ACTIONS.view(&p, &format!("/alarms/{}", seg(&a.id)), !source.is_empty()),
        whitelist_url: url(
            "/alarms/whitelist",
            &[
                ("type", &a.alarm_type),
                ("source_ip", &source),
                ("project", &a.project_id),
            ],
        ),
        a: alarm_view(a, &p),
    })
}

// ---------------------------------------------------------------------------------------------
// /alarms/blocked

pub(crate) struct BlockView {
    pub server_id: String,
    pub server_name: String,
    pub addr: String,
    pub reason: String,
    pub service: String,
    pub blocked_at: Ts,
    pub expires_at: Option<Ts>,
    pub unblocked_at: Option<Ts>,
    pub active: bool,
    pub can_unblock: bool,
}

fn block_view(b: &BlockedIp, p: &Principal) -> BlockView {
    BlockView {
        server_id: b.server_id.clone(),
        server_name: b.server_name.clone(),
        addr: b.addr.clone(),
        reason: b.reason.replace('_', " "),
        service: b.service.clone().unwrap_or_default(),
        blocked_at: Ts::at(b.blocked_at),
        expires_at: Ts::opt(b.expires_at),
        unblocked_at: Ts::opt(b.unblocked_at),
        active: b.active,
        can_unblock: b.active && p.require(&b.project_id, Role::Operator).is_ok(),
    }
}

pub(crate) struct ServerPick {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

/// What the block form had, to show it again after a refusal.
#[derive(Default)]
pub(crate) struct BlockForm {
    pub server: String,
    pub addr: String,
    pub minutes: String,
}

#[derive(Template)]
#[template(path = "alarms/blocked.html")]
pub(crate) struct BlockedPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_opts: Vec<Opt>,
    pub server: String,
    pub history: bool,
    pub rows: Vec<BlockView>,
    pub active_count: usize,
    pub back: String,
    pub servers: Vec<ServerPick>,
    pub more_servers: bool,
    pub form: BlockForm,
    pub max_minutes: u32,
}

async fn render_blocked(
    state: &AppState,
    p: &Principal,
    m: &HashMap<String, String>,
    form: Option<BlockForm>,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let project = param(m, "project");
    let server = param(m, "server");
    let history = matches!(param(m, "history").as_str(), "1" | "on" | "true");
    let list = ops::blocked(
        state,
        p,
        opt(&server).as_deref(),
        &BlockedQuery {
            project: opt(&project),
            active: Some(!history),
        },
    )
    .await?;
    let rows: Vec<BlockView> = list.items.iter().map(|b| block_view(b, p)).collect();
    let form = form.unwrap_or_else(|| BlockForm {
        server: server.clone(),
        minutes: "60".into(),
        ..Default::default()
    });
    let operator_projects = project_opts(state, p, "", Role::Operator).await?;
    let (servers, more_servers) = if operator_projects.is_empty() {
        (Vec::new(), false)
    } else {
        let names: HashMap<String, String> = project_names(state, p).await?.into_iter().collect();
        let list = crate::api::servers::list(
            state,
            p,
            ServerQuery {
                per_page: Some(PICK_SERVERS),
                ..Default::default()
            },
        )
        .await?;
        let more = list.total > list.items.len() as i64;
        let many_projects = operator_projects.len() > 1;
        let mut picks: Vec<ServerPick> = list
            .items
            .into_iter()
            .filter(|s| p.require(&s.project_id, Role::Operator).is_ok())
            .filter(|s| s.agent_id.is_some() && s.revoked_at.is_none())
            .map(|s| ServerPick {
                label: if many_projects {
                    format!(
                        "{} ({})",
                        s.name,
                        names.get(&s.project_id).cloned().unwrap_or_default()
                    )
                } else {
                    s.name
                },
                selected: s.id == form.server,
                id: s.id,
            })
            .collect();
        picks.sort_by(|a, b| a.label.cmp(&b.label));
        (picks, more)
    };
    let back = url(
        "/alarms/blocked",
        &[
            ("project", &project),
            ("server", &server),
            ("history", if history { "1" } else { "" }),
        ],
    );
    html_status(
        status,
        &BlockedPage {
            nav: Nav::new(p, "alarms"),
            section: "blocked",
            flash: flash(m),
            error,
            project_opts: project_opts(state, p, &project, Role::Viewer).await?,
            server,
            history,
            active_count: rows.iter().filter(|r| r.active).count(),
            rows,
            back,
            servers,
            more_servers,
            form,
            max_minutes: MAX_BLOCK_MINUTES,
        },
    )
}

/// `GET /alarms/blocked?project=&server=&history=1`
pub async fn blocked(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    render_blocked(&state, &p, &m, None, StatusCode::OK, None).await
}

/// `POST /alarms/blocked`: block an address on one server for some minutes (a `block_ip` task).
pub async fn block(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let form = BlockForm {
        server: f.get("server").to_string(),
        addr: f.get("addr").to_string(),
        minutes: f.get("minutes").to_string(),
    };
    let refuse = |msg: String, status: StatusCode, form: BlockForm| {
        let state = state.clone();
        let p = p.clone();
        async move { render_blocked(&state, &p, &HashMap::new(), Some(form), status, Some(msg)).await }
    };
    if form.server.is_empty() {
        return refuse(
            "server: choose a server.".into(),
            StatusCode::BAD_REQUEST,
            form,
        )
        .await;
    }
    let Ok(minutes) = form.minutes.parse::<u32>() else {
        // Authorize before echoing anything back about the server.
        crate::api::servers::visible_server(&state, &p, &form.server, Role::Operator).await?;
        return refuse(
            format!("minutes: a whole number, 1 to {MAX_BLOCK_MINUTES}"),
            StatusCode::BAD_REQUEST,
            form,
        )
        .await;
    };
    let body = BlockBody {
        addr: form.addr.clone(),
        minutes,
    };
    match ops::block(&state, &p, &form.server, body).await {
        Ok(_) => Ok(see_other("/alarms/blocked?done=blocked&n=1")),
        Err(e) if e.status == StatusCode::BAD_REQUEST => refuse(e.message, e.status, form).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /alarms/blocked/unblock` (`server`, `addr`): lift a block now (an `unblock_ip` task).
pub async fn unblock(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    ops::unblock(&state, &p, f.get("server"), f.get("addr")).await?;
    let back = safe_back(f.get("back"), BACK).unwrap_or("/alarms/blocked");
    Ok(see_other(&with_done(back, "unblocked", 1)))
}

// ---------------------------------------------------------------------------------------------
// /alarms/whitelist

pub(crate) struct RuleView {
    pub meta: RuleMeta,
    pub alarm_type: String,
    pub type_title: String,
    pub source_ip: String,
}

#[derive(Default)]
pub(crate) struct RuleForm {
    pub project: String,
    pub alarm_type: String,
    pub source_ip: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "alarms/whitelist.html")]
pub(crate) struct WhitelistPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_opts: Vec<Opt>,
    pub rows: Vec<RuleView>,
    pub operator_projects: Vec<Opt>,
    pub type_opts: Vec<Opt>,
    pub form: RuleForm,
}

async fn render_whitelist(
    state: &AppState,
    p: &Principal,
    m: &HashMap<String, String>,
    form: RuleForm,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let project = param(m, "project");
    let list = ops::whitelist(state, p, opt(&project).as_deref()).await?;
    let names: HashMap<String, String> = project_names(state, p).await?.into_iter().collect();
    let rows = list
        .items
        .into_iter()
        .map(|r| RuleView {
            type_title: r.alarm_type.as_deref().map(type_title).unwrap_or_default(),
            alarm_type: r.alarm_type.unwrap_or_default(),
            source_ip: r.source_ip.unwrap_or_default(),
            meta: RuleMeta::new(
                p,
                &names,
                "/alarms/whitelist",
                RuleFacts {
                    project_id: &r.project_id,
                    id: r.id,
                    reason: r.reason,
                    created_by: r.created_by,
                    created_at: r.created_at,
                },
            ),
        })
        .collect();
    let form_project = if form.project.is_empty() {
        project.clone()
    } else {
        form.project.clone()
    };
    html_status(
        status,
        &WhitelistPage {
            nav: Nav::new(p, "alarms"),
            section: "whitelist",
            flash: flash(m),
            error,
            project_opts: project_opts(state, p, &project, Role::Viewer).await?,
            rows,
            operator_projects: project_opts(state, p, &form_project, Role::Operator).await?,
            type_opts: type_opts(&form.alarm_type),
            form,
        },
    )
}

/// `GET /alarms/whitelist?project=&type=&source_ip=` (`type` and `source_ip` fill in the form).
pub async fn whitelist(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let form = RuleForm {
        alarm_type: known_type(&param(&m, "type")),
        source_ip: param(&m, "source_ip"),
        ..Default::default()
    };
    render_whitelist(&state, &p, &m, form, StatusCode::OK, None).await
}

/// `POST /alarms/whitelist`
pub async fn create_rule(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let form = RuleForm {
        project: f.get("project").to_string(),
        alarm_type: f.get("alarm_type").to_string(),
        source_ip: f.get("source_ip").to_string(),
        reason: f.get("reason").to_string(),
    };
    let input = NewWhitelistRule {
        project_id: f.opt("project"),
        alarm_type: f.opt("alarm_type"),
        source_ip: f.opt("source_ip"),
        reason: f.get("reason").to_string(),
    };
    let none = HashMap::new();
    findings::create_rule(
        ops::add_whitelist(&state, &p, input).await,
        &[StatusCode::BAD_REQUEST, StatusCode::CONFLICT],
        |_| "/alarms/whitelist?done=rule".to_string(),
        |status, message| render_whitelist(&state, &p, &none, form, status, Some(message)),
    )
    .await
}

/// `POST /alarms/whitelist/{id}/delete`
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    ops::delete_whitelist(&state, &p, &id).await?;
    Ok(see_other("/alarms/whitelist?done=rule_deleted"))
}

// ---------------------------------------------------------------------------------------------
// /alarms/policy

/// The policy form's fields as text, so a refused form shows what was typed.
pub(crate) struct PolicyForm {
    pub short_failures: String,
    pub short_window_secs: String,
    pub long_failures: String,
    pub long_window_secs: String,
    pub ssh_block_minutes: String,
    pub other_block_minutes: String,
    pub block: bool,
    pub escalate: bool,
    pub whitelist: String,
    pub whitelist_count: usize,
    pub alarm_on_root_login: bool,
    pub usual_login_ips: String,
    pub usual_count: usize,
    pub learn_usual_ips: bool,
    pub hours_start: String,
    pub hours_end: String,
}

impl PolicyForm {
    fn of(p: &Policy) -> PolicyForm {
        let (hours_start, hours_end) = match p.usual_hours {
            Some((s, e)) => (s.to_string(), e.to_string()),
            None => (String::new(), String::new()),
        };
        PolicyForm {
            short_failures: p.short_failures.to_string(),
            short_window_secs: p.short_window_secs.to_string(),
            long_failures: p.long_failures.to_string(),
            long_window_secs: p.long_window_secs.to_string(),
            ssh_block_minutes: p.ssh_block_minutes.to_string(),
            other_block_minutes: p.other_block_minutes.to_string(),
            block: p.block,
            escalate: p.escalate,
            whitelist_count: p.whitelist.len(),
            whitelist: p.whitelist.join("\n"),
            alarm_on_root_login: p.alarm_on_root_login,
            usual_count: p.usual_login_ips.len(),
            usual_login_ips: p.usual_login_ips.join("\n"),
            learn_usual_ips: p.learn_usual_ips,
            hours_start,
            hours_end,
        }
    }

    fn from_fields(f: &Fields) -> PolicyForm {
        let whitelist = f.get("whitelist").to_string();
        let usual = f.get("usual_login_ips").to_string();
        PolicyForm {
            short_failures: f.get("short_failures").to_string(),
            short_window_secs: f.get("short_window_secs").to_string(),
            long_failures: f.get("long_failures").to_string(),
            long_window_secs: f.get("long_window_secs").to_string(),
            ssh_block_minutes: f.get("ssh_block_minutes").to_string(),
            other_block_minutes: f.get("other_block_minutes").to_string(),
            block: truthy(f, "block"),
            escalate: truthy(f, "escalate"),
            whitelist_count: lines(&whitelist).len(),
            whitelist,
            alarm_on_root_login: truthy(f, "alarm_on_root_login"),
            usual_count: lines(&usual).len(),
            usual_login_ips: usual,
            learn_usual_ips: truthy(f, "learn_usual_ips"),
            hours_start: f.get("usual_hours_start").to_string(),
            hours_end: f.get("usual_hours_end").to_string(),
        }
    }

    /// The policy the form describes; the message names the field. The API validates the rest.
    fn policy(&self) -> Result<Policy, String> {
        let num = |field: &str, s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{field}: a whole number"))
        };
        let hour = |field: &str, s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("{field}: an hour, 0 to 24"))
        };
        let usual_hours = match (self.hours_start.trim(), self.hours_end.trim()) {
            ("", "") => None,
            ("", _) | (_, "") => {
                return Err("usual_hours: give both the start and the end hour, or neither".into());
            }
            (s, e) => Some((hour("usual_hours", s)?, hour("usual_hours", e)?)),
        };
        Ok(Policy {
            short_failures: num("short_failures", &self.short_failures)?,
            short_window_secs: num("short_window_secs", &self.short_window_secs)?,
            long_failures: num("long_failures", &self.long_failures)?,
            long_window_secs: num("long_window_secs", &self.long_window_secs)?,
            ssh_block_minutes: num("ssh_block_minutes", &self.ssh_block_minutes)?,
            other_block_minutes: num("other_block_minutes", &self.other_block_minutes)?,
            block: self.block,
            escalate: self.escalate,
            whitelist: lines(&self.whitelist),
            alarm_on_root_login: self.alarm_on_root_login,
            usual_login_ips: lines(&self.usual_login_ips),
            learn_usual_ips: self.learn_usual_ips,
            usual_hours,
        })
    }
}

#[derive(Template)]
#[template(path = "alarms/policy.html")]
pub(crate) struct PolicyPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_id: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub version: i64,
    pub can_edit: bool,
    pub form: PolicyForm,
    pub max_whitelist: usize,
    pub max_usual: usize,
    pub max_minutes: u32,
}

async fn render_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    form: Option<PolicyForm>,
    status: StatusCode,
    flash: Option<Flash>,
    error: Option<String>,
) -> PageResult {
    let body = ops::bruteforce_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "alarms"),
            section: "policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            form: form.unwrap_or_else(|| PolicyForm::of(&body.policy)),
            max_whitelist: MAX_WHITELIST,
            max_usual: MAX_USUAL_LOGIN_IPS,
            max_minutes: MAX_BLOCK_MINUTES,
        },
    )
}

#[derive(Template)]
#[template(path = "alarms/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /alarms/policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "alarms"),
            section: "policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /alarms/policy`: replaces the project's brute-force policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    save_policy_form(
        &p,
        &project,
        "/alarms/policy",
        PolicyForm::from_fields(&f),
        PolicyForm::policy,
        |policy| ops::set_bruteforce_policy(&state, &p, &project, policy),
        |form, msg| {
            render_policy(
                &state,
                &p,
                &project,
                Some(form),
                StatusCode::BAD_REQUEST,
                None,
                Some(msg),
            )
        },
    )
    .await
}

/// The console pages of this capability.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alarms", get(list))
        .route("/alarms/actions", post(act))
        .route("/alarms/blocked", get(blocked).post(block))
        .route("/alarms/blocked/unblock", post(unblock))
        .route("/alarms/whitelist", get(whitelist).post(create_rule))
        .route("/alarms/whitelist/{id}/delete", post(delete_rule))
        .route("/alarms/policy", get(policy).post(save_policy))
        .route("/alarms/{id}", get(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_utc_days() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "",
            "2024-2-29",
            "2023-02-29",
            "2024-13-01",
            "x024-01-01",
            "2024-01-01x",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn actions_return_only_to_alarm_pages() {
        assert_eq!(
            safe_back("/alarms?state=unhandled", BACK),
            Some("/alarms?state=unhandled")
        );
        assert_eq!(safe_back("/alarms/abc", BACK), Some("/alarms/abc"));
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/alarms\\x",
            "/users",
            "",
            "/alarms\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(safe_back(bad, BACK), None, "{bad:?}");
        }
    }

    #[test]
    fn mitre_links_only_for_technique_ids() {
        assert_eq!(
            mitre_url("T1110.001"),
            "https://attack.mitre.org/techniques/T1110/001/"
        );
        assert_eq!(
            mitre_url("T1078"),
            "https://attack.mitre.org/techniques/T1078/"
        );
        assert_eq!(mitre_url("T1/../x"), "");
    }

    #[test]
    fn the_policy_form_round_trips_and_names_fields() {
        let p = Policy {
            whitelist: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            usual_hours: Some((8, 18)),
            ..Default::default()
        };
        let form = PolicyForm::of(&p);
        assert_eq!(form.policy(), Ok(p));
        let mut form = PolicyForm::of(&Policy::default());
        form.hours_start = "8".into();
        assert!(form.policy().unwrap_err().starts_with("usual_hours:"));
        form.hours_start.clear();
        form.short_failures = "five".into();
        assert!(form.policy().unwrap_err().starts_with("short_failures:"));
    }
}
