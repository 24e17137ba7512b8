//! Web tamper protection end to end: a real nginx serves a protected web root while a loop
//! run as root (not privileged) tries 1,000 times to overwrite `index.html`, create files,
//! rename files into the directory and delete `index.html`, and a client fetches the page
//! all along: every body it gets must be the original. Then the privileged deploy tool's write
//! is served, an unlock from the API lets a write through and the lock refuses the next, a
//! policy naming a directory this host lacks is refused by the agent naming it (the old policy
//! stays), a restart (nothing is written while the agent is stopped), a crash (what was
//! written meanwhile is put back; how long writes went through is measured), and
//! `hostward-agent unprotect` lifting the locks a stopped agent leaves.
//!
//! Everything happens in the test's own directory and on loopback.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hostward_e2e::lab::require_tools;
use hostward_e2e::*;
use serde_json::{Value, json};

const ORIGINAL: &str = "<html><body><h1>The original page</h1></body></html>\n";

/// The fetcher: GETs the page until the stop file appears, then prints counts and samples of
/// anything that was not the original (an error page counts: it is not the original either).
const FETCHER: &str = r#"
import json, os, sys, urllib.request, urllib.error
url, orig, stop = sys.argv[1], open(sys.argv[2], 'rb').read(), sys.argv[3]
good = bad = 0
samples = []
while not os.path.exists(stop):
    try:
        body = urllib.request.urlopen(url, timeout=5).read()
    except urllib.error.HTTPError as e:
        body = ('HTTP %d' % e.code).encode()
    except Exception as e:
        body = ('error %s' % e).encode()
    if body == orig:
        good += 1
    else:
        bad += 1
        if len(samples) < 5:
            samples.append(body[:120].decode('utf-8', 'replace'))
print(json.dumps({"good": good, "bad": bad, "samples": samples}))
"#;

/// Lifts the immutable attribute from the site when the test ends, however it ends: the
/// agent leaves its directory locks in place when it stops (that is the point), and the test's
/// temp dir must go.
struct Unlock(PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

struct Site {
    _unlock: Unlock,
    www: PathBuf,
    deploy: PathBuf,
    port: u16,
    _nginx: Proc,
}

async fn nginx_site(env: &TestEnv) -> Result<Site> {
    let dir = env.subdir("site");
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("css"))?;
    std::fs::write(www.join("index.html"), ORIGINAL)?;
    std::fs::write(www.join("css/site.css"), "body { color: black }\n")?;
    let deploy = dir.join("deploy-tool");
    std::fs::copy("/usr/bin/cp", &deploy)?;
    let (nginx, port) = hostward_e2e::web::nginx(env, &www, "index.html").await?;
    ensure!(
        fetch_port(port).await?.contains("original"),
        "nginx serves the site"
    );
    Ok(Site {
        _unlock: Unlock(www.clone()),
        www,
        deploy,
        port,
        _nginx: nginx,
    })
}

async fn fetch(site: &Site) -> Result<String> {
    fetch_port(site.port).await
}

async fn fetch_port(port: u16) -> Result<String> {
    let out = run_cmd(
        Path::new("/usr/bin/curl"),
        &["-s".into(), format!("http://127.0.0.1:{port}/index.html")],
        None,
    )
    .await?;
    Ok(out.stdout)
}

async fn tamper_state(api: &Api, server: &str) -> Result<Value> {
    Ok(server_of(&api.server_detail(server).await?)["heartbeat"]["tamper"].clone())
}

async fn wait_tamper(api: &Api, server: &str, state: &str) -> Result<Value> {
    wait_until(
        &format!("tamper protection {state}"),
        secs(60),
        millis(100),
        || async {
            let t = tamper_state(api, server).await?;
            ensure!(t["state"] == state, "heartbeat tamper: {t}");
            Ok(t)
        },
    )
    .await
}

async fn sh(script: &str) -> Result<Output> {
    run_cmd(
        Path::new("/bin/bash"),
        &["-c".to_string(), script.to_string()],
        None,
    )
    .await
}

