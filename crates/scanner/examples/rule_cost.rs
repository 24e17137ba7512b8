//! What each rule of a rule file costs to scan with: compiles each rule alone and scans the
//! files of a directory (read into memory first, so only the rules are timed), then all of
//! them together. Rules are what a scan's speed depends on: run this before shipping one.
//!
//!     cargo run --release -p hostward-scanner --example rule_cost -- content/yara/hostward.yar /usr/bin

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(rules), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: rule_cost RULES.yar DIR");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&rules).expect("rules");
    let mut files = Vec::new();
    let mut todo = vec![std::path::PathBuf::from(dir)];
    while let Some(p) = todo.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            todo.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if md.is_file()
            && let Ok(b) = std::fs::read(&p)
        {
            files.push(b);
        }
    }
    let total: usize = files.iter().map(|f| f.len()).sum();
    println!("{} files, {} MB in memory", files.len(), total / 1_000_000);
    let time = |src: &str| -> (f64, usize) {
        let mut c = yara_x::Compiler::new();
        c.add_source(src).expect("compiles");
        let r = c.build();
        let mut s = yara_x::Scanner::new(&r);
        let t = Instant::now();
        let mut hits = 0;
        for f in &files {
            hits += s.scan(f).map(|m| m.matching_rules().len()).unwrap_or(0);
        }
        (t.elapsed().as_secs_f64(), hits)
    };
    let parts: Vec<&str> = text.split("\nrule ").skip(1).collect();
    // The first pass over the files pays for bringing them into the caches: not a rule's cost.
    time("rule warm { strings: $a = \"hostward-warm-up\" condition: $a }");
    let (base, _) = time("rule nothing { condition: false }");
    println!(
        "{:40} {:7.3} s {:8.0} MB/s",
        "(no pattern)",
        base,
        total as f64 / 1e6 / base
    );
    for p in &parts {
        let name = p.split_whitespace().next().unwrap_or("?");
        let (t, hits) = time(&format!("rule {p}"));
        println!(
            "{name:40} {t:7.3} s {:8.0} MB/s  matched {hits}",
            total as f64 / 1e6 / t
        );
    }
    let (t, hits) = time(&text);
    println!(
        "{:40} {t:7.3} s {:8.0} MB/s  matched {hits}",
        "(all)",
        total as f64 / 1e6 / t
    );
    // As the scanner runs them: each group a pass (src/rules.rs).
    let set = hostward_scanner::rules::compile(&[]).expect("shipped rules");
    let mut scanners: Vec<yara_x::Scanner> = set
        .groups
        .iter()
        .map(|g| yara_x::Scanner::new(&g.rules))
        .collect();
    let t = Instant::now();
    for f in &files {
        for s in scanners.iter_mut() {
            let _ = s.scan(f);
        }
    }
    let t = t.elapsed().as_secs_f64();
    println!(
        "{:40} {t:7.3} s {:8.0} MB/s",
        "(scanner: each rule a pass)",
        total as f64 / 1e6 / t
    );
}
