//! journald: `journalctl -o json -f` filtered on the services' `_COMM`, resumed after the
//! cursor saved in a state file. `_COMM` is set by journald from the sending process, so unlike
//! a syslog tag it cannot be forged by `logger -t sshd`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use super::follow::LineBuf;
use super::{Counters, MAX_LINE, Msg, Skip, first_of, parse_msg};
use crate::bruteforce::{AuthEvent, Service};

/// After journalctl exits, wait this long before starting it again.
const RESTART: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "__CURSOR")]
    cursor: Option<String>,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "_COMM")]
    comm: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    ident: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
}

/// A field's text: journald writes a string, or an array of bytes when the value is not
/// printable UTF-8 (those are still used if they are UTF-8, else the line is skipped).
fn text(v: &Value) -> Result<String, Skip> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(a) => {
            let bytes: Option<Vec<u8>> = a
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8(bytes.ok_or(Skip::Unparsed)?).map_err(|_| Skip::NonUtf8)
        }
        _ => Err(Skip::Unparsed),
    }
}

/// The programs of each service, as journald's `_COMM` (the kernel's 15-byte task name).
fn comms(service: Service) -> &'static [&'static str] {
    match service {
        Service::Ssh => &["sshd", "sshd-session", "sshd-auth"],
        Service::Ftp => &["vsftpd"],
        Service::Mysql => &["mysqld", "mariadbd"],
    }
}

/// One line of `journalctl -o json`: its cursor (to save once the event is delivered) and the
/// first event any of `services` finds in it.
pub fn parse_json_line(
    services: &[Service],
    line: &[u8],
    now: i64,
) -> (Option<String>, Result<Option<AuthEvent>, Skip>) {
    let Ok(e) = serde_json::from_slice::<Entry>(line) else {
        return (None, Err(Skip::Unparsed));
    };
    let cursor = e.cursor.clone();
    (cursor, entry_event(services, &e, now))
}

fn entry_event(services: &[Service], e: &Entry, now: i64) -> Result<Option<AuthEvent>, Skip> {
    let Some(message) = &e.message else {
        return Ok(None);
    };
    let message = text(message)?;
    if message.len() > MAX_LINE {
        return Err(Skip::TooLong);
    }
    let opt = |v: &Option<Value>| v.as_ref().map(text).transpose();
    let comm = opt(&e.comm)?;
    let ident = opt(&e.ident)?;
    let Some(prog) = comm.as_deref().or(ident.as_deref()) else {
        return Ok(None);
    };
    let raw = format!(
        "{}[{}]: {message}",
        ident.as_deref().unwrap_or(prog),
        opt(&e.pid)?.unwrap_or_default()
    );
    let msg = Msg {
        prog: Some(prog),
        text: &message,
        raw: &raw,
    };
    first_of(services.iter().map(|s| parse_msg(*s, &msg, now)))
}

pub(crate) struct Journal {
    pub journalctl: PathBuf,
    pub services: Vec<Service>,
    pub cursor_file: PathBuf,
    pub counters: Arc<Counters>,
    pub child: Arc<Mutex<Option<Child>>>,
}

impl Journal {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.journalctl);
        cmd.args(["-o", "json", "-f", "-q", "--no-pager"]);
        let cursor = std::fs::read_to_string(&self.cursor_file).unwrap_or_default();
        let cursor = cursor.trim();
        if cursor.is_empty() || cursor.starts_with('-') {
            // First start: no history (its failures are old news, not an attack now).
            cmd.args(["-n", "0"]);
        } else {
            cmd.arg(format!("--after-cursor={cursor}"));
        }
        for s in &self.services {
            for c in comms(*s) {
                cmd.arg(format!("_COMM={c}"));
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    pub(crate) fn run(self, stop: &AtomicBool, tx: &Sender<AuthEvent>) {
        while !stop.load(Ordering::SeqCst) {
            match self.follow_once(stop, tx) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "journalctl failed"),
            }
            let mut waited = Duration::ZERO;
            while waited < RESTART && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                waited += Duration::from_millis(200);
            }
        }
    }

    /// Runs journalctl until it ends; `Ok(true)` when the receiver is gone.
    fn follow_once(&self, stop: &AtomicBool, tx: &Sender<AuthEvent>) -> std::io::Result<bool> {
        let mut child = self.command().spawn()?;
        let mut out = child.stdout.take().expect("stdout is piped");
        {
            let mut slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
            // Handle::stop kills the child in the slot; it may have run before we filled it.
            if stop.load(Ordering::SeqCst) {
                let _ = child.kill();
            }
            *slot = Some(child);
        }
        let mut lines = LineBuf::with_max(256 * 1024);
        let mut buf = vec![0; 64 * 1024];
        let mut gone = false;
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read journalctl");
                    break;
                }
            };
            let now = super::follow::unix_now();
            let mut events = Vec::new();
            let mut cursor = None;
            lines.feed(&buf[..n], &mut |l| {
                let (c, r) = match l {
                    Ok(l) => parse_json_line(&self.services, l, now),
                    Err(s) => (None, Err(s)),
                };
                self.counters.count(&r);
                if let Ok(Some(e)) = r {
                    events.push(e);
                }
                cursor = c.or(cursor.take());
            });
            if !events.into_iter().all(|e| tx.blocking_send(e).is_ok()) {
                gone = true;
                break;
            }
            if let Some(c) = cursor {
                save_cursor(&self.cursor_file, &c);
            }
        }
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(gone)
    }
}

fn save_cursor(path: &Path, cursor: &str) {
    let r = hostward_agent_core::util::replace_file(path, cursor.as_bytes(), 0o644, false);
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "cannot save journal cursor");
    }
}
