//! Issue 18, part 7 (the SSH login whitelist) end to end with real parts, in network
//! namespaces this test creates: a real OpenSSH server in the "victim" namespace, the agent's
//! nftables table there too, a real center. The whitelist is set through the API (first
//! refused, naming the address, when it would lock the caller out); within seconds the agent
//! reports it applied; a connection from a listed attacker address reaches sshd and one from
//! an unlisted address does not (IPv4 and IPv6); a ruleset flush from outside is repaired;
//! switched off, everyone reaches sshd again.
//! The agent reads sshd's ports from a fixture root, so the host's own sshd_config plays no
//! part.

use hostward_e2e::lab::*;
use hostward_e2e::*;
use serde_json::{Value, json};

const UNLISTED: &str = "10.79.0.3";
const UNLISTED6: &str = "fd79::3";

/// The whitelist as the API shows it, once the agent's report says `state`.
async fn wait_report(api: &Api, server: &str, state: &str) -> Result<Value> {
    wait_until(
        &format!("the agent to report the SSH whitelist {state}"),
        secs(30),
        millis(100),
        || async {
            let r = api
                .get(&format!("/api/v1/servers/{server}/ssh-whitelist"))
                .await?
                .expect(200)?;
            ensure!(r.json["report"]["state"] == state, "not yet: {}", r.text);
            Ok(r.json)
        },
    )
    .await
}

#[tokio::test]
async fn only_listed_addresses_reach_sshd_while_the_whitelist_is_on() -> Result<()> {
    let env = TestEnv::new("ssh_whitelist");
    env.run(async {
        require_tools(&["nft", "/usr/sbin/sshd", "python3"]).await?;
        let n = Netns::new().await?;
        n.add_attacker_addr(UNLISTED).await?;
        n.add_attacker_addr(UNLISTED6).await?;
        let sshd = Sshd::start(&env, &n, &[]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = lab_agent(&env, &center, &n, "victim", &[("ssh", &sshd.log)]).await?;
        let server = agent.server_id.clone();

        // Restarted on a root whose sshd_config (through an Include) names port 22.
        let root = env.subdir("root");
        std::fs::create_dir_all(root.join("etc/ssh/sshd_config.d"))?;
        std::fs::write(
            root.join("etc/ssh/sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\n",
        )?;
        std::fs::write(root.join("etc/ssh/sshd_config.d/10-port.conf"), "Port 22\n")?;
        agent.term().await?;
        let toml_path = agent.dir.join("agent.toml");
        let toml = std::fs::read_to_string(&toml_path)?;
        std::fs::write(
            &toml_path,
            format!("inventory_root = {:?}\n{toml}", root.display().to_string()),
        )?;
        run_lab_agent(&env, &mut agent)?;
        api.wait_status(&server, "online", None, secs(30)).await?;
        wait_report(&api, &server, "off").await?;
        for from in [ATTACKER_IP, UNLISTED] {
            ensure!(
                n.can_connect(Some(from), VICTIM_IP, 22).await?,
                "{from} reaches sshd before the whitelist"
            );
        }

        // The test's API client comes from 127.0.0.1: a list without it would lock it out.
        let uri = format!("/api/v1/servers/{server}/ssh-whitelist");
        let r = api
            .put(
                &uri,
                json!({"enabled": true, "addrs": [ATTACKER_IP, ATTACKER_IP6]}),
            )
            .await?;
        ensure!(
            r.status == 409 && r.error_code() == "would_lock_you_out",
            "{} {}",
            r.status,
            r.text
        );
        ensure!(r.error_message().contains("127.0.0.1"), "{}", r.text);
        let off = api.get(&uri).await?.expect(200)?;
        ensure!(off.json["enabled"] == false, "nothing stored: {}", off.text);

        let listed = json!({"enabled": true,
            "addrs": ["127.0.0.1", format!("{ATTACKER_IP}/32"), ATTACKER_IP6]});
        api.put(&uri, listed).await?.expect(200)?;
        let body = wait_report(&api, &server, "applied").await?;
        ensure!(
            body["report"]["ports"] == json!([22]) && body["report"]["addrs"] == 3,
            "{body}"
        );
        ensure!(
            n.can_connect(Some(ATTACKER_IP), VICTIM_IP, 22).await?,
            "a listed address reaches sshd"
        );
        ensure!(
            n.can_connect(Some(ATTACKER_IP6), VICTIM_IP6, 22).await?,
            "a listed IPv6 address reaches sshd"
        );
        ensure!(
            !n.can_connect(Some(UNLISTED), VICTIM_IP, 22).await?,
            "an unlisted address must not reach sshd"
        );
        ensure!(
            !n.can_connect(Some(UNLISTED6), VICTIM_IP6, 22).await?,
            "an unlisted IPv6 address must not reach sshd"
        );

        // Removed from outside (a ruleset flush): the agent puts the chain back.
        let args = ["netns", "exec", &n.victim, "nft", "flush", "ruleset"].map(String::from);
        run_cmd(std::path::Path::new("ip"), &args, None)
            .await?
            .ok()?;
        wait_until(
            "the whitelist chain to be put back",
            secs(30),
            millis(500),
            || async {
                ensure!(
                    !n.can_connect(Some(UNLISTED), VICTIM_IP, 22).await?,
                    "the unlisted address still gets through"
                );
                Ok(())
            },
        )
        .await?;
        ensure!(
            n.can_connect(Some(ATTACKER_IP), VICTIM_IP, 22).await?,
            "a listed address still reaches sshd"
        );

        // Off: the chain goes, everyone reaches sshd again.
        api.put(&uri, json!({"enabled": false, "addrs": []}))
            .await?
            .expect(200)?;
        wait_report(&api, &server, "off").await?;
        ensure!(
            n.can_connect(Some(UNLISTED), VICTIM_IP, 22).await?,
            "with the whitelist off an unlisted address reaches sshd again"
        );
        ensure!(
            n.can_connect(Some(UNLISTED6), VICTIM_IP6, 22).await?,
            "with the whitelist off an unlisted IPv6 address reaches sshd again"
        );
        Ok(())
    })
    .await
}
