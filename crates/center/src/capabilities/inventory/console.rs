//! Inventory pages: a server's tabs (one per inventory kind, plus its change history), the
//! fleet-wide asset groups with a bar chart, the servers behind one group, and the fleet's
//! changes.
//!
//! Every page reads through the operations of [`crate::capabilities::inventory::api`] (and creates tasks
//! through [`crate::api::tasks`]), so a page shows exactly what the REST API shows the same
//! caller, and servers of other projects answer 404. Every string on these pages comes from an
//! agent: templates escape it, none is marked safe. CSV downloads link to the REST API, which
//! accepts the console's session cookie for GET requests.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use hostward_proto::inventory::{
    Account, AutostartItem, COLLECT_INVENTORY_TASK, CollectIssue, InventoryKind, Item,
    KernelModule, Middleware, Package, PasswordState, Port, PortRisk, Process,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::capabilities::inventory::api as ops;
use crate::console::{
    ConsoleError, Nav, Opt, PageResult, Post, Role, Session, Ts, fmt_bytes, fmt_utc, html,
    project_opts, see_other,
};
use crate::web::page::{Pager, Tab, clip, enc, page_param, param, scale, url};
use hostward_store::{AssetGroup, AssetServer, InventoryChange, InventoryItem, InventorySummary};

/// Rows per page on every inventory list.
pub const PER_PAGE: i64 = 100;
/// Bars in the fleet chart, at most.
pub const CHART_BARS: usize = 12;

// ---------------------------------------------------------------------------------------------
// Kinds

pub(crate) fn kind_label(k: InventoryKind) -> &'static str {
    match k {
        InventoryKind::Accounts => "Accounts",
        InventoryKind::Ports => "Ports",
        InventoryKind::Processes => "Processes",
        InventoryKind::Software => "Software",
        InventoryKind::Autostart => "Auto-start",
        InventoryKind::KernelModules => "Kernel modules",
        InventoryKind::Middleware => "Middleware / web",
    }
}

/// What a fleet-wide group's name and value are, per kind.
fn name_label(k: InventoryKind) -> &'static str {
    match k {
        InventoryKind::Accounts => "account",
        InventoryKind::Ports => "port",
        InventoryKind::Processes => "executable",
        InventoryKind::Software => "package",
        InventoryKind::Autostart => "path",
        InventoryKind::KernelModules => "module",
        InventoryKind::Middleware => "middleware",
    }
}

fn value_label(k: InventoryKind) -> &'static str {
    match k {
        InventoryKind::Accounts => "uid",
        InventoryKind::Ports => "program",
        InventoryKind::Processes => "sha256",
        InventoryKind::Software => "version",
        InventoryKind::Autostart => "category",
        InventoryKind::KernelModules => "path",
        InventoryKind::Middleware => "version",
    }
}

/// What to type into a kind's fleet search, as an example.
fn search_example(k: InventoryKind) -> &'static str {
    match k {
        InventoryKind::Accounts => "root",
        InventoryKind::Ports => "6379 or redis",
        InventoryKind::Processes => "sshd",
        InventoryKind::Software => "openssl",
        InventoryKind::Autostart => "cron",
        InventoryKind::KernelModules => "ext4",
        InventoryKind::Middleware => "nginx",
    }
}

fn kind_of(s: &str) -> Option<InventoryKind> {
    InventoryKind::parse(s)
}

// ---------------------------------------------------------------------------------------------
// Small pure helpers

/// First 12 hex digits of a hash.
pub(crate) fn short_hash(s: &str) -> String {
    s.chars().take(12).collect()
}

fn date(ts: i64) -> String {
    let s = fmt_utc(ts);
    s.get(..10).map(str::to_string).unwrap_or(s)
}

// ---------------------------------------------------------------------------------------------
// Bar chart (server-rendered SVG; widths are SVG attributes, not CSS, so the CSP holds)

pub const CHART_LABEL_W: u32 = 230;
pub const CHART_BAR_W: u32 = 340;
pub const CHART_NUM_W: u32 = 60;
pub const CHART_ROW_H: u32 = 22;
pub const CHART_BAR_H: u32 = 15;
const CHART_LABEL_CHARS: usize = 34;

pub(crate) struct Bar {
    pub label: String,
    pub title: String,
    pub n: i64,
    pub href: String,
    /// Top of the bar's row.
    pub y: u32,
    /// Baseline of the row's texts.
    pub text_y: u32,
    pub w: u32,
    /// Where the count is written: just after the bar.
    pub n_x: u32,
}

pub(crate) struct Chart {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub bar_x: u32,
    pub bar_h: u32,
    pub bars: Vec<Bar>,
}

