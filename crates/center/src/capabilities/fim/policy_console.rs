//! The project's file integrity policy page (`/files/policy`, a tab of the "Files" area): on or
//! off, the important files (one per line), and up to 50 monitored directories as rows (path,
//! recursive, the operations recorded, excluded subpaths and file types, `;`-separated). Saved
//! through the API operation, which validates the whole policy: a refused policy is shown again
//! as typed with the message naming the field (`directories[1].path: … overlaps …`), and
//! nothing is saved.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::fim::{
    FimPolicy, MAX_DIRECTORIES, MAX_EXCLUDES, MAX_IMPORTANT, MAX_TYPES, Operation, WatchedDir,
};

use crate::AppState;
use crate::capabilities::fim::api::{self as ops};
use crate::console::forms::{
    Flash, lines, policy_project, project_choice, required_project, save_policy_form, semis, truthy,
};
use crate::console::{
    Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, html, html_status, project_names,
};
use crate::web::page::param;

const PAGE: &str = "/files/policy";
/// Empty rows the form offers below the directories, so several can be added at once.
const SPARE_ROWS: usize = 3;
/// Rows the form shows at least.
const MIN_ROWS: usize = 5;

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    match m.get("done").map(String::as_str)? {
        "saved" => Some(Flash {
            class: "ok",
            text: "File integrity policy saved; the project's agents apply it at once (a changed directory list means a new baseline scan).".into(),
        }),
        _ => None,
    }
}

pub(crate) struct OpCheck {
    pub name: &'static str,
    pub on: bool,
}

/// One directory row as typed.
pub(crate) struct DirRow {
    pub path: String,
    pub recursive: bool,
    pub ops: Vec<OpCheck>,
    /// `;`-separated.
    pub exclude: String,
    pub types: String,
}

impl DirRow {
    fn blank() -> DirRow {
        DirRow {
            path: String::new(),
            recursive: true,
            ops: Operation::ALL
                .iter()
                .map(|o| OpCheck {
                    name: o.as_str(),
                    on: true,
                })
                .collect(),
            exclude: String::new(),
            types: String::new(),
        }
    }

    fn of(d: &WatchedDir) -> DirRow {
        DirRow {
            path: d.path.clone(),
            recursive: d.recursive,
            ops: Operation::ALL
                .iter()
                .map(|o| OpCheck {
                    name: o.as_str(),
                    on: d.records(*o),
                })
                .collect(),
            exclude: d.exclude.join("; "),
            types: d.exclude_types.join("; "),
        }
    }

    /// The directory this row describes, `i` being its index in the policy.
    fn dir(&self, i: usize) -> Result<WatchedDir, String> {
        let on: Vec<Operation> = Operation::ALL
            .iter()
            .zip(&self.ops)
            .filter(|(_, c)| c.on)
            .map(|(o, _)| *o)
            .collect();
        if on.is_empty() {
            return Err(format!(
                "directories[{i}].operations: tick at least one operation to record"
            ));
        }
        Ok(WatchedDir {
            path: self.path.clone(),
            recursive: self.recursive,
            // Every operation ticked is the policy's "all" (an empty set), so operations the
            // agent learns later are recorded too.
            operations: if on.len() == Operation::ALL.len() {
                Default::default()
            } else {
                on.into_iter().collect()
            },
            exclude: semis(&self.exclude),
            exclude_types: semis(&self.types)
                .into_iter()
                .map(|t| t.trim_start_matches('.').to_string())
                .collect(),
        })
    }
}

/// The policy form's fields as text, so a refused form shows what was typed.
pub(crate) struct PolicyForm {
    pub enabled: bool,
    /// One path per line.
    pub important: String,
    /// The rows that say something; empty rows are left out, so a row's place is its index
    /// in the policy and in any message naming it.
    pub dirs: Vec<DirRow>,
}

impl PolicyForm {
    fn of(p: &FimPolicy) -> PolicyForm {
        PolicyForm {
            enabled: p.enabled,
            important: p.important_files.join("\n"),
            dirs: p.directories.iter().map(DirRow::of).collect(),
        }
    }

    fn from_fields(f: &Fields) -> PolicyForm {
        // One row more than the policy may hold: the API then names the excess.
        let dirs = (0..=MAX_DIRECTORIES)
            .map(|i| {
                let k = |name: &str| format!("dir{i}_{name}");
                DirRow {
                    path: f.get(&k("path")).to_string(),
                    recursive: truthy(f, &k("recursive")),
                    ops: Operation::ALL
                        .iter()
                        .map(|o| OpCheck {
                            name: o.as_str(),
                            on: truthy(f, &k(&format!("op_{}", o.as_str()))),
                        })
                        .collect(),
                    exclude: f.get(&k("exclude")).to_string(),
                    types: f.get(&k("types")).to_string(),
                }
            })
            .filter(|r| !(r.path.is_empty() && r.exclude.is_empty() && r.types.is_empty()))
            .collect();
        PolicyForm {
            enabled: truthy(f, "enabled"),
            important: f.get("important_files").to_string(),
            dirs,
        }
    }

