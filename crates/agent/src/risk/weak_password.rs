//! Weak-password check: each local account's password hash against the built-in dictionary
//! (`content/weak_passwords.txt`), the project's custom list and variants of the account's
//! name, with the host's own crypt(3) (see [`super::crypt`]).
//!
//! What the result says is a function of `/etc/shadow`, `/etc/passwd` and the two lists alone
//! (within the time budget): no clock-derived candidates, findings sorted by account. Nothing
//! secret leaves this module: no hash and no cracked word is logged, printed, put in an issue
//! or returned; findings name the account and the reasons.
//!
//! Decisions:
//! - An empty password field is a finding at once (reason `empty`), and so is a hash of the
//!   empty string.
//! - `*…` fields (`*`, `*LK*`, crypt failure tokens) hold no password: skipped.
//! - `!…` fields are locked (`passwd -l`, `usermod -L`), but `passwd -u` brings the old password
//!   back as it was, so the hash after the `!`s is checked like any other; a finding on it says
//!   `login_allowed: false`. `!`, `!!` and `!*` (no password ever set) are skipped.
//! - Accounts with an identical hash string share a password whether or not it is cracked.
//!   Salting makes two hashes of one password differ, so otherwise a shared password shows only
//!   once it is cracked: every cracked word is then also tried on the accounts not cracked.
//! - Without a shadow entry, pam_unix uses the hash in `/etc/passwd` itself (when it is not
//!   `x`); so does this check. Bad `/etc/passwd` lines are left to the accounts inventory,
//!   which reports them; here they only cost that account its uid and login shell.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hostward_proto::inventory::CollectIssue;
use hostward_proto::risk::{WeakPassword, WeakPasswordResult, WeakReason};

use super::crypt;
// One reading of passwd/shadow lines for the inventory and this check.
use crate::inventory::collect::accounts::{line_no, skip_line, valid_name};

const PASSWD: &str = "/etc/passwd";
const SHADOW: &str = "/etc/shadow";

const DICTIONARY: &str = include_str!("../../../../content/weak_passwords.txt");

/// `CRYPT_MAX_PASSPHRASE_SIZE` of <crypt.h>: crypt refuses longer phrases.
const MAX_PHRASE: usize = 512;

/// Nice value of the cracking threads: the check must not slow the server's own work.
const NICE: i32 = 19;

/// Most threads the check runs. Each yescrypt hash (libxcrypt's default cost) maps 16 MiB for
/// its duration, so on a 64-core server one thread per core would hold 1 GiB.
const MAX_THREADS: usize = 4;

/// What a check gets.
pub struct Config<'a> {
    /// Filesystem root the host is read under; `/` in production.
    pub root: &'a Path,
    /// The project's custom weak-password list.
    pub custom: &'a [String],
    /// Wall-clock budget for the cracking; past it the result says `complete: false`.
    pub budget: Duration,
}

/// The built-in dictionary, most common first.
pub fn dictionary() -> impl Iterator<Item = &'static str> {
    DICTIONARY.lines().filter(|w| !w.is_empty())
}

/// Runs the check: built-in dictionary, custom list, user-name variants and the empty string.
/// The work runs on threads of its own, one per available core (at most 4), at
/// nice 19; the calling thread only waits, so call it where blocking is fine.
pub fn check(cfg: &Config) -> WeakPasswordResult {
    let words: Vec<&str> = dictionary().collect();
    run(cfg, &words, true)
}

/// Like [`check`] with `words` in place of the built-in dictionary and without user-name
/// variants or the empty string: exactly `words` and the custom list, as a plain wordlist
/// cracker would try them. For the benchmark against John the Ripper.
#[doc(hidden)]
pub fn check_words(cfg: &Config, words: &[&str]) -> WeakPasswordResult {
    run(cfg, words, false)
}