/// Lays out a horizontal bar chart of (label, full label, count, link) in the given order.
/// `None` when there is nothing to draw.
pub(crate) fn bar_chart(title: &str, data: &[(String, String, i64, String)]) -> Option<Chart> {
    let data = &data[..data.len().min(CHART_BARS)];
    if data.is_empty() {
        return None;
    }
    let max = data.iter().map(|d| d.2).max().unwrap_or(0);
    let bars = data
        .iter()
        .enumerate()
        .map(|(i, (label, full, n, href))| {
            let y = i as u32 * CHART_ROW_H + 4;
            let w = scale(*n, max, CHART_BAR_W);
            let (label, cut) = clip(label, CHART_LABEL_CHARS);
            Bar {
                title: if cut.is_empty() && full.is_empty() {
                    label.clone()
                } else if full.is_empty() {
                    cut
                } else {
                    full.clone()
                },
                label,
                n: *n,
                href: href.clone(),
                y,
                text_y: y + CHART_BAR_H - 3,
                w,
                n_x: CHART_LABEL_W + w + 6,
            }
        })
        .collect::<Vec<_>>();
    Some(Chart {
        title: title.to_string(),
        width: CHART_LABEL_W + CHART_BAR_W + CHART_NUM_W,
        height: bars.len() as u32 * CHART_ROW_H + 8,
        bar_x: CHART_LABEL_W,
        bar_h: CHART_BAR_H,
        bars,
    })
}

// ---------------------------------------------------------------------------------------------
// Table cells per kind

/// One table cell. `col` names the column (`data-col`), `badge` is a badge class wrapping the
/// text, `note` a muted remark after it, `list` a nested list under it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cell {
    pub col: &'static str,
    pub text: String,
    pub title: String,
    pub class: &'static str,
    pub badge: &'static str,
    pub note: String,
    pub list: Vec<String>,
}

impl Cell {
    fn new(col: &'static str, text: impl Into<String>) -> Cell {
        Cell {
            col,
            text: text.into(),
            ..Default::default()
        }
    }
    /// Text cut at `max` characters; the whole text is the cell's title.
    fn clipped(col: &'static str, text: &str, max: usize) -> Cell {
        let (text, title) = clip(text, max);
        Cell {
            col,
            text,
            title,
            ..Default::default()
        }
    }
    fn opt(col: &'static str, text: Option<impl Into<String>>) -> Cell {
        match text.map(Into::into).filter(|s: &String| !s.is_empty()) {
            Some(t) => Cell::new(col, t),
            None => Cell::new(col, "–").class("muted"),
        }
    }
    fn hash(col: &'static str, h: Option<&str>) -> Cell {
        match h.filter(|h| !h.is_empty()) {
            Some(h) => Cell {
                col,
                text: short_hash(h),
                title: h.to_string(),
                class: "mono small",
                ..Default::default()
            },
            None => Cell::new(col, "–").class("muted"),
        }
    }
    fn class(mut self, c: &'static str) -> Cell {
        self.class = c;
        self
    }
    fn badge(mut self, b: &'static str) -> Cell {
        self.badge = b;
        self
    }
    fn note(mut self, n: impl Into<String>) -> Cell {
        self.note = n.into();
        self
    }
}

/// Column headers of a kind's table.
pub(crate) fn columns(kind: InventoryKind) -> &'static [&'static str] {
    match kind {
        InventoryKind::Accounts => &[
            "Name",
            "UID",
            "GID",
            "Groups",
            "Home",
            "Shell",
            "Login",
            "Root-equivalent",
            "Password",
            "Changed / expires",
        ],
        InventoryKind::Ports => &[
            "Protocol", "Family", "Address", "Port", "State", "PID", "Program", "Risk",
        ],
        InventoryKind::Processes => &[
            "PID",
            "PPID",
            "User",
            "Executable",
            "Command line",
            "Started (UTC)",
            "SHA-256",
            "Mode",
        ],
        InventoryKind::Software => &[
            "Name",
            "Version",
            "Arch",
            "Source",
            "Vendor",
            "Installed (UTC)",
            "Manager",
        ],
        InventoryKind::Autostart => &["Category", "Path", "User", "Entry", "SHA-256"],
        InventoryKind::KernelModules => &["Name", "Size", "Used by", "State", "Path", "SHA-256"],
        InventoryKind::Middleware => &[
            "Name",
            "Version",
            "Running",
            "PIDs",
            "Ports",
            "Config",
            "Web sites",
        ],
    }
}

