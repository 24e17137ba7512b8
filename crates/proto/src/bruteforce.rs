//! The brute-force and login-monitoring policy of a project: the console edits it, the center
//! validates and pushes it in the agents' config, the agent's engine applies it. With the
//! address/CIDR matching it needs, parsed here so this crate stays dependency-free.
//!
//! Usual login addresses come from two lists: the project's (`Policy::usual_login_ips`, usual
//! for every server of the project) and each server's own ([`ServerLoginIps`]), which the agent
//! learns from the first logins ([`LoginIp`] records) and people edit. The center holds the
//! server list and pushes it back in the config, so an edit there wins over what an agent
//! learned before it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Longest block, and the bound of every configurable duration: 30 days.
pub const MAX_BLOCK_MINUTES: u32 = 43_200;
pub const MAX_WHITELIST: usize = 50;
pub const MAX_USUAL_LOGIN_IPS: usize = 20;
/// Bounds of the failure thresholds and windows: beyond them a setting is a typo, and the
/// per-source state the engine keeps grows with the largest threshold.
pub const MAX_FAILURES: u32 = 1_000;
pub const MAX_WINDOW_SECS: u32 = 86_400;

/// Defaults are those of the reference product (Huawei Cloud HSS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Block after this many failures within `short_window_secs`...
    pub short_failures: u32,
    pub short_window_secs: u32,
    /// ...or this many within `long_window_secs` (slow guessing).
    pub long_failures: u32,
    pub long_window_secs: u32,
    /// Block sources that cross a threshold on the host firewall. Off, brute force still
    /// alarms and nothing is blocked (the basic edition, or a team that blocks elsewhere).
    pub block: bool,
    /// Block duration when the failures that crossed the threshold were SSH logins.
    pub ssh_block_minutes: u32,
    /// Block duration for every other service.
    pub other_block_minutes: u32,
    /// Each new block of an address whose previous block ended less than 24 h earlier lasts
    /// twice as long as that one, up to [`MAX_BLOCK_MINUTES`].
    pub escalate: bool,
    /// Addresses or prefixes (IPv4 or IPv6) never blocked; brute force from them still alarms.
    pub whitelist: Vec<String>,
    /// Alarm on every successful root login.
    pub alarm_on_root_login: bool,
    /// Addresses or prefixes logins to every server of the project usually come from; a login
    /// from an address neither here nor in the server's own list ([`ServerLoginIps`]) alarms.
    pub usual_login_ips: Vec<String>,
    /// Servers may learn: while a server's own list has fewer than 20 entries and its
    /// `learning` switch is on, a login from a new address joins that list instead of alarming.
    pub learn_usual_ips: bool,
    /// Local hours logins usually happen in: `[start, end)`, wrapping past midnight when
    /// `start > end` (`[22, 6]` is 22:00 to 05:59). None: no hour check.
    pub usual_hours: Option<(u8, u8)>,
}

impl crate::Section for Policy {
    const KEY: &'static str = "bruteforce";

    fn gate(&mut self, edition: crate::Edition) {
        self.block &= edition.has(crate::Feature::Blocking);
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            short_failures: 5,
            short_window_secs: 30,
            long_failures: 15,
            long_window_secs: 3_600,
            block: true,
            ssh_block_minutes: 720,
            other_block_minutes: 1_440,
            escalate: false,
            whitelist: Vec::new(),
            alarm_on_root_login: false,
            usual_login_ips: Vec::new(),
            learn_usual_ips: true,
            usual_hours: None,
        }
    }
}

impl Policy {
    /// Checks every field; the message starts with the field's name.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("short_failures", self.short_failures),
            ("long_failures", self.long_failures),
        ] {
            if !(1..=MAX_FAILURES).contains(&v) {
                return Err(format!("{name}: must be 1 to {MAX_FAILURES}, not {v}"));
            }
        }
        for (name, v) in [
            ("short_window_secs", self.short_window_secs),
            ("long_window_secs", self.long_window_secs),
        ] {
            if !(1..=MAX_WINDOW_SECS).contains(&v) {
                return Err(format!("{name}: must be 1 to {MAX_WINDOW_SECS}, not {v}"));
            }
        }
        for (name, v) in [
            ("ssh_block_minutes", self.ssh_block_minutes),
            ("other_block_minutes", self.other_block_minutes),
        ] {
            if !(1..=MAX_BLOCK_MINUTES).contains(&v) {
                return Err(format!("{name}: must be 1 to {MAX_BLOCK_MINUTES}, not {v}"));
            }
        }
        check_nets("whitelist", &self.whitelist, MAX_WHITELIST)?;
        check_nets(
            "usual_login_ips",
            &self.usual_login_ips,
            MAX_USUAL_LOGIN_IPS,
        )?;
        if let Some((start, end)) = self.usual_hours {
            if start > 23 || end > 24 {
                return Err(format!(
                    "usual_hours: hours are 0 to 23 (end up to 24), not [{start}, {end}]"
                ));
            }
            // An empty or all-day window is a mistake either way; None means "no check".
            if start == end || (start == 0 && end == 24) {
                return Err(format!(
                    "usual_hours: [{start}, {end}] is empty or the whole day; leave it unset for no hour check"
                ));
            }
        }
        Ok(())
    }
}

