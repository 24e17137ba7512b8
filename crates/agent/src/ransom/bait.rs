//! Bait files: documents nobody opens on purpose, in each watched directory (one whose name
//! sorts first, one last, so a program walking the directory in either order meets one early)
//! and, with `random_bait`, in random subdirectories of those and of the host's usual data
//! places. Each deployment has new random names, so a program cannot learn to skip them; the
//! content is plain text, owned like the directory it is in. Functions of a filesystem root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Random subdirectories a watched directory gets baits in, and random data places.
const RANDOM_PER_DIR: usize = 2;
const RANDOM_PLACES: usize = 4;
/// Data places, where `random_bait` may put baits (each home directory too).
const DATA_PLACES: &[&str] = &["/root", "/srv", "/opt", "/var/www", "/data"];
/// Directories looked at when choosing random subdirectories.
const MAX_CANDIDATES: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bait {
    /// Host path.
    pub path: String,
    /// BLAKE3 of what was written.
    pub hash: String,
}

const WORDS: &[&str] = &[
    "invoices",
    "payroll",
    "contracts",
    "customers",
    "passwords",
    "accounts",
    "budget",
    "backup",
];
const EXTS: &[&str] = &["docx", "xlsx", "pdf", "csv", "sql", "txt"];

fn at(root: &Path, host: &str) -> std::path::PathBuf {
    root.join(host.trim_start_matches('/'))
}

/// Plain text that reads like a ledger: low entropy, so a bait rewritten encrypted is plain to
/// see, and large enough to be worth encrypting.
fn content(seed: u64) -> String {
    let mut s = String::from("id,name,account,amount,currency,date\n");
    let mut x = seed | 1;
    for i in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!(
            "{i},Customer {},DE{:020},{}.{:02},EUR,2026-{:02}-{:02}\n",
            x % 997,
            x % 100_000_000_000,
            x % 90_000,
            x % 100,
            1 + x % 12,
            1 + x % 28
        ));
    }
    s
}

/// Where baits go: each watched directory, and with `random`, up to [`RANDOM_PER_DIR`] random
/// subdirectories of each and [`RANDOM_PLACES`] random data places that exist under `root`.
pub fn places(root: &Path, dirs: &[String], random: bool) -> Vec<String> {
    let mut out: Vec<String> = dirs
        .iter()
        .filter(|d| at(root, d).is_dir())
        .cloned()
        .collect();
    if !random {
        return out;
    }
    for d in dirs {
        let mut subs = Vec::new();
        subdirs(root, d, 3, &mut subs);
        pick(&mut subs, RANDOM_PER_DIR, &mut out);
    }
    let mut data: Vec<String> = DATA_PLACES
        .iter()
        .map(|p| p.to_string())
        .filter(|p| at(root, p).is_dir())
        .collect();
    if let Ok(rd) = std::fs::read_dir(at(root, "/home")) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                data.push(format!("/home/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    data.retain(|p| !out.contains(p));
    pick(&mut data, RANDOM_PLACES, &mut out);
    out
}

fn pick(from: &mut Vec<String>, n: usize, into: &mut Vec<String>) {
    for _ in 0..n {
        if from.is_empty() {
            return;
        }
        let p = from.swap_remove(rand::random_range(0..from.len()));
        if !into.contains(&p) {
            into.push(p);
        }
    }
}

fn subdirs(root: &Path, dir: &str, depth: u32, out: &mut Vec<String>) {
    if depth == 0 || out.len() >= MAX_CANDIDATES {
        return;
    }
    let Ok(rd) = std::fs::read_dir(at(root, dir)) else {
        return;
    };
    for e in rd.flatten() {
        if out.len() >= MAX_CANDIDATES {
            return;
        }
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let p = format!("{}/{name}", dir.trim_end_matches('/'));
        out.push(p.clone());
        subdirs(root, &p, depth - 1, out);
    }
}

/// Writes two baits in each of `places`; returns them and what could not be written.
pub fn deploy(root: &Path, places: &[String]) -> (Vec<Bait>, Vec<String>) {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (mut baits, mut problems) = (Vec::new(), Vec::new());
    for (i, dir) in places.iter().enumerate() {
        let word = WORDS[rand::random_range(0..WORDS.len())];
        for prefix in ["!0", "~z"] {
            let ext = EXTS[rand::random_range(0..EXTS.len())];
            let path = format!("{}/{prefix}-{word}-{tag}.{ext}", dir.trim_end_matches('/'));
            match write(root, dir, &path, rand::random::<u64>() ^ i as u64) {
                Ok(hash) => baits.push(Bait { path, hash }),
                Err(e) => problems.push(format!("{path}: {e}")),
            }
        }
    }
    (baits, problems)
}

fn write(root: &Path, dir: &str, path: &str, seed: u64) -> std::io::Result<String> {
    let body = content(seed);
    let dest = at(root, path);
    let md = std::fs::metadata(at(root, dir))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&dest)?;
    std::io::Write::write_all(&mut f, body.as_bytes())?;
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644))?;
    std::os::unix::fs::chown(&dest, Some(md.uid()), Some(md.gid()))?;
    Ok(blake3::hash(body.as_bytes()).to_hex().to_string())
}

/// Removes baits (a bait already gone or replaced by a directory is left as it is).
pub fn remove(root: &Path, baits: &[Bait]) {
    for b in baits {
        let p = at(root, &b.path);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The baits that are no longer as they were written (changed, or gone).
pub fn touched(root: &Path, baits: &[Bait]) -> Vec<String> {
    baits
        .iter()
        .filter(|b| crate::fim::engine::hash_file(&at(root, &b.path)).map_or(true, |h| h != b.hash))
        .map(|b| b.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baits_sort_first_and_last_with_new_names_each_time_and_go_away_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for p in ["srv/data/a/b", "srv/data/c", "home/alice", "opt"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        std::fs::write(root.join("srv/data/report.txt"), "x").unwrap();
        let dirs = vec!["/srv/data".to_string(), "/missing".to_string()];
        assert_eq!(places(root, &dirs, false), ["/srv/data"]);
        let random = places(root, &dirs, true);
        assert_eq!(random[0], "/srv/data");
        assert!(random.len() <= 1 + RANDOM_PER_DIR + RANDOM_PLACES);
        assert!(random.len() >= 3, "{random:?}");
        for p in &random[1..] {
            assert!(
                p.starts_with("/srv/data/")
                    || ["/home/alice", "/opt", "/srv"].contains(&p.as_str()),
                "{p}"
            );
        }

        let (baits, problems) = deploy(root, &["/srv/data".into(), "/nope".into()]);
        assert_eq!(baits.len(), 2);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let mut names: Vec<String> = std::fs::read_dir(root.join("srv/data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.first().unwrap().starts_with("!0-"), "{names:?}");
        assert!(names.last().unwrap().starts_with("~z-"), "{names:?}");
        let text = std::fs::read(root.join(baits[0].path.trim_start_matches('/'))).unwrap();
        assert!(text.len() > 10_000);
        assert!(!crate::ransom::entropy::looks_encrypted(&text));
        assert!(touched(root, &baits).is_empty());

        std::fs::write(root.join(baits[1].path.trim_start_matches('/')), "enc").unwrap();
        assert_eq!(touched(root, &baits), [baits[1].path.clone()]);

        let (again, _) = deploy(root, &["/srv/data".into()]);
        assert!(again.iter().all(|b| !baits.contains(b)), "new names");
        remove(root, &baits);
        remove(root, &again);
        let left: Vec<_> = std::fs::read_dir(root.join("srv/data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "report.txt, a and c stay: {left:?}");
    }
}