fn typed<T: DeserializeOwned>(data: &Value) -> Option<T> {
    serde_json::from_value(data.clone()).ok()
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn account_cells(a: Account) -> Vec<Cell> {
    let root = if a.root_equivalent {
        Cell::new("root", "root-equivalent")
            .badge("b-bad")
            .note(a.root_reasons.join(", "))
    } else {
        Cell::new("root", "no").class("muted")
    };
    let (pw, pw_badge) = match a.password {
        PasswordState::Set => ("set", "b-ok"),
        PasswordState::Empty => ("empty", "b-bad"),
        PasswordState::Locked => ("locked", "b-muted"),
        PasswordState::Unknown => ("unknown", "b-muted"),
    };
    let ageing = match (a.password_changed, a.password_expires) {
        (None, None) => Cell::new("ageing", "–").class("muted"),
        (c, e) => {
            let c = Cell::new(
                "ageing",
                c.map(date).unwrap_or_else(|| "–".into()).to_string(),
            );
            match e {
                Some(e) => c.note(format!("expires {}", date(e))),
                None => c,
            }
        }
    };
    vec![
        Cell::new("name", a.name),
        Cell::new("uid", a.uid.to_string()).class("num"),
        Cell::new("gid", a.gid.to_string()).class("num"),
        Cell::clipped("groups", &a.groups.join(", "), 80),
        Cell::clipped("home", &a.home, 60).class("mono small"),
        Cell::clipped("shell", &a.shell, 60).class("mono small"),
        if a.login_allowed {
            Cell::new("login", "yes")
        } else {
            Cell::new("login", "no").class("muted")
        },
        root,
        Cell::new("password", pw).badge(pw_badge),
        ageing,
    ]
}

fn port_cells(p: Port) -> Vec<Cell> {
    let risk = match p.risk {
        PortRisk::Dangerous => Cell::new("risk", "dangerous")
            .badge("b-bad")
            .note(p.risk_reason.clone().unwrap_or_default()),
        PortRisk::Ignored => Cell::new("risk", "ignored").badge("b-muted"),
        PortRisk::Unknown => Cell::new("risk", "unknown").class("muted"),
    };
    vec![
        Cell::new("protocol", p.protocol),
        Cell::new("family", p.family),
        Cell::new("address", p.address).class("mono"),
        Cell::new("port", p.port.to_string()).class("num"),
        Cell::new("state", p.state),
        Cell::opt("pid", p.pid.map(|x| x.to_string())).class("num"),
        match p.program.as_deref() {
            Some(prog) if !prog.is_empty() => {
                Cell::clipped("program", prog, 60).class("mono small")
            }
            _ => Cell::new("program", "–").class("muted"),
        },
        risk,
    ]
}

fn process_cells(p: Process) -> Vec<Cell> {
    let mode = match (&p.exe_mode, p.exe_owner) {
        (None, None) => Cell::new("mode", "–").class("muted"),
        (m, o) => {
            let c = Cell::new("mode", m.clone().unwrap_or_else(|| "–".into())).class("mono");
            match o {
                Some(o) => c.note(format!("owner uid {o}")),
                None => c,
            }
        }
    };
    vec![
        Cell::new("pid", p.pid.to_string()).class("num"),
        Cell::new("ppid", p.ppid.to_string()).class("num"),
        Cell::new("user", p.user).note(format!("uid {}", p.uid)),
        Cell::clipped("exe", &p.exe, 60).class("mono small"),
        Cell::clipped("cmdline", &p.cmdline, 80).class("mono small"),
        Cell::new("start_time", fmt_utc(p.start_time)).class("small"),
        Cell::hash("sha256", p.sha256.as_deref()),
        mode,
    ]
}

fn package_cells(p: Package) -> Vec<Cell> {
    vec![
        Cell::new("name", p.name),
        Cell::clipped("version", &p.version, 60).class("mono"),
        Cell::new("arch", p.arch),
        Cell::opt("source", p.source),
        match p.vendor.as_deref() {
            Some(v) if !v.is_empty() => Cell::clipped("vendor", v, 50).class("small"),
            _ => Cell::new("vendor", "–").class("muted"),
        },
        Cell::opt(
            "install_time",
            p.install_time.filter(|t| *t > 0).map(fmt_utc),
        )
        .class("small"),
        Cell::new("manager", p.manager).class("muted"),
    ]
}

fn autostart_cells(a: AutostartItem) -> Vec<Cell> {
    vec![
        Cell::new("category", a.category),
        Cell::clipped("path", &a.path, 70).class("mono small"),
        Cell::new("user", a.user),
        Cell::clipped("entry", &a.entry, 90).class("mono small"),
        Cell::hash("sha256", Some(&a.sha256)),
    ]
}

fn kmod_cells(m: KernelModule) -> Vec<Cell> {
    vec![
        Cell::new("name", m.name),
        Cell::new("size", fmt_bytes(m.size)).class("num"),
        if m.used_by.is_empty() {
            Cell::new("used_by", "–").class("muted")
        } else {
            Cell::clipped("used_by", &m.used_by.join(", "), 80)
        },
        Cell::opt("state", Some(m.state)),
        match m.path.as_deref() {
            Some(p) if !p.is_empty() => Cell::clipped("path", p, 80).class("mono small"),
            _ => Cell::new("path", "built in or unknown").class("muted"),
        },
        Cell::hash("sha256", m.sha256.as_deref()),
    ]
}

fn middleware_cells(m: Middleware) -> Vec<Cell> {
    let sites: Vec<String> = m
        .sites
        .iter()
        .map(|s| {
            let names = if s.server_names.is_empty() {
                "(default)".to_string()
            } else {
                s.server_names.join(" ")
            };
            let mut parts = vec![names];
            if let Some(r) = s.root.as_deref().filter(|r| !r.is_empty()) {
                parts.push(format!("root {r}"));
            }
            if !s.ports.is_empty() {
                parts.push(format!("ports {}", join(&s.ports)));
            }
            parts.push(s.config_file.clone());
            clip(&parts.join(" · "), 200).0
        })
        .collect();
    let mut site_cell = if sites.is_empty() {
        Cell::new("sites", "–").class("muted")
    } else {
        Cell::new("sites", format!("{} site(s)", sites.len())).class("small")
    };
    site_cell.list = sites;
    let mut config = Cell::opt("config", m.config_path.clone()).class("mono small");
    if let Some(exe) = m.exe.as_deref().filter(|e| !e.is_empty()) {
        config.title = format!("executable {exe}");
    }
    vec![
        Cell::new("name", m.name).note(m.package.unwrap_or_default()),
        Cell::opt("version", m.version).class("mono"),
        if m.running {
            Cell::new("running", "running").badge("b-ok")
        } else {
            Cell::new("running", "stopped").class("muted")
        },
        Cell::clipped("pids", &join(&m.pids), 60).class("small"),
        Cell::clipped("ports", &join(&m.listening_ports), 60).class("small"),
        config,
        site_cell,
    ]
}

/// The cells of one item of `kind`, from its stored JSON. An item that does not read as its
/// kind (a newer agent, say) still shows its name and raw value, never an error page.
pub(crate) fn item_cells(kind: InventoryKind, name: &str, data: &Value) -> Vec<Cell> {
    let cells = match kind {
        InventoryKind::Accounts => typed::<Account>(data).map(account_cells),
        InventoryKind::Ports => typed::<Port>(data).map(port_cells),
        InventoryKind::Processes => typed::<Process>(data).map(process_cells),
        InventoryKind::Software => typed::<Package>(data).map(package_cells),
        InventoryKind::Autostart => typed::<AutostartItem>(data).map(autostart_cells),
        InventoryKind::KernelModules => typed::<KernelModule>(data).map(kmod_cells),
        InventoryKind::Middleware => typed::<Middleware>(data).map(middleware_cells),
    };
    cells.unwrap_or_else(|| {
        let n = columns(kind).len();
        let mut v = vec![Cell::new("name", name)];
        v.push(Cell::clipped("raw", &data.to_string(), 120).class("mono small muted"));
        v.resize_with(n.max(2), || Cell::new("", ""));
        v
    })
}

/// A port row whose risk is dangerous is highlighted.
fn row_class(kind: InventoryKind, data: &Value) -> &'static str {
    match (kind, data.get("risk").and_then(Value::as_str)) {
        (InventoryKind::Ports, Some("dangerous")) => "row-bad",
        _ => "",
    }
}

