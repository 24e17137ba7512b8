//! House conventions as tests (rust-analyzer's `tidy.rs` is the model): every source file says
//! what it is in a `//!` line and stays small enough to hold in mind; SQL stays in the store;
//! console pages reach data only through the API operations; every crate and every module
//! folder of the center and the agent is on ARCHITECTURE.md's map; the agent runtime names no
//! capability. Exceptions are listed here
//! with the size they may not pass, so they can only shrink.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1_500;

/// Files already over [`MAX_LINES`] and the most they may have until they are split.
const LONG_FILES: &[(&str, usize)] = &[
    ("crates/center/src/console/inventory.rs", 1_853),
    ("crates/center/src/console/risk.rs", 1_881),
    ("crates/center/src/store/risk.rs", 1_936),
    ("tests/src/lib.rs", 2_067),
];

/// Where `sqlx` may be named: the center's store and the e2e harness, which reads a center's
/// database to check what was stored. (The agent's outbox uses rusqlite.)
const SQLX_ALLOWED: &[&str] = &["crates/center/src/store/", "tests/src/lib.rs"];

/// Words that name a capability. The agent runtime (`crates/agent-core`) may use none of them,
/// in code, comments or tests: modules plug in through `Module`, and the runtime never knows
/// which exist. Matched as whole words (split at anything but letters and digits), so
/// `asterisk` does not trip `risk`.
const CAPABILITY_WORDS: &[&str] = &[
    "inventory",
    "risk",
    "brute",
    "bruteforce",
    "detect",
    "detector",
    "detectors",
    "firewall",
    "authlog",
    "nft",
    "nftables",
    "alarm",
    "alarms",
    "vuln",
    "vulnerability",
    "vulnerabilities",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Rust files under `dir` (relative to the repository root), skipping build output.
fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(base, &path, out);
                }
            } else if name.ends_with(".rs") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((rel, text));
            }
        }
    }
    let base = root().canonicalize().unwrap();
    let mut out = Vec::new();
    walk(&base, &base.join(dir), &mut out);
    out.sort();
    out
}

fn all_sources() -> Vec<(String, String)> {
    let mut v = rust_files("crates");
    v.extend(rust_files("tests"));
    v.extend(rust_files("fuzz/fuzz_targets"));
    assert!(
        v.len() > 100,
        "found only {} Rust files under {:?}",
        v.len(),
        root()
    );
    v
}

#[test]
fn every_source_file_starts_with_a_doc_line() {
    let missing: Vec<String> = all_sources()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "start these with a `//!` line saying what they are: {missing:#?}"
    );
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut over = Vec::new();
    for (path, text) in all_sources() {
        let lines = text.lines().count();
        let limit = LONG_FILES
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(MAX_LINES, |(_, n)| *n);
        if lines > limit {
            over.push(format!("{path}: {lines} lines (limit {limit})"));
        }
    }
    assert!(over.is_empty(), "split these: {over:#?}");
}

#[test]
fn sql_stays_in_the_store() {
    let offenders: Vec<String> = all_sources()
        .into_iter()
        .filter(|(path, text)| {
            text.contains(concat!("sqlx", "::"))
                && !SQLX_ALLOWED.iter().any(|a| path.starts_with(a))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        offenders.is_empty(),
        "sqlx outside the store: {offenders:#?}"
    );
}

#[test]
fn console_pages_call_the_api_operations_not_the_store() {
    let offenders: Vec<String> = rust_files("crates/center/src/console")
        .into_iter()
        .filter(|(path, _)| !path.ends_with("tests.rs") && !path.ends_with("testutil.rs"))
        .filter(|(_, text)| {
            // `state.store.x()` may be split over lines by rustfmt.
            let flat: String = text.split_whitespace().collect();
            flat.contains(".store.")
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        offenders.is_empty(),
        "console code reaches the store directly (use the api:: operation, which checks the caller): {offenders:#?}"
    );
}

#[test]
fn architecture_md_maps_every_crate_and_module_folder() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for (parent, prefix) in [
        ("crates", "crates/"),
        ("crates/center/src", ""),
        ("crates/agent/src", ""),
        ("crates/agent-core/src", ""),
    ] {
        for e in std::fs::read_dir(root().join(parent)).unwrap().flatten() {
            if !e.path().is_dir() {
                continue;
            }
            let name = format!("{prefix}{}/", e.file_name().to_string_lossy());
            let short = name.trim_start_matches("crates/");
            if !map.contains(&name) && !map.contains(short) {
                missing.push(format!("{parent}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these folders: {missing:#?}"
    );
}

#[test]
fn the_agent_runtime_names_no_capability() {
    let mut files = rust_files("crates/agent-core");
    files.push((
        "crates/agent-core/Cargo.toml".into(),
        std::fs::read_to_string(root().join("crates/agent-core/Cargo.toml")).unwrap(),
    ));
    assert!(files.len() > 5, "found only {} files", files.len());
    let mut hits = Vec::new();
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for word in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
                if CAPABILITY_WORDS.contains(&word) {
                    hits.push(format!("{path}:{}: {word:?} in {:?}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the agent runtime names a capability (give it to a module through `Module` instead): {hits:#?}"
    );
}

#[test]
fn the_agent_runtime_depends_on_no_capability_crate() {
    let manifest = std::fs::read_to_string(root().join("crates/agent-core/Cargo.toml")).unwrap();
    for line in manifest.lines() {
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        assert!(
            name != "hostward-agent" && name != "hostward-center" && name != "sqlx",
            "crates/agent-core/Cargo.toml: {line}"
        );
    }
}
