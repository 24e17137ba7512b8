//! Host inventory on the wire: what the agent's collectors find, and how it travels.
//!
//! The agent sends one [`Inventory`] record per kind and cycle, and only when something changed.
//! The first record of a kind is a full snapshot; after that the agent sends diffs (items added
//! or changed, keys removed) against the state it last sent. Each record names the digest of the
//! state it applies to (`base`) and of the state it produces (`digest`), so the center spots a
//! diff that does not fit what it holds (a lost record, a restored database) and asks for a full
//! snapshot instead of silently drifting. A record too big for one frame is split into parts
//! sent in order; the center applies a snapshot's removals only with its last part.
//!
//! No password hash, private key or file content leaves the host: only metadata and digests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryKind {
    Accounts,
    Ports,
    Processes,
    Software,
    Autostart,
    KernelModules,
    Middleware,
}

impl InventoryKind {
    pub const ALL: [InventoryKind; 7] = [
        InventoryKind::Accounts,
        InventoryKind::Ports,
        InventoryKind::Processes,
        InventoryKind::Software,
        InventoryKind::Autostart,
        InventoryKind::KernelModules,
        InventoryKind::Middleware,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InventoryKind::Accounts => "accounts",
            InventoryKind::Ports => "ports",
            InventoryKind::Processes => "processes",
            InventoryKind::Software => "software",
            InventoryKind::Autostart => "autostart",
            InventoryKind::KernelModules => "kernel_modules",
            InventoryKind::Middleware => "middleware",
        }
    }

    pub fn parse(s: &str) -> Option<InventoryKind> {
        InventoryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Collection interval of the reference product: ports every 30 s; accounts, processes and
    /// auto-start hourly; software daily; middleware and web weekly.
    pub fn default_interval_secs(self) -> u64 {
        match self {
            InventoryKind::Ports => 30,
            InventoryKind::Accounts | InventoryKind::Processes | InventoryKind::Autostart => 3600,
            InventoryKind::KernelModules => 3600,
            InventoryKind::Software => 86_400,
            InventoryKind::Middleware => 7 * 86_400,
        }
    }

    /// Whether the center keeps a change history for this kind. Processes come and go too often
    /// for a history to mean anything; middleware is derived from the other kinds.
    pub fn has_history(self) -> bool {
        !matches!(self, InventoryKind::Processes | InventoryKind::Middleware)
    }
}

impl std::fmt::Display for InventoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One inventory record (durable, acked like every record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Unix seconds when the collector ran.
    pub collected_at: i64,
    /// `true`: the items (over all parts) are the whole state; anything else the center holds
    /// for this kind is gone. `false`: a diff against `base`.
    pub full: bool,
    /// Digest of the state this diff applies to; empty for a full snapshot.
    #[serde(default)]
    pub base: String,
    /// Digest of the state after this record (all its parts) is applied.
    pub digest: String,
    /// 0-based part number and part count of a record split to fit the frame limit.
    #[serde(default)]
    pub part: u32,
    #[serde(default = "one")]
    pub parts: u32,
    /// Items added or changed (all items of this part for a full snapshot).
    pub items: Items,
    /// Keys of items gone since `base` (diffs only).
    #[serde(default)]
    pub removed: Vec<String>,
    /// Problems the collector met (unreadable or malformed files); it still reports what it
    /// could read. Sent with part 0; an empty list clears earlier problems.
    #[serde(default)]
    pub issues: Vec<CollectIssue>,
}

fn one() -> u32 {
    1
}

impl Inventory {
    pub fn kind(&self) -> InventoryKind {
        self.items.kind()
    }
}

/// Items of one kind. Serialised as `{"kind": "software", "items": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "list", rename_all = "snake_case")]
pub enum Items {
    Accounts(Vec<Account>),
    Ports(Vec<Port>),
    Processes(Vec<Process>),
    Software(Vec<Package>),
    Autostart(Vec<AutostartItem>),
    KernelModules(Vec<KernelModule>),
    Middleware(Vec<Middleware>),
}

/// What the center indexes an item by: `key` identifies it within its server and kind;
/// `name` and `value` are what fleet-wide views group and search by (software name and
/// version, port and program, account name and uid, ...).
pub trait Item: Serialize {
    fn key(&self) -> String;
    fn name(&self) -> String;
    fn value(&self) -> String;
}

/// One item flattened for storage: key, name, value and the item as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub name: String,
    pub value: String,
    pub json: String,
}

