//! Harness of the Hostward end-to-end tests: real `hostward` and `hostward-agent` processes,
//! a fresh PostgreSQL database per test when asked, and headless Chromium through chromedriver.
//! Every test builds a [`TestEnv`] and runs its body through [`TestEnv::run`]. The env owns one
//! temp dir under which every center, agent and browser profile lives, and knows every log file,
//! so a failing test (an `Err` or a panic) prints the tails of all of them. Children are killed
//! when their handle drops (SIGTERM to the process group, then SIGKILL), and also when the test
//! process dies (parent-death signal). Ports, dirs and databases are unique per test, so tests
//! run in parallel.
//!
//! The binaries are taken from the cargo target dir the test binary runs from
//! (`target/debug/deps/..` -> `target/debug`), else `$CARGO_TARGET_DIR/debug`, else
//! `<workspace>/target/debug`; `HOSTWARD_BIN_DIR` overrides. Build them first:
//! `cargo build --workspace --bins`.
//!
//! Environment:
//! - `HOSTWARD_TEST_POSTGRES_URL`: a PostgreSQL server where we may `CREATE DATABASE`. Missing:
//!   PostgreSQL tests are skipped with a message, or fail when `CI=true`.
//! - `HOSTWARD_E2E_KEEP=1`: keep the temp dirs (and databases) of the tests for inspection;
//!   `HOSTWARD_E2E_KEEP_FAILED=1`: only those of failing tests.
//! - `HOSTWARD_E2E_TEST_TIMEOUT_SECS`: limit of one test body (default 600).
//! - `HOSTWARD_E2E_CHROMIUM`, `HOSTWARD_E2E_CHROMEDRIVER`: browser paths (default Debian's).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod agent;
mod browser;
pub mod faults;
mod html;
pub mod lab;
pub mod mail;
mod raw;
pub mod runtime;
pub mod samples;
pub mod web;
pub use {agent::Agent, browser::*, html::*, raw::*};

pub use anyhow::{Context, Result, anyhow, bail, ensure};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The superadmin every [`Center`] gets at start (not `admin`: `serve` may bootstrap that one
/// itself with a random one-time password).
pub const ADMIN_USER: &str = "e2e-admin";
pub const ADMIN_PASSWORD: &str = "e2e-admin-password-0123";

/// How long a center may take to answer `/healthz` after spawn (debug build, loaded CI box).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a CLI command may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// This machine's host name, as the agent reports it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Installs ring as rustls' process default; every client here uses `hostward_pki` configs anyway.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        hostward_pki::install_default_provider();
    });
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// Directory holding `hostward` and `hostward-agent`.
pub fn bin_dir() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("HOSTWARD_BIN_DIR") {
        candidates.push(d.into());
    }
    // target/debug/deps/<test binary> -> target/debug
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.to_path_buf());
    }
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&d).join("debug"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    for c in &candidates {
        if c.join("hostward").is_file() && c.join("hostward-agent").is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "the hostward and hostward-agent binaries were not found in any of {candidates:?}; \
         build them first with `cargo build --workspace --bins` (same CARGO_TARGET_DIR as the tests)"
    )
}

pub fn bin(name: &str) -> Result<PathBuf> {
    Ok(bin_dir()?.join(name))
}

// ---------------------------------------------------------------------------------------------
// Ports

