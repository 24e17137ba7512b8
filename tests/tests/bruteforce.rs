//! Brute force end to end with real parts, in network namespaces this test creates: a real
//! OpenSSH server in a "victim" namespace whose log the agent follows, a real attack tool
//! (`hydra`) in an "attacker" namespace, and the agent's nftables table inside the victim
//! namespace. The attacker is blocked after the policy's failures; its new connections to sshd
//! then fail; the alarm reaches the center with the source address, the user and the count;
//! unblocking through the API restores connectivity; after an agent restart (and the table
//! gone, as after a reboot) a block still valid is back.
//!
//! sshd runs with `-e` and a small adapter writes its lines as a syslog daemon would
//! (`Mmm dd HH:MM:SS host sshd[pid]: …`): this build machine runs neither journald nor rsyslog.

use std::path::Path;

use hostward_e2e::*;
use serde_json::{Value, json};

const VICTIM_IP: &str = "10.79.0.1";
const ATTACKER_IP: &str = "10.79.0.2";

/// The two namespaces and their veth pair; deleted on drop, whatever happened.
struct Netns {
    victim: String,
    attacker: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.victim, &self.attacker] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

async fn ip(args: &[&str]) -> Result<()> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd(Path::new("ip"), &args, None).await?.ok()?;
    Ok(())
}

async fn netns() -> Result<Netns> {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let n = Netns {
        victim: format!("hwv{tag}"),
        attacker: format!("hwa{tag}"),
    };
    let (v, a) = (n.victim.clone(), n.attacker.clone());
    ip(&["netns", "add", &v]).await?;
    ip(&["netns", "add", &a]).await?;
    ip(&["link", "add", &v, "type", "veth", "peer", "name", &a]).await?;
    ip(&["link", "set", &v, "netns", &v]).await?;
    ip(&["link", "set", &a, "netns", &a]).await?;
    ip(&[
        "-n",
        &v,
        "addr",
        "add",
        &format!("{VICTIM_IP}/24"),
        "dev",
        &v,
    ])
    .await?;
    ip(&[
        "-n",
        &a,
        "addr",
        "add",
        &format!("{ATTACKER_IP}/24"),
        "dev",
        &a,
    ])
    .await?;
    for (ns, dev) in [(&v, &v), (&a, &a)] {
        ip(&["-n", ns, "link", "set", dev, "up"]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
    }
    Ok(n)
}

/// Whether a new TCP connection from the attacker to the victim's sshd succeeds within 2 s.
async fn attacker_can_connect(n: &Netns) -> Result<bool> {
    let out = run_cmd(
        Path::new("ip"),
        &[
            "netns".into(),
            "exec".into(),
            n.attacker.clone(),
            "timeout".into(),
            "2".into(),
            "bash".into(),
            "-c".into(),
            format!("exec 3<>/dev/tcp/{VICTIM_IP}/22"),
        ],
        None,
    )
    .await?;
    Ok(out.success())
}

async fn nft_elements(n: &Netns) -> Result<String> {
    let out = run_cmd(
        Path::new("ip"),
        &[
            "netns", "exec", &n.victim, "nft", "list", "set", "inet", "hostward", "blocked4",
        ]
        .map(String::from),
        None,
    )
    .await?;
    Ok(out.stdout)
}

async fn wait_task(api: &Api, id: &str) -> Result<Value> {
    wait_until(
        &format!("task {id} done"),
        secs(30),
        millis(100),
        || async {
            let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
            ensure!(
                t.json["state"] == "done",
                "task is {}: {}",
                t.json["state"],
                t.text
            );
            Ok(t.json)
        },
    )
    .await
}

/// A local account the attacker can guess; removed on drop.
struct User(String);

impl User {
    async fn add(name: &str, password: &str) -> Result<User> {
        run_cmd(
            Path::new("useradd"),
            &["-M".into(), "-s".into(), "/bin/bash".into(), name.into()],
            None,
        )
        .await?
        .ok()?;
        let user = User(name.to_string());
        run_cmd(
            Path::new("chpasswd"),
            &[],
            Some(&format!("{name}:{password}\n")),
        )
        .await?
        .ok()?;
        Ok(user)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).output();
    }
}

const ADAPTER: &str = r#"
import socket, sys, time
host = socket.gethostname()
out = open(sys.argv[1], "a", buffering=1)
for line in sys.stdin:
    out.write(time.strftime("%b %e %H:%M:%S ") + host + " sshd[" + sys.argv[2] + "]: " + line)
