//! Notification operations: a project's channels (list and read for viewers; create, change
//! and delete for admins; the secret is write-only: sealed at once, never answered, logged or
//! audited), "send a test" through the outbox (operators), and the deliveries with their
//! errors and a retry (read for viewers, retry for operators). Another project's channel or
//! delivery is 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::filter::{Filters, last_occurrence, parse_hhmm};
use super::format::AlarmPayload;
use super::send::{EmailSettings, WebhookSettings};
use super::worker::{summary_payload, utc_offset};
use crate::AppState;
use crate::api::{ApiError, ApiJson, ApiQuery, audit, text_field};
use crate::auth::{Principal, Role, sealed};
use crate::web::paging::paging;
use hostward_store::{
    ChannelRow, Delivery, DeliveryFilter, SecretChange, delivery_state, new_id, notification_kind,
    now,
};

/// Longest secret (an SMTP password, a signing secret).
pub const MAX_SECRET: usize = 1024;
/// How long "send a test" waits for the first attempt's outcome.
const TEST_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// A channel as created or changed. `secret` is write-only.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: String,
    /// `email` or `webhook`; a channel keeps its kind.
    pub kind: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Sends each new alarm as it arrives.
    #[serde(default = "yes")]
    pub realtime: bool,
    /// Sends the daily summary at `summary_at`.
    #[serde(default = "yes")]
    pub summary: bool,
    /// HH:MM in the center's time (`notify_utc_offset`, else local time); default 10:00.
    #[serde(default = "ten")]
    pub summary_at: String,
    /// Receives the reports other features mail (email channels).
    #[serde(default)]
    pub reports: bool,
    /// The settings of an email channel.
    #[serde(default)]
    pub email: Option<EmailSettings>,
    /// The settings of a webhook channel.
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    /// The SMTP password or the webhook signing secret. Never answered. On a change: absent
    /// keeps the stored one, `""` removes it.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub filters: Filters,
}

/// Never shows the secret, should anything print an input.
impl std::fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInput")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}

fn ten() -> String {
    "10:00".into()
}

/// A channel as the API shows it: everything but the secret, which is only said to be set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub realtime: bool,
    pub summary: bool,
    pub summary_at: String,
    pub reports: bool,
    pub email: Option<EmailSettings>,
    pub webhook: Option<WebhookSettings>,
    /// Whether a secret (SMTP password, signing secret) is stored.
    pub has_secret: bool,
    pub filters: Filters,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}

/// What "send a test" sends.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// `alarm` (default): a made-up alarm; `summary`: the project's summary of the last 24 h.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct DeliveriesQuery {
    /// pending, sent, skipped, failed, or `failing` (failed, and pending after a failed attempt).
    pub state: Option<String>,
    pub channel_id: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The URL without its path and query, which for chat services is the key (Slack's
/// `/services/T…/B…/…`): what a viewer sees.
pub fn url_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}/…")
        }
        None => "…".into(),
    }
}

/// A channel as `p` may see it: a webhook's full URL only for its project's admins.
fn view_for(p: &Principal, c: ChannelRow) -> ChannelView {
    let admin = p.require(&c.project_id, Role::Admin).is_ok();
    let mut v = view(c);
    if !admin && let Some(w) = v.webhook.as_mut() {
        w.url = url_origin(&w.url);
    }
    v
}

