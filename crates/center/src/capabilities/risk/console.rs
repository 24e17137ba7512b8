//! Risk prevention pages: the fleet's vulnerabilities by CVE (with a severity chart), one CVE's
//! affected servers, one finding with its handling history, a server's Risks tab, the fleet's
//! weak passwords and password-policy results, scan tasks, whitelist rules and the per-project
//! risk policy.
//!
//! Every page reads and writes through [`crate::capabilities::risk::api`] (scans through
//! [`crate::api::tasks`]), so it shows and allows exactly what the REST API does for the same
//! caller; objects of other projects answer 404 there. Every string that came from an agent or
//! a vulnerability feed is escaped by the templates, none is marked safe.
//!
//! Forms that select many objects name each checkbox after the object (`finding_<id>`,
//! `server_<id>`): the console's form reader keeps one value per name, and distinct names keep
//! every selection without any script.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hostward_proto::Severity;
use hostward_proto::risk::SCAN_TASK;
use serde_json::Value;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::tasks::{self, CreateTasks};
use crate::capabilities::inventory::console::{IssueView, issues};
use crate::capabilities::risk::api::{self as ops, ActionBody, FleetQuery, NewRule, VulnQuery};
use crate::capabilities::server_tabs;
use crate::console::forms::{Flash, opt, opts, seg, severity_opts};
use crate::console::servers::risk_summary;
use crate::console::{
    ConsoleError, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts, html, html_status,
    project_names, project_opts, see_other,
};
use crate::findings::{
    self, ActionBar, ActionButton, ActionsView, HistoryView, RuleFacts, RuleMeta,
};
use crate::web::labels::{severity_class, severity_label};
use crate::web::page::{Pager, Tab, clip, page_param, param, scale, url};
use hostward_store::{PolicyResultRow, VulnFinding, VulnGroup, WeakPasswordRow, vuln_state};

/// Rows per page of the vulnerability lists.
pub const PER_PAGE: i64 = 50;
/// Rows per page of the scan list (the API returns the latest 1,000).
pub const SCAN_PER_PAGE: usize = 100;
/// Servers offered in the scan form, at most (the API's largest page).
pub(super) const PICK_SERVERS: u32 = 500;

// ---------------------------------------------------------------------------------------------
// Small pure helpers

/// Where a finding action may return to: a console page of findings.
const BACK: &[&str] = &["/vulnerabilities", "/servers/"];

