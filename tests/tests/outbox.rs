//! Must hold #3: with the center stopped, an agent keeps queuing records; after the center
//! returns, every record arrives exactly once. Counted in the center's own database.

use hostward_e2e::*;

const EVENT_TYPE: &str = "test";

async fn counts(center: &Center, server_id: &str) -> Result<(i64, i64)> {
    let total = center
        .query_i64(
            "SELECT COUNT(*) AS n FROM events WHERE server_id = $1 AND event_type = $2",
            &[server_id, EVENT_TYPE],
        )
        .await?;
    let distinct = center
        .query_i64(
            "SELECT COUNT(DISTINCT seq) AS n FROM events WHERE server_id = $1 AND event_type = $2",
            &[server_id, EVENT_TYPE],
        )
        .await?;
    Ok((total, distinct))
}

async fn wait_count(
    center: &Center,
    server_id: &str,
    want: i64,
    timeout: std::time::Duration,
) -> Result<()> {
    wait_until(
        &format!("{want} '{EVENT_TYPE}' events on the center"),
        timeout,
        millis(250),
        || async {
            let (total, distinct) = counts(center, server_id).await?;
            ensure!(
                total <= want,
                "{total} events stored, more than the {want} sent"
            );
            ensure!(total == want, "{total} stored ({distinct} distinct seqs)");
            Ok(())
        },
    )
    .await
}

async fn exactly_once(env: &TestEnv, backend: Backend) -> Result<()> {
    let mut center = Center::start(env, backend, CenterOpts::default()).await?;
    let api = center.api();
    let mut agent = Agent::start(env, &center, "buffered").await?;
    api.wait_status(&agent.server_id, "online", None, secs(30))
        .await?;

    // While connected, records flow straight through.
    agent.emit(EVENT_TYPE, 5).await?;
    wait_count(&center, &agent.server_id, 5, secs(30)).await?;

    // Center down: the agent keeps running and queues.
    let status = center.stop().await?;
    ensure!(
        status.success(),
        "hostward serve exited with {status} on SIGTERM"
    );
    agent.emit(EVENT_TYPE, 50).await?;
    // Give the agent time to fail a few reconnects while the records wait in its outbox.
    tokio::time::sleep(secs(3)).await;
    ensure!(
        agent.is_running(),
        "the agent daemon died while the center was down"
    );
    let st = agent.status().await?;
    eprintln!("agent status while the center is down: {st}");
    ensure!(
        st["outbox"]["depth"].as_u64().is_some_and(|d| d >= 50),
        "the 50 records should wait in the outbox: {st}"
    );

    // Center back: all 55 arrive, none twice. The agent's back-off is capped at 60 s.
    center.restart(env).await?;
    wait_count(&center, &agent.server_id, 55, secs(120)).await?;
    api.wait_status(&agent.server_id, "online", None, secs(30))
        .await?;
    // A few more heartbeats and acks: still exactly 55, one per seq.
    tokio::time::sleep(secs(4)).await;
    let (total, distinct) = counts(&center, &agent.server_id).await?;
    ensure!(
        total == 55 && distinct == 55,
        "after settling: {total} events, {distinct} distinct seqs; want 55 and 55"
    );
    let dups = center
        .query_i64(
            "SELECT COUNT(*) AS n FROM (SELECT seq FROM events WHERE server_id = $1 GROUP BY seq HAVING COUNT(*) > 1) d",
            &[&agent.server_id],
        )
        .await?;
    ensure!(dups == 0, "{dups} seqs stored more than once");
    // The agent dropped what the center acked, and nothing else.
    wait_until(
        "the agent's outbox to drain",
        secs(15),
        millis(250),
        || async {
            let st = agent.status().await?;
            ensure!(
                st["outbox"]["depth"] == 0 && st["outbox"]["dropped"] == 0,
                "{st}"
            );
            Ok(())
        },
    )
    .await?;
    ensure!(
        agent.is_running(),
        "the agent daemon should have lived through the outage"
    );
    Ok(())
}

#[tokio::test]
async fn queued_records_arrive_exactly_once_on_sqlite() -> Result<()> {
    let env = TestEnv::new("outbox-sqlite");
    env.run(exactly_once(&env, Backend::Sqlite)).await
}

#[tokio::test]
async fn queued_records_arrive_exactly_once_on_postgres() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("outbox-postgres");
    env.run(exactly_once(&env, Backend::Postgres)).await
}
