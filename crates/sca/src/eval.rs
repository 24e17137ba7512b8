//! Evaluation of rules and checks against a [`Host`], with Wazuh's semantics: content is
//! matched line by line; a rule is matched, not matched, or cannot be evaluated (not
//! applicable, with the reason), and a check's condition combines them as Wazuh's table says.

use crate::host::{CommandOutput, EntryKind, Host};
use crate::rule::{Pattern, Rule, RuleKind, clip};
use crate::{Condition, Outcome};
use std::io;

/// Characters of a line or output kept in evidence.
const EVIDENCE_CHARS: usize = 200;
/// Bounds of a `d:` search: depth below the named directory and entries looked at.
const DIR_DEPTH: usize = 16;
const DIR_ENTRIES: usize = 20_000;

/// What one rule found, before its `not`.
enum Found {
    Yes(Vec<String>),
    No(Vec<String>),
    /// Cannot be evaluated: why.
    Unknown(String),
}

/// A rule's result after its `not`.
pub(crate) enum RuleResult {
    Match(Vec<String>),
    NoMatch(Vec<String>),
    NotApplicable(String),
}

/// A check's (or the requirements') verdict with the evidence of the rules that decided it.
pub(crate) struct Verdict {
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub evidence: Vec<String>,
}

pub(crate) fn eval_rules(cond: Condition, rules: &[Rule], host: &dyn Host) -> Verdict {
    let mut evidence = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let tag = |e: Vec<String>| -> Vec<String> {
            e.into_iter()
                .map(|e| format!("rule {}: {e}", i + 1))
                .collect()
        };
        match (cond, eval_rule(rule, host)) {
            // The rule that settles the check: its evidence alone explains the verdict.
            (Condition::All, RuleResult::NoMatch(e)) => {
                return verdict(Outcome::Fail, None, tag(e));
            }
            (Condition::Any, RuleResult::Match(e)) => return verdict(Outcome::Pass, None, tag(e)),
            (Condition::None, RuleResult::Match(e)) => return verdict(Outcome::Fail, None, tag(e)),
            (_, RuleResult::Match(e) | RuleResult::NoMatch(e)) => evidence.extend(tag(e)),
            (_, RuleResult::NotApplicable(why)) => unknown.push(format!("rule {}: {why}", i + 1)),
        }
    }
    if !unknown.is_empty() {
        return verdict(Outcome::NotApplicable, Some(unknown.join("; ")), evidence);
    }
    match cond {
        Condition::All | Condition::None => verdict(Outcome::Pass, None, evidence),
        Condition::Any => verdict(Outcome::Fail, None, evidence),
    }
}

fn verdict(outcome: Outcome, reason: Option<String>, evidence: Vec<String>) -> Verdict {
    Verdict {
        outcome,
        reason: reason.map(|r| withhold_hashes(&r)),
        evidence: evidence.iter().map(|e| withhold_hashes(e)).collect(),
    }
}

/// What stands for a password hash in evidence: results leave the host, hashes never do.
const WITHHELD: &str = "<hash withheld>";

/// Any crypt(3) hash in `text` (`$6$…`, `$y$…`, `$2b$…`, …, as a command's output or a
/// configuration line may hold one) replaced by [`WITHHELD`].
pub(crate) fn withhold_hashes(text: &str) -> String {
    static CRYPT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[./0-9A-Za-z$,=+-]+")
            .expect("a valid pattern")
    });
    CRYPT.replace_all(text, WITHHELD).into_owned()
}

/// A line of an account database (`/etc/shadow`, `gshadow`, `passwd`, `group`) with its
/// password field withheld, whatever the hash's form (a DES hash has no `$` to spot): only
/// the markers that say something without being secret stay (empty, `x`, `*`, `!`, `!!`, and a
/// lock `!` before a withheld hash).
fn withhold_account_field(path: &str, line: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let is_db = ["shadow", "gshadow", "passwd", "group"]
        .iter()
        .any(|db| name == *db || name == format!("{db}-"));
    let mut fields: Vec<&str> = line.splitn(3, ':').collect();
    if !is_db || fields.len() < 3 {
        return line.to_string();
    }
    let field = fields[1];
    let shown = match field {
        "" | "x" | "*" | "!" | "!!" | "!*" => return line.to_string(),
        f if f.starts_with('!') => format!("!{WITHHELD}"),
        _ => WITHHELD.to_string(),
    };
    fields[1] = &shown;
    fields.join(":")
}

