//! Inventory change history end to end, on the real machine with real processes: a real center,
//! a real agent reading `/` with one-second cycles (set through the project's inventory policy),
//! and real changes made by this test: a listening socket opened and closed, an account added
//! with `useradd`, a crontab line written. Each must show up as an `added` / `removed` record
//! in the history. Also: "collect now" as a task, and recovery when the agent's diff does not
//! fit what the center holds (the center asks for a full snapshot and ends up right).

use std::net::TcpListener;

use hostward_e2e::*;
use serde_json::{Value, json};

/// Removes what the test put on the machine, even when it fails.
struct Cleanup {
    user: String,
    cron_file: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.user)
            .output();
        let _ = std::fs::remove_file(&self.cron_file);
    }
}

async fn changes(api: &Api, server: &str, query: &str) -> Result<Vec<Value>> {
    let r = api
        .get(&format!(
            "/api/v1/servers/{server}/inventory/changes?per_page=1000&{query}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"].as_array().cloned().unwrap_or_default())
}

/// Waits for a change record of `kind` and `change` whose item satisfies `pred`.
async fn wait_change(
    api: &Api,
    server: &str,
    kind: &str,
    change: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_until(
        &format!("a {kind} {change} record for {what}"),
        secs(30),
        millis(250),
        || async {
            let list = changes(api, server, &format!("kind={kind}&change={change}")).await?;
            list.into_iter()
                .find(|c| {
                    let item = if change == "removed" {
                        &c["old"]
                    } else {
                        &c["new"]
                    };
                    pred(item)
                })
                .ok_or_else(|| anyhow!("not yet"))
        },
    )
    .await
}

async fn items(api: &Api, server: &str, kind: &str, q: &str) -> Result<Vec<Value>> {
    let r = api
        .get(&format!(
            "/api/v1/servers/{server}/inventory/{kind}?per_page=1000&q={q}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"].as_array().cloned().unwrap_or_default())
}

