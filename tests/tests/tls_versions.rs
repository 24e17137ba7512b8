//! TLS 1.3 only, on both ports, as a real client sees it: curl offering at most TLS 1.2 is
//! refused by the console/API port and by the agent gateway (even with a valid agent
//! certificate), while the same curl with TLS 1.3 is served.

use anyhow::{Result, ensure};
use hostward_e2e::*;

async fn curl(args: &[&str]) -> Result<Output> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd_timeout(std::path::Path::new("curl"), &args, None, secs(30)).await
}

#[tokio::test]
async fn both_ports_speak_tls_1_3_only() -> Result<()> {
    let env = TestEnv::new("tls-versions");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api_url = format!("{}/healthz", center.url());
        let old = curl(&[
            "-sk",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "-o",
            "/dev/null",
            &api_url,
        ])
        .await?;
        ensure!(!old.success(), "8443 accepted TLS 1.2: {}", old.text());
        let new = curl(&["-sk", "--tlsv1.3", &api_url]).await?;
        ensure!(
            new.success() && new.stdout.contains("ok"),
            "8443 over TLS 1.3: {}",
            new.text()
        );

        let token = center.create_token(&["--name", "tls"]).await?;
        let mut agent = Agent::new(&env, "tls");
        agent.enroll(&env, &center, &token.secret).await?;
        let (cert, key) = (
            agent.state_dir.join("agent.crt"),
            agent.state_dir.join("agent.key"),
        );
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let gw_url = format!(
            "https://127.0.0.1:{}{}",
            center.gateway_port,
            hostward_proto::AGENT_WS_PATH
        );
        let with_cert = [
            "-sk",
            "--cert",
            &cert,
            "--key",
            &key,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        let old =
            curl(&[&with_cert[..], &["--tlsv1.2", "--tls-max", "1.2", &gw_url]].concat()).await?;
        ensure!(
            !old.success(),
            "the gateway accepted TLS 1.2: {}",
            old.text()
        );
        let new = curl(&[&with_cert[..], &["--tlsv1.3", &gw_url]].concat()).await?;
        // A plain GET is no WebSocket upgrade, so an HTTP error answers: TLS itself went through.
        ensure!(
            new.success() && new.stdout.trim().starts_with('4'),
            "the gateway over TLS 1.3 with the agent's certificate: {}",
            new.text()
        );
        Ok(())
    })
    .await
}
