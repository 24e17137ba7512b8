//! Matching a host's software inventory against advisories.

use std::borrow::Cow;
use std::collections::HashMap;

use hostward_proto::Severity;
use hostward_proto::inventory::Package;
use hostward_vercmp::{Scheme, compare};
use serde::{Deserialize, Serialize};

use crate::ecosystem::Ecosystem;
use crate::{Advisory, AffectedStatus};

/// What matching needs to know about a host besides its packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// os-release `ID`: `debian`, `ubuntu`, `almalinux`, `rocky`, `rhel`, `centos`, `alpine`.
    pub os_id: String,
    /// os-release `VERSION_ID`: `12`, `22.04`, `9.3`, `3.18.4`.
    pub os_version: String,
    /// `uname -r` of the running kernel. Empty: unknown, and every installed kernel is checked.
    pub kernel: String,
}

/// One vulnerable package on a host, for one CVE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub advisory_id: String,
    /// The CVE id, or the advisory id when the advisory names no CVE.
    pub cve: String,
    /// Binary package installed on the host.
    pub package: String,
    /// Source package the advisory named, when it matched through one.
    pub source_package: Option<String>,
    pub installed_version: String,
    /// `None`: no fix released for the host's release yet.
    pub fixed_version: Option<String>,
    pub cvss_score: Option<f64>,
    /// From the CVSS score; else the feed's label; else medium.
    pub severity: Severity,
    pub summary: String,
    /// Shell command that installs the fix; `None` when unfixed.
    pub fix_command: Option<String>,
    pub restart: Restart,
}

/// What must be restarted after the fix is installed for it to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    None,
    /// Processes that loaded the old library keep it mapped until they restart.
    Service,
    /// Kernel, C library, init.
    Reboot,
}

/// Advisories indexed by ecosystem, release and package name, built once per feed import and
/// shared by every host's matching.
pub struct Matcher {
    advisories: Vec<Info>,
    releases: HashMap<(Ecosystem, String), ReleaseIndex>,
}

/// What a finding needs from its advisory, with the severity fallbacks already applied.
struct Info {
    id: String,
    cves: Vec<String>,
    summary: String,
    cvss_score: Option<f64>,
    severity: Severity,
}

#[derive(Default)]
struct ReleaseIndex {
    by_source: HashMap<String, Vec<Hit>>,
    by_binary: HashMap<String, Vec<Hit>>,
}

struct Hit {
    advisory: u32,
    status: AffectedStatus,
}

impl Matcher {
    pub fn new(advisories: &[Advisory]) -> Matcher {
        let mut releases: HashMap<(Ecosystem, String), ReleaseIndex> = HashMap::new();
        let mut infos = Vec::with_capacity(advisories.len());
        for (i, a) in advisories.iter().enumerate() {
            infos.push(Info {
                id: a.id.clone(),
                cves: a.cves.clone(),
                summary: a.summary.clone(),
                cvss_score: a.cvss_score,
                severity: a
                    .cvss_score
                    .map(Severity::from_cvss)
                    .or(a.severity)
                    .unwrap_or(Severity::Medium),
            });
            for f in &a.affected {
                if f.status == AffectedStatus::NotAffected {
                    continue;
                }
                let idx = releases
                    .entry((f.ecosystem, f.release.clone()))
                    .or_default();
                let map = if f.source_package {
                    &mut idx.by_source
                } else {
                    &mut idx.by_binary
                };
                map.entry(f.package.clone()).or_default().push(Hit {
                    advisory: i as u32,
                    status: f.status.clone(),
                });
            }
        }
        Matcher {
            advisories: infos,
            releases,
        }
    }