pub(crate) struct RowView {
    pub name: String,
    pub key: String,
    pub class: &'static str,
    pub cells: Vec<Cell>,
}

fn item_row(kind: InventoryKind, i: &InventoryItem) -> RowView {
    RowView {
        name: i.name.clone(),
        key: i.key.clone(),
        class: row_class(kind, &i.data),
        cells: item_cells(kind, &i.name, &i.data),
    }
}

// ---------------------------------------------------------------------------------------------
// Changes

/// Item fields that hold Unix seconds.
const TIME_FIELDS: &[&str] = &[
    "install_time",
    "start_time",
    "password_changed",
    "password_expires",
];

/// A field's value for people: strings bare, lists joined, times as UTC, the rest as JSON.
pub(crate) fn fmt_value(field: &str, v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        Some(Value::Number(n)) if TIME_FIELDS.contains(&field) => {
            n.as_i64().map(fmt_utc).unwrap_or_else(|| n.to_string())
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            if a.is_empty() {
                "(none)".into()
            } else {
                a.iter()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        x => x.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
        Some(v) => v.to_string(),
    }
}

pub(crate) struct Diff {
    pub field: String,
    pub old: String,
    pub old_title: String,
    pub new: String,
    pub new_title: String,
}

/// Old → new of each changed field.
pub(crate) fn diffs(fields: &[String], old: Option<&Value>, new: Option<&Value>) -> Vec<Diff> {
    fields
        .iter()
        .map(|f| {
            let (o, ot) = clip(&fmt_value(f, old.and_then(|o| o.get(f))), 120);
            let (n, nt) = clip(&fmt_value(f, new.and_then(|n| n.get(f))), 120);
            Diff {
                field: f.clone(),
                old: o,
                old_title: ot,
                new: n,
                new_title: nt,
            }
        })
        .collect()
}

/// What an added or removed item was, in a few words: its fleet value (`version 3.0.11`).
fn item_summary(kind: InventoryKind, data: Option<&Value>) -> String {
    let Some(data) = data else {
        return String::new();
    };
    let value = match kind {
        InventoryKind::Accounts => typed::<Account>(data).map(|x| x.value()),
        InventoryKind::Ports => typed::<Port>(data).map(|x| x.value()),
        InventoryKind::Processes => typed::<Process>(data).map(|x| x.value()),
        InventoryKind::Software => typed::<Package>(data).map(|x| x.value()),
        InventoryKind::Autostart => typed::<AutostartItem>(data).map(|x| x.value()),
        InventoryKind::KernelModules => typed::<KernelModule>(data).map(|x| x.value()),
        InventoryKind::Middleware => typed::<Middleware>(data).map(|x| x.value()),
    };
    match value {
        Some(v) if !v.is_empty() => clip(&format!("{} {v}", value_label(kind)), 120).0,
        _ => String::new(),
    }
}

pub(crate) struct ChangeView {
    pub at: Ts,
    pub server_id: String,
    pub server_name: String,
    pub kind: String,
    pub kind_label: &'static str,
    pub change: String,
    pub name: String,
    pub key: String,
    pub summary: String,
    pub diffs: Vec<Diff>,
}

fn change_view(c: &InventoryChange) -> ChangeView {
    let kind = kind_of(&c.kind);
    let (diffs, summary) = match (c.change.as_str(), kind) {
        ("changed", _) => (
            diffs(&c.fields, c.old.as_ref(), c.new.as_ref()),
            String::new(),
        ),
        ("added", Some(k)) => (vec![], item_summary(k, c.new.as_ref())),
        ("removed", Some(k)) => (vec![], item_summary(k, c.old.as_ref())),
        _ => (vec![], String::new()),
    };
    ChangeView {
        at: Ts::at(c.ts),
        server_id: c.server_id.clone(),
        server_name: c.server_name.clone(),
        kind: c.kind.clone(),
        kind_label: kind.map(kind_label).unwrap_or("?"),
        change: c.change.clone(),
        name: c.name.clone(),
        key: if c.key != c.name {
            c.key.clone()
        } else {
            String::new()
        },
        summary,
        diffs,
    }
}

// ---------------------------------------------------------------------------------------------
// Server tabs

/// The server's tab bar with the item counts of a summary already read.
fn tabs(server_id: &str, summary: &[InventorySummary], active: &str) -> Vec<Tab> {
    let counts = summary.iter().map(|s| (s.kind.clone(), s.items)).collect();
    crate::capabilities::tab_bar(server_id, &counts, active)
}

pub(crate) struct IssueView {
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

pub(crate) fn issues(v: &Value) -> Vec<IssueView> {
    serde_json::from_value::<Vec<CollectIssue>>(v.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| IssueView {
            file: i.file,
            line: i.line,
            message: i.message,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "inventory/server_inventory.html")]
pub(crate) struct InventoryPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub flash: Option<String>,
    pub q: String,
    pub columns: &'static [&'static str],
    pub rows: Vec<RowView>,
    pub pager: Pager,
    pub csv_url: String,
    pub reported: bool,
    pub items: i64,
    pub collected: Option<Ts>,
    pub updated: Option<Ts>,
    pub in_sync: bool,
    pub issues: Vec<IssueView>,
    pub can_collect: bool,
}

/// `GET /servers/{id}/inventory/{kind}?q=&page=`
pub async fn server_kind(
    State(state): State<AppState>,
    Session(p): Session,
    Path((id, kind)): Path<(String, String)>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever the kind says.
    let sum = ops::summary(&state, &p, &id).await?;
    let k = ops::kind_param("kind", &kind)?;
    let srv = visible_server(&state, &p, &id, Role::Viewer).await?;
    let q = param(&m, "q");
    let page = page_param(&m);
    let found = ops::items(
        &state,
        &p,
        &srv.id,
        k.as_str(),
        &ops::ListQuery {
            q: Some(q.clone()).filter(|q| !q.is_empty()),
            page: Some(page),
            per_page: Some(PER_PAGE),
            ..Default::default()
        },
    )
    .await?;
    let base = format!("/servers/{}/inventory/{}", srv.id, k.as_str());
    let pager = Pager::new(page, PER_PAGE, found.items.len(), found.total, |n| {
        url(&base, &[("q", &q), ("page", &n.to_string())])
    });
    let this = sum.kinds.iter().find(|s| s.kind == k.as_str());
    let flash = match m.get("done").map(String::as_str) {
        Some("collect") => Some(format!(
            "Collection of {} requested; the agent reports what changed within seconds. Reload to see it.",
            kind_label(k).to_lowercase()
        )),
        _ => None,
    };
    html(&InventoryPage {
        nav: Nav::new(&p, "servers"),
        tabs: tabs(&srv.id, &sum.kinds, k.as_str()),
        kind: k.as_str(),
        kind_label: kind_label(k),
        flash,
        columns: columns(k),
        rows: found.items.iter().map(|i| item_row(k, i)).collect(),
        pager,
        csv_url: url(
            &format!("/api/v1/servers/{}/inventory/{}", srv.id, k.as_str()),
            &[("format", "csv"), ("q", &q)],
        ),
        reported: this.is_some(),
        items: this.map(|s| s.items).unwrap_or(0),
        collected: this.and_then(|s| Ts::opt(Some(s.collected_at))),
        updated: this.and_then(|s| Ts::opt(Some(s.updated_at))),
        in_sync: this.is_none_or(|s| s.in_sync),
        issues: this.map(|s| issues(&s.issues)).unwrap_or_default(),
        can_collect: p.require(&srv.project_id, Role::Operator).is_ok()
            && srv.agent_id.is_some()
            && srv.revoked_at.is_none(),
        q,
        sid: srv.id,
        sname: srv.name,
    })
}

/// `POST /servers/{id}/inventory/{kind}/collect`: a `collect_inventory` task for that kind.
pub async fn collect(
    State(state): State<AppState>,
    Path((id, kind)): Path<(String, String)>,
    Post { p, .. }: Post,
) -> PageResult {
    let sum = ops::summary(&state, &p, &id).await?;
    let k = ops::kind_param("kind", &kind)?;
    crate::api::tasks::create_for_server(
        &state,
        &p,
        &sum.server_id,
        crate::api::tasks::CreateServerTask {
            kind: COLLECT_INVENTORY_TASK.to_string(),
            params: Some(serde_json::json!({ "kinds": [k.as_str()] })),
            expires_in_secs: None,
        },
    )
    .await?;
    Ok(see_other(&format!(
        "/servers/{}/inventory/{}?done=collect",
        sum.server_id,
        k.as_str()
    )))
}

// ---------------------------------------------------------------------------------------------
// Change history (one server, or the fleet)

#[derive(Template)]
#[template(path = "inventory/changes.html")]
pub(crate) struct ChangesPage {
    pub nav: Nav,
    /// The server whose history this is; `None` for the fleet.
    pub server: Option<(String, String)>,
    pub tabs: Vec<Tab>,
    pub action: String,
    pub q: String,
    pub kind_opts: Vec<Opt>,
    pub change_opts: Vec<Opt>,
    pub project_opts: Vec<Opt>,
    pub rows: Vec<ChangeView>,
    pub pager: Pager,
    pub csv_url: String,
}

struct ChangeParams {
    kind: String,
    change: String,
    q: String,
    project: String,
    page: i64,
}

impl ChangeParams {
    fn from_map(m: &HashMap<String, String>) -> ChangeParams {
        ChangeParams {
            // Unknown values are dropped rather than refused: they come from a form.
            kind: Some(param(m, "kind"))
                .filter(|k| kind_of(k).is_some())
                .unwrap_or_default(),
            change: Some(param(m, "change"))
                .filter(|c| ["added", "removed", "changed"].contains(&c.as_str()))
                .unwrap_or_default(),
            q: param(m, "q"),
            project: param(m, "project"),
            page: page_param(m),
        }
    }

    fn pairs<'a>(&'a self, page: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("kind", &self.kind),
            ("change", &self.change),
            ("q", &self.q),
            ("project", &self.project),
            ("page", page),
        ]
    }

    fn api(&self, csv: bool) -> ops::ChangeQuery {
        let o = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        ops::ChangeQuery {
            kind: o(&self.kind),
            change: o(&self.change),
            q: o(&self.q),
            project: o(&self.project),
            page: (!csv).then_some(self.page),
            per_page: (!csv).then_some(PER_PAGE),
            format: csv.then(|| "csv".to_string()),
        }
    }
}