fn view(c: ChannelRow) -> ChannelView {
    let (email, webhook) = match c.kind.as_str() {
        "email" => (serde_json::from_value(c.settings.clone()).ok(), None),
        _ => (None, serde_json::from_value(c.settings.clone()).ok()),
    };
    ChannelView {
        filters: serde_json::from_value(c.filters.clone()).unwrap_or_default(),
        has_secret: c.secret_sealed.is_some(),
        id: c.id,
        project_id: c.project_id,
        name: c.name,
        kind: c.kind,
        enabled: c.enabled,
        realtime: c.realtime,
        summary: c.summary,
        summary_at: c.summary_at,
        reports: c.reports,
        email,
        webhook,
        created_by: c.created_by,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A channel the caller may see with `min`; 404 for another project's.
async fn visible_channel(
    state: &AppState,
    p: &Principal,
    id: &str,
    min: Role,
) -> Result<ChannelRow, ApiError> {
    let c = state
        .store
        .channel(id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    p.require_on("notification channel", &c.project_id, min)?;
    Ok(c)
}

/// Checks an input and turns it into the stored settings and filters (as JSON); `has_secret`:
/// whether the channel will have a secret afterwards.
fn checked(
    input: &ChannelInput,
    has_secret: bool,
) -> Result<(String, serde_json::Value, serde_json::Value), ApiError> {
    let name = text_field("name", &input.name, 1, 100)?;
    if parse_hhmm(&input.summary_at).is_none() {
        return Err(ApiError::invalid_body(format!(
            "summary_at: {:?} is not HH:MM",
            input.summary_at
        )));
    }
    if input.secret.as_ref().is_some_and(|s| s.len() > MAX_SECRET) {
        return Err(ApiError::invalid_body(format!(
            "secret: at most {MAX_SECRET} bytes"
        )));
    }
    input.filters.validate().map_err(ApiError::invalid_body)?;
    let settings = match (input.kind.as_str(), &input.email, &input.webhook) {
        ("email", Some(e), None) => {
            e.validate().map_err(ApiError::invalid_body)?;
            if !e.username.is_empty() && !has_secret {
                return Err(ApiError::invalid_body(
                    "secret: the SMTP password is needed with email.username",
                ));
            }
            serde_json::to_value(e)
        }
        ("webhook", None, Some(w)) => {
            w.validate().map_err(ApiError::invalid_body)?;
            if input.reports {
                return Err(ApiError::invalid_body(
                    "reports: only email channels receive reports",
                ));
            }
            serde_json::to_value(w)
        }
        ("email", _, _) => {
            return Err(ApiError::invalid_body(
                "email: an email channel has email settings and no webhook settings",
            ));
        }
        ("webhook", _, _) => {
            return Err(ApiError::invalid_body(
                "webhook: a webhook channel has webhook settings and no email settings",
            ));
        }
        (other, _, _) => {
            return Err(ApiError::invalid_body(format!(
                "kind: {other:?} is not email or webhook"
            )));
        }
    }
    .map_err(ApiError::internal)?;
    let filters = serde_json::to_value(&input.filters).map_err(ApiError::internal)?;
    Ok((name, settings, filters))
}

fn seal(state: &AppState, secret: &str) -> Result<String, ApiError> {
    sealed::seal(&state.config.data_dir, secret.as_bytes()).map_err(|e| {
        tracing::error!(error = %e, "sealing a channel secret failed");
        ApiError::internal("sealing the secret failed")
    })
}

/// What an audit entry says of a channel: never its secret.
fn audit_detail(c: &ChannelRow, secret: &str) -> String {
    let target = match c.kind.as_str() {
        "email" => c
            .settings
            .get("to")
            .and_then(|t| t.as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        // Only scheme and host: a webhook's path is often its key (Slack's are).
        _ => url_origin(c.settings["url"].as_str().unwrap_or_default()),
    };
    format!(
        "{} channel {:?} to {target}; enabled {}, real time {}, summary {} at {}, reports {}; secret {secret}",
        c.kind, c.name, c.enabled, c.realtime, c.summary, c.summary_at, c.reports
    )
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A project's channels (viewer+).
pub async fn list_channels(
    state: &AppState,
    p: &Principal,
    project_id: &str,
) -> Result<ChannelList, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let items = state
        .store
        .channels(&[project_id.to_string()])
        .await?
        .into_iter()
        .map(|c| view_for(p, c))
        .collect();
    Ok(ChannelList { items })
}

/// One channel (viewer+ of its project).
pub async fn get_channel(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> Result<ChannelView, ApiError> {
    Ok(view_for(
        p,
        visible_channel(state, p, id, Role::Viewer).await?,
    ))
}

/// Creates a channel (admin); the secret is sealed before it is stored.
pub async fn create_channel(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    input: ChannelInput,
) -> Result<ChannelView, ApiError> {
    p.require(project_id, Role::Admin)?;
    if state.store.project(project_id).await?.is_none() {
        return Err(ApiError::not_found("project"));
    }
    let secret = input.secret.as_deref().filter(|s| !s.is_empty());
    let (name, settings, filters) = checked(&input, secret.is_some())?;
    let t = now();
    let c = ChannelRow {
        id: new_id(),
        project_id: project_id.to_string(),
        name,
        kind: input.kind.clone(),
        settings,
        secret_sealed: secret.map(|s| seal(state, s)).transpose()?,
        filters,
        enabled: input.enabled,
        realtime: input.realtime,
        summary: input.summary,
        summary_at: input.summary_at.clone(),
        reports: input.reports,
        created_by: p.username.clone(),
        created_at: t,
        updated_at: t,
    };
    state.store.create_channel(&c).await?;
    let said = if secret.is_some() { "set" } else { "none" };
    audit(
        state,
        p,
        project_id,
        "notifications.channel.create",
        &c.id,
        &audit_detail(&c, said),
    )
    .await;
    state.notifier.wake();
    Ok(view(c))
}

/// Changes a channel (admin of its project). Its kind stays; an absent secret is kept, `""`
/// removes it.
pub async fn update_channel(
    state: &AppState,
    p: &Principal,
    id: &str,
    input: ChannelInput,
) -> Result<ChannelView, ApiError> {
    let old = visible_channel(state, p, id, Role::Admin).await?;
    if input.kind != old.kind {
        return Err(ApiError::invalid_body(format!(
            "kind: the channel is {}; make a new channel for another kind",
            old.kind
        )));
    }
    let change = match input.secret.as_deref() {
        None => SecretChange::Keep,
        Some("") => SecretChange::Clear,
        Some(s) => SecretChange::Set(seal(state, s)?),
    };
    let has_secret = match &change {
        SecretChange::Keep => old.secret_sealed.is_some(),
        SecretChange::Set(_) => true,
        SecretChange::Clear => false,
    };
    let (name, settings, filters) = checked(&input, has_secret)?;
    let c = ChannelRow {
        name,
        settings,
        filters,
        enabled: input.enabled,
        realtime: input.realtime,
        summary: input.summary,
        summary_at: input.summary_at.clone(),
        reports: input.reports,
        // Moves on every change (the sender is rebuilt), even within one second.
        updated_at: now().max(old.updated_at + 1),
        secret_sealed: None,
        ..old
    };
    state.store.update_channel(&c, &change).await?;
    let said = match change {
        SecretChange::Keep => "kept",
        SecretChange::Set(_) => "replaced",
        SecretChange::Clear => "removed",
    };
    audit(
        state,
        p,
        &c.project_id,
        "notifications.channel.update",
        &c.id,
        &audit_detail(&c, said),
    )
    .await;
    state.notifier.wake();
    get_channel(state, p, id).await
}

/// Deletes a channel and its deliveries (admin of its project).
pub async fn delete_channel(state: &AppState, p: &Principal, id: &str) -> Result<(), ApiError> {
    let c = visible_channel(state, p, id, Role::Admin).await?;
    state.store.delete_channel(id).await?;
    audit(
        state,
        p,
        &c.project_id,
        "notifications.channel.delete",
        id,
        &format!("{} channel {:?}", c.kind, c.name),
    )
    .await;
    Ok(())
}

/// "Send a test" (operator+): a made-up alarm, or the project's summary of the last 24 hours,
/// queued in the outbox and sent as any notification is (the channel's filters aside), then
/// its first attempt waited for, up to 20 s. The delivery says whether it went, or why not.
pub async fn send_test(
    state: &AppState,
    p: &Principal,
    id: &str,
    body: TestBody,
) -> Result<Delivery, ApiError> {
    let c = visible_channel(state, p, id, Role::Operator).await?;
    let t = now();
    let kind = body.kind.as_deref().unwrap_or("alarm");
    let payload = match kind {
        "alarm" => serde_json::to_value(AlarmPayload {
            alarm_id: "test".into(),
            server_id: "test".into(),
            server_name: "test-server".into(),
            alarm_type: "brute_force".into(),
            title: "Test notification".into(),
            severity: "high".into(),
            tactic: "TA0006 Credential Access".into(),
            technique: "T1110.001 Brute Force: Password Guessing".into(),
            key: "192.0.2.1".into(),
            source_ip: Some("192.0.2.1".into()),
            count: 1,
            ts: t,
            evidence: serde_json::json!({}),
            test: true,
        }),
        "summary" => {
            let at = parse_hhmm(&c.summary_at).unwrap_or(600);
            let (_, day) = last_occurrence(at, t, utc_offset(state, t));
            serde_json::to_value(
                summary_payload(state, &c.project_id, t - 86_400, t, day, true).await?,
            )
        }
        other => {
            return Err(ApiError::invalid_body(format!(
                "kind: {other:?} is not alarm or summary"
            )));
        }
    }
    .map_err(ApiError::internal)?;
    let delivery_id = state
        .store
        .enqueue_notification(
            &c.id,
            notification_kind::TEST,
            &format!("test:{}", new_id()),
            &payload,
            t,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    audit(
        state,
        p,
        &c.project_id,
        "notifications.channel.test",
        &c.id,
        &format!("{kind} test, delivery {delivery_id}"),
    )
    .await;
    state.notifier.wake();
    let deadline = tokio::time::Instant::now() + TEST_WAIT;
    loop {
        let d = state
            .store
            .delivery(&delivery_id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        if d.state != delivery_state::PENDING
            || d.attempts > 0
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(d);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A project's deliveries, newest first (viewer+).
pub async fn deliveries(
    state: &AppState,
    p: &Principal,
    project_id: &str,
    q: DeliveriesQuery,
) -> Result<DeliveryPage, ApiError> {
    p.require(project_id, Role::Viewer)?;
    let (page, per_page) = paging(q.page, q.per_page, false)?;
    let state_filter = q.state.filter(|s| !s.is_empty());
    if let Some(s) = &state_filter
        && s != "failing"
        && !delivery_state::ALL.contains(&s.as_str())
    {
        return Err(ApiError::invalid_query(format!(
            "state: {s:?} is not one of pending, sent, skipped, failed, failing"
        )));
    }
    let (items, total) = state
        .store
        .deliveries(&DeliveryFilter {
            projects: vec![project_id.to_string()],
            channel_id: q.channel_id,
            state: state_filter,
            page,
            per_page,
        })
        .await?;
    Ok(DeliveryPage {
        items,
        total,
        page,
        per_page,
    })
}

/// Tries a failed delivery again now, with its attempts back, or a pending one at once
/// (operator+ of its project). 409 when it is sent, skipped, or being sent.
pub async fn retry(state: &AppState, p: &Principal, id: &str) -> Result<Delivery, ApiError> {
    let d = state
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    p.require_on("delivery", &d.project_id, Role::Operator)?;
    if !state.store.retry_notification(id, now()).await? {
        return Err(ApiError::conflict(format!(
            "the delivery is {}: only a failed or waiting one is retried",
            d.state
        )));
    }
    audit(
        state,
        p,
        &d.project_id,
        "notifications.retry",
        id,
        &format!("{} to channel {:?}", d.kind, d.channel_name),
    )
    .await;
    state.notifier.wake();
    state
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers

#[utoipa::path(get, path = "/api/v1/projects/{id}/notification-channels", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = ChannelList), (status = 404, body = crate::api::ErrorBody)))]
pub async fn list_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ChannelList>, ApiError> {
    Ok(Json(list_channels(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/notification-channels", tag = "notifications", params(("id" = String, Path)),
    request_body = ChannelInput,
    responses((status = 201, body = ChannelView), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn create_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_channel(&state, &p, &id, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/notification-channels/{id}", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = crate::api::ErrorBody)))]
pub async fn get_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(get_channel(&state, &p, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/notification-channels/{id}", tag = "notifications", params(("id" = String, Path)),
    request_body = ChannelInput,
    responses((status = 200, body = ChannelView), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn update_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(update_channel(&state, &p, &id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/notification-channels/{id}", tag = "notifications", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn delete_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_channel(&state, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/notification-channels/{id}/test", tag = "notifications", params(("id" = String, Path)),
    request_body = TestBody,
    responses((status = 200, body = Delivery, description = "the test's delivery after its first attempt (or 20 s)"),
        (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)))]
pub async fn test_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(send_test(&state, &p, &id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/notifications", tag = "notifications", params(("id" = String, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
pub async fn deliveries_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    Ok(Json(deliveries(&state, &p, &id, q).await?))
}

#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn retry_handler(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(retry(&state, &p, &id).await?))
}

// ---------------------------------------------------------------------------------------------
// Routes and OpenAPI

/// The REST routes of notifications, with full `/api/v1/…` paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{id}/notification-channels",
            get(list_handler).post(create_handler),
        )
        .route(
            "/api/v1/notification-channels/{id}",
            get(get_handler).put(update_handler).delete(delete_handler),
        )
        .route(
            "/api/v1/notification-channels/{id}/test",
            post(test_handler),
        )
        .route(
            "/api/v1/projects/{id}/notifications",
            get(deliveries_handler),
        )
        .route("/api/v1/notifications/{id}/retry", post(retry_handler))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_handler,
        create_handler,
        get_handler,
        update_handler,
        delete_handler,
        test_handler,
        deliveries_handler,
        retry_handler,
    ),
    components(schemas(
        ChannelInput,
        ChannelView,
        ChannelList,
        TestBody,
        DeliveryPage,
        Delivery,
        EmailSettings,
        WebhookSettings,
        Filters,
        super::filter::Mask,
        super::send::Security,
        super::format::Format,
    ))
)]
struct Doc;

/// The OpenAPI paths of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
