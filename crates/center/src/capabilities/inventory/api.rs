//! Host inventory: per server (summary, items of a kind, change history), fleet-wide (asset
//! groups with server counts, the servers behind a group, changes across servers), CSV export
//! of every list, and the per-project inventory policy pushed to agents.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hostward_proto::inventory::{InventoryKind, InventoryPolicy};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::fleet_scope;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, ApiQuery, audit};
use crate::auth::{Principal, Role};
use crate::web::paging::{csv_response, is_csv, paging};
use hostward_store::{
    AssetGroup, AssetServer, ChangeFilter, InventoryChange, InventoryItem, InventorySummary,
};

/// Shortest collection interval a policy may set (seconds); 0 turns a kind off.
pub const MIN_INTERVAL_SECS: u64 = 1;
pub const MAX_INTERVAL_SECS: u64 = 30 * 86_400;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Substring of the item's name or value (case-insensitive).
    pub q: Option<String>,
    /// Project id (fleet-wide views only; default: every project you can see).
    pub project: Option<String>,
    /// 1-based page number.
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv` (every matching row, up to 100,000, as a download).
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangeQuery {
    /// Inventory kind: accounts, ports, software, autostart, kernel_modules.
    pub kind: Option<String>,
    /// added, removed or changed.
    pub change: Option<String>,
    /// Substring of the item's name.
    pub q: Option<String>,
    /// Project id (fleet-wide only).
    pub project: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetServersQuery {
    /// Exact name of the group (e.g. `openssl`, `tcp/6379`, `root`).
    pub name: String,
    /// Exact value (e.g. a version); all values when absent.
    pub value: Option<String>,
    pub project: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub server_id: String,
    pub kinds: Vec<InventorySummary>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemPage {
    pub kind: String,
    pub items: Vec<InventoryItem>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangePage {
    pub items: Vec<InventoryChange>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetPage {
    pub kind: String,
    pub items: Vec<AssetGroup>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetServerPage {
    pub kind: String,
    pub items: Vec<AssetServer>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SetPolicy {
    /// Seconds between collections per kind (accounts, ports, processes, software, autostart,
    /// kernel_modules, middleware); missing kinds use the defaults; 0 turns a kind off.
    #[schema(value_type = Object)]
    pub interval_secs: std::collections::BTreeMap<InventoryKind, u64>,
    /// Ports labelled `ignored` instead of dangerous/unknown.
    pub ignored_ports: Vec<u16>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyBody {
    /// As set; missing kinds use the defaults.
    #[schema(value_type = Object)]
    pub interval_secs: std::collections::BTreeMap<InventoryKind, u64>,
    pub ignored_ports: Vec<u16>,
    /// Interval per kind with the defaults filled in.
    #[schema(value_type = Object)]
    pub effective_interval_secs: std::collections::BTreeMap<InventoryKind, u64>,
    /// Grows with every change; part of the agents' config version.
    pub version: i64,
}

/// A kind from a path or query; 400 naming the parameter when unknown.
pub fn kind_param(field: &str, s: &str) -> Result<InventoryKind, ApiError> {
    InventoryKind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = InventoryKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::invalid_query(format!("{field}: {s:?} is not one of {}", all.join(", ")))
    })
}

fn compact(v: &serde_json::Value) -> String {
    v.to_string()
}

pub async fn summary(state: &AppState, p: &Principal, id: &str) -> Result<Summary, ApiError> {
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    Ok(Summary {
        kinds: state.store.inventory_summary(&srv.id).await?,
        server_id: srv.id,
    })
}

pub async fn items(
    state: &AppState,
    p: &Principal,
    id: &str,
    kind: &str,
    q: &ListQuery,
) -> Result<ItemPage, ApiError> {
    let srv = visible_server(state, p, id, Role::Viewer).await?;
    let kind = kind_param("kind", kind)?;
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let (items, total) = state
        .store
        .inventory_items(&srv.id, kind, q.q.as_deref(), page, per_page)
        .await?;
    Ok(ItemPage {
        kind: kind.as_str().to_string(),
        items,
        total,
        page,
        per_page,
    })
}

fn change_filter(q: &ChangeQuery) -> Result<ChangeFilter, ApiError> {
    let kind = q
        .kind
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|k| kind_param("kind", k))
        .transpose()?;
    let change = match q.change.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(c @ ("added" | "removed" | "changed")) => Some(c.to_string()),
        Some(c) => {
            return Err(ApiError::invalid_query(format!(
                "change: {c:?} is not one of added, removed, changed"
            )));
        }
    };
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    Ok(ChangeFilter {
        kind,
        change,
        q: q.q.clone(),
        page,
        per_page,
        ..Default::default()
    })
}

/// Changes of one server (`id`) or, without it, of every visible server.
pub async fn changes(
    state: &AppState,
    p: &Principal,
    id: Option<&str>,
    q: &ChangeQuery,
) -> Result<ChangePage, ApiError> {
    let mut f = change_filter(q)?;
    match id {
        Some(id) => f.server_id = Some(visible_server(state, p, id, Role::Viewer).await?.id),
        None => f.visible_projects = fleet_scope(state, p, q.project.as_deref()).await?,
    }
    let (items, total) = state.store.inventory_changes(&f).await?;
    Ok(ChangePage {
        items,
        total,
        page: f.page,
        per_page: f.per_page,
    })
}

pub async fn assets(
    state: &AppState,
    p: &Principal,
    kind: &str,
    q: &ListQuery,
) -> Result<AssetPage, ApiError> {
    let kind = kind_param("kind", kind)?;
    let projects = fleet_scope(state, p, q.project.as_deref()).await?;
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let (items, total) = state
        .store
        .fleet_assets(kind, &projects, q.q.as_deref(), page, per_page)
        .await?;
    Ok(AssetPage {
        kind: kind.as_str().to_string(),
        items,
        total,
        page,
        per_page,
    })
}

pub async fn asset_servers(
    state: &AppState,
    p: &Principal,
    kind: &str,
    q: &AssetServersQuery,
) -> Result<AssetServerPage, ApiError> {
    let kind = kind_param("kind", kind)?;
    let projects = fleet_scope(state, p, q.project.as_deref()).await?;
    let (page, per_page) = paging(q.page, q.per_page, is_csv(q.format.as_deref())?)?;
    let (items, total) = state
        .store
        .fleet_asset_servers(kind, &projects, &q.name, q.value.as_deref(), page, per_page)
        .await?;
    Ok(AssetServerPage {
        kind: kind.as_str().to_string(),
        items,
        total,
        page,
        per_page,
    })
}

fn policy_body(policy: InventoryPolicy, version: i64) -> PolicyBody {
    PolicyBody {
        effective_interval_secs: InventoryKind::ALL
            .into_iter()
            .map(|k| (k, policy.interval(k)))
            .collect(),
        interval_secs: policy.interval_secs,
        ignored_ports: policy.ignored_ports,
        version,
    }
}

pub async fn policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<PolicyBody, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (policy, version) = state.store.policy(project_id).await?;
    Ok(policy_body(policy, version))
}

/// The inventory policy's bounds; the message names the field.
pub fn check_policy(policy: &InventoryPolicy) -> Result<(), String> {
    for (kind, secs) in &policy.interval_secs {
        if *secs != 0 && !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(secs) {
            return Err(format!(
                "interval_secs.{kind}: must be 0 (off) or between {MIN_INTERVAL_SECS} and {MAX_INTERVAL_SECS}"
            ));
        }
    }
    if policy.ignored_ports.len() > 1024 {
        return Err("ignored_ports: at most 1024 ports".into());
    }
    Ok(())
}

/// Replaces a project's policy (admin) and pushes the new config to its connected agents.
pub async fn set_policy(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    input: SetPolicy,
) -> Result<PolicyBody, ApiError> {
    p.require(project_id, Role::Admin)?;
    let mut policy = InventoryPolicy {
        interval_secs: input.interval_secs,
        ignored_ports: input.ignored_ports,
    };
    check_policy(&policy).map_err(ApiError::invalid_body)?;
    policy.ignored_ports.sort_unstable();
    policy.ignored_ports.dedup();
    let version = state.store.set_policy(project_id, &policy).await?;
    for (_, server_id) in state.store.server_ids_in(&[project_id.to_string()]).await? {
        state.gateway.config_changed(&server_id);
    }
    let detail = serde_json::to_string(&policy).unwrap_or_default();
    audit(
        state,
        p,
        project_id,
        "inventory.policy",
        project_id,
        &detail,
    )
    .await;
    Ok(policy_body(policy, version))
}

fn item_rows(items: &[InventoryItem]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.value.clone(),
                i.key.clone(),
                compact(&i.data),
            ]
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/inventory", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = Summary), (status = 404, body = crate::api::ErrorBody)))]
pub async fn summary_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    Ok(Json(summary(&state, &p, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/inventory/{kind}", tag = "inventory",
    params(("id" = String, Path), ("kind" = String, Path, description = "accounts, ports, processes, software, autostart, kernel_modules, middleware"), ListQuery),
    responses((status = 200, body = ItemPage, description = "JSON, or CSV with format=csv"), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn items_handler(
    State(state): State<AppState>,
    p: Principal,
    Path((id, kind)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let page = items(&state, &p, &id, &kind, &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            &format!("{}-{}.csv", id, page.kind),
            &["name", "value", "key", "data"],
            item_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

fn change_rows(items: &[InventoryChange]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|c| {
            vec![
                c.ts.to_string(),
                c.server_name.clone(),
                c.server_id.clone(),
                c.kind.clone(),
                c.change.clone(),
                c.name.clone(),
                c.key.clone(),
                c.fields.join(" "),
                c.old.as_ref().map(compact).unwrap_or_default(),
                c.new.as_ref().map(compact).unwrap_or_default(),
            ]
        })
        .collect()
}

const CHANGE_HEADER: &[&str] = &[
    "ts",
    "server",
    "server_id",
    "kind",
    "change",
    "name",
    "key",
    "fields",
    "old",
    "new",
];

#[utoipa::path(get, path = "/api/v1/servers/{id}/inventory/changes", tag = "inventory",
    params(("id" = String, Path), ChangeQuery),
    responses((status = 200, body = ChangePage, description = "JSON, or CSV with format=csv"), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn server_changes_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChangeQuery>,
) -> Result<Response, ApiError> {
    let page = changes(&state, &p, Some(&id), &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            &format!("{id}-changes.csv"),
            CHANGE_HEADER,
            change_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/inventory/changes", tag = "inventory", params(ChangeQuery),
    responses((status = 200, body = ChangePage, description = "JSON, or CSV with format=csv"), (status = 400, body = crate::api::ErrorBody)))]
pub async fn fleet_changes_handler(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<ChangeQuery>,
) -> Result<Response, ApiError> {
    let page = changes(&state, &p, None, &q).await?;
    if is_csv(q.format.as_deref())? {
        return Ok(csv_response(
            "inventory-changes.csv",
            CHANGE_HEADER,
            change_rows(&page.items),
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/assets/{kind}", tag = "inventory",
    params(("kind" = String, Path, description = "accounts, ports, processes, software, autostart, kernel_modules, middleware"), ListQuery),
    responses((status = 200, body = AssetPage, description = "JSON, or CSV with format=csv"), (status = 400, body = crate::api::ErrorBody)))]
pub async fn assets_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(kind): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let page = assets(&state, &p, &kind, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|g| vec![g.name.clone(), g.value.clone(), g.servers.to_string()])
            .collect();
        return Ok(csv_response(
            &format!("assets-{}.csv", page.kind),
            &["name", "value", "servers"],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/assets/{kind}/servers", tag = "inventory",
    params(("kind" = String, Path), AssetServersQuery),
    responses((status = 200, body = AssetServerPage, description = "JSON, or CSV with format=csv"), (status = 400, body = crate::api::ErrorBody)))]
pub async fn asset_servers_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(kind): Path<String>,
    ApiQuery(q): ApiQuery<AssetServersQuery>,
) -> Result<Response, ApiError> {
    let page = asset_servers(&state, &p, &kind, &q).await?;
    if is_csv(q.format.as_deref())? {
        let rows = page
            .items
            .iter()
            .map(|s| {
                vec![
                    s.server_name.clone(),
                    s.server_id.clone(),
                    s.hostname.clone(),
                    s.name.clone(),
                    s.value.clone(),
                    compact(&s.data),
                ]
            })
            .collect();
        return Ok(csv_response(
            &format!("assets-{}-servers.csv", page.kind),
            &["server", "server_id", "hostname", "name", "value", "data"],
            rows,
        ));
    }
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/inventory-policy", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = PolicyBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<PolicyBody>, ApiError> {
    Ok(Json(policy(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/inventory-policy", tag = "inventory", params(("id" = String, Path)),
    request_body = SetPolicy,
    responses((status = 200, body = PolicyBody), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SetPolicy>,
) -> Result<Json<PolicyBody>, ApiError> {
    Ok(Json(set_policy(&state, &p, &id, input).await?))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of inventory, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/inventory-policy",
            get(policy_handler).put(set_policy_handler),
        )
        .route("/api/v1/servers/{id}/inventory", get(summary_handler))
        .route(
            "/api/v1/servers/{id}/inventory/changes",
            get(server_changes_handler),
        )
        .route("/api/v1/servers/{id}/inventory/{kind}", get(items_handler))
        .route("/api/v1/inventory/changes", get(fleet_changes_handler))
        .route("/api/v1/assets/{kind}", get(assets_handler))
        .route("/api/v1/assets/{kind}/servers", get(asset_servers_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    summary_handler,
    items_handler,
    server_changes_handler,
    fleet_changes_handler,
    assets_handler,
    asset_servers_handler,
    policy_handler,
    set_policy_handler,
))]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
