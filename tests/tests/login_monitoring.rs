//! Login monitoring end to end with real parts, in the lab (`hostward_e2e::lab`): a real
//! OpenSSH server in the victim namespace whose log the agent follows, and a real `ssh` client
//! logging in with a key from the attacker namespace, bound to two extra addresses, X and Y
//! (`ssh -b`). The first login, from X, is learned: X shows at the center in the server's usual
//! login addresses as `learned`. An admin then keeps X and switches learning off; a login from Y
//! raises `unusual_login_ip` with Y and the user, X stays silent, and after an agent restart the
//! center's list still applies.

use std::path::Path;

use hostward_e2e::lab::{self, Netns, Sshd, VICTIM_IP};
use hostward_e2e::*;
use serde_json::{Value, json};

const X: &str = "10.79.0.12";
const Y: &str = "10.79.0.13";

/// A real key login from `from` (one of the attacker namespace's addresses); must succeed.
async fn login(n: &Netns, key: &Path, user: &str, from: &str) -> Result<()> {
    let key = key.display().to_string();
    let target = format!("{user}@{VICTIM_IP}");
    let out = n
        .in_attacker(
            &[
                "ssh",
                "-i",
                &key,
                "-b",
                from,
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                &target,
                "true",
            ],
            secs(20),
        )
        .await?;
    ensure!(out.success(), "ssh from {from} as {user} failed: {out}");
    Ok(())
}

/// The `unusual_login_ip` alarms from `source`, summed.
async fn unusual_count(api: &Api, server: &str, source: &str) -> Result<i64> {
    let r = api
        .get(&format!(
            "/api/v1/alarms?type=unusual_login_ip&server={server}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["source_ip"] == source)
        .map(|a| a["count"].as_i64().unwrap_or(0))
        .sum())
}

async fn wait_unusual(api: &Api, server: &str, source: &str, at_least: i64) -> Result<()> {
    wait_until(
        &format!("{at_least} unusual-address login(s) from {source} at the center"),
        secs(30),
        millis(200),
        || async {
            let n = unusual_count(api, server, source).await?;
            ensure!(n >= at_least, "{n} so far");
            Ok(())
        },
    )
    .await
}

fn addrs(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["addr"].as_str().unwrap_or_default().to_string(),
                e["origin"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn usual_login_addresses_are_learned_edited_and_enforced_with_a_real_sshd() -> Result<()> {
    let env = TestEnv::new("login-monitoring");
    env.run(async {
        lab::require_tools(&["ssh", "ssh-keygen", "/usr/sbin/sshd", "nft"]).await?;
        let n = Netns::new().await?;
        for addr in [X, Y] {
            n.add_attacker_addr(addr).await?;
        }
        // The client's key, authorized for a fresh local account through a file of our own.
        let acct = lab::KeyAccount::new(&env, "lm").await?;
        let (client_key, user) = (acct.key.clone(), acct.user.clone());
        let opts = acct.sshd_options();
        let sshd = Sshd::start(&env, &n, &[&opts[0], &opts[1]]).await?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = lab::lab_agent(&env, &center, &n, "victim", &[("ssh", &sshd.log)]).await?;
        let server = agent.server_id.clone();
        // The config (with the server's list) follows hello; its apply is not awaited.
        tokio::time::sleep(secs(1)).await;
        let list_uri = format!("/api/v1/servers/{server}/login-ips");
        let list = api.get(&list_uri).await?.expect(200)?;
        ensure!(
            list.json["learning"] == true && addrs(&list.json).is_empty(),
            "a new server learns, from nothing: {}",
            list.text
        );

        // The first login, from X, is learned and reported.
        login(&n, &client_key, &user, X).await?;
        wait_until(
            "X in the server's list as learned",
            secs(30),
            millis(200),
            || async {
                let l = api.get(&list_uri).await?.expect(200)?;
                ensure!(
                    addrs(&l.json) == [(X.to_string(), "learned".to_string())],
                    "{}",
                    l.text
                );
                Ok(())
            },
        )
        .await?;
        ensure!(
            unusual_count(&api, &server, X).await? == 0,
            "a learned login does not alarm"
        );

        // An admin keeps X and stops learning.
        let bad = api
            .put(
                &list_uri,
                json!({"ips": [X, "10.79.0.256"], "learning": false}),
            )
            .await?
            .expect(400)?;
        ensure!(bad.error_message().starts_with("ips[1]"), "{}", bad.text);
        let put = api
            .put(&list_uri, json!({"ips": [X], "learning": false}))
            .await?
            .expect(200)?;
        ensure!(
            addrs(&put.json) == [(X.to_string(), "learned".to_string())]
                && put.json["learning"] == false,
            "{}",
            put.text
        );
        tokio::time::sleep(secs(1)).await;

        // Y is unusual; X stays silent. Records arrive in order: once Y's second login is
        // counted, X's login in between has been judged too.
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 1).await?;
        let r = api
            .get(&format!(
                "/api/v1/alarms?type=unusual_login_ip&server={server}"
            ))
            .await?
            .expect(200)?;
        let alarm = r.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["source_ip"] == Y)
            .cloned()
            .unwrap_or_default();
        ensure!(
            alarm["evidence"]["users"] == json!([user]) && alarm["evidence"]["service"] == "ssh",
            "{alarm}"
        );
        ensure!(
            alarm["evidence"]["lines"][0]
                .as_str()
                .is_some_and(|l| l.contains(&format!("Accepted publickey for {user} from {Y}"))),
            "the login's own line: {alarm}"
        );
        login(&n, &client_key, &user, X).await?;
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 2).await?;
        ensure!(unusual_count(&api, &server, X).await? == 0, "X is usual");
        let l = api.get(&list_uri).await?.expect(200)?;
        ensure!(
            addrs(&l.json) == [(X.to_string(), "learned".to_string())],
            "learning off: Y was not added: {}",
            l.text
        );

        // After an agent restart the center's list applies again.
        agent.term().await?;
        lab::run_lab_agent(&env, &mut agent)?;
        api.wait_status(&server, "online", None, secs(30)).await?;
        tokio::time::sleep(secs(1)).await;
        login(&n, &client_key, &user, X).await?;
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 3).await?;
        ensure!(
            unusual_count(&api, &server, X).await? == 0,
            "X is still usual after the restart"
        );
        let l = api.get(&list_uri).await?.expect(200)?;
        ensure!(
            addrs(&l.json) == [(X.to_string(), "learned".to_string())]
                && l.json["learning"] == false,
            "the list is unchanged: {}",
            l.text
        );
        Ok(())
    })
    .await
}
