//! Installed packages: the dpkg database, parsed directly so no dpkg is needed, and, where an rpm
//! database and an `rpm` binary exist, `rpm -qa` (the rpm database is a Berkeley DB, SQLite or
//! NDB file depending on the release; only rpm itself reads all of them).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostward_proto::inventory::{CollectIssue, Items, Package};

use super::{Collected, Ctx};

const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const DPKG_INFO: &str = "/var/lib/dpkg/info";
const RPM_DB: &str = "/var/lib/rpm";

/// Tab-separated so that values with spaces (vendors) survive; [`parse_rpm_qa`] reads it.
const RPM_QUERY_FORMAT: &str =
    "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{VENDOR}\t%{INSTALLTIME}\n";

/// rpm waits for a database lock held by a running yum or dnf; the inventory must not wait
/// with it.
const RPM_TIMEOUT: Duration = Duration::from_secs(120);

pub fn collect(ctx: &Ctx) -> Collected {
    let mut issues = Vec::new();
    let mut packages = dpkg(ctx, &mut issues);
    packages.extend(rpm(ctx, &mut issues));
    // Items are keyed by name and architecture and the first of a key is kept; rpm can hold
    // several versions of one (kernels), so the newest install comes first.
    packages.sort_by(|a, b| {
        (&a.name, &a.arch)
            .cmp(&(&b.name, &b.arch))
            .then(b.install_time.cmp(&a.install_time))
    });
    Collected {
        items: Items::Software(packages),
        issues,
    }
}

fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn dpkg(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Vec<Package> {
    let Some(text) = ctx.read_text(DPKG_STATUS, issues) else {
        return Vec::new();
    };
    let mut packages = parse_dpkg_status(&text, issues);
    for p in &mut packages {
        // dpkg keeps no install date; the file list is written when the package is unpacked.
        let lists = [
            format!("{DPKG_INFO}/{}:{}.list", p.name, p.arch),
            format!("{DPKG_INFO}/{}.list", p.name),
        ];
        p.install_time = lists
            .iter()
            .find_map(|l| std::fs::metadata(ctx.path(l)).ok())
            .map(|m| m.mtime());
    }
    packages
}

/// One stanza of the status file: its first line and its single-line fields.
struct Stanza {
    line: u32,
    fields: Vec<(String, String)>,
}

impl Stanza {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Installed packages of a dpkg status file (deb822 stanzas), without install times.
fn parse_dpkg_status(text: &str, issues: &mut Vec<CollectIssue>) -> Vec<Package> {
    let issue = |line: u32, msg: String| CollectIssue {
        file: DPKG_STATUS.to_string(),
        line: Some(line),
        message: msg,
    };
    let mut lines: Vec<&str> = text.lines().collect();
    // dpkg ends every line with a newline; without one the last line may have lost its tail,
    // so its value cannot be trusted.
    if !text.is_empty() && !text.ends_with('\n') {
        lines.pop();
        let msg = "the file ends mid-line (truncated?)".to_string();
        issues.push(issue(line_no(lines.len()), msg));
    }

    let mut stanzas = Vec::new();
    let mut current: Option<Stanza> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = line_no(i);
        if line.trim().is_empty() {
            stanzas.extend(current.take());
            continue;
        }
        let stanza = current.get_or_insert_with(|| Stanza {
            line: n,
            fields: Vec::new(),
        });
        if line.starts_with([' ', '\t']) {
            // Continuations only extend multi-line fields (Description, Conffiles), which the
            // inventory does not use.
            if stanza.fields.is_empty() {
                issues.push(issue(n, "continuation line outside a field".into()));
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if valid_field_name(name) => stanza
                .fields
                .push((name.to_string(), value.trim().to_string())),
            _ => issues.push(issue(n, "not a `Field: value` line".into())),
        }
    }
    stanzas.extend(current);

    let mut packages = Vec::new();
    for s in stanzas.iter().filter(|s| !s.fields.is_empty()) {
        match dpkg_package(s) {
            Ok(Some(p)) => packages.push(p),
            Ok(None) => {}
            Err(msg) => issues.push(issue(s.line, msg)),
        }
    }
    packages
}

/// The package an installed stanza describes; `None` for any other state.
fn dpkg_package(s: &Stanza) -> Result<Option<Package>, String> {
    let name = s.get("Package").ok_or("stanza without a Package field")?;
    if !valid_deb_name(name) {
        return Err("the Package field is not a valid package name".into());
    }
    let status = s
        .get("Status")
        .ok_or_else(|| format!("package {name}: no Status field"))?;
    let words: Vec<&str> = status.split_whitespace().collect();
    if !matches!(words.as_slice(), ["install" | "hold", "ok", "installed"]) {
        return Ok(None);
    }
    let version = s
        .get("Version")
        .ok_or_else(|| format!("package {name}: no Version field"))?;
    if !valid_deb_version(version) {
        return Err(format!("package {name}: invalid Version"));
    }
    let arch = s.get("Architecture").unwrap_or_default();
    if !arch
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("package {name}: invalid Architecture"));
    }
    // `Source: openssl (3.0.11-1)` names a source whose version differs from the binary's.
    let (source, source_version) = match s.get("Source").map(|src| src.split_once(' ')) {
        None => (None, None),
        Some(None) => (s.get("Source"), None),
        Some(Some((n, v))) => {
            let v = v.trim().strip_prefix('(').and_then(|v| v.strip_suffix(')'));
            let v = v.filter(|v| valid_deb_version(v) && *v != version);
            (Some(n), v)
        }
    };
    let source = source.filter(|src| *src != name).map(String::from);
    let source_version = source_version.map(String::from);
    Ok(Some(Package {
        manager: "dpkg".into(),
        name: name.into(),
        version: version.into(),
        arch: arch.into(),
        source,
        source_version,
        vendor: s.get("Origin").or(s.get("Maintainer")).map(String::from),
        install_time: None,
    }))
}

