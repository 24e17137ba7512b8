//! Sending: a channel's settings (email: SMTP relay with STARTTLS, implicit TLS, or plain text
//! to a relay on this machine only, AUTH PLAIN/LOGIN, a private CA to pin; webhook: URL,
//! format, CA, time limit), their checks, and the two senders. Email goes through lettre on
//! tokio and rustls (TLS 1.3, ring), one connection pool per channel; the message id is the
//! delivery's, so a retry is the same message. A webhook is a JSON POST through reqwest with
//! `X-Hostward-Delivery` (the same on every retry, so receivers can drop repeats),
//! `X-Hostward-Event` and, when the channel has a secret, `X-Hostward-Signature`. Errors are
//! sentences for the failed-deliveries view; they never carry a secret.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MailAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Tls, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::format::{Attachment, Email, Format, signature};

/// Most recipients of an email channel.
pub const MAX_RECIPIENTS: usize = 20;
/// Longest a webhook may take to answer, at most.
pub const MAX_WEBHOOK_TIMEOUT_SECS: u64 = 60;
/// Longest an SMTP command may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a relay on this machine (127.0.0.0/8, ::1, localhost).
    None,
}

/// An email channel's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP relay's host name or address (also the name its certificate must carry).
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub security: Security,
    /// SMTP AUTH user; empty: no authentication. The password is the channel's secret.
    #[serde(default)]
    pub username: String,
    /// Sender, e.g. `Hostward <hostward@example.org>`.
    pub from: String,
    /// Recipients, 1 to 20.
    pub to: Vec<String>,
    /// The CA (PEM) the relay's certificate must chain to, for a relay with a private CA;
    /// None: the center's CA bundle (`vulndb_ca_file`).
    #[serde(default)]
    pub ca_pem: Option<String>,
}

fn default_port() -> u16 {
    587
}

/// A webhook channel's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `https://…`; `http://` only to this machine.
    pub url: String,
    #[serde(default = "default_format")]
    pub format: Format,
    /// The CA (PEM) the receiver's certificate must chain to; None: the center's CA bundle.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Seconds the receiver has to answer, 1 to 60.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_format() -> Format {
    Format::Hostward
}

fn default_timeout() -> u64 {
    10
}

/// Whether `host` is this machine: `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_ca(field: &str, pem: &Option<String>) -> Result<(), String> {
    match pem {
        Some(p) if p.len() > 64 * 1024 => Err(format!("{field}: at most 64 KiB")),
        Some(p) => hostward_pki::bundle_client_config(p)
            .map(|_| ())
            .map_err(|e| format!("{field}: {e}")),
        None => Ok(()),
    }
}

impl EmailSettings {
    /// Checks the settings; the message names the field (and index).
    pub fn validate(&self) -> Result<(), String> {
        let h = self.host.trim();
        if h.is_empty() || h.len() > 253 || h.contains(char::is_whitespace) || h.contains('/') {
            return Err(format!(
                "email.host: {:?} is not a host name or address",
                self.host
            ));
        }
        if self.port == 0 {
            return Err("email.port: must be 1 to 65535".into());
        }
        if self.security == Security::None && !is_loopback(h) {
            return Err(format!(
                "email.security: \"none\" sends in the clear, allowed only to a relay on this machine, not {h:?}: use starttls or tls"
            ));
        }
        if self.username.len() > 256 || self.username.chars().any(char::is_control) {
            return Err("email.username: at most 256 characters of text".into());
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("email.from: {:?} is not an address: {e}", self.from))?;
        if self.to.is_empty() || self.to.len() > MAX_RECIPIENTS {
            return Err(format!(
                "email.to: 1 to {MAX_RECIPIENTS} recipients, not {}",
                self.to.len()
            ));
        }
        for (i, to) in self.to.iter().enumerate() {
            to.parse::<Mailbox>()
                .map_err(|e| format!("email.to[{i}]: {to:?} is not an address: {e}"))?;
        }
        check_ca("email.ca_pem", &self.ca_pem)
    }
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("webhook.url: {:?} is not a URL: {e}", self.url))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" if !host.is_empty() => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "webhook.url: http:// is allowed only to this machine, not {host:?}: use https://"
                ));
            }
            _ => return Err("webhook.url: must start with https://".into()),
        }
        if self.url.len() > 2048 {
            return Err("webhook.url: at most 2048 characters".into());
        }
        if !(1..=MAX_WEBHOOK_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!(
                "webhook.timeout_secs: {} is not 1 to {MAX_WEBHOOK_TIMEOUT_SECS}",
                self.timeout_secs
            ));
        }
        check_ca("webhook.ca_pem", &self.ca_pem)
    }
}

