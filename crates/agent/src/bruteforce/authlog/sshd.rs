//! OpenSSH's lines (formats of OpenSSH 9.2, Debian 12; `sshd-session` is the program name
//! from 9.8 on). sshd prints the user (at most 100 bytes, control characters escaped) before
//! `from ADDR port N ssh2`, so the source is found by anchoring on that suffix at the END of
//! the message, never by searching from the left.

use super::{Found, Msg, Skip, addr_port, pam_rhost, parse_ip, parse_port};
use crate::bruteforce::{AuthEvent, AuthOutcome, Service};

const PROGS: &[&str] = &["sshd", "sshd-session", "sshd-auth"];

pub(super) fn parse(m: &Msg, now: i64) -> Result<Option<AuthEvent>, Skip> {
    match m.prog {
        Some(p) if PROGS.contains(&p) => {}
        _ => return Ok(None),
    }
    let mut text = m.text;
    let mut count = 1u32;
    // rsyslog's repeated-message reduction: `message repeated 3 times: [ Failed password ...]`.
    if let Some(rest) = text.strip_prefix("message repeated ") {
        let (n, inner) = rest.split_once(" times: [ ").ok_or(Skip::Unparsed)?;
        count = n.parse().ok().filter(|n| *n > 0).ok_or(Skip::Unparsed)?;
        text = inner.strip_suffix(']').ok_or(Skip::Unparsed)?;
    }
    // Preauth errors reach syslog through the monitor with the level as a prefix.
    let text = text.strip_prefix("error: ").unwrap_or(text);
    let found = if let Some(rest) = text.strip_prefix("Failed ") {
        attempt(rest, AuthOutcome::Failure)?
    } else if let Some(rest) = text.strip_prefix("Accepted ") {
        attempt(rest, AuthOutcome::Success)?
    } else if let Some(rest) = text.strip_prefix("Invalid user ") {
        // `Invalid user U from ADDR port N`
        let (user, ap) = rest.rsplit_once(" from ").ok_or(Skip::Unparsed)?;
        let (source, port) = addr_port(ap).ok_or(Skip::Unparsed)?;
        corroborating(failure(user, true, source, Some(port), None))
    } else if let Some(rest) = text.strip_prefix("maximum authentication attempts exceeded for ") {
        // `... for [invalid user ]U from ADDR port N ssh2 [preauth]`
        let rest = rest.strip_suffix(" [preauth]").unwrap_or(rest);
        let rest = rest.strip_suffix(" ssh2").ok_or(Skip::Unparsed)?;
        let (invalid, rest) = invalid_prefix(rest);
        let (user, ap) = rest.rsplit_once(" from ").ok_or(Skip::Unparsed)?;
        let (source, port) = addr_port(ap).ok_or(Skip::Unparsed)?;
        corroborating(failure(user, invalid, source, Some(port), None))
    } else if let Some(rest) = text
        .strip_prefix("Disconnected from ")
        .or_else(|| text.strip_prefix("Connection closed by "))
    {
        // `... authenticating user U ADDR port N [preauth]`, `... invalid user U ADDR port N
        // [preauth]`; without [preauth] or a user it is an ordinary end of a session.
        let Some(rest) = rest.strip_suffix(" [preauth]") else {
            return Ok(None);
        };
        let (invalid, rest) = if let Some(r) = rest.strip_prefix("authenticating user ") {
            (false, r)
        } else if let Some(r) = rest.strip_prefix("invalid user ") {
            (true, r)
        } else {
            return Ok(None);
        };
        let (left, port) = rest.rsplit_once(" port ").ok_or(Skip::Unparsed)?;
        let (user, addr) = left.rsplit_once(' ').ok_or(Skip::Unparsed)?;
        let source = parse_ip(addr).ok_or(Skip::Unparsed)?;
        let port = parse_port(port).ok_or(Skip::Unparsed)?;
        corroborating(failure(user, invalid, source, Some(port), None))
    } else if let Some(kv) = text.strip_prefix("pam_unix(sshd:auth): authentication failure; ") {
        corroborating(pam(kv)?)
    } else if let Some(rest) = text.strip_prefix("PAM ") {
        // pam_unix at the end of a connection: `PAM 2 more authentication failures; logname=...`
        let Some((n, kv)) = rest
            .split_once(" more authentication failures; ")
            .or_else(|| rest.split_once(" more authentication failure; "))
        else {
            return Ok(None);
        };
        n.parse::<u32>().map_err(|_| Skip::Unparsed)?;
        corroborating(pam(kv)?)
    } else {
        return Ok(None);
    };
    let mut found = found;
    found.count = found.count.saturating_mul(count);
    Ok(found.event(m.raw, now))
}

