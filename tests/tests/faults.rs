//! Faults: a database outage, a lost or corrupt agent outbox, a full disk under the agent and a
//! dead center replica each lose no record and duplicate none (counted in the center's own
//! database against what the agent emitted), and each is visible to the operator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hostward_e2e::faults::{PrivatePostgres, Tmpfs, fill_disk};
use hostward_e2e::*;
use serde_json::Value;

const EVENT_TYPE: &str = "fault";

/// `(events, distinct seqs)` of `event_type` the center stored for the server.
async fn counts(center: &Center, server_id: &str, event_type: &str) -> Result<(i64, i64)> {
    let total = center
        .query_i64(
            "SELECT COUNT(*) AS n FROM events WHERE server_id = $1 AND event_type = $2",
            &[server_id, event_type],
        )
        .await?;
    let distinct = center
        .query_i64(
            "SELECT COUNT(DISTINCT seq) AS n FROM events WHERE server_id = $1 AND event_type = $2",
            &[server_id, event_type],
        )
        .await?;
    Ok((total, distinct))
}

/// Waits until at least `want` events of `event_type` are stored, lets a few more heartbeats and
/// acks pass (a duplicate would show up then), and checks that exactly `want` are there, one
/// per seq.
async fn expect_stored(
    center: &Center,
    server_id: &str,
    event_type: &str,
    want: i64,
    timeout: Duration,
) -> Result<()> {
    let seen = wait_until(
        &format!("{want} '{event_type}' events on the center"),
        timeout,
        millis(250),
        || async {
            let (total, distinct) = counts(center, server_id, event_type).await?;
            ensure!(
                total >= want,
                "{total} stored ({distinct} distinct seqs): {} lost so far",
                want - total
            );
            Ok(())
        },
    )
    .await;
    if let Err(e) = seen {
        let (total, distinct) = counts(center, server_id, event_type).await?;
        bail!(
            "{} of {want} '{event_type}' events lost ({total} stored, {distinct} distinct seqs): {e:#}",
            want - total
        );
    }
    tokio::time::sleep(secs(3)).await;
    let (total, distinct) = counts(center, server_id, event_type).await?;
    ensure!(
        total == want && distinct == want,
        "{total} '{event_type}' events stored ({distinct} distinct seqs); want exactly {want} and {want}"
    );
    Ok(())
}

/// `hostward-agent emit`, whatever its exit code.
async fn try_emit(agent: &Agent, event_type: &str, count: u32) -> Result<Output> {
    let mut args: Vec<String> = vec!["emit".into()];
    args.extend(agent.state_args());
    args.extend(["--event-type".into(), event_type.into()]);
    args.extend(["--count".into(), count.to_string()]);
    run_cmd(&bin("hostward-agent")?, &args, None).await
}

/// `heartbeat` of the server as the API shows it (the agent's last heartbeat).
async fn heartbeat(api: &Api, server_id: &str) -> Result<Value> {
    Ok(api.server(server_id).await?["heartbeat"].clone())
}

/// Waits until the emitter counted `n` events out.
async fn emitted_at_least(emitted: &AtomicU64, n: u64) -> Result<u64> {
    wait_until(
        &format!("{n} events emitted"),
        secs(120),
        millis(20),
        || async {
            let sent = emitted.load(Ordering::SeqCst);
            ensure!(sent >= n, "{sent} emitted");
            Ok(sent)
        },
    )
    .await
}

/// Fails with every problem found, so one run shows all that is wrong.
fn verdict(problems: Vec<String>) -> Result<()> {
    ensure!(problems.is_empty(), "{}", problems.join("\n  AND "));
    Ok(())
}

