//! Real-time detectors. Each one is a module with its config, its logic and its tests; sources
//! (log followers) feed them events and they decide. `authlog` reads authentication events from
//! journald or the auth log files; `bruteforce` decides which source addresses to block;
//! `runner` ties them to the firewall and the outbox.

pub mod authlog;
pub mod bruteforce;
pub mod runner;

use std::net::IpAddr;

/// The service an authentication event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ssh,
    Ftp,
    Mysql,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Ftp => "ftp",
            Service::Mysql => "mysql",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOutcome {
    /// A wrong password or key for an existing or unknown user, a PAM failure, a connection
    /// closed after too many attempts (counted as [`AuthEvent::count`] says).
    Failure,
    /// A successful login.
    Success,
}

/// One authentication event from a service's log, with the source address as the service
/// itself logged it (never as text found inside a user name: see `authlog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// Unix seconds when it was read (log timestamps lack the year and often the zone).
    pub ts: i64,
    pub service: Service,
    pub outcome: AuthOutcome,
    /// The user name tried, as logged (may be empty, may be hostile text).
    pub user: String,
    /// Whether the service said the user does not exist.
    pub invalid_user: bool,
    pub source: IpAddr,
    pub port: Option<u16>,
    /// `password`, `publickey`, `keyboard-interactive`, ... when logged.
    pub method: Option<String>,
    /// How many failures this one line stands for: sshd's "message repeated N times"; 0 for
    /// the other lines of an attempt that its `Failed METHOD` line counts (`Invalid user`, PAM,
    /// preauth disconnects), which are evidence only; 1 otherwise.
    pub count: u32,
    /// The log line, at most 512 bytes, for the alarm's evidence.
    pub line: String,
}