fn kind_opts(selected: &str, history_only: bool) -> Vec<Opt> {
    InventoryKind::ALL
        .into_iter()
        .filter(|k| !history_only || k.has_history())
        .map(|k| Opt {
            value: k.as_str().to_string(),
            label: kind_label(k).to_string(),
            selected: k.as_str() == selected,
        })
        .collect()
}

fn change_opts(selected: &str) -> Vec<Opt> {
    ["added", "removed", "changed"]
        .iter()
        .map(|c| Opt {
            value: c.to_string(),
            label: c.to_string(),
            selected: *c == selected,
        })
        .collect()
}

/// `GET /servers/{id}/changes?kind=&change=&q=&page=`
pub async fn server_changes(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let sum = ops::summary(&state, &p, &id).await?;
    let srv = visible_server(&state, &p, &id, Role::Viewer).await?;
    let cp = ChangeParams {
        project: String::new(),
        ..ChangeParams::from_map(&m)
    };
    let found = ops::changes(&state, &p, Some(&srv.id), &cp.api(false)).await?;
    let action = format!("/servers/{}/changes", srv.id);
    let pager = Pager::new(cp.page, PER_PAGE, found.items.len(), found.total, |n| {
        url(&action, &cp.pairs(&n.to_string()))
    });
    html(&ChangesPage {
        nav: Nav::new(&p, "servers"),
        tabs: tabs(&srv.id, &sum.kinds, "changes"),
        csv_url: url(
            &format!("/api/v1/servers/{}/inventory/changes", srv.id),
            &[("format", "csv")]
                .into_iter()
                .chain(cp.pairs(""))
                .collect::<Vec<_>>(),
        ),
        server: Some((srv.id, srv.name)),
        action,
        q: cp.q.clone(),
        kind_opts: kind_opts(&cp.kind, true),
        change_opts: change_opts(&cp.change),
        project_opts: vec![],
        rows: found.items.iter().map(change_view).collect(),
        pager,
    })
}

