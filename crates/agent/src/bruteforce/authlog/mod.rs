//! Authentication events from the services' logs: journald (`journalctl -o json -f`) when it
//! runs, else the log files followed with inotify through rotation. One parser per service
//! (`sshd`, `vsftpd`, `mysql`) turns a line into an [`AuthEvent`].
//!
//! User names are attacker-controlled and services log them verbatim, so no parser ever looks
//! for an address inside text that follows a user name: each anchors on the structure the
//! service appends after it (the end of the line) and gives up, rather than guess, when that
//! structure is ambiguous. The program is taken from the syslog tag (journald: the kernel-set
//! `_COMM`), never from the message.
//!
//! A local user can write auth.log lines with `logger -t sshd`; only the journald source (whose
//! `_COMM` the sender cannot choose) is immune to that.

mod follow;
mod journald;
mod mysql;
mod sshd;
mod vsftpd;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Deserialize;
use tokio::sync::mpsc::Sender;

pub use follow::Follower;
pub use journald::parse_json_line;

use super::{AuthEvent, AuthOutcome, Service};

/// Longer lines are skipped. rsyslog cuts messages at 8 KiB by default, and a cut line has lost
/// the suffix the parsers anchor on, so what is left of it must not be parsed.
pub const MAX_LINE: usize = 8000;

/// At most this much of a line is kept as the event's evidence.
const EVIDENCE_MAX: usize = 512;

/// Why a line yields no event although it is not simply another program's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("not UTF-8")]
    NonUtf8,
    #[error("longer than {MAX_LINE} bytes")]
    TooLong,
    /// The service's line of a kind we count, but not of the shape it must have (or ambiguous).
    #[error("authentication line of an unexpected shape")]
    Unparsed,
    /// A failure whose source is a host name (MySQL, PAM with DNS lookups) or empty.
    #[error("no source address")]
    NoAddress,
}

pub use hostward_proto::AuthlogStats as Stats;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    lines: AtomicU64,
    events: AtomicU64,
    ignored: AtomicU64,
    non_utf8: AtomicU64,
    too_long: AtomicU64,
    unparsed: AtomicU64,
    no_address: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, r: &Result<Option<AuthEvent>, Skip>) {
        let c = match r {
            Ok(Some(_)) => &self.events,
            Ok(None) => &self.ignored,
            Err(Skip::NonUtf8) => &self.non_utf8,
            Err(Skip::TooLong) => &self.too_long,
            Err(Skip::Unparsed) => &self.unparsed,
            Err(Skip::NoAddress) => &self.no_address,
        };
        self.lines.fetch_add(1, Ordering::Relaxed);
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            lines: g(&self.lines),
            events: g(&self.events),
            ignored: g(&self.ignored),
            skipped_non_utf8: g(&self.non_utf8),
            skipped_too_long: g(&self.too_long),
            skipped_unparsed: g(&self.unparsed),
            skipped_no_address: g(&self.no_address),
        }
    }
}

/// Where authentication events come from (`[detect.authlog]` of the agent config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub source: SourceKind,
    pub ssh: ServiceLog,
    pub ftp: ServiceLog,
    pub mysql: ServiceLog,
    /// The journalctl binary.
    pub journalctl: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: SourceKind::Auto,
            ssh: ServiceLog::default(),
            ftp: ServiceLog::default(),
            mysql: ServiceLog::default(),
            journalctl: PathBuf::from("journalctl"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// journald when it runs (`/run/systemd/journal/socket` exists), else files.
    #[default]
    Auto,
    Journald,
    Files,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceLog {
    pub enabled: bool,
    /// A log file to follow. Unset: with journald, ssh comes from the journal and ftp/mysql from
    /// the first default file that exists (else the journal); without it, the first default
    /// file that exists (else the first default, followed once it appears).
    pub path: Option<PathBuf>,
}

impl Default for ServiceLog {
    fn default() -> Self {
        ServiceLog {
            enabled: true,
            path: None,
        }
    }
}

/// The usual log files of each service, most likely first.
pub fn default_paths(service: Service) -> &'static [&'static str] {
    match service {
        Service::Ssh => &["/var/log/auth.log", "/var/log/secure"],
        // vsftpd's own log: its PAM lines in auth.log would count each failure twice.
        Service::Ftp => &["/var/log/vsftpd.log"],
        Service::Mysql => &[
            "/var/log/mysql/error.log",
            "/var/log/mariadb/mariadb.log",
            "/var/log/mysqld.log",
        ],
    }
}

/// Where one service's events are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Journal,
    File(PathBuf),
}

