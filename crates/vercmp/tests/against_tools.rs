//! Generated versions compared by this crate and by the real `dpkg` and `rpm`, in batches: one
//! shell loop for dpkg (which has no batch mode) and one `rpm --eval` Lua script for rpm. Any
//! disagreement fails with the pairs that differ. A missing tool fails the test: CI installs
//! both.

mod cases;

use hostward_vercmp::{Scheme, compare_deb, compare_rpm, validate};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const DEB_PAIRS: usize = 4_000;
const DEB_SINGLES: usize = 1_500;
const RPM_PAIRS: usize = 30_000;

// ---------------------------------------------------------------------------------------------
// Generators

fn digit_run() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[0-9]",
        2 => "[1-9][0-9]",
        2 => "0{1,3}[0-9]{1,2}",
        1 => "0{0,2}[0-9]{18,30}",
    ]
    .boxed()
}

/// Pieces both tools care about; `seps` are the non-alphanumerics to mix in.
fn piece(seps: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => digit_run(),
        3 => "[a-c]{1,2}|[A-Bx-z]|rc|pre|git|fc|el",
        4 => prop::sample::select(seps).prop_map(str::to_owned),
    ]
    .boxed()
}

fn pieces(seps: &'static [&'static str], max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(piece(seps), 0..max)
        .prop_map(|v| v.concat())
        .boxed()
}

fn epoch() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        5 => Just(None),
        2 => "[0-2]|0[0-9]|10".prop_map(Some),
        1 => Just(Some("2147483647".to_owned())),
    ]
    .boxed()
}

const DEB_SEPS: &[&str] = &[".", ".", "+", "~", "~", "~~"];
const DEB_WEIRD: &[&str] = &["_", "@", "\u{e9}", "%", "=", "A", "z"];

