//! What ransomware prevention reads from outside: the policy and a restore request as the API
//! and the config frame carry them (parsed and validated, or refused with a message naming a
//! field), a snapshot manifest as the agent reads it back from its state dir, and any bytes
//! as a file sample (the entropy test answers for any input, never panics).
#![no_main]
use hostward_agent::ransom::{backup::Snapshot, entropy};
use hostward_proto::ransom::{RansomPolicy, RestoreRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let e = entropy::shannon(data);
    assert!((0.0..=8.0).contains(&e), "{e}");
    let _ = entropy::looks_encrypted(data);
    let _ = serde_json::from_slice::<Snapshot>(data);
    if let Ok(r) = serde_json::from_slice::<RestoreRequest>(data) {
        if let Err(e) = r.validate() {
            assert!(e.split(':').next().is_some_and(|f| !f.is_empty()), "{e}");
        }
    }
    let Ok(p) = serde_json::from_slice::<RansomPolicy>(data) else {
        return;
    };
    match p.validate() {
        Ok(()) => {
            for d in &p.backup.directories {
                let _ = d.covers(&format!("{}/x/y.tmp", d.path));
            }
            let _ = p.trusts("/usr/bin/openssl");
        }
        Err(e) => assert!(e.split(':').next().is_some_and(|f| !f.is_empty()), "{e}"),
    }
});
