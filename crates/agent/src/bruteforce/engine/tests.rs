//! Tests of the brute-force decision engine on recorded event sequences, plus properties.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use hostward_proto::bruteforce::Net;

const T0: i64 = 1_700_000_000;
const NOON: u8 = 12;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ev(ts: i64, outcome: AuthOutcome, addr: &str, user: &str, service: Service) -> AuthEvent {
    AuthEvent {
        ts,
        service,
        outcome,
        user: user.into(),
        invalid_user: false,
        source: ip(addr),
        port: Some(40_000),
        method: Some("password".into()),
        count: 1,
        line: format!("Failed password for {user} from {addr} port 40000 ssh2 at {ts}"),
    }
}

fn fail(ts: i64, addr: &str) -> AuthEvent {
    ev(ts, AuthOutcome::Failure, addr, "root", Service::Ssh)
}

fn fail_as(ts: i64, addr: &str, user: &str, service: Service) -> AuthEvent {
    ev(ts, AuthOutcome::Failure, addr, user, service)
}

fn login(ts: i64, addr: &str, user: &str) -> AuthEvent {
    let mut e = ev(ts, AuthOutcome::Success, addr, user, Service::Ssh);
    e.line = format!("Accepted password for {user} from {addr} port 40000 ssh2");
    e
}

fn engine(p: Policy) -> Engine {
    Engine::new(p).unwrap()
}

fn blocks(ds: &[Decision]) -> Vec<&Block> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Block(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn alarms(ds: &[Decision]) -> Vec<&Alarm> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Alarm(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn kinds(ds: &[Decision]) -> Vec<AlarmKind> {
    alarms(ds).iter().map(|a| a.kind).collect()
}

/// Feeds `events` and returns every decision.
fn feed(e: &mut Engine, events: &[AuthEvent]) -> Vec<Decision> {
    events.iter().flat_map(|x| e.on_event(x, NOON)).collect()
}

/// Policy with the hour window and learning out of the way.
fn quiet() -> Policy {
    Policy {
        learn_usual_ips: false,
        ..Policy::default()
    }
}

// ---- thresholds --------------------------------------------------------------------------

#[test]
fn four_failures_in_30s_do_not_block_the_fifth_does() {
    let mut e = engine(quiet());
    for i in 0..4 {
        assert_eq!(e.on_event(&fail(T0 + i * 7, "203.0.113.9"), NOON), vec![]);
    }
    let ds = e.on_event(&fail(T0 + 28, "203.0.113.9"), NOON);
    let b = blocks(&ds);
    assert_eq!(b.len(), 1);
    let b = b[0];
    assert_eq!(b.addr, ip("203.0.113.9"));
    assert_eq!(b.failures, 5);
    assert_eq!(b.window_secs, 30);
    assert_eq!(b.service, Service::Ssh);
    assert_eq!(b.duration, Duration::from_secs(720 * 60));
    assert_eq!(b.at, T0 + 28);
    assert_eq!(b.until, T0 + 28 + 720 * 60);
    assert!(!b.escalated);
    assert_eq!(b.users, vec!["root"]);
    assert_eq!(b.sample_lines.len(), 5);
    assert_eq!(kinds(&ds), vec![AlarmKind::BruteForce]);
    let a = alarms(&ds)[0];
    assert_eq!(a.blocked_until, Some(b.until));
    assert_eq!(a.failures, 5);
    assert_eq!(e.blocked_until(ip("203.0.113.9"), T0 + 29), Some(b.until));
}

#[test]
fn the_short_window_is_inclusive_of_30_seconds_and_no_more() {
    // Failures at 0, 10, 20, 25 and 30: the first is exactly 30 s before the last.
    let mut e = engine(quiet());
    let ds = feed(
        &mut e,
        &[0, 10, 20, 25, 30].map(|t| fail(T0 + t, "198.51.100.1")),
    );
    assert_eq!(blocks(&ds).len(), 1);
    // At 0, 10, 20, 25, 31 the first has left the window: four in it.
    let mut e = engine(quiet());
    let ds = feed(
        &mut e,
        &[0, 10, 20, 25, 31].map(|t| fail(T0 + t, "198.51.100.1")),
    );
    assert!(ds.is_empty(), "{ds:?}");
}

#[test]
fn the_short_window_slides() {
    // One failure every 8 s: any 30 s holds at most 4 (0, 8, 16, 24; 32 drops 0), so the
    // short rule never fires, and the long rule fires at the 15th.
    let mut e = engine(quiet());
    for i in 0..14 {
        assert!(
            e.on_event(&fail(T0 + i * 8, "198.51.100.2"), NOON)
                .is_empty(),
            "at {i}"
        );
    }
    let ds = e.on_event(&fail(T0 + 14 * 8, "198.51.100.2"), NOON);
    let b = blocks(&ds);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].failures, b[0].window_secs), (15, 3600));
    // Every 7 s: 0, 7, 14, 21, 28 fit in 30 s.
    let mut e = engine(quiet());
    let ds = feed(
        &mut e,
        &[0, 7, 14, 21].map(|t| fail(T0 + t, "198.51.100.3")),
    );
    assert!(ds.is_empty());
    assert_eq!(
        blocks(&e.on_event(&fail(T0 + 28, "198.51.100.3"), NOON)).len(),
        1
    );
}

#[test]
fn the_long_rule_needs_15_within_an_hour() {
    // One failure every 240 s: 15 span 3,360 s -> block at the 15th.
    let mut e = engine(quiet());
    let evs: Vec<_> = (0..14).map(|i| fail(T0 + i * 240, "192.0.2.7")).collect();
    assert!(feed(&mut e, &evs).is_empty());
    let ds = e.on_event(&fail(T0 + 14 * 240, "192.0.2.7"), NOON);
    assert_eq!(blocks(&ds)[0].window_secs, 3600);
    // One every 258 s: 15 span 3,612 s > 3,600 -> never, however long it goes on.
    let mut e = engine(quiet());
    let evs: Vec<_> = (0..100).map(|i| fail(T0 + i * 258, "192.0.2.8")).collect();
    assert!(feed(&mut e, &evs).is_empty());
    // Exactly 3,600 s between the 1st and 15th (inclusive window): block.
    let mut e = engine(quiet());
    let mut evs: Vec<_> = (0..14).map(|i| fail(T0 + i * 200, "192.0.2.9")).collect();
    evs.push(fail(T0 + 3600, "192.0.2.9"));
    assert_eq!(blocks(&feed(&mut e, &evs)).len(), 1);
}

