//! Ransomware detection on this host's kernel, without a center and without the runtime
//! sensor (writers are named from /proc only): a real script runs `openssl enc` on 200 files
//! in a watched directory and removes the originals; the module stops it within the policy's
//! burst bound (plus what finished before the stop, printed), kills it and isolates the
//! script, and raises the critical alarm. Needs root (fanotify); skipped otherwise.

use std::time::{Duration, Instant};

use hostward_agent::ransom::runner;
use hostward_agent_core::Module;
use hostward_agent_core::outbox::Outbox;
use hostward_proto::ransom::{Action, RansomPolicy, RansomReport};
use hostward_proto::{AgentConfig, Heartbeat, Message};

fn root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn report(m: &dyn Module) -> RansomReport {
    let mut hb = Heartbeat::default();
    m.heartbeat(&mut hb);
    hb.ransom.map(|r| *r).unwrap_or_default()
}

const SCRIPT: &str = r#"#!/bin/bash
cd "$1" || exit 3
for f in docs/*.txt; do
  openssl enc -aes-256-cbc -pbkdf2 -salt -in "$f" -out "$f.enc" -pass pass:x 2>/dev/null && rm -f "$f"
done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openssl_script_is_stopped_within_the_bound_and_its_script_isolated() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("docs")).unwrap();
    for i in 0..200 {
        std::fs::write(
            data.join(format!("docs/{i:03}.txt")),
            format!("document {i}: the quarterly figures\n").repeat(100),
        )
        .unwrap();
    }
    let state_dir = tmp.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let outbox = Outbox::open(&state_dir.join("outbox.db"), 100_000)
        .await
        .unwrap();
    let quarantine = hostward_agent::quarantine::spawn(&state_dir, outbox.sender());
    let m = runner::spawn(
        "/".into(),
        &state_dir,
        outbox.sender(),
        quarantine,
        None,
        Default::default(),
    );
    let policy = RansomPolicy {
        enabled: true,
        directories: vec![data.display().to_string()],
        random_bait: false,
        action: Action::KillIsolate,
        burst_files: 10,
        ..Default::default()
    };
    m.on_config(&AgentConfig::new(1, 30, true).with(&policy))
        .await;
    let start = Instant::now();
    while report(&m).state != "protecting" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            report(&m)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(report(&m).baits, 2);

    let script = tmp.path().join("enc.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    let started = Instant::now();
    let status = tokio::process::Command::new("/bin/bash")
        .arg(&script)
        .arg(&data)
        .status()
        .await
        .unwrap();
    let took = started.elapsed();
    let enc = std::fs::read_dir(data.join("docs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".enc"))
        })
        .count();
    println!(
        "without the sensor: the script ended {status:?} after {:.2} s with {enc} of 200 files encrypted (bound 10)",
        took.as_secs_f64()
    );
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(9), "killed");
    assert!((10..100).contains(&enc), "{enc} files encrypted");

    let start = Instant::now();
    let alarm = loop {
        let found = outbox
            .unsent_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .find_map(|e| match e.msg {
                Message::Alarm(a) if a.alarm_type == "ransomware" => Some(a),
                _ => None,
            });
        if let Some(a) = found {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no alarm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ev = &alarm.evidence;
    assert_eq!(ev.rule.as_deref(), Some("burst"), "{alarm:?}");
    let response = ev.response.clone().unwrap_or_default();
    assert!(
        response.contains(&format!("script {} isolated", script.display())),
        "{response}"
    );
    assert!(!script.exists(), "the script went to the quarantine");
    assert_eq!(report(&m).detections, 1);

    // The action changed to alarm only (same directories: the baits stay): the next script
    // runs to its end, and is reported.
    let bait_names = || -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("!0-") || n.starts_with("~z-"))
            .collect();
        n.sort();
        n
    };
    let baits = bait_names();
    assert_eq!(baits.len(), 2);
    let alarm_only = RansomPolicy {
        action: Action::Alarm,
        ..policy
    };
    m.on_config(&AgentConfig::new(2, 30, true).with(&alarm_only))
        .await;
    let start = Instant::now();
    while report(&m).action != "alarm" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            report(&m)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bait_names(), baits, "not redeployed");
    std::fs::write(&script, SCRIPT).unwrap();
    let status = tokio::process::Command::new("/bin/bash")
        .arg(&script)
        .arg(&data)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "not stopped: {status:?}");
    let start = Instant::now();
    while report(&m).detections < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            report(&m)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
