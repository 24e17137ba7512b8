//! Center configuration: `hostward.toml`, overridden by `HOSTWARD_*` environment variables,
//! overridden by command-line flags. clap handles flags and env; the file fills what they leave.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// An on/off setting, as flags and the file write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// Settings of `hostward serve` (and `hostward up`). Every field is optional here so that the
/// file, env and flags can be layered; [`Config::resolve`] applies defaults.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML config file. Keys are the long flag names with `_` for `-`, e.g. `heartbeat_secs = 30`.
    #[arg(long, env = "HOSTWARD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory for the CA, the server certificate and the SQLite database.
    #[arg(long, env = "HOSTWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`. Default: SQLite in the data dir.
    #[arg(long, env = "HOSTWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address of the console/API HTTPS listener.
    #[arg(long, env = "HOSTWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the agent gateway (HTTPS/WSS, client certificate required).
    #[arg(long, env = "HOSTWARD_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// URL agents and browsers use to reach the console/API, e.g. `https://hostward.example:8443`.
    #[arg(long, env = "HOSTWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// URL agents use to reach the gateway, e.g. `wss://hostward.example:10180/agent/v1`.
    #[arg(long, env = "HOSTWARD_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Extra DNS names or IP addresses for the server certificate (repeatable).
    #[arg(
        long = "server-name",
        env = "HOSTWARD_SERVER_NAMES",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Agent heartbeat interval in seconds; an agent is offline after 3 missed heartbeats.
    #[arg(long, env = "HOSTWARD_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// The agent binary served at /download/hostward-agent. Default: `hostward-agent` beside this binary.
    #[arg(long, env = "HOSTWARD_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// The malware scanner the center runs to check imported rule files before it stores and
    /// distributes them (`hostward-scanner check`). Default: `hostward-scanner` beside this
    /// binary. Without it, imports are refused (never stored unchecked).
    #[arg(long, env = "HOSTWARD_SCANNER_PATH")]
    pub scanner_path: Option<PathBuf>,
    /// Console session lifetime in seconds.
    #[arg(long, env = "HOSTWARD_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<u64>,
    /// Failed logins of one account from one source address (IPv6: its /64) within
    /// --lockout-secs before that source's further attempts on the account are refused unchecked.
    #[arg(long, env = "HOSTWARD_LOGIN_MAX_FAILURES")]
    pub login_max_failures: Option<u32>,
    /// Window of the failed-login counters in seconds: a source refused for an account (or
    /// across accounts) is let try again once the window that counted its failures has passed.
    #[arg(long, env = "HOSTWARD_LOCKOUT_SECS")]
    pub lockout_secs: Option<u64>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `hostward_center=debug`.
    #[arg(long, env = "HOSTWARD_LOG")]
    pub log: Option<String>,
    /// Fetch vulnerability feeds and import them, at start and every --vulndb-fetch-hours:
    /// `on` (default) or `off` (offline centers: `hostward vulndb import` works either way).
    #[arg(long, value_name = "ON_OFF", env = "HOSTWARD_VULNDB_FETCH")]
    pub vulndb_fetch: Option<Switch>,
    /// HTTPS URLs of the vulnerability feeds to fetch (OSV zips such as an ecosystem's
    /// `all.zip`, or the Debian Security Tracker JSON); repeat the flag or separate with
    /// commas. Default: the public feeds of the operating systems the fleet's servers run
    /// (OSV's Debian, Ubuntu, AlmaLinux, Rocky Linux and Alpine exports and the Debian
    /// Security Tracker), chosen again as servers enroll.
    #[arg(
        long = "vulndb-url",
        env = "HOSTWARD_VULNDB_URL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub vulndb_urls: Vec<String>,
    /// Hours between fetches of each feed.
    #[arg(long, env = "HOSTWARD_VULNDB_FETCH_HOURS")]
    pub vulndb_fetch_hours: Option<u64>,
    /// CA bundle trusted for the feeds' servers.
    #[arg(long, env = "HOSTWARD_VULNDB_CA_FILE")]
    pub vulndb_ca_file: Option<PathBuf>,
    /// Days an alarm is kept after its last occurrence.
    #[arg(long, env = "HOSTWARD_ALARM_RETENTION_DAYS")]
    pub alarm_retention_days: Option<i64>,
    /// Days a file change (file integrity monitoring) is kept after the agent saw it.
    #[arg(long, env = "HOSTWARD_FILE_CHANGE_RETENTION_DAYS")]
    pub file_change_retention_days: Option<i64>,
    /// Seconds before each new attempt at a notification that failed; after the last, it is
    /// marked failed (shown with its error, to retry by hand). Default:
    /// 30,120,600,3600,3600,3600,3600,3600 (about 5 hours in all).
    #[arg(
        long = "notify-retry-secs",
        env = "HOSTWARD_NOTIFY_RETRY_SECS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub notify_retry_secs: Vec<u64>,
    /// The UTC offset notification channels' times are in (the daily summary's HH:MM,
    /// masking windows), e.g. `+02:00`, `-05:00` or `Z`. Default: this machine's local time.
    #[arg(long, env = "HOSTWARD_NOTIFY_UTC_OFFSET")]
    pub notify_utc_offset: Option<String>,
    /// Argon2 password checks run at once (each holds 19 MiB). Default: CPU cores, at most 4.
    #[arg(long, env = "HOSTWARD_PASSWORD_HASH_WORKERS")]
    pub password_hash_workers: Option<usize>,
    /// Password checks that may wait for a worker; beyond, logins answer 503 with Retry-After.
    #[arg(long, env = "HOSTWARD_PASSWORD_HASH_QUEUE")]
    pub password_hash_queue: Option<usize>,
    /// Password checks one source address (IPv6: its /64) may have running or waiting.
    #[arg(long, env = "HOSTWARD_PASSWORD_HASH_PER_SOURCE")]
    pub password_hash_per_source: Option<usize>,
    /// Seconds a password check may wait for a worker before it is refused (503).
    #[arg(long, env = "HOSTWARD_PASSWORD_HASH_WAIT_SECS")]
    pub password_hash_wait_secs: Option<u64>,
    /// Failed logins one source address (IPv6: its /64) may make across all accounts within
    /// --lockout-secs before its further attempts are refused unchecked.
    #[arg(long, env = "HOSTWARD_LOGIN_SOURCE_MAX_FAILURES")]
    pub login_source_max_failures: Option<u32>,
    // Console/API listener (8443) limits against slow clients; see ARCHITECTURE.md.
    /// Seconds a console/API client has to finish the TLS handshake after connecting. Default: 10.
    #[arg(long, env = "HOSTWARD_CONSOLE_TLS_HANDSHAKE_SECS")]
    pub console_tls_handshake_secs: Option<u64>,
    /// Seconds a console/API connection may wait for a complete request head. The one timer
    /// covers a slow client's partial headers and the idle keep-alive time between requests.
    /// Default: 20.
    #[arg(long, env = "HOSTWARD_CONSOLE_HEADER_TIMEOUT_SECS")]
    pub console_header_timeout_secs: Option<u64>,
    /// Seconds a console/API request body may go without sending any data before the request
    /// fails and the connection is closed. Default: 30.
    #[arg(long, env = "HOSTWARD_CONSOLE_BODY_TIMEOUT_SECS")]
    pub console_body_timeout_secs: Option<u64>,
    /// Open console/API connections allowed from one source address; more are closed at accept,
    /// before TLS. Default: 256 (an office NAT of 40 browsers uses about 240).
    #[arg(long, env = "HOSTWARD_CONSOLE_MAX_CONNECTIONS_PER_IP")]
    pub console_max_connections_per_ip: Option<usize>,
    /// Open console/API connections allowed in total; more are closed at accept. Default: a
    /// quarter of the open-files limit, at most 8192, so the agent gateway always keeps three
    /// quarters of the file descriptors. At most half of the open-files limit.
    #[arg(long, env = "HOSTWARD_CONSOLE_MAX_CONNECTIONS")]
    pub console_max_connections: Option<usize>,
}

