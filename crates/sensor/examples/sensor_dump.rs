//! Prints what the sensor sees as JSON lines, one event each: for recording detector fixtures
//! and checking a kernel by hand. `sensor_dump [proc|syscalls]`: `proc` forces the
//! proc-connector tier, `syscalls` attaches the system-call program too.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arg = std::env::args().nth(1);
    let opts = hostward_sensor::Options {
        want: match arg.as_deref() {
            Some("proc") => hostward_sensor::Want::Proc,
            _ => hostward_sensor::Want::Auto,
        },
        syscall_events: arg.as_deref() == Some("syscalls"),
        proc: "/proc".into(),
    };
    let (sensor, mut rx) = hostward_sensor::Sensor::start(opts).expect("no sensor tier works here");
    eprintln!("tier {}: {}", sensor.tier.as_str(), sensor.reason);
    while let Some(ev) = rx.recv().await {
        println!("{}", serde_json::to_string(&ev).expect("events serialise"));
    }
}
