//! Web tamper protection on this host's kernel, without a center: a protected directory in a
//! temp dir on ext4, attacked by real processes run as root (not privileged): writes, creates,
//! renames into and over, unlinks and hard links are refused; a mode change and a lifted lock
//! are put back from the backup; a privileged executable's write goes through and becomes the
//! reference; an unlock lets writes through and the relock makes the result the reference.
//! Needs root (fanotify permission events, the immutable attribute); skipped otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hostward_agent::tamper::runner;
use hostward_agent_core::Module;
use hostward_agent_core::outbox::Outbox;
use hostward_proto::tamper::{ProtectedDir, TamperPolicy, TamperUnlock};
use hostward_proto::{AgentConfig, Heartbeat, Message};

/// Lifts the immutable attribute however the test ends, so the temp dir can go.
struct Unlock(std::path::PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

fn root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn config(p: &TamperPolicy, until: Option<i64>) -> AgentConfig {
    AgentConfig::new(1, 30, true)
        .with(p)
        .with(&TamperUnlock { until })
}

async fn state(m: &dyn Module) -> hostward_proto::tamper::TamperReport {
    let mut hb = Heartbeat::default();
    m.heartbeat(&mut hb);
    hb.tamper.map(|t| *t).unwrap_or_default()
}

async fn wait_state(m: &dyn Module, want: &str) {
    let start = Instant::now();
    loop {
        let s = state(m).await;
        if s.state == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "state {want}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sh(script: &str) -> bool {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{script}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    out.status.success()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"))
}

