//! Wire types shared by the Hostward agent and center.
//!
//! One WebSocket per agent carries JSON text frames, each an [`Envelope`]:
//! `{"v":1,"seq":7,"kind":"event","body":{...}}`. `kind` selects the body type through a
//! serde-tagged enum, so an unknown kind is a decode error the receiver answers with an
//! `error` frame instead of crashing. This crate does no I/O.
//!
//! Durability: records the agent must not lose (`event`, `task_update`, `inventory`, `risk`,
//! `alarm`, `block`, `login_ip`) carry a per-agent sequence number that only grows. The center writes a record and the agent's highest seq in
//! one transaction, then answers `ack` with that seq; the agent deletes records only up to an
//! ack. A record whose seq is not above the stored one is a duplicate and is dropped, which
//! makes redelivery after a reconnect exactly-once. `hello`, `heartbeat` and `bye` are
//! not durable and carry seq 0.

use serde::{Deserialize, Serialize};

pub mod alarm;
pub mod baseline;
pub mod behaviour;
pub mod bruteforce;
pub mod edition;
pub mod fim;
pub mod inventory;
pub mod malware;
pub mod paths;
pub mod quarantine;
pub mod ransom;
pub mod risk;
pub mod severity;
pub mod tamper;
pub use alarm::{Alarm, BlockChange};
pub use edition::{Edition, Feature};
pub use inventory::{Inventory, InventoryKind, InventoryPolicy};
pub use risk::{RiskPolicy, RiskReport};
pub use severity::Severity;

/// Version of the frame format. The center refuses a `hello` with another major version
/// (`version_unsupported`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes. Bigger frames close the session.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Path of the agent WebSocket on the gateway port.
pub const AGENT_WS_PATH: &str = "/agent/v1";

/// Largest tolerated difference between agent and center clocks, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    /// Sequence number of a durable record, 0 for control frames.
    #[serde(default)]
    pub seq: u64,
    #[serde(flatten)]
    pub msg: Message,
}

impl Envelope {
    pub fn control(msg: Message) -> Self {
        Envelope {
            v: PROTOCOL_VERSION,
            seq: 0,
            msg,
        }
    }

    pub fn record(seq: u64, msg: Message) -> Self {
        Envelope {
            v: PROTOCOL_VERSION,
            seq,
            msg,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("envelope serialises")
    }

    /// Decodes a frame. The error names what was wrong, for the `error` frame and the log.
    pub fn from_json(text: &str) -> Result<Envelope, DecodeError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge(text.len()));
        }
        let env: Envelope = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown variant") {
                DecodeError::UnknownKind(msg)
            } else {
                DecodeError::Malformed(msg)
            }
        })?;
        if env.v != PROTOCOL_VERSION {
            return Err(DecodeError::Version(env.v));
        }
        if let Message::Hello(h) = &env.msg {
            bounded("body.agent_version", &h.agent_version, 64)
                .and_then(|()| bounded("body.outbox_id", &h.outbox_id, 64))
                .and_then(|()| h.facts.validate("body.facts."))
                .map_err(DecodeError::Malformed)?;
        }
        Ok(env)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    TooLarge(usize),
    UnknownKind(String),
    Malformed(String),
    Version(u32),
}

impl DecodeError {
    /// Stable label, used as the `reason` of the rejected-frames metric and the error code.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLarge(_) => "oversized",
            DecodeError::UnknownKind(_) => "unknown_kind",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Version(_) => "version_unsupported",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"
                )
            }
            DecodeError::UnknownKind(m) => write!(f, "unknown frame kind: {m}"),
            DecodeError::Malformed(m) => write!(f, "malformed frame: {m}"),
            DecodeError::Version(v) => {
                write!(
                    f,
                    "protocol version {v} unsupported (center speaks {PROTOCOL_VERSION})"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Message {
    // agent -> center
    Hello(Hello),
    Heartbeat(Heartbeat),
    Event(Event),
    TaskUpdate(TaskUpdate),
    /// Host inventory: a full snapshot or a diff of one kind.
    Inventory(Inventory),
    /// Results of a risk scan (weak passwords, password policy).
    Risk(RiskReport),
    /// A detector's conclusion.
    Alarm(Alarm),
    /// An address blocked or unblocked on the host's firewall.
    Block(BlockChange),
    /// A usual login address the agent learned.
    LoginIp(bruteforce::LoginIp),
    /// A file isolated, restored or deleted by the agent's quarantine.
    IsolatedFile(quarantine::IsolatedFile),
    /// Changes of monitored files (file integrity monitoring).
    FileChanges(fim::FileChanges),
    /// Graceful shutdown: the center records `offline` / `agent_stopped`.
    Bye(Bye),
    // center -> agent
    Config(AgentConfig),
    Task(Task),
    Ack(Ack),
    Resume(Resume),
    // both ways
    Error(ErrorFrame),
}

impl Message {
    /// The message as its wire `kind` and `body`, apart: how the agent's outbox and the
    /// center's rejected records keep it (and rebuild it from the two).
    pub fn kind_and_body(&self) -> (String, serde_json::Value) {
        let mut v = serde_json::to_value(self).expect("messages serialise");
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let body = v
            .get_mut("body")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        (kind, body)
    }

    /// Whether this message is a durable record (carries a seq and awaits an ack).
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            Message::Event(_)
                | Message::TaskUpdate(_)
                | Message::Inventory(_)
                | Message::Risk(_)
                | Message::Alarm(_)
                | Message::Block(_)
                | Message::LoginIp(_)
                | Message::IsolatedFile(_)
                | Message::FileChanges(_)
        )
    }
}

