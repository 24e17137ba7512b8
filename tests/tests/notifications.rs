//! Alarm notifications end to end: a real center, alarms through a real agent session and the
//! gateway's records path, a real mail server (exim4, STARTTLS and TLS-on-connect with a test
//! CA the channels pin, AUTH, a Maildir) and a webhook receiver in the test. The real-time
//! alarm email and the daily summary arrive; the receiver checks the HMAC signature and the
//! Slack and Teams shapes; a relay refusing the password, a webhook that times out and one
//! that fails show their errors, keep the notification and deliver it once fixed (the failed
//! one by a retry); a filtered channel sends nothing; a repeat notifies nobody; and a center
//! killed while a notification is pending (mail server down) delivers it exactly once after
//! its restart.

use hmac::{Hmac, Mac};
use hostward_e2e::mail::{Exim, HookReceiver, SMTP_PASSWORD, SMTP_USER};
use hostward_e2e::*;
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_proto::{Envelope, Message};
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "whsec-e2e-0123456789";

fn alarm_frame(seq: u64, ip: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Envelope::record(
        seq,
        Message::Alarm(Alarm {
            ts,
            alarm_type: "brute_force".into(),
            key: ip.into(),
            count: 5,
            evidence: Evidence {
                source_ip: Some(ip.into()),
                users: vec!["root".into()],
                service: Some("ssh".into()),
                ..Default::default()
            },
        }),
    )
    .to_json()
}

/// Sends one alarm record in a session of its own (a raw session sends no heartbeats, so one
/// kept open would be closed after three intervals) and waits for its ack. Returns when it was
/// sent.
async fn raise(center: &Center, agent: &Agent, seq: u64, ip: &str) -> Result<std::time::Instant> {
    let mut ws = gateway_connect(
        center.gateway_port,
        &center.ca_pem,
        Some((&agent.cert_pem()?, &agent.key_pem()?)),
    )
    .await?;
    ws_send(&mut ws, hello_frame()).await?;
    ws_recv_kind(&mut ws, "config", secs(10)).await?;
    let sent = std::time::Instant::now();
    ws_send(&mut ws, alarm_frame(seq, ip)).await?;
    loop {
        let ack = ws_recv_kind(&mut ws, "ack", secs(20)).await?;
        if ack["body"]["seq"].as_u64().is_some_and(|s| s >= seq) {
            return Ok(sent);
        }
    }
}

fn email_channel(
    name: &str,
    exim: &Exim,
    to: &str,
    port: u16,
    security: &str,
    secret: &str,
) -> Value {
    json!({
        "name": name,
        "kind": "email",
        "summary": false,
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": SMTP_USER,
            "from": "Hostward <hostward@test.invalid>",
            "to": [to],
            "ca_pem": exim.ca_pem,
        },
        "secret": secret,
    })
}

fn hook_channel(name: &str, url: &str, format: &str, timeout: u64) -> Value {
    json!({
        "name": name,
        "kind": "webhook",
        "summary": false,
        "webhook": {"url": url, "format": format, "timeout_secs": timeout},
        "secret": SIGNING_SECRET,
    })
}