fn valid_field_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('#') && name.chars().all(|c| c.is_ascii_graphic())
}

/// Debian policy 5.6.1; the check also keeps names safe to put in a path.
fn valid_deb_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Debian policy 5.6.12's character set. Its "should start with a digit" is not enforced:
/// dpkg only warns about it, and such packages are still installed.
fn valid_deb_version(version: &str) -> bool {
    version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c))
}

fn rpm(ctx: &Ctx, issues: &mut Vec<CollectIssue>) -> Vec<Package> {
    let db = ctx.path(RPM_DB);
    if !db.is_dir() {
        return Vec::new();
    }
    let Some(rpm) = find_on_path("rpm") else {
        return Vec::new();
    };
    let (output, error) = run_rpm(&rpm, &db);
    if let Some(e) = error {
        issues.push(ctx.issue(RPM_DB, None, e));
    }
    let (packages, parse_issues) = parse_rpm_qa(&output);
    issues.extend(parse_issues);
    packages
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs the query; returns its output (possibly partial) and what went wrong, if anything.
fn run_rpm(rpm: &Path, db: &Path) -> (String, Option<String>) {
    let child = Command::new(rpm)
        .arg("--dbpath")
        .arg(db)
        .args(["-qa", "--qf", RPM_QUERY_FORMAT])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (String::new(), Some(format!("cannot run rpm: {e}"))),
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + RPM_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            waited => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(match waited {
                    Err(e) => format!("cannot wait for rpm: {e}"),
                    _ => format!(
                        "rpm -qa did not finish in {} s and was stopped",
                        RPM_TIMEOUT.as_secs()
                    ),
                });
            }
        }
    };
    let output = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let error = match status {
        Ok(s) if s.success() => None,
        Ok(s) => {
            let why = stderr.lines().next().unwrap_or("").trim();
            Some(format!("rpm -qa failed ({s}): {why}"))
        }
        Err(e) => Some(e),
    };
    (output, error)
}