#[test]
fn repeated_message_counts_weigh_as_many_failures() {
    let mut e = engine(quiet());
    let mut first = fail(T0, "192.0.2.10");
    first.count = 3;
    assert!(e.on_event(&first, NOON).is_empty());
    let mut second = fail(T0 + 5, "192.0.2.10");
    second.count = 2;
    let ds = e.on_event(&second, NOON);
    assert_eq!(blocks(&ds)[0].failures, 5);
    // One line standing for 40 failures blocks at once and reports them all.
    let mut e = engine(quiet());
    let mut burst = fail(T0, "192.0.2.11");
    burst.count = 40;
    assert_eq!(blocks(&e.on_event(&burst, NOON))[0].failures, 40);
    // A count of 0 is another line of an attempt already counted: evidence, never a failure.
    let mut e = engine(quiet());
    let evs: Vec<_> = (0..50)
        .map(|i| {
            let mut x = fail(T0 + i, "192.0.2.12");
            x.count = 0;
            x
        })
        .collect();
    assert!(blocks(&feed(&mut e, &evs)).is_empty());
    // ...whose user and line still reach the block's evidence.
    let mut last = fail(T0 + 50, "192.0.2.12");
    last.user = "admin".into();
    let evs: Vec<_> = (0..5).map(|_| last.clone()).collect();
    let ds = feed(&mut e, &evs);
    assert_eq!(blocks(&ds)[0].failures, 5);
}

#[test]
fn configured_thresholds_apply() {
    let p = Policy {
        short_failures: 3,
        short_window_secs: 10,
        long_failures: 6,
        long_window_secs: 100,
        ..quiet()
    };
    let mut e = engine(p.clone());
    let ds = feed(&mut e, &[0, 5].map(|t| fail(T0 + t, "192.0.2.20")));
    assert!(ds.is_empty());
    assert_eq!(
        blocks(&e.on_event(&fail(T0 + 10, "192.0.2.20"), NOON))[0].window_secs,
        10
    );
    let mut e = engine(p);
    let evs: Vec<_> = (0..5).map(|i| fail(T0 + i * 19, "192.0.2.21")).collect();
    assert!(feed(&mut e, &evs).is_empty());
    assert_eq!(
        blocks(&e.on_event(&fail(T0 + 95, "192.0.2.21"), NOON))[0].window_secs,
        100
    );
}

#[test]
fn sources_are_counted_separately_and_services_together() {
    let mut e = engine(quiet());
    let mut evs = Vec::new();
    for i in 0..4 {
        evs.push(fail(T0 + i, "192.0.2.30"));
        evs.push(fail(T0 + i, "192.0.2.31"));
    }
    assert!(feed(&mut e, &evs).is_empty());
    // The fifth failure of .30 is on FTP: same attacker, counted together; the FTP failure
    // crossed the threshold, so the FTP duration applies.
    let ds = e.on_event(&fail_as(T0 + 5, "192.0.2.30", "ftp", Service::Ftp), NOON);
    let b = blocks(&ds);
    assert_eq!((b[0].addr, b[0].service), (ip("192.0.2.30"), Service::Ftp));
    assert_eq!(b[0].duration, Duration::from_secs(1440 * 60));
    assert_eq!(b[0].users, vec!["root", "ftp"]);
}

#[test]
fn block_durations_per_service_are_configurable() {
    let p = Policy {
        ssh_block_minutes: 1,
        other_block_minutes: 43_200,
        ..quiet()
    };
    let mut e = engine(p);
    let ds = feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.40")));
    assert_eq!(blocks(&ds)[0].duration, Duration::from_secs(60));
    let evs: Vec<_> = (0..5)
        .map(|i| fail_as(T0 + i, "192.0.2.41", "sa", Service::Mysql))
        .collect();
    let ds = feed(&mut e, &evs);
    assert_eq!(blocks(&ds)[0].duration, Duration::from_secs(43_200 * 60));
    assert_eq!(blocks(&ds)[0].service, Service::Mysql);
}

#[test]
fn blocked_sources_are_not_blocked_again_while_the_block_lasts() {
    let p = Policy {
        ssh_block_minutes: 10,
        ..quiet()
    };
    let mut e = engine(p);
    let ds = feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.50")));
    let until = blocks(&ds)[0].until;
    assert_eq!(until, T0 + 4 + 600);
    // The firewall is not applied yet, or another service logs: failures keep coming.
    let evs: Vec<_> = (5..100).map(|t| fail(T0 + t, "192.0.2.50")).collect();
    assert!(feed(&mut e, &evs).is_empty());
    // After the block, the failures that came during it still count: 95 in the last hour, so
    // the next failure re-blocks at once (long rule).
    let ds = e.on_event(&fail(until, "192.0.2.50"), NOON);
    let b = blocks(&ds);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].window_secs, 3600);
    assert!(b[0].failures >= 15);
    assert!(!b[0].escalated, "escalation is off by default");
    // Failures during a block that fall out of the window by its end do not count then.
    let mut e = engine(Policy {
        ssh_block_minutes: 120,
        ..quiet()
    });
    let ds = feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.51")));
    let until = blocks(&ds)[0].until;
    let evs: Vec<_> = (5..15).map(|t| fail(T0 + t, "192.0.2.51")).collect();
    assert!(feed(&mut e, &evs).is_empty());
    assert!(e.on_event(&fail(until + 1, "192.0.2.51"), NOON).is_empty());
}