/// Mostly valid Debian versions, some that dpkg only warns about, a few it rejects.
fn deb_version() -> BoxedStrategy<String> {
    let valid = (
        epoch(),
        digit_run(),
        pieces(DEB_SEPS, 6),
        prop::option::weighted(0.6, pieces(DEB_SEPS, 4)),
        prop::option::weighted(0.1, pieces(&["-", ":", "."], 3)),
    )
        .prop_map(|(e, head, tail, rev, extra)| {
            let mut s = String::new();
            if let Some(e) = &e {
                s += e;
                s.push(':');
            }
            s += &head;
            s += &tail;
            // '-' in upstream needs a revision, ':' needs an epoch, or dpkg reads them
            // differently; leave some in anyway so the fallbacks are exercised.
            if let Some(x) = extra {
                s += &x;
            }
            if let Some(r) = rev {
                s.push('-');
                s += &r;
            }
            s
        });
    let weird = (
        pieces(DEB_SEPS, 3),
        prop::sample::select(DEB_WEIRD),
        pieces(DEB_SEPS, 3),
    )
        .prop_map(|(a, w, b)| format!("{a}{w}{b}"));
    prop_oneof![
        20 => valid,
        3 => weird,
        1 => prop::sample::select(&["", "<unknown>", " 1.0", "1.0\t", "0:", "1.0-", "a:1"][..])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

const RPM_SEPS: &[&str] = &[".", ".", "_", "+", "~", "~", "^", "^", "-", "~^", "^~"];
const RPM_WEIRD: &[&str] = &[
    "%", "@", ":", "\u{e9}", "\u{3b1}", "--", "::", "-~", "..", "/",
];

fn rpm_version() -> BoxedStrategy<String> {
    let valid = (
        prop_oneof![5 => epoch(), 1 => Just(Some(String::new()))],
        pieces(RPM_SEPS, 7),
        prop::option::weighted(0.5, pieces(RPM_SEPS, 4)),
    )
        .prop_map(|(e, v, r)| {
            let mut s = String::new();
            if let Some(e) = &e {
                s += e;
                s.push(':');
            }
            s += &v;
            if let Some(r) = r {
                s.push('-');
                s += &r;
            }
            s
        });
    let weird = (
        pieces(RPM_SEPS, 3),
        prop::sample::select(RPM_WEIRD),
        pieces(RPM_SEPS, 3),
    )
        .prop_map(|(a, w, b)| format!("{a}{w}{b}"));
    prop_oneof![6 => valid, 1 => weird]
        .prop_filter("rpm.vercmp refuses the empty string", |s| !s.is_empty())
        .boxed()
}

/// An edit of `v` small enough that the pair agrees up to a late segment.
fn mutate(v: String, insert: BoxedStrategy<String>) -> BoxedStrategy<(String, String)> {
    (0..6u8, any::<prop::sample::Index>(), insert)
        .prop_map(move |(op, at, ins)| {
            let chars: Vec<char> = v.chars().collect();
            let i = if chars.is_empty() {
                0
            } else {
                at.index(chars.len() + 1)
            };
            let head: String = chars[..i].iter().collect();
            let tail: String = chars[i..].iter().collect();
            let b = match op {
                0 => format!("{v}{ins}"),
                1 => format!("{head}{ins}{tail}"),
                2 => format!("{head}{}", tail.chars().skip(1).collect::<String>()),
                3 => format!("{head}{ins}{}", tail.chars().skip(1).collect::<String>()),
                4 => format!("{head}0{tail}"),
                _ => head,
            };
            (v.clone(), b)
        })
        .boxed()
}

fn pairs_of(
    version: fn() -> BoxedStrategy<String>,
    insert: fn() -> BoxedStrategy<String>,
) -> BoxedStrategy<(String, String)> {
    prop_oneof![
        1 => (version(), version()),
        3 => version().prop_flat_map(move |v| mutate(v, insert())),
    ]
    .boxed()
}

fn generate<T: std::fmt::Debug>(strategy: BoxedStrategy<T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generator rejects too much")
                .current()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tools

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hostward-vercmp-{}-{name}", std::process::id()))
}

fn run(cmd: &mut Command, package: &str) -> String {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run `{tool}` ({e}): install the Debian package `{package}` \
             (apt-get install -y --no-install-recommends {package})"
        ),
    };
    assert!(
        out.status.success(),
        "`{tool}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

/// Every version goes on a line of its own; generators never produce a newline.
fn write_lines<'a>(name: &str, lines: impl IntoIterator<Item = &'a str>) -> PathBuf {
    let path = scratch(name);
    let mut text = String::new();
    for l in lines {
        assert!(!l.contains('\n') && !l.contains('\0'), "{l:?}");
        text += l;
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn dpkg_script(script: &str, input: PathBuf) -> Vec<String> {
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&input),
        "dpkg",
    );
    let _ = std::fs::remove_file(input);
    out.lines().map(str::to_owned).collect()
}

/// `lt`, `eq`, `gt`, or `err` where dpkg refuses one of the two.
fn dpkg_compare(pairs: &[(String, String)]) -> Vec<String> {
    require("dpkg", "dpkg");
    let input = write_lines(
        "deb-pairs",
        pairs.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]),
    );
    // dpkg answers one relation per process; ask "lt" and, only when false, "eq".
    let script = r#"
        while IFS= read -r a && IFS= read -r b; do
            dpkg --compare-versions -- "$a" lt "$b" 2>/dev/null; rc=$?
            if [ $rc -eq 0 ]; then echo lt
            elif [ $rc -ne 1 ]; then echo err
            elif dpkg --compare-versions -- "$a" eq "$b" 2>/dev/null; then echo eq
            else echo gt; fi
        done < "$1"
    "#;
    dpkg_script(script, input)
}

/// `ok`, `warn` or `err`: how dpkg's parseversion takes each version.
fn dpkg_parse(versions: &[String]) -> Vec<String> {
    require("dpkg", "dpkg");
    let input = write_lines("deb-singles", versions.iter().map(String::as_str));
    let script = r#"
        t=$(mktemp)
        while IFS= read -r v; do
            dpkg --compare-versions -- "$v" eq "$v" 2>"$t"; rc=$?
            if [ $rc -ne 0 ]; then echo err
            elif [ -s "$t" ]; then echo warn
            else echo ok; fi
        done < "$1"
        rm -f "$t"
    "#;
    dpkg_script(script, input)
}

