//! Password-complexity policy: password ageing in `/etc/login.defs`, password quality
//! (pam_pwquality or pam_cracklib) in the PAM password stack, and lockout after failed logins
//! (pam_faillock or pam_tally2) in the PAM auth stack, each compared with a baseline.
//!
//! The stacks are Debian's `common-password` / `common-auth` and RHEL's `system-auth` and
//! `password-auth` (both: local logins use the first, sshd the second), with `@include`,
//! `include` and `substack` followed. A module counts as enabled when every stack file present
//! has it; its settings come from the first line found, over its configuration file
//! (`pwquality.conf` then, as libpwquality reads them, `pwquality.conf.d/*.conf` before it;
//! `faillock.conf`) with the module's own defaults below those. A setting not written anywhere
//! has `actual: None`, but still passes when the module's default meets the baseline.
//!
//! Bad lines cost only themselves: each is an issue naming file and line, and the rest of the
//! file still counts.

use std::collections::{BTreeMap, HashSet};

use std::path::{Path, PathBuf};

use hostward_proto::inventory::CollectIssue;
use hostward_proto::risk::{PasswordPolicyResult, PolicyCheck};

const LOGIN_DEFS: &str = "/etc/login.defs";
const PAM_D: &str = "/etc/pam.d";
const PWQUALITY_CONF: &str = "/etc/security/pwquality.conf";
const PWQUALITY_CONF_D: &str = "/etc/security/pwquality.conf.d";
const FAILLOCK_CONF: &str = "/etc/security/faillock.conf";

/// Password stacks: Debian/Ubuntu/SUSE, then RHEL-family.
const PASSWORD_STACKS: [&str; 3] = [
    "/etc/pam.d/common-password",
    "/etc/pam.d/system-auth",
    "/etc/pam.d/password-auth",
];
const AUTH_STACKS: [&str; 3] = [
    "/etc/pam.d/common-auth",
    "/etc/pam.d/system-auth",
    "/etc/pam.d/password-auth",
];

/// Baselines.
const MAX_DAYS: i64 = 90;
const MIN_DAYS: i64 = 1;
const WARN_AGE: i64 = 7;
const MIN_LEN: i64 = 8;
const MIN_CLASSES: i64 = 3;
const MAX_RETRY: i64 = 3;
const MAX_DENY: i64 = 5;
const MIN_UNLOCK_SECS: i64 = 300;

const PWQUALITY_KEYS: [&str; 20] = [
    "difok",
    "minlen",
    "dcredit",
    "ucredit",
    "lcredit",
    "ocredit",
    "minclass",
    "maxrepeat",
    "maxsequence",
    "maxclassrepeat",
    "gecoscheck",
    "dictcheck",
    "usercheck",
    "usersubstr",
    "enforcing",
    "badwords",
    "dictpath",
    "retry",
    "enforce_for_root",
    "local_users_only",
];
const FAILLOCK_KEYS: [&str; 12] = [
    "dir",
    "audit",
    "silent",
    "no_log_info",
    "local_users_only",
    "nodelay",
    "deny",
    "fail_interval",
    "unlock_time",
    "even_deny_root",
    "root_unlock_time",
    "admin_group",
];
const CREDITS: [&str; 4] = ["dcredit", "ucredit", "lcredit", "ocredit"];

/// PAM includes deeper than this are a loop or a mistake.
const MAX_INCLUDE_DEPTH: usize = 8;

pub fn check(root: &Path) -> PasswordPolicyResult {
    let mut r = Reader {
        root,
        issues: Vec::new(),
    };
    let mut checks = login_defs_checks(&mut r);
    checks.extend(quality_checks(&mut r));
    checks.extend(lockout_checks(&mut r));
    // login.defs PASS_MIN_LEN is only what shadow's own passwd enforces; with a PAM quality
    // module in the stack, that module's minlen is the length that counts.
    let quality_minlen = checks
        .iter()
        .find(|c| c.id == "pwquality.minlen")
        .is_some_and(|c| c.pass);
    if let Some(c) = checks
        .iter_mut()
        .find(|c| c.id == "login_defs.pass_min_len")
    {
        c.pass |= quality_minlen;
    }
    // Stacks share files (system-auth is read for both password and auth lines): one issue
    // per problem.
    let mut seen = HashSet::new();
    let mut issues = r.issues;
    issues.retain(|i| seen.insert((i.file.clone(), i.line, i.message.clone())));
    PasswordPolicyResult { checks, issues }
}

struct Reader<'a> {
    root: &'a Path,
    issues: Vec<CollectIssue>,
}

