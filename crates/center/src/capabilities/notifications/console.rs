//! Notification pages: the channels of the caller's projects with "send a test", the failing
//! deliveries with their errors and a retry (`/notifications`), every delivery with a state
//! filter (`/notifications/deliveries`), and a channel's form (new and edit): settings, what
//! it receives, filters, masking rules as rows, and the secret as a password field that is
//! never filled in (empty keeps the stored one). Every operation is `api.rs`'s.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::api::{self as ops, ChannelInput, ChannelView, DeliveriesQuery, TestBody};
use super::filter::{Filters, Mask};
use super::format::Format;
use super::send::{EmailSettings, Security, WebhookSettings};
use crate::AppState;
use crate::console::forms::{Flash, entries, opt, row_numbers, truthy};
use crate::console::{
    ApiError, ConsoleError, Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, Ts,
    html_status, project_names, see_other,
};
use crate::web::page::{param, url};
use hostward_store::Delivery;

/// Empty masking-rule rows a form offers beyond the filled ones.
const EMPTY_MASK_ROWS: usize = 2;
const DAY_LABELS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(index))
        .route("/notifications/deliveries", get(deliveries_page))
        .route("/notifications/new", get(new_form))
        .route("/notifications/channels", post(create))
        .route("/notifications/channels/{id}", get(edit_form).post(update))
        .route("/notifications/channels/{id}/delete", post(delete))
        .route("/notifications/channels/{id}/test", post(test))
        .route("/notifications/deliveries/{id}/retry", post(retry))
}

// ---------------------------------------------------------------------------------------------
// The overview

struct ChannelRowView {
    id: String,
    project: String,
    name: String,
    kind: String,
    target: String,
    enabled: bool,
    receives: String,
    has_secret: bool,
    can_edit: bool,
    can_test: bool,
}

pub(crate) struct DeliveryView {
    id: String,
    project: String,
    channel: String,
    kind: String,
    what: String,
    state: String,
    attempts: i64,
    error: String,
    created: Ts,
    next: Option<Ts>,
    sent: Option<Ts>,
    can_retry: bool,
}

#[derive(Template)]
#[template(path = "notifications/index.html")]
struct IndexPage {
    nav: Nav,
    flash: Option<Flash>,
    channels: Vec<ChannelRowView>,
    failing: Vec<DeliveryView>,
    failing_total: i64,
    /// Where a retry returns: the overview.
    back: &'static str,
    /// (project id, name) where the caller may add channels.
    admin_projects: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "notifications/deliveries.html")]
struct DeliveriesPage {
    nav: Nav,
    flash: Option<Flash>,
    /// The deliveries shown (the table's name for them).
    failing: Vec<DeliveryView>,
    back: &'static str,
    total: i64,
    page: i64,
    state_opts: Vec<Opt>,
    project_opts: Vec<Opt>,
    prev_href: Option<String>,
    next_href: Option<String>,
}

