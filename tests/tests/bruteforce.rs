//! Brute force end to end with real parts, in network namespaces this test creates: a real
//! OpenSSH server in a "victim" namespace whose log the agent follows, a real attack tool
//! (`hydra`) in an "attacker" namespace, and the agent's nftables table inside the victim
//! namespace. The attacker is blocked after the policy's failures; its new connections to sshd
//! then fail; the alarm reaches the center with the source address, the user and the count;
//! unblocking through the API restores connectivity; after an agent restart (and the table
//! gone, as after a reboot) a block still valid is back.
//! Beside it: rotation in the middle of an attack, IPv6, and malformed lines through the
//! running agent. The namespaces, sshd and its syslog-style log come from `hostward_e2e::lab`.

use std::path::Path;

use hostward_e2e::lab::*;
use hostward_e2e::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_real_ssh_brute_force_is_blocked_alarmed_and_unblocked() -> Result<()> {
    let env = TestEnv::new("bruteforce");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/sshd", "python3"]).await?;
        let n = Netns::new().await?;
        let sshd = Sshd::start(&env, &n, &[]).await?;
        let (dir, log) = (sshd.dir.clone(), sshd.log.clone());
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = lab_agent(&env, &center, &n, "victim", &[("ssh", &log)]).await?;
        let server = agent.server_id.clone();
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "before the attack the attacker reaches sshd"
        );
        // A one-minute block that has expired by the last restart at the end of this test.
        let short_lived = block(&api, &server, EXPIRING, 1).await?;

        // The attack: hydra from the attacker namespace with a word list.
        let words = dir.join("words.txt");
        let list: Vec<String> = (0..40).map(|i| format!("wrong-{i}")).collect();
        std::fs::write(&words, list.join("\n") + "\n")?;
        // In the background: once blocked, its connections hang until it gives up.
        let mut cmd = command("ip");
        // --foreground keeps hydra in this process group, which dropping the Proc kills.
        cmd.args([
            "netns",
            "exec",
            &n.attacker,
            "timeout",
            "--foreground",
            "60",
            "hydra",
            "-l",
            "root",
            "-P",
        ])
        .arg(&words)
        .args(["-t", "4", "-I", &format!("ssh://{VICTIM_IP}")]);
        let hydra = Proc::spawn(&env, "hydra[attacker]", cmd, &dir, "hydra")?;
        let alarm = wait_alarm(&api, "brute_force", ATTACKER_IP).await?;
        drop(hydra);
        ensure!(
            alarm["count"].as_i64() >= Some(5),
            "at least the 5 failures that crossed the threshold: {alarm}"
        );
        ensure!(
            alarm["evidence"]["users"] == json!(["root"]) && alarm["evidence"]["service"] == "ssh",
            "{alarm}"
        );
        ensure!(
            alarm["severity"] == "high"
                && alarm["technique"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("T1110")),
            "{alarm}"
        );
        ensure!(
            n.nft_set("blocked4").await?.contains(ATTACKER_IP),
            "the attacker is in the victim's block set"
        );
        ensure!(
            !n.can_connect(None, VICTIM_IP, 22).await?,
            "a blocked attacker's new connections fail"
        );
        let blocked = api
            .get(&format!("/api/v1/servers/{server}/blocked-ips"))
            .await?
            .expect(200)?;
        let entry = blocked.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["addr"] == ATTACKER_IP)
            .cloned();
        ensure!(
            entry
                .as_ref()
                .is_some_and(|b| b["active"] == true && b["reason"] == "brute_force"),
            "{}",
            blocked.text
        );
        // The default SSH block is 12 hours.
        let e = entry.unwrap_or_default();
        let hours =
            (e["expires_at"].as_i64().unwrap_or(0) - e["blocked_at"].as_i64().unwrap_or(0)) / 3600;
        ensure!(hours == 12, "SSH blocks last 12 h by default: {e}");

        // Unblocking through the API restores connectivity.
        unblock(&api, &n, &server, ATTACKER_IP).await?;
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "after the unblock the attacker reaches sshd again"
        );
        wait_until(
            "the center's block list to follow",
            secs(10),
            millis(100),
            || async {
                let b = api
                    .get(&format!("/api/v1/servers/{server}/blocked-ips"))
                    .await?
                    .expect(200)?;
                let listed = b.json["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|i| i["addr"] == ATTACKER_IP);
                ensure!(!listed, "{}", b.text);
                Ok(())
            },
        )
        .await?;

        // A manual block survives an agent restart even when the table is gone (a reboot).
        let r = api
            .post(
                &format!("/api/v1/servers/{server}/blocked-ips"),
                json!({"addr": ATTACKER_IP, "minutes": 30}),
            )
            .await?
            .expect(201)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;
        ensure!(
            !n.can_connect(None, VICTIM_IP, 22).await?,
            "manually blocked"
        );
        agent.term().await?;
        ip(&[
            "netns", "exec", &n.victim, "nft", "delete", "table", "inet", "hostward",
        ])
        .await?;
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "with the table gone the block is gone too"
        );
        run_lab_agent(&env, &mut agent)?;
        n.wait_blocked(ATTACKER_IP).await?;
        ensure!(
            !n.can_connect(None, VICTIM_IP, 22).await?,
            "the restored block drops the attacker again"
        );
        // Someone flushes the whole ruleset (as restarting Debian's nftables.service does): the
        // running agent puts its table and the block back by itself.
        ip(&["netns", "exec", &n.victim, "nft", "flush", "ruleset"]).await?;
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "with the ruleset flushed the attacker gets through"
        );
        n.wait_blocked(ATTACKER_IP).await?;
        ensure!(
            !n.can_connect(None, VICTIM_IP, 22).await?,
            "the agent's own repair drops the attacker again"
        );
        unblock(&api, &n, &server, ATTACKER_IP).await?;

        // A whitelisted attacker is never blocked; when it then logs in, the password was cracked.
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let bad = api
            .put(
                &format!("/api/v1/projects/{project}/bruteforce-policy"),
                json!({"whitelist": ["10.79.0.300"]}),
            )
            .await?
            .expect(400)?;
        ensure!(
            bad.error_message().starts_with("whitelist[0]"),
            "{}",
            bad.text
        );
        api.put(
            &format!("/api/v1/projects/{project}/bruteforce-policy"),
            json!({"whitelist": [format!("{ATTACKER_IP}/32")]}),
        )
        .await?
        .expect(200)?;
        let (_user, password) = User::random("bf").await?;
        let user = _user.0.clone();
        // Five misses (the threshold) and the password, within one connection (sshd allows six tries).
        let mut list: Vec<String> = (0..5).map(|i| format!("wrong-{i}")).collect();
        list.push(password.clone());
        std::fs::write(&words, list.join("\n") + "\n")?;
        // Let the new policy reach the agent (the config push is immediate; its apply is not awaited).
        tokio::time::sleep(millis(500)).await;
        let hydra = run_cmd_timeout(
            Path::new("ip"),
            &[
                "netns",
                "exec",
                &n.attacker,
                "timeout",
                "60",
                "hydra",
                "-l",
                &user,
                "-P",
                &words.display().to_string(),
                "-t",
                "1",
                "-f",
                "-I",
                &format!("ssh://{VICTIM_IP}"),
            ]
            .map(String::from),
            None,
            secs(70),
        )
        .await?;
        ensure!(
            hydra.stdout.contains("1 valid password found"),
            "hydra logs in at last: {hydra}"
        );
        ensure!(
            !n.nft_set("blocked4").await?.contains(ATTACKER_IP),
            "a whitelisted source is never blocked"
        );
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "the whitelisted attacker still reaches sshd"
        );
        let cracked = wait_alarm(&api, "password_cracked", ATTACKER_IP).await?;
        ensure!(cracked["severity"] == "critical", "{cracked}");

        // Log injection through the real sshd: user names that read like another source or a
        // whole failure line. sshd appends the real source after them; only that one may be
        // blocked.
        api.put(
            &format!("/api/v1/projects/{project}/bruteforce-policy"),
            json!({}),
        )
        .await?
        .expect(200)?;
        tokio::time::sleep(millis(500)).await;
        let decoys = ["10.79.0.9", "10.79.0.10"];
        let injected = [
            format!("x from {} port 22 ssh2", decoys[0]),
            format!("Failed password for root from {}", decoys[1]),
        ];
        let users = dir.join("injected-users.txt");
        std::fs::write(&users, injected.join("\n") + "\n")?;
        // -u: one password for every user, then the next, so both names are tried at once.
        let inj = n
            .in_attacker(
                &[
                    "timeout",
                    "20",
                    "hydra",
                    "-u",
                    "-L",
                    &users.display().to_string(),
                    "-P",
                    &words.display().to_string(),
                    "-t",
                    "1",
                    "-I",
                    &format!("ssh://{VICTIM_IP}"),
                ],
                secs(30),
            )
            .await?;
        let logged = std::fs::read_to_string(&log)?;
        for name in &injected {
            ensure!(
                logged.contains(&format!(
                    "Failed password for invalid user {name} from {ATTACKER_IP}"
                )),
                "sshd logged the crafted user name {name:?}: {inj}"
            );
        }
        n.wait_blocked(ATTACKER_IP).await?;
        let alarms = api.get("/api/v1/alarms").await?.expect(200)?;
        for decoy in decoys {
            ensure!(
                !n.blocked().await?.contains(decoy),
                "{decoy}, inside a user name, is never blocked"
            );
            ensure!(
                !alarms.text.contains(&format!("\"source_ip\":\"{decoy}\"")),
                "no alarm names {decoy}: {}",
                alarms.text
            );
        }
        unblock(&api, &n, &server, ATTACKER_IP).await?;

        // Protection off for the server: the same attack, read but not acted on.
        api.put(
            &format!("/api/v1/projects/{project}/bruteforce-policy"),
            json!({}),
        )
        .await?
        .expect(200)?;
        api.put(
            &format!("/api/v1/servers/{server}/protection"),
            json!({"enabled": false}),
        )
        .await?
        .expect(200)?;
        let count_of = |list: &Value| {
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["source_ip"] == ATTACKER_IP)
                .map(|a| a["count"].as_i64().unwrap_or(0))
                .sum::<i64>()
        };
        let before = count_of(
            &api.get("/api/v1/alarms?type=brute_force")
                .await?
                .expect(200)?
                .json,
        );
        let failures_before = std::fs::read_to_string(&log)?
            .matches("Failed password for root")
            .count();
        tokio::time::sleep(millis(500)).await;
        let off = run_cmd_timeout(
            Path::new("ip"),
            &[
                "netns",
                "exec",
                &n.attacker,
                "timeout",
                "10",
                "hydra",
                "-l",
                "root",
                "-P",
                &words.display().to_string(),
                "-t",
                "4",
                "-I",
                &format!("ssh://{VICTIM_IP}"),
            ]
            .map(String::from),
            None,
            secs(20),
        )
        .await?;
        let failures = std::fs::read_to_string(&log)?
            .matches("Failed password for root")
            .count()
            - failures_before;
        ensure!(
            failures >= 5,
            "the attack happened ({failures} failures logged): {off}"
        );
        tokio::time::sleep(secs(1)).await;
        ensure!(
            !n.nft_set("blocked4").await?.contains(ATTACKER_IP),
            "protection off: nothing blocked"
        );
        let after = count_of(
            &api.get("/api/v1/alarms?type=brute_force")
                .await?
                .expect(200)?
                .json,
        );
        ensure!(
            after == before,
            "protection off: no alarm ({before} -> {after})"
        );
        ensure!(
            cracked["evidence"]["users"]
                .as_array()
                .is_some_and(|u| u.contains(&json!(user))),
            "{cracked}"
        );
        ensure!(
            cracked["evidence"]["lines"][0].as_str().is_some_and(
                |l| l.contains(&format!("Accepted password for {user} from {ATTACKER_IP}"))
            ),
            "the login's own line comes first: {cracked}"
        );
        api.put(
            &format!("/api/v1/servers/{server}/protection"),
            json!({"enabled": true}),
        )
        .await?
        .expect(200)?;

        // Restart after a reboot once the one-minute block has expired: a still-valid block is
        // back, the expired one is not.
        block(&api, &server, STILL_VALID, 30).await?;
        let left = std::time::Duration::from_secs(61).saturating_sub(short_lived.elapsed());
        tokio::time::sleep(left).await;
        agent.term().await?;
        ip(&[
            "netns", "exec", &n.victim, "nft", "delete", "table", "inet", "hostward",
        ])
        .await?;
        run_lab_agent(&env, &mut agent)?;
        let set = wait_until(
            "the valid block to be restored",
            secs(20),
            millis(100),
            || async {
                let set = n.nft_set("blocked4").await?;
                ensure!(set.contains(STILL_VALID), "not yet: {set}");
                Ok(set)
            },
        )
        .await?;
        ensure!(
            !set.contains(EXPIRING),
            "an expired block is not restored: {set}"
        );
        Ok(())
    })
    .await
}