/// Resolved configuration with every default applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub gateway_listen: SocketAddr,
    pub public_url: String,
    pub gateway_url: String,
    pub server_names: Vec<String>,
    pub heartbeat_secs: u64,
    pub agent_binary: PathBuf,
    /// `hostward-scanner`, which checks imported malware rules.
    pub scanner_path: PathBuf,
    pub session_ttl_secs: u64,
    pub login_max_failures: u32,
    pub lockout_secs: u64,
    pub log: String,
    /// Whether feeds are fetched at all.
    pub vulndb_fetch: bool,
    /// The feeds to fetch; empty: the public ones of the fleet's operating systems.
    pub vulndb_urls: Vec<String>,
    pub vulndb_fetch_hours: u64,
    pub vulndb_ca_file: PathBuf,
    pub alarm_retention_days: i64,
    pub file_change_retention_days: i64,
    /// Back-off of failed notifications, in seconds per attempt.
    pub notify_retry_secs: Vec<u64>,
    /// Seconds east of UTC for notification times; None: local time.
    pub notify_utc_offset: Option<i64>,
    pub password_hash_workers: usize,
    pub password_hash_queue: usize,
    pub password_hash_per_source: usize,
    pub password_hash_wait_secs: u64,
    pub login_source_max_failures: u32,
    pub console: ConsoleLimits,
}

