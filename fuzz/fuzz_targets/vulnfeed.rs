//! Vulnerability feeds come from outside (an uploaded zip, a mirrored directory): the OSV and
//! Debian tracker parsers must reject anything malformed with a reason, never panic, and what
//! they accept must be matchable and storable.
#![no_main]
use hostward_proto::inventory::Package;
use hostward_vulndb::{Advisory, Host, Matcher, parse_debian_tracker, parse_osv};
use libfuzzer_sys::fuzz_target;

fn package(manager: &str, name: &str, version: &str, source: Option<&str>) -> Package {
    Package {
        manager: manager.into(),
        name: name.into(),
        version: version.into(),
        arch: "x86_64".into(),
        source: source.map(String::from),
        source_version: None,
        vendor: None,
        install_time: None,
    }
}

/// Matches what was parsed against a few hosts, so versions the parsers let through also go
/// through the version comparisons, and checks the advisories survive the center's JSON storage.
fn exercise(advisories: &[Advisory]) {
    let m = Matcher::new(advisories);
    let packages = [
        package("dpkg", "openssl", "3.0.11-1~deb12u2", None),
        package("dpkg", "bsdutils", "1:2.38.1-5+b1", Some("util-linux")),
        package("dpkg", "linux-image-6.1.0-13-amd64", "6.1.55-1", Some("linux")),
        package("dpkg", "a", "1.0-1", None),
        package("rpm", "openssl-libs", "1:3.0.7-24.el9", Some("openssl")),
        package("rpm", "kernel-core", "5.14.0-362.8.1.el9_3", Some("kernel")),
        package("rpm", "a", "1.0-1", None),
    ];
    for (os_id, version) in [
        ("debian", "12"),
        ("debian", "11"),
        ("ubuntu", "22.04"),
        ("almalinux", "9.3"),
        ("rocky", "9"),
        ("rhel", "9"),
        ("alpine", "3.18.4"),
    ] {
        let host = Host {
            os_id: os_id.into(),
            os_version: version.into(),
            kernel: "6.1.0-13-amd64".into(),
        };
        for f in m.match_host(&host, &packages) {
            assert!(!f.cve.is_empty() && !f.package.is_empty());
            if f.fixed_version.is_none() {
                assert!(f.fix_command.is_none(), "no fix command without a fix");
            }
        }
    }
    let text = serde_json::to_string(advisories).expect("advisories serialise");
    let back: Vec<Advisory> = serde_json::from_str(&text).expect("advisories deserialise");
    assert_eq!(back.len(), advisories.len());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_osv(&text, "fuzz.json") {
        Ok(adv) => {
            assert!(!adv.affected.is_empty(), "a kept record has something to match");
            exercise(&[adv]);
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    if let Ok((advisories, _skipped)) = parse_debian_tracker(&text, "fuzz.json") {
        assert!(advisories.iter().all(|a| !a.affected.is_empty()));
        exercise(&advisories);
    }
});
