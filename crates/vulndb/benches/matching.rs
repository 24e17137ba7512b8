//! Matching 2,000 installed packages against 100,000 generated advisories (goal: ≤ 1 s).
//!
//! `cargo bench -p hostward-vulndb` prints one line per figure: Matcher::new build time,
//! match_host time (medians), peak RSS, Debian-tracker JSON import time of the same data, and
//! the same host scanned by Debian's `debsecan` (fed the same data offline through a file://
//! URL) when it is installed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use hostward_proto::inventory::Package;
use hostward_vulndb::{
    Advisory, Affected, AffectedStatus, Ecosystem, Host, Matcher, parse_debian_tracker,
};

const ADVISORIES: usize = 100_000;
const PACKAGES: usize = 2_000;
const SOURCES: usize = 12_000;

/// SplitMix64: deterministic, so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Debian 12 source packages that collect the most CVEs, in rough order; the rest of the
/// namespace is made of the shapes Debian names take (`python-x`, `libx-perl`, `golang-x`, ...).
const POPULAR: &[&str] = &[
    "linux",
    "chromium",
    "firefox-esr",
    "thunderbird",
    "openjdk-17",
    "webkit2gtk",
    "php8.2",
    "imagemagick",
    "qemu",
    "xen",
    "ffmpeg",
    "tiff",
    "binutils",
    "vim",
    "openssl",
    "curl",
    "glibc",
    "systemd",
    "util-linux",
    "openssh",
    "sudo",
    "bind9",
    "postgresql-15",
    "mariadb",
    "python3.11",
    "perl",
    "ruby3.1",
    "nodejs",
    "golang-1.19",
    "rustc",
    "git",
    "libxml2",
    "libxslt",
    "expat",
    "zlib",
    "xz-utils",
    "bzip2",
    "tar",
    "gnutls28",
    "nss",
    "krb5",
    "samba",
    "cups",
    "poppler",
    "ghostscript",
    "libreoffice",
    "gimp",
    "exim4",
    "postfix",
    "dovecot",
    "apache2",
    "nginx",
    "squid",
    "haproxy",
    "redis",
    "sqlite3",
    "libssh",
    "libssh2",
    "pam",
    "shadow",
    "dbus",
    "polkit-1",
    "bluez",
    "wpa",
    "avahi",
    "libx11",
    "xorg-server",
    "wayland",
    "mesa",
    "gst-plugins-base1.0",
    "gst-plugins-good1.0",
    "libvpx",
    "libwebp",
    "libpng1.6",
    "libjpeg-turbo",
    "freetype",
    "harfbuzz",
    "fontconfig",
    "cairo",
    "pango1.0",
    "gtk+3.0",
    "glib2.0",
    "gdk-pixbuf",
    "libsndfile",
    "pulseaudio",
    "pipewire",
    "openldap",
    "cyrus-sasl2",
    "libgcrypt20",
    "gnupg2",
    "libksba",
    "e2fsprogs",
    "lvm2",
    "cryptsetup",
    "grub2",
    "shim",
    "intel-microcode",
    "amd64-microcode",
    "firmware-nonfree",
    "ntp",
    "chrony",
    "rsync",
    "wget",
    "less",
    "busybox",
    "bash",
    "coreutils",
    "findutils",
    "grep",
    "sed",
    "gawk",
    "procps",
    "psmisc",
    "iproute2",
    "iptables",
    "nftables",
    "openvpn",
    "wireguard",
    "unbound",
    "dnsmasq",
    "libtasn1-6",
    "p11-kit",
    "ca-certificates",
    "tzdata",
    "libidn2",
    "pcre2",
    "pcre3",
    "jq",
    "libyaml",
    "libzip",
    "libarchive",
    "unzip",
    "zip",
    "file",
    "libmagic",
    "libcap2",
    "libseccomp",
    "apparmor",
    "libselinux",
    "audit",
    "rsyslog",
    "logrotate",
    "cron",
    "at",
    "man-db",
    "groff",
    "texinfo",
    "emacs",
    "nano",
    "screen",
    "tmux",
    "libevent",
    "c-ares",
    "nghttp2",
    "libuv1",
    "icu",
    "libunistring",
    "gmp",
    "mpfr4",
];