impl Reader<'_> {
    /// Where a host path is under the root. A symbolic link at the end (authselect makes
    /// `/etc/pam.d/system-auth` one) is followed inside the root, not on the machine running
    /// the check.
    fn path(&self, host_path: &str) -> PathBuf {
        let mut path = self.root.join(host_path.trim_start_matches('/'));
        for _ in 0..8 {
            let Ok(target) = std::fs::read_link(&path) else {
                break;
            };
            path = if target.is_absolute() {
                self.root.join(target.strip_prefix("/").unwrap_or(&target))
            } else {
                path.parent().unwrap_or(self.root).join(target)
            };
        }
        path
    }

    fn exists(&self, host_path: &str) -> bool {
        self.path(host_path).is_file()
    }

    /// A missing file is `None` without an issue: most of these files are optional.
    fn read(&mut self, host_path: &str) -> Option<String> {
        match std::fs::read(self.path(host_path)) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.issue(host_path, None, format!("cannot read: {e}"));
                None
            }
        }
    }

    fn issue(&mut self, file: &str, line: Option<u32>, message: impl Into<String>) {
        self.issues.push(CollectIssue {
            file: file.to_string(),
            line,
            message: message.into(),
        });
    }
}

fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// A value and where it was set.
#[derive(Debug, Clone)]
struct Setting {
    value: String,
    file: String,
}

impl Setting {
    fn number(&self) -> Option<i64> {
        self.value.parse().ok()
    }
}

fn numeric(value: &str) -> bool {
    value.parse::<i64>().is_ok()
}

fn login_defs_checks(r: &mut Reader) -> Vec<PolicyCheck> {
    const NUMERIC: [&str; 4] = [
        "PASS_MAX_DAYS",
        "PASS_MIN_DAYS",
        "PASS_WARN_AGE",
        "PASS_MIN_LEN",
    ];
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    if let Some(text) = r.read(LOGIN_DEFS) {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = Some(line_no(i));
            let mut words = line.split_whitespace();
            let key = words.next().unwrap_or_default();
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                r.issue(LOGIN_DEFS, n, "not a setting name");
                continue;
            }
            let Some(value) = words.next() else {
                r.issue(LOGIN_DEFS, n, format!("{key}: no value"));
                continue;
            };
            if NUMERIC.contains(&key) && !numeric(value) {
                r.issue(LOGIN_DEFS, n, format!("{key}: not a number"));
            }
            // shadow's getdef keeps the last value of a name.
            values.insert(key.to_string(), value.to_string());
        }
    }
    let get = |key: &str| -> Option<Setting> {
        values.get(key).map(|v| Setting {
            value: v.clone(),
            file: LOGIN_DEFS.to_string(),
        })
    };
    let item = |id: &str, title: &str, key: &str, expected: String, ok: &dyn Fn(i64) -> bool| {
        let s = get(key);
        PolicyCheck {
            id: id.to_string(),
            title: title.to_string(),
            file: LOGIN_DEFS.to_string(),
            expected,
            pass: s.as_ref().and_then(Setting::number).is_some_and(ok),
            actual: s.map(|s| s.value),
            remedy: String::new(),
        }
    };
    let mut checks = vec![
        item(
            "login_defs.pass_max_days",
            "Maximum password age (days)",
            "PASS_MAX_DAYS",
            format!("<= {MAX_DAYS}"),
            &|v| (0..=MAX_DAYS).contains(&v),
        ),
        item(
            "login_defs.pass_min_days",
            "Minimum days between password changes",
            "PASS_MIN_DAYS",
            format!(">= {MIN_DAYS}"),
            &|v| v >= MIN_DAYS,
        ),
        item(
            "login_defs.pass_warn_age",
            "Days of warning before a password expires",
            "PASS_WARN_AGE",
            format!(">= {WARN_AGE}"),
            &|v| v >= WARN_AGE,
        ),
        item(
            "login_defs.pass_min_len",
            "Minimum password length (login.defs; a PAM quality module's minlen takes its place)",
            "PASS_MIN_LEN",
            format!(">= {MIN_LEN}"),
            &|v| v >= MIN_LEN,
        ),
    ];
    let remedies = [
        format!(
            "Set PASS_MAX_DAYS {MAX_DAYS} in /etc/login.defs; it applies to new passwords, so also run chage -M {MAX_DAYS} for existing accounts"
        ),
        format!(
            "Set PASS_MIN_DAYS {MIN_DAYS} in /etc/login.defs; for existing accounts run chage -m {MIN_DAYS}"
        ),
        format!(
            "Set PASS_WARN_AGE {WARN_AGE} in /etc/login.defs; for existing accounts run chage -W {WARN_AGE}"
        ),
        format!(
            "Set minlen = {MIN_LEN} in /etc/security/pwquality.conf (what PAM enforces), or PASS_MIN_LEN {MIN_LEN} in /etc/login.defs on hosts without PAM"
        ),
    ];
    for (c, remedy) in checks.iter_mut().zip(remedies) {
        c.remedy = remedy;
    }
    checks
}

/// One module line of a PAM stack, includes expanded.
#[derive(Debug, Clone)]
struct PamLine {
    control: String,
    /// Base name without `.so`: `pam_pwquality`.
    module: String,
    args: Vec<String>,
    file: String,
}

impl PamLine {
    fn arg(&self, key: &str) -> Option<Setting> {
        // The last occurrence wins, as in the modules' own argument loops.
        self.args.iter().rev().find_map(|a| {
            let (k, v) = a.split_once('=')?;
            (k == key).then(|| Setting {
                value: v.to_string(),
                file: self.file.clone(),
            })
        })
    }
}