/// Decides each enabled service's source. `journald`: whether journald runs.
pub fn routes(config: &Config, journald: bool) -> Vec<(Service, Route)> {
    let journald = match config.source {
        SourceKind::Auto => journald,
        SourceKind::Journald => true,
        SourceKind::Files => false,
    };
    let mut out = Vec::new();
    for (service, log) in [
        (Service::Ssh, &config.ssh),
        (Service::Ftp, &config.ftp),
        (Service::Mysql, &config.mysql),
    ] {
        if !log.enabled {
            continue;
        }
        let existing = default_paths(service)
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let route = match (&log.path, journald) {
            (Some(p), _) => Route::File(p.clone()),
            (None, true) if service == Service::Ssh => Route::Journal,
            (None, true) => existing.map_or(Route::Journal, Route::File),
            (None, false) => {
                Route::File(existing.unwrap_or_else(|| PathBuf::from(default_paths(service)[0])))
            }
        };
        out.push((service, route));
    }
    out
}

pub fn journald_running() -> bool {
    Path::new("/run/systemd/journal/socket").exists()
}

/// The running sources. Dropping it stops them (without waiting); [`Handle::stop`] waits.
pub struct Handle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
    journal: Arc<Mutex<Option<std::process::Child>>>,
}

impl Handle {
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The live counters, for readers that outlive this handle's owner's borrow.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops every source, saves their positions and waits for them (up to about a second):
    /// call it from a blocking context (`spawn_blocking`).
    pub fn stop(mut self) {
        self.signal_stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(child) = self
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let _ = child.kill();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Starts the sources of `config` on their own threads (file reads and inotify waits block);
/// they send events to `tx`, blocking while it is full, and keep their positions in
/// `state_dir` (`authlog-*.state`, `authlog-journal.cursor`).
pub fn spawn(config: &Config, state_dir: &Path, tx: Sender<AuthEvent>) -> Handle {
    spawn_routes(
        &routes(config, journald_running()),
        &config.journalctl,
        state_dir,
        tx,
    )
}

pub fn spawn_routes(
    routes: &[(Service, Route)],
    journalctl: &Path,
    state_dir: &Path,
    tx: Sender<AuthEvent>,
) -> Handle {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let journal = Arc::new(Mutex::new(None));
    let mut threads = Vec::new();
    // One follower per file: ssh and ftp may share auth.log.
    let mut files: Vec<(PathBuf, Vec<Service>)> = Vec::new();
    let mut journal_services = Vec::new();
    for (service, route) in routes {
        match route {
            Route::Journal => journal_services.push(*service),
            Route::File(p) => match files.iter_mut().find(|(q, _)| q == p) {
                Some((_, s)) => s.push(*service),
                None => files.push((p.clone(), vec![*service])),
            },
        }
    }
    for (path, services) in files {
        let state = state_dir.join(follow::state_file_name(&path));
        let mut f = Follower::with_counters(path.clone(), services, Some(state), counters.clone());
        let (stop, tx) = (stop.clone(), tx.clone());
        let t = std::thread::Builder::new()
            .name("authlog-file".into())
            .spawn(move || f.run(&stop, &tx));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot start log follower")
            }
        }
    }
    if !journal_services.is_empty() {
        let j = journald::Journal {
            journalctl: journalctl.to_path_buf(),
            services: journal_services,
            cursor_file: state_dir.join("authlog-journal.cursor"),
            counters: counters.clone(),
            child: journal.clone(),
        };
        let stop = stop.clone();
        let t = std::thread::Builder::new()
            .name("authlog-journal".into())
            .spawn(move || j.run(&stop, &tx));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start journal reader"),
        }
    }
    Handle {
        stop,
        threads,
        counters,
        journal,
    }
}

/// One log line as a parser sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    /// The syslog tag's program (journald: `_COMM`); `None` for a service's own log format.
    pub prog: Option<&'a str>,
    /// The message after the tag (the whole line without a syslog header).
    pub text: &'a str,
    /// The line, for the evidence.
    pub raw: &'a str,
}

/// Parses one log line (without or with its `\n`) of `service`'s log. `Ok(None)`: not an
/// authentication event of that service. `now`: Unix seconds, the event's time.
pub fn parse_line(service: Service, line: &[u8], now: i64) -> Result<Option<AuthEvent>, Skip> {
    let line = check_line(line)?;
    parse_msg(service, &msg_of(line), now)
}

fn check_line(line: &[u8]) -> Result<&str, Skip> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(Skip::TooLong);
    }
    std::str::from_utf8(line).map_err(|_| Skip::NonUtf8)
}

fn msg_of(line: &str) -> Msg<'_> {
    match split_syslog(line) {
        Some((prog, text)) => Msg {
            prog: Some(prog),
            text,
            raw: line,
        },
        None => Msg {
            prog: None,
            text: line,
            raw: line,
        },
    }
}

