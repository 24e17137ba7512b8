//! The center's capabilities, one folder each (API operations and handlers, console pages,
//! jobs; templates in `templates/<capability>/`), and [`ALL`], the one list that wires them
//! into the API router, the OpenAPI document, the console's routes and navigation, a server's
//! tab bar, the background jobs and the jobs records wake, the task kinds operators may queue
//! and each server's agent-config sections. Adding a capability to the center is a folder plus
//! its `pub mod` and its entry in [`ALL`] (ARCHITECTURE.md, "Adding a capability").
//!
//! The platform (servers, enrollment, users, tokens, tasks, sign-in) is not a capability: it is
//! what every capability stands on, in `api/` and `console/`.

pub mod alarms;
pub mod baseline;
pub mod behaviour;
pub mod dashboard;
pub mod editions;
pub mod fim;
pub mod inventory;
pub mod malware;
pub mod notifications;
pub mod policy_groups;
pub mod ransom;
pub mod reports;
pub mod risk;
pub mod tamper;

use std::collections::HashMap;

use axum::Router;
use futures_util::future::BoxFuture;

use hostward_proto::Section;
use hostward_store::{Job, Server};

use crate::AppState;
use crate::api::ApiError;
use crate::auth::Principal;
use crate::web::page::Tab;

/// Every capability, in the order of the console's navigation and a server's tabs.
pub const ALL: &[Capability] = &[
    dashboard::CAPABILITY,
    inventory::CAPABILITY,
    risk::CAPABILITY,
    baseline::CAPABILITY,
    alarms::CAPABILITY,
    behaviour::CAPABILITY,
    fim::CAPABILITY,
    tamper::CAPABILITY,
    ransom::CAPABILITY,
    malware::CAPABILITY,
    notifications::CAPABILITY,
    reports::CAPABILITY,
    editions::CAPABILITY,
    policy_groups::CAPABILITY,
];

/// What a capability brings to the center; it leaves out what it has none of (`None`, an empty
/// list, [`no_jobs`]).
pub struct Capability {
    /// Short name; ARCHITECTURE.md names every one (a tidy test checks).
    pub id: &'static str,
    /// Its REST routes, with full `/api/v1/…` paths.
    pub api: fn() -> Router<AppState>,
    /// The OpenAPI paths and schemas of those routes.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// Its console pages.
    pub console: fn() -> Router<AppState>,
    /// Its entry in the console's top navigation, if it has fleet-wide pages.
    pub nav: Option<NavEntry>,
    /// Its tabs on a server's pages.
    pub server_tabs: &'static [ServerTab],
    /// Figures its tabs show (tab id -> count), read for the caller; `None` when it shows none.
    pub tab_counts: Option<TabCounts>,
    /// Starts its background jobs; called once per replica, after the listeners are up.
    pub jobs: fn(&AppState),
    /// Its sections of a server's agent config (its project policy, per-server settings).
    pub config: Option<ConfigSections>,
    /// Agent task kinds operators may queue through `POST /tasks`, with their params check.
    pub tasks: &'static [TaskKind],
    /// Wakes its job when a records transaction asks for it (`FollowUp::Wake`); other
    /// capabilities' jobs are ignored.
    pub wake: Option<fn(&AppState, Job)>,
    /// Its project policies, which policy groups hold too.
    pub policies: &'static [PolicyKind],
}

/// An entry of the console's top navigation.
#[derive(Debug, Clone, Copy)]
pub struct NavEntry {
    /// Matches the `active` of the pages it covers.
    pub id: &'static str,
    pub label: &'static str,
    pub href: &'static str,
}

/// A tab on a server's pages: `/servers/{id}/{path}`.
#[derive(Debug, Clone, Copy)]
pub struct ServerTab {
    pub id: &'static str,
    pub label: &'static str,
    pub path: &'static str,
}

/// Reads the counts a capability's tabs show, authorized for the caller.
pub type TabCounts = for<'a> fn(
    &'a AppState,
    &'a Principal,
    &'a str,
) -> BoxFuture<'a, Result<HashMap<String, i64>, ApiError>>;

/// An agent task kind a capability offers to operators.
pub struct TaskKind {
    pub kind: &'static str,
    /// Checks the params object; the error says what is wrong (the API prefixes `params: `).
    pub check_params: fn(&serde_json::Value) -> Result<(), String>,
}

/// A params check for tasks whose params decode as `T`.
pub fn params_as<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<(), String> {
    T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
}

/// The task kinds every capability offers, in the list's order.
pub fn tasks() -> Vec<&'static TaskKind> {
    ALL.iter().flat_map(|c| c.tasks).collect()
}

