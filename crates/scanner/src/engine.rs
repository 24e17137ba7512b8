//! Scanning one file: its bytes against the rules and the hash indicators, then, when it is an
//! archive, each member the same way, down to the depth limit. What could not be looked into
//! (a bomb, a broken archive, a file over the size cap) is reported as skipped with a reason,
//! never as clean.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use sha2::Digest as _;

use crate::archive::{self, Limits};
use crate::indicators::Indicators;

/// Bytes of one file read at most, whatever the caller asks; a larger file is skipped with a
/// reason.
pub const MAX_FILE: u64 = 512 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// The file, and `!member` for each archive level it is inside.
    pub path: String,
    /// `yara`, or `sha256`/`md5` for a hash indicator.
    pub engine: String,
    /// The rule's name (`namespace.rule`), or the indicator's name.
    pub rule: String,
    /// The malware family the rule names.
    pub family: String,
    pub severity: String,
    /// SHA-256 of the bytes that matched (the member, for one inside an archive).
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: u64,
    /// SHA-256 of the file; empty when nothing was found in it (not computed).
    pub sha256: String,
    pub detections: Vec<Detection>,
    /// What was not looked into, with why.
    pub skipped: Vec<String>,
    /// Bytes scanned, archive members included.
    pub scanned_bytes: u64,
}

pub struct Engine {
    pub rules: crate::rules::RuleSet,
    pub indicators: Indicators,
    pub limits: Limits,
    /// Files larger than this are skipped with a reason (at most [`MAX_FILE`]).
    pub max_file: u64,
    /// The host's clamd, for the formats only it opens.
    pub clamd: Option<crate::clamd::Clamd>,
    /// Whether a file that is an archive of at least [`READ_AHEAD_MIN`] bytes is expanded on a
    /// thread of its own while two threads scan its members: expanding costs about what
    /// scanning does, and one large archive would otherwise keep a scan on one core.
    pub read_ahead: bool,
}

/// Archives smaller than this are expanded on the scanning thread (a thread costs more than
/// they take).
pub const READ_AHEAD_MIN: usize = 1 << 20;

/// Members expanded ahead of the scan at most (memory: this many members and the two being
/// scanned, each within the member cap).
const READ_AHEAD_MEMBERS: usize = 2;

fn meta(rule: &yara_x::Rule, key: &str) -> Option<String> {
    rule.metadata().find_map(|(k, v)| match v {
        yara_x::MetaValue::String(s) if k == key => Some(s.to_string()),
        _ => None,
    })
}

/// One thread's scanners (one per rule group) and its read buffer, kept across files: a fresh
/// buffer per file would cost the kernel's page clearing every time.
pub struct Session<'r> {
    /// With whether the group can match an ELF file.
    scanners: Vec<(yara_x::Scanner<'r>, bool)>,
    buf: Vec<u8>,
}

/// Capacity kept in a session's buffer between files.
const KEEP_BUFFER: usize = 16 << 20;

fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

