//! Enrollment cannot take an identity: a real second agent holding the project's token and the
//! server's install id is refused on an enrolled and on a revoked server, and only an admin's
//! one-time re-install command binds a new agent. Tokens expire by default and count their uses;
//! install ids belong to one project; a guessing neighbour behind the same address does not stop
//! valid enrollments; an agent's hello is bounded field by field.

use anyhow::{Result, ensure};
use hostward_e2e::*;
use serde_json::{Value, json};

/// `hostward-agent enroll` with an install id, as install.sh runs it.
async fn enroll_as(
    agent: &Agent,
    center: &Center,
    token: &str,
    install_id: &str,
) -> Result<Output> {
    let state_dir = agent.state_dir.display().to_string();
    let fp = center.ca_fingerprint()?;
    let args: Vec<String> = [
        "enroll",
        "--center",
        &center.url(),
        "--token",
        token,
        "--ca-sha256",
        &fp,
        "--install-id",
        install_id,
        "--state-dir",
        &state_dir,
        "--allow-unsupported",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_cmd(&bin("hostward-agent")?, &args, None).await?;
    let _ = std::fs::write(agent.dir.join("enroll.log"), out.to_string());
    Ok(out)
}

fn identity_of(agent: &mut Agent) -> Result<()> {
    let id = agent.identity()?;
    agent.agent_id = id["agent_id"].as_str().unwrap_or_default().to_string();
    agent.server_id = id["server_id"].as_str().unwrap_or_default().to_string();
    Ok(())
}

async fn takeover(env: &TestEnv, backend: Backend) -> Result<()> {
    let center = Center::start(env, backend, CenterOpts::default()).await?;
    let api = center.api();
    let token = center.create_token(&["--name", "fleet"]).await?;

    let mut real = Agent::new(env, "real");
    enroll_as(&real, &center, &token.secret, "web-01")
        .await?
        .ok()?;
    identity_of(&mut real)?;
    real.run(env)?;
    api.wait_status(&real.server_id, "online", None, secs(30))
        .await?;

    // The attacker: the same token, the server's install id, a key of its own.
    let attacker = Agent::new(env, "attacker");
    let out = enroll_as(&attacker, &center, &token.secret, "web-01").await?;
    ensure!(
        !out.success(),
        "re-enrolling an enrolled server with a plain token succeeded: {}",
        out.text()
    );
    ensure!(
        out.text().contains("already_enrolled"),
        "the refusal should say already_enrolled: {}",
        out.text()
    );
    ensure!(
        !attacker.state_dir.join("identity.json").exists(),
        "the attacker got an identity"
    );
    let s = api.server(&real.server_id).await?;
    ensure!(
        s["agent_id"] == real.agent_id.as_str(),
        "the server's agent changed: {}",
        s["agent_id"]
    );
    // The real agent keeps its identity: after a restart it is online again.
    real.term().await?;
    real.run(env)?;
    api.wait_server(
        &real.server_id,
        "the real agent back online",
        secs(30),
        |s| s["agent_status"] == "online" && s["agent_id"] == real.agent_id.as_str(),
    )
    .await?;
    let audit = center
        .query_i64(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'agent.enroll_refused' AND target = $1",
            &[&real.server_id],
        )
        .await?;
    ensure!(
        audit == 1,
        "the refused takeover should be audited once, found {audit}"
    );

    // Revoked: a plain token never lifts the revocation.
    api.post(
        &format!("/api/v1/servers/{}/revoke", real.server_id),
        json!({}),
    )
    .await?
    .expect_success()?;
    api.wait_status(&real.server_id, "offline", Some("revoked"), secs(30))
        .await?;
    let out = enroll_as(&attacker, &center, &token.secret, "web-01").await?;
    ensure!(
        !out.success() && out.text().contains("server_revoked"),
        "re-enrolling a revoked server: {}",
        out.text()
    );
    let s = api.server(&real.server_id).await?;
    ensure!(
        !s["revoked_at"].is_null() && s["agent_reason"] == "revoked",
        "the revocation was undone: {}",
        status_line(&s)
    );

    // The admin's re-install: one use, this server only; a viewer may not issue it.
    let grant = api
        .post(
            &format!("/api/v1/servers/{}/reinstall", real.server_id),
            json!({}),
        )
        .await?
        .expect(201)?
        .json;
    let secret = grant["secret"].as_str().unwrap_or_default().to_string();
    ensure!(
        grant["max_uses"] == 1 && grant["server_id"] == real.server_id.as_str(),
        "re-install token: {grant}"
    );
    ensure!(
        grant["install_command"]
            .as_str()
            .is_some_and(|c| c.contains("--install-id web-01") && c.contains(&secret)),
        "the re-install command should carry the token and the install id: {grant}"
    );
    ensure!(
        grant.get("token_hash").is_none(),
        "the token hash leaked: {grant}"
    );
    let mut new = Agent::new(env, "reinstalled");
    enroll_as(&new, &center, &secret, "web-01").await?.ok()?;
    identity_of(&mut new)?;
    ensure!(
        new.server_id == real.server_id,
        "the re-install bound server {} instead of {}",
        new.server_id,
        real.server_id
    );
    new.run(env)?;
    let s = api
        .wait_server(
            &real.server_id,
            "the re-installed agent online",
            secs(30),
            |s| s["agent_status"] == "online" && s["agent_id"] == new.agent_id.as_str(),
        )
        .await?;
    ensure!(
        s["revoked_at"].is_null(),
        "the admin's re-install should lift the revocation: {s}"
    );
    let again = Agent::new(env, "again");
    let out = enroll_as(&again, &center, &secret, "web-01").await?;
    ensure!(
        !out.success() && out.text().contains("token_used_up"),
        "a re-install token works once: {}",
        out.text()
    );
    Ok(())
}

#[tokio::test]
async fn a_second_agent_cannot_take_a_server_by_re_enrolling_on_sqlite() -> Result<()> {
    let env = TestEnv::new("takeover-sqlite");
    env.run(takeover(&env, Backend::Sqlite)).await
}

#[tokio::test]
async fn a_second_agent_cannot_take_a_server_by_re_enrolling_on_postgres() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("takeover-postgres");
    env.run(takeover(&env, Backend::Postgres)).await
}