/// An SMTP transport for the channel: TLS trusting only `ca_pem` (else `bundle`), TLS 1.3,
/// AUTH PLAIN or LOGIN when a user is set, a small connection pool.
pub fn smtp_transport(
    s: &EmailSettings,
    password: Option<&str>,
    bundle: Option<&str>,
    hello: &str,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = match s.security {
        Security::None => Tls::None,
        sec => {
            let pem = s
                .ca_pem
                .as_deref()
                .or(bundle)
                .ok_or("no CA to check the relay's certificate with: set the channel's CA, or the center's CA bundle (vulndb_ca_file)")?;
            let cert = Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("the relay's CA cannot be read: {e}"))?;
            let params = TlsParameters::builder(s.host.clone())
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert)
                .set_min_tls_version(TlsVersion::Tlsv13)
                .build_rustls()
                .map_err(|e| format!("TLS set-up: {e}"))?;
            if sec == Security::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
        .port(s.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT))
        .hello_name(ClientId::Domain(hello.to_string()))
        .pool_config(
            PoolConfig::new()
                .max_size(4)
                .idle_timeout(Duration::from_secs(60)),
        );
    if !s.username.is_empty() {
        b = b
            .credentials(Credentials::new(
                s.username.clone(),
                password.unwrap_or_default().to_string(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(b.build())
}

/// The message of an email, with `message_id` (the delivery's) so a retry is the same message.
pub fn mail_message(
    s: &EmailSettings,
    e: &Email,
    attachment: Option<&Attachment>,
    message_id: &str,
) -> Result<lettre::Message, String> {
    let mut b = lettre::Message::builder()
        .from(
            s.from
                .parse::<Mailbox>()
                .map_err(|e| format!("from: {e}"))?,
        )
        .subject(e.subject.clone())
        .message_id(Some(format!("<{message_id}@hostward>")));
    for to in &s.to {
        b = b.to(to
            .parse::<Mailbox>()
            .map_err(|e| format!("to {to:?}: {e}"))?);
    }
    let body = match &e.html {
        Some(html) => MultiPart::alternative_plain_html(e.text.clone(), html.clone()),
        None => MultiPart::mixed().singlepart(SinglePart::plain(e.text.clone())),
    };
    let body = match attachment {
        Some(a) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&a.data)
                .map_err(|_| "the attachment is not base64".to_string())?;
            let mime = ContentType::parse(&a.mime)
                .map_err(|_| format!("the attachment's type {:?} is not a MIME type", a.mime))?;
            MultiPart::mixed()
                .multipart(body)
                .singlepart(MailAttachment::new(a.name.clone()).body(bytes, mime))
        }
        None => body,
    };
    b.multipart(body)
        .map_err(|e| format!("building the message: {e}"))
}

/// Sends one message; the error says where and what the relay answered.
pub async fn send_mail(
    t: &AsyncSmtpTransport<Tokio1Executor>,
    s: &EmailSettings,
    m: lettre::Message,
) -> Result<(), String> {
    t.send(m)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {}", s.host, s.port, chain(&e)))
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// The HTTP client of a webhook channel: TLS 1.3 trusting only `ca_pem` (else `bundle`), the
/// channel's time limit, no redirects (a redirect could carry the signature elsewhere).
pub fn webhook_client(
    s: &WebhookSettings,
    bundle: Option<&str>,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(s.timeout_secs))
        .connect_timeout(Duration::from_secs(s.timeout_secs.min(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Hostward/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = s.ca_pem.as_deref().or(bundle) {
        b = b.tls_backend_preconfigured(
            hostward_pki::bundle_client_config(pem).map_err(|e| format!("webhook CA: {e}"))?,
        );
    } else if s.url.starts_with("https:") {
        return Err("no CA to check the receiver's certificate with: set the channel's CA, or the center's CA bundle (vulndb_ca_file)".into());
    }
    b.build()
        .map_err(|e| format!("webhook client: {}", chain(&e)))
}

/// POSTs one body; 2xx is success. The error names the status or what failed (a time-out
/// says so), never the URL (its path or query may be a secret, as Slack's are).
pub async fn post_webhook(
    client: &reqwest::Client,
    s: &WebhookSettings,
    secret: Option<&[u8]>,
    delivery_id: &str,
    event: &str,
    body: Vec<u8>,
    now: i64,
) -> Result<(), String> {
    let mut req = client
        .post(&s.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hostward-Delivery", delivery_id)
        .header("X-Hostward-Event", event);
    if let Some(secret) = secret {
        req = req.header("X-Hostward-Signature", signature(secret, now, &body));
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(format!(
                "webhook: no answer within {} s (timed out)",
                s.timeout_secs
            ));
        }
        Err(e) => return Err(format!("webhook: {}", chain(&e.without_url()))),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!("webhook: HTTP {status}: {}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> EmailSettings {
        EmailSettings {
            host: "smtp.example.org".into(),
            port: 587,
            security: Security::Starttls,
            username: "hostward".into(),
            from: "Hostward <hostward@example.org>".into(),
            to: vec!["ops@example.org".into()],
            ca_pem: None,
        }
    }

    fn hook(url: &str) -> WebhookSettings {
        WebhookSettings {
            url: url.into(),
            format: Format::Slack,
            ca_pem: None,
            timeout_secs: 10,
        }
    }

    #[test]
    fn email_settings_are_checked_naming_the_field() {
        assert!(mail().validate().is_ok());
        let with = |f: &dyn Fn(&mut EmailSettings)| {
            let mut m = mail();
            f(&mut m);
            m.validate().unwrap_err()
        };
        assert!(
            with(&|m| m.security = Security::None)
                .starts_with("email.security: \"none\" sends in the clear")
        );
        assert!(with(&|m| m.host = "bad host".into()).starts_with("email.host:"));
        assert!(with(&|m| m.from = "not an address".into()).starts_with("email.from:"));
        assert!(with(&|m| m.to.push("x".into())).starts_with("email.to[1]:"));
        assert!(with(&|m| m.to.clear()).starts_with("email.to: 1 to 20"));
        assert!(with(&|m| m.ca_pem = Some("junk".into())).starts_with("email.ca_pem:"));
        let mut local = mail();
        local.host = "127.0.0.1".into();
        local.security = Security::None;
        assert!(local.validate().is_ok(), "plain text to this machine");
        assert!(is_loopback("localhost") && is_loopback("[::1]") && is_loopback("127.0.0.9"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("example.org"));
    }

    #[test]
    fn webhook_settings_are_checked_naming_the_field() {
        assert!(
            hook("https://hooks.slack.com/services/T/B/x")
                .validate()
                .is_ok()
        );
        assert!(hook("http://127.0.0.1:9000/hook").validate().is_ok());
        assert!(
            hook("http://example.org/hook")
                .validate()
                .unwrap_err()
                .starts_with("webhook.url: http:// is allowed only")
        );
        assert!(
            hook("ftp://example.org/")
                .validate()
                .unwrap_err()
                .starts_with("webhook.url: must start with https://")
        );
        assert!(
            hook("nope")
                .validate()
                .unwrap_err()
                .starts_with("webhook.url: \"nope\" is not a URL")
        );
        let mut h = hook("https://example.org/");
        h.timeout_secs = 0;
        assert!(
            h.validate()
                .unwrap_err()
                .starts_with("webhook.timeout_secs")
        );
    }

    #[test]
    fn messages_carry_the_delivery_id_alternatives_and_attachments() {
        let e = Email {
            subject: "Subject é".into(),
            text: "plain".into(),
            html: Some("<p>html</p>".into()),
        };
        let a = Attachment {
            name: "report.csv".into(),
            mime: "text/csv".into(),
            data: "YSxiCjEsMgo=".into(),
        };
        let m = mail_message(&mail(), &e, Some(&a), "d-1").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <d-1@hostward>"), "{raw}");
        assert!(raw.contains("multipart/alternative") && raw.contains("multipart/mixed"));
        assert!(raw.contains("report.csv") && raw.contains("text/csv"));
        assert!(raw.contains("To: ops@example.org"));
        let bad = Attachment {
            data: "***".into(),
            ..a
        };
        assert!(mail_message(&mail(), &e, Some(&bad), "d").is_err());
    }
}
