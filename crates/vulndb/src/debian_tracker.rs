//! The Debian Security Tracker JSON (`security-tracker.debian.org/tracker/data/json`):
//! `{source package: {CVE id: {description, scope, releases: {codename: {status,
//! fixed_version, urgency, repositories}}}}}`.

use std::collections::{BTreeMap, HashMap};

use hostward_proto::Severity;
use hostward_vercmp::Scheme;
use serde::Deserialize;

use crate::ecosystem::{Ecosystem, debian_release};
use crate::json::{Lenient, describe, nullable};
use crate::osv::label;
use crate::{Advisory, Affected, AffectedStatus, Skipped};

#[derive(Deserialize)]
struct Issue {
    #[serde(default, deserialize_with = "nullable")]
    description: String,
    #[serde(default, deserialize_with = "nullable")]
    releases: BTreeMap<String, Lenient<Release>>,
}

#[derive(Deserialize)]
struct Release {
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
}

/// Packages are wrapped in [`Lenient`] at two levels so a malformed package or issue is skipped
/// alone; the wrapper builds a `Value` for one package at a time, never for the whole file.
type Tracker = BTreeMap<String, Lenient<BTreeMap<String, Lenient<Issue>>>>;

/// One advisory per CVE (or `TEMP-` id), with an [`Affected`] entry per source package and
/// release. `open` and `undetermined` are unfixed (undetermined: not yet triaged, so possibly
/// vulnerable); `resolved` with `fixed_version` "0" is not affected. The error is for a file that
/// is not tracker JSON at all; problems inside it are returned as [`Skipped`] entries.
pub fn parse_debian_tracker(
    text: &str,
    source: &str,
) -> Result<(Vec<Advisory>, Vec<Skipped>), String> {
    let tracker: Tracker =
        serde_json::from_str(text).map_err(|e| format!("{source}: {}", describe(&e)))?;
    let mut advisories: Vec<Advisory> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut skipped = Vec::new();
    // Codenames this parser does not know (a new release, or `experimental`): one line each
    // instead of one per issue.
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();

    for (package, issues) in tracker {
        let issues = match issues.0 {
            Ok(i) => i,
            Err(e) => {
                skipped.push(Skipped {
                    source: format!("{source}: {package}"),
                    reason: format!("unexpected content: {e}"),
                });
                continue;
            }
        };
        for (id, issue) in issues {
            let at = format!("{source}: {package} {id}");
            let issue = match issue.0 {
                Ok(i) => i,
                Err(e) => {
                    skipped.push(Skipped {
                        source: at,
                        reason: format!("unexpected content: {e}"),
                    });
                    continue;
                }
            };
            let mut affected = Vec::new();
            let mut urgency: Option<Severity> = None;
            for (codename, rel) in issue.releases {
                let Some(release) = debian_release(&codename) else {
                    *unknown.entry(codename).or_default() += 1;
                    continue;
                };
                let rel_at = || format!("{at} {codename}");
                let rel = match rel.0 {
                    Ok(r) => r,
                    Err(e) => {
                        skipped.push(Skipped {
                            source: rel_at(),
                            reason: format!("unexpected content: {e}"),
                        });
                        continue;
                    }
                };
                match status(&rel) {
                    Ok(status) => {
                        urgency = urgency.max(rel.urgency.as_deref().and_then(label));
                        affected.push(Affected {
                            ecosystem: Ecosystem::Debian,
                            release: release.to_string(),
                            package: package.clone(),
                            source_package: true,
                            status,
                        });
                    }
                    Err(reason) => skipped.push(Skipped {
                        source: rel_at(),
                        reason,
                    }),
                }
            }
            if affected.is_empty() {
                continue;
            }
            // A CVE touching several source packages is one advisory, as in the tracker's web
            // view; the center stores advisories by id.
            let i = *by_id.entry(id.clone()).or_insert_with(|| {
                advisories.push(Advisory {
                    cves: if id.starts_with("CVE-") {
                        vec![id.clone()]
                    } else {
                        vec![]
                    },
                    id,
                    summary: String::new(),
                    cvss_score: None,
                    cvss_vector: None,
                    severity: None,
                    published: None,
                    affected: Vec::new(),
                });
                advisories.len() - 1
            });
            let adv = &mut advisories[i];
            if adv.summary.is_empty() {
                adv.summary = issue.description.trim().to_string();
            }
            adv.severity = adv.severity.max(urgency);
            adv.affected.extend(affected);
        }
    }
    for (codename, n) in unknown {
        skipped.push(Skipped {
            source: source.to_string(),
            reason: format!(
                "release {codename:?} is not a known Debian release: {n} entries skipped"
            ),
        });
    }
    Ok((advisories, skipped))
}

