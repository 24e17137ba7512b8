//! Must hold #4: bad input is refused with the right message and leaves nothing behind.
//! - enrollment with a wrong / expired / revoked token, from a disallowed CIDR, or with the wrong
//!   CA fingerprint fails with the right message and creates no server;
//! - the gateway refuses TLS clients with no certificate or one from another CA;
//! - malformed / oversized / unknown-kind frames on a real agent identity's session get an error
//!   frame (or a clean close), are counted in /metrics, and another agent stays online;
//! - an invalid config file stops `hostward serve` with a message naming the key and line;
//! - API bodies with wrong types answer 400 naming the field.

use hostward_e2e::*;
use serde_json::json;

fn no_identity(agent: &Agent) -> Result<()> {
    let p = agent.state_dir.join("identity.json");
    ensure!(
        !p.exists(),
        "{} exists after a failed enrollment",
        p.display()
    );
    Ok(())
}

#[tokio::test]
async fn refused_enrollments_name_the_cause_and_create_no_server() -> Result<()> {
    let env = TestEnv::new("enroll-refusals");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let fp = center.ca_fingerprint()?;
        let cli_fp = center.cli(&["ca", "fingerprint"], None).await?.ok()?;
        ensure!(
            cli_fp.stdout.trim() == fp,
            "`hostward ca fingerprint` printed {:?}, want {fp}",
            cli_fp.stdout.trim()
        );

        let good = center.create_token(&["--name", "good"]).await?;
        ensure!(
            good.ca_sha256 == fp,
            "token create's ca_sha256 {} != {fp}",
            good.ca_sha256
        );
        ensure!(
            good.install_command.contains(&good.secret) && good.install_command.contains(&fp),
            "install command lacks token or fingerprint: {}",
            good.install_command
        );
        let expired = center
            .create_token(&["--name", "expired", "--expires-in-secs", "1"])
            .await?;
        let revoked = center.create_token(&["--name", "revoked"]).await?;
        center
            .cli(&["token", "revoke", &revoked.id], None)
            .await?
            .ok()?;
        let fenced = center
            .create_token(&["--name", "fenced", "--allow-cidr", "10.99.0.0/16"])
            .await?;
        let (other_ca, _) = hostward_pki::Ca::generate("Some other CA")?;
        // Let the 1-second token expire (expiry has one-second resolution).
        tokio::time::sleep(millis(2100)).await;

        let url = center.url();
        let cases: Vec<(&str, String, String, &str)> = vec![
            (
                "wrong-token",
                format!("hwe_{}", "x".repeat(40)),
                fp.clone(),
                "invalid_token",
            ),
            (
                "expired-token",
                expired.secret.clone(),
                fp.clone(),
                "token_expired",
            ),
            (
                "revoked-token",
                revoked.secret.clone(),
                fp.clone(),
                "token_revoked",
            ),
            (
                "disallowed-cidr",
                fenced.secret.clone(),
                fp.clone(),
                "cidr_not_allowed",
            ),
            (
                "wrong-ca",
                good.secret.clone(),
                other_ca.fingerprint(),
                "CA fingerprint mismatch",
            ),
        ];
        for (label, token, pin, want) in &cases {
            let agent = Agent::new(&env, label);
            let out = agent.try_enroll(&url, token, pin).await?;
            ensure!(
                !out.success(),
                "{label}: enrollment should fail but succeeded:\n{out}"
            );
            ensure!(
                out.text().contains(want),
                "{label}: the message should contain {want:?}:\n{out}"
            );
            no_identity(&agent)?;
            eprintln!(
                "{label}: refused as expected: {}",
                tail(out.stderr.trim(), 2)
            );
        }

        let servers = api.servers().await?;
        ensure!(
            servers.is_empty(),
            "refused enrollments created servers: {servers:?}"
        );
        let listed = center.cli_json(&["server", "list", "--json"]).await?;
        ensure!(
            listed.as_array().is_some_and(|a| a.is_empty()),
            "`server list --json` after refusals: {listed}"
        );

        // The same center and the good token do enroll: the refusals above were about the input.
        let mut ok = Agent::new(&env, "good");
        ok.enroll(&env, &center, &good.secret).await?;
        let servers = api.servers().await?;
        ensure!(
            servers.len() == 1 && servers[0]["id"] == ok.server_id.as_str(),
            "want exactly the good server: {servers:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn gateway_refuses_clients_without_a_certificate_from_our_ca() -> Result<()> {
    let env = TestEnv::new("gateway-tls");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let token = center.create_token(&["--name", "tls"]).await?;
        let mut real = Agent::new(&env, "real");
        real.enroll(&env, &center, &token.secret).await?;

        // No client certificate at all.
        match gateway_connect(center.gateway_port, &center.ca_pem, None).await {
            Ok(_) => bail!("the gateway accepted a TLS client without a certificate"),
            Err(e) => eprintln!("no certificate: refused: {e:#}"),
        }

        // A certificate from another CA, even one claiming the real agent's id.
        let (evil, _) = hostward_pki::Ca::generate("Hostward CA (impostor)")?;
        let (key, csr) = hostward_pki::agent_key_and_csr("impostor")?;
        let forged = evil.sign_agent_csr(&csr, &real.agent_id)?;
        match gateway_connect(
            center.gateway_port,
            &center.ca_pem,
            Some((&forged.cert_pem, &key)),
        )
        .await
        {
            Ok(_) => bail!("the gateway accepted a certificate from another CA"),
            Err(e) => eprintln!("foreign CA: refused: {e:#}"),
        }

        // Control: the real agent's certificate opens a session and gets its config.
        let mut ws = gateway_connect(
            center.gateway_port,
            &center.ca_pem,
            Some((&real.cert_pem()?, &real.key_pem()?)),
        )
        .await?;
        ws_send(&mut ws, hello_frame()).await?;
        ws_recv_kind(&mut ws, "config", secs(10)).await?;
        Ok(())
    })
    .await
}