fn receives(c: &ChannelView) -> String {
    let mut v = Vec::new();
    if c.realtime {
        v.push("alarms".to_string());
    }
    if c.summary {
        v.push(format!("daily summary at {}", c.summary_at));
    }
    if c.reports {
        v.push("reports".to_string());
    }
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

fn target(c: &ChannelView) -> String {
    match (&c.email, &c.webhook) {
        (Some(e), _) => format!("{} via {}:{}", e.to.join(", "), e.host, e.port),
        (_, Some(w)) => format!("{} ({})", ops::url_origin(&w.url), w.format.as_str()),
        _ => String::new(),
    }
}

fn what(d: &Delivery) -> String {
    let p = &d.payload;
    match d.kind.as_str() {
        "alarm" => format!(
            "{} {} on {}",
            p["severity"].as_str().unwrap_or(""),
            p["title"].as_str().unwrap_or(""),
            p["server_name"].as_str().unwrap_or("")
        ),
        "summary" => format!("summary of {}", p["day"].as_str().unwrap_or("")),
        "report" => p["subject"].as_str().unwrap_or("report").to_string(),
        _ if p.get("day").is_some() => "test summary".into(),
        _ => "test alarm".into(),
    }
}

fn delivery_view(p: &Principal, names: &HashMap<String, String>, d: Delivery) -> DeliveryView {
    let pending = d.state == "pending";
    DeliveryView {
        can_retry: (d.state == "failed" || pending)
            && p.require(&d.project_id, Role::Operator).is_ok(),
        project: names
            .get(&d.project_id)
            .cloned()
            .unwrap_or_else(|| d.project_id.clone()),
        what: what(&d),
        next: pending.then(|| Ts::at(d.next_attempt_at)),
        sent: Ts::opt(d.sent_at),
        created: Ts::at(d.created_at),
        id: d.id,
        channel: d.channel_name,
        kind: d.kind,
        state: d.state,
        attempts: d.attempts,
        error: d.last_error,
    }
}

async fn render_index(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    flash: Option<Flash>,
) -> PageResult {
    let projects = project_names(state, p).await?;
    let names: HashMap<String, String> = projects.iter().cloned().collect();
    let mut channels = Vec::new();
    let mut failing = Vec::new();
    let mut failing_total = 0;
    for (id, name) in &projects {
        for c in ops::list_channels(state, p, id).await?.items {
            channels.push(ChannelRowView {
                target: target(&c),
                receives: receives(&c),
                can_edit: p.require(id, Role::Admin).is_ok(),
                can_test: p.require(id, Role::Operator).is_ok(),
                project: name.clone(),
                id: c.id,
                name: c.name,
                kind: c.kind,
                enabled: c.enabled,
                has_secret: c.has_secret,
            });
        }
        let page = ops::deliveries(
            state,
            p,
            id,
            DeliveriesQuery {
                state: Some("failing".into()),
                per_page: Some(50),
                ..Default::default()
            },
        )
        .await?;
        failing_total += page.total;
        failing.extend(page.items.into_iter().map(|d| delivery_view(p, &names, d)));
    }
    failing.sort_by(|a, b| b.created.abs.cmp(&a.created.abs));
    let admin_projects = projects
        .into_iter()
        .filter(|(id, _)| p.require(id, Role::Admin).is_ok())
        .collect();
    html_status(
        status,
        &IndexPage {
            nav: Nav::new(p, "notifications"),
            flash,
            channels,
            failing,
            failing_total,
            back: "",
            admin_projects,
        },
    )
}

fn done_flash(q: &HashMap<String, String>) -> Option<Flash> {
    let text = match q.get("done").map(String::as_str) {
        Some("created") => "The channel was created.",
        Some("saved") => "The channel was saved.",
        Some("deleted") => "The channel and its deliveries were deleted.",
        Some("retried") => "The delivery is being tried again.",
        _ => return None,
    };
    Some(Flash {
        class: "ok",
        text: text.into(),
    })
}

async fn index(
    State(state): State<AppState>,
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    render_index(&state, &p, StatusCode::OK, done_flash(&q)).await
}

const STATES: &[(&str, &str)] = &[
    ("", "every state"),
    (
        "failing",
        "failing (failed, or waiting after a failed attempt)",
    ),
    ("pending", "pending"),
    ("sent", "sent"),
    ("skipped", "skipped (filtered, masked, repeats)"),
    ("failed", "failed"),
];

async fn deliveries_page(
    State(state): State<AppState>,
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let projects = project_names(&state, &p).await?;
    let names: HashMap<String, String> = projects.iter().cloned().collect();
    let project = param(&q, "project");
    let st = param(&q, "state");
    let page = crate::web::page::page_param(&q);
    let chosen: Vec<&(String, String)> = projects
        .iter()
        .filter(|(id, _)| project.is_empty() || *id == project)
        .collect();
    if !project.is_empty() && chosen.is_empty() {
        return Err(ConsoleError::not_found());
    }
    const PER_PAGE: i64 = 100;
    let mut deliveries = Vec::new();
    let mut total = 0;
    for (id, _) in chosen {
        let r = ops::deliveries(
            &state,
            &p,
            id,
            DeliveriesQuery {
                state: opt(&st),
                page: Some(page),
                per_page: Some(PER_PAGE),
                ..Default::default()
            },
        )
        .await?;
        total = total.max(r.total);
        deliveries.extend(r.items.into_iter().map(|d| delivery_view(&p, &names, d)));
    }
    deliveries.sort_by(|a, b| b.created.abs.cmp(&a.created.abs));
    let href = |n: i64| {
        url(
            "/notifications/deliveries",
            &[
                ("project", &project),
                ("state", &st),
                ("page", &n.to_string()),
            ],
        )
    };
    html_status(
        StatusCode::OK,
        &DeliveriesPage {
            nav: Nav::new(&p, "notifications"),
            flash: done_flash(&q),
            failing: deliveries,
            back: "deliveries",
            total,
            page,
            state_opts: STATES
                .iter()
                .map(|(v, l)| Opt {
                    value: v.to_string(),
                    label: l.to_string(),
                    selected: *v == st,
                })
                .collect(),
            project_opts: projects
                .into_iter()
                .map(|(id, name)| Opt {
                    selected: id == project,
                    value: id,
                    label: name,
                })
                .collect(),
            prev_href: (page > 1).then(|| href(page - 1)),
            next_href: (page * PER_PAGE < total).then(|| href(page + 1)),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The channel form

struct MaskRow {
    index: usize,
    types: String,
    servers: String,
    days: Vec<u8>,
    start: String,
    end: String,
    note: String,
}

struct DayBox {
    n: u8,
    label: &'static str,
    on: bool,
}

impl MaskRow {
    fn day_boxes(&self) -> Vec<DayBox> {
        (1..=7u8)
            .map(|n| DayBox {
                n,
                label: DAY_LABELS[usize::from(n) - 1],
                on: self.days.contains(&n),
            })
            .collect()
    }
}

/// What the form shows: the input as typed (or as stored); never a secret.
struct ChannelForm {
    kind: String,
    name: String,
    enabled: bool,
    realtime: bool,
    summary: bool,
    summary_at: String,
    reports: bool,
    email: EmailSettings,
    webhook: WebhookSettings,
    min_severity: String,
    types: String,
    servers: String,
    dedup_minutes: u32,
    masks: Vec<MaskRow>,
}

#[derive(Template)]
#[template(path = "notifications/channel.html")]
struct ChannelPage {
    nav: Nav,
    error: Option<String>,
    /// None for a new channel.
    channel_id: Option<String>,
    project_id: String,
    project_name: String,
    can_edit: bool,
    has_secret: bool,
    form: ChannelForm,
    severity_opts: Vec<Opt>,
    security_opts: Vec<Opt>,
    format_opts: Vec<Opt>,
}

fn empty_email() -> EmailSettings {
    EmailSettings {
        host: String::new(),
        port: 587,
        security: Security::Starttls,
        username: String::new(),
        from: String::new(),
        to: Vec::new(),
        ca_pem: None,
    }
}

fn empty_webhook() -> WebhookSettings {
    WebhookSettings {
        url: String::new(),
        format: Format::Hostward,
        ca_pem: None,
        timeout_secs: 10,
    }
}

fn mask_rows(masks: &[Mask]) -> Vec<MaskRow> {
    let mut rows: Vec<MaskRow> = masks
        .iter()
        .enumerate()
        .map(|(index, m)| MaskRow {
            index,
            types: m.types.join("; "),
            servers: m.servers.join("; "),
            days: m.days.clone(),
            start: m.start.clone().unwrap_or_default(),
            end: m.end.clone().unwrap_or_default(),
            note: m.note.clone(),
        })
        .collect();
    let n = rows.len();
    rows.extend((n..n + EMPTY_MASK_ROWS).map(|index| MaskRow {
        index,
        types: String::new(),
        servers: String::new(),
        days: Vec::new(),
        start: String::new(),
        end: String::new(),
        note: String::new(),
    }));
    rows
}

fn form_of(input: &ChannelInput) -> ChannelForm {
    let f = &input.filters;
    ChannelForm {
        kind: input.kind.clone(),
        name: input.name.clone(),
        enabled: input.enabled,
        realtime: input.realtime,
        summary: input.summary,
        summary_at: input.summary_at.clone(),
        reports: input.reports,
        email: input.email.clone().unwrap_or_else(empty_email),
        webhook: input.webhook.clone().unwrap_or_else(empty_webhook),
        min_severity: f
            .min_severity
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        types: f.types.join("; "),
        servers: f.servers.join("; "),
        dedup_minutes: f.dedup_minutes,
        masks: mask_rows(&f.masks),
    }
}

fn input_of(c: &ChannelView) -> ChannelInput {
    ChannelInput {
        name: c.name.clone(),
        kind: c.kind.clone(),
        enabled: c.enabled,
        realtime: c.realtime,
        summary: c.summary,
        summary_at: c.summary_at.clone(),
        reports: c.reports,
        email: c.email.clone(),
        webhook: c.webhook.clone(),
        secret: None,
        filters: c.filters.clone(),
    }
}

/// The input a posted form describes. Numbers that do not parse become 0, which the checks
/// refuse naming the field.
pub(crate) fn input_from_form(f: &Fields) -> ChannelInput {
    let kind = f.get("kind").to_string();
    let pem = |k: &str| opt(f.get(k));
    let email = (kind == "email").then(|| EmailSettings {
        host: f.get("email_host").to_string(),
        port: f.get("email_port").parse().unwrap_or(0),
        security: match f.get("email_security") {
            "tls" => Security::Tls,
            "none" => Security::None,
            _ => Security::Starttls,
        },
        username: f.get("email_username").to_string(),
        from: f.get("email_from").to_string(),
        to: entries(&f.get("email_to").replace(',', ";")),
        ca_pem: pem("email_ca_pem"),
    });
    let webhook = (kind == "webhook").then(|| WebhookSettings {
        url: f.get("webhook_url").to_string(),
        format: match f.get("webhook_format") {
            "slack" => Format::Slack,
            "teams" => Format::Teams,
            _ => Format::Hostward,
        },
        ca_pem: pem("webhook_ca_pem"),
        timeout_secs: f.get("webhook_timeout").parse().unwrap_or(0),
    });
    let masks = row_numbers(
        f,
        &[
            "mask_types_",
            "mask_servers_",
            "mask_day_",
            "mask_start_",
            "mask_end_",
            "mask_note_",
        ],
    )
    .into_iter()
    .filter_map(|i| {
        let m = Mask {
            types: entries(f.get(&format!("mask_types_{i}"))),
            servers: entries(f.get(&format!("mask_servers_{i}"))),
            days: (1..=7u8)
                .filter(|d| truthy(f, &format!("mask_day_{i}_{d}")))
                .collect(),
            start: opt(f.get(&format!("mask_start_{i}"))),
            end: opt(f.get(&format!("mask_end_{i}"))),
            until: None,
            note: f.get(&format!("mask_note_{i}")).to_string(),
        };
        (m != Mask::default()).then_some(m)
    })
    .collect();
    let secret = if truthy(f, "secret_clear") {
        Some(String::new())
    } else {
        // Not trimmed: a password may end in a space.
        f.0.get("secret").filter(|s| !s.is_empty()).cloned()
    };
    ChannelInput {
        name: f.get("name").to_string(),
        kind,
        enabled: truthy(f, "enabled"),
        realtime: truthy(f, "realtime"),
        summary: truthy(f, "summary"),
        summary_at: f.get("summary_at").to_string(),
        reports: truthy(f, "reports"),
        email,
        webhook,
        secret,
        filters: Filters {
            min_severity: hostward_proto::Severity::parse(f.get("min_severity")),
            types: entries(f.get("types")),
            servers: entries(f.get("servers")),
            masks,
            dedup_minutes: match f.get("dedup_minutes") {
                "" => 60,
                n => n.parse().unwrap_or(u32::MAX),
            },
        },
    }
}

fn select(values: &[(&str, &str)], selected: &str) -> Vec<Opt> {
    values
        .iter()
        .map(|(v, l)| Opt {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == selected,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn render_form(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    channel_id: Option<String>,
    project_id: &str,
    has_secret: bool,
    input: &ChannelInput,
    error: Option<String>,
) -> PageResult {
    let project_name = project_names(state, p)
        .await?
        .into_iter()
        .find(|(id, _)| id == project_id)
        .map(|(_, n)| n)
        .ok_or_else(ConsoleError::not_found)?;
    let form = form_of(input);
    let security = match form.email.security {
        Security::Starttls => "starttls",
        Security::Tls => "tls",
        Security::None => "none",
    };
    html_status(
        status,
        &ChannelPage {
            nav: Nav::new(p, "notifications"),
            error,
            channel_id,
            project_id: project_id.to_string(),
            project_name,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            has_secret,
            severity_opts: select(
                &[
                    ("", "every severity"),
                    ("low", "low and above"),
                    ("medium", "medium and above"),
                    ("high", "high and above"),
                    ("critical", "critical only"),
                ],
                &form.min_severity,
            ),
            security_opts: select(
                &[
                    ("starttls", "STARTTLS (port 587)"),
                    ("tls", "TLS from the start (port 465)"),
                    ("none", "none (a relay on this machine only)"),
                ],
                security,
            ),
            format_opts: select(
                &[
                    ("hostward", "Hostward JSON"),
                    ("slack", "Slack incoming webhook"),
                    ("teams", "Microsoft Teams incoming webhook"),
                ],
                form.webhook.format.as_str(),
            ),
            form,
        },
    )
}

async fn new_form(
    State(state): State<AppState>,
    Session(p): Session,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let project = param(&q, "project");
    p.require(&project, Role::Admin)?;
    let kind = if param(&q, "kind") == "webhook" {
        "webhook"
    } else {
        "email"
    };
    let input = ChannelInput {
        name: String::new(),
        kind: kind.into(),
        enabled: true,
        realtime: true,
        summary: kind == "email",
        summary_at: "10:00".into(),
        reports: false,
        email: (kind == "email").then(empty_email),
        webhook: (kind == "webhook").then(empty_webhook),
        secret: None,
        filters: Filters::default(),
    };
    render_form(
        &state,
        &p,
        StatusCode::OK,
        None,
        &project,
        false,
        &input,
        None,
    )
    .await
}

/// A refused form shows again with the message and the input (never the secret).
async fn refused(
    state: &AppState,
    p: &Principal,
    channel_id: Option<String>,
    project_id: &str,
    has_secret: bool,
    mut input: ChannelInput,
    e: ApiError,
) -> PageResult {
    if e.status != StatusCode::BAD_REQUEST {
        return Err(e.into());
    }
    input.secret = None;
    render_form(
        state,
        p,
        e.status,
        channel_id,
        project_id,
        has_secret,
        &input,
        Some(e.message),
    )
    .await
}

async fn create(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = crate::console::forms::required_project(&f)?;
    let input = input_from_form(&f);
    match ops::create_channel(&state, &p, &project, input.clone()).await {
        Ok(_) => Ok(see_other("/notifications?done=created")),
        Err(e) => refused(&state, &p, None, &project, false, input, e).await,
    }
}

async fn edit_form(
    State(state): State<AppState>,
    Session(p): Session,
    Path(id): Path<String>,
) -> PageResult {
    let c = ops::get_channel(&state, &p, &id).await?;
    render_form(
        &state,
        &p,
        StatusCode::OK,
        Some(c.id.clone()),
        &c.project_id,
        c.has_secret,
        &input_of(&c),
        None,
    )
    .await
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let old = ops::get_channel(&state, &p, &id).await?;
    let mut input = input_from_form(&f);
    input.kind = old.kind.clone();
    match ops::update_channel(&state, &p, &id, input.clone()).await {
        Ok(_) => Ok(see_other("/notifications?done=saved")),
        Err(e) => {
            refused(
                &state,
                &p,
                Some(id),
                &old.project_id,
                old.has_secret,
                input,
                e,
            )
            .await
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, .. }: Post,
) -> PageResult {
    ops::delete_channel(&state, &p, &id).await?;
    Ok(see_other("/notifications?done=deleted"))
}

/// Sends a test and shows its outcome on the overview, the error included.
async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    let kind = if f.get("kind") == "summary" {
        "summary"
    } else {
        "alarm"
    };
    let d = ops::send_test(
        &state,
        &p,
        &id,
        TestBody {
            kind: Some(kind.into()),
        },
    )
    .await?;
    let flash = match d.state.as_str() {
        "sent" => Flash {
            class: "ok",
            text: format!("The test {kind} was sent through {}.", d.channel_name),
        },
        "pending" if d.attempts == 0 => Flash {
            class: "warn",
            text: format!(
                "The test {kind} is queued for {} and not sent yet; see the deliveries.",
                d.channel_name
            ),
        },
        _ => Flash {
            class: "error",
            text: format!(
                "The test {kind} through {} failed: {}. It is retried as any notification is; see the failing deliveries.",
                d.channel_name, d.last_error
            ),
        },
    };
    render_index(&state, &p, StatusCode::OK, Some(flash)).await
}

async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { p, f }: Post,
) -> PageResult {
    ops::retry(&state, &p, &id).await?;
    let back = if f.get("back") == "deliveries" {
        "/notifications/deliveries?done=retried"
    } else {
        "/notifications?done=retried"
    };
    Ok(see_other(back))
}
