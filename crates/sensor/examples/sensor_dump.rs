//! Prints what the sensor sees as JSON lines, one event each: for recording detector fixtures
//! and checking a kernel by hand. `sensor_dump [proc]` forces the proc-connector tier.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let want = match std::env::args().nth(1).as_deref() {
        Some("proc") => hostward_sensor::Want::Proc,
        _ => hostward_sensor::Want::Auto,
    };
    let (sensor, mut rx) =
        hostward_sensor::Sensor::start(want, "/proc".into()).expect("no sensor tier works here");
    eprintln!("tier {}: {}", sensor.tier.as_str(), sensor.reason);
    while let Some(ev) = rx.recv().await {
        println!("{}", serde_json::to_string(&ev).expect("events serialise"));
    }
}
