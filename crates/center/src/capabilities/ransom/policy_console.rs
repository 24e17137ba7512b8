//! The project's ransomware prevention policy page (`/alarms/ransom-policy`, a tab of the
//! alarms area): the switch, watched directories and trusted programs one per line, random
//! bait, the action, the burst bound, and the backups (switch, directories as rows with
//! excluded subdirectories and file types `;`-separated, as tamper's page has them, interval
//! and retention). Saved through the API operation, which validates the whole policy: a
//! refused one is shown again as typed with the message naming the field, and nothing is
//! saved.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::ransom::{
    Action, BackupDir, BackupPolicy, MAX_DIRECTORIES, MAX_KEEP, MAX_TRUSTED, RansomPolicy,
};

use crate::AppState;
use crate::capabilities::ransom::api as ops;
use crate::console::forms::{
    DirRow, Flash, lines, opts, policy_project, project_choice, required_project, save_policy_form,
    truthy,
};
use crate::console::{
    Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, html, html_status, project_names,
};
use crate::web::page::{param, url};

const PAGE: &str = "/alarms/ransom-policy";
/// Empty backup rows offered below the filled ones, so a few can be added per save.
const SPARE_DIRS: usize = 3;
const ACTIONS: [Action; 3] = [Action::Alarm, Action::Kill, Action::KillIsolate];

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    (param(m, "done") == "saved").then(|| Flash {
        class: "ok",
        text: "Ransomware policy saved; the project's agents apply it at once.".into(),
    })
}

fn action_label(a: &str) -> String {
    match a {
        "alarm" => "Raise an alarm only",
        "kill" => "Kill the process tree",
        "kill_isolate" => "Kill it and isolate its program",
        other => other,
    }
    .to_string()
}

/// The policy form's fields as text, so a refused form shows what was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyForm {
    pub enabled: bool,
    /// One path per line.
    pub directories: String,
    pub random_bait: bool,
    pub action: String,
    pub burst_files: String,
    pub window_secs: String,
    /// One executable path per line.
    pub trusted: String,
    pub backup_enabled: bool,
    /// The filled backup rows, in the page's order.
    pub backup_dirs: Vec<DirRow>,
    pub interval_hours: String,
    pub keep_count: String,
    pub keep_days: String,
}

/// A whole number of a numeric field; the message names the field as the policy does.
fn number(field: &str, typed: &str) -> Result<u32, String> {
    typed
        .trim()
        .parse()
        .map_err(|_| format!("{field}: {typed:?} is not a whole number"))
}

impl PolicyForm {
    fn of(p: &RansomPolicy) -> PolicyForm {
        let b = &p.backup;
        PolicyForm {
            enabled: p.enabled,
            directories: p.directories.join("\n"),
            random_bait: p.random_bait,
            action: p.action.as_str().to_string(),
            burst_files: p.burst_files.to_string(),
            window_secs: p.window_secs.to_string(),
            trusted: p.trusted.join("\n"),
            backup_enabled: b.enabled,
            backup_dirs: b
                .directories
                .iter()
                .enumerate()
                .map(|(i, d)| DirRow::of(i, &d.path, &d.exclude, &d.exclude_types))
                .collect(),
            interval_hours: b.interval_hours.to_string(),
            keep_count: b.keep_count.to_string(),
            keep_days: b.keep_days.to_string(),
        }
    }

    fn from_fields(f: &Fields) -> PolicyForm {
        PolicyForm {
            enabled: truthy(f, "enabled"),
            directories: f.0.get("directories").cloned().unwrap_or_default(),
            random_bait: truthy(f, "random_bait"),
            action: f.get("action").to_string(),
            burst_files: f.get("burst_files").to_string(),
            window_secs: f.get("window_secs").to_string(),
            trusted: f.0.get("trusted").cloned().unwrap_or_default(),
            backup_enabled: truthy(f, "backup_enabled"),
            backup_dirs: DirRow::read(f, "bdir_"),
            interval_hours: f.get("interval_hours").to_string(),
            keep_count: f.get("keep_count").to_string(),
            keep_days: f.get("keep_days").to_string(),
        }
    }

    /// The policy the form describes; a field that is not a number is named here, every other
    /// check is the policy's own (`validate`, in the API operation).
    fn policy(&self) -> Result<RansomPolicy, String> {
        let action = ACTIONS
            .into_iter()
            .find(|a| a.as_str() == self.action)
            .ok_or_else(|| {
                format!(
                    "action: {:?} is not one of alarm, kill, kill_isolate",
                    self.action
                )
            })?;
        Ok(RansomPolicy {
            enabled: self.enabled,
            directories: lines(&self.directories),
            random_bait: self.random_bait,
            action,
            burst_files: number("burst_files", &self.burst_files)?,
            window_secs: number("window_secs", &self.window_secs)?,
            trusted: lines(&self.trusted),
            backup: BackupPolicy {
                enabled: self.backup_enabled,
                directories: self
                    .backup_dirs
                    .iter()
                    .map(|r| BackupDir {
                        path: r.path.trim().to_string(),
                        exclude: r.exclude_list(),
                        exclude_types: r.types_list(),
                    })
                    .collect(),
                interval_hours: number("backup.interval_hours", &self.interval_hours)?,
                keep_count: number("backup.keep_count", &self.keep_count)?,
                keep_days: number("backup.keep_days", &self.keep_days)?,
            },
        })
    }
}

