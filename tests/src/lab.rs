//! A small network lab for the detection tests: a "victim" and an "attacker" network namespace
//! joined by a veth pair (IPv4 and IPv6), real daemons in the victim namespace with their logs
//! written as a syslog daemon would, and an agent whose nftables table lives in the victim
//! namespace, so a test blocks nothing on the host and tests run side by side.
//!
//! Addresses are the same in every lab (each lab has its own namespaces): the victim is
//! [`VICTIM_IP`] / [`VICTIM_IP6`], the attacker [`ATTACKER_IP`] / [`ATTACKER_IP6`]; more attacker
//! addresses come from [`Netns::add_attacker_addr`].
//!
//! This build machine runs neither journald nor rsyslog: [`Syslog`] pipes a daemon's stderr into
//! a file in syslog format and, as rsyslog does after logrotate's HUP, reopens the file when the
//! path no longer names the file it writes (rename + create rotation).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::*;

pub const VICTIM_IP: &str = "10.79.0.1";
pub const ATTACKER_IP: &str = "10.79.0.2";
pub const VICTIM_IP6: &str = "fd79::1";
pub const ATTACKER_IP6: &str = "fd79::2";

/// Checks that the tools a lab test needs are installed, naming the missing one.
pub async fn require_tools(tools: &[&str]) -> Result<()> {
    for tool in tools {
        let found = run_cmd(
            Path::new("sh"),
            &["-c".into(), format!("command -v {tool}")],
            None,
        )
        .await?;
        ensure!(
            found.success(),
            "{tool} is not installed (.ci/run installs what the lab tests need)"
        );
    }
    Ok(())
}

/// Runs `ip ARGS`, failing with its output.
pub async fn ip(args: &[&str]) -> Result<()> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd(Path::new("ip"), &args, None).await?.ok()?;
    Ok(())
}

/// The two namespaces and their veth pair; deleted on drop, whatever happened.
pub struct Netns {
    pub victim: String,
    pub attacker: String,
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

impl Netns {
    pub async fn new() -> Result<Netns> {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let n = Netns {
            victim: format!("hwv{tag}"),
            attacker: format!("hwa{tag}"),
        };
        let (v, a) = (n.victim.as_str(), n.attacker.as_str());
        ip(&["netns", "add", v]).await?;
        ip(&["netns", "add", a]).await?;
        ip(&["link", "add", v, "type", "veth", "peer", "name", a]).await?;
        ip(&["link", "set", v, "netns", v]).await?;
        ip(&["link", "set", a, "netns", a]).await?;
        for (ns, v4, v6) in [(v, VICTIM_IP, VICTIM_IP6), (a, ATTACKER_IP, ATTACKER_IP6)] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ns]).await?;
            // nodad: the address is usable at once instead of after duplicate detection.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ns,
                "nodad",
            ])
            .await?;
            ip(&["-n", ns, "link", "set", ns, "up"]).await?;
            ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        }
        Ok(n)
    }

    /// One more attacker address (`10.79.0.N` or `fd79::N`), for clients that bind it.
    pub async fn add_attacker_addr(&self, addr: &str) -> Result<()> {
        let cidr = if addr.contains(':') {
            format!("{addr}/64")
        } else {
            format!("{addr}/24")
        };
        let a = self.attacker.as_str();
        ip(&["-n", a, "addr", "add", &cidr, "dev", a, "nodad"]).await
    }

    /// A command run inside the attacker namespace.
    pub fn attacker_cmd(&self, program: &str) -> std::process::Command {
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", &self.attacker, program]);
        cmd
    }

    /// `ip netns exec ATTACKER ARGS…` to completion, as [`run_cmd_timeout`].
    pub async fn in_attacker(&self, args: &[&str], timeout: std::time::Duration) -> Result<Output> {
        let mut all = vec!["netns".to_string(), "exec".into(), self.attacker.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        run_cmd_timeout(Path::new("ip"), &all, None, timeout).await
    }

    /// Whether a new TCP connection from the attacker (from `from`, or its default address)
    /// to `addr`:`port` in the victim namespace succeeds within 2 s.
    pub async fn can_connect(&self, from: Option<&str>, addr: &str, port: u16) -> Result<bool> {
        let script = "import socket, sys\n\
             fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET\n\
             s = socket.socket(fam, socket.SOCK_STREAM)\n\
             s.settimeout(2)\n\
             if sys.argv[1]: s.bind((sys.argv[1], 0))\n\
             s.connect((sys.argv[2], int(sys.argv[3])))\n";
        let port = port.to_string();
        let out = self
            .in_attacker(
                &["python3", "-c", script, from.unwrap_or(""), addr, &port],
                secs(10),
            )
            .await?;
        Ok(out.success())
    }

    /// The agent's set (`blocked4` / `blocked6`) as `nft list set` prints it; empty when the
    /// table is not there.
    pub async fn nft_set(&self, set: &str) -> Result<String> {
        let out = run_cmd(
            Path::new("ip"),
            &[
                "netns",
                "exec",
                &self.victim,
                "nft",
                "list",
                "set",
                "inet",
                "hostward",
                set,
            ]
            .map(String::from),
            None,
        )
        .await?;
        Ok(out.stdout)
    }

    /// Both block sets, for "is X blocked" checks.
    pub async fn blocked(&self) -> Result<String> {
        Ok(format!(
            "{}{}",
            self.nft_set("blocked4").await?,
            self.nft_set("blocked6").await?
        ))
    }

    /// Waits (up to 30 s) until `addr` is in one of the agent's block sets.
    pub async fn wait_blocked(&self, addr: &str) -> Result<()> {
        wait_until(
            &format!("{addr} to be blocked"),
            secs(30),
            millis(20),
            || async {
                ensure!(self.blocked().await?.contains(addr), "not yet");
                Ok(())
            },
        )
        .await
    }

    /// The agent config lines that put its firewall into the victim namespace.
    pub fn firewall_toml(&self, ports: &[u16]) -> String {
        format!(
            "[firewall]\nnft = [\"ip\", \"netns\", \"exec\", {:?}, \"nft\"]\nports = {ports:?}\n",
            self.victim
        )
    }
}