const EXPIRING: &str = "10.79.0.7";
const STILL_VALID: &str = "10.79.0.8";

/// A manual block through the API, carried out by the agent; returns when it was asked for.
async fn block(api: &Api, server: &str, addr: &str, minutes: u32) -> Result<std::time::Instant> {
    let at = std::time::Instant::now();
    let r = api
        .post(
            &format!("/api/v1/servers/{server}/blocked-ips"),
            json!({"addr": addr, "minutes": minutes}),
        )
        .await?
        .expect(201)?;
    wait_task(api, r.json["id"].as_str().unwrap_or_default()).await?;
    Ok(at)
}

/// hydra against the victim's sshd in the background, `tasks` connections in parallel, with
/// `words` wrong passwords for `user`. `target` is `ssh://ADDR` or `ssh://[ADDR6]`.
fn hydra(
    env: &TestEnv,
    n: &Netns,
    dir: &Path,
    user: &str,
    words: usize,
    tasks: u32,
    target: &str,
) -> Result<Proc> {
    let list = dir.join(format!("words-{words}.txt"));
    let text: Vec<String> = (0..words).map(|i| format!("wrong-{i}")).collect();
    std::fs::write(&list, text.join("\n") + "\n")?;
    let mut cmd = n.attacker_cmd("timeout");
    // --foreground keeps hydra in this process group, which dropping the Proc kills.
    cmd.args(["--foreground", "120", "hydra"]);
    if target.contains('[') {
        cmd.arg("-6");
    }
    cmd.args(["-l", user, "-P"])
        .arg(&list)
        .args(["-t", &tasks.to_string(), "-I", target]);
    Proc::spawn(
        env,
        "hydra[attacker]",
        cmd,
        dir,
        &format!("hydra-{}", rand::random::<u16>()),
    )
}

