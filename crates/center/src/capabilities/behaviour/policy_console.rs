//! The project's behaviour policy page (`/alarms/behaviour-policy`, a tab of the alarms area):
//! a switch per detector, automatic isolation, port-scan and honeypot settings, and the lists
//! the detectors use as text areas, one entry per line. Saved through the API operation, which
//! validates the whole policy (a malformed entry is refused naming its field and index, and the
//! form comes back as typed) and pushes it to the project's agents.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use hostward_proto::Severity;
use hostward_proto::alarm::alarm_type;
use hostward_proto::behaviour::{
    BehaviourPolicy, CommandPattern, DETECTORS, MAX_IOC, MAX_LIST, MAX_PATTERNS, WhitelistRule,
    shipped_commands,
};

use crate::AppState;
use crate::capabilities::behaviour::api::{self as ops};
use crate::console::forms::{
    Flash, lines, policy_project, project_choice, required_project, save_policy_form, truthy,
};
use crate::console::{
    Fields, Nav, Opt, PageResult, Post, Principal, Role, Session, html, html_status, project_names,
};
use crate::web::page::param;

const PAGE: &str = "/alarms/behaviour-policy";

fn flash(m: &HashMap<String, String>) -> Option<Flash> {
    match m.get("done").map(String::as_str)? {
        "saved" => Some(Flash {
            class: "ok",
            text: "Behaviour policy saved; the project's agents apply it at once.".into(),
        }),
        _ => None,
    }
}

/// What a detector switch is labelled with: its alarm type's title, or its family's name.
fn detector_label(d: &str) -> String {
    match d {
        "privilege_escalation" => {
            "Privilege escalation (processes raised to root, set-user-ID bits added)".into()
        }
        "persistence" => {
            "Persistence (cron, services, preloaded libraries, SSH keys, shell start-up files)"
                .into()
        }
        "kernel_module" => "Kernel module loads (rootkits)".into(),
        _ => alarm_type(d)
            .map(|t| t.title.to_string())
            .unwrap_or_else(|| d.replace('_', " ")),
    }
}

pub(crate) struct DetectorView {
    pub name: &'static str,
    pub label: String,
    pub on: bool,
}

/// The policy form's fields as text, so a refused form shows what was typed.
pub(crate) struct PolicyForm {
    pub detectors: Vec<DetectorView>,
    pub auto_isolate: bool,
    pub scan_ports: String,
    pub scan_window_secs: String,
    pub scan_block: bool,
    pub scan_block_minutes: String,
    /// Comma-separated.
    pub honeypot_ports: String,
    /// The lists below: one entry per line.
    pub suid_allowed: String,
    pub miner_names: String,
    pub miner_hashes: String,
    pub stratum_ports: String,
    pub ioc_addresses: String,
    pub process_whitelist: String,
    pub ptrace_allowed: String,
    pub module_allowed: String,
    /// `name | severity | pattern` per line.
    pub commands: String,
    /// `alarm_type | process_path | sha256 | command` per line, `-` for unset.
    pub whitelist: String,
}

/// The text areas' fields, in the order of the page.
const LIST_FIELDS: &[&str] = &[
    "suid_allowed",
    "miner_names",
    "miner_hashes",
    "stratum_ports",
    "ioc_addresses",
    "process_whitelist",
    "ptrace_allowed",
    "module_allowed",
];

fn join_ports(ports: &[u16], sep: &str) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Ports separated by commas, spaces or new lines; the message names the field and index.
fn parse_ports(field: &str, s: &str) -> Result<Vec<u16>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, p)| {
            p.parse::<u16>()
                .map_err(|_| format!("{field}[{i}]: {p:?} is not a port, 1 to 65535"))
        })
        .collect()
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn undash(s: &str) -> Option<String> {
    Some(s.trim())
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::to_string)
}