/// Candidates derived from an account's name; a handful of the patterns people actually use.
/// The years are fixed, not derived from the clock, so that a result depends on the files and
/// lists only; move them along when the calendar does.
pub fn name_variants(name: &str) -> Vec<String> {
    let cap = capitalise(name);
    let mut v = vec![
        name.to_string(),
        cap.clone(),
        name.to_uppercase(),
        name.chars().rev().collect(),
        format!("{name}{name}"),
        format!("123{name}"),
    ];
    for s in [
        "1", "12", "123", "1234", "12345", "123456", "!", "@123", "#123", "123!", "2024", "2025",
        "2026",
    ] {
        v.push(format!("{name}{s}"));
    }
    for s in ["1", "123", "!", "@123", "123!", "2024", "2025", "2026"] {
        v.push(format!("{cap}{s}"));
    }
    let mut seen = HashSet::new();
    v.retain(|w| seen.insert(w.clone()));
    v
}

fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An account as this check sees it.
struct Account {
    name: String,
    uid: Option<u32>,
    /// Listed in passwd with a shell that allows login; the lock is applied separately.
    shell_allows: bool,
    password: Password,
    /// Where the password field was read, for issues.
    file: &'static str,
    line: u32,
}

enum Password {
    Empty,
    /// A hash to check, without the lock's `!`s.
    Hash {
        hash: String,
        locked: bool,
    },
    /// Nothing a password could match: `*`, `!`, `!!`...
    None,
}

fn classify(field: &str) -> Password {
    if field.is_empty() {
        return Password::Empty;
    }
    let rest = field.trim_start_matches('!');
    let locked = rest.len() != field.len();
    if rest.is_empty() || rest.starts_with('*') {
        return Password::None;
    }
    // Older pam_unix and Solaris spell "look in the shadow file" as `##name`.
    if !locked && field.starts_with("##") {
        return Password::None;
    }
    Password::Hash {
        hash: rest.to_string(),
        locked,
    }
}

struct PasswdEntry {
    uid: u32,
    shell: String,
    password: String,
    line: u32,
}

fn shell_allows_login(shell: &str) -> bool {
    // An empty shell means /bin/sh to login(1) and sshd.
    !(shell.ends_with("/nologin") || shell.ends_with("/false"))
}

fn issue(file: &str, line: Option<u32>, message: String) -> CollectIssue {
    CollectIssue {
        file: file.to_string(),
        line,
        message,
    }
}

/// A missing file is `None` without an issue: fixture trees and minimal containers lack them.
fn read(root: &Path, host_path: &str, issues: &mut Vec<CollectIssue>) -> Option<String> {
    match std::fs::read(root.join(host_path.trim_start_matches('/'))) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            issues.push(issue(host_path, None, format!("cannot read: {e}")));
            None
        }
    }
}

fn parse_passwd(text: &str) -> HashMap<String, PasswdEntry> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if skip_line(line) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let &[name, password, uid, _gid, _gecos, _home, shell] = f.as_slice() else {
            continue;
        };
        let Ok(uid) = uid.parse() else { continue };
        if !valid_name(name) {
            continue;
        }
        // getpwnam(3) finds the first entry of a name.
        out.entry(name.to_string()).or_insert(PasswdEntry {
            uid,
            shell: shell.to_string(),
            password: password.to_string(),
            line: line_no(i),
        });
    }
    out
}

/// (name, password field, line) of each good shadow line, first entry of a name only.
// Messages never quote the line: it holds the hash.
fn parse_shadow(text: &str, issues: &mut Vec<CollectIssue>) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if skip_line(line) {
            continue;
        }
        let n = line_no(i);
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 9 {
            let msg = format!("expected 9 fields, found {}", f.len());
            issues.push(issue(SHADOW, Some(n), msg));
            continue;
        }
        if !valid_name(f[0]) {
            issues.push(issue(SHADOW, Some(n), "invalid user name".into()));
            continue;
        }
        // Like getspnam(3), the first entry of a name counts.
        if seen.insert(f[0].to_string()) {
            out.push((f[0].to_string(), f[1].to_string(), n));
        }
    }
    out
}

