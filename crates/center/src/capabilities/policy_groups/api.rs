//! Policy groups: a project's default group is its own policies (each capability's policy API
//! edits them); custom groups are copies of the default or of another group, edited here
//! policy by policy with the same checks each capability's own API applies, and servers are
//! assigned to them. Custom groups are for editions that have them (premium and web tamper
//! protection, as the reference product); a change reaches every online agent of the group at
//! once (a config push to each).
//!
//! `GET/POST /api/v1/projects/{id}/policy-groups`, `GET/DELETE /api/v1/policy-groups/{id}`,
//! `GET /api/v1/policy-groups/{id}/policies`, `PUT /api/v1/policy-groups/{id}/policies/{key}`,
//! `PUT /api/v1/servers/{id}/policy-group`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use hostward_proto::Feature;
use hostward_store::{PolicyGroup, Server};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::servers::visible_server;
use crate::api::{ApiError, ApiJson, audit};
use crate::auth::{Principal, Role};
use crate::capabilities::{PolicyKind, policy_kinds};

pub const MAX_NAME: usize = 64;
pub const MAX_DESCRIPTION: usize = 256;
/// Custom groups per project.
pub const MAX_GROUPS: usize = 100;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A group of the same project to copy; absent: the project's default policies.
    pub copy_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupPolicy {
    pub key: String,
    pub label: String,
    pub policy: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupPolicies {
    pub group: PolicyGroup,
    pub policies: Vec<GroupPolicy>,
    /// The project's policy version (agents' configs follow it).
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignGroup {
    /// None: the project's default policies.
    pub group_id: Option<String>,
}

/// The reference product's rule: letters, digits, `_`, `-` and spaces, no space at either end.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("name: 1 to {MAX_NAME} characters"));
    }
    if name.trim() != name {
        return Err("name: no space at the start or end".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | ' ')))
    {
        return Err(format!(
            "name: {c:?} is not allowed (letters, digits, _, - and spaces only)"
        ));
    }
    Ok(())
}

/// A group the caller may see with at least `min`; 404 otherwise.
async fn visible_group(
    state: &AppState,
    p: &Principal,
    id: &str,
    min: Role,
) -> Result<PolicyGroup, ApiError> {
    let g = state
        .store
        .policy_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("policy group"))?;
    p.require_on("policy group", &g.project_id, min)?;
    Ok(g)
}

fn kind(key: &str) -> Result<&'static PolicyKind, ApiError> {
    policy_kinds()
        .find(|k| k.key == key)
        .ok_or_else(|| ApiError::not_found("policy"))
}

pub async fn list(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<Vec<PolicyGroup>, ApiError> {
    p.require(project_id, Role::Viewer)?;
    Ok(state.store.policy_groups(project_id).await?)
}

pub async fn create(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    input: NewGroup,
) -> Result<PolicyGroup, ApiError> {
    p.require(project_id, Role::Admin)?;
    check_name(&input.name).map_err(ApiError::invalid_body)?;
    if input.description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_body(format!(
            "description: at most {MAX_DESCRIPTION} characters"
        )));
    }
    if state.store.policy_groups(project_id).await?.len() >= MAX_GROUPS {
        return Err(ApiError::conflict(format!(
            "the project has {MAX_GROUPS} policy groups, the most it may have"
        )));
    }
    let g = state
        .store
        .create_policy_group(
            project_id,
            &input.name,
            &input.description,
            input.copy_from.as_deref(),
        )
        .await?;
    let from = input.copy_from.as_deref().unwrap_or("default");
    audit(
        state,
        p,
        project_id,
        "policy_group.create",
        &g.id,
        &format!("{} (copy of {from})", g.name),
    )
    .await;
    Ok(g)
}

pub async fn delete(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let g = visible_group(state, p, id, Role::Admin).await?;
    state.store.delete_policy_group(&g.id).await?;
    audit(
        state,
        p,
        &g.project_id,
        "policy_group.delete",
        &g.id,
        &g.name,
    )
    .await;
    Ok(())
}

