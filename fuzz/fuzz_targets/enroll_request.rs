//! The unauthenticated enrollment body: decoding must fail cleanly on anything malformed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<hostward_proto::EnrollRequest>(data);
    let _ = serde_json::from_slice::<hostward_proto::InstallReport>(data);
});