#[test]
fn escalation_doubles_blocks_within_a_day_up_to_the_maximum() {
    let p = Policy {
        escalate: true,
        ssh_block_minutes: 720,
        ..quiet()
    };
    let mut e = engine(p);
    let addr = "192.0.2.60";
    let mut t = T0;
    let mut got = Vec::new();
    for _ in 0..8 {
        let evs: Vec<_> = (0..5).map(|i| fail(t + i, addr)).collect();
        let ds = feed(&mut e, &evs);
        let b = blocks(&ds)[0].clone();
        got.push((b.duration.as_secs() / 60, b.escalated));
        // Come back one hour after the block ends.
        t = b.until + 3600;
    }
    assert_eq!(
        got,
        vec![
            (720, false),
            (1440, true),
            (2880, true),
            (5760, true),
            (11_520, true),
            (23_040, true),
            (43_200, true),
            (43_200, true),
        ]
    );
    // More than 24 h after the last block ended: back to the base duration.
    let evs: Vec<_> = (0..5).map(|i| fail(t + 86_400 + i, addr)).collect();
    let ds = feed(&mut e, &evs);
    assert_eq!(blocks(&ds)[0].duration.as_secs() / 60, 720);
    assert!(!blocks(&ds)[0].escalated);
}

// ---- whitelist ---------------------------------------------------------------------------

#[test]
fn whitelisted_sources_alarm_but_are_never_blocked() {
    let p = Policy {
        whitelist: vec![
            "192.0.2.1".into(),
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "2001:db9::5".into(),
        ],
        ..quiet()
    };
    let mut e = engine(p);
    for addr in ["192.0.2.1", "10.200.3.4", "2001:db8:1::77", "2001:db9::5"] {
        let evs: Vec<_> = (0..50).map(|i| fail(T0 + i, addr)).collect();
        let ds = feed(&mut e, &evs);
        assert!(blocks(&ds).is_empty(), "{addr}");
        // One alarm, not one per failure past the threshold.
        assert_eq!(kinds(&ds), vec![AlarmKind::BruteForce], "{addr}");
        assert_eq!(alarms(&ds)[0].blocked_until, None);
        assert_eq!(e.blocked_until(ip(addr), T0 + 60), None);
    }
    // Neighbours are not covered.
    for addr in ["192.0.2.2", "11.0.0.1", "2001:db9::6", "2001:dba::1"] {
        let evs: Vec<_> = (0..5).map(|i| fail(T0 + i, addr)).collect();
        assert_eq!(blocks(&feed(&mut e, &evs)).len(), 1, "{addr}");
    }
}

#[test]
fn with_blocking_off_brute_force_alarms_once_and_blocks_nothing() {
    // The basic edition: the center sends `block: false`.
    let mut e = engine(Policy {
        block: false,
        ..quiet()
    });
    let evs: Vec<_> = (0..50).map(|i| fail(T0 + i, "192.0.2.9")).collect();
    let ds = feed(&mut e, &evs);
    assert!(blocks(&ds).is_empty());
    assert_eq!(kinds(&ds), vec![AlarmKind::BruteForce]);
    assert_eq!(alarms(&ds)[0].blocked_until, None);
    assert_eq!(e.blocked_until(ip("192.0.2.9"), T0 + 60), None);

    // Blocking back on: the next attack is blocked; off again (a switch to basic): lifted.
    e.set_policy(quiet()).unwrap();
    let evs: Vec<_> = (0..5).map(|i| fail(T0 + 100 + i, "192.0.2.10")).collect();
    assert_eq!(blocks(&feed(&mut e, &evs)).len(), 1);
    let lifted = e
        .set_policy(Policy {
            block: false,
            ..quiet()
        })
        .unwrap();
    assert_eq!(lifted, vec![ip("192.0.2.10")]);
}

#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_address() {
    let p = Policy {
        whitelist: vec!["192.0.2.0/24".into(), "::ffff:198.51.100.7".into()],
        ..quiet()
    };
    let mut e = engine(p);
    let evs: Vec<_> = (0..10).map(|i| fail(T0 + i, "::ffff:192.0.2.99")).collect();
    assert!(blocks(&feed(&mut e, &evs)).is_empty());
    let evs: Vec<_> = (0..10).map(|i| fail(T0 + i, "198.51.100.7")).collect();
    assert!(blocks(&feed(&mut e, &evs)).is_empty());
    // Mixed spellings of one attacker add up, and the block names the IPv4 address.
    let mut evs: Vec<_> = (0..2).map(|i| fail(T0 + i, "203.0.113.5")).collect();
    evs.extend((2..5).map(|i| fail(T0 + i, "::ffff:203.0.113.5")));
    let ds = feed(&mut e, &evs);
    assert_eq!(
        blocks(&ds)[0].addr,
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5))
    );
    assert!(e.blocked_until(ip("::ffff:203.0.113.5"), T0 + 10).is_some());
}

#[test]
fn a_new_whitelist_lifts_blocks_it_covers() {
    let mut e = engine(quiet());
    feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.70")));
    feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.71")));
    let lifted = e
        .set_policy(Policy {
            whitelist: vec!["192.0.2.70".into()],
            ..quiet()
        })
        .unwrap();
    assert_eq!(lifted, vec![ip("192.0.2.70")]);
    assert_eq!(e.blocked_until(ip("192.0.2.70"), T0 + 10), None);
    assert!(e.blocked_until(ip("192.0.2.71"), T0 + 10).is_some());
    let evs: Vec<_> = (10..30).map(|t| fail(T0 + t, "192.0.2.70")).collect();
    assert!(blocks(&feed(&mut e, &evs)).is_empty());
    // Leaving the whitelist: the alarm-only record does not stop a real block.
    e.set_policy(quiet()).unwrap();
    let evs: Vec<_> = (30..35).map(|t| fail(T0 + t, "192.0.2.70")).collect();
    assert_eq!(blocks(&feed(&mut e, &evs)).len(), 1);
}

