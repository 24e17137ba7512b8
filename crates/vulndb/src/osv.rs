//! OSV records (<https://ossf.github.io/osv-schema/>) of the distribution ecosystems.

use hostward_proto::Severity;
use serde::Deserialize;
use serde_json::Value;

use crate::ecosystem::Ecosystem;
use crate::json::{Lenient, describe, nullable};
use crate::{Advisory, Affected, AffectedStatus, Skipped};

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    summary: String,
    #[serde(default, deserialize_with = "nullable")]
    details: String,
    #[serde(default, deserialize_with = "nullable")]
    aliases: Vec<String>,
    /// OSV 1.6: Debian and Ubuntu name the CVEs a DSA/USN fixes here rather than in `aliases`.
    #[serde(default, deserialize_with = "nullable")]
    upstream: Vec<String>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    severity: Vec<Lenient<SeverityEntry>>,
    #[serde(default)]
    affected: Option<Vec<Lenient<AffectedEntry>>>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct AffectedEntry {
    #[serde(default)]
    package: Option<Package>,
    #[serde(default, deserialize_with = "nullable")]
    ranges: Vec<Range>,
    #[serde(default, deserialize_with = "nullable")]
    versions: Vec<Value>,
    #[serde(default, deserialize_with = "nullable")]
    severity: Vec<Lenient<SeverityEntry>>,
    #[serde(default)]
    ecosystem_specific: Option<Value>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct Package {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
}

/// One OSV record. The error names the record (when it has an id) and why it was skipped:
/// broken JSON (with serde's line and column), no `affected`, or no affected entry that can be
/// matched (unknown ecosystem, invalid version, ...).
pub fn parse_osv(text: &str, source: &str) -> Result<Advisory, String> {
    parse_osv_detailed(text, source)
        .map(|(adv, _)| adv)
        .map_err(|s| s.to_string())
}

/// Like [`parse_osv`], and also returns the affected entries left out of a record that is kept.
pub(crate) fn parse_osv_detailed(
    text: &str,
    source: &str,
) -> Result<(Advisory, Vec<Skipped>), Skipped> {
    let value: Value = serde_json::from_str(text).map_err(|e| Skipped {
        source: source.to_string(),
        reason: describe(&e),
    })?;
    parse_osv_value(value, source)
}

/// A record already parsed as JSON (an element of an OSV array).
pub(crate) fn parse_osv_value(
    value: Value,
    source: &str,
) -> Result<(Advisory, Vec<Skipped>), Skipped> {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .map(str::to_string);
    let at = match &id {
        Some(id) => format!("{source}: {id}"),
        None => source.to_string(),
    };
    let skip = |reason: String| Skipped {
        source: at.clone(),
        reason,
    };
    if !value.is_object() {
        return Err(skip("not an OSV record (not a JSON object)".into()));
    }
    if id.is_none() {
        return Err(skip("OSV record without an `id`".into()));
    }
    let rec = Record::deserialize(value).map_err(|e| skip(format!("unexpected content: {e}")))?;
    if let Some(w) = rec.withdrawn.as_deref().filter(|w| !w.is_empty()) {
        return Err(skip(format!("withdrawn {w}")));
    }
    let entries = match rec.affected {
        Some(a) if !a.is_empty() => a,
        _ => return Err(skip("record has no `affected` packages".into())),
    };

    let mut labels: Vec<Severity> = label_from(rec.database_specific.as_ref())
        .into_iter()
        .collect();
    let mut vectors: Vec<SeverityEntry> = Vec::new();
    take_severities(rec.severity, &mut vectors, &mut labels);

    let mut affected = Vec::new();
    let mut skipped = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let entry_at = format!("{at} affected[{i}]");
        let mut entry = match entry.0 {
            Ok(e) => e,
            Err(e) => {
                skipped.push(Skipped {
                    source: entry_at,
                    reason: format!("unexpected content: {e}"),
                });
                continue;
            }
        };
        labels.extend(label_from(entry.ecosystem_specific.as_ref()));
        labels.extend(label_from(entry.database_specific.as_ref()));
        take_severities(
            std::mem::take(&mut entry.severity),
            &mut vectors,
            &mut labels,
        );
        match affected_entry(&entry) {
            Ok(list) => affected.extend(list),
            Err(reason) => skipped.push(Skipped {
                source: match &entry.package {
                    Some(p) => format!("{entry_at} ({} {})", p.ecosystem, p.name),
                    None => entry_at,
                },
                reason,
            }),
        }
    }
    if affected.is_empty() {
        let why: Vec<String> = skipped.iter().map(|s| s.reason.clone()).collect();
        return Err(skip(format!(
            "no affected entry can be matched: {}",
            why.join("; ")
        )));
    }

    let id = rec.id;
    let mut cves: Vec<String> = Vec::new();
    for c in std::iter::once(&id)
        .chain(&rec.aliases)
        .chain(&rec.upstream)
    {
        let c = c.trim();
        if c.starts_with("CVE-") && !cves.iter().any(|x| x == c) {
            cves.push(c.to_string());
        }
    }
    let (cvss_score, cvss_vector) = score(&vectors);
    let summary = if rec.summary.trim().is_empty() {
        rec.details
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        rec.summary.trim().to_string()
    };
    Ok((
        Advisory {
            id,
            cves,
            summary,
            cvss_score,
            cvss_vector,
            severity: labels.into_iter().max(),
            published: rec.published.as_deref().and_then(parse_rfc3339),
            affected,
        },
        skipped,
    ))
}

