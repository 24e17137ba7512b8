//! Login monitoring end to end with real parts: a real OpenSSH server in a "server" network
//! namespace whose log the agent follows, and a real `ssh` client logging in with a key from a
//! "client" namespace that holds two addresses, X and Y (`ssh -b`). The first login, from X,
//! is learned: X shows at the center in the server's usual login addresses as `learned`. An
//! admin then keeps X and switches learning off; a login from Y raises `unusual_login_ip` with
//! Y and the user, X stays silent, and after an agent restart the center's list still applies.
//!
//! sshd runs with `-e` and a small adapter writes its lines as a syslog daemon would: this
//! build machine runs neither journald nor rsyslog.
//
// The namespace and sshd set-up follows tests/tests/bruteforce.rs; once the shared harness
// (`hostward_e2e::lab`) lands on main, both should use it.

use std::path::Path;

use hostward_e2e::*;
use serde_json::{Value, json};

const SERVER_IP: &str = "10.81.0.1";
const X: &str = "10.81.0.2";
const Y: &str = "10.81.0.3";

/// The two namespaces and their veth pair; deleted on drop, whatever happened.
struct Netns {
    server: String,
    client: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
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
        server: format!("hwls{tag}"),
        client: format!("hwlc{tag}"),
    };
    let (s, c) = (n.server.clone(), n.client.clone());
    ip(&["netns", "add", &s]).await?;
    ip(&["netns", "add", &c]).await?;
    ip(&["link", "add", &s, "type", "veth", "peer", "name", &c]).await?;
    ip(&["link", "set", &s, "netns", &s]).await?;
    ip(&["link", "set", &c, "netns", &c]).await?;
    ip(&[
        "-n",
        &s,
        "addr",
        "add",
        &format!("{SERVER_IP}/24"),
        "dev",
        &s,
    ])
    .await?;
    for addr in [X, Y] {
        ip(&["-n", &c, "addr", "add", &format!("{addr}/24"), "dev", &c]).await?;
    }
    for (ns, dev) in [(&s, &s), (&c, &c)] {
        ip(&["-n", ns, "link", "set", dev, "up"]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
    }
    Ok(n)
}

/// A local account that logs in with a key; removed on drop.
struct User(String);

