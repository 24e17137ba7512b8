//! What a channel lets through, as pure functions of an alarm, the channel's filters and the
//! time: severity and type filters, server filters, masking rules (types, servers, weekly time
//! windows in the center's local time, an end date), and de-duplication of repeats (the same
//! server, type and key sent within the channel's window). Also the clock arithmetic the daily
//! summary needs (HH:MM, UTC offsets, the day a summary is for).

use hostward_proto::Severity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most masking rules a channel may have.
pub const MAX_MASKS: usize = 20;
/// Most entries in one list of a filter or mask.
pub const MAX_LIST: usize = 200;
/// Longest de-duplication window: a week.
pub const MAX_DEDUP_MINUTES: u32 = 7 * 24 * 60;

/// A channel's filters. Empty lists let everything through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Alarms below this severity are not sent; None: every severity.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub min_severity: Option<Severity>,
    /// Only these alarm types (catalog codes); empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
    /// Only alarms of these servers (id or name); empty: every server.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Alarms matching a rule are not sent (maintenance windows, noisy servers).
    #[serde(default)]
    pub masks: Vec<Mask>,
    /// A new alarm of the same server, type and key within this many minutes of the last one
    /// sent is not sent again (0: off). Repeats of an open alarm never notify: they add to its
    /// count.
    #[serde(default = "default_dedup")]
    pub dedup_minutes: u32,
}

fn default_dedup() -> u32 {
    60
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            min_severity: None,
            types: Vec::new(),
            servers: Vec::new(),
            masks: Vec::new(),
            dedup_minutes: default_dedup(),
        }
    }
}

/// A masking rule: alarms of these types on these servers, during this window, are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// Alarm types; empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
    /// Servers (id or name); empty: every server.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Days of the week, 1 (Monday) to 7 (Sunday), on which the window starts; empty: every
    /// day.
    #[serde(default)]
    pub days: Vec<u8>,
    /// Window start, HH:MM local time; with `end`. Neither: the whole day.
    #[serde(default)]
    pub start: Option<String>,
    /// Window end, HH:MM (exclusive); before `start`: the window runs past midnight.
    #[serde(default)]
    pub end: Option<String>,
    /// The rule ends at this time (Unix seconds); None: it never ends.
    #[serde(default)]
    pub until: Option<i64>,
    /// Why, for people.
    #[serde(default)]
    pub note: String,
}

/// The facts of an alarm a filter looks at.
#[derive(Debug, Clone, Copy)]
pub struct AlarmFacts<'a> {
    pub alarm_type: &'a str,
    pub severity: Severity,
    pub server_id: &'a str,
    pub server_name: &'a str,
}

/// Whether to send, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Send,
    Skip(String),
}

/// Minutes after midnight of `HH:MM` (00:00 to 23:59).
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A UTC offset `+HH:MM`, `-HH:MM` or `Z`, in seconds.
pub fn parse_utc_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "Z" || s == "UTC" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let mins = i64::from(parse_hhmm(rest)?);
    (mins <= 14 * 60).then_some(sign * mins * 60)
}

/// Day of the week of a local day number (days since 1970-01-01, a Thursday): 1 Monday … 7
/// Sunday.
fn weekday(day: i64) -> u8 {
    ((day + 3).rem_euclid(7) + 1) as u8
}

/// (local day number, minute of that day) of `now` at `offset_secs` east of UTC.
fn local(now: i64, offset_secs: i64) -> (i64, u32) {
    let t = now + offset_secs;
    (t.div_euclid(86_400), (t.rem_euclid(86_400) / 60) as u32)
}

/// `YYYY-MM-DD` of a local day number.
pub fn date_of_day(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        })
        .unwrap_or_else(|_| day.to_string())
}

/// The most recent time at or before `now` that the clock (at `offset_secs`) read `at`
/// (minutes after midnight), and the local date it read then.
pub fn last_occurrence(at: u32, now: i64, offset_secs: i64) -> (i64, String) {
    let (day, minute) = local(now, offset_secs);
    let day = if minute >= at { day } else { day - 1 };
    let ts = day * 86_400 + i64::from(at) * 60 - offset_secs;
    (ts, date_of_day(day))
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value)
}