/// A daemon's stderr written to `log` in syslog format (`Mmm dd HH:MM:SS host PROG[PID]: …`).
pub struct Syslog;

impl Syslog {
    const ADAPTER: &str = r#"
import os, socket, sys, time
host = socket.gethostname()
path, tag = sys.argv[1], sys.argv[2]
out = open(path, "a", buffering=1)
for line in sys.stdin:
    try:
        moved = os.stat(path).st_ino != os.fstat(out.fileno()).st_ino
    except FileNotFoundError:
        moved = True
    if moved:
        out.close()
        out = open(path, "a", buffering=1)
    out.write(time.strftime("%b %e %H:%M:%S ") + host + " " + tag + ": " + line)
"#;

    /// The shell pipeline tail `| python3 -u ADAPTER LOG 'PROG[$$]'` for `bash -c "exec
    /// DAEMON 2>&1 | …"`: `$$` is the bash process, which `exec` makes the daemon.
    pub fn pipe(dir: &Path, log: &Path, prog: &str) -> Result<String> {
        let adapter = dir.join("syslog.py");
        std::fs::write(&adapter, Self::ADAPTER)?;
        Ok(format!(
            "| python3 -u {} {} \"{prog}[$$]\"",
            adapter.display(),
            log.display()
        ))
    }
}

/// journald for the tests that read the journal: the host's when one runs (a systemd host),
/// else one started here and stopped on drop (a build box without systemd). Only one test at a
/// time may start one.
pub struct Journald {
    proc: Option<Proc>,
    /// `/run/systemd/journal`, when it did not exist before: its sockets outlive journald and
    /// would tell agents that journald runs.
    made_dir: Option<PathBuf>,
}

