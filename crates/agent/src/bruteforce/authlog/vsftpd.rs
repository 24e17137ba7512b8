//! vsftpd: its own log (`/var/log/vsftpd.log`, `Sun Dec  1 12:00:00 2024 [pid 12] [user] FAIL
//! LOGIN: Client "::ffff:1.2.3.4"`), the same lines through syslog (`syslog_enable=YES`), and
//! its PAM failures. The user sits between brackets before the fixed text and may contain
//! anything (vsftpd only replaces unprintable bytes), so a failure is anchored on the END of
//! the line.

use super::{Found, Msg, Skip, pam_rhost, parse_ip};
use crate::bruteforce::{AuthEvent, AuthOutcome, Service};

const FAIL: &str = "] FAIL LOGIN: Client \"";
const OK: &str = "] OK LOGIN: Client \"";

pub(super) fn parse(m: &Msg, now: i64) -> Result<Option<AuthEvent>, Skip> {
    let text = match m.prog {
        Some("vsftpd") => {
            if let Some(kv) = m
                .text
                .strip_prefix("pam_unix(vsftpd:auth): authentication failure; ")
            {
                // vsftpd sets PAM_RUSER to the user: RU must equal U.
                let (source, user) = pam_rhost(kv, false)?;
                return Ok(
                    found(AuthOutcome::Failure, user.unwrap_or(""), source).event(m.raw, now)
                );
            }
            m.text
        }
        Some(_) => return Ok(None),
        None => match strip_ctime(m.text) {
            Some(rest) => rest,
            None => return Ok(None),
        },
    };
    let text = strip_pid(text);
    let Some(text) = text.strip_prefix('[') else {
        return Ok(None);
    };
    // An anonymous success ends with `, anon password "<anything>"`: a line holding both texts
    // may be either, with either address.
    if text.contains(FAIL) && text.contains(OK) {
        return Err(Skip::Unparsed);
    }
    if let Some(i) = text.rfind(FAIL) {
        // `[user] FAIL LOGIN: Client "ADDR"` and nothing after.
        let addr = text[i + FAIL.len()..]
            .strip_suffix('"')
            .ok_or(Skip::Unparsed)?;
        let source = parse_ip(addr).ok_or(Skip::Unparsed)?;
        return Ok(found(AuthOutcome::Failure, &text[..i], source).event(m.raw, now));
    }
    if let Some(i) = text.find(OK) {
        // A success may end with `, anon password "<anything>"`, so it is read from the left:
        // its user is an account that exists (or `ftp` for anonymous), not arbitrary text.
        let rest = &text[i + OK.len()..];
        let (addr, _) = rest.split_once('"').ok_or(Skip::Unparsed)?;
        let source = parse_ip(addr).ok_or(Skip::Unparsed)?;
        return Ok(found(AuthOutcome::Success, &text[..i], source).event(m.raw, now));
    }
    Ok(None)
}

fn found(outcome: AuthOutcome, user: &str, source: std::net::IpAddr) -> Found<'_> {
    Found {
        service: Service::Ftp,
        outcome,
        user,
        invalid_user: false,
        source,
        port: None,
        method: Some("password"),
        count: 1,
    }
}

/// `Sun Dec  1 12:00:00 2024 ` (ctime without the newline).
fn strip_ctime(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let ok = b.len() > 25
        && b[3] == b' '
        && b[7] == b' '
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' '
        && b[20..24].iter().all(u8::is_ascii_digit)
        && b[24] == b' ';
    ok.then(|| &line[25..])
}

/// `[pid 1234] `
fn strip_pid(text: &str) -> &str {
    text.strip_prefix("[pid ")
        .and_then(|r| r.split_once("] "))
        .filter(|(pid, _)| !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit()))
        .map_or(text, |(_, rest)| rest)
}
