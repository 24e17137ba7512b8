//! The one-line install command, for real: the exact command `hostward token create --json`
//! prints (`install_command`) is run with `sh -c` against a real center. It fetches install.sh
//! and the agent binary from the center, enrolls, starts the agent and reports the outcome.
//! Only install.sh options are appended after its `--` (`--root DIR` so nothing lands in the
//! machine's real system paths, `--no-systemd`, and for the negative cases a later `--token` or
//! `--ca-sha256`, which wins over the printed one).
//!
//! - success: the server goes `installing` -> `online` with its facts; binary, config and state
//!   files exist under the root, `agent.key` is 0600; the agent is stopped by its PID.
//! - not root: exit != 0 with a clear message; the center shows `install_failed`/`not_root`.
//! - no systemd (this machine has none running): `install_failed`/`no_systemd`.
//! - bad token: exit != 0 naming `invalid_token`; no server (a bad token cannot be attributed).
//! - CA mismatch: exit != 0 with "CA fingerprint mismatch"; no server, token `uses` stays 0.
//! - disk full (a small tmpfs on the root, in a private mount namespace): `disk_full`, from the
//!   installer's check before the download and from the agent's check after it.
//!
//! The installer must run as root (CI runs the tests as root). Outside CI, cases that need root
//! are skipped with a message when the tests run as another user.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostward_e2e::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Whole install (two downloads of a debug agent binary, enroll, start) on a loaded machine.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(240);
/// uid/gid of `nobody` on Debian.
const NOBODY: u32 = 65534;
/// What the printed command pipes into; when we are root already, `sudo` is dropped.
const SUDO_PIPE: &str = "| sudo sh -s -- ";

