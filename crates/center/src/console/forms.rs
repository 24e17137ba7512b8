//! Form and page helpers the risk and alarm pages share: reading checkbox selections and
//! return addresses, the confirmation after a redirect, and the per-project policy page's
//! project choice and save-or-refuse flow.

use std::future::Future;

use axum::http::StatusCode;
use hostward_proto::Severity;

use super::{ApiError, ConsoleError, Fields, Opt, PageResult, Principal, Role, see_other};
use crate::AppState;
use crate::web::labels::severity_label;
use crate::web::page::{enc, url};

/// The value, or None when it is empty.
pub(crate) fn opt(s: &str) -> Option<String> {
    Some(s.to_string()).filter(|s| !s.is_empty())
}

/// A path segment: like a query value, but a space is `%20` (a `+` is literal in a path).
pub(crate) fn seg(s: &str) -> String {
    enc(s).replace('+', "%20")
}

/// The ids of the ticked checkboxes named `<prefix><id>`, sorted.
pub(crate) fn checked_ids(f: &Fields, prefix: &str) -> Vec<String> {
    let mut ids: Vec<String> =
        f.0.iter()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(k, _)| k.strip_prefix(prefix))
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
    ids.sort();
    ids
}

/// A ticked checkbox (`1`, `on` or `true`).
pub(crate) fn truthy(f: &Fields, k: &str) -> bool {
    matches!(f.get(k), "1" | "on" | "true")
}

/// The non-empty lines of a text area, trimmed.
pub(crate) fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The entries of a `;`-separated field, trimmed, empty ones left out.
pub(crate) fn semis(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// The entries of a text area holding one per line or `;`-separated, trimmed, empty ones left
/// out.
pub(crate) fn entries(s: &str) -> Vec<String> {
    s.lines().flat_map(semis).collect()
}

/// The row numbers of a form's table rows, fields named `<prefix><n>` or `<prefix><n>_…`, in
/// order (a table's rows may be numbered with gaps).
pub(crate) fn row_numbers(f: &Fields, prefixes: &[&str]) -> std::collections::BTreeSet<usize> {
    f.0.keys()
        .filter_map(|k| prefixes.iter().find_map(|p| k.strip_prefix(p)))
        .filter_map(|rest| rest.split('_').next()?.parse().ok())
        .collect()
}

/// One row of a policy's table of directories with exclusions (tamper's protected
/// directories, ransomware's backed-up ones), as typed: the path, excluded subpaths and
/// excluded file types, both `;`-separated. Its fields are `<prefix>path_<n>`,
/// `<prefix>exclude_<n>` and `<prefix>types_<n>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DirRow {
    /// Its index in the policy's list, which error messages name.
    pub index: usize,
    pub path: String,
    /// `;`-separated.
    pub exclude: String,
    /// `;`-separated.
    pub types: String,
}

impl DirRow {
    /// The row of a policy's directory.
    pub fn of(index: usize, path: &str, exclude: &[String], types: &[String]) -> DirRow {
        DirRow {
            index,
            path: path.to_string(),
            exclude: exclude.join("; "),
            types: types.join("; "),
        }
    }

    fn blank(&self) -> bool {
        self.path.is_empty() && self.exclude.is_empty() && self.types.is_empty()
    }

    /// The filled rows of the form, in the page's order, numbered from 0: empty rows are
    /// dropped, so each row's index is the one a message names.
    pub fn read(f: &Fields, prefix: &str) -> Vec<DirRow> {
        let k = |name: &str, i: usize| format!("{prefix}{name}_{i}");
        let prefixes = [
            format!("{prefix}path_"),
            format!("{prefix}exclude_"),
            format!("{prefix}types_"),
        ];
        let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        row_numbers(f, &prefixes)
            .into_iter()
            .map(|i| DirRow {
                index: 0,
                path: f.get(&k("path", i)).to_string(),
                exclude: f.get(&k("exclude", i)).to_string(),
                types: f.get(&k("types", i)).to_string(),
            })
            .filter(|r| !r.blank())
            .enumerate()
            .map(|(index, r)| DirRow { index, ..r })
            .collect()
    }

    /// The excluded subpaths.
    pub fn exclude_list(&self) -> Vec<String> {
        semis(&self.exclude)
    }

    /// The excluded extensions: "*.log" and ".log" mean the extension people have in mind.
    pub fn types_list(&self) -> Vec<String> {
        semis(&self.types)
            .into_iter()
            .map(|t| {
                t.trim_start_matches('*')
                    .trim_start_matches('.')
                    .to_string()
            })
            .collect()
    }