pub(crate) fn eval_rule(rule: &Rule, host: &dyn Host) -> RuleResult {
    let found = match &rule.kind {
        RuleKind::File { paths, content } => file_rule(paths, content.as_ref(), host),
        RuleKind::Dir {
            paths,
            name,
            content,
        } => dir_rule(paths, name.as_ref(), content.as_ref(), host),
        RuleKind::Process { name } => {
            if host.processes().iter().any(|p| p == name) {
                Found::Yes(vec![format!("process {name} is running")])
            } else {
                Found::No(vec![format!("no process {name}")])
            }
        }
        RuleKind::Command { command, content } => command_rule(command, content.as_ref(), host),
        RuleKind::Registry { .. } => {
            Found::Unknown("registry rules apply to Windows only".to_string())
        }
    };
    match (found, rule.negated) {
        (Found::Yes(e), false) | (Found::No(e), true) => RuleResult::Match(e),
        (Found::No(e), false) | (Found::Yes(e), true) => RuleResult::NoMatch(e),
        (Found::Unknown(why), _) => RuleResult::NotApplicable(why),
    }
}

fn io_reason(path: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!("{path}: permission denied"),
        _ => format!("{path}: {e}"),
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Where a pattern matched (or, for a lone negated minterm, the line that broke it).
enum LineMatch {
    Yes(Option<(usize, String)>),
    No(Option<(usize, String)>),
}

/// Wazuh's line semantics: a lone negated term holds when no line matches its test; otherwise
/// the pattern holds when one line satisfies every term. Empty content matches nothing.
fn match_lines(p: &Pattern, text: &str) -> LineMatch {
    if text.is_empty() {
        return LineMatch::No(None);
    }
    let lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    if let [only] = p.minterms.as_slice()
        && only.negated
    {
        for (n, line) in lines.enumerate() {
            if only.test.matches(line) {
                return LineMatch::No(Some((n + 1, line.to_string())));
            }
        }
        return LineMatch::Yes(None);
    }
    for (n, line) in lines.enumerate() {
        if p.minterms.iter().all(|m| m.matches(line)) {
            return LineMatch::Yes(Some((n + 1, line.to_string())));
        }
    }
    LineMatch::No(None)
}

/// `path:line: text` of the deciding line; without one (a negated pattern that held, or a
/// pattern no line satisfied) what was looked for.
fn line_evidence(path: &str, at: Option<(usize, String)>, p: &Pattern) -> String {
    match at {
        Some((n, line)) => format!(
            "{path}:{n}: {}",
            clip(
                &withhold_account_field(path, line.trim_end()),
                EVIDENCE_CHARS
            )
        ),
        None => format!("{path}: no line matches {}", clip(looked_for(p), 80)),
    }
}

/// A lone negated term is reported by what it tests (the `!` is the rule's logic, not the text
/// that was searched for).
fn looked_for(p: &Pattern) -> &str {
    match p.minterms.as_slice() {
        [only] if only.negated => p.text.trim_start().trim_start_matches('!'),
        _ => &p.text,
    }
}

/// Paths of an `f:` alternative: itself, or the files a `*` in its last part names.
fn expand_glob(path: &str, host: &dyn Host) -> Result<Vec<String>, String> {
    let Some((dir, last)) = path.rsplit_once('/') else {
        return Ok(vec![path.to_string()]);
    };
    if !last.contains('*') {
        return Ok(vec![path.to_string()]);
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    match host.list_dir(dir) {
        Ok(entries) => Ok(entries
            .into_iter()
            .filter(|e| glob_match(last, &e.name))
            .map(|e| format!("{}/{}", dir.trim_end_matches('/'), e.name))
            .collect()),
        Err(e) if is_missing(&e) => Ok(Vec::new()),
        Err(e) => Err(io_reason(dir, &e)),
    }
}

/// `*` matches any run of characters (but a leading dot, as the shell); nothing else is special.
fn glob_match(glob: &str, name: &str) -> bool {
    if name.starts_with('.') && !glob.starts_with('.') {
        return false;
    }
    let parts: Vec<&str> = glob.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn file_rule(paths: &[String], content: Option<&Pattern>, host: &dyn Host) -> Found {
    let mut misses = Vec::new();
    let mut unknown = Vec::new();
    for alt in paths {
        if !alt.starts_with('/') {
            unknown.push(format!("{alt}: not an absolute path"));
            continue;
        }
        let files = match expand_glob(alt, host) {
            Ok(f) => f,
            Err(why) => {
                unknown.push(why);
                continue;
            }
        };
        if files.is_empty() {
            misses.push(format!("{alt}: no such file"));
        }
        for path in files {
            match host.stat(&path) {
                Ok(EntryKind::File) => {}
                Ok(_) => {
                    misses.push(format!("{path}: not a regular file"));
                    continue;
                }
                Err(e) if is_missing(&e) => {
                    misses.push(format!("{path}: no such file"));
                    continue;
                }
                Err(e) => {
                    unknown.push(io_reason(&path, &e));
                    continue;
                }
            }
            let Some(p) = content else {
                return Found::Yes(vec![format!("{path}: exists")]);
            };
            match host.read_file(&path) {
                Ok(bytes) => match match_lines(p, &String::from_utf8_lossy(&bytes)) {
                    LineMatch::Yes(at) => return Found::Yes(vec![line_evidence(&path, at, p)]),
                    LineMatch::No(at) => misses.push(line_evidence(&path, at, p)),
                },
                Err(e) => unknown.push(io_reason(&path, &e)),
            }
        }
    }
    // An alternative that could not be read might have matched: no verdict then.
    if !unknown.is_empty() {
        return Found::Unknown(unknown.join("; "));
    }
    Found::No(misses)
}

fn dir_rule(
    paths: &[String],
    name: Option<&Pattern>,
    content: Option<&Pattern>,
    host: &dyn Host,
) -> Found {
    let mut misses = Vec::new();
    let mut unknown = Vec::new();
    for dir in paths {
        match host.stat(dir) {
            Ok(EntryKind::Dir) => {}
            Ok(_) => {
                misses.push(format!("{dir}: not a directory"));
                continue;
            }
            Err(e) if is_missing(&e) => {
                misses.push(format!("{dir}: no such directory"));
                continue;
            }
            Err(e) => {
                unknown.push(io_reason(dir, &e));
                continue;
            }
        }
        let Some(name) = name else {
            return Found::Yes(vec![format!("{dir}: exists")]);
        };
        let mut stack = vec![(dir.trim_end_matches('/').to_string(), 0usize)];
        let mut seen = 0usize;
        let mut any_name = false;
        while let Some((d, depth)) = stack.pop() {
            let entries = match host.list_dir(if d.is_empty() { "/" } else { &d }) {
                Ok(e) => e,
                Err(e) => {
                    unknown.push(io_reason(&d, &e));
                    continue;
                }
            };
            for e in entries {
                seen += 1;
                if seen > DIR_ENTRIES {
                    return Found::Unknown(format!(
                        "{dir}: more than {DIR_ENTRIES} entries to search"
                    ));
                }
                let path = format!("{d}/{}", e.name);
                // Wazuh skips links; Hostward reads a link to a file (Debian's
                // sites-enabled/* are links to sites-available/), resolved by the host inside
                // its root. A link to a directory is still not descended: it could loop.
                let kind = match e.kind {
                    EntryKind::Symlink => match host.stat(&path) {
                        Ok(EntryKind::File) => EntryKind::File,
                        _ => EntryKind::Other,
                    },
                    k => k,
                };
                match kind {
                    EntryKind::Symlink | EntryKind::Other => {}
                    EntryKind::Dir if depth < DIR_DEPTH => stack.push((path, depth + 1)),
                    EntryKind::Dir => {}
                    EntryKind::File => {
                        if !matches!(match_lines(name, &e.name), LineMatch::Yes(_)) {
                            continue;
                        }
                        any_name = true;
                        let Some(c) = content else {
                            return Found::Yes(vec![format!("{path}: exists")]);
                        };
                        match host.read_file(&path) {
                            Ok(bytes) => match match_lines(c, &String::from_utf8_lossy(&bytes)) {
                                LineMatch::Yes(at) => {
                                    return Found::Yes(vec![line_evidence(&path, at, c)]);
                                }
                                LineMatch::No(at) => misses.push(line_evidence(&path, at, c)),
                            },
                            Err(e) => unknown.push(io_reason(&path, &e)),
                        }
                    }
                }
            }
        }
        if !any_name {
            misses.push(format!("{dir}: no file named {}", clip(&name.text, 80)));
        }
    }
    if !unknown.is_empty() {
        return Found::Unknown(unknown.join("; "));
    }
    Found::No(misses)
}

fn command_rule(command: &str, content: Option<&Pattern>, host: &dyn Host) -> Found {
    let (code, stdout, stderr) = match host.run(command) {
        CommandOutput::NotRun(why) => return Found::Unknown(why),
        CommandOutput::Killed { after } => {
            return Found::Unknown(format!(
                "`{}` killed after {} s",
                clip(command, 80),
                after.as_secs()
            ));
        }
        CommandOutput::Ran {
            code,
            stdout,
            stderr,
        } => (code, stdout, stderr),
    };
    // The shell's own codes for a program it could not find or execute.
    if matches!(code, Some(126 | 127)) {
        return Found::Unknown(format!(
            "`{}`: command not found or not executable: {}",
            clip(command, 80),
            clip(stderr.trim(), EVIDENCE_CHARS)
        ));
    }
    let cmd = clip(command, 80);
    let Some(p) = content else {
        let how = code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
        return Found::Yes(vec![format!("`{cmd}` ran ({how})")]);
    };
    // Wazuh matches the pattern on stdout, then on stderr.
    let mut misses = Vec::new();
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        let text = text.trim_end_matches('\n');
        match match_lines(p, text) {
            LineMatch::Yes(at) => {
                let e = match at {
                    Some((_, line)) => {
                        format!("`{cmd}`: {}", clip(line.trim_end(), EVIDENCE_CHARS))
                    }
                    None => format!(
                        "`{cmd}`: no {stream} line matches {}",
                        clip(looked_for(p), 80)
                    ),
                };
                return Found::Yes(vec![e]);
            }
            LineMatch::No(Some((_, line))) => {
                misses.push(format!(
                    "`{cmd}`: {}",
                    clip(line.trim_end(), EVIDENCE_CHARS)
                ));
            }
            LineMatch::No(None) if stream == "stdout" || stdout.trim().is_empty() => {
                let excerpt = clip(text.trim(), EVIDENCE_CHARS).replace('\n', " | ");
                misses.push(format!("`{cmd}` {stream}: {excerpt}"));
            }
            LineMatch::No(None) => {}
        }
    }
    Found::No(misses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_never_reach_evidence() {
        let y = "$y$j9T$PfWnWxYz0abc/12$Qk3.7tKZ1hX9Yq0Zr6a0u8Y1wGf3e8rF7bq2Vn4cD1A";
        let line = format!("alice:{y}:19000:0:99999:7:::");
        let shown = withhold_account_field("/etc/shadow", &line);
        assert_eq!(shown, "alice:<hash withheld>:19000:0:99999:7:::");
        // A DES hash has no `$`: the field is withheld by position.
        assert_eq!(
            withhold_account_field(
                "/etc/passwd",
                "bob:abJnggxhB/yWI:1001:1001::/home/bob:/bin/sh"
            ),
            "bob:<hash withheld>:1001:1001::/home/bob:/bin/sh"
        );
        assert_eq!(
            withhold_account_field("/etc/shadow", "carol:!$6$salt$hash:1::::::"),
            "carol:!<hash withheld>:1::::::"
        );
        for kept in [
            "root:x:0:0:root:/root:/bin/bash",
            "eve::19000::::::",
            "svc:!:1::::::",
        ] {
            assert_eq!(withhold_account_field("/etc/shadow", kept), kept);
        }
        assert_eq!(withhold_account_field("/etc/app.conf", "a:b:c"), "a:b:c");
        // Anywhere else (a command's output, an application's file): the crypt form.
        let out = withhold_hashes(&format!(
            "`getent shadow alice`: alice:{y}:1 and $2b$10$abcdefghijklmnopqrstuv"
        ));
        assert!(!out.contains("j9T") && !out.contains("abcdefghij"), "{out}");
        assert_eq!(out.matches(WITHHELD).count(), 2, "{out}");
        assert_eq!(withhold_hashes("price $5 and $HOME"), "price $5 and $HOME");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "50-cloud.conf"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(!glob_match("*.conf", "x.conf.bak"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "ac"));
        assert!(glob_match("*", "x"));
    }

    #[test]
    fn line_semantics() {
        let p = Pattern::parse("!r:^# && r:Port && !r:22$").unwrap();
        assert!(matches!(
            match_lines(&p, "# Port 22\nPort 22\n"),
            LineMatch::No(None)
        ));
        assert!(matches!(
            match_lines(&p, "Port 22\nPort 2200\n"),
            LineMatch::Yes(Some((2, _)))
        ));
        let lone = Pattern::parse("!r:^PermitRootLogin yes").unwrap();
        assert!(matches!(match_lines(&lone, "a\nb\n"), LineMatch::Yes(None)));
        assert!(matches!(
            match_lines(&lone, "a\npermitrootlogin yes\n"),
            LineMatch::No(Some((2, _)))
        ));
        assert!(matches!(match_lines(&lone, ""), LineMatch::No(None)));
    }
}