/// Rotation in the middle of a real attack, both ways logrotate does it (rename + create, then
/// copytruncate), loses and repeats no failure: with a threshold of 9 failures, the block comes
/// with the 9th failure sshd logged, not later (a lost line) nor earlier (a repeated one).
#[tokio::test]
async fn rotating_the_log_in_the_middle_of_an_attack_loses_no_failure() -> Result<()> {
    let env = TestEnv::new("bruteforce-rotation");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/sshd", "python3"]).await?;
        let n = Netns::new().await?;
        // The whole attack on one connection: hydra idles 30 s after sshd ends one.
        let sshd = Sshd::start(&env, &n, &["MaxAuthTries=20"]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let _agent = lab_agent(&env, &center, &n, "victim", &[("ssh", &sshd.log)]).await?;
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Only the slow rule can fire: it counts every failure since the attack began.
        api.put(
            &format!("/api/v1/projects/{project}/bruteforce-policy"),
            json!({"short_failures": 1000, "long_failures": 9}),
        )
        .await?
        .expect(200)?;
        tokio::time::sleep(millis(500)).await;
        // One connection at a time: sshd's failure delay spaces the failures by about 2 s.
        let _hydra = hydra(
            &env,
            &n,
            &sshd.dir,
            "root",
            40,
            1,
            &format!("ssh://{VICTIM_IP}"),
        )?;
        let log = sshd.log.clone();
        let (one, two) = (rotated_name(&log, 1), rotated_name(&log, 2));
        let at_least = |k: usize| {
            let sshd = &sshd;
            async move {
                wait_until(
                    &format!("{k} failures logged"),
                    secs(60),
                    millis(20),
                    || async {
                        let got = sshd.failures_from(ATTACKER_IP)?;
                        ensure!(got >= k, "{got} so far");
                        Ok(())
                    },
                )
                .await
            }
        };
        at_least(3).await?;
        // rename + create (logrotate's default; the writer reopens the path at its next line).
        std::fs::rename(&log, &one)?;
        std::fs::write(&log, "")?;
        at_least(6).await?;
        // copytruncate: the writer keeps its descriptor; the file is copied, then emptied.
        std::fs::rename(&one, &two)?;
        std::fs::copy(&log, &one)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)?
            .set_len(0)?;
        n.wait_blocked(ATTACKER_IP).await?;
        // Longer than the failure spacing: a late block would show as a 10th failure.
        tokio::time::sleep(secs(3)).await;
        let logged = sshd.failures_from(ATTACKER_IP)?;
        ensure!(
            logged == 9,
            "blocked after exactly the 9 failures sshd logged, not {logged}"
        );
        for path in [&two, &one, &log] {
            let text = String::from_utf8_lossy(&std::fs::read(path)?).into_owned();
            ensure!(
                text.contains("Failed password"),
                "{} holds no failure: the rotations did not split the attack",
                path.display()
            );
        }
        let alarm = wait_alarm(&api, "brute_force", ATTACKER_IP).await?;
        ensure!(
            alarm["count"] == 9,
            "the alarm counts the 9 failures: {alarm}"
        );
        Ok(())
    })
    .await
}