/// `GET /assets/changes?kind=&change=&q=&project=&page=`
pub async fn fleet_changes(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let cp = ChangeParams::from_map(&m);
    let found = ops::changes(&state, &p, None, &cp.api(false)).await?;
    let action = "/assets/changes".to_string();
    let pager = Pager::new(cp.page, PER_PAGE, found.items.len(), found.total, |n| {
        url(&action, &cp.pairs(&n.to_string()))
    });
    html(&ChangesPage {
        nav: Nav::new(&p, "assets"),
        server: None,
        tabs: vec![],
        csv_url: url(
            "/api/v1/inventory/changes",
            &[("format", "csv")]
                .into_iter()
                .chain(cp.pairs(""))
                .collect::<Vec<_>>(),
        ),
        action,
        q: cp.q.clone(),
        kind_opts: kind_opts(&cp.kind, true),
        change_opts: change_opts(&cp.change),
        project_opts: project_opts(&state, &p, &cp.project, Role::Viewer).await?,
        rows: found.items.iter().map(change_view).collect(),
        pager,
    })
}

// ---------------------------------------------------------------------------------------------
// Fleet-wide assets

pub(crate) struct KindLink {
    pub id: &'static str,
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

pub(crate) struct GroupView {
    pub name: String,
    pub name_title: String,
    pub value: String,
    pub value_title: String,
    pub servers: i64,
    pub href: String,
    /// Share of the servers in view, as a bar length out of [`SHARE_W`].
    pub share_w: u32,
}

/// Width of the small share bar beside each group's server count.
pub const SHARE_W: u32 = 80;

fn group_href(kind: InventoryKind, g: &AssetGroup, project: &str) -> String {
    let mut u = format!(
        "/assets/{}/servers?name={}&value={}",
        kind.as_str(),
        enc(&g.name),
        enc(&g.value)
    );
    if !project.is_empty() {
        u.push_str(&format!("&project={}", enc(project)));
    }
    u
}

#[derive(Template)]
#[template(path = "inventory/assets.html")]
pub(crate) struct AssetsPage {
    pub nav: Nav,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub name_label: &'static str,
    pub value_label: &'static str,
    pub example: &'static str,
    pub kinds: Vec<KindLink>,
    pub q: String,
    pub project_opts: Vec<Opt>,
    pub project: String,
    pub groups: Vec<GroupView>,
    pub pager: Pager,
    pub servers_in_view: i64,
    pub top: i64,
    pub chart: Option<Chart>,
    pub csv_url: String,
}

/// The chart's bars: when every group shares one name (a search for one package), the bars
/// are its values (servers per version); otherwise name and value.
fn chart_for(kind: InventoryKind, groups: &[AssetGroup], project: &str) -> Option<Chart> {
    let top = &groups[..groups.len().min(CHART_BARS)];
    let first = top.first()?;
    let one_name = top.iter().all(|g| g.name == first.name);
    let title = if one_name {
        format!("Servers per {} of {}", value_label(kind), first.name)
    } else {
        format!(
            "Most common {}: servers per {} and {}",
            kind_label(kind).to_lowercase(),
            name_label(kind),
            value_label(kind)
        )
    };
    let data: Vec<(String, String, i64, String)> = top
        .iter()
        .map(|g| {
            let label = match (one_name, g.value.is_empty()) {
                (true, true) => "(none)".to_string(),
                (true, false) => g.value.clone(),
                (false, true) => g.name.clone(),
                (false, false) => format!("{} {}", g.name, g.value),
            };
            let full = format!("{} {}: {} server(s)", g.name, g.value, g.servers);
            (label, full, g.servers, group_href(kind, g, project))
        })
        .collect();
    bar_chart(&title, &data)
}

/// `GET /assets?kind=software&q=&project=&page=`
pub async fn assets(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let kind_s = Some(param(&m, "kind"))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| InventoryKind::Software.as_str().to_string());
    let k = ops::kind_param("kind", &kind_s)?;
    let q = param(&m, "q");
    let project = param(&m, "project");
    let page = page_param(&m);
    let o = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let found = ops::assets(
        &state,
        &p,
        k.as_str(),
        &ops::ListQuery {
            q: o(&q),
            project: o(&project),
            page: Some(page),
            per_page: Some(PER_PAGE),
            format: None,
        },
    )
    .await?;
    let top_groups = if page == 1 {
        found.items.clone()
    } else {
        ops::assets(
            &state,
            &p,
            k.as_str(),
            &ops::ListQuery {
                q: o(&q),
                project: o(&project),
                page: Some(1),
                per_page: Some(CHART_BARS as i64),
                format: None,
            },
        )
        .await?
        .items
    };
    let servers_in_view = crate::api::servers::list(
        &state,
        &p,
        crate::api::servers::ServerQuery {
            project: o(&project),
            per_page: Some(1),
            ..Default::default()
        },
    )
    .await?
    .total;
    let top = top_groups.first().map(|g| g.servers).unwrap_or(0);
    let groups = found
        .items
        .iter()
        .map(|g| {
            let (name, name_title) = clip(&g.name, 60);
            let (value, value_title) = clip(&g.value, 60);
            GroupView {
                name,
                name_title,
                value,
                value_title,
                servers: g.servers,
                href: group_href(k, g, &project),
                share_w: scale(g.servers, servers_in_view.max(g.servers), SHARE_W),
            }
        })
        .collect();
    let pager = Pager::new(page, PER_PAGE, found.items.len(), found.total, |n| {
        url(
            "/assets",
            &[
                ("kind", k.as_str()),
                ("q", &q),
                ("project", &project),
                ("page", &n.to_string()),
            ],
        )
    });
    let kinds = InventoryKind::ALL
        .into_iter()
        .map(|x| KindLink {
            id: x.as_str(),
            label: kind_label(x),
            href: url(
                "/assets",
                &[("kind", x.as_str()), ("q", &q), ("project", &project)],
            ),
            active: x == k,
        })
        .collect();
    html(&AssetsPage {
        nav: Nav::new(&p, "assets"),
        kind: k.as_str(),
        kind_label: kind_label(k),
        name_label: name_label(k),
        value_label: value_label(k),
        example: search_example(k),
        kinds,
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        groups,
        pager,
        servers_in_view,
        top,
        chart: chart_for(k, &top_groups, &project),
        csv_url: url(
            &format!("/api/v1/assets/{}", k.as_str()),
            &[("format", "csv"), ("q", &q), ("project", &project)],
        ),
        q,
        project,
    })
}

