//! CSRs arrive from unauthenticated enrollers (holding only a token): parsing and signing must
//! reject garbage without panicking, and never sign something that does not parse.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static CA: OnceLock<hostward_pki::Ca> = OnceLock::new();
    let ca = CA.get_or_init(|| hostward_pki::Ca::generate("fuzz").unwrap().0);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ca.sign_agent_csr(text, "fuzz-agent");
    let _ = hostward_pki::fingerprint_sha256(text);
    let _ = hostward_pki::normalize_fingerprint(text);
});
