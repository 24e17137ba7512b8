//! The tamper protection module without a center, for `bench/tamper.sh`: `tamper_run STATE
//! DIR [PRIVILEGED]` protects DIR as the agent does (the same runner, a local outbox in STATE),
//! prints `protected` once it is, and runs until killed. Killing it leaves the directory locks
//! in place, as stopping the agent does: the bench lifts them itself.

use std::time::Duration;

use hostward_agent::tamper::runner;
use hostward_agent_core::Module;
use hostward_agent_core::outbox::Outbox;
use hostward_proto::tamper::{ProtectedDir, TamperPolicy, TamperUnlock};
use hostward_proto::{AgentConfig, Heartbeat};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: tamper_run STATE DIR [PRIVILEGED]");
        std::process::exit(2);
    };
    std::fs::create_dir_all(state).expect("state dir");
    let outbox = Outbox::open(&std::path::Path::new(state).join("outbox.db"), 1_000_000)
        .await
        .expect("outbox");
    let m = runner::spawn("/".into(), std::path::Path::new(state), outbox.sender());
    let policy = TamperPolicy {
        enabled: true,
        directories: vec![ProtectedDir {
            path: dir.trim_end_matches('/').to_string(),
            ..Default::default()
        }],
        privileged: rest.to_vec(),
        windows: Vec::new(),
        // LOCK_FILES=1: the files locked in the kernel too (bench/tamper.sh's second run).
        lock_files: std::env::var("LOCK_FILES").is_ok_and(|v| v == "1"),
    };
    if let Err(e) = policy.validate() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    m.on_config(
        &AgentConfig::new(1, 30, true)
            .with(&policy)
            .with(&TamperUnlock::default()),
    )
    .await;
    loop {
        let mut hb = Heartbeat::default();
        m.heartbeat(&mut hb);
        match hb.tamper.as_deref().map(|t| t.state.as_str()) {
            Some("protected") => break,
            Some("failing") => {
                eprintln!("{:?}", hb.tamper);
                std::process::exit(1);
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    println!("protected");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
