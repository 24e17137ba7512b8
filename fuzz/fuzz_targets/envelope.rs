//! Every frame an agent (or anyone holding an agent's certificate) can send goes through
//! `Envelope::from_json`: it must return an error, never panic, and what decodes must re-encode
//! to something that decodes to the same value. The center then validates the records it
//! stores (`alarm`, `login_ip`) before touching the database: that must not panic either.
#![no_main]
use hostward_proto::{Envelope, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(env) = Envelope::from_json(text) {
        let again = Envelope::from_json(&env.to_json()).expect("re-encoded frame decodes");
        assert_eq!(again, env);
        match &env.msg {
            Message::Alarm(a) => {
                let _ = a.validate();
            }
            Message::LoginIp(l) => {
                if l.validate().is_ok() {
                    assert!(l.canonical_addr().is_some(), "a valid record has an address");
                }
            }
            _ => {}
        }
    }
});