fn rows<T: Item>(items: &[T]) -> Vec<Row> {
    items
        .iter()
        .map(|i| Row {
            key: i.key(),
            name: i.name(),
            value: i.value(),
            json: serde_json::to_string(i).expect("inventory item serialises"),
        })
        .collect()
}

impl Items {
    pub fn empty(kind: InventoryKind) -> Items {
        match kind {
            InventoryKind::Accounts => Items::Accounts(vec![]),
            InventoryKind::Ports => Items::Ports(vec![]),
            InventoryKind::Processes => Items::Processes(vec![]),
            InventoryKind::Software => Items::Software(vec![]),
            InventoryKind::Autostart => Items::Autostart(vec![]),
            InventoryKind::KernelModules => Items::KernelModules(vec![]),
            InventoryKind::Middleware => Items::Middleware(vec![]),
        }
    }

    pub fn kind(&self) -> InventoryKind {
        match self {
            Items::Accounts(_) => InventoryKind::Accounts,
            Items::Ports(_) => InventoryKind::Ports,
            Items::Processes(_) => InventoryKind::Processes,
            Items::Software(_) => InventoryKind::Software,
            Items::Autostart(_) => InventoryKind::Autostart,
            Items::KernelModules(_) => InventoryKind::KernelModules,
            Items::Middleware(_) => InventoryKind::Middleware,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Items::Accounts(v) => v.len(),
            Items::Ports(v) => v.len(),
            Items::Processes(v) => v.len(),
            Items::Software(v) => v.len(),
            Items::Autostart(v) => v.len(),
            Items::KernelModules(v) => v.len(),
            Items::Middleware(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rows(&self) -> Vec<Row> {
        match self {
            Items::Accounts(v) => rows(v),
            Items::Ports(v) => rows(v),
            Items::Processes(v) => rows(v),
            Items::Software(v) => rows(v),
            Items::Autostart(v) => rows(v),
            Items::KernelModules(v) => rows(v),
            Items::Middleware(v) => rows(v),
        }
    }

    /// Keeps the items whose index (in `rows()` order) satisfies `keep`.
    pub fn retain_indexed(&mut self, keep: impl Fn(usize) -> bool) {
        fn go<T>(v: &mut Vec<T>, keep: &dyn Fn(usize) -> bool) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep(i - 1)
            });
        }
        match self {
            Items::Accounts(v) => go(v, &keep),
            Items::Ports(v) => go(v, &keep),
            Items::Processes(v) => go(v, &keep),
            Items::Software(v) => go(v, &keep),
            Items::Autostart(v) => go(v, &keep),
            Items::KernelModules(v) => go(v, &keep),
            Items::Middleware(v) => go(v, &keep),
        }
    }
}

/// A file the collector could not read or parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectIssue {
    /// Path as seen on the host (under the collector's root).
    pub file: String,
    /// 1-based line, when the problem is on one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
}

impl std::fmt::Display for CollectIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{} line {}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordState {
    /// A usable password hash is set.
    Set,
    /// The password field is empty: login without a password.
    Empty,
    /// Locked (`!` or `*` prefix) or no password ever set.
    Locked,
    /// No shadow entry for the account.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups plus the primary group's name.
    pub groups: Vec<String>,
    pub home: String,
    pub shell: String,
    /// The shell lets the account log in (not nologin/false) and the password is not locked
    /// or the account has authorized keys.
    pub login_allowed: bool,
    /// Has root's powers: uid 0, membership of sudo/wheel/admin, or a sudoers grant.
    pub root_equivalent: bool,
    /// Why root-equivalent: `uid0`, `group:sudo`, `sudoers:/etc/sudoers.d/x`.
    #[serde(default)]
    pub root_reasons: Vec<String>,
    pub password: PasswordState,
    /// Last password change, Unix seconds (shadow field 3), when known.
    #[serde(default)]
    pub password_changed: Option<i64>,
    /// When the password expires, Unix seconds (last change + max days), when it does.
    #[serde(default)]
    pub password_expires: Option<i64>,
}