/// IPv6 end to end: hydra over IPv6 is blocked in the v6 set, the same attacker's IPv4 address
/// is not, and the API unblocks the v6 address. Then lines a log-scraper chokes on (not UTF-8,
/// 100 kB long, cut short), all naming a decoy source, go through the running agent: they are
/// skipped and counted (the counts reach the console), the decoy is never blocked, and the
/// agent goes on to block the next real attack.
#[tokio::test]
async fn ipv6_attacks_and_malformed_lines_through_the_running_agent() -> Result<()> {
    let env = TestEnv::new("bruteforce-v6");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/sshd", "python3"]).await?;
        let n = Netns::new().await?;
        let sshd = Sshd::start(&env, &n, &[]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = lab_agent(&env, &center, &n, "victim", &[("ssh", &sshd.log)]).await?;
        let server = agent.server_id.clone();

        let hydra6 = hydra(
            &env,
            &n,
            &sshd.dir,
            "root",
            40,
            4,
            &format!("ssh://[{VICTIM_IP6}]"),
        )?;
        let alarm = wait_alarm(&api, "brute_force", ATTACKER_IP6).await?;
        drop(hydra6);
        ensure!(
            alarm["count"].as_i64() >= Some(5) && alarm["evidence"]["users"] == json!(["root"]),
            "{alarm}"
        );
        let set6 = n.nft_set("blocked6").await?;
        ensure!(
            set6.contains(ATTACKER_IP6),
            "the v6 attacker is in the v6 set: {set6}"
        );
        ensure!(
            !n.can_connect(None, VICTIM_IP6, 22).await?,
            "its new v6 connections fail"
        );
        ensure!(
            n.can_connect(None, VICTIM_IP, 22).await?,
            "only that address is blocked: its v4 address still connects"
        );
        let listed = api
            .get(&format!("/api/v1/servers/{server}/blocked-ips"))
            .await?
            .expect(200)?;
        ensure!(
            listed.json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| b["addr"] == ATTACKER_IP6),
            "{}",
            listed.text
        );
        unblock(&api, &n, &server, ATTACKER_IP6).await?;
        ensure!(
            n.can_connect(None, VICTIM_IP6, 22).await?,
            "v6 connections work again"
        );

        // Lines a log-scraper chokes on, each a would-be failure of the decoy, appended as any
        // local writer can; a real v4 attack follows them.
        let decoy = "10.79.0.50";
        let header = "Dec  1 12:00:00 victim sshd[4242]: ";
        let mut bad: Vec<u8> = Vec::new();
        for _ in 0..5 {
            bad.extend_from_slice(header.as_bytes());
            bad.extend_from_slice(b"Failed password for r\xff\xfeot from ");
            bad.extend_from_slice(format!("{decoy} port 22 ssh2\n").as_bytes());
            bad.extend_from_slice(
                format!(
                    "{header}Failed password for {} from {decoy} port 22 ssh2\n",
                    "A".repeat(100_000)
                )
                .as_bytes(),
            );
            bad.extend_from_slice(
                format!("{header}Failed password for root from {decoy} port 2\n").as_bytes(),
            );
        }
        {
            use std::io::Write as _;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&sshd.log)?
                .write_all(&bad)?;
        }
        let hydra4 = hydra(
            &env,
            &n,
            &sshd.dir,
            "root",
            40,
            4,
            &format!("ssh://{VICTIM_IP}"),
        )?;
        wait_alarm(&api, "brute_force", ATTACKER_IP).await?;
        drop(hydra4);
        ensure!(agent.is_running(), "the agent survived the malformed lines");
        let blocked = n.blocked().await?;
        ensure!(
            blocked.contains(ATTACKER_IP),
            "the real attack after them is blocked: {blocked}"
        );
        ensure!(
            !blocked.contains(decoy),
            "no malformed line blocked the decoy: {blocked}"
        );
        let stats = wait_until(
            "the skipped lines in the agent's heartbeat",
            secs(15),
            millis(200),
            || async {
                let s = api.server(&server).await?;
                let st = s["heartbeat"]["authlog"].clone();
                ensure!(
                    st["events"].as_u64() >= Some(10)
                        && st["skipped_non_utf8"].as_u64() >= Some(5)
                        && st["skipped_too_long"].as_u64() >= Some(5)
                        && st["skipped_unparsed"].as_u64() >= Some(5),
                    "not yet: {st}"
                );
                Ok(st)
            },
        )
        .await?;
        ensure!(
            stats["events"].as_u64() >= Some(10),
            "the real failures were read: {stats}"
        );
        let alarms = api.get("/api/v1/alarms").await?.expect(200)?;
        ensure!(
            !alarms.text.contains(decoy),
            "no alarm names the decoy: {}",
            alarms.text
        );
        // The operator sees the counts on the server's page.
        let console = center.console_login(ADMIN_USER, ADMIN_PASSWORD).await?;
        let page = console.get(&format!("/servers/{server}")).await?.body;
        ensure!(
            page.contains("5 not UTF-8") && page.contains("5 too long"),
            "the server page shows the skipped lines: {}",
            truncate(&page, 3000)
        );
        Ok(())
    })
    .await
}

