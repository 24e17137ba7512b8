//! Editions end to end with a real agent, real daemons and real attacks:
//!
//! - switching a server from professional to premium turns ransomware protection (a premium
//!   module) on in its running agent within seconds, without reinstalling or restarting it:
//!   the bait files appear in the watched directory; the time is printed; a change of its
//!   custom policy group's ransomware policy is in effect on it likewise (printed too);
//! - a basic-edition server raises brute-force alarms for a real `hydra` attack on a real
//!   sshd, in network namespaces this test creates, and blocks nothing: the attacker stays out
//!   of the agent's nftables sets and still reaches sshd; a manual block is refused by the
//!   center; back on professional, blocks work again.

use std::path::Path;
use std::time::Instant;

use hostward_e2e::lab::*;
use hostward_e2e::*;
use serde_json::{Value, json};

/// The bait files (`!0-…`, `~z-…`) ransomware protection keeps in `dir`.
fn baits(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with("!0-") || name.starts_with("~z-") {
            out.push(name);
        }
    }
    Ok(out)
}

async fn bind(api: &Api, server: &str, edition: Option<&str>) -> Result<Value> {
    Ok(api
        .put(
            &format!("/api/v1/servers/{server}/edition"),
            json!({ "edition": edition }),
        )
        .await?
        .expect(200)?
        .json)
}

/// How many configs the agent's current run has applied (its log says so for each).
fn configs_applied(agent: &Agent) -> usize {
    agent.stderr().matches("config applied").count()
}