fn status(rel: &Release) -> Result<AffectedStatus, String> {
    match rel.status.as_str() {
        "resolved" => match rel.fixed_version.as_deref().map(str::trim) {
            Some("0") => Ok(AffectedStatus::NotAffected),
            Some(v) if !v.is_empty() => {
                hostward_vercmp::validate(Scheme::Deb, v).map_err(|e| e.to_string())?;
                Ok(AffectedStatus::Fixed {
                    fixed: v.to_string(),
                    introduced: None,
                })
            }
            _ => Err("resolved without a fixed_version".into()),
        },
        "open" | "undetermined" => Ok(AffectedStatus::Unfixed { introduced: None }),
        other => Err(format!("unknown status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACKER: &str = r#"{
      "openssl": {
        "CVE-2023-5678": {
          "description": "Generating excessively long X9.42 DH keys ...",
          "scope": "remote",
          "releases": {
            "bookworm": {"status": "resolved", "fixed_version": "3.0.13-1~deb12u1", "urgency": "not yet assigned",
                         "repositories": {"bookworm": "3.0.11-1~deb12u2", "bookworm-security": "3.0.13-1~deb12u1"}},
            "bullseye": {"status": "open", "urgency": "low", "repositories": {"bullseye": "1.1.1w-0+deb11u1"}},
            "buster":   {"status": "resolved", "fixed_version": "0", "urgency": "unimportant"},
            "sid":      {"status": "resolved", "fixed_version": "3.0.13-1", "urgency": "medium**"}
          }
        },
        "TEMP-0000000-ABCDEF": {"releases": {"trixie": {"status": "undetermined"}}}
      },
      "openssl1.0": {
        "CVE-2023-5678": {"releases": {"buster": {"status": "resolved", "fixed_version": "0"}}}
      }
    }"#;

    #[test]
    fn issues_become_advisories_per_cve_with_a_release_per_codename() {
        let (advs, skipped) = parse_debian_tracker(TRACKER, "tracker.json").unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(advs.len(), 2);
        let a = &advs[0];
        assert_eq!(
            (a.id.as_str(), a.cves.as_slice()),
            ("CVE-2023-5678", &["CVE-2023-5678".to_string()][..])
        );
        assert!(a.summary.starts_with("Generating"));
        assert_eq!(a.severity, Some(Severity::Medium), "highest urgency");
        let rel: Vec<(&str, &str, &AffectedStatus)> = a
            .affected
            .iter()
            .map(|f| (f.package.as_str(), f.release.as_str(), &f.status))
            .collect();
        let fixed = |v: &str| AffectedStatus::Fixed {
            fixed: v.into(),
            introduced: None,
        };
        assert_eq!(
            rel,
            [
                ("openssl", "12", &fixed("3.0.13-1~deb12u1")),
                (
                    "openssl",
                    "11",
                    &AffectedStatus::Unfixed { introduced: None }
                ),
                ("openssl", "10", &AffectedStatus::NotAffected),
                ("openssl", "sid", &fixed("3.0.13-1")),
                ("openssl1.0", "10", &AffectedStatus::NotAffected),
            ]
        );
        assert!(
            a.affected
                .iter()
                .all(|f| f.source_package && f.ecosystem == Ecosystem::Debian)
        );
        let t = &advs[1];
        assert_eq!((t.id.as_str(), t.cves.len()), ("TEMP-0000000-ABCDEF", 0));
        assert_eq!(t.affected[0].release, "13");
        assert_eq!(
            t.affected[0].status,
            AffectedStatus::Unfixed { introduced: None }
        );
    }

    #[test]
    fn bad_entries_are_skipped_and_the_rest_kept() {
        let text = r#"{
          "a": {"CVE-1": {"releases": {
            "bookworm": {"status": "resolved", "fixed_version": "not a version!"},
            "bullseye": {"status": "resolved"},
            "trixie": {"status": "weird"},
            "sid": {"status": "open"},
            "hamm": {"status": "open"},
            "experimental": {"status": "open"}}}},
          "b": "not an object",
          "c": {"CVE-2": {"releases": 5}, "CVE-3": {"releases": {"bookworm": {"status": 1}}}}
        }"#;
        let (advs, skipped) = parse_debian_tracker(text, "t.json").unwrap();
        assert_eq!(advs.len(), 1);
        assert_eq!(advs[0].affected.len(), 1, "only sid is usable");
        let lines: Vec<String> = skipped.iter().map(|s| s.to_string()).collect();
        let has = |needle: &str| {
            assert!(
                lines.iter().any(|l| l.contains(needle)),
                "{needle} not in {lines:#?}"
            )
        };
        has("t.json: a CVE-1 bookworm: invalid");
        has("t.json: a CVE-1 bullseye: resolved without a fixed_version");
        has("t.json: a CVE-1 trixie: unknown status \"weird\"");
        has("t.json: b: unexpected content");
        has("t.json: c CVE-2: unexpected content");
        has("t.json: c CVE-3 bookworm: unexpected content");
        has("t.json: release \"experimental\" is not a known Debian release: 1 entries skipped");
        has("t.json: release \"hamm\" is not a known Debian release: 1 entries skipped");
    }

    #[test]
    fn broken_json_is_an_error_naming_the_file_and_position() {
        let e = parse_debian_tracker(&TRACKER[..200], "tracker.json").unwrap_err();
        assert!(e.starts_with("tracker.json: invalid JSON: EOF"), "{e}");
        assert!(e.contains("line "), "{e}");
        let e = parse_debian_tracker("[1, 2]", "t.json").unwrap_err();
        assert!(e.contains("unexpected content"), "{e}");
    }
}
