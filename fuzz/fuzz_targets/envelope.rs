//! Every frame an agent (or anyone holding an agent's certificate) can send goes through
//! `Envelope::from_json`: it must return an error, never panic, and what decodes must re-encode
//! to something that decodes to the same value.
#![no_main]
use hostward_proto::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(env) = Envelope::from_json(text) {
        let again = Envelope::from_json(&env.to_json()).expect("re-encoded frame decodes");
        assert_eq!(again, env);
    }
});
