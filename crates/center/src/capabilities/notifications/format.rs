//! What a notification says, as pure functions of its payload: email (subject, plain text
//! and HTML), and webhook JSON in three formats: `hostward` (our own, every field), `slack` (an
//! incoming webhook's `{"text", "blocks"}`) and `teams` (an Office 365 connector MessageCard,
//! which Teams incoming webhooks and Workflows accept). Also the webhook signature:
//! HMAC-SHA256 over `<unix time>.<body>` with the channel's secret, sent as
//! `X-Hostward-Signature: t=<unix time>,v1=<hex>`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What an alarm notification carries, as queued with the alarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmPayload {
    pub alarm_id: String,
    pub server_id: String,
    pub server_name: String,
    pub alarm_type: String,
    pub title: String,
    pub severity: String,
    #[serde(default)]
    pub tactic: String,
    #[serde(default)]
    pub technique: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub count: i64,
    pub ts: i64,
    #[serde(default)]
    pub evidence: Value,
    /// A test from the console: no real alarm.
    #[serde(default)]
    pub test: bool,
}

/// A daily summary: a project's alarms of one day (24 hours up to the summary's time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryPayload {
    /// The local date the summary was due.
    pub day: String,
    pub from: i64,
    pub to: i64,
    pub project_name: String,
    pub alarms: i64,
    pub occurrences: i64,
    pub unhandled: i64,
    /// (severity, alarms), most severe first.
    pub by_severity: Vec<(String, i64)>,
    /// (type, title, alarms).
    pub by_type: Vec<(String, String, i64)>,
    /// (server, alarms, unhandled).
    pub by_server: Vec<(String, i64, i64)>,
    #[serde(default)]
    pub test: bool,
}

/// A report another capability mails through the outbox (`enqueue_email`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportPayload {
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub mime: String,
    /// The bytes, base64.
    pub data: String,
}

/// An email's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A notification, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Alarm(AlarmPayload),
    Summary(SummaryPayload),
    Report(ReportPayload),
}

impl Notice {
    /// Decodes an outbox row's payload by its kind (`test` rows hold an alarm or a summary).
    pub fn decode(kind: &str, payload: &Value) -> Result<Notice, String> {
        let err = |e: serde_json::Error| format!("the queued {kind} cannot be read: {e}");
        match kind {
            "summary" => Ok(Notice::Summary(
                serde_json::from_value(payload.clone()).map_err(err)?,
            )),
            "report" => Ok(Notice::Report(
                serde_json::from_value(payload.clone()).map_err(err)?,
            )),
            "alarm" => Ok(Notice::Alarm(
                serde_json::from_value(payload.clone()).map_err(err)?,
            )),
            "test" if payload.get("day").is_some() => Ok(Notice::Summary(
                serde_json::from_value(payload.clone()).map_err(err)?,
            )),
            "test" => Ok(Notice::Alarm(
                serde_json::from_value(payload.clone()).map_err(err)?,
            )),
            other => Err(format!("unknown notification kind {other:?}")),
        }
    }

    /// The webhook event name.
    pub fn event(&self) -> &'static str {
        match self {
            Notice::Alarm(a) if a.test => "test",
            Notice::Alarm(_) => "alarm",
            Notice::Summary(_) => "summary",
            Notice::Report(_) => "report",
        }
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ts: i64) -> String {
    format!("{} UTC", crate::console::fmt_utc(ts))
}

/// The link to an alarm's page on the console.
pub fn alarm_link(center: &str, a: &AlarmPayload) -> String {
    if a.test {
        format!("{center}/notifications")
    } else {
        format!("{center}/alarms/{}", a.alarm_id)
    }
}

