//! File-change pages: the fleet's changes (`/files`, the "Files" area, with filters, paging and
//! the API's CSV) and one server's (`/servers/{id}/file-changes`, a server tab). Each change
//! shows its time, operation (a move as from → to), path, important badge, the state before
//! and after (hash, size, mode, owner) and the writer, or why none is known. Every page reads
//! through [`crate::capabilities::fim::api`]; paths, hashes and command lines come from agents
//! and are escaped by the templates.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;

use crate::AppState;
use crate::api::servers::{ServerQuery, visible_server};
use crate::capabilities::alarms::console::parse_date;
use crate::capabilities::behaviour::console::{octal_mode, short_hash};
use crate::capabilities::fim::api::{self as ops, FileChangeQuery, SOURCES, operations};
use crate::capabilities::server_tabs;
use crate::console::forms::{opt, opts};
use crate::console::{ConsoleError, project_opts};
use crate::console::{Nav, Opt, PageResult, Principal, Role, Session, Ts, fmt_bytes, html};
use crate::web::page::{Pager, Tab, clip, page_param, param, url};
use hostward_store::{FileChangeRow, FileStateRow};

/// Rows per page of the change lists.
pub const PER_PAGE: i64 = 50;
/// Servers offered in the fleet list's server filter, at most (the API's largest page).
const PICK_SERVERS: u32 = 500;
/// Characters of a writer's command line shown; the whole line is its title.
const CMDLINE_CHARS: usize = 120;

/// One attribute before and after a change; an empty side is a state the path did not have
/// (no old state for a create, no new one for a delete).
pub(crate) struct Diff {
    pub old: String,
    pub new: String,
    /// Full values for titles (hashes are shown short).
    pub old_title: String,
    pub new_title: String,
    /// Both sides present and different.
    pub changed: bool,
}

impl Diff {
    fn of(old: Option<String>, new: Option<String>) -> Diff {
        Diff::titled(
            old.map(|o| (o, String::new())),
            new.map(|n| (n, String::new())),
        )
    }

    fn titled(old: Option<(String, String)>, new: Option<(String, String)>) -> Diff {
        let (old, old_title) = old.unwrap_or_default();
        let (new, new_title) = new.unwrap_or_default();
        let full = |shown: &str, title: &str| {
            if title.is_empty() {
                shown.to_string()
            } else {
                title.to_string()
            }
        };
        Diff {
            changed: !old.is_empty()
                && !new.is_empty()
                && full(&old, &old_title) != full(&new, &new_title),
            old,
            new,
            old_title,
            new_title,
        }
    }
}

/// The process that wrote a change, as the page shows it.
pub(crate) struct WriterView {
    pub exe: String,
    pub pid: u32,
    pub cmdline: String,
    pub cmdline_title: String,
    /// `alice (uid 1000)`.
    pub user: String,
}

pub(crate) struct ChangeView {
    pub id: i64,
    pub server_id: String,
    pub server_name: String,
    pub at: Ts,
    pub op: String,
    pub op_class: &'static str,
    pub path: String,
    /// A move's old path; empty otherwise.
    pub from: String,
    pub important: bool,
    pub source: String,
    pub hash: Diff,
    pub size: Diff,
    pub mode: Diff,
    pub owner: Diff,
    pub kind: Diff,
    pub writer: Option<WriterView>,
    /// Why no writer is shown.
    pub no_writer: &'static str,
}

fn op_class(op: &str) -> &'static str {
    match op {
        "delete" => "b-bad",
        "create" => "b-ok",
        "attributes" => "b-muted",
        _ => "b-warn",
    }
}

fn side<T>(s: &Option<FileStateRow>, f: impl Fn(&FileStateRow) -> T) -> Option<T> {
    s.as_ref().map(f)
}

