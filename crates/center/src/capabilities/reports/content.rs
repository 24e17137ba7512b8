//! What a report says, gathered through the store for one project and one time range: the
//! score and its trend, alarms by type and severity with their handling state, vulnerabilities
//! found, fixed and still open, failed baseline checks, the servers with their alarms and
//! those added or that lost protection. Stored as JSON with the report, so a report keeps
//! saying what was true when it was made; where the stored data cannot tell something, the
//! report says so (`notes`) rather than guessing.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::ApiError;
use crate::capabilities::dashboard::api::{date_of_day, score_now};
use hostward_store::{RangeFacts, day_of, now};

/// The kinds of range a report covers.
pub const RANGE_KINDS: &[&str] = &["daily", "weekly", "monthly", "custom"];
/// The reference product's longest custom range: three months.
pub const MAX_CUSTOM_DAYS: i64 = 92;

/// A report's time range, `[from, to)` in Unix seconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

fn day_start(day: i64) -> i64 {
    day * 86_400
}

fn month_start(d: Date) -> i64 {
    Date::from_calendar_date(d.year(), d.month(), 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(0)
}

/// The last complete period of `kind` before `at`: yesterday, last week (Monday to Sunday),
/// last month, as the reference product's reports cover them.
pub fn last_period(kind: &str, at: i64) -> Result<Range, String> {
    let today = day_of(at);
    match kind {
        "daily" => Ok(Range {
            from: day_start(today - 1),
            to: day_start(today),
        }),
        "weekly" => {
            // 1970-01-01 was a Thursday: Monday is 3 days on from it modulo 7.
            let monday = today - (today + 3).rem_euclid(7);
            Ok(Range {
                from: day_start(monday - 7),
                to: day_start(monday),
            })
        }
        "monthly" => {
            let d = OffsetDateTime::from_unix_timestamp(at)
                .map_err(|e| e.to_string())?
                .date();
            let this = month_start(d);
            let prev = if d.month() == Month::January {
                Date::from_calendar_date(d.year() - 1, Month::December, 1)
            } else {
                Date::from_calendar_date(d.year(), d.month().previous(), 1)
            }
            .map_err(|e| e.to_string())?;
            Ok(Range {
                from: month_start(prev),
                to: this,
            })
        }
        other => Err(format!(
            "range: {other:?} is not one of daily, weekly, monthly (custom needs from and to)"
        )),
    }
}

fn parse_date(field: &str, s: &str) -> Result<i64, String> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &f)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| format!("{field}: {s:?} is not a date YYYY-MM-DD"))
}

/// A custom range: whole UTC days `from` to `to`, both included, 1 day to 3 months.
pub fn custom(from: &str, to: &str) -> Result<Range, String> {
    let f = parse_date("from", from)?;
    let t = parse_date("to", to)? + 86_400;
    if t <= f {
        return Err(format!("to: {to} is before from {from}"));
    }
    if (t - f) / 86_400 > MAX_CUSTOM_DAYS {
        return Err(format!(
            "to: a custom range covers at most {MAX_CUSTOM_DAYS} days (3 months); {from} to {to} is {}",
            (t - f) / 86_400
        ));
    }
    Ok(Range { from: f, to: t })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CategoryLine {
    pub name: String,
    pub deducted: f64,
    pub max: f64,
}

/// One day of the score's trend over the range; `score` None when no snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrendPoint {
    pub date: String,
    pub score: Option<i64>,
    pub vulns: Option<i64>,
    pub alarms: Option<i64>,
}

/// Everything a report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Content {
    pub project_id: String,
    pub project_name: String,
    pub range_kind: String,
    pub range: Range,
    pub generated_at: i64,
    /// The score when the report was made.
    pub score: i64,
    pub categories: Vec<CategoryLine>,
    /// Each day of the range (at most the last 92), oldest first.
    pub trend: Vec<TrendPoint>,
    pub facts: RangeFacts,
    /// What the stored data cannot tell, said rather than guessed.
    pub notes: Vec<String>,
}

impl Content {
    /// Alarms in the range (each aggregated alarm once) and their occurrences.
    pub fn alarm_totals(&self) -> (i64, i64) {
        self.facts
            .alarms
            .iter()
            .fold((0, 0), |(a, o), g| (a + g.alarms, o + g.occurrences))
    }

    /// Alarms in the range by handling state: unhandled, handled, ignored.
    pub fn alarms_by_state(&self) -> [i64; 3] {
        let mut out = [0; 3];
        for g in &self.facts.alarms {
            match g.state.as_str() {
                "unhandled" => out[0] += g.alarms,
                "handled" => out[1] += g.alarms,
                _ => out[2] += g.alarms,
            }
        }
        out
    }

