//! Fault injection for the end-to-end tests: a private PostgreSQL instance a test may stop and
//! start without disturbing the others, a small tmpfs a test may fill to the last byte, and a
//! `kill -9` of a center.
//!
//! Everything here needs root (initdb as `postgres`, `mount`), as the e2e tests run.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::*;

/// Directory of the PostgreSQL server binaries: `HOSTWARD_E2E_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
pub fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("HOSTWARD_E2E_PG_BIN") {
        return Ok(d.into());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("listing /usr/lib/postgresql (set HOSTWARD_E2E_PG_BIN)")?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| anyhow!("no /usr/lib/postgresql/*/bin/initdb (set HOSTWARD_E2E_PG_BIN)"))
}

/// A PostgreSQL server of the test's own, on a fresh cluster in a temp dir owned by `postgres`,
/// listening on 127.0.0.1 only (trust auth). [`PrivatePostgres::stop`] takes the database away
/// from whatever uses it; [`PrivatePostgres::restart`] brings it back on the same port and data.
/// Dropped: fast shutdown, then the temp dir goes.
pub struct PrivatePostgres {
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    bin: PathBuf,
    /// Owned by `postgres`: the test's own temp dir is root's and closed to others.
    dir: tempfile::TempDir,
    /// Where the server's logs go (under the test's dir, shown on failure).
    log_dir: PathBuf,
    proc: Option<Proc>,
}

impl PrivatePostgres {
    /// `initdb` as `postgres` into a new temp dir, then starts the server and waits until it
    /// accepts connections.
    pub async fn start(env: &TestEnv) -> Result<PrivatePostgres> {
        let bin = pg_bin_dir()?;
        let user = nix::unistd::User::from_name("postgres")?
            .ok_or_else(|| anyhow!("there is no `postgres` user to run PostgreSQL as"))?;
        let dir = tempfile::Builder::new()
            .prefix("hw-e2e-pg-")
            .tempdir()
            .context("creating the PostgreSQL temp dir")?;
        std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .context("handing the PostgreSQL temp dir to postgres")?;
        let log_dir = env.subdir("postgres");
        let data = dir.path().join("data").display().to_string();
        let initdb = bin.join("initdb").display().to_string();
        let args = [
            "-u", "postgres", "--", &initdb, "-D", &data, "-U", "postgres",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.extend(["--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"].map(String::from));
        let out = run_cmd(Path::new("runuser"), &args, None).await?;
        let _ = std::fs::write(log_dir.join("initdb.log"), out.to_string());
        env.add_log("initdb", &log_dir.join("initdb.log"));
        out.ok()?;
        let port = free_port();
        let mut pg = PrivatePostgres {
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            dir,
            log_dir,
            proc: None,
        };
        pg.restart(env).await?;
        Ok(pg)
    }

    /// Starts the server (again) on the same data dir and port; waits until it is ready.
    pub async fn restart(&mut self, env: &TestEnv) -> Result<()> {
        ensure!(self.proc.is_none(), "PostgreSQL is already running");
        let user = nix::unistd::User::from_name("postgres")?
            .ok_or_else(|| anyhow!("there is no `postgres` user"))?;
        let data = self.dir.path().join("data");
        // Run directly as postgres (not through runuser) so that the child is the postmaster
        // itself: signals reach it unchanged and it dies with the test process.
        let mut cmd = command(self.bin.join("postgres"));
        cmd.uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir(&data)
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ));
        let proc = Proc::spawn(env, "postgres", cmd, &self.log_dir, "postgres")?;
        self.proc = Some(proc);
        let start = Instant::now();
        let isready = self.bin.join("pg_isready");
        let args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        loop {
            if let Some(status) = self.proc.as_mut().and_then(Proc::exited) {
                let log = self.proc.take().map(|p| p.stderr()).unwrap_or_default();
                bail!("postgres exited at start ({status}):\n{}", tail(&log, 30));
            }
            if run_cmd(&isready, &args, None).await?.success() {
                return Ok(());
            }
            ensure!(
                start.elapsed() < secs(60),
                "PostgreSQL on port {} was not ready within 60 s",
                self.port
            );
            tokio::time::sleep(millis(100)).await;
        }
    }

    /// A `psql` session holding an ACCESS EXCLUSIVE lock on `table` until it is killed (on drop)
    /// or PostgreSQL stops; returns once the lock is held. Writers of the table then wait in the
    /// middle of their transactions, where a stop of the server catches them for sure.
    pub async fn lock_table(&self, env: &TestEnv, table: &str) -> Result<Proc> {
        let mut cmd = command(self.bin.join("psql"));
        cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
            ));
        let proc = Proc::spawn(env, "psql lock", cmd, &self.log_dir, "psql-lock")?;
        let sql = "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                   WHERE c.relname = $1 AND l.mode = 'AccessExclusiveLock' AND l.granted";
        wait_until(
            &format!("the lock on {table}"),
            secs(30),
            millis(50),
            || async {
                let rows = hostward_store::admin::query(&self.url, sql, &[table]).await?;
                let n = rows.first().and_then(|r| r.first()).and_then(Value::as_i64);
                ensure!(n > Some(0), "not held yet: {rows:?}");
                Ok(())
            },
        )
        .await?;
        Ok(proc)
    }

    /// Fast shutdown (SIGINT: sessions are cut, as when the database host goes away) and waits
    /// for the server to exit.
    pub async fn stop(&mut self) -> Result<()> {
        let mut proc = self
            .proc
            .take()
            .ok_or_else(|| anyhow!("PostgreSQL is not running"))?;
        proc.signal(Signal::SIGINT)?;
        proc.wait(secs(30)).await?;
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // A fast shutdown first, so no shared memory or socket is left behind; Proc's own drop
        // then kills whatever remains.
        if let Some(p) = self.proc.as_mut()
            && p.signal(Signal::SIGINT).is_ok()
        {
            let start = Instant::now();
            while p.exited().is_none() && start.elapsed() < secs(10) {
                std::thread::sleep(millis(50));
            }
        }
        self.proc = None;
    }
}

/// A tmpfs of a given size mounted on a dir; unmounted on drop (lazily, should a process still
/// hold a file in it).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// `mount -t tmpfs -o size=<size>,mode=0700 tmpfs <path>` (the dir is created).
    pub async fn mount(path: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        let args: Vec<String> = [
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path.display().to_string()])
        .collect();
        run_cmd(Path::new("mount"), &args, None).await?.ok()?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .output();
    }
}

/// Appends zeros to `file` until the filesystem answers ENOSPC; returns the file's size then.
/// The file is kept: the filesystem stays full until it is deleted or cut.
pub fn fill_disk(file: &Path) -> Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(e).with_context(|| format!("filling {}", file.display())),
        }
    }
    // A chunk cut short leaves a few bytes: one byte at a time takes the last of them.
    while f.write_all(&[0]).is_ok() {}
    Ok(f.metadata()?.len())
}

impl Center {
    /// `kill -9` of the center (no shutdown of any kind), then reaps it.
    pub async fn kill9(&mut self) -> Result<ExitStatus> {
        let p = self
            .proc
            .as_mut()
            .ok_or_else(|| anyhow!("{} is not running", self.label))?;
        let status = p.kill9().await?;
        self.proc = None;
        Ok(status)
    }
}
