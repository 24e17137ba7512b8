//! Reading feeds from disk: a JSON file, a directory tree of them, or a zip archive of them.
//! Each JSON document is recognised by its shape, so one directory may mix OSV records, OSV
//! arrays and tracker dumps.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::debian_tracker::parse_debian_tracker;
use crate::json::{IsObject, describe};
use crate::osv::{parse_osv_detailed, parse_osv_value};
use crate::{ImportReport, Skipped};

/// Largest JSON document read, in bytes. The full Debian tracker dump is under 100 MiB; the cap
/// keeps a zip bomb from exhausting the center's memory.
const MAX_DOCUMENT: u64 = 1 << 30;

/// Failures of a whole import. Problems with single files or records are not errors: they are
/// listed in [`ImportReport::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a readable zip archive: {message}", path.display())]
    Zip { path: PathBuf, message: String },
    #[error("{}: nothing importable{}", path.display(), summary(skipped))]
    NothingImportable {
        path: PathBuf,
        /// Why each document or record was left out.
        skipped: Vec<Skipped>,
    },
}

fn summary(skipped: &[Skipped]) -> String {
    match skipped {
        [] => String::new(),
        [one] => format!(": {one}"),
        [first, rest @ ..] => format!(": {first} (and {} more)", rest.len()),
    }
}

/// Imports a `.json` file (an OSV record, an array of OSV records, or the Debian tracker JSON),
/// a directory (every `*.json` below it), or a `.zip` of JSON files.
pub fn import_path(path: &Path) -> Result<ImportReport, ImportError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ImportError::NotFound(path.to_path_buf()),
        _ => ImportError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let mut report = ImportReport::default();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files, &mut report.skipped);
        files.sort();
        for f in files {
            let source = f.display().to_string();
            match read_text(
                std::fs::File::open(&f).and_then(|file| read_limited(file, meta_len(&f))),
            ) {
                Ok(text) => import_text(&text, &source, &mut report),
                Err(reason) => report.skipped.push(Skipped { source, reason }),
            }
        }
    } else if is_zip(path) {
        import_zip(path, &mut report)?;
    } else {
        let text =
            read_text(std::fs::File::open(path).and_then(|file| read_limited(file, meta.len())))
                .map_err(|reason| ImportError::NothingImportable {
                    path: path.to_path_buf(),
                    skipped: vec![Skipped {
                        source: path.display().to_string(),
                        reason,
                    }],
                })?;
        import_text(&text, &path.display().to_string(), &mut report);
    }
    if report.advisories.is_empty() {
        if report.files == 0 && report.skipped.is_empty() {
            report.skipped.push(Skipped {
                source: path.display().to_string(),
                reason: "no .json files found".into(),
            });
        }
        return Err(ImportError::NothingImportable {
            path: path.to_path_buf(),
            skipped: report.skipped,
        });
    }
    Ok(report)
}

fn meta_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn has_ext(name: &str, ext: &str) -> bool {
    name.len() > ext.len()
        && name
            .get(name.len() - ext.len()..)
            .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn is_zip(path: &Path) -> bool {
    if path.to_str().is_some_and(|p| has_ext(p, ".zip")) {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

/// Every `*.json` below `dir`. Symlinked directories are not followed, so a link cycle cannot
/// make the walk endless; symlinked files are read.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push(Skipped {
                source: dir.display().to_string(),
                reason: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, files, skipped);
        } else if (ft.is_file() || (ft.is_symlink() && p.is_file()))
            && p.to_str().is_some_and(|s| has_ext(s, ".json"))
        {
            files.push(p);
        }
    }
}