impl User {
    async fn add(name: &str) -> Result<User> {
        run_cmd(
            Path::new("useradd"),
            &["-M".into(), "-s".into(), "/bin/sh".into(), name.into()],
            None,
        )
        .await?
        .ok()?;
        let user = User(name.to_string());
        // A password, so no PAM set-up counts the account as locked; the login uses the key.
        let password = format!("Hw-{:016x}", rand::random::<u64>());
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

/// A real key login from `from` (one of the client namespace's addresses); must succeed.
async fn login(n: &Netns, key: &Path, user: &str, from: &str) -> Result<()> {
    let out = run_cmd_timeout(
        Path::new("ip"),
        &[
            "netns",
            "exec",
            &n.client,
            "ssh",
            "-i",
            &key.display().to_string(),
            "-b",
            from,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            &format!("{user}@{SERVER_IP}"),
            "true",
        ]
        .map(String::from),
        None,
        secs(20),
    )
    .await?;
    ensure!(out.success(), "ssh from {from} as {user} failed: {out}");
    Ok(())
}

/// The `unusual_login_ip` alarms from `source`, summed.
async fn unusual_count(api: &Api, server: &str, source: &str) -> Result<i64> {
    let r = api
        .get(&format!(
            "/api/v1/alarms?type=unusual_login_ip&server={server}"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["source_ip"] == source)
        .map(|a| a["count"].as_i64().unwrap_or(0))
        .sum())
}

async fn wait_unusual(api: &Api, server: &str, source: &str, at_least: i64) -> Result<()> {
    wait_until(
        &format!("{at_least} unusual-address login(s) from {source} at the center"),
        secs(30),
        millis(200),
        || async {
            let n = unusual_count(api, server, source).await?;
            ensure!(n >= at_least, "{n} so far");
            Ok(())
        },
    )
    .await
}

fn addrs(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["addr"].as_str().unwrap_or_default().to_string(),
                e["origin"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn usual_login_addresses_are_learned_edited_and_enforced_with_a_real_sshd() -> Result<()> {
    let env = TestEnv::new("login-monitoring");
    env.run(async {
        for tool in ["ssh", "ssh-keygen", "/usr/sbin/sshd"] {
            let found = run_cmd(Path::new("sh"), &["-c".into(), format!("command -v {tool}")], None).await?;
            ensure!(found.success(), "{tool} is not installed (.ci/run installs openssh-server and openssh-client)");
        }
        let n = netns().await?;
        let dir = env.subdir("sshd");
        let keygen = |path: &Path| {
            let path = path.display().to_string();
            async move {
                run_cmd(Path::new("ssh-keygen"), &["-q", "-t", "ed25519", "-N", "", "-f", &path].map(String::from), None)
                    .await?
                    .ok()
            }
        };
        let host_key = dir.join("host_key");
        keygen(&host_key).await?;
        let user = format!("hwlm{:06x}", rand::random::<u32>() & 0xff_ffff);
        let _user = User::add(&user).await?;
        let client_key = dir.join("client_key");
        keygen(&client_key).await?;
        std::fs::copy(dir.join("client_key.pub"), dir.join(format!("{user}.keys")))?;
        std::fs::create_dir_all("/run/sshd")?;
        let log = dir.join("auth.log");
        std::fs::write(&log, "")?;
        let adapter = dir.join("syslog.py");
        std::fs::write(&adapter, ADAPTER)?;
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", &n.server, "bash", "-c"]).arg(format!(
            "exec /usr/sbin/sshd -D -e -p 22 -h {key} -o PidFile=none -o LogLevel=INFO \
             -o AuthorizedKeysFile={dir}/%u.keys -o StrictModes=no 2>&1 | python3 -u {adapter} {log} $$",
            key = host_key.display(),
            dir = dir.display(),
            adapter = adapter.display(),
            log = log.display()
        ));
        let _sshd = Proc::spawn(&env, "sshd[server]", cmd, &dir, "sshd")?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let token = center.create_token(&["--name", "server"]).await?;
        let mut agent = Agent::new(&env, "server");
        agent.enroll(&env, &center, &token.secret).await?;
        let config = agent.dir.join("agent.toml");
        // No firewall work here: nft runs in the server namespace only so the agent's table does
        // not touch the host's.
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n\n[authlog]\nsource = \"files\"\n\n[authlog.ssh]\npath = {:?}\n\n[authlog.ftp]\nenabled = false\n\n[authlog.mysql]\nenabled = false\n\n[firewall]\nnft = [\"ip\", \"netns\", \"exec\", {:?}, \"nft\"]\nports = [22]\n",
                agent.state_dir.display().to_string(),
                log.display().to_string(),
                n.server
            ),
        )?;
        let config_arg = config.display().to_string();
        agent.run_with(&env, &["--config", &config_arg])?;
        let server = agent.server_id.clone();
        api.wait_status(&server, "online", None, secs(30)).await?;
        // The config (with the server's list) follows hello; its apply is not awaited.
        tokio::time::sleep(secs(1)).await;
        let list_uri = format!("/api/v1/servers/{server}/login-ips");
        let list = api.get(&list_uri).await?.expect(200)?;
        ensure!(list.json["learning"] == true && addrs(&list.json).is_empty(), "a new server learns, from nothing: {}", list.text);

        // The first login, from X, is learned and reported.
        wait_until("sshd to accept logins", secs(10), millis(200), || login(&n, &client_key, &user, X)).await?;
        wait_until("X in the server's list as learned", secs(30), millis(200), || async {
            let l = api.get(&list_uri).await?.expect(200)?;
            ensure!(addrs(&l.json) == [(X.to_string(), "learned".to_string())], "{}", l.text);
            Ok(())
        })
        .await?;
        ensure!(unusual_count(&api, &server, X).await? == 0, "a learned login does not alarm");

        // An admin keeps X and stops learning.
        let bad = api.put(&list_uri, json!({"ips": [X, "10.81.0.256"], "learning": false})).await?.expect(400)?;
        ensure!(bad.error_message().starts_with("ips[1]"), "{}", bad.text);
        let put = api.put(&list_uri, json!({"ips": [X], "learning": false})).await?.expect(200)?;
        ensure!(addrs(&put.json) == [(X.to_string(), "learned".to_string())] && put.json["learning"] == false, "{}", put.text);
        tokio::time::sleep(secs(1)).await;

        // Y is unusual; X stays silent. Records arrive in order: once Y's second login is
        // counted, X's login in between has been judged too.
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 1).await?;
        let r = api.get(&format!("/api/v1/alarms?type=unusual_login_ip&server={server}")).await?.expect(200)?;
        let alarm = r.json["items"].as_array().into_iter().flatten().find(|a| a["source_ip"] == Y).cloned().unwrap_or_default();
        ensure!(alarm["evidence"]["users"] == json!([user]) && alarm["evidence"]["service"] == "ssh", "{alarm}");
        ensure!(
            alarm["evidence"]["lines"][0].as_str().is_some_and(|l| l.contains(&format!("Accepted publickey for {user} from {Y}"))),
            "the login's own line: {alarm}"
        );
        login(&n, &client_key, &user, X).await?;
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 2).await?;
        ensure!(unusual_count(&api, &server, X).await? == 0, "X is usual");
        let l = api.get(&list_uri).await?.expect(200)?;
        ensure!(addrs(&l.json) == [(X.to_string(), "learned".to_string())], "learning off: Y was not added: {}", l.text);

        // After an agent restart the center's list applies again.
        agent.term().await?;
        agent.run_with(&env, &["--config", &config_arg])?;
        api.wait_status(&server, "online", None, secs(30)).await?;
        tokio::time::sleep(secs(1)).await;
        login(&n, &client_key, &user, X).await?;
        login(&n, &client_key, &user, Y).await?;
        wait_unusual(&api, &server, Y, 3).await?;
        ensure!(unusual_count(&api, &server, X).await? == 0, "X is still usual after the restart");
        let l = api.get(&list_uri).await?.expect(200)?;
        ensure!(
            addrs(&l.json) == [(X.to_string(), "learned".to_string())] && l.json["learning"] == false,
            "the list is unchanged: {}",
            l.text
        );
        Ok(())
    })
    .await
}