pub(crate) fn change_view(c: &FileChangeRow) -> ChangeView {
    let hash = |s: &FileStateRow| {
        let h = s.hash.clone().unwrap_or_default();
        // A symlink's "hash" is its target: shown whole.
        if s.kind == "symlink" {
            (h, String::new())
        } else {
            (short_hash(&h), h)
        }
    };
    let writer = c.process.as_ref().map(|p| {
        let (cmdline, cmdline_title) = clip(&p.cmdline, CMDLINE_CHARS);
        WriterView {
            exe: p.exe.clone(),
            pid: p.pid,
            cmdline,
            cmdline_title,
            user: if p.user.is_empty() {
                format!("uid {}", p.uid)
            } else {
                format!("{} (uid {})", p.user, p.uid)
            },
        }
    });
    ChangeView {
        id: c.id,
        server_id: c.server_id.clone(),
        server_name: c.server_name.clone(),
        at: Ts::at(c.ts),
        op_class: op_class(&c.op),
        op: c.op.clone(),
        path: c.path.clone(),
        from: c.from.clone().unwrap_or_default(),
        important: c.important,
        source: c.source.clone(),
        hash: Diff::titled(
            side(&c.old, hash).filter(|h| !h.0.is_empty()),
            side(&c.new, hash).filter(|h| !h.0.is_empty()),
        ),
        size: Diff::of(
            side(&c.old, |s| fmt_bytes(s.size.max(0) as u64)),
            side(&c.new, |s| fmt_bytes(s.size.max(0) as u64)),
        ),
        mode: Diff::of(
            side(&c.old, |s| octal_mode(s.mode)),
            side(&c.new, |s| octal_mode(s.mode)),
        ),
        owner: Diff::of(
            side(&c.old, |s| format!("{}:{}", s.uid, s.gid)),
            side(&c.new, |s| format!("{}:{}", s.uid, s.gid)),
        ),
        kind: Diff::of(
            side(&c.old, |s| s.kind.clone()),
            side(&c.new, |s| s.kind.clone()),
        ),
        no_writer: if c.source == "scan" {
            "found by a scan: writer unknown"
        } else {
            "the kernel did not name the writer"
        },
        writer,
    }
}

/// The filters of a change list as read from its query; nonsense values are dropped (they
/// come from a form, and "any" is the honest reading of nonsense).
#[derive(Debug, Default, Clone)]
struct ChangeParams {
    project: String,
    server: String,
    path: String,
    op: String,
    important: String,
    source: String,
    since: String,
    until: String,
    page: i64,
}

impl ChangeParams {
    fn from_map(m: &HashMap<String, String>) -> ChangeParams {
        let known = |k: &str, allowed: &[&str]| {
            Some(param(m, k))
                .filter(|v| allowed.contains(&v.as_str()))
                .unwrap_or_default()
        };
        let date = |k: &str| Some(param(m, k)).filter(|d| parse_date(d).is_some());
        ChangeParams {
            project: param(m, "project"),
            server: param(m, "server"),
            path: param(m, "path"),
            op: known("op", &operations()),
            important: known("important", &["true", "false"]),
            source: known("source", SOURCES),
            since: date("since").unwrap_or_default(),
            until: date("until").unwrap_or_default(),
            page: page_param(m),
        }
    }

    /// The query pairs of the list's links; `page` empty on the first.
    fn pairs<'a>(&'a self, page: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("project", &self.project),
            ("server", &self.server),
            ("path", &self.path),
            ("op", &self.op),
            ("important", &self.important),
            ("source", &self.source),
            ("since", &self.since),
            ("until", &self.until),
            ("page", page),
        ]
    }

    fn filtered(&self) -> bool {
        self.pairs("").iter().any(|(_, v)| !v.is_empty())
    }

    fn link(&self, base: &str, page: i64) -> String {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        url(base, &self.pairs(&page))
    }

    /// Unix bounds: `until` covers its whole day.
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (
            parse_date(&self.since),
            parse_date(&self.until).map(|t| t + 86_399),
        )
    }

    fn api(&self) -> FileChangeQuery {
        let (since, until) = self.bounds();
        FileChangeQuery {
            project: opt(&self.project),
            server: opt(&self.server),
            path: opt(&self.path),
            op: opt(&self.op),
            important: opt(&self.important),
            source: opt(&self.source),
            since,
            until,
            page: Some(self.page),
            per_page: Some(PER_PAGE),
            format: None,
        }
    }

    /// The API's CSV of the same filters.
    fn csv_url(&self) -> String {
        let (since, until) = self.bounds();
        let since = since.map(|t| t.to_string()).unwrap_or_default();
        let until = until.map(|t| t.to_string()).unwrap_or_default();
        let mut pairs = vec![("format", "csv")];
        pairs.extend(
            self.pairs("")
                .into_iter()
                .filter(|(k, _)| !matches!(*k, "since" | "until" | "page")),
        );
        pairs.extend([("since", since.as_str()), ("until", until.as_str())]);
        url("/api/v1/file-changes", &pairs)
    }
}

/// The select options every change list's filter form has.
pub(crate) struct FilterOpts {
    pub op: Vec<Opt>,
    pub important: Vec<Opt>,
    pub source: Vec<Opt>,
}