/// journald, the only log of a default Debian 12: the agent reads sshd's entries by `_COMM` and
/// resumes after its saved cursor, so failures logged while it was stopped still count.
#[tokio::test]
async fn a_brute_force_in_the_journal_is_blocked_across_an_agent_restart() -> Result<()> {
    let env = TestEnv::new("bruteforce-journald");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/sshd", "python3"]).await?;
        let _journald = Journald::ensure(&env).await?;
        let n = Netns::new().await?;
        let sshd = Sshd::start_journal(&env, &n, &["MaxAuthTries=20"]).await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let mut agent = lab_agent_journal(&env, &center, &n, "victim").await?;
        let server = agent.server_id.clone();
        let attack = |words: usize| {
            let list = sshd.dir.join(format!("journal-words-{words}.txt"));
            let n = &n;
            async move {
                let text: Vec<String> = (0..words).map(|i| format!("wrong-{i}")).collect();
                std::fs::write(&list, text.join("\n") + "\n")?;
                let list = list.display().to_string();
                let target = format!("ssh://{VICTIM_IP}");
                let out = n
                    .in_attacker(
                        &[
                            "timeout", "60", "hydra", "-l", "root", "-P", &list, "-t", "1", "-I",
                            &target,
                        ],
                        secs(70),
                    )
                    .await?;
                ensure!(
                    out.stdout.contains("0 valid password"),
                    "hydra ran its {words} tries: {out}"
                );
                Ok::<_, anyhow::Error>(())
            }
        };
        // One failure while the agent runs: the agent keeps its journal cursor after it.
        attack(1).await?;
        wait_until(
            "the agent to read the failure from the journal",
            secs(15),
            millis(200),
            || async {
                let s = api.server(&server).await?;
                ensure!(
                    s["heartbeat"]["authlog"]["events"].as_u64() >= Some(1),
                    "not yet: {}",
                    s["heartbeat"]
                );
                Ok(())
            },
        )
        .await?;
        agent.term().await?;
        // Five more while it is stopped; read after the restart, they cross the threshold.
        attack(5).await?;
        ensure!(
            !n.blocked().await?.contains(ATTACKER_IP),
            "nothing blocks while the agent is stopped"
        );
        run_lab_agent(&env, &mut agent)?;
        n.wait_blocked(ATTACKER_IP).await?;
        let alarm = wait_alarm(&api, "brute_force", ATTACKER_IP).await?;
        ensure!(
            alarm["count"] == 5 && alarm["evidence"]["users"] == json!(["root"]),
            "the 5 failures logged while stopped: {alarm}"
        );
        ensure!(
            alarm["evidence"]["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|l| l.as_str().is_some_and(|l| l.starts_with("sshd[")
                    && l.contains(&format!("Failed password for root from {ATTACKER_IP}")))),
            "the journal entries are the evidence: {alarm}"
        );
        Ok(())
    })
    .await
}