/// Module lines of `kind` in a stack file, includes followed.
fn pam_stack(r: &mut Reader, file: &str, kind: &str) -> Vec<PamLine> {
    let mut out = Vec::new();
    let mut chain = Vec::new();
    pam_file(r, file, kind, &mut chain, &mut out);
    out
}

/// PAM's own tokenizer: `#` starts a comment anywhere, a backslash at the end joins the next
/// line, and `[...]` (a control or an argument) is one token even with spaces inside.
fn pam_logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((line_no(i), String::new()));
        let content = match raw.find('#') {
            Some(p) => &raw[..p],
            None => raw,
        };
        if let Some(body) = content.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(content);
        out.push((start, acc));
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

fn pam_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut bracket: Option<String> = None;
    for w in line.split_whitespace() {
        match bracket.as_mut() {
            Some(acc) => {
                acc.push(' ');
                acc.push_str(w);
                if w.ends_with(']') {
                    out.extend(bracket.take());
                }
            }
            None if w.starts_with('[') && !w.ends_with(']') => bracket = Some(w.to_string()),
            None => out.push(w.to_string()),
        }
    }
    out.extend(bracket);
    out
}

fn pam_include_path(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("{PAM_D}/{name}")
    }
}

fn pam_file(
    r: &mut Reader,
    file: &str,
    kind: &str,
    chain: &mut Vec<String>,
    out: &mut Vec<PamLine>,
) {
    let Some(text) = r.read(file) else {
        return;
    };
    chain.push(file.to_string());
    for (n, line) in pam_logical_lines(&text) {
        let tokens = pam_tokens(&line);
        let Some(first) = tokens.first() else {
            continue;
        };
        if first == "@include" {
            match tokens.get(1) {
                Some(target) => include(r, file, n, &pam_include_path(target), kind, chain, out),
                None => r.issue(file, Some(n), "@include without a file"),
            }
            continue;
        }
        let line_kind = first.trim_start_matches('-').to_ascii_lowercase();
        if !["auth", "account", "password", "session"].contains(&line_kind.as_str()) {
            r.issue(file, Some(n), "unknown PAM module type");
            continue;
        }
        let (Some(control), Some(module)) = (tokens.get(1), tokens.get(2)) else {
            r.issue(file, Some(n), "expected a type, a control and a module");
            continue;
        };
        if line_kind != kind {
            continue;
        }
        if control == "include" || control == "substack" {
            include(r, file, n, &pam_include_path(module), kind, chain, out);
            continue;
        }
        let base = module.rsplit('/').next().unwrap_or(module);
        out.push(PamLine {
            control: control.clone(),
            module: base.strip_suffix(".so").unwrap_or(base).to_string(),
            args: tokens[3..].to_vec(),
            file: file.to_string(),
        });
    }
    chain.pop();
}

fn include(
    r: &mut Reader,
    from: &str,
    line: u32,
    target: &str,
    kind: &str,
    chain: &mut Vec<String>,
    out: &mut Vec<PamLine>,
) {
    if chain.iter().any(|f| f == target) || chain.len() >= MAX_INCLUDE_DEPTH {
        r.issue(from, Some(line), format!("includes {target} in a loop"));
    } else if !r.exists(target) {
        r.issue(
            from,
            Some(line),
            format!("includes {target}, which does not exist"),
        );
    } else {
        pam_file(r, target, kind, chain, out);
    }
}

/// The first line of one of `modules` in the stacks, whether every stack present has one, and
/// the file to name: the first stack without it, else the file of the line found.
fn find_module(
    r: &mut Reader,
    stacks: &[&str],
    kind: &str,
    modules: &[&str],
) -> (Option<PamLine>, bool, String) {
    let present: Vec<&str> = stacks.iter().copied().filter(|f| r.exists(f)).collect();
    let mut first = None;
    let mut everywhere = !present.is_empty();
    let mut missing_in = None;
    for file in &present {
        let found = pam_stack(r, file, kind)
            .into_iter()
            .find(|l| modules.contains(&l.module.as_str()));
        match found {
            Some(l) => {
                first.get_or_insert(l);
            }
            None => {
                everywhere = false;
                missing_in.get_or_insert(file.to_string());
            }
        }
    }
    let file = missing_in
        .or_else(|| first.as_ref().map(|l| l.file.clone()))
        .or_else(|| present.first().map(|f| f.to_string()))
        .unwrap_or_else(|| stacks[0].to_string());
    (first, everywhere, file)
}

/// `key = value` lines (or a bare `key` flag) of pwquality.conf and faillock.conf into `into`.
fn read_conf(
    r: &mut Reader,
    file: &str,
    known: &[&str],
    numeric_keys: &[&str],
    into: &mut BTreeMap<String, Setting>,
) {
    // faillock.conf may spell an unlock time of 0 as "never".
    let valid = |key: &str, value: &str| {
        !numeric_keys.contains(&key) || numeric(value) || (key == "unlock_time" && value == "never")
    };
    let Some(text) = r.read(file) else {
        return;
    };
    for (i, line) in text.lines().enumerate() {
        let content = match line.find('#') {
            Some(p) => &line[..p],
            None => line,
        }
        .trim();
        if content.is_empty() {
            continue;
        }
        let n = Some(line_no(i));
        let (key, value) = match content.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (content, ""),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            r.issue(file, n, "expected key = value");
            continue;
        }
        if !known.contains(&key) {
            r.issue(file, n, format!("unknown setting {key}"));
            continue;
        }
        if !valid(key, value) {
            r.issue(file, n, format!("{key}: not a number"));
            continue;
        }
        let value = if value == "never" { "0" } else { value };
        into.insert(
            key.to_string(),
            Setting {
                value: value.to_string(),
                file: file.to_string(),
            },
        );
    }
}

