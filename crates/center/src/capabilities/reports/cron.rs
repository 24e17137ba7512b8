//! Report schedules' cron expressions: five fields, minute hour day-of-month month day-of-week,
//! in UTC, with `*`, numbers, ranges `a-b`, lists `a,b` and steps `*/n`, `a-b/n`; months and
//! days of the week also by their English three-letter names, Sunday as 0 or 7. As in cron,
//! when both day fields are restricted a day matching either runs. Pure; every refusal names
//! the field and the bad value.

use time::{Date, OffsetDateTime};

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A parsed expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether the day-of-month / day-of-week field was `*` (then only the other one decides).
    any_day: bool,
    any_weekday: bool,
}

fn value(field: usize, s: &str) -> Result<u32, String> {
    let (name, lo, hi) = FIELDS[field];
    let lower = s.to_ascii_lowercase();
    let named = match field {
        3 => MONTHS
            .iter()
            .position(|m| *m == lower)
            .map(|i| i as u32 + 1),
        4 => DAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        _ => None,
    };
    let v = match named {
        Some(v) => v,
        None => s
            .parse::<u32>()
            .map_err(|_| format!("{name}: {s:?} is not a number"))?,
    };
    if v < lo || v > hi {
        return Err(format!("{name}: {v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

/// The allowed values of one field as a bit set.
fn field_bits(field: usize, text: &str) -> Result<u64, String> {
    let (name, lo, hi) = FIELDS[field];
    let mut bits = 0u64;
    for part in text.split(',') {
        if part.is_empty() {
            return Err(format!("{name}: {text:?} has an empty list item"));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{name}: step {s:?} is not a number"))?;
                if step == 0 || step > hi {
                    return Err(format!("{name}: step {step} is out of range 1-{hi}"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(field, a)?, value(field, b)?);
            if a > b {
                return Err(format!("{name}: range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let v = value(field, range)?;
            // `5/15` means from 5 to the end in steps of 15, as in cron.
            (v, if step > 1 { hi } else { v })
        };
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {} in {expr:?}",
                parts.len()
            ));
        }
        let b: Vec<u64> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| field_bits(i, p))
            .collect::<Result<_, _>>()?;
        // Sunday is 0 or 7.
        let weekdays = ((b[4] | (b[4] >> 7)) & 0x7f) as u8;
        let cron = Cron {
            minutes: b[0],
            hours: b[1] as u32,
            days: b[2] as u32,
            months: b[3] as u16,
            weekdays,
            any_day: parts[2] == "*",
            any_weekday: parts[4] == "*",
        };
        // 30 February and the like: refused rather than stored as a schedule that never runs.
        if cron.next_after(0).is_none() {
            return Err(format!(
                "day-of-month: {:?} never falls in month {:?}",
                parts[2], parts[3]
            ));
        }
        Ok(cron)
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month() as u8) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().number_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first minute strictly after `t` (Unix seconds) the expression matches, within
    /// eight years (a 29 February schedule runs within that); None if it never does.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let mut m = t.div_euclid(60) + 1;
        let limit = m + 8 * 366 * 1440;
        while m < limit {
            let ts = m * 60;
            let at = OffsetDateTime::from_unix_timestamp(ts).ok()?;
            if !self.day_matches(at.date()) {
                m = (ts.div_euclid(86_400) + 1) * 1440;
            } else if self.hours & (1 << at.hour()) == 0 {
                m = (ts.div_euclid(3600) + 1) * 60;
            } else if self.minutes & (1 << at.minute()) == 0 {
                m += 1;
            } else {
                return Some(ts);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        let f = time::format_description::well_known::Rfc3339;
        OffsetDateTime::parse(s, &f).unwrap().unix_timestamp()
    }

    fn next(expr: &str, from: &str) -> String {
        let t = Cron::parse(expr).unwrap().next_after(at(from)).unwrap();
        OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    #[test]
    fn next_runs() {
        // 2026-12-07 is a Monday.
        assert_eq!(
            next("5 0 * * *", "2026-12-07T10:00:00Z"),
            "2026-12-08T00:05:00Z"
        );
        assert_eq!(
            next("5 0 * * *", "2026-12-07T00:04:59Z"),
            "2026-12-07T00:05:00Z"
        );
        // Strictly after: a run due now is not due again.
        assert_eq!(
            next("5 0 * * *", "2026-12-07T00:05:00Z"),
            "2026-12-08T00:05:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-07T10:16:00Z"),
            "2026-12-07T10:30:00Z"
        );
        assert_eq!(
            next("0 9 * * mon", "2026-12-07T10:00:00Z"),
            "2026-12-14T09:00:00Z"
        );
        assert_eq!(
            next("0 9 * * 7", "2026-12-07T10:00:00Z"),
            "2026-12-13T09:00:00Z"
        );
        assert_eq!(
            next("0 6 1 * *", "2026-12-07T10:00:00Z"),
            "2027-01-01T06:00:00Z"
        );
        assert_eq!(
            next("30 8 1-5/2 feb *", "2026-12-07T10:00:00Z"),
            "2027-02-01T08:30:00Z"
        );
        // Both day fields restricted: either one.
        assert_eq!(
            next("0 0 20 * fri", "2026-12-07T10:00:00Z"),
            "2026-12-11T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-12-07T10:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("0 12 * * 1-5", "2026-12-12T13:00:00Z"),
            "2026-12-14T12:00:00Z"
        );
    }

    /// Arbitrary text made of what cron expressions are made of: every input parses or is
    /// refused with a message, nothing panics (overflowing numbers, steps, ranges, empty
    /// parts), and whatever parses has a next run.
    #[test]
    fn any_text_parses_or_is_refused_without_panicking() {
        const ALPHABET: &[u8] = b"0123456789*/-,x";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            // Mostly five fields, sometimes four or six.
            let fields = 4 + (next() % 3) as usize;
            let text: Vec<String> = (0..fields)
                .map(|_| {
                    let len = 1 + (next() % 7) as usize;
                    (0..len)
                        .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                        .collect()
                })
                .collect();
            let text = text.join(" ");
            match Cron::parse(&text) {
                Ok(c) => assert!(c.next_after(0).is_some(), "{text:?}"),
                Err(e) => assert!(!e.is_empty(), "{text:?}"),
            }
        }
        for text in [
            "99999999999999999999 * * * *",
            "*/99999999999 * * * *",
            "1-99999999999 * * * *",
        ] {
            assert!(Cron::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_the_value() {
        let err = |e: &str| Cron::parse(e).unwrap_err();
        assert!(
            err("5 0 * *").contains("expected 5 fields"),
            "{}",
            err("5 0 * *")
        );
        assert_eq!(err("61 0 * * *"), "minute: 61 is out of range 0-59");
        assert_eq!(err("0 24 * * *"), "hour: 24 is out of range 0-23");
        assert_eq!(err("0 0 0 * *"), "day-of-month: 0 is out of range 1-31");
        assert_eq!(err("0 0 * 13 *"), "month: 13 is out of range 1-12");
        assert_eq!(err("0 0 * * 8"), "day-of-week: 8 is out of range 0-7");
        assert_eq!(err("0 x * * *"), "hour: \"x\" is not a number");
        assert_eq!(err("*/0 * * * *"), "minute: step 0 is out of range 1-59");
        assert_eq!(err("0 5-2 * * *"), "hour: range \"5-2\" runs backwards");
        assert_eq!(err("0 1,,2 * * *"), "hour: \"1,,2\" has an empty list item");
        assert_eq!(
            err("0 0 * * funday"),
            "day-of-week: \"funday\" is not a number"
        );
        assert_eq!(
            err("0 0 30 2 *"),
            "day-of-month: \"30\" never falls in month \"2\""
        );
    }
}