/// Waits until the agent applied a config after the `before`-th one.
async fn wait_config(agent: &Agent, before: usize) -> Result<()> {
    wait_until(
        "the agent to apply its new config",
        secs(15),
        millis(20),
        || async {
            ensure!(
                configs_applied(agent) > before,
                "still {before} configs applied"
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn switching_professional_to_premium_turns_ransomware_protection_on_in_the_running_agent()
-> Result<()> {
    let env = TestEnv::new("editions-switch");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = Agent::start(&env, &center, "files").await?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        let pid = agent.proc()?.pid();
        let project = server_of(&api.server_detail(&server).await?)["project_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let data = env.subdir("data");
        std::fs::write(data.join("ledger.txt"), "figures\n")?;
        let before = configs_applied(&agent);
        bind(&api, &server, Some("professional")).await?;
        wait_config(&agent, before).await?;
        // Professional has no ransomware protection: the policy arrives and nothing is deployed.
        let before = configs_applied(&agent);
        api.put(
            &format!("/api/v1/projects/{project}/ransom-policy"),
            json!({"enabled": true, "directories": [data.display().to_string()], "random_bait": false}),
        )
        .await?
        .expect(200)?;
        wait_config(&agent, before).await?;
        let r = server_of(&api.server_detail(&server).await?).clone();
        ensure!(r["edition"] == "professional", "{r}");
        ensure!(baits(&data)?.is_empty(), "baits under professional: {:?}", baits(&data)?);

        let started = Instant::now();
        let s = bind(&api, &server, Some("premium")).await?;
        ensure!(s["edition"] == "premium" && s["protection_status"] == "enabled", "{s}");
        let deployed = wait_until("the bait files", secs(30), millis(10), || async {
            let b = baits(&data)?;
            ensure!(b.len() == 2, "baits: {b:?}");
            Ok(b)
        })
        .await?;
        let took = started.elapsed();
        println!(
            "edition switch professional -> premium: ransomware protection on in the agent {:.0} ms after the API call (goal: within 5 s)",
            took.as_secs_f64() * 1000.0
        );
        ensure!(
            agent.proc()?.pid() == pid && agent.is_running(),
            "the agent was not restarted, let alone reinstalled"
        );
        // A custom policy group (premium has them): the server moves to a copy of the
        // default, whose ransomware policy then watches a second directory.
        let group = api
            .post(
                &format!("/api/v1/projects/{project}/policy-groups"),
                json!({"name": "file servers"}),
            )
            .await?
            .expect(201)?
            .json["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.put(
            &format!("/api/v1/servers/{server}/policy-group"),
            json!({"group_id": group}),
        )
        .await?
        .expect(200)?;
        let shares = env.subdir("shares");
        let started = Instant::now();
        api.put(
            &format!("/api/v1/policy-groups/{group}/policies/ransom"),
            json!({"enabled": true, "random_bait": false,
                   "directories": [data.display().to_string(), shares.display().to_string()]}),
        )
        .await?
        .expect(200)?;
        wait_until("the baits in the group's new directory", secs(30), millis(10), || async {
            ensure!(baits(&shares)?.len() == 2, "baits: {:?}", baits(&shares)?);
            Ok(())
        })
        .await?;
        println!(
            "policy group change: in effect on the group's agent {:.0} ms after the API call (goal: within 5 s)",
            started.elapsed().as_secs_f64() * 1000.0
        );

        // And back to professional: the module stops and takes its baits away; the server
        // leaves the custom group, which its new edition does not have.
        let s = bind(&api, &server, Some("professional")).await?;
        ensure!(s["policy_group_id"].is_null(), "{s}");
        wait_until("the baits to go", secs(30), millis(20), || async {
            ensure!(
                baits(&data)?.is_empty() && baits(&shares)?.is_empty(),
                "still {deployed:?}"
            );
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_basic_edition_server_alarms_on_a_real_brute_force_and_blocks_nothing() -> Result<()> {
    let env = TestEnv::new("editions-basic");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/sshd", "python3"]).await?;
        let n = Netns::new().await?;
        let sshd = Sshd::start(&env, &n, &[]).await?;
        let (dir, log) = (sshd.dir.clone(), sshd.log.clone());
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = lab_agent(&env, &center, &n, "victim", &[("ssh", &log)]).await?;
        let server = agent.server_id.clone();
        let before = configs_applied(&agent);
        let s = bind(&api, &server, Some("basic")).await?;
        ensure!(s["edition"] == "basic", "{s}");
        wait_config(&agent, before).await?;

        // A manual block is refused by the center, saying why.
        let r = api
            .post(
                &format!("/api/v1/servers/{server}/blocked-ips"),
                json!({"addr": ATTACKER_IP, "minutes": 5}),
            )
            .await?
            .expect(409)?;
        ensure!(
            r.error_message()
                .contains("basic edition, which detects and never blocks"),
            "{}",
            r.text
        );

        let words = dir.join("words.txt");
        let list: Vec<String> = (0..20).map(|i| format!("wrong-{i}")).collect();
        std::fs::write(&words, list.join("\n") + "\n")?;
        let mut cmd = n.attacker_cmd("timeout");
        cmd.args(["--foreground", "60", "hydra", "-l", "root", "-P"])
            .arg(&words)
            .args(["-t", "4", "-I", &format!("ssh://{VICTIM_IP}")]);
        let mut hydra = Proc::spawn(&env, "hydra[attacker]", cmd, &dir, "hydra")?;
        let alarm = wait_alarm(&api, "brute_force", ATTACKER_IP).await?;
        ensure!(alarm["count"].as_i64() >= Some(5), "{alarm}");
        // hydra runs through its whole list: nothing stops it.
        hydra.wait(secs(90)).await?;
        ensure!(
            !n.blocked().await?.contains(ATTACKER_IP),
            "the attacker is in a block set: {}",
            n.blocked().await?
        );
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "the attacker still reaches sshd"
        );
        ensure!(
            alarm["evidence"]["blocked_until"].is_null(),
            "the alarm claims a block: {alarm}"
        );
        let blocked = api
            .get(&format!("/api/v1/servers/{server}/blocked-ips"))
            .await?
            .expect(200)?;
        ensure!(
            blocked.json["items"]
                .as_array()
                .is_some_and(|a| a.is_empty()),
            "{}",
            blocked.text
        );

        // Professional blocks again, without touching the agent.
        let before = configs_applied(&agent);
        bind(&api, &server, Some("professional")).await?;
        wait_config(&agent, before).await?;
        let r = api
            .post(
                &format!("/api/v1/servers/{server}/blocked-ips"),
                json!({"addr": ATTACKER_IP, "minutes": 5}),
            )
            .await?
            .expect(201)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;
        n.wait_blocked(ATTACKER_IP).await?;
        Ok(())
    })
    .await
}
