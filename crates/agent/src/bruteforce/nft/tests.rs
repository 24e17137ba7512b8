//! Pure tests: script generation, JSON parsing, validation, the state file.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ensure_script_names_only_our_table_and_sorts_ports() {
    let s = ensure_script("hostward", &[2222, 22, 22]);
    assert_eq!(
        s,
        "add table inet hostward\n\
         add counter inet hostward dropped\n\
         add set inet hostward blocked4 { type ipv4_addr; flags timeout; }\n\
         add set inet hostward blocked6 { type ipv6_addr; flags timeout; }\n\
         add chain inet hostward input { type filter hook input priority -10; policy accept; }\n\
         flush chain inet hostward input\n\
         add rule inet hostward input ip saddr @blocked4 tcp dport { 22, 2222 } counter name \"dropped\" drop\n\
         add rule inet hostward input ip6 saddr @blocked6 tcp dport { 22, 2222 } counter name \"dropped\" drop\n"
    );
    for line in s.lines() {
        assert!(line.contains(" inet hostward"), "{line}");
        assert!(!line.contains("ruleset"), "{line}");
    }
}

#[test]
fn ensure_script_without_ports_drops_everything_from_the_sets() {
    let s = ensure_script("t1", &[]);
    assert!(
        s.contains("add rule inet t1 input ip saddr @blocked4 counter name \"dropped\" drop\n")
    );
    assert!(
        s.contains("add rule inet t1 input ip6 saddr @blocked6 counter name \"dropped\" drop\n")
    );
    assert!(!s.contains("dport"));
}

#[test]
fn block_script_adds_once_or_refreshes_by_delete() {
    assert_eq!(
        block_script("hostward", ip("203.0.113.7"), 600_000, false),
        "add element inet hostward blocked4 { 203.0.113.7 timeout 600000ms }\n"
    );
    assert_eq!(
        block_script("hostward", ip("2001:db8::7"), 1500, true),
        "add element inet hostward blocked6 { 2001:db8::7 timeout 1s }\n\
         delete element inet hostward blocked6 { 2001:db8::7 }\n\
         add element inet hostward blocked6 { 2001:db8::7 timeout 1500ms }\n"
    );
}

#[test]
fn unblock_and_remove_scripts_tolerate_absence() {
    assert_eq!(
        unblock_script("hostward", ip("203.0.113.7")),
        "add element inet hostward blocked4 { 203.0.113.7 timeout 1s }\n\
         delete element inet hostward blocked4 { 203.0.113.7 }\n"
    );
    assert_eq!(
        remove_script("hw_x"),
        "add table inet hw_x\ndelete table inet hw_x\n"
    );
}

#[test]
fn sync_script_flushes_both_sets_then_adds_in_chunks() {
    let mut wanted = BTreeMap::new();
    wanted.insert(ip("2001:db8::1"), 2000);
    wanted.insert(ip("203.0.113.1"), 1000);
    wanted.insert(ip("203.0.113.2"), 3000);
    assert_eq!(
        sync_script("hostward", &wanted),
        "flush set inet hostward blocked4\n\
         flush set inet hostward blocked6\n\
         add element inet hostward blocked4 { 203.0.113.1 timeout 1000ms, 203.0.113.2 timeout 3000ms }\n\
         add element inet hostward blocked6 { 2001:db8::1 timeout 2000ms }\n"
    );
    assert_eq!(
        sync_script("hostward", &BTreeMap::new()),
        "flush set inet hostward blocked4\nflush set inet hostward blocked6\n"
    );
    let many: BTreeMap<IpAddr, u64> = (0..1200u32)
        .map(|i| {
            (
                IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                1000,
            )
        })
        .collect();
    let s = sync_script("hostward", &many);
    assert_eq!(
        s.lines().filter(|l| l.starts_with("add element")).count(),
        3
    );
    assert_eq!(s.matches("timeout").count(), 1200);
}

#[test]
fn timeouts_are_never_zero_and_never_huge() {
    assert_eq!(timeout_ms(Duration::ZERO), 1);
    assert_eq!(timeout_ms(Duration::from_nanos(1)), 1);
    assert_eq!(timeout_ms(Duration::from_micros(1500)), 2);
    assert_eq!(timeout_ms(Duration::from_secs(2)), 2000);
    assert_eq!(timeout_ms(Duration::MAX), MAX_TIMEOUT.as_millis() as u64);
}

#[test]
fn addresses_are_canonical_and_local_ones_refused() {
    assert_eq!(
        blockable(ip("::ffff:203.0.113.9")).unwrap(),
        ip("203.0.113.9")
    );
    assert_eq!(
        set_of(blockable(ip("::ffff:203.0.113.9")).unwrap()),
        "blocked4"
    );
    assert_eq!(set_of(ip("2001:db8::1")), "blocked6");
    for bad in [
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            matches!(blockable(ip(bad)), Err(Error::Refused(_))),
            "{bad}"
        );
    }
}

