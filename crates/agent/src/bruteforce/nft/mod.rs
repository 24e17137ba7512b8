//! Blocks source addresses with nftables, in a table of our own (`table inet hostward`).
//!
//! Layout (created by [`Nft::ensure`]):
//!
//! ```text
//! table inet hostward {
//!     counter dropped { }
//!     set blocked4 { type ipv4_addr; flags timeout; }
//!     set blocked6 { type ipv6_addr; flags timeout; }
//!     chain input {
//!         type filter hook input priority -10; policy accept;
//!         ip saddr @blocked4 tcp dport { 22 } counter name "dropped" drop
//!         ip6 saddr @blocked6 tcp dport { 22 } counter name "dropped" drop
//!     }
//! }
//! ```
//!
//! With an SSH login whitelist on, the table also holds the `ssh_whitelist` chain
//! ([`ssh_whitelist`]).
//!
//! Every change is one `nft -f -` transaction fed on stdin (no shell), and names only our table:
//! the ruleset is never flushed, so ufw, firewalld, docker and anything else keep their tables.
//!
//! Choices, and why:
//! - **No `interval` flag.** Single addresses are all the detector produces; interval sets change
//!   the element representation (ranges, prefixes in JSON) and their timeout handling has had
//!   kernel bugs, while plain hash sets with `timeout` work on every kernel nftables runs on.
//! - **Priority -10 on the input hook.** In nftables a `drop` in any base chain is final but an
//!   `accept` only ends that chain, so our drop wins whatever the order. Running before priority 0
//!   (iptables-nft and ufw's chains, legacy iptables) and +10 (firewalld) means a blocked packet is
//!   counted by us and costs nothing in their rules (ufw's logging and rate limits, fail2ban).
//!   It stays after conntrack (-200), so nothing else changes.
//! - **Element timeouts are refreshed without deleting when the kernel allows it.** Deleting a
//!   set element makes the commit wait for an RCU grace period (~12 ms here against ~3 ms for an
//!   add), which would break the block latency goal. Newer kernels update the timeout of an
//!   element that is added again; older ones ignore the add. [`Nft::ensure`] probes which one
//!   this kernel is, and only on older kernels does a re-block of an address we know is present
//!   pay for `add; delete; add`.
//! - **A spawn per call rather than a long-lived `nft -i`.** `nft -i` answers in ~0.4 ms against
//!   ~3-5 ms for a spawn, but it reports success by silence, errors on another pipe, and makes
//!   each line its own transaction; a spawn is within the latency goal and cannot get out of step.
//! - Docker's published ports are DNATed in prerouting and then forwarded, so they never reach
//!   the input hook: this responder protects the host's own services.
//!
//! Blocks are also kept in a small state file (JSON, 0600: address -> expiry in unix seconds) so
//! that [`Nft::restore`] after a restart or reboot puts back exactly the blocks still valid.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

const SET4: &str = "blocked4";
const SET6: &str = "blocked6";
const CHAIN: &str = "input";
const COUNTER: &str = "dropped";
const PRIORITY: i32 = -10;

/// Longest timeout we pass to nft: long enough for any policy, far from the kernel's limits.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3650 * 24 * 3600);

/// A hung nft (netlink lock, stuck kernel) must not wedge the responder.
const NFT_DEADLINE: Duration = Duration::from_secs(10);

/// A large sync is split so no single nft command line grows without bound.
const ELEMENTS_PER_COMMAND: usize = 500;

/// TEST-NET-1 (RFC 5737): never a real peer, so briefly holding it in the set blocks nobody.
const PROBE_ADDR: &str = "192.0.2.254";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The command that runs nft, program first. Tests point it into a network namespace
    /// (`["ip", "netns", "exec", "ns", "nft"]`).
    pub nft: Vec<String>,
    /// Name of our table in the `inet` family.
    pub table: String,
    /// TCP ports closed to blocked addresses; empty closes everything to them.
    pub ports: Vec<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nft: vec!["/usr/sbin/nft".into()],
            table: "hostward".into(),
            ports: vec![22],
        }
    }
}