fn am_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this case can run: true as root; outside CI a message and false, in CI an error.
fn need_root(case: &str) -> Result<bool> {
    if am_root() {
        return Ok(true);
    }
    let uid = nix::unistd::geteuid();
    if is_ci() {
        bail!("CI=true but the install tests run as uid {uid}: the installer needs root");
    }
    eprintln!(
        "SKIPPED ({case}): the installer needs root and these tests run as uid {uid}; \
         run them as root (CI does)"
    );
    Ok(false)
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The install command needs curl on the test machine, as on any host it is pasted into.
fn need_curl() -> Result<bool> {
    if in_path("curl") {
        return Ok(true);
    }
    if is_ci() {
        bail!(
            "CI=true but curl is not installed: the install command needs it (apt-get install curl)"
        );
    }
    eprintln!("SKIPPED: curl is not installed (apt-get install curl)");
    Ok(false)
}

/// The printed command with install.sh options appended, runnable here: the test runs as root
/// already (or, for the not-root case, deliberately without sudo), so `| sudo sh` becomes `| sh`.
fn runnable(printed: &str, extra: &[&str]) -> Result<String> {
    ensure!(
        printed.contains(SUDO_PIPE) && printed.starts_with("curl "),
        "the install command no longer has the shape `curl … {SUDO_PIPE}…`: {printed}"
    );
    let mut cmd = printed.replacen(SUDO_PIPE, "| sh -s -- ", 1);
    for e in extra {
        cmd.push(' ');
        cmd.push_str(e);
    }
    Ok(cmd)
}

/// One run of the install command: where it installed, what it printed.
struct Run {
    root: PathBuf,
    out: Output,
}

impl Run {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Who runs the install command, and on what.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Host {
    /// This test's user (root in CI).
    AsIs,
    /// `nobody`, via setpriv when we are root (else we are unprivileged already).
    Nobody,
    /// Root, with a tmpfs of this many MiB mounted on the install root in a private mount
    /// namespace (`unshare`): the mount exists only while the install command runs.
    SmallDisk(u64),
}

/// Runs `cmd` with `sh -c` on `host`, saving its output in the test dir so a failure shows it
/// with the center's log.
async fn run_install(env: &TestEnv, root: &Path, cmd: &str, host: Host) -> Result<Output> {
    // The installed agent inherits these: its malware module would hold every program's first
    // run on this host for a scan, and its first risk scan would read every password hash,
    // while the other tests run (tests/tests/malware.rs and risk_scan.rs test them).
    let cmd =
        &format!("export HOSTWARD_AGENT_MALWARE=off HOSTWARD_AGENT_FIRST_RISK_SCAN=off; {cmd}");
    let mut args: Vec<String> = Vec::new();
    let program = match host {
        Host::Nobody if am_root() => {
            args.extend([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "sh".into(),
            ]);
            "setpriv"
        }
        Host::SmallDisk(mib) => {
            args.extend([
                "--mount".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                format!(
                    "mount -t tmpfs -o size={mib}m hw-e2e-small-disk \"$0\" && exec sh -c \"$1\""
                ),
                root.display().to_string(),
                cmd.to_string(),
            ]);
            "unshare"
        }
        Host::AsIs | Host::Nobody => "sh",
    };
    if !matches!(host, Host::SmallDisk(_)) {
        args.extend(["-c".to_string(), cmd.to_string()]);
    }
    let out = run_cmd_timeout(Path::new(program), &args, None, INSTALL_TIMEOUT).await?;
    let dir = root.parent().unwrap_or(root);
    let stem = root.file_name().unwrap_or_default().to_string_lossy();
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let p = dir.join(format!("{stem}.install.{name}.log"));
        std::fs::write(&p, format!("exit code {:?}\n{text}", out.code))?;
        env.add_log(&format!("install command {name}"), &p);
    }
    Ok(out)
}

/// Whether this machine lets us mount a tmpfs in a private mount namespace (containers often
/// do not); a message when not.
async fn can_mount_small_disk(env: &TestEnv) -> Result<bool> {
    let probe = env.subdir("mount-probe");
    let args: Vec<String> = [
        "--mount",
        "--propagation",
        "private",
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "hw-e2e-probe",
        &probe.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_cmd(Path::new("unshare"), &args, None).await;
    match out {
        Ok(o) if o.success() => Ok(true),
        other => {
            let why = match other {
                Ok(o) => o.to_string(),
                Err(e) => format!("{e:#}"),
            };
            eprintln!(
                "SKIPPED (disk full): cannot mount a small tmpfs in a private mount namespace here: {why}"
            );
            Ok(false)
        }
    }
}

/// A center (SQLite, 1 s heartbeats, serving the built agent) and an enrollment token.
async fn center_and_token(env: &TestEnv) -> Result<(Center, EnrollToken)> {
    let center = Center::start(env, Backend::Sqlite, CenterOpts::default()).await?;
    let token = center.create_token(&["--name", "install"]).await?;
    Ok((center, token))
}

/// Runs the printed install command of `token` into a fresh root (`--root`, then `extra`).
/// Whatever the outcome, the output must not contain the token.
async fn run_printed(
    env: &TestEnv,
    token: &EnrollToken,
    extra: &[&str],
    host: Host,
) -> Result<Run> {
    let root = env.subdir("host");
    // Where the agent's own log goes with --no-systemd.
    env.add_log("agent (nohup)", &root.join("var/log/hostward-agent.log"));
    let root_arg = root.display().to_string();
    let mut all = vec!["--root", root_arg.as_str()];
    all.extend_from_slice(extra);
    let cmd = runnable(&token.install_command, &all)?;
    let out = run_install(env, &root, &cmd, host).await?;
    ensure!(
        !out.stdout.contains(&token.secret) && !out.stderr.contains(&token.secret),
        "the installer printed the enrollment token:\n{out}"
    );
    Ok(Run { root, out })
}

/// [`center_and_token`], then [`run_printed`].
async fn install(env: &TestEnv, extra: &[&str], host: Host) -> Result<(Center, EnrollToken, Run)> {
    let (center, token) = center_and_token(env).await?;
    let run = run_printed(env, &token, extra, host).await?;
    Ok((center, token, run))
}

/// `uses` of enrollment token `id` from `hostward token list --json`.
async fn token_uses(center: &Center, id: &str) -> Result<i64> {
    let v = center.cli_json(&["token", "list", "--json"]).await?;
    let items = v["items"]
        .as_array()
        .or(v.as_array())
        .ok_or_else(|| anyhow!("`token list --json` printed no list: {v}"))?;
    let t = items
        .iter()
        .find(|t| t["id"] == id)
        .ok_or_else(|| anyhow!("token {id} is not in `token list --json`: {v}"))?;
    t["uses"]
        .as_i64()
        .ok_or_else(|| anyhow!("token {id} has no uses count: {t}"))
}

async fn expect_uses(center: &Center, id: &str, want: i64) -> Result<()> {
    let uses = token_uses(center, id).await?;
    ensure!(
        uses == want,
        "enrollment token {id} has uses {uses}, want {want}"
    );
    Ok(())
}

/// Waits for the center to know exactly `n` servers, all with this agent status and reason.
async fn wait_servers(api: &Api, n: usize, status: &str, reason: &str) -> Result<Vec<Value>> {
    wait_until(
        &format!("exactly {n} server(s), all {status}/{reason}"),
        secs(30),
        millis(200),
        || async {
            let servers = api.servers().await?;
            let lines: Vec<String> = servers.iter().map(status_line).collect();
            ensure!(servers.len() == n, "{} servers: {lines:?}", servers.len());
            ensure!(
                servers
                    .iter()
                    .all(|s| s["agent_status"] == status && s["agent_reason"] == reason),
                "{lines:?}"
            );
            Ok(servers)
        },
    )
    .await
}

/// Waits for the one server the center knows to have this agent status and reason.
async fn wait_only_server(api: &Api, status: &str, reason: &str) -> Result<Value> {
    Ok(wait_servers(api, 1, status, reason).await?.remove(0))
}

async fn expect_no_server(api: &Api) -> Result<()> {
    let servers = api.servers().await?;
    ensure!(
        servers.is_empty(),
        "the center should have no server, it has {:?}",
        servers.iter().map(status_line).collect::<Vec<_>>()
    );
    Ok(())
}

/// Files under `root`, relative, sorted (for "nothing was installed" checks).
fn files_under(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The paths a default (`--root /`) install writes; none may appear because of these tests.
const SYSTEM_PATHS: &[&str] = &[
    "/usr/local/bin/hostward-agent",
    "/etc/hostward/agent.toml",
    "/var/lib/hostward-agent",
    "/etc/systemd/system/hostward-agent.service",
    "/var/log/hostward-agent.log",
    "/run/hostward-agent.pid",
];

fn absent_system_paths() -> Vec<&'static str> {
    SYSTEM_PATHS
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect()
}

fn check_system_untouched(absent_before: &[&str]) -> Result<()> {
    let appeared: Vec<&&str> = absent_before
        .iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    ensure!(
        appeared.is_empty(),
        "an install with --root wrote to the real system: {appeared:?}"
    );
    Ok(())
}

fn mode(p: &Path) -> Result<u32> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("{} should exist", p.display()))?
        .permissions()
        .mode()
        & 0o777)
}