impl Engine {
    pub fn session(&self) -> Session<'_> {
        Session {
            scanners: self
                .rules
                .groups
                .iter()
                .map(|g| (yara_x::Scanner::new(&g.rules), g.elf))
                .collect(),
            buf: Vec::new(),
        }
    }

    /// Reads and scans the file at `path` (not following a final symlink).
    pub fn scan_file(&self, s: &mut Session, path: &Path) -> std::io::Result<FileReport> {
        let f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        let label = path.display().to_string();
        let max = self.max_file.min(MAX_FILE);
        if size > max {
            return Ok(FileReport {
                path: label,
                size,
                skipped: vec![format!("larger than {max} bytes")],
                ..Default::default()
            });
        }
        let mut data = std::mem::take(&mut s.buf);
        data.clear();
        let read = f.take(max).read_to_end(&mut data);
        let report = read.map(|_| self.scan_bytes(s, &label, &data));
        if data.capacity() <= KEEP_BUFFER {
            s.buf = data;
        }
        report
    }

    /// Scans `data`, called `label`.
    pub fn scan_bytes(&self, s: &mut Session, label: &str, data: &[u8]) -> FileReport {
        let mut r = FileReport {
            path: label.to_string(),
            size: data.len() as u64,
            ..Default::default()
        };
        let budget = AtomicU64::new(self.limits.max_total);
        self.scan_into(s, label, data, 0, &budget, &mut r);
        // Hashing every byte would cost as much as the rules do: only what is reported.
        if !r.detections.is_empty() {
            r.sha256 = hex::encode(sha2::Sha256::digest(data));
        }
        r
    }

    fn scan_into(
        &self,
        s: &mut Session,
        label: &str,
        data: &[u8],
        depth: u32,
        budget: &AtomicU64,
        r: &mut FileReport,
    ) {
        r.scanned_bytes += data.len() as u64;
        let digest = || -> [u8; 32] { sha2::Sha256::digest(data).into() };
        let mut sha = String::new();
        if !self.indicators.is_empty() {
            let d = digest();
            sha = hex::encode(d);
            if let Some((engine, name)) = self.indicators.matches(&d, data) {
                r.detections.push(Detection {
                    path: label.to_string(),
                    engine: engine.to_string(),
                    rule: name.to_string(),
                    family: name.to_string(),
                    severity: "High".into(),
                    sha256: sha.clone(),
                });
            }
        }
        let elf = is_elf(data);
        for (scanner, for_elf) in s.scanners.iter_mut() {
            if elf && !*for_elf {
                continue;
            }
            match scanner.scan(data) {
                Ok(res) => {
                    for rule in res.matching_rules() {
                        if sha.is_empty() {
                            sha = hex::encode(digest());
                        }
                        r.detections.push(Detection {
                            path: label.to_string(),
                            engine: "yara".into(),
                            rule: format!("{}.{}", rule.namespace(), rule.identifier()),
                            family: meta(&rule, "family")
                                .unwrap_or_else(|| rule.identifier().into()),
                            severity: meta(&rule, "severity").unwrap_or_else(|| "High".into()),
                            sha256: sha.clone(),
                        });
                    }
                }
                Err(e) => r.skipped.push(format!("{label}: rules not run ({e})")),
            }
        }
        let kind = archive::kind(data);
        if kind.is_none() && crate::clamd::wants(data) {
            self.clamd_scan(label, data, &mut sha, r);
        }
        let Some(kind) = kind else {
            return;
        };
        if depth >= self.limits.max_depth {
            if !self.clamd_scan(label, data, &mut sha, r) {
                r.skipped.push(format!(
                    "{label}: archive nested deeper than {}",
                    self.limits.max_depth
                ));
            }
            return;
        }
        // Members are scanned as they are expanded, never held all at once; members read
        // before a bomb are scanned, the bomb is not expanded.
        let result = if self.read_ahead && depth == 0 && data.len() >= READ_AHEAD_MIN {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(READ_AHEAD_MEMBERS);
            let rx = std::sync::Mutex::new(rx);
            let limits = &self.limits;
            std::thread::scope(|scope| {
                let reader = scope.spawn(move || {
                    archive::members(data, kind, limits, budget, &mut |name, bytes| {
                        let _ = tx.send((name.to_string(), bytes));
                    })
                });
                let helper = scope.spawn(|| {
                    let mut r = FileReport::default();
                    self.scan_members(&mut self.session(), &rx, label, budget, &mut r);
                    r
                });
                self.scan_members(s, &rx, label, budget, r);
                if let Ok(h) = helper.join() {
                    r.scanned_bytes += h.scanned_bytes;
                    r.detections.extend(h.detections);
                    r.skipped.extend(h.skipped);
                    // In member order, whichever thread scanned them.
                    r.detections.sort_by(|a, b| a.path.cmp(&b.path));
                }
                reader
                    .join()
                    .unwrap_or_else(|_| Err("archive reader failed".to_string()))
            })
        } else {
            archive::members(data, kind, &self.limits, budget, &mut |name, bytes| {
                self.scan_into(s, &format!("{label}!{name}"), &bytes, depth + 1, budget, r);
            })
        };
        if let Err(why) = result {
            // What our reader could not open (another compression method, a damaged
            // archive, a bomb) clamd may, within its own limits.
            if !self.clamd_scan(label, data, &mut sha, r) {
                r.skipped.push(format!("{label}: {why}"));
            }
        }
    }

    /// Scans the members another thread expands from the archive `label` (depth 0) until it
    /// is done.
    fn scan_members(
        &self,
        s: &mut Session,
        rx: &std::sync::Mutex<std::sync::mpsc::Receiver<(String, Vec<u8>)>>,
        label: &str,
        budget: &AtomicU64,
        r: &mut FileReport,
    ) {
        loop {
            let next = rx.lock().ok().and_then(|rx| rx.recv().ok());
            let Some((name, bytes)) = next else {
                return;
            };
            self.scan_into(s, &format!("{label}!{name}"), &bytes, 1, budget, r);
        }
    }

    /// Asks clamd about `data`; true when clamd looked at it.
    fn clamd_scan(&self, label: &str, data: &[u8], sha: &mut String, r: &mut FileReport) -> bool {
        let Some(c) = &self.clamd else {
            return false;
        };
        match c.scan(data) {
            Ok(None) => true,
            Ok(Some(sig)) => {
                if sha.is_empty() {
                    *sha = hex::encode(sha2::Sha256::digest(data));
                }
                // A signature ClamAV made from one of our rules is named by that rule.
                let ours = sig
                    .strip_prefix("YARA.")
                    .map(|s| s.trim_end_matches(".UNOFFICIAL"))
                    .and_then(|id| self.rules.find(id));
                r.detections.push(Detection {
                    path: label.to_string(),
                    engine: "clamd".into(),
                    rule: sig.clone(),
                    family: ours
                        .as_ref()
                        .and_then(|rule| meta(rule, "family"))
                        .unwrap_or_else(|| sig.clone()),
                    severity: ours
                        .as_ref()
                        .and_then(|rule| meta(rule, "severity"))
                        .unwrap_or_else(|| "High".into()),
                    sha256: sha.clone(),
                });
                true
            }
            Err(e) => {
                r.skipped.push(format!("{label}: not sent to clamd ({e})"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn engine() -> Engine {
        Engine {
            rules: crate::rules::compile(&[]).unwrap(),
            indicators: Indicators::default(),
            limits: Limits::default(),
            max_file: MAX_FILE,
            clamd: None,
            read_ahead: false,
        }
    }

    /// Built at run time, so no source file of ours starts with it.
    fn eicar() -> Vec<u8> {
        [
            "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
            "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
        ]
        .concat()
        .into_bytes()
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, b) in files {
            z.start_file(*n, o).unwrap();
            z.write_all(b).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    fn tar_gz_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, body).unwrap();
        let tar = t.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn families(r: &FileReport) -> Vec<(String, String)> {
        r.detections
            .iter()
            .map(|d| (d.path.clone(), d.family.clone()))
            .collect()
    }

    #[test]
    fn eicar_is_found_plain_zipped_in_a_tar_gz_and_in_a_nested_zip() {
        let e = engine();
        let mut s = e.session();
        let plain = e.scan_bytes(&mut s, "eicar.com", &eicar());
        assert_eq!(
            families(&plain),
            [("eicar.com".into(), "EICAR test file".into())]
        );
        let zipped = e.scan_bytes(
            &mut s,
            "e.zip",
            &zip_of(&[("readme.txt", b"hello"), ("eicar.com", &eicar())]),
        );
        assert_eq!(
            families(&zipped),
            [("e.zip!eicar.com".into(), "EICAR test file".into())]
        );
        let tgz = e.scan_bytes(&mut s, "e.tar.gz", &tar_gz_of("dir/eicar.com", &eicar()));
        assert_eq!(families(&tgz)[0].0, "e.tar.gz!(gunzipped)!dir/eicar.com");
        let nested = zip_of(&[("inner.zip", &zip_of(&[("eicar.com", &eicar())]))]);
        let n = e.scan_bytes(&mut s, "outer.zip", &nested);
        assert_eq!(
            families(&n),
            [(
                "outer.zip!inner.zip!eicar.com".into(),
                "EICAR test file".into()
            )]
        );
        assert!(n.skipped.is_empty(), "{:?}", n.skipped);
        // EICAR inside other text is not the test file.
        let mut padded = b"see: ".to_vec();
        padded.extend(eicar());
        assert!(
            e.scan_bytes(&mut s, "doc.txt", &padded)
                .detections
                .is_empty()
        );
    }

    #[test]
    fn a_large_archive_read_ahead_on_other_threads_gives_what_one_thread_does() {
        // Members that do not compress, so the archive passes the read-ahead size.
        let noise: Vec<Vec<u8>> = (0..40u64)
            .map(|i| {
                let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                (0..64 << 10)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect();
        let names: Vec<String> = (0..40).map(|i| format!("n{i:02}.bin")).collect();
        let mut files: Vec<(&str, &[u8])> = names
            .iter()
            .zip(&noise)
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let eicar = eicar();
        let inner = zip_of(&[("eicar.com", &eicar)]);
        files.insert(7, ("a/eicar.com", &eicar));
        files.push(("z/inner.zip", &inner));
        let big = zip_of(&files);
        assert!(big.len() >= READ_AHEAD_MIN, "{}", big.len());
        let one = engine();
        let mut two = engine();
        two.read_ahead = true;
        let a = one.scan_bytes(&mut one.session(), "big.zip", &big);
        let b = two.scan_bytes(&mut two.session(), "big.zip", &big);
        assert_eq!(
            families(&b),
            [
                ("big.zip!a/eicar.com".into(), "EICAR test file".into()),
                (
                    "big.zip!z/inner.zip!eicar.com".into(),
                    "EICAR test file".into()
                )
            ]
        );
        assert_eq!(families(&a), families(&b));
        assert_eq!((a.scanned_bytes, a.skipped.len()), (b.scanned_bytes, 0));
    }

    #[test]
    fn a_zip_bomb_is_skipped_with_a_reason_and_not_expanded() {
        let mut e = engine();
        e.limits.max_member = 8 << 20;
        let mut s = e.session();
        let zeros = vec![0u8; 32 << 20];
        let bomb = zip_of(&[("eicar.com", &eicar()), ("zeros.bin", &zeros)]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let r = e.scan_bytes(&mut s, "bomb.zip", &bomb);
        assert_eq!(r.detections.len(), 1, "members before the bomb are scanned");
        assert!(
            r.skipped
                .iter()
                .any(|w| w.contains("bomb") && w.contains("zeros.bin")),
            "{:?}",
            r.skipped
        );
        assert!(
            r.scanned_bytes < 1 << 20,
            "nothing of the bomb was expanded: {}",
            r.scanned_bytes
        );
        // A gzip bomb stops at the ratio.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let r = e.scan_bytes(&mut s, "zeros.gz", &gz.finish().unwrap());
        assert!(
            r.skipped.iter().any(|w| w.contains("bomb")),
            "{:?}",
            r.skipped
        );
        // Nesting deeper than the limit is said.
        let mut e = engine();
        e.limits.max_depth = 1;
        let mut s = e.session();
        let nested = zip_of(&[("inner.zip", &zip_of(&[("eicar.com", &eicar())]))]);
        let r = e.scan_bytes(&mut s, "outer.zip", &nested);
        assert!(
            r.detections.is_empty() && r.skipped[0].contains("deeper than 1"),
            "{r:?}"
        );
    }

    #[test]
    fn web_shells_miners_and_hash_indicators_are_found_and_ordinary_files_are_not() {
        let mut e = engine();
        let mut s = e.session();
        for shell in [
            "<?php system($_GET[1]);",
            "<?php @eval($_POST['cmd']); ?>",
            "<?php eval(base64_decode('ZWNobyAxOw==')); ?>",
            "<?php $_GET['f']($_POST['a']); ?>",
        ] {
            let r = e.scan_bytes(&mut s, "x.php", shell.as_bytes());
            assert_eq!(r.detections.len(), 1, "{shell}: {r:?}");
            assert_eq!(r.detections[0].family, "PHP web shell");
            assert_eq!(r.detections[0].severity, "Critical");
        }
        let cfg = br#"{"pools":[{"url":"stratum+tcp://pool.example.net:3333","user":"4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge"}],"donate-level":1,"randomx":{}} xmrig"#;
        let r = e.scan_bytes(&mut s, "config.json", cfg);
        assert!(
            r.detections.iter().any(|d| d.family == "XMRig miner"),
            "{r:?}"
        );
        for benign in [
            &b"<?php echo htmlspecialchars($_GET['q']); ?>"[..],
            b"#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n",
            b"bash -i is interactive; see /dev/tcp in the manual",
        ] {
            assert!(e.scan_bytes(&mut s, "ok", benign).detections.is_empty());
        }
        let evil = b"not yara-visible, but known";
        let sha = hex::encode(sha2::Sha256::digest(evil));
        e.indicators
            .add("feed", &format!("{sha} Known.Dropper\n"))
            .unwrap();
        let mut s = e.session();
        let r = e.scan_bytes(&mut s, "blob", evil);
        assert_eq!(r.detections[0].engine, "sha256");
        assert_eq!(r.detections[0].rule, "Known.Dropper");
    }
}
