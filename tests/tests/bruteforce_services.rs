//! Brute force against the other services the agent watches, from their real daemons' own
//! logs: vsftpd (`vsftpd.log`, `FAIL LOGIN` lines) and MariaDB (its error log, `Access
//! denied` warnings), each attacked by hydra from the attacker namespace of a
//! `hostward_e2e::lab`. The source is blocked on that service's port for the policy's 24 h
//! (services other than SSH), and the alarm names the service, the user and the source.

use std::path::Path;

use hostward_e2e::lab::*;
use hostward_e2e::*;
use serde_json::{Value, json};

/// Checks what a service's brute force left at the center and in the victim's firewall; stops
/// the attack once its alarm is in.
async fn check_blocked(
    api: &Api,
    n: &Netns,
    server: &str,
    attack: Proc,
    (service, user, port): (&str, &str, u16),
) -> Result<Value> {
    let alarm = wait_alarm(api, "brute_force", ATTACKER_IP).await?;
    drop(attack);
    ensure!(
        alarm["evidence"]["service"] == service
            && alarm["evidence"]["users"] == json!([user])
            && alarm["count"].as_i64() >= Some(5),
        "the alarm names the service, the user and the failures: {alarm}"
    );
    ensure!(
        n.nft_set("blocked4").await?.contains(ATTACKER_IP),
        "the attacker is in the block set"
    );
    ensure!(
        !n.can_connect(None, VICTIM_IP, port).await?,
        "the blocked attacker's new connections to port {port} fail"
    );
    let listed = api
        .get(&format!("/api/v1/servers/{server}/blocked-ips"))
        .await?
        .expect(200)?;
    let entry = listed.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["addr"] == ATTACKER_IP)
        .cloned()
        .ok_or_else(|| anyhow!("not in the server's block list: {}", listed.text))?;
    let hours = (entry["expires_at"].as_i64().unwrap_or(0)
        - entry["blocked_at"].as_i64().unwrap_or(0))
        / 3600;
    ensure!(
        hours == 24 && entry["service"] == service,
        "other services are blocked 24 h by default: {entry}"
    );
    unblock(api, n, server, ATTACKER_IP).await?;
    ensure!(
        n.can_connect(None, VICTIM_IP, port).await?,
        "unblocked, port {port} answers the attacker again"
    );
    Ok(alarm)
}

/// hydra in the background with 12 wrong passwords for `user` against `target`; once blocked,
/// its connections hang until the Proc is dropped.
fn hydra(env: &TestEnv, n: &Netns, dir: &Path, user: &str, target: &str) -> Result<Proc> {
    let list = dir.join("words.txt");
    let words: Vec<String> = (0..12).map(|i| format!("wrong-{i}")).collect();
    std::fs::write(&list, words.join("\n") + "\n")?;
    let mut cmd = n.attacker_cmd("timeout");
    // --foreground keeps hydra in this process group, which dropping the Proc kills.
    cmd.args(["--foreground", "120", "hydra", "-l", user, "-P"])
        .arg(&list)
        .args(["-t", "2", "-I", target]);
    Proc::spawn(env, "hydra[attacker]", cmd, dir, "hydra")
}