/// The alarm's facts as (label, value) rows, in the order every format shows them.
fn alarm_facts(a: &AlarmPayload) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("Server", a.server_name.clone()),
        ("Severity", a.severity.clone()),
        ("Type", format!("{} ({})", a.title, a.alarm_type)),
        ("First seen", utc(a.ts)),
    ];
    if let Some(ip) = a.source_ip.as_deref().filter(|s| !s.is_empty()) {
        v.push(("Source", ip.to_string()));
    }
    if a.count > 1 {
        v.push(("Occurrences", a.count.to_string()));
    }
    if !a.technique.is_empty() {
        v.push(("MITRE ATT&CK", format!("{} / {}", a.tactic, a.technique)));
    }
    if let Some(users) = a.evidence.get("users").and_then(Value::as_array) {
        let names: Vec<&str> = users.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            v.push(("Users", names.join(", ")));
        }
    }
    if let Some(path) = a.evidence.get("path").and_then(Value::as_str) {
        v.push(("Path", path.to_string()));
    }
    v
}

fn recommendation(a: &AlarmPayload) -> Option<&'static str> {
    hostward_proto::alarm::alarm_type(&a.alarm_type).map(|t| t.recommendation)
}

fn test_mark(test: bool) -> &'static str {
    if test { "[test] " } else { "" }
}

/// The email of a notice; `center` is the console's URL.
pub fn email(n: &Notice, center: &str) -> Email {
    match n {
        Notice::Alarm(a) => alarm_email(a, center),
        Notice::Summary(s) => summary_email(s, center),
        Notice::Report(r) => Email {
            subject: r.subject.clone(),
            text: r.text.clone(),
            html: r.html.clone(),
        },
    }
}

