//! Center -> agent push with real processes: a task sent to two agents, one of them offline,
//! is done on the online one, waits for the offline one, and is done when it reconnects; task
//! states are tracked. Also the invariant "the agent never opens a listening port", read from
//! /proc while the agent is connected and working.

use std::collections::HashSet;

use hostward_e2e::*;
use serde_json::{Value, json};

async fn task_state(api: &Api, id: &str) -> Result<String> {
    let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
    Ok(t.json["state"].as_str().unwrap_or_default().to_string())
}

async fn wait_task(api: &Api, id: &str, want: &str) -> Result<Value> {
    wait_until(
        &format!("task {id} to be {want}"),
        secs(30),
        millis(200),
        || async {
            let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
            ensure!(t.json["state"] == want, "task is {}", t.json["state"]);
            Ok(t.json)
        },
    )
    .await
}

#[tokio::test]
async fn task_waits_for_an_offline_agent_and_is_delivered_on_reconnect() -> Result<()> {
    let env = TestEnv::new("tasks");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let online = Agent::start(&env, &center, "online").await?;
        let mut away = Agent::start(&env, &center, "away").await?;
        api.wait_status(&online.server_id, "online", None, secs(30))
            .await?;
        api.wait_status(&away.server_id, "online", None, secs(30))
            .await?;
        away.term().await?;
        api.wait_status(&away.server_id, "offline", Some("agent_stopped"), secs(30))
            .await?;

        let created = api
            .post(
                "/api/v1/tasks",
                json!({ "server_ids": [online.server_id, away.server_id], "kind": "ping" }),
            )
            .await?
            .expect_success()?;
        let items = created.json["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            items.len() == 2,
            "want one task per server: {}",
            created.text
        );
        let task_of = |server: &str| -> Result<String> {
            items
                .iter()
                .find(|t| t["server_id"] == server)
                .and_then(|t| t["id"].as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("no task for server {server}: {}", created.text))
        };
        let (t_online, t_away) = (task_of(&online.server_id)?, task_of(&away.server_id)?);

        let done = wait_task(&api, &t_online, "done").await?;
        ensure!(done["output"]["pong"] == true, "ping output: {done}");
        // Time for the poller to have tried, had it wrongly sent the task anywhere.
        tokio::time::sleep(secs(2)).await;
        let waiting = task_state(&api, &t_away).await?;
        ensure!(
            waiting == "queued",
            "the offline agent's task is {waiting}, want queued"
        );

        away.run(&env)?;
        api.wait_status(&away.server_id, "online", None, secs(30))
            .await?;
        let done = wait_task(&api, &t_away, "done").await?;
        ensure!(
            done["output"]["pong"] == true,
            "ping output after reconnect: {done}"
        );

        // An unknown kind is refused by the API (400), never sent to an agent.
        let bad = api
            .post(
                &format!("/api/v1/servers/{}/tasks", online.server_id),
                json!({ "kind": "rm_rf" }),
            )
            .await?;
        ensure!(
            bad.status == 400,
            "unknown task kind answered {}: {}",
            bad.status,
            bad.text
        );
        Ok(())
    })
    .await
}

/// Socket inodes of a process, from its fd table.
fn socket_inodes(pid: i32) -> Result<HashSet<u64>> {
    let mut out = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(entry?.path())?;
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            out.insert(inode.parse()?);
        }
    }
    Ok(out)
}

/// (inode, state) of every socket in a /proc/net table; TCP state 0A is LISTEN, and any bound
/// UDP socket would accept datagrams.
fn net_table(path: &str) -> Result<Vec<(u64, String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.get(9)?.parse().ok()?,
                f.get(3)?.to_string(),
                f.get(1)?.to_string(),
            ))
        })
        .collect())
}

#[tokio::test]
async fn the_agent_never_opens_a_listening_port() -> Result<()> {
    let env = TestEnv::new("no-listen");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = Agent::start(&env, &center, "a").await?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        // Make it do some work first: records and a task.
        agent.emit("probe", 5).await?.ok()?;
        let t = api
            .post(
                &format!("/api/v1/servers/{}/tasks", agent.server_id),
                json!({ "kind": "collect_facts" }),
            )
            .await?
            .expect_success()?;
        let id = t.json["items"][0]["id"]
            .as_str()
            .or(t.json["id"].as_str())
            .unwrap_or_default()
            .to_string();
        wait_task(&api, &id, "done").await?;

        let pid = agent.proc()?.pid().as_raw();
        let mine = socket_inodes(pid)?;
        ensure!(
            !mine.is_empty(),
            "the agent holds no socket at all: it should hold its connection to the center"
        );
        let mut connected = 0;
        for (table, listen_state) in [
            ("/proc/net/tcp", "0A"),
            ("/proc/net/tcp6", "0A"),
            ("/proc/net/udp", ""),
            ("/proc/net/udp6", ""),
        ] {
            for (inode, state, local) in net_table(table)? {
                if !mine.contains(&inode) {
                    continue;
                }
                ensure!(
                    !table.contains("udp"),
                    "the agent has a UDP socket bound at {local} ({table})"
                );
                ensure!(
                    state != listen_state,
                    "the agent listens on {local} ({table})"
                );
                connected += 1;
            }
        }
        ensure!(
            connected >= 1,
            "the agent's connection to the center was not found in /proc/net"
        );
        Ok(())
    })
    .await
}
