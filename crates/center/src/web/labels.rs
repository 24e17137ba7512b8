//! Labels and CSS classes of the one severity scale (Critical/High/Medium/Low), as the
//! console shows them everywhere.

pub(crate) fn severity_label(s: &str) -> &'static str {
    match s {
        "critical" => "Critical",
        "high" => "High",
        "medium" => "Medium",
        "low" => "Low",
        _ => "Unknown",
    }
}

pub(crate) fn severity_class(s: &str) -> &'static str {
    match s {
        "critical" => "sev-critical",
        "high" => "sev-high",
        "medium" => "sev-medium",
        "low" => "sev-low",
        _ => "b-muted",
    }
}