    pub fn title(&self) -> String {
        format!(
            "Hostward security report: {} ({}, {} to {})",
            self.project_name,
            self.range_kind,
            fmt_day(self.range.from),
            fmt_day(self.range.to - 1)
        )
    }

    /// A file name for downloads and attachments: ASCII only.
    pub fn file_name(&self, ext: &str) -> String {
        let name: String = self
            .project_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!(
            "hostward-report-{name}-{}-{}.{ext}",
            fmt_day(self.range.from),
            fmt_day(self.range.to - 1)
        )
    }
}

pub fn fmt_day(ts: i64) -> String {
    date_of_day(day_of(ts))
}

/// Gathers a report of `project_id` over `range` (the caller was checked).
pub async fn gather(
    state: &AppState,
    project_id: &str,
    range_kind: &str,
    range: Range,
) -> Result<Content, ApiError> {
    let project = state
        .store
        .project(project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    let (score, today) = score_now(state, project_id).await?;
    let facts = state
        .store
        .range_facts(project_id, range.from, range.to)
        .await?;
    let first = day_of(range.from).max(day_of(range.to - 1) - MAX_CUSTOM_DAYS + 1);
    let last = day_of(range.to - 1);
    let stored = state.store.snapshots(project_id, first, last).await?;
    let trend = (first..=last)
        .map(|day| {
            let s = if day == today.day {
                Some(&today)
            } else {
                stored.iter().find(|s| s.day == day)
            };
            TrendPoint {
                date: date_of_day(day),
                score: s.map(|s| s.score),
                vulns: s.map(|s| s.vulns),
                alarms: s.map(|s| s.alarms),
            }
        })
        .collect();
    let mut notes = vec![
        "Servers deleted in the range are not listed: a deleted server's records go with it.".to_string(),
        "Baseline results and open vulnerabilities are as of when the report was made: the center keeps each check's current result, not its result on each day.".to_string(),
        "Alarms are those whose occurrences overlap the range; an alarm repeating across its end is counted once, with all its occurrences.".to_string(),
    ];
    if range.to > now() {
        notes.push(
            "The range reaches past the time the report was made: later events are not in it."
                .into(),
        );
    }
    Ok(Content {
        project_id: project.id,
        project_name: project.name,
        range_kind: range_kind.to_string(),
        range,
        generated_at: now(),
        score: score.score,
        categories: score
            .categories
            .iter()
            .map(|c| CategoryLine {
                name: c.name.to_string(),
                deducted: c.deducted,
                max: c.max,
            })
            .collect(),
        trend,
        facts,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        parse_date("x", s).unwrap()
    }

    #[test]
    fn periods_are_the_last_complete_ones() {
        // Monday 2026-12-07, 10:00.
        let at = ts("2026-12-07") + 10 * 3600;
        assert_eq!(
            last_period("daily", at).unwrap(),
            Range {
                from: ts("2026-12-06"),
                to: ts("2026-12-07")
            }
        );
        assert_eq!(
            last_period("weekly", at).unwrap(),
            Range {
                from: ts("2026-11-30"),
                to: ts("2026-12-07")
            }
        );
        // A Sunday still reports the week before the current one.
        assert_eq!(
            last_period("weekly", ts("2026-12-13") + 5).unwrap(),
            Range {
                from: ts("2026-11-30"),
                to: ts("2026-12-07")
            }
        );
        assert_eq!(
            last_period("monthly", at).unwrap(),
            Range {
                from: ts("2026-11-01"),
                to: ts("2026-12-01")
            }
        );
        assert_eq!(
            last_period("monthly", ts("2027-01-15")).unwrap(),
            Range {
                from: ts("2026-12-01"),
                to: ts("2027-01-01")
            }
        );
        assert!(
            last_period("hourly", at)
                .unwrap_err()
                .starts_with("range: \"hourly\"")
        );
    }

    #[test]
    fn custom_ranges_are_whole_days_up_to_three_months() {
        assert_eq!(
            custom("2026-12-01", "2026-12-01").unwrap(),
            Range {
                from: ts("2026-12-01"),
                to: ts("2026-12-02")
            }
        );
        assert_eq!(
            custom("2026-12-x", "2026-12-01").unwrap_err(),
            "from: \"2026-12-x\" is not a date YYYY-MM-DD"
        );
        assert!(
            custom("2026-12-02", "2026-12-01")
                .unwrap_err()
                .starts_with("to: ")
        );
        assert!(
            custom("2026-01-01", "2026-12-01")
                .unwrap_err()
                .contains("at most 92 days")
        );
        assert!(custom("2026-09-01", "2026-12-01").is_ok());
    }
}
