//! Puts the BPF object in OUT_DIR: rebuilt from bpf/sensor.bpf.c when clang (and libbpf-dev's
//! headers) are present, else the committed bpf/sensor.bpf.o, so `cargo build` needs no clang.
//! CI checks that the committed object is what the source builds to (`bpf/build.sh --check`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/sensor.bpf.c");
    println!("cargo:rerun-if-changed=bpf/sensor.bpf.o");
    println!("cargo:rerun-if-changed=bpf/build.sh");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("sensor.bpf.o");
    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_clang {
        let built = Command::new("bash")
            .arg("bpf/build.sh")
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        if built {
            return;
        }
        println!(
            "cargo:warning=clang could not build bpf/sensor.bpf.c (libbpf-dev missing?); using the committed object"
        );
    }
    std::fs::copy("bpf/sensor.bpf.o", &out).expect("copy bpf/sensor.bpf.o");
}
