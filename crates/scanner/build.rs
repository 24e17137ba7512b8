//! Puts the shipped rules into the binary masked (each byte XOR 0xA5): in plain text, the
//! strings the rules look for would be in the scanner's own binary, and a scan of the host
//! would find XMRig, Mimikatz and Diamorphine in /usr/local/bin/hostward-scanner.

use std::path::Path;

fn main() {
    let src = "../../content/yara/hostward.yar";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read(src).expect("content/yara/hostward.yar");
    let masked: Vec<u8> = text.iter().map(|b| b ^ 0xA5).collect();
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out).join("hostward.yar.masked"), masked).expect("writing OUT_DIR");
}