/// Facts about the host, sent in `hello` and shown in the console.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    /// `ID` from os-release, e.g. `debian`.
    pub os_id: String,
    /// `VERSION_ID` from os-release, e.g. `12`.
    pub os_version: String,
    /// `PRETTY_NAME` from os-release.
    pub os_name: String,
    pub kernel: String,
    pub arch: String,
    /// Addresses of the host's interfaces, loopback excluded.
    pub ips: Vec<String>,
    /// Boot time, Unix seconds.
    pub boot_time: i64,
}

/// Most interface addresses a host reports; the agent sends no more than this.
pub const MAX_HOST_IPS: usize = 512;

fn bounded(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field}: longer than {max} bytes"));
    }
    Ok(())
}

impl HostFacts {
    /// Every field within the size the center stores and shows; the error names the field
    /// (under `prefix`). Addresses must be IP addresses.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        bounded(&format!("{prefix}hostname"), &self.hostname, 255)?;
        bounded(&format!("{prefix}os_id"), &self.os_id, 64)?;
        bounded(&format!("{prefix}os_version"), &self.os_version, 64)?;
        bounded(&format!("{prefix}os_name"), &self.os_name, 256)?;
        bounded(&format!("{prefix}kernel"), &self.kernel, 256)?;
        bounded(&format!("{prefix}arch"), &self.arch, 32)?;
        if self.ips.len() > MAX_HOST_IPS {
            return Err(format!("{prefix}ips: more than {MAX_HOST_IPS} addresses"));
        }
        for (i, ip) in self.ips.iter().enumerate() {
            if ip.len() > 64 || ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{prefix}ips[{i}]: not an IP address"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub agent_version: String,
    pub protocol: u32,
    /// Agent's clock, Unix seconds, for the skew check.
    pub now: i64,
    pub facts: HostFacts,
    /// Version of the last config the agent applied, 0 if none.
    #[serde(default)]
    pub config_version: i64,
    /// Highest seq the agent has ever assigned; lets the center spot a reset outbox.
    #[serde(default)]
    pub last_seq: u64,
    /// Random id of the agent's outbox, made when the outbox file is created. A different id
    /// than the one the center last stored from means a new outbox (lost, truncated, corrupt,
    /// reinstalled): the center answers with [`Resume`] so the agent numbers above what is
    /// stored. Empty from agents older than this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outbox_id: String,
}

/// The center's answer to a `hello` that carries an outbox id, sent before `config`: what it
/// has stored from this server. An agent whose outbox is `outbox_id` deletes its records up to
/// `last_seq` (an ack); any other outbox renumbers its records above `last_seq` first, so a new
/// outbox never reuses a seq the center already stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// Outbox the stored records came from; empty when the center never stored one with an id.
    pub outbox_id: String,
    /// Highest seq stored from this server.
    pub last_seq: u64,
}

