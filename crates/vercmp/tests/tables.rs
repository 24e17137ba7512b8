//! The comparators against tables of known dpkg and rpm orderings (`cases.rs`).

mod cases;

use cases::{DEB_CASES, RPM_CASES};
use hostward_vercmp::*;
use std::cmp::Ordering::Equal as EQ;

#[test]
fn deb_table() {
    for &(a, b, want) in DEB_CASES {
        assert_eq!(compare_deb(a, b), want, "compare_deb({a:?}, {b:?})");
        assert_eq!(
            compare_deb(b, a),
            want.reverse(),
            "compare_deb({b:?}, {a:?})"
        );
        assert_eq!(compare(Scheme::Deb, a, b), want);
    }
}

#[test]
fn rpm_table() {
    for &(a, b, want) in RPM_CASES {
        assert_eq!(compare_rpm(a, b), want, "compare_rpm({a:?}, {b:?})");
        assert_eq!(
            compare_rpm(b, a),
            want.reverse(),
            "compare_rpm({b:?}, {a:?})"
        );
        assert_eq!(compare(Scheme::Rpm, a, b), want);
    }
}

#[test]
fn embedded_nul_ends_the_string_as_in_c() {
    assert_eq!(compare_deb("1.0\0zzz", "1.0"), EQ);
    assert_eq!(compare_rpm("1.0\0zzz", "1.0"), EQ);
    assert_eq!(compare_deb("\0", ""), EQ);
}

#[test]
fn parse_deb_splits_like_dpkg() {
    let v = parse_deb("2:1.2-3:4-5").unwrap();
    assert_eq!(
        v,
        DebVersion {
            epoch: 2,
            upstream: "1.2-3:4",
            revision: "5"
        }
    );
    let v = parse_deb("1.0").unwrap();
    assert_eq!((v.epoch, v.upstream, v.revision), (0, "1.0", ""));
    assert_eq!(parse_deb("2147483647:1").unwrap().epoch, 2147483647);
    assert_eq!(parse_deb("007:1").unwrap().epoch, 7);
}

/// The rejections of dpkg's parseversion (errors and warnings, t-version.c), plus this crate's
/// stricter white-space and sign rules.
#[test]
fn validate_deb_rejects() {
    let bad: &[(&str, &str)] = &[
        ("", "empty"),
        ("  ", "white space"),
        (" 1.0", "white space"),
        ("1.0 ", "white space"),
        ("0:0 0-1", "white space"),
        ("1.0\n", "white space"),
        ("0:", "nothing after"),
        ("-1:0-1", "epoch"),
        ("+1:0", "epoch"),
        (":1", "epoch before ':' is empty"),
        ("999999999999999999999999:0-1", "larger than"),
        ("2147483648:1", "larger than"),
        ("a:0-0", "not a number"),
        ("A:0-0", "not a number"),
        ("-0", "upstream version is empty"),
        ("0:-0", "upstream version is empty"),
        ("1.0-", "revision"),
        ("0:abc3-0", "does not start with a digit"),
        ("<unknown>", "does not start with a digit"),
        ("0:0-0:0", "revision"),
        ("1.0-1-", "revision"),
        ("1.0\u{e9}", "invalid character"),
    ];
    for &(v, why) in bad {
        let e = parse_deb(v).expect_err(v);
        assert!(e.reason.contains(why), "{v:?}: {e}");
        assert_eq!(e.scheme, "deb");
        assert!(validate(Scheme::Deb, v).is_err());
    }
    for c in "!#@$%&/|\\<>()[]{};,_=*^'".chars() {
        let v = format!("0:0{c}-0");
        assert!(
            parse_deb(&v).unwrap_err().reason.contains("upstream"),
            "{v}"
        );
    }
    for c in "!#@$%&/|\\<>()[]{}:;,_=*^'".chars() {
        let v = format!("0:0-0{c}0");
        assert!(
            parse_deb(&v).unwrap_err().reason.contains("revision"),
            "{v}"
        );
    }
}

#[test]
fn validate_deb_accepts() {
    for v in [
        "0",
        "0:0",
        "0:0-0",
        "0:0.0-0.0",
        "1:0",
        "0:0-0-0",
        "0:0:0-0",
        "0:09azAZ.-+~:-0",
        "0:0-azAZ09.+~",
        "1.0~rc1-1~bpo11+1",
        "2:4.17.12+dfsg-0+deb12u1",
        "00:1",
        "1.000000000000000000000000000000001",
    ] {
        assert_eq!(validate(Scheme::Deb, v), Ok(()), "{v}");
    }
}

#[test]
fn parse_rpm_splits_like_rpm() {
    assert_eq!(
        parse_rpm("2:1.2.3-4.el9_1").unwrap(),
        RpmVersion {
            epoch: Some(2),
            version: "1.2.3",
            release: Some("4.el9_1")
        }
    );
    assert_eq!(
        parse_rpm("1.0~rc1^git2").unwrap(),
        RpmVersion {
            epoch: None,
            version: "1.0~rc1^git2",
            release: None
        }
    );
    assert_eq!(parse_rpm("4294967295:1").unwrap().epoch, Some(u32::MAX));
}

#[test]
fn validate_rpm() {
    for v in [
        "1",
        "1.0",
        "xyz.4",
        "0:1.0-1",
        "1.0_1+git~1^2-3.fc40",
        "5.5p1",
    ] {
        assert_eq!(validate(Scheme::Rpm, v), Ok(()), "{v}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "empty"),
        (" 1.0", "white space"),
        ("1.0\t", "white space"),
        ("1.0\u{7}", "control"),
        (":1.0", "epoch before ':' is empty"),
        ("4294967296:1", "larger than"),
        ("1:", "version is empty"),
        ("-1", "version is empty"),
        ("1.0-", "release is empty"),
        ("1.0-1-2", "more than one '-'"),
        ("1:2:3", "invalid character ':'"),
        ("1.0-1:2", "invalid character ':' in release"),
        ("a:1", "invalid character ':' in version"),
        ("1..0", "\"..\""),
        ("1.0-1..el9", "\"..\""),
        ("1.0%{dist}", "invalid character '%'"),
        ("1.0\u{e9}", "invalid character"),
        ("1,0", "invalid character ','"),
    ];
    for &(v, why) in bad {
        let e = parse_rpm(v).expect_err(v);
        assert!(e.reason.contains(why), "{v:?}: {e}");
        assert_eq!(e.scheme, "rpm");
        assert!(e.to_string().starts_with("invalid rpm version"), "{e}");
    }
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "",
        ":",
        "-",
        "::",
        "--",
        ":-",
        "-:",
        "~",
        "^",
        "~^",
        "^~",
        "\0",
        "\u{ff}",
        "1:",
        ":1",
        "-1",
        "1-",
        "1:-",
        "<unknown>",
        " ",
        "\t",
        "99999999999999999999999999999:",
    ];
    for a in odd {
        for b in odd {
            for s in [Scheme::Deb, Scheme::Rpm] {
                assert_eq!(
                    compare(s, a, b),
                    compare(s, b, a).reverse(),
                    "{s:?} {a:?} {b:?}"
                );
                let _ = validate(s, a);
            }
        }
    }
}
