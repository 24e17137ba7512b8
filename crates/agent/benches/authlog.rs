//! Parsing speed of the auth log parsers: a generated 100,000-line burst of mixed sshd lines
//! (failures, invalid users, PAM, preauth disconnects, successes, other programs' noise),
//! parsed with `parse_line` several times over; prints lines/s. The issue asks for >= 500,000.
//!
//!   cargo bench -p hostward-agent --bench authlog

use std::time::Instant;

use hostward_agent::bruteforce::Service;
use hostward_agent::bruteforce::authlog::parse_line;

fn burst(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let ip = format!("198.51.{}.{}", (i / 250) % 250, i % 250);
            let port = 30000 + i % 30000;
            let head = format!("2026-12-01T12:00:{:02}.{:06}+00:00 web1 sshd[{}]:", i % 60, i, 1000 + i % 5000);
            match i % 10 {
                0..=3 => format!("{head} Failed password for root from {ip} port {port} ssh2"),
                4 => format!("{head} Failed password for invalid user admin{i} from {ip} port {port} ssh2"),
                5 => format!("{head} Invalid user admin{i} from {ip} port {port}"),
                6 => format!("{head} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"),
                7 => format!("{head} Connection closed by authenticating user root {ip} port {port} [preauth]"),
                8 => format!("Dec  1 12:00:00 web1 CRON[{i}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
                _ => format!("{head} Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 SHA256:KpNnixWrdCr27RtD7YAaj/tAC6f85Ups1Lkj6l2xxrg"),
            }
        })
        .collect()
}

fn main() {
    let lines = burst(100_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut best = f64::MAX;
    let mut events = 0;
    for _ in 0..5 {
        let start = Instant::now();
        events = 0;
        for l in &lines {
            if let Ok(Some(e)) = parse_line(Service::Ssh, l.as_bytes(), 0) {
                events += std::hint::black_box(e).count as usize;
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{{\"lines\":{},\"bytes\":{bytes},\"events\":{events},\"seconds\":{best:.4},\"lines_per_s\":{:.0}}}",
        lines.len(),
        lines.len() as f64 / best
    );
}