// ---------------------------------------------------------------------------------------------
// The agent the installer started with nohup: not our child, so it is stopped by its PID.

/// Stops the installed agent when dropped (a failing test must not leave it running).
struct InstalledAgent {
    pid: Pid,
    root: PathBuf,
}

/// Whether `pid` is a live (not zombie) process whose command line names `root`: the agent the
/// installer started, not a recycled PID.
fn is_our_agent(pid: Pid, root: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3, after the parenthesised command name: Z is a zombie nobody reaped yet.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    state != Some('Z')
        && cmdline.contains("hostward-agent")
        && cmdline.contains(&root.display().to_string())
}

impl InstalledAgent {
    /// The PID from `<root>/run/hostward-agent.pid`, once it is our running agent (right after
    /// the installer returns it may still be between fork and exec).
    async fn from_pidfile(root: &Path) -> Result<InstalledAgent> {
        let pidfile = root.join("run/hostward-agent.pid");
        let text = std::fs::read_to_string(&pidfile)
            .with_context(|| format!("the installer should write {}", pidfile.display()))?;
        let pid: i32 = text
            .trim()
            .parse()
            .with_context(|| format!("{} holds {text:?}", pidfile.display()))?;
        // The guard first: whatever happens next, a drop stops this agent.
        let agent = InstalledAgent {
            pid: Pid::from_raw(pid),
            root: root.to_path_buf(),
        };
        wait_until(
            &format!(
                "pid {pid} from {} to be a running hostward-agent under {}",
                pidfile.display(),
                root.display()
            ),
            secs(10),
            millis(50),
            || async {
                ensure!(
                    agent.alive(),
                    "cmdline {:?}, stat {:?}",
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ")),
                    std::fs::read_to_string(format!("/proc/{pid}/stat"))
                );
                Ok(())
            },
        )
        .await?;
        Ok(agent)
    }