    /// The rows a page shows: the filled ones and `spare` empty ones after them, up to `max`
    /// (more when more were typed, so they can be removed).
    pub fn shown(rows: &[DirRow], spare: usize, max: usize) -> Vec<DirRow> {
        let n = (rows.len() + spare).min(max).max(rows.len());
        (0..n)
            .map(|index| {
                rows.get(index).cloned().unwrap_or(DirRow {
                    index,
                    ..Default::default()
                })
            })
            .collect()
    }
}

/// Where an action returns to: a page of this console under one of `allowed_prefixes`, never
/// another site.
pub(crate) fn safe_back<'a>(s: &'a str, allowed_prefixes: &[&str]) -> Option<&'a str> {
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
        && allowed_prefixes.iter().any(|p| s.starts_with(p));
    ok.then_some(s)
}

/// `back` with `done=<what>&n=<n>` in place of any earlier ones.
pub(crate) fn with_done(back: &str, done: &str, n: usize) -> String {
    let (path, q) = back.split_once('?').unwrap_or((back, ""));
    let mut parts: Vec<String> = q
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("done=") && !kv.starts_with("n="))
        .map(str::to_string)
        .collect();
    parts.push(format!("done={done}"));
    parts.push(format!("n={n}"));
    format!("{path}?{}", parts.join("&"))
}

/// Select options for `values`, labelled by `label`.
pub(crate) fn opts(values: &[&str], selected: &str, label: impl Fn(&str) -> String) -> Vec<Opt> {
    values
        .iter()
        .map(|v| Opt {
            value: v.to_string(),
            label: label(v),
            selected: *v == selected,
        })
        .collect()
}

/// The severities, most severe first, as select options.
pub(crate) fn severity_opts(selected: &str) -> Vec<Opt> {
    let all: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    opts(&all, selected, |s| severity_label(s).to_string())
}

/// A confirmation after a redirect. Only fixed texts and numbers: a link must not be able to
/// put words into the page.
pub(crate) struct Flash {
    pub class: &'static str,
    pub text: String,
}

// ---------------------------------------------------------------------------------------------
// Per-project policy pages

/// The project a policy page shows: the `project` parameter, else the caller's first project by
/// name; None when the caller has no project.
pub(crate) async fn policy_project(
    state: &AppState,
    p: &Principal,
    param: String,
) -> Result<Option<String>, ConsoleError> {
    match opt(&param) {
        Some(id) => Ok(Some(id)),
        None => Ok(super::project_names(state, p)
            .await?
            .into_iter()
            .next()
            .map(|(id, _)| id)),
    }
}

/// The name of `project_id` (its id when unknown) and the project selector's options.
pub(crate) fn project_choice(
    projects: Vec<(String, String)>,
    project_id: &str,
) -> (String, Vec<Opt>) {
    let project_name = projects
        .iter()
        .find(|(id, _)| id == project_id)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| project_id.to_string());
    let opts = projects
        .into_iter()
        .map(|(id, name)| Opt {
            selected: id == project_id,
            value: id,
            label: name,
        })
        .collect();
    (project_name, opts)
}

/// The `project` field of a policy form, which must be there.
pub(crate) fn required_project(f: &Fields) -> Result<String, ConsoleError> {
    let project = f.get("project").to_string();
    if project.is_empty() {
        return Err(ConsoleError::bad_request("Field project is required."));
    }
    Ok(project)
}

/// Saves a policy form: a form that does not describe a policy, or one the API refuses as a bad
/// request (400, or 422 where an API answers its validation so), is shown again (`refuse`)
/// with the message; a saved one redirects to `page` with `done=saved`.
pub(crate) async fn save_policy_form<F, P, T, S, R>(
    p: &Principal,
    project: &str,
    page: &str,
    form: F,
    parse: impl FnOnce(&F) -> Result<P, String>,
    save: impl FnOnce(P) -> S,
    refuse: impl FnOnce(F, String) -> R,
) -> PageResult
where
    S: Future<Output = Result<T, ApiError>>,
    R: Future<Output = PageResult>,
{
    let policy = match parse(&form) {
        Ok(policy) => policy,
        Err(msg) => {
            // Authorize before echoing anything back about the project.
            p.require(project, Role::Admin)
                .map_err(ConsoleError::from)?;
            return refuse(form, msg).await;
        }
    };
    match save(policy).await {
        Ok(_) => Ok(see_other(&url(
            page,
            &[("project", project), ("done", "saved")],
        ))),
        Err(e)
            if matches!(
                e.status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            refuse(form, e.message).await
        }
        Err(e) => Err(e.into()),
    }
}
