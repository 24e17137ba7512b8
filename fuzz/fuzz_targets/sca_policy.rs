//! Configuration-baseline policies come from security teams' files and, later, from the
//! center's API: any bytes reach `hostward_sca::load`. It must never panic, and a refusal must
//! name the file and a line (`policy.yml:LINE: ...`). A policy that loads is also run against
//! an empty root, which must not panic either (commands are never run there).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match hostward_sca::load("policy.yml", &text) {
        Ok(policy) => {
            let empty = std::env::temp_dir().join("hostward-fuzz-sca-empty-root");
            let _ = std::fs::create_dir_all(&empty);
            let _ = hostward_sca::run(&policy, &hostward_sca::RootHost::new(empty));
        }
        Err(e) => {
            let msg = e.to_string();
            let mut parts = msg.splitn(3, ':');
            assert_eq!(parts.next(), Some("policy.yml"), "{msg}");
            let line = parts.next().unwrap_or("");
            assert!(line.parse::<u64>().is_ok(), "no line in {msg:?}");
        }
    }
});