fn pwquality_conf(r: &mut Reader) -> BTreeMap<String, Setting> {
    let numeric_keys = [
        "difok",
        "minlen",
        "dcredit",
        "ucredit",
        "lcredit",
        "ocredit",
        "minclass",
        "maxrepeat",
        "maxsequence",
        "maxclassrepeat",
        "retry",
    ];
    let mut settings = BTreeMap::new();
    let mut dropins: Vec<String> = match std::fs::read_dir(r.path(PWQUALITY_CONF_D)) {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".conf"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            r.issue(PWQUALITY_CONF_D, None, format!("cannot read: {e}"));
            Vec::new()
        }
    };
    dropins.sort();
    for name in dropins {
        let file = format!("{PWQUALITY_CONF_D}/{name}");
        read_conf(r, &file, &PWQUALITY_KEYS, &numeric_keys, &mut settings);
    }
    read_conf(
        r,
        PWQUALITY_CONF,
        &PWQUALITY_KEYS,
        &numeric_keys,
        &mut settings,
    );
    settings
}

/// A setting of a module: its argument, else its configuration file, else its default. Without
/// an enforcing module line nothing applies (`value: None`), whatever a file says.
struct Effective {
    set: Option<Setting>,
    value: Option<i64>,
}

fn effective(
    line: Option<&PamLine>,
    conf: &BTreeMap<String, Setting>,
    key: &str,
    default: Option<i64>,
) -> Effective {
    let set = line
        .and_then(|l| l.arg(key))
        .or_else(|| conf.get(key).cloned());
    let value = match &set {
        _ if line.is_none() => None,
        Some(s) => s.number(),
        None => default,
    };
    Effective { set, value }
}

fn quality_checks(r: &mut Reader) -> Vec<PolicyCheck> {
    let (line, everywhere, stack_file) = find_module(
        r,
        &PASSWORD_STACKS,
        "password",
        &["pam_pwquality", "pam_cracklib"],
    );
    // An optional quality module warns but lets any password through.
    let enforced = everywhere && line.as_ref().is_some_and(|l| l.control != "optional");
    let found = line
        .as_ref()
        .map(|l| match (everywhere, l.control.as_str()) {
            (false, _) => format!("{} (not in every stack)", l.module),
            (true, "optional") => format!("{} (optional: not enforced)", l.module),
            _ => l.module.clone(),
        });
    let pwquality = line.as_ref().is_none_or(|l| l.module == "pam_pwquality");
    // pam_cracklib reads no configuration file; its settings are arguments only.
    let conf = if pwquality {
        pwquality_conf(r)
    } else {
        BTreeMap::new()
    };
    let line = line.filter(|_| enforced);
    let line = line.as_ref();
    // Defaults of pam_pwquality(8) and pam_cracklib(8).
    let (d_minlen, d_credit) = if pwquality { (8, 0) } else { (9, 1) };
    let conf_file = |s: &Option<Setting>| match s {
        Some(s) => s.file.clone(),
        None if pwquality => PWQUALITY_CONF.to_string(),
        None => stack_file.clone(),
    };

    let minlen = effective(line, &conf, "minlen", Some(d_minlen));
    let retry = effective(line, &conf, "retry", Some(1));
    let minclass = effective(line, &conf, "minclass", Some(0));
    let credits: Vec<(&str, Effective)> = CREDITS
        .iter()
        .map(|k| (*k, effective(line, &conf, k, Some(d_credit))))
        .collect();
    let classes = {
        let required = credits
            .iter()
            .filter(|(_, e)| e.value.is_some_and(|v| v <= -1))
            .count();
        let required = i64::try_from(required).unwrap_or(0);
        minclass.value.map(|m| m.max(required))
    };
    let class_actual: Vec<String> = std::iter::once(("minclass", &minclass))
        .chain(credits.iter().map(|(k, e)| (*k, e)))
        .filter_map(|(k, e)| e.set.as_ref().map(|s| format!("{k}={}", s.value)))
        .collect();
    let class_file = std::iter::once(&minclass.set)
        .chain(credits.iter().map(|(_, e)| &e.set))
        .find(|s| s.is_some())
        .map_or_else(|| conf_file(&None), conf_file);

    vec![
        PolicyCheck {
            id: "pwquality.enabled".into(),
            title: "Password quality checks (pam_pwquality or pam_cracklib)".into(),
            file: stack_file.clone(),
            expected: "enabled".into(),
            actual: found,
            pass: line.is_some(),
            remedy: "Install libpam-pwquality (Debian, Ubuntu) or run authselect with pam_pwquality (RHEL family) so the password stack has: password requisite pam_pwquality.so retry=3".into(),
        },
        PolicyCheck {
            id: "pwquality.minlen".into(),
            title: "Minimum password length".into(),
            file: conf_file(&minlen.set),
            expected: format!(">= {MIN_LEN}"),
            actual: minlen.set.map(|s| s.value),
            pass: minlen.value.is_some_and(|v| v >= MIN_LEN),
            remedy: format!("Set minlen = {MIN_LEN} (or more) in /etc/security/pwquality.conf"),
        },
        PolicyCheck {
            id: "pwquality.minclass".into(),
            title: "Character classes required (digits, upper, lower, other)".into(),
            file: class_file,
            expected: format!(
                "minclass >= {MIN_CLASSES}, or dcredit, ucredit, lcredit, ocredit <= -1"
            ),
            actual: (!class_actual.is_empty()).then(|| class_actual.join(" ")),
            pass: classes.is_some_and(|c| c >= MIN_CLASSES),
            remedy: format!("Set minclass = {MIN_CLASSES} in /etc/security/pwquality.conf"),
        },
        PolicyCheck {
            id: "pwquality.retry".into(),
            title: "Prompts for a new password before passwd gives up".into(),
            file: conf_file(&retry.set),
            expected: format!("<= {MAX_RETRY}"),
            actual: retry.set.map(|s| s.value),
            pass: retry.value.is_some_and(|v| (1..=MAX_RETRY).contains(&v)),
            remedy: format!("Set retry = {MAX_RETRY} in /etc/security/pwquality.conf"),
        },
    ]
}