fn accounts(root: &Path, issues: &mut Vec<CollectIssue>) -> Vec<Account> {
    let passwd = read(root, PASSWD, issues)
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    let shadow = read(root, SHADOW, issues)
        .map(|t| parse_shadow(&t, issues))
        .unwrap_or_default();

    let account = |name: &str, field: &str, file, line| {
        let entry = passwd.get(name);
        Account {
            name: name.to_string(),
            uid: entry.map(|e| e.uid),
            shell_allows: entry.is_some_and(|e| shell_allows_login(&e.shell)),
            password: classify(field),
            file,
            line,
        }
    };
    let mut out: Vec<Account> = shadow
        .iter()
        .map(|(name, field, line)| account(name, field, SHADOW, *line))
        .collect();
    let in_shadow: HashSet<&str> = shadow.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut rest: Vec<(&String, &PasswdEntry)> = passwd
        .iter()
        .filter(|(name, e)| e.password != "x" && !in_shadow.contains(name.as_str()))
        .collect();
    rest.sort_by_key(|(_, e)| e.line);
    out.extend(
        rest.into_iter()
            .map(|(name, e)| account(name, &e.password, PASSWD, e.line)),
    );
    out
}

/// How the search of one hash ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The candidate at this index of the hash's list matched.
    Cracked(usize),
    /// Every candidate was tried; none matched.
    Exhausted,
    /// This host's crypt cannot verify the hash.
    Unsupported,
    /// The budget ran out first.
    Unfinished,
}

/// Tries each hash's candidates, in rounds: the first candidate of every hash, then the second
/// of every hash... so that with a short budget every account still gets its likeliest
/// candidates tried. One hash stops at its first match; a match at a later index never replaces
/// one at an earlier index, so the cracked word does not depend on thread timing.
fn crack<S: AsRef<str> + Sync>(
    hashes: &[&str],
    lists: &[Vec<S>],
    deadline: Option<Instant>,
) -> Vec<Outcome> {
    let n = hashes.len();
    let rounds = lists.iter().map(Vec::len).max().unwrap_or(0);
    let total = n.saturating_mul(rounds);
    if total == 0 {
        return vec![Outcome::Exhausted; n];
    }
    let found: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(usize::MAX)).collect();
    let done: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    let unsupported: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(MAX_THREADS)
        .min(total);

    let work = || {
        lower_priority();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= total {
                break;
            }
            let (rank, g) = (k / n, k % n);
            let Some(word) = lists[g].get(rank) else {
                continue;
            };
            if unsupported[g].load(Ordering::Relaxed) || rank > found[g].load(Ordering::Relaxed) {
                done[g].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match crypt::try_verify(word.as_ref(), hashes[g]) {
                Some(true) => {
                    found[g].fetch_min(rank, Ordering::Relaxed);
                }
                Some(false) => {}
                None => unsupported[g].store(true, Ordering::Relaxed),
            }
            done[g].fetch_add(1, Ordering::Relaxed);
        }
    };
    // The calling thread only waits, so its own priority is left as it was.
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(work);
        }
    });

    (0..n)
        .map(|g| {
            let found = found[g].load(Ordering::Relaxed);
            if unsupported[g].load(Ordering::Relaxed) {
                Outcome::Unsupported
            } else if found != usize::MAX {
                Outcome::Cracked(found)
            } else if done[g].load(Ordering::Relaxed) == lists[g].len() {
                Outcome::Exhausted
            } else {
                Outcome::Unfinished
            }
        })
        .collect()
}

/// Lowest priority for the calling thread only: on Linux a thread id names one thread to
/// setpriority(2). Only the workers call it, so the caller's thread (a pooled blocking thread
/// that later runs other work) keeps its priority.
fn lower_priority() {
    use nix::libc;
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: plain syscall wrapper; a failure (it cannot fail for our own thread with a
    // higher nice value) only leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
    }
}

