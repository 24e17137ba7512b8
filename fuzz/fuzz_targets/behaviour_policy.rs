//! A behaviour policy as the API and the config frame carry it: it parses and validates, or is
//! refused with a message naming a field; a valid one always compiles into the detectors (the
//! agent never panics on what the center accepted).
#![no_main]
use hostward_agent::behaviour::detect::Compiled;
use hostward_proto::behaviour::BehaviourPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = serde_json::from_slice::<BehaviourPolicy>(data) else {
        return;
    };
    match p.validate() {
        Ok(()) => {
            let c = Compiled::new(p).expect("a valid policy compiles");
            let _ = c.whitelisted("reverse_shell", None, None);
        }
        Err(e) => assert!(e.split(':').next().is_some_and(|f| !f.is_empty()), "{e}"),
    }
});
