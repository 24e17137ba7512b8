//! The security score of a project, 0 to 100, with the reference product's categories and
//! deductions (hss-features §10.4): each category loses points per open problem, never more
//! than its share. Pure: the inputs are counted by the store, the result says where each
//! point went and which of the reference's deductions this center cannot judge yet.

use serde::Serialize;
use utoipa::ToSchema;

/// Open problems by severity: critical, high, medium, low.
pub type BySeverity = [i64; 4];

/// What the score is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub servers: i64,
    /// Servers whose protection is not on (disabled or interrupted).
    pub unprotected: i64,
    /// Unhandled vulnerability findings.
    pub vulns: BySeverity,
    /// Whether a server's software was matched against the database in the past 30 days.
    pub vuln_scanned_recently: bool,
    /// Failed baseline checks nobody ignored.
    pub baseline_failed: BySeverity,
    pub baseline_checked_recently: bool,
    pub weak_passwords: i64,
    /// The daily risk scan (weak passwords among it) is on in the project's risk policy.
    pub weak_password_scan_on: bool,
    /// Unhandled alarms.
    pub alarms: BySeverity,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Deduction {
    pub what: String,
    pub count: i64,
    pub points: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Category {
    pub name: &'static str,
    pub max: f64,
    /// What was deducted, at most `max`.
    pub deducted: f64,
    pub deductions: Vec<Deduction>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Score {
    /// 0 to 100, rounded to a whole number.
    pub score: i64,
    pub categories: Vec<Category>,
    /// The reference product's deductions this center does not judge yet, and why.
    pub not_scored: Vec<String>,
}

fn by_severity(out: &mut Vec<Deduction>, what: &str, counts: &BySeverity, points: [f64; 4]) {
    for (i, (n, p)) in counts.iter().zip(points).enumerate() {
        if *n > 0 {
            let sev = ["critical", "high", "medium", "low"][i];
            out.push(Deduction {
                what: format!("{what}: {sev}"),
                count: *n,
                points: *n as f64 * p,
            });
        }
    }
}

fn once(out: &mut Vec<Deduction>, what: &str, applies: bool, points: f64) {
    if applies {
        out.push(Deduction {
            what: what.into(),
            count: 1,
            points,
        });
    }
}

fn category(name: &'static str, max: f64, deductions: Vec<Deduction>) -> Category {
    let sum: f64 = deductions.iter().map(|d| d.points).sum();
    Category {
        name,
        max,
        deducted: sum.min(max),
        deductions,
    }
}

pub fn score(i: &Inputs) -> Score {
    let mut vulns = Vec::new();
    by_severity(
        &mut vulns,
        "unhandled vulnerabilities",
        &i.vulns,
        [10.0, 3.0, 1.0, 0.1],
    );
    once(
        &mut vulns,
        "no vulnerability scan in the past month",
        i.servers > 0 && !i.vuln_scanned_recently,
        15.0,
    );
    let mut compliance = Vec::new();
    // The reference's non-compliance deductions are high 10 / medium 3 / low 1; a critical
    // check counts as high.
    by_severity(
        &mut compliance,
        "failed baseline checks",
        &i.baseline_failed,
        [10.0, 10.0, 3.0, 1.0],
    );
    if i.weak_passwords > 0 {
        compliance.push(Deduction {
            what: "weak passwords".into(),
            count: i.weak_passwords,
            points: 10.0 * i.weak_passwords as f64,
        });
    }
    once(
        &mut compliance,
        "weak-password scan not enabled",
        !i.weak_password_scan_on,
        10.0,
    );
    once(
        &mut compliance,
        "no baseline check in the past month",
        i.servers > 0 && !i.baseline_checked_recently,
        10.0,
    );
    let mut intrusions = Vec::new();
    by_severity(
        &mut intrusions,
        "unhandled alarms",
        &i.alarms,
        [10.0, 3.0, 1.0, 0.1],
    );
    once(
        &mut intrusions,
        "no server protected",
        i.servers > 0 && i.unprotected == i.servers,
        30.0,
    );
    let mut unprotected = Vec::new();
    if i.unprotected > 0 {
        unprotected.push(Deduction {
            what: "unprotected servers (importance: general)".into(),
            count: i.unprotected,
            points: 0.5 * i.unprotected as f64,
        });
    }
    let categories = vec![
        category("vulnerabilities", 20.0, vulns),
        category("compliance", 20.0, compliance),
        category("intrusions", 30.0, intrusions),
        category("assets", 10.0, Vec::new()),
        category("images", 10.0, Vec::new()),
        category("unprotected assets", 10.0, unprotected),
    ];
    let lost: f64 = categories.iter().map(|c| c.deducted).sum();
    Score {
        score: (100.0 - lost).round().clamp(0.0, 100.0) as i64,
        categories,
        not_scored: vec![
            "high-risk open ports and the asset discovery policy (assets): not judged yet".into(),
            "container images (images): this center does not scan images".into(),
            "ransomware, web tamper and container policies off: edition-specific, editions are not built yet".into(),
            "login security policy off: brute-force defence is always on here".into(),
            "server importance: every server counts as general".into(),
        ],
    }
}

/// One deduction with the points it actually costs: its share of its category's deduction
/// (a capped category's points are shared in proportion), so the costs add up to what the
/// score lost.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Cost {
    pub category: &'static str,
    pub what: String,
    pub count: i64,
    /// What the table deducts for it.
    pub points: f64,
    /// What it costs the score, at most `points`.
    pub lost: f64,
}

/// Every deduction of `s`, the most points lost first ("what costs the most").
pub fn costs(s: &Score) -> Vec<Cost> {
    let mut out: Vec<Cost> = s
        .categories
        .iter()
        .flat_map(|c| {
            let sum: f64 = c.deductions.iter().map(|d| d.points).sum();
            let share = if sum > 0.0 { c.deducted / sum } else { 0.0 };
            c.deductions.iter().map(move |d| Cost {
                category: c.name,
                what: d.what.clone(),
                count: d.count,
                points: d.points,
                lost: d.points * share,
            })
        })
        .collect();
    out.sort_by(|a, b| b.lost.total_cmp(&a.lost).then_with(|| a.what.cmp(&b.what)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deductions_stop_at_each_categorys_share() {
        let clean = Inputs {
            servers: 2,
            vuln_scanned_recently: true,
            baseline_checked_recently: true,
            weak_password_scan_on: true,
            ..Default::default()
        };
        assert_eq!(score(&clean).score, 100);
        // 1 critical + 2 high + 3 low vulns: 10 + 6 + 0.3 = 16.3 of 20; 3 weak passwords: 30,
        // capped at 20; 1 medium alarm: 1; 1 of 2 servers unprotected: 0.5.
        let i = Inputs {
            unprotected: 1,
            vulns: [1, 2, 0, 3],
            weak_passwords: 3,
            alarms: [0, 0, 1, 0],
            ..clean.clone()
        };
        let s = score(&i);
        let lost = |n: &str| s.categories.iter().find(|c| c.name == n).unwrap().deducted;
        assert!((lost("vulnerabilities") - 16.3).abs() < 1e-9);
        assert_eq!(lost("compliance"), 20.0);
        assert_eq!(lost("intrusions"), 1.0);
        assert_eq!(lost("unprotected assets"), 0.5);
        assert_eq!(s.score, (100.0f64 - 16.3 - 20.0 - 1.0 - 0.5).round() as i64);
        // Nothing scanned, nothing protected: 15 + (10 + 10) + 30 + 0.5 lost, 34.5 rounds to 35.
        let s = score(&Inputs {
            servers: 1,
            unprotected: 1,
            ..Default::default()
        });
        assert_eq!(s.score, 35);
        // What costs the most: the capped categories share their points; all add up to 65.5.
        let c = costs(&s);
        assert_eq!(c[0].what, "no server protected");
        assert_eq!(c[0].lost, 30.0);
        assert_eq!(c[1].what, "no vulnerability scan in the past month");
        let total: f64 = c.iter().map(|c| c.lost).sum();
        assert!((total - 65.5).abs() < 1e-9, "{total}");
        assert!(c.windows(2).all(|w| w[0].lost >= w[1].lost));
        assert!(!s.not_scored.is_empty());
    }
}
