//! `hostward-scanner`: scans files and directories with the shipped rules, imported rule files
//! and hash lists, and prints one JSON line per file with a detection or a skip, then a summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use hostward_scanner::archive::Limits;
use hostward_scanner::engine::Engine;
use hostward_scanner::indicators::Indicators;

#[derive(Parser, Debug)]
#[command(
    name = "hostward-scanner",
    version,
    about = "Hostward's malware scanner"
)]
struct Cli {
    /// YARA rule files to use beside the shipped rules (each in a namespace of its own).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Hash indicator lists (`<sha256 or md5 hex> [name]` per line).
    #[arg(long = "hashes", value_name = "FILE")]
    hashes: Vec<PathBuf>,
    /// Archives within archives looked into (the file itself is depth 0).
    #[arg(long, default_value_t = Limits::default().max_depth)]
    max_depth: u32,
    /// Do not look into archives.
    #[arg(long)]
    no_unpack: bool,
    /// Files or directories (walked, symlinks not followed, other filesystems not entered).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

fn walk(p: &Path, dev: Option<u64>, out: &mut dyn FnMut(&Path)) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if dev.is_some_and(|d| d != md.dev()) {
        return;
    }
    if md.is_file() {
        out(p);
    } else if md.is_dir()
        && let Ok(rd) = std::fs::read_dir(p)
    {
        let mut kids: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        kids.sort();
        for k in kids {
            walk(&k, Some(md.dev()), out);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut imported = Vec::new();
    for f in &cli.rules {
        match std::fs::read_to_string(f) {
            Ok(t) => imported.push((f.display().to_string(), t)),
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                return ExitCode::from(2);
            }
        }
    }
    let rules = match hostward_scanner::rules::compile(&imported) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rules refused: {e}");
            return ExitCode::from(2);
        }
    };
    let mut indicators = Indicators::default();
    for f in &cli.hashes {
        let added = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| indicators.add(&f.display().to_string(), &t));
        if let Err(e) = added {
            eprintln!("hashes refused: {e}");
            return ExitCode::from(2);
        }
    }
    let mut limits = Limits {
        max_depth: cli.max_depth,
        ..Limits::default()
    };
    if cli.no_unpack {
        limits.max_depth = 0;
    }
    let engine = Engine {
        rules,
        indicators,
        limits,
    };
    let mut scanner = yara_x::Scanner::new(&engine.rules);
    let started = Instant::now();
    let (mut files, mut bytes, mut found, mut skipped, mut errors) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for p in &cli.paths {
        walk(p, None, &mut |f| match engine.scan_file(&mut scanner, f) {
            Ok(r) => {
                files += 1;
                bytes += r.scanned_bytes;
                found += r.detections.len() as u64;
                skipped += r.skipped.len() as u64;
                if !r.detections.is_empty() || !r.skipped.is_empty() {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("{}: {e}", f.display());
            }
        });
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"summary": {"files": files, "bytes": bytes, "detections": found, "skipped": skipped, "unreadable": errors, "secs": secs}})
    );
    if found > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