/// `-1`, `0`, `1` from `rpm.vercmp`, or `err`.
fn rpm_compare(pairs: &[(String, String)]) -> Vec<String> {
    require("rpm", "rpm");
    let input = write_lines(
        "rpm-pairs",
        pairs.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]),
    );
    let lua = format!(
        r#"
local f = assert(io.open({input:?}, "r"))
local out = {{}}
while true do
    local a = f:read("*l")
    if a == nil then break end
    local b = f:read("*l")
    local ok, r = pcall(rpm.vercmp, a, b)
    out[#out + 1] = ok and tostring(r) or "err"
end
f:close()
print(table.concat(out, "\n"))
"#
    );
    let script = scratch("rpm.lua");
    std::fs::write(&script, lua).unwrap();
    assert!(!script.to_string_lossy().contains(['%', '"', '\\']));
    let out = run(
        Command::new("rpm")
            .arg("--eval")
            .arg(format!("%{{lua: dofile(\"{}\")}}", script.display())),
        "rpm",
    );
    let _ = std::fs::remove_file(input);
    let _ = std::fs::remove_file(script);
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "`{tool}` is not installed: these tests compare against the real tool; install the \
         Debian package `{package}` (apt-get install -y --no-install-recommends {package})"
    );
}

fn word(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "lt",
        Ordering::Equal => "eq",
        Ordering::Greater => "gt",
    }
}

fn rpm_word(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "-1",
        Ordering::Equal => "0",
        Ordering::Greater => "1",
    }
}

