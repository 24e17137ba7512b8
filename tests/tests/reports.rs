//! Security reports end to end: a real center with a real agent, and a second enrolled agent
//! identity whose alarms go through the real gateway and records path (a raw session, as the
//! agent would send them); a PDF report made through the API opens in poppler's `pdftotext`,
//! which finds every server's name and the alarm counts; the dashboard's API counts the same
//! alarms as urgent. On SQLite, and on PostgreSQL when one is configured.

use hostward_e2e::*;
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_proto::{Envelope, Message};
use serde_json::json;

fn brute_force(seq: u64, ip: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Envelope::record(
        seq,
        Message::Alarm(Alarm {
            ts: ts - 5,
            alarm_type: "brute_force".into(),
            key: ip.into(),
            count: 7,
            evidence: Evidence {
                source_ip: Some(ip.into()),
                ..Default::default()
            },
        }),
    )
    .to_json()
}

async fn report(env: &TestEnv, backend: Backend) -> Result<()> {
    let center = Center::start(env, backend, CenterOpts::default()).await?;
    let api = center.api();
    let real = Agent::start(env, &center, "reports-web").await?;
    api.wait_status(&real.server_id, "online", None, secs(30))
        .await?;
    let token = center.create_token(&["--name", "reports-db"]).await?;
    let mut raw = Agent::new(env, "reports-db");
    raw.enroll(env, &center, &token.secret).await?;
    let mut ws = gateway_connect(
        center.gateway_port,
        &center.ca_pem,
        Some((&raw.cert_pem()?, &raw.key_pem()?)),
    )
    .await?;
    ws_send(&mut ws, hello_frame()).await?;
    ws_recv_kind(&mut ws, "config", secs(10)).await?;
    // Three brute-force alarms (three source addresses), seven attempts each.
    for (seq, ip) in [(1, "192.0.2.11"), (2, "192.0.2.12"), (3, "192.0.2.13")] {
        ws_send(&mut ws, brute_force(seq, ip)).await?;
    }
    // Acks may come one by one or for all three at once.
    let mut acked = 0;
    while acked < 3 {
        let ack = ws_recv_kind(&mut ws, "ack", secs(10)).await?;
        acked = ack["body"]["seq"].as_u64().unwrap_or(0);
    }
    // A server registered without an agent: in the report too, with no alarm.
    let spare = api
        .post("/api/v1/servers", json!({"name": "spare-reports-1"}))
        .await?
        .expect_success()?;
    ensure!(spare.json["name"] == "spare-reports-1", "{}", spare.text);

    // Enrolled servers are named by their host name: both agents run on this host.
    let web = api.server(&real.server_id).await?;
    let db = api.server(&raw.server_id).await?;
    let host = web["name"].as_str().unwrap_or_default().to_string();
    ensure!(
        !host.is_empty() && db["name"] == host.as_str(),
        "{web} {db}"
    );
    let project = web["project_id"].as_str().unwrap_or_default().to_string();

    // The dashboard counts them as urgent (brute force is high).
    let d = api
        .get(&format!("/api/v1/projects/{project}/dashboard"))
        .await?
        .expect(200)?;
    let urgent = d.json["urgent_alarms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(urgent.len() == 3, "urgent alarms: {}", d.text);
    ensure!(
        urgent
            .iter()
            .all(|a| a["server_id"] == raw.server_id.as_str()),
        "{}",
        d.text
    );

    // A report of yesterday and today (UTC), as PDF.
    let day = |which: &str| -> Result<String> {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", which, "+%F"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let made = api
        .post(
            &format!("/api/v1/projects/{project}/reports"),
            json!({"range": "custom", "from": day("yesterday")?, "to": day("today")?, "formats": ["pdf"]}),
        )
        .await?
        .expect(201)?;
    let pdf_url = made.json["pdf_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let res = api
        .client
        .get(format!("{}{pdf_url}", api.base))
        .bearer_auth(api.token.clone().unwrap_or_default())
        .send()
        .await?;
    ensure!(res.status() == 200, "GET {pdf_url}: {}", res.status());
    let bytes = res.bytes().await?;
    let dir = env.subdir("report");
    let pdf = dir.join("report.pdf");
    std::fs::write(&pdf, &bytes)?;
    let out = tokio::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&pdf)
        .arg("-")
        .output()
        .await
        .context("running pdftotext (package poppler-utils)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && stderr.trim().is_empty(),
        "pdftotext: {stderr}"
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(text.contains("Alarms: 3"), "no alarm total in:\n{text}");
    ensure!(
        text.contains("3 alarm(s), 21 occurrence(s) in the range: 3 unhandled"),
        "no alarm counts in:\n{text}"
    );
    // The servers' table: each by name with its alarms (the fifth column): the raw agent's
    // server 3, the real agent's and the spare 0.
    let table = text
        .split_once("Servers: 3")
        .and_then(|(_, rest)| rest.split_once("Servers added in the range"))
        .map(|(t, _)| t)
        .ok_or_else(|| anyhow!("no servers table in:\n{text}"))?;
    let alarms_of = |name: &str| -> Vec<String> {
        // A long name is cut to the column; its start is there.
        let start: String = name.chars().take(20).collect();
        table
            .lines()
            .filter(|l| l.trim_start().starts_with(&start))
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .collect()
    };
    let mut hosts = alarms_of(&host);
    hosts.sort();
    ensure!(hosts == ["0", "3"], "{host}: alarms {hosts:?} in:\n{table}");
    ensure!(alarms_of("spare-reports-1") == ["0"], "spare: in:\n{table}");
    ensure!(
        text.contains("brute_force") && text.contains("page 1 of"),
        "no alarm type or page number in:\n{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_pdf_report_names_the_servers_and_counts_their_alarms_on_sqlite() -> Result<()> {
    let env = TestEnv::new("reports-sqlite");
    env.run(report(&env, Backend::Sqlite)).await
}

#[tokio::test]
async fn a_pdf_report_names_the_servers_and_counts_their_alarms_on_postgres() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("reports-postgres");
    env.run(report(&env, Backend::Postgres)).await
}
