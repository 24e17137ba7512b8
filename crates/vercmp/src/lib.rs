//! Exact version ordering of Debian (`dpkg --compare-versions`) and RPM (`rpm.vercmp`, i.e.
//! `rpmverCmp` over `rpmvercmp` segments) packages.
//! Pure and allocation-free: the center compares every installed package with every advisory.
//!
//! [`compare`] is total and never panics: it follows the real tools byte for byte on every string
//! they accept, including the ones dpkg only warns about, and gives a fixed, consistent order to
//! the rest. [`validate`] (or [`parse_deb`] / [`parse_rpm`]) says whether a string is a version
//! the packaging tools would produce. Digit runs are compared as strings (leading zeros dropped,
//! then length, then bytes), so no version is ever turned into a machine integer except a
//! validated epoch.
//!
//! Both comparisons are checked against the installed `dpkg` and `rpm` by the property tests in
//! `tests/against_tools.rs`.

use std::cmp::Ordering;

/// Which ordering a version string follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// dpkg: `[epoch:]upstream[-revision]`, `~` sorts before everything, even the end.
    Deb,
    /// rpm: `[epoch:]version[-release]`, rpmvercmp segments, `~` and `^`.
    Rpm,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
        }
    }
}

/// Why a version string is not valid in its scheme. The message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {scheme} version {version:?}: {reason}")]
pub struct VersionError {
    pub scheme: &'static str,
    pub version: String,
    pub reason: String,
}

impl VersionError {
    fn new(scheme: Scheme, version: &str, reason: impl Into<String>) -> Self {
        VersionError {
            scheme: scheme.name(),
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A valid Debian version split as dpkg splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// 0 when absent. dpkg rejects epochs above `i32::MAX`.
    pub epoch: u32,
    pub upstream: &'a str,
    /// Empty when absent; dpkg compares an absent revision as the empty string (equal to `0`).
    pub revision: &'a str,
}

/// A valid RPM `[epoch:]version[-release]` split as rpm's `parseEVR` splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpmVersion<'a> {
    /// `None` when absent; it compares as 0.
    pub epoch: Option<u32>,
    pub version: &'a str,
    /// `None` when absent, which sorts before every present release.
    pub release: Option<&'a str>,
}

/// Compares two versions of `scheme`. Total on any input (invalid strings compare as dpkg/rpm
/// would treat them); call [`validate`] first where an invalid version must be rejected.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Ordering {
    match scheme {
        Scheme::Deb => compare_deb(a, b),
        Scheme::Rpm => compare_rpm(a, b),
    }
}

/// Checks that `v` is a well-formed version of `scheme`.
pub fn validate(scheme: Scheme, v: &str) -> Result<(), VersionError> {
    match scheme {
        Scheme::Deb => parse_deb(v).map(|_| ()),
        Scheme::Rpm => parse_rpm(v).map(|_| ()),
    }
}

// C sees only up to the first NUL of an argument, and neither tool can be given one, so this is
// the only reading of an embedded NUL that agrees with them.
fn c_str(s: &str) -> &[u8] {
    let b = s.as_bytes();
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn sign(n: i32) -> Ordering {
    n.cmp(&0)
}

/// Orders two digit strings by value, whatever their length.
fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

// ---------------------------------------------------------------------------------------------
// Debian

/// dpkg's split of any string, including what `parseversion` rejects. `None` is dpkg's "no
/// version" (not informative), which `--compare-versions` puts before every real version.
struct DebParts<'a> {
    epoch: &'a [u8],
    upstream: &'a [u8],
    revision: &'a [u8],
}

fn deb_parts(v: &str) -> Option<DebParts<'_>> {
    let v = c_str(v);
    // `--compare-versions` takes these two spellings as "no version" before parsing anything.
    if v.is_empty() || v == b"<unknown>" {
        return None;
    }
    let is_blank = |c: &u8| *c == b' ' || *c == b'\t';
    let start = v.iter().position(|c| !is_blank(c)).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|c| !is_blank(c))
        .map_or(start, |e| e + 1);
    let v = &v[start..end];

    let (epoch, rest) = match v.iter().position(|&c| c == b':') {
        Some(colon) => match strtol_epoch(&v[..colon]) {
            Some(digits) => (digits, &v[colon + 1..]),
            // dpkg refuses this string; reading it whole as upstream keeps the order total.
            None => (&b""[..], v),
        },
        None => (&b""[..], v),
    };
    let (upstream, revision) = match rest.iter().rposition(|&c| c == b'-') {
        Some(h) => (&rest[..h], &rest[h + 1..]),
        None => (rest, &b""[..]),
    };
    let informative =
        !strip_zeros(epoch).is_empty() || !upstream.is_empty() || !revision.is_empty();
    informative.then_some(DebParts {
        epoch,
        upstream,
        revision,
    })
}

