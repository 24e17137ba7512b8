//! Tests against the real nftables, each inside network namespaces of its own so the host's
//! ruleset is never touched. They need root, `nft` (nftables), `ip` (iproute2) and python3;
//! without them they are skipped, except under CI=true where that is a failure.

use std::io::Write as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicUsize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hostward_proto::bruteforce::SshWhitelist;

use super::ssh_whitelist::Rules;
use super::*;

fn available() -> bool {
    let have = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = nix::unistd::geteuid().is_root()
        && have("nft", "--version")
        && have("ip", "-V")
        && have("python3", "--version");
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI=true but the nftables tests cannot run: they need root, nft, ip and python3"
            );
        }
        eprintln!("skipped: the nftables tests need root, nft, ip and python3");
    }
    ok
}

fn run(prog: &str, args: &[&str]) -> Output {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace, deleted when dropped.
struct Ns {
    name: String,
}

impl Ns {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "hw-test-{tag}-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        run("ip", &v);
    }

    fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name, "nft"]
            .map(String::from)
            .to_vec()
    }

    fn nft(&self, args: &[&str]) -> Output {
        let mut v = vec!["netns", "exec", self.name.as_str(), "nft"];
        v.extend_from_slice(args);
        Command::new("ip").args(&v).output().unwrap()
    }

    fn nft_ok(&self, args: &[&str]) -> String {
        let out = self.nft(args);
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn nft_script(&self, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn responder(ns: &Ns, dir: &Path, table: &str, ports: &[u16]) -> Nft {
    let cfg = Config {
        nft: ns.prefix(),
        table: table.into(),
        ports: ports.to_vec(),
    };
    Nft::new(cfg, dir.join("blocks.json")).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn addrs(nft: &Nft) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = nft
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.addr)
        .collect();
    v.sort();
    v
}

fn expires(list: &[Blocked], addr: &str) -> Duration {
    list.iter()
        .find(|b| b.addr == ip(addr))
        .unwrap_or_else(|| panic!("{addr} not in {list:?}"))
        .expires_in
        .unwrap()
}

const FOREIGN: &str = "table inet other {
    set keep { type ipv4_addr; elements = { 192.0.2.1 } }
    chain c {
        type filter hook input priority 0; policy accept;
        tcp dport 22 counter accept
    }
}
";