/// How many different servers the rows are on.
fn distinct_servers<'a>(ids: impl Iterator<Item = &'a str>) -> usize {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// A severity filter value as typed; anything that is not a severity is dropped (it comes from a
/// form, and "any" is the honest reading of nonsense).
fn known_severity(s: &str) -> String {
    Severity::parse(s)
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

fn known_state(s: &str) -> String {
    Some(s)
        .filter(|s| vuln_state::ALL.contains(s))
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn state_class(s: &str) -> &'static str {
    match s {
        vuln_state::UNHANDLED | vuln_state::FAILED => "b-bad",
        vuln_state::FIXING | vuln_state::VERIFYING | vuln_state::RESTART_REQUIRED => "b-warn",
        vuln_state::FIXED => "b-ok",
        _ => "b-muted",
    }
}

fn restart_label(s: &str) -> &'static str {
    match s {
        "none" => "no restart",
        "service" => "restart services",
        "reboot" => "reboot",
        _ => "unknown",
    }
}

fn reason_label(s: &str) -> String {
    match s {
        "empty" => "no password".into(),
        "common_password" => "common password".into(),
        "custom_list" => "on the project's list".into(),
        "username_variant" => "user name variant".into(),
        "shared" => "shared with another account".into(),
        other => other.replace('_', " "),
    }
}

fn cvss(c: Option<f64>) -> String {
    c.map(|c| format!("{c:.1}")).unwrap_or_default()
}

/// `12 s`, `3 min 4 s`, `2 h 5 min`.
pub(crate) fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Minutes after midnight as `HH:MM` (1440 is `24:00`).
pub(crate) fn fmt_hhmm(min: u32) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// `HH:MM` (or `H:MM`) to minutes after midnight; `24:00` is the end of the day.
pub(crate) fn parse_hhmm(field: &str, s: &str) -> Result<u32, String> {
    let bad = || format!("{field}: use HH:MM, e.g. 02:30");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

pub(super) fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    let n: usize = m.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let ok = |text: String| Some(Flash { class: "ok", text });
    match m.get("done").map(String::as_str)? {
        "ignore" => ok(format!("{n} finding(s) ignored: they no longer count toward the servers' risk.")),
        "unignore" => ok(format!("{n} finding(s) reopened.")),
        "verify" => ok(format!(
            "Verification requested for {n} finding(s): the agents collect their software again and the center matches it at once."
        )),
        "fix" => ok(format!(
            "Fix queued for {n} finding(s): the agents upgrade the packages, then the center verifies the result."
        )),
        "none" => Some(Flash {
            class: "warn",
            text: "Select at least one finding first.".into(),
        }),
        "scan" => ok(format!(
            "Scan requested on {n} server(s); results show here as each agent reports them."
        )),
        "rule" => ok(format!(
            "Whitelist rule created; open findings it covers on {n} server(s) are now ignored."
        )),
        "rule_deleted" => ok(
            "Whitelist rule deleted. Findings it ignored stay ignored; new ones are no longer covered."
                .into(),
        ),
        "saved" => ok("Risk policy saved; the project's agents get it at once.".into()),
        _ => None,
    }
}

fn state_opts(selected: &str) -> Vec<Opt> {
    opts(vuln_state::ALL, selected, |s| s.replace('_', " "))
}

/// The problems a scan summary reports under `issues`.
fn scan_issues(summary: &Value) -> Vec<IssueView> {
    issues(summary.get("issues").unwrap_or(&Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Views

pub(crate) struct GroupRow {
    pub cve: String,
    pub href: String,
    pub severity: String,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub cvss: String,
    pub servers: i64,
    pub open: i64,
    pub package: String,
    pub more_packages: i64,
    pub summary: String,
    pub summary_title: String,
}

fn group_row(g: &VulnGroup) -> GroupRow {
    let (summary, summary_title) = clip(&g.summary, 110);
    GroupRow {
        href: format!("/vulnerabilities/{}", seg(&g.cve)),
        cve: g.cve.clone(),
        severity: g.severity.clone(),
        sev_label: severity_label(&g.severity),
        sev_class: severity_class(&g.severity),
        cvss: cvss(g.cvss),
        servers: g.servers,
        open: g.open,
        package: g.package.clone(),
        more_packages: (g.packages - 1).max(0),
        summary,
        summary_title,
    }
}

pub(crate) struct FindingRow {
    pub id: String,
    pub href: String,
    pub server_id: String,
    pub server_name: String,
    pub cve: String,
    pub cve_href: String,
    pub severity: String,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub cvss: String,
    pub package: String,
    pub installed: String,
    pub installed_title: String,
    /// Empty: no fixed version released yet.
    pub fixed: String,
    pub state: String,
    pub state_label: String,
    pub state_class: &'static str,
    pub state_note: String,
    pub fix_command: String,
    pub restart_label: &'static str,
    /// Still found by the latest match; only these can be handled.
    pub present: bool,
    /// Present, and the caller may handle findings in its project.
    pub selectable: bool,
    pub summary: String,
    pub summary_title: String,
}

fn finding_row(f: &VulnFinding, p: &Principal) -> FindingRow {
    let (installed, installed_title) = clip(&f.installed_version, 40);
    let (summary, summary_title) = clip(&f.summary, 110);
    FindingRow {
        id: f.id.clone(),
        href: format!("/vulnerabilities/findings/{}", seg(&f.id)),
        server_id: f.server_id.clone(),
        server_name: f.server_name.clone(),
        cve_href: format!("/vulnerabilities/{}", seg(&f.cve)),
        cve: f.cve.clone(),
        severity: f.severity.clone(),
        sev_label: severity_label(&f.severity),
        sev_class: severity_class(&f.severity),
        cvss: cvss(f.cvss),
        package: f.package.clone(),
        installed,
        installed_title,
        fixed: f.fixed_version.clone().unwrap_or_default(),
        state: f.state.clone(),
        state_label: f.state.replace('_', " "),
        state_class: state_class(&f.state),
        state_note: f.state_note.clone(),
        fix_command: f.fix_command.clone().unwrap_or_default(),
        restart_label: restart_label(&f.restart),
        present: f.present,
        selectable: f.present && p.require(&f.project_id, Role::Operator).is_ok(),
        summary,
        summary_title,
    }
}

pub(crate) struct WeakRow {
    pub server_id: String,
    pub server_name: String,
    pub account: String,
    pub uid: String,
    pub login_allowed: bool,
    pub reasons: Vec<String>,
    pub shared_with: String,
}

/// Only what the API holds about a weak password: who, not what the password is.
fn weak_row(w: &WeakPasswordRow) -> WeakRow {
    WeakRow {
        server_id: w.server_id.clone(),
        server_name: w.server_name.clone(),
        account: w.account.clone(),
        uid: w.uid.map(|u| u.to_string()).unwrap_or_default(),
        login_allowed: w.login_allowed,
        reasons: w.reasons.iter().map(|r| reason_label(r)).collect(),
        shared_with: w.shared_with.join(", "),
    }
}

pub(crate) struct PolicyRow {
    pub server_id: String,
    pub server_name: String,
    pub check_id: String,
    pub title: String,
    pub file: String,
    pub expected: String,
    /// None: not set on the host.
    pub actual: Option<String>,
    pub pass: bool,
    pub remedy: String,
}

fn policy_row(r: &PolicyResultRow) -> PolicyRow {
    PolicyRow {
        server_id: r.server_id.clone(),
        server_name: r.server_name.clone(),
        check_id: r.check_id.clone(),
        title: r.title.clone(),
        file: r.file.clone(),
        expected: r.expected.clone(),
        actual: r.actual.clone(),
        pass: r.pass,
        remedy: r.remedy.clone(),
    }
}

/// The vulnerability database in one line.
pub(crate) struct DbLine {
    pub version: i64,
    pub advisories: i64,
    pub imported: Option<Ts>,
    pub source: String,
    /// Why the findings cannot be trusted as complete: the database is empty or stale.
    pub warning: String,
}

/// Past this age the database misses what was published since: feeds publish daily.
const STALE_DB_SECS: i64 = 48 * 3600;

/// What is wrong with a database of `advisories` last imported at `imported_at`, at `now`.
pub(crate) fn db_warning(advisories: i64, imported_at: Option<i64>, now: i64) -> String {
    match imported_at {
        _ if advisories == 0 => "The vulnerability database is empty: no server's software is checked for vulnerabilities, and every risk status stays pending. Import a feed (hostward vulndb import) or let the center fetch one.".into(),
        Some(t) if now - t > STALE_DB_SECS => format!(
            "The vulnerability database was last imported {} days ago: vulnerabilities published since are not matched. Import a fresh feed or check the center's feed fetch in its log.",
            (now - t) / 86_400
        ),
        _ => String::new(),
    }
}

async fn db_line(state: &AppState, p: &Principal) -> Result<DbLine, ConsoleError> {
    let db = ops::vulndb(state, p).await?;
    let last = db.status.last_import;
    Ok(DbLine {
        version: db.status.version,
        advisories: db.status.advisories,
        imported: last.as_ref().map(|i| Ts::at(i.imported_at)),
        warning: db_warning(
            db.status.advisories,
            last.as_ref().map(|i| i.imported_at),
            hostward_store::now(),
        ),
        source: last.map(|i| clip(&i.source, 80).0).unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Severity chart (server-rendered SVG; sizes are SVG attributes, colours come from the CSS)

pub const SEV_LABEL_W: u32 = 80;
pub const SEV_BAR_W: u32 = 320;
pub const SEV_NUM_W: u32 = 60;
pub const SEV_ROW_H: u32 = 22;
pub const SEV_BAR_H: u32 = 15;

pub(crate) struct SevBar {
    pub severity: &'static str,
    pub label: &'static str,
    pub n: i64,
    pub href: String,
    pub y: u32,
    pub text_y: u32,
    pub w: u32,
    pub n_x: u32,
}

pub(crate) struct SevChart {
    pub width: u32,
    pub height: u32,
    pub bar_x: u32,
    pub bar_h: u32,
    pub bars: Vec<SevBar>,
}

/// One bar per severity, most severe first, scaled to the largest. `None` when all are zero.
pub(crate) fn severity_chart(counts: &[(Severity, i64, String)]) -> Option<SevChart> {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(0);
    if max <= 0 {
        return None;
    }
    let bars: Vec<SevBar> = counts
        .iter()
        .enumerate()
        .map(|(i, (s, n, href))| {
            let y = i as u32 * SEV_ROW_H + 4;
            let w = scale(*n, max, SEV_BAR_W);
            SevBar {
                severity: s.as_str(),
                label: severity_label(s.as_str()),
                n: *n,
                href: href.clone(),
                y,
                text_y: y + SEV_BAR_H - 3,
                w,
                n_x: SEV_LABEL_W + w + 6,
            }
        })
        .collect();
    Some(SevChart {
        width: SEV_LABEL_W + SEV_BAR_W + SEV_NUM_W,
        height: bars.len() as u32 * SEV_ROW_H + 8,
        bar_x: SEV_LABEL_W,
        bar_h: SEV_BAR_H,
        bars,
    })
}

pub(crate) struct SevCount {
    pub severity: &'static str,
    pub label: &'static str,
    pub n: i64,
    pub href: String,
    pub active: bool,
}

// ---------------------------------------------------------------------------------------------
// /vulnerabilities

#[derive(Template)]
#[template(path = "risk/vulns.html")]
pub(crate) struct VulnsPage {
    pub nav: Nav,
    pub section: &'static str,
    pub db: DbLine,
    pub q: String,
    pub package: String,
    pub severity_opts: Vec<Opt>,
    pub state_opts: Vec<Opt>,
    pub project_opts: Vec<Opt>,
    pub counts: Vec<SevCount>,
    pub chart: Option<SevChart>,
    pub rows: Vec<GroupRow>,
    pub pager: Pager,
    pub csv_url: String,
    pub filtered: bool,
}

struct VulnParams {
    project: String,
    severity: String,
    state: String,
    package: String,
    q: String,
    page: i64,
}

impl VulnParams {
    fn from_map(m: &HashMap<String, String>) -> VulnParams {
        VulnParams {
            project: param(m, "project"),
            severity: known_severity(&param(m, "severity")),
            state: known_state(&param(m, "state")),
            package: param(m, "package"),
            q: param(m, "q"),
            page: page_param(m),
        }
    }

    fn pairs<'a>(&'a self, severity: &'a str, page: &'a str) -> [(&'a str, &'a str); 6] {
        [
            ("q", &self.q),
            ("severity", severity),
            ("state", &self.state),
            ("package", &self.package),
            ("project", &self.project),
            ("page", page),
        ]
    }

    fn api(&self, severity: &str, page: i64, per_page: i64) -> VulnQuery {
        VulnQuery {
            project: opt(&self.project),
            severity: opt(severity),
            state: opt(&self.state),
            package: opt(&self.package),
            q: opt(&self.q),
            page: Some(page),
            per_page: Some(per_page),
            ..Default::default()
        }
    }
}

/// `GET /vulnerabilities?q=&severity=&state=&package=&project=&page=`
pub async fn vulnerabilities(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let vp = VulnParams::from_map(&m);
    let found = ops::groups(&state, &p, &vp.api(&vp.severity, vp.page, PER_PAGE)).await?;
    let mut chart_data = Vec::new();
    let mut counts = Vec::new();
    for s in Severity::ALL {
        let n = ops::groups(&state, &p, &vp.api(s.as_str(), 1, 1))
            .await?
            .total;
        let href = url("/vulnerabilities", &vp.pairs(s.as_str(), ""));
        chart_data.push((s, n, href.clone()));
        counts.push(SevCount {
            severity: s.as_str(),
            label: severity_label(s.as_str()),
            n,
            href,
            active: vp.severity == s.as_str(),
        });
    }
    let pager = Pager::new(vp.page, PER_PAGE, found.items.len(), found.total, |n| {
        url("/vulnerabilities", &vp.pairs(&vp.severity, &n.to_string()))
    });
    let csv_url = url(
        "/api/v1/vulnerabilities",
        &[("format", "csv")]
            .into_iter()
            .chain(vp.pairs(&vp.severity, ""))
            .collect::<Vec<_>>(),
    );
    html(&VulnsPage {
        nav: Nav::new(&p, "risk"),
        section: "vulnerabilities",
        db: db_line(&state, &p).await?,
        severity_opts: severity_opts(&vp.severity),
        state_opts: state_opts(&vp.state),
        project_opts: project_opts(&state, &p, &vp.project, Role::Viewer).await?,
        counts,
        chart: severity_chart(&chart_data),
        rows: found.items.iter().map(group_row).collect(),
        pager,
        csv_url,
        filtered: [&vp.q, &vp.severity, &vp.state, &vp.package, &vp.project]
            .iter()
            .any(|s| !s.is_empty()),
        q: vp.q,
        package: vp.package,
    })
}

// ---------------------------------------------------------------------------------------------
// Lists of findings (a CVE's servers, a server's Risks tab)

/// The filters of a list of findings as read from its query; a page that does not offer one
/// of them blanks it.
#[derive(Clone)]
struct FindingFilter {
    severity: String,
    state: String,
    project: String,
    page: i64,
}

impl FindingFilter {
    fn from_map(m: &HashMap<String, String>) -> FindingFilter {
        FindingFilter {
            severity: known_severity(&param(m, "severity")),
            state: known_state(&param(m, "state")),
            project: param(m, "project"),
            page: page_param(m),
        }
    }

    /// The filters as query pairs (empty ones are left out of URLs).
    fn pairs(&self) -> [(&str, &str); 3] {
        [
            ("severity", &self.severity),
            ("state", &self.state),
            ("project", &self.project),
        ]
    }

    /// `base` with the filters and `page` (left out on page 1).
    fn link(&self, base: &str, page: i64) -> String {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        let mut pairs = self.pairs().to_vec();
        pairs.push(("page", &page));
        url(base, &pairs)
    }

    /// One page of findings under these filters, with the page's links and download.
    fn list(
        &self,
        found: &ops::FindingPage,
        p: &Principal,
        base: &str,
        csv_url: String,
        show_server: bool,
    ) -> FindingList {
        let rows: Vec<FindingRow> = found.items.iter().map(|f| finding_row(f, p)).collect();
        FindingList {
            state: self.state.clone(),
            state_opts: state_opts(&self.state),
            can_act: rows.iter().any(|r| r.selectable),
            rows,
            pager: Pager::new(self.page, PER_PAGE, found.items.len(), found.total, |n| {
                self.link(base, n)
            }),
            csv_url,
            show_server,
            show_cve: !show_server,
        }
    }

    fn api(&self, cve: Option<&str>, page: Option<i64>, per_page: i64) -> VulnQuery {
        VulnQuery {
            cve: cve.map(str::to_string),
            severity: opt(&self.severity),
            state: opt(&self.state),
            project: opt(&self.project),
            page,
            per_page: Some(per_page),
            ..Default::default()
        }
    }
}

/// What the shared findings table (`risk_findings.html`) and its filter show.
pub(crate) struct FindingList {
    pub state: String,
    pub state_opts: Vec<Opt>,
    pub rows: Vec<FindingRow>,
    pub pager: Pager,
    pub csv_url: String,
    pub can_act: bool,
    pub show_server: bool,
    pub show_cve: bool,
}

// ---------------------------------------------------------------------------------------------
// /vulnerabilities/{cve}

#[derive(Template)]
#[template(path = "risk/cve.html")]
pub(crate) struct CvePage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub cve: String,
    /// This page's path (the CVE id encoded), for its filter form.
    pub action: String,
    pub nvd_url: String,
    pub sev_label: &'static str,
    pub sev_class: &'static str,
    pub cvss: String,
    pub summary: String,
    pub servers: i64,
    pub open: i64,
    pub project_opts: Vec<Opt>,
    pub list: FindingList,
    pub rule_url: String,
    pub actions: ActionsView,
}

/// `GET /vulnerabilities/{cve}?state=&project=&page=`: the servers it affects.
pub async fn cve(
    State(state): State<AppState>,
    Session(p): Session,
    Path(cve): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let ff = FindingFilter {
        severity: String::new(),
        ..FindingFilter::from_map(&m)
    };
    let in_project = FindingFilter {
        state: String::new(),
        ..ff.clone()
    };
    let group = ops::groups(&state, &p, &in_project.api(Some(&cve), None, 1))
        .await?
        .items
        .into_iter()
        .next();
    let found = ops::findings(
        &state,
        &p,
        None,
        &ff.api(Some(&cve), Some(ff.page), PER_PAGE),
    )
    .await?;
    // Gone everywhere it was found, it still has a history worth opening.
    let fixed_one = if group.is_none() && found.items.is_empty() {
        let fixed = FindingFilter {
            state: vuln_state::FIXED.into(),
            ..ff.clone()
        };
        ops::findings(&state, &p, None, &fixed.api(Some(&cve), None, 1))
            .await?
            .items
            .into_iter()
            .next()
    } else {
        None
    };
    let any = found.items.first().or(fixed_one.as_ref());
    let (severity, cvss_v, summary) = match (&group, any) {
        (Some(g), _) => (g.severity.clone(), g.cvss, g.summary.clone()),
        (None, Some(f)) => (f.severity.clone(), f.cvss, f.summary.clone()),
        (None, None) => return Err(ConsoleError::not_found()),
    };
    let base = format!("/vulnerabilities/{}", seg(&cve));
    let csv_url = url(
        "/api/v1/vulnerabilities/findings",
        &[[("format", "csv"), ("cve", &cve)].as_slice(), &ff.pairs()].concat(),
    );
    html(&CvePage {
        nav: Nav::new(&p, "risk"),
        flash: flash(&m),
        nvd_url: if cve.starts_with("CVE-") {
            format!("https://nvd.nist.gov/vuln/detail/{}", seg(&cve))
        } else {
            String::new()
        },
        sev_label: severity_label(&severity),
        sev_class: severity_class(&severity),
        cvss: cvss(cvss_v),
        summary,
        servers: group.as_ref().map(|g| g.servers).unwrap_or(0),
        open: group.as_ref().map(|g| g.open).unwrap_or(0),
        project_opts: project_opts(&state, &p, &ff.project, Role::Viewer).await?,
        list: ff.list(&found, &p, &base, csv_url, true),
        rule_url: url("/risk/rules", &[("cve", &cve), ("project", &ff.project)]),
        actions: ACTIONS.view(&p, &ff.link(&base, ff.page), true),
        action: base.clone(),
        cve,
    })
}

// ---------------------------------------------------------------------------------------------
// /vulnerabilities/findings/{id}

#[derive(Template)]
#[template(path = "risk/finding.html")]
pub(crate) struct FindingPage {
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub f: FindingRow,
    pub summary: String,
    pub installed: String,
    pub advisory_id: String,
    pub source_package: String,
    pub manager: String,
    pub fix_task_id: String,
    pub first_seen: Ts,
    pub last_seen: Ts,
    pub history: HistoryView,
    pub can_act: bool,
    pub actions: ActionsView,
}

/// `GET /vulnerabilities/findings/{id}`: one finding and who did what with it.
pub async fn finding(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let d = ops::finding(&state, &p, &id).await?;
    let f = &d.finding;
    html(&FindingPage {
        nav: Nav::new(&p, "risk"),
        flash: flash(&m),
        summary: f.summary.clone(),
        installed: f.installed_version.clone(),
        advisory_id: f.advisory_id.clone(),
        source_package: f.source_package.clone().unwrap_or_default(),
        manager: f.manager.clone(),
        fix_task_id: f.fix_task_id.clone().unwrap_or_default(),
        first_seen: Ts::at(f.first_seen),
        last_seen: Ts::at(f.last_seen),
        history: findings::history("finding-history", &d.history, state_class),
        can_act: f.present && p.require(&f.project_id, Role::Operator).is_ok(),
        actions: ACTIONS.view(
            &p,
            &format!("/vulnerabilities/findings/{}", seg(&f.id)),
            true,
        ),
        f: finding_row(f, &p),
    })
}

/// `POST /vulnerabilities/actions`: ignore, unignore, verify or fix the checked findings
/// (`finding_<id>` fields), then back to the page the form was on.
pub async fn act(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    ACTIONS
        .submit(&f, |action, finding_ids, note| async move {
            let body = ActionBody {
                action,
                finding_ids,
                note,
            };
            Ok(ops::act(&state, &p, body).await?.changed)
        })
        .await
}

/// The vulnerability findings' bulk actions, in the order of the buttons.
const ACTIONS: ActionBar = ActionBar {
    checkbox_prefix: "finding_",
    class: "",
    buttons: &[
        ActionButton {
            value: "ignore",
            label: "Ignore",
            class: "act-ignore",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "unignore",
            label: "Unignore",
            class: "act-unignore",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "verify",
            label: "Verify",
            class: "act-verify",
            title: "",
            conditional: false,
        },
        ActionButton {
            value: "fix",
            label: "Fix",
            class: "danger act-fix",
            title: "Runs the package manager on the server; the project's risk policy must allow one-click fixes",
            conditional: false,
        },
    ],
    back: BACK,
    home: "/vulnerabilities",
};

// ---------------------------------------------------------------------------------------------
// /servers/{id}/risks

pub(crate) struct CountBox {
    pub key: &'static str,
    pub label: &'static str,
    pub class: &'static str,
    pub n: i64,
}

pub(crate) fn count_boxes(counts: &Value) -> Vec<CountBox> {
    let n = |k: &str| counts.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut v: Vec<CountBox> = Severity::ALL
        .iter()
        .map(|s| CountBox {
            key: s.as_str(),
            label: severity_label(s.as_str()),
            class: severity_class(s.as_str()),
            n: n(s.as_str()),
        })
        .collect();
    v.push(CountBox {
        key: "weak_passwords",
        label: "Weak passwords",
        class: "b-bad",
        n: n("weak_passwords"),
    });
    v.push(CountBox {
        key: "policy_failed",
        label: "Policy items failed",
        class: "b-warn",
        n: n("policy_failed"),
    });
    v.push(CountBox {
        key: "baseline_failed",
        label: "Baseline checks failed",
        class: "b-warn",
        n: n("baseline_failed"),
    });
    v
}

pub(crate) struct ScanTaskView {
    pub id: String,
    pub state: String,
    pub created: Ts,
    pub updated: Ts,
    pub created_by: String,
}

#[derive(Template)]
#[template(path = "risk/server.html")]
pub(crate) struct ServerRisksPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<Flash>,
    pub risk_status: String,
    pub risk_reason: String,
    pub risk_changed: Ts,
    pub summary: String,
    pub counts: Vec<CountBox>,
    pub vuln_matched: Option<Ts>,
    pub vuln_version: i64,
    pub db_version: i64,
    pub weak_scanned: Option<Ts>,
    pub weak_checked: i64,
    pub weak_candidates: i64,
    pub weak_complete: bool,
    pub policy_scanned: Option<Ts>,
    pub policy_checks: i64,
    pub policy_failed: i64,
    pub baseline_scanned: Option<Ts>,
    pub last_scan: Option<Ts>,
    pub last_trigger: String,
    pub scan_issues: Vec<IssueView>,
    pub latest_task: Option<ScanTaskView>,
    pub can_scan: bool,
    pub severity: String,
    pub severity_opts: Vec<Opt>,
    pub list: FindingList,
    pub actions: ActionsView,
    pub weak: Vec<WeakRow>,
    /// For the password-policy table: no server column on a server's own page.
    pub show_server: bool,
    pub policy: Vec<PolicyRow>,
}

/// `GET /servers/{id}/risks?severity=&state=&page=`
pub async fn server_risks(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever else is asked.
    let risk = ops::server_risk(&state, &p, &id).await?;
    let srv = visible_server(&state, &p, &risk.server_id, Role::Viewer).await?;
    let tabs = server_tabs(&state, &p, &srv.id, "risks").await?;
    let ff = FindingFilter {
        project: String::new(),
        ..FindingFilter::from_map(&m)
    };
    let found = ops::findings(
        &state,
        &p,
        Some(&srv.id),
        &ff.api(None, Some(ff.page), PER_PAGE),
    )
    .await?;
    let base = format!("/servers/{}/risks", srv.id);
    let csv_url = url(
        &format!("/api/v1/servers/{}/vulnerabilities", srv.id),
        &[[("format", "csv")].as_slice(), &ff.pairs()].concat(),
    );
    let list = FindingList {
        can_act: p.require(&srv.project_id, Role::Operator).is_ok(),
        ..ff.list(&found, &p, &base, csv_url, false)
    };
    let weak = ops::weak_passwords(&state, &p, Some(&srv.id), None).await?;
    let policy = ops::password_policy(&state, &p, Some(&srv.id), &FleetQuery::default()).await?;
    let latest_task = tasks::list_for_server(&state, &p, &srv.id)
        .await?
        .items
        .into_iter()
        .find(|t| t.kind == SCAN_TASK)
        .map(|t| ScanTaskView {
            id: t.id,
            state: t.state,
            created: Ts::at(t.created_at),
            updated: Ts::at(t.updated_at),
            created_by: t.created_by,
        });
    let db = ops::vulndb(&state, &p).await?;
    let sc = &risk.scans;
    let ws = &sc.weak_summary;
    let ps = &sc.policy_summary;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut problems = scan_issues(ws);
    problems.extend(scan_issues(ps));
    html(&ServerRisksPage {
        nav: Nav::new(&p, "servers"),
        tabs,
        flash: flash(&m),
        summary: risk_summary(&risk.risk_counts),
        counts: count_boxes(&risk.risk_counts),
        risk_status: risk.risk_status.clone(),
        risk_reason: risk.risk_reason.clone(),
        risk_changed: Ts::at(srv.risk_changed_at),
        vuln_matched: Ts::opt(sc.vuln_matched_at),
        vuln_version: sc.vuln_matched_version,
        db_version: db.status.version,
        weak_scanned: Ts::opt(sc.weak_scanned_at),
        weak_checked: num(ws, "accounts_checked"),
        weak_candidates: num(ws, "candidates"),
        weak_complete: ws.get("complete").and_then(Value::as_bool).unwrap_or(true),
        policy_scanned: Ts::opt(sc.policy_scanned_at),
        policy_checks: num(ps, "checks"),
        policy_failed: num(ps, "failed"),
        baseline_scanned: Ts::opt(sc.baseline_scanned_at),
        last_scan: Ts::opt(sc.last_scan_at),
        last_trigger: sc.last_scan_trigger.clone(),
        scan_issues: problems,
        latest_task,
        can_scan: p.require(&srv.project_id, Role::Operator).is_ok()
            && srv.agent_id.is_some()
            && srv.revoked_at.is_none(),
        severity_opts: severity_opts(&ff.severity),
        list,
        actions: ACTIONS.view(&p, &ff.link(&base, ff.page), true),
        show_server: false,
        weak: weak.items.iter().map(weak_row).collect(),
        policy: policy.items.iter().map(policy_row).collect(),
        severity: ff.severity,
        sid: srv.id,
        sname: srv.name,
    })
}

/// `POST /servers/{id}/risks/scan`: a `risk_scan` task with every check for this server.
pub async fn scan_server(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    queue_scan(&state, &p, id, serde_json::json!({}), "risks").await
}

/// Queues a `risk_scan` task with `params` for one server, then back to its `tab` with
/// `done=scan`.
pub(crate) async fn queue_scan(
    state: &AppState,
    p: &Principal,
    server_id: String,
    params: Value,
    tab: &str,
) -> PageResult {
    let created = tasks::create(
        state,
        p,
        CreateTasks {
            server_ids: Some(vec![server_id]),
            kind: SCAN_TASK.to_string(),
            params: Some(params),
            ..Default::default()
        },
    )
    .await?;
    let sid = created
        .items
        .first()
        .map(|t| t.server_id.clone())
        .unwrap_or_default();
    Ok(see_other(&format!(
        "/servers/{}/{tab}?done=scan&n=1",
        seg(&sid)
    )))
}

// ---------------------------------------------------------------------------------------------
// /risk/weak-passwords and /risk/password-policy

#[derive(Template)]
#[template(path = "risk/weak.html")]
pub(crate) struct WeakPage {
    pub nav: Nav,
    pub section: &'static str,
    pub project_opts: Vec<Opt>,
    pub rows: Vec<WeakRow>,
    pub servers: usize,
    pub login_allowed: usize,
}

/// `GET /risk/weak-passwords?project=`
pub async fn weak_passwords(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let project = param(&m, "project");
    let found = ops::weak_passwords(&state, &p, None, Some(project.as_str())).await?;
    html(&WeakPage {
        nav: Nav::new(&p, "risk"),
        section: "weak_passwords",
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        servers: distinct_servers(found.items.iter().map(|w| w.server_id.as_str())),
        login_allowed: found.items.iter().filter(|w| w.login_allowed).count(),
        rows: found.items.iter().map(weak_row).collect(),
    })
}

#[derive(Template)]
#[template(path = "risk/policy_results.html")]
pub(crate) struct PolicyResultsPage {
    pub nav: Nav,
    pub section: &'static str,
    pub project_opts: Vec<Opt>,
    pub failed_only: bool,
    pub policy: Vec<PolicyRow>,
    pub show_server: bool,
    pub failed: usize,
    pub servers: usize,
}

/// `GET /risk/password-policy?project=&failed=1`
pub async fn password_policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let project = param(&m, "project");
    let failed_only = matches!(param(&m, "failed").as_str(), "1" | "true" | "on");
    let found = ops::password_policy(
        &state,
        &p,
        None,
        &FleetQuery {
            project: opt(&project),
            failed: Some(failed_only),
            format: None,
        },
    )
    .await?;
    html(&PolicyResultsPage {
        nav: Nav::new(&p, "risk"),
        section: "password_policy",
        project_opts: project_opts(&state, &p, &project, Role::Viewer).await?,
        failed_only,
        failed: found.items.iter().filter(|r| !r.pass).count(),
        servers: distinct_servers(found.items.iter().map(|r| r.server_id.as_str())),
        policy: found.items.iter().map(policy_row).collect(),
        show_server: true,
    })
}

// ---------------------------------------------------------------------------------------------
// /risk/rules

pub(crate) struct RuleView {
    pub meta: RuleMeta,
    pub cve: String,
    pub package: String,
    pub servers: Vec<(String, String)>,
}

#[derive(Default)]
pub(crate) struct RuleForm {
    pub project: String,
    pub cve: String,
    pub package: String,
    pub server_ids: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "risk/rules.html")]
pub(crate) struct RulesPage {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_opts: Vec<Opt>,
    pub rows: Vec<RuleView>,
    pub operator_projects: Vec<Opt>,
    pub form: RuleForm,
}

async fn render_rules(
    state: &AppState,
    p: &Principal,
    m: &HashMap<String, String>,
    form: RuleForm,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let project = param(m, "project");
    let list = ops::rules(state, p, Some(project.as_str())).await?;
    let names: HashMap<String, String> = project_names(state, p).await?.into_iter().collect();
    let mut server_names: HashMap<String, String> = HashMap::new();
    let mut rows = Vec::with_capacity(list.items.len());
    for r in list.items {
        let mut servers = Vec::new();
        for id in &r.server_ids {
            if !server_names.contains_key(id) {
                // A server deleted since the rule was made shows by its id.
                let name = visible_server(state, p, id, Role::Viewer)
                    .await
                    .map(|s| s.name)
                    .unwrap_or_else(|_| id.clone());
                server_names.insert(id.clone(), name);
            }
            servers.push((id.clone(), server_names[id].clone()));
        }
        rows.push(RuleView {
            cve: r.cve.unwrap_or_default(),
            package: r.package.unwrap_or_default(),
            servers,
            meta: RuleMeta::new(
                p,
                &names,
                "/risk/rules",
                RuleFacts {
                    project_id: &r.project_id,
                    id: r.id,
                    reason: r.reason,
                    created_by: r.created_by,
                    created_at: r.created_at,
                },
            ),
        });
    }
    let form_project = if form.project.is_empty() {
        project.clone()
    } else {
        form.project.clone()
    };
    html_status(
        status,
        &RulesPage {
            nav: Nav::new(p, "risk"),
            section: "rules",
            flash: flash(m),
            error,
            project_opts: project_opts(state, p, &project, Role::Viewer).await?,
            rows,
            operator_projects: project_opts(state, p, &form_project, Role::Operator).await?,
            form,
        },
    )
}

/// `GET /risk/rules?project=&cve=&package=` (`cve` and `package` fill in the form).
pub async fn rules(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let form = RuleForm {
        cve: param(&m, "cve"),
        package: param(&m, "package"),
        ..Default::default()
    };
    render_rules(&state, &p, &m, form, StatusCode::OK, None).await
}

/// `POST /risk/rules`
pub async fn create_rule(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let server_ids: Vec<String> = f
        .get("server_ids")
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let form = RuleForm {
        project: f.get("project").to_string(),
        cve: f.get("cve").to_string(),
        package: f.get("package").to_string(),
        server_ids: f.get("server_ids").to_string(),
        reason: f.get("reason").to_string(),
    };
    let input = NewRule {
        project_id: f.opt("project"),
        cve: f.opt("cve"),
        package: f.opt("package"),
        server_ids,
        reason: f.get("reason").to_string(),
    };
    // A server id that is not in the project is "not found", which tells nothing about other
    // projects, so it is shown next to the form like the other refusals.
    let none = HashMap::new();
    findings::create_rule(
        ops::create_rule(&state, &p, input).await,
        &[
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
        ],
        |r| format!("/risk/rules?done=rule&n={}", r.servers_affected),
        |status, message| render_rules(&state, &p, &none, form, status, Some(message)),
    )
    .await
}

/// `POST /risk/rules/{id}/delete`
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    ops::delete_rule(&state, &p, &id).await?;
    Ok(see_other("/risk/rules?done=rule_deleted"))
}

/// The console pages of this capability.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{id}/risks", get(server_risks))
        .route("/servers/{id}/risks/scan", post(scan_server))
        .route("/vulnerabilities", get(vulnerabilities))
        .route("/vulnerabilities/actions", post(act))
        .route("/vulnerabilities/findings/{id}", get(finding))
        .route("/vulnerabilities/{cve}", get(cve))
        .route("/risk/weak-passwords", get(weak_passwords))
        .route("/risk/password-policy", get(password_policy))
        .route("/risk/rules", get(rules).post(create_rule))
        .route("/risk/rules/{id}/delete", post(delete_rule))
}

