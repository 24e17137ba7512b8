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

/// What every alarm type means: stable code, default severity, ATT&CK placement, a title, the
/// reference product's category and event-type code (Huawei Cloud HSS `event_type`, where it
/// has one), and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmType {
    pub code: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub mitre: Mitre,
    pub category: &'static str,
    pub hss_code: Option<u32>,
    pub recommendation: &'static str,
}

const CREDENTIAL_ACCESS: (&str, &str) = ("TA0006", "Credential Access");
const INITIAL_ACCESS: (&str, &str) = ("TA0001", "Initial Access");
const EXECUTION: (&str, &str) = ("TA0002", "Execution");
const PERSISTENCE: (&str, &str) = ("TA0003", "Persistence");
const PRIVILEGE_ESCALATION: (&str, &str) = ("TA0004", "Privilege Escalation");
const DEFENSE_EVASION: (&str, &str) = ("TA0005", "Defense Evasion");
const DISCOVERY: (&str, &str) = ("TA0007", "Discovery");
const COMMAND_AND_CONTROL: (&str, &str) = ("TA0011", "Command and Control");
const IMPACT: (&str, &str) = ("TA0040", "Impact");
const RECONNAISSANCE: (&str, &str) = ("TA0043", "Reconnaissance");

const USER: &str = "Abnormal user behaviour";
const SYSTEM: &str = "Abnormal system behaviour";
const NETWORK: &str = "Abnormal network";

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
        category: USER,
        hss_code: Some(4002),
        recommendation: "Check that the source is blocked; use keys instead of passwords, or allow SSH only from known addresses.",
    },
    AlarmType {
        code: "password_cracked",
        title: "Login after brute force: password cracked",
        severity: Severity::Critical,
        mitre: mitre(CREDENTIAL_ACCESS, "T1110", "Brute Force"),
        category: USER,
        hss_code: Some(4004),
        recommendation: "Treat the account as compromised: change its password, end its sessions, and look for what was done after the login.",
    },
    AlarmType {
        code: "unusual_login_ip",
        title: "Login from an unusual address",
        severity: Severity::Medium,
        mitre: mitre(INITIAL_ACCESS, "T1078", "Valid Accounts"),
        category: USER,
        hss_code: Some(4004),
        recommendation: "Confirm the login with the account's owner; if nobody made it, change the password and end the session.",
    },
    AlarmType {
        code: "unusual_login_time",
        title: "Login at an unusual hour",
        severity: Severity::Medium,
        mitre: mitre(INITIAL_ACCESS, "T1078", "Valid Accounts"),
        category: USER,
        hss_code: Some(4004),
        recommendation: "Confirm the login with the account's owner; if nobody made it, change the password and end the session.",
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
        category: USER,
        hss_code: Some(4004),
        recommendation: "Log in as a named user and use sudo; set PermitRootLogin no.",
    },
    AlarmType {
        code: "reverse_shell",
        title: "Reverse shell",
        severity: Severity::Critical,
        mitre: mitre(
            EXECUTION,
            "T1059.004",
            "Command and Scripting Interpreter: Unix Shell",
        ),
        category: SYSTEM,
        hss_code: Some(1017),
        recommendation: "Isolate and kill the process tree, block the peer address, and find how the shell was started (the parent process, a web server, a cron entry).",
    },
    AlarmType {
        code: "abnormal_shell",
        title: "Shell binary copied, moved or changed",
        severity: Severity::Medium,
        mitre: mitre(
            DEFENSE_EVASION,
            "T1036.003",
            "Masquerading: Rename System Utilities",
        ),
        category: SYSTEM,
        hss_code: Some(3018),
        recommendation: "Check who changed the shell binary and why; remove copies outside the system paths and restore the original's mode and links.",
    },
    AlarmType {
        code: "high_risk_command",
        title: "High-risk command",
        severity: Severity::High,
        mitre: mitre(
            EXECUTION,
            "T1059.004",
            "Command and Scripting Interpreter: Unix Shell",
        ),
        category: SYSTEM,
        hss_code: Some(3015),
        recommendation: "Confirm the command with whoever ran it (the process chain shows the session); if nobody did, treat the account as compromised.",
    },
    AlarmType {
        code: "process_privilege_escalation",
        title: "Process privilege escalation",
        severity: Severity::Critical,
        mitre: mitre(
            PRIVILEGE_ESCALATION,
            "T1548.001",
            "Abuse Elevation Control Mechanism: Setuid and Setgid",
        ),
        category: SYSTEM,
        hss_code: Some(3003),
        recommendation: "Kill the process, remove the set-user-ID bit from the program (or patch the kernel if no program was run), and look for what the root process did.",
    },
    AlarmType {
        code: "file_privilege_escalation",
        title: "File privilege escalation (set-user-ID, set-group-ID or capabilities added)",
        severity: Severity::High,
        mitre: mitre(
            PRIVILEGE_ESCALATION,
            "T1548.001",
            "Abuse Elevation Control Mechanism: Setuid and Setgid",
        ),
        category: SYSTEM,
        hss_code: Some(3002),
        recommendation: "Remove the bit or capability (chmod u-s, setcap -r) unless a package installed it, and check who set it.",
    },
    AlarmType {
        code: "persistence_cron",
        title: "Suspicious scheduled task",
        severity: Severity::High,
        mitre: mitre(PERSISTENCE, "T1053.003", "Scheduled Task/Job: Cron"),
        category: SYSTEM,
        hss_code: Some(3027),
        recommendation: "Read the new cron entry; remove it if nobody added it on purpose, and check what it ran.",
    },
    AlarmType {
        code: "persistence_service",
        title: "Suspicious auto-start service",
        severity: Severity::Medium,
        mitre: mitre(
            PERSISTENCE,
            "T1543.002",
            "Create or Modify System Process: Systemd Service",
        ),
        category: SYSTEM,
        hss_code: Some(3027),
        recommendation: "Check the unit or init script and the program it starts; disable and remove it if it is not yours.",
    },
    AlarmType {
        code: "persistence_preload",
        title: "Preloaded library configured (ld.so.preload)",
        severity: Severity::Critical,
        mitre: mitre(
            PERSISTENCE,
            "T1574.006",
            "Hijack Execution Flow: Dynamic Linker Hijacking",
        ),
        category: SYSTEM,
        hss_code: Some(3027),
        recommendation: "Empty /etc/ld.so.preload unless you put the library there, isolate the library, and check running processes for it (it hides rootkits).",
    },
    AlarmType {
        code: "persistence_ssh_key",
        title: "SSH authorized keys changed",
        severity: Severity::High,
        mitre: mitre(
            PERSISTENCE,
            "T1098.004",
            "Account Manipulation: SSH Authorized Keys",
        ),
        category: SYSTEM,
        hss_code: Some(3027),
        recommendation: "Check every key in the file against its owner's; remove unknown ones.",
    },
    AlarmType {
        code: "persistence_shell_profile",
        title: "Shell start-up file changed",
        severity: Severity::Medium,
        mitre: mitre(
            PERSISTENCE,
            "T1546.004",
            "Event Triggered Execution: Unix Shell Configuration Modification",
        ),
        category: SYSTEM,
        hss_code: Some(3027),
        recommendation: "Read the change to the profile or rc file; revert it if nobody made it on purpose.",
    },
    AlarmType {
        code: "invalid_account",
        title: "Invalid account (hidden, cloned root, or non-root in a root group)",
        severity: Severity::Critical,
        mitre: mitre(PERSISTENCE, "T1136.001", "Create Account: Local Account"),
        category: USER,
        hss_code: Some(4006),
        recommendation: "Lock or remove the account unless it is known, and look for how it was created (the process chain).",
    },
    AlarmType {
        code: "fileless_execution",
        title: "Fileless execution (memfd or deleted file)",
        severity: Severity::Critical,
        mitre: mitre(DEFENSE_EVASION, "T1620", "Reflective Code Loading"),
        category: "Fileless attack",
        hss_code: None,
        recommendation: "Kill the process tree and look at its parent: in-memory programs are how droppers hide their payload.",
    },
    AlarmType {
        code: "crypto_miner",
        title: "Cryptocurrency miner",
        severity: Severity::High,
        mitre: mitre(IMPACT, "T1496", "Resource Hijacking"),
        category: "Malware",
        hss_code: Some(1001),
        recommendation: "Isolate and kill the miner, remove how it persists (cron, services), and find how it got in.",
    },
    AlarmType {
        code: "abnormal_outbound",
        title: "Connection to a malicious address",
        severity: Severity::High,
        mitre: mitre(COMMAND_AND_CONTROL, "T1071", "Application Layer Protocol"),
        category: NETWORK,
        hss_code: Some(3007),
        recommendation: "Find what the process sends there; kill it and block the address if it is not expected.",
    },
    AlarmType {
        code: "port_scan",
        title: "Port scan",
        severity: Severity::Low,
        mitre: mitre(
            RECONNAISSANCE,
            "T1595.001",
            "Active Scanning: Scanning IP Blocks",
        ),
        category: "Reconnaissance",
        hss_code: None,
        recommendation: "The source is blocked per policy; close ports that need not be open.",
    },
    AlarmType {
        code: "honeypot",
        title: "Connection to a decoy port",
        severity: Severity::Medium,
        mitre: mitre(DISCOVERY, "T1046", "Network Service Discovery"),
        category: NETWORK,
        hss_code: None,
        recommendation: "Nothing legitimate uses a decoy port: the source is probing the host and is blocked per policy.",
    },
    AlarmType {
        code: "process_injection",
        title: "Process injection (ptrace attach)",
        severity: Severity::High,
        mitre: mitre(
            PRIVILEGE_ESCALATION,
            "T1055.008",
            "Process Injection: Ptrace System Calls",
        ),
        category: "Fileless attack",
        hss_code: None,
        recommendation: "A program attached to a process it did not start: code can be injected into it, or its memory (keys, passwords) read. Unless a person was debugging, kill the tracer and check the traced process.",
    },
    AlarmType {
        code: "kernel_module_load",
        title: "Kernel module load",
        severity: Severity::High,
        mitre: mitre(
            PERSISTENCE,
            "T1547.006",
            "Boot or Logon Autostart Execution: Kernel Modules and Extensions",
        ),
        category: "Rootkits",
        hss_code: Some(1010),
        recommendation: "Rootkits load as kernel modules. If nobody installed this module, treat the host as compromised: the kernel can no longer be trusted to report on itself.",
    },
    AlarmType {
        code: "important_file_change",
        title: "Important file changed",
        severity: Severity::High,
        mitre: mitre(PERSISTENCE, "T1554", "Compromise Host Software Binary"),
        category: SYSTEM,
        hss_code: Some(3004),
        recommendation: "A system binary, account, sudo, PAM, sshd or loader file changed. Unless a package update or a planned change did it (the process is in the evidence), compare the new hash with the package's (dpkg --verify, rpm -V) and restore the file from the package.",
    },
    AlarmType {
        code: "web_tamper",
        title: "Web page tampering refused",
        severity: Severity::High,
        mitre: mitre(IMPACT, "T1491.001", "Defacement: Internal Defacement"),
        category: "Web tamper protection",
        hss_code: None,
        recommendation: "A process that is not privileged tried to change a protected web directory; the change was refused or undone from the backup. Find how the process got there (a web shell, a stolen deploy key) and remove it; if it was a planned deploy, run it from a privileged process or inside an unlock window.",
    },
    AlarmType {
        code: "ransomware",
        title: "Ransomware",
        severity: Severity::Critical,
        mitre: mitre(IMPACT, "T1486", "Data Encrypted for Impact"),
        category: "Ransomware",
        hss_code: None,
        recommendation: "A process touched a bait file or rewrote many files into encrypted-looking content. Unless it was a planned job (then trust its program in the policy), treat the host as compromised: keep it isolated, find how the program got there, and put the files back from the newest backup taken before the alarm (the server's Ransomware tab, or the backup_restore task).",
    },
    AlarmType {
        code: "malware",
        title: "Malicious program",
        severity: Severity::Critical,
        mitre: mitre(EXECUTION, "T1204.002", "User Execution: Malicious File"),
        category: "Malware",
        hss_code: Some(1001),
        recommendation: "The scanner matched a malware rule or a known-bad hash (family, rule and SHA-256 in the evidence). Isolate the file if the policy did not, kill the processes running it, find how it got there (the owner, the writer, the web or login logs of that time) and remove its persistence. If it is a tool you run on purpose, whitelist it by hash.",
    },
    AlarmType {
        code: "webshell",
        title: "Web shell",
        severity: Severity::Critical,
        mitre: mitre(
            PERSISTENCE,
            "T1505.003",
            "Server Software Component: Web Shell",
        ),
        category: "Web shell",
        hss_code: Some(1015),
        recommendation: "A file in a web directory runs what a request tells it to. Isolate it if the policy did not, check the web server's access log for requests to it (the attacker's address), look for other files written at that time, and fix the upload or vulnerability that let it in.",
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
    /// The process that did it first, then its ancestors up to the session leader (or init),
    /// at most [`MAX_CHAIN`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessInfo>,
    /// The file involved: a persistence file written, a shell copied, an executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The remote end of a connection, `addr:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The rule that matched (a high-risk command pattern's name, an indicator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Facts the detector concluded from, at most 10, each at most 512 bytes
    /// (`stdin is tcp 10.0.0.5:4444`, `euid 1000 -> 0 without exec`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// SHA-256 of the file involved (a malicious file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The malware family a rule names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The file's owner, `user (uid)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the agent did on its own (isolate and kill per policy) and how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

pub const MAX_CHAIN: usize = 16;

/// One process of an alarm's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Executable path; empty when the agent never saw it start (older than the agent).
    pub exe: String,
    /// Arguments, space-separated, at most 1,024 bytes.
    pub cmdline: String,
    pub uid: u32,
    pub euid: u32,
    /// The user name of `uid`, when the host knows it.
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
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
        if e.processes.len() > MAX_CHAIN {
            return Err(format!("evidence.processes: at most {MAX_CHAIN}"));
        }
        for (i, p) in e.processes.iter().enumerate() {
            if p.exe.len() > 4096 || p.cmdline.len() > 1024 || p.user.len() > 256 {
                return Err(format!(
                    "evidence.processes[{i}]: exe at most 4,096 bytes, cmdline 1,024, user 256"
                ));
            }
            if p.cwd.as_ref().is_some_and(|c| c.len() > 4096)
                || p.tty.as_ref().is_some_and(|t| t.len() > 64)
                || p.sha256.as_ref().is_some_and(|h| h.len() != 64)
            {
                return Err(format!(
                    "evidence.processes[{i}]: cwd at most 4,096 bytes, tty 64, sha256 64 hex digits"
                ));
            }
        }
        for (name, v) in [
            ("file", &e.file),
            ("peer", &e.peer),
            ("rule", &e.rule),
            ("response", &e.response),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > 4096) {
                return Err(format!("evidence.{name}: at most 4,096 bytes"));
            }
        }
        if e.details.len() > 10 || e.details.iter().any(|d| d.len() > 512) {
            return Err("evidence.details: at most 10, each at most 512 bytes".into());
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
