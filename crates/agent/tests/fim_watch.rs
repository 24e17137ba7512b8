//! The file integrity module on this host's kernel: real fanotify events in a temp directory,
//! written by real processes, become `file_changes` records in a real outbox naming the
//! writer; a policy change takes effect without a restart; a change made while the module was
//! not running is found by its first scan. Needs root (fanotify); skipped with a message
//! otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use hostward_agent::fim::{self, runner};
use hostward_agent_core::Module;
use hostward_agent_core::outbox::Outbox;
use hostward_proto::fim::{FileChange, FimPolicy, Operation, WatchedDir};
use hostward_proto::{AgentConfig, Heartbeat, Message};

fn root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn policy(dir: &Path) -> FimPolicy {
    FimPolicy {
        enabled: true,
        important_files: vec![dir.join("bin/tool").display().to_string()],
        directories: vec![WatchedDir {
            path: dir.join("www").display().to_string(),
            exclude_types: vec!["log".into()],
            ..Default::default()
        }],
    }
}

fn config(p: &FimPolicy) -> AgentConfig {
    AgentConfig::new(1, 30, true).with(p)
}

async fn heartbeat(m: &dyn Module) -> Heartbeat {
    let mut hb = Heartbeat::default();
    m.heartbeat(&mut hb);
    hb
}

async fn wait_state(m: &dyn Module, state: &str) {
    let start = Instant::now();
    loop {
        let hb = heartbeat(m).await;
        if hb.fim.as_ref().is_some_and(|f| f.state == state) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "state {state}: {:?}",
            hb.fim
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every change queued so far, and the alarms' files.
async fn queued(outbox: &Outbox) -> (Vec<FileChange>, Vec<String>) {
    let mut changes = Vec::new();
    let mut alarms = Vec::new();
    for e in outbox.unsent_after(0, 10_000).await.unwrap() {
        match e.msg {
            Message::FileChanges(f) => changes.extend(f.changes),
            Message::Alarm(a) => alarms.push(a.evidence.file.unwrap_or_default()),
            _ => {}
        }
    }
    (changes, alarms)
}

async fn wait_change(outbox: &Outbox, what: &str, f: impl Fn(&FileChange) -> bool) -> FileChange {
    let start = Instant::now();
    loop {
        let (all, _) = queued(outbox).await;
        if let Some(c) = all.iter().find(|c| f(c)) {
            return c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sh(script: &str) {
    let s = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(s.success(), "{script}");
}

#[tokio::test]
async fn real_file_events_become_changes_naming_the_writer() {
    if !root() {
        eprintln!("skipped: fanotify needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("www/sub")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("www/index.html"), "hello\n").unwrap();
    std::fs::write(dir.join("bin/tool"), "v1\n").unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let outbox = Outbox::open(&state.join("outbox.db"), 100_000)
        .await
        .unwrap();
    let m = runner::spawn(
        &fim::Config::default(),
        "/".into(),
        &state,
        outbox.sender(),
        None,
        Default::default(),
    );
    let p = policy(dir);
    m.on_config(&config(&p)).await;
    wait_state(&m, "watching").await;
    let hb = heartbeat(&m).await.fim.unwrap();
    assert_eq!(hb.files, 3, "index.html, sub and the tool: {hb:?}");
    let first = queued(&outbox).await;
    assert!(
        first.0.is_empty(),
        "the first scan is a baseline: {first:#?}"
    );

    // A write by sh (the shell itself opens, writes and closes the file, and is still running
    // when the event is read: a writer that is gone by then is named by the behaviour
    // module's process table, which this test does not run).
    let index = dir.join("www/index.html").display().to_string();
    sh(&format!("echo changed > {index}; sleep 0.5"));
    let c = wait_change(&outbox, "modify", |c| {
        c.path == index && c.op == Operation::Modify
    })
    .await;
    let w = c.process.expect("the writer");
    assert!(
        w.exe.ends_with("sh") || w.exe.ends_with("dash") || w.exe.ends_with("bash"),
        "{w:?}"
    );
    assert!(!c.important);

    // A file in a subdirectory created after the baseline, then a new directory's file.
    sh(&format!(
        "mkdir {0}/www/sub/new && echo x > {0}/www/sub/new/page.html",
        dir.display()
    ));
    let page = format!("{}/www/sub/new/page.html", dir.display());
    wait_change(&outbox, "create in a new directory", |c| {
        c.path == page && c.op == Operation::Create
    })
    .await;
    sh(&format!("echo again >> {page}"));
    wait_change(&outbox, "modify in the new directory", |c| {
        c.path == page && c.op == Operation::Modify
    })
    .await;

    // The important file: an alarm beside the change.
    let tool = dir.join("bin/tool").display().to_string();
    sh(&format!("cp /bin/true {tool}"));
    let c = wait_change(&outbox, "the tool", |c| c.path == tool).await;
    assert!(c.important && c.process.is_some());
    assert!(
        queued(&outbox).await.1.contains(&tool),
        "an alarm for the tool"
    );

    // Excluded type: nothing.
    sh(&format!("echo x > {}/www/x.log", dir.display()));

    // A policy change without a restart: the directory no longer monitored, a sibling now.
    std::fs::create_dir_all(dir.join("www2")).unwrap();
    let mut p2 = p.clone();
    p2.directories[0].path = dir.join("www2").display().to_string();
    m.on_config(&config(&p2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_state(&m, "watching").await;
    sh(&format!(
        "echo y > {}/www2/a.html && echo z > {index}",
        dir.display()
    ));
    let a = format!("{}/www2/a.html", dir.display());
    wait_change(&outbox, "a create under the new directory", |c| c.path == a).await;
    let (all, _) = queued(&outbox).await;
    assert!(
        !all.iter().any(|c| c.path.ends_with(".log")),
        "excluded type: {all:#?}"
    );
    assert_eq!(
        all.iter().filter(|c| c.path == index).count(),
        1,
        "www is no longer monitored: {all:#?}"
    );

    // Restart: a change made while no module ran is found by the first scan.
    drop(m);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = queued(&outbox).await.0.len();
    sh(&format!("echo offline > {a}"));
    let m2 = runner::spawn(
        &fim::Config::default(),
        "/".into(),
        &state,
        outbox.sender(),
        None,
        Default::default(),
    );
    m2.on_config(&config(&p2)).await;
    let c = wait_change(&outbox, "the offline change", |c| {
        c.path == a && c.op == Operation::Modify
    })
    .await;
    assert!(
        c.process.is_none() && c.source == hostward_proto::fim::ChangeSource::Scan,
        "{c:?}"
    );
    assert!(queued(&outbox).await.0.len() > before);
}
