//! A report as one self-contained HTML page (askama, `templates/reports/report.html`): its
//! styles inline and no script or outside reference, so it reads the same downloaded, emailed
//! or opened from the console. Every string is escaped by the template.

use askama::Template;

use super::content::{Content, fmt_day};
use crate::console::fmt_utc;

pub(crate) struct SevRow {
    pub label: &'static str,
    pub counts: [i64; 4],
    pub total: i64,
}

#[derive(Template)]
#[template(path = "reports/report.html")]
struct ReportPage<'a> {
    c: &'a Content,
    title: String,
    from: String,
    to: String,
    made: String,
    alarms: i64,
    occurrences: i64,
    by_state: [i64; 3],
    vulns: Vec<SevRow>,
    baseline: SevRow,
    added: Vec<(String, String)>,
    lost: Vec<(String, String, String, String)>,
}

fn row(label: &'static str, counts: [i64; 4]) -> SevRow {
    SevRow {
        label,
        counts,
        total: counts.iter().sum(),
    }
}

pub fn render(c: &Content) -> Result<String, askama::Error> {
    let f = &c.facts;
    let (alarms, occurrences) = c.alarm_totals();
    ReportPage {
        title: c.title(),
        from: fmt_day(c.range.from),
        to: fmt_day(c.range.to - 1),
        made: fmt_utc(c.generated_at),
        alarms,
        occurrences,
        by_state: c.alarms_by_state(),
        vulns: vec![
            row("found in the range", f.vulns_found),
            row("fixed in the range", f.vulns_fixed),
            row("ignored in the range", f.vulns_ignored),
            row("open now", f.vulns_open),
        ],
        baseline: row("failed, not ignored", f.baseline_failed),
        added: f
            .added
            .iter()
            .map(|s| (s.name.clone(), fmt_utc(s.created_at)))
            .collect(),
        lost: f
            .lost_protection
            .iter()
            .map(|p| {
                (
                    p.server_name.clone(),
                    fmt_utc(p.ts),
                    p.status.clone(),
                    p.reason.replace('_', " "),
                )
            })
            .collect(),
        c,
    }
    .render()
}
