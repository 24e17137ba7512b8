//! `hostward-scanner`: `scan` walks paths with the shipped rules, imported rule files and hash
//! lists and prints one JSON line per file with a detection or a skip, progress lines and a
//! summary (resumable through `--state`, throttled by `--cpu-percent`, memory capped by
//! `--memory-mib`); `check` compiles rule files and hash lists and says whether they are good
//! (the center runs it before it takes an import); `serve` answers one scanned path per stdin
//! line (the agent's real-time worker).

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use hostward_scanner::archive::Limits;
use hostward_scanner::engine::{Engine, FileReport};
use hostward_scanner::indicators::Indicators;
use hostward_scanner::walk::{Checkpoint, Walk};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    name = "hostward-scanner",
    version,
    about = "Hostward's malware scanner: YARA rules (the shipped set plus imported files) and hash lists over files and the archives in them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan files and directories; exit 1 when something was found, 2 on bad rules or lists.
    Scan(ScanArgs),
    /// Compile rule files and hash lists and say whether they are good (exit 0) or not (exit
    /// 2, the reason on stderr naming file, line and column).
    Check(RuleArgs),
    /// Read one path per line on stdin and answer each with its report as one JSON line.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
struct RuleArgs {
    /// YARA rule files to use beside the shipped rules (each in a namespace of its own).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Hash indicator lists (`<sha256 or md5 hex> [name]` per line).
    #[arg(long = "hashes", value_name = "FILE")]
    hashes: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct EngineArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Archives within archives looked into (the file itself is depth 0).
    #[arg(long, default_value_t = Limits::default().max_depth)]
    max_depth: u32,
    /// Do not look into archives.
    #[arg(long)]
    no_unpack: bool,
    /// Files larger than this many MiB are skipped with a reason.
    #[arg(long, default_value_t = 64)]
    max_file_mib: u64,
    /// ClamAV's clamd as a second engine, for the formats only it opens: its socket, or `auto`
    /// (the one /etc/clamav/clamd.conf names or the usual places, when a clamd listens there;
    /// none otherwise).
    #[arg(long, value_name = "SOCKET|auto")]
    clamd: Option<String>,
    /// The process's memory cap in MiB (its data segment, RLIMIT_DATA); file, member and
    /// archive sizes read at once are bounded to fit in it. 0: no cap.
    #[arg(long, default_value_t = 0)]
    memory_mib: u64,
}

#[derive(Args, Debug)]
struct ScanArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Paths left out with all below them.
    #[arg(long = "exclude", value_name = "PATH")]
    exclude: Vec<PathBuf>,
    /// Where the scan keeps its checkpoint and counters; a scan started with a state file
    /// that exists goes on from it, and a finished scan removes it.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// CPU to use, percent of one core (sleeps between files to keep to it). 100: no limit.
    #[arg(long, default_value_t = 100)]
    cpu_percent: u32,
    /// Print a `progress` line every second.
    #[arg(long)]
    progress: bool,
    /// Files scanned at once, each on a thread of its own; above 1, an archive of 1 MiB or
    /// more is also expanded on a thread of its own while its members are scanned.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Files or directories (walked in name order, symlinks not followed, other filesystems
    /// not entered).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    engine: EngineArgs,
}

