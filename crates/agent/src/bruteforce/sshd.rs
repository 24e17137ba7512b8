//! The TCP ports sshd listens on, read from `<root>/etc/ssh/sshd_config` and the files its
//! `Include` lines name, as sshd reads them: every `Port` line counts (the keyword may repeat),
//! a `ListenAddress host:port` adds its port, keywords are case-insensitive and may be followed
//! by `=`, relative Include paths are under `/etc/ssh`, and a wildcard in an Include's file
//! name takes the matching files in name order. No port anywhere: sshd's default, 22. Pure
//! but for reading files under `root` (tests point it at fixtures).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// sshd's own default when no Port or ListenAddress port is given.
pub const DEFAULT_PORT: u16 = 22;
/// Include chains deeper than this are a loop (sshd stops at 16 too).
const MAX_DEPTH: usize = 16;

/// The ports, sorted and distinct; never empty.
pub fn ports(root: &Path) -> Vec<u16> {
    let mut out = BTreeSet::new();
    read(root, "/etc/ssh/sshd_config", 0, &mut out);
    if out.is_empty() {
        out.insert(DEFAULT_PORT);
    }
    out.into_iter().collect()
}

/// The file's path under `root`; the path sshd itself would open is `path`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read(root: &Path, path: &str, depth: usize, out: &mut BTreeSet<u16>) {
    if depth > MAX_DEPTH {
        tracing::warn!(
            path,
            "sshd_config Include nesting too deep; ignoring the rest"
        );
        return;
    }
    // A missing or unreadable file gives no ports; sshd's default then applies.
    let Ok(text) = std::fs::read_to_string(under(root, path)) else {
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (
                &line[..i],
                line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
            ),
            None => (line, ""),
        };
        let first = rest.split_whitespace().next().unwrap_or("");
        match keyword.to_ascii_lowercase().as_str() {
            "port" => {
                if let Some(p) = port(first) {
                    out.insert(p);
                }
            }
            "listenaddress" => {
                if let Some(p) = listen_port(first) {
                    out.insert(p);
                }
            }
            "include" => {
                for pattern in rest.split_whitespace() {
                    for file in expand(root, pattern) {
                        read(root, &file, depth + 1, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `host:port`, `[v6]:port`; a bare address (`0.0.0.0`, `::`) has no port of its own.
fn listen_port(s: &str) -> Option<u16> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once("]:").and_then(|(_, p)| port(p));
    }
    match s.split_once(':') {
        Some((_, p)) if !p.contains(':') => port(p),
        _ => None,
    }
}

/// An Include pattern's files, as sshd paths: relative ones are under /etc/ssh; a `*` or `?`
/// in the last component matches names in that directory (sorted, as glob(3) returns them).
fn expand(root: &Path, pattern: &str) -> Vec<String> {
    let full = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("/etc/ssh/{pattern}")
    };
    let (dir, name) = full.rsplit_once('/').unwrap_or(("", full.as_str()));
    if !name.contains(['*', '?']) {
        return vec![full];
    }
    let Ok(entries) = std::fs::read_dir(under(root, dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| wildcard(name.as_bytes(), n.as_bytes()))
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}

/// glob(3)'s `*` and `?` within one name; a leading dot is matched only by a dot, as glob(3)
/// leaves hidden files out.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = under(dir.path(), path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn no_config_or_no_port_is_the_default() {
        assert_eq!(ports(root(&[]).path()), [22]);
        let r = root(&[("/etc/ssh/sshd_config", "# Port 2222\nPermitRootLogin no\n")]);
        assert_eq!(ports(r.path()), [22]);
    }

    #[test]
    fn every_port_line_counts_in_any_spelling() {
        let r = root(&[(
            "/etc/ssh/sshd_config",
            "Port 2222\n  port=2200\nPORT = 22\nPort 0\nPort x\nPortable 9\n",
        )]);
        assert_eq!(ports(r.path()), [22, 2200, 2222]);
    }

    #[test]
    fn listen_addresses_with_a_port_add_it() {
        let r = root(&[(
            "/etc/ssh/sshd_config",
            "ListenAddress 0.0.0.0\nListenAddress 192.0.2.1:2022\nListenAddress [::1]:2023 rdomain x\nListenAddress ::\n",
        )]);
        assert_eq!(ports(r.path()), [2022, 2023]);
    }

    #[test]
    fn includes_are_followed_with_wildcards_relative_paths_and_a_depth_bound() {
        let r = root(&[
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf extra.conf\nPort 22\n",
            ),
            ("/etc/ssh/sshd_config.d/10-a.conf", "Port 2201\n"),
            (
                "/etc/ssh/sshd_config.d/20-b.conf",
                "Port 2202\nInclude /etc/ssh/loop.conf\n",
            ),
            ("/etc/ssh/sshd_config.d/.hidden.conf", "Port 2209\n"),
            ("/etc/ssh/sshd_config.d/30-c.disabled", "Port 2208\n"),
            ("/etc/ssh/extra.conf", "Port 2203\n"),
            ("/etc/ssh/loop.conf", "Port 2204\nInclude loop.conf\n"),
        ]);
        assert_eq!(ports(r.path()), [22, 2201, 2202, 2203, 2204]);
    }

    #[test]
    fn wildcards_match_as_glob_does() {
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(!wildcard(b"*.conf", b"a.conf.bak"));
        assert!(wildcard(b"?0-*", b"10-x"));
        assert!(!wildcard(b"*", b".hidden"));
        assert!(wildcard(b".*", b".hidden"));
    }
}
