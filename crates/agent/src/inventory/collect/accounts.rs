//! Local accounts: `/etc/passwd` joined with `/etc/shadow` (password state and ageing only, never
//! the hash), `/etc/group` memberships and sudoers grants, to tell who can log in and who holds
//! root's powers under another name.

use std::collections::{BTreeSet, HashMap, HashSet};

use hostward_proto::inventory::{Account, CollectIssue, Items, PasswordState};

use super::{Collected, Ctx};

const PASSWD: &str = "/etc/passwd";
const SHADOW: &str = "/etc/shadow";
const GROUP: &str = "/etc/group";
const SUDOERS: &str = "/etc/sudoers";
const SUDOERS_D: &str = "/etc/sudoers.d";

/// Groups the stock sudoers files of Debian, Ubuntu and the RHEL family grant full sudo to.
const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// shadow(5): a maximum age of 99999 days is how tools spell "never expires".
const NEVER_EXPIRES: i64 = 99_999;

const DAY: i64 = 86_400;

pub fn collect(ctx: &Ctx) -> Collected {
    let mut issues = Vec::new();
    let users = ctx
        .read_text(PASSWD, &mut issues)
        .map(|t| parse_passwd(ctx, &t, &mut issues))
        .unwrap_or_default();
    let shadow = ctx
        .read_text(SHADOW, &mut issues)
        .map(|t| parse_shadow(ctx, &t, &mut issues))
        .unwrap_or_default();
    let groups = ctx
        .read_text(GROUP, &mut issues)
        .map(|t| parse_group(ctx, &t, &mut issues))
        .unwrap_or_default();
    let grants = sudoers_grants(ctx, &mut issues);

    let accounts = users
        .into_iter()
        .map(|u| account(ctx, u, &shadow, &groups, &grants))
        .collect();
    Collected {
        items: Items::Accounts(accounts),
        issues,
    }
}

/// uid → user name from `/etc/passwd`, for collectors that report who owns something. Bad lines
/// are skipped here: the accounts collector reports them.
pub fn user_names(ctx: &Ctx) -> HashMap<u32, String> {
    let mut ignored = Vec::new();
    let mut names = HashMap::new();
    if let Some(text) = ctx.read_text(PASSWD, &mut ignored) {
        for u in parse_passwd(ctx, &text, &mut ignored) {
            // getpwuid(3) returns the first entry of a shared uid.
            names.entry(u.uid).or_insert(u.name);
        }
    }
    names
}

fn account(
    ctx: &Ctx,
    u: PasswdEntry,
    shadow: &HashMap<String, Shadow>,
    groups: &[Group],
    grants: &[Grant],
) -> Account {
    let (password, password_changed, password_expires) = match shadow.get(&u.name) {
        Some(s) => (s.state, s.changed, s.expires),
        // Without shadow the hash lives in passwd itself; "x" points at a shadow entry that is
        // not there.
        None if u.password != "x" => (password_state(&u.password), None, None),
        None => (PasswordState::Unknown, None, None),
    };

    let mut member_of = BTreeSet::new();
    if let Some(g) = groups.iter().find(|g| g.gid == u.gid) {
        member_of.insert(g.name.clone());
    }
    for g in groups.iter().filter(|g| g.members.contains(&u.name)) {
        member_of.insert(g.name.clone());
    }
    let member_of: Vec<String> = member_of.into_iter().collect();

    let mut root_reasons = Vec::new();
    if u.uid == 0 {
        root_reasons.push("uid0".to_string());
    }
    for g in ADMIN_GROUPS {
        if member_of.iter().any(|m| m == g) {
            root_reasons.push(format!("group:{g}"));
        }
    }
    for grant in grants {
        let reason = format!("sudoers:{}", grant.file);
        if grant.who.matches(&u, &member_of, groups) && !root_reasons.contains(&reason) {
            root_reasons.push(reason);
        }
    }

    let login_allowed = shell_allows_login(&u.shell)
        && (matches!(password, PasswordState::Set | PasswordState::Empty)
            || has_authorized_keys(ctx, &u.home));

    Account {
        name: u.name,
        uid: u.uid,
        gid: u.gid,
        groups: member_of,
        home: u.home,
        shell: u.shell,
        login_allowed,
        root_equivalent: !root_reasons.is_empty(),
        root_reasons,
        password,
        password_changed,
        password_expires,
    }
}

fn shell_allows_login(shell: &str) -> bool {
    // An empty shell means /bin/sh to login(1) and sshd.
    !(shell.ends_with("/nologin") || shell.ends_with("/false"))
}