fn server_listed(list: &[String], a: &AlarmFacts) -> bool {
    list.is_empty()
        || list
            .iter()
            .any(|v| v == a.server_id || v.eq_ignore_ascii_case(a.server_name))
}

impl Mask {
    /// Whether the rule holds at `now` (its end date and time window), whatever the alarm.
    pub fn active(&self, now: i64, offset_secs: i64) -> bool {
        if self.until.is_some_and(|u| now >= u) {
            return false;
        }
        let (day, minute) = local(now, offset_secs);
        let on = |d: i64| self.days.is_empty() || self.days.contains(&weekday(d));
        match (
            self.start.as_deref().and_then(parse_hhmm),
            self.end.as_deref().and_then(parse_hhmm),
        ) {
            (Some(s), Some(e)) if s < e => on(day) && (s..e).contains(&minute),
            // Past midnight: the evening part of a listed day, or the morning after it.
            (Some(s), Some(e)) => (minute >= s && on(day)) || (minute < e && on(day - 1)),
            _ => on(day),
        }
    }

    fn covers(&self, a: &AlarmFacts, now: i64, offset_secs: i64) -> bool {
        listed(&self.types, a.alarm_type)
            && server_listed(&self.servers, a)
            && self.active(now, offset_secs)
    }
}

impl Filters {
    /// Whether a new alarm is sent on this channel at `now` (the center's clock `offset_secs`
    /// east of UTC), given when the channel last sent one of the same server, type and key.
    pub fn decide(
        &self,
        a: &AlarmFacts,
        now: i64,
        offset_secs: i64,
        last_sent_in_group: Option<i64>,
    ) -> Decision {
        if let Some(min) = self.min_severity
            && a.severity < min
        {
            return Decision::Skip(format!("filtered: severity {} is below {min}", a.severity));
        }
        if !listed(&self.types, a.alarm_type) {
            return Decision::Skip(format!(
                "filtered: type {} is not one of the channel's",
                a.alarm_type
            ));
        }
        if !server_listed(&self.servers, a) {
            return Decision::Skip(format!(
                "filtered: server {} is not one of the channel's",
                a.server_name
            ));
        }
        if let Some((i, m)) = self
            .masks
            .iter()
            .enumerate()
            .find(|(_, m)| m.covers(a, now, offset_secs))
        {
            let why = if m.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", m.note)
            };
            return Decision::Skip(format!("masked by rule {}{why}", i + 1));
        }
        if self.dedup_minutes > 0
            && let Some(last) = last_sent_in_group
            && now - last < i64::from(self.dedup_minutes) * 60
        {
            return Decision::Skip(format!(
                "repeat: the same server, type and key was sent {} s ago (window {} min)",
                now - last,
                self.dedup_minutes
            ));
        }
        Decision::Send
    }

    /// Checks the filters; the message names the field and index.
    pub fn validate(&self) -> Result<(), String> {
        check_list("filters.types", &self.types)?;
        check_types("filters.types", &self.types)?;
        check_list("filters.servers", &self.servers)?;
        if self.dedup_minutes > MAX_DEDUP_MINUTES {
            return Err(format!(
                "filters.dedup_minutes: {} is more than {MAX_DEDUP_MINUTES} (a week)",
                self.dedup_minutes
            ));
        }
        if self.masks.len() > MAX_MASKS {
            return Err(format!(
                "filters.masks: at most {MAX_MASKS} rules, not {}",
                self.masks.len()
            ));
        }
        for (i, m) in self.masks.iter().enumerate() {
            let f = format!("filters.masks[{i}]");
            check_list(&format!("{f}.types"), &m.types)?;
            check_types(&format!("{f}.types"), &m.types)?;
            check_list(&format!("{f}.servers"), &m.servers)?;
            if let Some(d) = m.days.iter().find(|d| !(1..=7).contains(*d)) {
                return Err(format!("{f}.days: {d} is not 1 (Monday) to 7 (Sunday)"));
            }
            match (&m.start, &m.end) {
                (None, None) => {}
                (Some(s), Some(e)) => {
                    let start =
                        parse_hhmm(s).ok_or_else(|| format!("{f}.start: {s:?} is not HH:MM"))?;
                    let end =
                        parse_hhmm(e).ok_or_else(|| format!("{f}.end: {e:?} is not HH:MM"))?;
                    if start == end {
                        return Err(format!(
                            "{f}: start and end are both {s}; leave both empty for the whole day"
                        ));
                    }
                }
                _ => return Err(format!("{f}: give both start and end, or neither")),
            }
            if m.note.chars().count() > 200 {
                return Err(format!("{f}.note: at most 200 characters"));
            }
        }
        Ok(())
    }
}

