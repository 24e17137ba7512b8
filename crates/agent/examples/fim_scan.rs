//! The file integrity engine from the command line, for `bench/fim.sh` (beside `aide --init`
//! and `aide --check`): `fim_scan init DIR DB` baselines DIR (recursive) into DB, JSON;
//! `fim_scan check DIR DB` loads DB, scans DIR again trusting unchanged metadata, and prints the
//! changes; `check --full` re-reads every file.

use std::path::Path;

use hostward_agent::fim::engine::{Baseline, diff, scan};
use hostward_proto::fim::{FimPolicy, WatchedDir};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, dir, db) = match args.as_slice() {
        [m, d, b, ..] => (m.as_str(), d.clone(), b.clone()),
        _ => {
            eprintln!("usage: fim_scan init|check DIR DB [--full]");
            std::process::exit(2);
        }
    };
    let full = args.iter().any(|a| a == "--full");
    let policy = FimPolicy {
        enabled: true,
        important_files: Vec::new(),
        directories: vec![WatchedDir {
            path: dir.trim_end_matches('/').to_string(),
            ..Default::default()
        }],
    };
    if let Err(e) = policy.validate() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let root = Path::new("/");
    match mode {
        "init" => {
            let s = scan(root, &policy, None);
            let out = serde_json::to_vec(&s.baseline).expect("a baseline serialises");
            std::fs::write(&db, out).unwrap_or_else(|e| panic!("writing {db}: {e}"));
            println!(
                "{} entries, {} unreadable",
                s.baseline.len(),
                s.errors.len()
            );
        }
        "check" => {
            let old: Baseline = serde_json::from_slice(
                &std::fs::read(&db).unwrap_or_else(|e| panic!("reading {db}: {e}")),
            )
            .unwrap_or_else(|e| panic!("{db}: {e}"));
            let s = scan(root, &policy, (!full).then_some(&old));
            let changes = diff(&old, &s.baseline);
            for c in &changes {
                println!("{} {}", c.op.as_str(), c.path);
            }
            println!("{} entries, {} changes", s.baseline.len(), changes.len());
        }
        m => {
            eprintln!("unknown mode {m:?}: init or check");
            std::process::exit(2);
        }
    }
}
