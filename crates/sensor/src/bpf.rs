//! The BPF tier: loads `bpf/sensor.bpf.o` with aya, attaches its tp_btf programs, drains the
//! ring buffer into the event channel and keeps the quarantine's deny map.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::{Counters, InodeKey, cnproc, raw};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor.bpf.o"));

/// (program, tracepoint) pairs in the object.
const PROGRAMS: &[(&str, &str)] = &[
    ("handle_exec", "sched_process_exec"),
    ("handle_fork", "sched_process_fork"),
    ("handle_exit", "sched_process_exit"),
    ("handle_tcp_state", "inet_sock_set_state"),
];

/// The system-call program, attached only when asked for (see `Options::syscall_events`).
const SYSCALLS: (&str, &str) = ("handle_sys_exit", "sys_exit");

#[repr(C)]
#[derive(Clone, Copy)]
struct Key {
    ino: u64,
    dev: u32,
    pad: u32,
}

// SAFETY: plain integers, no padding beyond the explicit field.
unsafe impl aya::Pod for Key {}

/// How long a lone event may wait in the ring buffer: short beside the 1 s alarm goal, long
/// enough that an idle agent wakes only ten times a second for it.
const DRAIN_MS: u64 = 100;

/// Decodes one record and hands it on; false when the consumer is gone. A record the queue
/// has no room for is counted lost, never waited for: a stalled consumer must not stall the
/// ring buffer into losing newer events silently.
fn deliver(item: &[u8], tx: &mpsc::Sender<crate::Event>, counters: &Counters) -> bool {
    match raw::decode(item) {
        Ok(ev) => match tx.try_send(ev) {
            Ok(()) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.dropped_user.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        },
        Err(e) => {
            counters.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "sensor: record skipped");
        }
    }
    true
}

pub struct Loaded {
    bpf: Ebpf,
    /// The kernel's parsed BTF (megabytes): kept only until the LSM attempt, then dropped.
    btf: Option<Btf>,
}

/// Loads and attaches every program (the system-call one when `syscalls`); any failure means
/// this tier is not usable here.
pub fn load(syscalls: bool) -> Result<Loaded, String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
    let mut bpf = Ebpf::load(OBJECT).map_err(|e| format!("loading the BPF object: {e:?}"))?;
    for (prog, tp) in PROGRAMS.iter().chain(syscalls.then_some(&SYSCALLS)) {
        let p: &mut BtfTracePoint = bpf
            .program_mut(prog)
            .ok_or_else(|| format!("program {prog} missing from the object"))?
            .try_into()
            .map_err(|e| format!("{prog}: {e}"))?;
        p.load(tp, &btf)
            .map_err(|e| format!("loading tp_btf/{tp}: {e}"))?;
        p.attach()
            .map_err(|e| format!("attaching tp_btf/{tp}: {e}"))?;
    }
    Ok(Loaded {
        bpf,
        btf: Some(btf),
    })
}

