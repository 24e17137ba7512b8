//! Order laws on arbitrary strings, valid or not: `compare` must be a total preorder so that
//! sorting and binary search over versions stay sound.

use hostward_vercmp::{Scheme, compare, parse_deb, parse_rpm, validate};
use proptest::prelude::*;
use std::cmp::Ordering;

/// Mostly version-like characters, so that comparisons get past the first byte.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[0-9a-cA~^+._:-]{0,12}",
        1 => "[0-9~^.:\\- \t\u{0}\u{e9}\u{3b1}<>a-z]{0,8}",
        1 => any::<String>(),
    ]
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![Just(Scheme::Deb), Just(Scheme::Rpm)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn reflexive_and_antisymmetric(s in scheme(), a in text(), b in text()) {
        prop_assert_eq!(compare(s, &a, &a), Ordering::Equal);
        prop_assert_eq!(compare(s, &a, &b), compare(s, &b, &a).reverse());
    }

    #[test]
    fn transitive(s in scheme(), mut v in prop::collection::vec(text(), 3)) {
        v.sort_by(|a, b| compare(s, a, b));
        prop_assert_ne!(compare(s, &v[0], &v[1]), Ordering::Greater);
        prop_assert_ne!(compare(s, &v[1], &v[2]), Ordering::Greater);
        prop_assert_ne!(compare(s, &v[0], &v[2]), Ordering::Greater);
        let ab = compare(s, &v[0], &v[1]);
        let bc = compare(s, &v[1], &v[2]);
        if ab == Ordering::Equal && bc == Ordering::Equal {
            prop_assert_eq!(compare(s, &v[0], &v[2]), Ordering::Equal);
        }
        if ab == Ordering::Less || bc == Ordering::Less {
            prop_assert_eq!(compare(s, &v[0], &v[2]), Ordering::Less);
        }
    }

    /// A valid version's parts put back together give the string back.
    #[test]
    fn parts_reassemble(a in text()) {
        if let Ok(p) = parse_deb(&a) {
            let epoch = a.split_once(':').map(|(e, _)| format!("{e}:")).unwrap_or_default();
            prop_assert_eq!(epoch.trim_end_matches(':').parse::<u32>().unwrap_or(0), p.epoch);
            let rev = if a.ends_with(&format!("-{}", p.revision)) && !p.revision.is_empty() {
                format!("-{}", p.revision)
            } else {
                String::new()
            };
            prop_assert_eq!(format!("{epoch}{}{rev}", p.upstream), a.clone());
        }
        if let Ok(p) = parse_rpm(&a) {
            let epoch = a.split_once(':').map(|(e, _)| format!("{e}:")).unwrap_or_default();
            let rel = p.release.map(|r| format!("-{r}")).unwrap_or_default();
            prop_assert_eq!(format!("{epoch}{}{rel}", p.version), a.clone());
        }
        prop_assert_eq!(validate(Scheme::Deb, &a).is_ok(), parse_deb(&a).is_ok());
        prop_assert_eq!(validate(Scheme::Rpm, &a).is_ok(), parse_rpm(&a).is_ok());
    }
}