fn alarm_email(a: &AlarmPayload, center: &str) -> Email {
    let link = alarm_link(center, a);
    let facts = alarm_facts(a);
    let subject = format!(
        "[Hostward] {}{} alarm on {}: {}",
        test_mark(a.test),
        a.severity.to_uppercase(),
        a.server_name,
        a.title
    );
    let mut text = String::new();
    if a.test {
        text.push_str("This is a test notification from Hostward; no alarm was raised.\n\n");
    }
    text.push_str(&format!("{}\n\n", a.title));
    for (k, v) in &facts {
        text.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(r) = recommendation(a) {
        text.push_str(&format!("\nWhat to do: {r}\n"));
    }
    text.push_str(&format!("\nOpen in Hostward: {link}\n"));
    let rows: String = facts
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    let html = format!(
        "<!DOCTYPE html><html><body>{test}<h2>{title}</h2><table>{rows}</table>{rec}<p><a href=\"{href}\">Open in Hostward</a></p></body></html>",
        test = if a.test {
            "<p><em>This is a test notification from Hostward; no alarm was raised.</em></p>"
        } else {
            ""
        },
        title = esc(&a.title),
        rec = recommendation(a)
            .map(|r| format!("<p><strong>What to do:</strong> {}</p>", esc(r)))
            .unwrap_or_default(),
        href = esc(&link),
    );
    Email {
        subject,
        text,
        html: Some(html),
    }
}

/// `1 alarm`, `2 alarms`.
fn count(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn summary_lines(s: &SummaryPayload) -> Vec<String> {
    let mut v = vec![format!(
        "{} ({}), {} unhandled, {} to {}",
        count(s.alarms, "alarm"),
        count(s.occurrences, "occurrence"),
        s.unhandled,
        utc(s.from),
        utc(s.to)
    )];
    if !s.by_severity.is_empty() {
        v.push(format!(
            "By severity: {}",
            s.by_severity
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    v
}

fn summary_email(s: &SummaryPayload, center: &str) -> Email {
    let subject = format!(
        "[Hostward] {}Daily alarm summary {} ({}): {}, {} unhandled",
        test_mark(s.test),
        s.day,
        s.project_name,
        count(s.alarms, "alarm"),
        s.unhandled
    );
    let mut text = summary_lines(s).join("\n");
    text.push('\n');
    if !s.by_type.is_empty() {
        text.push_str("\nBy type:\n");
        for (t, title, n) in &s.by_type {
            text.push_str(&format!("  {n:>6}  {title} ({t})\n"));
        }
    }
    if !s.by_server.is_empty() {
        text.push_str("\nBy server (alarms, unhandled):\n");
        for (name, n, open) in &s.by_server {
            text.push_str(&format!("  {n:>6} {open:>6}  {name}\n"));
        }
    }
    text.push_str(&format!("\nOpen in Hostward: {center}/alarms\n"));
    let table = |head: &str, rows: Vec<Vec<String>>| -> String {
        if rows.is_empty() {
            return String::new();
        }
        let body: String = rows
            .iter()
            .map(|r| {
                format!(
                    "<tr>{}</tr>",
                    r.iter()
                        .map(|c| format!("<td>{}</td>", esc(c)))
                        .collect::<String>()
                )
            })
            .collect();
        format!("<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    };
    let html = format!(
        "<!DOCTYPE html><html><body><h2>Daily alarm summary {day}</h2>{lines}{types}{servers}<p><a href=\"{href}\">Open in Hostward</a></p></body></html>",
        day = esc(&s.day),
        lines = summary_lines(s)
            .iter()
            .map(|l| format!("<p>{}</p>", esc(l)))
            .collect::<String>(),
        types = table(
            "<th>Type</th><th>Alarms</th>",
            s.by_type
                .iter()
                .map(|(t, title, n)| vec![format!("{title} ({t})"), n.to_string()])
                .collect()
        ),
        servers = table(
            "<th>Server</th><th>Alarms</th><th>Unhandled</th>",
            s.by_server
                .iter()
                .map(|(name, n, open)| vec![name.clone(), n.to_string(), open.to_string()])
                .collect()
        ),
        href = esc(&format!("{center}/alarms")),
    );
    Email {
        subject,
        text,
        html: Some(html),
    }
}

/// A webhook body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Our JSON: `{"event", "delivery_id", "center", …}` with every field.
    Hostward,
    /// A Slack incoming webhook's `{"text", "blocks"}`.
    Slack,
    /// A Teams incoming webhook's MessageCard.
    Teams,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Hostward => "hostward",
            Format::Slack => "slack",
            Format::Teams => "teams",
        }
    }
}

/// The colour of a severity, for Teams' card and Slack's text.
fn colour(severity: &str) -> &'static str {
    match severity {
        "critical" => "B91C1C",
        "high" => "EA580C",
        "medium" => "CA8A04",
        _ => "2563EB",
    }
}

/// (title, text lines, link) every chat format is made of.
fn chat_parts(n: &Notice, center: &str) -> (String, Vec<(String, String)>, String, String) {
    match n {
        Notice::Alarm(a) => (
            format!(
                "{}{} alarm on {}: {}",
                test_mark(a.test),
                a.severity.to_uppercase(),
                a.server_name,
                a.title
            ),
            alarm_facts(a)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            alarm_link(center, a),
            a.severity.clone(),
        ),
        Notice::Summary(s) => {
            let mut facts = vec![
                ("Alarms".to_string(), s.alarms.to_string()),
                ("Unhandled".to_string(), s.unhandled.to_string()),
                ("Occurrences".to_string(), s.occurrences.to_string()),
            ];
            for (sev, n) in &s.by_severity {
                facts.push((format!("Severity {sev}"), n.to_string()));
            }
            for (name, n, open) in s.by_server.iter().take(10) {
                facts.push((format!("Server {name}"), format!("{n} ({open} unhandled)")));
            }
            (
                format!(
                    "{}Daily alarm summary {} ({})",
                    test_mark(s.test),
                    s.day,
                    s.project_name
                ),
                facts,
                format!("{center}/alarms"),
                "low".into(),
            )
        }
        Notice::Report(r) => (
            r.subject.clone(),
            Vec::new(),
            format!("{center}/"),
            "low".into(),
        ),
    }
}

/// The webhook body of a notice in `format`.
pub fn webhook_body(format: Format, n: &Notice, delivery_id: &str, center: &str) -> Value {
    let (title, facts, link, severity) = chat_parts(n, center);
    match format {
        Format::Hostward => {
            let mut v = json!({
                "event": n.event(),
                "delivery_id": delivery_id,
                "center": center,
                "link": link,
                "title": title,
            });
            match n {
                Notice::Alarm(a) => v["alarm"] = serde_json::to_value(a).unwrap_or_default(),
                Notice::Summary(s) => v["summary"] = serde_json::to_value(s).unwrap_or_default(),
                Notice::Report(r) => {
                    v["report"] = json!({"subject": r.subject, "text": r.text});
                }
            }
            v
        }
        Format::Slack => {
            let text = format!("{title}\n<{link}|Open in Hostward>");
            let fields: Vec<Value> = facts
                .iter()
                .take(10) // Slack's limit per section
                .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", slack_esc(k), slack_esc(v))}))
                .collect();
            let mut blocks = vec![json!({
                "type": "header",
                "text": {"type": "plain_text", "text": cut(&title, 150), "emoji": false}
            })];
            if !fields.is_empty() {
                blocks.push(json!({"type": "section", "fields": fields}));
            }
            blocks.push(json!({
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in Hostward"}, "url": link}]
            }));
            json!({"text": text, "blocks": blocks})
        }
        Format::Teams => json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title,
            "themeColor": colour(&severity),
            "title": title,
            "sections": [{
                "facts": facts.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            }],
            "potentialAction": [{
                "@type": "OpenUri",
                "name": "Open in Hostward",
                "targets": [{"os": "default", "uri": link}],
            }],
        }),
    }
}

/// Slack mrkdwn: `&`, `<` and `>` escaped.
fn slack_esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// `t=<unix>,v1=<hex of HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header as a receiver should: the HMAC matches (in constant time) and
/// `t` is within `tolerance` seconds of `now`.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> AlarmPayload {
        AlarmPayload {
            alarm_id: "a1".into(),
            server_id: "s1".into(),
            server_name: "web-1".into(),
            alarm_type: "brute_force".into(),
            title: "Brute-force password guessing".into(),
            severity: "high".into(),
            tactic: "TA0006 Credential Access".into(),
            technique: "T1110.001 Brute Force: Password Guessing".into(),
            key: "192.0.2.7".into(),
            source_ip: Some("192.0.2.7".into()),
            count: 5,
            ts: 1_704_067_200,
            evidence: json!({"users": ["root", "<admin>"]}),
            test: false,
        }
    }

    fn summary() -> SummaryPayload {
        SummaryPayload {
            day: "2024-01-02".into(),
            from: 1_704_103_200,
            to: 1_704_189_600,
            project_name: "default".into(),
            alarms: 12,
            occurrences: 40,
            unhandled: 3,
            by_severity: vec![("high".into(), 10), ("low".into(), 2)],
            by_type: vec![(
                "brute_force".into(),
                "Brute-force password guessing".into(),
                12,
            )],
            by_server: vec![("web-1".into(), 12, 3)],
            test: false,
        }
    }

    const CENTER: &str = "https://hw.example:8443";

    #[test]
    fn alarm_email_names_server_type_and_severity_and_escapes_html() {
        let e = email(&Notice::Alarm(alarm()), CENTER);
        assert_eq!(
            e.subject,
            "[Hostward] HIGH alarm on web-1: Brute-force password guessing"
        );
        for want in [
            "Server: web-1",
            "Severity: high",
            "Type: Brute-force password guessing (brute_force)",
            "Source: 192.0.2.7",
            "Occurrences: 5",
            "First seen: 2024-01-01 00:00:00 UTC",
            "Users: root, <admin>",
            "What to do: Check that the source is blocked",
            "Open in Hostward: https://hw.example:8443/alarms/a1",
        ] {
            assert!(e.text.contains(want), "{want} in {}", e.text);
        }
        let html = e.html.unwrap();
        assert!(html.contains("root, &lt;admin&gt;"), "{html}");
        assert!(!html.contains("<admin>"));
        let t = email(
            &Notice::Alarm(AlarmPayload {
                test: true,
                ..alarm()
            }),
            CENTER,
        );
        assert!(t.subject.starts_with("[Hostward] [test] HIGH"));
        assert!(t.text.starts_with("This is a test notification"));
    }

    #[test]
    fn summary_email_counts_by_severity_type_and_server() {
        let e = email(&Notice::Summary(summary()), CENTER);
        assert_eq!(
            e.subject,
            "[Hostward] Daily alarm summary 2024-01-02 (default): 12 alarms, 3 unhandled"
        );
        assert!(e.text.contains("12 alarms (40 occurrences), 3 unhandled"));
        assert!(e.text.contains("By severity: high 10, low 2"));
        assert!(
            e.text
                .contains("Brute-force password guessing (brute_force)")
        );
        assert!(e.text.contains("web-1"));
        assert!(e.html.unwrap().contains("<td>web-1</td>"));
    }

    #[test]
    fn webhook_formats_have_their_shapes() {
        let n = Notice::Alarm(alarm());
        let h = webhook_body(Format::Hostward, &n, "d1", CENTER);
        assert_eq!(h["event"], "alarm");
        assert_eq!(h["delivery_id"], "d1");
        assert_eq!(h["alarm"]["server_name"], "web-1");
        assert_eq!(h["link"], "https://hw.example:8443/alarms/a1");

        let s = webhook_body(Format::Slack, &n, "d1", CENTER);
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .starts_with("HIGH alarm on web-1")
        );
        let blocks = s["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[1]["type"], "section");
        assert!(
            blocks[1]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["text"] == "*Users*\nroot, &lt;admin&gt;")
        );
        assert_eq!(blocks[2]["elements"][0]["url"], h["link"]);

        let t = webhook_body(Format::Teams, &n, "d1", CENTER);
        assert_eq!(t["@type"], "MessageCard");
        assert_eq!(t["themeColor"], "EA580C");
        assert_eq!(t["sections"][0]["facts"][0]["name"], "Server");
        assert_eq!(t["sections"][0]["facts"][0]["value"], "web-1");
        assert_eq!(
            t["potentialAction"][0]["targets"][0]["uri"],
            "https://hw.example:8443/alarms/a1"
        );

        let sm = webhook_body(Format::Teams, &Notice::Summary(summary()), "d2", CENTER);
        assert!(
            sm["title"]
                .as_str()
                .unwrap()
                .starts_with("Daily alarm summary 2024-01-02")
        );
        let hs = webhook_body(Format::Hostward, &Notice::Summary(summary()), "d2", CENTER);
        assert_eq!(
            (hs["event"].as_str(), hs["summary"]["alarms"].as_i64()),
            (Some("summary"), Some(12))
        );
    }

    #[test]
    fn notices_decode_by_kind() {
        let a = serde_json::to_value(alarm()).unwrap();
        assert_eq!(Notice::decode("alarm", &a).unwrap(), Notice::Alarm(alarm()));
        let s = serde_json::to_value(summary()).unwrap();
        assert!(matches!(
            Notice::decode("test", &s).unwrap(),
            Notice::Summary(_)
        ));
        assert!(matches!(
            Notice::decode("test", &a).unwrap(),
            Notice::Alarm(_)
        ));
        assert!(
            Notice::decode("alarm", &json!({"x": 1}))
                .unwrap_err()
                .contains("cannot be read")
        );
        assert!(Notice::decode("nope", &a).is_err());
    }

    #[test]
    fn signatures_are_hmac_sha256_over_time_dot_body() {
        let body = br#"{"event":"alarm"}"#;
        let sig = signature(b"s3cret", 1_700_000_000, body);
        // Computed independently: printf '1700000000.{"event":"alarm"}' |
        //   openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            sig,
            "t=1700000000,v1=be3a13bccdb0df5f6fb5be2655fbd4a76293229ea8f1ff0cce3883f9fa6f5672"
        );
        assert!(verify_signature(b"s3cret", &sig, body, 1_700_000_010, 300));
        assert!(!verify_signature(b"other", &sig, body, 1_700_000_010, 300));
        assert!(!verify_signature(
            b"s3cret",
            &sig,
            b"{}",
            1_700_000_010,
            300
        ));
        assert!(
            !verify_signature(b"s3cret", &sig, body, 1_700_001_000, 300),
            "too old"
        );
        assert!(!verify_signature(b"s3cret", "t=1,v1=zz", body, 1, 300));
    }
}
