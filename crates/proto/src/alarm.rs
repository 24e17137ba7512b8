//! Alarms: what a detector on the agent concluded, and the firewall blocks it made. Both are
//! durable records. The center aggregates repeats of one alarm (same server, type and key) into
//! one row with a count, so an attack of 10,000 attempts is one alarm, not 10,000.

use serde::{Deserialize, Serialize};

use crate::Severity;

/// MITRE ATT&CK placement of an alarm type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mitre {
    pub tactic_id: &'static str,
    pub tactic: &'static str,
    pub technique_id: &'static str,
    pub technique: &'static str,
}

/// What every alarm type means: stable code, default severity, ATT&CK placement, a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmType {
    pub code: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub mitre: Mitre,
}

const CREDENTIAL_ACCESS: (&str, &str) = ("TA0006", "Credential Access");
const INITIAL_ACCESS: (&str, &str) = ("TA0001", "Initial Access");

const fn mitre(
    tactic: (&'static str, &'static str),
    id: &'static str,
    name: &'static str,
) -> Mitre {
    Mitre {
        tactic_id: tactic.0,
        tactic: tactic.1,
        technique_id: id,
        technique: name,
    }
}

/// Every alarm type a detector may raise. Later detectors add theirs here.
pub const ALARM_TYPES: &[AlarmType] = &[
    AlarmType {
        code: "brute_force",
        title: "Brute-force password guessing",
        severity: Severity::High,
        mitre: mitre(
            CREDENTIAL_ACCESS,
            "T1110.001",
            "Brute Force: Password Guessing",
        ),
    },
    AlarmType {
        code: "password_cracked",
        title: "Login after brute force: password cracked",
        severity: Severity::Critical,
        mitre: mitre(CREDENTIAL_ACCESS, "T1110", "Brute Force"),
    },
    AlarmType {
        code: "unusual_login_ip",
        title: "Login from an unusual address",
        severity: Severity::Medium,
        mitre: mitre(INITIAL_ACCESS, "T1078", "Valid Accounts"),
    },
    AlarmType {
        code: "unusual_login_time",
        title: "Login at an unusual hour",
        severity: Severity::Medium,
        mitre: mitre(INITIAL_ACCESS, "T1078", "Valid Accounts"),
    },
    AlarmType {
        code: "root_login",
        title: "Root login",
        severity: Severity::Low,
        mitre: mitre(
            INITIAL_ACCESS,
            "T1078.003",
            "Valid Accounts: Local Accounts",
        ),
    },
];

/// The catalog entry of a type code.
pub fn alarm_type(code: &str) -> Option<&'static AlarmType> {
    ALARM_TYPES.iter().find(|t| t.code == code)
}

/// An alarm as the agent raises it (`kind: "alarm"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Unix seconds when the agent concluded it.
    pub ts: i64,
    /// A code of [`ALARM_TYPES`]; the center refuses others.
    pub alarm_type: String,
    /// What makes repeats the same alarm, beside server and type: the source address for brute
    /// force, address and user for logins.
    pub key: String,
    /// How many occurrences this record stands for (failures in a brute-force window).
    #[serde(default = "one")]
    pub count: u32,
    pub evidence: Evidence,
}

fn one() -> u32 {
    1
}

/// What the alarm is based on. Every field is optional: each detector fills what it has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// User names involved (tried, or logged in), at most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// `ssh`, `ftp`, `mysql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Sample log lines, at most 5, each at most 512 bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Whether the detector blocked the source, and until when (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<i64>,
}

/// A change of the agent's firewall blocks (`kind: "block"`), so the center's list of blocked
/// addresses matches the hosts'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChange {
    pub ts: i64,
    pub addr: String,
    /// `blocked` or `unblocked` (by a person, or expired).
    pub action: String,
    /// `brute_force`, `manual`, or `whitelist` (lifted because a new whitelist covers it).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Unix seconds; set for `blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Task kinds: block or unblock an address now (params: [`BlockRequest`]).
pub const BLOCK_TASK: &str = "block_ip";
pub const UNBLOCK_TASK: &str = "unblock_ip";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub addr: String,
    /// Minutes, 1 to 43,200 (blocks only).
    #[serde(default)]
    pub minutes: Option<u32>,
}

impl Alarm {
    /// Checks what the center must not store blindly; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if alarm_type(&self.alarm_type).is_none() {
            return Err(format!("alarm_type: unknown type {:?}", self.alarm_type));
        }
        if self.key.len() > 256 {
            return Err("key: at most 256 bytes".into());
        }
        let e = &self.evidence;
        if e.users.len() > 10 || e.users.iter().any(|u| u.len() > 256) {
            return Err("evidence.users: at most 10, each at most 256 bytes".into());
        }
        if e.lines.len() > 5 || e.lines.iter().any(|l| l.len() > 512) {
            return Err("evidence.lines: at most 5, each at most 512 bytes".into());
        }
        if let Some(ip) = &e.source_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!("evidence.source_ip: {ip:?} is not an address"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_codes_are_unique_and_tagged() {
        let mut codes: Vec<&str> = ALARM_TYPES.iter().map(|t| t.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALARM_TYPES.len());
        for t in ALARM_TYPES {
            assert!(t.mitre.tactic_id.starts_with("TA") && t.mitre.technique_id.starts_with('T'));
        }
        assert_eq!(
            alarm_type("password_cracked").unwrap().severity,
            Severity::Critical
        );
    }

    #[test]
    fn alarms_with_unknown_types_or_oversized_evidence_are_refused() {
        let mut a = Alarm {
            ts: 1,
            alarm_type: "brute_force".into(),
            key: "192.0.2.1".into(),
            count: 5,
            evidence: Evidence {
                source_ip: Some("192.0.2.1".into()),
                ..Default::default()
            },
        };
        assert_eq!(a.validate(), Ok(()));
        a.evidence.lines = vec!["x".into(); 6];
        assert!(a.validate().unwrap_err().starts_with("evidence.lines"));
        a.evidence.lines.clear();
        a.evidence.source_ip = Some("from 10.9.9.9".into());
        assert!(a.validate().unwrap_err().starts_with("evidence.source_ip"));
        a.alarm_type = "launch".into();
        assert!(a.validate().unwrap_err().starts_with("alarm_type"));
        let parsed: Alarm =
            serde_json::from_str(r#"{"ts":1,"alarm_type":"root_login","key":"k","evidence":{}}"#)
                .unwrap();
        assert_eq!(parsed.count, 1);
    }
}