/// Checks every answered pair; returns how many the tool answered, and how many of each answer.
fn check(
    tool: &str,
    pairs: &[(String, String)],
    answers: &[String],
    ours: impl Fn(&str, &str) -> &'static str,
    refused_ok: impl Fn(&str, &str) -> bool,
) -> (usize, BTreeMap<String, usize>) {
    assert_eq!(answers.len(), pairs.len(), "{tool} answered too few pairs");
    let mut wrong = Vec::new();
    let mut answered = 0;
    let mut tally = BTreeMap::new();
    for a in answers {
        *tally.entry(a.clone()).or_default() += 1;
    }
    for ((a, b), theirs) in pairs.iter().zip(answers) {
        if theirs == "err" {
            if !refused_ok(a, b) {
                wrong.push(format!("{a:?} vs {b:?}: {tool} refuses, we accept both"));
            }
            continue;
        }
        answered += 1;
        let mine = ours(a, b);
        if mine != theirs {
            wrong.push(format!("{a:?} vs {b:?}: {tool} {theirs}, ours {mine}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements with {tool} out of {}:\n{}",
        wrong.len(),
        pairs.len(),
        wrong[..wrong.len().min(40)].join("\n")
    );
    (answered, tally)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn deb_compare_agrees_with_dpkg() {
    let mut pairs = generate(pairs_of(deb_version, || piece(DEB_SEPS)), DEB_PAIRS);
    // The one table row with a newline cannot go through the line-based batch.
    pairs.extend(
        cases::DEB_CASES
            .iter()
            .filter(|(a, b, _)| !a.contains('\n') && !b.contains('\n'))
            .map(|(a, b, _)| (a.to_string(), b.to_string())),
    );
    let started = Instant::now();
    let answers = dpkg_compare(&pairs);
    let took = started.elapsed();
    let (answered, tally) = check(
        "dpkg",
        &pairs,
        &answers,
        |a, b| word(compare_deb(a, b)),
        |a, b| validate(Scheme::Deb, a).is_err() || validate(Scheme::Deb, b).is_err(),
    );
    eprintln!(
        "dpkg: {answered} of {} pairs compared, all agree {tally:?} ({took:.1?} in dpkg)",
        pairs.len()
    );
    assert!(
        answered >= 3_000,
        "only {answered} pairs were valid for dpkg"
    );
}

#[test]
fn deb_validate_agrees_with_dpkg() {
    let mut versions = generate(deb_version(), DEB_SINGLES);
    versions.extend(
        generate(pairs_of(deb_version, || piece(DEB_SEPS)), 200)
            .into_iter()
            .map(|p| p.1),
    );
    let answers = dpkg_parse(&versions);
    assert_eq!(answers.len(), versions.len());
    let mut wrong = Vec::new();
    let (mut ok, mut rejected) = (0, 0);
    for (v, theirs) in versions.iter().zip(&answers) {
        let ours = validate(Scheme::Deb, v);
        match (theirs.as_str(), &ours) {
            ("ok", Ok(())) => ok += 1,
            ("warn" | "err", Err(_)) => rejected += 1,
            // Stricter on purpose: "no version", blanks dpkg trims, and signed epochs.
            ("ok", Err(_))
                if v.is_empty()
                    || v == "<unknown>"
                    || v.contains([' ', '\t'])
                    || v.starts_with(['+', '-']) =>
            {
                rejected += 1
            }
            _ => wrong.push(format!("{v:?}: dpkg {theirs}, ours {ours:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "validate disagrees with dpkg:\n{}",
        wrong.join("\n")
    );
    eprintln!("dpkg parseversion: {ok} accepted, {rejected} rejected, all agree");
    assert!(
        ok > 500 && rejected > 100,
        "{ok} accepted, {rejected} rejected"
    );
}

#[test]
fn rpm_compare_agrees_with_rpm() {
    let mut pairs = generate(pairs_of(rpm_version, || piece(RPM_SEPS)), RPM_PAIRS);
    pairs.retain(|(a, b)| !a.is_empty() && !b.is_empty());
    pairs.extend(
        cases::RPM_CASES
            .iter()
            .map(|(a, b, _)| (a.to_string(), b.to_string())),
    );
    let started = Instant::now();
    let answers = rpm_compare(&pairs);
    let took = started.elapsed();
    let (answered, tally) = check(
        "rpm",
        &pairs,
        &answers,
        |a, b| rpm_word(compare_rpm(a, b)),
        |_, _| false,
    );
    eprintln!("rpm: {answered} pairs compared, all agree {tally:?} ({took:.1?} in rpm)");
    assert_eq!(answered, pairs.len());
}

/// rpmbuild refuses what `validate` refuses; rpm.vercmp must still order all of it, and a valid
/// version must read back with the same parts rpm sees.
#[test]
fn rpm_validate_splits_like_rpm() {
    let versions = generate(rpm_version(), 3_000);
    let valid: Vec<&String> = versions
        .iter()
        .filter(|v| validate(Scheme::Rpm, v).is_ok())
        .collect();
    assert!(valid.len() > 500, "only {} valid", valid.len());
    let input = write_lines("rpm-split", valid.iter().map(|v| v.as_str()));
    let lua = format!(
        r#"
local f = assert(io.open({input:?}, "r"))
local out = {{}}
for v in f:lines() do
    local r = rpm.ver(v)
    out[#out + 1] = (r.e or "-") .. " " .. r.v .. " " .. (r.r or "-")
end
f:close()
print(table.concat(out, "\n"))
"#
    );
    require("rpm", "rpm");
    let script = scratch("rpm-split.lua");
    std::fs::write(&script, lua).unwrap();
    let out = run(
        Command::new("rpm")
            .arg("--eval")
            .arg(format!("%{{lua: dofile(\"{}\")}}", script.display())),
        "rpm",
    );
    let _ = std::fs::remove_file(input);
    let _ = std::fs::remove_file(script);
    let answers: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(answers.len(), valid.len());
    for (v, theirs) in valid.iter().zip(answers) {
        let p = hostward_vercmp::parse_rpm(v).unwrap();
        let ours = format!(
            "{} {} {}",
            p.epoch.map_or("-".to_owned(), |e| e.to_string()),
            p.version,
            p.release.unwrap_or("-")
        );
        let mut theirs = theirs.trim().splitn(3, ' ');
        let epoch = theirs.next().unwrap();
        let theirs = format!(
            "{} {}",
            epoch
                .parse::<u32>()
                .map_or(epoch.to_owned(), |e| e.to_string()),
            theirs.collect::<Vec<_>>().join(" ")
        );
        assert_eq!(ours, theirs, "{v:?}");
    }
}
