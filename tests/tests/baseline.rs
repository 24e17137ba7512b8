//! Configuration baselines end to end with a real agent reading a fixture root (copies of the
//! engine's weak fixture tree and of its Wazuh-style one): a policy in Wazuh's SCA format is
//! imported through the API (a broken one is refused with file and line), the agent runs the
//! shipped policies and the imported one in a risk scan, and the center shows exactly the
//! expected failures (SSH, nginx, Redis, MySQL, the imported policy) with their evidence; fixing one file and verifying that check flips it to
//! pass; ignoring a failure (through the API, and in a real browser from the result page)
//! takes it out of the server's risk counts.

use std::path::Path;

use hostward_e2e::lab::wait_task;
use hostward_e2e::*;
use serde_json::{Value, json};

/// The failures of the shipped policies on the weak fixture tree (the engine's own test,
/// crates/sca/tests/baselines.rs, holds the same lists; command checks are not applicable on
/// a fixture root).
fn expected(policy: &str) -> Vec<i64> {
    let range = |a: i64, b: i64| (a..=b).collect::<Vec<i64>>();
    match policy {
        "hostward_sshd" => range(10001, 10021)
            .into_iter()
            .filter(|id| *id != 10018)
            .collect(),
        "hostward_nginx" => vec![12001, 12002, 12003],
        "hostward_redis" => vec![13001, 13002, 13003, 13005],
        // 17010 reads the data directory's mode with a command: not applicable here.
        "hostward_mysql" => range(17001, 17009),
        // The Wazuh-style fixture policy (its expected results are in the engine's test).
        "fixture_app" => vec![501, 510],
        _ => unreachable!(),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        let kind = e.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&e.path(), &dest)?;
        } else if kind.is_symlink() {
            // As a link: the engine resolves it inside the root, as on the host.
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

async fn results(api: &Api, server: &str) -> Result<Value> {
    Ok(api
        .get(&format!("/api/v1/servers/{server}/baselines?per_page=500"))
        .await?
        .expect(200)?
        .json)
}

fn failed(b: &Value, policy: &str) -> Vec<i64> {
    let mut v: Vec<i64> = b["results"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["policy_id"] == policy && r["result"] == "fail")
        .filter_map(|r| r["check_id"].as_i64())
        .collect();
    v.sort();
    v
}

fn item<'a>(b: &'a Value, policy: &str, check: i64) -> Option<&'a Value> {
    b["results"]["items"]
        .as_array()?
        .iter()
        .find(|r| r["policy_id"] == policy && r["check_id"] == check)
}

