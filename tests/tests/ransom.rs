//! Ransomware end to end with real processes: a script that encrypts 200 files with `openssl
//! enc` in a watched directory and deletes the originals is stopped by the agent (the burst
//! bound of the policy, then a second script at the bait files), with a critical alarm naming
//! the script, which is isolated; the files come back through the API restore, byte for byte,
//! and the encrypted copies go; a file is restored from the console in a real browser too. The
//! agent runs with the runtime sensor, as in production: it names the `openssl` processes that
//! exited before their file event was read.
//!
//! Everything happens in the test's own directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hostward_e2e::lab::{require_tools, wait_alarm_where, wait_task};
use hostward_e2e::*;
use serde_json::{Value, json};

const FILES: usize = 200;
const BURST: usize = 10;

/// `for f in <glob>; do openssl enc …; rm "$f"; done`: one `openssl` and one `rm` per file, as
/// the simplest ransomware does it.
const ENCRYPT: &str = r#"#!/bin/bash
shopt -s globstar
cd "$1" || exit 3
for f in $2; do
  [ -f "$f" ] || continue
  openssl enc -aes-256-cbc -pbkdf2 -salt -in "$f" -out "$f.enc" -pass pass:hostward 2>/dev/null && rm -f "$f"
done
"#;

fn doc(i: usize) -> Vec<u8> {
    (0..60)
        .map(|j| {
            format!(
                "document {i}, line {j}: quarterly figures {}\n",
                i * 7919 + j
            )
        })
        .collect::<String>()
        .into_bytes()
}

async fn ransom_state(api: &Api, server: &str) -> Result<Value> {
    Ok(server_of(&api.server_detail(server).await?)["heartbeat"]["ransom"].clone())
}

fn names(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    out.retain(|n| n.ends_with(suffix));
    out.sort();
    Ok(out)
}

/// Runs the encryption script on `glob` under `data`; returns the signal that ended it (None:
/// it exited) and how long it ran.
async fn encrypt(env: &TestEnv, dir: &Path, data: &Path, glob: &str) -> Result<(Option<i32>, f64)> {
    use std::os::unix::process::ExitStatusExt as _;
    let script = dir.join("encrypt.sh");
    std::fs::write(&script, ENCRYPT)?;
    let mut c = command("/bin/bash");
    c.arg(&script).arg(data).arg(glob);
    let started = Instant::now();
    let mut p = Proc::spawn(env, "encrypt", c, dir, "encrypt")?;
    let status = p.wait(secs(120)).await?;
    Ok((status.signal(), started.elapsed().as_secs_f64()))
}

async fn restore(api: &Api, server: &str, body: Value) -> Result<Value> {
    let r = api
        .post(&format!("/api/v1/servers/{server}/backups/restore"), body)
        .await?
        .expect_success()?;
    wait_task(api, r.json["id"].as_str().unwrap_or_default()).await
}

