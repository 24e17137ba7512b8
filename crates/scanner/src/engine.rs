//! Scanning one file: its bytes against the rules and the hash indicators, then, when it is an
//! archive, each member the same way, down to the depth limit. What could not be looked into
//! (a bomb, a broken archive, a file over the size cap) is reported as skipped with a reason,
//! never as clean.

use std::io::Read;
use std::path::Path;

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
    pub rules: yara_x::Rules,
    pub indicators: Indicators,
    pub limits: Limits,
    /// Files larger than this are skipped with a reason (at most [`MAX_FILE`]).
    pub max_file: u64,
}

fn meta(rule: &yara_x::Rule, key: &str) -> Option<String> {
    rule.metadata().find_map(|(k, v)| match v {
        yara_x::MetaValue::String(s) if k == key => Some(s.to_string()),
        _ => None,
    })
}

impl Engine {
    /// Reads and scans the file at `path` (not following a final symlink).
    pub fn scan_file(&self, s: &mut yara_x::Scanner, path: &Path) -> std::io::Result<FileReport> {
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
        let mut data = Vec::with_capacity(size as usize);
        f.take(max).read_to_end(&mut data)?;
        Ok(self.scan_bytes(s, &label, &data))
    }

    /// Scans `data`, called `label`.
    pub fn scan_bytes(&self, s: &mut yara_x::Scanner, label: &str, data: &[u8]) -> FileReport {
        let mut r = FileReport {
            path: label.to_string(),
            size: data.len() as u64,
            ..Default::default()
        };
        let mut budget = self.limits.max_total;
        self.scan_into(s, label, data, 0, &mut budget, &mut r);
        // Hashing every byte would cost as much as the rules do: only what is reported.
        if !r.detections.is_empty() {
            r.sha256 = hex::encode(sha2::Sha256::digest(data));
        }
        r
    }

    fn scan_into(
        &self,
        s: &mut yara_x::Scanner,
        label: &str,
        data: &[u8],
        depth: u32,
        budget: &mut u64,
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
        match s.scan(data) {
            Ok(res) => {
                for rule in res.matching_rules() {
                    if sha.is_empty() {
                        sha = hex::encode(digest());
                    }
                    r.detections.push(Detection {
                        path: label.to_string(),
                        engine: "yara".into(),
                        rule: format!("{}.{}", rule.namespace(), rule.identifier()),
                        family: meta(&rule, "family").unwrap_or_else(|| rule.identifier().into()),
                        severity: meta(&rule, "severity").unwrap_or_else(|| "High".into()),
                        sha256: sha.clone(),
                    });
                }
            }
            Err(e) => r.skipped.push(format!("{label}: rules not run ({e})")),
        }
        let Some(kind) = archive::kind(data) else {
            return;
        };
        if depth >= self.limits.max_depth {
            r.skipped.push(format!(
                "{label}: archive nested deeper than {}",
                self.limits.max_depth
            ));
            return;
        }
        let mut inner = Vec::new();
        let result = archive::members(data, kind, &self.limits, budget, &mut |name, bytes| {
            inner.push((format!("{label}!{name}"), bytes));
        });
        // Members read before a bomb are scanned; the bomb is not expanded.
        for (name, bytes) in inner {
            self.scan_into(s, &name, &bytes, depth + 1, budget, r);
        }
        if let Err(why) = result {
            r.skipped.push(format!("{label}: {why}"));
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
        let mut s = yara_x::Scanner::new(&e.rules);
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
    fn a_zip_bomb_is_skipped_with_a_reason_and_not_expanded() {
        let mut e = engine();
        e.limits.max_member = 8 << 20;
        let mut s = yara_x::Scanner::new(&e.rules);
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
        e.limits.max_depth = 1;
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
        let mut s = yara_x::Scanner::new(&e.rules);
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
        let mut s = yara_x::Scanner::new(&e.rules);
        let r = e.scan_bytes(&mut s, "blob", evil);
        assert_eq!(r.detections[0].engine, "sha256");
        assert_eq!(r.detections[0].rule, "Known.Dropper");
    }
}