fn failure<'a>(
    user: &'a str,
    invalid_user: bool,
    source: std::net::IpAddr,
    port: Option<u16>,
    method: Option<&'a str>,
) -> Found<'a> {
    Found {
        service: Service::Ssh,
        outcome: AuthOutcome::Failure,
        user,
        invalid_user,
        source,
        port,
        method,
        count: 1,
    }
}

fn invalid_prefix(s: &str) -> (bool, &str) {
    match s.strip_prefix("invalid user ") {
        Some(r) => (true, r),
        None => (false, s),
    }
}

/// `METHOD for [invalid user ]U from ADDR port N ssh2[: KEYTYPE SHA256:...]`.
fn attempt(rest: &str, outcome: AuthOutcome) -> Result<Found<'_>, Skip> {
    let (method, body) = rest.split_once(" for ").ok_or(Skip::Unparsed)?;
    if method.is_empty() || method.contains(' ') {
        return Err(Skip::Unparsed);
    }
    let (invalid, body) = invalid_prefix(body);
    let plain = body
        .strip_suffix(" ssh2")
        .and_then(|b| b.rsplit_once(" from "))
        .filter(|(_, ap)| addr_port(ap).is_some());
    let (user, ap) = if KEY_METHODS.contains(&method) {
        match (with_key(body)?, plain) {
            (Some(found), None) | (None, Some(found)) => found,
            _ => return Err(Skip::Unparsed),
        }
    } else {
        plain.ok_or(Skip::Unparsed)?
    };
    let (source, port) = addr_port(ap).ok_or(Skip::Unparsed)?;
    Ok(Found {
        outcome,
        method: Some(method),
        ..failure(user, invalid, source, Some(port), None)
    })
}

/// The methods after whose `ssh2` sshd appends the key.
const KEY_METHODS: &[&str] = &["publickey", "hostbased"];

/// For key methods sshd appends `: KEYTYPE FINGERPRINT[ ID <key id> ...]` after `ssh2`, and a
/// certificate's key id is chosen by whoever made it: the suffix may be followed by hostile
/// text. The one ` from ADDR port N ssh2: KEYTYPE SHA256:` in the line is the real one; when a
/// user name forges a second (or the line also ends like a keyless one), the line is skipped.
fn with_key(body: &str) -> Result<Option<(&str, &str)>, Skip> {
    let mut found = None;
    for (p, _) in body.match_indices(" from ") {
        let after = &body[p + " from ".len()..];
        let Some((ap, extra)) = after.split_once(" ssh2: ") else {
            continue;
        };
        if addr_port(ap).is_none() || !looks_like_key(extra) {
            continue;
        }
        if found.is_some() {
            return Err(Skip::Unparsed);
        }
        found = Some((&body[..p], ap));
    }
    Ok(found)
}

fn looks_like_key(extra: &str) -> bool {
    let mut it = extra.splitn(3, ' ');
    let (Some(ty), Some(fp)) = (it.next(), it.next()) else {
        return false;
    };
    !ty.is_empty()
        && ty
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-@._".contains(&c))
        && (fp.starts_with("SHA256:") || fp.starts_with("MD5:"))
}

fn pam(kv: &str) -> Result<Found<'_>, Skip> {
    let (source, user) = pam_rhost(kv, true)?;
    Ok(failure(user.unwrap_or(""), false, source, None, None))
}

/// One wrong password leaves several lines: `Failed password`, pam_unix's `authentication
/// failure`, for an unknown user also `Invalid user`, and at the end of the connection
/// `maximum authentication attempts` / `Disconnected ... [preauth]` / `PAM N more`. Only the
/// `Failed METHOD` line counts as an attempt (as fail2ban's default sshd filter counts); the
/// others back it up (their users and lines are evidence) but add nothing to the count, so
/// five wrong passwords are five failures, not fifteen.
fn corroborating(found: Found<'_>) -> Found<'_> {
    Found { count: 0, ..found }
}
