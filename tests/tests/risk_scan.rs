//! Risk scans end to end with real accounts and real agents:
//! - accounts made with `useradd` + `chpasswd` (yescrypt, Debian's default): a dictionary
//!   password is flagged, a strong one is not, two accounts sharing a word from the project's
//!   custom list are flagged as sharing it; the password hashes never show up in the center's
//!   database, the API's answers, either side's logs, or the agent's outbox files (the frames
//!   the agent sends are exactly the outbox records, so what is not there was never on the wire),
//!   not even through an imported baseline policy that matches their /etc/shadow line and runs
//!   `getent shadow` (its evidence shows the line with the hash withheld);
//! - the password-policy check reports this Debian host's defaults (PASS_MAX_DAYS 99999 fails);
//! - a scan task for two agents, one of them stopped, completes on the online one, waits for the
//!   other, and completes when it comes back;
//! - a newly enrolled server is `pending` with what it waits for, its agent runs the first full
//!   scan a minute after start (no task, no night window), and it stays `pending` while no
//!   vulnerability database is imported.

use std::path::Path;

use hostward_e2e::*;
use serde_json::{Value, json};

fn rand_hex() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn shadow_hash(user: &str) -> Result<String> {
    let shadow = std::fs::read_to_string("/etc/shadow")?;
    shadow
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .and_then(|l| l.split(':').nth(1))
        .map(String::from)
        .ok_or_else(|| anyhow!("{user} not in /etc/shadow"))
}