fn take_severities(
    list: Vec<Lenient<SeverityEntry>>,
    vectors: &mut Vec<SeverityEntry>,
    labels: &mut Vec<Severity>,
) {
    for s in list.into_iter().filter_map(|s| s.0.ok()) {
        if s.kind.starts_with("CVSS_") {
            vectors.push(s);
        } else {
            // Ubuntu writes its priority as `{"type": "Ubuntu", "score": "medium"}`.
            labels.extend(label(&s.score));
        }
    }
}

/// A feed's own severity word, where it keeps one: `severity` (GHSA-style, AlmaLinux, Rocky),
/// `urgency` (Debian), `priority` (Ubuntu).
fn label_from(v: Option<&Value>) -> Option<Severity> {
    let v = v?;
    ["severity", "urgency", "priority"]
        .iter()
        .filter_map(|k| v.get(k).and_then(Value::as_str))
        .filter_map(label)
        .max()
}

/// Severity words of the distributions onto the one scale. Debian's "unimportant" and Ubuntu's
/// "negligible" are low, not absent: the flaw is there.
pub(crate) fn label(word: &str) -> Option<Severity> {
    let w = word.trim().trim_end_matches('*').to_ascii_lowercase();
    Some(match w.as_str() {
        "critical" => Severity::Critical,
        "high" | "important" => Severity::High,
        "medium" | "moderate" => Severity::Medium,
        "low" | "negligible" | "unimportant" => Severity::Low,
        _ => return None,
    })
}

/// CVSS v3 is preferred over v4: it is what NVD and most distributions still publish, so scores
/// stay comparable across feeds. A vector that does not parse is kept without a score.
fn score(vectors: &[SeverityEntry]) -> (Option<f64>, Option<String>) {
    for kind in ["CVSS_V3", "CVSS_V4"] {
        for v in vectors.iter().filter(|v| v.kind == kind) {
            let text = v.score.trim();
            if let Ok(c) = text.parse::<cvss::Cvss>() {
                let s = c.score();
                if s.is_finite() && (0.0..=10.0).contains(&s) {
                    return (Some(s), Some(text.to_string()));
                }
            }
            // Some converters write the bare base score instead of the vector.
            if let Ok(s) = text.parse::<f64>()
                && (0.0..=10.0).contains(&s)
            {
                return (Some(s), None);
            }
        }
    }
    let raw = vectors
        .iter()
        .find(|v| v.kind == "CVSS_V3" || v.kind == "CVSS_V4")
        .map(|v| v.score.trim().to_string());
    (None, raw)
}

