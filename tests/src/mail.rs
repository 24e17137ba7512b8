//! A real mail server and a webhook receiver for the notification tests: Debian's exim4
//! (`exim4-daemon-light`) run in the foreground on 127.0.0.1 with a config of our own
//! (STARTTLS on one port, TLS from the first byte on another, both with a certificate from a
//! test CA; AUTH PLAIN and LOGIN for one user; every recipient delivered to one Maildir), and
//! a small HTTP/1.1 receiver that records every request and can be told to stall or fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::*;

/// The one SMTP user exim accepts.
pub const SMTP_USER: &str = "hostward";
pub const SMTP_PASSWORD: &str = "mail-Secret-0123";

/// exim's configuration: `@NAME@`s are filled in.
const EXIM_CONFIG: &str = r#"primary_hostname = hostward-test.invalid
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
pid_file_path = @DIR@/exim.pid
daemon_smtp_ports = @PORT@ : @TLS_PORT@
tls_on_connect_ports = @TLS_PORT@
local_interfaces = 127.0.0.1
tls_advertise_hosts = *
tls_certificate = @DIR@/cert.pem
tls_privatekey = @DIR@/key.pem
host_lookup =
rfc1413_hosts =
keep_environment =
# Deliver at once however many messages one (pooled) connection brings; exim's default queues
# those past the tenth for a queue runner, which this exim has none of.
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept authenticated = *
  deny message = authentication required
begin routers
local:
  driver = accept
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = @DIR@/Maildir
  maildir_format
  user = Debian-exim
  group = Debian-exim
  envelope_to_add
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{@USER@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{@USER@}}{eq{$auth2}{@PASSWORD@}}}}
  server_set_id = $auth1
"#;

/// A running (or stopped) exim with its Maildir.
pub struct Exim {
    pub dir: PathBuf,
    /// STARTTLS port.
    pub port: u16,
    /// TLS-on-connect port.
    pub tls_port: u16,
    /// The test CA's certificate: what a channel pins.
    pub ca_pem: String,
    config: PathBuf,
    proc: Option<Proc>,
}

/// One delivered message: its headers unfolded, its text parts decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub subject: String,
    pub to: String,
    pub message_id: String,
    pub raw: String,
    pub text: String,
}

impl Exim {
    /// Writes the config and certificate under a new dir of `env` and starts exim.
    pub async fn start(env: &TestEnv) -> Result<Exim> {
        let dir = env.subdir("exim");
        let (ca, _) = hostward_pki::Ca::generate("Hostward test mail CA")?;
        let cert = ca.issue_server_cert(&["127.0.0.1".to_string()])?;
        std::fs::write(dir.join("cert.pem"), &cert.cert_pem)?;
        std::fs::write(dir.join("key.pem"), &cert.key_pem)?;
        let (port, tls_port) = (free_port(), free_port());
        for d in ["spool", "log", "Maildir"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        // exim gives up root for a config named with -C; its delivery runs as its own user.
        let exim_user = nix::unistd::User::from_name("Debian-exim")?
            .ok_or_else(|| anyhow!("no Debian-exim user: is exim4-daemon-light installed?"))?;
        for d in ["spool", "log", "Maildir"] {
            nix::unistd::chown(&dir.join(d), Some(exim_user.uid), Some(exim_user.gid))?;
        }
        for f in ["cert.pem", "key.pem"] {
            nix::unistd::chown(&dir.join(f), Some(exim_user.uid), Some(exim_user.gid))?;
        }
        let config = EXIM_CONFIG
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@TLS_PORT@", &tls_port.to_string())
            .replace("@USER@", SMTP_USER)
            .replace("@PASSWORD@", SMTP_PASSWORD);
        let config_path = dir.join("exim.conf");
        std::fs::write(&config_path, config)?;
        env.add_log("exim mainlog", &dir.join("log/mainlog"));
        env.add_log("exim paniclog", &dir.join("log/paniclog"));
        let mut exim = Exim {
            dir,
            port,
            tls_port,
            ca_pem: ca.cert_pem().to_string(),
            config: config_path,
            proc: None,
        };
        exim.restart(env).await?;
        Ok(exim)
    }

    /// Starts exim again (same ports, same Maildir) and waits until it listens.
    pub async fn restart(&mut self, env: &TestEnv) -> Result<()> {
        let mut cmd = command("exim4");
        cmd.arg("-bdf").arg("-C").arg(&self.config);
        self.proc = Some(Proc::spawn(env, "exim", cmd, &self.dir, "exim")?);
        let port = self.port;
        wait_until("exim to listen", secs(20), millis(100), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|_| ())
                .map_err(|e| anyhow!("{e}"))
        })
        .await
    }

    /// Stops exim: its ports refuse connections until [`Exim::restart`].
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.term(secs(10)).await?;
        }
        Ok(())
    }

    /// Every message delivered so far.
    pub fn mails(&self) -> Result<Vec<Mail>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let d = self.dir.join("Maildir").join(sub);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let raw = std::fs::read_to_string(e.path())?;
                out.push(parse_mail(&e.file_name().to_string_lossy(), raw));
            }
        }
        out.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(out)
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.join("Maildir")
    }
}

