//! Parser tests. sshd lines are copied from OpenSSH 9.2p1 (Debian 12) logging to a file, with a
//! syslog header added; hostile user names were sent to that sshd with `ssh 'name'@host`.

use std::net::IpAddr;

use super::*;
use crate::bruteforce::{AuthOutcome::*, Service::*};

const NOW: i64 = 1_800_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ev(service: Service, line: &str) -> AuthEvent {
    match parse_line(service, line.as_bytes(), NOW) {
        Ok(Some(e)) => e,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn none(service: Service, line: &str) {
    let r = parse_line(service, line.as_bytes(), NOW);
    assert_eq!(r, Ok(None), "{line:?}");
}

fn skip(service: Service, line: &str) -> Skip {
    match parse_line(service, line.as_bytes(), NOW) {
        Err(s) => s,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn syslog(msg: &str) -> String {
    format!("Dec  1 12:00:00 web1 sshd[4242]: {msg}")
}

fn rfc(msg: &str) -> String {
    format!("2026-12-01T12:00:00.123456+00:00 web1 sshd[4242]: {msg}")
}

#[test]
fn sshd_failed_password_both_timestamp_formats() {
    for line in [
        syslog("Failed password for sshuser from 127.0.0.1 port 49766 ssh2"),
        rfc("Failed password for sshuser from 127.0.0.1 port 49766 ssh2"),
    ] {
        let e = ev(Ssh, &line);
        assert_eq!(e.outcome, Failure);
        assert_eq!(e.user, "sshuser");
        assert!(!e.invalid_user);
        assert_eq!(e.source, ip("127.0.0.1"));
        assert_eq!(e.port, Some(49766));
        assert_eq!(e.method.as_deref(), Some("password"));
        assert_eq!(e.count, 1);
        assert_eq!(e.ts, NOW);
        assert_eq!(e.line, line);
        assert_eq!(e.service, Ssh);
    }
}

#[test]
fn sshd_failures() {
    let e = ev(
        Ssh,
        &syslog("Failed password for invalid user nosuchuser from 203.0.113.7 port 60280 ssh2"),
    );
    assert_eq!((e.user.as_str(), e.invalid_user), ("nosuchuser", true));
    assert_eq!(e.source, ip("203.0.113.7"));

    let e = ev(
        Ssh,
        &syslog(
            "Failed publickey for sshuser from 2001:db8::5 port 37414 ssh2: ED25519 \
             SHA256:CWH5lYd/eUYsQmtDKAkAQE4aLBSL8Mt08lOtuRH2//A",
        ),
    );
    assert_eq!((e.outcome, e.user.as_str()), (Failure, "sshuser"));
    assert_eq!(e.source, ip("2001:db8::5"));
    assert_eq!(e.method.as_deref(), Some("publickey"));

    let e = ev(
        Ssh,
        &syslog("Failed keyboard-interactive/pam for root from 198.51.100.1 port 2 ssh2"),
    );
    assert_eq!(e.method.as_deref(), Some("keyboard-interactive/pam"));

    let e = ev(
        Ssh,
        &syslog("Invalid user nosuchuser from 127.0.0.1 port 60280"),
    );
    assert_eq!(
        (e.user.as_str(), e.invalid_user, e.port),
        ("nosuchuser", true, Some(60280))
    );
    assert_eq!(e.method, None);

    for msg in [
        "maximum authentication attempts exceeded for root from 127.0.0.1 port 43342 ssh2 [preauth]",
        "error: maximum authentication attempts exceeded for root from 127.0.0.1 port 43342 ssh2 [preauth]",
    ] {
        let e = ev(Ssh, &syslog(msg));
        assert_eq!((e.user.as_str(), e.invalid_user), ("root", false));
        assert_eq!((e.source, e.port), (ip("127.0.0.1"), Some(43342)));
    }
    let e = ev(
        Ssh,
        &syslog(
            "maximum authentication attempts exceeded for invalid user nobodyxyz from 127.0.0.1 port 43328 ssh2 [preauth]",
        ),
    );
    assert_eq!((e.user.as_str(), e.invalid_user), ("nobodyxyz", true));

    for (msg, user, invalid) in [
        (
            "Disconnected from authenticating user root 192.0.2.9 port 51000 [preauth]",
            "root",
            false,
        ),
        (
            "Connection closed by authenticating user sshuser 192.0.2.9 port 51000 [preauth]",
            "sshuser",
            false,
        ),
        (
            "Connection closed by invalid user nosuchuser 192.0.2.9 port 51000 [preauth]",
            "nosuchuser",
            true,
        ),
        (
            "Disconnected from invalid user admin 192.0.2.9 port 51000 [preauth]",
            "admin",
            true,
        ),
        (
            "Connection closed by invalid user  192.0.2.9 port 51000 [preauth]",
            "",
            true,
        ),
    ] {
        let e = ev(Ssh, &syslog(msg));
        assert_eq!((e.user.as_str(), e.invalid_user), (user, invalid), "{msg}");
        assert_eq!(
            (e.source, e.port, e.outcome),
            (ip("192.0.2.9"), Some(51000), Failure)
        );
        assert_eq!(e.count, 0, "only `Failed METHOD` lines count: {msg}");
    }
}

#[test]
fn sshd_pam_and_repeats() {
    let e = ev(
        Ssh,
        &syslog(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  user=root",
        ),
    );
    // Backs up the `Failed password` line of the same attempt: evidence, not a second failure.
    assert_eq!(
        (e.user.as_str(), e.source, e.port, e.count),
        ("root", ip("198.51.100.23"), None, 0)
    );
    let e = ev(
        Ssh,
        &syslog(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23",
        ),
    );
    assert_eq!((e.user.as_str(), e.source), ("", ip("198.51.100.23")));
    let e = ev(
        Ssh,
        &syslog(
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  user=root",
        ),
    );
    assert_eq!(
        (e.count, e.source),
        (0, ip("198.51.100.23")),
        "already counted one by one"
    );
    // UseDNS yes: a host name, nothing to block.
    assert_eq!(
        skip(
            Ssh,
            &syslog(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example  user=root"
            )
        ),
        Skip::NoAddress
    );
    let e = ev(
        Ssh,
        &syslog(
            "message repeated 5 times: [ Failed password for root from 198.51.100.23 port 4444 ssh2]",
        ),
    );
    assert_eq!(
        (e.count, e.source, e.port),
        (5, ip("198.51.100.23"), Some(4444))
    );
    assert_eq!(
        skip(
            Ssh,
            &syslog(
                "message repeated x times: [ Failed password for root from 1.2.3.4 port 1 ssh2]"
            )
        ),
        Skip::Unparsed
    );
}

#[test]
fn sshd_success() {
    let e = ev(
        Ssh,
        &syslog("Accepted password for sshuser from 127.0.0.1 port 60290 ssh2"),
    );
    assert_eq!(
        (e.outcome, e.user.as_str(), e.method.as_deref()),
        (Success, "sshuser", Some("password"))
    );
    let e = ev(
        Ssh,
        &rfc(
            "Accepted publickey for sshuser from 127.0.0.1 port 43338 ssh2: ED25519 SHA256:KpNnixWrdCr27RtD7YAaj/tAC6f85Ups1Lkj6l2xxrg",
        ),
    );
    assert_eq!(
        (e.outcome, e.method.as_deref(), e.port),
        (Success, Some("publickey"), Some(43338))
    );
}

#[test]
fn sshd_ignores_other_lines() {
    for msg in [
        "Server listening on 0.0.0.0 port 22.",
        "Received disconnect from 127.0.0.1 port 60290:11: disconnected by user",
        "Disconnected from user sshuser 127.0.0.1 port 60290",
        "Disconnecting authenticating user root 127.0.0.1 port 43342: Too many authentication failures [preauth]",
        "Disconnected from 127.0.0.1 port 5555 [preauth]",
        "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)",
        "pam_unix(sshd:auth): check pass; user unknown",
        "",
    ] {
        none(Ssh, &syslog(msg));
    }
    // Another program's line, whatever its text says.
    none(
        Ssh,
        "Dec  1 12:00:00 web1 sudo[7]: Failed password for root from 1.2.3.4 port 22 ssh2",
    );
    none(
        Ssh,
        "Dec  1 12:00:00 web1 cron[7]: sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2",
    );
    none(
        Ssh,
        "Dec  1 12:00:00 web1 notsshd[7]: Failed password for root from 1.2.3.4 port 22 ssh2",
    );
    // No syslog header at all.
    none(Ssh, "Failed password for root from 1.2.3.4 port 22 ssh2");
    none(
        Ssh,
        "sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2",
    );
}

/// User names are the attacker's: sshd prints them verbatim before the real suffix.
#[test]
fn sshd_log_injection() {
    // Captured from a real sshd 9.2: `ssh 'evil from 10.9.9.9 port 22'@127.0.0.1`.
    let e = ev(
        Ssh,
        &syslog("Invalid user evil from 10.9.9.9 port 22 from 127.0.0.1 port 60288"),
    );
    assert_eq!(
        (e.user.as_str(), e.source, e.port),
        ("evil from 10.9.9.9 port 22", ip("127.0.0.1"), Some(60288))
    );
    let e = ev(
        Ssh,
        &syslog(
            "Failed password for invalid user evil from 10.9.9.9 port 22 from 127.0.0.1 port 60288 ssh2",
        ),
    );
    assert_eq!(
        (e.user.as_str(), e.source),
        ("evil from 10.9.9.9 port 22", ip("127.0.0.1"))
    );
    let e = ev(
        Ssh,
        &syslog(
            "Connection closed by invalid user evil from 10.9.9.9 port 22 127.0.0.1 port 60288 [preauth]",
        ),
    );
    assert_eq!(
        (e.user.as_str(), e.source),
        ("evil from 10.9.9.9 port 22", ip("127.0.0.1"))
    );

    let e = ev(
        Ssh,
        &syslog(
            "Failed password for invalid user root from 10.9.9.9 port 22 ssh2 from 1.2.3.4 port 50000 ssh2",
        ),
    );
    assert_eq!(
        (e.user.as_str(), e.source, e.port),
        (
            "root from 10.9.9.9 port 22 ssh2",
            ip("1.2.3.4"),
            Some(50000)
        )
    );
    let e = ev(
        Ssh,
        &syslog(
            "Failed password for invalid user Failed password for root from 1.2.3.4 from 5.6.7.8 port 1 ssh2",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    let e = ev(
        Ssh,
        &syslog(
            "Invalid user Failed password for root from 1.2.3.4 port 22 ssh2 from 5.6.7.8 port 1",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    let e = ev(
        Ssh,
        &syslog(
            "Failed password for invalid user x 10.9.9.9 port 22 [preauth] from 5.6.7.8 port 1 ssh2",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    let e = ev(
        Ssh,
        &syslog(
            "Disconnected from invalid user a 10.9.9.9 port 22 [preauth] 5.6.7.8 port 1 [preauth]",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    let e = ev(
        Ssh,
        &syslog(
            "maximum authentication attempts exceeded for invalid user a from 10.9.9.9 port 22 ssh2 from 5.6.7.8 port 1 ssh2 [preauth]",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    // A name that makes a password failure look keyed must not move the source.
    let e = ev(
        Ssh,
        &syslog(
            "Failed password for invalid user a from 10.9.9.9 port 1 ssh2: RSA SHA256:x from 5.6.7.8 port 2 ssh2",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    // A key failure whose name forges a second keyed suffix: ambiguous, skipped.
    assert_eq!(
        skip(
            Ssh,
            &syslog(
                "Failed publickey for invalid user a from 10.9.9.9 port 1 ssh2: RSA SHA256:x from 5.6.7.8 port 2 ssh2: ED25519 SHA256:abc"
            )
        ),
        Skip::Unparsed
    );
    // A key failure whose name ends like a keyless line: the key suffix is the real one.
    let e = ev(
        Ssh,
        &syslog(
            "Failed publickey for invalid user a from 10.9.9.9 port 1 ssh2 from 5.6.7.8 port 2 ssh2: ED25519 SHA256:abc",
        ),
    );
    assert_eq!(
        (e.source, e.user.as_str()),
        (ip("5.6.7.8"), "a from 10.9.9.9 port 1 ssh2")
    );
    // A key line that also ends like a keyless one (a certificate id can end so): ambiguous.
    assert_eq!(
        skip(
            Ssh,
            &syslog(
                "Failed publickey for invalid user a from 5.6.7.8 port 2 ssh2: RSA-CERT SHA256:abc ID x from 10.9.9.9 port 1 ssh2"
            )
        ),
        Skip::Unparsed
    );
    // PAM: the user is after rhost=, and sshd's ruser is empty.
    let e = ev(
        Ssh,
        &syslog(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.6.7.8  user=x rhost=10.9.9.9",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    let e = ev(
        Ssh,
        &syslog(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.6.7.8  user= rhost=10.9.9.9  user=x",
        ),
    );
    assert_eq!(e.source, ip("5.6.7.8"));
    // Injected text after the real suffix is not sshd's: the line does not end like one.
    assert_eq!(
        skip(
            Ssh,
            &syslog("Failed password for root from 5.6.7.8 port 1 ssh2 from 10.9.9.9")
        ),
        Skip::Unparsed
    );
    assert_eq!(
        skip(Ssh, &syslog("Invalid user a from 5.6.7.8 port 1 x")),
        Skip::Unparsed
    );

    // Whatever the name, the source is never one the name mentions.
    for name in [
        "from 10.9.9.9 port 22",
        "from 10.9.9.9 port 22 ssh2",
        "Failed password for root from 10.9.9.9",
        "x from 10.9.9.9 port 22 ssh2: RSA SHA256:abc",
        "x 10.9.9.9 port 22 [preauth]",
        "] rhost=10.9.9.9  user=a",
    ] {
        for line in [
            format!("Failed password for invalid user {name} from 5.6.7.8 port 1 ssh2"),
            format!(
                "Failed publickey for invalid user {name} from 5.6.7.8 port 1 ssh2: RSA SHA256:k"
            ),
            format!("Invalid user {name} from 5.6.7.8 port 1"),
            format!("Connection closed by invalid user {name} 5.6.7.8 port 1 [preauth]"),
            format!(
                "maximum authentication attempts exceeded for invalid user {name} from 5.6.7.8 port 1 ssh2 [preauth]"
            ),
            format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.6.7.8  user={name}"
            ),
        ] {
            match parse_line(Ssh, syslog(&line).as_bytes(), NOW) {
                Ok(Some(e)) => assert_eq!(e.source, ip("5.6.7.8"), "{line}"),
                Err(_) => {}
                Ok(None) => panic!("{line}"),
            }
        }
    }
}

#[test]
fn vsftpd_own_log() {
    let e = ev(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2412] [bob] FAIL LOGIN: Client "::ffff:192.0.2.44""#,
    );
    assert_eq!(
        (e.service, e.outcome, e.user.as_str()),
        (Ftp, Failure, "bob")
    );
    assert_eq!((e.source, e.port), (ip("192.0.2.44"), None));
    let e = ev(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2412] [bob] OK LOGIN: Client "2001:db8::1""#,
    );
    assert_eq!((e.outcome, e.source), (Success, ip("2001:db8::1")));
    let e = ev(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2412] [ftp] OK LOGIN: Client "::ffff:192.0.2.44", anon password "x@y""#,
    );
    assert_eq!(
        (e.outcome, e.user.as_str(), e.source),
        (Success, "ftp", ip("192.0.2.44"))
    );
    none(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2411] CONNECT: Client "::ffff:192.0.2.44""#,
    );
    none(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2412] [bob] OK DOWNLOAD: Client "::ffff:192.0.2.44", "/x", 3 bytes, 1Kbyte/sec"#,
    );
}

#[test]
fn vsftpd_syslog_and_pam() {
    let e = ev(
        Ftp,
        r#"Dec  1 12:00:00 web1 vsftpd[2412]: [bob] FAIL LOGIN: Client "::ffff:192.0.2.44""#,
    );
    assert_eq!((e.user.as_str(), e.source), ("bob", ip("192.0.2.44")));
    let e = ev(
        Ftp,
        "2026-12-01T12:00:00.5+01:00 web1 vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=bob rhost=::ffff:192.0.2.44  user=bob",
    );
    assert_eq!((e.user.as_str(), e.source), ("bob", ip("192.0.2.44")));
    none(
        Ftp,
        r#"Dec  1 12:00:00 web1 sshd[1]: [bob] FAIL LOGIN: Client "::ffff:192.0.2.44""#,
    );
    none(
        Ssh,
        r#"Dec  1 12:00:00 web1 vsftpd[1]: Failed password for root from 1.2.3.4 port 1 ssh2"#,
    );
}

#[test]
fn vsftpd_log_injection() {
    let e = ev(
        Ftp,
        r#"Sun Dec  1 12:00:00 2026 [pid 2412] [x] FAIL LOGIN: Client "9.9.9.9"] FAIL LOGIN: Client "::ffff:192.0.2.44""#,
    );
    assert_eq!(e.source, ip("192.0.2.44"));
    assert_eq!(e.user, r#"x] FAIL LOGIN: Client "9.9.9.9""#);
    // A success whose anonymous password forges a failure, or a failure whose user forges a
    // success: the two read alike, so neither is believed.
    assert_eq!(
        skip(
            Ftp,
            r#"Sun Dec  1 12:00:00 2026 [pid 2412] [ftp] OK LOGIN: Client "::ffff:192.0.2.44", anon password "] FAIL LOGIN: Client "9.9.9.9""#
        ),
        Skip::Unparsed
    );
    assert_eq!(
        skip(
            Ftp,
            r#"Sun Dec  1 12:00:00 2026 [pid 2412] [x] FAIL LOGIN: Client "192.0.2.44" trailing"#
        ),
        Skip::Unparsed
    );
    // PAM: ruser and user are both the attacker's name; only the layout PAM writes is accepted.
    let name = "a rhost=9.9.9.9  user=a";
    let line = format!(
        "Dec  1 12:00:00 web1 vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser={name} rhost=::ffff:192.0.2.44  user={name}"
    );
    match parse_line(Ftp, line.as_bytes(), NOW) {
        Ok(Some(e)) => assert_eq!(e.source, ip("192.0.2.44")),
        Err(_) => {}
        Ok(None) => panic!(),
    }
}

#[test]
fn mysql_lines() {
    let e = ev(
        Mysql,
        "2026-12-01T12:00:00.123456Z 8 [Note] [MY-010926] [Server] Access denied for user 'root'@'192.0.2.50' (using password: YES)",
    );
    assert_eq!(
        (e.service, e.user.as_str(), e.source),
        (Mysql, "root", ip("192.0.2.50"))
    );
    let e = ev(
        Mysql,
        "2026-12-01 12:00:00 31 [Warning] Access denied for user 'admin'@'2001:db8::7' (using password: NO)",
    );
    assert_eq!((e.user.as_str(), e.source), ("admin", ip("2001:db8::7")));
    let e = ev(
        Mysql,
        "Dec  1 12:00:00 db1 mariadbd[812]: 2026-12-01 12:00:00 31 [Warning] Access denied for user 'admin'@'192.0.2.50' (using password: YES)",
    );
    assert_eq!(e.source, ip("192.0.2.50"));
    assert_eq!(
        skip(
            Mysql,
            "2026-12-01 12:00:00 31 [Warning] Access denied for user 'admin'@'localhost' (using password: YES)"
        ),
        Skip::NoAddress
    );
    none(
        Mysql,
        "Dec  1 12:00:00 db1 sshd[812]: Access denied for user 'admin'@'192.0.2.50' (using password: YES)",
    );
    none(
        Mysql,
        "2026-12-01 12:00:00 0 [Note] InnoDB: Buffer pool(s) load completed",
    );
    // The user is the client's.
    let e = ev(
        Mysql,
        "2026-12-01 12:00:00 31 [Warning] Access denied for user 'x'@'9.9.9.9' (using password: YES)'@'192.0.2.50' (using password: NO)",
    );
    assert_eq!(e.source, ip("192.0.2.50"));
    assert_eq!(e.user, "x'@'9.9.9.9' (using password: YES)");
}

#[test]
fn hostile_bytes() {
    let mut line = syslog("Failed password for root from 1.2.3.4 port 1 ssh2").into_bytes();
    line.insert(60, 0xff);
    assert_eq!(parse_line(Ssh, &line, NOW), Err(Skip::NonUtf8));
    let long = syslog(&format!(
        "Failed password for {} from 1.2.3.4 port 1 ssh2",
        "a".repeat(100_000)
    ));
    assert_eq!(parse_line(Ssh, long.as_bytes(), NOW), Err(Skip::TooLong));
    // Truncated lines of every shape never panic nor invent an address.
    let full =
        syslog("Failed password for invalid user a from 10.9.9.9 port 22 from 1.2.3.4 port 5 ssh2");
    for end in 0..=full.len() {
        if let Ok(Some(e)) = parse_line(Ssh, &full.as_bytes()[..end], NOW) {
            assert_eq!(e.source, ip("1.2.3.4"));
        }
    }
    for s in [Ssh, Ftp, Mysql] {
        for junk in [
            "",
            "\n",
            "\r\n",
            "Dec",
            "Dec  1 12:00:00 ",
            "Dec  1 12:00:00 h ",
            "Dec  1 12:00:00 h sshd[",
            "2026-12-01T",
            "2026-12-01T1 h sshd[]: x",
            "ééééééééééééééééééééééé",
        ] {
            let _ = parse_line(s, junk.as_bytes(), NOW);
        }
    }
}

#[test]
fn evidence_is_bounded() {
    let line = syslog(&format!(
        "Failed password for invalid user {} from 1.2.3.4 port 1 ssh2",
        "é".repeat(50)
    ));
    let long = syslog(&format!(
        "Invalid user {} from 1.2.3.4 port 1",
        "é".repeat(400)
    ));
    assert_eq!(ev(Ssh, &line).line, line);
    let e = ev(Ssh, &long);
    assert!(e.line.len() <= 512 && long.starts_with(&e.line));
}

#[test]
fn journald_json_lines() {
    let services = [Ssh, Ftp];
    let line = br#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1","_COMM":"sshd","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","MESSAGE":"Failed password for root from 192.0.2.1 port 22 ssh2"}"#;
    let (cursor, r) = parse_json_line(&services, line, NOW);
    assert_eq!(cursor.as_deref(), Some("s=abc;i=1"));
    let e = r.unwrap().unwrap();
    assert_eq!(
        (e.source, e.line.as_str()),
        (
            ip("192.0.2.1"),
            "sshd[4242]: Failed password for root from 192.0.2.1 port 22 ssh2"
        )
    );
    // `logger -t sshd` sets the identifier, not _COMM.
    let forged = br#"{"__CURSOR":"c2","_COMM":"logger","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Failed password for root from 192.0.2.1 port 22 ssh2"}"#;
    assert_eq!(
        parse_json_line(&services, forged, NOW),
        (Some("c2".into()), Ok(None))
    );
    // MESSAGE as bytes: UTF-8 (with a control character) is used, anything else skipped.
    let bytes = br#"{"__CURSOR":"c3","_COMM":"vsftpd","MESSAGE":[91,98,93,32,70,65,73,76,32,76,79,71,73,78,58,32,67,108,105,101,110,116,32,34,49,46,50,46,51,46,52,34]}"#;
    let e = parse_json_line(&services, bytes, NOW).1.unwrap().unwrap();
    assert_eq!((e.service, e.source), (Ftp, ip("1.2.3.4")));
    let bad = br#"{"__CURSOR":"c4","_COMM":"sshd","MESSAGE":[255,0]}"#;
    assert_eq!(
        parse_json_line(&services, bad, NOW),
        (Some("c4".into()), Err(Skip::NonUtf8))
    );
    assert_eq!(
        parse_json_line(&services, b"{not json", NOW),
        (None, Err(Skip::Unparsed))
    );
    let no_msg = br#"{"__CURSOR":"c5","_COMM":"sshd"}"#;
    assert_eq!(
        parse_json_line(&services, no_msg, NOW),
        (Some("c5".into()), Ok(None))
    );
    // A service not asked for is not parsed.
    let mysql = br#"{"__CURSOR":"c6","_COMM":"mariadbd","MESSAGE":"Access denied for user 'a'@'1.2.3.4' (using password: YES)"}"#;
    assert_eq!(parse_json_line(&services, mysql, NOW).1, Ok(None));
    assert!(parse_json_line(&[Mysql], mysql, NOW).1.unwrap().is_some());
}

#[test]
fn config_defaults_and_routes() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c, Config::default());
    let c: Config = toml::from_str(
        "source = \"files\"\n[ftp]\nenabled = false\n[mysql]\npath = \"/srv/db/err.log\"\n",
    )
    .unwrap();
    let r = routes(&c, true);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].0, Ssh);
    assert!(matches!(&r[0].1, Route::File(_)));
    assert_eq!(r[1], (Mysql, Route::File("/srv/db/err.log".into())));
    let r = routes(&Config::default(), true);
    assert_eq!(r[0], (Ssh, Route::Journal));
    assert!(toml::from_str::<Config>("bogus = 1").is_err());
}
