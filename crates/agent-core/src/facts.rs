//! Host facts for `hello` and enrollment. File-based facts read under a root path so tests can
//! point them at fixtures.

use std::collections::HashMap;
use std::path::Path;

use hostward_proto::HostFacts;

/// Collects facts; a fact that cannot be read is left empty rather than failing the agent.
pub fn collect(root: &Path) -> HostFacts {
    let os = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let (kernel, arch) = match nix::sys::utsname::uname() {
        Ok(u) => (
            u.release().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    let boot_time = std::fs::read_to_string(root.join("proc/stat"))
        .ok()
        .and_then(|t| parse_btime(&t))
        .unwrap_or(0);
    HostFacts {
        hostname: hostname(),
        os_id: os.get("ID").cloned().unwrap_or_default(),
        os_version: os.get("VERSION_ID").cloned().unwrap_or_default(),
        os_name: os.get("PRETTY_NAME").cloned().unwrap_or_default(),
        kernel,
        arch,
        ips: ips(),
        boot_time,
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or double quotes with
/// backslash escapes inside double quotes; comments and malformed lines are skipped.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(key.to_string(), unquote(raw.trim()));
    }
    out
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return raw[1..raw.len() - 1].to_string();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = raw[1..raw.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    raw.to_string()
}

/// `btime` from /proc/stat: boot time in Unix seconds.
pub fn parse_btime(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn ips() -> Vec<String> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for a in addrs {
        let Some(addr) = a.address else { continue };
        let ip: std::net::IpAddr = if let Some(v4) = addr.as_sockaddr_in() {
            v4.ip().into()
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            v6.ip().into()
        } else {
            continue;
        };
        if ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        let s = ip.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
        // The center refuses a hello with more; a host with that many keeps the first ones.
        if out.len() == hostward_proto::MAX_HOST_IPS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoted_and_unquoted_values() {
        let text = "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nVERSION_ID=\"12\"\nID=debian\n\
                    ESCAPED=\"a \\\"b\\\" c\"\nnot a line\n\n";
        let m = parse_os_release(text);
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["NAME"], "Debian");
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["ESCAPED"], "a \"b\" c");
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        let stat = "cpu  1 2 3 4\nintr 5\nctxt 9\nbtime 1700000000\nprocesses 3\n";
        assert_eq!(parse_btime(stat), Some(1_700_000_000));
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn collect_reads_files_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("etc/os-release"),
            "ID=\"rocky\"\nVERSION_ID=9.3\nPRETTY_NAME=\"Rocky 9\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("proc/stat"), "btime 42\n").unwrap();
        let f = collect(dir.path());
        assert_eq!(
            (f.os_id.as_str(), f.os_version.as_str(), f.os_name.as_str()),
            ("rocky", "9.3", "Rocky 9")
        );
        assert_eq!(f.boot_time, 42);
        assert!(!f.hostname.is_empty());
        assert!(!f.arch.is_empty());
        assert!(f.ips.iter().all(|ip| ip != "127.0.0.1" && ip != "::1"));
    }
}