/// A candidate crypt can take: no NUL (none can be typed), not longer than crypt accepts.
fn usable(word: &str) -> bool {
    word.len() < MAX_PHRASE && !word.contains('\0')
}

fn run(cfg: &Config, words: &[&str], extras: bool) -> WeakPasswordResult {
    let deadline = Instant::now().checked_add(cfg.budget);
    let mut issues = Vec::new();
    let accounts = accounts(cfg.root, &mut issues);

    let dict: HashSet<&str> = words.iter().copied().filter(|w| usable(w)).collect();
    let custom: HashSet<&str> = cfg
        .custom
        .iter()
        .map(String::as_str)
        .filter(|w| !w.is_empty() && usable(w))
        .collect();
    let variants: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            if extras {
                name_variants(&a.name)
            } else {
                Vec::new()
            }
        })
        .collect();

    // Accounts with one hash string have one password: the hash is searched once, with the
    // name variants of every account that holds it.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in accounts.iter().enumerate() {
        if let Password::Hash { hash, .. } = &a.password {
            groups.entry(hash.as_str()).or_default().push(i);
        }
    }
    let mut groups: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    groups.sort_by_key(|(_, members)| members[0]);

    let base: Vec<&str> = {
        let mut seen = HashSet::new();
        let custom_first = cfg.custom.iter().map(String::as_str);
        custom_first
            .filter(|w| custom.contains(w))
            .chain(words.iter().copied().filter(|w| dict.contains(w)))
            .filter(|w| seen.insert(*w))
            .collect()
    };
    let candidate_list = |members: &[usize]| -> Vec<Cow<str>> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut list: Vec<Cow<str>> = Vec::new();
        if extras {
            seen.insert("");
            list.push(Cow::Borrowed(""));
        }
        for &m in members {
            for v in &variants[m] {
                if usable(v) && seen.insert(v.as_str()) {
                    list.push(Cow::Owned(v.clone()));
                }
            }
        }
        list.extend(
            base.iter()
                .filter(|w| seen.insert(w))
                .map(|w| Cow::Borrowed(*w)),
        );
        list
    };
    let lists: Vec<Vec<Cow<str>>> = groups.iter().map(|(_, m)| candidate_list(m)).collect();
    let hashes: Vec<&str> = groups.iter().map(|(h, _)| *h).collect();
    // Lists differ only by the name variants; report the longest one account gets on its own
    // (a shared hash's list holds the variants of every holder).
    let candidates = accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a.password, Password::Hash { .. }))
        .map(|(i, _)| candidate_list(&[i]).len())
        .max()
        .unwrap_or(base.len() + usize::from(extras));

    let outcomes = crack(&hashes, &lists, deadline);
    let mut complete = !outcomes.contains(&Outcome::Unfinished);

    // The cracked word of each account.
    let mut cracked: Vec<Option<&str>> = vec![None; accounts.len()];
    for (g, outcome) in outcomes.iter().enumerate() {
        if let Outcome::Cracked(rank) = outcome {
            for &m in &groups[g].1 {
                cracked[m] = Some(&lists[g][*rank]);
            }
        }
    }

    // Every cracked word on the hashes that none of their own candidates matched.
    let words_found: BTreeSet<&str> = cracked.iter().flatten().copied().collect();
    let retry: Vec<usize> = (0..groups.len())
        .filter(|&g| outcomes[g] == Outcome::Exhausted)
        .collect();
    if !words_found.is_empty() && !retry.is_empty() {
        let lists2: Vec<Vec<&str>> = retry
            .iter()
            .map(|&g| {
                let own: HashSet<&str> = lists[g].iter().map(|w| w.as_ref()).collect();
                words_found
                    .iter()
                    .copied()
                    .filter(|w| !own.contains(w))
                    .collect()
            })
            .collect();
        let hashes2: Vec<&str> = retry.iter().map(|&g| hashes[g]).collect();
        let outcomes2 = crack(&hashes2, &lists2, deadline);
        complete &= !outcomes2.contains(&Outcome::Unfinished);
        for (i, outcome) in outcomes2.iter().enumerate() {
            if let Outcome::Cracked(rank) = outcome {
                for &m in &groups[retry[i]].1 {
                    cracked[m] = Some(lists2[i][*rank]);
                }
            }
        }
    }

    let mut accounts_checked = 0usize;
    for (g, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Cracked(_) | Outcome::Exhausted => accounts_checked += groups[g].1.len(),
            Outcome::Unsupported => {
                for &m in &groups[g].1 {
                    let a = &accounts[m];
                    let msg = format!(
                        "user {}: this host's crypt cannot verify the password hash; not checked",
                        a.name
                    );
                    issues.push(issue(a.file, Some(a.line), msg));
                }
            }
            Outcome::Unfinished => {}
        }
    }

    // Same hash string, or the same cracked word (not the empty one: "no password" is its own
    // finding, and would tie unrelated accounts together).
    let group_of: HashMap<usize, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, members))| members.iter().map(move |&m| (m, g)))
        .collect();
    let shared_with = |i: usize| -> Vec<String> {
        let mut names: Vec<String> = (0..accounts.len())
            .filter(|&j| j != i)
            .filter(|&j| {
                let same_hash = group_of.contains_key(&i) && group_of.get(&i) == group_of.get(&j);
                let same_word = cracked[i].is_some_and(|w| !w.is_empty() && cracked[j] == Some(w));
                same_hash || same_word
            })
            .map(|j| accounts[j].name.clone())
            .collect();
        names.sort();
        names
    };

    let mut findings = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        let mut reasons = Vec::new();
        let locked = match &a.password {
            Password::Empty => {
                reasons.push(WeakReason::Empty);
                false
            }
            Password::Hash { locked, .. } => *locked,
            Password::None => continue,
        };
        if let Some(w) = cracked[i] {
            if w.is_empty() {
                reasons.push(WeakReason::Empty);
            }
            if dict.contains(w) {
                reasons.push(WeakReason::CommonPassword);
            }
            if custom.contains(w) {
                reasons.push(WeakReason::CustomList);
            }
            if variants[i].iter().any(|v| v == w) {
                reasons.push(WeakReason::UsernameVariant);
            }
        }
        let shared = shared_with(i);
        if !shared.is_empty() {
            reasons.push(WeakReason::Shared);
        }
        if reasons.is_empty() {
            continue;
        }
        reasons.sort();
        reasons.dedup();
        findings.push(WeakPassword {
            account: a.name.clone(),
            uid: a.uid,
            login_allowed: a.shell_allows && !locked,
            reasons,
            shared_with: shared,
        });
    }
    findings.sort_by(|a, b| a.account.cmp(&b.account));

    WeakPasswordResult {
        accounts_checked: u32::try_from(accounts_checked).unwrap_or(u32::MAX),
        candidates: u32::try_from(candidates).unwrap_or(u32::MAX),
        complete,
        findings,
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, host_path: &str, content: impl AsRef<[u8]>) {
        let p = root.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// md5crypt unless a test is about another scheme: cheap enough to try every candidate.
    fn md5(pw: &str) -> String {
        crypt::hash(pw, "$1$").unwrap()
    }

    fn shadow_line(name: &str, field: &str) -> String {
        format!("{name}:{field}:19000:0:99999:7:::\n")
    }

    fn passwd_line(name: &str, uid: u32, shell: &str) -> String {
        format!("{name}:x:{uid}:{uid}::/home/{name}:{shell}\n")
    }

    fn run_check(root: &Path, custom: &[String]) -> WeakPasswordResult {
        check(&Config {
            root,
            custom,
            budget: Duration::from_secs(600),
        })
    }

    fn finding<'r>(r: &'r WeakPasswordResult, name: &str) -> &'r WeakPassword {
        r.findings
            .iter()
            .find(|f| f.account == name)
            .unwrap_or_else(|| panic!("no finding for {name}: {r:?}"))
    }

    /// The fixture of most tests; returns every hash written and every password set.
    fn fixture(root: &Path) -> (Vec<String>, Vec<&'static str>) {
        let strong = "Vq7#pLm2!xR9-tZ";
        let shared_strong = md5("Kk8$wQ3@nB6&yH1");
        let accounts: Vec<(&str, u32, &str, String)> = vec![
            ("root", 0, "/bin/bash", md5("toor")),
            (
                "alice",
                1000,
                "/bin/bash",
                crypt::hash("alice123", "$y$").unwrap(),
            ),
            ("bob", 1001, "/bin/bash", md5(strong)),
            (
                "carol",
                1002,
                "/bin/bash",
                crypt::hash("Hostward!2024", "$6$").unwrap(),
            ),
            (
                "dave",
                1003,
                "/bin/bash",
                crypt::hash("qwerty", "$2b$").unwrap(),
            ),
            (
                "erin",
                1004,
                "/bin/bash",
                crypt::hash("erin2025", "$5$").unwrap(),
            ),
            ("frank", 1005, "/bin/bash", md5("erin2025")),
            ("gina", 1006, "/bin/bash", shared_strong.clone()),
            ("hank", 1007, "/bin/bash", shared_strong),
            ("ivan", 1008, "/bin/bash", String::new()),
            ("judy", 1009, "/bin/bash", format!("!{}", md5("letmein"))),
            ("ken", 1010, "/bin/bash", "!!".into()),
            ("lee", 1011, "/bin/bash", "*".into()),
            ("mallory", 1012, "/usr/sbin/nologin", md5("123456")),
        ];
        let passwd: String = accounts
            .iter()
            .map(|(n, uid, shell, _)| passwd_line(n, *uid, shell))
            .collect();
        let shadow: String = accounts
            .iter()
            .map(|(n, _, _, h)| shadow_line(n, h))
            .collect();
        write(root, "/etc/passwd", passwd);
        write(root, "/etc/shadow", shadow);
        let hashes = accounts
            .into_iter()
            .map(|a| a.3.trim_start_matches('!').to_string())
            .filter(|h| h.starts_with('$'))
            .collect();
        let passwords = vec![
            "toor",
            "alice123",
            strong,
            "Hostward!2024",
            "qwerty",
            "erin2025",
            "Kk8$wQ3@nB6&yH1",
            "letmein",
            "123456",
        ];
        (hashes, passwords)
    }

    fn custom() -> Vec<String> {
        vec!["Hostward!2024".into(), "qwerty".into()]
    }

    #[test]
    fn finds_weak_passwords_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let r = run_check(dir.path(), &custom());
        assert!(r.complete);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        assert_eq!(r.accounts_checked, 11, "hashes of root..judy and mallory");

        let names: Vec<&str> = r.findings.iter().map(|f| f.account.as_str()).collect();
        assert_eq!(
            names,
            [
                "alice", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy",
                "mallory", "root"
            ]
        );
        use WeakReason::*;
        let reasons = |n: &str| finding(&r, n).reasons.clone();
        assert_eq!(reasons("root"), [CommonPassword, UsernameVariant], "toor");
        assert_eq!(reasons("alice"), [UsernameVariant], "yescrypt");
        assert_eq!(reasons("carol"), [CustomList], "sha512crypt");
        assert_eq!(reasons("dave"), [CommonPassword, CustomList], "bcrypt");
        assert_eq!(reasons("erin"), [UsernameVariant, Shared], "sha256crypt");
        assert_eq!(reasons("frank"), [Shared], "another account's name variant");
        assert_eq!(finding(&r, "erin").shared_with, ["frank"]);
        assert_eq!(finding(&r, "frank").shared_with, ["erin"]);
        assert_eq!(reasons("gina"), [Shared], "identical hash, not cracked");
        assert_eq!(finding(&r, "gina").shared_with, ["hank"]);
        assert_eq!(finding(&r, "hank").shared_with, ["gina"]);
        assert_eq!(reasons("ivan"), [Empty]);
        assert_eq!(reasons("judy"), [CommonPassword]);
        assert_eq!(reasons("mallory"), [CommonPassword]);

        let root = finding(&r, "root");
        assert_eq!((root.uid, root.login_allowed), (Some(0), true));
        assert!(root.shared_with.is_empty());
        assert!(finding(&r, "ivan").login_allowed);
        assert!(!finding(&r, "judy").login_allowed, "locked");
        assert!(!finding(&r, "mallory").login_allowed, "nologin");

        let expected = dictionary().count() + 2 + name_variants("mallory").len() + 1;
        // "qwerty" of the custom list is in the dictionary already.
        assert_eq!(r.candidates as usize, expected - 1);
    }

    #[test]
    fn nothing_secret_in_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let (hashes, passwords) = fixture(dir.path());
        let mut shadow = std::fs::read_to_string(dir.path().join("etc/shadow")).unwrap();
        shadow.push_str(&format!("broken:{}:1:2\n", hashes[0]));
        shadow.push_str(&format!("odd:{}:1:0:99999:7:::\n", "$9$unsupported$xyz"));
        write(dir.path(), "/etc/shadow", shadow);
        let r = run_check(dir.path(), &custom());
        assert_eq!(r.issues.len(), 2, "{:?}", r.issues);
        let texts = [
            format!("{r:?}"),
            serde_json::to_string(&r).unwrap(),
            r.issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ];
        for text in &texts {
            for h in &hashes {
                assert!(!text.contains(h.as_str()), "hash in {text}");
                // Not even the salt.
                assert!(!text.contains(&h[..h.len().min(12)]), "salt in {text}");
            }
            assert!(!text.contains("$9$unsupported"), "{text}");
            for p in &passwords {
                assert!(!text.contains(p), "password {p} in {text}");
            }
        }
    }

    #[test]
    fn malformed_lines_are_reported_and_the_rest_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/passwd",
            format!(
                "{}{}",
                passwd_line("root", 0, "/bin/bash"),
                passwd_line("alice", 1000, "/bin/bash")
            ),
        );
        let mut shadow = shadow_line("root", &md5("root")).into_bytes();
        shadow.extend_from_slice(format!("five:{}:1:2:3\n", md5("x")).as_bytes());
        shadow.extend_from_slice(b"\xff\xfe\x00garbage\xc3\x28\n");
        shadow.extend_from_slice(b"\xff\xfe:$1$ab$cd:1:0:99999:7:::\n");
        shadow.extend_from_slice(b"\n# comment\n+::::::::\n");
        shadow.extend_from_slice(shadow_line("alice", &md5("alice")).as_bytes());
        shadow.extend_from_slice(shadow_line("alice", "").as_bytes());
        shadow.extend_from_slice(b"orphan::1:0:99999:7:::");
        write(root, "/etc/shadow", &shadow);

        let r = run_check(root, &[]);
        let lines: Vec<(&str, Option<u32>)> =
            r.issues.iter().map(|i| (i.file.as_str(), i.line)).collect();
        assert_eq!(
            lines,
            [
                ("/etc/shadow", Some(2)),
                ("/etc/shadow", Some(3)),
                ("/etc/shadow", Some(4))
            ]
        );
        assert!(r.issues[0].message.contains("9 fields"), "{}", r.issues[0]);
        assert_eq!(r.issues[2].message, "invalid user name");
        assert_eq!(r.accounts_checked, 2);
        assert!(r.complete);
        let names: Vec<&str> = r.findings.iter().map(|f| f.account.as_str()).collect();
        assert_eq!(
            names,
            ["alice", "orphan", "root"],
            "first alice entry counts"
        );
        assert_eq!(finding(&r, "alice").reasons, [WeakReason::UsernameVariant]);
        let orphan = finding(&r, "orphan");
        assert_eq!(
            (orphan.uid, orphan.login_allowed),
            (None, false),
            "not in passwd"
        );
    }

    #[test]
    fn budget_exhausted_still_reports_what_needs_no_cracking() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let r = check(&Config {
            root: dir.path(),
            custom: &custom(),
            budget: Duration::ZERO,
        });
        assert!(!r.complete);
        assert_eq!(r.accounts_checked, 0);
        let names: Vec<&str> = r.findings.iter().map(|f| f.account.as_str()).collect();
        assert_eq!(names, ["gina", "hank", "ivan"]);
    }

    #[test]
    fn result_depends_on_the_files_only() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let a = run_check(dir.path(), &custom());
        let b = run_check(dir.path(), &custom());
        assert_eq!(a, b);
    }

    #[test]
    fn hash_of_empty_string_and_passwd_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // No shadow file: pam_unix uses the hash in passwd.
        write(
            root,
            "/etc/passwd",
            format!(
                "old:{}:5:5::/:/bin/sh\nblank::6:6::/:/bin/sh\nshadowed:x:7:7::/:/bin/sh\nstar:*:8:8::/:/bin/sh\n",
                md5("")
            ),
        );
        let r = run_check(root, &[]);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        assert_eq!(r.accounts_checked, 1);
        assert_eq!(finding(&r, "old").reasons, [WeakReason::Empty]);
        assert_eq!(finding(&r, "blank").reasons, [WeakReason::Empty]);
        assert_eq!(r.findings.len(), 2);
        assert!(finding(&r, "old").shared_with.is_empty());
    }

    #[test]
    fn missing_files_give_an_empty_complete_result() {
        let dir = tempfile::tempdir().unwrap();
        let r = run_check(dir.path(), &["x".into()]);
        assert!(r.complete && r.findings.is_empty() && r.issues.is_empty());
        assert_eq!(r.accounts_checked, 0);
        assert_eq!(r.candidates as usize, dictionary().count() + 2);
    }

    #[test]
    fn check_words_tries_exactly_the_words() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/shadow",
            shadow_line("alice", &md5("alice")) + &shadow_line("bob", &md5("sunshine")),
        );
        let cfg = Config {
            root,
            custom: &[],
            budget: Duration::from_secs(60),
        };
        let r = check_words(&cfg, &["sunshine", "monkey"]);
        assert_eq!((r.accounts_checked, r.candidates), (2, 2));
        let names: Vec<&str> = r.findings.iter().map(|f| f.account.as_str()).collect();
        assert_eq!(names, ["bob"], "no name variants");
        assert_eq!(r.findings[0].reasons, [WeakReason::CommonPassword]);
    }

    #[test]
    fn name_variants_are_few_and_distinct() {
        let v = name_variants("admin");
        assert!(v.len() <= 30, "{}", v.len());
        for w in [
            "admin",
            "Admin",
            "ADMIN",
            "nimda",
            "admin123",
            "Admin@123",
            "admin2025",
            "adminadmin",
        ] {
            assert!(v.iter().any(|x| x == w), "{w}");
        }
        let set: HashSet<&String> = v.iter().collect();
        assert_eq!(set.len(), v.len());
        assert_eq!(name_variants("a1")[0], "a1");
    }

    #[test]
    fn shipped_dictionary_is_clean() {
        let words: Vec<&str> = dictionary().collect();
        assert!((300..=500).contains(&words.len()), "{}", words.len());
        let set: HashSet<&str> = words.iter().copied().collect();
        assert_eq!(set.len(), words.len(), "duplicates");
        assert!(
            words
                .iter()
                .all(|w| !w.contains(char::is_whitespace) && usable(w))
        );
        assert_eq!(&words[..4], ["123456", "password", "12345678", "qwerty"]);
        for w in ["root", "admin", "toor", "changeme", "P@ssw0rd", "Passw0rd!"] {
            assert!(set.contains(w), "{w}");
        }
    }
}
