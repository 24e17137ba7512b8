//! The project's tamper protection policy page (`/alarms/tamper-policy`, a tab of the alarms
//! area): the switch, protected directories as rows (path, excluded subdirectories and file
//! types `;`-separated), privileged programs one per line, and weekly unlock windows as rows
//! (days, start, end). Saved through the API operation, which validates the whole policy: a
//! refused one is shown again as typed with the message naming the field and index, and
//! nothing is saved.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::tamper::{
    MAX_DIRECTORIES, MAX_PRIVILEGED, MAX_WINDOWS, ProtectedDir, TamperPolicy, Window,
};

use crate::AppState;
use crate::capabilities::tamper::api as ops;
use crate::console::forms::{
    DirRow, Flash, lines, policy_project, project_choice, required_project, row_numbers,
    save_policy_form, truthy,
};
use crate::console::{
    Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, html, html_status, project_names,
};
use crate::web::page::{param, url};

const PAGE: &str = "/alarms/tamper-policy";
/// Empty rows offered below the filled ones, so a few can be added per save.
const SPARE_DIRS: usize = 3;
const SPARE_WINDOWS: usize = 2;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    (param(m, "done") == "saved").then(|| Flash {
        class: "ok",
        text: "Tamper protection policy saved; the project's agents apply it at once.".into(),
    })
}

pub(crate) struct DayBox {
    /// 1 = Monday … 7 = Sunday.
    pub n: u8,
    pub label: &'static str,
    pub on: bool,
}

/// One unlock window row, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WindowRow {
    /// Its index in the policy (`windows[i]`).
    pub index: usize,
    /// Ticked days, 1 = Monday … 7 = Sunday; none ticked is every day.
    pub days: Vec<u8>,
    pub start: String,
    pub end: String,
}

impl WindowRow {
    fn blank(&self) -> bool {
        self.days.is_empty() && self.start.is_empty() && self.end.is_empty()
    }

    pub fn day_boxes(&self) -> Vec<DayBox> {
        (1..=7u8)
            .map(|n| DayBox {
                n,
                label: DAY_NAMES[usize::from(n) - 1],
                on: self.days.contains(&n),
            })
            .collect()
    }
}

/// The policy form's fields as text, so a refused form shows what was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyForm {
    pub enabled: bool,
    pub lock_files: bool,
    /// The filled rows, in the page's order (empty rows dropped, so each row's index is the
    /// one a message names).
    pub dirs: Vec<DirRow>,
    /// One executable path per line.
    pub privileged: String,
    pub windows: Vec<WindowRow>,
}

impl PolicyForm {
    fn of(p: &TamperPolicy) -> PolicyForm {
        PolicyForm {
            enabled: p.enabled,
            lock_files: p.lock_files,
            dirs: p
                .directories
                .iter()
                .enumerate()
                .map(|(index, d)| DirRow::of(index, &d.path, &d.exclude, &d.exclude_types))
                .collect(),
            privileged: p.privileged.join("\n"),
            windows: p
                .windows
                .iter()
                .enumerate()
                .map(|(index, w)| WindowRow {
                    index,
                    days: w.days.clone(),
                    start: w.start.clone(),
                    end: w.end.clone(),
                })
                .collect(),
        }
    }

    fn from_fields(f: &Fields) -> PolicyForm {
        let dirs = DirRow::read(f, "dir_");
        let windows = row_numbers(f, &["win_start_", "win_end_", "win_day_"])
            .into_iter()
            .map(|i| WindowRow {
                index: 0,
                days: (1..=7u8)
                    .filter(|d| truthy(f, &format!("win_day_{i}_{d}")))
                    .collect(),
                start: f.get(&format!("win_start_{i}")).to_string(),
                end: f.get(&format!("win_end_{i}")).to_string(),
            })
            .filter(|r| !r.blank())
            .enumerate()
            .map(|(index, r)| WindowRow { index, ..r })
            .collect();
        PolicyForm {
            enabled: truthy(f, "enabled"),
            lock_files: truthy(f, "lock_files"),
            dirs,
            privileged: f.0.get("privileged").cloned().unwrap_or_default(),
            windows,
        }
    }

    /// The policy the form describes. Every check is the policy's own (`validate`, in the API
    /// operation), so a message names the field and index the rows show.
    fn policy(&self) -> TamperPolicy {
        TamperPolicy {
            enabled: self.enabled,
            lock_files: self.lock_files,
            directories: self
                .dirs
                .iter()
                .map(|r| ProtectedDir {
                    path: r.path.trim().to_string(),
                    exclude: r.exclude_list(),
                    exclude_types: r.types_list(),
                })
                .collect(),
            privileged: lines(&self.privileged),
            windows: self
                .windows
                .iter()
                .map(|w| Window {
                    days: w.days.clone(),
                    start: w.start.trim().to_string(),
                    end: w.end.trim().to_string(),
                })
                .collect(),
        }
    }

    /// The rows the page shows: the filled ones and a few empty ones after them, up to the
    /// bound (more when more were typed, so they can be removed).
    fn shown_dirs(&self) -> Vec<DirRow> {
        DirRow::shown(&self.dirs, SPARE_DIRS, MAX_DIRECTORIES)
    }

    fn shown_windows(&self) -> Vec<WindowRow> {
        let n = (self.windows.len() + SPARE_WINDOWS)
            .min(MAX_WINDOWS)
            .max(self.windows.len());
        (0..n)
            .map(|index| {
                self.windows.get(index).cloned().unwrap_or(WindowRow {
                    index,
                    ..Default::default()
                })
            })
            .collect()
    }
}

