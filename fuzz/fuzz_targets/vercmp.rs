//! Package versions come from agents' inventories, so any string reaches `compare` and
//! `validate`. Neither may panic, and `compare` must stay a total preorder (reflexive,
//! antisymmetric, transitive), or sorting and searching advisories by version goes wrong.
//! Input: up to three versions separated by '\n'.
#![no_main]
use hostward_vercmp::{Scheme, compare, validate};
use libfuzzer_sys::fuzz_target;
use std::cmp::Ordering;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    for scheme in [Scheme::Deb, Scheme::Rpm] {
        for v in [a, b, c] {
            let _ = validate(scheme, v);
            assert_eq!(compare(scheme, v, v), Ordering::Equal, "{scheme:?} {v:?}");
        }
        let ab = compare(scheme, a, b);
        let bc = compare(scheme, b, c);
        let ac = compare(scheme, a, c);
        assert_eq!(
            ab,
            compare(scheme, b, a).reverse(),
            "{scheme:?} {a:?} {b:?}"
        );
        if ab == bc || bc == Ordering::Equal {
            assert_eq!(ac, ab, "{scheme:?} {a:?} {b:?} {c:?}");
        } else if ab == Ordering::Equal {
            assert_eq!(ac, bc, "{scheme:?} {a:?} {b:?} {c:?}");
        }
    }
});