#[tokio::test]
async fn lifecycle_leaves_foreign_tables_alone() {
    if !available() {
        return;
    }
    let ns = Ns::new("life");
    ns.nft_script(FOREIGN);
    let foreign = || ns.nft_ok(&["list", "table", "inet", "other"]);
    let before = foreign();
    let dir = tempfile::tempdir().unwrap();
    let nft = responder(&ns, dir.path(), "hw_life", &[22]);

    nft.ensure().await.unwrap();
    let ours = ns.nft_ok(&["list", "table", "inet", "hw_life"]);
    assert!(
        ours.contains("ip saddr @blocked4 tcp dport 22 counter name \"dropped\" drop"),
        "{ours}"
    );
    assert!(
        ours.contains("priority filter - 10; policy accept;"),
        "{ours}"
    );
    nft.ensure().await.unwrap();
    assert_eq!(ns.nft_ok(&["list", "table", "inet", "hw_life"]), ours);
    assert_eq!(foreign(), before);

    nft.block(ip("203.0.113.5"), Duration::from_secs(60))
        .await
        .unwrap();
    nft.block(ip("2001:db8::5"), Duration::from_secs(60))
        .await
        .unwrap();
    nft.block(ip("::ffff:203.0.113.6"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(
        nft.block(ip("127.0.0.1"), Duration::from_secs(60)).await,
        Err(Error::Refused(_))
    ));
    let list = nft.list().await.unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for a in ["203.0.113.5", "2001:db8::5", "203.0.113.6"] {
        let e = expires(&list, a);
        assert!(
            (Duration::from_secs(57)..=Duration::from_secs(60)).contains(&e),
            "{a}: {e:?}"
        );
    }
    assert_eq!(foreign(), before);

    // Refresh: a second block of a present address gives it the new timeout.
    nft.block(ip("203.0.113.5"), Duration::from_secs(600))
        .await
        .unwrap();
    nft.block(ip("2001:db8::5"), Duration::from_secs(5))
        .await
        .unwrap();
    let list = nft.list().await.unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(expires(&list, "203.0.113.5") > Duration::from_secs(590));
    assert!(expires(&list, "2001:db8::5") <= Duration::from_secs(5));
    // The path for kernels that ignore a re-add, run against this one's nft all the same.
    let probed = nft.timeout_update.load(Ordering::Relaxed);
    assert_ne!(probed, UPDATE_UNKNOWN);
    eprintln!(
        "kernel updates element timeouts on re-add: {}",
        probed == UPDATE_YES
    );
    nft.timeout_update.store(UPDATE_NO, Ordering::Relaxed);
    nft.block(ip("203.0.113.5"), Duration::from_secs(300))
        .await
        .unwrap();
    let list = nft.list().await.unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let e = expires(&list, "203.0.113.5");
    assert!(
        (Duration::from_secs(297)..=Duration::from_secs(300)).contains(&e),
        "{e:?}"
    );
    nft.timeout_update.store(probed, Ordering::Relaxed);

    nft.unblock(ip("2001:db8::5")).await.unwrap();
    nft.unblock(ip("2001:db8::5")).await.unwrap();
    nft.unblock(ip("::ffff:203.0.113.6")).await.unwrap();
    assert_eq!(addrs(&nft).await, [ip("203.0.113.5")]);
    assert_eq!(foreign(), before);

    nft.sync(&[
        (ip("203.0.113.7"), Duration::from_secs(30)),
        (ip("2001:db8::7"), Duration::from_secs(40)),
        (ip("2001:db8::7"), Duration::from_secs(45)),
        (ip("198.51.100.1"), Duration::ZERO),
        (ip("::1"), Duration::from_secs(40)),
    ])
    .await
    .unwrap();
    let list = nft.list().await.unwrap();
    assert_eq!(addrs(&nft).await, [ip("203.0.113.7"), ip("2001:db8::7")]);
    assert!(expires(&list, "2001:db8::7") > Duration::from_secs(40));
    assert_eq!(foreign(), before);
    let saved: Vec<IpAddr> = nft.saved().await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(saved, [ip("203.0.113.7"), ip("2001:db8::7")]);
    nft.sync(&[]).await.unwrap();
    assert!(nft.list().await.unwrap().is_empty());
    nft.sync(&[(ip("203.0.113.8"), Duration::from_secs(30))])
        .await
        .unwrap();

    // A changed port list rewrites the rules and keeps the elements.
    let nft2 = responder(&ns, dir.path(), "hw_life", &[2222, 22]);
    nft2.ensure().await.unwrap();
    let ours = ns.nft_ok(&["list", "chain", "inet", "hw_life", "input"]);
    assert!(
        ours.contains("ip saddr @blocked4 tcp dport { 22, 2222 } counter"),
        "{ours}"
    );
    assert!(
        ours.contains("ip6 saddr @blocked6 tcp dport { 22, 2222 } counter"),
        "{ours}"
    );
    assert_eq!(ours.matches(" drop\n").count(), 2, "{ours}");
    assert_eq!(addrs(&nft2).await, [ip("203.0.113.8")]);
    assert_eq!(nft2.dropped().await.unwrap(), Dropped::default());
    assert_eq!(foreign(), before);

    nft2.remove().await.unwrap();
    assert!(
        !ns.nft(&["list", "table", "inet", "hw_life"])
            .status
            .success()
    );
    assert!(!dir.path().join("blocks.json").exists());
    nft2.remove().await.unwrap();
    assert_eq!(foreign(), before);
    let e = nft2.list().await.unwrap_err();
    assert!(
        matches!(&e, Error::Nft { stderr, .. } if !stderr.is_empty()),
        "{e}"
    );
}

#[tokio::test]
async fn a_block_expires_by_itself() {
    if !available() {
        return;
    }
    let ns = Ns::new("expire");
    let dir = tempfile::tempdir().unwrap();
    let nft = responder(&ns, dir.path(), "hw_expire", &[22]);
    nft.ensure().await.unwrap();
    let start = Instant::now();
    nft.block(ip("203.0.113.20"), Duration::from_secs(2))
        .await
        .unwrap();
    nft.block(ip("2001:db8::20"), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(nft.list().await.unwrap().len(), 2);
    while !nft.list().await.unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(6), "still blocked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn restore_after_restart_keeps_only_valid_blocks() {
    if !available() {
        return;
    }
    let ns = Ns::new("restore");
    let dir = tempfile::tempdir().unwrap();
    {
        let nft = responder(&ns, dir.path(), "hw_restore", &[22]);
        nft.ensure().await.unwrap();
        nft.block(ip("203.0.113.30"), Duration::from_secs(60))
            .await
            .unwrap();
        nft.block(ip("2001:db8::30"), Duration::from_secs(60))
            .await
            .unwrap();
        nft.block(ip("203.0.113.31"), Duration::from_secs(1))
            .await
            .unwrap();
    }
    // As after a reboot: the kernel has forgotten everything, the state file has not.
    ns.nft_ok(&["delete", "table", "inet", "hw_restore"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let nft = responder(&ns, dir.path(), "hw_restore", &[22]);
    nft.ensure().await.unwrap();
    let restored = nft.restore().await.unwrap();
    let restored: Vec<IpAddr> = restored.into_iter().map(|(a, _)| a).collect();
    assert_eq!(restored, [ip("203.0.113.30"), ip("2001:db8::30")]);
    let list = nft.list().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(expires(&list, "203.0.113.30") > Duration::from_secs(55));
    let text = std::fs::read_to_string(dir.path().join("blocks.json")).unwrap();
    assert!(!text.contains("203.0.113.31"), "{text}");
}

#[tokio::test]
async fn heal_puts_back_what_a_ruleset_flush_removed() {
    if !available() {
        return;
    }
    let ns = Ns::new("heal");
    let dir = tempfile::tempdir().unwrap();
    let nft = responder(&ns, dir.path(), "hw_heal", &[22]);
    nft.ensure().await.unwrap();
    nft.block(ip("203.0.113.40"), Duration::from_secs(600))
        .await
        .unwrap();
    nft.block(ip("2001:db8::40"), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        nft.heal().await.unwrap(),
        Vec::<IpAddr>::new(),
        "all in place"
    );
    // What `systemctl restart nftables` does on Debian before loading its own rules.
    ns.nft_ok(&["flush", "ruleset"]);
    assert!(nft.list().await.is_err(), "the table is gone");
    let mut healed = nft.heal().await.unwrap();
    healed.sort();
    assert_eq!(healed, [ip("203.0.113.40"), ip("2001:db8::40")]);
    let list = nft.list().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(expires(&list, "203.0.113.40") > Duration::from_secs(590));
    // One element removed by hand comes back too.
    ns.nft_ok(&[
        "delete",
        "element",
        "inet",
        "hw_heal",
        "blocked4",
        "{ 203.0.113.40 }",
    ]);
    assert_eq!(nft.heal().await.unwrap(), [ip("203.0.113.40")]);
    assert_eq!(addrs(&nft).await.len(), 2);
}

/// A python3 process in a namespace, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves a greeting on every given port, IPv4 and IPv6, and prints "ready" once listening.
const LISTENER: &str = r#"
import socket, sys, threading
def serve(s):
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"hi\n")
        finally:
            c.close()
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(p)))
    s.listen(16)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Exit 0: connected and greeted; 1: no connection within the timeout.
const CONNECT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    sys.exit(0 if s.recv(3) == b"hi\n" else 2)
except OSError:
    sys.exit(1)
"#;

struct Pair {
    victim: Ns,
    attacker: Ns,
}

impl Pair {
    fn new() -> Self {
        let victim = Ns::new("victim");
        let attacker = Ns::new("attacker");
        victim.ip(&[
            "link",
            "add",
            "hwv0",
            "type",
            "veth",
            "peer",
            "name",
            "hwv1",
            "netns",
            &attacker.name,
        ]);
        for (ns, dev, v4, v6) in [
            (&victim, "hwv0", "10.77.0.1/24", "fd77::1/64"),
            (&attacker, "hwv1", "10.77.0.2/24", "fd77::2/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev]);
            ns.ip(&["addr", "add", v6, "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        Self { victim, attacker }
    }

    fn listen(&self, ports: &[u16]) -> Proc {
        let mut args = vec![
            "netns",
            "exec",
            &self.victim.name,
            "python3",
            "-c",
            LISTENER,
        ];
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        args.extend(ports.iter().map(String::as_str));
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n");
        Proc(child)
    }

    /// Whether the attacker gets a greeting from `addr:port` within `secs`.
    fn reaches(&self, addr: &str, port: u16, secs: &str) -> bool {
        let port = port.to_string();
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.attacker.name,
                "python3",
                "-c",
                CONNECT,
                addr,
                &port,
                secs,
            ])
            .status()
            .unwrap();
        match status.code() {
            Some(0) => true,
            Some(1) => false,
            other => panic!("connect to {addr}:{port}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn blocked_addresses_really_cannot_connect() {
    if !available() {
        return;
    }
    let pair = Pair::new();
    let _listener = pair.listen(&[22, 8080]);
    let dir = tempfile::tempdir().unwrap();
    let nft = responder(&pair.victim, dir.path(), "hostward", &[22]);
    nft.ensure().await.unwrap();
    let (v4, v6) = ("10.77.0.1", "fd77::1");
    // Generous where a connection must succeed, short where it must fail.
    let (ok, fail) = ("5", "1");

    assert!(pair.reaches(v4, 22, ok));
    assert!(pair.reaches(v6, 22, ok));

    nft.block(ip("10.77.0.2"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!pair.reaches(v4, 22, fail), "blocked v4 reached port 22");
    assert!(
        pair.reaches(v4, 8080, ok),
        "unprotected port must stay open"
    );
    assert!(pair.reaches(v6, 22, ok), "only the v4 address is blocked");
    let hits = nft.dropped().await.unwrap();
    assert!(hits.packets >= 1, "{hits:?}");

    nft.block(ip("fd77::2"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!pair.reaches(v6, 22, fail), "blocked v6 reached port 22");
    assert!(pair.reaches(v6, 8080, ok));
    assert!(nft.dropped().await.unwrap().packets > hits.packets);

    // An empty port list closes every port to blocked addresses.
    let all = responder(&pair.victim, dir.path(), "hostward", &[]);
    all.ensure().await.unwrap();
    assert!(!pair.reaches(v4, 8080, fail));
    nft.ensure().await.unwrap();
    assert!(pair.reaches(v4, 8080, ok));

    nft.unblock(ip("10.77.0.2")).await.unwrap();
    nft.unblock(ip("fd77::2")).await.unwrap();
    assert!(
        pair.reaches(v4, 22, ok),
        "unblocked v4 must reach port 22 again"
    );
    assert!(
        pair.reaches(v6, 22, ok),
        "unblocked v6 must reach port 22 again"
    );
}

fn median_ms(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1]),
    )
}

/// Prints the latency of `block()` (spawn + transaction + state file), element present when it
/// returns. The namespace prefix costs extra: `nsenter` is the closer one to a bare `nft`.
#[tokio::test]
async fn block_latency() {
    if !available() {
        return;
    }
    let ns = Ns::new("latency");
    let dir = tempfile::tempdir().unwrap();
    let netns_path = format!("--net=/run/netns/{}", ns.name);
    for (label, prefix) in [
        ("ip netns exec", ns.prefix()),
        (
            "nsenter --net",
            ["nsenter", &netns_path, "nft"].map(String::from).to_vec(),
        ),
    ] {
        let cfg = Config {
            nft: prefix,
            table: "hw_latency".into(),
            ports: vec![22],
        };
        let nft = Nft::new(cfg, dir.path().join("blocks.json")).unwrap();
        nft.ensure().await.unwrap();
        nft.sync(&[]).await.unwrap();
        let mut times = Vec::new();
        for i in 0..100u8 {
            let addr = IpAddr::from([198, 51, 100, i]);
            let t = Instant::now();
            nft.block(addr, Duration::from_secs(60)).await.unwrap();
            times.push(t.elapsed());
        }
        assert_eq!(nft.list().await.unwrap().len(), 100);
        let (median, p90, max) = median_ms(times);
        eprintln!(
            "block() via {label}: median {median:.2} ms, p90 {p90:.2} ms, max {max:.2} ms (n=100)"
        );
        assert!(median < 250.0, "{label}: median {median} ms");
    }
}

/// Exit 0: the server sent an SSH banner to a connection from `argv[1]` (a bound source
/// address) within the timeout; 1: no connection.
const BANNER: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[4]))
s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    sys.exit(0 if s.recv(4) == b"SSH-" else 2)
except OSError:
    sys.exit(1)
"#;

impl Pair {
    /// A real sshd in the victim namespace on `port`, with a fresh host key in `dir`; waits
    /// until it answers on loopback.
    fn sshd(&self, dir: &Path, port: u16) -> Proc {
        let key = dir.join("host_key");
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port_s = port.to_string();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.victim.name,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                "/dev/null",
                "-p",
                &port_s,
                "-h",
                key.to_str().unwrap(),
                "-o",
                "PidFile=none",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        let start = Instant::now();
        while !self.banner_in(&self.victim, "127.0.0.1", "127.0.0.1", port, "1") {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proc
    }

    fn banner_in(&self, ns: &Ns, from: &str, addr: &str, port: u16, secs: &str) -> bool {
        let port = port.to_string();
        let status = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "python3", "-c", BANNER, from, addr, &port, secs,
            ])
            .status()
            .unwrap();
        match status.code() {
            Some(0) => true,
            Some(1) => false,
            other => panic!("ssh banner from {from} to {addr}:{port}: {other:?}"),
        }
    }

    /// Whether the attacker, from its address `from`, gets sshd's banner.
    fn banner(&self, from: &str, addr: &str, port: u16, secs: &str) -> bool {
        self.banner_in(&self.attacker, from, addr, port, secs)
    }
}

#[tokio::test]
async fn the_ssh_whitelist_lets_only_listed_addresses_reach_a_real_sshd() {
    if !available() || !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipped: needs /usr/sbin/sshd too");
        return;
    }
    let pair = Pair::new();
    // A second attacker address, left out of the list.
    pair.attacker
        .ip(&["addr", "add", "10.77.0.3/24", "dev", "hwv1"]);
    pair.attacker
        .ip(&["addr", "add", "fd77::3/64", "dev", "hwv1", "nodad"]);
    let dir = tempfile::tempdir().unwrap();
    // The ports come from the host's sshd_config as the agent reads it, here a fixture root.
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/ssh/sshd_config.d")).unwrap();
    std::fs::write(
        root.join("etc/ssh/sshd_config"),
        "Include /etc/ssh/sshd_config.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/ssh/sshd_config.d/port.conf"), "Port 2222\n").unwrap();
    let ports = crate::bruteforce::sshd::ports(&root);
    assert_eq!(ports, [2222]);
    let _sshd = pair.sshd(dir.path(), 2222);
    let _other = pair.listen(&[8080]);
    let nft = responder(&pair.victim, dir.path(), "hostward", &[22]);
    nft.ensure().await.unwrap();
    let (v4, v6) = ("10.77.0.1", "fd77::1");
    let (ok, fail) = ("5", "1");
    for from in ["10.77.0.2", "10.77.0.3"] {
        assert!(
            pair.banner(from, v4, 2222, ok),
            "{from} before the whitelist"
        );
    }

    let wl = SshWhitelist {
        enabled: true,
        addrs: vec!["10.77.0.2".into(), "fd77::2/128".into()],
    };
    let rules = Rules::of(&wl, &ports).unwrap().unwrap();
    nft.set_ssh_whitelist(Some(&rules)).await.unwrap();
    assert!(nft.ssh_whitelist_present().await.unwrap());
    assert!(pair.banner("10.77.0.2", v4, 2222, ok), "listed v4");
    assert!(pair.banner("fd77::2", v6, 2222, ok), "listed v6");
    assert!(
        !pair.banner("10.77.0.3", v4, 2222, fail),
        "unlisted v4 reached sshd"
    );
    assert!(
        !pair.banner("fd77::3", v6, 2222, fail),
        "unlisted v6 reached sshd"
    );
    assert!(
        pair.reaches(v4, 8080, ok),
        "other ports stay open to everyone"
    );
    assert!(
        pair.banner_in(&pair.victim, "127.0.0.1", "127.0.0.1", 2222, ok),
        "loopback always passes"
    );
    // Applying the same list again changes nothing; the block table's rules are untouched.
    nft.set_ssh_whitelist(Some(&rules)).await.unwrap();
    let table = pair.victim.nft_ok(&["list", "table", "inet", "hostward"]);
    assert!(table.contains("chain input"), "{table}");
    assert!(table.contains("tcp dport 2222 tcp flags"), "{table}");
    assert_eq!(table.matches("chain ssh_whitelist").count(), 1, "{table}");

    // Off: the chain goes and everyone reaches sshd again; off twice is no error.
    nft.set_ssh_whitelist(None).await.unwrap();
    nft.set_ssh_whitelist(None).await.unwrap();
    assert!(!nft.ssh_whitelist_present().await.unwrap());
    assert!(
        pair.banner("10.77.0.3", v4, 2222, ok),
        "unlisted v4 after off"
    );
    assert!(
        pair.banner("fd77::3", v6, 2222, ok),
        "unlisted v6 after off"
    );
}

