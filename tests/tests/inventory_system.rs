//! The inventory of this machine matches the system's own tools, field by field: ports vs `ss`,
//! processes vs /proc, packages vs `dpkg-query -W`, accounts vs `getent passwd`. Runs the real
//! `hostward-agent inventory` as root.
//!
//! Other processes on the box open and close sockets and come and go while we look, so ports and
//! processes are compared against what stayed the same across a look before and one after the
//! collection: whatever both looks agree on must be collected exactly, and nothing may be
//! collected that neither look saw. A socket that lived only while the agent ran would still
//! fail that, so the comparison is tried a few times before it counts as a failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use hostward_e2e::*;
use hostward_proto::inventory::{Account, Items, Package, Port, Process};
use serde_json::Value;

const ATTEMPTS: usize = 3;

#[tokio::test]
async fn inventory_matches_the_systems_own_tools() -> Result<()> {
    let env = TestEnv::new("inventory-system");
    env.run(async {
        ensure!(
            nix::unistd::geteuid().is_root(),
            "this test compares against the whole system and must run as root"
        );
        // Our own sockets, so the port comparison is never vacuous.
        let tcp = std::net::TcpListener::bind("0.0.0.0:0")?;
        let udp = std::net::UdpSocket::bind("[::]:0")?;
        let own = Own {
            pid: std::process::id(),
            exe: std::env::current_exe()?.display().to_string(),
            tcp_port: tcp.local_addr()?.port(),
            udp_port: udp.local_addr()?.port(),
        };
        let mut last = None;
        for attempt in 1..=ATTEMPTS {
            match compare(&own).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    eprintln!("attempt {attempt}/{ATTEMPTS}: {e:#}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt ran")))
    })
    .await
}

struct Own {
    pid: u32,
    exe: String,
    tcp_port: u16,
    udp_port: u16,
}

async fn compare(own: &Own) -> Result<()> {
    let ss_before = ss().await?;
    let procs_before = proc_snapshot();
    let agent = bin("hostward-agent")?;
    let args: Vec<String> = [
        "inventory",
        "--root",
        "/",
        "--kind",
        "ports",
        "--kind",
        "processes",
        "--kind",
        "software",
        "--kind",
        "accounts",
    ]
    .map(String::from)
    .to_vec();
    let out = run_cmd(&agent, &args, None).await?.ok()?;
    let ss_after = ss().await?;
    let procs_after = proc_snapshot();

    let inv: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("inventory output is not JSON: {}", tail(&out.stdout, 5)))?;
    let items = |kind: &str| -> Result<Items> {
        let v = inv
            .get(kind)
            .ok_or_else(|| anyhow!("no {kind} in the output"))?;
        let issues = v["issues"].as_array().cloned().unwrap_or_default();
        if !issues.is_empty() {
            eprintln!("{kind} issues: {issues:?}");
        }
        if kind == "ports" || kind == "processes" {
            // As root every file these read is readable and well-formed.
            ensure!(issues.is_empty(), "{kind} issues: {issues:?}");
        }
        serde_json::from_value(v["items"].clone()).with_context(|| format!("{kind} items"))
    };
    let Items::Ports(ports) = items("ports")? else {
        bail!("ports has the wrong kind")
    };
    let Items::Processes(procs) = items("processes")? else {
        bail!("processes has the wrong kind")
    };
    let Items::Software(software) = items("software")? else {
        bail!("software has the wrong kind")
    };
    let Items::Accounts(accounts) = items("accounts")? else {
        bail!("accounts has the wrong kind")
    };

    let passwd = getent_passwd().await?;
    check_ports(own, &ports, &ss_before, &ss_after)?;
    check_processes(own, &agent, &procs, &procs_before, &procs_after, &passwd).await?;
    check_software(&software).await?;
    check_accounts(&accounts, &passwd)?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Ports

/// (protocol, address, port) -> pids ss shows for it (empty: no visible owner).
type SsView = BTreeMap<(String, String, u16), BTreeSet<u32>>;