const WORDS: &[&str] = &[
    "yaml", "json", "xml", "http", "crypto", "image", "font", "audio", "video", "net", "async",
    "test", "data", "time", "zip", "mail", "auth", "cache", "config", "log", "term", "color",
    "parse", "regex", "uri", "socket", "ssl", "sql", "gtk", "qt", "dbus", "usb", "pdf", "svg",
    "png", "markdown", "template", "plugin", "signal", "thread", "pool",
];

fn source_name(i: usize) -> String {
    if let Some(n) = POPULAR.get(i) {
        return n.to_string();
    }
    let w = WORDS[i % WORDS.len()];
    let n = i / WORDS.len();
    match i % 7 {
        0 => format!("python-{w}{n}"),
        1 => format!("lib{w}{n}-perl"),
        2 => format!("golang-github-{w}{n}"),
        3 => format!("node-{w}{n}"),
        4 => format!("r-cran-{w}{n}"),
        5 => format!("lib{w}{n}"),
        _ => format!("{w}{n}-tools"),
    }
}

/// `3.0.11`, `1.2`, `2.38.1`
fn upstream(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("{}.{}", rng.below(10), rng.below(30)),
        1 => format!("{}.{}.{}", rng.below(10), rng.below(30), rng.below(20)),
        _ => format!("{}.{}.{}+dfsg", rng.below(5), rng.below(20), rng.below(10)),
    }
}

struct Source {
    name: String,
    /// bookworm's current version and its security-update counter (`+deb12uN`).
    up: String,
    rev: u64,
    deb12u: u64,
}

impl Source {
    fn version(&self, deb12u: u64) -> String {
        if deb12u == 0 {
            format!("{}-{}", self.up, self.rev)
        } else {
            format!("{}-{}+deb12u{deb12u}", self.up, self.rev)
        }
    }
}

const VECTORS: &[(&str, f64)] = &[
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", 5.5),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N", 2.5),
];

