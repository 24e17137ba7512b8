//! Auto-start entries: what runs at boot, on a schedule, at login or inside every program, and
//! who may log in with a key. Entries that share a file (crontab lines, keys, preloaded
//! libraries) are items of their own, hashed by their line; whole files carry the file's hash.
//!
//! Only the entry line itself leaves the host: for keys that is the type, fingerprint, comment
//! and options, never the key material; issues never quote the offending line.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use hostward_proto::inventory::{AutostartItem, CollectIssue, Item, Items};
use sha2::{Digest, Sha256};

use super::hashcache::sha256_hex;
use super::{Collected, Ctx};

/// Searched in this order, as systemd does: a unit in /etc overrides the packaged one.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// A binary file dropped into cron.d should cost a few issues, not one per line.
const MAX_LINE_ISSUES: usize = 20;

pub fn collect(ctx: &Ctx) -> Collected {
    let mut out = Out {
        ctx,
        items: vec![],
        issues: vec![],
    };
    let accounts = passwd_homes(ctx, &mut out.issues);
    systemd(&mut out);
    cron(&mut out);
    system_files(&mut out, &accounts);
    authorized_keys(&mut out, &accounts);

    let Out {
        mut items, issues, ..
    } = out;
    items.sort_by(|a, b| {
        (&a.category, &a.path, &a.entry, &a.sha256).cmp(&(
            &b.category,
            &b.path,
            &b.entry,
            &b.sha256,
        ))
    });
    // A line repeated in one file is one entry; duplicate keys would confuse the diffs.
    let mut keys = HashSet::new();
    items.retain(|i| keys.insert(i.key()));
    Collected {
        items: Items::Autostart(items),
        issues,
    }
}

struct Out<'c> {
    ctx: &'c Ctx<'c>,
    items: Vec<AutostartItem>,
    issues: Vec<CollectIssue>,
}

impl Out<'_> {
    fn push(&mut self, category: &str, path: &str, user: &str, entry: &str, sha256: String) {
        self.items.push(AutostartItem {
            category: category.into(),
            path: path.into(),
            user: user.into(),
            entry: entry.into(),
            sha256,
        });
    }

    /// An item that stands for a whole file. An unhashable file is still reported, with an
    /// empty hash, so the entry is not lost.
    fn file_item(&mut self, category: &str, path: &str, user: &str, entry: &str) {
        let sha256 = match self.ctx.hashes.sha256(&self.ctx.path(path)) {
            Some(h) => h,
            None => {
                self.issues.push(
                    self.ctx
                        .issue(path, None, "cannot read the file to hash it"),
                );
                String::new()
            }
        };
        self.push(category, path, user, entry, sha256);
    }

    /// Regular files (symlinks followed) of a host directory, by name; hidden files are
    /// skipped as run-parts and cron skip them. A missing directory is no issue.
    fn files_in(&mut self, dir: &str) -> Vec<(String, String)> {
        let rd = match std::fs::read_dir(self.ctx.path(dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return vec![],
            Err(e) => {
                self.issues
                    .push(self.ctx.issue(dir, None, format!("cannot list: {e}")));
                return vec![];
            }
        };
        let mut files: Vec<(String, String)> = rd
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .map(|name| {
                let path = format!("{}/{}", dir.trim_end_matches('/'), name);
                (name, path)
            })
            .collect();
        files.sort();
        files
    }
}

/// Line issues of one file, capped at [`MAX_LINE_ISSUES`] plus a count of the rest.
struct LineIssues<'f> {
    file: &'f str,
    count: usize,
}

impl<'f> LineIssues<'f> {
    fn new(file: &'f str) -> Self {
        LineIssues { file, count: 0 }
    }

    fn report(&mut self, out: &mut Out, line: usize, message: &str) {
        self.count += 1;
        if self.count <= MAX_LINE_ISSUES {
            let line = u32::try_from(line).unwrap_or(u32::MAX);
            out.issues
                .push(out.ctx.issue(self.file, Some(line), message));
        }
    }

    fn finish(self, out: &mut Out) {
        if self.count > MAX_LINE_ISSUES {
            let more = self.count - MAX_LINE_ISSUES;
            out.issues.push(
                out.ctx
                    .issue(self.file, None, format!("{more} more malformed lines")),
            );
        }
    }
}

/// Control characters (tab aside) or U+FFFD, which `read_text` puts where the bytes were not
/// UTF-8: a line no editor wrote.
fn garbage(s: &str) -> bool {
    s.chars()
        .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
}

struct Account {
    name: String,
    uid: Option<u32>,
    home: String,
}

