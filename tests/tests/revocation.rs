//! Must hold #2: revoking an agent through the API closes its live session within a second
//! (the server shows offline/revoked and the agent logs "revoked"), and its reconnects are
//! refused with the reason in the agent's log. The other agent is not affected.

use std::time::Instant;

use hostward_e2e::*;

/// The bullet's one second, plus what polling the log file every 50 ms can add.
const CLOSED_WITHIN: std::time::Duration = std::time::Duration::from_millis(1250);

#[tokio::test]
async fn revoked_agent_is_cut_off_and_refused() -> Result<()> {
    let env = TestEnv::new("revocation");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut victim = Agent::start(&env, &center, "victim").await?;
        let other = Agent::start(&env, &center, "other").await?;
        api.wait_status(&victim.server_id, "online", None, secs(30))
            .await?;
        api.wait_status(&other.server_id, "online", None, secs(30))
            .await?;
        ensure!(
            !victim.stderr().contains("revoked"),
            "the agent logged 'revoked' before any revocation"
        );

        let r = api
            .send(
                "POST",
                &format!("/api/v1/servers/{}/revoke", victim.server_id),
                None,
            )
            .await?
            .expect_success()?;
        let t = Instant::now();
        eprintln!("revoke answered {}: {}", r.status, truncate(&r.text, 300));

        // The live session is closed at once: the agent hears it.
        let log = victim
            .wait_log("revoked", CLOSED_WITHIN)
            .await
            .with_context(|| "the live session was not closed within a second")?;
        eprintln!(
            "agent logged 'revoked' {:.0} ms after the revoke answer",
            t.elapsed().as_secs_f64() * 1000.0
        );
        let s = api.server(&victim.server_id).await?;
        ensure!(
            s["agent_status"] == "offline" && s["agent_reason"] == "revoked",
            "want offline/revoked: {}",
            status_line(&s)
        );
        ensure!(s["revoked_at"].is_i64(), "revoked_at not set: {s}");
        drop(log);

        // Reconnects are refused, and the agent says why.
        let refused = wait_until(
            "the agent to log a refused reconnect naming the revocation",
            secs(45),
            millis(200),
            || async {
                let log = victim.stderr();
                let line = log
                    .lines()
                    .find(|l| l.contains("refused") && l.contains("revoked"));
                line.map(str::to_string)
                    .ok_or_else(|| anyhow!("{}", tail(&log, 4)))
            },
        )
        .await;
        match refused {
            Ok(line) => eprintln!("refused reconnect: {line}"),
            // An agent that stops for good on revocation is fine too, if it said why.
            Err(e) if !victim.is_running() => eprintln!("agent exited after revocation ({e:#})"),
            Err(e) => return Err(e),
        }

        // A fresh start of the revoked agent is refused as well, with the reason in its log.
        if victim.is_running() {
            victim.term().await?;
        }
        victim.run(&env)?;
        let log = victim.wait_log("revoked", secs(30)).await?;
        ensure!(
            !log.contains("connected to the center"),
            "the revoked agent got a session again:\n{}",
            tail(&log, 10)
        );

        // And the gateway refuses its certificate at the door (no session, no config frame).
        let raw = gateway_connect(
            center.gateway_port,
            &center.ca_pem,
            Some((&victim.cert_pem()?, &victim.key_pem()?)),
        )
        .await;
        if let Ok(mut ws) = raw {
            ws_send(&mut ws, hello_frame()).await.ok();
            match ws_recv(&mut ws, secs(5)).await {
                Frame::Text(_, v) if v["kind"] == "config" => {
                    bail!("the gateway accepted a revoked certificate and sent config")
                }
                other => eprintln!("revoked cert on a raw session: {other:?}"),
            }
        }

        let s = api.server(&victim.server_id).await?;
        ensure!(
            s["agent_status"] == "offline" && s["agent_reason"] == "revoked",
            "still want offline/revoked: {}",
            status_line(&s)
        );
        let s = api.server(&other.server_id).await?;
        ensure!(
            s["agent_status"] == "online",
            "the other agent should be untouched: {}",
            status_line(&s)
        );
        Ok(())
    })
    .await
}