/// Whether sshd's default key files hold anything. Only metadata is read: the files belong to
/// the user, who could make them a FIFO that blocks a reader forever.
fn has_authorized_keys(ctx: &Ctx, home: &str) -> bool {
    ["authorized_keys", "authorized_keys2"].iter().any(|f| {
        std::fs::metadata(ctx.path(home).join(".ssh").join(f))
            .is_ok_and(|m| m.is_file() && m.len() > 0)
    })
}

fn password_state(field: &str) -> PasswordState {
    if field.is_empty() {
        PasswordState::Empty
    } else if field.starts_with(['!', '*']) {
        PasswordState::Locked
    } else {
        PasswordState::Set
    }
}

pub(crate) fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Lines that carry no entry: blank, comments (which nss_files skips) and NIS `+`/`-` compat
/// entries, which name accounts held elsewhere.
pub(crate) fn skip_line(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with(['#', '+', '-'])
}

/// User and group names as the shadow tools accept them; damaged bytes decode to U+FFFD.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == char::REPLACEMENT_CHARACTER)
}

struct PasswdEntry {
    name: String,
    password: String,
    uid: u32,
    gid: u32,
    home: String,
    shell: String,
}

// Messages never quote the line: shadow lines hold hashes, and passwd ones are treated alike.
fn parse_passwd(ctx: &Ctx, text: &str, issues: &mut Vec<CollectIssue>) -> Vec<PasswdEntry> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if skip_line(line) {
            continue;
        }
        let n = Some(line_no(i));
        let f: Vec<&str> = line.split(':').collect();
        let &[name, password, uid, gid, _gecos, home, shell] = f.as_slice() else {
            let msg = format!("expected 7 fields, found {}", f.len());
            issues.push(ctx.issue(PASSWD, n, msg));
            continue;
        };
        if !valid_name(name) {
            issues.push(ctx.issue(PASSWD, n, "invalid user name"));
            continue;
        }
        let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) else {
            let msg = format!("user {name}: uid and gid must be numbers");
            issues.push(ctx.issue(PASSWD, n, msg));
            continue;
        };
        if !seen.insert(name.to_string()) {
            // getpwnam(3) finds the first entry; a later one is shadowed.
            let msg = format!("user {name} is listed again; the first entry counts");
            issues.push(ctx.issue(PASSWD, n, msg));
            continue;
        }
        out.push(PasswdEntry {
            name: name.to_string(),
            password: password.to_string(),
            uid,
            gid,
            home: home.to_string(),
            shell: shell.to_string(),
        });
    }
    out
}

struct Shadow {
    state: PasswordState,
    changed: Option<i64>,
    expires: Option<i64>,
}