/// A TCP port on 127.0.0.1 that was free a moment ago. Taken at random below the kernel's
/// ephemeral range (so outgoing connections do not grab it) and never twice in one process.
pub fn free_port() -> u16 {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(Mutex::default);
    loop {
        let port: u16 = rand::random_range(20000..32000);
        if !taken.lock().unwrap().insert(port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `f` every `poll` until it returns `Ok`, for at most `timeout`. An `Err` means "not yet"
/// and should say what was seen; the last one is in the timeout error.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            bail!(
                "timed out after {:.1}s ({tries} tries) waiting for {what}; last seen: {last:#}",
                start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(poll).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Test environment and diagnostics

/// One test's world: a temp dir, the log files to show on failure, databases to drop.
pub struct TestEnv {
    pub name: String,
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    logs: Mutex<Vec<(String, PathBuf)>>,
    databases: Mutex<Vec<PgDatabase>>,
    counter: AtomicU32,
    reported: std::sync::atomic::AtomicBool,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        init();
        let root = tempfile::Builder::new()
            .prefix(&format!("hw-e2e-{name}-"))
            .tempdir()
            .expect("creating the test temp dir");
        let root_path = root.path().to_path_buf();
        TestEnv {
            name: name.to_string(),
            root: Some(root),
            root_path,
            logs: Mutex::default(),
            databases: Mutex::default(),
            counter: AtomicU32::new(0),
            reported: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// A new, unique directory under the test's root: `<root>/<prefix>-<n>`.
    pub fn subdir(&self, prefix: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let p = self.root_path.join(format!("{prefix}-{n}"));
        std::fs::create_dir_all(&p).expect("creating a test subdir");
        p
    }

    /// Registers a log file to print when the test fails.
    pub fn add_log(&self, label: &str, path: &Path) {
        let mut logs = self.logs.lock().unwrap();
        if !logs.iter().any(|(_, p)| p == path) {
            logs.push((label.to_string(), path.to_path_buf()));
        }
    }

    /// Runs the test body. On error, prints the tails of every registered log, then returns it.
    /// Databases created for the test are dropped afterwards (unless `HOSTWARD_E2E_KEEP`).
    pub async fn run<F: Future<Output = Result<()>>>(&self, body: F) -> Result<()> {
        let limit = std::env::var("HOSTWARD_E2E_TEST_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600);
        let result = match tokio::time::timeout(secs(limit), body).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!(
                "the test did not finish within {limit} s (HOSTWARD_E2E_TEST_TIMEOUT_SECS)"
            )),
        };
        if let Err(e) = &result {
            eprintln!("\n=== {} FAILED: {e:#}", self.name);
            self.print_diagnostics();
        }
        if !keep() {
            let dbs: Vec<PgDatabase> = std::mem::take(&mut *self.databases.lock().unwrap());
            for db in dbs {
                if let Err(e) = db.drop_database().await {
                    eprintln!("note: dropping test database {} failed: {e:#}", db.name);
                }
            }
        }
        result
    }

    /// Prints the last lines of every registered log to stderr (shown for failing tests).
    pub fn print_diagnostics(&self) {
        if self.reported.swap(true, Ordering::SeqCst) {
            return;
        }
        let logs = self.logs.lock().unwrap().clone();
        for (label, path) in logs {
            let text = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            eprintln!("\n----- {label}: {} (last 60 lines) -----", path.display());
            eprintln!("{}", tail(&text, 60));
        }
        eprintln!(
            "----- end of logs; test dir {} -----",
            self.root_path.display()
        );
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("\n=== {} PANICKED", self.name);
            self.print_diagnostics();
        }
        // `reported` is set once a failure was reported (an Err from `run`, or a panic).
        let failed = self.reported.load(Ordering::SeqCst);
        let keep_failed = failed && std::env::var_os("HOSTWARD_E2E_KEEP_FAILED").is_some();
        if (keep() || keep_failed)
            && let Some(root) = self.root.take()
        {
            let p = root.keep();
            eprintln!("kept test dir {}", p.display());
        }
    }
}

fn keep() -> bool {
    std::env::var("HOSTWARD_E2E_KEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The last `n` lines of `text`, each cut at 2000 characters.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| {
            if l.len() > 2000 {
                format!("{}…", &l[..l.floor_char_boundary(2000)])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process in its own process group, stdout and stderr appended to files.
pub struct Proc {
    pub label: String,
    child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Length of the stderr file when this process started (the file is shared by restarts).
    stderr_start: u64,
    stdout_start: u64,
    status: Option<ExitStatus>,
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let _ = f.seek(SeekFrom::Start(offset));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Names of `HOSTWARD_*` variables of the test's own environment, which must not leak into the
/// processes under test (they read `HOSTWARD_CONFIG`, `HOSTWARD_DATA_DIR`, …).
fn hostward_env() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("HOSTWARD_"))
        .collect()
}

/// A command for a process under test, with a clean `HOSTWARD_*` environment.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for k in hostward_env() {
        cmd.env_remove(k);
    }
    cmd
}

/// Makes a command die with the test process and run in its own process group.
fn detach(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

impl Proc {
    /// Spawns `cmd` with stdin closed and its output appended to `<dir>/<stem>.stdout.log` and
    /// `<dir>/<stem>.stderr.log`; registers both with `env` for diagnostics.
    pub fn spawn(
        env: &TestEnv,
        label: &str,
        mut cmd: Command,
        dir: &Path,
        stem: &str,
    ) -> Result<Proc> {
        let stdout_path = dir.join(format!("{stem}.stdout.log"));
        let stderr_path = dir.join(format!("{stem}.stderr.log"));
        let stdout_start = file_len(&stdout_path);
        let stderr_start = file_len(&stderr_path);
        cmd.stdin(Stdio::null())
            .stdout(append(&stdout_path)?)
            .stderr(append(&stderr_path)?);
        detach(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {label}: {cmd:?}"))?;
        env.add_log(&format!("{label} stderr"), &stderr_path);
        env.add_log(&format!("{label} stdout"), &stdout_path);
        Ok(Proc {
            label: label.to_string(),
            child,
            stdout_path,
            stderr_path,
            stderr_start,
            stdout_start,
            status: None,
        })
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The exit status if the process has ended (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn signal(&mut self, sig: Signal) -> Result<()> {
        if self.exited().is_some() {
            bail!("{} already exited ({:?})", self.label, self.status);
        }
        kill(self.pid(), sig).with_context(|| format!("sending {sig} to {}", self.label))
    }

    /// Waits for the process to end.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                bail!("{} did not exit within {timeout:?}", self.label);
            }
            tokio::time::sleep(millis(50)).await;
        }
    }

    /// SIGKILL, then reap.
    pub async fn kill9(&mut self) -> Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait(secs(10)).await
    }

    /// SIGTERM, then wait for the exit.
    pub async fn term(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait(timeout).await
    }

    /// Everything this process wrote on stderr (not earlier runs sharing the file).
    pub fn stderr(&self) -> String {
        read_from(&self.stderr_path, self.stderr_start)
    }

    pub fn stdout(&self) -> String {
        read_from(&self.stdout_path, self.stdout_start)
    }

    /// Blocking stop used by Drop: SIGTERM to the group, up to 5 s, then SIGKILL to the group.
    fn stop_now(&mut self) {
        let pgid = self.pid();
        if self.exited().is_none() {
            let _ = killpg(pgid, Signal::SIGTERM);
            let start = Instant::now();
            while self.exited().is_none() && start.elapsed() < secs(5) {
                std::thread::sleep(millis(25));
            }
        }
        // Whatever is left in the group (e.g. the agent `hostward up` started).
        let _ = killpg(pgid, Signal::SIGKILL);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, for message checks.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn ok(self) -> Result<Output> {
        if !self.success() {
            bail!(
                "`{}` failed ({:?}):\nstdout: {}\nstderr: {}",
                self.command,
                self.code,
                tail(&self.stdout, 30),
                tail(&self.stderr, 30)
            );
        }
        Ok(self)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\nstdout: {}\nstderr: {}",
            self.command,
            self.code,
            tail(&self.stdout, 30),
            tail(&self.stderr, 30)
        )
    }
}

/// Runs a short-lived command to completion with optional stdin.
pub async fn run_cmd(program: &Path, args: &[String], stdin: Option<&str>) -> Result<Output> {
    run_cmd_timeout(program, args, stdin, CLI_TIMEOUT).await
}

/// As [`run_cmd`], killing the command after `timeout`.
pub async fn run_cmd_timeout(
    program: &Path,
    args: &[String],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output> {
    use tokio::io::AsyncWriteExt as _;
    let command = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut cmd = tokio::process::Command::new(program);
    for k in hostward_env() {
        cmd.env_remove(k);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning `{command}`"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .await
            .with_context(|| format!("writing stdin of `{command}`"))?;
        drop(pipe);
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("`{command}` did not finish within {timeout:?}"))??;
    Ok(Output {
        command,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Local accounts

/// A local account with a password (for attackers to guess, or checks to find); removed on drop.
pub struct User(pub String);

impl User {
    pub async fn add(name: &str, password: &str) -> Result<User> {
        run_cmd(
            Path::new("useradd"),
            &["-M".into(), "-s".into(), "/bin/bash".into(), name.into()],
            None,
        )
        .await?
        .ok()?;
        let user = User(name.to_string());
        run_cmd(
            Path::new("chpasswd"),
            &[],
            Some(&format!("{name}:{password}\n")),
        )
        .await?
        .ok()?;
        Ok(user)
    }

    /// A fresh name (`hw` + `prefix` + random hex) and a random strong password.
    pub async fn random(prefix: &str) -> Result<(User, String)> {
        let name = format!("hw{prefix}{:06x}", rand::random::<u32>() & 0xff_ffff);
        let password = format!(
            "Hw-{:08x}-{:08x}",
            rand::random::<u32>(),
            rand::random::<u32>()
        );
        Ok((User::add(&name, &password).await?, password))
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).output();
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// `HOSTWARD_TEST_POSTGRES_URL`, or None (with a message) when unset outside CI; an error in CI.
pub fn pg_admin_url() -> Result<Option<String>> {
    match std::env::var("HOSTWARD_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Ok(Some(u)),
        _ if is_ci() => bail!(
            "CI=true but HOSTWARD_TEST_POSTGRES_URL is not set: the PostgreSQL tests cannot be skipped in CI"
        ),
        _ => {
            eprintln!("SKIPPED (PostgreSQL part): HOSTWARD_TEST_POSTGRES_URL is not set");
            Ok(None)
        }
    }
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    pub async fn create(env: &TestEnv, admin_url: &str) -> Result<PgDatabase> {
        init();
        let name = format!("hw_e2e_{}", hex::encode(rand::random::<[u8; 6]>()));
        let url = hostward_store::admin::create_database(admin_url, &name)
            .await
            .with_context(|| format!("CREATE DATABASE {name} on HOSTWARD_TEST_POSTGRES_URL"))?;
        let db = PgDatabase {
            url,
            name,
            admin_url: admin_url.to_string(),
        };
        env.databases.lock().unwrap().push(db.clone());
        Ok(db)
    }

    async fn drop_database(&self) -> Result<()> {
        Ok(hostward_store::admin::drop_database(&self.admin_url, &self.name).await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Center

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct CenterOpts {
    pub heartbeat_secs: u64,
    /// Extra `serve` flags.
    pub extra_args: Vec<String>,
    /// The database to run on instead of a fresh one (e.g. a [`faults::PrivatePostgres`]).
    pub database_url: Option<String>,
}

impl Default for CenterOpts {
    fn default() -> Self {
        CenterOpts {
            heartbeat_secs: 1,
            extra_args: Vec::new(),
            database_url: None,
        }
    }
}

/// A running (or stopped) `hostward serve` with a superadmin `admin` and an API token for it.
pub struct Center {
    pub label: String,
    pub backend: Backend,
    /// Holds the data dir and the logs.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub port: u16,
    pub gateway_port: u16,
    pub ca_pem: String,
    pub http: reqwest::Client,
    /// API token of the superadmin `admin`.
    pub admin_token: String,
    opts: CenterOpts,
    proc: Option<Proc>,
}

/// HTTPS client trusting only `ca_pem`.
pub fn https_client(ca_pem: &str, cookies: bool) -> Result<reqwest::Client> {
    init();
    let tls = hostward_pki::client_config(ca_pem, None)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .cookie_store(cookies)
        .timeout(secs(30))
        .connect_timeout(secs(5))
        .build()
        .context("building the HTTPS client")
}

impl Center {
    /// Starts a center on a fresh data dir (and a fresh database for PostgreSQL), waits for
    /// `/healthz`, and creates the superadmin and its API token through the CLI.
    pub async fn start(env: &TestEnv, backend: Backend, opts: CenterOpts) -> Result<Center> {
        let dir = env.subdir("center");
        let data_dir = dir.join("data");
        let database_url = match (backend, opts.database_url.clone()) {
            (_, Some(url)) => url,
            (Backend::Sqlite, None) => format!("sqlite://{}/hostward.db", data_dir.display()),
            (Backend::Postgres, None) => {
                let admin = pg_admin_url()?.ok_or_else(|| {
                    anyhow!("a PostgreSQL center needs HOSTWARD_TEST_POSTGRES_URL")
                })?;
                PgDatabase::create(env, &admin).await?.url
            }
        };
        let mut center = Center {
            label: format!("center[{}]", dir.file_name().unwrap().to_string_lossy()),
            backend,
            dir,
            data_dir,
            database_url,
            port: 0,
            gateway_port: 0,
            ca_pem: String::new(),
            http: reqwest::Client::new(),
            admin_token: String::new(),
            opts,
            proc: None,
        };
        // A port taken between our check and the center's bind is retried with new ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            center.port = free_port();
            center.gateway_port = free_port();
            match center.spawn_and_wait(env).await {
                Ok(()) => break,
                Err(e)
                    if attempt < 3
                        && center
                            .stderr()
                            .to_lowercase()
                            .contains("address already in use") =>
                {
                    eprintln!("{}: port clash, retrying: {e:#}", center.label);
                    center.proc = None;
                }
                Err(e) => return Err(e),
            }
        }
        center
            .cli(&["project", "add", "default"], None)
            .await?
            .ok()?;
        center
            .cli(
                &[
                    "user",
                    "add",
                    ADMIN_USER,
                    "--superadmin",
                    "--password-stdin",
                ],
                Some(ADMIN_PASSWORD),
            )
            .await?
            .ok()?;
        let out = center
            .cli(
                &["api-token", "create", "--user", ADMIN_USER, "--name", "e2e"],
                None,
            )
            .await?
            .ok()?;
        center.admin_token =
            last_line(&out.stdout).ok_or_else(|| anyhow!("`api-token create` printed nothing"))?;
        Ok(center)
    }

    /// A second `hostward serve` on the same PostgreSQL database, sharing this center's CA files
    /// (as replicas do, from one secret volume), with its own data dir and ports. Its admin API
    /// token is this center's: tokens live in the database.
    pub async fn start_replica(&self, env: &TestEnv) -> Result<Center> {
        ensure!(
            self.backend == Backend::Postgres,
            "replicas share a PostgreSQL database"
        );
        let dir = env.subdir("replica");
        let data_dir = dir.join("data");
        std::fs::create_dir_all(&data_dir)?;
        for f in ["ca.crt", "ca.key"] {
            std::fs::copy(self.data_dir.join(f), data_dir.join(f))?;
        }
        let mut replica = Center {
            label: format!("center[{}]", dir.file_name().unwrap().to_string_lossy()),
            backend: self.backend,
            dir,
            data_dir,
            database_url: self.database_url.clone(),
            port: free_port(),
            gateway_port: free_port(),
            ca_pem: String::new(),
            http: reqwest::Client::new(),
            admin_token: self.admin_token.clone(),
            opts: self.opts.clone(),
            proc: None,
        };
        replica.spawn_and_wait(env).await?;
        Ok(replica)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn gateway_url(&self) -> String {
        format!(
            "wss://127.0.0.1:{}{}",
            self.gateway_port,
            hostward_proto::AGENT_WS_PATH
        )
    }

    /// Flags every command of the CLI takes to find the data.
    fn data_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--database-url".into(),
            self.database_url.clone(),
        ]
    }

    fn serve_command(&self) -> Result<Command> {
        let mut cmd = command(bin("hostward")?);
        cmd.arg("serve")
            .args(self.data_args())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--gateway-listen")
            .arg(format!("127.0.0.1:{}", self.gateway_port))
            .arg("--public-url")
            .arg(self.url())
            .arg("--heartbeat-secs")
            .arg(self.opts.heartbeat_secs.to_string())
            .arg("--agent-binary")
            .arg(bin("hostward-agent")?)
            .args(&self.opts.extra_args)
            .env("HOSTWARD_VULNDB_FETCH", "off") // no test reaches the internet's feeds
            .env("HOSTWARD_LOG", "info");
        Ok(cmd)
    }

    async fn spawn_and_wait(&mut self, env: &TestEnv) -> Result<()> {
        let cmd = self.serve_command()?;
        self.proc = Some(Proc::spawn(env, &self.label, cmd, &self.dir, "center")?);
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let start = Instant::now();
        let ca_path = self.data_dir.join("ca.crt");
        loop {
            if let Some(p) = self.proc.as_mut()
                && let Some(status) = p.exited()
            {
                bail!(
                    "{} exited during start-up ({status}):\n{}",
                    self.label,
                    tail(&p.stderr(), 40)
                );
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "{} did not answer GET /healthz with 200 within {START_TIMEOUT:?}",
                    self.label
                );
            }
            if self.ca_pem.is_empty()
                && let Ok(pem) = std::fs::read_to_string(&ca_path)
                && pem.contains("END CERTIFICATE")
            {
                self.http = https_client(&pem, false)?;
                self.ca_pem = pem;
            }
            if !self.ca_pem.is_empty()
                && let Ok(r) = self
                    .http
                    .get(format!("{}/healthz", self.url()))
                    .send()
                    .await
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            tokio::time::sleep(millis(100)).await;
        }
    }

    /// Stops the center with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let p = self
            .proc
            .as_mut()
            .ok_or_else(|| anyhow!("{} is not running", self.label))?;
        let status = p.term(secs(30)).await?;
        self.proc = None;
        Ok(status)
    }

    /// Starts the center again on the same data, database and ports.
    pub async fn restart(&mut self, env: &TestEnv) -> Result<()> {
        if self.proc.as_mut().is_some_and(|p| p.exited().is_none()) {
            bail!("{} is still running", self.label);
        }
        self.spawn_and_wait(env).await
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// Process id of the running center, for readings under /proc (peak RSS and the like).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.pid().as_raw() as u32)
    }

    /// The center's stderr (all runs).
    pub fn stderr(&self) -> String {
        read_from(&self.dir.join("center.stderr.log"), 0)
    }

    /// `hostward ARGS… --data-dir D --database-url URL`.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.data_args());
        run_cmd(&bin("hostward")?, &all, stdin).await
    }

    /// `--json` output of a CLI command, parsed.
    pub async fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let out = self.cli(args, None).await?.ok()?;
        serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("`{}` did not print JSON: {}", out.command, out.stdout))
    }

    /// Adds a user with a password (and optional project/role flags).
    pub async fn add_user(&self, name: &str, password: &str, extra: &[&str]) -> Result<()> {
        let mut args = vec!["user", "add", name];
        args.extend_from_slice(extra);
        args.push("--password-stdin");
        self.cli(&args, Some(password)).await?.ok()?;
        Ok(())
    }

    /// `hostward project add NAME` -> the project id.
    pub async fn add_project(&self, name: &str) -> Result<String> {
        let out = self.cli(&["project", "add", name], None).await?.ok()?;
        last_line(&out.stdout).ok_or_else(|| anyhow!("`project add` printed nothing"))
    }

    /// A new API token for `user`.
    pub async fn api_token(&self, user: &str) -> Result<String> {
        let out = self
            .cli(&["api-token", "create", "--user", user], None)
            .await?
            .ok()?;
        last_line(&out.stdout).ok_or_else(|| anyhow!("`api-token create` printed nothing"))
    }

    /// `hostward token create … --json`.
    pub async fn create_token(&self, extra: &[&str]) -> Result<EnrollToken> {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        args.push("--json");
        let v = self.cli_json(&args).await?;
        serde_json::from_value(v.clone())
            .with_context(|| format!("`token create --json` printed {v}"))
    }

    /// SHA-256 of the CA, as agents pin it.
    pub fn ca_fingerprint(&self) -> Result<String> {
        Ok(hostward_pki::fingerprint_sha256(&self.ca_pem)?)
    }

    /// PEM of the certificate the console/API port actually serves (read from a handshake: the
    /// admin CLI may rewrite `server.crt` on disk while the center keeps serving the old one).
    pub async fn server_cert_pem(&self) -> Result<String> {
        use base64::Engine as _;
        let cfg = hostward_pki::client_config(&self.ca_pem, None)?;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("IP server name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .context("TLS handshake with the console port")?;
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow!("no server certificate"))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let body: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        Ok(format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            body.join("\n")
        ))
    }

    /// API client with the superadmin's token.
    pub fn api(&self) -> Api {
        self.api_as(&self.admin_token)
    }

    pub fn api_as(&self, token: &str) -> Api {
        Api {
            base: self.url(),
            client: self.http.clone(),
            token: Some(token.to_string()),
        }
    }

    /// API client without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            base: self.url(),
            client: self.http.clone(),
            token: None,
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        self.metrics_via(&self.http).await
    }

    /// The `/metrics` text, fetched with `http` (e.g. a client bound to another source address).
    pub async fn metrics_via(&self, http: &reqwest::Client) -> Result<String> {
        let r = http.get(format!("{}/metrics", self.url())).send().await?;
        ensure!(
            r.status().as_u16() == 200,
            "GET /metrics answered {}",
            r.status()
        );
        Ok(r.text().await?)
    }

    /// The rows of one query on the center's database (read-only use in tests), with text
    /// binds; each column as JSON ([`hostward_store::admin::query`]).
    pub async fn query(&self, sql: &str, binds: &[&str]) -> Result<Vec<Vec<serde_json::Value>>> {
        hostward_store::admin::query(&self.database_url, sql, binds)
            .await
            .with_context(|| format!("query {sql} on {}", self.database_url))
    }

    /// One integer from a query such as `SELECT COUNT(*) AS n …`, with text binds.
    pub async fn query_i64(&self, sql: &str, binds: &[&str]) -> Result<i64> {
        let rows = self.query(sql, binds).await?;
        rows.first()
            .and_then(|row| row.first())
            .and_then(|v| v.as_i64())
            .ok_or_else(|| anyhow!("query {sql}: no integer in the first column: {rows:?}"))
    }

    /// Logs in through the console form with a fresh cookie jar.
    pub async fn console_login(&self, username: &str, password: &str) -> Result<Console> {
        let console = Console {
            base: self.url(),
            client: https_client(&self.ca_pem, true)?,
        };
        let page = console.get("/login").await?;
        ensure!(
            page.status == 200,
            "GET /login answered {}: {}",
            page.status,
            tail(&page.body, 20)
        );
        let mut fields = hidden_inputs(&page.body);
        fields.retain(|(k, _)| k != "username" && k != "password");
        fields.push(("username".into(), username.into()));
        fields.push(("password".into(), password.into()));
        let r = console.post_form("/login", &fields).await?;
        ensure!(
            r.status < 400 && !r.body.contains("id=\"login-error\""),
            "console login as {username} failed: {} {}",
            r.status,
            tail(&r.body, 20)
        );
        Ok(console)
    }
}

/// The answer of `hostward token create --json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct EnrollToken {
    pub id: String,
    pub secret: String,
    pub install_command: String,
    pub ca_sha256: String,
}

