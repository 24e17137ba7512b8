//! An `inventory` record is the largest body an agent sends: decoding must fail cleanly or give a
//! record whose items flatten into rows (key, name, value, JSON) without panicking.
#![no_main]
use hostward_proto::{Envelope, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let wrapped = format!(r#"{{"v":1,"seq":1,"kind":"inventory","body":{text}}}"#);
    if let Ok(Envelope { msg: Message::Inventory(inv), .. }) = Envelope::from_json(&wrapped) {
        let rows = inv.items.rows();
        assert_eq!(rows.len(), inv.items.len());
        let _ = inv.kind();
    }
});