    fn alive(&self) -> bool {
        is_our_agent(self.pid, &self.root)
    }

    /// SIGTERM, then waits for the process to end.
    async fn term(&self, timeout: Duration) -> Result<()> {
        kill(self.pid, Signal::SIGTERM).with_context(|| format!("SIGTERM to {}", self.pid))?;
        wait_until(
            &format!("agent pid {} to exit", self.pid),
            timeout,
            millis(100),
            || async {
                ensure!(!self.alive(), "still running");
                Ok(())
            },
        )
        .await
    }
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        if self.alive() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

/// Kills any agent an install of this test left running (the test failed before it stopped
/// the agent by its PID); found by its command line, which names the test's dir.
fn kill_leftover_agents(env: &TestEnv) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let pid = Pid::from_raw(pid);
        if is_our_agent(pid, env.root()) {
            eprintln!("killing agent pid {pid} that this test's install left running");
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// Records every distinct agent status the server list shows while an install runs.
struct StatusWatch {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusWatch {
    fn start(api: Api) -> StatusWatch {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(servers) = api.servers().await {
                    for s in servers {
                        let st = format!(
                            "{}/{}",
                            s["agent_status"].as_str().unwrap_or("?"),
                            s["agent_reason"].as_str().unwrap_or("")
                        );
                        let mut seen = sink.lock().unwrap();
                        if seen.last() != Some(&st) {
                            seen.push(st);
                        }
                    }
                }
                tokio::time::sleep(millis(50)).await;
            }
        });
        StatusWatch { seen, task }
    }

