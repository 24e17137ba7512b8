//! File integrity monitoring end to end with real processes: a monitored directory added to
//! the project's policy while the agent runs (create, modify, attributes, move and delete
//! reported with BLAKE3 hashes and the writing process; excluded paths and types not), a
//! `useradd`/`userdel` of a real account changing the host's /etc/passwd, a monitored binary in
//! the test's own tree replaced by `cp`, both raising `important_file_change` alarms that name
//! the process, and a change made while the agent was stopped found by its start-up scan.
//!
//! The monitor sees every change of /etc on the host, so these tests run one at a time
//! (`SERIAL`) and other tests' agents run with it off.

use std::path::Path;

use hostward_e2e::lab::{require_tools, wait_alarm_where};
use hostward_e2e::*;
use serde_json::{Value, json};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn blake3_of(p: &Path) -> Result<String> {
    Ok(blake3::hash(&std::fs::read(p)?).to_hex().to_string())
}

/// An agent with file integrity monitoring on, running, and its project's id.
async fn fim_agent(env: &TestEnv, center: &Center, label: &str) -> Result<(Agent, String)> {
    let token = center.create_token(&["--name", label]).await?;
    let mut agent = Agent::new(env, label);
    agent.fim = "on";
    // The sensor's process table names writers that exit before /proc is read (`echo > f`).
    agent.sensor = "auto";
    agent.enroll(env, center, &token.secret).await?;
    agent.run(env)?;
    let api = center.api();
    let project = server_of(&api.server_detail(&agent.server_id).await?)["project_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    Ok((agent, project))
}

/// Waits until the agent's heartbeat says the monitor watches with `files` at least `min`.
async fn wait_watching(api: &Api, server: &str, min: u64) -> Result<Value> {
    wait_until(
        "the file integrity monitor watching",
        secs(60),
        millis(300),
        || async {
            let s = api.server_detail(server).await?;
            let fim = server_of(&s)["heartbeat"]["fim"].clone();
            ensure!(
                fim["state"] == "watching" && fim["files"].as_u64() >= Some(min),
                "heartbeat fim: {fim}"
            );
            Ok(fim)
        },
    )
    .await
}

/// The file changes of `server` listed by the API for `query`.
async fn changes(api: &Api, server: &str, query: &str) -> Result<Vec<Value>> {
    let r = api
        .get(&format!(
            "/api/v1/file-changes?server={server}&per_page=1000&{query}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"].as_array().cloned().unwrap_or_default())
}

/// Waits for a change of `server` that `pick` accepts.
async fn wait_change(
    api: &Api,
    server: &str,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_until(what, secs(30), millis(200), || async {
        let all = changes(api, server, "").await?;
        all.iter().find(|c| pick(c)).cloned().ok_or_else(|| {
            anyhow!(
                "{} changes, none matching: {}",
                all.len(),
                truncate(&Value::from(all.clone()).to_string(), 2000)
            )
        })
    })
    .await
}

async fn set_fim_policy(api: &Api, project: &str, edit: impl FnOnce(&mut Value)) -> Result<Resp> {
    let uri = format!("/api/v1/projects/{project}/fim-policy");
    let mut policy = api.get(&uri).await?.expect(200)?.json["policy"].clone();
    edit(&mut policy);
    api.put(&uri, policy).await
}

#[tokio::test]
async fn monitored_directories_and_important_files_report_changes_with_the_writer() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("fim-changes");
    env.run(async {
        require_tools(&["useradd", "userdel", "cp", "chmod", "mv"]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let (mut agent, project) = fim_agent(&env, &center, "fim").await?;
        let server = agent.server_id.clone();
        // The default policy: the important files, no directory.
        let before = wait_watching(&api, &server, 10).await?;

        // A directory and a binary of the test's own, added while the agent runs.
        let tree = env.subdir("tree");
        let www = tree.join("www");
        std::fs::create_dir_all(www.join("cache"))?;
        std::fs::create_dir_all(www.join("sub"))?;
        std::fs::write(www.join("index.html"), "<h1>hello</h1>\n")?;
        let bin = tree.join("bin");
        std::fs::create_dir_all(&bin)?;
        let ls = bin.join("ls");
        std::fs::copy("/usr/bin/ls", &ls)?;
        let www_s = www.display().to_string();
        let ls_s = ls.display().to_string();
        let missing_s = tree.join("missing").display().to_string();
        set_fim_policy(&api, &project, |p| {
            p["important_files"]
                .as_array_mut()
                .unwrap()
                .push(json!(ls_s));
            p["directories"] = json!([{
                "path": www_s, "recursive": true,
                "exclude": ["cache"], "exclude_types": ["log"],
            }, {"path": missing_s}]);
        })
        .await?
        .expect(200)?;
        let fim = wait_watching(&api, &server, before["files"].as_u64().unwrap_or(0) + 3).await?;
        ensure!(
            fim["problems"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x
                    .as_str()
                    .is_some_and(|x| x.starts_with(&missing_s) && x.contains("does not exist")))),
            "a monitored directory missing on this host is reported: {fim}"
        );
        ensure!(
            changes(&api, &server, "").await?.is_empty(),
            "a newly monitored directory is a baseline, not creates"
        );

        // Create, modify, attributes, move, delete, by real processes.
        let page = www.join("sub/new.html");
        sh(&format!("echo created > {}", page.display())).await?;
        let c = wait_change(&api, &server, "the create", |c| {
            c["op"] == "create" && c["path"] == page.display().to_string()
        })
        .await?;
        ensure!(
            c["new"]["hash"] == blake3_of(&page)?
                && c["new"]["size"] == 8
                && c["source"] == "realtime",
            "{c}"
        );
        ensure!(c["process"]["pid"].as_u64().is_some(), "the writer: {c}");
        let old_hash = blake3_of(&www.join("index.html"))?;
        sh(&format!(
            "echo defaced > {}",
            www.join("index.html").display()
        ))
        .await?;
        let c = wait_change(&api, &server, "the modify", |c| {
            c["op"] == "modify"
                && c["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/www/index.html"))
        })
        .await?;
        ensure!(
            c["old"]["hash"] == old_hash && c["new"]["hash"] == blake3_of(&www.join("index.html"))?,
            "old -> new hash: {c}"
        );
        ensure!(c["important"] == false, "{c}");
        sh(&format!("chmod 600 {}", page.display())).await?;
        let c = wait_change(&api, &server, "the attributes change", |c| {
            c["op"] == "attributes" && c["path"] == page.display().to_string()
        })
        .await?;
        ensure!(
            c["old"]["mode"] != c["new"]["mode"] && c["new"]["mode"] == 0o600,
            "{c}"
        );
        let moved = www.join("moved.html");
        sh(&format!("mv {} {}", page.display(), moved.display())).await?;
        let c = wait_change(&api, &server, "the move", |c| {
            c["op"] == "move" && c["path"] == moved.display().to_string()
        })
        .await?;
        ensure!(c["from"] == page.display().to_string(), "{c}");
        ensure!(
            c["process"]["exe"]
                .as_str()
                .is_some_and(|e| e.ends_with("/mv")),
            "mv moved it: {c}"
        );
        sh(&format!("rm {}", moved.display())).await?;
        let c = wait_change(&api, &server, "the delete", |c| {
            c["op"] == "delete" && c["path"] == moved.display().to_string()
        })
        .await?;
        ensure!(c["new"].is_null() && c["old"]["hash"].is_string(), "{c}");
        // Excluded: a path and a type.
        sh(&format!(
            "echo x > {} && echo y > {}",
            www.join("cache/x").display(),
            www.join("access.log").display()
        ))
        .await?;

        // The monitored binary replaced by cp: an important-file alarm naming cp.
        sh(&format!("cp /usr/bin/true {}", ls.display())).await?;
        let a = wait_alarm_where(
            &api,
            "type=important_file_change",
            "an alarm for the replaced binary",
            secs(30),
            |a| a["evidence"]["file"] == ls_s,
        )
        .await?;
        let p = &a["evidence"]["processes"][0];
        ensure!(
            p["exe"].as_str().is_some_and(|e| e.ends_with("/cp")),
            "the alarm names cp: {a}"
        );
        ensure!(
            a["evidence"]["details"].as_array().is_some_and(|d| d
                .iter()
                .any(|x| x.as_str().is_some_and(|x| x.starts_with("blake3 ")))),
            "{a}"
        );
        let c = wait_change(&api, &server, "the binary's change", |c| c["path"] == ls_s).await?;
        ensure!(
            c["important"] == true && c["new"]["hash"] == blake3_of(Path::new("/usr/bin/true"))?,
            "{c}"
        );

        // The host's /etc/passwd, by useradd and userdel of a real account (each waited for:
        // a change undone before it is rescanned, 20 ms later, is no change).
        let name = format!("hwfim{}", rand::random::<u16>());
        let added = sh(&format!("useradd -M -s /usr/sbin/nologin {name}")).await;
        let alarm = match &added {
            Ok(()) => {
                wait_alarm_where(
                    &api,
                    "type=important_file_change",
                    "an alarm for /etc/passwd",
                    secs(30),
                    |a| a["evidence"]["file"] == "/etc/passwd",
                )
                .await
            }
            Err(e) => Err(anyhow!("useradd failed: {e}")),
        };
        let removed = sh(&format!("userdel {name}")).await;
        added?;
        let a = alarm?;
        removed?;
        let exe = a["evidence"]["processes"][0]["exe"]
            .as_str()
            .unwrap_or("")
            .to_string();
        ensure!(exe.ends_with("/useradd"), "the alarm names useradd: {a}");
        ensure!(
            a["severity"] == "high" && a["technique"].as_str().is_some(),
            "{a}"
        );
        let c = wait_change(&api, &server, "userdel's change of /etc/passwd", |c| {
            c["path"] == "/etc/passwd"
                && c["process"]["exe"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("/userdel"))
        })
        .await?;
        ensure!(c["important"] == true && c["op"] == "modify", "{c}");

        // Nothing from the excluded path or type.
        let all = changes(&api, &server, "").await?;
        ensure!(
            !all.iter().any(|c| c["path"]
                .as_str()
                .is_some_and(|p| p.contains("/cache/") || p.ends_with(".log"))),
            "excluded paths reported: {all:?}"
        );
        // The filters.
        let important = changes(&api, &server, "important=true").await?;
        ensure!(
            !important.is_empty() && important.iter().all(|c| c["important"] == true),
            "{important:?}"
        );
        let deletes = changes(&api, &server, "op=delete").await?;
        ensure!(
            !deletes.is_empty() && deletes.iter().all(|c| c["op"] == "delete"),
            "{deletes:?}"
        );

        // A change made while the agent is stopped is found by its start-up scan.
        agent.term().await?;
        sh(&format!(
            "echo offline > {}",
            www.join("index.html").display()
        ))
        .await?;
        agent.run(&env)?;
        let c = wait_change(&api, &server, "the change made while stopped", |c| {
            c["source"] == "scan"
                && c["op"] == "modify"
                && c["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/www/index.html"))
        })
        .await?;
        ensure!(
            c["new"]["hash"] == blake3_of(&www.join("index.html"))? && c["process"].is_null(),
            "{c}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bad_fim_policy_is_refused_naming_the_field_and_nothing_changes() -> Result<()> {
    let env = TestEnv::new("fim-bad-policy");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let uri = format!("/api/v1/projects/{project}/fim-policy");
        let before = api.get(&uri).await?.expect(200)?.json;
        let dir = |p: &str| json!({"path": p});
        let cases = [
            (
                json!([dir("var/www")]),
                "directories[0].path: \"var/www\" is not an absolute path",
            ),
            (
                json!([dir("/")]),
                "directories[0].path: \"/\" is the whole file system",
            ),
            (
                json!([dir("/srv/www"), dir("/srv/www/html")]),
                "directories[1].path: \"/srv/www/html\" overlaps directories[0]",
            ),
            (
                Value::from((0..51).map(|i| dir(&format!("/d{i}"))).collect::<Vec<_>>()),
                "directories: at most 50 entries, not 51",
            ),
        ];
        for (dirs, want) in cases {
            let r = set_fim_policy(&api, &project, |p| p["directories"] = dirs).await?;
            ensure!(
                r.status == 400 && r.error_message().contains(want),
                "{want}: {} {}",
                r.status,
                r.json
            );
        }
        let after = api.get(&uri).await?.expect(200)?.json;
        ensure!(before == after, "nothing half-applied: {before} vs {after}");
        Ok(())
    })
    .await
}

async fn sh(script: &str) -> Result<()> {
    run_cmd(
        Path::new("/bin/sh"),
        &["-c".to_string(), script.to_string()],
        None,
    )
    .await?
    .ok()
    .map(|_| ())
}
