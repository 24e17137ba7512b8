//! Vulnerability database of the center: feed import and distro-aware matching.
//!
//! Feeds: OSV records (one per file, arrays of them, directories, or zip archives of them) for
//! Debian, Ubuntu, AlmaLinux, Rocky Linux, Red Hat and Alpine, and the Debian Security Tracker
//! JSON (`security-tracker.debian.org/tracker/data/json`). Every feed becomes a list of
//! [`Advisory`]; a bad record is skipped with a reason ([`Skipped`]) and the rest is kept.
//!
//! Matching ([`Matcher`]) takes a host's os-release identity, running kernel and software
//! inventory and yields [`Finding`]s: one per CVE and binary package. It is release-aware
//! (bookworm advisories never match a bullseye host), maps Debian binary packages to their
//! source package (the tracker and Debian/Ubuntu OSV are keyed by source package), compares
//! versions with dpkg's or rpm's ordering (`hostward-vercmp`), and ignores kernels that are
//! installed but not running.
//!
//! Alpine records are imported but match nothing yet: the agent has no apk collector, so no
//! inventory names an apk package.
//!
//! Pure: reads the files it is given, no network, no database.

use hostward_proto::Severity;
use serde::{Deserialize, Serialize};

mod debian_tracker;
mod ecosystem;
mod import;
mod json;
mod matcher;
mod osv;

pub use debian_tracker::parse_debian_tracker;
pub use ecosystem::Ecosystem;
pub use import::{ImportError, import_path};
pub use matcher::{Finding, Host, Matcher, Restart};
pub use osv::parse_osv;

/// One advisory: a CVE (Debian tracker) or an OSV record (DSA, USN, ALSA, RLSA, RHSA, ...).
/// The center stores it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// OSV id or CVE id.
    pub id: String,
    /// CVE ids it covers: `id` when it is one, plus CVE aliases. Empty when it names none; then
    /// findings carry `id` instead.
    #[serde(default)]
    pub cves: Vec<String>,
    #[serde(default)]
    pub summary: String,
    /// CVSS base score of `cvss_vector`.
    #[serde(default)]
    pub cvss_score: Option<f64>,
    #[serde(default)]
    pub cvss_vector: Option<String>,
    /// The feed's own label (urgency, priority). Findings use it only when there is no CVSS
    /// score.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Unix seconds.
    #[serde(default)]
    pub published: Option<i64>,
    pub affected: Vec<Affected>,
}

/// One package in one release of one distribution, and whether and where it is fixed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    pub ecosystem: Ecosystem,
    /// Normalised release: Debian `12` (or `sid`), Ubuntu `22.04`, AlmaLinux/Rocky/Red Hat `9`,
    /// Alpine `3.18`.
    pub release: String,
    pub package: String,
    /// `true`: `package` is a source package (Debian tracker, Debian and Ubuntu OSV), matched
    /// through the `Source:` of installed binary packages.
    #[serde(default)]
    pub source_package: bool,
    pub status: AffectedStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AffectedStatus {
    /// Versions from `introduced` (or the beginning) up to, not including, `fixed`.
    Fixed {
        fixed: String,
        #[serde(default)]
        introduced: Option<String>,
    },
    /// No fix in this release yet: every version from `introduced` (or the beginning).
    Unfixed {
        #[serde(default)]
        introduced: Option<String>,
    },
    /// The release's package never had the flaw (Debian tracker `fixed_version` "0").
    NotAffected,
}

/// A record, release entry or file left out of an import, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// File path, and the record id (or package/CVE) within it when known.
    pub source: String,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// What one import produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub advisories: Vec<Advisory>,
    pub skipped: Vec<Skipped>,
    /// JSON documents read (files, or entries of a zip archive).
    pub files: usize,
}