/// A scan's counters and checkpoint, as kept in `--state` and printed in the summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Summary {
    files: u64,
    bytes: u64,
    detections: u64,
    skipped: u64,
    unreadable: u64,
    /// CPU seconds over every run of this scan.
    cpu_secs: f64,
    secs: f64,
    /// Runs that went on from a checkpoint.
    resumed: u32,
    started: i64,
    #[serde(default)]
    checkpoint: Checkpoint,
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn cap_memory(mib: u64) -> Result<(), String> {
    if mib == 0 {
        return Ok(());
    }
    let lim = libc::rlimit {
        rlim_cur: mib << 20,
        rlim_max: mib << 20,
    };
    // SAFETY: plain setrlimit on this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &lim) } != 0 {
        return Err(format!("memory cap: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The engine for `a`, scanning on `threads` threads at once.
fn engine(a: &EngineArgs, threads: usize) -> Result<Engine, String> {
    let mut imported = Vec::new();
    for f in &a.rules.rules {
        let t = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        imported.push((f.display().to_string(), t));
    }
    let rules =
        hostward_scanner::rules::compile(&imported).map_err(|e| format!("rules refused: {e}"))?;
    let mut indicators = Indicators::default();
    for f in &a.rules.hashes {
        std::fs::read_to_string(f)
            .map_err(|e| format!("{}: {e}", f.display()))
            .and_then(|t| indicators.add(&f.display().to_string(), &t))
            .map_err(|e| format!("hashes refused: {e}"))?;
    }
    let mut limits = Limits {
        max_depth: if a.no_unpack { 0 } else { a.max_depth },
        ..Limits::default()
    };
    let mut max_file = a.max_file_mib << 20;
    if a.memory_mib > 0 {
        // What is read at once, on each thread: the file, then an archive's members
        // together; the rest of the cap is the rules' and the allocator's.
        let m = (a.memory_mib << 20) / threads as u64;
        max_file = max_file.min(m / 4);
        limits.max_total = limits.max_total.min(m / 4);
        limits.max_member = limits.max_member.min(m / 4);
    }
    let clamd = match a.clamd.as_deref() {
        None => None,
        Some("auto") => hostward_scanner::clamd::find(Path::new("/")),
        Some(p) => Some(PathBuf::from(p)),
    }
    .map(|socket| hostward_scanner::clamd::Clamd { socket });
    Ok(Engine {
        rules,
        indicators,
        limits,
        max_file,
        clamd,
        read_ahead: threads > 1,
    })
}

/// Prints one JSON line. Whoever reads us is gone when it fails (the agent stopped or was
/// killed): the scan ends rather than read a whole host for no one.
fn print(v: &impl Serialize) {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, v)
        .map_err(std::io::Error::other)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    if written.is_err() {
        std::process::exit(3);
    }
}

fn save(state: &Path, s: &Summary) {
    let tmp = state.with_extension("tmp");
    let ok = serde_json::to_vec(s)
        .ok()
        .and_then(|b| std::fs::write(&tmp, b).ok())
        .and_then(|_| std::fs::rename(&tmp, state).ok());
    if ok.is_none() {
        eprintln!("{}: the checkpoint could not be written", state.display());
    }
}

fn scan(a: ScanArgs) -> ExitCode {
    let e = match cap_memory(a.engine.memory_mib)
        .and_then(|_| engine(&a.engine, a.threads.clamp(1, 64)))
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut sum: Summary = a
        .state
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if sum.started != 0 {
        sum.resumed += 1;
    } else {
        sum.started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
    }
    let (cpu0, secs0) = (sum.cpu_secs, sum.secs);
    let t0 = Instant::now();
    let (mut last_save, mut last_progress) = (t0, t0);
    let cap = a.cpu_percent.clamp(1, 100) as f64 / 100.0;
    let threads = a.threads.clamp(1, 64);
    let from = sum.checkpoint.clone();
    let walk = Walk {
        roots: &a.paths,
        exclude: &a.exclude,
    };
    // The walk feeds numbered files to the threads; the checkpoint moves over the files
    // finished in walk order, so a resume never skips one a thread had not finished.
    let (todo_tx, todo_rx) = std::sync::mpsc::sync_channel::<(u64, usize, PathBuf)>(256);
    let todo_rx = std::sync::Mutex::new(todo_rx);
    let (done_tx, done_rx) =
        std::sync::mpsc::channel::<(u64, usize, PathBuf, std::io::Result<FileReport>)>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut seq = 0u64;
            walk.run(&from, &mut |root, f| {
                seq += 1;
                todo_tx.send((seq, root, f.to_path_buf())).is_ok()
            });
        });
        for _ in 0..threads {
            let (e, rx, tx) = (&e, &todo_rx, done_tx.clone());
            scope.spawn(move || {
                let mut session = e.session();
                loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    let Some((seq, root, f)) = next else {
                        return;
                    };
                    let r = e.scan_file(&mut session, &f);
                    if tx.send((seq, root, f, r)).is_err() {
                        return;
                    }
                    if cap < 1.0 {
                        // Sleep until the process's CPU is `cap` of this run's wall time.
                        let ahead = cpu_secs() / cap - t0.elapsed().as_secs_f64();
                        if ahead > 0.0 {
                            std::thread::sleep(Duration::from_secs_f64(ahead.min(5.0)));
                        }
                    }
                }
            });
        }
        drop(done_tx);
        let mut next = 1u64;
        // Files finished out of walk order wait here, with what they add to the counters,
        // until every file before them is finished: the saved counters are then exactly
        // those of the files up to the checkpoint, and a resume counts no file twice.
        let mut finished: std::collections::BTreeMap<u64, (usize, PathBuf, Summary)> =
            Default::default();
        for (seq, root, f, r) in done_rx {
            let mut add = Summary::default();
            match r {
                Ok(r) => {
                    add.files = 1;
                    add.bytes = r.scanned_bytes;
                    add.detections = u64::from(!r.detections.is_empty());
                    add.skipped = r.skipped.len() as u64;
                    if !r.detections.is_empty() || !r.skipped.is_empty() {
                        print(&r);
                    }
                }
                Err(err) => {
                    add.unreadable = 1;
                    eprintln!("{}: {err}", f.display());
                }
            }
            finished.insert(seq, (root, f, add));
            while let Some((root, f, add)) = finished.remove(&next) {
                sum.files += add.files;
                sum.bytes += add.bytes;
                sum.detections += add.detections;
                sum.skipped += add.skipped;
                sum.unreadable += add.unreadable;
                sum.checkpoint = Checkpoint {
                    root,
                    after: Some(f),
                };
                next += 1;
            }
            let now = Instant::now();
            if a.progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
                last_progress = now;
                let current = sum
                    .checkpoint
                    .after
                    .as_ref()
                    .map(|p| p.display().to_string());
                print(
                    &serde_json::json!({"progress": {"files": sum.files, "bytes": sum.bytes, "detections": sum.detections, "current": current}}),
                );
            }
            if let Some(st) = &a.state
                && now.duration_since(last_save) >= Duration::from_secs(2)
            {
                last_save = now;
                sum.cpu_secs = cpu0 + cpu_secs();
                sum.secs = secs0 + t0.elapsed().as_secs_f64();
                save(st, &sum);
            }
        }
    });
    sum.cpu_secs = cpu0 + cpu_secs();
    sum.secs = secs0 + t0.elapsed().as_secs_f64();
    if let Some(st) = &a.state {
        let _ = std::fs::remove_file(st);
    }
    let found = sum.detections;
    print(&serde_json::json!({ "summary": sum }));
    if found > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn check(a: RuleArgs) -> ExitCode {
    let args = EngineArgs {
        rules: a,
        max_depth: 0,
        no_unpack: true,
        max_file_mib: 1,
        memory_mib: 0,
        clamd: None,
    };
    match engine(&args, 1) {
        Ok(e) => {
            print(
                &serde_json::json!({"ok": true, "rules": e.rules.count(), "indicators": e.indicators.len()}),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Serialize)]
struct Failed<'a> {
    path: &'a str,
    error: String,
}

fn serve(a: ServeArgs) -> ExitCode {
    let e = match cap_memory(a.engine.memory_mib).and_then(|_| engine(&a.engine, 1)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut scanner = e.session();
    print(
        &serde_json::json!({"ready": true, "rules": e.rules.count(), "indicators": e.indicators.len(), "clamd": e.clamd.as_ref().map(|c| c.socket.display().to_string())}),
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(path) = line else {
            break;
        };
        match e.scan_file(&mut scanner, Path::new(&path)) {
            Ok(r) => print(&r),
            Err(err) => print(&Failed {
                path: &path,
                error: err.to_string(),
            }),
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Scan(a) => scan(a),
        Command::Check(a) => check(a),
        Command::Serve(a) => serve(a),
    }
}
