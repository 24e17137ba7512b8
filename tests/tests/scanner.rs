//! The malware scanner on real files (issue 16: the engine and its CLI): EICAR
//! plain, zipped, inside a tar.gz and inside a nested zip (the archives made by Python's own
//! zipfile and tarfile), Debian's clamav-testfiles in the formats it unpacks, a zip bomb skipped
//! with a reason while the scanner's peak memory stays small, zero detections on this system's
//! /usr/bin and /usr/lib with the shipped rules, and a malformed rule file refused naming its
//! line and column. With a clamd of the test's own as the second engine, every one of the
//! clamav-testfiles is detected.

use std::path::Path;

use hostward_e2e::lab::require_tools;
use hostward_e2e::samples;
use hostward_e2e::*;
use serde_json::Value;

/// Runs the scanner; returns its JSON lines (the summary last) and the exit code.
async fn scan(args: &[String]) -> Result<(Vec<Value>, Option<i32>, String)> {
    // A whole system's libraries take minutes in a debug build.
    let mut all = vec!["scan".to_string()];
    all.extend_from_slice(args);
    let out = run_cmd_timeout(&bin("hostward-scanner")?, &all, None, secs(1200)).await?;
    let lines = out
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<Vec<Value>, _>>()
        .with_context(|| format!("scanner output: {}", out.stdout))?;
    Ok((lines, out.code, out.stderr))
}

fn detections(lines: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lines
        .iter()
        .flat_map(|l| l["detections"].as_array().cloned().unwrap_or_default())
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_string(),
                d["family"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

struct Clamd {
    socket: std::path::PathBuf,
    _proc: Proc,
}

/// A clamd of the test's own, with the shipped rules as its only database (ClamAV reads YARA
/// files): nothing is downloaded, and what it finds is named by our rules.
async fn start_clamd(env: &TestEnv) -> Result<Clamd> {
    require_tools(&["clamd"]).await?;
    let dir = env.subdir("clamd");
    let db = dir.join("db");
    std::fs::create_dir_all(&db)?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/yara/hostward.yar");
    std::fs::copy(&rules, db.join("hostward.yar"))?;
    let socket = dir.join("clamd.sock");
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "LocalSocket {}\nForeground yes\nDatabaseDirectory {}\nUser root\nLogFile {}\n",
            socket.display(),
            db.display(),
            dir.join("clamd.log").display()
        ),
    )?;
    let mut c = command("/usr/sbin/clamd");
    c.arg("-c").arg(&conf);
    let p = Proc::spawn(env, "clamd", c, &dir, "clamd")?;
    wait_until("clamd listening", secs(120), millis(200), || async {
        ensure!(socket.exists(), "no socket yet");
        Ok(())
    })
    .await?;
    Ok(Clamd { socket, _proc: p })
}

/// Peak resident memory of the largest child this process waited for, in KiB.
fn children_peak_kib() -> i64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
}