/// Finding 1: PostgreSQL goes away for 3 s and for 10 s while records flow. The center
/// must not ack what it could not store, nor let a later ack cover it: all 10,000 arrive, once
/// each; the agent is online at the end; the failed stores are counted in `/metrics`.
#[tokio::test]
async fn a_database_outage_loses_no_record() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("faults-db-outage");
    env.run(async {
        // A database of our own: stopping the shared cluster would fail the other tests.
        let mut pg = PrivatePostgres::start(&env).await?;
        let opts = CenterOpts {
            database_url: Some(pg.url.clone()),
            ..CenterOpts::default()
        };
        let center = Center::start(&env, Backend::Postgres, opts).await?;
        let api = center.api();
        let agent = Agent::start(&env, &center, "db-outage").await?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;

        // 10,000 events in 100 emits (emit writes the agent's own outbox only: it never waits
        // for the center), while PostgreSQL goes away twice.
        let emitted = AtomicU64::new(0);
        let emitter = async {
            for _ in 0..100 {
                agent.emit(EVENT_TYPE, 100).await?;
                emitted.fetch_add(100, Ordering::SeqCst);
            }
            Ok::<_, anyhow::Error>(())
        };
        let server_id = agent.server_id.as_str();
        let outage = async {
            // First a blip, shorter than the center's wait for a pooled connection (10 s), that
            // surely catches a store mid-transaction (the events table is locked, so the store
            // waits in its INSERT; the emits still running keep records coming): that store
            // fails, the next one waits for a connection and succeeds. A center that acks it
            // has acked past the failed record.
            emitted_at_least(&emitted, 2000).await?;
            // (Counted before: a reader of the table would wait for the lock too.)
            let stored = counts(&center, server_id, EVENT_TYPE).await?.0;
            let _lock = pg.lock_table(&env, "events").await?;
            wait_until("a store waiting for the lock", secs(30), millis(50), || async {
                let n = center
                    .query_i64("SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted", &[])
                    .await?;
                ensure!(n > 0, "no lock waiter");
                Ok(())
            })
            .await?;
            pg.stop().await?;
            let n = emitted.load(Ordering::SeqCst);
            eprintln!("PostgreSQL stopped for 3 s, a store in flight: {n} emitted, {stored} stored");
            tokio::time::sleep(secs(3)).await;
            pg.restart(&env).await?;
            // Then, once records flow again, 10 s down: longer than that wait, and than three
            // heartbeats.
            let stored = wait_until("records to flow again", secs(120), millis(100), || async {
                let n = counts(&center, server_id, EVENT_TYPE).await?.0;
                ensure!(n >= stored + 100, "{n} stored");
                Ok(n)
            })
            .await?;
            pg.stop().await?;
            let n = emitted.load(Ordering::SeqCst);
            eprintln!("PostgreSQL stopped for 10 s: {n} emitted, {stored} stored");
            tokio::time::sleep(secs(10)).await;
            pg.restart(&env).await?;
            Ok::<_, anyhow::Error>(())
        };
        let (e, o) = tokio::join!(emitter, outage);
        e.context("emitting")?;
        o.context("the outage")?;

        let mut problems = Vec::new();
        if let Err(e) =
            expect_stored(&center, &agent.server_id, EVENT_TYPE, 10_000, secs(180)).await
        {
            problems.push(format!("{e:#}"));
        }
        let server = api.server(&agent.server_id).await?;
        if server["agent_status"] != "online" {
            problems.push(format!(
                "the agent should be online after the outage: {}",
                status_line(&server)
            ));
        }
        let failures = metric(
            &center.metrics().await?,
            "hostward_records_store_failures_total",
            &[],
        );
        eprintln!("hostward_records_store_failures_total = {failures:?}");
        if !failures.is_some_and(|n| n > 0.0) {
            problems.push(format!(
                "the failed stores should be counted: hostward_records_store_failures_total is {failures:?}"
            ));
        }
        verdict(problems)
    })
    .await
}