/// Reads a capability's sections of one server's agent config: (section key, value).
pub type ConfigSections =
    for<'a> fn(&'a AppState, &'a Server) -> BoxFuture<'a, Vec<(&'static str, serde_json::Value)>>;

/// A capability without jobs.
pub fn no_jobs(_: &AppState) {}

/// The REST routes of every capability.
pub fn api_router() -> Router<AppState> {
    ALL.iter().fold(Router::new(), |r, c| r.merge((c.api)()))
}

/// The console routes of every capability.
pub fn console_router() -> Router<AppState> {
    ALL.iter()
        .fold(Router::new(), |r, c| r.merge((c.console)()))
}

/// The OpenAPI paths and schemas of every capability, merged into `doc`.
pub fn openapi(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for c in ALL {
        doc.merge((c.openapi)());
    }
    doc
}

/// The navigation entries of every capability that has one.
pub fn nav() -> impl Iterator<Item = NavEntry> {
    ALL.iter().filter_map(|c| c.nav)
}

/// Every capability's sections of a server's agent config, in the list's order.
pub async fn config_sections(
    state: &AppState,
    server: &Server,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for read in ALL.iter().filter_map(|c| c.config) {
        for (key, value) in read(state, server).await {
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// A server's policy of type `T` as a config section: its policy group's, else its project's
/// (cached per policy version: the config frame reads the version first), with what its
/// edition lacks turned off ([`Section::gate`]; a server without one gets the basic edition's
/// gate, and its protection switch is off anyway). A failed read sends the defaults, gated,
/// and says so in the log: the agent must still get a config (its version moves on the next
/// change).
pub async fn policy_section<T: Section>(
    state: &AppState,
    server: &Server,
) -> (&'static str, serde_json::Value) {
    let read = state
        .store
        .policy_for_config(&server.project_id, server.policy_group_id.as_deref())
        .await;
    let mut policy: T = match read {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, policy = T::KEY, "reading a policy failed; sending defaults");
            T::default()
        }
    };
    policy.gate(server.edition().unwrap_or(hostward_proto::Edition::Basic));
    (
        T::KEY,
        serde_json::to_value(policy).expect("policies serialise"),
    )
}

/// A policy type every policy group holds: its section key, a label, and its checks, for the
/// groups' generic policy API (each capability's own policy API types it).
pub struct PolicyKind {
    pub key: &'static str,
    pub label: &'static str,
    /// Parses and checks a body; the error names the field (and index).
    pub check: fn(serde_json::Value) -> Result<serde_json::Value, String>,
    pub default: fn() -> serde_json::Value,
}

/// `value` as a `T` that passes `check`, normalised (defaults filled in).
pub fn checked<T: Section>(
    value: serde_json::Value,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<serde_json::Value, String> {
    let policy: T = T::deserialize(value).map_err(|e| e.to_string())?;
    check(&policy)?;
    Ok(serde_json::to_value(policy).expect("policies serialise"))
}

/// The defaults of `T` as JSON.
pub fn default_of<T: Section>() -> serde_json::Value {
    serde_json::to_value(T::default()).expect("policies serialise")
}

/// Every capability's policy kinds, in the list's order.
pub fn policy_kinds() -> impl Iterator<Item = &'static PolicyKind> {
    ALL.iter().flat_map(|c| c.policies)
}

/// Longest policy kept in an audit entry's detail; a longer one is cut (a behaviour policy's
/// lists may hold 10,000 addresses).
const MAX_AUDIT_DETAIL: usize = 16 * 1024;

/// A project's policy of type `T` and its version (viewer+): the one read behind every
/// capability's `GET /projects/{id}/<capability>-policy`.
pub async fn project_policy<T: Section>(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<(T, i64), ApiError> {
    p.require(project_id, crate::auth::Role::Viewer)?;
    Ok(state.store.policy(project_id).await?)
}

/// Replaces a project's policy of type `T` (admin): refused whole when `check` fails (400 with
/// its message, which names the field and index), else stored, pushed to the project's agents
/// and audited as `<key>.policy` with the policy (cut at 16 KiB). Returns the new version.
pub async fn set_project_policy<T: Section>(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    policy: &T,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<i64, ApiError> {
    p.require(project_id, crate::auth::Role::Admin)?;
    check(policy).map_err(ApiError::invalid_body)?;
    let version = state.store.set_policy(project_id, policy).await?;
    for (_, server_id) in state.store.server_ids_in(&[project_id.to_string()]).await? {
        state.gateway.config_changed(&server_id);
    }
    let detail = audit_detail(serde_json::to_string(policy).unwrap_or_default());
    let action = format!("{}.policy", T::KEY);
    crate::api::audit(state, p, project_id, &action, project_id, &detail).await;
    Ok(version)
}

/// `detail` cut at [`MAX_AUDIT_DETAIL`] bytes on a character boundary, saying how long it was.
fn audit_detail(mut detail: String) -> String {
    if detail.len() > MAX_AUDIT_DETAIL {
        let n = detail.len();
        let mut cut = MAX_AUDIT_DETAIL;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push_str(&format!("… ({n} bytes)"));
    }
    detail
}

/// Wakes the job a records transaction asked for, whichever capability owns it.
pub fn wake(state: &AppState, job: Job) {
    for w in ALL.iter().filter_map(|c| c.wake) {
        w(state, job);
    }
}

/// Starts every capability's background jobs.
pub fn spawn_jobs(state: &AppState) {
    for c in ALL {
        (c.jobs)(state);
    }
}

/// The tab bar of a server's pages: the overview, then each capability's tabs with their
/// counts where known. Pure; [`server_tabs`] reads the counts.
pub(crate) fn tab_bar(server_id: &str, counts: &HashMap<String, i64>, active: &str) -> Vec<Tab> {
    let mut v = vec![Tab {
        id: "overview",
        label: "Overview",
        href: format!("/servers/{server_id}"),
        count: None,
        active: active == "overview",
    }];
    for t in ALL.iter().flat_map(|c| c.server_tabs) {
        v.push(Tab {
            id: t.id,
            label: t.label,
            href: format!("/servers/{server_id}/{}", t.path),
            count: counts.get(t.id).copied(),
            active: active == t.id,
        });
    }
    v
}

/// The tab bar for one of a server's pages. The page has already read the server through an
/// API operation (another project's server is 404 there); each count reader checks the caller
/// again, as every API operation does.
pub(crate) async fn server_tabs(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    active: &str,
) -> Result<Vec<Tab>, ApiError> {
    let mut counts = HashMap::new();
    for read in ALL.iter().filter_map(|c| c.tab_counts) {
        counts.extend(read(state, p, server_id).await?);
    }
    Ok(tab_bar(server_id, &counts, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_audit_details_are_cut_on_a_character_boundary() {
        assert_eq!(audit_detail("short".into()), "short");
        let cut = audit_detail("é".repeat(MAX_AUDIT_DETAIL));
        assert!(cut.len() < MAX_AUDIT_DETAIL + 32, "{}", cut.len());
        assert!(cut.ends_with(&format!("… ({} bytes)", 2 * MAX_AUDIT_DETAIL)));
    }

    #[test]
    fn tabs_cover_every_kind_with_counts() {
        let counts = HashMap::from([("software".to_string(), 412)]);
        let t = tab_bar("s1", &counts, "software");
        let ids: Vec<&str> = t.iter().map(|t| t.id).collect();
        // The overview, inventory's kinds and its change history first ...
        assert_eq!(
            ids[..9],
            [
                "overview",
                "accounts",
                "ports",
                "processes",
                "software",
                "autostart",
                "kernel_modules",
                "middleware",
                "changes",
            ]
        );
        // ... then every other capability's tabs in the list's order (risks, login addresses,
        // and whatever comes next).
        let rest: Vec<&str> = ALL
            .iter()
            .filter(|c| c.id != "inventory")
            .flat_map(|c| c.server_tabs)
            .map(|t| t.id)
            .collect();
        assert_eq!(ids[9..], rest);
        let href = |id: &str| t.iter().find(|t| t.id == id).unwrap().href.clone();
        let sw = t.iter().find(|t| t.id == "software").unwrap();
        assert!(sw.active && sw.count == Some(412));
        assert_eq!(sw.href, "/servers/s1/inventory/software");
        assert_eq!(t[0].href, "/servers/s1");
        assert_eq!(href("changes"), "/servers/s1/changes");
        assert_eq!(href("risks"), "/servers/s1/risks");
        assert_eq!(href("login-ips"), "/servers/s1/login-ips");
        assert!(t.iter().filter(|t| t.active).count() == 1);
    }

    #[test]
    fn capability_ids_are_unique_and_tabs_do_not_collide() {
        let mut ids: Vec<&str> = ALL.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
        let mut tabs: Vec<&str> = ALL
            .iter()
            .flat_map(|c| c.server_tabs)
            .map(|t| t.id)
            .collect();
        tabs.push("overview");
        let n = tabs.len();
        tabs.sort_unstable();
        tabs.dedup();
        assert_eq!(tabs.len(), n, "two tabs share an id");
    }
}
