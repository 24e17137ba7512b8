//! The center fetches its vulnerability feeds itself: an OSV export and a Debian Security
//! Tracker JSON served over HTTPS by a real nginx on loopback (its certificate from a CA made for
//! the test, which the center is told to trust), fetched at start and imported, the source shown
//! without credentials, a missing feed's failure logged without them; an agent's server then leaves `pending` for a verdict once its checks
//! have run. The public feeds chosen by the fleet's operating systems are unit-tested
//! (capabilities/risk/feeds.rs): tests never reach the internet.

use hostward_e2e::*;
use serde_json::json;

#[tokio::test]
async fn feeds_are_fetched_over_https_at_start_and_imported() -> Result<()> {
    let env = TestEnv::new("vulndb-fetch");
    env.run(async {
        let www = env.subdir("feeds");
        std::fs::create_dir_all(www.join("osv"))?;
        let osv = json!({
            "schema_version": "1.6.0",
            "id": "DEBIAN-CVE-2099-4242",
            "aliases": ["CVE-2099-4242"],
            "summary": "hostward e2e fetched advisory",
            "published": "2026-11-01T00:00:00Z",
            "affected": [{
                "package": {"ecosystem": "Debian:12", "name": "hostward-no-such-package"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}],
            }],
        });
        std::fs::write(www.join("osv/advisory.json"), serde_json::to_vec(&osv)?)?;
        let tracker = json!({"hostward-no-such-source": {"CVE-2099-4343": {
            "description": "hostward e2e fetched tracker entry",
            "scope": "local",
            "releases": {"bookworm": {"status": "open", "fixed_version": null, "urgency": "high", "repositories": {"bookworm": "1"}}},
        }}});
        std::fs::write(www.join("tracker.json"), serde_json::to_vec(&tracker)?)?;
        let (_nginx, port, ca) = hostward_e2e::web::nginx_https(&env, &www, "tracker.json").await?;

        // A third feed is missing (404): its failure is logged without its secret query.
        let urls = format!(
            "https://feed-user:secret@127.0.0.1:{port}/osv/advisory.json,https://127.0.0.1:{port}/tracker.json?token=secret,https://127.0.0.1:{port}/missing.json?token=secret"
        );
        let opts = CenterOpts {
            extra_args: vec![
                "--vulndb-fetch".into(),
                "on".into(),
                "--vulndb-url".into(),
                urls,
                "--vulndb-ca-file".into(),
                ca.display().to_string(),
            ],
            ..Default::default()
        };
        let center = Center::start(&env, Backend::Sqlite, opts).await?;
        let api = center.api();
        let db = wait_until("both feeds imported", secs(60), millis(250), || async {
            let r = api.get("/api/v1/vulndb").await?.expect(200)?;
            ensure!(r.json["status"]["advisories"] == 2, "{}", r.text);
            Ok(r.json)
        })
        .await?;
        let text = db.to_string();
        ensure!(
            !text.contains("secret") && !text.contains("feed-user"),
            "credentials and queries are not shown: {text}"
        );
        ensure!(
            text.contains(&format!("https://127.0.0.1:{port}/tracker.json")),
            "the source is named: {text}"
        );
        let log = wait_until("the missing feed's failure logged", secs(30), millis(250), || async {
            let log = center.stderr();
            ensure!(log.contains("vulnerability feed fetch failed"), "not yet");
            Ok(log)
        })
        .await?;
        ensure!(
            log.contains("/missing.json") && log.contains("404") && !log.contains("secret"),
            "named, why, and no secret: {log}"
        );

        // With a database, a server whose checks ran gets a verdict: the agent's first scan.
        let token = center.create_token(&["--name", "fetched"]).await?;
        let mut agent = Agent::new(&env, "fetched");
        agent.enroll(&env, &center, &token.secret).await?;
        agent.first_risk_scan = "on";
        agent.run(&env)?;
        let server = agent.server_id.clone();
        let srv = wait_until("a risk verdict", secs(600), millis(1000), || async {
            let s = api.server(&server).await?;
            ensure!(s["risk_status"] != "pending", "{s}");
            Ok(s)
        })
        .await?;
        ensure!(srv["risk_reason"] == "", "{srv}");
        Ok(())
    })
    .await
}