fn parse_shadow(ctx: &Ctx, text: &str, issues: &mut Vec<CollectIssue>) -> HashMap<String, Shadow> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if skip_line(line) {
            continue;
        }
        let n = Some(line_no(i));
        let f: Vec<&str> = line.split(':').collect();
        let &[
            name,
            hash,
            last,
            _min,
            max,
            _warn,
            _inactive,
            _expire,
            _reserved,
        ] = f.as_slice()
        else {
            let msg = format!("expected 9 fields, found {}", f.len());
            issues.push(ctx.issue(SHADOW, n, msg));
            continue;
        };
        if !valid_name(name) {
            issues.push(ctx.issue(SHADOW, n, "invalid user name"));
            continue;
        }
        let mut days = |field: &str, what: &str| -> Option<i64> {
            if field.is_empty() {
                return None;
            }
            let parsed = field.parse::<i64>().ok();
            if parsed.is_none() {
                let msg = format!("user {name}: {what} is not a number of days");
                issues.push(ctx.issue(SHADOW, n, msg));
            }
            parsed
        };
        // Day 0 means "change at next login", not 1970; negative values mean "not set".
        let last = days(last, "last change").filter(|&d| d > 0);
        let max = days(max, "maximum age").filter(|&d| d >= 0 && d != NEVER_EXPIRES);
        let changed = last.and_then(|l| l.checked_mul(DAY));
        let expires = last
            .zip(max)
            .and_then(|(l, m)| l.checked_add(m)?.checked_mul(DAY));
        // Like getspnam(3), the first entry of a name counts.
        out.entry(name.to_string()).or_insert(Shadow {
            state: password_state(hash),
            changed,
            expires,
        });
    }
    out
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_group(ctx: &Ctx, text: &str, issues: &mut Vec<CollectIssue>) -> Vec<Group> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skip_line(line) {
            continue;
        }
        let n = Some(line_no(i));
        let f: Vec<&str> = line.split(':').collect();
        let &[name, _password, gid, members] = f.as_slice() else {
            let msg = format!("expected 4 fields, found {}", f.len());
            issues.push(ctx.issue(GROUP, n, msg));
            continue;
        };
        if !valid_name(name) {
            issues.push(ctx.issue(GROUP, n, "invalid group name"));
            continue;
        }
        let Ok(gid) = gid.parse() else {
            let msg = format!("group {name}: gid must be a number");
            issues.push(ctx.issue(GROUP, n, msg));
            continue;
        };
        out.push(Group {
            name: name.to_string(),
            gid,
            members: members
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    out
}

/// Who a sudoers user specification names.
#[derive(Debug)]
enum Who {
    All,
    User(String),
    Uid(u32),
    Group(String),
    Gid(u32),
}

impl Who {
    fn matches(&self, u: &PasswdEntry, member_of: &[String], groups: &[Group]) -> bool {
        match self {
            Who::All => true,
            Who::User(name) => *name == u.name,
            Who::Uid(uid) => *uid == u.uid,
            Who::Group(name) => member_of.contains(name),
            Who::Gid(gid) => {
                *gid == u.gid
                    || groups
                        .iter()
                        .any(|g| g.gid == *gid && member_of.contains(&g.name))
            }
        }
    }
}

/// A sudoers line that lets `who` run every command as root.
#[derive(Debug)]
struct Grant {
    who: Who,
    file: String,
}

/// Grants of `/etc/sudoers` and, when it includes them as sudo does, `/etc/sudoers.d`.
fn sudoers_grants(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Vec<Grant> {
    let mut files = vec![SUDOERS.to_string()];
    let mut included_dir = false;
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let mut specs: Vec<(Vec<String>, String)> = Vec::new();
    let mut next = 0;
    while let Some(file) = files.get(next).cloned() {
        next += 1;
        let Some(text) = ctx.read_text(&file, issues) else {
            continue;
        };
        for (n, line) in logical_lines(&text) {
            match parse_sudoers_line(&line) {
                SudoersLine::Nothing => {}
                SudoersLine::IncludeDir(dir) if dir == SUDOERS_D => {
                    if !included_dir {
                        included_dir = true;
                        files.extend(sudoers_d_files(ctx, issues));
                    }
                }
                SudoersLine::IncludeDir(target) | SudoersLine::Include(target) => {
                    let msg = format!("include of {target} is not followed");
                    issues.push(ctx.issue(&file, Some(n), msg));
                }
                SudoersLine::UserAliases(defs) => {
                    for (name, members) in defs {
                        aliases.entry(name).or_default().extend(members);
                    }
                }
                SudoersLine::Spec {
                    users,
                    grants_all: true,
                } => specs.push((users, file.clone())),
                SudoersLine::Spec { .. } => {}
                SudoersLine::Malformed => {
                    let msg = "not a Defaults, alias or user specification line";
                    issues.push(ctx.issue(&file, Some(n), msg));
                }
            }
        }
    }
    // Aliases may be defined after their use, so they are expanded once all files are read.
    let mut grants = Vec::new();
    for (users, file) in specs {
        for u in users {
            for who in expand(&u, &aliases, 0) {
                grants.push(Grant {
                    who,
                    file: file.clone(),
                });
            }
        }
    }
    grants
}

/// The files sudo reads from `/etc/sudoers.d`: regular files in name order, skipping editor
/// backups (`~`) and package manager leftovers (anything with a dot).
fn sudoers_d_files(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Vec<String> {
    let entries = match std::fs::read_dir(ctx.path(SUDOERS_D)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            issues.push(ctx.issue(SUDOERS_D, None, format!("cannot list: {e}")));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().metadata().is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.ends_with('~') && !n.contains('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| format!("{SUDOERS_D}/{n}"))
        .collect()
}

/// Lines joined across trailing backslashes, with the 1-based number of their first line.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut current: Option<(u32, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (start, mut joined) = current.take().unwrap_or((line_no(i), String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                current = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                out.push((start, joined));
            }
        }
    }
    out.extend(current);
    out
}

#[derive(Debug)]
enum SudoersLine {
    Nothing,
    Include(String),
    IncludeDir(String),
    UserAliases(Vec<(String, Vec<String>)>),
    Spec {
        users: Vec<String>,
        grants_all: bool,
    },
    Malformed,
}

fn parse_sudoers_line(line: &str) -> SudoersLine {
    let trimmed = line.trim();
    for (directive, dir) in [
        ("#includedir", true),
        ("@includedir", true),
        ("#include", false),
        ("@include", false),
    ] {
        if let Some(rest) = trimmed.strip_prefix(directive)
            && rest.starts_with([' ', '\t'])
        {
            let target = rest.trim().trim_end_matches('/');
            // Since sudo 1.9.1 a relative path is relative to the including file, in /etc.
            let target = match target.starts_with('/') {
                true => target.to_string(),
                false => format!("/etc/{target}"),
            };
            return match dir {
                true => SudoersLine::IncludeDir(target),
                false => SudoersLine::Include(target),
            };
        }
    }
    let line = strip_comment(trimmed).trim();
    let Some(first) = line.split_whitespace().next() else {
        return SudoersLine::Nothing;
    };
    if first.starts_with("Defaults") {
        return SudoersLine::Nothing;
    }
    match first {
        "User_Alias" => return SudoersLine::UserAliases(user_aliases(&line[first.len()..])),
        "Runas_Alias" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias" => return SudoersLine::Nothing,
        _ => {}
    }
    let Some((left, right)) = line.split_once('=') else {
        return SudoersLine::Malformed;
    };
    // The user list ends where the host list begins: the first word not joined by a comma.
    let mut users = Vec::new();
    for piece in left.split(',') {
        let mut words = piece.split_whitespace();
        users.extend(words.next().map(String::from));
        if words.next().is_some() {
            break;
        }
    }
    SudoersLine::Spec {
        users,
        grants_all: grants_all_as_root(right),
    }
}

/// Cuts a `#` comment; `#` followed by a digit is a uid (`#0`, `%#10`), not a comment.
fn strip_comment(line: &str) -> &str {
    for (i, c) in line.char_indices() {
        if c == '#' && !line[i + 1..].starts_with(|c: char| c.is_ascii_digit()) {
            return &line[..i];
        }
    }
    line
}

/// `ADMINS = alice, %ops : OTHERS = bob` → its names and members.
fn user_aliases(defs: &str) -> Vec<(String, Vec<String>)> {
    defs.split(':')
        .filter_map(|d| d.split_once('='))
        .map(|(name, members)| {
            let members = members
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            (name.trim().to_string(), members)
        })
        .collect()
}

/// Options that take a value before the command (`TIMEOUT=10 ALL`).
const SUDO_OPTIONS: [&str; 9] = [
    "ROLE",
    "TYPE",
    "CWD",
    "CHROOT",
    "TIMEOUT",
    "NOTBEFORE",
    "NOTAFTER",
    "APPARMOR_PROFILE",
    "PRIVS",
];

/// Whether a user specification's right-hand side (after the first `=`) lets its users run any
/// command as root: some command list entry is exactly `ALL` under a runas list that includes
/// root (or none, which defaults to root). Tags (`NOPASSWD:`), options and further
/// `host = commands` parts are looked through.
fn grants_all_as_root(spec: &str) -> bool {
    let mut runas_root = true;
    let mut after_option = false;
    let mut element = String::new();
    let mut chars = spec.chars();
    loop {
        let c = chars.next();
        match c {
            Some('(') => {
                let runas: String = chars.by_ref().take_while(|&c| c != ')').collect();
                runas_root = runas_includes_root(&runas);
                element.clear();
                after_option = false;
            }
            Some(',' | ':' | '=') | None => {
                let mut words = element.split_whitespace();
                if after_option {
                    words.next();
                }
                let words: Vec<&str> = words.collect();
                if runas_root && words == ["ALL"] {
                    return true;
                }
                after_option = false;
                if c == Some('=') {
                    match words.last() {
                        Some(w) if SUDO_OPTIONS.contains(w) => after_option = true,
                        // `host = commands` starts a new list with the default runas.
                        _ => runas_root = true,
                    }
                }
                element.clear();
                if c.is_none() {
                    return false;
                }
            }
            Some(c) => element.push(c),
        }
    }
}

fn runas_includes_root(runas: &str) -> bool {
    let (users, group) = match runas.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (runas, None),
    };
    if users.trim().is_empty() {
        // `()` is the default runas user; `(:group)` keeps the invoking user.
        return group.is_none();
    }
    users
        .split(',')
        .any(|u| matches!(u.trim(), "ALL" | "root" | "#0"))
}