fn sha256_hex(text: &str) -> Result<String> {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn real_changes_on_the_host_appear_in_the_history() -> Result<()> {
    let env = TestEnv::new("inventory-history");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Short cycles for the kinds under test; processes and software off: not under test here.
        let policy = api
            .put(
                &format!("/api/v1/projects/{project}/inventory-policy"),
                json!({"interval_secs": {"ports": 1, "accounts": 1, "autostart": 1, "processes": 0, "software": 0, "middleware": 0}}),
            )
            .await?
            .expect(200)?;
        ensure!(policy.json["effective_interval_secs"]["ports"] == 1, "{}", policy.text);
        let bad = api
            .put(
                &format!("/api/v1/projects/{project}/inventory-policy"),
                json!({"interval_secs": {"ports": "often"}}),
            )
            .await?;
        ensure!(bad.status == 400 && bad.text.contains("interval_secs"), "bad policy answered {} {}", bad.status, bad.text);

        let agent = Agent::start(&env, &center, "inv").await?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        // Baselines of the three kinds are in.
        wait_until("inventory baselines", secs(60), millis(250), || async {
            let s = api.get(&format!("/api/v1/servers/{server}/inventory")).await?.expect(200)?;
            let kinds: Vec<&str> = s.json["kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["in_sync"] == true && k["items"].as_i64() > Some(0))
                .filter_map(|k| k["kind"].as_str())
                .collect();
            for k in ["ports", "accounts", "autostart"] {
                ensure!(kinds.contains(&k), "{k} not in yet: {}", s.text);
            }
            Ok(())
        })
        .await?;
        ensure!(
            changes(&api, &server, "").await?.is_empty(),
            "a first inventory is a baseline, not a list of additions"
        );

        // A listening socket: added, then removed.
        let listener = TcpListener::bind("0.0.0.0:0")?;
        let port = listener.local_addr()?.port();
        let added = wait_change(&api, &server, "ports", "added", &format!("tcp/{port}"), |i| {
            i["port"] == port && i["protocol"] == "tcp"
        })
        .await?;
        ensure!(
            added["new"]["pid"] == std::process::id(),
            "the port's pid is this test: {added}"
        );
        let exe = std::fs::read_link("/proc/self/exe")?;
        ensure!(
            added["new"]["program"] == exe.display().to_string(),
            "the port's program is this test binary {}: {added}",
            exe.display()
        );
        drop(listener);
        wait_change(&api, &server, "ports", "removed", &format!("tcp/{port}"), |i| {
            i["port"] == port && i["protocol"] == "tcp"
        })
        .await?;

        // An account added with useradd; a crontab line.
        let tag = format!("{:08x}", rand_u32());
        let user = format!("hwtest{tag}");
        let cron_file = std::path::PathBuf::from(format!("/etc/cron.d/hostward-test-{tag}"));
        let _cleanup = Cleanup {
            user: user.clone(),
            cron_file: cron_file.clone(),
        };
        let out = run_cmd(
            std::path::Path::new("useradd"),
            &["-M".into(), "-s".into(), "/usr/sbin/nologin".into(), user.clone()],
            None,
        )
        .await?;
        ensure!(out.success(), "useradd failed: {}", out.text());
        let acct = wait_change(&api, &server, "accounts", "added", &user, |i| i["name"] == user.as_str()).await?;
        ensure!(acct["new"]["login_allowed"] == false, "nologin account may not log in: {acct}");
        ensure!(acct["new"]["root_equivalent"] == false, "{acct}");
        let passwd = std::fs::read_to_string("/etc/passwd")?;
        let uid = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .and_then(|l| l.split(':').nth(2))
            .unwrap_or_default()
            .to_string();
        let uid: u64 = uid.parse().with_context(|| format!("uid {uid:?} in /etc/passwd"))?;
        ensure!(acct["new"]["uid"] == uid, "uid {uid} from /etc/passwd: {acct}");

        std::fs::create_dir_all("/etc/cron.d")?;
        let line = format!("*/5 * * * * root /bin/true hostward-{tag}");
        std::fs::write(&cron_file, format!("# test\n{line}\n"))?;
        let cron_path = cron_file.display().to_string();
        let entry = wait_change(&api, &server, "autostart", "added", &cron_path, |i| {
            i["path"] == cron_path.as_str() && i["category"] == "cron"
        })
        .await?;
        ensure!(entry["new"]["entry"] == line.as_str(), "{entry}");
        ensure!(
            entry["new"]["sha256"] == sha256_hex(&line)?.as_str(),
            "the entry's hash is the line's SHA-256: {entry}"
        );
        ensure!(entry["new"]["user"] == "root", "{entry}");

        // The fleet views find the new account and the history has it too.
        let fleet = api
            .get(&format!("/api/v1/assets/accounts?q={user}"))
            .await?
            .expect(200)?;
        ensure!(fleet.json["total"] == 1 && fleet.json["items"][0]["servers"] == 1, "{}", fleet.text);
        let csv = api
            .get(&format!("/api/v1/servers/{server}/inventory/changes?format=csv&kind=accounts"))
            .await?
            .expect(200)?;
        ensure!(csv.text.lines().next() == Some("ts,server,server_id,kind,change,name,key,fields,old,new"), "{}", csv.text);
        ensure!(csv.text.contains(&user), "CSV export lists the new account: {}", csv.text);

        // The agent's record of what it sent is lost: its next diff names a base the center does
        // not hold. The center must ask for a full snapshot and end up with the truth.
        let state_file = agent.state_dir.join("inventory/accounts.json");
        let mut sent: Value = serde_json::from_str(&std::fs::read_to_string(&state_file)?)?;
        sent["digest"] = json!("not-what-the-center-holds");
        std::fs::write(&state_file, sent.to_string())?;
        let out = run_cmd(std::path::Path::new("userdel"), std::slice::from_ref(&user), None).await?;
        ensure!(out.success(), "userdel failed: {}", out.text());
        wait_until("the removed account to leave the inventory", secs(30), millis(250), || async {
            let found = items(&api, &server, "accounts", &user).await?;
            ensure!(found.is_empty(), "still listed: {found:?}");
            Ok(())
        })
        .await?;
        let resync = api
            .get(&format!("/api/v1/servers/{server}/tasks"))
            .await?
            .expect(200)?;
        ensure!(
            resync.text.contains("collect_inventory") && resync.text.contains("\"full\":true"),
            "the center asked for a full snapshot: {}",
            resync.text
        );
        wait_change(&api, &server, "accounts", "removed", &user, |i| i["name"] == user.as_str()).await?;

        // Collect now, as a task.
        let t = api
            .post(
                &format!("/api/v1/servers/{server}/tasks"),
                json!({"kind": "collect_inventory", "params": {"kinds": ["accounts"]}}),
            )
            .await?
            .expect(201)?;
        let id = t.json["items"][0]["id"].as_str().unwrap_or_default().to_string();
        let done = wait_until("collect_inventory to be done", secs(30), millis(200), || async {
            let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
            ensure!(t.json["state"] == "done", "task is {}", t.json["state"]);
            Ok(t.json)
        })
        .await?;
        ensure!(
            done["output"][0]["kind"] == "accounts" && done["output"][0]["items"].as_i64() > Some(0),
            "collect_now output: {done}"
        );
        let bad = api
            .post(
                &format!("/api/v1/servers/{server}/tasks"),
                json!({"kind": "collect_inventory", "params": {"kinds": ["secrets"]}}),
            )
            .await?;
        ensure!(bad.status == 400 && bad.text.contains("params"), "{} {}", bad.status, bad.text);
        Ok(())
    })
    .await
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read as _;
        f.read_exact(&mut b)
    });
    u32::from_le_bytes(b)
}