impl Config {
    fn validate(&self) -> Result<(), Error> {
        if self.nft.is_empty() || self.nft[0].is_empty() {
            return Err(Error::Config("nft command is empty".into()));
        }
        // The table name is the one string we put into scripts unparsed.
        let t = self.table.as_bytes();
        let ok = !t.is_empty()
            && t.len() <= 64
            && t[0].is_ascii_alphabetic()
            && t.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if !ok {
            return Err(Error::Config(format!(
                "table name {:?}: want a letter then letters, digits or '_' (at most 64)",
                self.table
            )));
        }
        if self.ports.contains(&0) {
            return Err(Error::Config("port 0 cannot be protected".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nft responder config: {0}")]
    Config(String),
    #[error(
        "refusing to block {0}: loopback, unspecified and multicast addresses are never blocked"
    )]
    Refused(IpAddr),
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} did not finish within {NFT_DEADLINE:?}")]
    Hung { cmd: String },
    #[error("{cmd} failed ({status}): {stderr}")]
    Nft {
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("nft JSON output: {0}")]
    Parse(String),
    #[error("block state file {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One element of our sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub addr: IpAddr,
    /// `None`: an element without timeout (not one of ours; someone added it by hand).
    pub expires_in: Option<Duration>,
}

/// Packets and bytes dropped by our rules since the table was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub packets: u64,
    pub bytes: u64,
}

const UPDATE_UNKNOWN: u8 = 0;
const UPDATE_YES: u8 = 1;
const UPDATE_NO: u8 = 2;

pub struct Nft {
    cfg: Config,
    state_path: PathBuf,
    /// Address -> expiry (unix seconds); mirrors the state file. The lock also serialises the
    /// nft transactions with the file writes, so the file never lags behind a later operation.
    state: tokio::sync::Mutex<BTreeMap<IpAddr, u64>>,
    /// Whether re-adding an element updates its timeout on this kernel (see the module doc).
    timeout_update: AtomicU8,
}

