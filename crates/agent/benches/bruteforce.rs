//! Throughput and memory of the brute-force engine (no libtest harness; the target is at
//! least 500,000 events/s):
//!
//!   cargo bench -p hostward-agent --bench bruteforce
//!
//! `spread`: 1,000,000 failures from 10,000 addresses, 1,000 a second, so every address crosses
//! the long rule and is then hammered while blocked. `flood`: 1,000,000 failures from
//! 1,000,000 addresses against the 100,000-source cap (eviction on every event). Each prints one
//! JSON line; bytes are the live heap after the run, counted by this bench's allocator.
//! Cargo appends `--bench`; it is ignored.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hostward_agent::bruteforce::engine::{Decision, Engine, Policy};
use hostward_agent::bruteforce::{AuthEvent, AuthOutcome, Service};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EVENTS: u32 = 1_000_000;
const T0: i64 = 1_700_000_000;

fn main() {
    run("spread", 10_000);
    run("flood", EVENTS);
}

fn run(name: &str, addrs: u32) {
    // Built before timing: the engine, not the test data, is measured.
    let users = [
        "root", "admin", "oracle", "test", "ubuntu", "postgres", "git",
    ];
    let events: Vec<AuthEvent> = (0..EVENTS)
        .map(|i| {
            let addr = IpAddr::V4(Ipv4Addr::from(0x6400_0000 + (i % addrs)));
            let user = users[(i as usize / addrs as usize) % users.len()];
            AuthEvent {
                ts: T0 + i64::from(i / 1000),
                service: Service::Ssh,
                outcome: AuthOutcome::Failure,
                user: user.to_string(),
                invalid_user: false,
                source: addr,
                port: Some(40_000 + (i % 20_000) as u16),
                method: Some("password".into()),
                count: 1,
                line: format!(
                    "Failed password for {user} from {addr} port {} ssh2",
                    40_000 + i % 20_000
                ),
            }
        })
        .collect();

    let mut engine = Engine::new(Policy::default()).expect("default policy");
    let before = LIVE.load(Ordering::Relaxed);
    let (mut blocks, mut alarms) = (0u64, 0u64);
    let start = Instant::now();
    for ev in &events {
        for d in engine.on_event(black_box(ev), 12) {
            match d {
                Decision::Block(_) => blocks += 1,
                Decision::Alarm(_) => alarms += 1,
                Decision::UsualIpLearned { .. } => {}
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "{{\"bench\":\"bruteforce_{name}\",\"events\":{EVENTS},\"addresses\":{addrs},\"secs\":{secs:.3},\"events_per_sec\":{:.0},\"blocks\":{blocks},\"alarms\":{alarms},\"tracked_sources\":{},\"engine_bytes\":{bytes}}}",
        f64::from(EVENTS) / secs,
        engine.tracked_sources(),
    );
}