impl Loaded {
    /// Loads and attaches the BPF-LSM exec check; Err names why the kernel refused it.
    pub fn try_lsm(&mut self) -> Result<(), String> {
        let btf = self
            .btf
            .take()
            .ok_or("the kernel's BTF was already released")?;
        let p: &mut aya::programs::Lsm = self
            .bpf
            .program_mut("deny_exec_lsm")
            .ok_or("program deny_exec_lsm missing")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| e.to_string())?;
        p.load("bprm_check_security", &btf)
            .map_err(|e| e.to_string())?;
        p.attach().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Runs until the receiver is dropped: ring buffer -> decode -> channel ([`deliver`]),
    /// and the proc connector's credential and ptrace events beside it. A connector event is
    /// handed on after the ring buffer is drained, so the exec it follows comes first.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<crate::Event>,
        counters: Arc<Counters>,
        mut deny: mpsc::UnboundedReceiver<(InodeKey, bool)>,
        connector: Option<(cnproc::Listener, PathBuf)>,
    ) {
        let ring = match self.bpf.take_map("events").map(RingBuf::try_from) {
            Some(Ok(r)) => r,
            _ => {
                tracing::error!("sensor: the ring buffer map is missing");
                return;
            }
        };
        let stats: Option<PerCpuArray<MapData, u64>> =
            self.bpf.take_map("stats").and_then(|m| m.try_into().ok());
        let mut deny_map: Option<BpfHashMap<MapData, Key, u8>> = self
            .bpf
            .take_map("deny_exec")
            .and_then(|m| m.try_into().ok());
        // SAFETY: the ring buffer's descriptor is owned by `ring`, which the AsyncFd owns and
        // drops (deregistering first); nothing else closes it.
        let mut ring = match unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "sensor: cannot poll the ring buffer");
                return;
            }
        };
        let (mut connector, proc) = match connector {
            // SAFETY: the socket is owned by the listener, which the AsyncFd owns and drops
            // (deregistering first); nothing else closes it.
            Some((l, proc)) => {
                match unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) } {
                    Ok(fd) => (Some(fd), proc),
                    Err(e) => {
                        tracing::error!(error = %e, "sensor: cannot poll the proc connector");
                        (None, proc)
                    }
                }
            }
            None => (None, PathBuf::new()),
        };
        // The connector's own count, added to the BPF side's in `seen_kernel`.
        let conn_counters = Counters::default();
        let mut buf = vec![0u8; 8192];
        let mut events = Vec::new();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        // The BPF side wakes us only for a batch (see WAKEUP_BYTES): drain on a short timer
        // too, which bounds the delay of a lone event.
        let mut drain = tokio::time::interval(std::time::Duration::from_millis(DRAIN_MS));
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = drain.tick() => {
                    let rb = ring.get_mut();
                    while let Some(item) = rb.next() {
                        if !deliver(&item, &tx, &counters) {
                            return;
                        }
                    }
                }
                guard = ring.readable_mut() => {
                    let Ok(mut guard) = guard else { return };
                    let rb = guard.get_inner_mut();
                    while let Some(item) = rb.next() {
                        if !deliver(&item, &tx, &counters) {
                            return;
                        }
                    }
                    guard.clear_ready();
                }
                guard = async { connector.as_ref().expect("guarded").readable().await }, if connector.is_some() => {
                    let Ok(mut guard) = guard else { return };
                    let rb = ring.get_mut();
                    while let Some(item) = rb.next() {
                        if !deliver(&item, &tx, &counters) {
                            return;
                        }
                    }
                    let read = guard.get_ref().get_ref().drain(&proc, &conn_counters, &mut buf, &mut events);
                    guard.clear_ready();
                    drop(guard);
                    if !cnproc::send(&tx, &counters, events.drain(..)) {
                        return;
                    }
                    // The ring buffer goes on without it.
                    if let Err(e) = read {
                        tracing::error!(error = %e, "sensor: proc connector read failed; no more credential-change or ptrace events");
                        connector = None;
                    }
                }
                change = deny.recv() => {
                    let Some((k, on)) = change else { return };
                    if let Some(m) = deny_map.as_mut() {
                        let key = Key { ino: k.ino, dev: k.dev, pad: 0 };
                        let r = if on { m.insert(key, 1u8, 0) } else { m.remove(&key) };
                        if let Err(e) = r {
                            tracing::warn!(error = %e, ino = k.ino, "sensor: deny map update failed");
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(s) = &stats {
                        let sum = |i: u32| s.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0);
                        let conn = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                        counters.seen_kernel.store(sum(0) + conn(&conn_counters.seen_kernel), Ordering::Relaxed);
                        counters.dropped_kernel.store(sum(1) + conn(&conn_counters.dropped_kernel), Ordering::Relaxed);
                        counters.incomplete.store(conn(&conn_counters.incomplete), Ordering::Relaxed);
                    }
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}
