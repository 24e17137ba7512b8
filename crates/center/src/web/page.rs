//! Pieces of the console's pages that every area uses: links with query strings, the pager,
//! the tab bar of a server's pages, text clipping and bar lengths. Pure functions.

use std::collections::HashMap;

/// `s` cut at `max` characters with an ellipsis, and the full text as a title when it was cut
/// (empty otherwise).
pub(crate) fn clip(s: &str, max: usize) -> (String, String) {
    match s.char_indices().nth(max) {
        None => (s.to_string(), String::new()),
        Some((i, _)) => (format!("{}…", &s[..i]), s.to_string()),
    }
}

/// `/path?k=v&…` with the empty values left out.
pub(crate) fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    let qs: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", qs.join("&"))
    }
}

/// A page number from a query; anything unreadable is page 1.
pub(crate) fn page_param(m: &HashMap<String, String>) -> i64 {
    m.get("page")
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

pub(crate) fn param(m: &HashMap<String, String>, k: &str) -> String {
    m.get(k).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// The "a–b of n" line and the previous/next links of a list.
pub(crate) struct Pager {
    pub first: i64,
    pub last: i64,
    pub total: i64,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
}

impl Pager {
    pub(crate) fn new(
        page: i64,
        per: i64,
        shown: usize,
        total: i64,
        at: impl Fn(i64) -> String,
    ) -> Pager {
        let (first, last) = if shown == 0 {
            (0, 0)
        } else {
            let first = (page - 1) * per + 1;
            (first, first + shown as i64 - 1)
        };
        Pager {
            first,
            last,
            total,
            prev_url: (page > 1).then(|| at(page - 1)),
            next_url: (page * per < total).then(|| at(page + 1)),
        }
    }
}

/// Length of a bar for `n` when `max` fills `width`: proportional, rounded, and at least one
/// pixel for any `n > 0` so a present group never looks absent.
pub(crate) fn scale(n: i64, max: i64, width: u32) -> u32 {
    if n <= 0 || max <= 0 {
        return 0;
    }
    let n = n.min(max);
    let w = (n as f64 * f64::from(width) / max as f64).round() as u32;
    w.clamp(1, width)
}

pub(crate) struct Tab {
    pub id: &'static str,
    pub label: &'static str,
    pub href: String,
    pub count: Option<i64>,
    pub active: bool,
}

/// `application/x-www-form-urlencoded` percent-encoding for query values.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