fn filter_opts(cp: &ChangeParams) -> FilterOpts {
    FilterOpts {
        op: opts(&operations(), &cp.op, str::to_string),
        important: opts(&["true", "false"], &cp.important, |v| {
            if v == "true" {
                "important files only".into()
            } else {
                "other files only".into()
            }
        }),
        source: opts(SOURCES, &cp.source, |v| {
            if v == "realtime" {
                "as it happened".into()
            } else {
                "found by a scan".into()
            }
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// /files

#[derive(Template)]
#[template(path = "fim/changes.html")]
pub(crate) struct ChangesPage {
    pub nav: Nav,
    pub section: &'static str,
    pub project_opts: Vec<Opt>,
    pub server_opts: Vec<Opt>,
    pub path: String,
    pub since: String,
    pub until: String,
    pub opts: FilterOpts,
    pub rows: Vec<ChangeView>,
    pub show_server: bool,
    pub pager: Pager,
    pub csv_url: String,
    pub filtered: bool,
}

/// The server filter's options: the caller's servers by name (of the chosen project), and the
/// chosen server even when it is not among them.
async fn server_opts(
    state: &AppState,
    p: &Principal,
    cp: &ChangeParams,
) -> Result<Vec<Opt>, ConsoleError> {
    let list = crate::api::servers::list(
        state,
        p,
        ServerQuery {
            project: opt(&cp.project),
            per_page: Some(PICK_SERVERS),
            ..Default::default()
        },
    )
    .await?;
    let mut v: Vec<Opt> = list
        .items
        .into_iter()
        .map(|s| Opt {
            selected: s.id == cp.server,
            label: s.name,
            value: s.id,
        })
        .collect();
    v.sort_by(|a, b| a.label.cmp(&b.label));
    if !cp.server.is_empty() && !v.iter().any(|o| o.selected) {
        v.insert(
            0,
            Opt {
                value: cp.server.clone(),
                label: cp.server.clone(),
                selected: true,
            },
        );
    }
    Ok(v)
}

/// `GET /files?project=&server=&path=&op=&important=&source=&since=&until=&page=`
pub async fn changes(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let cp = ChangeParams::from_map(&m);
    let found = ops::file_changes(&state, &p, &cp.api()).await?;
    let rows: Vec<ChangeView> = found.items.iter().map(change_view).collect();
    let pager = Pager::new(cp.page, PER_PAGE, rows.len(), found.total, |n| {
        cp.link("/files", n)
    });
    html(&ChangesPage {
        nav: Nav::new(&p, "files"),
        section: "changes",
        project_opts: project_opts(&state, &p, &cp.project, Role::Viewer).await?,
        server_opts: server_opts(&state, &p, &cp).await?,
        opts: filter_opts(&cp),
        rows,
        show_server: true,
        pager,
        csv_url: cp.csv_url(),
        filtered: cp.filtered(),
        path: cp.path,
        since: cp.since,
        until: cp.until,
    })
}

// ---------------------------------------------------------------------------------------------
// /servers/{id}/file-changes

#[derive(Template)]
#[template(path = "fim/server_changes.html")]
pub(crate) struct ServerChangesPage {
    pub nav: Nav,
    pub sid: String,
    pub sname: String,
    pub tabs: Vec<Tab>,
    pub path: String,
    pub since: String,
    pub until: String,
    pub opts: FilterOpts,
    pub rows: Vec<ChangeView>,
    pub show_server: bool,
    pub pager: Pager,
    pub csv_url: String,
    pub filtered: bool,
}

/// `GET /servers/{id}/file-changes?path=&op=&important=&source=&since=&until=&page=`
pub async fn server_changes(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    // Authorization first: another project's server is 404 whatever else is asked.
    let srv = visible_server(&state, &p, &id, Role::Viewer).await?;
    let mut cp = ChangeParams::from_map(&m);
    cp.project.clear();
    cp.server.clear();
    let base = format!("/servers/{}/file-changes", srv.id);
    let filtered = cp.filtered();
    let link_params = cp.clone();
    cp.server = srv.id.clone();
    let found = ops::file_changes(&state, &p, &cp.api()).await?;
    let rows: Vec<ChangeView> = found.items.iter().map(change_view).collect();
    let pager = Pager::new(cp.page, PER_PAGE, rows.len(), found.total, |n| {
        link_params.link(&base, n)
    });
    html(&ServerChangesPage {
        nav: Nav::new(&p, "servers"),
        tabs: server_tabs(&state, &p, &srv.id, "file-changes").await?,
        sid: srv.id,
        sname: srv.name,
        opts: filter_opts(&cp),
        rows,
        show_server: false,
        pager,
        csv_url: cp.csv_url(),
        filtered,
        path: cp.path,
        since: cp.since,
        until: cp.until,
    })
}

/// The file-change pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/files", get(changes))
        .route("/servers/{id}/file-changes", get(server_changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::alarm::ProcessInfo;

    fn st(kind: &str, size: i64, mode: i64, hash: Option<&str>) -> FileStateRow {
        FileStateRow {
            kind: kind.into(),
            size,
            mode,
            uid: 0,
            gid: 0,
            hash: hash.map(str::to_string),
        }
    }

    fn row(op: &str, source: &str) -> FileChangeRow {
        FileChangeRow {
            id: 1,
            server_id: "s1".into(),
            server_name: "web".into(),
            project_id: "p".into(),
            ts: 1_700_000_000,
            path: "/etc/passwd".into(),
            op: op.into(),
            from: None,
            important: true,
            source: source.into(),
            old: Some(st("file", 1000, 0o644, Some(&"a".repeat(64)))),
            new: Some(st("file", 2048, 0o4755, Some(&"b".repeat(64)))),
            process: None,
            received_at: 1_700_000_001,
        }
    }

    #[test]
    fn a_change_shows_old_and_new_and_why_no_writer_is_known() {
        let v = change_view(&row("modify", "scan"));
        assert_eq!(
            (v.hash.old.as_str(), v.hash.new.as_str()),
            ("aaaaaaaaaaaa", "bbbbbbbbbbbb")
        );
        assert_eq!(v.hash.new_title, "b".repeat(64));
        assert!(v.hash.changed && v.size.changed && v.mode.changed);
        assert!(!v.owner.changed && !v.kind.changed);
        assert_eq!((v.mode.old.as_str(), v.mode.new.as_str()), ("0644", "4755"));
        assert_eq!(v.size.new, "2.0 KiB");
        assert!(v.writer.is_none());
        assert_eq!(v.no_writer, "found by a scan: writer unknown");
        assert_eq!(
            change_view(&row("modify", "realtime")).no_writer,
            "the kernel did not name the writer"
        );

        let created = FileChangeRow {
            old: None,
            process: Some(ProcessInfo {
                pid: 7,
                exe: "/usr/bin/cp".into(),
                cmdline: "x".repeat(300),
                uid: 1000,
                user: "alice".into(),
                ..Default::default()
            }),
            ..row("create", "realtime")
        };
        let v = change_view(&created);
        assert!(v.hash.old.is_empty() && !v.hash.changed, "no old side");
        let w = v.writer.unwrap();
        assert_eq!((w.pid, w.user.as_str()), (7, "alice (uid 1000)"));
        assert_eq!(
            w.cmdline.chars().count(),
            CMDLINE_CHARS + 1,
            "clipped with …"
        );
        assert_eq!(w.cmdline_title.len(), 300);

        let link = FileChangeRow {
            new: Some(st("symlink", 11, 0o777, Some("/etc/shadow"))),
            ..row("modify", "scan")
        };
        assert_eq!(
            change_view(&link).hash.new,
            "/etc/shadow",
            "a target is shown whole"
        );
    }

    #[test]
    fn filters_drop_nonsense_and_links_keep_the_rest() {
        let m: HashMap<String, String> = [
            ("op", "explode"),
            ("important", "true"),
            ("source", "scan"),
            ("since", "2026-13-01"),
            ("until", "2026-02-03"),
            ("path", "/etc"),
            ("page", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cp = ChangeParams::from_map(&m);
        assert_eq!((cp.op.as_str(), cp.since.as_str()), ("", ""));
        assert_eq!(cp.page, 2);
        let q = cp.api();
        assert_eq!(q.important.as_deref(), Some("true"));
        assert_eq!(q.until, parse_date("2026-02-03").map(|t| t + 86_399));
        assert_eq!(
            cp.link("/files", 3),
            "/files?path=%2Fetc&important=true&source=scan&until=2026-02-03&page=3"
        );
        assert!(cp.csv_url().starts_with(
            "/api/v1/file-changes?format=csv&path=%2Fetc&important=true&source=scan&until="
        ));
        assert!(!ChangeParams::default().filtered());
    }
}