/// The digits of an epoch as dpkg's `strtol` reads it (leading C white space and a sign are
/// accepted), or `None` where dpkg reports an error. Oversized epochs are kept: dpkg refuses
/// them, and ordering them by value is the consistent extension.
fn strtol_epoch(s: &[u8]) -> Option<&[u8]> {
    let s = &s[s
        .iter()
        .take_while(|c| b" \t\n\x0b\x0c\r".contains(c))
        .count()..];
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if negative && !strip_zeros(digits).is_empty() {
        return None;
    }
    Some(digits)
}

/// dpkg's `order()`. `char` is signed on the amd64 dpkg this mirrors, so bytes >= 0x80 land
/// between letters and ASCII punctuation.
fn deb_order(c: u8) -> i32 {
    match c {
        b'0'..=b'9' | 0 => 0,
        b'A'..=b'Z' | b'a'..=b'z' => i32::from(c),
        b'~' => -1,
        0x80.. => i32::from(c),
        _ => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| at(s, k).is_ascii_digit();
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (deb_order(at(a, i)), deb_order(at(b, j)));
            if ac != bc {
                return sign(ac - bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == b'0' {
            i += 1;
        }
        while at(b, j) == b'0' {
            j += 1;
        }
        let mut first_diff = 0;
        while digit(a, i) && digit(b, j) {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return sign(first_diff);
        }
    }
    Ordering::Equal
}

/// `dpkg --compare-versions a lt|eq|gt b`.
pub fn compare_deb(a: &str, b: &str) -> Ordering {
    match (deb_parts(a), deb_parts(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => cmp_digits(a.epoch, b.epoch)
            .then_with(|| verrevcmp(a.upstream, b.upstream))
            .then_with(|| verrevcmp(a.revision, b.revision)),
    }
}

/// Splits a Debian version, accepting exactly what dpkg's `parseversion` accepts without error
/// or warning, minus the surrounding white space it trims and the signed epochs `strtol` lets
/// through.
pub fn parse_deb(v: &str) -> Result<DebVersion<'_>, VersionError> {
    let err = |reason: String| Err(VersionError::new(Scheme::Deb, v, reason));
    if v.is_empty() {
        return err("version is empty".into());
    }
    if let Some(c) = v.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return err(format!("contains white space or control character {c:?}"));
    }
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => {
            if e.is_empty() {
                return err("epoch before ':' is empty".into());
            }
            if !e.bytes().all(|c| c.is_ascii_digit()) {
                return err(format!("epoch {e:?} is not a number"));
            }
            let epoch = match e.parse::<u32>() {
                Ok(n) if n <= i32::MAX as u32 => n,
                _ => return err(format!("epoch {e:?} is larger than {}", i32::MAX)),
            };
            if rest.is_empty() {
                return err("nothing after the epoch ':'".into());
            }
            (epoch, rest)
        }
        None => (0, v),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return err("revision after the last '-' is empty".into()),
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return err("upstream version is empty".into());
    }
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return err(format!(
            "upstream version {upstream:?} does not start with a digit"
        ));
    }
    if let Some(c) = upstream
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ".+~-:".contains(c)))
    {
        return err(format!(
            "invalid character {c:?} in upstream version {upstream:?} (allowed: A-Za-z0-9.+~-:)"
        ));
    }
    if let Some(c) = revision
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ".+~".contains(c)))
    {
        return err(format!(
            "invalid character {c:?} in revision {revision:?} (allowed: A-Za-z0-9.+~)"
        ));
    }
    Ok(DebVersion {
        epoch,
        upstream,
        revision,
    })
}

// ---------------------------------------------------------------------------------------------
// RPM

/// rpm's `parseEVR`: the epoch is the leading digits when a ':' follows them, the release is
/// everything after the last '-' that comes after those digits.
fn rpm_parts(v: &[u8]) -> (Option<&[u8]>, &[u8], Option<&[u8]>) {
    let s = v.iter().take_while(|c| c.is_ascii_digit()).count();
    let se = v[s..].iter().rposition(|&c| c == b'-').map(|p| s + p);
    let (epoch, vstart) = if at(v, s) == b':' {
        (Some(if s == 0 { &b"0"[..] } else { &v[..s] }), s + 1)
    } else {
        (None, 0)
    };
    match se {
        Some(se) => (epoch, &v[vstart..se], Some(&v[se + 1..])),
        None => (epoch, &v[vstart..], None),
    }
}