/// Stops the agent and empties its outbox file (`-wal` and `-shm` go too), or fills it with
/// `garbage` when given.
async fn spoil_outbox(agent: &mut Agent, garbage: Option<&[u8]>) -> Result<()> {
    let status = agent.term().await?;
    ensure!(
        status.success(),
        "the agent exited with {status} on SIGTERM"
    );
    let db = agent.state_dir.join("outbox.db");
    ensure!(db.is_file(), "{} should exist", db.display());
    std::fs::write(&db, garbage.unwrap_or_default())?;
    for side in ["outbox.db-wal", "outbox.db-shm"] {
        let _ = std::fs::remove_file(agent.state_dir.join(side));
    }
    Ok(())
}

/// Finding 2a: the outbox file is lost (truncated to 0 bytes) while the agent is stopped. The new
/// outbox must not hand out seqs the center already stored: the 100 events after it all arrive.
#[tokio::test]
async fn a_truncated_outbox_reuses_no_seq() -> Result<()> {
    let env = TestEnv::new("faults-truncated-outbox");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = Agent::start(&env, &center, "truncated").await?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        agent.emit(EVENT_TYPE, 20).await?;
        expect_stored(&center, &agent.server_id, EVENT_TYPE, 20, secs(30)).await?;

        spoil_outbox(&mut agent, None).await?;
        agent.run(&env)?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        agent.emit(EVENT_TYPE, 100).await?;
        expect_stored(&center, &agent.server_id, EVENT_TYPE, 120, secs(60)).await
    })
    .await
}

/// Finding 2b: the outbox file is garbage. The agent must not exit over it (under systemd it
/// would only restart into the same error): it moves the file aside as `outbox.db.corrupt-*`,
/// starts a new outbox above the center's seqs, and tells the center in its heartbeat.
#[tokio::test]
async fn a_corrupt_outbox_is_moved_aside() -> Result<()> {
    let env = TestEnv::new("faults-corrupt-outbox");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = Agent::start(&env, &center, "corrupt").await?;
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        agent.emit(EVENT_TYPE, 20).await?;
        expect_stored(&center, &agent.server_id, EVENT_TYPE, 20, secs(30)).await?;

        let garbage: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
        spoil_outbox(&mut agent, Some(&garbage)).await?;
        agent.run(&env)?;
        // Long enough for a failing start to have failed (and a restart loop to be one).
        tokio::time::sleep(secs(10)).await;
        if !agent.is_running() {
            let last = agent
                .stderr()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
            bail!("the agent exited over its corrupt outbox instead of moving it aside: {last}");
        }
        let aside: Vec<String> = std::fs::read_dir(&agent.state_dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("outbox.db.corrupt-"))
            .collect();
        ensure!(
            !aside.is_empty(),
            "no outbox.db.corrupt-* in the state dir: {:?}",
            std::fs::read_dir(&agent.state_dir)?
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        );
        api.wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        agent.emit(EVENT_TYPE, 10).await?;
        expect_stored(&center, &agent.server_id, EVENT_TYPE, 30, secs(60)).await?;
        let reset = wait_until(
            "heartbeat.outbox_reset with a reason",
            secs(30),
            millis(250),
            || async {
                let hb = heartbeat(&api, &agent.server_id).await?;
                let reset = &hb["outbox_reset"];
                ensure!(
                    reset.is_object() && reset["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "heartbeat: {hb}"
                );
                Ok(reset.clone())
            },
        )
        .await?;
        eprintln!("outbox_reset: {reset}");
        // The server page says it, in words an operator acts on.
        center
            .add_user("ops", "faults-console-password-42", &["--superadmin"])
            .await?;
        let console = center
            .console_login("ops", "faults-console-password-42")
            .await?;
        let page = console
            .get(&format!("/servers/{}", agent.server_id))
            .await?;
        ensure!(
            page.status == 200 && page.body.contains("Outbox started anew"),
            "the server page does not show the outbox reset: {}",
            truncate(&page.body, 2000)
        );
        Ok(())
    })
    .await
}