/// The ECOSYSTEM ranges of one affected package, as one [`Affected`] per interval.
fn affected_entry(entry: &AffectedEntry) -> Result<Vec<Affected>, String> {
    let pkg = entry
        .package
        .as_ref()
        .ok_or("affected entry without `package`")?;
    let (ecosystem, release) = Ecosystem::parse_osv(&pkg.ecosystem)?;
    let name = pkg.name.trim();
    if name.is_empty() {
        return Err("affected entry with an empty package name".into());
    }
    let ranges: Vec<&Range> = entry
        .ranges
        .iter()
        .filter(|r| r.kind == "ECOSYSTEM")
        .collect();
    if ranges.is_empty() {
        return Err(if entry.versions.is_empty() {
            "no ECOSYSTEM range".into()
        } else {
            // A bare version list cannot say whether a newer or a rebuilt version is affected.
            "only a `versions` list, no ECOSYSTEM range".into()
        });
    }
    let check = |v: &str| -> Result<(), String> {
        match ecosystem.scheme() {
            Some(scheme) => hostward_vercmp::validate(scheme, v).map_err(|e| e.to_string()),
            None if v.trim().is_empty() => Err("empty version".into()),
            None => Ok(()),
        }
    };
    let mut out = Vec::new();
    let mut push = |status: AffectedStatus| {
        out.push(Affected {
            ecosystem,
            release: release.clone(),
            package: name.to_string(),
            source_package: ecosystem.by_source_package(),
            status,
        })
    };
    for r in ranges {
        // `None`: outside any interval; `Some(None)`: in one open from the beginning.
        let mut open: Option<Option<String>> = None;
        for ev in &r.events {
            if let Some(v) = &ev.introduced {
                let v = v.trim();
                if v == "0" {
                    open = Some(None);
                } else {
                    check(v)?;
                    open = Some(Some(v.to_string()));
                }
            } else if let Some(v) = &ev.fixed {
                let v = v.trim();
                let introduced = open.take().flatten();
                if v == "0" {
                    // Debian's converter says "never affected" as fixed in version 0.
                    push(AffectedStatus::NotAffected);
                } else {
                    check(v)?;
                    push(AffectedStatus::Fixed {
                        fixed: v.to_string(),
                        introduced,
                    });
                }
            } else if ev.last_affected.is_some() {
                return Err("`last_affected` ranges are not supported".into());
            }
        }
        if let Some(introduced) = open {
            push(AffectedStatus::Unfixed { introduced });
        }
    }
    if out.is_empty() {
        return Err("ECOSYSTEM range without events".into());
    }
    Ok(out)
}

