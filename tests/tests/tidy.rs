//! House conventions as tests (rust-analyzer's `tidy.rs` is the model): every source file says
//! what it is in a `//!` line and stays small enough to hold in mind; SQL stays in the store;
//! console pages reach data only through the API operations; every crate and every module
//! folder of the center and the agent is on ARCHITECTURE.md's map; the agent runtime names no
//! capability. Exceptions are listed here
//! with the size they may not pass, so they can only shrink.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1_500;

/// Files already over [`MAX_LINES`] and the most they may have until they are split.
const LONG_FILES: &[(&str, usize)] = &[];

/// Where `sqlx` may be named: the store crate alone. The e2e harness reads a center's database
/// through `hostward_store::admin`; the agent's outbox uses rusqlite.
const SQLX_ALLOWED: &[&str] = &["crates/store/"];

/// The only Cargo.toml that may name sqlx, so SQL stays in the store by the compiler's word.
const SQLX_MANIFEST: &str = "crates/store/Cargo.toml";

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

/// Every Cargo.toml of the repository (the workspace, its members, fuzz/), skipping build output.
fn manifests() -> Vec<(String, String)> {
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
            } else if name == "Cargo.toml" {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let base = root().canonicalize().unwrap();
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

#[test]
fn only_the_store_crate_depends_on_sqlx() {
    let all = manifests();
    assert!(
        all.iter().any(|(path, _)| path == SQLX_MANIFEST),
        "{SQLX_MANIFEST} not found among {:?}",
        all.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let offenders: Vec<String> = all
        .into_iter()
        .filter(|(path, text)| {
            // Comments may explain the rule; only a dependency line names the crate.
            let names_sqlx = text.lines().any(|line| {
                let line = line.split('#').next().unwrap_or("").trim();
                line.starts_with("sqlx")
                    || line.contains("dependencies.sqlx")
                    || line.contains("package = \"sqlx\"")
            });
            names_sqlx && path != SQLX_MANIFEST
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        offenders.is_empty(),
        "sqlx is the store's dependency alone (use hostward-store, or hostward_store::admin in tests): {offenders:#?}"
    );
}

#[test]
fn console_pages_call_the_api_operations_not_the_store() {
    let mut pages = rust_files("crates/center/src/console");
    // A capability's pages live in its folder, in files named `console.rs` or `*_console.rs`.
    pages.extend(
        rust_files("crates/center/src/capabilities")
            .into_iter()
            .filter(|(path, _)| path.ends_with("console.rs")),
    );
    assert!(pages.len() > 8, "found only {} console files", pages.len());
    let offenders: Vec<String> = pages
        .into_iter()
        .filter(|(path, _)| !path.ends_with("tests.rs") && !path.ends_with("testutil.rs"))
        .filter(|(_, text)| {
            // `state.store.x()` may be split over lines by rustfmt. The store crate's types are
            // fine to name; its ways to a database other than `state.store` are not.
            let flat: String = text.split_whitespace().collect();
            flat.contains(".store.")
                || flat.contains("hostward_store::admin")
                || flat.contains("Store::connect")
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
        ("crates/center/src/capabilities", "capabilities/"),
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

/// The capability list (`capabilities/mod.rs`, `ALL`) and the capability folders agree, and
/// ARCHITECTURE.md's capability table names each one.
#[test]
fn every_center_capability_is_listed_and_mapped() {
    let list =
        std::fs::read_to_string(root().join("crates/center/src/capabilities/mod.rs")).unwrap();
    let all = list
        .split("pub const ALL: &[Capability] = &[")
        .nth(1)
        .and_then(|rest| rest.split("];").next())
        .expect("capabilities/mod.rs defines `pub const ALL: &[Capability] = &[...];`");
    let mut listed: Vec<String> = all
        .split(',')
        .map(|s| s.trim().trim_end_matches("::CAPABILITY").to_string())
        .filter(|s| !s.is_empty())
        .collect();
    listed.sort();
    let mut folders: Vec<String> = std::fs::read_dir(root().join("crates/center/src/capabilities"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    folders.sort();
    assert!(!listed.is_empty());
    assert_eq!(
        listed, folders,
        "every capability folder is in ALL, and only those"
    );
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let unmapped: Vec<&String> = listed
        .iter()
        .filter(|c| !map.contains(&format!("| `{c}` |")))
        .collect();
    assert!(
        unmapped.is_empty(),
        "ARCHITECTURE.md's capability table lacks: {unmapped:#?}"
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
