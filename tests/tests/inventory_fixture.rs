//! A real agent whose collectors read a fixture root with damaged files: a truncated dpkg status,
//! a passwd line with 5 fields, binary garbage in a crontab. The center must show, per kind, an
//! issue naming the file and line; everything else in those files is still collected; the agent
//! keeps running and stays online.

use hostward_e2e::*;
use serde_json::{Value, json};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
broken:x:1001:1001:five\n\
alice:x:1000:1000:Alice:/home/alice:/bin/bash\n";
const SHADOW: &str = "root:$6$salt$hash:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n";
const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n";
const DPKG: &str = "Package: openssl\n\
Status: install ok installed\n\
Architecture: amd64\n\
Version: 3.0.11-1~deb12u2\n\
Maintainer: Debian OpenSSL Team\n\
\n\
Package: curl\n\
Status: install ok installed\n\
Architecture: amd64\n\
Version: 7.88.1-10+deb12u5\n\
\n\
Package: trunc\n\
Status: install ok inst";

async fn kind_summary(api: &Api, server: &str, kind: &str) -> Result<Value> {
    let s = api
        .get(&format!("/api/v1/servers/{server}/inventory"))
        .await?
        .expect(200)?;
    s.json["kinds"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kind"] == kind)
        .cloned()
        .ok_or_else(|| anyhow!("no {kind} inventory yet: {}", s.text))
}

fn issue_for(summary: &Value, file: &str) -> Option<Value> {
    summary["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["file"] == file)
        .cloned()
}

async fn names(api: &Api, server: &str, kind: &str) -> Result<Vec<String>> {
    let r = api
        .get(&format!(
            "/api/v1/servers/{server}/inventory/{kind}?per_page=1000"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect())
}

#[tokio::test]
async fn damaged_files_are_reported_by_file_and_line_and_the_rest_is_collected() -> Result<()> {
    let env = TestEnv::new("inventory-fixture");
    env.run(async {
        let root = env.subdir("fixture-root");
        let write = |path: &str, bytes: &[u8]| -> Result<()> {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap())?;
            std::fs::write(&p, bytes)?;
            Ok(())
        };
        write("etc/passwd", PASSWD.as_bytes())?;
        write("etc/shadow", SHADOW.as_bytes())?;
        write("etc/group", GROUP.as_bytes())?;
        write("var/lib/dpkg/status", DPKG.as_bytes())?;
        let mut cron =
            b"SHELL=/bin/sh\n17 * * * * root cd / && run-parts /etc/cron.hourly\n".to_vec();
        cron.extend_from_slice(b"\x00\x01\xfe\xff garbage \x07\n");
        cron.extend_from_slice(b"@reboot root /usr/local/bin/keepalive\n");
        write("etc/crontab", &cron)?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let token = center.create_token(&["--name", "fixture"]).await?;
        let mut agent = Agent::new(&env, "fixture");
        agent.enroll(&env, &center, &token.secret).await?;
        let config = agent.dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\ninventory_root = {:?}\n",
                agent.state_dir.display().to_string(),
                root.display().to_string()
            ),
        )?;
        agent.run_with(&env, &["--config", &config.display().to_string()])?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        let server = agent.server_id.clone();

        let accounts = wait_until("accounts with an issue", secs(60), millis(250), || async {
            let s = kind_summary(&api, &server, "accounts").await?;
            issue_for(&s, "/etc/passwd").ok_or_else(|| anyhow!("no /etc/passwd issue: {s}"))
        })
        .await?;
        ensure!(
            accounts["line"] == 2,
            "the 5-field line is line 2: {accounts}"
        );
        let got = names(&api, &server, "accounts").await?;
        ensure!(
            got.contains(&"root".to_string())
                && got.contains(&"alice".to_string())
                && !got.contains(&"broken".to_string()),
            "the good accounts are collected, the broken one is not: {got:?}"
        );
        let alice = api
            .get(&format!(
                "/api/v1/servers/{server}/inventory/accounts?q=alice"
            ))
            .await?
            .expect(200)?;
        ensure!(
            alice.json["items"][0]["data"]["root_equivalent"] == true
                && alice.json["items"][0]["data"]["password"] == "locked",
            "alice is root-equivalent through sudo and locked: {}",
            alice.text
        );
        ensure!(
            !alice.text.contains("$6$"),
            "no password hash leaves the host: {}",
            alice.text
        );

        let software = wait_until("software with an issue", secs(60), millis(250), || async {
            let s = kind_summary(&api, &server, "software").await?;
            issue_for(&s, "/var/lib/dpkg/status").ok_or_else(|| anyhow!("no dpkg issue: {s}"))
        })
        .await?;
        ensure!(
            software["line"].as_i64().is_some(),
            "the dpkg issue names a line: {software}"
        );
        let got = names(&api, &server, "software").await?;
        ensure!(
            got == ["curl", "openssl"],
            "complete stanzas are collected: {got:?}"
        );

        let autostart = wait_until("autostart with an issue", secs(60), millis(250), || async {
            let s = kind_summary(&api, &server, "autostart").await?;
            issue_for(&s, "/etc/crontab").ok_or_else(|| anyhow!("no crontab issue: {s}"))
        })
        .await?;
        ensure!(autostart["line"] == 3, "the garbage is line 3: {autostart}");
        let r = api
            .get(&format!(
                "/api/v1/servers/{server}/inventory/autostart?q=crontab"
            ))
            .await?
            .expect(200)?;
        let entries: Vec<&str> = r.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["data"]["entry"].as_str())
            .collect();
        ensure!(
            entries.iter().any(|e| e.contains("run-parts"))
                && entries.iter().any(|e| e.contains("keepalive")),
            "the lines around the garbage are collected: {entries:?}"
        );

        // Still running, still online, and "collect now" still works.
        ensure!(agent.is_running(), "the agent exited");
        let t = api
            .post(
                &format!("/api/v1/servers/{server}/tasks"),
                json!({"kind": "collect_inventory", "params": {"full": true}}),
            )
            .await?
            .expect(201)?;
        let id = t.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        wait_until("collect_inventory done", secs(30), millis(200), || async {
            let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
            ensure!(t.json["state"] == "done", "task is {}", t.json["state"]);
            Ok(())
        })
        .await?;
        ensure!(agent.is_running(), "the agent exited");
        let s = api.server(&server).await?;
        ensure!(s["agent_status"] == "online", "{}", status_line(&s));
        Ok(())
    })
    .await
}