#[cfg(test)]
mod tests {
    use super::super::scans_console::scan_checks;
    use super::*;
    use crate::console::forms::{safe_back, with_done};

    #[test]
    fn an_empty_or_stale_vulnerability_database_is_warned_of() {
        let now = 10 * 86_400;
        assert!(db_warning(0, None, now).contains("empty"));
        assert!(
            db_warning(0, Some(now), now).contains("empty"),
            "imported, nothing in it"
        );
        assert_eq!(db_warning(5, Some(now - 47 * 3600), now), "");
        assert!(db_warning(5, Some(now - 3 * 86_400), now).contains("3 days ago"));
    }

    #[test]
    fn hhmm_round_trips_and_names_the_field() {
        assert_eq!(parse_hhmm("window_start", "02:30"), Ok(150));
        assert_eq!(parse_hhmm("window_start", "2:30"), Ok(150));
        assert_eq!(parse_hhmm("window_end", "24:00"), Ok(1440));
        assert_eq!(fmt_hhmm(1440), "24:00");
        assert_eq!(fmt_hhmm(0), "00:00");
        for bad in ["", "2", "24:01", "12:60", "1:2", "aa:bb", "-1:00", "123:00"] {
            let e = parse_hhmm("window_end", bad).unwrap_err();
            assert!(e.starts_with("window_end:"), "{bad}: {e}");
        }
    }