fn generate() -> (Vec<Advisory>, Vec<Package>, Host) {
    let mut rng = Rng(0x4057_7741_5244);
    let sources: Vec<Source> = (0..SOURCES)
        .map(|i| Source {
            name: source_name(i),
            up: upstream(&mut rng),
            rev: 1 + rng.below(6),
            deb12u: if rng.chance(30) { 1 + rng.below(4) } else { 0 },
        })
        .collect();

    // Installed: the popular sources, then others at random, 1-3 binaries each.
    let mut packages = Vec::with_capacity(PACKAGES);
    let host = Host {
        os_id: "debian".into(),
        os_version: "12".into(),
        kernel: "6.1.0-13-amd64".into(),
    };
    let pkg = |name: String, version: String, source: Option<(&str, Option<String>)>| Package {
        manager: "dpkg".into(),
        name,
        version,
        arch: "amd64".into(),
        source: source.as_ref().map(|s| s.0.to_string()),
        source_version: source.and_then(|s| s.1),
        vendor: None,
        install_time: None,
    };
    let linux = &sources[0];
    for abi in ["6.1.0-13", "6.1.0-12"] {
        let v = linux.version(linux.deb12u);
        for kind in ["image", "headers"] {
            packages.push(pkg(
                format!("linux-{kind}-{abi}-amd64"),
                v.clone(),
                Some(("linux", None)),
            ));
        }
    }
    packages.push(pkg(
        "linux-image-amd64".into(),
        linux.version(linux.deb12u),
        Some(("linux-signed-amd64", Some("6.1.55+1".into()))),
    ));
    let mut chosen: Vec<usize> = (1..POPULAR.len()).collect();
    while chosen.len() < 1_100 {
        let i = POPULAR.len() + rng.below((SOURCES - POPULAR.len()) as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    'fill: for &i in &chosen {
        let s = &sources[i];
        let v = s.version(s.deb12u);
        let bins = 1 + rng.below(3);
        for b in 0..bins {
            if packages.len() == PACKAGES {
                break 'fill;
            }
            packages.push(match b {
                0 => pkg(s.name.clone(), v.clone(), None),
                // A binNMU: the binary's version carries +b1, the source's does not.
                1 if rng.chance(20) => pkg(
                    format!("lib{}{}", s.name.trim_start_matches("lib"), rng.below(4)),
                    format!("{v}+b1"),
                    Some((&s.name, Some(v.clone()))),
                ),
                1 => pkg(
                    format!("lib{}{}", s.name.trim_start_matches("lib"), rng.below(4)),
                    v.clone(),
                    Some((&s.name, None)),
                ),
                _ => pkg(
                    format!("{}-common", s.name),
                    v.clone(),
                    Some((&s.name, None)),
                ),
            });
        }
    }
    while packages.len() < PACKAGES {
        let n = packages.len();
        packages.push(pkg(format!("extra-package-{n}"), "1.0-1".into(), None));
    }

    // Advisories: CVEs per source are heavily skewed (linux and browsers collect thousands).
    let mut advisories = Vec::with_capacity(ADVISORIES);
    for n in 0..ADVISORIES {
        let s = &sources[((SOURCES as f64) * rng.unit().powi(4)) as usize];
        let id = format!("CVE-{}-{}", 2014 + n % 11, 10_000 + n);
        let bookworm = match rng.below(100) {
            // Fixed long ago, in the version bookworm shipped or an earlier point update.
            0..=64 => AffectedStatus::Fixed {
                fixed: s.version(rng.below(s.deb12u + 1)),
                introduced: None,
            },
            // Fixed by a security update this host has not installed.
            65..=67 => AffectedStatus::Fixed {
                fixed: s.version(s.deb12u + 1),
                introduced: None,
            },
            68..=87 => AffectedStatus::NotAffected,
            _ => AffectedStatus::Unfixed { introduced: None },
        };
        let mut affected = vec![Affected {
            ecosystem: Ecosystem::Debian,
            release: "12".into(),
            package: s.name.clone(),
            source_package: true,
            status: bookworm,
        }];
        for (release, percent) in [("11", 70), ("13", 50), ("sid", 90)] {
            if rng.chance(percent) {
                affected.push(Affected {
                    ecosystem: Ecosystem::Debian,
                    release: release.into(),
                    package: s.name.clone(),
                    source_package: true,
                    status: if rng.chance(80) {
                        AffectedStatus::Fixed {
                            fixed: format!("{}-{}", upstream(&mut rng), 1 + rng.below(5)),
                            introduced: None,
                        }
                    } else {
                        AffectedStatus::Unfixed { introduced: None }
                    },
                });
            }
        }
        let (cvss_vector, cvss_score) = if rng.chance(70) {
            let (v, s) = VECTORS[rng.below(VECTORS.len() as u64) as usize];
            (Some(v.to_string()), Some(s))
        } else {
            (None, None)
        };
        advisories.push(Advisory {
            cves: vec![id.clone()],
            id,
            summary: format!(
                "{} flaw in {} allows {}",
                WORDS[n % WORDS.len()],
                s.name,
                [
                    "denial of service",
                    "code execution",
                    "information disclosure"
                ][n % 3]
            ),
            cvss_score,
            cvss_vector,
            severity: None,
            published: Some(1_400_000_000 + n as i64 * 3_000),
            affected,
        });
    }
    (advisories, packages, host)
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Linux resets VmHWM to the current RSS on "5" > clear_refs; without it the peak includes
/// everything before.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// The same data as the tracker's JSON (`{source: {CVE: {description, releases}}}`).
fn tracker_json(advisories: &[Advisory]) -> String {
    let codename = |r: &str| match r {
        "11" => "bullseye",
        "12" => "bookworm",
        "13" => "trixie",
        _ => "sid",
    };
    let mut tree: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for a in advisories {
        let mut releases = serde_json::Map::new();
        for f in &a.affected {
            let rel = match &f.status {
                AffectedStatus::Fixed { fixed, .. } => {
                    serde_json::json!({"status": "resolved", "fixed_version": fixed, "urgency": "not yet assigned"})
                }
                AffectedStatus::NotAffected => {
                    serde_json::json!({"status": "resolved", "fixed_version": "0", "urgency": "unimportant"})
                }
                AffectedStatus::Unfixed { .. } => {
                    serde_json::json!({"status": "open", "urgency": "low"})
                }
            };
            releases.insert(codename(&f.release).into(), rel);
        }
        tree.entry(&a.affected[0].package).or_default().insert(
            a.id.clone(),
            serde_json::json!({"description": a.summary, "scope": "remote", "releases": releases}),
        );
    }
    serde_json::to_string(&tree).expect("serialises")
}

/// Runs Debian's debsecan on the same data for bookworm, offline: its feed format (zlib text,
/// `VERSION 1`, vulnerabilities, then per-package lines) read from a file:// URL, and a dpkg
/// status file of the same packages. Returns (wall time, peak RSS KiB, findings).
fn debsecan(
    advisories: &[Advisory],
    packages: &[Package],
    dir: &std::path::Path,
) -> Result<(Duration, u64, usize), String> {
    let python = "/usr/bin/python3";
    if !std::path::Path::new("/usr/bin/debsecan").exists() {
        return Err("debsecan is not installed (apt-get install debsecan)".into());
    }
    let mut text = String::from("VERSION 1\n");
    let mut lines = String::new();
    let mut vnum = 0;
    for a in advisories {
        let Some(f) = a.affected.iter().find(|f| f.release == "12") else {
            continue;
        };
        let (fixed, flag) = match &f.status {
            AffectedStatus::Fixed { fixed, .. } => (fixed.as_str(), 'F'),
            AffectedStatus::Unfixed { .. } => ("", ' '),
            AffectedStatus::NotAffected => continue,
        };
        text.push_str(&format!("{},,{}\n", a.id, a.summary.replace('\n', " ")));
        lines.push_str(&format!("{},{vnum},S ?{flag},{fixed},\n", f.package));
        vnum += 1;
    }
    text.push('\n');
    text.push_str(&lines);
    text.push_str("\n\n");
    let compressed = {
        use flate2_shim::compress;
        compress(text.as_bytes())
    };
    std::fs::write(dir.join("bookworm"), compressed).map_err(|e| e.to_string())?;
    let mut status = String::new();
    for p in packages {
        status.push_str(&format!(
            "Package: {}\nStatus: install ok installed\nArchitecture: {}\nVersion: {}\n",
            p.name, p.arch, p.version
        ));
        if let Some(src) = &p.source {
            match &p.source_version {
                Some(v) => status.push_str(&format!("Source: {src} ({v})\n")),
                None => status.push_str(&format!("Source: {src}\n")),
            }
        }
        status.push('\n');
    }
    std::fs::write(dir.join("status"), status).map_err(|e| e.to_string())?;
    let wrapper = r#"
import resource, runpy, sys, time
sys.argv = ["debsecan"] + sys.argv[1:]
out = sys.stdout
t = time.perf_counter()
try:
    runpy.run_path("/usr/bin/debsecan", run_name="__main__")
except SystemExit:
    pass
sys.stderr.write("WALL %f\nMAXRSS %d\n" % (time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"#;
    let url = format!("file://{}", dir.display());
    let out = std::process::Command::new(python)
        .args([
            "-c", wrapper, "--suite", "bookworm", "--source", &url, "--format", "simple",
        ])
        .arg("--status")
        .arg(dir.join("status"))
        .arg("--history")
        .arg(dir.join("history"))
        .arg("--whitelist")
        .arg(dir.join("whitelist"))
        .arg("--config")
        .arg(dir.join("config"))
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let field = |k: &str| {
        err.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let (Some(wall), Some(rss)) = (field("WALL "), field("MAXRSS ")) else {
        return Err(format!("debsecan failed: {err}"));
    };
    let findings = String::from_utf8_lossy(&out.stdout).lines().count();
    Ok((
        Duration::from_secs_f64(wall.parse().unwrap_or(0.0)),
        rss.parse().unwrap_or(0),
        findings,
    ))
}

/// zlib (RFC 1950) with stored blocks: debsecan only needs `zlib.decompress` to accept it, and
/// this keeps a compression crate out of the dependencies.
mod flate2_shim {
    pub fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let mut chunks = data.chunks(65_535).peekable();
        if chunks.peek().is_none() {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        while let Some(c) = chunks.next() {
            out.push(u8::from(chunks.peek().is_none()));
            let len = c.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(c);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + x as u32) % 65_521;
            b = (b + a) % 65_521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would mean "not this one".
    if std::env::args().skip(1).any(|a| !a.starts_with('-')) {
        return;
    }
    let t = Instant::now();
    let (advisories, packages, host) = generate();
    let affected_entries: usize = advisories.iter().map(|a| a.affected.len()).sum();
    println!(
        "data: {} advisories ({} release entries), {} installed packages, generated in {}",
        advisories.len(),
        affected_entries,
        packages.len(),
        ms(t.elapsed())
    );
    let rss_data = proc_status_kib("VmRSS:");

    let peak_reset = reset_peak();
    let mut builds = Vec::new();
    let mut matcher = None;
    for _ in 0..5 {
        drop(matcher.take());
        let t = Instant::now();
        matcher = Some(Matcher::new(&advisories));
        builds.push(t.elapsed());
    }
    let matcher = matcher.expect("built");
    let rss_index = proc_status_kib("VmRSS:");

    let mut runs = Vec::new();
    let mut findings = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        findings = matcher.match_host(&host, &packages);
        runs.push(t.elapsed());
    }
    let hwm = proc_status_kib("VmHWM:");
    let m = median(runs.clone());
    let unfixed = findings
        .iter()
        .filter(|f| f.fixed_version.is_none())
        .count();

    println!(
        "Matcher::new (100,000 advisories): median {} of 5",
        ms(median(builds))
    );
    println!(
        "match_host (2,000 packages): median {} of 21 (min {}, max {}) -> {} findings ({} unfixed); goal <= 1000 ms: {}",
        ms(m),
        ms(*runs.iter().min().unwrap()),
        ms(*runs.iter().max().unwrap()),
        findings.len(),
        unfixed,
        if m <= Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "memory: RSS {} with the advisories loaded, {} with the index built (index ~{}); peak RSS during build+match {}{}",
        mib(rss_data),
        mib(rss_index),
        mib(rss_index.zip(rss_data).map(|(a, b)| a.saturating_sub(b))),
        mib(hwm),
        if peak_reset {
            ""
        } else {
            " (peak includes data generation: clear_refs not writable)"
        }
    );

    let json = tracker_json(&advisories);
    drop(matcher);
    let t = Instant::now();
    let (parsed, skipped) = parse_debian_tracker(&json, "generated").expect("parses");
    let parse = t.elapsed();
    let t = Instant::now();
    let m2 = Matcher::new(&parsed);
    let f2 = m2.match_host(&host, &packages);
    let rest = t.elapsed();
    println!(
        "end to end from tracker JSON ({:.1} MiB): parse {} + build and match {} = {} -> {} advisories, {} skipped, {} findings",
        json.len() as f64 / (1 << 20) as f64,
        ms(parse),
        ms(rest),
        ms(parse + rest),
        parsed.len(),
        skipped.len(),
        f2.len()
    );

    // debsecan has no running-kernel rule: count ours without it too, to compare like with like.
    let all_kernels = Host {
        kernel: String::new(),
        ..host.clone()
    };
    let f3 = m2.match_host(&all_kernels, &packages).len();

    let dir = tempfile::tempdir().expect("tempdir");
    std::io::stdout().flush().ok();
    match debsecan(&advisories, &packages, dir.path()) {
        Ok((wall, rss, n)) => println!(
            "peer debsecan 0.4 (same data, bookworm entries only, feed from file://): {} load + match, peak RSS {:.1} MiB, {} findings; ours without the running-kernel rule: {} findings",
            ms(wall),
            rss as f64 / 1024.0,
            n,
            f3
        ),
        Err(e) => println!("peer debsecan: not compared ({e}); figures above are ours only"),
    }
}