#[tokio::test]
async fn test_files_are_found_in_archives_bombs_skipped_and_the_system_is_clean() -> Result<()> {
    let env = TestEnv::new("scanner");
    env.run(async {
        let dir = env.subdir("samples");
        let bomb = env.subdir("bomb").join("bomb.zip");
        samples::eicar_samples(&dir).await?;
        samples::zip_bomb(&bomb).await?;
        let d = dir.display().to_string();
        let (lines, code, _) = scan(std::slice::from_ref(&d)).await?;
        let want: Vec<(String, String)> = [
            format!("{d}/eicar.com"),
            format!("{d}/eicar.tar.gz!eicar.tar!x/eicar.com"),
            format!("{d}/eicar.zip!eicar.com"),
            format!("{d}/nested.zip!inner.zip!eicar.com"),
        ]
        .into_iter()
        .map(|p| (p, "EICAR test file".to_string()))
        .collect();
        ensure!(detections(&lines) == want, "{lines:?}");
        ensure!(code == Some(1), "exit 1 when something is found: {code:?}");
        ensure!(lines.last().is_some_and(|s| s["summary"]["files"] == 5), "{lines:?}");

        // A 1 GiB member in a 1 MiB zip: skipped with a reason, never expanded, the scanner
        // within the memory cap the agent gives it.
        let before = children_peak_kib();
        let (lines, code, _) = scan(&["--memory-mib".into(), "128".into(), bomb.display().to_string()]).await?;
        let peak = children_peak_kib().max(before);
        let skipped = lines[0]["skipped"].to_string();
        ensure!(skipped.contains("bomb") && skipped.contains("zeros.bin"), "{lines:?}");
        ensure!(code == Some(0), "nothing found: {code:?}");
        println!("zip bomb ({} bytes, 1 GiB inside): skipped as {skipped}; the scanner's peak RSS at most {peak} KiB", std::fs::metadata(&bomb)?.len());
        ensure!(peak < 128 * 1024, "peak RSS {peak} KiB over the 128 MiB cap");

        // ClamAV's test files, in the formats the scanner unpacks.
        let clam = Path::new("/usr/share/clamav-testfiles");
        ensure!(clam.is_dir(), "{} missing: apt-get install clamav-testfiles (.ci/run does)", clam.display());
        {
            let (lines, _, _) = scan(&[clam.display().to_string()]).await?;
            let found = detections(&lines);
            let total = std::fs::read_dir(clam)?.count();
            let mut files: Vec<&str> = found
                .iter()
                .filter_map(|(p, _)| p.rsplit('/').next()?.split('!').next())
                .collect();
            files.dedup();
            println!("clamav-testfiles: {} of {total} files detected (the rest need unpackers the scanner does not have: UPX and other packers, 7z, arj, bzip2, rtf, mail encodings; or clamd): {files:?}", files.len());
            for f in ["clam.exe", "clam.zip", "clam.tar.gz"] {
                ensure!(found.iter().any(|(p, fam)| p.starts_with(&format!("{}/{f}", clam.display())) && fam == "ClamAV test file"), "{f}: {found:?}");
            }
            // With a clamd as the second engine (ours, with our rules as its database), the
            // formats only ClamAV opens are covered too: every file is detected.
            let clamd = start_clamd(&env).await?;
            let (lines, _, _) = scan(&["--clamd".into(), clamd.socket.display().to_string(), clam.display().to_string()]).await?;
            let mut flagged: Vec<String> = lines.iter().filter(|l| l["detections"].as_array().is_some_and(|d| !d.is_empty())).filter_map(|l| l["path"].as_str().map(String::from)).collect();
            flagged.sort();
            let by_clamd = lines.iter().flat_map(|l| l["detections"].as_array().cloned().unwrap_or_default()).filter(|d| d["engine"] == "clamd" && d["family"] == "ClamAV test file").count();
            println!("clamav-testfiles with clamd: {} of {total} files detected ({by_clamd} detections by clamd, named by our rule)", flagged.len());
            ensure!(flagged.len() == total, "every test file: {flagged:?}");
        }

        // The shipped rules on this system, and on Hostward's own programs (which carry the
        // names of what they look for: the scanner its rules, the agent its miner
        // indicators): not one detection. Debug builds are large: no size cap.
        let mut benign = vec!["--max-file-mib".to_string(), "512".into(), "/usr/bin".into(), "/usr/lib".into()];
        for b in ["hostward", "hostward-agent", "hostward-scanner"] {
            benign.push(bin(b)?.display().to_string());
        }
        let (lines, _, _) = scan(&benign).await?;
        let found = detections(&lines);
        let summary = lines.last().cloned().unwrap_or_default();
        println!("benign corpus /usr/bin + /usr/lib + hostward, hostward-agent, hostward-scanner: {summary}");
        ensure!(found.is_empty(), "false positives: {found:?}");
        ensure!(summary["summary"]["files"].as_u64() > Some(500), "{summary}");

        // A malformed rule file: refused with its line and column; nothing is scanned.
        let bad = env.subdir("rules").join("bad.yar");
        std::fs::write(&bad, "rule ok { condition: true }\n\nrule broken {\n  strings:\n    $a = \"x\"\n  condition:\n    $a and $b\n}\n")?;
        let out = run_cmd(&bin("hostward-scanner")?, &["scan".into(), "--rules".into(), bad.display().to_string(), d.clone()], None).await?;
        ensure!(out.code == Some(2), "{out}");
        ensure!(out.stderr.contains(&format!("rules refused: {}:7:12:", bad.display())), "{}", out.stderr);
        ensure!(out.stdout.is_empty(), "nothing scanned: {}", out.stdout);
        // `check`, as the center runs it before taking an import: the same answer, and a
        // good file passes.
        let out = run_cmd(&bin("hostward-scanner")?, &["check".into(), "--rules".into(), bad.display().to_string()], None).await?;
        ensure!(out.code == Some(2) && out.stderr.contains(":7:12:"), "{out}");
        let good = env.subdir("rules").join("good.yar");
        std::fs::write(&good, "rule marker { strings: $a = \"hostward-test-marker\" condition: $a }\n")?;
        let out = run_cmd(&bin("hostward-scanner")?, &["check".into(), "--rules".into(), good.display().to_string()], None).await?;
        ensure!(out.code == Some(0) && out.stdout.contains("\"ok\":true"), "{out}");
        Ok(())
    })
    .await
}
