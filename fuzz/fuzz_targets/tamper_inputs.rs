//! What web tamper protection reads from outside: the policy and unlock as the API and the
//! config frame carry them (parsed and validated, or refused with a message naming a field; a
//! valid policy's scope and window checks answer for any input), a `file_changes` record as
//! the center receives it, and a `/proc/<tid>/syscall` line as the guard reads it (any text
//! yields an intent, never a panic).
#![no_main]
use hostward_agent::tamper::intent;
use hostward_proto::fim::FileChanges;
use hostward_proto::tamper::{TamperPolicy, TamperUnlock, minutes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = std::str::from_utf8(data).unwrap_or("");
    let _ = intent::parse(text);
    let _ = minutes(text);
    let _ = serde_json::from_slice::<TamperUnlock>(data);
    if let Ok(c) = serde_json::from_slice::<FileChanges>(data) {
        if let Err(e) = c.validate() {
            assert!(e.starts_with("changes"), "{e}");
        }
    }
    let Ok(p) = serde_json::from_slice::<TamperPolicy>(data) else {
        return;
    };
    match p.validate() {
        Ok(()) => {
            for d in &p.directories {
                let _ = d.covers(&format!("{}/x/y.log", d.path));
                let _ = d.covers(text);
            }
            for w in &p.windows {
                assert!(w.span().is_some(), "a valid window has a span");
                let _ = w.on_day(3);
            }
        }
        Err(e) => assert!(e.split(':').next().is_some_and(|f| !f.is_empty()), "{e}"),
    }
});