/// rpm's `rpmvercmp` on one field.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let is_sep = |c: u8| c != 0 && !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while is_sep(at(a, i)) {
            i += 1;
        }
        while is_sep(at(b, j)) {
            j += 1;
        }
        let (ca, cb) = (at(a, i), at(b, j));
        if ca == b'~' || cb == b'~' {
            if ca != b'~' {
                return Ordering::Greater;
            }
            if cb != b'~' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Like '~', except that the end of a version sorts before it.
        if ca == b'^' || cb == b'^' {
            if ca == 0 {
                return Ordering::Less;
            }
            if cb == 0 {
                return Ordering::Greater;
            }
            if ca != b'^' {
                return Ordering::Greater;
            }
            if cb != b'^' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == 0 || cb == 0 {
            break;
        }
        let isnum = ca.is_ascii_digit();
        let class = |c: u8| {
            if isnum {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let ei = i + a[i..].iter().take_while(|&&c| class(c)).count();
        let ej = j + b[j..].iter().take_while(|&&c| class(c)).count();
        // b's segment is of the other kind; a number is newer than letters.
        if ej == j {
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if isnum {
            cmp_digits(&a[i..ei], &b[j..ej])
        } else {
            a[i..ei].cmp(&b[j..ej])
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i = ei;
        j = ej;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// rpm's `compare_values`: an absent field sorts before any present one.
fn rpm_field(a: Option<&[u8]>, b: Option<&[u8]>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (Some(a), Some(b)) => rpmvercmp(a, b),
    }
}

/// rpm's `rpmverCmp` (what `rpm.vercmp` in rpm ≥ 4.16 does) on `[epoch:]version[-release]`:
/// epochs first (missing = 0), then versions, then releases, a missing release sorting before any
/// present one. Plain versions without ':' or '-' get exactly `rpmvercmp`.
pub fn compare_rpm(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = rpm_parts(c_str(a));
    let (eb, vb, rb) = rpm_parts(c_str(b));
    let zero = &b"0"[..];
    rpmvercmp(ea.unwrap_or(zero), eb.unwrap_or(zero))
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| rpm_field(ra, rb))
}

/// Splits an RPM `[epoch:]version[-release]`, accepting what rpmbuild accepts for `Epoch:`
/// (an unsigned 32-bit number), `Version:` and `Release:` (ASCII letters and digits and
/// `._+~^`, no `..`). rpm splits the release at the last '-', and a '-' is not allowed in a
/// version, so at most one '-' is accepted.
pub fn parse_rpm(v: &str) -> Result<RpmVersion<'_>, VersionError> {
    let err = |reason: String| Err(VersionError::new(Scheme::Rpm, v, reason));
    if v.is_empty() {
        return err("version is empty".into());
    }
    if let Some(c) = v.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return err(format!("contains white space or control character {c:?}"));
    }
    // As parseEVR: only leading digits followed by ':' are an epoch; any other ':' is a
    // character the version or release may not contain.
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match v[digits..].strip_prefix(':') {
        Some(_) if digits == 0 => return err("epoch before ':' is empty".into()),
        Some(rest) => match v[..digits].parse::<u32>() {
            Ok(n) => (Some(n), rest),
            Err(_) => {
                return err(format!(
                    "epoch {:?} is larger than {}",
                    &v[..digits],
                    u32::MAX
                ));
            }
        },
        None => (None, v),
    };
    let (version, release) = match rest.split_once('-') {
        Some((ver, rel)) => (ver, Some(rel)),
        None => (rest, None),
    };
    check_rpm_field(v, "version", version)?;
    if let Some(rel) = release {
        if rel.contains('-') {
            return err(format!(
                "more than one '-': rpm would read {:?} as the version",
                rest.rsplit_once('-').map_or(rest, |(ver, _)| ver)
            ));
        }
        check_rpm_field(v, "release", rel)?;
    }
    Ok(RpmVersion {
        epoch,
        version,
        release,
    })
}

fn check_rpm_field(v: &str, what: &str, field: &str) -> Result<(), VersionError> {
    let err = |reason: String| Err(VersionError::new(Scheme::Rpm, v, reason));
    if field.is_empty() {
        return err(format!("{what} is empty"));
    }
    if let Some(c) = field
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "._+~^".contains(c)))
    {
        return err(format!(
            "invalid character {c:?} in {what} {field:?} (allowed: A-Za-z0-9._+~^)"
        ));
    }
    if field.contains("..") {
        return err(format!("{what} {field:?} contains \"..\""));
    }
    Ok(())
}