fn rejected(metrics: &str, reason: &str) -> f64 {
    metric(
        metrics,
        "hostward_gateway_frames_rejected_total",
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn bad_frames_get_error_frames_are_counted_and_spare_other_agents() -> Result<()> {
    let env = TestEnv::new("bad-frames");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let bystander = Agent::start(&env, &center, "bystander").await?;
        api.wait_status(&bystander.server_id, "online", None, secs(30)).await?;
        let token = center.create_token(&["--name", "raw"]).await?;
        let mut raw = Agent::new(&env, "raw");
        raw.enroll(&env, &center, &token.secret).await?;

        let before = center.metrics().await?;
        let mut ws = gateway_connect(center.gateway_port, &center.ca_pem, Some((&raw.cert_pem()?, &raw.key_pem()?))).await?;
        ws_send(&mut ws, hello_frame()).await?;
        ws_recv_kind(&mut ws, "config", secs(10)).await?;
        api.wait_status(&raw.server_id, "online", None, secs(10)).await?;

        // Malformed JSON.
        ws_send(&mut ws, "{this is not json".into()).await?;
        let e = ws_recv_kind(&mut ws, "error", secs(10)).await?;
        ensure!(e["body"]["code"] == "malformed", "malformed frame answered {e}");
        // A kind nobody knows.
        ws_send(&mut ws, r#"{"v":1,"seq":0,"kind":"launch_missiles","body":{}}"#.into()).await?;
        let e = ws_recv_kind(&mut ws, "error", secs(10)).await?;
        ensure!(e["body"]["code"] == "unknown_kind", "unknown kind answered {e}");
        // The session is still up: a record is stored and acked.
        ws_send(&mut ws, event_frame(1, "e2e.after_bad_frames", json!({"n": 1}))).await?;
        let ack = ws_recv_kind(&mut ws, "ack", secs(10)).await?;
        ensure!(ack["body"]["seq"].as_u64().is_some_and(|s| s >= 1), "ack after bad frames: {ack}");

        // Over 1 MiB: an error frame or a clean close, never a crash.
        let pad = "x".repeat(hostward_proto::MAX_FRAME_BYTES + 16);
        // (The center may stop reading mid-frame, so a failed send is looked past: what counts is
        // what comes back.)
        let sent = ws_send(&mut ws, event_frame(2, "e2e.oversized", json!({ "pad": pad }))).await;
        match ws_recv(&mut ws, secs(10)).await {
            Frame::Text(_, v) if v["kind"] == "error" && v["body"]["code"] == "oversized" => eprintln!("oversized: error frame {v}"),
            Frame::Close(c) => eprintln!("oversized: clean close {c:?}"),
            other => bail!(
                "a frame over 1 MiB should get an `oversized` error frame or a close frame, got {other:?} (sending it: {:?})",
                sent.err().map(|e| format!("{e:#}"))
            ),
        }

        wait_until("the rejected frames to be counted in /metrics", secs(10), millis(250), || async {
            let now = center.metrics().await?;
            for reason in ["malformed", "unknown_kind", "oversized"] {
                let (b, a) = (rejected(&before, reason), rejected(&now, reason));
                ensure!(a >= b + 1.0, "hostward_gateway_frames_rejected_total{{reason=\"{reason}\"}} went {b} -> {a}");
            }
            Ok(())
        })
        .await?;
        let m = center.metrics().await?;
        for name in ["hostward_agents_online", "hostward_gateway_frames_in_total", "hostward_gateway_frames_out_total", "hostward_db_latency_seconds"] {
            ensure!(metric(&m, name, &[]).is_some(), "/metrics lacks {name}");
        }

        // The center is alive and the other agent never dropped, also a few heartbeats later.
        tokio::time::sleep(secs(3)).await;
        let d = api.server_detail(&bystander.server_id).await?;
        let s = server_of(&d);
        ensure!(s["agent_status"] == "online", "the bystander went {}", status_line(s));
        let drops: Vec<_> = d["history"].as_array().into_iter().flatten().filter(|h| h["status"] == "offline").collect();
        ensure!(drops.is_empty(), "the bystander went offline meanwhile: {drops:?}");
        center.anonymous().get("/healthz").await?.expect(200)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn invalid_config_file_names_key_and_line() -> Result<()> {
    let env = TestEnv::new("bad-config");
    env.run(async {
        let dir = env.subdir("center");
        let cfg = dir.join("bad.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:{}\"\nheartbeat_secs = \"often\"\n",
                free_port()
            ),
        )?;
        let args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--gateway-listen".into(),
            format!("127.0.0.1:{}", free_port()),
        ];
        let out = run_cmd_timeout(&bin("hostward")?, &args, None, secs(30)).await?;
        ensure!(
            !out.success(),
            "serve with a bad config file should fail:\n{out}"
        );
        let text = out.text();
        ensure!(
            text.contains("heartbeat_secs") && text.contains("line 2"),
            "the message should name heartbeat_secs and line 2:\n{out}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn api_bodies_with_wrong_types_answer_400_naming_the_field() -> Result<()> {
    let env = TestEnv::new("api-bad-bodies");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();

        let r = api
            .post("/api/v1/servers", json!({ "name": 5 }))
            .await?
            .expect(400)?;
        ensure!(
            r.error_message().contains("name"),
            "400 should name `name`: {}",
            r.text
        );
        ensure!(
            !r.error_code().is_empty(),
            "error body lacks a code: {}",
            r.text
        );

        // A valid server to aim the other bad bodies at.
        let srv = api
            .post(
                "/api/v1/servers",
                json!({ "name": "web-1", "ip_addresses": ["192.0.2.10"] }),
            )
            .await?
            .expect(201)?;
        let id = srv.json["id"]
            .as_str()
            .ok_or_else(|| anyhow!("created server has no id: {}", srv.text))?
            .to_string();

        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cases = [
            (
                "PUT",
                format!("/api/v1/servers/{id}/protection"),
                json!({ "enabled": "yes" }),
                "enabled",
            ),
            (
                "POST",
                format!("/api/v1/servers/{id}/tasks"),
                json!({ "kind": 7 }),
                "kind",
            ),
            (
                "POST",
                "/api/v1/servers".to_string(),
                json!({ "name": "web-2", "ip_addresses": "192.0.2.11" }),
                "ip_addresses",
            ),
            (
                "POST",
                "/api/v1/enrollment-tokens".to_string(),
                json!({ "name": "t", "expires_in_secs": "soon" }),
                "expires_in_secs",
            ),
            (
                "PUT",
                format!("/api/v1/projects/{project}/risk-policy"),
                json!({ "jitter_secs": "lots" }),
                "jitter_secs",
            ),
            (
                "PUT",
                format!("/api/v1/projects/{project}/risk-policy"),
                json!({ "window_start_min": 1500 }),
                "window_start_min",
            ),
            (
                "PUT",
                format!("/api/v1/projects/{project}/risk-policy"),
                json!({ "custom_weak_passwords": ["ok", "bad\u{7}"] }),
                "custom_weak_passwords[1]",
            ),
            (
                "PUT",
                format!("/api/v1/projects/{project}/risk-policy"),
                json!({ "allow_fixes": true }),
                "allow_fixes",
            ),
            (
                "POST",
                "/api/v1/vulnerabilities/actions".to_string(),
                json!({ "action": "patch", "finding_ids": ["x"] }),
                "action",
            ),
            (
                "POST",
                "/api/v1/vulnerabilities/actions".to_string(),
                json!({ "action": "ignore", "finding_ids": [] }),
                "finding_ids",
            ),
            (
                "POST",
                "/api/v1/vulnerability-rules".to_string(),
                json!({ "reason": "no cve nor package" }),
                "cve",
            ),
            (
                "POST",
                format!("/api/v1/servers/{id}/tasks"),
                json!({ "kind": "risk_scan", "params": { "checks": ["everything"] } }),
                "params",
            ),
            (
                "POST",
                format!("/api/v1/servers/{id}/blocked-ips"),
                json!({ "addr": "from 10.9.9.9", "minutes": 5 }),
                "addr",
            ),
            (
                "POST",
                format!("/api/v1/servers/{id}/blocked-ips"),
                json!({ "addr": "192.0.2.5", "minutes": 43201 }),
                "minutes",
            ),
            (
                "POST",
                "/api/v1/alarms/actions".to_string(),
                json!({ "action": "nuke", "alarm_ids": ["x"] }),
                "action",
            ),
            (
                "POST",
                "/api/v1/alarm-whitelist".to_string(),
                json!({ "alarm_type": "meteor", "reason": "r" }),
                "alarm_type",
            ),
            (
                "PUT",
                format!("/api/v1/servers/{id}/login-ips"),
                json!({ "ips": ["192.0.2.1"], "learning": "no" }),
                "learning",
            ),
            (
                "PUT",
                format!("/api/v1/servers/{id}/login-ips"),
                json!({ "ips": ["192.0.2.1", "192.0.2.300"], "learning": false }),
                "ips[1]",
            ),
        ];
        for (method, path, body, field) in cases {
            let r = api.send(method, &path, Some(body)).await?.expect(400)?;
            ensure!(
                r.error_message().contains(field),
                "{method} {path}: the 400 should name `{field}`: {}",
                r.text
            );
        }
        let r = api
            .get("/api/v1/servers?per_page=lots")
            .await?
            .expect(400)?;
        ensure!(
            r.error_message().contains("per_page"),
            "the 400 should name `per_page`: {}",
            r.text
        );

        let policy = api
            .get(&format!("/api/v1/projects/{project}/risk-policy"))
            .await?
            .expect(200)?;
        ensure!(
            policy.json["version"] == 0,
            "a refused risk policy was stored: {}",
            policy.text
        );
        let scans = api.get("/api/v1/scans").await?.expect(200)?;
        ensure!(
            scans.json["items"] == json!([]),
            "a refused scan was queued: {}",
            scans.text
        );
        let r = api
            .get("/api/v1/vulnerabilities?severity=urgent")
            .await?
            .expect(400)?;
        ensure!(r.error_message().contains("severity"), "{}", r.text);
        let r = api
            .get("/api/v1/vulnerabilities/findings?state=done")
            .await?
            .expect(400)?;
        ensure!(r.error_message().contains("state"), "{}", r.text);

        let login_ips = api
            .get(&format!("/api/v1/servers/{id}/login-ips"))
            .await?
            .expect(200)?;
        ensure!(
            login_ips.json["items"] == json!([]) && login_ips.json["learning"] == true,
            "a refused login address list was stored: {}",
            login_ips.text
        );

        // Nothing half-written: only the one valid server exists, with protection unchanged.
        let servers = api.servers().await?;
        ensure!(
            servers.len() == 1,
            "bad bodies created servers: {servers:?}"
        );
        ensure!(
            servers[0]["protection_wanted"] == true,
            "protection changed by a bad body: {}",
            servers[0]
        );
        Ok(())
    })
    .await
}