impl Item for Account {
    fn key(&self) -> String {
        self.name.clone()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn value(&self) -> String {
        self.uid.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortRisk {
    /// On the shipped dangerous-ports list (and bound where the list says it is dangerous).
    Dangerous,
    Unknown,
    /// The policy says to ignore this port.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `v4` or `v6`.
    pub family: String,
    pub address: String,
    pub port: u16,
    /// `listen` for TCP, `unconn`/`estab` for UDP sockets bound to a port.
    pub state: String,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Executable of the owning process.
    #[serde(default)]
    pub program: Option<String>,
    pub risk: PortRisk,
    /// Why dangerous, e.g. "Redis without auth is commonly exposed".
    #[serde(default)]
    pub risk_reason: Option<String>,
}

impl Item for Port {
    fn key(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.protocol, self.family, self.address, self.port
        )
    }
    fn name(&self) -> String {
        format!("{}/{}", self.protocol, self.port)
    }
    fn value(&self) -> String {
        self.program.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// Executable path; ` (deleted)` suffix kept when the file is gone.
    pub exe: String,
    /// Arguments joined by spaces, truncated at 4 KiB.
    pub cmdline: String,
    pub user: String,
    pub uid: u32,
    /// Unix seconds.
    pub start_time: i64,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Permission bits of the executable, octal, e.g. `0755`.
    #[serde(default)]
    pub exe_mode: Option<String>,
    /// Owner uid of the executable.
    #[serde(default)]
    pub exe_owner: Option<u32>,
}

impl Item for Process {
    fn key(&self) -> String {
        format!("{}@{}", self.pid, self.start_time)
    }
    fn name(&self) -> String {
        self.exe.clone()
    }
    fn value(&self) -> String {
        self.sha256.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// `dpkg` or `rpm`.
    pub manager: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Source package (dpkg `Source`, rpm source RPM), when it differs from the name.
    #[serde(default)]
    pub source: Option<String>,
    /// Version of the source package when dpkg names one that differs from the binary's
    /// (`Source: util-linux (2.38.1-5)` for `bsdutils 1:2.38.1-5+b1`). Security trackers give
    /// fixed versions of the source, so this is what they are compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// dpkg `Maintainer`/origin or rpm `Vendor`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Unix seconds, when known.
    #[serde(default)]
    pub install_time: Option<i64>,
}

impl Item for Package {
    fn key(&self) -> String {
        format!("{}:{}", self.name, self.arch)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn value(&self) -> String {
        self.version.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutostartItem {
    /// `systemd`, `cron`, `rc_local`, `init_d`, `ld_so_preload`, `profile_d`, `shell_rc`,
    /// `authorized_keys`.
    pub category: String,
    pub path: String,
    /// User it runs as or belongs to.
    pub user: String,
    /// What starts: a unit's ExecStart, a crontab line, a preloaded library, a key's type,
    /// fingerprint and options.
    pub entry: String,
    /// SHA-256 of the entry for entries within a file (crontab lines, keys), else of the file.
    pub sha256: String,
}

impl Item for AutostartItem {
    fn key(&self) -> String {
        // A file holds several entries (crontab lines, keys); the entry's hash tells them apart
        // and stays the same when lines move.
        format!("{}:{}:{}", self.category, self.path, self.entry_id())
    }
    fn name(&self) -> String {
        self.path.clone()
    }
    fn value(&self) -> String {
        self.category.clone()
    }
}

impl AutostartItem {
    fn entry_id(&self) -> &str {
        match self.category.as_str() {
            "cron" | "authorized_keys" | "ld_so_preload" => &self.sha256,
            _ => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelModule {
    pub name: String,
    pub size: u64,
    #[serde(default)]
    pub used_by: Vec<String>,
    /// `Live`, `Loading`, `Unloading`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Item for KernelModule {
    fn key(&self) -> String {
        self.name.clone()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn value(&self) -> String {
        self.path.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Middleware {
    /// `nginx`, `apache`, `tomcat`, `mysql`, `mariadb`, `postgresql`, `redis`, `mongodb`,
    /// `php-fpm`, `docker`.
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    /// Package it was installed from, when known.
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub config_path: Option<String>,
    pub running: bool,
    #[serde(default)]
    pub pids: Vec<u32>,
    #[serde(default)]
    pub listening_ports: Vec<u16>,
    /// Web sites served (nginx/apache).
    #[serde(default)]
    pub sites: Vec<WebSite>,
}

impl Item for Middleware {
    fn key(&self) -> String {
        self.name.clone()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn value(&self) -> String {
        self.version.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSite {
    pub server_names: Vec<String>,
    #[serde(default)]
    pub root: Option<String>,
    pub ports: Vec<u16>,
    /// Config file that declares it.
    pub config_file: String,
}

/// Parameters of the `collect_inventory` task: which kinds (empty = all) and whether to send
/// full snapshots instead of diffs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectNow {
    pub kinds: Vec<InventoryKind>,
    pub full: bool,
}

/// Kind of the task that makes an agent collect its inventory at once.
pub const COLLECT_INVENTORY_TASK: &str = "collect_inventory";

/// Inventory schedule and port exceptions, pushed by the center as part of the agent config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryPolicy {
    /// Seconds between runs per kind; missing kinds use [`InventoryKind::default_interval_secs`].
    /// 0 turns a kind off.
    pub interval_secs: BTreeMap<InventoryKind, u64>,
    /// Ports labelled `ignored` instead of `dangerous`/`unknown`.
    pub ignored_ports: Vec<u16>,
}

impl crate::Section for InventoryPolicy {
    const KEY: &'static str = "inventory";

    /// Without asset discovery only software is collected: vulnerability matching, which
    /// every edition has, needs it.
    fn gate(&mut self, edition: crate::Edition) {
        if !edition.has(crate::Feature::AssetDiscovery) {
            for kind in InventoryKind::ALL {
                if kind != InventoryKind::Software {
                    self.interval_secs.insert(kind, 0);
                }
            }
        }
    }
}

impl InventoryPolicy {
    pub fn interval(&self, kind: InventoryKind) -> u64 {
        self.interval_secs
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_interval_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_carry_their_kind_on_the_wire() {
        let inv = Inventory {
            collected_at: 1,
            full: true,
            base: String::new(),
            digest: "d".into(),
            part: 0,
            parts: 1,
            items: Items::Software(vec![Package {
                manager: "dpkg".into(),
                name: "openssl".into(),
                version: "3.0.11-1~deb12u2".into(),
                arch: "amd64".into(),
                source: None,
                source_version: None,
                vendor: None,
                install_time: None,
            }]),
            removed: vec![],
            issues: vec![],
        };
        let text = serde_json::to_string(&inv).unwrap();
        assert!(
            text.contains(r#""items":{"kind":"software","list":[{"#),
            "{text}"
        );
        let back: Inventory = serde_json::from_str(&text).unwrap();
        assert_eq!(back, inv);
        assert_eq!(back.kind(), InventoryKind::Software);
        let rows = back.items.rows();
        assert_eq!(
            (
                rows[0].key.as_str(),
                rows[0].name.as_str(),
                rows[0].value.as_str()
            ),
            ("openssl:amd64", "openssl", "3.0.11-1~deb12u2")
        );
    }

    #[test]
    fn kinds_parse_back_and_default_intervals_follow_the_reference_product() {
        for k in InventoryKind::ALL {
            assert_eq!(InventoryKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(InventoryKind::parse("secrets"), None);
        let p = InventoryPolicy::default();
        assert_eq!(p.interval(InventoryKind::Ports), 30);
        assert_eq!(p.interval(InventoryKind::Software), 86_400);
        let p: InventoryPolicy = serde_json::from_str(r#"{"interval_secs":{"ports":2}}"#).unwrap();
        assert_eq!(p.interval(InventoryKind::Ports), 2);
        assert_eq!(p.interval(InventoryKind::Accounts), 3600);
    }

    #[test]
    fn crontab_lines_in_one_file_are_distinct_items() {
        let line = |e: &str, h: &str| AutostartItem {
            category: "cron".into(),
            path: "/etc/crontab".into(),
            user: "root".into(),
            entry: e.into(),
            sha256: h.into(),
        };
        assert_ne!(line("a", "h1").key(), line("b", "h2").key());
        let unit = |h: &str| AutostartItem {
            category: "systemd".into(),
            path: "/etc/systemd/system/x.service".into(),
            user: "root".into(),
            entry: "/usr/bin/x".into(),
            sha256: h.into(),
        };
        assert_eq!(
            unit("h1").key(),
            unit("h2").key(),
            "an edited unit is a change"
        );
    }

    #[test]
    fn retain_indexed_keeps_the_chosen_items() {
        let mut items = Items::KernelModules(
            ["a", "b", "c"]
                .iter()
                .map(|n| KernelModule {
                    name: n.to_string(),
                    size: 1,
                    used_by: vec![],
                    state: "Live".into(),
                    path: None,
                    sha256: None,
                })
                .collect(),
        );
        items.retain_indexed(|i| i != 1);
        let keys: Vec<String> = items.rows().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["a", "c"]);
    }
}