/// Checks a list of addresses or prefixes: at most `max`, each parses. Messages start with
/// `field` (`field[3]: ...` for an entry).
pub fn check_nets(field: &str, list: &[String], max: usize) -> Result<(), String> {
    if list.len() > max {
        return Err(format!(
            "{field}: at most {max} entries, not {}",
            list.len()
        ));
    }
    for (i, s) in list.iter().enumerate() {
        Net::parse(s).map_err(|e| format!("{field}[{i}]: {s:?}: {e}"))?;
    }
    Ok(())
}

/// A server's own usual login addresses, as the center holds them (config `login_ips`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLoginIps {
    /// Addresses or prefixes, at most [`MAX_USUAL_LOGIN_IPS`].
    pub usual: Vec<String>,
    /// Whether a login from a new address adds it to `usual` (while the project's
    /// `learn_usual_ips` is on and the list has room) instead of alarming.
    pub learning: bool,
}

impl crate::Section for ServerLoginIps {
    const KEY: &'static str = "login_ips";
}

impl Default for ServerLoginIps {
    /// A new server learns: its first logins are the usual ones.
    fn default() -> Self {
        ServerLoginIps {
            usual: Vec::new(),
            learning: true,
        }
    }
}

impl ServerLoginIps {
    /// The message starts with the field's name (`usual[3]: ...`).
    pub fn validate(&self) -> Result<(), String> {
        check_nets("usual", &self.usual, MAX_USUAL_LOGIN_IPS)
    }
}

/// Most entries of a server's SSH login whitelist (the reference product's bound).
pub const MAX_SSH_WHITELIST: usize = 50;

/// A server's SSH login whitelist, as the center holds it (config `ssh_whitelist`): while
/// enabled, new TCP connections to sshd's ports from any address outside `addrs` are dropped
/// by the agent's firewall table (loopback always passes; established connections are left
/// alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshWhitelist {
    pub enabled: bool,
    /// Addresses or prefixes, IPv4 or IPv6, at most [`MAX_SSH_WHITELIST`].
    pub addrs: Vec<String>,
}

impl crate::Section for SshWhitelist {
    const KEY: &'static str = "ssh_whitelist";
}

impl SshWhitelist {
    /// The message starts with the field's name (`addrs[3]: ...`). An enabled empty list would
    /// close sshd to everyone but loopback, which is never what anyone means.
    pub fn validate(&self) -> Result<(), String> {
        check_nets("addrs", &self.addrs, MAX_SSH_WHITELIST)?;
        if self.enabled && self.addrs.is_empty() {
            return Err(
                "addrs: an enabled whitelist needs at least one address, or no one could reach sshd"
                    .into(),
            );
        }
        Ok(())
    }

    /// The entries parsed, in canonical form, duplicates removed (first place kept). None
    /// when an entry does not parse ([`SshWhitelist::validate`] says which).
    pub fn nets(&self) -> Option<Vec<Net>> {
        let mut out: Vec<Net> = Vec::with_capacity(self.addrs.len());
        for s in &self.addrs {
            let n = Net::parse(s).ok()?;
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Some(out)
    }
}

/// The SSH whitelist's state in the brute-force module's heartbeat (`ssh_whitelist`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SshWhitelistReport {
    /// `applied` (the chain is in force), `off` (no chain), `error` (what the config asks for
    /// is not in force: see `error`).
    pub state: String,
    /// The config's entries the chain holds (0 when off).
    pub addrs: usize,
    /// sshd's ports the chain closes, from sshd_config.
    pub ports: Vec<u16>,
    pub error: Option<String>,
}

/// Durable record `login_ip`: the agent learned `addr` as a usual login address of its server
/// from a successful login. The center adds it to the server's list if learning is still on
/// there and the list has room, then pushes the list back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginIp {
    /// Unix seconds of the login.
    pub ts: i64,
    /// The source address of the login (one host, not a prefix).
    pub addr: String,
    pub user: String,
    /// `ssh`, `ftp`, `mysql`...
    pub service: String,
}

