//! Must hold #1: a real center and two real agents enroll and show `online` with their host
//! facts in the API and the console; kill -9 -> `offline`/`heartbeat_timeout` within three
//! heartbeats (+ sweeper slack); SIGTERM -> `offline`/`agent_stopped`; a restart comes back
//! `online` with the same identity and no duplicate server. On SQLite and on PostgreSQL.

use std::time::Instant;

use hostward_e2e::*;
use serde_json::Value;

/// 3 heartbeats of 1 s, plus slack for the sweeper and a loaded machine.
const OFFLINE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

fn check_facts(s: &Value, agent: &Agent) -> Result<()> {
    let host = hostname();
    ensure!(
        s["agent_id"] == agent.agent_id.as_str(),
        "agent_id {} != identity's {}",
        s["agent_id"],
        agent.agent_id
    );
    ensure!(
        s["hostname"] == host.as_str(),
        "hostname {} != {host}",
        s["hostname"]
    );
    let f = &s["facts"];
    ensure!(
        f["hostname"] == host.as_str(),
        "facts.hostname {} != {host}: {f}",
        f["hostname"]
    );
    for key in ["os_id", "kernel", "arch"] {
        ensure!(
            f[key].as_str().is_some_and(|v| !v.is_empty()),
            "facts.{key} is empty: {f}"
        );
    }
    ensure!(
        f["boot_time"].as_i64().is_some_and(|t| t > 0),
        "facts.boot_time missing: {f}"
    );
    ensure!(f["ips"].is_array(), "facts.ips is not a list: {f}");
    ensure!(
        s["protection_status"] == "enabled",
        "protection should be enabled while online: {}",
        status_line(s)
    );
    Ok(())
}

/// The console's server list (through a real login) shows both servers with these agent statuses.
async fn console_shows(console: &Console, expect: &[(&str, &str)]) -> Result<()> {
    wait_until(
        "the console to show the expected statuses",
        secs(15),
        millis(300),
        || async {
            let page = console.get("/servers").await?;
            ensure!(page.status == 200, "GET /servers answered {}", page.status);
            let rows = server_rows(&page.body);
            for (id, status) in expect {
                let (_, row) = rows
                    .iter()
                    .find(|(rid, _)| rid == id)
                    .ok_or_else(|| anyhow!("no row for server {id} in {} rows", rows.len()))?;
                let agent = class_text(row, "agent-status").unwrap_or_default();
                ensure!(
                    agent.contains(status),
                    "row {id}: agent status {agent:?}, want {status}"
                );
                ensure!(
                    class_text(row, "protection-status").is_some_and(|t| !t.is_empty()),
                    "row {id}: no protection status"
                );
                ensure!(
                    class_text(row, "risk-status").is_some_and(|t| !t.is_empty()),
                    "row {id}: no risk status"
                );
            }
            ensure!(
                rows.len() == expect.len(),
                "{} rows, want {}",
                rows.len(),
                expect.len()
            );
            Ok(())
        },
    )
    .await
}

async fn has_history(api: &Api, id: &str, status: &str, reason: &str) -> Result<()> {
    let d = api.server_detail(id).await?;
    let hist = d["history"].as_array().cloned().unwrap_or_default();
    ensure!(
        hist.iter()
            .any(|h| h["dimension"] == "agent" && h["status"] == status && h["reason"] == reason),
        "history of {id} lacks agent {status}/{reason}: {hist:?}"
    );
    Ok(())
}