fn read_limited(r: impl Read, size_hint: u64) -> std::io::Result<Vec<u8>> {
    if size_hint > MAX_DOCUMENT {
        return Err(std::io::Error::other(format!(
            "{size_hint} bytes is over the {MAX_DOCUMENT}-byte limit"
        )));
    }
    let mut buf = Vec::with_capacity(size_hint as usize);
    r.take(MAX_DOCUMENT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_DOCUMENT {
        return Err(std::io::Error::other(format!(
            "over the {MAX_DOCUMENT}-byte limit"
        )));
    }
    Ok(buf)
}

fn read_text(bytes: std::io::Result<Vec<u8>>) -> Result<String, String> {
    let bytes = bytes.map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

fn import_zip(path: &Path, report: &mut ImportReport) -> Result<(), ImportError> {
    let file = std::fs::File::open(path).map_err(|e| ImportError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| ImportError::Zip {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for i in 0..zip.len() {
        let mut entry = match zip.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                report.skipped.push(Skipped {
                    source: format!("{}: entry {i}", path.display()),
                    reason: format!("unreadable zip entry: {e}"),
                });
                continue;
            }
        };
        let name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                report.skipped.push(Skipped {
                    source: format!("{}: entry {i}", path.display()),
                    reason: format!("unreadable zip entry name: {e}"),
                });
                continue;
            }
        };
        // macOS archivers add `__MACOSX/._x.json` resource forks beside every file: binary
        // noise, not feed content.
        if entry.is_dir()
            || !has_ext(&name, ".json")
            || name.starts_with("__MACOSX/")
            || name.rsplit('/').next().is_some_and(|f| f.starts_with("._"))
        {
            continue;
        }
        let source = format!("{}:{name}", path.display());
        let size = entry.size();
        match read_text(read_limited(&mut entry, size)) {
            Ok(text) => import_text(&text, &source, report),
            Err(reason) => report.skipped.push(Skipped { source, reason }),
        }
    }
    Ok(())
}