impl Nft {
    /// Loads the state file (a missing one is empty). Touches nothing in nftables.
    pub fn new(cfg: Config, state_path: impl Into<PathBuf>) -> Result<Self, Error> {
        cfg.validate()?;
        let state_path = state_path.into();
        let state = load_state(&state_path)?;
        Ok(Self {
            cfg,
            state_path,
            state: tokio::sync::Mutex::new(state),
            timeout_update: AtomicU8::new(UPDATE_UNKNOWN),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Creates the table, counter, sets and chain where missing and rewrites the chain's rules
    /// from the config, in one transaction that keeps the sets' elements. Idempotent.
    pub async fn ensure(&self) -> Result<(), Error> {
        let _g = self.state.lock().await;
        self.apply(&ensure_script(&self.cfg.table, &self.cfg.ports))
            .await?;
        if self.timeout_update.load(Ordering::Relaxed) == UPDATE_UNKNOWN {
            let yes = self.probe_timeout_update().await?;
            self.timeout_update
                .store(if yes { UPDATE_YES } else { UPDATE_NO }, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Adds `addr` for `timeout`, or gives it that timeout if it is already blocked. One nft
    /// spawn unless the address is already blocked on a kernel that cannot update timeouts.
    pub async fn block(&self, addr: IpAddr, timeout: Duration) -> Result<(), Error> {
        let addr = blockable(addr)?;
        let ms = timeout_ms(timeout);
        let mut state = self.state.lock().await;
        let now = unix_now();
        let present = state.get(&addr).is_some_and(|&exp| exp > now);
        let refresh_by_delete =
            present && self.timeout_update.load(Ordering::Relaxed) != UPDATE_YES;
        self.apply(&block_script(&self.cfg.table, addr, ms, refresh_by_delete))
            .await?;
        state.insert(addr, now + ms.div_ceil(1000));
        self.save(&state)
    }

    /// Removes `addr` from the sets; an address that is not there is not an error.
    pub async fn unblock(&self, addr: IpAddr) -> Result<(), Error> {
        let addr = addr.to_canonical();
        let mut state = self.state.lock().await;
        self.apply(&unblock_script(&self.cfg.table, addr)).await?;
        if state.remove(&addr).is_some() {
            self.save(&state)?;
        }
        Ok(())
    }

    /// The elements of both sets as the kernel holds them now.
    pub async fn list(&self) -> Result<Vec<Blocked>, Error> {
        let out = self.list_table_json().await?;
        parse_blocked(&out, &[SET4, SET6])
    }

    pub async fn dropped(&self) -> Result<Dropped, Error> {
        let out = self.list_table_json().await?;
        parse_counter(&out, COUNTER)
    }

    /// Makes the sets hold exactly `wanted`, each with its timeout, in one transaction (no
    /// moment without the blocks that stay). Zero timeouts and addresses that are never blocked
    /// are left out; a duplicated address keeps its longest timeout. The state file is rewritten
    /// to match.
    pub async fn sync(&self, wanted: &[(IpAddr, Duration)]) -> Result<(), Error> {
        let mut merged: BTreeMap<IpAddr, u64> = BTreeMap::new();
        for &(addr, timeout) in wanted {
            if timeout.is_zero() {
                continue;
            }
            // One unblockable entry (say, the center's list holds a loopback) must not leave the
            // host with no blocks at all after a restart.
            let addr = match blockable(addr) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("nft sync: {e}");
                    continue;
                }
            };
            let ms = timeout_ms(timeout);
            let e = merged.entry(addr).or_insert(ms);
            *e = (*e).max(ms);
        }
        let mut state = self.state.lock().await;
        self.apply(&sync_script(&self.cfg.table, &merged)).await?;
        let now = unix_now();
        *state = merged
            .into_iter()
            .map(|(a, ms)| (a, now + ms.div_ceil(1000)))
            .collect();
        self.save(&state)
    }

    /// The blocks in the state file that have not expired, with their remaining time.
    pub async fn saved(&self) -> Vec<(IpAddr, Duration)> {
        let state = self.state.lock().await;
        still_valid(&state, unix_now())
    }

    /// After a restart: makes the sets equal to the still-valid blocks of the state file (expired
    /// ones are dropped from both). Call [`Nft::ensure`] first. Returns what is blocked now.
    pub async fn restore(&self) -> Result<Vec<(IpAddr, Duration)>, Error> {
        let valid = self.saved().await;
        self.sync(&valid).await?;
        Ok(valid)
    }

    /// Puts our table and blocks back when something else removed them: `nft flush ruleset`,
    /// or restarting Debian's nftables.service, whose /etc/nftables.conf starts with one.
    /// Nothing happens while the table holds every still-valid block. Returns the blocks it
    /// put back.
    pub async fn heal(&self) -> Result<Vec<IpAddr>, Error> {
        let now = unix_now();
        // A block about to end may already be gone from the kernel (it rounds down): no repair.
        let wanted: Vec<IpAddr> = {
            let state = self.state.lock().await;
            state
                .iter()
                .filter(|&(_, &exp)| exp > now + 2)
                .map(|(a, _)| *a)
                .collect()
        };
        let present: Option<Vec<IpAddr>> = self
            .list()
            .await
            .ok()
            .map(|l| l.into_iter().map(|b| b.addr).collect());
        let missing: Vec<IpAddr> = wanted
            .iter()
            .filter(|a| present.as_ref().is_none_or(|p| !p.contains(a)))
            .copied()
            .collect();
        if present.is_some() && missing.is_empty() {
            return Ok(Vec::new());
        }
        if present.is_none() {
            tracing::warn!(table = %self.cfg.table, "our firewall table is gone; re-creating it");
        }
        self.ensure().await?;
        self.restore().await?;
        Ok(missing)
    }

    /// Deletes our table (uninstall) and the state file. A missing table is not an error.
    pub async fn remove(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        self.apply(&remove_script(&self.cfg.table)).await?;
        state.clear();
        match std::fs::remove_file(&self.state_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::State {
                path: self.state_path.clone(),
                source,
            }),
        }
    }

    /// Adds the probe address, adds it again with a longer timeout, reads which timeout the
    /// kernel kept, and removes it.
    async fn probe_timeout_update(&self) -> Result<bool, Error> {
        let t = &self.cfg.table;
        let add =
            |secs: u32| format!("add element inet {t} {SET4} {{ {PROBE_ADDR} timeout {secs}s }}\n");
        self.apply(&add(60)).await?;
        let result = async {
            self.apply(&add(120)).await?;
            let out = self.list_table_json().await?;
            let probe: IpAddr = PROBE_ADDR.parse().expect("constant address");
            let timeout = parse_set_timeouts(&out, SET4)?
                .into_iter()
                .find(|(a, _)| *a == probe)
                .and_then(|(_, t)| t);
            Ok(timeout.is_some_and(|t| t > 60))
        }
        .await;
        let cleanup = self
            .apply(&format!(
                "delete element inet {t} {SET4} {{ {PROBE_ADDR} }}\n"
            ))
            .await;
        let r = result?;
        cleanup?;
        Ok(r)
    }

    async fn list_table_json(&self) -> Result<String, Error> {
        let args = ["-j", "list", "table", "inet", self.cfg.table.as_str()];
        self.run(&args, None).await
    }

    async fn apply(&self, script: &str) -> Result<(), Error> {
        self.run(&["-f", "-"], Some(script)).await.map(drop)
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
        let cmd_line = || {
            let mut v: Vec<&str> = self.cfg.nft.iter().map(String::as_str).collect();
            v.extend_from_slice(args);
            v.join(" ")
        };
        let mut cmd = tokio::process::Command::new(&self.cfg.nft[0]);
        cmd.args(&self.cfg.nft[1..])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: cmd_line(),
            source,
        })?;
        let input = child.stdin.take();
        let write = async move {
            if let (Some(mut w), Some(s)) = (input, stdin) {
                // A failed write shows up as nft's own error (it saw a truncated script).
                let _ = w.write_all(s.as_bytes()).await;
            }
        };
        let (_, out) = tokio::time::timeout(NFT_DEADLINE, async {
            tokio::join!(write, child.wait_with_output())
        })
        .await
        .map_err(|_| Error::Hung { cmd: cmd_line() })?;
        let out = out.map_err(|source| Error::Spawn {
            cmd: cmd_line(),
            source,
        })?;
        if !out.status.success() {
            return Err(Error::Nft {
                cmd: cmd_line(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        String::from_utf8(out.stdout).map_err(|_| Error::Parse("output is not UTF-8".into()))
    }

    fn save(&self, state: &BTreeMap<IpAddr, u64>) -> Result<(), Error> {
        save_state(&self.state_path, state).map_err(|source| Error::State {
            path: self.state_path.clone(),
            source,
        })
    }
}

/// IPv4-mapped IPv6 (as sshd on a dual-stack socket logs) arrives as IPv4 in the kernel, so it
/// belongs in `blocked4`. Blocking loopback or unspecified would cut the host off from itself.
fn blockable(addr: IpAddr) -> Result<IpAddr, Error> {
    let addr = addr.to_canonical();
    if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
        return Err(Error::Refused(addr));
    }
    Ok(addr)
}

/// nft takes a zero timeout as "no timeout": never let rounding produce one.
fn timeout_ms(t: Duration) -> u64 {
    let t = t.min(MAX_TIMEOUT);
    let ms = t.as_millis() as u64 + u64::from(!t.subsec_nanos().is_multiple_of(1_000_000));
    ms.max(1)
}

fn set_of(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => SET4,
        IpAddr::V6(_) => SET6,
    }
}

/// Expiries are unsigned here; a clock before 1970 reads as 0, as before.
fn unix_now() -> u64 {
    hostward_agent_core::util::unix_now().max(0) as u64
}

fn ensure_script(table: &str, ports: &[u16]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let dport = if ports.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!("tcp dport {{ {} }} ", list.join(", "))
    };
    let mut s = String::new();
    // `add` leaves existing objects (and the sets' elements) alone; only our chain's rules are
    // replaced, in the same transaction, so no packet sees the chain empty.
    let _ = writeln!(s, "add table inet {table}");
    let _ = writeln!(s, "add counter inet {table} {COUNTER}");
    let _ = writeln!(
        s,
        "add set inet {table} {SET4} {{ type ipv4_addr; flags timeout; }}"
    );
    let _ = writeln!(
        s,
        "add set inet {table} {SET6} {{ type ipv6_addr; flags timeout; }}"
    );
    let _ = writeln!(
        s,
        "add chain inet {table} {CHAIN} {{ type filter hook input priority {PRIORITY}; policy accept; }}"
    );
    let _ = writeln!(s, "flush chain inet {table} {CHAIN}");
    for (family, set) in [("ip", SET4), ("ip6", SET6)] {
        let _ = writeln!(
            s,
            "add rule inet {table} {CHAIN} {family} saddr @{set} {dport}counter name \"{COUNTER}\" drop"
        );
    }
    s
}

fn block_script(table: &str, addr: IpAddr, ms: u64, refresh_by_delete: bool) -> String {
    let set = set_of(addr);
    let mut s = String::new();
    if refresh_by_delete {
        // `add` first so the `delete` cannot fail if the element expired meanwhile.
        let _ = writeln!(s, "add element inet {table} {set} {{ {addr} timeout 1s }}");
        let _ = writeln!(s, "delete element inet {table} {set} {{ {addr} }}");
    }
    let _ = writeln!(
        s,
        "add element inet {table} {set} {{ {addr} timeout {ms}ms }}"
    );
    s
}

fn unblock_script(table: &str, addr: IpAddr) -> String {
    let set = set_of(addr);
    // nft 1.0 has no `destroy`: adding first makes the delete succeed whether or not it was there.
    format!(
        "add element inet {table} {set} {{ {addr} timeout 1s }}\n\
         delete element inet {table} {set} {{ {addr} }}\n"
    )
}

fn sync_script(table: &str, wanted: &BTreeMap<IpAddr, u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "flush set inet {table} {SET4}");
    let _ = writeln!(s, "flush set inet {table} {SET6}");
    for set in [SET4, SET6] {
        let elems: Vec<String> = wanted
            .iter()
            .filter(|(a, _)| set_of(**a) == set)
            .map(|(a, ms)| format!("{a} timeout {ms}ms"))
            .collect();
        for chunk in elems.chunks(ELEMENTS_PER_COMMAND) {
            let _ = writeln!(
                s,
                "add element inet {table} {set} {{ {} }}",
                chunk.join(", ")
            );
        }
    }
    s
}

fn remove_script(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

/// The top level of `nft -j list …`: `{"nftables": [{"metainfo": …}, {"set": …}, …]}`.
#[derive(Deserialize)]
struct Listing {
    nftables: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct SetJson {
    name: String,
    #[serde(default)]
    elem: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ElemJson {
    val: serde_json::Value,
    timeout: Option<u64>,
    expires: Option<u64>,
}

#[derive(Deserialize)]
struct CounterJson {
    name: String,
    packets: u64,
    bytes: u64,
}

fn objects<'a, T: Deserialize<'a>>(
    listing: &'a Listing,
    kind: &str,
) -> impl Iterator<Item = Result<T, Error>> + 'a {
    let kind = kind.to_owned();
    listing.nftables.iter().filter_map(move |o| {
        o.get(&kind)
            .map(|v| T::deserialize(v).map_err(|e| Error::Parse(format!("{kind} object: {e}"))))
    })
}

fn parse_listing(json: &str) -> Result<Listing, Error> {
    serde_json::from_str(json).map_err(|e| Error::Parse(e.to_string()))
}

/// An element as nft lists it; times in whole seconds.
struct Element {
    addr: IpAddr,
    timeout: Option<u64>,
    expires: Option<u64>,
}

/// Elements of the named sets. An element is either a bare value (no timeout) or
/// `{"elem": {"val", "timeout", "expires"}}`.
fn set_elements(json: &str, sets: &[&str]) -> Result<Vec<Element>, Error> {
    let listing = parse_listing(json)?;
    let mut out = Vec::new();
    for set in objects::<SetJson>(&listing, "set") {
        let set = set?;
        if !sets.contains(&set.name.as_str()) {
            continue;
        }
        for e in &set.elem {
            let (val, timeout, expires) = match e.get("elem") {
                Some(inner) => {
                    let el = ElemJson::deserialize(inner)
                        .map_err(|err| Error::Parse(format!("set {} element: {err}", set.name)))?;
                    (el.val, el.timeout, el.expires)
                }
                None => (e.clone(), None, None),
            };
            let addr = val
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .ok_or_else(|| {
                    Error::Parse(format!("set {}: element {val} is not an address", set.name))
                })?;
            out.push(Element {
                addr,
                timeout,
                expires,
            });
        }
    }
    Ok(out)
}

fn parse_blocked(json: &str, sets: &[&str]) -> Result<Vec<Blocked>, Error> {
    Ok(set_elements(json, sets)?
        .into_iter()
        .map(|e| Blocked {
            addr: e.addr,
            expires_in: e.expires.map(Duration::from_secs),
        })
        .collect())
}

fn parse_set_timeouts(json: &str, set: &str) -> Result<Vec<(IpAddr, Option<u64>)>, Error> {
    Ok(set_elements(json, &[set])?
        .into_iter()
        .map(|e| (e.addr, e.timeout))
        .collect())
}

fn parse_counter(json: &str, name: &str) -> Result<Dropped, Error> {
    let listing = parse_listing(json)?;
    for c in objects::<CounterJson>(&listing, "counter") {
        let c = c?;
        if c.name == name {
            return Ok(Dropped {
                packets: c.packets,
                bytes: c.bytes,
            });
        }
    }
    Err(Error::Parse(format!("no counter named {name}")))
}

fn still_valid(state: &BTreeMap<IpAddr, u64>, now: u64) -> Vec<(IpAddr, Duration)> {
    state
        .iter()
        .filter(|&(_, &exp)| exp > now)
        .map(|(&a, &exp)| (a, Duration::from_secs(exp - now)))
        .collect()
}

fn load_state(path: &Path) -> Result<BTreeMap<IpAddr, u64>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(Error::State {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Write-then-rename so a crash leaves the old file or the new one, never half of one.
fn save_state(path: &Path, state: &BTreeMap<IpAddr, u64>) -> std::io::Result<()> {
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    // No fsync: it doubled block() (~5 ms on ext4) and the file is a fallback; after a power
    // loss the center's list restores the blocks through `sync`.
    hostward_agent_core::util::replace_file(path, &json, 0o600, false)
}

pub mod ssh_whitelist;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod netns_tests;
