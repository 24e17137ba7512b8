//! The shipped systemd unit: `systemd-analyze verify` accepts it (with ExecStart pointed at the
//! binary this build made), and it caps the agent instead of sandboxing it away from the host.

use std::collections::HashMap;
use std::process::Command;

const UNIT: &str = include_str!("../dist/hostward-agent.service");

/// `Key=value` lines of the unit (last one wins, as systemd reads a single assignment).
fn settings(unit: &str) -> HashMap<&str, &str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn the_unit_verifies_with_systemd_analyze() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        // Only a machine without systemd lacks it; CI installs systemd.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze"
        );
        eprintln!("systemd-analyze not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = UNIT.replace(
        "ExecStart=/usr/local/bin/hostward-agent",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_hostward-agent")),
    );
    assert_ne!(unit, UNIT, "the unit starts /usr/local/bin/hostward-agent");
    let path = dir.path().join("hostward-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the host's other units (a container's missing targets) are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("hostward-agent.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn the_agent_is_capped_not_walled_off_from_the_host() {
    let s = settings(UNIT);
    for (key, want) in [
        ("Restart", "on-failure"),
        ("CPUQuota", "20%"),
        ("MemoryMax", "256M"),
        ("NoNewPrivileges", "yes"),
    ] {
        assert_eq!(s.get(key).copied(), Some(want), "{key}");
    }
    assert!(s.contains_key("MemoryHigh") && s.contains_key("TasksMax"));
    // Each of these hides part of the host the agent must inspect and repair: /usr and /etc
    // (one-click fixes, quarantine), the host's /tmp (malware drops), home directories.
    for key in [
        "ProtectSystem",
        "PrivateTmp",
        "ProtectHome",
        "ReadOnlyPaths",
        "InaccessiblePaths",
    ] {
        assert!(
            !s.contains_key(key),
            "{key} keeps the agent from parts of the host"
        );
    }
}