impl PolicyForm {
    fn of(p: &BehaviourPolicy) -> PolicyForm {
        PolicyForm {
            detectors: DETECTORS
                .iter()
                .map(|d| DetectorView {
                    name: d,
                    label: detector_label(d),
                    on: p.on(d),
                })
                .collect(),
            auto_isolate: p.auto_isolate,
            scan_ports: p.scan_ports.to_string(),
            scan_window_secs: p.scan_window_secs.to_string(),
            scan_block: p.scan_block,
            scan_block_minutes: p.scan_block_minutes.to_string(),
            honeypot_ports: join_ports(&p.honeypot_ports, ", "),
            suid_allowed: p.suid_allowed.join("\n"),
            miner_names: p.miner_names.join("\n"),
            miner_hashes: p.miner_hashes.join("\n"),
            stratum_ports: join_ports(&p.stratum_ports, "\n"),
            ioc_addresses: p.ioc_addresses.join("\n"),
            process_whitelist: p.process_whitelist.join("\n"),
            ptrace_allowed: p.ptrace_allowed.join("\n"),
            module_allowed: p.module_allowed.join("\n"),
            commands: p
                .commands
                .iter()
                .map(|c| format!("{} | {} | {}", c.name, c.severity.as_str(), c.pattern))
                .collect::<Vec<_>>()
                .join("\n"),
            whitelist: p
                .whitelist
                .iter()
                .map(|r| {
                    format!(
                        "{} | {} | {} | {}",
                        dash(&r.alarm_type),
                        dash(&r.process_path),
                        dash(&r.sha256),
                        dash(&r.command)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn from_fields(f: &Fields) -> PolicyForm {
        let text = |k: &str| f.get(k).to_string();
        PolicyForm {
            detectors: DETECTORS
                .iter()
                .map(|d| DetectorView {
                    name: d,
                    label: detector_label(d),
                    on: truthy(f, &format!("det_{d}")),
                })
                .collect(),
            auto_isolate: truthy(f, "auto_isolate"),
            scan_ports: text("scan_ports"),
            scan_window_secs: text("scan_window_secs"),
            scan_block: truthy(f, "scan_block"),
            scan_block_minutes: text("scan_block_minutes"),
            honeypot_ports: text("honeypot_ports"),
            suid_allowed: text(LIST_FIELDS[0]),
            miner_names: text(LIST_FIELDS[1]),
            miner_hashes: text(LIST_FIELDS[2]),
            stratum_ports: text(LIST_FIELDS[3]),
            ioc_addresses: text(LIST_FIELDS[4]),
            process_whitelist: text(LIST_FIELDS[5]),
            ptrace_allowed: text(LIST_FIELDS[6]),
            module_allowed: text(LIST_FIELDS[7]),
            commands: text("commands"),
            whitelist: text("whitelist"),
        }
    }

    /// Entries per text area, for the "N of at most M" hints.
    fn count(s: &str) -> usize {
        lines(s).len()
    }

    /// The command patterns of the text area. A pattern keeps the description of the known
    /// pattern of its name (the form has no room for descriptions).
    fn commands(&self, known: &[CommandPattern]) -> Result<Vec<CommandPattern>, String> {
        let mut out = Vec::new();
        for (i, line) in lines(&self.commands).iter().enumerate() {
            // The pattern may itself hold `|`: only the first two separate.
            let mut parts = line.splitn(3, '|').map(str::trim);
            let (Some(name), Some(sev), Some(pattern)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "commands[{i}]: write name | severity | pattern, not {line:?}"
                ));
            };
            let severity = Severity::parse(&sev.to_ascii_lowercase()).ok_or_else(|| {
                format!("commands[{i}].severity: {sev:?} is not critical, high, medium or low")
            })?;
            if pattern.is_empty() {
                return Err(format!(
                    "commands[{i}].pattern: empty (it would match every command)"
                ));
            }
            out.push(CommandPattern {
                name: name.to_string(),
                pattern: pattern.to_string(),
                severity,
                description: known
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.description.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn whitelist(&self) -> Result<Vec<WhitelistRule>, String> {
        lines(&self.whitelist)
            .iter()
            .enumerate()
            .map(|(i, line)| {
                // The command (a pattern) comes last and may hold `|`.
                let parts: Vec<&str> = line.splitn(4, '|').collect();
                let [t, path, sha, command] = parts[..] else {
                    return Err(format!(
                        "whitelist[{i}]: write alarm_type | process_path | sha256 | command (- for none), not {line:?}"
                    ));
                };
                Ok(WhitelistRule {
                    alarm_type: undash(t),
                    process_path: undash(path),
                    sha256: undash(sha).map(|h| h.to_ascii_lowercase()),
                    command: undash(command),
                })
            })
            .collect()
    }

    /// The policy the form describes; the message names the field (and index). The API
    /// validates the rest.
    fn policy(&self, known: &[CommandPattern]) -> Result<BehaviourPolicy, String> {
        let num = |field: &str, s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{field}: a whole number"))
        };
        Ok(BehaviourPolicy {
            disabled: self
                .detectors
                .iter()
                .filter(|d| !d.on)
                .map(|d| d.name.to_string())
                .collect(),
            auto_isolate: self.auto_isolate,
            commands: self.commands(known)?,
            suid_allowed: lines(&self.suid_allowed),
            miner_names: lines(&self.miner_names),
            miner_hashes: lines(&self.miner_hashes)
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            stratum_ports: parse_ports("stratum_ports", &self.stratum_ports)?,
            ioc_addresses: lines(&self.ioc_addresses),
            process_whitelist: lines(&self.process_whitelist),
            ptrace_allowed: lines(&self.ptrace_allowed),
            module_allowed: lines(&self.module_allowed),
            whitelist: self.whitelist()?,
            scan_ports: num("scan_ports", &self.scan_ports)?,
            scan_window_secs: num("scan_window_secs", &self.scan_window_secs)?,
            scan_block: self.scan_block,
            scan_block_minutes: num("scan_block_minutes", &self.scan_block_minutes)?,
            honeypot_ports: parse_ports("honeypot_ports", &self.honeypot_ports)?,
        })
    }
}

/// A text area of the form with its entry count and bound.
pub(crate) struct ListArea<'a> {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: &'a str,
    pub count: usize,
    pub max: usize,
}

#[derive(Template)]
#[template(path = "behaviour/policy.html")]
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
    pub lists: Vec<ListArea<'a>>,
    pub command_count: usize,
    pub whitelist_count: usize,
    pub max_patterns: usize,
    pub max_list: usize,
}

fn list_areas(form: &PolicyForm) -> Vec<ListArea<'_>> {
    vec![
        ListArea {
            name: LIST_FIELDS[0],
            label: "Set-user-ID programs allowed to raise a process to root",
            hint: "absolute paths",
            value: &form.suid_allowed,
            count: PolicyForm::count(&form.suid_allowed),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[1],
            label: "Miner program names",
            hint: "executable file names",
            value: &form.miner_names,
            count: PolicyForm::count(&form.miner_names),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[2],
            label: "Miner SHA-256 hashes",
            hint: "64 hex digits",
            value: &form.miner_hashes,
            count: PolicyForm::count(&form.miner_hashes),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[3],
            label: "Mining pool (stratum) ports",
            hint: "1 to 65535",
            value: &form.stratum_ports,
            count: PolicyForm::count(&form.stratum_ports),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[4],
            label: "Malicious addresses (indicators of compromise)",
            hint: "addresses or prefixes; a connection to one alarms",
            value: &form.ioc_addresses,
            count: PolicyForm::count(&form.ioc_addresses),
            max: MAX_IOC,
        },
        ListArea {
            name: LIST_FIELDS[5],
            label: "Process whitelist",
            hint: "executable paths never alarmed on",
            value: &form.process_whitelist,
            count: PolicyForm::count(&form.process_whitelist),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[6],
            label: "Tracers allowed to attach to processes they did not start",
            hint: "absolute paths of debuggers people use here",
            value: &form.ptrace_allowed,
            count: PolicyForm::count(&form.ptrace_allowed),
            max: MAX_LIST,
        },
        ListArea {
            name: LIST_FIELDS[7],
            label: "Kernel modules expected to be loaded",
            hint: "module names without .ko",
            value: &form.module_allowed,
            count: PolicyForm::count(&form.module_allowed),
            max: MAX_LIST,
        },
    ]
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
    let body = ops::behaviour_policy(state, p, project_id).await?;
    let (project_name, project_opts) = project_choice(project_names(state, p).await?, project_id);
    let form = form.unwrap_or_else(|| PolicyForm::of(&body.policy));
    html_status(
        status,
        &PolicyPage {
            nav: Nav::new(p, "alarms"),
            section: "behaviour-policy",
            flash,
            error,
            project_opts,
            project_id: project_id.to_string(),
            project_name,
            version: body.version,
            can_edit: p.require(project_id, Role::Admin).is_ok(),
            lists: list_areas(&form),
            command_count: PolicyForm::count(&form.commands),
            whitelist_count: PolicyForm::count(&form.whitelist),
            max_patterns: MAX_PATTERNS,
            max_list: MAX_LIST,
            form: &form,
        },
    )
}

#[derive(Template)]
#[template(path = "behaviour/no_project.html")]
struct NoProjectPage {
    nav: Nav,
    section: &'static str,
}

/// `GET /alarms/behaviour-policy?project=` (default: the first project by name).
pub async fn policy(
    State(state): State<AppState>,
    Session(p): Session,
    Query(m): Query<HashMap<String, String>>,
) -> PageResult {
    let Some(project) = policy_project(&state, &p, param(&m, "project")).await? else {
        return html(&NoProjectPage {
            nav: Nav::new(&p, "alarms"),
            section: "behaviour-policy",
        });
    };
    render_policy(&state, &p, &project, None, StatusCode::OK, flash(&m), None).await
}

/// `POST /alarms/behaviour-policy`: replaces the project's behaviour policy (admins).
pub async fn save_policy(State(state): State<AppState>, Post { p, f }: Post) -> PageResult {
    let project = required_project(&f)?;
    // Descriptions of the patterns the form keeps by name: the project's, then the shipped.
    let mut known = ops::behaviour_policy(&state, &p, &project)
        .await?
        .policy
        .commands;
    known.extend(shipped_commands());
    save_policy_form(
        &p,
        &project,
        PAGE,
        PolicyForm::from_fields(&f),
        |form| form.policy(&known),
        |policy| ops::set_behaviour_policy(&state, &p, &project, policy),
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

/// The behaviour policy page.
pub fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(policy).post(save_policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_the_default_policy_and_a_custom_one() {
        let p = BehaviourPolicy::default();
        let known = p.commands.clone();
        assert_eq!(PolicyForm::of(&p).policy(&known), Ok(p));
        let p = BehaviourPolicy {
            disabled: ["port_scan".to_string(), "honeypot".to_string()].into(),
            auto_isolate: true,
            commands: vec![CommandPattern {
                name: "pipe".into(),
                // A pattern with `|` and ` | ` in it.
                pattern: "(curl|wget) .* | ?sh".into(),
                severity: Severity::Critical,
                description: String::new(),
            }],
            miner_hashes: vec!["ab".repeat(32)],
            stratum_ports: vec![3333, 14444],
            honeypot_ports: vec![23, 6379],
            whitelist: vec![
                WhitelistRule {
                    alarm_type: Some("high_risk_command".into()),
                    command: Some("^backup( |$)|rsync".into()),
                    ..Default::default()
                },
                WhitelistRule {
                    sha256: Some("cd".repeat(32)),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let form = PolicyForm::of(&p);
        assert!(
            form.commands
                .contains("pipe | critical | (curl|wget) .* | ?sh")
        );
        assert!(
            form.whitelist
                .contains("high_risk_command | - | - | ^backup( |$)|rsync")
        );
        assert_eq!(form.honeypot_ports, "23, 6379");
        assert_eq!(form.policy(&[]), Ok(p));
    }

    #[test]
    fn malformed_entries_name_their_field_and_index() {
        let mut form = PolicyForm::of(&BehaviourPolicy::default());
        form.commands = "a | high | x\n\nb | severe | y".into();
        let e = form.policy(&[]).unwrap_err();
        assert!(e.starts_with("commands[1].severity:"), "{e}");
        form.commands = "a | high".into();
        assert!(form.policy(&[]).unwrap_err().starts_with("commands[0]:"));
        form.commands = "a | high | ".into();
        assert!(
            form.policy(&[])
                .unwrap_err()
                .starts_with("commands[0].pattern:")
        );
        form.commands.clear();
        form.whitelist = "reverse_shell | /bin/x".into();
        assert!(form.policy(&[]).unwrap_err().starts_with("whitelist[0]:"));
        form.whitelist.clear();
        form.honeypot_ports = "23, telnet".into();
        assert!(
            form.policy(&[])
                .unwrap_err()
                .starts_with("honeypot_ports[1]:")
        );
        form.honeypot_ports.clear();
        form.stratum_ports = "3333\n99999".into();
        assert!(
            form.policy(&[])
                .unwrap_err()
                .starts_with("stratum_ports[1]:")
        );
        form.stratum_ports.clear();
        form.scan_ports = "many".into();
        assert!(form.policy(&[]).unwrap_err().starts_with("scan_ports:"));
    }

    #[test]
    fn kept_patterns_keep_their_descriptions() {
        let known = shipped_commands();
        let mut form = PolicyForm::of(&BehaviourPolicy::default());
        form.commands = format!("{} | low | ^x", known[0].name);
        let p = form.policy(&known).unwrap();
        assert_eq!(p.commands[0].description, known[0].description);
        assert_eq!(p.commands[0].severity, Severity::Low);
    }
}