    fn stop(self) -> Vec<String> {
        self.task.abort();
        self.seen.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

#[tokio::test]
async fn install_command_installs_enrolls_and_goes_online() -> Result<()> {
    if !need_root("install success")? || !need_curl()? {
        return Ok(());
    }
    let env = TestEnv::new("install-success");
    let result = env
        .run(async {
            let absent = absent_system_paths();
            let (center, token) = center_and_token(&env).await?;
            let api = center.api();
            let watch = StatusWatch::start(api.clone());
            let run = run_printed(&env, &token, &["--no-systemd"], Host::AsIs).await?;
            ensure!(
                run.out.success(),
                "the install command failed:\n{}",
                run.out
            );
            ensure!(
                run.out
                    .stderr
                    .contains("agent installed, enrolled and running without systemd"),
                "no success message:\n{}",
                run.out
            );
            let agent = InstalledAgent::from_pidfile(&run.root).await?;
            ensure!(
                run.out.stderr.contains(&format!("(pid {}", agent.pid)),
                "the success message should give the agent's pid {}:\n{}",
                agent.pid,
                run.out
            );

            // The center: one server, online, with this host's facts and the agent's identity.
            let s = wait_only_server(&api, "online", "").await?;
            let seen = watch.stop();
            eprintln!("agent statuses seen while installing: {seen:?}");
            ensure!(
                !seen.iter().any(|st| st.starts_with("install_failed")),
                "install_failed was shown during a good install: {seen:?}"
            );
            let identity: Value = serde_json::from_str(&std::fs::read_to_string(
                run.path("var/lib/hostward-agent/identity.json"),
            )?)?;
            ensure!(
                s["id"] == identity["server_id"] && s["agent_id"] == identity["agent_id"],
                "server {} / agent {} differ from identity.json {identity}",
                s["id"],
                s["agent_id"]
            );
            let host = hostname();
            ensure!(s["hostname"] == host.as_str(), "{}", status_line(&s));
            let f = &s["facts"];
            for key in ["hostname", "os_id", "kernel", "arch"] {
                ensure!(
                    f[key].as_str().is_some_and(|v| !v.is_empty()),
                    "facts.{key} is empty: {f}"
                );
            }
            ensure!(f["boot_time"].as_i64().is_some_and(|t| t > 0), "facts: {f}");

            // installing, then online (history is newest first).
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let detail = api.server_detail(&id).await?;
            let hist: Vec<(String, String)> = detail["history"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|h| h["dimension"] == "agent")
                .map(|h| {
                    (
                        h["status"].as_str().unwrap_or("").to_string(),
                        h["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let pos = |st: &str| hist.iter().position(|(s, _)| s == st);
            match (pos("installing"), pos("online")) {
                (Some(i), Some(o)) if o < i => {}
                _ => bail!("agent history should be installing, then online: {hist:?}"),
            }
            ensure!(
                !hist.iter().any(|(s, _)| s == "install_failed"),
                "agent history has install_failed: {hist:?}"
            );
            expect_uses(&center, &token.id, 1).await?;

            // The files, under the root only.
            let bin_path = run.path("usr/local/bin/hostward-agent");
            ensure!(
                std::fs::read(&bin_path)? == std::fs::read(bin("hostward-agent")?)?,
                "{} is not the center's agent binary",
                bin_path.display()
            );
            ensure!(
                mode(&bin_path)? & 0o111 != 0,
                "the agent binary is not executable"
            );
            let scanner = run.path("usr/local/bin/hostward-scanner");
            ensure!(
                std::fs::read(&scanner)? == std::fs::read(bin("hostward-scanner")?)?
                    && mode(&scanner)? & 0o111 != 0,
                "{} is not the center's scanner, executable",
                scanner.display()
            );
            let config = std::fs::read_to_string(run.path("etc/hostward/agent.toml"))?;
            let state_dir = run.path("var/lib/hostward-agent");
            ensure!(
                config.contains(&format!("state_dir = \"{}\"", state_dir.display())),
                "the config should name the state dir under the root:\n{config}"
            );
            ensure!(
                mode(&state_dir)? == 0o700,
                "state dir mode {:o}",
                mode(&state_dir)?
            );
            let key_mode = mode(&state_dir.join("agent.key"))?;
            ensure!(
                key_mode == 0o600,
                "agent.key has mode {key_mode:o}, want 600"
            );
            for f in ["agent.crt", "ca.crt", "identity.json", "outbox.db"] {
                ensure!(state_dir.join(f).is_file(), "{f} missing in the state dir");
            }
            ensure!(
                std::fs::read_to_string(state_dir.join("ca.crt"))? == center.ca_pem,
                "the agent pinned a CA other than the center's"
            );
            ensure!(
                !run.path("etc/systemd/system/hostward-agent.service")
                    .exists(),
                "--no-systemd installed a systemd unit"
            );
            check_system_untouched(&absent)?;

            // Stop it by PID: a graceful stop.
            agent.term(secs(30)).await?;
            api.wait_status(&id, "offline", Some("agent_stopped"), secs(15))
                .await?;
            Ok(())
        })
        .await;
    kill_leftover_agents(&env);
    result
}

#[tokio::test]
async fn install_command_as_non_root_reports_not_root() -> Result<()> {
    if !need_curl()? {
        return Ok(());
    }
    ensure!(
        !am_root() || in_path("setpriv"),
        "setpriv (util-linux) is needed to run the installer as nobody"
    );
    let env = TestEnv::new("install-not-root");
    env.run(async {
        let (center, token, run) = install(&env, &["--no-systemd"], Host::Nobody).await?;
        ensure!(
            !run.out.success(),
            "the installer should fail as non-root:\n{}",
            run.out
        );
        ensure!(
            run.out.stderr.contains("must run as root"),
            "the message should say it needs root:\n{}",
            run.out
        );
        let s = wait_only_server(&center.api(), "install_failed", "not_root").await?;
        ensure!(s["hostname"] == hostname().as_str(), "{}", status_line(&s));
        ensure!(
            s["agent_id"].is_null(),
            "no agent should be enrolled: {}",
            status_line(&s)
        );
        expect_uses(&center, &token.id, 0).await?;
        let files = files_under(&run.root);
        ensure!(files.is_empty(), "a refused install wrote {files:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn install_command_without_systemd_reports_no_systemd() -> Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!(
            "SKIPPED (no systemd): systemd runs on this machine, so the installer would use it"
        );
        return Ok(());
    }
    if !need_root("no systemd")? || !need_curl()? {
        return Ok(());
    }
    let env = TestEnv::new("install-no-systemd");
    env.run(async {
        let absent = absent_system_paths();
        let (center, token, run) = install(&env, &[], Host::AsIs).await?;
        ensure!(
            !run.out.success(),
            "the installer should fail without systemd:\n{}",
            run.out
        );
        ensure!(
            run.out.stderr.contains("systemd is not running")
                && run.out.stderr.contains("--no-systemd"),
            "the message should say systemd is missing and how to go on:\n{}",
            run.out
        );
        let s = wait_only_server(&center.api(), "install_failed", "no_systemd").await?;
        ensure!(s["hostname"] == hostname().as_str(), "{}", status_line(&s));
        expect_uses(&center, &token.id, 0).await?;
        let files = files_under(&run.root);
        ensure!(files.is_empty(), "a refused install wrote {files:?}");
        check_system_untouched(&absent)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn install_command_with_bad_token_creates_no_server() -> Result<()> {
    if !need_root("bad token")? || !need_curl()? {
        return Ok(());
    }
    let env = TestEnv::new("install-bad-token");
    let result = env
        .run(async {
            let bad = format!("hwe_{}", hex::encode(rand::random::<[u8; 24]>()));
            let (center, token, run) =
                install(&env, &["--no-systemd", "--token", &bad], Host::AsIs).await?;
            ensure!(
                !run.out.success(),
                "the installer should fail with a bad token:\n{}",
                run.out
            );
            ensure!(
                run.out.stderr.contains("invalid_token"),
                "the message should name the error code invalid_token:\n{}",
                run.out
            );
            ensure!(
                !run.out.text().contains(&bad),
                "the installer printed the (bad) token:\n{}",
                run.out
            );
            // A report under a bad token cannot be attributed to a project: by design no server.
            expect_no_server(&center.api()).await?;
            expect_uses(&center, &token.id, 0).await?;
            ensure!(
                !run.path("var/lib/hostward-agent/identity.json").exists(),
                "a refused enrollment left an identity"
            );
            ensure!(
                !run.path("run/hostward-agent.pid").exists(),
                "an agent was started after a refused enrollment"
            );
            Ok(())
        })
        .await;
    kill_leftover_agents(&env);
    result
}

#[tokio::test]
async fn install_command_with_wrong_ca_pin_sends_nothing() -> Result<()> {
    if !need_root("CA mismatch")? || !need_curl()? {
        return Ok(());
    }
    let env = TestEnv::new("install-ca-mismatch");
    let result = env
        .run(async {
            let wrong = hex::encode(rand::random::<[u8; 32]>());
            let (center, token, run) =
                install(&env, &["--no-systemd", "--ca-sha256", &wrong], Host::AsIs).await?;
            ensure!(
                wrong != center.ca_fingerprint()?,
                "the wrong pin happens to be right"
            );
            ensure!(
                !run.out.success(),
                "the installer should fail with a wrong CA pin:\n{}",
                run.out
            );
            ensure!(
                run.out.stderr.contains("CA fingerprint mismatch"),
                "the message should say the CA fingerprint does not match:\n{}",
                run.out
            );
            ensure!(
                run.out.stderr.contains("the token was not sent"),
                "the message should say the token was not sent:\n{}",
                run.out
            );
            // Nothing reached the center: no report (no server), no enrollment (uses 0).
            expect_no_server(&center.api()).await?;
            expect_uses(&center, &token.id, 0).await?;
            ensure!(
                !run.path("var/lib/hostward-agent/identity.json").exists(),
                "a CA mismatch left an identity"
            );
            ensure!(
                !run.path("run/hostward-agent.pid").exists(),
                "an agent was started after a CA mismatch"
            );
            Ok(())
        })
        .await;
    kill_leftover_agents(&env);
    result
}

#[tokio::test]
async fn install_command_on_a_full_disk_reports_disk_full() -> Result<()> {
    if !need_root("disk full")? || !need_curl()? {
        return Ok(());
    }
    let env = TestEnv::new("install-disk-full");
    if !can_mount_small_disk(&env).await? {
        return Ok(());
    }
    let result = env
        .run(async {
            let (center, token) = center_and_token(&env).await?;
            // 16 MiB: the installer's own check refuses before downloading anything.
            let tiny = run_printed(&env, &token, &["--no-systemd"], Host::SmallDisk(16)).await?;
            ensure!(
                !tiny.out.success(),
                "the install should fail on 16 MiB:\n{}",
                tiny.out
            );
            ensure!(
                tiny.out.stderr.contains("MiB free") && tiny.out.stderr.contains("64 MiB needed"),
                "the message should say how much space there is and is needed:\n{}",
                tiny.out
            );
            ensure!(
                !tiny.out.stderr.contains("downloading"),
                "nothing should be downloaded onto a full disk:\n{}",
                tiny.out
            );
            wait_servers(&center.api(), 1, "install_failed", "disk_full").await?;

            // Room for the binary but not for the agent's state: whichever check sees it first
            // (the installer's before the download, the agent's after it), it is disk_full.
            let bin_mib = std::fs::metadata(bin("hostward-agent")?)?
                .len()
                .div_ceil(1 << 20);
            let small = run_printed(
                &env,
                &token,
                &["--no-systemd"],
                Host::SmallDisk(bin_mib + 32),
            )
            .await?;
            ensure!(
                !small.out.success(),
                "the install should fail on {} MiB:\n{}",
                bin_mib + 32,
                small.out
            );
            ensure!(
                small.out.stderr.contains("MiB free") && small.out.stderr.contains("64 MiB"),
                "the message should say how much space there is and is needed:\n{}",
                small.out
            );
            wait_servers(&center.api(), 2, "install_failed", "disk_full").await?;
            expect_uses(&center, &token.id, 0).await?;
            for run in [&tiny, &small] {
                let files = files_under(&run.root);
                ensure!(
                    files.is_empty(),
                    "the install wrote outside its tmpfs: {files:?}"
                );
            }
            Ok(())
        })
        .await;
    kill_leftover_agents(&env);
    result
}