/// A group with every policy it holds (the defaults where it holds none).
pub async fn policies(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> Result<GroupPolicies, ApiError> {
    let group = visible_group(state, p, id, Role::Viewer).await?;
    let mut out = Vec::new();
    let mut version = 0;
    for k in policy_kinds() {
        let (body, v) = state.store.group_policy_body(&group.id, k.key).await?;
        version = v;
        out.push(GroupPolicy {
            key: k.key.into(),
            label: k.label.into(),
            policy: body.unwrap_or_else(k.default),
        });
    }
    Ok(GroupPolicies {
        group,
        policies: out,
        version,
    })
}

/// Replaces one policy of a group (admin), checked as the capability's own API checks it, and
/// pushes it to the group's agents. Returns the project's new policy version.
pub async fn set_policy(
    state: &AppState,
    p: &Principal,
    id: &str,
    key: &str,
    body: serde_json::Value,
) -> Result<i64, ApiError> {
    let group = visible_group(state, p, id, Role::Admin).await?;
    let kind = kind(key)?;
    let body = (kind.check)(body).map_err(|e| ApiError::invalid_body(format!("{key}: {e}")))?;
    let version = state
        .store
        .set_group_policy_body(&group.id, key, &body)
        .await?;
    for server_id in state.store.policy_group_servers(&group.id).await? {
        state.gateway.config_changed(&server_id);
    }
    audit(
        state,
        p,
        &group.project_id,
        &format!("policy_group.{key}"),
        &group.id,
        &group.name,
    )
    .await;
    Ok(version)
}

/// Assigns a server to a custom group of its project, or back to the default (admin). Only an
/// edition with custom groups may leave the default (409 names the edition).
pub async fn assign(
    state: &AppState,
    p: &Principal,
    server_id: &str,
    input: AssignGroup,
) -> Result<Server, ApiError> {
    let srv = visible_server(state, p, server_id, Role::Admin).await?;
    if let Some(g) = &input.group_id {
        let group = visible_group(state, p, g, Role::Admin).await?;
        if group.project_id != srv.project_id {
            return Err(ApiError::not_found("policy group"));
        }
        if !crate::capabilities::editions::api::has(&srv, Feature::CustomPolicyGroups) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "edition",
                format!(
                    "{} has the {} edition, which uses the project's default policy group only; \
                     custom groups need premium or web tamper protection",
                    srv.name,
                    if srv.edition.is_empty() {
                        "no"
                    } else {
                        srv.edition.as_str()
                    }
                ),
            ));
        }
    }
    let srv = state
        .store
        .assign_policy_group(&srv.id, input.group_id.as_deref())
        .await?;
    state.gateway.config_changed(&srv.id);
    audit(
        state,
        p,
        &srv.project_id,
        "server.policy_group",
        &srv.id,
        input.group_id.as_deref().unwrap_or("default"),
    )
    .await;
    Ok(srv)
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/policy-groups", tag = "policy groups", params(("id" = String, Path)),
    responses((status = 200, body = [PolicyGroup]), (status = 404, body = crate::api::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<PolicyGroup>>, ApiError> {
    Ok(Json(list(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/policy-groups", tag = "policy groups", params(("id" = String, Path)),
    request_body = NewGroup,
    responses((status = 201, body = PolicyGroup), (status = 400, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<PolicyGroup>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &p, &id, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/policy-groups/{id}", tag = "policy groups", params(("id" = String, Path)),
    responses((status = 200, body = GroupPolicies), (status = 404, body = crate::api::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<GroupPolicies>, ApiError> {
    Ok(Json(policies(&state, &p, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/policy-groups/{id}", tag = "policy groups", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "servers use it", body = crate::api::ErrorBody)))]
pub async fn delete_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub version: i64,
}

#[utoipa::path(put, path = "/api/v1/policy-groups/{id}/policies/{key}", tag = "policy groups",
    params(("id" = String, Path), ("key" = String, Path, description = "a capability's policy key: inventory, risk, baseline, bruteforce, behaviour, fim, tamper, ransom, malware")),
    request_body = Object,
    responses((status = 200, body = Version), (status = 400, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)))]
pub async fn set_policy_handler(
    State(state): State<AppState>,
    p: Principal,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<Version>, ApiError> {
    let version = set_policy(&state, &p, &id, &key, body).await?;
    Ok(Json(Version { version }))
}

#[utoipa::path(put, path = "/api/v1/servers/{id}/policy-group", tag = "policy groups", params(("id" = String, Path)),
    request_body = AssignGroup,
    responses((status = 200, body = Object), (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "the server's edition has no custom groups", body = crate::api::ErrorBody)))]
pub async fn assign_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AssignGroup>,
) -> Result<Json<Server>, ApiError> {
    Ok(Json(assign(&state, &p, &id, input).await?))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/policy-groups",
            get(list_handler).post(create_handler),
        )
        .route(
            "/api/v1/policy-groups/{id}",
            get(get_handler).delete(delete_handler),
        )
        .route(
            "/api/v1/policy-groups/{id}/policies/{key}",
            put(set_policy_handler),
        )
        .route("/api/v1/servers/{id}/policy-group", put(assign_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_handler,
    create_handler,
    get_handler,
    delete_handler,
    set_policy_handler,
    assign_handler
))]
struct Doc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
