//! Listening sockets: TCP in LISTEN and UDP sockets bound to a port, from `/proc/net/{tcp,udp}{,6}`,
//! with the process that holds each one and a risk label from the shipped dangerous-ports list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use hostward_proto::inventory::{CollectIssue, Items, Port, PortRisk};
use serde::Deserialize;

use super::{Collected, Ctx};

const DANGEROUS_PORTS: &str = include_str!("../../../../../content/dangerous_ports.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DangerList {
    port: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    port: u16,
    protocol: RuleProtocol,
    when: RuleWhen,
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RuleProtocol {
    Tcp,
    Udp,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RuleWhen {
    Any,
    Public,
}

// The list is compiled in and a unit test parses it, so the error arm is for a broken build, which
// must still not take the collector down with it.
static RULES: LazyLock<Result<Vec<Rule>, String>> = LazyLock::new(|| {
    toml::from_str::<DangerList>(DANGEROUS_PORTS)
        .map(|l| l.port)
        .map_err(|e| e.to_string())
});

struct Source {
    file: &'static str,
    protocol: &'static str,
    v6: bool,
}

const SOURCES: [Source; 4] = [
    Source {
        file: "/proc/net/tcp",
        protocol: "tcp",
        v6: false,
    },
    Source {
        file: "/proc/net/tcp6",
        protocol: "tcp",
        v6: true,
    },
    Source {
        file: "/proc/net/udp",
        protocol: "udp",
        v6: false,
    },
    Source {
        file: "/proc/net/udp6",
        protocol: "udp",
        v6: true,
    },
];

/// One socket line we keep.
#[derive(Debug, Clone, PartialEq)]
struct Socket {
    protocol: &'static str,
    address: IpAddr,
    port: u16,
    state: &'static str,
    inode: u64,
}

pub fn collect(ctx: &Ctx) -> Collected {
    let mut issues = Vec::new();
    let mut sockets = Vec::new();
    for src in &SOURCES {
        if let Some(text) = ctx.read_text(src.file, &mut issues) {
            sockets.extend(parse_table(ctx, src, &text, &mut issues));
        }
    }
    let wanted: HashSet<u64> = sockets
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    let owners = socket_owners(ctx, &wanted, &mut issues);

    let rules: &[Rule] = match &*RULES {
        Ok(r) => r,
        Err(e) => {
            issues.push(ctx.issue(
                "dangerous_ports.toml",
                None,
                format!("built-in list does not parse, no port is labelled dangerous: {e}"),
            ));
            &[]
        }
    };

    // SO_REUSEPORT lets several sockets share one address; the item is the address.
    let mut items: BTreeMap<(&str, IpAddr, u16), Port> = BTreeMap::new();
    for s in sockets {
        let pid = owners.get(&s.inode).copied();
        let key = (s.protocol, s.address, s.port);
        if let Some(old) = items.get(&key)
            && !better_owner(pid, old.pid)
        {
            continue;
        }
        let (risk, risk_reason) = risk(ctx, rules, &s);
        let program = pid.and_then(|p| {
            std::fs::read_link(ctx.path(&format!("/proc/{p}/exe")))
                .ok()
                .map(|l| l.to_string_lossy().into_owned())
        });
        items.insert(
            key,
            Port {
                protocol: s.protocol.to_string(),
                family: if s.address.is_ipv6() { "v6" } else { "v4" }.to_string(),
                address: s.address.to_string(),
                port: s.port,
                state: s.state.to_string(),
                pid,
                program,
                risk,
                risk_reason,
            },
        );
    }
    Collected {
        items: Items::Ports(items.into_values().collect()),
        issues,
    }
}

/// Some owner beats none; between owners the lowest pid wins, so the report is stable.
fn better_owner(new: Option<u32>, old: Option<u32>) -> bool {
    match (new, old) {
        (Some(n), Some(o)) => n < o,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn risk(ctx: &Ctx, rules: &[Rule], s: &Socket) -> (PortRisk, Option<String>) {
    if ctx.policy.ignored_ports.contains(&s.port) {
        return (PortRisk::Ignored, None);
    }
    let proto = if s.protocol == "tcp" {
        RuleProtocol::Tcp
    } else {
        RuleProtocol::Udp
    };
    let public = is_public(s.address);
    rules
        .iter()
        .find(|r| {
            r.port == s.port
                && (r.protocol == RuleProtocol::Any || r.protocol == proto)
                && (r.when == RuleWhen::Any || public)
        })
        .map_or((PortRisk::Unknown, None), |r| {
            (PortRisk::Dangerous, Some(r.reason.clone()))
        })
}

/// Reachable from other hosts: anything but loopback, including `::ffff:127.0.0.1`.
fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !a.is_loopback(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => !v4.is_loopback(),
            None => !a.is_loopback(),
        },
    }
}

fn parse_table(ctx: &Ctx, src: &Source, text: &str, issues: &mut Vec<CollectIssue>) -> Vec<Socket> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || (i == 0 && trimmed.starts_with("sl")) {
            continue;
        }
        let lineno = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match parse_line(src, trimmed) {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(msg) => issues.push(ctx.issue(src.file, Some(lineno), msg)),
        }
    }
    out
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`; `Ok(None)` for a socket
/// that is not listening.
fn parse_line(src: &Source, line: &str) -> Result<Option<Socket>, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return Err(format!(
            "expected at least 10 fields, found {}: {line:?}",
            f.len()
        ));
    }
    let (addr, port) = f[1]
        .split_once(':')
        .ok_or_else(|| format!("local address {:?} has no port", f[1]))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| format!("bad local port {port:?}"))?;
    let address = decode_addr(addr, src.v6).ok_or_else(|| format!("bad local address {addr:?}"))?;
    let st = u8::from_str_radix(f[3], 16).map_err(|_| format!("bad state {:?}", f[3]))?;
    let inode: u64 = f[9].parse().map_err(|_| format!("bad inode {:?}", f[9]))?;
    let state = match (src.protocol, st) {
        ("tcp", 0x0A) => "listen",
        ("udp", 0x07) => "unconn",
        ("udp", 0x01) => "estab",
        _ => return Ok(None),
    };
    if port == 0 {
        return Ok(None);
    }
    Ok(Some(Socket {
        protocol: src.protocol,
        address,
        port,
        state,
        inode,
    }))
}

/// The kernel prints each 32-bit word of the network-order address as a native integer, so
/// every word's bytes come out in host order (reversed on little-endian machines).
fn decode_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let words = if v6 { 4 } else { 1 };
    if hex.len() != words * 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for w in 0..words {
        let word = u32::from_str_radix(hex.get(w * 8..w * 8 + 8)?, 16).ok()?;
        bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    Some(if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    })
}

/// Socket inode -> lowest pid holding it, from the `socket:[inode]` links in `/proc/<pid>/fd`.
fn socket_owners(
    ctx: &Ctx,
    wanted: &HashSet<u64>,
    issues: &mut Vec<CollectIssue>,
) -> HashMap<u64, u32> {
    let mut owners: HashMap<u64, u32> = HashMap::new();
    if wanted.is_empty() {
        return owners;
    }
    let Ok(dir) = std::fs::read_dir(ctx.path("/proc")) else {
        return owners;
    };
    let mut denied: Vec<u32> = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let fd_dir = ctx.path(&format!("/proc/{pid}/fd"));
        let fds = match std::fs::read_dir(&fd_dir) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                denied.push(pid);
                continue;
            }
            // Gone mid-scan, or not a process directory: nothing to report.
            Err(_) => continue,
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if wanted.contains(&inode) {
                let e = owners.entry(inode).or_insert(pid);
                *e = (*e).min(pid);
            }
        }
    }
    // Without root the fds of other users' processes are closed to us; one issue says so
    // instead of one per process.
    if let Some(first) = denied.iter().min() {
        issues.push(ctx.issue(
            &format!("/proc/{first}/fd"),
            None,
            format!(
                "permission denied reading the open files of {} process(es); their sockets have no owner",
                denied.len()
            ),
        ));
    }
    owners
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use hostward_proto::InventoryPolicy;

    use super::super::HashCache;
    use super::*;

    const HEADER4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const HEADER6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n";

    /// The kernel's hex form of an address, in this machine's byte order.
    fn hex(addr: &str) -> String {
        match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => format!("{:08X}", u32::from_ne_bytes(a.octets())),
            IpAddr::V6(a) => a
                .octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        }
    }

    fn line(n: usize, addr: &str, port: u16, st: &str, inode: u64) -> String {
        let zero = if addr.contains(':') {
            "0".repeat(32)
        } else {
            "0".repeat(8)
        };
        format!(
            "   {n}: {}:{port:04X} {zero}:0000 {st} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n",
            hex(addr)
        )
    }

    fn write(root: &Path, host: &str, text: &str) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn process(root: &Path, pid: u32, exe: &str, sockets: &[u64]) {
        let fd = root.join(format!("proc/{pid}/fd"));
        std::fs::create_dir_all(&fd).unwrap();
        symlink(exe, root.join(format!("proc/{pid}/exe"))).unwrap();
        for (i, inode) in sockets.iter().enumerate() {
            symlink(format!("socket:[{inode}]"), fd.join((i + 3).to_string())).unwrap();
        }
        symlink("/dev/null", fd.join("0")).unwrap();
    }

    fn run(root: &Path, policy: &InventoryPolicy) -> (Vec<Port>, Vec<CollectIssue>) {
        let hashes = HashCache::default();
        let c = collect(&Ctx {
            root,
            policy,
            hashes: &hashes,
        });
        match c.items {
            Items::Ports(p) => (p, c.issues),
            other => panic!("wrong kind {other:?}"),
        }
    }

    fn find<'a>(ports: &'a [Port], proto: &str, addr: &str, port: u16) -> &'a Port {
        ports
            .iter()
            .find(|p| p.protocol == proto && p.address == addr && p.port == port)
            .unwrap_or_else(|| panic!("{proto} {addr}:{port} missing from {ports:#?}"))
    }

    #[test]
    fn shipped_dangerous_ports_list_parses() {
        let rules = RULES.as_ref().expect("content/dangerous_ports.toml");
        for port in [
            21, 23, 69, 111, 135, 137, 138, 139, 445, 512, 513, 514, 873, 1433, 1521, 2049, 2375,
            3306, 3389, 4444, 5432, 5900, 5984, 6379, 8500, 9200, 11211, 27017, 50070,
        ] {
            assert!(rules.iter().any(|r| r.port == port), "{port} not listed");
        }
        assert!(rules.iter().all(|r| !r.reason.trim().is_empty()));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn addresses_decode_as_the_kernel_prints_them() {
        let v4 = |h| decode_addr(h, false).map(|a| a.to_string());
        let v6 = |h| decode_addr(h, true).map(|a| a.to_string());
        assert_eq!(v4("0100007F").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("00000000").as_deref(), Some("0.0.0.0"));
        assert_eq!(v4("0101A8C0").as_deref(), Some("192.168.1.1"));
        assert_eq!(
            v6("00000000000000000000000001000000").as_deref(),
            Some("::1")
        );
        assert_eq!(
            v6("0000000000000000FFFF00000100007F").as_deref(),
            Some("::ffff:127.0.0.1")
        );
        assert_eq!(
            v6("B80D0120000000000000000001000000").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(v4("0100007"), None);
        assert_eq!(v4("0100007G"), None);
        assert_eq!(v6("0100007F"), None);
    }

    #[test]
    fn listening_sockets_with_owner_and_risk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/proc/net/tcp",
            &format!(
                "{HEADER4}{}{}{}{}{}",
                line(0, "0.0.0.0", 22, "0A", 100),
                line(1, "127.0.0.1", 6379, "0A", 101),
                line(2, "10.0.0.5", 6379, "0A", 102),
                // established connection: not listening
                line(3, "10.0.0.5", 22, "01", 103),
                line(4, "0.0.0.0", 23, "0A", 0),
            ),
        );
        write(
            root,
            "/proc/net/tcp6",
            &format!(
                "{HEADER6}{}{}",
                line(0, "::", 6379, "0A", 110),
                line(1, "::ffff:127.0.0.1", 3306, "0A", 111),
            ),
        );
        write(
            root,
            "/proc/net/udp",
            &format!(
                "{HEADER4}{}{}{}{}",
                line(0, "0.0.0.0", 69, "07", 120),
                line(1, "192.168.1.1", 53, "01", 121),
                // unbound client socket
                line(2, "0.0.0.0", 0, "07", 122),
                // an odd UDP state: skipped
                line(3, "0.0.0.0", 5353, "0A", 123),
            ),
        );
        // udp6 missing (IPv6 off): no issue
        process(root, 1, "/usr/sbin/sshd", &[100]);
        process(root, 40, "/usr/bin/redis-server", &[101, 102, 110]);
        process(root, 41, "/usr/sbin/in.tftpd", &[120, 999]);

        let policy = InventoryPolicy {
            ignored_ports: vec![3306],
            ..InventoryPolicy::default()
        };
        let (ports, issues) = run(root, &policy);
        assert!(issues.is_empty(), "{issues:?}");
        let keys: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}/{}:{}", p.protocol, p.family, p.address, p.port))
            .collect();
        assert_eq!(
            keys,
            [
                "tcp/v4/0.0.0.0:22",
                "tcp/v4/0.0.0.0:23",
                "tcp/v4/10.0.0.5:6379",
                "tcp/v4/127.0.0.1:6379",
                "tcp/v6/:::6379",
                "tcp/v6/::ffff:127.0.0.1:3306",
                "udp/v4/0.0.0.0:69",
                "udp/v4/192.168.1.1:53",
            ]
        );

        let ssh = find(&ports, "tcp", "0.0.0.0", 22);
        assert_eq!(
            (ssh.state.as_str(), ssh.pid, ssh.program.as_deref()),
            ("listen", Some(1), Some("/usr/sbin/sshd"))
        );
        assert_eq!(ssh.risk, PortRisk::Unknown);
        assert_eq!(ssh.risk_reason, None);

        let telnet = find(&ports, "tcp", "0.0.0.0", 23);
        assert_eq!((telnet.pid, telnet.risk), (None, PortRisk::Dangerous));
        assert!(telnet.risk_reason.as_deref().unwrap().contains("Telnet"));

        // Redis is only a risk when other hosts can reach it.
        let local = find(&ports, "tcp", "127.0.0.1", 6379);
        assert_eq!((local.risk, local.pid), (PortRisk::Unknown, Some(40)));
        assert_eq!(local.program.as_deref(), Some("/usr/bin/redis-server"));
        assert_eq!(
            find(&ports, "tcp", "10.0.0.5", 6379).risk,
            PortRisk::Dangerous
        );
        let any6 = find(&ports, "tcp", "::", 6379);
        assert_eq!(
            (any6.family.as_str(), any6.risk),
            ("v6", PortRisk::Dangerous)
        );

        let mysql = find(&ports, "tcp", "::ffff:127.0.0.1", 3306);
        assert_eq!((mysql.risk, &mysql.risk_reason), (PortRisk::Ignored, &None));

        let tftp = find(&ports, "udp", "0.0.0.0", 69);
        assert_eq!(
            (tftp.state.as_str(), tftp.pid, tftp.risk),
            ("unconn", Some(41), PortRisk::Dangerous)
        );
        let dns = find(&ports, "udp", "192.168.1.1", 53);
        assert_eq!((dns.state.as_str(), dns.pid), ("estab", None));
    }

    #[test]
    fn shared_address_is_one_item_owned_by_the_lowest_pid() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/proc/net/tcp",
            &format!(
                "{HEADER4}{}{}{}",
                line(0, "0.0.0.0", 8080, "0A", 200),
                line(1, "0.0.0.0", 8080, "0A", 201),
                line(2, "0.0.0.0", 8080, "0A", 202),
            ),
        );
        process(root, 300, "/usr/bin/worker", &[200]);
        process(root, 12, "/usr/bin/worker", &[201]);
        // inode 202 has no owner we can see
        let (ports, issues) = run(root, &InventoryPolicy::default());
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(ports.len(), 1, "{ports:#?}");
        assert_eq!(ports[0].pid, Some(12));
    }

    #[test]
    fn damaged_lines_are_issues_and_the_rest_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let good = line(0, "0.0.0.0", 22, "0A", 100);
        let truncated = &good[..40];
        write(
            root,
            "/proc/net/tcp",
            &format!(
                "{HEADER4}{truncated}\n{}   2: zz:0016 00000000:0000 0A 0 0 0 0 0 1\n{}",
                line(1, "0.0.0.0", 80, "0A", 101),
                line(3, "0.0.0.0", 443, "0A", 102),
            ),
        );
        write(
            root,
            "/proc/net/udp6",
            "\u{0}\u{1}\u{ff}garbage é\n\u{fffd}",
        );
        let (ports, issues) = run(root, &InventoryPolicy::default());
        let got: Vec<u16> = ports.iter().map(|p| p.port).collect();
        assert_eq!(got, [80, 443]);
        let at: Vec<(&str, Option<u32>)> =
            issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        assert_eq!(
            at,
            [
                ("/proc/net/tcp", Some(2)),
                ("/proc/net/tcp", Some(4)),
                ("/proc/net/udp6", Some(1)),
                ("/proc/net/udp6", Some(2)),
            ],
            "{issues:#?}"
        );
        assert!(issues[1].message.contains("zz"), "{}", issues[1].message);
    }

    #[test]
    fn no_proc_means_nothing_and_no_issue() {
        let dir = tempfile::tempdir().unwrap();
        let (ports, issues) = run(dir.path(), &InventoryPolicy::default());
        assert!(ports.is_empty() && issues.is_empty());
    }
}