/// Why the agent started a new outbox: the old file could not be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxReset {
    /// Unix seconds.
    pub at: i64,
    pub reason: String,
    /// Where the old file was moved, when it was kept for inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub now: i64,
    pub rss_bytes: u64,
    /// CPU used since the previous heartbeat, percent of one core.
    pub cpu_percent: f64,
    /// Records waiting in the outbox.
    pub outbox_depth: u64,
    /// Records dropped because the outbox was full or refused the write (disk full, I/O error).
    pub outbox_dropped: u64,
    /// The outbox's last failure (a write or a delete), while it keeps failing; None when the
    /// last operation worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_error: Option<String>,
    /// Set when the agent had to start a new outbox because the old one was unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_reset: Option<OutboxReset>,
    /// What the authentication log sources read since the agent started; None while the
    /// detectors do not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authlog: Option<AuthlogStats>,
    /// The runtime sensor's tier and counters; None from agents without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<behaviour::SensorReport>,
    /// The file integrity monitor's state; None from agents without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fim: Option<Box<fim::FimReport>>,
    /// Web tamper protection's state; None from agents without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper: Option<Box<tamper::TamperReport>>,
    /// Ransomware prevention's and the backups' state; None from agents without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ransom: Option<Box<ransom::RansomReport>>,
    /// Malware detection's state (scanner, rule set, real time, scans); None from agents
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malware: Option<Box<malware::MalwareReport>>,
    /// The SSH login whitelist's state (brute-force module); None from agents without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_whitelist: Option<bruteforce::SshWhitelistReport>,
}

/// Counters of the authentication log sources: `lines` = `events` + `ignored` + the
/// `skipped_*`. A growing `skipped_*` tells the operator that lines were unreadable (not UTF-8,
/// longer than the limit) or did not have the shape their service writes, which is where log
/// injection attempts end up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthlogStats {
    pub lines: u64,
    pub events: u64,
    /// Other programs' lines and lines of no interest.
    pub ignored: u64,
    pub skipped_non_utf8: u64,
    pub skipped_too_long: u64,
    pub skipped_unparsed: u64,
    pub skipped_no_address: u64,
}

impl AuthlogStats {
    pub fn skipped(&self) -> u64 {
        self.skipped_non_utf8
            + self.skipped_too_long
            + self.skipped_unparsed
            + self.skipped_no_address
    }
}

/// A security or lifecycle event from the agent. Detectors of later issues add event types;
/// the envelope stays the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds when the agent observed it.
    pub ts: i64,
    /// Stable code, e.g. `agent.started`, `custom`.
    pub event_type: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Delivered,
    Running,
    Done,
    Failed,
    Expired,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Delivered => "delivered",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "queued" => TaskState::Queued,
            "delivered" => TaskState::Delivered,
            "running" => TaskState::Running,
            "done" => TaskState::Done,
            "failed" => TaskState::Failed,
            "expired" => TaskState::Expired,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Expired
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdate {
    pub task_id: String,
    /// `running`, `done` or `failed`.
    pub state: TaskState,
    #[serde(default)]
    pub output: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bye {
    pub reason: String,
}

/// Configuration pushed by the center; the agent applies a version once.
///
/// Besides the fields every agent uses, it carries one section per capability, keyed by the
/// section's [`Section::KEY`] (`inventory`, `risk`, `bruteforce`, `login_ips`, …) and flattened
/// beside the fields on the wire, so a new capability adds its section without changing this
/// type, the runtime or the gateway. Each module reads its own with [`AgentConfig::section`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub version: i64,
    pub heartbeat_secs: u64,
    /// Protection switched off by a user: the agent stays connected but runs no detectors.
    pub protection_enabled: bool,
    /// Gateway URLs of the center's live replicas. The agent keeps the list and moves to
    /// another when the one it uses fails. Empty from a center older than this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    #[serde(flatten)]
    pub sections: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A capability's part of [`AgentConfig`]: its policy, or per-server settings.
pub trait Section: Serialize + serde::de::DeserializeOwned + Default {
    /// The section's name in the config frame and, for project policies, the `capability` of
    /// its row in the center's policies table.
    const KEY: &'static str;

    /// Turns off what `edition` does not include (see [`edition`]); the center calls it on
    /// every policy it sends. Sections with nothing edition-bound keep the default.
    fn gate(&mut self, _edition: Edition) {}
}

impl AgentConfig {
    /// A config with no capability sections (each module then runs on its defaults).
    pub fn new(version: i64, heartbeat_secs: u64, protection_enabled: bool) -> AgentConfig {
        AgentConfig {
            version,
            heartbeat_secs,
            protection_enabled,
            gateways: Vec::new(),
            sections: Default::default(),
        }
    }

    /// Adds or replaces the section of `T`.
    pub fn with<T: Section>(mut self, value: &T) -> AgentConfig {
        let v = serde_json::to_value(value).expect("config sections serialise");
        self.sections.insert(T::KEY.to_string(), v);
        self
    }

    /// The section of `T`: its default when the center sent none (a center older than the
    /// capability), an error naming the section and the field when it does not decode.
    pub fn section<T: Section>(&self) -> Result<T, String> {
        match self.sections.get(T::KEY) {
            None => Ok(T::default()),
            Some(v) => T::deserialize(v).map_err(|e| format!("config section {}: {e}", T::KEY)),
        }
    }
}

/// Work the center asks of an agent. `kind` names the handler; unknown kinds fail the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub params: serde_json::Value,
    /// Unix seconds after which the agent must not start it.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest seq the center has stored durably.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Stable code: `malformed`, `unknown_kind`, `oversized`, `version_unsupported`,
    /// `clock_skew`, `revoked`, `out_of_order`.
    pub code: String,
    pub message: String,
}

