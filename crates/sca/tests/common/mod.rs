//! What the fixture-root tests share: where the fixtures are, a shipped policy loaded by file
//! name, and a report's check ids by outcome.

use hostward_sca::{Outcome, Policy, PolicyReport, load};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn shipped(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../content/sca")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    load(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ids(r: &PolicyReport, outcome: Outcome) -> Vec<i64> {
    let mut v: Vec<i64> = r
        .checks
        .iter()
        .filter(|c| c.result == outcome)
        .map(|c| c.id)
        .collect();
    v.sort();
    v
}

pub fn range(from: i64, to: i64) -> Vec<i64> {
    (from..=to).collect()
}
