//! Reconnect delays: exponential with FULL jitter, so that agents cut off by a center restart
//! come back spread over the whole window instead of in synchronized waves.

use std::time::Duration;

pub const BASE: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(60);

/// Upper bound of the delay before reconnect attempt `attempt` (0-based): min(cap, base * 2^attempt).
pub fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    // 2^attempt overflows quickly; past 2^20 every realistic base is over the cap anyway.
    let factor = 1u32 << attempt.min(20);
    base.checked_mul(factor).map_or(cap, |d| d.min(cap))
}

/// The delay itself: `unit` is a uniform sample in [0, 1], so the function stays pure.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    ceiling(attempt, base, cap).mul_f64(unit.clamp(0.0, 1.0))
}

/// Delay with the default base and cap and a fresh random sample.
pub fn delay(attempt: u32) -> Duration {
    full_jitter(attempt, BASE, CAP, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let s = Duration::from_secs;
        assert_eq!(ceiling(0, BASE, CAP), s(1));
        assert_eq!(ceiling(1, BASE, CAP), s(2));
        assert_eq!(ceiling(5, BASE, CAP), s(32));
        assert_eq!(ceiling(6, BASE, CAP), s(60));
        assert_eq!(ceiling(200, BASE, CAP), s(60));
        assert_eq!(
            ceiling(u32::MAX, Duration::from_secs(u64::MAX / 2), CAP),
            s(60)
        );
    }

    #[test]
    fn jitter_stays_within_zero_and_ceiling() {
        for attempt in 0..40 {
            let top = ceiling(attempt, BASE, CAP);
            assert_eq!(full_jitter(attempt, BASE, CAP, 0.0), Duration::ZERO);
            assert_eq!(full_jitter(attempt, BASE, CAP, 1.0), top);
            assert!(full_jitter(attempt, BASE, CAP, 0.5) <= top);
            assert!(
                full_jitter(attempt, BASE, CAP, 7.0) <= top,
                "out-of-range samples are clamped"
            );
            let d = delay(attempt);
            assert!(d <= top && d <= CAP, "{d:?} > {top:?}");
        }
    }
}