/// Limits of the console/API listener; `max_connections` None = derived from the open-files
/// limit at start (`crate::listen`).
#[derive(Debug, Clone)]
pub struct ConsoleLimits {
    pub tls_handshake: std::time::Duration,
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub max_per_ip: usize,
    pub max_connections: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    /// toml's message names the key and shows the line and column.
    #[error("invalid config file {path}: {err}")]
    Parse { path: PathBuf, err: toml::de::Error },
    #[error("invalid setting {key}: {msg}")]
    Invalid { key: &'static str, msg: String },
}

impl ServeArgs {
    /// Fills fields the flags/env left empty from the config file, if one was given.
    pub fn with_file(self) -> Result<ServeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::Read {
            path: path.clone(),
            err,
        })?;
        let file: ServeArgs = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.clone(),
            err,
        })?;
        Ok(self.or(file))
    }

    fn or(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            database_url: self.database_url.or(file.database_url),
            listen: self.listen.or(file.listen),
            gateway_listen: self.gateway_listen.or(file.gateway_listen),
            public_url: self.public_url.or(file.public_url),
            gateway_url: self.gateway_url.or(file.gateway_url),
            server_names: if self.server_names.is_empty() {
                file.server_names
            } else {
                self.server_names
            },
            heartbeat_secs: self.heartbeat_secs.or(file.heartbeat_secs),
            agent_binary: self.agent_binary.or(file.agent_binary),
            scanner_path: self.scanner_path.or(file.scanner_path),
            session_ttl_secs: self.session_ttl_secs.or(file.session_ttl_secs),
            login_max_failures: self.login_max_failures.or(file.login_max_failures),
            lockout_secs: self.lockout_secs.or(file.lockout_secs),
            log: self.log.or(file.log),
            vulndb_fetch: self.vulndb_fetch.or(file.vulndb_fetch),
            vulndb_urls: if self.vulndb_urls.is_empty() {
                file.vulndb_urls
            } else {
                self.vulndb_urls
            },
            vulndb_fetch_hours: self.vulndb_fetch_hours.or(file.vulndb_fetch_hours),
            vulndb_ca_file: self.vulndb_ca_file.or(file.vulndb_ca_file),
            alarm_retention_days: self.alarm_retention_days.or(file.alarm_retention_days),
            file_change_retention_days: self
                .file_change_retention_days
                .or(file.file_change_retention_days),
            notify_retry_secs: if self.notify_retry_secs.is_empty() {
                file.notify_retry_secs
            } else {
                self.notify_retry_secs
            },
            notify_utc_offset: self.notify_utc_offset.or(file.notify_utc_offset),
            password_hash_workers: self.password_hash_workers.or(file.password_hash_workers),
            password_hash_queue: self.password_hash_queue.or(file.password_hash_queue),
            password_hash_per_source: self
                .password_hash_per_source
                .or(file.password_hash_per_source),
            password_hash_wait_secs: self
                .password_hash_wait_secs
                .or(file.password_hash_wait_secs),
            login_source_max_failures: self
                .login_source_max_failures
                .or(file.login_source_max_failures),
            console_tls_handshake_secs: self
                .console_tls_handshake_secs
                .or(file.console_tls_handshake_secs),
            console_header_timeout_secs: self
                .console_header_timeout_secs
                .or(file.console_header_timeout_secs),
            console_body_timeout_secs: self
                .console_body_timeout_secs
                .or(file.console_body_timeout_secs),
            console_max_connections_per_ip: self
                .console_max_connections_per_ip
                .or(file.console_max_connections_per_ip),
            console_max_connections: self
                .console_max_connections
                .or(file.console_max_connections),
        }
    }

    pub fn resolve(self, default_data_dir: &Path) -> Result<Config, ConfigError> {
        let a = self.with_file()?;
        let console = console_limits(&a)?;
        let data_dir = a.data_dir.unwrap_or_else(|| default_data_dir.to_path_buf());
        let listen = a.listen.unwrap_or_else(|| "0.0.0.0:8443".parse().unwrap());
        let gateway_listen = a
            .gateway_listen
            .unwrap_or_else(|| "0.0.0.0:10180".parse().unwrap());
        let host = default_host(&a.server_names);
        let public_url = a
            .public_url
            .unwrap_or_else(|| format!("https://{}:{}", host, listen.port()));
        if !public_url.starts_with("https://") {
            return Err(ConfigError::Invalid {
                key: "public_url",
                msg: format!("{public_url:?} must start with https://"),
            });
        }
        let gateway_url = a.gateway_url.unwrap_or_else(|| {
            format!(
                "wss://{}:{}{}",
                url_host(&public_url),
                gateway_listen.port(),
                hostward_proto::AGENT_WS_PATH
            )
        });
        if !gateway_url.starts_with("wss://") {
            return Err(ConfigError::Invalid {
                key: "gateway_url",
                msg: format!("{gateway_url:?} must start with wss://"),
            });
        }
        let heartbeat_secs = a.heartbeat_secs.unwrap_or(30);
        if !(1..=3600).contains(&heartbeat_secs) {
            return Err(ConfigError::Invalid {
                key: "heartbeat_secs",
                msg: format!("{heartbeat_secs} is outside 1..=3600"),
            });
        }
        let mut server_names = a.server_names;
        for n in [
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
            url_host(&public_url),
            url_host(&gateway_url),
        ] {
            if !server_names.contains(&n) {
                server_names.push(n);
            }
        }
        let agent_binary = a.agent_binary.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("hostward-agent")))
                .unwrap_or_default()
        });
        let scanner_path = a.scanner_path.unwrap_or_else(|| {
            std::env::current_exe()
                .map(|exe| scanner_beside(&exe))
                .unwrap_or_default()
        });
        if let Some(u) = a.vulndb_urls.iter().find(|u| !u.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "vulndb_url",
                msg: format!("{u:?} must start with https://"),
            });
        }
        let vulndb_fetch_hours = a.vulndb_fetch_hours.unwrap_or(24);
        if !(1..=24 * 30).contains(&vulndb_fetch_hours) {
            return Err(ConfigError::Invalid {
                key: "vulndb_fetch_hours",
                msg: format!("{vulndb_fetch_hours} is outside 1..=720"),
            });
        }
        let alarm_retention_days = a.alarm_retention_days.unwrap_or(30);
        if !(1..=3650).contains(&alarm_retention_days) {
            return Err(ConfigError::Invalid {
                key: "alarm_retention_days",
                msg: format!("{alarm_retention_days} is outside 1..=3650"),
            });
        }
        let file_change_retention_days = a.file_change_retention_days.unwrap_or(90);
        if !(1..=3650).contains(&file_change_retention_days) {
            return Err(ConfigError::Invalid {
                key: "file_change_retention_days",
                msg: format!("{file_change_retention_days} is outside 1..=3650"),
            });
        }
        let notify_retry_secs = if a.notify_retry_secs.is_empty() {
            vec![30, 120, 600, 3600, 3600, 3600, 3600, 3600]
        } else {
            a.notify_retry_secs
        };
        if notify_retry_secs.len() > 100
            || notify_retry_secs.iter().any(|s| !(1..=86_400).contains(s))
        {
            return Err(ConfigError::Invalid {
                key: "notify_retry_secs",
                msg: "at most 100 steps, each 1 to 86400 seconds".into(),
            });
        }
        let notify_utc_offset = match a.notify_utc_offset.as_deref() {
            None => None,
            Some(s) => Some(
                crate::capabilities::notifications::filter::parse_utc_offset(s).ok_or_else(
                    || ConfigError::Invalid {
                        key: "notify_utc_offset",
                        msg: format!("{s:?} is not +HH:MM, -HH:MM or Z"),
                    },
                )?,
            ),
        };
        let hash_defaults = crate::auth::password::PoolConfig::default();
        let password_hash_workers = a.password_hash_workers.unwrap_or(hash_defaults.workers);
        if !(1..=64).contains(&password_hash_workers) {
            return Err(ConfigError::Invalid {
                key: "password_hash_workers",
                msg: format!("{password_hash_workers} is outside 1..=64"),
            });
        }
        let password_hash_queue = a.password_hash_queue.unwrap_or(hash_defaults.queue);
        if password_hash_queue > 10_000 {
            return Err(ConfigError::Invalid {
                key: "password_hash_queue",
                msg: format!("{password_hash_queue} is outside 0..=10000"),
            });
        }
        let password_hash_per_source = a
            .password_hash_per_source
            .unwrap_or(hash_defaults.per_source);
        if !(1..=10_000).contains(&password_hash_per_source) {
            return Err(ConfigError::Invalid {
                key: "password_hash_per_source",
                msg: format!("{password_hash_per_source} is outside 1..=10000"),
            });
        }
        let password_hash_wait_secs = a
            .password_hash_wait_secs
            .unwrap_or(hash_defaults.wait.as_secs());
        if !(1..=300).contains(&password_hash_wait_secs) {
            return Err(ConfigError::Invalid {
                key: "password_hash_wait_secs",
                msg: format!("{password_hash_wait_secs} is outside 1..=300"),
            });
        }
        let login_source_max_failures = a.login_source_max_failures.unwrap_or(50);
        if login_source_max_failures == 0 {
            return Err(ConfigError::Invalid {
                key: "login_source_max_failures",
                msg: "must be at least 1".into(),
            });
        }
        Ok(Config {
            password_hash_workers,
            password_hash_queue,
            password_hash_per_source,
            password_hash_wait_secs,
            login_source_max_failures,
            console,
            alarm_retention_days,
            file_change_retention_days,
            notify_retry_secs,
            notify_utc_offset,
            vulndb_fetch: a.vulndb_fetch.unwrap_or(Switch::On) == Switch::On,
            vulndb_urls: a.vulndb_urls,
            vulndb_fetch_hours,
            vulndb_ca_file: a
                .vulndb_ca_file
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into()),
            database_url: a
                .database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hostward.db").display())),
            data_dir,
            listen,
            gateway_listen,
            public_url,
            gateway_url,
            server_names,
            heartbeat_secs,
            agent_binary,
            scanner_path,
            session_ttl_secs: a.session_ttl_secs.unwrap_or(12 * 3600),
            login_max_failures: a.login_max_failures.unwrap_or(5),
            lockout_secs: a.lockout_secs.unwrap_or(900),
            log: a.log.unwrap_or_else(|| "info".into()),
        })
    }
}

