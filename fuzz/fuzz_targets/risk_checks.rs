//! The agent's risk checks read files an attacker on the host may write or damage: a shadow
//! file with garbage, a login.defs or PAM stack with odd syntax. The input is split on NUL bytes
//! into those files of a fixture root; both checks must return a result, never panic, every
//! issue must name a file, and no issue may quote a hash from the shadow file.
#![no_main]
use std::time::Duration;

use hostward_agent::risk::{password_policy, weak_password};
use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &[
    "etc/shadow",
    "etc/passwd",
    "etc/login.defs",
    "etc/pam.d/common-password",
    "etc/pam.d/common-auth",
    "etc/pam.d/system-auth",
    "etc/security/pwquality.conf",
    "etc/security/faillock.conf",
];

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").expect("tempdir");
    for (name, content) in FILES.iter().zip(data.split(|b| *b == 0)) {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let policy = password_policy::check(dir.path());
    assert!(policy.issues.iter().all(|i| !i.file.is_empty()));
    // A tiny budget: the point is parsing, not cracking.
    let weak = weak_password::check(&weak_password::Config {
        root: dir.path(),
        custom: &["fuzz".to_string()],
        budget: Duration::from_millis(5),
    });
    assert!(weak.issues.iter().all(|i| !i.file.is_empty()));
    let shadow = String::from_utf8_lossy(data.split(|b| *b == 0).next().unwrap_or_default());
    for line in shadow.lines() {
        if let Some(hash) = line.split(':').nth(1).filter(|h| h.starts_with('$') && h.len() > 12) {
            for i in &weak.issues {
                assert!(!i.message.contains(hash), "an issue quotes a hash");
            }
        }
    }
});