/// Queues a scan for `servers` and returns the task ids by server.
async fn scan(api: &Api, servers: &[&str], checks: &[&str]) -> Result<Vec<(String, String)>> {
    let r = api
        .post(
            "/api/v1/tasks",
            json!({"server_ids": servers, "kind": "risk_scan", "params": {"checks": checks}}),
        )
        .await?
        .expect(201)?;
    Ok(r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["server_id"].as_str().unwrap_or_default().to_string(),
                t["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

async fn wait_task(
    api: &Api,
    id: &str,
    state: &str,
    timeout: std::time::Duration,
) -> Result<Value> {
    wait_until(
        &format!("task {id} {state}"),
        timeout,
        millis(250),
        || async {
            let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
            ensure!(
                t.json["state"] == state,
                "task is {}: {}",
                t.json["state"],
                t.text
            );
            Ok(t.json)
        },
    )
    .await
}

/// Every file under `dir` (recursively), as bytes.
fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn weak_passwords_are_found_and_hashes_never_leave_the_host() -> Result<()> {
    let env = TestEnv::new("risk-weak");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let tag = rand_hex();
        let shared_word = format!("Hw-shared-{tag}!");
        let policy = api
            .put(
                &format!("/api/v1/projects/{project}/risk-policy"),
                json!({"custom_weak_passwords": [shared_word], "daily_scan": false}),
            )
            .await?
            .expect(200)?;
        ensure!(
            policy.json["policy"]["allow_fix"] == false,
            "fixes are off unless turned on: {}",
            policy.text
        );
        let bad = api
            .put(
                &format!("/api/v1/projects/{project}/risk-policy"),
                json!({"custom_weak_passwords": vec!["w"; 301]}),
            )
            .await?;
        ensure!(
            bad.status == 400 && bad.text.contains("custom_weak_passwords"),
            "{} {}",
            bad.status,
            bad.text
        );

        let weak = format!("hwweak{tag}");
        let strong = format!("hwstrong{tag}");
        let share_a = format!("hwsharea{tag}");
        let share_b = format!("hwshareb{tag}");
        let _users = [
            User::add(&weak, "qwerty").await?,
            User::add(
                &strong,
                &format!("{}-{}-{}", rand_hex(), rand_hex(), rand_hex()),
            )
            .await?,
            User::add(&share_a, &shared_word).await?,
            User::add(&share_b, &shared_word).await?,
        ];
        let hashes: Vec<String> = [&weak, &strong, &share_a, &share_b]
            .iter()
            .map(|u| shadow_hash(u))
            .collect::<Result<_>>()?;
        ensure!(
            hashes.iter().all(|h| h.starts_with("$y$")),
            "Debian 12 hashes with yescrypt: {hashes:?}"
        );

        // A baseline policy someone imported that points straight at the hashes: the line of
        // /etc/shadow and a command printing it. Its evidence must withhold them too.
        let leaky = format!(
            "policy:\n  id: \"leaky\"\n  file: \"leaky.yml\"\n  name: \"Leaky\"\n  description: \"d\"\nchecks:\n  - id: 1\n    title: \"shadow line\"\n    condition: none\n    rules:\n      - 'f:/etc/shadow -> r:^{weak}:'\n  - id: 2\n    title: \"getent\"\n    condition: none\n    rules:\n      - 'c:getent shadow {weak} -> r:{weak}'\n"
        );
        api.post(
            &format!("/api/v1/projects/{project}/baseline-policy/imports"),
            json!({"file": "leaky.yml", "text": leaky}),
        )
        .await?
        .expect(200)?;
        let agent = Agent::start(&env, &center, "weak").await?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        let tasks = scan(
            &api,
            &[&server],
            &["weak_passwords", "password_policy", "baselines"],
        )
        .await?;
        let done = wait_task(&api, &tasks[0].1, "done", secs(300)).await?;
        ensure!(
            done["output"]["complete"] == true,
            "the check finished within its budget: {done}"
        );

        let list = api
            .get(&format!("/api/v1/servers/{server}/weak-passwords"))
            .await?
            .expect(200)?;
        let by_account = |name: &str| {
            list.json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["account"] == name)
                .cloned()
        };
        let w = by_account(&weak).ok_or_else(|| anyhow!("{weak} not flagged: {}", list.text))?;
        ensure!(
            w["reasons"] == json!(["common_password"]) && w["login_allowed"] == true,
            "{w}"
        );
        ensure!(
            by_account(&strong).is_none(),
            "a strong password is not weak: {}",
            list.text
        );
        for (me, other) in [(&share_a, &share_b), (&share_b, &share_a)] {
            let s = by_account(me).ok_or_else(|| anyhow!("{me} not flagged: {}", list.text))?;
            let reasons: Vec<&str> = s["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            ensure!(
                reasons.contains(&"custom_list") && reasons.contains(&"shared"),
                "{s}"
            );
            ensure!(s["shared_with"] == json!([other]), "{s}");
        }

        let policy = api
            .get(&format!("/api/v1/servers/{server}/password-policy"))
            .await?
            .expect(200)?;
        let max_days = policy.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["check_id"] == "login_defs.pass_max_days")
            .cloned();
        let login_defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
        let actual = login_defs
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("PASS_MAX_DAYS"))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(String::from);
        let m = max_days.ok_or_else(|| anyhow!("no PASS_MAX_DAYS check: {}", policy.text))?;
        ensure!(
            m["actual"].as_str().map(String::from) == actual,
            "actual value read from /etc/login.defs ({actual:?}): {m}"
        );
        let days: Option<i64> = actual.and_then(|a| a.parse().ok());
        ensure!(m["pass"] == json!(days.is_some_and(|d| d <= 90)), "{m}");
        let srv = api.server(&server).await?;
        // Found, and counted; but with no vulnerability database the status is no verdict.
        ensure!(
            srv["risk_status"] == "pending"
                && srv["risk_reason"] == "no vulnerability database imported"
                && srv["risk_counts"]["weak_passwords"].as_i64() >= Some(3)
                && srv["risk_counts"]["baseline_failed"].as_i64() >= Some(2),
            "{srv}"
        );

        let leaky = api
            .get(&format!("/api/v1/servers/{server}/baselines?policy=leaky"))
            .await?
            .expect(200)?;
        ensure!(
            leaky.json["results"]["items"]
                .as_array()
                .is_some_and(|a| a.len() == 2
                    && a.iter().all(|r| r["result"] == "fail"
                        && r["evidence"].to_string().contains("<hash withheld>"))),
            "the evidence names the line with the hash withheld: {}",
            leaky.text
        );

        // The hashes appear nowhere on the center's side or in what the agent sent.
        let mut answers = String::new();
        for path in [
            format!("/api/v1/servers/{server}/weak-passwords"),
            format!("/api/v1/servers/{server}/password-policy"),
            format!("/api/v1/servers/{server}/risk"),
            format!("/api/v1/servers/{server}/baselines?policy=leaky"),
            format!("/api/v1/servers/{server}"),
            format!("/api/v1/tasks/{}", tasks[0].1),
            "/api/v1/weak-passwords".to_string(),
            "/api/v1/scans".to_string(),
        ] {
            answers.push_str(&api.get(&path).await?.expect(200)?.text);
        }
        let mut files = Vec::new();
        files_under(&center.data_dir, &mut files);
        files_under(&agent.state_dir, &mut files);
        files.push(("center log".into(), center.stderr().into_bytes()));
        files.push(("agent log".into(), agent.all_stderr().into_bytes()));
        files.push(("API answers".into(), answers.into_bytes()));
        ensure!(
            files.iter().any(|(n, _)| n.ends_with("hostward.db")),
            "the center database was read"
        );
        ensure!(
            files.iter().any(|(n, _)| n.contains("outbox.db")),
            "the agent outbox was read"
        );
        for h in &hashes {
            // The salt and the hash part each must be absent, not only the whole string.
            let parts: Vec<&str> = h.rsplitn(2, '$').collect();
            for needle in [h.as_str(), parts[0]] {
                for (name, bytes) in &files {
                    ensure!(
                        !contains(bytes, needle),
                        "a password hash of the test accounts appears in {name}"
                    );
                }
            }
        }
        let api_text = &files
            .iter()
            .find(|(n, _)| n == "API answers")
            .expect("pushed above")
            .1;
        for word in ["qwerty", shared_word.as_str()] {
            ensure!(
                !contains(api_text, word),
                "a cracked password appears in the API's answers"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_scan_task_waits_for_an_offline_agent_and_completes_when_it_returns() -> Result<()> {
    let env = TestEnv::new("risk-scan-offline");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let online = Agent::start(&env, &center, "on").await?;
        let mut offline = Agent::start(&env, &center, "off").await?;
        api.wait_status(&online.server_id, "online", None, secs(30))
            .await?;
        api.wait_status(&offline.server_id, "online", None, secs(30))
            .await?;
        offline.term().await?;
        api.wait_status(&offline.server_id, "offline", None, secs(30))
            .await?;

        let tasks = scan(
            &api,
            &[&online.server_id, &offline.server_id],
            &["password_policy"],
        )
        .await?;
        ensure!(tasks.len() == 2, "one task per server: {tasks:?}");
        let id_of = |s: &str| {
            tasks
                .iter()
                .find(|(srv, _)| srv == s)
                .map(|(_, id)| id.clone())
                .unwrap_or_default()
        };
        let (on_task, off_task) = (id_of(&online.server_id), id_of(&offline.server_id));
        let done = wait_task(&api, &on_task, "done", secs(60)).await?;
        ensure!(
            done["output"]["policy_failed"].is_number(),
            "the scan reports its results: {done}"
        );
        let scans = api.get("/api/v1/scans").await?.expect(200)?;
        ensure!(
            scans.json["counts"]["done"] == 1 && scans.json["counts"]["queued"] == 1,
            "{}",
            scans.text
        );
        let row = scans.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["id"] == on_task.as_str())
            .cloned();
        ensure!(
            row.is_some_and(|r| r["duration_secs"].is_number() && r["server_name"].is_string()),
            "{}",
            scans.text
        );
        // The stopped agent's task waits: still queued while it is away.
        tokio::time::sleep(secs(2)).await;
        let waiting = api
            .get(&format!("/api/v1/tasks/{off_task}"))
            .await?
            .expect(200)?;
        ensure!(waiting.json["state"] == "queued", "{}", waiting.text);

        offline.run(&env)?;
        wait_task(&api, &off_task, "done", secs(60)).await?;
        let srv = api.server(&offline.server_id).await?;
        // Only the policy check ran: the status still names the others.
        ensure!(
            srv["risk_status"] == "pending"
                && srv["risk_reason"]
                    == "no vulnerability database imported; weak-password check not run yet (first risk scan pending); configuration baselines not checked yet (first risk scan pending)",
            "a finished scan moves the risk reason on: {srv}"
        );
        let risk = api
            .get(&format!("/api/v1/servers/{}/risk", offline.server_id))
            .await?
            .expect(200)?;
        ensure!(
            risk.json["scans"]["last_scan_trigger"] == "task"
                && risk.json["scans"]["policy_scanned_at"].is_number(),
            "{}",
            risk.text
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_daily_scan_runs_inside_the_policy_window_in_local_time() -> Result<()> {
    let env = TestEnv::new("risk-daily");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let agent = Agent::start(&env, &center, "daily").await?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        // A one-minute window starting at the next minute of this host's local time, no jitter.
        let out = run_cmd(Path::new("date"), &["+%H %M".into()], None)
            .await?
            .ok()?;
        let hm: Vec<u32> = out
            .stdout
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        ensure!(hm.len() == 2, "date printed {out}");
        let start = (hm[0] * 60 + hm[1] + 1) % 1440;
        api.put(
            &format!("/api/v1/projects/{project}/risk-policy"),
            json!({"window_start_min": start, "window_end_min": start + 1, "jitter_secs": 0}),
        )
        .await?
        .expect(200)?;
        let risk = wait_until("the scheduled scan", secs(150), millis(500), || async {
            let r = api
                .get(&format!("/api/v1/servers/{server}/risk"))
                .await?
                .expect(200)?;
            ensure!(
                r.json["scans"]["last_scan_trigger"] == "scheduled",
                "no scheduled scan yet: {}",
                r.text
            );
            Ok(r.json)
        })
        .await?;
        let at = risk["scans"]["last_scan_at"].as_i64().unwrap_or_default();
        let local = run_cmd(
            Path::new("date"),
            &["-d".into(), format!("@{at}"), "+%H %M".into()],
            None,
        )
        .await?
        .ok()?;
        let hm: Vec<u32> = local
            .stdout
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // The scan starts inside the window; it may finish a little after it.
        ensure!(
            hm.len() == 2 && (hm[0] * 60 + hm[1] + 1440 - start) % 1440 <= 2,
            "scan finished at local {}: {risk}",
            local.stdout.trim()
        );
        ensure!(
            risk["scans"]["weak_scanned_at"].is_number()
                && risk["scans"]["policy_scanned_at"].is_number(),
            "{risk}"
        );
        let tasks = api.get("/api/v1/scans").await?.expect(200)?;
        ensure!(
            tasks.json["items"] == json!([]),
            "no task was involved: {}",
            tasks.text
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_new_server_is_pending_gets_its_first_scan_at_once_and_says_what_is_missing() -> Result<()>
{
    let env = TestEnv::new("risk-first-scan");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let token = center.create_token(&["--name", "first"]).await?;
        let mut agent = Agent::new(&env, "first");
        agent.enroll(&env, &center, &token.secret).await?;
        agent.first_risk_scan = "on";
        agent.run(&env)?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        let srv = api.server(&server).await?;
        ensure!(
            srv["risk_status"] == "pending"
                && srv["risk_reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("no risk check has reported yet")),
            "enrolled, nothing checked: {srv}"
        );

        // No task asked for it and the nightly window is hours away: the agent's first scan
        // runs a minute after it starts.
        let risk = wait_until("the first risk scan", secs(600), millis(1000), || async {
            let r = api
                .get(&format!("/api/v1/servers/{server}/risk"))
                .await?
                .expect(200)?;
            ensure!(
                r.json["scans"]["last_scan_trigger"] == "first",
                "{}",
                r.text
            );
            Ok(r.json)
        })
        .await?;
        ensure!(
            risk["scans"]["weak_scanned_at"].is_number()
                && risk["scans"]["policy_scanned_at"].is_number()
                && risk["scans"]["baseline_scanned_at"].is_number(),
            "every check ran: {risk}"
        );
        // Still no database: still pending, and the reason is now only that.
        let srv = api.server(&server).await?;
        ensure!(
            srv["risk_status"] == "pending"
                && srv["risk_reason"] == "no vulnerability database imported",
            "{srv}"
        );
        ensure!(
            agent.state_dir.join("risk-scanned").exists(),
            "the next start does not scan again"
        );
        Ok(())
    })
    .await
}