fn last_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// API client

/// An HTTP answer: status, raw body, and the body as JSON (`Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub what: String,
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// `error.code` of an error body.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn error_message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// Fails unless the status is `want`.
    pub fn expect(self, want: u16) -> Result<Resp> {
        ensure!(
            self.status == want,
            "{} answered {} (wanted {want}): {}",
            self.what,
            self.status,
            truncate(&self.text, 1500)
        );
        Ok(self)
    }

    pub fn expect_success(self) -> Result<Resp> {
        ensure!(
            (200..300).contains(&self.status),
            "{} answered {}: {}",
            self.what,
            self.status,
            truncate(&self.text, 1500)
        );
        Ok(self)
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.len() > n {
        format!("{}…", &s[..s.floor_char_boundary(n)])
    } else {
        s.to_string()
    }
}

/// REST client for `/api/v1`, with a bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    /// The id of user `name`, from the user list this caller sees.
    pub async fn user_id(&self, name: &str) -> Result<String> {
        let users = self.get("/api/v1/users").await?.expect(200)?;
        users.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["username"] == name)
            .and_then(|u| u["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no user {name} in {}", users.text))
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Resp> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.client.request(m, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let what = format!("{method} {path}");
        let r = req.send().await.with_context(|| what.clone())?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            what,
            status,
            text,
            json,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Resp> {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Resp> {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Resp> {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Resp> {
        self.send("DELETE", path, None).await
    }

    /// All servers the caller sees (`GET /api/v1/servers?per_page=100`).
    pub async fn servers(&self) -> Result<Vec<Value>> {
        let r = self
            .get("/api/v1/servers?per_page=100")
            .await?
            .expect(200)?;
        let items = r.json["items"]
            .as_array()
            .ok_or_else(|| anyhow!("GET /api/v1/servers: no items array: {}", r.text))?;
        Ok(items.clone())
    }

    /// `GET /api/v1/servers/{id}` -> the `server` object.
    pub async fn server(&self, id: &str) -> Result<Value> {
        let r = self
            .get(&format!("/api/v1/servers/{id}"))
            .await?
            .expect(200)?;
        Ok(server_of(&r.json).clone())
    }

    /// `GET /api/v1/servers/{id}`, whole body (server + history).
    pub async fn server_detail(&self, id: &str) -> Result<Value> {
        Ok(self
            .get(&format!("/api/v1/servers/{id}"))
            .await?
            .expect(200)?
            .json)
    }

    /// Waits until server `id` satisfies `pred`; the timeout error shows its last status.
    pub async fn wait_server(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait_until(what, timeout, millis(200), || async {
            let s = self.server(id).await?;
            if pred(&s) {
                Ok(s)
            } else {
                Err(anyhow!("{}", status_line(&s)))
            }
        })
        .await
    }

    /// Waits until server `id` has this agent status (and reason, when given).
    pub async fn wait_status(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
        timeout: Duration,
    ) -> Result<Value> {
        let what = format!(
            "server {id} to be {status}{}",
            reason.map(|r| format!("/{r}")).unwrap_or_default()
        );
        self.wait_server(id, &what, timeout, |s| {
            s["agent_status"] == status && reason.is_none_or(|r| s["agent_reason"] == r)
        })
        .await
    }
}

/// The server object of a detail answer, which may be `{server:{…}, history}` or the server itself.
pub fn server_of(v: &Value) -> &Value {
    if v["server"].is_object() {
        &v["server"]
    } else {
        v
    }
}

/// `name: agent_status/agent_reason protection_status risk_status` for messages.
pub fn status_line(s: &Value) -> String {
    format!(
        "{} ({}): agent {}/{} protection {}/{} risk {} last_seen {}",
        s["name"].as_str().unwrap_or("?"),
        s["id"].as_str().unwrap_or("?"),
        s["agent_status"].as_str().unwrap_or("?"),
        s["agent_reason"].as_str().unwrap_or(""),
        s["protection_status"].as_str().unwrap_or("?"),
        s["protection_reason"].as_str().unwrap_or(""),
        s["risk_status"].as_str().unwrap_or("?"),
        s["last_seen_at"]
    )
}

// ---------------------------------------------------------------------------------------------
// Console over plain HTTP (reqwest with a cookie jar)

/// A logged-in (or not) console session: reqwest with a cookie store.
pub struct Console {
    pub base: String,
    pub client: reqwest::Client,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
}

impl Console {
    pub async fn get(&self, path: &str) -> Result<Page> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = r.status().as_u16();
        let url = r.url().to_string();
        Ok(Page {
            status,
            url,
            body: r.text().await.unwrap_or_default(),
        })
    }

    /// Posts a urlencoded form exactly as given (no CSRF field added).
    pub async fn post_form(&self, path: &str, fields: &[(String, String)]) -> Result<Page> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status().as_u16();
        let url = r.url().to_string();
        Ok(Page {
            status,
            url,
            body: r.text().await.unwrap_or_default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Agent

// ---------------------------------------------------------------------------------------------
// Metrics

/// Sum of the samples of `name` whose labels include every `(key, value)` of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if !labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}
