//! A file integrity policy as the API and the config frame carry it: it parses and validates,
//! or is refused with a message naming a field; in a valid one, every directory's scope check
//! answers for any path without panicking.
#![no_main]
use hostward_proto::fim::FimPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = serde_json::from_slice::<FimPolicy>(data) else {
        return;
    };
    match p.validate() {
        Ok(()) => {
            for d in &p.directories {
                let _ = d.covers(&format!("{}/x/y.log", d.path));
                let _ = d.covers(std::str::from_utf8(data).unwrap_or("/"));
            }
        }
        Err(e) => assert!(e.split(':').next().is_some_and(|f| !f.is_empty()), "{e}"),
    }
});