/// Parses one line for each of `services` (those sharing a file): the first event wins; else
/// the first skip; else ignored.
pub(crate) fn parse_for(
    services: &[Service],
    line: &[u8],
    now: i64,
) -> Result<Option<AuthEvent>, Skip> {
    let line = check_line(line)?;
    let msg = msg_of(line);
    first_of(services.iter().map(|s| parse_msg(*s, &msg, now)))
}

pub(crate) fn first_of(
    results: impl Iterator<Item = Result<Option<AuthEvent>, Skip>>,
) -> Result<Option<AuthEvent>, Skip> {
    let mut out = Ok(None);
    for r in results {
        match r {
            Ok(Some(e)) => return Ok(Some(e)),
            Err(s) if out.is_ok() => out = Err(s),
            _ => {}
        }
    }
    out
}

pub(crate) fn parse_msg(service: Service, m: &Msg, now: i64) -> Result<Option<AuthEvent>, Skip> {
    match service {
        Service::Ssh => sshd::parse(m, now),
        Service::Ftp => vsftpd::parse(m, now),
        Service::Mysql => mysql::parse(m, now),
    }
}

/// Splits `Dec  1 12:00:00 host prog[pid]: message` or `2026-12-01T12:00:00.123+00:00 host
/// prog[pid]: message` into the program and the message.
pub(crate) fn split_syslog(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    let rest = if b.len() > 16
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b' '
    {
        &line[16..]
    } else if b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
    {
        line.split_once(' ')?.1
    } else {
        return None;
    };
    let (host, rest) = rest.split_once(' ')?;
    if host.is_empty() {
        return None;
    }
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let tag = tag.strip_suffix(':')?;
    let prog = match tag.split_once('[') {
        Some((prog, pid)) => {
            let pid = pid.strip_suffix(']')?;
            if pid.is_empty() || !pid.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            prog
        }
        None => tag,
    };
    if prog.is_empty() {
        return None;
    }
    Some((prog, text))
}

/// An address as services print it; IPv4-mapped IPv6 (vsftpd's `::ffff:1.2.3.4`) becomes IPv4.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `ADDR port N`, exactly.
pub(crate) fn addr_port(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(" port ")?;
    Some((parse_ip(a)?, parse_port(p)?))
}

pub(crate) struct Found<'a> {
    pub service: Service,
    pub outcome: AuthOutcome,
    pub user: &'a str,
    pub invalid_user: bool,
    pub source: IpAddr,
    pub port: Option<u16>,
    pub method: Option<&'a str>,
    pub count: u32,
}

impl Found<'_> {
    pub(crate) fn event(self, raw: &str, now: i64) -> Option<AuthEvent> {
        Some(AuthEvent {
            ts: now,
            service: self.service,
            outcome: self.outcome,
            user: self.user.to_owned(),
            invalid_user: self.invalid_user,
            source: self.source,
            port: self.port,
            method: self.method.map(str::to_owned),
            count: self.count,
            line: evidence(raw).to_owned(),
        })
    }
}

fn evidence(raw: &str) -> &str {
    if raw.len() <= EVIDENCE_MAX {
        return raw;
    }
    let mut end = EVIDENCE_MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    &raw[..end]
}

/// The source address and user of a PAM `authentication failure; logname= uid= euid= tty=
/// ruser=RU rhost=RH  user=U` list. RU and U are attacker-chosen and may contain ` rhost=`, so
/// every ` rhost=` is tried and only one consistent with PAM's layout is accepted: RU empty (sshd
/// sets no PAM_RUSER) or equal to U (vsftpd sets it to the user).
pub(crate) fn pam_rhost(kv: &str, ruser_empty: bool) -> Result<(IpAddr, Option<&str>), Skip> {
    let Some(i) = kv.find(" ruser=") else {
        return Err(Skip::Unparsed);
    };
    let tail = &kv[i + " ruser=".len()..];
    let mut found = None;
    for (q, _) in tail.match_indices(" rhost=") {
        let ruser = &tail[..q];
        if ruser_empty && !ruser.is_empty() {
            continue;
        }
        let after = &tail[q + " rhost=".len()..];
        let (rhost, rest) = after.split_once(' ').unwrap_or((after, ""));
        let user = if rest.is_empty() {
            None
        } else {
            match rest.trim_start_matches(' ').strip_prefix("user=") {
                Some(u) => Some(u),
                None => continue,
            }
        };
        if !ruser.is_empty() && user != Some(ruser) {
            continue;
        }
        if found.is_some() {
            return Err(Skip::Unparsed);
        }
        found = Some((rhost, user));
    }
    let (rhost, user) = found.ok_or(Skip::Unparsed)?;
    Ok((parse_ip(rhost).ok_or(Skip::NoAddress)?, user))
}

#[cfg(test)]
mod tests;