#[tokio::test]
async fn a_real_ftp_brute_force_on_vsftpd_is_blocked() -> Result<()> {
    let env = TestEnv::new("bruteforce-ftp");
    env.run(async {
        require_tools(&["hydra", "nft", "/usr/sbin/vsftpd", "python3"]).await?;
        let n = Netns::new().await?;
        let dir = env.subdir("vsftpd");
        let log = dir.join("vsftpd.log");
        std::fs::write(&log, "")?;
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        let conf = dir.join("vsftpd.conf");
        // vsftpd's own log format (xferlog_std_format=NO) is where FAIL LOGIN lines go.
        std::fs::write(
            &conf,
            format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address={VICTIM_IP}\nbackground=NO\n\
                 anonymous_enable=NO\nlocal_enable=YES\npam_service_name=vsftpd\n\
                 xferlog_enable=YES\nxferlog_std_format=NO\nvsftpd_log_file={}\n\
                 secure_chroot_dir={}\nseccomp_sandbox=NO\n",
                log.display(),
                empty.display()
            ),
        )?;
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", &n.victim, "/usr/sbin/vsftpd"])
            .arg(&conf);
        let _vsftpd = Proc::spawn(&env, "vsftpd[victim]", cmd, &dir, "vsftpd")?;
        wait_until("vsftpd to listen", secs(10), millis(100), || async {
            ensure!(n.can_connect(None, VICTIM_IP, 21).await?, "not yet");
            Ok(())
        })
        .await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = lab_agent(&env, &center, &n, "ftp", &[("ftp", &log)]).await?;

        let attack = hydra(&env, &n, &dir, "ftpadmin", &format!("ftp://{VICTIM_IP}"))?;
        let alarm =
            check_blocked(&api, &n, &agent.server_id, attack, ("ftp", "ftpadmin", 21)).await?;
        let logged = std::fs::read_to_string(&log)?;
        ensure!(
            logged.contains(&format!("[ftpadmin] FAIL LOGIN: Client \"{ATTACKER_IP}\""))
                || logged.contains(&format!(
                    "[ftpadmin] FAIL LOGIN: Client \"::ffff:{ATTACKER_IP}\""
                )),
            "vsftpd logged the failures in its own format: {}",
            truncate(&logged, 2000)
        );
        ensure!(
            alarm["evidence"]["lines"][0]
                .as_str()
                .is_some_and(|l| l.contains("FAIL LOGIN")),
            "vsftpd's own line is the evidence: {alarm}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_real_mysql_brute_force_on_mariadb_is_blocked() -> Result<()> {
    let env = TestEnv::new("bruteforce-mysql");
    env.run(async {
        require_tools(&[
            "hydra",
            "nft",
            "/usr/sbin/mariadbd",
            "mariadb-install-db",
            "python3",
        ])
        .await?;
        let n = Netns::new().await?;
        let dir = env.subdir("mariadb");
        let data = dir.join("data");
        let sock = dir.join("mysqld.sock");
        let log = dir.join("error.log");
        run_cmd_timeout(
            Path::new("mariadb-install-db"),
            &[
                "--no-defaults".into(),
                "--user=root".into(),
                format!("--datadir={}", data.display()),
                "--skip-test-db".into(),
            ],
            None,
            secs(120),
        )
        .await?
        .ok()?;
        // The server's defaults: access-denied warnings (log_warnings 2) in its own error log.
        let mut cmd = command("ip");
        cmd.args([
            "netns",
            "exec",
            &n.victim,
            "/usr/sbin/mariadbd",
            "--no-defaults",
            "--user=root",
        ])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", log.display()))
        .args([
            &format!("--bind-address={VICTIM_IP}"),
            "--port=3306",
            "--skip-name-resolve",
        ]);
        let _mariadb = Proc::spawn(&env, "mariadbd[victim]", cmd, &dir, "mariadbd")?;
        wait_until("mariadbd to listen", secs(60), millis(200), || async {
            ensure!(n.can_connect(None, VICTIM_IP, 3306).await?, "not yet");
            Ok(())
        })
        .await?;
        // An account remote clients may try: without one, MariaDB refuses the host before any
        // password is checked.
        run_cmd(
            Path::new("ip"),
            &[
                "netns".into(),
                "exec".into(),
                n.victim.clone(),
                "mariadb".into(),
                format!("--socket={}", sock.display()),
                "-e".into(),
                format!(
                    "CREATE USER 'app'@'%' IDENTIFIED BY 'Hw-{:016x}'",
                    rand::random::<u64>()
                ),
            ],
            None,
        )
        .await?
        .ok()?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = lab_agent(&env, &center, &n, "mysql", &[("mysql", &log)]).await?;

        let attack = hydra(&env, &n, &dir, "app", &format!("mysql://{VICTIM_IP}"))?;
        let alarm =
            check_blocked(&api, &n, &agent.server_id, attack, ("mysql", "app", 3306)).await?;
        let logged = std::fs::read_to_string(&log)?;
        ensure!(
            logged.contains(&format!(
                "Access denied for user 'app'@'{ATTACKER_IP}' (using password: YES)"
            )),
            "MariaDB logged the failures: {}",
            truncate(&logged, 3000)
        );
        ensure!(
            alarm["evidence"]["lines"][0]
                .as_str()
                .is_some_and(|l| l.contains("Access denied for user 'app'")),
            "MariaDB's own line is the evidence: {alarm}"
        );
        Ok(())
    })
    .await
}