impl Drop for Journald {
    fn drop(&mut self) {
        drop(self.proc.take());
        if let Some(dir) = &self.made_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Journald {
    pub async fn ensure(env: &TestEnv) -> Result<Journald> {
        require_tools(&["/lib/systemd/systemd-journald", "systemd-cat", "journalctl"]).await?;
        let running = run_cmd(
            Path::new("pgrep"),
            &["-x".into(), "systemd-journal".into()],
            None,
        )
        .await?
        .success();
        let mut journald = Journald {
            proc: None,
            made_dir: None,
        };
        if !running {
            let sockets = PathBuf::from("/run/systemd/journal");
            if !sockets.exists() {
                std::fs::create_dir_all(&sockets)?;
                journald.made_dir = Some(sockets);
            }
            let dir = env.subdir("journald");
            let cmd = command("/lib/systemd/systemd-journald");
            journald.proc = Some(Proc::spawn(env, "systemd-journald", cmd, &dir, "journald")?);
        }
        let probe = format!("hostward-e2e-journal-probe-{:08x}", rand::random::<u32>());
        wait_until(
            "journald to take messages",
            secs(15),
            millis(200),
            || async {
                run_cmd(
                    Path::new("systemd-cat"),
                    &[
                        "-t".into(),
                        "hostward-e2e".into(),
                        "echo".into(),
                        probe.clone(),
                    ],
                    None,
                )
                .await?
                .ok()?;
                let out = run_cmd(
                    Path::new("journalctl"),
                    &[
                        "-t".into(),
                        "hostward-e2e".into(),
                        "-n".into(),
                        "20".into(),
                        "--no-pager".into(),
                    ],
                    None,
                )
                .await?;
                ensure!(out.stdout.contains(&probe), "not yet: {out}");
                Ok(())
            },
        )
        .await?;
        Ok(journald)
    }
}

/// A real OpenSSH server on port 22 of the victim namespace, logging to `log`.
pub struct Sshd {
    pub dir: PathBuf,
    pub log: PathBuf,
    _proc: Proc,
}

impl Sshd {
    /// Starts sshd with a fresh host key and `extra` options (`-o Key=Value` pairs), logging
    /// to [`Sshd::log`]; waits until the attacker can connect.
    pub async fn start(env: &TestEnv, n: &Netns, extra: &[&str]) -> Result<Sshd> {
        Self::start_logging(env, n, extra, false).await
    }

    /// As [`Sshd::start`], logging to journald (`systemd-cat` execs sshd on a journal stream,
    /// so journald records `_COMM=sshd`, as for a service systemd starts); `log` stays empty.
    pub async fn start_journal(env: &TestEnv, n: &Netns, extra: &[&str]) -> Result<Sshd> {
        Self::start_logging(env, n, extra, true).await
    }

    async fn start_logging(
        env: &TestEnv,
        n: &Netns,
        extra: &[&str],
        journal: bool,
    ) -> Result<Sshd> {
        let dir = env.subdir("sshd");
        let key = dir.join("host_key");
        run_cmd(
            Path::new("ssh-keygen"),
            &["-q", "-t", "ed25519", "-N", "", "-f"]
                .map(String::from)
                .into_iter()
                .chain([key.display().to_string()])
                .collect::<Vec<_>>(),
            None,
        )
        .await?
        .ok()?;
        std::fs::create_dir_all("/run/sshd")?;
        let log = dir.join("auth.log");
        std::fs::write(&log, "")?;
        let extra: Vec<String> = extra.iter().map(|o| format!("-o '{o}'")).collect();
        let sshd = format!(
            "/usr/sbin/sshd -D -e -p 22 -h {} -o PidFile=none -o LogLevel=INFO {}",
            key.display(),
            extra.join(" ")
        );
        let script = if journal {
            format!("exec systemd-cat -t sshd {sshd}")
        } else {
            format!("exec {sshd} 2>&1 {}", Syslog::pipe(&dir, &log, "sshd")?)
        };
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", &n.victim, "bash", "-c"])
            .arg(script);
        let proc = Proc::spawn(env, "sshd[victim]", cmd, &dir, "sshd")?;
        for addr in [VICTIM_IP, VICTIM_IP6] {
            wait_until(
                &format!("sshd to listen on {addr}"),
                secs(10),
                millis(100),
                || async {
                    ensure!(n.can_connect(None, addr, 22).await?, "not yet");
                    Ok(())
                },
            )
            .await?;
        }
        Ok(Sshd {
            dir,
            log,
            _proc: proc,
        })
    }

    /// Failed-password lines from `source` in the log and its rotated copies (`LOG.1`, …).
    pub fn failures_from(&self, source: &str) -> Result<usize> {
        let needle = format!(" from {source} port ");
        let mut n = 0;
        for path in rotated(&self.log) {
            let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
            n += text
                .lines()
                .filter(|l| l.contains("Failed password") && l.contains(&needle))
                .count();
        }
        Ok(n)
    }
}

/// `LOG.i`, as logrotate names the i-th older file.
pub fn rotated_name(log: &Path, i: u32) -> PathBuf {
    PathBuf::from(format!("{}.{i}", log.display()))
}

/// `log` and every existing `log.N`.
pub fn rotated(log: &Path) -> Vec<PathBuf> {
    let mut out = vec![log.to_path_buf()];
    for i in 1.. {
        let p = rotated_name(log, i);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out
}

/// An enrolled agent whose auth logs are the given files (services not named are off) and
/// whose firewall is the victim namespace's; running and online when this returns.
pub async fn lab_agent(
    env: &TestEnv,
    center: &Center,
    n: &Netns,
    label: &str,
    logs: &[(&str, &Path)],
) -> Result<Agent> {
    let mut authlog = "source = \"files\"\n".to_string();
    for service in ["ssh", "ftp", "mysql"] {
        match logs.iter().find(|(s, _)| *s == service) {
            Some((_, path)) => authlog.push_str(&format!(
                "\n[authlog.{service}]\npath = {:?}\n",
                path.display().to_string()
            )),
            None => authlog.push_str(&format!("\n[authlog.{service}]\nenabled = false\n")),
        }
    }
    start_agent(env, center, n, label, &authlog).await
}

/// As [`lab_agent`], reading SSH from journald (see [`Journald`]); FTP and MySQL off.
pub async fn lab_agent_journal(
    env: &TestEnv,
    center: &Center,
    n: &Netns,
    label: &str,
) -> Result<Agent> {
    let authlog = "source = \"journald\"\n\n[authlog.ftp]\nenabled = false\n\n[authlog.mysql]\nenabled = false\n";
    start_agent(env, center, n, label, authlog).await
}

async fn start_agent(
    env: &TestEnv,
    center: &Center,
    n: &Netns,
    label: &str,
    authlog: &str,
) -> Result<Agent> {
    let token = center.create_token(&["--name", label]).await?;
    let mut agent = Agent::new(env, label);
    agent.enroll(env, center, &token.secret).await?;
    let toml = format!(
        "state_dir = {:?}\n\n[authlog]\n{authlog}\n{}",
        agent.state_dir.display().to_string(),
        n.firewall_toml(&[21, 22, 3306])
    );
    std::fs::write(agent.dir.join("agent.toml"), toml)?;
    run_lab_agent(env, &mut agent)?;
    center
        .api()
        .wait_status(&agent.server_id, "online", None, secs(30))
        .await?;
    wait_until(
        "the agent's nftables table",
        secs(15),
        millis(100),
        || async {
            ensure!(
                n.nft_set("blocked4").await?.contains("blocked4"),
                "no table yet"
            );
            Ok(())
        },
    )
    .await?;
    Ok(agent)
}

/// (Re)starts a lab agent with its lab config.
pub fn run_lab_agent(env: &TestEnv, agent: &mut Agent) -> Result<()> {
    let config = agent.dir.join("agent.toml").display().to_string();
    agent.run_with(env, &["--config", &config])
}

/// Waits for a task to be `done`, returning it.
pub async fn wait_task(api: &Api, id: &str) -> Result<Value> {
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

/// Unblocks `addr` on `server` through the API, waits for the agent to carry it out, and
/// checks the address left the victim's block sets.
pub async fn unblock(api: &Api, n: &Netns, server: &str, addr: &str) -> Result<()> {
    let r = api
        .delete(&format!("/api/v1/servers/{server}/blocked-ips/{addr}"))
        .await?
        .expect(202)?;
    wait_task(api, r.json["id"].as_str().unwrap_or_default()).await?;
    let sets = n.blocked().await?;
    ensure!(
        !sets.contains(addr),
        "{addr} is still blocked after the unblock: {sets}"
    );
    Ok(())
}

/// The first alarm of `alarm_type` whose source is `source`, waiting up to 30 s for it.
pub async fn wait_alarm(api: &Api, alarm_type: &str, source: &str) -> Result<Value> {
    wait_alarm_where(
        api,
        &format!("type={alarm_type}"),
        &format!("a {alarm_type} alarm from {source} at the center"),
        secs(30),
        |a| a["source_ip"] == source,
    )
    .await
}

/// The first alarm listed by `/api/v1/alarms?{query}` that `pick` accepts, waiting up to
/// `timeout`; `what` names it in the timeout's message.
pub async fn wait_alarm_where(
    api: &Api,
    query: &str,
    what: &str,
    timeout: Duration,
    pick: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_until(what, timeout, millis(200), || async {
        let r = api
            .get(&format!("/api/v1/alarms?{query}"))
            .await?
            .expect(200)?;
        r.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| pick(a))
            .cloned()
            .ok_or_else(|| anyhow!("none yet: {}", truncate(&r.text, 600)))
    })
    .await
}

/// A fresh local account whose SSH key login works against an [`Sshd`] started with
/// [`KeyAccount::sshd_options`]: the key is authorized through a file of our own, so nothing in
/// the account's home changes. The account is deleted when this is dropped.
pub struct KeyAccount {
    pub account: User,
    pub user: String,
    /// The client's private key.
    pub key: PathBuf,
    keys: PathBuf,
}

impl KeyAccount {
    pub async fn new(env: &TestEnv, prefix: &str) -> Result<KeyAccount> {
        let keys = env.subdir("keys");
        let key = keys.join("client_key");
        let args = [
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &key.display().to_string(),
        ];
        run_cmd(Path::new("ssh-keygen"), &args.map(String::from), None)
            .await?
            .ok()?;
        let (account, _) = User::random(prefix).await?;
        let user = account.0.clone();
        std::fs::copy(
            keys.join("client_key.pub"),
            keys.join(format!("{user}.keys")),
        )?;
        Ok(KeyAccount {
            account,
            user,
            key,
            keys,
        })
    }

    /// The sshd options that authorize the key (pass them to [`Sshd::start`]).
    pub fn sshd_options(&self) -> [String; 2] {
        [
            format!("AuthorizedKeysFile={}/%u.keys", self.keys.display()),
            "StrictModes=no".into(),
        ]
    }
}