#[derive(Template)]
#[template(path = "ransom/policy.html")]
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
    pub action_opts: Vec<Opt>,
    pub backup_dirs: Vec<DirRow>,
    pub directory_count: usize,
    pub trusted_count: usize,
    pub max_dirs: usize,
    pub max_trusted: usize,
    pub max_keep: u32,
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
    let body = ops::ransom_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    let form = form.unwrap_or_else(|| PolicyForm::of(&body.policy));
    let actions: Vec<&str> = ACTIONS.iter().map(|a| a.as_str()).collect();
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "alarms"),
            section: "ransom-policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            action_opts: opts(&actions, &form.action, action_label),
            backup_dirs: DirRow::shown(&form.backup_dirs, SPARE_DIRS, MAX_DIRECTORIES),
            directory_count: lines(&form.directories).len(),
            trusted_count: lines(&form.trusted).len(),
            max_dirs: MAX_DIRECTORIES,
            max_trusted: MAX_TRUSTED,
            max_keep: MAX_KEEP,
            alarms_href: url(
                "/alarms",
                &[
                    ("type", hostward_proto::ransom::ALARM),
                    ("project", project_id),
                ],
            ),
            form: &form,
        },
    )
}

#[derive(Template)]
#[template(path = "ransom/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /alarms/ransom-policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "alarms"),
            section: "ransom-policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /alarms/ransom-policy`: replaces the project's ransomware policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    save_policy_form(
        &p,
        &project,
        PAGE,
        PolicyForm::from_fields(&f),
        PolicyForm::policy,
        |policy| ops::set_ransom_policy(&state, &p, &project, policy),
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

/// The ransomware policy page.
pub fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(policy).post(save_policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_a_policy() {
        let p = RansomPolicy {
            enabled: true,
            directories: vec!["/srv/data".into(), "/home".into()],
            random_bait: false,
            action: Action::Kill,
            burst_files: 20,
            window_secs: 120,
            trusted: vec!["/usr/bin/restic".into()],
            backup: BackupPolicy {
                enabled: true,
                directories: vec![
                    BackupDir {
                        path: "/srv/data".into(),
                        exclude: vec!["cache".into(), "tmp/x".into()],
                        exclude_types: vec!["log".into()],
                    },
                    BackupDir {
                        path: "/home".into(),
                        ..Default::default()
                    },
                ],
                interval_hours: 6,
                keep_count: 10,
                keep_days: 0,
            },
        };
        let form = PolicyForm::of(&p);
        assert_eq!(form.backup_dirs[0].exclude, "cache; tmp/x");
        assert_eq!(form.policy(), Ok(p));
        assert_eq!(
            PolicyForm::of(&RansomPolicy::default()).policy(),
            Ok(RansomPolicy::default())
        );
    }

    #[test]
    fn fields_are_read_and_bad_numbers_and_actions_named() {
        let f = Fields::of(&[
            ("enabled", "1"),
            ("directories", "/srv/a\n\n /srv/b \n"),
            ("action", "alarm"),
            ("burst_files", " 5 "),
            ("window_secs", "30"),
            ("trusted", ""),
            ("backup_enabled", "on"),
            ("bdir_path_0", ""),
            ("bdir_path_1", "/srv/a"),
            ("bdir_exclude_1", "cache ; ; x/y"),
            ("bdir_types_1", ".log; *.tmp"),
            ("interval_hours", "12"),
            ("keep_count", "3"),
            ("keep_days", "7"),
        ]);
        let form = PolicyForm::from_fields(&f);
        let p = form.policy().unwrap();
        assert!(p.enabled && p.backup.enabled && !p.random_bait);
        assert_eq!(p.directories, ["/srv/a", "/srv/b"]);
        assert_eq!(
            (p.action, p.burst_files, p.window_secs),
            (Action::Alarm, 5, 30)
        );
        assert_eq!(p.backup.directories.len(), 1);
        assert_eq!(p.backup.directories[0].exclude, ["cache", "x/y"]);
        assert_eq!(p.backup.directories[0].exclude_types, ["log", "tmp"]);
        assert_eq!(form.backup_dirs[0].index, 0, "empty rows are dropped");
        assert_eq!(
            (
                p.backup.interval_hours,
                p.backup.keep_count,
                p.backup.keep_days
            ),
            (12, 3, 7)
        );
        let bad = |k: &str, v: &str| {
            let mut form = form.clone();
            match k {
                "action" => form.action = v.into(),
                "burst_files" => form.burst_files = v.into(),
                "keep_days" => form.keep_days = v.into(),
                _ => unreachable!(),
            }
            form.policy().unwrap_err()
        };
        assert_eq!(
            bad("action", "nuke"),
            "action: \"nuke\" is not one of alarm, kill, kill_isolate"
        );
        assert_eq!(
            bad("burst_files", "ten"),
            "burst_files: \"ten\" is not a whole number"
        );
        assert_eq!(
            bad("keep_days", "-1"),
            "backup.keep_days: \"-1\" is not a whole number"
        );
    }
}
