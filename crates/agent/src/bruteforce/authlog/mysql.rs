//! MySQL and MariaDB error logs: `... Access denied for user 'U'@'HOST' (using password: YES)`,
//! in their own files (`2026-12-01T12:00:00.123456Z 8 [Note] [MY-010926] [Server] Access ...`,
//! MariaDB `2026-12-01 12:00:00 8 [Warning] Access ...`) or through syslog/journald. The user is
//! the client's and may contain `'@'`; the host is the server's, so the last `'@'` before the
//! fixed end of the message separates them.

use super::{Found, Msg, Skip, parse_ip};
use crate::bruteforce::{AuthEvent, AuthOutcome, Service};

const PROGS: &[&str] = &["mysqld", "mariadbd", "mariadb", "mysql"];
const DENIED: &str = "Access denied for user '";

pub(super) fn parse(m: &Msg, now: i64) -> Result<Option<AuthEvent>, Skip> {
    if let Some(p) = m.prog
        && !PROGS.contains(&p)
    {
        return Ok(None);
    }
    // The fixed text precedes the user: its first occurrence is the server's.
    let Some(i) = m.text.find(DENIED) else {
        return Ok(None);
    };
    let rest = &m.text[i + DENIED.len()..];
    let rest = rest
        .strip_suffix("' (using password: YES)")
        .or_else(|| rest.strip_suffix("' (using password: NO)"))
        .ok_or(Skip::Unparsed)?;
    let (user, host) = rest.rsplit_once("'@'").ok_or(Skip::Unparsed)?;
    let source = parse_ip(host).ok_or(Skip::NoAddress)?;
    Ok(Found {
        service: Service::Mysql,
        outcome: AuthOutcome::Failure,
        user,
        invalid_user: false,
        source,
        port: None,
        method: Some("password"),
        count: 1,
    }
    .event(m.raw, now))
}