    /// Findings for one host, most severe first. Packages of another manager than the host's
    /// distribution uses (and every package on Alpine, which has no apk collector yet) match
    /// nothing.
    pub fn match_host(&self, host: &Host, packages: &[Package]) -> Vec<Finding> {
        let Some((eco, release)) = Ecosystem::for_host(&host.os_id, &host.os_version) else {
            return Vec::new();
        };
        let (Some(scheme), Some(index)) = (eco.scheme(), self.releases.get(&(eco, release))) else {
            return Vec::new();
        };
        let manager = match scheme {
            Scheme::Deb => "dpkg",
            Scheme::Rpm => "rpm",
        };
        let kernel_meta = kernel_metapackages(scheme, packages);

        // (CVE, binary package) → best finding so far.
        let mut best: HashMap<(&str, &str), Finding> = HashMap::new();
        for p in packages.iter().filter(|p| p.manager == manager) {
            let kernel = is_kernel(scheme, p);
            // A metapackage (`linux-image-amd64`) holds no kernel code; the image it depends on
            // carries the finding.
            if kernel
                && (is_kernel_metapackage(&p.name) || !is_running_kernel(scheme, p, &host.kernel))
            {
                continue;
            }
            let mut candidates: Vec<(&Hit, &str, Option<&str>)> = Vec::new();
            if let Some(hits) = index.by_binary.get(&p.name) {
                candidates.extend(hits.iter().map(|h| (h, p.version.as_str(), None)));
            }
            let sources = source_names(p, kernel);
            for (src, version) in &sources {
                if let Some(hits) = index.by_source.get(src.as_ref()) {
                    candidates.extend(hits.iter().map(|h| (h, *version, Some(src.as_ref()))));
                }
            }
            for (hit, version, source) in candidates {
                let Some(fixed) = vulnerable(scheme, &hit.status, version) else {
                    continue;
                };
                let info = &self.advisories[hit.advisory as usize];
                let fix_command = fixed.and_then(|_| fix_command(scheme, p, kernel, &kernel_meta));
                let cves: &[String] = &info.cves;
                let ids = if cves.is_empty() {
                    std::slice::from_ref(&info.id)
                } else {
                    cves
                };
                for cve in ids {
                    let key = (cve.as_str(), p.name.as_str());
                    if best
                        .get(&key)
                        .is_some_and(|old| !better(info.cvss_score, fixed.is_some(), old))
                    {
                        continue;
                    }
                    best.insert(
                        key,
                        Finding {
                            advisory_id: info.id.clone(),
                            cve: cve.clone(),
                            package: p.name.clone(),
                            source_package: source.map(String::from),
                            installed_version: p.version.clone(),
                            fixed_version: fixed.map(String::from),
                            cvss_score: info.cvss_score,
                            severity: info.severity,
                            summary: info.summary.clone(),
                            fix_command: fix_command.clone(),
                            restart: restart(p, kernel),
                        },
                    );
                }
            }
        }
        let mut out: Vec<Finding> = best.into_values().collect();
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(
                    b.cvss_score
                        .unwrap_or(-1.0)
                        .total_cmp(&a.cvss_score.unwrap_or(-1.0)),
                )
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.cve.cmp(&b.cve))
        });
        out
    }
}

/// Among findings of one CVE on one package: the highest CVSS wins; on a tie, one with a fix
/// (it gives the administrator something to do); otherwise the first advisory stays.
fn better(score: Option<f64>, has_fix: bool, old: &Finding) -> bool {
    let (new, old_score) = (score.unwrap_or(-1.0), old.cvss_score.unwrap_or(-1.0));
    new > old_score || (new == old_score && has_fix && old.fixed_version.is_none())
}

/// `Some(fixed version or None when unfixed)` when `installed` is in the affected range.
fn vulnerable<'a>(
    scheme: Scheme,
    status: &'a AffectedStatus,
    installed: &str,
) -> Option<Option<&'a str>> {
    use std::cmp::Ordering::Less;
    let from = |introduced: &Option<String>| {
        introduced
            .as_deref()
            .is_none_or(|i| compare(scheme, installed, i) != Less)
    };
    match status {
        AffectedStatus::Fixed { fixed, introduced } => {
            (from(introduced) && compare(scheme, installed, fixed) == Less).then_some(Some(fixed))
        }
        AffectedStatus::Unfixed { introduced } => from(introduced).then_some(None),
        AffectedStatus::NotAffected => None,
    }
}