/// Reads a child's pipe to the end on its own thread, so that a full pipe cannot stall the child
/// while it is waited for.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Parses `rpm -qa --qf` output in [`RPM_QUERY_FORMAT`]. Issues name the rpm database and the
/// output line.
pub fn parse_rpm_qa(text: &str) -> (Vec<Package>, Vec<CollectIssue>) {
    let mut packages = Vec::new();
    let mut issues = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut issue = |msg: String| {
            issues.push(CollectIssue {
                file: RPM_DB.to_string(),
                line: Some(line_no(i)),
                message: format!("rpm -qa output: {msg}"),
            })
        };
        let f: Vec<&str> = line.split('\t').collect();
        let &[
            name,
            epoch,
            version,
            release,
            arch,
            source_rpm,
            vendor,
            installed,
        ] = f.as_slice()
        else {
            issue(format!(
                "expected 8 tab-separated fields, found {}",
                f.len()
            ));
            continue;
        };
        let Some(name) = set(name).filter(|n| valid_rpm_word(n)) else {
            issue("invalid package name".into());
            continue;
        };
        // Imported signing keys show up as packages; they are not software.
        if name == "gpg-pubkey" {
            continue;
        }
        let (Some(version), Some(release)) = (set(version), set(release)) else {
            issue(format!("package {name}: no version or release"));
            continue;
        };
        if !valid_rpm_word(version) || !valid_rpm_word(release) {
            issue(format!("package {name}: invalid version or release"));
            continue;
        }
        let version = match set(epoch) {
            None | Some("0") => format!("{version}-{release}"),
            Some(e) if e.chars().all(|c| c.is_ascii_digit()) => {
                format!("{e}:{version}-{release}")
            }
            Some(_) => {
                issue(format!("package {name}: invalid epoch"));
                continue;
            }
        };
        let install_time = match set(installed).map(str::parse::<i64>) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                issue(format!("package {name}: invalid install time"));
                None
            }
        };
        packages.push(Package {
            manager: "rpm".into(),
            name: name.into(),
            version,
            arch: set(arch).unwrap_or_default().into(),
            source: set(source_rpm)
                .map(source_rpm_name)
                .filter(|s| *s != name)
                .map(String::from),
            source_version: None,
            vendor: set(vendor).map(String::from),
            install_time,
        });
    }
    (packages, issues)
}

/// rpm prints `(none)` for an unset tag.
fn set(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty() && *v != "(none)")
}

fn valid_rpm_word(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == char::REPLACEMENT_CHARACTER)
}

/// `openssl-3.0.7-24.el9.src.rpm` → `openssl`: the name before version and release.
fn source_rpm_name(file: &str) -> &str {
    let base = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))
        .unwrap_or(file);
    let mut parts = base.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_release), Some(_version), Some(name)) if !name.is_empty() => name,
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::collect::HashCache;
    use hostward_proto::inventory::InventoryPolicy;

    fn write(root: &Path, host_path: &str, bytes: impl AsRef<[u8]>) {
        let p = root.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn run(root: &Path) -> (Vec<Package>, Vec<CollectIssue>) {
        let c = collect(&Ctx {
            root,
            policy: &InventoryPolicy::default(),
            hashes: &HashCache::default(),
        });
        match c.items {
            Items::Software(p) => (p, c.issues),
            other => panic!("wrong kind: {other:?}"),
        }
    }

    fn get<'a>(packages: &'a [Package], name: &str) -> &'a Package {
        packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no package {name} in {packages:?}"))
    }

    const STATUS: &str = "\
Package: zlib1g
Status: install ok installed
Priority: required
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.

Package: openssl
Status: hold ok installed
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Source: openssl (3.0.11-1~deb12u1)
Version: 3.0.11-1~deb12u2
Origin: Debian

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: gone
Status: purge ok not-installed
Architecture: amd64