/// Finding 3: the agent's state dir fills up. `emit` is all or nothing; the agent reports its
/// failing outbox in the heartbeat (and stops when space returns); nothing is lost or doubled.
#[tokio::test]
async fn a_full_disk_is_counted_and_emit_is_all_or_nothing() -> Result<()> {
    let env = TestEnv::new("faults-full-disk");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        // The whole state dir (identity, certificates, outbox) on a filesystem of its own, with
        // room for the outbox's WAL to reach SQLite's checkpoint size (1000 pages) by itself.
        // Enrolled first: enroll wants 64 MiB free; its files then move onto the tmpfs.
        let mut agent = Agent::new(&env, "full-disk");
        let token = center.create_token(&["--name", "full-disk"]).await?;
        agent.enroll(&env, &center, &token.secret).await?;
        let enrolled = agent.dir.join("enrolled");
        std::fs::rename(&agent.state_dir, &enrolled)?;
        let _tmpfs = Tmpfs::mount(&agent.state_dir, "16m").await?;
        for entry in std::fs::read_dir(&enrolled)? {
            let entry = entry?;
            ensure!(entry.file_type()?.is_file(), "enroll made {:?}", entry.path());
            std::fs::copy(entry.path(), agent.state_dir.join(entry.file_name()))?;
        }
        agent.run(&env)?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        agent.emit("fault.before", 10).await?;
        expect_stored(&center, &server, "fault.before", 10, secs(30)).await?;

        // Full, but for 128 KiB: room for some records of the 100, not for all of them one by
        // one (each alone is a WAL commit of two 4 KiB pages).
        let filler = agent.state_dir.join("filler");
        let size = fill_disk(&filler)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)?
            .set_len(size - 128 * 1024)?;
        let out = try_emit(&agent, "fault.full", 100).await?;
        eprintln!("emit of 100 on a nearly full disk: {out}");
        // Now full to the last byte.
        fill_disk(&filler)?;

        let mut problems = Vec::new();
        let reported = wait_until(
            "heartbeat.outbox_error while the disk is full",
            secs(30),
            millis(250),
            || async {
                let hb = heartbeat(&api, &server).await?;
                ensure!(
                    hb["outbox_error"].as_str().is_some_and(|e| !e.is_empty()),
                    "heartbeat: {hb}"
                );
                Ok(hb["outbox_error"].clone())
            },
        )
        .await;
        match reported {
            Ok(e) => eprintln!("outbox_error while full: {e}"),
            Err(e) => problems.push(format!("the agent did not report its failing outbox: {e:#}")),
        }

        // Space returns: the error goes away and records flow again.
        std::fs::remove_file(&filler)?;
        let cleared = wait_until(
            "heartbeat.outbox_error to clear",
            secs(30),
            millis(250),
            || async {
                let hb = heartbeat(&api, &server).await?;
                ensure!(hb["outbox_error"].is_null(), "heartbeat: {hb}");
                Ok(())
            },
        )
        .await;
        if let Err(e) = cleared {
            problems.push(format!("{e:#}"));
        }
        ensure!(
            agent.is_running(),
            "the agent died of the full disk: {}",
            tail(&agent.stderr(), 5)
        );
        agent.emit("fault.after", 10).await?;
        if let Err(e) = expect_stored(&center, &server, "fault.after", 10, secs(60)).await {
            problems.push(format!("{e:#}"));
        }
        // Records go in seq order, so the 100 (if any) are in by now.
        let full = counts(&center, &server, "fault.full").await?;
        let want = if out.success() { 100 } else { 0 };
        if full != (want, want) {
            problems.push(format!(
                "emit on the full disk {} but {} of its 100 events were stored ({} distinct \
                 seqs): want {want}, all or nothing",
                if out.success() { "succeeded" } else { "failed" },
                full.0,
                full.1
            ));
        }
        let before = counts(&center, &server, "fault.before").await?;
        if before != (10, 10) {
            problems.push(format!("the 10 events before: {before:?} stored"));
        }
        eprintln!(
            "stored: {before:?} before, {full:?} of the emit on the full disk (exit {:?}), {:?} after",
            out.code,
            counts(&center, &server, "fault.after").await?
        );
        verdict(problems)
    })
    .await
}