    #[test]
    fn actions_return_only_to_console_pages() {
        assert_eq!(
            safe_back("/servers/x/risks", BACK),
            Some("/servers/x/risks")
        );
        assert_eq!(
            safe_back("/vulnerabilities/CVE-1", BACK),
            Some("/vulnerabilities/CVE-1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "/users",
            "",
            "/servers/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(safe_back(bad, BACK), None, "{bad:?}");
        }
        assert_eq!(
            with_done("/servers/s/risks?state=ignored&done=fix&n=2", "ignore", 3),
            "/servers/s/risks?state=ignored&done=ignore&n=3"
        );
        assert_eq!(
            with_done("/vulnerabilities/C", "none", 0),
            "/vulnerabilities/C?done=none&n=0"
        );
    }

    #[test]
    fn severity_chart_scales_and_skips_an_empty_fleet() {
        let data: Vec<(Severity, i64, String)> = Severity::ALL
            .iter()
            .zip([4, 2, 0, 1])
            .map(|(s, n)| (*s, n, format!("/v?severity={s}")))
            .collect();
        let c = severity_chart(&data).unwrap();
        assert_eq!(c.bars.len(), 4);
        assert_eq!(c.bars[0].w, SEV_BAR_W);
        assert_eq!(c.bars[1].w, SEV_BAR_W / 2);
        assert_eq!(c.bars[2].w, 0);
        assert!(c.bars[3].w >= 1);
        assert_eq!(c.bars[0].label, "Critical");
        assert!(c.bars.iter().all(|b| b.n_x + 30 <= c.width));
        let zero: Vec<(Severity, i64, String)> = Severity::ALL
            .iter()
            .map(|s| (*s, 0, String::new()))
            .collect();
        assert!(severity_chart(&zero).is_none());
    }

    #[test]
    fn small_helpers() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(125), "2 min 5 s");
        assert_eq!(duration(7300), "2 h 1 min");
        assert_eq!(seg("CVE 1"), "CVE%201");
        assert_eq!(known_severity("High"), "");
        assert_eq!(known_severity("high"), "high");
        assert_eq!(known_state("ignored"), "ignored");
        assert_eq!(known_state("nope"), "");
        assert_eq!(
            scan_checks(&serde_json::json!({"checks": ["weak_passwords"]})),
            "weak passwords"
        );
        assert_eq!(scan_checks(&serde_json::json!({})), "all checks");
    }
}