/// faillock.conf, or the file a `conf=` argument names instead.
fn faillock_conf(r: &mut Reader, line: Option<&PamLine>) -> BTreeMap<String, Setting> {
    let file = line
        .and_then(|l| l.arg("conf"))
        .map_or_else(|| FAILLOCK_CONF.to_string(), |s| s.value);
    let mut settings = BTreeMap::new();
    let numeric_keys = ["deny", "fail_interval", "unlock_time", "root_unlock_time"];
    read_conf(r, &file, &FAILLOCK_KEYS, &numeric_keys, &mut settings);
    settings
}

fn lockout_checks(r: &mut Reader) -> Vec<PolicyCheck> {
    let (line, everywhere, stack_file) =
        find_module(r, &AUTH_STACKS, "auth", &["pam_faillock", "pam_tally2"]);
    let found = line.as_ref().map(|l| match everywhere {
        false => format!("{} (not in every stack)", l.module),
        true => l.module.clone(),
    });
    let line = line.filter(|_| everywhere);
    let line = line.as_ref();
    let faillock = line.is_none_or(|l| l.module == "pam_faillock");
    // pam_tally2 has no configuration file, never locks without deny=, and without
    // unlock_time= keeps an account locked until an administrator resets it.
    let (conf, d_deny, d_unlock) = if faillock {
        (faillock_conf(r, line), 3, 600)
    } else {
        (BTreeMap::new(), 0, 0)
    };
    let conf_file = |s: &Option<Setting>| match s {
        Some(s) => s.file.clone(),
        None if faillock => FAILLOCK_CONF.to_string(),
        None => stack_file.clone(),
    };
    let deny = effective(line, &conf, "deny", Some(d_deny));
    let unlock = effective(line, &conf, "unlock_time", Some(d_unlock));
    vec![
        PolicyCheck {
            id: "faillock.enabled".into(),
            title: "Account lockout after failed logins (pam_faillock or pam_tally2)".into(),
            file: stack_file.clone(),
            expected: "enabled".into(),
            actual: found,
            pass: line.is_some(),
            remedy: "Enable pam_faillock in the auth stack: authselect enable-feature with-faillock (RHEL family), or the preauth and authfail lines of pam_faillock(8) in /etc/pam.d/common-auth (Debian, Ubuntu)".into(),
        },
        PolicyCheck {
            id: "faillock.deny".into(),
            title: "Failed logins before the account locks".into(),
            file: conf_file(&deny.set),
            expected: format!("<= {MAX_DENY}"),
            actual: deny.set.map(|s| s.value),
            pass: deny.value.is_some_and(|v| (1..=MAX_DENY).contains(&v)),
            remedy: format!("Set deny = {MAX_DENY} (or fewer) in /etc/security/faillock.conf"),
        },
        PolicyCheck {
            id: "faillock.unlock_time".into(),
            title: "Seconds an account stays locked".into(),
            file: conf_file(&unlock.set),
            expected: format!(">= {MIN_UNLOCK_SECS}, or 0 (until an administrator unlocks it)"),
            actual: unlock.set.map(|s| s.value),
            pass: unlock
                .value
                .is_some_and(|v| v == 0 || v >= MIN_UNLOCK_SECS),
            remedy: format!(
                "Set unlock_time = {MIN_UNLOCK_SECS} (or more) in /etc/security/faillock.conf"
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, host_path: &str, content: impl AsRef<[u8]>) {
        let p = root.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn get<'r>(r: &'r PasswordPolicyResult, id: &str) -> &'r PolicyCheck {
        r.checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}: {r:?}"))
    }

    const IDS: [&str; 11] = [
        "login_defs.pass_max_days",
        "login_defs.pass_min_days",
        "login_defs.pass_warn_age",
        "login_defs.pass_min_len",
        "pwquality.enabled",
        "pwquality.minlen",
        "pwquality.minclass",
        "pwquality.retry",
        "faillock.enabled",
        "faillock.deny",
        "faillock.unlock_time",
    ];

    /// Debian 12 as installed: the settings of its login.defs and its PAM stacks.
    fn debian_defaults(root: &Path) {
        write(
            root,
            "/etc/login.defs",
            "#\n# /etc/login.defs - Configuration control definitions for the login package.\n\
             MAIL_DIR        /var/mail\nFAILLOG_ENAB\t\tyes\n\
             ENV_PATH\tPATH=/usr/local/bin:/usr/bin:/bin\nUMASK\t\t022\n\
             #\tPASS_MAX_DAYS\tMaximum number of days a password may be used.\n\
             PASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nPASS_WARN_AGE\t7\n\
             UID_MIN\t\t\t 1000\nENCRYPT_METHOD SHA512\n#PASS_MIN_LEN 5\n",
        );
        write(
            root,
            "/etc/pam.d/common-password",
            "# here are the per-package modules (the \"Primary\" block)\n\
             password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n\
             # here's the fallback if no module succeeds\n\
             password\trequisite\t\t\tpam_deny.so\n\
             password\trequired\t\t\tpam_permit.so\n",
        );
        write(
            root,
            "/etc/pam.d/common-auth",
            "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
             auth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\n\
             auth\toptional\t\t\tpam_cap.so \n",
        );
        write(
            root,
            "/etc/security/faillock.conf",
            "# Configuration for locking the user after multiple failed\n# deny = 3\n# unlock_time = 600\n",
        );
    }

    #[test]
    fn debian_defaults_fail_where_expected() {
        let dir = tempfile::tempdir().unwrap();
        debian_defaults(dir.path());
        let r = check(dir.path());
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, IDS);
        let passing: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.pass)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(passing, ["login_defs.pass_warn_age"]);

        let max = get(&r, "login_defs.pass_max_days");
        assert_eq!(max.actual.as_deref(), Some("99999"));
        assert_eq!(
            (max.file.as_str(), max.expected.as_str()),
            ("/etc/login.defs", "<= 90")
        );
        assert_eq!(
            get(&r, "login_defs.pass_min_days").actual.as_deref(),
            Some("0")
        );
        assert_eq!(get(&r, "login_defs.pass_min_len").actual, None);
        let q = get(&r, "pwquality.enabled");
        assert_eq!(
            (q.actual.as_ref(), q.file.as_str()),
            (None, "/etc/pam.d/common-password")
        );
        assert_eq!(get(&r, "pwquality.minlen").actual, None);
        let f = get(&r, "faillock.enabled");
        assert_eq!(
            (f.actual.as_ref(), f.file.as_str()),
            (None, "/etc/pam.d/common-auth")
        );
        assert_eq!(get(&r, "faillock.deny").actual, None, "commented out");
        for c in &r.checks {
            assert!(!c.title.is_empty() && !c.remedy.is_empty(), "{}", c.id);
        }
    }

    #[test]
    fn hardened_debian_passes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        debian_defaults(root);
        write(
            root,
            "/etc/login.defs",
            "PASS_MAX_DAYS   60\nPASS_MIN_DAYS 1 # a day\nPASS_WARN_AGE\t14\nPASS_MIN_LEN 12\n",
        );
        write(
            root,
            "/etc/pam.d/common-password",
            "password\trequisite\t\t\tpam_pwquality.so \\\n\
             \t\tretry=3 minlen=12 # more below\n\
             password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n\
             password\trequisite\t\t\tpam_deny.so\n",
        );
        write(
            root,
            "/etc/security/pwquality.conf",
            "# minlen = 4\nminclass = 2\ndcredit=-1\nucredit = -1\n  lcredit = -1  \nenforce_for_root\n",
        );
        write(
            root,
            "/etc/security/pwquality.conf.d/10-local.conf",
            "minlen = 6\nretry = 5\n",
        );
        write(
            root,
            "/etc/pam.d/common-auth",
            "auth requisite pam_faillock.so preauth\n\
             auth [success=1 default=ignore] pam_unix.so\n\
             auth [default=die] pam_faillock.so authfail\n\
             auth sufficient pam_faillock.so authsucc\n\
             auth requisite pam_deny.so\n",
        );
        write(
            root,
            "/etc/security/faillock.conf",
            "silent\ndeny = 5\nunlock_time = never\n",
        );
        let r = check(root);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        for c in &r.checks {
            assert!(c.pass, "{c:?}");
        }
        let actual = |id: &str| get(&r, id).actual.clone();
        let file = |id: &str| get(&r, id).file.clone();
        assert_eq!(
            actual("pwquality.enabled").as_deref(),
            Some("pam_pwquality")
        );
        assert_eq!(
            actual("pwquality.minlen").as_deref(),
            Some("12"),
            "argument over files"
        );
        assert_eq!(file("pwquality.minlen"), "/etc/pam.d/common-password");
        assert_eq!(actual("pwquality.retry").as_deref(), Some("3"));
        assert_eq!(
            actual("pwquality.minclass").as_deref(),
            Some("minclass=2 dcredit=-1 ucredit=-1 lcredit=-1"),
            "three credits below zero make three classes"
        );
        assert_eq!(file("pwquality.minclass"), "/etc/security/pwquality.conf");
        assert_eq!(actual("faillock.enabled").as_deref(), Some("pam_faillock"));
        assert_eq!(actual("faillock.deny").as_deref(), Some("5"));
        assert_eq!(file("faillock.deny"), "/etc/security/faillock.conf");
        assert_eq!(
            actual("faillock.unlock_time").as_deref(),
            Some("0"),
            "never"
        );
    }

    #[test]
    fn rhel_stacks_through_authselect_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/login.defs",
            "PASS_MAX_DAYS 90\nPASS_MIN_DAYS 7\nPASS_WARN_AGE 7\n",
        );
        let system_auth = "auth required pam_env.so\n\
             auth required pam_faillock.so preauth silent deny=4\n\
             auth sufficient pam_unix.so\n\
             auth [default=die] pam_faillock.so authfail\n\
             password requisite pam_pwquality.so local_users_only\n\
             password sufficient pam_unix.so sha512 shadow use_authtok\n";
        write(root, "/etc/authselect/system-auth", system_auth);
        write(
            root,
            "/etc/authselect/password-auth",
            "auth substack common-auth-sub\n-password requisite pam_pwquality.so minlen=16\n",
        );
        write(
            root,
            "/etc/pam.d/common-auth-sub",
            "auth required pam_unix.so\n",
        );
        std::fs::create_dir_all(root.join("etc/pam.d")).unwrap();
        std::os::unix::fs::symlink(
            "/etc/authselect/system-auth",
            root.join("etc/pam.d/system-auth"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../authselect/password-auth",
            root.join("etc/pam.d/password-auth"),
        )
        .unwrap();
        write(
            root,
            "/etc/security/pwquality.conf",
            "minlen = 14\nminclass = 4\n",
        );
        write(
            root,
            "/etc/security/pwquality.conf.d/50-x.conf",
            "minlen = 10\nminclass = 1\n",
        );

        let r = check(root);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        let q = get(&r, "pwquality.enabled");
        assert!(q.pass);
        assert_eq!(q.file, "/etc/pam.d/system-auth");
        let minlen = get(&r, "pwquality.minlen");
        assert_eq!(
            minlen.actual.as_deref(),
            Some("14"),
            "main file read after conf.d"
        );
        assert_eq!(
            get(&r, "pwquality.minclass").actual.as_deref(),
            Some("minclass=4")
        );
        assert!(get(&r, "pwquality.retry").pass, "default 1");
        assert_eq!(get(&r, "pwquality.retry").actual, None);
        assert!(!get(&r, "login_defs.pass_min_len").pass || minlen.pass);
        assert!(
            get(&r, "login_defs.pass_min_len").pass,
            "PAM minlen stands in"
        );

        let f = get(&r, "faillock.enabled");
        assert!(!f.pass, "password-auth has no pam_faillock");
        assert_eq!(f.file, "/etc/pam.d/password-auth");
        assert_eq!(
            f.actual.as_deref(),
            Some("pam_faillock (not in every stack)")
        );
        assert!(!get(&r, "faillock.deny").pass);
        assert!(!get(&r, "faillock.unlock_time").pass);

        write(
            root,
            "/etc/authselect/password-auth",
            "auth required pam_faillock.so preauth\n-password requisite pam_pwquality.so\n",
        );
        let r = check(root);
        let deny = get(&r, "faillock.deny");
        assert!(deny.pass);
        assert_eq!(deny.actual.as_deref(), Some("4"));
        assert_eq!(deny.file, "/etc/pam.d/system-auth");
        let unlock = get(&r, "faillock.unlock_time");
        assert!(unlock.pass, "pam_faillock's default 600");
        assert_eq!(unlock.actual, None);
    }

    #[test]
    fn optional_tally_and_cracklib() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/pam.d/common-password",
            "password optional pam_pwquality.so minlen=20\n",
        );
        write(
            root,
            "/etc/pam.d/common-auth",
            "auth required pam_tally2.so onerr=fail\n",
        );
        write(root, "/etc/security/faillock.conf", "deny = 2\n");
        let r = check(root);
        let q = get(&r, "pwquality.enabled");
        assert!(!q.pass);
        assert_eq!(
            q.actual.as_deref(),
            Some("pam_pwquality (optional: not enforced)")
        );
        assert!(!get(&r, "pwquality.minlen").pass, "not enforced");
        assert!(get(&r, "faillock.enabled").pass);
        let deny = get(&r, "faillock.deny");
        assert!(
            !deny.pass,
            "tally2 without deny= never locks; faillock.conf is not its"
        );
        assert_eq!(deny.actual, None);
        assert!(get(&r, "faillock.unlock_time").pass, "locked until reset");

        write(
            root,
            "/etc/pam.d/common-password",
            "password required pam_cracklib.so retry=3 minlen=8 dcredit=-1 ucredit=-1 ocredit=-1\n",
        );
        write(root, "/etc/security/pwquality.conf", "minlen = 4\n");
        write(
            root,
            "/etc/pam.d/common-auth",
            "auth required pam_tally2.so deny=5 unlock_time=120\n",
        );
        let r = check(root);
        assert_eq!(
            get(&r, "pwquality.enabled").actual.as_deref(),
            Some("pam_cracklib")
        );
        let minlen = get(&r, "pwquality.minlen");
        assert!(minlen.pass, "cracklib reads no pwquality.conf");
        assert_eq!(minlen.file, "/etc/pam.d/common-password");
        assert!(get(&r, "pwquality.minclass").pass);
        assert!(get(&r, "faillock.deny").pass);
        assert!(!get(&r, "faillock.unlock_time").pass, "120 s");
    }

    #[test]
    fn malformed_lines_are_reported_and_the_rest_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut defs = b"PASS_MAX_DAYS\nPASS_MIN_DAYS abc\n".to_vec();
        defs.extend_from_slice(b"\xff\xfe\x00 1\nPASS_WARN_AGE 7\nPASS_MAX_DAYS 30\n");
        write(root, "/etc/login.defs", &defs);
        write(
            root,
            "/etc/pam.d/common-password",
            "@include common-pwq\npasswd requisite pam_x.so\npassword requisite\n@include missing\n",
        );
        write(
            root,
            "/etc/pam.d/common-pwq",
            "password [success=ok \\\n  default=die] pam_pwquality.so retry=2\n@include common-password\n",
        );
        write(
            root,
            "/etc/security/pwquality.conf",
            "minlen = ten\nbogus = 1\n= 3\nminlen = 9\nminclass = 3 # three\n",
        );
        write(
            root,
            "/etc/pam.d/common-auth",
            "auth required pam_faillock.so\n",
        );
        write(
            root,
            "/etc/security/faillock.conf",
            "deny = 5\nunlock_time = soon\n",
        );
        let r = check(root);

        let at: Vec<(&str, Option<u32>)> =
            r.issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        assert_eq!(
            at,
            [
                ("/etc/login.defs", Some(1)),
                ("/etc/login.defs", Some(2)),
                ("/etc/login.defs", Some(3)),
                ("/etc/pam.d/common-pwq", Some(3)),
                ("/etc/pam.d/common-password", Some(2)),
                ("/etc/pam.d/common-password", Some(3)),
                ("/etc/pam.d/common-password", Some(4)),
                ("/etc/security/pwquality.conf", Some(1)),
                ("/etc/security/pwquality.conf", Some(2)),
                ("/etc/security/pwquality.conf", Some(3)),
                ("/etc/security/faillock.conf", Some(2)),
            ],
            "{:#?}",
            r.issues
        );
        assert!(r.issues[3].message.contains("loop"), "{}", r.issues[3]);
        assert!(
            r.issues[6].message.contains("does not exist"),
            "{}",
            r.issues[6]
        );

        let max = get(&r, "login_defs.pass_max_days");
        assert!(
            max.pass && max.actual.as_deref() == Some("30"),
            "last value counts"
        );
        let min = get(&r, "login_defs.pass_min_days");
        assert!(!min.pass && min.actual.as_deref() == Some("abc"));
        assert!(get(&r, "login_defs.pass_warn_age").pass);
        assert!(get(&r, "pwquality.enabled").pass);
        assert_eq!(get(&r, "pwquality.minlen").actual.as_deref(), Some("9"));
        assert!(get(&r, "pwquality.minclass").pass);
        assert_eq!(get(&r, "pwquality.retry").actual.as_deref(), Some("2"));
        assert!(get(&r, "faillock.deny").pass);
        assert!(
            get(&r, "faillock.unlock_time").pass,
            "bad value skipped, default 600"
        );
    }

    #[test]
    fn empty_root_fails_everything_without_issues() {
        let dir = tempfile::tempdir().unwrap();
        let r = check(dir.path());
        assert!(r.issues.is_empty());
        assert_eq!(r.checks.len(), IDS.len());
        assert!(r.checks.iter().all(|c| !c.pass && c.actual.is_none()));
    }

    #[test]
    fn real_host_reads() {
        let r = check(Path::new("/"));
        assert_eq!(r.checks.len(), IDS.len());
    }

    #[test]
    fn pam_tokens_keep_brackets_together() {
        assert_eq!(
            pam_tokens("auth [success=1 default=ignore] pam_unix.so [arg with space] x"),
            [
                "auth",
                "[success=1 default=ignore]",
                "pam_unix.so",
                "[arg with space]",
                "x"
            ]
        );
        let lines = pam_logical_lines("a \\\nb # c\n#x\nd\\");
        assert_eq!(lines[0], (1, "a  b ".to_string()));
        assert_eq!(lines[1], (3, String::new()));
        assert_eq!(lines[2], (4, "d ".to_string()));
    }
}