/// Names, uids and homes from /etc/passwd. Malformed lines are the accounts collector's to
/// report; here they are skipped.
fn passwd_homes(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Vec<Account> {
    let Some(text) = ctx.read_text("/etc/passwd", issues) else {
        return vec![];
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().split(':').collect();
            let (name, home) = (*f.first()?, *f.get(5)?);
            if name.is_empty() || name.starts_with(['#', '+', '-']) || !home.starts_with('/') {
                return None;
            }
            if garbage(name) || garbage(home) {
                return None;
            }
            Some(Account {
                name: name.to_string(),
                uid: f.get(2).and_then(|u| u.parse().ok()),
                home: home.to_string(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// systemd

fn systemd(out: &mut Out) {
    let ctx = out.ctx;
    let mut seen_dirs = HashSet::new();
    let mut seen_units = HashSet::new();
    let mut seen_files = HashSet::new();
    for base in [
        "/etc/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ] {
        // With a merged /usr, /lib is /usr/lib: the same links must not count twice.
        match std::fs::metadata(ctx.path(base)) {
            Ok(m) if m.is_dir() => {
                if !seen_dirs.insert((m.dev(), m.ino())) {
                    continue;
                }
            }
            _ => continue,
        }
        let Ok(rd) = std::fs::read_dir(ctx.path(base)) else {
            continue;
        };
        let mut wants: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wants") || n.ends_with(".requires"))
            .collect();
        wants.sort();
        for w in wants {
            let dir = format!("{base}/{w}");
            let Ok(rd) = std::fs::read_dir(ctx.path(&dir)) else {
                continue;
            };
            let mut units: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains('.') && !n.starts_with('.'))
                .collect();
            units.sort();
            for unit in units {
                if seen_units.insert(unit.clone()) {
                    enabled_unit(out, &unit, &format!("{dir}/{unit}"), &mut seen_files);
                }
            }
        }
    }
}

fn enabled_unit(out: &mut Out, unit: &str, link: &str, seen_files: &mut HashSet<String>) {
    let ctx = out.ctx;
    // systemd loads a wanted unit by name from its search path; the link's own target only
    // matters for units linked in from elsewhere (`systemctl link`).
    let template = template_name(unit);
    let found = [Some(unit), template.as_deref()]
        .into_iter()
        .flatten()
        .flat_map(|n| UNIT_DIRS.iter().map(move |d| format!("{d}/{n}")))
        .find(|p| std::fs::symlink_metadata(ctx.path(p)).is_ok());
    let target = match found {
        Some(p) => follow(ctx, &p),
        None => follow(ctx, link),
    };
    let file = match target {
        Some(t) if t == "/dev/null" => return, // masked: enabled but never started
        Some(t) if ctx.path(&t).is_file() => t,
        _ => {
            out.issues
                .push(ctx.issue(link, None, format!("enabled unit {unit} has no unit file")));
            return;
        }
    };
    if !seen_files.insert(file.clone()) {
        return;
    }
    let Some(text) = ctx.read_text(&file, &mut out.issues) else {
        return;
    };
    let mut texts = vec![text];
    for conf in drop_ins(out, unit, template.as_deref()) {
        texts.extend(ctx.read_text(&conf, &mut out.issues));
    }
    let (execs, user) = unit_exec(&texts);
    let entry = if execs.is_empty() {
        unit.to_string()
    } else {
        execs.join("; ")
    };
    let user = user.unwrap_or_else(|| "root".into());
    out.file_item("systemd", &file, &user, &entry);
}

/// `getty@tty1.service` → `getty@.service`.
fn template_name(unit: &str) -> Option<String> {
    let (prefix, rest) = unit.split_once('@')?;
    let (instance, suffix) = rest.rsplit_once('.')?;
    (!instance.is_empty()).then(|| format!("{prefix}@.{suffix}"))
}

/// Drop-in `*.conf` files of a unit, in the order systemd applies them: by file name, a name
/// in an earlier directory hiding the same name in a later one. They can replace ExecStart,
/// so a changed drop-in must change the entry.
fn drop_ins(out: &mut Out, unit: &str, template: Option<&str>) -> Vec<String> {
    let mut by_name = std::collections::BTreeMap::new();
    for name in [template, Some(unit)].into_iter().flatten() {
        for d in UNIT_DIRS {
            for (file, path) in out.files_in(&format!("{d}/{name}.d")) {
                if file.ends_with(".conf") {
                    by_name.entry(file).or_insert(path);
                }
            }
        }
    }
    by_name.into_values().collect()
}

/// ExecStart lines and User of the [Service] sections of a unit file and its drop-ins, in
/// order: an empty `ExecStart=` clears the list, as in systemd.
fn unit_exec(texts: &[String]) -> (Vec<String>, Option<String>) {
    let mut execs = Vec::new();
    let mut user = None;
    for text in texts {
        let mut section = String::new();
        let mut logical = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if logical.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                logical.push_str(cont.trim_end());
                logical.push(' ');
                continue;
            }
            logical.push_str(line);
            let l = std::mem::take(&mut logical);
            let l = l.trim();
            if l.starts_with('[') && l.ends_with(']') {
                section = l.to_string();
                continue;
            }
            if section != "[Service]" {
                continue;
            }
            let Some((k, v)) = l.split_once('=') else {
                continue;
            };
            match k.trim() {
                "ExecStart" if v.trim().is_empty() => execs.clear(),
                "ExecStart" => execs.push(v.trim().to_string()),
                "User" if !v.trim().is_empty() => user = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    (execs, user)
}

/// Follows symlinks of a host path inside the root (targets are host paths, absolute or
/// relative to the link) to the final host path, which may not exist; `None` for a loop or a
/// dangling link.
fn follow(ctx: &Ctx, host: &str) -> Option<String> {
    let mut cur = normalize(host);
    for _ in 0..16 {
        if cur == "/dev/null" {
            return Some(cur);
        }
        let meta = std::fs::symlink_metadata(ctx.path(&cur)).ok()?;
        if !meta.file_type().is_symlink() {
            return Some(cur);
        }
        let target = std::fs::read_link(ctx.path(&cur)).ok()?;
        let target = target.to_string_lossy();
        cur = if target.starts_with('/') {
            normalize(&target)
        } else {
            let parent = cur.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            normalize(&format!("{parent}/{target}"))
        };
    }
    None
}

/// Resolves `.` and `..` of an absolute host path without leaving `/`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// cron

const CRON_SPECIALS: [&str; 8] = [
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

fn cron(out: &mut Out) {
    let mut system = vec![("/etc/crontab".to_string(), None)];
    system.extend(
        out.files_in("/etc/cron.d")
            .into_iter()
            .map(|(_, p)| (p, None)),
    );
    // Debian keeps user crontabs in crontabs/, RHEL directly in /var/spool/cron.
    let mut user = out.files_in("/var/spool/cron/crontabs");
    user.extend(out.files_in("/var/spool/cron"));
    let files = system
        .into_iter()
        .chain(user.into_iter().map(|(name, p)| (p, Some(name))));
    for (path, owner) in files {
        let Some(text) = out.ctx.read_text(&path, &mut out.issues) else {
            continue;
        };
        let mut log = LineIssues::new(&path);
        for (i, raw) in text.lines().enumerate() {
            match cron_line(raw, owner.is_none()) {
                Ok(CronLine::Skip) => {}
                Ok(CronLine::Job { user }) => {
                    let entry = raw.trim();
                    let user = user.or(owner.as_deref()).unwrap_or("root");
                    out.push("cron", &path, user, entry, sha256_hex(entry.as_bytes()));
                }
                Err(msg) => log.report(out, i + 1, msg),
            }
        }
        log.finish(out);
    }
    for period in ["hourly", "daily", "weekly", "monthly"] {
        for (name, path) in out.files_in(&format!("/etc/cron.{period}")) {
            out.file_item(
                "cron",
                &path,
                "root",
                &format!("cron.{period} script {name}"),
            );
        }
    }
}

#[derive(Debug, PartialEq)]
enum CronLine<'l> {
    /// Blank, comment or environment setting.
    Skip,
    /// A job; `user` is the sixth field of a system crontab.
    Job { user: Option<&'l str> },
}

/// Classifies one crontab line; `system` crontabs name the user before the command.
fn cron_line(raw: &str, system: bool) -> Result<CronLine<'_>, &'static str> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(CronLine::Skip);
    }
    if garbage(line) {
        return Err("binary or control characters in a crontab line");
    }
    // A schedule starts with a minute (digits, `*`) or `@special`; anything else may only be
    // an environment setting.
    if !line.starts_with(|c: char| c.is_ascii_digit() || c == '*' || c == '@') {
        return if is_env(line) {
            Ok(CronLine::Skip)
        } else {
            Err("neither a job nor an environment setting")
        };
    }
    let mut fields = line.split_whitespace();
    let time_fields = if line.starts_with('@') {
        let special = fields.next().unwrap_or_default();
        if !CRON_SPECIALS.contains(&special) {
            return Err("unknown @ schedule");
        }
        0
    } else {
        5
    };
    for _ in 0..time_fields {
        match fields.next() {
            Some(f)
                if f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*,/-".contains(c)) => {}
            Some(_) => return Err("malformed time field"),
            None => return Err("too few fields"),
        }
    }
    let user = if system {
        Some(fields.next().ok_or("too few fields: no user")?)
    } else {
        None
    };
    if fields.next().is_none() {
        return Err("too few fields: no command");
    }
    Ok(CronLine::Job { user })
}

fn is_env(line: &str) -> bool {
    let Some((name, _)) = line.split_once('=') else {
        return false;
    };
    let name = name.trim().trim_matches(|c| c == '"' || c == '\'');
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------------
// rc.local, init.d, ld.so.preload, profile.d, shell start-up files

fn system_files(out: &mut Out, accounts: &[Account]) {
    if out.ctx.path("/etc/rc.local").is_file() {
        out.file_item("rc_local", "/etc/rc.local", "root", "rc.local");
    }
    for (name, path) in out.files_in("/etc/init.d") {
        out.file_item("init_d", &path, "root", &name);
    }
    for (name, path) in out.files_in("/etc/profile.d") {
        out.file_item("profile_d", &path, "root", &name);
    }
    ld_so_preload(out);

    let mut rc = vec![
        ("/etc/bash.bashrc".to_string(), "root".to_string()),
        ("/etc/profile".to_string(), "root".to_string()),
    ];
    // Every uid-0 account is root; a second one with its own home is itself a finding.
    let mut roots: Vec<(&str, &str)> = accounts
        .iter()
        .filter(|a| a.uid == Some(0))
        .map(|a| (a.name.as_str(), a.home.as_str()))
        .collect();
    if roots.is_empty() {
        roots.push(("root", "/root"));
    }
    let mut homes = HashSet::new();
    for (name, home) in roots {
        if !homes.insert(home) {
            continue;
        }
        for f in [
            ".bashrc",
            ".bash_profile",
            ".bash_login",
            ".bash_logout",
            ".profile",
            ".zshrc",
        ] {
            rc.push((format!("{}/{f}", home.trim_end_matches('/')), name.into()));
        }
    }
    for (path, user) in rc {
        if out.ctx.path(&path).is_file() {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            out.file_item("shell_rc", &path, &user, &name);
        }
    }
}

fn ld_so_preload(out: &mut Out) {
    const FILE: &str = "/etc/ld.so.preload";
    let Some(text) = out.ctx.read_text(FILE, &mut out.issues) else {
        return;
    };
    let mut log = LineIssues::new(FILE);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if garbage(line) {
            log.report(out, i + 1, "binary or control characters");
            continue;
        }
        // ld.so takes any mix of spaces, tabs and colons as separators.
        let mut bad = false;
        for lib in line.split(|c: char| c.is_whitespace() || c == ':') {
            if looks_like_library(lib) {
                let sha256 = sha256_hex(lib.as_bytes());
                out.push("ld_so_preload", FILE, "root", lib, sha256);
            } else {
                bad |= !lib.is_empty();
            }
        }
        if bad {
            log.report(out, i + 1, "not a library path");
        }
    }
    log.finish(out);
}

/// An absolute path, or a bare library name ld.so would search for.
fn looks_like_library(s: &str) -> bool {
    s.starts_with('/')
        || (s.contains(".so")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c)))
}

// ---------------------------------------------------------------------------------------------
// authorized_keys

fn authorized_keys(out: &mut Out, accounts: &[Account]) {
    let mut homes = HashSet::new();
    for a in accounts {
        // Accounts sharing a home (`/nonexistent`, `/`) share its keys: report them once.
        if !homes.insert(a.home.as_str()) {
            continue;
        }
        for f in ["authorized_keys", "authorized_keys2"] {
            let path = format!("{}/.ssh/{f}", a.home.trim_end_matches('/'));
            if !out.ctx.path(&path).is_file() {
                continue;
            }
            let Some(text) = out.ctx.read_text(&path, &mut out.issues) else {
                continue;
            };
            let mut log = LineIssues::new(&path);
            for (i, raw) in text.lines().enumerate() {
                match key_line(raw) {
                    Ok(None) => {}
                    Ok(Some(key)) => {
                        let line = raw.trim();
                        out.push(
                            "authorized_keys",
                            &path,
                            &a.name,
                            &key.entry(),
                            sha256_hex(line.as_bytes()),
                        );
                    }
                    Err(msg) => log.report(out, i + 1, msg),
                }
            }
            log.finish(out);
        }
    }
}

#[derive(Debug, PartialEq)]
struct Key<'l> {
    options: Option<&'l str>,
    kind: &'l str,
    /// Unpadded base64 SHA-256 of the key blob, as `ssh-keygen -l` prints it.
    fingerprint: String,
    comment: &'l str,
}

impl Key<'_> {
    fn entry(&self) -> String {
        let mut e = format!("{} SHA256:{}", self.kind, self.fingerprint);
        if !self.comment.is_empty() {
            e.push(' ');
            e.push_str(self.comment);
        }
        if let Some(o) = self.options {
            e.push_str(" options=");
            e.push_str(o);
        }
        e
    }
}

fn is_key_type(s: &str) -> bool {
    matches!(
        s,
        "ssh-rsa"
            | "ssh-dss"
            | "ssh-ed25519"
            | "ssh-ed448"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    ) || (s.starts_with("sk-") && s.ends_with("@openssh.com"))
        || s.ends_with("-cert-v01@openssh.com")
}

/// Splits at the first whitespace: (token, rest with leading whitespace removed).
fn split_token(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Parses an authorized_keys line: `[options] type base64 [comment]`, where options may quote
/// spaces and commas (`command="a b",from="x,y"`).
fn key_line(raw: &str) -> Result<Option<Key<'_>>, &'static str> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if garbage(line) {
        return Err("binary or control characters in a key line");
    }
    let (first, _) = split_token(line);
    let (options, rest) = if is_key_type(first) {
        (None, line)
    } else {
        let mut quoted = false;
        let mut escaped = false;
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            if escaped {
                escaped = false;
            } else if quoted && c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
            } else if !quoted && c.is_whitespace() {
                end = i;
                break;
            }
        }
        if quoted {
            return Err("unterminated quote in key options");
        }
        (Some(&line[..end]), line[end..].trim_start())
    };
    let (kind, rest) = split_token(rest);
    if kind.is_empty() {
        return Err("no key after the options");
    }
    if !is_key_type(kind) {
        return Err("unknown key type");
    }
    let (blob, comment) = split_token(rest);
    if blob.is_empty() {
        return Err("no key data");
    }
    // ssh writes padded base64 but tolerates its absence; so do we.
    const B64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = B64
        .decode(blob)
        .map_err(|_| "key data is not valid base64")?;
    // The blob starts with its own type; a mismatch is a damaged or hand-edited line that
    // sshd would reject.
    let inner = bytes
        .get(..4)
        .and_then(|n| {
            let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
            bytes.get(4..4usize.checked_add(n)?)
        })
        .ok_or("key data is truncated")?;
    if inner != kind.as_bytes() {
        return Err("key data does not match its type");
    }
    Ok(Some(Key {
        options,
        kind,
        fingerprint: STANDARD_NO_PAD.encode(Sha256::digest(&bytes)),
        comment,
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use hostward_proto::inventory::InventoryPolicy;

    use super::*;
    use crate::inventory::collect::HashCache;

    fn write(root: &Path, host: &str, content: impl AsRef<[u8]>) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn link(root: &Path, host: &str, target: &str) {
        let p = root.join(host.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    fn run(root: &Path) -> (Vec<AutostartItem>, Vec<CollectIssue>) {
        let ctx = Ctx {
            root,
            policy: &InventoryPolicy::default(),
            hashes: &HashCache::default(),
        };
        let c = collect(&ctx);
        match c.items {
            Items::Autostart(v) => (v, c.issues),
            other => panic!("wrong kind {:?}", other.kind()),
        }
    }

    fn of<'a>(items: &'a [AutostartItem], category: &str) -> Vec<&'a AutostartItem> {
        items.iter().filter(|i| i.category == category).collect()
    }

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGru7gSBaDreXv6k0KCAUsx4qfl+XQ++nj+Vqqgw9HxC ops@bastion";
    const ED25519_FP: &str = "ZNucO2mzzYkQVPFQKujRjeweU/2ckotMK24g4vBMZdg";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNiPJaX5CAavFjNi964M0YwSR8BrR13uKvdBGJLDrXdiBw9ZJiiETRnDsLXDskOcYLGVqSmvmpeluHylIyaS7Lg=";
    const ECDSA_FP: &str = "2JcAKAlfwMscdNWe2L7tPRf3XLZQIEi18p2d9qe4KWI";

    #[test]
    fn an_empty_root_has_no_entries_and_no_issues() {
        let dir = tempfile::tempdir().unwrap();
        let (items, issues) = run(dir.path());
        assert!(items.is_empty(), "{items:?}");
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn enabled_systemd_units_resolve_to_their_unit_files_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "/lib/systemd/system/web.service",
            "[Unit]\nDescription=web\n# ExecStart=/not/this\n[Service]\nUser=www\n\
             ExecStart=/usr/bin/web \\\n  --port 80\nExecStartPost=/bin/true\n[Install]\n",
        );
        // Wanted twice, by absolute link: one item.
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/web.service",
            "/lib/systemd/system/web.service",
        );
        link(
            r,
            "/etc/systemd/system/graphical.target.requires/web.service",
            "/lib/systemd/system/web.service",
        );
        write(
            r,
            "/lib/systemd/system/backup.timer",
            "[Timer]\nOnCalendar=daily\n",
        );
        link(
            r,
            "/etc/systemd/system/timers.target.wants/backup.timer",
            "../../../../lib/systemd/system/backup.timer",
        );
        // A drop-in replaces ExecStart of a packaged unit.
        write(
            r,
            "/usr/lib/systemd/system/ssh.service",
            "[Service]\nExecStart=/usr/sbin/sshd -D\n",
        );
        write(
            r,
            "/etc/systemd/system/ssh.service.d/override.conf",
            "[Service]\nExecStart=\nExecStart=/tmp/.x/sshd -D\nExecStart=/usr/sbin/sshd -D\n",
        );
        link(
            r,
            "/usr/lib/systemd/system/multi-user.target.wants/ssh.service",
            "../ssh.service",
        );
        // A unit linked in from outside the search path.
        write(
            r,
            "/opt/app/app.service",
            "[Service]\nExecStart=/opt/app/run\n",
        );
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/app.service",
            "/opt/app/app.service",
        );
        // Template instance.
        write(
            r,
            "/lib/systemd/system/getty@.service",
            "[Service]\nExecStart=-/sbin/agetty %I\n",
        );
        link(
            r,
            "/etc/systemd/system/getty.target.wants/getty@tty1.service",
            "/lib/systemd/system/getty@.service",
        );
        // Masked: skipped. Dangling: an issue.
        link(r, "/etc/systemd/system/evil.service", "/dev/null");
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/evil.service",
            "/lib/systemd/system/evil.service",
        );
        link(
            r,
            "/etc/systemd/system/multi-user.target.wants/gone.service",
            "/lib/systemd/system/gone.service",
        );

        let (items, issues) = run(r);
        let units = of(&items, "systemd");
        let got: Vec<(&str, &str, &str)> = units
            .iter()
            .map(|i| (i.path.as_str(), i.user.as_str(), i.entry.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("/lib/systemd/system/backup.timer", "root", "backup.timer"),
                (
                    "/lib/systemd/system/getty@.service",
                    "root",
                    "-/sbin/agetty %I"
                ),
                (
                    "/lib/systemd/system/web.service",
                    "www",
                    "/usr/bin/web --port 80"
                ),
                ("/opt/app/app.service", "root", "/opt/app/run"),
                (
                    "/usr/lib/systemd/system/ssh.service",
                    "root",
                    "/tmp/.x/sshd -D; /usr/sbin/sshd -D"
                ),
            ]
        );
        let web = std::fs::read(r.join("lib/systemd/system/web.service")).unwrap();
        assert_eq!(units[2].sha256, sha256_hex(&web));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            issues[0].file,
            "/etc/systemd/system/multi-user.target.wants/gone.service"
        );
    }

    #[test]
    fn crontabs_keep_good_lines_and_name_the_file_and_line_of_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let mut crontab = b"# /etc/crontab\nSHELL=/bin/sh\nPATH = /usr/bin:/bin\n\n\
            17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n"
            .to_vec();
        crontab.extend_from_slice(b"*/5 * * * * root /bin/\x01\x02evil\n"); // line 6
        crontab.extend_from_slice(b"0 1 * * * \xff\xfe\n"); // line 7
        crontab.extend_from_slice(b"0 2 * * *\n"); // line 8: no user, no command
        crontab.extend_from_slice(b"@reboot root /usr/local/bin/boot.sh\r\n");
        crontab.extend_from_slice(b"@sometimes root /x\n"); // line 10
        crontab.extend_from_slice(b"this is not cron\n"); // line 11
        write(r, "/etc/crontab", crontab);
        write(
            r,
            "/etc/cron.d/certbot",
            "0 */12 * * * www /usr/bin/certbot -q renew\n",
        );
        write(r, "/etc/cron.d/.placeholder", "# keep\n");
        // User crontabs have no user field: a sixth field is the command.
        write(
            r,
            "/var/spool/cron/crontabs/alice",
            "MAILTO=alice\n@daily /home/alice/backup.sh\n30 4 * * 1 tar czf /tmp/x.tgz ~\n*/5 *\n",
        );
        write(r, "/var/spool/cron/bob", "0 0 * * * /home/bob/job\n");
        write(r, "/etc/cron.daily/logrotate", "#!/bin/sh\nlogrotate\n");

        let (items, issues) = run(r);
        let cron: Vec<(&str, &str, &str)> = of(&items, "cron")
            .iter()
            .map(|i| (i.path.as_str(), i.user.as_str(), i.entry.as_str()))
            .collect();
        assert_eq!(
            cron,
            [
                (
                    "/etc/cron.d/certbot",
                    "www",
                    "0 */12 * * * www /usr/bin/certbot -q renew"
                ),
                (
                    "/etc/cron.daily/logrotate",
                    "root",
                    "cron.daily script logrotate"
                ),
                (
                    "/etc/crontab",
                    "root",
                    "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly"
                ),
                (
                    "/etc/crontab",
                    "root",
                    "@reboot root /usr/local/bin/boot.sh"
                ),
                ("/var/spool/cron/bob", "bob", "0 0 * * * /home/bob/job"),
                (
                    "/var/spool/cron/crontabs/alice",
                    "alice",
                    "30 4 * * 1 tar czf /tmp/x.tgz ~"
                ),
                (
                    "/var/spool/cron/crontabs/alice",
                    "alice",
                    "@daily /home/alice/backup.sh"
                ),
            ]
        );
        let cron = of(&items, "cron");
        assert_eq!(
            cron[3].sha256,
            sha256_hex(b"@reboot root /usr/local/bin/boot.sh")
        );
        let script = std::fs::read(r.join("etc/cron.daily/logrotate")).unwrap();
        assert_eq!(cron[1].sha256, sha256_hex(&script));

        let mut at: Vec<(&str, Option<u32>)> =
            issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        at.sort();
        assert_eq!(
            at,
            [
                ("/etc/crontab", Some(6)),
                ("/etc/crontab", Some(7)),
                ("/etc/crontab", Some(8)),
                ("/etc/crontab", Some(10)),
                ("/etc/crontab", Some(11)),
                ("/var/spool/cron/crontabs/alice", Some(4)),
            ],
            "{issues:?}"
        );
        assert!(
            issues.iter().all(|i| !i.message.contains("evil")),
            "issues never quote the line"
        );
    }

    #[test]
    fn cron_lines_classify_system_and_user_formats() {
        use CronLine::*;
        assert_eq!(
            cron_line("* * * * * root /x", true),
            Ok(Job { user: Some("root") })
        );
        assert_eq!(
            cron_line("* * * * * root /x", false),
            Ok(Job { user: None })
        );
        assert_eq!(cron_line("* * * * * /x", false), Ok(Job { user: None }));
        assert!(cron_line("* * * * * /x", true).is_err(), "no command");
        assert_eq!(
            cron_line("@hourly nobody /x", true),
            Ok(Job {
                user: Some("nobody")
            })
        );
        assert_eq!(cron_line("  # c", true), Ok(Skip));
        assert_eq!(cron_line("FOO=\"a b\"", true), Ok(Skip));
        assert!(cron_line("* * * * x;y root /x", true).is_err());
        assert!(cron_line("* * * * * root /\u{FFFD}", true).is_err());
    }

    #[test]
    fn boot_and_login_files_are_items_with_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
        write(r, "/etc/rc.local", "#!/bin/sh\nexit 0\n");
        write(r, "/etc/init.d/ssh", "#!/bin/sh\n");
        write(r, "/etc/init.d/.depend.start", "x\n");
        write(r, "/etc/profile.d/proxy.sh", "export http_proxy=x\n");
        write(r, "/root/.bashrc", "alias ls='ls -a'\n");
        write(r, "/etc/profile", "umask 022\n");
        let mut preload =
            b"# comment\n/usr/lib/libsnoopy.so\n\nlibjemalloc.so.2 /opt/x.so:/opt/y.so\n".to_vec();
        preload.extend_from_slice(b"\x7fELF\x01\n"); // line 5
        preload.extend_from_slice(b"rm -rf *\n"); // line 6
        write(r, "/etc/ld.so.preload", preload);

        let (items, issues) = run(r);
        let got: Vec<(&str, &str, &str, &str)> = items
            .iter()
            .map(|i| {
                (
                    i.category.as_str(),
                    i.path.as_str(),
                    i.user.as_str(),
                    i.entry.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("init_d", "/etc/init.d/ssh", "root", "ssh"),
                ("ld_so_preload", "/etc/ld.so.preload", "root", "/opt/x.so"),
                ("ld_so_preload", "/etc/ld.so.preload", "root", "/opt/y.so"),
                (
                    "ld_so_preload",
                    "/etc/ld.so.preload",
                    "root",
                    "/usr/lib/libsnoopy.so"
                ),
                (
                    "ld_so_preload",
                    "/etc/ld.so.preload",
                    "root",
                    "libjemalloc.so.2"
                ),
                ("profile_d", "/etc/profile.d/proxy.sh", "root", "proxy.sh"),
                ("rc_local", "/etc/rc.local", "root", "rc.local"),
                ("shell_rc", "/etc/profile", "root", "profile"),
                ("shell_rc", "/root/.bashrc", "root", ".bashrc"),
            ]
        );
        assert_eq!(items[3].sha256, sha256_hex(b"/usr/lib/libsnoopy.so"));
        assert_eq!(items[6].sha256, sha256_hex(b"#!/bin/sh\nexit 0\n"));
        let at: Vec<(&str, Option<u32>)> =
            issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        assert_eq!(
            at,
            [
                ("/etc/ld.so.preload", Some(5)),
                ("/etc/ld.so.preload", Some(6))
            ]
        );
    }

    #[test]
    fn key_lines_parse_options_types_and_fingerprints() {
        let k = key_line(ED25519).unwrap().unwrap();
        assert_eq!(
            k,
            Key {
                options: None,
                kind: "ssh-ed25519",
                fingerprint: ED25519_FP.into(),
                comment: "ops@bastion",
            }
        );
        assert_eq!(
            k.entry(),
            format!("ssh-ed25519 SHA256:{ED25519_FP} ops@bastion")
        );
        let k = key_line(ECDSA).unwrap().unwrap();
        assert_eq!((k.fingerprint.as_str(), k.comment), (ECDSA_FP, ""));
        assert_eq!(k.entry(), format!("ecdsa-sha2-nistp256 SHA256:{ECDSA_FP}"));

        let opts = r#"from="10.0.0.1,10.0.0.2",command="/usr/bin/rsync --server -e.LsfxC, \"a b\"",no-pty"#;
        let line = format!("{opts}   {ED25519} with  spaces");
        let k = key_line(&line).unwrap().unwrap();
        assert_eq!(k.options, Some(opts));
        assert_eq!(k.comment, "ops@bastion with  spaces");
        assert_eq!(k.fingerprint, ED25519_FP);
        assert!(k.entry().ends_with(&format!(" options={opts}")));

        // Unpadded base64 is what some tools write; ssh accepts it.
        let unpadded = ECDSA.trim_end_matches('=');
        assert_eq!(key_line(unpadded).unwrap().unwrap().fingerprint, ECDSA_FP);

        assert_eq!(key_line("  # c"), Ok(None));
        assert_eq!(key_line(""), Ok(None));
        assert!(key_line("ssh-ed25519 AAAA!!!! x").is_err());
        assert!(key_line("no-pty ssh-foo AAAA").is_err());
        assert!(key_line(r#"command="unterminated ssh-ed25519 AAAA"#).is_err());
        assert!(key_line("-----BEGIN OPENSSH PRIVATE KEY-----").is_err());
        // An RSA type over ed25519 key data.
        let swapped = ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert_eq!(key_line(&swapped), Err("key data does not match its type"));
    }

    #[test]
    fn authorized_keys_of_every_home_become_items_and_bad_lines_issues() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n\
             bob:x:1001:1001::/home/alice:/bin/sh\nbroken line\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
        );
        write(r, "/root/.ssh/authorized_keys", format!("{ED25519}\n"));
        write(
            r,
            "/home/alice/.ssh/authorized_keys2",
            format!(
                "# laptop\nno-agent-forwarding,command=\"echo a, b\" {ECDSA} laptop\n\
                 ssh-rsa AAAAB3NzaC1yc2E=%% bad\n{ED25519}\n"
            ),
        );
        let (items, issues) = run(r);
        let keys = of(&items, "authorized_keys");
        let got: Vec<(&str, &str, &str)> = keys
            .iter()
            .map(|i| (i.path.as_str(), i.user.as_str(), i.entry.as_str()))
            .collect();
        let ecdsa_entry = format!(
            "ecdsa-sha2-nistp256 SHA256:{ECDSA_FP} laptop options=no-agent-forwarding,command=\"echo a, b\""
        );
        let ed_entry = format!("ssh-ed25519 SHA256:{ED25519_FP} ops@bastion");
        assert_eq!(
            got,
            [
                (
                    "/home/alice/.ssh/authorized_keys2",
                    "alice",
                    ecdsa_entry.as_str()
                ),
                (
                    "/home/alice/.ssh/authorized_keys2",
                    "alice",
                    ed_entry.as_str()
                ),
                ("/root/.ssh/authorized_keys", "root", ed_entry.as_str()),
            ]
        );
        assert_eq!(keys[2].sha256, sha256_hex(ED25519.as_bytes()));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].file.as_str(), issues[0].line),
            ("/home/alice/.ssh/authorized_keys2", Some(3))
        );
        assert!(!issues[0].message.contains("AAAA"));
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        if std::process::Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .is_err()
        {
            eprintln!("ssh-keygen not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for (t, bits) in [("ed25519", ""), ("ecdsa", "384"), ("rsa", "2048")] {
            let key = dir.path().join(t);
            let mut cmd = std::process::Command::new("ssh-keygen");
            cmd.args(["-q", "-t", t, "-N", "", "-C", "test key", "-f"])
                .arg(&key);
            if !bits.is_empty() {
                cmd.args(["-b", bits]);
            }
            assert!(cmd.status().unwrap().success());
            let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            let out = std::process::Command::new("ssh-keygen")
                .arg("-lf")
                .arg(key.with_extension("pub"))
                .output()
                .unwrap();
            let listed = String::from_utf8(out.stdout).unwrap();
            let expected = listed.split_whitespace().nth(1).unwrap();
            let k = key_line(&pubkey).unwrap().unwrap();
            assert_eq!(format!("SHA256:{}", k.fingerprint), expected, "{t}");
            assert_eq!(k.comment, "test key");
        }
    }

    #[test]
    fn a_binary_file_costs_a_capped_number_of_issues() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let junk: Vec<u8> = (0..40_000u32).map(|i| (i * 7919 % 256) as u8).collect();
        write(r, "/etc/cron.d/junk", &junk);
        write(r, "/etc/cron.d/ok", "* * * * * root /bin/true\n");
        let (items, issues) = run(r);
        assert_eq!(of(&items, "cron").len(), 1);
        assert_eq!(issues.len(), MAX_LINE_ISSUES + 1);
        assert!(
            issues[MAX_LINE_ISSUES]
                .message
                .ends_with("more malformed lines")
        );
        assert!(issues.iter().all(|i| i.file == "/etc/cron.d/junk"));
    }

    #[test]
    fn paths_normalize_and_templates_name() {
        assert_eq!(normalize("/a/b/../../../c/./d"), "/c/d");
        assert_eq!(
            template_name("getty@tty1.service").as_deref(),
            Some("getty@.service")
        );
        assert_eq!(template_name("getty@.service"), None);
        assert_eq!(template_name("ssh.service"), None);
    }
}