// ---- manual unblock, policy --------------------------------------------------------------

#[test]
fn a_manual_unblock_forgets_the_history() {
    let p = Policy {
        escalate: true,
        ..quiet()
    };
    let mut e = engine(p);
    feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.80")));
    // Failures during the block would re-block it at once after a naive unblock.
    feed(&mut e, &[5, 6, 7, 8].map(|t| fail(T0 + t, "192.0.2.80")));
    assert!(e.unblocked(ip("::ffff:192.0.2.80")));
    assert!(!e.unblocked(ip("192.0.2.80")));
    assert_eq!(e.blocked_until(ip("192.0.2.80"), T0 + 10), None);
    let ds = feed(
        &mut e,
        &[10, 11, 12, 13].map(|t| fail(T0 + t, "192.0.2.80")),
    );
    assert!(ds.is_empty());
    let ds = e.on_event(&fail(T0 + 14, "192.0.2.80"), NOON);
    // Not escalated, and no cracked alarm on a later login either.
    assert!(!blocks(&ds)[0].escalated);
    e.unblocked(ip("192.0.2.80"));
    let ds = e.on_event(&login(T0 + 20, "192.0.2.80", "admin"), NOON);
    assert!(kinds(&ds).is_empty(), "{ds:?}");
}

#[test]
fn an_invalid_policy_is_refused_and_the_old_one_stays() {
    let mut e = engine(Policy {
        short_failures: 3,
        ..quiet()
    });
    let bad = Policy {
        ssh_block_minutes: 0,
        ..quiet()
    };
    assert!(
        e.set_policy(bad.clone())
            .unwrap_err()
            .starts_with("ssh_block_minutes")
    );
    assert!(Engine::new(bad).is_err());
    assert_eq!(e.policy().short_failures, 3);
}

#[test]
fn validation_names_the_field() {
    let check = |p: Policy| p.validate().unwrap_err();
    assert_eq!(Policy::default().validate(), Ok(()));
    let d = Policy::default;
    assert!(
        check(Policy {
            whitelist: vec!["10.0.0.1".into(); 51],
            ..d()
        })
        .starts_with("whitelist:")
    );
    assert_eq!(
        Policy {
            whitelist: vec!["10.0.0.1".into(); 50],
            ..d()
        }
        .validate(),
        Ok(())
    );
    assert!(
        check(Policy {
            whitelist: vec!["10.0.0.300".into()],
            ..d()
        })
        .starts_with("whitelist[0]")
    );
    assert!(
        check(Policy {
            whitelist: vec!["10.0.0.0/33".into()],
            ..d()
        })
        .starts_with("whitelist[0]")
    );
    assert!(
        check(Policy {
            whitelist: vec!["::/129".into()],
            ..d()
        })
        .starts_with("whitelist[0]")
    );
    assert!(
        check(Policy {
            whitelist: vec!["10.0.0.0/+8".into()],
            ..d()
        })
        .starts_with("whitelist[0]")
    );
    assert!(
        check(Policy {
            whitelist: vec!["10.0.0.0/".into()],
            ..d()
        })
        .starts_with("whitelist[0]")
    );
    let ok = vec![
        "10.0.0.0/8".into(),
        " 2001:db8::/32 ".into(),
        "::ffff:10.0.0.0/104".into(),
    ];
    assert_eq!(
        Policy {
            whitelist: ok,
            ..d()
        }
        .validate(),
        Ok(())
    );
    assert!(
        check(Policy {
            ssh_block_minutes: 0,
            ..d()
        })
        .starts_with("ssh_block_minutes")
    );
    assert!(
        check(Policy {
            ssh_block_minutes: 43_201,
            ..d()
        })
        .starts_with("ssh_block_minutes")
    );
    assert!(
        check(Policy {
            other_block_minutes: 43_201,
            ..d()
        })
        .starts_with("other_block_minutes")
    );
    assert_eq!(
        Policy {
            ssh_block_minutes: 43_200,
            other_block_minutes: 1,
            ..d()
        }
        .validate(),
        Ok(())
    );
    assert!(
        check(Policy {
            short_failures: 0,
            ..d()
        })
        .starts_with("short_failures")
    );
    assert!(
        check(Policy {
            long_failures: 1001,
            ..d()
        })
        .starts_with("long_failures")
    );
    assert!(
        check(Policy {
            short_window_secs: 0,
            ..d()
        })
        .starts_with("short_window_secs")
    );
    assert!(
        check(Policy {
            long_window_secs: 86_401,
            ..d()
        })
        .starts_with("long_window_secs")
    );
    let usual: Vec<String> = (0..21).map(|i| format!("192.0.2.{i}")).collect();
    assert!(
        check(Policy {
            usual_login_ips: usual,
            ..d()
        })
        .starts_with("usual_login_ips:")
    );
    assert!(
        check(Policy {
            usual_login_ips: vec!["me".into()],
            ..d()
        })
        .starts_with("usual_login_ips[0]")
    );
    for hours in [(24, 3), (3, 25), (5, 5), (0, 24)] {
        assert!(
            check(Policy {
                usual_hours: Some(hours),
                ..d()
            })
            .starts_with("usual_hours"),
            "{hours:?}"
        );
    }
    assert_eq!(
        Policy {
            usual_hours: Some((22, 6)),
            ..d()
        }
        .validate(),
        Ok(())
    );
    assert_eq!(
        Policy {
            usual_hours: Some((0, 23)),
            ..d()
        }
        .validate(),
        Ok(())
    );
}