/// Bounds of a [`LoginIp`]'s text fields: Linux user names are at most 32 bytes, the rest is
/// room for other services' names.
pub const MAX_LOGIN_USER_BYTES: usize = 256;
pub const MAX_SERVICE_BYTES: usize = 32;

impl LoginIp {
    /// The message starts with the field's name.
    pub fn validate(&self) -> Result<(), String> {
        if self.addr.parse::<IpAddr>().is_err() {
            return Err(format!(
                "addr: {:?} is not an IPv4 or IPv6 address",
                self.addr
            ));
        }
        if self.user.len() > MAX_LOGIN_USER_BYTES {
            return Err(format!("user: at most {MAX_LOGIN_USER_BYTES} bytes"));
        }
        if self.service.is_empty()
            || self.service.len() > MAX_SERVICE_BYTES
            || !self
                .service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "service: {:?} is not a service name (a-z, 0-9, _; at most {MAX_SERVICE_BYTES} bytes)",
                self.service
            ));
        }
        Ok(())
    }

    /// The address in its canonical text (IPv4-mapped IPv6 as IPv4), as lists store it.
    /// None when it does not validate.
    pub fn canonical_addr(&self) -> Option<String> {
        self.addr
            .parse::<IpAddr>()
            .ok()
            .map(|a| a.to_canonical().to_string())
    }
}

/// An address prefix. Host bits are cleared when parsed (`10.1.2.3/8` is `10.0.0.0/8`), as
/// people write prefixes both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn host(addr: IpAddr) -> Net {
        let addr = addr.to_canonical();
        Net {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            None => (s, None),
            Some((a, p)) => (a, Some(p)),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "not an IPv4 or IPv6 address or prefix".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take "+8".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("prefix length must be 0 to {max}"))?,
            Some(_) => return Err(format!("prefix length must be 0 to {max}")),
        };
        // An IPv4-mapped prefix matches the IPv4 addresses the engine compares (they are
        // canonicalised), so it is stored as the IPv4 prefix it stands for.
        if let IpAddr::V6(v6) = addr
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(Net::masked(IpAddr::V4(v4), prefix - 96));
        }
        Ok(Net::masked(addr, prefix))
    }

    fn masked(addr: IpAddr, prefix: u8) -> Net {
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Net { addr, prefix }
    }

    /// `ip` must be canonical (IPv4-mapped IPv6 already turned into IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether every address of `other` is in this prefix.
    pub fn covers(&self, other: &Net) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }

    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(enabled: bool, addrs: &[&str]) -> SshWhitelist {
        SshWhitelist {
            enabled,
            addrs: addrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn ssh_whitelist_validation_names_the_field_and_index() {
        assert_eq!(
            wl(true, &["192.0.2.1", "10.0.0.0/8", "2001:db8::/32"]).validate(),
            Ok(())
        );
        assert_eq!(wl(false, &[]).validate(), Ok(()));
        let e = wl(true, &["192.0.2.1", "10.0.0.0/33"])
            .validate()
            .unwrap_err();
        assert!(e.starts_with("addrs[1]: \"10.0.0.0/33\""), "{e}");
        let e = wl(false, &["nope"]).validate().unwrap_err();
        assert!(e.starts_with("addrs[0]: \"nope\""), "{e}");
        let e = wl(true, &[]).validate().unwrap_err();
        assert!(e.starts_with("addrs: an enabled whitelist needs"), "{e}");
        let many: Vec<String> = (0..=MAX_SSH_WHITELIST)
            .map(|i| format!("10.0.{i}.1"))
            .collect();
        let e = SshWhitelist {
            enabled: true,
            addrs: many,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e, "addrs: at most 50 entries, not 51");
    }

    #[test]
    fn ssh_whitelist_nets_are_canonical_and_distinct() {
        let nets = wl(
            true,
            &["10.1.2.3/8", "10.0.0.0/8", "::ffff:192.0.2.1", "192.0.2.1"],
        )
        .nets()
        .unwrap();
        let text: Vec<String> = nets.iter().map(Net::to_string).collect();
        assert_eq!(text, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(wl(true, &["x"]).nets(), None);
        let a = Net::parse("10.0.0.0/8").unwrap();
        assert!(a.covers(&Net::parse("10.1.0.0/16").unwrap()));
        assert!(!Net::parse("10.1.0.0/16").unwrap().covers(&a));
        assert!(!a.covers(&Net::parse("2001:db8::/32").unwrap()));
    }
}
