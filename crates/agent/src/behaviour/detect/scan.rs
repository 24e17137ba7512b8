//! Port scans against the host (many destination ports from one source in a short window) and
//! visits to decoy ports. Pure: fed each inbound connection attempt.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use super::{Compiled, Finding};

/// Sources tracked at most; a spoofed flood beyond it forgets the quietest.
const MAX_SOURCES: usize = 10_000;

/// An inbound connection attempt (a TCP SYN, or a connection to a decoy port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub ts_ms: u64,
    pub source: IpAddr,
    pub port: u16,
    /// It reached one of our decoy listeners.
    pub honeypot: bool,
}

#[derive(Default)]
struct Source {
    ports: VecDeque<(u64, u16)>,
    /// No new alarm for this source before then (it is blocked, or was just reported).
    quiet_until_ms: u64,
    last_ms: u64,
}

#[derive(Default)]
pub struct Scans {
    sources: HashMap<IpAddr, Source>,
}

impl Scans {
    pub fn on_probe(&mut self, cfg: &Compiled, p: Probe, out: &mut Vec<Finding>) {
        if p.source.is_loopback() {
            return;
        }
        let pol = &cfg.policy;
        if self.sources.len() >= MAX_SOURCES
            && !self.sources.contains_key(&p.source)
            && let Some(old) = self
                .sources
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(a, _)| *a)
        {
            self.sources.remove(&old);
        }
        let s = self.sources.entry(p.source).or_default();
        s.last_ms = p.ts_ms;
        let quiet_ms = u64::from(pol.scan_block_minutes) * 60_000;
        if p.honeypot && cfg.on("honeypot") {
            if p.ts_ms >= s.quiet_until_ms {
                s.quiet_until_ms = p.ts_ms + quiet_ms;
                out.push(Finding {
                    alarm_type: "honeypot",
                    key: p.source.to_string(),
                    source_ip: Some(p.source),
                    details: vec![format!("{} connected to decoy port {}", p.source, p.port)],
                    block: pol.scan_block,
                    ..Default::default()
                });
            }
            return;
        }
        if !cfg.on("port_scan") {
            return;
        }
        let window_ms = u64::from(pol.scan_window_secs) * 1000;
        while s
            .ports
            .front()
            .is_some_and(|(t, _)| p.ts_ms.saturating_sub(*t) > window_ms)
        {
            s.ports.pop_front();
        }
        s.ports.push_back((p.ts_ms, p.port));
        // Bounded: only the distinct ports matter, and the threshold caps how many we need.
        if s.ports.len() > 4 * pol.scan_ports as usize {
            s.ports.pop_front();
        }
        let distinct: BTreeSet<u16> = s.ports.iter().map(|(_, port)| *port).collect();
        if distinct.len() >= pol.scan_ports as usize && p.ts_ms >= s.quiet_until_ms {
            s.quiet_until_ms = p.ts_ms + quiet_ms;
            let sample: Vec<String> = distinct.iter().take(20).map(u16::to_string).collect();
            out.push(Finding {
                alarm_type: "port_scan",
                key: p.source.to_string(),
                source_ip: Some(p.source),
                details: vec![
                    format!(
                        "{} probed {} ports within {} s",
                        p.source,
                        distinct.len(),
                        pol.scan_window_secs
                    ),
                    format!("ports: {}", sample.join(", ")),
                ],
                block: pol.scan_block,
                ..Default::default()
            });
        }
    }
}