/// The principals a user list entry names, through `User_Alias`es; negations are not grants.
fn expand(word: &str, aliases: &HashMap<String, Vec<String>>, depth: u32) -> Vec<Who> {
    if word.starts_with('!') || word.starts_with('+') || word.starts_with("%:") {
        return Vec::new();
    }
    if word == "ALL" {
        return vec![Who::All];
    }
    if let Some(members) = aliases.get(word) {
        // Aliases can name aliases; the bound stops a cycle.
        if depth >= 8 {
            return Vec::new();
        }
        return members
            .iter()
            .flat_map(|m| expand(m, aliases, depth + 1))
            .collect();
    }
    if let Some(gid) = word.strip_prefix("%#") {
        return gid.parse().map(Who::Gid).into_iter().collect();
    }
    if let Some(group) = word.strip_prefix('%') {
        return vec![Who::Group(group.to_string())];
    }
    if let Some(uid) = word.strip_prefix('#') {
        return uid.parse().map(Who::Uid).into_iter().collect();
    }
    vec![Who::User(word.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::collect::HashCache;
    use hostward_proto::inventory::InventoryPolicy;
    use std::path::Path;

    fn write(root: &Path, host_path: &str, bytes: impl AsRef<[u8]>) {
        let p = root.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn run(root: &Path) -> (Vec<Account>, Vec<CollectIssue>) {
        let c = collect(&Ctx {
            root,
            policy: &InventoryPolicy::default(),
            hashes: &HashCache::default(),
        });
        match c.items {
            Items::Accounts(a) => (a, c.issues),
            other => panic!("wrong kind: {other:?}"),
        }
    }

    fn get<'a>(accounts: &'a [Account], name: &str) -> &'a Account {
        accounts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no account {name} in {accounts:?}"))
    }

    const HASH: &str = "$6$salt$0123456789abcdefghijklmnopqrstuvwxyz";

    fn base_tree(root: &Path) {
        write(
            root,
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n\
             daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
             alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
             bob:x:1001:1001::/home/bob:/bin/zsh\n\
             svc:x:998:998::/var/lib/svc:/bin/false\n",
        );
        write(
            root,
            "/etc/shadow",
            format!(
                "root:{HASH}:19000:0:99999:7:::\n\
                 daemon:*:19000:0:99999:7:::\n\
                 alice:{HASH}:19000:0:90:7:::\n\
                 bob:!{HASH}:19500::::::\n\
                 svc:!!:0:0:90:7:::\n"
            ),
        );
        write(
            root,
            "/etc/group",
            "root:x:0:\n\
             daemon:x:1:\n\
             sudo:x:27:bob\n\
             alice:x:1000:\n\
             bob:x:1001:\n\
             users:x:100:alice,bob\n\
             docker:x:999: alice , \n\
             svc:x:998:\n",
        );
    }

    #[test]
    fn parses_passwd_shadow_and_group_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        base_tree(dir.path());
        let (accounts, issues) = run(dir.path());
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "alice", "bob", "svc"]);

        let alice = get(&accounts, "alice");
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.home, "/home/alice");
        assert_eq!(alice.shell, "/bin/bash");
        assert_eq!(alice.groups, ["alice", "docker", "users"]);
        assert_eq!(alice.password, PasswordState::Set);
        assert_eq!(alice.password_changed, Some(19000 * 86_400));
        assert_eq!(alice.password_expires, Some((19000 + 90) * 86_400));
        assert!(alice.login_allowed);
        assert!(!alice.root_equivalent);
        assert!(alice.root_reasons.is_empty());

        let root = get(&accounts, "root");
        assert_eq!(root.groups, ["root"]);
        assert_eq!(root.password_expires, None, "99999 days is never");
    }

    #[test]
    fn no_hash_leaves_the_host() {
        let dir = tempfile::tempdir().unwrap();
        base_tree(dir.path());
        write(
            dir.path(),
            "/etc/shadow",
            format!("root:{HASH}:19000:0:99999:7:::\nbroken:{HASH}:1\n"),
        );
        let (accounts, issues) = run(dir.path());
        let text = serde_json::to_string(&(accounts, &issues)).unwrap();
        assert!(!text.contains("$6$"), "{text}");
        assert_eq!(issues.len(), 1, "{issues:?}");
    }

    #[test]
    fn password_states_and_ageing() {
        let dir = tempfile::tempdir().unwrap();
        let users = [
            "set", "empty", "bang", "bangbang", "bangstar", "star", "lk", "gone",
        ];
        let passwd: String = users
            .iter()
            .enumerate()
            .map(|(i, u)| format!("{u}:x:{}:100::/home/{u}:/bin/sh\n", 2000 + i))
            .collect();
        write(dir.path(), "/etc/passwd", passwd);
        write(
            dir.path(),
            "/etc/shadow",
            format!(
                "set:{HASH}:20000:0:30:7:::\n\
                 empty::20000:0:99999:7:::\n\
                 bang:!{HASH}:20000::::::\n\
                 bangbang:!!:::::::\n\
                 bangstar:!*:0:0:30:7:::\n\
                 star:*:20000:0::7:::\n\
                 lk:*LK*:20000:0:-1:7:::\n"
            ),
        );
        let (accounts, issues) = run(dir.path());
        assert!(issues.is_empty(), "{issues:?}");
        let state = |n: &str| get(&accounts, n).password;
        assert_eq!(state("set"), PasswordState::Set);
        assert_eq!(state("empty"), PasswordState::Empty);
        for n in ["bang", "bangbang", "bangstar", "star", "lk"] {
            assert_eq!(state(n), PasswordState::Locked, "{n}");
        }
        assert_eq!(state("gone"), PasswordState::Unknown);

        let ageing = |n: &str| {
            let a = get(&accounts, n);
            (a.password_changed, a.password_expires)
        };
        assert_eq!(ageing("set"), (Some(20000 * 86_400), Some(20030 * 86_400)));
        assert_eq!(ageing("empty"), (Some(20000 * 86_400), None));
        assert_eq!(ageing("bang"), (Some(20000 * 86_400), None), "no maximum");
        assert_eq!(ageing("bangbang"), (None, None));
        assert_eq!(ageing("bangstar"), (None, None), "day 0 is no date");
        assert_eq!(ageing("lk"), (Some(20000 * 86_400), None), "negative max");
        assert_eq!(ageing("gone"), (None, None));
    }

    #[test]
    fn without_shadow_the_passwd_field_decides() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "/etc/passwd",
            "old::1:1::/:/bin/sh\nlocked:*:2:2::/:/bin/sh\nx:x:3:3::/:/bin/sh\n",
        );
        let (accounts, _) = run(dir.path());
        assert_eq!(get(&accounts, "old").password, PasswordState::Empty);
        assert_eq!(get(&accounts, "locked").password, PasswordState::Locked);
        assert_eq!(get(&accounts, "x").password, PasswordState::Unknown);
    }

    #[test]
    fn root_equivalence_by_uid_group_and_sudoers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/passwd",
            "root:x:0:0::/root:/bin/bash\n\
             toor:x:0:0::/root:/bin/sh\n\
             sudoer:x:1000:1000::/home/sudoer:/bin/bash\n\
             wheeler:x:1001:10::/home/wheeler:/bin/bash\n\
             alice:x:1002:1002::/home/alice:/bin/bash\n\
             carol:x:1003:1003::/home/carol:/bin/bash\n\
             dave:x:1004:1004::/home/dave:/bin/bash\n\
             erin:x:1005:1005::/home/erin:/bin/bash\n\
             frank:x:1006:1006::/home/frank:/bin/bash\n\
             pg:x:1007:1007::/home/pg:/bin/bash\n\
             backup:x:1008:1008::/home/backup:/bin/bash\n\
             gina:x:1009:1009::/home/gina:/bin/bash\n\
             hank:x:1010:1010::/home/hank:/bin/bash\n\
             ivan:x:1011:1011::/home/ivan:/bin/bash\n",
        );
        write(
            root,
            "/etc/group",
            "root:x:0:\nwheel:x:10:\nsudo:x:27:sudoer\nops:x:500:carol,dave\nsre:x:501:ivan\n",
        );
        write(
            root,
            "/etc/sudoers",
            "# comment ALL=(ALL) ALL\n\
             Defaults env_reset\n\
             Defaults:alice !requiretty\n\
             Cmnd_Alias SHUTDOWN = /sbin/shutdown\n\
             User_Alias ADMINS = gina, %sre\n\
             root ALL=(ALL:ALL) ALL\n\
             alice ALL=(ALL) ALL # full sudo\n\
             pg ALL=(postgres) ALL\n\
             backup ALL=(root) NOPASSWD: /usr/bin/rsync, SHUTDOWN\n\
             ADMINS ALL = (ALL) \\\n    NOPASSWD: ALL\n\
             #1010 ALL=(ALL) TIMEOUT=10 ALL\n\
             @includedir /etc/sudoers.d\n",
        );
        write(
            root,
            "/etc/sudoers.d/ops",
            "%ops ALL=(ALL:ALL) NOPASSWD: ALL\n",
        );
        write(root, "/etc/sudoers.d/erin", "erin, frank  ALL = ALL\n");
        write(root, "/etc/sudoers.d/old~", "pg ALL=(ALL) ALL\n");
        write(root, "/etc/sudoers.d/pg.bak", "pg ALL=(ALL) ALL\n");

        let (accounts, issues) = run(root);
        assert!(issues.is_empty(), "{issues:?}");
        let reasons = |n: &str| get(&accounts, n).root_reasons.clone();
        assert_eq!(reasons("root"), ["uid0", "sudoers:/etc/sudoers"]);
        assert_eq!(reasons("toor"), ["uid0"]);
        assert_eq!(reasons("sudoer"), ["group:sudo"]);
        assert_eq!(reasons("wheeler"), ["group:wheel"], "primary group counts");
        assert_eq!(reasons("alice"), ["sudoers:/etc/sudoers"]);
        assert_eq!(reasons("carol"), ["sudoers:/etc/sudoers.d/ops"]);
        assert_eq!(reasons("dave"), ["sudoers:/etc/sudoers.d/ops"]);
        assert_eq!(reasons("erin"), ["sudoers:/etc/sudoers.d/erin"]);
        assert_eq!(reasons("frank"), ["sudoers:/etc/sudoers.d/erin"]);
        assert_eq!(reasons("gina"), ["sudoers:/etc/sudoers"], "User_Alias");
        assert_eq!(reasons("ivan"), ["sudoers:/etc/sudoers"], "%group in alias");
        assert_eq!(reasons("hank"), ["sudoers:/etc/sudoers"], "#uid");
        assert!(reasons("pg").is_empty(), "runas postgres, skipped files");
        assert!(reasons("backup").is_empty(), "a few commands only");
        for a in &accounts {
            assert_eq!(a.root_equivalent, !a.root_reasons.is_empty(), "{}", a.name);
        }
    }

    #[test]
    fn sudoers_d_counts_only_when_included() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "/etc/passwd", "alice:x:1000:1000::/:/bin/sh\n");
        write(dir.path(), "/etc/sudoers", "Defaults env_reset\n");
        write(dir.path(), "/etc/sudoers.d/alice", "alice ALL=(ALL) ALL\n");
        let (accounts, issues) = run(dir.path());
        assert!(issues.is_empty(), "{issues:?}");
        assert!(!get(&accounts, "alice").root_equivalent);

        write(
            dir.path(),
            "/etc/sudoers",
            "#includedir /etc/sudoers.d\n@include /etc/sudoers.local\n",
        );
        let (accounts, issues) = run(dir.path());
        assert_eq!(
            get(&accounts, "alice").root_reasons,
            ["sudoers:/etc/sudoers.d/alice"]
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].file.as_str(), issues[0].line),
            ("/etc/sudoers", Some(2))
        );
    }

    #[test]
    fn sudoers_right_hand_sides() {
        for (spec, all) in [
            ("(ALL) ALL", true),
            ("(ALL : ALL) NOPASSWD: SETENV: ALL", true),
            ("ALL", true),
            ("(root) ALL, !/bin/su", true),
            ("(root) /bin/ls : db1 = ALL", true),
            ("(postgres) /bin/ls : db1 = ALL", true),
            ("(root) CWD=/tmp ALL", true),
            ("(postgres) ALL", false),
            ("(:wheel) ALL", false),
            ("(root) !ALL", false),
            ("(root) /usr/bin/systemctl restart ALL", false),
            ("(root) /usr/bin/apt", false),
        ] {
            assert_eq!(grants_all_as_root(spec), all, "{spec}");
        }
    }

    #[test]
    fn login_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/passwd",
            "nolog:x:1:1::/home/nolog:/usr/sbin/nologin\n\
             falsy:x:2:2::/home/falsy:/bin/false\n\
             noshell:x:3:3::/home/noshell:\n\
             locked:x:4:4::/home/locked:/bin/bash\n\
             keyed:x:5:5::/home/keyed:/bin/bash\n\
             emptykeys:x:6:6::/home/emptykeys:/bin/bash\n\
             nopass:x:7:7::/home/nopass:/bin/bash\n\
             unknown:x:8:8::/home/unknown:/bin/bash\n\
             keyednolog:x:9:9::/home/keyednolog:/sbin/nologin\n",
        );
        write(
            root,
            "/etc/shadow",
            format!(
                "nolog:{HASH}:1:0:99999:7:::\n\
                 falsy:{HASH}:1:0:99999:7:::\n\
                 noshell:{HASH}:1:0:99999:7:::\n\
                 locked:!:1:0:99999:7:::\n\
                 keyed:*:1:0:99999:7:::\n\
                 emptykeys:!:1:0:99999:7:::\n\
                 nopass::1:0:99999:7:::\n\
                 keyednolog:!:1:0:99999:7:::\n"
            ),
        );
        write(
            root,
            "/home/keyed/.ssh/authorized_keys",
            "ssh-ed25519 AAAA k\n",
        );
        write(
            root,
            "/home/unknown/.ssh/authorized_keys2",
            "ssh-rsa AAAA k\n",
        );
        write(root, "/home/emptykeys/.ssh/authorized_keys", "");
        write(
            root,
            "/home/keyednolog/.ssh/authorized_keys",
            "ssh-rsa AAAA k\n",
        );
        let (accounts, issues) = run(root);
        assert!(issues.is_empty(), "{issues:?}");
        let login = |n: &str| get(&accounts, n).login_allowed;
        assert!(!login("nolog"));
        assert!(!login("falsy"));
        assert!(login("noshell"), "empty shell is /bin/sh");
        assert!(!login("locked"));
        assert!(login("keyed"), "locked password but authorized keys");
        assert!(!login("emptykeys"));
        assert!(login("nopass"));
        assert!(login("unknown"), "no shadow entry but authorized_keys2");
        assert!(!login("keyednolog"));
    }

    #[test]
    fn malformed_lines_cost_only_themselves() {
        let dir = tempfile::tempdir().unwrap();
        base_tree(dir.path());
        let mut passwd = b"root:x:0:0:root:/root:/bin/bash\n\
                           short:x:1002:1002:/bin/sh\n\
                           alice:x:1000:1000::/home/alice:/bin/bash\n"
            .to_vec();
        passwd.extend_from_slice(b"\xff\xfe\x00\x01garbage\xc3\n");
        passwd.extend_from_slice(b"\xff\xfe:x:5:5::/:/bin/sh\n");
        passwd.extend_from_slice(b"baduid:x:12a:5::/:/bin/sh\n");
        passwd.extend_from_slice(b"alice:x:1999:1999::/:/bin/sh\n");
        passwd.extend_from_slice(b"\n#comment\n+::::::\n");
        passwd.extend_from_slice(b"bob:x:1001:1001::/home/bob:/bin/zsh");
        write(dir.path(), "/etc/passwd", &passwd);
        let mut group = b"sudo:x:27:bob\nusers:x:100:alice,bob\n".to_vec();
        group.extend_from_slice(b"\x00\x9f\x92\x96\n");
        write(dir.path(), "/etc/group", &group);

        let (accounts, issues) = run(dir.path());
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["root", "alice", "bob"]);
        assert_eq!(get(&accounts, "alice").uid, 1000, "first entry wins");
        assert_eq!(get(&accounts, "bob").root_reasons, ["group:sudo"]);

        let at = |file: &str| -> Vec<Option<u32>> {
            issues
                .iter()
                .filter(|i| i.file == file)
                .map(|i| i.line)
                .collect()
        };
        assert_eq!(
            at("/etc/passwd"),
            [Some(2), Some(4), Some(5), Some(6), Some(7)]
        );
        assert!(issues[0].message.contains("7 fields"), "{}", issues[0]);
        assert_eq!(at("/etc/group"), [Some(3)]);
        assert_eq!(issues.len(), 6, "{issues:?}");
    }

    #[test]
    fn missing_files_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, issues) = run(dir.path());
        assert!(accounts.is_empty());
        assert!(issues.is_empty());
        let ctx = Ctx {
            root: dir.path(),
            policy: &InventoryPolicy::default(),
            hashes: &HashCache::default(),
        };
        assert!(user_names(&ctx).is_empty());
    }

    #[test]
    fn user_names_maps_uids() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "/etc/passwd",
            "root:x:0:0::/root:/bin/sh\nbad\ntoor:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n",
        );
        let ctx = Ctx {
            root: dir.path(),
            policy: &InventoryPolicy::default(),
            hashes: &HashCache::default(),
        };
        let names = user_names(&ctx);
        assert_eq!(names.len(), 2);
        assert_eq!(names[&0], "root");
        assert_eq!(names[&1000], "alice");
    }

    #[test]
    fn real_host_has_root() {
        let (accounts, _) = run(Path::new("/"));
        let root = get(&accounts, "root");
        assert_eq!(root.uid, 0);
        assert!(root.root_equivalent);
        assert!(root.root_reasons.contains(&"uid0".to_string()));
    }
}
