//! Driver of `bench/weak_password.sh` (no libtest harness):
//!
//!   weak_password gen ROOT WORDS N   ROOT/etc/{passwd,shadow}: N yescrypt accounts; every
//!                                    fourth one has a password from WORDS, the rest strong ones
//!   weak_password words ROOT WORDS   time the check with exactly WORDS (what john gets)
//!   weak_password full ROOT          time the check as the agent runs it (built-in dictionary,
//!                                    user-name variants)
//!
//! Each timing is one JSON line on stdout. Cargo appends `--bench`; it is ignored.

use std::path::Path;
use std::time::{Duration, Instant};

use hostward_agent::risk::{crypt, weak_password};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen", root, words, n] => {
            generate(Path::new(root), &read_words(words), n.parse().unwrap())
        }
        ["words", root, words] => {
            let words = read_words(words);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            timed(|cfg| weak_password::check_words(cfg, &words), root);
        }
        ["full", root] => timed(weak_password::check, root),
        _ => {
            eprintln!("usage: weak_password gen ROOT WORDS N | words ROOT WORDS | full ROOT");
            std::process::exit(2);
        }
    }
}

fn read_words(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn generate(root: &Path, words: &[String], n: usize) {
    let mut passwd = String::new();
    let mut shadow = String::new();
    let mut weak = 0;
    for i in 0..n {
        let name = format!("user{i:02}");
        // Weak ones spread over the list, so a cracker meets them early, midway and late.
        let password = if i % 4 == 0 {
            weak += 1;
            words[(i * 37 + 11) % words.len()].clone()
        } else {
            format!("Zq{i}#x!{}Lp", i * 7919)
        };
        let hash = crypt::hash(&password, "$y$").expect("yescrypt");
        passwd.push_str(&format!(
            "{name}:x:{}:{}::/home/{name}:/bin/bash\n",
            2000 + i,
            2000 + i
        ));
        shadow.push_str(&format!("{name}:{hash}:19000:0:99999:7:::\n"));
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), passwd).unwrap();
    std::fs::write(root.join("etc/shadow"), shadow).unwrap();
    eprintln!("{n} yescrypt accounts, {weak} with a password from the word list");
}

fn timed(
    run: impl Fn(&weak_password::Config) -> hostward_proto::risk::WeakPasswordResult,
    root: &str,
) {
    let cfg = weak_password::Config {
        root: Path::new(root),
        custom: &[],
        budget: Duration::from_secs(3600),
    };
    let (t0, c0) = (Instant::now(), cpu_secs());
    let r = run(&cfg);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - c0;
    println!(
        "{{\"wall_s\":{secs:.3},\"cpu_s\":{cpu:.3},\"accounts_checked\":{},\"candidates\":{},\"cracked\":{},\"complete\":{}}}",
        r.accounts_checked,
        r.candidates,
        r.findings.len(),
        r.complete
    );
}

/// User + system CPU of the whole process, all threads.
fn cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}