/// Where `hostward-scanner` is when no setting names it: beside the running executable `exe`;
/// for a test binary in Cargo's `target/<profile>/deps`, also one folder up, where Cargo puts
/// the workspace's binaries. The first that exists; else the file beside `exe` (whose absence
/// the rules check then reports).
pub fn scanner_beside(exe: &Path) -> PathBuf {
    const NAME: &str = "hostward-scanner";
    let Some(dir) = exe.parent() else {
        return PathBuf::from(NAME);
    };
    let mut candidates = vec![dir.join(NAME)];
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(up) = dir.parent()
    {
        candidates.push(up.join(NAME));
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

fn console_limits(a: &ServeArgs) -> Result<ConsoleLimits, ConfigError> {
    fn secs(
        key: &'static str,
        v: Option<u64>,
        default: u64,
    ) -> Result<std::time::Duration, ConfigError> {
        let v = v.unwrap_or(default);
        if !(1..=600).contains(&v) {
            return Err(ConfigError::Invalid {
                key,
                msg: format!("{v} is outside 1..=600"),
            });
        }
        Ok(std::time::Duration::from_secs(v))
    }
    let max_per_ip = a.console_max_connections_per_ip.unwrap_or(256);
    if !(1..=65536).contains(&max_per_ip) {
        return Err(ConfigError::Invalid {
            key: "console_max_connections_per_ip",
            msg: format!("{max_per_ip} is outside 1..=65536"),
        });
    }
    if let Some(n) = a.console_max_connections
        && !(1..=1_000_000).contains(&n)
    {
        return Err(ConfigError::Invalid {
            key: "console_max_connections",
            msg: format!("{n} is outside 1..=1000000"),
        });
    }
    Ok(ConsoleLimits {
        tls_handshake: secs(
            "console_tls_handshake_secs",
            a.console_tls_handshake_secs,
            10,
        )?,
        header_timeout: secs(
            "console_header_timeout_secs",
            a.console_header_timeout_secs,
            20,
        )?,
        body_timeout: secs("console_body_timeout_secs", a.console_body_timeout_secs, 30)?,
        max_per_ip,
        max_connections: a.console_max_connections,
    })
}

fn default_host(names: &[String]) -> String {
    names.first().cloned().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// Host part of an http(s)/ws(s) URL, without brackets for IPv6.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_config_file_names_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostward.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:8443\"\nheartbeat_secs = \"often\"\n",
        )
        .unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap_err()
        .to_string();
        assert!(err.contains("heartbeat_secs"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostward.toml");
        std::fs::write(&path, "heartbeat_sec = 5\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap_err()
        .to_string();
        assert!(err.contains("heartbeat_sec"), "{err}");
    }

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostward.toml");
        std::fs::write(&path, "heartbeat_secs = 5\nlisten = \"127.0.0.1:9443\"\n").unwrap();
        let cfg = ServeArgs {
            config: Some(path),
            heartbeat_secs: Some(2),
            public_url: Some("https://10.0.0.5:9443".into()),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap();
        assert_eq!(cfg.heartbeat_secs, 2);
        assert_eq!(cfg.listen.port(), 9443);
        assert_eq!(cfg.gateway_url, "wss://10.0.0.5:10180/agent/v1");
        assert!(cfg.server_names.contains(&"10.0.0.5".to_string()));
        assert!(cfg.database_url.starts_with("sqlite://"));
    }

    #[test]
    fn password_hash_limits_are_checked_and_default_sanely() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServeArgs::default().resolve(dir.path()).unwrap();
        assert!((1..=4).contains(&cfg.password_hash_workers));
        assert!(cfg.password_hash_queue > 0 && cfg.password_hash_per_source > 0);
        assert!(cfg.login_source_max_failures > cfg.login_max_failures);
        let err = ServeArgs {
            password_hash_workers: Some(0),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap_err()
        .to_string();
        assert!(err.contains("password_hash_workers"), "{err}");
    }

    #[test]
    fn console_limits_layer_and_name_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostward.toml");
        std::fs::write(
            &path,
            "console_header_timeout_secs = 7\nconsole_max_connections_per_ip = 16\n",
        )
        .unwrap();
        let cfg = ServeArgs {
            config: Some(path.clone()),
            console_max_connections_per_ip: Some(4),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap();
        assert_eq!(cfg.console.header_timeout.as_secs(), 7);
        assert_eq!(cfg.console.max_per_ip, 4);
        assert_eq!(cfg.console.body_timeout.as_secs(), 30);
        assert_eq!(cfg.console.max_connections, None);
        let err = ServeArgs {
            console_body_timeout_secs: Some(0),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap_err()
        .to_string();
        assert!(err.contains("console_body_timeout_secs"), "{err}");
    }

    #[test]
    fn file_change_retention_defaults_to_90_days_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostward.toml");
        std::fs::write(&path, "file_change_retention_days = 30\n").unwrap();
        let cfg = ServeArgs::default().resolve(dir.path()).unwrap();
        assert_eq!(cfg.file_change_retention_days, 90);
        let cfg = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap();
        assert_eq!(cfg.file_change_retention_days, 30);
        let err = ServeArgs {
            file_change_retention_days: Some(0),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap_err()
        .to_string();
        assert!(err.contains("file_change_retention_days"), "{err}");
    }

    #[test]
    fn the_scanner_is_found_beside_the_binary_or_above_cargos_deps() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("debug/deps");
        std::fs::create_dir_all(&deps).unwrap();
        let test_bin = deps.join("hostward_center-0123");
        // Nowhere yet: the file beside the binary, for the check to report as missing.
        assert_eq!(scanner_beside(&test_bin), deps.join("hostward-scanner"));
        // Cargo's layout: the binaries one folder above deps/.
        std::fs::write(dir.path().join("debug/hostward-scanner"), "").unwrap();
        assert_eq!(
            scanner_beside(&test_bin),
            dir.path().join("debug/hostward-scanner")
        );
        // A copy beside the binary wins.
        std::fs::write(deps.join("hostward-scanner"), "").unwrap();
        assert_eq!(scanner_beside(&test_bin), deps.join("hostward-scanner"));
        // An installed center: only beside it, never one folder up.
        let bin = dir.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(dir.path().join("usr/hostward-scanner"), "").unwrap();
        assert_eq!(
            scanner_beside(&bin.join("hostward")),
            bin.join("hostward-scanner")
        );
        // The setting wins over the default, from the file or a flag.
        let path = dir.path().join("hostward.toml");
        std::fs::write(&path, "scanner_path = \"/opt/hw/hostward-scanner\"\n").unwrap();
        let cfg = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve(dir.path())
        .unwrap();
        assert_eq!(cfg.scanner_path, PathBuf::from("/opt/hw/hostward-scanner"));
    }

    #[test]
    fn url_host_handles_ports_and_ipv6() {
        assert_eq!(url_host("https://a.example:8443/x"), "a.example");
        assert_eq!(url_host("wss://[::1]:10180/agent/v1"), "::1");
        assert_eq!(url_host("https://b"), "b");
    }
}