/// Listening TCP and bound UDP sockets (unconnected and connected) as `ss` sees them; `-a`
/// rather than `-l` because `-l` leaves out connected UDP sockets, which the agent reports.
async fn ss() -> Result<SsView> {
    let out = run_cmd(
        Path::new("ss"),
        &["-H", "-t", "-u", "-a", "-n", "-p"].map(String::from),
        None,
    )
    .await?
    .ok()?;
    let mut view = SsView::new();
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [netid, state, _, _, local, ..] = f[..] else {
            bail!("unexpected ss line {line:?}");
        };
        let keep = match netid {
            "tcp" => state == "LISTEN",
            "udp" => state == "UNCONN" || state == "ESTAB",
            _ => false,
        };
        if !keep {
            continue;
        }
        let (addr, port) = local
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("no port in {local:?}: {line:?}"))?;
        // `*` is ss's dual-stack [::]; port `*` is an unbound socket.
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if port == 0 {
            continue;
        }
        let addr = addr.split('%').next().unwrap_or_default();
        let addr = match addr {
            "*" => "::",
            a => a.trim_start_matches('[').trim_end_matches(']'),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .with_context(|| format!("address {addr:?} in {line:?}"))?;
        let pids = view
            .entry((netid.to_string(), addr.to_string(), port))
            .or_default();
        let mut rest = line;
        while let Some(i) = rest.find("pid=") {
            rest = &rest[i + 4..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(pid) = digits.parse() {
                pids.insert(pid);
            }
        }
    }
    Ok(view)
}

fn check_ports(own: &Own, ports: &[Port], before: &SsView, after: &SsView) -> Result<()> {
    let mut collected: BTreeMap<(String, String, u16), &Port> = BTreeMap::new();
    for p in ports {
        let key = (p.protocol.clone(), p.address.clone(), p.port);
        ensure!(
            collected.insert(key, p).is_none(),
            "socket reported twice: {p:?}"
        );
        let want_family = if p.address.contains(':') { "v6" } else { "v4" };
        ensure!(p.family == want_family, "family of {p:?}");
        let want_state: &[&str] = if p.protocol == "tcp" {
            &["listen"]
        } else {
            &["unconn", "estab"]
        };
        ensure!(want_state.contains(&p.state.as_str()), "state of {p:?}");
    }
    for (key, pids) in before {
        let Some(after_pids) = after.get(key) else {
            continue;
        };
        let p = collected
            .get(key)
            .ok_or_else(|| anyhow!("ss shows {key:?} before and after, the agent missed it"))?;
        let seen: BTreeSet<u32> = pids.union(after_pids).copied().collect();
        match p.pid {
            None => ensure!(
                seen.is_empty(),
                "{key:?}: ss shows pids {seen:?}, the agent none"
            ),
            Some(pid) => {
                ensure!(
                    seen.contains(&pid),
                    "{key:?}: the agent says pid {pid}, ss shows {seen:?}"
                );
                if pids == after_pids {
                    ensure!(
                        pids.first() == Some(&pid),
                        "{key:?}: want the lowest of {pids:?}, got {pid}"
                    );
                }
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .map(|l| l.display().to_string())
                    .ok();
                if exe.is_some() {
                    ensure!(
                        p.program == exe,
                        "{key:?}: program {:?} != {exe:?}",
                        p.program
                    );
                }
            }
        }
    }
    for key in collected.keys() {
        ensure!(
            before.contains_key(key) || after.contains_key(key),
            "the agent reports {key:?}, ss never showed it"
        );
    }

    let mine = |proto: &str, addr: &str, port: u16| -> Result<()> {
        let key = (proto.to_string(), addr.to_string(), port);
        let p = collected
            .get(&key)
            .ok_or_else(|| anyhow!("our own socket {key:?} is missing"))?;
        ensure!(
            p.pid == Some(own.pid) && p.program.as_deref() == Some(own.exe.as_str()),
            "our own socket {key:?} is owned by {:?} {:?}, want {} {}",
            p.pid,
            p.program,
            own.pid,
            own.exe
        );
        Ok(())
    };
    mine("tcp", "0.0.0.0", own.tcp_port)?;
    mine("udp", "::", own.udp_port)?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Processes

#[derive(Debug, Clone, PartialEq)]
struct ProcInfo {
    ppid: u32,
    state: String,
    kthread: bool,
    start_ticks: u64,
    uid: u32,
    exe: Option<String>,
    cmdline: Vec<u8>,
}

const PF_KTHREAD: u64 = 0x0020_0000;

/// Every process in /proc, read the way `ps` does.
fn proc_snapshot() -> BTreeMap<u32, ProcInfo> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(info) = read_proc(pid) {
            out.insert(pid, info);
        }
    }
    out
}

