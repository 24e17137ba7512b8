//! The one severity scale of Hostward: vulnerabilities, risk findings and alarms all use it.

use serde::{Deserialize, Serialize};

/// Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The CVSS v3 qualitative bands as security teams use them: >= 9 critical, >= 7 high,
    /// >= 4 medium, else low (CVSS's own "none" for 0.0 counts as low).
    pub fn from_cvss(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_bands_are_inclusive_at_the_lower_edge() {
        let bands: Vec<_> = [10.0, 9.0, 8.9, 7.0, 6.9, 4.0, 3.9, 0.0]
            .into_iter()
            .map(Severity::from_cvss)
            .collect();
        use Severity::*;
        assert_eq!(
            bands,
            [Critical, Critical, High, High, Medium, Medium, Low, Low]
        );
        assert!(Low < Medium && Medium < High && High < Critical);
        assert_eq!(Severity::parse("high"), Some(High));
        assert_eq!(Severity::parse("High"), None);
    }
}