#[tokio::test]
async fn a_protected_site_serves_no_tampered_byte_while_root_attacks_it() -> Result<()> {
    let env = TestEnv::new("tamper-nginx");
    env.run(async {
        require_tools(&["/usr/sbin/nginx", "curl", "python3", "chattr"]).await?;
        let site = nginx_site(&env).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = Agent::start(&env, &center, "web").await?;
        let server = agent.server_id.clone();
        let project = server_of(&api.server_detail(&server).await?)["project_id"].as_str().unwrap_or("").to_string();
        let uri = format!("/api/v1/projects/{project}/tamper-policy");
        let w = site.www.display().to_string();
        let policy = json!({
            "enabled": true,
            "directories": [{"path": w, "exclude_types": ["log"]}],
            "privileged": [site.deploy.display().to_string()],
        });
        api.put(&uri, policy.clone()).await?.expect(200)?;
        let t = wait_tamper(&api, &server, "protected").await?;
        ensure!(t["files"] == 2 && t["directories"] == 2, "{t}");

        // The attack, with a client fetching all along.
        let dir = env.subdir("attack");
        std::fs::write(dir.join("fetch.py"), FETCHER)?;
        std::fs::write(dir.join("orig.html"), ORIGINAL)?;
        let stop = dir.join("stop");
        let mut fc = command("python3");
        fc.arg(dir.join("fetch.py"))
            .arg(format!("http://127.0.0.1:{}/index.html", site.port))
            .arg(dir.join("orig.html"))
            .arg(&stop);
        let mut fetcher = Proc::spawn(&env, "fetcher", fc, &dir, "fetcher")?;
        std::fs::write(dir.join("evil.html"), "<h1>defaced</h1>\n")?;
        let attack = format!(
            "for i in $(seq 1 1000); do\n\
               echo \"<h1>defaced $i</h1>\" > {w}/index.html\n\
               echo '<?php system($_GET[1]);' > {w}/shell$i.php\n\
               cp {a}/evil.html {a}/evil$i.html && mv {a}/evil$i.html {w}/index.html\n\
               cp {a}/evil.html {a}/new$i.html && mv {a}/new$i.html {w}/new$i.html\n\
               rm -f {w}/index.html\n\
             done 2>/dev/null; true",
            a = dir.display()
        );
        let started = Instant::now();
        sh(&attack).await?.ok()?;
        let attack_secs = started.elapsed().as_secs_f64();
        std::fs::write(&stop, "")?;
        fetcher.wait(secs(30)).await?;
        let counts: Value = serde_json::from_str(fetcher.stdout().trim()).context("fetcher output")?;
        println!("tamper loop: 1,000 rounds in {attack_secs:.1} s; fetches {counts}");
        ensure!(counts["bad"] == 0, "tampered or missing pages were served: {counts}");
        ensure!(counts["good"].as_u64() >= Some(100), "the client fetched too little to count: {counts}");
        ensure!(std::fs::read_to_string(site.www.join("index.html"))? == ORIGINAL, "index.html on disk");
        let mut names: Vec<String> = std::fs::read_dir(&site.www)?.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect::<std::io::Result<_>>()?;
        names.sort();
        ensure!(names == ["css", "index.html"], "nothing added: {names:?}");
        let a = hostward_e2e::lab::wait_alarm_where(&api, "type=web_tamper", "a tamper alarm", secs(30), |a| a["evidence"]["file"].as_str().is_some_and(|f| f.ends_with("/index.html"))).await?;
        ensure!(a["evidence"]["response"] == "refused" && a["evidence"]["processes"][0]["pid"].as_u64().is_some(), "{a}");
        // One refused overwrite per round (the rest the directory lock refuses in the kernel).
        wait_until("the refusals counted in a heartbeat", secs(30), millis(200), || async {
            let t = tamper_state(&api, &server).await?;
            ensure!(t["refused"].as_u64() >= Some(1000), "{t}");
            Ok(())
        })
        .await?;

        // The privileged deploy tool's write is served.
        std::fs::write(dir.join("v2.html"), "<h1>v2</h1>\n")?;
        sh(&format!("{} {}/v2.html {w}/index.html", site.deploy.display(), dir.display())).await?.ok()?;
        let body = fetch(&site).await?;
        ensure!(body == "<h1>v2</h1>\n", "the deploy is served: {body:?}");
        ensure!(!sh(&format!("echo defaced > {w}/index.html")).await?.success(), "others still refused");
        tokio::time::sleep(millis(300)).await;
        ensure!(fetch(&site).await? == "<h1>v2</h1>\n", "the deploy stays");

        // Unlocked from the API: a write goes through; locked: refused, the new page kept.
        api.post(&format!("/api/v1/servers/{server}/tamper/unlock"), json!({"minutes": 5})).await?.expect_success()?;
        let t = wait_tamper(&api, &server, "unlocked").await?;
        ensure!(t["until"].as_i64().is_some(), "{t}");
        sh(&format!("echo '<h1>v3</h1>' > {w}/index.html && echo new > {w}/new.html")).await?.ok()?;
        ensure!(fetch(&site).await? == "<h1>v3</h1>\n");
        api.post(&format!("/api/v1/servers/{server}/tamper/lock"), json!({})).await?.expect_success()?;
        wait_tamper(&api, &server, "protected").await?;
        ensure!(!sh(&format!("echo defaced > {w}/index.html")).await?.success(), "refused after the lock");
        ensure!(fetch(&site).await? == "<h1>v3</h1>\n", "the unlocked write is the new reference");

        // A weekly window around now (server local time): unlocked while it is open, locked
        // again when the policy no longer has it. Skipped within minutes of midnight, where a
        // window around now would cross it (windows stay within one day).
        let now_min = {
            let out = sh("date +%H:%M").await?.ok()?;
            let (h, m) = out.stdout.trim().split_once(':').unwrap_or(("0", "0"));
            h.parse::<u32>().unwrap_or(0) * 60 + m.parse::<u32>().unwrap_or(0)
        };
        if (2..24 * 60 - 10).contains(&now_min) {
            let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
            let mut windowed = policy.clone();
            windowed["windows"] = json!([{"start": hhmm(now_min - 1), "end": hhmm(now_min + 9)}]);
            api.put(&uri, windowed).await?.expect(200)?;
            let t = wait_tamper(&api, &server, "unlocked").await?;
            ensure!(t["until"].is_null() && t["reason"].as_str().is_some_and(|r| r.contains("window")), "{t}");
            sh(&format!("echo '<h1>v4</h1>' > {w}/index.html")).await?.ok()?;
            api.put(&uri, policy.clone()).await?.expect(200)?;
            wait_tamper(&api, &server, "protected").await?;
            ensure!(!sh(&format!("echo defaced > {w}/index.html")).await?.success(), "refused after the window");
            ensure!(fetch(&site).await? == "<h1>v4</h1>\n", "the window's write is the new reference");
        } else {
            println!("window check skipped: {now_min} minutes past local midnight");
        }

        // A directory this host lacks: the agent refuses the policy naming it; the old stays.
        let mut bad = policy.clone();
        bad["directories"].as_array_mut().unwrap().push(json!({"path": "/srv/hostward-no-such-dir"}));
        api.put(&uri, bad).await?.expect(200)?;
        let t = wait_tamper(&api, &server, "failing").await?;
        ensure!(t["reason"].as_str().is_some_and(|r| r.contains("directories[1].path: /srv/hostward-no-such-dir does not exist")), "{t}");
        ensure!(!sh(&format!("echo defaced > {w}/index.html")).await?.success(), "the previous policy still protects");
        api.put(&uri, policy.clone()).await?.expect(200)?;
        wait_tamper(&api, &server, "protected").await?;

        // A restart (SIGTERM): the agent locks the files as it stops, so nothing is written
        // while it is down; structure changes stay refused throughout.
        let want = fetch(&site).await?;
        agent.term().await?;
        ensure!(!sh(&format!("echo '<h1>while down</h1>' > {w}/index.html")).await?.success(), "a write with the agent stopped");
        ensure!(!sh(&format!("echo x > {w}/down.php")).await?.success(), "a create with the agent stopped");
        agent.run(&env)?;
        wait_tamper(&api, &server, "protected").await?;
        ensure!(!sh(&format!("echo defaced > {w}/index.html")).await?.success(), "refused after the restart");
        ensure!(fetch(&site).await? == want, "the page after a restart");

        // A crash (SIGKILL): nothing locks the files, so a write goes through until the new
        // agent's guard is up, and is put back at its start. Measured: the last probe that
        // went through bounds the window.
        agent.kill9().await?;
        let down = sh(&format!("echo '<h1>while down</h1>' > {w}/index.html")).await?.success();
        ensure!(!sh(&format!("echo x > {w}/down.php")).await?.success(), "creating a file is refused after a crash");
        let restarted = Instant::now();
        agent.run(&env)?;
        let mut window_ms = None;
        while restarted.elapsed() < secs(30) {
            let r = sh(&format!("echo probe > {w}/index.html")).await?;
            if !r.success() {
                window_ms = Some(restarted.elapsed().as_millis());
                break;
            }
        }
        ensure!(window_ms.is_some(), "writes still went through 30 s after the restart");
        wait_until("index.html put back", secs(30), millis(20), || async {
            let body = fetch(&site).await?;
            ensure!(body == want, "{body}");
            Ok(())
        })
        .await?;
        println!("crash: a write with the agent killed went through: {down}; writes refused again {window_ms:?} ms after the new agent process started; the page was put back");

        // Uninstalling: stopped, the agent leaves the site locked; `unprotect` lifts it.
        agent.term().await?;
        ensure!(!sh(&format!("echo x > {w}/index.html")).await?.success(), "locked while stopped");
        let args = ["unprotect".to_string(), "--state-dir".into(), agent.state_dir.display().to_string()];
        let out = run_cmd(&bin("hostward-agent")?, &args, None).await?.ok()?;
        let v: Value = serde_json::from_str(out.stdout.trim()).context("unprotect output")?;
        ensure!(v["unlocked"].as_u64() >= Some(3), "{v}");
        sh(&format!("echo free > {w}/index.html && echo new > {w}/new.html")).await?.ok()?;
        Ok(())
    })
    .await
}