"#;

#[tokio::test]
async fn a_real_ssh_brute_force_is_blocked_alarmed_and_unblocked() -> Result<()> {
    let env = TestEnv::new("bruteforce");
    env.run(async {
        for tool in ["hydra", "nft", "/usr/sbin/sshd"] {
            let found = run_cmd(Path::new("sh"), &["-c".into(), format!("command -v {tool}")], None).await?;
            ensure!(found.success(), "{tool} is not installed (.ci/run installs hydra, nftables, openssh-server)");
        }
        let n = netns().await?;
        // sshd in the victim namespace, its log written as syslog would.
        let dir = env.subdir("sshd");
        let key = dir.join("host_key");
        run_cmd(Path::new("ssh-keygen"), &["-q".into(), "-t".into(), "ed25519".into(), "-N".into(), "".into(), "-f".into(), key.display().to_string()], None)
            .await?
            .ok()?;
        std::fs::create_dir_all("/run/sshd")?;
        let log = dir.join("auth.log");
        std::fs::write(&log, "")?;
        let adapter = dir.join("syslog.py");
        std::fs::write(&adapter, ADAPTER)?;
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", &n.victim, "bash", "-c"]).arg(format!(
            "exec /usr/sbin/sshd -D -e -p 22 -h {key} -o PidFile=none -o LogLevel=INFO 2>&1 | python3 -u {adapter} {log} $$",
            key = key.display(),
            adapter = adapter.display(),
            log = log.display()
        ));
        let _sshd = Proc::spawn(&env, "sshd[victim]", cmd, &dir, "sshd")?;
        wait_until("sshd to listen in the victim namespace", secs(10), millis(100), || async {
            ensure!(attacker_can_connect(&n).await?, "not yet");
            Ok(())
        })
        .await?;

        // The center and an agent whose firewall is the victim namespace's nftables.
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let token = center.create_token(&["--name", "victim"]).await?;
        let mut agent = Agent::new(&env, "victim");
        agent.enroll(&env, &center, &token.secret).await?;
        let config = agent.dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n\n[authlog]\nsource = \"files\"\n\n[authlog.ssh]\npath = {:?}\n\n[authlog.ftp]\nenabled = false\n\n[authlog.mysql]\nenabled = false\n\n[firewall]\nnft = [\"ip\", \"netns\", \"exec\", {:?}, \"nft\"]\nports = [22]\n",
                agent.state_dir.display().to_string(),
                log.display().to_string(),
                n.victim
            ),
        )?;
        let config_arg = config.display().to_string();
        agent.run_with(&env, &["--config", &config_arg])?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        wait_until("the agent's nftables table", secs(15), millis(100), || async {
            ensure!(nft_elements(&n).await?.contains("blocked4"), "no table yet");
            Ok(())
        })
        .await?;
        ensure!(attacker_can_connect(&n).await?, "before the attack the attacker reaches sshd");

        // The attack: hydra from the attacker namespace with a word list.
        let words = dir.join("words.txt");
        let list: Vec<String> = (0..40).map(|i| format!("wrong-{i}")).collect();
        std::fs::write(&words, list.join("\n") + "\n")?;
        // In the background: once blocked, its connections hang until it gives up.
        let mut cmd = command("ip");
        // --foreground keeps hydra in this process group, which dropping the Proc kills.
        cmd.args(["netns", "exec", &n.attacker, "timeout", "--foreground", "60", "hydra", "-l", "root", "-P"])
            .arg(&words)
            .args(["-t", "4", "-I", &format!("ssh://{VICTIM_IP}")]);
        let hydra = Proc::spawn(&env, "hydra[attacker]", cmd, &dir, "hydra")?;
        let alarm = wait_until("the brute-force alarm at the center", secs(30), millis(200), || async {
            let r = api.get("/api/v1/alarms?type=brute_force").await?.expect(200)?;
            r.json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["source_ip"] == ATTACKER_IP)
                .cloned()
                .ok_or_else(|| anyhow!("no alarm yet: {}", r.text))
        })
        .await?;
        drop(hydra);
        ensure!(alarm["count"].as_i64() >= Some(5), "at least the 5 failures that crossed the threshold: {alarm}");
        ensure!(alarm["evidence"]["users"] == json!(["root"]) && alarm["evidence"]["service"] == "ssh", "{alarm}");
        ensure!(alarm["severity"] == "high" && alarm["technique"].as_str().is_some_and(|t| t.starts_with("T1110")), "{alarm}");
        ensure!(nft_elements(&n).await?.contains(ATTACKER_IP), "the attacker is in the victim's block set");
        ensure!(!attacker_can_connect(&n).await?, "a blocked attacker's new connections fail");
        let blocked = api.get(&format!("/api/v1/servers/{server}/blocked-ips")).await?.expect(200)?;
        let entry = blocked.json["items"].as_array().into_iter().flatten().find(|b| b["addr"] == ATTACKER_IP).cloned();
        ensure!(entry.as_ref().is_some_and(|b| b["active"] == true && b["reason"] == "brute_force"), "{}", blocked.text);
        // The default SSH block is 12 hours.
        let e = entry.unwrap_or_default();
        let hours = (e["expires_at"].as_i64().unwrap_or(0) - e["blocked_at"].as_i64().unwrap_or(0)) / 3600;
        ensure!(hours == 12, "SSH blocks last 12 h by default: {e}");

        // Unblocking through the API restores connectivity.
        let r = api.delete(&format!("/api/v1/servers/{server}/blocked-ips/{ATTACKER_IP}")).await?.expect(202)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;
        ensure!(!nft_elements(&n).await?.contains(ATTACKER_IP), "unblocked");
        ensure!(attacker_can_connect(&n).await?, "after the unblock the attacker reaches sshd again");
        wait_until("the center's block list to follow", secs(10), millis(100), || async {
            let b = api.get(&format!("/api/v1/servers/{server}/blocked-ips")).await?.expect(200)?;
            ensure!(b.json["items"] == json!([]), "{}", b.text);
            Ok(())
        })
        .await?;

        // A manual block survives an agent restart even when the table is gone (a reboot).
        let r = api
            .post(&format!("/api/v1/servers/{server}/blocked-ips"), json!({"addr": ATTACKER_IP, "minutes": 30}))
            .await?
            .expect(201)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;
        ensure!(!attacker_can_connect(&n).await?, "manually blocked");
        agent.term().await?;
        ip(&["netns", "exec", &n.victim, "nft", "delete", "table", "inet", "hostward"]).await?;
        ensure!(attacker_can_connect(&n).await?, "with the table gone the block is gone too");
        agent.run_with(&env, &["--config", &config_arg])?;
        wait_until("the block to be restored", secs(20), millis(100), || async {
            ensure!(nft_elements(&n).await?.contains(ATTACKER_IP), "not yet");
            Ok(())
        })
        .await?;
        ensure!(!attacker_can_connect(&n).await?, "the restored block drops the attacker again");
        let r = api.delete(&format!("/api/v1/servers/{server}/blocked-ips/{ATTACKER_IP}")).await?.expect(202)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;

        // A whitelisted attacker is never blocked; when it then logs in, the password was cracked.
        let project = api.get("/api/v1/projects").await?.expect(200)?.json["items"][0]["id"].as_str().unwrap_or_default().to_string();
        let bad = api
            .put(&format!("/api/v1/projects/{project}/bruteforce-policy"), json!({"whitelist": ["10.79.0.300"]}))
            .await?
            .expect(400)?;
        ensure!(bad.error_message().starts_with("whitelist[0]"), "{}", bad.text);
        api.put(&format!("/api/v1/projects/{project}/bruteforce-policy"), json!({"whitelist": [format!("{ATTACKER_IP}/32")]}))
            .await?
            .expect(200)?;
        let user = format!("hwbf{:06x}", rand::random::<u32>() & 0xff_ffff);
        let password = format!("Hw-{:08x}-{:08x}", rand::random::<u32>(), rand::random::<u32>());
        let _user = User::add(&user, &password).await?;
        // Five misses (the threshold) and the password, within one connection (sshd allows six tries).
        let mut list: Vec<String> = (0..5).map(|i| format!("wrong-{i}")).collect();
        list.push(password.clone());
        std::fs::write(&words, list.join("\n") + "\n")?;
        // Let the new policy reach the agent (the config push is immediate; its apply is not awaited).
        tokio::time::sleep(millis(500)).await;
        let hydra = run_cmd_timeout(
            Path::new("ip"),
            &["netns", "exec", &n.attacker, "timeout", "60", "hydra", "-l", &user, "-P", &words.display().to_string(), "-t", "1", "-f", "-I", &format!("ssh://{VICTIM_IP}")]
                .map(String::from),
            None,
            secs(70),
        )
        .await?;
        ensure!(hydra.stdout.contains("1 valid password found"), "hydra logs in at last: {hydra}");
        ensure!(!nft_elements(&n).await?.contains(ATTACKER_IP), "a whitelisted source is never blocked");
        ensure!(attacker_can_connect(&n).await?, "the whitelisted attacker still reaches sshd");
        let cracked = wait_until("the password-cracked alarm", secs(30), millis(200), || async {
            let r = api.get("/api/v1/alarms?type=password_cracked").await?.expect(200)?;
            r.json["items"].as_array().into_iter().flatten().find(|a| a["source_ip"] == ATTACKER_IP).cloned().ok_or_else(|| anyhow!("not yet: {}", r.text))
        })
        .await?;
        ensure!(cracked["severity"] == "critical", "{cracked}");

        // Log injection through the real sshd: a user name that reads like another source. sshd
        // appends the real source after it; only that one may be blocked.
        api.put(&format!("/api/v1/projects/{project}/bruteforce-policy"), json!({})).await?.expect(200)?;
        tokio::time::sleep(millis(500)).await;
        let decoy = "10.79.0.9";
        let injected = format!("x from {decoy} port 22 ssh2");
        let inj = run_cmd_timeout(
            Path::new("ip"),
            &["netns", "exec", &n.attacker, "timeout", "20", "hydra", "-l", &injected, "-P", &words.display().to_string(), "-t", "1", "-I", &format!("ssh://{VICTIM_IP}")]
                .map(String::from),
            None,
            secs(30),
        )
        .await?;
        let logged = std::fs::read_to_string(&log)?;
        ensure!(
            logged.contains(&format!("Failed password for invalid user {injected} from {ATTACKER_IP}")),
            "sshd logged the crafted user name: {inj}"
        );
        wait_until("the injected attack's real source to be blocked", secs(20), millis(100), || async {
            ensure!(nft_elements(&n).await?.contains(ATTACKER_IP), "not yet");
            Ok(())
        })
        .await?;
        ensure!(!nft_elements(&n).await?.contains(decoy), "the address inside the user name is never blocked");
        let alarms = api.get("/api/v1/alarms").await?.expect(200)?;
        ensure!(!alarms.text.contains(&format!("\"source_ip\":\"{decoy}\"")), "no alarm names the decoy: {}", alarms.text);
        let r = api.delete(&format!("/api/v1/servers/{server}/blocked-ips/{ATTACKER_IP}")).await?.expect(202)?;
        wait_task(&api, r.json["id"].as_str().unwrap_or_default()).await?;

        // Protection off for the server: the same attack, read but not acted on.
        api.put(&format!("/api/v1/projects/{project}/bruteforce-policy"), json!({})).await?.expect(200)?;
        api.put(&format!("/api/v1/servers/{server}/protection"), json!({"enabled": false})).await?.expect(200)?;
        let count_of = |list: &Value| {
            list["items"].as_array().into_iter().flatten().filter(|a| a["source_ip"] == ATTACKER_IP).map(|a| a["count"].as_i64().unwrap_or(0)).sum::<i64>()
        };
        let before = count_of(&api.get("/api/v1/alarms?type=brute_force").await?.expect(200)?.json);
        let failures_before = std::fs::read_to_string(&log)?.matches("Failed password for root").count();
        tokio::time::sleep(millis(500)).await;
        let off = run_cmd_timeout(
            Path::new("ip"),
            &["netns", "exec", &n.attacker, "timeout", "10", "hydra", "-l", "root", "-P", &words.display().to_string(), "-t", "4", "-I", &format!("ssh://{VICTIM_IP}")]
                .map(String::from),
            None,
            secs(20),
        )
        .await?;
        let failures = std::fs::read_to_string(&log)?.matches("Failed password for root").count() - failures_before;
        ensure!(failures >= 5, "the attack happened ({failures} failures logged): {off}");
        tokio::time::sleep(secs(1)).await;
        ensure!(!nft_elements(&n).await?.contains(ATTACKER_IP), "protection off: nothing blocked");
        let after = count_of(&api.get("/api/v1/alarms?type=brute_force").await?.expect(200)?.json);
        ensure!(after == before, "protection off: no alarm ({before} -> {after})");
        ensure!(cracked["evidence"]["users"].as_array().is_some_and(|u| u.contains(&json!(user))), "{cracked}");
        ensure!(
            cracked["evidence"]["lines"][0].as_str().is_some_and(|l| l.contains(&format!("Accepted password for {user} from {ATTACKER_IP}"))),
            "the login's own line comes first: {cracked}"
        );
        Ok(())
    })
    .await
}