    /// The policy the form describes; the message names the field. The API validates the rest.
    fn policy(&self) -> Result<FimPolicy, String> {
        Ok(FimPolicy {
            enabled: self.enabled,
            important_files: lines(&self.important),
            directories: self
                .dirs
                .iter()
                .enumerate()
                .map(|(i, d)| d.dir(i))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A directory row as the page draws it.
pub(crate) struct RowView<'a> {
    pub i: usize,
    pub row: &'a DirRow,
}

#[derive(Template)]
#[template(path = "fim/policy.html")]
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
    pub rows: Vec<RowView<'a>>,
    pub important_count: usize,
    pub dir_count: usize,
    pub max_important: usize,
    pub max_dirs: usize,
    pub max_excludes: usize,
    pub max_types: usize,
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
    let body = ops::fim_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    let form = form.unwrap_or_else(|| PolicyForm::of(&body.policy));
    let can_edit = p.require(project_id, Role::Admin).is_ok();
    // Spare rows only for those who can fill them, and never past the limit.
    let shown = if can_edit {
        (form.dirs.len() + SPARE_ROWS)
            .clamp(MIN_ROWS, MAX_DIRECTORIES)
            .max(form.dirs.len())
    } else {
        form.dirs.len()
    };
    let blank: Vec<DirRow> = (form.dirs.len()..shown).map(|_| DirRow::blank()).collect();
    let rows = form
        .dirs
        .iter()
        .chain(&blank)
        .enumerate()
        .map(|(i, row)| RowView { i, row })
        .collect();
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "files"),
            section: "policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit,
            rows,
            important_count: lines(&form.important).len(),
            dir_count: form.dirs.len(),
            max_important: MAX_IMPORTANT,
            max_dirs: MAX_DIRECTORIES,
            max_excludes: MAX_EXCLUDES,
            max_types: MAX_TYPES,
            form: &form,
        },
    )
}

#[derive(Template)]
#[template(path = "fim/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /files/policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "files"),
            section: "policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /files/policy`: replaces the project's file integrity policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    save_policy_form(
        &p,
        &project,
        PAGE,
        PolicyForm::from_fields(&f),
        PolicyForm::policy,
        |policy| ops::set_fim_policy(&state, &p, &project, policy),
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

/// The file integrity policy page.
pub fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(policy).post(save_policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_the_default_policy_and_a_custom_one() {
        let p = FimPolicy::default();
        assert_eq!(PolicyForm::of(&p).policy(), Ok(p));
        let p = FimPolicy {
            enabled: false,
            important_files: vec!["/etc/passwd".into(), "/etc/shadow".into()],
            directories: vec![
                WatchedDir {
                    path: "/srv/www".into(),
                    recursive: true,
                    operations: [Operation::Create, Operation::Modify].into(),
                    exclude: vec!["cache".into(), "tmp/upload".into()],
                    exclude_types: vec!["log".into(), "tmp".into()],
                },
                WatchedDir {
                    path: "/opt/app/bin".into(),
                    recursive: false,
                    ..Default::default()
                },
            ],
        };
        let form = PolicyForm::of(&p);
        assert_eq!(form.dirs[0].exclude, "cache; tmp/upload");
        assert_eq!(form.policy(), Ok(p));
    }

    #[test]
    fn rows_are_read_in_order_skipping_empty_ones() {
        let f = Fields::of(&[
            ("enabled", "1"),
            ("important_files", " /etc/passwd \n\n/etc/shadow"),
            ("dir0_path", "/srv/www"),
            ("dir0_recursive", "1"),
            ("dir0_op_create", "1"),
            ("dir0_op_delete", "1"),
            ("dir0_op_move", "1"),
            ("dir0_op_modify", "1"),
            ("dir0_op_attributes", "1"),
            ("dir0_types", ".log; tmp ;"),
            // An untouched spare row: ticked boxes, no path.
            ("dir1_op_create", "1"),
            ("dir1_recursive", "1"),
            ("dir2_path", "/opt/app"),
            ("dir2_op_modify", "1"),
            ("dir2_exclude", "cache;logs"),
            ("dir3_path", "/var/empty"),
        ]);
        let form = PolicyForm::from_fields(&f);
        assert_eq!(form.dirs.len(), 3);
        let e = form.policy().unwrap_err();
        assert!(e.starts_with("directories[2].operations:"), "{e}");
        let f = Fields::of(&[
            ("important_files", "/etc/passwd"),
            ("dir0_path", "/srv/www"),
            ("dir0_op_create", "1"),
            ("dir0_op_delete", "1"),
            ("dir0_op_move", "1"),
            ("dir0_op_modify", "1"),
            ("dir0_op_attributes", "1"),
            ("dir0_types", ".log; tmp ;"),
            ("dir5_path", "/opt/app"),
            ("dir5_op_modify", "1"),
            ("dir5_exclude", "cache;logs"),
        ]);
        let p = PolicyForm::from_fields(&f).policy().unwrap();
        assert!(!p.enabled);
        assert_eq!(p.important_files, ["/etc/passwd"]);
        let d = &p.directories;
        assert_eq!(d.len(), 2);
        assert!(d[0].operations.is_empty(), "all ticked is all");
        assert!(!d[0].recursive);
        assert_eq!(d[0].exclude_types, ["log", "tmp"]);
        assert_eq!(d[1].path, "/opt/app");
        assert_eq!(d[1].operations, [Operation::Modify].into());
        assert_eq!(d[1].exclude, ["cache", "logs"]);
        // A row with exclusions but no path is kept, so the API names it.
        let f = Fields::of(&[("dir0_exclude", "cache"), ("dir0_op_modify", "1")]);
        let p = PolicyForm::from_fields(&f).policy().unwrap();
        assert_eq!(p.directories[0].path, "");
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("directories[0].path:")
        );
    }
}