/// Finding 4: replica A dies (`kill -9`). Its agents learn of the other replicas from the center
/// and move to B by themselves, within a minute.
#[tokio::test]
async fn agents_fail_over_to_the_surviving_replica() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("faults-failover");
    env.run(async {
        let mut a = Center::start(&env, Backend::Postgres, CenterOpts::default()).await?;
        let b = a.start_replica(&env).await?;
        let (a_gateway, b_gateway) = (
            format!("127.0.0.1:{}", a.gateway_port),
            format!("127.0.0.1:{}", b.gateway_port),
        );
        let api_a = a.api();
        let mut agents = Vec::new();
        for i in 0..3 {
            agents.push(Agent::start(&env, &a, &format!("failover-{i}")).await?);
        }
        for agent in &agents {
            api_a
                .wait_status(&agent.server_id, "online", None, secs(30))
                .await?;
            let log = agent.wait_log("connected to the center", secs(10)).await?;
            ensure!(
                log.contains(&a_gateway),
                "{} should be connected to replica A ({a_gateway})",
                agent.label
            );
        }
        // Time for both replicas to advertise their gateways and for the list to reach the
        // agents with their config.
        tokio::time::sleep(secs(15)).await;

        let marks: Vec<usize> = agents.iter().map(|a| a.stderr().len()).collect();
        let t0 = Instant::now();
        a.kill9().await?;
        let api_b = b.api();
        let moved = wait_until(
            "every agent connected to replica B",
            secs(60),
            millis(250),
            || async {
                let mut waiting = Vec::new();
                for (agent, &mark) in agents.iter().zip(&marks) {
                    let log = agent.stderr();
                    let since = log.get(mark..).unwrap_or_default();
                    let on_b = since
                        .lines()
                        .any(|l| l.contains("connected to the center") && l.contains(&b_gateway));
                    let server = api_b.server(&agent.server_id).await?;
                    if !on_b || server["agent_status"] != "online" {
                        let last = since.lines().last().unwrap_or_default();
                        waiting.push(format!(
                            "{}: on B {on_b}, {}; last log: {}",
                            agent.label,
                            status_line(&server),
                            truncate(last, 300)
                        ));
                    }
                }
                ensure!(waiting.is_empty(), "{}", waiting.join(" | "));
                Ok(())
            },
        )
        .await;
        let took = t0.elapsed();
        moved?;
        eprintln!(
            "all {} agents moved to replica B {:.1} s after A was killed",
            agents.len(),
            took.as_secs_f64()
        );
        Ok(())
    })
    .await
}

/// What held before and must keep holding: the center killed -9 mid-stream and restarted, and
/// the agent killed -9 with records queued and restarted, twice each; every record arrives once.
#[tokio::test]
async fn records_survive_kill9_of_the_center_and_the_agent() -> Result<()> {
    let env = TestEnv::new("faults-kill9");
    env.run(async {
        let mut center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let mut agent = Agent::start(&env, &center, "kill9").await?;
        center
            .api()
            .wait_status(&agent.server_id, "online", None, secs(30))
            .await?;
        let mut emitted = 0i64;
        for round in 0..4 {
            for _ in 0..10 {
                agent.emit(EVENT_TYPE, 100).await?;
                emitted += 100;
            }
            // Mid-stream: records are in flight, some stored and not yet acked.
            if round % 2 == 0 {
                center.kill9().await?;
                agent.emit(EVENT_TYPE, 100).await?;
                emitted += 100;
                center.restart(&env).await?;
            } else {
                agent.kill9().await?;
                agent.emit(EVENT_TYPE, 100).await?;
                emitted += 100;
                agent.run(&env)?;
            }
        }
        eprintln!("emitted {emitted} events through 2 center and 2 agent kill -9s");
        expect_stored(&center, &agent.server_id, EVENT_TYPE, emitted, secs(180)).await
    })
    .await
}
