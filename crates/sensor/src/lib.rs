//! hostward-sensor: what processes do, as it happens, from the strongest source this kernel
//! allows. Tiers are chosen at start by trying, never by reading the kernel config (a VM kernel
//! with `bpf` in its LSM list still refuses every LSM program):
//!
//! - `lsm`: the tp_btf programs plus a BPF-LSM exec check, which refuses the inodes in the deny
//!   map in the kernel.
//! - `bpf`: the tp_btf programs (exec, fork, exit, outbound TCP; with `syscall_events`, memfd
//!   creation, accept and module loads) into a ring buffer; an exec of an inode in the deny map
//!   is killed before it runs an instruction of its own. Credential changes and ptrace attach
//!   come from the proc connector beside it.
//!
//! The agent does not fill the deny map yet: it refuses isolated files (copies included, by
//! size and SHA-256) with fanotify permission events, on every tier (`quarantine::deny`).
//! - `proc`: the netlink proc connector and `/proc`, where BPF is unusable. Short-lived
//!   processes may be gone before `/proc` is read (counted as `incomplete`), and there are no
//!   connect events or exec kills.
//!
//! The BPF object is built from `bpf/sensor.bpf.c` and committed (`bpf/build.sh`; CI checks the
//! two match); `build.rs` rebuilds it when clang is present, so `cargo build` needs no clang.

pub mod event;
pub mod procfs;
pub mod raw;

mod bpf;
pub mod cnproc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use event::{Connect, Event, Exec, Fd, Proto, Task};

/// Where events come from; the order is strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Lsm,
    Bpf,
    Proc,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Lsm => "lsm",
            Tier::Bpf => "bpf",
            Tier::Proc => "proc",
        }
    }
}

/// What the agent's config asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    /// The strongest tier that loads.
    #[default]
    Auto,
    /// Never load BPF (a kernel where it misbehaves, or a test of the fallback).
    Proc,
}

/// How the sensor is started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub want: Want,
    /// Attach the system-call program (memfd creation, accept, module loads). Off by default:
    /// a syscall tracepoint sends every system call of every task through the kernel's slow
    /// path (`bench/sensor.sh` measures it).
    pub syscall_events: bool,
    /// Where /proc is (a test may point elsewhere).
    pub proc: PathBuf,
}

/// A file by (kernel device, inode), as the kernel sees `bprm->file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub ino: u64,
    /// The kernel's `s_dev`: see [`procfs::kernel_dev`].
    pub dev: u32,
}

/// Counters of the event path, read into every heartbeat.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the kernel side offered (BPF: per-CPU counter; proc: datagrams).
    pub seen_kernel: AtomicU64,
    /// Lost in the kernel: ring buffer full (BPF), socket overflow (proc; each counts one
    /// overflow, of an unknown number of events).
    pub dropped_kernel: AtomicU64,
    /// Decoded and handed on. In the BPF tier `seen_kernel = received + dropped_kernel +
    /// dropped_user + undecodable`, give or take the records in the ring buffer.
    pub received: AtomicU64,
    /// Lost because the consumer's queue was full.
    pub dropped_user: AtomicU64,
    /// Proc tier: execs whose process was gone before /proc was read.
    pub incomplete: AtomicU64,
    pub undecodable: AtomicU64,
}

/// A snapshot of [`Counters`] with the tier, for the heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub seen_kernel: u64,
    pub dropped_kernel: u64,
    pub received: u64,
    pub dropped_user: u64,
    pub incomplete: u64,
    pub undecodable: u64,
}

pub struct Sensor {
    pub tier: Tier,
    /// Why this tier and not a stronger one, in words for the server page.
    pub reason: String,
    counters: Arc<Counters>,
    deny: Option<mpsc::UnboundedSender<(InodeKey, bool)>>,
}

/// Events queued between the sensor and its consumer: about 2 s of a 5,000 exec/s storm.
pub const QUEUE: usize = 10_000;

impl Sensor {
    /// Starts the strongest tier that works (on the current tokio runtime) and returns the
    /// sensor with its event stream; Err only when no tier works at all.
    pub fn start(opts: Options) -> Result<(Sensor, mpsc::Receiver<Event>), String> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let mut refused = Vec::new();
        let proc = opts.proc;
        if opts.want == Want::Auto {
            match bpf::load(opts.syscall_events) {
                Ok(mut loaded) => {
                    let (tier, why) = match loaded.try_lsm() {
                        Ok(()) => (Tier::Lsm, "BPF-LSM and the tracepoints loaded".to_string()),
                        Err(e) => (
                            Tier::Bpf,
                            format!("BPF-LSM refused by this kernel ({e}); the tracepoints loaded"),
                        ),
                    };
                    let (mut why, connector) = match cnproc::listen(cnproc::Events::CredsAndPtrace)
                    {
                        Ok(l) => (why, Some((l, proc))),
                        Err(e) => (
                            format!("{why}; no credential-change or ptrace events ({e})"),
                            None,
                        ),
                    };
                    if !opts.syscall_events {
                        why.push_str("; system-call events (memfd creation, accept, module loads) off: syscall_events = true in agent.toml turns them on");
                    }
                    let (dtx, drx) = mpsc::unbounded_channel();
                    tokio::spawn(loaded.run(tx, counters.clone(), drx, connector));
                    return Ok((
                        Sensor {
                            tier,
                            reason: why,
                            counters,
                            deny: Some(dtx),
                        },
                        rx,
                    ));
                }
                Err(e) => refused.push(format!("BPF unusable: {e}")),
            }
        } else {
            refused.push("BPF turned off in agent.toml ([sensor] tier = \"proc\")".to_string());
        }
        let listener = cnproc::listen(cnproc::Events::All)
            .map_err(|e| format!("{}; {e}", refused.join("; ")))?;
        tokio::spawn(listener.run(proc, tx, counters.clone()));
        refused.push(
            "events from the proc connector and /proc: no outbound-connection events, no exec kills, short-lived processes may lack details".into(),
        );
        Ok((
            Sensor {
                tier: Tier::Proc,
                reason: refused.join("; "),
                counters,
                deny: None,
            },
            rx,
        ))
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            seen_kernel: g(&c.seen_kernel),
            dropped_kernel: g(&c.dropped_kernel),
            received: g(&c.received),
            dropped_user: g(&c.dropped_user),
            incomplete: g(&c.incomplete),
            undecodable: g(&c.undecodable),
        }
    }

    /// Whether this tier can stop a file from running (kill at exec or refuse it).
    pub fn can_deny_exec(&self) -> bool {
        self.deny.is_some()
    }

    /// Adds or removes a file from the kernel's deny list; false when this tier has none.
    pub fn deny_exec(&self, key: InodeKey, on: bool) -> bool {
        self.deny
            .as_ref()
            .is_some_and(|d| d.send((key, on)).is_ok())
    }
}

/// CLOCK_BOOTTIME in ns, the clock BPF's `bpf_ktime_get_boot_ns` uses.
pub fn boot_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