#[test]
fn config_defaults_and_validation() {
    let c: Config = serde_json::from_str("{}").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.nft, ["/usr/sbin/nft"]);
    assert_eq!(c.table, "hostward");
    assert_eq!(c.ports, [22]);
    let c: Config = toml::from_str(
        "table = \"hw_test_1\"\nports = []\nnft = [\"ip\", \"netns\", \"exec\", \"x\", \"nft\"]",
    )
    .unwrap();
    c.validate().unwrap();
    assert!(toml::from_str::<Config>("tabel = \"x\"").is_err());
    for table in ["", "1abc", "a b", "a;b", "a}", &"a".repeat(65)] {
        let c = Config {
            table: table.to_owned(),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config(_))), "{table:?}");
    }
    let c = Config {
        ports: vec![22, 0],
        ..Config::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        nft: vec![],
        ..Config::default()
    };
    assert!(c.validate().is_err());
}

/// `nft -j list table inet hostward` from nft 1.0.6 (Debian 12), with a hand-added element
/// without timeout.
const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "hostward", "handle": 1}}, {"counter": {"family": "inet", "name": "dropped", "table": "hostward", "handle": 2, "packets": 7, "bytes": 420}}, {"set": {"family": "inet", "name": "blocked4", "table": "hostward", "type": "ipv4_addr", "handle": 3, "flags": ["timeout"], "elem": [{"elem": {"val": "10.0.0.1", "timeout": 30, "expires": 29}}, "10.0.0.9"]}}, {"set": {"family": "inet", "name": "blocked6", "table": "hostward", "type": "ipv6_addr", "handle": 4, "flags": ["timeout"], "elem": [{"elem": {"val": "fd77::2", "timeout": 4320000, "expires": 4319999}}]}}, {"chain": {"family": "inet", "table": "hostward", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}}, {"rule": {"family": "inet", "table": "hostward", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@blocked4"}}, {"counter": "dropped"}, {"drop": null}]}}]}"#;

#[test]
fn parses_the_sets_of_a_table_listing() {
    let b = parse_blocked(LISTING, &["blocked4", "blocked6"]).unwrap();
    assert_eq!(
        b,
        [
            Blocked {
                addr: ip("10.0.0.1"),
                expires_in: Some(Duration::from_secs(29))
            },
            Blocked {
                addr: ip("10.0.0.9"),
                expires_in: None
            },
            Blocked {
                addr: ip("fd77::2"),
                expires_in: Some(Duration::from_secs(4_319_999))
            },
        ]
    );
    assert_eq!(parse_blocked(LISTING, &["blocked6"]).unwrap().len(), 1);
    assert_eq!(
        parse_set_timeouts(LISTING, "blocked4").unwrap(),
        [(ip("10.0.0.1"), Some(30)), (ip("10.0.0.9"), None)]
    );
    assert_eq!(
        parse_counter(LISTING, "dropped").unwrap(),
        Dropped {
            packets: 7,
            bytes: 420
        }
    );
}

#[test]
fn parses_a_set_listing_and_an_empty_set() {
    // `nft -j list set inet hostward blocked6` on an empty set: no "elem" key at all.
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "blocked6", "table": "hostward", "type": "ipv6_addr", "handle": 4, "flags": ["timeout"]}}]}"#;
    assert!(
        parse_blocked(json, &["blocked4", "blocked6"])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_json_is_an_error_naming_the_problem() {
    for (json, want) in [
        ("", "EOF"),
        ("{}", "nftables"),
        (
            r#"{"nftables": [{"set": {"name": "blocked4", "elem": [{"elem": {"val": "nope"}}]}}]}"#,
            "not an address",
        ),
        (
            r#"{"nftables": [{"set": {"name": "blocked4", "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}}]}"#,
            "not an address",
        ),
        (
            r#"{"nftables": [{"set": {"name": "blocked4", "elem": [{"elem": {"val": "10.0.0.1", "expires": -1}}]}}]}"#,
            "element",
        ),
        (r#"{"nftables": [{"set": {"elem": []}}]}"#, "name"),
    ] {
        let e = parse_blocked(json, &["blocked4"]).unwrap_err();
        assert!(matches!(e, Error::Parse(_)), "{json}: {e}");
        assert!(e.to_string().contains(want), "{json}: {e}");
    }
    assert!(parse_counter(LISTING, "other").is_err());
}

#[test]
fn state_file_is_private_and_restores_only_valid_blocks() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.json");
    assert!(load_state(&path).unwrap().is_empty());
    // A stale temp file with a loose mode must not make the state readable.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, "x").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut state = BTreeMap::new();
    state.insert(ip("203.0.113.1"), 1000);
    state.insert(ip("2001:db8::1"), 3000);
    state.insert(ip("203.0.113.2"), 2000);
    save_state(&path, &state).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        r#"{"203.0.113.1":1000,"203.0.113.2":2000,"2001:db8::1":3000}"#
    );
    let back = load_state(&path).unwrap();
    assert_eq!(back, state);
    assert_eq!(
        still_valid(&back, 2000),
        [(ip("2001:db8::1"), Duration::from_secs(1000))]
    );
    std::fs::write(&path, "{\"not an ip\": 1}").unwrap();
    assert!(matches!(load_state(&path), Err(Error::State { .. })));
}