fn facts(hostname: &str) -> Value {
    json!({"hostname": hostname, "os_id": "debian", "os_version": "12", "os_name": "Debian", "kernel": "6.1",
           "arch": "x86_64", "ips": [], "boot_time": 0})
}

#[tokio::test]
async fn tokens_expire_by_default_and_count_their_uses() -> Result<()> {
    let env = TestEnv::new("token-limits");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();

        // A token created with no lifetime still has one.
        let t = api
            .post("/api/v1/enrollment-tokens", json!({"name": "default-life"}))
            .await?
            .expect(201)?
            .json;
        let (created, expires) = (
            t["created_at"].as_i64().unwrap_or(0),
            t["expires_at"].as_i64(),
        );
        ensure!(
            expires == Some(created + 7 * 24 * 3600),
            "default expiry: created {created}, expires {expires:?}"
        );

        // Two uses, three installs: the third is refused and nothing is created for it.
        let two = api
            .post(
                "/api/v1/enrollment-tokens",
                json!({"name": "two", "max_uses": 2}),
            )
            .await?
            .expect(201)?
            .json;
        let secret = two["secret"].as_str().unwrap_or_default().to_string();
        for i in 0..2 {
            enroll_as(
                &Agent::new(&env, &format!("two-{i}")),
                &center,
                &secret,
                &format!("two-{i}"),
            )
            .await?
            .ok()?;
        }
        let out = enroll_as(&Agent::new(&env, "two-2"), &center, &secret, "two-2").await?;
        ensure!(
            !out.success() && out.text().contains("token_used_up"),
            "third use of a two-use token: {}",
            out.text()
        );
        let bad = api
            .post(
                "/api/v1/enrollment-tokens",
                json!({"name": "zero", "max_uses": 0}),
            )
            .await?
            .expect(400)?;
        ensure!(bad.error_message().contains("max_uses"), "{}", bad.text);

        // The console shows uses against the limit, the state and the expiry.
        center
            .add_user(
                "tokadmin",
                "tokens-admin-pass-7Q",
                &["--project", "default", "--role", "admin"],
            )
            .await?;
        let console = center
            .console_login("tokadmin", "tokens-admin-pass-7Q")
            .await?;
        let page = console.get("/tokens").await?;
        let row = page
            .body
            .split("<tr data-token-id=")
            .find(|r| r.contains(two["id"].as_str().unwrap_or("?")))
            .map(strip_tags)
            .unwrap_or_default();
        ensure!(
            row.contains("2 of 2") && row.contains("used_up"),
            "the tokens page row: {row}"
        );
        ensure!(
            !page.body.contains("0 = never"),
            "the console still offers tokens that never expire"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn install_ids_stay_in_their_project() -> Result<()> {
    let env = TestEnv::new("install-id-scope");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        center.add_project("beta").await?;
        // Project B's token reports a failure under A's install id: A's server is untouched.
        let a_tok = center.create_token(&["--name", "a"]).await?;
        let b_tok = center.create_token(&["--project", "beta", "--name", "b"]).await?;
        let anon = center.anonymous();
        anon.post("/api/v1/enroll/report", json!({"token": a_tok.secret, "install_id": "db-01", "hostname": "db-01", "status": "installing"}))
            .await?
            .expect(204)?;
        anon.post("/api/v1/enroll/report", json!({"token": b_tok.secret, "install_id": "db-01", "hostname": "squat", "status": "failed", "cause": "disk_full"}))
            .await?
            .expect(204)?;
        let servers = api.servers().await?;
        let db01: Vec<&Value> = servers.iter().filter(|s| s["name"] == "db-01").collect();
        ensure!(db01.len() == 1 && db01[0]["agent_status"] == "installing", "A's server after B's report: {db01:?}");
        let mut agent = Agent::new(&env, "db-01");
        enroll_as(&agent, &center, &a_tok.secret, "db-01").await?.ok()?;
        identity_of(&mut agent)?;
        ensure!(agent.server_id == db01[0]["id"].as_str().unwrap_or("?"), "A's enrollment should land on A's server");
        let squat = servers.iter().find(|s| s["name"] == "squat");
        ensure!(
            squat.is_some_and(|s| s["agent_status"] == "install_failed" && s["project_id"] != db01[0]["project_id"]),
            "B's report should make B's own server: {squat:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_guessing_neighbour_does_not_stop_valid_enrollments() -> Result<()> {
    let env = TestEnv::new("enroll-throttle");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let anon = center.anonymous();
        let body = |token: &str| json!({"token": token, "csr_pem": "x", "facts": facts("guess")});
        let mut codes = Vec::new();
        for i in 0..32 {
            let r = anon
                .post("/api/v1/enroll", body(&format!("hwe_guess{i:040}")))
                .await?;
            codes.push(r.status);
        }
        ensure!(
            codes[..30].iter().all(|c| *c == 401),
            "the first 30 guesses: {codes:?}"
        );
        ensure!(
            codes[30..].iter().all(|c| *c == 429),
            "guesses past the limit are throttled: {codes:?}"
        );
        // A valid token from the same address still enrolls.
        let token = center.create_token(&["--name", "nat"]).await?;
        let mut agent = Agent::new(&env, "behind-nat");
        agent.enroll(&env, &center, &token.secret).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_oversized_hello_is_refused_naming_the_field() -> Result<()> {
    let env = TestEnv::new("hello-bounds");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let token = center.create_token(&["--name", "hello"]).await?;
        let mut agent = Agent::new(&env, "hello");
        agent.enroll(&env, &center, &token.secret).await?;

        // A hello with a 900 KB hostname is refused, naming the field, and nothing is stored.
        let mut ws = gateway_connect(
            center.gateway_port,
            &center.ca_pem,
            Some((&agent.cert_pem()?, &agent.key_pem()?)),
        )
        .await?;
        let mut hello: Value = serde_json::from_str(&hello_frame())?;
        hello["body"]["facts"]["hostname"] = json!("h".repeat(900_000));
        ws_send(&mut ws, hello.to_string()).await?;
        let e = ws_recv_kind(&mut ws, "error", secs(10)).await?;
        ensure!(
            e["body"]["code"] == "malformed"
                && e["body"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("facts.hostname")),
            "an oversized hello should be refused naming facts.hostname: {e}"
        );
        let s = center.api().server(&agent.server_id).await?;
        ensure!(
            s["hostname"].as_str().is_some_and(|h| h.len() < 256),
            "a huge hostname was stored ({} bytes)",
            s["hostname"].as_str().map_or(0, str::len)
        );
        // The agent itself still connects.
        agent.run(&env)?;
        center
            .api()
            .wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        Ok(())
    })
    .await
}