fn check_list(field: &str, list: &[String]) -> Result<(), String> {
    if list.len() > MAX_LIST {
        return Err(format!(
            "{field}: at most {MAX_LIST} entries, not {}",
            list.len()
        ));
    }
    for (i, v) in list.iter().enumerate() {
        if v.trim().is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
            return Err(format!(
                "{field}[{i}]: {v:?} is empty, too long or not text"
            ));
        }
    }
    Ok(())
}

fn check_types(field: &str, list: &[String]) -> Result<(), String> {
    match list
        .iter()
        .enumerate()
        .find(|(_, t)| hostward_proto::alarm::alarm_type(t).is_none())
    {
        Some((i, t)) => Err(format!("{field}[{i}]: {t:?} is not an alarm type")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01 00:00 UTC, a Monday.
    const MONDAY: i64 = 1_704_067_200;

    fn facts() -> AlarmFacts<'static> {
        AlarmFacts {
            alarm_type: "brute_force",
            severity: Severity::High,
            server_id: "s1",
            server_name: "web-1",
        }
    }

    fn at(day: i64, hh: i64, mm: i64) -> i64 {
        MONDAY + day * 86_400 + hh * 3600 + mm * 60
    }

    #[test]
    fn clock_helpers() {
        assert_eq!(parse_hhmm("10:00"), Some(600));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        for bad in ["24:00", "9:00", "10:60", "ab:cd", "1000", ""] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
        assert_eq!(parse_utc_offset("+02:00"), Some(7200));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        assert_eq!(parse_utc_offset("+15:00"), None);
        assert_eq!(parse_utc_offset("02:00"), None);
        assert_eq!(weekday(MONDAY / 86_400), 1);
        assert_eq!(weekday(MONDAY / 86_400 + 6), 7);
        assert_eq!(date_of_day(MONDAY / 86_400), "2024-01-01");
        // 10:00 in UTC+2 is 08:00 UTC: at 09:00 UTC today's has passed, at 07:00 it has not.
        assert_eq!(
            last_occurrence(600, at(0, 9, 0), 7200),
            (at(0, 8, 0), "2024-01-01".into())
        );
        assert_eq!(
            last_occurrence(600, at(0, 7, 0), 7200),
            (at(-1, 8, 0), "2023-12-31".into())
        );
        assert_eq!(
            last_occurrence(600, at(0, 10, 0), 0),
            (at(0, 10, 0), "2024-01-01".into()),
            "the minute itself counts"
        );
    }

    #[test]
    fn severity_type_and_server_filters() {
        let a = facts();
        let f = Filters::default();
        assert_eq!(f.decide(&a, MONDAY, 0, None), Decision::Send);
        let f = Filters {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        };
        assert_eq!(
            f.decide(&a, MONDAY, 0, None),
            Decision::Skip("filtered: severity high is below critical".into())
        );
        let f = Filters {
            min_severity: Some(Severity::High),
            types: vec!["brute_force".into()],
            servers: vec!["WEB-1".into()],
            ..Default::default()
        };
        assert_eq!(f.decide(&a, MONDAY, 0, None), Decision::Send, "by name");
        let f = Filters {
            servers: vec!["s1".into()],
            ..Default::default()
        };
        assert_eq!(f.decide(&a, MONDAY, 0, None), Decision::Send, "by id");
        let f = Filters {
            types: vec!["malware".into()],
            ..Default::default()
        };
        assert!(matches!(f.decide(&a, MONDAY, 0, None), Decision::Skip(s) if s.contains("type")));
        let f = Filters {
            servers: vec!["db-1".into()],
            ..Default::default()
        };
        assert!(
            matches!(f.decide(&a, MONDAY, 0, None), Decision::Skip(s) if s.contains("server web-1"))
        );
    }

    #[test]
    fn masking_windows_days_midnight_and_end_dates() {
        let a = facts();
        let night = Mask {
            days: vec![1, 2, 3, 4, 5],
            start: Some("22:00".into()),
            end: Some("06:00".into()),
            note: "nightly deploys".into(),
            ..Default::default()
        };
        let f = Filters {
            masks: vec![night.clone()],
            ..Default::default()
        };
        let skip = |t| f.decide(&a, t, 0, None) != Decision::Send;
        assert!(skip(at(0, 22, 0)), "Monday 22:00");
        assert!(skip(at(1, 5, 59)), "Tuesday morning, after Monday night");
        assert!(!skip(at(1, 6, 0)), "end is exclusive");
        assert!(!skip(at(0, 21, 59)));
        assert!(skip(at(5, 3, 0)), "Saturday morning after Friday night");
        assert!(!skip(at(5, 23, 0)), "Saturday night is not listed");
        assert!(!skip(at(0, 3, 0)), "Monday morning follows Sunday night");
        assert_eq!(
            f.decide(&a, at(0, 23, 0), 0, None),
            Decision::Skip("masked by rule 1 (nightly deploys)".into())
        );
        // The same window in UTC+2: 22:00 local is 20:00 UTC.
        assert!(f.decide(&a, at(0, 20, 30), 7200, None) != Decision::Send);
        assert!(f.decide(&a, at(0, 20, 30), 0, None) == Decision::Send);

        // A day window, a type and server scope, an end date.
        let day = Mask {
            types: vec!["brute_force".into()],
            servers: vec!["web-1".into()],
            start: Some("09:00".into()),
            end: Some("17:00".into()),
            until: Some(at(2, 0, 0)),
            ..Default::default()
        };
        let f = Filters {
            masks: vec![day],
            ..Default::default()
        };
        assert!(f.decide(&a, at(1, 12, 0), 0, None) != Decision::Send);
        assert!(
            f.decide(&a, at(2, 12, 0), 0, None) == Decision::Send,
            "ended"
        );
        let other = AlarmFacts {
            server_name: "db-1",
            server_id: "s2",
            ..a
        };
        assert!(f.decide(&other, at(1, 12, 0), 0, None) == Decision::Send);
        // No window: the whole of the listed days.
        let weekend = Mask {
            days: vec![6, 7],
            ..Default::default()
        };
        assert!(weekend.active(at(6, 12, 0), 0));
        assert!(!weekend.active(at(4, 12, 0), 0));
    }

    #[test]
    fn repeats_within_the_window_are_not_sent_again() {
        let a = facts();
        let f = Filters::default();
        assert!(
            matches!(f.decide(&a, MONDAY, 0, Some(MONDAY - 600)), Decision::Skip(s) if s.starts_with("repeat"))
        );
        assert_eq!(f.decide(&a, MONDAY, 0, Some(MONDAY - 3600)), Decision::Send);
        let off = Filters {
            dedup_minutes: 0,
            ..Default::default()
        };
        assert_eq!(off.decide(&a, MONDAY, 0, Some(MONDAY - 1)), Decision::Send);
    }

    #[test]
    fn validation_names_field_and_index() {
        let mask = |m: Mask| Filters {
            masks: vec![Mask::default(), m],
            ..Default::default()
        };
        for (f, want) in [
            (
                Filters {
                    types: vec!["brute_force".into(), "nope".into()],
                    ..Default::default()
                },
                "filters.types[1]: \"nope\" is not an alarm type",
            ),
            (
                mask(Mask {
                    days: vec![0],
                    ..Default::default()
                }),
                "filters.masks[1].days: 0 is not 1 (Monday) to 7 (Sunday)",
            ),
            (
                mask(Mask {
                    start: Some("25:00".into()),
                    end: Some("06:00".into()),
                    ..Default::default()
                }),
                "filters.masks[1].start: \"25:00\" is not HH:MM",
            ),
            (
                mask(Mask {
                    start: Some("06:00".into()),
                    ..Default::default()
                }),
                "filters.masks[1]: give both start and end, or neither",
            ),
            (
                Filters {
                    dedup_minutes: MAX_DEDUP_MINUTES + 1,
                    ..Default::default()
                },
                "filters.dedup_minutes: 10081 is more than 10080 (a week)",
            ),
        ] {
            assert_eq!(f.validate().unwrap_err(), want);
        }
        assert!(Filters::default().validate().is_ok());
    }
}