async fn lifecycle(env: &TestEnv, backend: Backend) -> Result<()> {
    let center = Center::start(env, backend, CenterOpts::default()).await?;
    let api = center.api();
    let mut one = Agent::start(env, &center, "one").await?;
    let mut two = Agent::start(env, &center, "two").await?;
    ensure!(
        one.server_id != two.server_id,
        "two enrollments gave one server id"
    );
    ensure!(
        one.agent_id != two.agent_id,
        "two enrollments gave one agent id"
    );

    // Both online, with their facts, in the API ...
    for a in [&one, &two] {
        let s = api
            .wait_status(&a.server_id, "online", None, secs(30))
            .await?;
        check_facts(&s, a)?;
    }
    let servers = api.servers().await?;
    ensure!(
        servers.len() == 2,
        "want 2 servers, API lists {}: {servers:?}",
        servers.len()
    );

    // ... and in the console, including the detail page with the facts.
    let console = center.console_login(ADMIN_USER, ADMIN_PASSWORD).await?;
    console_shows(
        &console,
        &[(&one.server_id, "online"), (&two.server_id, "online")],
    )
    .await?;
    let detail = api.server(&one.server_id).await?;
    let page = console.get(&format!("/servers/{}", one.server_id)).await?;
    ensure!(
        page.status == 200,
        "GET /servers/{{id}} answered {}",
        page.status
    );
    let text = strip_tags(&page.body);
    for fact in ["hostname", "kernel"] {
        let v = detail["facts"][fact].as_str().unwrap_or_default();
        ensure!(text.contains(v), "server page lacks facts.{fact} {v:?}");
    }

    // kill -9: the connection drops without bye -> heartbeat_timeout.
    one.kill9().await?;
    let t = Instant::now();
    api.wait_status(
        &one.server_id,
        "offline",
        Some("heartbeat_timeout"),
        OFFLINE_WITHIN,
    )
    .await?;
    eprintln!(
        "kill -9 -> offline/heartbeat_timeout after {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let s = api.server(&two.server_id).await?;
    ensure!(
        s["agent_status"] == "online",
        "the other agent should stay online: {}",
        status_line(&s)
    );

    // SIGTERM: bye -> agent_stopped, and the agent exits 0.
    let status = two.term().await?;
    ensure!(
        status.success(),
        "hostward-agent run exited with {status} on SIGTERM"
    );
    let t = Instant::now();
    api.wait_status(
        &two.server_id,
        "offline",
        Some("agent_stopped"),
        OFFLINE_WITHIN,
    )
    .await?;
    eprintln!(
        "SIGTERM -> offline/agent_stopped after {:.1}s",
        t.elapsed().as_secs_f64()
    );
    console_shows(
        &console,
        &[(&one.server_id, "offline"), (&two.server_id, "offline")],
    )
    .await?;

    // Restart both: online again, same identity, no new server.
    one.run(env)?;
    two.run(env)?;
    for a in [&one, &two] {
        let s = api
            .wait_status(&a.server_id, "online", None, secs(30))
            .await?;
        check_facts(&s, a)?;
        let id = a.identity()?;
        ensure!(
            id["agent_id"] == a.agent_id.as_str() && id["server_id"] == a.server_id.as_str(),
            "identity changed: {id}"
        );
    }
    let after = api.servers().await?;
    let mut ids: Vec<&str> = after.iter().filter_map(|s| s["id"].as_str()).collect();
    ids.sort();
    let mut want = vec![one.server_id.as_str(), two.server_id.as_str()];
    want.sort();
    ensure!(
        ids == want,
        "servers after restart {ids:?}, want exactly {want:?}"
    );
    console_shows(
        &console,
        &[(&one.server_id, "online"), (&two.server_id, "online")],
    )
    .await?;

    has_history(&api, &one.server_id, "offline", "heartbeat_timeout").await?;
    has_history(&api, &two.server_id, "offline", "agent_stopped").await?;
    Ok(())
}

#[tokio::test]
async fn two_agents_lifecycle_on_sqlite() -> Result<()> {
    let env = TestEnv::new("lifecycle-sqlite");
    env.run(lifecycle(&env, Backend::Sqlite)).await
}

#[tokio::test]
async fn two_agents_lifecycle_on_postgres() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("lifecycle-postgres");
    env.run(lifecycle(&env, Backend::Postgres)).await
}

/// The install command `hostward token create` prints must work against the running center:
/// its URL is the center's public URL and its curl pin is the key the console port serves.
#[tokio::test]
async fn cli_install_command_points_at_the_running_center() -> Result<()> {
    let env = TestEnv::new("install-command");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let token = center.create_token(&["--name", "install"]).await?;
        let served_pin = format!(
            "sha256//{}",
            hostward_pki::spki_sha256_base64(&center.server_cert_pem().await?)?
        );
        let url = format!("{}/install.sh", center.url());
        let cmd = &token.install_command;
        ensure!(
            cmd.contains(&url),
            "the install command should fetch {url}: {cmd}"
        );
        ensure!(
            cmd.contains(&served_pin),
            "the install command should pin the served key {served_pin}: {cmd}"
        );
        ensure!(
            cmd.contains(&token.secret) && cmd.contains(&center.ca_fingerprint()?),
            "token or CA fingerprint missing: {cmd}"
        );
        // The API's answer agrees.
        let r = center
            .api()
            .post(
                "/api/v1/enrollment-tokens",
                serde_json::json!({"name": "api"}),
            )
            .await?
            .expect(201)?;
        let api_cmd = r.json["install_command"].as_str().unwrap_or_default();
        ensure!(
            api_cmd.contains(&url) && api_cmd.contains(&served_pin),
            "API install command: {api_cmd}"
        );
        Ok(())
    })
    .await
}