/// Source packages (and the version to compare with) that advisories may name for `p`.
/// Debian and Ubuntu sign kernels in separate source packages (`linux-signed-amd64`,
/// `linux-signed-hwe-6.5`) whose binaries carry the unsigned kernel's version, while the
/// trackers speak of the unsigned source (`linux`, `linux-hwe-6.5`): the kernel is looked up
/// under both, with the binary's own version.
fn source_names(p: &Package, kernel: bool) -> Vec<(Cow<'_, str>, &str)> {
    let src = p.source.as_deref().unwrap_or(&p.name);
    let version = p.source_version.as_deref().unwrap_or(&p.version);
    let mut out = vec![(Cow::Borrowed(src), version)];
    if kernel && let Some(rest) = src.strip_prefix("linux-signed") {
        let unsigned = match rest.strip_prefix('-') {
            Some(arch) if DEBIAN_ARCHES.contains(&arch) => Cow::Borrowed("linux"),
            Some(flavour) => Cow::Owned(format!("linux-{flavour}")),
            None => Cow::Borrowed("linux"),
        };
        out.push((unsigned, p.version.as_str()));
    }
    out
}

/// Architectures Debian builds `linux-signed-<arch>` for.
const DEBIAN_ARCHES: [&str; 4] = ["amd64", "arm64", "i386", "armhf"];

/// Kernel images, modules and headers: only the running kernel's count, since an older kernel
/// kept for fallback is not what the host executes.
fn is_kernel(scheme: Scheme, p: &Package) -> bool {
    match scheme {
        Scheme::Deb => {
            let src = p.source.as_deref().unwrap_or(&p.name);
            src.starts_with("linux")
                && ["linux-image-", "linux-headers-", "linux-modules-"]
                    .iter()
                    .any(|pre| p.name.starts_with(pre))
        }
        Scheme::Rpm => p.name == "kernel" || p.name.starts_with("kernel-"),
    }
}

/// Debian and Ubuntu put the kernel release in the package name (`linux-image-6.1.0-13-amd64`);
/// RPM kernels are `kernel-core` at version-release.arch = `uname -r`. Kernel metapackages
/// (`linux-image-amd64`) name no release, so they never count as the running kernel.
fn is_running_kernel(scheme: Scheme, p: &Package, uname: &str) -> bool {
    let uname = uname.trim();
    if uname.is_empty() {
        return true;
    }
    match scheme {
        Scheme::Deb => p.name.contains(uname),
        Scheme::Rpm => {
            let v = p
                .version
                .split_once(':')
                .map_or(p.version.as_str(), |(_, v)| v);
            v.len() + 1 + p.arch.len() == uname.len()
                && uname.starts_with(v)
                && uname[v.len()..].strip_prefix('.') == Some(p.arch.as_str())
        }
    }
}