fn read_proc(pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(ProcInfo {
        state: f.first()?.to_string(),
        ppid: f.get(1)?.parse().ok()?,
        kthread: f.get(6)?.parse::<u64>().ok()? & PF_KTHREAD != 0,
        start_ticks: f.get(19)?.parse().ok()?,
        uid,
        exe: std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|l| l.display().to_string()),
        cmdline: std::fs::read(format!("/proc/{pid}/cmdline")).ok()?,
    })
}

async fn clock_ticks() -> Result<u64> {
    let out = run_cmd(Path::new("getconf"), &["CLK_TCK".to_string()], None)
        .await?
        .ok()?;
    out.stdout
        .trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK printed {:?}", out.stdout))
}

fn boot_time() -> Result<i64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no btime in /proc/stat"))
}

async fn sha256sum(path: &str) -> Result<String> {
    let out = run_cmd(Path::new("sha256sum"), &[path.to_string()], None)
        .await?
        .ok()?;
    Ok(out
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

async fn check_processes(
    own: &Own,
    agent: &Path,
    procs: &[Process],
    before: &BTreeMap<u32, ProcInfo>,
    after: &BTreeMap<u32, ProcInfo>,
    passwd: &[PasswdEntry],
) -> Result<()> {
    let ticks = clock_ticks().await?;
    let btime = boot_time()?;
    let names: HashMap<u32, &str> = passwd
        .iter()
        .rev()
        .map(|e| (e.uid, e.name.as_str()))
        .collect();
    let mut collected: BTreeMap<u32, &Process> = BTreeMap::new();
    for p in procs {
        ensure!(
            collected.insert(p.pid, p).is_none(),
            "pid {} reported twice",
            p.pid
        );
    }
    ensure!(
        procs.windows(2).all(|w| w[0].pid < w[1].pid),
        "processes are not sorted by pid"
    );

    let mut compared = 0;
    for (pid, b) in before {
        // Only a process that stayed the same throughout: not replaced (start time), not
        // exec'd, setuid'd, reparented or exiting meanwhile.
        let same = |i: &ProcInfo| (i.start_ticks, i.exe.clone(), i.uid, i.ppid, i.kthread);
        let Some(a) = after.get(pid).filter(|a| same(a) == same(b)) else {
            continue;
        };
        if b.kthread {
            ensure!(
                !collected.contains_key(pid),
                "kernel thread {pid} is reported: {:?}",
                collected.get(pid)
            );
            continue;
        }
        if [b, a].iter().any(|i| i.state.starts_with(['Z', 'X'])) {
            continue; // exited, not yet reaped: nothing runs
        }
        let p = collected.get(pid).ok_or_else(|| {
            anyhow!("process {pid} ({b:?}) is in /proc before and after, not in the inventory")
        })?;
        let want_exe = b.exe.clone().unwrap_or_default();
        let want_start = btime + i64::try_from(b.start_ticks / ticks)?;
        let want_user = names
            .get(&b.uid)
            .map(|n| n.to_string())
            .unwrap_or_else(|| b.uid.to_string());
        ensure!(
            (p.ppid, p.uid, p.exe.as_str(), p.start_time, p.user.as_str())
                == (
                    b.ppid,
                    b.uid,
                    want_exe.as_str(),
                    want_start,
                    want_user.as_str()
                ),
            "process {pid}: inventory (ppid, uid, exe, start, user) = {:?}, /proc says {:?}",
            (p.ppid, p.uid, &p.exe, p.start_time, &p.user),
            (b.ppid, b.uid, &want_exe, want_start, &want_user)
        );
        if a.cmdline == b.cmdline
            && b.cmdline.len() < 4096
            && let Ok(text) = std::str::from_utf8(&b.cmdline)
        {
            let want = text.trim_end_matches('\0').replace('\0', " ");
            ensure!(
                p.cmdline == want,
                "process {pid}: cmdline {:?}, want {want:?}",
                p.cmdline
            );
        }
        compared += 1;
    }
    ensure!(compared > 1, "only {compared} processes compared");

    // The test process itself: the hash, mode and owner of the file it runs.
    let me = collected
        .get(&own.pid)
        .ok_or_else(|| anyhow!("the test process {} is not in the inventory", own.pid))?;
    let meta = std::fs::metadata(&own.exe)?;
    let want_sha = sha256sum(&own.exe).await?;
    ensure!(
        me.exe == own.exe
            && me.sha256.as_deref() == Some(want_sha.as_str())
            && me.exe_mode.as_deref() == Some(format!("{:04o}", meta.mode() & 0o7777).as_str())
            && me.exe_owner == Some(meta.uid()),
        "test process: {me:?}; want exe {}, sha256 {want_sha}, mode {:04o}, owner {}",
        own.exe,
        meta.mode() & 0o7777,
        meta.uid()
    );

    // The agent saw itself: a child of ours running the binary we started.
    let agent = std::fs::canonicalize(agent)?.display().to_string();
    ensure!(
        procs.iter().any(|p| p.ppid == own.pid
            && p.exe == agent
            && p.cmdline.contains("inventory --root / --kind ports")),
        "the agent's own process ({agent}, child of {}) is not in the inventory",
        own.pid
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Software

async fn check_software(software: &[Package]) -> Result<()> {
    let out = run_cmd(
        Path::new("dpkg-query"),
        &[
            "-W".to_string(),
            "-f".to_string(),
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n".to_string(),
        ],
        None,
    )
    .await?
    .ok()?;
    let want: BTreeSet<(String, String, String)> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [status, name, version, arch] = f[..] else {
                return None;
            };
            matches!(status, "ii " | "hi ")
                .then(|| (name.to_string(), version.to_string(), arch.to_string()))
        })
        .collect();
    ensure!(!want.is_empty(), "dpkg-query lists no installed package");
    let got: BTreeSet<(String, String, String)> = software
        .iter()
        .filter(|p| p.manager == "dpkg")
        .map(|p| (p.name.clone(), p.version.clone(), p.arch.clone()))
        .collect();
    let missing: Vec<_> = want.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&want).take(10).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "software vs dpkg-query ({} vs {} packages): missing {missing:?}, not installed {extra:?}",
        got.len(),
        want.len()
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Accounts

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
    shell: String,
}

async fn getent_passwd() -> Result<Vec<PasswdEntry>> {
    let out = run_cmd(Path::new("getent"), &["passwd".to_string()], None)
        .await?
        .ok()?;
    let mut entries = Vec::new();
    for line in out.stdout.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, shell] = f[..] else {
            bail!("unexpected getent passwd line {line:?}");
        };
        entries.push(PasswdEntry {
            name: name.to_string(),
            uid: uid.parse().with_context(|| format!("uid in {line:?}"))?,
            gid: gid.parse().with_context(|| format!("gid in {line:?}"))?,
            home: home.to_string(),
            shell: shell.to_string(),
        });
    }
    Ok(entries)
}

fn check_accounts(accounts: &[Account], passwd: &[PasswdEntry]) -> Result<()> {
    type Row = (String, u32, u32, String, String);
    let want: BTreeSet<Row> = passwd
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.uid,
                e.gid,
                e.home.clone(),
                e.shell.clone(),
            )
        })
        .collect();
    ensure!(
        want.iter().any(|r| r.0 == "root"),
        "getent passwd has no root"
    );
    let got: BTreeSet<Row> = accounts
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.uid,
                a.gid,
                a.home.clone(),
                a.shell.clone(),
            )
        })
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "accounts vs getent passwd: missing {missing:?}, unknown to getent {extra:?}"
    );
    Ok(())
}
