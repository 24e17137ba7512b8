//! When the daily scan runs: once a day at a random point of the policy's window (server local
//! time), plus a random delay up to the policy's jitter, so a fleet spreads its scans out. Pure:
//! the caller passes the clock, the local UTC offset (`hostward_agent_core::util::local_offset_secs`)
//! and the random draws.

use hostward_proto::risk::RiskPolicy;

const DAY: i64 = 86_400;

/// The first scan time strictly after `now`, in Unix seconds. `offset_secs` is local time minus
/// UTC; `spot` (0..1) picks the point inside the window and `jitter` (0..1) the extra delay.
pub fn next_scan_at(
    now: i64,
    offset_secs: i64,
    policy: &RiskPolicy,
    spot: f64,
    jitter: f64,
) -> i64 {
    let start = i64::from(policy.window_start_min) * 60;
    let mut end = i64::from(policy.window_end_min) * 60;
    if end <= start {
        end += DAY; // the window crosses midnight
    }
    let into_window = ((end - start) as f64 * spot.clamp(0.0, 1.0)) as i64;
    let delay = (f64::from(policy.jitter_secs) * jitter.clamp(0.0, 1.0)) as i64;
    let local_now = now + offset_secs;
    let local_midnight = local_now.div_euclid(DAY) * DAY;
    // Yesterday's window may still be running (it can cross midnight): try it first.
    for day in -1..=1 {
        let at = local_midnight + day * DAY + start + into_window + delay - offset_secs;
        if at > now {
            return at;
        }
    }
    local_midnight + 2 * DAY + start + into_window + delay - offset_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(start: u32, end: u32, jitter: u32) -> RiskPolicy {
        RiskPolicy {
            window_start_min: start,
            window_end_min: end,
            jitter_secs: jitter,
            ..Default::default()
        }
    }

    // 2026-12-01 12:00:00 UTC
    const NOON: i64 = 1_796_126_400;

    #[test]
    fn default_window_is_the_coming_night_in_local_time() {
        let p = policy(0, 240, 0);
        let midnight_utc = NOON + 12 * 3600;
        assert_eq!(next_scan_at(NOON, 0, &p, 0.0, 0.0), midnight_utc);
        assert_eq!(next_scan_at(NOON, 0, &p, 0.5, 0.0), midnight_utc + 2 * 3600);
        // UTC+8: local midnight is 16:00 UTC the same day.
        assert_eq!(next_scan_at(NOON, 8 * 3600, &p, 0.0, 0.0), NOON + 4 * 3600);
        // UTC-5: local midnight is 05:00 UTC the next day.
        assert_eq!(
            next_scan_at(NOON, -5 * 3600, &p, 0.0, 0.0),
            midnight_utc + 5 * 3600
        );
    }

    #[test]
    fn jitter_adds_at_most_its_bound_and_results_stay_inside_window_plus_jitter() {
        let p = policy(0, 240, 7200);
        let midnight = NOON + 12 * 3600;
        for (spot, jit) in [(0.0, 1.0), (1.0, 1.0), (0.3, 0.7), (0.99, 0.01)] {
            let at = next_scan_at(NOON, 0, &p, spot, jit);
            assert!(
                at >= midnight && at <= midnight + 240 * 60 + 7200,
                "{spot} {jit}: {at}"
            );
        }
    }

    #[test]
    fn always_strictly_in_the_future_and_within_two_days() {
        let p = policy(1380, 60, 600); // 23:00 to 01:00, crossing midnight
        for now in (NOON..NOON + 2 * DAY).step_by(1800) {
            for offset in [-11 * 3600, 0, 5 * 3600 + 1800, 14 * 3600] {
                let at = next_scan_at(now, offset, &p, 0.5, 0.5);
                assert!(
                    at > now && at <= now + 2 * DAY,
                    "now {now} offset {offset}: {at}"
                );
                let local = (at + offset).rem_euclid(DAY);
                let in_window = local >= 23 * 3600 || local <= 3600 + 600;
                assert!(in_window, "now {now} offset {offset}: local {local}");
            }
        }
    }
}
