//! What the fixture-root tests share: where the fixtures are, a copy of one to change, a
//! shipped policy loaded by file name, and a report's check ids by outcome.

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

/// Copies a fixture tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        // Links are copied as links: the weak root's absolute one would otherwise be followed
        // on the machine running the test.
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else if ft.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
