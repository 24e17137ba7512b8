//! Miners that hide their name and pool: an unknown program (not a system one) that keeps a
//! core busy for minutes. Pure: fed each process's total CPU time at each sample.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Compiled, Finding};

/// How long the load must last, and how heavy it must be (fraction of one core).
pub const WINDOW_MS: u64 = 5 * 60_000;
pub const BUSY: f64 = 0.8;

#[derive(Default)]
pub struct CpuWatch {
    /// pid -> (ts_ms, total CPU seconds) samples, oldest first, at most a window's worth.
    samples: HashMap<u32, VecDeque<(u64, f64)>>,
    alarmed: HashSet<u32>,
}

impl CpuWatch {
    /// One sample of `pid` (running `exe`); a finding once its load has lasted the window.
    pub fn on_sample(
        &mut self,
        cfg: &Compiled,
        pid: u32,
        exe: &str,
        ts_ms: u64,
        cpu_secs: f64,
        out: &mut Vec<Finding>,
    ) {
        if !cfg.on("crypto_miner") || self.alarmed.contains(&pid) {
            return;
        }
        let s = self.samples.entry(pid).or_default();
        s.push_back((ts_ms, cpu_secs));
        while s.len() > 2
            && s.get(1)
                .is_some_and(|(t, _)| ts_ms.saturating_sub(*t) >= WINDOW_MS)
        {
            s.pop_front();
        }
        let (t0, c0) = s[0];
        let span = ts_ms.saturating_sub(t0);
        if span < WINDOW_MS {
            return;
        }
        let load = (cpu_secs - c0) / (span as f64 / 1000.0);
        if load < BUSY {
            return;
        }
        self.alarmed.insert(pid);
        out.push(Finding {
            alarm_type: "crypto_miner",
            key: exe.to_string(),
            pid,
            rule: Some("sustained CPU".into()),
            file: Some(exe.to_string()),
            details: vec![format!(
                "{exe} (not a system program) kept {:.0} % of a core busy for {} minutes",
                load * 100.0,
                span / 60_000
            )],
            isolate: true,
            ..Default::default()
        });
    }

    /// Forgets processes no longer sampled (exited).
    pub fn retain(&mut self, alive: &HashSet<u32>) {
        self.samples.retain(|p, _| alive.contains(p));
        self.alarmed.retain(|p| alive.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostward_proto::behaviour::BehaviourPolicy;

    #[test]
    fn only_a_load_that_lasts_the_window_alarms_once() {
        let c = Compiled::new(BehaviourPolicy::default()).unwrap();
        let mut w = CpuWatch::default();
        let mut out = Vec::new();
        // 95 % of a core, sampled every 5 s: nothing before 5 minutes, one alarm then.
        for i in 0..=70u64 {
            w.on_sample(
                &c,
                42,
                "/tmp/.x/kthreadd",
                i * 5_000,
                i as f64 * 4.75,
                &mut out,
            );
            if i * 5_000 < WINDOW_MS {
                assert!(out.is_empty(), "at {i}");
            }
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].details[0].contains("95 %"), "{:?}", out[0].details);
        // Half a core for an hour is a busy service, not a miner.
        let mut calm = Vec::new();
        for i in 0..=720u64 {
            w.on_sample(
                &c,
                43,
                "/opt/app/worker",
                i * 5_000,
                i as f64 * 2.5,
                &mut calm,
            );
        }
        assert!(calm.is_empty());
        // A burst that stops is no miner either.
        for i in 0..=100u64 {
            let cpu = (i.min(30)) as f64 * 5.0;
            w.on_sample(&c, 44, "/tmp/build", i * 5_000, cpu, &mut calm);
        }
        assert!(calm.is_empty());
        w.retain(&[42].into());
        assert!(w.samples.contains_key(&42) && !w.samples.contains_key(&43));
    }
}
