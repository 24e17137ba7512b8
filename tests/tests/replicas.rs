//! Scale-out: two stateless center replicas on one PostgreSQL database, sharing the CA files. An
//! agent connected to replica B is managed entirely through replica A: its status, a task, the
//! project's inventory policy and the protection switch reach it, its inventory is stored, and
//! revoking it through A closes its session on B within about a second.

use std::time::Instant;

use hostward_e2e::*;
use serde_json::{Value, json};

#[tokio::test]
async fn an_agent_on_one_replica_is_managed_through_the_other() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("replicas");
    env.run(async {
        let a = Center::start(&env, Backend::Postgres, CenterOpts::default()).await?;
        let b = a.start_replica(&env).await?;
        let api = a.api();

        // Enrolled through A, connected to B.
        let token = a.create_token(&["--name", "replicas"]).await?;
        let mut agent = Agent::new(&env, "on-b");
        agent.enroll(&env, &a, &token.secret).await?;
        let id_file = agent.state_dir.join("identity.json");
        let mut identity: Value = serde_json::from_str(&std::fs::read_to_string(&id_file)?)?;
        identity["gateway_url"] = json!(b.gateway_url());
        std::fs::write(&id_file, identity.to_string())?;
        agent.run(&env)?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        agent.wait_log("connected to the center", secs(10)).await?;
        ensure!(
            agent
                .stderr()
                .contains(&format!("127.0.0.1:{}", b.gateway_port)),
            "the agent is connected to replica B"
        );

        // Its inventory, sent to B, is visible through A.
        wait_until("inventory through A", secs(60), millis(250), || async {
            let r = api
                .get(&format!(
                    "/api/v1/servers/{server}/inventory/accounts?q=root"
                ))
                .await?
                .expect(200)?;
            ensure!(r.json["total"].as_i64() > Some(0), "no accounts yet");
            Ok(())
        })
        .await?;

        // A task created on A is delivered by B's poller.
        let t = api
            .post(
                &format!("/api/v1/servers/{server}/tasks"),
                json!({"kind": "ping"}),
            )
            .await?
            .expect(201)?;
        let task = t.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        wait_until(
            "the ping task to be done",
            secs(30),
            millis(200),
            || async {
                let t = api
                    .get(&format!("/api/v1/tasks/{task}"))
                    .await?
                    .expect(200)?;
                ensure!(t.json["state"] == "done", "task is {}", t.json["state"]);
                Ok(())
            },
        )
        .await?;

        // Config changes made on A reach the agent on B: the project's inventory policy, then
        // the protection switch.
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.put(
            &format!("/api/v1/projects/{project}/inventory-policy"),
            json!({"interval_secs": {"ports": 5}, "ignored_ports": [5432]}),
        )
        .await?
        .expect(200)?;
        wait_until(
            "the policy to reach the agent",
            secs(15),
            millis(100),
            || async {
                let log = agent.stderr();
                let applied = log.lines().filter(|l| l.contains("config applied")).count();
                ensure!(applied >= 2, "config applied {applied} times");
                Ok(())
            },
        )
        .await?;
        api.put(
            &format!("/api/v1/servers/{server}/protection"),
            json!({"enabled": false}),
        )
        .await?
        .expect(200)?;
        agent
            .wait_log("\"protection_enabled\":false", secs(15))
            .await?;

        // Revoked through A: B closes the session within about a second.
        let t0 = Instant::now();
        api.send("POST", &format!("/api/v1/servers/{server}/revoke"), None)
            .await?
            .expect(200)?;
        agent.wait_log("revoked", secs(5)).await?;
        let took = t0.elapsed();
        eprintln!("revocation through replica A closed the session on B after {took:?}");
        api.wait_status(&server, "offline", Some("revoked"), secs(15))
            .await?;
        Ok(())
    })
    .await
}