#[tokio::test]
async fn an_open_ssh_connection_survives_the_whitelist() {
    if !available() || !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipped: needs /usr/sbin/sshd too");
        return;
    }
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let _sshd = pair.sshd(dir.path(), 22);
    let nft = responder(&pair.victim, dir.path(), "hostward", &[22]);
    nft.ensure().await.unwrap();
    // A client that connects and reads sshd's banner line, waits for a line on stdin, then
    // sends its own banner: sshd answers with its key exchange offer only after that, so
    // getting one proves packets still flow both ways on the connection opened before.
    let script = r#"
import socket, sys
s = socket.create_connection(("10.77.0.1", 22), timeout=10)
data = b""
while b"\r\n" not in data:
    data += s.recv(1)
assert data.startswith(b"SSH-"), data
print("open", flush=True)
sys.stdin.readline()
s.sendall(b"SSH-2.0-hostward_test\r\n")
try:
    sys.exit(0 if len(s.recv(4096)) > 0 else 1)
except OSError:
    sys.exit(1)
"#;
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.attacker.name,
            "python3",
            "-c",
            script,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "open\n");
    let wl = SshWhitelist {
        enabled: true,
        addrs: vec!["192.0.2.1".into()],
    };
    let rules = Rules::of(&wl, &[22]).unwrap().unwrap();
    nft.set_ssh_whitelist(Some(&rules)).await.unwrap();
    assert!(
        !pair.banner("10.77.0.2", "10.77.0.1", 22, "1"),
        "a new one is dropped"
    );
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the open connection was cut: {status:?}");
}