#[test]
fn the_policy_deserializes_with_defaults_and_refuses_unknown_fields() {
    let p: Policy = toml::from_str("ssh_block_minutes = 60\nusual_hours = [8, 20]\n").unwrap();
    assert_eq!(p.ssh_block_minutes, 60);
    assert_eq!(p.usual_hours, Some((8, 20)));
    assert_eq!(p.short_failures, 5);
    assert_eq!(p.long_window_secs, 3600);
    assert_eq!(p.other_block_minutes, 1440);
    assert!(p.learn_usual_ips && !p.alarm_on_root_login && !p.escalate);
    let err = toml::from_str::<Policy>("ssh_block_minute = 60\n").unwrap_err();
    assert!(err.to_string().contains("ssh_block_minute"), "{err}");
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    assert_eq!(
        serde_json::from_str::<Policy>("{}").unwrap(),
        Policy::default()
    );
}

#[test]
fn prefixes_parse_and_match() {
    let n = Net::parse("10.1.2.3/8").unwrap();
    assert_eq!(n.to_string(), "10.0.0.0/8");
    assert!(n.contains(ip("10.255.0.1")) && !n.contains(ip("11.0.0.0")));
    assert!(!n.contains(ip("::a01:203")), "families never match");
    let all = Net::parse("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("255.255.255.255")) && !all.contains(ip("::1")));
    let v6 = Net::parse("2001:db8:abcd::/48").unwrap();
    assert!(v6.contains(ip("2001:db8:abcd:ffff::1")) && !v6.contains(ip("2001:db8:abce::1")));
    assert!(Net::parse("::/0").unwrap().contains(ip("ffff::1")));
    let mapped = Net::parse("::ffff:192.0.2.0/120").unwrap();
    assert_eq!(mapped.to_string(), "192.0.2.0/24");
    assert_eq!(
        Net::parse("::ffff:192.0.2.9").unwrap().to_string(),
        "192.0.2.9"
    );
    assert!(Net::parse("192.0.2.9").unwrap().is_host());
    assert_eq!(Net::host(ip("::ffff:1.2.3.4")).to_string(), "1.2.3.4");
    for bad in [
        "",
        "/8",
        "1.2.3/8",
        "1.2.3.4/",
        "1.2.3.4/-1",
        "1.2.3.4/ 8",
        "1.2.3.4/0008",
        "fe80::1%eth0",
    ] {
        assert!(Net::parse(bad).is_err(), "{bad:?}");
    }
}

// ---- login monitoring --------------------------------------------------------------------

#[test]
fn a_login_after_brute_force_is_a_cracked_password() {
    let mut e = engine(quiet());
    // Four failures, not enough for a block, but as many as the short rule's threshold...
    let mut evs: Vec<_> = (0..4)
        .map(|i| fail_as(T0 + i * 60, "192.0.2.90", &format!("u{i}"), Service::Ssh))
        .collect();
    evs.push(fail_as(T0 + 300, "192.0.2.90", "admin", Service::Ssh));
    assert!(blocks(&feed(&mut e, &evs)).is_empty());
    // ...then the right password.
    let ds = e.on_event(&login(T0 + 400, "192.0.2.90", "admin"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::PasswordCracked]);
    let a = alarms(&ds)[0];
    assert_eq!((a.user.as_str(), a.failures), ("admin", 5));
    assert_eq!(a.users, vec!["admin", "u0", "u1", "u2", "u3"]);
    assert_eq!(a.sample_lines.len(), 5);
    assert!(a.sample_lines[0].starts_with("Accepted password for admin"));
    assert_eq!(a.blocked_until, None);
    assert_eq!(AlarmKind::PasswordCracked.code(), "password_cracked");
}

#[test]
fn a_login_from_a_blocked_source_is_a_cracked_password() {
    let mut e = engine(quiet());
    let ds = feed(
        &mut e,
        &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "::ffff:192.0.2.91")),
    );
    let until = blocks(&ds)[0].until;
    // Before the firewall applied, or over a service it does not cover.
    let ds = e.on_event(&login(T0 + 5, "192.0.2.91", "root"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::PasswordCracked]);
    assert_eq!(alarms(&ds)[0].blocked_until, Some(until));
    assert_eq!(alarms(&ds)[0].failures, 5);
    // Within a day of the block's end, still.
    let ds = e.on_event(&login(until + 86_399, "192.0.2.91", "root"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::PasswordCracked]);
    assert_eq!(alarms(&ds)[0].blocked_until, None);
    // A whitelisted source that brute-forced: the alarm too (it is critical, not a block).
    let mut e = engine(Policy {
        whitelist: vec!["192.0.2.0/24".into()],
        ..quiet()
    });
    feed(&mut e, &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.92")));
    let ds = e.on_event(&login(T0 + 60, "192.0.2.92", "root"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::PasswordCracked]);
}

#[test]
fn a_typo_before_the_right_password_is_not_a_crack() {
    let mut e = engine(quiet());
    let evs: Vec<_> = (0..2).map(|i| fail(T0 + i, "192.0.2.93")).collect();
    feed(&mut e, &evs);
    assert!(
        e.on_event(&login(T0 + 5, "192.0.2.93", "alice"), NOON)
            .is_empty()
    );
    // Failures older than the long window are forgotten.
    let evs: Vec<_> = (0..4)
        .map(|i| fail(T0 + 100 + i * 100, "192.0.2.94"))
        .collect();
    feed(&mut e, &evs);
    assert!(
        e.on_event(&login(T0 + 4000, "192.0.2.94", "alice"), NOON)
            .is_empty()
    );
    let evs: Vec<_> = (0..5)
        .map(|i| fail(T0 + 100 + i * 100, "192.0.2.95"))
        .collect();
    feed(&mut e, &evs);
    assert!(
        e.on_event(&login(T0 + 5000, "192.0.2.95", "alice"), NOON)
            .is_empty()
    );
}

#[test]
fn a_success_does_not_reset_the_failure_count() {
    let mut e = engine(quiet());
    feed(&mut e, &[0, 1].map(|t| fail(T0 + t, "192.0.2.96")));
    e.on_event(&login(T0 + 2, "192.0.2.96", "guest"), NOON);
    let ds = feed(&mut e, &[3, 4, 5].map(|t| fail(T0 + t, "192.0.2.96")));
    assert_eq!(blocks(&ds).len(), 1);
}