#[tokio::test]
async fn a_fixture_root_fails_exactly_the_expected_checks_and_a_fix_verified_passes() -> Result<()>
{
    let env = TestEnv::new("baseline");
    env.run(async {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/sca/tests/fixtures");
        let root = env.subdir("fixture-root");
        copy_tree(&fixtures.join("weak"), &root)?;
        copy_tree(&fixtures.join("wazuh_root"), &root)?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let imports = format!("/api/v1/projects/{project}/baseline-policy/imports");
        let text = std::fs::read_to_string(fixtures.join("wazuh_style.yml"))?;
        let broken = text.replacen("checks:", "checks: [", 1);
        let r = api
            .post(&imports, json!({"file": "wazuh_style.yml", "text": broken}))
            .await?;
        ensure!(
            r.status == 400 && r.text.contains("wazuh_style.yml:"),
            "a broken policy is refused with its file and line: {} {}",
            r.status,
            r.text
        );
        api.post(&imports, json!({"file": "wazuh_style.yml", "text": text}))
            .await?
            .expect(200)?;

        let token = center.create_token(&["--name", "fixture"]).await?;
        let mut agent = Agent::new(&env, "fixture");
        agent.enroll(&env, &center, &token.secret).await?;
        let config = agent.dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\ninventory_root = {:?}\n",
                agent.state_dir.display().to_string(),
                root.display().to_string()
            ),
        )?;
        agent.run_with(&env, &["--config", &config.display().to_string()])?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        // The imported policy is in the config the agent gets when it connects, before any task.
        let t = api
            .post(
                "/api/v1/tasks",
                json!({"server_ids": [server], "kind": "risk_scan", "params": {"checks": ["baselines"]}}),
            )
            .await?
            .expect(201)?;
        let id = t.json["items"][0]["id"].as_str().unwrap_or_default().to_string();
        let done = wait_task(&api, &id).await?;
        ensure!(done["output"]["baseline_failed"].as_u64() > Some(20), "{done}");
        let b = wait_until("the baseline results", secs(30), millis(200), || async {
            let b = results(&api, &server).await?;
            ensure!(b["scanned_at"].is_number(), "{b}");
            Ok(b)
        })
        .await?;
        for policy in ["hostward_sshd", "hostward_nginx", "hostward_redis", "hostward_mysql", "fixture_app"] {
            ensure!(
                failed(&b, policy) == expected(policy),
                "{policy}: failed {:?}, expected {:?}",
                failed(&b, policy),
                expected(policy)
            );
        }
        let root_login = item(&b, "hostward_sshd", 10001).ok_or_else(|| anyhow!("no 10001: {b}"))?;
        // The evidence: what was missing for a setting that must be there, the file and line
        // for one that must not.
        ensure!(
            root_login["evidence"].to_string().contains("/etc/ssh/sshd_config: no line matches"),
            "{root_login}"
        );
        let x11 = item(&b, "hostward_sshd", 10012).ok_or_else(|| anyhow!("no 10012: {b}"))?;
        ensure!(
            x11["evidence"].to_string().contains("/etc/ssh/sshd_config:14: X11Forwarding yes"),
            "the file and line that decided it: {x11}"
        );
        let policies = b["policies"].as_array().cloned().unwrap_or_default();
        ensure!(
            policies.iter().any(|p| p["policy_id"] == "fixture_app" && p["applicable"] == true),
            "the imported policy ran: {policies:?}"
        );
        let srv = api.server(&server).await?;
        let counted = srv["risk_counts"]["baseline_failed"].as_i64().unwrap_or(0);
        ensure!(counted > 20, "failures count in the risk status: {srv}");

        // Fix the file, verify that one check: it passes, the others are untouched.
        let sshd = root.join("etc/ssh/sshd_config");
        let fixed = std::fs::read_to_string(&sshd)?.replace("PermitRootLogin yes", "PermitRootLogin no");
        std::fs::write(&sshd, fixed)?;
        let rid = root_login["id"].as_str().unwrap_or_default().to_string();
        let r = api
            .post("/api/v1/baselines/actions", json!({"action": "verify", "result_ids": [rid]}))
            .await?
            .expect(200)?;
        let vt = r.json["tasks"][0]["id"].as_str().unwrap_or_default().to_string();
        wait_task(&api, &vt).await?;
        let detail = wait_until("the verified check passes", secs(30), millis(200), || async {
            let d = api.get(&format!("/api/v1/baselines/results/{rid}")).await?.expect(200)?;
            ensure!(d.json["result"]["result"] == "pass", "{}", d.text);
            Ok(d.json)
        })
        .await?;
        let actions: Vec<&str> = detail["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["action"].as_str())
            .collect();
        ensure!(actions.starts_with(&["passed", "verify"]), "{actions:?}");
        let b = results(&api, &server).await?;
        let mut want = expected("hostward_sshd");
        want.retain(|id| *id != 10001);
        ensure!(failed(&b, "hostward_sshd") == want, "{:?}", failed(&b, "hostward_sshd"));

        // Ignoring a failure takes it out of the server's risk counts.
        let x11 = item(&b, "hostward_sshd", 10012).ok_or_else(|| anyhow!("no 10012"))?;
        api.post(
            "/api/v1/baselines/actions",
            json!({"action": "ignore", "result_ids": [x11["id"]], "note": "lab host"}),
        )
        .await?
        .expect(200)?;
        let srv = api.server(&server).await?;
        ensure!(
            srv["risk_counts"]["baseline_failed"].as_i64() == Some(counted - 2),
            "one fixed, one ignored: {srv}"
        );

        // And in a real browser: the server's Baselines tab lists the failures with their
        // evidence; a result page's Ignore button, with a note, ignores it.
        let empty = item(&b, "hostward_sshd", 10003).ok_or_else(|| anyhow!("no 10003"))?;
        let eid = empty["id"].as_str().unwrap_or_default().to_string();
        Browser::drive_center(&env, &center, async |br| {
            let url = center.url();
            br.fill_login(&url, ADMIN_USER, ADMIN_PASSWORD).await?;
            br.find("#score-panel").await?; // signed in: the dashboard
            br.client.goto(&format!("{url}/servers/{server}/baselines?result=fail&policy=hostward_sshd")).await?;
            let rows = br.count("#results tr[data-result=fail]").await?;
            ensure!(rows == expected("hostward_sshd").len() - 1, "{rows} failures listed");
            let ev = br.find("#results tr[data-check='10012'] .evidence").await?.text().await?;
            ensure!(ev.contains("sshd_config:14"), "{ev}");
            br.client.goto(&format!("{url}/baselines/results/{eid}")).await?;
            br.find("#result-form input[name=note]").await?.send_keys("lab: no empty passwords exist").await?;
            br.find("#result-form button.act-ignore").await?.click().await?;
            br.wait_path(&format!("/baselines/results/{eid}"), Some("done=ignore")).await?;
            br.find(".result-state[data-state=ignored]").await?;
            let history = br.find("#result-history").await?.text().await?;
            ensure!(history.contains("lab: no empty passwords exist"), "{history}");
            Ok(())
        })
        .await?;
        let srv = api.server(&server).await?;
        ensure!(
            srv["risk_counts"]["baseline_failed"].as_i64() == Some(counted - 3),
            "ignored from the console: {srv}"
        );
        Ok(())
    })
    .await
}