Package: adduser
Status: install ok installed
Architecture: all
Source: adduser
Version: 3.134
";

    #[test]
    fn parses_installed_dpkg_packages_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), DPKG_STATUS, STATUS);
        write(dir.path(), "/var/lib/dpkg/info/zlib1g:amd64.list", "/.\n");
        write(dir.path(), "/var/lib/dpkg/info/adduser.list", "/.\n");
        let list_mtime = std::fs::metadata(dir.path().join("var/lib/dpkg/info/adduser.list"))
            .unwrap()
            .mtime();

        let (packages, issues) = run(dir.path());
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["adduser", "openssl", "zlib1g"], "sorted, installed");

        let z = get(&packages, "zlib1g");
        assert_eq!(z.manager, "dpkg");
        assert_eq!(z.version, "1:1.2.13.dfsg-1");
        assert_eq!(z.arch, "amd64");
        assert_eq!(z.source.as_deref(), Some("zlib"));
        assert_eq!(z.vendor.as_deref(), Some("Mark Brown <broonie@debian.org>"));
        assert!(z.install_time.is_some_and(|t| t > 0));

        let o = get(&packages, "openssl");
        assert_eq!(o.version, "3.0.11-1~deb12u2");
        assert_eq!(o.source, None, "source version stripped, same name");
        assert_eq!(o.source_version.as_deref(), Some("3.0.11-1~deb12u1"));
        assert_eq!(o.vendor.as_deref(), Some("Debian"), "Origin preferred");
        assert_eq!(o.install_time, None, "no file list");

        let a = get(&packages, "adduser");
        assert_eq!((a.arch.as_str(), a.source.as_deref()), ("all", None));
        assert_eq!(a.vendor, None);
        assert_eq!(a.install_time, Some(list_mtime));
    }

    #[test]
    fn truncated_status_keeps_complete_stanzas() {
        let dir = tempfile::tempdir().unwrap();
        let cut = format!(
            "{STATUS}\n\
             Package: halfdone\n\
             Status: install ok installed\n\
             Architecture: amd64\n\
             Version: 2.0\n\
             Description: cut in the mid"
        );
        write(dir.path(), DPKG_STATUS, &cut);
        let (packages, issues) = run(dir.path());
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["adduser", "halfdone", "openssl", "zlib1g"]);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].file, "/var/lib/dpkg/status");
        assert_eq!(issues[0].line, Some(cut.lines().count() as u32));

        // Cut before the Version: the stanza is lost, and said so at its first line.
        let cut = format!("{STATUS}\nPackage: broken\nStatus: install ok installed\nArchit");
        write(dir.path(), DPKG_STATUS, &cut);
        let (packages, issues) = run(dir.path());
        assert_eq!(packages.len(), 3);
        let first = STATUS.lines().count() as u32 + 2;
        let lines: Vec<Option<u32>> = issues.iter().map(|i| i.line).collect();
        assert_eq!(lines, [Some(first + 2), Some(first)], "{issues:?}");
        assert!(issues[1].message.contains("broken"), "{}", issues[1]);
        assert!(issues.iter().all(|i| i.file == "/var/lib/dpkg/status"));
    }

    #[test]
    fn bad_stanzas_cost_only_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = b"Package: noversion\nStatus: install ok installed\nArchitecture: amd64\n\n\
                         Status: install ok installed\nVersion: 1\n\n\
                         Package: nostatus\nVersion: 1\n\n"
            .to_vec();
        text.extend_from_slice(b"\xff\xfe\x00garbage\n\x89PNG\r\n\x1a\n\n");
        text.extend_from_slice(
            b"Package: bin\xffary\nStatus: install ok installed\nVersion: 1\n\n",
        );
        text.extend_from_slice(b"Package: badver\nStatus: install ok installed\nVersion: 1 2\n\n");
        text.extend_from_slice(STATUS.as_bytes());
        write(dir.path(), DPKG_STATUS, &text);
        let (packages, issues) = run(dir.path());
        assert_eq!(packages.len(), 3, "{packages:?}");
        let lines: Vec<Option<u32>> = issues.iter().map(|i| i.line).collect();
        assert_eq!(
            lines,
            [
                Some(11),
                Some(12),
                Some(13),
                Some(1),
                Some(5),
                Some(8),
                Some(15),
                Some(19)
            ],
            "{issues:?}"
        );
        assert!(issues[3].message.contains("Version"), "{}", issues[3]);
        assert!(issues.iter().all(|i| i.file == "/var/lib/dpkg/status"));
    }

    #[test]
    fn missing_databases_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (packages, issues) = run(dir.path());
        assert!(packages.is_empty());
        assert!(issues.is_empty());
    }

    #[test]
    fn parses_rpm_query_output() {
        let text = "\
openssl-libs\t1\t3.0.7\t24.el9\tx86_64\topenssl-3.0.7-24.el9.src.rpm\tRed Hat, Inc.\t1700000000
bash\t(none)\t5.1.8\t6.el9_1\tx86_64\tbash-5.1.8-6.el9_1.src.rpm\tRed Hat, Inc.\t1690000000
tzdata\t0\t2023c\t1.el9\tnoarch\t(none)\t(none)\t(none)
gpg-pubkey\t(none)\tfd431d51\t4ae0493b\t(none)\t(none)\t(none)\t1690000000
short\tline
\t(none)\t1\t1\tx86_64\t(none)\t(none)\t1
noversion\t(none)\t(none)\t(none)\tx86_64\t(none)\t(none)\t1
badepoch\tx\t1\t1\tx86_64\t(none)\t(none)\t1
badtime\t(none)\t1\t1\tx86_64\t(none)\t(none)\tyesterday
";
        let (packages, issues) = parse_rpm_qa(text);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openssl-libs", "bash", "tzdata", "badtime"]);

        let o = &packages[0];
        assert_eq!(o.manager, "rpm");
        assert_eq!(o.version, "1:3.0.7-24.el9");
        assert_eq!(o.arch, "x86_64");
        assert_eq!(o.source.as_deref(), Some("openssl"));
        assert_eq!(o.vendor.as_deref(), Some("Red Hat, Inc."));
        assert_eq!(o.install_time, Some(1_700_000_000));

        let b = &packages[1];
        assert_eq!(b.version, "5.1.8-6.el9_1");
        assert_eq!(b.source, None, "same name as the package");

        let t = &packages[2];
        assert_eq!(t.version, "2023c-1.el9", "epoch 0 dropped");
        assert_eq!((t.source.clone(), t.vendor.clone()), (None, None));
        assert_eq!(t.install_time, None);

        assert_eq!(packages[3].install_time, None);
        let lines: Vec<Option<u32>> = issues.iter().map(|i| i.line).collect();
        assert_eq!(lines, [Some(5), Some(6), Some(7), Some(8), Some(9)]);
        assert!(issues.iter().all(|i| i.file == "/var/lib/rpm"));
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(source_rpm_name("openssl-3.0.7-24.el9.src.rpm"), "openssl");
        assert_eq!(source_rpm_name("xz-java-1.9-3.fc38.nosrc.rpm"), "xz-java");
        assert_eq!(source_rpm_name("odd"), "odd");
    }

    #[test]
    fn real_host_matches_dpkg_query() {
        let Ok(out) = Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Abbrev}\n"])
            .output()
        else {
            eprintln!("dpkg-query not installed; skipped");
            return;
        };
        assert!(out.status.success());
        // `ii`/`hi` with no error flag: installed or held, state ok.
        let expected = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("ii ") || l.starts_with("hi "))
            .count();
        let (packages, _) = run(Path::new("/"));
        let dpkg = packages.iter().filter(|p| p.manager == "dpkg").count();
        assert_eq!(dpkg, expected);
        assert!(expected > 0);
    }
}