pub(crate) struct AssetServerView {
    pub server_id: String,
    pub server_name: String,
    pub hostname: String,
    /// The server's tab of this kind, searched for the group's name.
    pub tab_url: String,
    pub cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "inventory/asset_servers.html")]
pub(crate) struct AssetServersPage {
    pub nav: Nav,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub name_label: &'static str,
    pub value_label: &'static str,
    pub name: String,
    pub value: Option<String>,
    pub back_url: String,
    pub columns: &'static [&'static str],
    pub rows: Vec<AssetServerView>,
    pub pager: Pager,
    pub csv_url: String,
}

fn asset_server_view(kind: InventoryKind, s: &AssetServer) -> AssetServerView {
    AssetServerView {
        server_id: s.server_id.clone(),
        server_name: s.server_name.clone(),
        hostname: s.hostname.clone(),
        tab_url: url(
            &format!("/servers/{}/inventory/{}", s.server_id, kind.as_str()),
            &[("q", &s.name)],
        ),
        cells: item_cells(kind, &s.name, &s.data),
    }
}

/// `GET /assets/{kind}/servers?name=&value=&project=&page=`
pub async fn asset_servers(
    State(state): State<AppState>,
    Session(p): Session,
    Path(kind): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let k = ops::kind_param("kind", &kind)?;
    let name = m.get("name").cloned().unwrap_or_default();
    if name.is_empty() {
        return Err(ConsoleError::bad_request(
            "Field name is required: the group's exact name.",
        ));
    }
    // An empty value is a real value (a port without a program); only absence means "any".
    let value = m.get("value").cloned();
    let project = param(&m, "project");
    let page = page_param(&m);
    let found = ops::asset_servers(
        &state,
        &p,
        k.as_str(),
        &ops::AssetServersQuery {
            name: name.clone(),
            value: value.clone(),
            project: Some(project.clone()).filter(|s| !s.is_empty()),
            page: Some(page),
            per_page: Some(PER_PAGE),
            format: None,
        },
    )
    .await?;
    let link = |extra: &[(&str, &str)]| {
        let mut u = format!("/assets/{}/servers?name={}", k.as_str(), enc(&name));
        if let Some(v) = &value {
            u.push_str(&format!("&value={}", enc(v)));
        }
        for (key, v) in extra.iter().chain([("project", project.as_str())].iter()) {
            if !v.is_empty() {
                u.push_str(&format!("&{key}={}", enc(v)));
            }
        }
        u
    };
    let pager = Pager::new(page, PER_PAGE, found.items.len(), found.total, |n| {
        link(&[("page", &n.to_string())])
    });
    let csv_url = link(&[("format", "csv")]).replacen("/assets/", "/api/v1/assets/", 1);
    html(&AssetServersPage {
        nav: Nav::new(&p, "assets"),
        kind: k.as_str(),
        kind_label: kind_label(k),
        name_label: name_label(k),
        value_label: value_label(k),
        back_url: url(
            "/assets",
            &[("kind", k.as_str()), ("q", &name), ("project", &project)],
        ),
        columns: columns(k),
        rows: found
            .items
            .iter()
            .map(|s| asset_server_view(k, s))
            .collect(),
        pager,
        csv_url,
        name,
        value,
    })
}

/// The console pages of this capability.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{id}/changes", get(server_changes))
        .route("/servers/{id}/inventory/{kind}", get(server_kind))
        .route("/servers/{id}/inventory/{kind}/collect", post(collect))
        .route("/assets", get(assets))
        .route("/assets/changes", get(fleet_changes))
        .route("/assets/{kind}/servers", get(asset_servers))
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