/// Installed Debian/Ubuntu kernel metapackages (`linux-image-amd64`, `linux-image-generic`):
/// a kernel fix usually arrives as a new ABI (`linux-image-6.1.0-17-amd64`), a new package that
/// only upgrading the metapackage installs.
fn kernel_metapackages(scheme: Scheme, packages: &[Package]) -> Vec<&str> {
    if scheme != Scheme::Deb {
        return Vec::new();
    }
    let mut v: Vec<&str> = packages
        .iter()
        .filter(|p| p.manager == "dpkg")
        .filter(|p| is_kernel_metapackage(&p.name) && safe_name(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `linux-image-amd64`, `linux-image-generic-hwe-22.04`: what follows `linux-image-` in a
/// real image is the kernel release, which starts with a digit.
fn is_kernel_metapackage(name: &str) -> bool {
    name.strip_prefix("linux-image-")
        .and_then(|rest| rest.bytes().next())
        .is_some_and(|b| !b.is_ascii_digit())
}

/// Package names go into a shell command the center may run on the host: anything beyond the
/// characters dpkg and rpm allow in names, or a leading `-` (an option), gets no command.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
}

fn fix_command(scheme: Scheme, p: &Package, kernel: bool, kernel_meta: &[&str]) -> Option<String> {
    if !safe_name(&p.name) {
        return None;
    }
    Some(match scheme {
        Scheme::Deb if kernel && !kernel_meta.is_empty() => {
            format!(
                "apt-get install --only-upgrade -y {}",
                kernel_meta.join(" ")
            )
        }
        Scheme::Deb => format!("apt-get install --only-upgrade -y {}", p.name),
        Scheme::Rpm => format!("dnf upgrade -y {}", p.name),
    })
}

fn restart(p: &Package, kernel: bool) -> Restart {
    let n = p.name.as_str();
    if kernel || matches!(n, "libc6" | "glibc" | "systemd") {
        Restart::Reboot
    } else if n.starts_with("lib") || n == "openssl" || n.ends_with("-libs") {
        Restart::Service
    } else {
        Restart::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Affected, parse_debian_tracker};

    fn deb(name: &str, version: &str) -> Package {
        Package {
            manager: "dpkg".into(),
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
            vendor: None,
            install_time: None,
        }
    }

    fn from_source(mut p: Package, source: &str, source_version: Option<&str>) -> Package {
        p.source = Some(source.into());
        p.source_version = source_version.map(String::from);
        p
    }

    fn rpm(name: &str, version: &str, arch: &str) -> Package {
        Package {
            manager: "rpm".into(),
            arch: arch.into(),
            ..deb(name, version)
        }
    }

    fn host(os_id: &str, version: &str, kernel: &str) -> Host {
        Host {
            os_id: os_id.into(),
            os_version: version.into(),
            kernel: kernel.into(),
        }
    }

    fn bookworm() -> Host {
        host("debian", "12", "6.1.0-13-amd64")
    }

    fn advisory(id: &str, affected: Vec<Affected>) -> Advisory {
        Advisory {
            id: id.into(),
            cves: if id.starts_with("CVE-") {
                vec![id.into()]
            } else {
                vec![]
            },
            summary: format!("{id} summary"),
            cvss_score: None,
            cvss_vector: None,
            severity: None,
            published: None,
            affected,
        }
    }

    fn debian(release: &str, package: &str, status: AffectedStatus) -> Affected {
        Affected {
            ecosystem: Ecosystem::Debian,
            release: release.into(),
            package: package.into(),
            source_package: true,
            status,
        }
    }

    fn fixed(v: &str) -> AffectedStatus {
        AffectedStatus::Fixed {
            fixed: v.into(),
            introduced: None,
        }
    }

    fn unfixed() -> AffectedStatus {
        AffectedStatus::Unfixed { introduced: None }
    }

    fn run(advs: &[Advisory], h: &Host, pkgs: &[Package]) -> Vec<Finding> {
        Matcher::new(advs).match_host(h, pkgs)
    }

    fn keys(f: &[Finding]) -> Vec<(&str, &str, Option<&str>)> {
        f.iter()
            .map(|f| {
                (
                    f.cve.as_str(),
                    f.package.as_str(),
                    f.fixed_version.as_deref(),
                )
            })
            .collect()
    }

    #[test]
    fn fixed_in_a_newer_version_is_a_finding_with_a_fix_command() {
        let mut a = advisory(
            "CVE-2023-5678",
            vec![debian("12", "openssl", fixed("3.0.13-1~deb12u1"))],
        );
        a.cvss_score = Some(7.5);
        let f = run(&[a], &bookworm(), &[deb("openssl", "3.0.11-1~deb12u2")]);
        assert_eq!(
            f,
            [Finding {
                advisory_id: "CVE-2023-5678".into(),
                cve: "CVE-2023-5678".into(),
                package: "openssl".into(),
                source_package: Some("openssl".into()),
                installed_version: "3.0.11-1~deb12u2".into(),
                fixed_version: Some("3.0.13-1~deb12u1".into()),
                cvss_score: Some(7.5),
                severity: Severity::High,
                summary: "CVE-2023-5678 summary".into(),
                fix_command: Some("apt-get install --only-upgrade -y openssl".into()),
                restart: Restart::Service,
            }]
        );
    }

    #[test]
    fn fixed_in_an_older_or_equal_version_is_no_finding() {
        let a = advisory(
            "CVE-1",
            vec![debian("12", "curl", fixed("7.88.1-10+deb12u4"))],
        );
        assert!(
            run(
                std::slice::from_ref(&a),
                &bookworm(),
                &[deb("curl", "7.88.1-10+deb12u5")]
            )
            .is_empty()
        );
        assert!(run(&[a], &bookworm(), &[deb("curl", "7.88.1-10+deb12u4")]).is_empty());
    }

    #[test]
    fn other_releases_and_distributions_do_not_match() {
        let a = advisory("CVE-1", vec![debian("11", "curl", fixed("9.0-1"))]);
        assert!(
            run(
                std::slice::from_ref(&a),
                &bookworm(),
                &[deb("curl", "7.0-1")]
            )
            .is_empty()
        );
        let bullseye = host("debian", "11", "");
        assert_eq!(
            run(std::slice::from_ref(&a), &bullseye, &[deb("curl", "7.0-1")]).len(),
            1
        );
        assert!(
            run(
                std::slice::from_ref(&a),
                &host("ubuntu", "22.04", ""),
                &[deb("curl", "7.0-1")]
            )
            .is_empty()
        );
        assert!(run(&[a], &host("gentoo", "2.14", ""), &[deb("curl", "7.0-1")]).is_empty());
    }

    #[test]
    fn not_affected_gives_no_finding_and_unfixed_gives_one_without_a_fix() {
        let advs = [
            advisory(
                "CVE-1",
                vec![debian("12", "a", AffectedStatus::NotAffected)],
            ),
            advisory("CVE-2", vec![debian("12", "b", unfixed())]),
        ];
        let f = run(&advs, &bookworm(), &[deb("a", "1.0-1"), deb("b", "1.0-1")]);
        assert_eq!(keys(&f), [("CVE-2", "b", None)]);
        assert_eq!(f[0].fix_command, None);
        assert_eq!(f[0].severity, Severity::Medium, "no CVSS, no label");
    }

    #[test]
    fn introduced_bounds_the_range_from_below() {
        let st = |introduced: &str| AffectedStatus::Fixed {
            fixed: "2.0-1".into(),
            introduced: Some(introduced.into()),
        };
        let advs = [advisory("CVE-1", vec![debian("12", "a", st("1.5-1"))])];
        assert!(run(&advs, &bookworm(), &[deb("a", "1.0-1")]).is_empty());
        assert_eq!(run(&advs, &bookworm(), &[deb("a", "1.5-1")]).len(), 1);
        let advs = [advisory(
            "CVE-1",
            vec![debian(
                "12",
                "a",
                AffectedStatus::Unfixed {
                    introduced: Some("1.5-1".into()),
                },
            )],
        )];
        assert!(run(&advs, &bookworm(), &[deb("a", "1.0-1")]).is_empty());
        assert_eq!(run(&advs, &bookworm(), &[deb("a", "3.0-1")]).len(), 1);
    }

    #[test]
    fn binary_packages_match_through_their_source_and_source_version() {
        // bsdutils 1:2.38.1-5+b1 is a binNMU of util-linux 2.38.1-5: the binary's epoch and
        // +b1 must not hide that the source is older than the fix.
        let advs = [advisory(
            "CVE-2024-28085",
            vec![debian("12", "util-linux", fixed("2.38.1-5+deb12u1"))],
        )];
        let bsdutils = from_source(
            deb("bsdutils", "1:2.38.1-5+b1"),
            "util-linux",
            Some("2.38.1-5"),
        );
        let libblkid = from_source(
            deb("libblkid1", "2.38.1-5+b1"),
            "util-linux",
            Some("2.38.1-5"),
        );
        let fixed_one = from_source(deb("libmount1", "2.38.1-5+deb12u1"), "util-linux", None);
        let unrelated = deb("bash", "5.2.15-2+b2");
        let f = run(
            &advs,
            &bookworm(),
            &[bsdutils, libblkid, fixed_one, unrelated],
        );
        assert_eq!(
            keys(&f),
            [
                ("CVE-2024-28085", "bsdutils", Some("2.38.1-5+deb12u1")),
                ("CVE-2024-28085", "libblkid1", Some("2.38.1-5+deb12u1")),
            ]
        );
        assert_eq!(
            f[0].installed_version, "1:2.38.1-5+b1",
            "the binary's own version is shown"
        );
        assert_eq!(f[0].source_package.as_deref(), Some("util-linux"));
        assert_eq!(
            f[0].fix_command.as_deref(),
            Some("apt-get install --only-upgrade -y bsdutils")
        );
        assert_eq!(
            (f[0].restart, f[1].restart),
            (Restart::None, Restart::Service)
        );
    }

    #[test]
    fn source_version_without_a_differing_source_name_is_still_used() {
        // dpkg: `Package: openssl`, `Source: openssl (3.0.11-1~deb12u1)`, Version 3.0.11-1~deb12u2
        // — the collector keeps the source version and drops the same-name source.
        let advs = [advisory(
            "CVE-1",
            vec![debian("12", "openssl", fixed("3.0.11-1~deb12u2"))],
        )];
        let mut p = deb("openssl", "3.0.11-1~deb12u2");
        p.source_version = Some("3.0.11-1~deb12u1".into());
        assert_eq!(run(&advs, &bookworm(), &[p]).len(), 1);
    }

    #[test]
    fn only_the_running_kernel_is_matched() {
        let advs = [advisory(
            "CVE-2024-1086",
            vec![debian("12", "linux", fixed("6.1.76-1"))],
        )];
        let image = |abi: &str, v: &str| {
            from_source(
                deb(&format!("linux-image-{abi}-amd64"), v),
                "linux-signed-amd64",
                Some("6.1.55+1"),
            )
        };
        let pkgs = [
            image("6.1.0-13", "6.1.55-1"),
            image("6.1.0-12", "6.1.52-1"),
            from_source(
                deb("linux-headers-6.1.0-13-amd64", "6.1.55-1"),
                "linux",
                None,
            ),
            from_source(
                deb("linux-image-amd64", "6.1.55-1"),
                "linux-signed-amd64",
                Some("6.1.55+1"),
            ),
            from_source(deb("linux-libc-dev", "6.1.55-1"), "linux", None),
        ];
        let f = run(&advs, &bookworm(), &pkgs);
        assert_eq!(
            keys(&f),
            [
                (
                    "CVE-2024-1086",
                    "linux-headers-6.1.0-13-amd64",
                    Some("6.1.76-1")
                ),
                (
                    "CVE-2024-1086",
                    "linux-image-6.1.0-13-amd64",
                    Some("6.1.76-1")
                ),
                ("CVE-2024-1086", "linux-libc-dev", Some("6.1.76-1")),
            ],
            "the older 6.1.0-12 image and the metapackage give nothing"
        );
        let image = f
            .iter()
            .find(|f| f.package.starts_with("linux-image"))
            .unwrap();
        assert_eq!(image.source_package.as_deref(), Some("linux"));
        assert_eq!(image.restart, Restart::Reboot);
        assert_eq!(
            image.fix_command.as_deref(),
            Some("apt-get install --only-upgrade -y linux-image-amd64"),
            "a new ABI comes through the metapackage"
        );

        // Booted into the old kernel: that one is what counts.
        let old = host("debian", "12", "6.1.0-12-amd64");
        let f = run(&advs, &old, &pkgs);
        assert!(f.iter().any(|f| f.package == "linux-image-6.1.0-12-amd64"));
        assert!(!f.iter().any(|f| f.package == "linux-image-6.1.0-13-amd64"));
    }

    #[test]
    fn rpm_kernels_match_on_version_release_arch() {
        let rh = |pkg: &str, fixed_v: &str| Affected {
            ecosystem: Ecosystem::AlmaLinux,
            release: "9".into(),
            package: pkg.into(),
            source_package: false,
            status: fixed(fixed_v),
        };
        let advs = [advisory(
            "ALSA-2024:0001",
            vec![
                rh("kernel-core", "5.14.0-362.18.1.el9_3"),
                rh("openssl-libs", "1:3.0.7-25.el9_3"),
            ],
        )];
        let h = host("almalinux", "9.3", "5.14.0-362.8.1.el9_3.x86_64");
        let pkgs = [
            rpm("kernel-core", "5.14.0-362.8.1.el9_3", "x86_64"),
            rpm("kernel-core", "5.14.0-284.11.1.el9_2", "x86_64"),
            rpm("openssl-libs", "1:3.0.7-24.el9", "x86_64"),
            deb("openssl-libs", "0.1-1"),
        ];
        let f = run(&advs, &h, &pkgs);
        assert_eq!(f.len(), 2, "{f:#?}");
        let k = f.iter().find(|f| f.package == "kernel-core").unwrap();
        assert_eq!(k.installed_version, "5.14.0-362.8.1.el9_3");
        assert_eq!(
            k.cve, "ALSA-2024:0001",
            "no CVE named: the advisory id stands in"
        );
        assert_eq!(k.source_package, None);
        assert_eq!(k.fix_command.as_deref(), Some("dnf upgrade -y kernel-core"));
        assert_eq!(k.restart, Restart::Reboot);
        let o = f.iter().find(|f| f.package == "openssl-libs").unwrap();
        assert_eq!(o.restart, Restart::Service);
        // The epoch decides: 1:3.0.7-24 < 1:3.0.7-25, and a fix without epoch would be older.
        assert_eq!(o.fixed_version.as_deref(), Some("1:3.0.7-25.el9_3"));

        // Rocky advisories do not apply to AlmaLinux, nor Red Hat's to Rocky.
        assert!(run(&advs, &host("rocky", "9.3", ""), &pkgs).is_empty());
    }

    #[test]
    fn one_finding_per_cve_and_package_keeping_the_highest_cvss() {
        let mut tracker = advisory("CVE-2024-1", vec![debian("12", "curl", unfixed())]);
        tracker.cvss_score = None;
        tracker.severity = Some(Severity::Low);
        let mut dsa = advisory("DSA-9-1", vec![debian("12", "curl", fixed("8.0-1"))]);
        dsa.cves = vec!["CVE-2024-1".into(), "CVE-2024-2".into()];
        dsa.cvss_score = Some(9.8);
        let mut low = advisory("DLA-1-1", vec![debian("12", "curl", fixed("9.0-1"))]);
        low.cves = vec!["CVE-2024-2".into()];
        low.cvss_score = Some(3.1);
        let pkgs = [
            from_source(deb("curl", "7.88.1-10"), "curl", None),
            from_source(deb("libcurl4", "7.88.1-10"), "curl", None),
        ];
        let f = run(&[tracker, dsa, low], &bookworm(), &pkgs);
        assert_eq!(f.len(), 4, "2 CVEs x 2 binary packages: {f:#?}");
        assert!(
            f.iter()
                .all(|f| f.advisory_id == "DSA-9-1" && f.cvss_score == Some(9.8))
        );
        assert!(f.iter().all(|f| f.severity == Severity::Critical));
    }

    #[test]
    fn severity_falls_back_to_the_feed_label() {
        let mut a = advisory("CVE-1", vec![debian("12", "a", unfixed())]);
        a.severity = Some(Severity::High);
        let f = run(&[a], &bookworm(), &[deb("a", "1-1")]);
        assert_eq!((f[0].cvss_score, f[0].severity), (None, Severity::High));
    }

    #[test]
    fn findings_are_sorted_most_severe_first() {
        let mut advs = Vec::new();
        for (id, score) in [("CVE-1", 4.0), ("CVE-2", 9.1), ("CVE-3", 7.2)] {
            let mut a = advisory(id, vec![debian("12", "a", unfixed())]);
            a.cvss_score = Some(score);
            advs.push(a);
        }
        let f = run(&advs, &bookworm(), &[deb("a", "1-1")]);
        let cves: Vec<&str> = f.iter().map(|f| f.cve.as_str()).collect();
        assert_eq!(cves, ["CVE-2", "CVE-3", "CVE-1"]);
    }

    #[test]
    fn ubuntu_signed_kernels_map_to_their_unsigned_source() {
        let advs = [advisory(
            "CVE-2024-9",
            vec![Affected {
                ecosystem: Ecosystem::Ubuntu,
                release: "22.04".into(),
                package: "linux-hwe-6.5".into(),
                source_package: true,
                status: fixed("6.5.0-17.17~22.04.1"),
            }],
        )];
        let img = from_source(
            deb("linux-image-6.5.0-14-generic", "6.5.0-14.14~22.04.1"),
            "linux-signed-hwe-6.5",
            None,
        );
        let h = host("ubuntu", "22.04", "6.5.0-14-generic");
        let f = run(&advs, &h, &[img]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].source_package.as_deref(), Some("linux-hwe-6.5"));
    }

    #[test]
    fn restart_and_fix_command_rules() {
        let r = |n: &str| restart(&deb(n, "1"), false);
        assert_eq!(r("libc6"), Restart::Reboot);
        assert_eq!(r("glibc"), Restart::Reboot);
        assert_eq!(r("systemd"), Restart::Reboot);
        assert_eq!(r("libssl3"), Restart::Service);
        assert_eq!(r("openssl"), Restart::Service);
        assert_eq!(r("krb5-libs"), Restart::Service);
        assert_eq!(r("vim"), Restart::None);
        assert_eq!(
            restart(&rpm("kernel", "1", "x86_64"), true),
            Restart::Reboot
        );

        assert_eq!(
            fix_command(Scheme::Deb, &deb("a;rm -rf /", "1"), false, &[]),
            None
        );
        assert_eq!(
            fix_command(Scheme::Deb, &deb("-o=x", "1"), false, &[]),
            None
        );
        assert_eq!(
            fix_command(
                Scheme::Rpm,
                &rpm("python3.11-libs", "1", "x86_64"),
                false,
                &[]
            )
            .as_deref(),
            Some("dnf upgrade -y python3.11-libs")
        );
    }

    #[test]
    fn alpine_hosts_match_nothing_until_an_apk_collector_exists() {
        let a = advisory(
            "CVE-1",
            vec![Affected {
                ecosystem: Ecosystem::Alpine,
                release: "3.18".into(),
                package: "openssl".into(),
                source_package: false,
                status: unfixed(),
            }],
        );
        let mut apk = deb("openssl", "3.1.4-r0");
        apk.manager = "apk".into();
        assert!(run(&[a], &host("alpine", "3.18.4", ""), &[apk]).is_empty());
    }

    #[test]
    fn tracker_feed_end_to_end() {
        let text = r#"{"util-linux": {"CVE-2024-28085": {"description": "wall: escape sequences", "releases": {
            "bookworm": {"status": "resolved", "fixed_version": "2.38.1-5+deb12u1", "urgency": "medium"},
            "bullseye": {"status": "open", "urgency": "low"},
            "trixie": {"status": "resolved", "fixed_version": "0"}}}}}"#;
        let (advs, skipped) = parse_debian_tracker(text, "t").unwrap();
        assert!(skipped.is_empty());
        let m = Matcher::new(&advs);
        let p = [from_source(
            deb("bsdutils", "1:2.38.1-5+b1"),
            "util-linux",
            Some("2.38.1-5"),
        )];
        let f = m.match_host(&bookworm(), &p);
        assert_eq!(
            keys(&f),
            [("CVE-2024-28085", "bsdutils", Some("2.38.1-5+deb12u1"))]
        );
        assert_eq!(
            (f[0].severity, f[0].summary.as_str()),
            (Severity::Medium, "wall: escape sequences")
        );
        let f = m.match_host(&host("debian", "11", ""), &p);
        assert_eq!(keys(&f), [("CVE-2024-28085", "bsdutils", None)]);
        assert!(m.match_host(&host("debian", "13", ""), &p).is_empty());
    }

    #[test]
    fn advisories_round_trip_as_json() {
        let (advs, _) = parse_debian_tracker(
            r#"{"a": {"CVE-1": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "1-2"}, "sid": {"status": "resolved", "fixed_version": "0"}}}}}"#,
            "t",
        )
        .unwrap();
        let text = serde_json::to_string(&advs).unwrap();
        assert!(text.contains(r#""ecosystem":"Debian""#), "{text}");
        assert!(
            text.contains(r#""status":{"state":"fixed","fixed":"1-2","introduced":null}"#),
            "{text}"
        );
        let back: Vec<Advisory> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, advs);
    }
}
