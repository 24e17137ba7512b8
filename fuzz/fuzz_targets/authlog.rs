//! Auth log lines are written with attacker-chosen user names in them: every parser must
//! return an event, nothing or a skip, never panic, and a source address it reports must be
//! written in the line (it never invents or rewrites one, beyond IPv4-mapped IPv6 to IPv4).
#![no_main]
use hostward_agent::bruteforce::Service;
use hostward_agent::bruteforce::authlog::{parse_json_line, parse_line};
use libfuzzer_sys::fuzz_target;

/// Some address-looking token of the line is `addr`.
fn appears(line: &[u8], addr: std::net::IpAddr) -> bool {
    String::from_utf8_lossy(line)
        .split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
        .filter_map(|t| t.parse::<std::net::IpAddr>().ok())
        .any(|a| a.to_canonical() == addr)
}

fuzz_target!(|data: &[u8]| {
    for service in [Service::Ssh, Service::Ftp, Service::Mysql] {
        if let Ok(Some(e)) = parse_line(service, data, 0) {
            assert_eq!(e.service, service);
            assert!(
                appears(data, e.source),
                "{:?} not in {:?}",
                e.source,
                String::from_utf8_lossy(data)
            );
            assert!(e.line.len() <= 512);
        }
    }
    let _ = parse_json_line(&[Service::Ssh, Service::Ftp, Service::Mysql], data, 0);
});
