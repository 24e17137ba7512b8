//! What the kernel hands the agent: BPF ring buffer records, proc connector datagrams and
//! fanotify event buffers. Each decoder returns an event, an error or nothing, never panics,
//! and never reads past what it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = hostward_sensor::raw::decode(data) {
        // Decoded events serialise (they become detector fixtures and alarm evidence).
        let _ = serde_json::to_string(&ev).expect("events serialise");
    }
    let _ = hostward_sensor::cnproc::decode(data);
    for ev in hostward_agent::fanotify::decode(data) {
        assert!(ev.dir.len() <= data.len() && ev.name.len() <= data.len());
    }
});