// Multi-threaded: the module runs beside the test, which blocks in the processes it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_gaps_reverted_privileged_and_unlocked_writes_kept() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = tmp.path();
    // Declared after the temp dir, so it runs first: a failed assertion leaves the locks on.
    let _unlock = Unlock(dir.join("www"));
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("css")).unwrap();
    std::fs::create_dir_all(www.join("uploads")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>original</h1>\n").unwrap();
    std::fs::write(www.join("css/site.css"), "body{}\n").unwrap();
    let deploy = dir.join("deploy");
    std::fs::copy("/usr/bin/cp", &deploy).unwrap();
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let outbox = Outbox::open(&state_dir.join("outbox.db"), 100_000)
        .await
        .unwrap();
    let m = runner::spawn("/".into(), &state_dir, outbox.sender());
    let p = TamperPolicy {
        enabled: true,
        directories: vec![ProtectedDir {
            path: www.display().to_string(),
            exclude: vec!["uploads".into()],
            exclude_types: vec!["log".into()],
        }],
        privileged: vec![deploy.display().to_string()],
        windows: vec![],
        lock_files: false,
    };
    m.on_config(&config(&p, None)).await;
    wait_state(&m, "protected").await;
    let s = state(&m).await;
    assert_eq!((s.files, s.directories), (2, 2), "{s:?}");
    assert!(hostward_agent::tamper::lock::locked(&www).unwrap());
    assert!(hostward_agent::tamper::lock::locked(&www.join("css")).unwrap());

    let index = www.join("index.html");
    let w = www.display();
    // Refused before they happen.
    assert!(!sh(&format!("echo defaced > {w}/index.html")), "overwrite");
    assert!(
        !sh(&format!("echo x >> {w}/css/site.css")),
        "append in a subdirectory"
    );
    assert!(!sh(&format!("echo '<?php' > {w}/shell.php")), "create");
    assert!(!www.join("shell.php").exists(), "no empty file either");
    std::fs::write(dir.join("evil.html"), "evil").unwrap();
    assert!(
        !sh(&format!("mv {0}/evil.html {w}/index.html", dir.display())),
        "rename over"
    );
    assert!(
        !sh(&format!("mv {0}/evil.html {w}/new.html", dir.display())),
        "rename into"
    );
    assert!(!sh(&format!("rm {w}/index.html")), "unlink");
    assert!(
        !sh(&format!("ln {0}/evil.html {w}/l.html", dir.display())),
        "hard link"
    );
    assert!(!sh(&format!("mkdir {w}/x")), "mkdir");
    assert!(
        sh(&format!("cat {w}/index.html > /dev/null")),
        "reading works"
    );
    assert!(
        sh(&format!("echo upload > {w}/uploads/u.jpg")),
        "an excluded subdirectory is writable"
    );
    assert_eq!(read(&index), "<h1>original</h1>\n");

    // What the kernel lets through is put back.
    assert!(sh(&format!("chmod 600 {w}/index.html")));
    until("the mode put back", || {
        std::fs::metadata(&index).unwrap().permissions().mode() & 0o777 == 0o644
    })
    .await;
    // With the lock lifted by hand, the guard still refuses the write, but O_CREAT has made
    // an empty file by then: it goes, and the lock comes back.
    assert!(sh(&format!("chattr -i {w}")), "lifting the lock by hand");
    assert!(!sh(&format!("echo x > {w}/dropped.php")));
    until("the dropped file removed", || {
        !www.join("dropped.php").exists()
    })
    .await;
    until("the lock put back", || {
        hostward_agent::tamper::lock::locked(&www).unwrap_or(false)
    })
    .await;
    // truncate(2) by path opens nothing: no permission event, but a modify event.
    assert!(sh(&format!(
        "python3 -c 'import os; os.truncate(\"{w}/index.html\", 0)'"
    )));
    until("the truncated file restored", || {
        read(&index) == "<h1>original</h1>\n"
    })
    .await;

    // A privileged write goes through, and stays.
    assert!(sh(&format!(
        "echo '<h1>v2</h1>' > {0}/v2 && {1} {0}/v2 {w}/index.html",
        dir.display(),
        deploy.display()
    )));
    assert_eq!(read(&index), "<h1>v2</h1>\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        read(&index),
        "<h1>v2</h1>\n",
        "a privileged change is not reverted"
    );
    // It may add files too: its exec is held until the directory locks are lifted for it.
    assert!(sh(&format!(
        "{1} {0}/v2 {w}/added.html",
        dir.display(),
        deploy.display()
    )));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        read(&www.join("added.html")),
        "<h1>v2</h1>\n",
        "the deploy's new file stays"
    );
    until("locked again after the deploy", || {
        hostward_agent::tamper::lock::locked(&www).unwrap_or(false)
    })
    .await;
    assert!(!sh(&format!("echo defaced > {w}/index.html")));

    // Unlocked: writes work; locked again: refused, and the new content is the reference.
    let until_t = hostward_agent_core::util::unix_now() + 600;
    m.on_config(&config(&p, Some(until_t))).await;
    wait_state(&m, "unlocked").await;
    assert_eq!(state(&m).await.until, Some(until_t));
    assert!(
        sh(&format!(
            "echo '<h1>v3</h1>' > {w}/index.html && echo new > {w}/new.html"
        )),
        "writes in the window"
    );
    m.on_config(&config(&p, None)).await;
    wait_state(&m, "protected").await;
    assert!(
        !sh(&format!("echo defaced > {w}/index.html")),
        "refused after the window"
    );
    assert!(sh(&format!("chmod 600 {w}/new.html")));
    until("the new file is in the reference", || {
        std::fs::metadata(www.join("new.html"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
            == 0o644
    })
    .await;
    assert_eq!(read(&index), "<h1>v3</h1>\n");

    // Alarms name the refused writer.
    let mut refused = 0;
    for e in outbox.unsent_after(0, 10_000).await.unwrap() {
        if let Message::Alarm(a) = e.msg {
            assert_eq!(a.alarm_type, "web_tamper");
            if a.evidence.response.as_deref() == Some("refused") {
                refused += 1;
                assert!(
                    a.evidence.processes.first().is_some_and(|p| p.pid > 0),
                    "{a:?}"
                );
            }
        }
    }
    assert!(refused >= 2, "refusal alarms: {refused}");
    assert!(state(&m).await.refused >= 3);

    // Off: the locks are lifted (so the temp dir can go).
    let off = TamperPolicy {
        enabled: false,
        ..p
    };
    m.on_config(&config(&off, None)).await;
    wait_state(&m, "off").await;
    assert!(sh(&format!("echo free > {w}/index.html && rm -r {w}")));
}

/// `lock_files`: the files are immutable too while no deploy runs, so the kernel refuses their
/// writes and no open waits for the guard (none of the directories is marked); a privileged
/// deploy gets the guard back and the file locks lifted before its exec goes on, and its
/// result is locked again; a file lock lifted by hand is put back, and so is what was written
/// meanwhile; an unlock lifts the file locks, turning protection off lifts everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_files_refuse_writes_in_the_kernel_and_a_deploy_still_writes() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    use hostward_agent::tamper::lock::locked;
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = tmp.path();
    let _unlock = Unlock(dir.join("www"));
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("css")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>original</h1>\n").unwrap();
    std::fs::write(www.join("css/site.css"), "body{}\n").unwrap();
    let deploy = dir.join("deploy");
    std::fs::copy("/usr/bin/cp", &deploy).unwrap();
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let outbox = Outbox::open(&state_dir.join("outbox.db"), 100_000)
        .await
        .unwrap();
    let m = runner::spawn("/".into(), &state_dir, outbox.sender());
    let p = TamperPolicy {
        enabled: true,
        directories: vec![ProtectedDir {
            path: www.display().to_string(),
            ..Default::default()
        }],
        privileged: vec![deploy.display().to_string()],
        windows: vec![],
        lock_files: true,
    };
    m.on_config(&config(&p, None)).await;
    wait_state(&m, "protected").await;
    assert!(
        state(&m)
            .await
            .reason
            .is_some_and(|r| r.contains("files locked in the kernel")),
        "{:?}",
        state(&m).await
    );
    let index = www.join("index.html");
    let w = www.display();
    assert!(locked(&index).unwrap() && locked(&www.join("css/site.css")).unwrap());
    assert!(!sh(&format!("echo defaced > {w}/index.html")), "overwrite");
    assert!(!sh(&format!("chmod 600 {w}/index.html")), "mode change");
    assert!(!sh(&format!("echo x > {w}/new.php")), "create");
    assert!(
        sh(&format!("cat {w}/index.html > /dev/null")),
        "reading works"
    );
    assert_eq!(read(&index), "<h1>original</h1>\n");
    assert_eq!(
        state(&m).await.refused,
        0,
        "the kernel refused, not the guard"
    );

    // A deploy: its exec waits until the guard is back and the locks are lifted.
    assert!(sh(&format!(
        "echo '<h1>v2</h1>' > {0}/v2 && {1} {0}/v2 {w}/index.html && {1} {0}/v2 {w}/added.html",
        dir.display(),
        deploy.display()
    )));
    assert_eq!(read(&index), "<h1>v2</h1>\n");
    until("the deploy's files locked after it", || {
        locked(&index).unwrap_or(false)
            && locked(&www.join("added.html")).unwrap_or(false)
            && locked(&www).unwrap_or(false)
    })
    .await;
    assert!(!sh(&format!("echo defaced > {w}/added.html")));
    assert_eq!(read(&www.join("added.html")), "<h1>v2</h1>\n");

    // A file lock lifted by hand: what is written is put back, and the lock with it.
    assert!(sh(&format!(
        "chattr -i {w}/index.html && echo defaced > {w}/index.html"
    )));
    until("the page put back", || read(&index) == "<h1>v2</h1>\n").await;
    until("the file locked again", || locked(&index).unwrap_or(false)).await;

    // Unlocked: the file locks go too.
    let until_t = hostward_agent_core::util::unix_now() + 600;
    m.on_config(&config(&p, Some(until_t))).await;
    wait_state(&m, "unlocked").await;
    assert!(sh(&format!("echo '<h1>v3</h1>' > {w}/index.html")));
    m.on_config(&config(&p, None)).await;
    wait_state(&m, "protected").await;
    assert!(locked(&index).unwrap());
    assert_eq!(read(&index), "<h1>v3</h1>\n");

    let off = TamperPolicy {
        enabled: false,
        ..p
    };
    m.on_config(&config(&off, None)).await;
    wait_state(&m, "off").await;
    assert!(!locked(&index).unwrap() && !locked(&www).unwrap());
    assert!(sh(&format!("echo free > {w}/index.html && rm -r {w}")));
}