/// Headers unfolded, then the text of every quoted-printable, base64 or plain part.
fn parse_mail(file: &str, raw: String) -> Mail {
    let unfolded = raw
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let header = |name: &str| {
        unfolded
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Mail {
        file: file.to_string(),
        subject: header("Subject"),
        to: header("To"),
        message_id: header("Message-ID"),
        text: decode_parts(&raw),
        raw,
    }
}

/// The decoded bodies of a MIME message's leaf parts, one after the other.
fn decode_parts(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let mut out = String::new();
    // Each part: headers, a blank line, the body up to the next boundary line.
    for part in raw.split("\n--") {
        let Some((head, body)) = part.split_once("\n\n") else {
            continue;
        };
        let head = head.to_lowercase();
        if head.contains("content-type: multipart") {
            continue;
        }
        let body = body.split("\n--").next().unwrap_or(body);
        if head.contains("content-transfer-encoding: quoted-printable") {
            out.push_str(&unqp(body));
        } else if head.contains("content-transfer-encoding: base64") {
            use base64::Engine as _;
            let joined: String = body.split_whitespace().collect();
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(joined) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        } else {
            out.push_str(body);
        }
        out.push('\n');
    }
    out
}

/// Quoted-printable decoded (soft line breaks joined, `=XX` bytes).
fn unqp(s: &str) -> String {
    let s = s.replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len() + 1
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What it answered: 200, 500, or 0 when it stalled past the sender's time limit.
    pub answered: u16,
}

impl HookRequest {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// An HTTP receiver on 127.0.0.1: `/stall…` paths answer after `stall_secs` while `stall` is
/// set, `/fail…` paths answer 500 while `fail` is set; everything else 200.
#[derive(Clone)]
pub struct HookReceiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<HookRequest>>>,
    pub stall: Arc<AtomicBool>,
    pub fail: Arc<AtomicBool>,
}

impl HookReceiver {
    pub async fn start(stall_secs: u64) -> Result<HookReceiver> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let r = HookReceiver {
            port: listener.local_addr()?.port(),
            requests: Default::default(),
            stall: Arc::new(AtomicBool::new(true)),
            fail: Arc::new(AtomicBool::new(true)),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let _ = me.serve(sock, stall_secs).await;
                });
            }
        });
        Ok(r)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests to `path` so far.
    pub fn to(&self, path: &str) -> Vec<HookRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    async fn serve(&self, sock: tokio::net::TcpStream, stall_secs: u64) -> Result<()> {
        let mut rd = BufReader::new(sock);
        let mut line = String::new();
        rd.read_line(&mut line).await?;
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).await? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        rd.read_exact(&mut body).await?;
        let (status, wait) = if path.starts_with("/stall") && self.stall.load(Ordering::SeqCst) {
            (0, Some(secs(stall_secs)))
        } else if path.starts_with("/fail") && self.fail.load(Ordering::SeqCst) {
            (500, None)
        } else {
            (200, None)
        };
        self.requests.lock().unwrap().push(HookRequest {
            path,
            headers,
            body,
            answered: status,
        });
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
        }
        let (code, text) = match status {
            500 => ("500 Internal Server Error", "receiver down"),
            _ => ("200 OK", "ok"),
        };
        let mut sock = rd.into_inner();
        let resp = format!(
            "HTTP/1.1 {code}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
        Ok(())
    }
}

/// Whether `dir` holds a file (for tests that wait on a Maildir).
pub fn count_files(dir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|s| std::fs::read_dir(dir.join(s)).ok())
        .map(|d| d.flatten().count())
        .sum()
}