/// One JSON document, by shape: an array is OSV records; an object whose values are all objects
/// is the tracker (`{package: {CVE: ...}}`); any other object is one OSV record (its `id` is a
/// string).
fn import_text(text: &str, source: &str, report: &mut ImportReport) {
    report.files += 1;
    let text = text.trim_start_matches('\u{feff}');
    let skip = |report: &mut ImportReport, reason: String| {
        report.skipped.push(Skipped {
            source: source.to_string(),
            reason,
        })
    };
    match text.trim_start().as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<Value>>(text) {
            Ok(records) => {
                for (i, v) in records.into_iter().enumerate() {
                    match parse_osv_value(v, &format!("{source}[{i}]")) {
                        Ok((adv, skipped)) => {
                            report.advisories.push(adv);
                            report.skipped.extend(skipped);
                        }
                        Err(s) => report.skipped.push(s),
                    }
                }
            }
            Err(e) => skip(report, describe(&e)),
        },
        Some(b'{') => match serde_json::from_str::<HashMap<String, IsObject>>(text) {
            Ok(probe) if probe.is_empty() => skip(report, "empty JSON object".into()),
            Ok(probe) if probe.values().all(|v| v.0) => match parse_debian_tracker(text, source) {
                Ok((advs, skipped)) => {
                    report.advisories.extend(advs);
                    report.skipped.extend(skipped);
                }
                Err(e) => skip(report, e),
            },
            Ok(_) => match parse_osv_detailed(text, source) {
                Ok((adv, skipped)) => {
                    report.advisories.push(adv);
                    report.skipped.extend(skipped);
                }
                Err(s) => report.skipped.push(s),
            },
            Err(e) => skip(report, describe(&e)),
        },
        _ => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => skip(report, describe(&e)),
            Ok(_) => skip(
                report,
                "neither an OSV record, an array of them, nor Debian tracker JSON".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const OSV_A: &str = r#"{"id": "DSA-1-1", "aliases": ["CVE-2024-0001"], "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-2"}]}]}]}"#;
    const OSV_B: &str = r#"{"id": "USN-2-1", "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "b"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}"#;
    const TRACKER: &str =
        r#"{"c": {"CVE-2024-0003": {"releases": {"bookworm": {"status": "open"}}}}}"#;

    fn ids(r: &ImportReport) -> Vec<&str> {
        let mut v: Vec<&str> = r.advisories.iter().map(|a| a.id.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn directory_import_is_recursive_and_keeps_going_past_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("debian/sub")).unwrap();
        std::fs::write(d.join("debian/DSA-1-1.json"), OSV_A).unwrap();
        std::fs::write(
            d.join("debian/sub/all.JSON"),
            format!("[{OSV_B}, {{\"id\": \"X\"}}]"),
        )
        .unwrap();
        std::fs::write(d.join("tracker.json"), TRACKER).unwrap();
        std::fs::write(d.join("cut.json"), &OSV_A[..40]).unwrap();
        std::fs::write(d.join("readme.txt"), "not a feed").unwrap();
        std::fs::write(d.join("bin.json"), [0xff, 0xfe, 0x00]).unwrap();
        std::fs::write(d.join("number.json"), "42").unwrap();

        let r = import_path(d).unwrap();
        assert_eq!(ids(&r), ["CVE-2024-0003", "DSA-1-1", "USN-2-1"]);
        assert_eq!(r.files, 5, "bin.json is not text, readme.txt is not *.json");
        let lines: Vec<String> = r.skipped.iter().map(|s| s.to_string()).collect();
        let has = |needle: &str| {
            assert!(
                lines.iter().any(|l| l.contains(needle)),
                "{needle} not in {lines:#?}"
            )
        };
        has("cut.json: invalid JSON: EOF while parsing");
        has("all.JSON[1]: X: record has no `affected` packages");
        has("bin.json: not UTF-8 text");
        has("number.json: neither an OSV record");
        assert_eq!(lines.len(), 4, "{lines:#?}");
    }

    #[test]
    fn zip_import_reads_json_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("DSA-1-1.json", OSV_A),
            ("nested/USN-2-1.json", OSV_B),
            (
                "bad.json",
                "{\"id\": \"B-1\", \"affected\": [{\"package\": {\"ecosystem\": \"npm\", \"name\": \"x\"}}]}",
            ),
            ("__MACOSX/._DSA-1-1.json", "\u{0}\u{5}"),
            ("notes.md", "# hi"),
        ] {
            z.start_file(name, opts).unwrap();
            z.write_all(body.as_bytes()).unwrap();
        }
        z.finish().unwrap();

        let r = import_path(&path).unwrap();
        assert_eq!(ids(&r), ["DSA-1-1", "USN-2-1"]);
        assert_eq!(r.files, 3);
        assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
        let s = &r.skipped[0];
        assert!(s.source.ends_with("all.zip:bad.json: B-1"), "{s}");
        assert!(s.reason.contains("unknown ecosystem \"npm\""), "{s}");
    }

    #[test]
    fn zip_is_recognised_by_content_and_a_broken_one_fails_the_import() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.bin");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file("a.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(OSV_A.as_bytes()).unwrap();
        z.finish().unwrap();
        assert_eq!(ids(&import_path(&path).unwrap()), ["DSA-1-1"]);

        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.zip");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = import_path(&cut).unwrap_err();
        assert!(matches!(e, ImportError::Zip { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("cut.zip: not a readable zip archive"),
            "{e}"
        );
    }

    #[test]
    fn single_files_of_each_shape() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.json");
        std::fs::write(&f, format!("\u{feff}{OSV_A}")).unwrap();
        assert_eq!(ids(&import_path(&f).unwrap()), ["DSA-1-1"]);
        std::fs::write(&f, TRACKER).unwrap();
        let r = import_path(&f).unwrap();
        assert_eq!((ids(&r), r.files), (vec!["CVE-2024-0003"], 1));
        std::fs::write(&f, format!("[{OSV_A},{OSV_B}]")).unwrap();
        assert_eq!(ids(&import_path(&f).unwrap()), ["DSA-1-1", "USN-2-1"]);
    }

    #[test]
    fn whole_import_failures() {
        let dir = tempfile::tempdir().unwrap();
        let e = import_path(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, ImportError::NotFound(_)), "{e}");

        let e = import_path(dir.path()).unwrap_err();
        assert!(e.to_string().contains("nothing importable: "), "{e}");
        assert!(e.to_string().ends_with(": no .json files found"), "{e}");

        let f = dir.path().join("cut.json");
        std::fs::write(&f, &OSV_A[..30]).unwrap();
        let ImportError::NothingImportable { skipped, .. } = import_path(&f).unwrap_err() else {
            panic!("expected NothingImportable")
        };
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("invalid JSON"), "{skipped:?}");
        assert!(
            skipped[0].reason.contains("line 1 column 30"),
            "{skipped:?}"
        );
    }
}
