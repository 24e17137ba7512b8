//! Distributions and releases: OSV ecosystem strings, Debian codenames and os-release identities
//! all reduce to one `(Ecosystem, release)` pair, so a feed entry and a host meet on equal keys.

use hostward_vercmp::Scheme;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    AlmaLinux,
    #[serde(rename = "Rocky Linux")]
    Rocky,
    #[serde(rename = "Red Hat")]
    RedHat,
    Alpine,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 6] = [
        Ecosystem::Debian,
        Ecosystem::Ubuntu,
        Ecosystem::AlmaLinux,
        Ecosystem::Rocky,
        Ecosystem::RedHat,
        Ecosystem::Alpine,
    ];

    /// The name OSV gives the ecosystem (before its `:release` suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::AlmaLinux => "AlmaLinux",
            Ecosystem::Rocky => "Rocky Linux",
            Ecosystem::RedHat => "Red Hat",
            Ecosystem::Alpine => "Alpine",
        }
    }

    /// The OSV name, any case; also the os-release-style short names `rocky` and `redhat`.
    pub fn parse(s: &str) -> Option<Ecosystem> {
        let s = s.trim();
        Ecosystem::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s))
            .or_else(|| match s.to_ascii_lowercase().as_str() {
                "rocky" | "rockylinux" => Some(Ecosystem::Rocky),
                "redhat" => Some(Ecosystem::RedHat),
                _ => None,
            })
    }

    /// Version ordering of the ecosystem's packages. `None` for Alpine: apk ordering is not
    /// implemented, and nothing matches apk packages yet.
    pub fn scheme(self) -> Option<Scheme> {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => Some(Scheme::Deb),
            Ecosystem::AlmaLinux | Ecosystem::Rocky | Ecosystem::RedHat => Some(Scheme::Rpm),
            Ecosystem::Alpine => None,
        }
    }

    /// Debian and Ubuntu feeds speak of source packages; the RPM feeds of binary packages.
    pub fn by_source_package(self) -> bool {
        matches!(self, Ecosystem::Debian | Ecosystem::Ubuntu)
    }

    /// An OSV `affected[].package.ecosystem` string: `Debian:12`, `Ubuntu:22.04:LTS`,
    /// `AlmaLinux:9`, `Rocky Linux:9`, `Red Hat:enterprise_linux:9::appstream`, `Alpine:v3.18`.
    /// The error says why an entry cannot be matched to hosts.
    pub fn parse_osv(s: &str) -> Result<(Ecosystem, String), String> {
        let mut parts = s.split(':').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let eco = Ecosystem::parse(name).ok_or_else(|| format!("unknown ecosystem {s:?}"))?;
        let no_release = || format!("ecosystem {s:?} names no release");
        let release = match eco {
            Ecosystem::Debian => {
                let r = rest.first().copied().ok_or_else(no_release)?;
                debian_release(r)
                    .map(String::from)
                    .or_else(|| major(r))
                    .ok_or_else(|| format!("unknown Debian release in {s:?}"))?
            }
            Ecosystem::Ubuntu => {
                // Pro and FIPS streams ship fixes (`+esm`) that a host without a Pro
                // subscription cannot install, and the inventory does not say which hosts have
                // one: reporting them would give fix commands that fail.
                if let Some(p) = rest.iter().find(|p| {
                    p.eq_ignore_ascii_case("pro") || p.to_ascii_lowercase().contains("fips")
                }) {
                    return Err(format!(
                        "Ubuntu {p} stream {s:?} is not matched (needs an Ubuntu Pro subscription)"
                    ));
                }
                let r = rest.first().copied().ok_or_else(no_release)?;
                ubuntu_release(r).ok_or_else(|| format!("unknown Ubuntu release in {s:?}"))?
            }
            Ecosystem::AlmaLinux | Ecosystem::Rocky => {
                let r = rest.first().copied().ok_or_else(no_release)?;
                major(r).ok_or_else(|| format!("unknown {} release in {s:?}", eco.as_str()))?
            }
            Ecosystem::RedHat => {
                // `Red Hat:<CPE product>:<version>::<repository>`. Only the main stream: EUS,
                // AUS and similar products pin minor releases whose fixed versions differ.
                let product = rest.first().copied().ok_or_else(no_release)?;
                if !product.eq_ignore_ascii_case("enterprise_linux") {
                    return Err(format!(
                        "Red Hat product {product:?} in {s:?} is not matched (only enterprise_linux)"
                    ));
                }
                let r = rest.get(1).copied().ok_or_else(no_release)?;
                major(r).ok_or_else(|| format!("unknown Red Hat release in {s:?}"))?
            }
            Ecosystem::Alpine => {
                let r = rest.first().copied().ok_or_else(no_release)?;
                minor(r.trim_start_matches('v'))
                    .ok_or_else(|| format!("unknown Alpine release in {s:?}"))?
            }
        };
        Ok((eco, release))
    }

    /// Where a host's advisories live, from os-release `ID` and `VERSION_ID`. `None` for a
    /// distribution no feed covers, or a release it cannot be placed in (Debian testing has no
    /// `VERSION_ID`).
    pub fn for_host(os_id: &str, version_id: &str) -> Option<(Ecosystem, String)> {
        let v = version_id.trim();
        match os_id.trim().to_ascii_lowercase().as_str() {
            "debian" => Some((Ecosystem::Debian, major(v)?)),
            "ubuntu" => Some((Ecosystem::Ubuntu, ubuntu_release(v)?)),
            "almalinux" => Some((Ecosystem::AlmaLinux, major(v)?)),
            "rocky" => Some((Ecosystem::Rocky, major(v)?)),
            // CentOS Stream follows RHEL's next minor release; Red Hat's fixed versions are the
            // nearest there is.
            "rhel" | "centos" => Some((Ecosystem::RedHat, major(v)?)),
            "alpine" => Some((Ecosystem::Alpine, minor(v)?)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Debian codename → the release number hosts report as `VERSION_ID`. `sid` stays `sid`: it
/// never gets a number.
pub(crate) fn debian_release(codename: &str) -> Option<&'static str> {
    Some(match codename.to_ascii_lowercase().as_str() {
        "jessie" => "8",
        "stretch" => "9",
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        "duke" => "15",
        "sid" | "unstable" => "sid",
        _ => return None,
    })
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `9`, `9.3` → `9`.
fn major(v: &str) -> Option<String> {
    let m = v.split('.').next()?;
    is_number(m).then(|| m.to_string())
}

/// `3.18`, `3.18.4` → `3.18`.
fn minor(v: &str) -> Option<String> {
    let mut it = v.split('.');
    let (a, b) = (it.next()?, it.next()?);
    (is_number(a) && is_number(b)).then(|| format!("{a}.{b}"))
}

/// Ubuntu releases are `YY.MM` exactly; `22.04.3` point releases share the archive of `22.04`.
fn ubuntu_release(v: &str) -> Option<String> {
    minor(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn osv(s: &str) -> Result<(Ecosystem, String), String> {
        Ecosystem::parse_osv(s)
    }

    #[test]
    fn osv_ecosystem_strings_reduce_to_ecosystem_and_release() {
        let ok = |s: &str, e: Ecosystem, r: &str| {
            assert_eq!(osv(s), Ok((e, r.to_string())), "{s}");
        };
        ok("Debian:12", Ecosystem::Debian, "12");
        ok("Debian:bookworm", Ecosystem::Debian, "12");
        ok("Debian:sid", Ecosystem::Debian, "sid");
        ok("Ubuntu:22.04:LTS", Ecosystem::Ubuntu, "22.04");
        ok("Ubuntu:23.10", Ecosystem::Ubuntu, "23.10");
        ok("AlmaLinux:9", Ecosystem::AlmaLinux, "9");
        ok("AlmaLinux:8.9", Ecosystem::AlmaLinux, "8");
        ok("Rocky Linux:9", Ecosystem::Rocky, "9");
        ok(
            "Red Hat:enterprise_linux:9::appstream",
            Ecosystem::RedHat,
            "9",
        );
        ok("Red Hat:enterprise_linux:8::baseos", Ecosystem::RedHat, "8");
        ok("Alpine:v3.18", Ecosystem::Alpine, "3.18");
        ok("alpine:3.19", Ecosystem::Alpine, "3.19");
    }

    #[test]
    fn ecosystems_that_cannot_be_matched_say_why() {
        for (s, why) in [
            ("PyPI", "unknown ecosystem"),
            ("SUSE:Linux Enterprise Server 15", "unknown ecosystem"),
            ("Debian", "names no release"),
            ("Debian:potato", "unknown Debian release"),
            ("Ubuntu:Pro:18.04:LTS", "Ubuntu Pro subscription"),
            (
                "Ubuntu:Pro:FIPS-updates:22.04:LTS",
                "Ubuntu Pro subscription",
            ),
            ("Red Hat:rhel_eus:9.2::baseos", "only enterprise_linux"),
            ("Alpine:edge", "unknown Alpine release"),
        ] {
            let e = osv(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn names_round_trip_and_serialise_as_osv_names() {
        for e in Ecosystem::ALL {
            assert_eq!(Ecosystem::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.as_str())
            );
        }
        assert_eq!(Ecosystem::parse("rocky"), Some(Ecosystem::Rocky));
        assert_eq!(Ecosystem::parse("Gentoo"), None);
    }

    #[test]
    fn hosts_map_to_the_feed_release_they_read() {
        let h = Ecosystem::for_host;
        assert_eq!(h("debian", "12"), Some((Ecosystem::Debian, "12".into())));
        assert_eq!(h("debian", ""), None, "testing/sid have no VERSION_ID");
        assert_eq!(
            h("ubuntu", "22.04"),
            Some((Ecosystem::Ubuntu, "22.04".into()))
        );
        assert_eq!(
            h("almalinux", "9.3"),
            Some((Ecosystem::AlmaLinux, "9".into()))
        );
        assert_eq!(h("rocky", "8.9"), Some((Ecosystem::Rocky, "8".into())));
        assert_eq!(h("rhel", "9.2"), Some((Ecosystem::RedHat, "9".into())));
        assert_eq!(h("centos", "9"), Some((Ecosystem::RedHat, "9".into())));
        assert_eq!(
            h("alpine", "3.18.4"),
            Some((Ecosystem::Alpine, "3.18".into()))
        );
        assert_eq!(h("arch", ""), None);
    }

    #[test]
    fn codenames_map_to_release_numbers() {
        assert_eq!(debian_release("bullseye"), Some("11"));
        assert_eq!(debian_release("bookworm"), Some("12"));
        assert_eq!(debian_release("trixie"), Some("13"));
        assert_eq!(debian_release("forky"), Some("14"));
        assert_eq!(debian_release("buster"), Some("10"));
        assert_eq!(debian_release("sid"), Some("sid"));
        assert_eq!(debian_release("hamm"), None);
    }
}