/// RFC 3339 (`2023-11-10T12:00:00Z`, fractions and offsets allowed; a bare date is midnight
/// UTC) → Unix seconds. A malformed date only loses the date, not the record.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        (!part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if b.len() == 10 {
        return Some(secs);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    secs += h * 3600 + mi * 60 + sec;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match b.get(i) {
        None | Some(b'Z' | b'z') if b.len() <= i + 1 => Some(secs),
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            Some(if sign == b'+' { secs - off } else { secs + off })
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSA: &str = r#"{
      "schema_version": "1.6.0",
      "id": "DSA-5532-1",
      "modified": "2023-10-31T00:00:00Z",
      "published": "2023-10-24T12:30:00Z",
      "upstream": ["CVE-2023-5363", "CVE-2023-5678"],
      "summary": "openssl - security update",
      "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
      "affected": [
        {"package": {"ecosystem": "Debian:12", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]},
        {"package": {"ecosystem": "Debian:11", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
         "versions": ["1.1.1n-0+deb11u5"]}
      ]
    }"#;

    #[test]
    fn debian_record_gives_source_package_intervals_per_release() {
        let a = parse_osv(DSA, "dsa.json").unwrap();
        assert_eq!(a.id, "DSA-5532-1");
        assert_eq!(a.cves, ["CVE-2023-5363", "CVE-2023-5678"]);
        assert_eq!(a.summary, "openssl - security update");
        assert_eq!(a.cvss_score, Some(7.5));
        assert_eq!(
            a.cvss_vector.as_deref(),
            Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N")
        );
        assert_eq!(a.published, Some(1_698_150_600));
        assert_eq!(
            a.affected,
            [
                Affected {
                    ecosystem: Ecosystem::Debian,
                    release: "12".into(),
                    package: "openssl".into(),
                    source_package: true,
                    status: AffectedStatus::Fixed {
                        fixed: "3.0.11-1~deb12u2".into(),
                        introduced: None
                    },
                },
                Affected {
                    ecosystem: Ecosystem::Debian,
                    release: "11".into(),
                    package: "openssl".into(),
                    source_package: true,
                    status: AffectedStatus::Unfixed { introduced: None },
                },
            ]
        );
    }

    #[test]
    fn rpm_record_names_binary_packages_and_keeps_labels() {
        let text = r#"{"id": "ALSA-2024:0001", "aliases": ["CVE-2024-1"],
          "database_specific": {"severity": "Important"},
          "affected": [{"package": {"ecosystem": "AlmaLinux:9", "name": "openssl-libs"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}]}]}"#;
        let a = parse_osv(text, "x").unwrap();
        assert_eq!(a.cves, ["CVE-2024-1"]);
        assert_eq!((a.cvss_score, a.severity), (None, Some(Severity::High)));
        let f = &a.affected[0];
        assert_eq!(
            (f.ecosystem, f.release.as_str(), f.source_package),
            (Ecosystem::AlmaLinux, "9", false)
        );
    }

    #[test]
    fn several_intervals_and_introduced_versions_are_kept() {
        let text = r#"{"id": "CVE-2024-2", "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "curl"},
          "severity": [{"type": "Ubuntu", "score": "negligible"}],
          "ranges": [{"type": "ECOSYSTEM", "events": [
             {"introduced": "7.0-1"}, {"fixed": "7.5-1"}, {"introduced": "7.81.0-1"}]}]}]}"#;
        let a = parse_osv(text, "x").unwrap();
        assert_eq!(a.cves, ["CVE-2024-2"], "a CVE id is its own CVE");
        assert_eq!(a.severity, Some(Severity::Low));
        let st: Vec<_> = a.affected.iter().map(|a| a.status.clone()).collect();
        assert_eq!(
            st,
            [
                AffectedStatus::Fixed {
                    fixed: "7.5-1".into(),
                    introduced: Some("7.0-1".into())
                },
                AffectedStatus::Unfixed {
                    introduced: Some("7.81.0-1".into())
                },
            ]
        );
    }

    #[test]
    fn cvss_v4_only_is_scored_and_v3_is_preferred() {
        let rec = |sev: &str| {
            format!(
                r#"{{"id": "X-1", "severity": {sev}, "affected": [{{"package": {{"ecosystem": "Debian:12", "name": "a"}},
                "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}]}}]}}]}}"#
            )
        };
        let v4 = r#"{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}"#;
        let v3 = r#"{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}"#;
        let a = parse_osv(&rec(&format!("[{v4}]")), "x").unwrap();
        assert_eq!(a.cvss_score, Some(9.3));
        assert!(a.cvss_vector.unwrap().starts_with("CVSS:4.0/"));
        let a = parse_osv(&rec(&format!("[{v4}, {v3}]")), "x").unwrap();
        assert_eq!(a.cvss_score, Some(3.3));
        let a = parse_osv(
            &rec(r#"[{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}]"#),
            "x",
        )
        .unwrap();
        assert_eq!(
            (a.cvss_score, a.cvss_vector.as_deref()),
            (None, Some("CVSS:3.1/garbage"))
        );
    }

    #[test]
    fn cvss_v3_base_scores_match_the_first_calculator() {
        for (v, s) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:L", 1.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ] {
            let e = SeverityEntry {
                kind: "CVSS_V3".into(),
                score: v.into(),
            };
            assert_eq!(score(&[e]).0, Some(s), "{v}");
        }
    }

    #[test]
    fn truncated_json_names_the_source_line_and_column() {
        let cut = &DSA[..DSA.len() / 2];
        let e = parse_osv(cut, "feeds/dsa.json").unwrap_err();
        assert!(e.starts_with("feeds/dsa.json: invalid JSON: EOF"), "{e}");
        assert!(e.contains("line ") && e.contains("column "), "{e}");
    }

    #[test]
    fn record_without_affected_is_skipped() {
        let e = parse_osv(r#"{"id": "DSA-1-1", "summary": "x"}"#, "f.json").unwrap_err();
        assert_eq!(e, "f.json: DSA-1-1: record has no `affected` packages");
        let e = parse_osv(r#"{"id": "DSA-1-1", "affected": []}"#, "f.json").unwrap_err();
        assert!(e.contains("no `affected`"), "{e}");
        let e = parse_osv(r#"{"summary": "x"}"#, "f.json").unwrap_err();
        assert!(e.contains("without an `id`"), "{e}");
        let e = parse_osv(
            r#"{"id": "W-1", "withdrawn": "2024-01-01T00:00:00Z", "affected": []}"#,
            "f",
        )
        .unwrap_err();
        assert!(e.contains("withdrawn"), "{e}");
    }

    #[test]
    fn unknown_ecosystem_entries_are_dropped_and_reported() {
        let text = r#"{"id": "GHSA-1", "affected": [
          {"package": {"ecosystem": "PyPI", "name": "django"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]},
          {"package": {"ecosystem": "Debian:12", "name": "python-django"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3:3.2.19-1+deb12u1"}]}]}]}"#;
        let (a, skipped) = parse_osv_detailed(text, "f.json").unwrap();
        assert_eq!(a.affected.len(), 1);
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            skipped[0].source,
            "f.json: GHSA-1 affected[0] (PyPI django)"
        );
        assert!(skipped[0].reason.contains("unknown ecosystem \"PyPI\""));

        let only_pypi = r#"{"id": "GHSA-2", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": []}]}"#;
        let e = parse_osv(only_pypi, "f.json").unwrap_err();
        assert!(
            e.contains("GHSA-2: no affected entry can be matched: unknown ecosystem"),
            "{e}"
        );
    }

    #[test]
    fn invalid_versions_skip_the_entry() {
        let rec = |eco: &str, fixed: &str| {
            format!(
                r#"{{"id": "X-1", "affected": [{{"package": {{"ecosystem": "{eco}", "name": "a"}},
                "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
            )
        };
        let e = parse_osv(&rec("Debian:12", "1.0 beta"), "f").unwrap_err();
        assert!(e.contains("invalid"), "{e}");
        let e = parse_osv(&rec("AlmaLinux:9", "1.0-1:2"), "f").unwrap_err();
        assert!(e.contains("invalid"), "{e}");
        assert!(parse_osv(&rec("Alpine:v3.18", "1.2.3-r0"), "f").is_ok());
        assert!(parse_osv(&rec("Alpine:v3.18", " "), "f").is_err());
    }

    #[test]
    fn ranges_the_matcher_cannot_use_are_reported() {
        let rec = |affected: &str| format!(r#"{{"id": "X-1", "affected": [{affected}]}}"#);
        for (a, why) in [
            (
                r#"{"package": {"ecosystem": "Debian:12", "name": "a"}, "versions": ["1.0-1"]}"#,
                "only a `versions` list",
            ),
            (
                r#"{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": [{"type": "GIT", "events": []}]}"#,
                "no ECOSYSTEM range",
            ),
            (
                r#"{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.0-1"}]}]}"#,
                "last_affected",
            ),
            (r#"{"ranges": []}"#, "without `package`"),
            (
                r#"{"package": {"ecosystem": "Debian:12", "name": 7}}"#,
                "unexpected content",
            ),
        ] {
            let e = parse_osv(&rec(a), "f").unwrap_err();
            assert!(e.contains(why), "{a}: {e}");
        }
    }

    #[test]
    fn fixed_zero_means_not_affected() {
        let text = r#"{"id": "X-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0"}]}]}]}"#;
        let a = parse_osv(text, "f").unwrap();
        assert_eq!(a.affected[0].status, AffectedStatus::NotAffected);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-10-24T12:30:00Z"), Some(1_698_150_600));
        assert_eq!(
            parse_rfc3339("2023-10-24T12:30:00.123456Z"),
            Some(1_698_150_600)
        );
        assert_eq!(
            parse_rfc3339("2023-10-24T14:30:00+02:00"),
            Some(1_698_150_600)
        );
        assert_eq!(
            parse_rfc3339("2023-10-24T10:30:00-02:00"),
            Some(1_698_150_600)
        );
        assert_eq!(parse_rfc3339("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-10-24T25:00:00Z",
            "yesterday",
            "2023-10-24T12:30:00Zjunk",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
