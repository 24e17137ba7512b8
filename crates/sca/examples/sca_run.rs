//! Runs policies against a root and prints one line per check (or JSON with `--json`), for
//! trying a policy by hand and for comparing results with other tools:
//! `cargo run -p hostward-sca --example sca_run -- [--json] ROOT POLICY.yml...`

use hostward_sca::{Outcome, RootHost, load, run};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.first().is_some_and(|a| a == "--json");
    if json {
        args.remove(0);
    }
    let Some((root, policies)) = args.split_first() else {
        eprintln!("usage: sca_run [--json] ROOT POLICY.yml...");
        std::process::exit(2);
    };
    let host = RootHost::new(root);
    let mut failed = false;
    for path in policies {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            }
        };
        let policy = match load(path, &text) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        let report = run(&policy, &host);
        if json {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            continue;
        }
        if !report.applicable {
            println!(
                "{}: not applicable: {}",
                report.policy_id,
                report.reason.unwrap_or_default()
            );
            continue;
        }
        for c in &report.checks {
            let r = match c.result {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::NotApplicable => "n/a ",
            };
            failed |= c.result == Outcome::Fail;
            println!("{r} {} {}", c.id, c.title);
            if let Some(why) = &c.reason {
                println!("       {why}");
            }
            for e in &c.evidence {
                println!("       {e}");
            }
        }
    }
    std::process::exit(i32::from(failed));
}