#[tokio::test]
async fn ransomware_is_stopped_within_the_bound_and_the_files_come_back_byte_for_byte() -> Result<()>
{
    let env = TestEnv::new("ransom");
    env.run(async {
        require_tools(&["openssl", "bash"]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let token = center.create_token(&["--name", "files"]).await?;
        let mut agent = Agent::new(&env, "files");
        agent.enroll(&env, &center, &token.secret).await?;
        agent.sensor = "auto";
        agent.run(&env)?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;

        let data: PathBuf = env.subdir("data");
        let docs = data.join("docs");
        std::fs::create_dir_all(&docs)?;
        for i in 0..FILES {
            std::fs::write(docs.join(format!("{i:03}.txt")), doc(i))?;
        }
        let project = server_of(&api.server_detail(&server).await?)["project_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let d = data.display().to_string();
        let policy = json!({
            "enabled": true,
            "directories": [d],
            "random_bait": false,
            "action": "kill_isolate",
            "burst_files": BURST,
            "window_secs": 60,
            "backup": {"enabled": true, "directories": [{"path": d}], "interval_hours": 24, "keep_count": 3},
        });
        let uri = format!("/api/v1/projects/{project}/ransom-policy");
        api.put(&uri, policy.clone()).await?.expect(200)?;
        // Baits in place, the directories marked, the first snapshot taken at the policy's arrival.
        let r = wait_until("ransomware protection and the first snapshot", secs(60), millis(200), || async {
            let r = ransom_state(&api, &server).await?;
            ensure!(r["state"] == "protecting" && r["backup"]["state"] == "ok", "heartbeat ransom: {r}");
            ensure!(r["backup"]["snapshots"].as_array().is_some_and(|s| s.len() == 1), "{r}");
            Ok(r)
        })
        .await?;
        ensure!(r["baits"] == 2 && r["watched_dirs"] == 2, "{r}");
        ensure!(r["backup"]["snapshots"][0]["files"] == FILES as u64, "the baits are not backed up: {r}");
        let baits: Vec<String> = names(&data, "")?.into_iter().filter(|n| n.starts_with("!0-") || n.starts_with("~z-")).collect();
        ensure!(baits.len() == 2, "a bait sorting first and one last: {baits:?}");

        // The burst: 200 files, no bait on the script's way (docs/*.txt).
        let dir = env.subdir("attack");
        let (status, took) = encrypt(&env, &dir, &data, "docs/*.txt").await?;
        let encrypted = names(&docs, ".enc")?.len();
        let left = names(&docs, ".txt")?.len();
        println!("burst: the script ended by signal {status:?} after {took:.2} s; {encrypted} of {FILES} files encrypted, {left} untouched (bound: {BURST} files, plus what it finished before it was stopped)");
        ensure!(status == Some(9), "the script was killed: {status:?}");
        ensure!((BURST..FILES / 2).contains(&encrypted), "{encrypted} files encrypted");
        ensure!(left + encrypted >= FILES - 1, "every file is either intact or encrypted: {left} + {encrypted}");
        let a = wait_alarm_where(&api, "type=ransomware", "the burst's ransomware alarm", secs(30), |a| a["evidence"]["rule"] == "burst").await?;
        let script = dir.join("encrypt.sh").display().to_string();
        ensure!(a["severity"] == "critical" || a["severity"] == "Critical", "{a}");
        ensure!(a["evidence"]["details"].to_string().contains(&format!("script: {script}")), "{a}");
        let response = a["evidence"]["response"].as_str().unwrap_or_default();
        ensure!(response.contains("killed") && response.contains(&format!("script {script} isolated")), "{a}");
        ensure!(!dir.join("encrypt.sh").exists(), "the script left its path for the quarantine");

        // The restore through the API: the newest snapshot at or before now, the encrypted
        // copies removed.
        let done = restore(&api, &server, json!({"at": runtime::unix_now(), "paths": [docs.display().to_string()], "remove_new": true})).await?;
        let deleted = (FILES - left) as u64;
        ensure!(done["output"]["restored"] == deleted && done["output"]["removed"] == encrypted as u64, "{done}");
        for i in 0..FILES {
            let got = std::fs::read(docs.join(format!("{i:03}.txt")))?;
            ensure!(got == doc(i), "{i:03}.txt is not byte for byte the original");
        }
        ensure!(names(&docs, ".enc")?.is_empty(), "the encrypted copies are gone");

        // The baits: a script walking the whole tree meets one first (`!0-…` sorts before
        // docs/) and is stopped there, by the bait rule, long before the 200 files behind it.
        let (status, took) = encrypt(&env, &dir, &data, "**").await?;
        let encrypted = names(&docs, ".enc")?.len();
        println!("bait: the script ended by signal {status:?} after {took:.2} s; {encrypted} of the {FILES} files behind the bait encrypted");
        ensure!(status == Some(9), "the bait script was killed: {status:?}");
        let a = wait_alarm_where(&api, "type=ransomware", "the bait's ransomware alarm", secs(30), |a| a["evidence"]["rule"] == "bait").await?;
        ensure!(a["evidence"]["details"][0].as_str().is_some_and(|d| d.starts_with("bait file ") && d.contains("!0-")), "{a}");
        ensure!(a["evidence"]["details"].to_string().contains(&format!("script: {script}")), "the bait stopped the script: {a}");
        ensure!(encrypted < FILES / 2, "{encrypted} files behind the bait encrypted");
        // docs/ back as it was, by the API again, for the snapshot below to see one change.
        let done = restore(&api, &server, json!({"at": runtime::unix_now(), "paths": [docs.display().to_string()], "remove_new": true})).await?;
        ensure!(done["output"]["removed"] == encrypted as u64, "{done}");
        ensure!(names(&docs, ".txt")?.len() == FILES && names(&docs, ".enc")?.is_empty(), "docs/ restored");

        // A snapshot on demand, and a single file back from the first snapshot by id.
        for n in names(&data, ".enc")? {
            std::fs::remove_file(data.join(n))?;
        }
        std::fs::write(docs.join("000.txt"), b"changed")?;
        let r = api.post(&format!("/api/v1/servers/{server}/backups"), json!({})).await?.expect_success()?;
        let t = wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;
        ensure!(t["output"]["new_bytes"] == 7, "only the changed file is copied: {t}");
        let first = r_first_snapshot(&api, &server).await?;
        let done = restore(&api, &server, json!({"snapshot": first, "paths": [docs.join("000.txt").display().to_string()]})).await?;
        ensure!(done["output"]["restored"] == 1, "{done}");
        ensure!(std::fs::read(docs.join("000.txt"))? == doc(0));

        // And from the console, in a real browser: the server's Ransomware tab shows the
        // protection and the snapshots; its restore form puts a file back from the first one.
        std::fs::write(docs.join("001.txt"), b"defaced")?;
        let path = docs.join("001.txt").display().to_string();
        Browser::drive_center(&env, &center, async |b| {
            let url = center.url();
            b.fill_login(&url, ADMIN_USER, ADMIN_PASSWORD).await?;
            b.find("#score-panel").await?; // signed in: the dashboard
            b.client.goto(&format!("{url}/servers/{server}/ransom")).await?;
            let words = b.find("#ransom-words").await?.text().await?;
            ensure!(words.starts_with("Protecting"), "{words}");
            ensure!(b.count("#snapshots tr[data-snapshot]").await? >= 2, "the snapshots are listed");
            b.find("#restore-form select[name=snapshot]").await?.select_by_value(&first).await?;
            b.find("#restore-form textarea[name=paths]").await?.send_keys(&path).await?;
            b.find("#restore-submit").await?.click().await?;
            b.wait_path(&format!("/servers/{server}/ransom"), None).await?;
            b.find("#backup-tasks tr[data-kind=backup_restore]").await?;
            Ok(())
        })
        .await?;
        wait_until("the file restored from the console", secs(30), millis(100), || async {
            ensure!(std::fs::read(docs.join("001.txt"))? == doc(1), "not yet");
            Ok(())
        })
        .await?;

        // Uninstalling: the stopped agent's baits go with `unprotect`.
        agent.term().await?;
        let args = ["unprotect".to_string(), "--state-dir".into(), agent.state_dir.display().to_string()];
        let out = run_cmd(&bin("hostward-agent")?, &args, None).await?.ok()?;
        let v: Value = serde_json::from_str(out.stdout.trim()).context("unprotect output")?;
        ensure!(v["baits_removed"] == 1, "the bait left after the attack: {v}");
        let left: Vec<String> = names(&data, "")?.into_iter().filter(|n| n.starts_with("!0-") || n.starts_with("~z-")).collect();
        ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })
    .await
}

/// The oldest snapshot the agent reports.
async fn r_first_snapshot(api: &Api, server: &str) -> Result<String> {
    wait_until("two snapshots reported", secs(30), millis(200), || async {
        let r = ransom_state(api, server).await?;
        let s = r["backup"]["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(s.len() >= 2, "{r}");
        Ok(s.last()
            .and_then(|s| s["id"].as_str())
            .unwrap_or_default()
            .to_string())
    })
    .await
}