/// Body of `POST /api/v1/enroll` (center port 8443, server-authenticated TLS only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub token: String,
    /// PEM certificate signing request made from the agent's own key.
    pub csr_pem: String,
    pub facts: HostFacts,
    /// Random id of this install run, so install reports and the enrollment meet on one server.
    #[serde(default)]
    pub install_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub server_id: String,
    pub cert_pem: String,
    /// `wss://host:port/agent/v1` the agent should connect to.
    pub gateway_url: String,
    /// Every live replica's gateway URL (the agent fails over among them), `gateway_url`
    /// included. Empty from a center older than this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_urls: Vec<String>,
}

/// Body of `POST /api/v1/enroll/report`: progress and failures of an install, so the console can
/// show `installing` and `install_failed` with the cause before an agent ever connects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallReport {
    pub token: String,
    pub install_id: String,
    pub hostname: String,
    /// `installing` or `failed`.
    pub status: String,
    /// Stable cause code when failed: `not_root`, `unsupported_os`, `unsupported_arch`,
    /// `no_systemd`, `disk_full`, `ca_mismatch`, `download_failed`, `enroll_failed`.
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_kind_and_body() {
        let env = Envelope::record(
            7,
            Message::Event(Event {
                ts: 1,
                event_type: "custom".into(),
                data: serde_json::json!({"n": 1}),
            }),
        );
        let text = env.to_json();
        assert!(text.contains(r#""kind":"event""#), "{text}");
        assert!(text.contains(r#""seq":7"#), "{text}");
        assert_eq!(Envelope::from_json(&text).unwrap(), env);
    }

    #[test]
    fn unknown_kind_is_a_named_error() {
        let err = Envelope::from_json(r#"{"v":1,"seq":0,"kind":"launch_missiles","body":{}}"#)
            .unwrap_err();
        assert_eq!(err.code(), "unknown_kind");
        assert!(err.to_string().contains("launch_missiles"), "{err}");
    }

    #[test]
    fn malformed_and_wrong_types_are_rejected() {
        assert_eq!(
            Envelope::from_json("{not json").unwrap_err().code(),
            "malformed"
        );
        let wrong = r#"{"v":1,"seq":1,"kind":"ack","body":{"seq":"seven"}}"#;
        assert_eq!(Envelope::from_json(wrong).unwrap_err().code(), "malformed");
    }

    #[test]
    fn resume_round_trips_and_hello_names_its_outbox_only_when_it_has_one() {
        let r = Envelope::control(Message::Resume(Resume {
            outbox_id: "ab".into(),
            last_seq: 5000,
        }));
        assert_eq!(Envelope::from_json(&r.to_json()).unwrap(), r);
        // An agent older than outbox ids sends none; the center reads that as empty.
        let old = r#"{"v":1,"seq":0,"kind":"hello","body":{"agent_version":"0.1.0","protocol":1,"now":0,"facts":{"hostname":"h","os_id":"","os_version":"","os_name":"","kernel":"","arch":"","ips":[],"boot_time":0}}}"#;
        let Message::Hello(h) = Envelope::from_json(old).unwrap().msg else {
            panic!("hello")
        };
        assert_eq!(h.outbox_id, "");
        let long = old.replace(
            r#""protocol":1"#,
            &format!(r#""protocol":1,"outbox_id":"{}""#, "x".repeat(65)),
        );
        let err = Envelope::from_json(&long).unwrap_err();
        assert!(err.to_string().contains("body.outbox_id"), "{err}");
    }

    #[test]
    fn hello_fields_are_bounded_and_named() {
        let hello = |facts: HostFacts| {
            Envelope::control(Message::Hello(Hello {
                agent_version: "0.1.0".into(),
                protocol: PROTOCOL_VERSION,
                now: 0,
                facts,
                config_version: 0,
                last_seq: 0,
                outbox_id: "0f".repeat(16),
            }))
            .to_json()
        };
        let ok = HostFacts {
            hostname: "web-1".into(),
            ips: vec!["192.0.2.1".into(), "2001:db8::1".into()],
            ..Default::default()
        };
        assert!(Envelope::from_json(&hello(ok.clone())).is_ok());
        for (facts, field) in [
            (
                HostFacts {
                    hostname: "h".repeat(900_000),
                    ..ok.clone()
                },
                "body.facts.hostname",
            ),
            (
                HostFacts {
                    kernel: "k".repeat(257),
                    ..ok.clone()
                },
                "body.facts.kernel",
            ),
            (
                HostFacts {
                    ips: vec!["192.0.2.1".into(), "not an address".into()],
                    ..ok.clone()
                },
                "body.facts.ips[1]",
            ),
            (
                HostFacts {
                    ips: vec!["192.0.2.1".into(); MAX_HOST_IPS + 1],
                    ..ok.clone()
                },
                "body.facts.ips",
            ),
        ] {
            let err = Envelope::from_json(&hello(facts)).unwrap_err();
            assert_eq!(err.code(), "malformed");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn oversized_and_foreign_versions_are_rejected() {
        let big = "x".repeat(MAX_FRAME_BYTES + 1);
        assert_eq!(Envelope::from_json(&big).unwrap_err().code(), "oversized");
        let v2 = r#"{"v":2,"seq":0,"kind":"ack","body":{"seq":1}}"#;
        assert_eq!(
            Envelope::from_json(v2).unwrap_err().code(),
            "version_unsupported"
        );
    }

    #[test]
    fn records_are_exactly_events_and_task_updates() {
        assert!(
            Message::Event(Event {
                ts: 0,
                event_type: "x".into(),
                data: Default::default()
            })
            .is_record()
        );
        assert!(!Message::Ack(Ack { seq: 1 }).is_record());
    }

    #[test]
    fn login_ip_is_a_record_and_validates_its_fields() {
        let rec = bruteforce::LoginIp {
            ts: 1,
            addr: "::ffff:192.0.2.7".into(),
            user: "alice".into(),
            service: "ssh".into(),
        };
        let env = Envelope::record(3, Message::LoginIp(rec.clone()));
        let text = env.to_json();
        assert!(text.contains(r#""kind":"login_ip""#), "{text}");
        assert_eq!(Envelope::from_json(&text).unwrap(), env);
        assert!(env.msg.is_record());
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(rec.canonical_addr().as_deref(), Some("192.0.2.7"));
        for (bad, field) in [
            (
                bruteforce::LoginIp {
                    addr: "10.0.0.0/8".into(),
                    ..rec.clone()
                },
                "addr:",
            ),
            (
                bruteforce::LoginIp {
                    user: "u".repeat(257),
                    ..rec.clone()
                },
                "user:",
            ),
            (
                bruteforce::LoginIp {
                    service: "SSH; drop".into(),
                    ..rec.clone()
                },
                "service:",
            ),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn config_sections_keep_the_wire_format_and_name_a_bad_section() {
        let cfg = AgentConfig::new(7, 30, true)
            .with(&RiskPolicy::default())
            .with(&bruteforce::ServerLoginIps {
                usual: vec!["10.0.0.1".into()],
                learning: false,
            });
        let wire = serde_json::to_value(&cfg).unwrap();
        // The sections sit beside the common fields, as the typed fields did before.
        assert_eq!(wire["version"], 7);
        assert_eq!(wire["login_ips"]["usual"][0], "10.0.0.1");
        assert!(wire["risk"].is_object());
        let back: AgentConfig = serde_json::from_value(wire).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(
            back.section::<bruteforce::ServerLoginIps>().unwrap().usual,
            ["10.0.0.1"]
        );
        let bad: AgentConfig = serde_json::from_str(
            r#"{"version":1,"heartbeat_secs":30,"protection_enabled":true,"risk":{"window_start_min":"x"}}"#,
        )
        .unwrap();
        let e = bad.section::<RiskPolicy>().unwrap_err();
        assert!(e.starts_with("config section risk:"), "{e}");
    }

    #[test]
    fn a_config_without_login_ips_means_an_empty_list_that_learns() {
        let cfg: AgentConfig =
            serde_json::from_str(r#"{"version":1,"heartbeat_secs":30,"protection_enabled":true}"#)
                .unwrap();
        let login_ips: bruteforce::ServerLoginIps = cfg.section().unwrap();
        assert_eq!(login_ips.usual, Vec::<String>::new());
        assert!(login_ips.learning);
        let list = bruteforce::ServerLoginIps {
            usual: vec!["10.0.0.1".into(), "nope".into()],
            learning: false,
        };
        assert!(list.validate().unwrap_err().starts_with("usual[1]:"));
    }
}