#[derive(Template)]
#[template(path = "tamper/policy.html")]
pub(crate) struct PolicyPage<'a> {
    pub nav: Nav,
    pub section: &'static str,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub project_id: String,
    pub project_name: String,
    pub project_opts: Vec<Opt>,
    pub version: i64,
    pub can_edit: bool,
    pub form: &'a PolicyForm,
    pub dirs: Vec<DirRow>,
    pub windows: Vec<WindowRow>,
    pub privileged_count: usize,
    pub max_dirs: usize,
    pub max_privileged: usize,
    pub max_windows: usize,
    pub alarms_href: String,
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
    let body = ops::tamper_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    let form = form.unwrap_or_else(|| PolicyForm::of(&body.policy));
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "alarms"),
            section: "tamper-policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            dirs: form.shown_dirs(),
            windows: form.shown_windows(),
            privileged_count: lines(&form.privileged).len(),
            max_dirs: MAX_DIRECTORIES,
            max_privileged: MAX_PRIVILEGED,
            max_windows: MAX_WINDOWS,
            alarms_href: url(
                "/alarms",
                &[("type", "web_tamper"), ("project", project_id)],
            ),
            form: &form,
        },
    )
}

#[derive(Template)]
#[template(path = "tamper/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /alarms/tamper-policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "alarms"),
            section: "tamper-policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /alarms/tamper-policy`: replaces the project's tamper protection policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    save_policy_form(
        &p,
        &project,
        PAGE,
        PolicyForm::from_fields(&f),
        |form| Ok::<_, String>(form.policy()),
        |policy| ops::set_tamper_policy(&state, &p, &project, policy),
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

/// The tamper protection policy page.
pub fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(policy).post(save_policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_a_policy() {
        let p = TamperPolicy {
            enabled: true,
            directories: vec![
                ProtectedDir {
                    path: "/srv/www".into(),
                    exclude: vec!["uploads".into(), "cache/tmp".into()],
                    exclude_types: vec!["log".into(), "tmp".into()],
                },
                ProtectedDir {
                    path: "/var/www/html".into(),
                    ..Default::default()
                },
            ],
            privileged: vec!["/usr/local/bin/deploy".into(), "/usr/bin/rsync".into()],
            windows: vec![
                Window {
                    days: vec![1, 3],
                    start: "02:00".into(),
                    end: "02:30".into(),
                },
                Window {
                    days: vec![],
                    start: "23:00".into(),
                    end: "24:00".into(),
                },
            ],
            lock_files: true,
        };
        let form = PolicyForm::of(&p);
        assert_eq!(form.dirs[0].exclude, "uploads; cache/tmp");
        assert_eq!(form.policy(), p);
        assert_eq!(
            PolicyForm::of(&TamperPolicy::default()).policy(),
            TamperPolicy::default()
        );
    }

    #[test]
    fn rows_are_read_in_order_with_empty_ones_dropped() {
        let f = Fields::of(&[
            ("enabled", "1"),
            ("dir_path_0", ""),
            ("dir_exclude_0", ""),
            ("dir_types_0", ""),
            ("dir_path_1", " /srv/a "),
            ("dir_exclude_1", "up ; ; x/y"),
            ("dir_types_1", ".log; *.tmp"),
            ("dir_path_10", "/srv/c"),
            ("dir_path_2", "/srv/b"),
            ("win_day_0_2", "1"),
            ("win_day_0_9", "1"),
            ("win_start_0", "02:00"),
            ("win_end_0", "02:30"),
            ("win_start_1", ""),
            ("win_end_1", ""),
            ("win_day_3_7", "1"),
            ("privileged", "/usr/bin/rsync\n\n /usr/local/bin/deploy \n"),
        ]);
        let form = PolicyForm::from_fields(&f);
        let paths: Vec<(usize, &str)> = form
            .dirs
            .iter()
            .map(|r| (r.index, r.path.as_str()))
            .collect();
        assert_eq!(paths, [(0, "/srv/a"), (1, "/srv/b"), (2, "/srv/c")]);
        let p = form.policy();
        assert!(p.enabled);
        assert_eq!(p.directories[0].exclude, ["up", "x/y"]);
        assert_eq!(p.directories[0].exclude_types, ["log", "tmp"]);
        assert_eq!(p.privileged, ["/usr/bin/rsync", "/usr/local/bin/deploy"]);
        // Days outside 1..7 are not read; a row with only a day ticked is kept (and then
        // refused for its missing times, naming it).
        assert_eq!(p.windows.len(), 2);
        assert_eq!(p.windows[0].days, [2]);
        assert_eq!(
            (p.windows[1].days.as_slice(), p.windows[1].start.as_str()),
            (&[7u8][..], "")
        );
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("windows[1].start: \"\" is not HH:MM")
        );
    }

    #[test]
    fn spare_rows_follow_the_filled_ones_up_to_the_bound() {
        let mut form = PolicyForm::default();
        assert_eq!(form.shown_dirs().len(), SPARE_DIRS);
        assert_eq!(form.shown_windows().len(), SPARE_WINDOWS);
        form.dirs = (0..49)
            .map(|index| DirRow {
                index,
                path: format!("/srv/{index}"),
                ..Default::default()
            })
            .collect();
        let shown = form.shown_dirs();
        assert_eq!(shown.len(), MAX_DIRECTORIES);
        assert_eq!((shown[49].index, shown[49].path.as_str()), (49, ""));
        form.dirs.push(DirRow::default());
        form.dirs.push(DirRow::default());
        assert_eq!(form.shown_dirs().len(), 51, "typed rows are all shown");
    }
}
