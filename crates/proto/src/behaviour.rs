//! Runtime behaviour detection: the project policy (`behaviour` config section) that switches
//! each detector and carries its lists, and the sensor figures each heartbeat reports.
//!
//! The center validates a policy before storing it and the agent again before using it, so a
//! malformed pattern is refused with its field and index and never half-applied.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bruteforce::check_nets;

/// Bounds of the lists: beyond them a policy is a mistake, and the agent matches each exec
/// against the patterns.
pub const MAX_PATTERNS: usize = 200;
pub const MAX_PATTERN_BYTES: usize = 1_024;
pub const MAX_LIST: usize = 1_000;
pub const MAX_IOC: usize = 10_000;

/// The shipped high-risk command patterns (`content/high_risk_commands.json`): each policy
/// starts with them, and people edit, remove and add.
const SHIPPED_COMMANDS: &str = include_str!("../../../content/high_risk_commands.json");

/// Detectors a policy switches. Names are the alarm types they raise (or their family).
pub const DETECTORS: &[&str] = &[
    "reverse_shell",
    "abnormal_shell",
    "high_risk_command",
    "privilege_escalation",
    "persistence",
    "invalid_account",
    "fileless_execution",
    "crypto_miner",
    "abnormal_outbound",
    "port_scan",
    "honeypot",
    "process_injection",
    "kernel_module",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourPolicy {
    /// Detectors turned off, by name from [`DETECTORS`]. Everything else runs.
    pub disabled: BTreeSet<String>,
    /// Kill the process tree and isolate its executable on a reverse shell, a miner or a
    /// fileless execution, without waiting for a person. Off by default: a false alarm would
    /// kill a real workload.
    pub auto_isolate: bool,
    /// High-risk commands: a regular expression matched against the command line (the
    /// executable's file name, then the arguments, space-separated).
    pub commands: Vec<CommandPattern>,
    /// Set-user-ID and set-group-ID programs allowed to raise a process to root, by path.
    pub suid_allowed: Vec<String>,
    /// Tracers allowed to attach to processes they did not start, by executable path (a
    /// debugger people use on production). Empty by default: `strace -p` on sshd reads
    /// passwords as they are typed.
    pub ptrace_allowed: Vec<String>,
    /// Kernel modules whose loading is expected, by file name without `.ko` (loads the kernel
    /// itself requests through modprobe are never alarms).
    pub module_allowed: Vec<String>,
    /// Executable file names of known miners.
    pub miner_names: Vec<String>,
    /// SHA-256 of known miner binaries.
    pub miner_hashes: Vec<String>,
    /// Ports of mining pools (stratum).
    pub stratum_ports: Vec<u16>,
    /// Addresses or prefixes connections to which alarm (indicators of compromise).
    pub ioc_addresses: Vec<String>,
    /// Processes never alarmed on, by executable path (the reference product's process
    /// whitelist).
    pub process_whitelist: Vec<String>,
    /// Alarms dropped on the agent when every field a rule sets matches.
    pub whitelist: Vec<WhitelistRule>,
    /// Port scans: this many distinct destination ports from one source within `window_secs`.
    pub scan_ports: u32,
    pub scan_window_secs: u32,
    /// Block a scanning source (or a honeypot visitor) on the host firewall, for this long.
    pub scan_block: bool,
    pub scan_block_minutes: u32,
    /// Decoy listeners: unused well-known ports on which any connection is an alarm (and a
    /// block, with `scan_block`). Empty: no honeypot. Only ports nothing else listens on are
    /// opened.
    pub honeypot_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPattern {
    /// Short and stable: the alarm's key and what people whitelist.
    pub name: String,
    pub pattern: String,
    #[serde(default = "high")]
    pub severity: crate::Severity,
    #[serde(default)]
    pub description: String,
}

fn high() -> crate::Severity {
    crate::Severity::High
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhitelistRule {
    /// An alarm type code; None: every type.
    pub alarm_type: Option<String>,
    /// The process's executable path, exactly.
    pub process_path: Option<String>,
    /// The executable's SHA-256.
    pub sha256: Option<String>,
    /// A regular expression matched against the command line.
    pub command: Option<String>,
}

impl crate::Section for BehaviourPolicy {
    const KEY: &'static str = "behaviour";

    fn gate(&mut self, edition: crate::Edition) {
        use crate::Feature;
        const SCANS: [&str; 2] = ["port_scan", "honeypot"];
        for d in DETECTORS {
            let feature = if SCANS.contains(d) {
                Feature::PortScan
            } else {
                Feature::IntrusionDetection
            };
            if !edition.has(feature) {
                self.disabled.insert((*d).to_string());
            }
        }
        if !edition.has(Feature::PortScan) {
            self.honeypot_ports.clear();
        }
        if !edition.has(Feature::Blocking) {
            self.auto_isolate = false;
            self.scan_block = false;
        }
    }
}

/// The shipped command patterns.
pub fn shipped_commands() -> Vec<CommandPattern> {
    serde_json::from_str(SHIPPED_COMMANDS).expect("content/high_risk_commands.json is valid")
}

impl Default for BehaviourPolicy {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        BehaviourPolicy {
            // Decoy listeners open ports, which the agent otherwise never does: a person turns
            // them on.
            disabled: ["honeypot".to_string()].into(),
            auto_isolate: false,
            commands: shipped_commands(),
            suid_allowed: s(&[
                "/usr/bin/sudo",
                "/usr/bin/su",
                "/bin/su",
                "/usr/bin/passwd",
                "/usr/bin/chsh",
                "/usr/bin/chfn",
                "/usr/bin/newgrp",
                "/usr/bin/gpasswd",
                "/usr/bin/mount",
                "/usr/bin/umount",
                "/bin/mount",
                "/bin/umount",
                "/usr/bin/pkexec",
                "/usr/bin/fusermount",
                "/usr/bin/fusermount3",
                "/usr/bin/crontab",
                "/usr/bin/at",
                "/usr/bin/ping",
                "/usr/lib/openssh/ssh-keysign",
                "/usr/libexec/openssh/ssh-keysign",
                "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
                "/usr/sbin/unix_chkpwd",
                "/usr/lib/polkit-1/polkit-agent-helper-1",
                "/usr/bin/sudoedit",
                "/usr/sbin/exim4",
                "/usr/sbin/pppd",
            ]),
            ptrace_allowed: Vec::new(),
            module_allowed: Vec::new(),
            miner_names: s(&[
                "xmrig",
                "xmr-stak",
                "minerd",
                "cpuminer",
                "cgminer",
                "bfgminer",
                "ethminer",
                "nbminer",
                "t-rex",
                "lolminer",
                "phoenixminer",
                "kdevtmpfsi",
                "kinsing",
                "sysrv",
                "xmrig-notls",
                "ccminer",
            ]),
            miner_hashes: Vec::new(),
            // Ports only mining pools use by convention; 4444, 5555, 8888 and 9999 are left out, as
            // too many other programs listen there (Jupyter, adb, debug servers).
            stratum_ports: vec![3333, 3334, 3335, 3336, 3357, 14433, 14444, 45560, 45700],
            ioc_addresses: Vec::new(),
            process_whitelist: Vec::new(),
            whitelist: Vec::new(),
            scan_ports: 20,
            scan_window_secs: 10,
            scan_block: true,
            scan_block_minutes: 60,
            honeypot_ports: vec![23, 135, 445, 1433, 3389, 5900, 6379, 11211, 27017],
        }
    }
}

fn check_regex(field: &str, p: &str) -> Result<(), String> {
    if p.len() > MAX_PATTERN_BYTES {
        return Err(format!("{field}: at most {MAX_PATTERN_BYTES} bytes"));
    }
    regex_lite::Regex::new(p)
        .map(|_| ())
        .map_err(|e| format!("{field}: {p:?} is not a valid pattern: {e}"))
}

fn check_len<T>(field: &str, v: &[T], max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!("{field}: at most {max} entries, not {}", v.len()));
    }
    Ok(())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

impl BehaviourPolicy {
    /// Checks every field; the message starts with the field's name and index.
    pub fn validate(&self) -> Result<(), String> {
        for d in &self.disabled {
            if !DETECTORS.contains(&d.as_str()) {
                return Err(format!(
                    "disabled: unknown detector {d:?} (known: {})",
                    DETECTORS.join(", ")
                ));
            }
        }
        check_len("commands", &self.commands, MAX_PATTERNS)?;
        let mut names = BTreeSet::new();
        for (i, c) in self.commands.iter().enumerate() {
            if c.name.is_empty() || c.name.len() > 64 {
                return Err(format!("commands[{i}].name: 1 to 64 bytes"));
            }
            if !names.insert(&c.name) {
                return Err(format!("commands[{i}].name: {:?} is used twice", c.name));
            }
            check_regex(&format!("commands[{i}].pattern"), &c.pattern)?;
        }
        for (field, list) in [
            ("suid_allowed", &self.suid_allowed),
            ("ptrace_allowed", &self.ptrace_allowed),
            ("process_whitelist", &self.process_whitelist),
        ] {
            check_len(field, list, MAX_LIST)?;
            if let Some((i, p)) = list.iter().enumerate().find(|(_, p)| !p.starts_with('/')) {
                return Err(format!("{field}[{i}]: {p:?} is not an absolute path"));
            }
        }
        check_len("module_allowed", &self.module_allowed, MAX_LIST)?;
        if let Some((i, m)) = self.module_allowed.iter().enumerate().find(|(_, m)| {
            m.is_empty() || m.len() > 64 || m.contains('/') || m.chars().any(char::is_whitespace)
        }) {
            return Err(format!(
                "module_allowed[{i}]: {m:?} is not a module name (1 to 64 bytes, no '/' or spaces)"
            ));
        }
        check_len("miner_names", &self.miner_names, MAX_LIST)?;
        check_len("miner_hashes", &self.miner_hashes, MAX_LIST)?;
        if let Some((i, h)) = self
            .miner_hashes
            .iter()
            .enumerate()
            .find(|(_, h)| !is_sha256(h))
        {
            return Err(format!("miner_hashes[{i}]: {h:?} is not a SHA-256 in hex"));
        }
        check_len("stratum_ports", &self.stratum_ports, MAX_LIST)?;
        check_len("honeypot_ports", &self.honeypot_ports, 64)?;
        for (field, ports) in [
            ("stratum_ports", &self.stratum_ports),
            ("honeypot_ports", &self.honeypot_ports),
        ] {
            if let Some(i) = ports.iter().position(|&p| p == 0) {
                return Err(format!("{field}[{i}]: port 0"));
            }
        }
        check_nets("ioc_addresses", &self.ioc_addresses, MAX_IOC)?;
        check_len("whitelist", &self.whitelist, MAX_LIST)?;
        for (i, r) in self.whitelist.iter().enumerate() {
            if r.process_path.is_none() && r.sha256.is_none() && r.command.is_none() {
                return Err(format!(
                    "whitelist[{i}]: set process_path, sha256 or command (a rule matching everything would silence the detector)"
                ));
            }
            if let Some(t) = &r.alarm_type
                && crate::alarm::alarm_type(t).is_none()
            {
                return Err(format!("whitelist[{i}].alarm_type: unknown type {t:?}"));
            }
            if let Some(h) = &r.sha256
                && !is_sha256(h)
            {
                return Err(format!(
                    "whitelist[{i}].sha256: {h:?} is not a SHA-256 in hex"
                ));
            }
            if let Some(c) = &r.command {
                check_regex(&format!("whitelist[{i}].command"), c)?;
            }
        }
        if !(2..=65_535).contains(&self.scan_ports) {
            return Err(format!(
                "scan_ports: must be 2 to 65535, not {}",
                self.scan_ports
            ));
        }
        if !(1..=3_600).contains(&self.scan_window_secs) {
            return Err(format!(
                "scan_window_secs: must be 1 to 3600, not {}",
                self.scan_window_secs
            ));
        }
        if !(1..=crate::bruteforce::MAX_BLOCK_MINUTES).contains(&self.scan_block_minutes) {
            return Err(format!(
                "scan_block_minutes: must be 1 to {}, not {}",
                crate::bruteforce::MAX_BLOCK_MINUTES,
                self.scan_block_minutes
            ));
        }
        Ok(())
    }

    pub fn on(&self, detector: &str) -> bool {
        !self.disabled.contains(detector)
    }
}

/// The runtime sensor's state in a heartbeat: which tier runs, why, and its counters. In the
/// BPF tiers `seen_kernel = received + dropped_kernel + dropped_user + undecodable`, give or
/// take the records in flight; every loss is in one of the `dropped_*` (and, in the proc tier,
/// `incomplete`: processes gone before /proc was read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SensorReport {
    /// `lsm`, `bpf`, `proc`, or `off` (no tier works: the reason says why).
    pub tier: String,
    pub reason: String,
    pub seen_kernel: u64,
    pub dropped_kernel: u64,
    pub received: u64,
    pub dropped_user: u64,
    pub incomplete: u64,
    pub undecodable: u64,
    /// Processes in the agent's table.
    pub processes: u64,
    /// Detectors this tier cannot run, each with why (`abnormal_outbound: needs BPF`).
    pub unavailable: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_and_the_shipped_patterns_are_valid() {
        let p = BehaviourPolicy::default();
        assert_eq!(p.validate(), Ok(()));
        assert!(p.commands.len() >= 8);
        assert!(!p.on("honeypot") && p.on("reverse_shell"));
    }

    #[test]
    fn a_malformed_pattern_is_refused_naming_it() {
        let mut p = BehaviourPolicy::default();
        p.commands.push(CommandPattern {
            name: "mine".into(),
            pattern: "curl (".into(),
            severity: crate::Severity::High,
            description: String::new(),
        });
        let n = p.commands.len() - 1;
        let e = p.validate().unwrap_err();
        assert!(
            e.starts_with(&format!("commands[{n}].pattern: \"curl (\"")),
            "{e}"
        );
        let mut p = BehaviourPolicy::default();
        p.whitelist.push(WhitelistRule {
            command: Some("[".into()),
            ..Default::default()
        });
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("whitelist[0].command")
        );
        p.whitelist[0] = WhitelistRule::default();
        assert!(p.validate().unwrap_err().starts_with("whitelist[0]: set"));
        let mut p = BehaviourPolicy::default();
        p.disabled.insert("everything".into());
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("disabled: unknown detector")
        );
        let mut p = BehaviourPolicy::default();
        p.ioc_addresses.push("10.0.0.300".into());
        assert!(p.validate().unwrap_err().starts_with("ioc_addresses[0]"));
        let p = BehaviourPolicy {
            module_allowed: vec!["tun".into(), "../evil.ko".into()],
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().starts_with("module_allowed[1]"));
        let mut p = BehaviourPolicy::default();
        p.ptrace_allowed.push("gdb".into());
        assert!(
            p.validate()
                .unwrap_err()
                .starts_with("ptrace_allowed[0]: \"gdb\" is not an absolute path")
        );
        let bad: Result<BehaviourPolicy, _> = serde_json::from_str(r#"{"auto_isolat":true}"#);
        assert!(bad.is_err(), "unknown fields are refused");
    }
}