/// Verifies `X-Hostward-Signature: t=…,v1=…` as a receiver would.
fn signed(r: &mail::HookRequest) -> bool {
    let header = r.header("x-hostward-signature");
    let (Some(t), Some(v1)) = (
        header.split(',').find_map(|p| p.strip_prefix("t=")),
        header.split(',').find_map(|p| p.strip_prefix("v1=")),
    ) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

async fn deliveries(api: &Api, project: &str, channel: &str) -> Result<Vec<Value>> {
    let r = api
        .get(&format!(
            "/api/v1/projects/{project}/notifications?channel_id={channel}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"].as_array().cloned().unwrap_or_default())
}

/// The channel's only delivery whose payload is about `ip`, once `pred` holds for it.
async fn wait_delivery(
    api: &Api,
    project: &str,
    channel: &str,
    ip: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_until(what, secs(60), millis(200), || async {
        let all = deliveries(api, project, channel).await?;
        let mine: Vec<&Value> = all.iter().filter(|d| d["payload"]["key"] == ip).collect();
        ensure!(
            mine.len() == 1,
            "{} deliveries about {ip}: {all:?}",
            mine.len()
        );
        ensure!(pred(mine[0]), "not yet: {}", mine[0]);
        Ok(mine[0].clone())
    })
    .await
}

fn mails_to(exim: &Exim, to: &str, subject_part: &str) -> Result<Vec<mail::Mail>> {
    Ok(exim
        .mails()?
        .into_iter()
        .filter(|m| m.to.contains(to) && m.subject.contains(subject_part))
        .collect())
}

#[tokio::test]
async fn alarms_reach_a_real_mail_server_and_webhooks_once_through_failures_and_a_killed_center()
-> Result<()> {
    let env = TestEnv::new("notifications");
    env.run(async {
        let mut exim = Exim::start(&env).await?;
        let hooks = HookReceiver::start(4).await?;
        let mut center = Center::start(
            &env,
            Backend::Sqlite,
            CenterOpts {
                extra_args: vec![
                    "--notify-retry-secs".into(),
                    "1,2,2,2,2".into(),
                    "--notify-utc-offset".into(),
                    "Z".into(),
                ],
                ..Default::default()
            },
        )
        .await?;
        let api = center.api();
        let projects = api.get("/api/v1/projects").await?.expect(200)?;
        let project = projects.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "default")
            .and_then(|p| p["id"].as_str())
            .ok_or_else(|| anyhow!("no default project: {}", projects.text))?
            .to_string();
        let channels = format!("/api/v1/projects/{project}/notification-channels");

        // The channels: mail through STARTTLS with the daily summary due this very minute (the
        // center reads times in UTC here), mail through TLS-on-connect with a wrong password,
        // mail for critical alarms only, Slack and Teams shapes, a webhook that stalls past its
        // time limit and one that fails.
        let now_hhmm = {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            format!("{:02}:{:02}", (t % 86_400) / 3600, (t % 3600) / 60)
        };
        let mut good = email_channel(
            "ops mail",
            &exim,
            "ops@test.invalid",
            exim.port,
            "starttls",
            SMTP_PASSWORD,
        );
        good["summary"] = json!(true);
        good["summary_at"] = json!(now_hhmm);
        let good = api.post(&channels, good).await?.expect(201)?.json;
        ensure!(
            good["has_secret"] == true && good.get("secret").is_none(),
            "secret echoed: {good}"
        );
        let bad_pw_body = email_channel(
            "sec mail",
            &exim,
            "sec@test.invalid",
            exim.tls_port,
            "tls",
            "wrong-password",
        );
        let bad_pw = api
            .post(&channels, bad_pw_body.clone())
            .await?
            .expect(201)?
            .json;
        let mut critical = email_channel(
            "critical mail",
            &exim,
            "crit@test.invalid",
            exim.port,
            "starttls",
            SMTP_PASSWORD,
        );
        critical["filters"] = json!({"min_severity": "critical"});
        let critical = api.post(&channels, critical).await?.expect(201)?.json;
        api.post(
            &channels,
            hook_channel("slack", &hooks.url("/slack"), "slack", 5),
        )
        .await?
        .expect(201)?;
        api.post(
            &channels,
            hook_channel("teams", &hooks.url("/teams"), "teams", 5),
        )
        .await?
        .expect(201)?;
        let stall = api
            .post(
                &channels,
                hook_channel("stalling", &hooks.url("/stall"), "hostward", 1),
            )
            .await?
            .expect(201)?
            .json;
        let fail = api
            .post(
                &channels,
                hook_channel("failing", &hooks.url("/fail"), "hostward", 5),
            )
            .await?
            .expect(201)?
            .json;
        let id = |c: &Value| c["id"].as_str().unwrap_or_default().to_string();
        let listed = api.get(&channels).await?.expect(200)?;
        ensure!(
            !listed.text.contains(SMTP_PASSWORD) && !listed.text.contains(SIGNING_SECRET),
            "a secret in the list: {}",
            listed.text
        );

        // A real agent identity, a real gateway session: the alarm goes through the records path.
        let token = center.create_token(&["--name", "notify"]).await?;
        let mut agent = Agent::new(&env, "notify");
        agent.enroll(&env, &center, &token.secret).await?;
        let host = hostname();
        let ip1 = "192.0.2.10";
        let raised = raise(&center, &agent, 1, ip1).await?;

        // The real-time alarm email: server name, type and severity.
        let m = wait_until(
            "the alarm email in the Maildir",
            secs(30),
            millis(100),
            || async {
                let m = mails_to(&exim, "ops@test.invalid", "alarm on")?;
                ensure!(m.len() == 1, "{} alarm mails to ops", m.len());
                Ok(m[0].clone())
            },
        )
        .await?;
        eprintln!(
            "alarm email in the Maildir {} ms after the record was sent",
            raised.elapsed().as_millis()
        );
        ensure!(
            m.subject.contains(&format!("HIGH alarm on {host}"))
                && m.subject.contains("Brute-force password guessing"),
            "subject {:?}",
            m.subject
        );
        for want in [
            format!("Server: {host}"),
            "Severity: high".into(),
            "Type: Brute-force password guessing (brute_force)".into(),
            format!("Source: {ip1}"),
        ] {
            ensure!(m.text.contains(&want), "{want:?} missing from {}", m.text);
        }

        // The daily summary, due this minute, arrives once.
        let s = wait_until(
            "the daily summary in the Maildir",
            secs(30),
            millis(200),
            || async {
                let m = mails_to(&exim, "ops@test.invalid", "Daily alarm summary")?;
                ensure!(m.len() == 1, "{} summaries", m.len());
                Ok(m[0].clone())
            },
        )
        .await?;
        // (It counts the 24 hours up to this minute's start, which the alarm may be after.)
        ensure!(
            s.subject.contains("(default)") && s.text.contains("unhandled, "),
            "summary {:?}: {}",
            s.subject,
            s.text
        );
        // "Send a test" of the summary (the last 24 hours up to now) goes the same way, counts
        // the alarm and says how it went.
        let t = api
            .post(
                &format!("/api/v1/notification-channels/{}/test", id(&good)),
                json!({"kind": "summary"}),
            )
            .await?
            .expect(200)?;
        ensure!(t.json["state"] == "sent", "test summary: {}", t.text);
        let ts = mails_to(&exim, "ops@test.invalid", "[test] Daily alarm summary")?;
        ensure!(ts.len() == 1, "{} test summaries", ts.len());
        ensure!(
            ts[0].subject.contains("1 alarm, 1 unhandled")
                && ts[0]
                    .text
                    .contains("Brute-force password guessing (brute_force)")
                && ts[0].text.contains(&host),
            "test summary {:?}: {}",
            ts[0].subject,
            ts[0].text
        );

        // Slack and Teams shapes, signed.
        let (sl, tm) = wait_until("both chat webhooks", secs(30), millis(100), || async {
            let (s, t) = (hooks.to("/slack"), hooks.to("/teams"));
            ensure!(
                s.len() == 1 && t.len() == 1,
                "slack {}, teams {}",
                s.len(),
                t.len()
            );
            Ok((s[0].clone(), t[0].clone()))
        })
        .await?;
        for r in [&sl, &tm] {
            ensure!(signed(r), "bad signature on {}: {:?}", r.path, r.headers);
            ensure!(
                r.header("x-hostward-event") == "alarm"
                    && !r.header("x-hostward-delivery").is_empty(),
                "{:?}",
                r.headers
            );
        }
        let sj = sl.json();
        ensure!(
            sj["text"].as_str().is_some_and(|t| t.contains(&host))
                && sj["blocks"][0]["type"] == "header",
            "slack body {sj}"
        );
        let tj = tm.json();
        ensure!(
            tj["@type"] == "MessageCard" && tj["sections"][0]["facts"][0]["value"] == host.as_str(),
            "teams body {tj}"
        );

        // A filtered channel sends nothing and says why.
        let d = wait_delivery(
            &api,
            &project,
            &id(&critical),
            ip1,
            "the critical-only channel's decision",
            |d| d["state"] == "skipped",
        )
        .await?;
        ensure!(
            d["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("below critical"),
            "{d}"
        );

        // The relay refuses the password: a clear error, the notification kept and retried,
        // then sent once the password is right.
        let d = wait_delivery(
            &api,
            &project,
            &id(&bad_pw),
            ip1,
            "the refused login's error",
            |d| d["attempts"].as_i64() >= Some(1),
        )
        .await?;
        let err = d["last_error"].as_str().unwrap_or("");
        ensure!(
            d["state"] == "pending" && err.contains("535"),
            "refused login: {d}"
        );
        let failing = api
            .get(&format!(
                "/api/v1/projects/{project}/notifications?state=failing"
            ))
            .await?
            .expect(200)?;
        ensure!(
            failing.text.contains(&id(&bad_pw)),
            "the failing view lacks it: {}",
            failing.text
        );
        let mut fixed = bad_pw_body.clone();
        fixed["secret"] = json!(SMTP_PASSWORD);
        api.put(
            &format!("/api/v1/notification-channels/{}", id(&bad_pw)),
            fixed,
        )
        .await?
        .expect(200)?;
        wait_delivery(
            &api,
            &project,
            &id(&bad_pw),
            ip1,
            "the fixed channel's delivery",
            |d| d["state"] == "sent",
        )
        .await?;
        let sec = mails_to(&exim, "sec@test.invalid", "alarm on")?;
        ensure!(sec.len() == 1, "{} mails to sec", sec.len());

        // The stalling webhook: timed out, kept, then delivered with the same delivery id.
        let d = wait_delivery(
            &api,
            &project,
            &id(&stall),
            ip1,
            "the time-out error",
            |d| d["attempts"].as_i64() >= Some(1),
        )
        .await?;
        ensure!(
            d["last_error"].as_str().unwrap_or("").contains("timed out"),
            "{d}"
        );
        hooks
            .stall
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let d = wait_delivery(
            &api,
            &project,
            &id(&stall),
            ip1,
            "the stalled webhook's delivery",
            |d| d["state"] == "sent",
        )
        .await?;
        let seen = hooks.to("/stall");
        ensure!(
            seen.len() >= 2
                && seen
                    .iter()
                    .all(|r| r.header("x-hostward-delivery") == d["id"].as_str().unwrap_or("-")),
            "one delivery id across retries: {seen:?}"
        );
        ensure!(
            seen.iter().filter(|r| r.answered == 200).count() == 1,
            "answered once: {seen:?}"
        );

        // The failing webhook: every attempt fails, it ends failed with the error; a retry
        // after the receiver is back sends it.
        let d = wait_delivery(
            &api,
            &project,
            &id(&fail),
            ip1,
            "the failing webhook to end failed",
            |d| d["state"] == "failed",
        )
        .await?;
        ensure!(
            d["last_error"].as_str().unwrap_or("").contains("HTTP 500"),
            "{d}"
        );
        hooks.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        api.post(
            &format!(
                "/api/v1/notifications/{}/retry",
                d["id"].as_str().unwrap_or("")
            ),
            json!({}),
        )
        .await?
        .expect(200)?;
        wait_delivery(
            &api,
            &project,
            &id(&fail),
            ip1,
            "the retried delivery",
            |d| d["state"] == "sent",
        )
        .await?;

        // A repeat of the open alarm adds to its count and notifies nobody.
        raise(&center, &agent, 2, ip1).await?;
        tokio::time::sleep(secs(2)).await;
        ensure!(
            mails_to(&exim, "ops@test.invalid", "alarm on")?.len() == 1,
            "a repeat was mailed"
        );
        ensure!(hooks.to("/slack").len() == 1, "a repeat was posted");

        let metrics = center.metrics().await?;
        ensure!(
            metric(
                &metrics,
                "hostward_notifications_failed_total",
                &[("channel", "webhook")]
            )
            .is_some_and(|n| n >= 1.0),
            "/metrics: {metrics}"
        );

        // Killed while a notification is pending: the mail server is down, the center dies,
        // both come back: the mail arrives exactly once.
        exim.stop().await?;
        let ip2 = "192.0.2.20";
        raise(&center, &agent, 3, ip2).await?;
        let d = wait_delivery(
            &api,
            &project,
            &id(&good),
            ip2,
            "an attempt against the stopped mail server",
            |d| d["attempts"].as_i64() >= Some(1),
        )
        .await?;
        ensure!(
            d["state"] == "pending"
                && d["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Connection refused"),
            "mail server down: {d}"
        );
        center.kill9().await?;
        exim.restart(&env).await?;
        center.restart(&env).await?;
        let api = center.api();
        wait_until(
            "the pending alarm email after the restart",
            secs(60),
            millis(200),
            || async {
                let m = mails_to(&exim, "ops@test.invalid", "alarm on")?;
                ensure!(m.len() == 2, "{} alarm mails to ops", m.len());
                Ok(())
            },
        )
        .await?;
        tokio::time::sleep(secs(3)).await;
        let m: Vec<_> = mails_to(&exim, "ops@test.invalid", "alarm on")?
            .into_iter()
            .filter(|m| m.text.contains(ip2))
            .collect();
        ensure!(
            m.len() == 1,
            "the pending alarm was mailed {} times",
            m.len()
        );
        let d = wait_delivery(
            &api,
            &project,
            &id(&good),
            ip2,
            "the delivery marked sent",
            |d| d["state"] == "sent",
        )
        .await?;
        ensure!(
            m[0].message_id.contains(d["id"].as_str().unwrap_or("-")),
            "message id {:?} is the delivery's {}",
            m[0].message_id,
            d["id"]
        );

        // Nothing pending is left; /metrics counts.
        let metrics = center.metrics().await?;
        ensure!(
            metric(
                &metrics,
                "hostward_notifications_sent_total",
                &[("channel", "email")]
            )
            .is_some_and(|n| n >= 1.0),
            "/metrics: {metrics}"
        );
        ensure!(
            metrics.contains("hostward_notifications_outbox_depth"),
            "/metrics lacks the outbox depth"
        );
        let logs = center.stderr();
        ensure!(
            !logs.contains(SMTP_PASSWORD)
                && !logs.contains(SIGNING_SECRET)
                && !logs.contains("wrong-password"),
            "a secret in the center's log"
        );
        Ok(())
    })
    .await
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Waits for the Maildir to hold `n` messages; the time it took.
async fn until_delivered(exim: &Exim, n: usize, from: std::time::Instant) -> Result<f64> {
    let dir = exim.maildir();
    wait_until("a delivery", secs(30), millis(2), || {
        let dir = dir.clone();
        async move {
            let have = mail::count_files(&dir);
            ensure!(have >= n, "{have} of {n}");
            Ok(())
        }
    })
    .await?;
    Ok(from.elapsed().as_secs_f64() * 1000.0)
}

/// `bench/notify.sh` part (a): alarm-to-inbox latency through exim, with exim's own floor
/// (direct SMTP submission, STARTTLS and AUTH as the center does, to delivery in the
/// Maildir) measured in the same run. Not a test: run with `--ignored`; `NOTIFY_BENCH_N`
/// alarms (default 50).
#[tokio::test]
#[ignore]
async fn bench_alarm_to_inbox_latency() -> Result<()> {
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
    let n: usize = std::env::var("NOTIFY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let env = TestEnv::new("notify-bench");
    env.run(async {
        let exim = Exim::start(&env).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let projects = api.get("/api/v1/projects").await?.expect(200)?;
        let project = projects.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.post(
            &format!("/api/v1/projects/{project}/notification-channels"),
            email_channel(
                "bench",
                &exim,
                "ops@test.invalid",
                exim.port,
                "starttls",
                SMTP_PASSWORD,
            ),
        )
        .await?
        .expect(201)?;
        let token = center.create_token(&["--name", "bench"]).await?;
        let mut agent = Agent::new(&env, "bench");
        agent.enroll(&env, &center, &token.secret).await?;

        // Warm-up: one alarm (the first connection to the relay, the first TLS handshake).
        raise(&center, &agent, 1, "198.19.0.1").await?;
        until_delivered(&exim, 1, std::time::Instant::now()).await?;
        let mut alarm_ms = Vec::new();
        for i in 0..n {
            let t0 = raise(
                &center,
                &agent,
                i as u64 + 2,
                &format!("198.19.{}.{}", 1 + i / 200, 1 + i % 200),
            )
            .await?;
            alarm_ms.push(until_delivered(&exim, i + 2, t0).await?);
            tokio::time::sleep(millis(100)).await;
        }

        // The floor: the same relay, the same TLS and AUTH, a pooled connection as the center has.
        let tls = lettre::transport::smtp::client::TlsParameters::builder("127.0.0.1".into())
            .certificate_store(lettre::transport::smtp::client::CertificateStore::None)
            .add_root_certificate(lettre::transport::smtp::client::Certificate::from_pem(
                exim.ca_pem.as_bytes(),
            )?)
            .build_rustls()?;
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(exim.port)
            .tls(lettre::transport::smtp::client::Tls::Required(tls))
            .credentials(lettre::transport::smtp::authentication::Credentials::new(
                SMTP_USER.into(),
                SMTP_PASSWORD.into(),
            ))
            .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(1))
            .build();
        let mut floor_ms = Vec::new();
        let base = mail::count_files(&exim.maildir());
        for i in 0..n {
            let m = lettre::Message::builder()
                .from("bench@test.invalid".parse()?)
                .to("ops@test.invalid".parse()?)
                .subject(format!("floor {i}"))
                .body(format!("direct submission {i}\n"))?;
            let t0 = std::time::Instant::now();
            smtp.send(m).await?;
            floor_ms.push(until_delivered(&exim, base + i + 1, t0).await?);
            tokio::time::sleep(millis(100)).await;
        }
        for v in [&mut alarm_ms, &mut floor_ms] {
            v.sort_by(|a, b| a.total_cmp(b));
        }
        println!(
            "NOTIFY-BENCH alarm_to_inbox_ms median={:.0} p95={:.0} max={:.0} n={n}",
            percentile(&alarm_ms, 0.5),
            percentile(&alarm_ms, 0.95),
            alarm_ms[n - 1]
        );
        println!(
            "NOTIFY-BENCH smtp_floor_ms median={:.0} p95={:.0} max={:.0} n={n}",
            percentile(&floor_ms, 0.5),
            percentile(&floor_ms, 0.95),
            floor_ms[n - 1]
        );
        Ok(())
    })
    .await
}