fn learned(ds: &[Decision]) -> Vec<IpAddr> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::UsualIpLearned { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

fn server_list(usual: &[&str], learning: bool) -> ServerLoginIps {
    ServerLoginIps {
        usual: usual.iter().map(|s| s.to_string()).collect(),
        learning,
    }
}

#[test]
fn usual_login_addresses_are_learned_up_to_20() {
    let mut e = engine(Policy::default());
    for i in 0..20 {
        let addr = format!("198.51.100.{i}");
        let ds = e.on_event(&login(T0 + i, &addr, "alice"), NOON);
        assert_eq!(
            ds,
            vec![Decision::UsualIpLearned {
                addr: ip(&addr),
                ts: T0 + i,
                user: "alice".into(),
                service: Service::Ssh,
            }]
        );
    }
    assert_eq!(e.server_login_ips().len(), 20);
    // Known addresses (any spelling) are quiet; the 21st new one alarms and is not learned.
    assert!(
        e.on_event(&login(T0 + 30, "::ffff:198.51.100.3", "bob"), NOON)
            .is_empty()
    );
    let ds = e.on_event(&login(T0 + 31, "203.0.113.1", "bob"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
    let a = alarms(&ds)[0];
    assert_eq!(
        (a.user.as_str(), a.addr, a.local_hour),
        ("bob", ip("203.0.113.1"), Some(NOON))
    );
    assert!(a.sample_lines[0].contains("Accepted"));
    assert_eq!(e.server_login_ips().len(), 20);
}

#[test]
fn the_project_list_does_not_use_up_the_servers_20() {
    let mut e = engine(Policy {
        usual_login_ips: (0..19).map(|i| format!("10.0.0.{i}")).collect(),
        ..Policy::default()
    });
    // The project's addresses are usual without being learned.
    assert!(e.on_event(&login(T0, "10.0.0.5", "a"), NOON).is_empty());
    for i in 0..20 {
        let ds = e.on_event(&login(T0 + i, &format!("11.0.0.{i}"), "a"), NOON);
        assert_eq!(learned(&ds), vec![ip(&format!("11.0.0.{i}"))], "{i}");
    }
    assert_eq!(e.server_login_ips().len(), 20);
    let ds = e.on_event(&login(T0 + 40, "11.0.0.99", "a"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
    assert!(learned(&ds).is_empty());
    // A list the center sends with 19 entries has room for one more.
    let mut e = engine(Policy::default());
    let nineteen: Vec<String> = (0..19).map(|i| format!("12.0.0.{i}")).collect();
    e.set_server_login_ips(&ServerLoginIps {
        usual: nineteen,
        learning: true,
    })
    .unwrap();
    assert_eq!(
        learned(&e.on_event(&login(T0, "13.0.0.1", "a"), NOON)).len(),
        1
    );
    let ds = e.on_event(&login(T0, "13.0.0.2", "a"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
}

#[test]
fn either_list_makes_an_address_usual() {
    let mut e = engine(Policy {
        usual_login_ips: vec!["10.0.0.0/8".into()],
        learn_usual_ips: false,
        ..Policy::default()
    });
    e.set_server_login_ips(&server_list(&["2001:db8::/32", "192.0.2.1"], true))
        .unwrap();
    for addr in ["10.9.8.7", "2001:db8::5", "192.0.2.1", "::ffff:192.0.2.1"] {
        assert!(
            e.on_event(&login(T0, addr, "alice"), NOON).is_empty(),
            "{addr}"
        );
    }
    let ds = e.on_event(&login(T0, "11.0.0.1", "alice"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
    // Only the server's list: still an address check.
    let mut e = engine(quiet());
    e.set_server_login_ips(&server_list(&["192.0.2.1"], false))
        .unwrap();
    assert!(e.on_event(&login(T0, "192.0.2.1", "a"), NOON).is_empty());
    let ds = e.on_event(&login(T0, "192.0.2.2", "a"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
    // Nothing in either list and learning off: no address check at all.
    let mut e = engine(quiet());
    assert!(e.on_event(&login(T0, "11.0.0.1", "alice"), NOON).is_empty());
}

#[test]
fn learning_needs_both_the_policy_and_the_servers_switch() {
    for (policy_learns, server_learns) in [(true, false), (false, true)] {
        let mut e = engine(Policy {
            learn_usual_ips: policy_learns,
            ..Policy::default()
        });
        e.set_server_login_ips(&server_list(&["192.0.2.1"], server_learns))
            .unwrap();
        let ds = e.on_event(&login(T0, "192.0.2.2", "a"), NOON);
        assert_eq!(
            kinds(&ds),
            vec![AlarmKind::UnusualLoginIp],
            "{policy_learns} {server_learns}"
        );
        assert_eq!(e.server_login_ips(), vec!["192.0.2.1"]);
    }
}

#[test]
fn the_centers_list_replaces_learned_addresses_and_a_policy_keeps_it() {
    let mut e = engine(Policy::default());
    e.on_event(&login(T0, "198.51.100.1", "alice"), NOON);
    assert_eq!(e.server_login_ips(), vec!["198.51.100.1"]);
    // A person deleted the learned address at the center and stopped learning.
    e.set_server_login_ips(&server_list(&["198.51.100.2"], false))
        .unwrap();
    assert_eq!(e.server_login_ips(), vec!["198.51.100.2"]);
    let ds = e.on_event(&login(T0 + 1, "198.51.100.1", "alice"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginIp]);
    // A new project policy does not touch the server's list.
    e.set_policy(Policy {
        usual_login_ips: vec!["203.0.113.0/24".into()],
        ..Policy::default()
    })
    .unwrap();
    assert_eq!(e.server_login_ips(), vec!["198.51.100.2"]);
    assert!(
        e.on_event(&login(T0 + 2, "198.51.100.2", "a"), NOON)
            .is_empty()
    );
    // A bad list is refused, naming the entry, and the current one stays.
    let err = e
        .set_server_login_ips(&server_list(&["10.0.0.1", "nope"], true))
        .unwrap_err();
    assert!(err.starts_with("usual[1]:"), "{err}");
    assert_eq!(e.server_login_ips(), vec!["198.51.100.2"]);
}

#[test]
fn a_cracked_login_address_is_not_learned() {
    let mut e = engine(Policy::default());
    feed(
        &mut e,
        &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "203.0.113.66")),
    );
    let ds = e.on_event(&login(T0 + 10, "203.0.113.66", "root"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::PasswordCracked]);
    assert!(learned(&ds).is_empty());
    assert!(e.server_login_ips().is_empty());
    // Once something is usual, the cracked address is also unusual.
    e.on_event(&login(T0 + 11, "198.51.100.1", "alice"), NOON);
    let ds = e.on_event(&login(T0 + 12, "203.0.113.66", "root"), NOON);
    assert_eq!(
        kinds(&ds),
        vec![AlarmKind::PasswordCracked, AlarmKind::UnusualLoginIp]
    );
    assert_eq!(e.server_login_ips(), vec!["198.51.100.1"]);
}

#[test]
fn logins_outside_the_usual_hours_alarm() {
    let mut e = engine(Policy {
        usual_hours: Some((8, 20)),
        ..quiet()
    });
    for h in [8, 12, 19] {
        assert!(
            e.on_event(&login(T0, "10.0.0.1", "alice"), h).is_empty(),
            "{h}"
        );
    }
    for h in [0, 7, 20, 23] {
        let ds = e.on_event(&login(T0, "10.0.0.1", "alice"), h);
        assert_eq!(kinds(&ds), vec![AlarmKind::UnusualLoginTime], "{h}");
        assert_eq!(alarms(&ds)[0].local_hour, Some(h));
    }
    // A night shift window wraps past midnight.
    let mut e = engine(Policy {
        usual_hours: Some((22, 6)),
        ..quiet()
    });
    for h in [22, 23, 0, 5] {
        assert!(
            e.on_event(&login(T0, "10.0.0.1", "alice"), h).is_empty(),
            "{h}"
        );
    }
    for h in [6, 12, 21] {
        assert_eq!(
            kinds(&e.on_event(&login(T0, "10.0.0.1", "alice"), h)).len(),
            1,
            "{h}"
        );
    }
    // Failures are never time-checked.
    assert!(e.on_event(&fail(T0, "10.0.0.1"), 12).is_empty());
}

#[test]
fn root_logins_alarm_when_asked() {
    let mut e = engine(quiet());
    assert!(e.on_event(&login(T0, "10.0.0.1", "root"), NOON).is_empty());
    let mut e = engine(Policy {
        alarm_on_root_login: true,
        usual_hours: Some((9, 17)),
        usual_login_ips: vec!["10.0.0.2".into()],
        learn_usual_ips: false,
        ..Policy::default()
    });
    assert!(e.on_event(&login(T0, "10.0.0.2", "alice"), NOON).is_empty());
    let ds = e.on_event(&login(T0, "10.0.0.2", "root"), NOON);
    assert_eq!(kinds(&ds), vec![AlarmKind::RootLogin]);
    // All at once, in a fixed order.
    let ds = e.on_event(&login(T0, "10.0.0.1", "root"), 3);
    assert_eq!(
        kinds(&ds),
        vec![
            AlarmKind::RootLogin,
            AlarmKind::UnusualLoginIp,
            AlarmKind::UnusualLoginTime
        ]
    );
}

// ---- evidence, memory --------------------------------------------------------------------

#[test]
fn evidence_is_bounded() {
    let mut e = engine(Policy {
        short_failures: 50,
        long_failures: 50,
        ..quiet()
    });
    let long_user = "é".repeat(100);
    let mut evs: Vec<_> = (0..49)
        .map(|i| {
            let mut x = fail_as(T0, "192.0.2.100", &format!("user{i}"), Service::Ssh);
            x.line = "x".repeat(600);
            x
        })
        .collect();
    evs.push(fail_as(T0, "192.0.2.100", &long_user, Service::Ssh));
    let ds = feed(&mut e, &evs);
    let b = blocks(&ds)[0];
    assert_eq!(b.users.len(), MAX_USERS);
    assert_eq!(b.users[0], "user0");
    assert_eq!(b.sample_lines.len(), MAX_LINES);
    assert!(b.sample_lines.iter().all(|l| l.len() == 512));
    let a = alarms(&ds)[0];
    // Cut on a character boundary.
    assert_eq!(a.user, "é".repeat(32));
    assert_eq!(a.users, b.users);
}

#[test]
fn evidence_of_forgotten_failures_is_not_reused() {
    let mut e = engine(quiet());
    e.on_event(&fail_as(T0, "192.0.2.101", "old", Service::Ssh), NOON);
    let evs: Vec<_> = (0..5)
        .map(|i| fail_as(T0 + 7200 + i, "192.0.2.101", "new", Service::Ssh))
        .collect();
    let ds = feed(&mut e, &evs);
    assert_eq!(blocks(&ds)[0].users, vec!["new"]);
}

#[test]
fn slightly_older_lines_still_count() {
    let mut e = engine(quiet());
    let ds = feed(
        &mut e,
        &[10, 9, 11, 3, 12].map(|t| fail(T0 + t, "192.0.2.102")),
    );
    assert_eq!(blocks(&ds).len(), 1);
}

#[test]
fn tracked_sources_are_capped_and_the_least_recently_active_go() {
    let mut e = engine(quiet());
    e.set_max_sources(100);
    // 1,000 one-shot addresses flood in while the attacker keeps going (once every 50).
    let attacker = "203.0.113.200";
    let mut decisions = Vec::new();
    for i in 0..1000u32 {
        let addr = Ipv4Addr::from(0x0a00_0000 + i).to_string();
        decisions.extend(e.on_event(&fail(T0 + i64::from(i) / 200, &addr), NOON));
        if i % 50 == 0 {
            decisions.extend(e.on_event(&fail(T0 + i64::from(i) / 200, attacker), NOON));
        }
        assert!(e.tracked_sources() <= 100);
    }
    let b = blocks(&decisions);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].addr, ip(attacker));
    // The least recently seen went first: the first flood addresses are forgotten.
    assert!(!e.unblocked(ip("10.0.0.0")));
    assert!(e.unblocked(ip("10.0.3.231")));
    // The LRU list itself stays bounded.
    assert!(e.lru.len() <= 2 * e.sources.len() + 1030);
    e.set_max_sources(10);
    assert_eq!(e.tracked_sources(), 10);
}

#[test]
fn expire_forgets_what_no_longer_matters() {
    let mut e = engine(quiet());
    e.on_event(&fail(T0, "192.0.2.110"), NOON);
    feed(
        &mut e,
        &[0, 1, 2, 3, 4].map(|t| fail(T0 + t, "192.0.2.111")),
    );
    assert_eq!(e.tracked_sources(), 2);
    e.expire(T0 + 3600);
    assert_eq!(e.tracked_sources(), 2);
    e.expire(T0 + 3601);
    // The failing source's window is empty; the blocked one is remembered for a day past its
    // block, for escalation and cracked-password detection.
    assert_eq!(e.tracked_sources(), 1);
    let until = e.blocked_until(ip("192.0.2.111"), T0 + 3601).unwrap();
    e.expire(until + BLOCK_MEMORY_SECS - 1);
    assert_eq!(e.tracked_sources(), 1);
    e.expire(until + BLOCK_MEMORY_SECS);
    assert_eq!(e.tracked_sources(), 0);
    assert!(e.lru.is_empty());
}

#[test]
fn per_source_state_stays_small_under_a_long_attack() {
    let mut e = engine(Policy {
        ssh_block_minutes: 43_200,
        ..quiet()
    });
    // One blocked attacker hammering for a day: its window keeps only what can matter.
    for t in 0..86_400 {
        e.on_event(&fail(T0 + t, "192.0.2.120"), NOON);
    }
    let src = &e.sources[&ip("192.0.2.120")];
    assert!(src.window.len() <= 15, "{}", src.window.len());
    assert_eq!(src.total, 15);
}

// ---- properties --------------------------------------------------------------------------

const POOL: [&str; 8] = [
    "192.0.2.1",
    "::ffff:192.0.2.1",
    "10.1.2.3",
    "::ffff:10.200.0.1",
    "2001:db8::1",
    "2001:db8:ffff::9",
    "203.0.113.7",
    "2001:db9::1",
];
const WHITELISTED: usize = 6;

fn arb_event() -> impl Strategy<Value = (i64, bool, usize, u32, u8, u8)> {
    (
        0i64..40,
        any::<bool>(),
        0..POOL.len(),
        0u32..30,
        0u8..3,
        0u8..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn whitelisted_addresses_are_never_blocked(
        steps in prop::collection::vec(arb_event(), 1..300),
        escalate in any::<bool>(),
        short_failures in 1u32..6,
        long_failures in 1u32..20,
        minutes in 1u32..5,
        cap in 1usize..6,
    ) {
        let p = Policy {
            whitelist: vec!["192.0.2.1".into(), "10.0.0.0/8".into(), "2001:db8::/32".into()],
            escalate,
            short_failures,
            long_failures,
            ssh_block_minutes: minutes,
            other_block_minutes: minutes,
            ..Policy::default()
        };
        let mut e = Engine::new(p).unwrap();
        e.set_max_sources(cap);
        let mut ts = T0;
        for (dt, success, who, count, service, hour) in steps {
            ts += dt * 7;
            let service = [Service::Ssh, Service::Ftp, Service::Mysql][usize::from(service)];
            let outcome = if success { AuthOutcome::Success } else { AuthOutcome::Failure };
            let mut x = ev(ts, outcome, POOL[who], "u", service);
            x.count = count;
            for d in e.on_event(&x, hour) {
                if let Decision::Block(b) = d {
                    prop_assert!(
                        !POOL[..WHITELISTED].iter().any(|w| ip(w).to_canonical() == b.addr),
                        "blocked {}", b.addr
                    );
                    prop_assert!(b.addr == ip("203.0.113.7") || b.addr == ip("2001:db9::1"));
                    prop_assert!(b.duration >= Duration::from_secs(60));
                    prop_assert!(b.duration <= Duration::from_secs(43_200 * 60));
                }
            }
            if ts % 5 == 0 {
                e.expire(ts);
            }
            prop_assert!(e.tracked_sources() <= cap);
        }
    }

    #[test]
    fn a_block_never_repeats_while_it_lasts(
        gaps in prop::collection::vec(0i64..120, 1..400),
        counts in prop::collection::vec(1u32..4, 400),
    ) {
        let mut e = Engine::new(Policy { ssh_block_minutes: 30, ..quiet() }).unwrap();
        let mut ts = T0;
        let mut until = i64::MIN;
        for (gap, count) in gaps.into_iter().zip(counts) {
            ts += gap;
            let mut x = fail(ts, "198.51.100.77");
            x.count = count;
            for d in e.on_event(&x, NOON) {
                if let Decision::Block(b) = d {
                    prop_assert!(ts >= until, "re-blocked at {ts} before {until}");
                    until = b.until;
                }
            }
        }
    }

    #[test]
    fn prefixes_match_like_their_bits(a in any::<u32>(), b in any::<u32>(), len in 0u8..=32) {
        let net = Net::parse(&format!("{}/{len}", Ipv4Addr::from(a))).unwrap();
        let shift = 32 - u32::from(len);
        let same = a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0);
        prop_assert_eq!(net.contains(IpAddr::V4(Ipv4Addr::from(b))), same);
    }
}
